/* fuzz_util.c - number parsing/formatting and glob matching (lib/util).
 *
 * Numbers:
 *  - parse_ll(ll2str(x)) == x and parse_ull(ull2str(x)) == x for x taken
 *    from the first 8 input bytes; ll2str into every too-small exact-size
 *    buffer returns 0 without writing past it;
 *  - the parsers are strict: when parse_ll/parse_ull accept the raw input,
 *    formatting the value gives back exactly the input bytes;
 *  - parse_double accepting the input implies a finite-or-inf, non-NaN
 *    value that d2str formats and parse_double reads back exactly;
 *    parse_ld accepting it implies ld2str succeeds in 5120 bytes (the
 *    documented bound) and its output is accepted by parse_ld again.
 * Glob: byte 0 holds nocase (bit 0) and the split mode (bit 1: byte 1 is
 * the pattern length; else the pattern ends at the first NUL); the rest is
 * the string. util_glob_match must return, agree with a port of Redis's
 * stringmatchlen (when that one is not cut short by its nesting limit) and
 * be fast: libFuzzer's -timeout catches exponential behaviour. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

/* ---- numbers ------------------------------------------------------------ */

static void check_ll_roundtrip(long long x) {
    char buf[21];
    size_t n = util_ll2str(buf, sizeof(buf), x);
    FZ_CHECK(n > 0 && n <= 20);
    long long back;
    FZ_CHECK(util_parse_ll(buf, n, &back) && back == x);
    char ref[32];
    snprintf(ref, sizeof(ref), "%lld", x);
    FZ_CHECK(strlen(ref) == n && memcmp(ref, buf, n) == 0);
    /* Every buffer that is too small: 0 and no write past it. */
    for (size_t cap = 0; cap < n; cap++) {
        char *small = xmalloc(cap);
        FZ_CHECK(util_ll2str(small, cap, x) == 0);
        free(small);
    }
    char *exact = xmalloc(n);
    FZ_CHECK(util_ll2str(exact, n, x) == n && memcmp(exact, buf, n) == 0);
    free(exact);
}

static void check_ull_roundtrip(unsigned long long x) {
    char buf[21];
    size_t n = util_ull2str(buf, sizeof(buf), x);
    FZ_CHECK(n > 0 && n <= 20);
    unsigned long long back;
    FZ_CHECK(util_parse_ull(buf, n, &back) && back == x);
    char ref[32];
    snprintf(ref, sizeof(ref), "%llu", x);
    FZ_CHECK(strlen(ref) == n && memcmp(ref, buf, n) == 0);
    char *exact = xmalloc(n);
    FZ_CHECK(util_ull2str(exact, n, x) == n);
    free(exact);
}

static void check_numbers(const uint8_t *data, size_t size) {
    if (size >= 8) {
        uint64_t x;
        memcpy(&x, data, 8);
        check_ll_roundtrip((long long)x);
        check_ull_roundtrip(x);
        /* boundary neighbours */
        check_ll_roundtrip((long long)(x >> (data[0] & 63)));
    }
    check_ll_roundtrip(0);
    check_ll_roundtrip(LLONG_MIN);
    check_ll_roundtrip(LLONG_MAX);

    /* The raw input: exact-size copy so reads past len are caught. */
    char *s = xmalloc(size);
    if (size)
        memcpy(s, data, size);
    long long v;
    if (util_parse_ll(s, size, &v)) {
        char buf[21];
        size_t n = util_ll2str(buf, sizeof(buf), v);
        FZ_CHECK(n == size && memcmp(buf, s, n) == 0); /* canonical only */
    }
    long long mem;
    if (util_parse_memory(s, size, &mem)) { /* a size: digits, then a known unit */
        FZ_CHECK(mem >= 0 && size > 0 && s[0] >= '0' && s[0] <= '9');
        size_t digits = 0;
        while (digits < size && s[digits] >= '0' && s[digits] <= '9') digits++;
        long long num;
        FZ_CHECK(util_parse_ll(s, digits, &num) && (num == 0 || mem % num == 0));
    }
    unsigned long long u;
    if (util_parse_ull(s, size, &u)) {
        char buf[21];
        size_t n = util_ull2str(buf, sizeof(buf), u);
        FZ_CHECK(n == size && memcmp(buf, s, n) == 0);
    }
    double d;
    if (util_parse_double(s, size, &d)) {
        FZ_CHECK(!isnan(d));
        char buf[64];
        size_t n = util_d2str(buf, sizeof(buf), d);
        FZ_CHECK(n > 0);
        double back;
        FZ_CHECK(util_parse_double(buf, n, &back));
        FZ_CHECK(back == d && signbit(back) == signbit(d));
    }
    long double ld;
    if (util_parse_ld(s, size, &ld)) {
        FZ_CHECK(!isnan(ld));
        char *buf = xmalloc(5120);
        size_t n = util_ld2str(buf, 5120, ld);
        FZ_CHECK(n > 0 && n < 5120);
        long double back;
        FZ_CHECK(util_parse_ld(buf, n, &back));
        free(buf);
    }
    free(s);
}

/* ---- glob --------------------------------------------------------------- */

