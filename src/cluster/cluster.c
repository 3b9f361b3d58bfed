/* cluster.c - cluster mode's lifecycle: the membership from the config,
 * the AOF replay of the log, the cluster thread and its bus, and what
 * loop threads may ask (local reads, INFO). */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/hash.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "../persist/persist.h"
#include "cluster.h"
#include "curp.h"
#include "internal.h"

#define TICK_MS 10

int cluster_configured(const pier_config *cfg) { return cfg->cluster_nodes[0] != 0; }

/* "id@host:port[@busport]" */
static int parse_node(const char *s, size_t n, cl_node *out) {
    char buf[160];
    if (n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *at = strchr(buf, '@');
    if (!at) return -1;
    *at = 0;
    char *end;
    long id = strtol(buf, &end, 10);
    if (*end || id < 1 || id > 255) return -1;
    char *host = at + 1;
    char *busp = strchr(host, '@');
    if (busp) *busp++ = 0;
    char *colon = strrchr(host, ':');
    if (!colon) return -1;
    *colon = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535 || strlen(host) >= sizeof out->host || !*host) return -1;
    long bport = port + 10000;
    if (busp) {
        bport = strtol(busp, &end, 10);
        if (*end) return -1;
    }
    if (bport < 1 || bport > 65535) return -1;
    out->id = (int)id;
    snprintf(out->host, sizeof out->host, "%s", host);
    out->port = (int)port;
    out->bus_port = (int)bport;
    return 0;
}

static int parse_nodes(cluster *cl, const char *list, char *err, size_t errlen) {
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        size_t n = strcspn(p, ", ");
        if (cl->nnodes == CL_MAX_NODES) {
            snprintf(err, errlen, "cluster-nodes: at most %d nodes", CL_MAX_NODES);
            return -1;
        }
        cl_node *node = &cl->nodes[cl->nnodes];
        if (parse_node(p, n, node) < 0) {
            snprintf(err, errlen, "cluster-nodes: bad member '%.*s' (want id@host:port[@busport])",
                     (int)n, p);
            return -1;
        }
        for (int i = 0; i < cl->nnodes; i++)
            if (cl->nodes[i].id == node->id) {
                snprintf(err, errlen, "cluster-nodes: node id %d listed twice", node->id);
                return -1;
            }
        cl->nnodes++;
        p += n;
    }
    if (cl->nnodes != 1 && cl->nnodes != 3 && cl->nnodes != 5 && cl->nnodes != 7) {
        snprintf(err, errlen, "cluster-nodes: %d members; use 3 or 5 (1 or 7 also work)", cl->nnodes);
        return -1;
    }
    return 0;
}

static int host_is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return strcasecmp(host, "localhost") == 0;
}

/* The bus secret (docs/CONSISTENCY.md, "The cluster bus"): required unless
 * every member is on loopback, where its absence is only warned about. */
static int load_secret(cluster *cl, char *err, size_t errlen) {
    if (config_load_cluster_key(cl->cfg, err, errlen) < 0) return -1;
    if (cl->cfg->cluster_key_len) return 0;
    for (int i = 0; i < cl->nnodes; i++)
        if (!host_is_loopback(cl->nodes[i].host)) {
            snprintf(err, errlen, "cluster mode needs cluster-secret-file (or cluster-secret): "
                                  "without a secret anyone who reaches a bus port (node %d at %s) "
                                  "can join the cluster", cl->nodes[i].id, cl->nodes[i].host);
            return -1;
        }
    log_warn("cluster: no cluster-secret: any local process can join the cluster bus; "
             "set cluster-secret-file");
    return 0;
}

static uint64_t membership_hash(const cluster *cl) {
    char buf[CL_MAX_NODES * 96];
    size_t len = 0;
    for (int i = 0; i < cl->nnodes; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%d@%s:%d@%d;", cl->nodes[i].id,
                                cl->nodes[i].host, cl->nodes[i].port, cl->nodes[i].bus_port);
    return hash_bytes(buf, len, 0x636c7573746572ULL);
}

