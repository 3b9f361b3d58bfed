/* log.c - leveled logging to stderr in Redis's line format:
 *
 *   1234:M 05 Mar 2024 10:21:07.123 * Ready to accept connections
 *
 * '#' marks warnings, '*' informational lines. Each line is emitted with a
 * single write(2) so lines from different threads never interleave. */
#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The one global the header declares: read on every log call. */
int log_current_level = LOG_NORMAL;

void log_set_level(int level) {
    if (level < LOG_SILENT)
        level = LOG_SILENT;
    if (level > LOG_VERBOSE)
        level = LOG_VERBOSE;
    __atomic_store_n(&log_current_level, level, __ATOMIC_RELAXED);
}

static int level_now(void) {
    return __atomic_load_n(&log_current_level, __ATOMIC_RELAXED);
}

/* Redis 7.0's names in its order (its error text lists them so), then
 * pier's. */
static const struct {
    const char *name;
    int level;
} spellings[] = {
    {"debug", LOG_VERBOSE},  {"verbose", LOG_VERBOSE}, {"notice", LOG_NORMAL},
    {"warning", LOG_WARNING}, {"normal", LOG_NORMAL},  {"silent", LOG_SILENT},
    {"nothing", LOG_SILENT},
};
#define NSPELLINGS (sizeof(spellings) / sizeof(spellings[0]))

const char *log_level_spelling(int i) {
    return i >= 0 && (size_t)i < NSPELLINGS ? spellings[i].name : NULL;
}

int log_find_spelling(const char *s) {
    for (size_t i = 0; s != NULL && i < NSPELLINGS; i++)
        if (strcasecmp(s, spellings[i].name) == 0)
            return (int)i;
    return -1;
}

int log_spelling_level(int i) {
    return i >= 0 && (size_t)i < NSPELLINGS ? spellings[i].level : -1;
}

int log_parse_level(const char *s) {
    return log_spelling_level(log_find_spelling(s));
}

const char *log_level_name(int level) {
    switch (level) {
    case LOG_SILENT:
        return "silent";
    case LOG_WARNING:
        return "warning";
    case LOG_NORMAL:
        return "normal";
    case LOG_VERBOSE:
        return "verbose";
    default:
        return "unknown";
    }
}

/* The console for fatal errors (log_set_console_fd); written at start-up
 * and when a daemon becomes ready, read by log_fatal. */
static int console_fd = -1;

void log_set_console_fd(int fd) {
    __atomic_store_n(&console_fd, fd, __ATOMIC_RELAXED);
}

/* Writes all n bytes to fd, retrying on EINTR and short writes. A
 * logging failure has nowhere to be reported, so it is dropped. */
static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Formats "pid:T DD Mon YYYY HH:MM:SS.mmm X " into buf (size >= 64).
 * The tag is 'M' on the main thread (tid == pid), 'T' on any other.
 * Returns the prefix length. */
static size_t format_prefix(char *buf, size_t size, char mark) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    time_t secs = tv.tv_sec;
    localtime_r(&secs, &tm);
    char date[32];
    size_t dlen = strftime(date, sizeof(date), "%d %b %Y %H:%M:%S", &tm);
    date[dlen] = '\0';
    pid_t pid = getpid();
    char tag = gettid() == pid ? 'M' : 'T';
    int n = snprintf(buf, size, "%d:%c %s.%03d %c ", (int)pid, tag, date,
                     (int)(tv.tv_usec / 1000), mark);
    return n > 0 ? ((size_t)n < size ? (size_t)n : size - 1) : 0;
}

/* Writes one line to stderr and, for a fatal error, to the console too
 * (unless that is stderr itself). */
static void emit(const char *p, size_t n, int fatal) {
    write_all(STDERR_FILENO, p, n);
    int con = fatal ? __atomic_load_n(&console_fd, __ATOMIC_RELAXED) : -1;
    if (con >= 0 && con != STDERR_FILENO)
        write_all(con, p, n);
}

