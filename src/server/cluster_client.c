/* cluster_client.c - a connection's side of cluster mode (see the
 * header). Everything here runs on the connection's loop thread, except
 * deliver(), which the cluster thread calls. */
#include "cluster_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../cluster/entry.h"
#include "../lib/clock.h"
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

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) abort();
    return p;
}

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
    s->bytes = malloc(len ? len : 1);
    if (!s->bytes) abort();
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

/* Run a command here with its reply captured in tmp (initialized here,
 * freed by the caller), not sent. */
static void run_into(client *c, reply *tmp, int argc, const cmd_arg *argv) {
    reply_init(tmp);
    tmp->proto = c->out->proto;
    reply *saved = c->out;
    c->out = tmp;
    client_run_argv_local(c, argc, argv);
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
        k->pw = realloc(k->pw, k->pw_cap * sizeof *k->pw);
        if (!k->pw) abort();
    }
    pending_write *p = &k->pw[k->npw++];
    memset(p, 0, sizeof *p);
    p->seq = seq;
    p->key_hash = entry_key_hash(key->p, key->n);
    p->key = malloc(key->n + 1);
    p->val = malloc(val->n + 1);
    if (!p->key || !p->val) abort();
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

/* SET key value [EX|PX|EXAT|PXAT n | KEEPTTL], SETEX, PSETEX, MSET: writes
 * whose reply does not depend on the data, so a node can answer them. */
static int blind_write(const command *cmd, int argc, const cmd_arg *argv) {
    if (!strcmp(cmd->name, "mset")) return argc >= 3 && argc % 2 == 1;
    if (!strcmp(cmd->name, "setex") || !strcmp(cmd->name, "psetex")) {
        uint64_t v;
        return argc == 4 && !arg_u64(&argv[2], &v) && v > 0;
    }
    if (strcmp(cmd->name, "set") != 0) return 0;
    for (int i = 3; i < argc; i++) {
        const cmd_arg *a = &argv[i];
        if ((a->n == 2 && (!strncasecmp(a->p, "EX", 2) || !strncasecmp(a->p, "PX", 2))) ||
            (a->n == 4 && (!strncasecmp(a->p, "EXAT", 4) || !strncasecmp(a->p, "PXAT", 4)))) {
            /* only a valid time is blind: a bad one must get SET's error */
            uint64_t v;
            if (i + 1 >= argc || arg_u64(&argv[i + 1], &v) || v == 0) return 0;
            i++;
            continue;
        }
        if (a->n == 7 && !strncasecmp(a->p, "KEEPTTL", 7)) continue;
        return 0; /* NX, XX, GET or anything else */
    }
    return 1;
}

static void remember_weak_write(cl_conn *k, const command *cmd, int argc, const cmd_arg *argv,
                                uint64_t seq) {
    if (!strcmp(cmd->name, "mset")) {
        for (int i = 1; i + 1 < argc; i += 2) pending_add(k, seq, &argv[i], &argv[i + 1]);
    } else if (!strcmp(cmd->name, "set")) {
        pending_add(k, seq, &argv[1], &argv[2]);
    } else {
        pending_add(k, seq, &argv[1], &argv[3]); /* SETEX key seconds value */
    }
}

/* ---- routing ---- */

/* Data commands the key spec does not describe (Redis marks them
 * movablekeys or keyless): they wait for the whole log before them. */
static int is_keyspace_read(const command *cmd) {
    static const char *const names[] = {"dbsize", "keys", "scan", "randomkey", "xread", "xinfo",
                                        NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(cmd->name, names[i])) return 1;
    return 0;
}

static int is_keyless_write(const command *cmd) { return !strcmp(cmd->name, "xgroup"); }

/* The command's key hashes (keys[] of room MAX_LOCAL_KEYS); -1 for the
 * whole keyspace or too many keys (a local read then checks them all). */
static int key_hashes(const command *cmd, int argc, const cmd_arg *argv, uint64_t *keys) {
    int n = cluster_command_keys(cmd, argc, argv, keys, MAX_LOCAL_KEYS);
    return n < 0 ? -1 : n;
}

static void submit(client *c, int kind, int argc, const cmd_arg *argv) {
    cl_conn *k = conn_of(c);
    uint64_t id = slot_push(k);
    k->refs++;
    cluster_submit(c->srv->cluster, c, id, k->cid, ++k->seq, kind, c->sess.proto, argc, argv);
}

