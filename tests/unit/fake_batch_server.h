/* fake_batch_server.h - a minimal in-process batch-protocol server for
 * libpier's unit tests: enough of docs/PROTOCOL.md to test the client
 * without pier-server (handshake, HELLO_OK, BATCH checks, cumulative ACKs
 * with exactly-once deduplication per client id, ERROR frames, scripted
 * connection drops, and a subscriber feed). A thread per connection; the
 * shared counters under mu. */
#ifndef FAKE_BATCH_SERVER_H
#define FAKE_BATCH_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "lib/crc32c.h"

#define FAKE_MAX_IDS 16

#define FAKE_MAX_CONNS 64

typedef struct fake_server {
    int lfd, port;
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_t conn_tids[FAKE_MAX_CONNS];
    int conn_fds[FAKE_MAX_CONNS];
    int nconn_threads;
    /* script */
    int error_code;            /* != 0: answer the handshake with this ERROR */
    int drop_after;            /* close a connection after this many batches (0 = never) */
    int drops_left;            /* how many times to drop */
    int ack_delay_batches;     /* ACK only every n-th batch (cumulative ACKs) */
    int sub_batches;           /* subscriber: batches of 3 entries to send */
    int sub_codec;             /* subscriber: codec of those batches (if accepted) */
    int sub_split;             /* subscriber: send the first batch's last 5 bytes only once
                                  fake_open_gate is called */
    const char *answer;        /* != NULL: answer the handshake with these bytes (not a batch
                                  port) and keep the connection open until fake_stop */
    pthread_cond_t gate_cv;
    int gate_open;
    /* results (read after fake_stop) */
    uint64_t ids[FAKE_MAX_IDS], last_seq[FAKE_MAX_IDS];
    uint64_t messages, batches, duplicates, connections, compressed;
    uint64_t bytes;            /* message bytes appended */
    int bad;                   /* a check failed: description in why */
    char why[128];
    char topic[64];
    uint8_t ack_level;
} fake_server;

