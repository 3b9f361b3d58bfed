/* dispatch.c - the dispatcher: resolve a command into a verdict (the row
 * that runs and its keys, or the refusal to reply), admit it (maxmemory,
 * -MISCONF), run it with its keys locked and log it before they are
 * released. The order of the checks and their error texts are Redis
 * 7.0's processCommand: unknown command or subcommand, arity, auth,
 * maxmemory, disk errors, RESP2 subscriber context. */
#include <stdio.h>
#include <string.h>

#include "../lib/clock.h"
#include "../server/config.h"
#include "../store/evict.h"
#include "command.h"

#define EVICT_BUDGET_US 2000 /* eviction time per command once progressing */

/* ---- refusals ---- */

/* "ERR unknown command 'x', with args beginning with: 'a' 'b' " exactly as
 * Redis builds it: C-string semantics (stops at NUL) and at most ~128
 * bytes of arguments. */
static void reply_unknown_command(cmd_ctx *c) {
    char args[512] = "";
    size_t used = 0;
    for (int i = 1; i < c->argc && used < 128; i++) {
        int room = 128 - (int)used;
        size_t n = strnlen(c->argv[i].p, c->argv[i].n);
        int w = snprintf(args + used, sizeof args - used, "'%.*s' ",
                         (int)(n < (size_t)room ? n : (size_t)room), c->argv[i].p);
        if (w > 0) used += (size_t)w;
    }
    size_t nn = strnlen(c->argv[0].p, c->argv[0].n);
    reply_errorf(c->out, "ERR unknown command '%.*s', with args beginning with: %s",
                 (int)(nn < 128 ? nn : 128), c->argv[0].p, args);
}

static void reply_misconf(cmd_ctx *c, int aof_errno) {
    if (!aof_errno) {
        reply_error(c->out, ERR_MISCONF_RDB);
        return;
    }
    char buf[128];
    reply_errorf(c->out, ERR_MISCONF_AOF_PREFIX "%s", strerror_r(aof_errno, buf, sizeof buf));
}

