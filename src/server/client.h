/* client.h - one connected client: its socket, read buffer, parser,
 * session and reply queue, and the I/O that drives them.
 *
 * Data flow (one way): socket -> read buffer -> resp_parse -> cmd_resolve
 * (-> cluster routing) -> cmd_run -> keyspace -> reply queue -> writev
 * (before the loop sleeps).
 *
 * A client belongs to one loop thread; only that thread touches its
 * buffers. Other threads reach it only through the server registry (under
 * registry_lock) to read the fields marked "shared" or to request a kill. */
#ifndef PIER_CLIENT_H
#define PIER_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../cmd/command.h"
#include "../net/event_loop.h"
#include "../proto/reply.h"
#include "../proto/resp_parse.h"
#include "server.h"

#define CLIENT_CLOSING      (1u << 0) /* closed: waiting to be freed */
#define CLIENT_PENDING      (1u << 1) /* on the pending_write list */
#define CLIENT_PAUSED       (1u << 2) /* too much unsent output: not reading */
#define CLIENT_CLOSE_ON_FLUSH (1u << 3) /* close once the replies are sent */
#define CLIENT_BLOCKED      (1u << 8) /* parked by a blocking read: runs no input */

typedef struct client {
    ev_io io;
    server *srv;
    loop_thread *lt;      /* NULL in --io thread mode */
    thread_stats *stats;  /* the loop's counters, or own_stats in thread mode */
    uint32_t flags;
    session sess;
    reply *out;           /* allocated separately: it holds a 16 KB buffer */
    char *rbuf;           /* read buffer: [0, rlen) holds unconsumed bytes */
    size_t rlen, rcap;
    size_t rbuf_peak;     /* most bytes held in rbuf since it was last resized */
    resp_parser parser;
    cmd_arg *argv;        /* argument views for the command being run */
    size_t argv_cap;

    struct client *next, *prev;   /* loop's client list */
    struct client *pending_next;  /* loop's pending_write list */
    struct client *reg_next, *reg_prev; /* server registry */

    /* shared: read by other threads (CLIENT LIST/KILL) */
    char addr[64], laddr[64];
    int fd;
    _Atomic int64_t last_interaction_ms; /* wall ms */
    _Atomic size_t shared_qbuf, shared_omem; /* unparsed input, unsent output bytes */
    /* CLIENT LIST sizes (client_publish_sizes): read buffer size and peak,
     * inline reply bytes, reply blocks and their memory, total memory. */
    _Atomic size_t shared_rbs, shared_rbp, shared_obl, shared_oll, shared_obm, shared_totmem;
    _Atomic int kill_requested;
    _Atomic int shared_sub, shared_psub; /* channel / pattern subscriptions (pubsub.c) */
    _Atomic int shared_blocked;          /* parked by a blocking read (blocking.c) */
    thread_stats own_stats; /* --io thread: this connection's counters */
    int64_t obl_soft_since_ms; /* over the soft output limit since (0 = not) */
    /* AOF offset past this client's last logged write: its replies wait
     * until the AOF holds that much (server_aof_ready); 0 once it does. */
    uint64_t aof_need;
    struct block_state *blk;   /* parked blocking read (blocking.c), owner thread */
    int64_t block_carry_deadline; /* re-run after a wake: keep this deadline (-1 = none) */
    struct sub_state *sub;     /* pub/sub subscriptions (pubsub.c) */
    struct cl_conn *clc;       /* cluster mode state (cluster_client.c), NULL until used */
} client;

/* The connection a command's session belongs to. */
static inline client *client_of_session(session *s) {
    return (client *)(void *)((char *)s - offsetof(client, sess));
}

/* --- pieces shared by both I/O models (loop and thread) --- */

/* Allocate a client for fd, owned by loop lt (NULL in --io thread mode),
 * and add it to the server registry. Every field another thread may read
 * through the registry is set before the client is published there.
 * stats NULL means the client counts into its own_stats. */
client *client_alloc(server *srv, loop_thread *lt, int fd, thread_stats *stats);
/* Remove from the registry (others can no longer find it). */
void client_unregister(client *c);
/* Free the memory of an unregistered, closed client. */
void client_destroy(client *c);
/* Run the command the parser just returned. */
void client_execute(client *c);
/* Publish the sizes other threads read (CLIENT LIST, pub/sub limits):
 * the owner thread calls it after each batch of input and each write. */
void client_publish_sizes(client *c);
/* The memory c holds: struct, read buffer, replies, argument views. */
size_t client_total_memory(const client *c);
/* Make room to read: returns -1 when the query buffer limit is passed. */
int client_reserve_input(client *c);
/* Drop the consumed prefix of the read buffer. */
void client_compact_input(client *c);
/* Bytes were read from c: as in Redis, any input is activity for the idle
 * `timeout` (a command sent slowly is not idle). */
void client_note_input(client *c);
/* Reply the parser's protocol error and mark the client to close. */
void client_protocol_error(client *c);
/* Before each parse: limits that may change between commands
 * (proto-max-bulk-len, the pre-AUTH limits). */
void client_refresh_parser(client *c);
/* client-output-buffer-limit (normal class): 1 (and logged) when the
 * unsent replies pass the hard limit, or have stayed over the soft limit
 * for longer than its seconds; the caller closes the client. */
int client_output_limit_reached(client *c, int64_t now_ms);
/* Protected mode: with no password set, a non-loopback peer gets Redis's
 * DENIED explanation. Returns 1 when fd was refused (the caller closes). */
int client_protected_mode_denies(server *srv, int fd);

/* Run argv (views valid during the call) as a command of c (also a
 * blocked read run again after a wake-up): resolve it (cmd_resolve), in
 * cluster mode route it by the verdict, run it. */
void client_run_argv(client *c, int argc, const cmd_arg *argv);
/* Run a resolved command on this node, its replies into c->out (as it is
 * now: cluster routing may capture them): admission (maxmemory, MISCONF),
 * then the refusal or the run; the AOF wait, statistics. */
void client_run_resolved(client *c, cmd_ctx *ctx, cmd_verdict *v);
/* Loop model: c's parked command finished (replied or timed out): send
 * the reply and run the input that waited behind it. */
void client_resume(client *c);
/* Loop model: replies were appended to c->out from outside its command
 * execution (pub/sub): schedule the write and apply the pubsub output
 * limits (over them: kill requested, never closed here). */
void client_output_added(client *c);

/* Listener readable: accept connections and make them clients of lt;
 * out of descriptors, refuse what is pending and pause the listener. */
void client_accept(loop_thread *lt, ev_io *listener);
/* Take a slot under maxclients, or send fd Redis's "-ERR max number of
 * clients reached" and close it. Returns 1 admitted, 0 refused. */
int client_admit(server *srv, int fd);
/* An accept() on the RESP listener lfd failed: server_accept_failed with
 * the max-clients error as the refusal; refused connections are added to
 * *rejected. Returns ACCEPT_DRAINED, ACCEPT_NEXT or ACCEPT_PAUSE. */
int client_accept_failed(server *srv, int lfd, _Atomic uint64_t *rejected);
/* Before sleeping: flush replies, free closed clients. */
void client_before_sleep(loop_thread *lt);
/* Close every client whose kill was requested or whose idle time passed
 * the timeout. */
void client_reap(loop_thread *lt, int64_t now_ms);
/* Close all clients of lt (shutdown), flushing what can be flushed. */
void client_close_all(loop_thread *lt);

#endif
