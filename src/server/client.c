/* client.c - connection I/O: accept, read, parse, execute, write, close. */
#include "client.h"
#include "cluster_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../net/socket.h"
#include "blocking.h"
#include "pubsub.h"
#include "../store/evict.h"

#define RBUF_MIN (16 * 1024)
#define RBUF_KEEP_MAX (1024 * 1024) /* shrink an idle read buffer above this */
#define WRITE_IOV_MAX 64
#define ACCEPT_BATCH 64

static void client_io(ev_loop *loop, ev_io *io, uint32_t ready);
static void client_close(client *c);

/* --- registry (server-wide list, for CLIENT LIST / KILL) --- */

static void registry_add(server *srv, client *c) {
    pthread_mutex_lock(&srv->registry_lock);
    c->reg_prev = NULL;
    c->reg_next = srv->registry;
    if (srv->registry) srv->registry->reg_prev = c;
    srv->registry = c;
    pthread_mutex_unlock(&srv->registry_lock);
}

static void registry_remove(server *srv, client *c) {
    pthread_mutex_lock(&srv->registry_lock);
    if (c->reg_prev) c->reg_prev->reg_next = c->reg_next;
    else srv->registry = c->reg_next;
    if (c->reg_next) c->reg_next->reg_prev = c->reg_prev;
    pthread_mutex_unlock(&srv->registry_lock);
    /* Leave the other registries that may point at c (other threads
     * reach it through them): parked reads and pub/sub. */
    blocking_client_gone(c);
    pubsub_client_gone(c);
}

/* --- creation and destruction --- */

client *client_alloc(server *srv, loop_thread *lt, int fd, thread_stats *stats) {
    client *c = xcalloc(1, sizeof *c);
    c->srv = srv;
    c->lt = lt; /* before registry_add: CLIENT KILL reads it (review M2) */
    c->stats = stats ? stats : &c->own_stats;
    c->fd = fd;
    c->out = xmalloc(sizeof *c->out);
    reply_init(c->out);
    c->rcap = RBUF_MIN;
    c->rbuf = xmalloc(c->rcap);
    resp_parser_init(&c->parser, CFG_GET(srv->cfg.proto_max_bulk_len), 64 * 1024);
    c->sess.id = atomic_fetch_add(&srv->next_client_id, 1) + 1;
    c->sess.proto = 2;
    c->sess.authenticated = !srv->env.host->auth_required(srv);
    c->sess.created_ms = clock_wall_ms();
    c->block_carry_deadline = -1;
    atomic_store(&c->last_interaction_ms, c->sess.created_ms);
    sock_format_addr(fd, 0, c->addr, sizeof c->addr);
    sock_format_addr(fd, 1, c->laddr, sizeof c->laddr);
    client_publish_sizes(c);
    c->sess.addr = c->addr;
    registry_add(srv, c);
    static log_ratelimit accepted_rl = LOG_RATELIMIT_PEER;
    log_verbose_ratelimited(&accepted_rl, "accepted client id=%llu addr=%s",
                            (unsigned long long)c->sess.id, c->addr);
    return c;
}

void client_unregister(client *c) { registry_remove(c->srv, c); }

static client *client_create(loop_thread *lt, int fd) {
    client *c = client_alloc(lt->srv, lt, fd, &lt->stats);
    c->next = lt->clients;
    if (lt->clients) lt->clients->prev = c;
    lt->clients = c;
    ev_io_init(&c->io, fd, client_io, c);
    ev_io_set(lt->loop, &c->io, EV_READ);
    return c;
}

void client_destroy(client *c) {
    cluster_client_free(c);
    evict_pool_free(c->sess.evict_pool);
    resp_parser_free(&c->parser);
    reply_free(c->out);
    free(c->out);
    free(c->rbuf);
    free(c->argv);
    free(c->sess.name);
    free(c);
}

