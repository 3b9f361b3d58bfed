/* libpier publisher and subscriber against an in-process fake batch
 * server (fake_batch_server.h): batching, the buffer pool and its
 * backpressure, exactly-once resend after a dropped connection, server
 * ERROR frames, option checks, and the subscriber's decoding. */
#include <stddef.h>
#include <stdlib.h>

#include "check.h"
#include "fake_batch_server.h"
#include "internal.h"

static char node[64];
static const char *nodes[1] = {node};

static void opts_for(pier_publisher_options *o, fake_server *s) {
    pier_publisher_options_init(o);
    snprintf(node, sizeof node, "127.0.0.1:%d", s->port);
    o->topic = "t";
    o->nodes = nodes;
    o->node_count = 1;
    o->batch_bytes = 4096;
    o->linger_us = 0;
    o->reconnect_ms = 3000;
}

static int log_lines;
static void count_log(void *ctx, const char *line) { /* called from any publisher thread */
    (void)line;
    __atomic_fetch_add((int *)ctx, 1, __ATOMIC_RELAXED);
}

/* Publish n messages "msg-<i>" padded to size bytes. */
static int publish_n(pier_publisher *p, int n, size_t size) {
    char buf[1024];
    for (int i = 0; i < n; i++) {
        int l = snprintf(buf, sizeof buf, "msg-%d", i);
        if ((size_t)l < size) memset(buf + l, 'x', size - (size_t)l);
        int rc = pier_publish(p, buf, size > (size_t)l ? size : (size_t)l);
        if (rc) return rc;
    }
    return PIER_OK;
}

static void test_publish_flush_close(void) {
    fake_server s = {0};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    o.log = count_log;
    o.log_ctx = &log_lines;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(publish_n(p, 1000, 100), PIER_OK);
    CHECK_EQ_LL(pier_flush(p), PIER_OK);
    pier_conn_stats st[2];
    int n = 0;
    CHECK_EQ_LL(pier_publisher_stats(p, st, 2, &n), PIER_OK);
    CHECK_EQ_LL(n, 1);
    CHECK_EQ_LL(st[0].messages, 1000);
    CHECK_EQ_LL(st[0].acked_batches, st[0].batches);
    CHECK(st[0].batches >= 1000 * 104 / 4096);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&s);
    CHECK(!s.bad);
    CHECK_EQ_LL(s.messages, 1000);
    CHECK_EQ_LL(s.bytes, 100000);
    CHECK_EQ_LL(s.duplicates, 0);
    CHECK(strcmp(s.topic, "t") == 0);
    CHECK(log_lines <= 1); /* at most the one huge-page line */
}

/* A pool of 2 buffers, 200 batches: publish must wait for ACKs, and ACKs
 * that arrive only every 3rd batch (cumulative) still free them all. */
static void test_backpressure_small_pool(void) {
    fake_server s = {.ack_delay_batches = 1};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    o.buffers = 2;
    o.log = count_log;
    o.log_ctx = &log_lines;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(publish_n(p, 8000, 96), PIER_OK);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&s);
    CHECK(!s.bad);
    CHECK_EQ_LL(s.messages, 8000);
}

typedef struct thread_arg {
    pier_publisher *p;
    int rc;
} thread_arg;

static void *publisher_thread(void *arg) {
    thread_arg *a = arg;
    a->rc = publish_n(a->p, 3000, 50);
    return NULL;
}

/* Four threads, two connections, linger on: every message arrives once. */
static void test_threads_and_linger(void) {
    fake_server s = {0};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    o.conns_per_node = 2;
    o.linger_us = 200;
    o.client_id = 42;
    o.log = count_log;
    o.log_ctx = &log_lines;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    pthread_t t[4];
    thread_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (thread_arg){p, -1};
        pthread_create(&t[i], NULL, publisher_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_LL(a[i].rc, PIER_OK);
    }
    /* linger alone must deliver the tail without a flush */
    pthread_mutex_lock(&s.mu);
    for (int i = 0; i < 500 && s.messages < 12000; i++) {
        pthread_mutex_unlock(&s.mu);
        usleep(2000);
        pthread_mutex_lock(&s.mu);
    }
    CHECK_EQ_LL(s.messages, 12000);
    pthread_mutex_unlock(&s.mu);
    pier_conn_stats st[2];
    int n;
    pier_publisher_stats(p, st, 2, &n);
    CHECK_EQ_LL(n, 2);
    CHECK_EQ_LL(st[0].client_id, 42);
    CHECK_EQ_LL(st[1].client_id, 43); /* one sequence per connection */
    CHECK(st[0].batches > 0 && st[1].batches > 0);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&s);
    CHECK(!s.bad);
    CHECK_EQ_LL(s.duplicates, 0);
}

