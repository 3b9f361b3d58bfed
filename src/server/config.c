/* config.c - the option table and its parsers (flags, file, CONFIG SET). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/codec.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "version.h"

enum opt_type {
    OPT_INT,      /* int, plain integer */
    OPT_LL,       /* _Atomic long long, plain integer */
    OPT_MEM,      /* _Atomic long long, with memory units (1k, 1kb, 1mb, 1gb) */
    OPT_STR,      /* char[] field */
    OPT_LOGLEVEL, /* _Atomic int */
    OPT_OBL,      /* client-output-buffer-limit: class hard soft seconds */
    OPT_ENUM,     /* _Atomic int: index of the value in `values` (yes/no too) */
    OPT_SECRET,   /* requirepass: stored under its lock, never shown */
    OPT_RENAME,   /* rename-command NAME NEWNAME|"": appended to cfg->renames */
    OPT_SAVE      /* save "<seconds> <changes> ...": parsed into cfg->save_* */
};

#define OPT_RUNTIME 1   /* may change with CONFIG SET */
#define OPT_FILE_ONLY 2 /* config file / flags only: unknown to CONFIG GET/SET */
#define OPT_COMPAT 4    /* redis.conf compatibility: any valid value is accepted,
                           one other than the default is ignored with a warning */
#define OPT_HIDDEN 8    /* a secret: never shown (config_is_secret), wiped from argv */

typedef struct option {
    const char *name;
    enum opt_type type;
    size_t off;
    long long min, max;
    int flags;
    const char *const *values; /* OPT_ENUM: NULL-terminated names */
    const char *help;          /* --help: what it means (the default is printed from
                                  config_defaults) */
} option;

/* Value lists for OPT_ENUM options; the index is what the field stores. */
static const char *const yes_no[] = {"no", "yes", NULL};
static const char *const io_models[] = {"loop", "thread", NULL};
/* Indexed by CFG_FSYNC_. */
static const char *const fsync_policies[] = {"no", "always", "everysec", NULL};
/* Indexed by CFG_EVICT_ (Redis's order, which its error text lists). */
static const char *const evict_policies[] = {
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
    "allkeys-lru",  "allkeys-lfu",  "allkeys-random",  "noeviction", NULL};

