/* evict.c - maxmemory eviction by sampling (contract in evict.h). */
#include "store/evict.h"

#include <string.h>

#include "lib/mem.h"
#include "store/table.h"

#define SAMPLES_MAX 64      /* cap on maxmemory-samples per round */
#define EVICT_ROUNDS_MAX 32 /* pool refills per evict_one before giving up */
#define SHARDS_PER_ROUND 8  /* shards one sampling round may visit */

evict_pool *evict_pool_new(void) {
    evict_pool *pool = xcalloc(1, sizeof(evict_pool));
    pool->policy = -1;
    return pool;
}

static void drop_slot(evict_pool *pool, int i) {
    free(pool->slot[i].key);
    memmove(&pool->slot[i], &pool->slot[i + 1], (size_t)(pool->n - i - 1) * sizeof pool->slot[0]);
    pool->n--;
}

void evict_pool_free(evict_pool *pool) {
    if (!pool) return;
    while (pool->n) drop_slot(pool, pool->n - 1);
    free(pool);
}

int evict_policy_is_lfu(int policy) {
    return policy == EVICT_VOLATILE_LFU || policy == EVICT_ALLKEYS_LFU;
}

static int policy_volatile_only(int policy) {
    return policy == EVICT_VOLATILE_LRU || policy == EVICT_VOLATILE_LFU ||
           policy == EVICT_VOLATILE_RANDOM || policy == EVICT_VOLATILE_TTL;
}

static int policy_order(int policy) {
    switch (policy) {
    case EVICT_VOLATILE_LRU:
    case EVICT_ALLKEYS_LRU: return KS_EVICT_LRU;
    case EVICT_VOLATILE_LFU:
    case EVICT_ALLKEYS_LFU: return KS_EVICT_LFU;
    case EVICT_VOLATILE_TTL: return KS_EVICT_TTL;
    default: return KS_EVICT_RANDOM;
    }
}

static int find_key(const evict_pool *pool, const char *key, size_t klen) {
    for (int i = 0; i < pool->n; i++)
        if (pool->slot[i].klen == klen && (klen == 0 || !memcmp(pool->slot[i].key, key, klen)))
            return i;
    return -1;
}

/* ks_candidate_fn: keep the key if it beats the pool's worst (or there is
 * room), ordered by score. A key already pooled gets its fresh score. */
static void pool_offer(void *arg, const char *key, size_t klen, uint64_t score) {
    evict_pool *pool = arg;
    int dup = find_key(pool, key, klen);
    if (dup >= 0) drop_slot(pool, dup);
    if (pool->n == EVICT_POOL_SIZE) {
        if (score <= pool->slot[0].score) return;
        drop_slot(pool, 0);
    }
    int at = pool->n;
    while (at > 0 && pool->slot[at - 1].score > score) at--;
    memmove(&pool->slot[at + 1], &pool->slot[at], (size_t)(pool->n - at) * sizeof pool->slot[0]);
    pool->slot[at] = (evict_candidate){xmemdup(key, klen), klen, score};
    pool->n++;
}

/* Delete the best pooled key that still exists. Returns 1 on success. */
static int evict_best(keyspace *ks, evict_pool *pool, int vol, int64_t now_ms) {
    while (pool->n) {
        evict_candidate *best = &pool->slot[pool->n - 1];
        int gone = ks_evict_key(ks, best->key, best->klen, vol, now_ms);
        drop_slot(pool, pool->n - 1);
        if (gone) return 1;
    }
    return 0;
}

/* Offer `count` keys to the pool, from as many random shards as it takes
 * (with many shards, one shard often holds fewer keys than the sample
 * size, as with Redis's sampling over a small dict). Returns keys sampled. */
static size_t sample_round(keyspace *ks, evict_pool *pool, int order, int vol, size_t count,
                           int64_t now_ms) {
    size_t got = 0;
    for (int shards = 0; got < count && shards < SHARDS_PER_ROUND; shards++) {
        size_t n = ks_evict_sample(ks, order, vol, count - got, now_ms, pool_offer, pool);
        if (n == 0) break;
        got += n;
    }
    return got;
}

int evict_one(keyspace *ks, evict_pool *pool, int policy, int samples, int64_t now_ms) {
    if (policy == EVICT_NOEVICTION || policy < 0 || policy > EVICT_NOEVICTION) return 0;
    int order = policy_order(policy), vol = policy_volatile_only(policy);
    /* Random policies need no memory of past samples: one sample, evict. */
    size_t count = order == KS_EVICT_RANDOM ? 1
                   : samples < 1            ? 1
                   : samples > SAMPLES_MAX  ? SAMPLES_MAX
                                            : (size_t)samples;
    /* Scores of different policies (idle time, LFU counter, TTL) cannot
     * be compared, and random policies keep no memory of past samples. */
    if (order == KS_EVICT_RANDOM || pool->policy != policy) {
        while (pool->n) drop_slot(pool, 0);
        pool->policy = policy;
    }
    for (int round = 0; round < EVICT_ROUNDS_MAX; round++) {
        size_t got = sample_round(ks, pool, order, vol, count, now_ms);
        if (got == 0 && pool->n == 0) return 0;
        if (evict_best(ks, pool, vol, now_ms)) return 1;
    }
    return 0;
}
