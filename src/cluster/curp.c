/* curp.c - requests through the cluster (CURP, Park and Ousterhout, NSDI
 * 2019, in its consensus form): the leader executes at once and tracks
 * which keys have unsynced writes; a follower acts as the CURP client for
 * its connections, sending each strong write to the leader and a record
 * to every other witness at the same time, and completes it in one round
 * trip when the leader answered and a super-quorum of witnesses accepted;
 * otherwise it waits for the commit (slow path). A new leader collects
 * the witnesses' records before it serves and replays the ones a
 * completed request must have left behind. docs/CONSISTENCY.md. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "internal.h"
#include "wire.h"

#define SLOT_MARK (UINT64_MAX - 1) /* a write on the slot is executing */
#define STALE_ROUNDS 200           /* gc rounds (10 ms ticks) before a record is stale */
#define RIFL_IDLE_MS (10 * 60 * 1000)
#define WITNESS_SETS_LOG2 12       /* 4096 sets of 4 ways: RAMCloud's shape */
#define WITNESS_WAYS 4

/* ---- small helpers ---- */

static unsigned slot_of(uint64_t h) { return (unsigned)(h & (UNSYNCED_SLOTS - 1)); }

static int superquorum_others(const cluster *cl) {
    /* f + ceil(f/2) + 1 accepts including the leader's own */
    int f = cl->f;
    return f + (f + 1) / 2;
}

static void copy_bytes(char **dst, size_t *dlen, const void *src, size_t n) {
    free(*dst);
    *dst = malloc(n ? n : 1);
    if (!*dst) abort();
    if (n) memcpy(*dst, src, n);
    *dlen = n;
}

static void req_free(cl_req *r) {
    if (!r) return;
    free(r->keys);
    free(r->blob);
    free(r->result);
    free(r);
}

/* The pending bytes of a reply queue, copied out. */
static char *reply_bytes(reply *out, size_t *len) {
    struct iovec iov[64];
    size_t total = 0, cap = 256;
    char *buf = malloc(cap);
    if (!buf) abort();
    for (;;) {
        int n = reply_iov(out, iov, 64);
        if (n <= 0) break;
        size_t got = 0;
        for (int i = 0; i < n; i++) {
            if (total + iov[i].iov_len > cap) {
                while (total + iov[i].iov_len > cap) cap *= 2;
                buf = realloc(buf, cap);
                if (!buf) abort();
            }
            memcpy(buf + total, iov[i].iov_base, iov[i].iov_len);
            total += iov[i].iov_len;
            got += iov[i].iov_len;
        }
        reply_consume(out, got);
    }
    *len = total;
    return buf;
}

static void deliver(cluster *cl, cl_req *r, int kind, uint64_t index, const char *bytes,
                    size_t len) {
    if (!r->client) return;
    cluster_done *d = malloc(sizeof *d + len);
    if (!d) abort();
    d->next = NULL;
    d->client = r->client;
    d->slot = r->slot;
    d->kind = kind;
    d->index = index;
    d->len = len;
    if (len) memcpy(d->bytes, bytes, len);
    cl->host->deliver(cl->host_arg, d);
    if (kind == CDONE_REPLY) r->client = NULL; /* answered: nothing more goes to it */
}

static void deliver_error(cluster *cl, cl_req *r, const char *line) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "-%s\r\n", line);
    deliver(cl, r, CDONE_REPLY, 0, buf, (size_t)n);
}

/* Decode a request blob into cl-owned views. Returns argc or -1. */
static int decode_blob(cluster *cl, const char *blob, size_t len, cmd_arg **argv) {
    static const int max_args = 1 << 20;
    size_t pos = 0;
    long long n = 0;
    if (len < 4 || blob[0] != '*') return -1;
    for (pos = 1; pos < len && blob[pos] >= '0' && blob[pos] <= '9' && pos < 12; pos++)
        n = n * 10 + (blob[pos] - '0');
    if (n < 1 || n > max_args) return -1;
    if ((size_t)n > cl->view.args_cap) {
        free(cl->view.args);
        cl->view.args = malloc((size_t)n * sizeof *cl->view.args);
        if (!cl->view.args) abort();
        cl->view.args_cap = (size_t)n;
    }
    int argc = 0;
    long used = resp_array_decode(blob, len, cl->view.args, (int)n, &argc);
    if (used <= 0 || (size_t)used != len) return -1;
    *argv = cl->view.args;
    return argc;
}

/* ---- entries (the exec_env propagate hooks) ---- */

uint64_t cl_collect_record(void *arg, cmd_arg name, int argc, const cmd_arg *argv) {
    cluster *cl = arg;
    if (!cl->eb_active) {
        eb_clear(&cl->eb);
        cl->eb_active = 1;
    }
    eb_record(&cl->eb, name, argc, argv);
    return 0;
}

/* Append a new entry for the running command (or for a write no client
 * asked for when r is NULL). Caller holds the keys' shard locks. */
static uint64_t append_entry(cluster *cl, const cl_req *r, const entry_builder *records,
                             const char *rep, size_t rep_len) {
    entry_builder b;
    eb_init(&b);
    pthread_mutex_lock(&cl->log_lock);
    /* Checked under log_lock, which a step-down also takes: a loop's
     * expiry DEL never lands in a log this node no longer leads. */
    if (atomic_load(&cl->role) != ROLE_LEADER) {
        pthread_mutex_unlock(&cl->log_lock);
        eb_free(&b);
        return 0;
    }
    uint64_t index = atomic_load(&cl->last_index) + 1;
    uint64_t nk = r && r->nkeys > 0 ? (uint64_t)r->nkeys : 0;
    eb_begin(&b, index, cl->term, r ? r->cid : 0, r ? r->seq : 0, r ? r->keys : NULL, nk, rep,
             rep_len);
    if (records) eb_append_records(&b, records);
    entry *e = eb_finish(&b);
    e->index = index;
    e->term = cl->term;
    cl_log_append_locked(cl, e);
    atomic_store(&cl->executed, index); /* the leader's keyspace has it already */
    pthread_mutex_unlock(&cl->log_lock);
    eb_free(&b);
    return index;
}

void cl_finish_entry(void *arg, cmd_ctx *c) {
    cluster *cl = arg;
    if (!cl->eb_active) return;
    cl->eb_active = 0;
    size_t len = 0;
    char *rep = NULL;
    if (cl->cur && cl->cur->cid) {
        /* the reply so far is this command's only (exec_out is per request) */
        rep = reply_bytes(c->out, &len);
        reply_raw(c->out, rep, len); /* put it back for the caller */
    }
    uint64_t index = append_entry(cl, cl->cur, &cl->eb, rep ? rep : "", len);
    if (cl->cur) cl->cur->index = index;
    free(rep);
}

/* Raise the unsynced slot of every key to index (any thread). */
static void mark_unsynced(cluster *cl, const uint64_t *keys, int nkeys, uint64_t index) {
    for (int i = 0; i < nkeys; i++) {
        _Atomic uint64_t *s = &cl->unsynced[slot_of(keys[i])];
        uint64_t cur = atomic_load(s);
        while ((cur < index || cur == SLOT_MARK) &&
               !atomic_compare_exchange_weak(s, &cur, index)) {
        }
    }
}

/* The executor's own slots after a command: the highest of what it wrote
 * (or what was there before) and anything an expiry set meanwhile. */
static void settle_slot(cluster *cl, uint64_t key, uint64_t to) {
    _Atomic uint64_t *s = &cl->unsynced[slot_of(key)];
    uint64_t cur = atomic_load(s);
    for (;;) {
        uint64_t want = cur == SLOT_MARK ? to : (cur > to ? cur : to);
        if (atomic_compare_exchange_weak(s, &cur, want)) return;
    }
}

void cl_log_expired(void *arg, const char *key, size_t klen) {
    cluster *cl = arg;
    if (atomic_load(&cl->role) != ROLE_LEADER) return;
    uint64_t h = entry_key_hash(key, klen);
    entry_builder rec;
    eb_init(&rec);
    cmd_arg argv[2] = {{"DEL", 3}, {key, klen}};
    eb_record(&rec, argv[0], 2, argv);
    cl_req r = {.nkeys = 1, .keys = &h};
    uint64_t index = append_entry(cl, &r, &rec, "", 0);
    eb_free(&rec);
    if (!index) return;
    mark_unsynced(cl, &h, 1, index);
    ev_wake(cl->loop); /* replicate it */
}

