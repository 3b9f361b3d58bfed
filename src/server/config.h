/* config.h - server configuration: defaults, command-line flags, a
 * redis.conf-style file of `name value` lines, CONFIG GET/SET.
 *
 * One table of options (config.c) is the single source for flag names,
 * file keys, CONFIG GET/SET names, types, bounds and whether an option can
 * change at run time. Other layers read the struct; only config.c writes
 * it. Options changeable at run time are read by other threads with relaxed
 * atomic loads (CFG_GET). */
#ifndef PIER_CONFIG_H
#define PIER_CONFIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum { CFG_IO_LOOP = 0, CFG_IO_THREAD = 1 };

/* maxmemory-policy values, in the order Redis lists them in errors. */
enum {
    CFG_EVICT_VOLATILE_LRU = 0,
    CFG_EVICT_VOLATILE_LFU,
    CFG_EVICT_VOLATILE_RANDOM,
    CFG_EVICT_VOLATILE_TTL,
    CFG_EVICT_ALLKEYS_LRU,
    CFG_EVICT_ALLKEYS_LFU,
    CFG_EVICT_ALLKEYS_RANDOM,
    CFG_EVICT_NOEVICTION
};

#define CFG_PASSWORD_MAX 512   /* requirepass bytes (buffer size, incl. NUL) */
#define CFG_CLUSTER_KEY_MAX 1024 /* cluster secret bytes (= BUS_KEY_MAX) */
#define CFG_CLUSTER_KEY_MIN 16   /* shorter secrets are refused */
#define CFG_RENAME_MAX 64      /* rename-command lines */
#define CFG_CMDNAME_MAX 64     /* bytes of a (re)named command, incl. NUL */

#define CFG_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

#define CFG_MAX_SAVE_RULES 16
enum { CFG_FSYNC_NO = 0, CFG_FSYNC_ALWAYS = 1, CFG_FSYNC_EVERYSEC = 2 };

