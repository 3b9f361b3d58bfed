/* cluster.c - the CURP cluster client (pier.h, "cluster"; the protocol is
 * PIER.EXEC / PIER.RECORD / PIER.SYNC in docs/PROTOCOL.md).
 *
 * One non-blocking connection per node. A strong write is one "round":
 * EXEC to the leader and RECORD to every other node are all written
 * first, then one poll loop collects the replies, so the round costs the
 * slowest answer, not their sum. A node that has not answered when the
 * request timeout passes is dropped (its late reply would otherwise be
 * taken for the next request's) and counts as a reject. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define PCL_MAX_NODES 16
#define PCL_RECONNECT_NS 100000000ull /* a dead node costs one connect per 100 ms, not per op */
#define PCL_PAUSE_NS 20000000ull      /* between leader searches (an election takes ~0.5 s) */
#define PCL_SUSPECT_NS 1000000000ull  /* no new connection to a node that timed out */

enum { K_IDLE, K_PENDING, K_DONE, K_FAILED };

typedef struct pcl_conn {
    char host[256];
    int port;
    int id;                 /* cluster_node_id (0 until INFO said) */
    int weak;               /* the home node's weak-session connection */
    int fd;                 /* -1: not connected */
    uint64_t retry_ns;      /* no connect attempt before this */
    char *rbuf;
    size_t rlen, rcap, consumed; /* the reply is rbuf[0..consumed) */
    char *req;
    size_t req_len, req_off;
    int state, status;      /* K_*; status of a K_FAILED round */
    resp_reply reply;       /* K_DONE: points into rbuf until the next round */
} pcl_conn;

struct pier_cluster {
    int n, home;
    int leader, last_leader; /* node indexes, -1: unknown */
    uint64_t term, cid, seq;
    uint64_t req_ns, deadline_ns;
    char *password;
    pcl_conn node[PCL_MAX_NODES];
    pcl_conn weak;
    pier_cluster_stats st;
    char *res;              /* the last strong op's own reply (keep_result) */
    size_t res_cap;
    char why[200];          /* the last failure of the current op, for its final error */
};

/* ---- connections ---- */

static void conn_drop(pcl_conn *k) {
    if (k->fd >= 0) close(k->fd);
    k->fd = -1;
    k->rlen = k->consumed = 0;
}

static int round_run(pier_cluster *c, pcl_conn **ks, int n);

/* Encode argv as k's next request (the connection must be open). */
static int conn_encode(pcl_conn *k, int argc, const char *const *argv, const size_t *lens) {
    free(k->req);
    k->req = NULL;
    int rc = resp_encode_command(argc, argv, lens, &k->req, &k->req_len);
    k->req_off = 0;
    k->state = rc ? K_FAILED : K_PENDING;
    k->status = rc;
    return rc;
}

/* One request on one connection, waiting for its reply (handshakes). */
static int conn_call(pier_cluster *c, pcl_conn *k, int argc, const char *const *argv,
                     const size_t *lens) {
    int rc = conn_encode(k, argc, argv, lens);
    if (rc) return rc;
    round_run(c, &k, 1);
    if (k->state != K_DONE) return k->status;
    if (k->reply.type == RR_ERROR)
        return pier_fail(PIER_E_SERVER, "%s:%d: %.*s", k->host, k->port,
                         (int)(k->reply.len > 150 ? 150 : k->reply.len), k->reply.str);
    return PIER_OK;
}

/* AUTH, and PIER.CONSISTENCY WEAK on the weak connection. */
static int conn_handshake(pier_cluster *c, pcl_conn *k) {
    if (c->password) {
        const char *argv[] = {"AUTH", c->password};
        size_t lens[] = {4, strlen(c->password)};
        int rc = conn_call(c, k, 2, argv, lens);
        if (rc) return rc == PIER_E_SERVER ? PIER_E_AUTH : rc;
    }
    if (k->weak) {
        const char *argv[] = {"PIER.CONSISTENCY", "WEAK"};
        size_t lens[] = {16, 4};
        return conn_call(c, k, 2, argv, lens);
    }
    return PIER_OK;
}

