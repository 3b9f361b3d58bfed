/* test_keyspace.c - unit tests for the keyspace, its hash table and the
 * keyed hash. Times are passed explicitly (now_ms), so no test sleeps. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lib/clock.h"
#include "lib/hash.h"
#include "store/keyspace.h"
#include "store/table.h"

#define NOW 1700000000000LL /* a fixed "wall clock" for the tests */

static int make_key(char *buf, size_t size, const char *prefix, int i) {
    return snprintf(buf, size, "%s:%06d", prefix, i);
}

/* used_memory after freeing everything should return to where it was.
 * Exact under ASan (usable size == requested size); with glibc a re-made
 * bucket array may land in a chunk of another usable size, hence a small
 * tolerance (accounting bugs show up as far larger or wrapped values). */
static int mem_near(size_t got, size_t want) {
    size_t diff = got > want ? got - want : want - got;
    if (diff > 4096) fprintf(stderr, "  memory %zu, expected ~%zu\n", got, want);
    return diff <= 4096;
}

static kv *set_str(keyspace *ks, const char *key, const char *val) {
    return ks_set_string(ks, key, strlen(key), val, strlen(val), 0, NOW);
}

static kv *find(keyspace *ks, const char *key, int64_t now) {
    return ks_find(ks, key, strlen(key), now);
}

/* Number of the "prefix:NNNNNN" key e, or -1 for another prefix. */
static int key_number(const kv *e, const char *prefix) {
    size_t plen = strlen(prefix);
    if (kv_klen(e) != plen + 7 || memcmp(kv_key(e), prefix, plen) != 0 ||
        kv_key(e)[plen] != ':')
        return -1;
    int n = 0;
    for (size_t i = plen + 1; i < kv_klen(e); i++) n = n * 10 + (kv_key(e)[i] - '0');
    return n;
}

/* ------------------------------------------------------------------ */
/* hash                                                                */

static void test_hash_seeds_and_lengths(void) {
    uint8_t data[64];
    for (int i = 0; i < 64; i++) data[i] = (uint8_t)(i * 37 + 1);
    uint64_t prev = 0;
    for (size_t len = 0; len <= 64; len++) {
        /* Exactly-sized heap copy so ASan flags any read past the end. */
        uint8_t *p = malloc(len ? len : 1);
        if (len) memcpy(p, data, len);
        uint64_t a = hash_bytes(p, len, 1), b = hash_bytes(p, len, 2);
        CHECK(a != b);
        CHECK(a == hash_bytes(p, len, 1)); /* deterministic */
        CHECK(a != prev);                  /* prefixes differ */
        prev = a;
        free(p);
    }
    CHECK(hash_bytes("", 0, 7) != hash_bytes("\0", 1, 7));
    CHECK(hash_bytes("\0", 1, 7) != hash_bytes("\0\0", 2, 7));
    CHECK(hash_random_seed() != hash_random_seed());
}

/* Flipping one input bit should flip about half of the output bits, in the
 * low bits (bucket index) and the top bits (shard) alike. */
static void test_hash_avalanche(void) {
    for (size_t len = 1; len <= 64; len *= 2) {
        uint8_t key[64];
        for (size_t i = 0; i < len; i++) key[i] = (uint8_t)('a' + i % 26);
        uint64_t base = hash_bytes(key, len, 12345);
        long flipped = 0, low = 0, high = 0, trials = 0;
        for (size_t bit = 0; bit < len * 8; bit++) {
            key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            uint64_t d = base ^ hash_bytes(key, len, 12345);
            key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            flipped += __builtin_popcountll(d);
            low += __builtin_popcountll(d & 0xFF);
            high += __builtin_popcountll(d >> 56);
            trials++;
        }
        double avg = (double)flipped / (double)trials;
        CHECK(avg > 26 && avg < 38);
        CHECK(low > trials * 2 && high > trials * 2); /* ~4 of 8 bits */
    }
}

/* ------------------------------------------------------------------ */
/* basic operations                                                    */

static void test_set_find_delete(void) {
    keyspace *ks = ks_create(42);
    kv *e = set_str(ks, "foo", "bar");
    CHECK(e != NULL);
    CHECK_MEM(kv_key(e), kv_klen(e), "foo");
    CHECK_MEM(kv_sval(e), kv_slen(e), "bar");
    CHECK_EQ_LL(kv_type(e), KV_STRING);
    e = find(ks, "foo", NOW);
    CHECK(e && kv_slen(e) == 3);
    CHECK(find(ks, "fo", NOW) == NULL);
    CHECK(find(ks, "fooo", NOW) == NULL);
    CHECK_EQ_LL(ks_count(ks), 1);

    /* Overwrite: same size, smaller, much bigger, empty. */
    set_str(ks, "foo", "baz");
    CHECK_MEM(kv_sval(find(ks, "foo", NOW)), 3, "baz");
    set_str(ks, "foo", "b");
    CHECK_MEM(kv_sval(find(ks, "foo", NOW)), 1, "b");
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    set_str(ks, "foo", big);
    e = find(ks, "foo", NOW);
    CHECK(e && kv_slen(e) == sizeof big - 1 && kv_sval(e)[500] == 'x');
    set_str(ks, "foo", "");
    CHECK_EQ_LL(kv_slen(find(ks, "foo", NOW)), 0);
    CHECK_EQ_LL(ks_count(ks), 1);

    /* SET with a value pointing into the current value (in place). */
    set_str(ks, "foo", "abcdef");
    e = find(ks, "foo", NOW);
    e = ks_set_string(ks, "foo", 3, kv_sval(e) + 2, 3, 0, NOW);
    CHECK_MEM(kv_sval(e), kv_slen(e), "cde");

    CHECK_EQ_LL(ks_delete(ks, "foo", 3, NOW), 1);
    CHECK_EQ_LL(ks_delete(ks, "foo", 3, NOW), 0);
    CHECK(find(ks, "foo", NOW) == NULL);
    CHECK_EQ_LL(ks_count(ks), 0);
    ks_destroy(ks);
}

