/* cmd_harness.c - the in-process command harness (cmd_harness.h): the
 * fake host, the captured AOF, and the dispatcher driven step by step so
 * that the log can be checked against the running command's locks. */
#include "cmd_harness.h"

#include <stdarg.h>
#include <stdlib.h>

#include "lib/clock.h"
#include "lib/util.h"
#include "store/evict.h"
#include "types/types.h"

#define H_ARGS_MAX 64

static cmd_harness *of(void *arg) { return arg; }

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

static char *xstrndup(const char *p, size_t n) {
    char *s = xmalloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* ---- the captured log ---- */

static void log_append(cmd_harness *h, const char *p, size_t n) {
    h->log = realloc(h->log, h->log_len + n + 1);
    if (!h->log) abort();
    memcpy(h->log + h->log_len, p, n);
    h->log_len += n;
    h->log[h->log_len] = 0;
}

/* Every key of the running command must be locked while it is logged. */
static void check_locked(cmd_harness *h) {
    const cmd_verdict *v = h->running;
    if (!v) return;
    for (int i = 0; i < v->keys.n; i++) {
        const cmd_arg *key = &h->running_ctx->argv[cmd_keys_at(&v->keys, i)];
        if (!ks_shard_locked(h->ks, ks_shard_of(h->ks, key->p, key->n))) h->unlocked_logs++;
    }
}

static uint64_t h_propagate(void *arg, cmd_arg name, int argc, const cmd_arg *argv) {
    cmd_harness *h = of(arg);
    check_locked(h);
    log_append(h, name.p, name.n);
    for (int i = 1; i < argc; i++) {
        log_append(h, " ", 1);
        log_append(h, argv[i].p, argv[i].n);
    }
    log_append(h, "\n", 1);
    h->records++;
    return h->log_len;
}

static void h_propagate_end(void *arg, cmd_ctx *c) {
    cmd_harness *h = of(arg);
    check_locked(h);
    h->entries_closed++;
}

/* ---- the fake host ---- */

static char *fixed_text(const char *txt, size_t *len) {
    *len = strlen(txt);
    return xstrndup(txt, *len);
}

static char *fake_client_list(void *arg, uint64_t only_id, const cmd_ctx *caller, size_t *len) {
    char line[128];
    snprintf(line, sizeof line, "id=%llu name=%s cmd=%s\n",
             (unsigned long long)(only_id ? only_id : caller->sess->id),
             caller->sess->name ? caller->sess->name : "", caller->sess->last_cmd);
    return fixed_text(line, len);
}

static void fake_reset_stats(void *arg) { of(arg)->resets++; }

static int fake_config_rewrite(void *arg, char *err, size_t errlen) {
    snprintf(err, errlen, "The server is running without a config file");
    return -1;
}

static size_t fake_client_kill(void *arg, const cmd_kill_filter *f, uint64_t self_id) {
    cmd_harness *h = of(arg);
    size_t n = 0;
    for (int i = 0; i < H_SESSIONS; i++)
        if ((f->id == 0 || f->id == h->sess[i].id) && !(f->skipme && h->sess[i].id == self_id))
            n += f->addr == NULL && f->laddr == NULL;
    return n;
}

static void fake_client_setname(void *arg, session *s, const char *name, size_t len) {
    free(s->name);
    s->name = len ? xstrndup(name, len) : NULL;
}

static size_t fake_client_count(void *arg) { return H_SESSIONS; }

static char *fake_info(void *arg, const char *section, size_t *len) {
    return fixed_text("# Server\r\nredis_version:7.0.15\r\n", len);
}

static int fake_config_get_at(void *arg, size_t i, const char **name, char *buf, size_t buflen) {
    cmd_harness *h = of(arg);
    *name = config_name_at(i);
    if (!*name || config_get(&h->cfg, *name, buf, buflen) < 0) return -1;
    return config_is_secret(*name) ? 1 : 0;
}

static int fake_config_set(void *arg, const char *name, const char *value, char *err,
                           size_t errlen) {
    cmd_harness *h = of(arg);
    char probe[8];
    if (config_get(&h->cfg, name, probe, sizeof probe) < 0) return -2;
    return config_set(&h->cfg, name, value, 1, err, errlen);
}

static int fake_check_password(void *arg, const char *pass, size_t len) {
    return config_check_password(&of(arg)->cfg, pass, len);
}

static int fake_auth_required(void *arg) { return config_auth_required(&of(arg)->cfg); }

static size_t fake_used_memory(void *arg) { return of(arg)->used_memory; }

static int fake_status(char *msg, size_t len, const char *text) {
    snprintf(msg, len, "%s", text);
    return 0;
}

static int fake_save(void *arg, char *msg, size_t len) { return fake_status(msg, len, "OK"); }

static int fake_bgsave(void *arg, int schedule, char *msg, size_t len) {
    return fake_status(msg, len, "Background saving started");
}

static int fake_bgrewriteaof(void *arg, char *msg, size_t len) {
    return fake_status(msg, len, "Background append only file rewriting started");
}

static long long fake_lastsave(void *arg) { return 1700000000; }

static int fake_shutdown(void *arg, int flags, char *msg, size_t len) {
    snprintf(msg, len, "ERR the harness does not shut down");
    return -1;
}

static int fake_block(void *arg, session *s, int nkeys, const cmd_arg *keys, int argc,
                      const cmd_arg *argv, long long timeout_ms) {
    cmd_harness *h = of(arg);
    if (s->flags & SESS_NOBLOCK) return -1;
    h->parked++;
    h->parked_timeout = timeout_ms;
    return 0;
}

static void fake_signal_key(void *arg, const char *key, size_t klen) { of(arg)->signals++; }
static void fake_unblock_key(void *arg, const char *key, size_t klen) { of(arg)->unblocks++; }

/* ---- the fake pub/sub ---- */

static int sess_index(cmd_harness *h, const session *s) { return (int)(s - h->sess); }

static int find_sub(cmd_harness *h, int si, int pattern, const char *ch, size_t n) {
    for (int i = 0; i < h->nsubs; i++)
        if (h->subs[i].sess == si && h->subs[i].pattern == pattern &&
            strlen(h->subs[i].ch) == n && memcmp(h->subs[i].ch, ch, n) == 0)
            return i;
    return -1;
}

static int fake_subscribe(void *arg, session *s, int pattern, const char *ch, size_t n) {
    cmd_harness *h = of(arg);
    int si = sess_index(h, s);
    if (find_sub(h, si, pattern, ch, n) < 0 && h->nsubs < H_SUBS_MAX) {
        h->subs[h->nsubs++] = (h_sub){si, pattern, xstrndup(ch, n)};
        s->subscriptions++;
    }
    return s->subscriptions;
}

static int fake_unsubscribe(void *arg, session *s, int pattern, const char *ch, size_t n) {
    cmd_harness *h = of(arg);
    int i = find_sub(h, sess_index(h, s), pattern, ch, n);
    if (i >= 0) {
        free(h->subs[i].ch);
        h->subs[i] = h->subs[--h->nsubs];
        s->subscriptions--;
    }
    return s->subscriptions;
}

static size_t fake_subscriptions_of(void *arg, session *s, int pattern, cmd_arg **out) {
    cmd_harness *h = of(arg);
    *out = xmalloc(H_SUBS_MAX * sizeof **out);
    size_t n = 0;
    for (int i = 0; i < h->nsubs; i++)
        if (h->subs[i].sess == sess_index(h, s) && h->subs[i].pattern == pattern)
            (*out)[n++] = (cmd_arg){xstrndup(h->subs[i].ch, strlen(h->subs[i].ch)),
                                    strlen(h->subs[i].ch)};
    return n;
}

static long long fake_publish(void *arg, session *from, const char *ch, size_t n,
                              const char *msg, size_t mlen) {
    cmd_harness *h = of(arg);
    long long got = 0;
    for (int i = 0; i < h->nsubs; i++) {
        const h_sub *sb = &h->subs[i];
        if (sb->pattern ? !util_glob_match(sb->ch, strlen(sb->ch), ch, n, 0)
                        : (strlen(sb->ch) != n || memcmp(sb->ch, ch, n) != 0))
            continue;
        reply *r = &h->out[sb->sess];
        reply_push(r, sb->pattern ? 4 : 3);
        reply_bulk_cstr(r, sb->pattern ? "pmessage" : "message");
        if (sb->pattern) reply_bulk_cstr(r, sb->ch);
        reply_bulk(r, ch, n);
        reply_bulk(r, msg, mlen);
        got++;
    }
    return got;
}

static size_t fake_channels(void *arg, const char *pat, size_t plen, cmd_arg **out) {
    cmd_harness *h = of(arg);
    *out = xmalloc(H_SUBS_MAX * sizeof **out);
    size_t n = 0;
    for (int i = 0; i < h->nsubs; i++) {
        const char *ch = h->subs[i].ch;
        if (h->subs[i].pattern || (pat && !util_glob_match(pat, plen, ch, strlen(ch), 0)))
            continue;
        int dup = 0;
        for (size_t j = 0; j < n; j++) dup |= !strcmp((*out)[j].p, ch);
        if (!dup) (*out)[n++] = (cmd_arg){xstrndup(ch, strlen(ch)), strlen(ch)};
    }
    return n;
}

static long long fake_numsub(void *arg, const char *ch, size_t n) {
    cmd_harness *h = of(arg);
    long long got = 0;
    for (int i = 0; i < h->nsubs; i++)
        got += !h->subs[i].pattern && strlen(h->subs[i].ch) == n &&
               memcmp(h->subs[i].ch, ch, n) == 0;
    return got;
}

static long long fake_numpat(void *arg) {
    cmd_harness *h = of(arg);
    long long got = 0;
    for (int i = 0; i < h->nsubs; i++) got += h->subs[i].pattern;
    return got;
}

static const cmd_host fake_host = {
    .client_list = fake_client_list,
    .reset_stats = fake_reset_stats,
    .config_rewrite = fake_config_rewrite,
    .client_kill = fake_client_kill,
    .client_setname = fake_client_setname,
    .client_count = fake_client_count,
    .info = fake_info,
    .config_get_at = fake_config_get_at,
    .config_set = fake_config_set,
    .check_password = fake_check_password,
    .auth_required = fake_auth_required,
    .used_memory = fake_used_memory,
    .save = fake_save,
    .bgsave = fake_bgsave,
    .bgrewriteaof = fake_bgrewriteaof,
    .lastsave = fake_lastsave,
    .shutdown = fake_shutdown,
    .block_on_keys = fake_block,
    .signal_key = fake_signal_key,
    .unblock_key = fake_unblock_key,
    .subscribe = fake_subscribe,
    .unsubscribe = fake_unsubscribe,
    .subscriptions_of = fake_subscriptions_of,
    .publish = fake_publish,
    .pubsub_channels = fake_channels,
    .pubsub_numsub = fake_numsub,
    .pubsub_numpat = fake_numpat,
};

/* ---- the harness ---- */

cmd_harness *h_new(void) {
    cmd_harness *h = calloc(1, sizeof *h);
    if (!h) abort();
    cmd_table_init();
    config_defaults(&h->cfg);
    char err[128];
    config_set(&h->cfg, "save", "", 1, err, sizeof err);
    h->ks = ks_create(12345);
    types_register(h->ks);
    h->env = (cmd_env){
        .propagate = h_propagate,
        .propagate_arg = h,
        .propagate_end = h_propagate_end,
        .ks = h->ks,
        .disk = &h->disk,
        .cfg = &h->cfg,
        .host = &fake_host,
        .host_arg = h,
    };
    for (int i = 0; i < H_SESSIONS; i++) {
        h->sess[i] = (session){.id = (uint64_t)i + 1, .proto = 2, .authenticated = 1};
        h->sess[i].last_cmd = "NULL";
        reply_init(&h->out[i]);
    }
    return h;
}

void h_free(cmd_harness *h) {
    for (int i = 0; i < H_SESSIONS; i++) {
        reply_free(&h->out[i]);
        free(h->sess[i].name);
        evict_pool_free(h->sess[i].evict_pool);
    }
    for (int i = 0; i < h->nsubs; i++) free(h->subs[i].ch);
    ks_destroy(h->ks);
    config_free(&h->cfg);
    free(h->last);
    free(h->log);
    free(h);
}

/* Everything queued in r, drained into h->last. */
static const char *drain(cmd_harness *h, reply *r) {
    free(h->last);
    h->last = NULL;
    h->last_len = 0;
    struct iovec iov[16];
    int n;
    while ((n = reply_iov(r, iov, 16)) > 0) {
        size_t got = 0;
        for (int i = 0; i < n; i++) {
            h->last = realloc(h->last, h->last_len + iov[i].iov_len + 1);
            if (!h->last) abort();
            memcpy(h->last + h->last_len, iov[i].iov_base, iov[i].iov_len);
            h->last_len += iov[i].iov_len;
            got += iov[i].iov_len;
        }
        reply_consume(r, got);
    }
    if (!h->last) h->last = xstrndup("", 0);
    h->last[h->last_len] = 0;
    return h->last;
}

/* cmd_execute step by step, so the log hooks know the running command. */
const char *h_runv(cmd_harness *h, int argc, const cmd_arg *argv) {
    cmd_ctx c = {
        .env = &h->env,
        .sess = &h->sess[h->cur],
        .out = &h->out[h->cur],
        .stats = &h->stats,
        .argc = argc,
        .argv = argv,
        .now_ms = h->now_ms ? h->now_ms : clock_wall_ms(),
    };
    cmd_verdict v;
    cmd_resolve(&c, &v);
    if (cmd_admit(&c, &v) == CMD_OK) {
        h->running = &v;
        h->running_ctx = &c;
        cmd_run(&c, &v);
        h->running = NULL;
        h->running_ctx = NULL;
    } else {
        cmd_refuse(&c, &v);
    }
    cmd_verdict_free(&v);
    return drain(h, &h->out[h->cur]);
}

const char *h_run(cmd_harness *h, const char *arg0, ...) {
    cmd_arg argv[H_ARGS_MAX];
    int argc = 0;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a && argc < H_ARGS_MAX; a = va_arg(ap, const char *))
        argv[argc++] = (cmd_arg){a, strlen(a)};
    va_end(ap);
    return h_runv(h, argc, argv);
}

