/* libpier compression: LZ4/zstd round trips and the adaptive decision
 * (compressible text vs random bytes, the CPU-vs-link trade, re-probes). */
#include <stdlib.h>

#include "check.h"
#include "internal.h"

#define N (256 * 1024)

static void fill_text(uint8_t *b, size_t n) {
    static const char *words[] = {"order ", "id=", "12345 ", "status=shipped ", "qty=3\n"};
    size_t o = 0;
    for (unsigned i = 0; o < n; i++) {
        const char *w = words[(i * 7 + i / 3) % 5];
        size_t l = strlen(w);
        if (l > n - o) l = n - o;
        memcpy(b + o, w, l);
        o += l;
    }
}

static void fill_random(uint8_t *b, size_t n) {
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

/* Compress a batch as the publisher does and feed the adapter. */
static size_t compress_and_note(pc_adapt *a, pc_ctx *ctx, enum pier_codec codec,
                                const uint8_t *src, size_t n, uint8_t *dst) {
    uint64_t t0 = pn_now_ns();
    size_t out = pc_compress(ctx, codec, src, n, dst, pc_bound(codec, n));
    pc_note_compress(a, n, out, pn_now_ns() - t0);
    return out;
}

static void test_roundtrip(void) {
    uint8_t *src = malloc(N), *c = malloc(pc_bound(PIER_CODEC_ZSTD, N) + N), *d = malloc(N);
    fill_text(src, N);
    pc_ctx ctx = {0};
    for (int codec = PIER_CODEC_LZ4; codec <= PIER_CODEC_ZSTD; codec++) {
        size_t n = pc_compress(&ctx, (enum pier_codec)codec, src, N, c,
                               pc_bound((enum pier_codec)codec, N));
        CHECK(n > 0 && n < N / 4);
        CHECK_EQ_LL(pc_decompress((enum pier_codec)codec, c, n, d, N), PIER_OK);
        CHECK(memcmp(src, d, N) == 0);
        /* wrong length and corrupt input are errors, never crashes */
        CHECK_EQ_LL(pc_decompress((enum pier_codec)codec, c, n, d, N - 1), PIER_E_CODEC);
        memset(c, 0xFF, 16);
        CHECK_EQ_LL(pc_decompress((enum pier_codec)codec, c, n, d, N), PIER_E_CODEC);
    }
    CHECK_EQ_LL(pc_decompress(PIER_CODEC_NONE, c, 1, d, 1), PIER_E_CODEC);
    CHECK_EQ_LL(pc_compress(&ctx, PIER_CODEC_LZ4, src, N, c, 10), 0); /* does not fit */
    pc_ctx_free(&ctx);
    free(src);
    free(c);
    free(d);
}

static void test_threshold(void) {
    pc_adapt a;
    pc_adapt_init(&a, 8);
    CHECK(!pc_should_compress(&a, 1000, 4096));
    CHECK(!pc_should_compress(&a, 0, 0));
    CHECK(pc_should_compress(&a, 4096, 4096)); /* first batch at the threshold: probe */
}

/* Text over a slow link (send cost 5 ns/byte): compression keeps paying. */
static void test_compressible_text_compressed(void) {
    uint8_t *src = malloc(N), *dst = malloc(pc_bound(PIER_CODEC_LZ4, N));
    fill_text(src, N);
    pc_adapt a;
    pc_ctx ctx = {0};
    pc_adapt_init(&a, 8);
    int compressed = 0;
    for (int i = 0; i < 20; i++) {
        if (pc_should_compress(&a, N, 1024)) {
            compressed++;
            size_t out = compress_and_note(&a, &ctx, PIER_CODEC_LZ4, src, N, dst);
            pc_note_send(&a, out, 5 * (uint64_t)out); /* as if 5 ns per wire byte */
        } else {
            pc_note_send(&a, N, 5 * (uint64_t)N);
        }
    }
    CHECK_EQ_LL(compressed, 20);
    CHECK(a.ratio < 0.3);
    pc_ctx_free(&ctx);
    free(src);
    free(dst);
}

/* Random bytes: one probe, then raw, re-probing every 8 batches. */
static void test_random_sent_raw_after_probe(void) {
    uint8_t *src = malloc(N), *dst = malloc(pc_bound(PIER_CODEC_LZ4, N));
    fill_random(src, N);
    pc_adapt a;
    pc_ctx ctx = {0};
    pc_adapt_init(&a, 8);
    int compressed = 0;
    for (int i = 0; i < 28; i++) {
        if (pc_should_compress(&a, N, 1024)) {
            compressed++;
            compress_and_note(&a, &ctx, PIER_CODEC_LZ4, src, N, dst);
        }
        pc_note_send(&a, N, 5 * (uint64_t)N);
    }
    CHECK(a.ratio > PC_MAX_RATIO);
    CHECK_EQ_LL(compressed, 4); /* probe at 0, then every 9th: 9, 18, 27 */
    pc_ctx_free(&ctx);
    free(src);
    free(dst);
}

/* Compressible, but the link is faster than the compressor: raw wins. */
static void test_fast_link_prefers_raw(void) {
    pc_adapt a;
    pc_adapt_init(&a, 8);
    CHECK(pc_should_compress(&a, N, 1024));
    pc_note_compress(&a, N, N / 4, 2 * (uint64_t)N); /* 2 ns/byte to compress */
    pc_note_send(&a, N / 4, (uint64_t)N / 40);        /* 0.1 ns/byte to send */
    CHECK(!pc_should_compress(&a, N, 1024));
    /* the link slows down (congestion): compression pays again */
    for (int i = 0; i < 30; i++) pc_note_send(&a, N, 20 * (uint64_t)N);
    CHECK(pc_should_compress(&a, N, 1024));
}

/* Data that turns compressible is noticed at the next re-probe. */
static void test_reprobe_notices_change(void) {
    pc_adapt a;
    pc_adapt_init(&a, 4);
    CHECK(pc_should_compress(&a, N, 1));
    pc_note_compress(&a, N, N, 100);
    int skipped = 0;
    while (!pc_should_compress(&a, N, 1)) skipped++;
    CHECK_EQ_LL(skipped, 4);
    for (int i = 0; i < 12; i++) pc_note_compress(&a, N, N / 10, 100); /* now 10:1 */
    CHECK(pc_should_compress(&a, N, 1));
    CHECK(pc_should_compress(&a, N, 1));
}

int main(void) {
    RUN(test_roundtrip);
    RUN(test_threshold);
    RUN(test_compressible_text_compressed);
    RUN(test_random_sent_raw_after_probe);
    RUN(test_fast_link_prefers_raw);
    RUN(test_reprobe_notices_change);
    return check_summary("libpier_codec");
}
