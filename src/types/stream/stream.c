/* stream.c - entry storage of a stream: packed blocks, an index by base
 * ID, tombstones, compaction and trimming. See stream.h for the layout.
 *
 * Encoding of one entry inside a block (all integers LEB128 varints):
 *
 *   body_len | flags (1 byte) | ms - block.base.ms | seq | nfv | nfv x (len, bytes)
 *
 * body_len lets a scan skip an entry without decoding its fields. The ms
 * part is stored as a delta from the block's base so that the common case
 * (IDs generated close together) costs one or two bytes. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codec.h"
#include "lib/mem.h"

#define BLOCK_MIN_CAP 256
#define ENTRY_DELETED 1u
/* Compact a block once at least this share of its entries are
 * tombstones (and it has a few): keeps scans and memory proportional to
 * live data while not rewriting a block for every XDEL. */
#define COMPACT_MIN_COUNT 8

typedef struct sblock {
    stream_id base; /* ID of the first entry ever written here: seek key */
    stream_id last; /* ID of the last entry written here */
    size_t used, cap;
    uint32_t count, live; /* entries written / not deleted */
    unsigned char data[];
} sblock;

struct stream {
    sblock **blocks; /* sorted by base */
    size_t nblocks, bcap;
    uint64_t length, entries_added;
    stream_id last_id, max_deleted;
    size_t mem;
    stream_groups groups;
    /* batch publishers' last sequences, sorted by client id */
    struct stream_pub {
        uint64_t client_id, seq;
    } *pubs;
    size_t npubs, pubs_cap;
};

/* ---- IDs ---- */

int stream_id_cmp(stream_id a, stream_id b) {
    if (a.ms != b.ms) return a.ms < b.ms ? -1 : 1;
    if (a.seq != b.seq) return a.seq < b.seq ? -1 : 1;
    return 0;
}

int stream_id_incr(stream_id *id) {
    if (id->seq != UINT64_MAX) {
        id->seq++;
    } else if (id->ms != UINT64_MAX) {
        id->ms++;
        id->seq = 0;
    } else {
        return -1;
    }
    return 0;
}

int stream_id_decr(stream_id *id) {
    if (id->seq != 0) {
        id->seq--;
    } else if (id->ms != 0) {
        id->ms--;
        id->seq = UINT64_MAX;
    } else {
        return -1;
    }
    return 0;
}

size_t stream_id_format(stream_id id, char *buf) {
    int n = snprintf(buf, STREAM_ID_STRLEN, "%llu-%llu", (unsigned long long)id.ms,
                     (unsigned long long)id.seq);
    return n > 0 ? (size_t)n : 0;
}

/* ---- varints ---- */

/* Blocks are written only by this file, so the encoding is trusted:
 * codec_varint_get stops at the varint's last byte. */
static size_t get_varint(const unsigned char *p, uint64_t *v) {
    return codec_varint_get(p, CODEC_VARINT_MAX, v);
}

/* ---- entry decoding ---- */

typedef struct entry_view {
    stream_id id;
    size_t flags_off;     /* offset of the flags byte in the block */
    size_t next;          /* offset of the following entry */
    uint64_t nfv;
    const unsigned char *fields;
} entry_view;

static int entry_deleted(const sblock *b, const entry_view *e) {
    return b->data[e->flags_off] & ENTRY_DELETED;
}

static entry_view decode_entry(const sblock *b, size_t pos) {
    entry_view e;
    uint64_t body, dms;
    const unsigned char *p = b->data + pos;
    size_t n = get_varint(p, &body);
    e.flags_off = pos + n;
    e.next = e.flags_off + (size_t)body;
    p = b->data + e.flags_off + 1;
    p += get_varint(p, &dms);
    p += get_varint(p, &e.id.seq);
    e.id.ms = b->base.ms + dms;
    p += get_varint(p, &e.nfv);
    e.fields = p;
    return e;
}

/* ---- stream object ---- */

stream *stream_new(void) {
    stream *s = xcalloc(1, sizeof *s);
    s->mem = sizeof *s;
    return s;
}

