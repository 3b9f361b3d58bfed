/* util.h - number parsing/formatting and glob matching shared by every layer.
 *
 * All parsers are strict in the way Redis is strict: no leading/trailing
 * spaces, no leading '+', no leading zeros (except "0" itself), "-0" is
 * rejected for integers, overflow is an error. They never read past len and
 * never require NUL termination. */
#ifndef PIER_UTIL_H
#define PIER_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Parse a signed 64-bit decimal integer. Returns 1 on success, 0 on error. */
int util_parse_ll(const char *s, size_t len, long long *out);

/* Parse an unsigned 64-bit decimal integer (used for SCAN cursors). Same
 * strictness as util_parse_ll. Returns 1 on success, 0 on error. */
int util_parse_ull(const char *s, size_t len, unsigned long long *out);

/* Parse a long double the way INCRBYFLOAT does: strtold-compatible syntax,
 * no spaces, rejects NaN; "inf"/"-inf" are accepted (caller decides).
 * Returns 1 on success, 0 on error. */
int util_parse_ld(const char *s, size_t len, long double *out);

/* Parse a double (timeouts, scores): rejects NaN and empty input.
 * Returns 1 on success, 0 on error. */
int util_parse_double(const char *s, size_t len, double *out);

/* Write v in decimal into buf (no NUL written if it does not fit).
 * Returns the number of bytes written, 0 if buflen is too small. buflen of
 * 21 is always enough. A NUL is appended when there is room. */
size_t util_ll2str(char *buf, size_t buflen, long long v);
size_t util_ull2str(char *buf, size_t buflen, unsigned long long v);

/* Format a long double the way Redis INCRBYFLOAT replies: "%.17Lf" then
 * trailing zeros (and a trailing '.') removed; "inf"/"-inf" for infinities.
 * Returns bytes written (buflen >= 5120 is always enough, 64 is enough for
 * values produced by INCRBYFLOAT on realistic inputs; the function never
 * overflows buf and returns 0 if it would not fit). */
size_t util_ld2str(char *buf, size_t buflen, long double v);

/* Format a double for RESP replies (RESP3 ',' doubles and RESP2 bulk):
 * "%.17g"-style shortest round-trip representation, "inf", "-inf".
 * Returns bytes written, 0 if it does not fit. */
size_t util_d2str(char *buf, size_t buflen, double v);

/* Glob-style match as in Redis KEYS/SCAN MATCH: '*', '?', '[abc]', '[^a]',
 * '[a-z]', '\x' escapes. Binary safe. nocase != 0 folds ASCII case.
 * Must be iterative or bounded: a pattern like "a*a*a*a*...b" against a long
 * string must not take exponential time or recurse without bound.
 * Returns 1 on match, 0 otherwise. */
int util_glob_match(const char *pat, size_t plen, const char *str, size_t slen,
                    int nocase);

/* Parse a size with Redis's memory units, as the server's options take
 * them: "100", "100b", "1k" (1000), "1kb" (1024), "5m", "5mb", "2g", "2gb"
 * (units in any case, no space, no fraction; the number as util_parse_ll
 * takes it, not negative). Returns 1 on success, 0 on error (also when
 * the product overflows). Shared by config.c and tools/pier-bench. */
int util_parse_memory(const char *s, size_t len, long long *out);

/* Case-insensitive comparison of a length-delimited argument with a C
 * string, e.g. util_eq_ci(arg, arglen, "EX"). Returns 1 when equal. */
int util_eq_ci(const char *s, size_t len, const char *cstr);

#endif
