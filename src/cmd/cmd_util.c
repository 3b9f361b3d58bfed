/* cmd_util.c - small helpers shared by command handlers: argument
 * parsing with Redis error replies, keyspace lookups that keep the
 * hit/miss statistics, and error texts that name the command. */
#include <stdlib.h>
#include <string.h>

#include "cmd/command.h"

#include "lib/util.h"

/* Handlers are reached through the table, so c->cmd is normally set; the
 * fallback only keeps an error path from dereferencing NULL. */
static const char *current_name(const cmd_ctx *c) {
    return c->cmd != NULL ? c->cmd->name : "";
}

void reply_arity_error(cmd_ctx *c) {
    reply_errorf(c->out, "ERR wrong number of arguments for '%s' command",
                 current_name(c));
}

/* argv[0] upper-cased (at most 64 bytes, C-string semantics): Redis names
 * a container so in its subcommand errors. */
static void upper_argv0(const cmd_ctx *c, char *buf, size_t len) {
    size_t n = strnlen(c->argv[0].p, c->argv[0].n);
    if (n > len - 1) n = len - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = c->argv[0].p[i];
        buf[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
    buf[n] = 0;
}

void reply_unknown_subcommand(cmd_ctx *c) {
    char parent[65];
    upper_argv0(c, parent, sizeof parent);
    size_t n = strnlen(c->argv[1].p, c->argv[1].n);
    reply_errorf(c->out, "ERR unknown subcommand '%.*s'. Try %s HELP.", (int)(n < 128 ? n : 128),
                 c->argv[1].p, parent);
}

void reply_subcommand_syntax_error(cmd_ctx *c) {
    char parent[65];
    upper_argv0(c, parent, sizeof parent);
    size_t n = strnlen(c->argv[1].p, c->argv[1].n);
    reply_errorf(c->out,
                 "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try %s HELP.",
                 (int)(n < 128 ? n : 128), c->argv[1].p, parent);
}

void reply_help_lines(cmd_ctx *c, const char *const *lines, size_t n) {
    reply_array(c->out, n);
    for (size_t i = 0; i < n; i++) reply_status(c->out, lines[i]);
}

void reply_expire_time_error(cmd_ctx *c) {
    reply_errorf(c->out, "ERR invalid expire time in '%s' command",
                 current_name(c));
}

int arg_ll(cmd_ctx *c, int i, long long *out) {
    if (i < c->argc && util_parse_ll(c->argv[i].p, c->argv[i].n, out))
        return 1;
    reply_error(c->out, ERR_NOT_INT);
    return 0;
}

/* Redis compares option words with strcasecmp on the C string, so an
 * argument ends at its first NUL byte ("NX\0junk" is NX); do the same. */
int cmd_arg_is(const cmd_arg *a, const char *kw) {
    const char *nul = memchr(a->p, '\0', a->n);
    size_t len = nul != NULL ? (size_t)(nul - a->p) : a->n;
    return util_eq_ci(a->p, len, kw);
}

int arg_is(const cmd_ctx *c, int i, const char *kw) {
    return i < c->argc && cmd_arg_is(&c->argv[i], kw);
}

kv *key_lookup_write(cmd_ctx *c, int i) {
    return ks_find(c->env->ks, c->argv[i].p, c->argv[i].n, c->now_ms);
}

kv *key_lookup_read(cmd_ctx *c, int i) {
    kv *e = key_lookup_write(c, i);
    if (c->stats == NULL) /* e.g. replaying a log: no client to count for */
        return e;
    if (e != NULL)
        STAT_ADD(c->stats->keyspace_hits, 1);
    else
        STAT_ADD(c->stats->keyspace_misses, 1);
    return e;
}

void cmd_propagate_as(cmd_ctx *c, int argc, const cmd_arg *argv) {
    if (argc > CMD_PROP_MAX_ARGS) abort(); /* a programming error, not input */
    for (int i = 0; i < argc; i++) c->prop_argv[i] = argv[i];
    c->prop_argc = argc;
}

cmd_arg cmd_prop_ll(cmd_ctx *c, long long v) {
    size_t n = util_ll2str(c->prop_num, sizeof c->prop_num, v);
    return (cmd_arg){c->prop_num, n};
}

cmd_arg cmd_prop_lit(const char *s) { return (cmd_arg){s, strlen(s)}; }

int cmd_block_on_keys(cmd_ctx *c, int nkeys, const cmd_arg *keys, int argc, const cmd_arg *argv,
                      long long timeout_ms) {
    const cmd_host *h = c->env->host;
    if (!(c->cmd->flags & CMD_BLOCKING) || !h || !h->block_on_keys) return -1;
    return h->block_on_keys(c->env->host_arg, c->sess, nkeys, keys, argc, argv, timeout_ms);
}

void cmd_propagate_record(cmd_ctx *c, int argc, const cmd_arg *argv) {
    c->prop_done = 1;
    cmd_env *env = c->env;
    if (!env->propagate || argc < 1) return;
    c->aof_end = env->propagate(env->propagate_arg, argv[0], argc, argv);
}
