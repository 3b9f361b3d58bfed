/* Unit tests for the exactly-once table (src/cluster/rifl.c). */
#include "../../src/cluster/rifl.h"
#include "check.h"

#include <stdlib.h>

static void put(rifl *r, uint64_t cid, uint64_t seq, const char *res,
                int64_t now) {
    rifl_record(r, cid, seq, res, strlen(res), now);
}

static int state(rifl *r, uint64_t cid, uint64_t seq) {
    return rifl_check(r, cid, seq, NULL, NULL);
}

static void test_create_bounds(void) {
    CHECK(rifl_create(0) == NULL);
    CHECK(rifl_create(RIFL_MAX_WINDOW + 1) == NULL);
    rifl_destroy(NULL);
    rifl *r = rifl_create(1);
    CHECK(r != NULL);
    CHECK_EQ_LL(rifl_clients(r), 0);
    CHECK(rifl_bytes(r) > 0);
    rifl_destroy(r);
}

static void test_new_then_done(void) {
    rifl *r = rifl_create(256);
    const void *res = (const void *)1;
    size_t len = 99;
    CHECK_EQ_LL(rifl_check(r, 7, 1, &res, &len), RIFL_NEW);
    CHECK(res == NULL);
    CHECK_EQ_LL(len, 0);
    put(r, 7, 1, "+OK\r\n", 0);
    CHECK_EQ_LL(rifl_check(r, 7, 1, &res, &len), RIFL_DONE);
    CHECK_MEM(res, len, "+OK\r\n");
    CHECK_EQ_LL(state(r, 7, 2), RIFL_NEW);
    CHECK_EQ_LL(state(r, 8, 1), RIFL_NEW); /* another client */
    CHECK_EQ_LL(rifl_clients(r), 1);
    /* The first result is kept: it is the one the client may have seen. */
    put(r, 7, 1, ":2\r\n", 0);
    CHECK_EQ_LL(rifl_check(r, 7, 1, &res, &len), RIFL_DONE);
    CHECK_MEM(res, len, "+OK\r\n");
    /* cid 0 / seq 0: no exactly-once. */
    put(r, 0, 5, "x", 0);
    put(r, 9, 0, "x", 0);
    CHECK_EQ_LL(state(r, 0, 5), RIFL_NEW);
    CHECK_EQ_LL(state(r, 9, 0), RIFL_NEW);
    CHECK_EQ_LL(state(r, 7, 0), RIFL_NEW);
    CHECK_EQ_LL(rifl_clients(r), 1);
    rifl_destroy(r);
}

/* Pipelined requests applied out of order by a few: a gap inside the
 * window stays NEW until it is applied. */
static void test_out_of_order_within_window(void) {
    rifl *r = rifl_create(8);
    put(r, 1, 1, "a", 0);
    put(r, 1, 2, "b", 0);
    put(r, 1, 4, "d", 0);
    put(r, 1, 5, "e", 0);
    CHECK_EQ_LL(state(r, 1, 3), RIFL_NEW);
    put(r, 1, 3, "c", 0);
    const void *res;
    size_t len;
    CHECK_EQ_LL(rifl_check(r, 1, 3, &res, &len), RIFL_DONE);
    CHECK_MEM(res, len, "c");
    put(r, 1, 10, "j", 0); /* window now 3..10 */
    put(r, 1, 7, "g", 0);  /* late, still inside */
    CHECK_EQ_LL(rifl_check(r, 1, 7, &res, &len), RIFL_DONE);
    CHECK_MEM(res, len, "g");
    CHECK_EQ_LL(state(r, 1, 6), RIFL_NEW);
    CHECK_EQ_LL(state(r, 1, 8), RIFL_NEW);
    CHECK_EQ_LL(state(r, 1, 9), RIFL_NEW);
    CHECK_EQ_LL(state(r, 1, 11), RIFL_NEW);
    CHECK_EQ_LL(state(r, 1, 3), RIFL_DONE);
    CHECK_EQ_LL(state(r, 1, 2), RIFL_STALE);
    CHECK_EQ_LL(rifl_check(r, 1, 4, &res, &len), RIFL_DONE);
    CHECK_MEM(res, len, "d");
    rifl_destroy(r);
}

