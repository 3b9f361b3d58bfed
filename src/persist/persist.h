/* persist.h - persistence for the single server: start-up loading, the
 * AOF (propagation hook, group commit, background fsync, rewrites),
 * snapshots (SAVE, BGSAVE, save rules, the final save on shutdown) and
 * the one background thread that drives the periodic parts. The server
 * owns one `persist`; docs/PERSISTENCE.md describes the behaviour.
 *
 * Threads: loop threads call persist_before_reply (their before-sleep
 * hook) and, through the dispatcher's propagate hook, aof_append. The
 * persistence thread reaps children, applies the save rules and the
 * automatic rewrite, and fsyncs everysec. SAVE/BGSAVE/BGREWRITEAOF run on
 * the loop thread of the client that sent them.
 *
 * Lock order: child_lock -> shard locks -> aof io_lock -> aof buf_lock.
 * Forking takes every shard lock (ascending) so the child sees a
 * consistent keyspace; the child only reads it and writes its file. */
#ifndef PIER_PERSIST_H
#define PIER_PERSIST_H

#include <stdint.h>

#include "../cmd/command.h"
#include "../server/config.h"

typedef struct persist persist;

/* Total dataset changes since start-up (the loop threads' dirty counters
 * summed). */
typedef uint64_t persist_dirty_fn(void *arg);

/* Create (no file touched, no thread started). env is the dispatcher's
 * environment: loading replays through it, and the AOF installs its
 * propagate hook in it. */
persist *persist_create(keyspace *ks, const pier_config *cfg, cmd_env *env,
                        persist_dirty_fn *dirty, void *dirty_arg);
void persist_destroy(persist *p);

/* Cluster mode (before persist_load): every replayed AOF record goes to
 * fn first (1: consumed, 0: an ordinary command, -1: malformed), and
 * rewrites are refused (the AOF is the node's replicated log). */
typedef int persist_replay_fn(void *arg, int argc, const cmd_arg *argv);
void persist_set_cluster_mode(persist *p, persist_replay_fn *fn, void *arg);
/* The AOF (NULL when appendonly is off). */
struct aof *persist_aof(persist *p);

/* Start-up, before any loop thread runs: load the AOF (appendonly yes and
 * a manifest exists) or else the snapshot, then open the AOF for
 * appending. Returns 0, or -1 with a message naming file and offset. */
int persist_load(persist *p, char *err, size_t errlen);

/* Start the persistence thread. */
void persist_start(persist *p);

/* A loop thread is about to send replies for commands whose AOF records
 * end at `need`: make them written (appendfsync always: and fsynced).
 * Call with no shard lock held. Returns 0, or -1 when they are not (the
 * AOF cannot be written now): those replies must wait
 * (persist_reply_ready), and the caller retries later. */
int persist_before_reply(persist *p, uint64_t need);
/* 1 when replies waiting for the AOF records up to `need` may be sent. */
int persist_reply_ready(persist *p, uint64_t need);

/* Shutdown flags (SHUTDOWN's arguments). */
#define PERSIST_SHUT_NOSAVE  CMD_SHUTDOWN_NOSAVE
#define PERSIST_SHUT_SAVE    CMD_SHUTDOWN_SAVE
#define PERSIST_SHUT_FORCE   CMD_SHUTDOWN_FORCE
#define PERSIST_SHUT_COMMAND 8 /* SHUTDOWN already ran persist_shutdown_prepare */

/* SHUTDOWN, on the client's thread while everything still runs: flush and
 * fsync the AOF, then the final snapshot (SAVE, or the save rules unless
 * NOSAVE). Returns 0 when the server may stop (also after a failure with
 * FORCE), -1 with Redis's error line in msg ("ERR Errors trying to
 * SHUTDOWN. Check logs.") after logging what failed. */
int persist_shutdown_prepare(persist *p, int flags, char *msg, size_t len);

/* After the loop threads stopped: stop the thread, stop a running child,
 * then the final flush+fsync of the AOF and the final snapshot as above
 * (with PERSIST_SHUT_COMMAND, only when something changed since
 * SHUTDOWN's own save). Returns 0, or -1 when the flush or the save
 * failed (logged: the process must not exit 0); 0 with FORCE. */
int persist_shutdown(persist *p, int flags);

/* Commands. 0 with the status text in msg, -1 with the error line. */
int persist_save(persist *p, char *msg, size_t len);
int persist_bgsave(persist *p, int schedule, char *msg, size_t len);
int persist_bgrewriteaof(persist *p, char *msg, size_t len);
long long persist_lastsave(persist *p);

typedef struct persist_status {
    int aof_enabled, aof_rewrite_in_progress, aof_rewrite_scheduled;
    int aof_last_rewrite_ok, aof_last_write_ok;
    int bgsave_in_progress, last_bgsave_ok;
    long long changes_since_save, last_save_time, aof_current_size, aof_base_size;
    long long rewrites, bgsaves;
} persist_status;

void persist_get_status(persist *p, persist_status *st);

#endif
