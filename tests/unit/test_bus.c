/* test_bus.c - the cluster bus (src/cluster/bus.c) over real loopback
 * sockets: links between every pair, messages of 0 B to 5 MB intact and in
 * order both ways, send gathering, refusals (wrong hash, wrong id, bad
 * magic, garbage), a bus destroyed and recreated, oversize and empty
 * frames, a replaced link, the idle timeout and the output limit.
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
#include "lib/clock.h"
#include "lib/log.h"
#include "net/event_loop.h"
#include "net/socket.h"

#define HASH 0x5049455242555331ull
#define MSG_TYPE 7
#define MAX_NODES 3
#define RAW_PORT_OFFSET 9 /* a raw peer's configured port: never dialled */
#define STEP_TIMEOUT_MS 3000

typedef struct tctx tctx;

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
    node nodes[MAX_NODES];
    int raw_id;               /* a configured peer played by a raw socket; 0 none */
    long gather_us, idle_ms;
    size_t max_frame, max_outbuf;
    const size_t *sizes;      /* what each sender sends, in order (NULL: anything) */
    int nsizes;
    int echo_idx;             /* this node sends every message back (-1 none) */
    int raw[3];               /* raw sockets, -1 when closed */
    uint8_t rawbuf[64];
    size_t rawlen;
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
    for (int i = 0; i < 3; i++)
        if (t->raw[i] >= 0) close(t->raw[i]);
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

static void raw_hello(int fd, int id, uint64_t hash) {
    uint8_t h[BUS_HELLO_FRAME];
    raw_write(fd, h, bus_hello_encode(h, id, hash));
}

static void raw_frame_header(int fd, uint32_t len, uint8_t type) {
    uint8_t h[BUS_FRAME_HEADER] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                                   (uint8_t)(len >> 24), type};
    raw_write(fd, h, sizeof h);
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

/* 1 once a whole hello arrived; it must be from id with our hash. */
static int raw_got_hello(tctx *t, int fd, int id) {
    ssize_t n = recv(fd, t->rawbuf + t->rawlen, BUS_HELLO_FRAME - t->rawlen, MSG_DONTWAIT);
    if (n > 0) t->rawlen += (size_t)n;
    if (t->rawlen < BUS_HELLO_FRAME) return 0;
    uint8_t want[BUS_HELLO_FRAME];
    bus_hello_encode(want, id, HASH);
    CHECK(memcmp(t->rawbuf, want, BUS_HELLO_FRAME) == 0);
    CHECK_MEM(t->rawbuf + BUS_FRAME_HEADER, 8, "PIERBUS1");
    t->rawlen = 0;
    return 1;
}

static void raw_close(tctx *t, int i) {
    close(t->raw[i]);
    t->raw[i] = -1;
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

/* ---- refusals from a raw peer: bus node 5, raw peer 4 ---- */

static void raw_bad_opening(int fd, int which) {
    uint8_t h[BUS_HELLO_FRAME];
    switch (which) {
    case 0: raw_hello(fd, 4, HASH ^ 0x100); break; /* another membership */
    case 1: raw_hello(fd, 6, HASH); break;         /* higher id: it should be dialled */
    case 2: raw_hello(fd, 2, HASH); break;         /* not a member */
    case 3:                                        /* bad magic */
        bus_hello_encode(h, 4, HASH);
        h[BUS_FRAME_HEADER] = 'X';
        raw_write(fd, h, sizeof h);
        break;
    case 4: /* version 2 */
        bus_hello_encode(h, 4, HASH);
        h[BUS_FRAME_HEADER + 8] = 2;
        raw_write(fd, h, sizeof h);
        break;
    case 5: raw_write(fd, "GET / HTTP/1.1\r\n\r\n", 18); break;
    default: /* a huge first frame: refused on its header, nothing reserved */
        raw_frame_header(fd, 0x7fffffff, BUS_HELLO_TYPE);
        break;
    }
}
#define NBAD_OPENINGS 7

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
    raw_bad_opening(t->raw[0], t->counter);
    return 1;
}

