/* curp.h - requests through the cluster (CURP, Park and Ousterhout, NSDI
 * 2019, consensus form): what cluster.c asks of the curp*.c files. They
 * sit on Raft (raft.h) and learn of leaders, commits and applied entries
 * through the raft_events they install; raft.c never includes this file.
 *
 *   curp.c          requests from the loop threads and where each goes,
 *                   the events from Raft, the tick, shared helpers
 *   curp_exec.c     the leader: speculative execution, the unsynced-key
 *                   table, the log entries of executions, replies held
 *                   for the commit or the AOF write
 *   curp_proxy.c    a follower acting as the CURP client of its connections
 *   curp_direct.c   PIER.EXEC / PIER.RECORD / PIER.SYNC from CURP clients
 *   curp_witness.c  this node as a witness: records, their AOF lines and
 *                   start-up restore, stale records, GC
 *   curp_recover.c  a new leader's recovery: COLLECT, the tally, replays;
 *                   the leadership marks
 *   curp_int.h      what these files share
 *
 * All of it runs on the cluster thread, except cluster_submit* (loop
 * threads, cluster.h) and the propagate and expire hooks (the executing
 * thread). docs/CONSISTENCY.md describes the protocol. */
#ifndef PIER_CLUSTER_CURP_H
#define PIER_CLUSTER_CURP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster_types.h"
#include "entry.h"
#include "msg.h"

/* Set up (and install the raft_events) / free CURP's state. */
void cl_curp_init(cluster *cl);
void cl_curp_free(cluster *cl);
/* Take the requests loop threads submitted and route them. */
void cl_drain_submissions(cluster *cl);
void cl_curp_tick(cluster *cl);
/* The link to the leader dropped: what was sent on it may be lost. */
void cl_on_leader_link_down(cluster *cl);

/* The messages CURP handles. */
void cl_on_forward(cluster *cl, int from, const msg_request *m);
void cl_on_forward_resp(cluster *cl, int from, const msg_forward_resp *m);
void cl_on_record(cluster *cl, int from, const msg_request *m);
void cl_on_record_resp(cluster *cl, int from, const msg_record_resp *m);
void cl_on_collect(cluster *cl, int from, const msg_collect *m);
void cl_on_collect_resp(cluster *cl, int from, const msg_collect_resp *m);
void cl_on_stale(cluster *cl, int from, const msg_record *m);
void cl_on_gc(cluster *cl, int from, const msg_gc *m);

/* Start-up (AOF replay): a logged witness record or drop, the commit
 * index reached, an entry loaded; then, once the log is
 * applied, the restored witness. */
int cl_replay_witness(cluster *cl, int argc, const cmd_arg *argv);
int cl_replay_witness_gc(cluster *cl, int argc, const cmd_arg *argv);
void cl_replay_commit(cluster *cl);
void cl_replay_entry_loaded(cluster *cl, uint64_t term, int argc, const cmd_arg *argv);
/* The log no longer holds what it held (a PIER.TRUNCATE, replayed or new). */
void cl_log_truncated(cluster *cl);
void cl_witness_restored(cluster *cl);

/* The propagate hooks of exec_env (the leader's executions build entries). */
uint64_t cl_collect_record(void *arg, cmd_arg name, int argc, const cmd_arg *argv);
void cl_finish_entry(void *arg, cmd_ctx *c);
/* The keyspace expire hook: a DEL entry on a leader, nothing elsewhere
 * (any thread). */
void cl_log_expired(void *arg, const char *key, size_t klen);

#endif