/* ---- the leader's execution ---- */

typedef struct exec_result {
    char *bytes;
    size_t len;
    uint64_t index;      /* the entry written (0: none) */
    uint64_t wait_index; /* the reply may leave once commit >= this */
    int need_lease;      /* ... and the lease is valid (reads) */
    int conflict;        /* a key had an unsynced write: no fast path */
} exec_result;

static uint64_t max_unsynced(cluster *cl, const cl_req *r) {
    if (r->nkeys < 0) return atomic_load(&cl->last_index);
    uint64_t m = 0;
    for (int i = 0; i < r->nkeys; i++) {
        uint64_t v = atomic_load(&cl->unsynced[slot_of(r->keys[i])]);
        if (v > m) m = v;
    }
    return m;
}

static void exec_rifl_hit(cluster *cl, int st, const void *res, size_t len, exec_result *x) {
    static const char stale[] = "-ERR request already applied; its reply is no longer kept\r\n";
    if (st == RIFL_DONE) {
        x->bytes = malloc(len ? len : 1);
        if (!x->bytes) abort();
        if (len) memcpy(x->bytes, res, len);
        x->len = len;
    } else {
        x->bytes = strdup(stale);
        x->len = sizeof stale - 1;
    }
    /* its entry may not be committed yet: wait for everything so far */
    x->wait_index = atomic_load(&cl->last_index);
    x->conflict = 1;
}

/* Execute r on the leader. recorded: witnesses may hold a record of it
 * (a proxy's request, PIER.EXEC, a replayed or stale record). */
static void leader_exec(cluster *cl, cl_req *r, int recorded, exec_result *x) {
    memset(x, 0, sizeof *x);
    const void *res;
    size_t rlen;
    int st = rifl_check(cl->rifl, r->cid, r->seq, &res, &rlen);
    if (st != RIFL_NEW) {
        exec_rifl_hit(cl, st, res, rlen, x);
        return;
    }
    cmd_arg *argv;
    int argc = decode_blob(cl, r->blob, r->blob_len, &argv);
    if (argc < 1) {
        x->bytes = strdup("-ERR malformed request\r\n");
        x->len = strlen(x->bytes);
        return;
    }
    uint64_t commit = atomic_load(&cl->commit);
    uint64_t before = max_unsynced(cl, r);
    x->conflict = before > commit;
    uint64_t prev[WITNESS_MAX_KEYS];
    int marked = r->is_write && r->nkeys > 0 && r->nkeys <= WITNESS_MAX_KEYS ? r->nkeys : 0;
    for (int i = 0; i < marked; i++)
        prev[i] = atomic_exchange(&cl->unsynced[slot_of(r->keys[i])], SLOT_MARK);
    cl->exec_sess.proto = r->proto;
    cl->cur = r;
    r->index = 0;
    cmd_ctx c = {
        .env = &cl->exec_env,
        .sess = &cl->exec_sess,
        .out = cl->exec_out,
        .argc = argc,
        .argv = argv,
        .now_ms = clock_wall_ms(),
    };
    cmd_execute(&c);
    if (cl->eb_active) cl_finish_entry(cl, &c); /* records without dirty: log them anyway */
    cl->cur = NULL;
    x->bytes = reply_bytes(cl->exec_out, &x->len);
    reply_reset(cl->exec_out);
    /* A recorded write that changed nothing (SET NX answered nil, an
     * error) still gets an entry, with its reply and no records: applying
     * it drops the witnesses' records and puts the reply in every
     * exactly-once table. Otherwise a witness would hand the record back
     * as stale, or a new leader replay it, and it could take effect after
     * its client was told it had not. */
    if (!r->index && recorded && r->is_write && r->cid && r->nkeys > 0 &&
        r->nkeys <= WITNESS_MAX_KEYS)
        r->index = append_entry(cl, r, NULL, x->bytes, x->len);
    x->index = r->index;
    for (int i = 0; i < marked; i++) settle_slot(cl, r->keys[i], x->index ? x->index : prev[i]);
    if (x->index && r->nkeys > marked) mark_unsynced(cl, r->keys, r->nkeys, x->index);
    if (x->index) {
        rifl_record(cl->rifl, r->cid, r->seq, x->bytes, x->len, clock_wall_ms());
        x->wait_index = x->conflict ? x->index : 0;
        if (r->nkeys < 0 || r->nkeys > WITNESS_MAX_KEYS) x->wait_index = x->index;
    } else {
        /* a read (or a write that changed nothing): its answer depends on
         * state, which must not include unsynced writes */
        x->wait_index = before > commit ? before : 0;
        x->need_lease = 1;
    }
}

/* ---- held replies (leader) ---- */

static void push_wait(cluster *cl, cl_wait *w) {
    w->next = NULL;
    if (cl->waits_tail) cl->waits_tail->next = w;
    else cl->waits_head = w;
    cl->waits_tail = w;
}

static void send_forward_resp(cluster *cl, int to, uint64_t req_id, int status, int synced,
                              uint64_t index, const char *bytes, size_t len) {
    wbuf w = {0};
    wb_u64(&w, req_id);
    wb_u64(&w, cl->term);
    wb_u8(&w, (uint8_t)status);
    wb_u8(&w, (uint8_t)synced);
    wb_u64(&w, index);
    wb_bytes(&w, bytes, len);
    bus_send(cl->bus, to, MSG_FORWARD_RESP, w.p, w.len);
    wb_free(&w);
}

static void complete_wait(cluster *cl, cl_wait *w) {
    if (w->req && w->req->kind == CREQ_WEAK_WRITE) {
        /* answered long ago: tell the session it is committed */
        deliver(cl, w->req, CDONE_WEAK_DONE, w->index, NULL, 0);
        req_free(w->req);
    } else if (w->req) {
        deliver(cl, w->req, CDONE_REPLY, w->index, w->result, w->result_len);
        req_free(w->req);
    } else {
        send_forward_resp(cl, w->to_node, w->req_id, FWD_OK, !w->unsynced, w->index, w->result,
                          w->result_len);
    }
    free(w->result);
    free(w);
}

static int lease_ok(cluster *cl) {
    return cl->nnodes == 1 || atomic_load(&cl->lease_until_us) > cl_now_us();
}

static void process_waits(cluster *cl) {
    uint64_t commit = atomic_load(&cl->commit);
    while (cl->waits_head) {
        cl_wait *w = cl->waits_head;
        if (w->index > commit || (w->need_lease && !lease_ok(cl))) break;
        cl->waits_head = w->next;
        if (!cl->waits_head) cl->waits_tail = NULL;
        complete_wait(cl, w);
    }
}

/* A fast-path reply leaves only once its entry is in this node's AOF
 * (cl_after_aof_sync): a leader's log then holds every request it answered
 * (docs/CONSISTENCY.md, "Why no acknowledged fast-path write is lost"). */
static void push_durable(cluster *cl, cl_wait *w) {
    w->next = NULL;
    if (cl->durable_tail) cl->durable_tail->next = w;
    else cl->durable_head = w;
    cl->durable_tail = w;
}

static void process_durable(cluster *cl) {
    while (cl->durable_head && cl->durable_head->index <= cl->synced_index) {
        cl_wait *w = cl->durable_head;
        cl->durable_head = w->next;
        if (!cl->durable_head) cl->durable_tail = NULL;
        complete_wait(cl, w);
    }
}

/* A request of one of this node's own connections, on the leader. */
static void serve_local(cluster *cl, cl_req *r) {
    exec_result x;
    leader_exec(cl, r, 0, &x);
    cl_wait *w = calloc(1, sizeof *w);
    if (!w) abort();
    /* Its own clients' writes leave at the commit: the witnesses would
     * cost the same round trip. */
    w->index = x.index ? x.index : x.wait_index;
    w->need_lease = x.need_lease;
    w->req = r;
    w->result = x.bytes;
    w->result_len = x.len;
    if (x.index && r->kind == CREQ_STRONG) atomic_fetch_add(&cl->n_leader_writes, 1);
    push_wait(cl, w);
    process_waits(cl);
}

