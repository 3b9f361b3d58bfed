/* cluster_client.c - a connection's side of cluster mode (see the
 * header). Everything here runs on the connection's loop thread, except
 * deliver(), which the cluster thread calls. */
#include "cluster_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cluster/entry.h"
#include "../lib/clock.h"
#include "../lib/mem.h"
#include "../lib/util.h"

#define MAX_LOCAL_KEYS 64 /* more keys: the read goes through the cluster thread */
#define WEAK_INFLIGHT_MAX 4096 /* weak writes a session may have unconfirmed */

typedef struct slot {
    int ready;
    char *bytes;
    size_t len;
} slot;

/* A weak write of this session not yet visible on this node. */
typedef struct pending_write {
    uint64_t seq;       /* the request's sequence number */
    uint64_t index;     /* the log index it committed at (once committed) */
    int committed;      /* the cluster confirmed index holds it */
    int lost;           /* timed out before a leader took it */
    uint64_t key_hash;
    char *key, *val;
    size_t klen, vlen;
} pending_write;

typedef struct cl_conn {
    uint64_t cid, seq;
    slot *slots;        /* replies in command order: ring */
    size_t head, count, cap;
    uint64_t head_id;   /* id of slots[head] */
    int refs;           /* requests the cluster thread still holds */
    int closed;
    pending_write *pw;
    size_t npw, pw_cap;
} cl_conn;

static void unhold(client *c);
static int arg_u64(const cmd_arg *a, uint64_t *out);

static cl_conn *conn_of(client *c) {
    if (!c->clc) {
        c->clc = xcalloc(1, sizeof(cl_conn));
        c->clc->cid = cluster_new_client_id(c->srv->cluster);
    }
    return c->clc;
}

/* ---- ordered replies ---- */

static uint64_t slot_push(cl_conn *k) {
    if (k->count == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 16;
        slot *s = xcalloc(cap, sizeof *s);
        for (size_t i = 0; i < k->count; i++) s[i] = k->slots[(k->head + i) % k->cap];
        free(k->slots);
        k->slots = s;
        k->cap = cap;
        k->head = 0;
    }
    slot *s = &k->slots[(k->head + k->count) % k->cap];
    memset(s, 0, sizeof *s);
    return k->head_id + k->count++;
}

static void slot_fill(cl_conn *k, uint64_t id, const char *bytes, size_t len) {
    if (id < k->head_id || id >= k->head_id + k->count) return;
    slot *s = &k->slots[(k->head + (id - k->head_id)) % k->cap];
    s->bytes = xmalloc(len ? len : 1);
    if (len) memcpy(s->bytes, bytes, len);
    s->len = len;
    s->ready = 1;
}

/* Move the ready replies at the front into the connection's output. */
static void slots_flush(client *c) {
    cl_conn *k = c->clc;
    int moved = 0;
    while (k->count && k->slots[k->head].ready) {
        slot *s = &k->slots[k->head];
        if (!(c->flags & CLIENT_CLOSING)) reply_raw(c->out, s->bytes, s->len);
        free(s->bytes);
        k->head = (k->head + 1) % k->cap;
        k->count--;
        k->head_id++;
        moved = 1;
    }
    if (moved && !(c->flags & CLIENT_CLOSING)) client_output_added(c);
}

/* A reply known now: straight out, or queued behind the ones in flight. */
static void answer(client *c, const char *bytes, size_t len) {
    cl_conn *k = conn_of(c);
    if (!k->count) {
        reply_raw(c->out, bytes, len);
        return;
    }
    slot_fill(k, slot_push(k), bytes, len);
}

/* Run a resolved command here with its reply captured in tmp
 * (initialized here, freed by the caller), not sent. */
static void run_into(client *c, reply *tmp, cmd_ctx *ctx, cmd_verdict *v) {
    reply_init(tmp);
    tmp->proto = c->out->proto;
    reply *saved = c->out;
    c->out = tmp;
    client_run_resolved(c, ctx, v);
    c->out = saved;
}

/* Everything queued in r, answered in order (r is drained). */
static void answer_reply(client *c, reply *r) {
    struct iovec iov[32];
    for (;;) {
        int n = reply_iov(r, iov, 32);
        if (n <= 0) break;
        size_t got = 0;
        for (int i = 0; i < n; i++) {
            answer(c, iov[i].iov_base, iov[i].iov_len);
            got += iov[i].iov_len;
        }
        reply_consume(r, got);
    }
}

/* ---- the weak session ---- */

