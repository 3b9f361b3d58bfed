/* snapshot.c - the pier snapshot format ("PIERSNAP").
 *
 * Byte layout, version 1 (all integers little-endian; "varint" is unsigned
 * LEB128: 7 bits per byte, low group first, high bit set on every byte but
 * the last, at most 10 bytes):
 *
 *   offset  size     field
 *   0       8        magic, the ASCII bytes "PIERSNAP"
 *   8       4        u32 format version (1). A reader refuses versions
 *                    newer than it knows.
 *   12      8        u64 creation time, wall-clock ms since the epoch
 *   20      ...      records, each:
 *                      1 byte   record type
 *                      varint   payload length L
 *                      L bytes  payload
 *                    A reader skips a record whose type it does not know,
 *                    using L: old readers can load files with new types.
 *   end-5   1        end marker, 0xFF (a record type with no length)
 *   end-4   4        u32 CRC-32C (Castagnoli) of every byte before it,
 *                    magic and end marker included
 *
 * Record types: 0x00-0xFE are key records of the value type whose ops
 * carry that snap_tag (docs/PERSISTENCE.md lists them: 0x00 string,
 * src/types/string/; 0x01 stream, src/types/stream/). A key record's
 * payload:
 *
 *   u64 expire (absolute wall ms, 0 = none), varint key length K, K key
 *   bytes, then the value's encoding: the rest of the payload, written and
 *   read by the type (kv_type_ops.snap_encode / snap_load)
 *
 * Why a length on every record: it is what makes unknown types skippable,
 * and it lets the decoder check each payload's inner lengths against the
 * outer one, so a corrupt length is caught at its own record. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../lib/codec.h"
#include "../lib/crc32c.h"
#include "fileio.h"

/* ---- writer ---- */

static void writer_flush(snap_writer *w) {
    if (w->len == 0 || w->err) {
        w->len = 0;
        return;
    }
    if (pio_write_all(w->fd, w->buf, w->len) < 0) w->err = errno ? errno : EIO;
    w->len = 0;
}

/* Emit bytes: checksummed, buffered; a chunk bigger than the buffer goes
 * straight to the file (a large value is not copied twice). */
static void emit(snap_writer *w, const void *p, size_t n) {
    if (n == 0) return;
    w->crc = crc32c(w->crc, p, n);
    w->offset += n;
    if (w->len + n <= w->cap) {
        memcpy(w->buf + w->len, p, n);
        w->len += n;
        return;
    }
    writer_flush(w);
    if (n <= w->cap) {
        memcpy(w->buf, p, n);
        w->len = n;
    } else if (!w->err && pio_write_all(w->fd, p, n) < 0) {
        w->err = errno ? errno : EIO;
    }
}

void snap_writer_init(snap_writer *w, int fd, unsigned char *buf, size_t cap,
                      int64_t created_ms) {
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->buf = buf;
    w->cap = cap;
    unsigned char hdr[SNAP_HEADER_LEN];
    memcpy(hdr, SNAP_MAGIC, 8);
    codec_put_le32(hdr + 8, SNAP_VERSION);
    codec_put_le64(hdr + 12, (uint64_t)created_ms);
    emit(w, hdr, sizeof hdr);
}

/* Record type and payload length. */
static void emit_record_head(snap_writer *w, unsigned type, uint64_t payload_len) {
    unsigned char head[1 + CODEC_VARINT_MAX];
    head[0] = (unsigned char)type;
    size_t n = 1 + codec_varint_put(head + 1, payload_len);
    emit(w, head, n);
    w->records++;
}

/* A key record's head: type, payload length, expiry, key. The value's
 * vlen bytes follow. */
static void emit_key_head(snap_writer *w, unsigned tag, const char *key, size_t klen,
                          int64_t expire_ms, uint64_t vlen) {
    unsigned char kl[CODEC_VARINT_MAX], exp[8];
    size_t kn = codec_varint_put(kl, klen);
    codec_put_le64(exp, (uint64_t)expire_ms);
    emit_record_head(w, tag, 8 + kn + klen + vlen);
    emit(w, exp, 8);
    emit(w, kl, kn);
    emit(w, key, klen);
}

