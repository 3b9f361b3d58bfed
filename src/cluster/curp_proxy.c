/* curp_proxy.c - a follower acting as the CURP client of its own
 * connections: it sends a strong write to the leader (FORWARD) and a
 * record to every other witness (RECORD) at once, and records it in its
 * own witness; the request completes in one round trip when the leader
 * answered and a super-quorum of witnesses accepted (fast path), else when
 * its entry is committed in this node's log (slow path). Requests in
 * flight start over with the next leader (same ids: the exactly-once
 * table makes the resend safe). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/util.h"
#include "curp.h"
#include "curp_int.h"
#include "internal.h"
#include "msg.h"

static int superquorum_others(const cluster *cl) {
    /* f + ceil(f/2) + 1 accepts including the leader's own */
    int f = cl->f;
    return f + (f + 1) / 2;
}

static void inflight_remove(cluster *cl, cl_req *r) {
    cl_req *prev = NULL;
    for (cl_req **p = &cl->inflight; *p; prev = *p, p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            if (cl->inflight_tail == r) cl->inflight_tail = prev;
            return;
        }
}

static void inflight_add(cluster *cl, cl_req *r) {
    r->next = NULL;
    if (cl->inflight_tail) cl->inflight_tail->next = r;
    else cl->inflight = r;
    cl->inflight_tail = r;
}

cl_req *curp_inflight_find(cluster *cl, uint64_t req_id) {
    for (cl_req *r = cl->inflight; r; r = r->next)
        if (r->req_id == req_id) return r;
    return NULL;
}

static void encode_request(wbuf *w, const cl_req *r) {
    msg_request m = {
        .req_id = r->req_id,
        .term = r->term,
        .cid = r->cid,
        .seq = r->seq,
        .kind = (uint8_t)r->kind,
        .proto = (uint8_t)r->proto,
        .is_write = (uint8_t)r->is_write,
        .nkeys = r->nkeys,
        .keys = r->keys,
        .req = (const uint8_t *)r->blob,
        .req_len = r->blob_len,
    };
    msg_request_encode(w, &m);
}

static int witnessed(const cl_req *r) {
    return r->kind == CREQ_STRONG && r->is_write && r->nkeys > 0 && r->nkeys <= WITNESS_MAX_KEYS;
}

void curp_proxy_send(cluster *cl, cl_req *r) {
    int leader = atomic_load(&cl->leader_id);
    if (!bus_connected(cl->bus, leader)) {
        /* a message to a dead link would be lost and the next one, on the
         * new link, overtake it: wait, in order, for the link */
        curp_park(cl, r);
        return;
    }
    r->req_id = ++cl->next_req_id;
    r->term = cl->term;
    r->leader_replied = r->synced = r->accepts = r->rejects = 0;
    r->index = 0;
    wbuf w = {0};
    encode_request(&w, r);
    bus_send(cl->bus, leader, MSG_FORWARD, w.p, w.len);
    if (witnessed(r)) {
        for (int i = 0; i < cl->nnodes; i++) {
            int id = cl->nodes[i].id;
            if (id == leader || i == cl->self_idx) continue;
            if (bus_send(cl->bus, id, MSG_RECORD, w.p, w.len) < 0) r->rejects++;
        }
        /* its own witness counts once the record is in the AOF */
        int st = curp_witness_accept(cl, cl->term, r);
        if (st == WITNESS_ACCEPTED) curp_queue_record_ack(cl, cl->self_id, r->req_id, st);
        else r->rejects++;
    }
    wb_free(&w);
    atomic_fetch_add(&cl->n_forwarded, 1);
    inflight_add(cl, r);
}

static void proxy_finish(cluster *cl, cl_req *r, int fast) {
    if (r->kind == CREQ_STRONG && r->is_write) {
        if (fast) atomic_fetch_add(&cl->n_fast, 1);
        else atomic_fetch_add(&cl->n_slow, 1);
    }
    curp_deliver(cl, r, CDONE_REPLY, r->index, r->result, r->result_len);
    inflight_remove(cl, r);
    curp_req_free(r);
}

