/* msg.c - encoders and decoders of the cluster bus messages (msg.h), one
 * pair per message, side by side. */
#include "msg.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "../lib/codec.h"
#include "../lib/mem.h"

/* The fixed layouts: every offset as docs/PROTOCOL.md gives it, no padding. */
static_assert(offsetof(msg_append_head_wire, prev_index) == 8, "APPEND layout");
static_assert(offsetof(msg_append_head_wire, prev_term) == 16, "APPEND layout");
static_assert(offsetof(msg_append_head_wire, commit) == 24, "APPEND layout");
static_assert(offsetof(msg_append_head_wire, sent_us) == 32, "APPEND layout");
static_assert(offsetof(msg_append_head_wire, leader_last) == 40, "APPEND layout");
static_assert(offsetof(msg_append_head_wire, count) == 48, "APPEND layout");
static_assert(sizeof(msg_append_head_wire) == 52, "APPEND layout");
static_assert(offsetof(msg_append_resp_wire, ok) == 8, "APPEND_RESP layout");
static_assert(offsetof(msg_append_resp_wire, index) == 9, "APPEND_RESP layout");
static_assert(offsetof(msg_append_resp_wire, sent_us) == 17, "APPEND_RESP layout");
static_assert(sizeof(msg_append_resp_wire) == 25, "APPEND_RESP layout");
static_assert(offsetof(msg_vote_req_wire, last_index) == 8, "VOTE_REQ layout");
static_assert(offsetof(msg_vote_req_wire, last_term) == 16, "VOTE_REQ layout");
static_assert(sizeof(msg_vote_req_wire) == 24, "VOTE_REQ layout");
static_assert(offsetof(msg_vote_resp_wire, granted) == 8, "VOTE_RESP layout");
static_assert(sizeof(msg_vote_resp_wire) == 9, "VOTE_RESP layout");
static_assert(offsetof(msg_request_head_wire, cid) == 16, "FORWARD layout");
static_assert(offsetof(msg_request_head_wire, kind) == 32, "FORWARD layout");
static_assert(offsetof(msg_request_head_wire, proto) == 33, "FORWARD layout");
static_assert(offsetof(msg_request_head_wire, is_write) == 34, "FORWARD layout");
static_assert(offsetof(msg_request_head_wire, nkeys) == 35, "FORWARD layout");
static_assert(sizeof(msg_request_head_wire) == 39, "FORWARD layout");
static_assert(offsetof(msg_forward_resp_head_wire, status) == 16, "FORWARD_RESP layout");
static_assert(offsetof(msg_forward_resp_head_wire, synced) == 17, "FORWARD_RESP layout");
static_assert(offsetof(msg_forward_resp_head_wire, index) == 18, "FORWARD_RESP layout");
static_assert(sizeof(msg_forward_resp_head_wire) == 26, "FORWARD_RESP layout");
static_assert(offsetof(msg_record_resp_wire, status) == 8, "RECORD_RESP layout");
static_assert(sizeof(msg_record_resp_wire) == 9, "RECORD_RESP layout");
static_assert(sizeof(msg_collect_wire) == 8, "COLLECT layout");
static_assert(offsetof(msg_collect_resp_head_wire, max_term) == 16, "COLLECT_RESP layout");
static_assert(offsetof(msg_collect_resp_head_wire, led_last) == 32, "COLLECT_RESP layout");
static_assert(offsetof(msg_collect_resp_head_wire, count) == 40, "COLLECT_RESP layout");
static_assert(sizeof(msg_collect_resp_head_wire) == 44, "COLLECT_RESP layout");

/* ---- the writer and the bounds-checked reader under every codec ---- */

static void wb_reserve(wbuf *w, size_t more) {
    if (w->len + more <= w->cap) return;
    size_t cap = w->cap ? w->cap * 2 : 256;
    while (cap < w->len + more) cap *= 2;
    w->p = xrealloc(w->p, cap);
    w->cap = cap;
}

static void wb_u32(wbuf *w, uint32_t v) {
    wb_reserve(w, 4);
    codec_put_le32(w->p + w->len, v);
    w->len += 4;
}

