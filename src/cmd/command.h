/* command.h - the command table and what a command handler sees.
 *
 * Commands are data: one `command` row per command (name, handler, arity,
 * flags, keys, subcommands, group, summary). Each family file (strings.c,
 * keys.c, server.c, ...) exports its rows; command_table.c collects them
 * into one case-insensitive lookup table. The row is the single source of
 * truth for what a command is: the arity check, key locking, cluster
 * routing and CURP's conflict detection, the weak session's blind writes,
 * the RESP2 subscriber context, COMMAND INFO/DOCS. No code outside the
 * table decides anything by comparing a command's name.
 *
 * Keys: first_key/last_key/key_step (Redis's "legacy" key positions) for
 * commands whose keys sit at fixed positions; a getkeys function for the
 * ones whose keys move (XREAD's follow STREAMS), as Redis's key specs +
 * getkeys functions do. cmd_get_keys gives the argv positions of every key
 * for one call either way.
 *
 * Containers (CLIENT, CONFIG, COMMAND, XGROUP, XINFO, PUBSUB) have a table
 * of subcommand rows, each with its own arity, flags, keys and handler,
 * named "parent|sub" as Redis names them. The lookup resolves argv[1].
 *
 * Execution is two steps (dispatch.c):
 *   resolve: lookup (with the subcommand), arity, auth, RESP2 subscriber
 *            state, and the keys: a verdict (the row that runs and its key
 *            positions, or the refusal to reply); no side effects. Cluster
 *            routing decides from the verdict.
 *   admit:   maxmemory (may evict) and -MISCONF, the checks that depend on
 *            the server's state of the moment, on the thread that runs it.
 *   run:     lock the shards of every key of the verdict (ascending), call
 *            the handler, log the write (AOF record, cluster entry:
 *            propagate and propagate_end) with the keys still locked,
 *            unlock.
 * So a handler runs with all its keys' shards locked and uses the ks_
 * "caller holds the lock" calls directly. Commands without keys (PING,
 * INFO) take no key lock; the whole-keyspace ones (KEYS, SCAN, DBSIZE)
 * use the ks_ functions that lock shard by shard. */
#ifndef PIER_COMMAND_H
#define PIER_COMMAND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/reply.h"
#include "../store/keyspace.h"

struct pier_config;
struct cmd_host;
struct cmd_ctx;

/* --- flags that something enforces (and where) ---
 *
 * Every row that runs is exactly one of CMD_WRITE, CMD_READONLY and
 * CMD_NODATA (cmd_table_init refuses a table where one is not). */
/* Changes the keyspace. Dispatcher: refused with -MISCONF while
 * persistence fails. Cluster: routed through the log (routing, CURP's
 * conflict detection and witnesses). */
#define CMD_WRITE     (1u << 0)
/* Reads keyspace data, never changes it. Cluster: served here only when
 * the node's state may answer it (cluster_local_read), else through the
 * cluster thread. */
#define CMD_READONLY  (1u << 1)
/* Touches no keyspace data (connection, server, pub/sub commands).
 * Cluster routing runs it on the node that received it, with no log. */
#define CMD_NODATA    (1u << 2)
/* Reads or writes the whole keyspace, not keys it names (KEYS, SCAN,
 * DBSIZE, RANDOMKEY, FLUSHALL). Cluster: waits for the whole log before
 * it. A data row without keys must say so (cmd_table_init). */
#define CMD_KEYSPACE  (1u << 3)
/* Dispatcher: allowed before AUTH (AUTH, HELLO, QUIT). */
#define CMD_NOAUTH    (1u << 4)
/* Dispatcher: may grow memory, so evicts or is refused over maxmemory. */
#define CMD_DENYOOM   (1u << 5)
/* Dispatcher: locks EVERY shard (ascending) around the handler: for
 * whole-keyspace writes (FLUSHALL) whose place in the AOF must be exact
 * relative to writes running on other threads. */
#define CMD_ALLSHARDS (1u << 6)
/* Dispatcher: refused with -MISCONF while persistence is failing
 * (cmd_disk_status), as CMD_WRITE rows are, though it is not a write
 * (PING, as in Redis, so that monitoring notices). */
