/* resp_common.h - shared code of the RESP parser fuzz harnesses
 * (fuzz_resp.c, fuzz_resp_chunked.c, fuzz_inline.c).
 *
 * A "transcript" records everything a byte stream produced: every command
 * (argc and argument bytes, copied at once because inline unescaping works
 * in place) and the final state (NEED_MORE, or ERROR with its text). Three
 * producers:
 *  - feed_whole:   the real parser, the stream in one buffer;
 *  - feed_chunked: the real parser, the stream in random-sized reads with
 *                  the consumed prefix discarded (memmove + resp_parser_shift)
 *                  as src/server/client.c does, sometimes mid-batch;
 *  - ref_parse:    an independent, non-resumable model written straight from
 *                  Redis 7's processMultibulkBuffer / processInlineBuffer /
 *                  sdssplitargs (made binary safe as pier documents), plus
 *                  pier's refusal of a batch protocol handshake.
 * Any difference between transcripts, or a broken invariant, is abort().
 *
 * Every buffer handed to the parser is a heap block of exactly the bytes
 * under test so AddressSanitizer reports any read past len. */
#ifndef PIER_FUZZ_RESP_COMMON_H
#define PIER_FUZZ_RESP_COMMON_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "lib/util.h"
#include "proto/resp_parse.h"

#define FZ_HEADER_MAX ((size_t)64 * 1024) /* resp_parse.c HEADER_LINE_MAX */


typedef struct fz_limits {
    long long max_bulk;
    size_t max_inline;
} fz_limits;

static const fz_limits FZ_DEFAULT_LIMITS = {512LL * 1024 * 1024, 64 * 1024};

/* Small limits derived from the input so both sides of a comparison agree
 * and mutations explore different values. */
static inline fz_limits fz_small_limits(size_t n) {
    fz_limits l = {1 + (long long)(n % 24), 1 + n % 48};
    return l;
}

static inline void *fz_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

static inline void *fz_xrealloc(void *ptr, size_t n) {
    void *p = realloc(ptr, n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

/* ---- transcripts -------------------------------------------------------- */

typedef struct transcript {
    unsigned char *bytes; /* serialized commands */
    size_t len, cap;
    size_t *ends;         /* ends[i]: offset in bytes just past command i */
    size_t ncmds, ends_cap;
    int final;            /* RESP_NEED_MORE or RESP_ERROR */
    char error[160];
} transcript;

static inline void tr_init(transcript *t) { memset(t, 0, sizeof(*t)); }

static inline void tr_free(transcript *t) {
    free(t->bytes);
    free(t->ends);
    memset(t, 0, sizeof(*t));
}

static inline void tr_put(transcript *t, const void *p, size_t n) {
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n)
            cap *= 2;
        t->bytes = fz_xrealloc(t->bytes, cap);
        t->cap = cap;
    }
    if (n)
        memcpy(t->bytes + t->len, p, n);
    t->len += n;
}

static inline void tr_begin_cmd(transcript *t, size_t argc) { tr_put(t, &argc, sizeof(argc)); }

static inline void tr_put_arg(transcript *t, const char *p, size_t n) {
    tr_put(t, &n, sizeof(n));
    tr_put(t, p, n);
}

static inline void tr_end_cmd(transcript *t) {
    if (t->ncmds == t->ends_cap) {
        t->ends_cap = t->ends_cap ? t->ends_cap * 2 : 16;
        t->ends = fz_xrealloc(t->ends, t->ends_cap * sizeof(*t->ends));
    }
    t->ends[t->ncmds++] = t->len;
}

static inline void tr_record_parser(transcript *t, const resp_parser *p, const char *buf) {
    tr_begin_cmd(t, p->argc);
    for (size_t i = 0; i < p->argc; i++)
        tr_put_arg(t, buf + p->args[i].off, p->args[i].len);
    tr_end_cmd(t);
}

static inline void tr_finish(transcript *t, int final, const char *error) {
    t->final = final;
    if (final == RESP_ERROR)
        snprintf(t->error, sizeof(t->error), "%s", error);
}

