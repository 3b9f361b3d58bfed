/* server.c - start-up, loop threads, periodic work, shutdown. */
#include "server.h"
#include "cluster_client.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/hash.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../net/socket.h"
#include "../persist/persist.h"
#include "../types/types.h"
#include "../cluster/cluster.h"
#include "batch.h"
#include "blocking.h"
#include "client.h"
#include "pubsub.h"
#include "conn_thread.h"
#include "host.h"
#include "version.h"

/* --- per-loop callbacks --- */

static void on_listener(ev_loop *loop, ev_io *io, uint32_t ready) {
    client_accept(io->arg, io);
}

/* The AOF goes first: no reply leaves before its write is in the log
 * (and, with appendfsync always, on disk: one fsync for the whole
 * iteration's commands, the group commit). */
static void on_before_sleep(ev_loop *loop, void *arg) {
    loop_thread *lt = arg;
    server_aof_before_reply(lt->srv, &lt->aof_need);
    client_before_sleep(lt);
    batch_before_sleep(lt); /* ACKs: after the AOF, like replies */
}

int server_aof_before_reply(server *srv, uint64_t *need) {
    if (*need == 0) return 0;
    if (persist_before_reply(srv->ps, *need) < 0) return -1; /* kept: retried */
    *need = 0;
    return 0;
}

int server_aof_ready(server *srv, uint64_t need) {
    return need == 0 || persist_reply_ready(srv->ps, need);
}

int server_request_shutdown(server *srv, int flags, char *msg, size_t len) {
    log_warn("User requested shutdown...");
    if (persist_shutdown_prepare(srv->ps, flags, msg, len) < 0) return -1;
    atomic_store(&srv->shutdown_flags, flags | PERSIST_SHUT_COMMAND);
    kill(getpid(), SIGTERM); /* the main thread's sigwait takes it from here */
    return 0;
}

static uint64_t total_dirty(void *arg) { return SERVER_STAT((server *)arg, dirty); }

static void stop_loop(loop_thread *lt) {
    server_aof_before_reply(lt->srv, &lt->aof_need);
    lt->stopping = 1;
    for (int i = 0; i < lt->srv->nlisten; i++)
        if (lt->listen_io[i].registered) ev_io_stop(lt->loop, &lt->listen_io[i]);
    client_close_all(lt);
    batch_stop_loop(lt);
    ev_stop(lt->loop);
}

/* Another thread asked for attention: a CLIENT KILL or the shutdown. */
static void on_wake(ev_loop *loop, void *arg) {
    loop_thread *lt = arg;
    if (atomic_load(&lt->srv->shutting_down)) {
        stop_loop(lt);
        return;
    }
    if (lt->srv->cluster) cluster_client_on_wake(lt); /* replies from the cluster */
    blocking_on_wake(lt); /* signalled blocking reads run again */
    pubsub_on_wake(lt);   /* messages published from other loops */
    batch_on_wake(lt);    /* batch subscribers with new entries */
    /* Walk the clients only when a CLIENT KILL asked for it: most wakes
     * are cross-loop messages, and a walk per message would cost O(clients)
     * (the cron reaps as well, so nothing is missed). */
    if (atomic_exchange(&lt->kill_pending, 0)) client_reap(lt, clock_wall_ms());
}

/* Record the total command count; publish the rate over the ring. */
static void sample_ops(server *srv) {
    uint64_t total = 0;
    for (int i = 0; i < srv->nthreads; i++) total += STAT_GET(srv->threads[i].stats.commands);
    unsigned n = sizeof srv->ops_sampler.ops / sizeof srv->ops_sampler.ops[0];
    unsigned cur = srv->ops_sampler.idx % n, oldest = (srv->ops_sampler.idx + 1) % n;
    srv->ops_sampler.ops[cur] = total;
    srv->ops_sampler.ms[cur] = clock_mono_ms();
    srv->ops_sampler.idx++;
    if (srv->ops_sampler.idx < n) oldest = 0;
    int64_t dt = srv->ops_sampler.ms[cur] - srv->ops_sampler.ms[oldest];
    uint64_t rate = dt > 0 ? (total - srv->ops_sampler.ops[oldest]) * 1000 / (uint64_t)dt : 0;
    atomic_store_explicit(&srv->ops_sampler.rate, rate, memory_order_relaxed);
}

/* Periodic work, hz times a second: active expiry of this loop's shard
 * range (at most a quarter of the period) and idle-client timeouts. */
