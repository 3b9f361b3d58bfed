/* util.c - strict number parsing/formatting and glob matching.
 *
 * Every function here takes (pointer, length) and never reads past the
 * length: request arguments are not NUL terminated. The accepted syntax
 * follows Redis 7 so that replies and errors are byte-identical. */
#include "lib/util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"

/* Redis's LONG_STR_SIZE: inputs of 21 bytes or more are never valid integers
 * (the longest is "-9223372036854775808", 20 bytes). Rejecting them up front
 * also bounds the digit loop. */
#define INT_STR_MAX_LEN 20

/* Redis's MAX_LONG_DOUBLE_CHARS: INCRBYFLOAT rejects longer inputs. */
#define LONG_DOUBLE_MAX_CHARS (5 * 1024)

/* Parse the magnitude of a strict decimal: first digit 1-9 (or the single
 * string "0"), digits only, no overflow of unsigned long long.
 * Returns 1 and stores the value in *out, 0 on any syntax error/overflow. */
static int parse_magnitude(const char *s, size_t len, unsigned long long *out) {
    if (len == 0)
        return 0;
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return 1;
    }
    if (s[0] < '1' || s[0] > '9')
        return 0;
    unsigned long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - digit) / 10)
            return 0;
        v = v * 10 + digit;
    }
    *out = v;
    return 1;
}

int util_parse_ll(const char *s, size_t len, long long *out) {
    if (len == 0 || len > INT_STR_MAX_LEN)
        return 0;
    int negative = s[0] == '-';
    unsigned long long mag;
    if (!parse_magnitude(s + negative, len - (size_t)negative, &mag))
        return 0;
    if (negative) {
        /* "-0" is rejected like Redis's string2ll does. */
        if (mag == 0 || mag > (unsigned long long)LLONG_MAX + 1)
            return 0;
        /* -(LLONG_MAX+1) cannot be computed in signed arithmetic; negate the
         * magnitude minus one instead so no intermediate overflows. */
        *out = -(long long)(mag - 1) - 1;
    } else {
        if (mag > (unsigned long long)LLONG_MAX)
            return 0;
        *out = (long long)mag;
    }
    return 1;
}

int util_parse_ull(const char *s, size_t len, unsigned long long *out) {
    if (len == 0 || len > INT_STR_MAX_LEN)
        return 0;
    return parse_magnitude(s, len, out);
}

/* The whitespace set of isspace() in the C locale, without the locale
 * lookup (and without the UB of passing a negative char to isspace). */
static int is_c_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

/* strtold/strtod need a NUL-terminated string. Copies s into buf when it
 * fits (bufsize > len), else into a heap copy. Returns the string to parse;
 * the caller frees it when it is not buf. */
static char *terminated_copy(const char *s, size_t len, char *buf,
                             size_t bufsize) {
    char *dst = len < bufsize ? buf : xmalloc(len + 1);
    memcpy(dst, s, len);
    dst[len] = '\0';
    return dst;
}

int util_parse_ld(const char *s, size_t len, long double *out) {
    char buf[LONG_DOUBLE_MAX_CHARS];
    if (len == 0 || len >= sizeof(buf) || is_c_space(s[0]))
        return 0;
    char *str = terminated_copy(s, len, buf, sizeof(buf));
    char *end;
    errno = 0;
    long double v = strtold(str, &end);
    /* end must reach len: an embedded NUL or trailing byte is garbage.
     * ERANGE is an error on overflow and on underflow to zero, but a
     * denormal result is accepted, as Redis does. */
    int ok = (size_t)(end - str) == len && !isnan(v) &&
             !(errno == ERANGE &&
               (v == HUGE_VALL || v == -HUGE_VALL || v == 0.0L));
    if (str != buf)
        free(str);
    if (ok)
        *out = v;
    return ok;
}

int util_parse_double(const char *s, size_t len, double *out) {
    char buf[128];
    if (len == 0 || is_c_space(s[0]))
        return 0;
    char *str = terminated_copy(s, len, buf, sizeof(buf));
    char *end;
    errno = 0;
    double v = strtod(str, &end);
    int ok = (size_t)(end - str) == len && !isnan(v) &&
             !(errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL || v == 0.0));
    if (str != buf)
        free(str);
    if (ok)
        *out = v;
    return ok;
}

