/* entry.c - encoding and decoding of replicated log entries (entry.h). */
#include "entry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/codec.h"
#include "../lib/hash.h"
#include "../lib/mem.h"
#include "../lib/util.h"

/* Room for "*<count>\r\n" patched in when the entry is finished. */
#define COUNT_ROOM 16
#define KEY_HASH_SEED 0x70696572636c7573ULL /* "pierclus": the same on every node */

static void reserve(entry_builder *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap * 2 : 512;
    while (cap < b->len + more) cap *= 2;
    char *p = xrealloc(b->p, cap);
    b->p = p;
    b->cap = cap;
}

/* "<c><n>\r\n" without printf: entries are built on every write. out
 * has room for 24 bytes. */
static size_t put_header(char *out, char c, uint64_t n) {
    out[0] = c;
    size_t len = 1 + util_ull2str(out + 1, 22, n);
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}

static void put_bulk(entry_builder *b, const void *p, size_t n) {
    reserve(b, n + 32);
    b->len += put_header(b->p + b->len, '$', n);
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
    b->nargs++;
}

static void put_u64(entry_builder *b, uint64_t v) {
    char num[24];
    put_bulk(b, num, util_ull2str(num, sizeof num, v));
}

void eb_init(entry_builder *b) { memset(b, 0, sizeof *b); }

