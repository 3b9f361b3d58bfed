/* etcd-bench - closed-loop load generator for etcd's v3 KV API over gRPC.
 *
 *   etcd-bench --endpoints host:port[,host:port...] [--clients N] [--pendings P]
 *              [--threads T] [--reqs N | --duration S] [--writes F]
 *              [--weak-ratio F] [--keyspace K] [--zipf S] [--value-size B]
 *              [--timeout S] [--prefill] [--json] [-q]
 *
 * Why this exists: Debian ships etcd (etcd-server, etcd-client) but not
 * etcd's own benchmark tool (go.etcd.io/etcd/tools/benchmark is in no
 * Debian package, golang-etcd-server-dev included), and no Go toolchain is
 * installed by default. This client speaks etcd's native protocol, gRPC
 * over HTTP/2 (cleartext, prior knowledge) via libnghttp2 (Debian
 * libnghttp2-dev), with the protobuf messages encoded by hand: the same
 * wire path etcd's own clients and benchmark use, not the HTTP/1.1 JSON
 * gateway (which in etcd 3.4 re-dials the gRPC server internally and adds
 * JSON and base64 work that a real etcd client never pays).
 *
 * Model, the same as pier-bench's: N client connections spread round robin
 * over the endpoints, each with P requests in flight (P HTTP/2 streams),
 * each completed request replaced at once by the next, on T threads with
 * one epoll loop each (never a thread per connection). Each request is a
 * Put (probability --writes) or a Range of one key; a Range is
 * serializable (answered by the local member without a quorum round, etcd's
 * weaker read) with probability --weak-ratio, linearizable otherwise. Keys
 * are key:000000000000 .. keyspace-1, uniform or Zipf(--zipf S). Every
 * request's latency (submit to end of stream) goes into a log-bucketed
 * histogram (src/lib/histogram.c). A request counts as done when the
 * stream ends with HTTP 200 and grpc-status 0; anything else is an error.
 *
 * --prefill first writes every key once (not measured), so that reads find
 * values. --json prints one JSON object with the field names pier-bench
 * uses (ops_per_sec, p50_us, p99_us, ...).
 *
 * Build: cc -O2 -std=c17 -D_GNU_SOURCE -pthread -Isrc bench/etcd-bench.c
 *        src/lib/histogram.c -lnghttp2 -lm -o build/etcd-bench */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/histogram.h"

#define KEY_DIGITS 12
#define KEY_LEN (4 + KEY_DIGITS)
#define RBUF_KEEP 256 /* response bytes kept per stream (enough for Range's count) */

typedef struct endpoint {
    char host[256];
    char port[16];
    char authority[280];
} endpoint;

typedef struct options {
    endpoint *eps;
    int neps;
    int clients, pendings, threads;
    long long reqs;
    double duration_s;
    double writes, weak_ratio, zipf, timeout_s;
    long long keyspace;
    int value_size;
    bool prefill, json, quiet;
} options;

static options O;
static double *zipf_cdf;

struct conn;

typedef struct slot {
    struct conn *c;
    bool busy, write, cancelled;
    uint64_t t0;
    int http_status, grpc_status;
    int32_t stream_id;
    size_t blen, boff;
    size_t rlen;
    unsigned char rbuf[RBUF_KEEP];
    unsigned char *body;
} slot;

typedef struct worker worker;

typedef struct conn {
    int fd;
    worker *w;
    const endpoint *ep;
    nghttp2_session *s;
    slot *slots;
    int inflight;
    bool dead, epollout;
    unsigned char *obuf;
    size_t olen, ocap;
} conn;

struct worker {
    pthread_t tid;
    int id, ep_fd;
    conn *conns;
    int nconns;
    uint64_t rng, last_sweep;
    bool prefill_phase;
    histogram all, rd, wr;
    uint64_t errors, misses, reads, writes_done;
    char errmsg[512];
};

static atomic_llong budget;       /* requests left to start (reqs mode and prefill) */
static atomic_llong prefill_next; /* next key to write during prefill */
static uint64_t deadline_ns;      /* duration mode: no new request after this */
static atomic_int stop_all;
static char value_buf[1 << 20];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("etcd-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t rnd(worker *w) { /* xorshift64* */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 2685821657736338717ull;
}
static double rnd01(worker *w) { return (double)(rnd(w) >> 11) / 9007199254740992.0; }

