/* Unit tests for the CURP witness (src/cluster/witness.c). */
#include "../../src/cluster/witness.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

/* Record with term 1, round 0 and a one-byte request. */
static int rec(witness *w, uint64_t cid, uint64_t seq, const uint64_t *keys,
               int nkeys) {
    return witness_record(w, 1, cid, seq, keys, nkeys, "x", 1, 0);
}

static int rec1(witness *w, uint64_t cid, uint64_t seq, uint64_t key) {
    return rec(w, cid, seq, &key, 1);
}

/* n distinct key hashes that land in `set`, searching upwards from `from`. */
static void keys_in_set(const witness *w, size_t set, uint64_t from,
                        uint64_t *out, int n) {
    int got = 0;
    for (uint64_t k = from; got < n; k++)
        if (witness_set_of(w, k) == set) out[got++] = k;
}

/* A callback that copies what it is handed. */
typedef struct seen {
    size_t n;
    witness_rec recs[64];
    char bytes[64][32];
    witness *gc_from; /* when set: gc each record it is handed */
    witness *record_into; /* when set: record (term 9) from inside fn */
} seen;

static void collect_cb(void *arg, const witness_rec *r) {
    seen *s = arg;
    if (s->n < 64) {
        s->recs[s->n] = *r;
        size_t l = r->req_len < 31 ? r->req_len : 31;
        memcpy(s->bytes[s->n], r->req, l);
        s->bytes[s->n][l] = 0;
    }
    s->n++;
    if (s->gc_from) witness_gc(s->gc_from, r->cid, r->seq, r->keys, r->nkeys);
    if (s->record_into) {
        uint64_t k = r->keys[0];
        CHECK_EQ_LL(witness_record(s->record_into, 9, r->cid, r->seq + 100, &k, 1,
                                   NULL, 0, 0),
                    WITNESS_ACCEPTED);
    }
}

static void test_create_bounds(void) {
    CHECK(witness_create(WITNESS_MAX_SETS_LOG2 + 1, 4) == NULL);
    CHECK(witness_create(4, 0) == NULL);
    CHECK(witness_create(4, WITNESS_MAX_WAYS + 1) == NULL);
    witness *w = witness_create(0, 1); /* one set, one way */
    CHECK(w != NULL);
    CHECK_EQ_LL(witness_set_of(w, 12345), 0);
    CHECK_EQ_LL(rec1(w, 1, 1, 7), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec1(w, 1, 2, 8), WITNESS_FULL);
    witness_destroy(w);
    witness_destroy(NULL);
    w = witness_create(12, 4);
    CHECK_EQ_LL(witness_count(w), 0);
    CHECK_EQ_LL(witness_min_term(w), 0);
    for (uint64_t k = 0; k < 10000; k++) CHECK(witness_set_of(w, k) < 4096);
    witness_destroy(w);
}

static void test_single_key_conflict(void) {
    witness *w = witness_create(12, 4);
    CHECK_EQ_LL(rec1(w, 1, 1, 100), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec1(w, 2, 1, 100), WITNESS_CONFLICT);
    CHECK_EQ_LL(rec1(w, 1, 2, 100), WITNESS_CONFLICT); /* same client, next op */
    CHECK_EQ_LL(rec1(w, 2, 1, 101), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_count(w), 2);
    witness_destroy(w);
}