#define F(field) offsetof(pier_config, field)
#define STRMAX(field) sizeof(((pier_config *)0)->field)
static const option options[] = {
    {"bind", OPT_STR, F(bind), 0, STRMAX(bind), 0, NULL,
     "addresses to listen on, space separated; '-addr' is skipped when unavailable"},
    {"port", OPT_INT, F(port), 0, 65535, 0, NULL, "TCP port for clients (0 picks a free one)"},
    {"batch-port", OPT_INT, F(batch_port), -1, 65535, 0, NULL,
     "batch protocol port (docs/PROTOCOL.md); -1 = port + 1000 (skipped when busy), 0 = off"},
    {"batch-max-bytes", OPT_MEM, F(batch_max_bytes), 1024, 1LL << 30, OPT_RUNTIME, NULL,
     "largest batch payload a publisher may send"},
    {"threads", OPT_INT, F(threads), 0, 256, 0, NULL,
     "event-loop threads; 0 = one per core (alias io-threads)"},
    {"tcp-backlog", OPT_INT, F(tcp_backlog), 1, 65535, 0, NULL, "listen backlog"},
    {"tcp-keepalive", OPT_INT, F(tcp_keepalive), 0, INT_MAX, 0, NULL,
     "TCP keepalive seconds (0 = off)"},
    {"maxclients", OPT_LL, F(maxclients), 1, 1000000, OPT_RUNTIME, NULL,
     "connections beyond this are refused"},
    {"timeout", OPT_LL, F(timeout), 0, INT_MAX, OPT_RUNTIME, NULL,
     "close clients idle this many seconds (0 = never)"},
    {"proto-max-bulk-len", OPT_MEM, F(proto_max_bulk_len), 1024 * 1024, UINT32_MAX, OPT_RUNTIME,
     NULL, "largest bulk string accepted"},
    {"client-query-buffer-limit", OPT_MEM, F(client_query_buffer_limit), 1024 * 1024,
     LLONG_MAX, OPT_RUNTIME, NULL, "largest unparsed input per client"},
    {"client-output-buffer-limit", OPT_OBL, 0, 0, 0, OPT_RUNTIME, NULL,
     "<class> <hard> <soft> <seconds>: disconnect clients whose unsent replies pass them"},
    {"loglevel", OPT_LOGLEVEL, F(loglevel), 0, 0, OPT_RUNTIME, NULL,
     "silent, warning, normal or verbose (Redis's debug and notice too)"},
    {"logfile", OPT_STR, F(logfile), 0, STRMAX(logfile), 0, NULL,
     "append the log to this file (\"\" = stderr)"},
    {"pidfile", OPT_STR, F(pidfile), 0, STRMAX(pidfile), 0, NULL,
     "write the pid to this file while running"},
    {"daemonize", OPT_ENUM, F(daemonize), 0, 0, 0, yes_no,
     "run in the background once ready (start-up errors still reach the terminal)"},
    {"hz", OPT_LL, F(hz), 1, 500, OPT_RUNTIME, NULL,
     "background work (expiry, timeouts) per second"},
    {"databases", OPT_INT, F(databases), 1, INT_MAX, OPT_COMPAT, NULL,
     "accepted for redis.conf: pier has one database (other values are ignored)"},
    {"io", OPT_ENUM, F(io_model), 0, 0, 0, io_models,
     "loop: event-loop threads; thread: a thread per connection"},
    {"maxmemory", OPT_MEM, F(maxmemory), 0, LLONG_MAX, OPT_RUNTIME, NULL,
     "memory limit (0 = none)"},
    {"maxmemory-policy", OPT_ENUM, F(maxmemory_policy), 0, 0, OPT_RUNTIME, evict_policies,
     "what to do over maxmemory: evict (allkeys-*, volatile-*) or refuse writes (noeviction)"},
    {"maxmemory-samples", OPT_LL, F(maxmemory_samples), 1, INT_MAX, OPT_RUNTIME, NULL,
     "keys sampled per eviction round"},
    {"lfu-log-factor", OPT_LL, F(lfu_log_factor), 0, INT_MAX, OPT_RUNTIME, NULL,
     "LFU counter growth (higher = slower)"},
    {"lfu-decay-time", OPT_LL, F(lfu_decay_time), 0, INT_MAX, OPT_RUNTIME, NULL,
     "minutes per LFU counter decrement (0 = never)"},
    {"requirepass", OPT_SECRET, 0, 0, 0, OPT_RUNTIME, NULL,
     "password for AUTH (\"\" = none); never shown"},
    {"protected-mode", OPT_ENUM, F(protected_mode), 0, 0, OPT_RUNTIME, yes_no,
     "without a password, refuse non-loopback clients"},
    {"rename-command", OPT_RENAME, 0, 0, 0, OPT_FILE_ONLY, NULL,
     "NAME NEWNAME, or NAME \"\" to disable a command (repeatable)"},
    /* persistence: paths and appendonly are fixed once running (changing
     * them would need the files moved or an AOF created on the fly) */
    {"dir", OPT_STR, F(dir), 0, STRMAX(dir), 0, NULL, "directory of every persistence file"},
    {"dbfilename", OPT_STR, F(dbfilename), 0, STRMAX(dbfilename), 0, NULL,
     "snapshot file name in dir"},
    {"appendonly", OPT_ENUM, F(appendonly), 0, 0, 0, yes_no,
     "log every write to the append-only file and load it at start-up"},
    {"appendfilename", OPT_STR, F(appendfilename), 0, STRMAX(appendfilename), 0, NULL,
     "prefix of the AOF file names"},
    {"appenddirname", OPT_STR, F(appenddirname), 0, STRMAX(appenddirname), 0, NULL,
     "AOF directory in dir"},
    {"appendfsync", OPT_ENUM, F(appendfsync), 0, 0, OPT_RUNTIME, fsync_policies,
     "always, everysec or no"},
    {"auto-aof-rewrite-percentage", OPT_LL, F(auto_aof_rewrite_percentage), 0, INT_MAX,
     OPT_RUNTIME, NULL, "rewrite the AOF when it grew this % since the last rewrite (0 = never)"},
    {"auto-aof-rewrite-min-size", OPT_MEM, F(auto_aof_rewrite_min_size), 0, LLONG_MAX,
     OPT_RUNTIME, NULL, "... and is at least this big"},
    {"save", OPT_SAVE, 0, 0, 0, OPT_RUNTIME, NULL,
     "snapshot rules <seconds> <changes> ...; \"\" = no snapshots"},
    {"stop-writes-on-bgsave-error", OPT_ENUM, F(stop_writes_on_bgsave_error), 0, 0, OPT_RUNTIME,
     yes_no, "refuse writes with -MISCONF while the last background save failed (save rules set)"},
    {"cluster-node-id", OPT_INT, F(cluster_node_id), 0, 255, 0, NULL,
     "this node's id in cluster-nodes (1..255)"},
    {"cluster-nodes", OPT_STR, F(cluster_nodes), 0, STRMAX(cluster_nodes), 0, NULL,
     "cluster members id@host:port[@busport]; \"\" = single node"},
    {"cluster-batch-us", OPT_LL, F(cluster_batch_us), 0, 100000, OPT_RUNTIME, NULL,
     "bus send-gathering window in microseconds"},
    {"cluster-heartbeat-ms", OPT_LL, F(cluster_heartbeat_ms), 1, 10000, OPT_RUNTIME, NULL,
     "leader heartbeat period"},
    {"cluster-election-timeout-ms", OPT_LL, F(cluster_election_timeout_ms), 10, 600000,
     OPT_RUNTIME, NULL, "election timeout, randomized in [t, 2t)"},
    {"cluster-log-max-memory", OPT_MEM, F(cluster_log_max_memory), 1 << 20, LLONG_MAX,
     OPT_RUNTIME, NULL, "in-memory log entries beyond this are trimmed (the AOF keeps them)"},
    {"cluster-request-timeout-ms", OPT_LL, F(cluster_request_timeout_ms), 1, 3600000,
     OPT_RUNTIME, NULL, "a request with no leader for this long answers CLUSTERDOWN"},
    {"cluster-secret", OPT_STR, F(cluster_secret), 0, STRMAX(cluster_secret), OPT_HIDDEN, NULL,
     "the cluster bus secret (at least 16 bytes; prefer cluster-secret-file)"},
    {"cluster-secret-file", OPT_STR, F(cluster_secret_file), 0, STRMAX(cluster_secret_file), 0,
     NULL, "a file holding the cluster bus secret (mode 600)"},
};
#undef STRMAX
#undef F
#define NOPTIONS (sizeof options / sizeof options[0])