/* The server drops the connection after appending (not ACKing) batches,
 * three times: the resend from HELLO_OK's sequence delivers everything
 * exactly once. */
/* Open a publisher on the (started) fake s with default options, publish
 * n messages of size bytes, close it, stop s. Returns the log lines. */
static int publish_through(fake_server *s, int n, size_t size) {
    pier_publisher_options o;
    opts_for(&o, s);
    int lines = 0;
    o.log = count_log;
    o.log_ctx = &lines;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(publish_n(p, n, size), PIER_OK);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(s);
    return lines;
}

static void test_exactly_once_after_drops(void) {
    fake_server s = {.drop_after = 5, .drops_left = 3};
    CHECK_EQ_LL(fake_start(&s), 0);
    int lines = publish_through(&s, 5000, 200);
    CHECK(!s.bad);
    CHECK_EQ_LL(s.messages, 5000);
    CHECK_EQ_LL(s.bytes, 5000 * 200);
    CHECK(s.connections >= 4);
    CHECK(lines >= 3); /* "connection lost" */
}

/* Regression: a server that forgot acknowledged batches (restarted
 * without its data) makes the publisher renumber its unacknowledged ones
 * from HELLO_OK's sequence. Those renumbered batches used to count as
 * acknowledged at once (their new sequence was below the old cumulative
 * ACK), so losing the connection again before their real ACK lost them.
 * Connection 1 stores 5 batches and closes with the 5th unacknowledged;
 * connection 2 has forgotten everything and drops its 2nd batch unstored;
 * connection 3 must still receive every message not acknowledged before. */
static void test_forgetful_server_loses_nothing(void) {
    fake_server s = {.drop_after = 5, .drops_left = 1, .forget_on_conn = 2, .lose_on_conn = 2,
                     .lose_after = 2};
    CHECK_EQ_LL(fake_start(&s), 0);
    int lines = publish_through(&s, 3000, 200);
    CHECK(!s.bad);
    CHECK(s.connections >= 3);
    CHECK_EQ_LL(FAKE_SEEN(&s), 3000);
    CHECK(lines >= 2); /* "lost", "forgot" */
}

static void test_server_error_at_open(void) {
    fake_server s = {.error_code = 3};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    pier_publisher *p = (pier_publisher *)&s;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_AUTH);
    CHECK(p == NULL);
    CHECK(strstr(pier_last_error(), "server error 3: scripted failure") != NULL);
    s.error_code = 9;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_SERVER);
    pier_subscriber *sub;
    s.error_code = 10;
    CHECK_EQ_LL(pier_subscriber_open(&sub, "127.0.0.1", s.port, "t", "0", 0, NULL),
                PIER_E_SERVER);
    CHECK(strstr(pier_last_error(), "error 10") != NULL);
    fake_stop(&s);
}

static void test_bad_options(void) {
    pier_publisher_options o;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, NULL), PIER_E_INVALID);
    pier_publisher_options_init(&o);
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_INVALID); /* no topic */
    o.topic = "t";
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_INVALID); /* no nodes */
    const char *bad[] = {"localhost"};
    o.nodes = bad;
    o.node_count = 1;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_INVALID);
    CHECK(strstr(pier_last_error(), "host:port") != NULL);
    o.ack_level = 3;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_INVALID);
    o.ack_level = 1;
    o.batch_bytes = 1;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_INVALID);
    /* nothing listens there: a connect error after the retry window */
    const char *closed[] = {"127.0.0.1:1"};
    pier_publisher_options_init(&o);
    o.topic = "t";
    o.nodes = closed;
    o.node_count = 1;
    o.reconnect_ms = 50;
    o.log = count_log;
    o.log_ctx = &log_lines;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_CONNECT);
    CHECK(strstr(pier_last_error(), "127.0.0.1:1") != NULL);
    CHECK_EQ_LL(pier_publish(NULL, "x", 1), PIER_E_INVALID);
    CHECK_EQ_LL(pier_flush(NULL), PIER_E_INVALID);
    CHECK_EQ_LL(pier_publisher_close(NULL), PIER_E_INVALID);
}

