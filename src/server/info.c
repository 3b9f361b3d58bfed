/* info.c - the INFO text, one function per section. */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/mem.h"
#include "../persist/persist.h"
#include "batch.h"
#include "blocking.h"
#include "host.h"
#include "pubsub.h"
#include "../cluster/cluster.h"
#include "server.h"
#include "version.h"

typedef struct info_buf {
    char *p;
    size_t len, cap;
} info_buf;

static void add(info_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(info_buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
}

/* A counter as INFO shows it: since start-up or the last CONFIG RESETSTAT
 * (server.h: stat_base). */
static unsigned long long since_reset(uint64_t total, uint64_t base) {
    return total > base ? (unsigned long long)(total - base) : 0;
}
#define SUM_STAT(srv, field) \
    since_reset(SERVER_STAT(srv, field), STAT_GET((srv)->stat_base.field))

static void section_server(server *srv, info_buf *b) {
    struct utsname u;
    uname(&u);
    int64_t up_s = (clock_mono_us() - srv->start_mono_us) / 1000000;
    add(b,
        "# Server\r\nredis_version:%s\r\npier_version:%s\r\nredis_mode:standalone\r\n"
        "os:%s %s %s\r\narch_bits:%d\r\nmultiplexing_api:epoll\r\n"
        "process_id:%d\r\nrun_id:%s\r\ntcp_port:%d\r\nserver_time_usec:%lld\r\n"
        "uptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\nhz:%d\r\n"
        "io_threads_active:%d\r\nloop_threads:%d\r\nexecutable:pier-server\r\n"
        "config_file:%s\r\n",
        PIER_REDIS_VERSION, PIER_VERSION, u.sysname, u.release, u.machine,
        (int)(sizeof(void *) * 8), (int)getpid(), srv->run_id, srv->port,
        (long long)clock_wall_us(), (long long)up_s, (long long)(up_s / 86400),
        (int)CFG_GET(srv->cfg.hz), srv->nthreads > 1, srv->nthreads,
        srv->cfg.config_file ? srv->cfg.config_file : "");
}

static void section_clients(server *srv, info_buf *b) {
    add(b,
        "# Clients\r\nconnected_clients:%lld\r\nmaxclients:%lld\r\n"
        "blocked_clients:%ld\r\ntracking_clients:0\r\n",
        (long long)atomic_load(&srv->nclients), CFG_GET(srv->cfg.maxclients),
        blocking_parked(srv));
}

/* Resident set size from /proc/self/statm (pages -> bytes). */
static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

static void human_bytes(char *buf, size_t len, size_t n) {
    if (n < 1024) snprintf(buf, len, "%zuB", n);
    else if (n < 1024 * 1024) snprintf(buf, len, "%.2fK", n / 1024.0);
    else if (n < 1024UL * 1024 * 1024) snprintf(buf, len, "%.2fM", n / 1048576.0);
    else snprintf(buf, len, "%.2fG", n / 1073741824.0);
}

static void section_memory(server *srv, info_buf *b) {
    /* used_memory is what glibc's allocator says it holds for us (in-use
     * chunks plus mmapped blocks; the estimate under the sanitizers'
     * allocator); used_memory_estimate is the cheap figure maxmemory is
     * enforced against (limits.c); the dataset figure is the keyspace's
     * own count of its allocations. */
    size_t used = server_memory_allocator(srv);
    size_t estimate = server_memory_estimate(srv);
    size_t rss = rss_bytes();
    size_t dataset = ks_used_memory(srv->ks);
    long long maxmem = CFG_GET(srv->cfg.maxmemory);
    char h_used[32], h_rss[32], h_max[32], policy[32];
    human_bytes(h_used, sizeof h_used, used);
    human_bytes(h_rss, sizeof h_rss, rss);
    human_bytes(h_max, sizeof h_max, (size_t)maxmem);
    if (config_get(&srv->cfg, "maxmemory-policy", policy, sizeof policy) < 0) policy[0] = 0;
    add(b,
        "# Memory\r\nused_memory:%zu\r\nused_memory_human:%s\r\nused_memory_rss:%zu\r\n"
        "used_memory_rss_human:%s\r\nused_memory_estimate:%zu\r\nused_memory_dataset:%zu\r\n"
        "maxmemory:%lld\r\nmaxmemory_human:%s\r\nmaxmemory_policy:%s\r\n"
        "mem_fragmentation_ratio:%.2f\r\nmem_allocator:libc\r\n",
        used, h_used, rss, h_rss, estimate, dataset, maxmem, h_max, policy,
        used ? (double)rss / (double)used : 0.0);
}

static void section_persistence(server *srv, info_buf *b) {
    persist_status st;
    persist_get_status(srv->ps, &st);
    add(b,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\n"
        "rdb_changes_since_last_save:%lld\r\nrdb_bgsave_in_progress:%d\r\n"
        "rdb_last_save_time:%lld\r\nrdb_last_bgsave_status:%s\r\nrdb_saves:%lld\r\n"
        "aof_enabled:%d\r\naof_rewrite_in_progress:%d\r\naof_rewrite_scheduled:%d\r\n"
        "aof_last_bgrewrite_status:%s\r\naof_last_write_status:%s\r\naof_rewrites:%lld\r\n",
        st.changes_since_save, st.bgsave_in_progress, st.last_save_time,
        st.last_bgsave_ok ? "ok" : "err", st.bgsaves, st.aof_enabled,
        st.aof_rewrite_in_progress, st.aof_rewrite_scheduled,
        st.aof_last_rewrite_ok ? "ok" : "err", st.aof_last_write_ok ? "ok" : "err", st.rewrites);
    if (st.aof_enabled)
        add(b, "aof_current_size:%lld\r\naof_base_size:%lld\r\n", st.aof_current_size,
            st.aof_base_size);
}

static void section_stats(server *srv, info_buf *b) {
    unsigned long long expired = since_reset(ks_expired_total(srv->ks), atomic_load(&srv->expired_base));
    unsigned long long evicted = since_reset(ks_evicted_total(srv->ks), atomic_load(&srv->evicted_base));
    long long channels, patterns;
    pubsub_counts(srv, &channels, &patterns);
    add(b,
        "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
        "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
        "instantaneous_ops_per_sec:%llu\r\nrejected_connections:%llu\r\nexpired_keys:%llu\r\nexpired_keys_active:%llu\r\n"
        "evicted_keys:%llu\r\nkeyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n"
        "pubsub_channels:%lld\r\npubsub_patterns:%lld\r\n",
        SUM_STAT(srv, connections_received), SUM_STAT(srv, commands),
        SUM_STAT(srv, net_input_bytes), SUM_STAT(srv, net_output_bytes),
        (unsigned long long)atomic_load(&srv->ops_sampler.rate),
        SUM_STAT(srv, rejected_connections), expired, SUM_STAT(srv, expired_keys_active), evicted,
        SUM_STAT(srv, keyspace_hits), SUM_STAT(srv, keyspace_misses), channels, patterns);
}

static void section_replication(server *srv, info_buf *b) {
    add(b, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
           "master_replid:%s\r\nmaster_repl_offset:0\r\n", srv->run_id);
}

static void section_cpu(server *srv, info_buf *b) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    add(b, "# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n",
        (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, (long)ru.ru_utime.tv_sec,
        (long)ru.ru_utime.tv_usec);
}

static void section_cluster(server *srv, info_buf *b) {
    char buf[2048];
    cluster_info(srv->cluster, buf, sizeof buf);
    add(b, "# Cluster\r\n%s", buf);
}

static void section_keyspace(server *srv, info_buf *b) {
    size_t keys = ks_count(srv->ks);
    add(b, "# Keyspace\r\n");
    if (keys)
        add(b, "db0:keys=%zu,expires=%zu,avg_ttl=%lld\r\n", keys, ks_volatile_count(srv->ks),
            (long long)ks_avg_ttl(srv->ks, clock_wall_ms()));
}

static void section_batch(server *srv, info_buf *b) {
    batch_stats st;
    batch_get_stats(srv, &st);
    add(b,
        "# Batch\r\nbatch_port:%d\r\nbatch_connections:%lld\r\nbatch_publishers:%lld\r\n"
        "batch_subscribers:%lld\r\nbatch_connections_received:%llu\r\n"
        "batch_batches_in:%llu\r\nbatch_batches_out:%llu\r\nbatch_bytes_in:%llu\r\n"
        "batch_bytes_out:%llu\r\nbatch_messages_in:%llu\r\nbatch_messages_out:%llu\r\n"
        "batch_duplicates:%llu\r\nbatch_errors:%llu\r\n",
        st.port, st.connections, st.publishers, st.subscribers,
        (unsigned long long)st.connections_received, (unsigned long long)st.batches_in,
        (unsigned long long)st.batches_out, (unsigned long long)st.bytes_in,
        (unsigned long long)st.bytes_out, (unsigned long long)st.messages_in,
        (unsigned long long)st.messages_out, (unsigned long long)st.duplicates,
        (unsigned long long)st.errors);
}

typedef void section_fn(server *, info_buf *);
static const struct {
    const char *name;
    section_fn *fn;
} sections[] = {
    {"server", section_server},           {"clients", section_clients},
    {"memory", section_memory},           {"persistence", section_persistence},
    {"stats", section_stats},             {"replication", section_replication},
    {"cpu", section_cpu},                 {"cluster", section_cluster},
    {"keyspace", section_keyspace},
    {"batch", section_batch},
};

char *server_info(server *srv, const char *section, size_t *len) {
    info_buf b = {xmalloc(1024), 0, 1024};
    b.p[0] = 0;
    int all = !*section || !strcasecmp(section, "default") || !strcasecmp(section, "all") ||
              !strcasecmp(section, "everything");
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        if (!all && strcasecmp(section, sections[i].name)) continue;
        if (b.len) add(&b, "\r\n");
        sections[i].fn(srv, &b);
    }
    *len = b.len;
    return b.p;
}
