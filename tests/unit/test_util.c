/* test_util.c - number parsing/formatting and glob matching. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/util.h"

/* Helpers taking C strings so the cases stay readable. */
static int ll_ok(const char *s, long long *v) { return util_parse_ll(s, strlen(s), v); }
static int ll_bad(const char *s) {
    long long v = 12345;
    return !util_parse_ll(s, strlen(s), &v) && v == 12345;
}
static int glob(const char *pat, const char *str) {
    return util_glob_match(pat, strlen(pat), str, strlen(str), 0);
}
static int glob_nc(const char *pat, const char *str) {
    return util_glob_match(pat, strlen(pat), str, strlen(str), 1);
}

static void test_parse_ll_valid(void) {
    long long v;
    CHECK(ll_ok("0", &v) && v == 0);
    CHECK(ll_ok("1", &v) && v == 1);
    CHECK(ll_ok("-1", &v) && v == -1);
    CHECK(ll_ok("1234567890", &v) && v == 1234567890LL);
    CHECK(ll_ok("9223372036854775807", &v) && v == LLONG_MAX);
    CHECK(ll_ok("-9223372036854775808", &v) && v == LLONG_MIN);
    CHECK(ll_ok("-9223372036854775807", &v) && v == -LLONG_MAX);
}

static void test_parse_ll_invalid(void) {
    CHECK(ll_bad(""));
    CHECK(ll_bad("-"));
    CHECK(ll_bad("+1"));
    CHECK(ll_bad(" 1"));
    CHECK(ll_bad("1 "));
    CHECK(ll_bad("01"));
    CHECK(ll_bad("00"));
    CHECK(ll_bad("-0"));
    CHECK(ll_bad("-01"));
    CHECK(ll_bad("1a"));
    CHECK(ll_bad("0x10"));
    CHECK(ll_bad("1.0"));
    CHECK(ll_bad("9223372036854775808"));
    CHECK(ll_bad("-9223372036854775809"));
    CHECK(ll_bad("18446744073709551615"));  /* fits ull, not ll */
    CHECK(ll_bad("18446744073709551616"));  /* overflows ull too */
    CHECK(ll_bad("99999999999999999999"));  /* 20 digits */
    CHECK(ll_bad("-99999999999999999999")); /* 21 chars */
    CHECK(ll_bad("100000000000000000000")); /* 21 digits */
    CHECK(ll_bad("--1"));
    /* Binary safety: length bounds the parse, a NUL is just a bad byte. */
    long long v = 0;
    CHECK(!util_parse_ll("1\0" "2", 3, &v));
    CHECK(util_parse_ll("12345", 2, &v) && v == 12);
}

static void test_parse_ull(void) {
    unsigned long long v;
    CHECK(util_parse_ull("0", 1, &v) && v == 0);
    CHECK(util_parse_ull("18446744073709551615", 20, &v) && v == ULLONG_MAX);
    CHECK(!util_parse_ull("18446744073709551616", 20, &v));
    CHECK(!util_parse_ull("-1", 2, &v));
    CHECK(!util_parse_ull("+1", 2, &v));
    CHECK(!util_parse_ull("01", 2, &v));
    CHECK(!util_parse_ull("", 0, &v));
    CHECK(!util_parse_ull(" 1", 2, &v));
    CHECK(!util_parse_ull("118446744073709551615", 21, &v));
}

static void test_ll2str(void) {
    char buf[32];
    CHECK_MEM(buf, util_ll2str(buf, sizeof(buf), 0), "0");
    CHECK_MEM(buf, util_ll2str(buf, sizeof(buf), -1), "-1");
    CHECK_MEM(buf, util_ll2str(buf, sizeof(buf), LLONG_MAX), "9223372036854775807");
    CHECK_MEM(buf, util_ll2str(buf, sizeof(buf), LLONG_MIN), "-9223372036854775808");
    CHECK(strcmp(buf, "-9223372036854775808") == 0); /* NUL appended */
    CHECK_EQ_LL(util_ll2str(buf, 21, LLONG_MIN), 20);
    CHECK_EQ_LL(util_ll2str(buf, 20, LLONG_MIN), 20); /* fits without NUL */
    CHECK_EQ_LL(util_ll2str(buf, 19, LLONG_MIN), 0);
    CHECK_EQ_LL(util_ll2str(buf, 0, 5), 0);
    CHECK_MEM(buf, util_ull2str(buf, sizeof(buf), ULLONG_MAX), "18446744073709551615");
    CHECK_EQ_LL(util_ull2str(buf, 3, 1000), 0);
    /* Round trip through the parser. */
    long long samples[] = {0, 7, -7, 10, -10, 999, LLONG_MAX, LLONG_MIN, 1LL << 53};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        long long back = 0;
        size_t n = util_ll2str(buf, sizeof(buf), samples[i]);
        CHECK(util_parse_ll(buf, n, &back) && back == samples[i]);
    }
}

