/* curp_witness.c - this node as a CURP witness: it accepts records of
 * unsynced writes (a proxy's RECORD, its own proxy, PIER.RECORD), logs each
 * to the AOF before it says so, drops them when their entries are applied
 * (or the leader's GC says so), hands old ones back to the leader as stale,
 * and at start-up rebuilds itself from the AOF. The witness table itself is
 * witness.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"
#include "../lib/codec.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "curp.h"
#include "curp_int.h"
#include "internal.h"
#include "msg.h"


/* ---- this node's witness and its log ----
 *
 * Every record the witness accepts is appended to the AOF as
 *   PIER.WITNESS <term> <cid> <seq> <key hashes, 8 bytes each, LE> <request>
 * and its acceptance is answered only after that write (fsynced with
 * appendfsync always): a restarted witness holds every record it
 * accepted, so a restart is not a lost witness. A record dropped by the
 * commit of its entry needs no line (start-up replays the commit index);
 * one dropped by a GC message gets PIER.WGC <cid> <seq> <key hashes>. */

static size_t put_keys(unsigned char *out, const uint64_t *keys, int nkeys) {
    for (int i = 0; i < nkeys; i++) codec_put_le64(out + i * 8, keys[i]);
    return (size_t)nkeys * 8;
}

static int get_keys(const cmd_arg *a, uint64_t *keys) {
    if (a->n % 8 || a->n / 8 > WITNESS_MAX_KEYS) return -1;
    int n = (int)(a->n / 8);
    const unsigned char *p = (const unsigned char *)a->p;
    for (int i = 0; i < n; i++) keys[i] = codec_get_le64(p + i * 8);
    return n;
}

static void log_witness_line(cluster *cl, const char *name, int with_term, uint64_t term,
                             uint64_t cid, uint64_t seq, const uint64_t *keys, int nkeys,
                             const char *req, size_t req_len) {
    if (!cl->aof) return;
    char num[3][24];
    unsigned char kb[WITNESS_MAX_KEYS * 8];
    cmd_arg argv[6];
    int argc = 0;
    argv[argc++] = (cmd_arg){name, strlen(name)};
    if (with_term) argv[argc++] = (cmd_arg){num[0], util_ull2str(num[0], 24, term)};
    argv[argc++] = (cmd_arg){num[1], util_ull2str(num[1], 24, cid)};
    argv[argc++] = (cmd_arg){num[2], util_ull2str(num[2], 24, seq)};
    argv[argc++] = (cmd_arg){(const char *)kb, put_keys(kb, keys, nkeys)};
    if (req) argv[argc++] = (cmd_arg){req, req_len};
    aof_append(cl->aof, argv[0], argc, argv);
}

/* Record r in this node's witness (and its log). */
int curp_witness_accept(cluster *cl, uint64_t term, const cl_req *r) {
    int st = witness_record(cl->witness, term, r->cid, r->seq, r->keys, r->nkeys, r->blob,
                            r->blob_len, cl->gc_round);
    if (st == WITNESS_ACCEPTED) {
        log_witness_line(cl, "PIER.WITNESS", 1, term, r->cid, r->seq, r->keys, r->nkeys, r->blob,
                         r->blob_len);
        cl->witness_unsynced = 1;
    }
    return st;
}

/* An answer to a record, sent (or counted, to = this node) after the AOF
 * write; rejections need no write and go at once. */
static void send_record_resp(cluster *cl, int to, uint64_t req_id, int st) {
    msg_record_resp m = {.req_id = req_id, .status = (uint8_t)st};
    wbuf w = {0};
    msg_record_resp_encode(&w, &m);
    cl_send(cl, to, MSG_RECORD_RESP, &w);
}

void curp_queue_record_ack(cluster *cl, int to, uint64_t req_id, int st) {
    if (cl->nrec_acks == cl->rec_acks_cap) {
        cl->rec_acks_cap = cl->rec_acks_cap ? cl->rec_acks_cap * 2 : 64;
        cl->rec_acks = xrealloc(cl->rec_acks, cl->rec_acks_cap * sizeof *cl->rec_acks);
    }
    cl->rec_acks[cl->nrec_acks++] = (cl_rec_ack){.to = to, .st = st, .req_id = req_id};
}

