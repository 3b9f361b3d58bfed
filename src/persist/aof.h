/* aof.h - the append-only file: a multi-part log (manifest + base snapshot
 * + incremental RESP files, see manifest.h) and the buffer that every
 * loop thread appends executed writes to.
 *
 * Locks (docs/ARCHITECTURE.md, lock order):
 *   shard locks -> io_lock -> buf_lock
 * buf_lock guards the pending buffer; it is taken under shard locks by the
 * dispatcher (append), held for a memcpy. io_lock guards the file
 * descriptor and serializes write()/fsync(); it is taken with no shard lock
 * held (loop before-sleep, the persistence thread), except by the file
 * switch at fork time, which holds every shard lock. Offsets are counted in
 * bytes since start-up: appended (under buf_lock) >= written >= synced. */
#ifndef PIER_AOF_H
#define PIER_AOF_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../cmd/command.h"
#include "manifest.h"

#define AOF_PATH_MAX 4096

/* Where a record is in the AOF: the file's number in the manifest (high 16
 * bits) and the byte offset in that file. Stable while the manifest keeps
 * its files, i.e. until a rewrite (cluster mode never rewrites: the AOF is
 * its log, and these positions index it). */
typedef uint64_t aof_pos;
#define AOF_POS(file, off) (((uint64_t)(file) << 48) | (uint64_t)(off))
#define AOF_POS_FILE(p) ((int)((p) >> 48))
#define AOF_POS_OFF(p) ((p) & ((1ull << 48) - 1))
#define AOF_POS_NONE UINT64_MAX

typedef struct aof_buf {
    char *p;
    size_t len, cap;
} aof_buf;

typedef struct aof {
    char dir[AOF_PATH_MAX];       /* <dir>/<appenddirname> */
    char prefix[256];             /* appendfilename */
    char manifest_name[300];      /* <prefix>.manifest */
    char legacy[AOF_PATH_MAX];    /* <dir>/<prefix>: Redis's single-file AOF */
    /* The current manifest. Changed only by the rewrite start and finish,
     * which the persistence layer serializes (one child at a time). */
    manifest man;

    pthread_mutex_t io_lock;
    int fd;                       /* current incr file (io_lock) */
    aof_buf spare;                /* swapped with pending (io_lock) */

    pthread_mutex_t buf_lock;
    aof_buf pending;              /* bytes not yet written (buf_lock) */
    uint64_t appended;            /* (buf_lock) */

    _Atomic uint64_t written, synced;
    /* Failures (0 = none): the errno of the last failed write, kept until
     * a write succeeds; of the last failed fsync, until one succeeds.
     * While either is set, writes are refused (-MISCONF, through
     * status) and the loops retry at most once a second (retry_at_ms). */
    _Atomic int write_errno, fsync_errno;
    _Atomic int64_t retry_at_ms;  /* monotonic */
    cmd_disk_status *status;      /* where aof_errno is published; may be NULL */
    _Atomic long long base_size;  /* bytes of the base file */
    _Atomic long long old_incr_size; /* incr files before the current one */
    _Atomic long long cur_incr_size; /* the current incr file */
    _Atomic long long rewrite_base_size; /* total size after the last rewrite */
    uint64_t tail_base;           /* the current incr file's size when opened: append offset 0
                                     lands there (aof_tail_pos) */
    aof_pos replay_pos;           /* while aof_load runs exec: where its record starts */
} aof;

/* Set up paths (creating the directory) and locks; no file is opened.
 * Returns 0, or -1 with a message in err. */
int aof_init(aof *a, const char *dir, const char *dirname, const char *prefix,
             char *err, size_t errlen);
void aof_destroy(aof *a);

/* Executes one replayed command; returns 0, or -1 when the command is
 * unknown (the log is then considered corrupt). */
typedef int aof_exec_fn(void *arg, int argc, const cmd_arg *argv);

/* Load the AOF described by the manifest, if there is one: the base into
 * ks, then every incr file through exec. A truncated last command of the
 * LAST incr file is cut off (warning with file and offset); any other
 * damage fails. No file the manifest does not list is ever changed.
 * Returns 1 loaded, 0 no AOF at all (no manifest and no file one would
 * list), -1 error: damage (err names the file and offset), or AOF files
 * without their manifest (err names them; nothing touched). */
int aof_load(aof *a, keyspace *ks, int64_t now_ms, aof_exec_fn *exec, void *exec_arg,
             char *err, size_t errlen);

/* Start a fresh AOF from ks (at start-up, no other thread running): base
 * = snapshot of ks, one empty incr file, manifest. Returns 0 or -1 (err). */
int aof_create(aof *a, keyspace *ks, int64_t now_ms, char *err, size_t errlen);

/* Open the manifest's last incr file for appending (creating a new incr
 * file and manifest entry if the manifest has none). Returns 0 or -1. */
int aof_open_tail(aof *a, char *err, size_t errlen);

/* Append one command (name, then argv[1..argc)) as RESP. Called under the
 * command's shard locks. Returns the offset just past it. */
