/* server.c - connection and server commands: PING ECHO QUIT HELLO SELECT
 * AUTH CLIENT INFO CONFIG TIME, and the PIER.* connection commands.
 * (COMMAND is command_info.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"
#include "../lib/util.h"
#include "command.h"

#define SERVER_NAME "pier"
#define COMPAT_VERSION "7.0.15"

#define ERR_BAD_CLIENT_NAME \
    "ERR Client names cannot contain spaces, newlines or special characters."

static int valid_client_name(const cmd_arg *a) {
    for (size_t i = 0; i < a->n; i++)
        if (a->p[i] < '!' || a->p[i] > '~') return 0;
    return 1;
}

/* --- connection --- */

/* PIER.CONSISTENCY [STRONG|WEAK]: the connection's default for data
 * commands in cluster mode (docs/CONSISTENCY.md). Accepted without effect
 * on a single node, so one client runs against both. */
static void consistency_cmd(cmd_ctx *c) {
    if (c->argc == 1) {
        reply_bulk_cstr(c->out, c->sess->consistency ? "weak" : "strong");
    } else if (c->argc == 2 && arg_is(c, 1, "STRONG")) {
        c->sess->consistency = 0;
        reply_ok(c->out);
    } else if (c->argc == 2 && arg_is(c, 1, "WEAK")) {
        c->sess->consistency = 1;
        reply_ok(c->out);
    } else {
        reply_error(c->out, ERR_SYNTAX);
    }
}

/* PIER.EXEC / PIER.RECORD / PIER.SYNC: a cluster node takes them before
 * the dispatcher (server/cluster_client.c); a single node has no log. */
static void direct_curp_cmd(cmd_ctx *c) {
    reply_error(c->out, "ERR this node is not in cluster mode");
}

static void ping_cmd(cmd_ctx *c) {
    if (c->argc > 2) {
        reply_arity_error(c);
        return;
    }
    if (c->sess->subscriptions > 0 && c->sess->proto == 2) {
        /* RESP2 subscriber: a push-shaped pong, not confusable with a
         * message. */
        reply_array(c->out, 2);
        reply_bulk_cstr(c->out, "pong");
        if (c->argc == 2) reply_bulk(c->out, c->argv[1].p, c->argv[1].n);
        else reply_bulk(c->out, "", 0);
        return;
    }
    if (c->argc == 2) reply_bulk(c->out, c->argv[1].p, c->argv[1].n);
    else reply_status(c->out, "PONG");
}

static void echo_cmd(cmd_ctx *c) { reply_bulk(c->out, c->argv[1].p, c->argv[1].n); }

static void quit_cmd(cmd_ctx *c) {
    reply_ok(c->out);
    c->sess->flags |= SESS_CLOSE_AFTER_REPLY;
}

static void select_cmd(cmd_ctx *c) {
    long long db;
    if (!util_parse_ll(c->argv[1].p, c->argv[1].n, &db)) {
        reply_error(c->out, ERR_NOT_INT);
        return;
    }
    if (db != 0) {
        reply_error(c->out, "ERR DB index is out of range");
        return;
    }
    reply_ok(c->out);
}

/* At most one log line per period from one call site, on any thread;
 * returns 1 when this one may be written, with *skipped set to the lines
 * dropped since the last one. (A local stand-in: src/lib/log.c may grow a
 * shared rate limiter.) */
typedef struct log_limit {
    _Atomic int64_t last_ms;
    _Atomic unsigned skipped;
} log_limit;

static int log_limit_pass(log_limit *l, int64_t period_ms, unsigned *skipped) {
    int64_t now = clock_mono_ms(), last = atomic_load(&l->last_ms);
    if ((last && now - last < period_ms) ||
        !atomic_compare_exchange_strong(&l->last_ms, &last, now)) {
        atomic_fetch_add(&l->skipped, 1);
        return 0;
    }
    *skipped = atomic_exchange(&l->skipped, 0);
    return 1;
}