static void test_multikey_conflicts(void) {
    witness *w = witness_create(12, 4);
    const uint64_t ab[] = {0xA, 0xB}, bc[] = {0xB, 0xC}, cd[] = {0xC, 0xD};
    const uint64_t d[] = {0xD}, e[] = {0xE}, xya[] = {0x10, 0x11, 0xA};
    CHECK_EQ_LL(rec(w, 1, 1, ab, 2), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec(w, 2, 1, bc, 2), WITNESS_CONFLICT); /* shares B */
    CHECK_EQ_LL(rec(w, 3, 1, cd, 2), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec(w, 4, 1, d, 1), WITNESS_CONFLICT);  /* D of {C, D} */
    CHECK_EQ_LL(rec(w, 4, 2, e, 1), WITNESS_ACCEPTED);
    /* A conflict on the last key takes nothing: X and Y stay free. */
    CHECK_EQ_LL(rec(w, 5, 1, xya, 3), WITNESS_CONFLICT);
    CHECK_EQ_LL(rec(w, 6, 1, xya, 2), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_count(w), 4);
    /* Conflicts compare the full hash, not the set. */
    uint64_t same[2];
    keys_in_set(w, witness_set_of(w, 0xA), 0xA + 1, same, 2);
    CHECK_EQ_LL(rec1(w, 7, 1, same[0]), WITNESS_ACCEPTED);
    witness_destroy(w);
}

static void test_full_set_rejects(void) {
    witness *w = witness_create(4, 2);
    uint64_t k[3], other;
    keys_in_set(w, 5, 1, k, 3);
    keys_in_set(w, 6, 1, &other, 1);
    CHECK_EQ_LL(rec1(w, 1, 1, k[0]), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec1(w, 1, 2, k[1]), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec1(w, 1, 3, k[2]), WITNESS_FULL);
    /* All or nothing: the key in a free set is not taken either. */
    const uint64_t pair[] = {other, k[2]};
    CHECK_EQ_LL(rec(w, 2, 1, pair, 2), WITNESS_FULL);
    CHECK_EQ_LL(rec1(w, 3, 1, other), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_count(w), 3);
    /* A gc frees a way. */
    witness_gc(w, 1, 1, &k[0], 1);
    CHECK_EQ_LL(rec1(w, 1, 3, k[2]), WITNESS_ACCEPTED);
    witness_counters st;
    witness_stats(w, &st);
    CHECK_EQ_LL(st.full, 2);
    CHECK_EQ_LL(st.accepted, 4);
    witness_destroy(w);
}

/* Two keys of one request in one set need two ways. */
static void test_same_set_needs_two_ways(void) {
    witness *w = witness_create(4, 2);
    uint64_t k[3];
    keys_in_set(w, 3, 1, k, 3);
    CHECK_EQ_LL(rec1(w, 1, 1, k[0]), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec(w, 2, 1, &k[1], 2), WITNESS_FULL); /* one way left */
    witness_gc(w, 1, 1, &k[0], 1);
    CHECK_EQ_LL(rec(w, 2, 1, &k[1], 2), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec1(w, 3, 1, k[0]), WITNESS_FULL); /* both ways taken */
    witness_gc(w, 2, 1, &k[2], 1); /* found through its second key */
    CHECK_EQ_LL(witness_count(w), 0);
    CHECK_EQ_LL(rec(w, 3, 1, k, 2), WITNESS_ACCEPTED);
    witness_destroy(w);
}

/* A key named twice (MSET k a k b) takes one slot. */
static void test_duplicate_key_in_request(void) {
    witness *w = witness_create(0, 1);
    const uint64_t kk[] = {42, 42, 42};
    CHECK_EQ_LL(rec(w, 1, 1, kk, 3), WITNESS_ACCEPTED);
    seen s = {0};
    CHECK_EQ_LL(witness_collect(w, 1, collect_cb, &s), 1);
    CHECK_EQ_LL(s.recs[0].nkeys, 1);
    CHECK_EQ_LL(s.recs[0].keys[0], 42);
    witness_destroy(w);
}

