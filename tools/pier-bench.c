/* pier-bench - load generator for pier (and any RESP server).
 *
 *   pier-bench kv [-h host] [-p port] [-c clients] [-n requests | --duration s]
 *                 [-d value-bytes] [-P pipeline] [-r keyspace] [-t set|get|mixed]
 *                 [--ratio read-fraction] [--threads n] [--server-pid pid]
 *                 [--csv | --json] [-q]
 *
 * Closed loop: each connection sends a pipeline of P requests, waits for all
 * P replies, then sends the next. Connections are spread over a few threads,
 * each with its own epoll loop (never a thread per client), so the tool
 * costs little CPU itself. Latency of every request (from the write of its
 * batch to the read of its reply) goes into a per-thread log-bucketed
 * histogram; percentiles come from the merged histogram.
 *
 * `pier-bench log` (further down) benchmarks the batch protocol through
 * libpier: publish-only, end-to-end and latency.
 *
 *   pier-bench cluster [--nodes h:p,...] [--clients n] [--threads n]
 *                      [--pendings n] [--reqs n | --duration s] [--weak-ratio f]
 *                      [--writes f] [--weak-writes f] [--keyspace n] [--zipf s]
 *                      [--conflicts pct] [--value-size n] [--server-pids p,...]
 *                      [--no-consistency] [--direct] [--json] [-q]
 *
 * `pier-bench cluster` (at the end) is the origin system's (CURP-HO)
 * hybrid benchmark: strong and weak ops from client sessions bound to
 * their nearest node, latency per class, and the fast-path share from
 * INFO cluster. It runs against a single node or redis-server too;
 * --direct sends strong ops through libpier's CURP client instead.
 *
 * With --server-pid the server's CPU time (utime + stime from
 * /proc/PID/stat) over the measured window is reported per request: the
 * figure that compares servers on a machine where the client itself needs
 * a core. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lib/histogram.h"

enum workload { WL_SET, WL_GET, WL_MIXED };

typedef struct options {
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
    int csv, json, quiet;
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
    _Atomic uint64_t done;  /* replies received (read by the progress line) */
    uint64_t errors;
    int failed;
} worker;

static _Atomic long long budget_left; /* requests not yet issued (-n mode) */
static _Atomic int stop_issuing;      /* --duration elapsed */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg) {
    fprintf(stderr, "pier-bench: %s\n", msg);
    exit(2);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) die("out of memory");
    return p;
}

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* --- request building --- */


/* Requests are copied from two templates built once, with the 12 key
 * digits written in place: no formatting per request, so the load
 * generator stays cheaper than the server it measures. */
#define KEY_DIGITS 12
typedef struct templates {
    char *set, *get;
    size_t set_len, get_len;
    size_t set_key_at, get_key_at; /* offset of the first key digit */
} templates;
static templates tpl;

static void build_templates(int value_size) {
    char head[64];
    int h = snprintf(head, sizeof head, "*3\r\n$3\r\nSET\r\n$%d\r\nkey:", 4 + KEY_DIGITS);
    char vhdr[32];
    int vh = snprintf(vhdr, sizeof vhdr, "\r\n$%d\r\n", value_size);
    tpl.set_len = (size_t)h + KEY_DIGITS + (size_t)vh + (size_t)value_size + 2;
    tpl.set = xmalloc(tpl.set_len);
    memcpy(tpl.set, head, (size_t)h);
    tpl.set_key_at = (size_t)h;
    memset(tpl.set + h, '0', KEY_DIGITS);
    memcpy(tpl.set + h + KEY_DIGITS, vhdr, (size_t)vh);
    memset(tpl.set + h + KEY_DIGITS + vh, 'x', (size_t)value_size);
    memcpy(tpl.set + tpl.set_len - 2, "\r\n", 2);
    h = snprintf(head, sizeof head, "*2\r\n$3\r\nGET\r\n$%d\r\nkey:", 4 + KEY_DIGITS);
    tpl.get_len = (size_t)h + KEY_DIGITS + 2;
    tpl.get = xmalloc(tpl.get_len);
    memcpy(tpl.get, head, (size_t)h);
    tpl.get_key_at = (size_t)h;
    memcpy(tpl.get + h + KEY_DIGITS, "\r\n", 2);
}

static void write_digits(char *dst, unsigned long long k) {
    for (int i = KEY_DIGITS - 1; i >= 0; i--, k /= 10) dst[i] = (char)('0' + k % 10);
}

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

static size_t max_request_len(const options *o) {
    return tpl.set_len > tpl.get_len ? tpl.set_len : tpl.get_len;
}

/* Claim up to P requests from the budget. Returns how many to send. */
static int claim(const options *o) {
    if (atomic_load_explicit(&stop_issuing, memory_order_relaxed)) return 0;
    if (o->requests == 0) return o->pipeline;
    long long left = atomic_fetch_sub(&budget_left, o->pipeline);
    if (left <= 0) return 0;
    return left >= o->pipeline ? o->pipeline : (int)left;
}

/* --- reply parsing: length of one complete RESP reply at p, 0 if
 * incomplete, -1 if malformed. *is_err set for '-' replies. --- */

/* Decimal after a type byte up to CR, e.g. "$123\r" -> 123 (-1 stays -1).
 * Returns the offset of the '\n' after it, or -1 when the line is not
 * complete yet. */
static long read_len_line(const char *p, const char *end, long *value) {
    const char *q = p + 1;
    int neg = q < end && *q == '-';
    long v = 0;
    for (q += neg; q < end && *q >= '0' && *q <= '9'; q++) v = v * 10 + (*q - '0');
    if (q + 1 >= end) return -1;
    *value = neg ? -v : v;
    return (long)(q - p) + 1;
}

static long parse_reply(const char *p, const char *end, int *is_err) {
    if (p >= end) return 0;
    switch (p[0]) {
    case '+': case ':': case ',': case '#': case '_': case '(': case '-': {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return 0;
        if (p[0] == '-') *is_err = 1;
        return (long)(nl - p) + 1;
    }
    case '$': case '=': case '!': {
        long len, nl = read_len_line(p, end, &len);
        if (nl < 0) return 0;
        long head = nl + 1;
        if (len < 0) return head;
        if (end - (p + head) < len + 2) return 0;
        if (p[0] == '!') *is_err = 1;
        return head + len + 2;
    }
    case '*': case '~': case '%': case '>': {
        long n, nl = read_len_line(p, end, &n);
        if (nl < 0) return 0;
        if (p[0] == '%') n *= 2;
        long total = nl + 1;
        for (long i = 0; i < n; i++) {
            int e = 0;
            long r = parse_reply(p + total, end, &e);
            if (r <= 0) return r;
            total += r;
        }
        return total;
    }
    default:
        return -1;
    }
}

/* --- connection I/O --- */

static int connect_to(const options *o) {
    struct addrinfo hints = {0}, *res;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    if (getaddrinfo(o->host, port, &hints, &res) != 0) die("cannot resolve host");
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        freeaddrinfo(res);
        fprintf(stderr, "pier-bench: cannot connect to %s:%d: %s\n", o->host, o->port,
                strerror(errno));
        exit(1);
    }
    freeaddrinfo(res);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

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

/* Consume complete replies; start the next batch when all arrived.
 * Returns -1 on error, 0 when this connection is finished, 1 otherwise. */
