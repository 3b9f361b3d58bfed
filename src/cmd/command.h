/* command.h - the command table and what a command handler sees.
 *
 * Commands are data: one `command` row per command (name, handler, arity,
 * flags, key positions, group, summary). Each family file (strings.c,
 * keys.c, server.c, ...) exports its rows; command_table.c collects them
 * into one case-insensitive lookup table. Arity and key positions are the
 * single source of truth for the arity check, for key locking, for COMMAND
 * INFO/DOCS and (later) for cluster conflict detection.
 *
 * Execution: the dispatcher (cmd_execute) checks arity and auth, builds the
 * lockset of every key named by the key spec, locks those shards in
 * ascending order, calls the handler, unlocks. So a handler runs with all
 * its keys' shards locked and uses the ks_ "caller holds the lock" calls
 * directly. Commands flagged CMD_NOKEYS take no key locks (PING, INFO) or
 * do their own whole-keyspace locking (KEYS, SCAN, FLUSHALL) through the
 * ks_ functions that lock internally. */
#ifndef PIER_COMMAND_H
#define PIER_COMMAND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/reply.h"
#include "../store/keyspace.h"

struct pier_config;
struct cmd_host;

/* --- flags --- */
#define CMD_WRITE     (1u << 0)  /* may modify the keyspace */
#define CMD_READONLY  (1u << 1)
#define CMD_FAST      (1u << 2)  /* O(1) or O(log n) */
#define CMD_NOKEYS    (1u << 3)  /* no key locking by the dispatcher */
#define CMD_ADMIN     (1u << 4)
#define CMD_NOAUTH    (1u << 5)  /* allowed before AUTH (AUTH, HELLO, QUIT) */
#define CMD_DENYOOM   (1u << 6)  /* may grow memory: refused over maxmemory */
#define CMD_PUBSUB    (1u << 7)
#define CMD_STALE     (1u << 8)
#define CMD_LOADING   (1u << 9)

typedef struct cmd_arg {
    const char *p;
    size_t n;
} cmd_arg;

/* Per-loop-thread counters. Written only by the owning thread (plain
 * load+store through STAT_ADD, no locked RMW), read by INFO from any
 * thread with relaxed loads. */
typedef struct thread_stats {
    _Atomic uint64_t commands;
    _Atomic uint64_t keyspace_hits;
    _Atomic uint64_t keyspace_misses;
    _Atomic uint64_t net_input_bytes;
    _Atomic uint64_t net_output_bytes;
    _Atomic uint64_t connections_received;
    _Atomic uint64_t rejected_connections;
    _Atomic uint64_t expired_keys_active;
} thread_stats;

#define STAT_ADD(field, n)                                                     \
    atomic_store_explicit(&(field),                                            \
                          atomic_load_explicit(&(field), memory_order_relaxed) \
                              + (uint64_t)(n),                                 \
                          memory_order_relaxed)
#define STAT_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* Per-connection command state (the part of a client that commands read
 * and change). Owned by the connection in server/client.c. */
#define SESS_CLOSE_AFTER_REPLY (1u << 0)
typedef struct session {
    uint64_t id;
    _Atomic int proto;   /* 2 or 3; mirrors out->proto (CLIENT LIST reads it) */
    int authenticated;   /* 1 when no password is set or AUTH succeeded */
    uint32_t flags;      /* SESS_ */
    char *name;          /* CLIENT SETNAME; malloc'd, NULL if none */
    int64_t created_ms;
    /* name of the running or last command (static string); atomic because
     * CLIENT LIST on another thread reads it */
    const char *_Atomic last_cmd;
} session;

/* Services the server layer provides to commands (implemented in
 * src/server/, so commands never call upward directly). */
typedef struct cmd_kill_filter {
    uint64_t id;          /* 0 = any */
    const char *addr;     /* "ip:port" or NULL */
    const char *laddr;    /* local "ip:port" or NULL */
    int skipme;           /* 1 = never kill the caller */
} cmd_kill_filter;

