/* fake_batch_server.h - a minimal in-process batch-protocol server for
 * libpier's unit tests: enough of docs/PROTOCOL.md to test the client
 * without pier-server (handshake, HELLO_OK, BATCH checks, cumulative ACKs
 * with exactly-once deduplication per client id, ERROR frames, scripted
 * connection drops, and a subscriber feed). With cluster_nodes set it
 * plays one node of a cluster: HELLO_OK with the CLUSTER flag, STRIPED
 * connections without a gap check, per-batch (SINGLE) ACKs, and a
 * fake_store that several fake nodes share, so a batch resent to another
 * node is recognised (DUPLICATE) and stored once. A thread per
 * connection; the counters under mu (the store's under its own mu, taken
 * after a server's). */
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
#define FAKE_MAX_MSGS 65536
#define FAKE_MAX_SEQ 65536
#define FAKE_MAX_HELD 512

/* What a fake cluster stored: one publisher's batch sequences. */
typedef struct fake_store {
    pthread_mutex_t mu;
    uint8_t stored[FAKE_MAX_SEQ / 8];
    uint64_t messages, batches, duplicates;
} fake_store;

static void fake_store_init(fake_store *st) {
    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
}

/* An ACK the node holds back (hold_acks) until fake_release_acks. */
typedef struct fake_held {
    int fd;
    uint64_t seq;
    uint32_t count;
    uint8_t flags;
} fake_held;

/* The number of distinct messages "msg-<i>" appended (fake_server.seen). */
#define FAKE_SEEN(s) fake_count_seen((s)->seen)
static long fake_count_seen(const uint8_t *seen) {
    long n = 0;
    for (int i = 0; i < FAKE_MAX_MSGS / 8; i++) n += __builtin_popcount(seen[i]);
    return n;
}

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
    int forget_on_conn;        /* the n-th connection (from 1) finds its client id forgotten:
                                  a server restarted without its data */
    int lose_on_conn;          /* on the n-th connection, the lose_after-th batch is dropped */
    int lose_after;            /*   unstored, and the connection closed */
    const char *error_text;    /* text of the error_code ERROR (default "scripted failure") */
    /* cluster mode (cluster_nodes != 0) */
    int cluster_nodes;         /* HELLO_OK: CLUSTER flag and this count */
    fake_store *store;         /* shared by the nodes of one fake cluster (required) */
    int hold_acks;             /* keep ACKs back until fake_release_acks */
    int cumulative_every;      /* every n-th ACK of a connection is cumulative (no SINGLE) */
    int dup_ack_every;         /* every n-th ACK carries DUPLICATE (stored all the same) */
    int double_ack;            /* ACK every batch twice, the second time with DUPLICATE */
    int skip_every;            /* every n-th batch of a connection is SKIPPED (not stored) */
    fake_held held[FAKE_MAX_HELD];
    int nheld;
    int killed;
    /* the last publisher handshake */
    uint8_t hs_order, hs_replication, hs_flags;
    uint64_t hs_ids[FAKE_MAX_CONNS];
    int hs_nids;               /* distinct client ids seen */
    pthread_cond_t gate_cv;
    int gate_open;
    /* results (read after fake_stop) */
    uint64_t ids[FAKE_MAX_IDS], last_seq[FAKE_MAX_IDS];
    uint64_t messages, batches, duplicates, connections, compressed;
    uint64_t bytes;            /* message bytes appended */
    uint64_t skipped;          /* batches answered SKIPPED */
    uint8_t seen[FAKE_MAX_MSGS / 8]; /* messages "msg-<i>" appended at least once */
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
        if (len > 4 && !memcmp(raw + off + 4, "msg-", 4)) {
            long i = strtol((const char *)raw + off + 8, NULL, 10);
            if (i >= 0 && i < FAKE_MAX_MSGS) s->seen[i / 8] |= (uint8_t)(1u << (i % 8));
        }
        off += 4 + len;
        s->bytes += len;
        n++;
    }
    free(tmp);
    return off == h->raw_len && (uint32_t)n == h->count ? n : -1;
}

