/* conn_thread.c - the `--io thread` model: one thread per connection with
 * blocking I/O.
 *
 * The alternative to the event loops (`--io loop`, the default), kept
 * because the cache pier grew from offered both and because it is the
 * honest baseline for what the loops buy. It shares every line of command
 * code with the loop model: the same client struct, parser, dispatcher and
 * reply queue; only how bytes move differs. An acceptor thread polls the
 * listeners; each accepted connection gets a detached thread that reads
 * (blocking, with a 1 s poll so kills, timeouts and shutdown are noticed),
 * runs every complete command, and writes all replies before reading again.
 * Backpressure is the blocking write itself. The number of threads is capped
 * by maxclients. The loop threads still run, without listeners, for the
 * periodic work (active expiry, statistics). */
#include "conn_thread.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../net/socket.h"
#include "client.h"

#define CONN_THREAD_STACK (256 * 1024)
#define POLL_MS 1000

/* Write everything queued, blocking. Returns -1 on a socket error. */
static int write_all(client *c) {
    struct iovec iov[64];
    while (reply_has_pending(c->out)) {
        int n = reply_iov(c->out, iov, 64);
        /* write() for the common single-segment case: the kernel skips
         * importing an iovec array. */
        ssize_t w = n == 1 ? write(c->fd, iov[0].iov_base, iov[0].iov_len)
                           : writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        STAT_ADD(c->stats->net_output_bytes, (uint64_t)w);
        reply_consume(c->out, (size_t)w);
    }
    return 0;
}

/* Run every complete command in the read buffer. */
static void run_commands(client *c) {
    while (!(c->flags & CLIENT_CLOSE_ON_FLUSH)) {
        client_refresh_parser(c);
        resp_status st = resp_parse(&c->parser, c->rbuf, c->rlen);
        if (st == RESP_NEED_MORE) break;
        if (st == RESP_ERROR) {
            client_protocol_error(c);
            break;
        }
        client_execute(c);
        if (atomic_load(&c->kill_requested)) c->flags |= CLIENT_CLOSE_ON_FLUSH;
        /* Replies are written after the batch: the hard limit still
         * bounds one batch's output (the blocking write is the rest). */
        if (client_output_limit_reached(c, clock_wall_ms())) {
            c->flags |= CLIENT_CLOSE_ON_FLUSH;
            reply_reset(c->out); /* disconnect at once: send nothing */
        }
    }
    client_compact_input(c);
    client_publish_sizes(c);
}

/* Wait for input. Returns 1 when readable, 0 to stop (killed, idle
 * timeout, shutdown), -1 on error. */
static int wait_readable(client *c) {
    for (;;) {
        if (atomic_load(&c->kill_requested) || atomic_load(&c->srv->shutting_down)) return 0;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, POLL_MS);
        if (n > 0) return 1;
        if (n < 0 && errno != EINTR) return -1;
        long long timeout = CFG_GET(c->srv->cfg.timeout);
        int64_t idle = clock_wall_ms() - atomic_load(&c->last_interaction_ms);
        if (timeout > 0 && idle > timeout * 1000) return 0;
    }
}

/* The replies may go once the AOF holds this connection's writes; while
 * it cannot be written (a full disk), wait and retry (the persistence
 * thread retries too, once a second). Returns 0, or -1 to close without
 * replying (killed, shutdown). */
static int wait_aof(client *c) {
    while (server_aof_before_reply(c->srv, &c->aof_need) < 0) {
        if (atomic_load(&c->kill_requested) || atomic_load(&c->srv->shutting_down)) return -1;
        poll(NULL, 0, 100);
    }
    return 0;
}

/* Counters of a finished connection are kept in the server's total. */
static void retire_stats(server *srv, const thread_stats *s) {
    thread_stats *r = &srv->retired_stats;
    atomic_fetch_add(&r->commands, STAT_GET(s->commands));
    atomic_fetch_add(&r->keyspace_hits, STAT_GET(s->keyspace_hits));
    atomic_fetch_add(&r->keyspace_misses, STAT_GET(s->keyspace_misses));
    atomic_fetch_add(&r->net_input_bytes, STAT_GET(s->net_input_bytes));
    atomic_fetch_add(&r->net_output_bytes, STAT_GET(s->net_output_bytes));
    atomic_fetch_add(&r->dirty, STAT_GET(s->dirty));
}