static void test_binary_keys(void) {
    keyspace *ks = ks_create(7);
    ks_set_string(ks, "a\0b", 3, "1", 1, 0, NOW);
    ks_set_string(ks, "a\0c", 3, "2", 1, 0, NOW);
    ks_set_string(ks, "a", 1, "3", 1, 0, NOW);
    ks_set_string(ks, "", 0, "4", 1, 0, NOW);
    ks_set_string(ks, NULL, 0, "5", 1, 0, NOW); /* same empty key */
    ks_set_string(ks, "v\0", 2, "\0\0\0", 3, 0, NOW);
    CHECK_EQ_LL(ks_count(ks), 5);
    kv *e = ks_find(ks, "a\0b", 3, NOW);
    CHECK(e && kv_sval(e)[0] == '1');
    e = ks_find(ks, "a\0c", 3, NOW);
    CHECK(e && kv_sval(e)[0] == '2');
    e = ks_find(ks, "a", 1, NOW);
    CHECK(e && kv_sval(e)[0] == '3');
    e = ks_find(ks, "", 0, NOW);
    CHECK(e && kv_sval(e)[0] == '5');
    e = ks_find(ks, "v\0", 2, NOW);
    CHECK(e && kv_slen(e) == 3 && memcmp(kv_sval(e), "\0\0\0", 3) == 0);
    CHECK(ks_find(ks, "a\0", 2, NOW) == NULL);
    CHECK_EQ_LL(ks_delete(ks, "", 0, NOW), 1);
    CHECK_EQ_LL(ks_count(ks), 4);
    ks_destroy(ks);
}

static void test_string_resize(void) {
    keyspace *ks = ks_create(9);
    kv *e = set_str(ks, "k", "hello");
    ks_set_expire(ks, e, NOW + 5000);
    e = ks_string_resize(ks, e, 100);
    CHECK_EQ_LL(kv_slen(e), 100);
    CHECK(memcmp(kv_sval(e), "hello", 5) == 0);
    int zeros = 1;
    for (int i = 5; i < 100; i++) zeros &= kv_sval(e)[i] == 0;
    CHECK(zeros);
    CHECK(find(ks, "k", NOW) == e);
    CHECK_EQ_LL(ks_get_expire(ks, e), NOW + 5000);

    /* APPEND one byte at a time: amortised, few moves. */
    int moves = 0;
    for (int i = 0; i < 2000; i++) {
        size_t len = kv_slen(e);
        kv *ne = ks_string_resize(ks, e, len + 1);
        if (ne != e) moves++;
        e = ne;
        kv_sval(e)[len] = (char)('a' + i % 26);
    }
    CHECK(moves < 30);
    CHECK_EQ_LL(kv_slen(e), 2100);
    CHECK(kv_sval(e)[100] == 'a' && kv_sval(e)[2099] == (char)('a' + 1999 % 26));
    CHECK(find(ks, "k", NOW) == e);
    CHECK_EQ_LL(ks_get_expire(ks, e), NOW + 5000);

    /* Shrink (may move to release memory), content and TTL kept. */
    e = ks_string_resize(ks, e, 3);
    CHECK(memcmp(kv_sval(e), "hel", 3) == 0 && kv_slen(e) == 3);
    CHECK(find(ks, "k", NOW) == e);
    CHECK_EQ_LL(ks_get_expire(ks, e), NOW + 5000);
    /* Grow again after a shrink in place: the new bytes are zero. */
    e = ks_string_resize(ks, e, 6);
    CHECK(memcmp(kv_sval(e), "hel\0\0\0", 6) == 0);

    /* The volatile slot follows the move: active expiry finds the entry. */
    ks_set_expire(ks, e, NOW - 1);
    CHECK_EQ_LL(ks_active_expire(ks, 0, KS_SHARDS, NOW, clock_mono_us() + 10000000), 1);
    CHECK_EQ_LL(ks_count(ks), 0);
    CHECK_EQ_LL(ks_volatile_count(ks), 0);

    /* Resize entries that share a chain with others (link fix-up). */
    char key[32];
    for (int i = 0; i < 200; i++) {
        make_key(key, sizeof key, "r", i);
        set_str(ks, key, "v");
    }
    for (int i = 0; i < 200; i++) {
        make_key(key, sizeof key, "r", i);
        kv *x = find(ks, key, NOW);
        x = ks_string_resize(ks, x, 64 + (size_t)i);
        memset(kv_sval(x), 'z', kv_slen(x));
    }
    for (int i = 0; i < 200; i++) {
        make_key(key, sizeof key, "r", i);
        kv *x = find(ks, key, NOW);
        CHECK(x && kv_slen(x) == 64 + (size_t)i && kv_sval(x)[63] == 'z');
    }
    ks_destroy(ks);
}

/* ------------------------------------------------------------------ */
/* expiry                                                              */

typedef struct hook_log {
    int calls;
    char last[64];
} hook_log;

static void record_hook(void *arg, const char *key, size_t klen) {
    hook_log *log = arg;
    log->calls++;
    size_t n = klen < sizeof log->last - 1 ? klen : sizeof log->last - 1;
    memcpy(log->last, key, n);
    log->last[n] = 0;
}

