/* keyspace.c - the sharded key space (contract in keyspace.h).
 *
 * Layout decisions:
 *  - An entry is one allocation: 24-byte header, key bytes, then either the
 *    string value bytes or, for objects, an object slot holding the object
 *    pointer and the number of object bytes currently counted in the shard's
 *    memory counter (so removal subtracts exactly what was added even if the
 *    object grew meanwhile). Both slot fields are accessed with memcpy: the
 *    slot sits right after the key and is not aligned.
 *  - Each shard keeps an array of {entry, expiry} for its volatile keys and
 *    the entry stores its index there (vol_idx), so TTL lookup, update and
 *    removal are O(1) and active expiry samples only keys that can expire.
 *  - Memory is counted with malloc_usable_size so INFO matches what the
 *    allocator really holds, including string slack. One keyspace-wide
 *    atomic total (on its own cache line), not per-shard counters: the
 *    maxmemory check reads it before every write command, and summing 256
 *    shard counters there would cost more than the shared RMW does.
 *  - The 24 access bits of kv.meta hold, per the eviction policy, either
 *    an LRU clock (seconds) or, for LFU, 16 bits of minutes (last decay)
 *    and an 8-bit logarithmic access counter.
 *  - Shards are cache-line aligned so that threads working on different
 *    shards do not false-share mutexes and counters. */
#include "store/keyspace.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/hash.h"
#include "lib/mem.h"
#include "store/table.h"

#define KV_HEADER_BYTES offsetof(kv, data)
#define OBJ_SLOT_BYTES (sizeof(void *) + sizeof(size_t))
#define LRU_CLOCK_MASK 0xFFFFFFu
#define LFU_INIT_VAL 5          /* a new key's counter: not evicted at once */
#define LFU_COUNTER_MAX 255u
#define LFU_MINUTES_MASK 0xFFFFu
#define EVICT_SHARD_TRIES 64    /* random shard picks before a linear search */
#define EXPIRE_SAMPLE 20
#define RANDOM_KEY_TRIES 16
#define SCAN_EMPTY_FACTOR 10 /* bucket steps allowed per requested entry */
#define UPKEEP_REHASH_STEPS 64 /* per shard per ks_active_expire call */
#define VOL_MIN_CAP 8u
#define VOL_MAX_CAP (UINT32_C(1) << 31)

typedef struct vol_slot {
    kv *e;
    int64_t at_ms;
} vol_slot;

typedef struct shard {
    _Alignas(64) pthread_mutex_t lock;
    table t;
    vol_slot *vol;
    uint32_t vol_n, vol_cap;
    _Atomic size_t *mem;   /* the keyspace total (entries, buckets, vol, objects) */
    _Atomic size_t count;  /* mirrors table_count(&t) for lock-free reads */
    _Atomic size_t vcount; /* mirrors vol_n */
    _Atomic int upkeep;    /* mirrors table_needs_maintenance(&t) */
} shard;

