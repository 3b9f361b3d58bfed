/* msg.h - the cluster bus messages, each defined once: a struct, its
 * encoder and its decoder side by side, used by the sender and the
 * receiver alike. docs/PROTOCOL.md ("The cluster bus") lists them;
 * tests/unit/test_msg.c round-trips every one (and checks the documented
 * type numbers are these), tests/fuzz/fuzz_msg.c decodes any bytes as
 * each. The frame around a payload (length, type, MAC) and the handshake
 * (type 0: HELLO, HELLO+PROOF, PROOF) are busauth.h's.
 *
 * A payload is its fields in order: u64, u32 and u8 little endian; `bytes`
 * is a u32 length then the bytes. Where a message (or its head) has a
 * fixed layout, that layout is a struct of byte arrays below (no padding:
 * the static_asserts in msg.c pin every offset), so the header shows the
 * bytes as they travel.
 *
 * Encoders append to a wbuf (below). Decoders take the payload and return
 * 0, or -1 when it is malformed: a length past the end, a count the bytes
 * do not hold, a key count over its limit, or bytes left after the last
 * field. A decoder checks the whole payload, so a handler never sees half
 * a message; what it hands back (requests, replies, entries, records)
 * points into the payload and is valid while the payload is. Fields keep
 * their wire values (a u8 flag may be any byte): decoding and encoding
 * again gives the same bytes. Meaning (a term too old, a flag) is the
 * handler's to judge. */
#ifndef PIER_CLUSTER_MSG_H
#define PIER_CLUSTER_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "entry.h"
#include "witness.h"

/* What encoders append to: a growing byte buffer (the caller starts it
 * zeroed, `wbuf w = {0}`, and frees it with wb_free). */
typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
} wbuf;

void wb_free(wbuf *w);

enum msg_type {
    MSG_APPEND = 1,    /* leader -> follower: entries, commit index; also the heartbeat */
    MSG_APPEND_RESP,   /* follower -> leader */
    MSG_VOTE_REQ,      /* candidate -> all */
    MSG_VOTE_RESP,
    MSG_FORWARD,       /* proxy -> leader: a client request */
    MSG_FORWARD_RESP,
    MSG_RECORD,        /* proxy -> witness: record an unsynced update */
    MSG_RECORD_RESP,
    MSG_COLLECT,       /* new leader -> witness: hand over your records, freeze old terms */
    MSG_COLLECT_RESP,
    MSG_STALE,         /* witness -> leader: a record that was never synced */
    MSG_GC,            /* leader -> witnesses: drop this record */
    MSG_PREVOTE_REQ,   /* would you vote for me? (Raft thesis 9.6: no term change) */
    MSG_PREVOTE_RESP,
    MSG_PING,          /* follower -> follower: keeps an idle link open; no payload */
    MSG_TYPE_MAX = MSG_PING
};

/* The message's name as docs/PROTOCOL.md spells it ("APPEND"), NULL for a
 * type that is not one. */
const char *msg_name(int type);

/* Key hashes a request carries at most (more: none are sent, the request
 * is never witnessed); a witness record or GC at most WITNESS_MAX_KEYS. */
#define MSG_MAX_KEYS ENTRY_MAX_KEYS
#define MSG_NKEYS_ALL UINT32_MAX /* a request's nkeys on the wire for "the whole keyspace" (-1) */

/* ---- APPEND (1) ---- */

typedef struct msg_append_head_wire {
    uint8_t term[8], prev_index[8], prev_term[8], commit[8];
    uint8_t sent_us[8];     /* the leader's clock: echoed, it dates the lease */
    uint8_t leader_last[8]; /* the leader's last index */
    uint8_t count[4];       /* then count x {u64 index, u64 term, bytes entry} */
} msg_append_head_wire;

/* One entry of an APPEND as it travels: the bytes of its AOF record. */
typedef struct msg_entry {
    uint64_t index, term;
    const uint8_t *data;
    size_t len;
} msg_entry;

