/* cluster.c - pier-bench cluster
 *
 *   pier-bench cluster [--nodes h:p,...] [-c clients] [--threads n] [--pendings n]
 *                      [-n requests | --reqs n | --duration s] [--weak-ratio f]
 *                      [--writes f] [--weak-writes f] [-r keyspace] [--zipf s]
 *                      [--conflicts pct] [-d bytes] [--server-pids p,...]
 *                      [--no-consistency] [--direct] [--json | --csv] [--interval s] [-q]
 *
 * The hybrid-consistency benchmark of the origin system (CURP-HO), over
 * RESP. A client session is bound to one node, its "nearest replica"
 * (client i -> node i mod nodes), and holds two connections to it: one
 * after PIER.CONSISTENCY STRONG, one after PIER.CONSISTENCY WEAK. Each op
 * is weak with probability --weak-ratio, then a write (SET key value) with
 * probability --writes (strong) or --weak-writes (weak), else a read
 * (GET key), and goes down the matching connection.
 *
 * Keys are key:<12 digits> as in kv mode, key:000000000000 ..
 * key:<keyspace-1>, uniform or Zipf(s) by rank (rejection-inversion, no
 * table); --conflicts P sends P percent of ops to the hot key
 * key:999999999999, which no keyspace contains.
 *
 * Closed loop: each thread (own epoll loop, never a thread per client)
 * keeps --pendings ops in flight, issued round-robin over its clients and
 * pipelined on their connections (replies come in order); each reply
 * frees a slot for the next op. Latency is from issue to reply, per class
 * (strong, weak), in log-bucketed histograms. Error replies (-CLUSTERDOWN
 * ...) are counted apart and never as ops or latency samples.
 *
 * The fast-path share is sum(cluster_fast_path) / sum(fast + slow) over
 * the INFO cluster deltas of every node (before vs after the run); n/a
 * when the nodes have no such fields (a single node, redis-server).
 *
 * --direct: each client session is a pier_cluster of libpier (client/
 * cluster.c) with its home node as the nearest replica. Strong ops go
 * from the client itself to the leader (PIER.EXEC) and the witnesses
 * (PIER.RECORD) in one round trip, PIER.SYNC when the witnesses did not
 * all accept; weak ops go to the home node's weak session. That client is
 * blocking, so this mode runs one thread per session with one op in
 * flight (--threads and --pendings do not apply): a closed loop of
 * --clients ops in flight. The nodes do not count direct strong writes in
 * cluster_fast_path; the client's own counts are reported instead. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"
#include "pier.h"

#define CL_MAX_PIDS 64
#define CL_HOT_KEY 999999999999ULL

typedef bnode cl_node;

typedef struct cl_options {
    bench_common c;
    cl_node nodes[MAX_NODES];
    char nodes_str[MAX_NODES * 272], pids_str[CL_MAX_PIDS * 12];
    int node_count;
    int clients, threads, pendings;
    long long reqs;            /* per thread (--reqs); 0 with -n or --duration */
    long long requests;        /* -n: in all, shared out over the threads */
    double duration_s;
    double weak_ratio, writes, weak_writes;
    long long keyspace;
    double zipf_s;             /* 0 = uniform */
    double conflicts;          /* percent of ops on the hot key */
    int value_size;
    int server_pids[CL_MAX_PIDS];
    int npids;
    int no_consistency;
    int direct;                /* strong and weak ops through libpier's pier_cluster */
} cl_options;

/* Zipf over ranks 1..n with exponent s > 0: rejection-inversion sampling
 * (Hormann & Derflinger 1996), O(1) memory and expected O(1) time, so
 * any keyspace works. Read-only after init: shared by the threads. */
typedef struct zipf_gen {
    double n, s, h_x1, h_n, sv;
} zipf_gen;
static zipf_gen zipf;

static double zipf_helper1(double x) { /* log1p(x) / x */
    return fabs(x) > 1e-8 ? log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
}
static double zipf_helper2(double x) { /* expm1(x) / x */
    return fabs(x) > 1e-8 ? expm1(x) / x : 1 + x * 0.5 * (1 + x / 3 * (1 + 0.25 * x));
}
static double zipf_h(const zipf_gen *z, double x) { return exp(-z->s * log(x)); }
static double zipf_H(const zipf_gen *z, double x) { /* integral of h from 1 to x */
    double lx = log(x);
    return zipf_helper2((1 - z->s) * lx) * lx;
}
static double zipf_Hinv(const zipf_gen *z, double x) {
    double t = x * (1 - z->s);
    if (t < -1) t = -1;
    return exp(zipf_helper1(t) * x);
}

static void zipf_init(zipf_gen *z, long long n, double s) {
    z->n = (double)n;
    z->s = s;
    z->h_x1 = zipf_H(z, 1.5) - 1;
    z->h_n = zipf_H(z, z->n + 0.5);
    z->sv = 2 - zipf_Hinv(z, zipf_H(z, 2.5) - zipf_h(z, 2));
}

/* A rank 0..n-1, 0 the most popular. */
static long long zipf_sample(const zipf_gen *z, uint64_t *rng) {
    for (;;) {
        double u = z->h_n + unit_rand(rng) * (z->h_x1 - z->h_n);
        double x = zipf_Hinv(z, u);
        double k = floor(x + 0.5);
        if (k < 1) k = 1;
        else if (k > z->n) k = z->n;
        if (k - x <= z->sv || u >= zipf_H(z, k + 0.5) - zipf_h(z, k)) return (long long)k - 1;
    }
}

/* --- sessions, connections, threads --- */

typedef struct cl_pending {
    uint64_t t;     /* issue time */
    int write;
} cl_pending;

