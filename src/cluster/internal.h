/* internal.h - the cluster's state, shared by cluster.c (lifecycle, bus
 * dispatch, INFO), raft.c (log, election, replication, apply; its API in
 * raft.h) and the curp*.c files (requests: leader execution, the
 * follower's CURP proxy, witnesses, recovery; curp.h). Everything here is
 * owned by the cluster thread unless a field says otherwise. It includes
 * raft.h, never curp.h: Raft does not call CURP (raft_events). */
#ifndef PIER_CLUSTER_INTERNAL_H
#define PIER_CLUSTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "../net/event_loop.h"
#include "../persist/aof.h"
#include "bus.h"
#include "catchup.h"
#include "cluster_types.h"
#include "entry.h"
#include "msg.h"
#include "raft.h"
#include "rifl.h"
#include "witness.h"

#define CL_MAX_NODES 7
#define LOG_CHUNK 4096
#define LOG_DIR_MAX 65536 /* x LOG_CHUNK entries held in memory at most */
#define UNSYNCED_SLOTS 65536
#define LOG_KEEP_ENTRIES 100000 /* a follower keeps this many applied entries */

enum { ROLE_FOLLOWER = 0, ROLE_CANDIDATE = 1, ROLE_LEADER = 2 };

typedef struct cl_node {
    int id;
    char host[64];
    int port, bus_port;
} cl_node;

/* An owned copy of a list of witness records (msg_records). */
typedef struct cl_records {
    uint32_t count;
    uint8_t *body;
    size_t len;
} cl_records;

typedef struct cl_peer {
    int id;
    uint64_t next_index, match_index;
    int64_t acked_sent_us; /* send time of the newest APPEND it acknowledged this term */
    int64_t last_send_us;
    int64_t last_scan_us;  /* last catch-up request to the AOF reader (catchup.h) */
    uint64_t commit_sent;  /* commit index last told */
    int vote_granted;
    int prevote_granted;
    int collected;         /* answered COLLECT this term */
    uint64_t complete_since; /* its witness holds every record from this term on */
    uint64_t led_term, led_last; /* COLLECT: its log holds all it answered as leader of led_term, up to led_last */
    cl_records records;    /* its COLLECT answer */
} cl_peer;

/* A data command on its way through the cluster thread. */
typedef struct cl_req {
    struct cl_req *next;
    void *client;          /* completion target; NULL: none (replays, stale records) */
    uint64_t slot;
    uint64_t cid, seq;
    int kind;              /* CREQ_ */
    int proto;
    int is_write;          /* the command may write (CMD_WRITE) */
    int nkeys;             /* -1: keyspace-wide */
    uint64_t *keys;
    char *blob;            /* argv as a RESP array */
    size_t blob_len;
    /* proxy state (follower) */
    uint64_t req_id, term;
    int leader_replied, synced, accepts, rejects;
    uint64_t index;
    char *result;
    size_t result_len;
    int64_t deadline_us;
    int done;
    uint64_t aux;          /* CREQ_DIRECT_RECORD: term; CREQ_DIRECT_SYNC: index */
    int from_node;         /* a forwarded request on the leader: the proxy */
} cl_req;

/* A reply held until the commit index reaches `index` (and, for reads,
 * the lease is valid). */
typedef struct cl_wait {
    struct cl_wait *next;
    uint64_t index;
    int need_lease;
    cl_req *req;           /* local: completes req */
    int to_node;           /* forwarded: FORWARD_RESP to this node */
    uint64_t req_id;
    int unsynced;          /* a fast-path reply: sent with synced 0 */
    char *result;
    size_t result_len;
} cl_wait;

/* A witness answer held until the record it accepted is in the AOF. */
typedef struct cl_rec_ack {
    int to;                /* the proxy's node id (this node: its own witness) */
    int st;                /* WITNESS_ */
    uint64_t req_id;
} cl_rec_ack;

/* A record a new leader collected, counted over witnesses. */
typedef struct cl_collected {
    struct cl_collected *next;
    uint64_t cid, seq;
    int count;
    int nkeys;
    uint64_t keys[WITNESS_MAX_KEYS];
    char *req;
    size_t req_len;
} cl_collected;

struct cluster {
    pier_config *cfg;
    keyspace *ks;
    cmd_env *loop_env;          /* the loop threads' environment */
    cmd_env exec_env;           /* the leader's executions: propagate builds entries */
    cmd_env apply_env;          /* applying committed entries: nothing propagates */
    struct persist *ps;
    aof *aof;
    const cluster_host *host;
    void *host_arg;

    int self_id, nnodes, self_idx;
    cl_node nodes[CL_MAX_NODES];
    cl_peer peers[CL_MAX_NODES]; /* by node index; peers[self_idx] unused */
    int f;                       /* failures tolerated: (nnodes - 1) / 2 */

    raft_events events;          /* what raft.c tells CURP (set by cl_curp_init) */

    pthread_t tid;
    int started;
    ev_loop *loop;
    bus *bus;

