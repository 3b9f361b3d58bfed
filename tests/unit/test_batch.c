/* test_batch.c - the batch protocol codec (src/proto/batch.c): every
 * handshake and header field, every limit, bad magic and version, lying
 * lengths, huge counts, the fixed frames and the payload walk. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib/codec.h"
#include "lib/crc32c.h"
#include "proto/batch.h"

#define MAX_BYTES (64u * 1024 * 1024)

static batch_handshake good_hs(void) {
    return (batch_handshake){.version = 1, .role = BATCH_ROLE_PUBLISHER, .ack_level = 1,
                             .order_level = 1, .codecs = 3, .client_id = 0x0102030405060708ull,
                             .token_len = 5, .topic_len = 7, .start_len = 0};
}

static int decode_hs(const batch_handshake *in, batch_handshake *out) {
    unsigned char b[BATCH_HANDSHAKE_FIXED];
    batch_handshake_encode(in, b);
    return batch_handshake_decode(b, out);
}

static void test_handshake_round_trip_every_field(void) {
    batch_handshake in = good_hs(), out;
    unsigned char b[BATCH_HANDSHAKE_FIXED];
    batch_handshake_encode(&in, b);
    CHECK(memcmp(b, "PIRB", 4) == 0);
    CHECK_EQ_LL(b[4], 1);
    CHECK_EQ_LL(b[5], 0);
    CHECK_EQ_LL(b[12], 0x08); /* little-endian client id */
    CHECK_EQ_LL(b[19], 0x01);
    CHECK_EQ_LL(batch_handshake_decode(b, &out), BATCH_OK);
    CHECK_EQ_LL(out.role, BATCH_ROLE_PUBLISHER);
    CHECK_EQ_LL(out.ack_level, 1);
    CHECK_EQ_LL(out.order_level, 1);
    CHECK_EQ_LL(out.codecs, 3);
    CHECK(out.client_id == 0x0102030405060708ull);
    CHECK_EQ_LL(out.token_len, 5);
    CHECK_EQ_LL(out.topic_len, 7);
    CHECK_EQ_LL(out.start_len, 0);
    CHECK_EQ_LL(batch_handshake_var_len(&out), 12);
    /* reserved bytes are ignored */
    b[10] = b[11] = b[26] = b[27] = 0xFF;
    CHECK_EQ_LL(batch_handshake_decode(b, &out), BATCH_OK);
}

static void test_handshake_errors(void) {
    batch_handshake h = good_hs(), out;
    unsigned char b[BATCH_HANDSHAKE_FIXED];
    batch_handshake_encode(&h, b);
    b[0] = 'X';
    CHECK_EQ_LL(batch_handshake_decode(b, &out), BATCH_E_MAGIC);
    h.version = 2;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_VERSION);
    h.version = 0x0100; /* version 1 read big-endian */
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_VERSION);
    h = good_hs();
    h.role = 0;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_MALFORMED);
    h.role = 3;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_MALFORMED);
    h = good_hs();
    h.ack_level = 2;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_LEVEL);
    h.ack_level = 0;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_OK);
    h.order_level = 3;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_LEVEL);
    h.order_level = 2;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_OK);
    h = good_hs();
    h.topic_len = 0;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_MALFORMED);
    h.topic_len = BATCH_TOPIC_MAX;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_OK);
    h.topic_len = BATCH_TOPIC_MAX + 1;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_MALFORMED);
    h = good_hs();
    h.start_len = 1; /* publishers have no start */
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_MALFORMED);
    h.role = BATCH_ROLE_SUBSCRIBER;
    h.start_len = BATCH_START_MAX;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_OK);
    h.start_len = BATCH_START_MAX + 1;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_E_MALFORMED);
    /* a subscriber's ack level is not looked at */
    h.start_len = 1;
    h.ack_level = 9;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_OK);
    /* the largest token */
    h = good_hs();
    h.token_len = 65535;
    CHECK_EQ_LL(decode_hs(&h, &out), BATCH_OK);
    CHECK_EQ_LL(batch_handshake_var_len(&out), 65535 + 7);
}

static batch_header good_batch(void) {
    return (batch_header){.type = BATCH_T_BATCH, .codec = BATCH_CODEC_RAW, .seq = 7,
                          .count = 2, .raw_len = 10, .payload_len = 10, .crc = 0xA1B2C3D4};
}

