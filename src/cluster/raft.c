/* raft.c - the replicated log: terms, election, replication, commit and
 * apply (Raft, Ongaro and Ousterhout 2014), with two changes CURP needs:
 * a leader executes every entry when it appends it (speculatively), and a
 * follower never deletes an expired key itself (the leader's DELs are in
 * the log). A deposed leader whose speculative entries the new leader
 * does not keep restarts itself from its AOF (see truncate_from). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "internal.h"
#include "msg.h"

#define APPEND_MAX_BYTES (4u << 20) /* entries per APPEND message */

int64_t cl_now_us(void) { return clock_mono_us(); }

void raft_set_events(cluster *cl, const raft_events *ev) { cl->events = *ev; }

int cl_majority(const cluster *cl) { return cl->nnodes / 2 + 1; }

int cl_node_idx(const cluster *cl, int id) {
    for (int i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].id == id) return i;
    return -1;
}

/* ---- the log ---- */

/* The in-memory log is a ring of chunks indexed by absolute index; the
 * window [first_index, last_index] never spans the whole ring (checked on
 * append), so a slot is reused only after trimming freed it. */
static entry ***chunk_slot(cluster *cl, uint64_t index) {
    return &cl->dir[((index - 1) / LOG_CHUNK) % LOG_DIR_MAX];
}

entry *cl_entry_at(cluster *cl, uint64_t index) {
    if (index == 0 || index < cl->first_index || index > atomic_load(&cl->last_index)) return NULL;
    entry **chunk = *chunk_slot(cl, index);
    return chunk ? chunk[(index - 1) % LOG_CHUNK] : NULL;
}

uint64_t cl_term_at(cluster *cl, uint64_t index) {
    if (index + 1 == cl->first_index) return cl->trimmed_term;
    entry *e = cl_entry_at(cl, index);
    return e ? e->term : 0;
}

/* Put e in the in-memory log at its index and note where its AOF record
 * is (catchup.h): at pos, or, with to_aof, appended to the AOF now.
 * Caller holds log_lock. */
static void log_put_locked(cluster *cl, entry *e, aof *to_aof, aof_pos pos) {
    if ((e->index - cl->first_index) / LOG_CHUNK >= LOG_DIR_MAX - 1) {
        /* 268M entries in memory: trimming (cl_log_trim) keeps the window
         * far below this; refusing to go on beats corrupting memory. */
        log_warn("cluster: the in-memory log is full (%llu entries); exiting",
                 (unsigned long long)(e->index - cl->first_index));
        abort();
    }
    entry ***slot = chunk_slot(cl, e->index);
    entry **chunk = *slot;
    if (!chunk) {
        chunk = xcalloc(LOG_CHUNK, sizeof *chunk);
        *slot = chunk;
    }
    chunk[(e->index - 1) % LOG_CHUNK] = e;
    cl->last_term = e->term;
    cl->log_bytes += e->len;
    if (to_aof) pos = aof_tail_pos(to_aof, aof_append_raw(to_aof, e->data, e->len) - e->len);
    catchup_note_entry(cl->catchup, e->index, pos);
    atomic_store(&cl->last_index, e->index);
}

void cl_log_append_locked(cluster *cl, entry *e) { log_put_locked(cl, e, cl->aof, AOF_POS_NONE); }

void cl_log_loaded(cluster *cl, entry *e, aof_pos pos) { log_put_locked(cl, e, NULL, pos); }

/* Control records (PIER.VOTE / COMMIT / TRUNCATE) in the AOF; returns
 * the AOF offset just past it (aof_append). */
static uint64_t log_control(cluster *cl, const char *name, uint64_t a, int with_b, uint64_t b) {
    if (!cl->aof) return 0;
    char na[24], nb[24];
    int la = snprintf(na, sizeof na, "%llu", (unsigned long long)a);
    int lb = snprintf(nb, sizeof nb, "%llu", (unsigned long long)b);
    cmd_arg argv[3] = {{name, strlen(name)}, {na, (size_t)la}, {nb, (size_t)lb}};
    return aof_append(cl->aof, argv[0], with_b ? 3 : 2, argv);
}

/* Make the AOF durable up to here before answering (votes, appends):
 * written to the kernel at least (a kill -9 keeps it), fsynced with
 * appendfsync always. Returns 0, or -1 when the AOF cannot be written (a
 * full disk): then nothing that depends on it may be acknowledged (the
 * AOF retries every second). */
