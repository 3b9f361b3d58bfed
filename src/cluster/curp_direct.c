/* curp_direct.c - CURP clients that do the fan-out themselves (libpier's
 * cluster client, docs/PROTOCOL.md "CURP from the client"): PIER.EXEC on
 * the leader (executed at once, answered with term, index and synced),
 * PIER.RECORD on a witness, PIER.SYNC waiting for an entry's commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "curp.h"
#include "curp_int.h"
#include "internal.h"
#include "msg.h"

static void deliver_fmt(cluster *cl, cl_req *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void deliver_fmt(cluster *cl, cl_req *r, const char *fmt, ...) {
    char buf[320];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    curp_deliver(cl, r, CDONE_REPLY, 0, buf, (size_t)n);
}

/* Not the serving leader: say where it is. */
static int redirect(cluster *cl, cl_req *r) {
    int role = atomic_load(&cl->role);
    if (role == ROLE_LEADER && atomic_load(&cl->serving)) return 0;
    int leader = atomic_load(&cl->leader_id);
    int idx = cl_node_idx(cl, leader);
    if (role == ROLE_LEADER) deliver_fmt(cl, r, "-TRYAGAIN the leader is recovering\r\n");
    else if (idx >= 0)
        deliver_fmt(cl, r, "-NOTLEADER %d %s:%d\r\n", leader, cl->nodes[idx].host,
                    cl->nodes[idx].port);
    else deliver_fmt(cl, r, "-CLUSTERDOWN The cluster is down\r\n");
    return 1;
}

/* *4 :term :index :synced <the command's reply> */
static char *wrap_direct(cluster *cl, const exec_result *x, int synced, size_t *len) {
    char hdr[96];
    int h = snprintf(hdr, sizeof hdr, "*4\r\n:%llu\r\n:%llu\r\n:%d\r\n",
                     (unsigned long long)cl->term, (unsigned long long)x->index, synced);
    char *out = xmalloc((size_t)h + x->len);
    memcpy(out, hdr, (size_t)h);
    if (x->len) memcpy(out + h, x->bytes, x->len);
    *len = (size_t)h + x->len;
    return out;
}

void curp_direct_exec(cluster *cl, cl_req *r) {
    if (redirect(cl, r)) {
        curp_req_free(r);
        return;
    }
    exec_result x;
    curp_leader_exec(cl, r, 1, &x);
    int wait = x.wait_index || (x.need_lease && !curp_lease_ok(cl));
    size_t len;
    /* a read (no entry) that needs no wait is complete: synced */
    char *bytes = wrap_direct(cl, &x, wait || !x.index, &len);
    free(x.bytes);
    if (!wait && x.index <= cl->synced_index) {
        curp_deliver(cl, r, CDONE_REPLY, x.index, bytes, len);
        free(bytes);
        curp_req_free(r);
        return;
    }
    cl_wait *w = xcalloc(1, sizeof *w);
    w->index = x.index > x.wait_index ? x.index : x.wait_index;
    w->need_lease = x.need_lease;
    w->req = r;
    w->result = bytes;
    w->result_len = len;
    if (!wait) { /* an unsynced write: leaves after the AOF write */
        curp_push_durable(cl, w);
        return;
    }
    curp_push_wait(cl, w);
    curp_process_waits(cl);
}

void curp_direct_record(cluster *cl, cl_req *r) {
    static const char *const why[] = {"accepted", "conflict", "full", "old_term", "too_many_keys"};
    int st = WITNESS_OLD_TERM;
    if (atomic_load(&cl->role) == ROLE_LEADER) {
        deliver_fmt(cl, r, "-REJECT leader %llu\r\n", (unsigned long long)cl->term);
    } else {
        if (r->aux == cl->term && atomic_load(&cl->leader_id) > 0)
            st = curp_witness_accept(cl, r->aux, r);
        /* answered at once: the record is written now */
        if (st == WITNESS_ACCEPTED && cl_sync_aof(cl) < 0) st = WITNESS_FULL;
        if (st == WITNESS_ACCEPTED) deliver_fmt(cl, r, "+OK\r\n");
        else
            deliver_fmt(cl, r, "-REJECT %s %llu\r\n", st >= 0 && st <= 4 ? why[st] : "unknown",
                        (unsigned long long)cl->term);
    }
    curp_req_free(r);
}

/* PIER.SYNC waits: answered once the commit passes their index. */
void curp_process_syncs(cluster *cl, int64_t now) {
    uint64_t commit = atomic_load(&cl->commit);
    for (cl_req **pp = &cl->sync_waits; *pp;) {
        cl_req *r = *pp;
        int due = commit >= r->aux, late = r->deadline_us && now > r->deadline_us;
        if (!due && !late) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (due && curp_entry_is(cl, r->aux, r)) deliver_fmt(cl, r, "+OK\r\n");
        else if (due) deliver_fmt(cl, r, "-LOST the entry was not kept: retry the request\r\n");
        else curp_deliver_error(cl, r, "CLUSTERDOWN The cluster is down");
        curp_req_free(r);
    }
}

void curp_direct_sync(cluster *cl, cl_req *r) {
    if (redirect(cl, r)) { /* only the leader's commit index is current */
        curp_req_free(r);
        return;
    }
    r->next = cl->sync_waits;
    cl->sync_waits = r;
    curp_process_syncs(cl, cl_now_us());
}