static void test_gc_from_either_key(void) {
    witness *w = witness_create(12, 4);
    const uint64_t ab[] = {0xA, 0xB}, cd[] = {0xC, 0xD};
    CHECK_EQ_LL(rec(w, 1, 1, ab, 2), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec(w, 1, 2, cd, 2), WITNESS_ACCEPTED);
    witness_gc(w, 1, 1, &ab[1], 1); /* through B */
    CHECK_EQ_LL(witness_count(w), 1);
    CHECK_EQ_LL(rec1(w, 9, 1, 0xA), WITNESS_ACCEPTED); /* A is free too */
    witness_gc(w, 1, 2, &cd[0], 1); /* through C */
    CHECK_EQ_LL(rec1(w, 9, 2, 0xD), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_count(w), 2);
    /* Absent, wrong seq, or a key held by someone else: no-ops. */
    witness_gc(w, 1, 2, cd, 2);
    witness_gc(w, 9, 3, cd, 2);
    witness_gc(w, 5, 5, (const uint64_t[]){0x777}, 1);
    witness_gc(w, 9, 1, NULL, 0);
    CHECK_EQ_LL(witness_count(w), 2);
    /* Extra keys around the right one are fine. */
    const uint64_t mixed[] = {0x555, 0xD, 0xA};
    witness_gc(w, 9, 1, mixed, 3);
    CHECK_EQ_LL(witness_count(w), 1);
    CHECK_EQ_LL(rec1(w, 8, 1, 0xA), WITNESS_ACCEPTED);
    witness_counters st;
    witness_stats(w, &st);
    CHECK_EQ_LL(st.gc, 3);
    witness_destroy(w);
}

static void test_retry_is_idempotent(void) {
    witness *w = witness_create(12, 4);
    const uint64_t ab[] = {0xA, 0xB};
    CHECK_EQ_LL(rec(w, 1, 1, ab, 2), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec(w, 1, 1, ab, 2), WITNESS_ACCEPTED); /* no self-conflict */
    CHECK_EQ_LL(rec(w, 1, 1, &ab[1], 1), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_count(w), 1);
    CHECK_EQ_LL(rec(w, 1, 2, ab, 2), WITNESS_CONFLICT); /* a new seq is not a retry */
    CHECK_EQ_LL(rec(w, 2, 1, ab, 2), WITNESS_CONFLICT);
    witness_counters st;
    witness_stats(w, &st);
    CHECK_EQ_LL(st.accepted, 1);
    CHECK_EQ_LL(st.retried, 2);
    CHECK_EQ_LL(st.conflict, 2);
    /* After gc the same id is a new record again (a late arrival). */
    witness_gc(w, 1, 1, ab, 2);
    CHECK_EQ_LL(rec(w, 1, 1, ab, 2), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_count(w), 1);
    witness_destroy(w);
}

static void test_too_many_keys(void) {
    witness *w = witness_create(12, 4);
    uint64_t keys[WITNESS_MAX_KEYS + 1];
    for (int i = 0; i <= WITNESS_MAX_KEYS; i++) keys[i] = 1000 + (uint64_t)i;
    CHECK_EQ_LL(rec(w, 1, 1, keys, WITNESS_MAX_KEYS + 1), WITNESS_TOO_MANY_KEYS);
    CHECK_EQ_LL(rec(w, 1, 2, keys, 0), WITNESS_TOO_MANY_KEYS);
    CHECK_EQ_LL(rec(w, 1, 3, keys, -1), WITNESS_TOO_MANY_KEYS);
    CHECK_EQ_LL(rec(w, 1, 4, keys, WITNESS_MAX_KEYS), WITNESS_ACCEPTED);
    seen s = {0};
    CHECK_EQ_LL(witness_collect(w, 1, collect_cb, &s), 1);
    CHECK_EQ_LL(s.recs[0].nkeys, WITNESS_MAX_KEYS);
    CHECK_EQ_LL(s.recs[0].keys[WITNESS_MAX_KEYS - 1], 1000 + WITNESS_MAX_KEYS - 1);
    witness_counters st;
    witness_stats(w, &st);
    CHECK_EQ_LL(st.too_many, 3);
    witness_destroy(w);
}

