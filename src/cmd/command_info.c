/* command_info.c - COMMAND and its subcommands (COUNT, INFO, DOCS, LIST,
 * GETKEYS, HELP): the command table described to clients, as Redis 7.0
 * replies it. Everything comes from the rows (command.h): names, arity,
 * flags, key positions, subcommands; getkeys answers COMMAND GETKEYS. */
#include <string.h>

#include "../lib/util.h"
#include "command.h"

#define INFO_FLAGS_MAX 16
#define INFO_CATS_MAX 8

/* ACL categories as Redis derives them: read/write, the data-type family,
 * fast/slow; admin commands are also dangerous. A container itself is
 * only @slow (its subcommands carry the rest). */
static size_t acl_categories(const command *cmd, const char **out) {
    size_t n = 0;
    if (cmd->flags & CMD_WRITE) out[n++] = "@write";
    if (cmd->flags & CMD_READONLY) out[n++] = "@read";
    if (cmd->nsubs) {
        out[n++] = "@slow";
        return n;
    }
    if (!strcmp(cmd->group, "string")) out[n++] = "@string";
    else if (!strcmp(cmd->group, "generic")) out[n++] = "@keyspace";
    else if (!strcmp(cmd->group, "connection")) out[n++] = "@connection";
    if (cmd->flags & CMD_DOC_PUBSUB) out[n++] = "@pubsub";
    out[n++] = (cmd->flags & CMD_DOC_FAST) ? "@fast" : "@slow";
    if (cmd->flags & CMD_BLOCKING) out[n++] = "@blocking";
    if (cmd->flags & CMD_DOC_ADMIN) {
        out[n++] = "@admin";
        out[n++] = "@dangerous";
    }
    return n;
}

/* One row as COMMAND INFO's 10-element array; a container's subcommands
 * nested as the tenth. Key specs are not reproduced (empty). */
static void info_one(cmd_ctx *c, const command *cmd) {
    const char *flags[INFO_FLAGS_MAX], *cats[INFO_CATS_MAX];
    size_t nf = cmd_flag_names(cmd, flags, INFO_FLAGS_MAX);
    size_t nc = acl_categories(cmd, cats);
    reply_array(c->out, 10);
    reply_bulk_cstr(c->out, cmd->name);
    reply_int(c->out, cmd->arity);
    reply_set(c->out, nf);
    for (size_t i = 0; i < nf; i++) reply_status(c->out, flags[i]);
    reply_int(c->out, cmd->first_key);
    reply_int(c->out, cmd->last_key);
    reply_int(c->out, cmd->key_step);
    reply_set(c->out, nc);
    for (size_t i = 0; i < nc; i++) reply_status(c->out, cats[i]);
    reply_array(c->out, 0); /* tips */
    reply_array(c->out, 0); /* key specs */
    reply_array(c->out, cmd->nsubs);
    for (size_t i = 0; i < cmd->nsubs; i++) info_one(c, &cmd->subs[i]);
}

static void info_all(cmd_ctx *c) {
    reply_array(c->out, cmd_count());
    for (size_t i = 0; i < cmd_count(); i++) info_one(c, cmd_at(i));
}

/* The row COMMAND INFO/DOCS/GETKEYS may show for a name ("parent|sub"
 * included): CMD_XPROTO rows are no commands. */
static const command *lookup_listed(const cmd_arg *a) {
    const command *cmd = cmd_lookup_full(a->p, a->n);
    return cmd && !(cmd->flags & CMD_XPROTO) ? cmd : NULL;
}

/* COMMAND (no subcommand): every command's details. */
static void command_cmd(cmd_ctx *c) { info_all(c); }

static void command_count(cmd_ctx *c) { reply_int(c->out, (long long)cmd_count()); }

/* COMMAND INFO [name ...]: "parent|sub" names a subcommand. */
static void command_info(cmd_ctx *c) {
    if (c->argc == 2) {
        info_all(c);
        return;
    }
    reply_array(c->out, (size_t)(c->argc - 2));
    for (int i = 2; i < c->argc; i++) {
        const command *cmd = lookup_listed(&c->argv[i]);
        if (cmd) info_one(c, cmd);
        else reply_null(c->out);
    }
}

static void docs_one(cmd_ctx *c, const command *cmd) {
    reply_bulk_cstr(c->out, cmd->name);
    reply_map(c->out, cmd->nsubs ? 4 : 3);
    reply_bulk_cstr(c->out, "summary");
    reply_bulk_cstr(c->out, cmd->summary ? cmd->summary : "");
    reply_bulk_cstr(c->out, "since");
    reply_bulk_cstr(c->out, cmd->since ? cmd->since : "1.0.0");
    reply_bulk_cstr(c->out, "group");
    reply_bulk_cstr(c->out, cmd->group ? cmd->group : "generic");
    if (!cmd->nsubs) return;
    reply_bulk_cstr(c->out, "subcommands");
    reply_map(c->out, cmd->nsubs);
    for (size_t i = 0; i < cmd->nsubs; i++) docs_one(c, &cmd->subs[i]);
}

/* COMMAND DOCS [name ...]: unknown names are left out. */
static void command_docs(cmd_ctx *c) {
    if (c->argc == 2) {
        reply_map(c->out, cmd_count());
        for (size_t i = 0; i < cmd_count(); i++) docs_one(c, cmd_at(i));
        return;
    }
    reply_deferred d = reply_defer(c->out);
    size_t n = 0;
    for (int i = 2; i < c->argc; i++) {
        const command *cmd = lookup_listed(&c->argv[i]);
        if (!cmd) continue;
        docs_one(c, cmd);
        n++;
    }
    reply_defer_set(c->out, d, REPLY_AGG_MAP, n);
}