static void test_window_slides(void) {
    rifl *r = rifl_create(4);
    for (uint64_t s = 1; s <= 4; s++) put(r, 1, s, "r", 0);
    for (uint64_t s = 1; s <= 4; s++) CHECK_EQ_LL(state(r, 1, s), RIFL_DONE);
    put(r, 1, 5, "r", 0);
    CHECK_EQ_LL(state(r, 1, 1), RIFL_STALE);
    for (uint64_t s = 2; s <= 5; s++) CHECK_EQ_LL(state(r, 1, s), RIFL_DONE);
    /* A jump: everything at or below 96 leaves the window at once. */
    put(r, 1, 100, "big", 0);
    CHECK_EQ_LL(state(r, 1, 5), RIFL_STALE);
    CHECK_EQ_LL(state(r, 1, 96), RIFL_STALE);
    CHECK_EQ_LL(state(r, 1, 97), RIFL_NEW);
    CHECK_EQ_LL(state(r, 1, 99), RIFL_NEW);
    CHECK_EQ_LL(state(r, 1, 100), RIFL_DONE);
    /* Recording below the window is ignored. */
    put(r, 1, 50, "late", 0);
    CHECK_EQ_LL(state(r, 1, 50), RIFL_STALE);
    CHECK_EQ_LL(state(r, 1, 97), RIFL_NEW);
    /* Slots still holding seqs 1..5 do not answer for 97..99. */
    put(r, 1, 97, "y", 0);
    CHECK_EQ_LL(state(r, 1, 97), RIFL_DONE);
    CHECK_EQ_LL(state(r, 1, 98), RIFL_NEW);
    put(r, 1, 101, "x", 0); /* 97 leaves the window */
    CHECK_EQ_LL(state(r, 1, 97), RIFL_STALE);
    CHECK_EQ_LL(state(r, 1, 98), RIFL_NEW);
    CHECK_EQ_LL(state(r, 1, 101), RIFL_DONE);
    /* Window 1: only the highest is kept. */
    rifl *one = rifl_create(1);
    put(one, 3, 1, "a", 0);
    put(one, 3, 2, "b", 0);
    CHECK_EQ_LL(state(one, 3, 1), RIFL_STALE);
    CHECK_EQ_LL(state(one, 3, 2), RIFL_DONE);
    CHECK_EQ_LL(state(one, 3, 3), RIFL_NEW);
    rifl_destroy(one);
    rifl_destroy(r);
}

/* Near the top of the seq space nothing wraps. */
static void test_huge_seqs(void) {
    rifl *r = rifl_create(4);
    put(r, 1, UINT64_MAX - 1, "a", 0);
    CHECK_EQ_LL(state(r, 1, UINT64_MAX - 1), RIFL_DONE);
    CHECK_EQ_LL(state(r, 1, UINT64_MAX), RIFL_NEW);
    CHECK_EQ_LL(state(r, 1, UINT64_MAX - 4), RIFL_NEW);
    CHECK_EQ_LL(state(r, 1, UINT64_MAX - 5), RIFL_STALE);
    CHECK_EQ_LL(state(r, 1, 1), RIFL_STALE);
    put(r, 2, 3, "b", 0); /* highest below the window size */
    CHECK_EQ_LL(state(r, 2, 1), RIFL_NEW);
    rifl_destroy(r);
}