struct keyspace {
    uint64_t seed;
    kv_type_ops ops[KV_NTYPES];
    ks_expire_hook *expire_hook;
    void *expire_arg;
    _Atomic uint64_t expired;
    _Atomic uint64_t evicted;
    _Atomic int lfu;              /* access bits hold LFU data, not LRU */
    /* Replica expiry (cluster followers): an expired key reads as absent
     * but stays until the leader's DEL arrives, because deleting it here
     * could diverge from the leader (a PERSIST it ran in time). */
    _Atomic int keep_expired;
    _Atomic int lfu_log_factor;
    _Atomic int lfu_decay_time;   /* minutes per counter decrement; 0 = none */
    _Alignas(64) _Atomic size_t mem;
    shard shards[KS_SHARDS];
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static void die(const char *msg) {
    fputs(msg, stderr);
    fputc('\n', stderr);
    abort();
}

/* memcpy that tolerates (NULL, 0): callers may pass empty keys/values with
 * a NULL pointer, and memcpy's arguments must be valid even for n == 0. */
static inline void copy_bytes(void *dst, const void *src, size_t n) {
    if (n) memcpy(dst, src, n);
}

static inline uint64_t key_hash(const keyspace *ks, const char *key,
                                size_t klen) {
    return hash_bytes(key, klen, ks->seed);
}

static inline unsigned shard_index(uint64_t h) {
    return (unsigned)(h >> (64 - KS_SHARD_BITS));
}

static inline shard *shard_for(keyspace *ks, uint64_t h) {
    return &ks->shards[shard_index(h)];
}

static inline shard *shard_of_entry(keyspace *ks, const kv *e) {
    return shard_for(ks, key_hash(ks, e->data, e->klen));
}

static inline void mem_add(shard *s, size_t n) {
    atomic_fetch_add_explicit(s->mem, n, memory_order_relaxed);
}

static inline void mem_sub(shard *s, size_t n) {
    atomic_fetch_sub_explicit(s->mem, n, memory_order_relaxed);
}

/* Publish the table's state for lock-free readers; called after every
 * insert/unlink. (A find may finish a rehash without calling this: upkeep
 * can be stale-true, which costs one needless lock, never stale-false
 * since only insert/unlink start a resize.) */
static inline void sync_count(shard *s) {
    atomic_store_explicit(&s->count, table_count(&s->t), memory_order_relaxed);
    atomic_store_explicit(&s->upkeep, table_needs_maintenance(&s->t),
                          memory_order_relaxed);
}

static inline uint32_t lru_clock(int64_t now_ms) {
    /* Unsigned division: a negative clock (never in practice) stays defined. */
    return (uint32_t)(((uint64_t)now_ms / 1000u) & LRU_CLOCK_MASK);
}

/* Per-thread PRNG for sampling (random key, active expiry, LFU); seeded
 * lazily from the clock and the thread's own address so threads differ. */
static uint64_t *thread_rng(void) {
    static _Thread_local uint64_t state;
    static _Thread_local int seeded;
    if (!seeded) {
        state = (uint64_t)clock_mono_us() ^ ((uint64_t)(uintptr_t)&state << 16);
        seeded = 1;
    }
    return &state;
}

static inline uint32_t lfu_minutes(int64_t now_ms) {
    return (uint32_t)(((uint64_t)now_ms / 60000u) & LFU_MINUTES_MASK);
}

/* The LFU counter after decay: one step per lfu-decay-time minutes since
 * the last access (so a key hot long ago loses its place). */
static uint32_t lfu_decayed(const keyspace *ks, uint32_t meta, int64_t now_ms) {
    uint32_t counter = meta & 0xFFu;
    uint32_t last = (meta >> 8) & LFU_MINUTES_MASK;
    uint32_t elapsed = (lfu_minutes(now_ms) - last) & LFU_MINUTES_MASK;
    int decay = atomic_load_explicit(&ks->lfu_decay_time, memory_order_relaxed);
    if (decay <= 0) return counter;
    uint32_t periods = elapsed / (uint32_t)decay;
    return periods >= counter ? 0 : counter - periods;
}

/* Logarithmic increment: the more hits a key has, the less likely one more
 * counts (probability 1 / ((counter - init) * log_factor + 1)), so 8 bits
 * cover millions of accesses. */
static uint32_t lfu_increment(const keyspace *ks, uint32_t counter) {
    if (counter >= LFU_COUNTER_MAX) return LFU_COUNTER_MAX;
    int factor = atomic_load_explicit(&ks->lfu_log_factor, memory_order_relaxed);
    double base = counter > LFU_INIT_VAL ? (double)(counter - LFU_INIT_VAL) : 0.0;
    double r = (double)(store_rng_next(thread_rng()) >> 11) * 0x1p-53;
    return r < 1.0 / (base * factor + 1.0) ? counter + 1 : counter;
}

static inline uint32_t lfu_bits(uint32_t counter, int64_t now_ms) {
    return (lfu_minutes(now_ms) << 8) | counter;
}

static inline int lfu_mode(const keyspace *ks) {
    return atomic_load_explicit(&ks->lfu, memory_order_relaxed);
}

static inline uint32_t make_meta(const keyspace *ks, int type, int64_t now_ms) {
    uint32_t access = lfu_mode(ks) ? lfu_bits(LFU_INIT_VAL, now_ms) : lru_clock(now_ms);
    return ((uint32_t)type << 24) | access;
}

/* Record an access: LRU clock, or LFU decay + increment. Skip the store
 * when unchanged so read-mostly keys do not dirty their cache line on
 * every GET. */
static inline void touch(const keyspace *ks, kv *e, int64_t now_ms) {
    uint32_t access = lfu_mode(ks)
                          ? lfu_bits(lfu_increment(ks, lfu_decayed(ks, e->meta, now_ms)), now_ms)
                          : lru_clock(now_ms);
    uint32_t meta = (e->meta & ~LRU_CLOCK_MASK) | access;
    if (meta != e->meta) e->meta = meta;
}

/* ------------------------------------------------------------------ */
/* entries                                                             */

void *kv_object(const kv *e) {
    void *obj;
    memcpy(&obj, e->data + e->klen, sizeof obj);
    return obj;
}

static void obj_store(kv *e, void *obj) {
    memcpy(e->data + e->klen, &obj, sizeof obj);
}

static size_t obj_accounted(const kv *e) {
    size_t n;
    memcpy(&n, e->data + e->klen + sizeof(void *), sizeof n);
    return n;
}

static void obj_set_accounted(kv *e, size_t n) {
    memcpy(e->data + e->klen + sizeof(void *), &n, sizeof n);
}

/* Bytes after the key that belong to the value (string bytes or slot). */
static size_t value_bytes(const kv *e) {
    return kv_type(e) == KV_STRING ? e->vlen : OBJ_SLOT_BYTES;
}

static size_t object_mem(const keyspace *ks, int type, const void *obj) {
    const kv_type_ops *ops = &ks->ops[type];
    return ops->mem_obj && obj ? ops->mem_obj(obj) : 0;
}

/* Allocate an entry with room for vbytes value bytes; key copied, value
 * uninitialised, not linked anywhere. */
static kv *entry_alloc(const keyspace *ks, const char *key, size_t klen, size_t vbytes,
                       int type, int64_t now_ms) {
    if (klen > KS_MAX_LEN) die("pier: key too long");
    kv *e = xmalloc(KV_HEADER_BYTES + klen + vbytes);
    e->next = NULL;
    e->meta = make_meta(ks, type, now_ms);
    e->vol_idx = KV_NO_VOLATILE;
    e->klen = (uint32_t)klen;
    e->vlen = 0;
    copy_bytes(e->data, key, klen);
    return e;
}

static kv *string_entry_new(const keyspace *ks, const char *key, size_t klen,
                            const void *val, size_t vlen, int64_t now_ms) {
    if (vlen > KS_MAX_LEN) die("pier: value too long");
    kv *e = entry_alloc(ks, key, klen, vlen, KV_STRING, now_ms);
    e->vlen = (uint32_t)vlen;
    copy_bytes(kv_sval(e), val, vlen);
    return e;
}

static kv *object_entry_new(const keyspace *ks, const char *key, size_t klen, int type,
                            void *obj, size_t accounted, int64_t now_ms) {
    kv *e = entry_alloc(ks, key, klen, OBJ_SLOT_BYTES, type, now_ms);
    e->vlen = sizeof(void *);
    obj_store(e, obj);
    obj_set_accounted(e, accounted);
    return e;
}

/* Drop the entry's value: free an object through its type ops and take its
 * bytes off the shard counter. Strings live inside the entry: nothing. */
static void release_value(keyspace *ks, shard *s, kv *e) {
    if (kv_type(e) == KV_STRING) return;
    mem_sub(s, obj_accounted(e));
    void *obj = kv_object(e);
    const kv_type_ops *ops = &ks->ops[kv_type(e)];
    if (obj && ops->free_obj) ops->free_obj(obj);
}

/* Free an entry that is no longer linked in the table or volatile array. */
static void free_entry(keyspace *ks, shard *s, kv *e) {
    release_value(ks, s, e);
    mem_sub(s, malloc_usable_size(e));
    free(e);
}

/* ------------------------------------------------------------------ */
/* volatile index                                                      */

static void vol_resize(shard *s, uint32_t cap) {
    size_t old_bytes = s->vol ? malloc_usable_size(s->vol) : 0;
    if (cap == 0) {
        free(s->vol);
        s->vol = NULL;
    } else {
        s->vol = xrealloc(s->vol, (size_t)cap * sizeof(vol_slot));
    }
    s->vol_cap = cap;
    mem_add(s, s->vol ? malloc_usable_size(s->vol) : 0);
    mem_sub(s, old_bytes);
}

static void vol_add(shard *s, kv *e, int64_t at_ms) {
    if (s->vol_n == s->vol_cap) {
        if (s->vol_cap >= VOL_MAX_CAP) die("pier: too many volatile keys");
        vol_resize(s, s->vol_cap ? s->vol_cap * 2 : VOL_MIN_CAP);
    }
    e->vol_idx = s->vol_n;
    s->vol[s->vol_n].e = e;
    s->vol[s->vol_n].at_ms = at_ms;
    s->vol_n++;
    atomic_store_explicit(&s->vcount, s->vol_n, memory_order_relaxed);
}

/* O(1) removal: the last slot moves into the hole and its entry's back
 * index is fixed. Shrinks the array when it became mostly empty. */
static void vol_remove(shard *s, kv *e) {
    uint32_t i = e->vol_idx;
    vol_slot last = s->vol[--s->vol_n];
    s->vol[i] = last;
    last.e->vol_idx = i;
    e->vol_idx = KV_NO_VOLATILE; /* after the line above: last.e may be e */
    if (s->vol_cap > 4 * VOL_MIN_CAP && s->vol_n < s->vol_cap / 4)
        vol_resize(s, s->vol_cap / 2);
    atomic_store_explicit(&s->vcount, s->vol_n, memory_order_relaxed);
}

static inline int is_expired(const shard *s, const kv *e, int64_t now_ms) {
    /* Redis semantics: a key expiring at T is still alive at T. */
    return e->vol_idx != KV_NO_VOLATILE && s->vol[e->vol_idx].at_ms < now_ms;
}

/* ------------------------------------------------------------------ */
/* removal and replacement                                             */

/* Unlink and free the entry *link points to (found in table `which`). */
static void remove_at(keyspace *ks, shard *s, kv **link, int which) {
    kv *e = *link;
    if (e->vol_idx != KV_NO_VOLATILE) vol_remove(s, e);
    table_unlink_at(&s->t, link, which);
    free_entry(ks, s, e);
    sync_count(s);
}

/* Remove an expired entry: the hook sees the key before it is freed. */
static void expire_at(keyspace *ks, shard *s, kv **link, int which) {
    kv *e = *link;
    if (ks->expire_hook) ks->expire_hook(ks->expire_arg, e->data, e->klen);
    atomic_fetch_add_explicit(&ks->expired, 1, memory_order_relaxed);
    remove_at(ks, s, link, which);
}

/* Link to the live entry for key, or NULL; an expired entry found on the
 * way is reclaimed (lazy expiry). */
static kv **find_live(keyspace *ks, shard *s, uint64_t h, const char *key,
                      size_t klen, int64_t now_ms, int *which) {
    kv **link = table_find_link(&s->t, h, key, klen, which);
    if (link && is_expired(s, *link, now_ms)) {
        if (!atomic_load_explicit(&ks->keep_expired, memory_order_relaxed))
            expire_at(ks, s, link, *which);
        return NULL;
    }
    return link;
}

static void insert_new(shard *s, uint64_t h, kv *e) {
    table_insert(&s->t, h, e);
    mem_add(s, malloc_usable_size(e));
    sync_count(s);
}

/* Put ne where old is (same key): chain link and volatile slot move over,
 * then old and its value are freed. */
static void replace_entry(keyspace *ks, shard *s, kv **link, kv *old, kv *ne) {
    ne->next = old->next;
    *link = ne;
    if (old->vol_idx != KV_NO_VOLATILE) {
        ne->vol_idx = old->vol_idx;
        s->vol[ne->vol_idx].e = ne;
        old->vol_idx = KV_NO_VOLATILE;
    }
    mem_add(s, malloc_usable_size(ne));
    free_entry(ks, s, old);
}

/* Can a string of vlen bytes overwrite e's value in place without wasting
 * much of e's allocation? */
static int string_fits(const kv *e, size_t vlen) {
    size_t need = KV_HEADER_BYTES + e->klen + vlen;
    size_t cap = malloc_usable_size((void *)e);
    return need <= cap && cap <= need + need / 2 + 32;
}

/* ------------------------------------------------------------------ */
/* setup                                                               */

static void shard_init(shard *s, uint64_t seed, _Atomic size_t *mem) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    /* Critical sections are tiny: spin briefly before sleeping. */
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    if (pthread_mutex_init(&s->lock, &attr) != 0) die("pier: mutex init");
    pthread_mutexattr_destroy(&attr);
    s->mem = mem;
    atomic_init(&s->count, 0);
    atomic_init(&s->vcount, 0);
    atomic_init(&s->upkeep, 0);
    s->vol = NULL;
    s->vol_n = s->vol_cap = 0;
    table_init(&s->t, seed, s->mem);
}