static int fake_read(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int fake_write(int fd, const void *buf, size_t n) {
    return send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static void fake_frame(int fd, int type, uint8_t flags, uint64_t seq, uint32_t count,
                       const void *payload, uint32_t len) {
    pb_header h = {.type = (uint8_t)type, .flags = flags, .seq = seq, .count = count,
                   .raw_len = len, .payload_len = len, .crc = crc32c(0, payload, len)};
    uint8_t hdr[PB_HEADER_LEN];
    pb_encode_header(&h, hdr);
    fake_write(fd, hdr, sizeof hdr);
    if (len) fake_write(fd, payload, len);
}

static void fake_bad(fake_server *s, const char *why) {
    if (!s->bad) snprintf(s->why, sizeof s->why, "%s", why);
    s->bad = 1;
}

static int fake_slot(fake_server *s, uint64_t id) {
    for (int i = 0; i < FAKE_MAX_IDS; i++)
        if (s->ids[i] == id) return i;
    for (int i = 0; i < FAKE_MAX_IDS; i++)
        if (!s->ids[i]) {
            s->ids[i] = id;
            return i;
        }
    return 0;
}

/* Check one batch's payload: crc, codec, every message length. Returns
 * the message count found, -1 when broken. */
static long fake_check_batch(fake_server *s, const pb_header *h, uint8_t *payload) {
    if (crc32c(0, payload, h->payload_len) != h->crc) return -1;
    uint8_t *raw = payload;
    uint8_t *tmp = NULL;
    if (h->codec) {
        tmp = malloc(h->raw_len ? h->raw_len : 1);
        if (pc_decompress((enum pier_codec)h->codec, payload, h->payload_len, tmp, h->raw_len)) {
            free(tmp);
            return -1;
        }
        raw = tmp;
        s->compressed++;
    }
    long n = 0;
    size_t off = 0;
    while (off + 4 <= h->raw_len) {
        uint32_t len = codec_get_le32(raw + off);
        if (len > h->raw_len - off - 4) break;
        off += 4 + len;
        s->bytes += len;
        n++;
    }
    free(tmp);
    return off == h->raw_len && (uint32_t)n == h->count ? n : -1;
}

/* One publisher connection after HELLO_OK. */
static void fake_publisher(fake_server *s, int fd, int slot) {
    int batches_here = 0, unacked = 0;
    for (;;) {
        uint8_t raw[PB_HEADER_LEN];
        pb_header h;
        if (fake_read(fd, raw, sizeof raw)) return;
        if (memcmp(raw, "PIRF", 4) || raw[5] != PB_BATCH) return fake_bad(s, "bad frame");
        h = (pb_header){.codec = raw[6], .seq = codec_get_le64(raw + 8), .count = codec_get_le32(raw + 16),
                        .raw_len = codec_get_le32(raw + 20), .payload_len = codec_get_le32(raw + 24),
                        .crc = codec_get_le32(raw + 28)};
        uint8_t *payload = malloc(h.payload_len ? h.payload_len : 1);
        if (fake_read(fd, payload, h.payload_len)) { free(payload); return; }
        pthread_mutex_lock(&s->mu);
        long n = fake_check_batch(s, &h, payload);
        free(payload);
        uint64_t *last = &s->last_seq[slot];
        if (n < 0 || h.seq > *last + 1) {
            fake_bad(s, n < 0 ? "batch payload broken" : "sequence gap");
            pthread_mutex_unlock(&s->mu);
            return;
        }
        bool dup = h.seq <= *last;
        if (dup) s->duplicates++;
        else {
            *last = h.seq;
            s->messages += (uint64_t)n;
            s->batches++;
        }
        bool drop = s->drop_after && s->drops_left > 0 && ++batches_here >= s->drop_after;
        if (drop) s->drops_left--;
        uint64_t acked = *last;
        pthread_mutex_unlock(&s->mu);
        if (drop) return; /* appended but never ACKed: the client must not duplicate it */
        if (s->ack_level && ++unacked >= (s->ack_delay_batches ? s->ack_delay_batches : 1)) {
            uint8_t ids[16] = {0};
            fake_frame(fd, PB_ACK, dup ? PB_FLAG_DUPLICATE : 0, acked, (uint32_t)n, ids,
                       dup ? 0 : 16);
            unacked = 0;
        }
    }
}

static void fake_wait_gate(fake_server *s) {
    pthread_mutex_lock(&s->mu);
    while (!s->gate_open) pthread_cond_wait(&s->gate_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* Let a sub_split subscriber send the rest of its first batch. */
static void fake_open_gate(fake_server *s) {
    pthread_mutex_lock(&s->mu);
    s->gate_open = 1;
    pthread_cond_broadcast(&s->gate_cv);
    pthread_mutex_unlock(&s->mu);
}

/* Subscriber: sub_batches batches of 3 entries "m<i>", then close. */
static void fake_subscriber(fake_server *s, int fd, unsigned codecs) {
    for (int b = 0; b < s->sub_batches; b++) {
        uint8_t raw[3 * 64], wire[512];
        size_t off = 0;
        for (int i = 0; i < 3; i++) {
            char msg[16];
            int len = snprintf(msg, sizeof msg, "m%d", b * 3 + i);
            codec_put_le64(raw + off, 1000 + (uint64_t)b);
            codec_put_le64(raw + off + 8, (uint64_t)i);
            raw[off + 16] = 0;
            codec_put_le32(raw + off + 17, (uint32_t)len);
            memcpy(raw + off + 21, msg, (size_t)len);
            off += 21 + (size_t)len;
        }
        int codec = s->sub_codec && (codecs & (1u << (s->sub_codec - 1))) ? s->sub_codec : 0;
        pc_ctx ctx = {0};
        size_t n = codec ? pc_compress(&ctx, (enum pier_codec)codec, raw, off, wire, sizeof wire)
                         : 0;
        pc_ctx_free(&ctx);
        if (!n) { codec = 0; memcpy(wire, raw, off); n = off; }
        pb_header h = {.type = PB_BATCH, .codec = (uint8_t)codec, .seq = (uint64_t)b + 1,
                       .count = 3, .raw_len = (uint32_t)off, .payload_len = (uint32_t)n,
                       .crc = crc32c(0, wire, n)};
        uint8_t hdr[PB_HEADER_LEN];
        pb_encode_header(&h, hdr);
        fake_write(fd, hdr, sizeof hdr);
        if (b == 0 && s->sub_split) {
            fake_write(fd, wire, n - 5);
            fake_wait_gate(s);
            fake_write(fd, wire + n - 5, 5);
        } else {
            fake_write(fd, wire, n);
        }
    }
}

static void fake_conn(fake_server *s, int fd) {
    uint8_t hs[PB_HANDSHAKE_FIXED];
    if (fake_read(fd, hs, sizeof hs) || memcmp(hs, "PIRB", 4)) return;
    uint16_t t = (uint16_t)(hs[20] | hs[21] << 8), k = (uint16_t)(hs[22] | hs[23] << 8),
             st = (uint16_t)(hs[24] | hs[25] << 8);
    uint8_t rest[2048];
    if ((size_t)t + k + st > sizeof rest || fake_read(fd, rest, (size_t)t + k + st))
        return;
    if (s->answer) {
        fake_write(fd, s->answer, strlen(s->answer));
        uint8_t sink[64];
        while (read(fd, sink, sizeof sink) > 0) {} /* until fake_stop shuts it down */
        return;
    }
    pthread_mutex_lock(&s->mu);
    snprintf(s->topic, sizeof s->topic, "%.*s", k < 63 ? k : 63, (char *)rest + t);
    if (s->error_code) {
        uint8_t e[32] = {(uint8_t)s->error_code, 0};
        memcpy(e + 2, "scripted failure", 16);
        pthread_mutex_unlock(&s->mu);
        fake_frame(fd, PB_ERROR, 0, 0, 0, e, 18);
        return;
    }
    s->ack_level = hs[7];
    int slot = fake_slot(s, codec_get_le64(hs + 12));
    uint64_t next = s->last_seq[slot] + 1;
    pthread_mutex_unlock(&s->mu);
    uint8_t maxp[8];
    codec_put_le64(maxp, PB_MAX_PAYLOAD);
    fake_frame(fd, PB_HELLO_OK, 0, next, 0, maxp, 8);
    if (hs[6] == PB_ROLE_PUBLISHER) fake_publisher(s, fd, slot);
    else fake_subscriber(s, fd, hs[9]);
}

typedef struct fake_conn_arg {
    fake_server *s;
    int fd;
} fake_conn_arg;

static void *fake_conn_main(void *arg) {
    fake_conn_arg a = *(fake_conn_arg *)arg;
    free(arg);
    fake_conn(a.s, a.fd);
    shutdown(a.fd, SHUT_RDWR); /* the fd itself is closed by fake_stop */
    return NULL;
}

static void *fake_main(void *arg) {
    fake_server *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) return NULL;
        pthread_mutex_lock(&s->mu);
        fake_conn_arg *a = malloc(sizeof *a);
        if (a && s->nconn_threads < FAKE_MAX_CONNS) {
            *a = (fake_conn_arg){s, fd};
            s->connections++;
            s->conn_fds[s->nconn_threads] = fd;
            pthread_create(&s->conn_tids[s->nconn_threads++], NULL, fake_conn_main, a);
        } else {
            free(a);
            close(fd);
        }
        pthread_mutex_unlock(&s->mu);
    }
}

/* Start on a free loopback port; script fields may be set before. */
static int fake_start(fake_server *s) {
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->gate_cv, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) || listen(s->lfd, 16) ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al))
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->tid, NULL, fake_main, s);
}

/* Stop accepting, end every connection, join the threads. */
static void fake_stop(fake_server *s) {
    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->tid, NULL);
    close(s->lfd);
    for (int i = 0; i < s->nconn_threads; i++) {
        shutdown(s->conn_fds[i], SHUT_RDWR);
        pthread_join(s->conn_tids[i], NULL);
        close(s->conn_fds[i]);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->gate_cv);
}

#endif
