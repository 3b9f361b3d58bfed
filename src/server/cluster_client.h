/* cluster_client.h - a connection's side of cluster mode: which commands
 * run locally and which go to the cluster thread, the per-connection
 * request ids (RIFL), replies kept in command order while requests are in
 * flight, and the weak session (the connection's own writes not yet
 * visible here, merged into its reads). */
#ifndef PIER_CLUSTER_CLIENT_H
#define PIER_CLUSTER_CLIENT_H

#include "../cluster/cluster.h"
#include "client.h"

/* What cluster_client_route decided. */
enum {
    ROUTE_LOCAL = 0,      /* run it here, as without a cluster */
    ROUTE_LOCAL_SLOT = 1, /* run it here, but its reply queues behind requests in flight */
    ROUTE_DONE = 2,       /* handed to the cluster thread or answered */
};

/* The host hooks the cluster thread calls. */
extern const cluster_host cluster_client_host;

/* Where the resolved command runs, decided from its verdict (the row's
 * flags, keys, blind-write and direct fields: src/cmd/command.h): here,
 * here with its reply queued behind the requests in flight, or on the
 * cluster thread (or answered: a weak session's blind write). A refused
 * verdict runs here, where the full checks answer it. */
int cluster_client_route(client *c, cmd_ctx *ctx, cmd_verdict *v);
/* Run a local command whose reply must wait its turn. */
void cluster_client_run_slotted(client *c, cmd_ctx *ctx, cmd_verdict *v);
/* Loop wake-up: completions from the cluster thread. */
void cluster_client_on_wake(loop_thread *lt);
/* A closed client: 1 when requests are still in flight (the last
 * completion frees it), 0 when it may be freed now. */
int cluster_client_hold(client *c);
void cluster_client_free(client *c);
/* At shutdown (the cluster thread stopped): free the closed clients
 * whose requests will never complete. */
void cluster_client_free_held(loop_thread *lt);

#endif
