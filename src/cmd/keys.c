/* keys.c - generic key commands (DEL, EXISTS, the EXPIRE and TTL families,
 * RENAME, TYPE, KEYS, SCAN, RANDOMKEY) and the whole-keyspace server
 * commands DBSIZE, FLUSHDB and FLUSHALL.
 *
 * Single- and multi-key handlers run with their keys' shards locked by the
 * dispatcher. KEYS, SCAN, RANDOMKEY and DBSIZE are CMD_KEYSPACE (they
 * name no key): they hold no lock and use the ks_ calls that lock shard
 * by shard; FLUSHDB/FLUSHALL hold every shard (CMD_ALLSHARDS). Error
 * texts and the order of checks follow Redis 7.0. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/command.h"
#include "lib/mem.h"
#include "lib/util.h"

static int same_arg(const cmd_arg *a, const cmd_arg *b) {
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

/* ---- DEL / UNLINK / EXISTS ---- */

/* UNLINK frees inline too: values are single allocations (strings) or
 * freed by their type hook, so there is nothing worth deferring yet. */
static void del_cmd(cmd_ctx *c) {
    const cmd_host *h = c->env->host;
    long long deleted = 0;
    for (int i = 1; i < c->argc; i++) {
        int gone = ks_delete(c->env->ks, c->argv[i].p, c->argv[i].n, c->now_ms) > 0;
        deleted += gone;
        /* a client blocked in XREADGROUP on it is told (Redis 7.0) */
        if (gone && h && h->unblock_key) h->unblock_key(c->env->host_arg, c->argv[i].p, c->argv[i].n);
    }
    c->dirty += (unsigned)deleted;
    reply_int(c->out, deleted);
}

/* A key named twice counts twice, as in Redis. */
static void exists_cmd(cmd_ctx *c) {
    long long found = 0;
    for (int i = 1; i < c->argc; i++)
        found += key_lookup_read(c, i) != NULL;
    reply_int(c->out, found);
}

/* TOUCH key [key ...]: the lookup records the access (LRU clock or LFU
 * counter, keyspace.c), so this is EXISTS with Redis's name for "count
 * and touch"; a key named twice counts twice, as in Redis. */
static void touch_cmd(cmd_ctx *c) { exists_cmd(c); }

/* ---- EXPIRE family ---- */

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

/* Redis prints the option as a C string, so it stops at a NUL byte. */
static void reply_unsupported_option(cmd_ctx *c, const cmd_arg *a) {
    const char *nul = memchr(a->p, '\0', a->n);
    int len = (int)(nul != NULL ? (size_t)(nul - a->p) : (a->n > INT_MAX ? INT_MAX : a->n));
    reply_errorf(c->out, "ERR Unsupported option %.*s", len, a->p);
}

