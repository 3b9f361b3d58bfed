/* stream_type.c - the stream type's ops: TYPE "stream", free and memory
 * for the keyspace, and the snapshot encoding (stream_codec.c,
 * version 1). */
#include "types/stream/stream_type.h"

#include "types/stream/stream.h"

static const char *stream_encoding(const kv *e) { return "stream"; }

static void stream_obj_free(void *obj) { stream_free(obj); }

static size_t stream_obj_mem(const void *obj) { return stream_mem(obj); }

static uint64_t stream_snap_encode(const kv *e, kv_sink_fn *sink, void *arg) {
    return stream_serialize(kv_object(e), sink, arg);
}

static kv *stream_snap_load(keyspace *ks, const char *key, size_t klen, const unsigned char *p,
                            size_t n, int64_t now_ms) {
    stream *st = stream_deserialize(p, n);
    if (!st) return NULL;
    return ks_set_object(ks, key, klen, KV_STREAM, st, 0, now_ms);
}

const kv_type_ops stream_type_ops = {
    .name = "stream",
    .encoding = stream_encoding,
    .free_obj = stream_obj_free,
    .mem_obj = stream_obj_mem,
    .snap_tag = STREAM_SNAP_TAG,
    .snap_version = 1,
    .snap_encode = stream_snap_encode,
    .snap_load = stream_snap_load,
};
