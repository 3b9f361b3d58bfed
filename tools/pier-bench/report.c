/* report.c - the output of every pier-bench mode (bench.h).
 *
 * A mode describes its run as records: the parameters (every option that
 * shapes the run, defaults included), the results of the whole run, and,
 * with --interval, one record per interval with the same keys as the
 * results. The formats:
 *   text  the mode's own summary; interval lines "[  1.0 s] key=value ..."
 *   JSON  one object: "mode", the results' fields, the mode's extra
 *         members, "params": {...}, "series": [{"t_s": ..., ...}, ...]
 *   CSV   a header "mode,row,t_s,params.<key>...,<results>", one row per
 *         interval (row = interval, printed as it ends) and a total row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* ---- records ---- */

static rfield *rec_add(record *r, const char *key) {
    if (r->n == REC_MAX) fail("internal: record full at '%s'", key);
    rfield *f = &r->f[r->n++];
    *f = (rfield){.key = key, .type = RV_NULL};
    return f;
}

void rec_int(record *r, const char *key, long long v) {
    rfield *f = rec_add(r, key);
    f->type = RV_INT;
    f->i = v;
}

void rec_num(record *r, const char *key, double v, int prec) {
    rfield *f = rec_add(r, key);
    f->type = RV_NUM;
    f->d = v;
    f->prec = prec;
}

void rec_str(record *r, const char *key, const char *v) {
    rfield *f = rec_add(r, key);
    f->type = v ? RV_STR : RV_NULL;
    f->s = v;
}

void rec_bool(record *r, const char *key, int v) {
    rfield *f = rec_add(r, key);
    f->type = RV_BOOL;
    f->i = !!v;
}

void rec_null(record *r, const char *key) { rec_add(r, key); }

const rfield *rec_get(const record *r, const char *key) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->f[i].key, key)) return &r->f[i];
    return NULL;
}

/* Keys live as long as the program: one static string per prefix+name. */
static const char *prefixed(const char *prefix, const char *name) {
    static struct {
        char *key;
    } keys[64];
    static int nkeys;
    char buf[64];
    snprintf(buf, sizeof buf, "%s%s", prefix, name);
    for (int i = 0; i < nkeys; i++)
        if (!strcmp(keys[i].key, buf)) return keys[i].key;
    if (nkeys == 64) fail("internal: too many keys");
    keys[nkeys].key = xmalloc(strlen(buf) + 1);
    strcpy(keys[nkeys].key, buf);
    return keys[nkeys++].key;
}

void rec_latency(record *r, const char *prefix, const histogram *h) {
    static const char *const names[] = {"avg_us", "p50_us", "p95_us", "p99_us", "p999_us",
                                        "max_us"};
    double v[6] = {hist_mean(h), (double)hist_percentile(h, 50), (double)hist_percentile(h, 95),
                   (double)hist_percentile(h, 99), (double)hist_percentile(h, 99.9),
                   (double)h->max};
    for (int i = 0; i < 6; i++) {
        if (h->count) rec_num(r, prefixed(prefix, names[i]), v[i] / 1e3, 1);
        else rec_null(r, prefixed(prefix, names[i]));
    }
}

/* ---- value printing ---- */

void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void json_value(const rfield *f) {
    switch (f->type) {
    case RV_NULL: printf("null"); break;
    case RV_INT: printf("%lld", f->i); break;
    case RV_NUM: printf("%.*f", f->prec, f->d); break;
    case RV_STR: json_string(f->s); break;
    case RV_BOOL: printf(f->i ? "true" : "false"); break;
    }
}

static void json_members(const record *r, bool first) {
    for (int i = 0; i < r->n; i++) {
        printf("%s\"%s\":", first && i == 0 ? "" : ",", r->f[i].key);
        json_value(&r->f[i]);
    }
}

/* CSV: numbers as is, strings quoted when they hold a comma or quote,
 * null as an empty cell. */
static void csv_value(const rfield *f) {
    switch (f->type) {
    case RV_NULL: break;
    case RV_INT: printf("%lld", f->i); break;
    case RV_NUM: printf("%.*f", f->prec, f->d); break;
    case RV_BOOL: printf(f->i ? "true" : "false"); break;
    case RV_STR:
        if (!strpbrk(f->s, ",\"\n")) {
            printf("%s", f->s);
            break;
        }
        putchar('"');
        for (const char *p = f->s; *p; p++) {
            if (*p == '"') putchar('"');
            putchar(*p);
        }
        putchar('"');
        break;
    }
}

