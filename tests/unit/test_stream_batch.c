/* test_stream_batch.c - the stream's bulk append (stream_append_batch)
 * and the batch publishers' exactly-once state (stream_pub_*), including
 * their round trip through the stream encoding of snapshots. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "types/stream/stream.h"

/* count messages; message i is i % 251 repeated (size(i)) times */
static unsigned char *make_payload(uint32_t count, size_t (*size)(uint32_t), size_t *len) {
    size_t total = 0;
    for (uint32_t i = 0; i < count; i++) total += 4 + size(i);
    unsigned char *p = malloc(total ? total : 1), *w = p;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t n = (uint32_t)size(i);
        for (int k = 0; k < 4; k++) *w++ = (unsigned char)(n >> (8 * k));
        memset(w, (int)(i % 251), n);
        w += n;
    }
    *len = total;
    return p;
}

static size_t small(uint32_t i) { return i % 7; }
static size_t mixed(uint32_t i) { return i % 10 == 3 ? 100000 : 1 + i * 13 % 300; }

/* Every entry: consecutive IDs from first, one field "data", the bytes. */
static void check_entries(const stream *s, stream_id first, uint32_t count,
                          size_t (*size)(uint32_t)) {
    stream_iter it;
    stream_id id;
    size_t nfv;
    uint32_t i = 0;
    stream_iter_init(&it, s, first, STREAM_ID_MAX, 0);
    while (stream_iter_next(&it, &id, &nfv) && i < count) {
        CHECK(id.ms == first.ms && id.seq == first.seq + i);
        CHECK_EQ_LL(nfv, 2);
        stream_str f = stream_iter_str(&it), v = stream_iter_str(&it);
        CHECK_MEM(f.p, f.n, "data");
        CHECK_EQ_LL(v.n, size(i));
        int same = 1;
        for (size_t k = 0; k < v.n; k++) same &= (unsigned char)v.p[k] == i % 251;
        CHECK(same);
        i++;
    }
    stream_iter_free(&it);
    CHECK_EQ_LL(i, count);
}

static void test_append_batch_small_messages(void) {
    stream *s = stream_new();
    size_t len;
    uint32_t count = 20000; /* many blocks */
    unsigned char *p = make_payload(count, small, &len);
    stream_append_batch(s, (stream_id){1000, 0}, p, len, count);
    CHECK_EQ_LL(stream_length(s), count);
    CHECK_EQ_LL(stream_entries_added(s), count);
    CHECK(stream_last_id(s).ms == 1000 && stream_last_id(s).seq == count - 1);
    CHECK(stream_block_count(s) > 1);
    check_entries(s, (stream_id){1000, 0}, count, small);
    free(p);
    stream_free(s);
}

static void test_append_batch_after_entries_and_big_messages(void) {
    stream *s = stream_new();
    stream_str fv[2] = {{"a", 1}, {"b", 1}};
    stream_append(s, (stream_id){5, 9}, fv, 2);
    size_t len;
    uint32_t count = 50;
    unsigned char *p = make_payload(count, mixed, &len);
    size_t before = stream_mem(s);
    stream_append_batch(s, (stream_id){5, 10}, p, len, count);
    CHECK(stream_mem(s) >= before + len - 4 * count);
    CHECK_EQ_LL(stream_length(s), count + 1);
    check_entries(s, (stream_id){5, 10}, count, mixed);
    /* the entry before the batch is intact */
    stream_iter it;
    stream_id id;
    size_t nfv;
    stream_iter_init(&it, s, STREAM_ID_ZERO, STREAM_ID_MAX, 0);
    CHECK(stream_iter_next(&it, &id, &nfv) && id.ms == 5 && id.seq == 9);
    stream_iter_free(&it);
    /* reverse iteration crosses the batch's blocks */
    stream_iter_init(&it, s, STREAM_ID_ZERO, STREAM_ID_MAX, 1);
    CHECK(stream_iter_next(&it, &id, &nfv) && id.seq == 10 + count - 1);
    stream_iter_free(&it);
    free(p);
    stream_free(s);
}