/* Close now: stop I/O, leave every list, queue the memory for freeing in
 * before-sleep (an event for this client may still be in the batch being
 * dispatched, so it must stay readable until then). */
static void client_close(client *c) {
    if (c->flags & CLIENT_CLOSING) return;
    loop_thread *lt = c->lt;
    c->flags |= CLIENT_CLOSING;
    ev_io_stop(lt->loop, &c->io);
    registry_remove(lt->srv, c);
    close(c->fd);
    if (c->prev) c->prev->next = c->next;
    else lt->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    atomic_fetch_sub(&lt->srv->nclients, 1);
    static log_ratelimit closed_rl = LOG_RATELIMIT_PEER;
    log_verbose_ratelimited(&closed_rl, "closed client id=%llu addr=%s",
                            (unsigned long long)c->sess.id, c->addr);
    /* pending_next is reused for the free list once off the pending list;
     * a client still on the pending list is skipped and freed from there. */
    if (!(c->flags & CLIENT_PENDING)) {
        c->pending_next = lt->to_free;
        lt->to_free = c;
    }
}

/* --- accept --- */

static const char maxclients_err[] = "-ERR max number of clients reached\r\n";

static void client_reject_maxclients(int fd) {
    ssize_t n = write(fd, maxclients_err, sizeof maxclients_err - 1);
    (void)n;
    close(fd);
}

int client_admit(server *srv, int fd) {
    if (atomic_fetch_add(&srv->nclients, 1) + 1 <= CFG_GET(srv->cfg.maxclients)) return 1;
    atomic_fetch_sub(&srv->nclients, 1);
    client_reject_maxclients(fd);
    return 0;
}

int client_accept_failed(server *srv, int lfd, _Atomic uint64_t *rejected) {
    unsigned shed;
    int next = server_accept_failed(srv, lfd, "RESP", maxclients_err, sizeof maxclients_err - 1,
                                    &shed);
    STAT_ADD(*rejected, shed);
    return next;
}

void client_accept(loop_thread *lt, ev_io *listener) {
    server *srv = lt->srv;
    for (int i = 0; i < ACCEPT_BATCH && !lt->stopping; i++) {
        int fd = server_accept(srv, listener->fd);
        if (fd < 0) {
            int next = client_accept_failed(srv, listener->fd, &lt->stats.rejected_connections);
            if (next == ACCEPT_NEXT) continue;
            if (next == ACCEPT_PAUSE) server_pause_listener(lt, listener);
            return;
        }
        STAT_ADD(lt->stats.connections_received, 1);
        if (!client_admit(srv, fd)) {
            STAT_ADD(lt->stats.rejected_connections, 1);
            continue;
        }
        if (client_protected_mode_denies(srv, fd)) {
            atomic_fetch_sub(&srv->nclients, 1);
            close(fd);
            STAT_ADD(lt->stats.rejected_connections, 1);
            continue;
        }
        sock_tune_client(fd, srv->cfg.tcp_keepalive);
        client_create(lt, fd);
    }
}

/* --- output --- */

/* Do this client's replies wait for the AOF (a write of it not logged
 * yet, because the disk fails)? */
static int aof_holds(client *c) {
    if (!c->aof_need) return 0;
    if (!server_aof_ready(c->srv, c->aof_need)) return 1;
    c->aof_need = 0;
    return 0;
}

static void mark_pending(client *c) {
    if ((c->flags & (CLIENT_PENDING | CLIENT_CLOSING)) || !reply_has_pending(c->out)) return;
    c->flags |= CLIENT_PENDING;
    c->pending_next = c->lt->pending_write;
    c->lt->pending_write = c;
}

/* Write as much as the socket takes. Returns 0 while the client lives
 * (output may remain), -1 when it was closed. */