static void text_value(const rfield *f) {
    if (f->type == RV_STR) printf("%s", f->s);
    else csv_value(f);
}

/* ---- the report ---- */

void report_init(report *rp, const bench_common *c) { *rp = (report){.c = c}; }

void report_free(report *rp) { free(rp->series); }

static void csv_header(report *rp, const record *results) {
    printf("mode,row,t_s");
    for (int i = 0; i < rp->params.n; i++) printf(",params.%s", rp->params.f[i].key);
    for (int i = 0; i < results->n; i++) printf(",%s", results->f[i].key);
    printf("\n");
    rp->csv_header_done = true;
}

static void csv_row(report *rp, const char *row, double t, const record *results) {
    printf("%s,%s,%.3f", rp->c->mode, row, t);
    for (int i = 0; i < rp->params.n; i++) {
        putchar(',');
        csv_value(&rp->params.f[i]);
    }
    for (int i = 0; i < results->n; i++) {
        putchar(',');
        csv_value(&results->f[i]);
    }
    printf("\n");
    fflush(stdout);
}

void report_begin(report *rp, const record *proto) {
    if (rp->c->csv && rp->c->interval_s > 0) csv_header(rp, proto);
}

void report_interval(report *rp, double t, const record *iv) {
    if (rp->c->csv) {
        csv_row(rp, "interval", t, iv);
    } else if (rp->c->json) {
        if (rp->nseries == rp->cap) {
            rp->cap = rp->cap ? rp->cap * 2 : 64;
            rp->series = xrealloc(rp->series, rp->cap * sizeof *rp->series);
        }
        record *r = &rp->series[rp->nseries++];
        *r = (record){0};
        rec_num(r, "t_s", t, 3);
        for (int i = 0; i < iv->n && r->n < REC_MAX; i++) r->f[r->n++] = iv->f[i];
    } else {
        printf("[%8.2f s]", t);
        for (int i = 0; i < iv->n; i++) {
            if (iv->f[i].type == RV_NULL) continue; /* not measured per interval */
            printf(" %s=", iv->f[i].key);
            text_value(&iv->f[i]);
        }
        printf("\n");
        fflush(stdout);
    }
    rp->last_t = t;
}

void report_csv_total(report *rp, double t, const record *total) {
    if (!rp->csv_header_done) csv_header(rp, total);
    csv_row(rp, "total", t, total);
}

void report_json_begin(report *rp, const record *total) {
    printf("{\"mode\":\"%s\"", rp->c->mode);
    json_members(total, false);
}

void report_json_end(report *rp) {
    printf(",\"params\":{");
    json_members(&rp->params, true);
    printf("},\"series\":[");
    for (size_t i = 0; i < rp->nseries; i++) {
        printf("%s{", i ? "," : "");
        json_members(&rp->series[i], true);
        printf("}");
    }
    printf("]}\n");
}

/* ---- the waiting loop ---- */

void progress_line(int second, uint64_t done, uint64_t *last) {
    fprintf(stderr, "[%3ds] %llu ops/s, %llu done\n", second, (unsigned long long)(done - *last),
            (unsigned long long)done);
    *last = done;
}

void report_wait(report *rp, uint64_t t0, const run_hooks *h) {
    const bench_common *c = rp->c;
    bool progress = h->progress && !c->quiet && !c->json && !c->csv && c->interval_s <= 0;
    uint64_t iv_ns = (uint64_t)(c->interval_s * 1e9);
    uint64_t next_progress = t0 + 1000000000ull, next_iv = t0 + iv_ns;
    int second = 0;
    for (;;) {
        uint64_t now = now_ns();
        bool done = h->finished(h->arg, (double)(now - t0) / 1e9);
        if (progress && now >= next_progress) {
            h->progress(h->arg, ++second);
            next_progress += 1000000000ull;
        }
        double t = (double)(now - t0) / 1e9;
        /* the last interval is shorter: the series adds up to the run */
        if (iv_ns && (now >= next_iv || (done && t > rp->last_t))) {
            record iv = {0};
            h->sample(h->arg, &iv, t - rp->last_t);
            report_interval(rp, t, &iv);
            while (next_iv <= now) next_iv += iv_ns;
        }
        if (done) return;
        usleep(5000);
    }
}
