/* publisher_impl.h - the publisher's data structures, shared by
 * publisher.c (API, per-thread batches, flusher), pubconn.c (one
 * connection: handshake, send, ACK reader, reconnect and resend) and
 * pubroute.c (which connection a batch goes to; cluster mode's failover:
 * resending a failed connection's batches elsewhere, the keeper thread).
 *
 * Two modes, fixed by the first connection's HELLO_OK:
 *   single  every connection has its own client id and sequence
 *           (c->next_seq); ACKs are cumulative; a broken connection is
 *           reconnected by the next thread that needs it, which resends
 *           its batches from HELLO_OK's sequence.
 *   cluster one client id and one sequence space (p->next_seq) over all
 *           connections; ACKs per batch (SINGLE) or cumulative; a broken
 *           connection's unacknowledged batches become orphans, resent at
 *           once on live connections with their sequence unchanged; the
 *           keeper thread reconnects broken connections in the background.
 *
 * Locks, always taken in this order (never the reverse):
 *   slot->lock      one per publishing thread: its current batch
 *   conn->send_lock one per connection: serialises writers and reconnects;
 *                   a thread holds at most one at a time
 *   p->lock         short sections: free list, unacked queues, stats
 * The ACK reader threads take p->lock, and one send_lock at a time when
 * they resend orphans (holding nothing else). */
#ifndef PIER_PUBLISHER_IMPL_H
#define PIER_PUBLISHER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"

/* One batch buffer of the pool. From the moment it is sent until the
 * server ACKs it (and a zero-copy send completes), it sits in its
 * connection's unacked queue and is never written: a resend after a
 * reconnect sends these exact bytes again. */
typedef struct pbuf {
    uint8_t *raw;              /* batch_bytes: u32 length + message, ... */
    uint8_t *wire;             /* compression output (NULL without a codec) */
    size_t used;               /* raw bytes filled */
    uint32_t count;            /* messages */
    uint64_t first_ns;         /* when the first message went in (linger) */
    uint64_t seq;              /* batch sequence once sent (kept by a cluster-mode resend) */
    uint32_t wire_len;         /* header + payload bytes on the wire */
    uint64_t sent_no;          /* under p->lock: its place in its connection's send order */
    bool acked;                /* under p->lock: the server acknowledged it */
    bool counted;              /* under p->lock: wire_len is in its connection's out_bytes */
    uint8_t hdr[PB_HEADER_LEN];
    const uint8_t *payload;    /* raw or wire */
    uint32_t payload_len;
    uint32_t zc_id;            /* last zero-copy send id of this buffer */
    bool zc_pending;
    struct pbuf *next;         /* free list, unacked queue or orphans */
} pbuf;

typedef struct pier_publisher pier_publisher;

typedef struct pconn {
    pier_publisher *p;
    int index;
    int node;                  /* index in the options' nodes */
    char host[256];
    int port;
    uint64_t client_id;
    pthread_mutex_t send_lock;
    int fd;                    /* -1 before the first connect */
    uint64_t next_seq;         /* under send_lock (single mode; cluster: p->next_seq) */
    uint32_t max_payload;      /* from HELLO_OK */
    pc_adapt adapt;            /* under send_lock */
    pc_ctx cctx;               /* under send_lock */
    pthread_t reader;
    bool reader_running;
    bool zc_on;                /* SO_ZEROCOPY accepted by the socket */
    bool connected_once;       /* under send_lock: a later connect is a reconnect */
    uint32_t zc_next_id;       /* under send_lock */
    /* under p->lock: */
    pbuf *unacked_head, *unacked_tail; /* sent, waiting for an ACK (or zero-copy completion) */
    uint64_t out_bytes;        /* wire bytes of its unacknowledged batches */
    uint64_t sends;            /* batches queued on it so far (sent_no) */
    uint64_t acked_seq;        /* highest cumulative ACK (single mode) */
    bool broken;               /* I/O failed: reconnect (and, single mode, resend) first */
    uint64_t retry_at_ns;      /* cluster: the keeper's next reconnect attempt */
    unsigned backoff_ms;       /* cluster: the keeper's current wait between attempts */
    uint32_t zc_done;          /* zero-copy ids below this have completed */
    pier_conn_stats stats;
} pconn;

typedef struct pslot {
    pthread_mutex_t lock;
    pthread_t owner;
    pbuf *cur;                 /* batch being filled, NULL when none */
    struct pslot *next;        /* immutable once the slot is published */
} pslot;

