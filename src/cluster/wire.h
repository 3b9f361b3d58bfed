/* wire.h - little-endian writer and bounds-checked reader under the
 * cluster bus messages (msg.c). A reader that runs past its end sets `bad`
 * and returns zeros, so a decoder reads every field and checks `bad` once. */
#ifndef PIER_CLUSTER_WIRE_H
#define PIER_CLUSTER_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
} wbuf;

static inline void wb_reserve(wbuf *w, size_t more) {
    if (w->len + more <= w->cap) return;
    size_t cap = w->cap ? w->cap * 2 : 256;
    while (cap < w->len + more) cap *= 2;
    unsigned char *p = realloc(w->p, cap);
    if (!p) abort();
    w->p = p;
    w->cap = cap;
}
static inline void wb_u8(wbuf *w, uint8_t v) {
    wb_reserve(w, 1);
    w->p[w->len++] = v;
}
static inline void wb_u32(wbuf *w, uint32_t v) {
    wb_reserve(w, 4);
    for (int i = 0; i < 4; i++) w->p[w->len++] = (unsigned char)(v >> (8 * i));
}
static inline void wb_u64(wbuf *w, uint64_t v) {
    wb_reserve(w, 8);
    for (int i = 0; i < 8; i++) w->p[w->len++] = (unsigned char)(v >> (8 * i));
}
/* n raw bytes (no length prefix). */
static inline void wb_put(wbuf *w, const void *p, size_t n) {
    wb_reserve(w, n);
    if (n) memcpy(w->p + w->len, p, n);
    w->len += n;
}
/* A length-prefixed byte string: u32 length, then the bytes. */
static inline void wb_bytes(wbuf *w, const void *p, size_t n) {
    wb_u32(w, (uint32_t)n);
    wb_put(w, p, n);
}
static inline void wb_free(wbuf *w) {
    free(w->p);
    w->p = NULL;
    w->len = w->cap = 0;
}

typedef struct rbuf {
    const unsigned char *p;
    size_t len, pos;
    int bad;
} rbuf;

static inline rbuf rb_make(const uint8_t *p, size_t len) {
    rbuf r = {p, len, 0, 0};
    return r;
}
static inline int rb_need(rbuf *r, size_t n) {
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}
static inline uint8_t rb_u8(rbuf *r) { return rb_need(r, 1) ? r->p[r->pos++] : 0; }
static inline uint32_t rb_u32(rbuf *r) {
    if (!rb_need(r, 4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[r->pos++] << (8 * i);
    return v;
}
static inline uint64_t rb_u64(rbuf *r) {
    if (!rb_need(r, 8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[r->pos++] << (8 * i);
    return v;
}
/* A length-prefixed byte string: a view into the message. */
static inline const unsigned char *rb_bytes(rbuf *r, size_t *n) {
    uint32_t len = rb_u32(r);
    if (!rb_need(r, len)) {
        *n = 0;
        return NULL;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += len;
    *n = len;
    return p;
}

/* Little-endian fields of a fixed-layout wire struct (msg.h). */
static inline void le_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void le_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t le_get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static inline uint32_t le_get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif
