/* streams_group.c - consumer group commands: XGROUP, XACK, XPENDING,
 * XCLAIM, XAUTOCLAIM, and the group side of XREADGROUP.
 *
 * AOF: every change to a pending entry is logged in one deterministic
 * form, "XCLAIM key group consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID
 * LASTID last", and a group's read position as "XGROUP SETID key group id
 * ENTRIESREAD n" (the forms Redis propagates), so replay does not depend
 * on the clock or on which consumer asked. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/stream_cmd.h"
#include "lib/mem.h"
#include "lib/util.h"

/* ---- propagation ---- */

static void propagate_claim(cmd_ctx *c, const cmd_arg *key, const cmd_arg *group,
                            const stream_group *g, stream_id id, const stream_nack *nk) {
    if (!c->env->propagate) {
        c->prop_done = 1;
        return;
    }
    char idb[STREAM_ID_STRLEN], lastb[STREAM_ID_STRLEN], tb[24], rb[24];
    cmd_arg argv[14] = {
        cmd_prop_lit("XCLAIM"),
        *key,
        *group,
        {nk->owner->name, nk->owner->nlen},
        cmd_prop_lit("0"),
        {idb, stream_id_format(id, idb)},
        cmd_prop_lit("TIME"),
        {tb, util_ll2str(tb, sizeof tb, nk->delivery_time)},
        cmd_prop_lit("RETRYCOUNT"),
        {rb, util_ull2str(rb, sizeof rb, nk->delivery_count)},
        cmd_prop_lit("FORCE"),
        cmd_prop_lit("JUSTID"),
        cmd_prop_lit("LASTID"),
        {lastb, stream_id_format(g->last_id, lastb)},
    };
    cmd_propagate_record(c, 14, argv);
}

static void propagate_group_id(cmd_ctx *c, const cmd_arg *key, const cmd_arg *group,
                               const stream_group *g) {
    if (!c->env->propagate) {
        c->prop_done = 1;
        return;
    }
    char idb[STREAM_ID_STRLEN], nb[24];
    cmd_arg argv[7] = {
        cmd_prop_lit("XGROUP"), cmd_prop_lit("SETID"), *key, *group,
        {idb, stream_id_format(g->last_id, idb)}, cmd_prop_lit("ENTRIESREAD"),
        {nb, util_ll2str(nb, sizeof nb, g->entries_read)},
    };
    cmd_propagate_record(c, 7, argv);
}

/* A pending entry whose stream entry is gone: log its removal (as an
 * XCLAIM, which replays as a removal too) and drop it. */
static void drop_dead_nack(cmd_ctx *c, stream *s, stream_group *g, stream_nack *nk,
                           const cmd_arg *key, const cmd_arg *group) {
    stream_id id = nk->id;
    propagate_claim(c, key, group, g, id, nk);
    group_ack(s, g, id);
    c->dirty++;
}

/* ---- XREADGROUP ---- */

/* Deliver entry id to cons: a new pending entry, or one taken over from
 * whoever had it (after an XGROUP SETID backwards). */
static void deliver_new(cmd_ctx *c, stream *s, stream_group *g, stream_consumer *cons,
                        stream_id id, const cmd_arg *key, const cmd_arg *group) {
    stream_nack *nk = group_nack_find(g, id);
    if (nk) {
        group_nack_transfer(nk, cons);
        nk->delivery_time = c->now_ms;
        nk->delivery_count = 1;
    } else {
        nk = group_nack_add(s, g, cons, id, c->now_ms, 1);
    }
    propagate_claim(c, key, group, g, id, nk);
}

