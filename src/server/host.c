/* host.c - cmd_host: client registry queries, CONFIG SET, AUTH checks. */
#include "host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../lib/clock.h"
#include "../lib/mem.h"
#include "../persist/persist.h"
#include "batch.h"
#include "blocking.h"
#include "client.h"
#include "pubsub.h"
#include "server.h"

/* A growable text buffer for listing output. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void text_printf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(text *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->p = xrealloc(t->p, t->cap);
    }
}

/* A client's buffer figures for its CLIENT LIST line. */
typedef struct client_sizes {
    size_t qbuf, rbs, rbp, argv_mem, obl, oll, omem, tot_mem;
    int writing; /* replies waiting to be sent: events=rw */
} client_sizes;

/* The caller's own client runs this command on this thread: its live
 * figures, and argv-mem (the bytes of the arguments being run, which are
 * views into its read buffer). Every other client: what its thread last
 * published (client_publish_sizes). */
static void sizes_of(const client *c, const cmd_ctx *caller, client_sizes *z) {
    memset(z, 0, sizeof *z);
    if (caller && &c->sess == caller->sess) {
        z->qbuf = c->rlen;
        z->rbs = c->rcap;
        z->rbp = c->rbuf_peak;
        for (int i = 0; i < caller->argc; i++) z->argv_mem += caller->argv[i].n;
        reply_mem_stats(c->out, &z->obl, &z->oll, &z->omem);
        z->tot_mem = client_total_memory(c);
        z->writing = c->out->pending > 0;
        return;
    }
    z->qbuf = atomic_load_explicit(&c->shared_qbuf, memory_order_relaxed);
    z->rbs = atomic_load_explicit(&c->shared_rbs, memory_order_relaxed);
    z->rbp = atomic_load_explicit(&c->shared_rbp, memory_order_relaxed);
    z->obl = atomic_load_explicit(&c->shared_obl, memory_order_relaxed);
    z->oll = atomic_load_explicit(&c->shared_oll, memory_order_relaxed);
    z->omem = atomic_load_explicit(&c->shared_obm, memory_order_relaxed);
    z->tot_mem = atomic_load_explicit(&c->shared_totmem, memory_order_relaxed);
    z->writing = atomic_load_explicit(&c->shared_omem, memory_order_relaxed) > 0;
}

/* One CLIENT LIST line, Redis 7.0 field order. Caller holds registry_lock
 * (which guards the name). pier has no MULTI (multi=-1, multi-mem=0),
 * sharded pub/sub (ssub=0), ACL users (user=default) or tracking
 * (redir=-1). */
static void format_client(text *t, const client *c, const cmd_ctx *caller, int64_t now_ms) {
    int64_t idle = (now_ms - atomic_load(&c->last_interaction_ms)) / 1000;
    int64_t age = (now_ms - c->sess.created_ms) / 1000;
    client_sizes z;
    sizes_of(c, caller, &z);
    const char *cmd = atomic_load_explicit(&c->sess.last_cmd, memory_order_relaxed);
    int nsub = atomic_load_explicit(&c->shared_sub, memory_order_relaxed);
    int npsub = atomic_load_explicit(&c->shared_psub, memory_order_relaxed);
    char flags[4], *f = flags; /* Redis's order: P (pub/sub) before b (blocked) */
    if (nsub + npsub > 0) *f++ = 'P';
    if (atomic_load_explicit(&c->shared_blocked, memory_order_relaxed)) *f++ = 'b';
    if (f == flags) *f++ = 'N';
    *f = 0;
    text_printf(t,
                "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=0 "
                "sub=%d psub=%d ssub=0 multi=-1 qbuf=%zu qbuf-free=%zu argv-mem=%zu "
                "multi-mem=0 rbs=%zu rbp=%zu obl=%zu oll=%zu omem=%zu tot-mem=%zu events=%s "
                "cmd=%s user=default redir=-1 resp=%d\n",
                (unsigned long long)c->sess.id, c->addr, c->laddr, c->fd,
                c->sess.name ? c->sess.name : "", (long long)(age < 0 ? 0 : age),
                (long long)(idle < 0 ? 0 : idle), flags, nsub, npsub, z.qbuf,
                z.rbs > z.qbuf ? z.rbs - z.qbuf : 0, z.argv_mem, z.rbs, z.rbp, z.obl, z.oll,
                z.omem, z.tot_mem, z.writing ? "rw" : "r", cmd ? cmd : "NULL",
                atomic_load_explicit(&c->sess.proto, memory_order_relaxed));
}

