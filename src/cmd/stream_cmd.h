/* stream_cmd.h - helpers shared by the stream command files (streams.c,
 * streams_group.c): stream lookup, ID parsing with Redis's error texts,
 * entry replies. Private to src/cmd/. */
#ifndef PIER_STREAM_CMD_H
#define PIER_STREAM_CMD_H

#include "cmd/command.h"
#include "types/stream/group.h"
#include "types/stream/stream.h"

#define ERR_INVALID_ID "ERR Invalid stream ID specified as stream command argument"

/* The stream at argv[i] (caller holds its shard lock). NULL when the key
 * is missing; NULL with *wrongtype = 1 (WRONGTYPE replied) when it holds
 * another type. read != 0 counts a keyspace hit or miss. */
stream *xs_lookup(cmd_ctx *c, int i, int read, int *wrongtype);
/* Create an empty stream at argv[i] (the key must not exist). */
stream *xs_create(cmd_ctx *c, int i);

/* Parse argv[i] as "ms" or "ms-seq" (seq = missing_seq when absent).
 * strict == 0 also takes "-" and "+". seq_given (may be NULL) tells
 * whether "-seq" was there; with seq_given non-NULL "ms-*" is accepted
 * (seq_given = 0). Replies ERR_INVALID_ID (when reply != 0) and returns 0
 * on error. */
int xs_parse_id(cmd_ctx *c, int i, stream_id *id, uint64_t missing_seq, int strict,
                int *seq_given, int want_reply);
/* A range bound: "(" prefix = exclusive (adjusted here, with Redis's
 * "invalid start/end ID for the interval" errors), "-" / "+". */
int xs_parse_range_bound(cmd_ctx *c, int i, stream_id *id, int is_end);

void xs_reply_id(cmd_ctx *c, stream_id id);
/* [id, [field, value, ...]] of the entry the iterator is on. */
void xs_reply_entry(cmd_ctx *c, stream_iter *it, stream_id id, size_t nfv);
/* The single entry id as [id, [fv...]]; returns 0 (nothing replied) when
 * it does not exist. */
int xs_reply_one(cmd_ctx *c, const stream *s, stream_id id);
/* ID of the last live entry (0-0 when empty). */
stream_id xs_last_live_id(const stream *s);

/* Group-reading part of XREADGROUP (streams_group.c): reply the entries
 * after the group's last ID (count 0 = all), add them to the PEL (unless
 * noack) and log the state change. */
void xs_reply_group_new(cmd_ctx *c, stream *s, stream_group *g, stream_consumer *cons,
                        long long count, int noack, const cmd_arg *key, const cmd_arg *group);
/* History of the consumer's PEL after `after` (explicit-ID XREADGROUP). */
void xs_reply_group_history(cmd_ctx *c, stream *s, stream_group *g, stream_consumer *cons,
                            stream_id after, long long count, const cmd_arg *key,
                            const cmd_arg *group);

/* "-NOGROUP No such key 'k' or consumer group 'g'..." texts. */
void xs_reply_nogroup_key(cmd_ctx *c, const cmd_arg *key, const cmd_arg *group,
                          const char *suffix);

#endif