static int client_write(client *c) {
    struct iovec iov[WRITE_IOV_MAX];
    while (reply_has_pending(c->out)) {
        int n = reply_iov(c->out, iov, WRITE_IOV_MAX);
        /* write() for the common single-segment case: the kernel skips
         * importing an iovec array. */
        ssize_t w = n == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len)
                           : writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            client_close(c);
            return -1;
        }
        STAT_ADD(c->stats->net_output_bytes, (uint64_t)w);
        reply_consume(c->out, (size_t)w);
    }
    /* Others (CLIENT LIST, cross-loop pub/sub limits) read these figures. */
    client_publish_sizes(c);
    if (c->flags & CLIENT_CLOSE_ON_FLUSH) {
        client_close(c);
        return -1;
    }
    return 0;
}

/* --- input --- */

static int output_over_soft_limit(const client *c) {
    return (long long)c->out->pending > CFG_GET(c->srv->cfg.output_pause_limit);
}

int client_output_limit_reached(client *c, int64_t now_ms) {
    const pier_config *cfg = &c->srv->cfg;
    long long pending = (long long)c->out->pending;
    long long soft = CFG_GET(cfg->output_soft_limit);
    int over = pending > CFG_GET(cfg->output_hard_limit);
    if (!over && soft > 0 && pending > soft) {
        /* Soft limit: only a client that stays over it for the whole
         * period is closed; a burst that drains in time is fine. */
        if (c->obl_soft_since_ms == 0) c->obl_soft_since_ms = now_ms;
        over = now_ms - c->obl_soft_since_ms > CFG_GET(cfg->output_soft_seconds) * 1000;
    } else if (!over) {
        c->obl_soft_since_ms = 0;
    }
    static log_ratelimit obl_rl = LOG_RATELIMIT_PEER;
    if (over)
        log_warn_ratelimited(&obl_rl,
                             "Client id=%llu addr=%s closed for overcoming of output buffer limits.",
                             (unsigned long long)c->sess.id, c->addr);
    return over;
}

void client_refresh_parser(client *c) {
    c->parser.max_bulk = CFG_GET(c->srv->cfg.proto_max_bulk_len);
    c->parser.unauthenticated = !c->sess.authenticated && config_auth_required(&c->srv->cfg);
}

/* Loopback peers (and unix sockets) count as local for protected mode. */
static int peer_is_local(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) return 0;
    if (ss.ss_family == AF_UNIX) return 1;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}

int client_protected_mode_denies(server *srv, int fd) {
    if (!CFG_GET(srv->cfg.protected_mode) || config_auth_required(&srv->cfg) ||
        peer_is_local(fd))
        return 0;
    /* Redis 7.0's text, byte for byte, so tools that recognise it work. */
    static const char msg[] =
        "-DENIED Redis is running in protected mode because protected mode is enabled and no "
        "password is set for the default user. In this mode connections are only accepted "
        "from the loopback interface. If you want to connect from external computers to "
        "Redis you may adopt one of the following solutions: 1) Just disable protected mode "
        "sending the command 'CONFIG SET protected-mode no' from the loopback interface by "
        "connecting to Redis from the same host the server is running, however MAKE SURE "
        "Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to "
        "make this change permanent. 2) Alternatively you can just disable the protected "
        "mode by editing the Redis configuration file, and setting the protected mode option "
        "to 'no', and then restarting the server. 3) If you started the server manually just "
        "for testing, restart it with the '--protected-mode no' option. 4) Setup a an "
        "authentication password for the default user. NOTE: You only need to do one of the "
        "above things in order for the server to start accepting connections from the "
        "outside.\r\n";
    ssize_t n = write(fd, msg, sizeof msg - 1);
    (void)n;
    return 1;
}

void client_execute(client *c) {
    resp_parser *p = &c->parser;
    if (p->argc > c->argv_cap) {
        c->argv_cap = p->argc * 2;
        c->argv = xrealloc(c->argv, c->argv_cap * sizeof *c->argv);
    }
    for (size_t i = 0; i < p->argc; i++) {
        c->argv[i].p = c->rbuf + p->args[i].off;
        c->argv[i].n = p->args[i].len;
    }
    client_run_argv(c, (int)p->argc, c->argv);
}

