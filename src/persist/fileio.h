/* fileio.h - small file helpers shared by the persistence code: write
 * everything, make a rename durable, map a whole file, join paths.
 *
 * None of these allocate except pio_map_file's mapping, so the write
 * helpers are safe in a forked child of the threaded server. */
#ifndef PIER_FILEIO_H
#define PIER_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Write all n bytes (retrying short writes and EINTR). Returns 0, or -1
 * with errno set. */
int pio_write_all(int fd, const void *p, size_t n);

/* fsync the directory at path, so that a rename or create inside it
 * survives a crash. Returns 0 or -1 with errno. */
int pio_fsync_dir(const char *path);

/* fsync fd, close it, rename tmp to final, fsync the directory holding
 * final: the crash-safe way to replace a file. fd is closed in every case.
 * Returns 0 or -1 with errno (tmp is left for the caller to unlink). */
int pio_commit_file(int fd, const char *tmp, const char *final);

/* Map a whole file read-only. *data is NULL for an empty file. Returns 0,
 * or -1 with errno (ENOENT when it does not exist). Release with
 * pio_unmap. */
int pio_map_file(const char *path, const unsigned char **data, size_t *len);
void pio_unmap(const unsigned char *data, size_t len);

/* dir + "/" + name into out (dir "" means the current directory). Returns
 * 0, or -1 when it does not fit. */
int pio_join(char *out, size_t outlen, const char *dir, const char *name);

/* The directory part of path ("." when it has none). */
void pio_dirname(char *out, size_t outlen, const char *path);

/* Does path exist (any type)? */
int pio_exists(const char *path);

/* Size of an open file or -1. */
long long pio_fd_size(int fd);

#endif