static void test_expire_lazy(void) {
    keyspace *ks = ks_create(11);
    hook_log log = {0};
    ks_set_expire_hook(ks, record_hook, &log);
    kv *e = set_str(ks, "t", "v");
    CHECK_EQ_LL(ks_get_expire(ks, e), 0);
    ks_set_expire(ks, e, NOW + 1000);
    CHECK_EQ_LL(ks_get_expire(ks, e), NOW + 1000);
    CHECK_EQ_LL(ks_volatile_count(ks), 1);
    CHECK(find(ks, "t", NOW) == e);
    CHECK(find(ks, "t", NOW + 1000) == e); /* alive at its expiry instant */
    CHECK_EQ_LL(log.calls, 0);
    CHECK(find(ks, "t", NOW + 1001) == NULL);
    CHECK_EQ_LL(log.calls, 1);
    CHECK(strcmp(log.last, "t") == 0);
    CHECK_EQ_LL(ks_expired_total(ks), 1);
    CHECK_EQ_LL(ks_count(ks), 0);
    CHECK_EQ_LL(ks_volatile_count(ks), 0);

    /* Persist. */
    e = set_str(ks, "p", "v");
    ks_set_expire(ks, e, NOW + 10);
    ks_set_expire(ks, e, 0);
    CHECK_EQ_LL(ks_volatile_count(ks), 0);
    CHECK(find(ks, "p", NOW + 100000) == e);

    /* An expired key is absent for DEL (returns 0) and SET (new key). */
    ks_set_expire(ks, e, NOW - 5);
    CHECK_EQ_LL(ks_delete(ks, "p", 1, NOW), 0);
    CHECK_EQ_LL(log.calls, 2);
    e = set_str(ks, "q", "v");
    ks_set_expire(ks, e, NOW - 5);
    e = ks_set_string(ks, "q", 1, "w", 1, 1, NOW); /* keep_ttl: none left */
    CHECK_EQ_LL(ks_get_expire(ks, e), 0);
    CHECK_EQ_LL(log.calls, 3);
    CHECK_EQ_LL(ks_expired_total(ks), 3);
    CHECK_EQ_LL(ks_count(ks), 1);
    CHECK_EQ_LL(ks_volatile_count(ks), 0);
    ks_destroy(ks);
}

static void test_volatile_bookkeeping(void) {
    keyspace *ks = ks_create(12);
    char key[32];
    for (int i = 0; i < 10; i++) {
        make_key(key, sizeof key, "v", i);
        ks_set_expire(ks, set_str(ks, key, "x"), NOW + 1000 + i);
    }
    CHECK_EQ_LL(ks_volatile_count(ks), 10);
    CHECK_EQ_LL(ks_delete(ks, "v:000000", 8, NOW), 1);
    CHECK_EQ_LL(ks_volatile_count(ks), 9);
    /* Overwrite without keep_ttl drops the TTL, with keep_ttl keeps it. */
    set_str(ks, "v:000001", "y");
    CHECK_EQ_LL(ks_volatile_count(ks), 8);
    char big[300] = {0};
    kv *e = ks_set_string(ks, "v:000002", 8, big, sizeof big, 1, NOW);
    CHECK_EQ_LL(ks_volatile_count(ks), 8);
    CHECK_EQ_LL(ks_get_expire(ks, e), NOW + 1002);
    e = ks_set_string(ks, "v:000003", 8, "z", 1, 1, NOW);
    CHECK_EQ_LL(ks_get_expire(ks, e), NOW + 1003);
    /* Persist. */
    ks_set_expire(ks, find(ks, "v:000004", NOW), 0);
    CHECK_EQ_LL(ks_volatile_count(ks), 7);
    /* Rename a volatile key: TTL travels. */
    e = ks_rename(ks, "v:000005", 8, "w:000005", 8, NOW);
    CHECK_EQ_LL(ks_get_expire(ks, e), NOW + 1005);
    CHECK_EQ_LL(ks_volatile_count(ks), 7);
    /* Every remaining back index still agrees with its TTL. */
    for (int i = 6; i < 10; i++) {
        make_key(key, sizeof key, "v", i);
        CHECK_EQ_LL(ks_get_expire(ks, find(ks, key, NOW)), NOW + 1000 + i);
    }
    CHECK_EQ_LL(ks_get_expire(ks, find(ks, "v:000002", NOW)), NOW + 1002);
    ks_destroy(ks);
}