void curp_aof_written(cluster *cl, int ok) {
    if (ok) cl->witness_unsynced = 0;
    size_t n = cl->nrec_acks;
    cl->nrec_acks = 0;
    for (size_t i = 0; i < n; i++) {
        cl_rec_ack a = cl->rec_acks[i];
        /* not written: the record may not survive a restart, so say no */
        int st = ok ? a.st : WITNESS_FULL;
        if (a.to != cl->self_id) {
            send_record_resp(cl, a.to, a.req_id, st);
            continue;
        }
        cl_req *r = curp_inflight_find(cl, a.req_id);
        if (!r) continue;
        if (st == WITNESS_ACCEPTED) r->accepts++;
        else r->rejects++;
        curp_proxy_check(cl, r);
    }
    if (ok) curp_process_durable(cl);
}

void cl_on_record(cluster *cl, int from, const msg_request *m) {
    uint64_t req_id = m->req_id;
    cl_req *r = curp_request_from(m);
    int st = WITNESS_OLD_TERM;
    if (atomic_load(&cl->role) != ROLE_LEADER && r->term == cl->term)
        st = curp_witness_accept(cl, r->term, r);
    if (st == WITNESS_ACCEPTED) curp_queue_record_ack(cl, from, req_id, st);
    else send_record_resp(cl, from, req_id, st);
    curp_req_free(r);
}

/* The entry is committed: the witness forgets its request. */
static void drop_record_of(cluster *cl, const entry_view *v) {
    uint64_t keys[WITNESS_MAX_KEYS];
    int n = v->nkeys < WITNESS_MAX_KEYS ? (int)v->nkeys : WITNESS_MAX_KEYS;
    for (int i = 0; i < n; i++) keys[i] = entry_key_at(v, (size_t)i);
    if (n) witness_gc(cl->witness, v->cid, v->seq, keys, n);
}

void curp_entry_applied(cluster *cl, const entry_view *v) {
    if (!v->cid) return;
    rifl_record(cl->rifl, v->cid, v->seq, v->reply, v->reply_len, clock_wall_ms());
    drop_record_of(cl, v);
}

/* ---- start-up: the witness, from the AOF ----
 *
 * The AOF is replayed in the order it was written, so the witness is
 * rebuilt as it was: a PIER.WITNESS line puts a record back (dropping
 * any it conflicts with: those were gone when it was accepted), a
 * PIER.WGC line or a commit index drops records. The table used while
 * loading has more ways than the live one, because a record dropped by a
 * commit is back until the PIER.COMMIT line that follows it;
 * cl_witness_restored moves what is left into the live table. */

int curp_arg_u64(const cmd_arg *a, uint64_t *out) {
    unsigned long long v;
    if (!util_parse_ull(a->p, a->n, &v)) return -1;
    *out = v;
    return 0;
}

int cl_replay_witness(cluster *cl, int argc, const cmd_arg *argv) {
    uint64_t term, cid, seq, keys[WITNESS_MAX_KEYS];
    if (argc != 6 || curp_arg_u64(&argv[1], &term) || curp_arg_u64(&argv[2], &cid) ||
        curp_arg_u64(&argv[3], &seq))
        return -1;
    int nk = get_keys(&argv[4], keys);
    if (nk < 1) return -1;
    if (witness_restore(cl->witness, term, cid, seq, keys, nk, argv[5].p, argv[5].n, 0) !=
        WITNESS_ACCEPTED)
        cl->witness_restore_failed = 1;
    return 1;
}

int cl_replay_witness_gc(cluster *cl, int argc, const cmd_arg *argv) {
    uint64_t cid, seq, keys[WITNESS_MAX_KEYS];
    if (argc != 4 || curp_arg_u64(&argv[1], &cid) || curp_arg_u64(&argv[2], &seq)) return -1;
    int nk = get_keys(&argv[3], keys);
    if (nk < 1) return -1;
    witness_gc(cl->witness, cid, seq, keys, nk);
    return 1;
}

void cl_replay_commit(cluster *cl) {
    uint64_t upto = atomic_load(&cl->commit), last = atomic_load(&cl->last_index);
    if (upto > last) upto = last;
    char err[64];
    for (uint64_t i = cl->load_gc_upto + 1; i <= upto && witness_count(cl->witness); i++) {
        entry *e = cl_entry_at(cl, i);
        if (e && entry_decode(e->data, e->len, &cl->view, err, sizeof err) == 0 && cl->view.cid)
            drop_record_of(cl, &cl->view);
    }
    if (upto > cl->load_gc_upto) cl->load_gc_upto = upto;
}

