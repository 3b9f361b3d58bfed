/* stream_codec.c - a stream (entries, metadata, groups, consumers, PELs)
 * as bytes, for snapshots and AOF-rewrite base files.
 *
 * Encoding (every integer an unsigned LEB128 varint):
 *
 *   last.ms last.seq entries_added max_deleted.ms max_deleted.seq
 *   N                                  live entries, in ID order:
 *     ms seq nfv (len bytes) x nfv
 *   G                                  groups, in name order:
 *     len name last.ms last.seq entries_read+1 (0 = unknown)
 *     C                                consumers, in name order:
 *       len name seen_time
 *     P                                pending entries, in ID order:
 *       ms seq delivery_time delivery_count consumer_index
 *   optional sections, each a tag and its body (absent in files written
 *   before they existed, so older encodings still load):
 *     1 = batch publishers: N, then N x (client_id last_seq), ids ascending
 *
 * The writer never allocates (a forked child writes snapshots); the reader
 * checks every length and order against the input, so corrupt bytes give
 * NULL, never a broken stream. */
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "lib/codec.h"
#include "lib/mem.h"
#include "stream.h"

/* ---- writing ---- */

typedef struct enc {
    stream_sink_fn *sink; /* NULL: only count */
    void *arg;
    uint64_t bytes;
} enc;

static void put_bytes(enc *e, const void *p, size_t n) {
    e->bytes += n;
    if (e->sink && n) e->sink(e->arg, p, n);
}

static void put_var(enc *e, uint64_t v) {
    unsigned char b[CODEC_VARINT_MAX];
    put_bytes(e, b, codec_varint_put(b, v));
}

static void put_str(enc *e, const char *p, size_t n) {
    put_var(e, n);
    put_bytes(e, p, n);
}

static void put_id(enc *e, stream_id id) {
    put_var(e, id.ms);
    put_var(e, id.seq);
}

static void put_entries(enc *e, const stream *s) {
    stream_iter it;
    stream_id id;
    size_t nfv;
    put_var(e, stream_length(s));
    stream_iter_init(&it, s, STREAM_ID_ZERO, STREAM_ID_MAX, 0); /* forward: no allocation */
    while (stream_iter_next(&it, &id, &nfv)) {
        put_id(e, id);
        put_var(e, nfv);
        for (size_t i = 0; i < nfv; i++) {
            stream_str v = stream_iter_str(&it);
            put_str(e, v.p, v.n);
        }
    }
    stream_iter_free(&it);
}

static size_t consumer_index(const stream_group *g, const stream_consumer *c) {
    size_t lo = 0, hi = g->ncons;
    while (lo < hi) { /* consumers are sorted by name */
        size_t mid = lo + (hi - lo) / 2;
        const stream_consumer *m = g->cons[mid];
        size_t n = m->nlen < c->nlen ? m->nlen : c->nlen;
        int cmp = memcmp(m->name, c->name, n);
        if (!cmp) cmp = m->nlen < c->nlen ? -1 : m->nlen > c->nlen;
        if (cmp == 0) return mid;
        if (cmp < 0) lo = mid + 1;
        else hi = mid;
    }
    return 0; /* not reached: every owner is a consumer of its group */
}

static void put_group(enc *e, const stream_group *g) {
    put_str(e, g->name, g->nlen);
    put_id(e, g->last_id);
    put_var(e, (uint64_t)g->entries_read + 1); /* -1 (unknown) -> 0 */
    put_var(e, g->ncons);
    for (size_t i = 0; i < g->ncons; i++) {
        put_str(e, g->cons[i]->name, g->cons[i]->nlen);
        put_var(e, (uint64_t)g->cons[i]->seen_time);
    }
    put_var(e, g->pel.count);
    for (idmap_node *x = idmap_first(&g->pel); x; x = x->next[0]) {
        const stream_nack *nk = x->val;
        put_id(e, nk->id);
        put_var(e, (uint64_t)nk->delivery_time);
        put_var(e, nk->delivery_count);
        put_var(e, consumer_index(g, nk->owner));
    }
}

#define SECTION_PUBLISHERS 1

/* Written only when there are publishers: a stream never written by the
 * batch protocol encodes exactly as before the section existed. */
static void put_publishers(enc *e, const stream *s) {
    size_t n = stream_pub_count(s);
    if (!n) return;
    put_var(e, SECTION_PUBLISHERS);
    put_var(e, n);
    for (size_t i = 0; i < n; i++) {
        uint64_t id, seq;
        stream_pub_at(s, i, &id, &seq);
        put_var(e, id);
        put_var(e, seq);
    }
}

uint64_t stream_serialize(const stream *s, stream_sink_fn *sink, void *arg) {
    enc e = {sink, arg, 0};
    put_id(&e, stream_last_id(s));
    put_var(&e, stream_entries_added(s));
    put_id(&e, stream_max_deleted_id(s));
    put_entries(&e, s);
    put_var(&e, stream_group_count(s));
    for (size_t i = 0; i < stream_group_count(s); i++) put_group(&e, stream_group_at(s, i));
    put_publishers(&e, s);
    return e.bytes;
}

/* ---- reading ---- */

typedef struct dec {
    const unsigned char *p;
    size_t n, pos;
    int bad;
} dec;