int cl_sync_aof(cluster *cl) {
    if (!cl->aof) return 0;
    int always = CFG_GET(cl->cfg->appendfsync) == CFG_FSYNC_ALWAYS;
    return aof_flush(cl->aof, UINT64_MAX, always);
}

int cl_persist_vote(cluster *cl) {
    log_control(cl, "PIER.VOTE", cl->term, 1, (uint64_t)(cl->voted_for < 0 ? 0 : cl->voted_for));
    return cl_sync_aof(cl);
}

/* Restart this process from its AOF: its keyspace holds speculative
 * writes the new leader did not keep, and the AOF (with the TRUNCATE
 * just written) rebuilds exactly the committed state. The host restarts
 * the process in place with its whole configuration (server/restart.c). */
static void restart_from_aof(cluster *cl) {
    log_warn("cluster: this node executed entries the leader discarded; restarting from the AOF");
    cl_sync_aof(cl);
    if (cl->host && cl->host->restart) cl->host->restart(cl->host_arg);
    log_warn("cluster: no way to restart; exiting");
    _exit(1);
}

/* Drop entries from index on (a follower whose log disagrees with the
 * leader's). */
static void truncate_from(cluster *cl, uint64_t index) {
    uint64_t last = atomic_load(&cl->last_index);
    if (index > last) return;
    uint64_t end = log_control(cl, "PIER.TRUNCATE", index, 0, 0);
    if (cl->aof) catchup_note_truncate(cl->catchup, index, aof_tail_pos(cl->aof, end));
    if (cl->synced_index >= index) cl->synced_index = index - 1; /* replaced entries */
    cl->events.log_truncated(cl);
    /* executed, not applied: a deposed leader's keyspace holds its
     * speculative entries beyond the commit */
    if (index <= atomic_load(&cl->executed) || index <= atomic_load(&cl->applied))
        restart_from_aof(cl);
    pthread_mutex_lock(&cl->log_lock);
    cl_log_drop_tail_locked(cl, index);
    pthread_mutex_unlock(&cl->log_lock);
}

void cl_log_drop_tail_locked(cluster *cl, uint64_t index) {
    uint64_t last = atomic_load(&cl->last_index);
    if (index < cl->first_index) index = cl->first_index;
    for (uint64_t i = index; i <= last; i++) {
        entry **e = &(*chunk_slot(cl, i))[(i - 1) % LOG_CHUNK];
        cl->log_bytes -= (*e)->len;
        free(*e);
        *e = NULL;
    }
    if (index <= last) {
        atomic_store(&cl->last_index, index - 1);
        cl->last_term = cl_term_at(cl, index - 1);
    }
}

/* Free entries up to `upto` (all applied; the AOF keeps them). */
static void trim_to(cluster *cl, uint64_t upto) {
    if (upto < cl->first_index) return;
    pthread_mutex_lock(&cl->log_lock);
    uint64_t term = cl_term_at(cl, upto);
    for (uint64_t i = cl->first_index; i <= upto; i++) {
        entry ***slot = chunk_slot(cl, i);
        entry **e = &(*slot)[(i - 1) % LOG_CHUNK];
        cl->log_bytes -= (*e)->len;
        free(*e);
        *e = NULL;
        if (i % LOG_CHUNK == 0) { /* the chunk's last entry: the chunk is empty */
            free(*slot);
            *slot = NULL;
        }
    }
    cl->trimmed_term = term;
    cl->first_index = upto + 1;
    pthread_mutex_unlock(&cl->log_lock);
}

/* Keep the in-memory log bounded: a leader keeps what some follower still
 * lacks, a follower a margin it may need as a leader; both drop the
 * oldest applied entries beyond cluster-log-max-memory. */