static void test_message_too_large(void) {
    fake_server s = {0};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    o.log = count_log;
    o.log_ctx = &log_lines;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    static char big[4096];
    CHECK_EQ_LL(pier_publish(p, big, 4093), PIER_E_TOO_LARGE);
    CHECK_EQ_LL(pier_publish(p, big, 4092), PIER_OK); /* exactly one batch */
    CHECK_EQ_LL(pier_publish(p, big, 0), PIER_OK);    /* empty messages are messages */
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&s);
    CHECK_EQ_LL(s.messages, 2);
}

/* Compressible batches go out LZ4 (adaptive off: always over threshold). */
static void test_compressed_batches(void) {
    fake_server s = {0};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    o.batch_bytes = 64 * 1024;
    o.compress_min_bytes = 1024;
    o.adaptive = 0;
    o.codec = PIER_CODEC_ZSTD;
    o.log = count_log;
    o.log_ctx = &log_lines;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(publish_n(p, 2000, 300), PIER_OK);
    CHECK_EQ_LL(pier_flush(p), PIER_OK);
    pier_conn_stats st;
    int n;
    pier_publisher_stats(p, &st, 1, &n);
    CHECK(st.ratio < 0.2);
    CHECK(st.compressed_batches == st.batches);
    CHECK(st.compress_ns > 0);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&s);
    CHECK(!s.bad);
    CHECK_EQ_LL(s.messages, 2000);
    CHECK_EQ_LL(s.compressed, s.batches);
}

static void test_subscriber_batches(void) {
    for (int codec = 0; codec <= 2; codec++) {
        fake_server s = {.sub_batches = 2, .sub_codec = codec};
        CHECK_EQ_LL(fake_start(&s), 0);
        pier_subscriber *sub;
        CHECK_EQ_LL(pier_subscriber_open(&sub, "127.0.0.1", s.port, "t", "0", 3, NULL), PIER_OK);
        pier_batch b;
        CHECK_EQ_LL(pier_subscriber_next(sub, &b), PIER_OK);
        CHECK_EQ_LL(b.count, 3);
        CHECK_EQ_LL(b.seq, 1);
        CHECK_MEM(b.msgs[2].data, b.msgs[2].len, "m2");
        CHECK_EQ_LL(b.msgs[2].id_ms, 1000);
        CHECK_EQ_LL(b.msgs[2].id_seq, 2);
        CHECK_EQ_LL(pier_subscriber_next(sub, &b), PIER_OK);
        CHECK_MEM(b.msgs[0].data, b.msgs[0].len, "m3");
        CHECK_EQ_LL(pier_subscriber_next(sub, &b), PIER_E_IO); /* server closed */
        CHECK_EQ_LL(pier_subscriber_next(sub, &b), PIER_E_IO);
        pier_subscriber_close(sub);
        fake_stop(&s);
    }
}

static void test_subscriber_timeout(void) {
    fake_server s = {.sub_batches = 0};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_subscriber *sub;
    /* the fake closes after 0 batches: EOF, not a hang */
    CHECK_EQ_LL(pier_subscriber_open(&sub, "127.0.0.1", s.port, "t", "$", 0, NULL), PIER_OK);
    CHECK_EQ_LL(pier_subscriber_set_timeout(sub, 100), PIER_OK);
    pier_batch b;
    int rc = pier_subscriber_next(sub, &b);
    CHECK(rc == PIER_E_IO || rc == PIER_E_TIMEOUT);
    pier_subscriber_close(sub);
    fake_stop(&s);
    CHECK_EQ_LL(pier_subscriber_open(&sub, NULL, 1, "t", "$", 0, NULL), PIER_E_INVALID);
}

/* Regression (issue 11): a timeout in the middle of a frame used to leave
 * the subscription unusable. Now the next call finishes that frame. */