/* A request forwarded by another node's proxy. */
static void serve_forwarded(cluster *cl, cl_req *r, int from, uint64_t req_id) {
    exec_result x;
    leader_exec(cl, r, 1, &x);
    if (!x.wait_index && !x.need_lease) { /* the fast path: after the AOF write */
        cl_wait *w = calloc(1, sizeof *w);
        if (!w) abort();
        w->index = x.index;
        w->to_node = from;
        w->req_id = req_id;
        w->unsynced = 1;
        w->result = x.bytes;
        w->result_len = x.len;
        req_free(r);
        push_durable(cl, w);
        return;
    }
    if (!x.wait_index && lease_ok(cl)) {
        send_forward_resp(cl, from, req_id, FWD_OK, 1, x.index, x.bytes, x.len);
        free(x.bytes);
        req_free(r);
        return;
    }
    cl_wait *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->index = x.wait_index;
    w->need_lease = x.need_lease;
    w->to_node = from;
    w->req_id = req_id;
    w->result = x.bytes;
    w->result_len = x.len;
    /* index travels in the reply for a synced write too */
    if (x.index) w->index = x.index > w->index ? x.index : w->index;
    req_free(r);
    push_wait(cl, w);
    process_waits(cl);
}

/* ---- this node's witness and its log ----
 *
 * Every record the witness accepts is appended to the AOF as
 *   PIER.WITNESS <term> <cid> <seq> <key hashes, 8 bytes each, LE> <request>
 * and its acceptance is answered only after that write (fsynced with
 * appendfsync always): a restarted witness holds every record it
 * accepted, so a restart is not a lost witness. A record dropped by the
 * commit of its entry needs no line (start-up replays the commit index);
 * one dropped by a GC message gets PIER.WGC <cid> <seq> <key hashes>. */

static size_t put_keys(unsigned char *out, const uint64_t *keys, int nkeys) {
    for (int i = 0; i < nkeys; i++)
        for (int k = 0; k < 8; k++) out[i * 8 + k] = (unsigned char)(keys[i] >> (8 * k));
    return (size_t)nkeys * 8;
}

static int get_keys(const cmd_arg *a, uint64_t *keys) {
    if (a->n % 8 || a->n / 8 > WITNESS_MAX_KEYS) return -1;
    int n = (int)(a->n / 8);
    const unsigned char *p = (const unsigned char *)a->p;
    for (int i = 0; i < n; i++) {
        keys[i] = 0;
        for (int k = 0; k < 8; k++) keys[i] |= (uint64_t)p[i * 8 + k] << (8 * k);
    }
    return n;
}

static void log_witness_line(cluster *cl, const char *name, int with_term, uint64_t term,
                             uint64_t cid, uint64_t seq, const uint64_t *keys, int nkeys,
                             const char *req, size_t req_len) {
    if (!cl->aof) return;
    char num[3][24];
    unsigned char kb[WITNESS_MAX_KEYS * 8];
    cmd_arg argv[6];
    int argc = 0;
    argv[argc++] = (cmd_arg){name, strlen(name)};
    if (with_term) argv[argc++] = (cmd_arg){num[0], util_ull2str(num[0], 24, term)};
    argv[argc++] = (cmd_arg){num[1], util_ull2str(num[1], 24, cid)};
    argv[argc++] = (cmd_arg){num[2], util_ull2str(num[2], 24, seq)};
    argv[argc++] = (cmd_arg){(const char *)kb, put_keys(kb, keys, nkeys)};
    if (req) argv[argc++] = (cmd_arg){req, req_len};
    aof_append(cl->aof, argv[0], argc, argv);
}

/* Record r in this node's witness (and its log). */
static int witness_accept(cluster *cl, uint64_t term, const cl_req *r) {
    int st = witness_record(cl->witness, term, r->cid, r->seq, r->keys, r->nkeys, r->blob,
                            r->blob_len, cl->gc_round);
    if (st == WITNESS_ACCEPTED) {
        log_witness_line(cl, "PIER.WITNESS", 1, term, r->cid, r->seq, r->keys, r->nkeys, r->blob,
                         r->blob_len);
        cl->witness_unsynced = 1;
    }
    return st;
}

/* An answer to a record, sent (or counted, to = this node) after the AOF
 * write; rejections need no write and go at once. */
static void send_record_resp(cluster *cl, int to, uint64_t req_id, int st) {
    wbuf w = {0};
    wb_u64(&w, req_id);
    wb_u8(&w, (uint8_t)st);
    bus_send(cl->bus, to, MSG_RECORD_RESP, w.p, w.len);
    wb_free(&w);
}

static void queue_record_ack(cluster *cl, int to, uint64_t req_id, int st) {
    if (cl->nrec_acks == cl->rec_acks_cap) {
        cl->rec_acks_cap = cl->rec_acks_cap ? cl->rec_acks_cap * 2 : 64;
        cl->rec_acks = realloc(cl->rec_acks, cl->rec_acks_cap * sizeof *cl->rec_acks);
        if (!cl->rec_acks) abort();
    }
    cl->rec_acks[cl->nrec_acks++] = (cl_rec_ack){.to = to, .st = st, .req_id = req_id};
}

static cl_req *inflight_find(cluster *cl, uint64_t req_id);
static void proxy_check(cluster *cl, cl_req *r);

void cl_after_aof_sync(cluster *cl, int ok) {
    if (ok) cl->witness_unsynced = 0;
    size_t n = cl->nrec_acks;
    cl->nrec_acks = 0;
    for (size_t i = 0; i < n; i++) {
        cl_rec_ack a = cl->rec_acks[i];
        /* not written: the record may not survive a restart, so say no */
        int st = ok ? a.st : WITNESS_FULL;
        if (a.to != cl->self_id) {
            send_record_resp(cl, a.to, a.req_id, st);
            continue;
        }
        cl_req *r = inflight_find(cl, a.req_id);
        if (!r) continue;
        if (st == WITNESS_ACCEPTED) r->accepts++;
        else r->rejects++;
        proxy_check(cl, r);
    }
    if (ok) process_durable(cl);
}

/* ---- the proxy (a follower doing the CURP client's work) ---- */

static void park(cluster *cl, cl_req *r) {
    r->next = NULL;
    if (cl->parked_tail) cl->parked_tail->next = r;
    else cl->parked_head = r;
    cl->parked_tail = r;
}

static void inflight_remove(cluster *cl, cl_req *r) {
    cl_req *prev = NULL;
    for (cl_req **p = &cl->inflight; *p; prev = *p, p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            if (cl->inflight_tail == r) cl->inflight_tail = prev;
            return;
        }
}

static void inflight_add(cluster *cl, cl_req *r) {
    r->next = NULL;
    if (cl->inflight_tail) cl->inflight_tail->next = r;
    else cl->inflight = r;
    cl->inflight_tail = r;
}

static cl_req *inflight_find(cluster *cl, uint64_t req_id) {
    for (cl_req *r = cl->inflight; r; r = r->next)
        if (r->req_id == req_id) return r;
    return NULL;
}

static void encode_request(wbuf *w, const cl_req *r) {
    wb_u64(w, r->req_id);
    wb_u64(w, r->term);
    wb_u64(w, r->cid);
    wb_u64(w, r->seq);
    wb_u8(w, (uint8_t)r->kind);
    wb_u8(w, (uint8_t)r->proto);
    wb_u8(w, (uint8_t)r->is_write);
    wb_u32(w, (uint32_t)r->nkeys);
    for (int i = 0; i < r->nkeys; i++) wb_u64(w, r->keys[i]);
    wb_bytes(w, r->blob, r->blob_len);
}

static int witnessed(const cl_req *r) {
    return r->kind == CREQ_STRONG && r->is_write && r->nkeys > 0 && r->nkeys <= WITNESS_MAX_KEYS;
}

static void park(cluster *cl, cl_req *r);

