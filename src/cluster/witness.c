/* witness.c - see witness.h.
 *
 * Layout: one array of slots, set s at slots[s * ways ..], each slot a key
 * hash and a pointer to the record holding it (NULL: free). 16-byte slots,
 * so a 4-way set is one cache line and a lookup reads one line. Records
 * are also on a doubly linked list, oldest first, so stale and collect
 * visit each record once, not once per key, and in birth order.
 *
 * Invariant: no two live records share a key hash, and a record's key
 * hashes are distinct, so each key hash is in at most one slot: the set of
 * the key holds the whole answer to "who writes this key". */
#include "cluster/witness.h"

#include <stdlib.h>
#include <string.h>

typedef struct wrec {
    witness_rec pub; /* what callbacks see; pub.req points at bytes */
    uint64_t born;   /* the caller's gc round at acceptance */
    struct wrec *prev, *next;
    unsigned char bytes[];
} wrec;

typedef struct wslot {
    uint64_t key;
    wrec *rec;
} wslot;

struct witness {
    unsigned sets_log2, ways;
    wslot *slots;
    wrec *head, *tail; /* every live record, oldest first */
    size_t count;
    uint64_t min_term;
    witness_counters st;
};

witness *witness_create(unsigned sets_log2, unsigned ways) {
    if (sets_log2 > WITNESS_MAX_SETS_LOG2 || ways < 1 || ways > WITNESS_MAX_WAYS)
        return NULL;
    witness *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->sets_log2 = sets_log2;
    w->ways = ways;
    w->slots = calloc((size_t)ways << sets_log2, sizeof *w->slots);
    if (!w->slots) {
        free(w);
        return NULL;
    }
    return w;
}

void witness_destroy(witness *w) {
    if (!w) return;
    for (wrec *r = w->head, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    free(w->slots);
    free(w);
}

/* Fibonacci hashing: the top bits of the product depend on every bit of
 * the key, so the set is well spread even if a caller's "hashes" are
 * small integers or share their low bits. */
size_t witness_set_of(const witness *w, uint64_t key) {
    if (w->sets_log2 == 0) return 0;
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - w->sets_log2));
}

static wslot *set_of_key(const witness *w, uint64_t key) {
    return &w->slots[witness_set_of(w, key) * w->ways];
}

/* The record holding key, or NULL (at most one, by the invariant). */
static wrec *holder(const witness *w, uint64_t key) {
    const wslot *s = set_of_key(w, key);
    for (unsigned i = 0; i < w->ways; i++)
        if (s[i].rec && s[i].key == key) return s[i].rec;
    return NULL;
}

static unsigned free_ways(const witness *w, uint64_t key) {
    const wslot *s = set_of_key(w, key);
    unsigned n = 0;
    for (unsigned i = 0; i < w->ways; i++) n += s[i].rec == NULL;
    return n;
}

static int same_id(const wrec *r, uint64_t cid, uint64_t seq) {
    return r->pub.cid == cid && r->pub.seq == seq;
}

/* Copy keys without repeats into out; returns the count. A request that
 * names one key twice (MSET k a k b) writes one key: it needs one slot. */
static int dedup_keys(const uint64_t *keys, int nkeys, uint64_t *out) {
    int n = 0;
    for (int i = 0; i < nkeys; i++) {
        int seen = 0;
        for (int j = 0; j < n && !seen; j++) seen = out[j] == keys[i];
        if (!seen) out[n++] = keys[i];
    }
    return n;
}

/* Every key's set has a way for it, counting the request's own keys that
 * share a set: the i-th key of a set needs i free ways there. */
static int fits(const witness *w, const uint64_t *keys, int n) {
    for (int i = 0; i < n; i++) {
        size_t set = witness_set_of(w, keys[i]);
        unsigned need = 1;
        for (int j = 0; j < i; j++) need += witness_set_of(w, keys[j]) == set;
        if (free_ways(w, keys[i]) < need) return 0;
    }
    return 1;
}

/* ACCEPTED when (cid, seq) already holds one of the keys (a retry),
 * CONFLICT when another record holds one, else -1 (go on). */
static int check_holders(const witness *w, uint64_t cid, uint64_t seq,
                         const uint64_t *keys, int n) {
    int conflict = 0;
    for (int i = 0; i < n; i++) {
        const wrec *h = holder(w, keys[i]);
        if (h && same_id(h, cid, seq)) return WITNESS_ACCEPTED;
        if (h) conflict = 1;
    }
    return conflict ? WITNESS_CONFLICT : -1;
}

static void take_slot(witness *w, uint64_t key, wrec *r) {
    wslot *s = set_of_key(w, key);
    for (unsigned i = 0; i < w->ways; i++) {
        if (!s[i].rec) {
            s[i].key = key;
            s[i].rec = r;
            return;
        }
    }
}

static void list_append(witness *w, wrec *r) {
    r->prev = w->tail;
    r->next = NULL;
    if (w->tail) w->tail->next = r;
    else w->head = r;
    w->tail = r;
}

static void list_remove(witness *w, wrec *r) {
    if (r->prev) r->prev->next = r->next;
    else w->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else w->tail = r->prev;
}

/* Called only after every check passed: cannot fail but for memory. */
static int insert(witness *w, uint64_t term, uint64_t cid, uint64_t seq,
                  const uint64_t *keys, int n, const void *req, size_t req_len,
                  uint64_t now_round) {
    wrec *r = malloc(sizeof *r + req_len);
    if (!r) return 0;
    memset(&r->pub, 0, sizeof r->pub);
    r->pub.term = term;
    r->pub.cid = cid;
    r->pub.seq = seq;
    r->pub.nkeys = n;
    memcpy(r->pub.keys, keys, (size_t)n * sizeof *keys);
    if (req_len) memcpy(r->bytes, req, req_len);
    r->pub.req = r->bytes;
    r->pub.req_len = req_len;
    r->born = now_round;
    for (int i = 0; i < n; i++) take_slot(w, keys[i], r);
    list_append(w, r);
    w->count++;
    return 1;
}