/* A truncated or overlong varint marks the input bad and reads as 0. */
static uint64_t get_var(dec *d) {
    uint64_t v = 0;
    size_t used = codec_varint_get(d->p + d->pos, d->n - d->pos, &v);
    if (used == 0) {
        d->bad = 1;
        return 0;
    }
    d->pos += used;
    return v;
}

static stream_id get_id(dec *d) {
    stream_id id;
    id.ms = get_var(d);
    id.seq = get_var(d);
    return id;
}

static stream_str get_str(dec *d) {
    uint64_t n = get_var(d);
    if (d->bad || n > d->n - d->pos) {
        d->bad = 1;
        return (stream_str){"", 0};
    }
    stream_str s = {(const char *)d->p + d->pos, (size_t)n};
    d->pos += (size_t)n;
    return s;
}

/* Up to this many strings per entry are read without allocating. */
#define FV_BATCH 256

/* One entry after prev; returns its ID in *prev, -1 when corrupt. */
static int get_entry(dec *d, stream *s, stream_id *prev, stream_str *batch) {
    stream_id id = get_id(d);
    uint64_t nfv = get_var(d);
    /* every string takes at least its length byte: bounds the allocation */
    if (d->bad || stream_id_cmp(id, *prev) <= 0 || nfv == 0 || nfv % 2 || nfv > d->n - d->pos)
        return -1;
    stream_str *fv = nfv <= FV_BATCH ? batch : xmalloc((size_t)nfv * sizeof *fv);
    for (uint64_t k = 0; k < nfv; k++) fv[k] = get_str(d);
    if (!d->bad) stream_append(s, id, fv, (size_t)nfv);
    if (fv != batch) free(fv);
    *prev = id;
    return d->bad ? -1 : 0;
}

static int get_entries(dec *d, stream *s) {
    uint64_t n = get_var(d);
    stream_id prev = STREAM_ID_ZERO;
    stream_str batch[FV_BATCH];
    for (uint64_t i = 0; i < n; i++)
        if (d->bad || get_entry(d, s, &prev, batch) < 0) return -1;
    return d->bad ? -1 : 0;
}

static int get_consumers(dec *d, stream *s, stream_group *g, uint64_t *count) {
    *count = get_var(d);
    for (uint64_t i = 0; i < *count && !d->bad; i++) {
        stream_str name = get_str(d);
        int64_t seen = (int64_t)get_var(d);
        if (d->bad || !group_consumer_create(s, g, name.p, name.n, seen)) return -1;
        /* must arrive in name order for consumer indexes to match */
        if (g->cons[g->ncons - 1]->nlen != name.n ||
            memcmp(g->cons[g->ncons - 1]->name, name.p, name.n))
            return -1;
    }
    return d->bad ? -1 : 0;
}

static int get_pel(dec *d, stream *s, stream_group *g) {
    uint64_t n = get_var(d);
    for (uint64_t i = 0; i < n && !d->bad; i++) {
        stream_id id = get_id(d);
        int64_t when = (int64_t)get_var(d);
        uint64_t count = get_var(d), owner = get_var(d);
        if (d->bad || owner >= g->ncons || group_nack_find(g, id)) return -1;
        group_nack_add(s, g, g->cons[owner], id, when, count);
    }
    return d->bad ? -1 : 0;
}

static int get_group(dec *d, stream *s) {
    stream_str name = get_str(d);
    stream_id last = get_id(d);
    uint64_t read = get_var(d);
    if (d->bad) return -1;
    int64_t entries_read = (int64_t)(read - 1); /* the inverse of the writer's +1 */
    stream_group *g = stream_group_create(s, name.p, name.n, last, entries_read);
    if (!g) return -1;
    uint64_t ncons;
    if (get_consumers(d, s, g, &ncons) < 0) return -1;
    return get_pel(d, s, g);
}

static int get_publishers(dec *d, stream *s) {
    uint64_t n = get_var(d);
    if (d->bad || n > (d->n - d->pos) / 2) return -1; /* two bytes at least each */
    uint64_t prev = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t id = get_var(d), seq = get_var(d);
        if (d->bad || id <= prev) return -1; /* ascending, never 0 */
        stream_pub_set(s, id, seq);
        prev = id;
    }
    return 0;
}

static int get_sections(dec *d, stream *s) {
    while (!d->bad && d->pos < d->n) {
        uint64_t tag = get_var(d);
        if (d->bad || tag != SECTION_PUBLISHERS || stream_pub_count(s)) return -1;
        if (get_publishers(d, s) < 0) return -1;
    }
    return d->bad ? -1 : 0;
}

stream *stream_deserialize(const unsigned char *p, size_t n) {
    dec d = {p, n, 0, 0};
    stream *s = stream_new();
    stream_id last = get_id(&d);
    uint64_t added = get_var(&d);
    stream_id maxdel = get_id(&d);
    if (d.bad || get_entries(&d, s) < 0) goto corrupt;
    if (stream_length(s) && stream_id_cmp(last, stream_last_id(s)) < 0) goto corrupt;
    if (added < stream_length(s)) goto corrupt;
    stream_set_meta(s, last, added, maxdel);
    uint64_t groups = get_var(&d);
    for (uint64_t i = 0; i < groups && !d.bad; i++)
        if (get_group(&d, s) < 0) goto corrupt;
    if (d.bad || get_sections(&d, s) < 0 || d.pos != d.n) goto corrupt;
    return s;
corrupt:
    stream_free(s);
    return NULL;
}
