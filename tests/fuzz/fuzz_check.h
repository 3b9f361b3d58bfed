/* fuzz_check.h - the harnesses' invariant check: a failed invariant prints
 * where and aborts, which libFuzzer (and the plain driver) report as a
 * crash with the input that caused it. */
#ifndef PIER_FUZZ_CHECK_H
#define PIER_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FZ_CHECK(cond)                                                         \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__,    \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
