/* cmd_harness.h - run commands in-process, without a server or a socket:
 * a keyspace, a configuration, a cmd_env and a small fake host (cmd_host)
 * around the dispatcher (resolve, admit, run), for the unit tests of each
 * command family (tests/unit/test_cmd_<family>.c):
 *
 *   cmd_harness *h = h_new();
 *   CHECK_REPLY(run(h, "SET", "k", "v"), "+OK\r\n");
 *   CHECK_REPLY(run(h, "GET", "k"), "$1\r\nv\r\n");
 *   h_free(h);
 *
 * What the fake host does:
 * - sessions: H_SESSIONS connections (h_use switches the one commands
 *   run as); each has its own session and reply queue;
 * - pub/sub: a registry of (session, channel or pattern); PUBLISH appends
 *   the message to each subscriber's queue (read it with h_take);
 * - blocking reads: block_on_keys records the parked command (h->parked)
 *   instead of parking; signal_key and unblock_key count calls;
 * - CONFIG GET/SET: the real option table on the harness's own config;
 *   INFO, CLIENT LIST and the persistence services answer fixed text;
 * - AUTH: h_password sets requirepass; used memory is h->used_memory.
 * The AOF: every record the dispatcher or a handler logs is appended to
 * h->log as one line ("XADD s 1-1 f v\n", binary bytes as they are), and
 * h->unlocked_logs counts records logged while one of the running
 * command's keys was not locked (the dispatcher's contract: never). */
#ifndef PIER_CMD_HARNESS_H
#define PIER_CMD_HARNESS_H

#include <stdio.h>
#include <string.h>

#include "cmd/command.h"
#include "server/config.h"

#define H_SESSIONS 4
#define H_SUBS_MAX 64

typedef struct h_sub {
    int sess, pattern;
    char *ch;
} h_sub;

typedef struct cmd_harness {
    keyspace *ks;
    pier_config cfg;
    cmd_env env;
    cmd_disk_status disk;
    thread_stats stats;
    session sess[H_SESSIONS];
    reply out[H_SESSIONS];
    int cur;                      /* the session commands run as */
    char *last;                   /* the last command's reply (NUL-terminated) */
    size_t last_len;
    /* the AOF as text, and the check of the dispatcher's contract */
    char *log;
    size_t log_len;
    int records, unlocked_logs, entries_closed;
    const cmd_verdict *running;   /* the command being run, for the check */
    const cmd_ctx *running_ctx;
    /* the fake host's state */
    h_sub subs[H_SUBS_MAX];
    int nsubs;
    int parked;                   /* block_on_keys calls */
    long long parked_timeout;
    int signals, unblocks;        /* signal_key, unblock_key calls */
    size_t used_memory;
    char password[64];
    int resets;                   /* CONFIG RESETSTAT */
    int64_t now_ms;               /* the clock commands see; 0 = the real one */
} cmd_harness;

/* A harness with an empty keyspace and default options (save rules off,
 * appendonly off: the log is the harness's own). */
cmd_harness *h_new(void);
void h_free(cmd_harness *h);

/* Run one command as the current session; returns its reply as bytes
 * (NUL-terminated; h->last_len has the length), valid until the next
 * run. The argument list ends with NULL: use run(). */
const char *h_run(cmd_harness *h, const char *arg0, ...);
#define run(h, ...) h_run((h), __VA_ARGS__, (const char *)NULL)
/* The same with views (binary arguments). */
const char *h_runv(cmd_harness *h, int argc, const cmd_arg *argv);

/* Commands run as session i from now on. */
void h_use(cmd_harness *h, int i);
/* What session i received without running a command (pushed messages),
 * drained; valid until the next h_take or run. */
const char *h_take(cmd_harness *h, int i);
/* requirepass (NULL or "" clears it). */
void h_password(cmd_harness *h, const char *pass);
/* Forget the log so far (and its record and entry counts). */
void h_log_clear(cmd_harness *h);

/* Compare a reply with the expected bytes, printing both (escaped) on a
 * mismatch; marks the current test failed (include check.h first). */
#define CHECK_REPLY(got, want)                                                 \
    do {                                                                       \
        if (!h_reply_equals((got), (want), __FILE__, __LINE__))                \
            check_failed_now = 1;                                              \
    } while (0)
int h_reply_equals(const char *got, const char *want, const char *file, int line);
/* Does the log contain this line (a record, without its newline)? */
int h_logged(const cmd_harness *h, const char *record);

#endif
