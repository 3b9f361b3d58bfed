/* batch.c - the batch protocol listener and its connections (batch.h,
 * docs/PROTOCOL.md).
 *
 * A connection is a small state machine driven by its loop:
 *
 *   HS_FIXED -> HS_VAR -> (HELLO_OK) -> publisher: HEADER <-> PAYLOAD
 *                                    -> subscriber: SUB
 *   any protocol error -> one ERROR frame -> DRAIN (discard input until the
 *   peer closes, so our close does not reset the ERROR away) -> closed
 *   refused at accept (maxclients, protected mode): the same ERROR -> DRAIN
 *   path from the start, as a "rejected" connection outside nconns
 *
 * Input: bytes are read into a 64 KB staging buffer, except that a
 * payload's remainder of at least that size is read straight into the
 * batch's own buffer. That buffer (one per connection, reused, sized by
 * the validated header) is what XBATCHADD copies into the stream's
 * blocks; a compressed batch is decompressed once into a second reused
 * buffer that plays that role. So a raw batch costs one copy into the log.
 *
 * Publisher: each complete batch runs XBATCHADD through the dispatcher
 * (auth, maxmemory and disk errors as a verdict, the key's shard lock, one
 * AOF record with the assigned IDs);
 * its ACK is queued and sent before the loop sleeps, after the loop's AOF
 * group commit: with appendfsync always an ACK means "on disk".
 *
 * Subscriber: one frame at a time. The next entries are read from the
 * stream (under its shard lock) only once the previous frame is wholly
 * written, so a slow reader holds at most one frame (~2 MiB). When caught
 * up it waits in the watch registry; writers' signals mark it ready and
 * wake its loop. */
#include "batch.h"

#include <errno.h>
#include <lz4.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include "../lib/clock.h"
#include "../lib/codec.h"
#include "../lib/crc32c.h"
#include "../lib/hash.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "../net/socket.h"
#include "../proto/batch.h"
#include "../store/evict.h"
#include "../types/stream/stream.h"

#define STAGE_SIZE (64 * 1024)
#define SUB_FRAME_TARGET (2 * 1024 * 1024)  /* PROTOCOL.md: ~2 MiB per batch */
#define SUB_FRAMES_PER_TURN 8               /* then yield to the loop's other work */
#define PUB_BYTES_PER_TURN (8 * 1024 * 1024)
#define OUT_PAUSE_BYTES (1024 * 1024)       /* unread ACKs: stop reading the publisher */
#define HANDSHAKE_DEADLINE_MS 10000
#define DRAIN_DEADLINE_MS 2000
#define DRAIN_MAX_BYTES (64LL * 1024 * 1024)
#define DRAIN_CHUNK (16 * 1024)
/* Refused connections (maxclients, protected mode) that get an ERROR frame
 * and a graceful close; past this many at once, a plain close. */
#define REJECT_MAX 256
#define WATCH_BUCKETS 1024                  /* power of two */
#define TICK_MS 500

enum conn_state { ST_HS_FIXED, ST_HS_VAR, ST_HEADER, ST_PAYLOAD, ST_SUB, ST_DRAIN };

typedef struct batch_loop batch_loop;

typedef struct bconn {
    ev_io io;
    batch_loop *bl;
    int state;
    int closing;             /* closed: on to_free */
    int pending;             /* on bl->pending (output to send before sleep) */
    int paused;              /* too many unread ACKs: not reading */
    int close_after_flush;   /* an ERROR is queued: drain, then close */
    int64_t deadline_ms;     /* handshake / drain deadline (mono), 0 = none */
    int counted_role;        /* role counted in the stats (0 = none yet) */
    int rejected;            /* refused at accept: ERROR, drain, close (not in nconns) */
    long long drained;
    struct bconn *next, *prev, *pending_next;

    batch_handshake hs;
    unsigned char fixed[BATCH_HEADER_LEN]; /* handshake fixed part / frame header */
    size_t fixed_have;
    unsigned char *var;      /* handshake token + topic + start */
    size_t var_have;
    char *topic;
    size_t topic_len;
    unsigned shard;          /* the topic's keyspace shard */

    unsigned char *in;       /* staging: [in_pos, in_len) not yet consumed */
    size_t in_pos, in_len;

    /* publisher */
    batch_header hdr;
    unsigned char *payload;  /* the wire payload (final buffer when raw) */
    size_t payload_cap, payload_have;
    unsigned char *raw;      /* decompressed payload */
    size_t raw_cap;
    ZSTD_DCtx *zstd;
    session sess;            /* for the dispatcher: authenticated by the token */
    reply *sink;             /* XBATCHADD's RESP reply, discarded */
    uint64_t aof_need;       /* the ACKs wait for the AOF up to here (0 = none) */
    size_t turn_bytes;

    /* output: [out_sent, out_len) unsent */
    unsigned char *out;
    size_t out_len, out_cap, out_sent;

    /* subscriber */
    stream_id cursor;        /* last entry sent */
    uint64_t frames_sent;
    uint64_t watch_hash;
    int watching;
    int ready;               /* under watch lock: on bl->ready */
    struct bconn *ready_next;                 /* under watch lock */
    struct bconn *watch_next, *watch_prev;    /* under watch lock */
} bconn;

/* Unsigned so that the owner's decrements (STAT_ADD of -1) wrap, defined. */
typedef struct bl_stats {
    _Atomic uint64_t received, batches_in, batches_out, bytes_in, bytes_out;
    _Atomic uint64_t messages_in, messages_out, duplicates, errors;
    _Atomic uint64_t conns, publishers, subscribers;
} bl_stats;