void config_defaults(pier_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->bind, sizeof cfg->bind, "127.0.0.1");
    cfg->port = 7379;
    cfg->batch_port = -1; /* port + 1000 */
    atomic_init(&cfg->batch_max_bytes, 64LL * 1024 * 1024);
    cfg->threads = 0;
    cfg->tcp_backlog = 511;
    cfg->tcp_keepalive = 300;
    atomic_init(&cfg->maxclients, 10000);
    atomic_init(&cfg->timeout, 0);
    atomic_init(&cfg->proto_max_bulk_len, 512LL * 1024 * 1024);
    atomic_init(&cfg->client_query_buffer_limit, 1024LL * 1024 * 1024);
    /* Reading pauses above 16 MB of unsent replies (backpressure); a client
     * whose replies still reach 1 GB (one huge reply) is disconnected. */
    atomic_init(&cfg->output_pause_limit, 16LL * 1024 * 1024);
    atomic_init(&cfg->output_hard_limit, 1024LL * 1024 * 1024);
    /* Redis's pubsub defaults: 32mb hard, 8mb soft for 60 s. */
    atomic_init(&cfg->pubsub_hard_limit, 32LL * 1024 * 1024);
    atomic_init(&cfg->pubsub_soft_limit, 8LL * 1024 * 1024);
    atomic_init(&cfg->pubsub_soft_seconds, 60);
    atomic_init(&cfg->maxmemory_policy, CFG_EVICT_NOEVICTION);
    atomic_init(&cfg->maxmemory_samples, 5);
    atomic_init(&cfg->lfu_log_factor, 10);
    atomic_init(&cfg->lfu_decay_time, 1);
    atomic_init(&cfg->protected_mode, 1);
    pthread_mutex_init(&cfg->password_lock, NULL);
    atomic_init(&cfg->loglevel, LOG_NORMAL);
    atomic_init(&cfg->loglevel_spelling, log_find_spelling("normal"));
    cfg->threads_in_use = cfg->batch_port_in_use = -1;
    pthread_mutex_init(&cfg->rewrite_lock, NULL);
    atomic_init(&cfg->hz, 10);
    cfg->databases = 1;
    snprintf(cfg->dir, sizeof cfg->dir, ".");
    snprintf(cfg->dbfilename, sizeof cfg->dbfilename, "dump.pier");
    snprintf(cfg->appendfilename, sizeof cfg->appendfilename, "appendonly.aof");
    snprintf(cfg->appenddirname, sizeof cfg->appenddirname, "appendonlydir");
    atomic_init(&cfg->appendfsync, CFG_FSYNC_EVERYSEC);
    atomic_init(&cfg->auto_aof_rewrite_percentage, 100);
    atomic_init(&cfg->auto_aof_rewrite_min_size, 64LL * 1024 * 1024);
    atomic_init(&cfg->stop_writes_on_bgsave_error, 1);
    atomic_init(&cfg->cluster_batch_us, 0);
    atomic_init(&cfg->cluster_heartbeat_ms, 50);
    atomic_init(&cfg->cluster_election_timeout_ms, 500);
    atomic_init(&cfg->cluster_request_timeout_ms, 5000);
    atomic_init(&cfg->cluster_log_max_memory, 256LL << 20);
    /* Redis's default: after 3600 s if 1 change, 300 s if 100, 60 s if 10000. */
    static const long long default_save[][2] = {{3600, 1}, {300, 100}, {60, 10000}};
    for (int i = 0; i < 3; i++) {
        atomic_init(&cfg->save_seconds[i], default_save[i][0]);
        atomic_init(&cfg->save_changes[i], default_save[i][1]);
    }
    atomic_init(&cfg->save_nrules, 3);
}

void config_free(pier_config *cfg) {
    free(cfg->config_file);
    cfg->config_file = NULL;
    free(cfg->warnings);
    cfg->warnings = NULL;
    cfg->warnings_len = 0;
    pthread_mutex_destroy(&cfg->rewrite_lock);
    /* Do not leave the secrets in freed memory. */
    explicit_bzero(cfg->password, sizeof cfg->password);
    explicit_bzero(cfg->cluster_secret, sizeof cfg->cluster_secret);
    explicit_bzero(cfg->cluster_key, sizeof cfg->cluster_key);
    pthread_mutex_destroy(&cfg->password_lock);
}

static const option *find_option(const char *name) {
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strcasecmp(options[i].name, name) == 0) return &options[i];
    /* Redis spells the loop-thread count io-threads. */
    if (strcasecmp(name, "io-threads") == 0) return find_option("threads");
    return NULL;
}

#define WARNINGS_MAX (16 * 1024)

/* Queue one warning line for config_log_warnings; past WARNINGS_MAX bytes
 * the rest are dropped (a config file of nothing but unknown lines). */
static void add_warning(pier_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_warning(pier_config *cfg, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = strlen(line);
    line[len++] = '\n';
    if (cfg->warnings_len + len > WARNINGS_MAX) return;
    char *p = xrealloc(cfg->warnings, cfg->warnings_len + len + 1);
    memcpy(p + cfg->warnings_len, line, len);
    cfg->warnings_len += len;
    p[cfg->warnings_len] = 0;
    cfg->warnings = p;
}

void config_log_warnings(pier_config *cfg) {
    for (char *line = cfg->warnings, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = 0;
        log_warn("%s", line);
    }
    free(cfg->warnings);
    cfg->warnings = NULL;
    cfg->warnings_len = 0;
}

void config_set_in_use(pier_config *cfg, int threads, int batch_port) {
    cfg->threads_in_use = threads;
    cfg->batch_port_in_use = batch_port;
}

const char *config_name_at(size_t i) {
    for (size_t k = 0; k < NOPTIONS; k++) {
        if (options[k].flags & OPT_FILE_ONLY) continue;
        if (i-- == 0) return options[k].name;
    }
    return NULL;
}

int config_is_secret(const char *name) {
    const option *o = find_option(name);
    return o && (o->type == OPT_SECRET || (o->flags & OPT_HIDDEN));
}

/* The key file's contents into cfg->cluster_key, trailing white space
 * (a final newline) dropped. 0 or -1 with err. */
static int read_key_file(pier_config *cfg, char *err, size_t errlen) {
    const char *path = cfg->cluster_secret_file;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "cluster-secret-file '%s': %s", path,
                 fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) close(fd);
        return -1;
    }
    if (st.st_mode & 077)
        log_warn("cluster-secret-file '%s' can be read by other users (mode %03o); "
                 "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    unsigned char buf[CFG_CLUSTER_KEY_MAX + 1];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0 || n > CFG_CLUSTER_KEY_MAX) {
        snprintf(err, errlen, "cluster-secret-file '%s': %s", path,
                 n < 0 ? strerror(errno) : "longer than 1024 bytes");
        explicit_bzero(buf, sizeof buf);
        return -1;
    }
    while (n > 0 && isspace(buf[n - 1])) n--;
    memcpy(cfg->cluster_key, buf, (size_t)n);
    cfg->cluster_key_len = (size_t)n;
    explicit_bzero(buf, sizeof buf);
    return 0;
}