void client_run_argv(client *c, int argc, const cmd_arg *argv) {
    cmd_ctx ctx = {
        .env = &c->srv->env,
        .sess = &c->sess,
        .out = c->out,
        .stats = c->stats,
        .argc = argc,
        .argv = argv,
        .now_ms = clock_wall_ms(),
    };
    cmd_verdict v;
    cmd_resolve(&ctx, &v);
    int route = c->srv->cluster && c->lt ? cluster_client_route(c, &ctx, &v) : ROUTE_LOCAL;
    if (route == ROUTE_LOCAL) {
        client_run_resolved(c, &ctx, &v);
    } else if (route == ROUTE_LOCAL_SLOT) {
        cluster_client_run_slotted(c, &ctx, &v);
    } else {
        STAT_ADD(c->stats->commands, 1);
        atomic_store_explicit(&c->last_interaction_ms, ctx.now_ms, memory_order_relaxed);
    }
    cmd_verdict_free(&v);
}

void client_run_resolved(client *c, cmd_ctx *ctx, cmd_verdict *v) {
    ctx->out = c->out;
    if (cmd_admit(ctx, v) == CMD_OK) cmd_run(ctx, v);
    else cmd_refuse(ctx, v);
    /* The reply may go out only after this write is in the AOF: the loop
     * (or the connection thread) flushes up to here before sending. */
    if (ctx->aof_end) {
        c->aof_need = ctx->aof_end;
        if (c->lt) c->lt->aof_need = ctx->aof_end;
    }
    STAT_ADD(c->stats->commands, 1);
    atomic_store_explicit(&c->last_interaction_ms, ctx->now_ms, memory_order_relaxed);
    if (c->sess.flags & (SESS_CLOSE_AFTER_REPLY | SESS_CLOSE_NOW)) c->flags |= CLIENT_CLOSE_ON_FLUSH;
}

/* Drop the consumed prefix of the read buffer; shrink a big idle one. */
void client_compact_input(client *c) {
    size_t used = resp_parser_consumed(&c->parser);
    if (used) {
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
        resp_parser_shift(&c->parser, used);
    }
    if (c->rlen == 0 && c->rcap > RBUF_KEEP_MAX) {
        free(c->rbuf);
        c->rcap = RBUF_MIN;
        c->rbuf = xmalloc(c->rcap);
        c->rbuf_peak = 0;
    }
}

void client_protocol_error(client *c) {
    static log_ratelimit proto_rl = LOG_RATELIMIT_PEER;
    log_verbose_ratelimited(&proto_rl, "protocol error from client id=%llu addr=%s: %s",
                            (unsigned long long)c->sess.id, c->addr, c->parser.error);
    reply_error(c->out, c->parser.error);
    c->flags |= CLIENT_CLOSE_ON_FLUSH;
}

/* Run every complete command in the read buffer, stopping early when the
 * client's unsent output passes the soft limit (resumed once it drains). */
static void process_input(client *c) {
    /* Re-read per batch so CONFIG SET proto-max-bulk-len applies to
     * connections that are already open, as in Redis. */
    while (!(c->flags & (CLIENT_CLOSING | CLIENT_CLOSE_ON_FLUSH | CLIENT_BLOCKED))) {
        if (output_over_soft_limit(c)) {
            c->flags |= CLIENT_PAUSED;
            break;
        }
        client_refresh_parser(c); /* AUTH may have run: per command */
        resp_status st = resp_parse(&c->parser, c->rbuf, c->rlen);
        if (st == RESP_NEED_MORE) break;
        if (st == RESP_ERROR) {
            client_protocol_error(c);
            ev_io_set(c->lt->loop, &c->io, 0);
            break;
        }
        client_execute(c);
        if (c->sess.flags & SESS_CLOSE_NOW) { /* hung up (CMD_XPROTO): send nothing more */
            client_close(c);
            return;
        }
        if (atomic_load_explicit(&c->kill_requested, memory_order_relaxed))
            c->flags |= CLIENT_CLOSE_ON_FLUSH;
        if (client_output_limit_reached(c, clock_wall_ms())) {
            client_close(c);
            return;
        }
    }
    client_compact_input(c);
    client_publish_sizes(c);
    mark_pending(c);
    if (c->flags & CLIENT_PAUSED) ev_io_set(c->lt->loop, &c->io, EV_WRITE);
}