struct batch_loop {
    batch_server *bs;
    loop_thread *lt;
    ev_io listen_io[SERVER_MAX_LISTENERS];
    bconn *conns, *pending, *to_free;
    bconn *ready;            /* under bs->watch_lock */
    bl_stats stats;          /* written by this loop only (STAT_ADD) */
};

struct batch_server {
    server *srv;
    int fds[SERVER_MAX_LISTENERS];
    int nfds;
    int port;
    batch_loop *loops;       /* one per loop thread */
    _Atomic long long nconns;
    _Atomic int nrejecting;  /* rejected connections still draining */
    pthread_mutex_t watch_lock;
    _Atomic long nwatch;     /* lets writers skip the lock when nobody waits */
    uint64_t seed;
    bconn *watch[WATCH_BUCKETS];
};

static void conn_io(ev_loop *loop, ev_io *io, uint32_t ready);
static void conn_close(bconn *c);
static void send_error(bconn *c, int code, const char *detail);
static void sub_pump(bconn *c);
static void pub_run(bconn *c);

static server *srv_of(const bconn *c) { return c->bl->bs->srv; }
static uint64_t max_bytes(const bconn *c) {
    return (uint64_t)CFG_GET(srv_of(c)->cfg.batch_max_bytes);
}

/* ---- listening ---- */

static int resolve_port(const server *srv, int *derived) {
    *derived = srv->cfg.batch_port < 0;
    if (!*derived) return srv->cfg.batch_port;
    if (srv->port == 0 || srv->port + 1000 > 65535) return 0;
    return srv->port + 1000;
}

static int bind_all(batch_server *bs, int port, char *err, size_t errlen) {
    char addrs[sizeof bs->srv->cfg.bind];
    memcpy(addrs, bs->srv->cfg.bind, sizeof addrs);
    char *save = NULL;
    for (char *a = strtok_r(addrs, " ", &save); a; a = strtok_r(NULL, " ", &save)) {
        if (bs->nfds == SERVER_MAX_LISTENERS) break;
        int fd = sock_listen(a, bs->nfds ? bs->port : port, bs->srv->cfg.tcp_backlog, err, errlen);
        if (fd < 0) return -1;
        bs->fds[bs->nfds++] = fd;
        bs->port = sock_local_port(fd);
    }
    return 0;
}

int batch_open(server *srv) {
    batch_server *bs = xcalloc(1, sizeof *bs);
    bs->srv = srv;
    bs->seed = hash_random_seed();
    pthread_mutex_init(&bs->watch_lock, NULL);
    bs->loops = xcalloc((size_t)srv->nthreads, sizeof *bs->loops);
    for (int i = 0; i < srv->nthreads; i++) bs->loops[i].bs = bs;
    srv->batch = bs;
    int derived, port = resolve_port(srv, &derived);
    if (port == 0) return 0;
    char err[256];
    if (bind_all(bs, port, err, sizeof err) < 0) {
        for (int i = 0; i < bs->nfds; i++) close(bs->fds[i]);
        bs->nfds = 0;
        bs->port = 0;
        /* The derived default must not stop a server whose operator never
         * asked for the batch port (two servers 1000 ports apart). */
        if (derived) {
            log_warn("batch port %d not opened (%s); set batch-port to choose one", port, err);
            return 0;
        }
        log_fatal("batch port: %s", err);
        return -1;
    }
    return 0;
}

static void on_batch_listener(ev_loop *loop, ev_io *io, uint32_t ready);

static long on_tick(ev_loop *loop, void *arg);

void batch_init_loop(loop_thread *lt) {
    batch_server *bs = lt->srv->batch;
    batch_loop *bl = &bs->loops[lt->idx];
    bl->lt = lt;
    for (int i = 0; i < bs->nfds; i++) {
        ev_io_init(&bl->listen_io[i], bs->fds[i], on_batch_listener, bl);
        ev_io_set_exclusive(lt->loop, &bl->listen_io[i], EV_READ);
    }
    if (bs->nfds) ev_timer_add(lt->loop, TICK_MS, on_tick, bl);
}

#define PROTECTED_TEXT                                                                   \
    "protected mode: no password is set and the client is not on loopback; set "  \
    "requirepass, or protected-mode no"

/* Protected mode, as for RESP: without a password only loopback peers. */
static int protected_denies(server *srv, int fd) {
    return CFG_GET(srv->cfg.protected_mode) && !config_auth_required(&srv->cfg) &&
           !sock_peer_is_loopback(fd);
}

/* A new connection on this loop. A rejected one only gets an ERROR and
 * drains (no staging buffer, not counted in nconns or the stats). */
static bconn *conn_create(batch_loop *bl, int fd, int rejected) {
    bconn *c = xcalloc(1, sizeof *c);
    c->bl = bl;
    c->state = ST_HS_FIXED;
    c->rejected = rejected;
    if (!rejected) c->in = xmalloc(STAGE_SIZE);
    c->deadline_ms = clock_mono_ms() + (rejected ? DRAIN_DEADLINE_MS : HANDSHAKE_DEADLINE_MS);
    c->next = bl->conns;
    if (bl->conns) bl->conns->prev = c;
    bl->conns = c;
    ev_io_init(&c->io, fd, conn_io, c);
    ev_io_set(bl->lt->loop, &c->io, EV_READ);
    if (!rejected) STAT_ADD(bl->stats.conns, 1);
    return c;
}

/* Refuse fd with an ERROR frame (code, detail) and a graceful close, so
 * the client reads why instead of a reset. At most REJECT_MAX refusals
 * drain at once; past that, a plain close. */
