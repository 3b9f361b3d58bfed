/* pier.h - libpier, the C client library of pier. The one public header.
 *
 * Four parts:
 *   - KV over RESP: a small blocking client for GET/SET/DEL/INCR.
 *   - Cluster: GET/SET/DEL/INCR against a pier cluster, strong ones over
 *     CURP (1 round trip when the witnesses accept), weak ones on the
 *     home node.
 *   - Publisher: appends messages to a stream (a "topic") over the binary
 *     batch protocol (docs/PROTOCOL.md, version 1), batching, compressing
 *     and striping them over several connections and nodes (a pier
 *     cluster's nodes: one publisher, ordered by the cluster).
 *   - Subscriber: reads a stream over the batch protocol, one batch of
 *     messages per call.
 *
 * Errors: every function that can fail returns an int status, PIER_OK (0)
 * on success or one of enum pier_status. pier_strerror(status) names the
 * code; pier_last_error() gives the detail of the most recent failure in
 * the calling thread (thread-local, so it is safe with many threads).
 * No function aborts on bad input; NULL handles and bad options give
 * PIER_E_INVALID.
 *
 * Thread-safety: a pier_publisher may be used by any number of threads at
 * once (pier_publish, pier_flush, pier_publisher_stats); pier_publisher_close
 * must be called once, after the other threads stopped using it. A pier_kv,
 * a pier_cluster and a pier_subscriber belong to one thread at a time.
 *
 * Link: build/libpier.a plus `pkg-config --libs liblz4 libzstd` and
 * -pthread. */
#ifndef PIER_CLIENT_H
#define PIER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pier_status {
    PIER_OK = 0,
    PIER_E_INVALID = 1,      /* bad argument or option */
    PIER_E_NOMEM = 2,        /* allocation or mmap failed */
    PIER_E_CONNECT = 3,      /* resolve or connect failed */
    PIER_E_IO = 4,           /* socket error or connection closed */
    PIER_E_PROTOCOL = 5,     /* the peer sent bytes that break the protocol */
    PIER_E_SERVER = 6,       /* the server answered with an error (ERROR frame, -ERR) */
    PIER_E_AUTH = 7,         /* authentication failed */
    PIER_E_NOT_FOUND = 8,    /* KV: no such key */
    PIER_E_TOO_LARGE = 9,    /* a message does not fit in one batch */
    PIER_E_CODEC = 10,       /* compression or decompression failed */
    PIER_E_TIMEOUT = 11,     /* no data within the configured time */
    PIER_E_CLOSED = 12,      /* the publisher failed earlier and accepts nothing more */
    PIER_E_WRONG_TYPE = 13   /* KV: reply of an unexpected type */
};

/* Static name of a status code ("invalid argument", ...); never NULL. */
const char *pier_strerror(int status);
/* Detail of the last failure in this thread ("" if none). The pointer
 * stays valid until the next libpier call in this thread. */
const char *pier_last_error(void);

/* ------------------------------------------------------------------ KV */

typedef struct pier_kv pier_kv;

/* Connect to a RESP server; password may be NULL (no AUTH). On success
 * *out owns the connection; free it with pier_kv_close. */
int pier_kv_connect(pier_kv **out, const char *host, int port, const char *password);
/* GET: on PIER_OK *value is a malloc'd copy the caller frees (with a NUL
 * byte after *len bytes, not counted); PIER_E_NOT_FOUND when absent. */
int pier_kv_get(pier_kv *kv, const char *key, char **value, size_t *len);
/* SET key value; ttl_ms > 0 adds PX ttl_ms. */
int pier_kv_set(pier_kv *kv, const char *key, const void *value, size_t len, long long ttl_ms);
/* DEL key; *deleted (may be NULL) gets the number of keys removed. */
int pier_kv_del(pier_kv *kv, const char *key, long long *deleted);
/* INCR key; *result (may be NULL) gets the new value. */
int pier_kv_incr(pier_kv *kv, const char *key, long long *result);
/* Close the connection and free kv (NULL is ignored). */
void pier_kv_close(pier_kv *kv);

/* ------------------------------------------------------------- cluster */