static long long pick_key(worker *w) {
    if (!zipf_cdf) return (long long)(rnd(w) % (uint64_t)O.keyspace);
    double u = rnd01(w);
    long long lo = 0, hi = O.keyspace - 1;
    while (lo < hi) {
        long long mid = (lo + hi) / 2;
        if (zipf_cdf[mid] < u) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* ---- protobuf + gRPC framing ------------------------------------------ */

static size_t put_varint(unsigned char *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (unsigned char)(v | 0x80); v >>= 7; }
    p[n++] = (unsigned char)v;
    return n;
}

/* PutRequest{key=1, value=2} or RangeRequest{key=1, serializable=7}, behind
 * the 5-byte gRPC message prefix (uncompressed flag + big-endian length). */
static size_t build_body(unsigned char *out, bool write, bool serializable, long long key) {
    unsigned char *p = out + 5;
    *p++ = 0x0a;
    p += put_varint(p, KEY_LEN);
    p += (size_t)sprintf((char *)p, "key:%0*lld", KEY_DIGITS, key);
    if (write) {
        *p++ = 0x12;
        p += put_varint(p, (uint64_t)O.value_size);
        memcpy(p, value_buf, (size_t)O.value_size);
        p += O.value_size;
    } else if (serializable) {
        *p++ = 0x38;
        *p++ = 1;
    }
    size_t mlen = (size_t)(p - out - 5);
    out[0] = 0;
    out[1] = (unsigned char)(mlen >> 24);
    out[2] = (unsigned char)(mlen >> 16);
    out[3] = (unsigned char)(mlen >> 8);
    out[4] = (unsigned char)mlen;
    return (size_t)(p - out);
}

/* RangeResponse.count (field 4, varint) from the first bytes of the reply;
 * -1 when it is not there (count 0 is omitted by proto3, so -1 = miss). */
static long long range_count(const unsigned char *b, size_t n) {
    if (n < 5) return -1;
    size_t i = 5, end = 5 + ((size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4]);
    if (end > n) end = n;
    while (i < end) {
        uint64_t tag = 0, v = 0;
        int sh = 0;
        while (i < end && b[i] & 0x80) tag |= (uint64_t)(b[i++] & 0x7f) << sh, sh += 7;
        if (i >= end) return -1;
        tag |= (uint64_t)b[i++] << sh;
        unsigned wt = tag & 7;
        if (wt == 0 || wt == 2) {
            sh = 0;
            v = 0;
            while (i < end && b[i] & 0x80) v |= (uint64_t)(b[i++] & 0x7f) << sh, sh += 7;
            if (i >= end) return -1;
            v |= (uint64_t)b[i++] << sh;
            if (wt == 0 && (tag >> 3) == 4) return (long long)v;
            if (wt == 2) i += v;
        } else if (wt == 1) i += 8;
        else if (wt == 5) i += 4;
        else return -1;
    }
    return -1;
}

/* ---- nghttp2 callbacks ------------------------------------------------- */

static ssize_t body_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud) {
    slot *r = src->ptr;
    size_t n = r->blen - r->boff;
    if (n > len) n = len;
    memcpy(buf, r->body + r->boff, n);
    r->boff += n;
    if (r->boff == r->blen) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                     const uint8_t *value, size_t vlen, uint8_t flags, void *ud) {
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    slot *r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!r) return 0;
    if (nlen == 7 && !memcmp(name, ":status", 7)) r->http_status = atoi((const char *)value);
    else if (nlen == 11 && !memcmp(name, "grpc-status", 11)) {
        char tmp[16];
        size_t k = vlen < 15 ? vlen : 15;
        memcpy(tmp, value, k);
        tmp[k] = 0;
        r->grpc_status = atoi(tmp);
    } else if (nlen == 12 && !memcmp(name, "grpc-message", 12) && !r->c->w->errmsg[0]) {
        snprintf(r->c->w->errmsg, sizeof r->c->w->errmsg, "%.*s", (int)vlen, value);
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
                   void *ud) {
    slot *r = nghttp2_session_get_stream_user_data(s, sid);
    if (!r) return 0;
    size_t k = RBUF_KEEP - r->rlen;
    if (k > len) k = len;
    memcpy(r->rbuf + r->rlen, data, k);
    r->rlen += k;
    return 0;
}