static void test_subscriber_timeout_mid_frame_resumes(void) {
    fake_server s = {.sub_batches = 2, .sub_split = 1};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_subscriber *sub;
    CHECK_EQ_LL(pier_subscriber_open(&sub, "127.0.0.1", s.port, "t", "0", 0, NULL), PIER_OK);
    CHECK_EQ_LL(pier_subscriber_set_timeout(sub, 50), PIER_OK);
    pier_batch b;
    CHECK_EQ_LL(pier_subscriber_next(sub, &b), PIER_E_TIMEOUT); /* header and part of the payload */
    CHECK_EQ_LL(pier_subscriber_next(sub, &b), PIER_E_TIMEOUT); /* still nothing more */
    fake_open_gate(&s);
    CHECK_EQ_LL(pier_subscriber_set_timeout(sub, 0), PIER_OK);
    CHECK_EQ_LL(pier_subscriber_next(sub, &b), PIER_OK);
    CHECK_EQ_LL(b.count, 3);
    CHECK_MEM(b.msgs[0].data, b.msgs[0].len, "m0");
    CHECK_MEM(b.msgs[2].data, b.msgs[2].len, "m2");
    CHECK_EQ_LL(pier_subscriber_next(sub, &b), PIER_OK);
    CHECK_MEM(b.msgs[0].data, b.msgs[0].len, "m3");
    CHECK_EQ_LL(b.msgs[0].nfields, 1);
    CHECK_MEM(b.msgs[0].fields[0].name, b.msgs[0].fields[0].name_len, "data");
    pier_subscriber_close(sub);
    fake_stop(&s);
}

/* Regression (issue 11): a publisher or subscriber pointed at something
 * that answers but is not a batch port (a RESP port) fails at once,
 * saying so, instead of waiting 10 s for HELLO_OK. The fake keeps the
 * connection open, so only the answer's bytes can end the wait. */
static void test_not_a_batch_port(void) {
    fake_server s = {.answer = "-ERR Protocol error: pier batch protocol handshake on the RESP "
                               "port; connect to the batch port (batch-port)\r\n"};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    o.reconnect_ms = 20000;
    pier_publisher *p;
    uint64_t t0 = pn_now_ns();
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_PROTOCOL);
    CHECK(strstr(pier_last_error(), "is not a pier batch port (it answered in RESP: \"-ERR "
                                    "Protocol error: pier batch") != NULL);
    pier_subscriber *sub;
    CHECK_EQ_LL(pier_subscriber_open(&sub, "127.0.0.1", s.port, "t", "$", 0, NULL),
                PIER_E_PROTOCOL);
    CHECK(strstr(pier_last_error(), "is not a pier batch port") != NULL);
    s.answer = "HTTP/1.1 400 Bad Request\r\n\r\n";
    CHECK_EQ_LL(pier_subscriber_open(&sub, "127.0.0.1", s.port, "t", "$", 0, NULL),
                PIER_E_PROTOCOL);
    CHECK(strstr(pier_last_error(), "(it answered \"HTTP/1.1 400 Bad Request") != NULL);
    CHECK(pn_now_ns() - t0 < 5000000000ull); /* far below the 10 s handshake wait */
    fake_stop(&s);
}

/* Regression (issue 11): nothing listening at open is reported at once
 * (not retried for reconnect_ms), with a hint about the batch port. */
static void test_nothing_listening_at_open(void) {
    fake_server s = {0};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    fake_stop(&s); /* the port is free again: connections are refused */
    o.reconnect_ms = 20000;
    pier_publisher *p;
    uint64_t t0 = pn_now_ns();
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_CONNECT);
    CHECK(pn_now_ns() - t0 < 10000000000ull); /* not the 20 s of reconnect_ms */
    CHECK(strstr(pier_last_error(), "is the batch port on?") != NULL);
}

/* The huge-page fallback is the normal case on most machines: logged only
 * when verbose (issue 11), then once per process. */
static void test_huge_alloc(void) {
    size_t mapped = 0;
    int lines = 0;
    void *m = pier_huge_alloc(3 << 20, &mapped, false, count_log, &lines);
    CHECK(m != NULL);
    CHECK_EQ_LL(mapped, 4 << 20);
    memset(m, 1, mapped);
    pier_huge_free(m, mapped);
    CHECK_EQ_LL(lines, 0);
    void *m2 = pier_huge_alloc(1, &mapped, true, count_log, &lines);
    CHECK_EQ_LL(mapped, 2 << 20);
    pier_huge_free(m2, mapped);
    CHECK(lines <= 1);
    m2 = pier_huge_alloc(1, &mapped, true, count_log, &lines);
    pier_huge_free(m2, mapped);
    CHECK(lines <= 1); /* logged once per process at most */
}

