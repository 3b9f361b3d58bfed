/* bus.c - the cluster bus: dialling, the authenticated hello handshake,
 * framing with a MAC per frame, send gathering, idle timeouts. See bus.h
 * and busauth.h for the wire format.
 *
 * Timers. The loop's ev_timer_add has millisecond granularity and no way to
 * cancel a timer, so a timer whose argument is the bus would fire after
 * bus_destroy (the test destroys and recreates a bus on a running loop).
 * The bus therefore owns two timerfds, watched as ordinary fds: a periodic
 * 100 ms tick (redial, idle and handshake timeouts) and a one-shot gather
 * timer armed with microsecond precision at the earliest gathering
 * deadline. A 200 us window thus costs 200 us, not a rounded-up 1 ms.
 *
 * Closing happens in three steps, because a link can fail anywhere (inside
 * on_recv, inside bus_send, on a timeout):
 *   1. link_kill: stop the I/O, detach the link from its peer, put it on
 *      the dead list. No callback, no free, so it is safe everywhere.
 *   2. bus_reap: close the fd and report on_link(down); only when no
 *      callback of ours is on the stack (callback_depth == 0), i.e. at the
 *      end of each fd handler and in bus_before_sleep.
 *   3. free_dead: free the memory, only in bus_before_sleep (outside the
 *      epoll batch, whose later events may still point to the ev_io). */
#include "cluster/bus.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "lib/clock.h"
#include "lib/codec.h"
#include "lib/log.h"
#include "lib/mem.h"
#include "net/socket.h"

#define BUS_TICK_MS 100                  /* redial period and timeout check */
#define BUS_DEFAULT_HANDSHAKE_MS 1000
#define BUS_MAX_PENDING 16               /* accepted, hello not yet received */
#define BUS_RBUF_INITIAL (16u * 1024)
#define BUS_OBUF_INITIAL (16u * 1024)
#define BUS_BUF_KEEP (1u * 1024 * 1024)  /* larger idle buffers are released */
#define BUS_FLUSH_NOW_BYTES (256u * 1024)  /* gathering stops above this */
#define BUS_REFUSAL_WARN_MS 1000         /* at most one refusal line a second */
#define BUS_HOST_MAX 64

/* A dialled link: DIALING -> HELLO_WAIT (its HELLO sent, waiting for the
 * HELLO+PROOF) -> UP (PROOF sent). An accepted one: HELLO_WAIT (waiting for
 * the HELLO) -> PROOF_WAIT (HELLO+PROOF sent) -> UP (the PROOF checked). */
typedef enum { LINK_DIALING, LINK_HELLO_WAIT, LINK_PROOF_WAIT, LINK_UP } link_state;

typedef struct bus_link {
    bus *b;
    ev_io io;
    link_state state;
    int dialled;          /* we dialled (we wait for the hello reply) */
    /* The dialled peer, or the id an accepted link's HELLO claims (proven
     * only once the link is up: until then it stays a pending link and
     * never replaces the peer's link); 0 unknown. */
    int peer_id;
    int up;               /* on_link(up) was reported */
    int dead;             /* killed: I/O stopped, on the dead list */
    int closed;           /* fd closed and on_link(down) reported */
    int want_write;       /* the socket was full: EV_WRITE is watched */
    int64_t created_ms, last_recv_ms;
    int64_t gather_start_us; /* when the oldest unsent byte was queued */
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *obuf;
    size_t ohead, olen, ocap; /* unsent bytes are obuf[ohead, olen) */
    struct bus_link *next_dead;
    bus_transcript tr;    /* this link's handshake (ids, hash, both nonces) */
    bus_mac tx_mac, rx_mac; /* frame MACs once up: ours, and the peer's */
} bus_link;

typedef struct bus_peer {
    bus_peer_addr addr;
    struct sockaddr_storage sa;
    socklen_t salen;
    bus_link *link; /* dialling, handshaking or up; NULL when none */
} bus_peer;

struct bus {
    ev_loop *loop;
    bus_config cfg;
    char bind_host[BUS_HOST_MAX];
    bus_peer peers[BUS_MAX_PEERS];
    ev_io listen_io;
    ev_io tick_io;   /* timerfd, periodic */
    ev_io gather_io; /* timerfd, one-shot */
    int64_t gather_armed_us; /* deadline the gather timer is set to; 0 none */
    bus_link *pending[BUS_MAX_PENDING];
    bus_link *dead;
    int callback_depth;
    int64_t refusal_warn_ms;
    unsigned refusals_suppressed;
    bus_stats stats;
    uint8_t key[BUS_KEY_MAX]; /* the cluster secret (or BUS_PUBLIC_KEY) */
    size_t key_len;
};