typedef struct cmd_host {
    /* CLIENT LIST / CLIENT INFO text (one line per client, Redis format).
     * only_id == 0: every client. Returns a malloc'd string; length in *len. */
    char *(*client_list)(void *arg, uint64_t only_id, size_t *len);
    /* CLIENT KILL: returns how many clients matched and were marked. */
    size_t (*client_kill)(void *arg, const cmd_kill_filter *f, uint64_t self_id);
    /* CLIENT SETNAME / HELLO SETNAME: replace s->name (len 0 clears it)
     * under the lock that CLIENT LIST reads it with. */
    void (*client_setname)(void *arg, session *s, const char *name, size_t len);
    /* Number of connected clients (INFO, HELLO). */
    size_t (*client_count)(void *arg);
    /* INFO text for the given section name ("" or "default" or "all" or
     * "everything" or one section). Returns malloc'd text, *len set. */
    char *(*info)(void *arg, const char *section, size_t *len);
    /* CONFIG GET: the i-th option's name and current value; -1 past the
     * last option. */
    int (*config_get_at)(void *arg, size_t i, const char **name, char *buf, size_t buflen);
    /* CONFIG SET one option; 0 ok, -2 unknown option, -1 bad value with err
     * filled (the reason, e.g. "argument couldn't be parsed into an
     * integer"). */
    int (*config_set)(void *arg, const char *name, const char *value,
                      char *err, size_t errlen);
    /* AUTH: 1 when the password is right (constant-time compare). */
    int (*check_password)(void *arg, const char *pass, size_t len);
    /* 1 when requirepass is set. */
    int (*auth_required)(void *arg);
} cmd_host;

/* Everything a command can reach besides its arguments. One per server,
 * shared by every loop thread. */
typedef struct cmd_env {
    keyspace *ks;
    const struct pier_config *cfg; /* read-only for commands */
    const struct cmd_host *host;   /* server services (clients, config, info) */
    void *host_arg;
} cmd_env;

struct command;

typedef struct cmd_ctx {
    cmd_env *env;
    session *sess;
    reply *out;
    thread_stats *stats;
    int argc;
    const cmd_arg *argv;
    int64_t now_ms;               /* wall clock, sampled once per command */
    const struct command *cmd;
} cmd_ctx;

typedef void cmd_fn(cmd_ctx *c);

typedef struct command {
    const char *name;     /* lower case, as COMMAND replies it */
    cmd_fn *fn;
    int arity;            /* Redis convention: N exact, -N at least N */
    uint32_t flags;
    int first_key;        /* 0 = no keys */
    int last_key;         /* negative: counted from the end (-1 = last arg) */
    int key_step;
    const char *group;    /* "string", "generic", "connection", "server" */
    const char *summary;  /* for COMMAND DOCS */
    const char *since;    /* Redis version that introduced it */
} command;

/* A family's rows, e.g. `extern const command strings_commands[];` with
 * its count. command_table.c lists every family. */
#define CMD_FAMILY(name)                                                       \
    extern const command name##_commands[];                                    \
    extern const size_t name##_commands_count

CMD_FAMILY(strings);
CMD_FAMILY(keys);
CMD_FAMILY(server);

/* Flags as COMMAND INFO names them; returns how many were written. */
size_t cmd_flag_names(uint32_t flags, const char **out, size_t max);

/* --- the table --- */
void cmd_table_init(void);               /* build the lookup, once */
const command *cmd_lookup(const char *name, size_t len);
/* Iterate all commands (COMMAND, COMMAND COUNT). */
size_t cmd_count(void);
const command *cmd_at(size_t i);

/* Execute one parsed command. Replies go to c->out. Handles unknown
 * command, arity, auth and key locking; fills c->cmd. */
void cmd_execute(cmd_ctx *c);

/* --- helpers shared by handlers (cmd_util.c) --- */
/* Exact Redis error texts. */
#define ERR_SYNTAX "ERR syntax error"
#define ERR_NOT_INT "ERR value is not an integer or out of range"
#define ERR_NOT_FLOAT "ERR value is not a valid float"
#define ERR_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"
#define ERR_NO_KEY "ERR no such key"
#define ERR_OVERFLOW "ERR increment or decrement would overflow"

void reply_arity_error(cmd_ctx *c);  /* "ERR wrong number of arguments for 'x' command" */
/* Parse argv[i] as a long long; on failure replies ERR_NOT_INT and
 * returns 0. */
int arg_ll(cmd_ctx *c, int i, long long *out);
/* Case-insensitive compare of argv[i] with an upper-case keyword. */
int arg_is(const cmd_ctx *c, int i, const char *kw);
/* Look up the key in argv[i] (caller holds its shard lock). The read
 * variant counts a keyspace hit or miss like Redis lookupKeyRead; the
 * write variant counts nothing, like lookupKeyWrite. */
kv *key_lookup_read(cmd_ctx *c, int i);
kv *key_lookup_write(cmd_ctx *c, int i);
/* "ERR invalid expire time in '<name>' command". */
void reply_expire_time_error(cmd_ctx *c);

#endif
