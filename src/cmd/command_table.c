/* command_table.c - the one lookup table of every command, and the
 * dispatcher that checks, locks and runs a command. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "../lib/log.h"
#include "command.h"

#define NAME_MAX_LEN 64
#define TABLE_SLOTS 512 /* power of two, > 2x the number of commands */

static const command *slots[TABLE_SLOTS];
static const command *all[TABLE_SLOTS];
static size_t ncommands;

static const struct {
    const command *rows;
    const size_t *count;
} families[] = {
    {strings_commands, &strings_commands_count},
    {keys_commands, &keys_commands_count},
    {server_commands, &server_commands_count},
};

static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a over lower-cased bytes */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)tolower((unsigned char)s[i])) * 16777619u;
    return h;
}

static void table_insert(const command *cmd) {
    uint32_t i = name_hash(cmd->name, strlen(cmd->name)) & (TABLE_SLOTS - 1);
    while (slots[i]) {
        if (!strcmp(slots[i]->name, cmd->name)) {
            log_warn("duplicate command '%s' in the command table", cmd->name);
            return;
        }
        i = (i + 1) & (TABLE_SLOTS - 1);
    }
    slots[i] = cmd;
    all[ncommands++] = cmd;
}

/* Called once from server_init before any thread runs; the table is
 * read-only afterwards, so lookups need no lock. */
void cmd_table_init(void) {
    if (ncommands) return;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (size_t i = 0; i < *families[f].count; i++) table_insert(&families[f].rows[i]);
}

const command *cmd_lookup(const char *name, size_t len) {
    if (len == 0 || len > NAME_MAX_LEN) return NULL;
    uint32_t i = name_hash(name, len) & (TABLE_SLOTS - 1);
    for (const command *c; (c = slots[i]); i = (i + 1) & (TABLE_SLOTS - 1))
        if (strlen(c->name) == len && !strncasecmp(c->name, name, len)) return c;
    return NULL;
}

size_t cmd_count(void) { return ncommands; }
const command *cmd_at(size_t i) { return i < ncommands ? all[i] : NULL; }

size_t cmd_flag_names(uint32_t flags, const char **out, size_t max) {
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {CMD_WRITE, "write"},   {CMD_READONLY, "readonly"}, {CMD_DENYOOM, "denyoom"},
        {CMD_ADMIN, "admin"},   {CMD_PUBSUB, "pubsub"},     {CMD_LOADING, "loading"},
        {CMD_STALE, "stale"},   {CMD_NOAUTH, "no_auth"},    {CMD_FAST, "fast"},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < max; i++)
        if (flags & names[i].bit) out[n++] = names[i].name;
    return n;
}

/* "ERR unknown command 'x', with args beginning with: 'a' 'b' " exactly as
 * Redis builds it: C-string semantics (stops at NUL) and at most ~128
 * bytes of arguments. */
static void reply_unknown_command(cmd_ctx *c) {
    char args[512] = "";
    size_t used = 0;
    for (int i = 1; i < c->argc && used < 128; i++) {
        int room = 128 - (int)used;
        size_t n = strnlen(c->argv[i].p, c->argv[i].n);
        int w = snprintf(args + used, sizeof args - used, "'%.*s' ",
                         (int)(n < (size_t)room ? n : (size_t)room), c->argv[i].p);
        if (w > 0) used += (size_t)w;
    }
    size_t nn = strnlen(c->argv[0].p, c->argv[0].n);
    reply_errorf(c->out, "ERR unknown command '%.*s', with args beginning with: %s",
                 (int)(nn < 128 ? nn : 128), c->argv[0].p, args);
}

static int arity_ok(const command *cmd, int argc) {
    return cmd->arity >= 0 ? argc == cmd->arity : argc >= -cmd->arity;
}

/* Add every key named by the key spec to the lockset. */
static void collect_keys(const cmd_ctx *c, ks_lockset *ls) {
    const command *cmd = c->cmd;
    int last = cmd->last_key >= 0 ? cmd->last_key : c->argc + cmd->last_key;
    int step = cmd->key_step > 0 ? cmd->key_step : 1;
    ks_lockset_clear(ls);
    for (int i = cmd->first_key; i <= last && i < c->argc; i += step)
        ks_lockset_add(c->env->ks, ls, c->argv[i].p, c->argv[i].n);
}

void cmd_execute(cmd_ctx *c) {
    const command *cmd = cmd_lookup(c->argv[0].p, c->argv[0].n);
    if (!cmd) {
        c->sess->last_cmd = "unknown";
        reply_unknown_command(c);
        return;
    }
    c->cmd = cmd;
    c->sess->last_cmd = cmd->name;
    if (!arity_ok(cmd, c->argc)) {
        reply_arity_error(c);
        return;
    }
    if (!c->sess->authenticated && !(cmd->flags & CMD_NOAUTH)) {
        reply_error(c->out, "NOAUTH Authentication required.");
        return;
    }
    if ((cmd->flags & CMD_NOKEYS) || cmd->first_key == 0) {
        cmd->fn(c);
        return;
    }
    ks_lockset ls;
    collect_keys(c, &ls);
    ks_lock(c->env->ks, &ls);
    cmd->fn(c);
    ks_unlock(c->env->ks, &ls);
}
