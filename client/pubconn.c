/* pubconn.c - one publisher connection: handshake, sending batches (with
 * adaptive compression and optional MSG_ZEROCOPY), the ACK reader thread,
 * and reconnect-and-resend for exactly-once delivery. */
#include <errno.h>
#include <time.h> /* before linux/errqueue.h, which uses struct timespec */
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/crc32c.h"

#include "publisher_impl.h"

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif

/* ---------------------------------------------------------------- queue */

static bool buf_done(const pconn *c, const pbuf *b) {
    bool acked = c->p->opt.ack_level == 0 || b->acked;
    bool zc_done = !b->zc_pending || (int32_t)(b->zc_id - c->zc_done) < 0;
    return acked && zc_done;
}

/* b's bytes leave c's outstanding count. Caller holds p->lock. */
static void uncount(pconn *c, pbuf *b) {
    if (!b->counted) return;
    c->out_bytes -= b->wire_len;
    b->counted = false;
}

/* Record that the server acknowledged b; returns its messages (0 when it
 * was acknowledged before). Caller holds p->lock. */
static uint32_t mark_acked(pconn *c, pbuf *b) {
    if (b->acked) return 0;
    b->acked = true;
    uncount(c, b);
    c->stats.acked_batches++;
    return b->count;
}

/* Per-batch ACKs complete out of order: done buffers leave the queue
 * wherever they are. */
void pconn_release_done(pconn *c) {
    pier_publisher *p = c->p;
    bool freed = false;
    pbuf **link = &c->unacked_head, *last = NULL;
    while (*link) {
        pbuf *b = *link;
        if (!buf_done(c, b)) {
            last = b;
            link = &b->next;
            continue;
        }
        *link = b->next;
        uncount(c, b);
        b->next = p->free_list;
        p->free_list = b;
        p->in_flight--;
        freed = true;
    }
    c->unacked_tail = last;
    if (freed) pthread_cond_broadcast(&p->cond);
}

/* Caller holds p->lock. */
static void enqueue_unacked(pconn *c, pbuf *b) {
    b->next = NULL;
    b->acked = false;
    b->counted = true;
    b->sent_no = c->sends++;
    c->out_bytes += b->wire_len;
    if (c->unacked_tail) c->unacked_tail->next = b;
    else c->unacked_head = b;
    c->unacked_tail = b;
}

/* Caller holds p->lock. */
static void orphan(pier_publisher *p, pbuf *b) {
    b->next = NULL;
    if (p->orphans_tail) p->orphans_tail->next = b;
    else p->orphans = b;
    p->orphans_tail = b;
}

int pconn_break(pconn *c) {
    pier_publisher *p = c->p;
    pthread_mutex_lock(&p->lock);
    if (c->broken) {
        pthread_mutex_unlock(&p->lock);
        return -1;
    }
    c->broken = true;
    c->retry_at_ns = pn_now_ns() + (uint64_t)c->backoff_ms * 1000000ull;
    /* The socket is gone: no zero-copy completion will come; what was
     * acknowledged is free now, the rest is resent elsewhere. */
    c->zc_done = c->zc_next_id;
    for (pbuf *b = c->unacked_head; b; b = b->next) b->zc_pending = false;
    pconn_release_done(c);
    int moved = 0;
    while (c->unacked_head) {
        pbuf *b = c->unacked_head;
        c->unacked_head = b->next;
        uncount(c, b);
        orphan(p, b);
        moved++;
    }
    c->unacked_tail = NULL;
    pthread_cond_broadcast(&p->cond);
    pthread_cond_signal(&p->keeper_cond);
    pthread_mutex_unlock(&p->lock);
    if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR); /* the reader sees EOF and ends */
    return moved;
}

/* ------------------------------------------------------------ zero copy */

/* Completions arrive as id ranges [lo, hi] on the socket's error queue.
 * TCP completes sends in order, so the highest hi is a watermark. */
void pconn_drain_zerocopy(pconn *c) {
    if (!c->zc_on || c->fd < 0) return;
    for (;;) {
        char control[128];
        struct msghdr msg = {.msg_control = control, .msg_controllen = sizeof control};
        if (recvmsg(c->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                  (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)))
                continue;
            struct sock_extended_err ee;
            memcpy(&ee, CMSG_DATA(cm), sizeof ee);
            if (ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY) continue;
            pthread_mutex_lock(&c->p->lock);
            if ((int32_t)(ee.ee_data + 1 - c->zc_done) > 0) c->zc_done = ee.ee_data + 1;
            if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
                c->stats.zerocopy_copied += ee.ee_data - ee.ee_info + 1;
            pconn_release_done(c);
            pthread_mutex_unlock(&c->p->lock);
        }
    }
}