/* A client of a pier cluster (3 or 5 nodes) that speaks CURP itself
 * (PIER.EXEC / PIER.RECORD / PIER.SYNC, docs/PROTOCOL.md): a strong write
 * goes to the leader and, in parallel, as a record to every other node's
 * witness, and completes in one round trip when a super-quorum of
 * witnesses (f + ceil(f/2) of the 2f others) accepted it at the leader's
 * term; otherwise one PIER.SYNC to the leader completes it (2 round
 * trips). Each request carries the client id (64 random bits) and a
 * sequence number kept across retries, so a retry after a failover is
 * applied at most once.
 *
 * Failover: a NOTLEADER redirect is followed; a leader that fails or does
 * not answer within the request timeout (1 s) is re-discovered through
 * INFO cluster on every node, and the request is retried until the
 * deadline (5 s), then PIER_E_TIMEOUT. A write that failed that way may
 * or may not have been applied (exactly once if it was).
 *
 * Weak ops go to the home node on a connection in PIER.CONSISTENCY WEAK
 * (the session: read-your-writes and monotonic reads on that connection).
 * If that connection breaks, the call fails and the next one opens a new
 * connection, which is a new session.
 *
 * A pier_cluster belongs to one thread at a time. */
typedef struct pier_cluster pier_cluster;

/* nodes: "host:port,host:port,..." (every member, 1..16); home: index in
 * that list of the node weak ops go to (the nearest replica); password
 * may be NULL. PIER_E_CONNECT when no node answers INFO cluster. */
int pier_cluster_connect(pier_cluster **out, const char *nodes, int home, const char *password);
/* Per-request timeout (default 1000 ms: a node silent that long counts as
 * a reject, a leader as failed) and overall deadline of a strong op
 * including failovers (default 5000 ms). 0 leaves a value unchanged. */
int pier_cluster_set_timeouts(pier_cluster *c, unsigned request_ms, unsigned deadline_ms);
/* Strong (linearizable) ops. Values as in the KV part: *val is malloc'd
 * (NUL after *len bytes), the caller frees it; PIER_E_NOT_FOUND when the
 * key is absent; a command error (INCR of a non-number) is PIER_E_SERVER. */
int pier_cluster_set(pier_cluster *c, const char *key, const void *val, size_t len);
int pier_cluster_get(pier_cluster *c, const char *key, char **val, size_t *len);
int pier_cluster_incr(pier_cluster *c, const char *key, long long *result);
int pier_cluster_del(pier_cluster *c, const char *key, long long *deleted);
/* Weak (session) ops on the home node: answered by that node alone. */
int pier_cluster_weak_set(pier_cluster *c, const char *key, const void *val, size_t len);
int pier_cluster_weak_get(pier_cluster *c, const char *key, char **val, size_t *len);

typedef struct pier_cluster_stats {
    uint64_t fast;       /* strong writes complete in 1 RTT (super-quorum of records, or
                            nothing to sync: index 0) */
    uint64_t slow;       /* strong writes that needed the commit (PIER.SYNC, or the leader
                            answered synced=1 for a new entry: a conflict) */
    uint64_t retries;    /* requests sent again (redirect, failover, LOST, TRYAGAIN) */
    uint64_t failovers;  /* times the client moved to a different leader */
} pier_cluster_stats;

void pier_cluster_stats_get(pier_cluster *c, pier_cluster_stats *st);
/* Index in the node list of the leader the client uses (-1: unknown). */
int pier_cluster_leader(pier_cluster *c);
/* Close every connection and free c (NULL is ignored). */
void pier_cluster_close(pier_cluster *c);

/* ----------------------------------------------------------- publisher */

enum pier_codec { PIER_CODEC_NONE = 0, PIER_CODEC_LZ4 = 1, PIER_CODEC_ZSTD = 2 };

/* Where log lines of the library go ("connection ... lost; will
 * reconnect", and with verbose "huge pages unavailable"). NULL in the
 * options means stderr. */
typedef void (*pier_log_fn)(void *ctx, const char *line);

/* Flags of an acknowledgement (pier_ack_fn; the ACK frame's flags). */
enum {
    PIER_ACK_DUPLICATE = 1, /* the batch had been stored before (a resend) */
    PIER_ACK_SINGLE = 2,    /* it acknowledges exactly one batch (cluster mode) */
    PIER_ACK_UNORDERED = 4, /* stored, not ordered yet (cluster mode, order level 0/1) */
    PIER_ACK_SKIPPED = 16   /* NOT stored: the cluster ordered the publisher's later
                               batches without it (it came too late); logged, counted */
};

/* Called once per ACK frame, from a connection's ACK reader thread, after
 * the batches it acknowledges were released: seq is the frame's sequence
 * (the batch's, or with cumulative ACKs the highest acknowledged),
 * messages the number of messages it newly acknowledged (0 for a late
 * ACK of a batch already acknowledged), flags PIER_ACK_*. Must be quick
 * and thread-safe, and must not call the publisher's functions. */
