/* test_cmd_pubsub.c - the pub/sub commands against the harness's fake
 * host (cmd_harness.h), and the RESP2 subscriber context the dispatcher
 * enforces from the rows (CMD_SUBSCRIBED). */
#include "check.h"
#include "cmd_harness.h"

static void test_subscribe_publish(void) {
    cmd_harness *h = h_new();
    h_use(h, 1);
    CHECK_REPLY(run(h, "SUBSCRIBE", "news", "sport"),
                "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
                "*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n");
    CHECK_REPLY(run(h, "PSUBSCRIBE", "n*"), "*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:3\r\n");
    h_use(h, 0);
    CHECK_REPLY(run(h, "PUBLISH", "news", "hi"), ":2\r\n");
    CHECK_REPLY(h_take(h, 1),
                "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
                "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
    CHECK_REPLY(run(h, "PUBSUB", "NUMSUB", "news", "none"),
                "*4\r\n$4\r\nnews\r\n:1\r\n$4\r\nnone\r\n:0\r\n");
    CHECK_REPLY(run(h, "PUBSUB", "NUMPAT"), ":1\r\n");
    CHECK_REPLY(run(h, "PUBSUB", "CHANNELS", "s*"), "*1\r\n$5\r\nsport\r\n");
    CHECK_REPLY(run(h, "PUBSUB", "CHANNELS", "a", "b"),
                "-ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP.\r\n");
    CHECK_REPLY(run(h, "PUBSUB", "NUMPAT", "x"),
                "-ERR wrong number of arguments for 'pubsub|numpat' command\r\n");
    CHECK_REPLY(run(h, "PUBSUB", "NOSUCH"), "-ERR unknown subcommand 'NOSUCH'. Try PUBSUB HELP.\r\n");
    CHECK_REPLY(run(h, "PUBSUB", "SHARDNUMSUB", "x"), "*2\r\n$1\r\nx\r\n:0\r\n");
    h_free(h);
}

static void test_resp2_subscriber_context(void) {
    cmd_harness *h = h_new();
    run(h, "SUBSCRIBE", "c");
    CHECK_REPLY(run(h, "GET", "k"),
                "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
                "RESET are allowed in this context\r\n");
    CHECK_REPLY(run(h, "CLIENT", "ID"),
                "-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / "
                "QUIT / RESET are allowed in this context\r\n");
    /* an unknown subcommand and a wrong count are answered first (Redis) */
    CHECK_REPLY(run(h, "CLIENT", "FOO"), "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n");
    CHECK_REPLY(run(h, "GET"), "-ERR wrong number of arguments for 'get' command\r\n");
    CHECK_REPLY(run(h, "PING"), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    CHECK_REPLY(run(h, "UNSUBSCRIBE"), "*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n");
    CHECK_REPLY(run(h, "GET", "k"), "$-1\r\n");
    /* RESP3 connections may run anything while subscribed */
    run(h, "HELLO", "3");
    run(h, "SUBSCRIBE", "c");
    CHECK_REPLY(run(h, "GET", "k"), "_\r\n");
    CHECK_REPLY(run(h, "PUNSUBSCRIBE"), ">3\r\n$12\r\npunsubscribe\r\n_\r\n:1\r\n");
    h_free(h);
}

int main(void) {
    RUN(test_subscribe_publish);
    RUN(test_resp2_subscriber_context);
    return check_summary("cmd_pubsub");
}
