/* command_table.c - the one lookup table of every command, and the
 * dispatcher that checks, locks and runs a command. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../server/config.h"
#include "../store/evict.h"
#include "command.h"

#define EVICT_BUDGET_US 2000 /* eviction time per command once progressing */

#define NAME_MAX_LEN 64
#define TABLE_SLOTS 512 /* power of two, > 2x the number of commands */

#define RENAMES_MAX 64

/* The lookup: open addressing over (name, row). The name is the row's own
 * unless rename-command changed it, so renaming is data, not code. */
typedef struct slot {
    const char *name;
    const command *cmd;
} slot;

static slot slots[TABLE_SLOTS];
static slot row_slots[TABLE_SLOTS];       /* by the rows' own names, never renamed */
static const command *all[TABLE_SLOTS];   /* reachable rows (COMMAND lists them) */
static const char *all_names[TABLE_SLOTS];
static size_t ncommands;
static char rename_store[RENAMES_MAX][NAME_MAX_LEN + 1];
static size_t nrenamed;

static const struct {
    const command *rows;
    const size_t *count;
} families[] = {
    {strings_commands, &strings_commands_count},
    {keys_commands, &keys_commands_count},
    {server_commands, &server_commands_count},
    {persist_commands, &persist_commands_count},
    {streams_commands, &streams_commands_count},
    {streams_batch_commands, &streams_batch_commands_count},
    {pubsub_commands, &pubsub_commands_count},
};

/* ASCII lower case without the locale machinery of tolower(): command
 * lookup runs once per request. */
static inline unsigned char ascii_lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a over lower-cased bytes */
    for (size_t i = 0; i < n; i++) h = (h ^ ascii_lower((unsigned char)s[i])) * 16777619u;
    return h;
}

/* Does the NUL-terminated table name equal name[0..n), ignoring case? */
static int name_equals(const char *table_name, const char *name, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!table_name[i] ||
            ascii_lower((unsigned char)table_name[i]) != ascii_lower((unsigned char)name[i]))
            return 0;
    return table_name[n] == 0;
}

static int slot_insert(slot *table, const char *name, const command *cmd) {
    uint32_t i = name_hash(name, strlen(name)) & (TABLE_SLOTS - 1);
    while (table[i].cmd) {
        if (!strcasecmp(table[i].name, name)) return -1;
        i = (i + 1) & (TABLE_SLOTS - 1);
    }
    table[i] = (slot){name, cmd};
    return 0;
}

static const command *slot_find(const slot *table, const char *name, size_t len) {
    if (len == 0 || len > NAME_MAX_LEN) return NULL;
    uint32_t i = name_hash(name, len) & (TABLE_SLOTS - 1);
    for (; table[i].cmd; i = (i + 1) & (TABLE_SLOTS - 1))
        if (name_equals(table[i].name, name, len)) return table[i].cmd;
    return NULL;
}

/* Rows that answer to their name but are no commands (CMD_XPROTO): in
 * the lookup, never in all[] (COMMAND) and never renamed. */
static void insert_unlisted(void) {
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (size_t i = 0; i < *families[f].count; i++)
            if (families[f].rows[i].flags & CMD_XPROTO)
                slot_insert(slots, families[f].rows[i].name, &families[f].rows[i]);
}

static void table_insert(const command *cmd) {
    slot_insert(row_slots, cmd->name, cmd);
    if (cmd->flags & CMD_XPROTO) return; /* insert_unlisted */
    if (slot_insert(slots, cmd->name, cmd) < 0) {
        log_warn("duplicate command '%s' in the command table", cmd->name);
        return;
    }
    all_names[ncommands] = cmd->name;
    all[ncommands++] = cmd;
}

/* Rebuild the lookup from all[] / all_names[] (after a rename). */
static void rebuild_slots(void) {
    memset(slots, 0, sizeof slots);
    for (size_t k = 0; k < ncommands; k++) slot_insert(slots, all_names[k], all[k]);
    insert_unlisted();
}

int cmd_table_rename(const char *from, const char *to, char *err, size_t errlen) {
    const command *cmd = cmd_lookup(from, strlen(from));
    if (!cmd || (cmd->flags & CMD_XPROTO)) {
        snprintf(err, errlen, "No such command in rename-command");
        return -1;
    }
    if (*to && cmd_lookup(to, strlen(to))) {
        snprintf(err, errlen, "Target command name already exists");
        return -1;
    }
    if (strlen(to) > NAME_MAX_LEN || nrenamed == RENAMES_MAX) {
        snprintf(err, errlen, "rename-command name too long or too many renames");
        return -1;
    }
    size_t k = 0;
    while (all[k] != cmd) k++;
    if (*to) {
        /* Still listed by COMMAND under its own name, as in Redis. */
        snprintf(rename_store[nrenamed], sizeof rename_store[0], "%s", to);
        all_names[k] = rename_store[nrenamed++];
    } else {
        memmove(&all[k], &all[k + 1], (ncommands - k - 1) * sizeof all[0]);
        memmove(&all_names[k], &all_names[k + 1], (ncommands - k - 1) * sizeof all_names[0]);
        ncommands--;
    }
    rebuild_slots();
    return 0;
}

