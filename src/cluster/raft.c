/* raft.c - the replicated log: terms, election, replication, commit and
 * apply (Raft, Ongaro and Ousterhout 2014), with two changes CURP needs:
 * a leader executes every entry when it appends it (speculatively), and a
 * follower never deletes an expired key itself (the leader's DELs are in
 * the log). A deposed leader whose speculative entries the new leader
 * does not keep restarts itself from its AOF (see truncate_from). */
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../persist/persist.h"
#include "internal.h"
#include "wire.h"

#define APPEND_MAX_BYTES (4u << 20) /* entries per APPEND message */

int64_t cl_now_us(void) { return clock_mono_us(); }

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

void cl_log_append_locked(cluster *cl, entry *e) {
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
        chunk = calloc(LOG_CHUNK, sizeof *chunk);
        if (!chunk) abort();
        *slot = chunk;
    }
    chunk[(e->index - 1) % LOG_CHUNK] = e;
    cl->last_term = e->term;
    cl->log_bytes += e->len;
    if (cl->aof) aof_append_raw(cl->aof, e->data, e->len);
    atomic_store(&cl->last_index, e->index);
}

/* Control records (PIER.VOTE / COMMIT / TRUNCATE) in the AOF. */
static void log_control(cluster *cl, const char *name, uint64_t a, int with_b, uint64_t b) {
    if (!cl->aof) return;
    char na[24], nb[24];
    int la = snprintf(na, sizeof na, "%llu", (unsigned long long)a);
    int lb = snprintf(nb, sizeof nb, "%llu", (unsigned long long)b);
    cmd_arg argv[3] = {{name, strlen(name)}, {na, (size_t)la}, {nb, (size_t)lb}};
    aof_append(cl->aof, argv[0], with_b ? 3 : 2, argv);
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
    log_control(cl, "PIER.TRUNCATE", index, 0, 0);
    if (cl->synced_index >= index) cl->synced_index = index - 1; /* replaced entries */
    cl->lead_log_term = 0; /* as at start-up (cl_replay_truncated) */
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
    cl_entry_applied(cl, v);
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
    if (leader != old_leader || was != ROLE_FOLLOWER || new_term) cl_on_leader_changed(cl);
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
    cl_start_recovery(cl);
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
    if (old) cl_on_leader_changed(cl);
    reset_election_timer(cl);
    for (int i = 0; i < cl->nnodes; i++) cl->peers[i].vote_granted = (i == cl->self_idx);
    log_verbose("cluster: node %d starts an election for term %llu", cl->self_id,
                (unsigned long long)cl->term);
    if (cl_majority(cl) == 1) {
        become_leader(cl);
        return;
    }
    wbuf w = {0};
    wb_u64(&w, cl->term);
    wb_u64(&w, atomic_load(&cl->last_index));
    wb_u64(&w, cl->last_term);
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx) bus_send(cl->bus, cl->nodes[i].id, MSG_VOTE_REQ, w.p, w.len);
    wb_free(&w);
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
    wbuf w = {0};
    wb_u64(&w, cl->term + 1);
    wb_u64(&w, atomic_load(&cl->last_index));
    wb_u64(&w, cl->last_term);
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx) bus_send(cl->bus, cl->nodes[i].id, MSG_PREVOTE_REQ, w.p, w.len);
    wb_free(&w);
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

void cl_on_prevote_req(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf r = rb_make(p, n);
    uint64_t term = rb_u64(&r), last = rb_u64(&r), last_term = rb_u64(&r);
    if (r.bad) return;
    int granted = term > cl->term && !hears_leader(cl) && log_up_to_date(cl, last, last_term);
    wbuf w = {0};
    wb_u64(&w, term);
    wb_u8(&w, (uint8_t)granted);
    bus_send(cl->bus, from, MSG_PREVOTE_RESP, w.p, w.len);
    wb_free(&w);
}

void cl_on_prevote_resp(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf r = rb_make(p, n);
    uint64_t term = rb_u64(&r);
    int granted = rb_u8(&r);
    int idx = cl_node_idx(cl, from);
    if (r.bad || idx < 0 || !granted || term != cl->term + 1 ||
        atomic_load(&cl->role) == ROLE_LEADER)
        return;
    cl->peers[idx].prevote_granted = 1;
    int votes = 0;
    for (int i = 0; i < cl->nnodes; i++) votes += cl->peers[i].prevote_granted;
    if (votes >= cl_majority(cl)) {
        for (int i = 0; i < cl->nnodes; i++) cl->peers[i].prevote_granted = 0;
        start_election(cl);
    }
}