#define CMD_DENY_DISKERR (1u << 7)
/* Dispatcher: may run on a RESP2 connection in subscriber mode, whose
 * replies could otherwise be confused with pushed messages
 * ((P)(UN)SUBSCRIBE, PING, QUIT). */
#define CMD_SUBSCRIBED (1u << 8)
/* Cluster weak session: the reply is key 1's string value as a bulk
 * string (or null), so a session that wrote the key and waits for the
 * write to land can answer from its own pending write (GET). */
#define CMD_REPLY_IS_VALUE (1u << 9)
/* May park its client until data arrives (XREAD/XREADGROUP BLOCK):
 * cmd_block_on_keys refuses every other row (COMMAND INFO: blocking). */
#define CMD_BLOCKING  (1u << 10)
/* Not a command: a line another protocol starts with ("POST", "Host:"),
 * i.e. someone made a client (a web browser) talk HTTP to this port
 * (cross-protocol scripting). The dispatcher runs the row's handler at
 * once, before any check (cmd_resolve's verdict has no refusal and no
 * keys; cluster routing runs it here: it is CMD_NODATA too), and the
 * handler closes the connection. Such rows are not listed by COMMAND and
 * cannot be renamed. */
#define CMD_XPROTO    (1u << 11)

/* --- flags COMMAND INFO shows and nothing enforces ---
 * Data for clients (redis-cli, client libraries) that read COMMAND; pier
 * has no scripts, replicas or loading state that they would govern. */
#define CMD_DOC_FAST     (1u << 16) /* O(1) or O(log n); ACL category @fast */
#define CMD_DOC_ADMIN    (1u << 17) /* ACL categories @admin @dangerous */
#define CMD_DOC_PUBSUB   (1u << 18)
#define CMD_DOC_LOADING  (1u << 19)
#define CMD_DOC_STALE    (1u << 20)

/* Failed AUTH / HELLO AUTH attempts a connection may make: the last one is
 * answered, then the connection is closed (docs/ARCHITECTURE.md). */
#define CMD_AUTH_FAILURES_MAX 10

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
    _Atomic uint64_t dirty; /* dataset changes (sum of cmd_ctx.dirty) */
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
/* The AOF being replayed at start-up: the data was accepted once, so
 * maxmemory does not refuse or evict it now (as Redis while loading). */
#define SESS_REPLAY (1u << 1)
/* The command runs again after its blocking read was woken (XREADGROUP
 * then reports a deleted key or destroyed group as Redis 7.0 does). */
#define SESS_BLOCK_RERUN (1u << 2)
/* Never park this session in a blocking read (the cluster thread's
 * executions: no connection to park); BLOCK answers as a timeout. */
#define SESS_NOBLOCK (1u << 3)
/* Drop the connection at once: nothing more is read or sent, not even
 * replies already queued (a CMD_XPROTO row hung up). */
