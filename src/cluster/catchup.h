/* catchup.h - a follower's catch-up from the AOF. A leader keeps only
 * the recent part of the log in memory (cl_log_trim); a follower that
 * needs older entries (back after a long time) gets them from the leader's
 * AOF, which holds every entry. The cluster thread, which executes every
 * command, never reads the AOF for this: it asks, a reader thread of this
 * module reads and parses, and the cluster thread sends what came back.
 *
 * The index: for every CATCHUP_STRIDE-th log index, the AOF position of its
 * newest record, and the position of every truncation. The newest record
 * of an index is the valid one, and the valid records of later indexes
 * all follow it in the file (they were appended after it: a truncation at
 * or below it would have replaced it), so a read starts at the indexed
 * entry at or below the one wanted and walks forward. A record it meets
 * is valid unless a truncation at or below its index comes after it
 * (superseded entries a deposed leader or an overwritten follower wrote).
 * The reader reads only bytes already written to the file, in chunks.
 *
 * Locks: catchup.lock is a leaf, taken under cluster.log_lock (appends) or
 * with nothing held. docs/ARCHITECTURE.md (thread model) and
 * docs/CONSISTENCY.md (limits) describe it. */
#ifndef PIER_CLUSTER_CATCHUP_H
#define PIER_CLUSTER_CATCHUP_H

#include <stddef.h>
#include <stdint.h>

#include "../persist/aof.h"
#include "entry.h"

#define CATCHUP_STRIDE 64 /* one indexed position per this many log entries */

typedef struct catchup catchup;

/* A finished read: the entries from `from` on, and the one before it
 * (whose term the APPEND needs), as far as the AOF had them. */
typedef struct catchup_result {
    struct catchup_result *next;
    int peer;           /* as asked */
    uint64_t term;      /* as asked: the leader term the request was made in */
    uint64_t from;      /* as asked */
    uint64_t lo;        /* ents[i] is entry lo + i: from - 1, or 1 */
    uint32_t count;
    entry **ents;
    char err[192];      /* why the read stopped early ("" when it did not) */
} catchup_result;

/* The index, empty (start-up fills it while the AOF loads). */
catchup *catchup_create(void);
/* Start the reader over the loaded AOF; ready(arg) is called on the
 * reader thread each time a result is waiting. 0, or -1. */
int catchup_start(catchup *c, aof *a, void (*ready)(void *arg), void *arg);
/* Stop the reader (a read in progress finishes first) and free all. */
void catchup_destroy(catchup *c);

/* The entry at `index` has its record at pos (newer than any before).
 * Appends of the log call it, in index order (under log_lock). */
void catchup_note_entry(catchup *c, uint64_t index, aof_pos pos);
/* The log dropped its entries from `index` on; the truncation's record
 * ends at pos (records of those indexes before pos are void). */
void catchup_note_truncate(catchup *c, uint64_t index, aof_pos pos);

/* Ask for the entries [from, hi) and the one before from, at most about
 * max_bytes of them, for peer (an index below 64) in leader term `term`.
 * Returns 0 when queued; -1 when a read for this peer is still under way
 * (or the reader is not started); -2 when the index does not cover from. */
int catchup_request(catchup *c, int peer, uint64_t term, uint64_t from, uint64_t hi,
                    size_t max_bytes);
/* The finished reads, oldest first (a list through next), or NULL. */
catchup_result *catchup_take(catchup *c);
void catchup_result_free(catchup_result *r);

#endif
