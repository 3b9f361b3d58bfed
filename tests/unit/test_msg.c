/* test_msg.c - the cluster bus messages (src/cluster/msg.c): every message
 * encodes and decodes back to the same fields; every truncation of a valid
 * payload, a byte too many, and a set of corruptions (counts and lengths
 * past the end, key counts over their limit) are refused; a few payloads
 * are compared byte for byte with docs/PROTOCOL.md's layout; and the type
 * numbers and names docs/PROTOCOL.md documents are msg.h's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cluster/msg.h"
#include "lib/codec.h"

/* Each decoder as one signature, for the truncation and corruption walks. */
typedef int dec_fn(const uint8_t *p, size_t n);

static int dec_append(const uint8_t *p, size_t n) {
    msg_append m;
    return msg_append_decode(p, n, &m);
}
static int dec_append_resp(const uint8_t *p, size_t n) {
    msg_append_resp m;
    return msg_append_resp_decode(p, n, &m);
}
static int dec_vote_req(const uint8_t *p, size_t n) {
    msg_vote_req m;
    return msg_vote_req_decode(p, n, &m);
}
static int dec_vote_resp(const uint8_t *p, size_t n) {
    msg_vote_resp m;
    return msg_vote_resp_decode(p, n, &m);
}
static int dec_request(const uint8_t *p, size_t n) {
    msg_request m;
    static uint64_t keys[MSG_MAX_KEYS];
    return msg_request_decode(p, n, &m, keys);
}
static int dec_forward_resp(const uint8_t *p, size_t n) {
    msg_forward_resp m;
    return msg_forward_resp_decode(p, n, &m);
}
static int dec_record_resp(const uint8_t *p, size_t n) {
    msg_record_resp m;
    return msg_record_resp_decode(p, n, &m);
}
static int dec_collect(const uint8_t *p, size_t n) {
    msg_collect m;
    return msg_collect_decode(p, n, &m);
}
static int dec_collect_resp(const uint8_t *p, size_t n) {
    msg_collect_resp m;
    return msg_collect_resp_decode(p, n, &m);
}
static int dec_record(const uint8_t *p, size_t n) {
    msg_record m;
    return msg_record_decode(p, n, &m);
}
static int dec_gc(const uint8_t *p, size_t n) {
    msg_gc m;
    return msg_gc_decode(p, n, &m);
}

/* dec on an exact-size copy of p[0, n) (ASan sees any read past it). */
static int dec_copy(dec_fn *dec, const uint8_t *p, size_t n) {
    uint8_t *c = malloc(n ? n : 1);
    if (n) memcpy(c, p, n);
    int rc = dec(c, n);
    free(c);
    return rc;
}

/* The valid payload w decodes; no prefix of it does, nor w plus a byte. */
static void check_strict(dec_fn *dec, const wbuf *w) {
    CHECK(dec_copy(dec, w->p, w->len) == 0);
    for (size_t k = 0; k < w->len; k++)
        if (dec_copy(dec, w->p, k) == 0) {
            fprintf(stderr, "  a %zu-byte prefix of %zu decoded\n", k, w->len);
            CHECK(!"a truncation was accepted");
            break;
        }
    uint8_t *more = malloc(w->len + 1);
    memcpy(more, w->p, w->len);
    more[w->len] = 0;
    CHECK(dec_copy(dec, more, w->len + 1) < 0);
    free(more);
}

/* A copy of w with the little-endian u32 at off set to v: refused. */
static void check_u32_refused(dec_fn *dec, const wbuf *w, size_t off, uint32_t v) {
    uint8_t *c = malloc(w->len);
    memcpy(c, w->p, w->len);
    codec_put_le32(c + off, v);
    if (dec_copy(dec, c, w->len) == 0) {
        fprintf(stderr, "  u32 at %zu = %u was accepted\n", off, v);
        CHECK(!"a corrupted count or length was accepted");
    }
    free(c);
}

