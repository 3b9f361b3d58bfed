/* libpier_e2e - libpier against a real pier-server, for test_libpier.py.
 *
 *   test-libpier-e2e <host> <resp-port> <batch-port> <topic> <messages> <codec> [password]
 *
 * 1. KV over RESP: SET (with TTL), GET, INCR, DEL, a missing key.
 * 2. A subscriber from "$" opened before publishing.
 * 3. A publisher (2 connections, 64 KB batches, ack level 1, the codec
 *    given, compression forced over 1 KB) publishes <messages> messages
 *    "<index>:<filler>" of varying size and closes (every batch ACKed).
 * 4. The subscriber must see every index exactly once with the right
 *    bytes and increasing IDs (the order across the two connections is
 *    free, so only the set of indexes is checked).
 * 5. A second subscriber from "0" must count the same number.
 * With E2E_SLOW=1 in the environment only step 3 runs, paced (1 ms pause
 * every 50 messages), for a test that restarts the server meanwhile.
 * Prints "ok <messages>" and exits 0; otherwise the failure and exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pier.h"

#define FAIL(...)                                                                  \
    do {                                                                           \
        fprintf(stderr, "e2e: " __VA_ARGS__);                                      \
        fprintf(stderr, " (last error: %s)\n", pier_last_error());                 \
        exit(1);                                                                   \
    } while (0)

static const char *host, *password;

static size_t make_message(char *buf, long i) {
    int n = snprintf(buf, 64, "%ld:", i);
    size_t len = (size_t)n + (size_t)(i * 37 % 3000);
    for (size_t k = (size_t)n; k < len; k++) buf[k] = (char)('a' + (i + (long)k) % 26);
    return len;
}

static void check_kv(int port) {
    pier_kv *kv;
    int rc = pier_kv_connect(&kv, host, port, password);
    if (rc) FAIL("kv connect: %s", pier_strerror(rc));
    if ((rc = pier_kv_set(kv, "e2e:k", "v1", 2, 60000))) FAIL("set: %s", pier_strerror(rc));
    char *v;
    size_t len;
    if ((rc = pier_kv_get(kv, "e2e:k", &v, &len)) || len != 2 || memcmp(v, "v1", 2))
        FAIL("get: %s", pier_strerror(rc));
    free(v);
    long long n = 0;
    pier_kv_del(kv, "e2e:n", NULL); /* reruns against the same server */
    pier_kv_del(kv, "e2e:missing-type", NULL);
    if ((rc = pier_kv_incr(kv, "e2e:n", &n)) || n != 1) FAIL("incr: %s %lld", pier_strerror(rc), n);
    if ((rc = pier_kv_del(kv, "e2e:k", &n)) || n != 1) FAIL("del: %s", pier_strerror(rc));
    if (pier_kv_get(kv, "e2e:k", &v, &len) != PIER_E_NOT_FOUND) FAIL("deleted key found");
    if (pier_kv_incr(kv, "e2e:missing-type", NULL) != PIER_OK) FAIL("incr new key");
    pier_kv_set(kv, "e2e:s", "abc", 3, 0);
    if (pier_kv_incr(kv, "e2e:s", NULL) != PIER_E_SERVER) FAIL("INCR of a string must fail");
    pier_kv_close(kv);
}

static int slow;

static void pause_now_and_then(long i) {
    if (slow && i % 50 == 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void publish_all(const char *node, const char *topic, long count, int codec) {
    pier_publisher_options o;
    pier_publisher_options_init(&o);
    const char *nodes[] = {node};
    o.topic = topic;
    o.nodes = nodes;
    o.node_count = 1;
    o.conns_per_node = 2;
    o.batch_bytes = 64 * 1024;
    o.codec = (enum pier_codec)codec;
    o.compress_min_bytes = 1024;
    o.adaptive = 0;
    o.password = password;
    pier_publisher *p;
    int rc = pier_publisher_open(&p, &o);
    if (rc) FAIL("publisher open: %s", pier_strerror(rc));
    static char buf[4096];
    o.reconnect_ms = 20000; /* outlast a server restart */
    for (long i = 0; i < count; i++) {
        pause_now_and_then(i);
        if ((rc = pier_publish(p, buf, make_message(buf, i)))) FAIL("publish %ld", i);
    }
    pier_conn_stats st[2];
    int n;
    if ((rc = pier_flush(p))) FAIL("flush: %s", pier_strerror(rc));
    pier_publisher_stats(p, st, 2, &n);
    for (int i = 0; i < n; i++)
        if (st[i].acked_batches == 0 || st[i].acked_batches > st[i].batches)
            FAIL("connection %d: %llu of %llu batches acknowledged", i,
                 (unsigned long long)st[i].acked_batches, (unsigned long long)st[i].batches);
    if ((rc = pier_publisher_close(p))) FAIL("close: %s", pier_strerror(rc));
}

/* Read until count messages arrived; every index once, bytes intact. */
static void consume(pier_subscriber *s, long count) {
    char *seen = calloc((size_t)count, 1), expect[4096];
    uint64_t last_ms = 0, last_seq = 0;
    long got = 0;
    while (got < count) {
        pier_batch b;
        int rc = pier_subscriber_next(s, &b);
        if (rc) FAIL("subscriber after %ld messages: %s", got, pier_strerror(rc));
        for (size_t k = 0; k < b.count; k++) {
            const pier_msg *m = &b.msgs[k];
            if (m->id_ms < last_ms || (m->id_ms == last_ms && m->id_seq <= last_seq))
                FAIL("IDs not increasing");
            last_ms = m->id_ms;
            last_seq = m->id_seq;
            long i = strtol(m->data, NULL, 10);
            if (m->kind != PIER_KIND_DATA || i < 0 || i >= count || seen[i]) FAIL("message %ld", i);
            size_t len = make_message(expect, i);
            if (len != m->len || memcmp(expect, m->data, len)) FAIL("bytes of message %ld", i);
            seen[i] = 1;
            got++;
        }
    }
    free(seen);
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s host resp-port batch-port topic messages codec [password]\n",
                argv[0]);
        return 2;
    }
    host = argv[1];
    password = argc > 7 ? argv[7] : NULL;
    long count = atol(argv[5]);
    char node[300];
    snprintf(node, sizeof node, "%s:%s", host, argv[3]);
    slow = getenv("E2E_SLOW") != NULL;
    if (slow) {
        publish_all(node, argv[4], count, atoi(argv[6]));
        printf("ok %ld\n", count);
        return 0;
    }
    check_kv(atoi(argv[2]));
    pier_subscriber *live, *replay;
    int rc = pier_subscriber_open(&live, host, atoi(argv[3]), argv[4], "$", 3, password);
    if (rc) FAIL("subscribe $: %s", pier_strerror(rc));
    pier_subscriber_set_timeout(live, 20000);
    publish_all(node, argv[4], count, atoi(argv[6]));
    consume(live, count);
    pier_subscriber_close(live);
    rc = pier_subscriber_open(&replay, host, atoi(argv[3]), argv[4], "0", 0, password);
    if (rc) FAIL("subscribe 0: %s", pier_strerror(rc));
    pier_subscriber_set_timeout(replay, 20000);
    consume(replay, count);
    pier_subscriber_close(replay);
    printf("ok %ld\n", count);
    return 0;
}
