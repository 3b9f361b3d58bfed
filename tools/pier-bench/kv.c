/* kv.c - pier-bench kv: closed-loop GET/SET over RESP (pier, redis).
 *
 * Each connection sends a pipeline of P requests, waits for all P replies,
 * then sends the next. Connections are spread over a few threads, each
 * with its own epoll loop (never a thread per client), so the tool costs
 * little CPU itself. Latency of every request (from the write of its
 * batch to the read of its reply) goes into a per-thread log-bucketed
 * histogram; percentiles come from the merged histogram.
 *
 * With --server-pid the server's CPU time (utime + stime from
 * /proc/PID/stat) over the measured window is reported per request: the
 * figure that compares servers on a machine where the client itself needs
 * a core. */
#include <errno.h>
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bench.h"

enum workload { WL_SET, WL_GET, WL_MIXED };
static const char *const workload_names[] = {"set", "get", "mixed"};

typedef struct options {
    bench_common c;
    const char *host;
    int port;
    int clients;
    long long requests;   /* 0 when --duration is used */
    double duration_s;
    int value_size;
    int pipeline;
    long long keyspace;
    enum workload workload;
    double read_ratio;
    int threads;
    int server_pid;
} options;

typedef struct conn {
    int fd;
    char *wbuf;
    size_t wlen, woff;
    char *rbuf;
    size_t rlen, rcap;
    int inflight;
    uint64_t sent_ns;
    uint64_t rng;
} conn;

typedef struct worker {
    pthread_t tid;
    const options *opt;
    conn *conns;
    int nconns;
    int epfd;
    histogram hist;
    ival iv;                /* --interval only */
    _Atomic uint64_t done;  /* replies received (read by the progress line) */
    uint64_t errors;
    _Atomic int failed;
} worker;

static _Atomic long long budget_left; /* requests not yet issued (-n mode) */
static _Atomic int stop_issuing;      /* --duration elapsed */

/* One RESP command: GET key:000000000123 or SET key:000000000123 <value>. */
static size_t build_request(const options *o, conn *c, char *dst) {
    unsigned long long k = xorshift(&c->rng) % (unsigned long long)o->keyspace;
    int is_get = o->workload == WL_GET ||
                 (o->workload == WL_MIXED &&
                  (double)(xorshift(&c->rng) % 1000000) / 1e6 < o->read_ratio);
    const char *t = is_get ? tpl.get : tpl.set;
    size_t len = is_get ? tpl.get_len : tpl.set_len;
    memcpy(dst, t, len);
    write_digits(dst + (is_get ? tpl.get_key_at : tpl.set_key_at), k);
    return len;
}

/* Claim up to P requests from the budget. Returns how many to send. */
static int claim(const options *o) {
    if (atomic_load_explicit(&stop_issuing, memory_order_relaxed)) return 0;
    if (o->requests == 0) return o->pipeline;
    long long left = atomic_fetch_sub(&budget_left, o->pipeline);
    if (left <= 0) return 0;
    return left >= o->pipeline ? o->pipeline : (int)left;
}

/* --- connection I/O --- */

/* Send the pending bytes. Returns -1 on a connection error. */
static int flush_conn(conn *c) {
    while (c->woff < c->wlen) {
        ssize_t w = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        c->woff += (size_t)w;
    }
    return 0;
}

static int start_batch(worker *w, conn *c) {
    int n = claim(w->opt);
    if (n == 0) return 0;
    c->wlen = 0;
    c->woff = 0;
    for (int i = 0; i < n; i++) c->wlen += build_request(w->opt, c, c->wbuf + c->wlen);
    c->inflight = n;
    c->sent_ns = now_ns();
    return flush_conn(c) < 0 ? -1 : n;
}

/* Account the complete replies at the start of c->rbuf; returns the bytes
 * they span, -1 when malformed. */
