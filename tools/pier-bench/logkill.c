/* logkill.c - pier-bench log --kill-leader-at SECONDS (log.h).
 *
 * The leader is the node of --nodes whose INFO cluster (on its RESP port:
 * the batch port - 1000, or --resp) says cluster_role:leader; its pid is
 * INFO server's process_id, and it is killed with SIGKILL only if that
 * pid is a pier-server on this machine. Every publisher's ACKs feed a
 * timeline (acks_on_ack) that gives, from the kill on:
 *   stall       the longest time without an ACK that acknowledged
 *               something (the kill to the first ACK, or a later gap)
 *   before      acknowledged MiB/s from the start to the kill
 *   after       acknowledged MiB/s from the end of the stall to the end */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"

void acks_init(ack_timeline *a) {
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
}

void acks_on_ack(void *ctx, uint64_t seq, uint32_t messages, unsigned flags) {
    (void)seq;
    if (!messages || (flags & PIER_ACK_SKIPPED)) return; /* a late duplicate, a lost batch */
    ack_timeline *a = ctx;
    uint64_t now = now_ns();
    pthread_mutex_lock(&a->mu);
    if (a->kill_ns) {
        uint64_t from = a->last_ns > a->kill_ns ? a->last_ns : a->kill_ns;
        if (!a->first_after_ns) a->first_after_ns = now;
        if (now - from > a->max_gap_ns) {
            a->max_gap_ns = now - from;
            a->gap_end_ns = now;
            a->acked_at_gap_end = a->acked;
        }
    }
    a->acked += messages;
    a->last_ns = now;
    pthread_mutex_unlock(&a->mu);
}

/* INFO <section> of node i over RESP (malloc'd), NULL when it does not
 * answer. */
static char *node_info(const log_options *o, int i, const char *section) {
    bnode n = log_resp_node(o, i);
    int fd = tcp_connect(n.host, n.port);
    if (fd < 0) return NULL;
    const char *argv[] = {"INFO", section};
    char *reply = resp_command(fd, 2, argv);
    close(fd);
    return reply;
}

/* The value of "<key>:" in an INFO text, into buf; false when absent. */
static bool info_field(const char *info, const char *key, char *buf, size_t cap) {
    size_t klen = strlen(key);
    for (const char *p = info; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, klen) || p[klen] != ':') continue;
        size_t n = strcspn(p + klen + 1, "\r\n");
        if (n >= cap) n = cap - 1;
        memcpy(buf, p + klen + 1, n);
        buf[n] = 0;
        return true;
    }
    return false;
}

/* The index in --nodes of the serving leader and its pid; -1 with why in
 * err. */
static int find_leader(const log_options *o, long long *pid, char *err, size_t cap) {
    char role[32], serving[8], leader_id[16] = "?", pidbuf[32];
    snprintf(err, cap, "no node of --nodes answered INFO cluster on its RESP port "
             "(the batch port - 1000, or --resp)");
    for (int i = 0; i < o->node_count; i++) {
        char *info = node_info(o, i, "cluster");
        if (!info) continue;
        bool cluster = info_field(info, "cluster_enabled", role, sizeof role) && role[0] == '1';
        bool leads = info_field(info, "cluster_role", role, sizeof role) &&
                     !strcmp(role, "leader") &&
                     info_field(info, "cluster_serving", serving, sizeof serving) &&
                     serving[0] == '1';
        if (cluster) info_field(info, "cluster_leader_id", leader_id, sizeof leader_id);
        free(info);
        snprintf(err, cap, cluster ? "the leader (node id %s) is not one of --nodes, or none "
                                     "serves now" : "not a cluster (cluster_enabled:0)",
                 leader_id);
        if (!leads) continue;
        char *server = node_info(o, i, "server");
        bool ok = server && info_field(server, "process_id", pidbuf, sizeof pidbuf);
        free(server);
        if (!ok) {
            snprintf(err, cap, "the leader %s gave no process_id", o->nodes[i].addr);
            return -1;
        }
        *pid = atoll(pidbuf);
        return i;
    }
    return -1;
}

