/* histogram.h - log-bucketed latency histogram (HDR-style).
 *
 * Values (e.g. nanoseconds) are counted in buckets whose width grows with
 * the value: each power-of-two range is split into HIST_SUB sub-buckets, so
 * the relative error of any reported percentile is below 1/HIST_SUB (~1.6%)
 * at every magnitude. Recording is O(1) with no allocation; percentiles
 * walk the fixed bucket array, never a sorted sample. Not thread-safe: keep
 * one per thread and merge. */
#ifndef PIER_HISTOGRAM_H
#define PIER_HISTOGRAM_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

typedef struct histogram {
    uint64_t count;
    uint64_t min, max;
    long double sum;
    uint64_t buckets[HIST_BUCKETS];
} histogram;

void hist_init(histogram *h);
void hist_record(histogram *h, uint64_t v);
void hist_merge(histogram *dst, const histogram *src);
/* Value at percentile p (0..100): the upper bound of the bucket holding it,
 * clamped to the observed max. 0 when empty. */
uint64_t hist_percentile(const histogram *h, double p);
double hist_mean(const histogram *h);

#endif