void snap_write_key(snap_writer *w, unsigned tag, const char *key, size_t klen,
                    int64_t expire_ms, const void *val, size_t vlen) {
    emit_key_head(w, tag, key, klen, expire_ms, vlen);
    emit(w, val, vlen);
}

static void emit_sink(void *arg, const void *p, size_t n) { emit(arg, p, n); }

void snap_write_entry(snap_writer *w, const kv_type_ops *ops, const kv *e, int64_t expire_ms) {
    uint64_t vlen = ops->snap_encode(e, NULL, NULL); /* measure, then write */
    emit_key_head(w, ops->snap_tag, kv_key(e), kv_klen(e), expire_ms, vlen);
    ops->snap_encode(e, emit_sink, w);
}

void snap_write_record(snap_writer *w, unsigned type, const void *payload, size_t n) {
    emit_record_head(w, type, n);
    emit(w, payload, n);
}

int snap_writer_finish(snap_writer *w) {
    unsigned char end = SNAP_REC_END;
    emit(w, &end, 1);
    unsigned char crc[4];
    codec_put_le32(crc, w->crc);
    emit(w, crc, 4);
    writer_flush(w);
    if (w->err) {
        errno = w->err;
        return -1;
    }
    return 0;
}

typedef struct keyspace_walk {
    snap_writer *w;
    const keyspace *ks;
    uint64_t skipped;
} keyspace_walk;

/* Runs under the entry's shard lock (or in the forked child). */
static void write_entry(void *arg, const kv *e) {
    keyspace_walk *walk = arg;
    const kv_type_ops *ops = ks_type_ops(walk->ks, kv_type(e));
    if (!ops || !ops->snap_encode) {
        walk->skipped++; /* a type with no encoder */
        return;
    }
    snap_write_entry(walk->w, ops, e, ks_get_expire(walk->ks, e));
}

void snap_write_keyspace(snap_writer *w, keyspace *ks, int locked, int64_t now_ms,
                         uint64_t *skipped) {
    keyspace_walk walk = {w, ks, 0};
    if (locked)
        ks_each_locked(ks, now_ms, write_entry, &walk);
    else
        ks_each(ks, now_ms, write_entry, &walk);
    if (skipped) *skipped = walk.skipped;
}

/* ---- decoder ---- */

static int fail(snap_result *res, uint64_t off, const char *why) {
    res->err_offset = off;
    snprintf(res->err, sizeof res->err, "%s", why);
    return -1;
}

/* One key record, payload [start, end): expiry and key checked against
 * the payload, the value's encoding (the rest) handed to fn. */
static int decode_key(const unsigned char *buf, size_t start, size_t end, const kv_type_ops *ops,
                      snap_key_fn *fn, void *arg, snap_result *res) {
    if (end - start < 8) return fail(res, start, "key record shorter than its expire field");
    int64_t expire = (int64_t)codec_get_le64(buf + start);
    size_t pos = start + 8;
    uint64_t klen;
    size_t used = codec_varint_get(buf + pos, end - pos, &klen);
    if (used == 0 || klen > end - pos - used || klen > KS_MAX_LEN)
        return fail(res, start, "bad key length in key record");
    const char *key = (const char *)buf + pos + used;
    pos += used + (size_t)klen;
    if (fn && fn(arg, ops, key, (size_t)klen, buf + pos, end - pos, expire) < 0) {
        char why[64];
        snprintf(why, sizeof why, "bad %s record", ops->name);
        return fail(res, start, why);
    }
    res->records++;
    return 0;
}

static int check_header(const unsigned char *buf, size_t len, snap_result *res) {
    if (len < SNAP_HEADER_LEN + 5) return fail(res, 0, "file too short to be a pier snapshot");
    if (memcmp(buf, SNAP_MAGIC, 8) != 0) return fail(res, 0, "bad magic (not a pier snapshot)");
    res->version = codec_get_le32(buf + 8);
    if (res->version == 0 || res->version > SNAP_VERSION)
        return fail(res, 8, "unsupported snapshot version");
    res->created_ms = (int64_t)codec_get_le64(buf + 12);
    if (crc32c(0, buf, len - 4) != codec_get_le32(buf + len - 4))
        return fail(res, len - 4, "checksum mismatch");
    return 0;
}