static void test_rename(void) {
    keyspace *ks = ks_create(13);
    set_str(ks, "src", "value");
    kv *e = ks_rename(ks, "src", 3, "dst", 3, NOW);
    CHECK_MEM(kv_key(e), kv_klen(e), "dst");
    CHECK_MEM(kv_sval(e), kv_slen(e), "value");
    CHECK(find(ks, "src", NOW) == NULL);
    CHECK(find(ks, "dst", NOW) == e);
    CHECK_EQ_LL(ks_count(ks), 1);

    /* Over an existing volatile dst: dst's TTL and slot go away, src's
     * (none) is kept. */
    kv *d = set_str(ks, "old", "o");
    ks_set_expire(ks, d, NOW + 99);
    CHECK_EQ_LL(ks_volatile_count(ks), 1);
    e = ks_rename(ks, "dst", 3, "old", 3, NOW);
    CHECK_MEM(kv_sval(e), kv_slen(e), "value");
    CHECK_EQ_LL(ks_get_expire(ks, e), 0);
    CHECK_EQ_LL(ks_volatile_count(ks), 0);
    CHECK_EQ_LL(ks_count(ks), 1);

    /* Volatile src over volatile dst. */
    ks_set_expire(ks, e, NOW + 7);
    d = set_str(ks, "d2", "x");
    ks_set_expire(ks, d, NOW + 8);
    e = ks_rename(ks, "old", 3, "d2", 2, NOW);
    CHECK_EQ_LL(ks_get_expire(ks, e), NOW + 7);
    CHECK_EQ_LL(ks_volatile_count(ks), 1);
    CHECK_EQ_LL(ks_count(ks), 1);
    CHECK(ks_rename(ks, "nope", 4, "x", 1, NOW) == NULL);

    /* Many renames across shards keep count and memory consistent. */
    size_t base_mem = ks_used_memory(ks);
    char a[32], b[32];
    for (int i = 0; i < 500; i++) {
        make_key(a, sizeof a, "a", i);
        set_str(ks, a, "payload");
    }
    for (int i = 0; i < 500; i++) {
        make_key(a, sizeof a, "a", i);
        make_key(b, sizeof b, "b", i);
        ks_rename(ks, a, strlen(a), b, strlen(b), NOW);
    }
    CHECK_EQ_LL(ks_count(ks), 501);
    for (int i = 0; i < 500; i++) {
        make_key(b, sizeof b, "b", i);
        CHECK_EQ_LL(ks_delete(ks, b, strlen(b), NOW), 1);
    }
    CHECK_EQ_LL(ks_count(ks), 1);
    CHECK(ks_used_memory(ks) < base_mem + 16384);
    ks_destroy(ks);
}

/* ------------------------------------------------------------------ */
/* objects                                                             */

typedef struct fake_obj {
    size_t bytes;
} fake_obj;

static int objs_freed;

static void fake_free(void *obj) {
    objs_freed++;
    free(obj);
}

static size_t fake_mem(const void *obj) {
    return ((const fake_obj *)obj)->bytes;
}

static fake_obj *fake_new(size_t bytes) {
    fake_obj *o = malloc(sizeof *o);
    o->bytes = bytes;
    return o;
}

static void test_objects(void) {
    keyspace *ks = ks_create(14);
    kv_type_ops ops = {.name = "fake", .free_obj = fake_free, .mem_obj = fake_mem, .snap_tag = 7};
    ks_register_type(ks, KV_STREAM, &ops);
    objs_freed = 0;
    size_t base = ks_used_memory(ks);

    fake_obj *o = fake_new(1000);
    kv *e = ks_set_object(ks, "s", 1, KV_STREAM, o, 0, NOW);
    CHECK_EQ_LL(kv_type(e), KV_STREAM);
    CHECK(kv_object(e) == o);
    CHECK(ks_used_memory(ks) >= base + 1000);
    e = ks_find(ks, "s", 1, NOW);
    CHECK(e && kv_object(e) == o);

    /* Setting the same object again must not free it. */
    ks_set_object(ks, "s", 1, KV_STREAM, o, 0, NOW);
    CHECK_EQ_LL(objs_freed, 0);
    /* Replacing with another object frees the old one. */
    fake_obj *o2 = fake_new(10);
    ks_set_object(ks, "s", 1, KV_STREAM, o2, 0, NOW);
    CHECK_EQ_LL(objs_freed, 1);
    /* The object grows; the next lookup re-counts it. */
    o2->bytes = 5000;
    ks_find(ks, "s", 1, NOW);
    CHECK(ks_used_memory(ks) >= base + 5000);
    /* Rename moves ownership (no free) and the counted bytes. */
    e = ks_rename(ks, "s", 1, "s2", 2, NOW);
    CHECK_EQ_LL(objs_freed, 1);
    CHECK(kv_object(e) == o2);
    o2->bytes = 7000; /* grows again, then the key is deleted unseen */
    /* A string SET over the object frees it and its bytes. */
    ks_set_string(ks, "s2", 2, "str", 3, 0, NOW);
    CHECK_EQ_LL(objs_freed, 2);
    CHECK(ks_used_memory(ks) < base + 1000);
    ks_delete(ks, "s2", 2, NOW);
    CHECK(mem_near(ks_used_memory(ks), base));

    /* String -> object, delete, flush. */
    set_str(ks, "x", "y");
    ks_set_object(ks, "x", 1, KV_STREAM, fake_new(50), 0, NOW);
    CHECK_EQ_LL(kv_type(ks_find(ks, "x", 1, NOW)), KV_STREAM);
    ks_delete(ks, "x", 1, NOW);
    CHECK_EQ_LL(objs_freed, 3);
    ks_set_object(ks, "y", 1, KV_STREAM, fake_new(50), 0, NOW);
    ks_set_object(ks, "z", 1, KV_STREAM, fake_new(50), 0, NOW);
    ks_flush(ks);
    CHECK_EQ_LL(objs_freed, 5);
    CHECK(mem_near(ks_used_memory(ks), base));
    ks_set_object(ks, "w", 1, KV_STREAM, fake_new(50), 0, NOW);
    ks_destroy(ks); /* frees w */
    CHECK_EQ_LL(objs_freed, 6);
}

/* The registry of types: lookups by number and by snapshot tag, TYPE's
 * name, and nothing for an unregistered type. */