static int conn_open(pier_cluster *c, pcl_conn *k) {
    if (k->fd >= 0) return PIER_OK;
    uint64_t now = pn_now_ns();
    if (now < k->retry_ns)
        return pier_fail(PIER_E_CONNECT, "%s:%d failed just now: not retried yet", k->host,
                         k->port);
    k->fd = pn_connect(k->host, k->port, 1, 0, 0);
    if (k->fd < 0) {
        k->retry_ns = now + PCL_RECONNECT_NS;
        return PIER_E_CONNECT;
    }
    fcntl(k->fd, F_SETFL, fcntl(k->fd, F_GETFL) | O_NONBLOCK);
    k->rlen = k->consumed = 0;
    int rc = conn_handshake(c, k);
    if (rc) conn_drop(k);
    return rc;
}

/* Open k if needed and queue a request for the next round_run. */
static int conn_prepare(pier_cluster *c, pcl_conn *k, int argc, const char *const *argv,
                        const size_t *lens) {
    int rc = conn_open(c, k);
    if (rc) {
        k->state = K_FAILED;
        k->status = rc;
        return rc;
    }
    return conn_encode(k, argc, argv, lens);
}

static void conn_fail(pcl_conn *k, int status) {
    k->state = K_FAILED;
    k->status = status;
    conn_drop(k);
}

static void conn_send(pcl_conn *k) {
    while (k->req_off < k->req_len) {
        ssize_t w = send(k->fd, k->req + k->req_off, k->req_len - k->req_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (w < 0) {
            conn_fail(k, pier_fail(PIER_E_IO, "%s:%d: write failed: %s", k->host, k->port,
                                   strerror(errno)));
            return;
        }
        k->req_off += (size_t)w;
    }
}

static void conn_recv(pcl_conn *k) {
    if (k->rcap - k->rlen < 4096) {
        size_t cap = k->rcap ? k->rcap * 2 : 16384;
        char *nb = realloc(k->rbuf, cap);
        if (!nb) {
            conn_fail(k, pier_fail(PIER_E_NOMEM, "no memory for a reply"));
            return;
        }
        k->rbuf = nb;
        k->rcap = cap;
    }
    ssize_t r = read(k->fd, k->rbuf + k->rlen, k->rcap - k->rlen);
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r <= 0) {
        conn_fail(k, pier_fail(PIER_E_IO, "%s:%d: %s", k->host, k->port,
                               r ? strerror(errno) : "connection closed by the server"));
        return;
    }
    k->rlen += (size_t)r;
    long l = resp_parse_reply(k->rbuf, k->rlen, &k->reply);
    if (l < 0) conn_fail(k, pier_fail(PIER_E_PROTOCOL, "%s:%d: malformed reply", k->host, k->port));
    if (l > 0) {
        k->consumed = (size_t)l;
        k->state = K_DONE;
    }
}

/* Drop the previous reply of each pending connection, then send every
 * request and collect the replies until the request timeout. */
static int round_run(pier_cluster *c, pcl_conn **ks, int n) {
    struct pollfd pf[PCL_MAX_NODES + 1];
    pcl_conn *pk[PCL_MAX_NODES + 1];
    for (int i = 0; i < n; i++) {
        pcl_conn *k = ks[i];
        if (k->state != K_PENDING) continue;
        if (k->consumed) {
            memmove(k->rbuf, k->rbuf + k->consumed, k->rlen - k->consumed);
            k->rlen -= k->consumed;
            k->consumed = 0;
        }
        conn_send(k);
    }
    uint64_t end = pn_now_ns() + c->req_ns;
    for (;;) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (ks[i]->state != K_PENDING) continue;
            pk[m] = ks[i];
            pf[m] = (struct pollfd){ks[i]->fd, POLLIN, 0};
            if (ks[i]->req_off < ks[i]->req_len) pf[m].events |= POLLOUT;
            m++;
        }
        uint64_t now = pn_now_ns();
        if (m == 0) return PIER_OK;
        if (now >= end) {
            for (int i = 0; i < m; i++) {
                conn_fail(pk[i], pier_fail(PIER_E_TIMEOUT, "%s:%d: no reply within %llu ms",
                                           pk[i]->host, pk[i]->port,
                                           (unsigned long long)(c->req_ns / 1000000)));
                /* a hung node (accepting, never answering) then costs one
                 * timeout per second, not one per op */
                pk[i]->retry_ns = now + PCL_SUSPECT_NS;
            }
            return PIER_E_TIMEOUT;
        }
        if (poll(pf, (nfds_t)m, (int)((end - now + 999999) / 1000000)) < 0 && errno != EINTR)
            return pier_fail(PIER_E_IO, "poll failed: %s", strerror(errno));
        for (int i = 0; i < m; i++) {
            if (pf[i].revents & POLLOUT) conn_send(pk[i]);
            if (pk[i]->state == K_PENDING && (pf[i].revents & (POLLIN | POLLERR | POLLHUP)))
                conn_recv(pk[i]);
        }
    }
}

