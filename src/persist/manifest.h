/* manifest.h - the AOF manifest: which files make up the append-only log,
 * in replay order (like Redis 7's multi-part AOF).
 *
 * Text, one item per line, so an operator can read it:
 *
 *   pier-aof-manifest 1                          <- format name and version
 *   file appendonly.aof.3.base.pier seq 3 type b <- at most one base (snapshot)
 *   file appendonly.aof.5.incr.aof seq 5 type i  <- incremental RESP files,
 *   file appendonly.aof.6.incr.aof seq 6 type i     in replay order
 *   crc 1a2b3c4d                                 <- CRC-32C of all bytes above
 *
 * The manifest is only ever replaced whole (temp file, fsync, rename, fsync
 * of the directory), so a reader sees the old or the new list, never a mix;
 * the CRC catches a damaged file or a bad hand edit. */
#ifndef PIER_MANIFEST_H
#define PIER_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define MANIFEST_VERSION 1
#define MANIFEST_MAX_FILES 64
#define MANIFEST_NAME_MAX 256

typedef struct manifest_file {
    char name[MANIFEST_NAME_MAX];
    uint64_t seq;
    char type; /* 'b' base, 'i' incremental */
} manifest_file;

typedef struct manifest {
    manifest_file files[MANIFEST_MAX_FILES]; /* base first, then incr in order */
    int n;
} manifest;

/* Parse manifest text. Returns 0, or -1 with a reason (and the line) in
 * err. */
int manifest_parse(manifest *m, const char *text, size_t len, char *err, size_t errlen);

/* Format into buf; returns the length, or -1 if cap is too small. */
int manifest_format(const manifest *m, char *buf, size_t cap);

/* Read dir/name. Returns 1 loaded, 0 no such file, -1 error (err set). */
int manifest_load(manifest *m, const char *dir, const char *name, char *err, size_t errlen);

/* Replace dir/name atomically and durably. Returns 0 or -1 with errno. */
int manifest_store(const manifest *m, const char *dir, const char *name);

/* Append a file entry; returns 0, or -1 when the list is full. */
int manifest_add(manifest *m, const char *name, uint64_t seq, char type);

/* Highest sequence number of the given type, 0 if none. */
uint64_t manifest_max_seq(const manifest *m, char type);

#endif
