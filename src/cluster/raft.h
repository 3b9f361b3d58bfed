/* raft.h - the replicated log (raft.c): terms, election with pre-vote,
 * replication, commit and apply, and the log itself. Everything runs on
 * the cluster thread unless a comment says otherwise.
 *
 * Raft knows nothing of CURP: what CURP must hear about (a new leader, the
 * commit index moving, an entry applied, the AOF written) raft.c reports
 * through the raft_events table that CURP installs (cl_curp_init), and
 * CURP works the log through the functions below. */
#ifndef PIER_CLUSTER_RAFT_H
#define PIER_CLUSTER_RAFT_H

#include <stdint.h>

#include "../persist/aof.h"
#include "cluster_types.h"
#include "entry.h"
#include "msg.h"

/* What Raft tells the layer above it. Every member is called on the
 * cluster thread and must be set. */
typedef struct raft_events {
    /* The leader changed (another node, none, this node stepping down or
     * standing for election) or the term did: requests in flight to the
     * old leader start over. */
    void (*leader_changed)(cluster *cl);
    /* This node won an election (role is leader, serving 0): it recovers,
     * then serves. */
    void (*became_leader)(cluster *cl);
    /* The commit index advanced (and, on a follower, was applied). */
    void (*commit_advanced)(cluster *cl);
    /* An entry's records were executed into this node's keyspace: its
     * decoded view, valid during the call. */
    void (*entry_applied)(cluster *cl, const entry_view *v);
    /* The log's tail was dropped (a follower overwritten by its leader). */
    void (*log_truncated)(cluster *cl);
    /* An APPEND of the leader of `term` arrived: its commit and last index. */
    void (*leader_heard)(cluster *cl, uint64_t term, uint64_t commit, uint64_t leader_last);
    /* Nonzero when CURP has AOF records or answers waiting for the AOF
     * write: the next before-sleep writes the AOF and calls aof_written. */
    int (*aof_pending)(cluster *cl);
    /* The before-sleep AOF write is done (ok) or failed (0). */
    void (*aof_written)(cluster *cl, int ok);
} raft_events;

void raft_set_events(cluster *cl, const raft_events *ev);

int64_t cl_now_us(void);
int cl_majority(const cluster *cl);
int cl_node_idx(const cluster *cl, int id);

/* ---- the log ---- */

/* The entry at index, NULL when not held in memory (trimmed, or past the
 * end); the term of index (also of first_index - 1), 0 when unknown. */
entry *cl_entry_at(cluster *cl, uint64_t index);
uint64_t cl_term_at(cluster *cl, uint64_t index);
/* Append a finished entry (its index must be last + 1) to the log and the
 * AOF. Caller holds log_lock (any thread: a leader loop's expiry DEL). */
void cl_log_append_locked(cluster *cl, entry *e);
/* Start-up: an entry read from the AOF at pos goes back into the log. */
void cl_log_loaded(cluster *cl, entry *e, aof_pos pos);
/* Drop entries from index on (caller holds log_lock). */
void cl_log_drop_tail_locked(cluster *cl, uint64_t index);
/* Free old applied entries. */
void cl_log_trim(cluster *cl);
/* Log the term and vote, and make them durable: 0, or -1 when the AOF
 * cannot be written (then the vote must not be granted). */
int cl_persist_vote(cluster *cl);
/* Write the AOF's pending bytes (fsync with appendfsync always): what a
 * node promises before it answers. Returns 0, or -1 when the write failed. */
int cl_sync_aof(cluster *cl);

/* ---- roles and apply ---- */

void cl_become_follower(cluster *cl, uint64_t term, int leader);
/* Apply committed entries (follower) up to the commit index. */
void cl_apply_committed(cluster *cl);
/* Execute one entry's records into the keyspace (then entry_applied). */
void cl_apply_entry(cluster *cl, const entry *e);
/* Followers keep expired keys (only the leader's DELs remove them). */
void cl_set_keep_expired(cluster *cl, int keep);

/* ---- the cluster thread's steps and the messages Raft handles ---- */

void cl_raft_tick(cluster *cl);
/* Before the thread sleeps: the AOF write (what the leader counts and
 * what CURP's answers wait for), then the APPENDs each follower needs. */
void cl_raft_before_sleep(cluster *cl);
void cl_on_append(cluster *cl, int from, const msg_append *m);
void cl_on_append_resp(cluster *cl, int from, const msg_append_resp *m);
void cl_on_vote_req(cluster *cl, int from, const msg_vote_req *m);
void cl_on_vote_resp(cluster *cl, int from, const msg_vote_resp *m);
void cl_on_prevote_req(cluster *cl, int from, const msg_vote_req *m);
void cl_on_prevote_resp(cluster *cl, int from, const msg_vote_resp *m);

#endif
