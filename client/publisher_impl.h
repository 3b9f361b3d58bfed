/* publisher_impl.h - the publisher's data structures, shared by
 * publisher.c (API, per-thread batches, flusher) and pubconn.c (one
 * connection: handshake, send, ACK reader, reconnect and resend).
 *
 * Locks, always taken in this order (never the reverse):
 *   slot->lock      one per publishing thread: its current batch
 *   conn->send_lock one per connection: serialises writers and reconnects
 *   p->lock         short sections: free list, unacked queues, stats
 * The ACK reader threads take only p->lock. */
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
    uint64_t seq;              /* batch sequence once sent */
    uint8_t hdr[PB_HEADER_LEN];
    const uint8_t *payload;    /* raw or wire */
    uint32_t payload_len;
    uint32_t zc_id;            /* last zero-copy send id of this buffer */
    bool zc_pending;
    struct pbuf *next;         /* free list or unacked queue */
} pbuf;

typedef struct pier_publisher pier_publisher;

typedef struct pconn {
    pier_publisher *p;
    int index;
    char host[256];
    int port;
    uint64_t client_id;
    pthread_mutex_t send_lock;
    int fd;                    /* -1 before the first connect */
    uint64_t next_seq;         /* under send_lock */
    uint32_t max_payload;      /* from HELLO_OK */
    pc_adapt adapt;            /* under send_lock */
    pc_ctx cctx;               /* under send_lock */
    pthread_t reader;
    bool reader_running;
    bool zc_on;                /* SO_ZEROCOPY accepted by the socket */
    bool connected_once;       /* under send_lock: a later connect is a reconnect */
    uint32_t zc_next_id;       /* under send_lock */
    /* under p->lock: */
    pbuf *unacked_head, *unacked_tail;
    uint64_t acked_seq;
    bool broken;               /* I/O failed: reconnect and resend before the next send */
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
    atomic_uint rr;            /* round-robin over conns */
    pbuf *bufs;
    pbuf *free_list;           /* under lock */
    void *mem;
    size_t mem_len;
    _Atomic(pslot *) slots;
    pthread_t flusher;
    bool flusher_running;
    bool stopping;             /* under lock */
    atomic_int failed;         /* sticky status of a fatal error (0 = fine) */
    char fail_msg[256];        /* under lock */
};

/* pubconn.c */
/* Connect (or reconnect), handshake, read HELLO_OK, start the ACK reader
 * and resend every unacked batch from the server's next sequence.
 * Caller holds c->send_lock. Retries until opt.reconnect_ms passes. */
int pconn_connect(pconn *c);
/* Seal b and send it on c (compressing when it pays). Caller holds
 * c->send_lock. b belongs to c from here: it returns to the free list when
 * acknowledged. */
int pconn_send(pconn *c, pbuf *b);
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

/* publisher.c */
/* Record a fatal error: every later call fails with PIER_E_CLOSED and
 * this text. Returns status. Caller must not hold p->lock. */
int pub_set_failed(pier_publisher *p, int status, const char *msg);
/* Log one line through the user's callback or stderr. */
void pub_log(pier_publisher *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
