/* streams.c - the stream commands that do not involve consumer groups
 * (XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XSETID, XREAD, XINFO) and
 * the helpers the group commands share (stream_cmd.h).
 *
 * Storage is src/types/stream/stream.c. Handlers run with their keys' shards
 * locked by the dispatcher: XREAD/XREADGROUP's keys follow the STREAMS
 * keyword, so their rows have a getkeys function that finds them with the
 * handler's own argument scan. Error texts and the order in which errors
 * are found follow Redis 7.0. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/stream_cmd.h"
#include "lib/mem.h"
#include "lib/util.h"

#define XADD_DEFAULT_APPROX_LIMIT 10000 /* Redis: 100 * stream-node-max-entries */
#define ID_TEXT_MAX 127                  /* Redis refuses longer ID arguments */

/* ---- shared helpers ---- */

stream *xs_lookup(cmd_ctx *c, int i, int read, int *wrongtype) {
    *wrongtype = 0;
    kv *e = read ? key_lookup_read(c, i) : key_lookup_write(c, i);
    if (!e) return NULL;
    if (kv_type(e) != KV_STREAM) {
        reply_error(c->out, ERR_WRONGTYPE);
        *wrongtype = 1;
        return NULL;
    }
    return kv_object(e);
}

stream *xs_create(cmd_ctx *c, int i) {
    stream *s = stream_new();
    ks_set_object(c->env->ks, c->argv[i].p, c->argv[i].n, KV_STREAM, s, 0, c->now_ms);
    return s;
}

/* Redis's string2ull: a non-negative long long, or failing that a strict
 * unsigned value (numbers above LLONG_MAX). */
static int parse_u64(const char *p, size_t n, uint64_t *out) {
    long long ll;
    if (util_parse_ll(p, n, &ll)) {
        if (ll < 0) return 0;
        *out = (uint64_t)ll;
        return 1;
    }
    unsigned long long ull;
    if (!util_parse_ull(p, n, &ull)) return 0;
    *out = ull;
    return 1;
}

static int parse_id_text(const char *p, size_t n, stream_id *id, uint64_t missing_seq,
                         int strict, int *seq_given) {
    if (n > ID_TEXT_MAX) return 0;
    if (seq_given) *seq_given = 1;
    if (!strict && n == 1 && (p[0] == '-' || p[0] == '+')) {
        *id = p[0] == '-' ? STREAM_ID_ZERO : STREAM_ID_MAX;
        return 1;
    }
    const char *dash = memchr(p, '-', n);
    if (!dash) {
        id->seq = missing_seq;
        return parse_u64(p, n, &id->ms);
    }
    size_t msn = (size_t)(dash - p), rest = n - msn - 1;
    if (!parse_u64(p, msn, &id->ms)) return 0;
    if (seq_given && rest == 1 && dash[1] == '*') {
        *seq_given = 0;
        id->seq = 0;
        return 1;
    }
    return parse_u64(dash + 1, rest, &id->seq);
}

int xs_parse_id(cmd_ctx *c, int i, stream_id *id, uint64_t missing_seq, int strict,
                int *seq_given, int want_reply) {
    if (parse_id_text(c->argv[i].p, c->argv[i].n, id, missing_seq, strict, seq_given))
        return 1;
    if (want_reply) reply_error(c->out, ERR_INVALID_ID);
    return 0;
}

int xs_parse_range_bound(cmd_ctx *c, int i, stream_id *id, int is_end) {
    const cmd_arg *a = &c->argv[i];
    uint64_t missing = is_end ? UINT64_MAX : 0;
    if (a->n > 1 && a->p[0] == '(') {
        if (!parse_id_text(a->p + 1, a->n - 1, id, missing, 1, NULL)) {
            reply_error(c->out, ERR_INVALID_ID);
            return 0;
        }
        int bad = is_end ? stream_id_decr(id) : stream_id_incr(id);
        if (bad) {
            reply_error(c->out, is_end ? "ERR invalid end ID for the interval"
                                       : "ERR invalid start ID for the interval");
            return 0;
        }
        return 1;
    }
    return xs_parse_id(c, i, id, missing, 0, NULL, 1);
}

void xs_reply_id(cmd_ctx *c, stream_id id) {
    char buf[STREAM_ID_STRLEN];
    reply_bulk(c->out, buf, stream_id_format(id, buf));
}

void xs_reply_entry(cmd_ctx *c, stream_iter *it, stream_id id, size_t nfv) {
    reply_array(c->out, 2);
    xs_reply_id(c, id);
    reply_array(c->out, nfv);
    for (size_t i = 0; i < nfv; i++) {
        stream_str s = stream_iter_str(it);
        reply_bulk(c->out, s.p, s.n);
    }
}

int xs_reply_one(cmd_ctx *c, const stream *s, stream_id id) {
    stream_iter it;
    stream_id got;
    size_t nfv;
    stream_iter_init(&it, s, id, id, 0);
    int found = stream_iter_next(&it, &got, &nfv);
    if (found) xs_reply_entry(c, &it, got, nfv);
    stream_iter_free(&it);
    return found;
}