int snap_decode(const unsigned char *buf, size_t len, const keyspace *types, snap_key_fn *fn,
                void *arg, snap_result *res) {
    memset(res, 0, sizeof *res);
    if (check_header(buf, len, res) < 0) return -1;
    size_t pos = SNAP_HEADER_LEN, end_marker = len - 5;
    while (pos < end_marker) {
        unsigned type = buf[pos];
        uint64_t plen;
        size_t used = codec_varint_get(buf + pos + 1, end_marker - pos - 1, &plen);
        if (type == SNAP_REC_END) return fail(res, pos, "end marker before the end of the file");
        if (used == 0 || plen > end_marker - pos - 1 - used)
            return fail(res, pos, "record length runs past the end of the file");
        size_t start = pos + 1 + used, stop = start + (size_t)plen;
        const kv_type_ops *ops = types ? ks_type_by_snap_tag(types, type) : NULL;
        if (ops) {
            if (decode_key(buf, start, stop, ops, fn, arg, res) < 0) return -1;
        } else {
            res->skipped++; /* a type this reader does not know */
        }
        pos = stop;
    }
    if (pos != end_marker || buf[end_marker] != SNAP_REC_END)
        return fail(res, end_marker, "missing end marker");
    return 0;
}

/* ---- files ---- */

int snap_save_file(keyspace *ks, int locked, const char *tmp_path, const char *final_path,
                   unsigned char *buf, size_t cap, int64_t now_ms) {
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    snap_writer w;
    snap_writer_init(&w, fd, buf, cap, now_ms);
    uint64_t skipped = 0;
    snap_write_keyspace(&w, ks, locked, now_ms, &skipped);
    /* A value that cannot be written would be lost silently by a snapshot
     * or an AOF rewrite that replaces the old files: fail instead. */
    if (skipped && !w.err) w.err = EOPNOTSUPP;
    if (snap_writer_finish(&w) < 0) {
        int saved = errno;
        close(fd);
        unlink(tmp_path);
        errno = saved;
        return -1;
    }
    if (pio_commit_file(fd, tmp_path, final_path) < 0) {
        int saved = errno;
        unlink(tmp_path);
        errno = saved;
        return -1;
    }
    return 0;
}

typedef struct load_ctx {
    keyspace *ks;
    int64_t now_ms;
} load_ctx;

/* The value is decoded (checked) even when the key expired while the
 * server was down; such a key is then dropped. */
static int load_key(void *arg, const kv_type_ops *ops, const char *key, size_t klen,
                    const unsigned char *val, size_t vlen, int64_t expire_ms) {
    load_ctx *ctx = arg;
    unsigned shard = ks_shard_of(ctx->ks, key, klen);
    ks_lock_shard(ctx->ks, shard);
    kv *e = ops->snap_load(ctx->ks, key, klen, val, vlen, ctx->now_ms);
    if (e && expire_ms != 0 && expire_ms <= ctx->now_ms)
        ks_delete(ctx->ks, key, klen, ctx->now_ms); /* expired while down */
    else if (e && expire_ms)
        ks_set_expire(ctx->ks, e, expire_ms);
    ks_unlock_shard(ctx->ks, shard);
    return e ? 0 : -1;
}

int snap_load_image(keyspace *ks, const unsigned char *buf, size_t len, int64_t now_ms,
                    snap_result *res) {
    load_ctx ctx = {ks, now_ms};
    return snap_decode(buf, len, ks, load_key, &ctx, res);
}

int snap_load_file(keyspace *ks, const char *path, int64_t now_ms, snap_result *res) {
    memset(res, 0, sizeof *res);
    const unsigned char *data;
    size_t len;
    if (pio_map_file(path, &data, &len) < 0) {
        if (errno == ENOENT) return 0;
        snprintf(res->err, sizeof res->err, "cannot read: %s", strerror(errno));
        return -1;
    }
    int rc = snap_load_image(ks, data, len, now_ms, res);
    pio_unmap(data, len);
    return rc < 0 ? -1 : 1;
}
