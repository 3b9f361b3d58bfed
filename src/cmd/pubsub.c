/* pubsub.c - SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH,
 * PUBSUB. The registry of subscribers and the cross-thread delivery live
 * in the server layer (server/pubsub.c), reached through cmd_host; these
 * handlers only parse and reply. Confirmations are push replies (RESP3
 * '>', RESP2 '*'), one per channel, as Redis sends them. */
#include <stdlib.h>
#include <string.h>

#include "cmd/command.h"

#define ERR_NO_PUBSUB "ERR pub/sub is not available with --io thread"

static void reply_confirm(cmd_ctx *c, const char *kind, const char *ch, size_t n, int count) {
    reply_push(c->out, 3);
    reply_bulk_cstr(c->out, kind);
    if (ch) reply_bulk(c->out, ch, n);
    else reply_null(c->out);
    reply_int(c->out, count);
}

static void subscribe_generic(cmd_ctx *c, int pattern) {
    const cmd_host *h = c->env->host;
    const char *kind = pattern ? "psubscribe" : "subscribe";
    for (int i = 1; i < c->argc; i++) {
        int n = h->subscribe(c->env->host_arg, c->sess, pattern, c->argv[i].p, c->argv[i].n);
        if (n < 0) {
            reply_error(c->out, ERR_NO_PUBSUB);
            return;
        }
        reply_confirm(c, kind, c->argv[i].p, c->argv[i].n, n);
    }
}

static void unsubscribe_generic(cmd_ctx *c, int pattern) {
    const cmd_host *h = c->env->host;
    const char *kind = pattern ? "punsubscribe" : "unsubscribe";
    if (c->argc > 1) {
        for (int i = 1; i < c->argc; i++) {
            int n = h->unsubscribe(c->env->host_arg, c->sess, pattern, c->argv[i].p, c->argv[i].n);
            reply_confirm(c, kind, c->argv[i].p, c->argv[i].n, n < 0 ? 0 : n);
        }
        return;
    }
    cmd_arg *all = NULL;
    size_t count = h->subscriptions_of(c->env->host_arg, c->sess, pattern, &all);
    if (count == 0) reply_confirm(c, kind, NULL, 0, c->sess->subscriptions);
    for (size_t i = 0; i < count; i++) {
        int n = h->unsubscribe(c->env->host_arg, c->sess, pattern, all[i].p, all[i].n);
        reply_confirm(c, kind, all[i].p, all[i].n, n < 0 ? 0 : n);
        free((void *)all[i].p);
    }
    free(all);
}

static void subscribe_cmd(cmd_ctx *c) { subscribe_generic(c, 0); }
static void psubscribe_cmd(cmd_ctx *c) { subscribe_generic(c, 1); }
static void unsubscribe_cmd(cmd_ctx *c) { unsubscribe_generic(c, 0); }
static void punsubscribe_cmd(cmd_ctx *c) { unsubscribe_generic(c, 1); }

static void publish_cmd(cmd_ctx *c) {
    const cmd_host *h = c->env->host;
    reply_int(c->out, h->publish(c->env->host_arg, c->sess, c->argv[1].p, c->argv[1].n,
                                 c->argv[2].p, c->argv[2].n));
}

static const char *const pubsub_help[] = {
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
};

static void reply_sub_error(cmd_ctx *c, int known) {
    const cmd_arg *a = &c->argv[1];
    size_t n = strnlen(a->p, a->n);
    if (!known) {
        reply_errorf(c->out, "ERR unknown subcommand '%.*s'. Try PUBSUB HELP.",
                     (int)(n < 128 ? n : 128), a->p);
        return;
    }
    char lower[64];
    size_t i = 0;
    for (; i < n && i < sizeof lower - 1; i++) lower[i] = (char)(a->p[i] | 0x20);
    lower[i] = 0;
    reply_errorf(c->out, "ERR wrong number of arguments for 'pubsub|%s' command", lower);
}

static void pubsub_channels(cmd_ctx *c) {
    const cmd_host *h = c->env->host;
    cmd_arg *list = NULL;
    const char *pat = c->argc == 3 ? c->argv[2].p : NULL;
    size_t n = h->pubsub_channels(c->env->host_arg, pat, pat ? c->argv[2].n : 0, &list);
    reply_array(c->out, n);
    for (size_t i = 0; i < n; i++) {
        reply_bulk(c->out, list[i].p, list[i].n);
        free((void *)list[i].p);
    }
    free(list);
}

static void pubsub_cmd(cmd_ctx *c) {
    const cmd_host *h = c->env->host;
    int help = arg_is(c, 1, "HELP"), channels = arg_is(c, 1, "CHANNELS");
    int numsub = arg_is(c, 1, "NUMSUB"), numpat = arg_is(c, 1, "NUMPAT");
    int shardch = arg_is(c, 1, "SHARDCHANNELS"), shardnum = arg_is(c, 1, "SHARDNUMSUB");
    if (!help && !channels && !numsub && !numpat && !shardch && !shardnum) {
        reply_sub_error(c, 0);
        return;
    }
    if ((help || numpat) ? c->argc != 2 : ((channels || shardch) && c->argc > 3)) {
        reply_sub_error(c, 1);
        return;
    }
    if (help) {
        reply_array(c->out, sizeof pubsub_help / sizeof pubsub_help[0]);
        for (size_t i = 0; i < sizeof pubsub_help / sizeof pubsub_help[0]; i++)
            reply_status(c->out, pubsub_help[i]);
    } else if (channels) {
        pubsub_channels(c);
    } else if (numpat) {
        reply_int(c->out, h->pubsub_numpat(c->env->host_arg));
    } else if (shardch) {
        reply_array(c->out, 0); /* no sharded pub/sub: nothing is ever subscribed */
    } else {
        reply_array(c->out, (size_t)(c->argc - 2) * 2);
        for (int i = 2; i < c->argc; i++) {
            reply_bulk(c->out, c->argv[i].p, c->argv[i].n);
            reply_int(c->out, shardnum ? 0 : h->pubsub_numsub(c->env->host_arg, c->argv[i].p, c->argv[i].n));
        }
    }
}

#define PS_FLAGS (CMD_PUBSUB | CMD_NOKEYS | CMD_STALE | CMD_LOADING)

const command pubsub_commands[] = {
    {"subscribe", subscribe_cmd, -2, PS_FLAGS, 0, 0, 0, "pubsub",
     "Listen for messages published to the given channels", "2.0.0"},
    {"unsubscribe", unsubscribe_cmd, -1, PS_FLAGS, 0, 0, 0, "pubsub",
     "Stop listening for messages posted to the given channels", "2.0.0"},
    {"psubscribe", psubscribe_cmd, -2, PS_FLAGS, 0, 0, 0, "pubsub",
     "Listen for messages published to channels matching the given patterns", "2.0.0"},
    {"punsubscribe", punsubscribe_cmd, -1, PS_FLAGS, 0, 0, 0, "pubsub",
     "Stop listening for messages posted to channels matching the given patterns", "2.0.0"},
    {"publish", publish_cmd, 3, PS_FLAGS | CMD_FAST, 0, 0, 0, "pubsub",
     "Post a message to a channel", "2.0.0"},
    {"pubsub", pubsub_cmd, -2, CMD_NOKEYS, 0, 0, 0, "pubsub",
     "A container for Pub/Sub commands", "2.8.0"},
};

const size_t pubsub_commands_count = sizeof pubsub_commands / sizeof pubsub_commands[0];