void cmd_refuse(cmd_ctx *c, const cmd_verdict *v) {
    switch (v->refusal) {
    case CMD_REFUSE_UNKNOWN: reply_unknown_command(c); return;
    case CMD_REFUSE_UNKNOWN_SUB: reply_unknown_subcommand(c); return;
    case CMD_REFUSE_ARITY: reply_arity_error(c); return;
    case CMD_REFUSE_NOAUTH: reply_error(c->out, "NOAUTH Authentication required."); return;
    case CMD_REFUSE_OOM:
        reply_error(c->out, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    case CMD_REFUSE_MISCONF: reply_misconf(c, v->misconf_errno); return;
    case CMD_REFUSE_SUBSCRIBED:
        reply_errorf(c->out,
                     "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                     "PING / QUIT / RESET are allowed in this context",
                     v->cmd->name);
        return;
    default: return;
    }
}

/* ---- resolve ---- */

static int arity_ok(const command *cmd, int argc) {
    return cmd->arity >= 0 ? argc == cmd->arity : argc >= -cmd->arity;
}

int cmd_resolve(cmd_ctx *c, cmd_verdict *v) {
    memset(v, 0, sizeof *v);
    cmd_keys_init(&v->keys);
    /* A replayed AOF names rows by their own names (the dispatcher logs
     * cmd->name), whatever rename-command says now. */
    const cmd_arg *name = &c->argv[0];
    const command *top = (c->sess->flags & SESS_REPLAY) ? cmd_lookup_row(name->p, name->n)
                                                       : cmd_lookup(name->p, name->n);
    c->cmd = c->top = v->top = top;
    if (!top) {
        c->sess->last_cmd = "unknown";
        return v->refusal = CMD_REFUSE_UNKNOWN;
    }
    c->sess->last_cmd = top->name;
    if (top->flags & CMD_XPROTO) { /* no check applies: the handler hangs up */
        c->cmd = v->cmd = top;
        return v->refusal = CMD_OK;
    }
    const command *cmd = top;
    if (top->nsubs && c->argc >= 2) {
        cmd = cmd_lookup_sub(top, c->argv[1].p, c->argv[1].n);
        if (!cmd) return v->refusal = CMD_REFUSE_UNKNOWN_SUB;
    }
    c->cmd = v->cmd = cmd;
    c->sess->last_cmd = cmd->name;
    if (!arity_ok(cmd, c->argc)) return v->refusal = CMD_REFUSE_ARITY;
    /* As in Redis, a connection made while no password was set stays
     * authenticated when one is set, and clearing requirepass lets every
     * connection in. */
    if (!c->sess->authenticated && !(cmd->flags & CMD_NOAUTH) &&
        c->env->host->auth_required(c->env->host_arg))
        return v->refusal = CMD_REFUSE_NOAUTH;
    cmd_get_keys(cmd, c->argc, c->argv, &v->keys);
    /* RESP2 subscriber mode: the connection carries pushed messages, so
     * only commands whose replies cannot be confused with them may run.
     * (Redis checks this after maxmemory and disk errors: cmd_admit may
     * still replace it with those.) */
    if (c->sess->subscriptions > 0 && c->sess->proto == 2 && !(cmd->flags & CMD_SUBSCRIBED))
        return v->refusal = CMD_REFUSE_SUBSCRIBED;
    return v->refusal = CMD_OK;
}

void cmd_verdict_free(cmd_verdict *v) { cmd_keys_free(&v->keys); }

/* ---- admit ---- */

/* maxmemory: before a command that may grow memory (and before its keys
 * are locked: eviction locks shards itself), evict per policy until used
 * memory is under the limit. Returns 0 when it is still over: noeviction,
 * nothing the policy may evict. Eviction stops after a time budget once it
 * has made progress and lets the command run (Redis's "eviction still
 * running"): the next write continues, so latency stays bounded after a
 * big CONFIG SET maxmemory drop. */
static int enforce_maxmemory(cmd_ctx *c) {
    const struct pier_config *cfg = c->env->cfg;
    long long max = CFG_GET(cfg->maxmemory);
    const cmd_host *h = c->env->host;
    if (max <= 0 || h->used_memory(c->env->host_arg) <= (size_t)max) return 1;
    if (!c->sess->evict_pool) c->sess->evict_pool = evict_pool_new();
    int policy = CFG_GET(cfg->maxmemory_policy);
    int samples = (int)CFG_GET(cfg->maxmemory_samples);
    int64_t deadline_us = clock_mono_us() + EVICT_BUDGET_US;
    for (unsigned n = 1; h->used_memory(c->env->host_arg) > (size_t)max; n++) {
        if (!evict_one(c->env->ks, c->sess->evict_pool, policy, samples, c->now_ms)) return 0;
        if (n % 16 == 0 && clock_mono_us() > deadline_us) return 1;
    }
    return 1;
}

/* -MISCONF (Redis's writeCommandsDeniedByDiskError): the last background
 * save failed while stop-writes-on-bgsave-error is yes and save rules are
 * set (*aof_errno 0), or the AOF cannot be written (*aof_errno its errno).
 * Returns 1 when writes are refused. */
static int disk_refuses(const cmd_ctx *c, int *aof_errno) {
    const cmd_disk_status *d = c->env->disk;
    const struct pier_config *cfg = c->env->cfg;
    if (!d) return 0;
    if (atomic_load_explicit(&d->bgsave_failed, memory_order_relaxed) &&
        CFG_GET(cfg->stop_writes_on_bgsave_error) && CFG_GET(cfg->save_nrules) > 0) {
        *aof_errno = 0;
        return 1;
    }
    *aof_errno = atomic_load_explicit(&d->aof_errno, memory_order_relaxed);
    return *aof_errno != 0;
}

int cmd_admit(cmd_ctx *c, cmd_verdict *v) {
    if (v->refusal != CMD_OK && v->refusal != CMD_REFUSE_SUBSCRIBED) return v->refusal;
    if (c->sess->flags & SESS_REPLAY) return v->refusal;
    const command *cmd = v->cmd;
    if ((cmd->flags & CMD_DENYOOM) && !enforce_maxmemory(c)) return v->refusal = CMD_REFUSE_OOM;
    if ((cmd->flags & (CMD_WRITE | CMD_DENY_DISKERR)) && disk_refuses(c, &v->misconf_errno))
        return v->refusal = CMD_REFUSE_MISCONF;
    return v->refusal;
}

/* ---- run ---- */

/* After a handler that changed the dataset: count the changes and log the
 * command (or its cmd_propagate_as replacement) to the AOF. Runs before
 * the locks are released, so for any key the log order is the execution
 * order across loop threads. */
static void after_write(cmd_ctx *c) {
    if (c->stats) STAT_ADD(c->stats->dirty, c->dirty);
    cmd_env *env = c->env;
    if (!env->propagate) return;
    if (c->prop_done) {
        /* the handler logged its own records */
    } else if (c->prop_argc) {
        c->aof_end = env->propagate(env->propagate_arg, c->prop_argv[0], c->prop_argc,
                                    c->prop_argv);
    } else {
        /* The table's name, not argv[0]: a renamed command is logged under
         * the name the replay looks up (a subcommand under its container's,
         * argv[1] names the subcommand). */
        cmd_arg name = {c->top->name, strlen(c->top->name)};
        c->aof_end = env->propagate(env->propagate_arg, name, c->argc, c->argv);
    }
    if (env->propagate_end) env->propagate_end(env->propagate_arg, c);
}

/* The handler, then its log, with the keys still locked. A handler that
 * logged records without counting a change (nothing to count) still
 * closes them into one cluster entry. */
static void call(cmd_ctx *c) {
    c->cmd->fn(c);
    if (c->dirty) after_write(c);
    else if (c->prop_done && c->env->propagate_end)
        c->env->propagate_end(c->env->propagate_arg, c);
}

void cmd_run(cmd_ctx *c, const cmd_verdict *v) {
    c->cmd = v->cmd;
    c->top = v->top;
    keyspace *ks = c->env->ks;
    ks_lockset ls;
    if (v->cmd->flags & CMD_ALLSHARDS) {
        ks_lockset_all(&ls);
    } else if (v->keys.n == 0) {
        call(c);
        return;
    } else if (v->keys.n == 1) {
        /* One key (GET, SET, INCR...): lock its shard directly, without
         * building and scanning a lockset bitmap. */
        const cmd_arg *key = &c->argv[cmd_keys_at(&v->keys, 0)];
        unsigned shard = ks_shard_of(ks, key->p, key->n);
        ks_lock_shard(ks, shard);
        call(c);
        ks_unlock_shard(ks, shard);
        return;
    } else {
        ks_lockset_clear(&ls);
        for (int i = 0; i < v->keys.n; i++) {
            const cmd_arg *key = &c->argv[cmd_keys_at(&v->keys, i)];
            ks_lockset_add(ks, &ls, key->p, key->n);
        }
    }
    ks_lock(ks, &ls);
    call(c);
    ks_unlock(ks, &ls);
}

void cmd_execute(cmd_ctx *c) {
    cmd_verdict v;
    cmd_resolve(c, &v);
    if (cmd_admit(c, &v) == CMD_OK) cmd_run(c, &v);
    else cmd_refuse(c, &v);
    cmd_verdict_free(&v);
}
