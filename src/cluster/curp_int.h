/* curp_int.h - what the curp*.c files share among themselves (curp.h is
 * what they offer cluster.c). Cluster thread only, except where said. */
#ifndef PIER_CLUSTER_CURP_INT_H
#define PIER_CLUSTER_CURP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define WITNESS_SETS_LOG2 12 /* 4096 sets of 4 ways: RAMCloud's shape */
#define WITNESS_WAYS 4
#define STALE_ROUNDS 200     /* gc rounds (10 ms ticks) before a record is stale */

/* ---- curp.c: shared helpers and routing ---- */

/* *dst = a malloc'd copy of src[0, n) (the old *dst freed). */
void curp_copy_bytes(char **dst, size_t *dlen, const void *src, size_t n);
void curp_req_free(cl_req *r);
/* Hand a completion to r's connection (nothing when r has none). A
 * CDONE_REPLY answers it: nothing more goes to it. */
void curp_deliver(cluster *cl, cl_req *r, int kind, uint64_t index, const char *bytes,
                  size_t len);
/* Answer r with "-<line>". */
void curp_deliver_error(cluster *cl, cl_req *r, const char *line);
/* Does the committed entry at index hold this request? */
int curp_entry_is(cluster *cl, uint64_t index, const cl_req *r);
/* Queue r until a leader serves (order kept); curp_unpark routes them again. */
void curp_park(cluster *cl, cl_req *r);
void curp_unpark(cluster *cl);
/* A request that arrived from another node, as this node's own (malloc'd). */
cl_req *curp_request_from(const msg_request *m);

/* ---- curp_exec.c: the leader ---- */

typedef struct exec_result {
    char *bytes;         /* the reply (malloc'd) */
    size_t len;
    uint64_t index;      /* the entry written (0: none) */
    uint64_t wait_index; /* the reply may leave once commit >= this */
    int need_lease;      /* ... and the lease is valid (reads) */
    int conflict;        /* a key had an unsynced write: no fast path */
} exec_result;

/* Append an entry for the running command (or, r NULL, for a write no
 * client asked for) under log_lock; its index, or 0 when this node is no
 * longer the leader. Caller holds the keys' shard locks (any thread). */
uint64_t curp_append_entry(cluster *cl, const cl_req *r, const entry_builder *records,
                           const char *rep, size_t rep_len);
/* Execute r on the leader. recorded: witnesses may hold a record of it
 * (a proxy's request, PIER.EXEC, a replayed or stale record). */
void curp_leader_exec(cluster *cl, cl_req *r, int recorded, exec_result *x);
/* Execute a request nobody waits for (a replayed or stale record). */
void curp_exec_orphan(cluster *cl, uint64_t cid, uint64_t seq, int nkeys, const uint64_t *keys,
                      const char *blob, size_t len);
/* Held replies: w waits for the commit (and the lease) / for the AOF write. */
void curp_push_wait(cluster *cl, cl_wait *w);
void curp_process_waits(cluster *cl);
void curp_push_durable(cluster *cl, cl_wait *w);
void curp_process_durable(cluster *cl);
int curp_lease_ok(cluster *cl);
/* A request of this node's own connections / forwarded by from's proxy. */
void curp_serve_local(cluster *cl, cl_req *r);
void curp_serve_forwarded(cluster *cl, cl_req *r, int from, uint64_t req_id);
void curp_exec_step_down(cluster *cl, cl_req **own_head, cl_req **own_tail);

/* ---- curp_proxy.c: a follower as the CURP client ---- */

void curp_proxy_send(cluster *cl, cl_req *r);
/* Decide what a proxied request still needs (complete it if nothing). */
void curp_proxy_check(cluster *cl, cl_req *r);
cl_req *curp_inflight_find(cluster *cl, uint64_t req_id);
/* Put the proxied requests back in the parked queue, in the order first
 * sent, behind extra_head..extra_tail and ahead of those parked since. */
void curp_proxy_requeue(cluster *cl, cl_req *extra_head, cl_req *extra_tail);
void curp_proxy_expire(cluster *cl, int64_t now);

/* ---- curp_direct.c: PIER.EXEC / PIER.RECORD / PIER.SYNC ---- */

void curp_direct_exec(cluster *cl, cl_req *r);
void curp_direct_record(cluster *cl, cl_req *r);
void curp_direct_sync(cluster *cl, cl_req *r);
/* Answer the PIER.SYNC requests whose entry committed or whose time ran out. */
void curp_process_syncs(cluster *cl, int64_t now);

/* ---- curp_witness.c: this node's witness ---- */

/* Record r in this node's witness and its AOF: WITNESS_ (its answer may
 * leave only after the AOF write: curp_queue_record_ack). */
int curp_witness_accept(cluster *cl, uint64_t term, const cl_req *r);
/* An accept sent (to = this node: counted) after the AOF write. */
void curp_queue_record_ack(cluster *cl, int to, uint64_t req_id, int st);
/* raft_events: the AOF write is done; an entry was applied; an APPEND. */
void curp_aof_written(cluster *cl, int ok);
void curp_entry_applied(cluster *cl, const entry_view *v);
void curp_heard_leader(cluster *cl, uint64_t term, uint64_t commit, uint64_t leader_last);
void curp_encode_record(wbuf *w, const witness_rec *rec);
void curp_witness_tick(cluster *cl);
/* A decimal u64 argument of an AOF record: 0, or -1 when malformed. */
int curp_arg_u64(const cmd_arg *a, uint64_t *out);

/* ---- curp_recover.c: a new leader's recovery ---- */

void curp_start_recovery(cluster *cl);
/* Finish the recovery if it may (the no-op committed, enough witnesses). */
void curp_check_recovery(cluster *cl);
void curp_send_collect(cluster *cl);
void curp_recover_free(cluster *cl);

#endif