/* --- small helpers --- */

static bus_peer *peer_by_id(bus *b, int id) {
    for (int i = 0; i < b->cfg.npeers; i++)
        if (b->peers[i].addr.id == id) return &b->peers[i];
    return NULL;
}

/* A misconfigured node redials every 100 ms; one line a second is enough
 * to say so without flooding the log. */
__attribute__((format(printf, 2, 3))) static void warn_refusal(bus *b, const char *fmt, ...) {
    int64_t now = clock_mono_ms();
    if (b->refusal_warn_ms && now - b->refusal_warn_ms < BUS_REFUSAL_WARN_MS) {
        b->refusals_suppressed++;
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (b->refusals_suppressed)
        log_warn("cluster bus: %s (%u similar refusals not logged)", msg, b->refusals_suppressed);
    else
        log_warn("cluster bus: %s", msg);
    b->refusal_warn_ms = now;
    b->refusals_suppressed = 0;
}

/* "ip:port" of the other end, for refusal lines. */
static const char *remote_name(const bus_link *l, char buf[64]) {
    sock_format_addr(l->io.fd, 0, buf, 64);
    return buf;
}

/* --- link lifetime --- */

static void link_io(ev_loop *loop, ev_io *io, uint32_t ready);

static bus_link *link_new(bus *b, int fd, link_state state, int peer_id) {
    bus_link *l = xmalloc(sizeof *l);
    memset(l, 0, sizeof *l);
    l->b = b;
    l->state = state;
    l->dialled = state == LINK_DIALING;
    l->peer_id = peer_id;
    l->created_ms = l->last_recv_ms = clock_mono_ms();
    ev_io_init(&l->io, fd, link_io, l);
    return l;
}

static void link_detach(bus *b, bus_link *l) {
    bus_peer *p = peer_by_id(b, l->peer_id);
    if (p && p->link == l) p->link = NULL;
    for (int i = 0; i < BUS_MAX_PENDING; i++)
        if (b->pending[i] == l) b->pending[i] = NULL;
}

/* Step 1 of closing (see the top of the file): safe anywhere. */
static void link_kill(bus_link *l) {
    if (l->dead) return;
    bus *b = l->b;
    l->dead = 1;
    ev_io_stop(b->loop, &l->io);
    link_detach(b, l);
    l->next_dead = b->dead;
    b->dead = l;
}

static void report_link(bus *b, int peer_id, int up) {
    if (!b->cfg.on_link) return;
    b->callback_depth++;
    b->cfg.on_link(b->cfg.arg, peer_id, up);
    b->callback_depth--;
}

/* Step 2: close and report. A down callback may kill more links (a send
 * that fails), so look again from the start until none is left. */
static void bus_reap(bus *b) {
    if (b->callback_depth) return;
    for (;;) {
        bus_link *l = b->dead;
        while (l && l->closed) l = l->next_dead;
        if (!l) return;
        close(l->io.fd);
        l->closed = 1;
        if (l->up) {
            l->up = 0;
            b->stats.disconnects++;
            report_link(b, l->peer_id, 0);
        }
    }
}

static void link_free(bus_link *l) {
    bus_mac_free(&l->tx_mac);
    bus_mac_free(&l->rx_mac);
    free(l->rbuf);
    free(l->obuf);
    free(l);
}

/* Step 3: only outside the epoll batch. */
static void free_dead(bus *b) {
    bus_reap(b);
    bus_link **pp = &b->dead;
    while (*pp) {
        bus_link *l = *pp;
        if (!l->closed) { /* a callback is on the stack: next time */
            pp = &l->next_dead;
            continue;
        }
        *pp = l->next_dead;
        link_free(l);
    }
}

static void link_watch(bus_link *l) {
    uint32_t ev = l->state == LINK_DIALING ? EV_WRITE : EV_READ;
    if (l->want_write) ev |= EV_WRITE;
    if (ev_io_set(l->b->loop, &l->io, ev) < 0) {
        log_warn("cluster bus: peer %d: epoll: %s", l->peer_id, strerror(errno));
        link_kill(l);
    }
}

/* --- output --- */

static size_t link_unsent(const bus_link *l) { return l->olen - l->ohead; }

/* Make room for n more bytes at the end of obuf, moving the unsent bytes
 * to the front first so that a partly written buffer does not grow. */
static void obuf_reserve(bus_link *l, size_t n) {
    if (l->ocap - l->olen >= n) return;
    size_t unsent = link_unsent(l);
    if (l->ohead) {
        memmove(l->obuf, l->obuf + l->ohead, unsent);
        l->ohead = 0;
        l->olen = unsent;
    }
    if (l->ocap - l->olen >= n) return;
    size_t cap = l->ocap ? l->ocap : BUS_OBUF_INITIAL;
    while (cap - unsent < n) cap = cap > SIZE_MAX / 2 ? unsent + n : cap * 2;
    l->obuf = xrealloc(l->obuf, cap);
    l->ocap = cap;
}

static void obuf_emptied(bus_link *l) {
    l->ohead = l->olen = 0;
    if (l->ocap > BUS_BUF_KEEP) { /* one large message should not pin its buffer */
        free(l->obuf);
        l->obuf = NULL;
        l->ocap = 0;
    }
}

/* Write what is queued. send(MSG_NOSIGNAL) rather than write(): a peer
 * that vanished must not raise SIGPIPE in a process that did not ignore it. */
static void link_flush(bus_link *l) {
    bus *b = l->b;
    while (link_unsent(l) && !l->dead) {
        ssize_t n = send(l->io.fd, l->obuf + l->ohead, link_unsent(l), MSG_NOSIGNAL);
        b->stats.writes++;
        if (n > 0) {
            l->ohead += (size_t)n;
            b->stats.bytes_sent += (uint64_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!l->want_write) {
                l->want_write = 1;
                link_watch(l);
            }
            return;
        } else {
            log_info("cluster bus: peer %d: write: %s; closing the link", l->peer_id,
                     n < 0 ? strerror(errno) : "no progress");
            link_kill(l);
            return;
        }
    }
    if (l->dead) return;
    obuf_emptied(l);
    if (l->want_write) {
        l->want_write = 0;
        link_watch(l);
    }
}

/* Append one frame; the caller checked the limits. Once the link is up
 * the frame carries its MAC. 0, or -1 when the frame could not be signed
 * (libcrypto failed): the link is then dropped. */
static int link_queue_frame(bus_link *l, uint8_t type, const struct iovec *iov, int iovcnt,
                            size_t len) {
    size_t mac = l->state == LINK_UP ? BUS_MAC_LEN : 0;
    if (!link_unsent(l)) l->gather_start_us = clock_mono_us();
    obuf_reserve(l, BUS_FRAME_HEADER + len + mac);
    uint8_t *start = l->obuf + l->olen, *p = start;
    codec_put_le32(p, (uint32_t)(len + 1 + mac));
    p[4] = type;
    p += BUS_FRAME_HEADER;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_len) continue; /* iov_base may be NULL */
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    if (mac && bus_mac_sign(&l->tx_mac, start, BUS_FRAME_HEADER + len, p) < 0) {
        log_warn("cluster bus: node %d: cannot sign a frame (libcrypto); closing the link",
                 l->peer_id);
        link_kill(l);
        return -1;
    }
    l->olen += BUS_FRAME_HEADER + len + mac;
    return 0;
}