static void test_bytes_are_copied(void) {
    witness *w = witness_create(12, 4);
    char buf[] = "SET k v";
    uint64_t k = 5, k2 = 6;
    CHECK_EQ_LL(witness_record(w, 3, 7, 8, &k, 1, buf, 7, 0), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_record(w, 3, 7, 9, &k2, 1, NULL, 0, 0), WITNESS_ACCEPTED);
    memset(buf, 'z', sizeof buf);
    seen s = {0};
    CHECK_EQ_LL(witness_collect(w, 3, collect_cb, &s), 2);
    CHECK_MEM(s.bytes[0], s.recs[0].req_len, "SET k v");
    CHECK_EQ_LL(s.recs[0].term, 3);
    CHECK_EQ_LL(s.recs[0].cid, 7);
    CHECK_EQ_LL(s.recs[0].seq, 8);
    CHECK_EQ_LL(s.recs[1].req_len, 0);
    CHECK(s.recs[1].req != NULL);
    witness_destroy(w);
}

static void test_stale_by_round(void) {
    witness *w = witness_create(12, 4);
    for (uint64_t i = 1; i <= 4; i++) {
        uint64_t k = 100 + i;
        CHECK_EQ_LL(witness_record(w, 1, i, 1, &k, 1, "r", 1, i), WITNESS_ACCEPTED);
    }
    seen s = {0};
    CHECK_EQ_LL(witness_stale(w, 3, collect_cb, &s), 2); /* born 1 and 2 */
    CHECK_EQ_LL(s.recs[0].cid, 1); /* oldest first */
    CHECK_EQ_LL(s.recs[1].cid, 2);
    CHECK_EQ_LL(witness_count(w), 4); /* still recorded */
    CHECK_EQ_LL(witness_stale(w, 1, NULL, NULL), 0);
    CHECK_EQ_LL(witness_stale(w, UINT64_MAX, NULL, NULL), 4);
    /* A retry keeps the original birth. */
    uint64_t k4 = 104;
    CHECK_EQ_LL(witness_record(w, 1, 4, 1, &k4, 1, "r", 1, 99), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_stale(w, 5, NULL, NULL), 4);
    /* fn may gc the record it is handed. */
    seen g = {.gc_from = w};
    CHECK_EQ_LL(witness_stale(w, 3, collect_cb, &g), 2);
    CHECK_EQ_LL(witness_count(w), 2);
    CHECK_EQ_LL(witness_stale(w, 3, NULL, NULL), 0);
    witness_counters st;
    witness_stats(w, &st);
    CHECK_EQ_LL(st.stale, 2 + 0 + 4 + 4 + 2 + 0);
    witness_destroy(w);
}

static void test_collect_freezes_old_terms(void) {
    witness *w = witness_create(12, 4);
    uint64_t k[4] = {1, 2, 3, 4};
    CHECK_EQ_LL(witness_record(w, 5, 1, 1, &k[0], 1, "a", 1, 0), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_record(w, 5, 1, 2, &k[1], 1, "b", 1, 0), WITNESS_ACCEPTED);
    seen s = {0};
    CHECK_EQ_LL(witness_collect(w, 6, collect_cb, &s), 2);
    CHECK_EQ_LL(s.n, 2);
    CHECK_MEM(s.bytes[0], 1, "a");
    CHECK_MEM(s.bytes[1], 1, "b");
    CHECK_EQ_LL(witness_count(w), 0);
    CHECK_EQ_LL(witness_min_term(w), 6);
    /* Old term rejected even on a free key; equal and newer accepted. */
    CHECK_EQ_LL(witness_record(w, 5, 2, 1, &k[2], 1, "c", 1, 0), WITNESS_OLD_TERM);
    CHECK_EQ_LL(witness_record(w, 6, 2, 2, &k[0], 1, "d", 1, 0), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_record(w, 7, 2, 3, &k[1], 1, "e", 1, 0), WITNESS_ACCEPTED);
    /* The minimum never goes down. */
    CHECK_EQ_LL(witness_collect(w, 3, NULL, NULL), 2);
    CHECK_EQ_LL(witness_min_term(w), 6);
    CHECK_EQ_LL(witness_record(w, 5, 2, 4, &k[2], 1, "f", 1, 0), WITNESS_OLD_TERM);
    /* The old term check comes before the retry check. */
    CHECK_EQ_LL(witness_record(w, 6, 3, 1, &k[3], 1, "g", 1, 0), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_collect(w, 8, NULL, NULL), 1);
    CHECK_EQ_LL(witness_record(w, 6, 3, 1, &k[3], 1, "g", 1, 0), WITNESS_OLD_TERM);
    witness_counters st;
    witness_stats(w, &st);
    CHECK_EQ_LL(st.old_term, 3);
    CHECK_EQ_LL(st.collected, 5);
    witness_destroy(w);
}

