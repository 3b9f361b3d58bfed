/* log.h - pier-bench log's shared state (bench.h lists the files):
 *
 *   log.c       options, the topic, message data, publishing, the run and
 *               its output
 *   logkill.c   --kill-leader-at: find the cluster's leader over RESP,
 *               SIGKILL it, and the ACK timeline (stall, throughput
 *               before and after)
 *   logcheck.c  --verify: a subscriber on every node checks that each
 *               sees every message exactly once, each publishing thread's
 *               messages in order, and the same sequence as the others */
#ifndef PIER_BENCH_LOG_H
#define PIER_BENCH_LOG_H

#include <stdatomic.h>

#include "bench.h"
#include "pier.h"

enum log_mode { LOG_PUBLISH, LOG_E2E, LOG_LATENCY };
enum log_pattern { PAT_RANDOM, PAT_TEXT, PAT_ZEROS };

#define POOL_BYTES (16u << 20)
#define MAX_PUBLISHERS 64
/* --verify: bytes 8..20 of a message hold the publishing thread (u32)
 * and the message's index in the run (u64); 0..8 stay latency's. */
#define VERIFY_AT 8
#define VERIFY_MIN_SIZE 20

typedef struct log_options {
    bench_common c;
    enum log_mode mode;
    bnode nodes[MAX_NODES];
    const char *node_addrs[MAX_NODES];
    int node_count;
    bnode resp[MAX_NODES];         /* RESP ports for the topic's cleanup */
    int resp_count;                /* 0: derived (batch port - 1000) */
    char nodes_str[MAX_NODES * 272], resp_str[MAX_NODES * 272];
    size_t msg_size;
    long long messages;            /* -n; 0: from --total */
    uint64_t total_bytes;
    int conns;                     /* per node */
    int threads;                   /* publishing threads */
    int publishers;                /* pier_publisher objects (client ids); thread i uses i % n */
    int ack_level;
    int order_level;
    int replication;               /* 0: the topic's */
    enum pier_codec codec;
    size_t threshold;
    int adaptive;
    enum log_pattern pattern;
    size_t batch_bytes;
    unsigned linger_us;
    size_t zerocopy;
    double rate;                   /* messages/s over all threads, 0 = unpaced */
    double kill_at;                /* --kill-leader-at seconds (0: off) */
    int verify;                    /* --verify */
    const char *topic;
    const char *cdf_path;
    int keep, verbose;
} log_options;

/* The ACKs over time (logkill.c), fed by every publisher's on_ack. */
typedef struct ack_timeline {
    pthread_mutex_t mu;
    uint64_t acked;                /* messages acknowledged so far */
    uint64_t last_ns;              /* the last ACK that acknowledged something */
    uint64_t kill_ns;              /* when the leader was killed (0: not yet / never) */
    uint64_t acked_at_kill;
    uint64_t first_after_ns;       /* the first ACK after the kill */
    uint64_t max_gap_ns;           /* the longest time without an ACK from the kill on */
    uint64_t gap_end_ns;           /*   it ended here */
    uint64_t acked_at_gap_end;     /*   with this many messages acknowledged before */
} ack_timeline;

/* What --kill-leader-at did (logkill.c). */
typedef struct kill_result {
    bool attempted, killed;
    int node;                      /* index in --nodes of the node killed (-1: none) */
    long long pid;
    char error[200];               /* why it did not happen */
} kill_result;

struct verifier;

typedef struct log_run {
    const log_options *o;
    pier_publisher *pubs[MAX_PUBLISHERS];
    int npubs;
    pier_subscriber *sub;          /* e2e and latency */
    uint8_t *pool;                 /* message bytes are taken from here */
    uint64_t msgs_total;
    _Atomic uint64_t published;    /* messages handed to pier_publish */
    _Atomic uint64_t consumed;     /* messages the subscriber got */
    _Atomic int failed;
    _Atomic int publishing_done;   /* every publisher flushed (or failed) */
    uint64_t t0, t_end;
    uint64_t t_consumed_last;
    histogram lat;                 /* subscriber thread only */
    ival iv;                       /* latency per interval (--interval) */
    uint64_t iv_last_done;         /* main thread: count at the last interval */
    bool created[MAX_NODES];       /* the topic did not exist on node i before */
    int deleted;                   /* nodes it was deleted on afterwards */
    ack_timeline acks;
    kill_result kill;
    int cluster_nodes;             /* pier_publisher_cluster_nodes (0: single nodes) */
    struct verifier *verify;       /* --verify */
} log_run;

/* log.c */
extern const char *const log_mode_names[];
/* The RESP address of node i: --resp, or the batch port - 1000. */
bnode log_resp_node(const log_options *o, int i);

/* logkill.c */
void acks_init(ack_timeline *a);
/* pier_ack_fn: ctx is the run's ack_timeline. */
void acks_on_ack(void *ctx, uint64_t seq, uint32_t messages, unsigned flags);
/* Before the run: the leader must be findable (exits with a message
 * when no node says cluster_role:leader). */
void kill_check(const log_run *r);
/* From the waiting loop: at --kill-leader-at seconds, SIGKILL the
 * leader (found again now) once. */
void kill_maybe(log_run *r, double elapsed_s);
/* Results: kill_* and the stall into rec. */
void kill_results(const log_run *r, record *rec);
/* The text lines of the kill. */
void kill_print(const log_run *r);

/* logcheck.c */
/* Open a subscriber on every node (from "$", before publishing) and start
 * their threads. Returns 0, or -1 after printing why. */
int verify_start(log_run *r);
/* Wait for the subscribers (every message seen, or 30 s without news
 * after publishing ended), then judge. Returns 1 when everything holds. */
int verify_finish(log_run *r);
/* The verdict as text lines, or as the JSON member ,"verify":{...}. */
void verify_print(const log_run *r);
void verify_json(const log_run *r);
void verify_free(log_run *r);

#endif