void eb_free(entry_builder *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void eb_begin(entry_builder *b, uint64_t index, uint64_t term, uint64_t cid, uint64_t seq,
              const uint64_t *keys, size_t nkeys, const void *rep, size_t rep_len) {
    b->len = 0;
    b->nargs = 0;
    reserve(b, COUNT_ROOM);
    b->len = COUNT_ROOM; /* the array header is written backwards into this room */
    put_bulk(b, "PIER.ENTRY", 10);
    put_u64(b, index);
    put_u64(b, term);
    put_u64(b, cid);
    put_u64(b, seq);
    if (nkeys > ENTRY_MAX_KEYS) nkeys = 0;
    reserve(b, nkeys * 8 + 32);
    b->len += put_header(b->p + b->len, '$', nkeys * 8);
    for (size_t i = 0; i < nkeys; i++) {
        codec_put_le64((unsigned char *)b->p + b->len, keys[i]);
        b->len += 8;
    }
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
    b->nargs++;
    put_bulk(b, rep, rep_len);
}

void eb_record(entry_builder *b, cmd_arg name, int argc, const cmd_arg *argv) {
    put_u64(b, (uint64_t)argc);
    for (int i = 0; i < argc; i++) {
        const cmd_arg *a = (i == 0 && name.p) ? &name : &argv[i];
        put_bulk(b, a->p, a->n);
    }
}

void eb_append_records(entry_builder *dst, const entry_builder *src) {
    reserve(dst, src->len);
    if (src->len) memcpy(dst->p + dst->len, src->p, src->len);
    dst->len += src->len;
    dst->nargs += src->nargs;
}

void eb_clear(entry_builder *b) {
    b->len = 0;
    b->nargs = 0;
}

entry *eb_finish(entry_builder *b) {
    char hdr[COUNT_ROOM + 1];
    int h = snprintf(hdr, sizeof hdr, "*%u\r\n", b->nargs);
    size_t start = COUNT_ROOM - (size_t)h;
    memcpy(b->p + start, hdr, (size_t)h);
    size_t len = b->len - start;
    entry *e = xmalloc(sizeof *e + len);
    e->index = e->term = 0; /* the caller sets them (they are in the bytes too) */
    e->len = len;
    memcpy(e->data, b->p + start, len);
    /* index and term are the 2nd and 3rd elements: the caller passed them */
    return e;
}

/* ---- decoding ---- */

/* Parse "<c><digits>\r\n" at *pos. Returns the number, -1 when malformed,
 * -2 when the bytes end before the header does. */
static long long read_header(const char *buf, size_t len, size_t *pos, char c) {
    size_t i = *pos;
    if (i >= len) return -2;
    if (buf[i] != c) return -1;
    i++;
    long long v = 0;
    size_t digits = 0;
    while (i < len && buf[i] >= '0' && buf[i] <= '9') {
        if (++digits > 12) return -1;
        v = v * 10 + (buf[i] - '0');
        i++;
    }
    if (i + 2 > len) return digits > 12 ? -1 : -2;
    if (!digits || buf[i] != '\r' || buf[i + 1] != '\n') return -1;
    *pos = i + 2;
    return v;
}

long resp_array_span(const char *buf, size_t len, cmd_arg *first, int max_first, int *argc) {
    size_t pos = 0;
    long long n = read_header(buf, len, &pos, '*');
    if (n == -2) return 0;
    if (n < 1 || n > INT32_MAX) return -1;
    for (long long i = 0; i < n; i++) {
        long long bl = read_header(buf, len, &pos, '$');
        if (bl == -2) return 0;
        if (bl < 0) return -1;
        if ((size_t)bl + 2 > len - pos) return 0;
        if (buf[pos + (size_t)bl] != '\r' || buf[pos + (size_t)bl + 1] != '\n') return -1;
        if (i < max_first) first[i] = (cmd_arg){buf + pos, (size_t)bl};
        pos += (size_t)bl + 2;
    }
    *argc = (int)n;
    return (long)pos;
}

long resp_array_decode(const char *buf, size_t len, cmd_arg *argv, int max_args, int *argc) {
    size_t pos = 0;
    long long n = read_header(buf, len, &pos, '*');
    if (n == -2) return 0;
    if (n < 1 || n > max_args) return -1;
    return resp_array_span(buf, len, argv, max_args, argc);
}

void ev_view_init(entry_view *v) { memset(v, 0, sizeof *v); }

void ev_view_free(entry_view *v) {
    free(v->args);
    free(v->rec_at);
    free(v->rec_argc);
    memset(v, 0, sizeof *v);
}

static int parse_u64(const cmd_arg *a, uint64_t *out) {
    if (a->n == 0 || a->n > 20) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->p[i] < '0' || a->p[i] > '9') return -1;
        uint64_t d = (uint64_t)(a->p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Count the array elements so the argument array can be sized once. */
static long long element_count(const char *data, size_t len) {
    size_t pos = 0;
    long long n = read_header(data, len, &pos, '*');
    return n < 0 ? -1 : n;
}

static int fail(char *err, size_t errlen, const char *why) {
    snprintf(err, errlen, "%s", why);
    return -1;
}

int entry_decode(const char *data, size_t len, entry_view *v, char *err, size_t errlen) {
    long long n = element_count(data, len);
    if (n < 7 || n > (long long)(len / 4 + 1)) return fail(err, errlen, "bad entry element count");
    if ((size_t)n > v->args_cap) {
        free(v->args);
        v->args = xmalloc((size_t)n * sizeof *v->args);
        v->args_cap = (size_t)n;
    }
    int argc = 0;
    long used = resp_array_decode(data, len, v->args, (int)n, &argc);
    if (used <= 0 || (size_t)used != len) return fail(err, errlen, "malformed entry encoding");
    cmd_arg *a = v->args;
    if (a[0].n != 10 || memcmp(a[0].p, "PIER.ENTRY", 10) != 0)
        return fail(err, errlen, "not a PIER.ENTRY record");
    if (parse_u64(&a[1], &v->index) || parse_u64(&a[2], &v->term) || parse_u64(&a[3], &v->cid) ||
        parse_u64(&a[4], &v->seq))
        return fail(err, errlen, "bad entry number");
    if (a[5].n % 8) return fail(err, errlen, "bad entry key hashes");
    v->nkeys = a[5].n / 8;
    v->keys = (const unsigned char *)a[5].p;
    v->reply = a[6].p;
    v->reply_len = a[6].n;
    v->nrec = 0;
    for (int i = 7; i < argc;) {
        uint64_t rc;
        if (parse_u64(&a[i], &rc) || rc < 1 || rc > (uint64_t)(argc - i - 1))
            return fail(err, errlen, "bad entry record count");
        if ((size_t)v->nrec >= v->rec_cap) {
            v->rec_cap = v->rec_cap ? v->rec_cap * 2 : 8;
            v->rec_at = xrealloc(v->rec_at, v->rec_cap * sizeof *v->rec_at);
            v->rec_argc = xrealloc(v->rec_argc, v->rec_cap * sizeof *v->rec_argc);
        }
        v->rec_at[v->nrec] = i + 1;
        v->rec_argc[v->nrec] = (int)rc;
        v->nrec++;
        i += 1 + (int)rc;
    }
    return 0;
}

uint64_t entry_key_at(const entry_view *v, size_t i) {
    return codec_get_le64(v->keys + i * 8);
}

uint64_t entry_key_hash(const char *key, size_t n) { return hash_bytes(key, n, KEY_HASH_SEED); }

char *resp_array_encode(int argc, const cmd_arg *argv, size_t *len) {
    entry_builder b;
    eb_init(&b);
    reserve(&b, 16);
    b.len = (size_t)sprintf(b.p, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) put_bulk(&b, argv[i].p, argv[i].n);
    *len = b.len;
    return b.p; /* the builder's buffer becomes the caller's */
}

entry *entry_new(uint64_t index, uint64_t term, const void *data, size_t len) {
    entry *e = xmalloc(sizeof *e + len);
    e->index = index;
    e->term = term;
    e->len = len;
    if (len) memcpy(e->data, data, len);
    return e;
}

entry *entry_from_argv(uint64_t index, uint64_t term, int argc, const cmd_arg *argv) {
    size_t len;
    char *data = resp_array_encode(argc, argv, &len);
    entry *e = entry_new(index, term, data, len);
    free(data);
    return e;
}