static void wb_u64(wbuf *w, uint64_t v) {
    wb_reserve(w, 8);
    codec_put_le64(w->p + w->len, v);
    w->len += 8;
}

/* n raw bytes (no length prefix). */
static void wb_put(wbuf *w, const void *p, size_t n) {
    wb_reserve(w, n);
    if (n) memcpy(w->p + w->len, p, n);
    w->len += n;
}

/* A length-prefixed byte string: u32 length, then the bytes. */
static void wb_bytes(wbuf *w, const void *p, size_t n) {
    wb_u32(w, (uint32_t)n);
    wb_put(w, p, n);
}

void wb_free(wbuf *w) {
    free(w->p);
    w->p = NULL;
    w->len = w->cap = 0;
}

/* A reader that runs past its end sets `bad` and returns zeros, so a
 * decoder reads every field and checks `bad` once. */
typedef struct rbuf {
    const unsigned char *p;
    size_t len, pos;
    int bad;
} rbuf;

static rbuf rb_make(const uint8_t *p, size_t len) { return (rbuf){p, len, 0, 0}; }

static int rb_need(rbuf *r, size_t n) {
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

static uint32_t rb_u32(rbuf *r) {
    if (!rb_need(r, 4)) return 0;
    r->pos += 4;
    return codec_get_le32(r->p + r->pos - 4);
}

static uint64_t rb_u64(rbuf *r) {
    if (!rb_need(r, 8)) return 0;
    r->pos += 8;
    return codec_get_le64(r->p + r->pos - 8);
}

/* A length-prefixed byte string: a view into the message. */
static const unsigned char *rb_bytes(rbuf *r, size_t *n) {
    uint32_t len = rb_u32(r);
    if (!rb_need(r, len)) {
        *n = 0;
        return NULL;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += len;
    *n = len;
    return p;
}

static const char *const names[MSG_TYPE_MAX + 1] = {
    [MSG_APPEND] = "APPEND",           [MSG_APPEND_RESP] = "APPEND_RESP",
    [MSG_VOTE_REQ] = "VOTE_REQ",       [MSG_VOTE_RESP] = "VOTE_RESP",
    [MSG_FORWARD] = "FORWARD",         [MSG_FORWARD_RESP] = "FORWARD_RESP",
    [MSG_RECORD] = "RECORD",           [MSG_RECORD_RESP] = "RECORD_RESP",
    [MSG_COLLECT] = "COLLECT",         [MSG_COLLECT_RESP] = "COLLECT_RESP",
    [MSG_STALE] = "STALE",             [MSG_GC] = "GC",
    [MSG_PREVOTE_REQ] = "PREVOTE_REQ", [MSG_PREVOTE_RESP] = "PREVOTE_RESP",
    [MSG_PING] = "PING",
};

const char *msg_name(int type) {
    return type >= 1 && type <= MSG_TYPE_MAX ? names[type] : NULL;
}

/* A fixed-size head: its bytes, or NULL when the payload is shorter. The
 * reader moves past it. */
static const uint8_t *take(rbuf *r, size_t n) {
    if (!rb_need(r, n)) return NULL;
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

/* The end of a decode: every byte read, none past the end. */
static int done(const rbuf *r) { return !r->bad && r->pos == r->len ? 0 : -1; }

/* ---- APPEND ---- */

void msg_append_encode(wbuf *w, const msg_append *m) {
    msg_append_head_wire h;
    codec_put_le64(h.term, m->term);
    codec_put_le64(h.prev_index, m->prev_index);
    codec_put_le64(h.prev_term, m->prev_term);
    codec_put_le64(h.commit, m->commit);
    codec_put_le64(h.sent_us, m->sent_us);
    codec_put_le64(h.leader_last, m->leader_last);
    codec_put_le32(h.count, m->count);
    wb_put(w, &h, sizeof h);
    for (uint32_t i = 0; i < m->count; i++) {
        wb_u64(w, m->ents[i]->index);
        wb_u64(w, m->ents[i]->term);
        wb_bytes(w, m->ents[i]->data, m->ents[i]->len);
    }
}

/* One entry at r (index, term, bytes); r->bad when it does not fit. */
static void read_entry(rbuf *r, msg_entry *e) {
    e->index = rb_u64(r);
    e->term = rb_u64(r);
    e->data = rb_bytes(r, &e->len);
}

int msg_append_decode(const uint8_t *p, size_t n, msg_append *m) {
    rbuf r = rb_make(p, n);
    const uint8_t *h = take(&r, sizeof(msg_append_head_wire));
    if (!h) return -1;
    const msg_append_head_wire *hw = (const msg_append_head_wire *)h;
    m->term = codec_get_le64(hw->term);
    m->prev_index = codec_get_le64(hw->prev_index);
    m->prev_term = codec_get_le64(hw->prev_term);
    m->commit = codec_get_le64(hw->commit);
    m->sent_us = codec_get_le64(hw->sent_us);
    m->leader_last = codec_get_le64(hw->leader_last);
    m->count = codec_get_le32(hw->count);
    m->ents = NULL;
    m->body = p + r.pos;
    m->body_len = n - r.pos;
    /* each entry takes 20 bytes at least: a count the bytes cannot hold
     * fails before the walk */
    if (m->count > m->body_len / 20) return -1;
    for (uint32_t i = 0; i < m->count && !r.bad; i++) {
        msg_entry e;
        read_entry(&r, &e);
    }
    return done(&r);
}

int msg_append_next(const msg_append *m, size_t *pos, msg_entry *e) {
    if (*pos >= m->body_len) return 0;
    rbuf r = rb_make(m->body, m->body_len);
    r.pos = *pos;
    read_entry(&r, e);
    if (r.bad) return 0;
    *pos = r.pos;
    return 1;
}

/* ---- APPEND_RESP ---- */

void msg_append_resp_encode(wbuf *w, const msg_append_resp *m) {
    msg_append_resp_wire x;
    codec_put_le64(x.term, m->term);
    x.ok[0] = m->ok;
    codec_put_le64(x.index, m->index);
    codec_put_le64(x.sent_us, m->sent_us);
    wb_put(w, &x, sizeof x);
}

int msg_append_resp_decode(const uint8_t *p, size_t n, msg_append_resp *m) {
    if (n != sizeof(msg_append_resp_wire)) return -1;
    const msg_append_resp_wire *x = (const msg_append_resp_wire *)p;
    m->term = codec_get_le64(x->term);
    m->ok = x->ok[0];
    m->index = codec_get_le64(x->index);
    m->sent_us = codec_get_le64(x->sent_us);
    return 0;
}

/* ---- VOTE_REQ / PREVOTE_REQ ---- */

void msg_vote_req_encode(wbuf *w, const msg_vote_req *m) {
    msg_vote_req_wire x;
    codec_put_le64(x.term, m->term);
    codec_put_le64(x.last_index, m->last_index);
    codec_put_le64(x.last_term, m->last_term);
    wb_put(w, &x, sizeof x);
}

int msg_vote_req_decode(const uint8_t *p, size_t n, msg_vote_req *m) {
    if (n != sizeof(msg_vote_req_wire)) return -1;
    const msg_vote_req_wire *x = (const msg_vote_req_wire *)p;
    m->term = codec_get_le64(x->term);
    m->last_index = codec_get_le64(x->last_index);
    m->last_term = codec_get_le64(x->last_term);
    return 0;
}

/* ---- VOTE_RESP / PREVOTE_RESP ---- */

void msg_vote_resp_encode(wbuf *w, const msg_vote_resp *m) {
    msg_vote_resp_wire x;
    codec_put_le64(x.term, m->term);
    x.granted[0] = m->granted;
    wb_put(w, &x, sizeof x);
}

int msg_vote_resp_decode(const uint8_t *p, size_t n, msg_vote_resp *m) {
    if (n != sizeof(msg_vote_resp_wire)) return -1;
    const msg_vote_resp_wire *x = (const msg_vote_resp_wire *)p;
    m->term = codec_get_le64(x->term);
    m->granted = x->granted[0];
    return 0;
}

/* ---- FORWARD / RECORD ---- */

void msg_request_encode(wbuf *w, const msg_request *m) {
    msg_request_head_wire h;
    codec_put_le64(h.req_id, m->req_id);
    codec_put_le64(h.term, m->term);
    codec_put_le64(h.cid, m->cid);
    codec_put_le64(h.seq, m->seq);
    h.kind[0] = m->kind;
    h.proto[0] = m->proto;
    h.is_write[0] = m->is_write;
    codec_put_le32(h.nkeys, m->nkeys < 0 ? MSG_NKEYS_ALL : (uint32_t)m->nkeys);
    wb_put(w, &h, sizeof h);
    for (int i = 0; i < m->nkeys; i++) wb_u64(w, m->keys[i]);
    wb_bytes(w, m->req, m->req_len);
}

int msg_request_decode(const uint8_t *p, size_t n, msg_request *m, uint64_t *keys) {
    rbuf r = rb_make(p, n);
    const uint8_t *h = take(&r, sizeof(msg_request_head_wire));
    if (!h) return -1;
    const msg_request_head_wire *hw = (const msg_request_head_wire *)h;
    m->req_id = codec_get_le64(hw->req_id);
    m->term = codec_get_le64(hw->term);
    m->cid = codec_get_le64(hw->cid);
    m->seq = codec_get_le64(hw->seq);
    m->kind = hw->kind[0];
    m->proto = hw->proto[0];
    m->is_write = hw->is_write[0];
    uint32_t nk = codec_get_le32(hw->nkeys);
    if (nk != MSG_NKEYS_ALL && nk > MSG_MAX_KEYS) return -1;
    m->nkeys = nk == MSG_NKEYS_ALL ? -1 : (int)nk;
    m->keys = keys;
    for (int i = 0; i < m->nkeys; i++) keys[i] = rb_u64(&r);
    m->req = rb_bytes(&r, &m->req_len);
    return done(&r);
}

/* ---- FORWARD_RESP ---- */

void msg_forward_resp_encode(wbuf *w, const msg_forward_resp *m) {
    msg_forward_resp_head_wire h;
    codec_put_le64(h.req_id, m->req_id);
    codec_put_le64(h.term, m->term);
    h.status[0] = m->status;
    h.synced[0] = m->synced;
    codec_put_le64(h.index, m->index);
    wb_put(w, &h, sizeof h);
    wb_bytes(w, m->reply, m->reply_len);
}

int msg_forward_resp_decode(const uint8_t *p, size_t n, msg_forward_resp *m) {
    rbuf r = rb_make(p, n);
    const uint8_t *h = take(&r, sizeof(msg_forward_resp_head_wire));
    if (!h) return -1;
    const msg_forward_resp_head_wire *hw = (const msg_forward_resp_head_wire *)h;
    m->req_id = codec_get_le64(hw->req_id);
    m->term = codec_get_le64(hw->term);
    m->status = hw->status[0];
    m->synced = hw->synced[0];
    m->index = codec_get_le64(hw->index);
    m->reply = rb_bytes(&r, &m->reply_len);
    return done(&r);
}

/* ---- RECORD_RESP ---- */

void msg_record_resp_encode(wbuf *w, const msg_record_resp *m) {
    msg_record_resp_wire x;
    codec_put_le64(x.req_id, m->req_id);
    x.status[0] = m->status;
    wb_put(w, &x, sizeof x);
}

int msg_record_resp_decode(const uint8_t *p, size_t n, msg_record_resp *m) {
    if (n != sizeof(msg_record_resp_wire)) return -1;
    const msg_record_resp_wire *x = (const msg_record_resp_wire *)p;
    m->req_id = codec_get_le64(x->req_id);
    m->status = x->status[0];
    return 0;
}

/* ---- COLLECT ---- */

void msg_collect_encode(wbuf *w, const msg_collect *m) {
    msg_collect_wire x;
    codec_put_le64(x.term, m->term);
    wb_put(w, &x, sizeof x);
}

int msg_collect_decode(const uint8_t *p, size_t n, msg_collect *m) {
    if (n != sizeof(msg_collect_wire)) return -1;
    m->term = codec_get_le64(((const msg_collect_wire *)p)->term);
    return 0;
}

/* ---- witness records ---- */

/* cid, seq, u32 nkeys and the keys, shared by a record and a GC. */
static void put_key_set(wbuf *w, uint64_t cid, uint64_t seq, uint32_t nkeys,
                        const uint64_t *keys) {
    wb_u64(w, cid);
    wb_u64(w, seq);
    wb_u32(w, nkeys);
    for (uint32_t i = 0; i < nkeys; i++) wb_u64(w, keys[i]);
}

static void get_key_set(rbuf *r, uint64_t *cid, uint64_t *seq, uint32_t *nkeys, uint64_t *keys) {
    *cid = rb_u64(r);
    *seq = rb_u64(r);
    *nkeys = rb_u32(r);
    if (*nkeys > WITNESS_MAX_KEYS) {
        r->bad = 1;
        *nkeys = 0;
    }
    for (uint32_t i = 0; i < *nkeys; i++) keys[i] = rb_u64(r);
}

void msg_record_encode(wbuf *w, const msg_record *m) {
    put_key_set(w, m->cid, m->seq, m->nkeys, m->keys);
    wb_bytes(w, m->req, m->req_len);
}

static void read_record(rbuf *r, msg_record *m) {
    get_key_set(r, &m->cid, &m->seq, &m->nkeys, m->keys);
    m->req = rb_bytes(r, &m->req_len);
}

int msg_record_decode(const uint8_t *p, size_t n, msg_record *m) {
    rbuf r = rb_make(p, n);
    read_record(&r, m);
    return done(&r);
}

int msg_records_next(const msg_records *l, size_t *pos, msg_record *r) {
    if (*pos >= l->len) return 0;
    rbuf b = rb_make(l->body, l->len);
    b.pos = *pos;
    read_record(&b, r);
    if (b.bad) return -1;
    *pos = b.pos;
    return 1;
}

int msg_records_check(const msg_records *l) {
    /* each record takes 24 bytes at least */
    if (l->count > l->len / 24) return -1;
    size_t pos = 0;
    msg_record r;
    for (uint32_t i = 0; i < l->count; i++)
        if (msg_records_next(l, &pos, &r) != 1) return -1;
    return pos == l->len ? 0 : -1;
}

/* ---- COLLECT_RESP ---- */

void msg_collect_resp_encode(wbuf *w, const msg_collect_resp *m) {
    msg_collect_resp_head_wire h;
    codec_put_le64(h.term, m->term);
    codec_put_le64(h.complete_since, m->complete_since);
    codec_put_le64(h.max_term, m->max_term);
    codec_put_le64(h.led_term, m->led_term);
    codec_put_le64(h.led_last, m->led_last);
    codec_put_le32(h.count, m->records.count);
    wb_put(w, &h, sizeof h);
    wb_put(w, m->records.body, m->records.len);
}

int msg_collect_resp_decode(const uint8_t *p, size_t n, msg_collect_resp *m) {
    if (n < sizeof(msg_collect_resp_head_wire)) return -1;
    const msg_collect_resp_head_wire *h = (const msg_collect_resp_head_wire *)p;
    m->term = codec_get_le64(h->term);
    m->complete_since = codec_get_le64(h->complete_since);
    m->max_term = codec_get_le64(h->max_term);
    m->led_term = codec_get_le64(h->led_term);
    m->led_last = codec_get_le64(h->led_last);
    m->records.count = codec_get_le32(h->count);
    m->records.body = p + sizeof *h;
    m->records.len = n - sizeof *h;
    return msg_records_check(&m->records);
}

/* ---- GC ---- */

void msg_gc_encode(wbuf *w, const msg_gc *m) { put_key_set(w, m->cid, m->seq, m->nkeys, m->keys); }

int msg_gc_decode(const uint8_t *p, size_t n, msg_gc *m) {
    rbuf r = rb_make(p, n);
    get_key_set(&r, &m->cid, &m->seq, &m->nkeys, m->keys);
    return done(&r);
}

/* ---- PING ---- */

int msg_ping_decode(const uint8_t *p, size_t n) {
    (void)p;
    return n == 0 ? 0 : -1;
}