/* Decide what a proxied request still needs. */
void curp_proxy_check(cluster *cl, cl_req *r) {
    if (!r->leader_replied) return;
    if (r->kind == CREQ_WEAK_WRITE) {
        /* kept until committed (resent after a leader change); the session
         * forgets it only then: an index from a deposed leader may never
         * hold it */
        /* synced: the leader answered once committed (a duplicate, whose
         * own index it no longer knows, is committed at or before it) */
        uint64_t commit = atomic_load(&cl->commit);
        if (!r->index && r->synced) { /* the leader refused it (an error): nothing to wait for */
            if (!r->done) curp_deliver(cl, r, CDONE_WEAK_DONE, 0, NULL, 0);
            inflight_remove(cl, r);
            curp_req_free(r);
            return;
        }
        if (r->index && commit >= r->index && (r->synced || curp_entry_is(cl, r->index, r))) {
            if (!r->done) curp_deliver(cl, r, CDONE_WEAK_DONE, r->index, NULL, 0);
            inflight_remove(cl, r);
            curp_req_free(r);
        }
        return;
    }
    if (r->synced || !r->is_write || !r->index) {
        proxy_finish(cl, r, 0);
        return;
    }
    if (witnessed(r) && r->accepts >= superquorum_others(cl)) {
        proxy_finish(cl, r, 1);
        return;
    }
    if (atomic_load(&cl->commit) >= r->index && curp_entry_is(cl, r->index, r))
        proxy_finish(cl, r, 0);
}

void cl_on_forward_resp(cluster *cl, int from, const msg_forward_resp *m) {
    cl_req *r = curp_inflight_find(cl, m->req_id);
    if (!r || r->leader_replied) return;
    if (m->status != FWD_OK) {
        /* not (yet) serving: try again from the parked list */
        inflight_remove(cl, r);
        curp_park(cl, r);
        return;
    }
    r->leader_replied = 1;
    r->synced = m->synced;
    r->index = m->index;
    curp_copy_bytes(&r->result, &r->result_len, m->reply, m->reply_len);
    curp_proxy_check(cl, r);
}

void cl_on_record_resp(cluster *cl, int from, const msg_record_resp *m) {
    cl_req *r = curp_inflight_find(cl, m->req_id);
    if (!r) return;
    if (m->status == WITNESS_ACCEPTED) r->accepts++;
    else r->rejects++;
    curp_proxy_check(cl, r);
}

/* Put the proxied requests back, in the order first sent, ahead of those
 * parked since (extra are the deposed leader's own, older still). */
void curp_proxy_requeue(cluster *cl, cl_req *extra_head, cl_req *extra_tail) {
    cl_req *old_head = cl->parked_head, *old_tail = cl->parked_tail;
    cl->parked_head = extra_head;
    cl->parked_tail = extra_tail;
    cl_req *r = cl->inflight;
    cl->inflight = cl->inflight_tail = NULL;
    while (r) {
        cl_req *next = r->next;
        free(r->result);
        r->result = NULL;
        r->result_len = 0;
        curp_park(cl, r);
        r = next;
    }
    if (old_head) {
        if (cl->parked_tail) cl->parked_tail->next = old_head;
        else cl->parked_head = old_head;
        cl->parked_tail = old_tail;
    }
}

/* Requests that waited too long for their answer get CLUSTERDOWN (weak
 * writes stay until committed: their session waits for them). */
void curp_proxy_expire(cluster *cl, int64_t now) {
    for (cl_req *r = cl->inflight, *next; r; r = next) {
        next = r->next;
        if (!r->deadline_us || now <= r->deadline_us) continue;
        if (r->kind == CREQ_WEAK_WRITE) continue; /* kept (and its session waits) until committed */
        inflight_remove(cl, r);
        curp_deliver_error(cl, r, "CLUSTERDOWN The cluster is down");
        curp_req_free(r);
    }
}

void cl_on_leader_link_down(cluster *cl) { curp_proxy_requeue(cl, NULL, NULL); }