static void test_append(void) {
    entry *e1 = entry_new(7, 3, "*1\r\n$4\r\nPING\r\n", 14);
    entry *e2 = entry_new(8, 4, "", 0);
    const entry *ents[2] = {e1, e2};
    msg_append m = {.term = 4, .prev_index = 6, .prev_term = 3, .commit = 5,
                    .sent_us = 123456789, .leader_last = 8, .count = 2, .ents = ents};
    wbuf w = {0};
    msg_append_encode(&w, &m);
    CHECK_EQ_LL(w.len, 52 + 20 + 14 + 20);
    msg_append d;
    CHECK(msg_append_decode(w.p, w.len, &d) == 0);
    CHECK(d.term == 4 && d.prev_index == 6 && d.prev_term == 3 && d.commit == 5);
    CHECK(d.sent_us == 123456789 && d.leader_last == 8 && d.count == 2);
    size_t pos = 0;
    msg_entry e;
    for (int i = 0; i < 2; i++) {
        CHECK(msg_append_next(&d, &pos, &e) == 1);
        CHECK(e.index == ents[i]->index && e.term == ents[i]->term && e.len == ents[i]->len);
        CHECK(e.len == 0 || memcmp(e.data, ents[i]->data, e.len) == 0);
    }
    CHECK(msg_append_next(&d, &pos, &e) == 0);
    check_strict(dec_append, &w);
    check_u32_refused(dec_append, &w, 48, 3);             /* count past the entries */
    check_u32_refused(dec_append, &w, 48, 1);             /* an entry left over */
    check_u32_refused(dec_append, &w, 48, UINT32_MAX);
    check_u32_refused(dec_append, &w, 52 + 16, 15);       /* entry length past the end */
    check_u32_refused(dec_append, &w, 52 + 16, 13);       /* ... or short of it */
    check_u32_refused(dec_append, &w, 52 + 16, UINT32_MAX);
    wb_free(&w);
    /* a heartbeat: no entries */
    m.count = 0;
    msg_append_encode(&w, &m);
    CHECK_EQ_LL(w.len, 52);
    check_strict(dec_append, &w);
    wb_free(&w);
    free(e1);
    free(e2);
}

static void test_append_resp(void) {
    msg_append_resp m = {.term = 1, .ok = 1, .index = 2, .sent_us = 3}, d;
    wbuf w = {0};
    msg_append_resp_encode(&w, &m);
    /* docs/PROTOCOL.md: term, u8 ok, index, sent_us */
    static const uint8_t want[25] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0,
                                     3, 0, 0, 0, 0, 0, 0, 0};
    CHECK(w.len == sizeof want && memcmp(w.p, want, sizeof want) == 0);
    CHECK(msg_append_resp_decode(w.p, w.len, &d) == 0);
    CHECK(d.term == 1 && d.ok == 1 && d.index == 2 && d.sent_us == 3);
    check_strict(dec_append_resp, &w);
    wb_free(&w);
    /* a flag byte keeps its value: decoding and encoding give the same bytes */
    uint8_t raw[25];
    memcpy(raw, want, sizeof raw);
    raw[8] = 0xee;
    CHECK(msg_append_resp_decode(raw, sizeof raw, &d) == 0 && d.ok == 0xee);
    msg_append_resp_encode(&w, &d);
    CHECK(w.len == sizeof raw && memcmp(w.p, raw, sizeof raw) == 0);
    wb_free(&w);
}

static void test_votes(void) {
    msg_vote_req q = {.term = UINT64_MAX, .last_index = 1ull << 40, .last_term = 9}, dq;
    wbuf w = {0};
    msg_vote_req_encode(&w, &q);
    CHECK_EQ_LL(w.len, 24);
    CHECK(msg_vote_req_decode(w.p, w.len, &dq) == 0);
    CHECK(dq.term == q.term && dq.last_index == q.last_index && dq.last_term == q.last_term);
    check_strict(dec_vote_req, &w);
    wb_free(&w);
    msg_vote_resp r = {.term = 77, .granted = 1}, dr;
    msg_vote_resp_encode(&w, &r);
    CHECK_EQ_LL(w.len, 9);
    CHECK(msg_vote_resp_decode(w.p, w.len, &dr) == 0 && dr.term == 77 && dr.granted == 1);
    check_strict(dec_vote_resp, &w);
    wb_free(&w);
}