/* sendmsg with MSG_ZEROCOPY until every byte is queued; each call that
 * queues bytes takes one completion id. */
static int send_zerocopy(pconn *c, struct iovec *iov, int iovcnt, pbuf *b) {
    while (iovcnt > 0) {
        /* Pending before the call: an ACK may race ahead of sendmsg's
         * return, and the buffer must outlive the kernel's reference. */
        pthread_mutex_lock(&c->p->lock);
        b->zc_id = c->zc_next_id;
        b->zc_pending = true;
        pthread_mutex_unlock(&c->p->lock);
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t w = sendmsg(c->fd, &msg, MSG_ZEROCOPY | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) { /* optmem limit: wait for completions */
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
                pconn_drain_zerocopy(c);
                continue;
            }
            return pier_fail(PIER_E_IO, "sendmsg failed: %s", strerror(errno));
        }
        pthread_mutex_lock(&c->p->lock);
        c->zc_next_id++;
        c->stats.zerocopy_sends++;
        pthread_mutex_unlock(&c->p->lock);
        pn_iov_advance(&iov, &iovcnt, (size_t)w);
    }
    return PIER_OK;
}

/* ------------------------------------------------------------- sending */

/* Choose raw or compressed for b, fill its header (seq set by caller). */
static void encode_batch(pconn *c, pbuf *b) {
    const pier_publisher_options *o = &c->p->opt;
    uint8_t codec = 0;
    b->payload = b->raw;
    b->payload_len = (uint32_t)b->used;
    bool want = o->codec != PIER_CODEC_NONE &&
                (o->adaptive ? pc_should_compress(&c->adapt, b->used, o->compress_min_bytes)
                             : b->used >= o->compress_min_bytes);
    if (want) {
        uint64_t t0 = pn_now_ns();
        size_t cap = pc_bound(o->codec, b->used);
        size_t n = pc_compress(&c->cctx, o->codec, b->raw, b->used, b->wire, cap);
        uint64_t ns = pn_now_ns() - t0;
        pc_note_compress(&c->adapt, b->used, n, ns);
        pthread_mutex_lock(&c->p->lock);
        c->stats.compress_ns += ns;
        pthread_mutex_unlock(&c->p->lock);
        if (n > 0 && n < b->used) { /* never send a "compressed" batch that grew */
            codec = (uint8_t)o->codec;
            b->payload = b->wire;
            b->payload_len = (uint32_t)n;
        }
    }
    pb_header h = {.type = PB_BATCH, .codec = codec, .seq = b->seq, .count = b->count,
                   .raw_len = (uint32_t)b->used, .payload_len = b->payload_len,
                   .crc = crc32c(0, b->payload, b->payload_len)};
    pb_encode_header(&h, b->hdr);
}

/* Write header + payload with one writev (or zero-copy sendmsg). Reads
 * nothing of b after the write: its ACK may already have released it. */
static int write_batch(pconn *c, pbuf *b) {
    uint32_t wire = PB_HEADER_LEN + b->payload_len;
    bool compressed = b->payload != b->raw;
    struct iovec iov[2] = {{b->hdr, PB_HEADER_LEN}, {(void *)b->payload, b->payload_len}};
    uint64_t t0 = pn_now_ns();
    size_t zmin = c->p->opt.zerocopy_min_bytes;
    int rc = c->zc_on && zmin && b->payload_len >= zmin ? send_zerocopy(c, iov, 2, b)
                                                        : pn_writev_all(c->fd, iov, 2);
    uint64_t ns = pn_now_ns() - t0;
    if (rc == PIER_OK) pc_note_send(&c->adapt, wire, ns);
    pthread_mutex_lock(&c->p->lock);
    c->stats.send_ns += ns;
    if (rc == PIER_OK) {
        c->stats.batches++;
        c->stats.wire_bytes += wire;
        c->stats.compressed_batches += compressed;
    }
    pthread_mutex_unlock(&c->p->lock);
    if (c->zc_on) pconn_drain_zerocopy(c);
    return rc;
}

static void mark_broken(pconn *c) {
    pthread_mutex_lock(&c->p->lock);
    c->broken = true;
    pthread_mutex_unlock(&c->p->lock);
}