/* The table is empty when fn runs: the new leader may record into it. */
static void test_record_during_collect(void) {
    witness *w = witness_create(0, 2);
    uint64_t k[2] = {1, 2};
    CHECK_EQ_LL(rec1(w, 1, 1, k[0]), WITNESS_ACCEPTED);
    CHECK_EQ_LL(rec1(w, 1, 2, k[1]), WITNESS_ACCEPTED);
    seen s = {.record_into = w};
    CHECK_EQ_LL(witness_collect(w, 9, collect_cb, &s), 2);
    CHECK_EQ_LL(witness_count(w), 2); /* the two re-recorded ones */
    CHECK_EQ_LL(witness_collect(w, 9, NULL, NULL), 2);
    witness_destroy(w);
}

/* ---- randomized test against a reference model ----
 *
 * The model is a plain list of records. It mirrors the table's decisions
 * (term, key count, retry, conflict, then set capacity computed with
 * witness_set_of) and checks after every step that the witness holds
 * exactly the model's live records: so no two live records share a key
 * hash and gc'd records are gone. */

#define MODEL_OPS 6000
#define MODEL_POOL 64

typedef struct mrec {
    int live, seen;
    uint64_t term, cid, seq, born;
    int nkeys;
    uint64_t keys[WITNESS_MAX_KEYS];
    size_t len;
    unsigned char req[32];
} mrec;

typedef struct model {
    witness *w;
    unsigned ways;
    uint64_t min_term, term, round;
    uint64_t next_seq[9];
    uint64_t pool[MODEL_POOL];
    size_t n, live;
    mrec recs[MODEL_OPS];
    uint64_t rng;
    int bad;
} model;

