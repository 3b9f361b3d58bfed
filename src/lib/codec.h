/* codec.h - the byte encodings pier's binary formats share: unsigned
 * LEB128 varints and little-endian fixed-width integers (the snapshot,
 * a stream's blocks and its snapshot encoding, the batch protocol, the
 * restart hand-over, libpier's frames).
 *
 * Header-only (static inline): libpier compiles it into its own objects,
 * the fuzz harnesses need no extra source. Tests: tests/unit/test_codec.c.
 *
 * Varint: 7 bits per byte, low group first, the high bit set on every
 * byte but the last; a 64-bit value takes 1 to CODEC_VARINT_MAX bytes.
 * The reader accepts a non-minimal encoding (0x80 0x00 is 0): the formats
 * were specified that way and files written with one must keep loading. */
#ifndef PIER_CODEC_H
#define PIER_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define CODEC_VARINT_MAX 10

/* Bytes codec_varint_put writes for v (1 to CODEC_VARINT_MAX). */
static inline size_t codec_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Write v at out (room for CODEC_VARINT_MAX bytes, or codec_varint_len(v)).
 * Returns the bytes written. */
static inline size_t codec_varint_put(unsigned char *out, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (unsigned char)v;
    return n;
}

/* Read one varint from p[0, avail). Returns the bytes consumed with *v
 * set, or 0 (*v = 0) when the input ends inside the varint
 * (truncated) or the varint runs past CODEC_VARINT_MAX bytes or 64 bits
 * (overlong). Never reads past p[avail - 1] nor past the varint's last
 * byte, so a trusted encoding may be read with avail = CODEC_VARINT_MAX. */
static inline size_t codec_varint_get(const unsigned char *p, size_t avail, uint64_t *v) {
    uint64_t r = 0;
    for (size_t i = 0; i < CODEC_VARINT_MAX && i < avail; i++) {
        uint64_t group = p[i] & 0x7F;
        if (i == CODEC_VARINT_MAX - 1 && p[i] > 1) break; /* past 64 bits */
        r |= group << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    *v = 0;
    return 0;
}

/* ---- little-endian integers (p needs 2, 4 or 8 bytes; no alignment) ---- */

static inline void codec_put_le16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void codec_put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline void codec_put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint16_t codec_get_le16(const unsigned char *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t codec_get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t codec_get_le64(const unsigned char *p) {
    return (uint64_t)codec_get_le32(p) | (uint64_t)codec_get_le32(p + 4) << 32;
}

#endif