/* Called once from server_init before any thread runs; the table is
 * read-only afterwards, so lookups need no lock. */
void cmd_table_init(void) {
    if (ncommands) return;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (size_t i = 0; i < *families[f].count; i++) table_insert(&families[f].rows[i]);
    insert_unlisted();
}

const command *cmd_lookup(const char *name, size_t len) {
    return slot_find(slots, name, len);
}

const command *cmd_lookup_row(const char *name, size_t len) {
    return slot_find(row_slots, name, len);
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

/* RESP2 subscriber mode: the connection carries pushed messages, so only
 * commands whose replies cannot be confused with them may run. */
static int allowed_when_subscribed(const command *cmd) {
    static const char *const ok[] = {"subscribe", "unsubscribe", "psubscribe", "punsubscribe",
                                     "ssubscribe", "sunsubscribe", "ping", "quit", "reset"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(cmd->name, ok[i])) return 1;
    return 0;
}

/* Redis names a container command's subcommand as "parent|sub". */
static int is_container(const command *cmd) {
    static const char *const names[] = {"client", "config", "command", "object", "memory",
                                        "xgroup", "xinfo", "pubsub", "acl", "slowlog",
                                        "latency", "script", "function", "cluster", "module"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(cmd->name, names[i])) return 1;
    return 0;
}

static void reply_not_in_subscribe_context(cmd_ctx *c) {
    char sub[64] = "";
    if (is_container(c->cmd) && c->argc >= 2) {
        size_t n = c->argv[1].n < sizeof sub - 2 ? c->argv[1].n : sizeof sub - 2;
        sub[0] = '|';
        for (size_t i = 0; i < n; i++) sub[i + 1] = (char)tolower((unsigned char)c->argv[1].p[i]);
        sub[n + 1] = 0;
    }
    reply_errorf(c->out,
                 "ERR Can't execute '%s%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                 "PING / QUIT / RESET are allowed in this context",
                 c->cmd->name, sub);
}

static int arity_ok(const command *cmd, int argc) {
    return cmd->arity >= 0 ? argc == cmd->arity : argc >= -cmd->arity;
}

int cmd_key_span(const command *cmd, int argc, int *first, int *last, int *step) {
    if (cmd->first_key <= 0 || (cmd->flags & CMD_NOKEYS)) return 0;
    *first = cmd->first_key;
    *last = cmd->last_key >= 0 ? cmd->last_key : argc + cmd->last_key;
    if (*last >= argc) *last = argc - 1;
    *step = cmd->key_step > 0 ? cmd->key_step : 1;
    return *last < *first ? 0 : (*last - *first) / *step + 1;
}

/* Add every key named by the key spec to the lockset. */
static void collect_keys(const cmd_ctx *c, ks_lockset *ls) {
    int first, last, step;
    ks_lockset_clear(ls);
    if (!cmd_key_span(c->cmd, c->argc, &first, &last, &step)) return;
    for (int i = first; i <= last; i += step)
        ks_lockset_add(c->env->ks, ls, c->argv[i].p, c->argv[i].n);
}

/* After a handler that changed the dataset: count the changes and log the
 * command (or its cmd_propagate_as replacement) to the AOF. Runs before
 * the locks are released, so for any key the log order is the execution
 * order across loop threads. */
static void after_write(cmd_ctx *c) {
    if (c->stats) STAT_ADD(c->stats->dirty, c->dirty);
    cmd_env *env = c->env;
    if (!env->propagate) return;
    if (c->prop_done) {
        /* the handler logged its own records */
    } else if (c->prop_argc) {
        c->aof_end = env->propagate(env->propagate_arg, c->prop_argv[0], c->prop_argc,
                                    c->prop_argv);
    } else {
        /* The table's name, not argv[0]: a renamed command is logged under
         * the name the replay looks up. */
        cmd_arg name = {c->cmd->name, strlen(c->cmd->name)};
        c->aof_end = env->propagate(env->propagate_arg, name, c->argc, c->argv);
    }
    if (env->propagate_end) env->propagate_end(env->propagate_arg, c);
}

/* Run the handler with the given shards locked. */
static void run_locked(cmd_ctx *c, const ks_lockset *ls) {
    ks_lock(c->env->ks, ls);
    c->cmd->fn(c);
    if (c->dirty) after_write(c);
    ks_unlock(c->env->ks, ls);
}

/* One key (GET, SET, INCR...): lock its shard directly, without building
 * and scanning a lockset bitmap. */
static void run_single_key(cmd_ctx *c) {
    const cmd_arg *key = &c->argv[c->cmd->first_key];
    unsigned shard = ks_shard_of(c->env->ks, key->p, key->n);
    ks_lock_shard(c->env->ks, shard);
    c->cmd->fn(c);
    if (c->dirty) after_write(c);
    ks_unlock_shard(c->env->ks, shard);
}

/* maxmemory: before a command that may grow memory (and before its keys
 * are locked: eviction locks shards itself), evict per policy until used
 * memory is under the limit. Returns 0 when it is still over: noeviction,
 * nothing the policy may evict. Eviction stops after a time budget once it
 * has made progress and lets the command run (Redis's "eviction still
 * running"): the next write continues, so latency stays bounded after a
 * big CONFIG SET maxmemory drop. */
static int enforce_maxmemory(cmd_ctx *c) {
    const struct pier_config *cfg = c->env->cfg;
    long long max = CFG_GET(cfg->maxmemory);
    const cmd_host *h = c->env->host;
    if (max <= 0 || h->used_memory(c->env->host_arg) <= (size_t)max) return 1;
    if (!c->sess->evict_pool) c->sess->evict_pool = evict_pool_new();
    int policy = CFG_GET(cfg->maxmemory_policy);
    int samples = (int)CFG_GET(cfg->maxmemory_samples);
    int64_t deadline_us = clock_mono_us() + EVICT_BUDGET_US;
    for (unsigned n = 1; h->used_memory(c->env->host_arg) > (size_t)max; n++) {
        if (!evict_one(c->env->ks, c->sess->evict_pool, policy, samples, c->now_ms)) return 0;
        if (n % 16 == 0 && clock_mono_us() > deadline_us) return 1;
    }
    return 1;
}

/* -MISCONF (Redis's writeCommandsDeniedByDiskError and its texts): the
 * last background save failed while stop-writes-on-bgsave-error is yes
 * and save rules are set, or the AOF cannot be written. Returns 1 when it
 * refused the command. */
static int refuse_on_disk_error(cmd_ctx *c) {
    const cmd_disk_status *d = c->env->disk;
    const struct pier_config *cfg = c->env->cfg;
    if (atomic_load_explicit(&d->bgsave_failed, memory_order_relaxed) &&
        CFG_GET(cfg->stop_writes_on_bgsave_error) && CFG_GET(cfg->save_nrules) > 0) {
        reply_error(c->out, ERR_MISCONF_RDB);
        return 1;
    }
    int e = atomic_load_explicit(&d->aof_errno, memory_order_relaxed);
    if (!e) return 0;
    char buf[128];
    reply_errorf(c->out, ERR_MISCONF_AOF_PREFIX "%s", strerror_r(e, buf, sizeof buf));
    return 1;
}

static inline int disk_failing(const cmd_ctx *c) {
    const cmd_disk_status *d = c->env->disk;
    return d && (atomic_load_explicit(&d->bgsave_failed, memory_order_relaxed) |
                 atomic_load_explicit(&d->aof_errno, memory_order_relaxed));
}

void cmd_execute(cmd_ctx *c) {
    /* A replayed AOF names rows by their own names (after_write logs
     * cmd->name), whatever rename-command says now. */
    const cmd_arg *name = &c->argv[0];
    const command *cmd = (c->sess->flags & SESS_REPLAY) ? cmd_lookup_row(name->p, name->n)
                                                      : cmd_lookup(name->p, name->n);
    if (!cmd) {
        c->sess->last_cmd = "unknown";
        reply_unknown_command(c);
        return;
    }
    c->cmd = cmd;
    c->sess->last_cmd = cmd->name;
    if (cmd->flags & CMD_XPROTO) { /* no check applies: the handler hangs up */
        cmd->fn(c);
        return;
    }
    if (!arity_ok(cmd, c->argc)) {
        reply_arity_error(c);
        return;
    }
    /* As in Redis, a connection made while no password was set stays
     * authenticated when one is set, and clearing requirepass lets every
     * connection in. */
    if (!c->sess->authenticated && !(cmd->flags & CMD_NOAUTH) &&
        c->env->host->auth_required(c->env->host_arg)) {
        reply_error(c->out, "NOAUTH Authentication required.");
        return;
    }
    if ((cmd->flags & CMD_DENYOOM) && !(c->sess->flags & SESS_REPLAY) &&
        !enforce_maxmemory(c)) {
        reply_error(c->out, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    if ((cmd->flags & (CMD_WRITE | CMD_DENY_DISKERR)) && disk_failing(c) &&
        !(c->sess->flags & SESS_REPLAY) && refuse_on_disk_error(c))
        return;
    if (c->sess->subscriptions > 0 && c->sess->proto == 2 && !allowed_when_subscribed(cmd)) {
        reply_not_in_subscribe_context(c);
        return;
    }
    ks_lockset ls;
    if (cmd->flags & CMD_ALLSHARDS) {
        ks_lockset_all(&ls);
        run_locked(c, &ls);
        return;
    }
    if ((cmd->flags & CMD_NOKEYS) || cmd->first_key == 0) {
        cmd->fn(c);
        if (c->dirty) after_write(c);
        return;
    }
    if (cmd->first_key == cmd->last_key) {
        run_single_key(c);
        return;
    }
    collect_keys(c, &ls);
    run_locked(c, &ls);
}
