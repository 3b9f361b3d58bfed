/* crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the
 * checksum of pier's snapshot and manifest files and of every batch
 * protocol payload (docs/PROTOCOL.md). Chosen over CRC-64 because it is
 * what storage formats and network protocols commonly use, detects every
 * burst error up to 32 bits, and x86 (SSE4.2) computes it in hardware.
 *
 * Two implementations giving identical results: SSE4.2 `crc32` 8 bytes
 * at a time (picked once at run time when the CPU has it) and a portable
 * byte-wise table. Thread-safe. */
#ifndef PIER_CRC32C_H
#define PIER_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend a running CRC-32C over n bytes. Start with crc = 0; the result
 * of one call may be passed to the next to checksum data in pieces:
 * crc32c(crc32c(0, a, na), b, nb) == crc32c(0, a||b, na + nb). */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

/* The two paths, for tests and benchmarks. crc32c_hw may only be called
 * when crc32c_hw_available() returns 1. */
uint32_t crc32c_portable(uint32_t crc, const void *p, size_t n);
uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n);
int crc32c_hw_available(void);

#endif
