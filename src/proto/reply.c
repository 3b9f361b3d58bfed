/* reply.c - RESP2/RESP3 reply encoding into a per-connection output queue.
 *
 * Layout of the queue, in send order:
 *   inline_buf[0, inline_used)  - only written while the block list is empty,
 *                                 so it always precedes every block;
 *   head -> ... -> tail         - 16 KB blocks, exact-size blocks for big
 *                                 bulks, and small deferred-header blocks.
 * sent_head counts the bytes of the first non-empty segment already sent.
 *
 * A deferred header (reply_defer) is a dedicated small block whose size is
 * 0 until reply_defer_set fills it: size 0 means no appends go into it and
 * reply_iov stops in front of it, so bytes after an unfilled header are
 * never sent ahead of it. */
#include "proto/reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"
#include "lib/util.h"

/* Capacity of a deferred-header block: type byte, 20 digits, CRLF. */
#define DEFER_CAP 32
/* The block that follows a deferred header starts small: deferred
 * aggregates are often short (and may nest), and a full 16 KB block per
 * header would waste memory. Later blocks are full-size again. */
#define AFTER_DEFER_BLOCK 1024
/* Longest "<type><integer>\r\n" line. */
#define LINE_MAX_LEN 32

static int is_unfilled_defer(const reply_block *b) { return b->size == 0; }

void reply_init(reply *r) {
    r->proto = 2;
    r->pending = 0;
    r->sent_head = 0;
    r->inline_used = 0;
    r->head = r->tail = NULL;
    r->nblocks = r->block_mem = 0;
    r->spare = NULL;
}

/* Keep one regular block for reuse, free anything else. */
static void block_release(reply *r, reply_block *b) {
    if (r->spare == NULL && b->size == REPLY_BLOCK_SIZE) {
        r->spare = b;
    } else {
        free(b);
    }
}

void reply_reset(reply *r) {
    reply_block *b = r->head;
    while (b != NULL) {
        reply_block *next = b->next;
        block_release(r, b);
        b = next;
    }
    r->head = r->tail = NULL;
    r->nblocks = r->block_mem = 0;
    r->inline_used = 0;
    r->sent_head = 0;
    r->pending = 0;
}

/* Allocated bytes of a block (an unfilled deferred header has size 0 but
 * DEFER_CAP bytes). */
static size_t block_bytes(const reply_block *b) {
    return sizeof(reply_block) + (b->size ? b->size : DEFER_CAP);
}

void reply_mem_stats(const reply *r, size_t *obl, size_t *oll, size_t *omem) {
    *obl = r->inline_used ? r->inline_used - r->sent_head : 0;
    *oll = r->nblocks;
    *omem = r->block_mem;
}

void reply_free(reply *r) {
    reply_reset(r);
    free(r->spare);
    r->spare = NULL;
}

/* ---- low-level appending ------------------------------------------------ */

/* A new, unlinked block with room for at least min_size bytes. Reuses the
 * spare when it is big enough. */
static reply_block *block_new(reply *r, size_t min_size) {
    size_t preferred = (r->tail != NULL && is_unfilled_defer(r->tail))
                           ? AFTER_DEFER_BLOCK
                           : REPLY_BLOCK_SIZE;
    size_t size = min_size > preferred ? min_size : preferred;
    reply_block *b;
    if (r->spare != NULL && r->spare->size >= size) {
        b = r->spare;
        r->spare = NULL;
    } else {
        if (size > SIZE_MAX - sizeof(reply_block))
            abort();
        b = xmalloc(sizeof(reply_block) + size);
        b->size = size;
    }
    b->next = NULL;
    b->used = 0;
    return b;
}

static void block_link(reply *r, reply_block *b) {
    r->nblocks++;
    r->block_mem += block_bytes(b);
    if (r->tail != NULL)
        r->tail->next = b;
    else
        r->head = b;
    r->tail = b;
}

/* Where the next byte goes and how many fit there, or NULL when a new
 * block is needed. The inline buffer is used only while no block is
 * queued, which keeps it first in send order. */
static char *write_space(reply *r, size_t *room) {
    if (r->head == NULL) {
        *room = REPLY_INLINE_SIZE - r->inline_used;
        return *room ? r->inline_buf + r->inline_used : NULL;
    }
    *room = r->tail->size - r->tail->used; /* 0 for an unfilled defer */
    return *room ? r->tail->data + r->tail->used : NULL;
}

/* Record n bytes just written at write_space(). */
static void commit(reply *r, size_t n) {
    if (r->head == NULL)
        r->inline_used += n;
    else
        r->tail->used += n;
    r->pending += n;
}

static void append(reply *r, const void *src, size_t n) {
    const char *s = src;
    while (n > 0) {
        size_t room;
        char *dst = write_space(r, &room);
        if (dst == NULL) {
            block_link(r, block_new(r, 0));
            continue;
        }
        size_t chunk = n < room ? n : room;
        memcpy(dst, s, chunk);
        commit(r, chunk);
        s += chunk;
        n -= chunk;
    }
}

