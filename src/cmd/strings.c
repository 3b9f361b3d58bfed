/* strings.c - the string commands (GET, SET and friends, counters,
 * ranges).
 *
 * Every handler runs with the shards of its keys already locked by the
 * dispatcher, so it uses the "caller holds the lock" ks_ functions. Error
 * texts, option rules and the order in which errors are detected follow
 * Redis 7.0 exactly, because clients and the side-by-side tests see them. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/command.h"
#include "lib/util.h"
#include "server/config.h"

#define ERR_TOO_BIG "ERR string exceeds maximum allowed size (proto-max-bulk-len)"

/* Option bits of SET and GETEX (Redis parses both with one routine, and the
 * compatibility rules between options are the same). */
enum {
    SETF_NX = 1u << 0,
    SETF_XX = 1u << 1,
    SETF_GET = 1u << 2,
    SETF_KEEPTTL = 1u << 3,
    SETF_PERSIST = 1u << 4,
    SETF_EX = 1u << 5,
    SETF_PX = 1u << 6,
    SETF_EXAT = 1u << 7,
    SETF_PXAT = 1u << 8,
};
#define SETF_ANY_EXPIRE (SETF_EX | SETF_PX | SETF_EXAT | SETF_PXAT)
#define SETF_ABSOLUTE (SETF_EXAT | SETF_PXAT)
#define SETF_SECONDS (SETF_EX | SETF_EXAT)

typedef struct set_opts {
    unsigned flags;
    int expire_arg; /* argv index of the expire value, 0 when none */
} set_opts;

static int is_string(const kv *e) { return kv_type(e) == KV_STRING; }

static void reply_value(cmd_ctx *c, kv *e) {
    reply_bulk(c->out, kv_sval(e), kv_slen(e));
}

/* ---- size limits ---- */

/* The configured limit, never above what an entry can hold. */
static size_t max_string_len(const cmd_ctx *c) {
    long long cfg = CFG_GET(c->env->cfg->proto_max_bulk_len);
    if (cfg < 0) return 0;
    return (unsigned long long)cfg < KS_MAX_LEN ? (size_t)cfg : KS_MAX_LEN;
}

/* Redis checkStringLength: would a string of size + append bytes be too
 * long? Replies the error when it would. Written without the addition so
 * that it cannot overflow. */
static int string_length_ok(cmd_ctx *c, unsigned long long size, size_t append) {
    size_t limit = max_string_len(c);
    if (size > limit || append > limit - size) {
        reply_error(c->out, ERR_TOO_BIG);
        return 0;
    }
    return 1;
}

/* ---- SET / GETEX option parsing ---- */

/* One option keyword: returns its bit, or 0 if the word is not an option
 * that may appear here given the options already seen (Redis reports every
 * such case as a syntax error). */
static unsigned option_bit(const cmd_ctx *c, int i, unsigned seen, int for_set) {
    unsigned timed = seen & SETF_ANY_EXPIRE;
    if (for_set && arg_is(c, i, "NX") && !(seen & SETF_XX)) return SETF_NX;
    if (for_set && arg_is(c, i, "XX") && !(seen & SETF_NX)) return SETF_XX;
    if (for_set && arg_is(c, i, "GET")) return SETF_GET;
    if (for_set && arg_is(c, i, "KEEPTTL") && !(seen & SETF_PERSIST) && !timed)
        return SETF_KEEPTTL;
    if (!for_set && arg_is(c, i, "PERSIST") && !(seen & SETF_KEEPTTL) && !timed)
        return SETF_PERSIST;
    if (seen & (SETF_KEEPTTL | SETF_PERSIST)) return 0;
    /* Repeating the same unit is allowed (the last value wins), mixing
     * units is not. */
    static const struct { const char *kw; unsigned bit; } units[] = {
        {"EX", SETF_EX}, {"PX", SETF_PX}, {"EXAT", SETF_EXAT}, {"PXAT", SETF_PXAT}};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (arg_is(c, i, units[u].kw) && !(timed & ~units[u].bit) && i + 1 < c->argc)
            return units[u].bit;
    }
    return 0;
}