void stream_free(stream *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nblocks; i++) free(s->blocks[i]);
    free(s->blocks);
    stream_groups_free(&s->groups);
    free(s->pubs);
    free(s);
}

size_t stream_mem(const stream *s) { return s->mem; }
uint64_t stream_length(const stream *s) { return s->length; }
stream_id stream_last_id(const stream *s) { return s->last_id; }
stream_id stream_max_deleted_id(const stream *s) { return s->max_deleted; }
uint64_t stream_entries_added(const stream *s) { return s->entries_added; }
size_t stream_block_count(const stream *s) { return s->nblocks; }
stream_groups *stream_groups_of(stream *s) { return &s->groups; }

void stream_mem_adjust(stream *s, long long delta) {
    s->mem = (size_t)((long long)s->mem + delta);
}

void stream_set_meta(stream *s, stream_id last, uint64_t entries_added,
                     stream_id max_deleted) {
    s->last_id = last;
    s->entries_added = entries_added;
    s->max_deleted = max_deleted;
}

/* ---- the block index ---- */

/* Index of the last block whose base is <= id; 0 when none is. */
static size_t block_for(const stream *s, stream_id id) {
    size_t lo = 0, hi = s->nblocks;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (stream_id_cmp(s->blocks[mid]->base, id) <= 0) lo = mid;
        else hi = mid;
    }
    return lo;
}

static sblock *block_new(stream *s, size_t need, stream_id base) {
    size_t cap = BLOCK_MIN_CAP;
    while (cap < need && cap < STREAM_BLOCK_BYTES) cap *= 2;
    if (cap < need) cap = need; /* one entry larger than a block */
    sblock *b = xmalloc(sizeof *b + cap);
    b->base = base;
    b->last = base;
    b->used = 0;
    b->cap = cap;
    b->count = b->live = 0;
    if (s->nblocks == s->bcap) {
        size_t ncap = s->bcap ? s->bcap * 2 : 4;
        s->blocks = xrealloc(s->blocks, ncap * sizeof *s->blocks);
        s->mem += (ncap - s->bcap) * sizeof *s->blocks;
        s->bcap = ncap;
    }
    s->blocks[s->nblocks++] = b;
    s->mem += sizeof *b + cap;
    return b;
}

static void block_remove(stream *s, size_t i) {
    sblock *b = s->blocks[i];
    s->length -= b->live;
    s->mem -= sizeof *b + b->cap;
    free(b);
    memmove(s->blocks + i, s->blocks + i + 1, (s->nblocks - i - 1) * sizeof *s->blocks);
    s->nblocks--;
}

/* Grow block i to hold `need` more bytes, doubling up to the block size.
 * Returns the (possibly moved) block, or NULL when it would pass the
 * block size (the caller starts a new block). */
static sblock *block_reserve(stream *s, size_t i, size_t need) {
    sblock *b = s->blocks[i];
    if (b->used + need <= b->cap) return b;
    if (b->used + need > STREAM_BLOCK_BYTES) return NULL;
    size_t cap = b->cap;
    while (cap < b->used + need) cap *= 2;
    if (cap > STREAM_BLOCK_BYTES) cap = STREAM_BLOCK_BYTES;
    b = xrealloc(b, sizeof *b + cap);
    s->mem += cap - b->cap;
    b->cap = cap;
    s->blocks[i] = b;
    return b;
}

/* Rewrite block i without its tombstones; free it when nothing is left. */
static void block_compact(stream *s, size_t i) {
    sblock *b = s->blocks[i];
    if (b->live == 0) {
        block_remove(s, i);
        return;
    }
    size_t w = 0;
    for (size_t pos = 0; pos < b->used;) {
        entry_view e = decode_entry(b, pos);
        size_t len = e.next - pos;
        if (!entry_deleted(b, &e)) {
            memmove(b->data + w, b->data + pos, len);
            w += len;
        }
        pos = e.next;
    }
    b->used = w;
    b->count = b->live;
    /* Give back what the tombstones held: the smallest power of two that
     * fits (the block may grow again by doubling). */
    if (b->cap > BLOCK_MIN_CAP && b->used < b->cap / 2) {
        size_t cap = BLOCK_MIN_CAP;
        while (cap < b->used) cap *= 2;
        b = xrealloc(b, sizeof *b + cap);
        s->mem -= b->cap - cap;
        b->cap = cap;
        s->blocks[i] = b;
    }
}

