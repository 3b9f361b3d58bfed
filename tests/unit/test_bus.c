/* test_bus.c - the cluster bus (src/cluster/bus.c, busauth.c) over real
 * loopback sockets: links between every pair, messages of 0 B to 5 MB
 * intact and in order both ways, send gathering, refusals (wrong hash,
 * wrong id, bad magic, old version, garbage), a bus destroyed and
 * recreated, oversize and empty frames, a replaced link, the idle timeout
 * and the output limit; and the authentication: the codec and proofs on
 * their own, buses with different secrets, proofs that must fail (wrong
 * key, reflected, other transcript, none), frames with a bad MAC
 * (tampered, replayed, reordered, from an older link, other direction),
 * and a second link for a node that cannot displace the first without
 * the proof.
 *
 * Every bus of a test runs on one ev_loop in this thread. The loop cannot
 * be restarted after ev_stop, so each test is a list of steps polled by a
 * 1 ms loop timer: a step returns 1 when done (it may act: send, destroy a
 * bus), 0 to be polled again; a step that takes longer than its timeout
 * fails the test. Raw sockets play a hand-written peer where the test needs
 * one that misbehaves. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "cluster/bus.h"
#include "cluster/busauth.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/event_loop.h"
#include "net/socket.h"

#define HASH 0x5049455242555331ull
#define SECRET "unit-test cluster secret: 32 b."
#define OTHER_SECRET "another cluster's secret, 32 b!"
#define KEY(s) ((const uint8_t *)(s)), strlen(s)
#define MSG_TYPE 7
#define MAX_NODES 3
#define RAW_PORT_OFFSET 9 /* a raw peer's configured port: never dialled */
#define STEP_TIMEOUT_MS 3000

typedef struct tctx tctx;

/* The raw socket's side of a link: what a hand-written peer needs to
 * speak the handshake and MAC its frames. */
typedef struct raw_link {
    bus_transcript tr;
    bus_mac tx, rx;
} raw_link;

typedef struct node {
    tctx *t;
    int idx;
    bus *b;
    int ups[256], downs[256];
    int nrecv[256];
    uint64_t bytes[256];
    int bad; /* messages that were not what the test sent */
    char events[64]; /* "u4d4u4": on_link ups and downs in order */
    size_t nevents;
} node;

typedef int step_fn(tctx *t);
typedef struct step {
    const char *name;
    step_fn *fn;
} step;

struct tctx {
    ev_loop *loop;
    int base_port;
    int nnodes;
    int ids[MAX_NODES];
    uint64_t hash[MAX_NODES]; /* 0 = HASH */
    const char *secret[MAX_NODES]; /* NULL = SECRET */
    node nodes[MAX_NODES];
    int raw_id;               /* a configured peer played by a raw socket; 0 none */
    long gather_us, idle_ms;
    size_t max_frame, max_outbuf;
    const size_t *sizes;      /* what each sender sends, in order (NULL: anything) */
    int nsizes;
    int echo_idx;             /* this node sends every message back (-1 none) */
    int raw[3];               /* raw sockets, -1 when closed */
    raw_link rl[3];           /* their handshake state and MACs */
    uint8_t rawbuf[256];
    size_t rawlen;
    uint8_t peer_proof[BUS_PROOF_LEN]; /* the bus's last proof a raw dialler got */
    uint8_t *saved;           /* wire bytes a step keeps for a later one */
    size_t saved_len;
    int counter;              /* free for a step's own use */
    const step *steps;
    int nsteps, cur;
    int64_t step_started_ms;
    const char *timed_out;    /* name of the step that never finished */
    int64_t mark_ms;          /* a time a step noted for a later one */
    bus_stats stats[MAX_NODES]; /* taken by the collect_stats step */
};

/* --- payloads: byte i of message k is a function of both --- */

static uint8_t pattern_byte(size_t i, int k) {
    return (uint8_t)((i * 131u) ^ ((size_t)k * 17u) ^ (i >> 9));
}

static uint8_t *make_payload(size_t len, int k) {
    uint8_t *p = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) p[i] = pattern_byte(i, k);
    return p;
}

static int payload_ok(const uint8_t *p, size_t len, int k) {
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern_byte(i, k)) return 0;
    return 1;
}

/* --- callbacks --- */

static void on_recv(void *arg, int from, uint8_t type, const uint8_t *p, size_t len) {
    node *n = arg;
    tctx *t = n->t;
    int k = n->nrecv[from]++;
    n->bytes[from] += len;
    if (type != MSG_TYPE) n->bad++;
    if (t->sizes && (k >= t->nsizes || len != t->sizes[k] || !payload_ok(p, len, k))) n->bad++;
    if (n->idx == t->echo_idx && bus_send(n->b, from, MSG_TYPE, p, len) != 0) n->bad++;
}

static void on_link(void *arg, int peer, int up) {
    node *n = arg;
    if (up) {
        n->ups[peer]++;
        if (bus_connected(n->b, peer) != 1) n->bad++; /* usable inside the callback */
    } else {
        n->downs[peer]++;
        if (bus_connected(n->b, peer) != 0) n->bad++;
    }
    if (n->nevents + 3 < sizeof n->events)
        n->nevents += (size_t)snprintf(n->events + n->nevents, sizeof n->events - n->nevents,
                                       "%c%d", up ? 'u' : 'd', peer);
}

/* --- nodes --- */

static void node_config(tctx *t, int idx, bus_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->self_id = t->ids[idx];
    cfg->bind_host = "127.0.0.1";
    cfg->port = t->base_port + idx;
    for (int j = 0; j < t->nnodes; j++) {
        if (j == idx) continue;
        bus_peer_addr *a = &cfg->peers[cfg->npeers++];
        a->id = t->ids[j];
        snprintf(a->host, sizeof a->host, "127.0.0.1");
        a->port = t->base_port + j;
    }
    if (t->raw_id) {
        bus_peer_addr *a = &cfg->peers[cfg->npeers++];
        a->id = t->raw_id;
        snprintf(a->host, sizeof a->host, "127.0.0.1");
        a->port = t->base_port + RAW_PORT_OFFSET;
    }
    cfg->gather_us = t->gather_us;
    cfg->max_frame = t->max_frame ? t->max_frame : 64u << 20;
    cfg->max_outbuf = t->max_outbuf ? t->max_outbuf : 256u << 20;
    cfg->idle_timeout_ms = t->idle_ms;
    cfg->cluster_hash = t->hash[idx] ? t->hash[idx] : HASH;
    const char *secret = t->secret[idx] ? t->secret[idx] : SECRET;
    cfg->key = (const uint8_t *)secret;
    cfg->key_len = strlen(secret);
    cfg->on_recv = on_recv;
    cfg->on_link = on_link;
    cfg->arg = &t->nodes[idx];
}

static int node_start(tctx *t, int idx) {
    node *n = &t->nodes[idx];
    memset(n, 0, sizeof *n);
    n->t = t;
    n->idx = idx;
    bus_config cfg;
    node_config(t, idx, &cfg);
    char err[256] = "";
    n->b = bus_create(t->loop, &cfg, err, sizeof err);
    if (!n->b) fprintf(stderr, "  bus_create(node %d): %s\n", t->ids[idx], err);
    CHECK(n->b != NULL);
    return n->b != NULL;
}

static void node_stop(tctx *t, int idx) {
    bus_destroy(t->nodes[idx].b);
    t->nodes[idx].b = NULL;
}

static int node_linked(tctx *t, int idx, int peer_id) {
    return t->nodes[idx].b && bus_connected(t->nodes[idx].b, peer_id);
}