cluster *cluster_create(pier_config *cfg, keyspace *ks, cmd_env *env, struct persist *ps,
                        const cluster_host *host, void *host_arg, char *err, size_t errlen) {
    err[0] = 0;
    if (!cluster_configured(cfg)) return NULL;
    cluster *cl = xcalloc(1, sizeof *cl);
    cl->cfg = cfg;
    cl->ks = ks;
    cl->loop_env = env;
    cl->ps = ps;
    cl->host = host;
    cl->host_arg = host_arg;
    cl->self_id = cfg->cluster_node_id;
    if (parse_nodes(cl, cfg->cluster_nodes, err, errlen) < 0 || load_secret(cl, err, errlen) < 0)
        goto fail;
    cl->self_idx = cl_node_idx(cl, cl->self_id);
    if (cl->self_idx < 0) {
        snprintf(err, errlen, "cluster-node-id %d is not in cluster-nodes", cl->self_id);
        goto fail;
    }
    if (cl->nodes[cl->self_idx].port != cfg->port) {
        snprintf(err, errlen, "cluster-nodes gives node %d port %d, but port is %d", cl->self_id,
                 cl->nodes[cl->self_idx].port, cfg->port);
        goto fail;
    }
    cl->f = (cl->nnodes - 1) / 2;
    for (int i = 0; i < cl->nnodes; i++) cl->peers[i].id = cl->nodes[i].id;
    cl->voted_for = -1;
    cl->first_index = 1;
    pthread_mutex_init(&cl->log_lock, NULL);
    pthread_mutex_init(&cl->submit_lock, NULL);
    cl->boot_nonce = (uint32_t)(hash_random_seed() & 0xffffff);
    atomic_init(&cl->next_client, 1);
    cl_curp_init(cl);
    cl->catchup = catchup_create();
    cl->exec_out = xmalloc(sizeof *cl->exec_out);
    cl->apply_out = xmalloc(sizeof *cl->apply_out);
    reply_init(cl->exec_out);
    reply_init(cl->apply_out);
    ev_view_init(&cl->view);
    cl->exec_sess.authenticated = 1;
    cl->exec_sess.flags = SESS_NOBLOCK;
    cl->exec_sess.proto = 2;
    cl->apply_sess.authenticated = 1;
    cl->apply_sess.flags = SESS_REPLAY | SESS_NOBLOCK;
    cl->apply_sess.proto = 2;
    /* Appendonly is how a node keeps its log. */
    atomic_store(&cfg->appendonly, 1);
    persist_set_cluster_mode(ps, cluster_replay, cl);
    return cl;
fail:
    free(cl);
    return NULL;
}

/* ---- AOF replay (start-up, single-threaded) ---- */

static int parse_num(const cmd_arg *a, uint64_t *out) {
    unsigned long long v;
    if (!util_parse_ull(a->p, a->n, &v)) return -1;
    *out = v;
    return 0;
}

static int is_name(const cmd_arg *a, const char *name) {
    return a->n == strlen(name) && strncasecmp(a->p, name, a->n) == 0;
}

static int replay_entry(cluster *cl, int argc, const cmd_arg *argv) {
    uint64_t index, term;
    if (argc < 7 || parse_num(&argv[1], &index) || parse_num(&argv[2], &term)) return -1;
    uint64_t last = atomic_load(&cl->last_index);
    if (index <= last) {
        /* a record the AOF holds twice cannot happen; a TRUNCATE before
         * it would have lowered last */
        return -1;
    }
    if (index != last + 1) return -1;
    entry *e = entry_from_argv(index, term, argc, argv);
    cl_log_loaded(cl, e, aof_replay_pos(persist_aof(cl->ps)));
    cl_replay_entry_loaded(cl, term, argc, argv);
    return 1;
}

int cluster_is_log_record(const char *name, size_t len) {
    static const char *const records[] = {"PIER.ENTRY",    "PIER.VOTE",    "PIER.COMMIT",
                                          "PIER.TRUNCATE", "PIER.WITNESS", "PIER.WGC"};
    cmd_arg a = {name, len};
    for (size_t i = 0; i < sizeof records / sizeof records[0]; i++)
        if (is_name(&a, records[i])) return 1;
    return 0;
}

