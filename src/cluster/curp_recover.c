/* curp_recover.c - a new leader's recovery (docs/CONSISTENCY.md, "What
 * each failure does"): it executes its whole log, appends a no-op,
 * collects every witness's records (COLLECT; a witness freezes older
 * terms and answers with its records and what its log vouches for), waits
 * for the no-op's commit, replays the records enough complete witnesses
 * saw, appends its end-of-recovery entry and only then serves. Also the
 * leadership marks start-up reads from the AOF. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "curp.h"
#include "curp_int.h"
#include "internal.h"
#include "msg.h"

typedef struct rec_sink {
    wbuf w;
    uint32_t count;
    uint64_t below;    /* the collecting leader's term */
    uint64_t max_term; /* the newest record term below it */
} rec_sink;

static void add_to_sink(void *arg, const witness_rec *rec) {
    rec_sink *s = arg;
    curp_encode_record(&s->w, rec);
    s->count++;
    /* A record of the collecting leader's own term (a proxy recorded it
     * after it learnt of that leader) says nothing about the terms before:
     * counting it would make the recovery judge witnesses for that term. */
    if (rec->term > s->max_term && rec->term < s->below) s->max_term = rec->term;
}

/* The first term from which this node's witness holds every record it
 * accepted: a restart empties it, and a leader records nothing of its own
 * term (its proxies count its execution instead). */
static uint64_t complete_since(const cluster *cl) {
    uint64_t boot = cl->boot_caught_up ? cl->boot_term : cl->boot_term + 1;
    uint64_t led = cl->led_term + 1;
    return boot > led ? boot : led;
}

/* The records of one witness, encoded: count, then each record. */
static void freeze_own(cluster *cl, rec_sink *s) {
    memset(s, 0, sizeof *s);
    s->below = cl->term;
    witness_freeze(cl->witness, cl->term, add_to_sink, s);
}

void cl_on_collect(cluster *cl, int from, const msg_collect *m) {
    uint64_t term = m->term;
    if (term < cl->term) return;
    if (term > cl->term || atomic_load(&cl->leader_id) != from)
        cl_become_follower(cl, term, from);
    /* Frozen, not emptied: the records stay until their entries commit. */
    rec_sink s;
    freeze_own(cl, &s);
    msg_collect_resp out = {
        .term = term,
        .complete_since = complete_since(cl),
        .max_term = s.max_term,
        /* what its log vouches for: every request it answered as leader */
        .led_term = cl->lead_log_term,
        .led_last = atomic_load(&cl->last_index),
        .records = {s.count, s.w.p, s.w.len},
    };
    wbuf w = {0};
    msg_collect_resp_encode(&w, &out);
    cl_send(cl, from, MSG_COLLECT_RESP, &w);
    wb_free(&s.w);
}

static void add_collected(cluster *cl, uint64_t cid, uint64_t seq, int nkeys,
                          const uint64_t *keys, const void *req, size_t len) {
    for (cl_collected *c = cl->collected; c; c = c->next)
        if (c->cid == cid && c->seq == seq) {
            c->count++;
            return;
        }
    cl_collected *c = xcalloc(1, sizeof *c);
    c->cid = cid;
    c->seq = seq;
    c->count = 1;
    c->nkeys = nkeys > WITNESS_MAX_KEYS ? WITNESS_MAX_KEYS : nkeys;
    memcpy(c->keys, keys, (size_t)c->nkeys * sizeof *keys);
    curp_copy_bytes(&c->req, &c->req_len, req, len);
    c->next = cl->collected;
    cl->collected = c;
}

/* Count the records of one witness's answer. */
static int tally(cluster *cl, const cl_records *recs) {
    msg_records l = {recs->count, recs->body, recs->len};
    size_t pos = 0;
    msg_record r;
    for (uint32_t i = 0; i < l.count; i++) {
        if (msg_records_next(&l, &pos, &r) != 1) return -1;
        add_collected(cl, r.cid, r.seq, (int)r.nkeys, r.keys, r.req, r.req_len);
    }
    return 0;
}

static void records_set(cl_records *dst, uint32_t count, const void *body, size_t len) {
    free(dst->body);
    dst->count = count;
    dst->len = len;
    dst->body = xmalloc(len);
    if (len) memcpy(dst->body, body, len);
}