/* Parse options from argv[first] on; replies a syntax error and returns 0
 * on any invalid or conflicting option. */
static int parse_set_options(cmd_ctx *c, int first, int for_set, set_opts *o) {
    o->flags = 0;
    o->expire_arg = 0;
    for (int i = first; i < c->argc; i++) {
        unsigned bit = option_bit(c, i, o->flags, for_set);
        if (bit == 0) {
            reply_error(c->out, ERR_SYNTAX);
            return 0;
        }
        o->flags |= bit;
        if (bit & SETF_ANY_EXPIRE) o->expire_arg = ++i;
    }
    return 1;
}

/* Convert the expire argument to absolute wall-clock ms. unit_flags says
 * seconds or ms and relative or absolute. Values <= 0 and values whose
 * conversion would overflow are "invalid expire time" errors. */
static int expire_to_abs_ms(cmd_ctx *c, int argi, unsigned unit_flags, int64_t *out) {
    long long v;
    if (!arg_ll(c, argi, &v)) return 0;
    if (v <= 0 || ((unit_flags & SETF_SECONDS) && v > LLONG_MAX / 1000)) {
        reply_expire_time_error(c);
        return 0;
    }
    if (unit_flags & SETF_SECONDS) v *= 1000;
    if (!(unit_flags & SETF_ABSOLUTE)) {
        if (c->now_ms > 0 && v > LLONG_MAX - c->now_ms) {
            reply_expire_time_error(c);
            return 0;
        }
        v += c->now_ms;
    }
    *out = v;
    return 1;
}

/* ---- GET family ---- */

/* Redis getGenericCommand: reply the value of argv[1] (null if missing).
 * Returns 0 after replying WRONGTYPE, so callers stop. */
static int reply_get(cmd_ctx *c) {
    kv *e = key_lookup_read(c, 1);
    if (e == NULL) {
        reply_null(c->out);
        return 1;
    }
    if (!is_string(e)) {
        reply_error(c->out, ERR_WRONGTYPE);
        return 0;
    }
    reply_value(c, e);
    return 1;
}

static void get_cmd(cmd_ctx *c) { reply_get(c); }

static void getdel_cmd(cmd_ctx *c) {
    if (!reply_get(c)) return;
    c->dirty += (unsigned)ks_delete(c->env->ks, c->argv[1].p, c->argv[1].n, c->now_ms);
}

static void mget_cmd(cmd_ctx *c) {
    reply_array(c->out, (size_t)(c->argc - 1));
    for (int i = 1; i < c->argc; i++) {
        kv *e = key_lookup_read(c, i);
        if (e != NULL && is_string(e))
            reply_value(c, e);
        else
            reply_null(c->out); /* wrong types read as missing in MGET */
    }
}

static void strlen_cmd(cmd_ctx *c) {
    kv *e = key_lookup_read(c, 1);
    if (e == NULL) {
        reply_int(c->out, 0);
    } else if (!is_string(e)) {
        reply_error(c->out, ERR_WRONGTYPE);
    } else {
        reply_int(c->out, (long long)kv_slen(e));
    }
}

/* Log `<cmd> key [number]` instead of the command as received. */
static void propagate_key_cmd(cmd_ctx *c, const char *cmd, const int64_t *number) {
    cmd_arg a[3] = {cmd_prop_lit(cmd), c->argv[1]};
    if (number) a[2] = cmd_prop_ll(c, *number);
    cmd_propagate_as(c, number ? 3 : 2, a);
}

/* Apply GETEX's expiry change after the value has been replied. An
 * absolute time already past deletes the key, as Redis does. The log gets
 * the effect (DEL, PEXPIREAT with the absolute time, PERSIST), never the
 * relative form, which would mean something else when replayed. */
