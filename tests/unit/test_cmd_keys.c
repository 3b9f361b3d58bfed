/* test_cmd_keys.c - the generic key commands and the whole-keyspace ones
 * run in-process (cmd_harness.h). */
#include "check.h"
#include "cmd_harness.h"

static void test_del_exists_type(void) {
    cmd_harness *h = h_new();
    run(h, "MSET", "a", "1", "b", "2");
    CHECK_REPLY(run(h, "EXISTS", "a", "a", "c"), ":2\r\n");
    CHECK_REPLY(run(h, "TYPE", "a"), "+string\r\n");
    CHECK_REPLY(run(h, "TYPE", "c"), "+none\r\n");
    CHECK_REPLY(run(h, "DEL", "a", "b", "c"), ":2\r\n");
    CHECK_REPLY(run(h, "DBSIZE"), ":0\r\n");
    CHECK_REPLY(run(h, "DEL"), "-ERR wrong number of arguments for 'del' command\r\n");
    h_free(h);
}

static void test_expire_family_logs_absolute_times(void) {
    cmd_harness *h = h_new();
    h->now_ms = 2000000;
    run(h, "SET", "k", "v");
    CHECK_REPLY(run(h, "TTL", "k"), ":-1\r\n");
    CHECK_REPLY(run(h, "EXPIRE", "k", "100"), ":1\r\n");
    CHECK(h_logged(h, "PEXPIREAT k 2100000"));
    CHECK_REPLY(run(h, "TTL", "k"), ":100\r\n");
    CHECK_REPLY(run(h, "PEXPIRETIME", "k"), ":2100000\r\n");
    CHECK_REPLY(run(h, "EXPIRE", "k", "50", "GT"), ":0\r\n");
    CHECK_REPLY(run(h, "EXPIRE", "k", "5", "NX", "XX"),
                "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
    CHECK_REPLY(run(h, "PERSIST", "k"), ":1\r\n");
    CHECK_REPLY(run(h, "EXPIRE", "k", "-1"), ":1\r\n"); /* a past time deletes */
    CHECK(h_logged(h, "DEL k"));
    CHECK_REPLY(run(h, "EXISTS", "k"), ":0\r\n");
    CHECK_EQ_LL(h->unlocked_logs, 0);
    h_free(h);
}

static void test_rename(void) {
    cmd_harness *h = h_new();
    CHECK_REPLY(run(h, "RENAME", "x", "y"), "-ERR no such key\r\n");
    run(h, "SET", "x", "1");
    run(h, "SET", "y", "2");
    CHECK_REPLY(run(h, "RENAMENX", "x", "y"), ":0\r\n");
    CHECK_REPLY(run(h, "RENAME", "x", "y"), "+OK\r\n");
    CHECK_REPLY(run(h, "GET", "y"), "$1\r\n1\r\n");
    CHECK(h_logged(h, "rename x y"));
    CHECK_EQ_LL(h->unlocked_logs, 0); /* both keys' shards were locked */
    h_free(h);
}

static void test_whole_keyspace(void) {
    cmd_harness *h = h_new();
    run(h, "MSET", "k1", "1", "k2", "2", "other", "3");
    CHECK_REPLY(run(h, "DBSIZE"), ":3\r\n");
    CHECK_REPLY(run(h, "KEYS", "oth*"), "*1\r\n$5\r\nother\r\n");
    CHECK_REPLY(run(h, "SCAN", "0", "MATCH", "oth*", "COUNT", "1000"),
                "*2\r\n$1\r\n0\r\n*1\r\n$5\r\nother\r\n");
    CHECK_REPLY(run(h, "SCAN", "x"), "-ERR invalid cursor\r\n");
    CHECK_REPLY(run(h, "FLUSHALL", "BAD"), "-ERR syntax error\r\n");
    CHECK_REPLY(run(h, "FLUSHALL"), "+OK\r\n");
    CHECK(h_logged(h, "FLUSHALL"));
    CHECK_REPLY(run(h, "RANDOMKEY"), "$-1\r\n");
    h_free(h);
}

int main(void) {
    RUN(test_del_exists_type);
    RUN(test_expire_family_logs_absolute_times);
    RUN(test_rename);
    RUN(test_whole_keyspace);
    return check_summary("cmd_keys");
}
