/* table.h - the store's chained hash table of kv entries (internal to
 * src/store; the rest of pier goes through keyspace.h).
 *
 * Two bucket arrays and incremental rehashing, so no single operation pays
 * for a whole resize: while a resize is in progress, each find/insert/
 * delete moves one bucket (skipping at most TABLE_REHASH_EMPTY_VISITS empty
 * ones) from table 0 to table 1, new entries go to table 1, and lookups
 * check both. Sizes are powers of two; a bucket index is the LOW bits of the
 * 64-bit hash (the keyspace picks the shard from the TOP bits, so the two
 * choices are independent). The table grows when count >= buckets (load
 * 1.0) and shrinks when count < buckets / 8.
 *
 * The table does not own the entries: it links them through e->next and
 * never frees them. It owns its bucket arrays and reports their
 * malloc_usable_size to *mem (the shard's memory counter).
 *
 * No locking here: the keyspace holds the shard mutex around every call. */
#ifndef PIER_TABLE_H
#define PIER_TABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "store/keyspace.h"

#define TABLE_MIN_BUCKETS 4u
#define TABLE_REHASH_EMPTY_VISITS 10

typedef struct table {
    kv **bucket[2];       /* bucket[1] != NULL <=> rehashing 0 -> 1 */
    uint64_t mask[2];     /* buckets - 1 */
    size_t used[2];
    uint64_t rehash_idx;  /* next bucket of table 0 to move */
    uint64_t seed;
    _Atomic size_t *mem;  /* bucket array bytes are added/removed here */
} table;

/* Called for each entry by table_each; return nonzero to stop early. The
 * callback must not modify the table. */
typedef int table_each_fn(void *arg, kv *e);
/* Called for each entry by table_scan; must not modify the table. */
typedef void table_visit_fn(void *arg, kv *e);

/* A small fast PRNG (splitmix64) for random sampling; *state is any value. */
static inline uint64_t store_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform-enough integer in [0, n), n > 0 (multiply-high, no division). */
static inline uint64_t store_rng_below(uint64_t *state, uint64_t n) {
    return (uint64_t)(((unsigned __int128)store_rng_next(state) * n) >> 64);
}

/* Initialise an empty table of TABLE_MIN_BUCKETS buckets. */
void table_init(table *t, uint64_t seed, _Atomic size_t *mem);
/* Free the bucket arrays (not the entries). The table is unusable after. */
void table_free(table *t);
/* Call free_entry on every entry (next is read before the call, so it may
 * free the entry), then reset the table to its initial empty size. */
void table_clear(table *t, void (*free_entry)(void *arg, kv *e), void *arg);

static inline size_t table_count(const table *t) {
    return t->used[0] + t->used[1];
}
static inline int table_rehashing(const table *t) {
    return t->bucket[1] != NULL;
}

/* Background upkeep for a table that gets no traffic (incremental rehash
 * only advances on operations): start a pending shrink, then do up to
 * `steps` rehash steps. */
void table_maintain(table *t, int steps);
/* Would table_maintain have anything to do? */
int table_needs_maintenance(const table *t);

/* Find key (h is its hash) and return the address of the link pointing to
 * its entry (a bucket slot or the previous entry's next field), or NULL.
 * *which receives the table (0/1) the entry is in. Performs one rehash step
 * first, so the link is valid until the next modifying call. */
kv **table_find_link(table *t, uint64_t h, const char *key, size_t klen,
                     int *which);

/* Link to a known entry e (compared by address; e must be in the table).
 * Does not rehash, so it is safe between other table calls. */
kv **table_link_of(table *t, uint64_t h, const kv *e, int *which);

/* Remove the entry *link points to (from a find in table `which`), then
 * start a shrink if the table became sparse. Does not free the entry. */
void table_unlink_at(table *t, kv **link, int which);

/* Insert e, whose key must not be present; h is its hash. Performs one
 * rehash step and starts a grow when the load reaches 1. */
void table_insert(table *t, uint64_t h, kv *e);

/* One step of a reverse-binary cursor scan (Redis SCAN semantics): visits
 * one bucket of the smaller table and all its expansions in the larger one
 * while rehashing, and returns the next cursor (0 = the scan is complete).
 * Every entry present for a whole scan is visited at least once, whatever
 * grows or shrinks happen between steps. Does not rehash. */
uint64_t table_scan(const table *t, uint64_t cursor, table_visit_fn *fn,
                    void *arg);

/* Visit every entry exactly once (stops when fn returns nonzero). Returns 1
 * if stopped early, 0 otherwise. */
int table_each(const table *t, table_each_fn *fn, void *arg);

/* A random entry: random non-empty bucket, then a random element of its
 * chain (so not exactly uniform over entries, as in Redis). NULL if empty. */
kv *table_random(const table *t, uint64_t *rng);

#endif