/* One handshake frame (no MAC), written at once: the handshake is not
 * gathered. */
static void send_handshake(bus_link *l, const uint8_t *payload, size_t n) {
    struct iovec iov = {(void *)payload, n}; /* only read */
    link_queue_frame(l, BUS_HELLO_TYPE, &iov, 1, n);
    link_flush(l);
}

/* --- the handshake (busauth.h) --- */

/* The dialler's first frame: HELLO with a fresh nonce. */
static void send_hello(bus_link *l) {
    bus *b = l->b;
    l->tr.hash = b->cfg.cluster_hash;
    l->tr.dialler_id = b->cfg.self_id;
    l->tr.acceptor_id = l->peer_id;
    if (bus_random(l->tr.dialler_nonce, BUS_NONCE_LEN) < 0) {
        log_warn("cluster bus: no random bytes for a nonce (libcrypto)");
        link_kill(l);
        return;
    }
    uint8_t hello[BUS_HELLO_PAYLOAD];
    bus_hello_write(hello, b->cfg.self_id, b->cfg.cluster_hash, l->tr.dialler_nonce);
    send_handshake(l, hello, sizeof hello);
}

/* Decode a HELLO (or HELLO+PROOF) and check magic, version and the
 * membership hash. 0 or -1 (refusal logged). */
static int hello_check(bus_link *l, const bus_frame *f, int with_proof, bus_hello *h) {
    bus *b = l->b;
    char from[64];
    int rc = bus_hello_read(f->type, f->payload, f->len, with_proof, h);
    if (rc == BUS_HELLO_VERSION_)
        warn_refusal(b, "refused %s: bus version %u, want %d", remote_name(l, from), h->version,
                     BUS_HELLO_VERSION);
    else if (rc != BUS_HELLO_OK)
        warn_refusal(b, "refused %s: not a bus hello", remote_name(l, from));
    else if (h->hash != b->cfg.cluster_hash)
        warn_refusal(b, "refused %s (node %d): another cluster membership (hash %016llx, ours %016llx)",
                     remote_name(l, from), h->id, (unsigned long long)h->hash,
                     (unsigned long long)b->cfg.cluster_hash);
    else
        return 0;
    return -1;
}