static bool is_broken(pconn *c) {
    pthread_mutex_lock(&c->p->lock);
    bool broken = c->broken;
    pthread_mutex_unlock(&c->p->lock);
    return broken;
}

int pconn_send(pconn *c, pbuf *b) {
    pier_publisher *p = c->p;
    if (!p->cluster && is_broken(c)) {
        int rc = pconn_connect(c);
        if (rc) return rc;
    }
    if (p->cluster) {
        pthread_mutex_lock(&p->lock);
        b->seq = p->next_seq++;
        pthread_mutex_unlock(&p->lock);
    } else {
        b->seq = c->next_seq++;
    }
    encode_batch(c, b);
    b->wire_len = PB_HEADER_LEN + b->payload_len;
    pthread_mutex_lock(&p->lock);
    p->in_flight++;
    if (p->cluster && c->broken) { /* broke since it was picked: another one sends it */
        orphan(p, b);
        pthread_mutex_unlock(&p->lock);
        return PIER_OK;
    }
    c->stats.messages += b->count;
    c->stats.raw_bytes += b->used;
    /* Queue before writing: the ACK may arrive before writev returns. */
    enqueue_unacked(c, b);
    pthread_mutex_unlock(&p->lock);
    int rc = write_batch(c, b);
    pthread_mutex_lock(&p->lock);
    pconn_release_done(c); /* ack level 0 without zero copy: free now */
    pthread_mutex_unlock(&p->lock);
    if (rc == PIER_OK) return PIER_OK;
    if (p->cluster) {
        if (pconn_break(c) >= 0)
            pub_log(p, "connection %s:%d lost (%s); its batches go to the other connections",
                    c->host, c->port, pier_last_error());
        return PIER_OK;
    }
    /* The batch stays queued: the reconnect resends it if the server
     * did not get it (ack level >= 1). */
    mark_broken(c);
    return pconn_connect(c);
}

int pconn_resend(pconn *c, pbuf *b) {
    pier_publisher *p = c->p;
    pthread_mutex_lock(&p->lock);
    if (c->broken) {
        b->next = p->orphans; /* back to the front: it is the oldest */
        p->orphans = b;
        if (!p->orphans_tail) p->orphans_tail = b;
        pthread_mutex_unlock(&p->lock);
        return PIER_E_IO;
    }
    c->stats.messages += b->count;
    c->stats.raw_bytes += b->used;
    c->stats.resent_batches++;
    enqueue_unacked(c, b);
    pthread_mutex_unlock(&p->lock);
    int rc = write_batch(c, b); /* the header holds its sequence already */
    pthread_mutex_lock(&p->lock);
    pconn_release_done(c);
    pthread_mutex_unlock(&p->lock);
    if (rc && pconn_break(c) >= 0)
        pub_log(p, "connection %s:%d lost (%s); its batches go to the other connections",
                c->host, c->port, pier_last_error());
    return rc;
}

/* ---------------------------------------------------------- ACK reader */

static void reader_fail(pconn *c, int rc, bool fatal) {
    pier_publisher *p = c->p;
    pthread_mutex_lock(&p->lock);
    bool quiet = p->stopping && rc == PIER_E_IO;
    bool cluster = p->cluster;
    if (!cluster || fatal) c->broken = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (fatal) {
        pub_set_failed(p, rc, pier_last_error());
    } else if (cluster) {
        char why[200];
        snprintf(why, sizeof why, "%s", pier_last_error());
        int moved = pconn_break(c);
        if (moved >= 0 && !quiet)
            pub_log(p, "connection %s:%d lost (%s); %d unacknowledged batch(es) go to the other "
                    "connections; reconnecting in the background", c->host, c->port, why, moved);
        pub_resend_orphans(p);
    } else if (!quiet) {
        pub_log(p, "connection %s:%d lost (%s); will reconnect", c->host, c->port,
                pier_last_error());
    }
}

/* Mark what an ACK frame acknowledges: exactly seq (SINGLE), or
 * (cumulative) every batch this connection sent up to the one with seq:
 * in single mode that is every sequence up to seq. Returns the messages
 * newly acknowledged. Caller holds p->lock. */
