/* test_codec.c - src/lib/codec.h: varints (round trips at every length
 * boundary, truncated and overlong input rejected, no read past the
 * input) and little-endian integers. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib/codec.h"

/* The boundaries of every varint length: 2^(7k) - 1 and 2^(7k). */
static void test_varint_round_trip_boundaries(void) {
    for (unsigned k = 1; k <= 9; k++) {
        uint64_t edge = (uint64_t)1 << (7 * k);
        uint64_t values[] = {edge - 1, edge};
        for (int j = 0; j < 2; j++) {
            unsigned char b[CODEC_VARINT_MAX];
            uint64_t v = values[j], back = 0;
            size_t n = codec_varint_put(b, v);
            CHECK_EQ_LL(n, j == 0 ? k : k + 1);
            CHECK_EQ_LL(n, codec_varint_len(v));
            CHECK_EQ_LL(codec_varint_get(b, n, &back), n);
            CHECK(back == v);
        }
    }
    uint64_t ends[] = {0, 1, 127, 128, 300, UINT32_MAX, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        unsigned char b[CODEC_VARINT_MAX];
        uint64_t back = 0;
        size_t n = codec_varint_put(b, ends[i]);
        CHECK_EQ_LL(codec_varint_get(b, sizeof b, &back), n); /* room after it is fine */
        CHECK(back == ends[i]);
    }
    unsigned char b[CODEC_VARINT_MAX];
    CHECK_EQ_LL(codec_varint_put(b, UINT64_MAX), CODEC_VARINT_MAX);
    CHECK_EQ_LL(b[9], 1);
    CHECK_EQ_LL(codec_varint_put(b, 0), 1);
    CHECK_EQ_LL(b[0], 0);
    CHECK_EQ_LL(codec_varint_put(b, 300), 2);
    CHECK(b[0] == 0xAC && b[1] == 0x02); /* the LEB128 textbook example */
}

static void test_varint_truncated_rejected(void) {
    uint64_t values[] = {0, 128, 16384, UINT32_MAX, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        unsigned char b[CODEC_VARINT_MAX];
        size_t n = codec_varint_put(b, values[i]);
        for (size_t cut = 0; cut < n; cut++) {
            uint64_t v = 42;
            CHECK_EQ_LL(codec_varint_get(b, cut, &v), 0);
            CHECK_EQ_LL(v, 0); /* 0 on failure */
        }
    }
}

static void test_varint_overlong_rejected(void) {
    uint64_t v = 7;
    /* eleven continuation bytes: longer than any 64-bit value */
    unsigned char too_long[11];
    memset(too_long, 0x80, sizeof too_long);
    CHECK_EQ_LL(codec_varint_get(too_long, sizeof too_long, &v), 0);
    /* ten bytes whose last group carries bits past 64 */
    unsigned char past64[CODEC_VARINT_MAX];
    memset(past64, 0xFF, 9);
    past64[9] = 0x02;
    CHECK_EQ_LL(codec_varint_get(past64, sizeof past64, &v), 0);
    /* ten bytes whose last still has the continuation bit */
    past64[9] = 0x81;
    CHECK_EQ_LL(codec_varint_get(past64, sizeof past64, &v), 0);
    CHECK_EQ_LL(v, 0);
    /* 2^64 - 1 is the largest that fits */
    past64[9] = 0x01;
    CHECK_EQ_LL(codec_varint_get(past64, sizeof past64, &v), CODEC_VARINT_MAX);
    CHECK(v == UINT64_MAX);
    /* a non-minimal encoding is read (the formats allowed it) */
    unsigned char padded[] = {0x81, 0x80, 0x00};
    CHECK_EQ_LL(codec_varint_get(padded, sizeof padded, &v), 3);
    CHECK_EQ_LL(v, 1);
}

/* The reader stops at the varint's last byte: an exact-size heap copy
 * (ASan) shows any read past it. */
static void test_varint_reads_no_further(void) {
    unsigned char b[CODEC_VARINT_MAX];
    size_t n = codec_varint_put(b, 1u << 20);
    unsigned char *exact = malloc(n);
    CHECK(exact != NULL);
    memcpy(exact, b, n);
    uint64_t v = 0;
    CHECK_EQ_LL(codec_varint_get(exact, CODEC_VARINT_MAX, &v), n); /* trusted form */
    CHECK(v == 1u << 20);
    free(exact);
}

static void test_little_endian(void) {
    unsigned char b[8];
    codec_put_le16(b, 0x1234);
    CHECK(b[0] == 0x34 && b[1] == 0x12);
    CHECK_EQ_LL(codec_get_le16(b), 0x1234);
    codec_put_le32(b, 0x89ABCDEFu);
    CHECK(b[0] == 0xEF && b[1] == 0xCD && b[2] == 0xAB && b[3] == 0x89);
    CHECK(codec_get_le32(b) == 0x89ABCDEFu);
    codec_put_le64(b, 0x0102030405060708ull);
    for (int i = 0; i < 8; i++) CHECK_EQ_LL(b[i], 8 - i);
    CHECK(codec_get_le64(b) == 0x0102030405060708ull);
    codec_put_le64(b, UINT64_MAX);
    CHECK(codec_get_le64(b) == UINT64_MAX);
    codec_put_le16(b, UINT16_MAX);
    CHECK_EQ_LL(codec_get_le16(b), UINT16_MAX);
    /* unaligned */
    unsigned char u[9] = {0};
    codec_put_le64(u + 1, 0xDEADBEEFCAFEF00Dull);
    CHECK(codec_get_le64(u + 1) == 0xDEADBEEFCAFEF00Dull);
    CHECK(codec_get_le32(u + 1) == 0xCAFEF00Du);
}

int main(void) {
    RUN(test_varint_round_trip_boundaries);
    RUN(test_varint_truncated_rejected);
    RUN(test_varint_overlong_rejected);
    RUN(test_varint_reads_no_further);
    RUN(test_little_endian);
    return check_summary("codec");
}