static void proxy_send(cluster *cl, cl_req *r) {
    int leader = atomic_load(&cl->leader_id);
    if (!bus_connected(cl->bus, leader)) {
        /* a message to a dead link would be lost and the next one, on the
         * new link, overtake it: wait, in order, for the link */
        park(cl, r);
        return;
    }
    r->req_id = ++cl->next_req_id;
    r->term = cl->term;
    r->leader_replied = r->synced = r->accepts = r->rejects = 0;
    r->index = 0;
    wbuf w = {0};
    encode_request(&w, r);
    bus_send(cl->bus, leader, MSG_FORWARD, w.p, w.len);
    if (witnessed(r)) {
        for (int i = 0; i < cl->nnodes; i++) {
            int id = cl->nodes[i].id;
            if (id == leader || i == cl->self_idx) continue;
            if (bus_send(cl->bus, id, MSG_RECORD, w.p, w.len) < 0) r->rejects++;
        }
        /* its own witness counts once the record is in the AOF */
        int st = witness_accept(cl, cl->term, r);
        if (st == WITNESS_ACCEPTED) queue_record_ack(cl, cl->self_id, r->req_id, st);
        else r->rejects++;
    }
    wb_free(&w);
    atomic_fetch_add(&cl->n_forwarded, 1);
    inflight_add(cl, r);
}

/* Does the committed entry at index hold this request? */
static int entry_is(cluster *cl, uint64_t index, const cl_req *r) {
    if (index < cl->first_index) /* trimmed: applied entries are in the exactly-once table */
        return rifl_check(cl->rifl, r->cid, r->seq, NULL, NULL) != RIFL_NEW;
    entry *e = cl_entry_at(cl, index);
    char err[64];
    if (!e || entry_decode(e->data, e->len, &cl->view, err, sizeof err) < 0) return 0;
    return cl->view.cid == r->cid && cl->view.seq == r->seq;
}

static void proxy_finish(cluster *cl, cl_req *r, int fast) {
    if (r->kind == CREQ_STRONG && r->is_write) {
        if (fast) atomic_fetch_add(&cl->n_fast, 1);
        else atomic_fetch_add(&cl->n_slow, 1);
    }
    deliver(cl, r, CDONE_REPLY, r->index, r->result, r->result_len);
    inflight_remove(cl, r);
    req_free(r);
}

/* Decide what a proxied request still needs. */
static void proxy_check(cluster *cl, cl_req *r) {
    if (!r->leader_replied) return;
    if (r->kind == CREQ_WEAK_WRITE) {
        /* kept until committed (resent after a leader change); the session
         * forgets it only then: an index from a deposed leader may never
         * hold it */
        /* synced: the leader answered once committed (a duplicate, whose
         * own index it no longer knows, is committed at or before it) */
        uint64_t commit = atomic_load(&cl->commit);
        if (!r->index && r->synced) { /* the leader refused it (an error): nothing to wait for */
            if (!r->done) deliver(cl, r, CDONE_WEAK_DONE, 0, NULL, 0);
            inflight_remove(cl, r);
            req_free(r);
            return;
        }
        if (r->index && commit >= r->index && (r->synced || entry_is(cl, r->index, r))) {
            if (!r->done) deliver(cl, r, CDONE_WEAK_DONE, r->index, NULL, 0);
            inflight_remove(cl, r);
            req_free(r);
        }
        return;
    }
    if (r->synced || !r->is_write || !r->index) {
        proxy_finish(cl, r, 0);
        return;
    }
    if (witnessed(r) && r->accepts >= superquorum_others(cl)) {
        proxy_finish(cl, r, 1);
        return;
    }
    if (atomic_load(&cl->commit) >= r->index && entry_is(cl, r->index, r)) proxy_finish(cl, r, 0);
}

void cl_on_forward_resp(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf rb = rb_make(p, n);
    uint64_t req_id = rb_u64(&rb), term = rb_u64(&rb);
    int status = rb_u8(&rb), synced = rb_u8(&rb);
    uint64_t index = rb_u64(&rb);
    size_t len;
    const unsigned char *bytes = rb_bytes(&rb, &len);
    if (rb.bad) return;
    cl_req *r = inflight_find(cl, req_id);
    if (!r || r->leader_replied) return;
    (void)term;
    if (status != FWD_OK) {
        /* not (yet) serving: try again from the parked list */
        inflight_remove(cl, r);
        park(cl, r);
        return;
    }
    r->leader_replied = 1;
    r->synced = synced;
    r->index = index;
    copy_bytes(&r->result, &r->result_len, bytes, len);
    proxy_check(cl, r);
}

void cl_on_record_resp(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf rb = rb_make(p, n);
    uint64_t req_id = rb_u64(&rb);
    int st = rb_u8(&rb);
    if (rb.bad) return;
    cl_req *r = inflight_find(cl, req_id);
    if (!r) return;
    if (st == WITNESS_ACCEPTED) r->accepts++;
    else r->rejects++;
    proxy_check(cl, r);
}

/* ---- direct CURP clients (PIER.EXEC, PIER.RECORD, PIER.SYNC) ---- */