static uint32_t apply_ack(pconn *c, const pb_header *h) {
    uint32_t msgs = 0;
    if (h->flags & PB_FLAG_SINGLE) {
        for (pbuf *b = c->unacked_head; b; b = b->next)
            if (b->seq == h->seq) {
                msgs = mark_acked(c, b);
                break;
            }
    } else if (c->p->cluster) {
        /* Cumulative on a striped connection: the batches it received up
         * to the one with this sequence (a resent orphan may have a lower
         * sequence and still be on its way). */
        pbuf *hit = c->unacked_head;
        while (hit && hit->seq != h->seq) hit = hit->next;
        for (pbuf *b = c->unacked_head; hit && b; b = b->next)
            if (b->sent_no <= hit->sent_no) msgs += mark_acked(c, b);
    } else {
        for (pbuf *b = c->unacked_head; b; b = b->next)
            if (b->seq <= h->seq) msgs += mark_acked(c, b);
        if (h->seq > c->acked_seq) c->acked_seq = h->seq;
    }
    if (h->flags & PB_FLAG_DUPLICATE) c->stats.duplicate_acks++;
    if ((h->flags & PB_FLAG_SKIPPED) && msgs) c->stats.skipped_batches++;
    return msgs;
}

static int handle_ack(pconn *c, const pb_header *h, int fd) {
    uint8_t payload[16];
    int rc = pn_read_full(fd, payload, h->payload_len);
    if (rc) return rc;
    pier_publisher *p = c->p;
    pthread_mutex_lock(&p->lock);
    uint32_t msgs = apply_ack(c, h);
    pconn_release_done(c);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if ((h->flags & PB_FLAG_SKIPPED) && msgs)
        pub_log(p, "batch %llu (%u messages) was skipped by the cluster (%s:%d): it came after "
                "the publisher's later batches were ordered; it is not in the log",
                (unsigned long long)h->seq, msgs, c->host, c->port);
    if (p->opt.on_ack)
        p->opt.on_ack(p->opt.on_ack_ctx, h->seq, msgs,
                      h->flags & (PB_FLAG_DUPLICATE | PB_FLAG_SINGLE | PB_FLAG_UNORDERED |
                                  PB_FLAG_SKIPPED));
    return PIER_OK;
}

static int read_error_frame(int fd, const pb_header *h) {
    uint8_t text[512];
    size_t keep = h->payload_len < sizeof text ? h->payload_len : sizeof text;
    int rc = pn_read_full(fd, text, keep);
    return rc ? rc : pb_error_frame(text, keep);
}

static void *reader_main(void *arg) {
    pconn *c = arg;
    int fd = c->fd; /* stable: reconnect joins this thread before replacing it */
    for (;;) {
        uint8_t raw[PB_HEADER_LEN];
        pb_header h;
        int rc = pn_read_full(fd, raw, sizeof raw);
        if (rc) { reader_fail(c, rc, false); return NULL; }
        rc = pb_decode_header(raw, PB_MAX_PAYLOAD, &h);
        if (rc == PIER_OK && h.type == PB_ACK) rc = handle_ack(c, &h, fd);
        else if (rc == PIER_OK && h.type == PB_ERROR) {
            reader_fail(c, read_error_frame(fd, &h), true);
            return NULL;
        } else if (rc == PIER_OK) {
            rc = pier_fail(PIER_E_PROTOCOL, "unexpected frame type %u to a publisher", h.type);
        }
        if (rc == PIER_E_PROTOCOL) { reader_fail(c, rc, true); return NULL; }
        if (rc) { reader_fail(c, rc, false); return NULL; }
    }
}

/* ----------------------------------------------------------- handshake */

/* Send the handshake and read HELLO_OK into *ok (c->max_payload too).
 * Every libpier publisher says STRIPED: in cluster mode its connections
 * share one client id; a single node ignores the flag. */
static int handshake(pconn *c, int fd, pb_hello_ok *ok) {
    pier_publisher *p = c->p;
    pb_handshake hs = {.role = PB_ROLE_PUBLISHER, .ack_level = p->opt.ack_level,
                       .order_level = p->opt.order_level,
                       .replication = (unsigned)p->opt.replication, .flags = PB_HS_STRIPED,
                       .client_id = c->client_id, .token = p->password, .topic = p->topic};
    char peer[300];
    snprintf(peer, sizeof peer, "%s:%d", c->host, c->port);
    int rc = pb_hello(fd, &hs, peer, ok);
    if (rc) return rc;
    c->max_payload = ok->max_payload;
    if (ok->next_seq == 0) return pier_fail(PIER_E_PROTOCOL, "HELLO_OK with next sequence 0");
    return PIER_OK;
}