/* Key this link's frame MACs from the finished handshake. 0, or -1 with
 * the link killed. */
static int link_keys(bus_link *l) {
    bus *b = l->b;
    bus_role self = l->dialled ? BUS_DIALLER : BUS_ACCEPTOR;
    bus_role peer = l->dialled ? BUS_ACCEPTOR : BUS_DIALLER;
    if (bus_mac_init(&l->tx_mac, b->key, b->key_len, &l->tr, self) < 0 ||
        bus_mac_init(&l->rx_mac, b->key, b->key_len, &l->tr, peer) < 0) {
        log_warn("cluster bus: node %d: cannot key the frame MACs (libcrypto)", l->peer_id);
        link_kill(l);
        return -1;
    }
    return 0;
}

static void link_up(bus_link *l) {
    bus *b = l->b;
    l->state = LINK_UP;
    l->up = 1;
    b->stats.connects++;
    log_info("cluster bus: link to node %d up", l->peer_id);
    report_link(b, l->peer_id, 1);
}

/* The dialler got HELLO+PROOF: the peer it dialled must answer and prove
 * the secret over both nonces; then it proves it in turn and is up. */
static void dialler_hello(bus_link *l, const bus_frame *f) {
    bus *b = l->b;
    bus_hello h;
    if (hello_check(l, f, 1, &h) < 0) {
        link_kill(l);
        return;
    }
    if (h.id != l->peer_id) {
        warn_refusal(b, "node %d answered as node %d; check the cluster addresses", l->peer_id,
                     h.id);
        link_kill(l);
        return;
    }
    memcpy(l->tr.acceptor_nonce, h.nonce, BUS_NONCE_LEN);
    if (!bus_proof_ok(b->key, b->key_len, &l->tr, BUS_ACCEPTOR, h.proof)) {
        warn_refusal(b, "node %d did not prove the cluster secret; every node needs the same "
                        "cluster-secret", l->peer_id);
        link_kill(l);
        return;
    }
    uint8_t proof[BUS_PROOF_LEN];
    if (bus_proof(b->key, b->key_len, &l->tr, BUS_DIALLER, proof) < 0) {
        log_warn("cluster bus: cannot compute a proof (libcrypto)");
        link_kill(l);
        return;
    }
    if (link_keys(l) < 0) return;
    send_handshake(l, proof, sizeof proof); /* not up yet: no MAC */
    if (!l->dead) link_up(l);
}

/* The acceptor got a HELLO: the sender claims a configured lower id (lower
 * ids dial). The claim is not trusted yet: the link stays pending and is
 * answered with a nonce of ours and our proof. */
static void accept_hello(bus_link *l, const bus_frame *f) {
    bus *b = l->b;
    bus_hello h;
    if (hello_check(l, f, 0, &h) < 0) {
        link_kill(l);
        return;
    }
    if (!peer_by_id(b, h.id) || h.id >= b->cfg.self_id) {
        char from[64];
        warn_refusal(b, "refused %s: node %d is not a lower-id member of this cluster",
                     remote_name(l, from), h.id);
        link_kill(l);
        return;
    }
    l->peer_id = h.id;
    l->tr.hash = b->cfg.cluster_hash;
    l->tr.dialler_id = h.id;
    l->tr.acceptor_id = b->cfg.self_id;
    memcpy(l->tr.dialler_nonce, h.nonce, BUS_NONCE_LEN);
    uint8_t out[BUS_HELLO_PROOF_PAYLOAD];
    if (bus_random(l->tr.acceptor_nonce, BUS_NONCE_LEN) < 0 ||
        bus_proof(b->key, b->key_len, &l->tr, BUS_ACCEPTOR, out + BUS_HELLO_PAYLOAD) < 0) {
        log_warn("cluster bus: cannot answer a hello (libcrypto)");
        link_kill(l);
        return;
    }
    bus_hello_write(out, b->cfg.self_id, b->cfg.cluster_hash, l->tr.acceptor_nonce);
    l->state = LINK_PROOF_WAIT;
    send_handshake(l, out, sizeof out);
}

/* The acceptor got the PROOF. Only now is the sender known to be the
 * node it claimed: its link replaces any old one of that node (the node
 * restarted, or the old link is half-open). */
