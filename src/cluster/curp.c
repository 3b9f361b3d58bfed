/* curp.c - the core of CURP (curp.h lists the other curp*.c files): the
 * requests loop threads submit and where each goes (the leader executes
 * it, a follower proxies it, a direct client's command has its own path,
 * or it waits for a serving leader), what Raft reports (raft_events), the
 * tick, and the helpers every part shares. docs/CONSISTENCY.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "curp.h"
#include "curp_int.h"
#include "internal.h"
#include "msg.h"

#define RIFL_IDLE_MS (10 * 60 * 1000) /* the exactly-once table forgets idle clients */

/* ---- small helpers ---- */

void curp_copy_bytes(char **dst, size_t *dlen, const void *src, size_t n) {
    free(*dst);
    *dst = xmemdup(src, n);
    *dlen = n;
}

void curp_req_free(cl_req *r) {
    if (!r) return;
    free(r->keys);
    free(r->blob);
    free(r->result);
    free(r);
}

void curp_deliver(cluster *cl, cl_req *r, int kind, uint64_t index, const char *bytes,
                  size_t len) {
    if (!r->client) return;
    cluster_done *d = xmalloc(sizeof *d + len);
    d->next = NULL;
    d->client = r->client;
    d->slot = r->slot;
    d->kind = kind;
    d->index = index;
    d->len = len;
    if (len) memcpy(d->bytes, bytes, len);
    cl->host->deliver(cl->host_arg, d);
    if (kind == CDONE_REPLY) r->client = NULL; /* answered: nothing more goes to it */
}

void curp_deliver_error(cluster *cl, cl_req *r, const char *line) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "-%s\r\n", line);
    curp_deliver(cl, r, CDONE_REPLY, 0, buf, (size_t)n);
}

/* Does the committed entry at index hold this request? */
int curp_entry_is(cluster *cl, uint64_t index, const cl_req *r) {
    if (index < cl->first_index) /* trimmed: applied entries are in the exactly-once table */
        return rifl_check(cl->rifl, r->cid, r->seq, NULL, NULL) != RIFL_NEW;
    entry *e = cl_entry_at(cl, index);
    char err[64];
    if (!e || entry_decode(e->data, e->len, &cl->view, err, sizeof err) < 0) return 0;
    return cl->view.cid == r->cid && cl->view.seq == r->seq;
}

/* ---- requests arriving ---- */

static void process_request(cluster *cl, cl_req *r) {
    switch (r->kind) {
    case CREQ_DIRECT_EXEC: curp_direct_exec(cl, r); return;
    case CREQ_DIRECT_RECORD: curp_direct_record(cl, r); return;
    case CREQ_DIRECT_SYNC: curp_direct_sync(cl, r); return;
    default: break;
    }
    int role = atomic_load(&cl->role);
    /* Behind parked requests, a request waits its turn: a session's
     * requests reach the leader in the order it sent them. */
    if (cl->parked_head) curp_park(cl, r);
    else if (role == ROLE_LEADER && atomic_load(&cl->serving)) curp_serve_local(cl, r);
    else if (role == ROLE_FOLLOWER && atomic_load(&cl->leader_id) > 0) curp_proxy_send(cl, r);
    else curp_park(cl, r);
}

void cl_drain_submissions(cluster *cl) {
    pthread_mutex_lock(&cl->submit_lock);
    cl_req *r = cl->submit_head;
    cl->submit_head = cl->submit_tail = NULL;
    pthread_mutex_unlock(&cl->submit_lock);
    while (r) {
        cl_req *next = r->next;
        process_request(cl, r);
        r = next;
    }
}

void curp_park(cluster *cl, cl_req *r) {
    r->next = NULL;
    if (cl->parked_tail) cl->parked_tail->next = r;
    else cl->parked_head = r;
    cl->parked_tail = r;
}

/* Requests parked while no leader served: try again. */
void curp_unpark(cluster *cl) {
    cl_req *r = cl->parked_head;
    cl->parked_head = cl->parked_tail = NULL;
    while (r) {
        cl_req *next = r->next;
        process_request(cl, r);
        r = next;
    }
}

/* A request that arrived from another node, as this node's own. */
cl_req *curp_request_from(const msg_request *m) {
    cl_req *r = xcalloc(1, sizeof *r);
    r->req_id = m->req_id;
    r->term = m->term;
    r->cid = m->cid;
    r->seq = m->seq;
    r->kind = m->kind;
    r->proto = m->proto == 3 ? 3 : 2;
    r->is_write = m->is_write;
    r->nkeys = m->nkeys;
    if (m->nkeys > 0) {
        r->keys = xmalloc((size_t)m->nkeys * sizeof *r->keys);
        memcpy(r->keys, m->keys, (size_t)m->nkeys * sizeof *r->keys);
    }
    curp_copy_bytes(&r->blob, &r->blob_len, m->req, m->req_len);
    return r;
}