int config_load_cluster_key(pier_config *cfg, char *err, size_t errlen) {
    if (cfg->cluster_key_len) return 0; /* handed over by a restart */
    if (cfg->cluster_secret[0] && cfg->cluster_secret_file[0]) {
        snprintf(err, errlen, "set cluster-secret or cluster-secret-file, not both");
        return -1;
    }
    if (cfg->cluster_secret_file[0]) {
        if (read_key_file(cfg, err, errlen) < 0) return -1;
    } else {
        cfg->cluster_key_len = strlen(cfg->cluster_secret);
        memcpy(cfg->cluster_key, cfg->cluster_secret, cfg->cluster_key_len);
    }
    if (cfg->cluster_key_len && cfg->cluster_key_len < CFG_CLUSTER_KEY_MIN) {
        snprintf(err, errlen, "the cluster secret is %zu bytes; use at least %d (e.g. 32 random "
                              "bytes in hex)", cfg->cluster_key_len, CFG_CLUSTER_KEY_MIN);
        explicit_bzero(cfg->cluster_key, sizeof cfg->cluster_key);
        cfg->cluster_key_len = 0;
        return -1;
    }
    return 0;
}

int config_auth_required(const pier_config *cfg) { return CFG_GET(cfg->password_set); }

int config_check_password(pier_config *cfg, const char *pass, size_t len) {
    pthread_mutex_lock(&cfg->password_lock);
    /* Walk the attempt (length known to the caller) against the stored
     * bytes in a fixed-size, zero-padded buffer: no early exit, no length-
     * dependent branch or division, so timing tells nothing about the
     * stored password. A length mismatch is folded into the same result. */
    unsigned diff = (unsigned)(len != cfg->password_len);
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)pass[i] ^ (unsigned char)cfg->password[i & (CFG_PASSWORD_MAX - 1)];
    int set = cfg->password_len != 0;
    pthread_mutex_unlock(&cfg->password_lock);
    return set && diff == 0;
}

static int set_password(pier_config *cfg, const char *value, char *err, size_t errlen) {
    size_t len = strlen(value);
    if (len >= CFG_PASSWORD_MAX) {
        snprintf(err, errlen, "argument is too long");
        return -1;
    }
    pthread_mutex_lock(&cfg->password_lock);
    explicit_bzero(cfg->password, sizeof cfg->password);
    memcpy(cfg->password, value, len);
    cfg->password_len = len;
    atomic_store(&cfg->password_set, len != 0);
    pthread_mutex_unlock(&cfg->password_lock);
    return 0;
}

/* "NAME NEWNAME" or "NAME " (the config file's `rename-command NAME ""`:
 * the empty word leaves a trailing separator) -> disabled. */
static int add_rename(pier_config *cfg, const char *value, char *err, size_t errlen) {
    const char *sp = strchr(value, ' ');
    size_t from_len = sp ? (size_t)(sp - value) : 0;
    const char *to = sp ? sp + 1 : "";
    if (!sp || from_len == 0 || strchr(to, ' ')) {
        snprintf(err, errlen,
                 "rename-command needs a command name and a new name (\"\" disables it)");
        return -1;
    }
    if (cfg->nrenames == CFG_RENAME_MAX || from_len >= CFG_CMDNAME_MAX ||
        strlen(to) >= CFG_CMDNAME_MAX) {
        snprintf(err, errlen, "too many rename-command lines or name too long");
        return -1;
    }
    memcpy(cfg->renames[cfg->nrenames].from, value, from_len);
    cfg->renames[cfg->nrenames].from[from_len] = 0;
    snprintf(cfg->renames[cfg->nrenames].to, CFG_CMDNAME_MAX, "%s", to);
    cfg->nrenames++;
    return 0;
}

/* save "<seconds> <changes> ..." (pairs of positive integers; "" turns
 * snapshots off): replaces every rule. Parsed completely before anything
 * is stored, so a bad value leaves the old rules in place. (Several
 * `save` lines in a config file add up: config_load_text joins them.) */
static int set_save(pier_config *cfg, const char *value, char *err, size_t errlen) {
    long long secs[CFG_MAX_SAVE_RULES], changes[CFG_MAX_SAVE_RULES];
    int n = 0, words = 0;
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", value);
    char *save = NULL;
    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save), words++) {
        long long v;
        if (!util_parse_ll(w, strlen(w), &v) || v < 1 || words / 2 >= CFG_MAX_SAVE_RULES) {
            snprintf(err, errlen, "Invalid save parameters");
            return -1;
        }
        if (words % 2 == 0) secs[n] = v;
        else changes[n++] = v;
    }
    if (words % 2) {
        snprintf(err, errlen, "Invalid save parameters");
        return -1;
    }
    atomic_store(&cfg->save_nrules, 0); /* readers see no rule while we rewrite */
    for (int i = 0; i < n; i++) {
        atomic_store(&cfg->save_seconds[i], secs[i]);
        atomic_store(&cfg->save_changes[i], changes[i]);
    }
    atomic_store(&cfg->save_nrules, n);
    return 0;
}

static int get_save(const pier_config *cfg, char *buf, size_t buflen) {
    int n = CFG_GET(cfg->save_nrules), used = 0;
    if (buflen) buf[0] = 0;
    for (int i = 0; i < n && (size_t)used < buflen; i++) {
        int w = snprintf(buf + used, buflen - (size_t)used, "%s%lld %lld", i ? " " : "",
                         CFG_GET(cfg->save_seconds[i]), CFG_GET(cfg->save_changes[i]));
        if (w < 0) return -1;
        used += w;
    }
    return used;
}

/* "100", "1k" (1000), "1kb" (1024), "5mb", "2gb" as Redis does. */
static int parse_memory(const char *s, long long *out) {
    return util_parse_memory(s, strlen(s), out);
}

/* "<class> <hard> <soft> <seconds>"...: normal (every connection, after
 * its commands) and pubsub (messages delivered to subscribers,
 * server/pubsub.c); replica/slave are accepted for redis.conf
 * compatibility and ignored (pier has no replicas). */
