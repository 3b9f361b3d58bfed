/* catchup.c - the AOF index of the log and the reader thread that reads
 * old entries back for a follower's catch-up (catchup.h). */
#include "catchup.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/mem.h"
#include "../lib/util.h"

#define READ_CHUNK (1u << 20) /* bytes per read of the AOF */

typedef struct cut {
    uint64_t index; /* entries from here on ... */
    aof_pos pos;    /* ... written before here are void */
} cut;

typedef struct job {
    struct job *next;
    int peer;
    uint64_t term, from, lo, hi;
    size_t max_bytes;
    aof_pos start;   /* the newest record of an entry at or below lo */
    cut *truncs;   /* the truncations after start */
    size_t ntrunc;
} job;

struct catchup {
    pthread_mutex_t lock; /* everything below (a leaf lock) */
    pthread_cond_t cond;
    aof_pos *marks;       /* marks[k]: the newest record of index k * STRIDE + 1 */
    size_t nmarks, mcap;
    cut *truncs;
    size_t ntrunc, tcap;
    job *jobs, *jobs_tail;
    catchup_result *done, *done_tail;
    uint64_t busy;        /* bit p: a read for peer p is queued or under way */
    int stop, started;
    pthread_t tid;
    aof *aof;
    void (*ready)(void *arg);
    void *ready_arg;
};

catchup *catchup_create(void) {
    catchup *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    return c;
}

/* ---- the index ---- */

void catchup_note_entry(catchup *c, uint64_t index, aof_pos pos) {
    if (index == 0 || (index - 1) % CATCHUP_STRIDE) return;
    size_t k = (size_t)((index - 1) / CATCHUP_STRIDE);
    pthread_mutex_lock(&c->lock);
    if (k >= c->mcap) {
        c->mcap = c->mcap ? c->mcap * 2 : 1024;
        while (k >= c->mcap) c->mcap *= 2;
        c->marks = xrealloc(c->marks, c->mcap * sizeof *c->marks);
    }
    while (c->nmarks <= k) c->marks[c->nmarks++] = AOF_POS_NONE;
    c->marks[k] = pos;
    pthread_mutex_unlock(&c->lock);
}

void catchup_note_truncate(catchup *c, uint64_t index, aof_pos pos) {
    if (index == 0) return;
    pthread_mutex_lock(&c->lock);
    if (c->ntrunc == c->tcap) {
        c->tcap = c->tcap ? c->tcap * 2 : 16;
        c->truncs = xrealloc(c->truncs, c->tcap * sizeof *c->truncs);
    }
    c->truncs[c->ntrunc++] = (cut){index, pos};
    /* marks of the dropped entries: set again when new ones are appended */
    size_t keep = (size_t)((index - 1 + CATCHUP_STRIDE - 1) / CATCHUP_STRIDE);
    if (c->nmarks > keep) c->nmarks = keep;
    pthread_mutex_unlock(&c->lock);
}

/* ---- requests (cluster thread) ---- */

/* The job for [lo, hi), or NULL when the index does not reach lo. Caller
 * holds the lock. */
static job *plan(catchup *c, uint64_t lo) {
    size_t k = (size_t)((lo - 1) / CATCHUP_STRIDE);
    if (k >= c->nmarks) return NULL;
    while (k > 0 && c->marks[k] == AOF_POS_NONE) k--;
    if (c->marks[k] == AOF_POS_NONE) return NULL;
    job *j = xcalloc(1, sizeof *j);
    j->start = c->marks[k];
    /* only a truncation after start can void a record the read meets */
    for (size_t i = 0; i < c->ntrunc; i++)
        if (c->truncs[i].pos > j->start) j->ntrunc++;
    j->truncs = xmalloc((j->ntrunc ? j->ntrunc : 1) * sizeof *j->truncs);
    for (size_t i = 0, n = 0; i < c->ntrunc; i++)
        if (c->truncs[i].pos > j->start) j->truncs[n++] = c->truncs[i];
    return j;
}

