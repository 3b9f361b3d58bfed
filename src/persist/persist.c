/* persist.c - persistence orchestration: loading, children (BGSAVE and AOF
 * rewrite), save rules, the persistence thread, shutdown. */
#include "persist.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "aof.h"
#include "../lib/crc32c.h"
#include "fileio.h"
#include "snapshot.h"

#define CHILD_BUF_SIZE (256 * 1024)
#define TICK_MS 100
#define BGSAVE_RETRY_MS 5000   /* after a failed BGSAVE, as Redis */
#define REWRITE_RETRY_MS 60000 /* after a failed automatic AOF rewrite */

enum child_kind { CHILD_NONE = 0, CHILD_SNAPSHOT, CHILD_REWRITE };

struct persist {
    keyspace *ks;
    const pier_config *cfg;
    cmd_env *env;
    persist_dirty_fn *dirty_total;
    void *dirty_arg;
    aof *aof; /* NULL when appendonly is off */
    cmd_disk_status disk; /* what the dispatcher refuses writes on (-MISCONF) */

    _Atomic uint64_t dirty_at_save;     /* dirty_total at the last save or load */
    _Atomic long long lastsave;         /* unix seconds */
    _Atomic int last_bgsave_ok, last_rewrite_ok;
    _Atomic int64_t last_bgsave_try_ms;
    _Atomic int64_t last_rewrite_fail_ms;
    _Atomic long long rewrites, bgsaves;

    /* children: one at a time, guarded by child_lock */
    pthread_mutex_t child_lock;
    pid_t child_pid;
    enum child_kind child_kind;
    uint64_t child_dirty;               /* dirty_total at fork */
    char child_tmp[AOF_PATH_MAX + 64];  /* the file the child writes */
    char child_final[AOF_PATH_MAX + 64];
    int rewrite_scheduled, bgsave_scheduled;
    unsigned forks;
    unsigned char *child_buf;           /* allocated before fork: the child never mallocs */
    _Atomic int child_running_kind;     /* mirror of child_kind for INFO */

    /* replaying the AOF at start-up */
    session replay_sess;
    reply *replay_out;
    /* cluster mode: PIER.* records go to the cluster; the AOF is the
     * replicated log, which a rewrite would lose (not supported yet) */
    persist_replay_fn *replay_hook;
    void *replay_hook_arg;
    int cluster_mode;

    /* the persistence thread */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    int stop;
};

/* ---- creation ---- */

persist *persist_create(keyspace *ks, const pier_config *cfg, cmd_env *env,
                        persist_dirty_fn *dirty, void *dirty_arg) {
    persist *p = xcalloc(1, sizeof *p);
    p->ks = ks;
    p->cfg = cfg;
    p->env = env;
    p->dirty_total = dirty;
    p->dirty_arg = dirty_arg;
    env->disk = &p->disk;
    atomic_init(&p->last_bgsave_ok, 1);
    atomic_init(&p->last_rewrite_ok, 1);
    atomic_init(&p->lastsave, (long long)(clock_wall_ms() / 1000));
    pthread_mutex_init(&p->child_lock, NULL);
    pthread_mutex_init(&p->stop_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->stop_cond, &ca);
    pthread_condattr_destroy(&ca);
    p->child_buf = xmalloc(CHILD_BUF_SIZE);
    (void)crc32c(0, "", 0); /* build the table now, not in a forked child */
    return p;
}

void persist_destroy(persist *p) {
    if (!p) return;
    if (p->aof) {
        aof_destroy(p->aof);
        free(p->aof);
    }
    free(p->child_buf);
    pthread_mutex_destroy(&p->child_lock);
    pthread_mutex_destroy(&p->stop_lock);
    pthread_cond_destroy(&p->stop_cond);
    free(p);
}

static uint64_t dirty_now(persist *p) { return p->dirty_total(p->dirty_arg); }