static void deliver_fmt(cluster *cl, cl_req *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void deliver_fmt(cluster *cl, cl_req *r, const char *fmt, ...) {
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    deliver(cl, r, CDONE_REPLY, 0, buf, (size_t)n);
}

/* Not the serving leader: say where it is. */
static int redirect(cluster *cl, cl_req *r) {
    int role = atomic_load(&cl->role);
    if (role == ROLE_LEADER && atomic_load(&cl->serving)) return 0;
    int leader = atomic_load(&cl->leader_id);
    int idx = cl_node_idx(cl, leader);
    if (role == ROLE_LEADER) deliver_fmt(cl, r, "-TRYAGAIN the leader is recovering\r\n");
    else if (idx >= 0)
        deliver_fmt(cl, r, "-NOTLEADER %d %s:%d\r\n", leader, cl->nodes[idx].host,
                    cl->nodes[idx].port);
    else deliver_fmt(cl, r, "-CLUSTERDOWN The cluster is down\r\n");
    return 1;
}

/* *4 :term :index :synced <the command's reply> */
static char *wrap_direct(cluster *cl, const exec_result *x, int synced, size_t *len) {
    char hdr[96];
    int h = snprintf(hdr, sizeof hdr, "*4\r\n:%llu\r\n:%llu\r\n:%d\r\n",
                     (unsigned long long)cl->term, (unsigned long long)x->index, synced);
    char *out = malloc((size_t)h + x->len);
    if (!out) abort();
    memcpy(out, hdr, (size_t)h);
    if (x->len) memcpy(out + h, x->bytes, x->len);
    *len = (size_t)h + x->len;
    return out;
}

static void direct_exec(cluster *cl, cl_req *r) {
    if (redirect(cl, r)) {
        req_free(r);
        return;
    }
    exec_result x;
    leader_exec(cl, r, 1, &x);
    int wait = x.wait_index || (x.need_lease && !lease_ok(cl));
    size_t len;
    /* a read (no entry) that needs no wait is complete: synced */
    char *bytes = wrap_direct(cl, &x, wait || !x.index, &len);
    free(x.bytes);
    if (!wait && x.index <= cl->synced_index) {
        deliver(cl, r, CDONE_REPLY, x.index, bytes, len);
        free(bytes);
        req_free(r);
        return;
    }
    cl_wait *w = calloc(1, sizeof *w);
    if (!w) abort();
    w->index = x.index > x.wait_index ? x.index : x.wait_index;
    w->need_lease = x.need_lease;
    w->req = r;
    w->result = bytes;
    w->result_len = len;
    if (!wait) { /* an unsynced write: leaves after the AOF write */
        push_durable(cl, w);
        return;
    }
    push_wait(cl, w);
    process_waits(cl);
}

static void direct_record(cluster *cl, cl_req *r) {
    static const char *const why[] = {"accepted", "conflict", "full", "old_term", "too_many_keys"};
    int st = WITNESS_OLD_TERM;
    if (atomic_load(&cl->role) == ROLE_LEADER) {
        deliver_fmt(cl, r, "-REJECT leader %llu\r\n", (unsigned long long)cl->term);
    } else {
        if (r->aux == cl->term && atomic_load(&cl->leader_id) > 0)
            st = witness_accept(cl, r->aux, r);
        /* answered at once: the record is written now */
        if (st == WITNESS_ACCEPTED && cl_sync_aof(cl) < 0) st = WITNESS_FULL;
        if (st == WITNESS_ACCEPTED) deliver_fmt(cl, r, "+OK\r\n");
        else
            deliver_fmt(cl, r, "-REJECT %s %llu\r\n", st >= 0 && st <= 4 ? why[st] : "unknown",
                        (unsigned long long)cl->term);
    }
    req_free(r);
}

/* PIER.SYNC waits: answered once the commit passes their index. */
static void process_syncs(cluster *cl, int64_t now) {
    uint64_t commit = atomic_load(&cl->commit);
    for (cl_req **pp = &cl->sync_waits; *pp;) {
        cl_req *r = *pp;
        int due = commit >= r->aux, late = r->deadline_us && now > r->deadline_us;
        if (!due && !late) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (due && entry_is(cl, r->aux, r)) deliver_fmt(cl, r, "+OK\r\n");
        else if (due) deliver_fmt(cl, r, "-LOST the entry was not kept: retry the request\r\n");
        else deliver_error(cl, r, "CLUSTERDOWN The cluster is down");
        req_free(r);
    }
}

static void direct_sync(cluster *cl, cl_req *r) {
    if (redirect(cl, r)) { /* only the leader's commit index is current */
        req_free(r);
        return;
    }
    r->next = cl->sync_waits;
    cl->sync_waits = r;
    process_syncs(cl, cl_now_us());
}

/* ---- requests arriving ---- */

static void process_request(cluster *cl, cl_req *r) {
    switch (r->kind) {
    case CREQ_DIRECT_EXEC: direct_exec(cl, r); return;
    case CREQ_DIRECT_RECORD: direct_record(cl, r); return;
    case CREQ_DIRECT_SYNC: direct_sync(cl, r); return;
    default: break;
    }
    int role = atomic_load(&cl->role);
    /* Behind parked requests, a request waits its turn: a session's
     * requests reach the leader in the order it sent them. */
    if (cl->parked_head) park(cl, r);
    else if (role == ROLE_LEADER && atomic_load(&cl->serving)) serve_local(cl, r);
    else if (role == ROLE_FOLLOWER && atomic_load(&cl->leader_id) > 0) proxy_send(cl, r);
    else park(cl, r);
}

void cl_drain_submissions(cluster *cl) {
    pthread_mutex_lock(&cl->submit_lock);
    cl_req *r = cl->submit_head;
    cl->submit_head = cl->submit_tail = NULL;
    pthread_mutex_unlock(&cl->submit_lock);
    while (r) {
        cl_req *next = r->next;
        process_request(cl, r);
        r = next;
    }
}

/* Requests parked while no leader served: try again. */
static void unpark(cluster *cl) {
    cl_req *r = cl->parked_head;
    cl->parked_head = cl->parked_tail = NULL;
    while (r) {
        cl_req *next = r->next;
        process_request(cl, r);
        r = next;
    }
}

static cl_req *decode_request(rbuf *rb, uint64_t *req_id) {
    cl_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    *req_id = rb_u64(rb);
    r->term = rb_u64(rb);
    r->cid = rb_u64(rb);
    r->seq = rb_u64(rb);
    r->kind = rb_u8(rb);
    r->proto = rb_u8(rb);
    r->is_write = rb_u8(rb);
    r->nkeys = (int)rb_u32(rb);
    if (r->nkeys > ENTRY_MAX_KEYS || r->nkeys < -1) rb->bad = 1;
    if (!rb->bad && r->nkeys > 0) {
        r->keys = malloc((size_t)r->nkeys * sizeof *r->keys);
        if (!r->keys) abort();
        for (int i = 0; i < r->nkeys; i++) r->keys[i] = rb_u64(rb);
    }
    size_t len;
    const unsigned char *blob = rb_bytes(rb, &len);
    if (rb->bad || !blob) {
        req_free(r);
        return NULL;
    }
    copy_bytes(&r->blob, &r->blob_len, blob, len);
    if (r->proto != 3) r->proto = 2;
    return r;
}

void cl_on_forward(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf rb = rb_make(p, n);
    uint64_t req_id;
    cl_req *r = decode_request(&rb, &req_id);
    if (!r) {
        log_warn("cluster: malformed FORWARD from node %d", from);
        return;
    }
    if (atomic_load(&cl->role) != ROLE_LEADER) {
        send_forward_resp(cl, from, req_id, FWD_NOT_LEADER, 0, 0, "", 0);
        req_free(r);
        return;
    }
    if (!atomic_load(&cl->serving) || cl->fwd_parked_head) {
        /* recovering: queued in arrival order (a proxy's requests must
         * run in the order it sent them), served once recovery is done */
        r->from_node = from;
        r->req_id = req_id;
        r->next = NULL;
        if (cl->fwd_parked_tail) cl->fwd_parked_tail->next = r;
        else cl->fwd_parked_head = r;
        cl->fwd_parked_tail = r;
        return;
    }
    serve_forwarded(cl, r, from, req_id);
}

/* ---- witnesses ---- */

void cl_on_record(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf rb = rb_make(p, n);
    uint64_t req_id;
    cl_req *r = decode_request(&rb, &req_id);
    if (!r) return;
    int st = WITNESS_OLD_TERM;
    if (atomic_load(&cl->role) != ROLE_LEADER && r->term == cl->term)
        st = witness_accept(cl, r->term, r);
    if (st == WITNESS_ACCEPTED) queue_record_ack(cl, from, req_id, st);
    else send_record_resp(cl, from, req_id, st);
    req_free(r);
}

/* The entry is committed: the witness forgets its request. */
static void drop_record_of(cluster *cl, const entry_view *v) {
    uint64_t keys[WITNESS_MAX_KEYS];
    int n = v->nkeys < WITNESS_MAX_KEYS ? (int)v->nkeys : WITNESS_MAX_KEYS;
    for (int i = 0; i < n; i++) keys[i] = entry_key_at(v, (size_t)i);
    if (n) witness_gc(cl->witness, v->cid, v->seq, keys, n);
}

void cl_entry_applied(cluster *cl, const entry_view *v) {
    if (!v->cid) return;
    rifl_record(cl->rifl, v->cid, v->seq, v->reply, v->reply_len, clock_wall_ms());
    drop_record_of(cl, v);
}

/* ---- start-up: the witness and the leadership marks, from the AOF ----
 *
 * The AOF is replayed in the order it was written, so the witness is
 * rebuilt as it was: a PIER.WITNESS line puts a record back (dropping
 * any it conflicts with: those were gone when it was accepted), a
 * PIER.WGC line or a commit index drops records. The table used while
 * loading has more ways than the live one, because a record dropped by a
 * commit is back until the PIER.COMMIT line that follows it;
 * cl_witness_restored moves what is left into the live table. */

static int arg_u64(const cmd_arg *a, uint64_t *out) {
    unsigned long long v;
    if (!util_parse_ull(a->p, a->n, &v)) return -1;
    *out = v;
    return 0;
}

int cl_replay_witness(cluster *cl, int argc, const cmd_arg *argv) {
    uint64_t term, cid, seq, keys[WITNESS_MAX_KEYS];
    if (argc != 6 || arg_u64(&argv[1], &term) || arg_u64(&argv[2], &cid) ||
        arg_u64(&argv[3], &seq))
        return -1;
    int nk = get_keys(&argv[4], keys);
    if (nk < 1) return -1;
    if (witness_restore(cl->witness, term, cid, seq, keys, nk, argv[5].p, argv[5].n, 0) !=
        WITNESS_ACCEPTED)
        cl->witness_restore_failed = 1;
    return 1;
}

int cl_replay_witness_gc(cluster *cl, int argc, const cmd_arg *argv) {
    uint64_t cid, seq, keys[WITNESS_MAX_KEYS];
    if (argc != 4 || arg_u64(&argv[1], &cid) || arg_u64(&argv[2], &seq)) return -1;
    int nk = get_keys(&argv[3], keys);
    if (nk < 1) return -1;
    witness_gc(cl->witness, cid, seq, keys, nk);
    return 1;
}

void cl_replay_commit(cluster *cl) {
    uint64_t upto = atomic_load(&cl->commit), last = atomic_load(&cl->last_index);
    if (upto > last) upto = last;
    char err[64];
    for (uint64_t i = cl->load_gc_upto + 1; i <= upto && witness_count(cl->witness); i++) {
        entry *e = cl_entry_at(cl, i);
        if (e && entry_decode(e->data, e->len, &cl->view, err, sizeof err) == 0 && cl->view.cid)
            drop_record_of(cl, &cl->view);
    }
    if (upto > cl->load_gc_upto) cl->load_gc_upto = upto;
}

void cl_replay_entry_loaded(cluster *cl, uint64_t term, int argc, const cmd_arg *argv) {
    /* this node's end-of-recovery entry: cid 0, seq = its id, no keys, no records */
    uint64_t cid, seq;
    if (argc != 7 || arg_u64(&argv[3], &cid) || arg_u64(&argv[4], &seq) || cid != 0 ||
        seq != (uint64_t)cl->self_id || argv[5].n != 0)
        return;
    cl->lead_log_term = term;
    if (term > cl->led_term) cl->led_term = term;
}

void cl_replay_truncated(cluster *cl) {
    /* entries after the mark may be gone: the log no longer vouches for
     * that term (led_term stays: the witness still missed its records) */
    cl->lead_log_term = 0;
}

static void restore_one(void *arg, const witness_rec *r) {
    cluster *cl = arg;
    if (witness_restore(cl->witness, r->term, r->cid, r->seq, r->keys, r->nkeys, r->req,
                        r->req_len, 0) != WITNESS_ACCEPTED)
        cl->witness_restore_failed = 1;
}

void cl_witness_restored(cluster *cl) {
    witness *loaded = cl->witness;
    cl->witness = witness_create(WITNESS_SETS_LOG2, WITNESS_WAYS);
    if (!cl->witness) abort();
    size_t n = witness_collect(loaded, 0, restore_one, cl);
    witness_destroy(loaded);
    if (cl->witness_restore_failed)
        log_warn("cluster: the witness could not take back every record of its log; it counts "
                 "as incomplete for term %llu", (unsigned long long)cl->term);
    else if (n)
        log_info("cluster: witness: %zu records restored", n);
}

static void encode_record(wbuf *w, const witness_rec *rec) {
    wb_u64(w, rec->cid);
    wb_u64(w, rec->seq);
    wb_u32(w, (uint32_t)rec->nkeys);
    for (int i = 0; i < rec->nkeys; i++) wb_u64(w, rec->keys[i]);
    wb_bytes(w, rec->req, rec->req_len);
}

typedef struct rec_sink {
    wbuf w;
    uint32_t count;
    uint64_t below;    /* the collecting leader's term */
    uint64_t max_term; /* the newest record term below it */
} rec_sink;

static void add_to_sink(void *arg, const witness_rec *rec) {
    rec_sink *s = arg;
    encode_record(&s->w, rec);
    s->count++;
    /* A record of the collecting leader's own term (a proxy recorded it
     * after it learnt of that leader) says nothing about the terms before:
     * counting it would make the recovery judge witnesses for that term. */
    if (rec->term > s->max_term && rec->term < s->below) s->max_term = rec->term;
}

/* The first term from which this node's witness holds every record it
 * accepted: a restart empties it, and a leader records nothing of its own
 * term (its proxies count its execution instead). */
static uint64_t complete_since(const cluster *cl) {
    uint64_t boot = cl->boot_caught_up ? cl->boot_term : cl->boot_term + 1;
    uint64_t led = cl->led_term + 1;
    return boot > led ? boot : led;
}

/* The records of one witness, encoded: count, then each record. */
static void freeze_own(cluster *cl, rec_sink *s) {
    memset(s, 0, sizeof *s);
    s->below = cl->term;
    witness_freeze(cl->witness, cl->term, add_to_sink, s);
}

void cl_on_collect(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf rb = rb_make(p, n);
    uint64_t term = rb_u64(&rb);
    if (rb.bad || term < cl->term) return;
    if (term > cl->term || atomic_load(&cl->leader_id) != from)
        cl_become_follower(cl, term, from);
    /* Frozen, not emptied: the records stay until their entries commit. */
    rec_sink s;
    freeze_own(cl, &s);
    wbuf w = {0};
    wb_u64(&w, term);
    wb_u64(&w, complete_since(cl));
    wb_u64(&w, s.max_term);
    /* what its log vouches for: every request it answered as leader */
    wb_u64(&w, cl->lead_log_term);
    wb_u64(&w, atomic_load(&cl->last_index));
    wb_u32(&w, s.count);
    wb_reserve(&w, s.w.len);
    if (s.w.len) memcpy(w.p + w.len, s.w.p, s.w.len);
    w.len += s.w.len;
    bus_send(cl->bus, from, MSG_COLLECT_RESP, w.p, w.len);
    wb_free(&w);
    wb_free(&s.w);
}

static void add_collected(cluster *cl, uint64_t cid, uint64_t seq, int nkeys,
                          const uint64_t *keys, const void *req, size_t len) {
    for (cl_collected *c = cl->collected; c; c = c->next)
        if (c->cid == cid && c->seq == seq) {
            c->count++;
            return;
        }
    cl_collected *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->cid = cid;
    c->seq = seq;
    c->count = 1;
    c->nkeys = nkeys > WITNESS_MAX_KEYS ? WITNESS_MAX_KEYS : nkeys;
    memcpy(c->keys, keys, (size_t)c->nkeys * sizeof *keys);
    copy_bytes(&c->req, &c->req_len, req, len);
    c->next = cl->collected;
    cl->collected = c;
}

/* Count the records of one witness's answer (count + records). */
static int tally(cluster *cl, const unsigned char *p, size_t n) {
    rbuf rb = rb_make(p, n);
    uint32_t count = rb_u32(&rb);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t cid = rb_u64(&rb), seq = rb_u64(&rb);
        uint32_t nk = rb_u32(&rb);
        if (nk > WITNESS_MAX_KEYS) return -1;
        uint64_t keys[WITNESS_MAX_KEYS];
        for (uint32_t k = 0; k < nk; k++) keys[k] = rb_u64(&rb);
        size_t len;
        const unsigned char *req = rb_bytes(&rb, &len);
        if (rb.bad) return -1;
        add_collected(cl, cid, seq, (int)nk, keys, req, len);
    }
    return rb.bad ? -1 : 0;
}