/* "POST" and "Host:" are the first lines of an HTTP request: a web page
 * made a browser talk to this port (cross-protocol scripting), and
 * whatever follows must not run. As Redis: no reply, the connection is
 * dropped at once (replies still queued are not sent), a warning at most
 * once a minute. */
static void xproto_cmd(cmd_ctx *c) {
    static log_limit limit;
    unsigned skipped;
    if (log_limit_pass(&limit, 60000, &skipped))
        log_warn("Possible SECURITY ATTACK detected. It looks like somebody is sending POST or "
                 "Host: commands to pier. This is likely due to an attacker attempting to use "
                 "Cross Protocol Scripting to compromise your pier instance. Connection aborted. "
                 "(client %s; %u more since the last warning)",
                 c->sess->addr ? c->sess->addr : "?", skipped);
    reply_reset(c->out);
    c->sess->flags |= SESS_CLOSE_NOW;
}

/* AUTH [username] password. Without requirepass the default user has no
 * password: "AUTH default <anything>" succeeds, as in Redis 7. */
static int try_auth(cmd_ctx *c, const cmd_arg *user, const cmd_arg *pass) {
    const cmd_host *h = c->env->host;
    if (user && !util_eq_ci(user->p, user->n, "default")) return 0;
    if (!h->auth_required(c->env->host_arg)) return user != NULL;
    return h->check_password(c->env->host_arg, pass->p, pass->n);
}

/* A wrong password (AUTH, HELLO AUTH): WRONGPASS, and at the
 * CMD_AUTH_FAILURES_MAX-th on this connection the connection is closed
 * after the reply, so pipelined guesses cost a connection each ten, and
 * the peer is logged (one line per 10 s at most). */
static void auth_failed(cmd_ctx *c) {
    reply_error(c->out, "WRONGPASS invalid username-password pair or user is disabled.");
    if (++c->sess->auth_failures < CMD_AUTH_FAILURES_MAX) return;
    c->sess->flags |= SESS_CLOSE_AFTER_REPLY;
    static log_limit limit;
    unsigned skipped;
    if (log_limit_pass(&limit, 10000, &skipped))
        log_warn("closing client id=%llu addr=%s after %d failed AUTH attempts "
                 "(%u more such clients since the last line)",
                 (unsigned long long)c->sess->id, c->sess->addr ? c->sess->addr : "?",
                 c->sess->auth_failures, skipped);
}

static void auth_cmd(cmd_ctx *c) {
    if (c->argc > 3) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    const cmd_arg *user = c->argc == 3 ? &c->argv[1] : NULL;
    const cmd_arg *pass = &c->argv[c->argc - 1];
    if (!user && !c->env->host->auth_required(c->env->host_arg)) {
        reply_error(c->out, "ERR AUTH <password> called without any password configured for "
                            "the default user. Are you sure your configuration is correct?");
        return;
    }
    if (!try_auth(c, user, pass)) {
        auth_failed(c);
        return;
    }
    c->sess->authenticated = 1;
    reply_ok(c->out);
}

static void hello_reply(cmd_ctx *c) {
    reply_map(c->out, 7);
    reply_bulk_cstr(c->out, "server");
    reply_bulk_cstr(c->out, SERVER_NAME);
    reply_bulk_cstr(c->out, "version");
    reply_bulk_cstr(c->out, COMPAT_VERSION);
    reply_bulk_cstr(c->out, "proto");
    reply_int(c->out, c->sess->proto);
    reply_bulk_cstr(c->out, "id");
    reply_int(c->out, (long long)c->sess->id);
    reply_bulk_cstr(c->out, "mode");
    reply_bulk_cstr(c->out, "standalone");
    reply_bulk_cstr(c->out, "role");
    reply_bulk_cstr(c->out, "master");
    reply_bulk_cstr(c->out, "modules");
    reply_array(c->out, 0);
}