/* rdb_last_bgsave_status, and with it the -MISCONF refusal of writes
 * (stop-writes-on-bgsave-error): a failed BGSAVE sets it, a successful
 * BGSAVE or SAVE clears it (a failed SAVE leaves it, as in Redis). */
static void set_bgsave_ok(persist *p, int ok) {
    atomic_store(&p->last_bgsave_ok, ok);
    atomic_store(&p->disk.bgsave_failed, !ok);
}

/* ---- hooks installed while the AOF is on ---- */

static uint64_t propagate(void *arg, cmd_arg name, int argc, const cmd_arg *argv) {
    persist *p = arg;
    return aof_append(p->aof, name, argc, argv);
}

/* A key expired (lazily inside a command, or by active expiry): log a DEL
 * so a replay does not resurrect it with a later write's help. Runs under
 * the key's shard lock, which orders it with the commands on that key. */
static void log_expired(void *arg, const char *key, size_t klen) {
    persist *p = arg;
    cmd_arg argv[2] = {{"DEL", 3}, {key, klen}};
    aof_append(p->aof, argv[0], 2, argv);
}

/* ---- loading ---- */

static int replay_exec(void *arg, int argc, const cmd_arg *argv) {
    persist *p = arg;
    if (p->replay_hook) {
        int rc = p->replay_hook(p->replay_hook_arg, argc, argv);
        if (rc != 0) return rc > 0 ? 0 : -1;
    }
    /* By row name: the log holds cmd->name, even for a renamed command. */
    if (!cmd_lookup_row(argv[0].p, argv[0].n)) return -1;
    cmd_ctx c = {
        .env = p->env,
        .sess = &p->replay_sess,
        .out = p->replay_out,
        .stats = NULL, /* a replay is not client traffic */
        .argc = argc,
        .argv = argv,
        .now_ms = clock_wall_ms(),
    };
    cmd_execute(&c);
    reply_reset(p->replay_out);
    return 0;
}

static int snapshot_path(const persist *p, char *out, size_t len) {
    return pio_join(out, len, p->cfg->dir, p->cfg->dbfilename);
}

/* Load dbfilename if it exists. Returns 0 or -1 (err). */
static int load_snapshot(persist *p, char *err, size_t errlen) {
    char path[AOF_PATH_MAX];
    if (snapshot_path(p, path, sizeof path) < 0) {
        snprintf(err, errlen, "snapshot path too long");
        return -1;
    }
    snap_result res;
    int64_t t0 = clock_mono_us();
    int rc = snap_load_file(p->ks, path, clock_wall_ms(), &res);
    if (rc < 0) {
        snprintf(err, errlen, "bad snapshot %s at offset %llu: %s", path,
                 (unsigned long long)res.err_offset, res.err);
        return -1;
    }
    if (rc > 0)
        log_info("snapshot %s loaded: %llu records in %.3f s", path,
                 (unsigned long long)res.records, (double)(clock_mono_us() - t0) / 1e6);
    return 0;
}

static int load_aof(persist *p, char *err, size_t errlen) {
    p->aof = xcalloc(1, sizeof *p->aof);
    const pier_config *cfg = p->cfg;
    if (aof_init(p->aof, cfg->dir, cfg->appenddirname, cfg->appendfilename, err, errlen) < 0)
        return -1;
    p->aof->status = &p->disk;
    p->replay_out = xmalloc(sizeof *p->replay_out);
    reply_init(p->replay_out);
    p->replay_sess.authenticated = 1;
    p->replay_sess.flags = SESS_REPLAY;
    p->replay_sess.proto = 2;
    int64_t t0 = clock_mono_us();
    int rc = aof_load(p->aof, p->ks, clock_wall_ms(), replay_exec, p, err, errlen);
    reply_free(p->replay_out);
    free(p->replay_out);
    p->replay_out = NULL;
    if (rc < 0) return -1;
    if (rc > 0) {
        log_info("AOF loaded from %s: %zu keys in %.3f s", p->aof->dir, ks_count(p->ks),
                 (double)(clock_mono_us() - t0) / 1e6);
    } else {
        /* No AOF yet: start it from the snapshot, if any, so switching
         * appendonly on keeps the data. */
        if (load_snapshot(p, err, errlen) < 0) return -1;
        if (aof_create(p->aof, p->ks, clock_wall_ms(), err, errlen) < 0) return -1;
        log_info("AOF created in %s", p->aof->dir);
    }
    if (aof_open_tail(p->aof, err, errlen) < 0) return -1;
    p->env->propagate = propagate;
    p->env->propagate_arg = p;
    ks_set_expire_hook(p->ks, log_expired, p);
    return 0;
}