static int ld_ok(const char *s, long double *v) { return util_parse_ld(s, strlen(s), v); }

static void test_parse_ld(void) {
    long double v;
    CHECK(ld_ok("1e3", &v) && v == 1000.0L);
    CHECK(ld_ok("-.5", &v) && v == -0.5L);
    CHECK(ld_ok("5.0e-2", &v) && fabsl(v - 0.05L) < 1e-18L);
    CHECK(ld_ok("10", &v) && v == 10.0L);
    CHECK(ld_ok("inf", &v) && isinf(v) && v > 0);
    CHECK(ld_ok("-inf", &v) && isinf(v) && v < 0);
    CHECK(!ld_ok("", &v));
    CHECK(!ld_ok(" 1", &v));
    CHECK(!ld_ok("1 ", &v));
    CHECK(!ld_ok("\t1", &v));
    CHECK(!ld_ok("1x", &v));
    CHECK(!ld_ok("nan", &v));
    CHECK(!ld_ok("-nan", &v));
    CHECK(!ld_ok("abc", &v));
    CHECK(!ld_ok("1e999999", &v));  /* overflow */
    CHECK(!ld_ok("1e-999999", &v)); /* underflow to zero */
    CHECK(!util_parse_ld("1\0" "5", 3, &v));
    /* Length limit: 5119 bytes is parsed, 5120 is rejected outright. */
    char *big = malloc(5121);
    memset(big, '0', 5120);
    big[0] = '1';
    big[1] = '.';
    CHECK(util_parse_ld(big, 5119, &v) && v == 1.0L);
    CHECK(!util_parse_ld(big, 5120, &v));
    free(big);
}

static void test_parse_double(void) {
    double v;
    CHECK(util_parse_double("1.5", 3, &v) && v == 1.5);
    CHECK(util_parse_double("-inf", 4, &v) && isinf(v) && v < 0);
    CHECK(util_parse_double("+inf", 4, &v) && isinf(v) && v > 0);
    CHECK(util_parse_double("1e3", 3, &v) && v == 1000.0);
    CHECK(!util_parse_double("", 0, &v));
    CHECK(!util_parse_double("nan", 3, &v));
    CHECK(!util_parse_double(" 1", 2, &v));
    CHECK(!util_parse_double("1 ", 2, &v));
    CHECK(!util_parse_double("1e400", 5, &v));
    CHECK(util_parse_double("1.25xyz", 4, &v) && v == 1.25); /* len bounds */
    /* A long input goes through the heap copy path. */
    char longnum[300];
    memset(longnum, '0', sizeof(longnum));
    longnum[0] = '2';
    longnum[1] = '.';
    CHECK(util_parse_double(longnum, sizeof(longnum), &v) && v == 2.0);
    longnum[299] = 'x';
    CHECK(!util_parse_double(longnum, sizeof(longnum), &v));
}

static int ld2str_is(long double v, const char *want) {
    char buf[5120];
    size_t n = util_ld2str(buf, sizeof(buf), v);
    return n == strlen(want) && memcmp(buf, want, n) == 0 && buf[n] == '\0';
}

