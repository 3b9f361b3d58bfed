/* restart.c - a node restarting itself in place: cluster mode's deposed
 * leader whose keyspace holds writes the new leader discarded rebuilds it
 * from its AOF by executing its own binary again (same pid).
 *
 * The new image gets the whole configuration of the old one, not its
 * start-up command line: every option's current value (runtime CONFIG SET
 * changes included), the secrets (requirepass, the cluster secret), the
 * rename-command lines and the cluster key (config_dump). Secrets were
 * wiped from argv at start-up and must not appear in ps or in the
 * environment, so the dump travels in a memfd: the command line is the
 * old one (secrets still wiped) plus "--restart-fd N", and the new image
 * reads fd N and closes it before anything else (config_from_args), so
 * the bytes exist only between the exec and that read, readable like the
 * process's own memory (/proc/PID/fd, same user or root). */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/mem.h"

/* Every fd but stdin/out/err closes on exec: listeners, the AOF, the bus. */
static void close_on_exec_all(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        int fd = atoi(de->d_name);
        if (fd > 2) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    closedir(d);
}

/* The configuration in a memfd positioned at 0, or -1. */
static int dump_to_memfd(const pier_config *cfg) {
    size_t len;
    char *dump = config_dump(cfg, &len);
    int fd = memfd_create("pier-restart-config", MFD_CLOEXEC);
    size_t done = 0;
    while (fd >= 0 && done < len) {
        ssize_t w = write(fd, dump + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            fd = -1;
            break;
        }
        done += (size_t)w;
    }
    explicit_bzero(dump, len);
    free(dump);
    if (fd >= 0 && lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The old command line without a previous "--restart-fd N", then
 * "--restart-fd <fd>". NULL-terminated; malloc'd array of borrowed
 * strings (fdstr is the caller's). */
static char **restart_argv(char **argv, const char *fdstr) {
    int argc = 0;
    while (argv[argc]) argc++;
    if (argc >= 3 && !strcmp(argv[argc - 2], CONFIG_RESTART_FLAG)) argc -= 2;
    char **out = xcalloc((size_t)argc + 3, sizeof *out);
    memcpy(out, argv, (size_t)argc * sizeof *out);
    out[argc] = (char *)CONFIG_RESTART_FLAG;
    out[argc + 1] = (char *)fdstr;
    return out;
}

void server_restart_exec(const pier_config *cfg) {
    extern char **environ;
    close_on_exec_all();
    int fd = dump_to_memfd(cfg);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (fd >= 0 && n > 0 && cfg->argv && fcntl(fd, F_SETFD, 0) == 0) {
        exe[n] = 0;
        char fdstr[16];
        snprintf(fdstr, sizeof fdstr, "%d", fd);
        char **argv = restart_argv(cfg->argv, fdstr);
        log_warn("restarting in place (%s, configuration handed over on fd %d)", exe, fd);
        execve(exe, argv, environ);
        free(argv);
    }
    log_warn("restart failed (%s); exiting", strerror(errno));
    _exit(1);
}
