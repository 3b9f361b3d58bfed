/* test_cmd_table.c - the command table as data (src/cmd/command.h): every
 * row passes the table's own checks, subcommands resolve, keys come from
 * key positions or getkeys, and what cluster routing reads from a row
 * (access, whole keyspace, blind pairs) is right, including for a row
 * added tomorrow that forgets to say it reads nothing. */
#include "check.h"
#include "cmd_harness.h"

static cmd_arg A(const char *s) { return (cmd_arg){s, strlen(s)}; }

static void test_every_row_passes_the_check(void) {
    cmd_table_init();
    CHECK(cmd_count() > 40);
    for (size_t i = 0; i < cmd_count(); i++) {
        const char *bad = cmd_table_check(cmd_at(i), 1);
        if (bad) fprintf(stderr, "  %s\n", bad);
        CHECK(bad == NULL);
    }
}

static void noop(cmd_ctx *c) { reply_ok(c->out); }

static void test_check_refuses_rows_that_say_too_little(void) {
    const command silent[] = {{"newcmd", noop, 1, 0, 0, 0, 0, "generic", "", "1"}};
    CHECK(cmd_table_check(silent, 1) != NULL); /* neither read, write nor nodata */
    const command both[] = {{"newcmd", noop, 1, CMD_READONLY | CMD_NODATA, 0, 0, 0, "g", "", "1"}};
    CHECK(cmd_table_check(both, 1) != NULL);
    const command keyless[] = {{"newcmd", noop, 1, CMD_READONLY, 0, 0, 0, "generic", "", "1"}};
    CHECK(cmd_table_check(keyless, 1) != NULL); /* data without keys must say CMD_KEYSPACE */
    const command subs[] = {{"other|x", noop, 2, CMD_NODATA, 0, 0, 0, "g", "", "1"}};
    const command parent[] = {{"newcmd", NULL, -2, 0, 0, 0, 0, "g", "", "1", CMD_SUBS(subs)}};
    CHECK(cmd_table_check(parent, 1) != NULL); /* subcommand not named newcmd|... */
    const command ok_subs[] = {{"newcmd|x", noop, 2, CMD_NODATA, 0, 0, 0, "g", "", "1"}};
    const command ok[] = {{"newcmd", NULL, -2, 0, 0, 0, 0, "g", "", "1", CMD_SUBS(ok_subs)},
                          {"newread", noop, 1, CMD_READONLY | CMD_KEYSPACE, 0, 0, 0, "g", "", "1"}};
    CHECK(cmd_table_check(ok, 2) == NULL);
}

/* Routing: only CMD_NODATA is local; a data command without keys reads the
 * whole keyspace (waits for the whole log), never "runs here unnoticed". */
static void test_routing_decisions_come_from_the_row(void) {
    const command keyless_read = {"newread", noop, 1, CMD_READONLY | CMD_KEYSPACE, 0, 0, 0, "g",
                                  "", "1"};
    const command forgot = {"forgot", noop, 1, 0, 0, 0, 0, "g", "", "1"};
    cmd_verdict v = {.cmd = &keyless_read};
    cmd_keys_init(&v.keys);
    CHECK_EQ_LL(cmd_access(&keyless_read), CMD_ACCESS_READ);
    CHECK(cmd_whole_keyspace(&v));
    CHECK_EQ_LL(cmd_access(&forgot), CMD_ACCESS_READ); /* not local */
    v.cmd = &forgot;
    CHECK(cmd_whole_keyspace(&v));
    const command *ping = cmd_lookup("ping", 4), *get = cmd_lookup("GET", 3);
    CHECK_EQ_LL(cmd_access(ping), CMD_ACCESS_NONE);
    CHECK_EQ_LL(cmd_access(get), CMD_ACCESS_READ);
    CHECK_EQ_LL(cmd_access(cmd_lookup("flushall", 8)), CMD_ACCESS_WRITE);
    cmd_arg argv[2] = {A("GET"), A("k")};
    v.cmd = get;
    CHECK_EQ_LL(cmd_get_keys(get, 2, argv, &v.keys), 1);
    CHECK(!cmd_whole_keyspace(&v));
    cmd_keys_free(&v.keys);
    v.cmd = cmd_lookup("dbsize", 6);
    CHECK(cmd_whole_keyspace(&v));
}

static void test_subcommands_resolve(void) {
    const command *xgroup = cmd_lookup("XGROUP", 6);
    CHECK(xgroup && xgroup->nsubs >= 6 && xgroup->fn == NULL);
    const command *create = cmd_lookup_sub(xgroup, "Create", 6);
    CHECK(create && !strcmp(create->name, "xgroup|create"));
    CHECK(create->flags & CMD_WRITE);
    const command *help = cmd_lookup_full("xgroup|help", 11);
    CHECK(help && (help->flags & CMD_NODATA) && !(help->flags & CMD_WRITE));
    CHECK(cmd_lookup_full("xgroup|nosuch", 13) == NULL);
    CHECK(cmd_lookup_full("get|x", 5) == NULL);
    cmd_arg argv[3] = {A("client"), A("LIST")};
    CHECK(cmd_row_of(2, argv, 0) == cmd_lookup_full("client|list", 11));
    CHECK(cmd_row_of(1, argv, 0) == cmd_lookup("client", 6));
    argv[1] = A("nosuch");
    CHECK(cmd_row_of(2, argv, 0) == NULL);
}

