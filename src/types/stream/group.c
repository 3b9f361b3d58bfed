/* group.c - consumer groups: PELs (skip lists keyed by entry ID), consumers
 * and the entries-read / lag bookkeeping of Redis 7.0. */
#include "group.h"

#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"

/* ---- idmap: a skip list ---- */

static idmap_node *node_new(int level, stream_id id, void *val) {
    idmap_node *n = xmalloc(sizeof *n + (size_t)level * sizeof n->next[0]);
    n->id = id;
    n->val = val;
    n->level = level;
    for (int i = 0; i < level; i++) n->next[i] = NULL;
    return n;
}

void idmap_init(idmap *m) {
    m->head = node_new(IDMAP_MAX_LEVEL, STREAM_ID_ZERO, NULL);
    m->level = 1;
    m->count = 0;
    m->rng = 0x9E3779B97F4A7C15ull;
}

void idmap_free(idmap *m) {
    idmap_node *n = m->head;
    while (n) {
        idmap_node *next = n->next[0];
        free(n);
        n = next;
    }
    m->head = NULL;
    m->count = 0;
}

/* Level with probability 1/4 per step (xorshift; the input cannot steer
 * it, so no adversarial degeneration). */
static int random_level(idmap *m) {
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    uint64_t r = m->rng;
    int level = 1;
    while (level < IDMAP_MAX_LEVEL && (r & 3) == 0) {
        level++;
        r >>= 2;
    }
    return level;
}

/* Fill update[] with the last node before id on every level. */
static void find_path(const idmap *m, stream_id id, idmap_node **update) {
    idmap_node *x = m->head;
    for (int i = m->level - 1; i >= 0; i--) {
        while (x->next[i] && stream_id_cmp(x->next[i]->id, id) < 0) x = x->next[i];
        update[i] = x;
    }
}

void idmap_insert(idmap *m, stream_id id, void *val) {
    idmap_node *update[IDMAP_MAX_LEVEL];
    find_path(m, id, update);
    int level = random_level(m);
    for (int i = m->level; i < level; i++) update[i] = m->head;
    if (level > m->level) m->level = level;
    idmap_node *n = node_new(level, id, val);
    for (int i = 0; i < level; i++) {
        n->next[i] = update[i]->next[i];
        update[i]->next[i] = n;
    }
    m->count++;
}

idmap_node *idmap_seek(const idmap *m, stream_id id) {
    const idmap_node *x = m->head;
    for (int i = m->level - 1; i >= 0; i--)
        while (x->next[i] && stream_id_cmp(x->next[i]->id, id) < 0) x = x->next[i];
    return x->next[0];
}

void *idmap_find(const idmap *m, stream_id id) {
    idmap_node *n = idmap_seek(m, id);
    return n && stream_id_cmp(n->id, id) == 0 ? n->val : NULL;
}

void *idmap_remove(idmap *m, stream_id id) {
    idmap_node *update[IDMAP_MAX_LEVEL];
    find_path(m, id, update);
    idmap_node *n = update[0]->next[0];
    if (!n || stream_id_cmp(n->id, id) != 0) return NULL;
    for (int i = 0; i < n->level; i++) update[i]->next[i] = n->next[i];
    while (m->level > 1 && !m->head->next[m->level - 1]) m->level--;
    void *val = n->val;
    free(n);
    m->count--;
    return val;
}

idmap_node *idmap_first(const idmap *m) { return m->head->next[0]; }

idmap_node *idmap_last(const idmap *m) {
    const idmap_node *x = m->head;
    for (int i = m->level - 1; i >= 0; i--)
        while (x->next[i]) x = x->next[i];
    return x == m->head ? NULL : (idmap_node *)x;
}

/* Approximate bytes of one skip-list node (average level 4/3). */
#define NODE_BYTES (sizeof(idmap_node) + 2 * sizeof(void *))

/* ---- groups ---- */