static void test_ld2str(void) {
    CHECK(ld2str_is(10.5L, "10.5"));
    CHECK(ld2str_is(3.0L, "3"));
    CHECK(ld2str_is(5.0e3L, "5000"));
    CHECK(ld2str_is(0.1L + 0.2L, "0.3"));
    CHECK(ld2str_is(0.0L, "0"));
    CHECK(ld2str_is(-0.0L, "0"));
    CHECK(ld2str_is(-1e-30L, "0")); /* rounds to "-0.000..." -> "0" */
    CHECK(ld2str_is(-2.5L, "-2.5"));
    CHECK(ld2str_is(100.0L, "100"));
    CHECK(ld2str_is(1e20L, "100000000000000000000"));
    CHECK(ld2str_is(HUGE_VALL, "inf"));
    CHECK(ld2str_is(-HUGE_VALL, "-inf"));
    /* Never overflows: too small a buffer yields 0. */
    char small[4];
    CHECK_EQ_LL(util_ld2str(small, sizeof(small), 10.5L), 0);
    CHECK_EQ_LL(util_ld2str(small, 0, 1.0L), 0);
    CHECK_EQ_LL(util_ld2str(small, 4, -HUGE_VALL), 0);
    char buf[5120];
    CHECK(util_ld2str(buf, sizeof(buf), LDBL_MAX) > 4900);
    CHECK(util_ld2str(buf, sizeof(buf), -LDBL_MAX) > 4900);
}

static void test_d2str(void) {
    char buf[64];
    CHECK_MEM(buf, util_d2str(buf, sizeof(buf), 1.5), "1.5");
    CHECK_MEM(buf, util_d2str(buf, sizeof(buf), 0.1), "0.10000000000000001");
    CHECK_MEM(buf, util_d2str(buf, sizeof(buf), 100.0), "100");
    CHECK_MEM(buf, util_d2str(buf, sizeof(buf), HUGE_VAL), "inf");
    CHECK_MEM(buf, util_d2str(buf, sizeof(buf), -HUGE_VAL), "-inf");
    CHECK_MEM(buf, util_d2str(buf, sizeof(buf), 1e300), "1.0000000000000001e+300");
    CHECK_EQ_LL(util_d2str(buf, 3, 1.5), 0);
    double back;
    size_t n = util_d2str(buf, sizeof(buf), 0.1 + 0.2);
    CHECK(util_parse_double(buf, n, &back) && back == 0.1 + 0.2);
}

static void test_eq_ci(void) {
    CHECK(util_eq_ci("ex", 2, "EX"));
    CHECK(util_eq_ci("Ex", 2, "eX"));
    CHECK(!util_eq_ci("e", 1, "EX"));
    CHECK(!util_eq_ci("exx", 3, "EX"));
    CHECK(util_eq_ci("", 0, ""));
    CHECK(!util_eq_ci("e\0", 2, "E"));
}

static void test_glob_basic(void) {
    CHECK(glob("", ""));
    CHECK(!glob("", "a"));
    CHECK(glob("abc", "abc"));
    CHECK(!glob("abc", "abd"));
    CHECK(!glob("abc", "ab"));
    CHECK(!glob("ab", "abc"));
    CHECK(glob("*", "anything"));
    CHECK(glob("a*", "a"));
    CHECK(glob("a*", "abc"));
    CHECK(glob("*c", "abc"));
    CHECK(glob("a*c", "ac"));
    CHECK(glob("a*c", "abbbc"));
    CHECK(!glob("a*c", "abbbd"));
    CHECK(glob("a**c", "abc"));
    CHECK(glob("*a*b*", "xxaxxbxx"));
    CHECK(!glob("*a*b*", "xxbxxaxx"));
    CHECK(glob("h?llo", "hello"));
    CHECK(!glob("h?llo", "hllo"));
    CHECK(glob("???", "abc"));
    CHECK(!glob("???", "ab"));
    CHECK(glob("*?", "a"));
    CHECK(!glob("*??", "a"));
    /* Redis quirk: the empty string only matches the empty pattern. */
    CHECK(!glob("*", ""));
    CHECK(!glob("**", ""));
}