static void maybe_compact(stream *s, size_t i) {
    sblock *b = s->blocks[i];
    if (b->live == 0 || (b->count >= COMPACT_MIN_COUNT && b->live * 4 <= b->count))
        block_compact(s, i);
}

/* ---- append ---- */

static size_t entry_body_len(const sblock *b, stream_id id, const stream_str *fv, size_t nfv) {
    size_t n = 1 + codec_varint_len(id.ms - b->base.ms) + codec_varint_len(id.seq) +
               codec_varint_len(nfv);
    for (size_t i = 0; i < nfv; i++) n += codec_varint_len(fv[i].n) + fv[i].n;
    return n;
}

static void entry_write(sblock *b, stream_id id, const stream_str *fv, size_t nfv,
                        size_t body) {
    unsigned char *p = b->data + b->used;
    p += codec_varint_put(p, body);
    *p++ = 0;
    p += codec_varint_put(p, id.ms - b->base.ms);
    p += codec_varint_put(p, id.seq);
    p += codec_varint_put(p, nfv);
    for (size_t i = 0; i < nfv; i++) {
        p += codec_varint_put(p, fv[i].n);
        if (fv[i].n) memcpy(p, fv[i].p, fv[i].n);
        p += fv[i].n;
    }
    b->used = (size_t)(p - b->data);
    b->count++;
    b->live++;
    b->last = id;
}

void stream_append(stream *s, stream_id id, const stream_str *fv, size_t nfv) {
    sblock *b = NULL;
    size_t body = 0;
    if (s->nblocks) {
        b = s->blocks[s->nblocks - 1];
        body = entry_body_len(b, id, fv, nfv);
        b = block_reserve(s, s->nblocks - 1, codec_varint_len(body) + body);
    }
    if (!b) {
        stream_id base = id;
        sblock probe = {.base = base};
        body = entry_body_len(&probe, id, fv, nfv);
        b = block_new(s, codec_varint_len(body) + body, base);
    }
    entry_write(b, id, fv, nfv, body);
    s->length++;
    s->entries_added++;
    s->last_id = id;
}

void stream_append_batch(stream *s, stream_id first, const unsigned char *payload, size_t len,
                         uint32_t count) {
    static const char field[] = "data";
    stream_str fv[2] = {{field, sizeof field - 1}, {NULL, 0}};
    stream_id id = first;
    size_t pos = 0;
    for (uint32_t i = 0; i < count && len - pos >= 4; i++) {
        uint32_t n = codec_get_le32(payload + pos);
        pos += 4;
        fv[1] = (stream_str){(const char *)payload + pos, n};
        pos += n;
        /* stream_append reserves room in the tail block (doubling, so a
         * run of messages reallocates a block O(log) times) and copies
         * the header varints, the field name and the value: the value's
         * memcpy is the only copy of the message into the log. */
        stream_append(s, id, fv, 2);
        id.seq++;
    }
}

/* ---- exactly-once state of batch publishers ---- */

/* Index of client_id in s->pubs, or where it would go. */
static size_t pub_find(const stream *s, uint64_t client_id) {
    size_t lo = 0, hi = s->npubs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->pubs[mid].client_id < client_id) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

uint64_t stream_pub_seq(const stream *s, uint64_t client_id) {
    size_t i = pub_find(s, client_id);
    return i < s->npubs && s->pubs[i].client_id == client_id ? s->pubs[i].seq : 0;
}

void stream_pub_set(stream *s, uint64_t client_id, uint64_t seq) {
    size_t i = pub_find(s, client_id);
    if (i < s->npubs && s->pubs[i].client_id == client_id) {
        s->pubs[i].seq = seq;
        return;
    }
    if (s->npubs == s->pubs_cap) {
        size_t ncap = s->pubs_cap ? s->pubs_cap * 2 : 4;
        s->pubs = xrealloc(s->pubs, ncap * sizeof *s->pubs);
        s->mem += (ncap - s->pubs_cap) * sizeof *s->pubs;
        s->pubs_cap = ncap;
    }
    memmove(s->pubs + i + 1, s->pubs + i, (s->npubs - i) * sizeof *s->pubs);
    s->pubs[i].client_id = client_id;
    s->pubs[i].seq = seq;
    s->npubs++;
}

