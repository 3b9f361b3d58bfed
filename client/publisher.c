/* publisher.c - pier_publisher: per-thread batches, the buffer pool, the
 * linger flusher and the public API. The wire side is pubconn.c, the
 * choice of connection and cluster mode's failover pubroute.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "publisher_impl.h"

static atomic_ullong next_publisher_id = 1;

/* The calling thread's slot of the publisher it used last: publish must
 * not take a shared lock per message. The id (never reused) guards
 * against a new publisher at a freed one's address. */
static _Thread_local struct {
    uint64_t pub_id;
    pslot *slot;
} tl_slot;

void pier_publisher_options_init(pier_publisher_options *o) {
    if (!o) return;
    *o = (pier_publisher_options){
        .conns_per_node = 1, .batch_bytes = 2u << 20, .linger_us = 1000, .ack_level = 1,
        .order_level = 1, .codec = PIER_CODEC_LZ4, .compress_min_bytes = 64 * 1024, .adaptive = 1,
        .reprobe_every = 64, .nodelay = 1, .reconnect_ms = 5000};
}

void pub_log(pier_publisher *p, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (p->opt.log) p->opt.log(p->opt.log_ctx, line);
    else fprintf(stderr, "libpier: %s\n", line);
}

int pub_set_failed(pier_publisher *p, int status, const char *msg) {
    char text[256]; /* msg may be pier_last_error() itself, rewritten below */
    snprintf(text, sizeof text, "%s", msg && *msg ? msg : pier_strerror(status));
    pthread_mutex_lock(&p->lock);
    if (!atomic_load(&p->failed)) {
        snprintf(p->fail_msg, sizeof p->fail_msg, "%s", text);
        atomic_store(&p->failed, status);
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return pier_fail(status, "%s", text);
}

/* PIER_E_CLOSED with the stored reason when the publisher failed. */
static int check_failed(pier_publisher *p) {
    if (!atomic_load(&p->failed)) return PIER_OK;
    pthread_mutex_lock(&p->lock);
    int rc = pier_fail(PIER_E_CLOSED, "publisher failed: %s", p->fail_msg);
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* ----------------------------------------------------------- options */

static int check_options(const pier_publisher_options *o) {
    if (!o->topic || !*o->topic || strlen(o->topic) > PB_MAX_TOPIC)
        return pier_fail(PIER_E_INVALID, "topic must be 1..%d bytes", PB_MAX_TOPIC);
    if (!o->nodes || o->node_count < 1) return pier_fail(PIER_E_INVALID, "no nodes");
    if (o->conns_per_node < 1 || o->conns_per_node > 256)
        return pier_fail(PIER_E_INVALID, "conns_per_node must be 1..256");
    if (o->batch_bytes < 64 || o->batch_bytes > PB_MAX_PAYLOAD)
        return pier_fail(PIER_E_INVALID, "batch_bytes must be 64..%u", PB_MAX_PAYLOAD);
    if (o->ack_level < 0 || o->ack_level > 2)
        return pier_fail(PIER_E_INVALID, "ack_level must be 0, 1 or 2");
    if (o->order_level < 0 || o->order_level > 2)
        return pier_fail(PIER_E_INVALID, "order_level must be 0, 1 or 2");
    if (o->replication < 0 || o->replication > 255)
        return pier_fail(PIER_E_INVALID, "replication must be 0..255 (0 = the topic's)");
    if (o->codec < PIER_CODEC_NONE || o->codec > PIER_CODEC_ZSTD)
        return pier_fail(PIER_E_INVALID, "unknown codec %d", (int)o->codec);
    if (o->buffers < 0) return pier_fail(PIER_E_INVALID, "buffers must be >= 0");
    return PIER_OK;
}

static uint64_t random_client_id(void) {
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
        id = pn_now_ns() ^ ((uint64_t)getpid() << 32);
    return id ? id : 1;
}

/* -------------------------------------------------------- allocation */

/* One mapping for every buffer: raw area, then (with a codec) the
 * compression output area of each. */
static int alloc_pool(pier_publisher *p) {
    const pier_publisher_options *o = &p->opt;
    int n = o->buffers ? o->buffers : 4 * p->nconns + 8;
    size_t raw = (o->batch_bytes + 4095) & ~(size_t)4095;
    size_t wire = o->codec ? (pc_bound(o->codec, o->batch_bytes) + 4095) & ~(size_t)4095 : 0;
    p->bufs = calloc((size_t)n, sizeof *p->bufs);
    if (!p->bufs) return pier_fail(PIER_E_NOMEM, "no memory for %d buffers", n);
    p->mem = pier_huge_alloc((size_t)n * (raw + wire), &p->mem_len, o->verbose, o->log,
                             o->log_ctx);
    if (!p->mem) return pier_fail(PIER_E_NOMEM, "cannot map %zu bytes of buffers", n * (raw + wire));
    uint8_t *m = p->mem;
    for (int i = 0; i < n; i++) {
        pbuf *b = &p->bufs[i];
        b->raw = m + (size_t)i * (raw + wire);
        b->wire = wire ? b->raw + raw : NULL;
        b->next = p->free_list;
        p->free_list = b;
    }
    return PIER_OK;
}

static int init_conns(pier_publisher *p, const char *const *nodes) {
    const pier_publisher_options *o = &p->opt;
    int n = o->node_count * o->conns_per_node;
    p->conns = calloc((size_t)n, sizeof *p->conns);
    if (!p->conns) return pier_fail(PIER_E_NOMEM, "no memory for connections");
    p->nconns = n;
    for (int i = 0; i < n; i++) { /* first, so free_publisher can clean any of them */
        p->conns[i].fd = -1;
        pthread_mutex_init(&p->conns[i].send_lock, NULL);
    }
    uint64_t base = o->client_id ? o->client_id : random_client_id();
    p->client_base = base;
    p->next_seq = 1;
    for (int i = 0; i < n; i++) {
        pconn *c = &p->conns[i];
        c->node = i / o->conns_per_node;
        int rc = pn_split_hostport(nodes[c->node], c->host, sizeof c->host, &c->port);
        if (rc) return rc;
        c->p = p;
        c->index = i;
        c->next_seq = 1;
        /* One id per connection (single nodes keep one sequence per id);
         * cluster mode gives them all the base id once it is known. */
        c->client_id = base + (uint64_t)i ? base + (uint64_t)i : 1;
        pc_adapt_init(&c->adapt, o->reprobe_every);
        snprintf(c->stats.node, sizeof c->stats.node, "%.40s:%d", c->host, c->port);
        c->stats.node_index = c->node;
        c->stats.client_id = c->client_id;
    }
    return PIER_OK;
}

static void free_publisher(pier_publisher *p) {
    pub_stop_keeper(p);
    pthread_mutex_lock(&p->lock);
    p->stopping = true; /* the readers see EOF now: expected, not logged */
    pthread_mutex_unlock(&p->lock);
    for (pslot *s = atomic_load(&p->slots), *next; s; s = next) {
        next = s->next;
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
    for (int i = 0; p->conns && i < p->nconns; i++) {
        pconn_shutdown(&p->conns[i]);
        pthread_mutex_destroy(&p->conns[i].send_lock);
    }
    free(p->conns);
    pier_huge_free(p->mem, p->mem_len);
    free(p->bufs);
    free(p->password);
    pthread_cond_destroy(&p->keeper_cond);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ------------------------------------------------------------- slots */

static pslot *find_or_add_slot(pier_publisher *p) {
    pthread_t me = pthread_self();
    for (pslot *s = atomic_load(&p->slots); s; s = s->next)
        if (pthread_equal(s->owner, me)) return s;
    pslot *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->owner = me;
    pthread_mutex_lock(&p->lock);
    s->next = atomic_load(&p->slots);
    atomic_store(&p->slots, s);
    pthread_mutex_unlock(&p->lock);
    return s;
}

static pslot *my_slot(pier_publisher *p) {
    if (tl_slot.pub_id == p->id) return tl_slot.slot;
    pslot *s = find_or_add_slot(p);
    if (s) {
        tl_slot.pub_id = p->id;
        tl_slot.slot = s;
    }
    return s;
}

/* ------------------------------------------------------- buffer pool */

/* Caller holds p->lock. */
static bool anything_in_flight(pier_publisher *p) { return p->in_flight > 0; }

static void seal_idle_slots(pier_publisher *p);

/* Single mode: reconnect connections whose reader saw the socket die
 * while batches wait for ACKs there: nobody else would resend them.
 * Cluster mode: resend orphans (the keeper reconnects). */
static void service_conns(pier_publisher *p) {
    if (p->cluster) {
        pub_resend_orphans(p);
        return;
    }
    for (int i = 0; i < p->nconns; i++) {
        pconn *c = &p->conns[i];
        /* trylock: a sender holds it and drains or reconnects itself; the
         * lock also keeps c->fd from changing under the drain. */
        if (pthread_mutex_trylock(&c->send_lock) != 0) continue;
        pconn_drain_zerocopy(c);
        pthread_mutex_lock(&p->lock);
        bool stuck = c->broken && c->unacked_head && !atomic_load(&p->failed);
        pthread_mutex_unlock(&p->lock);
        if (stuck) pconn_connect(c);
        pthread_mutex_unlock(&c->send_lock);
    }
}

/* Wait up to 1 ms on p->cond. Caller holds p->lock. */
static void wait_a_little(pier_publisher *p) { pub_wait(p, 1); }

/* A free buffer, waiting while every buffer is in flight (backpressure).
 * NULL when the publisher failed. */
static pbuf *get_free_buffer(pier_publisher *p) {
    pthread_mutex_lock(&p->lock);
    while (!p->free_list && !atomic_load(&p->failed)) {
        bool idle = !anything_in_flight(p);
        pthread_mutex_unlock(&p->lock);
        /* Every buffer sits in some thread's partial batch: send them. */
        if (idle) seal_idle_slots(p);
        service_conns(p);
        pthread_mutex_lock(&p->lock);
        if (!p->free_list) wait_a_little(p);
    }
    pbuf *b = p->free_list;
    if (b) {
        p->free_list = b->next;
        b->next = NULL;
        b->used = 0;
        b->count = 0;
        b->zc_pending = false;
    }
    pthread_mutex_unlock(&p->lock);
    return b;
}

static void put_free(pier_publisher *p, pbuf *b) {
    pthread_mutex_lock(&p->lock);
    b->next = p->free_list;
    p->free_list = b;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Send b on the connection with the fewest unacknowledged bytes. In
 * cluster mode a connection that fails under the send leaves b an
 * orphan, resent here on another one. */
static int send_sealed(pier_publisher *p, pbuf *b) {
    pconn *c = pub_pick_conn(p);
    if (!c) {
        put_free(p, b);
        return check_failed(p);
    }
    pthread_mutex_lock(&c->send_lock);
    int rc = check_failed(p);
    if (rc == PIER_OK) rc = pconn_send(c, b);
    else put_free(p, b);
    pthread_mutex_unlock(&c->send_lock);
    if (p->cluster) pub_resend_orphans(p);
    return rc;
}

/* Send s's partial batch if it has messages. Caller holds s->lock. */
static int seal_slot(pier_publisher *p, pslot *s) {
    if (!s->cur || s->cur->count == 0) return PIER_OK;
    pbuf *b = s->cur;
    s->cur = NULL;
    return send_sealed(p, b);
}

/* trylock: the owner may hold its slot while waiting for a buffer. */
static void seal_idle_slots(pier_publisher *p) {
    for (pslot *s = atomic_load(&p->slots); s; s = s->next) {
        if (pthread_mutex_trylock(&s->lock) != 0) continue;
        seal_slot(p, s);
        pthread_mutex_unlock(&s->lock);
    }
}

/* --------------------------------------------------------- flusher */

static void *flusher_main(void *arg) {
    pier_publisher *p = arg;
    uint64_t linger_ns = (uint64_t)p->opt.linger_us * 1000;
    struct timespec nap = {0, (long)(linger_ns / 2 > 50000 ? linger_ns / 2 : 50000)};
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool stop = p->flusher_stop;
        pthread_mutex_unlock(&p->lock);
        if (stop) return NULL;
        nanosleep(&nap, NULL);
        uint64_t now = pn_now_ns();
        for (pslot *s = atomic_load(&p->slots); s; s = s->next) {
            if (pthread_mutex_trylock(&s->lock) != 0) continue;
            if (s->cur && s->cur->count && now - s->cur->first_ns >= linger_ns) seal_slot(p, s);
            pthread_mutex_unlock(&s->lock);
        }
    }
}

/* ------------------------------------------------------------- API */

/* The first connection's HELLO_OK fixes the mode: in cluster mode every
 * connection uses the base client id (one publisher, one sequence). */
static int open_connections(pier_publisher *p) {
    for (int i = 0; i < p->nconns; i++) {
        pconn *c = &p->conns[i];
        if (i > 0 && p->cluster) {
            c->client_id = p->client_base;
            c->stats.client_id = c->client_id;
        }
        pthread_mutex_lock(&c->send_lock);
        int rc = pconn_connect(c);
        pthread_mutex_unlock(&c->send_lock);
        if (rc) return rc;
    }
    return p->cluster ? pub_start_keeper(p) : PIER_OK;
}

int pier_publisher_open(pier_publisher **out, const pier_publisher_options *o) {
    if (!out || !o) return pier_fail(PIER_E_INVALID, "NULL argument");
    *out = NULL;
    int rc = check_options(o);
    if (rc) return rc;
    pier_publisher *p = calloc(1, sizeof *p);
    if (!p) return pier_fail(PIER_E_NOMEM, "no memory for a publisher");
    p->opt = *o;
    p->opt.nodes = NULL; /* not kept: the caller's array may go away */
    snprintf(p->topic, sizeof p->topic, "%s", o->topic);
    p->opt.topic = p->topic;
    p->id = atomic_fetch_add(&next_publisher_id, 1);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    pthread_cond_init(&p->keeper_cond, NULL);
    if (o->password && !(p->password = strdup(o->password))) rc = PIER_E_NOMEM;
    if (!rc) rc = init_conns(p, o->nodes);
    if (!rc) rc = alloc_pool(p);
    if (!rc) rc = open_connections(p);
    if (!rc && o->linger_us) {
        if (pthread_create(&p->flusher, NULL, flusher_main, p) != 0)
            rc = pier_fail(PIER_E_NOMEM, "cannot start the flusher thread");
        else p->flusher_running = true;
    }
    if (rc) {
        free_publisher(p);
        return rc;
    }
    *out = p;
    pier_clear_error();
    return PIER_OK;
}

int pier_publish(pier_publisher *p, const void *msg, size_t len) {
    if (!p || (!msg && len)) return pier_fail(PIER_E_INVALID, "NULL argument");
    if (len > p->opt.batch_bytes - 4 || len > UINT32_MAX)
        return pier_fail(PIER_E_TOO_LARGE, "message of %zu bytes over the batch size %zu", len,
                         p->opt.batch_bytes);
    int rc = check_failed(p);
    if (rc) return rc;
    pslot *s = my_slot(p);
    if (!s) return pier_fail(PIER_E_NOMEM, "no memory for a thread slot");
    pthread_mutex_lock(&s->lock);
    if (s->cur && s->cur->used + 4 + len > p->opt.batch_bytes) rc = seal_slot(p, s);
    if (!rc && !s->cur && !(s->cur = get_free_buffer(p))) rc = check_failed(p);
    if (!rc) {
        pbuf *b = s->cur;
        if (b->count == 0) b->first_ns = pn_now_ns();
        b->used += pb_put_message(b->raw + b->used, msg, (uint32_t)len);
        b->count++;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int seal_all_slots(pier_publisher *p) {
    int rc = PIER_OK;
    for (pslot *s = atomic_load(&p->slots); s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        int r = seal_slot(p, s);
        pthread_mutex_unlock(&s->lock);
        if (r && !rc) rc = r;
    }
    return rc;
}

/* Wait until no batch is in flight (ACKed, zero-copy complete). */
static int wait_all_acked(pier_publisher *p) {
    pthread_mutex_lock(&p->lock);
    while (anything_in_flight(p) && !atomic_load(&p->failed)) {
        pthread_mutex_unlock(&p->lock);
        service_conns(p);
        pthread_mutex_lock(&p->lock);
        if (anything_in_flight(p)) wait_a_little(p);
    }
    pthread_mutex_unlock(&p->lock);
    return check_failed(p);
}

int pier_flush(pier_publisher *p) {
    if (!p) return pier_fail(PIER_E_INVALID, "NULL argument");
    int rc = check_failed(p);
    if (!rc) rc = seal_all_slots(p);
    if (!rc) rc = wait_all_acked(p);
    if (!rc) pier_clear_error();
    return rc;
}

int pier_publisher_close(pier_publisher *p) {
    if (!p) return pier_fail(PIER_E_INVALID, "NULL argument");
    if (p->flusher_running) {
        pthread_mutex_lock(&p->lock);
        p->flusher_stop = true;
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->flusher, NULL);
    }
    int rc = pier_flush(p);
    pub_stop_keeper(p);
    pthread_mutex_lock(&p->lock);
    p->stopping = true; /* the readers see EOF now: expected, not logged */
    pthread_mutex_unlock(&p->lock);
    if (tl_slot.pub_id == p->id) {
        tl_slot.pub_id = 0;
        tl_slot.slot = NULL;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "%s", pier_last_error());
    free_publisher(p);
    if (rc) pier_fail(rc, "%s", msg);
    return rc;
}

/* wire_bytes counts the frame headers; the ratio is of payloads. */
static void set_ratio(pier_conn_stats *st) {
    st->ratio = st->raw_bytes ? (double)(st->wire_bytes - PB_HEADER_LEN * st->batches) /
                                    (double)st->raw_bytes
                              : 1.0;
}

/* c's counters as of now. Caller holds p->lock. */
static pier_conn_stats conn_stats(const pconn *c) {
    pier_conn_stats st = c->stats;
    st.connected = !c->broken && c->fd >= 0;
    st.outstanding_bytes = c->out_bytes;
    set_ratio(&st);
    return st;
}

int pier_publisher_stats(pier_publisher *p, pier_conn_stats *out, int max, int *count) {
    if (!p || (!out && max > 0) || max < 0) return pier_fail(PIER_E_INVALID, "bad argument");
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nconns && i < max; i++) out[i] = conn_stats(&p->conns[i]);
    pthread_mutex_unlock(&p->lock);
    if (count) *count = p->nconns;
    return PIER_OK;
}

void pier_conn_stats_add(pier_conn_stats *sum, const pier_conn_stats *st) {
    if (!sum || !st) return;
    sum->connected += st->connected;
    sum->batches += st->batches;
    sum->messages += st->messages;
    sum->raw_bytes += st->raw_bytes;
    sum->wire_bytes += st->wire_bytes;
    sum->compressed_batches += st->compressed_batches;
    sum->compress_ns += st->compress_ns;
    sum->send_ns += st->send_ns;
    sum->acked_batches += st->acked_batches;
    sum->duplicate_acks += st->duplicate_acks;
    sum->skipped_batches += st->skipped_batches;
    sum->resent_batches += st->resent_batches;
    sum->outstanding_bytes += st->outstanding_bytes;
    sum->reconnects += st->reconnects;
    sum->zerocopy_sends += st->zerocopy_sends;
    sum->zerocopy_copied += st->zerocopy_copied;
    set_ratio(sum);
}

int pier_publisher_node_stats(pier_publisher *p, pier_conn_stats *out, int max, int *count) {
    if (!p || (!out && max > 0) || max < 0) return pier_fail(PIER_E_INVALID, "bad argument");
    int per = p->opt.conns_per_node;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nconns; i++) {
        int n = i / per;
        if (n >= max) break;
        pier_conn_stats st = conn_stats(&p->conns[i]);
        if (i % per == 0) {
            out[n] = st;
            continue;
        }
        pier_conn_stats_add(&out[n], &st);
    }
    pthread_mutex_unlock(&p->lock);
    if (count) *count = p->nconns / per;
    return PIER_OK;
}

int pier_publisher_cluster_nodes(pier_publisher *p) {
    if (!p) return 0;
    pthread_mutex_lock(&p->lock);
    int n = p->cluster ? (int)p->cluster_nodes : 0;
    pthread_mutex_unlock(&p->lock);
    return n;
}