/* ---- events ---- */

static void commit_advanced(cluster *cl) {
    if (cl->sync_waits) curp_process_syncs(cl, cl_now_us());
    if (atomic_load(&cl->role) == ROLE_LEADER) {
        curp_process_waits(cl);
        curp_check_recovery(cl);
        return;
    }
    cl_req *r = cl->inflight;
    while (r) {
        cl_req *next = r->next;
        curp_proxy_check(cl, r);
        r = next;
    }
}

static void leader_changed(cluster *cl) {
    int role = atomic_load(&cl->role);
    cl_req *own_head = NULL, *own_tail = NULL;
    if (role != ROLE_LEADER) curp_exec_step_down(cl, &own_head, &own_tail);
    /* Proxied requests start over with the new leader (same cid/seq). */
    curp_proxy_requeue(cl, own_head, own_tail);
    if (role == ROLE_FOLLOWER && atomic_load(&cl->leader_id) > 0) curp_unpark(cl);
}

/* Witness records not yet written, or answers waiting for the write. */
static int aof_pending(cluster *cl) {
    return cl->witness_unsynced || cl->nrec_acks || cl->durable_head;
}

void cl_curp_tick(cluster *cl) {
    int64_t now = cl_now_us();
    cl->gc_round++;
    atomic_store(&cl->witness_records, witness_count(cl->witness));
    int role = atomic_load(&cl->role);
    if (role == ROLE_LEADER) {
        curp_process_waits(cl);
        if (cl->collect_needed) {
            curp_send_collect(cl);
            curp_check_recovery(cl);
        }
    } else if (atomic_load(&cl->leader_id) > 0) {
        curp_witness_tick(cl);
        if (cl->parked_head) curp_unpark(cl); /* the leader was recovering: retry */
    }
    if (cl->gc_round % 500 == 0) rifl_expire(cl->rifl, clock_wall_ms(), RIFL_IDLE_MS);
    if (cl->sync_waits) curp_process_syncs(cl, now);
    /* Requests waiting too long for a leader answer CLUSTERDOWN. */
    cl_req **pp = &cl->parked_head;
    cl->parked_tail = NULL;
    while (*pp) {
        cl_req *r = *pp;
        if (r->deadline_us && now > r->deadline_us && r->kind != CREQ_WEAK_WRITE) {
            *pp = r->next;
            curp_deliver_error(cl, r, "CLUSTERDOWN The cluster is down");
            curp_req_free(r);
            continue;
        }

        cl->parked_tail = r;
        pp = &r->next;
    }
    curp_proxy_expire(cl, now);
}

void cl_curp_init(cluster *cl) {
    static const raft_events events = {
        .leader_changed = leader_changed,
        .became_leader = curp_start_recovery,
        .commit_advanced = commit_advanced,
        .entry_applied = curp_entry_applied,
        .log_truncated = cl_log_truncated,
        .leader_heard = curp_heard_leader,
        .aof_pending = aof_pending,
        .aof_written = curp_aof_written,
    };
    raft_set_events(cl, &events);
    /* the start-up table (see cl_witness_restored): 4x the ways */
    cl->witness = witness_create(WITNESS_SETS_LOG2, WITNESS_WAYS * 4);
    cl->rifl = rifl_create(256);
    if (!cl->witness || !cl->rifl) abort();
    eb_init(&cl->eb);
}

static void free_req_list(cl_req *r) {
    while (r) {
        cl_req *next = r->next;
        curp_req_free(r);
        r = next;
    }
}

void cl_curp_free(cluster *cl) {
    free_req_list(cl->submit_head);
    free_req_list(cl->parked_head);
    free_req_list(cl->inflight);
    free_req_list(cl->fwd_parked_head);
    free_req_list(cl->sync_waits);
    for (int q = 0; q < 2; q++) {
        cl_wait *w = q ? cl->durable_head : cl->waits_head;
        while (w) {
            cl_wait *next = w->next;
            curp_req_free(w->req);
            free(w->result);
            free(w);
            w = next;
        }
    }
    free(cl->rec_acks);
    curp_recover_free(cl);
    witness_destroy(cl->witness);
    rifl_destroy(cl->rifl);
    eb_free(&cl->eb);
}
