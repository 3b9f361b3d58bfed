/* test_catchup.c - reading old log entries back from the AOF for a
 * follower's catch-up (src/cluster/catchup.c): the index finds the entries
 * among other records, skips records a later truncation voided (also when
 * the truncation is past the end of the read, and at a stride boundary),
 * keeps to its byte budget, reads a record larger than its read size,
 * never reads bytes not yet written to the file, and says when its index
 * does not cover an entry. A real AOF in a temporary directory. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cluster/catchup.h"
#include "lib/clock.h"
#include "lib/hash.h"
#include "store/keyspace.h"

#define NOW 1700000000000LL

typedef struct fixture {
    char dir[64];
    keyspace *ks;
    aof a;
    catchup *c;
    _Atomic int ready;
} fixture;

static void on_ready(void *arg) { atomic_fetch_add(&((fixture *)arg)->ready, 1); }

static void setup(fixture *f) {
    char err[512];
    snprintf(f->dir, sizeof f->dir, "/tmp/pier-unit-XXXXXX");
    CHECK(mkdtemp(f->dir) != NULL);
    f->ks = ks_create(hash_random_seed());
    CHECK(aof_init(&f->a, f->dir, "aofdir", "appendonly.aof", err, sizeof err) == 0);
    CHECK(aof_create(&f->a, f->ks, NOW, err, sizeof err) == 0);
    CHECK(aof_open_tail(&f->a, err, sizeof err) == 0);
    f->c = catchup_create();
    atomic_store(&f->ready, 0);
}

static void teardown(fixture *f) {
    catchup_destroy(f->c);
    aof_destroy(&f->a);
    ks_destroy(f->ks);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    CHECK(system(cmd) == 0);
}

/* The entry (index, term) whose one record is SET k<index> <value of
 * vlen bytes>. */
static entry *make_entry(uint64_t index, uint64_t term, size_t vlen) {
    char key[32];
    int kn = snprintf(key, sizeof key, "k%llu", (unsigned long long)index);
    char *val = malloc(vlen ? vlen : 1);
    memset(val, 'a' + (int)(term % 26), vlen);
    cmd_arg argv[3] = {{"SET", 3}, {key, (size_t)kn}, {val, vlen}};
    entry_builder rec, b;
    eb_init(&rec);
    eb_init(&b);
    eb_record(&rec, (cmd_arg){NULL, 0}, 3, argv);
    uint64_t h = entry_key_hash(key, (size_t)kn);
    eb_begin(&b, index, term, 7, index, &h, 1, "+OK\r\n", 5);
    eb_append_records(&b, &rec);
    entry *e = eb_finish(&b);
    e->index = index;
    e->term = term;
    eb_free(&rec);
    eb_free(&b);
    free(val);
    return e;
}

/* Append entry (index, term) to the AOF as the log does, with a record
 * that is not an entry before it. */
static void put(fixture *f, uint64_t index, uint64_t term, size_t vlen) {
    cmd_arg w[3] = {{"PIER.COMMIT", 11}, {"1", 1}, {"x", 1}};
    aof_append(&f->a, w[0], 2, w);
    entry *e = make_entry(index, term, vlen);
    uint64_t end = aof_append_raw(&f->a, e->data, e->len);
    catchup_note_entry(f->c, index, aof_tail_pos(&f->a, end - e->len));
    free(e);
}

static void truncate_at(fixture *f, uint64_t index) {
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)index);
    cmd_arg argv[2] = {{"PIER.TRUNCATE", 13}, {num, (size_t)n}};
    uint64_t end = aof_append(&f->a, argv[0], 2, argv);
    catchup_note_truncate(f->c, index, aof_tail_pos(&f->a, end));
}

static void start(fixture *f) {
    CHECK(aof_flush(&f->a, UINT64_MAX, 0) == 0);
    CHECK(catchup_start(f->c, &f->a, on_ready, f) == 0);
}

/* Ask and wait (polling) for the result. */
static catchup_result *ask(fixture *f, uint64_t from, uint64_t hi, size_t max_bytes) {
    int before = atomic_load(&f->ready);
    CHECK(catchup_request(f->c, 1, 5, from, hi, max_bytes) == 0);
    int64_t deadline = clock_mono_ms() + 10000;
    while (atomic_load(&f->ready) == before && clock_mono_ms() < deadline) usleep(1000);
    catchup_result *r = catchup_take(f->c);
    CHECK(r != NULL);
    if (r) CHECK(r->next == NULL && r->peer == 1 && r->term == 5 && r->from == from);
    return r;
}

