/* test_stream.c - unit tests for the stream storage (src/types/stream/stream.c) and
 * consumer groups (src/types/stream/group.c): blocks, seeks, tombstones, trimming,
 * the PEL skip list, consumers and the lag rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "types/stream/group.h"
#include "types/stream/stream.h"

static stream_id ID(uint64_t ms, uint64_t seq) { return (stream_id){ms, seq}; }

/* Append n entries with IDs i-0 (i = 1..n), one field "v" = value of vlen
 * bytes of 'a' + i % 26. */
static void fill(stream *s, int n, size_t vlen) {
    char *val = malloc(vlen + 1);
    for (int i = 1; i <= n; i++) {
        memset(val, 'a' + i % 26, vlen);
        stream_str fv[2] = {{"v", 1}, {val, vlen}};
        stream_append(s, ID((uint64_t)i, 0), fv, 2);
    }
    free(val);
}

/* IDs (ms parts) in [start, end] in the given direction, into out. */
static int collect(const stream *s, stream_id start, stream_id end, int rev, uint64_t *out,
                   int max) {
    stream_iter it;
    stream_id id;
    size_t nfv;
    int n = 0;
    stream_iter_init(&it, s, start, end, rev);
    while (n < max && stream_iter_next(&it, &id, &nfv)) {
        CHECK(nfv == 2);
        stream_str f = stream_iter_str(&it);
        CHECK_MEM(f.p, f.n, "v");
        stream_str v = stream_iter_str(&it);
        CHECK(v.n == 0 || v.p[0] == (char)('a' + id.ms % 26));
        out[n++] = id.ms;
    }
    stream_iter_free(&it);
    return n;
}

static void test_ids(void) {
    char buf[STREAM_ID_STRLEN];
    CHECK_MEM(buf, stream_id_format(STREAM_ID_MAX, buf), "18446744073709551615-18446744073709551615");
    stream_id id = ID(1, UINT64_MAX);
    CHECK(stream_id_incr(&id) == 0 && id.ms == 2 && id.seq == 0);
    CHECK(stream_id_decr(&id) == 0 && id.ms == 1 && id.seq == UINT64_MAX);
    id = STREAM_ID_MAX;
    CHECK(stream_id_incr(&id) == -1);
    id = STREAM_ID_ZERO;
    CHECK(stream_id_decr(&id) == -1);
    CHECK(stream_id_cmp(ID(1, 2), ID(1, 3)) < 0 && stream_id_cmp(ID(2, 0), ID(1, 9)) > 0);
}

static void test_append_and_ranges_across_blocks(void) {
    stream *s = stream_new();
    fill(s, 3000, 100); /* ~330 KB: several 64 KB blocks */
    CHECK(stream_block_count(s) >= 5);
    CHECK_EQ_LL(stream_length(s), 3000);
    CHECK_EQ_LL(stream_entries_added(s), 3000);
    CHECK(stream_id_cmp(stream_last_id(s), ID(3000, 0)) == 0);
    CHECK(stream_id_cmp(stream_first_id(s), ID(1, 0)) == 0);
    uint64_t *got = malloc(3000 * sizeof *got);
    CHECK_EQ_LL(collect(s, STREAM_ID_ZERO, STREAM_ID_MAX, 0, got, 3000), 3000);
    int ordered = 1;
    for (int i = 0; i < 3000; i++) ordered &= got[i] == (uint64_t)i + 1;
    CHECK(ordered);
    CHECK_EQ_LL(collect(s, ID(1000, 0), ID(1004, 0), 0, got, 100), 5);
    CHECK_EQ_LL(got[0], 1000);
    CHECK_EQ_LL(collect(s, ID(1000, 1), ID(2000, 0), 1, got, 3), 3);
    CHECK(got[0] == 2000 && got[1] == 1999 && got[2] == 1998);
    CHECK_EQ_LL(collect(s, STREAM_ID_ZERO, STREAM_ID_MAX, 1, got, 3000), 3000);
    CHECK(got[0] == 3000 && got[2999] == 1);
    CHECK_EQ_LL(collect(s, ID(5000, 0), STREAM_ID_MAX, 0, got, 10), 0);
    CHECK(stream_has_entry(s, ID(1234, 0)) && !stream_has_entry(s, ID(1234, 1)));
    /* memory close to the payload: ~100 B values + a few bytes per entry */
    CHECK(stream_mem(s) < 3000 * 100 * 3 / 2 + 64 * 1024);
    free(got);
    stream_free(s);
}

