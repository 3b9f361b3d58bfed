/* aof.c - the append-only file: appending, group commit, the file switch
 * for rewrites, and replay at start-up.
 *
 * Incremental files hold plain RESP multibulk commands, exactly what a
 * client would send (Redis's AOF format), so they can be inspected with a
 * text viewer and replayed with `redis-cli --pipe`. Time-dependent
 * commands were already rewritten by the handlers into their absolute form
 * (see cmd_propagate_as), so replaying at any later time is exact. */
#include "aof.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "fileio.h"
#include "snapshot.h"

#define AOF_MAX_ARGS (1 << 24) /* sanity bound for a replayed command */
#define SNAP_BUF_SIZE (64 * 1024)

/* ---- set-up ---- */

static int ensure_dir(const char *path) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
    return -1;
}

/* A crash during a rewrite or a manifest update leaves temp-* and *.tmp
 * files that no manifest lists: remove them at start-up. */
static void remove_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *de; (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        int is_tmp = !strncmp(de->d_name, "temp-", 5) ||
                     (n > 4 && !strcmp(de->d_name + n - 4, ".tmp"));
        char path[AOF_PATH_MAX + 300];
        if (is_tmp && pio_join(path, sizeof path, dir, de->d_name) == 0) {
            log_info("removing the leftover temporary file %s", path);
            unlink(path);
        }
    }
    closedir(d);
}

int aof_init(aof *a, const char *dir, const char *dirname, const char *prefix, char *err,
             size_t errlen) {
    memset(a, 0, sizeof *a);
    a->fd = -1;
    pthread_mutex_init(&a->io_lock, NULL);
    pthread_mutex_init(&a->buf_lock, NULL);
    snprintf(a->prefix, sizeof a->prefix, "%s", prefix);
    snprintf(a->manifest_name, sizeof a->manifest_name, "%s.manifest", prefix);
    if (pio_join(a->dir, sizeof a->dir, dir, dirname) < 0 ||
        pio_join(a->legacy, sizeof a->legacy, dir, prefix) < 0) {
        snprintf(err, errlen, "AOF directory path too long");
        return -1;
    }
    if (ensure_dir(dir) < 0 || ensure_dir(a->dir) < 0) {
        snprintf(err, errlen, "cannot create the AOF directory %s: %s", a->dir, strerror(errno));
        return -1;
    }
    remove_temp_files(a->dir);
    return 0;
}

void aof_destroy(aof *a) {
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
    free(a->pending.p);
    free(a->spare.p);
    pthread_mutex_destroy(&a->io_lock);
    pthread_mutex_destroy(&a->buf_lock);
}

static void file_path(const aof *a, const char *name, char *out, size_t outlen) {
    if (pio_join(out, outlen, a->dir, name) < 0) out[0] = 0;
}

long long aof_total_size(const aof *a) {
    return atomic_load(&a->base_size) + atomic_load(&a->old_incr_size) +
           atomic_load(&a->cur_incr_size);
}

/* ---- appending ---- */