static int wait_raw_refused(tctx *t) {
    if (!raw_closed(t->raw[0])) return 0;
    raw_close(t, 0);
    t->counter++;
    return 1;
}

static void test_refusals(void) {
    tctx t;
    tctx_init(&t, 1);
    t.ids[0] = 5;
    t.raw_id = 4;
    static const step steps[] = {
        STEP(start_all),        STEP(check_unknown_peer), STEP(raw_open_bad),
        STEP(wait_raw_refused), STEP(raw_open_bad),       STEP(wait_raw_refused),
        STEP(raw_open_bad),     STEP(wait_raw_refused),   STEP(raw_open_bad),
        STEP(wait_raw_refused), STEP(raw_open_bad),       STEP(wait_raw_refused),
        STEP(raw_open_bad),     STEP(wait_raw_refused),   STEP(raw_open_bad),
        STEP(wait_raw_refused), STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.counter, NBAD_OPENINGS);
    CHECK_EQ_LL(t.nodes[0].ups[4], 0);
    CHECK_EQ_LL(t.stats[0].connects, 0);
    CHECK_EQ_LL(t.nodes[0].nevents, 0);
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

static int raw_open_good(tctx *t) {
    int i = t->raw[0] < 0 ? 0 : 1;
    t->raw[i] = raw_connect(t, 0);
    raw_hello(t->raw[i], 4, HASH);
    t->counter = i;
    return 1;
}

static int wait_raw_up(tctx *t) {
    int i = t->counter;
    if (t->raw[i] < 0 || !raw_got_hello(t, t->raw[i], 5)) return 0;
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
    raw_frame_header(t->raw[0], SMALL_MAX + 1, MSG_TYPE);
    raw_write(t->raw[0], p, SMALL_MAX / 2);
    free(p);
    return 1;
}

static int raw_send_max_second_half(tctx *t) {
    if (!waited_ms(t, 20)) return 0;
    CHECK_EQ_LL(t->nodes[0].nrecv[4], 0);
    uint8_t *p = make_payload(SMALL_MAX, 0);
    raw_write(t->raw[0], p + SMALL_MAX / 2, SMALL_MAX - SMALL_MAX / 2);
    free(p);
    return 1;
}

static int wait_max_received(tctx *t) { return t->nodes[0].nrecv[4] == 1; }

static int raw_send_oversize(tctx *t) {
    raw_frame_header(t->raw[0], SMALL_MAX + 2, MSG_TYPE);
    raw_write(t->raw[0], "0123456789", 10);
    return 1;
}

static int wait_raw0_dropped(tctx *t) {
    if (!raw_closed(t->raw[0]) || node_linked(t, 0, 4)) return 0;
    raw_close(t, 0);
    return 1;
}

static int raw_send_empty(tctx *t) {
    uint8_t zero[4] = {0};
    raw_write(t->raw[0], zero, sizeof zero);
    return 1;
}

static int wait_raw0_closed_by_replacement(tctx *t) {
    if (!bus_connected(t->nodes[0].b, 4) || !raw_closed(t->raw[0])) return 0;
    raw_close(t, 0);
    return 1;
}

static void test_raw_frames(void) {
    tctx t;
    tctx_init(&t, 1);
    t.ids[0] = 5;
    t.raw_id = 4;
    t.max_frame = SMALL_MAX;
    t.sizes = (const size_t[]){SMALL_MAX};
    t.nsizes = 1;
    static const step steps[] = {
        STEP(start_all),
        /* the largest frame in two pieces, then one too large */
        STEP(raw_open_good), STEP(wait_raw_up), STEP(send_too_big_locally),
        STEP(raw_send_max_first_half), STEP(raw_send_max_second_half), STEP(wait_max_received),
        STEP(raw_send_oversize), STEP(wait_raw0_dropped),
        /* an empty frame (length 0) */
        STEP(raw_open_good), STEP(wait_raw_up), STEP(raw_send_empty), STEP(wait_raw0_dropped),
        /* a second valid connection from node 4 replaces the first */
        STEP(raw_open_good), STEP(wait_raw_up), STEP(raw_open_good), STEP(wait_raw_up),
        STEP(wait_raw0_closed_by_replacement), STEP(collect_stats)};
    RUN_STEPS(&t, steps);
    CHECK_EQ_LL(t.nodes[0].nrecv[4], 1);
    CHECK(strcmp(t.nodes[0].events, "u4d4u4d4u4d4u4") == 0);
    CHECK_EQ_LL(t.stats[0].connects, 4);
    CHECK_EQ_LL(t.stats[0].disconnects, 3);
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
    tctx_init(&t, 1);
    t.ids[0] = 5;
    t.raw_id = 4;
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
    tctx_init(&t, 1);
    t.ids[0] = 5;
    t.raw_id = 4;
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
    return 1;
}

static int read_dialler_hello(tctx *t) { return raw_got_hello(t, t->raw[0], 1); }

static int reply_wrong_id(tctx *t) {
    raw_hello(t->raw[0], 3, HASH);
    return 1;
}

static int wait_dialler_refused(tctx *t) {
    if (!raw_closed(t->raw[0])) return 0;
    raw_close(t, 0);
    return 1;
}

static int reply_right_id(tctx *t) {
    raw_hello(t->raw[0], 2, HASH);
    return 1;
}

static int wait_dialler_up(tctx *t) { return node_linked(t, 0, 2); }

static int send_to_raw(tctx *t) {
    CHECK_EQ_LL(bus_send(t->nodes[0].b, 2, MSG_TYPE, "ping", 4), 0);
    raw_frame_header(t->raw[0], 1 + 3, MSG_TYPE);
    raw_write(t->raw[0], "pong", 3);
    return 1;
}

static int wait_frame_at_raw(tctx *t) {
    ssize_t n = recv(t->raw[0], t->rawbuf + t->rawlen, 9 - t->rawlen, MSG_DONTWAIT);
    if (n > 0) t->rawlen += (size_t)n;
    if (t->rawlen < 9 || t->nodes[0].nrecv[2] != 1) return 0;
    CHECK(memcmp(t->rawbuf, "\x05\x00\x00\x00\x07ping", 9) == 0); /* len 5, type 7 */
    return 1;
}

static void test_dialler_checks_reply(void) {
    tctx t;
    tctx_init(&t, 1);
    t.ids[0] = 1;
    t.raw_id = 2;
    static const step steps[] = {
        STEP(raw_listen),       STEP(start_all),      STEP(accept_dial),
        STEP(read_dialler_hello), STEP(reply_wrong_id), STEP(wait_dialler_refused),
        STEP(accept_dial),      STEP(read_dialler_hello), STEP(reply_right_id),
        STEP(wait_dialler_up),  STEP(send_to_raw),    STEP(wait_frame_at_raw)};
    RUN_STEPS(&t, steps);
    CHECK(strcmp(t.nodes[0].events, "u2") == 0);
}

int main(void) {
    /* The refusals and drops the tests provoke log warnings by design;
     * PIER_TEST_LOG=1 shows them (at the verbose level). */
    log_set_level(getenv("PIER_TEST_LOG") ? LOG_VERBOSE : LOG_SILENT);
    RUN(test_links_and_sizes);
    RUN(test_gathering);
    RUN(test_wrong_hash_buses);
    RUN(test_refusals);
    RUN(test_destroy_and_recreate);
    RUN(test_raw_frames);
    RUN(test_idle_timeout);
    RUN(test_output_limit);
    RUN(test_dialler_checks_reply);
    return check_summary("bus");
}