static void test_result_sizes(void) {
    rifl *r = rifl_create(4);
    size_t base = rifl_bytes(r);
    const size_t sizes[] = {0, 1, 15, 16, 17, 100, 4096, 1 << 20};
    const size_t n = sizeof sizes / sizeof sizes[0];
    unsigned char *buf = malloc(1 << 20);
    for (size_t i = 0; i < n; i++) {
        for (size_t b = 0; b < sizes[i]; b++) buf[b] = (unsigned char)(b * 7 + i);
        rifl_record(r, 10 + i, 1, buf, sizes[i], 0);
    }
    size_t heap = 17 + 100 + 4096 + (1 << 20);
    CHECK(rifl_bytes(r) >= base + heap);
    for (size_t i = 0; i < n; i++) {
        const void *res = NULL;
        size_t len = 99;
        CHECK_EQ_LL(rifl_check(r, 10 + i, 1, &res, &len), RIFL_DONE);
        CHECK(res != NULL); /* even for an empty result */
        CHECK_EQ_LL(len, sizes[i]);
        const unsigned char *p = res;
        int same = 1;
        for (size_t b = 0; b < len; b++) same &= p[b] == (unsigned char)(b * 7 + i);
        CHECK(same);
    }
    /* Sliding over a large result frees it (ASan would report a leak). */
    size_t before = rifl_bytes(r);
    for (uint64_t s = 2; s <= 5; s++) rifl_record(r, 10 + n - 1, s, "k", 1, 0);
    CHECK_EQ_LL(state(r, 10 + n - 1, 1), RIFL_STALE);
    CHECK_EQ_LL(before - rifl_bytes(r), 1 << 20);
    CHECK_EQ_LL(rifl_expire(r, 1, 1), n);
    CHECK_EQ_LL(rifl_bytes(r), base);
    free(buf);
    rifl_destroy(r);
}

static void test_expiry(void) {
    rifl *r = rifl_create(16);
    put(r, 1, 1, "a", 0);
    put(r, 2, 1, "b", 100);
    put(r, 3, 1, "c", 200);
    CHECK_EQ_LL(rifl_expire(r, 150, 100), 1); /* client 1: idle 150 */
    CHECK_EQ_LL(rifl_clients(r), 2);
    CHECK_EQ_LL(state(r, 1, 1), RIFL_NEW); /* forgotten */
    CHECK_EQ_LL(state(r, 2, 1), RIFL_DONE);
    /* Any record refreshes, even an ignored one (the client is alive). */
    put(r, 2, 1, "again", 240);
    CHECK_EQ_LL(rifl_expire(r, 300, 100), 1); /* client 3: idle exactly 100 */
    CHECK_EQ_LL(state(r, 2, 1), RIFL_DONE);
    CHECK_EQ_LL(state(r, 3, 1), RIFL_NEW);
    CHECK_EQ_LL(rifl_expire(r, 339, 100), 0);
    CHECK_EQ_LL(rifl_expire(r, 340, 100), 1);
    CHECK_EQ_LL(rifl_clients(r), 0);
    CHECK_EQ_LL(rifl_expire(r, 1000, 1), 0);
    rifl_destroy(r);
}

/* Enough clients to grow the table many times, then shrink it. */
static void test_many_clients(void) {
    rifl *r = rifl_create(4);
    size_t base = rifl_bytes(r);
    const uint64_t n = 20000;
    char res[32];
    for (uint64_t c = 1; c <= n; c++) {
        /* spread ids the way leases might: sequential and far apart */
        uint64_t cid = c % 2 ? c : c << 40;
        for (uint64_t s = 1; s <= 3; s++) {
            snprintf(res, sizeof res, "%llu:%llu", (unsigned long long)cid,
                     (unsigned long long)s);
            rifl_record(r, cid, s, res, strlen(res), (int64_t)(c % 2));
        }
    }
    CHECK_EQ_LL(rifl_clients(r), n);
    int bad = 0;
    for (uint64_t c = 1; c <= n; c++) {
        uint64_t cid = c % 2 ? c : c << 40;
        const void *got;
        size_t len;
        snprintf(res, sizeof res, "%llu:2", (unsigned long long)cid);
        bad += rifl_check(r, cid, 2, &got, &len) != RIFL_DONE ||
               len != strlen(res) || memcmp(got, res, len) != 0;
        bad += state(r, cid, 4) != RIFL_NEW;
    }
    CHECK_EQ_LL(bad, 0);
    /* Even ids were recorded at time 0, odd at 1. */
    CHECK_EQ_LL(rifl_expire(r, 10, 10), n / 2);
    CHECK_EQ_LL(rifl_clients(r), n / 2);
    for (uint64_t c = 1; c <= n; c++) {
        uint64_t cid = c % 2 ? c : c << 40;
        bad += state(r, cid, 3) != (c % 2 ? RIFL_DONE : RIFL_NEW);
    }
    CHECK_EQ_LL(bad, 0);
    CHECK_EQ_LL(rifl_expire(r, 11, 10), n / 2);
    CHECK_EQ_LL(rifl_bytes(r), base); /* the table shrank back too */
    rifl_destroy(r);
}