void cl_log_trim(cluster *cl) {
    uint64_t applied = atomic_load(&cl->applied);
    uint64_t upto;
    if (atomic_load(&cl->role) == ROLE_LEADER) {
        upto = atomic_load(&cl->commit);
        for (int i = 0; i < cl->nnodes; i++)
            if (i != cl->self_idx && cl->peers[i].match_index < upto) upto = cl->peers[i].match_index;
    } else {
        upto = applied > LOG_KEEP_ENTRIES ? applied - LOG_KEEP_ENTRIES : 0;
    }
    size_t cap = (size_t)CFG_GET(cl->cfg->cluster_log_max_memory);
    uint64_t i = cl->first_index;
    size_t bytes = atomic_load(&cl->log_bytes);
    /* over the cap: drop applied entries down to half of it */
    while (cap && bytes > cap / 2 && i <= applied) {
        entry *e = cl_entry_at(cl, i);
        if (!e) break;
        bytes -= e->len;
        i++;
    }
    if (cap && atomic_load(&cl->log_bytes) > cap && i - 1 > upto) upto = i - 1;
    if (upto > applied) upto = applied;
    trim_to(cl, upto);
}

/* ---- apply ---- */

void cl_apply_entry(cluster *cl, const entry *e) {
    char err[128];
    if (entry_decode(e->data, e->len, &cl->view, err, sizeof err) < 0) {
        log_warn("cluster: entry %llu cannot be decoded (%s); skipped",
                 (unsigned long long)e->index, err);
        return;
    }
    entry_view *v = &cl->view;
    for (int r = 0; r < v->nrec; r++) {
        cmd_ctx c = {
            .env = &cl->apply_env,
            .sess = &cl->apply_sess,
            .out = cl->apply_out,
            .argc = v->rec_argc[r],
            .argv = &v->args[v->rec_at[r]],
            .now_ms = 0, /* nothing expires while applying: the leader's DELs do it */
        };
        cmd_execute(&c);
        reply_reset(cl->apply_out);
    }
    cl->events.entry_applied(cl, v);
}

void cl_apply_committed(cluster *cl) {
    uint64_t commit = atomic_load(&cl->commit);
    uint64_t applied = atomic_load(&cl->applied);
    while (applied < commit) {
        entry *e = cl_entry_at(cl, applied + 1);
        if (!e) break;
        /* a deposed leader executed these already (and the new leader
         * kept them: else truncate_from restarted this node) */
        if (applied + 1 > atomic_load(&cl->executed)) {
            cl_apply_entry(cl, e);
            atomic_store(&cl->executed, applied + 1);
        }
        applied++;
        atomic_store(&cl->applied, applied);
    }
}

void cl_set_keep_expired(cluster *cl, int keep) {
    cl->keep_expired = keep;
    ks_set_keep_expired(cl->ks, keep);
}

/* ---- roles ---- */

static void reset_election_timer(cluster *cl) {
    long t = (long)CFG_GET(cl->cfg->cluster_election_timeout_ms);
    cl->election_deadline_us = cl_now_us() + (t + rand() % (t > 0 ? t : 1)) * 1000;
}

void cl_become_follower(cluster *cl, uint64_t term, int leader) {
    int was = atomic_load(&cl->role);
    int old_leader = atomic_load(&cl->leader_id);
    int new_term = term > cl->term;
    if (term > cl->term) {
        cl->term = term;
        cl->voted_for = -1;
        cl_persist_vote(cl);
    }
    pthread_mutex_lock(&cl->log_lock); /* no expiry DEL appends as leader after this */
    atomic_store(&cl->role, ROLE_FOLLOWER);
    pthread_mutex_unlock(&cl->log_lock);
    atomic_store(&cl->serving, leader > 0);
    atomic_store(&cl->lease_until_us, 0);
    if (!cl->keep_expired) cl_set_keep_expired(cl, 1);
    atomic_store(&cl->leader_id, leader);
    if (was == ROLE_LEADER) log_info("cluster: stepping down in term %llu", (unsigned long long)cl->term);
    /* a new term, even with the same leader, may have replaced entries
     * proxied requests wait for: they start over */
    if (leader != old_leader || was != ROLE_FOLLOWER || new_term) cl->events.leader_changed(cl);
}

static void become_leader(cluster *cl) {
    atomic_store(&cl->role, ROLE_LEADER);
    atomic_store(&cl->leader_id, cl->self_id);
    atomic_store(&cl->serving, 0);
    atomic_fetch_add(&cl->n_elections, 1);
    cl->leader_since_us = cl_now_us();
    log_info("cluster: node %d is the leader of term %llu", cl->self_id, (unsigned long long)cl->term);
    uint64_t last = atomic_load(&cl->last_index);
    for (int i = 0; i < cl->nnodes; i++) {
        cl->peers[i].next_index = last + 1;
        cl->peers[i].match_index = 0;
        cl->peers[i].acked_sent_us = 0;
        cl->peers[i].last_send_us = 0;
        cl->peers[i].commit_sent = 0;
    }
    cl->events.became_leader(cl);
}