/* ---- the leader ---- */

/* Keep the detail of a failure that is retried, for the final error. */
static void save_why(pier_cluster *c) { snprintf(c->why, sizeof c->why, "%s", pier_last_error()); }

static void set_leader(pier_cluster *c, int idx) {
    if (idx >= 0 && c->last_leader >= 0 && idx != c->last_leader) c->st.failovers++;
    c->leader = idx;
    if (idx >= 0) c->last_leader = idx;
}

static int index_of_id(const pier_cluster *c, long long id) {
    for (int i = 0; i < c->n; i++)
        if (c->node[i].id == id) return i;
    return -1;
}

/* The number after "name:" in an INFO text, -1 when absent. */
static long long info_field(const char *s, size_t n, const char *name) {
    size_t k = strlen(name);
    for (const char *p = s, *end = s + n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if ((size_t)(le - p) > k && !memcmp(p, name, k) && p[k] == ':')
            return strtoll(p + k + 1, NULL, 10); /* stops at the \r inside the reply */
        p = le + 1;
    }
    return -1;
}

/* Ask every node's INFO cluster. The leader is a node saying leader and
 * serving (the highest term wins: a deposed leader may not know yet);
 * failing that, the leader a serving follower names. *answered gets the
 * number of nodes that replied. */
static int discover(pier_cluster *c, int *answered) {
    static const char *const argv[] = {"INFO", "cluster"};
    static const size_t lens[] = {4, 7};
    pcl_conn *ks[PCL_MAX_NODES];
    for (int i = 0; i < c->n; i++) conn_prepare(c, ks[i] = &c->node[i], 2, argv, lens);
    round_run(c, ks, c->n);
    int best = -1, hint = 0, got = 0;
    long long best_term = -1, hint_term = -1;
    for (int i = 0; i < c->n; i++) {
        const pcl_conn *k = ks[i];
        if (k->state != K_DONE || k->reply.type != RR_BULK) continue;
        got++;
        const char *s = k->reply.str;
        size_t n = k->reply.len;
        long long id = info_field(s, n, "cluster_node_id"), term = info_field(s, n, "cluster_term");
        long long serving = info_field(s, n, "cluster_serving");
        long long lid = info_field(s, n, "cluster_leader_id");
        if (id > 0) c->node[i].id = (int)id;
        if (serving != 1) continue;
        if (memmem(s, n, "cluster_role:leader", 19) && term > best_term) {
            best = i;
            best_term = term;
        } else if (lid > 0 && term > hint_term) {
            hint = (int)lid;
            hint_term = term;
        }
    }
    if (answered) *answered = got;
    if (best < 0 && hint > 0 && (best = index_of_id(c, hint)) >= 0) best_term = hint_term;
    if (best < 0) return pier_fail(PIER_E_TIMEOUT, "no serving leader (%d of %d nodes answered)",
                                   got, c->n);
    set_leader(c, best);
    c->term = (uint64_t)best_term;
    return PIER_OK;
}

/* ---- strong ops ---- */

enum { AT_DONE, AT_RETRY, AT_LOST_LEADER, AT_PAUSE };

typedef struct pcl_op {
    int argc, write;
    const char *argv[3];
    size_t lens[3];
} pcl_op;

/* N = 2f + 1 nodes: f + ceil(f/2) of the 2f witnesses. */
static int super_quorum(int n) {
    int f = (n - 1) / 2;
    return f + (f + 1) / 2;
}

/* Copy the command's own reply out of the connection's buffer (a SYNC
 * round on that connection reuses the buffer). */
static int keep_result(pier_cluster *c, const char *p, size_t len, resp_reply *out) {
    if (len > c->res_cap) {
        char *nb = realloc(c->res, len);
        if (!nb) return pier_fail(PIER_E_NOMEM, "no memory for a %zu-byte reply", len);
        c->res = nb;
        c->res_cap = len;
    }
    memcpy(c->res, p, len);
    return resp_parse_reply(c->res, len, out) == (long)len ? PIER_OK
                                                           : pier_fail(PIER_E_PROTOCOL, "bad reply");
}