static int parse_expire_flags(cmd_ctx *c, unsigned *flags) {
    static const struct { const char *kw; unsigned bit; } opts[] = {
        {"NX", EXP_NX}, {"XX", EXP_XX}, {"GT", EXP_GT}, {"LT", EXP_LT}};
    *flags = 0;
    for (int i = 3; i < c->argc; i++) {
        unsigned bit = 0;
        for (size_t o = 0; o < sizeof opts / sizeof opts[0] && !bit; o++)
            if (arg_is(c, i, opts[o].kw)) bit = opts[o].bit;
        if (bit == 0) {
            reply_unsupported_option(c, &c->argv[i]);
            return 0;
        }
        *flags |= bit;
    }
    if ((*flags & EXP_NX) && (*flags & (EXP_XX | EXP_GT | EXP_LT))) {
        reply_error(c->out, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return 0;
    }
    if ((*flags & EXP_GT) && (*flags & EXP_LT)) {
        reply_error(c->out, "ERR GT and LT options at the same time are not compatible");
        return 0;
    }
    return 1;
}

/* argv[2] in seconds or ms plus basetime, as absolute ms. Negative values
 * are allowed (they expire the key); only overflow is an error. */
static int expire_when(cmd_ctx *c, int64_t basetime, int in_seconds, int64_t *when) {
    long long v;
    if (!arg_ll(c, 2, &v)) return 0;
    if (in_seconds) {
        if (v > LLONG_MAX / 1000 || v < LLONG_MIN / 1000) {
            reply_expire_time_error(c);
            return 0;
        }
        v *= 1000;
    }
    if ((basetime > 0 && v > LLONG_MAX - basetime) ||
        (basetime < 0 && v < LLONG_MIN - basetime)) {
        reply_expire_time_error(c);
        return 0;
    }
    *when = v + basetime;
    return 1;
}

/* NX/XX/GT/LT conditions against the current expiry (0 = persistent,
 * which GT and LT treat as an infinite TTL). */
static int expire_condition_holds(unsigned flags, int64_t current, int64_t when) {
    if ((flags & EXP_NX) && current != 0) return 0;
    if ((flags & EXP_XX) && current == 0) return 0;
    if ((flags & EXP_GT) && (current == 0 || when <= current)) return 0;
    if ((flags & EXP_LT) && current != 0 && when >= current) return 0;
    return 1;
}

static void expire_generic(cmd_ctx *c, int64_t basetime, int in_seconds) {
    unsigned flags;
    int64_t when;
    if (!parse_expire_flags(c, &flags)) return;
    if (!expire_when(c, basetime, in_seconds, &when)) return;
    kv *e = key_lookup_write(c, 1);
    if (e == NULL ||
        !expire_condition_holds(flags, ks_get_expire(c->env->ks, e), when)) {
        reply_int(c->out, 0);
        return;
    }
    /* A time already reached deletes the key now rather than storing an
     * expiry nobody could observe. Either way the log gets the effect (DEL,
     * or PEXPIREAT with the absolute time): a relative time or a condition
     * (NX, GT...) would mean something else when replayed. */
    cmd_arg a[3] = {cmd_prop_lit("DEL"), c->argv[1]};
    if (when <= c->now_ms) {
        ks_delete(c->env->ks, c->argv[1].p, c->argv[1].n, c->now_ms);
        cmd_propagate_as(c, 2, a);
    } else {
        ks_set_expire(c->env->ks, e, when);
        a[0] = cmd_prop_lit("PEXPIREAT");
        a[2] = cmd_prop_ll(c, when);
        cmd_propagate_as(c, 3, a);
    }
    c->dirty++;
    reply_int(c->out, 1);
}

static void expire_cmd(cmd_ctx *c) { expire_generic(c, c->now_ms, 1); }
static void pexpire_cmd(cmd_ctx *c) { expire_generic(c, c->now_ms, 0); }
static void expireat_cmd(cmd_ctx *c) { expire_generic(c, 0, 1); }
static void pexpireat_cmd(cmd_ctx *c) { expire_generic(c, 0, 0); }

/* ---- TTL family ---- */

/* (ms + 500) / 1000 for ms >= 0, computed so that it cannot overflow near
 * LLONG_MAX (Redis replies the exact rounded value there too). */
static long long ms_to_rounded_seconds(long long ms) {
    return ms / 1000 + (ms % 1000 + 500) / 1000;
}

/* -2 missing, -1 persistent. A relative TTL is never reported negative,
 * and seconds round to nearest like Redis. */
static void ttl_generic(cmd_ctx *c, int in_ms, int absolute) {
    kv *e = key_lookup_read(c, 1);
    if (e == NULL) {
        reply_int(c->out, -2);
        return;
    }
    int64_t at = ks_get_expire(c->env->ks, e);
    if (at == 0) {
        reply_int(c->out, -1);
        return;
    }
    /* at > 0 and now_ms >= 0, so the subtraction cannot overflow. */
    int64_t ttl = absolute ? at : at - c->now_ms;
    if (ttl < 0) ttl = 0;
    reply_int(c->out, in_ms ? ttl : ms_to_rounded_seconds(ttl));
}

static void ttl_cmd(cmd_ctx *c) { ttl_generic(c, 0, 0); }
static void pttl_cmd(cmd_ctx *c) { ttl_generic(c, 1, 0); }
static void expiretime_cmd(cmd_ctx *c) { ttl_generic(c, 0, 1); }
static void pexpiretime_cmd(cmd_ctx *c) { ttl_generic(c, 1, 1); }

static void persist_cmd(cmd_ctx *c) {
    kv *e = key_lookup_write(c, 1);
    if (e == NULL || ks_get_expire(c->env->ks, e) == 0) {
        reply_int(c->out, 0);
        return;
    }
    ks_set_expire(c->env->ks, e, 0);
    c->dirty++;
    reply_int(c->out, 1);
}

static void type_cmd(cmd_ctx *c) {
    kv *e = key_lookup_read(c, 1);
    reply_status(c->out, e != NULL ? ks_type_name(c->env->ks, e) : "none");
}

/* ---- RENAME / RENAMENX ---- */

static void rename_generic(cmd_ctx *c, int nx) {
    const cmd_arg *src = &c->argv[1], *dst = &c->argv[2];
    if (key_lookup_write(c, 1) == NULL) {
        reply_error(c->out, ERR_NO_KEY);
        return;
    }
    if (same_arg(src, dst)) { /* nothing to move; only the existence check */
        if (nx)
            reply_int(c->out, 0);
        else
            reply_ok(c->out);
        return;
    }
    if (nx && key_lookup_write(c, 2) != NULL) {
        reply_int(c->out, 0);
        return;
    }
    ks_rename(c->env->ks, src->p, src->n, dst->p, dst->n, c->now_ms);
    c->dirty++;
    if (nx)
        reply_int(c->out, 1);
    else
        reply_ok(c->out);
}

static void rename_cmd(cmd_ctx *c) { rename_generic(c, 0); }
static void renamenx_cmd(cmd_ctx *c) { rename_generic(c, 1); }

/* ---- KEYS ---- */

typedef struct keys_walk {
    reply *out;
    const cmd_arg *pattern; /* NULL = every key */
    size_t count;
} keys_walk;

static int pattern_is_all(const cmd_arg *pat) { return pat->n == 1 && pat->p[0] == '*'; }

/* Runs under the shard lock: only reply calls, which touch no shard. */
static void keys_visit(void *arg, const kv *e) {
    keys_walk *w = arg;
    if (w->pattern != NULL &&
        !util_glob_match(w->pattern->p, w->pattern->n, kv_key(e), kv_klen(e), 0))
        return;
    reply_bulk(w->out, kv_key(e), kv_klen(e));
    w->count++;
}

static void keys_cmd(cmd_ctx *c) {
    keys_walk w = {c->out, pattern_is_all(&c->argv[1]) ? NULL : &c->argv[1], 0};
    reply_deferred d = reply_defer(c->out);
    ks_each(c->env->ks, c->now_ms, keys_visit, &w);
    reply_defer_set(c->out, d, REPLY_AGG_ARRAY, w.count);
}

/* ---- SCAN ---- */

typedef struct scan_opts {
    long long count;
    const cmd_arg *pattern; /* NULL = no filter */
    const cmd_arg *type;    /* NULL = any type */
    int type_num;           /* the registered type named so, -1 = none */
} scan_opts;

/* Redis reads the cursor with strtoul on the C string: leading '+' or '-'
 * and leading zeros are accepted, a leading space or trailing junk is
 * not, and the string ends at the first NUL byte. */
static int parse_scan_cursor(cmd_ctx *c, uint64_t *cursor) {
    char *s = xstrndup(c->argv[1].p, c->argv[1].n);
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    int ok = !isspace((unsigned char)s[0]) && *end == '\0' && errno != ERANGE;
    free(s);
    if (!ok) {
        reply_error(c->out, "ERR invalid cursor");
        return 0;
    }
    *cursor = v;
    return 1;
}

/* The registered type called name (any case), -1 when there is none
 * (then no key matches, as in Redis 7.0). */
static int scan_type_num(const cmd_ctx *c, const cmd_arg *name) {
    for (int t = 0; t < KV_NTYPES; t++) {
        const kv_type_ops *ops = ks_type_ops(c->env->ks, t);
        if (ops && util_eq_ci(name->p, name->n, ops->name)) return t;
    }
    return -1;
}

static int parse_scan_options(cmd_ctx *c, scan_opts *o) {
    o->count = 10;
    o->pattern = NULL;
    o->type = NULL;
    o->type_num = -1;
    for (int i = 2; i < c->argc; i += 2) {
        int has_value = i + 1 < c->argc;
        if (has_value && arg_is(c, i, "COUNT")) {
            if (!arg_ll(c, i + 1, &o->count)) return 0;
            if (o->count < 1) {
                reply_error(c->out, ERR_SYNTAX);
                return 0;
            }
        } else if (has_value && arg_is(c, i, "MATCH")) {
            o->pattern = pattern_is_all(&c->argv[i + 1]) ? NULL : &c->argv[i + 1];
        } else if (has_value && arg_is(c, i, "TYPE")) {
            o->type = &c->argv[i + 1];
            o->type_num = scan_type_num(c, o->type);
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return 0;
        }
    }
    return 1;
}

/* Matching keys are copied because the reply starts with the cursor,
 * which is known only after the step. */
typedef struct scan_batch {
    const scan_opts *opts;
    thread_stats *stats; /* NULL when there is no client to count for */
    char **keys;
    size_t *lens;
    size_t n, cap;
} scan_batch;

static void scan_batch_push(scan_batch *b, const char *key, size_t len) {
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->keys = xrealloc(b->keys, b->cap * sizeof *b->keys);
        b->lens = xrealloc(b->lens, b->cap * sizeof *b->lens);
    }
    b->keys[b->n] = xmemdup(key, len);
    b->lens[b->n++] = len;
}

