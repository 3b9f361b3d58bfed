/* fuzz_entry.c - the cluster log entry codec (src/cluster/entry.c). Entries
 * arrive from the bus and from the AOF, so entry_decode must refuse any
 * malformed bytes without reading past them; whatever it accepts must
 * describe records inside the entry, and building the entry again from the
 * decoded fields must give back the same bytes. resp_array_span (the AOF
 * reader's walk) must agree with resp_array_decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static void rebuild_matches(const entry_view *v, const char *data, size_t size) {
    uint64_t *keys = malloc((v->nkeys ? v->nkeys : 1) * sizeof *keys);
    FZ_CHECK(keys != NULL);
    for (size_t i = 0; i < v->nkeys; i++) keys[i] = entry_key_at(v, i);
    entry_builder rec, b;
    eb_init(&rec);
    eb_init(&b);
    for (int r = 0; r < v->nrec; r++)
        eb_record(&rec, (cmd_arg){NULL, 0}, v->rec_argc[r], &v->args[v->rec_at[r]]);
    eb_begin(&b, v->index, v->term, v->cid, v->seq, keys, v->nkeys, v->reply, v->reply_len);
    eb_append_records(&b, &rec);
    entry *e = eb_finish(&b);
    /* the same entry, unless the input spelled numbers another way
     * (leading zeros): then it must at least decode to the same fields */
    if (e->len != size || memcmp(e->data, data, size) != 0) {
        entry_view w;
        ev_view_init(&w);
        char err[64];
        FZ_CHECK(entry_decode(e->data, e->len, &w, err, sizeof err) == 0);
        FZ_CHECK(w.index == v->index && w.term == v->term && w.cid == v->cid && w.seq == v->seq);
        FZ_CHECK(w.nrec == v->nrec && w.nkeys == v->nkeys && w.reply_len == v->reply_len);
        ev_view_free(&w);
    }
    free(e);
    eb_free(&rec);
    eb_free(&b);
    free(keys);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a copy of exactly size bytes: ASan sees any read past the end */
    char *copy = malloc(size ? size : 1);
    FZ_CHECK(copy != NULL);
    if (size) memcpy(copy, data, size);
    entry_view v;
    ev_view_init(&v);
    char err[64];
    if (entry_decode(copy, size, &v, err, sizeof err) == 0) {
        FZ_CHECK(v.nkeys * 8 <= size && v.reply_len <= size);
        for (int r = 0; r < v.nrec; r++) {
            FZ_CHECK(v.rec_argc[r] >= 1 && v.rec_at[r] >= 8);
            for (int a = 0; a < v.rec_argc[r]; a++) {
                const cmd_arg *x = &v.args[v.rec_at[r] + a];
                FZ_CHECK(x->p >= copy && x->p + x->n <= copy + size);
            }
        }
        rebuild_matches(&v, copy, size);
    }
    cmd_arg argv[64];
    int argc = 0;
    long used = resp_array_decode(copy, size, argv, 64, &argc);
    FZ_CHECK(used >= -1 && used <= (long)size);
    if (used > 0)
        for (int i = 0; i < argc; i++) FZ_CHECK(argv[i].p + argv[i].n <= copy + used);
    /* the walk without a bound on argc agrees (the AOF reader's) */
    cmd_arg first[3];
    int n = 0;
    long span = resp_array_span(copy, size, first, 3, &n);
    FZ_CHECK(span >= -1 && span <= (long)size);
    if (used > 0) FZ_CHECK(span == used && n == argc);
    if (span > 0 && n <= 64) FZ_CHECK(used == span);
    if (span > 0)
        for (int i = 0; i < n && i < 3; i++) FZ_CHECK(first[i].p + first[i].n <= copy + span);
    ev_view_free(&v);
    free(copy);
    return 0;
}