static void buf_reserve(aof_buf *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64 * 1024;
    while (cap < b->len + more) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

/* "<c><n>\r\n" at out; returns bytes written (at most 23). */
static size_t put_header(char *out, char c, size_t n) {
    out[0] = c;
    size_t len = 1 + util_ull2str(out + 1, 22, n);
    out[len++] = '\r';
    out[len++] = '\n';
    return len;
}

static void put_arg(aof_buf *b, const char *p, size_t n) {
    b->len += put_header(b->p + b->len, '$', n);
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

uint64_t aof_append(aof *a, cmd_arg name, int argc, const cmd_arg *argv) {
    size_t need = 24 + name.n + 25;
    for (int i = 1; i < argc; i++) need += argv[i].n + 25;
    pthread_mutex_lock(&a->buf_lock);
    aof_buf *b = &a->pending;
    buf_reserve(b, need);
    size_t before = b->len;
    b->len += put_header(b->p + b->len, '*', (size_t)argc);
    put_arg(b, name.p, name.n);
    for (int i = 1; i < argc; i++) put_arg(b, argv[i].p, argv[i].n);
    a->appended += b->len - before;
    uint64_t end = a->appended;
    pthread_mutex_unlock(&a->buf_lock);
    return end;
}

uint64_t aof_append_raw(aof *a, const void *p, size_t n) {
    pthread_mutex_lock(&a->buf_lock);
    aof_buf *b = &a->pending;
    buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
    a->appended += n;
    uint64_t end = a->appended;
    pthread_mutex_unlock(&a->buf_lock);
    return end;
}

/* ---- writing ---- */

#define AOF_RETRY_MS 1000 /* after a failed write, loops retry at most this often */

/* Publish the current failure (a write's errno first, else an fsync's)
 * where the dispatcher reads it for -MISCONF. */
static void publish_error(aof *a) {
    int e = atomic_load(&a->write_errno);
    if (!e) e = atomic_load(&a->fsync_errno);
    if (a->status) atomic_store(&a->status->aof_errno, e);
}

int aof_error(const aof *a) {
    int e = atomic_load(&a->write_errno);
    return e ? e : atomic_load(&a->fsync_errno);
}

uint64_t aof_durable(const aof *a, int do_sync) {
    return do_sync ? atomic_load(&a->synced) : atomic_load(&a->written);
}

static void write_failed(aof *a, int err, size_t done, size_t want) {
    atomic_store(&a->retry_at_ms, clock_mono_ms() + AOF_RETRY_MS);
    if (atomic_exchange(&a->write_errno, err) == 0) {
        if (done)
            log_warn("Short write while writing to the AOF file: %s (nwritten=%zu, expected=%zu); "
                     "write commands are refused (-MISCONF) until the AOF can be written again",
                     strerror(err), done, want);
        else
            log_warn("Error writing to the AOF file: %s; write commands are refused (-MISCONF) "
                     "until the AOF can be written again", strerror(err));
        publish_error(a);
    }
}

static void write_succeeded(aof *a) {
    if (atomic_exchange(&a->write_errno, 0) != 0) {
        log_warn("AOF write error looks solved, pier can write again.");
        publish_error(a);
    }
}

static void fsync_result(aof *a, int err) {
    int was = atomic_exchange(&a->fsync_errno, err);
    if (err && !was)
        log_warn("Error fsyncing the AOF file: %s; write commands are refused (-MISCONF) until "
                 "an fsync succeeds", strerror(err));
    else if (!err && was)
        log_warn("AOF fsync error looks solved, pier can write again.");
    if (!err != !was) publish_error(a);
}

/* A failed write: put the unwritten tail back in front of what was
 * appended meanwhile, so nothing is lost or reordered; the next flush
 * retries. Caller holds io_lock; a->spare holds the batch. */
static void requeue(aof *a, size_t done) {
    aof_buf *s = &a->spare;
    memmove(s->p, s->p + done, s->len - done);
    s->len -= done;
    pthread_mutex_lock(&a->buf_lock);
    buf_reserve(s, a->pending.len);
    if (a->pending.len) memcpy(s->p + s->len, a->pending.p, a->pending.len);
    s->len += a->pending.len;
    aof_buf t = a->pending;
    a->pending = *s;
    *s = t;
    s->len = 0;
    pthread_mutex_unlock(&a->buf_lock);
}

/* A write failed after `done` bytes of the batch reached the file: cut
 * them off again (as Redis does), so the file ends with a whole record
 * and the retry writes the batch from its start. Returns the bytes that
 * stay in the file (0, or done when the truncate failed too). */
static size_t undo_short_write(aof *a, size_t done) {
    if (!done) return 0;
    long long size = atomic_load(&a->cur_incr_size);
    if (ftruncate(a->fd, (off_t)(size - (long long)done)) == 0) {
        atomic_store(&a->cur_incr_size, size - (long long)done);
        return 0;
    }
    log_warn("Could not remove the short write from the AOF file: %s (its last record is "
             "incomplete until the retry completes it)", strerror(errno));
    return done;
}

enum { SYNC_NONE = 0, SYNC_OR_EXIT, SYNC_OR_FAIL };

/* Write the pending bytes, then fdatasync per `sync`. Returns 0, or -1
 * (errno set) when the write or (SYNC_OR_FAIL) the fsync failed.
 * Caller holds io_lock. */
static int write_pending_locked(aof *a, int sync) {
    pthread_mutex_lock(&a->buf_lock);
    aof_buf t = a->pending;
    a->pending = a->spare;
    a->spare = t;
    uint64_t end = a->appended;
    pthread_mutex_unlock(&a->buf_lock);
    size_t done = 0;
    while (done < a->spare.len) {
        ssize_t w = write(a->fd, a->spare.p + done, a->spare.len - done);
        if (w > 0) {
            done += (size_t)w;
            atomic_fetch_add(&a->cur_incr_size, (long long)w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        int err = w < 0 ? errno : ENOSPC; /* write() returning 0: no room */
        write_failed(a, err, done, a->spare.len);
        requeue(a, undo_short_write(a, done));
        errno = err;
        return -1;
    }
    a->spare.len = 0;
    atomic_store(&a->written, end);
    write_succeeded(a);
    if (sync == SYNC_NONE) return 0;
    if (atomic_load(&a->synced) >= end) {
        /* a later fsync covered what a failed one did not */
        if (atomic_load(&a->fsync_errno)) fsync_result(a, 0);
        return 0;
    }
    if (fdatasync(a->fd) < 0) {
        int err = errno;
        if (sync == SYNC_OR_EXIT) {
            log_warn("Can't persist AOF for fsync error when the AOF fsync policy is 'always': "
                     "%s. Exiting...", strerror(err));
            _exit(1);
        }
        fsync_result(a, err);
        errno = err;
        return -1;
    }
    atomic_store(&a->synced, end);
    fsync_result(a, 0);
    return 0;
}

static int flush(aof *a, uint64_t upto, int do_sync, int force) {
    if (!force && atomic_load(&a->write_errno) &&
        clock_mono_ms() < atomic_load(&a->retry_at_ms))
        return aof_durable(a, do_sync) >= upto ? 0 : -1;
    pthread_mutex_lock(&a->io_lock);
    int rc = 0;
    if (aof_durable(a, do_sync) < upto && a->fd >= 0)
        rc = write_pending_locked(a, do_sync ? SYNC_OR_EXIT : SYNC_NONE);
    pthread_mutex_unlock(&a->io_lock);
    return rc;
}

int aof_flush(aof *a, uint64_t upto, int do_sync) { return flush(a, upto, do_sync, 0); }

int aof_flush_now(aof *a, int do_sync) { return flush(a, UINT64_MAX, do_sync, 1); }

int aof_flush_final(aof *a) {
    pthread_mutex_lock(&a->io_lock);
    int rc = a->fd >= 0 ? write_pending_locked(a, SYNC_OR_FAIL) : 0;
    int err = errno;
    pthread_mutex_unlock(&a->io_lock);
    errno = err;
    return rc;
}

static void raise_synced(aof *a, uint64_t to) {
    uint64_t cur = atomic_load(&a->synced);
    while (cur < to && !atomic_compare_exchange_weak(&a->synced, &cur, to)) {
    }
}

void aof_sync_background(aof *a) {
    pthread_mutex_lock(&a->io_lock);
    int fd = -1;
    uint64_t target = 0;
    if (a->fd >= 0) {
        write_pending_locked(a, SYNC_NONE);
        target = atomic_load(&a->written);
        /* A private descriptor: the rewrite may close a->fd meanwhile. */
        if (atomic_load(&a->synced) < target) fd = dup(a->fd);
    }
    pthread_mutex_unlock(&a->io_lock);
    if (fd < 0) return;
    if (fdatasync(fd) == 0) {
        raise_synced(a, target);
        fsync_result(a, 0);
    } else {
        fsync_result(a, errno);
    }
    close(fd);
}

/* ---- files and the manifest ---- */

/* File names; a name that does not fit becomes "" (fails on open). */
static void incr_name(const aof *a, uint64_t seq, char *out, size_t len) {
    int n = snprintf(out, len, "%s.%" PRIu64 ".incr.aof", a->prefix, seq);
    if (n < 0 || (size_t)n >= len) out[0] = 0;
}

static void base_name(const aof *a, uint64_t seq, char *out, size_t len) {
    int n = snprintf(out, len, "%s.%" PRIu64 ".base.pier", a->prefix, seq);
    if (n < 0 || (size_t)n >= len) out[0] = 0;
}

/* The first sequence number from `from` on whose file name is free, with
 * the name in out: a file the manifest does not list (a leftover of a
 * crash, or of an operator) is never truncated or overwritten. */
static uint64_t free_seq(const aof *a, char type, uint64_t from, char *out, size_t len) {
    for (uint64_t seq = from;; seq++) {
        if (type == 'b') base_name(a, seq, out, len);
        else incr_name(a, seq, out, len);
        char path[AOF_PATH_MAX + 300];
        file_path(a, out, path, sizeof path);
        if (!out[0] || !pio_exists(path)) return seq;
    }
}

/* Create a new, empty incr file (never an existing one); returns its fd
 * or -1. */
static int create_incr(const aof *a, const char *name) {
    char path[AOF_PATH_MAX + 300];
    file_path(a, name, path, sizeof path);
    return open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
}

int aof_create(aof *a, keyspace *ks, int64_t now_ms, char *err, size_t errlen) {
    manifest m;
    memset(&m, 0, sizeof m);
    char bname[MANIFEST_NAME_MAX], iname[MANIFEST_NAME_MAX];
    char path[AOF_PATH_MAX + 300], tmp[AOF_PATH_MAX + 300];
    uint64_t bseq = free_seq(a, 'b', 1, bname, sizeof bname);
    uint64_t iseq = free_seq(a, 'i', 1, iname, sizeof iname);
    file_path(a, bname, path, sizeof path);
    file_path(a, "temp-create.pier", tmp, sizeof tmp);
    unsigned char *buf = xmalloc(SNAP_BUF_SIZE);
    int rc = snap_save_file(ks, 0, tmp, path, buf, SNAP_BUF_SIZE, now_ms);
    free(buf);
    int fd = rc == 0 ? create_incr(a, iname) : -1;
    if (fd < 0 || manifest_add(&m, bname, bseq, 'b') < 0 || manifest_add(&m, iname, iseq, 'i') < 0 ||
        manifest_store(&m, a->dir, a->manifest_name) < 0) {
        snprintf(err, errlen, "cannot create the AOF in %s: %s", a->dir, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    a->man = m;
    struct stat st;
    atomic_store(&a->base_size, stat(path, &st) == 0 ? (long long)st.st_size : 0);
    return 0;
}

int aof_open_tail(aof *a, char *err, size_t errlen) {
    manifest_file *last = a->man.n ? &a->man.files[a->man.n - 1] : NULL;
    if (!last || last->type != 'i') {
        manifest m = a->man;
        char name[MANIFEST_NAME_MAX];
        uint64_t seq = free_seq(a, 'i', manifest_max_seq(&m, 'i') + 1, name, sizeof name);
        int fd = create_incr(a, name);
        if (fd < 0 || manifest_add(&m, name, seq, 'i') < 0 ||
            manifest_store(&m, a->dir, a->manifest_name) < 0) {
            snprintf(err, errlen, "cannot add an AOF incr file in %s: %s", a->dir, strerror(errno));
            if (fd >= 0) close(fd);
            return -1;
        }
        a->man = m;
        a->fd = fd;
        a->tail_base = 0;
        return 0;
    }
    char path[AOF_PATH_MAX + 300];
    file_path(a, last->name, path, sizeof path);
    a->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (a->fd < 0) {
        snprintf(err, errlen, "cannot open the AOF file %s: %s", path, strerror(errno));
        return -1;
    }
    atomic_store(&a->cur_incr_size, pio_fd_size(a->fd));
    a->tail_base = (uint64_t)pio_fd_size(a->fd);
    if (atomic_load(&a->rewrite_base_size) == 0)
        atomic_store(&a->rewrite_base_size, aof_total_size(a));
    return 0;
}

/* ---- rewrite ---- */

int aof_rewrite_prepare(aof *a, char *err, size_t errlen) {
    int e = atomic_load(&a->write_errno);
    if (e) {
        snprintf(err, errlen, "the AOF cannot be written (%s)", strerror(e));
        return -1;
    }
    manifest m = a->man;
    char name[MANIFEST_NAME_MAX];
    uint64_t seq = free_seq(a, 'i', manifest_max_seq(&m, 'i') + 1, name, sizeof name);
    if (manifest_add(&m, name, seq, 'i') < 0) {
        snprintf(err, errlen, "too many AOF files in the manifest");
        return -1;
    }
    int fd = create_incr(a, name);
    if (fd < 0 || manifest_store(&m, a->dir, a->manifest_name) < 0) {
        snprintf(err, errlen, "cannot start an AOF incr file: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    a->man = m;
    return fd;
}

int aof_switch_begin(aof *a, int new_fd) {
    pthread_mutex_lock(&a->io_lock);
    write_pending_locked(a, SYNC_NONE); /* a failure keeps the bytes pending (and
                                           cuts a short write off the old file):
                                           they go to the new file, in order */
    int old = a->fd;
    a->fd = new_fd;
    atomic_fetch_add(&a->old_incr_size, atomic_exchange(&a->cur_incr_size, 0));
    return old;
}

int aof_switch_finish(aof *a, int old_fd) {
    /* Everything written so far is in old_fd: once it is on disk, so is
     * every byte up to `written` (the new file has none yet: io_lock). */
    int rc = 0, err = 0;
    if (old_fd >= 0) {
        if (fdatasync(old_fd) == 0) {
            raise_synced(a, atomic_load(&a->written));
        } else {
            rc = -1;
            err = errno;
            fsync_result(a, err);
        }
        close(old_fd);
    }
    pthread_mutex_unlock(&a->io_lock);
    errno = err;
    return rc;
}

static int listed(const manifest *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->files[i].name, name)) return 1;
    return 0;
}

int aof_rewrite_commit(aof *a, const char *tmp_base, char *err, size_t errlen) {
    manifest m;
    memset(&m, 0, sizeof m);
    char bname[MANIFEST_NAME_MAX], path[AOF_PATH_MAX + 300];
    uint64_t seq = free_seq(a, 'b', manifest_max_seq(&a->man, 'b') + 1, bname, sizeof bname);
    file_path(a, bname, path, sizeof path);
    const manifest_file *cur = &a->man.files[a->man.n - 1];
    if (rename(tmp_base, path) < 0 || manifest_add(&m, bname, seq, 'b') < 0 ||
        manifest_add(&m, cur->name, cur->seq, 'i') < 0 ||
        manifest_store(&m, a->dir, a->manifest_name) < 0) {
        snprintf(err, errlen, "cannot install the rewritten AOF: %s", strerror(errno));
        unlink(tmp_base);
        return -1;
    }
    for (int i = 0; i < a->man.n; i++) {
        if (listed(&m, a->man.files[i].name)) continue;
        char old[AOF_PATH_MAX + 300];
        file_path(a, a->man.files[i].name, old, sizeof old);
        unlink(old);
    }
    a->man = m;
    struct stat st;
    atomic_store(&a->base_size, stat(path, &st) == 0 ? (long long)st.st_size : 0);
    atomic_store(&a->old_incr_size, 0);
    atomic_store(&a->rewrite_base_size, aof_total_size(a));
    return 0;
}

/* ---- replay ---- */

typedef struct argvec {
    cmd_arg *v;
    size_t n, cap;
} argvec;

/* A "<c><digits>\r\n" line at *pos. Returns 1 (value in *out, *pos past
 * it), 0 when the data ends first, -1 when malformed. */
static int read_count(const unsigned char *b, size_t len, size_t *pos, char c, uint64_t *out) {
    size_t p = *pos;
    if (p >= len) return 0;
    if (b[p] != c) return -1;
    uint64_t v = 0;
    size_t digits = 0;
    for (p++; p < len && b[p] >= '0' && b[p] <= '9'; p++, digits++) {
        if (digits == 18) return -1;
        v = v * 10 + (uint64_t)(b[p] - '0');
    }
    if (p + 1 >= len) return 0;
    if (digits == 0 || b[p] != '\r' || b[p + 1] != '\n') return -1;
    *pos = p + 2;
    *out = v;
    return 1;
}

/* One command at *pos. Returns 1 (args in av, *pos past it), 0 when the
 * data ends inside it, -1 when malformed (*pos at the bad byte's command). */
static int parse_command(const unsigned char *b, size_t len, size_t *pos, argvec *av) {
    size_t p = *pos;
    uint64_t argc;
    int r = read_count(b, len, &p, '*', &argc);
    if (r <= 0) return r;
    if (argc == 0 || argc > AOF_MAX_ARGS) return -1;
    /* Every argument takes at least 6 bytes ("$0\r\n\r\n"): a count the
     * remaining bytes cannot hold is a record cut short (a torn tail),
     * and must not make the loader reserve memory for it first (an
     * 11-byte "*16777216\r\n" reserved 256 MB). */
    if (argc > (len - p) / 6) return 0;
    if (argc > av->cap) {
        av->cap = (size_t)argc;
        av->v = xrealloc(av->v, av->cap * sizeof *av->v);
    }
    for (uint64_t i = 0; i < argc; i++) {
        uint64_t n;
        r = read_count(b, len, &p, '$', &n);
        if (r <= 0) return r;
        if (n > len - p || len - p - n < 2) return 0;
        if (b[p + n] != '\r' || b[p + n + 1] != '\n') return -1;
        av->v[i].p = (const char *)b + p;
        av->v[i].n = (size_t)n;
        p += n + 2;
    }
    av->n = (size_t)argc;
    *pos = p;
    return 1;
}

static int all_zero(const unsigned char *b, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (b[i]) return 0;
    return 1;
}

/* Cut a damaged tail off the last incr file. */
static int cut_tail(const char *path, size_t at, size_t len, char *err, size_t errlen) {
    log_warn("AOF %s ends with an incomplete command at offset %zu (%zu bytes): "
             "truncating it there (a crash during a write)", path, at, len - at);
    if (truncate(path, (off_t)at) < 0) {
        snprintf(err, errlen, "cannot truncate %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Replay incr file number `file` of the manifest (at path) through exec,
 * keeping a->replay_pos on the record being replayed. */
static int replay_incr(aof *a, int file, const char *path, int is_last, aof_exec_fn *exec,
                       void *arg, char *err, size_t errlen) {
    const unsigned char *b;
    size_t len;
    if (pio_map_file(path, &b, &len) < 0) {
        snprintf(err, errlen, "cannot read the AOF file %s: %s", path, strerror(errno));
        return -1;
    }
    argvec av = {0};
    size_t pos = 0;
    int rc = 0;
    while (pos < len && rc == 0) {
        size_t start = pos;
        int r = parse_command(b, len, &pos, &av);
        if (r == 1) {
            a->replay_pos = AOF_POS(file, start);
            if (exec(arg, (int)av.n, av.v) < 0) {
                snprintf(err, errlen, "unknown command '%.*s' in the AOF file %s at offset %zu",
                         (int)(av.v[0].n > 64 ? 64 : av.v[0].n), av.v[0].p, path, start);
                rc = -1;
            }
        } else if (is_last && (r == 0 || all_zero(b + start, len - start))) {
            rc = cut_tail(path, start, len, err, errlen);
            break;
        } else {
            snprintf(err, errlen, "bad %s in the AOF file %s at offset %zu",
                     r == 0 ? "truncated command" : "RESP format", path, start);
            rc = -1;
        }
    }
    free(av.v);
    pio_unmap(b, len);
    return rc;
}

static int load_base(aof *a, keyspace *ks, const char *path, int64_t now_ms, char *err,
                     size_t errlen) {
    snap_result res;
    int rc = snap_load_file(ks, path, now_ms, &res);
    if (rc == 0) {
        snprintf(err, errlen, "the AOF base file %s listed in the manifest is missing", path);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "bad AOF base file %s at offset %" PRIu64 ": %s", path,
                 res.err_offset, res.err);
        return -1;
    }
    struct stat st;
    atomic_store(&a->base_size, stat(path, &st) == 0 ? (long long)st.st_size : 0);
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcmp(s + n - m, suffix);
}

/* A file some manifest would list (pier's, or Redis 7's, any prefix). */
static int aof_like(const char *name) {
    static const char *const suffixes[] = {".manifest", ".incr.aof", ".base.pier", ".base.rdb",
                                           ".base.aof"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (ends_with(name, suffixes[i])) return 1;
    return 0;
}

/* Up to `max` names of AOF-like files in dir, ", "-separated, into out;
 * returns how many there are in all. */
static int list_aof_like(const char *dir, char *out, size_t outlen, int max) {
    DIR *d = opendir(dir);
    int found = 0;
    size_t used = 0;
    out[0] = 0;
    if (!d) return 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (!aof_like(de->d_name)) continue;
        if (found++ < max && used < outlen) {
            int w = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", de->d_name);
            if (w > 0) used += (size_t)w;
        }
    }
    closedir(d);
    return found;
}

/* No manifest: refuse to start when files it would list exist (in the
 * AOF directory, or Redis's single-file AOF in dir). Their names cannot
 * tell which incr files a base already covers (a crash may leave old ones
 * behind), so a rebuilt manifest could replay a command twice; and
 * starting a new AOF next to them would hide their data. Returns 0 when
 * there are none, else -1 with err naming them. */
static int refuse_without_manifest(const aof *a, char *err, size_t errlen) {
    char names[600];
    int found = list_aof_like(a->dir, names, sizeof names, 6);
    if (found) {
        snprintf(err, errlen,
                 "the AOF manifest %s/%s is missing, but %s holds %d AOF file(s): %s%s. pier "
                 "neither guesses which of them hold the data set nor overwrites them: put the "
                 "manifest back (or write one, see docs/PERSISTENCE.md), or move the files away "
                 "to start from the snapshot",
                 a->dir, a->manifest_name, a->dir, found, names, found > 6 ? ", ..." : "");
        return -1;
    }
    if (pio_exists(a->legacy)) {
        snprintf(err, errlen,
                 "%s is a single-file AOF (as Redis before 7.0 writes it), which pier does not "
                 "load; pier keeps its AOF in %s. Move the file away to start",
                 a->legacy, a->dir);
        return -1;
    }
    return 0;
}

int aof_load(aof *a, keyspace *ks, int64_t now_ms, aof_exec_fn *exec, void *exec_arg,
             char *err, size_t errlen) {
    int rc = manifest_load(&a->man, a->dir, a->manifest_name, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0) return refuse_without_manifest(a, err, errlen);
    long long incr_total = 0;
    for (int i = 0; i < a->man.n; i++) {
        const manifest_file *f = &a->man.files[i];
        char path[AOF_PATH_MAX + 300];
        file_path(a, f->name, path, sizeof path);
        if (f->type == 'b') {
            if (load_base(a, ks, path, now_ms, err, errlen) < 0) return -1;
            continue;
        }
        if (replay_incr(a, i, path, i == a->man.n - 1, exec, exec_arg, err, errlen) < 0) return -1;
        struct stat st;
        long long size = stat(path, &st) == 0 ? (long long)st.st_size : 0;
        if (i == a->man.n - 1) atomic_store(&a->cur_incr_size, size);
        else incr_total += size;
    }
    atomic_store(&a->old_incr_size, incr_total);
    atomic_store(&a->rewrite_base_size, aof_total_size(a));
    return 1;
}

void aof_check_image(const unsigned char *b, size_t len, aof_exec_fn *fn, void *arg,
                     aof_check_result *res) {
    memset(res, 0, sizeof *res);
    argvec av = {0};
    size_t pos = 0;
    while (pos < len) {
        size_t start = pos;
        int r = parse_command(b, len, &pos, &av);
        if (r == 1 && fn && fn(arg, (int)av.n, av.v) < 0) r = 2;
        if (r != 1) {
            res->status = r == 2 ? AOF_CHECK_UNKNOWN
                        : (r == 0 || all_zero(b + start, len - start)) ? AOF_CHECK_TORN
                                                                       : AOF_CHECK_BAD;
            break;
        }
        res->ok_upto = pos;
        res->commands++;
    }
    free(av.v);
}

aof_pos aof_replay_pos(const aof *a) { return a->replay_pos; }

aof_pos aof_tail_pos(const aof *a, uint64_t at) {
    return AOF_POS(a->man.n - 1, a->tail_base + at);
}

int aof_nfiles(const aof *a) { return a->man.n; }

long aof_read_at(aof *a, aof_pos pos, void *buf, size_t n) {
    int file = AOF_POS_FILE(pos);
    uint64_t off = AOF_POS_OFF(pos);
    if (file < 0 || file >= a->man.n) {
        errno = ENOENT;
        return -1;
    }
    if (file == a->man.n - 1) { /* the file appends go to: only what is written */
        uint64_t end = a->tail_base + atomic_load(&a->written);
        if (off >= end) return 0;
        if (n > end - off) n = (size_t)(end - off);
    }
    char path[AOF_PATH_MAX + 300];
    file_path(a, a->man.files[file].name, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t got;
    do {
        got = pread(fd, buf, n, (off_t)off);
    } while (got < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    errno = e;
    return (long)got;
}
