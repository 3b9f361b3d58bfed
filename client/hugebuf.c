/* hugebuf.c - the publisher's buffer pool memory: one large mapping,
 * allocated once. Huge pages cut TLB misses when memcpy'ing gigabytes of
 * messages through it; explicit ones (MAP_HUGETLB) need a reserved pool
 * (vm.nr_hugepages), which most machines lack, so fall back to
 * transparent huge pages via madvise, and say so once when asked to be
 * verbose: the fallback is the normal case, not a warning. */
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>

#include "internal.h"

#define HUGE_PAGE (2u << 20)

static atomic_flag logged_fallback = ATOMIC_FLAG_INIT;

static void log_line(pier_log_fn log, void *ctx, const char *line) {
    if (log) log(ctx, line);
    else fprintf(stderr, "libpier: %s\n", line);
}

void *pier_huge_alloc(size_t n, size_t *mapped, bool verbose, pier_log_fn log, void *ctx) {
    size_t len = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (len == 0) len = HUGE_PAGE;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
                   -1, 0);
    if (p == MAP_FAILED) {
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
        madvise(p, len, MADV_HUGEPAGE); /* advice only: failure just means 4 KB pages */
        if (verbose && !atomic_flag_test_and_set(&logged_fallback))
            log_line(log, ctx,
                     "huge pages unavailable (MAP_HUGETLB failed: no vm.nr_hugepages "
                     "reserved); using madvise(MADV_HUGEPAGE)");
    }
    *mapped = len;
    return p;
}

void pier_huge_free(void *p, size_t mapped) {
    if (p) munmap(p, mapped);
}