static int on_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud) {
    slot *r = nghttp2_session_get_stream_user_data(s, sid);
    if (!r || !r->busy) return 0;
    conn *c = r->c;
    worker *w = c->w;
    uint64_t lat = now_ns() - r->t0;
    bool ok = err == 0 && r->http_status == 200 && r->grpc_status == 0;
    if (!ok) {
        w->errors++;
        if (!w->errmsg[0])
            snprintf(w->errmsg, sizeof w->errmsg, "http %d grpc-status %d h2 error %u",
                     r->http_status, r->grpc_status, err);
    } else if (!w->prefill_phase) {
        hist_record(&w->all, lat);
        if (r->write) {
            hist_record(&w->wr, lat);
            w->writes_done++;
        } else {
            hist_record(&w->rd, lat);
            w->reads++;
            if (range_count(r->rbuf, r->rlen) <= 0) w->misses++;
        }
    }
    r->busy = false;
    c->inflight--;
    return 0;
}

/* ---- connections --------------------------------------------------------- */

static int dial(const endpoint *ep) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *a;
    int rc = getaddrinfo(ep->host, ep->port, &hints, &ai);
    if (rc) die("%s: %s", ep->authority, gai_strerror(rc));
    int fd = -1;
    for (a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) die("cannot connect to %s: %s", ep->authority, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void conn_fail(conn *c, const char *why) {
    if (c->dead) return;
    worker *w = c->w;
    if (!w->errmsg[0]) snprintf(w->errmsg, sizeof w->errmsg, "%s: %s", c->ep->authority, why);
    if (!w->prefill_phase) w->errors += (uint64_t)c->inflight;
    c->inflight = 0;
    c->dead = true;
    epoll_ctl(w->ep_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* Write what nghttp2 has queued; keep the rest for EPOLLOUT. */
static void conn_flush(conn *c) {
    for (;;) {
        if (c->olen == 0) {
            const uint8_t *data;
            ssize_t n;
            /* Gather several frames into one write. */
            while ((n = nghttp2_session_mem_send(c->s, &data)) > 0) {
                if (c->olen + (size_t)n > c->ocap) {
                    c->ocap = (c->olen + (size_t)n) * 2;
                    c->obuf = realloc(c->obuf, c->ocap);
                    if (!c->obuf) die("out of memory");
                }
                memcpy(c->obuf + c->olen, data, (size_t)n);
                c->olen += (size_t)n;
                if (c->olen >= 65536) break;
            }
            if (n < 0) { conn_fail(c, nghttp2_strerror((int)n)); return; }
            if (c->olen == 0) break;
        }
        ssize_t k = send(c->fd, c->obuf, c->olen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            conn_fail(c, strerror(errno));
            return;
        }
        memmove(c->obuf, c->obuf + k, c->olen - (size_t)k);
        c->olen -= (size_t)k;
        if (c->olen) break;
    }
    bool want = c->olen > 0;
    if (want != c->epollout) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(c->w->ep_fd, EPOLL_CTL_MOD, c->fd, &ev);
        c->epollout = want;
    }
}

static bool take_one(worker *w, long long *key, bool *write) {
    if (w->prefill_phase) {
        long long k = atomic_fetch_add(&prefill_next, 1);
        if (k >= O.keyspace) return false;
        *key = k;
        *write = true;
        return true;
    }
    if (atomic_load_explicit(&stop_all, memory_order_relaxed)) return false;
    if (O.reqs > 0) {
        if (atomic_fetch_sub(&budget, 1) <= 0) return false;
    } else if (now_ns() >= deadline_ns) {
        return false;
    }
    *write = O.writes >= 1.0 || rnd01(w) < O.writes;
    *key = pick_key(w);
    return true;
}

static void conn_fill(conn *c) {
    static const nghttp2_nv hdr_put[] = {
#define NV(n, v) {(uint8_t *)n, (uint8_t *)v, sizeof n - 1, sizeof v - 1, \
                  NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}
        NV(":method", "POST"), NV(":scheme", "http"), NV(":path", "/etcdserverpb.KV/Put"),
        NV("content-type", "application/grpc"), NV("te", "trailers"),
    };
    static const nghttp2_nv hdr_range[] = {
        NV(":method", "POST"), NV(":scheme", "http"), NV(":path", "/etcdserverpb.KV/Range"),
        NV("content-type", "application/grpc"), NV("te", "trailers"),
    };
    if (c->dead) return;
    while (c->inflight < O.pendings) {
        long long key;
        bool write;
        if (!take_one(c->w, &key, &write)) break;
        slot *r = NULL;
        for (int i = 0; i < O.pendings; i++)
            if (!c->slots[i].busy) { r = &c->slots[i]; break; }
        if (!r) break;
        bool ser = !write && O.weak_ratio > 0 && rnd01(c->w) < O.weak_ratio;
        r->busy = true;
        r->cancelled = false;
        r->write = write;
        r->blen = build_body(r->body, write, ser, key);
        r->boff = 0;
        r->rlen = 0;
        r->http_status = 0;
        r->grpc_status = -1;
        /* Pseudo-headers first: :authority goes before content-type. */
        nghttp2_nv nv[6];
        const nghttp2_nv *h = write ? hdr_put : hdr_range;
        memcpy(nv, h, 3 * sizeof *nv);
        nv[3] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)c->ep->authority, 10,
                             strlen(c->ep->authority), NGHTTP2_NV_FLAG_NO_COPY_NAME};
        memcpy(nv + 4, h + 3, 2 * sizeof *nv);
        nghttp2_data_provider prd = {.source.ptr = r, .read_callback = body_read};
        r->t0 = now_ns();
        int32_t sid = nghttp2_submit_request(c->s, NULL, nv, 6, &prd, r);
        if (sid < 0) {
            r->busy = false;
            conn_fail(c, nghttp2_strerror(sid));
            return;
        }
        r->stream_id = sid;
        c->inflight++;
    }
}