/* HELLO [protover [AUTH username password] [SETNAME clientname]] */
static void hello_cmd(cmd_ctx *c) {
    long long ver = c->sess->proto;
    if (c->argc >= 2) {
        if (!util_parse_ll(c->argv[1].p, c->argv[1].n, &ver)) {
            reply_error(c->out, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver < 2 || ver > 3) {
            reply_error(c->out, "NOPROTO unsupported protocol version");
            return;
        }
    }
    const cmd_arg *user = NULL, *pass = NULL, *name = NULL;
    for (int i = 2; i < c->argc; i++) {
        int more = c->argc - i - 1;
        if (arg_is(c, i, "AUTH") && more >= 2) {
            user = &c->argv[i + 1];
            pass = &c->argv[i + 2];
            i += 2;
        } else if (arg_is(c, i, "SETNAME") && more >= 1) {
            name = &c->argv[++i];
        } else {
            reply_errorf(c->out, "ERR Syntax error in HELLO option '%.*s'", (int)c->argv[i].n,
                         c->argv[i].p);
            return;
        }
    }
    if (name && !valid_client_name(name)) {
        reply_error(c->out, ERR_BAD_CLIENT_NAME);
        return;
    }
    if (user && !try_auth(c, user, pass)) {
        auth_failed(c);
        return;
    }
    if (user) c->sess->authenticated = 1;
    /* Redis 7.0 checks the flag alone here (unlike the dispatcher): a
     * connection made under a password that was later cleared still needs
     * HELLO AUTH. */
    if (!c->sess->authenticated) {
        reply_error(c->out, "NOAUTH HELLO must be called with the client already "
                            "authenticated, otherwise the HELLO AUTH <user> <pass> "
                            "option can be used to authenticate the client and select the "
                            "RESP protocol version at the same time");
        return;
    }
    if (name) c->env->host->client_setname(c->env->host_arg, c->sess, name->p, name->n);
    c->sess->proto = (int)ver;
    c->out->proto = (int)ver;
    hello_reply(c);
}

/* --- CLIENT --- */

static int valid_client_type(const cmd_arg *v) {
    static const char *types[] = {"normal", "master", "replica", "slave", "pubsub"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (util_eq_ci(v->p, v->n, types[i])) return 1;
    return 0;
}


static void client_setname(cmd_ctx *c) {
    if (!valid_client_name(&c->argv[2])) {
        reply_error(c->out, ERR_BAD_CLIENT_NAME);
        return;
    }
    c->env->host->client_setname(c->env->host_arg, c->sess, c->argv[2].p, c->argv[2].n);
    reply_ok(c->out);
}

static void client_list_reply(cmd_ctx *c, uint64_t only_id) {
    size_t len;
    char *txt = c->env->host->client_list(c->env->host_arg, only_id, c, &len);
    reply_verbatim(c->out, txt, len, "txt");
    free(txt);
}

/* CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]] */
static void client_list(cmd_ctx *c) {
    if (c->argc == 2) {
        client_list_reply(c, 0);
        return;
    }
    if (c->argc == 4 && arg_is(c, 2, "TYPE")) {
        if (arg_is(c, 3, "NORMAL")) client_list_reply(c, 0);
        else if (valid_client_type(&c->argv[3])) reply_verbatim(c->out, "", 0, "txt");
        else reply_errorf(c->out, "ERR Unknown client type '%.*s'", (int)c->argv[3].n, c->argv[3].p);
        return;
    }
    if (c->argc >= 4 && arg_is(c, 2, "ID")) {
        char *all = NULL;
        size_t total = 0;
        for (int i = 3; i < c->argc; i++) {
            long long id;
            if (!util_parse_ll(c->argv[i].p, c->argv[i].n, &id)) {
                free(all);
                reply_error(c->out, "ERR Invalid client ID");
                return;
            }
            if (id <= 0) continue; /* no such client, as in Redis */
            size_t len;
            char *one = c->env->host->client_list(c->env->host_arg, (uint64_t)id, c, &len);
            all = xrealloc(all, total + len + 1);
            memcpy(all + total, one, len);
            total += len;
            free(one);
        }
        reply_verbatim(c->out, all ? all : "", total, "txt");
        free(all);
        return;
    }
    reply_error(c->out, ERR_SYNTAX);
}

/* Parse CLIENT KILL filters (new form). Returns 1, or 0 after replying. */
static int parse_kill_filters(cmd_ctx *c, cmd_kill_filter *f, char *addr, char *laddr,
                              size_t cap) {
    f->skipme = 1;
    for (int i = 2; i < c->argc; i += 2) {
        if (i + 1 >= c->argc) {
            reply_error(c->out, ERR_SYNTAX);
            return 0;
        }
        const cmd_arg *v = &c->argv[i + 1];
        if (arg_is(c, i, "ID")) {
            long long id;
            if (!util_parse_ll(v->p, v->n, &id) || id <= 0) {
                reply_error(c->out, "ERR client-id should be greater than 0");
                return 0;
            }
            f->id = (uint64_t)id;
        } else if (arg_is(c, i, "ADDR") || arg_is(c, i, "LADDR")) {
            char *dst = arg_is(c, i, "ADDR") ? addr : laddr;
            snprintf(dst, cap, "%.*s", (int)v->n, v->p);
            if (dst == addr) f->addr = addr;
            else f->laddr = laddr;
        } else if (arg_is(c, i, "SKIPME")) {
            if (util_eq_ci(v->p, v->n, "yes")) f->skipme = 1;
            else if (util_eq_ci(v->p, v->n, "no")) f->skipme = 0;
            else {
                reply_error(c->out, ERR_SYNTAX);
                return 0;
            }
        } else if (arg_is(c, i, "TYPE")) {
            /* Every pier client is of type normal: the others match none. */
            if (!valid_client_type(v)) {
                reply_errorf(c->out, "ERR Unknown client type '%.*s'", (int)v->n, v->p);
                return 0;
            }
            if (!util_eq_ci(v->p, v->n, "normal")) f->id = UINT64_MAX;
        } else if (arg_is(c, i, "USER")) {
            if (!util_eq_ci(v->p, v->n, "default")) {
                reply_errorf(c->out, "ERR No such user '%.*s'", (int)v->n, v->p);
                return 0;
            }
        } else {
            reply_error(c->out, ERR_SYNTAX);
            return 0;
        }
    }
    return 1;
}

/* CLIENT KILL ip:port | CLIENT KILL <filter> <value> ... */
static void client_kill(cmd_ctx *c) {
    char addr[128], laddr[128];
    cmd_kill_filter f = {0};
    if (c->argc == 3) { /* old form: CLIENT KILL ip:port */
        snprintf(addr, sizeof addr, "%.*s", (int)c->argv[2].n, c->argv[2].p);
        f.addr = addr;
        size_t n = c->env->host->client_kill(c->env->host_arg, &f, c->sess->id);
        if (n) reply_ok(c->out);
        else reply_error(c->out, "ERR No such client");
        return;
    }
    if (!parse_kill_filters(c, &f, addr, laddr, sizeof addr)) return;
    reply_int(c->out, (long long)c->env->host->client_kill(c->env->host_arg, &f, c->sess->id));
}

static void client_help(cmd_ctx *c) {
    static const char *const lines[] = {
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME", "    Return the name of the current connection.",
        "ID", "    Return the ID of the current connection.",
        "INFO", "    Return information about the current client connection.",
        "KILL <ip:port>", "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are: ID <id>, ADDR <ip:port>, LADDR <ip:port>,",
        "    TYPE normal, USER default, SKIPME (YES|NO).",
        "LIST [options ...]", "    Return information about client connections.",
        "SETNAME <name>", "    Assign the name <name> to the current connection.",
        "HELP", "    Print this help.",
    };
    reply_help_lines(c, lines, sizeof lines / sizeof lines[0]);
}

static void client_id(cmd_ctx *c) { reply_int(c->out, (long long)c->sess->id); }

static void client_getname(cmd_ctx *c) {
    if (c->sess->name) reply_bulk_cstr(c->out, c->sess->name);
    else reply_null(c->out);
}

static void client_info(cmd_ctx *c) { client_list_reply(c, c->sess->id); }

/* --- INFO, CONFIG, TIME --- */

/* INFO [section ...]: sections joined by a blank line, ending with CRLF. */
static void info_cmd(cmd_ctx *c) {
    char section[64] = "";
    size_t total = 0;
    char *all = NULL;
    int nsec = c->argc > 1 ? c->argc - 1 : 1;
    for (int i = 0; i < nsec; i++) {
        if (c->argc > 1)
            snprintf(section, sizeof section, "%.*s", (int)c->argv[i + 1].n, c->argv[i + 1].p);
        size_t len;
        char *txt = c->env->host->info(c->env->host_arg, section, &len);
        /* room for a separator before this section and the final CRLF */
        all = xrealloc(all, total + 2 + len + 2);
        if (total && len) {
            memcpy(all + total, "\r\n", 2);
            total += 2;
        }
        memcpy(all + total, txt, len);
        total += len;
        free(txt);
    }
    if (total) {
        memcpy(all + total, "\r\n", 2);
        total += 2;
    }
    reply_verbatim(c->out, all ? all : "", total, "txt");
    free(all);
}

static int is_glob(const cmd_arg *a) {
    for (size_t i = 0; i < a->n; i++)
        if (a->p[i] == '*' || a->p[i] == '?' || a->p[i] == '[') return 1;
    return 0;
}

/* CONFIG GET pattern [pattern ...]: an exact name is echoed as given (as
 * Redis does), a glob lists every matching option once. */
static void config_get(cmd_ctx *c) {
    const cmd_host *h = c->env->host;
    reply_deferred d = reply_defer(c->out);
    size_t pairs = 0;
    const char *name;
    char val[1024];
    int rc;
    for (size_t i = 0; (rc = h->config_get_at(c->env->host_arg, i, &name, val, sizeof val)) >= 0;
         i++) {
        for (int a = 2; a < c->argc; a++) {
            const cmd_arg *pat = &c->argv[a];
            int glob = is_glob(pat);
            if (glob ? !util_glob_match(pat->p, pat->n, name, strlen(name), 1)
                     : !util_eq_ci(pat->p, pat->n, name))
                continue;
            if (glob) reply_bulk_cstr(c->out, name);
            else reply_bulk(c->out, pat->p, pat->n);
            /* pier never shows requirepass (Redis does): a fixed marker
             * says whether one is set without giving anything away. */
            reply_bulk_cstr(c->out, rc == 1 ? (val[0] ? "<redacted>" : "") : val);
            pairs++;
            break;
        }
    }
    reply_defer_set(c->out, d, REPLY_AGG_MAP, pairs);
}

/* Current value of the option called name (any case) into val; its
 * canonical name, or NULL when unknown. */
static const char *config_current(cmd_ctx *c, const char *name, char *val, size_t vlen) {
    const char *opt;
    for (size_t i = 0; c->env->host->config_get_at(c->env->host_arg, i, &opt, val, vlen) >= 0; i++)
        if (!strcasecmp(opt, name)) return opt;
    return NULL;
}

#define CONFIG_SET_MAX 64

/* CONFIG SET name value [name value ...]: all or nothing, as in Redis 7.
 * Names are checked first (unknown, duplicate); values are then applied in
 * order, and a failure restores the ones already applied. */
static void config_set_cmd(cmd_ctx *c) {
    if ((c->argc - 2) % 2) {
        reply_error(c->out, ERR_SYNTAX); /* Redis 7.0: an option without a value */
        return;
    }
    int n = (c->argc - 2) / 2;
    if (n > CONFIG_SET_MAX) {
        reply_error(c->out, "ERR too many parameters for CONFIG SET");
        return;
    }
    static _Thread_local char names[CONFIG_SET_MAX][128], old[CONFIG_SET_MAX][1024];
    for (int i = 0; i < n; i++) {
        const cmd_arg *a = &c->argv[2 + 2 * i];
        snprintf(names[i], sizeof names[i], "%.*s", (int)a->n, a->p);
        if (!config_current(c, names[i], old[i], sizeof old[i]) || a->n >= sizeof names[i]) {
            reply_errorf(c->out, "ERR Unknown option or number of arguments for CONFIG SET - '%s'",
                         names[i]);
            return;
        }
        for (int j = 0; j < i; j++) {
            if (strcasecmp(names[j], names[i])) continue;
            reply_errorf(c->out, "ERR CONFIG SET failed (possibly related to argument '%s') - "
                                 "duplicate parameter", names[i]);
            return;
        }
    }
    for (int i = 0; i < n; i++) {
        char value[1024], err[256] = "";
        const cmd_arg *v = &c->argv[3 + 2 * i];
        snprintf(value, sizeof value, "%.*s", (int)v->n, v->p);
        if (c->env->host->config_set(c->env->host_arg, names[i], value, err, sizeof err) == 0)
            continue;
        for (int j = 0; j < i; j++) {
            char ignored[256];
            c->env->host->config_set(c->env->host_arg, names[j], old[j], ignored, sizeof ignored);
        }
        reply_errorf(c->out, "ERR CONFIG SET failed (possibly related to argument '%s') - %s",
                     names[i], err);
        return;
    }
    reply_ok(c->out);
}

static void config_help(cmd_ctx *c) {
    static const char *const lines[] = {
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>", "    Set the configuration <directive> to <value>.",
        "RESETSTAT", "    Reset statistics reported by the INFO command.",
        "REWRITE", "    Rewrite the configuration file.",
        "HELP", "    Prints this help.",
    };
    reply_help_lines(c, lines, sizeof lines / sizeof lines[0]);
}

/* CONFIG REWRITE: the file the server was started with (config.c). */
static void config_rewrite_cmd(cmd_ctx *c) {
    char err[512];
    if (c->env->host->config_rewrite(c->env->host_arg, err, sizeof err) < 0)
        reply_errorf(c->out, "ERR %s", err);
    else
        reply_ok(c->out);
}

static void config_resetstat_cmd(cmd_ctx *c) {
    c->env->host->reset_stats(c->env->host_arg);
    reply_ok(c->out);
}

static void time_cmd(cmd_ctx *c) {
    int64_t us = clock_wall_us();
    reply_array(c->out, 2);
    reply_bulk_ll(c->out, us / 1000000);
    reply_bulk_ll(c->out, us % 1000000);
}

#define NOKEYS 0, 0, 0
/* COMMAND INFO shows these for every connection and server command. */
#define LS (CMD_DOC_LOADING | CMD_DOC_STALE)
#define CONN (CMD_NODATA | LS)

static const command client_subs[] = {
    {"client|id", client_id, 2, CONN, NOKEYS, "connection",
     "Returns the client ID for the current connection", "5.0.0"},
    {"client|setname", client_setname, 3, CONN, NOKEYS, "connection",
     "Set the current connection name", "2.6.9"},
    {"client|getname", client_getname, 2, CONN, NOKEYS, "connection",
     "Get the current connection name", "2.6.9"},
    {"client|list", client_list, -2, CONN | CMD_DOC_ADMIN, NOKEYS, "connection",
     "Get the list of client connections", "2.4.0"},
    {"client|info", client_info, 2, CONN, NOKEYS, "connection",
     "Returns information about the current client connection.", "6.2.0"},
    {"client|kill", client_kill, -3, CONN | CMD_DOC_ADMIN, NOKEYS, "connection",
     "Kill the connection of a client", "2.4.0"},
    {"client|help", client_help, 2, CONN, NOKEYS, "connection",
     "Show helpful text about the different subcommands", "5.0.0"},
};

static const command config_subs[] = {
    {"config|get", config_get, -3, CONN | CMD_DOC_ADMIN, NOKEYS, "server",
     "Get the values of configuration parameters", "2.0.0"},
    {"config|set", config_set_cmd, -4, CONN | CMD_DOC_ADMIN, NOKEYS, "server",
     "Set configuration parameters to the given values", "2.0.0"},
    {"config|resetstat", config_resetstat_cmd, 2, CONN | CMD_DOC_ADMIN, NOKEYS, "server",
     "Reset the stats returned by INFO", "2.0.0"},
    {"config|rewrite", config_rewrite_cmd, 2, CONN | CMD_DOC_ADMIN, NOKEYS, "server",
     "Rewrite the configuration file with the in memory configuration", "2.8.0"},
    {"config|help", config_help, 2, CONN, NOKEYS, "server",
     "Show helpful text about the different subcommands", "5.0.0"},
};

const command server_commands[] = {
    /* Not commands: HTTP lines (CMD_XPROTO), answered by hanging up. */
    {"post", xproto_cmd, -1, CMD_XPROTO | CONN | CMD_NOAUTH, NOKEYS, "connection",
     "Not a command: an HTTP request line; closes the connection", "2.8.22"},
    {"host:", xproto_cmd, -1, CMD_XPROTO | CONN | CMD_NOAUTH, NOKEYS, "connection",
     "Not a command: an HTTP header; closes the connection", "2.8.22"},
    {"pier.consistency", consistency_cmd, -1, CMD_NODATA | CMD_DOC_FAST, NOKEYS, "connection",
     "Set the connection's consistency in cluster mode: STRONG (default) or WEAK", "pier"},
    /* A cluster node routes these itself (cluster routing, .direct). */
    {"pier.exec", direct_curp_cmd, -4, CMD_NODATA, NOKEYS, "cluster",
     "CURP client: execute cid seq command... on the leader", "pier",
     .direct = CMD_DIRECT_EXEC},
    {"pier.record", direct_curp_cmd, -5, CMD_NODATA, NOKEYS, "cluster",
     "CURP client: record term cid seq command... at this node's witness", "pier",
     .direct = CMD_DIRECT_RECORD},
    {"pier.sync", direct_curp_cmd, 4, CMD_NODATA, NOKEYS, "cluster",
     "CURP client: wait until the entry cid seq at index is committed", "pier",
     .direct = CMD_DIRECT_SYNC},
    {"ping", ping_cmd, -1, CMD_NODATA | CMD_DOC_FAST | CMD_SUBSCRIBED | CMD_DENY_DISKERR, NOKEYS,
     "connection", "Ping the server", "1.0.0"},
    {"echo", echo_cmd, 2, CMD_NODATA | CMD_DOC_FAST, NOKEYS, "connection",
     "Echo the given string", "1.0.0"},
    {"quit", quit_cmd, -1, CONN | CMD_DOC_FAST | CMD_NOAUTH | CMD_SUBSCRIBED, NOKEYS,
     "connection", "Close the connection", "1.0.0"},
    {"select", select_cmd, 2, CONN | CMD_DOC_FAST, NOKEYS, "connection",
     "Change the selected database for the current connection", "1.0.0"},
    {"auth", auth_cmd, -2, CONN | CMD_DOC_FAST | CMD_NOAUTH, NOKEYS, "connection",
     "Authenticate to the server", "1.0.0"},
    {"hello", hello_cmd, -1, CONN | CMD_DOC_FAST | CMD_NOAUTH, NOKEYS, "connection",
     "Handshake with Redis", "6.0.0"},
    {"client", NULL, -2, 0, NOKEYS, "connection", "A container for client connection commands",
     "2.4.0", CMD_SUBS(client_subs)},
    {"info", info_cmd, -1, CONN, NOKEYS, "server",
     "Get information and statistics about the server", "1.0.0"},
    {"config", NULL, -2, 0, NOKEYS, "server", "A container for server configuration commands",
     "2.0.0", CMD_SUBS(config_subs)},
    {"time", time_cmd, 1, CONN | CMD_DOC_FAST, NOKEYS, "server",
     "Return the current server time", "2.6.0"},
};
const size_t server_commands_count = sizeof server_commands / sizeof server_commands[0];