static void start_election(cluster *cl) {
    cl->term++;
    cl->voted_for = cl->self_id;
    if (cl_persist_vote(cl) < 0) {
        /* a vote this node cannot keep must not be cast (after a restart
         * it could vote again in this term) */
        reset_election_timer(cl);
        return;
    }
    pthread_mutex_lock(&cl->log_lock);
    atomic_store(&cl->role, ROLE_CANDIDATE);
    pthread_mutex_unlock(&cl->log_lock);
    atomic_store(&cl->serving, 0);
    int old = atomic_exchange(&cl->leader_id, 0);
    if (old) cl->events.leader_changed(cl);
    reset_election_timer(cl);
    for (int i = 0; i < cl->nnodes; i++) cl->peers[i].vote_granted = (i == cl->self_idx);
    log_verbose("cluster: node %d starts an election for term %llu", cl->self_id,
                (unsigned long long)cl->term);
    if (cl_majority(cl) == 1) {
        become_leader(cl);
        return;
    }
    msg_vote_req m = {cl->term, atomic_load(&cl->last_index), cl->last_term};
    wbuf w = {0};
    msg_vote_req_encode(&w, &m);
    cl_send_all(cl, MSG_VOTE_REQ, &w);
}

/* Pre-vote (Raft thesis 9.6): before raising its term, a node asks
 * whether a majority would vote for it. A node that was paused or cut off
 * then cannot force an election (and a leader step-down) on a cluster
 * that still has a healthy leader. */
static void start_prevote(cluster *cl) {
    reset_election_timer(cl);
    for (int i = 0; i < cl->nnodes; i++) cl->peers[i].prevote_granted = (i == cl->self_idx);
    if (cl_majority(cl) == 1) {
        start_election(cl);
        return;
    }
    msg_vote_req m = {cl->term + 1, atomic_load(&cl->last_index), cl->last_term};
    wbuf w = {0};
    msg_vote_req_encode(&w, &m);
    cl_send_all(cl, MSG_PREVOTE_REQ, &w);
}

/* ---- votes ---- */

static int hears_leader(cluster *cl) {
    long min_ms = (long)CFG_GET(cl->cfg->cluster_election_timeout_ms);
    /* Just started: a leader may exist that this node has not heard from
     * yet, and its lease counts on this node's vote staying put. */
    if (cl_now_us() - cl->boot_us < min_ms * 1000) return 1;
    if (atomic_load(&cl->role) == ROLE_LEADER)
        return atomic_load(&cl->lease_until_us) > cl_now_us();
    return atomic_load(&cl->leader_id) > 0 &&
           cl_now_us() - cl->last_leader_contact_us < min_ms * 1000;
}

static int log_up_to_date(cluster *cl, uint64_t last, uint64_t last_term) {
    return last_term > cl->last_term ||
           (last_term == cl->last_term && last >= atomic_load(&cl->last_index));
}

void cl_on_prevote_req(cluster *cl, int from, const msg_vote_req *m) {
    msg_vote_resp out = {
        .term = m->term,
        .granted = m->term > cl->term && !hears_leader(cl) &&
                   log_up_to_date(cl, m->last_index, m->last_term),
    };
    wbuf w = {0};
    msg_vote_resp_encode(&w, &out);
    cl_send(cl, from, MSG_PREVOTE_RESP, &w);
}

void cl_on_prevote_resp(cluster *cl, int from, const msg_vote_resp *m) {
    int idx = cl_node_idx(cl, from);
    if (idx < 0 || !m->granted || m->term != cl->term + 1 || atomic_load(&cl->role) == ROLE_LEADER)
        return;
    cl->peers[idx].prevote_granted = 1;
    int votes = 0;
    for (int i = 0; i < cl->nnodes; i++) votes += cl->peers[i].prevote_granted;
    if (votes >= cl_majority(cl)) {
        for (int i = 0; i < cl->nnodes; i++) cl->peers[i].prevote_granted = 0;
        start_election(cl);
    }
}