/* A publisher with default options prints nothing when all goes well. */
static void test_quiet_by_default(void) {
    fake_server s = {.ack_level = 1};
    CHECK_EQ_LL(fake_start(&s), 0);
    CHECK_EQ_LL(publish_through(&s, 100, 10), 0);
}


/* ------------------------------------------------------- cluster mode */

static char cnodes[3][64];
static const char *cnode_list[3] = {cnodes[0], cnodes[1], cnodes[2]};

/* Options for a publisher on the fake cluster nodes s[0..n). */
static void cluster_opts(pier_publisher_options *o, fake_server *const *s, int n) {
    pier_publisher_options_init(o);
    for (int i = 0; i < n; i++) snprintf(cnodes[i], sizeof cnodes[i], "127.0.0.1:%d", s[i]->port);
    o->topic = "t";
    o->nodes = cnode_list;
    o->node_count = n;
    o->batch_bytes = 4096;
    o->linger_us = 0;
    o->reconnect_ms = 3000;
    o->log = count_log;
    o->log_ctx = &log_lines;
}

/* Start the fake nodes ss[0..n) as one cluster sharing the store st
 * (cluster_nodes defaults to n) and fill *o for a publisher on them. */
static void cluster_setup(pier_publisher_options *o, fake_store *st, fake_server *const *ss,
                          int n) {
    fake_store_init(st);
    for (int i = 0; i < n; i++) {
        ss[i]->store = st;
        if (!ss[i]->cluster_nodes) ss[i]->cluster_nodes = n;
        CHECK_EQ_LL(fake_start(ss[i]), 0);
    }
    cluster_opts(o, ss, n);
}

typedef struct ack_tally {
    pthread_mutex_t mu;
    uint64_t messages, frames, dup_frames, single_frames, skipped_messages;
} ack_tally;

static void tally_ack(void *ctx, uint64_t seq, uint32_t messages, unsigned flags) {
    ack_tally *t = ctx;
    (void)seq;
    pthread_mutex_lock(&t->mu);
    t->messages += messages;
    t->frames++;
    t->dup_frames += (flags & PIER_ACK_DUPLICATE) != 0;
    t->single_frames += (flags & PIER_ACK_SINGLE) != 0;
    if (flags & PIER_ACK_SKIPPED) t->skipped_messages += messages;
    pthread_mutex_unlock(&t->mu);
}

/* Sum of one counter over a publisher's connections. */
static uint64_t sum_stat(pier_publisher *p, size_t offset) {
    pier_conn_stats st[16];
    int n = 0;
    pier_publisher_stats(p, st, 16, &n);
    uint64_t sum = 0;
    for (int i = 0; i < n && i < 16; i++) sum += *(const uint64_t *)((const char *)&st[i] + offset);
    return sum;
}
#define SUM_STAT(p, field) sum_stat(p, offsetof(pier_conn_stats, field))

/* The handshake asks for the options' order level and replication factor
 * and says STRIPED; HELLO_OK's CLUSTER flag makes all connections one
 * publisher (one client id); per-batch ACKs release every batch. */
static void test_cluster_handshake_one_publisher(void) {
    fake_store st;
    fake_server s = {.cluster_nodes = 3};
    fake_server *ss[] = {&s};
    pier_publisher_options o;
    cluster_setup(&o, &st, ss, 1);
    o.conns_per_node = 3;
    o.order_level = 2;
    o.replication = 2;
    ack_tally t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    o.on_ack = tally_ack;
    o.on_ack_ctx = &t;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(pier_publisher_cluster_nodes(p), 3);
    CHECK_EQ_LL(publish_n(p, 3000, 100), PIER_OK);
    CHECK_EQ_LL(pier_flush(p), PIER_OK);
    CHECK_EQ_LL(SUM_STAT(p, acked_batches), SUM_STAT(p, batches));
    CHECK_EQ_LL(SUM_STAT(p, outstanding_bytes), 0);
    pier_conn_stats ns[2];
    int nn = 0;
    CHECK_EQ_LL(pier_publisher_node_stats(p, ns, 2, &nn), PIER_OK);
    CHECK_EQ_LL(nn, 1);
    CHECK_EQ_LL(ns[0].connected, 3);
    CHECK_EQ_LL(ns[0].messages, 3000);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&s);
    CHECK(!s.bad);
    CHECK_EQ_LL(s.hs_order, 2);
    CHECK_EQ_LL(s.hs_replication, 2);
    CHECK_EQ_LL(s.hs_flags, PB_HS_STRIPED);
    CHECK_EQ_LL(s.hs_nids, 1); /* three connections, one client id */
    CHECK_EQ_LL(st.messages, 3000);
    CHECK_EQ_LL(st.duplicates, 0);
    CHECK_EQ_LL(t.messages, 3000);
    CHECK_EQ_LL(t.single_frames, t.frames);
}

