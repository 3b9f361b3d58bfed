/* rifl.c - see rifl.h.
 *
 * Clients live in a chained hash table keyed by a keyed hash of the client
 * id (ids come from the network: a fixed hash would let a client flood
 * one chain). The table doubles at load factor 1 and halves below 1/8,
 * rehashing at once: it holds one entry per live client, so a resize
 * moves few pointers compared with the rings they point at.
 *
 * Each client is one allocation: its header and a ring of `window` slots,
 * slot seq % window holding the seq it last recorded and that result.
 * Results up to RIFL_INLINE bytes (+OK, :1, a short bulk) sit in the slot;
 * longer ones get their own allocation, owned by the slot. */
#include "cluster/rifl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"
#include "lib/mem.h"

#define RIFL_INLINE 16
#define RIFL_MIN_BUCKETS 16

typedef struct rslot {
    uint64_t seq; /* whose result this is; 0: never recorded */
    size_t len;
    union {
        unsigned char *heap; /* len > RIFL_INLINE */
        unsigned char inl[RIFL_INLINE];
    } u;
} rslot;

typedef struct rclient {
    struct rclient *next; /* hash chain */
    uint64_t cid;
    uint64_t highest; /* highest seq recorded */
    int64_t last_ms;  /* time of the last rifl_record */
    rslot ring[];
} rclient;

struct rifl {
    unsigned window;
    uint64_t seed;
    rclient **buckets;
    size_t nbuckets; /* a power of two */
    size_t nclients;
    size_t bytes;
};

static size_t client_size(const rifl *r) {
    return sizeof(rclient) + (size_t)r->window * sizeof(rslot);
}

rifl *rifl_create(unsigned window) {
    if (window < 1 || window > RIFL_MAX_WINDOW) return NULL;
    rifl *r = xcalloc(1, sizeof *r);
    r->window = window;
    r->seed = hash_random_seed();
    r->nbuckets = RIFL_MIN_BUCKETS;
    r->buckets = xcalloc(r->nbuckets, sizeof *r->buckets);
    r->bytes = sizeof *r + r->nbuckets * sizeof *r->buckets;
    return r;
}

static size_t bucket_of(const rifl *r, uint64_t cid, size_t nbuckets) {
    return (size_t)hash_bytes(&cid, sizeof cid, r->seed) & (nbuckets - 1);
}

static void client_free(rifl *r, rclient *c) {
    for (unsigned i = 0; i < r->window; i++) {
        if (c->ring[i].len > RIFL_INLINE) {
            r->bytes -= c->ring[i].len;
            free(c->ring[i].u.heap);
        }
    }
    r->bytes -= client_size(r);
    free(c);
}

void rifl_destroy(rifl *r) {
    if (!r) return;
    for (size_t b = 0; b < r->nbuckets; b++) {
        for (rclient *c = r->buckets[b], *next; c; c = next) {
            next = c->next;
            client_free(r, c);
        }
    }
    free(r->buckets);
    free(r);
}

static void resize(rifl *r, size_t nbuckets) {
    rclient **nb = xcalloc(nbuckets, sizeof *nb);
    for (size_t b = 0; b < r->nbuckets; b++) {
        for (rclient *c = r->buckets[b], *next; c; c = next) {
            next = c->next;
            size_t i = bucket_of(r, c->cid, nbuckets);
            c->next = nb[i];
            nb[i] = c;
        }
    }
    r->bytes = r->bytes - r->nbuckets * sizeof *nb + nbuckets * sizeof *nb;
    free(r->buckets);
    r->buckets = nb;
    r->nbuckets = nbuckets;
}

static rclient *find(const rifl *r, uint64_t cid) {
    for (rclient *c = r->buckets[bucket_of(r, cid, r->nbuckets)]; c; c = c->next)
        if (c->cid == cid) return c;
    return NULL;
}

static rclient *client_new(rifl *r, uint64_t cid) {
    if (r->nclients + 1 > r->nbuckets) resize(r, r->nbuckets * 2);
    rclient *c = xcalloc(1, client_size(r));
    c->cid = cid;
    size_t b = bucket_of(r, cid, r->nbuckets);
    c->next = r->buckets[b];
    r->buckets[b] = c;
    r->nclients++;
    r->bytes += client_size(r);
    return c;
}

/* seq has left the ring: at or below highest - window (no underflow). */
static int is_stale(const rifl *r, const rclient *c, uint64_t seq) {
    return c->highest >= r->window && seq <= c->highest - r->window;
}

static rslot *slot_of(const rifl *r, rclient *c, uint64_t seq) {
    return &c->ring[seq % r->window];
}

static const void *slot_data(const rslot *s) {
    return s->len > RIFL_INLINE ? (const void *)s->u.heap : (const void *)s->u.inl;
}

int rifl_check(rifl *r, uint64_t cid, uint64_t seq, const void **res,
               size_t *len) {
    if (res) *res = NULL;
    if (len) *len = 0;
    rclient *c = cid && seq ? find(r, cid) : NULL;
    if (!c) return RIFL_NEW;
    if (is_stale(r, c, seq)) return RIFL_STALE;
    /* Inside the window a slot holds its own seq or an older one with the
     * same residue (a newer one would be above highest). */
    const rslot *s = slot_of(r, c, seq);
    if (s->seq != seq) return RIFL_NEW;
    if (res) *res = slot_data(s);
    if (len) *len = s->len;
    return RIFL_DONE;
}

/* Replace whatever result s held (a seq a whole window older) by this. */
static void slot_store(rifl *r, rslot *s, uint64_t seq, const void *res,
                       size_t len) {
    if (s->len > RIFL_INLINE) {
        r->bytes -= s->len;
        free(s->u.heap);
    }
    s->seq = seq;
    s->len = len;
    unsigned char *dst = s->u.inl;
    if (len > RIFL_INLINE) {
        dst = s->u.heap = xcalloc(1, len);
        r->bytes += len;
    }
    if (len) memcpy(dst, res, len);
}

void rifl_record(rifl *r, uint64_t cid, uint64_t seq, const void *res,
                 size_t len, int64_t now_ms) {
    if (!cid || !seq) return;
    rclient *c = find(r, cid);
    if (!c) c = client_new(r, cid);
    c->last_ms = now_ms;
    if (is_stale(r, c, seq)) return;
    rslot *s = slot_of(r, c, seq);
    if (s->seq == seq) return;
    slot_store(r, s, seq, res, len);
    if (seq > c->highest) c->highest = seq;
}

size_t rifl_expire(rifl *r, int64_t now_ms, int64_t idle_ms) {
    size_t dropped = 0;
    for (size_t b = 0; b < r->nbuckets; b++) {
        rclient **pp = &r->buckets[b];
        while (*pp) {
            rclient *c = *pp;
            if (now_ms - c->last_ms >= idle_ms) {
                *pp = c->next;
                client_free(r, c);
                dropped++;
            } else {
                pp = &c->next;
            }
        }
    }
    r->nclients -= dropped;
    size_t nb = r->nbuckets;
    while (nb > RIFL_MIN_BUCKETS && r->nclients * 8 < nb) nb /= 2;
    if (nb != r->nbuckets) resize(r, nb);
    return dropped;
}

size_t rifl_clients(const rifl *r) { return r->nclients; }

size_t rifl_bytes(const rifl *r) { return r->bytes; }