static void getex_apply(cmd_ctx *c, kv *e, const set_opts *o, int64_t at_ms) {
    keyspace *ks = c->env->ks;
    if ((o->flags & SETF_ABSOLUTE) && at_ms <= c->now_ms) {
        ks_delete(ks, c->argv[1].p, c->argv[1].n, c->now_ms);
        propagate_key_cmd(c, "DEL", NULL);
    } else if (o->expire_arg) {
        ks_set_expire(ks, e, at_ms);
        propagate_key_cmd(c, "PEXPIREAT", &at_ms);
    } else if (o->flags & SETF_PERSIST) {
        ks_set_expire(ks, e, 0);
        propagate_key_cmd(c, "PERSIST", NULL);
    } else {
        return; /* a plain GETEX changes nothing */
    }
    c->dirty++;
}

static void getex_cmd(cmd_ctx *c) {
    set_opts o;
    if (!parse_set_options(c, 2, 0, &o)) return;
    kv *e = key_lookup_read(c, 1);
    if (e == NULL) {
        reply_null(c->out);
        return;
    }
    if (!is_string(e)) {
        reply_error(c->out, ERR_WRONGTYPE);
        return;
    }
    int64_t at_ms = 0;
    if (o.expire_arg && !expire_to_abs_ms(c, o.expire_arg, o.flags, &at_ms)) return;
    reply_value(c, e);
    getex_apply(c, e, &o, at_ms);
}

/* ---- SET family ---- */

/* What SET-like commands reply on success / when NX or XX stops them. */
enum set_reply_style { SET_REPLY_OK_NULL, SET_REPLY_ONE_ZERO };

/* SET, SETNX, SETEX, PSETEX are all logged as the SET that happened:
 * SET key value [PXAT abs-ms | KEEPTTL]. The conditions (NX, XX) were
 * already decided and relative times must become absolute. */
static void propagate_set(cmd_ctx *c, const set_opts *o, const cmd_arg *val, int64_t at_ms) {
    cmd_arg a[5] = {cmd_prop_lit("SET"), c->argv[1], *val};
    int n = 3;
    if (o->expire_arg) {
        a[n++] = cmd_prop_lit("PXAT");
        a[n++] = cmd_prop_ll(c, at_ms);
    } else if (o->flags & SETF_KEEPTTL) {
        a[n++] = cmd_prop_lit("KEEPTTL");
    }
    cmd_propagate_as(c, n, a);
}

/* Redis setGenericCommand. argv[1] is the key; val is the value argument.
 * An absolute expiry in the past still stores the key (it is then simply
 * expired and gets reclaimed lazily or actively), as Redis 7.0 does. */
static void set_generic(cmd_ctx *c, const set_opts *o, const cmd_arg *val,
                        enum set_reply_style style) {
    keyspace *ks = c->env->ks;
    int64_t at_ms = 0;
    if (o->expire_arg && !expire_to_abs_ms(c, o->expire_arg, o->flags, &at_ms)) return;
    if (!string_length_ok(c, 0, val->n)) return;
    if ((o->flags & SETF_GET) && !reply_get(c)) return;

    int found = key_lookup_write(c, 1) != NULL;
    if (((o->flags & SETF_NX) && found) || ((o->flags & SETF_XX) && !found)) {
        if (o->flags & SETF_GET) return; /* the old value was the reply */
        if (style == SET_REPLY_ONE_ZERO)
            reply_int(c->out, 0);
        else
            reply_null(c->out);
        return;
    }
    kv *e = ks_set_string(ks, c->argv[1].p, c->argv[1].n, val->p, val->n,
                          (o->flags & SETF_KEEPTTL) != 0, c->now_ms);
    if (o->expire_arg) ks_set_expire(ks, e, at_ms);
    c->dirty++;
    propagate_set(c, o, val, at_ms);
    if (o->flags & SETF_GET) return;
    if (style == SET_REPLY_ONE_ZERO)
        reply_int(c->out, 1);
    else
        reply_ok(c->out);
}