void xs_reply_group_new(cmd_ctx *c, stream *s, stream_group *g, stream_consumer *cons,
                        long long count, int noack, const cmd_arg *key, const cmd_arg *group) {
    stream_id start = g->last_id, id;
    size_t nfv, n = 0;
    reply_deferred d = reply_defer(c->out);
    if (stream_id_incr(&start) == 0) {
        stream_iter it;
        stream_iter_init(&it, s, start, STREAM_ID_MAX, 0);
        while ((count == 0 || (long long)n < count) && stream_iter_next(&it, &id, &nfv)) {
            xs_reply_entry(c, &it, id, nfv);
            group_advance(s, g, id);
            if (!noack) deliver_new(c, s, g, cons, id, key, group);
            n++;
        }
        stream_iter_free(&it);
    }
    reply_defer_set(c->out, d, REPLY_AGG_ARRAY, n);
    if (n) {
        c->dirty++;
        propagate_group_id(c, key, group, g);
    }
}

void xs_reply_group_history(cmd_ctx *c, stream *s, stream_group *g, stream_consumer *cons,
                            stream_id after, long long count, const cmd_arg *key,
                            const cmd_arg *group) {
    size_t n = 0;
    reply_deferred d = reply_defer(c->out);
    if (stream_id_incr(&after) == 0) {
        for (idmap_node *x = idmap_seek(&cons->pel, after);
             x && (count == 0 || (long long)n < count); x = x->next[0], n++) {
            stream_nack *nk = x->val;
            if (!xs_reply_one(c, s, nk->id)) {
                /* Pending but deleted from the stream: ID with no fields. */
                reply_array(c->out, 2);
                xs_reply_id(c, nk->id);
                reply_null_array(c->out);
                continue;
            }
            nk->delivery_time = c->now_ms;
            nk->delivery_count++;
            propagate_claim(c, key, group, g, nk->id, nk);
            c->dirty++;
        }
    }
    reply_defer_set(c->out, d, REPLY_AGG_ARRAY, n);
}

/* ---- XGROUP ---- */

static const char *const xgroup_help[] = {
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
};

enum xgroup_sub { XG_CREATE, XG_SETID, XG_DESTROY, XG_CREATECONSUMER, XG_DELCONSUMER };

typedef struct xgroup_opts {
    int mkstream;
    long long entries_read;
} xgroup_opts;

static int xgroup_parse_opts(cmd_ctx *c, int sub, xgroup_opts *o) {
    o->mkstream = 0;
    o->entries_read = GROUP_ENTRIES_READ_UNKNOWN;
    if (sub != XG_CREATE && sub != XG_SETID) return 1;
    for (int i = 5; i < c->argc;) {
        if (sub == XG_CREATE && arg_is(c, i, "MKSTREAM")) {
            o->mkstream = 1;
            i++;
        } else if (arg_is(c, i, "ENTRIESREAD") && i + 1 < c->argc) {
            if (!arg_ll(c, i + 1, &o->entries_read)) return 0;
            if (o->entries_read < 0 && o->entries_read != GROUP_ENTRIES_READ_UNKNOWN) {
                reply_error(c->out, "ERR value for ENTRIESREAD must be positive or -1");
                return 0;
            }
            i += 2;
        } else {
            reply_subcommand_syntax_error(c);
            return 0;
        }
    }
    return 1;
}

static void xgroup_create(cmd_ctx *c, stream *s, const xgroup_opts *o) {
    stream_id id;
    if (c->argv[4].n == 1 && c->argv[4].p[0] == '$') id = s ? stream_last_id(s) : STREAM_ID_ZERO;
    else if (!xs_parse_id(c, 4, &id, 0, 1, NULL, 1)) return;
    if (!s) s = xs_create(c, 2);
    if (!stream_group_create(s, c->argv[3].p, c->argv[3].n, id, o->entries_read)) {
        reply_error(c->out, "BUSYGROUP Consumer Group name already exists");
        return;
    }
    c->dirty++;
    reply_ok(c->out);
}

static void xgroup_setid(cmd_ctx *c, stream *s, stream_group *g, const xgroup_opts *o) {
    stream_id id;
    if (c->argv[4].n == 1 && c->argv[4].p[0] == '$') id = stream_last_id(s);
    else if (!xs_parse_id(c, 4, &id, 0, 0, NULL, 1)) return;
    g->last_id = id;
    g->entries_read = o->entries_read;
    c->dirty++;
    reply_ok(c->out);
}

