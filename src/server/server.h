/* server.h - the server: configuration, keyspace, loop threads, listeners
 * and the registry of connected clients. One `server` struct owns all of
 * it and is passed by pointer; there is no global server state.
 *
 * Thread model: N loop threads, each with its own epoll loop. Every loop
 * watches the shared listening sockets with EPOLLEXCLUSIVE, so the kernel
 * hands a new connection to one idle loop, and that connection lives on
 * that loop for its whole life. The main thread only waits for signals.
 *
 * Lock order: registry_lock may be taken while holding nothing else; key
 * shard locks (store) are never held while taking registry_lock. */
#ifndef PIER_SERVER_H
#define PIER_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../cmd/command.h"
#include "../net/event_loop.h"
#include "config.h"

#define SERVER_MAX_LISTENERS 16
/* A loop's listeners that may be paused at once (RESP and batch ports). */
#define SERVER_MAX_PAUSED (2 * SERVER_MAX_LISTENERS)
/* How long a listener is not watched after accept() ran out of descriptors. */
#define SERVER_ACCEPT_PAUSE_MS 100
/* Descriptors kept for everything but clients (Redis's
 * CONFIG_MIN_RESERVED_FDS); pier adds 2 per loop thread (epoll, eventfd). */
#define SERVER_MIN_RESERVED_FDS 32

struct client;

typedef struct loop_thread {
    int idx;
    pthread_t tid;
    struct server *srv;
    ev_loop *loop;
    ev_io listen_io[SERVER_MAX_LISTENERS];
    struct client *clients;        /* every client of this loop */
    struct client *pending_write;  /* clients with replies to flush */
    struct client *to_free;        /* closed, freed before sleeping */
    unsigned shard_from, shard_to; /* active-expiry range of this loop */
    thread_stats stats;
    _Atomic int kill_pending; /* a CLIENT KILL marked one of our clients */
    int stopping;
    uint64_t aof_need;             /* AOF offset this loop's replies wait for */
    /* Blocking reads (blocking.c): this loop's parked connections (owner
     * thread only) and those signalled, to run again (guarded by the
     * blocking registry's lock). */
    struct block_state *blocked, *block_ready;
    int block_timer_armed;
    /* Pub/sub (pubsub.c): subscribers with queued messages (guarded by
     * the pub/sub lock). */
    struct sub_state *inbox_ready;
    /* Cluster mode: completions from the cluster thread (cl_lock). */
    pthread_mutex_t cl_lock;
    struct cluster_done *cl_inbox;
    struct client *cl_held;        /* closed clients with requests in flight (loop thread) */
    /* Listeners not watched after accept() ran out of descriptors, until
     * the resume timer (listener.c). */
    ev_io *paused[SERVER_MAX_PAUSED];
    int npaused;
} loop_thread;

struct persist;

typedef struct server {
    pier_config cfg;
    keyspace *ks;
    struct persist *ps;            /* persistence (src/persist/) */
    struct blocking *blocking;     /* parked blocking reads (blocking.c) */
    struct pubsub *pubsub;         /* channels and subscribers (pubsub.c) */
    struct batch_server *batch;    /* the batch protocol listener (batch.c) */
    struct cluster *cluster;       /* cluster mode (src/cluster/); NULL when off */
    cmd_env env;
    int nthreads;
    loop_thread *threads;
    int listen_fds[SERVER_MAX_LISTENERS];
    int nlisten;
    int port;                      /* the port actually bound */
    _Atomic uint64_t next_client_id;
    _Atomic long long nclients;
    pthread_mutex_t registry_lock; /* guards registry and every client's name */
    struct client *registry;       /* all clients, linked by reg_next/reg_prev */
    int64_t start_wall_ms;
    int64_t start_mono_us;
    char run_id[41];
    _Atomic int shutting_down;
    _Atomic int shutdown_flags;    /* PERSIST_SHUT_ flags of a SHUTDOWN command */
    /* --io thread: the acceptor, the live connection threads, and the
     * counters of connections that ended (added with atomic RMW: many
     * writers). */
    pthread_t acceptor;
    _Atomic long conn_threads;
    thread_stats retired_stats;
    /* instantaneous_ops_per_sec: loop 0's cron samples the command count
     * into a ring and publishes the mean rate of the last samples. */
    struct {
        uint64_t ops[16];
        int64_t ms[16];
        unsigned idx;
        _Atomic uint64_t rate;
    } ops_sampler;
    /* used_memory calibration (limits.c): allocator-true bytes minus the
     * keyspace's own count, sampled by loop 0's cron; covers what the
     * keyspace does not count (client buffers, parser, threads). */
    _Atomic long long mem_offset;
    /* daemonize: the pipe to the waiting parent (main.c); server_run
     * writes SERVER_READY_BYTE and closes it once serving. -1 = none. */
    int ready_fd;
    /* CONFIG RESETSTAT: the counters' values at the last reset, which
     * INFO subtracts (the counters themselves only grow: the owner threads
     * add to them without a lock, and the save rules read `dirty`). */
    thread_stats stat_base;
    _Atomic uint64_t expired_base, evicted_base;
    /* The reserve descriptor (listener.c): closed to refuse pending
     * connections when the process is out of descriptors. */
    pthread_mutex_t spare_lock;
    int spare_fd;
    _Atomic int spare_missing;     /* spare_fd < 0: server_accept reopens it */
} server;