static void restore_one(void *arg, const witness_rec *r) {
    cluster *cl = arg;
    if (witness_restore(cl->witness, r->term, r->cid, r->seq, r->keys, r->nkeys, r->req,
                        r->req_len, 0) != WITNESS_ACCEPTED)
        cl->witness_restore_failed = 1;
}

void cl_witness_restored(cluster *cl) {
    witness *loaded = cl->witness;
    cl->witness = witness_create(WITNESS_SETS_LOG2, WITNESS_WAYS);
    if (!cl->witness) abort();
    size_t n = witness_collect(loaded, 0, restore_one, cl);
    witness_destroy(loaded);
    if (cl->witness_restore_failed)
        log_warn("cluster: the witness could not take back every record of its log; it counts "
                 "as incomplete for term %llu", (unsigned long long)cl->term);
    else if (n)
        log_info("cluster: witness: %zu records restored", n);
    /* Back as it was (its records are in the AOF), unless some did not
     * fit: then it is incomplete for the terms up to this one, until what
     * it lost is committed (curp_heard_leader). */
    cl->boot_term = cl->witness_restore_failed ? cl->term : 0;
}

/* After a restart that lost records, the witness is complete again once
 * everything the leader had executed when this node came back (its last
 * index in the first APPEND of boot_term) is committed: the records it
 * lost were all about requests now in the log. */
void curp_heard_leader(cluster *cl, uint64_t term, uint64_t commit, uint64_t leader_last) {
    if (term != cl->boot_term) return;
    if (!cl->boot_mark) cl->boot_mark = leader_last ? leader_last : 1;
    if (!cl->boot_caught_up && commit >= cl->boot_mark) cl->boot_caught_up = 1;
}

void curp_encode_record(wbuf *w, const witness_rec *rec) {
    msg_record m = {
        .cid = rec->cid,
        .seq = rec->seq,
        .nkeys = (uint32_t)rec->nkeys,
        .req = rec->req,
        .req_len = rec->req_len,
    };
    memcpy(m.keys, rec->keys, (size_t)rec->nkeys * sizeof *rec->keys);
    msg_record_encode(w, &m);
}

/* ---- stale records and gc ---- */

static void send_stale(void *arg, const witness_rec *rec) {
    cluster *cl = arg;
    wbuf w = {0};
    curp_encode_record(&w, rec);
    cl_send(cl, atomic_load(&cl->leader_id), MSG_STALE, &w);
}

void cl_on_stale(cluster *cl, int from, const msg_record *m) {
    if (atomic_load(&cl->role) != ROLE_LEADER || !atomic_load(&cl->serving) || m->nkeys == 0)
        return;
    if (rifl_check(cl->rifl, m->cid, m->seq, NULL, NULL) == RIFL_NEW) {
        /* its client gave up or its FORWARD was lost: apply it, the
         * commit then makes every witness drop it */
        curp_exec_orphan(cl, m->cid, m->seq, (int)m->nkeys, m->keys, (const char *)m->req,
                         m->req_len);
        atomic_fetch_add(&cl->n_stale_replayed, 1);
        return;
    }
    msg_gc gc = {.cid = m->cid, .seq = m->seq, .nkeys = m->nkeys};
    memcpy(gc.keys, m->keys, m->nkeys * sizeof *m->keys);
    wbuf w = {0};
    msg_gc_encode(&w, &gc);
    cl_send_all(cl, MSG_GC, &w);
}

/* Records unsynced for STALE_ROUNDS ticks go back to the leader (their
 * client died or their FORWARD was lost); every 50th tick. */
void curp_witness_tick(cluster *cl) {
    if (cl->gc_round % 50 == 0 && cl->gc_round > STALE_ROUNDS)
        witness_stale(cl->witness, cl->gc_round - STALE_ROUNDS, send_stale, cl);
}

void cl_on_gc(cluster *cl, int from, const msg_gc *m) {
    if (m->nkeys && witness_gc(cl->witness, m->cid, m->seq, m->keys, (int)m->nkeys))
        log_witness_line(cl, "PIER.WGC", 0, 0, m->cid, m->seq, m->keys, (int)m->nkeys, NULL, 0);
}
