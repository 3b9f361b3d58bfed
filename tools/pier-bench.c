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
static char *value_buf;

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

static size_t append(char *dst, const char *src, size_t n) {
    memcpy(dst, src, n);
    return n;
}

/* One RESP command: GET key:000000000123 or SET key:... <value>. */
static size_t build_request(const options *o, conn *c, char *dst) {
    char key[32];
    unsigned long long k = xorshift(&c->rng) % (unsigned long long)o->keyspace;
    int klen = snprintf(key, sizeof key, "key:%012llu", k);
    int is_get = o->workload == WL_GET ||
                 (o->workload == WL_MIXED &&
                  (double)(xorshift(&c->rng) % 1000000) / 1e6 < o->read_ratio);
    size_t n = 0;
    char hdr[64];
    if (is_get) {
        n += append(dst + n, "*2\r\n$3\r\nGET\r\n", 13);
    } else {
        n += append(dst + n, "*3\r\n$3\r\nSET\r\n", 13);
    }
    int h = snprintf(hdr, sizeof hdr, "$%d\r\n", klen);
    n += append(dst + n, hdr, (size_t)h);
    n += append(dst + n, key, (size_t)klen);
    n += append(dst + n, "\r\n", 2);
    if (!is_get) {
        h = snprintf(hdr, sizeof hdr, "$%d\r\n", o->value_size);
        n += append(dst + n, hdr, (size_t)h);
        n += append(dst + n, value_buf, (size_t)o->value_size);
        n += append(dst + n, "\r\n", 2);
    }
    return n;
}

static size_t max_request_len(const options *o) { return 128 + (size_t)o->value_size; }

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

static const char *find_crlf(const char *p, const char *end) {
    for (const char *q = p; q + 1 < end; q++)
        if (q[0] == '\r' && q[1] == '\n') return q;
    return NULL;
}

static long parse_reply(const char *p, const char *end, int *is_err) {
    if (p >= end) return 0;
    const char *crlf = find_crlf(p + 1, end);
    if (!crlf) return 0;
    long head = (long)(crlf + 2 - p);
    switch (p[0]) {
    case '+': case ':': case ',': case '#': case '_': case '(':
        return head;
    case '-':
        *is_err = 1;
        return head;
    case '$': case '=': case '!': {
        long len = strtol(p + 1, NULL, 10);
        if (len < 0) return head;
        if (end - (crlf + 2) < len + 2) return 0;
        if (p[0] == '!') *is_err = 1;
        return head + len + 2;
    }
    case '*': case '~': case '%': case '>': {
        long n = strtol(p + 1, NULL, 10);
        if (p[0] == '%') n *= 2;
        long total = head;
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
        o->read_ratio < 0 || o->read_ratio > 1)
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
    value_buf = xmalloc((size_t)o.value_size + 1);
    memset(value_buf, 'x', (size_t)o.value_size);
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
    free(value_buf);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "kv")) return run_kv(argc - 1, argv + 1);
    fprintf(stderr, "usage: pier-bench kv [options]   (pier-bench kv --help)\n"
                    "modes to come: cluster, log, dispatch\n");
    return 2;
}