int cluster_replay(void *arg, int argc, const cmd_arg *argv) {
    cluster *cl = arg;
    if (argc < 1 || argv[0].n < 5 || strncasecmp(argv[0].p, "PIER.", 5) != 0) {
        /* Plain commands in a cluster node's AOF: written before it
         * joined a cluster (its data predates the log). */
        return 0;
    }
    uint64_t a = 0, b = 0;
    if (is_name(&argv[0], "PIER.ENTRY")) return replay_entry(cl, argc, argv);
    if (is_name(&argv[0], "PIER.VOTE") && argc == 3 && !parse_num(&argv[1], &a) &&
        !parse_num(&argv[2], &b)) {
        cl->term = a;
        cl->voted_for = b ? (int)b : -1;
        return 1;
    }
    if (is_name(&argv[0], "PIER.COMMIT") && argc == 2 && !parse_num(&argv[1], &a)) {
        if (a > atomic_load(&cl->commit)) atomic_store(&cl->commit, a);
        cl_replay_commit(cl);
        return 1;
    }
    if (is_name(&argv[0], "PIER.TRUNCATE") && argc == 2 && !parse_num(&argv[1], &a)) {
        if (a > 0) {
            catchup_note_truncate(cl->catchup, a, aof_replay_pos(persist_aof(cl->ps)));
            cl_log_drop_tail_locked(cl, a);
            cl_log_truncated(cl);
        }
        return 1;
    }
    if (is_name(&argv[0], "PIER.WITNESS")) return cl_replay_witness(cl, argc, argv);
    if (is_name(&argv[0], "PIER.WGC")) return cl_replay_witness_gc(cl, argc, argv);
    return -1;
}

/* ---- the cluster thread ---- */

/* ---- the bus: sending, and the dispatch of what arrives ---- */

int cl_send(cluster *cl, int to, int type, wbuf *w) {
    int rc = bus_send(cl->bus, to, (uint8_t)type, w->p, w->len);
    wb_free(w);
    return rc;
}

void cl_send_all(cluster *cl, int type, wbuf *w) {
    for (int i = 0; i < cl->nnodes; i++)
        if (i != cl->self_idx) bus_send(cl->bus, cl->nodes[i].id, (uint8_t)type, w->p, w->len);
    wb_free(w);
}

/* The witness messages (and PING), the rest of dispatch. */
static int dispatch_witness(cluster *cl, int from, uint8_t type, const uint8_t *p, size_t n) {
    switch (type) {
    case MSG_RECORD_RESP: {
        msg_record_resp m;
        if (msg_record_resp_decode(p, n, &m) < 0) return -1;
        cl_on_record_resp(cl, from, &m);
        return 0;
    }
    case MSG_COLLECT: {
        msg_collect m;
        if (msg_collect_decode(p, n, &m) < 0) return -1;
        cl_on_collect(cl, from, &m);
        return 0;
    }
    case MSG_COLLECT_RESP: {
        msg_collect_resp m;
        if (msg_collect_resp_decode(p, n, &m) < 0) return -1;
        cl_on_collect_resp(cl, from, &m);
        return 0;
    }
    case MSG_STALE: {
        msg_record m;
        if (msg_record_decode(p, n, &m) < 0) return -1;
        cl_on_stale(cl, from, &m);
        return 0;
    }
    case MSG_GC: {
        msg_gc m;
        if (msg_gc_decode(p, n, &m) < 0) return -1;
        cl_on_gc(cl, from, &m);
        return 0;
    }
    case MSG_PING:
        return msg_ping_decode(p, n);
    default:
        return -1;
    }
}

/* Decode a message and hand it to its handler (raft.c, curp*.c). Returns
 * 0, or -1 when the payload is malformed or the type unknown. */