typedef struct exec_reply {
    uint64_t term, index;
    int synced;
} exec_reply;

/* [term, index, synced, <reply>]: the reply goes to *out via keep_result. */
static int parse_exec(pier_cluster *c, const pcl_conn *k, exec_reply *x, resp_reply *out) {
    const resp_reply *r = &k->reply;
    const char *p = r->str + r->len + 2, *end = k->rbuf + k->consumed;
    resp_reply e[4];
    long l = -1;
    int ok = r->type == RR_ARRAY && r->integer == 4;
    for (int i = 0; ok && i < 4; i++) {
        l = resp_parse_reply(p, (size_t)(end - p), &e[i]);
        ok = l > 0 && (i == 3 || e[i].type == RR_INT);
        if (ok && i < 3) p += l;
    }
    if (!ok)
        return pier_fail(PIER_E_PROTOCOL, "%s:%d: PIER.EXEC reply is not [term, index, synced, "
                         "reply]", k->host, k->port);
    *x = (exec_reply){(uint64_t)e[0].integer, (uint64_t)e[1].integer, e[2].integer != 0};
    return keep_result(c, p, (size_t)l, out);
}

/* -NOTLEADER <id> <host>:<port>: the node to go to, -1 if not ours. */
static int redirect_target(const pier_cluster *c, const resp_reply *r) {
    char line[300], addr[280];
    int id = 0;
    snprintf(line, sizeof line, "%.*s", (int)(r->len < 299 ? r->len : 299), r->str);
    if (sscanf(line, "NOTLEADER %d %279s", &id, addr) != 2) return -1;
    for (int i = 0; i < c->n; i++) {
        char mine[300];
        snprintf(mine, sizeof mine, "%s:%d", c->node[i].host, c->node[i].port);
        if (!strcmp(mine, addr)) return i;
    }
    return index_of_id(c, id);
}

/* An error reply of the leader to PIER.EXEC. */
static int leader_error(pier_cluster *c, const pcl_conn *k, int *status) {
    const resp_reply *r = &k->reply;
    pier_fail(PIER_E_SERVER, "%s:%d: %.*s", k->host, k->port, (int)(r->len > 150 ? 150 : r->len),
              r->str);
    save_why(c);
    if (r->len >= 9 && !memcmp(r->str, "NOTLEADER", 9)) {
        int to = redirect_target(c, r);
        if (to >= 0 && to != c->leader) {
            set_leader(c, to);
            return AT_RETRY;
        }
        return AT_LOST_LEADER; /* it names itself or a stranger: ask everyone again */
    }
    if (r->len >= 8 && !memcmp(r->str, "TRYAGAIN", 8)) return AT_PAUSE; /* recovering */
    if (r->len >= 11 && !memcmp(r->str, "CLUSTERDOWN", 11)) return AT_LOST_LEADER;
    *status = PIER_E_SERVER; /* NOAUTH, syntax: retrying cannot help */
    return AT_DONE;
}

/* The fast path failed: wait at the leader for the entry's commit. */
static int sync_entry(pier_cluster *c, pcl_conn *L, const char *cid, const char *seq,
                      uint64_t index) {
    char idx[24];
    snprintf(idx, sizeof idx, "%llu", (unsigned long long)index);
    const char *argv[] = {"PIER.SYNC", cid, seq, idx};
    size_t lens[] = {9, strlen(cid), strlen(seq), strlen(idx)};
    if (conn_prepare(c, L, 4, argv, lens) == PIER_OK) round_run(c, &L, 1);
    if (L->state == K_DONE && L->reply.type == RR_STATUS) {
        c->st.slow++;
        return AT_DONE;
    }
    if (L->state == K_DONE)
        pier_fail(PIER_E_SERVER, "%s:%d: PIER.SYNC: %.*s", L->host, L->port,
                  (int)(L->reply.len > 150 ? 150 : L->reply.len), L->reply.str);
    save_why(c);
    /* LOST (a new leader dropped the entry), CLUSTERDOWN, or the leader is
     * gone: find the leader and send the same request again */
    return AT_LOST_LEADER;
}