typedef struct cl_conn {
    int fd, weak, node;
    int out_armed;  /* EPOLLOUT registered */
    int dirty;      /* on the thread's flush list */
    char *wbuf;
    size_t wlen, woff, wcap;
    char *rbuf;
    size_t rlen, rcap;
    cl_pending *q;  /* ops in flight, oldest first (a ring) */
    unsigned qhead, qcount, qcap;
} cl_conn;

typedef struct cl_client {
    cl_conn c[2];   /* [0] strong, [1] weak */
    uint64_t rng;
} cl_client;

typedef struct cl_class {
    histogram hist; /* successful ops only */
    uint64_t reads, writes, errors, clusterdown;
} cl_class;

typedef struct cl_worker {
    pthread_t tid;
    const cl_options *o;
    cl_client *clients;
    int nclients, next;
    int epfd;
    long long left;            /* ops still to issue (when counted) */
    bool counted;              /* -n or --reqs, not --duration */
    int inflight;
    cl_class cls[2];
    ival iv[2];                /* --interval, per class */
    cl_conn **dirty;
    int ndirty;
    _Atomic uint64_t done;     /* replies (read by the progress line) */
    _Atomic int failed;
    char first_err[160];
    pier_cluster *pc;          /* --direct: this session's client */
} cl_worker;

static _Atomic int cl_stop;    /* --duration elapsed, or a thread failed */

static void cl_parse_pids(cl_options *o, const char *list) {
    const char *p = list;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1 << 30) die("--server-pids takes pid,pid,...");
        if (o->npids == CL_MAX_PIDS) die("at most 64 server pids");
        o->server_pids[o->npids++] = (int)v;
        p = end;
        if (*p == ',') p++;
    }
}

static void cl_usage(void) {
    printf("usage: pier-bench cluster [options]\n"
           "Strong and weak ops of client sessions bound to their nearest node.\n"
           "  --nodes h:p,...     nodes; client i binds to node i mod count\n"
           "                      (127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003)\n"
           "  -c, --clients n     client sessions, 2 connections each (6)\n"
           "  --threads n         event-loop threads; client i runs on thread i mod n (2)\n"
           "  --pendings n        ops in flight per thread, over its clients (10)\n"
           "  -n, --requests n    ops in all, shared out over the threads\n"
           "  --reqs n            ops per thread (10000; per session with --direct)\n"
           "  --duration s        run for s seconds instead\n"
           "  --weak-ratio f      fraction of ops that are weak, 0..1 (0.5)\n"
           "  --writes f          fraction of strong ops that are SETs (0.5)\n"
           "  --weak-writes f     fraction of weak ops that are SETs (0.5)\n"
           "  -r, --keyspace n    keys key:000000000000..n-1 (10000)\n"
           "  --zipf s            Zipf exponent over the keyspace, 0 = uniform (0)\n"
           "  --conflicts pct     percent of ops on the hot key key:999999999999 (0)\n"
           "  -d, --size bytes    SET value bytes (100; --value-size too; units as the\n"
           "                      server's: 1kb = 1024)\n"
           "  --server-pids p,... report the servers' total CPU microseconds per op\n"
           "                      (--server-pid too)\n"
           "  --no-consistency    skip PIER.CONSISTENCY (servers without it, e.g. redis)\n"
           "  --direct            strong ops through libpier's CURP client (PIER.EXEC to\n"
           "                      the leader + PIER.RECORD to the witnesses, 1 RTT when\n"
           "                      they accept), weak ops on its home-node session; one\n"
           "                      thread per client session, 1 op in flight each\n"
           "                      (--threads, --pendings ignored); fast/slow counts from\n"
           "                      the client's own stats\n"
           COMMON_USAGE);
}