static int on_readable(worker *w, conn *c) {
    if (c->rcap - c->rlen < 4096) {
        c->rcap *= 2;
        c->rbuf = realloc(c->rbuf, c->rcap);
        if (!c->rbuf) die("out of memory");
    }
    ssize_t r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (r == 0) return -1;
    if (r < 0) return errno == EAGAIN || errno == EINTR ? 1 : -1;
    c->rlen += (size_t)r;
    size_t off = 0;
    uint64_t t = now_ns();
    while (c->inflight > 0) {
        int is_err = 0;
        long len = parse_reply(c->rbuf + off, c->rbuf + c->rlen, &is_err);
        if (len < 0) return -1;
        if (len == 0) break;
        off += (size_t)len;
        c->inflight--;
        w->errors += (uint64_t)is_err;
        hist_record(&w->hist, t - c->sent_ns);
        atomic_store_explicit(&w->done, atomic_load_explicit(&w->done, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
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
        if (n < 0) w->failed = 1;
        active += n > 0;
    }
    struct epoll_event evs[256];
    while (active > 0 && !w->failed) {
        int n = epoll_wait(w->epfd, evs, 256, 1000);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            int rc = on_readable(w, c);
            if (rc < 0) {
                fprintf(stderr, "pier-bench: connection lost\n");
                w->failed = 1;
            }
            if (rc <= 0) {
                epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
                active--;
            }
        }
    }
    return NULL;
}

/* --- CPU accounting --- */

/* utime + stime of pid in microseconds, -1 if unreadable. */
static long long proc_cpu_us(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the name may contain spaces */
    if (!p) return -1;
    unsigned long long ut, st;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)((ut + st) * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static long long self_cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
           (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

/* --- options --- */

static void usage(void) {
    printf("usage: pier-bench kv [options]\n"
           "  -h host           server host (127.0.0.1)\n"
           "  -p port           server port (7379)\n"
           "  -c clients        connections (50)\n"
           "  -n requests       total requests (100000)\n"
           "  --duration s      run for s seconds instead of -n\n"
           "  -d bytes          value size for SET (3)\n"
           "  -P depth          pipeline depth per connection (1)\n"
           "  -r keyspace       random keys key:000000000000..keyspace-1 (100000)\n"
           "  -t set|get|mixed  workload (set)\n"
           "  --ratio f         fraction of GETs in mixed (0.9)\n"
           "  --threads n       client threads, each with its own event loop (1)\n"
           "  --server-pid pid  report the server's CPU microseconds per request\n"
           "  --csv | --json    machine-readable summary\n"
           "  -q                no progress lines\n");
}

static void parse_options(int argc, char **argv, options *o) {
    *o = (options){"127.0.0.1", 7379, 50, 100000, 0, 3, 1, 100000, WL_SET, 0.9, 1, 0, 0, 0, 0};
    static const struct option longopts[] = {
        {"duration", required_argument, 0, 'D'}, {"ratio", required_argument, 0, 'R'},
        {"threads", required_argument, 0, 'T'},  {"server-pid", required_argument, 0, 'S'},
        {"csv", no_argument, 0, 'C'},            {"json", no_argument, 0, 'J'},
        {"help", no_argument, 0, 'H'},           {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:c:n:d:P:r:t:q", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': o->host = optarg; break;
        case 'p': o->port = atoi(optarg); break;
        case 'c': o->clients = atoi(optarg); break;
        case 'n': o->requests = atoll(optarg); break;
        case 'd': o->value_size = atoi(optarg); break;
        case 'P': o->pipeline = atoi(optarg); break;
        case 'r': o->keyspace = atoll(optarg); break;
        case 'q': o->quiet = 1; break;
        case 'D': o->duration_s = atof(optarg); o->requests = 0; break;
        case 'R': o->read_ratio = atof(optarg); break;
        case 'T': o->threads = atoi(optarg); break;
        case 'S': o->server_pid = atoi(optarg); break;
        case 'C': o->csv = 1; break;
        case 'J': o->json = 1; break;
        case 't':
            if (!strcmp(optarg, "set")) o->workload = WL_SET;
            else if (!strcmp(optarg, "get")) o->workload = WL_GET;
            else if (!strcmp(optarg, "mixed")) o->workload = WL_MIXED;
            else die("-t takes set, get or mixed");
            break;
        case 'H': usage(); exit(0);
        default: usage(); exit(2);
        }
    }
    if (o->clients < 1 || o->pipeline < 1 || o->keyspace < 1 || o->threads < 1 ||
        o->value_size < 0 || o->port < 1 || (o->requests <= 0 && o->duration_s <= 0) ||
        o->read_ratio < 0 || o->read_ratio > 1 || o->keyspace > 999999999999LL)
        die("bad option value (see --help)");
    if (o->threads > o->clients) o->threads = o->clients;
}

/* --- run --- */

static void setup_workers(const options *o, worker *ws) {
    for (int t = 0; t < o->threads; t++) {
        worker *w = &ws[t];
        memset(w, 0, sizeof *w);
        w->opt = o;
        hist_init(&w->hist);
        w->nconns = o->clients / o->threads + (t < o->clients % o->threads);
        w->conns = calloc((size_t)w->nconns, sizeof(conn));
        w->epfd = epoll_create1(0);
        if (!w->conns || w->epfd < 0) die("out of memory");
        for (int i = 0; i < w->nconns; i++) {
            conn *c = &w->conns[i];
            c->fd = connect_to(o);
            c->wbuf = xmalloc(max_request_len(o) * (size_t)o->pipeline);
            c->rcap = 64 * 1024;
            c->rbuf = xmalloc(c->rcap);
            c->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(t + 1) << 32) ^ (uint64_t)(i + 1);
        }
    }
}

static uint64_t total_done(worker *ws, int n) {
    uint64_t s = 0;
    for (int i = 0; i < n; i++) s += atomic_load_explicit(&ws[i].done, memory_order_relaxed);
    return s;
}

static const char *workload_name(const options *o) {
    return o->workload == WL_SET ? "set" : o->workload == WL_GET ? "get" : "mixed";
}

static void print_summary(const options *o, const histogram *h, uint64_t errors, double secs,
                          long long srv_cpu_us, long long cli_cpu_us) {
    double ops = secs > 0 ? (double)h->count / secs : 0;
    double us[7] = {hist_mean(h) / 1e3,
                    hist_percentile(h, 50) / 1e3,
                    hist_percentile(h, 95) / 1e3,
                    hist_percentile(h, 99) / 1e3,
                    hist_percentile(h, 99.9) / 1e3,
                    h->max / 1e3, 0};
    double srv = srv_cpu_us >= 0 && h->count ? (double)srv_cpu_us / (double)h->count : -1;
    double cli = h->count ? (double)cli_cpu_us / (double)h->count : 0;
    if (o->json) {
        printf("{\"workload\":\"%s\",\"requests\":%llu,\"errors\":%llu,\"seconds\":%.3f,"
               "\"ops_per_sec\":%.1f,\"avg_us\":%.1f,\"p50_us\":%.1f,\"p95_us\":%.1f,"
               "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
               "\"server_cpu_us_per_req\":%.4f,\"client_cpu_us_per_req\":%.4f}\n",
               workload_name(o), (unsigned long long)h->count, (unsigned long long)errors, secs,
               ops, us[0], us[1], us[2], us[3], us[4], us[5], srv, cli);
    } else if (o->csv) {
        printf("workload,requests,errors,seconds,ops_per_sec,avg_us,p50_us,p95_us,p99_us,"
               "p999_us,max_us,server_cpu_us_per_req,client_cpu_us_per_req\n");
        printf("%s,%llu,%llu,%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.4f,%.4f\n",
               workload_name(o), (unsigned long long)h->count, (unsigned long long)errors, secs,
               ops, us[0], us[1], us[2], us[3], us[4], us[5], srv, cli);
    } else {
        printf("%s: %llu requests in %.2f s, %d clients, pipeline %d, %d-byte values\n",
               workload_name(o), (unsigned long long)h->count, secs, o->clients, o->pipeline,
               o->value_size);
        printf("  throughput  %.0f ops/s\n", ops);
        printf("  latency us  avg %.1f  p50 %.1f  p95 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
               us[0], us[1], us[2], us[3], us[4], us[5]);
        printf("  errors      %llu\n", (unsigned long long)errors);
        if (srv >= 0) printf("  server cpu  %.3f us/request\n", srv);
        printf("  client cpu  %.3f us/request\n", cli);
    }
}

static int run_kv(int argc, char **argv) {
    options o;
    parse_options(argc, argv, &o);
    build_templates(o.value_size);
    atomic_store(&budget_left, o.requests);
    worker *ws = calloc((size_t)o.threads, sizeof *ws);
    if (!ws) die("out of memory");
    setup_workers(&o, ws);

    long long srv0 = o.server_pid ? proc_cpu_us(o.server_pid) : -1;
    long long cli0 = self_cpu_us();
    uint64_t t0 = now_ns();
    for (int t = 0; t < o.threads; t++) pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]);

    uint64_t last = 0;
    for (int sec = 1;; sec++) {
        uint64_t target = t0 + (uint64_t)sec * 1000000000ull;
        int finished = 0;
        while (now_ns() < target) {
            finished = o.requests && total_done(ws, o.threads) >= (uint64_t)o.requests;
            int failed = 0;
            for (int t = 0; t < o.threads; t++) failed |= ws[t].failed;
            if (finished || failed) break;
            usleep(20000);
        }
        if (o.duration_s > 0 && (double)(now_ns() - t0) / 1e9 >= o.duration_s)
            atomic_store(&stop_issuing, 1);
        int failed = 0;
        for (int t = 0; t < o.threads; t++) failed |= ws[t].failed;
        uint64_t d = total_done(ws, o.threads);
        if (!o.quiet && !o.csv && !o.json && now_ns() >= target)
            fprintf(stderr, "[%3ds] %llu ops/s, %llu done\n", sec,
                    (unsigned long long)(d - last), (unsigned long long)d);
        last = d;
        if (finished || failed || atomic_load(&stop_issuing)) break;
    }
    for (int t = 0; t < o.threads; t++) pthread_join(ws[t].tid, NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    long long srv1 = o.server_pid ? proc_cpu_us(o.server_pid) : -1;
    long long cli1 = self_cpu_us();

    histogram all;
    hist_init(&all);
    uint64_t errors = 0;
    int failed = 0;
    for (int t = 0; t < o.threads; t++) {
        hist_merge(&all, &ws[t].hist);
        errors += ws[t].errors;
        failed |= ws[t].failed;
    }
    print_summary(&o, &all, errors, secs, srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1,
                  cli1 - cli0);
    for (int t = 0; t < o.threads; t++) {
        for (int i = 0; i < ws[t].nconns; i++) {
            close(ws[t].conns[i].fd);
            free(ws[t].conns[i].wbuf);
            free(ws[t].conns[i].rbuf);
        }
        free(ws[t].conns);
        close(ws[t].epfd);
    }
    free(ws);
    free(tpl.set);
    free(tpl.get);
    return failed ? 1 : 0;
}


/* ==================================================================== log
 *
 *   pier-bench log [--mode publish|e2e|latency] [-n host:port ...] [options]
 *
 * Publishes messages through libpier's batch publisher (client/pier.h) to
 * the batch ports given with -n (repeatable; default 127.0.0.1:8379).
 *   publish   time from the first publish to pier_publisher_close, i.e.
 *             until every batch is acknowledged (ack level >= 1).
 *   e2e       a subscriber (on the first node, from "$") consumes while
 *             publishing; timed to the last message consumed.
 *   latency   as e2e, with a send timestamp in each message: the
 *             subscriber records publish-to-consume latency per message in
 *             the histogram (src/lib/histogram.h); --rate paces publishing
 *             so the figure is latency, not queueing; --cdf writes the CDF.
 * Output: MiB/s, GB/s, messages/s, a per-connection table (batches, bytes,
 * MB/s, send and compression time, ratio), or one JSON object (--json). */

#include "pier.h"

enum log_mode { LOG_PUBLISH, LOG_E2E, LOG_LATENCY };
enum log_pattern { PAT_RANDOM, PAT_TEXT, PAT_ZEROS };

typedef struct log_options {
    enum log_mode mode;
    const char *nodes[16];
    int node_count;
    size_t msg_size;
    uint64_t total_bytes;
    int conns;            /* per node */
    int threads;          /* publishing threads */
    int ack_level;
    enum pier_codec codec;
    size_t threshold;
    int adaptive;
    enum log_pattern pattern;
    size_t batch_bytes;
    unsigned linger_us;
    size_t zerocopy;
    double rate;          /* messages/s over all threads, 0 = unpaced */
    const char *topic;
    const char *cdf_path;
    int json, quiet;
} log_options;

#define POOL_BYTES (16u << 20)

typedef struct log_run {
    const log_options *o;
    pier_publisher *pub;
    pier_subscriber *sub;          /* e2e and latency */
    uint8_t *pool;                 /* message bytes are taken from here */
    uint64_t msgs_total;
    _Atomic uint64_t published;    /* messages handed to pier_publish */
    _Atomic uint64_t consumed;     /* messages the subscriber got */
    _Atomic int failed;
    uint64_t t0;
    uint64_t t_consumed_last;
    histogram lat;                 /* subscriber thread only */
} log_run;

typedef struct pub_thread {
    pthread_t tid;
    log_run *run;
    uint64_t first, count;         /* message index range */
    int rc;
} pub_thread;

static uint64_t parse_bytes(const char *s) {
    char *end;
    double v = strtod(s, &end);
    switch (*end) {
    case 'k': case 'K': v *= 1024; break;
    case 'm': case 'M': v *= 1048576; break;
    case 'g': case 'G': v *= 1073741824.0; break;
    default: break;
    }
    if (v < 0) die("negative size");
    return (uint64_t)v;
}

static void log_usage(void) {
    printf("usage: pier-bench log [options]\n"
           "  --mode m           publish | e2e | latency (publish)\n"
           "  -n host:port       batch port of a node, repeatable (127.0.0.1:8379)\n"
           "  -s bytes           message size (4k)\n"
           "  --total bytes      bytes to publish (1g)\n"
           "  -c conns           connections per node (1)\n"
           "  --threads n        publishing threads (1)\n"
           "  --ack 0|1|2        ack level (1)\n"
           "  --codec c          none | lz4 | zstd (lz4)\n"
           "  --threshold bytes  compress batches at least this large (64k)\n"
           "  --no-adaptive      compress every batch over the threshold\n"
           "  --pattern p        random | text | zeros (random)\n"
           "  --batch bytes      batch size (2m)\n"
           "  --linger us        flush partial batches after (1000)\n"
           "  --zerocopy bytes   MSG_ZEROCOPY for batches >= bytes (0 = off)\n"
           "  --rate msgs/s      pace publishing (latency mode; 0 = unpaced)\n"
           "  --topic key        stream key (bench:log:<pid>)\n"
           "  --cdf file         latency mode: write the latency CDF (percentile, us)\n"
           "  --json             one JSON object\n"
           "  -q                 no progress bar\n");
}

static int parse_enum(const char *v, const char *const *names, int n, const char *what) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    fprintf(stderr, "pier-bench: bad %s '%s'\n", what, v);
    exit(2);
}