static void xgroup_run(cmd_ctx *c, int sub, stream *s, stream_group *g, const xgroup_opts *o) {
    switch (sub) {
    case XG_CREATE: xgroup_create(c, s, o); return;
    case XG_SETID: xgroup_setid(c, s, g, o); return;
    case XG_DESTROY: {
        int gone = g && stream_group_destroy(s, c->argv[3].p, c->argv[3].n);
        c->dirty += (unsigned)gone;
        const cmd_host *h = c->env->host;
        if (gone && h && h->unblock_key) h->unblock_key(c->env->host_arg, c->argv[2].p, c->argv[2].n);
        reply_int(c->out, gone);
        return;
    }
    case XG_CREATECONSUMER: {
        int made = group_consumer_create(s, g, c->argv[4].p, c->argv[4].n, c->now_ms) != NULL;
        c->dirty += (unsigned)made;
        reply_int(c->out, made);
        return;
    }
    default: {
        long long pending = group_consumer_delete(s, g, c->argv[4].p, c->argv[4].n);
        if (pending >= 0) c->dirty++;
        reply_int(c->out, pending < 0 ? 0 : pending);
        return;
    }
    }
}

/* XGROUP <sub> key group ...: each subcommand row names its sub (the
 * dispatcher checked the arity and locked the key, argv[2]). */
