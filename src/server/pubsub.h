/* pubsub.h - the pub/sub registry (channels, patterns, subscribers) and
 * cross-thread message delivery. Design: docs/ARCHITECTURE.md, "Pub/sub".
 *
 * One mutex guards the registry and every subscriber's inbox. PUBLISH
 * writes a message straight into the reply queue of a subscriber on the
 * publisher's own loop; for a subscriber on another loop it appends the
 * encoded message to that subscriber's inbox, queues the subscriber on
 * its loop's inbox list and wakes the loop, which moves the inbox into
 * the reply queue. No thread writes another loop's socket or reply queue.
 * A subscriber whose unsent output passes the pubsub output-buffer limits
 * is marked for closing and gets no more messages. */
#ifndef PIER_PUBSUB_H
#define PIER_PUBSUB_H

#include <stddef.h>

#include "../cmd/command.h"
#include "server.h"

struct client;

typedef struct pubsub pubsub;

pubsub *pubsub_create(void);
void pubsub_destroy(pubsub *ps);

/* cmd_host entry points (arg is the server). */
int pubsub_host_subscribe(void *arg, session *s, int pattern, const char *ch, size_t n);
int pubsub_host_unsubscribe(void *arg, session *s, int pattern, const char *ch, size_t n);
size_t pubsub_host_subscriptions(void *arg, session *s, int pattern, cmd_arg **out);
long long pubsub_host_publish(void *arg, session *from, const char *ch, size_t n,
                              const char *msg, size_t mlen);
size_t pubsub_host_channels(void *arg, const char *pat, size_t plen, cmd_arg **out);
long long pubsub_host_numsub(void *arg, const char *ch, size_t n);
long long pubsub_host_numpat(void *arg);

/* Owner loop, after a wake-up: move queued messages into reply queues. */
void pubsub_on_wake(loop_thread *lt);
/* The connection is closing: drop its subscriptions (owner thread). */
void pubsub_client_gone(struct client *c);
/* Channels with subscribers and pattern subscriptions (INFO stats). */
void pubsub_counts(server *srv, long long *channels, long long *patterns);

#endif