keyspace *ks_create(uint64_t seed) {
    /* sizeof is a multiple of the 64-byte shard alignment. */
    keyspace *ks = aligned_alloc(_Alignof(keyspace), sizeof(keyspace));
    if (!ks) die("pier: out of memory");
    memset(ks, 0, sizeof *ks);
    ks->seed = seed;
    atomic_init(&ks->expired, 0);
    atomic_init(&ks->evicted, 0);
    atomic_init(&ks->mem, 0);
    atomic_init(&ks->lfu, 0);
    atomic_init(&ks->lfu_log_factor, 10);
    atomic_init(&ks->lfu_decay_time, 1);
    for (unsigned i = 0; i < KS_SHARDS; i++) shard_init(&ks->shards[i], seed, &ks->mem);
    return ks;
}

void ks_destroy(keyspace *ks) {
    if (!ks) return;
    ks_flush(ks);
    for (unsigned i = 0; i < KS_SHARDS; i++) {
        table_free(&ks->shards[i].t);
        pthread_mutex_destroy(&ks->shards[i].lock);
    }
    free(ks);
}

void ks_register_type(keyspace *ks, int type, const kv_type_ops *ops) {
    if (type < KV_STRING || type >= KV_NTYPES || !ops || !ops->name) die("pier: bad type ops");
    if (type == KV_STRING && (ops->free_obj || ops->mem_obj)) die("pier: strings have no object");
    if (ops->snap_tag >= 0xFF) die("pier: snapshot tag 0xFF is the end marker");
    const kv_type_ops *same = ks_type_by_snap_tag(ks, ops->snap_tag);
    if (same && same != &ks->ops[type]) die("pier: two types with one snapshot tag");
    ks->ops[type] = *ops;
}