static void test_glob_classes(void) {
    CHECK(glob("h[ae]llo", "hello"));
    CHECK(glob("h[ae]llo", "hallo"));
    CHECK(!glob("h[ae]llo", "hillo"));
    CHECK(glob("h[^e]llo", "hallo"));
    CHECK(!glob("h[^e]llo", "hello"));
    CHECK(glob("h[a-b]llo", "hbllo"));
    CHECK(!glob("h[a-b]llo", "hcllo"));
    CHECK(glob("h[b-a]llo", "hallo")); /* reversed range works as a-b */
    CHECK(glob("[0-9][0-9]", "42"));
    CHECK(!glob("[0-9]", "a"));
    CHECK(glob("[^0-9]", "a"));
    CHECK(glob("[a-cx]", "x"));
    CHECK(glob("[]]", "]") == 0);  /* "[]" is an empty class, then ']' */
    CHECK(glob("[]]", "x") == 0);
    CHECK(!glob("[]", "a"));       /* empty class matches nothing */
    CHECK(glob("[^]", "a"));       /* negated empty class: anything */
    CHECK(glob("[\\]]", "]"));     /* escaped ']' inside a class */
    CHECK(glob("[\\-]", "-"));
    CHECK(!glob("[\\-]", "a"));
    CHECK(glob("[a-]", "a"));      /* range a..']' reversed: ']'..'a' */
    CHECK(glob("[a-]", "^"));
    CHECK(!glob("[a-]", "-"));
    CHECK(glob("[a-", "-"));       /* unclosed: end closes; 'a' and '-' */
    CHECK(glob("[a-", "a"));
    CHECK(glob("x[ab", "xb"));     /* unclosed class at the end */
    CHECK(!glob("x[ab", "xc"));
    CHECK(!glob("x[", "x["));      /* lone '[' at the end matches nothing */
    CHECK(glob("x[^", "xq"));      /* lone "[^" matches any one char */
    CHECK(glob("*[ab]", "zzb"));
}

static void test_glob_escapes(void) {
    CHECK(glob("\\*", "*"));
    CHECK(!glob("\\*", "a"));
    CHECK(glob("a\\?c", "a?c"));
    CHECK(!glob("a\\?c", "abc"));
    CHECK(glob("\\[a]", "[a]"));
    CHECK(glob("\\\\", "\\"));
    CHECK(glob("a\\", "a\\"));     /* trailing lone backslash is literal */
    CHECK(glob("*\\*", "abc*"));
    CHECK(!glob("*\\*", "abc"));
}

static void test_glob_nocase(void) {
    CHECK(glob_nc("HELLO", "hello"));
    CHECK(glob_nc("h*O", "HellO"));
    CHECK(!glob("HELLO", "hello"));
    CHECK(glob_nc("[A-Z]", "q"));
    CHECK(glob_nc("[a-z]", "Q"));
    CHECK(glob_nc("[abc]", "B"));
    CHECK(glob_nc("\\A", "a"));    /* escape outside a class folds case */
    CHECK(!glob_nc("[\\A]", "a")); /* ...inside a class it does not (Redis) */
}

static void test_glob_binary(void) {
    CHECK(util_glob_match("a\0*", 3, "a\0xyz", 5, 0));
    CHECK(!util_glob_match("a\0*", 3, "a\1xyz", 5, 0));
    CHECK(util_glob_match("?", 1, "\xff", 1, 0));
    CHECK(util_glob_match("[\x80-\xff]", 5, "\x90", 1, 0));
    /* Redis compares signed chars: "[a-\xff]" is the range -1..'a'. */
    CHECK(util_glob_match("[a-\xff]", 5, "\xff", 1, 0));
    CHECK(util_glob_match("[a-\xff]", 5, "0", 1, 0));
    CHECK(!util_glob_match("[a-\xff]", 5, "\x90", 1, 0));
}

static void test_glob_pathological(void) {
    size_t n = 10000;
    char *s = malloc(n);
    memset(s, 'a', n);
    const char *pat = "a*a*a*a*a*a*a*a*a*a*a*b";
    int64_t t0 = clock_mono_us();
    CHECK(!util_glob_match(pat, strlen(pat), s, n, 0));
    s[n - 1] = 'b';
    CHECK(util_glob_match(pat, strlen(pat), s, n, 0));
    int64_t elapsed = clock_mono_us() - t0;
    CHECK(elapsed < 500000); /* O(n*m) is well under a millisecond here */
    /* Many stars against a long non-matching string. */
    char stars[201];
    for (int i = 0; i < 200; i += 2) {
        stars[i] = '*';
        stars[i + 1] = 'a';
    }
    stars[199] = 'c';
    stars[200] = '\0';
    CHECK(!util_glob_match(stars, 200, s, n, 0));
    free(s);
}

