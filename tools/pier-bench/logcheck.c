/* logcheck.c - pier-bench log --verify (log.h): the end-to-end check.
 *
 * Every message carries its publishing thread and its index in the run
 * (bytes 8..20). Before publishing, a subscriber opens on every node of
 * --nodes (from "$"); each one checks what its node delivers:
 *   - every message exactly once (a bitmap of the run's indexes),
 *   - each thread's messages in the order it published them (order level
 *     >= 1, when that is promised: a cluster, or one connection per
 *     publisher on a single node),
 *   - a hash of the sequence (entry ID, thread, index): in a cluster every
 *     node must deliver the identical sequence (a failure at order level
 *     2, reported at the others).
 * A node killed by --kill-leader-at is left out of the verdict. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define VERIFY_TIMEOUT_MS 1000
#define VERIFY_QUIET_NS (30ull * 1000000000ull) /* give up: no news this long after the end */

typedef struct vsub {
    log_run *r;
    int node;
    pthread_t tid;
    bool running;
    pier_subscriber *sub;
    uint64_t delivered;        /* messages of this run, duplicates included */
    uint64_t duplicates, out_of_order, foreign;
    uint64_t hash;             /* FNV-1a over (ID, thread, index) in delivery order */
    uint8_t *seen;             /* one bit per message index */
    uint64_t *next;            /* per thread: the index expected next */
    int rc;                    /* the subscription's failure (0: none) */
    char err[200];
    bool gave_up;              /* nothing arrived for VERIFY_QUIET_NS after publishing */
} vsub;

struct verifier {
    vsub subs[MAX_NODES];
    int n;
    bool check_order, check_identical;
    bool ok, identical;
};

static uint64_t fnv(uint64_t h, uint64_t v) {
    for (int i = 0; i < 8; i++) h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    return h;
}

static void vsub_check(vsub *v, const pier_msg *m) {
    const log_run *r = v->r;
    uint32_t thread;
    uint64_t index;
    if (m->kind != PIER_KIND_DATA || m->len != r->o->msg_size) {
        v->foreign++;
        return;
    }
    memcpy(&thread, m->data + VERIFY_AT, sizeof thread);
    memcpy(&index, m->data + VERIFY_AT + 4, sizeof index);
    if (thread >= (uint32_t)r->o->threads || index >= r->msgs_total) {
        v->foreign++;
        return;
    }
    v->delivered++;
    v->hash = fnv(fnv(fnv(fnv(v->hash, m->id_ms), m->id_seq), thread), index);
    uint8_t bit = (uint8_t)(1u << (index % 8));
    if (v->seen[index / 8] & bit) {
        v->duplicates++;
        return;
    }
    v->seen[index / 8] |= bit;
    if (index != v->next[thread]) v->out_of_order++;
    v->next[thread] = index + 1;
}

static void *vsub_main(void *arg) {
    vsub *v = arg;
    log_run *r = v->r;
    uint64_t news = now_ns();
    while (v->delivered - v->duplicates < r->msgs_total) {
        pier_batch b;
        int rc = pier_subscriber_next(v->sub, &b);
        if (rc == PIER_E_TIMEOUT) {
            uint64_t quiet = atomic_load(&r->failed) ? 2000000000ull : VERIFY_QUIET_NS;
            if (atomic_load(&r->publishing_done) && now_ns() - news > quiet) {
                v->gave_up = true;
                break;
            }
            continue;
        }
        if (rc) {
            v->rc = rc;
            snprintf(v->err, sizeof v->err, "%s: %s", pier_strerror(rc), pier_last_error());
            break;
        }
        news = now_ns();
        for (size_t i = 0; i < b.count; i++) vsub_check(v, &b.msgs[i]);
    }
    return NULL;
}

int verify_start(log_run *r) {
    const log_options *o = r->o;
    struct verifier *vf = calloc(1, sizeof *vf);
    if (!vf) fail("out of memory");
    r->verify = vf;
    vf->check_order = o->order_level >= 1 && (r->cluster_nodes || o->conns == 1);
    vf->check_identical = r->cluster_nodes && o->node_count > 1;
    uint64_t share = r->msgs_total / (uint64_t)o->threads;
    for (int i = 0; i < o->node_count; i++) {
        vsub *v = &vf->subs[i];
        *v = (vsub){.r = r, .node = i, .hash = 0xcbf29ce484222325ull};
        v->seen = calloc((size_t)(r->msgs_total / 8 + 1), 1);
        v->next = calloc((size_t)o->threads, sizeof *v->next);
        if (!v->seen || !v->next) fail("out of memory for --verify");
        for (int t = 0; t < o->threads; t++) v->next[t] = share * (uint64_t)t;
        vf->n++;
        const bnode *n = &o->nodes[i];
        int rc = pier_subscriber_open(&v->sub, n->host, n->port, o->topic, "$", 3, NULL);
        if (!rc) rc = pier_subscriber_set_timeout(v->sub, VERIFY_TIMEOUT_MS);
        if (rc) {
            fprintf(stderr, "pier-bench: --verify: cannot subscribe on %s: %s: %s\n", n->addr,
                    pier_strerror(rc), pier_last_error());
            return -1;
        }
    }
    for (int i = 0; i < vf->n; i++) {
        if (pthread_create(&vf->subs[i].tid, NULL, vsub_main, &vf->subs[i]) != 0)
            fail("cannot start a --verify subscriber");
        vf->subs[i].running = true;
    }
    return 0;
}