/* Does COMMAND LIST's filter keep cmd? kind 0: none; 1: PATTERN (glob on
 * the name); 2: ACLCAT (category without '@'); 3: MODULE (pier has no
 * modules: nothing). */
static int list_keeps(const command *cmd, int kind, const cmd_arg *v) {
    if (kind == 0) return 1;
    if (kind == 1) return util_glob_match(v->p, v->n, cmd->name, strlen(cmd->name), 1);
    if (kind == 3) return 0;
    const char *cats[INFO_CATS_MAX];
    size_t nc = acl_categories(cmd, cats);
    for (size_t i = 0; i < nc; i++)
        if (util_eq_ci(v->p, v->n, cats[i] + 1)) return 1;
    return 0;
}

/* COMMAND LIST [FILTERBY MODULE name | ACLCAT cat | PATTERN pattern]:
 * every name, subcommands ("parent|sub") included, as Redis lists them. */
static void command_list(cmd_ctx *c) {
    int kind = 0;
    if (c->argc == 5 && arg_is(c, 2, "FILTERBY")) {
        kind = arg_is(c, 3, "PATTERN") ? 1 : arg_is(c, 3, "ACLCAT") ? 2 : arg_is(c, 3, "MODULE") ? 3 : -1;
    }
    if (kind < 0 || (c->argc != 2 && kind == 0)) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    const cmd_arg *v = kind ? &c->argv[4] : NULL;
    reply_deferred d = reply_defer(c->out);
    size_t n = 0;
    for (size_t i = 0; i < cmd_count(); i++) {
        const command *cmd = cmd_at(i);
        if (list_keeps(cmd, kind, v)) {
            reply_bulk_cstr(c->out, cmd->name);
            n++;
        }
        for (size_t j = 0; j < cmd->nsubs; j++) {
            if (!list_keeps(&cmd->subs[j], kind, v)) continue;
            reply_bulk_cstr(c->out, cmd->subs[j].name);
            n++;
        }
    }
    reply_defer_set(c->out, d, REPLY_AGG_ARRAY, n);
}

/* COMMAND GETKEYS command [arg ...]: the keys the row names for this
 * call (key positions or getkeys), with Redis 7.0's errors. */
static void command_getkeys(cmd_ctx *c) {
    int argc = c->argc - 2;
    const cmd_arg *argv = c->argv + 2;
    const command *cmd = cmd_row_of(argc, argv, 0);
    if (!cmd || (cmd->flags & CMD_XPROTO)) {
        reply_error(c->out, "ERR Invalid command specified");
        return;
    }
    if (cmd->first_key <= 0 && !cmd->getkeys) {
        reply_error(c->out, "ERR The command has no key arguments");
        return;
    }
    if (cmd->arity >= 0 ? argc != cmd->arity : argc < -cmd->arity) {
        reply_error(c->out, "ERR Invalid number of arguments specified for command");
        return;
    }
    cmd_keys keys;
    cmd_keys_init(&keys);
    if (cmd_get_keys(cmd, argc, argv, &keys) == 0) {
        reply_error(c->out, "ERR Invalid arguments specified for command");
    } else {
        reply_array(c->out, (size_t)keys.n);
        for (int i = 0; i < keys.n; i++) {
            const cmd_arg *k = &argv[cmd_keys_at(&keys, i)];
            reply_bulk(c->out, k->p, k->n);
        }
    }
    cmd_keys_free(&keys);
}

static void command_help(cmd_ctx *c) {
    static const char *const lines[] = {
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all Redis commands.",
        "COUNT",
        "    Return the total number of commands in this Redis server.",
        "LIST",
        "    Return a list of all commands in this Redis server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "GETKEYS <full-command>",
        "    Return the keys from a full Redis command.",
        "HELP",
        "    Prints this help.",
    };
    reply_help_lines(c, lines, sizeof lines / sizeof lines[0]);
}

#define NOKEYS 0, 0, 0
#define CMDF (CMD_NODATA | CMD_DOC_LOADING | CMD_DOC_STALE)

static const command command_subs[] = {
    {"command|count", command_count, 2, CMDF, NOKEYS, "server",
     "Get total number of Redis commands", "2.8.13"},
    {"command|info", command_info, -2, CMDF, NOKEYS, "server",
     "Get array of specific Redis command details, or all when no argument is given.", "2.8.13"},
    {"command|docs", command_docs, -2, CMDF, NOKEYS, "server",
     "Get array of specific Redis command documentation", "7.0.0"},
    {"command|list", command_list, -2, CMDF, NOKEYS, "server",
     "Get an array of Redis command names", "7.0.0"},
    {"command|getkeys", command_getkeys, -4, CMDF, NOKEYS, "server",
     "Extract keys given a full Redis command", "2.8.13"},
    {"command|help", command_help, 2, CMDF, NOKEYS, "server",
     "Show helpful text about the different subcommands", "5.0.0"},
};

const command command_info_commands[] = {
    {"command", command_cmd, -1, CMDF, NOKEYS, "server", "Get array of Redis command details",
     "2.8.13", CMD_SUBS(command_subs)},
};
const size_t command_info_commands_count =
    sizeof command_info_commands / sizeof command_info_commands[0];
