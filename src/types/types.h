/* types.h - the value types, one folder each under src/types/ (string,
 * stream), and their registration: adding a type is a folder and one line
 * in types.c (docs/ARCHITECTURE.md, "Adding a data type"). */
#ifndef PIER_TYPES_H
#define PIER_TYPES_H

#include "store/keyspace.h"

/* Register every value type's ops with ks (ks_register_type). Call once,
 * right after ks_create: without it the keyspace cannot name, free or
 * snapshot values, and snapshot loading skips every record. */
void types_register(keyspace *ks);

#endif
