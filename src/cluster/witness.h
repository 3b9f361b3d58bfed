/* witness.h - a CURP witness (Park and Ousterhout, NSDI 2019): records of
 * updates the leader has not synced yet, indexed by 64-bit key hashes. It
 * accepts a record only if no recorded update touches any of its keys, so
 * all records commute and a new leader may replay them in any order.
 * Set-associative like RAMCloud's: a key hash picks a set, a record takes
 * a way in the set of each key, a full set rejects (slow path), never
 * blocks. Not thread-safe: it lives on the cluster thread. */
#ifndef PIER_WITNESS_H
#define PIER_WITNESS_H

#include <stddef.h>
#include <stdint.h>

#define WITNESS_MAX_KEYS 16 /* more keys: never recorded (slow path) */
/* Bounds of witness_create's shape. */
#define WITNESS_MAX_SETS_LOG2 24
#define WITNESS_MAX_WAYS 64

enum {
    WITNESS_ACCEPTED = 0,
    WITNESS_CONFLICT,      /* another record holds one of these key hashes */
    WITNESS_FULL,          /* a key's set has no free way (or out of memory) */
    WITNESS_OLD_TERM,      /* term < the frozen minimum */
    WITNESS_TOO_MANY_KEYS, /* nkeys outside 1..WITNESS_MAX_KEYS */
};

typedef struct witness witness;

/* What collect/stale hand out: the request's distinct key hashes, and its
 * bytes (the witness's copy, valid during the callback). */
typedef struct witness_rec {
    uint64_t term, cid, seq;
    int nkeys;
    uint64_t keys[WITNESS_MAX_KEYS];
    const void *req;
    size_t req_len;
} witness_rec;

/* Counters since create. accepted: new records (a retry counts in
 * retried instead); stale: records handed out, once per witness_stale. */
typedef struct witness_counters {
    uint64_t accepted, retried;
    uint64_t conflict, full, old_term, too_many; /* one per reject reason */
    uint64_t gc, stale, collected;
} witness_counters;

/* 2^sets_log2 sets x `ways` ways (12, 4: RAMCloud's shape). NULL when out
 * of memory or out of the bounds above. */
witness *witness_create(unsigned sets_log2, unsigned ways);
void witness_destroy(witness *w);

/* Record an update: ACCEPTED or the reject reason, checked in this order:
 * OLD_TERM, TOO_MANY_KEYS, (retry), CONFLICT, FULL. The same (cid, seq)
 * again while live (a retry, found through any shared key hash) answers
 * ACCEPTED with no second record and no self-conflict. All-or-nothing:
 * every key is checked before any is inserted. now_round (the caller's gc
 * round) is kept as the record's birth. The bytes are copied. */
int witness_record(witness *w, uint64_t term, uint64_t cid, uint64_t seq,
                   const uint64_t *keys, int nkeys, const void *req,
                   size_t req_len, uint64_t now_round);

/* (cid, seq) is synced: drop its record, found through any of the given
 * key hashes (a subset of its keys will do). Returns 1 when a record was
 * dropped, 0 when absent. */
int witness_gc(witness *w, uint64_t cid, uint64_t seq, const uint64_t *keys,
               int nkeys);

/* Start-up: put back a record read from the node's log of accepted
 * records, in the order they were accepted. Any record holding one of its
 * keys is dropped first: the witness accepted this one, so that one had
 * been dropped by then. The same (cid, seq) again keeps the first record.
 * Returns ACCEPTED, TOO_MANY_KEYS, or FULL (no way left in a set). */
int witness_restore(witness *w, uint64_t term, uint64_t cid, uint64_t seq,
                    const uint64_t *keys, int nkeys, const void *req,
                    size_t req_len, uint64_t now_round);

/* Call fn for each record born before `before_round` (it outlived several
 * gc rounds: its client died or it arrived late), oldest first; they stay
 * until gc'd. fn may gc the record it is handed, nothing else. Returns the
 * count. */
size_t witness_stale(witness *w, uint64_t before_round,
                     void (*fn)(void *arg, const witness_rec *r), void *arg);

/* Recovery: the leader of `new_term` collects every record; from now on
 * term < new_term is rejected for good (the minimum never goes down). All
 * records are dropped first, then fn sees each (oldest first), so fn may
 * use the witness freely. Returns the count. */
size_t witness_collect(witness *w, uint64_t new_term,
                       void (*fn)(void *arg, const witness_rec *r), void *arg);

/* Recovery without forgetting: like witness_collect, but the records stay
 * (until witness_gc drops them once their replayed entries commit), so a
 * new leader that dies before replicating its replays loses nothing: the
 * next one collects them again. fn must not change the witness. */
size_t witness_freeze(witness *w, uint64_t new_term,
                      void (*fn)(void *arg, const witness_rec *r), void *arg);
size_t witness_count(const witness *w);
uint64_t witness_min_term(const witness *w);
void witness_stats(const witness *w, witness_counters *st);
/* The set of a key hash (tests model the associativity with it). */
size_t witness_set_of(const witness *w, uint64_t key);

#endif