static int name_cmp(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

/* Index where name is, or would be inserted; *found set. */
static size_t group_slot(const stream_groups *gs, const char *name, size_t n, int *found) {
    size_t lo = 0, hi = gs->n;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(gs->v[mid]->name, gs->v[mid]->nlen, name, n);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

size_t stream_group_count(const stream *s) {
    return stream_groups_of((stream *)s)->n;
}

stream_group *stream_group_at(const stream *s, size_t i) {
    return stream_groups_of((stream *)s)->v[i];
}

stream_group *stream_group_find(const stream *s, const char *name, size_t n) {
    const stream_groups *gs = stream_groups_of((stream *)s);
    int found;
    size_t i = group_slot(gs, name, n, &found);
    return found ? gs->v[i] : NULL;
}

static char *copy_name(const char *name, size_t n) { return xstrndup(name, n); }

stream_group *stream_group_create(stream *s, const char *name, size_t n, stream_id last,
                                  int64_t entries_read) {
    stream_groups *gs = stream_groups_of(s);
    int found;
    size_t i = group_slot(gs, name, n, &found);
    if (found) return NULL;
    if (gs->n == gs->cap) {
        gs->cap = gs->cap ? gs->cap * 2 : 4;
        gs->v = xrealloc(gs->v, gs->cap * sizeof *gs->v);
    }
    stream_group *g = xcalloc(1, sizeof *g);
    g->name = copy_name(name, n);
    g->nlen = n;
    g->last_id = last;
    g->entries_read = entries_read;
    idmap_init(&g->pel);
    memmove(gs->v + i + 1, gs->v + i, (gs->n - i) * sizeof *gs->v);
    gs->v[i] = g;
    gs->n++;
    stream_mem_adjust(s, (long long)(sizeof *g + n + 1 + NODE_BYTES));
    return g;
}

static void consumer_free(stream_consumer *c) {
    idmap_free(&c->pel);
    free(c->name);
    free(c);
}

static size_t group_bytes(const stream_group *g) {
    size_t b = sizeof *g + g->nlen + 1 + NODE_BYTES + g->ccap * sizeof *g->cons;
    b += g->pel.count * (sizeof(stream_nack) + 2 * NODE_BYTES);
    for (size_t i = 0; i < g->ncons; i++)
        b += sizeof(stream_consumer) + g->cons[i]->nlen + 1 + NODE_BYTES;
    return b;
}

static void group_free(stream_group *g) {
    for (idmap_node *n = idmap_first(&g->pel); n; n = n->next[0]) free(n->val);
    idmap_free(&g->pel);
    for (size_t i = 0; i < g->ncons; i++) consumer_free(g->cons[i]);
    free(g->cons);
    free(g->name);
    free(g);
}

int stream_group_destroy(stream *s, const char *name, size_t n) {
    stream_groups *gs = stream_groups_of(s);
    int found;
    size_t i = group_slot(gs, name, n, &found);
    if (!found) return 0;
    stream_group *g = gs->v[i];
    stream_mem_adjust(s, -(long long)group_bytes(g));
    group_free(g);
    memmove(gs->v + i, gs->v + i + 1, (gs->n - i - 1) * sizeof *gs->v);
    gs->n--;
    return 1;
}

void stream_groups_free(stream_groups *gs) {
    for (size_t i = 0; i < gs->n; i++) group_free(gs->v[i]);
    free(gs->v);
    gs->v = NULL;
    gs->n = gs->cap = 0;
}

/* ---- consumers ---- */

static size_t consumer_slot(const stream_group *g, const char *name, size_t n, int *found) {
    size_t lo = 0, hi = g->ncons;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(g->cons[mid]->name, g->cons[mid]->nlen, name, n);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

stream_consumer *group_consumer_find(const stream_group *g, const char *name, size_t n) {
    int found;
    size_t i = consumer_slot(g, name, n, &found);
    return found ? g->cons[i] : NULL;
}

stream_consumer *group_consumer_create(stream *s, stream_group *g, const char *name,
                                       size_t n, int64_t now_ms) {
    int found;
    size_t i = consumer_slot(g, name, n, &found);
    if (found) return NULL;
    if (g->ncons == g->ccap) {
        size_t ncap = g->ccap ? g->ccap * 2 : 4;
        g->cons = xrealloc(g->cons, ncap * sizeof *g->cons);
        stream_mem_adjust(s, (long long)((ncap - g->ccap) * sizeof *g->cons));
        g->ccap = ncap;
    }
    stream_consumer *c = xcalloc(1, sizeof *c);
    c->name = copy_name(name, n);
    c->nlen = n;
    c->seen_time = now_ms;
    idmap_init(&c->pel);
    memmove(g->cons + i + 1, g->cons + i, (g->ncons - i) * sizeof *g->cons);
    g->cons[i] = c;
    g->ncons++;
    stream_mem_adjust(s, (long long)(sizeof *c + n + 1 + NODE_BYTES));
    return c;
}

long long group_consumer_delete(stream *s, stream_group *g, const char *name, size_t n) {
    int found;
    size_t i = consumer_slot(g, name, n, &found);
    if (!found) return -1;
    stream_consumer *c = g->cons[i];
    long long pending = (long long)c->pel.count;
    for (idmap_node *x = idmap_first(&c->pel); x; x = x->next[0]) {
        free(idmap_remove(&g->pel, x->id));
    }
    stream_mem_adjust(s, -(long long)(pending * (long long)(sizeof(stream_nack) + 2 * NODE_BYTES)
                                      + (long long)(sizeof *c + n + 1 + NODE_BYTES)));
    consumer_free(c);
    memmove(g->cons + i, g->cons + i + 1, (g->ncons - i - 1) * sizeof *g->cons);
    g->ncons--;
    return pending;
}

/* ---- pending entries ---- */

stream_nack *group_nack_add(stream *s, stream_group *g, stream_consumer *c, stream_id id,
                            int64_t delivery_time, uint64_t delivery_count) {
    stream_nack *nk = xmalloc(sizeof *nk);
    nk->id = id;
    nk->delivery_time = delivery_time;
    nk->delivery_count = delivery_count;
    nk->owner = c;
    idmap_insert(&g->pel, id, nk);
    idmap_insert(&c->pel, id, nk);
    stream_mem_adjust(s, (long long)(sizeof *nk + 2 * NODE_BYTES));
    return nk;
}

stream_nack *group_nack_find(const stream_group *g, stream_id id) {
    return idmap_find(&g->pel, id);
}

void group_nack_transfer(stream_nack *nk, stream_consumer *to) {
    if (nk->owner == to) return;
    idmap_remove(&nk->owner->pel, nk->id);
    idmap_insert(&to->pel, nk->id, nk);
    nk->owner = to;
}

int group_ack(stream *s, stream_group *g, stream_id id) {
    stream_nack *nk = idmap_remove(&g->pel, id);
    if (!nk) return 0;
    idmap_remove(&nk->owner->pel, id);
    free(nk);
    stream_mem_adjust(s, -(long long)(sizeof *nk + 2 * NODE_BYTES));
    return 1;
}

/* ---- entries-read and lag (Redis 7.0 rules) ---- */

int stream_tombstones_after(const stream *s, stream_id from) {
    stream_id md = stream_max_deleted_id(s);
    if (stream_length(s) == 0 || stream_id_is_zero(md)) return 0;
    return stream_id_cmp(from, md) <= 0;
}

int64_t stream_estimate_read(const stream *s, stream_id id) {
    uint64_t added = stream_entries_added(s), len = stream_length(s);
    if (!added) return 0;
    int cmp_last = stream_id_cmp(id, stream_last_id(s));
    if (!len && cmp_last <= 0) return (int64_t)added;
    if (cmp_last == 0) return (int64_t)added;
    if (cmp_last > 0) return GROUP_ENTRIES_READ_UNKNOWN;
    stream_id first = stream_first_id(s), md = stream_max_deleted_id(s);
    /* Without deletions after the first entry, everything before it was
     * trimmed, so the count before `id` is known. */
    if (stream_id_is_zero(md) || stream_id_cmp(md, first) < 0) {
        int cmp_first = stream_id_cmp(id, first);
        if (cmp_first < 0) return (int64_t)(added - len);
        if (cmp_first == 0) return (int64_t)(added - len + 1);
    }
    return GROUP_ENTRIES_READ_UNKNOWN;
}

void group_advance(const stream *s, stream_group *g, stream_id id) {
    if (g->entries_read != GROUP_ENTRIES_READ_UNKNOWN && !stream_tombstones_after(s, id))
        g->entries_read = (int64_t)((uint64_t)g->entries_read + 1); /* wraps like Redis */
    else if (stream_entries_added(s))
        g->entries_read = stream_estimate_read(s, id);
    g->last_id = id;
}

/* Redis computes lag in signed 64-bit arithmetic (negative after an
 * ENTRIESREAD beyond the stream, wrapping at the extremes): the same,
 * without signed overflow. */
static int64_t signed_diff(uint64_t a, int64_t b) { return (int64_t)(a - (uint64_t)b); }

int group_lag(const stream *s, const stream_group *g, int64_t *lag) {
    uint64_t added = stream_entries_added(s);
    if (!added) {
        *lag = 0;
        return 1;
    }
    if (g->entries_read != GROUP_ENTRIES_READ_UNKNOWN &&
        !stream_tombstones_after(s, g->last_id)) {
        *lag = signed_diff(added, g->entries_read);
        return 1;
    }
    int64_t read = stream_estimate_read(s, g->last_id);
    if (read == GROUP_ENTRIES_READ_UNKNOWN) return 0;
    *lag = signed_diff(added, read);
    return 1;
}