static void log_parse(int argc, char **argv, log_options *o) {
    static char topic[64];
    snprintf(topic, sizeof topic, "bench:log:%d", (int)getpid());
    *o = (log_options){.msg_size = 4096, .total_bytes = 1ull << 30, .conns = 1, .threads = 1,
                       .ack_level = 1, .codec = PIER_CODEC_LZ4, .threshold = 64 * 1024,
                       .adaptive = 1, .batch_bytes = 2u << 20, .linger_us = 1000,
                       .topic = topic};
    static const char *const modes[] = {"publish", "e2e", "latency"};
    static const char *const codecs[] = {"none", "lz4", "zstd"};
    static const char *const patterns[] = {"random", "text", "zeros"};
    static const struct option longopts[] = {
        {"mode", required_argument, 0, 'M'},     {"total", required_argument, 0, 't'},
        {"threads", required_argument, 0, 'T'},  {"ack", required_argument, 0, 'a'},
        {"codec", required_argument, 0, 'z'},    {"threshold", required_argument, 0, 'm'},
        {"no-adaptive", no_argument, 0, 'A'},    {"pattern", required_argument, 0, 'x'},
        {"batch", required_argument, 0, 'b'},    {"linger", required_argument, 0, 'l'},
        {"zerocopy", required_argument, 0, 'Z'}, {"rate", required_argument, 0, 'r'},
        {"topic", required_argument, 0, 'k'},    {"cdf", required_argument, 0, 'f'},
        {"json", no_argument, 0, 'J'},           {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:s:c:q", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            if (o->node_count == 16) die("at most 16 nodes");
            o->nodes[o->node_count++] = optarg;
            break;
        case 's': o->msg_size = parse_bytes(optarg); break;
        case 'c': o->conns = atoi(optarg); break;
        case 'q': o->quiet = 1; break;
        case 'M': o->mode = parse_enum(optarg, modes, 3, "mode"); break;
        case 't': o->total_bytes = parse_bytes(optarg); break;
        case 'T': o->threads = atoi(optarg); break;
        case 'a': o->ack_level = atoi(optarg); break;
        case 'z': o->codec = parse_enum(optarg, codecs, 3, "codec"); break;
        case 'm': o->threshold = parse_bytes(optarg); break;
        case 'A': o->adaptive = 0; break;
        case 'x': o->pattern = parse_enum(optarg, patterns, 3, "pattern"); break;
        case 'b': o->batch_bytes = parse_bytes(optarg); break;
        case 'l': o->linger_us = (unsigned)atoi(optarg); break;
        case 'Z': o->zerocopy = parse_bytes(optarg); break;
        case 'r': o->rate = atof(optarg); break;
        case 'k': o->topic = optarg; break;
        case 'f': o->cdf_path = optarg; break;
        case 'J': o->json = 1; break;
        case 'H': log_usage(); exit(0);
        default: log_usage(); exit(2);
        }
    }
    if (o->node_count == 0) o->nodes[o->node_count++] = "127.0.0.1:8379";
    if (o->conns < 1 || o->threads < 1 || o->msg_size < 16 || o->msg_size > POOL_BYTES / 2 ||
        o->total_bytes < o->msg_size || o->rate < 0)
        die("bad option value (see pier-bench log --help)");
}

