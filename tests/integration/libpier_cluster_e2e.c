/* libpier_cluster_e2e - the libpier cluster client (pier_cluster_*) against
 * a real 3-node pier cluster, for test_libpier_cluster.py.
 *
 *   test-libpier-cluster-e2e basic <nodes> <home> [password]
 *     strong SET/GET/INCR/DEL (values, a missing key, a command error),
 *     every write counted once as fast or slow and some fast; weak
 *     SET/GET read-your-writes on the home node, and the weak writes reach
 *     the strong state. Prints "ok fast=F slow=S" and exits 0.
 *
 *   test-libpier-cluster-e2e incr <nodes> <home> <key> <seconds>
 *     INCR key in a loop for <seconds> (the test kills the leader
 *     meanwhile), printing "progress N" every 20 calls. Checks that the
 *     values of successful calls strictly increase, then reads the counter
 *     with a strong GET and prints
 *     "done ok=N err=E final=V maxms=M fast=F slow=S retries=R failovers=X".
 *
 * Any failed check prints the reason to stderr and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pier.h"

#define FAIL(...)                                                                  \
    do {                                                                           \
        fprintf(stderr, "cluster-e2e: " __VA_ARGS__);                              \
        fprintf(stderr, " (last error: %s)\n", pier_last_error());                 \
        exit(1);                                                                   \
    } while (0)

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A strong or weak GET must give exactly want. */
static void expect_value(pier_cluster *c, int weak, const char *key, const char *want) {
    char *v = NULL;
    size_t len = 0;
    int rc = weak ? pier_cluster_weak_get(c, key, &v, &len) : pier_cluster_get(c, key, &v, &len);
    if (rc || len != strlen(want) || memcmp(v, want, len))
        FAIL("%s GET %s: %s, got '%.*s' want '%s'", weak ? "weak" : "strong", key,
             pier_strerror(rc), rc ? 0 : (int)len, rc ? "" : v, want);
    free(v);
}

static void check_strong(pier_cluster *c, int *writes) {
    int rc;
    char *v;
    size_t len;
    long long n = 0;
    if ((rc = pier_cluster_set(c, "ce:k", "v1", 2))) FAIL("set: %s", pier_strerror(rc));
    expect_value(c, 0, "ce:k", "v1");
    if ((rc = pier_cluster_del(c, "ce:n", NULL))) FAIL("del: %s", pier_strerror(rc));
    *writes += 2;
    for (long long i = 1; i <= 100; i++, (*writes)++)
        if ((rc = pier_cluster_incr(c, "ce:n", &n)) || n != i)
            FAIL("incr %lld: %s -> %lld", i, pier_strerror(rc), n);
    expect_value(c, 0, "ce:n", "100");
    if ((rc = pier_cluster_del(c, "ce:k", &n)) || n != 1) FAIL("del: %s %lld", pier_strerror(rc), n);
    if ((rc = pier_cluster_get(c, "ce:k", &v, &len)) != PIER_E_NOT_FOUND)
        FAIL("deleted key: %s", pier_strerror(rc));
    if ((rc = pier_cluster_set(c, "ce:s", "abc", 3))) FAIL("set: %s", pier_strerror(rc));
    if ((rc = pier_cluster_incr(c, "ce:s", NULL)) != PIER_E_SERVER)
        FAIL("INCR of a string: %s, want a server error", pier_strerror(rc));
    if (!strstr(pier_last_error(), "not an integer")) FAIL("INCR error detail");
    *writes += 3;
    char key[32], val[32];
    for (int i = 0; i < 200; i++, (*writes)++) {
        snprintf(key, sizeof key, "ce:many:%d", i);
        snprintf(val, sizeof val, "value-%d", i);
        if ((rc = pier_cluster_set(c, key, val, strlen(val)))) FAIL("set %s: %s", key, pier_strerror(rc));
    }
    expect_value(c, 0, "ce:many:123", "value-123");
}