/* Formats one line and writes it with one write(2). Lines longer than the
 * stack buffer are formatted on the heap rather than truncated. errno is
 * preserved so callers can log and then inspect it. */
static void log_line(char mark, int fatal, const char *fmt, va_list ap) {
    int saved_errno = errno;
    char stack[1024];
    size_t prefix = format_prefix(stack, sizeof(stack), mark);

    va_list ap2;
    va_copy(ap2, ap);
    int msg = vsnprintf(stack + prefix, sizeof(stack) - prefix, fmt, ap);
    if (msg < 0)
        msg = 0;
    size_t total = prefix + (size_t)msg + 1; /* + '\n' */
    if (total < sizeof(stack)) {
        stack[total - 1] = '\n';
        emit(stack, total, fatal);
    } else {
        char *heap = malloc(total + 1);
        if (heap != NULL) {
            memcpy(heap, stack, prefix);
            vsnprintf(heap + prefix, total - prefix, fmt, ap2);
            heap[total - 1] = '\n';
            emit(heap, total, fatal);
            free(heap);
        } else {
            /* Out of memory: the truncated line is better than nothing. */
            stack[sizeof(stack) - 1] = '\n';
            emit(stack, sizeof(stack), fatal);
        }
    }
    va_end(ap2);
    errno = saved_errno;
}

void log_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line('#', 1, fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...) {
    if (level_now() < LOG_WARNING)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line('#', 0, fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...) {
    if (level_now() < LOG_NORMAL)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line('*', 0, fmt, ap);
    va_end(ap);
}

/* --- rate-limited lines --- */

void log_ratelimit_init(log_ratelimit *rl, int64_t interval_ms, unsigned burst) {
    pthread_mutex_init(&rl->lock, NULL);
    rl->interval_ms = interval_ms;
    rl->burst = burst;
    rl->window_ms = INT64_MIN;
    rl->printed = 0;
    rl->suppressed = 0;
}

void log_ratelimit_destroy(log_ratelimit *rl) { pthread_mutex_destroy(&rl->lock); }

int log_ratelimit_allow(log_ratelimit *rl, int64_t now_ms, unsigned long long *suppressed) {
    pthread_mutex_lock(&rl->lock);
    if (rl->window_ms == INT64_MIN || now_ms - rl->window_ms >= rl->interval_ms) {
        rl->window_ms = now_ms;
        rl->printed = 0;
    }
    int ok = rl->printed < rl->burst;
    if (ok) {
        rl->printed++;
        *suppressed = rl->suppressed;
        rl->suppressed = 0;
    } else {
        rl->suppressed++;
    }
    pthread_mutex_unlock(&rl->lock);
    return ok;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_linef(char mark, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_linef(char mark, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line(mark, 0, fmt, ap);
    va_end(ap);
}

/* Prints the line with the suppressed count appended, when there is one.
 * A rate-limited line longer than the buffer is cut (they are short). */
static void log_ratelimited(log_ratelimit *rl, char mark, const char *fmt, va_list ap) {
    unsigned long long dropped = 0;
    if (!log_ratelimit_allow(rl, mono_ms(), &dropped)) return;
    if (!dropped) {
        log_line(mark, 0, fmt, ap);
        return;
    }
    int saved_errno = errno;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    errno = saved_errno;
    log_linef(mark, "%s (%llu similar line%s suppressed)", msg, dropped, dropped == 1 ? "" : "s");
}

void log_warn_ratelimited(log_ratelimit *rl, const char *fmt, ...) {
    if (level_now() < LOG_WARNING)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_ratelimited(rl, '#', fmt, ap);
    va_end(ap);
}

void log_info_ratelimited(log_ratelimit *rl, const char *fmt, ...) {
    if (level_now() < LOG_NORMAL)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_ratelimited(rl, '*', fmt, ap);
    va_end(ap);
}