static void test_clock_and_log(void) {
    int64_t a = clock_mono_us(), b = clock_mono_us();
    CHECK(b >= a);
    CHECK(clock_wall_ms() > 1600000000000LL);
    CHECK(clock_wall_us() / 1000 - clock_wall_ms() <= 1);
    CHECK(clock_mono_ms() >= 0);
    CHECK_EQ_LL(log_parse_level("silent"), LOG_SILENT);
    CHECK_EQ_LL(log_parse_level("NOTICE"), LOG_NORMAL);
    CHECK_EQ_LL(log_parse_level("warning"), LOG_WARNING);
    CHECK_EQ_LL(log_parse_level("nothing"), LOG_SILENT);
    CHECK_EQ_LL(log_parse_level("normal"), LOG_NORMAL);
    /* Redis 7.0's four names come first, in its order (its error text). */
    CHECK(strcmp(log_level_spelling(0), "debug") == 0);
    CHECK(strcmp(log_level_spelling(3), "warning") == 0);
    CHECK_EQ_LL(log_find_spelling("Notice"), 2);
    CHECK(log_level_spelling(log_find_spelling("silent") + 1) != NULL);
    CHECK(log_level_spelling(100) == NULL);
    CHECK_EQ_LL(log_spelling_level(-1), -1);
    CHECK_EQ_LL(log_parse_level("debug"), LOG_VERBOSE);
    CHECK_EQ_LL(log_parse_level("verbose"), LOG_VERBOSE);
    CHECK_EQ_LL(log_parse_level("loud"), -1);
    CHECK(strcmp(log_level_name(LOG_NORMAL), "normal") == 0);
    CHECK_EQ_LL(log_current_level, LOG_NORMAL);
    log_set_level(LOG_SILENT);
    log_warn("this must not be printed %d", 1);
    log_set_level(LOG_WARNING);
    log_info("this must not be printed either %d", 2);
    log_set_level(LOG_NORMAL);
}

/* The size parser of the server's options (and of pier-bench). */
static void test_parse_memory(void) {
    static const struct {
        const char *s;
        long long v;
    } ok[] = {{"0", 0},           {"100", 100},      {"100b", 100},
              {"1k", 1000},       {"1kb", 1024},     {"1K", 1000},
              {"2KB", 2048},      {"5m", 5000000},   {"5mb", 5242880},
              {"2g", 2000000000}, {"2gb", 2147483648LL}, {"1Gb", 1073741824},
              {"8589934591gb", 8589934591LL * 1073741824}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        long long v = -1;
        CHECK(util_parse_memory(ok[i].s, strlen(ok[i].s), &v));
        CHECK_EQ_LL(v, ok[i].v);
    }
    static const char *const bad[] = {"", "k", "kb", "-1", "1.5mb", "1 mb", " 1", "1tb",
                                      "01k", "1kbb", "8589934592gb", "+1", "1e3", "1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long long v;
        if (util_parse_memory(bad[i], strlen(bad[i]), &v))
            fprintf(stderr, "  accepted '%s'\n", bad[i]);
        CHECK(!util_parse_memory(bad[i], strlen(bad[i]), &v));
    }
    long long v = 0; /* length-delimited: "4kb" of "4kbXX" */
    CHECK(util_parse_memory("4kbXX", 3, &v) && v == 4096);
}

int main(void) {
    RUN(test_parse_ll_valid);
    RUN(test_parse_ll_invalid);
    RUN(test_parse_ull);
    RUN(test_ll2str);
    RUN(test_parse_ld);
    RUN(test_parse_double);
    RUN(test_ld2str);
    RUN(test_d2str);
    RUN(test_eq_ci);
    RUN(test_glob_basic);
    RUN(test_glob_classes);
    RUN(test_glob_escapes);
    RUN(test_glob_nocase);
    RUN(test_glob_binary);
    RUN(test_glob_pathological);
    RUN(test_clock_and_log);
    RUN(test_parse_memory);
    return check_summary("util");
}