static void check_weak(pier_cluster *c) {
    char val[32];
    for (int i = 0; i < 200; i++) {
        snprintf(val, sizeof val, "w%d", i);
        int rc = pier_cluster_weak_set(c, "ce:weak", val, strlen(val));
        if (rc) FAIL("weak set: %s", pier_strerror(rc));
        expect_value(c, 1, "ce:weak", val); /* read-your-writes */
    }
    /* the weak writes are ordered by the leader: the strong state gets the last */
    double end = now_ms() + 5000;
    for (;;) {
        char *v = NULL;
        size_t len = 0;
        int rc = pier_cluster_get(c, "ce:weak", &v, &len);
        int same = rc == PIER_OK && len == strlen(val) && !memcmp(v, val, len);
        free(v);
        if (same) break;
        if (now_ms() > end) FAIL("weak writes never reached the strong state (%s)", pier_strerror(rc));
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}

static int run_basic(const char *nodes, int home, const char *password) {
    pier_cluster *c;
    int rc = pier_cluster_connect(&c, nodes, home, password);
    if (rc) FAIL("connect: %s", pier_strerror(rc));
    int writes = 0;
    check_strong(c, &writes);
    pier_cluster_stats st;
    pier_cluster_stats_get(c, &st);
    if (st.fast + st.slow != (uint64_t)writes)
        FAIL("fast %llu + slow %llu != %d writes", (unsigned long long)st.fast,
             (unsigned long long)st.slow, writes);
    if (st.fast == 0) FAIL("no write took the fast path");
    check_weak(c);
    printf("ok fast=%llu slow=%llu retries=%llu\n", (unsigned long long)st.fast,
           (unsigned long long)st.slow, (unsigned long long)st.retries);
    pier_cluster_close(c);
    return 0;
}

static int run_incr(const char *nodes, int home, const char *key, double secs) {
    pier_cluster *c;
    int rc = pier_cluster_connect(&c, nodes, home, NULL);
    if (rc) FAIL("connect: %s", pier_strerror(rc));
    long long ok = 0, err = 0, last = 0, calls = 0;
    double end = now_ms() + secs * 1000, maxms = 0;
    while (now_ms() < end) {
        long long v = 0;
        double t0 = now_ms();
        rc = pier_cluster_incr(c, key, &v);
        double ms = now_ms() - t0;
        if (ms > maxms) maxms = ms;
        if (rc == PIER_OK) {
            if (v <= last) FAIL("INCR gave %lld after %lld", v, last);
            last = v;
            ok++;
        } else {
            fprintf(stderr, "incr failed after %.0f ms: %s: %s\n", ms, pier_strerror(rc),
                    pier_last_error());
            err++;
        }
        if (++calls % 20 == 0) {
            printf("progress %lld\n", calls);
            fflush(stdout);
        }
    }
    char *v = NULL;
    size_t len = 0;
    if ((rc = pier_cluster_get(c, key, &v, &len))) FAIL("final GET: %s", pier_strerror(rc));
    pier_cluster_stats st;
    pier_cluster_stats_get(c, &st);
    printf("done ok=%lld err=%lld final=%s maxms=%.0f fast=%llu slow=%llu retries=%llu "
           "failovers=%llu\n",
           ok, err, v, maxms, (unsigned long long)st.fast, (unsigned long long)st.slow,
           (unsigned long long)st.retries, (unsigned long long)st.failovers);
    free(v);
    pier_cluster_close(c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "basic"))
        return run_basic(argv[2], atoi(argv[3]), argc > 4 ? argv[4] : NULL);
    if (argc == 6 && !strcmp(argv[1], "incr"))
        return run_incr(argv[2], atoi(argv[3]), argv[4], atof(argv[5]));
    fprintf(stderr, "usage: test-libpier-cluster-e2e basic <nodes> <home> [password]\n"
                    "       test-libpier-cluster-e2e incr <nodes> <home> <key> <seconds>\n");
    return 2;
}