/* Runs under the shard lock: must not call any ks_ function. */
static void scan_visit(void *arg, const kv *e) {
    scan_batch *b = arg;
    const scan_opts *o = b->opts;
    if (o->pattern != NULL &&
        !util_glob_match(o->pattern->p, o->pattern->n, kv_key(e), kv_klen(e), 0))
        return;
    if (o->type != NULL) {
        /* Redis looks each key up to learn its type, which counts as a
         * keyspace hit; keep INFO stats identical. */
        if (b->stats != NULL) STAT_ADD(b->stats->keyspace_hits, 1);
        if (kv_type(e) != o->type_num) return;
    }
    scan_batch_push(b, kv_key(e), kv_klen(e));
}

static void scan_reply(cmd_ctx *c, uint64_t next, scan_batch *b) {
    char buf[24];
    size_t n = util_ull2str(buf, sizeof buf, next);
    reply_array(c->out, 2);
    reply_bulk(c->out, buf, n);
    reply_array(c->out, b->n);
    for (size_t i = 0; i < b->n; i++) {
        reply_bulk(c->out, b->keys[i], b->lens[i]);
        free(b->keys[i]);
    }
    free(b->keys);
    free(b->lens);
}

static void scan_cmd(cmd_ctx *c) {
    uint64_t cursor;
    scan_opts o;
    if (!parse_scan_cursor(c, &cursor) || !parse_scan_options(c, &o)) return;
    scan_batch b = {&o, c->stats, NULL, NULL, 0, 0};
    uint64_t next = ks_scan(c->env->ks, cursor, (size_t)o.count, c->now_ms, scan_visit, &b);
    scan_reply(c, next, &b);
}

