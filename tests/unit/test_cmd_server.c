/* test_cmd_server.c - connection and server commands, COMMAND, and the
 * dispatcher's refusals (unknown command or subcommand, arity, NOAUTH,
 * OOM, MISCONF) run in-process (cmd_harness.h). */
#include "check.h"
#include "cmd_harness.h"

static void test_connection_commands(void) {
    cmd_harness *h = h_new();
    CHECK_REPLY(run(h, "PING"), "+PONG\r\n");
    CHECK_REPLY(run(h, "PING", "x"), "$1\r\nx\r\n");
    CHECK_REPLY(run(h, "ECHO", "hi"), "$2\r\nhi\r\n");
    CHECK_REPLY(run(h, "SELECT", "0"), "+OK\r\n");
    CHECK_REPLY(run(h, "SELECT", "1"), "-ERR DB index is out of range\r\n");
    CHECK_REPLY(run(h, "NOSUCH", "a"), "-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n");
    const char *hello = run(h, "HELLO", "3");
    CHECK(!strncmp(hello, "%7\r\n$6\r\nserver\r\n$4\r\npier\r\n", 26));
    CHECK_EQ_LL(h->sess[0].proto, 3);
    h_free(h);
}

static void test_client_subcommands(void) {
    cmd_harness *h = h_new();
    h_use(h, 1);
    CHECK_REPLY(run(h, "CLIENT", "ID"), ":2\r\n");
    CHECK_REPLY(run(h, "CLIENT", "GETNAME"), "$-1\r\n");
    CHECK_REPLY(run(h, "CLIENT", "SETNAME", "app"), "+OK\r\n");
    CHECK_REPLY(run(h, "client", "getname"), "$3\r\napp\r\n");
    CHECK_REPLY(run(h, "CLIENT", "SETNAME", "a b"),
                "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
    CHECK_REPLY(run(h, "CLIENT", "ID", "x"),
                "-ERR wrong number of arguments for 'client|id' command\r\n");
    CHECK_REPLY(run(h, "CLIENT", "FOO"), "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n");
    CHECK_REPLY(run(h, "client", "foo"), "-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n");
    CHECK_REPLY(run(h, "CLIENT"), "-ERR wrong number of arguments for 'client' command\r\n");
    /* the running command is named parent|sub (CLIENT LIST's cmd=) */
    CHECK_REPLY(run(h, "CLIENT", "INFO"), "$30\r\nid=2 name=app cmd=client|info\n\r\n");
    h_free(h);
}

static void test_config(void) {
    cmd_harness *h = h_new();
    CHECK_REPLY(run(h, "CONFIG", "SET", "maxmemory-policy", "allkeys-lru"), "+OK\r\n");
    CHECK_REPLY(run(h, "CONFIG", "GET", "maxmemory-policy"),
                "*2\r\n$16\r\nmaxmemory-policy\r\n$11\r\nallkeys-lru\r\n");
    CHECK_REPLY(run(h, "CONFIG", "SET", "maxmemory-policy", "x", "y"), "-ERR syntax error\r\n");
    CHECK_REPLY(run(h, "CONFIG", "SET", "nosuch", "1"),
                "-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n");
    CHECK_REPLY(run(h, "CONFIG", "GET"), "-ERR wrong number of arguments for 'config|get' command\r\n");
    CHECK_REPLY(run(h, "CONFIG", "RESETSTAT"), "+OK\r\n");
    CHECK_EQ_LL(h->resets, 1);
    h_free(h);
}

static void test_command_introspection(void) {
    cmd_harness *h = h_new();
    CHECK_REPLY(run(h, "COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"),
                "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    CHECK_REPLY(run(h, "COMMAND", "GETKEYS", "XREAD", "COUNT", "1", "STREAMS", "s1", "s2", "0", "0"),
                "*2\r\n$2\r\ns1\r\n$2\r\ns2\r\n");
    CHECK_REPLY(run(h, "COMMAND", "GETKEYS", "XGROUP", "CREATE", "s", "g", "$"), "*1\r\n$1\r\ns\r\n");
    CHECK_REPLY(run(h, "COMMAND", "GETKEYS", "PING", "x"), "-ERR The command has no key arguments\r\n");
    CHECK_REPLY(run(h, "COMMAND", "GETKEYS", "NOSUCH", "x"), "-ERR Invalid command specified\r\n");
    CHECK_REPLY(run(h, "COMMAND", "GETKEYS", "SET", "a"),
                "-ERR Invalid number of arguments specified for command\r\n");
    CHECK_REPLY(run(h, "COMMAND", "GETKEYS", "XREAD", "STREAMS", "a", "b", "c"),
                "-ERR Invalid arguments specified for command\r\n");
    const char *info = run(h, "COMMAND", "INFO", "xgroup|create");
    CHECK(!strncmp(info, "*1\r\n*10\r\n$13\r\nxgroup|create\r\n:-5\r\n", 34));
    CHECK_REPLY(run(h, "COMMAND", "INFO", "get|x"), "*1\r\n$-1\r\n");
    CHECK_REPLY(run(h, "COMMAND", "LIST", "FILTERBY", "PATTERN", "xinfo*"),
                "*5\r\n$5\r\nxinfo\r\n$12\r\nxinfo|stream\r\n$12\r\nxinfo|groups\r\n"
                "$15\r\nxinfo|consumers\r\n$10\r\nxinfo|help\r\n");
    CHECK_REPLY(run(h, "COMMAND", "LIST", "x"), "-ERR syntax error\r\n");
    h_free(h);
}

static void test_auth(void) {
    cmd_harness *h = h_new();
    h_password(h, "pw");
    h->sess[0].authenticated = 0;
    CHECK_REPLY(run(h, "GET", "k"), "-NOAUTH Authentication required.\r\n");
    CHECK_REPLY(run(h, "CLIENT", "ID"), "-NOAUTH Authentication required.\r\n");
    /* unknown command or subcommand and arity come first, as in Redis */
    CHECK_REPLY(run(h, "CLIENT", "FOO"), "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n");
    CHECK_REPLY(run(h, "GET"), "-ERR wrong number of arguments for 'get' command\r\n");
    CHECK_REPLY(run(h, "AUTH", "bad"),
                "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    CHECK_REPLY(run(h, "AUTH", "pw"), "+OK\r\n");
    CHECK_REPLY(run(h, "GET", "k"), "$-1\r\n");
    h_free(h);
}

static void test_maxmemory_and_disk_errors(void) {
    cmd_harness *h = h_new();
    run(h, "CONFIG", "SET", "maxmemory", "100");
    h->used_memory = 1000; /* over, and noeviction */
    CHECK_REPLY(run(h, "SET", "k", "v"), "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
    CHECK_REPLY(run(h, "XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"),
                "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
    CHECK_REPLY(run(h, "DEL", "k"), ":0\r\n"); /* not denyoom */
    h->used_memory = 0;
    atomic_store(&h->disk.aof_errno, 28);
    CHECK(!strncmp(run(h, "SET", "k", "v"), "-MISCONF Errors writing to the AOF file: ", 41));
    CHECK(!strncmp(run(h, "PING"), "-MISCONF", 8)); /* as in Redis */
    CHECK(!strncmp(run(h, "XGROUP", "DESTROY", "s", "g"), "-MISCONF", 8));
    CHECK(!strncmp(run(h, "XGROUP", "HELP"), "*", 1)); /* not a write: answered */
    CHECK_REPLY(run(h, "GET", "k"), "$-1\r\n");
    atomic_store(&h->disk.aof_errno, 0);
    CHECK_REPLY(run(h, "SET", "k", "v"), "+OK\r\n");
    h_free(h);
}

/* An HTTP line (CMD_XPROTO) runs before any check and hangs up. */
static void test_cross_protocol_lines_hang_up(void) {
    cmd_harness *h = h_new();
    h_password(h, "pw");
    h->sess[0].authenticated = 0;
    h->sess[0].subscriptions = 1;
    CHECK_REPLY(run(h, "POST", "/", "HTTP/1.1"), "");
    CHECK(h->sess[0].flags & SESS_CLOSE_NOW);
    h_use(h, 1); /* an authenticated connection: COMMAND does not show them */
    CHECK_REPLY(run(h, "COMMAND", "INFO", "post"), "*1\r\n$-1\r\n");
    CHECK_REPLY(run(h, "COMMAND", "GETKEYS", "host:", "x"), "-ERR Invalid command specified\r\n");
    h_free(h);
}

int main(void) {
    RUN(test_connection_commands);
    RUN(test_client_subcommands);
    RUN(test_config);
    RUN(test_command_introspection);
    RUN(test_auth);
    RUN(test_maxmemory_and_disk_errors);
    RUN(test_cross_protocol_lines_hang_up);
    return check_summary("cmd_server");
}