/* The subscriber of the node --kill-leader-at killed, which ended. */
static bool killed_node(const log_run *r, const vsub *v) {
    return r->kill.killed && r->kill.node == v->node && (v->rc || v->gave_up);
}

static bool vsub_ok(const struct verifier *vf, const vsub *v, uint64_t total) {
    return !v->rc && !v->gave_up && v->delivered - v->duplicates == total && !v->duplicates &&
           !v->foreign && (!vf->check_order || !v->out_of_order);
}

int verify_finish(log_run *r) {
    struct verifier *vf = r->verify;
    const vsub *ref = NULL;
    vf->ok = true;
    vf->identical = true;
    for (int i = 0; i < vf->n; i++) {
        vsub *v = &vf->subs[i];
        if (v->running) pthread_join(v->tid, NULL);
        v->running = false;
        if (killed_node(r, v)) continue;
        if (!vsub_ok(vf, v, r->msgs_total)) vf->ok = false;
        if (ref && (ref->hash != v->hash || ref->delivered != v->delivered))
            vf->identical = false;
        if (!ref) ref = v;
    }
    if (vf->check_identical && !vf->identical && r->o->order_level == 2) vf->ok = false;
    return vf->ok;
}

void verify_print(const log_run *r) {
    const struct verifier *vf = r->verify;
    if (!vf) return;
    printf("  verify: %s: every message exactly once%s on every node%s\n",
           vf->ok ? "OK" : "FAILED", vf->check_order ? ", each thread's in order" : "",
           !vf->check_identical ? ""
           : vf->identical      ? ", the identical sequence on every node"
                                : ", NOT the identical sequence on every node");
    for (int i = 0; i < vf->n; i++) {
        const vsub *v = &vf->subs[i];
        if (killed_node(r, v)) {
            printf("    %-22s killed (left out)\n", r->o->nodes[v->node].addr);
            continue;
        }
        printf("    %-22s %llu delivered, %llu duplicates, %llu missing, %llu out of order, "
               "%llu foreign, hash %016llx%s%s\n", r->o->nodes[v->node].addr,
               (unsigned long long)v->delivered, (unsigned long long)v->duplicates,
               (unsigned long long)(r->msgs_total - (v->delivered - v->duplicates)),
               (unsigned long long)v->out_of_order, (unsigned long long)v->foreign,
               (unsigned long long)v->hash, v->gave_up ? " (gave up waiting)" : "",
               v->rc ? v->err : "");
    }
}

void verify_json(const log_run *r) {
    const struct verifier *vf = r->verify;
    if (!vf) return;
    printf(",\"verify\":{\"ok\":%s,\"identical\":%s,\"order_checked\":%s,\"nodes\":[",
           vf->ok ? "true" : "false", vf->identical ? "true" : "false",
           vf->check_order ? "true" : "false");
    for (int i = 0; i < vf->n; i++) {
        const vsub *v = &vf->subs[i];
        printf("%s{\"node\":", i ? "," : "");
        json_string(r->o->nodes[v->node].addr);
        printf(",\"killed\":%s,\"delivered\":%llu,\"duplicates\":%llu,\"missing\":%llu,"
               "\"out_of_order\":%llu,\"foreign\":%llu,\"hash\":\"%016llx\",\"gave_up\":%s,"
               "\"error\":", killed_node(r, v) ? "true" : "false",
               (unsigned long long)v->delivered, (unsigned long long)v->duplicates,
               (unsigned long long)(r->msgs_total - (v->delivered - v->duplicates)),
               (unsigned long long)v->out_of_order, (unsigned long long)v->foreign,
               (unsigned long long)v->hash, v->gave_up ? "true" : "false");
        if (v->rc) json_string(v->err);
        else printf("null");
        printf("}");
    }
    printf("]}");
}

void verify_free(log_run *r) {
    struct verifier *vf = r->verify;
    if (!vf) return;
    for (int i = 0; i < vf->n; i++) {
        vsub *v = &vf->subs[i]; /* its thread was joined (verify_finish) or never started */
        pier_subscriber_close(v->sub);
        free(v->seen);
        free(v->next);
    }
    free(vf);
    r->verify = NULL;
}
