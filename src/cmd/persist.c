/* persist.c - the persistence commands: SAVE, BGSAVE, BGREWRITEAOF,
 * LASTSAVE, SHUTDOWN. The work is done by the server's persistence layer, reached
 * through cmd_host (commands never call upward directly). */
#include "cmd/command.h"

static void reply_host_result(cmd_ctx *c, int rc, const char *msg) {
    if (rc < 0)
        reply_error(c->out, msg);
    else
        reply_status(c->out, msg);
}

static void save_cmd(cmd_ctx *c) {
    char msg[256];
    int rc = c->env->host->save(c->env->host_arg, msg, sizeof msg);
    reply_host_result(c, rc, msg);
}

/* BGSAVE [SCHEDULE] */
static void bgsave_cmd(cmd_ctx *c) {
    int schedule = 0;
    if (c->argc == 2 && arg_is(c, 1, "SCHEDULE")) {
        schedule = 1;
    } else if (c->argc > 1) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    char msg[256];
    int rc = c->env->host->bgsave(c->env->host_arg, schedule, msg, sizeof msg);
    reply_host_result(c, rc, msg);
}

static void bgrewriteaof_cmd(cmd_ctx *c) {
    char msg[256];
    int rc = c->env->host->bgrewriteaof(c->env->host_arg, msg, sizeof msg);
    reply_host_result(c, rc, msg);
}

static void lastsave_cmd(cmd_ctx *c) { reply_int(c->out, c->env->host->lastsave(c->env->host_arg)); }

/* SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT], as Redis 7.0: the final
 * AOF flush and snapshot run before the server stops; when one fails the
 * command answers an error and nothing stops, unless FORCE. NOW only
 * skips waiting for lagging replicas in Redis: accepted, nothing to wait
 * for. ABORT cancels a shutdown that waits for replicas: never the case. */
static void shutdown_cmd(cmd_ctx *c) {
    int flags = 0, now = 0, abort_ = 0;
    for (int i = 1; i < c->argc; i++) {
        if (arg_is(c, i, "NOSAVE")) flags |= CMD_SHUTDOWN_NOSAVE;
        else if (arg_is(c, i, "SAVE")) flags |= CMD_SHUTDOWN_SAVE;
        else if (arg_is(c, i, "NOW")) now = 1;
        else if (arg_is(c, i, "FORCE")) flags |= CMD_SHUTDOWN_FORCE;
        else if (arg_is(c, i, "ABORT")) abort_ = 1;
        else {
            reply_error(c->out, ERR_SYNTAX);
            return;
        }
    }
    if ((abort_ && (flags || now)) ||
        ((flags & CMD_SHUTDOWN_NOSAVE) && (flags & CMD_SHUTDOWN_SAVE))) {
        reply_error(c->out, ERR_SYNTAX);
        return;
    }
    if (abort_) {
        reply_error(c->out, "ERR No shutdown in progress.");
        return;
    }
    char msg[256];
    if (c->env->host->shutdown(c->env->host_arg, flags, msg, sizeof msg) < 0) {
        reply_error(c->out, msg);
        return;
    }
    c->sess->flags |= SESS_CLOSE_AFTER_REPLY; /* no reply: the server is stopping */
}

const command persist_commands[] = {
    {"save", save_cmd, 1, CMD_NODATA | CMD_DOC_ADMIN, 0, 0, 0, "server",
     "Synchronously save the dataset to disk", "1.0.0"},
    {"bgsave", bgsave_cmd, -1, CMD_NODATA | CMD_DOC_ADMIN, 0, 0, 0, "server",
     "Asynchronously save the dataset to disk", "1.0.0"},
    {"bgrewriteaof", bgrewriteaof_cmd, 1, CMD_NODATA | CMD_DOC_ADMIN, 0, 0, 0, "server",
     "Asynchronously rewrite the append-only file", "1.0.0"},
    {"lastsave", lastsave_cmd, 1, CMD_NODATA | CMD_DOC_FAST | CMD_DOC_LOADING | CMD_DOC_STALE,
     0, 0, 0, "server", "Get the UNIX time stamp of the last successful save to disk", "1.0.0"},
    {"shutdown", shutdown_cmd, -1,
     CMD_NODATA | CMD_DOC_ADMIN | CMD_DOC_LOADING | CMD_DOC_STALE, 0, 0, 0, "server",
     "Synchronously save the dataset to disk and then shut down the server", "1.0.0"},
};

const size_t persist_commands_count = sizeof persist_commands / sizeof persist_commands[0];
