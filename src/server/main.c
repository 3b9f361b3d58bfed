/* main.c - pier-server entry point: parse configuration, set up the log,
 * daemonize when asked, run, exit.
 *
 * Fatal start-up errors always reach the terminal, whatever the log level
 * and wherever the log goes: log_fatal writes them to the log and to the
 * console fd (the stderr the server was started with, or, for a daemon,
 * a pipe the waiting parent copies to its stderr). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/mem.h"
#include "server.h"

/* 1 when fds a and b are the same open file (a restarted cluster node
 * inherits a stderr that already is the logfile). */
static int same_file(int a, int b) {
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* logfile: append the log there (stderr becomes the file); the original
 * stderr stays the console for fatal errors (*console, -1 when stderr
 * already is the log). Returns 0, or -1 after printing why on stderr. */
static int open_log(const pier_config *cfg, int *console) {
    *console = -1;
    log_set_level(CFG_GET(cfg->loglevel));
    if (!cfg->logfile[0]) return 0;
    int fd = open(cfg->logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "pier-server: cannot open logfile '%s': %s\n", cfg->logfile,
                strerror(errno));
        return -1;
    }
    *console = same_file(fd, STDERR_FILENO) ? -1 : fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    dup2(fd, STDERR_FILENO);
    close(fd);
    log_set_console_fd(*console);
    return 0;
}

/* Point stdin, stdout (and without a logfile stderr) at /dev/null. */
static void detach_stdio(int keep_stderr) {
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    if (!keep_stderr) dup2(fd, STDERR_FILENO);
    close(fd);
}

/* daemonize yes: fork before anything else starts (no thread runs yet).
 * The parent waits on a pipe: it copies what comes (the child's fatal
 * errors) to the terminal (console, or stderr when there is no logfile)
 * and exits 0 when the child reports ready (one ACK byte, server_run), 1
 * when the pipe closes without it. The child lets go of the terminal and
 * returns the pipe's write end (its console now), or -1 after a failed
 * fork. */
static int daemonize(const pier_config *cfg, int console) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        log_fatal("cannot daemonize: pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_fatal("cannot daemonize: fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        close(pipefd[1]);
        char buf[4096];
        ssize_t n;
        int ready = 0;
        while ((n = read(pipefd[0], buf, sizeof buf)) != 0) {
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) break;
            ready = buf[n - 1] == SERVER_READY_BYTE;
            if (write(console >= 0 ? console : STDERR_FILENO, buf, (size_t)n - (size_t)ready) < 0)
                break;
        }
        _exit(ready ? 0 : 1);
    }
    close(pipefd[0]);
    if (console >= 0) close(console);
    setsid();
    detach_stdio(cfg->logfile[0] != 0);
    log_set_console_fd(pipefd[1]);
    return pipefd[1];
}

/* Exit before the server was initialized. */
static int quit_early(server *srv, int rc) {
    config_free(&srv->cfg);
    free(srv);
    return rc;
}

int main(int argc, char **argv) {
    /* The server struct is large (config strings); keep it off the stack. */
    server *srv = xcalloc(1, sizeof *srv);
    srv->ready_fd = -1;
    config_defaults(&srv->cfg);
    srv->cfg.argv = argv; /* a cluster node may restart itself with it */
    int rc = config_from_args(&srv->cfg, argc, argv);
    if (rc) return quit_early(srv, rc == 1 ? 0 : rc); /* 1: --help/--version done */
    int console;
    if (open_log(&srv->cfg, &console) < 0) return quit_early(srv, 2);
    if (CFG_GET(srv->cfg.daemonize) && (srv->ready_fd = daemonize(&srv->cfg, console)) < 0)
        return quit_early(srv, 1);
    config_log_warnings(&srv->cfg);
    if (server_init(srv) < 0) {
        server_free(srv);
        free(srv);
        return 1;
    }
    rc = server_run(srv);
    server_free(srv);
    free(srv);
    return rc;
}