uint64_t aof_append(aof *a, cmd_arg name, int argc, const cmd_arg *argv);

/* Append bytes that already are one RESP record (a cluster log entry, as
 * it came off the bus). Returns the offset just past them. */
uint64_t aof_append_raw(aof *a, const void *p, size_t n);
/* Write the pending bytes to the file (and fdatasync when do_sync), unless
 * everything up to `upto` already is (group commit: one thread's write and
 * fsync cover every command appended before it). Call with no shard lock
 * held. Returns 0, or -1 when the bytes up to `upto` are not written (and
 * fsynced): a write failed now or, within the last second, before (then
 * nothing is tried: aof_flush_now retries). The bytes stay pending, in
 * order; a short write is cut off the file again, so the file always
 * ends with a whole record.
 * A failed fdatasync with do_sync (appendfsync always) exits the process
 * as Redis does: after a failed fsync the kernel may have dropped the
 * pages, so a later fsync that succeeds would not prove anything, and
 * replies promising durability are waiting for it. */
int aof_flush(aof *a, uint64_t upto, int do_sync);
/* aof_flush of everything, trying even within a second of a failure (the
 * persistence thread's once-a-second retry, Redis's serverCron retry). */
int aof_flush_now(aof *a, int do_sync);
/* The final flush at shutdown: write everything and fdatasync. Returns 0,
 * or -1 with errno (logged) when a write or the fsync failed. */
int aof_flush_final(aof *a);
/* Bytes up to here may be promised to a client: written (do_sync:
 * fsynced). */
uint64_t aof_durable(const aof *a, int do_sync);
/* 0, or the errno that makes the AOF fail now (a write, else an fsync). */
int aof_error(const aof *a);

/* The persistence thread's once-a-second step for everysec: write what is
 * pending and fdatasync, without holding io_lock during the fsync. A
 * failed fsync is retried the next second (writes are refused meanwhile),
 * as Redis does for everysec. */
void aof_sync_background(aof *a);

/* --- rewrite --- */

/* Before the fork, no shard lock held: create the next incr file and store
 * a manifest that lists it after the current files (so a crash at any
 * later point replays everything). Refused while writes to the AOF fail
 * (the switch must not split a record between two files). Returns the new
 * file's fd or -1. */
int aof_rewrite_prepare(aof *a, char *err, size_t errlen);

/* With EVERY shard lock held: write what is pending into the current
 * file and make new_fd the file appends go to. Leaves io_lock HELD (the
 * caller forks, releases the shard locks, then calls aof_switch_finish).
 * Returns the old fd. */
int aof_switch_begin(aof *a, int new_fd);
/* fdatasync and close the old file, then release io_lock. Returns 0, or
 * -1 with errno when the fsync failed (recorded as an fsync error: the
 * caller decides whether the fsync policy makes that fatal). */
int aof_switch_finish(aof *a, int old_fd);

/* The child wrote tmp_base: make it the new base (renamed to the next base
 * name), store the manifest [new base, current incr], delete the files no
 * longer listed. Returns 0 or -1 (err). */
int aof_rewrite_commit(aof *a, const char *tmp_base, char *err, size_t errlen);

/* --- reading records back (cluster catch-up: old log entries) --- */

/* While aof_load runs exec: the position of the record exec was handed. */
aof_pos aof_replay_pos(const aof *a);
/* The position of the byte an append put at offset `at` (bytes since
 * start-up: an aof_append* result minus the record's size), in the incr
 * file appends go to. Any thread. */
aof_pos aof_tail_pos(const aof *a, uint64_t at);
/* Read up to n bytes at pos, from any thread, while appends go on: never
 * past what has been written to that file. Returns the bytes read, 0 at
 * the end of that file's written bytes, -1 with errno (no such file). */
long aof_read_at(aof *a, aof_pos pos, void *buf, size_t n);
/* Files in the manifest (aof_pos file numbers are below this). */
int aof_nfiles(const aof *a);
/* Bytes of the whole AOF (base + incr files). */
long long aof_total_size(const aof *a);

/* --- checking (tools/pier-check-aof.c): the replay's own parser --- */

enum aof_check_status {
    AOF_CHECK_OK = 0,
    AOF_CHECK_TORN,    /* the data ends inside a command (or is zeros from
                          there on): what start-up cuts off the LAST file */
    AOF_CHECK_BAD,     /* malformed RESP */
    AOF_CHECK_UNKNOWN  /* a command fn refused (start-up refuses it too) */
};

typedef struct aof_check_result {
    int status;         /* enum aof_check_status */
    size_t ok_upto;     /* offset just past the last whole accepted command */
    uint64_t commands;  /* whole commands accepted */
} aof_check_result;

/* Walk an incr file's bytes with the parser start-up replays them with,
 * stopping at the first problem; fn (may be NULL) sees each whole command
 * and returns -1 for one it does not know. Start-up treats the file the
 * same way: TORN in the last file is cut off, anything else refused. */
void aof_check_image(const unsigned char *b, size_t len, aof_exec_fn *fn, void *arg,
                     aof_check_result *res);

#endif
