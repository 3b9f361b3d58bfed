/* batch.h - the batch protocol listener (docs/PROTOCOL.md): publishers
 * append whole batches of messages to a stream in one step; subscribers
 * receive a stream's entries as batches paced by TCP.
 *
 * Thread model: the listening sockets are watched by every loop thread
 * with EPOLLEXCLUSIVE, like the RESP listeners; a batch connection lives
 * on the loop that accepted it and only that loop touches it. Other loops
 * reach a subscriber only through the watch registry (batch_signal), under
 * its lock, to mark it ready and wake its loop.
 *
 * Lock order: key shard lock -> batch watch lock -> ev_wake (like
 * blocking.lock: a writer signals under the key's shard lock; nothing is
 * taken under the watch lock). */
#ifndef PIER_SERVER_BATCH_H
#define PIER_SERVER_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"

typedef struct batch_server batch_server;

/* Counters for INFO's batch section, summed over the loops. */
typedef struct batch_stats {
    int port;                  /* bound port, 0 = off */
    long long connections;     /* open now */
    long long publishers, subscribers;
    uint64_t connections_received;
    uint64_t batches_in, batches_out;
    uint64_t bytes_in, bytes_out;   /* wire bytes */
    uint64_t messages_in, messages_out;
    uint64_t duplicates;       /* batches acknowledged as DUPLICATE */
    uint64_t errors;           /* ERROR frames sent */
} batch_stats;

/* After the RESP listeners and srv->nthreads are set, before the loops
 * are initialised: bind the batch port (batch-port; -1 = port + 1000)
 * and set up the per-loop state. Returns 0 (also when off, or when the
 * derived default port is taken: logged) or -1 after logging why. */
int batch_open(server *srv);
/* Watch the batch listeners from this loop (EPOLLEXCLUSIVE) and start
 * its handshake-deadline timer. */
void batch_init_loop(loop_thread *lt);
/* Before the loop sleeps, after the AOF is written (and fsynced with
 * appendfsync always): send queued ACKs, free closed connections. */
void batch_before_sleep(loop_thread *lt);
/* After ev_wake: subscribers whose stream got new entries. */
void batch_on_wake(loop_thread *lt);
/* Shutdown: stop listening and close this loop's batch connections. */
void batch_stop_loop(loop_thread *lt);
/* New entries on key (XADD, XBATCHADD, on any loop): wake its batch
 * subscribers. The caller holds the key's shard lock. */
void batch_signal(server *srv, const char *key, size_t klen);
void batch_get_stats(server *srv, batch_stats *out);
void batch_free(server *srv);

#endif
