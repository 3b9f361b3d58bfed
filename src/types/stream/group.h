/* group.h - consumer groups of a stream: the group's last-delivered ID and
 * entries-read counter, its pending entries list (PEL) and its consumers,
 * each with its own view of the PEL.
 *
 * Both PELs are ordered maps from entry ID to a pending-entry record
 * (idmap: a skip list, O(log n) insert, find and delete, ordered walk).
 * One record (stream_nack) is shared by the group PEL and its owner's PEL.
 * Consumers are kept in an array sorted by name (XINFO order).
 *
 * Not thread-safe: the caller holds the shard lock of the stream's key. */
#ifndef PIER_GROUP_H
#define PIER_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"

#define IDMAP_MAX_LEVEL 24

typedef struct idmap_node {
    stream_id id;
    void *val;
    int level;
    struct idmap_node *next[];
} idmap_node;

typedef struct idmap {
    idmap_node *head; /* sentinel with IDMAP_MAX_LEVEL links */
    int level;
    size_t count;
    uint64_t rng;
} idmap;

void idmap_init(idmap *m);
void idmap_free(idmap *m); /* the values are the caller's */
/* Insert id (must be absent). */
void idmap_insert(idmap *m, stream_id id, void *val);
void *idmap_find(const idmap *m, stream_id id);
/* Remove id; returns its value or NULL when absent. */
void *idmap_remove(idmap *m, stream_id id);
/* First node with an ID >= id (NULL at the end); walk with next[0]. */
idmap_node *idmap_seek(const idmap *m, stream_id id);
idmap_node *idmap_first(const idmap *m);
idmap_node *idmap_last(const idmap *m);

typedef struct stream_consumer {
    char *name;
    size_t nlen;
    int64_t seen_time; /* last time it read or claimed (wall ms) */
    idmap pel;         /* id -> stream_nack* owned by the group */
} stream_consumer;

typedef struct stream_nack {
    stream_id id;
    int64_t delivery_time;   /* wall ms of the last delivery */
    uint64_t delivery_count;
    stream_consumer *owner;
} stream_nack;

#define GROUP_ENTRIES_READ_UNKNOWN (-1)

struct stream_group {
    char *name;
    size_t nlen;
    stream_id last_id;    /* last delivered ID */
    int64_t entries_read; /* GROUP_ENTRIES_READ_UNKNOWN when not known */
    idmap pel;            /* id -> stream_nack* (owns the records) */
    stream_consumer **cons;
    size_t ncons, ccap;
};

stream_consumer *group_consumer_find(const stream_group *g, const char *name, size_t n);
/* NULL when a consumer of that name exists. */
stream_consumer *group_consumer_create(stream *s, stream_group *g, const char *name,
                                       size_t n, int64_t now_ms);
/* Delete a consumer and its pending entries. Returns how many entries it
 * had pending, or -1 when there is no such consumer. */
long long group_consumer_delete(stream *s, stream_group *g, const char *name, size_t n);

/* A new pending entry delivered now to c (id must not be pending). */
stream_nack *group_nack_add(stream *s, stream_group *g, stream_consumer *c, stream_id id,
                            int64_t delivery_time, uint64_t delivery_count);
stream_nack *group_nack_find(const stream_group *g, stream_id id);
/* Move a pending entry to another consumer. */
void group_nack_transfer(stream_nack *nk, stream_consumer *to);
/* XACK one ID: returns 1 when it was pending. */
int group_ack(stream *s, stream_group *g, stream_id id);

/* Lag / entries-read bookkeeping as Redis 7.0 defines it. */
/* Entries read by a reader at `id`, or GROUP_ENTRIES_READ_UNKNOWN when it
 * cannot be known (tombstones in between). */
int64_t stream_estimate_read(const stream *s, stream_id id);
/* Are there tombstones at or after `from` (what lag counting must skip)? */
int stream_tombstones_after(const stream *s, stream_id from);
/* The group delivered `id` (> last_id) with '>': advance counters. */
void group_advance(const stream *s, stream_group *g, stream_id id);
/* XINFO lag: 1 with *lag set, 0 when unknown (nil). */
int group_lag(const stream *s, const stream_group *g, int64_t *lag);

#endif