static void test_large_entry_gets_its_own_block(void) {
    stream *s = stream_new();
    fill(s, 2, 10);
    size_t big = 200 * 1024;
    char *val = malloc(big);
    memset(val, 'a' + 3 % 26, big);
    stream_str fv[2] = {{"v", 1}, {val, big}};
    stream_append(s, ID(3, 0), fv, 2);
    free(val);
    uint64_t got[4];
    CHECK_EQ_LL(collect(s, STREAM_ID_ZERO, STREAM_ID_MAX, 0, got, 4), 3);
    CHECK(stream_block_count(s) == 2);
    stream_free(s);
}

static void test_delete_tombstones_and_compaction(void) {
    stream *s = stream_new();
    fill(s, 2000, 50);
    size_t before = stream_mem(s);
    size_t blocks = stream_block_count(s);
    CHECK(stream_delete(s, ID(10, 0)) == 1);
    CHECK(stream_delete(s, ID(10, 0)) == 0);
    CHECK(stream_delete(s, ID(10, 5)) == 0);
    CHECK(stream_id_cmp(stream_max_deleted_id(s), ID(10, 0)) == 0);
    for (uint64_t i = 1; i <= 2000; i++)
        if (i % 10) stream_delete(s, ID(i, 0));
    CHECK_EQ_LL(stream_length(s), 199); /* 10-0 went first */
    CHECK(stream_mem(s) < before / 2);   /* mostly-deleted blocks compacted */
    uint64_t got[300];
    CHECK_EQ_LL(collect(s, STREAM_ID_ZERO, STREAM_ID_MAX, 0, got, 300), 199);
    CHECK(got[0] == 20 && got[198] == 2000);
    CHECK_EQ_LL(collect(s, STREAM_ID_ZERO, STREAM_ID_MAX, 1, got, 300), 199);
    CHECK(got[0] == 2000);
    for (uint64_t i = 20; i <= 2000; i += 10) stream_delete(s, ID(i, 0));
    CHECK_EQ_LL(stream_length(s), 0);
    CHECK_EQ_LL(stream_block_count(s), 0); /* empty blocks are freed */
    CHECK(blocks > 0);
    CHECK(stream_id_is_zero(stream_first_id(s)));
    /* the stream keeps growing after being emptied */
    stream_str fv[2] = {{"v", 1}, {"x", 1}};
    stream_append(s, ID(3000, 0), fv, 2);
    CHECK_EQ_LL(stream_length(s), 1);
    stream_free(s);
}

static void test_trim_maxlen(void) {
    stream *s = stream_new();
    fill(s, 5000, 100);
    uint64_t removed = stream_trim_maxlen(s, 4000, 1, 0);
    CHECK(removed < 1000);                       /* whole blocks only */
    CHECK(stream_length(s) >= 4000);
    CHECK_EQ_LL(removed + stream_length(s), 5000);
    removed = stream_trim_maxlen(s, 1000, 1, 10); /* a block is more than 10 */
    CHECK_EQ_LL(removed, 0);
    removed = stream_trim_maxlen(s, 1234, 0, 0);
    CHECK_EQ_LL(stream_length(s), 1234);
    CHECK(stream_id_cmp(stream_first_id(s), ID(5000 - 1234 + 1, 0)) == 0);
    CHECK(stream_id_is_zero(stream_max_deleted_id(s))); /* trims are not XDELs */
    CHECK_EQ_LL(stream_trim_maxlen(s, 0, 0, 0), 1234);
    CHECK_EQ_LL(stream_block_count(s), 0);
    CHECK(stream_id_cmp(stream_last_id(s), ID(5000, 0)) == 0);
    stream_free(s);
}

static void test_trim_minid(void) {
    stream *s = stream_new();
    fill(s, 5000, 100);
    uint64_t removed = stream_trim_minid(s, ID(2500, 0), 1, 0);
    CHECK(removed < 2499);
    uint64_t got[1];
    collect(s, STREAM_ID_ZERO, STREAM_ID_MAX, 0, got, 1);
    CHECK(got[0] <= 2500);
    CHECK_EQ_LL(removed + stream_length(s), 5000);
    stream_trim_minid(s, ID(2500, 0), 0, 0);
    CHECK(stream_id_cmp(stream_first_id(s), ID(2500, 0)) == 0);
    CHECK_EQ_LL(stream_length(s), 2501);
    stream_free(s);
}

/* ---- idmap (PEL skip list) against a sorted-array model ---- */

