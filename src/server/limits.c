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
 * malloc's per-chunk headers of new keys. */
#include <malloc.h>

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