static void test_type_registry(void) {
    keyspace *ks = ks_create(15);
    CHECK(ks_type_ops(ks, KV_STRING) == NULL);
    CHECK(ks_type_ops(ks, -1) == NULL && ks_type_ops(ks, KV_NTYPES) == NULL);
    CHECK(ks_type_by_snap_tag(ks, 0) == NULL);
    kv *e = set_str(ks, "k", "v");
    CHECK(!strcmp(ks_type_name(ks, e), "none"));
    kv_type_ops str = {.name = "text", .snap_tag = 3};
    kv_type_ops obj = {.name = "thing", .free_obj = fake_free, .mem_obj = fake_mem, .snap_tag = 9};
    ks_register_type(ks, KV_STRING, &str);
    ks_register_type(ks, KV_STREAM, &obj);
    CHECK(!strcmp(ks_type_name(ks, ks_find(ks, "k", 1, NOW)), "text"));
    CHECK(!strcmp(ks_type_ops(ks, KV_STREAM)->name, "thing"));
    CHECK(ks_type_by_snap_tag(ks, 9) == ks_type_ops(ks, KV_STREAM));
    CHECK(ks_type_by_snap_tag(ks, 3) == ks_type_ops(ks, KV_STRING));
    CHECK(ks_type_by_snap_tag(ks, 4) == NULL);
    ks_register_type(ks, KV_STREAM, &obj); /* registering again is allowed */
    ks_destroy(ks);
}

/* ------------------------------------------------------------------ */
/* volume                                                              */

static void test_many_keys(void) {
    keyspace *ks = ks_create(15);
    size_t base = ks_used_memory(ks);
    enum { N = 100000 };
    char key[32];
    for (int i = 0; i < N; i++) {
        int n = make_key(key, sizeof key, "key", i);
        ks_set_string(ks, key, (size_t)n, "0123456789abcdef", 16, 0, NOW);
    }
    CHECK_EQ_LL(ks_count(ks), N);
    size_t per_key = (ks_used_memory(ks) - base) / N;
    /* 24 header + 10 key + 16 value ~ 50 bytes, plus the bucket slot. */
    CHECK(per_key >= 50 && per_key < 120);
    int found = 0;
    for (int i = 0; i < N; i++) {
        int n = make_key(key, sizeof key, "key", i);
        kv *e = ks_find(ks, key, (size_t)n, NOW);
        found += e && kv_slen(e) == 16;
    }
    CHECK_EQ_LL(found, N);
    for (int i = 0; i < N; i += 2) {
        int n = make_key(key, sizeof key, "key", i);
        CHECK(ks_delete(ks, key, (size_t)n, NOW) == 1);
    }
    CHECK_EQ_LL(ks_count(ks), N / 2);
    for (int i = 1; i < N; i += 2) {
        int n = make_key(key, sizeof key, "key", i);
        CHECK(ks_delete(ks, key, (size_t)n, NOW) == 1);
    }
    CHECK_EQ_LL(ks_count(ks), 0);
    /* Idle shards finish their shrinks through the periodic upkeep. */
    CHECK(ks_used_memory(ks) > base + 1024);
    for (int i = 0; i < 100; i++)
        ks_active_expire(ks, 0, KS_SHARDS, NOW, clock_mono_us() + 1000000);
    CHECK(mem_near(ks_used_memory(ks), base));
    ks_destroy(ks);
}

/* ------------------------------------------------------------------ */
/* SCAN                                                                */

typedef struct seen_set {
    const char *prefix;
    int *seen; /* per key number */
    int size;
    int other;
} seen_set;

static void mark_seen(void *arg, const kv *e) {
    seen_set *s = arg;
    int n = key_number(e, s->prefix);
    if (n >= 0 && n < s->size)
        s->seen[n]++;
    else
        s->other++;
}

static void insert_range(keyspace *ks, const char *prefix, int from, int to) {
    char key[32];
    for (int i = from; i < to; i++) {
        int n = make_key(key, sizeof key, prefix, i);
        ks_set_string(ks, key, (size_t)n, "v", 1, 0, NOW);
    }
}

static void delete_range(keyspace *ks, const char *prefix, int from, int to) {
    char key[32];
    for (int i = from; i < to; i++) {
        int n = make_key(key, sizeof key, prefix, i);
        ks_delete(ks, key, (size_t)n, NOW);
    }
}

static int count_unseen(const seen_set *s) {
    int missing = 0;
    for (int i = 0; i < s->size; i++) missing += s->seen[i] == 0;
    return missing;
}

static void test_scan_full(void) {
    keyspace *ks = ks_create(16);
    enum { N = 5000 };
    seen_set s = {"s", calloc(N, sizeof(int)), N, 0};
    /* Empty keyspace: one call finishes. */
    CHECK_EQ_LL(ks_scan(ks, 0, 10, NOW, mark_seen, &s), 0);
    insert_range(ks, "s", 0, N);
    /* One expired key is skipped. */
    ks_set_expire(ks, set_str(ks, "gone", "x"), NOW - 1);
    uint64_t cur = 0;
    int calls = 0;
    do {
        cur = ks_scan(ks, cur, 10, NOW, mark_seen, &s);
        calls++;
    } while (cur != 0 && calls < 100000);
    CHECK_EQ_LL(count_unseen(&s), 0);
    CHECK_EQ_LL(s.other, 0);
    CHECK(calls > 100); /* count bounds the work per call */
    CHECK_EQ_LL(ks_count(ks), N + 1); /* scan does not delete */
    free(s.seen);
    ks_destroy(ks);
}

/* Scan with COUNT 3 while mutate() runs between calls; every key of the
 * "s" range present throughout must be seen. */
static void scan_while(keyspace *ks, int stable,
                       void (*mutate)(keyspace *, int), const char *what) {
    seen_set s = {"s", calloc((size_t)stable, sizeof(int)), stable, 0};
    uint64_t cur = 0;
    int calls = 0;
    do {
        cur = ks_scan(ks, cur, 3, NOW, mark_seen, &s);
        mutate(ks, calls++);
    } while (cur != 0 && calls < 1000000);
    int missing = count_unseen(&s);
    if (missing) fprintf(stderr, "  scan while %s: %d keys missed\n", what, missing);
    CHECK_EQ_LL(missing, 0);
    free(s.seen);
}

