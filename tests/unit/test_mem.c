/* test_mem.c - src/lib/mem.h: the wrappers allocate and copy, and the
 * out-of-memory policy logs the size that failed and aborts (run in a
 * forked child, its stderr captured). */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "lib/mem.h"

/* Under ASan an impossible size must come back as NULL (as from glibc),
 * not end the test in the sanitizer's own report. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static void test_wrappers_allocate_and_copy(void) {
    char *p = xmalloc(0); /* one byte: never NULL */
    CHECK(p != NULL);
    free(p);
    int *z = xcalloc(16, sizeof *z);
    for (int i = 0; i < 16; i++) CHECK_EQ_LL(z[i], 0);
    z = xrealloc(z, 1024 * sizeof *z);
    CHECK_EQ_LL(z[15], 0); /* kept */
    free(z);
    char *d = xmemdup("ab\0cd", 5);
    CHECK(memcmp(d, "ab\0cd", 5) == 0);
    free(d);
    d = xmemdup(NULL, 0);
    CHECK(d != NULL);
    free(d);
    char *s = xstrndup("hello world", 5);
    CHECK(strcmp(s, "hello") == 0);
    free(s);
    s = xstrdup("pier");
    CHECK(strcmp(s, "pier") == 0);
    free(s);
}

/* Run fn in a child with stderr into a pipe: the child must die of
 * SIGABRT and print want. */
static void expect_oom(void (*fn)(void), const char *want) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        fn();
        _exit(0); /* not reached when the policy holds */
    }
    close(fds[1]);
    char buf[512];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(fds[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    if (!strstr(buf, want)) {
        fprintf(stderr, "  child printed: %s\n", buf);
        CHECK(strstr(buf, want) != NULL);
    }
}

static void huge_malloc(void) { free(xmalloc((size_t)1 << 62)); }
static void huge_realloc(void) { free(xrealloc(NULL, (size_t)1 << 62)); }
static void overflowing_calloc(void) { free(xcalloc(SIZE_MAX / 2, 4)); }

static void test_oom_logs_size_and_aborts(void) {
    expect_oom(huge_malloc, "Out of memory allocating 4611686018427387904 bytes");
    expect_oom(huge_realloc, "Out of memory allocating 4611686018427387904 bytes");
    /* n * size overflows: reported as SIZE_MAX, never a short block */
    expect_oom(overflowing_calloc, "Out of memory allocating 18446744073709551615 bytes");
}

int main(void) {
    RUN(test_wrappers_allocate_and_copy);
    RUN(test_oom_logs_size_and_aborts);
    return check_summary("mem");
}
