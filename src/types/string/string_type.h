/* string_type.h - the string value type as the keyspace and snapshots see
 * it (its ops). A string lives inside its keyspace entry
 * (src/store/keyspace.h); the commands are src/cmd/strings.c. */
#ifndef PIER_STRING_TYPE_H
#define PIER_STRING_TYPE_H

#include "store/keyspace.h"

/* Snapshot record tag of string keys (docs/PERSISTENCE.md). */
#define STRING_SNAP_TAG 0x00u

extern const kv_type_ops string_type_ops;

#endif
