/* pubroute.c - where a publisher's batches go: the connection with the
 * fewest unacknowledged bytes, and, in cluster mode, the failover: the
 * batches of a connection that failed ("orphans") are resent at once on
 * the live connections with their client id and sequence unchanged (the
 * cluster acknowledges a batch it already has with DUPLICATE), while the
 * keeper thread reconnects failed connections in the background and
 * fails the publisher when batches wait and no connection has been live
 * for reconnect_ms. publisher_impl.h has the locking rules. */
#include <stdio.h>
#include <time.h>

#include "publisher_impl.h"

void pub_wait(pier_publisher *p, unsigned ms) { pub_wait_on(p, &p->cond, ms); }

void pub_wait_on(pier_publisher *p, pthread_cond_t *cond, unsigned ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    while (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cond, &p->lock, &ts);
}

/* The least loaded connection, starting the scan at a rotating index so
 * that equal loads (ack level 0, an idle start) take turns. With
 * live_only, broken ones are skipped (NULL when none is live); else a
 * live one is preferred. Caller holds p->lock. */
static pconn *least_loaded(pier_publisher *p, bool live_only) {
    unsigned start = atomic_fetch_add(&p->rr, 1);
    pconn *best = NULL;
    for (int k = 0; k < p->nconns; k++) {
        pconn *c = &p->conns[(start + (unsigned)k) % (unsigned)p->nconns];
        if (live_only && c->broken) continue;
        if (!best || (best->broken && !c->broken) ||
            (best->broken == c->broken && c->out_bytes < best->out_bytes))
            best = c;
    }
    return best;
}

pconn *pub_pick_conn(pier_publisher *p) {
    pthread_mutex_lock(&p->lock);
    pconn *c = least_loaded(p, p->cluster);
    if (!c) { /* cluster: every connection is down; the keeper reconnects or fails us */
        p->senders_waiting++;
        while (!c && !atomic_load(&p->failed)) {
            pub_wait(p, 10);
            c = least_loaded(p, true);
        }
        p->senders_waiting--;
    }
    pthread_mutex_unlock(&p->lock);
    return c;
}

void pub_resend_orphans(pier_publisher *p) {
    for (;;) {
        pthread_mutex_lock(&p->lock);
        pconn *c = p->orphans && !atomic_load(&p->failed) ? least_loaded(p, true) : NULL;
        if (!c) {
            pthread_mutex_unlock(&p->lock);
            return;
        }
        pbuf *b = p->orphans;
        p->orphans = b->next;
        if (!p->orphans) p->orphans_tail = NULL;
        pthread_mutex_unlock(&p->lock);
        pthread_mutex_lock(&c->send_lock);
        pconn_resend(c, b); /* on failure b is an orphan again and c broken */
        pthread_mutex_unlock(&c->send_lock);
    }
}

/* ------------------------------------------------------------- keeper */

/* One reconnect attempt for every broken connection whose backoff is
 * over. trylock: a connection's lock held by someone else means it is in
 * use (being written or reconnected) now. */
static void reconnect_due(pier_publisher *p) {
    for (int i = 0; i < p->nconns; i++) {
        pconn *c = &p->conns[i];
        pthread_mutex_lock(&p->lock);
        bool due = c->broken && pn_now_ns() >= c->retry_at_ns && !p->stopping &&
                   !atomic_load(&p->failed);
        pthread_mutex_unlock(&p->lock);
        if (!due || pthread_mutex_trylock(&c->send_lock) != 0) continue;
        pconn_reconnect(c);
        pthread_mutex_unlock(&c->send_lock);
    }
}

/* Fail the publisher when batches (or publishing threads) have waited
 * reconnect_ms with no live connection. */
static void check_liveness(pier_publisher *p) {
    uint64_t now = pn_now_ns();
    pthread_mutex_lock(&p->lock);
    bool live = false;
    for (int i = 0; i < p->nconns && !live; i++) live = !p->conns[i].broken;
    bool need = p->in_flight > 0 || p->senders_waiting > 0;
    if (live || !need) p->down_since = 0;
    else if (!p->down_since) p->down_since = now;
    bool dead = p->down_since && now - p->down_since >= (uint64_t)p->opt.reconnect_ms * 1000000ull;
    pthread_mutex_unlock(&p->lock);
    if (dead && !atomic_load(&p->failed))
        pub_set_failed(p, PIER_E_CONNECT, "no node reachable: every connection failed and none "
                       "came back within reconnect_ms");
}

static void *keeper_main(void *arg) {
    pier_publisher *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        if (!p->stopping) pub_wait_on(p, &p->keeper_cond, 10);
        bool stop = p->stopping;
        pthread_mutex_unlock(&p->lock);
        if (stop) return NULL;
        reconnect_due(p);
        pub_resend_orphans(p);
        check_liveness(p);
    }
}

int pub_start_keeper(pier_publisher *p) {
    if (pthread_create(&p->keeper, NULL, keeper_main, p) != 0)
        return pier_fail(PIER_E_NOMEM, "cannot start the publisher's keeper thread");
    p->keeper_running = true;
    return PIER_OK;
}

void pub_stop_keeper(pier_publisher *p) {
    if (!p->keeper_running) return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->keeper_cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->keeper, NULL);
    p->keeper_running = false;
}
