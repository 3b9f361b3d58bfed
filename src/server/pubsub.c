/* pubsub.c - channels, patterns, subscribers and message delivery across
 * loop threads (see pubsub.h and docs/ARCHITECTURE.md, "Pub/sub").
 *
 * Ownership: a sub_state belongs to its connection's loop thread, which
 * creates and frees it. Every field of it and the whole registry are
 * guarded by pubsub.lock; publishers on other threads reach a sub_state
 * only through the registry, under the lock. Lock order: pubsub.lock is a
 * leaf (nothing else is taken under it except ev_wake's eventfd write). */
#include "pubsub.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"
#include "../lib/hash.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "client.h"

#define INBOX_KEEP_MAX (64 * 1024) /* free a drained inbox bigger than this */

typedef struct name_list {
    cmd_arg *v; /* malloc'd copies */
    size_t n, cap;
} name_list;

typedef struct sub_state {
    client *c;
    loop_thread *lt;
    name_list chans, pats;  /* in subscription order */
    char *inbox;            /* encoded messages for another loop's subscriber */
    size_t ilen, icap;
    int queued;             /* on lt->inbox_ready */
    struct sub_state *ready_next;
    int64_t soft_since_ms;  /* over the soft limit since (0 = not) */
    int dropped;            /* over the limits: gets nothing more */
} sub_state;

typedef struct channel {
    struct channel *next;
    uint64_t hash;
    char *name;
    size_t n;
    sub_state **subs;
    size_t nsubs, cap;
} channel;

typedef struct pattern_sub {
    char *p;
    size_t n;
    sub_state *sub;
} pattern_sub;

struct pubsub {
    pthread_mutex_t lock;
    uint64_t seed;
    channel **buckets;
    size_t nbuckets, nchannels;
    pattern_sub *pats;
    size_t npats, patcap;
};

pubsub *pubsub_create(void) {
    pubsub *ps = xcalloc(1, sizeof *ps);
    pthread_mutex_init(&ps->lock, NULL);
    ps->seed = hash_random_seed();
    ps->nbuckets = 64;
    ps->buckets = xcalloc(ps->nbuckets, sizeof *ps->buckets);
    return ps;
}

/* At shutdown every client is gone, so the registry is empty. */
void pubsub_destroy(pubsub *ps) {
    if (!ps) return;
    free(ps->buckets);
    free(ps->pats);
    pthread_mutex_destroy(&ps->lock);
    free(ps);
}

/* ---- the channel table (caller holds the lock) ---- */

static channel **channel_slot(pubsub *ps, const char *name, size_t n, uint64_t h) {
    channel **p = &ps->buckets[h & (ps->nbuckets - 1)];
    while (*p && ((*p)->hash != h || (*p)->n != n || memcmp((*p)->name, name, n))) p = &(*p)->next;
    return p;
}

static void channels_grow(pubsub *ps) {
    size_t nb = ps->nbuckets * 2;
    channel **b = xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < ps->nbuckets; i++) {
        for (channel *ch = ps->buckets[i], *next; ch; ch = next) {
            next = ch->next;
            ch->next = b[ch->hash & (nb - 1)];
            b[ch->hash & (nb - 1)] = ch;
        }
    }
    free(ps->buckets);
    ps->buckets = b;
    ps->nbuckets = nb;
}

static channel *channel_get(pubsub *ps, const char *name, size_t n, int create) {
    uint64_t h = hash_bytes(name, n, ps->seed);
    channel **slot = channel_slot(ps, name, n, h);
    if (*slot || !create) return *slot;
    channel *ch = xcalloc(1, sizeof *ch);
    ch->hash = h;
    ch->name = xstrndup(name, n);
    ch->n = n;
    *slot = ch;
    if (++ps->nchannels > ps->nbuckets) channels_grow(ps);
    return ch;
}

static void channel_drop_sub(pubsub *ps, channel *ch, sub_state *sub) {
    for (size_t i = 0; i < ch->nsubs; i++) {
        if (ch->subs[i] != sub) continue;
        memmove(ch->subs + i, ch->subs + i + 1, (ch->nsubs - i - 1) * sizeof *ch->subs);
        ch->nsubs--;
        break;
    }
    if (ch->nsubs) return;
    channel **slot = channel_slot(ps, ch->name, ch->n, ch->hash);
    *slot = ch->next;
    ps->nchannels--;
    free(ch->name);
    free(ch->subs);
    free(ch);
}

/* ---- per-subscriber name lists ---- */

static long name_find(const name_list *l, const char *p, size_t n) {
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].n == n && !memcmp(l->v[i].p, p, n)) return (long)i;
    return -1;
}