/* ---- RANDOMKEY / DBSIZE / FLUSH ---- */

static void randomkey_cmd(cmd_ctx *c) {
    size_t len;
    char *key = ks_random_key(c->env->ks, c->now_ms, &len);
    if (key == NULL) {
        reply_null(c->out);
        return;
    }
    reply_bulk(c->out, key, len);
    free(key);
}

static void dbsize_cmd(cmd_ctx *c) { reply_int(c->out, (long long)ks_count(c->env->ks)); }

/* FLUSHDB and FLUSHALL are the same: pier has only database 0. ASYNC is
 * accepted and flushes synchronously. The row is CMD_ALLSHARDS: the
 * dispatcher holds every shard lock, so the flush and its log record are
 * one step relative to writes on other threads. */
static void flush_cmd(cmd_ctx *c) {
    if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "SYNC") && !arg_is(c, 1, "ASYNC"))) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    ks_flush_locked(c->env->ks);
    c->dirty++;
    cmd_arg a[1] = {cmd_prop_lit("FLUSHALL")};
    cmd_propagate_as(c, 1, a);
    reply_ok(c->out);
}

/* ---- the table ---- */

#define RO_FAST (CMD_READONLY | CMD_DOC_FAST)
#define W_FAST (CMD_WRITE | CMD_DOC_FAST)