void cl_on_vote_req(cluster *cl, int from, const msg_vote_req *m) {
    uint64_t term = m->term;
    /* Stickiness (Raft section 6): while a leader is heard from, refuse to
     * disrupt it; this is also what makes the leader's read lease safe. */
    int leader_alive = hears_leader(cl);
    int granted = 0;
    if (term > cl->term && !leader_alive) cl_become_follower(cl, term, 0);
    if (term == cl->term && !leader_alive &&
        (cl->voted_for <= 0 || cl->voted_for == from)) {
        if (log_up_to_date(cl, m->last_index, m->last_term)) {
            cl->voted_for = from;
            granted = cl_persist_vote(cl) == 0; /* only a vote the disk keeps */
            reset_election_timer(cl);
        }
    }
    msg_vote_resp out = {.term = cl->term, .granted = (uint8_t)granted};
    wbuf w = {0};
    msg_vote_resp_encode(&w, &out);
    cl_send(cl, from, MSG_VOTE_RESP, &w);
}

void cl_on_vote_resp(cluster *cl, int from, const msg_vote_resp *m) {
    if (m->term > cl->term) {
        cl_become_follower(cl, m->term, 0);
        return;
    }
    if (atomic_load(&cl->role) != ROLE_CANDIDATE || m->term != cl->term || !m->granted) return;
    int idx = cl_node_idx(cl, from);
    if (idx < 0) return;
    cl->peers[idx].vote_granted = 1;
    int votes = 0;
    for (int i = 0; i < cl->nnodes; i++) votes += cl->peers[i].vote_granted;
    if (votes >= cl_majority(cl)) become_leader(cl);
}

/* ---- replication: leader side ---- */

/* The one place an APPEND is built: the entries ents[0..count) after
 * prev (of term prev_term), with the commit index, the leader's last
 * index and the send time (echoed back: the lease). Returns bus_send's
 * result. */
static int send_entries(cluster *cl, int idx, uint64_t prev, uint64_t prev_term,
                        const entry *const *ents, uint32_t count, int64_t now) {
    msg_append m = {
        .term = cl->term,
        .prev_index = prev,
        .prev_term = prev_term,
        .commit = atomic_load(&cl->commit),
        .sent_us = (uint64_t)now,
        .leader_last = atomic_load(&cl->last_index),
        .count = count,
        .ents = ents,
    };
    wbuf w = {0};
    msg_append_encode(&w, &m);
    return cl_send(cl, cl->nodes[idx].id, MSG_APPEND, &w);
}

/* ---- catch-up from the AOF ---- */

#define CATCHUP_ENTRIES 65536
#define CATCHUP_BYTES (32u << 20)
#define CATCHUP_RETRY_US (200 * 1000)

/* A follower behind the in-memory log (a node back after a long time):
 * ask the AOF reader (catchup.h) for its next entries, at most every
 * 200 ms; send_caught_up sends them when they are read. The cluster
 * thread never reads the AOF itself. */
static void send_from_aof(cluster *cl, int idx, uint64_t from, int64_t now) {
    cl_peer *pe = &cl->peers[idx];
    if (now - pe->last_scan_us < CATCHUP_RETRY_US) return;
    uint64_t lo = from > 1 ? from - 1 : 1;
    uint64_t hi = cl->first_index < lo + CATCHUP_ENTRIES ? cl->first_index : lo + CATCHUP_ENTRIES;
    int rc = catchup_request(cl->catchup, idx, cl->term, from, hi, CATCHUP_BYTES);
    if (rc == -1) return; /* its previous read is still under way */
    pe->last_scan_us = now;
    if (rc < 0)
        log_warn("cluster: node %d needs entry %llu, which this node's AOF index does not have",
                 cl->nodes[idx].id, (unsigned long long)from);
}

/* Send a finished AOF read to its follower, if the follower still needs
 * exactly that (same term, this node still its leader, its next index
 * unchanged). */
static void send_caught_up(cluster *cl, const catchup_result *r, int64_t now) {
    int idx = r->peer;
    if (r->err[0]) log_warn("cluster: catch-up of node %d: %s", cl->nodes[idx].id, r->err);
    cl_peer *pe = &cl->peers[idx];
    if (atomic_load(&cl->role) != ROLE_LEADER || r->term != cl->term ||
        pe->next_index != r->from)
        return;
    uint64_t from = r->from, skip = from - r->lo;
    /* from > 1 needs the entry before it (the APPEND's prev_term) */
    uint32_t count = r->count > skip ? r->count - (uint32_t)skip : 0;
    if (count && send_entries(cl, idx, from - 1, from > 1 ? r->ents[0]->term : 0,
                              (const entry *const *)r->ents + skip, count, now) == 0) {
        pe->next_index = from + count;
        pe->last_send_us = now;
        log_verbose("cluster: node %d catching up from the AOF: entries %llu..%llu",
                    cl->nodes[idx].id, (unsigned long long)from,
                    (unsigned long long)(from + count - 1));
    } else if (!count) {
        log_warn("cluster: node %d needs entry %llu, which this node's AOF does not have",
                 cl->nodes[idx].id, (unsigned long long)from);
    }
}

