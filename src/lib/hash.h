/* hash.h - 64-bit keyed hash for the keyspace (and anything else hashing
 * untrusted bytes). Seeded at start-up from getrandom() so that clients
 * cannot precompute colliding keys (hash flooding). */
#ifndef PIER_HASH_H
#define PIER_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Hash len bytes at p with the given seed. Fast on short keys (the common
 * case: 8-64 byte keys), good avalanche, never reads past p+len. */
uint64_t hash_bytes(const void *p, size_t len, uint64_t seed);

/* A random 64-bit seed from getrandom(2) (falls back to time^pid). */
uint64_t hash_random_seed(void);

#endif