/* Bounded: a scan of COUNT 3 can never finish if the keyspace keeps
 * growing faster than it scans. */
static void grow_step(keyspace *ks, int call) {
    if (call < 1000) insert_range(ks, "g", call * 40, call * 40 + 40);
}

static void shrink_step(keyspace *ks, int call) {
    delete_range(ks, "g", call * 40, call * 40 + 40);
}

static void churn_step(keyspace *ks, int call) {
    /* Alternate phases of mass inserts and mass deletes. */
    int phase = (call / 50) % 2;
    int base = (call % 50) * 400;
    if (phase == 0)
        insert_range(ks, "g", base, base + 400);
    else
        delete_range(ks, "g", base, base + 400);
}

static void test_scan_while_growing(void) {
    keyspace *ks = ks_create(17);
    insert_range(ks, "s", 0, 2000);
    scan_while(ks, 2000, grow_step, "growing");
    CHECK_EQ_LL(ks_count(ks), 2000 + 40000);
    ks_destroy(ks);
}

static void test_scan_while_shrinking(void) {
    keyspace *ks = ks_create(18);
    insert_range(ks, "s", 0, 500);
    insert_range(ks, "g", 0, 60000);
    scan_while(ks, 500, shrink_step, "shrinking");
    CHECK(ks_count(ks) < 20000);
    ks_destroy(ks);
}

static void test_scan_while_churning(void) {
    keyspace *ks = ks_create(19);
    insert_range(ks, "s", 0, 3000);
    scan_while(ks, 3000, churn_step, "churning");
    ks_destroy(ks);
}

static void mark_seen_table(void *arg, kv *e) {
    mark_seen(arg, e);
}

/* The table alone, one bucket step per call, resizes in between: exercises
 * cursors landing mid-rehash in both directions. */
static void test_table_scan_rehash(void) {
    _Atomic size_t mem = 0;
    table t;
    table_init(&t, 99, &mem);
    enum { STABLE = 300, EXTRA = 6000 };
    kv *items[STABLE + EXTRA];
    for (int i = 0; i < STABLE + EXTRA; i++) {
        char key[32];
        int n = make_key(key, sizeof key, i < STABLE ? "s" : "g", i);
        kv *e = calloc(1, sizeof(kv) + (size_t)n);
        e->klen = (uint32_t)n;
        e->vol_idx = KV_NO_VOLATILE;
        memcpy(e->data, key, (size_t)n);
        items[i] = e;
    }
    for (int i = 0; i < STABLE; i++)
        table_insert(&t, hash_bytes(items[i]->data, items[i]->klen, 99), items[i]);
    seen_set s = {"s", calloc(STABLE, sizeof(int)), STABLE, 0};
    uint64_t cur = 0;
    int step = 0, extra_in = 0;
    do {
        cur = table_scan(&t, cur, mark_seen_table, &s);
        step++;
        /* Grow for 40 steps, shrink for 40, repeat. */
        int grow = (step / 40) % 2 == 0;
        for (int k = 0; k < 60; k++) {
            if (grow && extra_in < EXTRA) {
                kv *e = items[STABLE + extra_in++];
                table_insert(&t, hash_bytes(e->data, e->klen, 99), e);
            } else if (!grow && extra_in > 0) {
                kv *e = items[STABLE + --extra_in];
                int which;
                uint64_t h = hash_bytes(e->data, e->klen, 99);
                kv **link = table_find_link(&t, h, e->data, e->klen, &which);
                CHECK(link && *link == e);
                if (link) table_unlink_at(&t, link, which);
            }
        }
    } while (cur != 0 && step < 1000000);
    CHECK_EQ_LL(count_unseen(&s), 0);
    CHECK_EQ_LL(table_count(&t), STABLE + extra_in);
    table_free(&t);
    CHECK_EQ_LL(mem, 0);
    for (int i = 0; i < STABLE + EXTRA; i++) free(items[i]);
    free(s.seen);
}

static void count_visit(void *arg, const kv *e) {
    (*(int *)arg)++;
}

static void test_each_exactly_once(void) {
    keyspace *ks = ks_create(20);
    enum { N = 30000 };
    /* Stop at sizes where many shards are mid-rehash. */
    insert_range(ks, "s", 0, N);
    ks_set_expire(ks, find(ks, "s:000007", NOW), NOW - 1); /* skipped */
    seen_set s = {"s", calloc(N, sizeof(int)), N, 0};
    ks_each(ks, NOW, mark_seen, &s);
    int twice = 0, never = 0;
    for (int i = 0; i < N; i++) {
        twice += s.seen[i] > 1;
        never += s.seen[i] == 0 && i != 7;
    }
    CHECK_EQ_LL(twice, 0);
    CHECK_EQ_LL(never, 0);
    CHECK_EQ_LL(s.seen[7], 0);
    int n = 0;
    ks_each(ks, NOW, count_visit, &n);
    CHECK_EQ_LL(n, N - 1);
    free(s.seen);
    ks_destroy(ks);
}

/* ------------------------------------------------------------------ */
/* random key, flush, active expiry                                    */