static void catchup_done(cluster *cl) {
    catchup_result *r = catchup_take(cl->catchup);
    int64_t now = cl_now_us();
    while (r) {
        catchup_result *next = r->next;
        send_caught_up(cl, r, now);
        catchup_result_free(r);
        r = next;
    }
}

/* The in-memory entries from `from` on, up to APPEND_MAX_BYTES, into the
 * cluster thread's scratch array; returns their count. */
static uint32_t collect_entries(cluster *cl, uint64_t from, uint64_t last) {
    uint32_t count = 0;
    size_t bytes = 0;
    for (uint64_t i = from; i <= last && bytes < APPEND_MAX_BYTES; i++) {
        entry *e = cl_entry_at(cl, i);
        if (!e) break;
        if (count == cl->append_cap) {
            cl->append_cap = cl->append_cap ? cl->append_cap * 2 : 256;
            cl->append_ents = xrealloc(cl->append_ents, cl->append_cap * sizeof *cl->append_ents);
        }
        cl->append_ents[count++] = e;
        bytes += e->len;
    }
    return count;
}

static void send_append(cluster *cl, int idx, int64_t now) {
    cl_peer *pe = &cl->peers[idx];
    uint64_t last = atomic_load(&cl->last_index);
    uint64_t from = pe->next_index ? pe->next_index : 1;
    if (from > last + 1) from = last + 1;
    if (from < cl->first_index) {
        /* It needs entries trimmed from memory: they are in the AOF. */
        send_from_aof(cl, idx, from, now);
        return;
    }
    uint32_t count = collect_entries(cl, from, last);
    if (send_entries(cl, idx, from - 1, cl_term_at(cl, from - 1),
                     (const entry *const *)cl->append_ents, count, now) == 0) {
        pe->next_index = from + count; /* optimistic: pipelined */
        pe->last_send_us = now;
        pe->commit_sent = atomic_load(&cl->commit);
    }
}

/* The highest index a majority holds (the leader counts what its AOF has). */
static void advance_commit(cluster *cl) {
    uint64_t m[CL_MAX_NODES];
    for (int i = 0; i < cl->nnodes; i++)
        m[i] = i == cl->self_idx ? cl->synced_index : cl->peers[i].match_index;
    /* sort descending (n <= 7) */
    for (int i = 0; i < cl->nnodes; i++)
        for (int j = i + 1; j < cl->nnodes; j++)
            if (m[j] > m[i]) {
                uint64_t t = m[i];
                m[i] = m[j];
                m[j] = t;
            }
    uint64_t n = m[cl_majority(cl) - 1];
    uint64_t commit = atomic_load(&cl->commit);
    /* Only an entry of the current term commits by counting (Raft 5.4.2). */
    if (n > commit && cl_term_at(cl, n) == cl->term) {
        atomic_store(&cl->commit, n);
        atomic_store(&cl->applied, n); /* the leader executed it already */
        cl->events.commit_advanced(cl);
    }
}

/* The lease: a majority acknowledged APPENDs sent at or after base, and
 * none of them will vote for another node within the election timeout
 * of receiving them. */
static void update_lease(cluster *cl) {
    int64_t t[CL_MAX_NODES];
    for (int i = 0; i < cl->nnodes; i++)
        t[i] = i == cl->self_idx ? cl_now_us() : cl->peers[i].acked_sent_us;
    for (int i = 0; i < cl->nnodes; i++)
        for (int j = i + 1; j < cl->nnodes; j++)
            if (t[j] > t[i]) {
                int64_t x = t[i];
                t[i] = t[j];
                t[j] = x;
            }
    int64_t base = t[cl_majority(cl) - 1];
    long ms = (long)CFG_GET(cl->cfg->cluster_election_timeout_ms);
    if (base > 0) atomic_store(&cl->lease_until_us, base + (int64_t)ms * 1000 * 3 / 4);
}