static long on_cron(ev_loop *loop, void *arg) {
    loop_thread *lt = arg;
    int hz = CFG_GET(lt->srv->cfg.hz);
    if (hz < 1) hz = 1;
    int64_t period_us = 1000000 / hz;
    int64_t now_ms = clock_wall_ms();
    size_t n = ks_active_expire(lt->srv->ks, lt->shard_from, lt->shard_to, now_ms,
                                clock_mono_us() + period_us / 4);
    STAT_ADD(lt->stats.expired_keys_active, n);
    client_reap(lt, now_ms);
    if (lt->idx == 0) {
        sample_ops(lt->srv);
        server_memory_calibrate(lt->srv);
    }
    return 1000 / hz;
}

static void *loop_main(void *arg) {
    loop_thread *lt = arg;
    ev_run(lt->loop);
    return NULL;
}

/* --- set-up --- */

/* One bind address. "-addr" (Redis 7) is optional: skipped with a
 * warning when the address is not available on this machine (e.g. -::1
 * without IPv6). Returns 0, or -1 after logging why. */
static int listen_one(server *srv, const char *a) {
    int optional = a[0] == '-';
    if (optional) a++;
    char err[256];
    /* Port 0 binds a free port; every further address reuses it. */
    int port = srv->nlisten ? srv->port : srv->cfg.port;
    int fd = sock_listen(a, port, srv->cfg.tcp_backlog, err, sizeof err);
    if (fd < 0 && optional && (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT)) {
        log_warn("%s (optional address, skipped)", err);
        return 0;
    }
    if (fd < 0) {
        log_fatal("%s", err);
        return -1;
    }
    srv->listen_fds[srv->nlisten++] = fd;
    srv->port = sock_local_port(fd);
    return 0;
}

static int open_listeners(server *srv) {
    char addrs[sizeof srv->cfg.bind];
    memcpy(addrs, srv->cfg.bind, sizeof addrs);
    char *save = NULL;
    for (char *a = strtok_r(addrs, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
        if (srv->nlisten == SERVER_MAX_LISTENERS) {
            log_fatal("too many bind addresses (max %d)", SERVER_MAX_LISTENERS);
            return -1;
        }
        if (listen_one(srv, a) < 0) return -1;
    }
    if (!srv->nlisten) {
        log_fatal("no bind address could be used (bind '%s')", srv->cfg.bind);
        return -1;
    }
    return 0;
}

static void init_thread(server *srv, int i) {
    loop_thread *lt = &srv->threads[i];
    lt->idx = i;
    lt->srv = srv;
    lt->loop = ev_create(on_wake, lt);
    pthread_mutex_init(&lt->cl_lock, NULL);
    lt->shard_from = (unsigned)((size_t)KS_SHARDS * i / srv->nthreads);
    lt->shard_to = (unsigned)((size_t)KS_SHARDS * (i + 1) / srv->nthreads);
    ev_set_before_sleep(lt->loop, on_before_sleep, lt);
    /* In --io thread mode the loops only run the periodic work. */
    int listeners = CFG_GET(srv->cfg.io_model) == CFG_IO_LOOP ? srv->nlisten : 0;
    for (int l = 0; l < listeners; l++) {
        ev_io_init(&lt->listen_io[l], srv->listen_fds[l], on_listener, lt);
        /* EPOLLEXCLUSIVE: one loop is woken per new connection. */
        ev_io_set_exclusive(lt->loop, &lt->listen_io[l], EV_READ);
    }
    ev_timer_add(lt->loop, 1000 / CFG_GET(srv->cfg.hz), on_cron, lt);
    batch_init_loop(lt);
}

static void make_run_id(char out[41]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 40; i += 16) {
        uint64_t r = hash_random_seed();
        for (int j = 0; j < 16 && i + j < 40; j++) out[i + j] = hex[(r >> (4 * j)) & 15];
    }
    out[40] = 0;
}