static void conn_open(worker *w, conn *c, const endpoint *ep) {
    c->w = w;
    c->ep = ep;
    c->fd = dial(ep);
    c->slots = calloc((size_t)O.pendings, sizeof *c->slots);
    if (!c->slots) die("out of memory");
    for (int i = 0; i < O.pendings; i++) {
        c->slots[i].c = c;
        c->slots[i].body = malloc((size_t)O.value_size + 64);
        if (!c->slots[i].body) die("out of memory");
    }
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    if (nghttp2_session_client_new(&c->s, cb, c)) die("nghttp2_session_client_new failed");
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
    };
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, 1 << 24);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(w->ep_fd, EPOLL_CTL_ADD, c->fd, &ev)) die("epoll_ctl: %s", strerror(errno));
}

/* Run until this thread has nothing left to start and nothing in flight. */
static void *worker_run(void *arg) {
    worker *w = arg;
    struct epoll_event evs[256];
    unsigned char buf[65536];
    for (int i = 0; i < w->nconns; i++) {
        conn_fill(&w->conns[i]);
        conn_flush(&w->conns[i]);
    }
    for (;;) {
        int inflight = 0, alive = 0;
        for (int i = 0; i < w->nconns; i++) {
            inflight += w->conns[i].inflight;
            alive += !w->conns[i].dead;
        }
        if (!inflight || !alive) break;
        int n = epoll_wait(w->ep_fd, evs, 256, 200);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        uint64_t now = now_ns();
        if (now - w->last_sweep > 200000000ull) { /* cancel requests past --timeout */
            w->last_sweep = now;
            for (int i = 0; i < w->nconns; i++) {
                conn *c = &w->conns[i];
                bool late = false;
                for (int k = 0; !c->dead && k < O.pendings; k++) {
                    slot *r = &c->slots[k];
                    if (r->busy && r->cancelled && now - r->t0 > (uint64_t)(2 * O.timeout_s * 1e9)) {
                        conn_fail(c, "stalled connection");
                        break;
                    }
                    if (r->busy && !r->cancelled && now - r->t0 > (uint64_t)(O.timeout_s * 1e9)) {
                        r->cancelled = true;
                        if (!w->errmsg[0])
                            snprintf(w->errmsg, sizeof w->errmsg, "%s: no reply within %.1f s",
                                     c->ep->authority, O.timeout_s);
                        nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, r->stream_id,
                                                  NGHTTP2_CANCEL);
                        late = true;
                    }
                }
                if (late && !c->dead) conn_flush(c);
            }
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->dead) continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                for (;;) {
                    ssize_t k = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
                    if (k == 0) { conn_fail(c, "connection closed by the server"); break; }
                    if (k < 0) {
                        if (errno != EAGAIN && errno != EWOULDBLOCK) conn_fail(c, strerror(errno));
                        break;
                    }
                    ssize_t rc = nghttp2_session_mem_recv(c->s, buf, (size_t)k);
                    if (rc < 0) { conn_fail(c, nghttp2_strerror((int)rc)); break; }
                    if ((size_t)k < sizeof buf) break;
                }
            }
            if (c->dead) continue;
            conn_fill(c);
            conn_flush(c);
        }
    }
    return NULL;
}

