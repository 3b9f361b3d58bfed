/* table.c - chained hash table with incremental rehashing (see table.h). */
#include "store/table.h"

#include <malloc.h>
#include <string.h>

#include "lib/hash.h"
#include "lib/mem.h"

/* Random bucket probes before table_random falls back to a linear walk
 * (only reachable in pathological sparse states, but keeps it bounded). */
#define TABLE_RANDOM_PROBES 4096

static uint64_t entry_hash(const table *t, const kv *e) {
    return hash_bytes(e->data, e->klen, t->seed);
}

static void mem_add(table *t, size_t n) {
    atomic_fetch_add_explicit(t->mem, n, memory_order_relaxed);
}

static void mem_sub(table *t, size_t n) {
    atomic_fetch_sub_explicit(t->mem, n, memory_order_relaxed);
}

/* Zeroed bucket array of n (a power of two) slots, counted in *mem. */
static kv **alloc_buckets(table *t, uint64_t n) {
    kv **b = xcalloc((size_t)n, sizeof(kv *));
    mem_add(t, malloc_usable_size(b));
    return b;
}

static void free_buckets(table *t, kv **b) {
    if (!b) return;
    mem_sub(t, malloc_usable_size(b));
    free(b);
}

/* Smallest power of two >= n, at least TABLE_MIN_BUCKETS. */
static uint64_t bucket_count_for(size_t n) {
    uint64_t size = TABLE_MIN_BUCKETS;
    while (size < n && size < (UINT64_C(1) << 62)) size <<= 1;
    return size;
}

void table_init(table *t, uint64_t seed, _Atomic size_t *mem) {
    memset(t, 0, sizeof *t);
    t->seed = seed;
    t->mem = mem;
    t->bucket[0] = alloc_buckets(t, TABLE_MIN_BUCKETS);
    t->mask[0] = TABLE_MIN_BUCKETS - 1;
}

void table_free(table *t) {
    free_buckets(t, t->bucket[0]);
    free_buckets(t, t->bucket[1]);
    t->bucket[0] = t->bucket[1] = NULL;
    t->used[0] = t->used[1] = 0;
}

void table_clear(table *t, void (*free_entry)(void *arg, kv *e), void *arg) {
    for (int w = 0; w < 2; w++) {
        if (!t->bucket[w]) continue;
        for (uint64_t i = 0; i <= t->mask[w]; i++) {
            kv *e = t->bucket[w][i];
            while (e) {
                kv *next = e->next;
                free_entry(arg, e);
                e = next;
            }
        }
    }
    uint64_t seed = t->seed;
    _Atomic size_t *mem = t->mem;
    table_free(t);
    table_init(t, seed, mem);
}

/* Begin moving everything into a new table of `buckets` slots. Called only
 * when not already rehashing. */
static void start_resize(table *t, uint64_t buckets) {
    if (buckets == t->mask[0] + 1) return;
    t->bucket[1] = alloc_buckets(t, buckets);
    t->mask[1] = buckets - 1;
    t->used[1] = 0;
    t->rehash_idx = 0;
}

/* Table 0 is empty: table 1 becomes table 0. */
static void finish_rehash(table *t) {
    free_buckets(t, t->bucket[0]);
    t->bucket[0] = t->bucket[1];
    t->mask[0] = t->mask[1];
    t->used[0] = t->used[1];
    t->bucket[1] = NULL;
    t->mask[1] = 0;
    t->used[1] = 0;
    t->rehash_idx = 0;
}

/* Move the chain of table-0 bucket i into table 1. */
static void move_bucket(table *t, uint64_t i) {
    kv *e = t->bucket[0][i];
    while (e) {
        kv *next = e->next;
        uint64_t j = entry_hash(t, e) & t->mask[1];
        e->next = t->bucket[1][j];
        t->bucket[1][j] = e;
        t->used[0]--;
        t->used[1]++;
        e = next;
    }
    t->bucket[0][i] = NULL;
}

/* One incremental rehash step: move the next non-empty bucket, giving up
 * after a few empty ones so the cost per operation stays bounded. */
static void rehash_step(table *t) {
    int empty_left = TABLE_REHASH_EMPTY_VISITS;
    /* used[0] > 0 guarantees a non-empty bucket at or after rehash_idx. */
    while (t->used[0] > 0) {
        uint64_t i = t->rehash_idx++;
        if (t->bucket[0][i]) {
            move_bucket(t, i);
            break;
        }
        if (--empty_left == 0) return;
    }
    if (t->used[0] == 0) finish_rehash(t);
}

/* Walk a chain for key; length compared first so most mismatches never
 * reach memcmp (klen 0 skips it: key may then be NULL, which memcmp does
 * not allow even for 0 bytes). Returns the link to the entry or NULL. */
static kv **chain_find(kv **link, const char *key, size_t klen) {
    for (kv *e = *link; e; link = &e->next, e = *link) {
        if (e->klen == klen && (klen == 0 || memcmp(e->data, key, klen) == 0))
            return link;
    }
    return NULL;
}

kv **table_find_link(table *t, uint64_t h, const char *key, size_t klen,
                     int *which) {
    if (table_rehashing(t)) rehash_step(t);
    uint64_t i = h & t->mask[0];
    kv **link;
    /* Buckets of table 0 below rehash_idx are already empty. */
    if (!table_rehashing(t) || i >= t->rehash_idx) {
        link = chain_find(&t->bucket[0][i], key, klen);
        if (link) {
            *which = 0;
            return link;
        }
    }
    if (!table_rehashing(t)) return NULL;
    link = chain_find(&t->bucket[1][h & t->mask[1]], key, klen);
    *which = 1;
    return link;
}