const command keys_commands[] = {
    {"del", del_cmd, -2, CMD_WRITE, 1, -1, 1, "generic", "Delete a key", "1.0.0"},
    {"unlink", del_cmd, -2, W_FAST, 1, -1, 1, "generic",
     "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.",
     "4.0.0"},
    {"exists", exists_cmd, -2, RO_FAST, 1, -1, 1, "generic", "Determine if a key exists", "1.0.0"},
    {"touch", touch_cmd, -2, RO_FAST, 1, -1, 1, "generic",
     "Alters the last access time of a key(s). Returns the number of existing keys specified.",
     "3.2.1"},
    {"expire", expire_cmd, -3, W_FAST, 1, 1, 1, "generic",
     "Set a key's time to live in seconds", "1.0.0"},
    {"pexpire", pexpire_cmd, -3, W_FAST, 1, 1, 1, "generic",
     "Set a key's time to live in milliseconds", "2.6.0"},
    {"expireat", expireat_cmd, -3, W_FAST, 1, 1, 1, "generic",
     "Set the expiration for a key as a UNIX timestamp", "1.2.0"},
    {"pexpireat", pexpireat_cmd, -3, W_FAST, 1, 1, 1, "generic",
     "Set the expiration for a key as a UNIX timestamp specified in milliseconds", "2.6.0"},
    {"ttl", ttl_cmd, 2, RO_FAST, 1, 1, 1, "generic", "Get the time to live for a key in seconds",
     "1.0.0"},
    {"pttl", pttl_cmd, 2, RO_FAST, 1, 1, 1, "generic",
     "Get the time to live for a key in milliseconds", "2.6.0"},
    {"expiretime", expiretime_cmd, 2, RO_FAST, 1, 1, 1, "generic",
     "Get the expiration Unix timestamp for a key", "7.0.0"},
    {"pexpiretime", pexpiretime_cmd, 2, RO_FAST, 1, 1, 1, "generic",
     "Get the expiration Unix timestamp for a key in milliseconds", "7.0.0"},
    {"persist", persist_cmd, 2, W_FAST, 1, 1, 1, "generic", "Remove the expiration from a key",
     "2.2.0"},
    {"type", type_cmd, 2, RO_FAST, 1, 1, 1, "generic", "Determine the type stored at key", "1.0.0"},
    {"rename", rename_cmd, 3, CMD_WRITE, 1, 2, 1, "generic", "Rename a key", "1.0.0"},
    {"renamenx", renamenx_cmd, 3, W_FAST, 1, 2, 1, "generic",
     "Rename a key, only if the new key does not exist", "1.0.0"},
    {"keys", keys_cmd, 2, CMD_READONLY | CMD_KEYSPACE, 0, 0, 0, "generic",
     "Find all keys matching the given pattern", "1.0.0"},
    {"scan", scan_cmd, -2, CMD_READONLY | CMD_KEYSPACE, 0, 0, 0, "generic",
     "Incrementally iterate the keys space", "2.8.0"},
    {"randomkey", randomkey_cmd, 1, CMD_READONLY | CMD_KEYSPACE, 0, 0, 0, "generic",
     "Return a random key from the keyspace", "1.0.0"},
    {"dbsize", dbsize_cmd, 1, RO_FAST | CMD_KEYSPACE, 0, 0, 0, "server",
     "Return the number of keys in the selected database", "1.0.0"},
    {"flushdb", flush_cmd, -1, CMD_WRITE | CMD_KEYSPACE | CMD_ALLSHARDS, 0, 0, 0, "server",
     "Remove all keys from the current database", "1.0.0"},
    {"flushall", flush_cmd, -1, CMD_WRITE | CMD_KEYSPACE | CMD_ALLSHARDS, 0, 0, 0, "server",
     "Remove all keys from all databases", "1.0.0"},
};

const size_t keys_commands_count = sizeof keys_commands / sizeof keys_commands[0];