static const struct option cl_longopts[] = {
    {"nodes", required_argument, 0, 'N'},       {"clients", required_argument, 0, 'c'},
    {"threads", required_argument, 0, 'T'},     {"pendings", required_argument, 0, 'P'},
    {"requests", required_argument, 0, 'n'},    {"reqs", required_argument, 0, 'Q'},
    {"duration", required_argument, 0, 'D'},    {"weak-ratio", required_argument, 0, 'w'},
    {"writes", required_argument, 0, 'W'},      {"weak-writes", required_argument, 0, 'x'},
    {"keyspace", required_argument, 0, 'r'},    {"zipf", required_argument, 0, 'z'},
    {"conflicts", required_argument, 0, 'C'},   {"size", required_argument, 0, 'd'},
    {"value-size", required_argument, 0, 'd'},  {"server-pids", required_argument, 0, 'S'},
    {"server-pid", required_argument, 0, 'S'},  {"no-consistency", no_argument, 0, 'X'},
    {"direct", no_argument, 0, 'R'},            COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cl_option(cl_options *o, int ch, const char *arg) {
    switch (ch) {
    case 'N': o->node_count = parse_nodes("--nodes", arg, o->nodes); break;
    case 'c': o->clients = (int)opt_int("-c", arg, 1, 100000); break;
    case 'T': o->threads = (int)opt_int("--threads", arg, 1, 1024); break;
    case 'P': o->pendings = (int)opt_int("--pendings", arg, 1, 1000000); break;
    case 'n':
        o->requests = opt_int("-n", arg, 1, (long long)1 << 62);
        o->reqs = 0;
        o->duration_s = 0;
        break;
    case 'Q':
        o->reqs = opt_int("--reqs", arg, 1, (long long)1 << 62);
        o->requests = 0;
        o->duration_s = 0;
        break;
    case 'D':
        o->duration_s = opt_num("--duration", arg, 0.001, 1e9);
        o->reqs = o->requests = 0;
        break;
    case 'w': o->weak_ratio = opt_num("--weak-ratio", arg, 0, 1); break;
    case 'W': o->writes = opt_num("--writes", arg, 0, 1); break;
    case 'x': o->weak_writes = opt_num("--weak-writes", arg, 0, 1); break;
    case 'r': o->keyspace = opt_int("-r", arg, 1, (long long)CL_HOT_KEY - 1); break;
    case 'z': o->zipf_s = opt_num("--zipf", arg, 0, 100); break;
    case 'C': o->conflicts = opt_num("--conflicts", arg, 0, 100); break;
    case 'd': o->value_size = (int)opt_size("-d", arg, 0, 512LL << 20); break;
    case 'S': cl_parse_pids(o, arg); break;
    case 'X': o->no_consistency = 1; break;
    case 'R': o->direct = 1; break;
    default: fprintf(stderr, "see pier-bench cluster --help\n"); exit(2);
    }
}

static void cl_parse(int argc, char **argv, cl_options *o) {
    *o = (cl_options){.c = {.mode = "cluster"}, .clients = 6, .threads = 2, .pendings = 10,
                      .reqs = 10000, .weak_ratio = 0.5, .writes = 0.5, .weak_writes = 0.5,
                      .keyspace = 10000, .value_size = 100};
    o->node_count = parse_nodes("--nodes", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
                                o->nodes);
    int ch;
    while ((ch = getopt_long(argc, argv, "n:c:d:r:q", cl_longopts, NULL)) != -1)
        if (!common_option(&o->c, ch, optarg, cl_usage)) cl_option(o, ch, optarg);
    if (optind < argc) die("unexpected argument '%s' (see pier-bench cluster --help)", argv[optind]);
    common_check(&o->c);
    if (o->direct && o->no_consistency) die("--direct needs a pier cluster (no --no-consistency)");
    if (o->direct) { /* one blocking session per thread, one op in flight */
        o->threads = o->clients;
        o->pendings = 1;
    }
    if (o->threads > o->clients) o->threads = o->clients;
    nodes_string(o->nodes, o->node_count, o->nodes_str, sizeof o->nodes_str);
    size_t used = 0;
    for (int i = 0; i < o->npids; i++)
        used += (size_t)snprintf(o->pids_str + used, sizeof o->pids_str - used, "%s%d",
                                 i ? "," : "", o->server_pids[i]);
}

/* Ops thread t issues (-n shared out, or --reqs each); 0: not counted. */
static long long cl_budget(const cl_options *o, int t) {
    if (o->requests)
        return o->requests / o->threads + (t < o->requests % o->threads);
    return o->reqs;
}

/* --- blocking setup I/O (PIER.CONSISTENCY, INFO) --- */

/* The counters of INFO cluster the summary uses. */
enum { CI_FAST, CI_SLOW, CI_WEAK_READS, CI_WEAK_WRITES, CI_FORWARDED, CI_LEADER, CI_N };
static const char *const cl_info_names[CI_N] = {"cluster_fast_path", "cluster_slow_path",
                                                "cluster_weak_reads", "cluster_weak_writes",
                                                "cluster_forwarded", "cluster_leader_writes"};

typedef struct cl_info {
    int ok;        /* INFO answered */
    int has_paths; /* cluster_fast_path and cluster_slow_path present */
    char role[16];
    long long v[CI_N];
} cl_info;

static void cl_read_info(const cl_node *nd, cl_info *ci) {
    memset(ci, 0, sizeof *ci);
    snprintf(ci->role, sizeof ci->role, "-");
    int fd = tcp_connect(nd->host, nd->port);
    if (fd < 0) return;
    static const char *const req[] = {"INFO", "cluster"};
    char *r = resp_command(fd, 2, req);
    close(fd);
    if (!r) return;
    ci->ok = r[0] == '$' || r[0] == '=';
    int seen = 0;
    for (char *line = r; ci->ok && line && *line; line = strchr(line, '\n'), line += !!line) {
        for (int i = 0; i < CI_N; i++) {
            size_t k = strlen(cl_info_names[i]);
            if (!strncmp(line, cl_info_names[i], k) && line[k] == ':') {
                ci->v[i] = atoll(line + k + 1);
                seen |= 1 << i;
            }
        }
        if (!strncmp(line, "cluster_role:", 13))
            sscanf(line + 13, "%15[a-z]", ci->role);
    }
    ci->has_paths = (seen & 3) == 3;
    free(r);
}

/* PIER.CONSISTENCY STRONG|WEAK on a fresh connection; exits on an error
 * reply, which means the server lacks the command (--no-consistency). */
static void cl_set_consistency(int fd, const cl_node *nd, int weak) {
    const char *req[] = {"PIER.CONSISTENCY", weak ? "WEAK" : "STRONG"};
    char *r = resp_command(fd, 2, req);
    if (!r) {
        fprintf(stderr, "pier-bench: %s:%d: no reply to PIER.CONSISTENCY\n", nd->host, nd->port);
        exit(1);
    }
    if (r[0] != '+') {
        r[strcspn(r, "\r\n")] = 0;
        fprintf(stderr,
                "pier-bench: %s:%d answered PIER.CONSISTENCY %s with: %s\n"
                "  (a server without the command: run with --no-consistency)\n",
                nd->host, nd->port, weak ? "WEAK" : "STRONG", r);
        exit(1);
    }
    free(r);
}

static void cl_open_conn(const cl_options *o, cl_conn *c, int node, int weak) {
    const cl_node *nd = &o->nodes[node];
    c->fd = tcp_connect(nd->host, nd->port);
    if (c->fd < 0) {
        fprintf(stderr, "pier-bench: cannot connect to %s:%d: %s\n", nd->host, nd->port,
                strerror(errno));
        exit(1);
    }
    if (!o->no_consistency) cl_set_consistency(c->fd, nd, weak);
    int fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    c->weak = weak;
    c->node = node;
    c->wcap = max_request_len() * 16;
    c->wbuf = xmalloc(c->wcap);
    c->rcap = 64 * 1024;
    c->rbuf = xmalloc(c->rcap);
    c->qcap = 16;
    c->q = xmalloc(c->qcap * sizeof *c->q);
}

static void cl_setup(const cl_options *o, cl_worker *ws) {
    for (int t = 0; t < o->threads; t++) {
        cl_worker *w = &ws[t];
        w->o = o;
        w->left = cl_budget(o, t);
        w->counted = w->left > 0;
        for (int k = 0; k < 2; k++) {
            hist_init(&w->cls[k].hist);
            ival_init(&w->iv[k]);
        }
        w->nclients = o->clients / o->threads + (t < o->clients % o->threads);
        w->clients = calloc((size_t)w->nclients, sizeof *w->clients);
        w->dirty = calloc((size_t)w->nclients * 2, sizeof *w->dirty);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!w->clients || !w->dirty || w->epfd < 0) die("out of memory");
        for (int j = 0; j < w->nclients; j++) {
            int g = t + j * o->threads; /* the global client index */
            cl_client *cl = &w->clients[j];
            cl->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(g + 1) ^ 0xD1B54A32D192ED03ull;
            for (int k = 0; k < 2; k++) {
                cl_open_conn(o, &cl->c[k], g % o->node_count, k);
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cl->c[k]};
                if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, cl->c[k].fd, &ev) < 0)
                    die("epoll_ctl failed");
            }
        }
    }
}