static void test_idmap_model(void) {
    idmap m;
    idmap_init(&m);
    enum { N = 4000 };
    static char present[N];
    memset(present, 0, sizeof present);
    unsigned seed = 12345;
    int ok = 1;
    for (int step = 0; step < 40000; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % N);
        stream_id id = ID((uint64_t)k / 4, (uint64_t)k % 4);
        if (present[k]) {
            ok &= idmap_remove(&m, id) == &present[k];
            present[k] = 0;
        } else {
            ok &= idmap_find(&m, id) == NULL;
            idmap_insert(&m, id, &present[k]);
            present[k] = 1;
        }
    }
    CHECK(ok);
    size_t count = 0;
    int last = -1;
    for (idmap_node *x = idmap_first(&m); x; x = x->next[0]) {
        int k = (int)(x->id.ms * 4 + x->id.seq);
        ok &= k > last && present[k];
        last = k;
        count++;
    }
    size_t want = 0;
    for (int k = 0; k < N; k++) want += (size_t)present[k];
    CHECK(ok);
    CHECK_EQ_LL(count, want);
    CHECK_EQ_LL(m.count, want);
    idmap_node *x = idmap_seek(&m, ID(500, 2));
    CHECK(x == NULL || stream_id_cmp(x->id, ID(500, 2)) >= 0);
    CHECK(idmap_last(&m) == NULL || (int)(idmap_last(&m)->id.ms * 4 + idmap_last(&m)->id.seq) == last);
    idmap_free(&m);
}

/* ---- groups, consumers, PELs ---- */

static void test_groups_and_pel(void) {
    stream *s = stream_new();
    fill(s, 10, 5);
    size_t base = stream_mem(s);
    CHECK(stream_group_create(s, "zeta", 4, STREAM_ID_ZERO, 0) != NULL);
    CHECK(stream_group_create(s, "alpha", 5, STREAM_ID_ZERO, 0) != NULL);
    CHECK(stream_group_create(s, "alpha", 5, STREAM_ID_ZERO, 0) == NULL);
    CHECK_EQ_LL(stream_group_count(s), 2);
    CHECK_MEM(stream_group_at(s, 0)->name, 5, "alpha"); /* sorted by name */
    stream_group *g = stream_group_find(s, "alpha", 5);
    stream_consumer *bob = group_consumer_create(s, g, "bob", 3, 100);
    stream_consumer *al = group_consumer_create(s, g, "al", 2, 100);
    CHECK(group_consumer_create(s, g, "al", 2, 100) == NULL);
    CHECK(g->cons[0] == al && g->cons[1] == bob);
    for (uint64_t i = 1; i <= 6; i++) group_nack_add(s, g, i % 2 ? al : bob, ID(i, 0), 1000, 1);
    CHECK_EQ_LL(g->pel.count, 6);
    CHECK_EQ_LL(al->pel.count, 3);
    stream_nack *nk = group_nack_find(g, ID(2, 0));
    CHECK(nk && nk->owner == bob);
    group_nack_transfer(nk, al);
    CHECK(nk->owner == al && al->pel.count == 4 && bob->pel.count == 2);
    CHECK(group_ack(s, g, ID(2, 0)) == 1);
    CHECK(group_ack(s, g, ID(2, 0)) == 0);
    CHECK_EQ_LL(al->pel.count, 3);
    CHECK_EQ_LL(group_consumer_delete(s, g, "bob", 3), 2);
    CHECK_EQ_LL(group_consumer_delete(s, g, "bob", 3), -1);
    CHECK_EQ_LL(g->pel.count, 3);
    CHECK(stream_group_destroy(s, "alpha", 5) == 1);
    CHECK(stream_group_destroy(s, "zeta", 4) == 1);
    CHECK(stream_group_destroy(s, "zeta", 4) == 0);
    CHECK_EQ_LL(stream_mem(s), base); /* the accounting returns to the start */
    stream_free(s);
}