/* One publisher connection (the n-th accepted) after HELLO_OK. */
static void fake_publisher(fake_server *s, int fd, int slot, int nconn) {
    int batches_here = 0, unacked = 0, received = 0;
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
        if (nconn == s->lose_on_conn && ++received == s->lose_after) {
            free(payload);
            return; /* never stored, never ACKed */
        }
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

/* Record a publisher handshake's levels, flags and client id. Caller
 * holds s->mu. */
static void fake_note_handshake(fake_server *s, const uint8_t *hs) {
    s->hs_order = hs[8];
    s->hs_replication = hs[10];
    s->hs_flags = hs[11];
    uint64_t id = codec_get_le64(hs + 12);
    for (int i = 0; i < s->hs_nids; i++)
        if (s->hs_ids[i] == id) return;
    if (s->hs_nids < FAKE_MAX_CONNS) s->hs_ids[s->hs_nids++] = id;
}

/* The ACK of a cluster node for batch seq (count messages) on fd: SINGLE
 * unless the script makes it cumulative; held back with hold_acks.
 * Caller holds s->mu (ACK frames of one fd never interleave). */
static void fake_cluster_ack(fake_server *s, int fd, uint64_t seq, uint32_t n, bool dup,
                             int nack) {
    uint8_t flags = PB_FLAG_SINGLE | (dup ? PB_FLAG_DUPLICATE : 0);
    if (s->dup_ack_every && nack % s->dup_ack_every == 0) flags |= PB_FLAG_DUPLICATE;
    if (s->cumulative_every && nack % s->cumulative_every == 0) flags &= (uint8_t)~PB_FLAG_SINGLE;
    if (s->hold_acks && s->nheld < FAKE_MAX_HELD) {
        s->held[s->nheld++] = (fake_held){fd, seq, n, flags};
        return;
    }
    uint8_t ids[16] = {0};
    fake_frame(fd, PB_ACK, flags, seq, n, ids, flags & PB_FLAG_DUPLICATE ? 0 : 16);
    if (s->double_ack) fake_frame(fd, PB_ACK, PB_FLAG_SINGLE | PB_FLAG_DUPLICATE, seq, n, ids, 0);
}

/* Send the ACKs held back so far, and stop holding. */
static void fake_release_acks(fake_server *s) {
    pthread_mutex_lock(&s->mu);
    s->hold_acks = 0;
    for (int i = 0; i < s->nheld; i++) {
        uint8_t ids[16] = {0};
        fake_frame(s->held[i].fd, PB_ACK, s->held[i].flags, s->held[i].seq, s->held[i].count,
                   ids, s->held[i].flags & PB_FLAG_DUPLICATE ? 0 : 16);
    }
    s->nheld = 0;
    pthread_mutex_unlock(&s->mu);
}

/* One STRIPED publisher connection to a cluster node: no gap check; the
 * shared store decides what is a duplicate. drop_after: store the batch,
 * then close without its ACK. */
static void fake_cluster_publisher(fake_server *s, int fd) {
    int batches_here = 0, nack = 0, nrecv = 0;
    fake_store *st = s->store;
    for (;;) {
        uint8_t raw[PB_HEADER_LEN];
        if (fake_read(fd, raw, sizeof raw)) return;
        if (memcmp(raw, "PIRF", 4) || raw[5] != PB_BATCH) return fake_bad(s, "bad frame");
        pb_header h = {.codec = raw[6], .seq = codec_get_le64(raw + 8), .count = codec_get_le32(raw + 16),
                       .raw_len = codec_get_le32(raw + 20), .payload_len = codec_get_le32(raw + 24),
                       .crc = codec_get_le32(raw + 28)};
        uint8_t *payload = malloc(h.payload_len ? h.payload_len : 1);
        if (fake_read(fd, payload, h.payload_len)) { free(payload); return; }
        pthread_mutex_lock(&s->mu);
        long n = fake_check_batch(s, &h, payload);
        free(payload);
        if (n < 0 || h.seq == 0 || h.seq >= FAKE_MAX_SEQ) {
            fake_bad(s, n < 0 ? "batch payload broken" : "sequence out of the fake's range");
            pthread_mutex_unlock(&s->mu);
            return;
        }
        if (s->skip_every && ++nrecv % s->skip_every == 0) { /* the sequencer gave up on it */
            s->skipped++;
            fake_frame(fd, PB_ACK, PB_FLAG_SINGLE | PB_FLAG_SKIPPED, h.seq, (uint32_t)n, NULL, 0);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        pthread_mutex_lock(&st->mu);
        bool dup = st->stored[h.seq / 8] & (1u << (h.seq % 8));
        if (dup) st->duplicates++;
        else {
            st->stored[h.seq / 8] |= (uint8_t)(1u << (h.seq % 8));
            st->messages += (uint64_t)n;
            st->batches++;
        }
        pthread_mutex_unlock(&st->mu);
        if (dup) s->duplicates++;
        else s->batches++;
        bool drop = s->drop_after && s->drops_left > 0 && ++batches_here >= s->drop_after;
        if (drop) s->drops_left--;
        if (!drop && s->ack_level) fake_cluster_ack(s, fd, h.seq, (uint32_t)n, dup, ++nack);
        pthread_mutex_unlock(&s->mu);
        if (drop) return;
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

static void fake_conn(fake_server *s, int fd, int nconn) {
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
        uint8_t e[200] = {(uint8_t)s->error_code, 0};
        const char *text = s->error_text ? s->error_text : "scripted failure";
        size_t tl = strlen(text) < sizeof e - 2 ? strlen(text) : sizeof e - 2;
        memcpy(e + 2, text, tl);
        pthread_mutex_unlock(&s->mu);
        fake_frame(fd, PB_ERROR, 0, 0, 0, e, (uint32_t)(2 + tl));
        return;
    }
    s->ack_level = hs[7];
    if (hs[6] == PB_ROLE_PUBLISHER) fake_note_handshake(s, hs);
    if (s->cluster_nodes && hs[6] == PB_ROLE_PUBLISHER) {
        pthread_mutex_unlock(&s->mu);
        uint8_t maxp8[8];
        codec_put_le64(maxp8, PB_MAX_PAYLOAD);
        fake_frame(fd, PB_HELLO_OK, PB_FLAG_CLUSTER, 1, (uint32_t)s->cluster_nodes, maxp8, 8);
        fake_cluster_publisher(s, fd);
        return;
    }
    int slot = fake_slot(s, codec_get_le64(hs + 12));
    if (nconn == s->forget_on_conn) s->last_seq[slot] = 0;
    uint64_t next = s->last_seq[slot] + 1;
    pthread_mutex_unlock(&s->mu);
    uint8_t maxp[8];
    codec_put_le64(maxp, PB_MAX_PAYLOAD);
    fake_frame(fd, PB_HELLO_OK, 0, next, 0, maxp, 8);
    if (hs[6] == PB_ROLE_PUBLISHER) fake_publisher(s, fd, slot, nconn);
    else fake_subscriber(s, fd, hs[9]);
}

typedef struct fake_conn_arg {
    fake_server *s;
    int fd, n;
} fake_conn_arg;

static void *fake_conn_main(void *arg) {
    fake_conn_arg a = *(fake_conn_arg *)arg;
    free(arg);
    fake_conn(a.s, a.fd, a.n);
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
            s->connections++;
            *a = (fake_conn_arg){s, fd, (int)s->connections};
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

/* The node dies: it stops listening (connections are refused from now
 * on) and every connection ends. fake_stop still follows. */
static void fake_kill(fake_server *s) {
    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->tid, NULL);
    close(s->lfd);
    pthread_mutex_lock(&s->mu);
    s->killed = 1;
    for (int i = 0; i < s->nconn_threads; i++) shutdown(s->conn_fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
}

/* Stop accepting, end every connection, join the threads. */
static void fake_stop(fake_server *s) {
    if (!s->killed) {
        shutdown(s->lfd, SHUT_RDWR);
        pthread_join(s->tid, NULL);
        close(s->lfd);
    }
    for (int i = 0; i < s->nconn_threads; i++) {
        shutdown(s->conn_fds[i], SHUT_RDWR);
        pthread_join(s->conn_tids[i], NULL);
        close(s->conn_fds[i]);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->gate_cv);
}

#endif