static long take_replies(worker *w, conn *c, uint64_t t) {
    long off = 0;
    bool iv = w->opt->c.interval_s > 0;
    if (iv) pthread_mutex_lock(&w->iv.lock);
    while (c->inflight > 0) {
        int is_err = 0;
        long len = parse_reply(c->rbuf + off, c->rbuf + c->rlen, &is_err);
        if (len < 0) {
            off = -1;
            break;
        }
        if (len == 0) break;
        off += len;
        c->inflight--;
        w->errors += (uint64_t)is_err;
        hist_record(&w->hist, t - c->sent_ns);
        if (iv) {
            hist_record(&w->iv.h, t - c->sent_ns);
            w->iv.errors += (uint64_t)is_err;
        }
        atomic_store_explicit(&w->done, atomic_load_explicit(&w->done, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    if (iv) pthread_mutex_unlock(&w->iv.lock);
    return off;
}

/* Consume complete replies; start the next batch when all arrived.
 * Returns -1 on error, 0 when this connection is finished, 1 otherwise. */
static int on_readable(worker *w, conn *c) {
    if (c->rcap - c->rlen < 4096) {
        c->rcap *= 2;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
    ssize_t r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (r == 0) return -1;
    if (r < 0) return errno == EAGAIN || errno == EINTR ? 1 : -1;
    c->rlen += (size_t)r;
    long off = take_replies(w, c, now_ns());
    if (off < 0) return -1;
    memmove(c->rbuf, c->rbuf + off, c->rlen - (size_t)off);
    c->rlen -= (size_t)off;
    if (c->inflight > 0) return 1;
    int n = start_batch(w, c);
    return n < 0 ? -1 : (n > 0);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    int active = 0;
    for (int i = 0; i < w->nconns; i++) {
        conn *c = &w->conns[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->fd, &ev);
        int n = start_batch(w, c);
        if (n < 0) atomic_store(&w->failed, 1);
        active += n > 0;
    }
    struct epoll_event evs[256];
    while (active > 0 && !atomic_load(&w->failed)) {
        int n = epoll_wait(w->epfd, evs, 256, 1000);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            int rc = on_readable(w, c);
            if (rc < 0) {
                fprintf(stderr, "pier-bench: connection lost\n");
                atomic_store(&w->failed, 1);
            }
            if (rc <= 0) {
                epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
                active--;
            }
        }
    }
    return NULL;
}

/* --- options --- */

static void usage(void) {
    printf("usage: pier-bench kv [options]\n"
           "Closed-loop SET/GET over RESP against one server (pier or redis).\n"
           "  -h, --host host     server host (127.0.0.1)\n"
           "  -p, --port port     server port (7379)\n"
           "  -c, --clients n     clients, one connection each (50)\n"
           "  -n, --requests n    total requests (100000)\n"
           "  --duration s        run for s seconds instead of -n\n"
           "  -d, --size bytes    SET value size (3; units as the server's: 1kb = 1024)\n"
           "  -P, --pipeline n    requests in flight per connection (1)\n"
           "  -r, --keyspace n    random keys key:000000000000..n-1 (100000)\n"
           "  -t, --workload w    set | get | mixed (set)\n"
           "  --ratio f           fraction of GETs in mixed (0.9)\n"
           "  --threads n         client threads, each with its own event loop (1)\n"
           "  --server-pid pid    report the server's CPU microseconds per request\n"
           COMMON_USAGE);
}

static void parse_options(int argc, char **argv, options *o) {
    *o = (options){.c = {.mode = "kv"}, .host = "127.0.0.1", .port = 7379, .clients = 50,
                   .requests = 100000, .value_size = 3, .pipeline = 1, .keyspace = 100000,
                   .workload = WL_SET, .read_ratio = 0.9, .threads = 1};
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},      {"port", required_argument, 0, 'p'},
        {"clients", required_argument, 0, 'c'},   {"requests", required_argument, 0, 'n'},
        {"size", required_argument, 0, 'd'},      {"pipeline", required_argument, 0, 'P'},
        {"keyspace", required_argument, 0, 'r'},  {"workload", required_argument, 0, 't'},
        {"duration", required_argument, 0, 'D'},  {"ratio", required_argument, 0, 'R'},
        {"threads", required_argument, 0, 'T'},   {"server-pid", required_argument, 0, 'S'},
        COMMON_LONGOPTS,                          {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:c:n:d:P:r:t:q", longopts, NULL)) != -1) {
        if (common_option(&o->c, ch, optarg, usage)) continue;
        switch (ch) {
        case 'h': o->host = optarg; break;
        case 'p': o->port = (int)opt_int("-p", optarg, 1, 65535); break;
        case 'c': o->clients = (int)opt_int("-c", optarg, 1, 100000); break;
        case 'n': o->requests = opt_int("-n", optarg, 1, (long long)1 << 62); o->duration_s = 0; break;
        case 'd': o->value_size = (int)opt_size("-d", optarg, 0, 512LL << 20); break;
        case 'P': o->pipeline = (int)opt_int("-P", optarg, 1, 100000); break;
        case 'r': o->keyspace = opt_int("-r", optarg, 1, 999999999999LL); break;
        case 't': o->workload = opt_enum("-t", optarg, workload_names, 3); break;
        case 'D': o->duration_s = opt_num("--duration", optarg, 0.001, 1e9); o->requests = 0; break;
        case 'R': o->read_ratio = opt_num("--ratio", optarg, 0, 1); break;
        case 'T': o->threads = (int)opt_int("--threads", optarg, 1, 1024); break;
        case 'S': o->server_pid = (int)opt_int("--server-pid", optarg, 1, 1 << 30); break;
        default: fprintf(stderr, "see pier-bench kv --help\n"); exit(2);
        }
    }
    if (optind < argc) die("unexpected argument '%s' (see pier-bench kv --help)", argv[optind]);
    common_check(&o->c);
    if (o->threads > o->clients) o->threads = o->clients;
}

static void fill_params(const options *o, record *p) {
    rec_str(p, "host", o->host);
    rec_int(p, "port", o->port);
    rec_int(p, "clients", o->clients);
    if (o->requests) rec_int(p, "requests", o->requests);
    else rec_null(p, "requests");
    if (o->duration_s > 0) rec_num(p, "duration_s", o->duration_s, 3);
    else rec_null(p, "duration_s");
    rec_int(p, "size", o->value_size);
    rec_int(p, "pipeline", o->pipeline);
    rec_int(p, "keyspace", o->keyspace);
    rec_str(p, "workload", workload_names[o->workload]);
    rec_num(p, "ratio", o->read_ratio, 3);
    rec_int(p, "threads", o->threads);
    if (o->server_pid) rec_int(p, "server_pid", o->server_pid);
    else rec_null(p, "server_pid");
}

/* The results (or one interval's: cpu < -1 means not measured there). */
static void fill_results(record *r, const histogram *h, uint64_t errors, double secs,
                         double srv_cpu, double cli_cpu) {
    rec_int(r, "requests", (long long)h->count);
    rec_int(r, "errors", (long long)errors);
    rec_num(r, "seconds", secs, 3);
    rec_num(r, "ops_per_sec", secs > 0 ? (double)h->count / secs : 0, 1);
    rec_latency(r, "", h);
    if (srv_cpu >= 0) rec_num(r, "server_cpu_us_per_req", srv_cpu, 4);
    else rec_null(r, "server_cpu_us_per_req");
    if (cli_cpu >= 0) rec_num(r, "client_cpu_us_per_req", cli_cpu, 4);
    else rec_null(r, "client_cpu_us_per_req");
}

/* --- run --- */

static void setup_workers(const options *o, worker *ws) {
    for (int t = 0; t < o->threads; t++) {
        worker *w = &ws[t];
        memset(w, 0, sizeof *w);
        w->opt = o;
        hist_init(&w->hist);
        ival_init(&w->iv);
        w->nconns = o->clients / o->threads + (t < o->clients % o->threads);
        w->conns = calloc((size_t)w->nconns, sizeof(conn));
        w->epfd = epoll_create1(0);
        if (!w->conns || w->epfd < 0) fail("out of memory");
        for (int i = 0; i < w->nconns; i++) {
            conn *c = &w->conns[i];
            c->fd = tcp_connect(o->host, o->port);
            if (c->fd < 0)
                fail("cannot connect to %s:%d: %s", o->host, o->port, strerror(errno));
            c->wbuf = xmalloc(max_request_len() * (size_t)o->pipeline);
            c->rcap = 64 * 1024;
            c->rbuf = xmalloc(c->rcap);
            c->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(t + 1) << 32) ^ (uint64_t)(i + 1);
        }
    }
}

static void free_workers(const options *o, worker *ws) {
    for (int t = 0; t < o->threads; t++) {
        for (int i = 0; i < ws[t].nconns; i++) {
            close(ws[t].conns[i].fd);
            free(ws[t].conns[i].wbuf);
            free(ws[t].conns[i].rbuf);
        }
        free(ws[t].conns);
        close(ws[t].epfd);
        ival_destroy(&ws[t].iv);
    }
    free(ws);
}

typedef struct kv_run {
    const options *o;
    worker *ws;
    uint64_t last_done;
} kv_run;

static uint64_t total_done(const kv_run *k) {
    uint64_t s = 0;
    for (int i = 0; i < k->o->threads; i++)
        s += atomic_load_explicit(&k->ws[i].done, memory_order_relaxed);
    return s;
}

static bool any_failed(const kv_run *k) {
    for (int i = 0; i < k->o->threads; i++)
        if (atomic_load(&k->ws[i].failed)) return true;
    return false;
}

static bool kv_finished(void *arg, double elapsed) {
    kv_run *k = arg;
    if (k->o->duration_s > 0 && elapsed >= k->o->duration_s) atomic_store(&stop_issuing, 1);
    return (k->o->requests && total_done(k) >= (uint64_t)k->o->requests) || any_failed(k) ||
           atomic_load(&stop_issuing);
}

static void kv_progress(void *arg, int second) {
    kv_run *k = arg;
    progress_line(second, total_done(k), &k->last_done);
}

static void kv_sample(void *arg, record *iv, double secs) {
    kv_run *k = arg;
    histogram h;
    hist_init(&h);
    uint64_t errors = 0;
    for (int t = 0; t < k->o->threads; t++) ival_take(&k->ws[t].iv, &h, &errors);
    fill_results(iv, &h, errors, secs, -1, -1);
}

static void print_text(const options *o, const record *r) {
#define V(key) rec_get(r, key)->d
    printf("%s: %lld requests in %.2f s, %d clients, pipeline %d, %d-byte values\n",
           workload_names[o->workload], rec_get(r, "requests")->i, V("seconds"), o->clients,
           o->pipeline, o->value_size);
    printf("  throughput  %.0f ops/s\n", V("ops_per_sec"));
    if (rec_get(r, "p50_us")->type != RV_NULL)
        printf("  latency us  avg %.1f  p50 %.1f  p95 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
               V("avg_us"), V("p50_us"), V("p95_us"), V("p99_us"), V("p999_us"), V("max_us"));
    printf("  errors      %lld\n", rec_get(r, "errors")->i);
    if (rec_get(r, "server_cpu_us_per_req")->type != RV_NULL)
        printf("  server cpu  %.3f us/request\n", V("server_cpu_us_per_req"));
    printf("  client cpu  %.3f us/request\n", V("client_cpu_us_per_req"));
#undef V
}

int run_kv(int argc, char **argv) {
    options o;
    parse_options(argc, argv, &o);
    build_templates(o.value_size);
    atomic_store(&budget_left, o.requests);
    worker *ws = calloc((size_t)o.threads, sizeof *ws);
    if (!ws) fail("out of memory");
    setup_workers(&o, ws);
    report rp;
    report_init(&rp, &o.c);
    fill_params(&o, &rp.params);
    record proto = {0};
    histogram empty;
    hist_init(&empty);
    fill_results(&proto, &empty, 0, 0, 0, 0);
    report_begin(&rp, &proto);

    long long srv0 = o.server_pid ? proc_cpu_us(o.server_pid) : -1;
    long long cli0 = self_cpu_us();
    uint64_t t0 = now_ns();
    for (int t = 0; t < o.threads; t++) pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]);
    kv_run k = {.o = &o, .ws = ws};
    run_hooks hooks = {kv_finished, kv_progress, kv_sample, &k};
    report_wait(&rp, t0, &hooks);
    for (int t = 0; t < o.threads; t++) pthread_join(ws[t].tid, NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    long long srv1 = o.server_pid ? proc_cpu_us(o.server_pid) : -1;
    long long cli1 = self_cpu_us();

    histogram all;
    hist_init(&all);
    uint64_t errors = 0;
    for (int t = 0; t < o.threads; t++) {
        hist_merge(&all, &ws[t].hist);
        errors += ws[t].errors;
    }
    double n = all.count ? (double)all.count : 1;
    record total = {0};
    fill_results(&total, &all, errors, secs,
                 srv0 >= 0 && srv1 >= 0 ? (double)(srv1 - srv0) / n : -1,
                 (double)(cli1 - cli0) / n);
    if (o.c.json) {
        report_json_begin(&rp, &total);
        report_json_end(&rp);
    } else if (o.c.csv) {
        report_csv_total(&rp, secs, &total);
    } else {
        print_text(&o, &total);
    }
    int failed = any_failed(&k);
    report_free(&rp);
    free_workers(&o, ws);
    free_templates();
    return failed ? 1 : 0;
}