/* --- message data --- */

static void fill_pool(uint8_t *p, enum log_pattern pat) {
    static const char *words[] = {"the ", "order ", "shipped ", "to ", "customer ", "id=",
                                  "4711 ", "at ", "warehouse ", "north\n", "status=ok ",
                                  "qty=12 "};
    uint64_t x = 0x2545F4914F6CDD1Dull;
    size_t off = 0;
    while (off < POOL_BYTES) {
        if (pat == PAT_ZEROS) {
            p[off++] = 0;
        } else if (pat == PAT_RANDOM) {
            uint64_t r = xorshift(&x);
            size_t n = POOL_BYTES - off < 8 ? POOL_BYTES - off : 8;
            memcpy(p + off, &r, n);
            off += n;
        } else {
            const char *w = words[xorshift(&x) % 12];
            size_t n = strlen(w) < POOL_BYTES - off ? strlen(w) : POOL_BYTES - off;
            memcpy(p + off, w, n);
            off += n;
        }
    }
}

/* Message i: a window of the pool at a varying offset, so consecutive
 * messages differ (random stays incompressible across a batch). */
static const uint8_t *message_at(const log_run *r, uint64_t i) {
    size_t span = POOL_BYTES - r->o->msg_size;
    return r->pool + (i * 4099 % span);
}

/* --- publishing --- */