typedef struct pier_config {
    /* network */
    char bind[256];                  /* space-separated addresses */
    int port;
    /* The batch protocol's port (docs/PROTOCOL.md): -1 = port + 1000
     * (not bound when that fails or port is 0), 0 = off. */
    int batch_port;
    _Atomic long long batch_max_bytes; /* largest batch payload accepted */
    int threads;                     /* loop threads; 0 = number of cores */
    /* The values in use once the server resolved the automatic settings
     * above (threads 0, batch-port -1); -1 until then. CONFIG GET shows
     * them, CONFIG REWRITE writes the configured ones. */
    int threads_in_use, batch_port_in_use;
    int tcp_backlog;
    _Atomic long long maxclients;
    _Atomic long long timeout;       /* idle seconds, 0 = never */
    int tcp_keepalive;

    /* protocol limits */
    _Atomic long long proto_max_bulk_len;
    _Atomic long long client_query_buffer_limit;
    _Atomic long long output_pause_limit; /* stop reading a client above this */
    /* client-output-buffer-limit, Redis semantics: over hard -> disconnect
     * at once; over soft for more than soft_seconds -> disconnect. The
     * normal class is checked after each command (server/client.c), the
     * pubsub class on every message delivered to a subscriber
     * (server/pubsub.c). 0 = no limit. */
    _Atomic long long output_hard_limit;  /* normal class */
    _Atomic long long output_soft_limit;
    _Atomic long long output_soft_seconds;
    _Atomic long long pubsub_hard_limit;
    _Atomic long long pubsub_soft_limit;
    _Atomic long long pubsub_soft_seconds;

    /* memory */
    _Atomic long long maxmemory;         /* bytes; 0 = no limit */
    _Atomic int maxmemory_policy;        /* CFG_EVICT_ */
    _Atomic long long maxmemory_samples;
    _Atomic long long lfu_log_factor;
    _Atomic long long lfu_decay_time;    /* minutes per counter decrement */

    /* safety */
    _Atomic int protected_mode;          /* 1 = only loopback without a password */
    /* requirepass: never printed (CONFIG GET, logs, INFO). Read and written
     * under password_lock because AUTH on any thread may race CONFIG SET;
     * password_set mirrors "non-empty" for the lock-free hot path. */
    pthread_mutex_t password_lock;
    char password[CFG_PASSWORD_MAX];
    size_t password_len;
    _Atomic int password_set;
    /* rename-command lines (config file / flags only), applied to the
     * command table at start-up. to[0] == 0 disables the command. */
    struct {
        char from[CFG_CMDNAME_MAX], to[CFG_CMDNAME_MAX];
    } renames[CFG_RENAME_MAX];
    int nrenames;

    /* logging */
    _Atomic int loglevel;            /* enum log_level */
    _Atomic int loglevel_spelling;   /* the name it was set by (log_level_spelling) */
    char logfile[512];               /* "" = stderr */

    /* server */
    char pidfile[512];
    _Atomic int daemonize;           /* 1 = fork into the background once ready */
    _Atomic long long hz;            /* background tasks per second (OPT_LL: must be long long) */
    int databases;                   /* always 1: only db 0 */
    _Atomic int io_model;            /* CFG_IO_LOOP or CFG_IO_THREAD */
    char *config_file;               /* absolute path, or NULL */

    /* persistence (docs/PERSISTENCE.md). Paths are fixed at start-up;
     * the policies below them may change with CONFIG SET. */
    char dir[1024];                  /* where every persistence file lives */
    char dbfilename[256];            /* snapshot file name inside dir */
    _Atomic int appendonly;          /* 1 = AOF on (fixed at start-up) */
    char appendfilename[256];        /* AOF file name prefix */
    char appenddirname[256];         /* AOF directory inside dir */
    _Atomic int appendfsync;         /* CFG_FSYNC_ */
    _Atomic long long auto_aof_rewrite_percentage; /* 0 = no automatic rewrite */
    _Atomic long long auto_aof_rewrite_min_size;
    /* 1: refuse writes (-MISCONF) after a failed background save, until
     * one succeeds (Redis's default) */
    _Atomic int stop_writes_on_bgsave_error;
    /* save rules: snapshot when at least changes writes happened within
     * seconds. Stored parsed, as atomics, because the persistence thread
     * reads them while CONFIG SET may replace them. */
    _Atomic int save_nrules;
    _Atomic long long save_seconds[CFG_MAX_SAVE_RULES];
    _Atomic long long save_changes[CFG_MAX_SAVE_RULES];

    /* cluster mode (docs/CONSISTENCY.md); off while cluster_nodes is "" */
    int cluster_node_id;
    char cluster_nodes[1024];        /* "id@host:port[@busport]", comma or space separated */
    _Atomic long long cluster_batch_us;            /* bus send-gathering window */
    _Atomic long long cluster_heartbeat_ms;
    _Atomic long long cluster_election_timeout_ms; /* randomized in [t, 2t) */
    _Atomic long long cluster_request_timeout_ms;  /* no leader for this long: CLUSTERDOWN */
    _Atomic long long cluster_log_max_memory;      /* in-memory log entries beyond this are trimmed */
    /* The cluster bus secret: cluster-secret (never shown, like
     * requirepass) or cluster-secret-file (a path; the file's contents
     * without trailing white space). config_load_cluster_key resolves them
     * into cluster_key at start-up. */
    char cluster_secret[CFG_PASSWORD_MAX];
    char cluster_secret_file[1024];
    unsigned char cluster_key[CFG_CLUSTER_KEY_MAX];
    size_t cluster_key_len;          /* 0: no secret */

    /* The command line, kept for a node that must restart itself from its
     * AOF (cluster.c); NULL-terminated, owned by main. */
    char **argv;

    /* Warnings from loading the configuration (Redis options pier does not
     * implement, ignored values), one per line, printed once the log is
     * set up (config_log_warnings). malloc'd, bounded. */
    char *warnings;
    size_t warnings_len;
    pthread_mutex_t rewrite_lock;    /* one CONFIG REWRITE at a time */
} pier_config;

/* Fill cfg with defaults. */
void config_defaults(pier_config *cfg);

/* Parse argv (flags "--name value" and an optional first positional
 * argument naming a config file, as redis-server does). On error prints a
 * message naming the option and returns 2 (the exit code); returns 0 on
 * success, 1 when --help/--version was handled and the caller should exit 0. */
int config_from_args(pier_config *cfg, int argc, char **argv);

/* Parse a config file's text (name value lines, # comments, quoted values).
 * A Redis 7.0 option pier does not implement is skipped with a warning
 * (cfg->warnings); any other unknown name is an error. Returns 0 or writes
 * a message into err (file, line, reason) and returns -1. */