static void run_phase(worker *ws, bool prefill) {
    for (int t = 0; t < O.threads; t++) {
        ws[t].prefill_phase = prefill;
        if (pthread_create(&ws[t].tid, NULL, worker_run, &ws[t])) die("pthread_create failed");
    }
    for (int t = 0; t < O.threads; t++) pthread_join(ws[t].tid, NULL);
}

/* ---- options and output -------------------------------------------------- */

static void usage(int rc) {
    fprintf(rc ? stderr : stdout,
            "usage: etcd-bench --endpoints host:port[,host:port...] [options]\n"
            "  --clients N        connections, spread round robin over the endpoints (100)\n"
            "  --pendings P       requests in flight per connection (HTTP/2 streams) (1)\n"
            "  --threads T        client threads, one epoll loop each (1)\n"
            "  --reqs N           requests to complete (10000), or\n"
            "  --duration S       seconds to run\n"
            "  --writes F         fraction of requests that are Puts, 0..1 (1)\n"
            "  --weak-ratio F     fraction of Ranges sent serializable (0 = all linearizable)\n"
            "  --keyspace K       keys key:000000000000..K-1 (10000)\n"
            "  --zipf S           Zipf-distributed keys with exponent S (0 = uniform)\n"
            "  --value-size B     Put value bytes (100)\n"
            "  --timeout S        cancel a request after S seconds, counted as an error (10)\n"
            "  --prefill          write every key once before measuring\n"
            "  --json             one JSON object on stdout\n"
            "  -q                 no progress lines on stderr\n");
    exit(rc);
}

static void parse_endpoints(const char *s) {
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        O.eps = realloc(O.eps, (size_t)(O.neps + 1) * sizeof *O.eps);
        endpoint *e = &O.eps[O.neps++];
        if (!strncmp(t, "http://", 7)) t += 7;
        char *colon = strrchr(t, ':');
        if (!colon) die("endpoint '%s' needs host:port", t);
        *colon = 0;
        snprintf(e->host, sizeof e->host, "%s", t);
        snprintf(e->port, sizeof e->port, "%s", colon + 1);
        snprintf(e->authority, sizeof e->authority, "%s:%s", e->host, e->port);
    }
    free(copy);
    if (!O.neps) die("no endpoint given");
}