/* ---- randomized test against a reference model: every applied seq of
 * every client with its result, plus the highest seq. */

#define M_CLIENTS 12
#define M_SEQS 3000
#define M_WINDOW 16

typedef struct mres {
    int applied;
    size_t len;
    unsigned char bytes[40];
} mres;

typedef struct mclient {
    uint64_t highest;
    mres seqs[M_SEQS + 1];
} mclient;

static uint64_t rnd(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int model_state(const mclient *c, uint64_t seq) {
    if (c->highest >= M_WINDOW && seq <= c->highest - M_WINDOW) return RIFL_STALE;
    return c->seqs[seq].applied ? RIFL_DONE : RIFL_NEW;
}

/* A seq near the client's highest: a little behind (sometimes past the
 * window), at, or a little ahead. */
static uint64_t pick_seq(const mclient *c, uint64_t *rng) {
    int64_t s = (int64_t)c->highest - (M_WINDOW + 3) + (int64_t)(rnd(rng) % (M_WINDOW + 9));
    if (s < 1) s = 1;
    if (s > M_SEQS) s = M_SEQS;
    return (uint64_t)s;
}

/* Apply seq: a random result in the model and the table. */
static void model_apply(rifl *r, mclient *c, uint64_t cid, uint64_t seq,
                        uint64_t *rng, int64_t now) {
    mres *x = &c->seqs[seq];
    x->len = rnd(rng) % sizeof x->bytes;
    for (size_t b = 0; b < x->len; b++) x->bytes[b] = (unsigned char)rnd(rng);
    x->applied = 1;
    if (seq > c->highest) c->highest = seq;
    rifl_record(r, cid, seq, x->bytes, x->len, now);
}

static void test_random_against_model(void) {
    mclient *m = calloc(M_CLIENTS, sizeof *m);
    int64_t last[M_CLIENTS] = {0};
    rifl *r = rifl_create(M_WINDOW);
    uint64_t rng = 42;
    int bad = 0, seen[3] = {0};
    for (int64_t now = 1; now <= 20000; now++) {
        uint64_t cid = 1 + rnd(&rng) % M_CLIENTS;
        mclient *c = &m[cid - 1];
        uint64_t seq = pick_seq(c, &rng);
        int want = model_state(c, seq);
        const void *res;
        size_t len;
        int got = rifl_check(r, cid, seq, &res, &len);
        seen[want]++;
        bad += got != want;
        if (got == RIFL_DONE && want == RIFL_DONE)
            bad += len != c->seqs[seq].len || memcmp(res, c->seqs[seq].bytes, len);
        if (want == RIFL_NEW && rnd(&rng) % 4) {
            model_apply(r, c, cid, seq, &rng, now);
            last[cid - 1] = now;
        } else if (want != RIFL_NEW && rnd(&rng) % 4 == 0) {
            /* a duplicate or too old: ignored, but the client is alive */
            rifl_record(r, cid, seq, "dup", 3, now);
            last[cid - 1] = now;
        }
        if (now % 1000 == 0) { /* forget clients idle for 300 */
            size_t idle = 0;
            for (int k = 0; k < M_CLIENTS; k++) {
                if (m[k].highest == 0 || now - last[k] < 300) continue;
                idle++;
                memset(&m[k], 0, sizeof m[k]);
            }
            CHECK_EQ_LL(rifl_expire(r, now, 300), idle);
        }
    }
    CHECK_EQ_LL(bad, 0);
    for (int k = 0; k < 3; k++) CHECK(seen[k] > 500);
    rifl_destroy(r);
    free(m);
}

int main(void) {
    RUN(test_create_bounds);
    RUN(test_new_then_done);
    RUN(test_out_of_order_within_window);
    RUN(test_window_slides);
    RUN(test_huge_seqs);
    RUN(test_result_sizes);
    RUN(test_expiry);
    RUN(test_many_clients);
    RUN(test_random_against_model);
    return check_summary("rifl");
}