static void name_add(name_list *l, const char *p, size_t n) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = (cmd_arg){xstrndup(p, n), n};
}

static void name_del(name_list *l, size_t i) {
    free((void *)l->v[i].p);
    memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof *l->v);
    l->n--;
}

static int sub_count(const sub_state *sub) { return (int)(sub->chans.n + sub->pats.n); }

/* Publish the counts for CLIENT LIST on other threads (owner thread). */
static void share_counts(client *c, const sub_state *sub) {
    atomic_store_explicit(&c->shared_sub, sub ? (int)sub->chans.n : 0, memory_order_relaxed);
    atomic_store_explicit(&c->shared_psub, sub ? (int)sub->pats.n : 0, memory_order_relaxed);
}

/* ---- subscribe / unsubscribe (owner thread, lock held) ---- */

static void add_subscription(pubsub *ps, sub_state *sub, int pattern, const char *p, size_t n) {
    name_list *l = pattern ? &sub->pats : &sub->chans;
    if (name_find(l, p, n) >= 0) return;
    name_add(l, p, n);
    if (pattern) {
        if (ps->npats == ps->patcap) {
            ps->patcap = ps->patcap ? ps->patcap * 2 : 8;
            ps->pats = xrealloc(ps->pats, ps->patcap * sizeof *ps->pats);
        }
        ps->pats[ps->npats++] = (pattern_sub){(char *)l->v[l->n - 1].p, n, sub};
        return;
    }
    channel *ch = channel_get(ps, p, n, 1);
    if (ch->nsubs == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 4;
        ch->subs = xrealloc(ch->subs, ch->cap * sizeof *ch->subs);
    }
    ch->subs[ch->nsubs++] = sub;
}

static void drop_subscription(pubsub *ps, sub_state *sub, int pattern, const char *p, size_t n) {
    name_list *l = pattern ? &sub->pats : &sub->chans;
    long i = name_find(l, p, n);
    if (i < 0) return;
    if (pattern) {
        for (size_t k = 0; k < ps->npats; k++) {
            if (ps->pats[k].sub != sub || ps->pats[k].p != l->v[i].p) continue;
            memmove(ps->pats + k, ps->pats + k + 1, (ps->npats - k - 1) * sizeof *ps->pats);
            ps->npats--;
            break;
        }
    } else {
        channel *ch = channel_get(ps, p, n, 0);
        if (ch) channel_drop_sub(ps, ch, sub);
    }
    name_del(l, (size_t)i);
}

int pubsub_host_subscribe(void *arg, session *s, int pattern, const char *ch, size_t n) {
    server *srv = arg;
    client *c = client_of_session(s);
    if (!c->lt) return -1; /* --io thread: no loop to deliver through */
    pubsub *ps = srv->pubsub;
    pthread_mutex_lock(&ps->lock);
    if (!c->sub) {
        c->sub = xcalloc(1, sizeof *c->sub);
        c->sub->c = c;
        c->sub->lt = c->lt;
    }
    add_subscription(ps, c->sub, pattern, ch, n);
    int count = sub_count(c->sub);
    pthread_mutex_unlock(&ps->lock);
    share_counts(c, c->sub);
    s->subscriptions = count;
    return count;
}

int pubsub_host_unsubscribe(void *arg, session *s, int pattern, const char *ch, size_t n) {
    server *srv = arg;
    client *c = client_of_session(s);
    if (!c->sub) return 0;
    pthread_mutex_lock(&srv->pubsub->lock);
    drop_subscription(srv->pubsub, c->sub, pattern, ch, n);
    int count = sub_count(c->sub);
    pthread_mutex_unlock(&srv->pubsub->lock);
    share_counts(c, c->sub);
    s->subscriptions = count;
    return count;
}

static size_t copy_names(const name_list *l, cmd_arg **out) {
    *out = NULL;
    if (!l->n) return 0;
    *out = xmalloc(l->n * sizeof **out);
    for (size_t i = 0; i < l->n; i++) (*out)[i] = (cmd_arg){xstrndup(l->v[i].p, l->v[i].n), l->v[i].n};
    return l->n;
}

size_t pubsub_host_subscriptions(void *arg, session *s, int pattern, cmd_arg **out) {
    server *srv = arg;
    client *c = client_of_session(s);
    *out = NULL;
    if (!c->sub) return 0;
    pthread_mutex_lock(&srv->pubsub->lock);
    size_t n = copy_names(pattern ? &c->sub->pats : &c->sub->chans, out);
    pthread_mutex_unlock(&srv->pubsub->lock);
    return n;
}