static int dispatch(cluster *cl, int from, uint8_t type, const uint8_t *p, size_t n) {
    switch (type) {
    case MSG_APPEND: {
        msg_append m;
        if (msg_append_decode(p, n, &m) < 0) return -1;
        cl_on_append(cl, from, &m);
        return 0;
    }
    case MSG_APPEND_RESP: {
        msg_append_resp m;
        if (msg_append_resp_decode(p, n, &m) < 0) return -1;
        cl_on_append_resp(cl, from, &m);
        return 0;
    }
    case MSG_VOTE_REQ:
    case MSG_PREVOTE_REQ: {
        msg_vote_req m;
        if (msg_vote_req_decode(p, n, &m) < 0) return -1;
        if (type == MSG_VOTE_REQ) cl_on_vote_req(cl, from, &m);
        else cl_on_prevote_req(cl, from, &m);
        return 0;
    }
    case MSG_VOTE_RESP:
    case MSG_PREVOTE_RESP: {
        msg_vote_resp m;
        if (msg_vote_resp_decode(p, n, &m) < 0) return -1;
        if (type == MSG_VOTE_RESP) cl_on_vote_resp(cl, from, &m);
        else cl_on_prevote_resp(cl, from, &m);
        return 0;
    }
    case MSG_FORWARD:
    case MSG_RECORD: {
        msg_request m;
        uint64_t keys[MSG_MAX_KEYS];
        if (msg_request_decode(p, n, &m, keys) < 0) return -1;
        if (type == MSG_FORWARD) cl_on_forward(cl, from, &m);
        else cl_on_record(cl, from, &m);
        return 0;
    }
    case MSG_FORWARD_RESP: {
        msg_forward_resp m;
        if (msg_forward_resp_decode(p, n, &m) < 0) return -1;
        cl_on_forward_resp(cl, from, &m);
        return 0;
    }
    default:
        return dispatch_witness(cl, from, type, p, n);
    }
}

static void on_recv(void *arg, int from, uint8_t type, const uint8_t *p, size_t n) {
    cluster *cl = arg;
    if (dispatch(cl, from, type, p, n) == 0) return;
    static log_ratelimit bad_rl = LOG_RATELIMIT_PEER;
    const char *name = msg_name(type);
    if (name)
        log_warn_ratelimited(&bad_rl, "cluster: malformed %s (%zu bytes) from node %d", name, n,
                             from);
    else
        log_warn_ratelimited(&bad_rl, "cluster: unknown message type %u from node %d", type, from);
}

static void on_link(void *arg, int peer, int up) {
    cluster *cl = arg;
    atomic_fetch_add(&cl->peers_connected, up ? 1 : -1);
    static log_ratelimit link_rl = LOG_RATELIMIT_PEER;
    log_verbose_ratelimited(&link_rl, "cluster: link to node %d %s", peer, up ? "up" : "down");
    int idx = cl_node_idx(cl, peer);
    if (!up && peer == atomic_load(&cl->leader_id)) cl_on_leader_link_down(cl);
    if (up && idx >= 0 && atomic_load(&cl->role) == ROLE_LEADER) {
        /* a peer that restarted: probe from the end, the reply's hint
         * walks back */
        cl->peers[idx].next_index = atomic_load(&cl->last_index) + 1;
    }
}

static long on_tick(ev_loop *loop, void *arg) {
    cluster *cl = arg;
    (void)loop;
    if (atomic_load(&cl->stopping)) return -1;
    cl_raft_tick(cl);
    cl_curp_tick(cl);
    if (++cl->ticks % 100 == 0) cl_log_trim(cl); /* once a second */
    return TICK_MS;
}

static void on_wake(ev_loop *loop, void *arg) {
    (void)loop;
    cl_drain_submissions(arg);
}

static void before_sleep(ev_loop *loop, void *arg) {
    cluster *cl = arg;
    (void)loop;
    if (atomic_load(&cl->stopping)) {
        ev_stop(cl->loop);
        return;
    }
    cl_drain_submissions(cl);
    cl_raft_before_sleep(cl);
    bus_before_sleep(cl->bus);
}