static inline int is_too_big_error(const char *e) {
    return strstr(e, "too big") != NULL;
}

static inline void tr_dump(const char *name, const transcript *t) {
    fprintf(stderr, "  %s: %zu commands, %zu bytes, final %s %s\n", name,
            t->ncmds, t->len, t->final == RESP_ERROR ? "ERROR" : "NEED_MORE",
            t->error);
}

/* a and b must be identical. If tolerate_b_too_big, b (the chunked feed)
 * may instead stop early with a "too big" error after a prefix of a's
 * commands: a line or header longer than the limit is served when its
 * terminator arrives in the same read (documented, as in Redis), so how the
 * stream is cut decides. */
static inline void tr_compare(const char *what, const transcript *a, const transcript *b,
                       int tolerate_b_too_big) {
    int same = a->ncmds == b->ncmds && a->len == b->len &&
               (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0) &&
               a->final == b->final &&
               (a->final != RESP_ERROR || strcmp(a->error, b->error) == 0);
    if (same)
        return;
    if (tolerate_b_too_big && b->final == RESP_ERROR && is_too_big_error(b->error) &&
        b->ncmds <= a->ncmds && (b->ncmds == 0 || a->ends[b->ncmds - 1] == b->len) &&
        (b->len == 0 || memcmp(a->bytes, b->bytes, b->len) == 0))
        return;
    size_t i = 0;
    while (i < a->ncmds && i < b->ncmds && a->ends[i] == b->ends[i] &&
           memcmp(a->bytes, b->bytes, a->ends[i]) == 0)
        i++;
    fprintf(stderr, "fuzz: %s: transcripts differ (first differing command #%zu)\n",
            what, i);
    tr_dump("a", a);
    tr_dump("b", b);
    abort();
}

/* ---- invariants --------------------------------------------------------- */

static inline void check_status(const resp_parser *p, resp_status st, size_t len) {
    FZ_CHECK(st == RESP_OK || st == RESP_NEED_MORE || st == RESP_ERROR);
    FZ_CHECK(p->cmd_start <= p->pos);
    FZ_CHECK(p->pos <= len || (st == RESP_ERROR));
    FZ_CHECK(resp_parser_consumed(p) <= len);
    if (st == RESP_OK) {
        FZ_CHECK(p->argc > 0);
        FZ_CHECK(p->argc <= p->args_cap);
        FZ_CHECK(p->pos <= len);
        for (size_t i = 0; i < p->argc; i++) {
            FZ_CHECK(p->args[i].off <= len);
            FZ_CHECK(p->args[i].len <= len - p->args[i].off);
            FZ_CHECK(p->args[i].off + p->args[i].len <= p->pos);
        }
    } else if (st == RESP_ERROR) {
        FZ_CHECK(p->error != NULL);
        FZ_CHECK(strncmp(p->error, "ERR Protocol error: ", 20) == 0);
        FZ_CHECK(strlen(p->error) < 128);
    } else {
        FZ_CHECK(p->error == NULL);
    }
}

/* ---- feeding the real parser --------------------------------------------- */

/* The whole stream in one exact-size buffer. */
static inline void feed_whole(const uint8_t *data, size_t n, fz_limits lim, transcript *t) {
    char *buf = fz_xmalloc(n);
    if (n)
        memcpy(buf, data, n);
    resp_parser p;
    resp_parser_init(&p, lim.max_bulk, lim.max_inline);
    resp_status st;
    for (;;) {
        size_t before = p.pos;
        st = resp_parse(&p, buf, n);
        check_status(&p, st, n);
        if (st != RESP_OK)
            break;
        FZ_CHECK(p.pos > before); /* progress: no endless loop */
        tr_record_parser(t, &p, buf);
    }
    tr_finish(t, st, p.error);
    /* Final states are sticky: calling again changes nothing. */
    resp_status again = resp_parse(&p, buf, n);
    FZ_CHECK(again == st);
    if (st == RESP_ERROR)
        FZ_CHECK(strcmp(p.error, t->error) == 0);
    resp_parser_free(&p);
    free(buf);
}