typedef struct msg_append {
    uint64_t term, prev_index, prev_term, commit, sent_us, leader_last;
    uint32_t count;
    /* encoding: the entries, ents[0..count) */
    const entry *const *ents;
    /* decoding: the count entries, back to back (msg_append_next walks them) */
    const uint8_t *body;
    size_t body_len;
} msg_append;

void msg_append_encode(wbuf *w, const msg_append *m);
int msg_append_decode(const uint8_t *p, size_t n, msg_append *m);
/* The next entry of a decoded APPEND; *pos starts at 0. 1 with *e set, 0
 * after the last (the decoder checked them all). */
int msg_append_next(const msg_append *m, size_t *pos, msg_entry *e);

/* ---- APPEND_RESP (2) ---- */

typedef struct msg_append_resp_wire {
    uint8_t term[8];
    uint8_t ok[1];
    uint8_t index[8];   /* ok: the last index stored; else where to resume */
    uint8_t sent_us[8]; /* the APPEND's, echoed */
} msg_append_resp_wire;

typedef struct msg_append_resp {
    uint64_t term;
    uint8_t ok;
    uint64_t index, sent_us;
} msg_append_resp;

void msg_append_resp_encode(wbuf *w, const msg_append_resp *m);
int msg_append_resp_decode(const uint8_t *p, size_t n, msg_append_resp *m);

/* ---- VOTE_REQ (3) and PREVOTE_REQ (13) ---- */

typedef struct msg_vote_req_wire {
    uint8_t term[8]; /* PREVOTE_REQ: the term the candidate would use */
    uint8_t last_index[8], last_term[8];
} msg_vote_req_wire;

typedef struct msg_vote_req {
    uint64_t term, last_index, last_term;
} msg_vote_req;

void msg_vote_req_encode(wbuf *w, const msg_vote_req *m);
int msg_vote_req_decode(const uint8_t *p, size_t n, msg_vote_req *m);

/* ---- VOTE_RESP (4) and PREVOTE_RESP (14) ---- */

typedef struct msg_vote_resp_wire {
    uint8_t term[8];
    uint8_t granted[1];
} msg_vote_resp_wire;

typedef struct msg_vote_resp {
    uint64_t term;
    uint8_t granted;
} msg_vote_resp;

void msg_vote_resp_encode(wbuf *w, const msg_vote_resp *m);
int msg_vote_resp_decode(const uint8_t *p, size_t n, msg_vote_resp *m);

/* ---- FORWARD (5) and RECORD (7): a client request ---- */

typedef struct msg_request_head_wire {
    uint8_t req_id[8]; /* the proxy's id for the answer */
    uint8_t term[8];   /* the proxy's term (RECORD: the witness accepts only its own) */
    uint8_t cid[8], seq[8];
    uint8_t kind[1];   /* CREQ_ */
    uint8_t proto[1];  /* the client's RESP version */
    uint8_t is_write[1];
    uint8_t nkeys[4];  /* then nkeys x u64 key hash (MSG_NKEYS_ALL: none), bytes request */
} msg_request_head_wire;

typedef struct msg_request {
    uint64_t req_id, term, cid, seq;
    uint8_t kind, proto, is_write;
    int nkeys;            /* -1: the whole keyspace; else 0..MSG_MAX_KEYS */
    const uint64_t *keys; /* decoding: the caller's array */
    const uint8_t *req;   /* the command as a RESP array */
    size_t req_len;
} msg_request;

void msg_request_encode(wbuf *w, const msg_request *m);
/* keys: room for MSG_MAX_KEYS hashes; m->keys points to it. */
int msg_request_decode(const uint8_t *p, size_t n, msg_request *m, uint64_t *keys);

/* ---- FORWARD_RESP (6) ---- */

typedef struct msg_forward_resp_head_wire {
    uint8_t req_id[8], term[8];
    uint8_t status[1]; /* FWD_ */
    uint8_t synced[1];
    uint8_t index[8];  /* then bytes reply */
} msg_forward_resp_head_wire;

