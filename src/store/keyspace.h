/* keyspace.h - the key space: KS_SHARDS independent hash tables ("shards"),
 * each with its own mutex, incremental rehashing, volatile-key index and
 * memory counter.
 *
 * Thread model (docs/ARCHITECTURE.md): any loop thread may touch any key.
 * A key's shard is chosen by the top bits of its keyed hash. Callers lock
 * the shards of every key a command touches BEFORE looking anything up, in
 * ascending shard order (ks_lock takes a lockset and does that), so
 * multi-key commands (MSET, RENAME) are atomic and cannot deadlock. Whole-
 * keyspace operations (SCAN, KEYS, DBSIZE, FLUSHALL, active expiry) lock one
 * shard at a time and never hold a key lockset at the same time.
 *
 * Functions documented "caller holds the shard lock" do no locking; calling
 * them without the lock is a data race. Functions documented "locks
 * internally" must be called with NO shard lock held.
 *
 * Entries: one allocation holds the header, the key bytes and, for strings,
 * the value bytes (so a GET touches one cache line run). Other values
 * (streams) store a pointer to their object after the key.
 *
 * Value types (src/types/<type>/) register their kv_type_ops with each
 * keyspace (types_register in src/types/types.c does it for all of them):
 * what the store, TYPE, OBJECT ENCODING and snapshots need to know about a
 * type, so that none of them switches on it. Expiry times are absolute
 * wall-clock milliseconds (they survive restart) kept in a per-shard array
 * of volatile keys, so active expiry samples only keys that can expire. */
#ifndef PIER_KEYSPACE_H
#define PIER_KEYSPACE_H

#include <stddef.h>
#include <stdint.h>

#define KS_SHARD_BITS 8
#define KS_SHARDS (1u << KS_SHARD_BITS)
#define KV_NO_VOLATILE UINT32_MAX
/* Largest key or string value the store can hold (lengths are 32-bit). */
#define KS_MAX_LEN ((size_t)UINT32_MAX)

/* The value types' numbers (kept in an entry's meta bits; not a file
 * format: snapshots name a type by its ops' snap_tag). */
enum kv_type {
    KV_STRING = 0, /* inline in the entry: src/types/string/ */
    KV_STREAM = 1, /* src/types/stream/ */
    KV_NTYPES = 8
};

typedef struct keyspace keyspace;

typedef struct kv {
    struct kv *next;   /* hash chain */
    uint32_t meta;     /* bits 0-23: LRU clock (seconds), or LFU: minutes << 8 |
                          log counter (ks_set_lfu); bits 24-31: type */
    uint32_t vol_idx;  /* index in the shard's volatile array or KV_NO_VOLATILE */
    uint32_t klen;
    uint32_t vlen;     /* string: value length; other types: sizeof(void *) */
    char data[];       /* klen key bytes, then vlen value bytes */
} kv;

static inline const char *kv_key(const kv *e) { return e->data; }
static inline size_t kv_klen(const kv *e) { return e->klen; }
static inline int kv_type(const kv *e) { return (int)(e->meta >> 24); }
/* String value bytes (type KV_STRING only). Writable in place for
 * SETRANGE/APPEND after ks_string_resize. Not NUL-terminated. */
static inline char *kv_sval(kv *e) { return e->data + e->klen; }
static inline size_t kv_slen(const kv *e) { return e->vlen; }
/* Object pointer for non-string types. */
void *kv_object(const kv *e);


/* Receives an encoding in pieces (n may be 0). */
typedef void kv_sink_fn(void *arg, const void *p, size_t n);

/* What a value type tells the layers that handle every type. One const
 * table per type, in its folder (src/types/<type>/<type>_type.c), and
 * registered with ks_register_type; docs/ARCHITECTURE.md, "Adding a data
 * type". */
typedef struct kv_type_ops {
    const char *name; /* TYPE's reply and SCAN TYPE's match: "stream" */
    /* OBJECT ENCODING's reply for this value ("int", "embstr", "raw",
     * "stream"); pier has no OBJECT command yet, this is its answer. */
    const char *(*encoding)(const kv *e);
    /* Objects only (NULL for strings, which live in the entry): free one,
     * and the bytes it holds for used_memory (O(1): sampled on access). */
    void (*free_obj)(void *obj);
    size_t (*mem_obj)(const void *obj);
    /* Snapshot (docs/PERSISTENCE.md): the record type byte of this type's
     * key records and the version of the value encoding written under it
     * (the tag implies the version: an encoding older readers could not
     * read takes a new tag). */
    unsigned snap_tag;
    unsigned snap_version;
    /* Write the value's encoding through sink, returning its length;
     * sink NULL only measures. Never allocates (a forked child writes
     * snapshots); the caller holds the entry's shard lock. */
    uint64_t (*snap_encode)(const kv *e, kv_sink_fn *sink, void *arg);
    /* Decode a value encoding (every length checked against n) and store
     * it under key, without an expiry, replacing any value (caller holds
     * the key's shard lock). Returns the entry, or NULL (nothing stored)
     * when p[0..n) is not a valid encoding. */
    kv *(*snap_load)(keyspace *ks, const char *key, size_t klen, const unsigned char *p,
                     size_t n, int64_t now_ms);
} kv_type_ops;

