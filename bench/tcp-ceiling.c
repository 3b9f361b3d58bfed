/* tcp-ceiling - what loopback TCP itself allows, for bench/compare-log.sh.
 *
 *   tcp-ceiling run  [-c conns] [-s msg-bytes] [-b batch-bytes] [-t total-bytes] [--json]
 *       One process, a sender and a receiver thread per connection over
 *       127.0.0.1: the sender writes batches framed exactly as the batch
 *       protocol does (32-byte header + u32 length + message, ...), with
 *       writev, from a buffer filled once; the receiver reads and discards.
 *       Nothing is copied, checksummed or parsed: the ceiling for pier's
 *       publish path on this machine.
 *   tcp-ceiling sink -p port [--verify]
 *       A minimal batch-protocol server (docs/PROTOCOL.md): HELLO_OK, then
 *       an ACK per BATCH (ack level >= 1), discarding the data. With
 *       --verify it checks the crc32c. Lets pier-bench log measure the
 *       client library alone. Runs until killed.
 *   tcp-ceiling xadd -p port [-c conns] [-P pipeline] [-s msg-bytes] [-t total-bytes]
 *       The RESP way to do the same: `XADD key * data <msg>` pipelined P deep
 *       per connection (closed loop: send P, read P replies), against
 *       redis-server or pier's RESP port. (redis-benchmark cannot do this:
 *       its -d only sizes the built-in tests' values, and a custom command
 *       gets the literal text __data__.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/crc32c.h"
#include "lib/util.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *m) {
    fprintf(stderr, "tcp-ceiling: %s: %s\n", m, strerror(errno));
    exit(1);
}

static int read_full(int fd, void *b, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)b + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *b, size_t n) {
    struct iovec iov = {(void *)b, n};
    while (iov.iov_len) {
        ssize_t w = writev(fd, &iov, 1);
        if (w <= 0) return -1;
        iov.iov_base = (char *)iov.iov_base + w;
        iov.iov_len -= (size_t)w;
    }
    return 0;
}

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128)) die("bind/listen");
    return fd;
}

static int bound_port(int fd) {
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* ------------------------------------------------------------- run */

typedef struct run_opts {
    int conns, pipeline, port;
    size_t msg, batch;
    uint64_t total;
    int json;
} run_opts;

typedef struct sender {
    pthread_t tid;
    int fd;
    const run_opts *o;
    uint8_t *payload;   /* one batch of messages, built once */
    size_t payload_len;
    uint64_t batches;
} sender;

static void *send_main(void *arg) {
    sender *s = arg;
    uint8_t hdr[32] = {'P', 'I', 'R', 'F', 1, 1};
    for (uint64_t i = 0; i < s->batches; i++) {
        struct iovec iov[2] = {{hdr, 32}, {s->payload, s->payload_len}};
        int cnt = 2;
        while (cnt) {
            ssize_t w = writev(s->fd, iov + (2 - cnt), cnt);
            if (w <= 0) die("writev");
            size_t left = (size_t)w;
            while (cnt && left >= iov[2 - cnt].iov_len) left -= iov[2 - cnt--].iov_len;
            if (cnt) {
                iov[2 - cnt].iov_base = (char *)iov[2 - cnt].iov_base + left;
                iov[2 - cnt].iov_len -= left;
            }
        }
    }
    shutdown(s->fd, SHUT_WR);
    return NULL;
}

static void *recv_main(void *arg) {
    int fd = (int)(intptr_t)arg;
    static _Thread_local char buf[1 << 20];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
    return NULL;
}

static size_t build_batch(uint8_t *p, size_t msg, size_t batch) {
    size_t off = 0;
    for (size_t i = 0; off + 4 + msg <= batch; i++) {
        uint32_t l = (uint32_t)msg;
        memcpy(p + off, &l, 4);
        memset(p + off + 4, 'a' + (int)(i % 26), msg);
        off += 4 + msg;
    }
    return off;
}