/* The AOF reader has entries for a follower (reader thread). */
static void catchup_ready(void *arg) {
    cluster *cl = arg;
    ev_wake(cl->loop);
}

static void *cluster_main(void *arg) {
    cluster *cl = arg;
    ev_run(cl->loop);
    return NULL;
}

static int start_bus(cluster *cl, char *err, size_t errlen) {
    bus_config bc = {0};
    const cl_node *self = &cl->nodes[cl->self_idx];
    bc.self_id = cl->self_id;
    bc.bind_host = self->host;
    bc.port = self->bus_port;
    for (int i = 0; i < cl->nnodes; i++) {
        if (i == cl->self_idx) continue;
        bus_peer_addr *pa = &bc.peers[bc.npeers++];
        pa->id = cl->nodes[i].id;
        snprintf(pa->host, sizeof pa->host, "%s", cl->nodes[i].host);
        pa->port = cl->nodes[i].bus_port;
    }
    bc.gather_us = (long)CFG_GET(cl->cfg->cluster_batch_us);
    bc.max_frame = 64u << 20;
    bc.max_outbuf = 512u << 20;
    bc.idle_timeout_ms = (long)CFG_GET(cl->cfg->cluster_election_timeout_ms) * 2;
    bc.cluster_hash = membership_hash(cl);
    bc.key = cl->cfg->cluster_key;
    bc.key_len = cl->cfg->cluster_key_len;
    bc.on_recv = on_recv;
    bc.on_link = on_link;
    bc.arg = cl;
    cl->bus = bus_create(cl->loop, &bc, err, errlen);
    return cl->bus ? 0 : -1;
}

/* A loop thread wrote outside the log: that would make this node differ
 * from the others, so it is reported loudly (it is a bug). */
static uint64_t stray_write(void *arg, cmd_arg name, int argc, const cmd_arg *argv) {
    (void)arg;
    (void)argc;
    (void)argv;
    log_warn("cluster: BUG: '%.*s' wrote outside the replicated log", (int)name.n, name.p);
    return 0;
}

/* The cluster thread and the AOF reader. Created with SIGINT and SIGTERM
 * blocked (threads inherit the mask; the server blocks them in its own
 * threads only later): a stop signal must reach the main thread's
 * sigwait, not end the process by its default action in one of these. */
