/* types.c - the list of value types (types.h). */
#include "types/types.h"

#include "types/stream/stream_type.h"
#include "types/string/string_type.h"

void types_register(keyspace *ks) {
    ks_register_type(ks, KV_STRING, &string_type_ops);
    ks_register_type(ks, KV_STREAM, &stream_type_ops);
}