static void *conn_main(void *arg) {
    client *c = arg;
    server *srv = c->srv;
    while (wait_readable(c) > 0) {
        if (client_reserve_input(c) < 0) break;
        ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        c->rlen += (size_t)n;
        if (c->rlen > c->rbuf_peak) c->rbuf_peak = c->rlen;
        STAT_ADD(c->stats->net_input_bytes, (uint64_t)n);
        client_note_input(c);
        run_commands(c);
        if (wait_aof(c) < 0 || write_all(c) < 0 || (c->flags & CLIENT_CLOSE_ON_FLUSH)) break;
    }
    client_unregister(c);
    close(c->fd);
    retire_stats(srv, c->stats);
    client_destroy(c);
    atomic_fetch_sub(&srv->nclients, 1);
    atomic_fetch_sub(&srv->conn_threads, 1);
    return NULL;
}

static void start_connection(server *srv, int fd) {
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK); /* this model blocks by design */
    sock_tune_client(fd, srv->cfg.tcp_keepalive);
    client *c = client_alloc(srv, NULL, fd, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, CONN_THREAD_STACK);
    pthread_t tid;
    atomic_fetch_add(&srv->conn_threads, 1);
    if (pthread_create(&tid, &attr, conn_main, c) != 0) {
        static log_ratelimit thread_rl = LOG_RATELIMIT_SYSCALL;
        log_warn_ratelimited(&thread_rl, "cannot start a connection thread: %s", strerror(errno));
        atomic_fetch_sub(&srv->conn_threads, 1);
        client_unregister(c);
        close(fd);
        client_destroy(c);
        atomic_fetch_sub(&srv->nclients, 1);
    }
    pthread_attr_destroy(&attr);
}

/* Accept what is pending on lfd. Returns 1 when the acceptor must stop
 * polling the listeners for a while (out of descriptors). */
static int accept_ready(server *srv, int lfd) {
    for (;;) {
        int fd = server_accept(srv, lfd);
        if (fd < 0) {
            int next = client_accept_failed(srv, lfd, &srv->retired_stats.rejected_connections);
            if (next == ACCEPT_NEXT) continue;
            return next == ACCEPT_PAUSE;
        }
        atomic_fetch_add(&srv->retired_stats.connections_received, 1);
        if (!client_admit(srv, fd)) {
            atomic_fetch_add(&srv->retired_stats.rejected_connections, 1);
            continue;
        }
        if (client_protected_mode_denies(srv, fd)) {
            atomic_fetch_sub(&srv->nclients, 1);
            close(fd);
            atomic_fetch_add(&srv->retired_stats.rejected_connections, 1);
            continue;
        }
        start_connection(srv, fd);
    }
}

static void *acceptor_main(void *arg) {
    server *srv = arg;
    struct pollfd p[SERVER_MAX_LISTENERS];
    for (int i = 0; i < srv->nlisten; i++) p[i] = (struct pollfd){.fd = srv->listen_fds[i], .events = POLLIN};
    while (!atomic_load(&srv->shutting_down)) {
        int n = poll(p, (nfds_t)srv->nlisten, 200);
        int pause = 0;
        for (int i = 0; n > 0 && i < srv->nlisten; i++)
            if (p[i].revents & POLLIN) pause |= accept_ready(srv, p[i].fd);
        if (pause) poll(NULL, 0, SERVER_ACCEPT_PAUSE_MS); /* out of descriptors: no spinning */
    }
    return NULL;
}

int conn_thread_start(server *srv) {
    if (pthread_create(&srv->acceptor, NULL, acceptor_main, srv) != 0) {
        log_fatal("cannot start the acceptor thread: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* After shutting_down is set: stop accepting, wake every connection thread
 * (shutdown() makes its blocking poll/read return) and wait for them. */
void conn_thread_stop(server *srv) {
    pthread_join(srv->acceptor, NULL);
    pthread_mutex_lock(&srv->registry_lock);
    for (client *c = srv->registry; c; c = c->reg_next) shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&srv->registry_lock);
    /* Wait for every thread, however long: the server is freed next, and
     * each socket was shut down, so even a blocked write returns. */
    for (int i = 1; atomic_load(&srv->conn_threads) > 0; i++) {
        usleep(10000);
        if (i % 500 == 0)
            log_warn("waiting for %ld connection thread(s) to finish",
                     (long)atomic_load(&srv->conn_threads));
    }
}