/* A single node ignores STRIPED: every connection keeps its own id. */
static void test_single_node_ignores_striped(void) {
    fake_server s = {0};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    o.conns_per_node = 2;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(pier_publisher_cluster_nodes(p), 0);
    CHECK_EQ_LL(publish_n(p, 500, 100), PIER_OK);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&s);
    CHECK(!s.bad);
    CHECK_EQ_LL(s.hs_flags, PB_HS_STRIPED);
    CHECK_EQ_LL(s.hs_nids, 2);
    CHECK_EQ_LL(s.messages, 500);
}

/* Node A never ACKs (until released): a batch goes to the connection with
 * the fewest unacknowledged bytes, so A gets a batch only while its held
 * bytes do not exceed B's. With a pool of 8 equal batches A can hold at
 * most 4 when it is chosen, so it receives at most 5. */
static void test_cluster_stripes_by_outstanding_bytes(void) {
    fake_store st;
    fake_server a = {.cluster_nodes = 2, .hold_acks = 1};
    fake_server b = {.cluster_nodes = 2};
    fake_server *ss[] = {&a, &b};
    pier_publisher_options o;
    cluster_setup(&o, &st, ss, 2);
    o.buffers = 8;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(publish_n(p, 200 * 40, 96), PIER_OK); /* 40 messages of 100 bytes a batch */
    pier_conn_stats ns[2];
    int nn = 0;
    for (int i = 0; i < 2000; i++) { /* until every batch but A's is acknowledged */
        pier_publisher_node_stats(p, ns, 2, &nn);
        if (ns[1].acked_batches == ns[1].batches && ns[0].batches + ns[1].batches >= 200) break;
        usleep(1000);
    }
    CHECK_EQ_LL(nn, 2);
    CHECK(ns[0].batches >= 1 && ns[0].batches <= 5);
    CHECK(ns[0].outstanding_bytes >= ns[0].batches * 4000);
    CHECK_EQ_LL(ns[0].acked_batches, 0);
    fake_release_acks(&a);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&a);
    fake_stop(&b);
    CHECK(!a.bad && !b.bad);
    CHECK_EQ_LL(st.messages, 8000);
    CHECK_EQ_LL(st.duplicates, 0);
}

/* Node A stores a batch and then closes without its ACK: the batches
 * that connection had unacknowledged go to node B at once, with their
 * sequence; B recognises what A stored (DUPLICATE) and stores the rest:
 * every message exactly once, and A is reconnected in the background. */
static void test_cluster_resend_after_connection_dies(void) {
    fake_store st;
    fake_server a = {.cluster_nodes = 2, .drop_after = 4, .drops_left = 2};
    fake_server b = {.cluster_nodes = 2};
    fake_server *ss[] = {&a, &b};
    pier_publisher_options o;
    cluster_setup(&o, &st, ss, 2);
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(publish_n(p, 6000, 100), PIER_OK);
    CHECK_EQ_LL(pier_flush(p), PIER_OK);
    CHECK(SUM_STAT(p, resent_batches) >= 2);
    CHECK(SUM_STAT(p, duplicate_acks) >= 2); /* the batch A stored, at least, each time */
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&a);
    fake_stop(&b);
    CHECK(!a.bad && !b.bad);
    CHECK_EQ_LL(st.messages, 6000);
    CHECK(st.duplicates >= 2);
    CHECK(a.connections >= 2); /* reconnected */
}

/* A node dies for good (its port refuses connections): publishing goes
 * on over the other node, nothing is lost, close succeeds. */