void cl_on_vote_req(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf r = rb_make(p, n);
    uint64_t term = rb_u64(&r), last = rb_u64(&r), last_term = rb_u64(&r);
    if (r.bad) return;
    /* Stickiness (Raft section 6): while a leader is heard from, refuse to
     * disrupt it; this is also what makes the leader's read lease safe. */
    int leader_alive = hears_leader(cl);
    int granted = 0;
    if (term > cl->term && !leader_alive) cl_become_follower(cl, term, 0);
    if (term == cl->term && !leader_alive &&
        (cl->voted_for <= 0 || cl->voted_for == from)) {
        int up_to_date = last_term > cl->last_term ||
                         (last_term == cl->last_term && last >= atomic_load(&cl->last_index));
        if (up_to_date) {
            cl->voted_for = from;
            granted = cl_persist_vote(cl) == 0; /* only a vote the disk keeps */
            reset_election_timer(cl);
        }
    }
    wbuf w = {0};
    wb_u64(&w, cl->term);
    wb_u8(&w, (uint8_t)granted);
    bus_send(cl->bus, from, MSG_VOTE_RESP, w.p, w.len);
    wb_free(&w);
}

void cl_on_vote_resp(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf r = rb_make(p, n);
    uint64_t term = rb_u64(&r);
    int granted = rb_u8(&r);
    if (r.bad) return;
    if (term > cl->term) {
        cl_become_follower(cl, term, 0);
        return;
    }
    if (atomic_load(&cl->role) != ROLE_CANDIDATE || term != cl->term || !granted) return;
    int idx = cl_node_idx(cl, from);
    if (idx < 0) return;
    cl->peers[idx].vote_granted = 1;
    int votes = 0;
    for (int i = 0; i < cl->nnodes; i++) votes += cl->peers[i].vote_granted;
    if (votes >= cl_majority(cl)) become_leader(cl);
}

/* ---- replication: leader side ---- */

static uint64_t last_index_now(cluster *cl) { return atomic_load(&cl->last_index); }

/* ---- catch-up from the AOF ---- */

#define CATCHUP_ENTRIES 65536
#define CATCHUP_BYTES (32u << 20)

typedef struct scan_ctx {
    uint64_t lo, hi; /* wanted: [lo, hi) */
    entry **found;   /* the last record of each index wins: earlier ones were truncated */
} scan_ctx;

static int scan_entry(void *arg, int argc, const cmd_arg *argv) {
    scan_ctx *s = arg;
    if (argc < 7 || argv[0].n != 10 || strncasecmp(argv[0].p, "PIER.ENTRY", 10) != 0) return 0;
    char num[24];
    if (argv[1].n == 0 || argv[1].n >= sizeof num) return 0;
    memcpy(num, argv[1].p, argv[1].n);
    num[argv[1].n] = 0;
    uint64_t index = strtoull(num, NULL, 10);
    memcpy(num, argv[2].p, argv[2].n < sizeof num ? argv[2].n : sizeof num - 1);
    num[argv[2].n < sizeof num ? argv[2].n : sizeof num - 1] = 0;
    if (index < s->lo || index >= s->hi) return 0;
    entry *e = entry_from_argv(index, strtoull(num, NULL, 10), argc, argv);
    free(s->found[index - s->lo]);
    s->found[index - s->lo] = e;
    return 0;
}

/* A follower behind the in-memory log (a node back after a long time):
 * read its entries back from this node's AOF, one batch per call. Rare,
 * and it blocks this thread for the scan, so at most every 200 ms. */
static void send_from_aof(cluster *cl, int idx, uint64_t from, int64_t now) {
    cl_peer *pe = &cl->peers[idx];
    if (now - pe->last_scan_us < 200 * 1000) return;
    pe->last_scan_us = now;
    scan_ctx s = {.lo = from > 1 ? from - 1 : 1};
    s.hi = cl->first_index < s.lo + CATCHUP_ENTRIES ? cl->first_index : s.lo + CATCHUP_ENTRIES;
    s.found = calloc((size_t)(s.hi - s.lo) + 1, sizeof *s.found);
    if (!s.found) abort();
    char err[256];
    if (aof_scan(cl->aof, scan_entry, &s, err, sizeof err) < 0)
        log_warn("cluster: catch-up of node %d: %s", cl->nodes[idx].id, err);
    uint64_t prev_term = from > 1 && s.found[0] ? s.found[0]->term : 0;
    wbuf w = {0};
    wb_u64(&w, cl->term);
    wb_u64(&w, from - 1);
    wb_u64(&w, prev_term);
    wb_u64(&w, atomic_load(&cl->commit));
    wb_u64(&w, (uint64_t)now);
    wb_u64(&w, last_index_now(cl));
    size_t count_at = w.len;
    wb_u32(&w, 0);
    uint32_t count = 0;
    for (uint64_t i = from; i < s.hi && w.len < CATCHUP_BYTES; i++) {
        entry *e = s.found[i - s.lo];
        if (!e) break; /* a gap cannot happen in a healthy AOF: stop there */
        wb_u64(&w, e->index);
        wb_u64(&w, e->term);
        wb_bytes(&w, e->data, e->len);
        count++;
    }
    for (int k = 0; k < 4; k++) w.p[count_at + (size_t)k] = (unsigned char)(count >> (8 * k));
    if ((from == 1 || s.found[0]) && count &&
        bus_send(cl->bus, cl->nodes[idx].id, MSG_APPEND, w.p, w.len) == 0) {
        pe->next_index = from + count;
        pe->last_send_us = now;
        log_verbose("cluster: node %d catching up from the AOF: entries %llu..%llu",
                    cl->nodes[idx].id, (unsigned long long)from,
                    (unsigned long long)(from + count - 1));
    } else if (!count) {
        log_warn("cluster: node %d needs entry %llu, which this node's AOF does not have",
                 cl->nodes[idx].id, (unsigned long long)from);
    }
    wb_free(&w);
    for (uint64_t i = 0; i <= s.hi - s.lo; i++) free(s.found[i]);
    free(s.found);
}

