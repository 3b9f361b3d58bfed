/* curp_exec.c - the leader's side of CURP: it executes every request at
 * once (speculatively, before the commit) on the cluster thread, so the
 * execution order is the log order; it logs each write as an entry
 * (the exec_env propagate hooks), tracks which key slots hold writes not
 * yet committed (the unsynced table: a read or a conflicting write on them
 * waits for the commit), and holds each reply until what it promises is
 * true: the commit, the lease, or (a fast-path reply) the entry in the
 * AOF. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "curp.h"
#include "curp_int.h"
#include "internal.h"
#include "msg.h"

#define SLOT_MARK (UINT64_MAX - 1) /* a write on the slot is executing */

/* The unsynced table's slot of a key hash. */
static unsigned slot_of(uint64_t h) { return (unsigned)(h & (UNSYNCED_SLOTS - 1)); }

/* The pending bytes of a reply queue, copied out. */
static char *reply_bytes(reply *out, size_t *len) {
    struct iovec iov[64];
    size_t total = 0, cap = 256;
    char *buf = xmalloc(cap);
    for (;;) {
        int n = reply_iov(out, iov, 64);
        if (n <= 0) break;
        size_t got = 0;
        for (int i = 0; i < n; i++) {
            if (total + iov[i].iov_len > cap) {
                while (total + iov[i].iov_len > cap) cap *= 2;
                buf = xrealloc(buf, cap);
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
        cl->view.args = xmalloc((size_t)n * sizeof *cl->view.args);
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
uint64_t curp_append_entry(cluster *cl, const cl_req *r, const entry_builder *records,
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
    uint64_t index = curp_append_entry(cl, cl->cur, &cl->eb, rep ? rep : "", len);
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
    uint64_t index = curp_append_entry(cl, &r, &rec, "", 0);
    eb_free(&rec);
    if (!index) return;
    mark_unsynced(cl, &h, 1, index);
    ev_wake(cl->loop); /* replicate it */
}

/* ---- the leader's execution ---- */

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
        x->bytes = xmalloc(len);
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
void curp_leader_exec(cluster *cl, cl_req *r, int recorded, exec_result *x) {
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
        r->index = curp_append_entry(cl, r, NULL, x->bytes, x->len);
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

/* Execute a request nobody waits for (a replayed or stale record). */
void curp_exec_orphan(cluster *cl, uint64_t cid, uint64_t seq, int nkeys, const uint64_t *keys,
                      const char *blob, size_t len) {
    cl_req *r = xcalloc(1, sizeof *r);
    r->cid = cid;
    r->seq = seq;
    r->is_write = 1;
    r->proto = 2;
    r->nkeys = nkeys;
    r->keys = xmalloc((size_t)(nkeys > 0 ? nkeys : 1) * sizeof *keys);
    if (nkeys > 0) memcpy(r->keys, keys, (size_t)nkeys * sizeof *keys);
    curp_copy_bytes(&r->blob, &r->blob_len, blob, len);
    exec_result x;
    curp_leader_exec(cl, r, 1, &x);
    free(x.bytes);
    curp_req_free(r);
}

/* ---- held replies (leader) ---- */

void curp_push_wait(cluster *cl, cl_wait *w) {
    w->next = NULL;
    if (cl->waits_tail) cl->waits_tail->next = w;
    else cl->waits_head = w;
    cl->waits_tail = w;
}

static void send_forward_resp(cluster *cl, int to, uint64_t req_id, int status, int synced,
                              uint64_t index, const char *bytes, size_t len) {
    msg_forward_resp m = {
        .req_id = req_id,
        .term = cl->term,
        .status = (uint8_t)status,
        .synced = (uint8_t)synced,
        .index = index,
        .reply = (const uint8_t *)bytes,
        .reply_len = len,
    };
    wbuf w = {0};
    msg_forward_resp_encode(&w, &m);
    cl_send(cl, to, MSG_FORWARD_RESP, &w);
}

static void complete_wait(cluster *cl, cl_wait *w) {
    if (w->req && w->req->kind == CREQ_WEAK_WRITE) {
        /* answered long ago: tell the session it is committed */
        curp_deliver(cl, w->req, CDONE_WEAK_DONE, w->index, NULL, 0);
        curp_req_free(w->req);
    } else if (w->req) {
        curp_deliver(cl, w->req, CDONE_REPLY, w->index, w->result, w->result_len);
        curp_req_free(w->req);
    } else {
        send_forward_resp(cl, w->to_node, w->req_id, FWD_OK, !w->unsynced, w->index, w->result,
                          w->result_len);
    }
    free(w->result);
    free(w);
}

int curp_lease_ok(cluster *cl) {
    return cl->nnodes == 1 || atomic_load(&cl->lease_until_us) > cl_now_us();
}

void curp_process_waits(cluster *cl) {
    uint64_t commit = atomic_load(&cl->commit);
    while (cl->waits_head) {
        cl_wait *w = cl->waits_head;
        if (w->index > commit || (w->need_lease && !curp_lease_ok(cl))) break;
        cl->waits_head = w->next;
        if (!cl->waits_head) cl->waits_tail = NULL;
        complete_wait(cl, w);
    }
}

/* A fast-path reply leaves only once its entry is in this node's AOF
 * (curp_aof_written): a leader's log then holds every request it answered
 * (docs/CONSISTENCY.md, "Why no acknowledged fast-path write is lost"). */
void curp_push_durable(cluster *cl, cl_wait *w) {
    w->next = NULL;
    if (cl->durable_tail) cl->durable_tail->next = w;
    else cl->durable_head = w;
    cl->durable_tail = w;
}

void curp_process_durable(cluster *cl) {
    while (cl->durable_head && cl->durable_head->index <= cl->synced_index) {
        cl_wait *w = cl->durable_head;
        cl->durable_head = w->next;
        if (!cl->durable_head) cl->durable_tail = NULL;
        complete_wait(cl, w);
    }
}

/* A request of one of this node's own connections, on the leader. */
void curp_serve_local(cluster *cl, cl_req *r) {
    exec_result x;
    curp_leader_exec(cl, r, 0, &x);
    cl_wait *w = xcalloc(1, sizeof *w);
    /* Its own clients' writes leave at the commit: the witnesses would
     * cost the same round trip. */
    w->index = x.index ? x.index : x.wait_index;
    w->need_lease = x.need_lease;
    w->req = r;
    w->result = x.bytes;
    w->result_len = x.len;
    if (x.index && r->kind == CREQ_STRONG) atomic_fetch_add(&cl->n_leader_writes, 1);
    curp_push_wait(cl, w);
    curp_process_waits(cl);
}

/* A request forwarded by another node's proxy. */
/* A deposed leader's held replies: forwarded ones are dropped (their
 * proxies resend), its own clients' requests are handed back in
 * *own_head..*own_tail to go through the proxy path to the new leader
 * (the exactly-once table answers them if their entries survived). */
void curp_exec_step_down(cluster *cl, cl_req **own_head, cl_req **own_tail) {
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
            if (*own_tail) (*own_tail)->next = w->req;
            else *own_head = w->req;
            *own_tail = w->req;
        }
        free(w->result);
        free(w);
    }
    cl->waits_tail = NULL;
    /* forwarded requests queued while recovering: their proxies resend */
    while (cl->fwd_parked_head) {
        cl_req *f = cl->fwd_parked_head;
        cl->fwd_parked_head = f->next;
        curp_req_free(f);
    }
    cl->fwd_parked_tail = NULL;
}

void curp_serve_forwarded(cluster *cl, cl_req *r, int from, uint64_t req_id) {
    exec_result x;
    curp_leader_exec(cl, r, 1, &x);
    if (!x.wait_index && !x.need_lease) { /* the fast path: after the AOF write */
        cl_wait *w = xcalloc(1, sizeof *w);
        w->index = x.index;
        w->to_node = from;
        w->req_id = req_id;
        w->unsynced = 1;
        w->result = x.bytes;
        w->result_len = x.len;
        curp_req_free(r);
        curp_push_durable(cl, w);
        return;
    }
    if (!x.wait_index && curp_lease_ok(cl)) {
        send_forward_resp(cl, from, req_id, FWD_OK, 1, x.index, x.bytes, x.len);
        free(x.bytes);
        curp_req_free(r);
        return;
    }
    cl_wait *w = xcalloc(1, sizeof *w);
    w->index = x.wait_index;
    w->need_lease = x.need_lease;
    w->to_node = from;
    w->req_id = req_id;
    w->result = x.bytes;
    w->result_len = x.len;
    /* index travels in the reply for a synced write too */
    if (x.index) w->index = x.index > w->index ? x.index : w->index;
    curp_req_free(r);
    curp_push_wait(cl, w);
    curp_process_waits(cl);
}

void cl_on_forward(cluster *cl, int from, const msg_request *m) {
    uint64_t req_id = m->req_id;
    cl_req *r = curp_request_from(m);
    if (atomic_load(&cl->role) != ROLE_LEADER) {
        send_forward_resp(cl, from, req_id, FWD_NOT_LEADER, 0, 0, "", 0);
        curp_req_free(r);
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
    curp_serve_forwarded(cl, r, from, req_id);
}
