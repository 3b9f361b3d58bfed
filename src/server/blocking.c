/* blocking.c - parked blocking reads and their wake-ups (see blocking.h
 * and docs/ARCHITECTURE.md, "Blocking reads").
 *
 * Ownership: a block_state belongs to its connection's loop thread, which
 * alone creates, runs and frees it. Other threads touch it only under
 * blocking.lock, and only its `links` (the per-key registry) and its
 * ready flag / ready-list link.
 *
 * Lock order: key shard locks -> blocking.lock. The park happens inside
 * the handler, with the keys' shards locked; a signal happens inside the
 * writer's handler, with the key's shard locked; so a write cannot fall
 * between a reader's "no data" and its park. Nothing is locked under
 * blocking.lock except the eventfd write of ev_wake. */
#include "blocking.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/clock.h"
#include "../lib/hash.h"
#include "../lib/mem.h"
#include "client.h"

#define BLOCK_BUCKETS 4096 /* power of two */
#define BLOCK_TICK_MS 10   /* timeout resolution while anything waits with one */

typedef struct block_link {
    struct block_link *prev, *next; /* bucket chain */
    struct block_state *owner;
    uint64_t hash;
    size_t klen;
    char *key;
} block_link;

typedef struct block_state {
    client *c;
    loop_thread *lt;
    int argc;
    cmd_arg *argv;         /* views into argbuf */
    char *argbuf;
    int64_t deadline_ms;   /* wall ms; 0 = no timeout */
    int nlinks;
    block_link *links;
    int ready;                       /* under lock: signalled, on lt->block_ready */
    struct block_state *ready_next;  /* under lock */
    struct block_state *prev, *next; /* lt->blocked (owner thread) */
} block_state;

struct blocking {
    pthread_mutex_t lock;
    uint64_t seed;
    _Atomic long parked; /* lets a write skip the lock when nobody waits */
    block_link *buckets[BLOCK_BUCKETS];
};

