/* stream.h - the storage of one stream (a Redis stream value): an
 * append-only log of entries (ID + field/value pairs) packed into large
 * contiguous blocks, plus its consumer groups (group.c).
 *
 * Layout (docs/ARCHITECTURE.md, "Streams"):
 *   - Entries are packed into blocks of up to STREAM_BLOCK_BYTES. A block
 *     starts small and doubles until it reaches that size, so a short
 *     stream costs little and a long one costs close to its payload (a few
 *     bytes of header per entry: flag, ID deltas, lengths as varints).
 *   - An index (sorted array) of blocks by base ID gives O(log n) seeks.
 *   - XDEL marks an entry deleted (tombstone); a block that is mostly
 *     tombstones is compacted in place, an empty block is freed.
 *   - Trimming frees whole head blocks; exact trimming then tombstones the
 *     remaining head entries of one block.
 *
 * Not thread-safe: the caller holds the shard lock of the stream's key. */
#ifndef PIER_STREAM_H
#define PIER_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define STREAM_BLOCK_BYTES (64 * 1024)

typedef struct stream_id {
    uint64_t ms, seq;
} stream_id;

#define STREAM_ID_MAX ((stream_id){UINT64_MAX, UINT64_MAX})
#define STREAM_ID_ZERO ((stream_id){0, 0})
/* Room for "ms-seq" with both parts at their maximum, plus a NUL. */
#define STREAM_ID_STRLEN 42

int stream_id_cmp(stream_id a, stream_id b);
static inline int stream_id_is_zero(stream_id a) { return a.ms == 0 && a.seq == 0; }
/* The next / previous ID; returns -1 (id unchanged) at the ends. */
int stream_id_incr(stream_id *id);
int stream_id_decr(stream_id *id);
/* "ms-seq" into buf (>= STREAM_ID_STRLEN bytes); returns its length. */
size_t stream_id_format(stream_id id, char *buf);

/* A borrowed byte string. */
typedef struct stream_str {
    const char *p;
    size_t n;
} stream_str;

typedef struct stream stream;
typedef struct stream_group stream_group;

stream *stream_new(void);
void stream_free(stream *s);
/* Bytes held by the stream and its groups. O(1): kept as a running sum. */
size_t stream_mem(const stream *s);

uint64_t stream_length(const stream *s);          /* live entries */
stream_id stream_last_id(const stream *s);        /* last generated ID */
stream_id stream_max_deleted_id(const stream *s); /* highest XDEL'd ID */
uint64_t stream_entries_added(const stream *s);   /* ever appended */
size_t stream_block_count(const stream *s);
/* First live entry's ID (0-0 when empty): O(one block). */
stream_id stream_first_id(const stream *s);

/* XSETID: the caller has checked the rules (not below the top entry). */
void stream_set_meta(stream *s, stream_id last, uint64_t entries_added,
                     stream_id max_deleted);

/* Append an entry; id must be greater than stream_last_id (the caller
 * checks and replies the error). fv holds nfv strings: field, value,
 * field, value... The bytes are copied. */
void stream_append(stream *s, stream_id id, const stream_str *fv, size_t nfv);

/* Append count messages as entries first, first+1, ... (by sequence,
 * all in first's millisecond), each with the single field "data" whose
 * value is the message: the batch protocol's append (docs/PROTOCOL.md).
 * payload is count x (u32 little-endian length, bytes), exactly len bytes,
 * validated by the caller (batch_payload_valid); the caller has checked
 * that first > stream_last_id and that first.seq + count - 1 does not
 * overflow. Each message is copied once, straight into its block. */
void stream_append_batch(stream *s, stream_id first, const unsigned char *payload, size_t len,
                         uint32_t count);

/* Exactly-once state of the batch protocol: per publisher client id
 * (non-zero), the last batch sequence appended to this stream. Kept with
 * the stream so it travels with it through snapshots and the AOF. */
uint64_t stream_pub_seq(const stream *s, uint64_t client_id); /* 0 = none yet */
void stream_pub_set(stream *s, uint64_t client_id, uint64_t seq);
size_t stream_pub_count(const stream *s);
/* The i-th publisher in client id order. */
void stream_pub_at(const stream *s, size_t i, uint64_t *client_id, uint64_t *seq);

/* Tombstone one entry. Returns 1 when a live entry was deleted. */
int stream_delete(stream *s, stream_id id);

/* Trimming. approx != 0: whole blocks only (never fewer entries than
 * asked to keep); limit caps the entries removed (0 = no cap). Returns the
 * number of entries removed. */
uint64_t stream_trim_maxlen(stream *s, uint64_t maxlen, int approx, uint64_t limit);
uint64_t stream_trim_minid(stream *s, stream_id minid, int approx, uint64_t limit);

/* --- iteration over live entries in [start, end], forward or reverse --- */
typedef struct stream_iter {
    const stream *s;
    stream_id start, end;
    int rev;
    size_t block;         /* index of the current block */
    size_t pos;           /* forward: offset of the next entry */
    uint32_t *offs;       /* reverse: entry offsets of the current block */
    size_t noffs, offs_cap;
    int started;
    /* the current entry */
    const unsigned char *fields; /* encoded field/value strings */
    const unsigned char *fields_end;
} stream_iter;

void stream_iter_init(stream_iter *it, const stream *s, stream_id start, stream_id end,
                      int rev);
/* Move to the next live entry in range. Returns 1 with *id and *nfv (the
 * count of field and value strings) set, 0 at the end. */
int stream_iter_next(stream_iter *it, stream_id *id, size_t *nfv);
/* The next string of the current entry (call nfv times). Valid until the
 * stream is modified. */
stream_str stream_iter_str(stream_iter *it);
void stream_iter_free(stream_iter *it);

/* Does the live entry id exist? */
int stream_has_entry(const stream *s, stream_id id);

/* --- serialization (stream_codec.c): snapshots, AOF rewrite bases --- */
/* Receives the encoding in pieces. */
typedef void stream_sink_fn(void *arg, const void *p, size_t n);
/* Write the whole stream (entries, metadata, groups, consumers, PELs)
 * through sink, without allocating (safe in a forked child). sink NULL
 * only measures. Returns the encoded length. */
uint64_t stream_serialize(const stream *s, stream_sink_fn *sink, void *arg);
/* Rebuild a stream from its encoding; NULL when the bytes are not a
 * valid encoding (every length and order is checked). */
stream *stream_deserialize(const unsigned char *p, size_t n);

/* --- consumer groups (group.c) --- */
/* Groups are kept sorted by name (XINFO order, as Redis's radix tree). */
size_t stream_group_count(const stream *s);
stream_group *stream_group_at(const stream *s, size_t i);
stream_group *stream_group_find(const stream *s, const char *name, size_t n);
/* NULL when a group of that name exists. */
stream_group *stream_group_create(stream *s, const char *name, size_t n, stream_id last,
                                  int64_t entries_read);
/* Returns 1 when it existed. */
int stream_group_destroy(stream *s, const char *name, size_t n);

/* Internal: group.c adjusts the stream's memory total. */
void stream_mem_adjust(stream *s, long long delta);
/* Internal: group storage hung on the stream. */
typedef struct stream_groups {
    stream_group **v;
    size_t n, cap;
} stream_groups;
stream_groups *stream_groups_of(stream *s);
void stream_groups_free(stream_groups *g);

#endif