static void records_clear(cl_records *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

void cl_on_collect_resp(cluster *cl, int from, const msg_collect_resp *m) {
    int idx = cl_node_idx(cl, from);
    if (idx < 0 || m->term != cl->term || atomic_load(&cl->role) != ROLE_LEADER ||
        !cl->collect_needed || cl->peers[idx].collected)
        return;
    cl_peer *pe = &cl->peers[idx];
    pe->collected = 1;
    pe->complete_since = m->complete_since;
    pe->led_term = m->led_term;
    pe->led_last = m->led_last;
    if (m->max_term > cl->collect_max_term) cl->collect_max_term = m->max_term;
    records_set(&pe->records, m->records.count, m->records.body, m->records.len);
}

static void clear_collected(cluster *cl) {
    while (cl->collected) {
        cl_collected *c = cl->collected;
        cl->collected = c->next;
        free(c->req);
        free(c);
    }
    for (int i = 0; i < cl->nnodes; i++) records_clear(&cl->peers[i].records);
}

static void finish_recovery(cluster *cl) {
    int need = cl->replay_threshold; /* curp_check_recovery's t */
    size_t replayed = 0;
    for (cl_collected *c = cl->collected; c; c = c->next)
        if (c->count >= need) {
            curp_exec_orphan(cl, c->cid, c->seq, c->nkeys, c->keys, c->req, c->req_len);
            replayed++;
        }
    clear_collected(cl);
    atomic_fetch_add(&cl->n_recovered, replayed);
    /* The end-of-recovery entry (cid 0, seq = this node's id): once it is
     * in this node's AOF, so are the replays before it, and every request
     * of this term it answers comes after it (a fast-path reply leaves
     * after its entry's AOF write). Start-up finds it (led_term,
     * lead_log_term). */
    cl_req marker = {.seq = (uint64_t)cl->self_id};
    if (curp_append_entry(cl, &marker, NULL, "", 0)) cl->lead_log_term = cl->term;
    cl->collect_needed = 0;
    cl->led_term = cl->term; /* from now on its witness misses this term's records */
    atomic_store(&cl->serving, 1);
    log_info("cluster: node %d serves as leader of term %llu (%zu witness records replayed)",
             cl->self_id, (unsigned long long)cl->term, replayed);
    curp_unpark(cl);
    cl_req *f = cl->fwd_parked_head;
    cl->fwd_parked_head = cl->fwd_parked_tail = NULL;
    while (f) {
        cl_req *next = f->next;
        curp_serve_forwarded(cl, f, f->from_node, f->req_id);
        f = next;
    }
}

/* Does this node's log hold the whole log of tp's leader? That node
 * answered COLLECT vouching for its log up to led_last (lead_log_term ==
 * tp), and this log has the same entry there: by log matching, then, it
 * holds everything that node had, which is every request of tp it
 * answered and every replay it made for older terms. */
static int holds_leader_log(cluster *cl, uint64_t tp) {
    for (int i = 0; i < cl->nnodes; i++) {
        const cl_peer *pe = &cl->peers[i];
        if (i == cl->self_idx || !pe->collected || pe->led_term != tp) continue;
        if (pe->led_last + 1 < cl->first_index || pe->led_last > atomic_load(&cl->last_index))
            continue;
        if (cl_term_at(cl, pe->led_last) == tp) return 1;
    }
    return 0;
}

/* Recovery may finish once the no-op committed (everything before it is
 * committed and executed here) and enough witnesses that hold every record
 * of the previous leader's term (tp) answered. A request completed on the
 * fast path was recorded by f + ceil(f/2) of the 2f other nodes; among m
 * complete witnesses it is then seen by at least t = m - f + ceil(f/2).
 * Replaying what t of them saw recovers it; t >= 1 and 2t > m also keep
 * two conflicting records from both reaching t (N=3: m >= 1; N=5: m >= 3).
 * A node that led tp itself holds all of tp's requests in its own log
 * (lead_log_term), and so does a node whose log holds that leader's. */
void curp_check_recovery(cluster *cl) {
    if (!cl->collect_needed || atomic_load(&cl->role) != ROLE_LEADER) return;
    if (atomic_load(&cl->commit) < cl->noop_index) return;
    uint64_t tp = cl->recovery_tp > cl->collect_max_term ? cl->recovery_tp : cl->collect_max_term;
    if (tp == 0 || cl->lead_log_term == tp || holds_leader_log(cl, tp)) {
        finish_recovery(cl);
        return;
    }
    int chosen[CL_MAX_NODES], m = 0;
    if (complete_since(cl) <= tp) chosen[m++] = cl->self_idx;
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx && cl->peers[i].collected && cl->peers[i].complete_since <= tp)
            chosen[m++] = i;
    int t = m - cl->f + (cl->f + 1) / 2;
    if (t < 1 || 2 * t <= m) {
        if (cl->gc_round % 100 == 0)
            log_info("cluster: recovery of term %llu waits for witnesses: %d complete for "
                     "term %llu answered", (unsigned long long)cl->term, m, (unsigned long long)tp);
        return;
    }
    for (int k = 0; k < m; k++) {
        const cl_records *recs =
            chosen[k] == cl->self_idx ? &cl->own_records : &cl->peers[chosen[k]].records;
        if (tally(cl, recs) < 0) log_warn("cluster: a malformed witness answer was skipped");
    }
    records_clear(&cl->own_records);
    cl->replay_threshold = t;
    finish_recovery(cl);
}