/* The first HELLO_OK fixes the mode; every later one must agree. */
static int check_mode(pconn *c, const pb_hello_ok *ok) {
    pier_publisher *p = c->p;
    pthread_mutex_lock(&p->lock);
    if (!p->mode_known) {
        p->mode_known = true;
        p->cluster = ok->cluster;
        p->cluster_nodes = ok->cluster_nodes;
    }
    bool same = p->cluster == ok->cluster;
    pthread_mutex_unlock(&p->lock);
    if (same) return PIER_OK;
    return pier_fail(PIER_E_INVALID, "%s:%d is %s cluster mode but %s:%d is %s: give the nodes "
                     "of one cluster, or single nodes", c->host, c->port,
                     ok->cluster ? "in" : "not in", p->conns[0].host, p->conns[0].port,
                     ok->cluster ? "not" : "");
}

static void stop_reader(pconn *c) {
    if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
    if (c->reader_running) pthread_join(c->reader, NULL);
    c->reader_running = false;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

/* Drop batches the server already has (seq < next) and renumber the rest
 * if the server forgot batches it had acknowledged (restart without
 * persistence): they are resent from `next`. Returns the count to resend
 * or -1 when the server is ahead of us (client id used by someone else). */
static int reconcile(pconn *c, uint64_t next) {
    pier_publisher *p = c->p;
    pthread_mutex_lock(&p->lock);
    if (next > c->next_seq) {
        pthread_mutex_unlock(&p->lock);
        return -1;
    }
    bool forgot = next - 1 < c->acked_seq;
    c->acked_seq = next - 1;
    for (pbuf *b = c->unacked_head; b; b = b->next)
        if (b->seq < next) mark_acked(c, b); /* HELLO_OK acknowledges these */
    c->zc_done = c->zc_next_id; /* the old socket is gone: no completion will come */
    for (pbuf *b = c->unacked_head; b; b = b->next) b->zc_pending = false;
    pconn_release_done(c);
    int resend = 0;
    uint64_t seq = next;
    for (pbuf *b = c->unacked_head; b; b = b->next, resend++) b->seq = seq++;
    c->next_seq = seq;
    c->broken = false;
    pthread_mutex_unlock(&p->lock);
    if (forgot)
        pub_log(p, "server %s:%d forgot acknowledged batches (next sequence %llu); "
                "resending the unacknowledged ones from there", c->host, c->port,
                (unsigned long long)next);
    return resend;
}

/* The queued buffer with sequence seq, NULL if it was acknowledged and
 * released meanwhile. Caller holds p->lock. Searching by sequence instead
 * of following links keeps us off buffers the ACK reader moves to the
 * free list while we write. */
static pbuf *find_unacked(pconn *c, uint64_t seq) {
    for (pbuf *b = c->unacked_head; b; b = b->next)
        if (b->seq == seq) return b->acked ? NULL : b;
    return NULL;
}

static int resend_unacked(pconn *c, uint64_t first, uint64_t end) {
    for (uint64_t seq = first; seq < end; seq++) {
        pthread_mutex_lock(&c->p->lock);
        pbuf *b = find_unacked(c, seq);
        pthread_mutex_unlock(&c->p->lock);
        if (!b) continue;
        /* b cannot be released before this write: its ACK needs it sent. */
        pb_header h = {.type = PB_BATCH, .codec = b->hdr[6], .seq = b->seq, .count = b->count,
                       .raw_len = (uint32_t)b->used, .payload_len = b->payload_len,
                       .crc = codec_get_le32(b->hdr + 28)};
        pb_encode_header(&h, b->hdr);
        int rc = write_batch(c, b);
        if (rc) return rc;
    }
    return PIER_OK;
}

/* Cluster mode after HELLO_OK: nothing to renumber (the batches of a
 * failed connection went elsewhere); the node's next sequence only
 * tells whether someone else publishes with our client id. */
static int cluster_ready(pconn *c, uint64_t next) {
    pier_publisher *p = c->p;
    pthread_mutex_lock(&p->lock);
    uint64_t mine = p->next_seq;
    bool ok = next <= mine;
    if (ok) {
        c->zc_done = c->zc_next_id;
        c->broken = false;
    }
    pthread_mutex_unlock(&p->lock);
    if (ok) return PIER_OK;
    return pier_fail(PIER_E_PROTOCOL, "%s:%d expects sequence %llu but only %llu were sent: "
                     "is client id %llu used by another publisher?", c->host, c->port,
                     (unsigned long long)next, (unsigned long long)(mine - 1),
                     (unsigned long long)c->client_id);
}

static int start_reader(pconn *c) {
    if (pthread_create(&c->reader, NULL, reader_main, c) != 0)
        return pier_fail(PIER_E_NOMEM, "cannot start the ACK reader thread");
    c->reader_running = true;
    return PIER_OK;
}

/* One attempt: connect, handshake, reconcile, start the reader, resend. */
static int connect_once(pconn *c) {
    const pier_publisher_options *o = &c->p->opt;
    int fd = pn_connect(c->host, c->port, o->nodelay, o->sndbuf, o->rcvbuf);
    if (fd < 0 && !c->connected_once) {
        char why[200];
        snprintf(why, sizeof why, "%s", pier_last_error());
        return pier_fail(PIER_E_CONNECT, "%s (is the batch port on?)", why);
    }
    if (fd < 0) return PIER_E_CONNECT;
    pb_hello_ok ok;
    int rc = handshake(c, fd, &ok);
    if (!rc) rc = check_mode(c, &ok);
    if (!rc && o->batch_bytes > c->max_payload)
        rc = pier_fail(PIER_E_INVALID, "batch size %zu over the server's limit %u",
                       o->batch_bytes, c->max_payload);
    if (rc) {
        close(fd);
        return rc;
    }
    int one = 1;
    c->zc_on = o->zerocopy_min_bytes > 0 &&
               setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) == 0;
    c->fd = fd;
    if (c->p->cluster) {
        rc = cluster_ready(c, ok.next_seq);
        return rc ? rc : start_reader(c);
    }
    uint64_t first = ok.next_seq;
    int resend = reconcile(c, ok.next_seq);
    if (resend < 0)
        return pier_fail(PIER_E_PROTOCOL, "server expects sequence %llu but only %llu were sent: "
                         "is client id %llu used by another publisher?",
                         (unsigned long long)ok.next_seq, (unsigned long long)(c->next_seq - 1),
                         (unsigned long long)c->client_id);
    if ((rc = start_reader(c))) return rc;
    return resend ? resend_unacked(c, first, c->next_seq) : PIER_OK;
}