static void set_cmd(cmd_ctx *c) {
    set_opts o;
    if (!parse_set_options(c, 3, 1, &o)) return;
    set_generic(c, &o, &c->argv[2], SET_REPLY_OK_NULL);
}

static void setnx_cmd(cmd_ctx *c) {
    set_opts o = {SETF_NX, 0};
    set_generic(c, &o, &c->argv[2], SET_REPLY_ONE_ZERO);
}

static void setex_cmd(cmd_ctx *c) {
    set_opts o = {SETF_EX, 2};
    set_generic(c, &o, &c->argv[3], SET_REPLY_OK_NULL);
}

static void psetex_cmd(cmd_ctx *c) {
    set_opts o = {SETF_PX, 2};
    set_generic(c, &o, &c->argv[3], SET_REPLY_OK_NULL);
}

/* GETSET replies the old value and stores the new one without a TTL. */
static void getset_cmd(cmd_ctx *c) {
    if (!string_length_ok(c, 0, c->argv[2].n)) return;
    if (!reply_get(c)) return;
    ks_set_string(c->env->ks, c->argv[1].p, c->argv[1].n, c->argv[2].p,
                  c->argv[2].n, 0, c->now_ms);
    c->dirty++;
}

/* MSET/MSETNX take key/value pairs, so an even argc is an arity error
 * (the table's arity -3 only guarantees one pair). */
static int mset_pairs_ok(cmd_ctx *c) {
    if (c->argc % 2 == 0) {
        reply_arity_error(c);
        return 0;
    }
    for (int i = 2; i < c->argc; i += 2)
        if (!string_length_ok(c, 0, c->argv[i].n)) return 0;
    return 1;
}

static void mset_all(cmd_ctx *c) {
    for (int i = 1; i < c->argc; i += 2)
        ks_set_string(c->env->ks, c->argv[i].p, c->argv[i].n, c->argv[i + 1].p,
                      c->argv[i + 1].n, 0, c->now_ms);
    c->dirty += (unsigned)(c->argc / 2);
}

static void mset_cmd(cmd_ctx *c) {
    if (!mset_pairs_ok(c)) return;
    mset_all(c);
    reply_ok(c->out);
}

/* MSETNX sets nothing if any key exists (of any type). */
static void msetnx_cmd(cmd_ctx *c) {
    if (!mset_pairs_ok(c)) return;
    for (int i = 1; i < c->argc; i += 2) {
        if (key_lookup_write(c, i) != NULL) {
            reply_int(c->out, 0);
            return;
        }
    }
    mset_all(c);
    reply_int(c->out, 1);
}

/* ---- APPEND / SETRANGE / GETRANGE ---- */

static void append_cmd(cmd_ctx *c) {
    keyspace *ks = c->env->ks;
    const cmd_arg *add = &c->argv[2];
    kv *e = key_lookup_write(c, 1);
    if (e == NULL) {
        if (!string_length_ok(c, 0, add->n)) return;
        ks_set_string(ks, c->argv[1].p, c->argv[1].n, add->p, add->n, 0, c->now_ms);
        c->dirty++;
        reply_int(c->out, (long long)add->n);
        return;
    }
    if (!is_string(e)) {
        reply_error(c->out, ERR_WRONGTYPE);
        return;
    }
    size_t old = kv_slen(e);
    if (!string_length_ok(c, old, add->n)) return;
    e = ks_string_resize(ks, e, old + add->n);
    if (add->n > 0) memcpy(kv_sval(e) + old, add->p, add->n);
    c->dirty++;
    reply_int(c->out, (long long)kv_slen(e));
}