#define SESS_CLOSE_NOW (1u << 4)
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
    /* maxmemory eviction candidates (store/evict.h), created on this
     * connection's first eviction; freed with the connection. */
    struct evict_pool *evict_pool;
    /* Channels + patterns this connection subscribes to (pub/sub): in
     * RESP2 a subscribed connection may run only the subscribe family,
     * PING, QUIT and RESET. Written by the owner thread only. */
    int subscriptions;
    /* Cluster mode: PIER.CONSISTENCY (0 strong, 1 weak). */
    int consistency;
    /* The peer's "ip:port" for log lines (NULL: not a network client). */
    const char *addr;
    /* Wrong passwords given by AUTH / HELLO AUTH on this connection. */
    int auth_failures;
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
     * only_id == 0: every client. caller (may be NULL): the running command,
     * whose own line shows its live buffers and argv-mem. Returns a
     * malloc'd string; length in *len. */
    char *(*client_list)(void *arg, uint64_t only_id, const struct cmd_ctx *caller, size_t *len);
    /* CONFIG RESETSTAT: INFO's counters start again from 0. */
    void (*reset_stats)(void *arg);
    /* CONFIG REWRITE: 0, or -1 with the error (without "ERR ") in err. */
    int (*config_rewrite)(void *arg, char *err, size_t errlen);
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
     * last option; 1 (value filled) for a secret (requirepass) that must
     * never be shown: CONFIG SET uses the value only to roll back. */
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
    /* The used-memory figure maxmemory is enforced against: cheap (atomic
     * loads), kept close to the allocator's true figure by the cron. */
    size_t (*used_memory)(void *arg);
    /* SAVE, BGSAVE [SCHEDULE], BGREWRITEAOF: 0 with the status reply in
     * msg ("OK", "Background saving started", ...), -1 with the whole
     * error line in msg. */
    int (*save)(void *arg, char *msg, size_t len);
    int (*bgsave)(void *arg, int schedule, char *msg, size_t len);
    int (*bgrewriteaof)(void *arg, char *msg, size_t len);
    /* LASTSAVE: unix time of the last successful save. */
    long long (*lastsave)(void *arg);
    /* SHUTDOWN with CMD_SHUTDOWN_* flags: the final AOF flush and snapshot
     * run now; 0 when the server stops (the command replies nothing: the
     * connection closes), -1 with the whole error line in msg (the server
     * goes on). */
    int (*shutdown)(void *arg, int flags, char *msg, size_t len);

    /* --- blocking reads (XREAD/XREADGROUP BLOCK; server/blocking.c) --- */
    /* Park the calling connection until a write signals one of keys or
     * timeout_ms passes (0 = forever); then argv (copied) runs again on
     * the connection's own loop. Call it from the handler with the keys'
     * shard locks held (no signal can slip between the check for data and
     * the park) and reply nothing. A command re-run after a wake-up keeps
     * its first deadline. Returns 0, or -1 when this connection cannot
     * block (the caller replies as on a timeout). */
    int (*block_on_keys)(void *arg, session *s, int nkeys, const cmd_arg *keys,
                         int argc, const cmd_arg *argv, long long timeout_ms);
    /* New data on key (XADD): wake every connection blocked on it. The
     * caller holds the key's shard lock. */
    void (*signal_key)(void *arg, const char *key, size_t klen);
    /* key deleted or one of its groups destroyed: wake the readers blocked
     * on it (a woken XREADGROUP replies NOGROUP / UNBLOCKED). The caller
     * holds the key's shard lock. */
    void (*unblock_key)(void *arg, const char *key, size_t klen);

    /* --- pub/sub (server/pubsub.c) --- */
    /* (P)SUBSCRIBE / (P)UNSUBSCRIBE one channel or pattern for s. Return
     * s's total subscription count afterwards (also kept in
     * s->subscriptions). */
    int (*subscribe)(void *arg, session *s, int pattern, const char *ch, size_t n);
    int (*unsubscribe)(void *arg, session *s, int pattern, const char *ch, size_t n);
    /* s's channels (pattern 0) or patterns (1), in subscription order, as
     * malloc'd copies: *out is an array of count cmd_args whose bytes the
     * caller frees with free(out[i].p) and the array with free(). */
    size_t (*subscriptions_of)(void *arg, session *s, int pattern, cmd_arg **out);
    /* PUBLISH: deliver to every subscriber (any loop); returns how many
     * received it. */
    long long (*publish)(void *arg, session *from, const char *ch, size_t n,
                         const char *msg, size_t mlen);
    /* PUBSUB CHANNELS [pattern] (malloc'd copies as above; pat NULL = all),
     * NUMSUB of one channel, NUMPAT. */
    size_t (*pubsub_channels)(void *arg, const char *pat, size_t plen, cmd_arg **out);
    long long (*pubsub_numsub)(void *arg, const char *ch, size_t n);
    long long (*pubsub_numpat)(void *arg);
} cmd_host;

struct cmd_ctx;

/* SHUTDOWN's arguments (cmd_host.shutdown). */
#define CMD_SHUTDOWN_NOSAVE 1 /* no final snapshot, whatever the save rules say */
#define CMD_SHUTDOWN_SAVE   2 /* a final snapshot even without save rules */
#define CMD_SHUTDOWN_FORCE  4 /* stop even when the final flush or save fails */

/* Persistence's health as the dispatcher needs it to refuse writes with
 * -MISCONF (Redis's writeCommandsDeniedByDiskError). Owned and written by
 * src/persist/ (any thread), read by every command with relaxed loads. */
typedef struct cmd_disk_status {
    /* The last background save failed (writes are refused while
     * stop-writes-on-bgsave-error is yes and save rules are set). */
    _Atomic int bgsave_failed;
    /* 0, or the errno of the AOF write or fsync that is failing. */
    _Atomic int aof_errno;
} cmd_disk_status;