static int start_threads(cluster *cl, char *err, size_t errlen) {
    sigset_t stop, old;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    int rc = -1;
    if (catchup_start(cl->catchup, cl->aof, catchup_ready, cl) < 0)
        snprintf(err, errlen, "cluster: cannot start the AOF reader thread");
    else if (pthread_create(&cl->tid, NULL, cluster_main, cl) != 0)
        snprintf(err, errlen, "cluster: cannot start the thread");
    else {
        cl->started = 1;
        rc = 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int cluster_start(cluster *cl, char *err, size_t errlen) {
    cl->aof = persist_aof(cl->ps);
    if (!cl->aof) {
        snprintf(err, errlen, "cluster mode needs the AOF");
        return -1;
    }
    /* Hooks: the cluster thread's executions build entries; the loop
     * threads execute no writes; expiry goes through the log. */
    cl->exec_env = *cl->loop_env;
    cl->exec_env.propagate = cl_collect_record;
    cl->exec_env.propagate_end = cl_finish_entry;
    cl->exec_env.propagate_arg = cl;
    cl->apply_env = *cl->loop_env;
    cl->apply_env.propagate = NULL;
    cl->apply_env.propagate_end = NULL;
    cl->loop_env->propagate = stray_write;
    cl->loop_env->propagate_end = NULL;
    cl->loop_env->propagate_arg = cl;
    ks_set_expire_hook(cl->ks, cl_log_expired, cl);
    cl_set_keep_expired(cl, 1);
    /* Entries loaded from the AOF: apply the committed ones. */
    uint64_t last = atomic_load(&cl->last_index);
    if (atomic_load(&cl->commit) > last) atomic_store(&cl->commit, last);
    cl_apply_committed(cl);
    cl_witness_restored(cl);
    cl->commit_logged = atomic_load(&cl->commit);
    cl->synced_index = last;
    /* The AOF line before this one counts keys outside the log (none on
     * a node that was always a cluster member): this one says what the
     * node got from its log. */
    log_info("cluster: node %d of %d, term %llu: loaded %llu log entries from the AOF, "
             "%llu committed and applied (%zu keys)", cl->self_id, cl->nnodes,
             (unsigned long long)cl->term, (unsigned long long)last,
             (unsigned long long)atomic_load(&cl->commit), ks_count(cl->ks));

    cl->loop = ev_create(on_wake, cl);
    if (!cl->loop) {
        snprintf(err, errlen, "cluster: cannot create the event loop");
        return -1;
    }
    ev_set_before_sleep(cl->loop, before_sleep, cl);
    if (start_bus(cl, err, errlen) < 0) return -1;
    cl->boot_us = cl_now_us();
    long t = (long)CFG_GET(cl->cfg->cluster_election_timeout_ms);
    srand((unsigned)(clock_mono_us() ^ (cl->self_id * 7919)));
    /* A first election waits one timeout: the others may already have a
     * leader this node should follow. */
    cl->election_deadline_us = cl_now_us() + (t + rand() % (t > 0 ? t : 1)) * 1000;
    ev_timer_add(cl->loop, TICK_MS, on_tick, cl);
    return start_threads(cl, err, errlen);
}

void cluster_stop(cluster *cl) {
    if (!cl || !cl->started) return;
    atomic_store(&cl->stopping, 1);
    ev_wake(cl->loop);
    pthread_join(cl->tid, NULL);
    cl->started = 0;
}

void cluster_destroy(cluster *cl) {
    if (!cl) return;
    cluster_stop(cl);
    catchup_destroy(cl->catchup); /* before the loop its reader wakes */
    if (cl->bus) bus_destroy(cl->bus);
    if (cl->loop) ev_destroy(cl->loop);
    cl_curp_free(cl);
    uint64_t last = atomic_load(&cl->last_index);
    for (uint64_t i = cl->first_index; i <= last; i++) free(cl_entry_at(cl, i));
    for (size_t d = 0; d < LOG_DIR_MAX; d++) free(cl->dir[d]);
    reply_free(cl->exec_out);
    reply_free(cl->apply_out);
    free(cl->exec_out);
    free(cl->apply_out);
    ev_view_free(&cl->view);
    free(cl->append_ents);
    pthread_mutex_destroy(&cl->log_lock);
    pthread_mutex_destroy(&cl->submit_lock);
    free(cl);
}

/* ---- requests from the loop threads (the cluster thread routes them: curp.c) ---- */

void cluster_submit(cluster *cl, void *client, uint64_t slot, uint64_t cid, uint64_t seq,
                    int kind, int proto, int argc, const cmd_arg *argv) {
    cluster_submit_direct(cl, client, slot, cid, seq, kind, proto, 0, argc, argv);
}

void cluster_submit_direct(cluster *cl, void *client, uint64_t slot, uint64_t cid, uint64_t seq,
                           int kind, int proto, uint64_t aux, int argc, const cmd_arg *argv) {
    cl_req *r = xcalloc(1, sizeof *r);
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
    r->keys = xmalloc((size_t)(n ? n : 1) * sizeof *r->keys);
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

/* ---- what loop threads ask ---- */

uint64_t cluster_new_client_id(cluster *cl) {
    uint64_t n = atomic_fetch_add(&cl->next_client, 1);
    return ((uint64_t)cl->self_id << 56) | ((uint64_t)cl->boot_nonce << 32) | (n & 0xffffffffu);
}

int cluster_command_keys(const command *cmd, int argc, const cmd_arg *argv, uint64_t *keys,
                         int max) {
    if (cmd->flags & (CMD_KEYSPACE | CMD_ALLSHARDS)) return -1;
    cmd_keys pos;
    cmd_keys_init(&pos);
    int n = cmd_get_keys(cmd, argc, argv, &pos);
    if (n > max) n = -2;
    for (int k = 0; k < n; k++) {
        const cmd_arg *key = &argv[cmd_keys_at(&pos, k)];
        keys[k] = entry_key_hash(key->p, key->n);
    }
    cmd_keys_free(&pos);
    return n ? n : -1;
}

uint64_t cluster_visible_index(cluster *cl) {
    return atomic_load(&cl->role) == ROLE_LEADER ? atomic_load(&cl->commit)
                                                 : atomic_load(&cl->applied);
}

int cluster_local_read(cluster *cl, int strong, const uint64_t *keys, int nkeys) {
    int role = atomic_load(&cl->role);
    /* A follower's applied state is committed, unless it led before and
     * still holds speculative entries beyond the commit. */
    if (role != ROLE_LEADER)
        return !strong && atomic_load(&cl->executed) <= atomic_load(&cl->applied);
    if (!atomic_load(&cl->serving)) return 0;
    if (strong && cl->nnodes > 1 && atomic_load(&cl->lease_until_us) <= cl_now_us()) return 0;
    uint64_t commit = atomic_load(&cl->commit);
    if (nkeys < 0) return atomic_load(&cl->last_index) <= commit;
    for (int i = 0; i < nkeys; i++)
        if (atomic_load(&cl->unsynced[keys[i] & (UNSYNCED_SLOTS - 1)]) > commit) return 0;
    return 1;
}

static const char *role_name(int role) {
    return role == ROLE_LEADER ? "leader" : role == ROLE_CANDIDATE ? "candidate" : "follower";
}

void cluster_count_weak_read(cluster *cl) { atomic_fetch_add(&cl->n_weak_reads, 1); }

int cluster_bus_port(const cluster *cl) {
    return cl ? cl->nodes[cl->self_idx].bus_port : 0;
}

size_t cluster_info(cluster *cl, char *buf, size_t len) {
    if (!cl) return (size_t)snprintf(buf, len, "cluster_enabled:0\r\n");
    int n = snprintf(
        buf, len,
        "cluster_enabled:1\r\ncluster_node_id:%d\r\ncluster_role:%s\r\ncluster_leader_id:%d\r\n"
        "cluster_term:%llu\r\ncluster_last_index:%llu\r\ncluster_commit_index:%llu\r\n"
        "cluster_applied_index:%llu\r\ncluster_nodes:%d\r\ncluster_peers_connected:%d\r\n"
        "cluster_serving:%d\r\ncluster_fast_path:%llu\r\ncluster_slow_path:%llu\r\n"
        "cluster_leader_writes:%llu\r\ncluster_weak_reads:%llu\r\ncluster_weak_writes:%llu\r\n"
        "cluster_forwarded:%llu\r\ncluster_elections_won:%llu\r\ncluster_recovered_records:%llu\r\n"
        "cluster_stale_replayed:%llu\r\ncluster_log_bytes:%zu\r\ncluster_witness_records:%zu\r\n",
        cl->self_id, role_name(atomic_load(&cl->role)), atomic_load(&cl->leader_id),
        (unsigned long long)cl->term, (unsigned long long)atomic_load(&cl->last_index),
        (unsigned long long)atomic_load(&cl->commit), (unsigned long long)atomic_load(&cl->applied),
        cl->nnodes, atomic_load(&cl->peers_connected), atomic_load(&cl->serving),
        (unsigned long long)atomic_load(&cl->n_fast), (unsigned long long)atomic_load(&cl->n_slow),
        (unsigned long long)atomic_load(&cl->n_leader_writes),
        (unsigned long long)atomic_load(&cl->n_weak_reads),
        (unsigned long long)atomic_load(&cl->n_weak_writes),
        (unsigned long long)atomic_load(&cl->n_forwarded),
        (unsigned long long)atomic_load(&cl->n_elections),
        (unsigned long long)atomic_load(&cl->n_recovered),
        (unsigned long long)atomic_load(&cl->n_stale_replayed), cl->log_bytes,
        atomic_load(&cl->witness_records));
    return n < 0 ? 0 : (size_t)n >= len ? len - 1 : (size_t)n;
}