static char *host_client_list(void *arg, uint64_t only_id, const cmd_ctx *caller, size_t *len) {
    server *srv = arg;
    text t = {xmalloc(256), 0, 256};
    t.p[0] = 0;
    int64_t now = clock_wall_ms();
    pthread_mutex_lock(&srv->registry_lock);
    /* The registry is newest-first; Redis lists oldest first. */
    const client *last = srv->registry;
    while (last && last->reg_next) last = last->reg_next;
    for (const client *c = last; c; c = c->reg_prev)
        if (!only_id || c->sess.id == only_id) format_client(&t, c, caller, now);
    pthread_mutex_unlock(&srv->registry_lock);
    *len = t.len;
    return t.p;
}

static int kill_matches(const client *c, const cmd_kill_filter *f, uint64_t self_id) {
    if (f->id && c->sess.id != f->id) return 0;
    if (f->addr && strcmp(c->addr, f->addr)) return 0;
    if (f->laddr && strcmp(c->laddr, f->laddr)) return 0;
    if (f->skipme && c->sess.id == self_id) return 0;
    return 1;
}

/* Mark matching clients and wake their loops; each loop closes its own
 * clients (only the owner thread may touch a client's socket). */
static size_t host_client_kill(void *arg, const cmd_kill_filter *f, uint64_t self_id) {
    server *srv = arg;
    size_t n = 0;
    pthread_mutex_lock(&srv->registry_lock);
    for (client *c = srv->registry; c; c = c->reg_next) {
        if (!kill_matches(c, f, self_id)) continue;
        atomic_store(&c->kill_requested, 1);
        n++;
        if (c->sess.id == self_id) continue; /* closes after this reply */
        if (c->lt) {
            atomic_store(&c->lt->kill_pending, 1);
            ev_wake(c->lt->loop);
        }
        else shutdown(c->fd, SHUT_RDWR); /* --io thread: end its blocking read */
    }
    pthread_mutex_unlock(&srv->registry_lock);
    return n;
}

static void host_client_setname(void *arg, session *s, const char *name, size_t len) {
    server *srv = arg;
    char *copy = NULL;
    if (len) {
        copy = xmalloc(len + 1);
        memcpy(copy, name, len);
        copy[len] = 0;
    }
    pthread_mutex_lock(&srv->registry_lock);
    char *old = s->name;
    s->name = copy;
    pthread_mutex_unlock(&srv->registry_lock);
    free(old);
}

static size_t host_client_count(void *arg) {
    server *srv = arg;
    long long n = atomic_load(&srv->nclients);
    return n > 0 ? (size_t)n : 0;
}

static char *host_info(void *arg, const char *section, size_t *len) {
    return server_info(arg, section, len);
}

static int host_config_get_at(void *arg, size_t i, const char **name, char *buf,
                              size_t buflen) {
    server *srv = arg;
    *name = config_name_at(i);
    if (!*name) return -1;
    if (config_get(&srv->cfg, *name, buf, buflen) < 0) return -1;
    return config_is_secret(*name) ? 1 : 0;
}