static void reject_conn(batch_loop *bl, int fd, int code, const char *detail) {
    if (atomic_fetch_add(&bl->bs->nrejecting, 1) >= REJECT_MAX) {
        atomic_fetch_sub(&bl->bs->nrejecting, 1);
        close(fd);
        return;
    }
    send_error(conn_create(bl, fd, 1), code, detail);
}

static void on_batch_listener(ev_loop *loop, ev_io *io, uint32_t ready) {
    batch_loop *bl = io->arg;
    server *srv = bl->bs->srv;
    for (int i = 0; i < 64 && !bl->lt->stopping; i++) {
        int fd = server_accept(srv, io->fd);
        if (fd < 0) {
            unsigned shed; /* out of descriptors: refused, closed (no ERROR frame yet) */
            int next = server_accept_failed(srv, io->fd, "batch", NULL, 0, &shed);
            if (next == ACCEPT_NEXT) continue;
            if (next == ACCEPT_PAUSE) server_pause_listener(bl->lt, io);
            return;
        }
        STAT_ADD(bl->stats.received, 1);
        long long n = atomic_fetch_add(&bl->bs->nconns, 1) + 1;
        int over = n > CFG_GET(srv->cfg.maxclients), denied = !over && protected_denies(srv, fd);
        if (over || denied) {
            atomic_fetch_sub(&bl->bs->nconns, 1);
            if (over) reject_conn(bl, fd, BATCH_E_MAXCLIENTS, NULL);
            else reject_conn(bl, fd, BATCH_E_AUTH, PROTECTED_TEXT);
            continue;
        }
        sock_tune_client(fd, srv->cfg.tcp_keepalive);
        conn_create(bl, fd, 0);
    }
}

/* ---- the watch registry (subscribers waiting for entries) ---- */

static void watch_add(bconn *c) {
    batch_server *bs = c->bl->bs;
    c->watch_hash = hash_bytes(c->topic, c->topic_len, bs->seed);
    pthread_mutex_lock(&bs->watch_lock);
    bconn **head = &bs->watch[c->watch_hash & (WATCH_BUCKETS - 1)];
    c->watch_prev = NULL;
    c->watch_next = *head;
    if (*head) (*head)->watch_prev = c;
    *head = c;
    c->watching = 1;
    atomic_fetch_add(&bs->nwatch, 1);
    pthread_mutex_unlock(&bs->watch_lock);
}

static void ready_remove(batch_loop *bl, bconn *c) {
    for (bconn **p = &bl->ready; *p; p = &(*p)->ready_next) {
        if (*p == c) {
            *p = c->ready_next;
            return;
        }
    }
}

static void watch_remove(bconn *c) {
    if (!c->watching) return;
    batch_server *bs = c->bl->bs;
    pthread_mutex_lock(&bs->watch_lock);
    if (c->watch_prev) c->watch_prev->watch_next = c->watch_next;
    else bs->watch[c->watch_hash & (WATCH_BUCKETS - 1)] = c->watch_next;
    if (c->watch_next) c->watch_next->watch_prev = c->watch_prev;
    if (c->ready) ready_remove(c->bl, c);
    c->watching = 0;
    atomic_fetch_sub(&bs->nwatch, 1);
    pthread_mutex_unlock(&bs->watch_lock);
}

void batch_signal(server *srv, const char *key, size_t klen) {
    batch_server *bs = srv->batch;
    if (!bs || atomic_load(&bs->nwatch) == 0) return;
    uint64_t h = hash_bytes(key, klen, bs->seed);
    pthread_mutex_lock(&bs->watch_lock);
    for (bconn *c = bs->watch[h & (WATCH_BUCKETS - 1)]; c; c = c->watch_next) {
        if (c->ready || c->watch_hash != h || c->topic_len != klen || memcmp(c->topic, key, klen))
            continue;
        c->ready = 1;
        c->ready_next = c->bl->ready;
        c->bl->ready = c;
        ev_wake(c->bl->lt->loop);
    }
    pthread_mutex_unlock(&bs->watch_lock);
}

void batch_on_wake(loop_thread *lt) {
    batch_server *bs = lt->srv->batch;
    if (!bs) return;
    batch_loop *bl = &bs->loops[lt->idx];
    for (;;) {
        /* One at a time, clearing `ready` before reading the stream: a
         * signal after this point sets it again, so none is lost. */
        pthread_mutex_lock(&bs->watch_lock);
        bconn *c = bl->ready;
        if (c) {
            bl->ready = c->ready_next;
            c->ready = 0;
        }
        pthread_mutex_unlock(&bs->watch_lock);
        if (!c) return;
        if (!c->closing && c->state == ST_SUB && c->out_sent == c->out_len) sub_pump(c);
    }
}

/* ---- output ---- */

static void out_reserve(bconn *c, size_t more) {
    if (c->out_len + more <= c->out_cap) return;
    size_t cap = c->out_cap ? c->out_cap : 256;
    while (cap < c->out_len + more) cap *= 2;
    unsigned char *p = xrealloc(c->out, cap);
    c->out = p;
    c->out_cap = cap;
}

