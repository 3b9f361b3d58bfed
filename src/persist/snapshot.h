/* snapshot.h - pier's snapshot format (dump.pier, and the base file of the
 * AOF): encoder, decoder, and saving/loading a keyspace. The byte layout is
 * documented at the top of snapshot.c and in docs/PERSISTENCE.md.
 *
 * The format knows no value type: a key record carries its type's record
 * tag and the value encoding that type's ops write and read (kv_type_ops,
 * src/types/<type>/), looked up in the keyspace's registered types.
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
/* The end marker. Every other record type byte is a key record of the
 * type registered with that snap_tag, or unknown (skipped). */
#define SNAP_REC_END 0xFFu

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
/* One key record of the entry e, its value encoded by its type's ops
 * (ops->snap_encode, which allocates nothing). expire_ms is absolute wall
 * ms, 0 = none. */
void snap_write_entry(snap_writer *w, const kv_type_ops *ops, const kv *e, int64_t expire_ms);
/* One key record given its value encoding val[0..vlen) (tests, and the
 * fuzz harness writing back what it decoded). */
void snap_write_key(snap_writer *w, unsigned tag, const char *key, size_t klen,
                    int64_t expire_ms, const void *val, size_t vlen);
/* Any record given its whole payload (tests use it for unknown types). */
void snap_write_record(snap_writer *w, unsigned type, const void *payload, size_t n);
/* Emit the end marker and CRC and flush. Returns 0, or -1 with w->err set
 * to the errno of the first failure. Does not fsync or close. */
int snap_writer_finish(snap_writer *w);

/* Write every live key of ks (the caller holds every shard lock when
 * locked != 0, see ks_each_locked). Values of a type with no registered
 * snapshot encoder are counted in *skipped. */
void snap_write_keyspace(snap_writer *w, keyspace *ks, int locked, int64_t now_ms,
                         uint64_t *skipped);

/* --- decoding --- */

/* Called for each key record of a type registered in `types`: ops is that
 * type, val[0..vlen) the value's encoding as written (not checked here:
 * ops->snap_load checks it). Return 0 to go on, -1 to stop: decoding then
 * fails with "bad <type> record". */
typedef int snap_key_fn(void *arg, const kv_type_ops *ops, const char *key, size_t klen,
                        const unsigned char *val, size_t vlen, int64_t expire_ms);

typedef struct snap_result {
    uint32_t version;
    int64_t created_ms;
    uint64_t records;        /* key records delivered */
    uint64_t skipped;        /* records of unknown types skipped */
    uint64_t err_offset;     /* on failure: file offset of the problem */
    char err[160];           /* on failure: the reason */
} snap_result;

/* Decode a whole snapshot image: checks magic, version, CRC, structure
 * (each key record's expiry and key within its length). Records whose tag
 * no type in `types` has (types NULL: every record) are skipped and
 * counted. fn may be NULL. Returns 0, or -1 with res->err and
 * res->err_offset set. Only the CRC is checked before the first callback
 * runs: a structural error after some callbacks leaves those applied (the
 * caller exits). */
int snap_decode(const unsigned char *buf, size_t len, const keyspace *types, snap_key_fn *fn,
                void *arg, snap_result *res);

/* --- whole images and files --- */

/* Save ks to final_path through tmp_path (written, fsynced, renamed, dir
 * fsynced). buf/cap is the writer buffer. Returns 0, or -1 with errno
 * (EOPNOTSUPP: ks holds values of a type with no snapshot encoder;
 * failing keeps the old files instead of writing a snapshot that silently
 * lacks those keys). */
int snap_save_file(keyspace *ks, int locked, const char *tmp_path, const char *final_path,
                   unsigned char *buf, size_t cap, int64_t now_ms);

/* Load a snapshot image into ks through its registered types (keys
 * already expired at now_ms are dropped). Returns 0, or -1 with
 * res->err/err_offset. */
int snap_load_image(keyspace *ks, const unsigned char *buf, size_t len, int64_t now_ms,
                    snap_result *res);

/* Load a snapshot file into ks, as snap_load_image. Returns 1 loaded, 0
 * the file does not exist, -1 error with res->err/err_offset (an
 * unreadable file has err_offset 0). */
int snap_load_file(keyspace *ks, const char *path, int64_t now_ms, snap_result *res);

#endif