void h_use(cmd_harness *h, int i) { h->cur = i; }

const char *h_take(cmd_harness *h, int i) { return drain(h, &h->out[i]); }

void h_password(cmd_harness *h, const char *pass) {
    char err[128];
    config_set(&h->cfg, "requirepass", pass ? pass : "", 1, err, sizeof err);
}

void h_log_clear(cmd_harness *h) {
    h->log_len = 0;
    h->records = h->entries_closed = 0;
    if (h->log) h->log[0] = 0;
}

int h_logged(const cmd_harness *h, const char *record) {
    size_t n = strlen(record);
    for (const char *p = h->log; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == n && memcmp(p, record, n) == 0) return 1;
        p = nl ? nl + 1 : p + len;
    }
    return 0;
}

/* The bytes with CR, LF and non-printables escaped, for messages. */
static void print_escaped(const char *s) {
    for (; *s; s++) {
        if (*s == '\r') fputs("\\r", stderr);
        else if (*s == '\n') fputs("\\n", stderr);
        else if ((unsigned char)*s < 32 || (unsigned char)*s > 126)
            fprintf(stderr, "\\x%02x", (unsigned char)*s);
        else fputc(*s, stderr);
    }
}

int h_reply_equals(const char *got, const char *want, const char *file, int line) {
    if (!strcmp(got, want)) return 1;
    fprintf(stderr, "  %s:%d: reply\n    got:  ", file, line);
    print_escaped(got);
    fputs("\n    want: ", stderr);
    print_escaped(want);
    fputc('\n', stderr);
    return 0;
}
