/* log.h - leveled logging to stderr. Levels: silent, warning (warnings
 * only), normal, verbose; Redis's names (debug, verbose, notice, warning)
 * are accepted too. A verbose line costs one branch on an already-loaded
 * int when verbose is off, so hot paths may keep them. Fatal errors
 * (log_fatal) are printed at every level, silent included. */
#ifndef PIER_LOG_H
#define PIER_LOG_H

#include <pthread.h>
#include <stdint.h>

enum log_level { LOG_SILENT = 0, LOG_WARNING = 1, LOG_NORMAL = 2, LOG_VERBOSE = 3 };

/* The current level. Written at start-up and by CONFIG SET loglevel;
 * read with a relaxed load. */
extern int log_current_level;

void log_set_level(int level);

/* The names a level may be given by, Redis's first (debug, verbose,
 * notice, warning), then pier's (normal, silent, and Redis 7.2's
 * nothing): index -> name, NULL past the end. CONFIG GET loglevel shows
 * the name that was set. */
const char *log_level_spelling(int i);
/* Index of s (any case) in that list, or -1. */
int log_find_spelling(const char *s);
/* The level a spelling stands for (debug -> verbose, notice -> normal). */
int log_spelling_level(int i);
/* Parse any of those names. Returns the level or -1. */
int log_parse_level(const char *s);
const char *log_level_name(int level);

/* Where fatal errors also go when the log is not the terminal: the
 * original stderr (kept before a logfile replaced it) or a daemon's pipe
 * to its parent. -1 = only the log. */
void log_set_console_fd(int fd);

/* A fatal error: printed at every level (silent too), to the log and to
 * the console fd. The caller exits. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed unless silent (warnings and errors). */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed at normal and verbose. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only at verbose. */
#define log_verbose(...)                                                       \
    do {                                                                       \
        if (__builtin_expect(log_current_level >= LOG_VERBOSE, 0))             \
            log_info(__VA_ARGS__);                                             \
    } while (0)

/* --- rate-limited lines ---
 *
 * For every line that a peer or a failing system call can repeat in a
 * loop (accept errors, protocol errors, client kills, bad MACs, failed
 * AUTHs): at most `burst` lines per `interval_ms` for one log_ratelimit;
 * the lines over it are only counted, and the next line printed ends with
 * "(N similar lines suppressed)". A log_ratelimit is usually a static at
 * the call site:
 *
 *   static log_ratelimit rl = LOG_RATELIMIT_SYSCALL;
 *   log_warn_ratelimited(&rl, "accept: %s", strerror(errno));
 *
 * or a member of the struct whose lines it limits (log_ratelimit_init).
 * Any thread may use one; lines below the current level are not counted. */
typedef struct log_ratelimit {
    pthread_mutex_t lock;
    int64_t interval_ms;
    unsigned burst;
    int64_t window_ms;            /* start of the current window (monotonic) */
    unsigned printed;             /* lines printed in this window */
    unsigned long long suppressed; /* lines dropped since the last printed one */
} log_ratelimit;

#define LOG_RATELIMIT(interval_ms, burst) \
    { PTHREAD_MUTEX_INITIALIZER, (interval_ms), (burst), INT64_MIN, 0, 0 }
/* The usual limit for a line about one peer (a client closed, a protocol
 * error, a refused connection): 10 lines per 5 s, the kernel's printk
 * rate. A failing system call gets 1 per second. */
#define LOG_RATELIMIT_PEER LOG_RATELIMIT(5000, 10)
#define LOG_RATELIMIT_SYSCALL LOG_RATELIMIT(1000, 1)

void log_ratelimit_init(log_ratelimit *rl, int64_t interval_ms, unsigned burst);
void log_ratelimit_destroy(log_ratelimit *rl);

/* The decision alone, at monotonic time now_ms: 1 when a line may be
 * printed (*suppressed then gets the count of lines dropped before it,
 * and the count restarts), 0 when this one is dropped (and counted). */
int log_ratelimit_allow(log_ratelimit *rl, int64_t now_ms, unsigned long long *suppressed);

void log_warn_ratelimited(log_ratelimit *rl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_info_ratelimited(log_ratelimit *rl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define log_verbose_ratelimited(rl, ...)                                       \
    do {                                                                       \
        if (__builtin_expect(log_current_level >= LOG_VERBOSE, 0))             \
            log_info_ratelimited((rl), __VA_ARGS__);                           \
    } while (0)

#endif