static int all_linked(tctx *t) {
    for (int i = 0; i < t->nnodes; i++)
        for (int j = 0; j < t->nnodes; j++)
            if (i != j && !node_linked(t, i, t->ids[j])) return 0;
    return 1;
}

/* --- the step driver --- */

static void before_sleep(ev_loop *loop, void *arg) {
    tctx *t = arg;
    for (int i = 0; i < t->nnodes; i++)
        if (t->nodes[i].b) bus_before_sleep(t->nodes[i].b);
}

static long drive(ev_loop *loop, void *arg) {
    tctx *t = arg;
    int64_t now = clock_mono_ms();
    while (t->cur < t->nsteps) {
        if (!t->steps[t->cur].fn(t)) {
            if (now - t->step_started_ms <= STEP_TIMEOUT_MS) return 1;
            t->timed_out = t->steps[t->cur].name;
            break;
        }
        t->cur++;
        t->step_started_ms = now = clock_mono_ms();
    }
    ev_stop(loop);
    return -1;
}

static int waited_ms(const tctx *t, long ms) { return clock_mono_ms() - t->step_started_ms >= ms; }

/* Ports base..base+RAW_PORT_OFFSET, chosen from the pid and checked free. */
static int pick_base_port(void) {
    static int next_try;
    for (int attempt = 0; attempt < 50; attempt++) {
        int base = 20000 + (int)(((unsigned)getpid() * 40u + (unsigned)next_try++ * 10u) % 19980u);
        int ok = 1;
        for (int p = base; p <= base + RAW_PORT_OFFSET && ok; p++) {
            char err[128];
            int fd = sock_listen("127.0.0.1", p, 1, err, sizeof err);
            if (fd < 0) ok = 0;
            else close(fd);
        }
        if (ok) return base;
    }
    return 20000;
}

static void tctx_init(tctx *t, int nnodes) {
    memset(t, 0, sizeof *t);
    t->nnodes = nnodes;
    for (int i = 0; i < nnodes; i++) t->ids[i] = i + 1;
    for (int i = 0; i < 3; i++) t->raw[i] = -1;
    t->echo_idx = -1;
    t->base_port = pick_base_port();
}

/* One bus node (self_id) and a peer played by raw sockets (raw_id). */
static void tctx_init_raw(tctx *t, int self_id, int raw_id) {
    tctx_init(t, 1);
    t->ids[0] = self_id;
    t->raw_id = raw_id;
}

/* Run the steps on a fresh loop, then tear everything down. */
static void run_steps(tctx *t, const step *steps, int nsteps) {
    t->loop = ev_create(NULL, NULL);
    ev_set_before_sleep(t->loop, before_sleep, t);
    t->steps = steps;
    t->nsteps = nsteps;
    t->step_started_ms = clock_mono_ms();
    ev_timer_add(t->loop, 0, drive, t);
    ev_run(t->loop);
    if (t->timed_out) fprintf(stderr, "  step '%s' did not finish\n", t->timed_out);
    CHECK(t->timed_out == NULL);
    for (int i = 0; i < t->nnodes; i++) {
        CHECK_EQ_LL(t->nodes[i].bad, 0);
        node_stop(t, i);
    }
    for (int i = 0; i < 3; i++) {
        if (t->raw[i] >= 0) close(t->raw[i]);
        bus_mac_free(&t->rl[i].tx);
        bus_mac_free(&t->rl[i].rx);
    }
    free(t->saved);
    ev_destroy(t->loop);
}

#define STEP(fn) {#fn, fn}
#define RUN_STEPS(t, arr) run_steps((t), (arr), (int)(sizeof(arr) / sizeof((arr)[0])))

/* --- common steps --- */

static int start_all(tctx *t) {
    for (int i = 0; i < t->nnodes; i++)
        if (!node_start(t, i)) return 0;
    return 1;
}

static int wait_all_linked(tctx *t) { return all_linked(t); }

static int collect_stats(tctx *t) {
    for (int i = 0; i < t->nnodes; i++)
        if (t->nodes[i].b) bus_get_stats(t->nodes[i].b, &t->stats[i]);
    return 1;
}

/* --- a raw socket playing a peer --- */

static int raw_connect(tctx *t, int idx) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(t->base_port + idx))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    /* Blocking is fine: the kernel completes it against the backlog. */
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    CHECK_EQ_LL(rc, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    t->rawlen = 0;
    return fd;
}

static void raw_write(int fd, const void *p, size_t n) {
    const uint8_t *q = p;
    while (n) {
        ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        CHECK(w > 0);
        if (w <= 0) return;
        q += w;
        n -= (size_t)w;
    }
}

static void raw_frame_header(int fd, uint32_t len, uint8_t type) {
    uint8_t h[BUS_FRAME_HEADER] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                                   (uint8_t)(len >> 24), type};
    raw_write(fd, h, sizeof h);
}

/* A frame without a MAC (the handshake's). */
static void raw_plain_frame(int fd, uint8_t type, const void *p, size_t n) {
    raw_frame_header(fd, (uint32_t)(n + 1), type);
    raw_write(fd, p, n);
}

/* The wire bytes of a frame after the handshake, MAC'd under mac (whose
 * counter advances). *len gets their size; the caller frees them. */
static uint8_t *mac_frame(bus_mac *mac, uint8_t type, const void *p, size_t n, size_t *len) {
    uint8_t *f = malloc(BUS_FRAME_HEADER + n + BUS_MAC_LEN);
    uint32_t flen = (uint32_t)(n + 1 + BUS_MAC_LEN);
    for (int i = 0; i < 4; i++) f[i] = (uint8_t)(flen >> (8 * i));
    f[4] = type;
    if (n) memcpy(f + BUS_FRAME_HEADER, p, n);
    CHECK_EQ_LL(bus_mac_sign(mac, f, BUS_FRAME_HEADER + n, f + BUS_FRAME_HEADER + n), 0);
    *len = BUS_FRAME_HEADER + n + BUS_MAC_LEN;
    return f;
}

/* Raw socket i sends one MAC'd frame. */
static void raw_send_frame(tctx *t, int i, uint8_t type, const void *p, size_t n) {
    size_t len;
    uint8_t *f = mac_frame(&t->rl[i].tx, type, p, n, &len);
    raw_write(t->raw[i], f, len);
    free(f);
}

/* 1 once the other end closed (EOF or reset); data read is discarded. */
static int raw_closed(int fd) {
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) return 1;
        if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    }
}

/* 1 once `whole` bytes (one frame) arrived on fd, in t->rawbuf. */
static int raw_recv(tctx *t, int fd, size_t whole) {
    CHECK(whole <= sizeof t->rawbuf);
    ssize_t n = recv(fd, t->rawbuf + t->rawlen, whole - t->rawlen, MSG_DONTWAIT);
    if (n > 0) t->rawlen += (size_t)n;
    if (t->rawlen < whole) return 0;
    t->rawlen = 0;
    return 1;
}

static void raw_link_reset(raw_link *r) {
    bus_mac_free(&r->tx);
    bus_mac_free(&r->rx);
    memset(r, 0, sizeof *r);
}

/* Raw dialler i sends its HELLO, claiming id, to bus node 0. */
static void raw_send_hello(tctx *t, int i, int id, uint64_t hash) {
    raw_link *r = &t->rl[i];
    raw_link_reset(r);
    r->tr.hash = hash;
    r->tr.dialler_id = id;
    r->tr.acceptor_id = t->ids[0];
    CHECK_EQ_LL(bus_random(r->tr.dialler_nonce, BUS_NONCE_LEN), 0);
    uint8_t p[BUS_HELLO_PAYLOAD];
    bus_hello_write(p, id, hash, r->tr.dialler_nonce);
    raw_plain_frame(t->raw[i], BUS_HELLO_TYPE, p, sizeof p);
}

