/* test_log.c - rate-limited log lines (log_ratelimit). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lib/log.h"

static void test_allow_burst_then_window(void) {
    log_ratelimit rl = LOG_RATELIMIT(1000, 2);
    unsigned long long dropped = 99;
    CHECK(log_ratelimit_allow(&rl, 5000, &dropped) && dropped == 0);
    CHECK(log_ratelimit_allow(&rl, 5001, &dropped) && dropped == 0);
    for (int i = 0; i < 10; i++) CHECK(!log_ratelimit_allow(&rl, 5500 + i, &dropped));
    CHECK(!log_ratelimit_allow(&rl, 5999, &dropped));
    /* a new window: the first line reports the 11 dropped, the next none */
    CHECK(log_ratelimit_allow(&rl, 6000, &dropped) && dropped == 11);
    CHECK(log_ratelimit_allow(&rl, 6001, &dropped) && dropped == 0);
    CHECK(!log_ratelimit_allow(&rl, 6002, &dropped));
    CHECK(log_ratelimit_allow(&rl, 9000, &dropped) && dropped == 1);
}

static void test_first_line_at_any_time(void) {
    /* monotonic time may be small or negative relative to the sentinel */
    log_ratelimit rl;
    log_ratelimit_init(&rl, 100, 1);
    unsigned long long dropped;
    CHECK(log_ratelimit_allow(&rl, 0, &dropped) && dropped == 0);
    CHECK(!log_ratelimit_allow(&rl, 99, &dropped));
    CHECK(log_ratelimit_allow(&rl, 100, &dropped) && dropped == 1);
    log_ratelimit_destroy(&rl);
}

/* Run fn with stderr captured into buf; returns the bytes captured. */
static size_t capture_stderr(void (*fn)(void), char *buf, size_t cap) {
    char path[] = "/tmp/pier-test-log-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, buf, cap - 1, 0);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return n > 0 ? (size_t)n : 0;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static log_ratelimit flood_rl = LOG_RATELIMIT(60000, 3);

static void flood(void) {
    for (int i = 0; i < 100000; i++) log_warn_ratelimited(&flood_rl, "accept: %s %d", "Too many open files", i);
}

static void test_flood_prints_burst_only(void) {
    static char buf[8192];
    capture_stderr(flood, buf, sizeof buf);
    CHECK_EQ_LL(count_lines(buf), 3);
    CHECK(strstr(buf, "# accept: Too many open files 0\n") != NULL);
    CHECK(strstr(buf, "# accept: Too many open files 2\n") != NULL);
    CHECK(strstr(buf, "suppressed") == NULL);
}

static void report_after_window(void) {
    /* a window of 0 ms: every line is printed, with the count dropped before */
    flood_rl.interval_ms = 0;
    log_info_ratelimited(&flood_rl, "next %d", 7);
    log_info_ratelimited(&flood_rl, "next %d", 8);
}

static void test_suppressed_count_reported(void) {
    static char buf[8192];
    capture_stderr(report_after_window, buf, sizeof buf);
    CHECK_EQ_LL(count_lines(buf), 2);
    CHECK(strstr(buf, "* next 7 (99997 similar lines suppressed)\n") != NULL);
    CHECK(strstr(buf, "* next 8\n") != NULL);
}

static void silent_lines(void) {
    log_ratelimit rl = LOG_RATELIMIT(60000, 1);
    log_set_level(LOG_SILENT);
    log_warn_ratelimited(&rl, "not printed");
    log_set_level(LOG_NORMAL);
    log_warn_ratelimited(&rl, "printed");
    log_verbose_ratelimited(&rl, "verbose only");
    log_warn_ratelimited(&rl, "dropped");
}

static void test_level_checked_first(void) {
    static char buf[4096];
    capture_stderr(silent_lines, buf, sizeof buf);
    CHECK_EQ_LL(count_lines(buf), 1);
    CHECK(strstr(buf, "# printed\n") != NULL);
}

int main(void) {
    RUN(test_allow_burst_then_window);
    RUN(test_first_line_at_any_time);
    RUN(test_flood_prints_burst_only);
    RUN(test_suppressed_count_reported);
    RUN(test_level_checked_first);
    return check_summary("log");
}