/* Reject reasons that need no look at the table. */
static int check_request(witness *w, uint64_t term, int nkeys) {
    if (term < w->min_term) {
        w->st.old_term++;
        return WITNESS_OLD_TERM;
    }
    if (nkeys < 1 || nkeys > WITNESS_MAX_KEYS) {
        w->st.too_many++;
        return WITNESS_TOO_MANY_KEYS;
    }
    return WITNESS_ACCEPTED;
}

int witness_record(witness *w, uint64_t term, uint64_t cid, uint64_t seq,
                   const uint64_t *keys, int nkeys, const void *req,
                   size_t req_len, uint64_t now_round) {
    int rc = check_request(w, term, nkeys);
    if (rc != WITNESS_ACCEPTED) return rc;
    uint64_t uniq[WITNESS_MAX_KEYS];
    int n = dedup_keys(keys, nkeys, uniq);
    rc = check_holders(w, cid, seq, uniq, n);
    if (rc == WITNESS_ACCEPTED) {
        w->st.retried++;
        return rc;
    }
    if (rc == WITNESS_CONFLICT) {
        w->st.conflict++;
        return rc;
    }
    /* Out of memory rejects like a full set: the client's slow path is
     * always correct, so a witness never needs to fail harder. */
    if (!fits(w, uniq, n) ||
        !insert(w, term, cid, seq, uniq, n, req, req_len, now_round)) {
        w->st.full++;
        return WITNESS_FULL;
    }
    w->st.accepted++;
    return WITNESS_ACCEPTED;
}

/* Free every slot of r (one per key, by the invariant). */
static void clear_slots(witness *w, const wrec *r) {
    for (int k = 0; k < r->pub.nkeys; k++) {
        wslot *s = set_of_key(w, r->pub.keys[k]);
        for (unsigned i = 0; i < w->ways; i++) {
            if (s[i].rec == r) {
                s[i].rec = NULL;
                s[i].key = 0;
                break;
            }
        }
    }
}

static void drop(witness *w, wrec *r) {
    clear_slots(w, r);
    list_remove(w, r);
    w->count--;
    free(r);
}

int witness_gc(witness *w, uint64_t cid, uint64_t seq, const uint64_t *keys,
               int nkeys) {
    for (int i = 0; i < nkeys; i++) {
        wrec *r = holder(w, keys[i]);
        if (r && same_id(r, cid, seq)) {
            drop(w, r);
            w->st.gc++;
            return 1;
        }
    }
    return 0;
}

int witness_restore(witness *w, uint64_t term, uint64_t cid, uint64_t seq,
                    const uint64_t *keys, int nkeys, const void *req,
                    size_t req_len, uint64_t now_round) {
    if (nkeys < 1 || nkeys > WITNESS_MAX_KEYS) return WITNESS_TOO_MANY_KEYS;
    uint64_t uniq[WITNESS_MAX_KEYS];
    int n = dedup_keys(keys, nkeys, uniq);
    /* A holder of one of the keys was gone when this record was accepted
     * (the witness accepts no conflict): drop it. The same request again
     * (a retry) keeps its first record. */
    for (int i = 0; i < n; i++) {
        wrec *h = holder(w, uniq[i]);
        if (h && same_id(h, cid, seq)) return WITNESS_ACCEPTED;
        if (h) drop(w, h);
    }
    if (!fits(w, uniq, n) || !insert(w, term, cid, seq, uniq, n, req, req_len, now_round))
        return WITNESS_FULL;
    return WITNESS_ACCEPTED;
}

size_t witness_stale(witness *w, uint64_t before_round,
                     void (*fn)(void *arg, const witness_rec *r), void *arg) {
    size_t n = 0;
    /* next is read before fn, which may gc the record it is handed */
    for (wrec *r = w->head, *next; r; r = next) {
        next = r->next;
        if (r->born >= before_round) continue;
        n++;
        if (fn) fn(arg, &r->pub);
    }
    w->st.stale += n;
    return n;
}

size_t witness_collect(witness *w, uint64_t new_term,
                       void (*fn)(void *arg, const witness_rec *r), void *arg) {
    if (new_term > w->min_term) w->min_term = new_term;
    /* Empty the table before any callback, so the new leader may record
     * into this witness (with the new term) from inside fn. */
    wrec *list = w->head;
    for (wrec *r = list; r; r = r->next) clear_slots(w, r);
    w->head = w->tail = NULL;
    size_t n = w->count;
    w->count = 0;
    for (wrec *r = list, *next; r; r = next) {
        next = r->next;
        if (fn) fn(arg, &r->pub);
        free(r);
    }
    w->st.collected += n;
    return n;
}

size_t witness_freeze(witness *w, uint64_t new_term,
                      void (*fn)(void *arg, const witness_rec *r), void *arg) {
    if (new_term > w->min_term) w->min_term = new_term;
    size_t n = 0;
    for (wrec *r = w->head; r; r = r->next, n++)
        if (fn) fn(arg, &r->pub);
    w->st.collected += n;
    return n;
}

size_t witness_count(const witness *w) { return w->count; }

uint64_t witness_min_term(const witness *w) { return w->min_term; }

void witness_stats(const witness *w, witness_counters *st) { *st = w->st; }