void cl_on_append_resp(cluster *cl, int from, const msg_append_resp *m) {
    if (m->term > cl->term) {
        cl_become_follower(cl, m->term, 0);
        return;
    }
    int idx = cl_node_idx(cl, from);
    if (idx < 0 || atomic_load(&cl->role) != ROLE_LEADER || m->term != cl->term) return;
    cl_peer *pe = &cl->peers[idx];
    if ((int64_t)m->sent_us > pe->acked_sent_us) pe->acked_sent_us = (int64_t)m->sent_us;
    update_lease(cl);
    if (m->ok) {
        if (m->index > pe->match_index) pe->match_index = m->index;
        if (pe->next_index < m->index + 1) pe->next_index = m->index + 1;
        advance_commit(cl);
    } else {
        /* index: the follower's hint of where its log can resume */
        pe->next_index = m->index ? m->index : 1;
        send_append(cl, idx, cl_now_us());
    }
}

/* ---- replication: follower side ---- */

static void reply_append(cluster *cl, int to, int ok, uint64_t index, uint64_t sent_us) {
    msg_append_resp m = {.term = cl->term, .ok = (uint8_t)ok, .index = index, .sent_us = sent_us};
    wbuf w = {0};
    msg_append_resp_encode(&w, &m);
    cl_send(cl, to, MSG_APPEND_RESP, &w);
}

/* Store one received entry unless the log already has it. Returns 0, or
 * -1 when the entry is malformed. */
static int store_entry(cluster *cl, const msg_entry *me) {
    uint64_t last = atomic_load(&cl->last_index);
    if (me->index <= last) {
        if (cl_term_at(cl, me->index) == me->term) return 0;
        truncate_from(cl, me->index);
        last = atomic_load(&cl->last_index);
    }
    if (me->index != last + 1 || me->len > ENTRY_MAX_BYTES) return -1;
    entry *e = entry_new(me->index, me->term, me->data, me->len);
    pthread_mutex_lock(&cl->log_lock);
    cl_log_append_locked(cl, e);
    pthread_mutex_unlock(&cl->log_lock);
    return 0;
}

/* Where the leader should resume for a follower whose log does not hold
 * prev (of prev_term): past its end, or the first index of the
 * conflicting term (but above the commit, which matches for sure). */
static uint64_t resume_hint(cluster *cl, uint64_t prev) {
    uint64_t last = atomic_load(&cl->last_index);
    if (prev > last) return last + 1;
    uint64_t t = cl_term_at(cl, prev);
    uint64_t hint = prev;
    while (hint > atomic_load(&cl->commit) + 1 && cl_term_at(cl, hint - 1) == t) hint--;
    return hint;
}

/* Store the APPEND's entries; returns the last index it covers. */
static uint64_t store_entries(cluster *cl, int from, const msg_append *m) {
    uint64_t upto = m->prev_index;
    size_t pos = 0;
    msg_entry e;
    while (msg_append_next(m, &pos, &e)) {
        if (e.index < cl->first_index) {
            upto = e.index; /* applied and trimmed here already */
            continue;
        }
        if (store_entry(cl, &e) < 0) {
            log_warn("cluster: malformed APPEND from node %d", from);
            break;
        }
        upto = e.index;
    }
    return upto;
}

void cl_on_append(cluster *cl, int from, const msg_append *m) {
    uint64_t term = m->term, prev = m->prev_index;
    if (term < cl->term) {
        reply_append(cl, from, 0, 0, m->sent_us);
        return;
    }
    if (term > cl->term || atomic_load(&cl->role) != ROLE_FOLLOWER ||
        atomic_load(&cl->leader_id) != from)
        cl_become_follower(cl, term, from);
    cl->last_leader_contact_us = cl_now_us();
    reset_election_timer(cl);
    cl->events.leader_heard(cl, term, m->commit, m->leader_last);
    uint64_t last = atomic_load(&cl->last_index);
    /* Below first_index everything is committed, hence identical. */
    int trimmed = prev + 1 < cl->first_index;
    if (!trimmed && (prev > last || cl_term_at(cl, prev) != m->prev_term)) {
        reply_append(cl, from, 0, resume_hint(cl, prev), m->sent_us);
        return;
    }
    uint64_t upto = store_entries(cl, from, m);
    if (m->commit > atomic_load(&cl->commit)) {
        uint64_t c = m->commit < upto ? m->commit : upto;
        if (c > atomic_load(&cl->commit)) {
            atomic_store(&cl->commit, c);
            cl_apply_committed(cl);
            cl->events.commit_advanced(cl);
        }
    }
    /* Acknowledge only entries the AOF holds: with a failing disk the
     * reply still says "alive" but not "stored" (the leader's match index
     * stays where the disk is), so the entries are not committed on this
     * node's word. */
    if (cl_sync_aof(cl) == 0) cl->synced_index = atomic_load(&cl->last_index);
    reply_append(cl, from, 1, upto < cl->synced_index ? upto : cl->synced_index, m->sent_us);
}