/* 1 once bus node 0's HELLO+PROOF reached raw dialler i: it must be node 0
 * with our hash, proving SECRET over both nonces. */
static int raw_got_hello_proof(tctx *t, int i) {
    if (!raw_recv(t, t->raw[i], BUS_FRAME_HEADER + BUS_HELLO_PROOF_PAYLOAD)) return 0;
    bus_hello h;
    CHECK_EQ_LL(bus_hello_read(t->rawbuf[4], t->rawbuf + BUS_FRAME_HEADER,
                               BUS_HELLO_PROOF_PAYLOAD, 1, &h), BUS_HELLO_OK);
    CHECK_EQ_LL(h.id, t->ids[0]);
    CHECK(h.hash == HASH);
    raw_link *r = &t->rl[i];
    memcpy(r->tr.acceptor_nonce, h.nonce, BUS_NONCE_LEN);
    memcpy(t->peer_proof, h.proof, BUS_PROOF_LEN);
    CHECK(bus_proof_ok(KEY(SECRET), &r->tr, BUS_ACCEPTOR, h.proof));
    return 1;
}

/* Raw dialler i proves secret over its transcript and keys its MACs. */
static void raw_send_proof(tctx *t, int i, const char *secret) {
    raw_link *r = &t->rl[i];
    uint8_t proof[BUS_PROOF_LEN];
    CHECK_EQ_LL(bus_proof(KEY(secret), &r->tr, BUS_DIALLER, proof), 0);
    raw_plain_frame(t->raw[i], BUS_HELLO_TYPE, proof, sizeof proof);
    CHECK_EQ_LL(bus_mac_init(&r->tx, KEY(secret), &r->tr, BUS_DIALLER), 0);
    CHECK_EQ_LL(bus_mac_init(&r->rx, KEY(secret), &r->tr, BUS_ACCEPTOR), 0);
}

static void raw_close(tctx *t, int i) {
    close(t->raw[i]);
    t->raw[i] = -1;
}

/* 1 (and raw socket i closed here too) once the bus closed it. */
static int raw_wait_closed(tctx *t, int i) {
    if (!raw_closed(t->raw[i])) return 0;
    raw_close(t, i);
    return 1;
}

/* ---- links, and messages of every size both ways ---- */

static const size_t mixed_sizes[] = {0, 1, 100 * 1000, 5 * 1000 * 1000, 3, 0, 70000};
#define NMIXED ((int)(sizeof mixed_sizes / sizeof mixed_sizes[0]))

static void send_script(tctx *t, int from_idx, int to_idx) {
    for (int k = 0; k < NMIXED; k++) {
        uint8_t *p = make_payload(mixed_sizes[k], k);
        CHECK_EQ_LL(bus_send(t->nodes[from_idx].b, t->ids[to_idx], MSG_TYPE, p, mixed_sizes[k]), 0);
        free(p);
    }
}

static int send_mixed(tctx *t) {
    send_script(t, 0, 2); /* dialler to acceptor */
    send_script(t, 2, 0); /* acceptor to dialler */
    send_script(t, 1, 0);
    send_script(t, 1, 2);
    return 1;
}

static int wait_mixed_received(tctx *t) {
    return t->nodes[2].nrecv[1] == NMIXED && t->nodes[0].nrecv[3] == NMIXED &&
           t->nodes[0].nrecv[2] == NMIXED && t->nodes[2].nrecv[2] == NMIXED;
}

static void test_links_and_sizes(void) {
    tctx t;
    tctx_init(&t, 3);
    t.sizes = mixed_sizes;
    t.nsizes = NMIXED;
    static const step steps[] = {STEP(start_all), STEP(wait_all_linked), STEP(send_mixed),
                                 STEP(wait_mixed_received)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.nodes[1].nrecv[1] + t.nodes[1].nrecv[3], 0); /* node 2 got nothing */
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++)
            if (i != j) CHECK_EQ_LL(t.nodes[i].ups[t.ids[j]], 1);
    }
    uint64_t total = 0;
    for (int k = 0; k < NMIXED; k++) total += mixed_sizes[k];
    CHECK(t.nodes[2].bytes[1] == total);
    CHECK(t.nodes[0].bytes[3] == total);
}

/* ---- gathering: a 200 us window; node 2 echoes from inside on_recv ---- */

#define BURST 200

static int send_burst(tctx *t) {
    for (int k = 0; k < BURST; k++) {
        uint8_t p[10];
        memset(p, k & 0xff, sizeof p);
        CHECK_EQ_LL(bus_send(t->nodes[0].b, 2, MSG_TYPE, p, sizeof p), 0);
    }
    return 1;
}

static int wait_burst_echoed(tctx *t) {
    return t->nodes[1].nrecv[1] == BURST && t->nodes[0].nrecv[2] == BURST;
}

/* A lone message with nothing else happening: only the gather timer can
 * send it. */
static int send_one(tctx *t) {
    t->mark_ms = clock_mono_ms();
    return bus_send(t->nodes[0].b, 2, MSG_TYPE, "x", 1) == 0;
}

static int wait_one_echoed(tctx *t) {
    if (t->nodes[0].nrecv[2] != BURST + 1) return 0;
    t->mark_ms = clock_mono_ms() - t->mark_ms;
    return 1;
}