static int route_weak_write(client *c, const command *cmd, int argc, const cmd_arg *argv) {
    cl_conn *k = conn_of(c);
    uint64_t seq = ++k->seq;
    remember_weak_write(k, cmd, argc, argv, seq);
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
static int run_local_read(client *c, int strong, int argc, const cmd_arg *argv,
                          const uint64_t *keys, int nkeys) {
    reply tmp;
    run_into(c, &tmp, argc, argv);
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

static int route_weak_read(client *c, const command *cmd, int argc, const cmd_arg *argv,
                           const uint64_t *keys, int nkeys) {
    cl_conn *k = conn_of(c);
    cluster *cl = c->srv->cluster;
    pending_drop_visible(k, cluster_visible_index(cl));
    if (k->npw && nkeys > 0) {
        if (!strcmp(cmd->name, "get")) {
            const pending_write *p = pending_find(k, &argv[1]);
            if (p) {
                char hdr[32];
                int h = snprintf(hdr, sizeof hdr, "$%zu\r\n", p->vlen);
                size_t len = (size_t)h + p->vlen + 2;
                char *buf = malloc(len);
                if (!buf) abort();
                memcpy(buf, hdr, (size_t)h);
                memcpy(buf + h, p->val, p->vlen);
                memcpy(buf + h + p->vlen, "\r\n", 2);
                answer(c, buf, len);
                free(buf);
                cluster_count_weak_read(cl);
                return ROUTE_DONE;
            }
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
    return run_local_read(c, 0, argc, argv, keys, nkeys);
}

static int arg_u64(const cmd_arg *a, uint64_t *out) {
    unsigned long long v;
    if (!util_parse_ull(a->p, a->n, &v)) return -1;
    *out = v;
    return 0;
}

/* PIER.EXEC cid seq cmd..., PIER.RECORD term cid seq cmd..., PIER.SYNC cid
 * seq index: a CURP client doing its own fan-out (docs/PROTOCOL.md).
 * Returns -1 when argv is none of them. */
static int route_direct(client *c, int argc, const cmd_arg *argv) {
    static const struct {
        const char *name;
        int kind, min_argc, skip;
    } forms[] = {{"pier.exec", CREQ_DIRECT_EXEC, 4, 3},
                 {"pier.record", CREQ_DIRECT_RECORD, 5, 4},
                 {"pier.sync", CREQ_DIRECT_SYNC, 4, 0}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        if (argv[0].n != strlen(forms[i].name) || strncasecmp(argv[0].p, forms[i].name, argv[0].n))
            continue;
        if (!c->sess.authenticated && c->srv->env.host->auth_required(c->srv->env.host_arg))
            return -1; /* NOAUTH from the dispatcher */
        int rec = forms[i].kind == CREQ_DIRECT_RECORD;
        uint64_t a = 0, b = 0, d = 0;
        if (argc < forms[i].min_argc || (forms[i].kind == CREQ_DIRECT_SYNC && argc != 4) ||
            arg_u64(&argv[1], &a) || arg_u64(&argv[2], &b) || (argc > 3 && rec && arg_u64(&argv[3], &d)) ||
            (forms[i].kind == CREQ_DIRECT_SYNC && arg_u64(&argv[3], &d))) {
            static const char err[] = "-ERR syntax error\r\n";
            answer(c, err, sizeof err - 1);
            return ROUTE_DONE;
        }
        uint64_t cid = rec ? b : a, seq = rec ? d : b, aux = rec ? a : d;
        cl_conn *k = conn_of(c);
        uint64_t id = slot_push(k);
        k->refs++;
        int skip = forms[i].skip;
        cluster_submit_direct(c->srv->cluster, c, id, cid, seq, forms[i].kind, c->sess.proto, aux,
                              skip ? argc - skip : argc, skip ? argv + skip : argv);
        return ROUTE_DONE;
    }
    return -1;
}

int cluster_client_route(client *c, int argc, const cmd_arg *argv) {
    if (argv[0].n > 5 && !strncasecmp(argv[0].p, "pier.", 5)) {
        int r = route_direct(c, argc, argv);
        if (r >= 0) return r;
    }
    const command *cmd = cmd_lookup(argv[0].p, argv[0].n);
    cl_conn *k = c->clc;
    int queued = k && k->count;
    if (!cmd || (c->sess.subscriptions > 0 && c->sess.proto == 2) ||
        (cmd->arity > 0 ? argc != cmd->arity : argc < -cmd->arity) ||
        (!c->sess.authenticated && c->srv->env.host->auth_required(c->srv->env.host_arg)))
        return queued ? ROUTE_LOCAL_SLOT : ROUTE_LOCAL; /* errors are answered here */
    int writes = (cmd->flags & CMD_WRITE) || is_keyless_write(cmd);
    int data = (cmd->first_key > 0 && !(cmd->flags & CMD_NOKEYS)) || writes ||
               is_keyspace_read(cmd);
    if (!data) return queued ? ROUTE_LOCAL_SLOT : ROUTE_LOCAL;
    uint64_t keys[MAX_LOCAL_KEYS];
    int nkeys = key_hashes(cmd, argc, argv, keys);
    int weak = c->sess.consistency == 1;
    if (writes) {
        /* a session with too many weak writes in flight waits for them:
         * strong writes hold its replies (backpressure) */
        if (weak && blind_write(cmd, argc, argv) && (!k || k->refs < WEAK_INFLIGHT_MAX))
            return route_weak_write(c, cmd, argc, argv);
        submit(c, CREQ_STRONG, argc, argv);
        return ROUTE_DONE;
    }
    if (weak) return route_weak_read(c, cmd, argc, argv, keys, nkeys);
    /* Locally only when nothing of this session is still on its way: a
     * strong read must see the session's earlier (weak) writes. */
    if (k) pending_drop_visible(k, cluster_visible_index(c->srv->cluster));
    int idle = !k || (k->refs == 0 && k->npw == 0);
    if (idle && cluster_local_read(c->srv->cluster, 1, keys, nkeys))
        return run_local_read(c, 1, argc, argv, keys, nkeys);
    submit(c, CREQ_STRONG, argc, argv);
    return ROUTE_DONE;
}

void cluster_client_run_slotted(client *c, int argc, const cmd_arg *argv) {
    reply tmp;
    run_into(c, &tmp, argc, argv);
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