/* Appends one executed write to the AOF (persistence installs it; NULL
 * when appendonly is off, so the hot path pays one branch). Called by the
 * dispatcher after the handler and before the shard locks are released.
 * The record is name followed by argv[1..argc). Returns the AOF offset
 * just past the record. */
typedef uint64_t cmd_propagate_fn(void *arg, cmd_arg name, int argc, const cmd_arg *argv);

/* Everything a command can reach besides its arguments. One per server,
 * shared by every loop thread. */
typedef struct cmd_env {
    cmd_propagate_fn *propagate;   /* NULL: nothing to log */
    void *propagate_arg;
    /* Called (with propagate_arg) once a write command has finished, with
     * its keys still locked: cluster mode turns the command's records and
     * reply into one log entry there. NULL outside cluster mode. */
    void (*propagate_end)(void *arg, struct cmd_ctx *c);
    keyspace *ks;
    const cmd_disk_status *disk;   /* NULL: writes are never refused for it */
    const struct pier_config *cfg; /* read-only for commands */
    const struct cmd_host *host;   /* server services (clients, config, info) */
    void *host_arg;
} cmd_env;

struct command;

#define CMD_PROP_MAX_ARGS 5

/* What XBATCHADD did, for the batch listener (server/batch.c), which runs
 * that command through the dispatcher to get auth, maxmemory, locking and
 * the AOF for free, and needs the outcome as data rather than RESP (a
 * refusal before the handler is the verdict's). */
typedef struct cmd_batch_result {
    int status;         /* a batch protocol error code, 0 = ok (proto/batch.h) */
    int duplicate;      /* already appended before: nothing written */
    uint64_t first_ms, first_seq; /* ID of the batch's first entry */
    uint32_t count;     /* messages appended */
    uint64_t acked_seq; /* highest batch sequence appended for the client id
                           (the batch's own for anonymous publishers) */
} cmd_batch_result;

typedef struct cmd_ctx {
    cmd_env *env;
    session *sess;
    reply *out;
    thread_stats *stats;
    int argc;
    const cmd_arg *argv;
    int64_t now_ms;               /* wall clock, sampled once per command */
    /* The row that runs (a container's subcommand row for "client list")
     * and the row argv[0] names (the container; == cmd otherwise): the
     * AOF record is logged under top's name. Set by cmd_resolve. */
    const struct command *cmd;
    const struct command *top;
    /* Changes this command made to the dataset. Handlers add to it; the
     * dispatcher logs the command to the AOF when it is non-zero and adds
     * it to stats->dirty (the save rules' change counter). */
    unsigned dirty;
    /* cmd_propagate_as: what to log instead of argv (prop_argc 0 = argv). */
    int prop_argc;
    cmd_arg prop_argv[CMD_PROP_MAX_ARGS];
    char prop_num[24];            /* cmd_prop_ll's digits */
    uint64_t aof_end;             /* out: AOF offset past this command's record, 0 = none */
    /* cmd_propagate_record: the handler logged its own record(s); the
     * dispatcher logs nothing more. */
    int prop_done;
    cmd_batch_result *batch;      /* XBATCHADD's outcome when non-NULL */
} cmd_ctx;

typedef void cmd_fn(cmd_ctx *c);

/* A list of argv positions (keys, or key/value pairs): inline up to
 * CMD_KEYS_INLINE, then on the heap. cmd_keys_free after use. */
#define CMD_KEYS_INLINE 16
typedef struct cmd_keys {
    int n, cap;
    int *heap;                   /* NULL while the inline array suffices */
    int inl[CMD_KEYS_INLINE];
} cmd_keys;

void cmd_keys_init(cmd_keys *k);
void cmd_keys_add(cmd_keys *k, int pos);
void cmd_keys_free(cmd_keys *k);
static inline int cmd_keys_at(const cmd_keys *k, int i) { return k->heap ? k->heap[i] : k->inl[i]; }

/* The keys of one call of a command whose key positions move (XREAD's
 * follow STREAMS): their argv positions into out (initialized by the
 * caller). Arguments the handler would refuse may yield no keys: the
 * handler then replies its error without touching the keyspace. Must
 * agree with what the handler reads (share its parser). */