static void test_cluster_node_killed(void) {
    fake_store st;
    fake_server a = {.cluster_nodes = 2};
    fake_server b = {.cluster_nodes = 2};
    fake_server *ss[] = {&a, &b};
    pier_publisher_options o;
    cluster_setup(&o, &st, ss, 2);
    o.conns_per_node = 2;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(publish_n(p, 2000, 100), PIER_OK);
    fake_kill(&a);
    CHECK_EQ_LL(publish_n(p, 4000, 100), PIER_OK);
    CHECK_EQ_LL(pier_flush(p), PIER_OK);
    pier_conn_stats ns[2];
    int nn;
    pier_publisher_node_stats(p, ns, 2, &nn);
    CHECK_EQ_LL(ns[0].connected, 0);
    CHECK_EQ_LL(ns[1].connected, 2);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&a);
    fake_stop(&b);
    CHECK(!a.bad && !b.bad);
    CHECK_EQ_LL(st.messages, 6000);
}

/* Every node gone: the batches wait reconnect_ms, then the publisher
 * fails saying why. */
static void test_cluster_no_node_left_fails(void) {
    fake_store st;
    fake_server a = {.cluster_nodes = 1};
    fake_server *ss[] = {&a};
    pier_publisher_options o;
    cluster_setup(&o, &st, ss, 1);
    o.reconnect_ms = 200;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    CHECK_EQ_LL(publish_n(p, 100, 100), PIER_OK);
    CHECK_EQ_LL(pier_flush(p), PIER_OK);
    fake_kill(&a);
    int rc = publish_n(p, 1000, 100);
    if (rc == PIER_OK) rc = pier_flush(p);
    CHECK_EQ_LL(rc, PIER_E_CLOSED);
    CHECK(strstr(pier_last_error(), "no node reachable") != NULL);
    CHECK(pier_publisher_close(p) != PIER_OK);
    fake_stop(&a);
}

/* Start *a (its script set) as a 1-node fake cluster with store st, open
 * a publisher of conns connections on it whose ACKs go to t (and log
 * lines to *lines when not NULL), publish n messages of 100 bytes and
 * flush. Returns the publisher (NULL after a failed check). */
static pier_publisher *one_node_run(fake_server *a, fake_store *st, int conns, ack_tally *t,
                                    int *lines, int n) {
    fake_server *ss[] = {a};
    pier_publisher_options o;
    cluster_setup(&o, st, ss, 1);
    o.conns_per_node = conns;
    if (lines) o.log_ctx = lines;
    *t = (ack_tally){.mu = PTHREAD_MUTEX_INITIALIZER};
    o.on_ack = tally_ack;
    o.on_ack_ctx = t;
    pier_publisher *p = NULL;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_OK);
    if (!p) return NULL;
    CHECK_EQ_LL(publish_n(p, n, 100), PIER_OK);
    CHECK_EQ_LL(pier_flush(p), PIER_OK);
    return p;
}

/* DUPLICATE ACKs release their batch like any ACK, and a second ACK of a
 * batch (a late duplicate) counts nothing twice. */
static void test_cluster_duplicate_acks(void) {
    fake_store st;
    fake_server a = {.dup_ack_every = 3, .double_ack = 1};
    ack_tally t;
    pier_publisher *p = one_node_run(&a, &st, 2, &t, NULL, 3000);
    if (!p) return;
    uint64_t batches = SUM_STAT(p, batches);
    CHECK_EQ_LL(SUM_STAT(p, acked_batches), batches);
    /* every second ACK, and every third first one of each connection */
    CHECK(SUM_STAT(p, duplicate_acks) > batches);
    CHECK(SUM_STAT(p, duplicate_acks) <= batches + batches / 3);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&a);
    CHECK(!a.bad);
    CHECK_EQ_LL(t.messages, 3000); /* the second ACKs acknowledged nothing new */
    CHECK_EQ_LL(t.frames, 2 * batches);
    CHECK(t.dup_frames > batches);
    CHECK_EQ_LL(st.messages, 3000);
}

/* A batch the cluster skipped (SKIPPED) is released, counted, logged and
 * reported to on_ack: not waited for, not taken for stored. */