static void xgroup_generic(cmd_ctx *c, int sub) {
    xgroup_opts o;
    if (!xgroup_parse_opts(c, sub, &o)) return;
    int wrongtype;
    stream *s = xs_lookup(c, 2, 0, &wrongtype);
    if (wrongtype) return;
    stream_group *g = NULL;
    if (!o.mkstream) {
        if (!s) {
            reply_error(c->out, "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
            return;
        }
        g = stream_group_find(s, c->argv[3].p, c->argv[3].n);
        if (!g && (sub == XG_SETID || sub == XG_CREATECONSUMER || sub == XG_DELCONSUMER)) {
            reply_errorf(c->out, "NOGROUP No such consumer group '%.*s' for key name '%.*s'",
                         (int)c->argv[3].n, c->argv[3].p, (int)c->argv[2].n, c->argv[2].p);
            return;
        }
    }
    if ((sub == XG_CREATE && c->argc > 8) || (sub == XG_SETID && c->argc != 5 && c->argc != 7)) {
        reply_subcommand_syntax_error(c);
        return;
    }
    xgroup_run(c, sub, s, g, &o);
}

static void xgroup_create_cmd(cmd_ctx *c) { xgroup_generic(c, XG_CREATE); }
static void xgroup_setid_cmd(cmd_ctx *c) { xgroup_generic(c, XG_SETID); }
static void xgroup_destroy_cmd(cmd_ctx *c) { xgroup_generic(c, XG_DESTROY); }
static void xgroup_createconsumer_cmd(cmd_ctx *c) { xgroup_generic(c, XG_CREATECONSUMER); }
static void xgroup_delconsumer_cmd(cmd_ctx *c) { xgroup_generic(c, XG_DELCONSUMER); }

static void xgroup_help_cmd(cmd_ctx *c) {
    reply_help_lines(c, xgroup_help, sizeof xgroup_help / sizeof xgroup_help[0]);
}

/* ---- XACK ---- */

static void xack_cmd(cmd_ctx *c) {
    int wrongtype;
    stream *s = xs_lookup(c, 1, 1, &wrongtype);
    if (wrongtype) return;
    stream_group *g = s ? stream_group_find(s, c->argv[2].p, c->argv[2].n) : NULL;
    if (!g) {
        reply_int(c->out, 0);
        return;
    }
    stream_id id;
    for (int j = 3; j < c->argc; j++)
        if (!xs_parse_id(c, j, &id, 0, 1, NULL, 1)) return;
    long long acked = 0;
    for (int j = 3; j < c->argc; j++) {
        xs_parse_id(c, j, &id, 0, 1, NULL, 0);
        acked += group_ack(s, g, id);
    }
    c->dirty += (unsigned)acked;
    reply_int(c->out, acked);
}

/* ---- XPENDING ---- */

typedef struct xpending_args {
    long long minidle, count;
    stream_id start, end;
    const cmd_arg *consumer;
} xpending_args;

static int xpending_parse(cmd_ctx *c, xpending_args *a) {
    memset(a, 0, sizeof *a);
    if (c->argc != 3 && (c->argc < 6 || c->argc > 9)) {
        reply_error(c->out, ERR_SYNTAX);
        return 0;
    }
    if (c->argc == 3) return 1;
    int i = 3;
    if (arg_is(c, 3, "IDLE")) {
        if (!arg_ll(c, 4, &a->minidle)) return 0;
        if (c->argc < 8) {
            reply_error(c->out, ERR_SYNTAX);
            return 0;
        }
        i += 2;
    }
    if (!arg_ll(c, i + 2, &a->count)) return 0;
    if (a->count < 0) a->count = 0;
    if (!xs_parse_range_bound(c, i, &a->start, 0)) return 0;
    if (!xs_parse_range_bound(c, i + 1, &a->end, 1)) return 0;
    if (i + 3 < c->argc) a->consumer = &c->argv[i + 3];
    return 1;
}

static void xpending_summary(cmd_ctx *c, const stream_group *g) {
    reply_array(c->out, 4);
    reply_int(c->out, (long long)g->pel.count);
    if (g->pel.count == 0) {
        reply_null(c->out);
        reply_null(c->out);
        reply_null_array(c->out);
        return;
    }
    xs_reply_id(c, idmap_first(&g->pel)->id);
    xs_reply_id(c, idmap_last(&g->pel)->id);
    size_t with = 0;
    for (size_t i = 0; i < g->ncons; i++) with += g->cons[i]->pel.count > 0;
    reply_array(c->out, with);
    for (size_t i = 0; i < g->ncons; i++) {
        const stream_consumer *cons = g->cons[i];
        if (!cons->pel.count) continue;
        reply_array(c->out, 2);
        reply_bulk(c->out, cons->name, cons->nlen);
        reply_bulk_ll(c->out, (long long)cons->pel.count);
    }
}

static void xpending_range(cmd_ctx *c, const stream_group *g, const xpending_args *a) {
    const idmap *pel = &g->pel;
    if (a->consumer) {
        const stream_consumer *cons = group_consumer_find(g, a->consumer->p, a->consumer->n);
        if (!cons) {
            reply_array(c->out, 0);
            return;
        }
        pel = &cons->pel;
    }
    size_t n = 0;
    long long left = a->count;
    reply_deferred d = reply_defer(c->out);
    for (idmap_node *x = idmap_seek(pel, a->start);
         left && x && stream_id_cmp(x->id, a->end) <= 0; x = x->next[0]) {
        const stream_nack *nk = x->val;
        long long idle = c->now_ms - nk->delivery_time;
        if (a->minidle && idle < a->minidle) continue;
        reply_array(c->out, 4);
        xs_reply_id(c, nk->id);
        reply_bulk(c->out, nk->owner->name, nk->owner->nlen);
        reply_int(c->out, idle < 0 ? 0 : idle);
        reply_int(c->out, (long long)nk->delivery_count);
        n++;
        left--;
    }
    reply_defer_set(c->out, d, REPLY_AGG_ARRAY, n);
}

static void xpending_cmd(cmd_ctx *c) {
    xpending_args a;
    if (!xpending_parse(c, &a)) return;
    int wrongtype;
    stream *s = xs_lookup(c, 1, 1, &wrongtype);
    if (wrongtype) return;
    stream_group *g = s ? stream_group_find(s, c->argv[2].p, c->argv[2].n) : NULL;
    if (!g) {
        xs_reply_nogroup_key(c, &c->argv[1], &c->argv[2], "");
        return;
    }
    if (c->argc == 3) xpending_summary(c, g);
    else xpending_range(c, g, &a);
}

/* ---- XCLAIM / XAUTOCLAIM ---- */

/* The group of argv[1]/argv[2]; replies NOGROUP (or WRONGTYPE) when none. */
static stream_group *claim_group(cmd_ctx *c, stream **s) {
    int wrongtype;
    *s = xs_lookup(c, 1, 1, &wrongtype);
    if (wrongtype) return NULL;
    stream_group *g = *s ? stream_group_find(*s, c->argv[2].p, c->argv[2].n) : NULL;
    if (!g) xs_reply_nogroup_key(c, &c->argv[1], &c->argv[2], "");
    return g;
}

static int arg_ll_msg(cmd_ctx *c, int i, long long *v, const char *err) {
    if (util_parse_ll(c->argv[i].p, c->argv[i].n, v)) return 1;
    reply_error(c->out, err);
    return 0;
}

typedef struct claim_opts {
    long long minidle, retrycount, deliverytime;
    int force, justid, last_id_arg;
    stream_id lastid;
} claim_opts;

static int xclaim_options(cmd_ctx *c, claim_opts *o) {
    int j = 5;
    stream_id tmp;
    while (j < c->argc && xs_parse_id(c, j, &tmp, 0, 1, NULL, 0)) j++;
    o->last_id_arg = j - 1;
    for (; j < c->argc; j++) {
        int more = c->argc - 1 - j;
        if (arg_is(c, j, "FORCE")) {
            o->force = 1;
        } else if (arg_is(c, j, "JUSTID")) {
            o->justid = 1;
        } else if (arg_is(c, j, "IDLE") && more) {
            if (!arg_ll_msg(c, ++j, &o->deliverytime, "ERR Invalid IDLE option argument for XCLAIM"))
                return 0;
            o->deliverytime = c->now_ms - o->deliverytime;
        } else if (arg_is(c, j, "TIME") && more) {
            if (!arg_ll_msg(c, ++j, &o->deliverytime, "ERR Invalid TIME option argument for XCLAIM"))
                return 0;
        } else if (arg_is(c, j, "RETRYCOUNT") && more) {
            if (!arg_ll_msg(c, ++j, &o->retrycount, "ERR Invalid RETRYCOUNT option argument for XCLAIM"))
                return 0;
        } else if (arg_is(c, j, "LASTID") && more) {
            if (!xs_parse_id(c, ++j, &o->lastid, 0, 1, NULL, 1)) return 0;
        } else {
            size_t n = strnlen(c->argv[j].p, c->argv[j].n);
            reply_errorf(c->out, "ERR Unrecognized XCLAIM option '%.*s'", (int)n, c->argv[j].p);
            return 0;
        }
    }
    return 1;
}

static stream_consumer *claiming_consumer(cmd_ctx *c, stream *s, stream_group *g) {
    stream_consumer *cons = group_consumer_find(g, c->argv[3].p, c->argv[3].n);
    if (!cons) cons = group_consumer_create(s, g, c->argv[3].p, c->argv[3].n, c->now_ms);
    cons->seen_time = c->now_ms;
    return cons;
}

/* Give one pending entry to the consumer of argv[3] (created on first
 * use) and log it. */
static void claim_apply(cmd_ctx *c, stream *s, stream_group *g, stream_nack *nk,
                        stream_consumer **cons, const claim_opts *o) {
    if (!*cons) *cons = claiming_consumer(c, s, g);
    group_nack_transfer(nk, *cons);
    nk->delivery_time = o->deliverytime;
    if (o->retrycount >= 0) nk->delivery_count = (uint64_t)o->retrycount;
    else if (!o->justid) nk->delivery_count++;
    propagate_claim(c, &c->argv[1], &c->argv[2], g, nk->id, nk);
    c->dirty++;
}

static void reply_claimed(cmd_ctx *c, const stream *s, stream_id id, int justid) {
    if (justid) xs_reply_id(c, id);
    else if (!xs_reply_one(c, s, id)) reply_null(c->out);
}

static size_t xclaim_ids(cmd_ctx *c, stream *s, stream_group *g, const claim_opts *o) {
    stream_consumer *cons = NULL;
    size_t n = 0;
    for (int j = 5; j <= o->last_id_arg; j++) {
        stream_id id;
        xs_parse_id(c, j, &id, 0, 1, NULL, 0);
        stream_nack *nk = group_nack_find(g, id);
        if (!stream_has_entry(s, id)) {
            if (nk) drop_dead_nack(c, s, g, nk, &c->argv[1], &c->argv[2]);
            continue;
        }
        int forced = 0;
        if (!nk && o->force) {
            if (!cons) cons = claiming_consumer(c, s, g);
            nk = group_nack_add(s, g, cons, id, o->deliverytime, 1);
            forced = 1;
        }
        if (!nk) continue;
        if (!forced && o->minidle && c->now_ms - nk->delivery_time < o->minidle) continue;
        claim_apply(c, s, g, nk, &cons, o);
        reply_claimed(c, s, id, o->justid);
        n++;
    }
    return n;
}

static void xclaim_cmd(cmd_ctx *c) {
    stream *s;
    stream_group *g = claim_group(c, &s);
    if (!g) return;
    claim_opts o = {.retrycount = -1, .deliverytime = -1};
    if (!arg_ll_msg(c, 4, &o.minidle, "ERR Invalid min-idle-time argument for XCLAIM")) return;
    if (o.minidle < 0) o.minidle = 0;
    if (!xclaim_options(c, &o)) return;
    if (stream_id_cmp(o.lastid, g->last_id) > 0) {
        g->last_id = o.lastid;
        c->dirty++;
    }
    if (o.deliverytime < 0 || o.deliverytime > c->now_ms) o.deliverytime = c->now_ms;
    reply_deferred d = reply_defer(c->out);
    size_t n = xclaim_ids(c, s, g, &o);
    reply_defer_set(c->out, d, REPLY_AGG_ARRAY, n);
    if (c->dirty && !c->prop_done) propagate_group_id(c, &c->argv[1], &c->argv[2], g);
}

typedef struct autoclaim_args {
    long long minidle, count;
    int justid;
    stream_id start;
} autoclaim_args;

static int xautoclaim_parse(cmd_ctx *c, autoclaim_args *a) {
    a->count = 100;
    a->justid = 0;
    if (!arg_ll_msg(c, 4, &a->minidle, "ERR Invalid min-idle-time argument for XAUTOCLAIM"))
        return 0;
    if (a->minidle < 0) a->minidle = 0;
    if (!xs_parse_range_bound(c, 5, &a->start, 0)) return 0;
    for (int j = 6; j < c->argc; j++) {
        int more = c->argc - 1 - j;
        if (arg_is(c, j, "COUNT") && more) {
            long long max = LONG_MAX / 16; /* Redis: LONG_MAX / max(sizeof(streamID), 10) */
            if (!util_parse_ll(c->argv[j + 1].p, c->argv[j + 1].n, &a->count) || a->count < 1 ||
                a->count > max) {
                reply_error(c->out, "ERR COUNT must be > 0");
                return 0;
            }
            j++;
        } else if (arg_is(c, j, "JUSTID")) {
            a->justid = 1;
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return 0;
        }
    }
    return 1;
}

/* IDs collected by XAUTOCLAIM's scan (the reply lists them after the
 * cursor, which is known only at the end). */
typedef struct id_list {
    stream_id *v;
    size_t n, cap;
} id_list;

static void id_list_push(id_list *l, stream_id id) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = id;
}

