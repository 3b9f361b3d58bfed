/* crc.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of pier's snapshot and manifest files. Chosen over CRC-64
 * because it is what storage formats commonly use, detects every burst
 * error up to 32 bits, and has a hardware instruction on x86 and ARM if
 * it ever matters (this is a portable table implementation). */
#ifndef PIER_CRC_H
#define PIER_CRC_H

#include <stddef.h>
#include <stdint.h>

/* Extend a running CRC-32C over n bytes. Start with crc = 0; the result
 * of one call may be passed to the next to checksum data in pieces:
 * crc32c(crc32c(0, a, na), b, nb) == crc32c(0, a||b, na + nb). */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

#endif
