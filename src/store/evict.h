/* evict.h - maxmemory eviction: Redis-style approximate LRU / LFU / TTL /
 * random eviction by sampling, with a pool of the best candidates.
 *
 * Each round samples maxmemory-samples keys from one random shard
 * (ks_evict_sample) into the pool, which keeps the EVICT_POOL_SIZE keys
 * with the highest scores seen so far across rounds; the best one is then
 * deleted (ks_evict_key). Keeping candidates across rounds is what makes a
 * small sample approximate true LRU well (Redis's observation).
 *
 * A pool belongs to one thread of control at a time (pier keeps one per
 * connection, created on its first eviction), so it needs no lock. Call
 * with no shard lock held: sampling and deleting lock one shard at a time. */
#ifndef PIER_EVICT_H
#define PIER_EVICT_H

#include <stddef.h>
#include <stdint.h>

#include "store/keyspace.h"

#define EVICT_POOL_SIZE 16

/* The policies, numbered like CFG_EVICT_ in server/config.h (Redis's
 * order), so the configured value can be passed straight through. */
enum evict_policy {
    EVICT_VOLATILE_LRU = 0,
    EVICT_VOLATILE_LFU,
    EVICT_VOLATILE_RANDOM,
    EVICT_VOLATILE_TTL,
    EVICT_ALLKEYS_LRU,
    EVICT_ALLKEYS_LFU,
    EVICT_ALLKEYS_RANDOM,
    EVICT_NOEVICTION
};

typedef struct evict_candidate {
    char *key;      /* malloc'd copy */
    size_t klen;
    uint64_t score; /* higher = evict first */
} evict_candidate;

typedef struct evict_pool {
    evict_candidate slot[EVICT_POOL_SIZE]; /* ascending score; best last */
    int n;
    int policy; /* the policy the scores were computed under; -1 = none */
} evict_pool;

evict_pool *evict_pool_new(void);
void evict_pool_free(evict_pool *pool); /* NULL is fine */

/* 1 for the LFU policies (the keyspace must keep LFU access bits). */
int evict_policy_is_lfu(int policy);

/* Evict one key under policy, sampling `samples` keys per round. Returns 1
 * when a key was deleted, 0 when nothing is evictable (noeviction, or no
 * key the policy may take). */
int evict_one(keyspace *ks, evict_pool *pool, int policy, int samples, int64_t now_ms);

#endif