static void pace(const log_run *r, uint64_t i, int threads) {
    if (r->o->rate <= 0) return;
    uint64_t due = r->t0 + (uint64_t)((double)i * (double)threads * 1e9 / r->o->rate);
    uint64_t now = now_ns();
    if (due > now) {
        struct timespec ts = {(time_t)((due - now) / 1000000000ull),
                              (long)((due - now) % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

static void *log_pub_main(void *arg) {
    pub_thread *t = arg;
    log_run *r = t->run;
    const log_options *o = r->o;
    uint8_t *stamped = o->mode == LOG_LATENCY ? xmalloc(o->msg_size) : NULL;
    for (uint64_t i = 0; i < t->count && !atomic_load(&r->failed); i++) {
        const uint8_t *m = message_at(r, t->first + i);
        if (stamped) { /* latency: the send time in the first 8 bytes */
            pace(r, i, o->threads);
            memcpy(stamped, m, o->msg_size);
            uint64_t ts = now_ns();
            memcpy(stamped, &ts, sizeof ts);
            m = stamped;
        }
        t->rc = pier_publish(r->pub, m, o->msg_size);
        if (t->rc) {
            fprintf(stderr, "pier-bench: publish: %s: %s\n", pier_strerror(t->rc),
                    pier_last_error());
            atomic_store(&r->failed, 1);
            break;
        }
        atomic_fetch_add_explicit(&r->published, 1, memory_order_relaxed);
    }
    free(stamped);
    return NULL;
}

/* --- subscribing (e2e, latency) --- */

static void record_latencies(log_run *r, const pier_batch *b, uint64_t now) {
    for (size_t i = 0; i < b->count; i++) {
        const pier_msg *m = &b->msgs[i];
        if (m->kind != PIER_KIND_DATA || m->len < 8) continue;
        uint64_t ts;
        memcpy(&ts, m->data, sizeof ts);
        if (ts >= r->t0 && ts <= now) hist_record(&r->lat, now - ts);
    }
}

static void *log_sub_main(void *arg) {
    log_run *r = arg;
    while (atomic_load(&r->consumed) < r->msgs_total && !atomic_load(&r->failed)) {
        pier_batch b;
        int rc = pier_subscriber_next(r->sub, &b);
        if (rc) {
            fprintf(stderr, "pier-bench: subscriber: %s: %s\n", pier_strerror(rc),
                    pier_last_error());
            atomic_store(&r->failed, 1);
            break;
        }
        uint64_t now = now_ns();
        if (r->o->mode == LOG_LATENCY) record_latencies(r, &b, now);
        atomic_fetch_add(&r->consumed, b.count);
        r->t_consumed_last = now;
    }
    return NULL;
}

/* --- setup --- */

static int open_log_publisher(const log_options *o, log_run *r) {
    pier_publisher_options po;
    pier_publisher_options_init(&po);
    po.topic = o->topic;
    po.nodes = o->nodes;
    po.node_count = o->node_count;
    po.conns_per_node = o->conns;
    po.batch_bytes = o->batch_bytes;
    po.linger_us = o->linger_us;
    po.ack_level = o->ack_level;
    po.codec = o->codec;
    po.compress_min_bytes = o->threshold;
    po.adaptive = o->adaptive;
    po.zerocopy_min_bytes = o->zerocopy;
    int rc = pier_publisher_open(&r->pub, &po);
    if (rc)
        fprintf(stderr, "pier-bench: cannot open the publisher: %s: %s\n", pier_strerror(rc),
                pier_last_error());
    return rc;
}

static int open_log_subscriber(const log_options *o, log_run *r) {
    char host[256];
    const char *colon = strrchr(o->nodes[0], ':');
    if (!colon) die("-n takes host:port");
    snprintf(host, sizeof host, "%.*s", (int)(colon - o->nodes[0]), o->nodes[0]);
    int rc = pier_subscriber_open(&r->sub, host, atoi(colon + 1), o->topic, "$", 3, NULL);
    if (!rc) rc = pier_subscriber_set_timeout(r->sub, 30000);
    if (rc)
        fprintf(stderr, "pier-bench: cannot subscribe: %s: %s\n", pier_strerror(rc),
                pier_last_error());
    return rc;
}

/* --- progress and output --- */

static void progress_bar(const log_run *r, uint64_t done) {
    double frac = r->msgs_total ? (double)done / (double)r->msgs_total : 1;
    double secs = (double)(now_ns() - r->t0) / 1e9;
    double mib = (double)done * (double)r->o->msg_size / 1048576.0;
    char bar[41];
    int fill = (int)(frac * 40);
    for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '-';
    bar[40] = 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %8.1f MiB/s  %6.1f s", bar, frac * 100,
            secs > 0 ? mib / secs : 0, secs);
}

/* Wait for the publishing threads (and the subscriber), drawing the bar. */
static void watch(log_run *r, bool with_sub) {
    for (;;) {
        uint64_t done = with_sub ? atomic_load(&r->consumed) : atomic_load(&r->published);
        if (!r->o->quiet && !r->o->json) progress_bar(r, done);
        if (done >= r->msgs_total || atomic_load(&r->failed)) break;
        usleep(200000);
    }
    if (!r->o->quiet && !r->o->json) fputc('\n', stderr);
}

static const char *mode_name(enum log_mode m) {
    return m == LOG_PUBLISH ? "publish" : m == LOG_E2E ? "e2e" : "latency";
}

static void print_conn_table(const pier_conn_stats *st, int n, double secs) {
    printf("  %-22s %8s %10s %9s %9s %9s %6s\n", "connection", "batches", "MiB", "MB/s",
           "send s", "comp s", "ratio");
    for (int i = 0; i < n; i++)
        printf("  %-22s %8llu %10.1f %9.1f %9.3f %9.3f %6.3f\n", st[i].node,
               (unsigned long long)st[i].batches, (double)st[i].wire_bytes / 1048576.0,
               secs > 0 ? (double)st[i].wire_bytes / secs / 1e6 : 0, st[i].send_ns / 1e9,
               st[i].compress_ns / 1e9, st[i].ratio);
}

static void print_conn_json(const pier_conn_stats *st, int n, double secs) {
    printf(",\"connections\":[");
    for (int i = 0; i < n; i++)
        printf("%s{\"node\":\"%s\",\"batches\":%llu,\"compressed_batches\":%llu,"
               "\"raw_bytes\":%llu,\"wire_bytes\":%llu,\"mb_per_sec\":%.1f,"
               "\"send_s\":%.4f,\"compress_s\":%.4f,\"ratio\":%.4f,\"reconnects\":%llu,"
               "\"zerocopy_sends\":%llu,\"zerocopy_copied\":%llu}",
               i ? "," : "", st[i].node, (unsigned long long)st[i].batches,
               (unsigned long long)st[i].compressed_batches,
               (unsigned long long)st[i].raw_bytes, (unsigned long long)st[i].wire_bytes,
               secs > 0 ? (double)st[i].wire_bytes / secs / 1e6 : 0, st[i].send_ns / 1e9,
               st[i].compress_ns / 1e9, st[i].ratio, (unsigned long long)st[i].reconnects,
               (unsigned long long)st[i].zerocopy_sends,
               (unsigned long long)st[i].zerocopy_copied);
    printf("]");
}

static void write_cdf(const char *path, const histogram *h) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "pier-bench: cannot write %s\n", path);
        return;
    }
    fprintf(f, "percentile,latency_us\n");
    static const double tail[] = {99.5, 99.9, 99.95, 99.99, 99.999, 100};
    for (int p = 0; p < 99; p++) fprintf(f, "%d,%.2f\n", p, hist_percentile(h, p) / 1e3);
    for (size_t i = 0; i < sizeof tail / sizeof *tail; i++)
        fprintf(f, "%g,%.2f\n", tail[i], hist_percentile(h, tail[i]) / 1e3);
    fclose(f);
}

static void print_log_summary(const log_run *r, double secs, const pier_conn_stats *st, int n) {
    const log_options *o = r->o;
    uint64_t msgs = r->msgs_total;
    double bytes = (double)msgs * (double)o->msg_size;
    double mibs = secs > 0 ? bytes / secs / 1048576.0 : 0;
    double gbs = secs > 0 ? bytes / secs / 1e9 : 0;
    double mps = secs > 0 ? (double)msgs / secs : 0;
    const histogram *h = &r->lat;
    if (o->json) {
        printf("{\"mode\":\"%s\",\"messages\":%llu,\"msg_bytes\":%zu,\"bytes\":%.0f,"
               "\"seconds\":%.3f,\"mib_per_sec\":%.1f,\"gb_per_sec\":%.3f,"
               "\"msgs_per_sec\":%.0f,\"ack\":%d,\"codec\":%d,\"failed\":%d",
               mode_name(o->mode), (unsigned long long)msgs, o->msg_size, bytes, secs, mibs, gbs,
               mps, o->ack_level, (int)o->codec, atomic_load(&r->failed));
        if (o->mode == LOG_LATENCY)
            printf(",\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f",
                   hist_percentile(h, 50) / 1e3, hist_percentile(h, 99) / 1e3,
                   hist_percentile(h, 99.9) / 1e3, h->max / 1e3);
        print_conn_json(st, n, secs);
        printf("}\n");
        return;
    }
    printf("log %s: %llu messages of %zu bytes in %.2f s\n", mode_name(o->mode),
           (unsigned long long)msgs, o->msg_size, secs);
    printf("  throughput  %.1f MiB/s  (%.3f GB/s)  %.0f msgs/s\n", mibs, gbs, mps);
    if (o->mode == LOG_LATENCY)
        printf("  latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (%llu samples)\n",
               hist_percentile(h, 50) / 1e3, hist_percentile(h, 90) / 1e3,
               hist_percentile(h, 99) / 1e3, hist_percentile(h, 99.9) / 1e3, h->max / 1e3,
               (unsigned long long)h->count);
    print_conn_table(st, n, secs);
}

/* --- run --- */

static void start_publishers(log_run *r, pub_thread *ts) {
    int n = r->o->threads;
    for (int i = 0; i < n; i++) {
        uint64_t share = r->msgs_total / (uint64_t)n;
        ts[i] = (pub_thread){.run = r, .first = share * (uint64_t)i,
                             .count = share + (i == n - 1 ? r->msgs_total % (uint64_t)n : 0)};
        pthread_create(&ts[i].tid, NULL, log_pub_main, &ts[i]);
    }
}