void cl_on_collect_resp(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf rb = rb_make(p, n);
    uint64_t term = rb_u64(&rb), since = rb_u64(&rb), max_term = rb_u64(&rb);
    uint64_t led_term = rb_u64(&rb), led_last = rb_u64(&rb);
    int idx = cl_node_idx(cl, from);
    if (rb.bad || idx < 0 || term != cl->term || atomic_load(&cl->role) != ROLE_LEADER ||
        !cl->collect_needed || cl->peers[idx].collected)
        return;
    cl_peer *pe = &cl->peers[idx];
    pe->collected = 1;
    pe->complete_since = since;
    pe->led_term = led_term;
    pe->led_last = led_last;
    if (max_term > cl->collect_max_term) cl->collect_max_term = max_term;
    copy_bytes(&pe->records, &pe->records_len, p + rb.pos, n - rb.pos);
}

/* Execute a request nobody waits for (a replayed or stale record). */
static void exec_orphan(cluster *cl, uint64_t cid, uint64_t seq, int nkeys, const uint64_t *keys,
                        const char *blob, size_t len) {
    cl_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->cid = cid;
    r->seq = seq;
    r->is_write = 1;
    r->proto = 2;
    r->nkeys = nkeys;
    r->keys = malloc((size_t)(nkeys > 0 ? nkeys : 1) * sizeof *keys);
    if (!r->keys) abort();
    if (nkeys > 0) memcpy(r->keys, keys, (size_t)nkeys * sizeof *keys);
    copy_bytes(&r->blob, &r->blob_len, blob, len);
    exec_result x;
    leader_exec(cl, r, 1, &x);
    free(x.bytes);
    req_free(r);
}

static void clear_collected(cluster *cl) {
    while (cl->collected) {
        cl_collected *c = cl->collected;
        cl->collected = c->next;
        free(c->req);
        free(c);
    }
    for (int i = 0; i < cl->nnodes; i++) {
        free(cl->peers[i].records);
        cl->peers[i].records = NULL;
        cl->peers[i].records_len = 0;
    }
}