static int set_obl(pier_config *cfg, const char *value, char *err, size_t errlen) {
    /* Two passes, validate then apply: an error in a later class must
     * leave every limit unchanged (Redis parses all classes first too). */
    for (int apply = 0; apply < 2; apply++) {
        char cls[32], hs[32], ss[32], secs[32];
        const char *p = value;
        int n, done = 0;
        while (!done && sscanf(p, "%31s %31s %31s %31s%n", cls, hs, ss, secs, &n) == 4) {
            long long hard, soft, sec;
            if (!parse_memory(hs, &hard) || !parse_memory(ss, &soft) ||
                !util_parse_ll(secs, strlen(secs), &sec) || sec < 0) {
                snprintf(err, errlen, "argument couldn't be parsed into a client output buffer limit");
                return -1;
            }
            if (!strcasecmp(cls, "normal")) {
                if (apply) {
                    /* 0 means unlimited, as in Redis. */
                    atomic_store(&cfg->output_hard_limit, hard ? hard : LLONG_MAX);
                    atomic_store(&cfg->output_soft_limit, soft);
                    atomic_store(&cfg->output_soft_seconds, sec);
                }
            } else if (!strcasecmp(cls, "pubsub")) {
                if (apply) {
                    atomic_store(&cfg->pubsub_hard_limit, hard);
                    atomic_store(&cfg->pubsub_soft_limit, soft);
                    atomic_store(&cfg->pubsub_soft_seconds, sec);
                }
            } else if (strcasecmp(cls, "replica") && strcasecmp(cls, "slave")) {
                snprintf(err, errlen, "Invalid client class specified in buffer limit configuration.");
                return -1;
            }
            p += n;
            while (*p == ' ') p++;
            done = !*p;
        }
        if (!done) {
            snprintf(err, errlen, "Wrong number of arguments in buffer limit configuration.");
            return -1;
        }
    }
    return 0;
}

static int set_number(pier_config *cfg, const option *o, const char *value,
                      char *err, size_t errlen) {
    long long v;
    int ok = o->type == OPT_MEM ? parse_memory(value, &v)
                                : util_parse_ll(value, strlen(value), &v);
    if (!ok) {
        snprintf(err, errlen, "argument couldn't be parsed into an integer");
        return -1;
    }
    if (v < o->min || v > o->max) {
        snprintf(err, errlen, "argument must be between %lld and %lld inclusive", o->min, o->max);
        return -1;
    }
    char *field = (char *)cfg + o->off;
    if ((o->flags & OPT_COMPAT) && o->type == OPT_INT && v != *(int *)field) {
        add_warning(cfg, "%s %lld: %s; keeping %d", o->name, v, o->help, *(int *)field);
        return 0;
    }
    if (o->type == OPT_INT) *(int *)field = (int)v;
    else atomic_store((_Atomic long long *)field, v);
    return 0;
}

static int set_enum(const option *o, char *field, const char *value, char *err, size_t errlen) {
    for (int i = 0; o->values[i]; i++) {
        if (strcasecmp(o->values[i], value)) continue;
        atomic_store((_Atomic int *)field, i);
        return 0;
    }
    if (o->values == yes_no) {
        snprintf(err, errlen, "argument must be 'yes' or 'no'");
        return -1;
    }
    size_t used = (size_t)snprintf(err, errlen, "argument(s) must be one of the following:");
    for (int i = 0; o->values[i] && used < errlen; i++)
        used += (size_t)snprintf(err + used, errlen - used, "%s %s", i ? "," : "", o->values[i]);
    return -1;
}

/* Any name log.c knows (Redis's and pier's); CONFIG GET shows the name
 * given. The error lists every name, Redis's first (its text). */
static int set_loglevel(pier_config *cfg, char *field, const char *value, char *err,
                        size_t errlen) {
    int idx = log_find_spelling(value);
    if (idx < 0) {
        size_t used = (size_t)snprintf(err, errlen, "argument(s) must be one of the following:");
        for (int i = 0; log_level_spelling(i) && used < errlen; i++)
            used += (size_t)snprintf(err + used, errlen - used, "%s %s", i ? "," : "",
                                     log_level_spelling(i));
        return -1;
    }
    atomic_store(&cfg->loglevel_spelling, idx);
    atomic_store((_Atomic int *)field, log_spelling_level(idx));
    log_set_level(log_spelling_level(idx));
    return 0;
}