stream_id xs_last_live_id(const stream *s) {
    stream_iter it;
    stream_id id = STREAM_ID_ZERO;
    size_t nfv;
    stream_iter_init(&it, s, STREAM_ID_ZERO, STREAM_ID_MAX, 1);
    if (!stream_iter_next(&it, &id, &nfv)) id = STREAM_ID_ZERO;
    stream_iter_free(&it);
    return id;
}

void xs_reply_nogroup_key(cmd_ctx *c, const cmd_arg *key, const cmd_arg *group,
                          const char *suffix) {
    reply_errorf(c->out, "NOGROUP No such key '%.*s' or consumer group '%.*s'%s", (int)key->n,
                 key->p, (int)group->n, group->p, suffix);
}

/* Reply every entry in [start, end] (count 0 = all), as an array. */
static void reply_range(cmd_ctx *c, const stream *s, stream_id start, stream_id end,
                        long long count, int rev) {
    stream_iter it;
    stream_id id;
    size_t nfv, n = 0;
    reply_deferred d = reply_defer(c->out);
    stream_iter_init(&it, s, start, end, rev);
    while ((count == 0 || (long long)n < count) && stream_iter_next(&it, &id, &nfv)) {
        xs_reply_entry(c, &it, id, nfv);
        n++;
    }
    stream_iter_free(&it);
    reply_defer_set(c->out, d, REPLY_AGG_ARRAY, n);
}

static void signal_key(cmd_ctx *c, int i) {
    const cmd_host *h = c->env->host;
    if (h && h->signal_key) h->signal_key(c->env->host_arg, c->argv[i].p, c->argv[i].n);
}

/* ---- XADD / XTRIM option parsing ---- */

enum trim_kind { TRIM_NONE, TRIM_MAXLEN, TRIM_MINID };

typedef struct trim_args {
    int kind, approx, limit_given;
    long long maxlen, limit;
    stream_id minid;
    /* XADD only */
    int nomkstream;
    int id_arg; /* argv index of the ID (or "*") */
} trim_args;