static void test_random_key(void) {
    keyspace *ks = ks_create(21);
    size_t klen = 99;
    CHECK(ks_random_key(ks, NOW, &klen) == NULL);
    set_str(ks, "only", "x");
    char *k = ks_random_key(ks, NOW, &klen);
    CHECK(k && klen == 4 && memcmp(k, "only", 4) == 0);
    free(k);
    /* Only expired keys: none. */
    ks_set_expire(ks, find(ks, "only", NOW), NOW - 1);
    CHECK(ks_random_key(ks, NOW, &klen) == NULL);
    CHECK_EQ_LL(ks_count(ks), 1); /* not deleted by random key */
    /* Many expired keys and one live one: found despite bad luck. */
    insert_range(ks, "e", 0, 3000);
    char key[32];
    for (int i = 0; i < 3000; i++) {
        make_key(key, sizeof key, "e", i);
        ks_set_expire(ks, find(ks, key, NOW), NOW - 1);
    }
    set_str(ks, "live", "x");
    for (int i = 0; i < 20; i++) {
        k = ks_random_key(ks, NOW, &klen);
        CHECK(k && klen == 4 && memcmp(k, "live", 4) == 0);
        free(k);
    }
    /* Several keys: all of them show up eventually. */
    ks_flush(ks);
    insert_range(ks, "r", 0, 8);
    int seen[8] = {0};
    for (int i = 0; i < 2000; i++) {
        k = ks_random_key(ks, NOW, &klen);
        CHECK(k != NULL);
        if (k && klen == 8 && k[0] == 'r') seen[k[7] - '0']++;
        free(k);
    }
    for (int i = 0; i < 8; i++) CHECK(seen[i] > 0);
    ks_destroy(ks);
}

static void test_flush(void) {
    keyspace *ks = ks_create(22);
    size_t base = ks_used_memory(ks);
    insert_range(ks, "f", 0, 20000);
    ks_set_expire(ks, find(ks, "f:000001", NOW), NOW + 10);
    CHECK(ks_used_memory(ks) > base);
    ks_flush(ks);
    CHECK_EQ_LL(ks_count(ks), 0);
    CHECK_EQ_LL(ks_volatile_count(ks), 0);
    CHECK(mem_near(ks_used_memory(ks), base));
    CHECK(find(ks, "f:000001", NOW) == NULL);
    insert_range(ks, "f", 0, 10); /* usable after a flush */
    CHECK_EQ_LL(ks_count(ks), 10);
    ks_destroy(ks);
}

static void test_active_expire(void) {
    keyspace *ks = ks_create(23);
    hook_log log = {0};
    ks_set_expire_hook(ks, record_hook, &log);
    char key[32];
    enum { DEAD = 40000, LIVE = 2000 };
    for (int i = 0; i < DEAD + LIVE; i++) {
        int n = make_key(key, sizeof key, "x", i);
        kv *e = ks_set_string(ks, key, (size_t)n, "v", 1, 0, NOW);
        ks_set_expire(ks, e, i < DEAD ? NOW - 1 - i : NOW + 100000);
    }
    insert_range(ks, "p", 0, 1000); /* persistent keys are never sampled */
    CHECK_EQ_LL(ks_volatile_count(ks), DEAD + LIVE);
    /* A deadline in the past does no work. */
    CHECK_EQ_LL(ks_active_expire(ks, 0, KS_SHARDS, NOW, 0), 0);
    size_t total = 0;
    for (int round = 0; round < 1000 && total < DEAD; round++)
        total += ks_active_expire(ks, 0, KS_SHARDS, NOW,
                                  clock_mono_us() + 1000000);
    /* The 25% rule may leave a few stragglers per shard; most go. */
    CHECK(total > DEAD * 9 / 10);
    CHECK_EQ_LL(ks_count(ks), DEAD + LIVE + 1000 - total);
    CHECK_EQ_LL(ks_volatile_count(ks), DEAD + LIVE - total);
    CHECK_EQ_LL(log.calls, total);
    CHECK_EQ_LL(ks_expired_total(ks), total);
    /* Live keys untouched. */
    int live = 0;
    for (int i = DEAD; i < DEAD + LIVE; i++) {
        int n = make_key(key, sizeof key, "x", i);
        live += ks_find(ks, key, (size_t)n, NOW) != NULL;
    }
    CHECK_EQ_LL(live, LIVE);
    /* A shard range only touches its shards. */
    ks_flush(ks);
    for (int i = 0; i < 2000; i++) {
        int n = make_key(key, sizeof key, "y", i);
        ks_set_expire(ks, ks_set_string(ks, key, (size_t)n, "v", 1, 0, NOW), NOW - 1);
    }
    size_t in_low_half = 0;
    for (int i = 0; i < 2000; i++) {
        int n = make_key(key, sizeof key, "y", i);
        in_low_half += ks_shard_of(ks, key, (size_t)n) < KS_SHARDS / 2;
    }
    size_t got = 0;
    for (int round = 0; round < 100; round++)
        got += ks_active_expire(ks, 0, KS_SHARDS / 2, NOW, clock_mono_us() + 1000000);
    CHECK_EQ_LL(got, in_low_half);
    CHECK_EQ_LL(ks_count(ks), 2000 - in_low_half);
    ks_destroy(ks);
}

/* ------------------------------------------------------------------ */
/* threads                                                             */

enum { MT_KEYS = 1024, MT_OPS = 60000, MT_WORKERS = 3 };

typedef struct mt_shared {
    keyspace *ks;
    atomic_int workers_left;
    atomic_long expired_hooks;
} mt_shared;

typedef struct mt_worker {
    mt_shared *sh;
    uint64_t rng;
} mt_worker;

static void mt_hook(void *arg, const char *key, size_t klen) {
    atomic_fetch_add(&((mt_shared *)arg)->expired_hooks, 1);
}

