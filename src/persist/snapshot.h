/* snapshot.h - pier's snapshot format (dump.pier, and the base file of the
 * AOF): encoder, decoder, and saving/loading a keyspace. The byte layout is
 * documented at the top of snapshot.c and in docs/PERSISTENCE.md.
 *
 * The writer never allocates (the caller hands it its buffer), so a forked
 * child of the threaded server can use it. */
#ifndef PIER_SNAPSHOT_H
#define PIER_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "../store/keyspace.h"

#define SNAP_MAGIC "PIERSNAP"
#define SNAP_VERSION 1u
#define SNAP_HEADER_LEN 20u /* magic 8 + version 4 + created_ms 8 */

/* Record types. Key records use the keyspace's type number. */
enum snap_record {
    SNAP_REC_STRING = KV_STRING, /* 0x00 */
    SNAP_REC_STREAM = KV_STREAM, /* 0x01: a stream (src/types/stream/stream_codec.c) */
    SNAP_REC_END = 0xFF
};

typedef struct snap_writer {
    int fd;
    uint32_t crc;        /* of every byte emitted so far */
    uint64_t offset;     /* bytes emitted so far */
    unsigned char *buf;  /* caller's buffer */
    size_t len, cap;
    int err;             /* first errno; 0 while all is well */
    uint64_t records;
} snap_writer;

/* Start a snapshot on fd (positioned at 0) using buf[cap] (cap >= 64) as
 * the write buffer; emits the header. */
void snap_writer_init(snap_writer *w, int fd, unsigned char *buf, size_t cap,
                      int64_t created_ms);
/* One string key record. expire_ms is absolute wall ms, 0 = none. */
void snap_write_string(snap_writer *w, const char *key, size_t klen, const char *val,
                       size_t vlen, int64_t expire_ms);
/* One stream key record (entries, groups, consumers, PELs); allocates
 * nothing. */
struct stream;
void snap_write_stream(snap_writer *w, const char *key, size_t klen, const struct stream *st,
                       int64_t expire_ms);
/* Any record given its whole payload (tests use it for unknown types). */
void snap_write_record(snap_writer *w, unsigned type, const void *payload, size_t n);
/* Emit the end marker and CRC and flush. Returns 0, or -1 with w->err set
 * to the errno of the first failure. Does not fsync or close. */
int snap_writer_finish(snap_writer *w);

/* Write every live key of ks (the caller holds every shard lock when
 * locked != 0, see ks_each_locked). Non-string values without an encoder
 * (none yet) are counted in *skipped. */
void snap_write_keyspace(snap_writer *w, keyspace *ks, int locked, int64_t now_ms,
                         uint64_t *skipped);

/* --- decoding --- */

/* Called for each string record; return 0 to go on, -1 to stop. */
typedef int snap_string_fn(void *arg, const char *key, size_t klen, const char *val,
                           size_t vlen, int64_t expire_ms);

typedef struct snap_result {
    uint32_t version;
    int64_t created_ms;
    uint64_t records;        /* key records delivered */
    uint64_t skipped;        /* unknown record types skipped */
    uint64_t err_offset;     /* on failure: file offset of the problem */
    char err[160];           /* on failure: the reason */
} snap_result;

/* Decode a whole snapshot image: checks magic, version, CRC, structure.
 * Returns 0, or -1 with res->err and res->err_offset set. Every record is
 * checked before the first callback runs only for the CRC; a structural
 * error after some callbacks leaves those applied (the caller exits). */
int snap_decode(const unsigned char *buf, size_t len, snap_string_fn *fn, void *arg,
                snap_result *res);
/* Called for each stream record with its encoding (stream_deserialize);
 * return 0 to go on, -1 when the encoding is bad (decoding fails). */
typedef int snap_stream_fn(void *arg, const char *key, size_t klen, const unsigned char *enc,
                           size_t enclen, int64_t expire_ms);
/* The same, also delivering stream records (stream_fn NULL: they are
 * skipped, as snap_decode does). */
int snap_decode_ex(const unsigned char *buf, size_t len, snap_string_fn *fn,
                   snap_stream_fn *stream_fn, void *arg, snap_result *res);

/* --- whole files --- */

/* Save ks to final_path through tmp_path (written, fsynced, renamed, dir
 * fsynced). buf/cap is the writer buffer. Returns 0, or -1 with errno
 * (EOPNOTSUPP: ks holds values of a type with no snapshot encoder yet,
 * i.e. streams until the log issue adds theirs; failing keeps the old
 * files instead of writing a snapshot that silently lacks those keys). */
int snap_save_file(keyspace *ks, int locked, const char *tmp_path, const char *final_path,
                   unsigned char *buf, size_t cap, int64_t now_ms);

/* Load a snapshot file into ks (keys already expired at now_ms are
 * dropped). Returns 1 loaded, 0 the file does not exist, -1 error with
 * res->err/err_offset (an unreadable file has err_offset 0). */
int snap_load_file(keyspace *ks, const char *path, int64_t now_ms, snap_result *res);

#endif