static int keys_of(const char *name, int argc, const cmd_arg *argv, int *out) {
    const command *cmd = cmd_row_of(argc, argv, 0);
    if (!cmd) return -1;
    cmd_keys k;
    cmd_keys_init(&k);
    int n = cmd_get_keys(cmd, argc, argv, &k);
    for (int i = 0; i < n; i++) out[i] = cmd_keys_at(&k, i);
    cmd_keys_free(&k);
    return n;
}

static void test_keys_from_positions_and_getkeys(void) {
    int pos[64];
    cmd_arg mset[5] = {A("MSET"), A("a"), A("1"), A("b"), A("2")};
    CHECK_EQ_LL(keys_of("mset", 5, mset, pos), 2);
    CHECK(pos[0] == 1 && pos[1] == 3);
    cmd_arg xr[8] = {A("XREAD"), A("COUNT"), A("2"), A("STREAMS"), A("a"), A("b"), A("0"), A("$")};
    CHECK_EQ_LL(keys_of("xread", 8, xr, pos), 2);
    CHECK(pos[0] == 4 && pos[1] == 5);
    cmd_arg xrg[9] = {A("XREADGROUP"), A("GROUP"), A("g"), A("c"), A("NOACK"), A("STREAMS"),
                      A("s"), A(">"), A("x")};
    CHECK_EQ_LL(keys_of("xreadgroup", 8, xrg, pos), 1);
    CHECK(pos[0] == 6);
    CHECK_EQ_LL(keys_of("xreadgroup", 9, xrg, pos), 0); /* unbalanced: no keys, the handler refuses */
    cmd_arg xg[5] = {A("XGROUP"), A("CREATE"), A("s"), A("g"), A("$")};
    CHECK_EQ_LL(keys_of("xgroup", 5, xg, pos), 1);
    CHECK(pos[0] == 2);
    cmd_arg many[40] = {A("XREAD"), A("STREAMS")};
    for (int i = 2; i < 40; i++) many[i] = A("k");
    CHECK_EQ_LL(keys_of("xread", 40, many, pos), 19); /* beyond the inline array */
}

static int blind(const char *const *args, int argc, int *pairs) {
    cmd_arg argv[16];
    for (int i = 0; i < argc; i++) argv[i] = A(args[i]);
    const command *cmd = cmd_row_of(argc, argv, 0);
    if (!cmd->blind) return -2;
    cmd_keys k;
    cmd_keys_init(&k);
    int rc = cmd->blind(argc, argv, &k);
    for (int i = 0; i < k.n; i++) pairs[i] = cmd_keys_at(&k, i);
    if (rc == 0) rc = k.n;
    cmd_keys_free(&k);
    return rc;
}

#define BLIND(pairs, ...)                                                      \
    blind((const char *const[]){__VA_ARGS__},                                  \
          (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)), pairs)

static void test_blind_writes_are_what_the_command_accepts(void) {
    int p[16];
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v"), 2);
    CHECK(p[0] == 1 && p[1] == 2);
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "EX", "10"), 2);
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "KEEPTTL"), 2);
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "NX"), -1);
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "GET"), -1);
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "KEEPTTL", "EX", "10"), -1); /* SET refuses it */
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "EX", "10", "PX", "10"), -1);
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "EX", "0"), -1);
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "EX", "9223372036854775807"), -1);
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "PX", "18446744073709551615"), -1);
    CHECK_EQ_LL(BLIND(p, "SET", "k", "v", "EX"), -1);
    CHECK_EQ_LL(BLIND(p, "SETEX", "k", "10", "v"), 2);
    CHECK(p[0] == 1 && p[1] == 3);
    CHECK_EQ_LL(BLIND(p, "PSETEX", "k", "-1", "v"), -1);
    CHECK_EQ_LL(BLIND(p, "MSET", "a", "1", "b", "2"), 4);
    CHECK(p[2] == 3 && p[3] == 4);
    CHECK_EQ_LL(BLIND(p, "MSET", "a", "1", "b"), -1);
    CHECK_EQ_LL(BLIND(p, "GET", "k"), -2); /* not a write at all */
}

static void test_flag_names(void) {
    const char *names[16];
    const command *xread = cmd_lookup("xread", 5);
    size_t n = cmd_flag_names(xread, names, 16);
    int movable = 0, blocking = 0;
    for (size_t i = 0; i < n; i++) {
        movable |= !strcmp(names[i], "movablekeys");
        blocking |= !strcmp(names[i], "blocking");
    }
    CHECK(movable && blocking);
}

/* Only a row flagged CMD_BLOCKING may park its client. */
static void test_only_blocking_rows_park(void) {
    cmd_harness *h = h_new();
    cmd_arg key = A("k");
    cmd_ctx c = {.env = &h->env, .sess = &h->sess[0], .out = &h->out[0], .argc = 1, .argv = &key};
    c.cmd = cmd_lookup("get", 3);
    CHECK_EQ_LL(cmd_block_on_keys(&c, 1, &key, 1, &key, 0), -1);
    CHECK_EQ_LL(h->parked, 0);
    c.cmd = cmd_lookup("xread", 5);
    CHECK_EQ_LL(cmd_block_on_keys(&c, 1, &key, 1, &key, 0), 0);
    CHECK_EQ_LL(h->parked, 1);
    h_free(h);
}

int main(void) {
    RUN(test_every_row_passes_the_check);
    RUN(test_only_blocking_rows_park);
    RUN(test_check_refuses_rows_that_say_too_little);
    RUN(test_routing_decisions_come_from_the_row);
    RUN(test_subcommands_resolve);
    RUN(test_keys_from_positions_and_getkeys);
    RUN(test_blind_writes_are_what_the_command_accepts);
    RUN(test_flag_names);
    return check_summary("cmd_table");
}
