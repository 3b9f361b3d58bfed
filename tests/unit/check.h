/* check.h - the unit tests' tiny harness. Each test file is one program:
 *
 *   static void test_something(void) { CHECK(x == 1); CHECK_EQ_LL(a, b); }
 *   int main(void) { RUN(test_something); return check_summary("parser"); }
 *
 * A failed CHECK prints file:line and the expression and marks the current
 * test failed, but keeps going so one run shows every failure. */
#ifndef PIER_CHECK_H
#define PIER_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failed_now;
static int check_tests_passed, check_tests_failed;

#define CHECK(expr)                                                            \
    do {                                                                       \
        if (!(expr)) {                                                         \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, \
                    #expr);                                                    \
            check_failed_now = 1;                                              \
        }                                                                      \
    } while (0)

#define CHECK_EQ_LL(a, b)                                                      \
    do {                                                                       \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);        \
        if (check_a_ != check_b_) {                                            \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n",        \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);           \
            check_failed_now = 1;                                              \
        }                                                                      \
    } while (0)

/* Compare n bytes at p with a C string literal. */
#define CHECK_MEM(p, n, lit)                                                   \
    do {                                                                       \
        size_t check_n_ = (size_t)(n);                                         \
        if (check_n_ != strlen(lit) || memcmp((p), (lit), check_n_) != 0) {    \
            fprintf(stderr, "  %s:%d: got '%.*s', want '%s'\n", __FILE__,      \
                    __LINE__, (int)check_n_, (const char *)(p), (lit));        \
            check_failed_now = 1;                                              \
        }                                                                      \
    } while (0)

#define RUN(fn)                                                                \
    do {                                                                       \
        check_failed_now = 0;                                                  \
        fn();                                                                  \
        if (check_failed_now) {                                                \
            check_tests_failed++;                                              \
            fprintf(stderr, "FAIL %s\n", #fn);                                 \
        } else {                                                               \
            check_tests_passed++;                                              \
        }                                                                      \
    } while (0)

static inline int check_summary(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, check_tests_passed,
           check_tests_failed);
    return check_tests_failed ? 1 : 0;
}

#endif