const kv_type_ops *ks_type_ops(const keyspace *ks, int type) {
    if (type < 0 || type >= KV_NTYPES || !ks->ops[type].name) return NULL;
    return &ks->ops[type];
}

const kv_type_ops *ks_type_by_snap_tag(const keyspace *ks, unsigned tag) {
    for (int t = 0; t < KV_NTYPES; t++)
        if (ks->ops[t].name && ks->ops[t].snap_tag == tag) return &ks->ops[t];
    return NULL;
}

const char *ks_type_name(const keyspace *ks, const kv *e) {
    const kv_type_ops *ops = ks_type_ops(ks, kv_type(e));
    return ops ? ops->name : "none";
}

void ks_set_keep_expired(keyspace *ks, int keep) {
    atomic_store_explicit(&ks->keep_expired, keep, memory_order_relaxed);
}

void ks_set_expire_hook(keyspace *ks, ks_expire_hook *fn, void *arg) {
    ks->expire_hook = fn;
    ks->expire_arg = arg;
}

/* ------------------------------------------------------------------ */
/* locking                                                             */

unsigned ks_shard_of(const keyspace *ks, const char *key, size_t klen) {
    return shard_index(key_hash(ks, key, klen));
}

void ks_lockset_add(const keyspace *ks, ks_lockset *ls, const char *key,
                    size_t klen) {
    unsigned i = ks_shard_of(ks, key, klen);
    ls->bits[i >> 6] |= UINT64_C(1) << (i & 63);
}

void ks_lock(keyspace *ks, const ks_lockset *ls) {
    for (unsigned w = 0; w < KS_SHARDS / 64; w++) {
        for (uint64_t bits = ls->bits[w]; bits; bits &= bits - 1)
            ks_lock_shard(ks, w * 64 + (unsigned)__builtin_ctzll(bits));
    }
}

void ks_unlock(keyspace *ks, const ks_lockset *ls) {
    for (unsigned w = 0; w < KS_SHARDS / 64; w++) {
        for (uint64_t bits = ls->bits[w]; bits; bits &= bits - 1)
            ks_unlock_shard(ks, w * 64 + (unsigned)__builtin_ctzll(bits));
    }
}

void ks_lock_shard(keyspace *ks, unsigned i) {
    pthread_mutex_lock(&ks->shards[i].lock);
}

void ks_unlock_shard(keyspace *ks, unsigned i) {
    pthread_mutex_unlock(&ks->shards[i].lock);
}

int ks_shard_locked(keyspace *ks, unsigned i) {
    if (pthread_mutex_trylock(&ks->shards[i].lock) != 0) return 1;
    pthread_mutex_unlock(&ks->shards[i].lock);
    return 0;
}

/* ------------------------------------------------------------------ */
/* single-key operations (caller holds the shard lock)                 */

/* Objects may grow between commands without telling the store, so their
 * counted size is re-sampled whenever the key is looked up (mem_obj must
 * be O(1)); used_memory lags by at most the last command on each key. */
static void refresh_object_mem(keyspace *ks, shard *s, kv *e) {
    size_t now_bytes = object_mem(ks, kv_type(e), kv_object(e));
    size_t was = obj_accounted(e);
    if (now_bytes == was) return;
    mem_add(s, now_bytes);
    mem_sub(s, was);
    obj_set_accounted(e, now_bytes);
}

kv *ks_find(keyspace *ks, const char *key, size_t klen, int64_t now_ms) {
    uint64_t h = key_hash(ks, key, klen);
    shard *s = shard_for(ks, h);
    int which;
    kv **link = find_live(ks, s, h, key, klen, now_ms, &which);
    if (!link) return NULL;
    kv *e = *link;
    touch(ks, e, now_ms);
    if (kv_type(e) != KV_STRING) refresh_object_mem(ks, s, e);
    return e;
}