static uint64_t rnd(model *m) { /* splitmix64 */
    uint64_t z = (m->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int shares_key(const mrec *r, const uint64_t *keys, int n) {
    for (int i = 0; i < r->nkeys; i++)
        for (int j = 0; j < n; j++)
            if (r->keys[i] == keys[j]) return 1;
    return 0;
}

static int model_fits(const model *m, const uint64_t *keys, int n) {
    for (int i = 0; i < n; i++) {
        size_t set = witness_set_of(m->w, keys[i]);
        unsigned used = 0;
        for (int j = 0; j < n; j++) used += witness_set_of(m->w, keys[j]) == set;
        for (size_t r = 0; r < m->n; r++)
            for (int j = 0; m->recs[r].live && j < m->recs[r].nkeys; j++)
                used += witness_set_of(m->w, m->recs[r].keys[j]) == set;
        if (used > m->ways) return 0;
    }
    return 1;
}

/* The model's answer for q (nkeys: the count the caller passed, before
 * dedup); on accept of a new record it is appended (live). */
static int model_record(model *m, const mrec *q, int nkeys) {
    if (q->term < m->min_term) return WITNESS_OLD_TERM;
    if (nkeys < 1 || nkeys > WITNESS_MAX_KEYS) return WITNESS_TOO_MANY_KEYS;
    int conflict = 0;
    for (size_t r = 0; r < m->n; r++) {
        const mrec *o = &m->recs[r];
        if (!o->live || !shares_key(o, q->keys, q->nkeys)) continue;
        if (o->cid == q->cid && o->seq == q->seq) return WITNESS_ACCEPTED;
        conflict = 1;
    }
    if (conflict) return WITNESS_CONFLICT;
    if (!model_fits(m, q->keys, q->nkeys)) return WITNESS_FULL;
    m->recs[m->n] = *q;
    m->recs[m->n].live = 1;
    m->n++;
    m->live++;
    return WITNESS_ACCEPTED;
}

static mrec *model_find(model *m, uint64_t cid, uint64_t seq) {
    for (size_t r = 0; r < m->n; r++)
        if (m->recs[r].live && m->recs[r].cid == cid && m->recs[r].seq == seq)
            return &m->recs[r];
    return NULL;
}

/* A callback: every record handed out matches a live model record, once. */
static void model_cb(void *arg, const witness_rec *r) {
    model *m = arg;
    mrec *o = model_find(m, r->cid, r->seq);
    if (!o || o->seen || o->term != r->term || o->nkeys != r->nkeys ||
        memcmp(o->keys, r->keys, (size_t)o->nkeys * sizeof o->keys[0]) ||
        o->len != r->req_len || memcmp(o->req, r->req, o->len)) {
        m->bad++;
        return;
    }
    o->seen = 1;
}

static void model_unsee(model *m) {
    for (size_t r = 0; r < m->n; r++) m->recs[r].seen = 0;
}

/* The witness holds exactly the model's live records. */
static void model_verify(model *m) {
    CHECK_EQ_LL(witness_count(m->w), m->live);
    model_unsee(m);
    CHECK_EQ_LL(witness_stale(m->w, UINT64_MAX, model_cb, m), m->live);
    for (size_t r = 0; r < m->n; r++)
        if (m->recs[r].live && !m->recs[r].seen) m->bad++;
    /* no two live records share a key hash */
    for (size_t a = 0; a < m->n; a++)
        for (size_t b = a + 1; m->recs[a].live && b < m->n; b++)
            if (m->recs[b].live &&
                shares_key(&m->recs[a], m->recs[b].keys, m->recs[b].nkeys))
                m->bad++;
    CHECK_EQ_LL(m->bad, 0);
}

/* A fresh request: 1-4 keys from the pool (sometimes a repeat, sometimes
 * too many or none), sometimes an old term. */
static void op_new(model *m, int *got, int *want) {
    mrec q = {0};
    q.cid = 1 + rnd(m) % 8;
    q.seq = ++m->next_seq[q.cid];
    q.term = (rnd(m) % 20 == 0 && m->term > 0) ? m->term - 1 : m->term;
    q.born = m->round;
    q.len = rnd(m) % 32;
    for (size_t i = 0; i < q.len; i++) q.req[i] = (unsigned char)rnd(m);
    uint64_t raw[WITNESS_MAX_KEYS + 1];
    int nraw = 1 + (int)(rnd(m) % 4);
    if (rnd(m) % 50 == 0) nraw = rnd(m) % 2 ? 0 : WITNESS_MAX_KEYS + 1;
    for (int i = 0; i < nraw; i++) raw[i] = m->pool[rnd(m) % MODEL_POOL];
    for (int i = 0; i < nraw && i <= WITNESS_MAX_KEYS; i++) {
        int dup = 0;
        for (int j = 0; j < q.nkeys; j++) dup |= q.keys[j] == raw[i];
        if (!dup && q.nkeys < WITNESS_MAX_KEYS) q.keys[q.nkeys++] = raw[i];
    }
    *got = witness_record(m->w, q.term, q.cid, q.seq, raw, nraw, q.req, q.len,
                          q.born);
    *want = model_record(m, &q, nraw);
}

static mrec *random_live(model *m) {
    if (!m->live) return NULL;
    size_t pick = rnd(m) % m->live;
    for (size_t r = 0; r < m->n; r++)
        if (m->recs[r].live && pick-- == 0) return &m->recs[r];
    return NULL;
}

/* A retry of a live record through a non-empty subset of its keys. */
static void op_retry(model *m, int *got, int *want) {
    mrec *o = random_live(m);
    if (!o) return;
    int n = 1 + (int)(rnd(m) % (uint64_t)o->nkeys);
    *got = witness_record(m->w, o->term, o->cid, o->seq, o->keys, n, o->req,
                          o->len, m->round);
    *want = WITNESS_ACCEPTED;
}

/* gc a live record through one of its keys plus a random pool key. */
static void op_gc(model *m) {
    mrec *o = random_live(m);
    if (!o) return;
    uint64_t keys[2] = {m->pool[rnd(m) % MODEL_POOL],
                        o->keys[rnd(m) % (uint64_t)o->nkeys]};
    witness_gc(m->w, o->cid, o->seq, keys, 2);
    o->live = 0;
    m->live--;
}

static void op_gc_absent(model *m) {
    uint64_t cid = 1 + rnd(m) % 8, seq = 1 + rnd(m) % (m->next_seq[cid] + 1);
    uint64_t keys[2] = {m->pool[rnd(m) % MODEL_POOL],
                        m->pool[rnd(m) % MODEL_POOL]};
    if (model_find(m, cid, seq)) return; /* only gc what is not recorded */
    witness_gc(m->w, cid, seq, keys, 2);
}

static void op_stale(model *m) {
    uint64_t before = m->round > 3 ? m->round - 3 : 0;
    size_t want = 0;
    for (size_t r = 0; r < m->n; r++)
        want += m->recs[r].live && m->recs[r].born < before;
    model_unsee(m);
    CHECK_EQ_LL(witness_stale(m->w, before, model_cb, m), want);
    for (size_t r = 0; r < m->n; r++)
        if (m->recs[r].live && (m->recs[r].born < before) != m->recs[r].seen)
            m->bad++;
}

static void op_collect(model *m) {
    m->term++;
    m->min_term = m->term;
    model_unsee(m);
    CHECK_EQ_LL(witness_collect(m->w, m->term, model_cb, m), m->live);
    for (size_t r = 0; r < m->n; r++) {
        if (m->recs[r].live && !m->recs[r].seen) m->bad++;
        m->recs[r].live = 0;
    }
    m->live = 0;
    CHECK_EQ_LL(witness_min_term(m->w), m->term);
}

static void run_model(unsigned sets_log2, unsigned ways, uint64_t seed) {
    model *m = calloc(1, sizeof *m);
    m->w = witness_create(sets_log2, ways);
    m->ways = ways;
    m->rng = seed;
    m->term = 1;
    for (int i = 0; i < MODEL_POOL; i++) m->pool[i] = rnd(m);
    int answers[5] = {0};
    for (int op = 0; op < MODEL_OPS; op++) {
        if (op % 10 == 0) m->round++;
        unsigned dice = (unsigned)(rnd(m) % 100);
        int got = -1, want = -1;
        if (dice < 45) op_new(m, &got, &want);
        else if (dice < 58) op_retry(m, &got, &want);
        else if (dice < 88) op_gc(m);
        else if (dice < 93) op_gc_absent(m);
        else if (dice < 99) op_stale(m);
        else op_collect(m);
        CHECK_EQ_LL(got, want);
        if (want >= 0) answers[want]++;
        if (got != want) break;
        if (op % 8 == 0) model_verify(m);
    }
    model_verify(m);
    /* The mix exercised every answer. */
    for (int a = 0; a < 5; a++) CHECK(answers[a] > 10);
    witness_counters st;
    witness_stats(m->w, &st);
    CHECK_EQ_LL(st.accepted + st.retried, answers[WITNESS_ACCEPTED]);
    CHECK_EQ_LL(st.conflict, answers[WITNESS_CONFLICT]);
    CHECK_EQ_LL(st.full, answers[WITNESS_FULL]);
    CHECK_EQ_LL(st.old_term, answers[WITNESS_OLD_TERM]);
    CHECK_EQ_LL(st.too_many, answers[WITNESS_TOO_MANY_KEYS]);
    witness_destroy(m->w);
    free(m);
}

static void test_gc_says_whether_it_dropped(void) {
    witness *w = witness_create(4, 4);
    uint64_t k = 77;
    CHECK_EQ_LL(rec1(w, 1, 1, k), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_gc(w, 1, 2, &k, 1), 0); /* another request on the key */
    CHECK_EQ_LL(witness_gc(w, 1, 1, &k, 1), 1);
    CHECK_EQ_LL(witness_gc(w, 1, 1, &k, 1), 0);
    CHECK_EQ_LL(witness_count(w), 0);
    witness_destroy(w);
}

/* Restoring from the log of accepted records: a later record replaces the
 * ones it conflicts with (they were gone when it was accepted), a repeat
 * keeps the first, a full set says FULL, and the result is what live
 * recording would hold. */
static void test_restore_replaces_conflicts(void) {
    witness *w = witness_create(4, 4);
    uint64_t ab[2] = {10, 11}, b = 11, c = 12;
    CHECK_EQ_LL(witness_restore(w, 3, 1, 1, ab, 2, "ab", 2, 0), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_restore(w, 3, 2, 1, &c, 1, "c", 1, 0), WITNESS_ACCEPTED);
    /* (2,2) on key 11 was accepted later: (1,1) had been dropped by then */
    CHECK_EQ_LL(witness_restore(w, 4, 2, 2, &b, 1, "b", 1, 0), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_count(w), 2);
    CHECK_EQ_LL(rec1(w, 9, 9, 10), WITNESS_ACCEPTED); /* key 10 is free again */
    CHECK_EQ_LL(rec1(w, 9, 10, 11), WITNESS_CONFLICT);
    /* the same request again keeps its first record (and bytes) */
    CHECK_EQ_LL(witness_restore(w, 5, 2, 1, &c, 1, "zz", 2, 0), WITNESS_ACCEPTED);
    seen s = {0};
    CHECK_EQ_LL(witness_collect(w, 6, collect_cb, &s), 3);
    int found = 0;
    for (size_t i = 0; i < s.n; i++)
        if (s.recs[i].cid == 2 && s.recs[i].seq == 1) {
            found = 1;
            CHECK_EQ_LL(s.recs[i].term, 3);
            CHECK(strcmp(s.bytes[i], "c") == 0);
        }
    CHECK(found);
    CHECK_EQ_LL(witness_restore(w, 1, 1, 1, NULL, 0, "", 0, 0), WITNESS_TOO_MANY_KEYS);
    witness_destroy(w);
    /* a full set */
    w = witness_create(2, 2);
    uint64_t k[3];
    keys_in_set(w, 1, 100, k, 3);
    CHECK_EQ_LL(witness_restore(w, 1, 1, 1, &k[0], 1, "", 0, 0), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_restore(w, 1, 1, 2, &k[1], 1, "", 0, 0), WITNESS_ACCEPTED);
    CHECK_EQ_LL(witness_restore(w, 1, 1, 3, &k[2], 1, "", 0, 0), WITNESS_FULL);
    witness_destroy(w);
}

static void test_random_against_model(void) {
    run_model(4, 2, 1);   /* 32 slots for 64 keys: many FULL */
    run_model(3, 4, 2);   /* 8 sets x 4 ways */
    run_model(6, 1, 3);   /* direct-mapped */
    run_model(0, 8, 4);   /* fully associative */
}

int main(void) {
    RUN(test_create_bounds);
    RUN(test_single_key_conflict);
    RUN(test_multikey_conflicts);
    RUN(test_full_set_rejects);
    RUN(test_same_set_needs_two_ways);
    RUN(test_duplicate_key_in_request);
    RUN(test_gc_from_either_key);
    RUN(test_retry_is_idempotent);
    RUN(test_too_many_keys);
    RUN(test_bytes_are_copied);
    RUN(test_stale_by_round);
    RUN(test_collect_freezes_old_terms);
    RUN(test_record_during_collect);
    RUN(test_gc_says_whether_it_dropped);
    RUN(test_restore_replaces_conflicts);
    RUN(test_random_against_model);
    return check_summary("witness");
}
