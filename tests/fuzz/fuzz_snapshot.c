/* fuzz_snapshot.c - the snapshot decoder (src/persist/snapshot.c) and the
 * value types' snapshot decoders (kv_type_ops.snap_load: strings,
 * streams).
 *
 * 1. snap_decode on the raw input (exact-size heap copy).
 * 2. The input framed as a well-formed image: header ("PIERSNAP", version
 *    1), the input as the record area, the end marker and a correct
 *    CRC-32C, so the record decoding is reached instead of stopping at the
 *    checksum. When that decodes, the delivered key records (tag, expiry,
 *    key, value encoding) are written again with snap_writer (into a
 *    memfd) and decoded: the same records must come back; and a loader
 *    that rejects the last record must make the decode fail after exactly
 *    the records before it.
 * 3. The framed image loaded into a keyspace through the types' ops
 *    (snap_load_image): a value that does not decode fails the load, never
 *    the process; a load that succeeds stored one key per record at most.
 * The callback reads every key and value byte, so a length that points
 * past the image is an ASan report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/codec.h"
#include "lib/codec.h"
#include "lib/crc32c.h"
#include "lib/log.h"
#include "persist/snapshot.h"
#include "types/types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

typedef struct rec {
    unsigned tag;
    int64_t expire;
    char *key, *val;
    size_t klen, vlen;
} rec;

typedef struct recs {
    rec *v;
    size_t n, cap;
    size_t reject_at; /* SIZE_MAX: accept all */
} recs;

static keyspace *types; /* every value type registered; decoding and loading */

static int collect(void *arg, const kv_type_ops *ops, const char *key, size_t klen,
                   const unsigned char *val, size_t vlen, int64_t expire_ms) {
    recs *r = arg;
    if (r->n == r->reject_at)
        return -1;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        FZ_CHECK(r->v != NULL);
    }
    rec *e = &r->v[r->n++];
    e->tag = ops->snap_tag;
    e->expire = expire_ms;
    e->klen = klen;
    e->vlen = vlen;
    e->key = malloc(klen ? klen : 1);
    e->val = malloc(vlen ? vlen : 1);
    FZ_CHECK(e->key && e->val);
    if (klen)
        memcpy(e->key, key, klen);
    if (vlen)
        memcpy(e->val, val, vlen);
    return 0;
}

static void recs_free(recs *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].key);
        free(r->v[i].val);
    }
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static int decode(const unsigned char *img, size_t len, recs *out, size_t reject_at,
                  snap_result *res) {
    memset(out, 0, sizeof(*out));
    out->reject_at = reject_at;
    int rc = snap_decode(img, len, types, collect, out, res);
    FZ_CHECK(rc == 0 || rc == -1);
    FZ_CHECK(memchr(res->err, '\0', sizeof(res->err)) != NULL);
    if (rc == 0) {
        FZ_CHECK(res->records == out->n);
        FZ_CHECK(res->version == SNAP_VERSION);
    } else {
        FZ_CHECK(res->err[0] != '\0');
        FZ_CHECK(res->err_offset <= len);
    }
    return rc;
}

/* Write recs as a snapshot into a memfd and return the image. */
static unsigned char *encode(const recs *r, size_t *len) {
    int fd = memfd_create("snap-fuzz", 0);
    FZ_CHECK(fd >= 0);
    unsigned char wbuf[64];
    snap_writer w;
    snap_writer_init(&w, fd, wbuf, sizeof(wbuf), 1234);
    for (size_t i = 0; i < r->n; i++)
        snap_write_key(&w, r->v[i].tag, r->v[i].key, r->v[i].klen, r->v[i].expire, r->v[i].val,
                       r->v[i].vlen);
    FZ_CHECK(snap_writer_finish(&w) == 0);
    off_t end = lseek(fd, 0, SEEK_END);
    FZ_CHECK(end >= 0);
    *len = (size_t)end;
    unsigned char *img = malloc(*len ? *len : 1);
    FZ_CHECK(img != NULL);
    FZ_CHECK(pread(fd, img, *len, 0) == (ssize_t)*len);
    close(fd);
    return img;
}

/* 3: load into a scratch keyspace; emptied afterwards. */
static void load(const unsigned char *img, size_t len, uint64_t records) {
    static keyspace *ks;
    if (!ks) {
        log_set_level(LOG_SILENT);
        ks = ks_create(1);
        types_register(ks);
    }
    snap_result res;
    int rc = snap_load_image(ks, img, len, 0, &res);
    FZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FZ_CHECK(res.records == records);
        FZ_CHECK(ks_count(ks) <= records);
    } else {
        FZ_CHECK(res.err[0] != '\0');
    }
    ks_flush(ks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!types) {
        types = ks_create(1);
        types_register(types);
    }
    /* 1. raw */
    unsigned char *raw = malloc(size ? size : 1);
    FZ_CHECK(raw != NULL);
    if (size)
        memcpy(raw, data, size);
    recs a;
    snap_result res;
    decode(raw, size, &a, SIZE_MAX, &res);
    recs_free(&a);
    free(raw);

    /* 2. framed */
    size_t len = SNAP_HEADER_LEN + size + 5;
    unsigned char *img = malloc(len);
    FZ_CHECK(img != NULL);
    memcpy(img, SNAP_MAGIC, 8);
    codec_put_le32(img + 8, SNAP_VERSION);
    memset(img + 12, 0, 8);
    if (size)
        memcpy(img + SNAP_HEADER_LEN, data, size);
    img[len - 5] = 0xFF;
    codec_put_le32(img + len - 4, crc32c(0, img, len - 4));
    if (decode(img, len, &a, SIZE_MAX, &res) == 0) {
        uint64_t skipped = res.skipped;
        size_t elen;
        unsigned char *again = encode(&a, &elen);
        recs b;
        FZ_CHECK(decode(again, elen, &b, SIZE_MAX, &res) == 0);
        FZ_CHECK(res.skipped == 0);
        FZ_CHECK(a.n == b.n);
        for (size_t i = 0; i < a.n; i++) {
            FZ_CHECK(a.v[i].tag == b.v[i].tag && a.v[i].expire == b.v[i].expire);
            FZ_CHECK(a.v[i].klen == b.v[i].klen && a.v[i].vlen == b.v[i].vlen);
            FZ_CHECK(memcmp(a.v[i].key, b.v[i].key, a.v[i].klen) == 0);
            FZ_CHECK(memcmp(a.v[i].val, b.v[i].val, a.v[i].vlen) == 0);
        }
        recs_free(&b);
        free(again);
        if (a.n > 0) {
            recs c;
            FZ_CHECK(decode(img, len, &c, a.n - 1, &res) == -1);
            FZ_CHECK(c.n == a.n - 1 && res.records == a.n - 1);
            recs_free(&c);
        }
        (void)skipped;
        load(img, len, a.n);
    }
    recs_free(&a);
    free(img);
    return 0;
}