/* r holds entries lo.. of term term_of(index), as make_entry built them. */
static void check_entries(const catchup_result *r, uint64_t lo, uint32_t count,
                          uint64_t (*term_of)(uint64_t), size_t vlen) {
    CHECK_EQ_LL(r->lo, lo);
    CHECK_EQ_LL(r->count, count);
    for (uint32_t i = 0; i < r->count && i < count; i++) {
        entry *want = make_entry(lo + i, term_of(lo + i), vlen);
        const entry *got = r->ents[i];
        if (got->index != want->index || got->term != want->term || got->len != want->len ||
            memcmp(got->data, want->data, want->len) != 0) {
            fprintf(stderr, "  entry %llu differs\n", (unsigned long long)(lo + i));
            CHECK(!"the entry read back is the one written");
            i = count;
        }
        free(want);
    }
}

static uint64_t term1(uint64_t index) { return 1 + 0 * index; }
static uint64_t term_after_150(uint64_t index) { return index >= 150 ? 2 : 1; }
static uint64_t term_after_129(uint64_t index) { return index >= 129 ? 3 : 1; }

static void test_reads_entries_among_other_records(void) {
    fixture f;
    setup(&f);
    for (uint64_t i = 1; i <= 300; i++) put(&f, i, 1, 10);
    start(&f);
    catchup_result *r = ask(&f, 100, 250, 1 << 20); /* 99 (the one before) to 249 */
    if (r) check_entries(r, 99, 151, term1, 10);
    catchup_result_free(r);
    if ((r = ask(&f, 1, 3, 1 << 20))) check_entries(r, 1, 2, term1, 10); /* from 1: no entry before */
    catchup_result_free(r);
    CHECK_EQ_LL(catchup_request(f.c, 1, 5, 400, 500, 1 << 20), -2); /* not in the index */
    teardown(&f);
}

/* A follower's log overwritten twice: entries from 150 replaced in term 2
 * (its records after the read's start), from 129 (a stride boundary) in
 * term 3. The read returns only the entries the log holds now. */
static void test_truncated_records_are_skipped(void) {
    fixture f;
    setup(&f);
    for (uint64_t i = 1; i <= 200; i++) put(&f, i, 1, 10);
    truncate_at(&f, 150);
    for (uint64_t i = 150; i <= 260; i++) put(&f, i, 2, 10);
    start(&f);
    catchup_result *r = ask(&f, 140, 260, 1 << 20);
    if (r) check_entries(r, 139, 121, term_after_150, 10);
    catchup_result_free(r);
    teardown(&f);

    setup(&f);
    for (uint64_t i = 1; i <= 200; i++) put(&f, i, 1, 10);
    truncate_at(&f, 129);
    for (uint64_t i = 129; i <= 140; i++) put(&f, i, 3, 10);
    start(&f);
    if ((r = ask(&f, 130, 141, 1 << 20))) check_entries(r, 129, 12, term_after_129, 10);
    catchup_result_free(r);
    if ((r = ask(&f, 120, 141, 1 << 20))) check_entries(r, 119, 22, term_after_129, 10);
    catchup_result_free(r);
    teardown(&f);
}

static void test_byte_budget_and_large_records(void) {
    fixture f;
    setup(&f);
    for (uint64_t i = 1; i <= 100; i++) put(&f, i, 1, i == 50 ? (3u << 20) : 1000);
    start(&f);
    /* about 10 entries of ~1 KB fit in 10 KB: it stops once past the budget */
    catchup_result *r = ask(&f, 10, 100, 10 * 1024);
    if (r) {
        CHECK(r->count >= 10 && r->count <= 12);
        CHECK_EQ_LL(r->ents[0]->index, 9);
    }
    catchup_result_free(r);
    /* entry 50 (3 MB) is larger than one read of the AOF */
    r = ask(&f, 49, 53, 64 << 20);
    if (r) {
        CHECK_EQ_LL(r->count, 5);
        for (uint32_t i = 0; i < r->count; i++) {
            entry *want = make_entry(48 + i, 1, 48 + i == 50 ? (3u << 20) : 1000);
            CHECK(r->ents[i]->len == want->len &&
                  memcmp(r->ents[i]->data, want->data, want->len) == 0);
            free(want);
        }
    }
    catchup_result_free(r);
    teardown(&f);
}

/* Entries appended but not yet written to the file are not read. */
static void test_reads_only_written_bytes(void) {
    fixture f;
    setup(&f);
    for (uint64_t i = 1; i <= 70; i++) put(&f, i, 1, 10);
    start(&f);
    for (uint64_t i = 71; i <= 80; i++) put(&f, i, 1, 10); /* pending, not written */
    catchup_result *r = ask(&f, 60, 81, 1 << 20);
    if (r) check_entries(r, 59, 12, term1, 10); /* 59..70 */
    catchup_result_free(r);
    CHECK(aof_flush(&f.a, UINT64_MAX, 0) == 0);
    if ((r = ask(&f, 60, 81, 1 << 20))) check_entries(r, 59, 22, term1, 10);
    catchup_result_free(r);
    teardown(&f);
}

int main(void) {
    RUN(test_reads_entries_among_other_records);
    RUN(test_truncated_records_are_skipped);
    RUN(test_byte_budget_and_large_records);
    RUN(test_reads_only_written_bytes);
    return check_summary("catchup");
}
