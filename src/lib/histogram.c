/* histogram.c - see histogram.h. */
#include "histogram.h"

#include <string.h>

void hist_init(histogram *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

/* Bucket of v: values below HIST_SUB map to themselves; above, the index
 * is (magnitude, top HIST_SUB_BITS bits below the leading one). */
static unsigned bucket_of(uint64_t v) {
    if (v < HIST_SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - HIST_SUB_BITS;
    unsigned sub = (unsigned)((v >> shift) & (HIST_SUB - 1));
    return (shift + 1) * HIST_SUB + sub;
}

/* Largest value that maps to bucket b. */
static uint64_t bucket_upper(unsigned b) {
    if (b < HIST_SUB) return b;
    unsigned shift = b / HIST_SUB - 1;
    uint64_t sub = b % HIST_SUB;
    uint64_t base = ((uint64_t)HIST_SUB + sub) << shift;
    return base + ((1ull << shift) - 1);
}

void hist_record(histogram *h, uint64_t v) {
    h->buckets[bucket_of(v)]++;
    h->count++;
    h->sum += (long double)v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void hist_merge(histogram *dst, const histogram *src) {
    for (unsigned i = 0; i < HIST_BUCKETS; i++) dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->count && src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t hist_percentile(const histogram *h, double p) {
    if (!h->count) return 0;
    if (p <= 0) return h->min;
    uint64_t rank = (uint64_t)((p / 100.0) * (double)h->count + 0.5);
    if (rank < 1) rank = 1;
    if (rank > h->count) rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t up = bucket_upper(i);
            return up > h->max ? h->max : up;
        }
    }
    return h->max;
}

double hist_mean(const histogram *h) {
    return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}