static int run_log(int argc, char **argv) {
    log_options o;
    log_parse(argc, argv, &o);
    log_run r = {.o = &o, .msgs_total = o.total_bytes / o.msg_size};
    hist_init(&r.lat);
    r.pool = xmalloc(POOL_BYTES);
    fill_pool(r.pool, o.pattern);
    bool with_sub = o.mode != LOG_PUBLISH;
    if (open_log_publisher(&o, &r) || (with_sub && open_log_subscriber(&o, &r))) return 1;
    pthread_t sub_tid;
    pub_thread *ts = calloc((size_t)o.threads, sizeof *ts);
    if (!ts) die("out of memory");
    r.t0 = now_ns();
    if (with_sub) pthread_create(&sub_tid, NULL, log_sub_main, &r);
    start_publishers(&r, ts);
    watch(&r, false);
    for (int i = 0; i < o.threads; i++) pthread_join(ts[i].tid, NULL);
    int rc = pier_flush(r.pub); /* every batch acknowledged */
    if (rc) {
        fprintf(stderr, "pier-bench: flush: %s: %s\n", pier_strerror(rc), pier_last_error());
        atomic_store(&r.failed, 1);
    }
    uint64_t t_end = now_ns();
    if (with_sub) {
        watch(&r, true);
        pthread_join(sub_tid, NULL);
        t_end = r.t_consumed_last;
    }
    pier_conn_stats st[64];
    int n = 0;
    pier_publisher_stats(r.pub, st, 64, &n);
    if (pier_publisher_close(r.pub)) atomic_store(&r.failed, 1);
    if (n > 64) n = 64;
    double secs = (double)(t_end - r.t0) / 1e9;
    print_log_summary(&r, secs, st, n);
    if (o.cdf_path && o.mode == LOG_LATENCY) write_cdf(o.cdf_path, &r.lat);
    pier_subscriber_close(r.sub);
    free(ts);
    free(r.pool);
    return atomic_load(&r.failed) ? 1 : 0;
}

/* ================================================================ cluster
 *
 *   pier-bench cluster [--nodes h:p,...] [--clients n] [--threads n] [--pendings n]
 *                      [--reqs n | --duration s] [--weak-ratio f] [--writes f]
 *                      [--weak-writes f] [--keyspace n] [--zipf s] [--conflicts pct]
 *                      [--value-size n] [--server-pids p,...] [--no-consistency]
 *                      [--direct] [--json] [-q]
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

#define CL_MAX_NODES 16
#define CL_MAX_PIDS 64
#define CL_HOT_KEY 999999999999ULL

typedef struct cl_node {
    char host[256];
    int port;
} cl_node;

typedef struct cl_options {
    cl_node nodes[CL_MAX_NODES];
    int node_count;
    int clients, threads, pendings;
    long long reqs;            /* per thread; 0 with --duration */
    double duration_s;
    double weak_ratio, writes, weak_writes;
    long long keyspace;
    double zipf_s;             /* 0 = uniform */
    double conflicts;          /* percent of ops on the hot key */
    int value_size;
    int server_pids[CL_MAX_PIDS];
    int npids;
    int json, quiet, no_consistency;
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

static double unit(uint64_t *rng) { return (double)(xorshift(rng) >> 11) * 0x1.0p-53; }

/* A rank 0..n-1, 0 the most popular. */
static long long zipf_sample(const zipf_gen *z, uint64_t *rng) {
    for (;;) {
        double u = z->h_n + unit(rng) * (z->h_x1 - z->h_n);
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
    long long left;            /* ops still to issue (--reqs) */
    int inflight;
    cl_class cls[2];
    cl_conn **dirty;
    int ndirty;
    _Atomic uint64_t done;     /* replies (read by the progress line) */
    _Atomic int failed;
    char first_err[160];
    pier_cluster *pc;          /* --direct: this session's client */
} cl_worker;

static _Atomic int cl_stop;    /* --duration elapsed, or a thread failed */

static void cl_parse_nodes(cl_options *o, const char *list) {
    o->node_count = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ", ");
        if (n > 0) {
            if (o->node_count == CL_MAX_NODES) die("at most 16 nodes");
            char item[sizeof o->nodes[0].host];
            if (n >= sizeof item) die("--nodes: address too long");
            memcpy(item, p, n);
            item[n] = 0;
            char *colon = strrchr(item, ':');
            if (!colon || colon == item || atoi(colon + 1) < 1) die("--nodes takes host:port,...");
            cl_node *nd = &o->nodes[o->node_count++];
            *colon = 0;
            snprintf(nd->host, sizeof nd->host, "%s", item);
            nd->port = atoi(colon + 1);
        }
        p += n;
        if (*p) p++;
    }
    if (o->node_count == 0) die("--nodes: no address");
}

static void cl_parse_pids(cl_options *o, const char *list) {
    const char *p = list;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1) die("--server-pids takes pid,pid,...");
        if (o->npids == CL_MAX_PIDS) die("at most 64 server pids");
        o->server_pids[o->npids++] = (int)v;
        p = end;
        if (*p == ',') p++;
    }
}

static void cl_usage(void) {
    printf("usage: pier-bench cluster [options]\n"
           "  --nodes h:p,...     nodes; client i binds to node i mod count\n"
           "                      (127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003)\n"
           "  --clients n         client sessions, 2 connections each (6)\n"
           "  --threads n         event-loop threads; client i runs on thread i mod n (2)\n"
           "  --pendings n        ops in flight per thread, over its clients (10)\n"
           "  --reqs n            ops per thread (10000)\n"
           "  --duration s        run for s seconds instead of --reqs\n"
           "  --weak-ratio f      fraction of ops that are weak, 0..1 (0.5)\n"
           "  --writes f          fraction of strong ops that are SETs (0.5)\n"
           "  --weak-writes f     fraction of weak ops that are SETs (0.5)\n"
           "  --keyspace n        keys key:000000000000..n-1 (10000)\n"
           "  --zipf s            Zipf exponent over the keyspace, 0 = uniform (0)\n"
           "  --conflicts pct     percent of ops on the hot key key:999999999999 (0)\n"
           "  --value-size n      SET value bytes (100)\n"
           "  --server-pids p,... report the servers' total CPU microseconds per op\n"
           "  --no-consistency    skip PIER.CONSISTENCY (servers without it, e.g. redis)\n"
           "  --direct            strong ops through libpier's CURP client (PIER.EXEC to\n"
           "                      the leader + PIER.RECORD to the witnesses, 1 RTT when\n"
           "                      they accept), weak ops on its home-node session; one\n"
           "                      thread per client session, 1 op in flight each\n"
           "                      (--threads, --pendings ignored; --reqs is per session);\n"
           "                      fast/slow counts from the client's own stats\n"
           "  --json              one JSON object\n"
           "  -q                  no progress lines\n");
}

static double cl_frac(const char *v, const char *name) {
    char *end;
    double f = strtod(v, &end);
    if (end == v || *end || f < 0 || f > 1) {
        fprintf(stderr, "pier-bench: %s takes a fraction 0..1\n", name);
        exit(2);
    }
    return f;
}

