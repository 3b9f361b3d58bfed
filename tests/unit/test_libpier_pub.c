/* libpier publisher and subscriber against an in-process fake batch
 * server (fake_batch_server.h): batching, the buffer pool and its
 * backpressure, exactly-once resend after a dropped connection, server
 * ERROR frames, option checks, and the subscriber's decoding. */
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
static void count_log(void *ctx, const char *line) {
    (void)line;
    ++*(int *)ctx;
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
    for (int i = 0; i < 500 && s.messages < 12000; i++) usleep(2000);
    pthread_mutex_lock(&s.mu);
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

int main(void) {
    RUN(test_huge_alloc);
    RUN(test_quiet_by_default);
    RUN(test_publish_flush_close);
    RUN(test_backpressure_small_pool);
    RUN(test_threads_and_linger);
    RUN(test_exactly_once_after_drops);
    RUN(test_server_error_at_open);
    RUN(test_bad_options);
    RUN(test_message_too_large);
    RUN(test_compressed_batches);
    RUN(test_subscriber_batches);
    RUN(test_subscriber_timeout);
    RUN(test_subscriber_timeout_mid_frame_resumes);
    RUN(test_not_a_batch_port);
    RUN(test_nothing_listening_at_open);
    return check_summary("libpier_pub");
}