size_t stream_pub_count(const stream *s) { return s->npubs; }

void stream_pub_at(const stream *s, size_t i, uint64_t *client_id, uint64_t *seq) {
    *client_id = s->pubs[i].client_id;
    *seq = s->pubs[i].seq;
}

/* ---- lookup and delete ---- */

/* Find the entry with this ID (live or not) in its block. Returns 1 and
 * sets *bi and *e when it is there. */
static int find_entry(const stream *s, stream_id id, size_t *bi, entry_view *e) {
    if (!s->nblocks) return 0;
    size_t i = block_for(s, id);
    const sblock *b = s->blocks[i];
    if (stream_id_cmp(id, b->base) < 0 || stream_id_cmp(id, b->last) > 0) return 0;
    for (size_t pos = 0; pos < b->used;) {
        *e = decode_entry(b, pos);
        int cmp = stream_id_cmp(e->id, id);
        if (cmp == 0) {
            *bi = i;
            return 1;
        }
        if (cmp > 0) return 0;
        pos = e->next;
    }
    return 0;
}

int stream_has_entry(const stream *s, stream_id id) {
    size_t bi;
    entry_view e;
    return find_entry(s, id, &bi, &e) && !entry_deleted(s->blocks[bi], &e);
}

static void tombstone(stream *s, sblock *b, const entry_view *e) {
    b->data[e->flags_off] |= ENTRY_DELETED;
    b->live--;
    s->length--;
}

int stream_delete(stream *s, stream_id id) {
    size_t bi;
    entry_view e;
    if (!find_entry(s, id, &bi, &e) || entry_deleted(s->blocks[bi], &e)) return 0;
    tombstone(s, s->blocks[bi], &e);
    if (stream_id_cmp(id, s->max_deleted) > 0) s->max_deleted = id;
    maybe_compact(s, bi);
    return 1;
}

/* ---- trimming ---- */

/* May head block 0 (with `live` entries) go, given the removal cap? */
static int within_limit(uint64_t removed, uint64_t live, uint64_t limit) {
    return limit == 0 || removed + live <= limit;
}

/* Tombstone live entries of block 0 from its head while keep() says the
 * entry must go. */
typedef int trim_pred(const stream *s, stream_id id, const void *arg);

static uint64_t trim_head_entries(stream *s, trim_pred *must_go, const void *arg) {
    sblock *b = s->blocks[0];
    uint64_t removed = 0;
    for (size_t pos = 0; pos < b->used;) {
        entry_view e = decode_entry(b, pos);
        pos = e.next;
        if (entry_deleted(b, &e)) continue;
        if (!must_go(s, e.id, arg)) break;
        tombstone(s, b, &e);
        removed++;
    }
    maybe_compact(s, 0);
    return removed;
}

static int over_maxlen(const stream *s, stream_id id, const void *arg) {
    return s->length > *(const uint64_t *)arg;
}

static int below_minid(const stream *s, stream_id id, const void *arg) {
    return stream_id_cmp(id, *(const stream_id *)arg) < 0;
}

uint64_t stream_trim_maxlen(stream *s, uint64_t maxlen, int approx, uint64_t limit) {
    uint64_t removed = 0;
    while (s->length > maxlen && s->nblocks) {
        sblock *b = s->blocks[0];
        if (s->length - b->live >= maxlen) {
            if (approx && !within_limit(removed, b->live, limit)) break;
            removed += b->live;
            block_remove(s, 0);
            continue;
        }
        if (!approx) removed += trim_head_entries(s, over_maxlen, &maxlen);
        break;
    }
    return removed;
}