static void test_publisher_state(void) {
    stream *s = stream_new();
    CHECK_EQ_LL(stream_pub_seq(s, 1), 0);
    size_t mem0 = stream_mem(s);
    uint64_t ids[] = {50, 3, UINT64_MAX, 7, 20};
    for (size_t i = 0; i < 5; i++) stream_pub_set(s, ids[i], i + 1);
    CHECK(stream_mem(s) > mem0);
    CHECK_EQ_LL(stream_pub_count(s), 5);
    CHECK_EQ_LL(stream_pub_seq(s, 50), 1);
    CHECK_EQ_LL(stream_pub_seq(s, UINT64_MAX), 3);
    CHECK_EQ_LL(stream_pub_seq(s, 8), 0);
    stream_pub_set(s, 7, 99); /* update in place */
    CHECK_EQ_LL(stream_pub_count(s), 5);
    CHECK_EQ_LL(stream_pub_seq(s, 7), 99);
    uint64_t prev = 0;
    for (size_t i = 0; i < stream_pub_count(s); i++) {
        uint64_t id, seq;
        stream_pub_at(s, i, &id, &seq);
        CHECK(id > prev); /* ascending */
        prev = id;
    }
    stream_free(s);
}

static void sink_to_buf(void *arg, const void *p, size_t n) {
    unsigned char **w = arg;
    memcpy(*w, p, n);
    *w += n;
}

static unsigned char *encode(const stream *s, size_t *n) {
    *n = (size_t)stream_serialize(s, NULL, NULL);
    unsigned char *buf = malloc(*n), *w = buf;
    stream_serialize(s, sink_to_buf, &w);
    return buf;
}

static void test_encoding_carries_publishers_and_stays_compatible(void) {
    stream *s = stream_new();
    size_t len, n_plain, n_pub;
    unsigned char *p = make_payload(10, small, &len);
    stream_append_batch(s, (stream_id){1, 1}, p, len, 10);
    unsigned char *plain = encode(s, &n_plain);
    stream_pub_set(s, 42, 7);
    stream_pub_set(s, 1ull << 60, 3);
    unsigned char *with_pub = encode(s, &n_pub);
    /* without publishers: the encoding of before the section existed */
    CHECK(n_pub > n_plain && memcmp(plain, with_pub, n_plain) == 0);
    stream *back = stream_deserialize(with_pub, n_pub);
    CHECK(back != NULL);
    if (back) {
        CHECK_EQ_LL(stream_pub_seq(back, 42), 7);
        CHECK_EQ_LL(stream_pub_seq(back, 1ull << 60), 3);
        CHECK_EQ_LL(stream_length(back), 10);
        stream_free(back);
    }
    back = stream_deserialize(plain, n_plain);
    CHECK(back && stream_pub_count(back) == 0);
    stream_free(back);
    /* corrupt sections are refused: unknown tag, truncated, not ascending */
    with_pub[n_plain] = 2;
    CHECK(stream_deserialize(with_pub, n_pub) == NULL);
    with_pub[n_plain] = 1;
    CHECK(stream_deserialize(with_pub, n_pub - 1) == NULL);
    unsigned char *bad = malloc(n_plain + 6);
    memcpy(bad, plain, n_plain);
    size_t k = n_plain;
    bad[k++] = 1; /* tag */
    bad[k++] = 2; /* two publishers, ids 5 then 5 */
    bad[k++] = 5;
    bad[k++] = 1;
    bad[k++] = 5;
    bad[k++] = 1;
    CHECK(stream_deserialize(bad, k) == NULL);
    bad[k - 2] = 6; /* 5 then 6: fine */
    back = stream_deserialize(bad, k);
    CHECK(back && stream_pub_seq(back, 6) == 1);
    stream_free(back);
    free(bad);
    free(p);
    free(plain);
    free(with_pub);
    stream_free(s);
}

int main(void) {
    RUN(test_append_batch_small_messages);
    RUN(test_append_batch_after_entries_and_big_messages);
    RUN(test_publisher_state);
    RUN(test_encoding_carries_publishers_and_stays_compatible);
    return check_summary("stream_batch");
}