static void pending_drop_visible(cl_conn *k, uint64_t visible) {
    size_t j = 0;
    for (size_t i = 0; i < k->npw; i++) {
        pending_write *p = &k->pw[i];
        if ((p->committed && p->index <= visible) || p->lost) {
            free(p->key);
            free(p->val);
        } else {
            k->pw[j++] = *p;
        }
    }
    k->npw = j;
}

static void pending_add(cl_conn *k, uint64_t seq, const cmd_arg *key, const cmd_arg *val) {
    if (k->npw == k->pw_cap) {
        k->pw_cap = k->pw_cap ? k->pw_cap * 2 : 8;
        k->pw = xrealloc(k->pw, k->pw_cap * sizeof *k->pw);
    }
    pending_write *p = &k->pw[k->npw++];
    memset(p, 0, sizeof *p);
    p->seq = seq;
    p->key_hash = entry_key_hash(key->p, key->n);
    p->key = xmalloc(key->n + 1);
    p->val = xmalloc(val->n + 1);
    memcpy(p->key, key->p, key->n);
    memcpy(p->val, val->p, val->n);
    p->klen = key->n;
    p->vlen = val->n;
}

/* The session's newest pending write of key, or NULL. */
static const pending_write *pending_find(const cl_conn *k, const cmd_arg *key) {
    const pending_write *best = NULL;
    for (size_t i = 0; i < k->npw; i++) {
        const pending_write *p = &k->pw[i];
        if (p->klen == key->n && memcmp(p->key, key->p, key->n) == 0 &&
            (!best || p->seq > best->seq))
            best = p;
    }
    return best;
}

/* A blind write's (key, value) pairs (argv positions, cmd_blind_fn), kept
 * until the write is visible here. */
static void remember_weak_write(cl_conn *k, const cmd_keys *pairs, const cmd_arg *argv,
                                uint64_t seq) {
    for (int i = 0; i + 1 < pairs->n; i += 2)
        pending_add(k, seq, &argv[cmd_keys_at(pairs, i)], &argv[cmd_keys_at(pairs, i + 1)]);
}

/* ---- routing ---- */

/* The hashes of the verdict's keys (keys[] of room MAX_LOCAL_KEYS); -1
 * for the whole keyspace or too many keys (a local read then checks them
 * all). */
static int key_hashes(const cmd_verdict *v, const cmd_arg *argv, uint64_t *keys) {
    if (cmd_whole_keyspace(v) || v->keys.n > MAX_LOCAL_KEYS) return -1;
    for (int i = 0; i < v->keys.n; i++) {
        const cmd_arg *key = &argv[cmd_keys_at(&v->keys, i)];
        keys[i] = entry_key_hash(key->p, key->n);
    }
    return v->keys.n;
}

static void submit(client *c, int kind, int argc, const cmd_arg *argv) {
    cl_conn *k = conn_of(c);
    uint64_t id = slot_push(k);
    k->refs++;
    cluster_submit(c->srv->cluster, c, id, k->cid, ++k->seq, kind, c->sess.proto, argc, argv);
}

static int route_weak_write(client *c, const cmd_keys *pairs, int argc, const cmd_arg *argv) {
    cl_conn *k = conn_of(c);
    uint64_t seq = ++k->seq;
    remember_weak_write(k, pairs, argv, seq);
    k->refs++;
    /* the slot field carries the seq: the completion names the write */
    cluster_submit(c->srv->cluster, c, seq, k->cid, seq, CREQ_WEAK_WRITE, c->sess.proto, argc,
                   argv);
    answer(c, "+OK\r\n", 5);
    return ROUTE_DONE;
}

static void submit(client *c, int kind, int argc, const cmd_arg *argv);

/* Run a read here, then check again that it was allowed to: a write may
 * have started on the cluster thread between the check and the read, and
 * its value must not leave before its commit. On a failed re-check the
 * answer is dropped and the read goes through the cluster thread. */
static int run_local_read(client *c, int strong, cmd_ctx *ctx, cmd_verdict *v,
                          const uint64_t *keys, int nkeys) {
    int argc = ctx->argc;
    const cmd_arg *argv = ctx->argv;
    reply tmp;
    run_into(c, &tmp, ctx, v);
    if (!cluster_local_read(c->srv->cluster, strong, keys, nkeys) ||
        (c->flags & CLIENT_BLOCKED)) {
        reply_free(&tmp);
        if (c->flags & CLIENT_BLOCKED) return ROUTE_DONE; /* parked: it runs again later */
        submit(c, CREQ_STRONG, argc, argv);
        return ROUTE_DONE;
    }
    answer_reply(c, &tmp);
    reply_free(&tmp);
    return ROUTE_DONE;
}

/* GET-like reads (CMD_REPLY_IS_VALUE) of a key the session wrote: its
 * newest pending value, as the bulk string GET would reply. Returns 0
 * when the session has no pending write of key. */