static void accept_proof(bus_link *l, const bus_frame *f) {
    bus *b = l->b;
    if (f->type != BUS_HELLO_TYPE || f->len != BUS_PROOF_PAYLOAD ||
        !bus_proof_ok(b->key, b->key_len, &l->tr, BUS_DIALLER, f->payload)) {
        char from[64];
        warn_refusal(b, "refused %s: it claimed to be node %d but did not prove the cluster "
                        "secret", remote_name(l, from), l->peer_id);
        link_kill(l);
        return;
    }
    if (link_keys(l) < 0) return;
    bus_peer *p = peer_by_id(b, l->peer_id);
    if (p->link) {
        log_info("cluster bus: node %d reconnected; closing its old link", l->peer_id);
        link_kill(p->link);
        bus_reap(b); /* down for the old link before up for the new */
    }
    link_detach(b, l); /* leave the pending slots */
    p->link = l;
    link_up(l);
}

static void handle_handshake(bus_link *l, const bus_frame *f) {
    if (l->state == LINK_PROOF_WAIT)
        accept_proof(l, f);
    else if (l->dialled)
        dialler_hello(l, f);
    else
        accept_hello(l, f);
}

/* --- input --- */

/* What the next frame of this link must be. */
static bus_rx_state link_rx(const bus_link *l) {
    if (l->state == LINK_UP) return BUS_RX_FRAMES;
    if (l->state == LINK_PROOF_WAIT) return BUS_RX_PROOF;
    return l->dialled ? BUS_RX_HELLO_PROOF : BUS_RX_HELLO;
}

/* A frame header the splitter refused (on its length, before any byte of
 * the frame was buffered: a bad peer cannot make us reserve memory). */
static void split_refused(bus_link *l, const uint8_t *hdr) {
    char from[64];
    unsigned flen = (unsigned)codec_get_le32(hdr);
    if (l->state != LINK_UP)
        warn_refusal(l->b, "refused %s: not a bus handshake (frame length %u)",
                     remote_name(l, from), flen);
    else
        warn_refusal(l->b, "node %d sent a frame of length %u (%d..%zu allowed); dropping the link",
                     l->peer_id, flen, 1 + BUS_MAC_LEN, l->b->cfg.max_frame + 1 + BUS_MAC_LEN);
}

/* start: the frame on the wire (its MAC is checked over it). */
static void handle_frame(bus_link *l, const uint8_t *start, const bus_frame *f) {
    bus *b = l->b;
    if (l->state != LINK_UP) {
        handle_handshake(l, f);
        return;
    }
    if (!bus_mac_verify(&l->rx_mac, start, f->whole - BUS_MAC_LEN, f->mac)) {
        warn_refusal(b, "node %d sent a frame with a bad MAC (changed, replayed, out of order or "
                        "under another key); closing the link", l->peer_id);
        link_kill(l);
        return;
    }
    b->stats.frames_recv++;
    b->callback_depth++;
    b->cfg.on_recv(b->cfg.arg, l->peer_id, f->type, f->payload, f->len);
    b->callback_depth--;
}

static void rbuf_reserve(bus_link *l, size_t total) {
    if (l->rcap >= total) return;
    l->rbuf = xrealloc(l->rbuf, total);
    l->rcap = total;
}

/* Deliver every whole frame in rbuf, then keep the partial rest at the
 * front, with room for the whole of the frame it starts. */
static void parse_frames(bus_link *l) {
    size_t off = 0;
    while (!l->dead && l->rlen - off >= 4) {
        bus_frame f;
        size_t need;
        int rc = bus_frame_split(link_rx(l), l->b->cfg.max_frame, l->rbuf + off, l->rlen - off,
                                 &f, &need);
        if (rc == BUS_SPLIT_BAD) {
            split_refused(l, l->rbuf + off);
            link_kill(l);
            return;
        }
        if (rc == BUS_SPLIT_NEED) {
            memmove(l->rbuf, l->rbuf + off, l->rlen - off);
            l->rlen -= off;
            rbuf_reserve(l, need);
            return;
        }
        handle_frame(l, l->rbuf + off, &f);
        off += f.whole;
    }
    if (l->dead) return;
    memmove(l->rbuf, l->rbuf + off, l->rlen - off);
    l->rlen -= off;
    if (l->rlen == 0 && l->rcap > BUS_BUF_KEEP) { /* back to small after a large message */
        free(l->rbuf);
        l->rbuf = NULL;
        l->rcap = 0;
    }
}