/* xorshift64*: chunk sizes and compaction points. */
static inline uint64_t fz_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t fz_hash(const uint8_t *data, size_t n, uint64_t salt) {
    uint64_t h = 1469598103934665603ULL ^ salt;
    for (size_t i = 0; i < n; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    return h ? h : 1;
}

/* Replace *buf (holding len bytes) with an exact-size copy: a read past
 * len then hits ASan's redzone. */
static inline void exact_size(char **buf, size_t len) {
    char *nb = fz_xmalloc(len);
    if (len)
        memcpy(nb, *buf, len);
    free(*buf);
    *buf = nb;
}

/* Discard the first `drop` bytes (drop <= consumed) as client.c does. */
static inline void compact(resp_parser *p, char **buf, size_t *len, size_t drop) {
    FZ_CHECK(drop <= resp_parser_consumed(p));
    if (drop == 0)
        return;
    memmove(*buf, *buf + drop, *len - drop);
    *len -= drop;
    resp_parser_shift(p, drop);
    FZ_CHECK(p->cmd_start <= *len && p->pos <= *len);
    exact_size(buf, *len);
}

enum { CHUNK_BYTEWISE = 0, CHUNK_SMALL = 1, CHUNK_ANY = 2 };

/* The stream in reads of random sizes. Between reads the consumed prefix
 * is discarded (all of it, as client.c, or a random part of it); with
 * mid_batch, also between the commands of one batch. */
static inline void feed_chunked(const uint8_t *data, size_t n, fz_limits lim,
                         uint64_t seed, int chunking, int mid_batch,
                         transcript *t) {
    resp_parser p;
    resp_parser_init(&p, lim.max_bulk, lim.max_inline);
    char *buf = fz_xmalloc(0);
    size_t len = 0, off = 0;
    size_t owed = 0; /* bytes still to arrive before progress is possible */
    resp_status st = RESP_NEED_MORE;
    for (;;) {
        size_t k;
        if (chunking == CHUNK_BYTEWISE)
            k = 1;
        else if (chunking == CHUNK_SMALL)
            k = (size_t)(fz_rand(&seed) % 17); /* 0: a call with nothing new */
        else
            k = (size_t)(fz_rand(&seed) % (n + 1));
        /* Every read copies the pending bytes (exact size, for ASan): once
         * a long command is pending, reads grow with it so the copying
         * stays O(n log n) instead of O(n^2). */
        if (len > 256 && k < len / 16)
            k = len / 16;
        if (n > 16384 && k < n / 64)
            k = n / 64;
        if (k > n - off)
            k = n - off;
        buf = fz_xrealloc(buf, len + k);
        if (k)
            memcpy(buf + len, data + off, k);
        exact_size(&buf, len + k);
        len += k;
        off += k;
        owed = owed > k ? owed - k : 0;
        while ((st = resp_parse(&p, buf, len)) == RESP_OK) {
            check_status(&p, st, len);
            FZ_CHECK(owed == 0); /* p->need promised no progress before */
            tr_record_parser(t, &p, buf);
            if (mid_batch && (fz_rand(&seed) & 1))
                compact(&p, &buf, &len,
                        (size_t)(fz_rand(&seed) % (resp_parser_consumed(&p) + 1)));
        }
        check_status(&p, st, len);
        if (st == RESP_ERROR)
            break;
        owed = p.need;
        size_t consumed = resp_parser_consumed(&p);
        size_t drop = (fz_rand(&seed) & 3) ? consumed
                                           : (size_t)(fz_rand(&seed) % (consumed + 1));
        compact(&p, &buf, &len, drop);
        if (off == n) {
            /* Everything delivered: one more call must not change the
             * outcome after compaction. */
            st = resp_parse(&p, buf, len);
            check_status(&p, st, len);
            if (st == RESP_OK) {
                fprintf(stderr, "fuzz: a command appeared after compaction alone\n");
                abort();
            }
            break;
        }
    }
    tr_finish(t, st, p.error);
    resp_parser_free(&p);
    free(buf);
}

/* ---- reference model ------------------------------------------------------ */

static inline int ref_is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static inline int ref_is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline int ref_hex(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

/* sdssplitargs over line[0, n) with the end of the range standing in for
 * the NUL terminator (a NUL byte inside is an ordinary byte). Appends one
 * command to t when there are arguments. Returns 0 on unbalanced quotes
 * (t untouched), 1 otherwise. */
static inline int ref_split(const char *line, size_t n, transcript *t) {
    /* An argument is never longer than the line; collect into a scratch
     * transcript first so an error leaves t unchanged. */
    transcript tmp;
    tr_init(&tmp);
    char *cur = fz_xmalloc(n);
    size_t argc = 0, i = 0;
#define AT(j) ((j) < n ? line[(j)] : '\0')
#define HAS(j) ((j) < n)
    for (;;) {
        while (HAS(i) && ref_is_space(line[i]))
            i++;
        if (!HAS(i))
            break;
        int inq = 0, insq = 0, done = 0;
        size_t cl = 0;
        while (!done) {
            if (inq) {
                if (HAS(i) && line[i] == '\\' && AT(i + 1) == 'x' && HAS(i + 2) &&
                    ref_is_hex(AT(i + 2)) && HAS(i + 3) && ref_is_hex(AT(i + 3))) {
                    cur[cl++] = (char)(ref_hex(line[i + 2]) * 16 + ref_hex(line[i + 3]));
                    i += 3;
                } else if (HAS(i) && line[i] == '\\' && HAS(i + 1)) {
                    i++;
                    char c;
                    switch (line[i]) {
                    case 'n': c = '\n'; break;
                    case 'r': c = '\r'; break;
                    case 't': c = '\t'; break;
                    case 'b': c = '\b'; break;
                    case 'a': c = '\a'; break;
                    default: c = line[i]; break;
                    }
                    cur[cl++] = c;
                } else if (HAS(i) && line[i] == '"') {
                    if (HAS(i + 1) && !ref_is_space(line[i + 1]))
                        goto err;
                    done = 1;
                } else if (!HAS(i)) {
                    goto err;
                } else {
                    cur[cl++] = line[i];
                }
            } else if (insq) {
                if (HAS(i) && line[i] == '\\' && AT(i + 1) == '\'' && HAS(i + 1)) {
                    i++;
                    cur[cl++] = '\'';
                } else if (HAS(i) && line[i] == '\'') {
                    if (HAS(i + 1) && !ref_is_space(line[i + 1]))
                        goto err;
                    done = 1;
                } else if (!HAS(i)) {
                    goto err;
                } else {
                    cur[cl++] = line[i];
                }
            } else if (!HAS(i)) {
                done = 1;
            } else {
                switch (line[i]) {
                case ' ':
                case '\n':
                case '\r':
                case '\t':
                    done = 1;
                    break;
                case '"':
                    inq = 1;
                    break;
                case '\'':
                    insq = 1;
                    break;
                default:
                    cur[cl++] = line[i];
                    break;
                }
            }
            if (HAS(i))
                i++;
        }
        tr_put_arg(&tmp, cur, cl);
        argc++;
    }
#undef AT
#undef HAS
    if (argc > 0) {
        tr_begin_cmd(t, argc);
        tr_put(t, tmp.bytes, tmp.len);
        tr_end_cmd(t);
    }
    free(cur);
    tr_free(&tmp);
    return 1;
err:
    free(cur);
    tr_free(&tmp);
    return 0;
}

typedef enum { REF_FOUND, REF_PARTIAL, REF_TOO_BIG } ref_line;

/* Redis: the line terminator must be buffered (a header's '\r' also needs
 * the byte after it); without one, more than limit buffered bytes is an
 * error. */
static inline ref_line ref_find(const char *buf, size_t n, size_t from, char term,
                         size_t limit, int need_next, size_t *at) {
    const char *hit = memchr(buf + from, term, n - from);
    if (hit == NULL)
        return n - from > limit ? REF_TOO_BIG : REF_PARTIAL;
    *at = (size_t)(hit - buf);
    if (need_next && *at + 1 >= n)
        return REF_PARTIAL;
    return REF_FOUND;
}

static inline void ref_parse(const uint8_t *data, size_t n, fz_limits lim, transcript *t) {
    const char *buf = (const char *)data;
    size_t pos = 0;
    char errbuf[128];
    for (;;) {
        if (pos >= n) {
            tr_finish(t, RESP_NEED_MORE, NULL);
            return;
        }
        size_t at;
        if (buf[pos] != '*' && n - pos >= 5 && memcmp(buf + pos, "PIRB", 4) == 0 &&
            (unsigned char)buf[pos + 4] < 0x20 && buf[pos + 4] != '\r' && buf[pos + 4] != '\n') {
            /* pier's own rule: a batch protocol handshake on the RESP port */
            tr_finish(t, RESP_ERROR, "ERR Protocol error: pier batch protocol handshake on the "
                                     "RESP port; connect to the batch port (batch-port)");
            return;
        }
        if (buf[pos] != '*') {
            ref_line r = ref_find(buf, n, pos, '\n', lim.max_inline, 0, &at);
            if (r == REF_TOO_BIG) {
                tr_finish(t, RESP_ERROR, "ERR Protocol error: too big inline request");
                return;
            }
            if (r == REF_PARTIAL) {
                tr_finish(t, RESP_NEED_MORE, NULL);
                return;
            }
            size_t end = at;
            if (end > pos && buf[end - 1] == '\r')
                end--;
            if (!ref_split(buf + pos, end - pos, t)) {
                tr_finish(t, RESP_ERROR, "ERR Protocol error: unbalanced quotes in request");
                return;
            }
            pos = at + 1;
            continue;
        }
        ref_line r = ref_find(buf, n, pos, '\r', FZ_HEADER_MAX, 1, &at);
        if (r == REF_TOO_BIG) {
            tr_finish(t, RESP_ERROR, "ERR Protocol error: too big mbulk count string");
            return;
        }
        if (r == REF_PARTIAL) {
            tr_finish(t, RESP_NEED_MORE, NULL);
            return;
        }
        long long count;
        if (!util_parse_ll(buf + pos + 1, at - pos - 1, &count) || count > INT_MAX) {
            tr_finish(t, RESP_ERROR, "ERR Protocol error: invalid multibulk length");
            return;
        }
        size_t q = at + 2;
        if (count <= 0) {
            pos = q;
            continue;
        }
        transcript tmp;
        tr_init(&tmp);
        long long got = 0;
        while (got < count) {
            ref_line h = ref_find(buf, n, q, '\r', FZ_HEADER_MAX, 1, &at);
            if (h == REF_TOO_BIG) {
                tr_free(&tmp);
                tr_finish(t, RESP_ERROR, "ERR Protocol error: too big bulk count string");
                return;
            }
            if (h == REF_PARTIAL)
                break;
            if (buf[q] != '$') {
                snprintf(errbuf, sizeof(errbuf),
                         "ERR Protocol error: expected '$', got '%c'", buf[q]);
                tr_free(&tmp);
                tr_finish(t, RESP_ERROR, errbuf);
                return;
            }
            long long blen;
            if (!util_parse_ll(buf + q + 1, at - q - 1, &blen) || blen < 0 ||
                blen > lim.max_bulk) {
                tr_free(&tmp);
                tr_finish(t, RESP_ERROR, "ERR Protocol error: invalid bulk length");
                return;
            }
            size_t start = at + 2;
            if ((unsigned long long)(n - start) < (unsigned long long)blen + 2)
                break;
            tr_put_arg(&tmp, buf + start, (size_t)blen);
            q = start + (size_t)blen + 2;
            got++;
        }
        if (got < count) {
            tr_free(&tmp);
            tr_finish(t, RESP_NEED_MORE, NULL);
            return;
        }
        tr_begin_cmd(t, (size_t)count);
        tr_put(t, tmp.bytes, tmp.len);
        tr_end_cmd(t);
        tr_free(&tmp);
        pos = q;
    }
}

#endif
