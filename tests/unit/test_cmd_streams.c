/* test_cmd_streams.c - the stream commands, consumer groups included, run
 * in-process (cmd_harness.h): replies, the records each write logs, and
 * that every record is logged while the keys are locked (XREAD and
 * XREADGROUP's keys follow STREAMS: the dispatcher locks them through
 * their rows' getkeys). */
#include "check.h"
#include "cmd_harness.h"

static void test_add_range_len(void) {
    cmd_harness *h = h_new();
    CHECK_REPLY(run(h, "XADD", "s", "1-1", "f", "v"), "$3\r\n1-1\r\n");
    CHECK_REPLY(run(h, "XADD", "s", "1-1", "f", "v"),
                "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n");
    CHECK_REPLY(run(h, "XADD", "s", "2-*", "g", "w"), "$3\r\n2-0\r\n");
    CHECK_REPLY(run(h, "XLEN", "s"), ":2\r\n");
    CHECK_REPLY(run(h, "XRANGE", "s", "-", "+", "COUNT", "1"),
                "*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    CHECK_REPLY(run(h, "XTRIM", "s", "MAXLEN", "1"), ":1\r\n");
    CHECK(h_logged(h, "XTRIM s MINID = 2-0"));
    CHECK_REPLY(run(h, "XADD", "s", "MAXLEN", "x", "*", "f", "v"),
                "-ERR value is not an integer or out of range\r\n");
    CHECK_EQ_LL(h->signals, 2); /* each XADD woke the readers of s */
    h_free(h);
}

static void test_xread(void) {
    cmd_harness *h = h_new();
    run(h, "XADD", "a", "1-1", "f", "1");
    run(h, "XADD", "b", "2-1", "f", "2");
    CHECK_REPLY(run(h, "XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "2-1"),
                "*1\r\n*2\r\n$1\r\na\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\n1\r\n");
    CHECK_REPLY(run(h, "XREAD", "STREAMS", "a", "b", "0"),
                "-ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be "
                "specified.\r\n");
    CHECK_REPLY(run(h, "XREAD", "GROUP", "g", "c", "STREAMS", "a", "0"),
                "-ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.\r\n");
    /* nothing new: parks (the fake host records it), replies nothing */
    CHECK_REPLY(run(h, "XREAD", "BLOCK", "100", "STREAMS", "a", "$"), "");
    CHECK_EQ_LL(h->parked, 1);
    CHECK_EQ_LL(h->parked_timeout, 100);
    CHECK_REPLY(run(h, "XREAD", "STREAMS", "a", "$"), "*-1\r\n");
    h_free(h);
}

static void test_groups(void) {
    cmd_harness *h = h_new();
    h->now_ms = 5000;
    CHECK_REPLY(run(h, "XGROUP", "CREATE", "s", "g", "$"),
                "-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you "
                "may want to use the MKSTREAM option to create an empty stream automatically.\r\n");
    CHECK_REPLY(run(h, "XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"), "+OK\r\n");
    CHECK(h_logged(h, "xgroup CREATE s g $ MKSTREAM"));
    CHECK_REPLY(run(h, "XGROUP", "CREATE", "s", "g", "$"), "-BUSYGROUP Consumer Group name already exists\r\n");
    CHECK_REPLY(run(h, "XGROUP", "CREATE", "s"),
                "-ERR wrong number of arguments for 'xgroup|create' command\r\n");
    CHECK_REPLY(run(h, "XGROUP", "SETID", "s", "g", "0", "BAD"),
                "-ERR unknown subcommand or wrong number of arguments for 'SETID'. Try XGROUP HELP.\r\n");
    CHECK_REPLY(run(h, "XGROUP", "NOSUCH"), "-ERR unknown subcommand 'NOSUCH'. Try XGROUP HELP.\r\n");
    run(h, "XADD", "s", "1-1", "f", "v");
    run(h, "XADD", "s", "1-2", "f", "w");
    h_log_clear(h);
    CHECK_REPLY(run(h, "XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", "s", ">"),
                "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    /* the delivery and the group's position, logged under the key's lock
     * and closed as one entry */
    CHECK(h_logged(h, "XCLAIM s g alice 0 1-1 TIME 5000 RETRYCOUNT 1 FORCE JUSTID LASTID 1-1"));
    CHECK(h_logged(h, "XGROUP SETID s g 1-1 ENTRIESREAD 1"));
    CHECK_EQ_LL(h->unlocked_logs, 0);
    CHECK_EQ_LL(h->entries_closed, 1);
    CHECK_REPLY(run(h, "XPENDING", "s", "g"),
                "*4\r\n:1\r\n$3\r\n1-1\r\n$3\r\n1-1\r\n*1\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n");
    CHECK_REPLY(run(h, "XCLAIM", "s", "g", "bob", "0", "1-1", "JUSTID"), "*1\r\n$3\r\n1-1\r\n");
    CHECK_REPLY(run(h, "XACK", "s", "g", "1-1", "9-9"), ":1\r\n");
    CHECK_REPLY(run(h, "XREADGROUP", "GROUP", "nog", "c", "STREAMS", "s", ">"),
                "-NOGROUP No such key 's' or consumer group 'nog' in XREADGROUP with GROUP option\r\n");
    CHECK_REPLY(run(h, "XGROUP", "DESTROY", "s", "g"), ":1\r\n");
    CHECK_EQ_LL(h->unblocks, 1); /* blocked XREADGROUPs are told */
    CHECK_EQ_LL(h->unlocked_logs, 0);
    h_free(h);
}

static void test_xinfo(void) {
    cmd_harness *h = h_new();
    CHECK_REPLY(run(h, "XINFO", "STREAM", "s"), "-ERR no such key\r\n");
    run(h, "XADD", "s", "1-1", "f", "v");
    run(h, "XGROUP", "CREATE", "s", "g", "0");
    CHECK_REPLY(run(h, "XINFO", "GROUPS", "s"),
                "*1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n"
                ":0\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n$-1\r\n"
                "$3\r\nlag\r\n:1\r\n");
    CHECK_REPLY(run(h, "XINFO", "STREAM", "s", "FULL", "x"),
                "-ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.\r\n");
    CHECK_REPLY(run(h, "XINFO", "CONSUMERS", "s", "nog"),
                "-NOGROUP No such consumer group 'nog' for key name 's'\r\n");
    CHECK_REPLY(run(h, "XINFO", "GROUPS"), "-ERR wrong number of arguments for 'xinfo|groups' command\r\n");
    CHECK(!strncmp(run(h, "XINFO", "HELP"), "*9\r\n+XINFO <subcommand>", 22));
    h_free(h);
}

int main(void) {
    RUN(test_add_range_len);
    RUN(test_xread);
    RUN(test_groups);
    RUN(test_xinfo);
    return check_summary("cmd_streams");
}
