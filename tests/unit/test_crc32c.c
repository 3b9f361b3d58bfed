/* test_crc32c.c - the CRC-32C paths: known vectors, and the hardware
 * path equal to the portable one on every length 0..4096 at every
 * alignment mod 8 (the 8-byte loop and its byte tail). */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "lib/crc32c.h"

static void check_vectors(uint32_t (*fn)(uint32_t, const void *, size_t)) {
    CHECK_EQ_LL(fn(0, "123456789", 9), 0xE3069283u); /* the standard check value */
    CHECK_EQ_LL(fn(0, "", 0), 0);
    CHECK_EQ_LL(fn(fn(0, "1234", 4), "56789", 5), 0xE3069283u);
    unsigned char zeros[32] = {0}, ones[32];
    memset(ones, 0xFF, sizeof ones);
    CHECK_EQ_LL(fn(0, zeros, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    CHECK_EQ_LL(fn(0, ones, 32), 0x62A8AB43u);
    unsigned char inc[32];
    for (int i = 0; i < 32; i++) inc[i] = (unsigned char)i;
    CHECK_EQ_LL(fn(0, inc, 32), 0x46DD794Eu);
}

static void test_known_vectors_portable(void) { check_vectors(crc32c_portable); }
static void test_known_vectors_dispatch(void) { check_vectors(crc32c); }

static void test_known_vectors_hw(void) {
    if (!crc32c_hw_available()) {
        printf("  (no SSE4.2: hardware path not tested)\n");
        return;
    }
    check_vectors(crc32c_hw);
}

static void test_hw_equals_portable_every_length(void) {
    if (!crc32c_hw_available()) return;
    enum { MAX = 4096 };
    unsigned char *buf = malloc(MAX + 8);
    CHECK(buf != NULL);
    if (!buf) return;
    srand(12345);
    for (size_t i = 0; i < MAX + 8; i++) buf[i] = (unsigned char)rand();
    int mismatches = 0;
    for (size_t len = 0; len <= MAX; len++) {
        size_t off = len % 8; /* every misalignment */
        uint32_t seed = (uint32_t)rand();
        if (crc32c_hw(0, buf + off, len) != crc32c_portable(0, buf + off, len)) mismatches++;
        if (crc32c_hw(seed, buf + off, len) != crc32c_portable(seed, buf + off, len)) mismatches++;
    }
    CHECK_EQ_LL(mismatches, 0);
    /* in pieces == one shot */
    uint32_t a = crc32c_hw(crc32c_hw(0, buf, 1000), buf + 1000, 3000);
    CHECK_EQ_LL(a, crc32c_portable(0, buf, 4000));
    free(buf);
}

int main(void) {
    RUN(test_known_vectors_portable);
    RUN(test_known_vectors_dispatch);
    RUN(test_known_vectors_hw);
    RUN(test_hw_equals_portable_every_length);
    return check_summary("crc32c");
}
