/* streams_batch.c - XBATCHADD, the batch protocol's append as a command.
 *
 *   XBATCHADD key client-id batch-seq <first-id | *> payload
 *
 * payload is the publisher's raw batch: messages of (u32 little-endian
 * length, bytes), docs/PROTOCOL.md. The batch listener (server/batch.c)
 * runs it through the dispatcher, so a batch gets its auth,
 * maxmemory and shard locking, and lands in the AOF as ONE record with
 * the first ID it was given (`*` replaced), which makes replay exact and
 * carries the exactly-once state (client id, sequence) with it.
 *
 * Exactly-once (client-id != 0): with last = the stream's last sequence
 * for that client, seq <= last is a duplicate (nothing written), seq >
 * last + 1 a gap (refused), seq == last + 1 appended.
 *
 * Reply: [first-id, count, duplicate (0/1)], or an error. */
#include <stdio.h>
#include <string.h>

#include "cmd/stream_cmd.h"
#include "lib/util.h"
#include "proto/batch.h"

typedef struct xbatch_args {
    uint64_t client_id, seq;
    int auto_id;
    stream_id first;
    const unsigned char *payload;
    size_t len;
    uint32_t count;
} xbatch_args;

/* Report the outcome: as data for the batch listener, as RESP for
 * everyone (the listener ignores the RESP). */
static void xbatch_fail(cmd_ctx *c, int status) {
    if (c->batch) c->batch->status = status;
    if (status == BATCH_E_WRONGTYPE) {
        reply_error(c->out, ERR_WRONGTYPE);
        return;
    }
    reply_errorf(c->out, "ERR batch refused: %s", batch_err_text(status));
}

static int parse_u64_arg(const cmd_arg *a, uint64_t *out) {
    unsigned long long v;
    if (!util_parse_ull(a->p, a->n, &v)) return 0;
    *out = v;
    return 1;
}

static int xbatch_parse(cmd_ctx *c, xbatch_args *a) {
    memset(a, 0, sizeof *a);
    if (!parse_u64_arg(&c->argv[2], &a->client_id) || !parse_u64_arg(&c->argv[3], &a->seq)) {
        reply_error(c->out, ERR_NOT_INT);
        if (c->batch) c->batch->status = BATCH_E_MALFORMED;
        return 0;
    }
    const cmd_arg *id = &c->argv[4];
    a->auto_id = id->n == 1 && id->p[0] == '*';
    if (!a->auto_id && !xs_parse_id(c, 4, &a->first, 0, 1, NULL, 1)) {
        if (c->batch) c->batch->status = BATCH_E_MALFORMED;
        return 0;
    }
    a->payload = (const unsigned char *)c->argv[5].p;
    a->len = c->argv[5].n;
    long long count = batch_payload_count(a->payload, a->len);
    if (count <= 0) {
        xbatch_fail(c, BATCH_E_MALFORMED);
        return 0;
    }
    a->count = (uint32_t)count;
    return 1;
}

/* The first ID of the batch after `last`, as `count` XADDs with `*` in
 * the same millisecond would get them; 0 when the IDs would run out. */
static int xbatch_pick_first(cmd_ctx *c, stream_id last, xbatch_args *a) {
    uint64_t span = (uint64_t)a->count - 1;
    if (!a->auto_id) {
        return stream_id_cmp(a->first, last) > 0 && a->first.seq <= UINT64_MAX - span;
    }
    uint64_t now = c->now_ms > 0 ? (uint64_t)c->now_ms : 0;
    if (now > last.ms) {
        a->first = (stream_id){now, 0};
        return 1;
    }
    if (last.seq == UINT64_MAX || last.seq + 1 > UINT64_MAX - span) return 0;
    a->first = (stream_id){last.ms, last.seq + 1};
    return 1;
}

static void xbatch_propagate(cmd_ctx *c, const xbatch_args *a) {
    char cid[24], seq[24], first[STREAM_ID_STRLEN];
    cmd_arg argv[6] = {
        cmd_prop_lit("XBATCHADD"),
        c->argv[1],
        {cid, 0},
        {seq, 0},
        {first, stream_id_format(a->first, first)},
        c->argv[5],
    };
    /* unsigned decimals: the ll formatter would print ids above 2^63
     * negative */
    argv[2].n = (size_t)snprintf(cid, sizeof cid, "%llu", (unsigned long long)a->client_id);
    argv[3].n = (size_t)snprintf(seq, sizeof seq, "%llu", (unsigned long long)a->seq);
    cmd_propagate_record(c, 6, argv);
}

static void xbatch_reply(cmd_ctx *c, const xbatch_args *a, int duplicate, uint64_t acked) {
    if (c->batch) {
        c->batch->acked_seq = acked;
        c->batch->status = BATCH_OK;
        c->batch->duplicate = duplicate;
        c->batch->first_ms = a->first.ms;
        c->batch->first_seq = a->first.seq;
        c->batch->count = a->count;
    }
    reply_array(c->out, 3);
    if (duplicate) reply_null(c->out);
    else xs_reply_id(c, a->first);
    reply_int(c->out, a->count);
    reply_int(c->out, duplicate);
}

/* Exactly-once: BATCH_OK to append, -1 for a duplicate, or the error. */
static int xbatch_check_seq(const stream *s, const xbatch_args *a) {
    if (a->client_id == 0) return BATCH_OK; /* anonymous: no deduplication */
    if (a->seq == 0) return BATCH_E_MALFORMED; /* sequences start at 1 */
    uint64_t last = s ? stream_pub_seq(s, a->client_id) : 0;
    if (a->seq <= last) return -1;
    if (a->seq != last + 1) return BATCH_E_GAP;
    return BATCH_OK;
}

static void xbatchadd_cmd(cmd_ctx *c) {
    xbatch_args a;
    if (!xbatch_parse(c, &a)) return;
    int wrongtype;
    stream *s = xs_lookup(c, 1, 0, &wrongtype);
    if (wrongtype) {
        if (c->batch) c->batch->status = BATCH_E_WRONGTYPE;
        return;
    }
    int seq_state = xbatch_check_seq(s, &a);
    if (seq_state == -1) {
        xbatch_reply(c, &a, 1, s ? stream_pub_seq(s, a.client_id) : 0);
        return;
    }
    if (seq_state != BATCH_OK) {
        xbatch_fail(c, seq_state);
        return;
    }
    if (!xbatch_pick_first(c, s ? stream_last_id(s) : STREAM_ID_ZERO, &a)) {
        xbatch_fail(c, BATCH_E_INTERNAL); /* IDs exhausted, or a replayed ID too small */
        return;
    }
    if (!s) s = xs_create(c, 1);
    stream_append_batch(s, a.first, a.payload, a.len, a.count);
    if (a.client_id) stream_pub_set(s, a.client_id, a.seq);
    c->dirty++;
    xbatch_propagate(c, &a);
    xbatch_reply(c, &a, 0, a.seq);
    const cmd_host *h = c->env->host;
    if (h && h->signal_key) h->signal_key(c->env->host_arg, c->argv[1].p, c->argv[1].n);
}

const command streams_batch_commands[] = {
    {"xbatchadd", xbatchadd_cmd, 6, CMD_WRITE | CMD_DENYOOM, 1, 1, 1, "stream",
     "Appends a batch of messages (the batch protocol's append; logged to the AOF)", "pier"},
};

const size_t streams_batch_commands_count =
    sizeof streams_batch_commands / sizeof streams_batch_commands[0];
