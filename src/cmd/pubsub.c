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

static void pubsub_help_cmd(cmd_ctx *c) {
    reply_help_lines(c, pubsub_help, sizeof pubsub_help / sizeof pubsub_help[0]);
}

/* PUBSUB CHANNELS [pattern] */
static void pubsub_channels(cmd_ctx *c) {
    if (c->argc > 3) {
        reply_subcommand_syntax_error(c);
        return;
    }
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

static void pubsub_numpat(cmd_ctx *c) {
    reply_int(c->out, c->env->host->pubsub_numpat(c->env->host_arg));
}

/* PUBSUB NUMSUB / SHARDNUMSUB [channel ...]: no sharded pub/sub, so every
 * shard channel has 0 subscribers. */
static void numsub_generic(cmd_ctx *c, int shard) {
    const cmd_host *h = c->env->host;
    reply_array(c->out, (size_t)(c->argc - 2) * 2);
    for (int i = 2; i < c->argc; i++) {
        reply_bulk(c->out, c->argv[i].p, c->argv[i].n);
        reply_int(c->out, shard ? 0 : h->pubsub_numsub(c->env->host_arg, c->argv[i].p, c->argv[i].n));
    }
}

static void pubsub_numsub(cmd_ctx *c) { numsub_generic(c, 0); }
static void pubsub_shardnumsub(cmd_ctx *c) { numsub_generic(c, 1); }

/* PUBSUB SHARDCHANNELS [pattern]: nothing is ever subscribed. */
static void pubsub_shardchannels(cmd_ctx *c) {
    if (c->argc > 3) reply_subcommand_syntax_error(c);
    else reply_array(c->out, 0);
}

#define NOKEYS 0, 0, 0
#define PS_LS (CMD_DOC_LOADING | CMD_DOC_STALE)
#define PS_FLAGS (CMD_NODATA | CMD_DOC_PUBSUB | PS_LS)

static const command pubsub_subs[] = {
    {"pubsub|channels", pubsub_channels, -2, PS_FLAGS, NOKEYS, "pubsub",
     "List active channels", "2.8.0"},
    {"pubsub|numpat", pubsub_numpat, 2, PS_FLAGS, NOKEYS, "pubsub",
     "Get the count of unique patterns pattern subscriptions", "2.8.0"},
    {"pubsub|numsub", pubsub_numsub, -2, PS_FLAGS, NOKEYS, "pubsub",
     "Get the count of subscribers for channels", "2.8.0"},
    {"pubsub|shardchannels", pubsub_shardchannels, -2, PS_FLAGS, NOKEYS, "pubsub",
     "List active shard channels", "7.0.0"},
    {"pubsub|shardnumsub", pubsub_shardnumsub, -2, PS_FLAGS, NOKEYS, "pubsub",
     "Get the count of subscribers for shard channels", "7.0.0"},
    {"pubsub|help", pubsub_help_cmd, 2, CMD_NODATA | PS_LS, NOKEYS, "pubsub",
     "Show helpful text about the different subcommands", "6.2.0"},
};

/* The subscribe family may run in RESP2 subscriber mode (CMD_SUBSCRIBED). */
#define SUB_FLAGS (PS_FLAGS | CMD_SUBSCRIBED)

const command pubsub_commands[] = {
    {"subscribe", subscribe_cmd, -2, SUB_FLAGS, NOKEYS, "pubsub",
     "Listen for messages published to the given channels", "2.0.0"},
    {"unsubscribe", unsubscribe_cmd, -1, SUB_FLAGS, NOKEYS, "pubsub",
     "Stop listening for messages posted to the given channels", "2.0.0"},
    {"psubscribe", psubscribe_cmd, -2, SUB_FLAGS, NOKEYS, "pubsub",
     "Listen for messages published to channels matching the given patterns", "2.0.0"},
    {"punsubscribe", punsubscribe_cmd, -1, SUB_FLAGS, NOKEYS, "pubsub",
     "Stop listening for messages posted to channels matching the given patterns", "2.0.0"},
    {"publish", publish_cmd, 3, PS_FLAGS | CMD_DOC_FAST, NOKEYS, "pubsub",
     "Post a message to a channel", "2.0.0"},
    {"pubsub", NULL, -2, 0, NOKEYS, "pubsub", "A container for Pub/Sub commands", "2.8.0",
     CMD_SUBS(pubsub_subs)},
};

const size_t pubsub_commands_count = sizeof pubsub_commands / sizeof pubsub_commands[0];
