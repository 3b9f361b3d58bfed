/* fileio.c - file helpers for the persistence code. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int pio_write_all(int fd, const void *p, size_t n) {
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) { /* a full device reports ENOSPC; treat 0 the same way */
            errno = ENOSPC;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int pio_fsync_dir(const char *path) {
    int fd = open(path[0] ? path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int pio_commit_file(int fd, const char *tmp, const char *final) {
    if (fsync(fd) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (close(fd) < 0) return -1;
    if (rename(tmp, final) < 0) return -1;
    char dir[4096];
    pio_dirname(dir, sizeof dir, final);
    return pio_fsync_dir(dir);
}

int pio_map_file(const char *path, const unsigned char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (m == MAP_FAILED) {
        errno = saved;
        return -1;
    }
    *data = m;
    *len = (size_t)st.st_size;
    return 0;
}

void pio_unmap(const unsigned char *data, size_t len) {
    if (data) munmap((void *)data, len);
}

int pio_join(char *out, size_t outlen, const char *dir, const char *name) {
    int n = dir[0] ? snprintf(out, outlen, "%s/%s", dir, name) : snprintf(out, outlen, "%s", name);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

void pio_dirname(char *out, size_t outlen, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, outlen, ".");
    } else if (slash == path) {
        snprintf(out, outlen, "/");
    } else {
        snprintf(out, outlen, "%.*s", (int)(slash - path), path);
    }
}

int pio_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

long long pio_fd_size(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (long long)st.st_size : -1;
}