kv *ks_set_string(keyspace *ks, const char *key, size_t klen, const void *val,
                  size_t vlen, int keep_ttl, int64_t now_ms) {
    if (vlen > KS_MAX_LEN) die("pier: value too long");
    uint64_t h = key_hash(ks, key, klen);
    shard *s = shard_for(ks, h);
    int which;
    kv **link = find_live(ks, s, h, key, klen, now_ms, &which);
    if (!link) {
        kv *e = string_entry_new(ks, key, klen, val, vlen, now_ms);
        insert_new(s, h, e);
        return e;
    }
    kv *e = *link;
    if (!keep_ttl && e->vol_idx != KV_NO_VOLATILE) vol_remove(s, e);
    if (kv_type(e) == KV_STRING && string_fits(e, vlen)) {
        /* Overwrite in place: no malloc/free for same-size SETs. memmove
         * because val may point into this very value (SET k from GET k). */
        if (vlen) memmove(kv_sval(e), val, vlen);
        e->vlen = (uint32_t)vlen;
        touch(ks, e, now_ms);
        return e;
    }
    kv *ne = string_entry_new(ks, key, klen, val, vlen, now_ms);
    replace_entry(ks, s, link, e, ne);
    return ne;
}

kv *ks_set_object(keyspace *ks, const char *key, size_t klen, int type,
                  void *obj, int keep_ttl, int64_t now_ms) {
    if (type <= KV_STRING || type >= KV_NTYPES) die("pier: bad object type");
    uint64_t h = key_hash(ks, key, klen);
    shard *s = shard_for(ks, h);
    size_t obj_bytes = object_mem(ks, type, obj);
    mem_add(s, obj_bytes);
    int which;
    kv **link = find_live(ks, s, h, key, klen, now_ms, &which);
    if (!link) {
        kv *e = object_entry_new(ks, key, klen, type, obj, obj_bytes, now_ms);
        insert_new(s, h, e);
        return e;
    }
    kv *e = *link;
    if (!keep_ttl && e->vol_idx != KV_NO_VOLATILE) vol_remove(s, e);
    if (kv_type(e) == type) {
        /* Same type: swap the object in the existing slot. Setting the
         * object the key already holds must not free it. */
        void *old = kv_object(e);
        mem_sub(s, obj_accounted(e));
        if (old != obj && old && ks->ops[type].free_obj)
            ks->ops[type].free_obj(old);
        obj_store(e, obj);
        obj_set_accounted(e, obj_bytes);
        touch(ks, e, now_ms);
        return e;
    }
    kv *ne = object_entry_new(ks, key, klen, type, obj, obj_bytes, now_ms);
    replace_entry(ks, s, link, e, ne);
    return ne;
}

/* Should a string entry be reallocated for newlen, rather than resized in
 * place? In place when it fits, unless shrinking would strand a lot of
 * memory. */
static int resize_needs_realloc(const kv *e, size_t newlen) {
    size_t need = KV_HEADER_BYTES + e->klen + newlen;
    size_t cap = malloc_usable_size((void *)e);
    if (need > cap) return 1;
    return newlen < e->vlen && cap > 2 * need + 64;
}

kv *ks_string_resize(keyspace *ks, kv *e, size_t newlen) {
    if (newlen > KS_MAX_LEN) die("pier: value too long");
    size_t oldlen = e->vlen;
    if (resize_needs_realloc(e, newlen)) {
        size_t need = KV_HEADER_BYTES + e->klen + newlen;
        /* Growth gets 50% slack so a run of APPENDs reallocates only
         * O(log n) times; malloc_usable_size then tells the real room. */
        size_t request = newlen > oldlen ? need + newlen / 2 : need;
        shard *s = shard_of_entry(ks, e);
        int which;
        kv **link = table_link_of(&s->t, key_hash(ks, e->data, e->klen), e,
                                  &which);
        if (!link) die("pier: ks_string_resize on an unlinked entry");
        size_t old_bytes = malloc_usable_size(e);
        kv *ne = xrealloc(e, request); /* e is invalid from here */
        *link = ne;
        if (ne->vol_idx != KV_NO_VOLATILE) s->vol[ne->vol_idx].e = ne;
        mem_add(s, malloc_usable_size(ne));
        mem_sub(s, old_bytes);
        e = ne;
    }
    if (newlen > oldlen) memset(kv_sval(e) + oldlen, 0, newlen - oldlen);
    e->vlen = (uint32_t)newlen;
    return e;
}

int ks_delete(keyspace *ks, const char *key, size_t klen, int64_t now_ms) {
    uint64_t h = key_hash(ks, key, klen);
    shard *s = shard_for(ks, h);
    int which;
    kv **link = find_live(ks, s, h, key, klen, now_ms, &which);
    if (!link) return 0;
    remove_at(ks, s, link, which);
    return 1;
}

void ks_set_expire(keyspace *ks, kv *e, int64_t at_ms) {
    shard *s = shard_of_entry(ks, e);
    if (at_ms == 0) {
        if (e->vol_idx != KV_NO_VOLATILE) vol_remove(s, e);
    } else if (e->vol_idx != KV_NO_VOLATILE) {
        s->vol[e->vol_idx].at_ms = at_ms;
    } else {
        vol_add(s, e, at_ms);
    }
}

int64_t ks_get_expire(const keyspace *ks, const kv *e) {
    if (e->vol_idx == KV_NO_VOLATILE) return 0; /* common case: no hash */
    const shard *s = &ks->shards[shard_index(key_hash(ks, e->data, e->klen))];
    return s->vol[e->vol_idx].at_ms;
}