static void out_append(bconn *c, const void *p, size_t n) {
    out_reserve(c, n);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void mark_pending(bconn *c) {
    if (c->pending || c->closing) return;
    c->pending = 1;
    c->pending_next = c->bl->pending;
    c->bl->pending = c;
}

static void set_events(bconn *c) {
    if (c->closing) return;
    uint32_t ev = 0;
    if (c->state == ST_DRAIN || (!c->paused && !c->close_after_flush)) ev |= EV_READ;
    if (c->out_sent < c->out_len) ev |= EV_WRITE;
    ev_io_set(c->bl->lt->loop, &c->io, ev);
}

/* The ERROR is out: stop sending and read until the peer closes (or the
 * drain deadline), so that closing with unread input, which makes the
 * kernel send a reset, cannot destroy the ERROR before the peer reads it. */
static void start_drain(bconn *c) {
    shutdown(c->io.fd, SHUT_WR);
    c->state = ST_DRAIN;
    c->close_after_flush = 0;
    c->deadline_ms = clock_mono_ms() + DRAIN_DEADLINE_MS;
    set_events(c);
}

/* Send what the socket takes. Returns -1 when the connection closed. */
static int conn_write(bconn *c) {
    while (c->out_sent < c->out_len) {
        ssize_t w = write(c->io.fd, c->out + c->out_sent, c->out_len - c->out_sent);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            conn_close(c);
            return -1;
        }
        c->out_sent += (size_t)w;
        STAT_ADD(c->bl->stats.bytes_out, (uint64_t)w);
    }
    c->out_len = c->out_sent = 0;
    if (c->close_after_flush) start_drain(c);
    return 0;
}

static void send_error(bconn *c, int code, const char *detail) {
    unsigned char frame[BATCH_ERROR_FRAME_MAX];
    char text[BATCH_ERROR_TEXT_MAX + 1];
    snprintf(text, sizeof text, "%s%s%s", batch_err_text(code), detail ? ": " : "",
             detail ? detail : "");
    out_append(c, frame, batch_error_frame(frame, code, text));
    c->close_after_flush = 1;
    STAT_ADD(c->bl->stats.errors, 1);
    static log_ratelimit error_rl = LOG_RATELIMIT_PEER;
    log_verbose_ratelimited(&error_rl, "batch connection error %d: %s", code, text);
    mark_pending(c);
    set_events(c);
}

/* ---- input ---- */

/* One read. Returns bytes read, 0 when nothing is there now, -1 when the
 * peer closed or failed (the connection is then closed). */