static void test_header_round_trip_every_field(void) {
    batch_header in = good_batch(), out;
    in.flags = BATCH_FLAG_DUPLICATE;
    in.seq = 0x1122334455667788ull;
    unsigned char b[BATCH_HEADER_LEN];
    batch_header_encode(&in, b);
    CHECK(memcmp(b, "PIRF", 4) == 0);
    CHECK_EQ_LL(b[4], 1);
    CHECK_EQ_LL(b[8], 0x88);
    CHECK_EQ_LL(b[28], 0xD4);
    CHECK_EQ_LL(batch_header_decode(b, &out), BATCH_OK);
    CHECK_EQ_LL(out.type, BATCH_T_BATCH);
    CHECK_EQ_LL(out.codec, BATCH_CODEC_RAW);
    CHECK_EQ_LL(out.flags, BATCH_FLAG_DUPLICATE);
    CHECK(out.seq == 0x1122334455667788ull);
    CHECK_EQ_LL(out.count, 2);
    CHECK_EQ_LL(out.raw_len, 10);
    CHECK_EQ_LL(out.payload_len, 10);
    CHECK(out.crc == 0xA1B2C3D4u);
}

static void test_header_errors(void) {
    batch_header h = good_batch(), out;
    unsigned char b[BATCH_HEADER_LEN];
    batch_header_encode(&h, b);
    b[3] = 'B'; /* the handshake's magic is not a frame's */
    CHECK_EQ_LL(batch_header_decode(b, &out), BATCH_E_MAGIC);
    batch_header_encode(&h, b);
    b[4] = 2;
    CHECK_EQ_LL(batch_header_decode(b, &out), BATCH_E_VERSION);
    for (int t = 0; t < 256; t++) {
        batch_header_encode(&h, b);
        b[5] = (unsigned char)t;
        CHECK_EQ_LL(batch_header_decode(b, &out), t >= 1 && t <= 4 ? BATCH_OK : BATCH_E_MALFORMED);
    }
    batch_header_encode(&h, b);
    b[6] = 3;
    CHECK_EQ_LL(batch_header_decode(b, &out), BATCH_E_MALFORMED);
}

static void test_batch_limits(void) {
    batch_header h = good_batch();
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_OK);
    h.type = BATCH_T_ACK;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_MALFORMED);
    /* sizes: at the limit, one over, huge */
    h = good_batch();
    h.raw_len = h.payload_len = MAX_BYTES;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_OK);
    h.raw_len = h.payload_len = MAX_BYTES + 1;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_TOO_LARGE);
    h.raw_len = h.payload_len = UINT32_MAX;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_TOO_LARGE);
    h = good_batch();
    h.codec = BATCH_CODEC_LZ4;
    h.payload_len = 5;
    h.raw_len = MAX_BYTES + 1; /* the decompressed size counts too */
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_TOO_LARGE);
    /* counts: 0, at raw_len/4, above, huge */
    h = good_batch();
    h.count = 0;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_MALFORMED);
    h.count = 2; /* 10 / 4 */
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_OK);
    h.count = 3;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_MALFORMED);
    h.count = UINT32_MAX;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_MALFORMED);
    /* raw: the two lengths must agree (lying lengths) */
    h = good_batch();
    h.raw_len = 11;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_MALFORMED);
    /* LZ4: at most 255 x */
    h = good_batch();
    h.codec = BATCH_CODEC_LZ4;
    h.payload_len = 4;
    h.raw_len = 255 * 4;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_OK);
    h.raw_len = 255 * 4 + 1;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_MALFORMED);
    h.payload_len = 0;
    h.raw_len = 4;
    h.count = 1;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_E_MALFORMED);
    /* zstd: no ratio bound (its frames carry their own size) */
    h.codec = BATCH_CODEC_ZSTD;
    h.payload_len = 9;
    h.raw_len = 1000000;
    CHECK_EQ_LL(batch_header_check_batch(&h, MAX_BYTES), BATCH_OK);
}

static void check_frame_crc(const unsigned char *f, size_t n) {
    batch_header h;
    CHECK_EQ_LL(batch_header_decode(f, &h), BATCH_OK);
    CHECK_EQ_LL(h.payload_len, n - BATCH_HEADER_LEN);
    CHECK_EQ_LL(h.raw_len, h.payload_len);
    CHECK(h.crc == crc32c(0, f + BATCH_HEADER_LEN, h.payload_len));
}