static int host_config_set(void *arg, const char *name, const char *value, char *err,
                           size_t errlen) {
    server *srv = arg;
    char probe[8];
    if (config_get(&srv->cfg, name, probe, sizeof probe) < 0) return -2;
    long long maxclients = CFG_GET(srv->cfg.maxclients);
    int rc = config_set(&srv->cfg, name, value, 1, err, errlen);
    if (rc == 0 && CFG_GET(srv->cfg.maxclients) > maxclients &&
        server_fd_limit_allows(srv, CFG_GET(srv->cfg.maxclients), err, errlen) < 0) {
        /* more clients than descriptors: refused as Redis does, value kept */
        char old[32], ignored[64];
        snprintf(old, sizeof old, "%lld", maxclients);
        config_set(&srv->cfg, "maxclients", old, 1, ignored, sizeof ignored);
        return -1;
    }
    if (rc == 0) server_apply_config(srv);
    return rc;
}

static int host_config_rewrite(void *arg, char *err, size_t errlen) {
    return config_rewrite(&((server *)arg)->cfg, err, errlen);
}

/* INFO subtracts these from the counters (server.h: stat_base). */
static void host_reset_stats(void *arg) {
    server *srv = arg;
    thread_stats *base = &srv->stat_base;
#define RESET(field) atomic_store(&base->field, SERVER_STAT(srv, field))
    RESET(commands);
    RESET(keyspace_hits);
    RESET(keyspace_misses);
    RESET(net_input_bytes);
    RESET(net_output_bytes);
    RESET(connections_received);
    RESET(rejected_connections);
    RESET(expired_keys_active);
#undef RESET
    atomic_store(&srv->expired_base, ks_expired_total(srv->ks));
    atomic_store(&srv->evicted_base, ks_evicted_total(srv->ks));
}

static int host_check_password(void *arg, const char *pass, size_t len) {
    server *srv = arg;
    return config_check_password(&srv->cfg, pass, len);
}

static int host_auth_required(void *arg) {
    server *srv = arg;
    return config_auth_required(&srv->cfg);
}

static size_t host_used_memory(void *arg) { return server_memory_estimate(arg); }

static int host_save(void *arg, char *msg, size_t len) {
    return persist_save(((server *)arg)->ps, msg, len);
}

static int host_bgsave(void *arg, int schedule, char *msg, size_t len) {
    return persist_bgsave(((server *)arg)->ps, schedule, msg, len);
}

static int host_bgrewriteaof(void *arg, char *msg, size_t len) {
    return persist_bgrewriteaof(((server *)arg)->ps, msg, len);
}

static long long host_lastsave(void *arg) { return persist_lastsave(((server *)arg)->ps); }

static int host_shutdown(void *arg, int flags, char *msg, size_t len) {
    return server_request_shutdown(arg, flags, msg, len);
}

/* New entries on key: parked XREAD/XREADGROUP and batch subscribers. */
static void host_signal_key(void *arg, const char *key, size_t klen) {
    blocking_host_signal(arg, key, klen);
    batch_signal(arg, key, klen);
}

const cmd_host server_host_ops = {
    .client_list = host_client_list,
    .reset_stats = host_reset_stats,
    .config_rewrite = host_config_rewrite,
    .client_kill = host_client_kill,
    .client_setname = host_client_setname,
    .client_count = host_client_count,
    .info = host_info,
    .config_get_at = host_config_get_at,
    .config_set = host_config_set,
    .check_password = host_check_password,
    .auth_required = host_auth_required,
    .used_memory = host_used_memory,
    .save = host_save,
    .bgsave = host_bgsave,
    .bgrewriteaof = host_bgrewriteaof,
    .lastsave = host_lastsave,
    .shutdown = host_shutdown,
    .block_on_keys = blocking_host_park,
    .signal_key = host_signal_key,
    .unblock_key = blocking_host_signal,
    .subscribe = pubsub_host_subscribe,
    .unsubscribe = pubsub_host_unsubscribe,
    .subscriptions_of = pubsub_host_subscriptions,
    .publish = pubsub_host_publish,
    .pubsub_channels = pubsub_host_channels,
    .pubsub_numsub = pubsub_host_numsub,
    .pubsub_numpat = pubsub_host_numpat,
};