static void setrange_cmd(cmd_ctx *c) {
    keyspace *ks = c->env->ks;
    const cmd_arg *val = &c->argv[3];
    long long offset;
    if (!arg_ll(c, 2, &offset)) return;
    if (offset < 0) {
        reply_error(c->out, "ERR offset is out of range");
        return;
    }
    kv *e = key_lookup_write(c, 1);
    if (e != NULL && !is_string(e)) {
        reply_error(c->out, ERR_WRONGTYPE);
        return;
    }
    /* Writing nothing changes nothing and never creates the key. */
    if (val->n == 0) {
        reply_int(c->out, e != NULL ? (long long)kv_slen(e) : 0);
        return;
    }
    if (!string_length_ok(c, (unsigned long long)offset, val->n)) return;
    size_t end = (size_t)offset + val->n;
    if (e == NULL)
        e = ks_set_string(ks, c->argv[1].p, c->argv[1].n, "", 0, 0, c->now_ms);
    if (end > kv_slen(e)) e = ks_string_resize(ks, e, end); /* zero-fills the gap */
    memcpy(kv_sval(e) + offset, val->p, val->n);
    c->dirty++;
    reply_int(c->out, (long long)kv_slen(e));
}

/* Turn a possibly negative index into one counted from the start, clamped
 * at 0, without overflowing for LLONG_MIN. */
static long long from_start(long long idx, size_t len) {
    if (idx >= 0) return idx;
    if ((unsigned long long)-(idx + 1) >= len) return 0; /* -(idx+1) cannot overflow */
    return (long long)len + idx;
}

static void getrange_cmd(cmd_ctx *c) {
    long long start, end;
    if (!arg_ll(c, 2, &start) || !arg_ll(c, 3, &end)) return;
    kv *e = key_lookup_read(c, 1);
    if (e == NULL) {
        reply_bulk(c->out, "", 0);
        return;
    }
    if (!is_string(e)) {
        reply_error(c->out, ERR_WRONGTYPE);
        return;
    }
    size_t len = kv_slen(e);
    /* Both negative with start after end is empty even when clamping
     * would map both to 0. */
    if (len == 0 || (start < 0 && end < 0 && start > end)) {
        reply_bulk(c->out, "", 0);
        return;
    }
    start = from_start(start, len);
    end = from_start(end, len);
    if ((unsigned long long)end >= len) end = (long long)len - 1;
    if (start > end) {
        reply_bulk(c->out, "", 0);
        return;
    }
    reply_bulk(c->out, kv_sval(e) + start, (size_t)(end - start + 1));
}

/* ---- counters ---- */

/* Reads the integer held by e (0 when missing). Replies and returns 0 on
 * a wrong type or a value that is not an integer. */
static int read_counter(cmd_ctx *c, kv *e, long long *value) {
    *value = 0;
    if (e == NULL) return 1;
    if (!is_string(e)) {
        reply_error(c->out, ERR_WRONGTYPE);
        return 0;
    }
    if (!util_parse_ll(kv_sval(e), kv_slen(e), value)) {
        reply_error(c->out, ERR_NOT_INT);
        return 0;
    }
    return 1;
}

/* Stores old + incr, keeping the key's TTL (Redis overwrites in place). */
static void incr_decr(cmd_ctx *c, long long incr) {
    long long old;
    if (!read_counter(c, key_lookup_write(c, 1), &old)) return;
    if ((incr < 0 && old < 0 && incr < LLONG_MIN - old) ||
        (incr > 0 && old > 0 && incr > LLONG_MAX - old)) {
        reply_error(c->out, ERR_OVERFLOW);
        return;
    }
    long long now = old + incr;
    char buf[32];
    size_t n = util_ll2str(buf, sizeof buf, now);
    ks_set_string(c->env->ks, c->argv[1].p, c->argv[1].n, buf, n, 1, c->now_ms);
    c->dirty++;
    reply_int(c->out, now);
}