/* One random operation under the lockset of the keys it touches. */
static void mt_one_op(keyspace *ks, uint64_t *rng) {
    char a[32], b[32];
    int na = make_key(a, sizeof a, "m", (int)store_rng_below(rng, MT_KEYS));
    int nb = make_key(b, sizeof b, "m", (int)store_rng_below(rng, MT_KEYS));
    int op = (int)store_rng_below(rng, 6);
    ks_lockset ls;
    ks_lockset_clear(&ls);
    ks_lockset_add(ks, &ls, a, (size_t)na);
    if (op == 5) ks_lockset_add(ks, &ls, b, (size_t)nb);
    ks_lock(ks, &ls);
    kv *e;
    switch (op) {
    case 0: /* SET, sometimes with a TTL that the expirer will see pass */
        e = ks_set_string(ks, a, (size_t)na, "value", 5, 0, NOW);
        if (store_rng_below(rng, 4) == 0)
            ks_set_expire(ks, e, NOW + (int64_t)store_rng_below(rng, 2000));
        break;
    case 1:
    case 2: /* GET */
        e = ks_find(ks, a, (size_t)na, NOW);
        if (e) CHECK(kv_slen(e) >= 5);
        break;
    case 3:
        ks_delete(ks, a, (size_t)na, NOW);
        break;
    case 4: /* APPEND */
        e = ks_find(ks, a, (size_t)na, NOW);
        if (e && kv_slen(e) < 200) {
            size_t len = kv_slen(e);
            e = ks_string_resize(ks, e, len + 3);
            memcpy(kv_sval(e) + len, "abc", 3);
        }
        break;
    case 5: /* RENAME */
        if (na != nb || memcmp(a, b, (size_t)na) != 0) {
            if (ks_find(ks, a, (size_t)na, NOW))
                ks_rename(ks, a, (size_t)na, b, (size_t)nb, NOW);
        }
        break;
    }
    ks_unlock(ks, &ls);
}

static void *mt_worker_main(void *arg) {
    mt_worker *w = arg;
    for (int i = 0; i < MT_OPS; i++) mt_one_op(w->sh->ks, &w->rng);
    atomic_fetch_sub(&w->sh->workers_left, 1);
    return NULL;
}

static void *mt_scanner_main(void *arg) {
    mt_shared *sh = arg;
    long rounds = 0;
    /* Keyspace-wide operations until the workers finish; expiry time moves
     * forward so active expiry has work. */
    while (atomic_load(&sh->workers_left) > 0 || rounds < 3) {
        int n = 0;
        uint64_t cur = 0;
        do cur = ks_scan(sh->ks, cur, 16, NOW, count_visit, &n);
        while (cur != 0);
        size_t klen;
        free(ks_random_key(sh->ks, NOW, &klen));
        ks_active_expire(sh->ks, 0, KS_SHARDS, NOW + 1000, clock_mono_us() + 1000);
        (void)ks_count(sh->ks);
        (void)ks_used_memory(sh->ks);
        rounds++;
    }
    return NULL;
}

static void test_threads(void) {
    mt_shared sh = {.ks = ks_create(24)};
    atomic_init(&sh.workers_left, MT_WORKERS);
    atomic_init(&sh.expired_hooks, 0);
    ks_set_expire_hook(sh.ks, mt_hook, &sh);
    size_t base = ks_used_memory(sh.ks);
    pthread_t th[MT_WORKERS + 1];
    mt_worker w[MT_WORKERS];
    for (int i = 0; i < MT_WORKERS; i++) {
        w[i] = (mt_worker){&sh, (uint64_t)i * 7919 + 1};
        pthread_create(&th[i], NULL, mt_worker_main, &w[i]);
    }
    pthread_create(&th[MT_WORKERS], NULL, mt_scanner_main, &sh);
    for (int i = 0; i <= MT_WORKERS; i++) pthread_join(th[i], NULL);

    /* Final consistency: counter == entries walked == keys findable. */
    int walked = 0;
    ks_each(sh.ks, 0, count_visit, &walked); /* now 0: nothing expired */
    CHECK_EQ_LL(ks_count(sh.ks), walked);
    int findable = 0;
    char key[32];
    for (int i = 0; i < MT_KEYS; i++) {
        int n = make_key(key, sizeof key, "m", i);
        findable += ks_find(sh.ks, key, (size_t)n, 0) != NULL;
    }
    CHECK_EQ_LL(findable, walked);
    CHECK(walked > 0 && walked <= MT_KEYS);
    CHECK_EQ_LL(atomic_load(&sh.expired_hooks), (long)ks_expired_total(sh.ks));
    ks_flush(sh.ks);
    CHECK(mem_near(ks_used_memory(sh.ks), base));
    ks_destroy(sh.ks);
}

int main(void) {
    RUN(test_hash_seeds_and_lengths);
    RUN(test_hash_avalanche);
    RUN(test_set_find_delete);
    RUN(test_binary_keys);
    RUN(test_string_resize);
    RUN(test_expire_lazy);
    RUN(test_volatile_bookkeeping);
    RUN(test_rename);
    RUN(test_objects);
    RUN(test_type_registry);
    RUN(test_many_keys);
    RUN(test_scan_full);
    RUN(test_scan_while_growing);
    RUN(test_scan_while_shrinking);
    RUN(test_scan_while_churning);
    RUN(test_table_scan_rehash);
    RUN(test_each_exactly_once);
    RUN(test_random_key);
    RUN(test_flush);
    RUN(test_active_expire);
    RUN(test_threads);
    return check_summary("keyspace");
}