/* Records to every node but the leader, at the term believed current. */
static int fan_records(pier_cluster *c, const pcl_op *op, const char *cid, const char *seq,
                       pcl_conn **ks) {
    char term[24];
    snprintf(term, sizeof term, "%llu", (unsigned long long)c->term);
    const char *argv[7] = {"PIER.RECORD", term, cid, seq};
    size_t lens[7] = {11, strlen(term), strlen(cid), strlen(seq)};
    for (int i = 0; i < op->argc; i++) {
        argv[4 + i] = op->argv[i];
        lens[4 + i] = op->lens[i];
    }
    int m = 0;
    for (int i = 0; i < c->n; i++) {
        if (i == c->leader) continue;
        ks[m] = &c->node[i];
        conn_prepare(c, ks[m++], 4 + op->argc, argv, lens);
    }
    return m;
}

/* One try of request seq: EXEC at the leader and, for a write, RECORDs at
 * the others in the same round; then SYNC if the fast path failed. */
static int attempt(pier_cluster *c, const pcl_op *op, uint64_t seqn, int *status,
                   resp_reply *out) {
    char cid[24], seq[24];
    snprintf(cid, sizeof cid, "%llu", (unsigned long long)c->cid);
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)seqn);
    const char *argv[6] = {"PIER.EXEC", cid, seq};
    size_t lens[6] = {9, strlen(cid), strlen(seq)};
    for (int i = 0; i < op->argc; i++) {
        argv[3 + i] = op->argv[i];
        lens[3 + i] = op->lens[i];
    }
    pcl_conn *ks[PCL_MAX_NODES + 1], *L = &c->node[c->leader];
    /* no records for a leader known dead: a witness would keep them */
    if (conn_prepare(c, L, 3 + op->argc, argv, lens)) {
        save_why(c);
        return AT_LOST_LEADER;
    }
    uint64_t rterm = c->term;
    ks[0] = L;
    int m = 1 + (op->write ? fan_records(c, op, cid, seq, ks + 1) : 0);
    round_run(c, ks, m);
    exec_reply x = {0};
    if (L->state == K_DONE && L->reply.type == RR_ERROR) return leader_error(c, L, status);
    if (L->state != K_DONE || parse_exec(c, L, &x, out)) {
        conn_drop(L);
        save_why(c);
        return AT_LOST_LEADER;
    }
    if (x.term > c->term) c->term = x.term;
    *status = PIER_OK;
    if (!op->write) return AT_DONE;
    if (x.synced) {
        if (x.index) c->st.slow++; /* the leader synced it (a conflict) */
        else c->st.fast++;         /* nothing to sync (a duplicate, a no-op) */
        return AT_DONE;
    }
    int accepts = 0;
    for (int i = 1; i < m; i++) accepts += ks[i]->state == K_DONE && ks[i]->reply.type == RR_STATUS;
    if (x.term == rterm && accepts >= super_quorum(c->n)) {
        c->st.fast++;
        return AT_DONE;
    }
    return sync_entry(c, L, cid, seq, x.index);
}

static void pause_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* Run op until it completes or the deadline passes; *out is the command's
 * reply (valid until the next call on c). */
static int strong(pier_cluster *c, const pcl_op *op, resp_reply *out) {
    if (!c) return pier_fail(PIER_E_INVALID, "NULL argument");
    uint64_t seq = ++c->seq, end = pn_now_ns() + c->deadline_ns;
    c->why[0] = 0;
    for (int sent = 0;;) {
        int at = AT_PAUSE, status = PIER_OK;
        if (c->leader >= 0 || discover(c, NULL) == PIER_OK) {
            if (sent++) c->st.retries++;
            at = attempt(c, op, seq, &status, out);
        } else {
            save_why(c);
        }
        if (at == AT_DONE) {
            if (status == PIER_OK) pier_clear_error();
            return status;
        }
        if (at == AT_LOST_LEADER) set_leader(c, -1);
        if (pn_now_ns() >= end)
            return pier_fail(PIER_E_TIMEOUT, "not completed within %llu ms: %s",
                             (unsigned long long)(c->deadline_ns / 1000000), c->why);
        if (at != AT_RETRY) pause_ns(PCL_PAUSE_NS); /* an election takes a while */
    }
}

