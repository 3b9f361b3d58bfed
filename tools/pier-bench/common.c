/* common.c - pier-bench's shared helpers (bench.h). */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "lib/util.h"

templates tpl;

uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void vmessage(const char *fmt, va_list ap) {
    fprintf(stderr, "pier-bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    exit(2);
}

void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    exit(1);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fail("out of memory");
    return p;
}

void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) fail("out of memory");
    return p;
}

uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

double unit_rand(uint64_t *rng) { return (double)(xorshift(rng) >> 11) * 0x1.0p-53; }

/* --- CPU accounting --- */

long long proc_cpu_us(int pid) {
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

long long self_cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
           (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

/* --- interval measurements --- */

void ival_init(ival *v) {
    pthread_mutex_init(&v->lock, NULL);
    hist_init(&v->h);
    v->errors = 0;
}

void ival_destroy(ival *v) { pthread_mutex_destroy(&v->lock); }

void ival_take(ival *v, histogram *acc, uint64_t *errors) {
    pthread_mutex_lock(&v->lock);
    hist_merge(acc, &v->h);
    *errors += v->errors;
    hist_init(&v->h);
    v->errors = 0;
    pthread_mutex_unlock(&v->lock);
}

/* --- request templates --- */

void build_templates(int value_size) {
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

void free_templates(void) {
    free(tpl.set);
    free(tpl.get);
    tpl = (templates){0};
}

void write_digits(char *dst, unsigned long long k) {
    for (int i = KEY_DIGITS - 1; i >= 0; i--, k /= 10) dst[i] = (char)('0' + k % 10);
}

size_t max_request_len(void) { return tpl.set_len > tpl.get_len ? tpl.set_len : tpl.get_len; }

/* --- reply parsing --- */

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

long parse_reply(const char *p, const char *end, int *is_err) {
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

/* --- sockets --- */

int tcp_connect(const char *host, int port) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    char pstr[16];
    snprintf(pstr, sizeof pstr, "%d", port);
    if (getaddrinfo(host, pstr, &hints, &res) != 0) {
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
    return fd;
}

static int write_all(int fd, const char *p, size_t len) {
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    return 0;
}

char *resp_command(int fd, int argc, const char *const *argv) {
    struct timeval tv = {10, 0}; /* setup and teardown I/O only */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t cap = 32, n;
    for (int i = 0; i < argc; i++) cap += strlen(argv[i]) + 32;
    char *req = xmalloc(cap);
    n = (size_t)snprintf(req, cap, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        n += (size_t)snprintf(req + n, cap - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    int rc = write_all(fd, req, n);
    free(req);
    if (rc < 0) return NULL;
    size_t rcap = 4096;
    char *buf = xmalloc(rcap);
    n = 0;
    for (;;) {
        int is_err = 0;
        long r = parse_reply(buf, buf + n, &is_err);
        if (r < 0) break;
        if (r > 0) {
            buf[r] = 0;
            return buf;
        }
        if (rcap - n < 1024) buf = xrealloc(buf, rcap *= 2);
        ssize_t got = read(fd, buf + n, rcap - n - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        n += (size_t)got;
    }
    free(buf);
    return NULL;
}

int split_hostport(const char *s, char *host, size_t cap, int *port) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= cap) return -1;
    long long p;
    if (!util_parse_ll(colon + 1, strlen(colon + 1), &p) || p < 1 || p > 65535) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    *port = (int)p;
    return 0;
}

int parse_nodes(const char *opt, const char *list, bnode *out) {
    int n = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ", ");
        if (len > 0) {
            if (n == MAX_NODES) die("%s: at most %d nodes", opt, MAX_NODES);
            char item[sizeof out->addr];
            if (len >= sizeof item) die("%s: address too long", opt);
            memcpy(item, p, len);
            item[len] = 0;
            bnode *nd = &out[n++];
            if (split_hostport(item, nd->host, sizeof nd->host, &nd->port) < 0)
                die("%s takes host:port[,host:port...], not '%s'", opt, item);
            snprintf(nd->addr, sizeof nd->addr, "%s:%d", nd->host, nd->port);
        }
        p += len;
        if (*p) p++;
    }
    if (n == 0) die("%s: no address", opt);
    return n;
}

void nodes_string(const bnode *nodes, int n, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? "," : "", nodes[i].addr);
}

/* --- option values --- */

long long opt_int(const char *name, const char *v, long long min, long long max) {
    long long x;
    if (!util_parse_ll(v, strlen(v), &x) || x < min || x > max)
        die("%s takes a whole number from %lld to %lld, not '%s'", name, min, max, v);
    return x;
}

double opt_num(const char *name, const char *v, double min, double max) {
    double x;
    if (!util_parse_double(v, strlen(v), &x) || x < min || x > max)
        die("%s takes a number from %g to %g, not '%s'", name, min, max, v);
    return x;
}

long long opt_size(const char *name, const char *v, long long min, long long max) {
    long long x;
    if (!util_parse_memory(v, strlen(v), &x))
        die("%s takes a size: bytes, or with a unit as the server's options (1kb = 1024, "
            "1k = 1000, mb, gb), not '%s'", name, v);
    if (x < min || x > max) die("%s must be from %lld to %lld bytes, not %s", name, min, max, v);
    return x;
}

int opt_enum(const char *name, const char *v, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    char list[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    die("%s takes one of %s, not '%s'", name, list, v);
}

/* --- the common options --- */

int common_option(bench_common *c, int ch, const char *arg, void (*usage)(void)) {
    switch (ch) {
    case OPT_JSON: c->json = 1; return 1;
    case OPT_CSV: c->csv = 1; return 1;
    case 'q': c->quiet = 1; return 1;
    case OPT_INTERVAL: c->interval_s = opt_num("--interval", arg, 0.01, 86400); return 1;
    case OPT_HELP: usage(); exit(0);
    default: return 0;
    }
}

void common_check(const bench_common *c) {
    if (c->json && c->csv) die("--json and --csv: choose one");
}
