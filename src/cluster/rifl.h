/* rifl.h - the exactly-once table (RIFL: Lee et al., SOSP 2015). A request
 * carries a client id (nonzero) and a seq (from 1, increasing per client,
 * slightly reordered by retries and pipelining). The result of every
 * applied request is kept, so a duplicate (a retry, a replayed witness
 * record) gets it instead of a second application. Per client: the highest
 * seq and a ring of the last `window` seqs. Clients idle too long are
 * dropped (the lease; with CURP, sync first). Not thread-safe (cluster
 * thread). Out of memory aborts: a lost record breaks exactly-once. */
#ifndef PIER_RIFL_H
#define PIER_RIFL_H

#include <stddef.h>
#include <stdint.h>

#define RIFL_MAX_WINDOW (1u << 20)

typedef struct rifl rifl;

enum { RIFL_NEW = 0, RIFL_DONE = 1, RIFL_STALE = 2 };

/* Results kept per client: the last `window` (1..RIFL_MAX_WINDOW) seqs. */
rifl *rifl_create(unsigned window);
void rifl_destroy(rifl *r);

/* NEW: never applied (a gap inside the window too). DONE: applied; *res
 * (non-NULL even if empty) and *len give the result, valid until the next
 * rifl call. STALE: seq <= highest - window: treat as applied, result gone.
 * res/len may be NULL. cid 0 or seq 0 means no exactly-once: NEW. */
int rifl_check(rifl *r, uint64_t cid, uint64_t seq, const void **res,
               size_t *len);

/* (cid, seq) was applied with this result (bytes copied). Ignored when
 * STALE, already DONE (the first result stands: the client may have seen
 * it) or cid/seq 0; any call but the last kind refreshes the idle time. */
void rifl_record(rifl *r, uint64_t cid, uint64_t seq, const void *res,
                 size_t len, int64_t now_ms);

/* Drop clients with no record for >= idle_ms; returns how many. */
size_t rifl_expire(rifl *r, int64_t now_ms, int64_t idle_ms);

size_t rifl_clients(const rifl *r);
size_t rifl_bytes(const rifl *r); /* requested bytes held, for INFO */

#endif