static void cl_teardown(const cl_options *o, cl_worker *ws) {
    for (int t = 0; t < o->threads; t++) {
        pier_cluster_close(ws[t].pc);
        for (int j = 0; j < ws[t].nclients && !o->direct; j++)
            for (int k = 0; k < 2; k++) {
                cl_conn *c = &ws[t].clients[j].c[k];
                close(c->fd);
                free(c->wbuf);
                free(c->rbuf);
                free(c->q);
            }
        free(ws[t].clients);
        free(ws[t].dirty);
        if (ws[t].epfd >= 0) close(ws[t].epfd);
        for (int k = 0; k < 2; k++) ival_destroy(&ws[t].iv[k]);
    }
}

/* --- the run --- */

static void cl_fail(cl_worker *w, const cl_conn *c, const char *what) {
    const cl_node *nd = &w->o->nodes[c->node];
    fprintf(stderr, "pier-bench: %s:%d (%s connection): %s\n", nd->host, nd->port,
            c->weak ? "weak" : "strong", what);
    atomic_store(&w->failed, 1);
    atomic_store(&cl_stop, 1);
}

static long long cl_key(const cl_options *o, uint64_t *rng) {
    if (o->conflicts > 0 && unit_rand(rng) * 100 < o->conflicts) return (long long)CL_HOT_KEY;
    if (o->zipf_s > 0) return zipf_sample(&zipf, rng);
    return (long long)(xorshift(rng) % (uint64_t)o->keyspace);
}

static int cl_can_issue(const cl_worker *w) {
    return w->inflight < w->o->pendings && (!w->counted || w->left > 0) &&
           !atomic_load_explicit(&cl_stop, memory_order_relaxed);
}

