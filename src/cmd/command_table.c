/* command_table.c - the one lookup table of every command (names,
 * rename-command, subcommands), the rows' consistency check, and key
 * extraction (key positions or getkeys). The dispatcher that uses it is
 * dispatch.c. The only file that compares command names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/log.h"
#include "../lib/mem.h"
#include "command.h"

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
    {command_info_commands, &command_info_commands_count},
    {persist_commands, &persist_commands_count},
    {streams_commands, &streams_commands_count},
    {streams_group_commands, &streams_group_commands_count},
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
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        const char *bad = cmd_table_check(families[f].rows, *families[f].count);
        if (bad) {
            log_fatal("command table: %s", bad);
            abort();
        }
        for (size_t i = 0; i < *families[f].count; i++) table_insert(&families[f].rows[i]);
    }
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

size_t cmd_flag_names(const command *cmd, const char **out, size_t max) {
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {CMD_WRITE, "write"},          {CMD_READONLY, "readonly"},  {CMD_DENYOOM, "denyoom"},
        {CMD_DOC_ADMIN, "admin"},      {CMD_DOC_PUBSUB, "pubsub"},  {CMD_DOC_LOADING, "loading"},
        {CMD_DOC_STALE, "stale"},      {CMD_NOAUTH, "no_auth"},     {CMD_DOC_FAST, "fast"},
        {CMD_BLOCKING, "blocking"},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && n < max; i++)
        if (cmd->flags & names[i].bit) out[n++] = names[i].name;
    if (cmd->getkeys && n < max) out[n++] = "movablekeys";
    return n;
}

/* ---- subcommands ---- */

/* The part of a subcommand row's name after "parent|". */
static const char *sub_name(const command *sub) {
    const char *bar = strchr(sub->name, '|');
    return bar ? bar + 1 : sub->name;
}

const command *cmd_lookup_sub(const command *parent, const char *sub, size_t len) {
    for (size_t i = 0; i < parent->nsubs; i++)
        if (name_equals(sub_name(&parent->subs[i]), sub, len)) return &parent->subs[i];
    return NULL;
}

const command *cmd_lookup_full(const char *name, size_t len) {
    const char *bar = memchr(name, '|', len);
    if (!bar) return cmd_lookup(name, len);
    const command *parent = cmd_lookup(name, (size_t)(bar - name));
    if (!parent) return NULL;
    return cmd_lookup_sub(parent, bar + 1, len - (size_t)(bar - name) - 1);
}

const command *cmd_row_of(int argc, const cmd_arg *argv, int by_row) {
    if (argc < 1) return NULL;
    const command *top = by_row ? cmd_lookup_row(argv[0].p, argv[0].n)
                                : cmd_lookup(argv[0].p, argv[0].n);
    if (!top || !top->nsubs || argc < 2) return top;
    return cmd_lookup_sub(top, argv[1].p, argv[1].n);
}

/* ---- the rows' consistency ---- */

static char check_msg[256];

/* One row (a top-level row or a subcommand of parent): NULL or why not. */
static const char *check_row(const command *cmd, const command *parent) {
    uint32_t access = cmd->flags & (CMD_WRITE | CMD_READONLY | CMD_NODATA);
    const char *why = NULL;
    if (!cmd->fn && !cmd->nsubs)
        why = "has neither a handler nor subcommands";
    else if (!cmd->fn && cmd->arity > -2)
        why = "is a container without a handler of its own: its arity must be -2 or less";
    else if (cmd->fn && access != CMD_WRITE && access != CMD_READONLY && access != CMD_NODATA)
        why = "must be exactly one of CMD_WRITE, CMD_READONLY and CMD_NODATA";
    else if (cmd->fn && access != CMD_NODATA && cmd->first_key <= 0 && !cmd->getkeys &&
             !(cmd->flags & (CMD_KEYSPACE | CMD_ALLSHARDS)))
        why = "reads or writes data but names no key: key positions, getkeys or CMD_KEYSPACE";
    else if (cmd->getkeys && cmd->first_key > 0)
        why = "has both key positions and getkeys";
    else if (parent && (strncmp(cmd->name, parent->name, strlen(parent->name)) != 0 ||
                        cmd->name[strlen(parent->name)] != '|' || cmd->nsubs))
        why = "is a subcommand not named parent|sub (or has subcommands itself)";
    if (!why) return NULL;
    snprintf(check_msg, sizeof check_msg, "row '%s' %s", cmd->name, why);
    return check_msg;
}

const char *cmd_table_check(const command *rows, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const char *bad = check_row(&rows[i], NULL);
        for (size_t j = 0; !bad && j < rows[i].nsubs; j++)
            bad = check_row(&rows[i].subs[j], &rows[i]);
        if (bad) return bad;
    }
    return NULL;
}

/* ---- keys ---- */

void cmd_keys_init(cmd_keys *k) {
    k->n = 0;
    k->cap = CMD_KEYS_INLINE;
    k->heap = NULL;
}

void cmd_keys_add(cmd_keys *k, int pos) {
    if (k->n == k->cap) {
        int cap = k->cap * 2;
        int *h = xmalloc((size_t)cap * sizeof *h);
        for (int i = 0; i < k->n; i++) h[i] = cmd_keys_at(k, i);
        free(k->heap);
        k->heap = h;
        k->cap = cap;
    }
    if (k->heap) k->heap[k->n++] = pos;
    else k->inl[k->n++] = pos;
}

void cmd_keys_free(cmd_keys *k) {
    free(k->heap);
    cmd_keys_init(k);
}

int cmd_get_keys(const command *cmd, int argc, const cmd_arg *argv, cmd_keys *out) {
    int before = out->n;
    if (cmd->getkeys) {
        cmd->getkeys(argc, argv, out);
        return out->n - before;
    }
    if (cmd->first_key <= 0 || cmd->first_key >= argc) return 0;
    int last = cmd->last_key >= 0 ? cmd->last_key : argc + cmd->last_key;
    if (last >= argc) last = argc - 1;
    int step = cmd->key_step > 0 ? cmd->key_step : 1;
    for (int i = cmd->first_key; i <= last; i += step) cmd_keys_add(out, i);
    return out->n - before;
}

int cmd_key_count(const command *cmd, int argc, const cmd_arg *argv) {
    cmd_keys k;
    cmd_keys_init(&k);
    int n = cmd_get_keys(cmd, argc, argv, &k);
    cmd_keys_free(&k);
    return n;
}

int cmd_access(const command *cmd) {
    if (cmd->flags & CMD_WRITE) return CMD_ACCESS_WRITE;
    if (cmd->flags & CMD_NODATA) return CMD_ACCESS_NONE;
    return CMD_ACCESS_READ;
}

int cmd_whole_keyspace(const cmd_verdict *v) {
    return (v->cmd->flags & (CMD_KEYSPACE | CMD_ALLSHARDS)) || v->keys.n == 0;
}