/* Scan the PEL from a->start: claim idle entries, drop dead ones. Returns
 * the next cursor (0-0 at the end). */
static stream_id autoclaim_scan(cmd_ctx *c, stream *s, stream_group *g, const autoclaim_args *a,
                                id_list *claimed, id_list *deleted) {
    claim_opts o = {.retrycount = -1, .deliverytime = c->now_ms, .justid = a->justid};
    long long attempts = a->count * 10, count = a->count;
    stream_consumer *cons = NULL;
    idmap_node *x = idmap_seek(&g->pel, a->start);
    while (attempts-- && count && x) {
        stream_nack *nk = x->val;
        idmap_node *following = x->next[0]; /* x may be freed below */
        if (!stream_has_entry(s, nk->id)) {
            id_list_push(deleted, nk->id);
            drop_dead_nack(c, s, g, nk, &c->argv[1], &c->argv[2]);
            count--;
        } else if (!a->minidle || c->now_ms - nk->delivery_time >= a->minidle) {
            id_list_push(claimed, nk->id);
            claim_apply(c, s, g, nk, &cons, &o);
            count--;
        }
        x = following;
    }
    return x ? x->id : STREAM_ID_ZERO;
}

static void xautoclaim_cmd(cmd_ctx *c) {
    stream *s;
    stream_group *g = claim_group(c, &s);
    if (!g) return;
    autoclaim_args a;
    if (!xautoclaim_parse(c, &a)) return;
    id_list claimed = {0}, deleted = {0};
    stream_id next = autoclaim_scan(c, s, g, &a, &claimed, &deleted);
    reply_array(c->out, 3);
    xs_reply_id(c, next);
    reply_array(c->out, claimed.n);
    for (size_t i = 0; i < claimed.n; i++) reply_claimed(c, s, claimed.v[i], a.justid);
    reply_array(c->out, deleted.n);
    for (size_t i = 0; i < deleted.n; i++) xs_reply_id(c, deleted.v[i]);
    free(claimed.v);
    free(deleted.v);
}