kv *ks_rename(keyspace *ks, const char *src, size_t slen, const char *dst,
              size_t dlen, int64_t now_ms) {
    uint64_t hs = key_hash(ks, src, slen), hd = key_hash(ks, dst, dlen);
    shard *ss = shard_for(ks, hs), *sd = shard_for(ks, hd);
    /* dst goes first: removing it may relink src's chain (same shard). */
    ks_delete(ks, dst, dlen, now_ms);
    int which;
    kv **link = find_live(ks, ss, hs, src, slen, now_ms, &which);
    if (!link) return NULL; /* contract violated: src missing (or src==dst) */
    kv *e = *link;
    int had_ttl = e->vol_idx != KV_NO_VOLATILE;
    int64_t at_ms = had_ttl ? ss->vol[e->vol_idx].at_ms : 0;
    if (had_ttl) vol_remove(ss, e);
    table_unlink_at(&ss->t, link, which);
    /* The key is part of the allocation, so the value moves to a new entry;
     * an object changes owner without being freed. */
    kv *ne = entry_alloc(ks, dst, dlen, value_bytes(e), kv_type(e), now_ms);
    ne->meta = e->meta;
    ne->vlen = e->vlen;
    copy_bytes(ne->data + ne->klen, e->data + e->klen, value_bytes(e));
    size_t obj_bytes = kv_type(e) == KV_STRING ? 0 : obj_accounted(e);
    mem_sub(ss, malloc_usable_size(e) + obj_bytes);
    free(e);
    sync_count(ss);
    insert_new(sd, hd, ne);
    mem_add(sd, obj_bytes);
    if (had_ttl) vol_add(sd, ne, at_ms);
    return ne;
}

/* ------------------------------------------------------------------ */
/* whole-keyspace operations (lock internally)                         */

typedef struct visit_ctx {
    const shard *s;
    int64_t now_ms;
    ks_visit_fn *fn;
    void *arg;
    size_t emitted;
} visit_ctx;

static void visit_live(void *arg, kv *e) {
    visit_ctx *ctx = arg;
    if (is_expired(ctx->s, e, ctx->now_ms)) return;
    ctx->fn(ctx->arg, e);
    ctx->emitted++;
}

static int each_live(void *arg, kv *e) {
    visit_live(arg, e);
    return 0;
}

uint64_t ks_scan(keyspace *ks, uint64_t cursor, size_t count, int64_t now_ms,
                 ks_visit_fn *fn, void *arg) {
    unsigned si = (unsigned)(cursor & (KS_SHARDS - 1));
    uint64_t tcur = cursor >> KS_SHARD_BITS;
    size_t want = count ? count : 1;
    size_t max_steps = want <= SIZE_MAX / SCAN_EMPTY_FACTOR
                           ? want * SCAN_EMPTY_FACTOR : SIZE_MAX;
    size_t steps = 0;
    visit_ctx ctx = {.now_ms = now_ms, .fn = fn, .arg = arg};
    for (; si < KS_SHARDS; si++, tcur = 0) {
        shard *s = &ks->shards[si];
        /* A shard empty when we reach it holds no key that must be
         * returned; skipping it keeps SCAN over a sparse keyspace cheap. */
        if (tcur == 0 &&
            atomic_load_explicit(&s->count, memory_order_relaxed) == 0)
            continue;
        ctx.s = s;
        pthread_mutex_lock(&s->lock);
        do {
            tcur = table_scan(&s->t, tcur, visit_live, &ctx);
            steps++;
        } while (tcur != 0 && ctx.emitted < want && steps < max_steps);
        pthread_mutex_unlock(&s->lock);
        if (tcur != 0) return (tcur << KS_SHARD_BITS) | si;
        if (ctx.emitted >= want || steps >= max_steps) {
            si++;
            break;
        }
    }
    /* Next shard from its start; past the last shard the scan is done. */
    return si < KS_SHARDS ? si : 0;
}

void ks_each(keyspace *ks, int64_t now_ms, ks_visit_fn *fn, void *arg) {
    visit_ctx ctx = {.now_ms = now_ms, .fn = fn, .arg = arg};
    for (unsigned i = 0; i < KS_SHARDS; i++) {
        shard *s = &ks->shards[i];
        ctx.s = s;
        pthread_mutex_lock(&s->lock);
        table_each(&s->t, each_live, &ctx);
        pthread_mutex_unlock(&s->lock);
    }
}

void ks_each_locked(keyspace *ks, int64_t now_ms, ks_visit_fn *fn, void *arg) {
    visit_ctx ctx = {.now_ms = now_ms, .fn = fn, .arg = arg};
    for (unsigned i = 0; i < KS_SHARDS; i++) {
        ctx.s = &ks->shards[i];
        table_each(&ks->shards[i].t, each_live, &ctx);
    }
}

typedef struct first_live_ctx {
    const shard *s;
    int64_t now_ms;
    kv *found;
} first_live_ctx;

static int stop_at_live(void *arg, kv *e) {
    first_live_ctx *ctx = arg;
    if (is_expired(ctx->s, e, ctx->now_ms)) return 0;
    ctx->found = e;
    return 1;
}

/* A random live entry of a locked shard: a few random picks, then (a shard
 * full of expired keys) the first live entry found by a walk. */
static kv *shard_random_live(shard *s, int64_t now_ms, uint64_t *rng) {
    for (int tries = 0; tries < RANDOM_KEY_TRIES; tries++) {
        kv *e = table_random(&s->t, rng);
        if (!e) return NULL;
        if (!is_expired(s, e, now_ms)) return e;
    }
    first_live_ctx ctx = {.s = s, .now_ms = now_ms};
    table_each(&s->t, stop_at_live, &ctx);
    return ctx.found;
}

char *ks_random_key(keyspace *ks, int64_t now_ms, size_t *klen) {
    uint64_t *rng = thread_rng();
    unsigned start = (unsigned)store_rng_below(rng, KS_SHARDS);
    for (unsigned k = 0; k < KS_SHARDS; k++) {
        shard *s = &ks->shards[(start + k) & (KS_SHARDS - 1)];
        if (atomic_load_explicit(&s->count, memory_order_relaxed) == 0)
            continue;
        char *copy = NULL;
        pthread_mutex_lock(&s->lock);
        kv *e = shard_random_live(s, now_ms, rng);
        if (e) {
            copy = xmemdup(e->data, e->klen);
            *klen = e->klen;
        }
        pthread_mutex_unlock(&s->lock);
        if (copy) return copy;
    }
    *klen = 0;
    return NULL;
}