int config_set(pier_config *cfg, const char *name, const char *value, int runtime,
               char *err, size_t errlen) {
    const option *o = find_option(name);
    if (!o) {
        snprintf(err, errlen, "unknown option '%s'", name);
        return -1;
    }
    if (runtime && !(o->flags & OPT_RUNTIME)) {
        snprintf(err, errlen, "can't set immutable config");
        return -1;
    }
    char *field = (char *)cfg + o->off;
    switch (o->type) {
    case OPT_INT:
    case OPT_LL:
    case OPT_MEM:
        return set_number(cfg, o, value, err, errlen);
    case OPT_STR:
        if (strlen(value) >= (size_t)o->max) {
            snprintf(err, errlen, "argument is too long");
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case OPT_LOGLEVEL:
        return set_loglevel(cfg, field, value, err, errlen);
    case OPT_OBL:
        return set_obl(cfg, value, err, errlen);
    case OPT_ENUM:
        return set_enum(o, field, value, err, errlen);
    case OPT_SECRET:
        return set_password(cfg, value, err, errlen);
    case OPT_RENAME:
        return add_rename(cfg, value, err, errlen);
    case OPT_SAVE:
        return set_save(cfg, value, err, errlen);
    }
    return -1;
}

/* The field holding the value in use of an option whose automatic
 * setting the server resolves at start-up (threads 0, batch-port -1), or
 * NULL. Shown by CONFIG GET once resolved (>= 0). */
static const int *in_use_field(const pier_config *cfg, const option *o) {
    if (o->off == offsetof(pier_config, threads)) return &cfg->threads_in_use;
    if (o->off == offsetof(pier_config, batch_port)) return &cfg->batch_port_in_use;
    return NULL;
}

/* One option's value: the configured one, or (in_use) the one the server
 * resolved it to, when it did. */
static int get_value(const pier_config *cfg, const option *o, int in_use, char *buf,
                     size_t buflen) {
    const char *field = (const char *)cfg + o->off;
    switch (o->type) {
    case OPT_INT:
        if (in_use && in_use_field(cfg, o) && *in_use_field(cfg, o) >= 0)
            field = (const char *)in_use_field(cfg, o);
        return snprintf(buf, buflen, "%d", *(const int *)field);
    case OPT_LL:
    case OPT_MEM:
        return snprintf(buf, buflen, "%lld", CFG_GET(*(_Atomic long long *)field));
    case OPT_STR:
        return snprintf(buf, buflen, "%s", field);
    case OPT_LOGLEVEL:
        return snprintf(buf, buflen, "%s", log_level_spelling(CFG_GET(cfg->loglevel_spelling)));
    case OPT_OBL: {
        long long hard = CFG_GET(cfg->output_hard_limit);
        return snprintf(buf, buflen, "normal %lld %lld %lld replica 0 0 0 pubsub %lld %lld %lld",
                        hard == LLONG_MAX ? 0 : hard, CFG_GET(cfg->output_soft_limit),
                        CFG_GET(cfg->output_soft_seconds), CFG_GET(cfg->pubsub_hard_limit),
                        CFG_GET(cfg->pubsub_soft_limit), CFG_GET(cfg->pubsub_soft_seconds));
    }
    case OPT_ENUM:
        return snprintf(buf, buflen, "%s", o->values[CFG_GET(*(_Atomic int *)field)]);
    case OPT_SECRET: {
        pthread_mutex_t *lock = (pthread_mutex_t *)&cfg->password_lock;
        pthread_mutex_lock(lock);
        int n = snprintf(buf, buflen, "%s", cfg->password);
        pthread_mutex_unlock(lock);
        return n;
    }
    case OPT_RENAME:
        return -1;
    case OPT_SAVE:
        return get_save(cfg, buf, buflen);
    }
    return -1;
}

int config_get(const pier_config *cfg, const char *name, char *buf, size_t buflen) {
    const option *o = find_option(name);
    if (!o || (o->flags & OPT_FILE_ONLY)) return -1;
    return get_value(cfg, o, 1, buf, buflen);
}

const char *config_canonical_name(const char *name) {
    const option *o = find_option(name);
    return o ? o->name : NULL;
}

int config_is_file_only(const char *name) {
    const option *o = find_option(name);
    return o && (o->flags & OPT_FILE_ONLY);
}

int config_get_configured(const pier_config *cfg, const char *name, char *buf, size_t buflen) {
    const option *o = find_option(name);
    if (!o || (o->flags & OPT_FILE_ONLY)) return -1;
    return get_value(cfg, o, 0, buf, buflen);
}

/* --- config file --- */

#define LINE_WORDS_MAX 128 /* words of one config line (bind: 16 addresses) */

/* Split one line into words with redis.conf quoting ("..." and '...').
 * Returns the word count, -1 on unbalanced quotes, -2 past max words. */
static int split_line(char *line, char **words, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) return n;
        if (n == max) return -2;
        char q = (*p == '"' || *p == '\'') ? *p : 0;
        if (q) p++;
        words[n++] = p;
        char *w = p;
        while (*p && (q ? *p != q : (*p != ' ' && *p != '\t'))) {
            if (q == '"' && *p == '\\' && p[1]) p++;
            *w++ = *p++;
        }
        if (q && *p != q) return -1;
        if (*p) p++;
        *w = 0;
    }
}

/* redis.conf: every `save` line adds rules to those of the lines before
 * it in the same file (the first replaces the defaults); `save ""` clears
 * them. acc holds the file's rules so far. */
static void add_save_line(char *acc, size_t cap, const char *value) {
    size_t used = strlen(acc);
    if (!value[0]) acc[0] = 0;
    else if (snprintf(acc + used, cap - used, "%s%s", used ? " " : "", value) < 0) acc[0] = 0;
}

/* 1 for a line with nothing to parse: blank, or a comment (its first
 * non-blank character is '#', as in Redis: checked before the line is
 * split, so a comment may hold anything, quotes and any number of words). */
static int skip_line(const char *line) {
    while (*line == ' ' || *line == '\t') line++;
    return *line == 0 || *line == '#';
}

#define CFG_VALUE_MAX 1024 /* bytes of one option's value, words joined */

/* Join n words with single spaces (multi-word values: bind, save, buffer
 * limits). Returns 0, or -1 when they do not fit in cap. */
static int join_words(char *out, size_t cap, char *const *words, int n) {
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        int w = snprintf(out + used, cap - used, "%s%s", i ? " " : "", words[i]);
        if (w < 0 || (size_t)w >= cap - used) return -1;
        used += (size_t)w;
    }
    return 0;
}

/* Name of an unknown flag or file line: a Redis option pier does not
 * implement is skipped with a warning, anything else is an error. */
static int skip_redis_option(pier_config *cfg, const char *origin, const char *name) {
    if (find_option(name) || !config_is_redis_only(name)) return 0;
    add_warning(cfg, "%s: '%s' is a Redis option pier does not implement: ignored", origin,
                name);
    return 1;
}

/* One non-comment line. Returns 0, or -1 with the reason in reason. */
static int load_line(pier_config *cfg, char *line, char *saves, size_t saves_cap,
                     const char *origin, int lineno, char *reason, size_t rlen) {
    char *words[LINE_WORDS_MAX];
    int nw = split_line(line, words, LINE_WORDS_MAX);
    if (nw < 0) {
        snprintf(reason, rlen, nw == -1 ? "unbalanced quotes"
                                        : "too many arguments (at most %d)", LINE_WORDS_MAX - 1);
        return -1;
    }
    char where[300];
    snprintf(where, sizeof where, "%s:%d", origin, lineno);
    if (skip_redis_option(cfg, where, words[0])) return 0;
    if (nw < 2) {
        snprintf(reason, rlen, "'%s' needs a value", words[0]);
        return -1;
    }
    char value[CFG_VALUE_MAX];
    if (join_words(value, sizeof value, words + 1, nw - 1) < 0) {
        snprintf(reason, rlen, "the value of '%s' is too long (at most %zu bytes)", words[0],
                 sizeof value - 1);
        return -1;
    }
    if (!strcasecmp(words[0], "save")) {
        add_save_line(saves, saves_cap, value);
        return config_set(cfg, "save", saves, 0, reason, rlen);
    }
    return config_set(cfg, words[0], value, 0, reason, rlen);
}