/* pid is a running pier-server of this machine. */
static bool is_local_pier(long long pid) {
    char path[64], cmd[512];
    snprintf(path, sizeof path, "/proc/%lld/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(cmd, 1, sizeof cmd - 1, f);
    fclose(f);
    cmd[n] = 0;
    return strstr(cmd, "pier-server") != NULL; /* argv[0]: the binary's path */
}

void kill_check(const log_run *r) {
    char err[200];
    long long pid = 0;
    int i = find_leader(r->o, &pid, err, sizeof err);
    if (i < 0) die("--kill-leader-at: %s", err);
    if (!is_local_pier(pid))
        die("--kill-leader-at: the leader %s has pid %lld, which is not a pier-server on this "
            "machine (the nodes must run here)", r->o->nodes[i].addr, pid);
}

void kill_maybe(log_run *r, double elapsed_s) {
    kill_result *k = &r->kill;
    if (k->attempted || elapsed_s < r->o->kill_at) return;
    k->attempted = true;
    long long pid = 0;
    int i = find_leader(r->o, &pid, k->error, sizeof k->error);
    if (i < 0) return;
    if (!is_local_pier(pid)) {
        snprintf(k->error, sizeof k->error, "pid %lld of %s is not a pier-server here", pid,
                 r->o->nodes[i].addr);
        return;
    }
    if (kill((pid_t)pid, SIGKILL) != 0) {
        snprintf(k->error, sizeof k->error, "kill %lld failed", pid);
        return;
    }
    pthread_mutex_lock(&r->acks.mu);
    r->acks.kill_ns = now_ns();
    r->acks.acked_at_kill = r->acks.acked;
    pthread_mutex_unlock(&r->acks.mu);
    k->killed = true;
    k->node = i;
    k->pid = pid;
    if (!r->o->c.quiet && !r->o->c.json && !r->o->c.csv)
        fprintf(stderr, "\npier-bench: killed the leader %s (RESP %s, pid %lld) at %.2f s\n",
                r->o->nodes[i].addr, log_resp_node(r->o, i).addr, pid, elapsed_s);
}

static double mib_per_sec(const log_run *r, uint64_t msgs, uint64_t from, uint64_t to) {
    return to > from ? (double)msgs * (double)r->o->msg_size / 1048576.0 / ((double)(to - from) / 1e9)
                     : 0;
}

void kill_results(const log_run *r, record *rec) {
    ack_timeline a;
    /* the timeline is the run's shared state: const here means "not
     * changed by the report", the lock still guards the copy */
    pthread_mutex_t *mu = (pthread_mutex_t *)&r->acks.mu;
    pthread_mutex_lock(mu);
    a = r->acks;
    pthread_mutex_unlock(mu);
    bool killed = r->kill.killed && a.kill_ns;
    bool acked_after = killed && a.gap_end_ns;
    rec_bool(rec, "leader_killed", killed);
    rec_str(rec, "killed_node", killed ? r->o->nodes[r->kill.node].addr : NULL);
    if (killed) rec_num(rec, "kill_s", (double)(a.kill_ns - r->t0) / 1e9, 3);
    else rec_null(rec, "kill_s");
    if (!acked_after) {
        rec_null(rec, "stall_s");
        rec_null(rec, "first_ack_after_kill_s");
        rec_null(rec, "mib_per_sec_before_kill");
        rec_null(rec, "mib_per_sec_after_stall");
        return;
    }
    uint64_t end = r->t_end > a.gap_end_ns ? r->t_end : a.last_ns;
    rec_num(rec, "stall_s", (double)a.max_gap_ns / 1e9, 3);
    rec_num(rec, "first_ack_after_kill_s", (double)(a.first_after_ns - a.kill_ns) / 1e9, 3);
    rec_num(rec, "mib_per_sec_before_kill", mib_per_sec(r, a.acked_at_kill, r->t0, a.kill_ns), 1);
    rec_num(rec, "mib_per_sec_after_stall",
            mib_per_sec(r, a.acked - a.acked_at_gap_end, a.gap_end_ns, end), 1);
}

void kill_print(const log_run *r) {
    const kill_result *k = &r->kill;
    if (!k->attempted) {
        printf("  --kill-leader-at %.2f s: not done, the run ended before (give more --total)\n",
               r->o->kill_at);
        return;
    }
    if (!k->killed) {
        printf("  --kill-leader-at %.2f s: no leader killed: %s\n", r->o->kill_at, k->error);
        return;
    }
    record rec = {0};
    kill_results(r, &rec);
    const rfield *stall = rec_get(&rec, "stall_s");
    printf("  leader %s (RESP %s, pid %lld) killed at %.2f s\n", r->o->nodes[k->node].addr,
           log_resp_node(r->o, k->node).addr, k->pid, rec_get(&rec, "kill_s")->d);
    if (stall->type == RV_NULL) {
        printf("  no ACK after the kill\n");
        return;
    }
    printf("  stall %.3f s (longest time without an ACK from the kill on; first ACK after "
           "%.3f s)\n", stall->d, rec_get(&rec, "first_ack_after_kill_s")->d);
    printf("  acknowledged MiB/s: %.1f before the kill, %.1f after the stall\n",
           rec_get(&rec, "mib_per_sec_before_kill")->d,
           rec_get(&rec, "mib_per_sec_after_stall")->d);
}