static bool retryable(int rc) { return rc == PIER_E_CONNECT || rc == PIER_E_IO; }

/* The first connection (from pier_publisher_open) is tried once: a node
 * that is down or not a batch port fails the open at once. A connection
 * lost later is retried for reconnect_ms. */
int pconn_connect(pconn *c) {
    pier_publisher *p = c->p;
    uint64_t deadline = pn_now_ns() + (uint64_t)p->opt.reconnect_ms * 1000000ull;
    unsigned backoff_ms = 10;
    for (;;) {
        stop_reader(c);
        int rc = connect_once(c);
        if (rc == PIER_OK) {
            if (c->connected_once) {
                pthread_mutex_lock(&p->lock);
                c->stats.reconnects++;
                pthread_mutex_unlock(&p->lock);
            }
            c->connected_once = true;
            return PIER_OK;
        }
        if (!retryable(rc) || !c->connected_once || pn_now_ns() >= deadline) {
            stop_reader(c);
            return pub_set_failed(p, rc, pier_last_error());
        }
        struct timespec ts = {0, (long)backoff_ms * 1000000L};
        nanosleep(&ts, NULL);
        if (backoff_ms < 200) backoff_ms *= 2;
    }
}

int pconn_reconnect(pconn *c) {
    pier_publisher *p = c->p;
    stop_reader(c);
    int rc = connect_once(c);
    if (rc) stop_reader(c);
    pthread_mutex_lock(&p->lock);
    if (rc == PIER_OK) {
        c->stats.reconnects++;
        c->backoff_ms = 0;
    } else {
        c->backoff_ms = c->backoff_ms ? (c->backoff_ms < 500 ? c->backoff_ms * 2 : 1000) : 20;
        c->retry_at_ns = pn_now_ns() + (uint64_t)c->backoff_ms * 1000000ull;
    }
    pthread_mutex_unlock(&p->lock);
    if (rc == PIER_OK && p->opt.verbose)
        pub_log(p, "connection %s:%d is back", c->host, c->port);
    if (rc && !retryable(rc)) pub_set_failed(p, rc, pier_last_error());
    return rc;
}

void pconn_shutdown(pconn *c) {
    stop_reader(c);
    pc_ctx_free(&c->cctx);
}