    /* --- Raft persistent state --- */
    _Atomic uint64_t term;       /* atomic: INFO reads it */
    int voted_for;
    /* --- the log (appended under log_lock, by any thread on a leader:
     * expiry DELs come from loop threads) --- */
    pthread_mutex_t log_lock;
    entry **dir[LOG_DIR_MAX];
    uint64_t first_index;        /* the oldest entry held in memory (cluster thread writes) */
    uint64_t trimmed_term;       /* term of first_index - 1 */
    _Atomic uint64_t last_index;
    uint64_t last_term;
    _Atomic size_t log_bytes;
    /* --- volatile state, published to loop threads --- */
    _Atomic int role;
    _Atomic int leader_id;
    _Atomic int serving;
    _Atomic uint64_t commit;
    _Atomic uint64_t applied;
    _Atomic int64_t lease_until_us;
    uint64_t commit_logged;      /* last PIER.COMMIT written */
    uint64_t synced_index;       /* AOF holds entries up to here (the leader's own match; what
                                    a follower acknowledges at most) */
    int64_t election_deadline_us;
    int64_t leader_since_us;     /* when this node last became the leader */
    int64_t last_leader_contact_us;
    _Atomic uint64_t executed;   /* the keyspace holds every entry up to here */
    int keep_expired;            /* keyspace in replica expiry mode */
    /* --- CURP: a new leader's recovery, the witness's completeness and
     * its AOF lines (curp_recover.c, curp_witness.c) --- */
    uint64_t noop_index;         /* a new leader's first entry: recovery waits for its commit */
    int collect_needed;          /* a new leader still collecting witness records */
    cl_collected *collected;
    cl_records own_records;      /* this node's witness at election */
    uint64_t recovery_tp;        /* last log term at election: the previous leader's, at least */
    uint64_t collect_max_term;   /* newest record term any witness reported */
    int replay_threshold;        /* witnesses that must have seen a record to replay it */
    uint64_t boot_term;          /* the witness misses records of this term (0: none) */
    uint64_t boot_mark;          /* the leader's last index when this node came back in boot_term */
    int boot_caught_up;          /* boot_term's records it lost are all committed */
    uint64_t led_term;           /* the last term this node led (served in) */
    uint64_t lead_log_term;      /* the log holds every request this node answered as leader
                                  * of this term, and every replay before them (0: none) */
    uint64_t load_gc_upto;       /* start-up: committed entries up to here dropped their records */
    int witness_restore_failed;  /* start-up: a logged record did not fit back */
    int witness_unsynced;        /* PIER.WITNESS records appended since the last AOF write */
    cl_rec_ack *rec_acks;        /* witness answers waiting for that write */
    size_t nrec_acks, rec_acks_cap;

    /* --- unsynced writes per key hash (leader): the highest log index of
     * a write on any key hashing to the slot; clean when <= commit --- */
    _Atomic uint64_t unsynced[UNSYNCED_SLOTS];

    catchup *catchup;            /* the AOF index of the log and its reader (catch-up) */

    /* --- sending APPENDs (cluster thread): the entries of one message --- */
    const entry **append_ents;
    size_t append_cap;

    /* --- execution (cluster thread) --- */
    entry_builder eb;
    int eb_active;               /* records collected for the running command */
    cl_req *cur;                 /* the request being executed */
    session exec_sess, apply_sess;
    reply *exec_out, *apply_out;
    entry_view view;
    witness *witness;
    rifl *rifl;
    uint64_t gc_round;
    uint64_t ticks;
    int64_t boot_us, last_ping_us;

    /* --- requests --- */
    pthread_mutex_t submit_lock;
    cl_req *submit_head, *submit_tail;  /* from loop threads (submit_lock) */
    cl_req *parked_head, *parked_tail;  /* waiting for a serving leader */
    cl_req *inflight, *inflight_tail;   /* proxy: sent to the leader, in send order */
    cl_req *fwd_parked_head, *fwd_parked_tail; /* leader: forwarded while recovering */
    cl_wait *waits_head, *waits_tail;   /* leader: replies held for the commit */
    cl_wait *durable_head, *durable_tail; /* leader: fast-path replies held for the AOF write */
    cl_req *sync_waits;                 /* PIER.SYNC requests waiting for the commit */
    uint64_t next_req_id;
    uint32_t boot_nonce;
    _Atomic uint64_t next_client;

    /* --- counters (INFO) --- */
    _Atomic uint64_t n_fast, n_slow, n_leader_writes, n_weak_reads, n_weak_writes, n_forwarded;
    _Atomic uint64_t n_elections, n_stale_replayed, n_recovered;
    _Atomic int peers_connected;
    _Atomic size_t witness_records;     /* the witness's count, for INFO (cluster thread writes) */
    _Atomic int stopping;
};

/* cluster.c: send an encoded message to node `to` (or to every other
 * node) and free w. Returns bus_send's result (cl_send_all: none). */
int cl_send(cluster *cl, int to, int type, wbuf *w);
void cl_send_all(cluster *cl, int type, wbuf *w);

#endif