typedef void (*pier_ack_fn)(void *ctx, uint64_t seq, uint32_t messages, unsigned flags);

typedef struct pier_publisher_options {
    const char *topic;          /* stream key, 1..1024 bytes (required) */
    const char *const *nodes;   /* "host:port" of batch ports (required) */
    int node_count;             /* >= 1 */
    int conns_per_node;         /* connections per node (1) */
    size_t batch_bytes;         /* raw payload per batch (2 MiB) */
    unsigned linger_us;         /* flush a partial batch this old (1000; 0 = only when full
                                   or on pier_flush) */
    int ack_level;              /* 0 none, 1 stored (1), 2 stored on `replication` nodes and
                                   ordered (cluster mode) */
    int order_level;            /* 0 none, 1 per-publisher FIFO (1), 2 total order */
    int replication;            /* replication factor asked for: 0 = the topic's (0); more
                                   than 1 needs cluster mode */
    enum pier_codec codec;      /* PIER_CODEC_LZ4 */
    size_t compress_min_bytes;  /* batches below this go raw (64 KiB) */
    int adaptive;               /* 1 = compress only when it pays (default); 0 = always */
    unsigned reprobe_every;     /* batches between probes of incompressible data (64) */
    uint64_t client_id;         /* 0 = random non-zero */
    int sndbuf, rcvbuf;         /* SO_SNDBUF / SO_RCVBUF bytes (0 = system default) */
    int nodelay;                /* TCP_NODELAY (1) */
    size_t zerocopy_min_bytes;  /* MSG_ZEROCOPY for sends >= this (0 = off, the default) */
    int buffers;                /* batch buffers in the pool (0 = 4 per connection + 8) */
    const char *password;       /* requirepass token (NULL = none) */
    unsigned reconnect_ms;      /* single node: give up reconnecting after this long; cluster:
                                   fail after this long with no node reachable (5000) */
    pier_log_fn log;            /* NULL = stderr */
    void *log_ctx;
    int verbose;                /* 1 = also informational lines, e.g. the huge-page
                                   fallback (0: warnings only) */
    pier_ack_fn on_ack;         /* NULL = none */
    void *on_ack_ctx;
} pier_publisher_options;

/* Defaults for every field (the values in parentheses above); call it
 * first, then set topic, nodes and what differs. */
void pier_publisher_options_init(pier_publisher_options *o);

typedef struct pier_publisher pier_publisher;

/* Connects to every node (handshake, HELLO_OK) and allocates the buffer
 * pool once. The first connection's HELLO_OK says whether the nodes form
 * a cluster:
 *   - single nodes: each connection gets its own client id (client_id +
 *     index) because the server keeps one batch sequence per client id;
 *     several nodes are independent servers, each storing its share.
 *   - cluster mode: the publisher is ONE publisher (one client id, one
 *     sequence space) over all its connections (handshake flag STRIPED);
 *     a batch goes to the connection with the fewest unacknowledged bytes,
 *     the cluster orders them (order_level), and a connection that fails
 *     has its unacknowledged batches resent on the others at once (same
 *     client id and sequence: the cluster drops duplicates) while it is
 *     reconnected in the background.
 * Every node must be of one kind (PIER_E_INVALID otherwise). Fails at once
 * when a node cannot be reached (PIER_E_CONNECT), is not a pier batch
 * port, e.g. a RESP port (PIER_E_PROTOCOL, "... is not a pier batch
 * port ..."), or refuses the levels (PIER_E_SERVER, "server error 8:
 * ..."). A connection lost later is retried (see reconnect_ms). */
int pier_publisher_open(pier_publisher **out, const pier_publisher_options *o);
/* Copy one message into the calling thread's current batch. May send a
 * full batch, and blocks while every buffer waits for an ACK. */
int pier_publish(pier_publisher *p, const void *msg, size_t len);
/* Send every partial batch (of all threads) and, with ack level >= 1,
 * wait until every batch sent so far is acknowledged (in cluster mode
 * also the ones being resent after a failure; fails after reconnect_ms
 * with no node reachable). */
int pier_flush(pier_publisher *p);
/* Flush, wait for every ACK (ack level >= 1), stop the threads and free
 * p. Returns PIER_OK only if every published message was acknowledged
 * (or sent, at ack level 0); p is freed either way. */