/* After a failed load: how to look at (and repair) the files. */
static void log_repair_hint(const pier_config *cfg) {
    char man[2048];
    snprintf(man, sizeof man, "%s/%s/%s.manifest", cfg->dir, cfg->appenddirname,
             cfg->appendfilename);
    char *abs = realpath(man, NULL);
    if (CFG_GET(cfg->appendonly) && abs) {
        log_fatal("to check the AOF: pier-check-aof %s; to cut a damaged tail off its last "
                  "file: pier-check-aof --fix %s (back up %s/%s first; docs/PERSISTENCE.md)",
                  abs, abs, cfg->dir, cfg->appenddirname);
    } else if (!CFG_GET(cfg->appendonly)) {
        char snap[2048], magic[5] = "";
        snprintf(snap, sizeof snap, "%s/%s", cfg->dir, cfg->dbfilename);
        FILE *f = fopen(snap, "rb");
        if (f) {
            if (fread(magic, 1, 5, f) != 5) magic[0] = 0;
            fclose(f);
        }
        if (!memcmp(magic, "REDIS", 5))
            log_fatal("%s is a Redis RDB file: pier keeps its own snapshot format and cannot "
                      "load it; move it away or set dbfilename to another name", snap);
        else
            log_fatal("to check the snapshot: pier-check-aof %s (docs/PERSISTENCE.md)", snap);
    }
    free(abs);
}

int server_init(server *srv) {
    pthread_mutex_init(&srv->registry_lock, NULL);
    srv->start_wall_ms = clock_wall_ms();
    srv->start_mono_us = clock_mono_us();
    make_run_id(srv->run_id);
    srv->ks = ks_create(hash_random_seed());
    srv->env.ks = srv->ks;
    srv->env.cfg = &srv->cfg;
    srv->env.host = &server_host_ops;
    types_register(srv->ks);
    srv->blocking = blocking_create();
    srv->pubsub = pubsub_create();
    srv->env.host_arg = srv;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = srv->cfg.threads > 0 ? srv->cfg.threads : (cores > 0 ? (int)cores : 1);
    server_spare_init(srv);
    if (server_adjust_fd_limit(srv, nthreads) < 0) return -1;
    cmd_table_init();
    if (server_apply_renames(srv) < 0) return -1;
    server_apply_config(srv);
    srv->ps = persist_create(srv->ks, &srv->cfg, &srv->env, total_dirty, srv);
    char err[1024];
    if (cluster_configured(&srv->cfg)) {
        if (CFG_GET(srv->cfg.io_model) == CFG_IO_THREAD) {
            log_fatal("cluster mode needs --io loop");
            return -1;
        }
        srv->cluster = cluster_create(&srv->cfg, srv->ks, &srv->env, srv->ps, &cluster_client_host,
                                      srv, err, sizeof err);
        if (!srv->cluster) {
            log_fatal("bad cluster configuration: %s", err);
            return -1;
        }
        srv->cfg.batch_port = 0; /* the batch port is not replicated yet */
    }
    if (persist_load(srv->ps, err, sizeof err) < 0) {
        log_fatal("cannot load the data set: %s", err);
        log_repair_hint(&srv->cfg);
        return -1;
    }
    if (srv->cluster && cluster_start(srv->cluster, err, sizeof err) < 0) {
        log_fatal("cannot start cluster mode: %s", err);
        return -1;
    }
    if (open_listeners(srv) < 0) return -1;
    srv->nthreads = nthreads;
    srv->threads = xcalloc((size_t)srv->nthreads, sizeof *srv->threads);
    if (batch_open(srv) < 0) return -1;
    batch_stats bst;
    batch_get_stats(srv, &bst);
    config_set_in_use(&srv->cfg, srv->nthreads, bst.port);
    for (int i = 0; i < srv->nthreads; i++) init_thread(srv, i);
    return 0;
}