void persist_set_cluster_mode(persist *p, persist_replay_fn *fn, void *arg) {
    p->cluster_mode = 1;
    p->replay_hook = fn;
    p->replay_hook_arg = arg;
}

struct aof *persist_aof(persist *p) { return p->aof; }

int persist_load(persist *p, char *err, size_t errlen) {
    int rc = CFG_GET(p->cfg->appendonly) ? load_aof(p, err, errlen) : load_snapshot(p, err, errlen);
    atomic_store(&p->dirty_at_save, dirty_now(p));
    return rc;
}

/* ---- children ---- */

/* In the forked child: every shard lock is held (inherited), no other
 * thread exists. Only reads the keyspace and writes a file; never returns. */
static void child_main(persist *p, int64_t now_ms) {
    /* Die with the parent: an orphan would keep writing a file nobody
     * installs (and hold the inherited listening sockets). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int rc = snap_save_file(p->ks, 1, p->child_tmp, p->child_final, p->child_buf,
                            CHILD_BUF_SIZE, now_ms);
    _exit(rc == 0 ? 0 : 1);
}

/* Fork with every shard lock held. For a rewrite, appends switch to the
 * new incr file (new_fd) in the same locked instant, so the child's
 * snapshot plus the new file is exactly the dataset from then on. Returns
 * the child's pid or -1. Caller holds child_lock. */
static pid_t fork_locked(persist *p, int new_fd) {
    /* Sampled before locking (the counter may take the registry lock,
     * which never nests inside shard locks); writes in between count as
     * unsaved, which only errs towards saving again. */
    p->child_dirty = dirty_now(p);
    ks_lockset all;
    ks_lockset_all(&all);
    ks_lock(p->ks, &all);
    int old_fd = new_fd >= 0 ? aof_switch_begin(p->aof, new_fd) : -1;
    int64_t now_ms = clock_wall_ms();
    pid_t pid = fork();
    if (pid == 0) child_main(p, now_ms);
    ks_unlock(p->ks, &all);
    if (new_fd >= 0 && aof_switch_finish(p->aof, old_fd) < 0 &&
        CFG_GET(p->cfg->appendfsync) == CFG_FSYNC_ALWAYS) {
        /* Replies wait for an fsync of records in that file: a later
         * fsync of the new file would not cover them (aof_flush). */
        log_warn("Can't persist AOF for fsync error when the AOF fsync policy is 'always': %s. "
                 "Exiting...", strerror(errno));
        _exit(1);
    }
    return pid;
}

/* Caller holds child_lock and checked that no child runs. */
static int start_child(persist *p, enum child_kind kind, char *msg, size_t len) {
    int new_fd = -1;
    p->forks++;
    if (kind == CHILD_REWRITE) {
        char why[256];
        new_fd = aof_rewrite_prepare(p->aof, why, sizeof why);
        if (new_fd < 0) {
            log_warn("cannot start an AOF rewrite: %s", why);
            atomic_store(&p->last_rewrite_fail_ms, clock_wall_ms()); /* the automatic one waits */
            snprintf(msg, len, "ERR %s", why);
            return -1;
        }
        snprintf(p->child_final, sizeof p->child_final, "%s/temp-rewrite-%d-%u.pier",
                 p->aof->dir, (int)getpid(), p->forks);
    } else if (snapshot_path(p, p->child_final, sizeof p->child_final) < 0) {
        snprintf(msg, len, "ERR snapshot path too long");
        return -1;
    }
    int n = snprintf(p->child_tmp, sizeof p->child_tmp, "%s.part%u", p->child_final, p->forks);
    if (n < 0 || (size_t)n >= sizeof p->child_tmp) {
        snprintf(msg, len, "ERR persistence path too long");
        if (new_fd >= 0) close(new_fd);
        return -1;
    }
    atomic_store(&p->last_bgsave_try_ms, clock_wall_ms());
    pid_t pid = fork_locked(p, new_fd);
    if (pid < 0) {
        snprintf(msg, len, "ERR cannot fork: %s", strerror(errno));
        log_warn("cannot fork for a background %s: %s",
                 kind == CHILD_REWRITE ? "AOF rewrite" : "save", strerror(errno));
        if (kind == CHILD_SNAPSHOT) set_bgsave_ok(p, 0);
        return -1;
    }
    p->child_pid = pid;
    p->child_kind = kind;
    atomic_store(&p->child_running_kind, kind);
    log_info("background %s started by pid %d",
             kind == CHILD_REWRITE ? "AOF rewrite" : "saving", (int)pid);
    return 0;
}

static void child_done(persist *p, int ok) {
    if (p->child_kind == CHILD_SNAPSHOT) {
        set_bgsave_ok(p, ok);
        if (ok) {
            atomic_store(&p->dirty_at_save, p->child_dirty);
            atomic_store(&p->lastsave, (long long)(clock_wall_ms() / 1000));
            atomic_fetch_add(&p->bgsaves, 1);
        } else {
            unlink(p->child_tmp);
        }
        log_info("background saving %s", ok ? "terminated with success" : "FAILED");
    } else {
        char err[512];
        if (ok && aof_rewrite_commit(p->aof, p->child_final, err, sizeof err) < 0) {
            log_warn("%s", err);
            ok = 0;
        }
        if (!ok) unlink(p->child_final);
        unlink(p->child_tmp);
        atomic_store(&p->last_rewrite_ok, ok);
        if (ok) atomic_fetch_add(&p->rewrites, 1);
        else atomic_store(&p->last_rewrite_fail_ms, clock_wall_ms());
        log_info("background AOF rewrite %s", ok ? "terminated with success" : "FAILED");
    }
    p->child_pid = 0;
    p->child_kind = CHILD_NONE;
    atomic_store(&p->child_running_kind, CHILD_NONE);
}

/* Reap a finished child (no wait). Caller holds child_lock. */
static void reap_child(persist *p) {
    if (!p->child_pid) return;
    int status;
    pid_t r = waitpid(p->child_pid, &status, WNOHANG);
    if (r == 0) return;
    child_done(p, r == p->child_pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- commands ---- */

int persist_save(persist *p, char *msg, size_t len) {
    pthread_mutex_lock(&p->child_lock);
    if (p->child_kind == CHILD_SNAPSHOT) {
        pthread_mutex_unlock(&p->child_lock);
        snprintf(msg, len, "ERR Background save already in progress");
        return -1;
    }
    char path[AOF_PATH_MAX], tmp[AOF_PATH_MAX + 32];
    int rc = snapshot_path(p, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.save.part", path);
    /* SAVE blocks the whole server, as in Redis: every shard locked. */
    uint64_t dirty = dirty_now(p); /* before the shard locks: see fork_locked */
    ks_lockset all;
    ks_lockset_all(&all);
    ks_lock(p->ks, &all);
    if (rc == 0)
        rc = snap_save_file(p->ks, 1, tmp, path, p->child_buf, CHILD_BUF_SIZE, clock_wall_ms());
    ks_unlock(p->ks, &all);
    pthread_mutex_unlock(&p->child_lock);
    if (rc < 0) {
        log_warn("SAVE to %s failed: %s", path,
                 errno == EOPNOTSUPP ? "a value type has no snapshot encoder" : strerror(errno));
        snprintf(msg, len, "ERR");
        return -1;
    }
    atomic_store(&p->dirty_at_save, dirty);
    atomic_store(&p->lastsave, (long long)(clock_wall_ms() / 1000));
    set_bgsave_ok(p, 1);
    log_info("DB saved on disk");
    snprintf(msg, len, "OK");
    return 0;
}

int persist_bgsave(persist *p, int schedule, char *msg, size_t len) {
    int rc = 0;
    pthread_mutex_lock(&p->child_lock);
    reap_child(p);
    if (p->child_kind == CHILD_SNAPSHOT) {
        snprintf(msg, len, "ERR Background save already in progress");
        rc = -1;
    } else if (p->child_kind == CHILD_REWRITE) {
        if (schedule) {
            p->bgsave_scheduled = 1;
            snprintf(msg, len, "Background saving scheduled");
        } else {
            snprintf(msg, len, "ERR Another child process is active (AOF?): can't BGSAVE right "
                               "now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever "
                               "possible.");
            rc = -1;
        }
    } else if ((rc = start_child(p, CHILD_SNAPSHOT, msg, len)) == 0) {
        snprintf(msg, len, "Background saving started");
    }
    pthread_mutex_unlock(&p->child_lock);
    return rc;
}

int persist_bgrewriteaof(persist *p, char *msg, size_t len) {
    if (p->cluster_mode) {
        snprintf(msg, len, "ERR BGREWRITEAOF is not supported in cluster mode yet: the AOF is the replicated log");
        return -1;
    }
    if (!p->aof) {
        /* Redis would write an AOF anyway; pier keeps one only while
         * appendonly is on (docs/PERSISTENCE.md). */
        snprintf(msg, len, "ERR BGREWRITEAOF needs appendonly yes");
        return -1;
    }
    int rc = 0;
    pthread_mutex_lock(&p->child_lock);
    reap_child(p);
    if (p->child_kind == CHILD_REWRITE) {
        snprintf(msg, len, "ERR Background append only file rewriting already in progress");
        rc = -1;
    } else if (p->child_kind == CHILD_SNAPSHOT) {
        p->rewrite_scheduled = 1;
        snprintf(msg, len, "Background append only file rewriting scheduled");
    } else if ((rc = start_child(p, CHILD_REWRITE, msg, len)) == 0) {
        snprintf(msg, len, "Background append only file rewriting started");
    }
    pthread_mutex_unlock(&p->child_lock);
    return rc;
}

long long persist_lastsave(persist *p) { return atomic_load(&p->lastsave); }

/* ---- periodic work (the persistence thread) ---- */

static int save_rule_due(persist *p, int64_t now_ms) {
    uint64_t changes = dirty_now(p) - atomic_load(&p->dirty_at_save);
    long long since = now_ms / 1000 - atomic_load(&p->lastsave);
    /* After a failure, wait before retrying (a full disk would otherwise
     * fork a child every tick). */
    if (!atomic_load(&p->last_bgsave_ok) &&
        now_ms - atomic_load(&p->last_bgsave_try_ms) < BGSAVE_RETRY_MS)
        return 0;
    int n = CFG_GET(p->cfg->save_nrules);
    for (int i = 0; i < n; i++) {
        if (changes >= (uint64_t)CFG_GET(p->cfg->save_changes[i]) &&
            since >= CFG_GET(p->cfg->save_seconds[i]))
            return 1;
    }
    return 0;
}

static int rewrite_due(persist *p, int64_t now_ms) {
    if (p->cluster_mode || aof_error(p->aof)) return 0;
    if (!atomic_load(&p->last_rewrite_ok) &&
        now_ms - atomic_load(&p->last_rewrite_fail_ms) < REWRITE_RETRY_MS)
        return 0;
    long long pct = CFG_GET(p->cfg->auto_aof_rewrite_percentage);
    long long total = aof_total_size(p->aof);
    if (pct <= 0 || total < CFG_GET(p->cfg->auto_aof_rewrite_min_size)) return 0;
    long long base = atomic_load(&p->aof->rewrite_base_size);
    if (base <= 0) base = 1;
    return (total - base) * 100 / base >= pct;
}

static void cron_children(persist *p, int64_t now_ms) {
    char msg[256];
    pthread_mutex_lock(&p->child_lock);
    reap_child(p);
    if (!p->child_pid) {
        if (p->rewrite_scheduled && p->aof) {
            p->rewrite_scheduled = 0;
            start_child(p, CHILD_REWRITE, msg, sizeof msg);
        } else if (p->bgsave_scheduled || save_rule_due(p, now_ms)) {
            p->bgsave_scheduled = 0;
            start_child(p, CHILD_SNAPSHOT, msg, sizeof msg);
        } else if (p->aof && rewrite_due(p, now_ms)) {
            log_info("starting an automatic AOF rewrite (%lld bytes)", aof_total_size(p->aof));
            start_child(p, CHILD_REWRITE, msg, sizeof msg);
        }
    }
    pthread_mutex_unlock(&p->child_lock);
}

/* Once a second: everysec fsyncs; the other policies still write what
 * no loop thread flushed (DELs logged by active expiry). Either way this
 * is the retry after a failed write (loops back off for a second), which
 * lifts the -MISCONF refusal once the disk takes writes again. */
static void cron_aof(persist *p) {
    if (!p->aof) return;
    int mode = CFG_GET(p->cfg->appendfsync);
    if (mode == CFG_FSYNC_ALWAYS)
        aof_flush_now(p->aof, 1);
    else if (mode == CFG_FSYNC_EVERYSEC || atomic_load(&p->aof->fsync_errno))
        aof_sync_background(p->aof); /* also: retry a failed fsync after a switch to no */
    else
        aof_flush_now(p->aof, 0);
}

static void *thread_main(void *arg) {
    persist *p = arg;
    int64_t last_sync = clock_mono_ms();
    pthread_mutex_lock(&p->stop_lock);
    while (!p->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->stop_cond, &p->stop_lock, &ts);
        if (p->stop) break;
        pthread_mutex_unlock(&p->stop_lock);
        cron_children(p, clock_wall_ms());
        if (clock_mono_ms() - last_sync >= 1000) {
            last_sync = clock_mono_ms();
            cron_aof(p);
        }
        pthread_mutex_lock(&p->stop_lock);
    }
    pthread_mutex_unlock(&p->stop_lock);
    return NULL;
}

void persist_start(persist *p) {
    if (pthread_create(&p->thread, NULL, thread_main, p) == 0) p->thread_started = 1;
    else log_warn("cannot start the persistence thread");
}

int persist_before_reply(persist *p, uint64_t need) {
    return aof_flush(p->aof, need, CFG_GET(p->cfg->appendfsync) == CFG_FSYNC_ALWAYS);
}

int persist_reply_ready(persist *p, uint64_t need) {
    return aof_durable(p->aof, CFG_GET(p->cfg->appendfsync) == CFG_FSYNC_ALWAYS) >= need;
}

/* ---- shutdown ---- */

static void stop_child(persist *p) {
    pthread_mutex_lock(&p->child_lock);
    if (p->child_pid) {
        kill(p->child_pid, SIGKILL);
        waitpid(p->child_pid, NULL, 0);
        unlink(p->child_tmp);
        if (p->child_kind == CHILD_REWRITE) unlink(p->child_final);
        log_info("stopped the background %s child",
                 p->child_kind == CHILD_REWRITE ? "AOF rewrite" : "save");
        p->child_pid = 0;
        p->child_kind = CHILD_NONE;
    }
    pthread_mutex_unlock(&p->child_lock);
}

/* The final snapshot: SAVE asks for one; otherwise (not NOSAVE) the save
 * rules do when there is no AOF and something changed since the last
 * save. */
static int want_final_snapshot(persist *p, int flags) {
    if (flags & PERSIST_SHUT_SAVE) return 1;
    return !(flags & PERSIST_SHUT_NOSAVE) && !p->aof && CFG_GET(p->cfg->save_nrules) > 0 &&
           dirty_now(p) != atomic_load(&p->dirty_at_save);
}

/* Flush+fsync the AOF, then the final snapshot if wanted (only_changed:
 * not when nothing changed since the last save, which SHUTDOWN's own
 * save may just have been). Returns 0, or -1 after logging what failed. */
static int final_persist(persist *p, int flags, int only_changed) {
    int rc = 0;
    if (p->aof) {
        uint64_t lost = p->aof->appended - atomic_load(&p->aof->written);
        if (aof_flush_final(p->aof) < 0) {
            log_warn("final AOF flush failed: %s: %llu bytes of logged writes are not in the AOF "
                     "(their replies were never sent)", strerror(errno), (unsigned long long)lost);
            rc = -1;
        } else {
            log_info("AOF flushed and synced");
        }
    }
    if (want_final_snapshot(p, flags) &&
        (!only_changed || dirty_now(p) != atomic_load(&p->dirty_at_save))) {
        char msg[128];
        log_info("saving the final snapshot before exit");
        if (persist_save(p, msg, sizeof msg) < 0) {
            log_warn("error saving the final snapshot: the changes since the last save are not "
                     "on disk");
            rc = -1;
        }
    }
    return rc;
}

int persist_shutdown_prepare(persist *p, int flags, char *msg, size_t len) {
    stop_child(p); /* as Redis: a running BGSAVE would refuse the save */
    if (final_persist(p, flags, 0) == 0) return 0;
    if (flags & PERSIST_SHUT_FORCE) {
        log_warn("SHUTDOWN FORCE: exiting despite the errors above");
        return 0;
    }
    log_warn("Errors trying to shut down the server. Check the logs for more information.");
    snprintf(msg, len, "ERR Errors trying to SHUTDOWN. Check logs.");
    return -1;
}

int persist_shutdown(persist *p, int flags) {
    if (p->thread_started) {
        pthread_mutex_lock(&p->stop_lock);
        p->stop = 1;
        pthread_cond_signal(&p->stop_cond);
        pthread_mutex_unlock(&p->stop_lock);
        pthread_join(p->thread, NULL);
        p->thread_started = 0;
    }
    stop_child(p);
    int rc = final_persist(p, flags, (flags & PERSIST_SHUT_COMMAND) != 0);
    if (rc < 0 && (flags & PERSIST_SHUT_FORCE)) return 0;
    return rc;
}

void persist_get_status(persist *p, persist_status *st) {
    memset(st, 0, sizeof *st);
    int kind = atomic_load(&p->child_running_kind);
    st->aof_enabled = p->aof != NULL;
    st->aof_rewrite_in_progress = kind == CHILD_REWRITE;
    st->aof_rewrite_scheduled = 0;
    st->aof_last_rewrite_ok = atomic_load(&p->last_rewrite_ok);
    st->aof_last_write_ok = p->aof ? aof_error(p->aof) == 0 : 1;
    st->bgsave_in_progress = kind == CHILD_SNAPSHOT;
    st->last_bgsave_ok = atomic_load(&p->last_bgsave_ok);
    st->changes_since_save = (long long)(dirty_now(p) - atomic_load(&p->dirty_at_save));
    st->last_save_time = atomic_load(&p->lastsave);
    st->aof_current_size = p->aof ? aof_total_size(p->aof) : 0;
    st->aof_base_size = p->aof ? atomic_load(&p->aof->rewrite_base_size) : 0;
    st->rewrites = atomic_load(&p->rewrites);
    st->bgsaves = atomic_load(&p->bgsaves);
}