static void test_cluster_skipped_batches(void) {
    fake_store st;
    fake_server a = {.skip_every = 5};
    ack_tally t;
    int lines = 0;
    pier_publisher *p = one_node_run(&a, &st, 1, &t, &lines, 2000);
    if (!p) return;
    uint64_t skipped = SUM_STAT(p, skipped_batches);
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&a);
    CHECK(!a.bad);
    CHECK(skipped >= 1);
    CHECK_EQ_LL(skipped, a.skipped);
    CHECK(lines >= (int)skipped); /* each one logged */
    CHECK_EQ_LL(t.messages, 2000);
    CHECK(t.skipped_messages >= skipped);
    CHECK_EQ_LL(st.messages + t.skipped_messages, 2000);
}

/* ACKs of one connection may be per batch (SINGLE) or cumulative (every
 * batch sent on it up to that one), mixed. */
static void test_cluster_mixed_single_and_cumulative_acks(void) {
    fake_store st;
    fake_server a = {.cumulative_every = 3};
    ack_tally t;
    pier_publisher *p = one_node_run(&a, &st, 2, &t, NULL, 4000);
    if (!p) return;
    CHECK_EQ_LL(SUM_STAT(p, acked_batches), SUM_STAT(p, batches));
    CHECK_EQ_LL(pier_publisher_close(p), PIER_OK);
    fake_stop(&a);
    CHECK(!a.bad);
    CHECK_EQ_LL(t.messages, 4000);
    CHECK(t.single_frames < t.frames); /* some were cumulative */
    CHECK_EQ_LL(st.messages, 4000);
}

/* A refusal at the handshake (ERROR 8: levels the server cannot honour)
 * fails the open with the server's text. */
static void test_refusal_surfaces_its_text(void) {
    fake_server s = {.error_code = 8,
                     .error_text = "ack level 2 needs cluster mode (this node is a single node)"};
    CHECK_EQ_LL(fake_start(&s), 0);
    pier_publisher_options o;
    opts_for(&o, &s);
    o.ack_level = 2;
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_SERVER);
    CHECK(strstr(pier_last_error(),
                 "server error 8: ack level 2 needs cluster mode (this node is a single node)") !=
          NULL);
    fake_stop(&s);
    o.order_level = 3;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_INVALID);
    o.order_level = 1;
    o.replication = 256;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_INVALID);
}

/* Nodes of a cluster and single nodes in one publisher: refused. */
static void test_cluster_and_single_nodes_refused(void) {
    fake_store st;
    fake_server a = {.cluster_nodes = 3};
    fake_server b = {0}; /* a single node */
    fake_server *ss[] = {&a, &b};
    pier_publisher_options o;
    cluster_setup(&o, &st, ss, 1);
    CHECK_EQ_LL(fake_start(&b), 0);
    cluster_opts(&o, ss, 2);
    pier_publisher *p;
    CHECK_EQ_LL(pier_publisher_open(&p, &o), PIER_E_INVALID);
    CHECK(strstr(pier_last_error(), "cluster mode") != NULL);
    fake_stop(&a);
    fake_stop(&b);
}

int main(void) {
    RUN(test_huge_alloc);
    RUN(test_quiet_by_default);
    RUN(test_publish_flush_close);
    RUN(test_backpressure_small_pool);
    RUN(test_threads_and_linger);
    RUN(test_exactly_once_after_drops);
    RUN(test_forgetful_server_loses_nothing);
    RUN(test_server_error_at_open);
    RUN(test_bad_options);
    RUN(test_message_too_large);
    RUN(test_compressed_batches);
    RUN(test_subscriber_batches);
    RUN(test_subscriber_timeout);
    RUN(test_subscriber_timeout_mid_frame_resumes);
    RUN(test_not_a_batch_port);
    RUN(test_nothing_listening_at_open);
    RUN(test_cluster_handshake_one_publisher);
    RUN(test_single_node_ignores_striped);
    RUN(test_cluster_stripes_by_outstanding_bytes);
    RUN(test_cluster_resend_after_connection_dies);
    RUN(test_cluster_node_killed);
    RUN(test_cluster_no_node_left_fails);
    RUN(test_cluster_duplicate_acks);
    RUN(test_cluster_mixed_single_and_cumulative_acks);
    RUN(test_cluster_skipped_batches);
    RUN(test_refusal_surfaces_its_text);
    RUN(test_cluster_and_single_nodes_refused);
    return check_summary("libpier_pub");
}