enum { FWD_OK = 0, FWD_NOT_LEADER = 1 }; /* not the leader, or not serving yet */

typedef struct msg_forward_resp {
    uint64_t req_id, term;
    uint8_t status, synced;
    uint64_t index;
    const uint8_t *reply;
    size_t reply_len;
} msg_forward_resp;

void msg_forward_resp_encode(wbuf *w, const msg_forward_resp *m);
int msg_forward_resp_decode(const uint8_t *p, size_t n, msg_forward_resp *m);

/* ---- RECORD_RESP (8) ---- */

typedef struct msg_record_resp_wire {
    uint8_t req_id[8];
    uint8_t status[1]; /* WITNESS_ (witness.h) */
} msg_record_resp_wire;

typedef struct msg_record_resp {
    uint64_t req_id;
    uint8_t status;
} msg_record_resp;

void msg_record_resp_encode(wbuf *w, const msg_record_resp *m);
int msg_record_resp_decode(const uint8_t *p, size_t n, msg_record_resp *m);

/* ---- COLLECT (9) ---- */

typedef struct msg_collect_wire {
    uint8_t term[8];
} msg_collect_wire;

typedef struct msg_collect {
    uint64_t term;
} msg_collect;

void msg_collect_encode(wbuf *w, const msg_collect *m);
int msg_collect_decode(const uint8_t *p, size_t n, msg_collect *m);

/* ---- witness records: STALE (11) is one, COLLECT_RESP carries a list ---- */

typedef struct msg_record {
    uint64_t cid, seq;
    uint32_t nkeys; /* at most WITNESS_MAX_KEYS */
    uint64_t keys[WITNESS_MAX_KEYS];
    const uint8_t *req;
    size_t req_len;
} msg_record;

/* {cid, seq, u32 nkeys, nkeys x u64, bytes request} */
void msg_record_encode(wbuf *w, const msg_record *m);
int msg_record_decode(const uint8_t *p, size_t n, msg_record *m);

/* A list of records: count, then the records back to back (built with
 * msg_record_encode into a wbuf; on the wire as u32 count + the records). */
typedef struct msg_records {
    uint32_t count;
    const uint8_t *body;
    size_t len;
} msg_records;

/* The next record; *pos starts at 0. 1 with *r set, 0 after the last, -1
 * when the list is malformed (a list that came through a decoder is not). */
int msg_records_next(const msg_records *l, size_t *pos, msg_record *r);
/* 0 when body holds exactly count well-formed records, else -1. */
int msg_records_check(const msg_records *l);

/* ---- COLLECT_RESP (10) ---- */

typedef struct msg_collect_resp_head_wire {
    uint8_t term[8];
    uint8_t complete_since[8]; /* its witness holds every record it accepted from this term on */
    uint8_t max_term[8];       /* the newest record term below `term` */
    uint8_t led_term[8], led_last[8]; /* its log holds every request it answered as leader of
                                         led_term, up to led_last (0 0: no claim) */
    uint8_t count[4];          /* then count records */
} msg_collect_resp_head_wire;

typedef struct msg_collect_resp {
    uint64_t term, complete_since, max_term, led_term, led_last;
    msg_records records;
} msg_collect_resp;

void msg_collect_resp_encode(wbuf *w, const msg_collect_resp *m);
int msg_collect_resp_decode(const uint8_t *p, size_t n, msg_collect_resp *m);

/* ---- GC (12) ---- */

typedef struct msg_gc {
    uint64_t cid, seq;
    uint32_t nkeys; /* at most WITNESS_MAX_KEYS */
    uint64_t keys[WITNESS_MAX_KEYS];
} msg_gc;

/* {cid, seq, u32 nkeys, nkeys x u64} */
void msg_gc_encode(wbuf *w, const msg_gc *m);
int msg_gc_decode(const uint8_t *p, size_t n, msg_gc *m);

/* ---- PING (15): no payload ---- */

int msg_ping_decode(const uint8_t *p, size_t n);

#endif
