/* Unit tests for the log-bucketed histogram. */
#include "../../src/lib/histogram.h"
#include "check.h"

static histogram h;

static void test_empty(void) {
    hist_init(&h);
    CHECK_EQ_LL(hist_percentile(&h, 50), 0);
    CHECK(hist_mean(&h) == 0.0);
}

static void test_small_values_exact(void) {
    hist_init(&h);
    for (uint64_t v = 1; v <= 50; v++) hist_record(&h, v);
    CHECK_EQ_LL(hist_percentile(&h, 50), 25);
    CHECK_EQ_LL(hist_percentile(&h, 100), 50);
    CHECK_EQ_LL(h.min, 1);
    CHECK_EQ_LL(h.max, 50);
}

/* Every percentile of a uniform 1..1,000,000 within 1/HIST_SUB relative. */
static void test_relative_error(void) {
    hist_init(&h);
    for (uint64_t v = 1; v <= 1000000; v++) hist_record(&h, v);
    const double ps[] = {1, 10, 50, 90, 99, 99.9};
    for (unsigned i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        double want = ps[i] * 10000.0;
        double got = (double)hist_percentile(&h, ps[i]);
        double err = (got - want) / want;
        if (err < 0) err = -err;
        CHECK(err <= 1.0 / HIST_SUB);
    }
    CHECK(hist_mean(&h) > 500000 && hist_mean(&h) < 500001);
}

static void test_huge_values_and_merge(void) {
    histogram a, b;
    hist_init(&a);
    hist_init(&b);
    hist_record(&a, UINT64_MAX);
    hist_record(&b, 7);
    hist_merge(&a, &b);
    CHECK_EQ_LL(a.count, 2);
    CHECK_EQ_LL(hist_percentile(&a, 1), 7);
    CHECK(hist_percentile(&a, 100) == UINT64_MAX);
}

int main(void) {
    RUN(test_empty);
    RUN(test_small_values_exact);
    RUN(test_relative_error);
    RUN(test_huge_values_and_merge);
    return check_summary("histogram");
}