size_t ks_count(const keyspace *ks) {
    size_t n = 0;
    for (unsigned i = 0; i < KS_SHARDS; i++)
        n += atomic_load_explicit(&ks->shards[i].count, memory_order_relaxed);
    return n;
}

size_t ks_volatile_count(const keyspace *ks) {
    size_t n = 0;
    for (unsigned i = 0; i < KS_SHARDS; i++)
        n += atomic_load_explicit(&ks->shards[i].vcount, memory_order_relaxed);
    return n;
}

/* Mean remaining TTL (ms) of the live volatile keys of one locked shard,
 * from at most AVG_TTL_SAMPLE of them spread evenly over its array (all
 * of them when there are no more). *n: keys sampled. */
#define AVG_TTL_SAMPLE 16
static double shard_avg_ttl(const shard *s, int64_t now_ms, size_t *n) {
    uint32_t total = s->vol_n, step = total > AVG_TTL_SAMPLE ? total / AVG_TTL_SAMPLE : 1;
    double sum = 0;
    *n = 0;
    for (uint32_t i = 0; i < total && *n < AVG_TTL_SAMPLE; i += step) {
        if (s->vol[i].at_ms <= now_ms) continue; /* expired, not yet reclaimed */
        sum += (double)(s->vol[i].at_ms - now_ms);
        (*n)++;
    }
    return *n ? sum / (double)*n : 0;
}

int64_t ks_avg_ttl(keyspace *ks, int64_t now_ms) {
    double weighted = 0, weight = 0;
    for (unsigned i = 0; i < KS_SHARDS; i++) {
        shard *s = &ks->shards[i];
        if (atomic_load_explicit(&s->vcount, memory_order_relaxed) == 0) continue;
        pthread_mutex_lock(&s->lock);
        size_t n;
        double avg = shard_avg_ttl(s, now_ms, &n);
        size_t keys = s->vol_n;
        pthread_mutex_unlock(&s->lock);
        if (n == 0) continue;
        weighted += avg * (double)keys;
        weight += (double)keys;
    }
    return weight > 0 ? (int64_t)(weighted / weight) : 0;
}

typedef struct flush_ctx {
    keyspace *ks;
    shard *s;
} flush_ctx;

static void flush_entry(void *arg, kv *e) {
    flush_ctx *ctx = arg;
    free_entry(ctx->ks, ctx->s, e);
}

static void flush_shard(keyspace *ks, shard *s) {
    flush_ctx ctx = {ks, s};
    table_clear(&s->t, flush_entry, &ctx);
    s->vol_n = 0;
    vol_resize(s, 0);
    atomic_store_explicit(&s->vcount, 0, memory_order_relaxed);
    sync_count(s);
}

void ks_flush(keyspace *ks) {
    for (unsigned i = 0; i < KS_SHARDS; i++) {
        shard *s = &ks->shards[i];
        pthread_mutex_lock(&s->lock);
        flush_shard(ks, s);
        pthread_mutex_unlock(&s->lock);
    }
}

void ks_flush_locked(keyspace *ks) {
    for (unsigned i = 0; i < KS_SHARDS; i++) flush_shard(ks, &ks->shards[i]);
}

/* Expire a known entry (active expiry: we have the entry, not a link). */
static void expire_entry(keyspace *ks, shard *s, kv *e) {
    int which;
    kv **link = table_link_of(&s->t, key_hash(ks, e->data, e->klen), e,
                              &which);
    if (!link) die("pier: volatile entry missing from its table");
    expire_at(ks, s, link, which);
}

/* One active-expiry round on a locked shard: check EXPIRE_SAMPLE random
 * volatile keys (or all of them if there are no more than that) and delete
 * the expired ones. Returns the number deleted; *checked is the sample
 * size and *complete is set when every volatile key was checked. */
static size_t expire_round(keyspace *ks, shard *s, int64_t now_ms,
                           uint64_t *rng, size_t *checked, int *complete) {
    size_t deleted = 0;
    if (s->vol_n <= EXPIRE_SAMPLE) {
        *checked = s->vol_n;
        *complete = 1;
        /* Downwards: a removal moves the last slot (already checked) into
         * the hole, so nothing is skipped. */
        for (uint32_t i = s->vol_n; i-- > 0;) {
            if (s->vol[i].at_ms < now_ms) {
                expire_entry(ks, s, s->vol[i].e);
                deleted++;
            }
        }
        return deleted;
    }
    *checked = EXPIRE_SAMPLE;
    *complete = 0;
    for (int k = 0; k < EXPIRE_SAMPLE && s->vol_n > 0; k++) {
        uint32_t i = (uint32_t)store_rng_below(rng, s->vol_n);
        if (s->vol[i].at_ms < now_ms) {
            expire_entry(ks, s, s->vol[i].e);
            deleted++;
        }
    }
    return deleted;
}

/* Expire in one locked shard: rounds of sampling while more than 25% of
 * the sample had expired and time remains. Returns keys deleted. */
static size_t expire_shard(keyspace *ks, shard *s, int64_t now_ms,
                           int64_t deadline_us, uint64_t *rng) {
    size_t deleted = 0;
    while (s->vol_n > 0) {
        size_t checked;
        int complete;
        size_t n = expire_round(ks, s, now_ms, rng, &checked, &complete);
        deleted += n;
        if (complete || n * 4 <= checked) break;
        if (clock_mono_us() >= deadline_us) break;
    }
    return deleted;
}

/* Besides expiry, this is the store's periodic upkeep (as Redis's
 * "activerehashing"): a shard that gets no traffic would otherwise stay
 * mid-rehash, holding two bucket arrays, forever. */