#define SERVER_READY_BYTE '\x06'


/* Set up everything from a parsed config: keyspace, listeners, threads
 * (not started). Returns 0, or -1 after logging why. */
int server_init(server *srv);
/* Start the loop threads, wait for SIGINT/SIGTERM, stop, join. */
int server_run(server *srv);
/* Sum of one counter over every loop, every live --io thread connection
 * and every ended one. */
uint64_t server_stat_total(server *srv, size_t field_offset);
#define SERVER_STAT(srv, field) server_stat_total((srv), offsetof(thread_stats, field))
void server_free(server *srv);

/* Replies are about to be sent for writes whose AOF records end at *need:
 * have persistence write them (fsync them with appendfsync always), then
 * clear *need. Cheap no-op when *need is 0 (always so with the AOF off).
 * Call with no shard lock held. Returns 0, or -1 when the AOF cannot be
 * written now (*need kept: the next call retries, at most once a second):
 * replies waiting for those records must not be sent (server_aof_ready). */
int server_aof_before_reply(server *srv, uint64_t *need);
/* 1 when replies waiting for AOF records up to `need` may go (0 = none). */
int server_aof_ready(server *srv, uint64_t need);
/* SHUTDOWN (flags: PERSIST_SHUT_*): the final flush/save now, on the
 * calling thread; on success the main thread is told to stop (returns 0,
 * nothing to reply), else -1 with the error line in msg. */
int server_request_shutdown(server *srv, int flags, char *msg, size_t len);

/* --- listener.c: accept() failures, for every listening port --- */

/* sock_accept for every accept loop, under spare_lock (no accept takes the
 * slot the reserve trick frees); first takes back the reserve descriptor
 * if the trick lost it. */
int server_accept(server *srv, int lfd);

enum { ACCEPT_DRAINED, ACCEPT_NEXT, ACCEPT_PAUSE };
/* accept() on listener lfd just failed (errno). Returns what the accept
 * loop does next: ACCEPT_DRAINED (nothing pending: wait for the next
 * event), ACCEPT_NEXT (an error of that one connection: accept again),
 * ACCEPT_PAUSE (out of descriptors or memory, or a broken listener: stop
 * accepting; a loop calls server_pause_listener, the --io thread acceptor
 * waits SERVER_ACCEPT_PAUSE_MS). Out of descriptors, every connection
 * pending on lfd was first sent `reject` (NULL: none) and closed through
 * the reserve descriptor; *shed counts them. Logged at most once a second;
 * port_name names the port in the line. */
int server_accept_failed(server *srv, int lfd, const char *port_name, const void *reject,
                         size_t reject_len, unsigned *shed);
/* Loop thread only: stop watching the listener io for
 * SERVER_ACCEPT_PAUSE_MS, then watch it again (unless the loop stops). */
void server_pause_listener(loop_thread *lt, ev_io *io);
void server_spare_init(server *srv);
void server_spare_free(server *srv);

/* --- limits.c: memory figures and settings applied from the config --- */

/* What glibc's allocator holds for pier (mallinfo2 in-use + mmapped); a
 * replacement allocator (the sanitizers') reports 0, then the estimate. */
size_t server_memory_allocator(server *srv);
/* The cheap figure maxmemory is enforced against: keyspace bytes (one
 * atomic) + the calibrated offset. */
size_t server_memory_estimate(server *srv);
/* Refresh mem_offset (cron, one thread). */
void server_memory_calibrate(server *srv);
/* Push config values that other layers keep their own copy of (the
 * keyspace's LRU/LFU mode) after start-up and every CONFIG SET. */
void server_apply_config(server *srv);
/* rename-command lines -> command table, at start-up. 0, or -1 logged. */
int server_apply_renames(server *srv);
/* At start-up (Redis's adjustOpenFilesLimit): raise the soft descriptor
 * limit toward maxclients + the reserve, as far as the hard limit allows,
 * or else lower maxclients to what the limit allows, with Redis's
 * warnings. The reserve counts nthreads loops. Returns -1 (logged) when
 * the limit is below the reserve. */
int server_adjust_fd_limit(server *srv, int nthreads);
/* CONFIG SET maxclients: 0 when the descriptor limit (raised if it can
 * be) allows `maxclients` clients, else -1 with Redis's error text in err. */
int server_fd_limit_allows(server *srv, long long maxclients, char *err, size_t errlen);

/* --- restart.c --- */

/* Execute this binary again in place (same pid) with the whole current
 * configuration handed over (config_dump in a memfd, "--restart-fd N";
 * nothing secret in argv or the environment). Every fd but 0-2 is closed.
 * Does not return: on failure it logs and exits 1. */
void server_restart_exec(const pier_config *cfg) __attribute__((noreturn));

#endif
