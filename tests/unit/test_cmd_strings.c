/* test_cmd_strings.c - the string commands run in-process (cmd_harness.h):
 * replies, errors, and what each write logs. */
#include "check.h"
#include "cmd_harness.h"

static void test_set_get(void) {
    cmd_harness *h = h_new();
    CHECK_REPLY(run(h, "GET", "k"), "$-1\r\n");
    CHECK_REPLY(run(h, "SET", "k", "v"), "+OK\r\n");
    CHECK_REPLY(run(h, "GET", "k"), "$1\r\nv\r\n");
    CHECK_REPLY(run(h, "SET", "k", "w", "NX"), "$-1\r\n");
    CHECK_REPLY(run(h, "SET", "k", "w", "XX", "GET"), "$1\r\nv\r\n");
    CHECK_REPLY(run(h, "SET", "k", "v", "KEEPTTL", "EX", "10"), "-ERR syntax error\r\n");
    CHECK_REPLY(run(h, "SET", "k", "v", "EX", "0"), "-ERR invalid expire time in 'set' command\r\n");
    CHECK_REPLY(run(h, "SETNX", "k", "x"), ":0\r\n");
    CHECK_REPLY(run(h, "GETDEL", "k"), "$1\r\nw\r\n");
    CHECK_REPLY(run(h, "GET", "k"), "$-1\r\n");
    CHECK_REPLY(run(h, "GET"), "-ERR wrong number of arguments for 'get' command\r\n");
    h_free(h);
}

static void test_counters_and_ranges(void) {
    cmd_harness *h = h_new();
    CHECK_REPLY(run(h, "INCR", "n"), ":1\r\n");
    CHECK_REPLY(run(h, "INCRBY", "n", "41"), ":42\r\n");
    CHECK_REPLY(run(h, "DECR", "n"), ":41\r\n");
    CHECK_REPLY(run(h, "INCRBY", "n", "x"), "-ERR value is not an integer or out of range\r\n");
    CHECK_REPLY(run(h, "APPEND", "s", "hello"), ":5\r\n");
    CHECK_REPLY(run(h, "SETRANGE", "s", "5", " world"), ":11\r\n");
    CHECK_REPLY(run(h, "GETRANGE", "s", "0", "4"), "$5\r\nhello\r\n");
    CHECK_REPLY(run(h, "STRLEN", "s"), ":11\r\n");
    CHECK_REPLY(run(h, "MSET", "a", "1", "b", "2"), "+OK\r\n");
    CHECK_REPLY(run(h, "MGET", "a", "b", "c"), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
    CHECK_REPLY(run(h, "MSET", "a", "1", "b"), "-ERR wrong number of arguments for 'mset' command\r\n");
    CHECK_REPLY(run(h, "MSETNX", "a", "9", "z", "9"), ":0\r\n");
    h_free(h);
}

/* What the AOF gets: the effect, with relative times made absolute, logged
 * while the key is locked. */
static void test_writes_log_their_effect(void) {
    cmd_harness *h = h_new();
    h->now_ms = 1000000;
    CHECK_REPLY(run(h, "SET", "k", "v", "EX", "10"), "+OK\r\n");
    CHECK(h_logged(h, "SET k v PXAT 1010000"));
    CHECK_REPLY(run(h, "SETEX", "k2", "5", "v"), "+OK\r\n");
    CHECK(h_logged(h, "SET k2 v PXAT 1005000"));
    CHECK_REPLY(run(h, "INCRBYFLOAT", "f", "1.5"), "$3\r\n1.5\r\n");
    CHECK(h_logged(h, "SET f 1.5 KEEPTTL"));
    CHECK_REPLY(run(h, "MSET", "a", "1", "b", "2"), "+OK\r\n");
    CHECK(h_logged(h, "mset a 1 b 2"));
    h_log_clear(h);
    CHECK_REPLY(run(h, "SET", "k", "v", "NX"), "$-1\r\n"); /* nothing changed: nothing logged */
    CHECK_REPLY(run(h, "GET", "k"), "$1\r\nv\r\n");
    CHECK_EQ_LL(h->log_len, 0);
    CHECK_EQ_LL(h->unlocked_logs, 0);
    h_free(h);
}

static void test_wrongtype(void) {
    cmd_harness *h = h_new();
    CHECK_REPLY(run(h, "XADD", "s", "1-1", "f", "v"), "$3\r\n1-1\r\n");
    CHECK_REPLY(run(h, "GET", "s"),
                "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    CHECK_REPLY(run(h, "MGET", "s"), "*1\r\n$-1\r\n");
    CHECK_REPLY(run(h, "SET", "s", "x"), "+OK\r\n"); /* SET overwrites any type */
    h_free(h);
}

int main(void) {
    RUN(test_set_get);
    RUN(test_counters_and_ranges);
    RUN(test_writes_log_their_effect);
    RUN(test_wrongtype);
    return check_summary("cmd_strings");
}
