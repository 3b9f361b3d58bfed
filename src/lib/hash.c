/* hash.c - keyed 64-bit hash for short, untrusted keys.
 *
 * Design: multiply-and-fold mixing. A 64x64->128 bit multiply spreads every
 * input bit over the whole product; xoring the two halves folds it back to
 * 64 bits (the "mum" step). Short inputs are read as two overlapping 64-bit
 * words so that keys of 4..16 bytes cost one 128-bit multiply plus the final
 * mix, with no loop and no branch on the exact length. Longer inputs are
 * consumed 16 bytes per step (three independent lanes above 48 bytes, so
 * the multiplies can overlap in the pipeline), and the last 16 bytes are
 * always read as a possibly-overlapping tail window.
 *
 * The constants are the fractional parts of sqrt(2), sqrt(3), sqrt(5) and
 * sqrt(7) (as in SHA-512's IV), made odd: arbitrary but with well balanced
 * bits and nothing hidden up a sleeve. */
#include "lib/hash.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define HASH_K0 0x6A09E667F3BCC909ull
#define HASH_K1 0xBB67AE8584CAA73Bull
#define HASH_K2 0x3C6EF372FE94F82Bull
#define HASH_K3 0xA54FF53A5F1D36F1ull

/* Unaligned little pieces: memcpy is the only UB-free way, and compilers turn
 * it into a single load. */
static inline uint64_t read64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t read32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Full 128-bit product of a and b, folded to 64 bits by xoring its halves. */
static inline uint64_t mum_fold(uint64_t a, uint64_t b) {
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Read up to 16 bytes (len <= 16) into two words; every byte lands in at
 * least one of them. The caller mixes len in separately, so overlapping
 * windows of different lengths do not collide trivially. */
static inline void read_short(const uint8_t *p, size_t len, uint64_t *a,
                              uint64_t *b) {
    if (len >= 4) {
        size_t mid = (len >> 3) << 2; /* 0 for 4..7 bytes, 4 for 8..16 */
        *a = (read32(p) << 32) | read32(p + mid);
        *b = (read32(p + len - 4) << 32) | read32(p + len - 4 - mid);
    } else if (len > 0) {
        *a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
        *b = 0;
    } else {
        *a = 0;
        *b = 0;
    }
}

/* Consume all but the last 1..16 bytes of a >16 byte input into seed;
 * returns the running state and leaves *pp at the final partial block. */
static inline uint64_t absorb_long(const uint8_t **pp, size_t *leftp,
                                   uint64_t seed) {
    const uint8_t *p = *pp;
    size_t left = *leftp;
    if (left > 48) {
        uint64_t lane1 = seed, lane2 = seed;
        do {
            seed = mum_fold(read64(p) ^ HASH_K1, read64(p + 8) ^ seed);
            lane1 = mum_fold(read64(p + 16) ^ HASH_K2, read64(p + 24) ^ lane1);
            lane2 = mum_fold(read64(p + 32) ^ HASH_K3, read64(p + 40) ^ lane2);
            p += 48;
            left -= 48;
        } while (left > 48);
        seed ^= lane1 ^ lane2;
    }
    while (left > 16) {
        seed = mum_fold(read64(p) ^ HASH_K1, read64(p + 8) ^ seed);
        p += 16;
        left -= 16;
    }
    *pp = p;
    *leftp = left;
    return seed;
}

uint64_t hash_bytes(const void *data, size_t len, uint64_t seed) {
    const uint8_t *p = data;
    uint64_t a, b;
    /* Pre-mix the seed so that related seeds give unrelated functions. */
    seed ^= mum_fold(seed ^ HASH_K0, HASH_K1);
    if (len <= 16) {
        read_short(p, len, &a, &b);
    } else {
        size_t left = len;
        seed = absorb_long(&p, &left, seed);
        /* Tail window: the last 16 bytes of the input (may overlap bytes
         * already absorbed; p + left - 16 never precedes the start). */
        a = read64(p + left - 16);
        b = read64(p + left - 8);
    }
    unsigned __int128 r = (unsigned __int128)(a ^ HASH_K1) * (b ^ seed);
    a = (uint64_t)r;
    b = (uint64_t)(r >> 64);
    return mum_fold(a ^ HASH_K0 ^ (uint64_t)len, b ^ HASH_K1);
}

uint64_t hash_random_seed(void) {
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed) return seed;
    /* No entropy source (very old kernel, seccomp): time and pid are weak
     * but still differ between runs and between processes. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
           ((uint64_t)getpid() << 16);
    return mum_fold(seed ^ HASH_K2, HASH_K3);
}