size_t ks_active_expire(keyspace *ks, unsigned from, unsigned to,
                        int64_t now_ms, int64_t deadline_us) {
    uint64_t *rng = thread_rng();
    size_t deleted = 0;
    if (to > KS_SHARDS) to = KS_SHARDS;
    for (unsigned i = from; i < to; i++) {
        shard *s = &ks->shards[i];
        if (atomic_load_explicit(&s->vcount, memory_order_relaxed) == 0 &&
            atomic_load_explicit(&s->upkeep, memory_order_relaxed) == 0)
            continue;
        if (clock_mono_us() >= deadline_us) break;
        pthread_mutex_lock(&s->lock);
        if (table_needs_maintenance(&s->t)) {
            table_maintain(&s->t, UPKEEP_REHASH_STEPS);
            sync_count(s);
        }
        if (!atomic_load_explicit(&ks->keep_expired, memory_order_relaxed))
            deleted += expire_shard(ks, s, now_ms, deadline_us, rng);
        pthread_mutex_unlock(&s->lock);
    }
    return deleted;
}

size_t ks_used_memory(const keyspace *ks) {
    return malloc_usable_size((void *)ks) + atomic_load_explicit(&ks->mem, memory_order_relaxed);
}

uint64_t ks_expired_total(const keyspace *ks) {
    return atomic_load_explicit(&ks->expired, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* eviction support (maxmemory)                                        */

void ks_set_lfu(keyspace *ks, int on, int log_factor, int decay_time) {
    atomic_store_explicit(&ks->lfu_log_factor, log_factor, memory_order_relaxed);
    atomic_store_explicit(&ks->lfu_decay_time, decay_time, memory_order_relaxed);
    atomic_store_explicit(&ks->lfu, on != 0, memory_order_relaxed);
}

uint64_t ks_evicted_total(const keyspace *ks) {
    return atomic_load_explicit(&ks->evicted, memory_order_relaxed);
}

/* Does shard s hold anything the sampler may pick? Lock-free hint. */
static int shard_has_candidates(const shard *s, int volatile_only) {
    const _Atomic size_t *n = volatile_only ? &s->vcount : &s->count;
    return atomic_load_explicit(n, memory_order_relaxed) != 0;
}

/* A random shard with candidates: random picks first (cheap, unbiased when
 * keys are spread), then a linear search from a random start so a nearly
 * empty keyspace is still found. KS_SHARDS when there is none. */
static unsigned pick_sample_shard(const keyspace *ks, int volatile_only, uint64_t *rng) {
    for (int t = 0; t < EVICT_SHARD_TRIES; t++) {
        unsigned i = (unsigned)store_rng_below(rng, KS_SHARDS);
        if (shard_has_candidates(&ks->shards[i], volatile_only)) return i;
    }
    unsigned start = (unsigned)store_rng_below(rng, KS_SHARDS);
    for (unsigned k = 0; k < KS_SHARDS; k++) {
        unsigned i = (start + k) & (KS_SHARDS - 1);
        if (shard_has_candidates(&ks->shards[i], volatile_only)) return i;
    }
    return KS_SHARDS;
}

/* Higher = better to evict. */
static uint64_t evict_score(const keyspace *ks, const shard *s, const kv *e, int order,
                            int64_t now_ms, uint64_t *rng) {
    switch (order) {
    case KS_EVICT_LRU:
        return (lru_clock(now_ms) - (e->meta & LRU_CLOCK_MASK)) & LRU_CLOCK_MASK;
    case KS_EVICT_LFU:
        return LFU_COUNTER_MAX - lfu_decayed(ks, e->meta, now_ms);
    case KS_EVICT_TTL:
        /* Soonest expiry first; the caller samples volatile keys only. */
        return e->vol_idx == KV_NO_VOLATILE ? 0 : UINT64_MAX - (uint64_t)s->vol[e->vol_idx].at_ms;
    default:
        return store_rng_next(rng);
    }
}

size_t ks_evict_sample(keyspace *ks, int order, int volatile_only, size_t count,
                       int64_t now_ms, ks_candidate_fn *fn, void *arg) {
    uint64_t *rng = thread_rng();
    unsigned si = pick_sample_shard(ks, volatile_only, rng);
    if (si == KS_SHARDS) return 0;
    shard *s = &ks->shards[si];
    size_t sampled = 0;
    pthread_mutex_lock(&s->lock);
    /* No more picks than the shard has keys: a small shard would only
     * repeat itself; the caller samples further shards instead. */
    size_t have = volatile_only ? s->vol_n : table_count(&s->t);
    if (count > have) count = have;
    for (size_t k = 0; k < count; k++) {
        const kv *e;
        if (volatile_only)
            e = s->vol_n ? s->vol[store_rng_below(rng, s->vol_n)].e : NULL;
        else
            e = table_random(&s->t, rng);
        if (!e) break;
        fn(arg, e->data, e->klen, evict_score(ks, s, e, order, now_ms, rng));
        sampled++;
    }
    pthread_mutex_unlock(&s->lock);
    return sampled;
}

int ks_evict_key(keyspace *ks, const char *key, size_t klen, int volatile_only, int64_t now_ms) {
    uint64_t h = key_hash(ks, key, klen);
    shard *s = shard_for(ks, h);
    pthread_mutex_lock(&s->lock);
    int which;
    kv **link = table_find_link(&s->t, h, key, klen, &which);
    if (link && volatile_only && (*link)->vol_idx == KV_NO_VOLATILE) link = NULL;
    if (link) {
        /* Persistence logs a DEL for an evicted key exactly as for an
         * expired one, so the hook runs for both. */
        if (is_expired(s, *link, now_ms)) {
            expire_at(ks, s, link, which);
        } else {
            if (ks->expire_hook) ks->expire_hook(ks->expire_arg, key, klen);
            atomic_fetch_add_explicit(&ks->evicted, 1, memory_order_relaxed);
            remove_at(ks, s, link, which);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return link != NULL;
}
