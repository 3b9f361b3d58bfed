/* bench.h - pier-bench, the load generator of pier (tools/pier-bench/):
 * the pieces every mode shares.
 *
 *   main.c     the modes and the top-level --help
 *   common.c   time, errors, random numbers, CPU accounting, RESP request
 *              templates and reply parsing, option value parsing
 *   report.c   the output of every mode: the run's parameters and results
 *              as text, one JSON object (--json) or CSV (--csv), and the
 *              time series (--interval)
 *   kv.c       closed-loop GET/SET over RESP
 *   log.c      the batch protocol through libpier: publish, e2e, latency
 *              (log.h; logkill.c: --kill-leader-at; logcheck.c: --verify)
 *   cluster.c  the hybrid strong/weak benchmark of a pier cluster
 *
 * One meaning per flag in every mode: -n requests (messages in log), -c
 * clients, -d payload bytes, --threads client threads, --nodes the
 * servers, -q quiet; sizes take the server's units (1kb = 1024, 1k =
 * 1000: util_parse_memory). */
#ifndef PIER_BENCH_H
#define PIER_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/histogram.h"

/* ---- common.c ---- */

uint64_t now_ns(void);
/* Print "pier-bench: <message>" to stderr and exit 2 (bad usage). */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "pier-bench: <message>" to stderr and exit 1 (the run failed). */
_Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
uint64_t xorshift(uint64_t *s);
double unit_rand(uint64_t *rng); /* uniform in [0, 1) */
/* utime + stime of pid in microseconds, -1 if unreadable. */
long long proc_cpu_us(int pid);
long long self_cpu_us(void);

/* Requests are copied from two templates built once, with the 12 key
 * digits written in place: no formatting per request, so the load
 * generator stays cheaper than the server it measures. */
#define KEY_DIGITS 12
typedef struct templates {
    char *set, *get;
    size_t set_len, get_len;
    size_t set_key_at, get_key_at; /* offset of the first key digit */
} templates;
extern templates tpl;
void build_templates(int value_size);
void free_templates(void);
void write_digits(char *dst, unsigned long long k);
size_t max_request_len(void);
/* Length of one complete RESP reply at p, 0 if incomplete, -1 if
 * malformed; *is_err set for error replies. */
long parse_reply(const char *p, const char *end, int *is_err);
/* A blocking TCP connection with TCP_NODELAY, or -1 (errno set). */
int tcp_connect(const char *host, int port);
/* Send one command (argc arguments, C strings) on a blocking connection
 * and read its whole reply, NUL-terminated (malloc'd; the caller frees),
 * or NULL on an I/O error or after 10 s. */
char *resp_command(int fd, int argc, const char *const *argv);
/* Split "host:port" into host (cap bytes) and *port; 0 or -1. */
int split_hostport(const char *s, char *host, size_t cap, int *port);

/* One thread's measurements of the current --interval: the thread adds
 * under lock, the main thread takes them (ival_take) once an interval. */
typedef struct ival {
    pthread_mutex_t lock;
    histogram h;
    uint64_t errors;
} ival;
void ival_init(ival *v);
void ival_destroy(ival *v);
/* Merge v's measurements into *acc and *errors, and reset v. */
void ival_take(ival *v, histogram *acc, uint64_t *errors);

/* A server of --nodes. */
#define MAX_NODES 16
typedef struct bnode {
    char host[256];
    int port;
    char addr[272];      /* "host:port" */
} bnode;
/* Parse "host:port,host:port,..." (commas or spaces) into out (at most
 * MAX_NODES). Returns the count; exits with a message naming opt when the
 * list is empty or an item is not host:port. */
int parse_nodes(const char *opt, const char *list, bnode *out);
/* The list again as "host:port,..." into buf (cap bytes). */
void nodes_string(const bnode *nodes, int n, char *buf, size_t cap);

/* Option values: each exits (die) with a message naming the option when
 * the value is not what it takes. */
long long opt_int(const char *name, const char *v, long long min, long long max);
double opt_num(const char *name, const char *v, double min, double max);
/* A size with the server's units: "64", "4kb" (4096), "4k" (4000), "1gb". */
long long opt_size(const char *name, const char *v, long long min, long long max);
int opt_enum(const char *name, const char *v, const char *const *names, int n);

/* The options every mode takes (report.c reads them). */
typedef struct bench_common {
    const char *mode;    /* "kv", "log", "cluster" */
    int json, csv, quiet;
    double interval_s;   /* --interval: a time series line every this many seconds (0: off) */
} bench_common;