static void link_read(bus_link *l) {
    if (!l->rbuf) rbuf_reserve(l, BUS_RBUF_INITIAL);
    ssize_t n = read(l->io.fd, l->rbuf + l->rlen, l->rcap - l->rlen);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {
        if (l->up)
            log_info("cluster bus: link to node %d lost: %s", l->peer_id,
                     n == 0 ? "closed by the peer" : strerror(errno));
        else
            log_verbose("cluster bus: handshake with node %d failed: %s", l->peer_id,
                        n == 0 ? "closed by the peer" : strerror(errno));
        link_kill(l);
        return;
    }
    l->b->stats.bytes_recv += (uint64_t)n;
    l->last_recv_ms = clock_mono_ms();
    l->rlen += (size_t)n;
    parse_frames(l);
}

/* --- dialling --- */

static void dial_finished(bus_link *l) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(l->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err) {
        log_verbose("cluster bus: dial node %d: %s", l->peer_id, strerror(err));
        link_kill(l);
        return;
    }
    l->state = LINK_HELLO_WAIT;
    link_watch(l);
    if (!l->dead) send_hello(l);
}

static void link_io(ev_loop *loop, ev_io *io, uint32_t ready) {
    bus_link *l = io->arg;
    bus *b = l->b;
    if (l->dead) return; /* an event of this batch for a link killed earlier in it */
    if (l->state == LINK_DIALING) {
        dial_finished(l);
    } else {
        if (ready & EV_WRITE) link_flush(l);
        if ((ready & EV_READ) && !l->dead) link_read(l);
    }
    bus_reap(b);
}

static void dial_peer(bus *b, bus_peer *p) {
    int fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("cluster bus: socket: %s", strerror(errno));
        return;
    }
    sock_tune_client(fd, 0); /* TCP_NODELAY: gathering is ours, not Nagle's */
    if (connect(fd, (struct sockaddr *)&p->sa, p->salen) < 0 && errno != EINPROGRESS) {
        log_verbose("cluster bus: dial node %d: %s", p->addr.id, strerror(errno));
        close(fd);
        return;
    }
    /* Even a connect that finished at once reports EV_WRITE: one path. */
    p->link = link_new(b, fd, LINK_DIALING, p->addr.id);
    link_watch(p->link);
}

static void dial_missing(bus *b) {
    for (int i = 0; i < b->cfg.npeers; i++) {
        bus_peer *p = &b->peers[i];
        if (p->addr.id > b->cfg.self_id && !p->link) dial_peer(b, p);
    }
}

/* --- the listener --- */

static int free_pending_slot(const bus *b) {
    for (int i = 0; i < BUS_MAX_PENDING; i++)
        if (!b->pending[i]) return i;
    return -1;
}

static void listener_io(ev_loop *loop, ev_io *io, uint32_t ready) {
    bus *b = io->arg;
    for (;;) {
        int fd = sock_accept(io->fd);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                warn_refusal(b, "accept: %s", strerror(errno));
            break;
        }
        int slot = free_pending_slot(b);
        if (slot < 0) { /* unidentified connections are capped: no fd exhaustion */
            warn_refusal(b, "too many connections waiting for their hello; refusing one");
            close(fd);
            continue;
        }
        sock_tune_client(fd, 0);
        bus_link *l = link_new(b, fd, LINK_HELLO_WAIT, 0);
        b->pending[slot] = l;
        link_watch(l);
    }
    bus_reap(b);
}

/* --- timers --- */

static void drain_timerfd(int fd) {
    uint64_t expirations;
    while (read(fd, &expirations, sizeof expirations) > 0) {
    }
}

/* Kill links silent for too long: an up link past idle_timeout_ms (the
 * layer above sends heartbeats, so silence is a dead peer or a partition),
 * or a dial or hello past handshake_timeout_ms (a SYN into a partition
 * would otherwise wait minutes for the kernel to give up). */
static void check_timeouts(bus *b, int64_t now) {
    for (int i = 0; i < b->cfg.npeers; i++) {
        bus_link *l = b->peers[i].link;
        if (!l) continue;
        if (l->up && b->cfg.idle_timeout_ms > 0 && now - l->last_recv_ms > b->cfg.idle_timeout_ms) {
            log_warn("cluster bus: node %d silent for %lld ms; closing the link", l->peer_id,
                     (long long)(now - l->last_recv_ms));
            link_kill(l);
        } else if (!l->up && now - l->created_ms > b->cfg.handshake_timeout_ms) {
            log_verbose("cluster bus: handshake with node %d timed out", l->peer_id);
            link_kill(l);
        }
    }
    for (int i = 0; i < BUS_MAX_PENDING; i++) {
        bus_link *l = b->pending[i];
        if (l && now - l->created_ms > b->cfg.handshake_timeout_ms) link_kill(l);
    }
}

static void tick_io(ev_loop *loop, ev_io *io, uint32_t ready) {
    bus *b = io->arg;
    drain_timerfd(io->fd);
    check_timeouts(b, clock_mono_ms());
    bus_reap(b);
    dial_missing(b); /* failed dials and dropped links, every tick */
}