/* ---- delivery (lock held) ---- */

static void inbox_put(sub_state *sub, const void *p, size_t n) {
    if (sub->ilen + n > sub->icap) {
        size_t cap = sub->icap ? sub->icap * 2 : 1024;
        while (cap < sub->ilen + n) cap *= 2;
        sub->inbox = xrealloc(sub->inbox, cap);
        sub->icap = cap;
    }
    memcpy(sub->inbox + sub->ilen, p, n);
    sub->ilen += n;
}

static void inbox_header(sub_state *sub, int proto, size_t n) {
    char buf[32];
    buf[0] = proto == 3 ? '>' : '*';
    size_t len = 1 + util_ull2str(buf + 1, sizeof buf - 1, n);
    inbox_put(sub, buf, len);
    inbox_put(sub, "\r\n", 2);
}

static void inbox_bulk(sub_state *sub, const char *p, size_t n) {
    char buf[32];
    buf[0] = '$';
    size_t len = 1 + util_ull2str(buf + 1, sizeof buf - 1, n);
    inbox_put(sub, buf, len);
    inbox_put(sub, "\r\n", 2);
    inbox_put(sub, p, n);
    inbox_put(sub, "\r\n", 2);
}

typedef struct message {
    const char *pat, *ch, *msg;
    size_t plen, chlen, mlen;
} message;

static void encode_to_inbox(sub_state *sub, const message *m) {
    int proto = atomic_load_explicit(&sub->c->sess.proto, memory_order_relaxed);
    inbox_header(sub, proto, m->pat ? 4 : 3);
    inbox_bulk(sub, m->pat ? "pmessage" : "message", m->pat ? 8 : 7);
    if (m->pat) inbox_bulk(sub, m->pat, m->plen);
    inbox_bulk(sub, m->ch, m->chlen);
    inbox_bulk(sub, m->msg, m->mlen);
}

static void encode_to_reply(reply *out, const message *m) {
    reply_push(out, m->pat ? 4 : 3);
    reply_bulk_cstr(out, m->pat ? "pmessage" : "message");
    if (m->pat) reply_bulk(out, m->pat, m->plen);
    reply_bulk(out, m->ch, m->chlen);
    reply_bulk(out, m->msg, m->mlen);
}

/* client-output-buffer-limit pubsub: over the hard limit, or over the soft
 * one for longer than its seconds. */
static int over_limits(server *srv, sub_state *sub, size_t pending, int64_t now) {
    long long hard = CFG_GET(srv->cfg.pubsub_hard_limit);
    long long soft = CFG_GET(srv->cfg.pubsub_soft_limit);
    long long secs = CFG_GET(srv->cfg.pubsub_soft_seconds);
    if (hard && (long long)pending > hard) return 1;
    if (!soft || (long long)pending <= soft) {
        sub->soft_since_ms = 0;
        return 0;
    }
    if (!sub->soft_since_ms) sub->soft_since_ms = now;
    return now - sub->soft_since_ms > secs * 1000;
}

/* Stop feeding a subscriber that cannot keep up and have its loop close
 * it (only the owner closes a connection). */
static void drop_slow(sub_state *sub) {
    sub->dropped = 1;
    free(sub->inbox);
    sub->inbox = NULL;
    sub->ilen = sub->icap = 0;
    static log_ratelimit slow_rl = LOG_RATELIMIT_PEER;
    log_warn_ratelimited(&slow_rl,
                         "Client id=%llu addr=%s scheduled to be closed ASAP for overcoming of "
                         "output buffer limits.",
                         (unsigned long long)sub->c->sess.id, sub->c->addr);
    atomic_store(&sub->c->kill_requested, 1);
    ev_wake(sub->lt->loop);
}

static void deliver(server *srv, sub_state *sub, loop_thread *here, const message *m, int64_t now) {
    if (sub->dropped) return;
    if (sub->lt == here) {
        encode_to_reply(sub->c->out, m);
        client_output_added(sub->c);
        if (over_limits(srv, sub, sub->c->out->pending, now)) drop_slow(sub);
        return;
    }
    encode_to_inbox(sub, m);
    size_t pending = atomic_load_explicit(&sub->c->shared_omem, memory_order_relaxed) + sub->ilen;
    if (over_limits(srv, sub, pending, now)) {
        drop_slow(sub);
        return;
    }
    if (!sub->queued) {
        sub->queued = 1;
        sub->ready_next = sub->lt->inbox_ready;
        sub->lt->inbox_ready = sub;
        ev_wake(sub->lt->loop);
    }
}

