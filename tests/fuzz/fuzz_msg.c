/* fuzz_msg.c - the cluster bus messages (src/cluster/msg.c). Every input
 * is decoded as each message type in turn. Fails on: a read outside the
 * input (ASan: the input is an exact-size copy); an entry, record, key
 * list or byte string of an accepted message outside the input; an
 * accepted message that, encoded again from its decoded fields, is not
 * the input byte for byte (fields keep their wire values, so the encoding
 * is canonical). Seeds (corpus_msg.py) are one valid payload per type,
 * built from docs/PROTOCOL.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static const uint8_t *in_lo, *in_hi; /* the input copy */
static unsigned accepted;            /* bit t: the input decoded as type t */

static void inside(const void *p, size_t n) {
    if (!n) return;
    FZ_CHECK((const uint8_t *)p >= in_lo && (const uint8_t *)p + n <= in_hi);
}

static void same_bytes(wbuf *w, const uint8_t *p, size_t n) {
    FZ_CHECK(w->len == n && (n == 0 || memcmp(w->p, p, n) == 0));
    wb_free(w);
}

static void check_append(const uint8_t *p, size_t n) {
    msg_append m;
    if (msg_append_decode(p, n, &m) < 0) return;
    accepted |= 1u << MSG_APPEND;
    entry **ents = calloc(m.count ? m.count : 1, sizeof *ents);
    FZ_CHECK(ents != NULL);
    size_t pos = 0;
    msg_entry e;
    uint32_t got = 0;
    while (msg_append_next(&m, &pos, &e)) {
        FZ_CHECK(got < m.count);
        inside(e.data, e.len);
        ents[got++] = entry_new(e.index, e.term, e.data, e.len);
    }
    FZ_CHECK(got == m.count && pos == m.body_len);
    m.ents = (const entry *const *)ents;
    wbuf w = {0};
    msg_append_encode(&w, &m);
    same_bytes(&w, p, n);
    for (uint32_t i = 0; i < got; i++) free(ents[i]);
    free(ents);
}

static void check_fixed(const uint8_t *p, size_t n) {
    wbuf w = {0};
    msg_append_resp ar;
    if (msg_append_resp_decode(p, n, &ar) == 0) {
        accepted |= 1u << MSG_APPEND_RESP;
        msg_append_resp_encode(&w, &ar);
        same_bytes(&w, p, n);
    }
    msg_vote_req vq;
    if (msg_vote_req_decode(p, n, &vq) == 0) {
        accepted |= 1u << MSG_VOTE_REQ | 1u << MSG_PREVOTE_REQ;
        msg_vote_req_encode(&w, &vq);
        same_bytes(&w, p, n);
    }
    msg_vote_resp vr;
    if (msg_vote_resp_decode(p, n, &vr) == 0) {
        accepted |= 1u << MSG_VOTE_RESP | 1u << MSG_PREVOTE_RESP;
        msg_vote_resp_encode(&w, &vr);
        same_bytes(&w, p, n);
    }
    msg_record_resp rr;
    if (msg_record_resp_decode(p, n, &rr) == 0) {
        accepted |= 1u << MSG_RECORD_RESP;
        msg_record_resp_encode(&w, &rr);
        same_bytes(&w, p, n);
    }
    msg_collect c;
    if (msg_collect_decode(p, n, &c) == 0) {
        accepted |= 1u << MSG_COLLECT;
        msg_collect_encode(&w, &c);
        same_bytes(&w, p, n);
    }
    if (msg_ping_decode(p, n) == 0) {
        accepted |= 1u << MSG_PING;
        FZ_CHECK(n == 0);
    }
}

static void check_request(const uint8_t *p, size_t n) {
    static uint64_t keys[MSG_MAX_KEYS];
    msg_request m;
    if (msg_request_decode(p, n, &m, keys) < 0) return;
    accepted |= 1u << MSG_FORWARD | 1u << MSG_RECORD;
    FZ_CHECK(m.nkeys >= -1 && m.nkeys <= MSG_MAX_KEYS && m.keys == keys);
    inside(m.req, m.req_len);
    wbuf w = {0};
    msg_request_encode(&w, &m);
    same_bytes(&w, p, n);
}

static void check_forward_resp(const uint8_t *p, size_t n) {
    msg_forward_resp m;
    if (msg_forward_resp_decode(p, n, &m) < 0) return;
    accepted |= 1u << MSG_FORWARD_RESP;
    inside(m.reply, m.reply_len);
    wbuf w = {0};
    msg_forward_resp_encode(&w, &m);
    same_bytes(&w, p, n);
}

static void check_records(const uint8_t *p, size_t n) {
    msg_record r;
    wbuf w = {0};
    if (msg_record_decode(p, n, &r) == 0) {
        accepted |= 1u << MSG_STALE;
        FZ_CHECK(r.nkeys <= WITNESS_MAX_KEYS);
        inside(r.req, r.req_len);
        msg_record_encode(&w, &r);
        same_bytes(&w, p, n);
    }
    msg_gc g;
    if (msg_gc_decode(p, n, &g) == 0) {
        accepted |= 1u << MSG_GC;
        FZ_CHECK(g.nkeys <= WITNESS_MAX_KEYS);
        msg_gc_encode(&w, &g);
        same_bytes(&w, p, n);
    }
    msg_collect_resp c;
    if (msg_collect_resp_decode(p, n, &c) < 0) return;
    accepted |= 1u << MSG_COLLECT_RESP;
    /* the records, encoded again one by one, are the list's bytes */
    wbuf body = {0};
    size_t pos = 0;
    uint32_t got = 0;
    while (msg_records_next(&c.records, &pos, &r) == 1) {
        inside(r.req, r.req_len);
        msg_record_encode(&body, &r);
        got++;
    }
    FZ_CHECK(got == c.records.count && pos == c.records.len);
    same_bytes(&body, c.records.body, c.records.len);
    msg_collect_resp_encode(&w, &c);
    same_bytes(&w, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    FZ_CHECK(copy != NULL);
    if (size) memcpy(copy, data, size);
    in_lo = copy;
    in_hi = copy + size;
    accepted = 0;
    check_append(copy, size);
    check_fixed(copy, size);
    check_request(copy, size);
    check_forward_resp(copy, size);
    check_records(copy, size);
#ifdef FUZZ_REPORT /* seeds check: -DFUZZ_REPORT prints the types each input decodes as */
    fprintf(stderr, "decodes as:");
    for (int t = 1; t <= MSG_TYPE_MAX; t++)
        if (accepted & 1u << t) fprintf(stderr, " %s", msg_name(t));
    fprintf(stderr, "\n");
#endif
    free(copy);
    return 0;
}
