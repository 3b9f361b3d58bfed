/* test_entry.c - the cluster log entry codec (src/cluster/entry.c): what
 * the leader builds decodes to the same fields and records, and bytes from
 * the network or a file that are not a well-formed entry are refused. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cluster/entry.h"

static entry *build(uint64_t index, uint64_t term, uint64_t cid, uint64_t seq,
                    const uint64_t *keys, size_t nkeys, const char *rep, int nrec) {
    entry_builder rec, b;
    eb_init(&rec);
    eb_init(&b);
    for (int r = 0; r < nrec; r++) {
        cmd_arg argv[3] = {{"SET", 3}, {"key", 3}, {"value\r\n\0x", 9}};
        eb_record(&rec, (cmd_arg){NULL, 0}, 3, argv);
    }
    eb_begin(&b, index, term, cid, seq, keys, nkeys, rep, strlen(rep));
    eb_append_records(&b, &rec);
    entry *e = eb_finish(&b);
    eb_free(&rec);
    eb_free(&b);
    return e;
}

static void test_round_trip(void) {
    uint64_t keys[3] = {1, UINT64_MAX, 0x0123456789abcdefULL};
    entry *e = build(42, 7, 99, 1000, keys, 3, "+OK\r\n", 2);
    entry_view v;
    ev_view_init(&v);
    char err[64];
    CHECK(entry_decode(e->data, e->len, &v, err, sizeof err) == 0);
    CHECK_EQ_LL(v.index, 42);
    CHECK_EQ_LL(v.term, 7);
    CHECK_EQ_LL(v.cid, 99);
    CHECK_EQ_LL(v.seq, 1000);
    CHECK_EQ_LL(v.nkeys, 3);
    for (size_t i = 0; i < 3; i++) CHECK(entry_key_at(&v, i) == keys[i]);
    CHECK_MEM(v.reply, v.reply_len, "+OK\r\n");
    CHECK_EQ_LL(v.nrec, 2);
    for (int r = 0; r < 2; r++) {
        CHECK_EQ_LL(v.rec_argc[r], 3);
        const cmd_arg *a = &v.args[v.rec_at[r]];
        CHECK_MEM(a[0].p, a[0].n, "SET");
        CHECK_EQ_LL(a[2].n, 9);
        CHECK(memcmp(a[2].p, "value\r\n\0x", 9) == 0);
    }
    ev_view_free(&v);
    free(e);
}

static void test_no_op_entry(void) {
    entry *e = build(1, 1, 0, 0, NULL, 0, "", 0);
    entry_view v;
    ev_view_init(&v);
    char err[64];
    CHECK(entry_decode(e->data, e->len, &v, err, sizeof err) == 0);
    CHECK_EQ_LL(v.nrec, 0);
    CHECK_EQ_LL(v.nkeys, 0);
    ev_view_free(&v);
    free(e);
}

/* Every truncation and every single-byte change of a valid entry either
 * decodes (to something) or is refused; nothing reads out of bounds
 * (ASan) and no record claims more arguments than the entry has. */
static void test_damaged_entries(void) {
    uint64_t key = 5;
    entry *e = build(3, 2, 1, 1, &key, 1, ":1\r\n", 1);
    entry_view v;
    ev_view_init(&v);
    char err[64];
    for (size_t cut = 0; cut < e->len; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, e->data, cut);
        CHECK(entry_decode(copy, cut, &v, err, sizeof err) == -1);
        free(copy);
    }
    int refused = 0;
    for (size_t i = 0; i < e->len; i++) {
        for (int delta = 1; delta < 256; delta += 37) {
            char *copy = malloc(e->len);
            memcpy(copy, e->data, e->len);
            copy[i] = (char)(copy[i] + delta);
            if (entry_decode(copy, e->len, &v, err, sizeof err) < 0) refused++;
            else
                for (int r = 0; r < v.nrec; r++) CHECK(v.rec_at[r] + v.rec_argc[r] <= 7 + 4);
            free(copy);
        }
    }
    CHECK(refused > 0);
    ev_view_free(&v);
    free(e);
}

static void test_not_an_entry(void) {
    entry_view v;
    ev_view_init(&v);
    char err[64];
    const char *bad[] = {"*1\r\n$3\r\nSET\r\n", "*7\r\n$3\r\nSET\r\n", "+OK\r\n", "",
                         "*999999999999\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(entry_decode(bad[i], strlen(bad[i]), &v, err, sizeof err) == -1);
    ev_view_free(&v);
}

static void test_array_encode_decode(void) {
    cmd_arg in[3] = {{"PIER.EXEC", 9}, {"", 0}, {"a\r\nb", 4}};
    size_t len;
    char *enc = resp_array_encode(3, in, &len);
    cmd_arg out[3];
    int argc = 0;
    CHECK_EQ_LL(resp_array_decode(enc, len, out, 3, &argc), (long long)len);
    CHECK_EQ_LL(argc, 3);
    CHECK_MEM(out[2].p, out[2].n, "a\r\nb");
    CHECK_EQ_LL(resp_array_decode(enc, len - 1, out, 3, &argc), 0); /* incomplete */
    CHECK_EQ_LL(resp_array_decode(enc, len, out, 2, &argc), -1);    /* too many */
    free(enc);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_no_op_entry);
    RUN(test_damaged_entries);
    RUN(test_not_an_entry);
    RUN(test_array_encode_decode);
    return check_summary("entry");
}