static void test_request(void) {
    uint64_t keys[3] = {1, 0xfedcba9876543210ull, UINT64_MAX};
    const char req[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
    msg_request m = {.req_id = 11, .term = 5, .cid = 0x0102030405060708ull, .seq = 42,
                     .kind = 2, .proto = 3, .is_write = 1, .nkeys = 3, .keys = keys,
                     .req = (const uint8_t *)req, .req_len = sizeof req - 1};
    wbuf w = {0};
    msg_request_encode(&w, &m);
    CHECK_EQ_LL(w.len, 39 + 24 + 4 + sizeof req - 1);
    /* docs/PROTOCOL.md: req_id, term, cid, seq, u8 kind, u8 proto, u8 is_write, u32 nkeys */
    CHECK(w.p[0] == 11 && w.p[8] == 5 && w.p[16] == 8 && w.p[23] == 1 && w.p[24] == 42);
    CHECK(w.p[32] == 2 && w.p[33] == 3 && w.p[34] == 1 && w.p[35] == 3 && w.p[39] == 1);
    msg_request d;
    uint64_t got[MSG_MAX_KEYS];
    CHECK(msg_request_decode(w.p, w.len, &d, got) == 0);
    CHECK(d.req_id == 11 && d.term == 5 && d.cid == m.cid && d.seq == 42);
    CHECK(d.kind == 2 && d.proto == 3 && d.is_write == 1 && d.nkeys == 3);
    CHECK(memcmp(d.keys, keys, sizeof keys) == 0);
    CHECK(d.req_len == sizeof req - 1 && memcmp(d.req, req, d.req_len) == 0);
    check_strict(dec_request, &w);
    check_u32_refused(dec_request, &w, 35, MSG_MAX_KEYS + 1); /* over the limit */
    check_u32_refused(dec_request, &w, 35, 4);                /* keys past the end */
    check_u32_refused(dec_request, &w, 35, MSG_NKEYS_ALL);    /* keys left over */
    check_u32_refused(dec_request, &w, 39 + 24, 1000);        /* request past the end */
    wb_free(&w);
    /* the whole keyspace: no keys on the wire */
    m.nkeys = -1;
    msg_request_encode(&w, &m);
    CHECK(msg_request_decode(w.p, w.len, &d, got) == 0 && d.nkeys == -1);
    check_strict(dec_request, &w);
    wb_free(&w);
}

static void test_forward_resp(void) {
    msg_forward_resp m = {.req_id = 9, .term = 2, .status = FWD_NOT_LEADER, .synced = 1,
                          .index = 300, .reply = (const uint8_t *)"+OK\r\n", .reply_len = 5};
    wbuf w = {0};
    msg_forward_resp_encode(&w, &m);
    CHECK_EQ_LL(w.len, 26 + 4 + 5);
    msg_forward_resp d;
    CHECK(msg_forward_resp_decode(w.p, w.len, &d) == 0);
    CHECK(d.req_id == 9 && d.term == 2 && d.status == FWD_NOT_LEADER && d.synced == 1);
    CHECK(d.index == 300 && d.reply_len == 5 && memcmp(d.reply, "+OK\r\n", 5) == 0);
    check_strict(dec_forward_resp, &w);
    check_u32_refused(dec_forward_resp, &w, 26, 6);
    wb_free(&w);
}

static void test_record_resp_and_collect(void) {
    msg_record_resp m = {.req_id = UINT64_MAX - 1, .status = WITNESS_CONFLICT}, d;
    wbuf w = {0};
    msg_record_resp_encode(&w, &m);
    CHECK_EQ_LL(w.len, 9);
    CHECK(msg_record_resp_decode(w.p, w.len, &d) == 0);
    CHECK(d.req_id == m.req_id && d.status == WITNESS_CONFLICT);
    check_strict(dec_record_resp, &w);
    wb_free(&w);
    msg_collect c = {.term = 31}, dc;
    msg_collect_encode(&w, &c);
    CHECK(w.len == 8 && msg_collect_decode(w.p, w.len, &dc) == 0 && dc.term == 31);
    check_strict(dec_collect, &w);
    wb_free(&w);
}

static msg_record make_record(uint64_t cid, uint32_t nkeys, const char *req) {
    msg_record r = {.cid = cid, .seq = cid * 10, .nkeys = nkeys,
                    .req = (const uint8_t *)req, .req_len = strlen(req)};
    for (uint32_t i = 0; i < nkeys; i++) r.keys[i] = cid * 1000 + i;
    return r;
}

static int same_record(const msg_record *a, const msg_record *b) {
    return a->cid == b->cid && a->seq == b->seq && a->nkeys == b->nkeys &&
           memcmp(a->keys, b->keys, a->nkeys * sizeof *a->keys) == 0 &&
           a->req_len == b->req_len && memcmp(a->req, b->req, a->req_len) == 0;
}

static void test_stale_record(void) {
    msg_record r = make_record(5, WITNESS_MAX_KEYS, "*1\r\n$4\r\nINCR\r\n"), d;
    wbuf w = {0};
    msg_record_encode(&w, &r);
    CHECK_EQ_LL(w.len, 20 + 8 * WITNESS_MAX_KEYS + 4 + r.req_len);
    CHECK(msg_record_decode(w.p, w.len, &d) == 0 && same_record(&r, &d));
    check_strict(dec_record, &w);
    check_u32_refused(dec_record, &w, 16, WITNESS_MAX_KEYS + 1);
    wb_free(&w);
}

static void test_collect_resp(void) {
    msg_record recs[3] = {make_record(1, 1, "a"), make_record(2, 3, ""), make_record(3, 2, "ccc")};
    wbuf body = {0};
    for (int i = 0; i < 3; i++) msg_record_encode(&body, &recs[i]);
    msg_collect_resp m = {.term = 8, .complete_since = 2, .max_term = 7, .led_term = 6,
                          .led_last = 99, .records = {3, body.p, body.len}};
    wbuf w = {0};
    msg_collect_resp_encode(&w, &m);
    CHECK_EQ_LL(w.len, 44 + body.len);
    msg_collect_resp d;
    CHECK(msg_collect_resp_decode(w.p, w.len, &d) == 0);
    CHECK(d.term == 8 && d.complete_since == 2 && d.max_term == 7 && d.led_term == 6);
    CHECK(d.led_last == 99 && d.records.count == 3 && d.records.len == body.len);
    size_t pos = 0;
    msg_record r;
    for (int i = 0; i < 3; i++) CHECK(msg_records_next(&d.records, &pos, &r) == 1 &&
                                      same_record(&r, &recs[i]));
    CHECK(msg_records_next(&d.records, &pos, &r) == 0);
    check_strict(dec_collect_resp, &w);
    check_u32_refused(dec_collect_resp, &w, 40, 4);
    check_u32_refused(dec_collect_resp, &w, 40, 2);
    check_u32_refused(dec_collect_resp, &w, 44 + 16, WITNESS_MAX_KEYS + 1);
    wb_free(&w);
    wb_free(&body);
    /* no records */
    m.records = (msg_records){0, NULL, 0};
    msg_collect_resp_encode(&w, &m);
    CHECK(w.len == 44 && msg_collect_resp_decode(w.p, w.len, &d) == 0 && d.records.count == 0);
    wb_free(&w);
}

static void test_gc_and_ping(void) {
    msg_gc g = {.cid = 3, .seq = 4, .nkeys = 2, .keys = {10, 20}}, d;
    wbuf w = {0};
    msg_gc_encode(&w, &g);
    CHECK_EQ_LL(w.len, 20 + 16);
    CHECK(msg_gc_decode(w.p, w.len, &d) == 0);
    CHECK(d.cid == 3 && d.seq == 4 && d.nkeys == 2 && d.keys[0] == 10 && d.keys[1] == 20);
    check_strict(dec_gc, &w);
    check_u32_refused(dec_gc, &w, 16, 3);
    check_u32_refused(dec_gc, &w, 16, WITNESS_MAX_KEYS + 1);
    wb_free(&w);
    CHECK(msg_ping_decode(NULL, 0) == 0);
    CHECK(msg_ping_decode((const uint8_t *)"x", 1) < 0);
}

static void test_names(void) {
    CHECK(msg_name(0) == NULL && msg_name(MSG_TYPE_MAX + 1) == NULL && msg_name(-1) == NULL);
    for (int t = 1; t <= MSG_TYPE_MAX; t++) CHECK(msg_name(t) != NULL);
    CHECK(strcmp(msg_name(MSG_APPEND), "APPEND") == 0);
    CHECK(strcmp(msg_name(MSG_PING), "PING") == 0);
}

/* docs/PROTOCOL.md's table of bus messages ("| 1 | APPEND (...) | ...")
 * names the types msg.h defines, each once, and no other. Run from the
 * repository root (make unit does). */
static void test_protocol_doc(void) {
    FILE *f = fopen("docs/PROTOCOL.md", "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[4096];
    int seen[MSG_TYPE_MAX + 1] = {0}, in_bus = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "## ", 3) == 0) in_bus = strstr(line, "cluster bus") != NULL;
        int type;
        char name[64];
        if (!in_bus || sscanf(line, "| %d | %63[A-Z_]", &type, name) != 2) continue;
        if (type < 1 || type > MSG_TYPE_MAX || strcmp(name, msg_name(type)) != 0) {
            fprintf(stderr, "  docs/PROTOCOL.md: type %d is %s, msg.h says %s\n", type, name,
                    msg_name(type) ? msg_name(type) : "(none)");
            CHECK(!"the documented message is not msg.h's");
            continue;
        }
        seen[type]++;
    }
    fclose(f);
    for (int t = 1; t <= MSG_TYPE_MAX; t++)
        if (seen[t] != 1) {
            fprintf(stderr, "  docs/PROTOCOL.md documents %s %d times\n", msg_name(t), seen[t]);
            CHECK(!"every message is documented once");
        }
}

int main(void) {
    RUN(test_append);
    RUN(test_append_resp);
    RUN(test_votes);
    RUN(test_request);
    RUN(test_forward_resp);
    RUN(test_record_resp_and_collect);
    RUN(test_stale_record);
    RUN(test_collect_resp);
    RUN(test_gc_and_ping);
    RUN(test_names);
    RUN(test_protocol_doc);
    return check_summary("msg");
}