static int answer_pending_value(client *c, cl_conn *k, const cmd_arg *key) {
    const pending_write *p = pending_find(k, key);
    if (!p) return 0;
    char hdr[32];
    int h = snprintf(hdr, sizeof hdr, "$%zu\r\n", p->vlen);
    size_t len = (size_t)h + p->vlen + 2;
    char *buf = xmalloc(len);
    memcpy(buf, hdr, (size_t)h);
    memcpy(buf + h, p->val, p->vlen);
    memcpy(buf + h + p->vlen, "\r\n", 2);
    answer(c, buf, len);
    free(buf);
    return 1;
}

static int route_weak_read(client *c, cmd_ctx *ctx, cmd_verdict *v, const uint64_t *keys,
                           int nkeys) {
    cl_conn *k = conn_of(c);
    cluster *cl = c->srv->cluster;
    int argc = ctx->argc;
    const cmd_arg *argv = ctx->argv;
    pending_drop_visible(k, cluster_visible_index(cl));
    if (k->npw && nkeys > 0) {
        if ((v->cmd->flags & CMD_REPLY_IS_VALUE) &&
            answer_pending_value(c, k, &argv[cmd_keys_at(&v->keys, 0)])) {
            cluster_count_weak_read(cl);
            return ROUTE_DONE;
        }
        /* other reads of a key the session wrote: through the leader,
         * which has the session's writes in order */
        for (int i = 0; i < nkeys; i++)
            for (size_t j = 0; j < k->npw; j++)
                if (k->pw[j].key_hash == keys[i]) {
                    submit(c, CREQ_STRONG, argc, argv);
                    return ROUTE_DONE;
                }
    }
    if (k->count || !cluster_local_read(cl, 0, keys, nkeys)) {
        submit(c, CREQ_STRONG, argc, argv);
        return ROUTE_DONE;
    }
    cluster_count_weak_read(cl);
    return run_local_read(c, 0, ctx, v, keys, nkeys);
}

static int arg_u64(const cmd_arg *a, uint64_t *out) {
    unsigned long long v;
    if (!util_parse_ull(a->p, a->n, &v)) return -1;
    *out = v;
    return 0;
}

/* PIER.EXEC cid seq cmd..., PIER.RECORD term cid seq cmd..., PIER.SYNC cid
 * seq index: a CURP client doing its own fan-out (docs/PROTOCOL.md). The
 * row's .direct says which; resolve already checked arity and auth. */
static int route_direct(client *c, int direct, int argc, const cmd_arg *argv) {
    static const struct {
        int kind, skip;
    } forms[] = {[CMD_DIRECT_EXEC] = {CREQ_DIRECT_EXEC, 3},
                 [CMD_DIRECT_RECORD] = {CREQ_DIRECT_RECORD, 4},
                 [CMD_DIRECT_SYNC] = {CREQ_DIRECT_SYNC, 0}};
    int kind = forms[direct].kind, rec = direct == CMD_DIRECT_RECORD;
    uint64_t a = 0, b = 0, d = 0;
    if (arg_u64(&argv[1], &a) || arg_u64(&argv[2], &b) || (rec && arg_u64(&argv[3], &d)) ||
        (direct == CMD_DIRECT_SYNC && arg_u64(&argv[3], &d))) {
        static const char err[] = "-ERR syntax error\r\n";
        answer(c, err, sizeof err - 1);
        return ROUTE_DONE;
    }
    uint64_t cid = rec ? b : a, seq = rec ? d : b, aux = rec ? a : d;
    cl_conn *k = conn_of(c);
    uint64_t id = slot_push(k);
    k->refs++;
    int skip = forms[direct].skip;
    cluster_submit_direct(c->srv->cluster, c, id, cid, seq, kind, c->sess.proto, aux,
                          skip ? argc - skip : argc, skip ? argv + skip : argv);
    return ROUTE_DONE;
}

/* A write: a weak session's blind write is answered here at once (unless
 * too many are in flight: strong writes hold its replies, backpressure);
 * anything else goes through the cluster thread. */
static int route_write(client *c, const command *cmd, int argc, const cmd_arg *argv) {
    cl_conn *k = c->clc;
    if (c->sess.consistency == 1 && cmd->blind && (!k || k->refs < WEAK_INFLIGHT_MAX)) {
        cmd_keys pairs;
        cmd_keys_init(&pairs);
        int blind = cmd->blind(argc, argv, &pairs) == 0;
        if (blind) route_weak_write(c, &pairs, argc, argv);
        cmd_keys_free(&pairs);
        if (blind) return ROUTE_DONE;
    }
    submit(c, CREQ_STRONG, argc, argv);
    return ROUTE_DONE;
}