/* The command's own error reply (INCR of a string). */
static int command_error(const resp_reply *r) {
    return pier_fail(PIER_E_SERVER, "%.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
}

static int copy_value(const resp_reply *r, const char *key, char **val, size_t *len) {
    if (r->type == RR_ERROR) return command_error(r);
    if (r->type == RR_NIL) return pier_fail(PIER_E_NOT_FOUND, "no key '%.100s'", key);
    if (r->type != RR_BULK) return pier_fail(PIER_E_WRONG_TYPE, "GET did not reply a string");
    char *v = malloc(r->len + 1);
    if (!v) return pier_fail(PIER_E_NOMEM, "no memory for a %zu-byte value", r->len);
    memcpy(v, r->str, r->len);
    v[r->len] = 0;
    *val = v;
    *len = r->len;
    return PIER_OK;
}

static int expect_ok(const resp_reply *r) {
    if (r->type == RR_ERROR) return command_error(r);
    return r->type == RR_STATUS ? PIER_OK : pier_fail(PIER_E_WRONG_TYPE, "SET reply not +OK");
}

static int expect_int(const resp_reply *r, const char *name, long long *out) {
    if (r->type == RR_ERROR) return command_error(r);
    if (r->type != RR_INT) return pier_fail(PIER_E_WRONG_TYPE, "%s did not reply an integer", name);
    if (out) *out = r->integer;
    return PIER_OK;
}

int pier_cluster_set(pier_cluster *c, const char *key, const void *val, size_t len) {
    if (!key || (!val && len)) return pier_fail(PIER_E_INVALID, "NULL argument");
    pcl_op op = {3, 1, {"SET", key, val ? val : ""}, {3, strlen(key), len}};
    resp_reply r;
    int rc = strong(c, &op, &r);
    return rc ? rc : expect_ok(&r);
}

int pier_cluster_get(pier_cluster *c, const char *key, char **val, size_t *len) {
    if (!key || !val || !len) return pier_fail(PIER_E_INVALID, "NULL argument");
    pcl_op op = {2, 0, {"GET", key}, {3, strlen(key)}};
    resp_reply r;
    int rc = strong(c, &op, &r);
    return rc ? rc : copy_value(&r, key, val, len);
}

int pier_cluster_incr(pier_cluster *c, const char *key, long long *result) {
    if (!key) return pier_fail(PIER_E_INVALID, "NULL argument");
    pcl_op op = {2, 1, {"INCR", key}, {4, strlen(key)}};
    resp_reply r;
    int rc = strong(c, &op, &r);
    return rc ? rc : expect_int(&r, "INCR", result);
}

int pier_cluster_del(pier_cluster *c, const char *key, long long *deleted) {
    if (!key) return pier_fail(PIER_E_INVALID, "NULL argument");
    pcl_op op = {2, 1, {"DEL", key}, {3, strlen(key)}};
    resp_reply r;
    int rc = strong(c, &op, &r);
    return rc ? rc : expect_int(&r, "DEL", deleted);
}

/* ---- weak ops: the home node's session connection ---- */

static int weak_call(pier_cluster *c, int argc, const char *const *argv, const size_t *lens,
                     resp_reply *out) {
    pcl_conn *k = &c->weak;
    int rc = conn_prepare(c, k, argc, argv, lens);
    if (rc) return rc;
    round_run(c, &k, 1);
    if (k->state != K_DONE) return k->status;
    *out = k->reply;
    pier_clear_error();
    return PIER_OK;
}

int pier_cluster_weak_set(pier_cluster *c, const char *key, const void *val, size_t len) {
    if (!c || !key || (!val && len)) return pier_fail(PIER_E_INVALID, "NULL argument");
    const char *argv[] = {"SET", key, val ? val : ""};
    size_t lens[] = {3, strlen(key), len};
    resp_reply r;
    int rc = weak_call(c, 3, argv, lens, &r);
    return rc ? rc : expect_ok(&r);
}

int pier_cluster_weak_get(pier_cluster *c, const char *key, char **val, size_t *len) {
    if (!c || !key || !val || !len) return pier_fail(PIER_E_INVALID, "NULL argument");
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, strlen(key)};
    resp_reply r;
    int rc = weak_call(c, 2, argv, lens, &r);
    return rc ? rc : copy_value(&r, key, val, len);
}

/* ---- setup ---- */

static void conn_init(pcl_conn *k, const char *host, int port, int weak) {
    snprintf(k->host, sizeof k->host, "%s", host);
    k->port = port;
    k->weak = weak;
    k->fd = -1;
}