static void incr_cmd(cmd_ctx *c) { incr_decr(c, 1); }
static void decr_cmd(cmd_ctx *c) { incr_decr(c, -1); }

static void incrby_cmd(cmd_ctx *c) {
    long long incr;
    if (arg_ll(c, 2, &incr)) incr_decr(c, incr);
}

static void decrby_cmd(cmd_ctx *c) {
    long long decr;
    if (!arg_ll(c, 2, &decr)) return;
    if (decr == LLONG_MIN) { /* its negation does not exist */
        reply_error(c->out, "ERR decrement would overflow");
        return;
    }
    incr_decr(c, -decr);
}

/* Redis checks the type, then the stored value, then the increment. The
 * stored result is the same text as the reply, so a later GET sees it. */
static void incrbyfloat_cmd(cmd_ctx *c) {
    kv *e = key_lookup_write(c, 1);
    if (e != NULL && !is_string(e)) {
        reply_error(c->out, ERR_WRONGTYPE);
        return;
    }
    long double value = 0, incr;
    if ((e != NULL && !util_parse_ld(kv_sval(e), kv_slen(e), &value)) ||
        !util_parse_ld(c->argv[2].p, c->argv[2].n, &incr)) {
        reply_error(c->out, ERR_NOT_FLOAT);
        return;
    }
    value += incr;
    if (isnan(value) || isinf(value)) {
        reply_error(c->out, "ERR increment would produce NaN or Infinity");
        return;
    }
    char buf[5200]; /* enough for "%.17Lf" of LDBL_MAX */
    size_t n = util_ld2str(buf, sizeof buf, value);
    e = ks_set_string(c->env->ks, c->argv[1].p, c->argv[1].n, buf, n, 1, c->now_ms);
    c->dirty++;
    /* Log the result, not the increment: replaying a float addition is not
     * guaranteed to give the same digits. The bytes live in the locked
     * entry until the dispatcher has logged them. */
    cmd_arg a[4] = {cmd_prop_lit("SET"), c->argv[1], {kv_sval(e), kv_slen(e)},
                    cmd_prop_lit("KEEPTTL")};
    cmd_propagate_as(c, 4, a);
    reply_bulk(c->out, buf, n);
}

/* ---- blind writes (cluster weak sessions, command.h) ---- */

/* A time a blind write may carry: SET would accept it at any clock (an
 * integer > 0 whose conversion to absolute ms cannot overflow; half the
 * range leaves room for any "now"). */
static int blind_time_ok(const cmd_arg *a) {
    long long v;
    return util_parse_ll(a->p, a->n, &v) && v > 0 && v <= LLONG_MAX / 1000 / 2;
}

/* SET key value [EX|PX|EXAT|PXAT t | KEEPTTL]: its reply is +OK whatever
 * the data unless NX, XX or GET; options are checked by SET's own parser,
 * so what SET refuses is never blind. */
static int set_blind(int argc, const cmd_arg *argv, cmd_keys *pairs) {
    const cmd_ctx c = {.argc = argc, .argv = argv};
    unsigned seen = 0;
    for (int i = 3; i < argc; i++) {
        unsigned bit = option_bit(&c, i, seen, 1);
        if (!bit || (bit & (SETF_NX | SETF_XX | SETF_GET))) return -1;
        seen |= bit;
        if ((bit & SETF_ANY_EXPIRE) && !blind_time_ok(&argv[++i])) return -1;
    }
    if (argv[2].n > KS_MAX_LEN) return -1;
    cmd_keys_add(pairs, 1);
    cmd_keys_add(pairs, 2);
    return 0;
}

/* SETEX / PSETEX key time value. */
static int setex_blind(int argc, const cmd_arg *argv, cmd_keys *pairs) {
    if (argc != 4 || !blind_time_ok(&argv[2]) || argv[3].n > KS_MAX_LEN) return -1;
    cmd_keys_add(pairs, 1);
    cmd_keys_add(pairs, 3);
    return 0;
}