int catchup_request(catchup *c, int peer, uint64_t term, uint64_t from, uint64_t hi,
                    size_t max_bytes) {
    uint64_t lo = from > 1 ? from - 1 : 1;
    if (peer < 0 || peer >= 64 || hi <= lo) return -2;
    pthread_mutex_lock(&c->lock);
    if (!c->started || (c->busy & (1ull << peer))) {
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    job *j = plan(c, lo);
    if (j) {
        j->peer = peer;
        j->term = term;
        j->from = from;
        j->lo = lo;
        j->hi = hi;
        j->max_bytes = max_bytes;
        c->busy |= 1ull << peer;
        if (c->jobs_tail) c->jobs_tail->next = j;
        else c->jobs = j;
        c->jobs_tail = j;
        pthread_cond_signal(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    return j ? 0 : -2;
}

catchup_result *catchup_take(catchup *c) {
    pthread_mutex_lock(&c->lock);
    catchup_result *r = c->done;
    c->done = c->done_tail = NULL;
    pthread_mutex_unlock(&c->lock);
    return r;
}

void catchup_result_free(catchup_result *r) {
    if (!r) return;
    for (uint32_t i = 0; i < r->count; i++) free(r->ents[i]);
    free(r->ents);
    free(r);
}

/* ---- the reader thread ---- */

/* A record of the walk: its bytes and where it starts. */
typedef struct reader {
    aof *aof;
    int file;
    uint64_t base;      /* the file offset of buf[0] */
    char *buf;
    size_t len, pos, cap;
} reader;

/* Read more of the current file (or move to the next one). Returns 1
 * when bytes came, 0 at the end of what is written, -1 on an error
 * (in err). */
static int refill(reader *r, char *err, size_t errlen) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->base += r->pos;
    r->len -= r->pos;
    r->pos = 0;
    if (r->len == r->cap) { /* one record larger than the buffer */
        r->cap *= 2;
        r->buf = xrealloc(r->buf, r->cap);
    }
    long got = aof_read_at(r->aof, AOF_POS(r->file, r->base + r->len), r->buf + r->len,
                           r->cap - r->len);
    if (got < 0) {
        snprintf(err, errlen, "cannot read AOF file %d: %s", r->file, strerror(errno));
        return -1;
    }
    if (got > 0) {
        r->len += (size_t)got;
        return 1;
    }
    if (r->len || r->file + 1 >= aof_nfiles(r->aof)) return 0; /* a record being written */
    r->file++;
    r->base = 0;
    return refill(r, err, errlen);
}

/* A PIER.ENTRY record's index and term; 0 for any other record. */
static int entry_record(const cmd_arg *a, int argc, uint64_t *index, uint64_t *term) {
    unsigned long long i, t;
    if (argc < 7 || a[0].n != 10 || strncasecmp(a[0].p, "PIER.ENTRY", 10) != 0 ||
        !util_parse_ull(a[1].p, a[1].n, &i) || !util_parse_ull(a[2].p, a[2].n, &t))
        return 0;
    *index = i;
    *term = t;
    return 1;
}

/* Is the record of `index` at `at` still the log's (no truncation at or
 * below it came after it)? */
static int valid(const job *j, uint64_t index, aof_pos at) {
    for (size_t i = 0; i < j->ntrunc; i++)
        if (j->truncs[i].index <= index && j->truncs[i].pos > at) return 0;
    return 1;
}

/* Walk the AOF from j->start, collecting the entries lo, lo + 1, ... */
static void read_job(catchup *c, const job *j, catchup_result *res) {
    reader r = {.aof = c->aof, .file = AOF_POS_FILE(j->start), .base = AOF_POS_OFF(j->start),
                .cap = READ_CHUNK};
    r.buf = xmalloc(r.cap);
    res->ents = xcalloc((size_t)(j->hi - j->lo), sizeof *res->ents);
    uint64_t next = j->lo;
    size_t bytes = 0;
    while (next < j->hi && bytes < j->max_bytes) {
        cmd_arg a[3];
        int argc = 0;
        long n = resp_array_span(r.buf + r.pos, r.len - r.pos, a, 3, &argc);
        if (n < 0) {
            snprintf(res->err, sizeof res->err, "AOF file %d: malformed record at offset %llu",
                     r.file, (unsigned long long)(r.base + r.pos));
            break;
        }
        if (n == 0) {
            if (refill(&r, res->err, sizeof res->err) <= 0) break;
            continue;
        }
        aof_pos at = AOF_POS(r.file, r.base + r.pos);
        const char *rec = r.buf + r.pos;
        r.pos += (size_t)n;
        uint64_t index, term;
        if (!entry_record(a, argc, &index, &term) || index != next ||
            !valid(j, index, at))
            continue;
        res->ents[res->count++] = entry_new(index, term, rec, (size_t)n);
        next++;
        bytes += (size_t)n;
    }
    free(r.buf);
}

static void *reader_main(void *arg) {
    catchup *c = arg;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->stop && !c->jobs) pthread_cond_wait(&c->cond, &c->lock);
        if (c->stop) break;
        job *j = c->jobs;
        c->jobs = j->next;
        if (!c->jobs) c->jobs_tail = NULL;
        pthread_mutex_unlock(&c->lock);
        catchup_result *res = xcalloc(1, sizeof *res);
        res->peer = j->peer;
        res->term = j->term;
        res->from = j->from;
        res->lo = j->lo;
        read_job(c, j, res);
        pthread_mutex_lock(&c->lock);
        if (c->done_tail) c->done_tail->next = res;
        else c->done = res;
        c->done_tail = res;
        c->busy &= ~(1ull << j->peer);
        pthread_mutex_unlock(&c->lock);
        free(j->truncs);
        free(j);
        c->ready(c->ready_arg);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int catchup_start(catchup *c, aof *a, void (*ready)(void *arg), void *arg) {
    c->aof = a;
    c->ready = ready;
    c->ready_arg = arg;
    if (pthread_create(&c->tid, NULL, reader_main, c) != 0) return -1;
    pthread_mutex_lock(&c->lock);
    c->started = 1;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void catchup_destroy(catchup *c) {
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    int started = c->started;
    c->stop = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    if (started) pthread_join(c->tid, NULL);
    while (c->jobs) {
        job *j = c->jobs;
        c->jobs = j->next;
        free(j->truncs);
        free(j);
    }
    catchup_result *r = c->done;
    while (r) {
        catchup_result *next = r->next;
        catchup_result_free(r);
        r = next;
    }
    free(c->marks);
    free(c->truncs);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}