static void cl_parse(int argc, char **argv, cl_options *o) {
    *o = (cl_options){.clients = 6, .threads = 2, .pendings = 10, .reqs = 10000,
                      .weak_ratio = 0.5, .writes = 0.5, .weak_writes = 0.5,
                      .keyspace = 10000, .value_size = 100};
    cl_parse_nodes(o, "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003");
    static const struct option longopts[] = {
        {"nodes", required_argument, 0, 'N'},       {"clients", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 'T'},     {"pendings", required_argument, 0, 'P'},
        {"reqs", required_argument, 0, 'n'},        {"duration", required_argument, 0, 'D'},
        {"weak-ratio", required_argument, 0, 'w'},  {"writes", required_argument, 0, 'W'},
        {"weak-writes", required_argument, 0, 'x'}, {"keyspace", required_argument, 0, 'r'},
        {"zipf", required_argument, 0, 'z'},        {"conflicts", required_argument, 0, 'C'},
        {"value-size", required_argument, 0, 'd'},  {"server-pids", required_argument, 0, 'S'},
        {"no-consistency", no_argument, 0, 'X'},    {"json", no_argument, 0, 'J'},
        {"direct", no_argument, 0, 'R'},            {"help", no_argument, 0, 'H'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "q", longopts, NULL)) != -1) {
        switch (ch) {
        case 'N': cl_parse_nodes(o, optarg); break;
        case 'c': o->clients = atoi(optarg); break;
        case 'T': o->threads = atoi(optarg); break;
        case 'P': o->pendings = atoi(optarg); break;
        case 'n': o->reqs = atoll(optarg); o->duration_s = 0; break;
        case 'D': o->duration_s = atof(optarg); o->reqs = 0; break;
        case 'w': o->weak_ratio = cl_frac(optarg, "--weak-ratio"); break;
        case 'W': o->writes = cl_frac(optarg, "--writes"); break;
        case 'x': o->weak_writes = cl_frac(optarg, "--weak-writes"); break;
        case 'r': o->keyspace = atoll(optarg); break;
        case 'z': o->zipf_s = atof(optarg); break;
        case 'C': o->conflicts = atof(optarg); break;
        case 'd': o->value_size = atoi(optarg); break;
        case 'S': cl_parse_pids(o, optarg); break;
        case 'X': o->no_consistency = 1; break;
        case 'R': o->direct = 1; break;
        case 'J': o->json = 1; break;
        case 'q': o->quiet = 1; break;
        case 'H': cl_usage(); exit(0);
        default: cl_usage(); exit(2);
        }
    }
    if (optind < argc) die("unexpected argument (see pier-bench cluster --help)");
    if (o->clients < 1 || o->threads < 1 || o->pendings < 1 || o->keyspace < 1 ||
        o->keyspace >= (long long)CL_HOT_KEY || o->zipf_s < 0 || o->conflicts < 0 ||
        o->conflicts > 100 || o->value_size < 0 || (o->reqs <= 0 && o->duration_s <= 0))
        die("bad option value (see pier-bench cluster --help)");
    if (o->direct && o->no_consistency) die("--direct needs a pier cluster (no --no-consistency)");
    if (o->direct) { /* one blocking session per thread, one op in flight */
        o->threads = o->clients;
        o->pendings = 1;
    }
    if (o->threads > o->clients) o->threads = o->clients;
}

/* --- blocking setup I/O (PIER.CONSISTENCY, INFO) --- */

/* A connected TCP socket to node, or -1 (errno set). */
static int cl_connect(const cl_node *nd) {
    struct addrinfo hints = {0}, *res;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", nd->port);
    if (getaddrinfo(nd->host, port, &hints, &res) != 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        int e = errno;
        close(fd);
        fd = -1;
        errno = e;
    }
    freeaddrinfo(res);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {10, 0}; /* setup I/O only: the run is non-blocking */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* Send one command and read its whole reply, NUL-terminated (malloc'd;
 * the caller frees), or NULL on an I/O error or timeout. */
static char *cl_command(int fd, const char *req, size_t len) {
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, req + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return NULL;
        off += (size_t)w;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        int is_err = 0;
        long r = parse_reply(buf, buf + n, &is_err);
        if (r < 0) break;
        if (r > 0) {
            buf[r] = 0;
            return buf;
        }
        if (cap - n < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) die("out of memory");
        }
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        n += (size_t)got;
    }
    free(buf);
    return NULL;
}

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
    int fd = cl_connect(nd);
    if (fd < 0) return;
    static const char req[] = "*2\r\n$4\r\nINFO\r\n$7\r\ncluster\r\n";
    char *r = cl_command(fd, req, sizeof req - 1);
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
    const char *req = weak ? "*2\r\n$16\r\nPIER.CONSISTENCY\r\n$4\r\nWEAK\r\n"
                           : "*2\r\n$16\r\nPIER.CONSISTENCY\r\n$6\r\nSTRONG\r\n";
    char *r = cl_command(fd, req, strlen(req));
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
    c->fd = cl_connect(nd);
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
    c->wcap = max_request_len(NULL) * 16;
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
        w->left = o->reqs;
        for (int k = 0; k < 2; k++) hist_init(&w->cls[k].hist);
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
    if (o->conflicts > 0 && unit(rng) * 100 < o->conflicts) return (long long)CL_HOT_KEY;
    if (o->zipf_s > 0) return zipf_sample(&zipf, rng);
    return (long long)(xorshift(rng) % (uint64_t)o->keyspace);
}

static int cl_can_issue(const cl_worker *w) {
    return w->inflight < w->o->pendings && (w->o->reqs == 0 || w->left > 0) &&
           !atomic_load_explicit(&cl_stop, memory_order_relaxed);
}