typedef void cmd_getkeys_fn(int argc, const cmd_arg *argv, cmd_keys *out);
/* A blind write: a write whose reply does not depend on the data (SET
 * without NX/XX/GET and with a valid time, SETEX, PSETEX, MSET). Fills
 * pairs with the argv positions of each (key, value) it stores, in
 * order, and returns 0; -1 when these arguments are not blind (an option
 * that makes the reply depend on the data, or an error the command would
 * reply). Cluster: a weak session answers +OK at once and remembers the
 * pairs until the write is visible (read-your-writes). */
typedef int cmd_blind_fn(int argc, const cmd_arg *argv, cmd_keys *pairs);

/* A CURP client's own requests (PIER.EXEC/RECORD/SYNC, docs/PROTOCOL.md):
 * cluster routing hands them to the cluster thread as they are. */
enum { CMD_DIRECT_NONE = 0, CMD_DIRECT_EXEC, CMD_DIRECT_RECORD, CMD_DIRECT_SYNC };

typedef struct command {
    const char *name;     /* lower case, as COMMAND replies it; "parent|sub"
                             for a subcommand */
    cmd_fn *fn;           /* NULL: a container that never runs itself */
    int arity;            /* Redis convention: N exact, -N at least N (a
                             subcommand's counts argv[0] and argv[1]) */
    uint32_t flags;
    int first_key;        /* 0 = no keys at fixed positions */
    int last_key;         /* negative: counted from the end (-1 = last arg) */
    int key_step;
    const char *group;    /* "string", "generic", "connection", "server" */
    const char *summary;  /* for COMMAND DOCS */
    const char *since;    /* Redis version that introduced it */
    /* Optional (zero when unused): */
    cmd_getkeys_fn *getkeys;       /* movable keys (COMMAND INFO: movablekeys) */
    cmd_blind_fn *blind;           /* may be a blind write */
    const struct command *subs;    /* container: the subcommand rows */
    size_t nsubs;
    int direct;                    /* CMD_DIRECT_* */
} command;

/* In a container row: `CMD_SUBS(client_subs)` names its subcommand rows. */
#define CMD_SUBS(rows) .subs = (rows), .nsubs = sizeof(rows) / sizeof((rows)[0])

/* A family's rows, e.g. `extern const command strings_commands[];` with
 * its count. command_table.c lists every family. */
#define CMD_FAMILY(name)                                                       \
    extern const command name##_commands[];                                    \
    extern const size_t name##_commands_count

CMD_FAMILY(strings);
CMD_FAMILY(keys);
CMD_FAMILY(server);
CMD_FAMILY(command_info);
CMD_FAMILY(persist);
CMD_FAMILY(streams);
CMD_FAMILY(streams_group);
CMD_FAMILY(streams_batch);
CMD_FAMILY(pubsub);

/* Flags as COMMAND INFO names them (with "movablekeys" for a row with a
 * getkeys function); returns how many were written. */
size_t cmd_flag_names(const command *cmd, const char **out, size_t max);

/* --- the table (command_table.c) --- */
/* Build the lookup, once, before any thread runs. Checks every row
 * (exactly one of CMD_WRITE/CMD_READONLY/CMD_NODATA, keys or
 * CMD_KEYSPACE for data rows, subcommand names): a bad row is a
 * programming error, reported and fatal. */
void cmd_table_init(void);
/* Returns NULL, or a text naming the first bad row of rows[0..n) (and
 * their subcommands) by the rules above. */
const char *cmd_table_check(const command *rows, size_t n);
const command *cmd_lookup(const char *name, size_t len);
/* By the row's own name, ignoring rename-command (AOF replay: the log
 * holds cmd->name). Disabled commands are found too. */
const command *cmd_lookup_row(const char *name, size_t len);
/* A container's subcommand row named sub (the part after '|'), or NULL. */
const command *cmd_lookup_sub(const command *parent, const char *sub, size_t len);
/* "name" or "parent|sub" (COMMAND INFO/DOCS arguments). */
const command *cmd_lookup_full(const char *name, size_t len);
/* The row argv runs: argv[0]'s row (by its own name when by_row, as for a
 * replay), or its subcommand row named by argv[1] for a container called
 * with one. NULL when unknown. */