blocking *blocking_create(void) {
    blocking *b = xcalloc(1, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    b->seed = hash_random_seed();
    return b;
}

void blocking_destroy(blocking *b) {
    if (!b) return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* ---- the per-key registry (caller holds b->lock) ---- */

static void links_insert(blocking *b, block_state *st) {
    for (int i = 0; i < st->nlinks; i++) {
        block_link *l = &st->links[i];
        block_link **head = &b->buckets[l->hash & (BLOCK_BUCKETS - 1)];
        l->prev = NULL;
        l->next = *head;
        if (*head) (*head)->prev = l;
        *head = l;
    }
}

static void links_remove(blocking *b, block_state *st) {
    for (int i = 0; i < st->nlinks; i++) {
        block_link *l = &st->links[i];
        if (l->prev) l->prev->next = l->next;
        else b->buckets[l->hash & (BLOCK_BUCKETS - 1)] = l->next;
        if (l->next) l->next->prev = l->prev;
    }
}

static void ready_list_remove(loop_thread *lt, block_state *st) {
    for (block_state **p = &lt->block_ready; *p; p = &(*p)->ready_next) {
        if (*p == st) {
            *p = st->ready_next;
            return;
        }
    }
}

/* ---- creating and freeing a parked read ---- */

static void copy_argv(block_state *st, int argc, const cmd_arg *argv) {
    size_t bytes = 0;
    for (int i = 0; i < argc; i++) bytes += argv[i].n;
    st->argc = argc;
    st->argv = xmalloc((size_t)argc * sizeof *st->argv);
    st->argbuf = xmalloc(bytes);
    char *p = st->argbuf;
    for (int i = 0; i < argc; i++) {
        if (argv[i].n) memcpy(p, argv[i].p, argv[i].n);
        st->argv[i] = (cmd_arg){p, argv[i].n};
        p += argv[i].n;
    }
}

static void make_links(blocking *b, block_state *st, int nkeys, const cmd_arg *keys) {
    st->nlinks = nkeys;
    st->links = xmalloc((size_t)nkeys * sizeof *st->links);
    for (int i = 0; i < nkeys; i++) {
        block_link *l = &st->links[i];
        l->owner = st;
        l->klen = keys[i].n;
        l->key = xmalloc(keys[i].n);
        if (keys[i].n) memcpy(l->key, keys[i].p, keys[i].n);
        l->hash = hash_bytes(keys[i].p, keys[i].n, b->seed);
    }
}

static void state_free(block_state *st) {
    for (int i = 0; i < st->nlinks; i++) free(st->links[i].key);
    free(st->links);
    free(st->argv);
    free(st->argbuf);
    free(st);
}

/* Take st out of every shared structure and of its loop's list; after
 * this only the owner thread knows it. */
static void detach(blocking *b, block_state *st) {
    pthread_mutex_lock(&b->lock);
    links_remove(b, st);
    if (st->ready) ready_list_remove(st->lt, st);
    pthread_mutex_unlock(&b->lock);
    atomic_fetch_sub(&b->parked, 1);
    loop_thread *lt = st->lt;
    if (st->prev) st->prev->next = st->next;
    else lt->blocked = st->next;
    if (st->next) st->next->prev = st->prev;
    st->c->blk = NULL;
    st->c->flags &= ~CLIENT_BLOCKED;
    atomic_store_explicit(&st->c->shared_blocked, 0, memory_order_relaxed);
}

/* ---- timeouts ---- */

/* Detach every parked client whose deadline passed and queue its nil
 * reply. Returns the clients in a malloc'd array (count in *n) to resume
 * once the walk is over. */
static client **collect_expired(loop_thread *lt, int64_t now, size_t *n) {
    client **out = NULL;
    size_t cap = 0;
    *n = 0;
    for (block_state *st = lt->blocked, *next; st; st = next) {
        next = st->next;
        if (!st->deadline_ms || st->deadline_ms > now) continue;
        client *c = st->c;
        detach(lt->srv->blocking, st);
        state_free(st);
        reply_null_array(c->out); /* what XREAD replies on a timeout */
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            out = xrealloc(out, cap * sizeof *out);
        }
        out[(*n)++] = c;
    }
    return out;
}

static int any_deadline(const loop_thread *lt) {
    for (const block_state *st = lt->blocked; st; st = st->next)
        if (st->deadline_ms) return 1;
    return 0;
}

/* Time out parked clients. They are resumed only after the list walk: a
 * resumed client runs its pipelined input and may park again (changing
 * lt->blocked), so resuming mid-walk lost that new deadline (regression
 * test_pipelined_blocking_reads_each_time_out). Clients are freed only in
 * before-sleep, so the collected pointers stay valid. */
static long block_timer(ev_loop *loop, void *arg) {
    loop_thread *lt = arg;
    size_t n;
    client **expired = collect_expired(lt, clock_wall_ms(), &n);
    for (size_t i = 0; i < n; i++) client_resume(expired[i]);
    free(expired);
    if (any_deadline(lt)) return BLOCK_TICK_MS;
    lt->block_timer_armed = 0;
    return -1;
}

static void arm_timer(loop_thread *lt) {
    if (lt->block_timer_armed) return;
    lt->block_timer_armed = 1;
    ev_timer_add(lt->loop, BLOCK_TICK_MS, block_timer, lt);
}

/* ---- cmd_host entry points ---- */

int blocking_host_park(void *arg, session *s, int nkeys, const cmd_arg *keys, int argc,
                       const cmd_arg *argv, long long timeout_ms) {
    server *srv = arg;
    if (s->flags & SESS_NOBLOCK) return -1; /* not a connection's session */
    client *c = client_of_session(s);
    loop_thread *lt = c->lt;
    if (!lt || c->blk) return -1; /* --io thread blocks nothing */
    block_state *st = xcalloc(1, sizeof *st);
    st->c = c;
    st->lt = lt;
    if (c->block_carry_deadline >= 0) st->deadline_ms = c->block_carry_deadline;
    else st->deadline_ms = timeout_ms > 0 ? clock_wall_ms() + timeout_ms : 0;
    copy_argv(st, argc, argv);
    make_links(srv->blocking, st, nkeys, keys);
    pthread_mutex_lock(&srv->blocking->lock);
    links_insert(srv->blocking, st);
    atomic_fetch_add(&srv->blocking->parked, 1);
    pthread_mutex_unlock(&srv->blocking->lock);
    st->next = lt->blocked;
    if (lt->blocked) lt->blocked->prev = st;
    lt->blocked = st;
    c->blk = st;
    c->flags |= CLIENT_BLOCKED;
    atomic_store_explicit(&c->shared_blocked, 1, memory_order_relaxed);
    if (st->deadline_ms) arm_timer(lt);
    return 0;
}

void blocking_host_signal(void *arg, const char *key, size_t klen) {
    server *srv = arg;
    blocking *b = srv->blocking;
    if (atomic_load(&b->parked) == 0) return;
    uint64_t h = hash_bytes(key, klen, b->seed);
    pthread_mutex_lock(&b->lock);
    for (block_link *l = b->buckets[h & (BLOCK_BUCKETS - 1)]; l; l = l->next) {
        block_state *st = l->owner;
        if (l->hash != h || l->klen != klen || memcmp(l->key, key, klen) || st->ready) continue;
        st->ready = 1;
        st->ready_next = st->lt->block_ready;
        st->lt->block_ready = st;
        ev_wake(st->lt->loop);
    }
    pthread_mutex_unlock(&b->lock);
}

/* ---- the owner loop ---- */

/* Run the parked command again; it replies, or parks anew keeping its
 * deadline. */
static void run_again(blocking *b, block_state *st) {
    client *c = st->c;
    detach(b, st);
    if (!(c->flags & CLIENT_CLOSING)) {
        c->block_carry_deadline = st->deadline_ms;
        c->sess.flags |= SESS_BLOCK_RERUN;
        client_run_argv(c, st->argc, st->argv);
        c->sess.flags &= ~SESS_BLOCK_RERUN;
        c->block_carry_deadline = -1;
    }
    state_free(st);
    if (!(c->flags & CLIENT_BLOCKED)) client_resume(c);
}

void blocking_on_wake(loop_thread *lt) {
    blocking *b = lt->srv->blocking;
    if (!b) return;
    for (;;) {
        /* One at a time: running a command may park or free others. */
        pthread_mutex_lock(&b->lock);
        block_state *st = lt->block_ready;
        pthread_mutex_unlock(&b->lock);
        if (!st) return;
        run_again(b, st);
    }
}

void blocking_client_gone(client *c) {
    block_state *st = c->blk;
    if (!st) return;
    detach(c->srv->blocking, st);
    state_free(st);
}

long blocking_parked(const server *srv) {
    long n = srv->blocking ? atomic_load(&srv->blocking->parked) : 0;
    return n > 0 ? n : 0;
}
