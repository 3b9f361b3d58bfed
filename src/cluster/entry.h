/* entry.h - one replicated log entry, in the form it has everywhere: in
 * memory, on the cluster bus and in the node's AOF.
 *
 * An entry is the RESP array the AOF stores (so the AOF is the node's
 * durable log and a follower writes the bytes it received unchanged):
 *
 *   PIER.ENTRY <index> <term> <cid> <seq> <key hashes> <reply> {<argc> <arg>...}*
 *
 * - index, term: the entry's place in the log and the leader term that
 *   created it;
 * - cid, seq: the request id (RIFL) of the client request that produced it
 *   (0 0 for writes no client asked for: expiry, eviction, the no-op a new
 *   leader appends);
 * - key hashes: the request's keys as 64-bit hashes, 8 bytes each, little
 *   endian: witnesses drop their record of the request when it commits;
 * - reply: the reply the leader sent, kept in the exactly-once table of
 *   every node, so a retry after a failover gets the same answer;
 * - then the deterministic records the command wrote (one for SET, one per
 *   delivered entry for XREADGROUP, none for a no-op), each as its
 *   argument count then its arguments.
 *
 * The control records next to it in the AOF: PIER.VOTE <term> <voted-for>,
 * PIER.COMMIT <index>, PIER.TRUNCATE <index> (entries from index on are
 * void), and the witness's PIER.WITNESS and PIER.WGC (curp_witness.c).
 * docs/CONSISTENCY.md describes the log. */
#ifndef PIER_CLUSTER_ENTRY_H
#define PIER_CLUSTER_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "../cmd/command.h"

#define ENTRY_MAX_KEYS 1024          /* key hashes carried (more: none, the request is never witnessed) */
#define ENTRY_MAX_BYTES (512u << 20) /* one entry's encoded size */

typedef struct entry {
    uint64_t index, term;
    size_t len;      /* bytes of the encoded record */
    char data[];     /* the RESP array */
} entry;

/* Builds an entry: header fields first, then records one at a time. */
typedef struct entry_builder {
    char *p;
    size_t len, cap;
    size_t count_at;    /* where the array count is patched in */
    unsigned nargs;     /* array elements so far */
} entry_builder;

void eb_init(entry_builder *b);
void eb_free(entry_builder *b);
/* Start an entry (resets the builder). */
void eb_begin(entry_builder *b, uint64_t index, uint64_t term, uint64_t cid, uint64_t seq,
              const uint64_t *keys, size_t nkeys, const void *rep, size_t rep_len);
/* One record (argv[0] replaced by name when name.p is set). */
void eb_record(entry_builder *b, cmd_arg name, int argc, const cmd_arg *argv);
/* Append the records collected in src (a builder used without eb_begin:
 * eb_record calls only) after dst's header. */
void eb_append_records(entry_builder *dst, const entry_builder *src);
/* Forget src's records (keep its buffer). */
void eb_clear(entry_builder *b);
/* The finished entry (malloc'd; the builder keeps its buffer for reuse). */
entry *eb_finish(entry_builder *b);

/* An entry decoded into views into its bytes. */
typedef struct entry_view {
    uint64_t index, term, cid, seq;
    size_t nkeys;
    const unsigned char *keys;   /* nkeys * 8 bytes, little endian */
    const char *reply;
    size_t reply_len;
    int nrec;
    /* Every record's arguments, back to back; rec_at[i] is where record i
     * starts and rec_argc[i] its count. Owned by the view. */
    cmd_arg *args;
    int *rec_at, *rec_argc;
    size_t args_cap, rec_cap;
} entry_view;

void ev_view_init(entry_view *v);
void ev_view_free(entry_view *v);
/* Decode data[0..len) (an encoded PIER.ENTRY). Returns 0, or -1 with a
 * reason in err for anything malformed (the bytes come from the network
 * or a file: every length is checked). */
int entry_decode(const char *data, size_t len, entry_view *v, char *err, size_t errlen);
uint64_t entry_key_at(const entry_view *v, size_t i);

/* The key hash used by witnesses and the unsynced table: a fixed seed,
 * so every node computes the same hash for a key. */
uint64_t entry_key_hash(const char *key, size_t n);

/* A log entry holding a copy of data[0..len). */
entry *entry_new(uint64_t index, uint64_t term, const void *data, size_t len);
/* The entry whose bytes are argv as a RESP array (a record read back from
 * the AOF). */
entry *entry_from_argv(uint64_t index, uint64_t term, int argc, const cmd_arg *argv);

/* argv as a RESP array of bulk strings (malloc'd, *len set). */
char *resp_array_encode(int argc, const cmd_arg *argv, size_t *len);

/* Read a length-prefixed RESP array of bulk strings (AOF record form)
 * from buf: argc and views into buf. Returns bytes consumed, 0 when
 * incomplete, -1 when malformed. max_args bounds argc. */
long resp_array_decode(const char *buf, size_t len, cmd_arg *argv, int max_args, int *argc);

/* The same walk without a bound on argc: views of the first max_first
 * elements only. Returns the array's size in bytes, 0 when incomplete, -1
 * when malformed (a reader skipping records it does not need whole). */
long resp_array_span(const char *buf, size_t len, cmd_arg *first, int max_first, int *argc);

#endif
