/* test_reply.c - reply encoding (RESP2/RESP3), deferred headers, the block
 * queue, and the iov/consume cycle. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/reply.h"

/* Everything queued, in send order, without consuming it. Caller frees. */
static char *peek_all(reply *r, size_t *len) {
    struct iovec iov[64];
    int n = reply_iov(r, iov, 64);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    char *out = malloc(total + 1);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        memcpy(out + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    out[total] = '\0';
    *len = total;
    return out;
}

/* Check the queued bytes equal want exactly, that pending agrees, then
 * drop them. Returns 1 when equal. */
static int drain_is(reply *r, const char *want, size_t want_len) {
    size_t len;
    char *got = peek_all(r, &len);
    int ok = len == want_len && memcmp(got, want, len) == 0 && r->pending == len;
    if (!ok)
        fprintf(stderr, "  got %zu bytes '%.*s' (pending %zu), want '%.*s'\n",
                len, (int)(len < 200 ? len : 200), got, r->pending,
                (int)(want_len < 200 ? want_len : 200), want);
    reply_consume(r, len);
    free(got);
    return ok && r->pending == 0;
}
#define DRAIN_IS(r, lit) drain_is((r), (lit), sizeof(lit) - 1)

static void test_resp2_encodings(void) {
    static reply r;
    reply_init(&r);
    CHECK_EQ_LL(r.proto, 2);
    reply_ok(&r);
    CHECK(DRAIN_IS(&r, "+OK\r\n"));
    reply_status(&r, "PONG");
    CHECK(DRAIN_IS(&r, "+PONG\r\n"));
    reply_error(&r, "ERR syntax error");
    CHECK(DRAIN_IS(&r, "-ERR syntax error\r\n"));
    reply_error(&r, "ERR bad\r\nthing\n");
    CHECK(DRAIN_IS(&r, "-ERR bad  thing \r\n"));
    reply_errorf(&r, "ERR value %d is %s", 42, "bad");
    CHECK(DRAIN_IS(&r, "-ERR value 42 is bad\r\n"));
    reply_int(&r, 0);
    reply_int(&r, -9223372036854775807LL - 1);
    CHECK(DRAIN_IS(&r, ":0\r\n:-9223372036854775808\r\n"));
    reply_bulk(&r, "hello", 5);
    reply_bulk(&r, "", 0);
    reply_bulk(&r, "a\0b", 3);
    CHECK(DRAIN_IS(&r, "$5\r\nhello\r\n$0\r\n\r\n$3\r\na\0b\r\n"));
    reply_bulk_cstr(&r, "xy");
    reply_bulk_ll(&r, -12);
    CHECK(DRAIN_IS(&r, "$2\r\nxy\r\n$3\r\n-12\r\n"));
    reply_null(&r);
    reply_null_array(&r);
    CHECK(DRAIN_IS(&r, "$-1\r\n*-1\r\n"));
    reply_array(&r, 3);
    reply_map(&r, 2);
    reply_set(&r, 4);
    reply_push(&r, 3);
    CHECK(DRAIN_IS(&r, "*3\r\n*4\r\n*4\r\n*3\r\n"));
    reply_double(&r, 1.5);
    reply_double(&r, INFINITY);
    reply_double(&r, -INFINITY);
    CHECK(DRAIN_IS(&r, "$3\r\n1.5\r\n$3\r\ninf\r\n$4\r\n-inf\r\n"));
    reply_bool(&r, 1);
    reply_bool(&r, 0);
    CHECK(DRAIN_IS(&r, ":1\r\n:0\r\n"));
    reply_verbatim(&r, "text", 4, "txt");
    CHECK(DRAIN_IS(&r, "$4\r\ntext\r\n"));
    reply_raw(&r, "+RAW\r\n", 6);
    CHECK(DRAIN_IS(&r, "+RAW\r\n"));
    reply_free(&r);
}

static void test_resp3_encodings(void) {
    static reply r;
    reply_init(&r);
    r.proto = 3;
    reply_null(&r);
    reply_null_array(&r);
    CHECK(DRAIN_IS(&r, "_\r\n_\r\n"));
    reply_bool(&r, 1);
    reply_bool(&r, 0);
    CHECK(DRAIN_IS(&r, "#t\r\n#f\r\n"));
    reply_map(&r, 2);
    reply_set(&r, 4);
    reply_push(&r, 3);
    reply_array(&r, 0);
    CHECK(DRAIN_IS(&r, "%2\r\n~4\r\n>3\r\n*0\r\n"));
    reply_double(&r, 1.5);
    reply_double(&r, INFINITY);
    reply_double(&r, -INFINITY);
    reply_double(&r, 0.1);
    CHECK(DRAIN_IS(&r, ",1.5\r\n,inf\r\n,-inf\r\n,0.10000000000000001\r\n"));
    reply_verbatim(&r, "hello", 5, "txt");
    reply_verbatim(&r, "", 0, "mkd");
    CHECK(DRAIN_IS(&r, "=9\r\ntxt:hello\r\n=4\r\nmkd:\r\n"));
    reply_bulk(&r, "x", 1);
    reply_int(&r, 7);
    CHECK(DRAIN_IS(&r, "$1\r\nx\r\n:7\r\n"));
    reply_free(&r);
}

static void test_deferred(void) {
    static reply r;
    reply_init(&r);
    /* Data before, a deferred array, data after: order preserved. */
    reply_ok(&r);
    reply_deferred d = reply_defer(&r);
    reply_bulk(&r, "a", 1);
    reply_bulk(&r, "b", 1);
    /* Nothing after the unfilled header may be offered for sending. */
    size_t len;
    char *before = peek_all(&r, &len);
    CHECK_MEM(before, len, "+OK\r\n");
    free(before);
    CHECK_EQ_LL(r.pending, 5 + 14);
    reply_defer_set(&r, d, REPLY_AGG_ARRAY, 2);
    reply_int(&r, 1);
    CHECK(DRAIN_IS(&r, "+OK\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n:1\r\n"));

    /* Nested and empty, maps in both protocols. */
    reply_deferred outer = reply_defer(&r);
    reply_deferred inner = reply_defer(&r);
    reply_bulk(&r, "k", 1);
    reply_int(&r, 1);
    reply_defer_set(&r, inner, REPLY_AGG_MAP, 1);
    reply_deferred empty = reply_defer(&r);
    reply_defer_set(&r, empty, REPLY_AGG_SET, 0);
    reply_defer_set(&r, outer, REPLY_AGG_ARRAY, 2);
    CHECK(DRAIN_IS(&r, "*2\r\n*2\r\n$1\r\nk\r\n:1\r\n*0\r\n"));
    r.proto = 3;
    outer = reply_defer(&r);
    inner = reply_defer(&r);
    reply_bulk(&r, "k", 1);
    reply_int(&r, 1);
    reply_defer_set(&r, inner, REPLY_AGG_MAP, 1);
    empty = reply_defer(&r);
    reply_defer_set(&r, empty, REPLY_AGG_SET, 0);
    reply_deferred push = reply_defer(&r);
    reply_defer_set(&r, push, REPLY_AGG_PUSH, 0);
    reply_defer_set(&r, outer, REPLY_AGG_ARRAY, 3);
    CHECK(DRAIN_IS(&r, "*3\r\n%1\r\n$1\r\nk\r\n:1\r\n~0\r\n>0\r\n"));

    /* A deferred header with many elements behind it (spans blocks). */
    r.proto = 2;
    d = reply_defer(&r);
    for (int i = 0; i < 10000; i++)
        reply_int(&r, i % 10);
    reply_defer_set(&r, d, REPLY_AGG_ARRAY, 10000);
    char *all = peek_all(&r, &len);
    CHECK_EQ_LL(len, 8 + 10000 * 4);
    CHECK(memcmp(all, "*10000\r\n:0\r\n:1\r\n", 16) == 0);
    CHECK(memcmp(all + len - 4, ":9\r\n", 4) == 0);
    free(all);
    reply_consume(&r, len);
    CHECK_EQ_LL(r.pending, 0);
    reply_free(&r);
}

static void test_big_bulk(void) {
    static reply r;
    reply_init(&r);
    size_t n = 100000;
    char *payload = malloc(n);
    for (size_t i = 0; i < n; i++)
        payload[i] = (char)('a' + i % 26);
    reply_ok(&r);
    reply_bulk(&r, payload, n);
    /* One block sized exactly for header + payload + CRLF. */
    CHECK(r.head != NULL && r.head == r.tail);
    CHECK_EQ_LL(r.head->size, 9 + n + 2);
    CHECK_EQ_LL(r.head->used, 9 + n + 2);
    CHECK_EQ_LL(r.pending, 5 + 9 + n + 2);
    reply_int(&r, 5); /* goes to a fresh block after it */
    size_t len;
    char *all = peek_all(&r, &len);
    CHECK_EQ_LL(len, 5 + 9 + n + 2 + 4);
    CHECK(memcmp(all, "+OK\r\n$100000\r\n", 14) == 0);
    CHECK(memcmp(all + 14, payload, n) == 0);
    CHECK(memcmp(all + 14 + n, "\r\n:5\r\n", 6) == 0);
    free(all);
    reply_consume(&r, len);
    CHECK(r.head == NULL);
    CHECK_EQ_LL(r.pending, 0);

    /* A bulk that just fits in what is left of the inline buffer stays there. */
    reply_bulk(&r, payload, 1000);
    CHECK(r.head == NULL);
    reply_consume(&r, r.pending);
    free(payload);
    reply_free(&r);
}

/* Random replies with partial sends of random sizes: the bytes that come
 * out must be exactly the bytes that went in. */
static void test_iov_consume_roundtrip(void) {
    static reply r;
    reply_init(&r);
    size_t cap = 8 * 1024 * 1024;
    char *expect = malloc(cap), *got = malloc(cap);
    size_t expect_len = 0, got_len = 0;
    char *big = malloc(70000);
    memset(big, 'B', 70000);
    unsigned seed = 99;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned pick = (seed >> 16) % 10;
        char tmp[64];
        if (pick < 5) {
            int k = snprintf(tmp, sizeof(tmp), ":%d\r\n", step);
            reply_int(&r, step);
            memcpy(expect + expect_len, tmp, (size_t)k);
            expect_len += (size_t)k;
        } else if (pick < 7) {
            size_t n = (seed >> 4) % 3000;
            int k = snprintf(tmp, sizeof(tmp), "$%zu\r\n", n);
            reply_bulk(&r, big, n);
            memcpy(expect + expect_len, tmp, (size_t)k);
            expect_len += (size_t)k;
            memcpy(expect + expect_len, big, n);
            expect_len += n;
            memcpy(expect + expect_len, "\r\n", 2);
            expect_len += 2;
        } else if (pick == 7 && (seed & 0x300) == 0) {
            reply_bulk(&r, big, 70000);
            memcpy(expect + expect_len, "$70000\r\n", 8);
            expect_len += 8;
            memcpy(expect + expect_len, big, 70000);
            expect_len += 70000;
            memcpy(expect + expect_len, "\r\n", 2);
            expect_len += 2;
        } else if (pick == 8) {
            reply_deferred d = reply_defer(&r);
            reply_ok(&r);
            reply_defer_set(&r, d, REPLY_AGG_ARRAY, 1);
            memcpy(expect + expect_len, "*1\r\n+OK\r\n", 9);
            expect_len += 9;
        } else {
            /* Send a random amount of what is queued, a few segments at
             * a time, like a socket accepting partial writes. */
            struct iovec iov[3];
            int cnt = reply_iov(&r, iov, 3);
            size_t avail = 0;
            for (int i = 0; i < cnt; i++)
                avail += iov[i].iov_len;
            size_t send = avail ? (seed >> 3) % (avail + 1) : 0;
            size_t left = send;
            for (int i = 0; i < cnt && left > 0; i++) {
                size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
                CHECK(iov[i].iov_len > 0);
                memcpy(got + got_len, iov[i].iov_base, k);
                got_len += k;
                left -= k;
            }
            reply_consume(&r, send);
        }
        if (expect_len > cap - 100000)
            break;
        CHECK_EQ_LL(r.pending, expect_len - got_len);
    }
    /* Flush the rest. */
    while (reply_has_pending(&r)) {
        struct iovec iov[8];
        int cnt = reply_iov(&r, iov, 8);
        size_t sent = 0;
        for (int i = 0; i < cnt; i++) {
            memcpy(got + got_len, iov[i].iov_base, iov[i].iov_len);
            got_len += iov[i].iov_len;
            sent += iov[i].iov_len;
        }
        CHECK(sent > 0);
        if (sent == 0)
            break;
        reply_consume(&r, sent);
    }
    CHECK_EQ_LL(got_len, expect_len);
    CHECK(memcmp(got, expect, expect_len) == 0);
    CHECK(r.head == NULL && r.tail == NULL);
    CHECK_EQ_LL(r.inline_used, 0);
    CHECK_EQ_LL(r.sent_head, 0);
    free(expect);
    free(got);
    free(big);
    reply_free(&r);
}