/* Copy n bytes of text into buf if they fit with room for a NUL.
 * Returns n, or 0 when buflen is too small (buf is then untouched). */
static size_t put_text(char *buf, size_t buflen, const char *text, size_t n) {
    if (n + 1 > buflen)
        return 0;
    memcpy(buf, text, n);
    buf[n] = '\0';
    return n;
}

/* Writes the digits of v right-aligned ending at end (exclusive).
 * Returns the pointer to the first digit. */
static char *digits_backwards(char *end, unsigned long long v) {
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

size_t util_ull2str(char *buf, size_t buflen, unsigned long long v) {
    char tmp[24];
    char *first = digits_backwards(tmp + sizeof(tmp), v);
    size_t n = (size_t)(tmp + sizeof(tmp) - first);
    /* The NUL is optional when the digits fill buf exactly. */
    if (n > buflen)
        return 0;
    memcpy(buf, first, n);
    if (n < buflen)
        buf[n] = '\0';
    return n;
}

size_t util_ll2str(char *buf, size_t buflen, long long v) {
    char tmp[24];
    /* Magnitude in unsigned arithmetic so LLONG_MIN needs no special case. */
    unsigned long long mag =
        v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *first = digits_backwards(tmp + sizeof(tmp), mag);
    if (v < 0)
        *--first = '-';
    size_t n = (size_t)(tmp + sizeof(tmp) - first);
    if (n > buflen)
        return 0;
    memcpy(buf, first, n);
    if (n < buflen)
        buf[n] = '\0';
    return n;
}

/* Texts for the values printf renders in a libc-specific way. Returns the
 * text for inf/-inf/nan, NULL for a finite value. */
static const char *nonfinite_text(int is_inf, int is_nan, int negative) {
    if (is_nan)
        return "nan";
    if (is_inf)
        return negative ? "-inf" : "inf";
    return NULL;
}

size_t util_ld2str(char *buf, size_t buflen, long double v) {
    const char *special = nonfinite_text(isinf(v), isnan(v), signbit(v));
    if (special)
        return put_text(buf, buflen, special, strlen(special));
    if (buflen == 0)
        return 0;
    int written = snprintf(buf, buflen, "%.17Lf", v);
    if (written < 0 || (size_t)written + 1 > buflen)
        return 0;
    size_t n = (size_t)written;
    /* "%.17Lf" always prints a '.', so trimming stops at it at the latest. */
    if (memchr(buf, '.', n) != NULL) {
        while (buf[n - 1] == '0')
            n--;
        if (buf[n - 1] == '.')
            n--;
    }
    /* Tiny negative values round to "-0.000..." and trim to "-0". */
    if (n == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        n = 1;
    }
    buf[n] = '\0';
    return n;
}

size_t util_d2str(char *buf, size_t buflen, double v) {
    const char *special = nonfinite_text(isinf(v), isnan(v), signbit(v));
    if (special)
        return put_text(buf, buflen, special, strlen(special));
    if (buflen == 0)
        return 0;
    int written = snprintf(buf, buflen, "%.17g", v);
    if (written < 0 || (size_t)written + 1 > buflen)
        return 0;
    return (size_t)written;
}

/* ---- glob matching ---------------------------------------------------- */

/* Redis compares pattern bytes as (signed) char, so class ranges involving
 * bytes >= 0x80 order them below ASCII. Reproduce that without relying on
 * the implementation-defined conversion to signed char. */
static int redis_char(unsigned char c) { return c < 128 ? (int)c : (int)c - 256; }

/* ASCII-only case folding (C locale tolower, defined for negative values). */
static int fold(int c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }

static int chars_equal(int a, int b, int nocase) {
    return nocase ? fold(a) == fold(b) : a == b;
}

/* Match one character c against the class starting at pat[i] (just after
 * '['). Reproduces Redis's scanning rules: leading '^' negates; "\\x" is x
 * taken literally and compared case-sensitively; "a-z" is a range whose
 * ends are swapped when reversed (before case folding); ']' closes, and the
 * end of the pattern closes an unclosed class.
 * Returns whether c matched; *next is set just past the class. */
static int match_class(const unsigned char *pat, size_t plen, size_t i, int c,
                       int nocase, size_t *next) {
    int negate = i < plen && pat[i] == '^';
    if (negate)
        i++;
    int matched = 0;
    while (i < plen && pat[i] != ']') {
        size_t left = plen - i;
        if (pat[i] == '\\' && left >= 2) {
            i++;
            if (redis_char(pat[i]) == c)
                matched = 1;
        } else if (left >= 3 && pat[i + 1] == '-') {
            int lo = redis_char(pat[i]), hi = redis_char(pat[i + 2]);
            if (lo > hi) {
                int t = lo;
                lo = hi;
                hi = t;
            }
            int x = c;
            if (nocase) {
                lo = fold(lo);
                hi = fold(hi);
                x = fold(c);
            }
            if (x >= lo && x <= hi)
                matched = 1;
            i += 2;
        } else if (chars_equal(redis_char(pat[i]), c, nocase)) {
            matched = 1;
        }
        i++;
    }
    *next = i < plen ? i + 1 : plen; /* past ']' or at the pattern end */
    return negate ? !matched : matched;
}

/* Match the single non-'*' pattern element at pat[i] against character c.
 * Returns whether it matched; *next is set past the element. */
static int match_element(const unsigned char *pat, size_t plen, size_t i,
                         int c, int nocase, size_t *next) {
    switch (pat[i]) {
    case '?':
        *next = i + 1;
        return 1;
    case '[':
        return match_class(pat, plen, i + 1, c, nocase, next);
    case '\\':
        /* A trailing lone backslash is a literal backslash. */
        if (plen - i >= 2)
            i++;
        break;
    default:
        break;
    }
    *next = i + 1;
    return chars_equal(redis_char(pat[i]), c, nocase);
}

int util_glob_match(const char *pattern, size_t plen, const char *string,
                    size_t slen, int nocase) {
    const unsigned char *pat = (const unsigned char *)pattern;
    const unsigned char *str = (const unsigned char *)string;
    /* Redis quirk kept for identical KEYS/SCAN results: an empty string
     * matches only the empty pattern (even "**" does not match it). */
    if (slen == 0)
        return plen == 0;

    /* Every element other than '*' consumes exactly one character, so on a
     * mismatch it is enough to retry from the most recent '*', letting it
     * swallow one more character: earlier stars can never do better.
     * This bounds the work at O(plen * slen) without recursion. */
    size_t p = 0, s = 0;
    size_t star_p = SIZE_MAX; /* pattern index just after the last '*' */
    size_t star_s = 0;        /* string index that '*' was last retried at */
    while (s < slen) {
        if (p < plen && pat[p] == '*') {
            while (p < plen && pat[p] == '*')
                p++;
            if (p == plen)
                return 1;
            star_p = p;
            star_s = s;
            continue;
        }
        size_t next;
        if (p < plen && match_element(pat, plen, p, redis_char(str[s]),
                                      nocase, &next)) {
            p = next;
            s++;
        } else if (star_p != SIZE_MAX) {
            p = star_p;
            s = ++star_s;
        } else {
            return 0;
        }
    }
    while (p < plen && pat[p] == '*')
        p++;
    return p == plen;
}

int util_eq_ci(const char *s, size_t len, const char *cstr) {
    for (size_t i = 0; i < len; i++) {
        if (cstr[i] == '\0' ||
            fold((unsigned char)s[i]) != fold((unsigned char)cstr[i]))
            return 0;
    }
    return cstr[len] == '\0';
}

int util_parse_memory(const char *s, size_t len, long long *out) {
    static const struct {
        const char *unit;
        long long mul;
    } units[] = {{"", 1},
                 {"b", 1},
                 {"k", 1000},
                 {"kb", 1024},
                 {"m", 1000LL * 1000},
                 {"mb", 1024LL * 1024},
                 {"g", 1000LL * 1000 * 1000},
                 {"gb", 1024LL * 1024 * 1024}};
    size_t at = len;
    while (at > 0 && isalpha((unsigned char)s[at - 1])) at--;
    long long mul = 0, v;
    for (size_t i = 0; i < sizeof units / sizeof units[0] && !mul; i++)
        if (util_eq_ci(s + at, len - at, units[i].unit)) mul = units[i].mul;
    if (!mul || !util_parse_ll(s, at, &v) || v < 0 || v > LLONG_MAX / mul) return 0;
    *out = v * mul;
    return 1;
}