/* Redis 7 stringmatchlen (util.c), made length-safe: the original reads
 * pattern[1] and *pattern past patternLen, relying on NUL termination;
 * here those reads see a virtual NUL. Bytes compare as signed char and
 * tolower is ASCII-only, as in the C locale. */
static int r_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static int ref_match(const signed char *pattern, long patternLen,
                     const signed char *string, long stringLen, int nocase,
                     int *skipLonger, int nesting, int *cut) {
#define PAT(i) ((i) < patternLen ? pattern[(i)] : 0)
    if (nesting > 1000) {
        *cut = 1;
        return 0;
    }
    while (patternLen && stringLen) {
        switch (pattern[0]) {
        case '*':
            while (patternLen && PAT(1) == '*') {
                pattern++;
                patternLen--;
            }
            if (patternLen == 1)
                return 1;
            while (stringLen) {
                if (ref_match(pattern + 1, patternLen - 1, string, stringLen, nocase,
                              skipLonger, nesting + 1, cut))
                    return 1;
                if (*skipLonger)
                    return 0;
                string++;
                stringLen--;
            }
            *skipLonger = 1;
            return 0;
        case '?':
            string++;
            stringLen--;
            break;
        case '[': {
            int not, match;
            pattern++;
            patternLen--;
            not = PAT(0) == '^';
            if (not) {
                pattern++;
                patternLen--;
            }
            match = 0;
            while (1) {
                if (PAT(0) == '\\' && patternLen >= 2) {
                    pattern++;
                    patternLen--;
                    if (pattern[0] == string[0])
                        match = 1;
                } else if (PAT(0) == ']') {
                    break;
                } else if (patternLen == 0) {
                    pattern--;
                    patternLen++;
                    break;
                } else if (patternLen >= 3 && pattern[1] == '-') {
                    int start = pattern[0];
                    int end = pattern[2];
                    int c = string[0];
                    if (start > end) {
                        int t = start;
                        start = end;
                        end = t;
                    }
                    if (nocase) {
                        start = r_lower(start);
                        end = r_lower(end);
                        c = r_lower(c);
                    }
                    pattern += 2;
                    patternLen -= 2;
                    if (c >= start && c <= end)
                        match = 1;
                } else {
                    if (!nocase) {
                        if (pattern[0] == string[0])
                            match = 1;
                    } else if (r_lower(pattern[0]) == r_lower(string[0])) {
                        match = 1;
                    }
                }
                pattern++;
                patternLen--;
            }
            if (not)
                match = !match;
            if (!match)
                return 0;
            string++;
            stringLen--;
            break;
        }
        case '\\':
            if (patternLen >= 2) {
                pattern++;
                patternLen--;
            }
            /* fall through */
        default:
            if (!nocase) {
                if (pattern[0] != string[0])
                    return 0;
            } else if (r_lower(pattern[0]) != r_lower(string[0])) {
                return 0;
            }
            string++;
            stringLen--;
            break;
        }
        pattern++;
        patternLen--;
        if (stringLen == 0) {
            while (PAT(0) == '*') {
                pattern++;
                patternLen--;
            }
            break;
        }
    }
#undef PAT
    return patternLen == 0 && stringLen == 0;
}

static void check_glob(const uint8_t *data, size_t size) {
    if (size < 1)
        return;
    int nocase = data[0] & 1;
    const uint8_t *rest = data + 1;
    size_t rlen = size - 1, plen;
    if (data[0] & 2) {
        if (rlen < 1)
            return;
        plen = rest[0];
        rest++;
        rlen--;
        if (plen > rlen)
            plen = rlen;
    } else {
        const uint8_t *nul = memchr(rest, 0, rlen);
        plen = nul ? (size_t)(nul - rest) : rlen;
    }
    size_t sstart = plen < rlen && !(data[0] & 2) ? plen + 1 : plen;
    size_t slen = rlen - sstart;
    /* exact-size copies */
    char *pat = xmalloc(plen), *str = xmalloc(slen);
    if (plen)
        memcpy(pat, rest, plen);
    if (slen)
        memcpy(str, rest + sstart, slen);
    int got = util_glob_match(pat, plen, str, slen, nocase);
    FZ_CHECK(got == 0 || got == 1);
    int skip = 0, cut = 0;
    int want = ref_match((const signed char *)pat, (long)plen, (const signed char *)str,
                         (long)slen, nocase, &skip, 0, &cut);
    if (!cut && got != want) {
        fprintf(stderr, "fuzz: glob '%.*s' vs '%.*s' nocase=%d: pier %d, redis %d\n",
                (int)plen, pat, (int)slen, str, nocase, got, want);
        abort();
    }
    /* A pattern always matches itself when it has no special bytes. */
    if (plen > 0 && !memchr(pat, '*', plen) && !memchr(pat, '?', plen) &&
        !memchr(pat, '[', plen) && !memchr(pat, '\\', plen))
        FZ_CHECK(util_glob_match(pat, plen, pat, plen, nocase) == 1);
    free(pat);
    free(str);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_numbers(data, size);
    check_glob(data, size);
    return 0;
}
