/* codec.c - LZ4/zstd wrappers and the adaptive compression decision. */
#include <lz4.h>
#include <zstd.h>

#include "internal.h"

size_t pc_bound(enum pier_codec codec, size_t n) {
    if (codec == PIER_CODEC_LZ4) return (size_t)LZ4_compressBound((int)n);
    if (codec == PIER_CODEC_ZSTD) return ZSTD_compressBound(n);
    return n;
}

void pc_ctx_free(pc_ctx *c) {
    ZSTD_freeCCtx(c->zstd);
    c->zstd = NULL;
}

size_t pc_compress(pc_ctx *c, enum pier_codec codec, const void *src, size_t n, void *dst,
                   size_t cap) {
    if (codec == PIER_CODEC_LZ4) {
        if (n > (size_t)LZ4_MAX_INPUT_SIZE || cap > (size_t)INT32_MAX) return 0;
        int r = LZ4_compress_default(src, dst, (int)n, (int)cap);
        return r > 0 ? (size_t)r : 0;
    }
    if (codec == PIER_CODEC_ZSTD) {
        if (!c->zstd && !(c->zstd = ZSTD_createCCtx())) return 0;
        size_t r = ZSTD_compressCCtx(c->zstd, dst, cap, src, n, 1);
        return ZSTD_isError(r) ? 0 : r;
    }
    return 0;
}

int pc_decompress(enum pier_codec codec, const void *src, size_t n, void *dst, size_t raw_len) {
    if (codec == PIER_CODEC_LZ4) {
        if (n > (size_t)INT32_MAX || raw_len > (size_t)INT32_MAX)
            return pier_fail(PIER_E_CODEC, "LZ4 block too large");
        int r = LZ4_decompress_safe(src, dst, (int)n, (int)raw_len);
        if (r < 0 || (size_t)r != raw_len)
            return pier_fail(PIER_E_CODEC, "LZ4 block corrupt or of the wrong length");
        return PIER_OK;
    }
    if (codec == PIER_CODEC_ZSTD) {
        size_t r = ZSTD_decompress(dst, raw_len, src, n);
        if (ZSTD_isError(r) || r != raw_len)
            return pier_fail(PIER_E_CODEC, "zstd frame corrupt or of the wrong length");
        return PIER_OK;
    }
    return pier_fail(PIER_E_CODEC, "unknown codec %d", (int)codec);
}

void pc_adapt_init(pc_adapt *a, unsigned reprobe_every) {
    *a = (pc_adapt){.reprobe_every = reprobe_every ? reprobe_every : 64, .paying = true};
}

static double ewma(double old, double sample, bool have) {
    return have ? old + PC_EWMA_ALPHA * (sample - old) : sample;
}

/* Compressing pays when it saves more send time than it costs CPU:
 * comp_ns/byte < send_ns/byte * (1 - ratio). send_ns includes waiting
 * for socket buffer space, so on a slow link it is large and compression
 * wins; on loopback it is tiny and raw wins. Without a send measurement
 * yet only the ratio decides. */
static bool pays(const pc_adapt *a) {
    if (a->ratio > PC_MAX_RATIO) return false;
    if (!a->have_send) return true;
    return a->comp_ns_per_b < a->send_ns_per_b * (1.0 - a->ratio);
}

/* Re-evaluate the verdict; when it turns negative, start counting the raw
 * batches until the next probe. */
static void evaluate(pc_adapt *a) {
    bool was = a->paying;
    a->paying = pays(a);
    if (was && !a->paying) a->skip_left = a->reprobe_every;
}

bool pc_should_compress(pc_adapt *a, size_t raw_len, size_t min_bytes) {
    if (raw_len < min_bytes || raw_len == 0) return false;
    if (!a->have_ratio) return true; /* first batch: probe */
    evaluate(a);
    if (a->paying) return true;
    if (a->skip_left > 0) {
        a->skip_left--;
        return false;
    }
    a->skip_left = a->reprobe_every;
    return true; /* re-probe: the data or the link may have changed */
}

void pc_note_compress(pc_adapt *a, size_t raw_len, size_t out_len, uint64_t ns) {
    if (raw_len == 0) return;
    double r = out_len ? (double)out_len / (double)raw_len : 1.0;
    a->ratio = ewma(a->ratio, r, a->have_ratio);
    a->comp_ns_per_b = ewma(a->comp_ns_per_b, (double)ns / (double)raw_len, a->have_ratio);
    a->have_ratio = true;
    evaluate(a);
}

void pc_note_send(pc_adapt *a, size_t wire_len, uint64_t ns) {
    if (wire_len == 0) return;
    a->send_ns_per_b = ewma(a->send_ns_per_b, (double)ns / (double)wire_len, a->have_send);
    a->have_send = true;
}
