/* mem.h - pier's allocation wrappers and its one out-of-memory policy.
 *
 * Policy (the server and its tools): an allocation that fails logs what
 * size could not be had, as a fatal line (log_fatal: at every level, to
 * the console too), and aborts, as Redis's zmalloc_default_oom does. The
 * server cannot keep its promises past a failed allocation (a write half
 * applied, a reply or an AOF record lost), and unwinding every caller
 * would be code that never runs; `maxmemory` is what keeps it from getting
 * there, and abort() leaves a core that shows where it happened.
 *
 * libpier (client/) does NOT use this: a library must not end the program
 * that links it, so its calls return PIER_E_NOMEM instead (client/README.md).
 *
 * Include this from .c files only (never from a header): some files still
 * carry a private static xcalloc of their own until they are converted.
 *
 * A zero-byte request allocates one byte, so a NULL result always means
 * failure and callers may pass n = 0 for empty keys and values. */
#ifndef PIER_MEM_H
#define PIER_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Log "Out of memory allocating <size> bytes" and abort(). */
void mem_oom(size_t size) __attribute__((noreturn, cold));

static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (__builtin_expect(p == NULL, 0)) mem_oom(n);
    return p;
}

/* Zeroed. n * size overflowing size_t is out of memory too. */
static inline void *xcalloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) mem_oom(SIZE_MAX);
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (__builtin_expect(p == NULL, 0)) mem_oom(n * size);
    return p;
}

/* As realloc (p NULL allocates); the old pointer is invalid afterwards. */
static inline void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (__builtin_expect(q == NULL, 0)) mem_oom(n);
    return q;
}

/* A malloc'd copy of n bytes (n may be 0, p then may be NULL). */
static inline void *xmemdup(const void *p, size_t n) {
    void *q = xmalloc(n);
    if (n) memcpy(q, p, n);
    return q;
}

/* A malloc'd copy of n bytes plus a terminating NUL. */
static inline char *xstrndup(const char *s, size_t n) {
    char *q = xmalloc(n + 1);
    if (n) memcpy(q, s, n);
    q[n] = '\0';
    return q;
}

static inline char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

#endif