const command *cmd_row_of(int argc, const cmd_arg *argv, int by_row);
/* rename-command, at start-up before any thread runs: `to` == "" disables
 * the command (it then replies as unknown); otherwise it answers only to
 * `to`. Returns 0, or -1 with the Redis reason in err. */
int cmd_table_rename(const char *from, const char *to, char *err, size_t errlen);
/* Iterate all top-level commands (COMMAND, COMMAND COUNT). */
size_t cmd_count(void);
const command *cmd_at(size_t i);

/* The argv positions of every key of this call of cmd (key positions or
 * getkeys) appended to out (initialized by the caller): the keys the
 * dispatcher locks, cluster routing reads and CURP records. Returns how
 * many (0: none, e.g. PING, or the whole keyspace, e.g. KEYS). */
int cmd_get_keys(const command *cmd, int argc, const cmd_arg *argv, cmd_keys *out);
/* Its count only. */
int cmd_key_count(const command *cmd, int argc, const cmd_arg *argv);

/* --- the dispatcher (dispatch.c) --- */

/* Why a command is not run; each has Redis's reply (cmd_refuse). */
enum cmd_refusal {
    CMD_OK = 0,
    CMD_REFUSE_UNKNOWN,     /* ERR unknown command */
    CMD_REFUSE_UNKNOWN_SUB, /* ERR unknown subcommand (container) */
    CMD_REFUSE_ARITY,       /* ERR wrong number of arguments */
    CMD_REFUSE_NOAUTH,      /* NOAUTH Authentication required. */
    CMD_REFUSE_OOM,         /* OOM command not allowed ... (cmd_admit) */
    CMD_REFUSE_MISCONF,     /* MISCONF ... (cmd_admit) */
    CMD_REFUSE_SUBSCRIBED,  /* ERR Can't execute '...' in RESP2 subscriber mode */
};

/* What resolve decided about one command. */
typedef struct cmd_verdict {
    int refusal;            /* CMD_OK or CMD_REFUSE_* */
    const command *cmd;     /* the row that runs (subcommand row); NULL when unknown */
    const command *top;     /* the row argv[0] names */
    cmd_keys keys;          /* argv positions of every key (run locks them) */
    int misconf_errno;      /* CMD_REFUSE_MISCONF: the AOF's errno, 0 = the snapshot */
} cmd_verdict;

/* What a command does to the keyspace, as cluster routing needs it. */
enum { CMD_ACCESS_NONE, CMD_ACCESS_READ, CMD_ACCESS_WRITE };
/* CMD_ACCESS_NONE only for a CMD_NODATA row: anything else is data (a row
 * that says nothing is read, never silently local). */
int cmd_access(const command *cmd);
/* 1 when the verdict's command concerns the whole keyspace rather than
 * the keys it names (CMD_KEYSPACE, or a data command naming no key). */
int cmd_whole_keyspace(const cmd_verdict *v);

/* Resolve c->argv: lookup (subcommand included; by row name for a
 * SESS_REPLAY session), arity, auth, RESP2 subscriber state, the keys.
 * No side effects beyond c->cmd, c->top and c->sess->last_cmd. Fills v
 * (cmd_verdict_free it) and returns v->refusal. */
int cmd_resolve(cmd_ctx *c, cmd_verdict *v);
/* The admission checks of the moment, on the thread that runs the
 * command, for a verdict that resolve did not refuse otherwise:
 * maxmemory (evicts per policy; not for SESS_REPLAY) and -MISCONF (not
 * for SESS_REPLAY: a replay or a cluster apply must run what was
 * accepted once). They come before the subscriber refusal, as in Redis.
 * Returns v->refusal. */
int cmd_admit(cmd_ctx *c, cmd_verdict *v);
/* Reply the verdict's refusal to c->out. */
void cmd_refuse(cmd_ctx *c, const cmd_verdict *v);
/* Run an admitted verdict: lock its keys, call the handler, log a write
 * (AOF record, propagate_end) with the keys still locked, unlock. */
void cmd_run(cmd_ctx *c, const cmd_verdict *v);
void cmd_verdict_free(cmd_verdict *v);

/* Execute one parsed command: resolve, admit, then refuse or run.
 * Replies go to c->out; fills c->cmd. */