static void arm_gather_timer(bus *b, int64_t deadline_us) {
    if (deadline_us == b->gather_armed_us) return;
    struct itimerspec its = {0};
    its.it_value.tv_sec = deadline_us / 1000000;
    its.it_value.tv_nsec = (long)(deadline_us % 1000000) * 1000;
    if (timerfd_settime(b->gather_io.fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        b->gather_armed_us = deadline_us;
}

/* Write out each up link whose window has elapsed; arm the gather timer
 * for the earliest of the others. A link waiting for EV_WRITE is left to
 * that event. */
static void flush_due(bus *b) {
    int64_t now = clock_mono_us(), next = 0;
    for (int i = 0; i < b->cfg.npeers; i++) {
        bus_link *l = b->peers[i].link;
        if (!l || !l->up || l->want_write || !link_unsent(l)) continue;
        int64_t due = l->gather_start_us + b->cfg.gather_us;
        if (now >= due)
            link_flush(l);
        else if (!next || due < next)
            next = due;
    }
    if (next) arm_gather_timer(b, next);
}

static void gather_io(ev_loop *loop, ev_io *io, uint32_t ready) {
    bus *b = io->arg;
    drain_timerfd(io->fd);
    b->gather_armed_us = 0; /* fired: the next deadline needs a new arm */
    flush_due(b);
    bus_reap(b);
}

/* --- public --- */

static bus_link *usable_link(const bus *b, int peer_id) {
    for (int i = 0; i < b->cfg.npeers; i++) {
        bus_link *l = b->peers[i].link;
        if (b->peers[i].addr.id == peer_id) return l && l->up && !l->dead ? l : NULL;
    }
    return NULL;
}

int bus_connected(const bus *b, int peer_id) { return usable_link(b, peer_id) != NULL; }

int bus_sendv(bus *b, int peer_id, uint8_t type, const struct iovec *iov, int iovcnt) {
    bus_link *l = usable_link(b, peer_id);
    if (!l) return -1;
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > b->cfg.max_frame - len) {
            log_warn("cluster bus: message of type %u for node %d is larger than %zu bytes; not sent",
                     type, peer_id, b->cfg.max_frame);
            return -1;
        }
        len += iov[i].iov_len;
    }
    size_t unsent = link_unsent(l);
    if (unsent > b->cfg.max_outbuf ||
        BUS_FRAME_HEADER + len + BUS_MAC_LEN > b->cfg.max_outbuf - unsent) {
        log_warn("cluster bus: node %d is not reading (%zu bytes queued); dropping the link",
                 peer_id, unsent);
        link_kill(l);
        return -1;
    }
    if (link_queue_frame(l, type, iov, iovcnt, len) < 0) return -1;
    b->stats.frames_sent++;
    /* Past this much, waiting longer gains nothing: the write is big anyway. */
    if (link_unsent(l) > BUS_FLUSH_NOW_BYTES && !l->want_write) link_flush(l);
    return 0;
}

int bus_send(bus *b, int peer_id, uint8_t type, const void *payload, size_t len) {
    struct iovec iov = {(void *)payload, len}; /* only read */
    return bus_sendv(b, peer_id, type, &iov, 1);
}

void bus_before_sleep(bus *b) {
    /* A down callback may queue messages for other peers, and a flush may
     * kill a link: repeat until both are settled. */
    do {
        bus_reap(b);
        flush_due(b);
    } while (!b->callback_depth && b->dead && !b->dead->closed);
    free_dead(b);
}

void bus_get_stats(const bus *b, bus_stats *out) { *out = b->stats; }

/* --- creation --- */