static int parse_nodes(pier_cluster *c, const char *nodes) {
    for (const char *p = nodes; *p;) {
        size_t n = strcspn(p, ", ");
        if (n > 0) {
            char item[300], host[256];
            int port;
            if (c->n == PCL_MAX_NODES) return pier_fail(PIER_E_INVALID, "more than 16 nodes");
            if (n >= sizeof item) return pier_fail(PIER_E_INVALID, "node address too long");
            memcpy(item, p, n);
            item[n] = 0;
            int rc = pn_split_hostport(item, host, sizeof host, &port);
            if (rc) return rc;
            conn_init(&c->node[c->n++], host, port, 0);
        }
        p += n + (p[n] != 0);
    }
    return c->n ? PIER_OK : pier_fail(PIER_E_INVALID, "no node in '%.100s'", nodes);
}

/* 64 random bits, never 0: the server's exactly-once table is per client
 * id, so two clients must not share one. */
static int random_cid(uint64_t *cid) {
    do {
        if (getrandom(cid, sizeof *cid, 0) != (ssize_t)sizeof *cid)
            return pier_fail(PIER_E_IO, "getrandom failed: %s", strerror(errno));
    } while (*cid == 0);
    return PIER_OK;
}

/* A node refused the password (AUTH failed) or wants one (NOAUTH). */
static int auth_refused(const pier_cluster *c) {
    for (int i = 0; i < c->n; i++) {
        const pcl_conn *k = &c->node[i];
        if (k->status == PIER_E_AUTH) return 1;
        if (k->state == K_DONE && k->reply.type == RR_ERROR && k->reply.len >= 6 &&
            !memcmp(k->reply.str, "NOAUTH", 6))
            return 1;
    }
    return 0;
}

int pier_cluster_connect(pier_cluster **out, const char *nodes, int home, const char *password) {
    if (!out || !nodes) return pier_fail(PIER_E_INVALID, "NULL argument");
    *out = NULL;
    pier_cluster *c = calloc(1, sizeof *c);
    if (!c) return pier_fail(PIER_E_NOMEM, "no memory for a cluster client");
    c->leader = c->last_leader = -1;
    c->req_ns = 1000000000ull;
    c->deadline_ns = 5000000000ull;
    int rc = parse_nodes(c, nodes);
    if (!rc && (home < 0 || home >= c->n))
        rc = pier_fail(PIER_E_INVALID, "home %d is not a node index (0..%d)", home, c->n - 1);
    if (!rc && password && !(c->password = strdup(password)))
        rc = pier_fail(PIER_E_NOMEM, "no memory");
    if (!rc) rc = random_cid(&c->cid);
    if (rc) {
        pier_cluster_close(c);
        return rc;
    }
    c->home = home;
    conn_init(&c->weak, c->node[home].host, c->node[home].port, 1);
    int answered = 0;
    /* a cluster still electing is fine (the first op waits for it); no
     * node answering at all is not */
    if (discover(c, &answered) != PIER_OK && answered == 0) {
        rc = auth_refused(c) ? PIER_E_AUTH : PIER_E_CONNECT;
        pier_fail(rc, "no node of '%.100s' answered INFO cluster%s", nodes,
                  rc == PIER_E_AUTH ? ": authentication failed" : "");
        pier_cluster_close(c);
        return rc;
    }
    *out = c;
    pier_clear_error();
    return PIER_OK;
}

int pier_cluster_set_timeouts(pier_cluster *c, unsigned request_ms, unsigned deadline_ms) {
    if (!c) return pier_fail(PIER_E_INVALID, "NULL argument");
    if (request_ms) c->req_ns = request_ms * 1000000ull;
    if (deadline_ms) c->deadline_ns = deadline_ms * 1000000ull;
    return PIER_OK;
}

void pier_cluster_stats_get(pier_cluster *c, pier_cluster_stats *st) {
    if (c && st) *st = c->st;
}

int pier_cluster_leader(pier_cluster *c) { return c ? c->leader : -1; }

static void conn_free(pcl_conn *k) {
    conn_drop(k);
    free(k->rbuf);
    free(k->req);
}

void pier_cluster_close(pier_cluster *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) conn_free(&c->node[i]);
    conn_free(&c->weak);
    free(c->password);
    free(c->res);
    free(c);
}