long long pubsub_host_publish(void *arg, session *from, const char *ch, size_t n,
                              const char *msg, size_t mlen) {
    server *srv = arg;
    pubsub *ps = srv->pubsub;
    loop_thread *here = client_of_session(from)->lt;
    message m = {NULL, ch, msg, 0, n, mlen};
    int64_t now = clock_wall_ms();
    long long receivers = 0;
    pthread_mutex_lock(&ps->lock);
    channel *chn = channel_get(ps, ch, n, 0);
    for (size_t i = 0; chn && i < chn->nsubs; i++, receivers++) deliver(srv, chn->subs[i], here, &m, now);
    for (size_t i = 0; i < ps->npats; i++) {
        if (!util_glob_match(ps->pats[i].p, ps->pats[i].n, ch, n, 0)) continue;
        message pm = {ps->pats[i].p, ch, msg, ps->pats[i].n, n, mlen};
        deliver(srv, ps->pats[i].sub, here, &pm, now);
        receivers++;
    }
    pthread_mutex_unlock(&ps->lock);
    return receivers;
}

/* ---- introspection ---- */

size_t pubsub_host_channels(void *arg, const char *pat, size_t plen, cmd_arg **out) {
    server *srv = arg;
    pubsub *ps = srv->pubsub;
    pthread_mutex_lock(&ps->lock);
    size_t n = 0;
    *out = xmalloc((ps->nchannels ? ps->nchannels : 1) * sizeof **out);
    for (size_t b = 0; b < ps->nbuckets; b++) {
        for (channel *ch = ps->buckets[b]; ch; ch = ch->next) {
            if (pat && !util_glob_match(pat, plen, ch->name, ch->n, 0)) continue;
            (*out)[n++] = (cmd_arg){xstrndup(ch->name, ch->n), ch->n};
        }
    }
    pthread_mutex_unlock(&ps->lock);
    return n;
}

long long pubsub_host_numsub(void *arg, const char *ch, size_t n) {
    server *srv = arg;
    pthread_mutex_lock(&srv->pubsub->lock);
    channel *chn = channel_get(srv->pubsub, ch, n, 0);
    long long count = chn ? (long long)chn->nsubs : 0;
    pthread_mutex_unlock(&srv->pubsub->lock);
    return count;
}

long long pubsub_host_numpat(void *arg) {
    server *srv = arg;
    pthread_mutex_lock(&srv->pubsub->lock);
    long long n = (long long)srv->pubsub->npats;
    pthread_mutex_unlock(&srv->pubsub->lock);
    return n;
}

/* ---- the owner loop ---- */

void pubsub_on_wake(loop_thread *lt) {
    pubsub *ps = lt->srv->pubsub;
    if (!ps) return;
    pthread_mutex_lock(&ps->lock);
    sub_state *sub = lt->inbox_ready;
    lt->inbox_ready = NULL;
    for (; sub; sub = sub->ready_next) {
        sub->queued = 0;
        if (!sub->ilen || sub->dropped) continue;
        reply_raw(sub->c->out, sub->inbox, sub->ilen);
        sub->ilen = 0;
        if (sub->icap > INBOX_KEEP_MAX) {
            free(sub->inbox);
            sub->inbox = NULL;
            sub->icap = 0;
        }
        client_output_added(sub->c); /* never closes: safe under the lock */
    }
    pthread_mutex_unlock(&ps->lock);
}

void pubsub_client_gone(client *c) {
    sub_state *sub = c->sub;
    if (!sub) return;
    pubsub *ps = c->srv->pubsub;
    pthread_mutex_lock(&ps->lock);
    while (sub->chans.n) drop_subscription(ps, sub, 0, sub->chans.v[0].p, sub->chans.v[0].n);
    while (sub->pats.n) drop_subscription(ps, sub, 1, sub->pats.v[0].p, sub->pats.v[0].n);
    if (sub->queued) {
        for (sub_state **p = &sub->lt->inbox_ready; *p; p = &(*p)->ready_next) {
            if (*p == sub) {
                *p = sub->ready_next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&ps->lock);
    free(sub->chans.v);
    free(sub->pats.v);
    free(sub->inbox);
    free(sub);
    c->sub = NULL;
    c->sess.subscriptions = 0;
    share_counts(c, NULL);
}

void pubsub_counts(server *srv, long long *channels, long long *patterns) {
    pubsub *ps = srv->pubsub;
    *channels = *patterns = 0;
    if (!ps) return;
    pthread_mutex_lock(&ps->lock);
    *channels = (long long)ps->nchannels;
    *patterns = (long long)ps->npats;
    pthread_mutex_unlock(&ps->lock);
}