int config_load_text(pier_config *cfg, const char *text, size_t len, const char *origin,
                     char *err, size_t errlen) {
    char saves[1024] = "";
    const char *nul = memchr(text, 0, len);
    if (nul) {
        int at = 1;
        for (const char *p = text; p < nul; p++) at += *p == '\n';
        snprintf(err, errlen, "%s:%d: a NUL byte (not a text file?)", origin, at);
        return -1;
    }
    char *copy = xmalloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = 0;
    int rc = 0, lineno = 0;
    for (char *line = copy, *next; line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[ll - 1] = 0;
        if (skip_line(line)) continue;
        char reason[256];
        rc = load_line(cfg, line, saves, sizeof saves, origin, lineno, reason, sizeof reason);
        if (rc) snprintf(err, errlen, "%s:%d: %s", origin, lineno, reason);
    }
    free(copy);
    return rc;
}

static int load_file(pier_config *cfg, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "pier-server: cannot open config file '%s': %s\n", path, strerror(errno));
        return 2;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[65536];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            buf = xrealloc(buf, cap);
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    char err[512];
    int rc = config_load_text(cfg, buf ? buf : "", len, path, err, sizeof err);
    free(buf);
    if (rc) {
        fprintf(stderr, "pier-server: bad config: %s\n", err);
        return 2;
    }
    cfg->config_file = realpath(path, NULL);
    return 0;
}

/* --- the restart hand-over --- */

#define DUMP_CONFIG_FILE "!config-file" /* internal records: no option starts with '!' */
#define DUMP_CLUSTER_KEY "!cluster-key"
#define DUMP_VALUE_MAX 4096

static void dump_put(char **buf, size_t *len, size_t *cap, const char *name, const void *v,
                     size_t vlen) {
    size_t nlen = strlen(name), need = 8 + nlen + vlen;
    if (*len + need > *cap) {
        size_t ncap = (*len + need) * 2;
        char *nb = xmalloc(ncap);
        if (*len) memcpy(nb, *buf, *len);
        if (*buf) explicit_bzero(*buf, *cap); /* no secret left in freed memory */
        free(*buf);
        *buf = nb;
        *cap = ncap;
    }
    unsigned char *p = (unsigned char *)*buf + *len;
    codec_put_le32(p, (uint32_t)nlen);
    memcpy(p + 4, name, nlen);
    p += 4 + nlen;
    codec_put_le32(p, (uint32_t)vlen);
    if (vlen) memcpy(p + 4, v, vlen);
    *len += need;
}

char *config_dump(const pier_config *cfg, size_t *len) {
    char *buf = NULL, v[DUMP_VALUE_MAX];
    size_t used = 0, cap = 0;
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option *o = &options[i];
        if (o->type == OPT_RENAME) {
            for (int k = 0; k < cfg->nrenames; k++) {
                int n = snprintf(v, sizeof v, "%s %s", cfg->renames[k].from, cfg->renames[k].to);
                dump_put(&buf, &used, &cap, o->name, v, (size_t)n);
            }
            continue;
        }
        int n = config_get(cfg, o->name, v, sizeof v);
        if (n >= 0 && (size_t)n < sizeof v) dump_put(&buf, &used, &cap, o->name, v, (size_t)n);
    }
    if (cfg->config_file)
        dump_put(&buf, &used, &cap, DUMP_CONFIG_FILE, cfg->config_file, strlen(cfg->config_file));
    if (cfg->cluster_key_len)
        dump_put(&buf, &used, &cap, DUMP_CLUSTER_KEY, cfg->cluster_key, cfg->cluster_key_len);
    explicit_bzero(v, sizeof v);
    *len = used;
    return buf;
}

/* One record at *pos: 0 with views into buf, 1 at the end, -1 if cut. */
static int dump_next(const char *buf, size_t len, size_t *pos, const char **name, size_t *nlen,
                     const char **val, size_t *vlen) {
    if (*pos == len) return 1;
    size_t f[2], at = *pos;
    const char *p[2];
    for (int k = 0; k < 2; k++) {
        if (len - at < 4) return -1;
        f[k] = codec_get_le32((const unsigned char *)buf + at);
        at += 4;
        if (len - at < f[k]) return -1;
        p[k] = buf + at;
        at += f[k];
    }
    *name = p[0], *nlen = f[0], *val = p[1], *vlen = f[1];
    *pos = at;
    return 0;
}

/* One record into cfg. 0 or -1 with err. */
static int restore_one(pier_config *cfg, const char *name, const char *val, size_t vlen,
                       char *err, size_t errlen) {
    if (!strcmp(name, DUMP_CLUSTER_KEY)) {
        if (vlen > CFG_CLUSTER_KEY_MAX) {
            snprintf(err, errlen, "cluster key too long");
            return -1;
        }
        memcpy(cfg->cluster_key, val, vlen);
        cfg->cluster_key_len = vlen;
        return 0;
    }
    if (memchr(val, 0, vlen)) {
        snprintf(err, errlen, "'%s': NUL in value", name);
        return -1;
    }
    char *v = xstrndup(val, vlen);
    if (!strcmp(name, DUMP_CONFIG_FILE)) {
        free(cfg->config_file);
        cfg->config_file = v;
        return 0;
    }
    char reason[256];
    int rc = config_set(cfg, name, v, 0, reason, sizeof reason);
    if (rc) snprintf(err, errlen, "'%s': %s", name, reason);
    explicit_bzero(v, vlen);
    free(v);
    return rc;
}