static void finish_recovery(cluster *cl) {
    int need = cl->replay_threshold; /* check_recovery's t */
    size_t replayed = 0;
    for (cl_collected *c = cl->collected; c; c = c->next)
        if (c->count >= need) {
            exec_orphan(cl, c->cid, c->seq, c->nkeys, c->keys, c->req, c->req_len);
            replayed++;
        }
    clear_collected(cl);
    atomic_fetch_add(&cl->n_recovered, replayed);
    /* The end-of-recovery entry (cid 0, seq = this node's id): once it is
     * in this node's AOF, so are the replays before it, and every request
     * of this term it answers comes after it (a fast-path reply leaves
     * after its entry's AOF write). Start-up finds it (led_term,
     * lead_log_term). */
    cl_req marker = {.seq = (uint64_t)cl->self_id};
    if (append_entry(cl, &marker, NULL, "", 0)) cl->lead_log_term = cl->term;
    cl->collect_needed = 0;
    cl->led_term = cl->term; /* from now on its witness misses this term's records */
    atomic_store(&cl->serving, 1);
    log_info("cluster: node %d serves as leader of term %llu (%zu witness records replayed)",
             cl->self_id, (unsigned long long)cl->term, replayed);
    unpark(cl);
    cl_req *f = cl->fwd_parked_head;
    cl->fwd_parked_head = cl->fwd_parked_tail = NULL;
    while (f) {
        cl_req *next = f->next;
        serve_forwarded(cl, f, f->from_node, f->req_id);
        f = next;
    }
}

/* Does this node's log hold the whole log of tp's leader? That node
 * answered COLLECT vouching for its log up to led_last (lead_log_term ==
 * tp), and this log has the same entry there: by log matching, then, it
 * holds everything that node had, which is every request of tp it
 * answered and every replay it made for older terms. */
static int holds_leader_log(cluster *cl, uint64_t tp) {
    for (int i = 0; i < cl->nnodes; i++) {
        const cl_peer *pe = &cl->peers[i];
        if (i == cl->self_idx || !pe->collected || pe->led_term != tp) continue;
        if (pe->led_last + 1 < cl->first_index || pe->led_last > atomic_load(&cl->last_index))
            continue;
        if (cl_term_at(cl, pe->led_last) == tp) return 1;
    }
    return 0;
}

/* Recovery may finish once the no-op committed (everything before it is
 * committed and executed here) and enough witnesses that hold every record
 * of the previous leader's term (tp) answered. A request completed on the
 * fast path was recorded by f + ceil(f/2) of the 2f other nodes; among m
 * complete witnesses it is then seen by at least t = m - f + ceil(f/2).
 * Replaying what t of them saw recovers it; t >= 1 and 2t > m also keep
 * two conflicting records from both reaching t (N=3: m >= 1; N=5: m >= 3).
 * A node that led tp itself holds all of tp's requests in its own log
 * (lead_log_term), and so does a node whose log holds that leader's. */
static void check_recovery(cluster *cl) {
    if (!cl->collect_needed || atomic_load(&cl->role) != ROLE_LEADER) return;
    if (atomic_load(&cl->commit) < cl->noop_index) return;
    uint64_t tp = cl->recovery_tp > cl->collect_max_term ? cl->recovery_tp : cl->collect_max_term;
    if (tp == 0 || cl->lead_log_term == tp || holds_leader_log(cl, tp)) {
        finish_recovery(cl);
        return;
    }
    int chosen[CL_MAX_NODES], m = 0;
    if (complete_since(cl) <= tp) chosen[m++] = cl->self_idx;
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx && cl->peers[i].collected && cl->peers[i].complete_since <= tp)
            chosen[m++] = i;
    int t = m - cl->f + (cl->f + 1) / 2;
    if (t < 1 || 2 * t <= m) {
        if (cl->gc_round % 100 == 0)
            log_info("cluster: recovery of term %llu waits for witnesses: %d complete for "
                     "term %llu answered", (unsigned long long)cl->term, m, (unsigned long long)tp);
        return;
    }
    for (int k = 0; k < m; k++) {
        int rc;
        if (chosen[k] == cl->self_idx) {
            rc = tally(cl, (const unsigned char *)cl->own_records, cl->own_records_len);
        } else {
            cl_peer *pe = &cl->peers[chosen[k]];
            rc = tally(cl, (const unsigned char *)pe->records, pe->records_len);
        }
        if (rc < 0) log_warn("cluster: a malformed witness answer was skipped");
    }
    free(cl->own_records);
    cl->own_records = NULL;
    cl->own_records_len = 0;
    cl->replay_threshold = t;
    finish_recovery(cl);
}

static void send_collect(cluster *cl) {
    wbuf w = {0};
    wb_u64(&w, cl->term);
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx && !cl->peers[i].collected)
            bus_send(cl->bus, cl->nodes[i].id, MSG_COLLECT, w.p, w.len);
    wb_free(&w);
}

void cl_start_recovery(cluster *cl) {
    /* Execute what the log holds beyond what this keyspace has: a leader's
     * keyspace reflects its whole log. */
    uint64_t last = atomic_load(&cl->last_index);
    uint64_t from = atomic_load(&cl->executed);
    if (from < atomic_load(&cl->applied)) from = atomic_load(&cl->applied);
    for (uint64_t i = from + 1; i <= last; i++) {
        entry *e = cl_entry_at(cl, i);
        if (e) cl_apply_entry(cl, e);
    }
    if (last > atomic_load(&cl->executed)) atomic_store(&cl->executed, last);
    cl_set_keep_expired(cl, 0);
    for (int i = 0; i < cl->nnodes; i++) cl->peers[i].collected = 0;
    clear_collected(cl);
    free(cl->own_records);
    cl->recovery_tp = cl->last_term;
    cl->collect_max_term = 0;
    rec_sink s;
    freeze_own(cl, &s);
    /* kept as "count + records", the form tally reads */
    wbuf own = {0};
    wb_u32(&own, s.count);
    wb_reserve(&own, s.w.len);
    if (s.w.len) memcpy(own.p + own.len, s.w.p, s.w.len);
    own.len += s.w.len;
    cl->own_records = (char *)own.p;
    cl->own_records_len = own.len;
    if (s.max_term > cl->collect_max_term) cl->collect_max_term = s.max_term;
    wb_free(&s.w);
    cl->noop_index = append_entry(cl, NULL, NULL, "", 0);
    cl->collect_needed = 1;
    send_collect(cl);
    check_recovery(cl);
}

/* ---- stale records and gc ---- */

static void send_stale(void *arg, const witness_rec *rec) {
    cluster *cl = arg;
    wbuf w = {0};
    encode_record(&w, rec);
    bus_send(cl->bus, atomic_load(&cl->leader_id), MSG_STALE, w.p, w.len);
    wb_free(&w);
}

void cl_on_stale(cluster *cl, int from, const uint8_t *p, size_t n) {
    if (atomic_load(&cl->role) != ROLE_LEADER || !atomic_load(&cl->serving)) return;
    rbuf rb = rb_make(p, n);
    uint64_t cid = rb_u64(&rb), seq = rb_u64(&rb);
    uint32_t nk = rb_u32(&rb);
    if (nk > WITNESS_MAX_KEYS || nk == 0) return;
    uint64_t keys[WITNESS_MAX_KEYS];
    for (uint32_t k = 0; k < nk; k++) keys[k] = rb_u64(&rb);
    size_t len;
    const unsigned char *req = rb_bytes(&rb, &len);
    if (rb.bad) return;
    if (rifl_check(cl->rifl, cid, seq, NULL, NULL) == RIFL_NEW) {
        /* its client gave up or its FORWARD was lost: apply it, the
         * commit then makes every witness drop it */
        exec_orphan(cl, cid, seq, (int)nk, keys, (const char *)req, len);
        atomic_fetch_add(&cl->n_stale_replayed, 1);
        return;
    }
    wbuf w = {0};
    wb_u64(&w, cid);
    wb_u64(&w, seq);
    wb_u32(&w, nk);
    for (uint32_t k = 0; k < nk; k++) wb_u64(&w, keys[k]);
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx) bus_send(cl->bus, cl->nodes[i].id, MSG_GC, w.p, w.len);
    wb_free(&w);
}

void cl_on_gc(cluster *cl, int from, const uint8_t *p, size_t n) {
    rbuf rb = rb_make(p, n);
    uint64_t cid = rb_u64(&rb), seq = rb_u64(&rb);
    uint32_t nk = rb_u32(&rb);
    if (nk > WITNESS_MAX_KEYS) return;
    uint64_t keys[WITNESS_MAX_KEYS];
    for (uint32_t k = 0; k < nk; k++) keys[k] = rb_u64(&rb);
    if (!rb.bad && nk && witness_gc(cl->witness, cid, seq, keys, (int)nk))
        log_witness_line(cl, "PIER.WGC", 0, 0, cid, seq, keys, (int)nk, NULL, 0);
}