void cmd_execute(cmd_ctx *c);

/* --- helpers shared by handlers (cmd_util.c) --- */
/* Exact Redis error texts. */
#define ERR_SYNTAX "ERR syntax error"
#define ERR_NOT_INT "ERR value is not an integer or out of range"
#define ERR_NOT_FLOAT "ERR value is not a valid float"
#define ERR_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"
#define ERR_NO_KEY "ERR no such key"
#define ERR_OVERFLOW "ERR increment or decrement would overflow"
#define ERR_MISCONF_RDB                                                            \
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable " \
    "to persist to disk. Commands that may modify the data set are disabled, "      \
    "because this instance is configured to report errors during writes if RDB "    \
    "snapshotting fails (stop-writes-on-bgsave-error option). Please check the "    \
    "Redis logs for details about the RDB error."
#define ERR_MISCONF_AOF_PREFIX "MISCONF Errors writing to the AOF file: "

void reply_arity_error(cmd_ctx *c);  /* "ERR wrong number of arguments for 'x' command" */
/* "ERR unknown subcommand 'x'. Try CLIENT HELP." (argv[1], argv[0]). */
void reply_unknown_subcommand(cmd_ctx *c);
/* Redis's addReplySubcommandSyntaxError: "ERR unknown subcommand or wrong
 * number of arguments for 'x'. Try XGROUP HELP." */
void reply_subcommand_syntax_error(cmd_ctx *c);
/* A HELP subcommand's reply: one status line each, as Redis sends them. */
void reply_help_lines(cmd_ctx *c, const char *const *lines, size_t n);
/* Parse argv[i] as a long long; on failure replies ERR_NOT_INT and
 * returns 0. */
int arg_ll(cmd_ctx *c, int i, long long *out);
/* Case-insensitive compare of argv[i] with an upper-case keyword. */
int arg_is(const cmd_ctx *c, int i, const char *kw);
/* The same for one argument (getkeys and blind functions, which have no
 * cmd_ctx). */
int cmd_arg_is(const cmd_arg *a, const char *kw);
/* Look up the key in argv[i] (caller holds its shard lock). The read
 * variant counts a keyspace hit or miss like Redis lookupKeyRead; the
 * write variant counts nothing, like lookupKeyWrite. */
kv *key_lookup_read(cmd_ctx *c, int i);
kv *key_lookup_write(cmd_ctx *c, int i);
/* "ERR invalid expire time in '<name>' command". */
void reply_expire_time_error(cmd_ctx *c);

/* --- blocking reads --- */
/* Park the client on keys (cmd_host.block_on_keys, which says how), for a
 * row flagged CMD_BLOCKING only. Returns 0, or -1 when it cannot park
 * (another row, no blocking service, a session that never blocks): the
 * caller replies as on a timeout. */
int cmd_block_on_keys(cmd_ctx *c, int nkeys, const cmd_arg *keys, int argc, const cmd_arg *argv,
                      long long timeout_ms);

/* --- propagation (AOF) --- */
/* Log argv[0..argc) instead of the command as received, for commands
 * whose effect depends on the time or on state (relative expiry ->
 * absolute PEXPIREAT, INCRBYFLOAT -> SET ... KEEPTTL). Copies the views
 * only: the bytes must stay valid until the dispatcher releases the
 * command's locks (the command's own arguments, string literals, values
 * held in the locked keyspace, or cmd_prop_ll's result). At most
 * CMD_PROP_MAX_ARGS arguments. */
void cmd_propagate_as(cmd_ctx *c, int argc, const cmd_arg *argv);
/* v in decimal, in storage owned by c (one number per command). */
cmd_arg cmd_prop_ll(cmd_ctx *c, long long v);
/* A string literal as an argument. */
cmd_arg cmd_prop_lit(const char *s);
/* Log one record now (any number of arguments; the views need to live
 * only during the call), for commands whose effect takes several records
 * (XREADGROUP: one XCLAIM per delivered entry) or whose argv is rewritten
 * (XADD * -> the assigned ID). Call with the keys' locks held. After it
 * the dispatcher logs nothing for this command. No-op without an AOF. */
void cmd_propagate_record(cmd_ctx *c, int argc, const cmd_arg *argv);

#endif