int config_restore(pier_config *cfg, const char *buf, size_t len, char *err, size_t errlen) {
    size_t pos = 0;
    for (;;) {
        const char *name, *val;
        size_t nlen, vlen;
        int rc = dump_next(buf, len, &pos, &name, &nlen, &val, &vlen);
        if (rc == 1) return 0;
        char n[64];
        if (rc < 0 || nlen == 0 || nlen >= sizeof n) {
            snprintf(err, errlen, "damaged record at byte %zu", pos);
            return -1;
        }
        memcpy(n, name, nlen);
        n[nlen] = 0;
        if (restore_one(cfg, n, val, vlen, err, errlen) < 0) return -1;
    }
}

/* --restart-fd N: the configuration a restarting node handed over. */
static int restore_from_fd(pier_config *cfg, const char *arg) {
    long long fd;
    char err[256] = "";
    if (!util_parse_ll(arg, strlen(arg), &fd) || fd < 3 || fd > INT_MAX) {
        fprintf(stderr, "pier-server: %s needs a file descriptor\n", CONFIG_RESTART_FLAG);
        return 2;
    }
    /* A dump is a few KB (every value is bounded); 1 MB is plenty. */
    size_t len = 0, cap = 1u << 20;
    char *buf = xmalloc(cap);
    ssize_t n;
    while ((n = read((int)fd, buf + len, cap - len)) > 0) len += (size_t)n;
    close((int)fd);
    if (len == cap) snprintf(err, sizeof err, "larger than %zu bytes", cap);
    int rc = n < 0 || len == cap ? -1 : config_restore(cfg, buf, len, err, sizeof err);
    explicit_bzero(buf, len);
    free(buf);
    if (rc < 0) {
        fprintf(stderr, "pier-server: cannot restore the configuration handed over by the "
                        "restart: %s\n", err[0] ? err : strerror(errno));
        return 2;
    }
    return 0;
}

/* A byte count as --help shows a default: 64mb rather than 67108864. */
static void human_size(char *buf, size_t len, const char *digits) {
    static const char *const units[] = {"gb", "mb", "kb"};
    long long v = strtoll(digits, NULL, 10);
    for (int i = 0; i < 3 && v > 0; i++) {
        long long unit = 1LL << (10 * (3 - i));
        if (v % unit == 0) {
            snprintf(buf, len, "%lld%s", v / unit, units[i]);
            return;
        }
    }
    snprintf(buf, len, "%s", digits);
}

/* --help: every option of the table with its default (from
 * config_defaults) and meaning, so the text cannot drift from the code. */
static void print_usage(void) {
    printf("Usage: pier-server [/path/to/pier.conf] [--option value ...]\n"
           "       pier-server --version | --help\n\n"
           "Options, also 'name value' lines in the config file (as redis.conf: Redis\n"
           "options pier does not implement are skipped with a warning). [runtime]:\n"
           "CONFIG SET can change it.\n\n");
    pier_config *def = xcalloc(1, sizeof *def);
    config_defaults(def);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option *o = &options[i];
        char val[1024], shown[1100];
        if (get_value(def, o, 0, val, sizeof val) < 0) val[0] = 0;
        if (o->type == OPT_MEM) human_size(shown, sizeof shown, val);
        else snprintf(shown, sizeof shown, "%s", val[0] ? val : "\"\"");
        printf("  --%s   (default %s)%s\n      %s\n", o->name,
               o->type == OPT_RENAME ? "none" : shown,
               (o->flags & OPT_RUNTIME) ? " [runtime]" : "", o->help);
    }
    config_free(def);
    free(def);
    printf("\nExample: pier-server --port 7379 --bind 127.0.0.1 --threads 2 --loglevel verbose\n"
           "README.md has the options table; docs/PERSISTENCE.md the persistence options.\n");
}

int config_from_args(pier_config *cfg, int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[argc - 2], CONFIG_RESTART_FLAG))
        return restore_from_fd(cfg, argv[argc - 1]);
    int i = 1;
    if (i < argc && strcmp(argv[i], "--help") && strcmp(argv[i], "-h") &&
        strcmp(argv[i], "--version") && strcmp(argv[i], "-v") && argv[i][0] != '-') {
        int rc = load_file(cfg, argv[i]);
        if (rc) return rc;
        i++;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage();
            return 1;
        }
        if (!strcmp(a, "--version") || !strcmp(a, "-v")) {
            printf("pier-server v=%s (redis protocol %s)\n", PIER_VERSION, PIER_REDIS_VERSION);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "pier-server: unexpected argument '%s' (options are --name value)\n", a);
            return 2;
        }
        /* Values run until the next --option, so "--bind 127.0.0.1 ::1"
         * and "--client-output-buffer-limit normal 0 0 0" work. */
        int j = i + 1;
        while (j < argc && strncmp(argv[j], "--", 2) != 0) j++;
        if (j == i + 1) {
            fprintf(stderr, "pier-server: option '%s' needs a value\n", a);
            return 2;
        }
        char value[CFG_VALUE_MAX];
        if (join_words(value, sizeof value, argv + i + 1, j - i - 1) < 0) {
            fprintf(stderr, "pier-server: the value of option '%s' is too long (at most %zu bytes)\n",
                    a, sizeof value - 1);
            return 2;
        }
        char err[256];
        int secret = config_is_secret(a + 2);
        if (skip_redis_option(cfg, "command line", a + 2)) {
            i = j - 1;
            continue;
        }
        if (config_set(cfg, a + 2, value, 0, err, sizeof err) < 0) {
            fprintf(stderr, "pier-server: bad option '%s %s': %s\n", a,
                    secret ? "(hidden)" : value, err);
            return 2;
        }
        /* Wipe a password from our argv so ps and /proc/PID/cmdline do not
         * show it (the kernel reads the live argument memory). */
        for (int k = i + 1; secret && k < j; k++) explicit_bzero(argv[k], strlen(argv[k]));
        explicit_bzero(value, sizeof value);
        i = j - 1;
    }
    return 0;
}