/* ---- timers ---- */

/* Followers keep their links to each other alive (the bus closes a silent
 * link), so the first RECORD after a quiet spell is not lost to a redial. */
static void ping_followers(cluster *cl, int64_t now) {
    long hb = (long)CFG_GET(cl->cfg->cluster_heartbeat_ms) * 1000;
    if (now - cl->last_ping_us < hb * 4) return;
    cl->last_ping_us = now;
    int leader = atomic_load(&cl->leader_id);
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx && cl->nodes[i].id != leader)
            cl_send(cl, cl->nodes[i].id, MSG_PING, &(wbuf){0});
}

void cl_raft_tick(cluster *cl) {
    int64_t now = cl_now_us();
    int role = atomic_load(&cl->role);
    if (role != ROLE_LEADER) {
        if (now >= cl->election_deadline_us) start_prevote(cl);
        ping_followers(cl, now);
        return;
    }
    /* Check quorum: a leader that has not heard from a majority within
     * the election timeout steps down, so its clients learn to look
     * elsewhere instead of waiting on it. A new leader gets one timeout
     * to hear from them (not one tick: under load the first answers can
     * take longer than that). */
    long ms = (long)CFG_GET(cl->cfg->cluster_election_timeout_ms);
    int heard = 1;
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx && now - cl->peers[i].acked_sent_us < ms * 1000) heard++;
    if (heard < cl_majority(cl) && cl->nnodes > 1 &&
        now - atomic_load(&cl->lease_until_us) > ms * 1000 &&
        now - cl->leader_since_us > ms * 1000) {
        cl_become_follower(cl, cl->term, 0);
        reset_election_timer(cl);
    }
}

/* Before the cluster thread sleeps: make the leader's new entries
 * durable, count them, and send what each follower is missing (or a
 * heartbeat when one is due). */
void cl_raft_before_sleep(cluster *cl) {
    catchup_done(cl);
    if (atomic_load(&cl->role) != ROLE_LEADER) {
        if (cl->commit_logged != atomic_load(&cl->commit)) {
            cl->commit_logged = atomic_load(&cl->commit);
            log_control(cl, "PIER.COMMIT", cl->commit_logged, 0, 0);
        }
        /* witness records: written before they are acknowledged */
        if (cl->events.aof_pending(cl)) cl->events.aof_written(cl, cl_sync_aof(cl) == 0);
        return;
    }
    uint64_t last = atomic_load(&cl->last_index);
    int ok = 1, pending = cl->events.aof_pending(cl);
    if (cl->synced_index < last || pending) {
        /* the leader counts (and answers on the fast path) only what its
         * AOF holds */
        ok = cl_sync_aof(cl) == 0;
        if (ok) cl->synced_index = last;
        advance_commit(cl);
    }
    if (pending) cl->events.aof_written(cl, ok);
    int64_t now = cl_now_us();
    long hb = (long)CFG_GET(cl->cfg->cluster_heartbeat_ms) * 1000;
    uint64_t commit = atomic_load(&cl->commit);
    for (int i = 0; i < cl->nnodes; i++) {
        if (i == cl->self_idx || !bus_connected(cl->bus, cl->nodes[i].id)) continue;
        cl_peer *pe = &cl->peers[i];
        if (pe->next_index <= last || pe->commit_sent < commit || now - pe->last_send_us >= hb)
            send_append(cl, i, now);
    }
    if (cl->commit_logged != commit) {
        cl->commit_logged = commit;
        log_control(cl, "PIER.COMMIT", commit, 0, 0);
    }
}