static void parse(int argc, char **argv) {
    O = (options){.clients = 100, .pendings = 1, .threads = 1, .reqs = 10000, .writes = 1,
                  .keyspace = 10000, .value_size = 100, .timeout_s = 10};
    static const struct option lo[] = {
        {"endpoints", required_argument, 0, 'e'}, {"nodes", required_argument, 0, 'e'},
        {"clients", required_argument, 0, 'c'},   {"pendings", required_argument, 0, 'P'},
        {"threads", required_argument, 0, 't'},   {"reqs", required_argument, 0, 'n'},
        {"duration", required_argument, 0, 'D'},  {"writes", required_argument, 0, 'w'},
        {"weak-ratio", required_argument, 0, 'W'}, {"keyspace", required_argument, 0, 'r'},
        {"zipf", required_argument, 0, 'z'},      {"value-size", required_argument, 0, 'd'},
        {"prefill", no_argument, 0, 'F'},         {"timeout", required_argument, 0, 'T'},         {"json", no_argument, 0, 'J'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "e:c:P:t:n:D:w:W:r:z:d:T:FJqh", lo, NULL)) != -1) {
        switch (ch) {
        case 'e': parse_endpoints(optarg); break;
        case 'c': O.clients = atoi(optarg); break;
        case 'P': O.pendings = atoi(optarg); break;
        case 't': O.threads = atoi(optarg); break;
        case 'n': O.reqs = atoll(optarg); O.duration_s = 0; break;
        case 'D': O.duration_s = atof(optarg); O.reqs = 0; break;
        case 'w': O.writes = atof(optarg); break;
        case 'W': O.weak_ratio = atof(optarg); break;
        case 'r': O.keyspace = atoll(optarg); break;
        case 'z': O.zipf = atof(optarg); break;
        case 'd': O.value_size = atoi(optarg); break;
        case 'F': O.prefill = true; break;
        case 'T': O.timeout_s = atof(optarg); break;
        case 'J': O.json = true; break;
        case 'q': O.quiet = true; break;
        case 'h': usage(0); break;
        default: usage(2);
        }
    }
    if (!O.neps) die("--endpoints is required (see --help)");
    if (O.clients < 1 || O.pendings < 1 || O.pendings > 1000 || O.threads < 1 || O.keyspace < 1 ||
        O.value_size < 0 || O.value_size > (int)sizeof value_buf || O.writes < 0 || O.writes > 1 ||
        O.weak_ratio < 0 || O.weak_ratio > 1 || O.timeout_s <= 0 || (O.reqs <= 0 && O.duration_s <= 0))
        die("bad option value (see --help)");
    if (O.threads > O.clients) O.threads = O.clients;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    parse(argc, argv);
    for (int i = 0; i < O.value_size; i++) value_buf[i] = (char)('a' + i % 26);
    if (O.zipf > 0) {
        zipf_cdf = malloc((size_t)O.keyspace * sizeof *zipf_cdf);
        if (!zipf_cdf) die("out of memory");
        double sum = 0;
        for (long long k = 0; k < O.keyspace; k++) sum += 1.0 / pow((double)(k + 1), O.zipf);
        double acc = 0;
        for (long long k = 0; k < O.keyspace; k++) {
            acc += 1.0 / pow((double)(k + 1), O.zipf) / sum;
            zipf_cdf[k] = acc;
        }
        zipf_cdf[O.keyspace - 1] = 1.0;
    }
    worker *ws = calloc((size_t)O.threads, sizeof *ws);
    if (!ws) die("out of memory");
    for (int t = 0; t < O.threads; t++) {
        worker *w = &ws[t];
        w->id = t;
        w->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1) ^ (uint64_t)now_ns();
        w->ep_fd = epoll_create1(EPOLL_CLOEXEC);
        hist_init(&w->all);
        hist_init(&w->rd);
        hist_init(&w->wr);
        w->nconns = O.clients / O.threads + (t < O.clients % O.threads);
        w->conns = calloc((size_t)w->nconns, sizeof *w->conns);
        if (!w->conns) die("out of memory");
    }
    for (int i = 0; i < O.clients; i++) {
        worker *w = &ws[i % O.threads];
        conn_open(w, &w->conns[i / O.threads], &O.eps[i % O.neps]);
    }
    if (O.prefill) {
        uint64_t t0 = now_ns();
        run_phase(ws, true);
        uint64_t perr = 0;
        for (int t = 0; t < O.threads; t++) perr += ws[t].errors, ws[t].errors = 0;
        if (!O.quiet)
            fprintf(stderr, "prefill: %lld keys in %.2f s%s\n", O.keyspace,
                    (double)(now_ns() - t0) / 1e9, perr ? " (with errors)" : "");
        if (perr) die("prefill failed: %llu errors (%s)", (unsigned long long)perr, ws[0].errmsg);
    }
    atomic_store(&budget, O.reqs);
    double c0 = cpu_s();
    uint64_t t0 = now_ns();
    deadline_ns = O.duration_s > 0 ? t0 + (uint64_t)(O.duration_s * 1e9) : 0;
    run_phase(ws, false);
    double secs = (double)(now_ns() - t0) / 1e9;
    double ccpu = cpu_s() - c0;

    histogram all, rd, wr;
    hist_init(&all);
    hist_init(&rd);
    hist_init(&wr);
    uint64_t errors = 0, misses = 0;
    const char *msg = "";
    for (int t = 0; t < O.threads; t++) {
        hist_merge(&all, &ws[t].all);
        hist_merge(&rd, &ws[t].rd);
        hist_merge(&wr, &ws[t].wr);
        errors += ws[t].errors;
        misses += ws[t].misses;
        if (!*msg && ws[t].errmsg[0]) msg = ws[t].errmsg;
    }
    double ops = secs > 0 ? (double)all.count / secs : 0;
    const char *wl = O.writes >= 1 ? "put" : O.writes <= 0 ? "range" : "mixed";
    if (O.json) {
        printf("{\"system\":\"etcd\",\"workload\":\"%s\",\"requests\":%llu,\"errors\":%llu,"
               "\"seconds\":%.3f,\"ops_per_sec\":%.1f,\"avg_us\":%.1f,\"p50_us\":%.1f,"
               "\"p95_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
               "\"writes\":%llu,\"write_p50_us\":%.1f,\"write_p99_us\":%.1f,"
               "\"reads\":%llu,\"read_p50_us\":%.1f,\"read_p99_us\":%.1f,\"read_misses\":%llu,"
               "\"client_cpu_us_per_req\":%.3f,\"clients\":%d,\"pendings\":%d,"
               "\"value_size\":%d,\"keyspace\":%lld}\n",
               wl, (unsigned long long)all.count, (unsigned long long)errors, secs, ops,
               hist_mean(&all) / 1e3, hist_percentile(&all, 50) / 1e3,
               hist_percentile(&all, 95) / 1e3, hist_percentile(&all, 99) / 1e3,
               hist_percentile(&all, 99.9) / 1e3, all.max / 1e3, (unsigned long long)wr.count,
               hist_percentile(&wr, 50) / 1e3, hist_percentile(&wr, 99) / 1e3,
               (unsigned long long)rd.count, hist_percentile(&rd, 50) / 1e3,
               hist_percentile(&rd, 99) / 1e3, (unsigned long long)misses,
               all.count ? ccpu * 1e6 / (double)all.count : 0, O.clients, O.pendings,
               O.value_size, O.keyspace);
    } else {
        printf("etcd %s: %llu requests in %.2f s, %d connections x %d in flight, %d-byte values\n",
               wl, (unsigned long long)all.count, secs, O.clients, O.pendings, O.value_size);
        printf("  throughput  %.0f ops/s\n", ops);
        printf("  latency us  avg %.1f  p50 %.1f  p95 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
               hist_mean(&all) / 1e3, hist_percentile(&all, 50) / 1e3,
               hist_percentile(&all, 95) / 1e3, hist_percentile(&all, 99) / 1e3,
               hist_percentile(&all, 99.9) / 1e3, all.max / 1e3);
        if (wr.count && rd.count)
            printf("  puts %llu (p50 %.1f p99 %.1f us), ranges %llu (p50 %.1f p99 %.1f us)\n",
                   (unsigned long long)wr.count, hist_percentile(&wr, 50) / 1e3,
                   hist_percentile(&wr, 99) / 1e3, (unsigned long long)rd.count,
                   hist_percentile(&rd, 50) / 1e3, hist_percentile(&rd, 99) / 1e3);
        if (rd.count) printf("  range misses %llu\n", (unsigned long long)misses);
        printf("  errors      %llu\n", (unsigned long long)errors);
        printf("  client cpu  %.3f us/request\n", all.count ? ccpu * 1e6 / (double)all.count : 0);
    }
    if (errors && !O.quiet) fprintf(stderr, "etcd-bench: %llu errors; first: %s\n",
                                    (unsigned long long)errors, msg);
    return errors && !all.count ? 1 : 0;
}