static void send_append(cluster *cl, int idx, int64_t now) {
    cl_peer *pe = &cl->peers[idx];
    uint64_t last = atomic_load(&cl->last_index);
    uint64_t commit = atomic_load(&cl->commit);
    uint64_t from = pe->next_index ? pe->next_index : 1;
    if (from > last + 1) from = last + 1;
    if (from < cl->first_index) {
        /* It needs entries trimmed from memory: they are in the AOF. */
        send_from_aof(cl, idx, from, now);
        return;
    }
    wbuf w = {0};
    wb_u64(&w, cl->term);
    wb_u64(&w, from - 1);
    wb_u64(&w, cl_term_at(cl, from - 1));
    wb_u64(&w, commit);
    wb_u64(&w, (uint64_t)now);
    wb_u64(&w, last_index_now(cl));
    size_t count_at = w.len;
    wb_u32(&w, 0);
    uint32_t count = 0;
    size_t bytes = 0;
    for (uint64_t i = from; i <= last && bytes < APPEND_MAX_BYTES; i++) {
        entry *e = cl_entry_at(cl, i);
        if (!e) break;
        wb_u64(&w, e->index);
        wb_u64(&w, e->term);
        wb_bytes(&w, e->data, e->len);
        bytes += e->len;
        count++;
    }
    for (int k = 0; k < 4; k++) w.p[count_at + (size_t)k] = (unsigned char)(count >> (8 * k));
    if (bus_send(cl->bus, cl->nodes[idx].id, MSG_APPEND, w.p, w.len) == 0) {
        pe->next_index = from + count; /* optimistic: pipelined */
        pe->last_send_us = now;
        pe->commit_sent = commit;
    }
    wb_free(&w);
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
        cl_on_commit_advanced(cl);
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

void cl_on_append_resp(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf r = rb_make(p, n);
    uint64_t term = rb_u64(&r);
    int ok = rb_u8(&r);
    uint64_t index = rb_u64(&r);
    int64_t sent_us = (int64_t)rb_u64(&r);
    if (r.bad) return;
    if (term > cl->term) {
        cl_become_follower(cl, term, 0);
        return;
    }
    int idx = cl_node_idx(cl, from);
    if (idx < 0 || atomic_load(&cl->role) != ROLE_LEADER || term != cl->term) return;
    cl_peer *pe = &cl->peers[idx];
    if (sent_us > pe->acked_sent_us) pe->acked_sent_us = sent_us;
    update_lease(cl);
    if (ok) {
        if (index > pe->match_index) pe->match_index = index;
        if (pe->next_index < index + 1) pe->next_index = index + 1;
        advance_commit(cl);
    } else {
        /* index: the follower's hint of where its log can resume */
        pe->next_index = index ? index : 1;
        send_append(cl, idx, cl_now_us());
    }
}

/* ---- replication: follower side ---- */

static void reply_append(cluster *cl, int to, int ok, uint64_t index, uint64_t sent_us) {
    wbuf w = {0};
    wb_u64(&w, cl->term);
    wb_u8(&w, (uint8_t)ok);
    wb_u64(&w, index);
    wb_u64(&w, sent_us);
    bus_send(cl->bus, to, MSG_APPEND_RESP, w.p, w.len);
    wb_free(&w);
}

/* Store one received entry unless the log already has it. Returns 0, or
 * -1 when the entry is malformed. */
static int store_entry(cluster *cl, uint64_t index, uint64_t term, const unsigned char *data,
                       size_t len) {
    uint64_t last = atomic_load(&cl->last_index);
    if (index <= last) {
        if (cl_term_at(cl, index) == term) return 0;
        truncate_from(cl, index);
        last = atomic_load(&cl->last_index);
    }
    if (index != last + 1 || len > ENTRY_MAX_BYTES) return -1;
    entry *e = entry_new(index, term, data, len);
    pthread_mutex_lock(&cl->log_lock);
    cl_log_append_locked(cl, e);
    pthread_mutex_unlock(&cl->log_lock);
    return 0;
}

void cl_on_append(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf r = rb_make(p, n);
    uint64_t term = rb_u64(&r), prev = rb_u64(&r), prev_term = rb_u64(&r);
    uint64_t leader_commit = rb_u64(&r), sent_us = rb_u64(&r), leader_last = rb_u64(&r);
    uint32_t count = rb_u32(&r);
    if (r.bad) return;
    if (term < cl->term) {
        reply_append(cl, from, 0, 0, sent_us);
        return;
    }
    if (term > cl->term || atomic_load(&cl->role) != ROLE_FOLLOWER ||
        atomic_load(&cl->leader_id) != from)
        cl_become_follower(cl, term, from);
    cl->last_leader_contact_us = cl_now_us();
    reset_election_timer(cl);
    /* After a restart the witness lost what it had recorded in this term;
     * once everything the leader had executed when this node came back is
     * committed, nothing it lost matters any more. */
    if (term == cl->boot_term && !cl->boot_mark) cl->boot_mark = leader_last ? leader_last : 1;
    uint64_t last = atomic_load(&cl->last_index);
    /* Below first_index everything is committed, hence identical. */
    int trimmed = prev + 1 < cl->first_index;
    if (!trimmed && (prev > last || cl_term_at(cl, prev) != prev_term)) {
        uint64_t hint = prev > last ? last + 1 : (prev > atomic_load(&cl->commit) ? prev : prev);
        /* a mismatch at prev: step back to the first index of that term */
        if (prev <= last) {
            uint64_t t = cl_term_at(cl, prev);
            hint = prev;
            while (hint > atomic_load(&cl->commit) + 1 && cl_term_at(cl, hint - 1) == t) hint--;
        }
        reply_append(cl, from, 0, hint, sent_us);
        return;
    }
    uint64_t upto = prev;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t index = rb_u64(&r), eterm = rb_u64(&r);
        size_t len;
        const unsigned char *data = rb_bytes(&r, &len);
        if (!r.bad && index < cl->first_index) {
            upto = index; /* applied and trimmed here already */
            continue;
        }
        if (r.bad || store_entry(cl, index, eterm, data, len) < 0) {
            log_warn("cluster: malformed APPEND from node %d", from);
            break;
        }
        upto = index;
    }
    if (cl->boot_mark && !cl->boot_caught_up && term == cl->boot_term &&
        leader_commit >= cl->boot_mark)
        cl->boot_caught_up = 1;
    if (leader_commit > atomic_load(&cl->commit)) {
        uint64_t c = leader_commit < upto ? leader_commit : upto;
        if (c > atomic_load(&cl->commit)) {
            atomic_store(&cl->commit, c);
            cl_apply_committed(cl);
            cl_on_commit_advanced(cl);
        }
    }
    /* Acknowledge only entries the AOF holds: with a failing disk the
     * reply still says "alive" but not "stored" (the leader's match index
     * stays where the disk is), so the entries are not committed on this
     * node's word. */
    if (cl_sync_aof(cl) == 0) cl->synced_index = atomic_load(&cl->last_index);
    reply_append(cl, from, 1, upto < cl->synced_index ? upto : cl->synced_index, sent_us);
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
            bus_send(cl->bus, cl->nodes[i].id, MSG_PING, NULL, 0);
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
    if (atomic_load(&cl->role) != ROLE_LEADER) {
        if (cl->commit_logged != atomic_load(&cl->commit)) {
            cl->commit_logged = atomic_load(&cl->commit);
            log_control(cl, "PIER.COMMIT", cl->commit_logged, 0, 0);
        }
        /* witness records: written before they are acknowledged */
        if (cl->witness_unsynced || cl->nrec_acks) cl_after_aof_sync(cl, cl_sync_aof(cl) == 0);
        return;
    }
    uint64_t last = atomic_load(&cl->last_index);
    int ok = 1;
    if (cl->synced_index < last || cl->witness_unsynced) {
        /* the leader counts (and answers on the fast path) only what its
         * AOF holds */
        ok = cl_sync_aof(cl) == 0;
        if (ok) {
            cl->synced_index = last;
            cl->witness_unsynced = 0;
        }
        advance_commit(cl);
    }
    if (cl->durable_head || cl->nrec_acks) cl_after_aof_sync(cl, ok);
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