/* Queue one op on the next client, round-robin; sent by cl_flush. */
static void cl_issue(cl_worker *w, uint64_t now) {
    const cl_options *o = w->o;
    cl_client *cl = &w->clients[w->next];
    w->next = (w->next + 1) % w->nclients;
    int weak = unit_rand(&cl->rng) < o->weak_ratio;
    int write = unit_rand(&cl->rng) < (weak ? o->weak_writes : o->writes);
    long long key = cl_key(o, &cl->rng);
    cl_conn *c = &cl->c[weak];
    size_t len = write ? tpl.set_len : tpl.get_len;
    if (c->wlen + len > c->wcap) {
        if (c->woff > 0) { /* drop what was sent */
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        while (c->wlen + len > c->wcap) c->wcap *= 2;
        c->wbuf = xrealloc(c->wbuf, c->wcap);
    }
    memcpy(c->wbuf + c->wlen, write ? tpl.set : tpl.get, len);
    write_digits(c->wbuf + c->wlen + (write ? tpl.set_key_at : tpl.get_key_at),
                 (unsigned long long)key);
    c->wlen += len;
    if (c->qcount == c->qcap) { /* grow the ring, oldest first again */
        cl_pending *q = xmalloc(c->qcap * 2 * sizeof *q);
        for (unsigned i = 0; i < c->qcount; i++) q[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = q;
        c->qhead = 0;
        c->qcap *= 2;
    }
    c->q[(c->qhead + c->qcount++) % c->qcap] = (cl_pending){now, write};
    if (!c->dirty) {
        c->dirty = 1;
        w->dirty[w->ndirty++] = c;
    }
    w->inflight++;
    w->left--;
}

static void cl_top_up(cl_worker *w) {
    uint64_t now = now_ns();
    while (cl_can_issue(w)) cl_issue(w, now);
}

static void cl_arm(cl_worker *w, cl_conn *c, int out) {
    if (c->out_armed == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = out;
}

/* Write what the dirty connections hold; a connection the socket cannot
 * take all of waits for EPOLLOUT. */
static void cl_flush(cl_worker *w) {
    for (int i = 0; i < w->ndirty; i++) {
        cl_conn *c = w->dirty[i];
        c->dirty = 0;
        while (c->woff < c->wlen) {
            ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) break;
            if (n < 0) {
                cl_fail(w, c, strerror(errno));
                break;
            }
            c->woff += (size_t)n;
        }
        if (c->woff == c->wlen) c->woff = c->wlen = 0;
        cl_arm(w, c, c->wlen > 0);
    }
    w->ndirty = 0;
}

static void cl_error_reply(cl_worker *w, cl_class *k, const char *p, long len) {
    k->errors++;
    if (len > 12 && !memcmp(p, "-CLUSTERDOWN", 12)) k->clusterdown++;
    if (!w->first_err[0]) {
        int n = (int)strcspn(p, "\r\n");
        snprintf(w->first_err, sizeof w->first_err, "%.*s", n < 150 ? n : 150, p);
    }
}

/* Account one answered op of class weak: an error reply (err, len bytes)
 * or a success after ns; iv (locked by the caller) for --interval. */
static void cl_account(cl_worker *w, int weak, int write, const char *err, long len, uint64_t ns,
                       ival *iv) {
    cl_class *k = &w->cls[weak];
    if (err) {
        cl_error_reply(w, k, err, len);
        if (iv) iv->errors++;
    } else {
        hist_record(&k->hist, ns);
        if (iv) hist_record(&iv->h, ns);
        if (write) k->writes++;
        else k->reads++;
    }
    atomic_store_explicit(&w->done, atomic_load_explicit(&w->done, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Read and account the replies that arrived; each frees a slot. */
static void cl_on_readable(cl_worker *w, cl_conn *c) {
    if (c->rcap - c->rlen < 4096) {
        c->rcap *= 2;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
    ssize_t r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (r == 0) {
        cl_fail(w, c, "connection closed by the server");
        return;
    }
    if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) cl_fail(w, c, strerror(errno));
        return;
    }
    c->rlen += (size_t)r;
    uint64_t now = now_ns();
    size_t off = 0;
    ival *iv = w->o->c.interval_s > 0 ? &w->iv[c->weak] : NULL;
    if (iv) pthread_mutex_lock(&iv->lock);
    long len;
    for (;;) {
        int is_err = 0;
        len = parse_reply(c->rbuf + off, c->rbuf + c->rlen, &is_err);
        if (len < 0 || (len > 0 && c->qcount == 0) || len == 0) break;
        cl_pending p = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qcount--;
        cl_account(w, c->weak, p.write, is_err ? c->rbuf + off : NULL, len, now - p.t, iv);
        off += (size_t)len;
        w->inflight--;
    }
    if (iv) pthread_mutex_unlock(&iv->lock);
    if (len != 0) {
        cl_fail(w, c, len < 0 ? "malformed reply" : "reply to no request");
        return;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
}

static void *cl_worker_main(void *arg) {
    cl_worker *w = arg;
    cl_top_up(w);
    cl_flush(w);
    struct epoll_event evs[256];
    while (w->inflight > 0 && !atomic_load(&w->failed)) {
        int n = epoll_wait(w->epfd, evs, 256, 200);
        for (int i = 0; i < n && !atomic_load(&w->failed); i++) {
            cl_conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) cl_on_readable(w, c);
            if ((evs[i].events & EPOLLOUT) && !c->dirty) {
                c->dirty = 1;
                w->dirty[w->ndirty++] = c;
            }
        }
        cl_top_up(w);
        cl_flush(w);
    }
    return NULL;
}

/* --- --direct: a thread per session, each with libpier's CURP client --- */

static char *cl_value; /* the --value-size bytes every SET sends, shared */

/* Session g (one per thread) gets its client, home node g mod nodes as in
 * the RESP mode. */
static void cl_setup_direct(const cl_options *o, cl_worker *ws) {
    for (int g = 0; g < o->clients; g++) {
        cl_worker *w = &ws[g];
        w->o = o;
        w->left = cl_budget(o, g);
        w->counted = w->left > 0;
        w->epfd = -1;
        for (int k = 0; k < 2; k++) {
            hist_init(&w->cls[k].hist);
            ival_init(&w->iv[k]);
        }
        w->nclients = 1;
        w->clients = calloc(1, sizeof *w->clients);
        if (!w->clients) die("out of memory");
        w->clients->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(g + 1) ^ 0xD1B54A32D192ED03ull;
        int rc = pier_cluster_connect(&w->pc, o->nodes_str, g % o->node_count, NULL);
        if (rc) {
            fprintf(stderr, "pier-bench: session %d: %s (%s)\n", g, pier_strerror(rc),
                    pier_last_error());
            exit(1);
        }
    }
}

/* One op through the client; a GET of a missing key is an answer too. */
static int cl_direct_op(cl_worker *w, int weak, int write, const char *key) {
    size_t vlen = (size_t)w->o->value_size;
    if (write)
        return weak ? pier_cluster_weak_set(w->pc, key, cl_value, vlen)
                    : pier_cluster_set(w->pc, key, cl_value, vlen);
    char *v = NULL;
    size_t len;
    int rc = weak ? pier_cluster_weak_get(w->pc, key, &v, &len)
                  : pier_cluster_get(w->pc, key, &v, &len);
    if (rc == PIER_OK) free(v);
    return rc == PIER_E_NOT_FOUND ? PIER_OK : rc;
}

static void cl_direct_error(cl_worker *w, cl_class *k, int rc, ival *iv) {
    k->errors++;
    if (iv) iv->errors++;
    atomic_store_explicit(&w->done, atomic_load_explicit(&w->done, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (strstr(pier_last_error(), "CLUSTERDOWN")) k->clusterdown++;
    if (!w->first_err[0])
        snprintf(w->first_err, sizeof w->first_err, "%s: %.120s", pier_strerror(rc),
                 pier_last_error());
}

/* Closed loop of one session: the same op mix and key choice as cl_issue,
 * latency from the call to its return (every round trip of the op). */
static void *cl_direct_main(void *arg) {
    cl_worker *w = arg;
    const cl_options *o = w->o;
    cl_client *cl = w->clients;
    char key[32];
    while (!atomic_load_explicit(&cl_stop, memory_order_relaxed) && (!w->counted || w->left > 0)) {
        int weak = unit_rand(&cl->rng) < o->weak_ratio;
        int write = unit_rand(&cl->rng) < (weak ? o->weak_writes : o->writes);
        snprintf(key, sizeof key, "key:%012lld", cl_key(o, &cl->rng));
        uint64_t t0 = now_ns();
        int rc = cl_direct_op(w, weak, write, key);
        uint64_t ns = now_ns() - t0;
        ival *iv = o->c.interval_s > 0 ? &w->iv[weak] : NULL;
        if (iv) pthread_mutex_lock(&iv->lock);
        if (rc == PIER_OK) cl_account(w, weak, write, NULL, 0, ns, iv);
        else cl_direct_error(w, &w->cls[weak], rc, iv);
        if (iv) pthread_mutex_unlock(&iv->lock);
        w->left--;
    }
    return NULL;
}

/* --- output --- */

typedef struct cl_result {
    cl_class cls[2];
    double secs;
    long long srv_cpu_us, cli_cpu_us; /* srv -1: not measured */
    cl_info before[MAX_NODES], after[MAX_NODES];
    long long fast, slow;             /* -1: n/a */
    long long leader_writes;          /* strong writes sent to the leader itself: done at the commit */
    pier_cluster_stats cst;           /* --direct: the clients' own counts, summed */
    int failed;
    char first_err[160];
} cl_result;

static void cl_fast_path(const cl_options *o, cl_result *r) {
    r->fast = r->slow = -1;
    r->leader_writes = 0;
    for (int i = 0; i < o->node_count; i++) {
        const cl_info *a = &r->before[i], *b = &r->after[i];
        if (!a->has_paths || !b->has_paths) continue;
        if (r->fast < 0) r->fast = r->slow = 0;
        r->fast += b->v[CI_FAST] - a->v[CI_FAST];
        r->slow += b->v[CI_SLOW] - a->v[CI_SLOW];
        r->leader_writes += b->v[CI_LEADER] - a->v[CI_LEADER];
    }
}

static void cl_class_json(const char *name, const cl_class *k) {
    const histogram *h = &k->hist;
    printf(",\"%s\":{\"ops\":%llu,\"reads\":%llu,\"writes\":%llu,\"errors\":%llu,"
           "\"clusterdown\":%llu,\"avg_us\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"p999_us\":%.1f,\"max_us\":%.1f}",
           name, (unsigned long long)h->count, (unsigned long long)k->reads,
           (unsigned long long)k->writes, (unsigned long long)k->errors,
           (unsigned long long)k->clusterdown, hist_mean(h) / 1e3,
           hist_percentile(h, 50) / 1e3, hist_percentile(h, 99) / 1e3,
           hist_percentile(h, 99.9) / 1e3, h->max / 1e3);
}

static void fill_params(const cl_options *o, record *p) {
    rec_str(p, "nodes", o->nodes_str);
    rec_int(p, "clients", o->clients);
    rec_int(p, "threads", o->threads);
    rec_int(p, "pendings", o->pendings);
    if (o->requests) rec_int(p, "requests", o->requests);
    else rec_null(p, "requests");
    if (o->reqs) rec_int(p, "reqs_per_thread", o->reqs);
    else rec_null(p, "reqs_per_thread");
    if (o->duration_s > 0) rec_num(p, "duration_s", o->duration_s, 3);
    else rec_null(p, "duration_s");
    rec_num(p, "weak_ratio", o->weak_ratio, 4);
    rec_num(p, "writes", o->writes, 4);
    rec_num(p, "weak_writes", o->weak_writes, 4);
    rec_int(p, "keyspace", o->keyspace);
    rec_num(p, "zipf", o->zipf_s, 4);
    rec_num(p, "conflicts", o->conflicts, 2);
    rec_int(p, "size", o->value_size);
    rec_bool(p, "consistency", !o->no_consistency);
    rec_bool(p, "direct", o->direct);
    rec_str(p, "server_pids", o->npids ? o->pids_str : NULL);
}

/* The results, or one interval's (r NULL: no fast path, CPU or failure
 * figures there). Same keys either way, for CSV. */
static void fill_results(record *rec, const histogram *h, const uint64_t errors[2], double secs,
                         const cl_result *r) {
    uint64_t ops = h[0].count + h[1].count;
    rec_int(rec, "ops", (long long)ops);
    rec_int(rec, "errors", (long long)(errors[0] + errors[1]));
    rec_num(rec, "seconds", secs, 3);
    rec_num(rec, "ops_per_sec", secs > 0 ? (double)ops / secs : 0, 1);
    static const char *const pfx[2][2] = {{"strong_ops", "strong_"}, {"weak_ops", "weak_"}};
    for (int k = 0; k < 2; k++) {
        rec_int(rec, pfx[k][0], (long long)h[k].count);
        rec_latency(rec, pfx[k][1], &h[k]);
    }
    bool paths = r && r->fast >= 0;
    if (paths) rec_int(rec, "fast_path", r->fast);
    else rec_null(rec, "fast_path");
    if (paths) rec_int(rec, "slow_path", r->slow);
    else rec_null(rec, "slow_path");
    if (paths && r->fast + r->slow > 0)
        rec_num(rec, "fast_path_share", (double)r->fast / (double)(r->fast + r->slow), 4);
    else rec_null(rec, "fast_path_share");
    if (r && r->srv_cpu_us >= 0 && ops)
        rec_num(rec, "server_cpu_us_per_op", (double)r->srv_cpu_us / (double)ops, 4);
    else rec_null(rec, "server_cpu_us_per_op");
    if (r) rec_num(rec, "client_cpu_us_per_op", ops ? (double)r->cli_cpu_us / (double)ops : 0, 4);
    else rec_null(rec, "client_cpu_us_per_op");
    rec_int(rec, "failed", r ? r->failed : 0);
}

static void cl_print_json(report *rp, const cl_options *o, const cl_result *r, const record *total) {
    report_json_begin(rp, total);
    cl_class_json("strong", &r->cls[0]);
    cl_class_json("weak", &r->cls[1]);
    const pier_cluster_stats *cs = &r->cst;
    if (o->direct)
        printf(",\"client_fast_path\":%llu,\"client_slow_path\":%llu,"
               "\"client_fast_path_share\":%.4f,\"client_retries\":%llu,"
               "\"client_failovers\":%llu",
               (unsigned long long)cs->fast, (unsigned long long)cs->slow,
               cs->fast + cs->slow ? (double)cs->fast / (double)(cs->fast + cs->slow) : 0,
               (unsigned long long)cs->retries, (unsigned long long)cs->failovers);
    else
        printf(",\"client_fast_path\":null,\"client_slow_path\":null,"
               "\"client_fast_path_share\":null,\"client_retries\":null,"
               "\"client_failovers\":null");
    printf(",\"node_stats\":[");
    for (int i = 0; i < o->node_count; i++) {
        const cl_info *a = &r->before[i], *b = &r->after[i];
        printf("%s{\"node\":\"%s:%d\",\"role\":\"%s\",\"info\":%s", i ? "," : "",
               o->nodes[i].host, o->nodes[i].port, b->role,
               a->ok && b->ok ? "true" : "false");
        for (int f = 0; f < CI_N; f++)
            if (a->has_paths && b->has_paths)
                printf(",\"%s\":%lld", cl_info_names[f] + 8, b->v[f] - a->v[f]);
        printf("}");
    }
    printf("],\"first_error\":");
    json_string(r->first_err);
    report_json_end(rp);
}

static void cl_print_class(const char *name, const cl_class *k) {
    const histogram *h = &k->hist;
    printf("  %-7s %9llu ops (%llu w, %llu r)  us: avg %.1f  p50 %.1f  p99 %.1f  p99.9 %.1f"
           "  max %.1f  errors %llu\n",
           name, (unsigned long long)h->count, (unsigned long long)k->writes,
           (unsigned long long)k->reads, hist_mean(h) / 1e3, hist_percentile(h, 50) / 1e3,
           hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3, h->max / 1e3,
           (unsigned long long)k->errors);
}

static void cl_print(report *rp, const cl_options *o, const cl_result *r) {
    uint64_t ops = r->cls[0].hist.count + r->cls[1].hist.count;
    uint64_t errs = r->cls[0].errors + r->cls[1].errors;
    histogram h[2] = {r->cls[0].hist, r->cls[1].hist};
    uint64_t e[2] = {r->cls[0].errors, r->cls[1].errors};
    record total = {0};
    fill_results(&total, h, e, r->secs, r);
    if (o->c.json) {
        cl_print_json(rp, o, r, &total);
        return;
    }
    if (o->c.csv) {
        report_csv_total(rp, r->secs, &total);
        return;
    }
    printf("cluster: %llu ops (+%llu errors) in %.2f s, %d clients on %d node%s, ",
           (unsigned long long)ops, (unsigned long long)errs, r->secs, o->clients, o->node_count,
           o->node_count > 1 ? "s" : "");
    if (o->direct)
        printf("direct (libpier CURP client: a thread and 1 op in flight per client)\n");
    else
        printf("%d threads, pendings %d\n", o->threads, o->pendings);
    printf("  workload  weak %.2f, strong writes %.2f, weak writes %.2f, keyspace %lld %s %g,"
           " conflicts %g%%, %d-byte values%s\n",
           o->weak_ratio, o->writes, o->weak_writes, o->keyspace,
           o->zipf_s > 0 ? "zipf" : "uniform", o->zipf_s, o->conflicts, o->value_size,
           o->no_consistency ? ", no PIER.CONSISTENCY" : "");
    printf("  throughput %.0f ops/s\n", r->secs > 0 ? (double)ops / r->secs : 0);
    cl_print_class("strong", &r->cls[0]);
    cl_print_class("weak", &r->cls[1]);
    printf("  errors    %llu (CLUSTERDOWN %llu)%s%s\n", (unsigned long long)errs,
           (unsigned long long)(r->cls[0].clusterdown + r->cls[1].clusterdown),
           r->first_err[0] ? "  first: " : "", r->first_err);
    const pier_cluster_stats *cs = &r->cst;
    if (o->direct) /* the nodes count only the writes they proxy, none here */
        printf("  fast path %.1f%% (%llu fast, %llu slow; client stats: retries %llu,"
               " failovers %llu)\n",
               cs->fast + cs->slow ? 100.0 * (double)cs->fast / (double)(cs->fast + cs->slow) : 0,
               (unsigned long long)cs->fast, (unsigned long long)cs->slow,
               (unsigned long long)cs->retries, (unsigned long long)cs->failovers);
    else if (r->fast >= 0 && r->fast + r->slow > 0)
        printf("  fast path %.1f%% of the writes followers proxied (%lld fast, %lld slow);"
               " %lld more sent to the leader completed at the commit\n",
               100.0 * (double)r->fast / (double)(r->fast + r->slow), r->fast, r->slow,
               r->leader_writes);
    else
        printf("  fast path n/a%s\n", r->fast >= 0 ? " (no strong writes counted)"
                                                   : " (no cluster_fast_path in INFO)");
    for (int i = 0; i < o->node_count; i++) {
        const cl_info *a = &r->before[i], *b = &r->after[i];
        if (a->has_paths && !b->has_paths)
            printf("  %s:%d no INFO after the run\n", o->nodes[i].host, o->nodes[i].port);
        if (!a->has_paths || !b->has_paths) continue;
        printf("  %s:%d %-9s fast +%lld slow +%lld weak reads +%lld weak writes +%lld"
               " forwarded +%lld\n",
               o->nodes[i].host, o->nodes[i].port, b->role, b->v[0] - a->v[0],
               b->v[1] - a->v[1], b->v[2] - a->v[2], b->v[3] - a->v[3], b->v[4] - a->v[4]);
    }
    if (r->srv_cpu_us >= 0)
        printf("  server cpu %.3f us/op (%d process%s)\n",
               ops ? (double)r->srv_cpu_us / (double)ops : 0, o->npids, o->npids > 1 ? "es" : "");
    printf("  client cpu %.3f us/op\n", ops ? (double)r->cli_cpu_us / (double)ops : 0);
    if (r->failed) printf("  FAILED: a connection was lost; the figures cover the run until then\n");
}

/* Summed CPU of the --server-pids, -1 if one is unreadable. */
static long long cl_servers_cpu(const cl_options *o) {
    long long sum = 0;
    for (int i = 0; i < o->npids; i++) {
        long long v = proc_cpu_us(o->server_pids[i]);
        if (v < 0) return -1;
        sum += v;
    }
    return o->npids ? sum : -1;
}

typedef struct cl_run {
    const cl_options *o;
    cl_worker *ws;
    uint64_t total;            /* ops to do, 0 with --duration */
    uint64_t last_done;
} cl_run;

static uint64_t cl_total_done(const cl_run *c) {
    uint64_t s = 0;
    for (int i = 0; i < c->o->threads; i++)
        s += atomic_load_explicit(&c->ws[i].done, memory_order_relaxed);
    return s;
}

static bool cl_finished(void *arg, double elapsed) {
    cl_run *c = arg;
    if (c->o->duration_s > 0 && elapsed >= c->o->duration_s) atomic_store(&cl_stop, 1);
    return (c->total && cl_total_done(c) >= c->total) || atomic_load(&cl_stop);
}

static void cl_progress(void *arg, int second) {
    cl_run *c = arg;
    progress_line(second, cl_total_done(c), &c->last_done);
}

static void cl_sample(void *arg, record *iv, double secs) {
    cl_run *c = arg;
    histogram h[2];
    uint64_t e[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        hist_init(&h[k]);
        for (int t = 0; t < c->o->threads; t++) ival_take(&c->ws[t].iv[k], &h[k], &e[k]);
    }
    fill_results(iv, h, e, secs, NULL);
}

/* Sum the threads' classes and client stats into r. */
static void cl_collect(const cl_options *o, cl_worker *ws, cl_result *r) {
    for (int k = 0; k < 2; k++) hist_init(&r->cls[k].hist);
    for (int t = 0; t < o->threads; t++) {
        for (int k = 0; k < 2; k++) {
            cl_class *d = &r->cls[k], *s = &ws[t].cls[k];
            hist_merge(&d->hist, &s->hist);
            d->reads += s->reads;
            d->writes += s->writes;
            d->errors += s->errors;
            d->clusterdown += s->clusterdown;
        }
        r->failed |= atomic_load(&ws[t].failed);
        if (ws[t].pc) {
            pier_cluster_stats cs;
            pier_cluster_stats_get(ws[t].pc, &cs);
            r->cst.fast += cs.fast;
            r->cst.slow += cs.slow;
            r->cst.retries += cs.retries;
            r->cst.failovers += cs.failovers;
        }
        if (!r->first_err[0] && ws[t].first_err[0])
            memcpy(r->first_err, ws[t].first_err, sizeof r->first_err);
    }
}

int run_cluster(int argc, char **argv) {
    cl_options o;
    cl_parse(argc, argv, &o);
    build_templates(o.value_size);
    if (o.zipf_s > 0) zipf_init(&zipf, o.keyspace, o.zipf_s);
    cl_worker *ws = calloc((size_t)o.threads, sizeof *ws);
    cl_result *r = calloc(1, sizeof *r);
    if (!ws || !r) fail("out of memory");
    cl_value = xmalloc((size_t)o.value_size + 1);
    memset(cl_value, 'x', (size_t)o.value_size);
    if (o.direct) cl_setup_direct(&o, ws);
    else cl_setup(&o, ws);
    for (int i = 0; i < o.node_count; i++) cl_read_info(&o.nodes[i], &r->before[i]);
    report rp;
    report_init(&rp, &o.c);
    fill_params(&o, &rp.params);
    record proto = {0};
    histogram empty[2];
    hist_init(&empty[0]);
    hist_init(&empty[1]);
    uint64_t no_errors[2] = {0, 0};
    fill_results(&proto, empty, no_errors, 0, NULL);
    report_begin(&rp, &proto);

    cl_run run = {.o = &o, .ws = ws};
    for (int t = 0; t < o.threads; t++) run.total += (uint64_t)ws[t].left;
    long long srv0 = cl_servers_cpu(&o), cli0 = self_cpu_us();
    uint64_t t0 = now_ns();
    for (int t = 0; t < o.threads; t++)
        pthread_create(&ws[t].tid, NULL, o.direct ? cl_direct_main : cl_worker_main, &ws[t]);
    run_hooks hooks = {cl_finished, cl_progress, cl_sample, &run};
    report_wait(&rp, t0, &hooks);
    for (int t = 0; t < o.threads; t++) pthread_join(ws[t].tid, NULL);
    r->secs = (double)(now_ns() - t0) / 1e9;
    long long srv1 = cl_servers_cpu(&o), cli1 = self_cpu_us();
    r->srv_cpu_us = srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1;
    r->cli_cpu_us = cli1 - cli0;
    for (int i = 0; i < o.node_count; i++) cl_read_info(&o.nodes[i], &r->after[i]);
    cl_fast_path(&o, r);
    cl_collect(&o, ws, r);
    cl_print(&rp, &o, r);
    cl_teardown(&o, ws);
    int rc = r->failed ? 1 : 0;
    report_free(&rp);
    free(ws);
    free(r);
    free_templates();
    free(cl_value);
    return rc;
}