void curp_send_collect(cluster *cl) {
    msg_collect m = {cl->term};
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx && !cl->peers[i].collected) {
            wbuf w = {0};
            msg_collect_encode(&w, &m);
            cl_send(cl, cl->nodes[i].id, MSG_COLLECT, &w);
        }
}

void curp_start_recovery(cluster *cl) {
    /* Execute what the log holds beyond what this keyspace has: a leader's
     * keyspace reflects its whole log. */
    uint64_t last = atomic_load(&cl->last_index);
    uint64_t from = atomic_load(&cl->executed);
    if (from < atomic_load(&cl->applied)) from = atomic_load(&cl->applied);
    for (uint64_t i = from + 1; i <= last; i++) {
        entry *e = cl_entry_at(cl, i);
        if (e) cl_apply_entry(cl, e);
    }
    if (last > atomic_load(&cl->executed)) atomic_store(&cl->executed, last);
    cl_set_keep_expired(cl, 0);
    for (int i = 0; i < cl->nnodes; i++) cl->peers[i].collected = 0;
    clear_collected(cl);
    cl->recovery_tp = cl->last_term;
    cl->collect_max_term = 0;
    rec_sink s;
    freeze_own(cl, &s);
    records_set(&cl->own_records, s.count, s.w.p, s.w.len);
    if (s.max_term > cl->collect_max_term) cl->collect_max_term = s.max_term;
    wb_free(&s.w);
    cl->noop_index = curp_append_entry(cl, NULL, NULL, "", 0);
    cl->collect_needed = 1;
    curp_send_collect(cl);
    curp_check_recovery(cl);
}

/* ---- the leadership marks: what this node's log vouches for ----
 *
 * lead_log_term: the log holds every request this node answered as the
 * leader of that term (its end-of-recovery entry is there, nothing was
 * truncated after it); a COLLECT answer passes it on (holds_leader_log).
 * Start-up finds the marks in the AOF; a truncation withdraws the claim. */

void cl_replay_entry_loaded(cluster *cl, uint64_t term, int argc, const cmd_arg *argv) {
    /* this node's end-of-recovery entry: cid 0, seq = its id, no keys, no records */
    uint64_t cid, seq;
    if (argc != 7 || curp_arg_u64(&argv[3], &cid) || curp_arg_u64(&argv[4], &seq) || cid != 0 ||
        seq != (uint64_t)cl->self_id || argv[5].n != 0)
        return;
    cl->lead_log_term = term;
    if (term > cl->led_term) cl->led_term = term;
}

void cl_log_truncated(cluster *cl) {
    /* entries after the mark may be gone: the log no longer vouches for
     * that term (led_term stays: the witness still missed its records) */
    cl->lead_log_term = 0;
}

void curp_recover_free(cluster *cl) {
    clear_collected(cl);
    records_clear(&cl->own_records);
}