static void test_gathering(void) {
    tctx t;
    tctx_init(&t, 2);
    t.gather_us = 200;
    t.echo_idx = 1;
    static const step steps[] = {STEP(start_all),      STEP(wait_all_linked),
                                 STEP(send_burst),     STEP(wait_burst_echoed),
                                 STEP(send_one),       STEP(wait_one_echoed),
                                 STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    /* 201 messages each way in a handful of writes (the hello is one). */
    CHECK_EQ_LL(t.stats[0].frames_sent, BURST + 1);
    CHECK_EQ_LL(t.stats[1].frames_sent, BURST + 1);
    CHECK_EQ_LL(t.stats[0].frames_recv, BURST + 1);
    CHECK(t.stats[0].writes <= 8);
    CHECK(t.stats[1].writes <= 40);
    CHECK(t.mark_ms < 50); /* a round trip through two 200 us windows */
}

/* ---- refusals: wrong hash between real buses ---- */

static int wait_400ms(tctx *t) { return waited_ms(t, 400); }

static void test_wrong_hash_buses(void) {
    tctx t;
    tctx_init(&t, 2);
    t.hash[1] = HASH ^ 1;
    static const step steps[] = {STEP(start_all), STEP(wait_400ms), STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.nodes[0].ups[2], 0);
    CHECK_EQ_LL(t.nodes[1].ups[1], 0);
    CHECK_EQ_LL(t.stats[0].connects + t.stats[1].connects, 0);
}

/* ---- refusals: different secrets between real buses ---- */

static void test_wrong_secret_buses(void) {
    tctx t;
    tctx_init(&t, 2);
    t.secret[1] = OTHER_SECRET;
    static const step steps[] = {STEP(start_all), STEP(wait_400ms), STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.nodes[0].ups[2], 0);
    CHECK_EQ_LL(t.nodes[1].ups[1], 0);
    CHECK_EQ_LL(t.stats[0].connects + t.stats[1].connects, 0);
}

/* ---- refusals from a raw peer: bus node 5, raw peer 4 ---- */

/* One bad opening, sent in one go (the bus reads it all). */
static void raw_bad_opening(tctx *t, int which) {
    int fd = t->raw[0];
    uint8_t h[BUS_HELLO_PAYLOAD], junk[BUS_PROOF_LEN];
    memset(junk, 0x5a, sizeof junk);
    bus_hello_write(h, 4, HASH, junk);
    switch (which) {
    case 0: raw_send_hello(t, 0, 4, HASH ^ 0x100); break; /* another membership */
    case 1: raw_send_hello(t, 0, 6, HASH); break;         /* higher id: it should be dialled */
    case 2: raw_send_hello(t, 0, 2, HASH); break;         /* not a member */
    case 3: /* bad magic */
        h[0] = 'X';
        raw_plain_frame(fd, BUS_HELLO_TYPE, h, sizeof h);
        break;
    case 4: /* version 1: the unauthenticated hello of old nodes */
        h[8] = 1;
        raw_plain_frame(fd, BUS_HELLO_TYPE, h, 19);
        break;
    case 5: /* version 3 */
        h[8] = 3;
        raw_plain_frame(fd, BUS_HELLO_TYPE, h, sizeof h);
        break;
    case 6: raw_write(fd, "GET / HTTP/1.1\r\n\r\n", 18); break;
    case 7: /* a huge first frame: refused on its header, nothing reserved */
        raw_frame_header(fd, 0x7fffffff, BUS_HELLO_TYPE);
        break;
    case 8: /* a good hello, then a guessed proof */
        raw_send_hello(t, 0, 4, HASH);
        raw_plain_frame(fd, BUS_HELLO_TYPE, junk, sizeof junk);
        break;
    case 9: /* a good hello, then no proof: straight to a message */
        raw_send_hello(t, 0, 4, HASH);
        raw_plain_frame(fd, MSG_TYPE, "hello?", 6);
        break;
    case 10: /* a good hello, then a proof-sized frame of another type */
        raw_send_hello(t, 0, 4, HASH);
        raw_plain_frame(fd, MSG_TYPE, junk, sizeof junk);
        break;
    default: /* a good hello, then a frame with a made-up MAC */
        raw_send_hello(t, 0, 4, HASH);
        raw_plain_frame(fd, MSG_TYPE, junk, 1 + BUS_MAC_LEN);
        break;
    }
}
#define NBAD_OPENINGS 12

static int check_unknown_peer(tctx *t) {
    bus *b = t->nodes[0].b;
    CHECK_EQ_LL(bus_send(b, 99, MSG_TYPE, "a", 1), -1);
    CHECK_EQ_LL(bus_send(b, 4, MSG_TYPE, "a", 1), -1); /* known, not connected */
    CHECK_EQ_LL(bus_connected(b, 99), 0);
    CHECK_EQ_LL(bus_connected(b, 4), 0);
    return 1;
}

static int raw_open_bad(tctx *t) {
    t->raw[0] = raw_connect(t, 0);
    raw_bad_opening(t, t->counter);
    return 1;
}

static int wait_raw_refused(tctx *t) {
    if (!raw_wait_closed(t, 0)) return 0;
    t->counter++;
    return 1;
}

/* All the bad openings, one after the other. */
static int refuse_all(tctx *t) {
    if (t->raw[0] < 0) {
        if (t->counter == NBAD_OPENINGS) return 1;
        raw_open_bad(t);
    }
    wait_raw_refused(t);
    return 0;
}

static void test_refusals(void) {
    tctx t;
    tctx_init_raw(&t, 5, 4);
    static const step steps[] = {STEP(start_all), STEP(check_unknown_peer), STEP(refuse_all),
                                 STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.counter, NBAD_OPENINGS);
    CHECK_EQ_LL(t.nodes[0].ups[4], 0);
    CHECK_EQ_LL(t.nodes[0].nrecv[4], 0);
    CHECK_EQ_LL(t.stats[0].connects, 0);
    CHECK_EQ_LL(t.nodes[0].nevents, 0);
}

/* ---- proofs that need the bus's nonce first (bus node 5, raw 4) ---- */

static int raw_hello_step(tctx *t) {
    t->raw[0] = raw_connect(t, 0);
    raw_send_hello(t, 0, 4, HASH);
    return 1;
}

static int raw_read_hello_proof(tctx *t) { return raw_got_hello_proof(t, 0); }

/* Right transcript, another cluster's key. */
static int send_wrong_key_proof(tctx *t) {
    uint8_t proof[BUS_PROOF_LEN];
    CHECK_EQ_LL(bus_proof(KEY(OTHER_SECRET), &t->rl[0].tr, BUS_DIALLER, proof), 0);
    raw_plain_frame(t->raw[0], BUS_HELLO_TYPE, proof, sizeof proof);
    return 1;
}

/* The bus's own proof sent back (a reflection). */
static int send_reflected_proof(tctx *t) {
    raw_plain_frame(t->raw[0], BUS_HELLO_TYPE, t->peer_proof, BUS_PROOF_LEN);
    return 1;
}

/* The right key over another transcript (a proof from another link). */
static int send_other_transcript_proof(tctx *t) {
    bus_transcript other = t->rl[0].tr;
    other.acceptor_nonce[0] ^= 1;
    uint8_t proof[BUS_PROOF_LEN];
    CHECK_EQ_LL(bus_proof(KEY(SECRET), &other, BUS_DIALLER, proof), 0);
    raw_plain_frame(t->raw[0], BUS_HELLO_TYPE, proof, sizeof proof);
    return 1;
}

static int send_right_proof(tctx *t) {
    raw_send_proof(t, 0, SECRET);
    return 1;
}

static int wait_raw4_linked(tctx *t) { return node_linked(t, 0, 4); }

static void test_proofs(void) {
    tctx t;
    tctx_init_raw(&t, 5, 4);
    static const step steps[] = {
        STEP(start_all),
        STEP(raw_hello_step), STEP(raw_read_hello_proof), STEP(send_wrong_key_proof),
        STEP(wait_raw_refused),
        STEP(raw_hello_step), STEP(raw_read_hello_proof), STEP(send_reflected_proof),
        STEP(wait_raw_refused),
        STEP(raw_hello_step), STEP(raw_read_hello_proof), STEP(send_other_transcript_proof),
        STEP(wait_raw_refused),
        STEP(raw_hello_step), STEP(raw_read_hello_proof), STEP(send_right_proof),
        STEP(wait_raw4_linked), STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.counter, 3);
    CHECK(strcmp(t.nodes[0].events, "u4") == 0);
    CHECK_EQ_LL(t.stats[0].connects, 1);
}

/* ---- destroying a bus, then recreating it ---- */

static int stop_node2(tctx *t) {
    node_stop(t, 1);
    return 1;
}

static int wait_node2_down(tctx *t) {
    return t->nodes[0].downs[2] == 1 && t->nodes[2].downs[2] == 1 && !node_linked(t, 0, 2) &&
           !node_linked(t, 2, 2) && node_linked(t, 0, 3);
}

static int restart_node2(tctx *t) { return node_start(t, 1); }

static int send_through_node2(tctx *t) {
    CHECK_EQ_LL(bus_send(t->nodes[0].b, 2, MSG_TYPE, "ab", 2), 0);
    CHECK_EQ_LL(bus_send(t->nodes[1].b, 3, MSG_TYPE, "cd", 2), 0);
    return 1;
}

static int wait_through_node2(tctx *t) {
    return t->nodes[1].nrecv[1] == 1 && t->nodes[2].nrecv[2] == 1;
}

static void test_destroy_and_recreate(void) {
    tctx t;
    tctx_init(&t, 3);
    static const step steps[] = {STEP(start_all),          STEP(wait_all_linked),
                                 STEP(stop_node2),         STEP(wait_node2_down),
                                 STEP(restart_node2),      STEP(wait_all_linked),
                                 STEP(send_through_node2), STEP(wait_through_node2),
                                 STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.nodes[0].ups[2], 2);
    CHECK_EQ_LL(t.nodes[0].downs[2], 1);
    CHECK_EQ_LL(t.nodes[2].ups[2], 2);
    CHECK_EQ_LL(t.nodes[2].downs[2], 1);
    CHECK_EQ_LL(t.nodes[0].downs[3], 0);
    size_t n = t.nodes[0].nevents;
    CHECK(n >= 4 && strcmp(t.nodes[0].events + n - 4, "d2u2") == 0);
    CHECK_EQ_LL(t.stats[0].disconnects, 1);
    CHECK_EQ_LL(t.stats[0].connects, 3);
}

/* ---- frames from a raw peer: partial, max, oversize, empty; replacement ---- */

#define SMALL_MAX 1024

/* Connect a raw dialler claiming node 4 (on raw[0], or raw[1] when raw[0]
 * is in use) and send its HELLO; wait_raw_up finishes the handshake. */
static int raw_open_good(tctx *t) {
    int i = t->raw[0] < 0 ? 0 : 1;
    t->raw[i] = raw_connect(t, 0);
    raw_send_hello(t, i, 4, HASH);
    t->counter = i;
    return 1;
}

static int wait_raw_up(tctx *t) {
    int i = t->counter;
    if (t->raw[i] < 0) return 0;
    if (!t->rl[i].tx.ctx) {
        if (!raw_got_hello_proof(t, i)) return 0;
        raw_send_proof(t, i, SECRET);
    }
    return bus_connected(t->nodes[0].b, 4);
}

static int send_too_big_locally(tctx *t) {
    static uint8_t big[SMALL_MAX + 1];
    CHECK_EQ_LL(bus_send(t->nodes[0].b, 4, MSG_TYPE, big, sizeof big), -1);
    CHECK_EQ_LL(bus_connected(t->nodes[0].b, 4), 1); /* refused, the link stays */
    return 1;
}

/* The largest frame, in two pieces with a pause: the bus waits for the rest. */
static int raw_send_max_first_half(tctx *t) {
    uint8_t *p = make_payload(SMALL_MAX, 0);
    free(t->saved);
    t->saved = mac_frame(&t->rl[0].tx, MSG_TYPE, p, SMALL_MAX, &t->saved_len);
    free(p);
    raw_write(t->raw[0], t->saved, t->saved_len / 2);
    return 1;
}

static int raw_send_max_second_half(tctx *t) {
    if (!waited_ms(t, 20)) return 0;
    CHECK_EQ_LL(t->nodes[0].nrecv[4], 0);
    raw_write(t->raw[0], t->saved + t->saved_len / 2, t->saved_len - t->saved_len / 2);
    return 1;
}

static int wait_max_received(tctx *t) { return t->nodes[0].nrecv[4] == 1; }

static int raw_send_oversize(tctx *t) {
    raw_frame_header(t->raw[0], SMALL_MAX + 1 + BUS_MAC_LEN + 1, MSG_TYPE);
    raw_write(t->raw[0], "0123456789", 10);
    return 1;
}

static int wait_raw0_dropped(tctx *t) { return !node_linked(t, 0, 4) && raw_wait_closed(t, 0); }

static int raw_send_empty(tctx *t) {
    uint8_t zero[4] = {0};
    raw_write(t->raw[0], zero, sizeof zero);
    return 1;
}

/* Shorter than a MAC: no room for one. */
static int raw_send_macless(tctx *t) {
    raw_plain_frame(t->raw[0], MSG_TYPE, "0123456789", 10);
    return 1;
}

static int wait_raw0_closed_by_replacement(tctx *t) {
    return bus_connected(t->nodes[0].b, 4) && raw_wait_closed(t, 0);
}

static void test_raw_frames(void) {
    tctx t;
    tctx_init_raw(&t, 5, 4);
    t.max_frame = SMALL_MAX;
    t.sizes = (const size_t[]){SMALL_MAX};
    t.nsizes = 1;
    static const step steps[] = {
        STEP(start_all),
        /* the largest frame in two pieces, then one too large */
        STEP(raw_open_good), STEP(wait_raw_up), STEP(send_too_big_locally),
        STEP(raw_send_max_first_half), STEP(raw_send_max_second_half), STEP(wait_max_received),
        STEP(raw_send_oversize), STEP(wait_raw0_dropped),
        /* an empty frame (length 0), and one too short to hold a MAC */
        STEP(raw_open_good), STEP(wait_raw_up), STEP(raw_send_empty), STEP(wait_raw0_dropped),
        STEP(raw_open_good), STEP(wait_raw_up), STEP(raw_send_macless), STEP(wait_raw0_dropped),
        /* a second valid connection from node 4 replaces the first */
        STEP(raw_open_good), STEP(wait_raw_up), STEP(raw_open_good), STEP(wait_raw_up),
        STEP(wait_raw0_closed_by_replacement), STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.nodes[0].nrecv[4], 1);
    CHECK(strcmp(t.nodes[0].events, "u4d4u4d4u4d4u4d4u4") == 0);
    CHECK_EQ_LL(t.stats[0].connects, 5);
    CHECK_EQ_LL(t.stats[0].disconnects, 4);
}

/* ---- frame MACs: every way a frame can be wrong (bus node 5, raw 4) ---- */

static int wait_recv(tctx *t, int n) { return t->nodes[0].nrecv[4] == n; }
static int wait_one_received(tctx *t) { return wait_recv(t, 1); }
static int wait_three_received(tctx *t) { return wait_recv(t, 3); }

/* A good frame, kept for the replays below. */
static int send_kept_frame(tctx *t) {
    free(t->saved);
    t->saved = mac_frame(&t->rl[0].tx, MSG_TYPE, "kept", 4, &t->saved_len);
    raw_write(t->raw[0], t->saved, t->saved_len);
    return 1;
}

/* The same bytes again: a replay. */
static int replay_kept_frame(tctx *t) {
    raw_write(t->raw[0], t->saved, t->saved_len);
    return 1;
}

static int send_tampered(tctx *t) {
    size_t len;
    uint8_t *f = mac_frame(&t->rl[0].tx, MSG_TYPE, "tampered", 8, &len);
    f[BUS_FRAME_HEADER + 3] ^= 0x20;
    raw_write(t->raw[0], f, len);
    free(f);
    return 1;
}

static int send_tampered_type(tctx *t) {
    size_t len;
    uint8_t *f = mac_frame(&t->rl[0].tx, MSG_TYPE, "x", 1, &len);
    f[4] ^= 1;
    raw_write(t->raw[0], f, len);
    free(f);
    return 1;
}

/* Frames 0 and 1, sent as 1 then 0. */
static int send_reordered(tctx *t) {
    size_t l0, l1;
    uint8_t *f0 = mac_frame(&t->rl[0].tx, MSG_TYPE, "first", 5, &l0);
    uint8_t *f1 = mac_frame(&t->rl[0].tx, MSG_TYPE, "second", 6, &l1);
    raw_write(t->raw[0], f1, l1);
    raw_write(t->raw[0], f0, l0);
    free(f0);
    free(f1);
    return 1;
}

/* Signed with the key of the other direction (the bus's own frames). */
static int send_wrong_direction(tctx *t) {
    size_t len;
    bus_mac m;
    CHECK_EQ_LL(bus_mac_init(&m, KEY(SECRET), &t->rl[0].tr, BUS_ACCEPTOR), 0);
    uint8_t *f = mac_frame(&m, MSG_TYPE, "mirror", 6, &len);
    raw_write(t->raw[0], f, len);
    free(f);
    bus_mac_free(&m);
    return 1;
}

static int send_two_good(tctx *t) {
    raw_send_frame(t, 0, MSG_TYPE, "one", 3);
    raw_send_frame(t, 0, MSG_TYPE, "two", 3);
    return 1;
}

static void test_frame_macs(void) {
    tctx t;
    tctx_init_raw(&t, 5, 4);
    static const step steps[] = {
        STEP(start_all),
        STEP(raw_open_good), STEP(wait_raw_up), STEP(send_kept_frame), STEP(wait_one_received),
        STEP(replay_kept_frame), STEP(wait_raw0_dropped),
        /* the kept frame (counter 0 of a finished link) on a new link */
        STEP(raw_open_good), STEP(wait_raw_up), STEP(replay_kept_frame), STEP(wait_raw0_dropped),
        STEP(raw_open_good), STEP(wait_raw_up), STEP(send_tampered), STEP(wait_raw0_dropped),
        STEP(raw_open_good), STEP(wait_raw_up), STEP(send_tampered_type), STEP(wait_raw0_dropped),
        STEP(raw_open_good), STEP(wait_raw_up), STEP(send_reordered), STEP(wait_raw0_dropped),
        STEP(raw_open_good), STEP(wait_raw_up), STEP(send_wrong_direction), STEP(wait_raw0_dropped),
        STEP(raw_open_good), STEP(wait_raw_up), STEP(send_two_good), STEP(wait_three_received),
        STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.nodes[0].nrecv[4], 3); /* only the good frames */
    CHECK_EQ_LL(t.stats[0].connects, 7);
    CHECK_EQ_LL(t.stats[0].disconnects, 6);
}

/* ---- a second link for node 4 needs the proof to replace the first ---- */

static int raw1_hello_bad_proof(tctx *t) {
    t->raw[1] = raw_connect(t, 0);
    raw_send_hello(t, 1, 4, HASH);
    uint8_t junk[BUS_PROOF_LEN] = {1, 2, 3};
    raw_plain_frame(t->raw[1], BUS_HELLO_TYPE, junk, sizeof junk);
    return 1;
}

static int wait_raw1_refused(tctx *t) { return raw_wait_closed(t, 1); }

static int raw1_hello_only(tctx *t) {
    t->raw[1] = raw_connect(t, 0);
    raw_send_hello(t, 1, 4, HASH);
    return 1;
}

static int raw0_send_one(tctx *t) {
    raw_send_frame(t, 0, MSG_TYPE, "still", 5);
    return 1;
}

static int wait_two_received(tctx *t) { return wait_recv(t, 2); }

static void test_second_link_needs_proof(void) {
    tctx t;
    tctx_init_raw(&t, 5, 4);
    static const step steps[] = {
        STEP(start_all), STEP(raw_open_good), STEP(wait_raw_up),
        STEP(raw1_hello_bad_proof), STEP(wait_raw1_refused), STEP(raw0_send_one),
        STEP(wait_one_received),
        /* a hello and then silence: pending, never the link of node 4 */
        STEP(raw1_hello_only), STEP(raw0_send_one), STEP(wait_two_received),
        STEP(wait_raw1_refused), STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK(strcmp(t.nodes[0].events, "u4") == 0);
    CHECK_EQ_LL(t.stats[0].connects, 1);
}

/* ---- the idle timeout: a peer that says nothing after its hello ---- */

static int mark_now(tctx *t) {
    t->mark_ms = clock_mono_ms();
    return 1;
}

static int wait_idle_drop(tctx *t) {
    if (t->nodes[0].downs[4] != 1 || !raw_closed(t->raw[0])) return 0;
    t->mark_ms = clock_mono_ms() - t->mark_ms;
    return 1;
}

static void test_idle_timeout(void) {
    tctx t;
    tctx_init_raw(&t, 5, 4);
    t.idle_ms = 150;
    static const step steps[] = {STEP(start_all), STEP(raw_open_good), STEP(wait_raw_up),
                                 STEP(mark_now), STEP(wait_idle_drop)};
    RUN_STEPS(&t, steps);
    CHECK(t.mark_ms >= 140 && t.mark_ms < 1000);
    CHECK_EQ_LL(t.nodes[0].ups[4], 1);
}

/* ---- the output limit: a peer that never reads ---- */

#define FLOOD_MSG (64 * 1024)
#define FLOOD_MAX 2000

static int flood(tctx *t) {
    uint8_t *p = calloc(1, FLOOD_MSG);
    for (t->counter = 0; t->counter < FLOOD_MAX; t->counter++)
        if (bus_send(t->nodes[0].b, 4, MSG_TYPE, p, FLOOD_MSG) != 0) break;
    free(p);
    CHECK_EQ_LL(bus_connected(t->nodes[0].b, 4), 0); /* dropped at once */
    return 1;
}

static int wait_flood_drop(tctx *t) { return t->nodes[0].downs[4] == 1 && raw_closed(t->raw[0]); }

static void test_output_limit(void) {
    tctx t;
    tctx_init_raw(&t, 5, 4);
    t.max_outbuf = 1u << 20;
    static const step steps[] = {STEP(start_all), STEP(raw_open_good), STEP(wait_raw_up),
                                 STEP(flood), STEP(wait_flood_drop), STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK(t.counter < FLOOD_MAX);
    CHECK(t.counter > 16); /* the kernel took some before the limit hit */
    CHECK(t.stats[0].bytes_sent > (256u << 10));
}

/* ---- the dialler checks the acceptor's reply: bus node 1 dials raw node 2 ---- */

static int raw_listen(tctx *t) {
    char err[128];
    t->raw[2] = sock_listen("127.0.0.1", t->base_port + RAW_PORT_OFFSET, 4, err, sizeof err);
    CHECK(t->raw[2] >= 0);
    return t->raw[2] >= 0;
}

static int accept_dial(tctx *t) {
    int fd = sock_accept(t->raw[2]);
    if (fd < 0) return 0;
    t->raw[0] = fd;
    t->rawlen = 0;
    raw_link_reset(&t->rl[0]);
    return 1;
}

/* Bus node 1's HELLO: note its nonce. */
static int read_dialler_hello(tctx *t) {
    if (!raw_recv(t, t->raw[0], BUS_FRAME_HEADER + BUS_HELLO_PAYLOAD)) return 0;
    bus_hello h;
    CHECK_EQ_LL(bus_hello_read(t->rawbuf[4], t->rawbuf + BUS_FRAME_HEADER, BUS_HELLO_PAYLOAD, 0,
                               &h), BUS_HELLO_OK);
    CHECK_EQ_LL(h.id, 1);
    CHECK(h.hash == HASH);
    raw_link *r = &t->rl[0];
    r->tr.hash = HASH;
    r->tr.dialler_id = 1;
    r->tr.acceptor_id = 2;
    memcpy(r->tr.dialler_nonce, h.nonce, BUS_NONCE_LEN);
    return 1;
}

/* The raw acceptor's HELLO+PROOF, as node id, proving secret. */
static void reply_hello(tctx *t, int id, const char *secret) {
    raw_link *r = &t->rl[0];
    uint8_t p[BUS_HELLO_PROOF_PAYLOAD];
    CHECK_EQ_LL(bus_random(r->tr.acceptor_nonce, BUS_NONCE_LEN), 0);
    bus_hello_write(p, id, HASH, r->tr.acceptor_nonce);
    CHECK_EQ_LL(bus_proof(KEY(secret), &r->tr, BUS_ACCEPTOR, p + BUS_HELLO_PAYLOAD), 0);
    raw_plain_frame(t->raw[0], BUS_HELLO_TYPE, p, sizeof p);
}

static int reply_wrong_id(tctx *t) {
    reply_hello(t, 3, SECRET);
    return 1;
}

static int reply_wrong_secret(tctx *t) {
    reply_hello(t, 2, OTHER_SECRET);
    return 1;
}

static int wait_dialler_refused(tctx *t) { return raw_wait_closed(t, 0); }

static int reply_right(tctx *t) {
    reply_hello(t, 2, SECRET);
    return 1;
}

/* The dialler's PROOF: check it and key the raw side's MACs. */
static int read_dialler_proof(tctx *t) {
    if (!raw_recv(t, t->raw[0], BUS_FRAME_HEADER + BUS_PROOF_PAYLOAD)) return 0;
    raw_link *r = &t->rl[0];
    CHECK_EQ_LL(t->rawbuf[4], BUS_HELLO_TYPE);
    CHECK(bus_proof_ok(KEY(SECRET), &r->tr, BUS_DIALLER, t->rawbuf + BUS_FRAME_HEADER));
    CHECK_EQ_LL(bus_mac_init(&r->tx, KEY(SECRET), &r->tr, BUS_ACCEPTOR), 0);
    CHECK_EQ_LL(bus_mac_init(&r->rx, KEY(SECRET), &r->tr, BUS_DIALLER), 0);
    return 1;
}

static int wait_dialler_up(tctx *t) { return node_linked(t, 0, 2); }

static int send_to_raw(tctx *t) {
    CHECK_EQ_LL(bus_send(t->nodes[0].b, 2, MSG_TYPE, "ping", 4), 0);
    raw_send_frame(t, 0, MSG_TYPE, "pon", 3);
    return 1;
}

#define PING_FRAME (BUS_FRAME_HEADER + 4 + BUS_MAC_LEN)

static int wait_frame_at_raw(tctx *t) {
    if (t->rawlen < PING_FRAME || t->nodes[0].nrecv[2] != 1) {
        ssize_t n = recv(t->raw[0], t->rawbuf + t->rawlen, PING_FRAME - t->rawlen, MSG_DONTWAIT);
        if (n > 0) t->rawlen += (size_t)n;
        if (t->rawlen < PING_FRAME || t->nodes[0].nrecv[2] != 1) return 0;
    }
    /* length 1 + 4 + 16, type 7, "ping", then its MAC */
    CHECK(memcmp(t->rawbuf, "\x15\x00\x00\x00\x07ping", 9) == 0);
    CHECK(bus_mac_verify(&t->rl[0].rx, t->rawbuf, 9, t->rawbuf + 9));
    return 1;
}

static void test_dialler_checks_reply(void) {
    tctx t;
    tctx_init_raw(&t, 1, 2);
    static const step steps[] = {
        STEP(raw_listen),         STEP(start_all),       STEP(accept_dial),
        STEP(read_dialler_hello), STEP(reply_wrong_id),  STEP(wait_dialler_refused),
        STEP(accept_dial),        STEP(read_dialler_hello), STEP(reply_wrong_secret),
        STEP(wait_dialler_refused),
        STEP(accept_dial),        STEP(read_dialler_hello), STEP(reply_right),
        STEP(read_dialler_proof), STEP(wait_dialler_up), STEP(send_to_raw),
        STEP(wait_frame_at_raw)};
    RUN_STEPS(&t, steps);
    CHECK(strcmp(t.nodes[0].events, "u2") == 0);
}

/* ---- the codec and the proofs on their own (busauth.c) ---- */

static void test_transcript(bus_transcript *tr) {
    memset(tr, 0, sizeof *tr);
    tr->hash = HASH;
    tr->dialler_id = 1;
    tr->acceptor_id = 2;
    for (int i = 0; i < BUS_NONCE_LEN; i++) {
        tr->dialler_nonce[i] = (uint8_t)i;
        tr->acceptor_nonce[i] = (uint8_t)(0x80 + i);
    }
}

static void test_hello_codec(void) {
    uint8_t nonce[BUS_NONCE_LEN], p[BUS_HELLO_PROOF_PAYLOAD];
    for (int i = 0; i < BUS_NONCE_LEN; i++) nonce[i] = (uint8_t)(3 * i);
    bus_hello_write(p, 7, HASH, nonce);
    memset(p + BUS_HELLO_PAYLOAD, 0xee, BUS_PROOF_LEN);
    CHECK_MEM(p, 8, "PIERBUS1");
    CHECK(p[8] == 2 && p[9] == 0 && p[10] == 7);
    bus_hello h;
    CHECK_EQ_LL(bus_hello_read(BUS_HELLO_TYPE, p, BUS_HELLO_PAYLOAD, 0, &h), BUS_HELLO_OK);
    CHECK(h.id == 7 && h.hash == HASH && h.version == 2);
    CHECK(memcmp(h.nonce, nonce, BUS_NONCE_LEN) == 0);
    CHECK_EQ_LL(bus_hello_read(BUS_HELLO_TYPE, p, BUS_HELLO_PROOF_PAYLOAD, 1, &h), BUS_HELLO_OK);
    CHECK(h.proof[0] == 0xee && h.proof[BUS_PROOF_LEN - 1] == 0xee);
    /* the wrong size for the step, a wrong type, too short, another version */
    CHECK_EQ_LL(bus_hello_read(BUS_HELLO_TYPE, p, BUS_HELLO_PROOF_PAYLOAD, 0, &h), BUS_HELLO_LENGTH);
    CHECK_EQ_LL(bus_hello_read(BUS_HELLO_TYPE, p, BUS_HELLO_PAYLOAD, 1, &h), BUS_HELLO_LENGTH);
    CHECK_EQ_LL(bus_hello_read(1, p, BUS_HELLO_PAYLOAD, 0, &h), BUS_HELLO_NOT_HELLO);
    CHECK_EQ_LL(bus_hello_read(BUS_HELLO_TYPE, p, 9, 0, &h), BUS_HELLO_NOT_HELLO);
    p[8] = 1;
    CHECK_EQ_LL(bus_hello_read(BUS_HELLO_TYPE, p, 19, 0, &h), BUS_HELLO_VERSION_);
    CHECK_EQ_LL(h.version, 1);
}

static void test_frame_split(void) {
    uint8_t buf[64] = {0};
    bus_frame f;
    size_t need = 99;
    CHECK_EQ_LL(bus_frame_split(BUS_RX_HELLO, 100, buf, 3, &f, &need), BUS_SPLIT_NEED);
    CHECK_EQ_LL(need, 0);
    /* length 0: no type byte */
    CHECK_EQ_LL(bus_frame_split(BUS_RX_HELLO, 100, buf, 4, &f, &need), BUS_SPLIT_BAD);
    buf[0] = 1 + BUS_HANDSHAKE_MAX; /* the largest handshake frame */
    CHECK_EQ_LL(bus_frame_split(BUS_RX_PROOF, 100, buf, 10, &f, &need), BUS_SPLIT_NEED);
    CHECK_EQ_LL(need, 4 + 1 + BUS_HANDSHAKE_MAX);
    buf[0] = 2 + BUS_HANDSHAKE_MAX;
    CHECK_EQ_LL(bus_frame_split(BUS_RX_HELLO_PROOF, 100, buf, 10, &f, &need), BUS_SPLIT_BAD);
    /* after the handshake: type + MAC at least, max payload + type + MAC at most */
    buf[0] = BUS_MAC_LEN;
    CHECK_EQ_LL(bus_frame_split(BUS_RX_FRAMES, 100, buf, 64, &f, &need), BUS_SPLIT_BAD);
    buf[0] = 1 + BUS_MAC_LEN;
    buf[4] = 9;
    CHECK_EQ_LL(bus_frame_split(BUS_RX_FRAMES, 100, buf, 64, &f, &need), BUS_SPLIT_FRAME);
    CHECK(f.whole == 4 + 1 + BUS_MAC_LEN && f.len == 0 && f.type == 9);
    CHECK(f.mac == buf + BUS_FRAME_HEADER);
    buf[0] = 11 + BUS_MAC_LEN;
    CHECK_EQ_LL(bus_frame_split(BUS_RX_FRAMES, 10, buf, 64, &f, &need), BUS_SPLIT_FRAME);
    CHECK(f.len == 10 && f.mac == buf + BUS_FRAME_HEADER + 10);
    CHECK_EQ_LL(bus_frame_split(BUS_RX_FRAMES, 9, buf, 64, &f, &need), BUS_SPLIT_BAD);
    buf[0] = 0xff;
    buf[1] = 0xff;
    buf[2] = 0xff;
    buf[3] = 0xff;
    CHECK_EQ_LL(bus_frame_split(BUS_RX_FRAMES, 64u << 20, buf, 64, &f, &need), BUS_SPLIT_BAD);
}

static void test_proof_binding(void) {
    bus_transcript tr, other;
    test_transcript(&tr);
    uint8_t pa[BUS_PROOF_LEN], pd[BUS_PROOF_LEN];
    CHECK_EQ_LL(bus_proof(KEY(SECRET), &tr, BUS_ACCEPTOR, pa), 0);
    CHECK_EQ_LL(bus_proof(KEY(SECRET), &tr, BUS_DIALLER, pd), 0);
    CHECK(memcmp(pa, pd, BUS_PROOF_LEN) != 0);
    CHECK(bus_proof_ok(KEY(SECRET), &tr, BUS_ACCEPTOR, pa));
    CHECK(bus_proof_ok(KEY(SECRET), &tr, BUS_DIALLER, pd));
    CHECK(!bus_proof_ok(KEY(SECRET), &tr, BUS_DIALLER, pa));  /* a reflection */
    CHECK(!bus_proof_ok(KEY(OTHER_SECRET), &tr, BUS_ACCEPTOR, pa));
    /* every field of the transcript is bound */
    for (int field = 0; field < 5; field++) {
        other = tr;
        switch (field) {
        case 0: other.hash ^= 1; break;
        case 1: other.dialler_id = 3; break;
        case 2: other.acceptor_id = 3; break;
        case 3: other.dialler_nonce[BUS_NONCE_LEN - 1] ^= 1; break;
        default: other.acceptor_nonce[0] ^= 1; break;
        }
        CHECK(!bus_proof_ok(KEY(SECRET), &other, BUS_ACCEPTOR, pa));
    }
    uint8_t a[BUS_NONCE_LEN], b[BUS_NONCE_LEN];
    CHECK_EQ_LL(bus_random(a, sizeof a), 0);
    CHECK_EQ_LL(bus_random(b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

static void test_mac_codec(void) {
    bus_transcript tr;
    test_transcript(&tr);
    bus_mac tx, rx, wrong_key, wrong_dir;
    CHECK_EQ_LL(bus_mac_init(&tx, KEY(SECRET), &tr, BUS_DIALLER), 0);
    CHECK_EQ_LL(bus_mac_init(&rx, KEY(SECRET), &tr, BUS_DIALLER), 0);
    CHECK_EQ_LL(bus_mac_init(&wrong_key, KEY(OTHER_SECRET), &tr, BUS_DIALLER), 0);
    CHECK_EQ_LL(bus_mac_init(&wrong_dir, KEY(SECRET), &tr, BUS_ACCEPTOR), 0);
    size_t l0, l1, l2;
    uint8_t *f0 = mac_frame(&tx, MSG_TYPE, "zero", 4, &l0);
    uint8_t *f1 = mac_frame(&tx, MSG_TYPE, "one", 3, &l1);
    uint8_t *f2 = mac_frame(&tx, MSG_TYPE, "", 0, &l2);
    CHECK(!bus_mac_verify(&wrong_key, f0, l0 - BUS_MAC_LEN, f0 + l0 - BUS_MAC_LEN));
    CHECK(!bus_mac_verify(&wrong_dir, f0, l0 - BUS_MAC_LEN, f0 + l0 - BUS_MAC_LEN));
    CHECK(!bus_mac_verify(&rx, f1, l1 - BUS_MAC_LEN, f1 + l1 - BUS_MAC_LEN)); /* reordered */
    CHECK(rx.seq == 0); /* a failure does not advance */
    f0[6] ^= 4;                                                                /* tampered */
    CHECK(!bus_mac_verify(&rx, f0, l0 - BUS_MAC_LEN, f0 + l0 - BUS_MAC_LEN));
    f0[6] ^= 4;
    CHECK(bus_mac_verify(&rx, f0, l0 - BUS_MAC_LEN, f0 + l0 - BUS_MAC_LEN));
    CHECK(!bus_mac_verify(&rx, f0, l0 - BUS_MAC_LEN, f0 + l0 - BUS_MAC_LEN)); /* replayed */
    CHECK(bus_mac_verify(&rx, f1, l1 - BUS_MAC_LEN, f1 + l1 - BUS_MAC_LEN));
    CHECK(bus_mac_verify(&rx, f2, l2 - BUS_MAC_LEN, f2 + l2 - BUS_MAC_LEN));
    CHECK(rx.seq == 3 && tx.seq == 3);
    bus_mac unset = {0};
    uint8_t mac[BUS_MAC_LEN];
    CHECK_EQ_LL(bus_mac_sign(&unset, f0, 4, mac), -1);
    CHECK(!bus_mac_verify(&unset, f0, 4, mac));
    free(f0);
    free(f1);
    free(f2);
    bus_mac_free(&tx);
    bus_mac_free(&rx);
    bus_mac_free(&wrong_key);
    bus_mac_free(&wrong_dir);
    bus_mac_free(&unset);
}

int main(void) {
    /* The refusals and drops the tests provoke log warnings by design;
     * PIER_TEST_LOG=1 shows them (at the verbose level). */
    log_set_level(getenv("PIER_TEST_LOG") ? LOG_VERBOSE : LOG_SILENT);
    RUN(test_hello_codec);
    RUN(test_frame_split);
    RUN(test_proof_binding);
    RUN(test_mac_codec);
    RUN(test_links_and_sizes);
    RUN(test_gathering);
    RUN(test_wrong_hash_buses);
    RUN(test_wrong_secret_buses);
    RUN(test_refusals);
    RUN(test_proofs);
    RUN(test_destroy_and_recreate);
    RUN(test_raw_frames);
    RUN(test_frame_macs);
    RUN(test_second_link_needs_proof);
    RUN(test_idle_timeout);
    RUN(test_output_limit);
    RUN(test_dialler_checks_reply);
    return check_summary("bus");
}