/* Append text with every CR/LF turned into a space, so that a status or
 * error line can never break the protocol framing. */
static void append_sanitized(reply *r, const char *text, size_t n) {
    char chunk[256];
    while (n > 0) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        for (size_t i = 0; i < k; i++)
            chunk[i] = (text[i] == '\r' || text[i] == '\n') ? ' ' : text[i];
        append(r, chunk, k);
        text += k;
        n -= k;
    }
}

/* Format "<type><v>\r\n" into buf (LINE_MAX_LEN bytes). Returns length. */
static size_t format_line_ll(char *buf, char type, long long v) {
    buf[0] = type;
    size_t n = 1 + util_ll2str(buf + 1, LINE_MAX_LEN - 1, v);
    buf[n++] = '\r';
    buf[n++] = '\n';
    return n;
}

static size_t format_line_ull(char *buf, char type, unsigned long long v) {
    buf[0] = type;
    size_t n = 1 + util_ull2str(buf + 1, LINE_MAX_LEN - 1, v);
    buf[n++] = '\r';
    buf[n++] = '\n';
    return n;
}

static void emit_line_ll(reply *r, char type, long long v) {
    char buf[LINE_MAX_LEN];
    append(r, buf, format_line_ll(buf, type, v));
}

static void emit_line_ull(reply *r, char type, unsigned long long v) {
    char buf[LINE_MAX_LEN];
    append(r, buf, format_line_ull(buf, type, v));
}

/* "<type><prelen+n>\r\n<pre><payload>\r\n" - bulk and verbatim strings.
 * When the element does not fit where writing is and exceeds a regular
 * block, it gets one block of exactly its size, so a big value is neither
 * split across many blocks nor copied twice. */
static void emit_blob(reply *r, char type, const char *pre, size_t prelen,
                      const void *payload, size_t n) {
    if (n > SIZE_MAX - LINE_MAX_LEN - prelen - 2)
        abort();
    char hdr[LINE_MAX_LEN];
    size_t hlen = format_line_ull(hdr, type, (unsigned long long)(prelen + n));
    size_t total = hlen + prelen + n + 2;
    size_t room;
    char *dst = write_space(r, &room);
    if (dst != NULL && room >= total) {
        /* Common case: the whole element fits where we are writing. */
        memcpy(dst, hdr, hlen);
        if (prelen) /* pre may be NULL: memcpy must not see it */
            memcpy(dst + hlen, pre, prelen);
        memcpy(dst + hlen + prelen, payload, n);
        memcpy(dst + hlen + prelen + n, "\r\n", 2);
        commit(r, total);
        return;
    }
    if (dst == NULL)
        room = 0;
    if (room < total && total > REPLY_BLOCK_SIZE)
        block_link(r, block_new(r, total));
    append(r, hdr, hlen);
    append(r, pre, prelen);
    append(r, payload, n);
    append(r, "\r\n", 2);
}

/* ---- encoders ----------------------------------------------------------- */

void reply_raw(reply *r, const void *p, size_t n) { append(r, p, n); }

void reply_status(reply *r, const char *s) {
    append(r, "+", 1);
    append_sanitized(r, s, strlen(s));
    append(r, "\r\n", 2);
}

void reply_ok(reply *r) { append(r, "+OK\r\n", 5); }

void reply_error(reply *r, const char *text) {
    /* Tolerate callers that pass Redis-style "-ERR ..." text. */
    if (text[0] == '-')
        text++;
    append(r, "-", 1);
    append_sanitized(r, text, strlen(text));
    append(r, "\r\n", 2);
}