/* Called (shard lock held) for every key removed because it expired, lazily
 * or actively, or was evicted for maxmemory, so that persistence can log a
 * DEL. May be NULL. */
typedef void ks_expire_hook(void *arg, const char *key, size_t klen);

keyspace *ks_create(uint64_t seed);
void ks_destroy(keyspace *ks);
/* Register (copy) the ops of value type `type`. Strings' ops have no
 * free_obj/mem_obj; two types never share a snap_tag (0xFF, the snapshot's
 * end marker, is no tag). At start-up, before any value of the type. */
void ks_register_type(keyspace *ks, int type, const kv_type_ops *ops);
/* The registered ops of a type number, NULL when none is. Any thread:
 * the table does not change once the keyspace serves. */
const kv_type_ops *ks_type_ops(const keyspace *ks, int type);
/* The registered type whose snap_tag is tag, NULL when none. */
const kv_type_ops *ks_type_by_snap_tag(const keyspace *ks, unsigned tag);
/* TYPE's name for an entry ("none" for an unregistered type). */
const char *ks_type_name(const keyspace *ks, const kv *e);
void ks_set_expire_hook(keyspace *ks, ks_expire_hook *fn, void *arg);
/* Replica expiry (cluster followers): expired keys read as absent but are
 * never deleted, lazily or actively, until keep is cleared. Writes must
 * then run with now_ms 0 (nothing expired), as the cluster's apply does. */
void ks_set_keep_expired(keyspace *ks, int keep);

/* --- locking --- */
typedef struct ks_lockset {
    uint64_t bits[KS_SHARDS / 64];
} ks_lockset;

static inline void ks_lockset_clear(ks_lockset *ls) {
    for (unsigned i = 0; i < KS_SHARDS / 64; i++) ls->bits[i] = 0;
}
unsigned ks_shard_of(const keyspace *ks, const char *key, size_t klen);
void ks_lockset_add(const keyspace *ks, ks_lockset *ls, const char *key, size_t klen);
void ks_lock(keyspace *ks, const ks_lockset *ls);   /* ascending order */
void ks_unlock(keyspace *ks, const ks_lockset *ls);
void ks_lock_shard(keyspace *ks, unsigned shard);
void ks_unlock_shard(keyspace *ks, unsigned shard);
/* 1 when shard is locked by any thread: for assertions and tests (e.g.
 * that a command is logged with its keys still locked). */
int ks_shard_locked(keyspace *ks, unsigned shard);

/* --- single-key operations: caller holds the key's shard lock --- */

/* Find a live key. An expired key is deleted here (lazy expiry; the expire
 * hook runs) and NULL is returned. Updates the entry's access clock.
 * now_ms is the wall clock of the command being executed. */
kv *ks_find(keyspace *ks, const char *key, size_t klen, int64_t now_ms);

/* Insert or overwrite key with a string value. keep_ttl: keep an existing
 * expiry, otherwise the key becomes persistent. Returns the entry (its
 * address may differ from any previous one for that key). Never fails
 * (aborts on out-of-memory like every allocation in pier). */
kv *ks_set_string(keyspace *ks, const char *key, size_t klen,
                  const void *val, size_t vlen, int keep_ttl, int64_t now_ms);

/* Insert or overwrite key with an object of a non-string type; the store
 * owns obj from now on and frees it with the type's free_obj. */
kv *ks_set_object(keyspace *ks, const char *key, size_t klen, int type,
                  void *obj, int keep_ttl, int64_t now_ms);

/* Resize a string value to newlen bytes, keeping key, TTL and the first
 * min(old,new) value bytes; bytes past the old length are zeroed. Grows
 * with slack so that repeated APPENDs are amortized O(1). The entry may
 * move: use the returned pointer, the old one is invalid. */
kv *ks_string_resize(keyspace *ks, kv *e, size_t newlen);

/* Delete key if it exists and is live. Returns 1 if a live key was
 * deleted, 0 otherwise (an expired key is reclaimed and counts as 0). */
int ks_delete(keyspace *ks, const char *key, size_t klen, int64_t now_ms);

/* Set the absolute expiry (wall ms) of a live entry; at_ms == 0 makes it
 * persistent. An at_ms in the past is allowed (the caller normally
 * deletes instead, as Redis does). */
void ks_set_expire(keyspace *ks, kv *e, int64_t at_ms);
/* Absolute expiry in wall ms, or 0 if the key is persistent. */
int64_t ks_get_expire(const keyspace *ks, const kv *e);

/* Move src to dst, keeping value and TTL, overwriting dst. Caller holds
 * both shard locks and has checked that src exists and src != dst.
 * Returns the entry now stored under dst. */
kv *ks_rename(keyspace *ks, const char *src, size_t slen,
              const char *dst, size_t dlen, int64_t now_ms);

/* --- whole-keyspace operations: lock internally, call with no lock held --- */

/* Visit callback; runs with the entry's shard locked. Must not call any
 * ks_ function. */
typedef void ks_visit_fn(void *arg, const kv *e);

/* One SCAN step. Starting at cursor (0 = start) visits at least `count`
 * buckets' worth of entries (fewer at the very end), calling fn for every
 * live entry, and returns the next cursor (0 = done). Guarantees of Redis
 * SCAN: every key present for the whole iteration is returned at least
 * once, even across rehashing (grow or shrink) between calls. The cursor
 * encodes the shard in its low KS_SHARD_BITS bits and the shard's
 * reverse-binary bucket cursor above them. */
uint64_t ks_scan(keyspace *ks, uint64_t cursor, size_t count, int64_t now_ms,
                 ks_visit_fn *fn, void *arg);

/* Visit every live entry exactly once (each shard locked in turn). */
void ks_each(keyspace *ks, int64_t now_ms, ks_visit_fn *fn, void *arg);

/* The same with every shard lock already held by the caller (a command
 * locking all shards, or a forked child writing a snapshot: it inherits
 * the locks its parent held at fork time). */
void ks_each_locked(keyspace *ks, int64_t now_ms, ks_visit_fn *fn, void *arg);

/* Copy a random live key into a malloc'd buffer (caller frees), length in
 * *klen. NULL when the keyspace is empty (or holds only expired keys). */
char *ks_random_key(keyspace *ks, int64_t now_ms, size_t *klen);

/* Number of keys (expired keys not yet reclaimed included, as in Redis),
 * and of keys with a TTL. Lock-free reads of per-shard counters. */
size_t ks_count(const keyspace *ks);
size_t ks_volatile_count(const keyspace *ks);

/* INFO keyspace avg_ttl: the mean remaining TTL in ms of the keys that
 * have one, 0 when none. Sampled (at most 16 keys per shard, weighted by
 * the shard's count; exact for up to 16 volatile keys per shard). Locks
 * each shard in turn; call with no lock held. */
int64_t ks_avg_ttl(keyspace *ks, int64_t now_ms);

/* Delete everything. */
void ks_flush(keyspace *ks);
/* The same when the caller holds every shard lock (FLUSHALL does, so that
 * its place in the AOF is exact relative to writes on other threads). */
void ks_flush_locked(keyspace *ks);

/* Fill a lockset with every shard. */
static inline void ks_lockset_all(ks_lockset *ls) {
    for (unsigned i = 0; i < KS_SHARDS / 64; i++) ls->bits[i] = ~(uint64_t)0;
}

/* Active expiry over shards [from, to): for each shard, sample up to 20
 * volatile keys and delete the expired ones; repeat a shard while more
 * than 25% of the sample had expired, until deadline_us (monotonic) is
 * reached. Returns the number of keys deleted. Loop threads each take a
 * disjoint shard range, so expiry work is spread and never needs a thread
 * of its own. */
size_t ks_active_expire(keyspace *ks, unsigned from, unsigned to,
                        int64_t now_ms, int64_t deadline_us);

/* Bytes held by the keyspace (entries, tables, volatile index, objects),
 * as counted with malloc_usable_size. Lock-free read. */
size_t ks_used_memory(const keyspace *ks);

/* Keys expired (lazily or actively) since start. */
uint64_t ks_expired_total(const keyspace *ks);

/* --- eviction support (maxmemory; the policy lives in store/evict.c) --- */

/* How the 24 access bits of kv.meta are kept: LRU clock (on == 0) or LFU
 * minutes + logarithmic counter with the given log factor and decay time
 * (minutes per decrement, 0 = never). Switching reinterprets existing
 * bits, as Redis does on CONFIG SET maxmemory-policy. Any thread. */
void ks_set_lfu(keyspace *ks, int on, int log_factor, int decay_time);

/* Order of an eviction sample's score (higher = evict first). */
enum ks_evict_order {
    KS_EVICT_LRU,    /* idle seconds */
    KS_EVICT_LFU,    /* 255 - decayed access counter */
    KS_EVICT_TTL,    /* sooner expiry = higher */
    KS_EVICT_RANDOM  /* a random number */
};

/* Called with the sampled key's shard locked; must not call ks_. The key
 * bytes are valid only during the call (copy them). */
typedef void ks_candidate_fn(void *arg, const char *key, size_t klen, uint64_t score);

/* Sample up to `count` keys (with a TTL only, when volatile_only) of one
 * random shard that has any, at most as many as that shard holds, calling
 * fn with each key's score. Keys may repeat and may be expired. Locks internally (call with no lock held).
 * Returns how many were sampled: 0 means nothing is evictable. */
size_t ks_evict_sample(keyspace *ks, int order, int volatile_only, size_t count,
                       int64_t now_ms, ks_candidate_fn *fn, void *arg);

/* Delete key because of maxmemory (the expire hook runs, so persistence
 * logs a DEL; an already-expired key counts as expired, others as
 * evicted). volatile_only: leave the key alone unless it still has a TTL
 * (it may have been PERSISTed since it was sampled). Locks internally.
 * Returns 1 when the key was deleted. */
int ks_evict_key(keyspace *ks, const char *key, size_t klen, int volatile_only, int64_t now_ms);

/* Keys evicted since start. */
uint64_t ks_evicted_total(const keyspace *ks);

#endif