static int check_config(const bus_config *cfg, char *err, size_t errlen) {
    if (cfg->self_id < 1 || cfg->self_id > 255) {
        snprintf(err, errlen, "bus: self id %d is not in 1..255", cfg->self_id);
        return -1;
    }
    if (cfg->npeers < 0 || cfg->npeers > BUS_MAX_PEERS) {
        snprintf(err, errlen, "bus: %d peers (at most %d)", cfg->npeers, BUS_MAX_PEERS);
        return -1;
    }
    for (int i = 0; i < cfg->npeers; i++) {
        int id = cfg->peers[i].id;
        if (id < 1 || id > 255 || id == cfg->self_id) {
            snprintf(err, errlen, "bus: peer id %d is invalid", id);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (cfg->peers[j].id == id) {
                snprintf(err, errlen, "bus: peer id %d appears twice", id);
                return -1;
            }
    }
    if (cfg->max_frame == 0 || cfg->max_frame > UINT32_MAX - 1 - BUS_MAC_LEN ||
        cfg->max_outbuf == 0 || cfg->key_len > BUS_KEY_MAX || (cfg->key_len && !cfg->key) ||
        cfg->gather_us < 0 || !cfg->on_recv || !cfg->bind_host ||
        strlen(cfg->bind_host) >= BUS_HOST_MAX) {
        snprintf(err, errlen, "bus: invalid limits, callbacks or bind address");
        return -1;
    }
    return 0;
}

static int resolve_peer(bus_peer *p, char *err, size_t errlen) {
    char port[16];
    snprintf(port, sizeof port, "%d", p->addr.port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    p->addr.host[sizeof p->addr.host - 1] = '\0';
    int rc = getaddrinfo(p->addr.host, port, &hints, &res);
    if (rc != 0 || !res || res->ai_addrlen > sizeof p->sa) {
        snprintf(err, errlen, "bus: cannot resolve node %d's address %s:%d: %s", p->addr.id,
                 p->addr.host, p->addr.port, rc ? gai_strerror(rc) : "no address");
        if (res) freeaddrinfo(res);
        return -1;
    }
    memcpy(&p->sa, res->ai_addr, res->ai_addrlen);
    p->salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int open_timerfd(bus *b, ev_io *io, ev_io_fn *fn, long period_ms) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return -1;
    ev_io_init(io, fd, fn, b);
    if (period_ms > 0) {
        struct itimerspec its = {0};
        its.it_interval.tv_sec = period_ms / 1000;
        its.it_interval.tv_nsec = (period_ms % 1000) * 1000000L;
        its.it_value = its.it_interval;
        if (timerfd_settime(fd, 0, &its, NULL) < 0) return -1;
    }
    return ev_io_set(b->loop, io, EV_READ);
}

static void close_io(bus *b, ev_io *io) {
    if (io->fd < 0) return;
    ev_io_stop(b->loop, io);
    close(io->fd);
    io->fd = -1;
}

bus *bus_create(ev_loop *loop, const bus_config *cfg, char *err, size_t errlen) {
    if (check_config(cfg, err, errlen) < 0) return NULL;
    bus *b = xmalloc(sizeof *b);
    memset(b, 0, sizeof *b);
    b->loop = loop;
    b->cfg = *cfg;
    snprintf(b->bind_host, sizeof b->bind_host, "%s", cfg->bind_host);
    b->cfg.bind_host = b->bind_host; /* the caller's string need not outlive us */
    if (cfg->key_len) {
        memcpy(b->key, cfg->key, cfg->key_len);
        b->key_len = cfg->key_len;
    } else {
        b->key_len = strlen(BUS_PUBLIC_KEY);
        memcpy(b->key, BUS_PUBLIC_KEY, b->key_len);
    }
    b->cfg.key = NULL; /* ours is b->key */
    if (!b->cfg.handshake_timeout_ms) b->cfg.handshake_timeout_ms = BUS_DEFAULT_HANDSHAKE_MS;
    b->listen_io.fd = b->tick_io.fd = b->gather_io.fd = -1;
    for (int i = 0; i < cfg->npeers; i++) {
        b->peers[i].addr = cfg->peers[i];
        if (resolve_peer(&b->peers[i], err, errlen) < 0) goto fail;
    }
    int lfd = sock_listen(b->bind_host, cfg->port, 64, err, errlen);
    if (lfd < 0) goto fail;
    ev_io_init(&b->listen_io, lfd, listener_io, b);
    if (ev_io_set(loop, &b->listen_io, EV_READ) < 0 ||
        open_timerfd(b, &b->tick_io, tick_io, BUS_TICK_MS) < 0 ||
        open_timerfd(b, &b->gather_io, gather_io, 0) < 0) {
        snprintf(err, errlen, "bus: event setup: %s", strerror(errno));
        goto fail;
    }
    dial_missing(b);
    return b;
fail:
    bus_destroy(b);
    return NULL;
}

void bus_destroy(bus *b) {
    if (!b) return;
    for (int i = 0; i < b->cfg.npeers; i++)
        if (b->peers[i].link) link_kill(b->peers[i].link);
    for (int i = 0; i < BUS_MAX_PENDING; i++)
        if (b->pending[i]) link_kill(b->pending[i]);
    while (b->dead) {
        bus_link *l = b->dead;
        b->dead = l->next_dead;
        if (!l->closed) close(l->io.fd);
        link_free(l);
    }
    close_io(b, &b->listen_io);
    close_io(b, &b->tick_io);
    close_io(b, &b->gather_io);
    OPENSSL_cleanse(b->key, sizeof b->key);
    free(b);
}