static void test_lag_rules(void) {
    stream *s = stream_new();
    stream_group *g = stream_group_create(s, "g", 1, STREAM_ID_ZERO, 0);
    int64_t lag = 99;
    CHECK(group_lag(s, g, &lag) && lag == 0); /* nothing ever added */
    fill(s, 10, 3);
    CHECK(group_lag(s, g, &lag) && lag == 10);
    for (uint64_t i = 1; i <= 4; i++) group_advance(s, g, ID(i, 0));
    CHECK_EQ_LL(g->entries_read, 4);
    CHECK(group_lag(s, g, &lag) && lag == 6);
    stream_delete(s, ID(7, 0)); /* a tombstone ahead: lag unknown */
    CHECK(!group_lag(s, g, &lag));
    for (uint64_t i = 5; i <= 10; i++) /* reading on, past the tombstone */
        if (i != 7) group_advance(s, g, ID(i, 0));
    CHECK(group_lag(s, g, &lag) && lag == 0);
    stream_group *h = stream_group_create(s, "h", 1, STREAM_ID_ZERO, GROUP_ENTRIES_READ_UNKNOWN);
    CHECK(!group_lag(s, h, &lag)); /* XDEL after the first entry: cannot tell */
    stream_free(s);
    s = stream_new();
    fill(s, 10, 3);
    stream_trim_maxlen(s, 5, 0, 0);
    h = stream_group_create(s, "h", 1, STREAM_ID_ZERO, GROUP_ENTRIES_READ_UNKNOWN);
    CHECK(group_lag(s, h, &lag) && lag == 5); /* only trims: the count is known */
    CHECK_EQ_LL(stream_estimate_read(s, ID(6, 0)), 6);
    CHECK_EQ_LL(stream_estimate_read(s, ID(11, 0)), GROUP_ENTRIES_READ_UNKNOWN);
    stream_free(s);
}

/* ---- serialization ---- */

typedef struct sink_buf {
    unsigned char *p;
    size_t n, cap;
} sink_buf;

static void to_buf(void *arg, const void *p, size_t n) {
    sink_buf *b = arg;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static stream *sample_stream(void) {
    stream *s = stream_new();
    fill(s, 500, 40);
    stream_delete(s, ID(7, 0));
    stream_trim_maxlen(s, 450, 0, 0);
    stream_group *g = stream_group_create(s, "grp", 3, ID(100, 0), 99);
    stream_consumer *a = group_consumer_create(s, g, "a", 1, 111);
    stream_consumer *b = group_consumer_create(s, g, "b", 1, 222);
    for (uint64_t i = 60; i < 100; i++) group_nack_add(s, g, i % 2 ? a : b, ID(i, 0), 1000 + (int64_t)i, i % 5);
    stream_group_create(s, "empty", 5, STREAM_ID_ZERO, GROUP_ENTRIES_READ_UNKNOWN);
    return s;
}

static void test_codec_roundtrip(void) {
    stream *s = sample_stream();
    sink_buf one = {0}, two = {0};
    uint64_t measured = stream_serialize(s, NULL, NULL);
    CHECK_EQ_LL(stream_serialize(s, to_buf, &one), measured);
    CHECK_EQ_LL(one.n, measured);
    stream *t = stream_deserialize(one.p, one.n);
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ_LL(stream_length(t), 450);
        CHECK(stream_id_cmp(stream_last_id(t), ID(500, 0)) == 0);
        CHECK_EQ_LL(stream_entries_added(t), 500);
        CHECK(stream_id_cmp(stream_max_deleted_id(t), ID(7, 0)) == 0);
        stream_group *g = stream_group_find(t, "grp", 3);
        CHECK(g && g->entries_read == 99 && g->pel.count == 40 && g->ncons == 2);
        CHECK(stream_group_find(t, "empty", 5)->entries_read == GROUP_ENTRIES_READ_UNKNOWN);
        stream_nack *nk = g ? group_nack_find(g, ID(61, 0)) : NULL;
        CHECK(nk && nk->owner->name[0] == 'a' && nk->delivery_time == 1061 && nk->delivery_count == 1);
        stream_serialize(t, to_buf, &two); /* same bytes again */
        CHECK(two.n == one.n && memcmp(one.p, two.p, one.n) == 0);
        stream_free(t);
    }
    free(two.p);
    /* every truncation and a sample of byte flips are rejected or yield
     * a well-formed stream, never a crash (ASan watches) */
    for (size_t cut = 0; cut < one.n; cut += 1 + cut / 8) {
        stream *bad = stream_deserialize(one.p, cut);
        CHECK(bad == NULL);
        stream_free(bad);
    }
    for (size_t i = 0; i < one.n; i += 7) {
        one.p[i] ^= 0x5a;
        stream_free(stream_deserialize(one.p, one.n));
        one.p[i] ^= 0x5a;
    }
    free(one.p);
    stream_free(s);
}

int main(void) {
    RUN(test_ids);
    RUN(test_append_and_ranges_across_blocks);
    RUN(test_large_entry_gets_its_own_block);
    RUN(test_delete_tombstones_and_compaction);
    RUN(test_trim_maxlen);
    RUN(test_trim_minid);
    RUN(test_idmap_model);
    RUN(test_groups_and_pel);
    RUN(test_lag_rules);
    RUN(test_codec_roundtrip);
    return check_summary("stream");
}