/* MSET key value [key value ...]. */
static int mset_blind(int argc, const cmd_arg *argv, cmd_keys *pairs) {
    if (argc < 3 || argc % 2 == 0) return -1;
    for (int i = 2; i < argc; i += 2)
        if (argv[i].n > KS_MAX_LEN) return -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        cmd_keys_add(pairs, i);
        cmd_keys_add(pairs, i + 1);
    }
    return 0;
}

/* ---- the table ---- */

#define RW_OOM (CMD_WRITE | CMD_DENYOOM)

const command strings_commands[] = {
    {"get", get_cmd, 2, CMD_READONLY | CMD_DOC_FAST | CMD_REPLY_IS_VALUE, 1, 1, 1, "string",
     "Get the value of a key", "1.0.0"},
    {"set", set_cmd, -3, RW_OOM, 1, 1, 1, "string",
     "Set the string value of a key", "1.0.0", .blind = set_blind},
    {"setnx", setnx_cmd, 3, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "string",
     "Set the value of a key, only if the key does not exist", "1.0.0"},
    {"setex", setex_cmd, 4, RW_OOM, 1, 1, 1, "string",
     "Set the value and expiration of a key", "2.0.0", .blind = setex_blind},
    {"psetex", psetex_cmd, 4, RW_OOM, 1, 1, 1, "string",
     "Set the value and expiration in milliseconds of a key", "2.6.0", .blind = setex_blind},
    {"getset", getset_cmd, 3, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "string",
     "Set the string value of a key and return its old value", "1.0.0"},
    {"getdel", getdel_cmd, 2, CMD_WRITE | CMD_DOC_FAST, 1, 1, 1, "string",
     "Get the value of a key and delete the key", "6.2.0"},
    {"getex", getex_cmd, -2, CMD_WRITE | CMD_DOC_FAST, 1, 1, 1, "string",
     "Get the value of a key and optionally set its expiration", "6.2.0"},
    {"mget", mget_cmd, -2, CMD_READONLY | CMD_DOC_FAST, 1, -1, 1, "string",
     "Get the values of all the given keys", "1.0.0"},
    {"mset", mset_cmd, -3, RW_OOM, 1, -1, 2, "string",
     "Set multiple keys to multiple values", "1.0.1", .blind = mset_blind},
    {"msetnx", msetnx_cmd, -3, RW_OOM, 1, -1, 2, "string",
     "Set multiple keys to multiple values, only if none of the keys exist", "1.0.1"},
    {"append", append_cmd, 3, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "string",
     "Append a value to a key", "2.0.0"},
    {"strlen", strlen_cmd, 2, CMD_READONLY | CMD_DOC_FAST, 1, 1, 1, "string",
     "Get the length of the value stored in a key", "2.2.0"},
    {"incr", incr_cmd, 2, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "string",
     "Increment the integer value of a key by one", "1.0.0"},
    {"decr", decr_cmd, 2, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "string",
     "Decrement the integer value of a key by one", "1.0.0"},
    {"incrby", incrby_cmd, 3, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "string",
     "Increment the integer value of a key by the given amount", "1.0.0"},
    {"decrby", decrby_cmd, 3, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "string",
     "Decrement the integer value of a key by the given number", "1.0.0"},
    {"incrbyfloat", incrbyfloat_cmd, 3, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "string",
     "Increment the float value of a key by the given amount", "2.6.0"},
    {"getrange", getrange_cmd, 4, CMD_READONLY, 1, 1, 1, "string",
     "Get a substring of the string stored at a key", "2.4.0"},
    {"setrange", setrange_cmd, 4, RW_OOM, 1, 1, 1, "string",
     "Overwrite part of a string at key starting at the specified offset", "2.2.0"},
};

const size_t strings_commands_count = sizeof strings_commands / sizeof strings_commands[0];
