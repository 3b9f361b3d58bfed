/* reply.h - the reply writer: RESP2/RESP3 encoding into a per-connection
 * output queue.
 *
 * Replies go into a fixed inline buffer first and then into a list of
 * 16 KB blocks (bigger for one large bulk), so a reply never costs a malloc
 * in the common case and a pipeline of replies is written with one
 * writev(). The queue never shrinks a block in place; written blocks are
 * freed (one spare block is kept to avoid malloc churn).
 *
 * Type mapping follows Redis: in RESP2 a map is a flat array of 2n items,
 * a set is an array, a double is a bulk string, a bool is :1/:0, null is
 * $-1 (or *-1 for a null array), push is an array. */
#ifndef PIER_REPLY_H
#define PIER_REPLY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define REPLY_INLINE_SIZE (16 * 1024)
#define REPLY_BLOCK_SIZE (16 * 1024)

typedef struct reply_block {
    struct reply_block *next;
    size_t used; /* bytes written into data */
    size_t size; /* capacity of data */
    char data[];
} reply_block;

typedef struct reply {
    int proto;          /* 2 or 3 */
    size_t pending;     /* bytes queued and not yet sent (for limits) */
    size_t sent_head;   /* bytes of the first segment already sent */
    /* segment 0 is the inline buffer; then the block list */
    size_t inline_used;
    reply_block *head, *tail;
    size_t nblocks, block_mem; /* blocks linked and their allocated bytes */
    reply_block *spare;
    char inline_buf[REPLY_INLINE_SIZE];
} reply;

void reply_init(reply *r);
void reply_free(reply *r);
/* Drop everything queued (connection is closing). */
void reply_reset(reply *r);

/* --- encoding. Each call appends one RESP element. --- */
void reply_raw(reply *r, const void *p, size_t n);      /* bytes as-is */
void reply_status(reply *r, const char *s);             /* +s\r\n */
void reply_ok(reply *r);                                /* +OK */
/* "-<text>\r\n"; text is the whole line, e.g. "ERR syntax error" or
 * "WRONGTYPE Operation against ...". CR/LF in text become spaces. */
void reply_error(reply *r, const char *text);
void reply_errorf(reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_int(reply *r, long long v);                  /* :v */
void reply_bulk(reply *r, const void *p, size_t n);     /* $n\r\n...\r\n */
void reply_bulk_cstr(reply *r, const char *s);
void reply_bulk_ll(reply *r, long long v);              /* integer as bulk */
void reply_null(reply *r);          /* RESP2 $-1, RESP3 _ */
void reply_null_array(reply *r);    /* RESP2 *-1, RESP3 _ */
void reply_array(reply *r, size_t n);
void reply_map(reply *r, size_t n);  /* n key/value pairs */
void reply_set(reply *r, size_t n);
void reply_push(reply *r, size_t n);
void reply_double(reply *r, double v);
void reply_bool(reply *r, int v);
/* RESP3 verbatim string ("=len\r\ntxt:..."); RESP2 plain bulk. fmt is
 * three chars, e.g. "txt". */
void reply_verbatim(reply *r, const char *p, size_t n, const char *fmt);

/* Deferred aggregate length, for replies whose count is known only at the
 * end (KEYS, SCAN, COMMAND). reply_defer() reserves a slot and returns a
 * handle; reply_defer_set() fills it with an array/map/set/push header. */
typedef struct reply_block *reply_deferred;
reply_deferred reply_defer(reply *r);
enum reply_agg { REPLY_AGG_ARRAY, REPLY_AGG_MAP, REPLY_AGG_SET, REPLY_AGG_PUSH };
void reply_defer_set(reply *r, reply_deferred d, enum reply_agg kind, size_t n);

/* CLIENT LIST's obl/oll/omem: bytes waiting in the inline buffer, blocks
 * queued, and the bytes those blocks hold allocated. */
void reply_mem_stats(const reply *r, size_t *obl, size_t *oll, size_t *omem);

/* --- sending --- */
/* Fill iov with up to max segments of pending output. Returns the count. */
int reply_iov(reply *r, struct iovec *iov, int max);
/* n bytes from the front of the queue were sent: drop them. */
void reply_consume(reply *r, size_t n);
static inline int reply_has_pending(const reply *r) { return r->pending != 0; }

#endif