void client_resume(client *c) {
    if (c->flags & CLIENT_CLOSING) return;
    process_input(c);
}

void client_output_added(client *c) {
    client_publish_sizes(c);
    mark_pending(c);
}

size_t client_total_memory(const client *c) {
    size_t obl, oll, obm;
    reply_mem_stats(c->out, &obl, &oll, &obm);
    return sizeof *c + sizeof *c->out + c->rcap + obm + c->argv_cap * sizeof *c->argv;
}

void client_publish_sizes(client *c) {
    size_t obl, oll, obm;
    reply_mem_stats(c->out, &obl, &oll, &obm);
    atomic_store_explicit(&c->shared_qbuf, c->rlen, memory_order_relaxed);
    atomic_store_explicit(&c->shared_omem, c->out->pending, memory_order_relaxed);
    atomic_store_explicit(&c->shared_rbs, c->rcap, memory_order_relaxed);
    atomic_store_explicit(&c->shared_rbp, c->rbuf_peak, memory_order_relaxed);
    atomic_store_explicit(&c->shared_obl, obl, memory_order_relaxed);
    atomic_store_explicit(&c->shared_oll, oll, memory_order_relaxed);
    atomic_store_explicit(&c->shared_obm, obm, memory_order_relaxed);
    atomic_store_explicit(&c->shared_totmem, client_total_memory(c), memory_order_relaxed);
}

/* Make room for the next read: the parser's hint for a large bulk, else
 * double when full. Returns -1 when the query buffer limit is passed. */
int client_reserve_input(client *c) {
    size_t want = c->rlen + (c->parser.need > RBUF_MIN ? c->parser.need : RBUF_MIN);
    if (want <= c->rcap) return 0;
    long long limit = CFG_GET(c->srv->cfg.client_query_buffer_limit);
    if ((long long)c->rlen >= limit) {
        static log_ratelimit qbuf_rl = LOG_RATELIMIT_PEER;
        log_warn_ratelimited(&qbuf_rl,
                             "Closing client id=%llu addr=%s that reached max query buffer length",
                             (unsigned long long)c->sess.id, c->addr);
        return -1;
    }
    size_t cap = c->rcap * 2 > want ? c->rcap * 2 : want;
    if ((long long)cap > limit + RBUF_MIN) cap = (size_t)limit + RBUF_MIN;
    c->rbuf = xrealloc(c->rbuf, cap);
    c->rcap = cap;
    c->rbuf_peak = c->rlen;
    return 0;
}

void client_note_input(client *c) {
    atomic_store_explicit(&c->last_interaction_ms, clock_wall_ms(), memory_order_relaxed);
}

static void client_read(client *c) {
    if (client_reserve_input(c) < 0) {
        client_close(c);
        return;
    }
    ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (n == 0) {
        client_close(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) client_close(c);
        return;
    }
    c->rlen += (size_t)n;
    if (c->rlen > c->rbuf_peak) c->rbuf_peak = c->rlen;
    STAT_ADD(c->stats->net_input_bytes, (uint64_t)n);
    client_note_input(c);
    process_input(c);
}

/* Writable again after a full socket: send, and once the backlog is small
 * resume reading and run the commands that were waiting. */