uint64_t stream_trim_minid(stream *s, stream_id minid, int approx, uint64_t limit) {
    uint64_t removed = 0;
    while (s->nblocks) {
        sblock *b = s->blocks[0];
        if (stream_id_cmp(b->last, minid) < 0) {
            if (approx && !within_limit(removed, b->live, limit)) break;
            removed += b->live;
            block_remove(s, 0);
            continue;
        }
        if (!approx) removed += trim_head_entries(s, below_minid, &minid);
        break;
    }
    return removed;
}

/* ---- iteration ---- */

void stream_iter_init(stream_iter *it, const stream *s, stream_id start, stream_id end,
                      int rev) {
    memset(it, 0, sizeof *it);
    it->s = s;
    it->start = start;
    it->end = end;
    it->rev = rev;
    if (!s->nblocks) return;
    it->block = block_for(s, rev ? end : start);
}

/* Collect the offsets of every entry of the current block (reverse
 * walks need them: entries are only linked forward). */
static void load_offsets(stream_iter *it) {
    const sblock *b = it->s->blocks[it->block];
    it->noffs = 0;
    for (size_t pos = 0; pos < b->used;) {
        if (it->noffs == it->offs_cap) {
            it->offs_cap = it->offs_cap ? it->offs_cap * 2 : 64;
            it->offs = xrealloc(it->offs, it->offs_cap * sizeof *it->offs);
        }
        it->offs[it->noffs++] = (uint32_t)pos;
        pos = decode_entry(b, pos).next;
    }
}

static int emit(stream_iter *it, const sblock *b, const entry_view *e, stream_id *id,
                size_t *nfv) {
    *id = e->id;
    *nfv = (size_t)e->nfv;
    it->fields = e->fields;
    it->fields_end = b->data + e->next;
    return 1;
}

static int iter_next_fwd(stream_iter *it, stream_id *id, size_t *nfv) {
    const stream *s = it->s;
    for (; it->block < s->nblocks; it->block++, it->pos = 0) {
        const sblock *b = s->blocks[it->block];
        while (it->pos < b->used) {
            entry_view e = decode_entry(b, it->pos);
            it->pos = e.next;
            if (entry_deleted(b, &e) || stream_id_cmp(e.id, it->start) < 0) continue;
            if (stream_id_cmp(e.id, it->end) > 0) {
                it->block = s->nblocks;
                return 0;
            }
            return emit(it, b, &e, id, nfv);
        }
    }
    return 0;
}

static int iter_next_rev(stream_iter *it, stream_id *id, size_t *nfv) {
    const stream *s = it->s;
    for (;;) {
        if (!it->started) {
            load_offsets(it);
            it->started = 1;
        }
        const sblock *b = s->blocks[it->block];
        while (it->noffs > 0) {
            entry_view e = decode_entry(b, it->offs[--it->noffs]);
            if (entry_deleted(b, &e) || stream_id_cmp(e.id, it->end) > 0) continue;
            if (stream_id_cmp(e.id, it->start) < 0) {
                it->block = s->nblocks; /* done */
                return 0;
            }
            return emit(it, b, &e, id, nfv);
        }
        if (it->block == 0) {
            it->block = s->nblocks;
            return 0;
        }
        it->block--;
        it->started = 0;
    }
}

int stream_iter_next(stream_iter *it, stream_id *id, size_t *nfv) {
    if (it->block >= it->s->nblocks) return 0;
    return it->rev ? iter_next_rev(it, id, nfv) : iter_next_fwd(it, id, nfv);
}

stream_str stream_iter_str(stream_iter *it) {
    uint64_t n;
    it->fields += get_varint(it->fields, &n);
    stream_str out = {(const char *)it->fields, (size_t)n};
    it->fields += n;
    return out;
}

void stream_iter_free(stream_iter *it) {
    free(it->offs);
    it->offs = NULL;
}

stream_id stream_first_id(const stream *s) {
    stream_iter it;
    stream_id id = STREAM_ID_ZERO;
    size_t nfv;
    stream_iter_init(&it, s, STREAM_ID_ZERO, STREAM_ID_MAX, 0);
    if (!stream_iter_next(&it, &id, &nfv)) id = STREAM_ID_ZERO;
    stream_iter_free(&it);
    return id;
}