int config_load_text(pier_config *cfg, const char *text, size_t len,
                     const char *origin, char *err, size_t errlen);

/* Set one option by name from its string value. runtime != 0 refuses
 * options that cannot change while running. Returns 0, or -1 with err
 * holding the Redis-style reason. */
int config_set(pier_config *cfg, const char *name, const char *value,
               int runtime, char *err, size_t errlen);

/* Format one option's current value; returns bytes written or -1 when the
 * name is unknown. */
int config_get(const pier_config *cfg, const char *name, char *buf, size_t buflen);

/* The option's name in the table (io-threads -> threads), or NULL when
 * pier has no such option. */
const char *config_canonical_name(const char *name);

/* 1 for an option only a config file or a flag may set (rename-command). */
int config_is_file_only(const char *name);

/* Like config_get, but the value as configured (threads 0, batch-port
 * -1), not the one in use: what CONFIG REWRITE writes. */
int config_get_configured(const pier_config *cfg, const char *name, char *buf, size_t buflen);

/* Iterate option names (CONFIG GET with a pattern). NULL past the end.
 * Options that only exist in the config file (rename-command) are not
 * listed. */
const char *config_name_at(size_t i);

/* 1 for an option whose value must never be shown (requirepass,
 * cluster-secret):
 * config_get still returns the real value (CONFIG SET needs it to roll
 * back), so callers that print must hide it. */
int config_is_secret(const char *name);

/* 1 when name is a Redis 7.0 configuration option (file or CONFIG SET
 * name) that pier does not implement. */
int config_is_redis_only(const char *name);

/* Log the warnings collected while loading (log_warn, one per line) and
 * drop them. */
void config_log_warnings(pier_config *cfg);

/* The server resolved threads and batch-port (0 = batch port off). */
void config_set_in_use(pier_config *cfg, int threads, int batch_port);

/* CONFIG REWRITE: rewrite the config file the server was started with, as
 * Redis does: comments, blank lines and lines pier does not own are kept;
 * an option's first line gets its current value, its other lines go; an
 * option not in the file and not at its default is appended after a
 * "# Generated by CONFIG REWRITE" line. Written to a temporary file,
 * fsynced and renamed over the old one. Returns 0, or -1 with err holding
 * the reply's reason. */
int config_rewrite(pier_config *cfg, char *err, size_t errlen);

/* The text CONFIG REWRITE would write over old (no file touched): *out is
 * malloc'd (caller frees). Returns 0, or -1 with err set. */
int config_rewrite_text(const pier_config *cfg, const char *old, size_t old_len, char **out,
                        size_t *out_len, char *err, size_t errlen);

/* Resolve the cluster secret into cfg->cluster_key (start-up, cluster mode
 * only): from cluster-secret or from the file cluster-secret-file names
 * (not both), at least CFG_CLUSTER_KEY_MIN bytes. A key already there (a
 * restart handed it over) is kept. No secret leaves cluster_key_len 0.
 * Returns 0, or -1 with err (never holding the secret). */
int config_load_cluster_key(pier_config *cfg, char *err, size_t errlen);

/* 1 when requirepass is set. Lock-free. */
int config_auth_required(const pier_config *cfg);

/* AUTH: 1 when pass equals requirepass. Constant time: the work depends
 * only on len (which the caller already knows), never on the stored
 * password's length or on where the first difference is. */
int config_check_password(pier_config *cfg, const char *pass, size_t len);

/* The restart hand-over (server/restart.c): the whole configuration as
 * bytes (every option's current value, secrets included, each
 * rename-command line, the config file's path and the resolved cluster
 * key), records of u32 name length, name, u32 value length, value. Returns
 * a malloc'd buffer the caller wipes (explicit_bzero) and frees. */
char *config_dump(const pier_config *cfg, size_t *len);
/* Load a config_dump into cfg (fresh from config_defaults). 0, or -1 with
 * err (which never holds a value). */
int config_restore(pier_config *cfg, const char *buf, size_t len, char *err, size_t errlen);
/* A restarting node appends this flag and a file descriptor number to its
 * command line: config_from_args then reads the configuration from that
 * descriptor (a config_dump), closes it and ignores the other arguments. */
#define CONFIG_RESTART_FLAG "--restart-fd"

void config_free(pier_config *cfg);

#endif