void reply_errorf(reply *r, const char *fmt, ...) {
    char stack[512];
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(stack, sizeof(stack), fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        reply_error(r, "ERR internal error formatting a reply");
        return;
    }
    if ((size_t)n < sizeof(stack)) {
        va_end(ap2);
        reply_error(r, stack);
        return;
    }
    char *heap = xmalloc((size_t)n + 1);
    vsnprintf(heap, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    reply_error(r, heap);
    free(heap);
}

void reply_int(reply *r, long long v) { emit_line_ll(r, ':', v); }

void reply_bulk(reply *r, const void *p, size_t n) {
    emit_blob(r, '$', NULL, 0, p, n);
}

void reply_bulk_cstr(reply *r, const char *s) { reply_bulk(r, s, strlen(s)); }

void reply_bulk_ll(reply *r, long long v) {
    char digits[24];
    size_t n = util_ll2str(digits, sizeof(digits), v);
    reply_bulk(r, digits, n);
}

void reply_null(reply *r) {
    if (r->proto == 3)
        append(r, "_\r\n", 3);
    else
        append(r, "$-1\r\n", 5);
}

void reply_null_array(reply *r) {
    if (r->proto == 3)
        append(r, "_\r\n", 3);
    else
        append(r, "*-1\r\n", 5);
}

void reply_array(reply *r, size_t n) { emit_line_ull(r, '*', n); }

/* RESP2 has no map: a flat array of 2n items. n beyond SIZE_MAX/2 cannot
 * describe real data; the product is computed unsigned (no UB). */
void reply_map(reply *r, size_t n) {
    if (r->proto == 3)
        emit_line_ull(r, '%', n);
    else
        emit_line_ull(r, '*', (unsigned long long)n * 2);
}

void reply_set(reply *r, size_t n) { emit_line_ull(r, r->proto == 3 ? '~' : '*', n); }

void reply_push(reply *r, size_t n) { emit_line_ull(r, r->proto == 3 ? '>' : '*', n); }

void reply_double(reply *r, double v) {
    char text[64];
    size_t n = util_d2str(text, sizeof(text), v);
    if (r->proto == 3) {
        append(r, ",", 1);
        append(r, text, n);
        append(r, "\r\n", 2);
    } else {
        reply_bulk(r, text, n);
    }
}

void reply_bool(reply *r, int v) {
    if (r->proto == 3)
        append(r, v ? "#t\r\n" : "#f\r\n", 4);
    else
        append(r, v ? ":1\r\n" : ":0\r\n", 4);
}

void reply_verbatim(reply *r, const char *p, size_t n, const char *fmt) {
    if (r->proto != 3) {
        reply_bulk(r, p, n);
        return;
    }
    /* The format is exactly three characters; anything else would corrupt
     * the "xxx:" prefix, so fall back to plain text. */
    char pre[4] = {'t', 'x', 't', ':'};
    if (fmt != NULL && strnlen(fmt, 4) == 3)
        memcpy(pre, fmt, 3);
    emit_blob(r, '=', pre, sizeof(pre), p, n);
}

/* ---- deferred aggregate headers ----------------------------------------- */

/* Queue an unfilled header slot and return it. The handle stays valid until
 * reply_defer_set (call it exactly once) or reply_reset/reply_free, which
 * free it. Until it is set, reply_iov offers nothing from this point on. */
reply_deferred reply_defer(reply *r) {
    reply_block *b = xmalloc(sizeof(reply_block) + DEFER_CAP);
    b->next = NULL;
    b->used = 0;
    b->size = 0; /* unfilled: see the file comment */
    block_link(r, b);
    return b;
}

/* Write the aggregate header for n elements (pairs for a map) into the slot
 * d, encoded for the connection's current protocol. */
void reply_defer_set(reply *r, reply_deferred d, enum reply_agg kind, size_t n) {
    char type = '*';
    unsigned long long count = n;
    switch (kind) {
    case REPLY_AGG_ARRAY:
        break;
    case REPLY_AGG_MAP:
        if (r->proto == 3)
            type = '%';
        else
            count = (unsigned long long)n * 2;
        break;
    case REPLY_AGG_SET:
        type = r->proto == 3 ? '~' : '*';
        break;
    case REPLY_AGG_PUSH:
        type = r->proto == 3 ? '>' : '*';
        break;
    }
    size_t len = format_line_ull(d->data, type, count);
    d->used = len;
    d->size = DEFER_CAP; /* now an ordinary (small) block */
    r->pending += len;
}

/* ---- sending ------------------------------------------------------------ */

/* Fill iov with up to max non-empty segments in send order, the first one
 * starting after the bytes already sent. Stops in front of an unfilled
 * deferred header. The pointers stay valid until the next reply_consume
 * or reply_reset; appending does not move them. Returns the count. */
int reply_iov(reply *r, struct iovec *iov, int max) {
    int count = 0;
    size_t skip = r->sent_head; /* applies to the first segment only */
    if (r->inline_used > 0 && count < max) {
        iov[count].iov_base = r->inline_buf + skip;
        iov[count].iov_len = r->inline_used - skip;
        count++;
        skip = 0;
    }
    for (reply_block *b = r->head; b != NULL && count < max; b = b->next) {
        if (is_unfilled_defer(b))
            break; /* later bytes must wait for this header */
        if (b->used == 0)
            continue;
        iov[count].iov_base = b->data + skip;
        iov[count].iov_len = b->used - skip;
        count++;
        skip = 0;
    }
    return count;
}

/* Unlink and release the head block. */
static void pop_head(reply *r) {
    reply_block *b = r->head;
    r->head = b->next;
    if (r->head == NULL)
        r->tail = NULL;
    r->nblocks--;
    r->block_mem -= block_bytes(b);
    block_release(r, b);
}

/* Drop n sent bytes from the front, releasing finished blocks (one is kept
 * as the spare). n larger than what reply_iov could offer is clamped. */
void reply_consume(reply *r, size_t n) {
    while (n > 0) {
        size_t left;
        if (r->inline_used > 0) {
            left = r->inline_used - r->sent_head;
        } else if (r->head != NULL && !is_unfilled_defer(r->head)) {
            left = r->head->used - r->sent_head;
        } else {
            return; /* more than was offered: nothing left to drop */
        }
        if (n < left) {
            r->sent_head += n;
            r->pending -= n;
            return;
        }
        n -= left;
        r->pending -= left;
        r->sent_head = 0;
        if (r->inline_used > 0)
            r->inline_used = 0;
        else
            pop_head(r);
    }
}