int pier_publisher_close(pier_publisher *p);
/* The cluster's size from HELLO_OK in cluster mode, 0 with single nodes. */
int pier_publisher_cluster_nodes(pier_publisher *p);

typedef struct pier_conn_stats {
    char node[64];            /* "host:port" */
    int node_index;           /* in the options' nodes */
    int connected;            /* connections up now (0/1; a node's sum in node stats) */
    uint64_t client_id;
    uint64_t batches;         /* batches sent (resends included) */
    uint64_t messages;
    uint64_t raw_bytes;       /* payload bytes before compression */
    uint64_t wire_bytes;      /* payload bytes sent (after compression) */
    uint64_t compressed_batches;
    uint64_t compress_ns;     /* time spent compressing */
    uint64_t send_ns;         /* time spent in writev/sendmsg */
    uint64_t acked_batches;   /* distinct sequences acknowledged (ACK or HELLO_OK) */
    uint64_t duplicate_acks;  /* ACKs with the DUPLICATE flag */
    uint64_t skipped_batches; /* batches the cluster skipped: not in the log */
    uint64_t resent_batches;  /* batches sent here again after another connection failed */
    uint64_t outstanding_bytes; /* sent and not acknowledged yet (now) */
    uint64_t reconnects;
    uint64_t zerocopy_sends, zerocopy_copied; /* copied: the kernel fell back to a copy */
    double ratio;             /* wire_bytes / raw_bytes (1.0 when nothing sent) */
} pier_conn_stats;

/* Per connection: fill up to max entries of out; *count gets the number
 * of connections. */
int pier_publisher_stats(pier_publisher *p, pier_conn_stats *out, int max, int *count);
/* The same summed per node (in the order of the options' nodes; client_id
 * is its first connection's): *count gets the number of nodes. */
int pier_publisher_node_stats(pier_publisher *p, pier_conn_stats *out, int max, int *count);
/* Add st's counters to sum (e.g. one node over several publishers) and
 * recompute sum's ratio; node, node_index and client_id stay sum's. */
void pier_conn_stats_add(pier_conn_stats *sum, const pier_conn_stats *st);

/* ---------------------------------------------------------- subscriber */

enum pier_msg_kind { PIER_KIND_DATA = 0, PIER_KIND_FIELDS = 1 };

/* One field/value pair of a stream entry. Not NUL-terminated. */
typedef struct pier_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} pier_field;

/* One stream entry. Entries a publisher wrote (or an XADD with the single
 * field `data`) are kind PIER_KIND_DATA: data/len is that field's value.
 * Entries XADDed with other fields are kind PIER_KIND_FIELDS: data/len is
 * the entry as the server sent it (a RESP array of field/value bulk
 * strings). Either way fields[0..nfields) are the decoded pairs: one
 * {"data", value} pair for kind 0, every pair in order for kind 1. */
typedef struct pier_msg {
    uint64_t id_ms, id_seq;   /* stream entry ID */
    int kind;                 /* enum pier_msg_kind */
    const char *data;
    size_t len;
    const pier_field *fields; /* valid as long as data */
    size_t nfields;
} pier_msg;

typedef struct pier_batch {
    uint64_t seq;             /* the server's running batch count */
    size_t count;
    const pier_msg *msgs;     /* valid until the next pier_subscriber_next/close */
} pier_batch;

typedef struct pier_subscriber pier_subscriber;

/* Subscribe to topic from start ("$" new entries, "0" everything, or an ID
 * "<ms>-<seq>": entries after it). codecs: bit 0 LZ4, bit 1 zstd accepted
 * (1 << PIER_CODEC_x >> 1). password may be NULL. Fails at once when the
 * port is not a pier batch port (PIER_E_PROTOCOL). */
int pier_subscriber_open(pier_subscriber **out, const char *host, int port, const char *topic,
                         const char *start, unsigned codecs, const char *password);
/* How long one pier_subscriber_next waits (0 = block forever, the
 * default). */
int pier_subscriber_set_timeout(pier_subscriber *s, unsigned timeout_ms);
/* Block until the next batch; fills *batch. PIER_E_TIMEOUT when no
 * complete batch arrived within the timeout: the subscription stays
 * usable, and the next call goes on with any part of a batch already
 * received. Any other failure ends the subscription (every later call
 * fails; reopen it from the last ID seen). */
int pier_subscriber_next(pier_subscriber *s, pier_batch *batch);
void pier_subscriber_close(pier_subscriber *s);

#ifdef __cplusplus
}
#endif
#endif