/* ---- the table ---- */

#define KEY2 2, 2, 1 /* a container's subcommand: the key follows it */

static const command xgroup_subs[] = {
    {"xgroup|create", xgroup_create_cmd, -5, CMD_WRITE | CMD_DENYOOM, KEY2, "stream",
     "Create a consumer group.", "5.0.0"},
    {"xgroup|setid", xgroup_setid_cmd, -5, CMD_WRITE, KEY2, "stream",
     "Set a consumer group to an arbitrary last delivered ID value.", "5.0.0"},
    {"xgroup|destroy", xgroup_destroy_cmd, 4, CMD_WRITE, KEY2, "stream",
     "Destroy a consumer group.", "5.0.0"},
    {"xgroup|createconsumer", xgroup_createconsumer_cmd, 5, CMD_WRITE | CMD_DENYOOM, KEY2,
     "stream", "Create a consumer in a consumer group.", "6.2.0"},
    {"xgroup|delconsumer", xgroup_delconsumer_cmd, 5, CMD_WRITE, KEY2, "stream",
     "Delete a consumer from a consumer group.", "5.0.0"},
    {"xgroup|help", xgroup_help_cmd, 2, CMD_NODATA | CMD_DOC_LOADING | CMD_DOC_STALE, 0, 0, 0,
     "stream", "Show helpful text about the different subcommands", "5.0.0"},
};

const command streams_group_commands[] = {
    {"xgroup", NULL, -2, 0, 0, 0, 0, "stream", "A container for consumer groups commands",
     "5.0.0", CMD_SUBS(xgroup_subs)},
    {"xack", xack_cmd, -4, CMD_WRITE | CMD_DOC_FAST, 1, 1, 1, "stream",
     "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL.", "5.0.0"},
    {"xpending", xpending_cmd, -3, CMD_READONLY, 1, 1, 1, "stream",
     "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged.", "5.0.0"},
    {"xclaim", xclaim_cmd, -6, CMD_WRITE | CMD_DOC_FAST, 1, 1, 1, "stream",
     "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer.", "5.0.0"},
    {"xautoclaim", xautoclaim_cmd, -6, CMD_WRITE | CMD_DOC_FAST, 1, 1, 1, "stream",
     "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer.", "6.2.0"},
};

const size_t streams_group_commands_count =
    sizeof streams_group_commands / sizeof streams_group_commands[0];
