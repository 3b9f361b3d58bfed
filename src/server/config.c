/* config.c - the option table and its parsers (flags, file, CONFIG SET). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    OPT_ENUM      /* _Atomic int: index of the value in `values` (yes/no too) */
};

#define OPT_RUNTIME 1 /* may change with CONFIG SET */

typedef struct option {
    const char *name;
    enum opt_type type;
    size_t off;
    long long min, max;
    int flags;
    const char *const *values; /* OPT_ENUM: NULL-terminated names */
} option;

/* Value lists for OPT_ENUM options; the index is what the field stores. */
static const char *const yes_no[] __attribute__((unused)) = {"no", "yes", NULL};
static const char *const io_models[] = {"loop", "thread", NULL};

#define F(field) offsetof(pier_config, field)
static const option options[] = {
    {"bind", OPT_STR, F(bind), 0, sizeof(((pier_config *)0)->bind), 0, NULL},
    {"port", OPT_INT, F(port), 0, 65535, 0, NULL},
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
};
#undef F
#define NOPTIONS (sizeof options / sizeof options[0])

void config_defaults(pier_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->bind, sizeof cfg->bind, "127.0.0.1");
    cfg->port = 7379;
    cfg->threads = 0;
    cfg->tcp_backlog = 511;
    cfg->tcp_keepalive = 300;
    atomic_init(&cfg->maxclients, 10000);
    atomic_init(&cfg->timeout, 0);
    atomic_init(&cfg->proto_max_bulk_len, 512LL * 1024 * 1024);
    atomic_init(&cfg->client_query_buffer_limit, 1024LL * 1024 * 1024);
    /* Reading pauses above 16 MB of unsent replies (backpressure); a client
     * whose replies still reach 1 GB (one huge reply) is disconnected. */
    atomic_init(&cfg->output_soft_limit, 16LL * 1024 * 1024);
    atomic_init(&cfg->output_hard_limit, 1024LL * 1024 * 1024);
    atomic_init(&cfg->loglevel, LOG_NORMAL);
    atomic_init(&cfg->hz, 10);
    cfg->databases = 1;
}

void config_free(pier_config *cfg) {
    free(cfg->config_file);
    cfg->config_file = NULL;
}

static const option *find_option(const char *name) {
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strcasecmp(options[i].name, name) == 0) return &options[i];
    /* Redis spells the loop-thread count io-threads. */
    if (strcasecmp(name, "io-threads") == 0) return find_option("threads");
    return NULL;
}

const char *config_name_at(size_t i) { return i < NOPTIONS ? options[i].name : NULL; }

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
    char cls[32], hs[32], ss[32], secs[32];
    const char *p = value;
    int n;
    while (sscanf(p, "%31s %31s %31s %31s%n", cls, hs, ss, secs, &n) == 4) {
        long long hard, soft, sec;
        if (!parse_memory(hs, &hard) || !parse_memory(ss, &soft) ||
            !util_parse_ll(secs, strlen(secs), &sec) || sec < 0) {
            snprintf(err, errlen, "argument couldn't be parsed into a client output buffer limit");
            return -1;
        }
        if (!strcasecmp(cls, "normal")) {
            /* 0 means unlimited, as in Redis. */
            atomic_store(&cfg->output_hard_limit, hard ? hard : LLONG_MAX);
        } else if (strcasecmp(cls, "pubsub") && strcasecmp(cls, "replica") &&
                   strcasecmp(cls, "slave")) {
            snprintf(err, errlen, "Invalid client class specified in buffer limit configuration.");
            return -1;
        }
        p += n;
        while (*p == ' ') p++;
        if (!*p) return 0;
    }
    snprintf(err, errlen, "Wrong number of arguments in buffer limit configuration.");
    return -1;
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
    }
    return -1;
}

int config_get(const pier_config *cfg, const char *name, char *buf, size_t buflen) {
    const option *o = find_option(name);
    if (!o) return -1;
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
        return snprintf(buf, buflen, "normal %lld 0 0 replica 0 0 0 pubsub 0 0 0",
                        hard == LLONG_MAX ? 0 : hard);
    }
    case OPT_ENUM:
        return snprintf(buf, buflen, "%s", o->values[CFG_GET(*(_Atomic int *)field)]);
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

int config_load_text(pier_config *cfg, const char *text, size_t len, const char *origin,
                     char *err, size_t errlen) {
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

static void print_usage(void) {
    printf("Usage: pier-server [/path/to/pier.conf] [--option value ...]\n"
           "       pier-server --version | --help\n\n"
           "Options (also valid as 'name value' lines in the config file):\n");
    for (size_t i = 0; i < NOPTIONS; i++) printf("  --%s\n", options[i].name);
    printf("\nExample: pier-server --port 7379 --bind 127.0.0.1 --threads 2 --loglevel verbose\n");
}

int config_from_args(pier_config *cfg, int argc, char **argv) {
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
        if (config_set(cfg, a + 2, value, 0, err, sizeof err) < 0) {
            fprintf(stderr, "pier-server: bad option '%s %s': %s\n", a, value, err);
            return 2;
        }
        i = j - 1;
    }
    return 0;
}