static ssize_t sock_read(bconn *c, void *dst, size_t n) {
    for (;;) {
        ssize_t r = read(c->io.fd, dst, n);
        if (r > 0) {
            STAT_ADD(c->bl->stats.bytes_in, (uint64_t)r);
            c->turn_bytes += (size_t)r;
            return r;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        conn_close(c);
        return -1;
    }
}

/* Fill dst[0..need) from staging, then the socket: a remainder of at
 * least STAGE_SIZE is read straight into dst (no staging copy for the
 * bulk of large payloads). Returns 1 when dst is complete, 0 when the
 * socket has nothing more now, -1 when the connection closed. */
static int collect(bconn *c, unsigned char *dst, size_t need, size_t *have) {
    for (;;) {
        size_t avail = c->in_len - c->in_pos, want = need - *have;
        size_t n = avail < want ? avail : want;
        if (n) memcpy(dst + *have, c->in + c->in_pos, n);
        c->in_pos += n;
        *have += n;
        if (*have == need) return 1;
        c->in_pos = c->in_len = 0; /* staging is empty */
        ssize_t r;
        if (need - *have >= STAGE_SIZE) {
            r = sock_read(c, dst + *have, need - *have);
            if (r > 0) *have += (size_t)r;
        } else {
            r = sock_read(c, c->in, STAGE_SIZE);
            if (r > 0) c->in_len = (size_t)r;
        }
        if (r <= 0) return r < 0 ? -1 : 0;
    }
}

/* ---- the handshake ---- */

static unsigned conn_shard(bconn *c) {
    return ks_shard_of(srv_of(c)->ks, c->topic, c->topic_len);
}

/* The topic's stream with its shard locked by the caller. NULL when the
 * key is missing; *wrongtype when it holds another type. */
static stream *topic_stream(bconn *c, int *wrongtype) {
    *wrongtype = 0;
    kv *e = ks_find(srv_of(c)->ks, c->topic, c->topic_len, clock_wall_ms());
    if (!e) return NULL;
    if (kv_type(e) != KV_STREAM) {
        *wrongtype = 1;
        return NULL;
    }
    return kv_object(e);
}

/* Subscriber start: "$", "0", "<ms>" or "<ms>-<seq>". Returns 0, -1 when
 * malformed. Caller holds the shard lock (for "$"). */
static int parse_start(bconn *c, const char *p, size_t n, const stream *s) {
    if (n == 1 && p[0] == '$') {
        c->cursor = s ? stream_last_id(s) : STREAM_ID_ZERO;
        return 0;
    }
    if (n == 0) return -1;
    const char *dash = memchr(p, '-', n);
    size_t msn = dash ? (size_t)(dash - p) : n;
    unsigned long long ms, seq = 0;
    if (!util_parse_ull(p, msn, &ms)) return -1;
    if (dash && !util_parse_ull(dash + 1, n - msn - 1, &seq)) return -1;
    c->cursor = (stream_id){ms, seq};
    return 0;
}

static void send_hello(bconn *c, uint64_t next_seq) {
    unsigned char frame[BATCH_HEADER_LEN + BATCH_HELLO_PAYLOAD];
    out_append(c, frame, batch_hello_frame(frame, next_seq, max_bytes(c)));
    mark_pending(c);
}

/* Under the topic's lock: its type, the publisher's resume point or the
 * subscriber's start. Returns 0 or an error code. */
static int handshake_state(bconn *c, uint64_t *next_seq) {
    keyspace *ks = srv_of(c)->ks;
    const char *start = (const char *)c->var + c->hs.token_len + c->hs.topic_len;
    ks_lock_shard(ks, c->shard);
    int wrongtype, code = 0;
    stream *s = topic_stream(c, &wrongtype);
    if (wrongtype) code = BATCH_E_WRONGTYPE;
    else if (c->hs.role == BATCH_ROLE_PUBLISHER)
        *next_seq = (c->hs.client_id && s ? stream_pub_seq(s, c->hs.client_id) : 0) + 1;
    else if (parse_start(c, start, c->hs.start_len, s) < 0) code = BATCH_E_MALFORMED;
    ks_unlock_shard(ks, c->shard);
    return code;
}

static void become_publisher(bconn *c) {
    server *srv = srv_of(c);
    c->state = ST_HEADER;
    c->fixed_have = 0; /* the buffer now collects frame headers */
    c->sess.id = atomic_fetch_add(&srv->next_client_id, 1) + 1;
    c->sess.proto = 2;
    c->sess.authenticated = 1; /* the token was checked */
    c->sess.created_ms = clock_wall_ms();
    c->sink = xmalloc(sizeof *c->sink);
    reply_init(c->sink);
    STAT_ADD(c->bl->stats.publishers, 1);
    c->counted_role = BATCH_ROLE_PUBLISHER;
}

static void handshake_done(bconn *c) {
    server *srv = srv_of(c);
    if (config_auth_required(&srv->cfg) &&
        !srv->env.host->check_password(srv, (const char *)c->var, c->hs.token_len)) {
        send_error(c, BATCH_E_AUTH, NULL);
        return;
    }
    c->topic_len = c->hs.topic_len;
    c->topic = xmalloc(c->topic_len);
    memcpy(c->topic, c->var + c->hs.token_len, c->topic_len);
    c->shard = conn_shard(c);
    uint64_t next_seq = 1;
    int code = handshake_state(c, &next_seq);
    if (code) {
        send_error(c, code, NULL);
        return;
    }
    c->deadline_ms = 0;
    send_hello(c, c->hs.role == BATCH_ROLE_PUBLISHER ? next_seq : 1);
    if (c->hs.role == BATCH_ROLE_PUBLISHER) {
        become_publisher(c);
        return;
    }
    if (c->in_pos < c->in_len) { /* bytes came with the handshake */
        send_error(c, BATCH_E_SUB_INPUT, NULL);
        return;
    }
    c->state = ST_SUB;
    STAT_ADD(c->bl->stats.subscribers, 1);
    c->counted_role = BATCH_ROLE_SUBSCRIBER;
    watch_add(c);
    sub_pump(c);
}

/* Returns 1 to continue, 0 to wait for input, -1 when the connection
 * closed or failed. */
static int handshake_step(bconn *c) {
    if (c->state == ST_HS_FIXED) {
        int r = collect(c, c->fixed, BATCH_HANDSHAKE_FIXED, &c->fixed_have);
        if (r <= 0) return r;
        int code = batch_handshake_decode(c->fixed, &c->hs);
        if (code) {
            send_error(c, code, NULL);
            return -1;
        }
        c->var = xmalloc(batch_handshake_var_len(&c->hs));
        c->state = ST_HS_VAR;
    }
    int r = collect(c, c->var, batch_handshake_var_len(&c->hs), &c->var_have);
    if (r <= 0) return r;
    handshake_done(c);
    return c->close_after_flush || c->closing ? -1 : 1;
}

/* ---- publisher ---- */

static void grow_buffer(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    free(*buf);
    *buf = xmalloc(need);
    *cap = need;
}

static int pub_header(bconn *c) {
    int code = batch_header_decode(c->fixed, &c->hdr);
    if (!code) code = batch_header_check_batch(&c->hdr, max_bytes(c));
    if (code) {
        send_error(c, code, NULL);
        return -1;
    }
    /* Sized by the header: bounded by batch-max-bytes, checked above. */
    grow_buffer(&c->payload, &c->payload_cap, c->hdr.payload_len);
    c->payload_have = 0;
    c->state = ST_PAYLOAD;
    return 1;
}

/* Decompress into c->raw. Returns 0 or an error code. */
static int pub_decompress(bconn *c) {
    const batch_header *h = &c->hdr;
    grow_buffer(&c->raw, &c->raw_cap, h->raw_len);
    if (h->codec == BATCH_CODEC_LZ4) {
        int n = LZ4_decompress_safe((const char *)c->payload, (char *)c->raw, (int)h->payload_len,
                                    (int)h->raw_len);
        return n >= 0 && (uint32_t)n == h->raw_len ? 0 : BATCH_E_DECOMPRESS;
    }
    if (!c->zstd && !(c->zstd = ZSTD_createDCtx())) return BATCH_E_INTERNAL;
    size_t n = ZSTD_decompressDCtx(c->zstd, c->raw, h->raw_len, c->payload, h->payload_len);
    return !ZSTD_isError(n) && n == h->raw_len ? 0 : BATCH_E_DECOMPRESS;
}

/* The refusal the dispatcher replied into r (one error line), without
 * "-" and CRLF, into out. */
static void refusal_text(const reply *r, char *out, size_t len) {
    const char *p = r->inline_buf;
    size_t n = r->inline_used;
    if (n < 3 || p[0] != '-') {
        out[0] = 0;
        return;
    }
    snprintf(out, len, "%.*s", (int)(n - 3), p + 1);
}

/* Run XBATCHADD through the dispatcher. Returns 0 with *res filled, or an
 * error code (with a detail for the ERROR frame in detail, "" if none). */
static int pub_append(bconn *c, const unsigned char *data, cmd_batch_result *res, char *detail,
                      size_t dlen) {
    server *srv = srv_of(c);
    char cid[24], seq[24];
    cmd_arg argv[6] = {
        {"XBATCHADD", 9},
        {c->topic, c->topic_len},
        {cid, (size_t)snprintf(cid, sizeof cid, "%llu", (unsigned long long)c->hs.client_id)},
        {seq, (size_t)snprintf(seq, sizeof seq, "%llu", (unsigned long long)c->hdr.seq)},
        {"*", 1},
        {(const char *)data, c->hdr.raw_len},
    };
    memset(res, 0, sizeof *res);
    cmd_ctx ctx = {
        .env = &srv->env,
        .sess = &c->sess,
        .out = c->sink,
        .stats = &c->bl->lt->stats,
        .argc = 6,
        .argv = argv,
        .now_ms = clock_wall_ms(),
        .batch = res,
    };
    cmd_verdict v;
    cmd_resolve(&ctx, &v);
    int refusal = cmd_admit(&ctx, &v);
    detail[0] = 0;
    if (refusal == CMD_OK) {
        cmd_run(&ctx, &v);
    } else {
        cmd_refuse(&ctx, &v);
        if (refusal == CMD_REFUSE_MISCONF) refusal_text(c->sink, detail, dlen);
    }
    cmd_verdict_free(&v);
    reply_reset(c->sink);
    /* The ACK leaves only after this record is in the AOF (on disk with
     * appendfsync always): the loop's group commit before it sleeps. */
    if (ctx.aof_end > c->bl->lt->aof_need) c->bl->lt->aof_need = ctx.aof_end;
    if (ctx.aof_end) c->aof_need = ctx.aof_end;
    /* Refused by the dispatcher before the handler: persistence failing
     * (-MISCONF's text), maxmemory, or the command renamed away. */
    if (refusal == CMD_REFUSE_OOM) return BATCH_E_OOM;
    if (refusal != CMD_OK) return BATCH_E_INTERNAL;
    return res->status;
}

static void pub_ack(bconn *c, const cmd_batch_result *res) {
    if (c->hs.ack_level == 0) return;
    unsigned char frame[BATCH_HEADER_LEN + BATCH_ACK_PAYLOAD];
    out_append(c, frame,
               batch_ack_frame(frame, res->acked_seq, c->hdr.count, res->first_ms,
                               res->first_seq, res->duplicate));
    mark_pending(c);
}

static int pub_batch(bconn *c) {
    const batch_header *h = &c->hdr;
    c->state = ST_HEADER;
    c->fixed_have = 0;
    if (crc32c(0, c->payload, h->payload_len) != h->crc) {
        send_error(c, BATCH_E_CRC, NULL);
        return -1;
    }
    const unsigned char *data = c->payload;
    if (h->codec != BATCH_CODEC_RAW) {
        int code = pub_decompress(c);
        if (code) {
            send_error(c, code, NULL);
            return -1;
        }
        data = c->raw;
    }
    if (!batch_payload_valid(data, h->raw_len, h->count)) {
        send_error(c, BATCH_E_MALFORMED, "messages do not match count and raw_len");
        return -1;
    }
    cmd_batch_result res;
    char detail[BATCH_ERROR_TEXT_MAX];
    int code = pub_append(c, data, &res, detail, sizeof detail);
    if (code) {
        send_error(c, code, detail[0] ? detail : NULL);
        return -1;
    }
    STAT_ADD(c->bl->stats.batches_in, 1);
    if (res.duplicate) STAT_ADD(c->bl->stats.duplicates, 1);
    else STAT_ADD(c->bl->stats.messages_in, h->count);
    pub_ack(c, &res);
    return 1;
}

/* Returns 1 to continue, 0 to wait for input, -1 when the connection
 * closed or failed. */
static int pub_step(bconn *c) {
    if (c->state == ST_HEADER) {
        int r = collect(c, c->fixed, BATCH_HEADER_LEN, &c->fixed_have);
        if (r <= 0) return r;
        if (pub_header(c) < 0) return -1;
    }
    int r = collect(c, c->payload, c->hdr.payload_len, &c->payload_have);
    if (r <= 0) return r;
    return pub_batch(c);
}

/* Read and process until the socket is empty, an error, too many unread
 * ACKs, or this turn's byte budget (only with staging empty: staged
 * bytes get no new readiness event). */
static void pub_run(bconn *c) {
    c->turn_bytes = 0;
    while (!c->closing && !c->close_after_flush) {
        if (c->out_len - c->out_sent > OUT_PAUSE_BYTES) {
            c->paused = 1;
            break;
        }
        if (c->turn_bytes >= PUB_BYTES_PER_TURN && c->in_pos == c->in_len) break;
        int r = c->state <= ST_HS_VAR ? handshake_step(c) : pub_step(c);
        if (r <= 0) break;
        if (c->state == ST_SUB) return; /* the handshake made it a subscriber */
    }
    set_events(c);
}

/* ---- subscriber ---- */

/* Room for one more piece of the frame being built. */
static unsigned char *frame_room(bconn *c, size_t n) {
    out_reserve(c, n);
    unsigned char *p = c->out + c->out_len;
    c->out_len += n;
    return p;
}

static size_t resp_bulk_len(size_t n) {
    char tmp[32];
    return (size_t)snprintf(tmp, sizeof tmp, "$%zu\r\n", n) + n + 2;
}

/* The current entry as kind 1: a RESP array of its field/value bulks,
 * right after its entry head (whose length field is patched here). */
static void encode_resp_entry(bconn *c, stream_iter *it, size_t nfv) {
    size_t start = c->out_len;
    char head[32];
    int hn = snprintf(head, sizeof head, "*%zu\r\n", nfv);
    memcpy(frame_room(c, (size_t)hn), head, (size_t)hn);
    for (size_t i = 0; i < nfv; i++) {
        stream_str s = stream_iter_str(it);
        int bn = snprintf(head, sizeof head, "$%zu\r\n", s.n);
        size_t total = resp_bulk_len(s.n);
        unsigned char *p = frame_room(c, total);
        memcpy(p, head, (size_t)bn);
        if (s.n) memcpy(p + bn, s.p, s.n);
        memcpy(p + bn + s.n, "\r\n", 2);
    }
    /* by offset: the buffer may have moved while growing */
    codec_put_le32(c->out + start - 4, (uint32_t)(c->out_len - start));
}

/* Append the iterator's current entry. */
static void encode_entry(bconn *c, stream_iter *it, stream_id id, size_t nfv) {
    /* h is valid until the next frame_room (which may move the buffer) */
    unsigned char *h = frame_room(c, BATCH_SUB_ENTRY_HEAD);
    codec_put_le64(h, id.ms);
    codec_put_le64(h + 8, id.seq);
    if (nfv == 2) {
        const unsigned char *save = it->fields;
        stream_str f = stream_iter_str(it);
        if (f.n == 4 && !memcmp(f.p, "data", 4)) {
            stream_str v = stream_iter_str(it);
            h[16] = BATCH_KIND_DATA;
            codec_put_le32(h + 17, (uint32_t)v.n);
            if (v.n) memcpy(frame_room(c, v.n), v.p, v.n);
            return;
        }
        it->fields = save; /* not the single "data" field: re-read as RESP */
    }
    h[16] = BATCH_KIND_RESP;
    encode_resp_entry(c, it, nfv);
}

/* Build the next frame from the entries after the cursor. Returns the
 * entries in it (0: caught up), or -1 after an error was queued. */
static int sub_fill(bconn *c) {
    keyspace *ks = srv_of(c)->ks;
    ks_lock_shard(ks, c->shard);
    int wrongtype;
    stream *s = topic_stream(c, &wrongtype);
    uint32_t count = 0;
    c->out_len = c->out_sent = 0;
    if (s) {
        stream_id start = c->cursor, id;
        size_t nfv;
        out_reserve(c, BATCH_HEADER_LEN);
        c->out_len = BATCH_HEADER_LEN;
        if (stream_id_incr(&start) == 0) {
            stream_iter it;
            stream_iter_init(&it, s, start, STREAM_ID_MAX, 0);
            while (c->out_len - BATCH_HEADER_LEN < SUB_FRAME_TARGET && count < UINT32_MAX &&
                   stream_iter_next(&it, &id, &nfv)) {
                encode_entry(c, &it, id, nfv);
                c->cursor = id;
                count++;
            }
            stream_iter_free(&it);
        }
    }
    ks_unlock_shard(ks, c->shard);
    if (wrongtype) {
        c->out_len = 0;
        send_error(c, BATCH_E_WRONGTYPE, NULL);
        return -1;
    }
    if (!count) {
        c->out_len = 0;
        return 0;
    }
    size_t payload = c->out_len - BATCH_HEADER_LEN;
    batch_header h = {.type = BATCH_T_BATCH, .seq = ++c->frames_sent, .count = count,
                      .raw_len = (uint32_t)payload, .payload_len = (uint32_t)payload,
                      .crc = crc32c(0, c->out + BATCH_HEADER_LEN, payload)};
    batch_header_encode(&h, c->out);
    STAT_ADD(c->bl->stats.batches_out, 1);
    STAT_ADD(c->bl->stats.messages_out, count);
    return (int)count;
}

/* Send frames while the socket takes them, a few per turn: at the end of
 * a turn one frame is left built and unsent, so EV_WRITE brings the loop
 * back after its other work. Caught up: wait for a signal (EV_READ only). */
static void sub_pump(bconn *c) {
    int turn = 0;
    for (; turn < SUB_FRAMES_PER_TURN; turn++) {
        if (c->out_sent == c->out_len && (c->state != ST_SUB || sub_fill(c) <= 0)) break;
        if (conn_write(c) < 0) return;
        if (c->out_sent < c->out_len) break; /* socket full */
    }
    if (turn == SUB_FRAMES_PER_TURN && c->state == ST_SUB && c->out_sent == c->out_len)
        sub_fill(c);
    set_events(c);
}

/* ---- events ---- */

static void drain_input(bconn *c) {
    unsigned char buf[DRAIN_CHUNK]; /* a rejected connection has no staging */
    for (;;) {
        ssize_t r = sock_read(c, buf, sizeof buf);
        if (r <= 0) return; /* closed on EOF/error */
        c->drained += r;
        if (c->drained > DRAIN_MAX_BYTES) {
            conn_close(c);
            return;
        }
    }
}

static void conn_readable(bconn *c) {
    if (c->state == ST_DRAIN) {
        drain_input(c);
        return;
    }
    if (c->state == ST_SUB) {
        /* A subscriber sends nothing after the handshake. */
        unsigned char b;
        ssize_t r = sock_read(c, &b, 1);
        if (r > 0) send_error(c, BATCH_E_SUB_INPUT, NULL);
        return;
    }
    if (c->close_after_flush || c->paused) return;
    pub_run(c);
}

/* Do this publisher's ACKs wait for the AOF (a batch not logged yet,
 * because the disk fails)? */
static int aof_holds(bconn *c) {
    if (!c->aof_need) return 0;
    if (!server_aof_ready(srv_of(c), c->aof_need)) return 1;
    c->aof_need = 0;
    return 0;
}

static void conn_writable(bconn *c) {
    server_aof_before_reply(srv_of(c), &c->bl->lt->aof_need); /* ACKs after their records */
    if (aof_holds(c)) {
        mark_pending(c); /* retried before the loop sleeps */
        return;
    }
    if (c->state == ST_SUB) {
        sub_pump(c);
        return;
    }
    if (conn_write(c) < 0) return;
    if (c->paused && c->out_len - c->out_sent <= OUT_PAUSE_BYTES / 2) {
        c->paused = 0;
        pub_run(c); /* staged input first, then the socket */
        return;
    }
    set_events(c);
}

static void conn_io(ev_loop *loop, ev_io *io, uint32_t ready) {
    bconn *c = io->arg;
    if (c->closing) return;
    if (ready & EV_WRITE) conn_writable(c);
    if ((ready & EV_READ) && !c->closing) conn_readable(c);
}

/* ---- closing ---- */

static void conn_close(bconn *c) {
    if (c->closing) return;
    batch_loop *bl = c->bl;
    c->closing = 1;
    watch_remove(c);
    ev_io_stop(bl->lt->loop, &c->io);
    close(c->io.fd);
    if (c->prev) c->prev->next = c->next;
    else bl->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (c->rejected) {
        atomic_fetch_sub(&bl->bs->nrejecting, 1);
    } else {
        atomic_fetch_sub(&bl->bs->nconns, 1);
        STAT_ADD(bl->stats.conns, -1);
    }
    if (c->counted_role == BATCH_ROLE_SUBSCRIBER) STAT_ADD(bl->stats.subscribers, -1);
    if (c->counted_role == BATCH_ROLE_PUBLISHER) STAT_ADD(bl->stats.publishers, -1);
    /* freed before the loop sleeps: an event for c may still be queued in
     * the batch being dispatched; a pending conn is freed from there */
    if (!c->pending) {
        c->pending_next = bl->to_free;
        bl->to_free = c;
    }
}

static void conn_free(bconn *c) {
    free(c->var);
    free(c->topic);
    free(c->in);
    free(c->payload);
    free(c->raw);
    free(c->out);
    ZSTD_freeDCtx(c->zstd);
    if (c->sink) {
        reply_free(c->sink);
        free(c->sink);
    }
    evict_pool_free(c->sess.evict_pool);
    free(c);
}

void batch_before_sleep(loop_thread *lt) {
    batch_server *bs = lt->srv->batch;
    if (!bs) return;
    batch_loop *bl = &bs->loops[lt->idx];
    bconn *c = bl->pending, *held = NULL;
    bl->pending = NULL;
    while (c) {
        bconn *next = c->pending_next;
        c->pending = 0;
        if (c->closing) {
            c->pending_next = bl->to_free;
            bl->to_free = c;
        } else if (aof_holds(c)) {
            c->pending = 1; /* ACKs of a batch the AOF does not hold yet wait */
            c->pending_next = held;
            held = c;
        } else if (c->state == ST_SUB) {
            sub_pump(c); /* a finished frame is followed by the next one */
        } else if (conn_write(c) == 0) {
            set_events(c);
        }
        c = next;
    }
    bl->pending = held;
    while (bl->to_free) {
        bconn *f = bl->to_free;
        bl->to_free = f->pending_next;
        conn_free(f);
    }
}

/* Handshakes that stall and drains that never end. */
static long on_tick(ev_loop *loop, void *arg) {
    batch_loop *bl = arg;
    int64_t now = clock_mono_ms();
    for (bconn *c = bl->conns, *next; c; c = next) {
        next = c->next;
        if (c->deadline_ms && now > c->deadline_ms) conn_close(c);
    }
    return TICK_MS;
}

void batch_stop_loop(loop_thread *lt) {
    batch_server *bs = lt->srv->batch;
    if (!bs) return;
    batch_loop *bl = &bs->loops[lt->idx];
    for (int i = 0; i < bs->nfds; i++)
        if (bl->listen_io[i].registered) ev_io_stop(lt->loop, &bl->listen_io[i]);
    while (bl->conns) {
        bconn *c = bl->conns;
        /* best effort: queued ACKs (never those of a batch the AOF lacks) */
        if (c->state != ST_SUB && !aof_holds(c)) conn_write(c);
        if (!c->closing) conn_close(c);
    }
    batch_before_sleep(lt);
}

/* ---- stats and teardown ---- */

void batch_get_stats(server *srv, batch_stats *out) {
    memset(out, 0, sizeof *out);
    batch_server *bs = srv->batch;
    if (!bs) return;
    out->port = bs->port;
    for (int i = 0; i < srv->nthreads; i++) {
        const bl_stats *s = &bs->loops[i].stats;
        out->connections += (long long)STAT_GET(s->conns);
        out->publishers += (long long)STAT_GET(s->publishers);
        out->subscribers += (long long)STAT_GET(s->subscribers);
        out->connections_received += STAT_GET(s->received);
        out->batches_in += STAT_GET(s->batches_in);
        out->batches_out += STAT_GET(s->batches_out);
        out->bytes_in += STAT_GET(s->bytes_in);
        out->bytes_out += STAT_GET(s->bytes_out);
        out->messages_in += STAT_GET(s->messages_in);
        out->messages_out += STAT_GET(s->messages_out);
        out->duplicates += STAT_GET(s->duplicates);
        out->errors += STAT_GET(s->errors);
    }
}

void batch_free(server *srv) {
    batch_server *bs = srv->batch;
    if (!bs) return;
    for (int i = 0; i < bs->nfds; i++) close(bs->fds[i]);
    pthread_mutex_destroy(&bs->watch_lock);
    free(bs->loops);
    free(bs);
    srv->batch = NULL;
}
