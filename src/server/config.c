/* config.c - the option table and its parsers (flags, file, CONFIG SET). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/log.h"
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
#define OPT_HIDDEN 4    /* a secret: never shown (config_is_secret), wiped from argv */

typedef struct option {
    const char *name;
    enum opt_type type;
    size_t off;
    long long min, max;
    int flags;
    const char *const *values; /* OPT_ENUM: NULL-terminated names */
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
static const option options[] = {
    {"bind", OPT_STR, F(bind), 0, sizeof(((pier_config *)0)->bind), 0, NULL},
    {"port", OPT_INT, F(port), 0, 65535, 0, NULL},
    {"batch-port", OPT_INT, F(batch_port), -1, 65535, 0, NULL},
    {"batch-max-bytes", OPT_MEM, F(batch_max_bytes), 1024, 1LL << 30, OPT_RUNTIME, NULL},
    {"threads", OPT_INT, F(threads), 0, 256, 0, NULL},
    {"tcp-backlog", OPT_INT, F(tcp_backlog), 1, 65535, 0, NULL},
    {"tcp-keepalive", OPT_INT, F(tcp_keepalive), 0, INT_MAX, 0, NULL},
    {"maxclients", OPT_LL, F(maxclients), 1, 1000000, OPT_RUNTIME, NULL},
    {"timeout", OPT_LL, F(timeout), 0, INT_MAX, OPT_RUNTIME, NULL},
    {"proto-max-bulk-len", OPT_MEM, F(proto_max_bulk_len), 1024 * 1024, UINT32_MAX, OPT_RUNTIME, NULL},
    {"client-query-buffer-limit", OPT_MEM, F(client_query_buffer_limit), 1024 * 1024,
     LLONG_MAX, OPT_RUNTIME, NULL},
    {"client-output-buffer-limit", OPT_OBL, 0, 0, 0, OPT_RUNTIME, NULL},
    {"loglevel", OPT_LOGLEVEL, F(loglevel), 0, 0, OPT_RUNTIME, NULL},
    {"logfile", OPT_STR, F(logfile), 0, sizeof(((pier_config *)0)->logfile), 0, NULL},
    {"pidfile", OPT_STR, F(pidfile), 0, sizeof(((pier_config *)0)->pidfile), 0, NULL},
    {"hz", OPT_LL, F(hz), 1, 500, OPT_RUNTIME, NULL},
    {"databases", OPT_INT, F(databases), 1, 1, 0, NULL},
    {"io", OPT_ENUM, F(io_model), 0, 0, 0, io_models},
    {"maxmemory", OPT_MEM, F(maxmemory), 0, LLONG_MAX, OPT_RUNTIME, NULL},
    {"maxmemory-policy", OPT_ENUM, F(maxmemory_policy), 0, 0, OPT_RUNTIME, evict_policies},
    {"maxmemory-samples", OPT_LL, F(maxmemory_samples), 1, INT_MAX, OPT_RUNTIME, NULL},
    {"lfu-log-factor", OPT_LL, F(lfu_log_factor), 0, INT_MAX, OPT_RUNTIME, NULL},
    {"lfu-decay-time", OPT_LL, F(lfu_decay_time), 0, INT_MAX, OPT_RUNTIME, NULL},
    {"requirepass", OPT_SECRET, 0, 0, 0, OPT_RUNTIME, NULL},
    {"protected-mode", OPT_ENUM, F(protected_mode), 0, 0, OPT_RUNTIME, yes_no},
    {"rename-command", OPT_RENAME, 0, 0, 0, OPT_FILE_ONLY, NULL},
    /* persistence: paths and appendonly are fixed once running (changing
     * them would need the files moved or an AOF created on the fly) */
    {"dir", OPT_STR, F(dir), 0, sizeof(((pier_config *)0)->dir), 0, NULL},
    {"dbfilename", OPT_STR, F(dbfilename), 0, sizeof(((pier_config *)0)->dbfilename), 0, NULL},
    {"appendonly", OPT_ENUM, F(appendonly), 0, 0, 0, yes_no},
    {"appendfilename", OPT_STR, F(appendfilename), 0,
     sizeof(((pier_config *)0)->appendfilename), 0, NULL},
    {"appenddirname", OPT_STR, F(appenddirname), 0,
     sizeof(((pier_config *)0)->appenddirname), 0, NULL},
    {"appendfsync", OPT_ENUM, F(appendfsync), 0, 0, OPT_RUNTIME, fsync_policies},
    {"auto-aof-rewrite-percentage", OPT_LL, F(auto_aof_rewrite_percentage), 0, INT_MAX,
     OPT_RUNTIME, NULL},
    {"auto-aof-rewrite-min-size", OPT_MEM, F(auto_aof_rewrite_min_size), 0, LLONG_MAX,
     OPT_RUNTIME, NULL},
    {"save", OPT_SAVE, 0, 0, 0, OPT_RUNTIME, NULL},
    {"cluster-node-id", OPT_INT, F(cluster_node_id), 0, 255, 0, NULL},
    {"cluster-nodes", OPT_STR, F(cluster_nodes), 0, sizeof(((pier_config *)0)->cluster_nodes), 0, NULL},
    {"cluster-batch-us", OPT_LL, F(cluster_batch_us), 0, 100000, OPT_RUNTIME, NULL},
    {"cluster-heartbeat-ms", OPT_LL, F(cluster_heartbeat_ms), 1, 10000, OPT_RUNTIME, NULL},
    {"cluster-election-timeout-ms", OPT_LL, F(cluster_election_timeout_ms), 10, 600000, OPT_RUNTIME, NULL},
    {"cluster-log-max-memory", OPT_MEM, F(cluster_log_max_memory), 1 << 20, LLONG_MAX, OPT_RUNTIME, NULL},
    {"cluster-request-timeout-ms", OPT_LL, F(cluster_request_timeout_ms), 1, 3600000, OPT_RUNTIME, NULL},
    {"cluster-secret", OPT_STR, F(cluster_secret), 0, sizeof(((pier_config *)0)->cluster_secret),
     OPT_HIDDEN, NULL},
    {"cluster-secret-file", OPT_STR, F(cluster_secret_file), 0,
     sizeof(((pier_config *)0)->cluster_secret_file), 0, NULL},
};
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
    atomic_init(&cfg->hz, 10);
    cfg->databases = 1;
    snprintf(cfg->dir, sizeof cfg->dir, ".");
    snprintf(cfg->dbfilename, sizeof cfg->dbfilename, "dump.pier");
    snprintf(cfg->appendfilename, sizeof cfg->appendfilename, "appendonly.aof");
    snprintf(cfg->appenddirname, sizeof cfg->appenddirname, "appendonlydir");
    atomic_init(&cfg->appendfsync, CFG_FSYNC_EVERYSEC);
    atomic_init(&cfg->auto_aof_rewrite_percentage, 100);
    atomic_init(&cfg->auto_aof_rewrite_min_size, 64LL * 1024 * 1024);
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

/* Parse "100", "1k" (1000), "1kb" (1024), "5mb", "2gb" as Redis does.
 * Returns 1 on success. */
static int parse_memory(const char *s, long long *out) {
    size_t len = strlen(s), unit_at = len;
    while (unit_at > 0 && isalpha((unsigned char)s[unit_at - 1])) unit_at--;
    const char *unit = s + unit_at;
    long long mul = 1;
    if (!*unit || !strcasecmp(unit, "b")) mul = 1;
    else if (!strcasecmp(unit, "k")) mul = 1000;
    else if (!strcasecmp(unit, "kb")) mul = 1024;
    else if (!strcasecmp(unit, "m")) mul = 1000LL * 1000;
    else if (!strcasecmp(unit, "mb")) mul = 1024LL * 1024;
    else if (!strcasecmp(unit, "g")) mul = 1000LL * 1000 * 1000;
    else if (!strcasecmp(unit, "gb")) mul = 1024LL * 1024 * 1024;
    else return 0;
    long long v;
    if (!util_parse_ll(s, unit_at, &v) || v < 0) return 0;
    if (v > LLONG_MAX / mul) return 0;
    *out = v * mul;
    return 1;
}

/* "normal <hard> <soft> <seconds>" (other classes accepted for redis.conf
 * compatibility; pier applies the normal class to every client for now). */
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
    case OPT_LOGLEVEL: {
        int lvl = log_parse_level(value);
        if (lvl < 0) {
            snprintf(err, errlen, "argument(s) must be one of the following: silent, normal, verbose");
            return -1;
        }
        atomic_store((_Atomic int *)field, lvl);
        log_set_level(lvl);
        return 0;
    }
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

int config_get(const pier_config *cfg, const char *name, char *buf, size_t buflen) {
    const option *o = find_option(name);
    if (!o || (o->flags & OPT_FILE_ONLY)) return -1;
    const char *field = (const char *)cfg + o->off;
    switch (o->type) {
    case OPT_INT:
        return snprintf(buf, buflen, "%d", *(const int *)field);
    case OPT_LL:
    case OPT_MEM:
        return snprintf(buf, buflen, "%lld", CFG_GET(*(_Atomic long long *)field));
    case OPT_STR:
        return snprintf(buf, buflen, "%s", field);
    case OPT_LOGLEVEL:
        return snprintf(buf, buflen, "%s", log_level_name(CFG_GET(*(_Atomic int *)field)));
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

/* --- config file --- */

/* Split one line into words with redis.conf quoting ("..." and '...').
 * Returns the word count (at most max), or -1 on unbalanced quotes. */
static int split_line(char *line, char **words, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) return n;
        if (n == max) return -1;
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

int config_load_text(pier_config *cfg, const char *text, size_t len, const char *origin,
                     char *err, size_t errlen) {
    char saves[1024] = "";
    char *copy = malloc(len + 1);
    if (!copy) abort();
    memcpy(copy, text, len);
    copy[len] = 0;
    int rc = 0, lineno = 0;
    for (char *line = copy, *next; line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r') line[ll - 1] = 0;
        char *words[16];
        int nw = split_line(line, words, 16);
        if (nw == 0 || (nw > 0 && words[0][0] == '#')) continue;
        char reason[256];
        if (nw < 0) {
            snprintf(reason, sizeof reason, "unbalanced quotes or too many arguments");
            rc = -1;
        } else {
            /* Join the arguments: multi-word values (bind, buffer limits). */
            char value[1024] = "";
            for (int i = 1; i < nw; i++) {
                if (i > 1) strncat(value, " ", sizeof value - strlen(value) - 1);
                strncat(value, words[i], sizeof value - strlen(value) - 1);
            }
            if (nw < 2) {
                snprintf(reason, sizeof reason, "'%s' needs a value", words[0]);
                rc = -1;
            } else if (!strcasecmp(words[0], "save")) {
                add_save_line(saves, sizeof saves, value);
                rc = config_set(cfg, "save", saves, 0, reason, sizeof reason);
            } else {
                rc = config_set(cfg, words[0], value, 0, reason, sizeof reason);
            }
        }
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
            buf = realloc(buf, cap);
            if (!buf) abort();
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
        char *nb = malloc(ncap);
        if (!nb) abort();
        if (*len) memcpy(nb, *buf, *len);
        if (*buf) explicit_bzero(*buf, *cap); /* no secret left in freed memory */
        free(*buf);
        *buf = nb;
        *cap = ncap;
    }
    char *p = *buf + *len;
    for (int i = 0; i < 4; i++) p[i] = (char)(nlen >> (8 * i));
    memcpy(p + 4, name, nlen);
    p += 4 + nlen;
    for (int i = 0; i < 4; i++) p[i] = (char)(vlen >> (8 * i));
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
        f[k] = 0;
        for (int i = 0; i < 4; i++) f[k] |= (size_t)(unsigned char)buf[at + (size_t)i] << (8 * i);
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
    char *v = strndup(val, vlen);
    if (!v) abort();
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
    char *buf = malloc(cap);
    if (!buf) abort();
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

static void print_usage(void) {
    printf("Usage: pier-server [/path/to/pier.conf] [--option value ...]\n"
           "       pier-server --version | --help\n\n"
           "Options (also valid as 'name value' lines in the config file):\n");
    for (size_t i = 0; i < NOPTIONS; i++) printf("  --%s\n", options[i].name);
    printf("\nExample: pier-server --port 7379 --bind 127.0.0.1 --threads 2 --loglevel verbose\n");
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
        char value[1024] = "";
        int j = i + 1;
        for (; j < argc && strncmp(argv[j], "--", 2) != 0; j++) {
            if (j > i + 1) strncat(value, " ", sizeof value - strlen(value) - 1);
            strncat(value, argv[j], sizeof value - strlen(value) - 1);
        }
        if (j == i + 1) {
            fprintf(stderr, "pier-server: option '%s' needs a value\n", a);
            return 2;
        }
        char err[256];
        int secret = config_is_secret(a + 2);
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