static void test_error_frame(void) {
    unsigned char f[BATCH_ERROR_FRAME_MAX];
    size_t n = batch_error_frame(f, BATCH_E_GAP, "sequence gap");
    CHECK_EQ_LL(n, BATCH_HEADER_LEN + 2 + 12);
    check_frame_crc(f, n);
    CHECK_EQ_LL(f[5], BATCH_T_ERROR);
    CHECK_EQ_LL(f[BATCH_HEADER_LEN], 9);
    CHECK_EQ_LL(f[BATCH_HEADER_LEN + 1], 0);
    CHECK_MEM(f + BATCH_HEADER_LEN + 2, 12, "sequence gap");
    char long_text[1000];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = 0;
    n = batch_error_frame(f, BATCH_E_INTERNAL, long_text);
    CHECK_EQ_LL(n, BATCH_ERROR_FRAME_MAX); /* truncated, in bounds */
    n = batch_error_frame(f, BATCH_E_AUTH, NULL);
    CHECK_EQ_LL(n, BATCH_HEADER_LEN + 2);
    for (int code = 0; code <= 15; code++) CHECK(batch_err_text(code) != NULL);
    CHECK(strcmp(batch_err_text(BATCH_E_SUB_INPUT), "a subscriber sends nothing after its handshake") == 0);
    CHECK(strcmp(batch_err_text(BATCH_E_MAXCLIENTS), "max number of clients reached") == 0);
    CHECK(strcmp(batch_err_text(15), "unknown error") == 0);
    CHECK(strcmp(batch_err_text(-1), "unknown error") == 0);
}

static void test_ack_and_hello_frames(void) {
    unsigned char f[BATCH_HEADER_LEN + BATCH_ACK_PAYLOAD];
    size_t n = batch_ack_frame(f, 12, 3, 1700000000000ull, 5, 0);
    CHECK_EQ_LL(n, BATCH_HEADER_LEN + 16);
    check_frame_crc(f, n);
    batch_header h;
    batch_header_decode(f, &h);
    CHECK_EQ_LL(h.type, BATCH_T_ACK);
    CHECK_EQ_LL(h.seq, 12);
    CHECK_EQ_LL(h.count, 3);
    CHECK_EQ_LL(h.flags, 0);
    CHECK(codec_get_le64(f + BATCH_HEADER_LEN) == 1700000000000ull);
    CHECK(codec_get_le64(f + BATCH_HEADER_LEN + 8) == 5);
    n = batch_ack_frame(f, 12, 3, 0, 0, 1);
    CHECK_EQ_LL(n, BATCH_HEADER_LEN);
    batch_header_decode(f, &h);
    CHECK_EQ_LL(h.flags, BATCH_FLAG_DUPLICATE);
    unsigned char hf[BATCH_HEADER_LEN + BATCH_HELLO_PAYLOAD];
    n = batch_hello_frame(hf, 4, MAX_BYTES);
    check_frame_crc(hf, n);
    batch_header_decode(hf, &h);
    CHECK_EQ_LL(h.type, BATCH_T_HELLO_OK);
    CHECK_EQ_LL(h.seq, 4);
    CHECK(codec_get_le64(hf + BATCH_HEADER_LEN) == MAX_BYTES);
}

static void test_payload_walk(void) {
    static const unsigned char two[] = {3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0};
    CHECK(batch_payload_valid(two, sizeof two, 2));
    CHECK(!batch_payload_valid(two, sizeof two, 1));  /* bytes left over */
    CHECK(!batch_payload_valid(two, sizeof two, 3));  /* short */
    CHECK(!batch_payload_valid(two, sizeof two - 1, 2));
    CHECK_EQ_LL(batch_payload_count(two, sizeof two), 2);
    CHECK_EQ_LL(batch_payload_count(two, 0), 0);
    CHECK_EQ_LL(batch_payload_count(two, 3), -1);
    /* a length that lies past the end, including one that would wrap */
    static const unsigned char lie[] = {0xFF, 0xFF, 0xFF, 0xFF, 'x'};
    CHECK(!batch_payload_valid(lie, sizeof lie, 1));
    CHECK_EQ_LL(batch_payload_count(lie, sizeof lie), -1);
    static const unsigned char lie2[] = {2, 0, 0, 0, 'x'};
    CHECK(!batch_payload_valid(lie2, sizeof lie2, 1));
    /* a huge count against a small buffer fails fast */
    CHECK(!batch_payload_valid(two, sizeof two, UINT32_MAX));
}

int main(void) {
    RUN(test_handshake_round_trip_every_field);
    RUN(test_handshake_errors);
    RUN(test_header_round_trip_every_field);
    RUN(test_header_errors);
    RUN(test_batch_limits);
    RUN(test_error_frame);
    RUN(test_ack_and_hello_frames);
    RUN(test_payload_walk);
    return check_summary("batch");
}
