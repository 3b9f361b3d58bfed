/* string_type.c - the string type's ops: TYPE "string", OBJECT ENCODING,
 * and the value's snapshot encoding (version 1):
 *
 *   varint V, V value bytes
 *
 * (the record around it holds the expiry and the key: snapshot.c). */
#include "types/string/string_type.h"

#include "lib/codec.h"
#include "lib/util.h"

/* Redis's rules (OBJECT ENCODING): a value that reads as a 64-bit integer
 * is "int", a short one (44 bytes or fewer) "embstr", else "raw". */
#define EMBSTR_MAX 44
#define INT_TEXT_MAX 20

static const char *string_encoding(const kv *e) {
    const char *v = kv_key(e) + kv_klen(e);
    long long n;
    if (kv_slen(e) <= INT_TEXT_MAX && util_parse_ll(v, kv_slen(e), &n)) return "int";
    return kv_slen(e) <= EMBSTR_MAX ? "embstr" : "raw";
}

static uint64_t string_snap_encode(const kv *e, kv_sink_fn *sink, void *arg) {
    unsigned char head[CODEC_VARINT_MAX];
    size_t hn = codec_varint_put(head, kv_slen(e));
    if (sink) {
        sink(arg, head, hn);
        sink(arg, kv_key(e) + kv_klen(e), kv_slen(e));
    }
    return hn + kv_slen(e);
}

static kv *string_snap_load(keyspace *ks, const char *key, size_t klen, const unsigned char *p,
                            size_t n, int64_t now_ms) {
    uint64_t vlen;
    size_t used = codec_varint_get(p, n, &vlen);
    if (used == 0 || vlen != n - used || vlen > KS_MAX_LEN) return NULL;
    return ks_set_string(ks, key, klen, p + used, (size_t)vlen, 0, now_ms);
}

const kv_type_ops string_type_ops = {
    .name = "string",
    .encoding = string_encoding,
    .snap_tag = STRING_SNAP_TAG,
    .snap_version = 1,
    .snap_encode = string_snap_encode,
    .snap_load = string_snap_load,
};