static void write_pidfile(const server *srv) {
    if (!srv->cfg.pidfile[0]) return;
    FILE *f = fopen(srv->cfg.pidfile, "w");
    if (!f) {
        log_warn("cannot write pidfile %s: %s", srv->cfg.pidfile, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
}

/* The ready line: every port, the persistence mode and where the files
 * are, so one line says what this server is. */
static void log_ready(server *srv, int thread_io) {
    const pier_config *cfg = &srv->cfg;
    char batch[16] = "off", bus[16] = "off", aof[64] = "off", snap[1400] = "off";
    if (cfg->batch_port_in_use > 0) snprintf(batch, sizeof batch, "%d", cfg->batch_port_in_use);
    if (srv->cluster) snprintf(bus, sizeof bus, "%d", cluster_bus_port(srv->cluster));
    if (CFG_GET(cfg->appendonly)) {
        char fsync[16];
        if (config_get(cfg, "appendfsync", fsync, sizeof fsync) < 0) fsync[0] = 0;
        snprintf(aof, sizeof aof, "on (appendfsync %s)", fsync);
    }
    char rules[1024];
    if (config_get(cfg, "save", rules, sizeof rules) > 0)
        snprintf(snap, sizeof snap, "%s, save %s", cfg->dbfilename, rules);
    char *dir = realpath(cfg->dir, NULL);
    log_info("pier %s ready: port %d, batch port %s, cluster bus port %s; AOF %s; snapshots %s; "
             "dir %s; %d loop thread(s), %s; pid %d",
             PIER_VERSION, srv->port, batch, bus, aof, snap, dir ? dir : cfg->dir, srv->nthreads,
             thread_io ? "a thread per connection" : "event loops", (int)getpid());
    free(dir);
}

/* Block the stop signals in every thread (threads inherit the mask) so
 * that only sigwait in the main thread receives them. */
static void block_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int server_run(server *srv) {
    sigset_t set;
    block_signals(&set);
    write_pidfile(srv);
    persist_start(srv->ps); /* after block_signals: it inherits the mask */
    for (int i = 0; i < srv->nthreads; i++)
        pthread_create(&srv->threads[i].tid, NULL, loop_main, &srv->threads[i]);
    int thread_io = CFG_GET(srv->cfg.io_model) == CFG_IO_THREAD;
    if (thread_io && conn_thread_start(srv) < 0) return 1;
    log_ready(srv, thread_io);
    if (srv->ready_fd >= 0) { /* daemonize: the parent may exit 0 now */
        char ack = SERVER_READY_BYTE;
        if (write(srv->ready_fd, &ack, 1) < 0) log_warn("cannot tell the parent: %s", strerror(errno));
        log_set_console_fd(-1);
        close(srv->ready_fd);
        srv->ready_fd = -1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    int flags = atomic_load(&srv->shutdown_flags);
    if (!(flags & PERSIST_SHUT_COMMAND))
        log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* Each woken loop first stops watching the listeners, then flushes
     * and closes its clients. */
    atomic_store(&srv->shutting_down, 1);
    if (thread_io) conn_thread_stop(srv);
    for (int i = 0; i < srv->nthreads; i++) ev_wake(srv->threads[i].loop);
    for (int i = 0; i < srv->nthreads; i++) pthread_join(srv->threads[i].tid, NULL);
    cluster_stop(srv->cluster);
    /* final AOF fsync or snapshot: a failure is not a clean exit */
    int rc = persist_shutdown(srv->ps, flags);
    if (srv->cfg.pidfile[0]) unlink(srv->cfg.pidfile);
    if (rc < 0) {
        log_warn("exiting with status 1: the final persistence step failed (see above)");
        return 1;
    }
    log_info("bye");
    return 0;
}

uint64_t server_stat_total(server *srv, size_t off) {
#define FIELD(stats) (*(_Atomic uint64_t *)((char *)(stats) + off))
    uint64_t sum = STAT_GET(FIELD(&srv->retired_stats));
    for (int i = 0; i < srv->nthreads; i++) sum += STAT_GET(FIELD(&srv->threads[i].stats));
    if (CFG_GET(srv->cfg.io_model) == CFG_IO_THREAD) {
        pthread_mutex_lock(&srv->registry_lock);
        for (client *c = srv->registry; c; c = c->reg_next)
            if (!c->lt) sum += STAT_GET(FIELD(&c->own_stats));
        pthread_mutex_unlock(&srv->registry_lock);
    }
    return sum;
#undef FIELD
}

void server_free(server *srv) {
    cluster_destroy(srv->cluster);
    blocking_destroy(srv->blocking);
    pubsub_destroy(srv->pubsub);
    batch_free(srv);
    for (int i = 0; i < srv->nthreads; i++) {
        ev_destroy(srv->threads[i].loop);
        pthread_mutex_destroy(&srv->threads[i].cl_lock);
        for (struct cluster_done *d = srv->threads[i].cl_inbox, *n; d; d = n) {
            n = d->next;
            free(d);
        }
        cluster_client_free_held(&srv->threads[i]);
    }
    free(srv->threads);
    for (int i = 0; i < srv->nlisten; i++) close(srv->listen_fds[i]);
    persist_destroy(srv->ps);
    server_spare_free(srv);
    if (srv->ks) ks_destroy(srv->ks);
    pthread_mutex_destroy(&srv->registry_lock);
    config_free(&srv->cfg);
}