static void test_blocks_and_spare(void) {
    static reply r;
    reply_init(&r);
    /* Fill the inline buffer and two blocks. */
    char chunk[1000];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 50; i++)
        reply_raw(&r, chunk, sizeof(chunk));
    CHECK_EQ_LL(r.inline_used, REPLY_INLINE_SIZE);
    CHECK(r.head != NULL && r.head->next != NULL);
    CHECK_EQ_LL(r.pending, 50000);
    struct iovec iov[8];
    CHECK_EQ_LL(reply_iov(&r, iov, 8), 1 + 3);
    CHECK_EQ_LL(iov[0].iov_len, REPLY_INLINE_SIZE);
    CHECK_EQ_LL(reply_iov(&r, iov, 2), 2);
    /* Partial send inside the inline buffer. */
    reply_consume(&r, 100);
    CHECK_EQ_LL(reply_iov(&r, iov, 1), 1);
    CHECK_EQ_LL(iov[0].iov_len, REPLY_INLINE_SIZE - 100);
    /* While blocks are queued, new bytes go behind them, not inline. */
    reply_consume(&r, REPLY_INLINE_SIZE - 100);
    CHECK_EQ_LL(r.inline_used, 0);
    reply_raw(&r, "END", 3);
    CHECK_EQ_LL(r.inline_used, 0);
    reply_consume(&r, r.pending - 3);
    CHECK(r.spare != NULL); /* one finished block kept for reuse */
    size_t len;
    char *rest = peek_all(&r, &len);
    CHECK_MEM(rest, len, "END");
    free(rest);
    reply_consume(&r, 3);
    CHECK(r.head == NULL);
    /* Back to the inline buffer once the list is empty. */
    reply_ok(&r);
    CHECK_EQ_LL(r.inline_used, 5);
    reply_reset(&r);
    CHECK_EQ_LL(r.pending, 0);
    CHECK_EQ_LL(r.inline_used, 0);
    reply_free(&r);
    CHECK(r.spare == NULL);
}

static void test_error_forms(void) {
    static reply r;
    reply_init(&r);
    reply_error(&r, "-ERR already prefixed");
    CHECK(DRAIN_IS(&r, "-ERR already prefixed\r\n"));
    char longmsg[2000];
    memset(longmsg, 'e', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    longmsg[700] = '\n';
    reply_errorf(&r, "ERR %s", longmsg);
    size_t len;
    char *all = peek_all(&r, &len);
    CHECK_EQ_LL(len, 1 + 4 + 1999 + 2);
    CHECK(memchr(all, '\n', len - 1) == NULL);
    CHECK(all[5 + 700] == ' ');
    free(all);
    reply_consume(&r, len);
    reply_status(&r, "a\rb");
    CHECK(DRAIN_IS(&r, "+a b\r\n"));
    reply_free(&r);
}

int main(void) {
    RUN(test_resp2_encodings);
    RUN(test_resp3_encodings);
    RUN(test_deferred);
    RUN(test_big_bulk);
    RUN(test_iov_consume_roundtrip);
    RUN(test_blocks_and_spare);
    RUN(test_error_forms);
    return check_summary("reply");
}