static int run(const run_opts *o) {
    int lfd = listen_on(0);
    int port = bound_port(lfd);
    sender *s = calloc((size_t)o->conns, sizeof *s);
    pthread_t *r = calloc((size_t)o->conns, sizeof *r);
    uint8_t *payload = malloc(o->batch);
    size_t plen = build_batch(payload, o->msg, o->batch);
    uint64_t per_conn = o->total / (uint64_t)o->conns / plen + 1;
    for (int i = 0; i < o->conns; i++) {
        s[i] = (sender){.fd = connect_to(port), .o = o, .payload = payload,
                        .payload_len = plen, .batches = per_conn};
        int afd = accept(lfd, NULL, NULL);
        pthread_create(&r[i], NULL, recv_main, (void *)(intptr_t)afd);
    }
    uint64_t t0 = now_ns();
    for (int i = 0; i < o->conns; i++) pthread_create(&s[i].tid, NULL, send_main, &s[i]);
    for (int i = 0; i < o->conns; i++) pthread_join(s[i].tid, NULL);
    for (int i = 0; i < o->conns; i++) pthread_join(r[i], NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t bytes = per_conn * (uint64_t)o->conns * plen;
    uint64_t msgs = per_conn * (uint64_t)o->conns * (plen / (4 + o->msg));
    double mibs = (double)bytes / secs / 1048576.0;
    if (o->json)
        printf("{\"mode\":\"tcp-ceiling\",\"conns\":%d,\"msg_bytes\":%zu,\"batch_bytes\":%zu,"
               "\"bytes\":%llu,\"seconds\":%.3f,\"mib_per_sec\":%.1f,\"msgs_per_sec\":%.0f}\n",
               o->conns, o->msg, o->batch, (unsigned long long)bytes, secs, mibs,
               (double)msgs / secs);
    else
        printf("tcp ceiling: %d conns, %zu-byte messages in %zu-byte batches: %.1f MiB/s "
               "(%.2f GB/s), %.0f msgs/s over %.2f s\n",
               o->conns, o->msg, o->batch, mibs, (double)bytes / secs / 1e9,
               (double)msgs / secs, secs);
    for (int i = 0; i < o->conns; i++) close(s[i].fd);
    close(lfd);
    free(s);
    free(r);
    free(payload);
    return 0;
}

/* ------------------------------------------------------------ sink */

static int verify;

static void send_frame(int fd, uint8_t type, uint64_t seq, const uint8_t *pl, uint32_t len) {
    uint8_t h[32] = {'P', 'I', 'R', 'F', 1, type};
    for (int i = 0; i < 8; i++) h[8 + i] = (uint8_t)(seq >> (8 * i));
    for (int i = 0; i < 4; i++) h[20 + i] = h[24 + i] = (uint8_t)(len >> (8 * i));
    uint32_t crc = crc32c(0, pl, len);
    for (int i = 0; i < 4; i++) h[28 + i] = (uint8_t)(crc >> (8 * i));
    write_full(fd, h, 32);
    if (len) write_full(fd, pl, len);
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void *sink_conn(void *arg) {
    int fd = (int)(intptr_t)arg;
    uint8_t hs[28], rest[70000];
    size_t cap = 64u << 20;
    uint8_t *buf = malloc(cap);
    if (read_full(fd, hs, 28) || memcmp(hs, "PIRB", 4)) goto out;
    size_t tail = (size_t)(hs[20] | hs[21] << 8) + (size_t)(hs[22] | hs[23] << 8) +
                  (size_t)(hs[24] | hs[25] << 8);
    if (tail > sizeof rest || read_full(fd, rest, tail)) goto out;
    int ack = hs[7];
    uint8_t maxp[8] = {0, 0, 0, 4}; /* 64 MiB */
    send_frame(fd, 4, 1, maxp, 8);
    for (;;) {
        uint8_t h[32];
        if (read_full(fd, h, 32)) break;
        uint32_t plen = rd32(h + 24);
        if (plen > cap || read_full(fd, buf, plen)) break;
        if (verify && crc32c(0, buf, plen) != rd32(h + 28)) {
            fprintf(stderr, "tcp-ceiling sink: crc mismatch\n");
            break;
        }
        uint64_t seq = 0;
        for (int i = 0; i < 8; i++) seq |= (uint64_t)h[8 + i] << (8 * i);
        if (ack) {
            uint8_t ids[16] = {0};
            send_frame(fd, 2, seq, ids, 16);
        }
    }
out:
    free(buf);
    close(fd);
    return NULL;
}

static _Noreturn void sink(int port) {
    int lfd = listen_on(port);
    printf("sink listening on %d\n", bound_port(lfd));
    fflush(stdout);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        pthread_t t;
        pthread_create(&t, NULL, sink_conn, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

/* ------------------------------------------------------------ xadd */

typedef struct xadd_conn {
    pthread_t tid;
    const run_opts *o;
    uint64_t requests, errors;
    char key[32];
} xadd_conn;

/* Count complete replies in buf: "$n\r\n<id>\r\n" or "-err\r\n" (or "+..",
 * ":.."). Returns bytes consumed; *replies and *errors incremented. */
static size_t count_replies(const char *b, size_t n, uint64_t *replies, uint64_t *errors) {
    size_t off = 0;
    for (;;) {
        const char *nl = memchr(b + off, '\n', n - off);
        if (!nl) return off;
        size_t line_end = (size_t)(nl - b) + 1;
        if (b[off] == '$') {
            long len = strtol(b + off + 1, NULL, 10);
            if (len >= 0) {
                if (n - line_end < (size_t)len + 2) return off;
                line_end += (size_t)len + 2;
            }
        } else if (b[off] == '-') {
            ++*errors;
        }
        ++*replies;
        off = line_end;
    }
}

static void *xadd_main(void *arg) {
    xadd_conn *c = arg;
    const run_opts *o = c->o;
    int fd = connect_to(o->port);
    char head[128];
    int hl = snprintf(head, sizeof head, "*5\r\n$4\r\nXADD\r\n$%zu\r\n%s\r\n$1\r\n*\r\n"
                      "$4\r\ndata\r\n$%zu\r\n", strlen(c->key), c->key, o->msg);
    size_t one = (size_t)hl + o->msg + 2;
    char *cmds = malloc(one * (size_t)o->pipeline), *rbuf = malloc(1 << 16);
    for (int i = 0; i < o->pipeline; i++) {
        char *p = cmds + one * (size_t)i;
        memcpy(p, head, (size_t)hl);
        memset(p + hl, 'a' + i % 26, o->msg);
        memcpy(p + hl + o->msg, "\r\n", 2);
    }
    size_t rlen = 0;
    while (c->requests * o->msg < o->total / (uint64_t)o->conns) {
        if (write_full(fd, cmds, one * (size_t)o->pipeline)) die("write");
        uint64_t got = 0;
        while (got < (uint64_t)o->pipeline) {
            ssize_t r = read(fd, rbuf + rlen, (1 << 16) - rlen);
            if (r <= 0) die("read");
            rlen += (size_t)r;
            size_t used = count_replies(rbuf, rlen, &got, &c->errors);
            memmove(rbuf, rbuf + used, rlen - used);
            rlen -= used;
        }
        c->requests += got;
    }
    close(fd);
    free(cmds);
    free(rbuf);
    return NULL;
}

static int xadd(const run_opts *o) {
    xadd_conn *c = calloc((size_t)o->conns, sizeof *c);
    uint64_t t0 = now_ns();
    for (int i = 0; i < o->conns; i++) {
        c[i].o = o;
        snprintf(c[i].key, sizeof c[i].key, "xadd:bench:%d", i);
        pthread_create(&c[i].tid, NULL, xadd_main, &c[i]);
    }
    uint64_t reqs = 0, errs = 0;
    for (int i = 0; i < o->conns; i++) {
        pthread_join(c[i].tid, NULL);
        reqs += c[i].requests;
        errs += c[i].errors;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    double bytes = (double)reqs * (double)o->msg, mibs = bytes / secs / 1048576.0;
    if (o->json)
        printf("{\"mode\":\"xadd\",\"conns\":%d,\"pipeline\":%d,\"msg_bytes\":%zu,"
               "\"requests\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"mib_per_sec\":%.1f,"
               "\"msgs_per_sec\":%.0f}\n", o->conns, o->pipeline, o->msg,
               (unsigned long long)reqs, (unsigned long long)errs, secs, mibs,
               (double)reqs / secs);
    else
        printf("xadd: %d conns, pipeline %d, %zu-byte entries: %.1f MiB/s (%.2f GB/s), %.0f "
               "entries/s, %llu errors over %.2f s\n", o->conns, o->pipeline, o->msg, mibs,
               bytes / secs / 1e9, (double)reqs / secs, (unsigned long long)errs, secs);
    free(c);
    return errs ? 1 : 0;
}

/* Sizes as the server's options and pier-bench take them (4kb = 4096, 4k
 * = 4000): compare-log.sh gives both tools the same values. 0 when bad. */
static uint64_t parse_size(const char *s) {
    long long v;
    return util_parse_memory(s, strlen(s), &v) ? (uint64_t)v : 0;
}

int main(int argc, char **argv) {
    run_opts o = {.conns = 1, .pipeline = 16, .msg = 4096, .batch = 2u << 20,
                  .total = 1ull << 30};
    int port = 0;
    if (argc < 2) goto usage;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "-c")) o.conns = atoi(v), i++;
        else if (!strcmp(a, "-s")) o.msg = parse_size(v), i++;
        else if (!strcmp(a, "-b")) o.batch = parse_size(v), i++;
        else if (!strcmp(a, "-t")) o.total = parse_size(v), i++;
        else if (!strcmp(a, "-p")) port = o.port = atoi(v), i++;
        else if (!strcmp(a, "-P")) o.pipeline = atoi(v), i++;
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--verify")) verify = 1;
        else goto usage;
    }
    if (o.conns < 1 || o.msg < 1 || o.batch < o.msg + 4 || o.pipeline < 1) goto usage;
    if (!strcmp(argv[1], "run")) return run(&o);
    if (!strcmp(argv[1], "sink")) sink(port);
    if (!strcmp(argv[1], "xadd")) return xadd(&o);
usage:
    fprintf(stderr, "usage: tcp-ceiling run [-c conns] [-s msg] [-b batch] [-t total] [--json]\n"
                    "       tcp-ceiling sink -p port [--verify]\n"
                    "       tcp-ceiling xadd -p port [-c conns] [-P pipeline] [-s msg] [-t total]\n");
    return 2;
}