struct pier_publisher {
    pier_publisher_options opt;
    char topic[PB_MAX_TOPIC + 1];
    char *password;
    uint64_t id;               /* process-unique, for the thread-local slot cache */
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* ACKs, freed buffers, failures */
    pconn *conns;
    int nconns;
    atomic_uint rr;            /* rotates the first candidate among equally loaded conns */
    uint64_t client_base;      /* the options' client id, or a random one */
    bool mode_known;           /* under lock: the first HELLO_OK arrived */
    bool cluster;              /* cluster mode (fixed once mode_known) */
    uint32_t cluster_nodes;    /* HELLO_OK count in cluster mode */
    uint64_t next_seq;         /* under lock: cluster mode's next batch sequence */
    int in_flight;             /* under lock: buffers sent and not released */
    pbuf *orphans, *orphans_tail; /* under lock: batches of failed connections to resend */
    int senders_waiting;       /* under lock: threads waiting for a live connection */
    uint64_t down_since;       /* under lock: no live connection while needed, since */
    pthread_t keeper;
    pthread_cond_t keeper_cond; /* a connection broke, or stop: wakes the keeper */
    bool keeper_running;
    pbuf *bufs;
    pbuf *free_list;           /* under lock */
    void *mem;
    size_t mem_len;
    _Atomic(pslot *) slots;
    pthread_t flusher;
    bool flusher_running;
    bool flusher_stop;         /* under lock: the flusher ends */
    bool stopping;             /* under lock: closing; the keeper ends, readers see EOF */
    atomic_int failed;         /* sticky status of a fatal error (0 = fine) */
    char fail_msg[256];        /* under lock */
};

/* pubconn.c */
/* Connect (or reconnect), handshake, read HELLO_OK, start the ACK reader
 * and (single mode) resend every unacked batch from the server's next
 * sequence. Caller holds c->send_lock. The first connect of a connection
 * is tried once; a reconnect is retried until opt.reconnect_ms passes.
 * Failure is fatal for the publisher (pub_set_failed). */
int pconn_connect(pconn *c);
/* Cluster mode, the keeper: one reconnect attempt of a broken c; on
 * failure the next attempt is due after a growing backoff. Caller holds
 * c->send_lock. Non-retryable failures are fatal. */
int pconn_reconnect(pconn *c);
/* Seal b and send it on c (compressing when it pays). Caller holds
 * c->send_lock. b belongs to the publisher from here: it returns to the
 * free list when acknowledged. In cluster mode a failure does not fail
 * the call: b (and c's other unacknowledged batches) become orphans for
 * pub_resend_orphans. */
int pconn_send(pconn *c, pbuf *b);
/* Cluster mode: send orphan b again on c (same sequence, same bytes).
 * Caller holds c->send_lock. On failure b is an orphan again. */
int pconn_resend(pconn *c, pbuf *b);
/* Cluster mode: mark c broken, shut its socket down and move its
 * unacknowledged batches to the orphans. Returns how many moved, or -1
 * when c was broken already. Takes p->lock. */
int pconn_break(pconn *c);
/* Stop the reader and close the socket (close path). */
void pconn_shutdown(pconn *c);
/* Read completions of zero-copy sends (MSG_ERRQUEUE) and release what
 * they free. Caller holds c->send_lock (the fd may change otherwise);
 * takes p->lock. */
void pconn_drain_zerocopy(pconn *c);
/* Move buffers at the head of c's unacked queue that are acknowledged
 * (or need no ACK) and have no zero-copy send pending to the free list.
 * Caller holds p->lock. */
void pconn_release_done(pconn *c);

/* pubroute.c */
/* The connection for the next batch: the fewest unacknowledged bytes,
 * equal ones in rotating order. Cluster mode: only live ones, waiting
 * for one (NULL once the publisher failed). Takes p->lock. */
pconn *pub_pick_conn(pier_publisher *p);
/* Cluster mode: send every orphan on a live connection (returns when
 * none is left or no connection is live). Caller holds no send_lock. */
void pub_resend_orphans(pier_publisher *p);
/* Cluster mode: start / stop the keeper thread (reconnects broken
 * connections, resends orphans, fails the publisher after reconnect_ms
 * with batches waiting and no live connection). */
int pub_start_keeper(pier_publisher *p);
void pub_stop_keeper(pier_publisher *p);
/* Wait up to ms milliseconds on cond (with p->lock, which the caller
 * holds). */
void pub_wait_on(pier_publisher *p, pthread_cond_t *cond, unsigned ms);
/* Wait up to ms milliseconds on p->cond. Caller holds p->lock. */
void pub_wait(pier_publisher *p, unsigned ms);

/* publisher.c */
/* Record a fatal error: every later call fails with PIER_E_CLOSED and
 * this text. Returns status. Caller must not hold p->lock. */
int pub_set_failed(pier_publisher *p, int status, const char *msg);
/* Log one line through the user's callback or stderr. */
void pub_log(pier_publisher *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
