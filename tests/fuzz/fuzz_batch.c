/* fuzz_batch.c - the batch protocol codec (proto/batch), fed what a
 * server would read from a connection: a handshake, then frames.
 *
 * Invariants:
 *  - decoders never read past their fixed sizes (exact-size heap copies);
 *  - a handshake or header that decodes re-encodes to the same bytes
 *    (reserved handshake bytes excepted: they are ignored by design), and
 *    decode(encode(h)) == h;
 *  - an accepted BATCH header honours every documented limit (sizes,
 *    count <= raw_len / 4, raw lengths agree, the LZ4 ratio);
 *  - the payload walk: count() == k >= 0 exactly when valid(k), and then
 *    valid(k + 1) is false; valid() with the header's (maybe huge) count
 *    returns quickly;
 *  - the server's own frames (ERROR with any text, ACK, HELLO_OK) decode,
 *    carry their CRC-32C, and an ERROR never exceeds its bound. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/crc32c.h"
#include "proto/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define MAX_BYTES (1u << 20) /* small limit: the limit paths are reachable */

static unsigned char *copy(const uint8_t *p, size_t n) {
    unsigned char *b = malloc(n ? n : 1);
    if (!b) abort();
    if (n) memcpy(b, p, n);
    return b;
}

static void check_handshake(const uint8_t *data, size_t size) {
    if (size < BATCH_HANDSHAKE_FIXED) return;
    unsigned char *b = copy(data, BATCH_HANDSHAKE_FIXED);
    batch_handshake h;
    int code = batch_handshake_decode(b, &h);
    FZ_CHECK(code >= 0 && code <= BATCH_E_INTERNAL);
    if (code == BATCH_OK) {
        unsigned char again[BATCH_HANDSHAKE_FIXED];
        batch_handshake_encode(&h, again);
        b[10] = b[11] = b[26] = b[27] = 0; /* reserved */
        FZ_CHECK(memcmp(again, b, BATCH_HANDSHAKE_FIXED) == 0);
        FZ_CHECK(h.topic_len >= 1 && h.topic_len <= BATCH_TOPIC_MAX);
        FZ_CHECK(h.start_len <= BATCH_START_MAX);
        FZ_CHECK(h.role == BATCH_ROLE_PUBLISHER || h.role == BATCH_ROLE_SUBSCRIBER);
        FZ_CHECK(batch_handshake_var_len(&h) <= 65535 + BATCH_TOPIC_MAX + BATCH_START_MAX);
    }
    free(b);
}

static void check_payload_walk(const unsigned char *p, size_t n, uint32_t header_count) {
    long long k = batch_payload_count(p, n);
    if (k >= 0) {
        FZ_CHECK(batch_payload_valid(p, n, (uint32_t)k));
        FZ_CHECK(!batch_payload_valid(p, n, (uint32_t)k + 1));
    }
    int v = batch_payload_valid(p, n, header_count);
    FZ_CHECK(!v || k == (long long)header_count);
}

static void check_batch_limits(const batch_header *h) {
    FZ_CHECK(h->type == BATCH_T_BATCH);
    FZ_CHECK(h->payload_len <= MAX_BYTES && h->raw_len <= MAX_BYTES);
    FZ_CHECK(h->count >= 1 && h->count <= h->raw_len / 4);
    if (h->codec == BATCH_CODEC_RAW) FZ_CHECK(h->raw_len == h->payload_len);
    if (h->codec == BATCH_CODEC_LZ4) FZ_CHECK((uint64_t)h->raw_len <= 255ull * h->payload_len);
}

/* One frame at data; returns the bytes it took (0: stop). */
static size_t check_frame(const uint8_t *data, size_t size) {
    if (size < BATCH_HEADER_LEN) return 0;
    unsigned char *b = copy(data, BATCH_HEADER_LEN);
    batch_header h;
    int code = batch_header_decode(b, &h);
    size_t used = 0;
    if (code == BATCH_OK) {
        unsigned char again[BATCH_HEADER_LEN];
        batch_header_encode(&h, again);
        FZ_CHECK(memcmp(again, b, BATCH_HEADER_LEN) == 0);
        if (batch_header_check_batch(&h, MAX_BYTES) == BATCH_OK) {
            check_batch_limits(&h);
            size_t avail = size - BATCH_HEADER_LEN;
            size_t n = h.payload_len < avail ? h.payload_len : avail;
            unsigned char *p = copy(data + BATCH_HEADER_LEN, n);
            (void)crc32c(0, p, n);
            check_payload_walk(p, n, h.count);
            free(p);
            used = BATCH_HEADER_LEN + n;
        }
    }
    free(b);
    return used;
}

static void check_server_frames(const uint8_t *data, size_t size) {
    char text[300];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = 0;
    unsigned char f[BATCH_ERROR_FRAME_MAX];
    size_t len = batch_error_frame(f, size % 13, text);
    FZ_CHECK(len >= BATCH_HEADER_LEN + 2 && len <= BATCH_ERROR_FRAME_MAX);
    batch_header h;
    FZ_CHECK(batch_header_decode(f, &h) == BATCH_OK && h.type == BATCH_T_ERROR);
    FZ_CHECK(h.payload_len == len - BATCH_HEADER_LEN);
    FZ_CHECK(h.crc == crc32c(0, f + BATCH_HEADER_LEN, h.payload_len));
    uint64_t x = 0;
    memcpy(&x, data, size < 8 ? size : 8);
    unsigned char a[BATCH_HEADER_LEN + BATCH_ACK_PAYLOAD];
    len = batch_ack_frame(a, x, (uint32_t)x, x, ~x, (int)(x & 1));
    FZ_CHECK(batch_header_decode(a, &h) == BATCH_OK && h.type == BATCH_T_ACK && h.seq == x);
    FZ_CHECK(len == BATCH_HEADER_LEN + ((x & 1) ? 0 : BATCH_ACK_PAYLOAD));
    len = batch_hello_frame(a, x, MAX_BYTES);
    FZ_CHECK(batch_header_decode(a, &h) == BATCH_OK && h.type == BATCH_T_HELLO_OK);
    FZ_CHECK(codec_get_le64(a + BATCH_HEADER_LEN) == MAX_BYTES && len == BATCH_HEADER_LEN + 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_handshake(data, size);
    /* frames after a handshake's fixed part, and from the very start */
    size_t pos = size >= BATCH_HANDSHAKE_FIXED ? BATCH_HANDSHAKE_FIXED : size;
    for (int i = 0; i < 64; i++) {
        size_t used = check_frame(data + pos, size - pos);
        if (!used) break;
        pos += used;
    }
    check_frame(data, size);
    check_payload_walk(data, size, (uint32_t)size);
    check_server_frames(data, size);
    return 0;
}