/* ---- events ---- */

void cl_on_commit_advanced(cluster *cl) {
    if (cl->sync_waits) process_syncs(cl, cl_now_us());
    if (atomic_load(&cl->role) == ROLE_LEADER) {
        process_waits(cl);
        check_recovery(cl);
        return;
    }
    cl_req *r = cl->inflight;
    while (r) {
        cl_req *next = r->next;
        proxy_check(cl, r);
        r = next;
    }
}

/* Put the proxied requests back, in the order first sent, ahead of those
 * parked since (extra are the deposed leader's own, older still). */
static void requeue_inflight(cluster *cl, cl_req *extra_head, cl_req *extra_tail) {
    cl_req *old_head = cl->parked_head, *old_tail = cl->parked_tail;
    cl->parked_head = extra_head;
    cl->parked_tail = extra_tail;
    cl_req *r = cl->inflight;
    cl->inflight = cl->inflight_tail = NULL;
    while (r) {
        cl_req *next = r->next;
        free(r->result);
        r->result = NULL;
        r->result_len = 0;
        park(cl, r);
        r = next;
    }
    if (old_head) {
        if (cl->parked_tail) cl->parked_tail->next = old_head;
        else cl->parked_head = old_head;
        cl->parked_tail = old_tail;
    }
}

void cl_on_leader_link_down(cluster *cl) { requeue_inflight(cl, NULL, NULL); }

void cl_on_leader_changed(cluster *cl) {
    int role = atomic_load(&cl->role);
    /* A deposed leader's held replies: forwarded ones are dropped (their
     * proxies resend), its own clients' requests go through the proxy
     * path to the new leader (the exactly-once table answers them if
     * their entries survived). */
    cl_req *own_head = NULL, *own_tail = NULL;
    if (role != ROLE_LEADER) {
        /* fast-path replies not yet sent go the same way */
        if (cl->durable_head) {
            cl->durable_tail->next = cl->waits_head;
            cl->waits_head = cl->durable_head;
            if (!cl->waits_tail) cl->waits_tail = cl->durable_tail;
            cl->durable_head = cl->durable_tail = NULL;
        }
        while (cl->waits_head) {
            cl_wait *w = cl->waits_head;
            cl->waits_head = w->next;
            if (w->req) {
                w->req->next = NULL;
                if (own_tail) own_tail->next = w->req;
                else own_head = w->req;
                own_tail = w->req;
            }
            free(w->result);
            free(w);
        }
        cl->waits_tail = NULL;
        /* forwarded requests queued while recovering: their proxies resend */
        while (cl->fwd_parked_head) {
            cl_req *f = cl->fwd_parked_head;
            cl->fwd_parked_head = f->next;
            req_free(f);
        }
        cl->fwd_parked_tail = NULL;
    }
    /* Proxied requests start over with the new leader (same cid/seq). */
    requeue_inflight(cl, own_head, own_tail);
    if (role == ROLE_FOLLOWER && atomic_load(&cl->leader_id) > 0) unpark(cl);
}

void cl_curp_tick(cluster *cl) {
    int64_t now = cl_now_us();
    cl->gc_round++;
    atomic_store(&cl->witness_records, witness_count(cl->witness));
    int role = atomic_load(&cl->role);
    if (role == ROLE_LEADER) {
        process_waits(cl);
        if (cl->collect_needed) {
            send_collect(cl);
            check_recovery(cl);
        }
    } else if (atomic_load(&cl->leader_id) > 0) {
        if (cl->gc_round % 50 == 0 && cl->gc_round > STALE_ROUNDS)
            witness_stale(cl->witness, cl->gc_round - STALE_ROUNDS, send_stale, cl);
        if (cl->parked_head) unpark(cl); /* the leader was recovering: retry */
    }
    if (cl->gc_round % 500 == 0) rifl_expire(cl->rifl, clock_wall_ms(), RIFL_IDLE_MS);
    if (cl->sync_waits) process_syncs(cl, now);
    /* Requests waiting too long for a leader answer CLUSTERDOWN. */
    cl_req **pp = &cl->parked_head;
    cl->parked_tail = NULL;
    while (*pp) {
        cl_req *r = *pp;
        if (r->deadline_us && now > r->deadline_us && r->kind != CREQ_WEAK_WRITE) {
            *pp = r->next;
            deliver_error(cl, r, "CLUSTERDOWN The cluster is down");
            req_free(r);
            continue;
        }

        cl->parked_tail = r;
        pp = &r->next;
    }
    for (cl_req *r = cl->inflight, *next; r; r = next) {
        next = r->next;
        if (!r->deadline_us || now <= r->deadline_us) continue;
        if (r->kind == CREQ_WEAK_WRITE) continue; /* kept (and its session waits) until committed */
        inflight_remove(cl, r);
        deliver_error(cl, r, "CLUSTERDOWN The cluster is down");
        req_free(r);
    }
}

void cl_curp_init(cluster *cl) {
    /* the start-up table (see cl_witness_restored): 4x the ways */
    cl->witness = witness_create(WITNESS_SETS_LOG2, WITNESS_WAYS * 4);
    cl->rifl = rifl_create(256);
    if (!cl->witness || !cl->rifl) abort();
    eb_init(&cl->eb);
}

static void free_req_list(cl_req *r) {
    while (r) {
        cl_req *next = r->next;
        req_free(r);
        r = next;
    }
}

void cl_curp_free(cluster *cl) {
    free_req_list(cl->submit_head);
    free_req_list(cl->parked_head);
    free_req_list(cl->inflight);
    free_req_list(cl->fwd_parked_head);
    free_req_list(cl->sync_waits);
    for (int q = 0; q < 2; q++) {
        cl_wait *w = q ? cl->durable_head : cl->waits_head;
        while (w) {
            cl_wait *next = w->next;
            req_free(w->req);
            free(w->result);
            free(w);
            w = next;
        }
    }
    free(cl->rec_acks);
    clear_collected(cl);
    free(cl->own_records);
    witness_destroy(cl->witness);
    rifl_destroy(cl->rifl);
    eb_free(&cl->eb);
}

/* ---- submission (loop threads) ---- */

void cluster_submit(cluster *cl, void *client, uint64_t slot, uint64_t cid, uint64_t seq,
                    int kind, int proto, int argc, const cmd_arg *argv) {
    cluster_submit_direct(cl, client, slot, cid, seq, kind, proto, 0, argc, argv);
}

void cluster_submit_direct(cluster *cl, void *client, uint64_t slot, uint64_t cid, uint64_t seq,
                           int kind, int proto, uint64_t aux, int argc, const cmd_arg *argv) {
    cl_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->client = client;
    r->slot = slot;
    r->cid = cid;
    r->seq = seq;
    r->kind = kind;
    r->proto = proto;
    r->aux = aux;
    const command *cmd = cmd_row_of(argc, argv, 0); /* a container's: its subcommand's */
    r->is_write = cmd && (cmd->flags & CMD_WRITE);
    /* keys from the row, as the dispatcher locks them; none: the whole
     * keyspace (FLUSHALL, KEYS, DBSIZE) */
    int n = cmd ? cmd_key_count(cmd, argc, argv) : 0;
    r->keys = malloc((size_t)(n ? n : 1) * sizeof *r->keys);
    if (!r->keys) abort();
    r->nkeys = n ? cluster_command_keys(cmd, argc, argv, r->keys, n) : -1;
    r->blob = resp_array_encode(argc, argv, &r->blob_len);
    long ms = (long)CFG_GET(cl->cfg->cluster_request_timeout_ms);
    r->deadline_us = cl_now_us() + (int64_t)ms * 1000;
    if (kind == CREQ_WEAK_WRITE) atomic_fetch_add(&cl->n_weak_writes, 1);
    pthread_mutex_lock(&cl->submit_lock);
    if (cl->submit_tail) cl->submit_tail->next = r;
    else cl->submit_head = r;
    cl->submit_tail = r;
    pthread_mutex_unlock(&cl->submit_lock);
    ev_wake(cl->loop);
}
