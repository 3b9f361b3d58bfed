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
    int stopping;
} loop_thread;

typedef struct server {
    pier_config cfg;
    keyspace *ks;
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
} server;

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

#endif