int cluster_client_route(client *c, cmd_ctx *ctx, cmd_verdict *v) {
    cl_conn *k = c->clc;
    int local = k && k->count ? ROUTE_LOCAL_SLOT : ROUTE_LOCAL;
    /* refusals are answered here, by the full checks in Redis's order */
    if (v->refusal != CMD_OK) return local;
    const command *cmd = v->cmd;
    int argc = ctx->argc;
    const cmd_arg *argv = ctx->argv;
    if (cmd->direct) return route_direct(c, cmd->direct, argc, argv);
    int access = cmd_access(cmd);
    if (access == CMD_ACCESS_NONE) return local;
    if (access == CMD_ACCESS_WRITE) return route_write(c, cmd, argc, argv);
    uint64_t keys[MAX_LOCAL_KEYS];
    int nkeys = key_hashes(v, argv, keys);
    if (c->sess.consistency == 1) return route_weak_read(c, ctx, v, keys, nkeys);
    /* Locally only when nothing of this session is still on its way: a
     * strong read must see the session's earlier (weak) writes. */
    if (k) pending_drop_visible(k, cluster_visible_index(c->srv->cluster));
    int idle = !k || (k->refs == 0 && k->npw == 0);
    if (idle && cluster_local_read(c->srv->cluster, 1, keys, nkeys))
        return run_local_read(c, 1, ctx, v, keys, nkeys);
    submit(c, CREQ_STRONG, argc, argv);
    return ROUTE_DONE;
}

void cluster_client_run_slotted(client *c, cmd_ctx *ctx, cmd_verdict *v) {
    reply tmp;
    run_into(c, &tmp, ctx, v);
    answer_reply(c, &tmp);
    reply_free(&tmp);
}

/* ---- completions ---- */

static void deliver(void *arg, cluster_done *d) {
    (void)arg;
    client *c = d->client;
    loop_thread *lt = c->lt;
    pthread_mutex_lock(&lt->cl_lock);
    d->next = lt->cl_inbox;
    lt->cl_inbox = d;
    pthread_mutex_unlock(&lt->cl_lock);
    ev_wake(lt->loop);
}

static void restart(void *arg) { server_restart_exec(&((server *)arg)->cfg); }

const cluster_host cluster_client_host = {.deliver = deliver, .restart = restart};

static void complete(client *c, cluster_done *d) {
    cl_conn *k = c->clc;
    k->refs--;
    if (d->kind == CDONE_WEAK_DONE) {
        for (size_t i = 0; i < k->npw; i++)
            if (k->pw[i].seq == d->slot) {
                k->pw[i].index = d->index;
                k->pw[i].committed = d->index != 0;
                k->pw[i].lost = d->index == 0;
            }
    } else {
        slot_fill(k, d->slot, d->bytes, d->len);
        slots_flush(c);
    }
    if (k->closed && k->refs == 0) {
        unhold(c);
        client_destroy(c);
    }
}

void cluster_client_on_wake(loop_thread *lt) {
    pthread_mutex_lock(&lt->cl_lock);
    cluster_done *d = lt->cl_inbox;
    lt->cl_inbox = NULL;
    pthread_mutex_unlock(&lt->cl_lock);
    /* the inbox is a stack: restore arrival order */
    cluster_done *rev = NULL;
    while (d) {
        cluster_done *next = d->next;
        d->next = rev;
        rev = d;
        d = next;
    }
    while (rev) {
        cluster_done *next = rev->next;
        complete(rev->client, rev);
        free(rev);
        rev = next;
    }
}

int cluster_client_hold(client *c) {
    if (!c->clc || c->clc->refs == 0) return 0;
    c->clc->closed = 1;
    c->pending_next = c->lt->cl_held; /* off every other list now */
    c->lt->cl_held = c;
    return 1;
}

static void unhold(client *c) {
    for (client **p = &c->lt->cl_held; *p; p = &(*p)->pending_next)
        if (*p == c) {
            *p = c->pending_next;
            return;
        }
}

void cluster_client_free_held(loop_thread *lt) {
    while (lt->cl_held) {
        client *c = lt->cl_held;
        lt->cl_held = c->pending_next;
        client_destroy(c);
    }
}

void cluster_client_free(client *c) {
    cl_conn *k = c->clc;
    if (!k) return;
    for (size_t i = 0; i < k->count; i++) free(k->slots[(k->head + i) % k->cap].bytes);
    free(k->slots);
    for (size_t i = 0; i < k->npw; i++) {
        free(k->pw[i].key);
        free(k->pw[i].val);
    }
    free(k->pw);
    free(k);
    c->clc = NULL;
}
