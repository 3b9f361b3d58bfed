/* stream_type.h - the stream value type as the keyspace and snapshots see
 * it (its ops). Storage: stream.h; commands: src/cmd/streams*.c. */
#ifndef PIER_STREAM_TYPE_H
#define PIER_STREAM_TYPE_H

#include "store/keyspace.h"

/* Snapshot record tag of stream keys (docs/PERSISTENCE.md). */
#define STREAM_SNAP_TAG 0x01u

extern const kv_type_ops stream_type_ops;

#endif
