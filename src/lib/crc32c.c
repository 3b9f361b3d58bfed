/* crc32c.c - CRC-32C: SSE4.2 instructions when the CPU has them, else a
 * byte-wise table (see crc32c.h). */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

/* Built once; read-only afterwards. File-static like any constant table:
 * both facts depend only on the machine, never on server state. */
static uint32_t table[256];
static int hw_ok;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        table[i] = c;
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    hw_ok = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

uint32_t crc32c_portable(uint32_t crc, const void *p, size_t n) {
    pthread_once(&init_once, crc32c_init);
    const unsigned char *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ b[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

int crc32c_hw_available(void) {
    pthread_once(&init_once, crc32c_init);
    return hw_ok;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The crc32 instruction implements exactly this polynomial with the same
 * bit order, so the result equals the table's. Words are loaded with
 * memcpy: the buffer may have any alignment, and x86 is little-endian as
 * the table path's byte order assumes. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const unsigned char *b,
                                                               size_t n) {
    uint64_t c = ~crc;
    for (; n >= 8; n -= 8, b += 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n > 0; n--, b++) c32 = __builtin_ia32_crc32qi(c32, *b);
    return ~c32;
}

uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n) {
    return crc32c_sse42(crc, p, n);
}
#else
uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n) {
    return crc32c_portable(crc, p, n); /* no hardware path on this target */
}
#endif

uint32_t crc32c(uint32_t crc, const void *p, size_t n) {
    return crc32c_hw_available() ? crc32c_hw(crc, p, n) : crc32c_portable(crc, p, n);
}