/* getopt_long codes of the common long options, and the table rows to
 * append to a mode's own options. */
enum { OPT_JSON = 1001, OPT_CSV, OPT_INTERVAL, OPT_HELP };
#define COMMON_LONGOPTS                                                                  \
    {"json", no_argument, 0, OPT_JSON}, {"csv", no_argument, 0, OPT_CSV},              \
        {"interval", required_argument, 0, OPT_INTERVAL}, {"help", no_argument, 0, OPT_HELP}, \
        {"quiet", no_argument, 0, 'q'}
/* The help lines of the common options. */
#define COMMON_USAGE                                                                     \
    "  --json              one JSON object: parameters, results, series\n"             \
    "  --csv               CSV: a header, a row per interval, a total row\n"           \
    "  --interval s        a time series: one line (JSON/CSV: entry/row) per s\n"      \
    "                      seconds, e.g. --interval 1\n"                               \
    "  -q, --quiet         no progress lines\n"                                        \
    "  --help              this text\n"
/* Handle a common option (ch from getopt_long). Returns 1 if it was one;
 * --help calls usage and exits 0. */
int common_option(bench_common *c, int ch, const char *arg, void (*usage)(void));
/* After parsing: --json and --csv together is an error. */
void common_check(const bench_common *c);

/* ---- report.c ---- */

/* A flat list of named values: the parameters of a run, its results, or
 * one interval of its time series. Keys and string values are not
 * copied: they must outlive the record. */
#define REC_MAX 64
typedef struct rfield {
    const char *key;
    enum { RV_NULL, RV_INT, RV_NUM, RV_STR, RV_BOOL } type;
    long long i;
    double d;
    int prec;
    const char *s;
} rfield;
typedef struct record {
    int n;
    rfield f[REC_MAX];
} record;

void rec_int(record *r, const char *key, long long v);
void rec_num(record *r, const char *key, double v, int prec);
void rec_str(record *r, const char *key, const char *v); /* NULL: null */
void rec_bool(record *r, const char *key, int v);
void rec_null(record *r, const char *key);
/* The value of key, NULL when absent. */
const rfield *rec_get(const record *r, const char *key);

/* Summary of a latency histogram (nanoseconds) into r, in microseconds:
 * <prefix>avg_us, p50, p95, p99, p999, max (null when empty). */
void rec_latency(record *r, const char *prefix, const histogram *h);

typedef struct report {
    const bench_common *c;
    record params;             /* filled by the mode before report_begin */
    record *series;            /* --interval entries, kept for JSON */
    size_t nseries, cap;
    bool csv_header_done;
    double last_t;             /* end of the last interval (s) */
} report;

void report_init(report *rp, const bench_common *c);
void report_free(report *rp);
/* The run starts: with --csv --interval, the header is printed now, its
 * result columns from proto (a results record of the mode, any values). */
void report_begin(report *rp, const record *proto);
/* One interval of the time series, ending t seconds after the start:
 * text: a line on stdout; CSV: a row; JSON: kept for report_json_end. */
void report_interval(report *rp, double t, const record *iv);
/* CSV: the total row (and the header if not printed yet). */
void report_csv_total(report *rp, double t, const record *total);
/* JSON: '{"mode":...' and the fields of total; the mode may then print
 * more members (each starting with ','); report_json_end prints the
 * parameters and the series and closes the object. */
void report_json_begin(report *rp, const record *total);
void report_json_end(report *rp);
/* A JSON string (quoted, escaped) on stdout. */
void json_string(const char *s);

/* The progress line of second `second`: "[  3s] <ops/s>, <done> done" on
 * stderr from the running count done (*last: the count a second ago). */
void progress_line(int second, uint64_t done, uint64_t *last);

/* The waiting loop of a run (main thread): polls finished() until it
 * returns true, calling progress() once a second (unless quiet, JSON or
 * CSV, or with --interval) and, with --interval, sample() for each
 * interval (and the last, shorter one) into report_interval. */
typedef struct run_hooks {
    bool (*finished)(void *arg, double elapsed_s);
    void (*progress)(void *arg, int second);  /* may be NULL */
    void (*sample)(void *arg, record *iv, double interval_s);
    void *arg;
} run_hooks;
void report_wait(report *rp, uint64_t t0, const run_hooks *h);

/* ---- the modes ---- */

int run_kv(int argc, char **argv);
int run_log(int argc, char **argv);
int run_cluster(int argc, char **argv);

#endif
