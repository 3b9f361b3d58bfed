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
 * With --server-pid the server's CPU time (utime + stime from
 * /proc/PID/stat) over the measured window is reported per request: the
 * figure that compares servers on a machine where the client itself needs
 * a core. */
#include <errno.h>
#include <getopt.h>
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

static void build_templates(const options *o) {
    char head[64];
    int h = snprintf(head, sizeof head, "*3\r\n$3\r\nSET\r\n$%d\r\nkey:", 4 + KEY_DIGITS);
    char vhdr[32];
    int vh = snprintf(vhdr, sizeof vhdr, "\r\n$%d\r\n", o->value_size);
    tpl.set_len = (size_t)h + KEY_DIGITS + (size_t)vh + (size_t)o->value_size + 2;
    tpl.set = xmalloc(tpl.set_len);
    memcpy(tpl.set, head, (size_t)h);
    tpl.set_key_at = (size_t)h;
    memset(tpl.set + h, '0', KEY_DIGITS);
    memcpy(tpl.set + h + KEY_DIGITS, vhdr, (size_t)vh);
    memset(tpl.set + h + KEY_DIGITS + vh, 'x', (size_t)o->value_size);
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
    build_templates(&o);
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

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "kv")) return run_kv(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "log")) return run_log(argc - 1, argv + 1);
    fprintf(stderr, "usage: pier-bench kv|log [options]   (pier-bench kv --help, log --help)\n"
                    "modes to come: cluster, dispatch\n");
    return 2;
}