/* Queue one op on the next client, round-robin; sent by cl_flush. */
static void cl_issue(cl_worker *w, uint64_t now) {
    const cl_options *o = w->o;
    cl_client *cl = &w->clients[w->next];
    w->next = (w->next + 1) % w->nclients;
    int weak = unit(&cl->rng) < o->weak_ratio;
    int write = unit(&cl->rng) < (weak ? o->weak_writes : o->writes);
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
        c->wbuf = realloc(c->wbuf, c->wcap);
        if (!c->wbuf) die("out of memory");
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

/* Read and account the replies that arrived; each frees a slot. */
static void cl_on_readable(cl_worker *w, cl_conn *c) {
    if (c->rcap - c->rlen < 4096) {
        c->rcap *= 2;
        c->rbuf = realloc(c->rbuf, c->rcap);
        if (!c->rbuf) die("out of memory");
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
    cl_class *k = &w->cls[c->weak];
    size_t off = 0;
    for (;;) {
        int is_err = 0;
        long len = parse_reply(c->rbuf + off, c->rbuf + c->rlen, &is_err);
        if (len < 0 || (len > 0 && c->qcount == 0)) {
            cl_fail(w, c, len < 0 ? "malformed reply" : "reply to no request");
            return;
        }
        if (len == 0) break;
        cl_pending p = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qcount--;
        if (is_err) {
            cl_error_reply(w, k, c->rbuf + off, len);
        } else {
            hist_record(&k->hist, now - p.t);
            if (p.write) k->writes++;
            else k->reads++;
        }
        off += (size_t)len;
        w->inflight--;
        atomic_store_explicit(&w->done, atomic_load_explicit(&w->done, memory_order_relaxed) + 1,
                              memory_order_relaxed);
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

/* --nodes as "host:port,..." for pier_cluster_connect (malloc'd). */
static char *cl_nodes_list(const cl_options *o) {
    size_t cap = (size_t)o->node_count * (sizeof o->nodes[0].host + 8), n = 0;
    char *list = xmalloc(cap);
    list[0] = 0;
    for (int i = 0; i < o->node_count; i++)
        n += (size_t)snprintf(list + n, cap - n, "%s%s:%d", i ? "," : "", o->nodes[i].host,
                              o->nodes[i].port);
    return list;
}

/* Session g (one per thread) gets its client, home node g mod nodes as in
 * the RESP mode. */
static void cl_setup_direct(const cl_options *o, cl_worker *ws) {
    char *list = cl_nodes_list(o);
    for (int g = 0; g < o->clients; g++) {
        cl_worker *w = &ws[g];
        w->o = o;
        w->left = o->reqs;
        w->epfd = -1;
        for (int k = 0; k < 2; k++) hist_init(&w->cls[k].hist);
        w->nclients = 1;
        w->clients = calloc(1, sizeof *w->clients);
        if (!w->clients) die("out of memory");
        w->clients->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(g + 1) ^ 0xD1B54A32D192ED03ull;
        int rc = pier_cluster_connect(&w->pc, list, g % o->node_count, NULL);
        if (rc) {
            fprintf(stderr, "pier-bench: session %d: %s (%s)\n", g, pier_strerror(rc),
                    pier_last_error());
            exit(1);
        }
    }
    free(list);
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

static void cl_direct_error(cl_worker *w, cl_class *k, int rc) {
    k->errors++;
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
    while (!atomic_load_explicit(&cl_stop, memory_order_relaxed) && (o->reqs == 0 || w->left > 0)) {
        int weak = unit(&cl->rng) < o->weak_ratio;
        int write = unit(&cl->rng) < (weak ? o->weak_writes : o->writes);
        snprintf(key, sizeof key, "key:%012lld", cl_key(o, &cl->rng));
        cl_class *k = &w->cls[weak];
        uint64_t t0 = now_ns();
        int rc = cl_direct_op(w, weak, write, key);
        if (rc == PIER_OK) {
            hist_record(&k->hist, now_ns() - t0);
            if (write) k->writes++;
            else k->reads++;
        } else {
            cl_direct_error(w, k, rc);
        }
        w->left--;
        atomic_store_explicit(&w->done, atomic_load_explicit(&w->done, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    return NULL;
}

/* --- output --- */

typedef struct cl_result {
    cl_class cls[2];
    double secs;
    long long srv_cpu_us, cli_cpu_us; /* srv -1: not measured */
    cl_info before[CL_MAX_NODES], after[CL_MAX_NODES];
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
    printf("\"%s\":{\"ops\":%llu,\"reads\":%llu,\"writes\":%llu,\"errors\":%llu,"
           "\"clusterdown\":%llu,\"avg_us\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"p999_us\":%.1f,\"max_us\":%.1f}",
           name, (unsigned long long)h->count, (unsigned long long)k->reads,
           (unsigned long long)k->writes, (unsigned long long)k->errors,
           (unsigned long long)k->clusterdown, hist_mean(h) / 1e3,
           hist_percentile(h, 50) / 1e3, hist_percentile(h, 99) / 1e3,
           hist_percentile(h, 99.9) / 1e3, h->max / 1e3);
}

static void cl_print_json(const cl_options *o, const cl_result *r, uint64_t ops, uint64_t errs) {
    printf("{\"mode\":\"cluster\",\"nodes\":[");
    for (int i = 0; i < o->node_count; i++)
        printf("%s\"%s:%d\"", i ? "," : "", o->nodes[i].host, o->nodes[i].port);
    printf("],\"clients\":%d,\"threads\":%d,\"pendings\":%d,\"weak_ratio\":%.4f,"
           "\"writes\":%.4f,\"weak_writes\":%.4f,\"keyspace\":%lld,\"zipf\":%.4f,"
           "\"conflicts\":%.2f,\"value_size\":%d,\"consistency\":%s,\"direct\":%s,",
           o->clients, o->threads, o->pendings, o->weak_ratio, o->writes, o->weak_writes,
           o->keyspace, o->zipf_s, o->conflicts, o->value_size,
           o->no_consistency ? "false" : "true", o->direct ? "true" : "false");
    printf("\"ops\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"ops_per_sec\":%.1f,",
           (unsigned long long)ops, (unsigned long long)errs, r->secs,
           r->secs > 0 ? (double)ops / r->secs : 0);
    cl_class_json("strong", &r->cls[0]);
    printf(",");
    cl_class_json("weak", &r->cls[1]);
    if (r->fast >= 0 && r->fast + r->slow > 0)
        printf(",\"fast_path\":%lld,\"slow_path\":%lld,\"fast_path_share\":%.4f", r->fast,
               r->slow, (double)r->fast / (double)(r->fast + r->slow));
    else if (r->fast >= 0)
        printf(",\"fast_path\":0,\"slow_path\":0,\"fast_path_share\":null");
    else
        printf(",\"fast_path\":null,\"slow_path\":null,\"fast_path_share\":null");
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
    printf("]");
    if (r->srv_cpu_us >= 0)
        printf(",\"server_cpu_us_per_op\":%.4f", ops ? (double)r->srv_cpu_us / (double)ops : 0);
    else
        printf(",\"server_cpu_us_per_op\":null");
    printf(",\"client_cpu_us_per_op\":%.4f,\"first_error\":\"",
           ops ? (double)r->cli_cpu_us / (double)ops : 0);
    for (const char *p = r->first_err; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        putchar((unsigned char)*p < 32 ? '?' : *p);
    }
    printf("\",\"failed\":%d}\n", r->failed);
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

static void cl_print(const cl_options *o, const cl_result *r) {
    uint64_t ops = r->cls[0].hist.count + r->cls[1].hist.count;
    uint64_t errs = r->cls[0].errors + r->cls[1].errors;
    if (o->json) {
        cl_print_json(o, r, ops, errs);
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

static uint64_t cl_total_done(cl_worker *ws, int n) {
    uint64_t s = 0;
    for (int i = 0; i < n; i++) s += atomic_load_explicit(&ws[i].done, memory_order_relaxed);
    return s;
}

static int run_cluster(int argc, char **argv) {
    cl_options o;
    cl_parse(argc, argv, &o);
    build_templates(o.value_size);
    if (o.zipf_s > 0) zipf_init(&zipf, o.keyspace, o.zipf_s);
    cl_worker *ws = calloc((size_t)o.threads, sizeof *ws);
    cl_result *r = calloc(1, sizeof *r);
    if (!ws || !r) die("out of memory");
    cl_value = xmalloc((size_t)o.value_size + 1);
    memset(cl_value, 'x', (size_t)o.value_size);
    if (o.direct) cl_setup_direct(&o, ws);
    else cl_setup(&o, ws);
    for (int i = 0; i < o.node_count; i++) cl_read_info(&o.nodes[i], &r->before[i]);

    long long srv0 = cl_servers_cpu(&o), cli0 = self_cpu_us();
    uint64_t t0 = now_ns();
    for (int t = 0; t < o.threads; t++)
        pthread_create(&ws[t].tid, NULL, o.direct ? cl_direct_main : cl_worker_main, &ws[t]);
    uint64_t total = (uint64_t)o.reqs * (uint64_t)o.threads, last = 0;
    for (int sec = 1;; sec++) {
        uint64_t target = t0 + (uint64_t)sec * 1000000000ull;
        int finished = 0;
        while (now_ns() < target && !finished && !atomic_load(&cl_stop)) {
            finished = o.reqs && cl_total_done(ws, o.threads) >= total;
            if (o.duration_s > 0 && (double)(now_ns() - t0) / 1e9 >= o.duration_s)
                atomic_store(&cl_stop, 1);
            usleep(10000);
        }
        uint64_t d = cl_total_done(ws, o.threads);
        if (!o.quiet && !o.json && now_ns() >= target)
            fprintf(stderr, "[%3ds] %llu ops/s, %llu done\n", sec,
                    (unsigned long long)(d - last), (unsigned long long)d);
        last = d;
        if (finished || atomic_load(&cl_stop)) break;
    }
    for (int t = 0; t < o.threads; t++) pthread_join(ws[t].tid, NULL);
    r->secs = (double)(now_ns() - t0) / 1e9;
    long long srv1 = cl_servers_cpu(&o), cli1 = self_cpu_us();
    r->srv_cpu_us = srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1;
    r->cli_cpu_us = cli1 - cli0;
    for (int i = 0; i < o.node_count; i++) cl_read_info(&o.nodes[i], &r->after[i]);
    cl_fast_path(&o, r);

    for (int k = 0; k < 2; k++) hist_init(&r->cls[k].hist);
    for (int t = 0; t < o.threads; t++) {
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
    cl_print(&o, r);
    cl_teardown(&o, ws);
    int rc = r->failed ? 1 : 0;
    free(ws);
    free(r);
    free(tpl.set);
    free(tpl.get);
    free(cl_value);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "kv")) return run_kv(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "log")) return run_log(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "cluster")) return run_cluster(argc - 1, argv + 1);
    fprintf(stderr, "usage: pier-bench kv|log|cluster [options]   (pier-bench MODE --help)\n"
                    "modes to come: dispatch\n");
    return 2;
}