static void client_writable(client *c) {
    server_aof_before_reply(c->lt->srv, &c->lt->aof_need);
    if (aof_holds(c)) {
        /* retried before the loop sleeps (the cron wakes it) */
        ev_io_set(c->lt->loop, &c->io, (c->flags & CLIENT_PAUSED) ? 0 : EV_READ);
        mark_pending(c);
        return;
    }
    if (client_write(c) < 0) return;
    if (reply_has_pending(c->out) && output_over_soft_limit(c)) return;
    if (c->flags & CLIENT_PAUSED) {
        c->flags &= ~CLIENT_PAUSED;
        process_input(c);
        if (c->flags & (CLIENT_CLOSING | CLIENT_PAUSED)) return;
    }
    uint32_t ev = (c->flags & CLIENT_CLOSE_ON_FLUSH) ? 0 : EV_READ;
    if (reply_has_pending(c->out)) ev |= EV_WRITE;
    ev_io_set(c->lt->loop, &c->io, ev);
}

static void client_io(ev_loop *loop, ev_io *io, uint32_t ready) {
    client *c = io->arg;
    if (c->flags & CLIENT_CLOSING) return;
    if (ready & EV_WRITE) client_writable(c);
    if ((ready & EV_READ) && !(c->flags & (CLIENT_CLOSING | CLIENT_PAUSED))) client_read(c);
}

/* --- loop hooks --- */

void client_before_sleep(loop_thread *lt) {
    client *c = lt->pending_write, *held = NULL;
    lt->pending_write = NULL;
    while (c) {
        client *next = c->pending_next;
        c->flags &= ~CLIENT_PENDING;
        if (c->flags & CLIENT_CLOSING) {
            c->pending_next = lt->to_free;
            lt->to_free = c;
        } else if (aof_holds(c)) {
            /* Its write is not in the AOF (the disk fails): the reply
             * waits, on the pending list, for a later iteration. */
            c->flags |= CLIENT_PENDING;
            c->pending_next = held;
            held = c;
        } else if (client_write(c) == 0 && reply_has_pending(c->out)) {
            uint32_t ev = EV_WRITE;
            if (!(c->flags & (CLIENT_PAUSED | CLIENT_CLOSE_ON_FLUSH))) ev |= EV_READ;
            ev_io_set(lt->loop, &c->io, ev);
        }
        c = next;
    }
    lt->pending_write = held;
    while (lt->to_free) {
        client *f = lt->to_free;
        lt->to_free = f->pending_next;
        /* requests still with the cluster thread: the last completion frees it */
        if (cluster_client_hold(f)) continue;
        client_destroy(f);
    }
}

void client_reap(loop_thread *lt, int64_t now_ms) {
    long long timeout = CFG_GET(lt->srv->cfg.timeout);
    for (client *c = lt->clients, *next; c; c = next) {
        next = c->next;
        if (atomic_load(&c->kill_requested)) {
            client_close(c);
            continue;
        }
        int64_t idle = now_ms - atomic_load_explicit(&c->last_interaction_ms, memory_order_relaxed);
        /* As Redis: a parked blocking read or a subscriber is waiting by
         * design, not idle. */
        int waiting = (c->flags & CLIENT_BLOCKED) || c->sess.subscriptions > 0;
        if (timeout > 0 && idle > timeout * 1000 && !reply_has_pending(c->out) && !waiting) {
            static log_ratelimit idle_rl = LOG_RATELIMIT_PEER;
            log_verbose_ratelimited(&idle_rl, "Closing idle client id=%llu",
                                    (unsigned long long)c->sess.id);
            client_close(c);
            continue;
        }
        /* A paused client (not reading its replies) runs no commands, so
         * its soft output limit period is checked here; for the others this
         * ends a soft-limit period once their output has drained. */
        if (client_output_limit_reached(c, now_ms)) client_close(c);
    }
}

void client_close_all(loop_thread *lt) {
    while (lt->clients) {
        client *c = lt->clients;
        /* best effort: the last replies of a clean stop (never those of a
         * write the AOF does not hold) */
        if (!aof_holds(c)) client_write(c);
        client_close(c);
    }
    client_before_sleep(lt);
}
