/* limits.c - used-memory figures for INFO and maxmemory, and the config
 * values other layers keep a copy of (keyspace LFU mode, command names).
 *
 * Why two memory figures: INFO's used_memory must be what the allocator
 * really holds (mallinfo2), but mallinfo2 walks the allocator's free lists
 * under its arena locks, far too slow for every write command. The
 * maxmemory check uses the keyspace's own byte count (one atomic load,
 * exact for entries and tables) plus an offset for everything else that
 * the cron recalibrates hz times a second. Between calibrations the
 * estimate drifts only by non-keyspace allocations (client buffers) and by
 * malloc's per-chunk headers of new keys.
 *
 * The descriptor limit follows Redis's adjustOpenFilesLimit: every client
 * is a descriptor, so maxclients + a reserve must fit under RLIMIT_NOFILE;
 * the soft limit is raised at start and on CONFIG SET maxclients, and
 * where it cannot be, maxclients is lowered (start) or refused (CONFIG
 * SET). Running out anyway (the batch port, descriptors of other modules,
 * a limit lowered from outside) is handled by the accept loops
 * (listener.c). */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "../lib/log.h"
#include "../store/evict.h"
#include "server.h"

size_t server_memory_allocator(server *srv) {
    struct mallinfo2 mi = mallinfo2();
    size_t used = mi.uordblks + mi.hblkhd;
    return used ? used : server_memory_estimate(srv);
}

size_t server_memory_estimate(server *srv) {
    long long off = atomic_load_explicit(&srv->mem_offset, memory_order_relaxed);
    size_t ks = ks_used_memory(srv->ks);
    if (off < 0 && (size_t)-off > ks) return 0;
    return off < 0 ? ks - (size_t)-off : ks + (size_t)off;
}

void server_memory_calibrate(server *srv) {
    struct mallinfo2 mi = mallinfo2();
    size_t used = mi.uordblks + mi.hblkhd;
    if (used == 0) return; /* replacement allocator: keyspace count only */
    size_t ks = ks_used_memory(srv->ks);
    long long off = used >= ks ? (long long)(used - ks) : -(long long)(ks - used);
    atomic_store_explicit(&srv->mem_offset, off, memory_order_relaxed);
}

void server_apply_config(server *srv) {
    int policy = CFG_GET(srv->cfg.maxmemory_policy);
    long long factor = CFG_GET(srv->cfg.lfu_log_factor);
    long long decay = CFG_GET(srv->cfg.lfu_decay_time);
    ks_set_lfu(srv->ks, evict_policy_is_lfu(policy), factor > INT32_MAX ? INT32_MAX : (int)factor,
               decay > INT32_MAX ? INT32_MAX : (int)decay);
}

int server_apply_renames(server *srv) {
    for (int i = 0; i < srv->cfg.nrenames; i++) {
        char err[128];
        if (cmd_table_rename(srv->cfg.renames[i].from, srv->cfg.renames[i].to, err, sizeof err)) {
            log_fatal("rename-command %s: %s", srv->cfg.renames[i].from, err);
            return -1;
        }
    }
    return 0;
}

/* --- the descriptor limit --- */

static rlim_t reserved_fds(int nthreads) {
    return SERVER_MIN_RESERVED_FDS + 2 * (rlim_t)(nthreads > 0 ? nthreads : 1);
}

/* Make the soft RLIMIT_NOFILE at least want if the system lets us: within
 * the hard limit always; above it only where the process may raise the
 * hard limit too (as Redis, which asks for both). Returns the soft limit
 * in force afterwards (0 when it cannot be read); *why gets the errno of
 * a refused raise. */
static rlim_t raise_nofile(rlim_t want, int *why) {
    struct rlimit rl;
    *why = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        *why = errno;
        return 0;
    }
    if (rl.rlim_cur >= want) return rl.rlim_cur;
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want) {
        struct rlimit up = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) return want;
        *why = errno;
        return rl.rlim_cur;
    }
    struct rlimit both = {want, want};
    if (setrlimit(RLIMIT_NOFILE, &both) == 0) return want;
    *why = errno;
    struct rlimit to_hard = {rl.rlim_max, rl.rlim_max};
    if (rl.rlim_max > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &to_hard) == 0) return rl.rlim_max;
    return rl.rlim_cur;
}

static void set_maxclients(server *srv, long long n) {
    char buf[32], err[128];
    snprintf(buf, sizeof buf, "%lld", n);
    if (config_set(&srv->cfg, "maxclients", buf, 0, err, sizeof err) < 0)
        log_warn("cannot set maxclients to %s: %s", buf, err);
}

int server_adjust_fd_limit(server *srv, int nthreads) {
    long long maxclients = CFG_GET(srv->cfg.maxclients);
    rlim_t reserve = reserved_fds(nthreads), want = (rlim_t)maxclients + reserve;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_warn("Unable to obtain the current NOFILE limit (%s), assuming 1024 and setting the "
                 "max clients configuration accordingly.", strerror(errno));
        set_maxclients(srv, 1024 - (long long)reserve);
        return 0;
    }
    rlim_t old = rl.rlim_cur;
    if (old >= want) return 0;
    int why;
    rlim_t now = raise_nofile(want, &why);
    if (now >= want) {
        log_info("Increased maximum number of open files to %llu (it was originally set to %llu).",
                 (unsigned long long)want, (unsigned long long)old);
        return 0;
    }
    if (now <= reserve) {
        log_warn("Your current 'ulimit -n' of %llu is not enough for the server to start. Please "
                 "increase your open file limit to at least %llu. Exiting.",
                 (unsigned long long)old, (unsigned long long)want);
        return -1;
    }
    set_maxclients(srv, (long long)(now - reserve));
    log_warn("You requested maxclients of %lld requiring at least %llu max file descriptors.",
             maxclients, (unsigned long long)want);
    log_warn("Server can't set maximum open files to %llu because of OS error: %s.",
             (unsigned long long)want, strerror(why));
    log_warn("Current maximum open files is %llu. maxclients has been reduced to %lld to "
             "compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
             (unsigned long long)now, CFG_GET(srv->cfg.maxclients));
    return 0;
}

int server_fd_limit_allows(server *srv, long long maxclients, char *err, size_t errlen) {
    rlim_t reserve = reserved_fds(srv->nthreads), want = (rlim_t)maxclients + reserve;
    int why;
    rlim_t now = raise_nofile(want, &why);
    if (now >= want) return 0;
    snprintf(err, errlen,
             "The operating system is not able to handle the specified number of clients, try "
             "with %lld", now > reserve ? (long long)(now - reserve) : 0);
    return -1;
}
