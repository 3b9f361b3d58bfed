/* fuzz_subentries.c - libpier's decoding of a subscriber BATCH payload
 * (client/frame.c): the entries (docs/PROTOCOL.md, "Subscriber BATCH") and
 * the field/value pairs of kind-1 entries (a RESP array of bulk strings).
 * Input: byte 0 is the entry count the header would claim, the rest the
 * payload.
 *
 * Invariants on success:
 *  - every message and field points inside the (exact-size) payload;
 *  - the fields total equals the sum of the messages' nfields;
 *  - kind 0: one field named "data" whose value is the message;
 *  - kind 1: the pairs, encoded again as a RESP array of bulks, are the
 *    message's bytes exactly (nothing skipped, nothing invented). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../client/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static int inside(const void *p, size_t n, const uint8_t *buf, size_t len) {
    const uint8_t *q = p;
    return n == 0 || (q >= buf && q + n <= buf + len);
}

/* The kind-1 message again from its pairs. */
static void check_resp_roundtrip(const pier_msg *m) {
    size_t cap = m->len + 64, off = 0;
    char *out = malloc(cap);
    if (!out) abort();
    off += (size_t)snprintf(out, cap, "*%zu\r\n", m->nfields * 2);
    for (size_t i = 0; i < m->nfields && off < cap; i++) {
        const pier_field *f = &m->fields[i];
        const char *s[2] = {f->name, f->value};
        size_t n[2] = {f->name_len, f->value_len};
        for (int k = 0; k < 2 && off < cap; k++) {
            off += (size_t)snprintf(out + off, cap - off, "$%zu\r\n", n[k]);
            FZ_CHECK(off + n[k] + 2 <= cap);
            memcpy(out + off, s[k], n[k]);
            memcpy(out + off + n[k], "\r\n", 2);
            off += n[k] + 2;
        }
    }
    FZ_CHECK(off == m->len && memcmp(out, m->data, off) == 0);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint32_t count = data[0];
    size_t len = size - 1;
    uint8_t *p = malloc(len ? len : 1);
    pier_msg *msgs = malloc(sizeof *msgs * (count ? count : 1));
    if (!p || !msgs) abort();
    memcpy(p, data + 1, len);
    size_t nfields = 0;
    if (pb_parse_entries(p, len, count, msgs, &nfields) == PIER_OK) {
        pier_field *fields = malloc(sizeof *fields * (nfields ? nfields : 1));
        if (!fields) abort();
        pb_attach_fields(msgs, count, fields);
        size_t total = 0;
        for (uint32_t i = 0; i < count; i++) {
            const pier_msg *m = &msgs[i];
            FZ_CHECK(inside(m->data, m->len, p, len));
            FZ_CHECK(m->fields == fields + total);
            total += m->nfields;
            for (size_t k = 0; k < m->nfields; k++) {
                FZ_CHECK(inside(m->fields[k].name, m->fields[k].name_len, p, len) ||
                         m->kind == PIER_KIND_DATA);
                FZ_CHECK(inside(m->fields[k].value, m->fields[k].value_len, p, len));
            }
            if (m->kind == PIER_KIND_DATA) {
                FZ_CHECK(m->nfields == 1 && m->fields[0].name_len == 4 &&
                         !memcmp(m->fields[0].name, "data", 4));
                FZ_CHECK(m->fields[0].value == m->data && m->fields[0].value_len == m->len);
            } else {
                check_resp_roundtrip(m);
            }
        }
        FZ_CHECK(total == nfields);
        free(fields);
    }
    free(msgs);
    free(p);
    return 0;
}