static int parse_trim_threshold(cmd_ctx *c, int *i, trim_args *t, int kind) {
    if (t->kind != TRIM_NONE && t->kind != kind) {
        reply_error(c->out,
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible");
        return 0;
    }
    t->kind = kind;
    int j = *i + 1;
    if (j + 1 < c->argc && c->argv[j].n == 1 && (c->argv[j].p[0] == '~' || c->argv[j].p[0] == '=')) {
        t->approx = c->argv[j].p[0] == '~';
        j++;
    }
    if (kind == TRIM_MAXLEN) {
        if (!arg_ll(c, j, &t->maxlen)) return 0;
        if (t->maxlen < 0) {
            reply_error(c->out, "ERR The MAXLEN argument must be >= 0.");
            return 0;
        }
    } else if (!xs_parse_id(c, j, &t->minid, 0, 1, NULL, 1)) {
        return 0;
    }
    *i = j;
    return 1;
}

/* Options from argv[2] on. For XADD stops at the ID (t->id_arg). Replies
 * the error and returns 0 on a bad option. */
static int parse_trim_args(cmd_ctx *c, int xadd, trim_args *t) {
    memset(t, 0, sizeof *t);
    int i = 2;
    for (; i < c->argc; i++) {
        int more = c->argc - 1 - i;
        if (xadd && c->argv[i].n == 1 && c->argv[i].p[0] == '*') break;
        if (more >= 1 && arg_is(c, i, "MAXLEN")) {
            if (!parse_trim_threshold(c, &i, t, TRIM_MAXLEN)) return 0;
        } else if (more >= 1 && arg_is(c, i, "MINID")) {
            if (!parse_trim_threshold(c, &i, t, TRIM_MINID)) return 0;
        } else if (more >= 1 && arg_is(c, i, "LIMIT")) {
            if (!arg_ll(c, i + 1, &t->limit)) return 0;
            if (t->limit < 0) {
                reply_error(c->out, "ERR The LIMIT argument must be >= 0.");
                return 0;
            }
            t->limit_given = 1;
            i++;
        } else if (xadd && arg_is(c, i, "NOMKSTREAM")) {
            t->nomkstream = 1;
        } else if (xadd) {
            break;
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return 0;
        }
    }
    t->id_arg = i;
    if (t->limit_given && !t->approx) {
        reply_error(c->out, "ERR syntax error, LIMIT cannot be used without the special ~ option");
        return 0;
    }
    if (t->approx && !t->limit_given) t->limit = XADD_DEFAULT_APPROX_LIMIT;
    if (!t->approx) t->limit = 0;
    return 1;
}

static uint64_t apply_trim(stream *s, const trim_args *t) {
    if (t->kind == TRIM_MAXLEN)
        return stream_trim_maxlen(s, (uint64_t)t->maxlen, t->approx, (uint64_t)t->limit);
    if (t->kind == TRIM_MINID) return stream_trim_minid(s, t->minid, t->approx, (uint64_t)t->limit);
    return 0;
}

/* Log a trim as its exact equivalent: everything before the first entry
 * still there went (approximate trims depend on block boundaries, which
 * a replay from a rewritten AOF may not share). */
static void propagate_exact_trim(cmd_ctx *c, const cmd_arg *key, stream *s) {
    char buf[STREAM_ID_STRLEN];
    cmd_arg argv[5] = {cmd_prop_lit("XTRIM"), *key, cmd_prop_lit("MINID"), cmd_prop_lit("=")};
    if (stream_length(s) == 0) {
        argv[2] = cmd_prop_lit("MAXLEN");
        argv[4] = cmd_prop_lit("0");
    } else {
        argv[4] = (cmd_arg){buf, stream_id_format(stream_first_id(s), buf)};
    }
    cmd_propagate_record(c, 5, argv);
}

/* ---- XADD ---- */

/* The ID XADD assigns after `last` (the stream's last ID, 0-0 for a new
 * stream). *id holds the parsed explicit ID, if any. Replies the error
 * and returns 0 when the ID would not grow. */
static int xadd_pick_id(cmd_ctx *c, stream_id last, int auto_id, int seq_given,
                        stream_id *id) {
    if (auto_id) {
        uint64_t now = c->now_ms > 0 ? (uint64_t)c->now_ms : 0;
        if (now > last.ms) {
            *id = (stream_id){now, 0};
            return 1;
        }
        *id = last;
        return stream_id_incr(id) == 0; /* last < max: checked by the caller */
    }
    /* "ms-*": the next sequence within the last ID's millisecond, or 0
     * for a new millisecond. */
    if (!seq_given && id->ms == last.ms) {
        if (last.seq == UINT64_MAX) goto too_small;
        id->seq = last.seq + 1;
    }
    if (stream_id_cmp(*id, last) > 0) return 1;
too_small:
    reply_error(c->out, "ERR The ID specified in XADD is equal or smaller than the target stream top item");
    return 0;
}

static void xadd_propagate(cmd_ctx *c, const trim_args *t, stream_id id, stream *s,
                           uint64_t trimmed) {
    if (!c->env->propagate) {
        c->prop_done = 1;
        return;
    }
    /* XADD key <id> f v ...: the options are dropped, the trim (if any)
     * is logged as its own exact record. */
    int nfv = c->argc - t->id_arg - 1;
    cmd_arg *argv = xmalloc((size_t)(nfv + 3) * sizeof *argv);
    char buf[STREAM_ID_STRLEN];
    argv[0] = cmd_prop_lit("XADD");
    argv[1] = c->argv[1];
    argv[2] = (cmd_arg){buf, stream_id_format(id, buf)};
    memcpy(argv + 3, c->argv + t->id_arg + 1, (size_t)nfv * sizeof *argv);
    cmd_propagate_record(c, nfv + 3, argv);
    free(argv);
    if (trimmed) propagate_exact_trim(c, &c->argv[1], s);
}

static void xadd_cmd(cmd_ctx *c) {
    trim_args t;
    if (!parse_trim_args(c, 1, &t)) return;
    int fields = c->argc - t.id_arg - 1;
    if (fields < 2 || fields % 2) {
        reply_arity_error(c);
        return;
    }
    const cmd_arg *a = &c->argv[t.id_arg];
    stream_id id = STREAM_ID_ZERO;
    int seq_given = 1;
    if (!(a->n == 1 && a->p[0] == '*')) {
        if (!xs_parse_id(c, t.id_arg, &id, 0, 1, &seq_given, 1)) return;
        if (seq_given && stream_id_is_zero(id)) {
            reply_error(c->out, "ERR The ID specified in XADD must be greater than 0-0");
            return;
        }
    }
    int wrongtype;
    stream *s = xs_lookup(c, 1, 0, &wrongtype);
    if (wrongtype) return;
    if (!s && t.nomkstream) {
        reply_null(c->out);
        return;
    }
    stream_id last = s ? stream_last_id(s) : STREAM_ID_ZERO;
    if (stream_id_cmp(last, STREAM_ID_MAX) == 0) {
        reply_error(c->out, "ERR The stream has exhausted the last possible ID, unable to add more items");
        return;
    }
    if (!xadd_pick_id(c, last, a->n == 1 && a->p[0] == '*', seq_given, &id)) return;
    if (!s) s = xs_create(c, 1);
    stream_str fv[64];
    stream_str *v = fields <= 64 ? fv : xmalloc((size_t)fields * sizeof *v);
    for (int i = 0; i < fields; i++) v[i] = (stream_str){c->argv[t.id_arg + 1 + i].p, c->argv[t.id_arg + 1 + i].n};
    stream_append(s, id, v, (size_t)fields);
    if (v != fv) free(v);
    uint64_t trimmed = apply_trim(s, &t);
    xs_reply_id(c, id);
    c->dirty++;
    xadd_propagate(c, &t, id, s, trimmed);
    signal_key(c, 1);
}

/* ---- XLEN / XRANGE / XREVRANGE ---- */

static void xlen_cmd(cmd_ctx *c) {
    int wrongtype;
    stream *s = xs_lookup(c, 1, 1, &wrongtype);
    if (wrongtype) return;
    reply_int(c->out, s ? (long long)stream_length(s) : 0);
}

static void range_generic(cmd_ctx *c, int rev) {
    stream_id start, end;
    int start_arg = rev ? 3 : 2, end_arg = rev ? 2 : 3;
    if (!xs_parse_range_bound(c, start_arg, &start, 0)) return;
    if (!xs_parse_range_bound(c, end_arg, &end, 1)) return;
    long long count = -1;
    for (int j = 4; j < c->argc; j++) {
        if (arg_is(c, j, "COUNT") && j + 1 < c->argc) {
            if (!arg_ll(c, j + 1, &count)) return;
            if (count < 0) count = 0;
            j++;
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return;
        }
    }
    int wrongtype;
    stream *s = xs_lookup(c, 1, 1, &wrongtype);
    if (wrongtype) return;
    if (!s) {
        reply_array(c->out, 0);
        return;
    }
    if (count == 0) {
        reply_null_array(c->out);
        return;
    }
    reply_range(c, s, start, end, count < 0 ? 0 : count, rev);
}

static void xrange_cmd(cmd_ctx *c) { range_generic(c, 0); }
static void xrevrange_cmd(cmd_ctx *c) { range_generic(c, 1); }

/* ---- XDEL / XTRIM / XSETID ---- */

static void xdel_cmd(cmd_ctx *c) {
    int wrongtype;
    stream *s = xs_lookup(c, 1, 0, &wrongtype);
    if (wrongtype) return;
    if (!s) {
        reply_int(c->out, 0);
        return;
    }
    stream_id id;
    for (int j = 2; j < c->argc; j++)
        if (!xs_parse_id(c, j, &id, 0, 1, NULL, 1)) return;
    long long deleted = 0;
    for (int j = 2; j < c->argc; j++) {
        xs_parse_id(c, j, &id, 0, 1, NULL, 0);
        deleted += stream_delete(s, id);
    }
    c->dirty += (unsigned)deleted;
    reply_int(c->out, deleted);
}

static void xtrim_cmd(cmd_ctx *c) {
    int wrongtype;
    stream *s = xs_lookup(c, 1, 0, &wrongtype);
    if (wrongtype) return;
    if (!s) {
        reply_int(c->out, 0);
        return;
    }
    trim_args t;
    if (!parse_trim_args(c, 0, &t)) return;
    if (t.kind == TRIM_NONE) {
        reply_error(c->out, "ERR syntax error, XTRIM must be called with a trimming strategy");
        return;
    }
    uint64_t removed = apply_trim(s, &t);
    if (removed) {
        c->dirty++;
        propagate_exact_trim(c, &c->argv[1], s);
    }
    reply_int(c->out, (long long)removed);
}

static int xsetid_options(cmd_ctx *c, stream_id id, long long *added, stream_id *maxdel) {
    for (int i = 3; i < c->argc; i += 2) {
        int more = c->argc - 1 - i;
        if (more && arg_is(c, i, "ENTRIESADDED")) {
            if (!arg_ll(c, i + 1, added)) return 0;
            if (*added < 0) {
                reply_error(c->out, "ERR entries_added must be positive");
                return 0;
            }
        } else if (more && arg_is(c, i, "MAXDELETEDID")) {
            if (!xs_parse_id(c, i + 1, maxdel, 0, 1, NULL, 1)) return 0;
            if (stream_id_cmp(id, *maxdel) < 0) {
                reply_error(c->out, "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id");
                return 0;
            }
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return 0;
        }
    }
    return 1;
}

static void xsetid_cmd(cmd_ctx *c) {
    stream_id id, maxdel = STREAM_ID_ZERO;
    long long added = -1;
    if (!xs_parse_id(c, 2, &id, 0, 1, NULL, 1)) return;
    if (!xsetid_options(c, id, &added, &maxdel)) return;
    int wrongtype;
    stream *s = xs_lookup(c, 1, 0, &wrongtype);
    if (wrongtype) return;
    if (!s) {
        reply_error(c->out, ERR_NO_KEY);
        return;
    }
    if (stream_id_cmp(id, stream_max_deleted_id(s)) < 0) {
        reply_error(c->out, "ERR The ID specified in XSETID is smaller than current max_deleted_entry_id");
        return;
    }
    if (stream_length(s) > 0) {
        if (stream_id_cmp(id, xs_last_live_id(s)) < 0) {
            reply_error(c->out, "ERR The ID specified in XSETID is smaller than the target stream top item");
            return;
        }
        if (added != -1 && stream_length(s) > (uint64_t)added) {
            reply_error(c->out, "ERR The entries_added specified in XSETID is smaller than the target stream length");
            return;
        }
    }
    stream_set_meta(s, id, added != -1 ? (uint64_t)added : stream_entries_added(s),
                    stream_id_is_zero(maxdel) ? stream_max_deleted_id(s) : maxdel);
    c->dirty++;
    reply_ok(c->out);
}

/* ---- XREAD / XREADGROUP ---- */

typedef struct xread_args {
    long long count;      /* 0 = all */
    long long block_ms;   /* -1 = no BLOCK */
    int streams_arg, nstreams;
    int group_arg;        /* argv index of the group name, 0 = XREAD */
    int noack;
} xread_args;

/* XREAD / XREADGROUP's arguments up to the stream list, read without a
 * cmd_ctx: the handler and the getkeys functions (the keys the dispatcher
 * locks) share it, so they cannot disagree. Returns NULL, or the error to
 * reply (Redis's texts, in Redis's order). */
static const char *scan_xread(int argc, const cmd_arg *argv, int group, xread_args *a) {
    memset(a, 0, sizeof *a);
    a->block_ms = -1;
    for (int i = 1; i < argc; i++) {
        int more = argc - 1 - i;
        if (cmd_arg_is(&argv[i], "BLOCK") && more) {
            i++;
            if (!util_parse_ll(argv[i].p, argv[i].n, &a->block_ms))
                return "ERR timeout is not an integer or out of range";
            if (a->block_ms < 0) return "ERR timeout is negative";
        } else if (cmd_arg_is(&argv[i], "COUNT") && more) {
            i++;
            if (!util_parse_ll(argv[i].p, argv[i].n, &a->count)) return ERR_NOT_INT;
            if (a->count < 0) a->count = 0;
        } else if (cmd_arg_is(&argv[i], "STREAMS") && more) {
            a->streams_arg = i + 1;
            a->nstreams = argc - a->streams_arg;
            if (a->nstreams % 2)
                return "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.";
            a->nstreams /= 2;
            break;
        } else if (cmd_arg_is(&argv[i], "GROUP") && more >= 2) {
            if (!group)
                return "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.";
            a->group_arg = i + 1;
            i += 2;
        } else if (group && cmd_arg_is(&argv[i], "NOACK")) {
            a->noack = 1;
        } else {
            return ERR_SYNTAX;
        }
    }
    if (!a->streams_arg) return ERR_SYNTAX;
    if (group && !a->group_arg) return "ERR Missing GROUP option for XREADGROUP";
    return NULL;
}

/* getkeys: the keys after STREAMS (none when the arguments are refused). */
static void xread_keys_generic(int argc, const cmd_arg *argv, int group, cmd_keys *out) {
    xread_args a;
    if (scan_xread(argc, argv, group, &a)) return;
    for (int k = 0; k < a.nstreams; k++) cmd_keys_add(out, a.streams_arg + k);
}

static void xread_keys(int argc, const cmd_arg *argv, cmd_keys *out) {
    xread_keys_generic(argc, argv, 0, out);
}

static void xreadgroup_keys(int argc, const cmd_arg *argv, cmd_keys *out) {
    xread_keys_generic(argc, argv, 1, out);
}

/* Per stream of the request: where to read from. */
typedef struct xread_target {
    stream_id after;   /* entries strictly after this */
    int new_only;      /* XREADGROUP ">" */
    stream_group *g;
} xread_target;

static int is_word(const cmd_arg *a, char ch) { return a->n == 1 && a->p[0] == ch; }

/* Resolve the IDs (and groups). Replies the error and returns 0. */
static int resolve_targets(cmd_ctx *c, const xread_args *a, xread_target *t) {
    for (int k = 0; k < a->nstreams; k++) {
        int key = a->streams_arg + k, idarg = key + a->nstreams;
        int wrongtype;
        stream *s = xs_lookup(c, key, 1, &wrongtype);
        if (wrongtype) return 0;
        t[k].g = NULL;
        t[k].new_only = 0;
        if (a->group_arg) {
            t[k].g = s ? stream_group_find(s, c->argv[a->group_arg].p, c->argv[a->group_arg].n) : NULL;
            if (!t[k].g && (c->sess->flags & SESS_BLOCK_RERUN)) {
                /* woken by DEL / XGROUP DESTROY: Redis 7.0's texts */
                reply_error(c->out, s ? "NOGROUP the consumer group this client was blocked on no longer exists"
                                      : "UNBLOCKED the stream key no longer exists");
                return 0;
            }
            if (!t[k].g) {
                xs_reply_nogroup_key(c, &c->argv[key], &c->argv[a->group_arg],
                                     " in XREADGROUP with GROUP option");
                return 0;
            }
        }
        if (is_word(&c->argv[idarg], '$')) {
            if (a->group_arg) {
                reply_error(c->out, "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
                return 0;
            }
            t[k].after = s ? stream_last_id(s) : STREAM_ID_ZERO;
        } else if (is_word(&c->argv[idarg], '>')) {
            if (!a->group_arg) {
                reply_error(c->out, "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
                return 0;
            }
            t[k].after = t[k].g->last_id;
            t[k].new_only = 1;
        } else if (!xs_parse_id(c, idarg, &t[k].after, 0, 1, NULL, 1)) {
            return 0;
        }
    }
    return 1;
}

/* Is there anything to serve for target k now? */
static int has_data(const stream *s, const xread_target *t) {
    if (t->g && !t->new_only) return 1; /* history: always answered */
    if (!s || stream_length(s) == 0) return 0;
    return stream_id_cmp(xs_last_live_id(s), t->after) > 0;
}

static stream_consumer *reading_consumer(cmd_ctx *c, stream *s, stream_group *g, int arg) {
    stream_consumer *cons = group_consumer_find(g, c->argv[arg].p, c->argv[arg].n);
    if (!cons) cons = group_consumer_create(s, g, c->argv[arg].p, c->argv[arg].n, c->now_ms);
    cons->seen_time = c->now_ms;
    return cons;
}

static void serve_one(cmd_ctx *c, const xread_args *a, int k, stream *s, xread_target *t) {
    const cmd_arg *key = &c->argv[a->streams_arg + k];
    if (c->out->proto == 2) reply_array(c->out, 2);
    reply_bulk(c->out, key->p, key->n);
    if (!t->g) {
        stream_id start = t->after;
        if (stream_id_incr(&start)) {
            reply_array(c->out, 0);
            return;
        }
        reply_range(c, s, start, STREAM_ID_MAX, a->count, 0);
        return;
    }
    stream_consumer *cons = reading_consumer(c, s, t->g, a->group_arg + 1);
    const cmd_arg *group = &c->argv[a->group_arg];
    if (t->new_only)
        xs_reply_group_new(c, s, t->g, cons, a->count, a->noack, key, group);
    else
        xs_reply_group_history(c, s, t->g, cons, t->after, a->count, key, group);
}

/* The argv to run again when woken: "$" replaced by the ID it meant now,
 * so that entries added meanwhile are not missed. */
static void block_reader(cmd_ctx *c, const xread_args *a, const xread_target *t) {
    cmd_arg *argv = xmalloc((size_t)c->argc * sizeof *argv);
    char(*ids)[STREAM_ID_STRLEN] = xmalloc((size_t)a->nstreams * sizeof *ids);
    memcpy(argv, c->argv, (size_t)c->argc * sizeof *argv);
    for (int k = 0; k < a->nstreams; k++) {
        int idarg = a->streams_arg + a->nstreams + k;
        if (is_word(&c->argv[idarg], '$'))
            argv[idarg] = (cmd_arg){ids[k], stream_id_format(t[k].after, ids[k])};
    }
    int rc = cmd_block_on_keys(c, a->nstreams, c->argv + a->streams_arg, c->argc, argv,
                               a->block_ms);
    if (rc < 0) reply_null_array(c->out);
    free(ids);
    free(argv);
}

static void xread_serve(cmd_ctx *c, const xread_args *a, xread_target *t) {
    if (!resolve_targets(c, a, t)) return;
    size_t served = 0;
    reply_deferred d = NULL;
    for (int k = 0; k < a->nstreams; k++) {
        int wrongtype;
        stream *s = xs_lookup(c, a->streams_arg + k, 0, &wrongtype);
        if (!s || !has_data(s, &t[k])) continue;
        if (served++ == 0) d = reply_defer(c->out);
        serve_one(c, a, k, s, &t[k]);
    }
    if (served) {
        reply_defer_set(c->out, d, c->out->proto == 2 ? REPLY_AGG_ARRAY : REPLY_AGG_MAP, served);
        return;
    }
    if (a->block_ms >= 0) block_reader(c, a, t);
    else reply_null_array(c->out);
}

/* The keys after STREAMS are locked by the dispatcher (the rows' getkeys
 * find them with the same scan), so records are logged under them. */
static void xread_generic(cmd_ctx *c, int group) {
    xread_args a;
    const char *err = scan_xread(c->argc, c->argv, group, &a);
    if (err) {
        reply_error(c->out, err);
        return;
    }
    xread_target tt[8];
    xread_target *t = a.nstreams <= 8 ? tt : xmalloc((size_t)a.nstreams * sizeof *t);
    xread_serve(c, &a, t);
    if (t != tt) free(t);
}

static void xread_cmd(cmd_ctx *c) { xread_generic(c, 0); }
static void xreadgroup_cmd(cmd_ctx *c) { xread_generic(c, 1); }

/* ---- XINFO ---- */

static void reply_kv_int(cmd_ctx *c, const char *k, long long v) {
    reply_bulk_cstr(c->out, k);
    reply_int(c->out, v);
}

static void reply_kv_id(cmd_ctx *c, const char *k, stream_id id) {
    reply_bulk_cstr(c->out, k);
    xs_reply_id(c, id);
}

static void reply_entries_read(cmd_ctx *c, const stream *s, const stream_group *g) {
    reply_bulk_cstr(c->out, "entries-read");
    if (g->entries_read == GROUP_ENTRIES_READ_UNKNOWN) reply_null(c->out);
    else reply_int(c->out, g->entries_read);
    int64_t lag;
    reply_bulk_cstr(c->out, "lag");
    if (group_lag(s, g, &lag)) reply_int(c->out, (long long)lag);
    else reply_null(c->out);
}

static void reply_stream_head(cmd_ctx *c, const stream *s) {
    reply_kv_int(c, "length", (long long)stream_length(s));
    reply_kv_int(c, "radix-tree-keys", (long long)stream_block_count(s));
    reply_kv_int(c, "radix-tree-nodes", (long long)stream_block_count(s) + 1);
    reply_kv_id(c, "last-generated-id", stream_last_id(s));
    reply_kv_id(c, "max-deleted-entry-id", stream_max_deleted_id(s));
    reply_kv_int(c, "entries-added", (long long)stream_entries_added(s));
    reply_kv_id(c, "recorded-first-entry-id", stream_first_id(s));
}

static void reply_edge_entry(cmd_ctx *c, const char *name, const stream *s, int last) {
    reply_bulk_cstr(c->out, name);
    if (stream_length(s) == 0 || !xs_reply_one(c, s, last ? xs_last_live_id(s) : stream_first_id(s)))
        reply_null(c->out);
}

static void xinfo_stream_brief(cmd_ctx *c, const stream *s) {
    reply_map(c->out, 10);
    reply_stream_head(c, s);
    reply_kv_int(c, "groups", (long long)stream_group_count(s));
    reply_edge_entry(c, "first-entry", s, 0);
    reply_edge_entry(c, "last-entry", s, 1);
}

static void reply_group_pel_full(cmd_ctx *c, const stream_group *g, long long count) {
    size_t n = g->pel.count;
    if (count && (size_t)count < n) n = (size_t)count;
    reply_array(c->out, n);
    idmap_node *x = idmap_first(&g->pel);
    for (size_t i = 0; i < n; i++, x = x->next[0]) {
        const stream_nack *nk = x->val;
        reply_array(c->out, 4);
        xs_reply_id(c, nk->id);
        reply_bulk(c->out, nk->owner->name, nk->owner->nlen);
        reply_int(c->out, nk->delivery_time);
        reply_int(c->out, (long long)nk->delivery_count);
    }
}

static void reply_consumer_full(cmd_ctx *c, const stream_consumer *cons, long long count) {
    reply_map(c->out, 4);
    reply_bulk_cstr(c->out, "name");
    reply_bulk(c->out, cons->name, cons->nlen);
    reply_kv_int(c, "seen-time", cons->seen_time);
    reply_kv_int(c, "pel-count", (long long)cons->pel.count);
    reply_bulk_cstr(c->out, "pending");
    size_t n = cons->pel.count;
    if (count && (size_t)count < n) n = (size_t)count;
    reply_array(c->out, n);
    idmap_node *x = idmap_first(&cons->pel);
    for (size_t i = 0; i < n; i++, x = x->next[0]) {
        const stream_nack *nk = x->val;
        reply_array(c->out, 3);
        xs_reply_id(c, nk->id);
        reply_int(c->out, nk->delivery_time);
        reply_int(c->out, (long long)nk->delivery_count);
    }
}

static void reply_group_full(cmd_ctx *c, const stream *s, const stream_group *g, long long count) {
    reply_map(c->out, 7);
    reply_bulk_cstr(c->out, "name");
    reply_bulk(c->out, g->name, g->nlen);
    reply_kv_id(c, "last-delivered-id", g->last_id);
    reply_entries_read(c, s, g);
    reply_kv_int(c, "pel-count", (long long)g->pel.count);
    reply_bulk_cstr(c->out, "pending");
    reply_group_pel_full(c, g, count);
    reply_bulk_cstr(c->out, "consumers");
    reply_array(c->out, g->ncons);
    for (size_t i = 0; i < g->ncons; i++) reply_consumer_full(c, g->cons[i], count);
}

static void xinfo_stream_full(cmd_ctx *c, const stream *s, long long count) {
    reply_map(c->out, 9);
    reply_stream_head(c, s);
    reply_bulk_cstr(c->out, "entries");
    reply_range(c, s, STREAM_ID_ZERO, STREAM_ID_MAX, count, 0);
    reply_bulk_cstr(c->out, "groups");
    reply_array(c->out, stream_group_count(s));
    for (size_t i = 0; i < stream_group_count(s); i++)
        reply_group_full(c, s, stream_group_at(s, i), count);
}

static void xinfo_groups(cmd_ctx *c, const stream *s) {
    reply_array(c->out, stream_group_count(s));
    for (size_t i = 0; i < stream_group_count(s); i++) {
        const stream_group *g = stream_group_at(s, i);
        reply_map(c->out, 6);
        reply_bulk_cstr(c->out, "name");
        reply_bulk(c->out, g->name, g->nlen);
        reply_kv_int(c, "consumers", (long long)g->ncons);
        reply_kv_int(c, "pending", (long long)g->pel.count);
        reply_kv_id(c, "last-delivered-id", g->last_id);
        reply_entries_read(c, s, g);
    }
}

static void xinfo_consumers(cmd_ctx *c, const stream *s) {
    const stream_group *g = stream_group_find(s, c->argv[3].p, c->argv[3].n);
    if (!g) {
        reply_errorf(c->out, "NOGROUP No such consumer group '%.*s' for key name '%.*s'",
                     (int)c->argv[3].n, c->argv[3].p, (int)c->argv[2].n, c->argv[2].p);
        return;
    }
    reply_array(c->out, g->ncons);
    for (size_t i = 0; i < g->ncons; i++) {
        const stream_consumer *cons = g->cons[i];
        long long idle = c->now_ms - cons->seen_time;
        reply_map(c->out, 3);
        reply_bulk_cstr(c->out, "name");
        reply_bulk(c->out, cons->name, cons->nlen);
        reply_kv_int(c, "pending", (long long)cons->pel.count);
        reply_kv_int(c, "idle", idle < 0 ? 0 : idle);
    }
}

static const char *const xinfo_help[] = {
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
};

static int xinfo_stream_count(cmd_ctx *c, long long *count) {
    *count = 10;
    if (c->argc == 3) return 1;
    if (!arg_is(c, 3, "FULL") || (c->argc != 4 && c->argc != 6) ||
        (c->argc == 6 && !arg_is(c, 4, "COUNT"))) {
        reply_subcommand_syntax_error(c);
        return 0;
    }
    if (c->argc == 6) {
        if (!arg_ll(c, 5, count)) return 0;
        if (*count < 0) *count = 0;
    }
    return 1;
}

/* The stream XINFO's subcommands name (argv[2]); NULL after replying
 * WRONGTYPE or "no such key". */
static stream *xinfo_target(cmd_ctx *c) {
    int wrongtype;
    stream *s = xs_lookup(c, 2, 0, &wrongtype);
    if (!s && !wrongtype) reply_error(c->out, ERR_NO_KEY);
    return s;
}

/* XINFO STREAM key [FULL [COUNT count]] */
static void xinfo_stream_cmd(cmd_ctx *c) {
    stream *s = xinfo_target(c);
    long long count;
    if (!s || !xinfo_stream_count(c, &count)) return;
    if (c->argc == 3) xinfo_stream_brief(c, s);
    else xinfo_stream_full(c, s, count);
}

static void xinfo_groups_cmd(cmd_ctx *c) {
    stream *s = xinfo_target(c);
    if (s) xinfo_groups(c, s);
}

static void xinfo_consumers_cmd(cmd_ctx *c) {
    stream *s = xinfo_target(c);
    if (s) xinfo_consumers(c, s);
}

static void xinfo_help_cmd(cmd_ctx *c) {
    reply_help_lines(c, xinfo_help, sizeof xinfo_help / sizeof xinfo_help[0]);
}

/* ---- the table ---- */

#define RW_OOM (CMD_WRITE | CMD_DENYOOM)
#define KEY2 2, 2, 1 /* a container's subcommand: the key follows it */

static const command xinfo_subs[] = {
    {"xinfo|stream", xinfo_stream_cmd, -3, CMD_READONLY, KEY2, "stream",
     "Get information about a stream", "5.0.0"},
    {"xinfo|groups", xinfo_groups_cmd, 3, CMD_READONLY, KEY2, "stream",
     "List the consumer groups of a stream", "5.0.0"},
    {"xinfo|consumers", xinfo_consumers_cmd, 4, CMD_READONLY, KEY2, "stream",
     "List the consumers in a consumer group", "5.0.0"},
    {"xinfo|help", xinfo_help_cmd, 2, CMD_NODATA | CMD_DOC_LOADING | CMD_DOC_STALE, 0, 0, 0,
     "stream", "Show helpful text about the different subcommands", "5.0.0"},
};

const command streams_commands[] = {
    {"xadd", xadd_cmd, -5, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "stream",
     "Appends a new entry to a stream", "5.0.0"},
    {"xlen", xlen_cmd, 2, CMD_READONLY | CMD_DOC_FAST, 1, 1, 1, "stream",
     "Return the number of entries in a stream", "5.0.0"},
    {"xrange", xrange_cmd, -4, CMD_READONLY, 1, 1, 1, "stream",
     "Return a range of elements in a stream, with IDs matching the specified IDs interval", "5.0.0"},
    {"xrevrange", xrevrange_cmd, -4, CMD_READONLY, 1, 1, 1, "stream",
     "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE", "5.0.0"},
    {"xdel", xdel_cmd, -3, CMD_WRITE | CMD_DOC_FAST, 1, 1, 1, "stream",
     "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist.", "5.0.0"},
    {"xtrim", xtrim_cmd, -4, CMD_WRITE, 1, 1, 1, "stream",
     "Trims the stream to (approximately if '~' is passed) a certain size", "5.0.0"},
    {"xsetid", xsetid_cmd, -3, RW_OOM | CMD_DOC_FAST, 1, 1, 1, "stream",
     "An internal command for replicating stream values", "5.0.0"},
    /* Keys follow STREAMS: getkeys finds them (movablekeys). */
    {"xread", xread_cmd, -4, CMD_READONLY | CMD_BLOCKING, 0, 0, 0, "stream",
     "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block.", "5.0.0",
     .getkeys = xread_keys},
    {"xreadgroup", xreadgroup_cmd, -7, CMD_WRITE | CMD_BLOCKING, 0, 0, 0, "stream",
     "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block.", "5.0.0",
     .getkeys = xreadgroup_keys},
    {"xinfo", NULL, -2, 0, 0, 0, 0, "stream", "A container for stream introspection commands",
     "5.0.0", CMD_SUBS(xinfo_subs)},
};

const size_t streams_commands_count = sizeof streams_commands / sizeof streams_commands[0];