static kv **chain_link_of(kv **link, const kv *e) {
    for (; *link; link = &(*link)->next) {
        if (*link == e) return link;
    }
    return NULL;
}

kv **table_link_of(table *t, uint64_t h, const kv *e, int *which) {
    kv **link = chain_link_of(&t->bucket[0][h & t->mask[0]], e);
    *which = 0;
    if (!link && table_rehashing(t)) {
        link = chain_link_of(&t->bucket[1][h & t->mask[1]], e);
        *which = 1;
    }
    return link;
}

static int should_shrink(const table *t) {
    uint64_t buckets = t->mask[0] + 1;
    return !table_rehashing(t) && buckets > TABLE_MIN_BUCKETS &&
           t->used[0] < buckets / 8;
}

/* Target load ~0.5 so a few inserts do not grow it straight back. */
static void start_shrink(table *t) {
    start_resize(t, bucket_count_for(t->used[0] * 2));
}

void table_unlink_at(table *t, kv **link, int which) {
    kv *e = *link;
    *link = e->next;
    e->next = NULL;
    t->used[which]--;
    if (should_shrink(t)) start_shrink(t);
}

int table_needs_maintenance(const table *t) {
    return table_rehashing(t) || should_shrink(t);
}

void table_maintain(table *t, int steps) {
    if (should_shrink(t)) start_shrink(t);
    while (steps-- > 0 && table_rehashing(t)) rehash_step(t);
}

void table_insert(table *t, uint64_t h, kv *e) {
    if (table_rehashing(t)) rehash_step(t);
    int w = table_rehashing(t) ? 1 : 0;
    uint64_t i = h & t->mask[w];
    e->next = t->bucket[w][i];
    t->bucket[w][i] = e;
    t->used[w]++;
    if (!table_rehashing(t) && t->used[0] >= t->mask[0] + 1)
        start_resize(t, bucket_count_for(t->used[0] * 2));
}

/* Bit-reverse a 64-bit word (swap ever larger groups, bytes last). */
static uint64_t reverse_bits64(uint64_t v) {
    v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
    v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
    v = ((v >> 4) & 0x0F0F0F0F0F0F0F0Full) | ((v & 0x0F0F0F0F0F0F0F0Full) << 4);
    return __builtin_bswap64(v);
}

/* Reverse-binary increment of the bits of v selected by mask: increments
 * the highest masked bit first, so that the cursor walks buckets in an
 * order where a bucket's expansions (grow) or contractions (shrink) are
 * contiguous; this is what makes SCAN robust to resizes between calls. */
static uint64_t rev_increment(uint64_t v, uint64_t mask) {
    v |= ~mask;
    v = reverse_bits64(v);
    v++;
    return reverse_bits64(v);
}

static void visit_chain(kv *e, table_visit_fn *fn, void *arg) {
    while (e) {
        kv *next = e->next;
        fn(arg, e);
        e = next;
    }
}

uint64_t table_scan(const table *t, uint64_t v, table_visit_fn *fn,
                    void *arg) {
    if (!table_rehashing(t)) {
        visit_chain(t->bucket[0][v & t->mask[0]], fn, arg);
        return rev_increment(v, t->mask[0]);
    }
    int small = t->mask[0] <= t->mask[1] ? 0 : 1;
    int large = 1 - small;
    uint64_t ms = t->mask[small], ml = t->mask[large];
    visit_chain(t->bucket[small][v & ms], fn, arg);
    /* All buckets of the larger table that expand the small-table bucket
     * (the same low bits, every combination of the extra high bits). */
    do {
        visit_chain(t->bucket[large][v & ml], fn, arg);
        v = rev_increment(v, ml);
    } while (v & (ms ^ ml));
    return v;
}

int table_each(const table *t, table_each_fn *fn, void *arg) {
    for (int w = 0; w < 2; w++) {
        if (!t->bucket[w]) continue;
        for (uint64_t i = 0; i <= t->mask[w]; i++) {
            for (kv *e = t->bucket[w][i]; e; e = e->next) {
                if (fn(arg, e)) return 1;
            }
        }
    }
    return 0;
}

/* Slot `i` of the virtual concatenation table0 ++ table1. */
static kv *virtual_bucket(const table *t, uint64_t i) {
    uint64_t size0 = t->mask[0] + 1;
    return i < size0 ? t->bucket[0][i] : t->bucket[1][i - size0];
}

static kv *random_chain_element(kv *head, uint64_t *rng) {
    uint64_t len = 0;
    for (kv *e = head; e; e = e->next) len++;
    uint64_t k = store_rng_below(rng, len);
    while (k--) head = head->next;
    return head;
}

kv *table_random(const table *t, uint64_t *rng) {
    if (table_count(t) == 0) return NULL;
    uint64_t size0 = t->mask[0] + 1;
    uint64_t total = size0 + (table_rehashing(t) ? t->mask[1] + 1 : 0);
    /* Buckets of table 0 below rehash_idx are known empty: skip them. */
    uint64_t first = table_rehashing(t) ? t->rehash_idx : 0;
    uint64_t span = total - first;
    for (int probe = 0; probe < TABLE_RANDOM_PROBES; probe++) {
        kv *head = virtual_bucket(t, first + store_rng_below(rng, span));
        if (head) return random_chain_element(head, rng);
    }
    uint64_t start = store_rng_below(rng, span);
    for (uint64_t k = 0; k < span; k++) {
        kv *head = virtual_bucket(t, first + (start + k) % span);
        if (head) return random_chain_element(head, rng);
    }
    return NULL; /* unreachable while count > 0 */
}
