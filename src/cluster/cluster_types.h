/* cluster_types.h - the types of cluster mode's public interface
 * (cluster.h): what a submitted request is, a completion, the host's
 * callbacks. A header of its own so that raft.c and the curp*.c files,
 * which deliver completions, can use them without depending on the
 * facade cluster.c implements. */
#ifndef PIER_CLUSTER_TYPES_H
#define PIER_CLUSTER_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "../cmd/command.h"
#include "../server/config.h"

struct persist;
typedef struct cluster cluster;

/* What a submitted request is. */
enum {
    CREQ_STRONG = 0,     /* linearizable: executed by the leader */
    CREQ_WEAK_WRITE = 1, /* blind write already answered by this node: ordered by the leader */
    /* A CURP client talking to the nodes directly (docs/PROTOCOL.md, cluster): */
    CREQ_DIRECT_EXEC = 2,   /* PIER.EXEC: the leader executes, answers term, index, synced */
    CREQ_DIRECT_RECORD = 3, /* PIER.RECORD: this node's witness records (aux = the client's term) */
    CREQ_DIRECT_SYNC = 4,   /* PIER.SYNC: answer once the entry at aux is committed */
};

/* A completion, handed to the host's deliver callback on the cluster
 * thread; the receiver frees it with free(). */
/* CDONE_WEAK_DONE: a weak write is committed at index, so the session may
 * forget it once this node has applied that far (index 0: given up after
 * cluster-request-timeout-ms without a leader). */
enum { CDONE_REPLY = 0, CDONE_WEAK_DONE = 1 };
typedef struct cluster_done {
    struct cluster_done *next;  /* for the receiver's queues */
    void *client;               /* as passed to cluster_submit */
    uint64_t slot;              /* as passed to cluster_submit */
    int kind;                   /* CDONE_ */
    uint64_t index;             /* log index of the write (0: none) */
    size_t len;                 /* CDONE_REPLY: the reply bytes (RESP) */
    char bytes[];
} cluster_done;

typedef struct cluster_host {
    /* Route a completion to the loop owning d->client (cluster thread). */
    void (*deliver)(void *arg, cluster_done *d);
    /* Restart this process in place with its whole configuration (a
     * deposed leader rebuilding its keyspace from the AOF). Does not
     * return. */
    void (*restart)(void *arg);
} cluster_host;

#endif
