/* cluster.h - cluster mode: this node's part in a replicated group of 3 or
 * 5 nodes (Raft terms, election and log replication; CURP witnesses and
 * speculative execution; weak operations with session guarantees).
 * docs/CONSISTENCY.md describes the protocol and its guarantees.
 *
 * Threads: one cluster thread per node owns the bus, the Raft state, the
 * witness, the exactly-once table and the execution of every data command
 * (so on the leader the log order is the execution order, and all that
 * state needs no lock). Loop threads hand it requests (cluster_submit) and
 * get completions back through the host's deliver callback. Loop threads
 * may read the published indexes and answer reads locally when
 * cluster_local_read says so.
 *
 * The node's AOF is its durable log: PIER.ENTRY, PIER.VOTE, PIER.COMMIT
 * and PIER.TRUNCATE records, and its witness's PIER.WITNESS and PIER.WGC
 * records (entry.h). */
#ifndef PIER_CLUSTER_H
#define PIER_CLUSTER_H

#include "cluster_types.h"

/* Parse the cluster options (cluster-nodes, cluster-node-id); NULL with a
 * message in err when cluster mode is off (err empty) or misconfigured.
 * env is the loop threads' command environment: the cluster copies it
 * for its own executions. */
cluster *cluster_create(pier_config *cfg, keyspace *ks, cmd_env *env, struct persist *ps,
                        const cluster_host *host, void *host_arg, char *err, size_t errlen);
/* 1 when the options ask for cluster mode. */
int cluster_configured(const pier_config *cfg);
/* Persistence replays the AOF through this (PIER.* records); returns 1
 * when it consumed the record, 0 for an ordinary command, -1 when the
 * record is malformed. */
int cluster_replay(void *arg, int argc, const cmd_arg *argv);
/* After loading: apply the committed log, install the hooks, bind the
 * bus and start the thread. 0, or -1 with err. */
int cluster_start(cluster *cl, char *err, size_t errlen);
void cluster_stop(cluster *cl);
void cluster_destroy(cluster *cl);

/* Hand a data command to the cluster thread (any loop thread). argv is
 * copied. cid/seq: the request id (RIFL). */
void cluster_submit(cluster *cl, void *client, uint64_t slot, uint64_t cid, uint64_t seq,
                    int kind, int proto, int argc, const cmd_arg *argv);
/* The same with aux (CREQ_DIRECT_RECORD: the term; CREQ_DIRECT_SYNC: the
 * log index). */
void cluster_submit_direct(cluster *cl, void *client, uint64_t slot, uint64_t cid, uint64_t seq,
                           int kind, int proto, uint64_t aux, int argc, const cmd_arg *argv);
/* The hashes of argv's keys by cmd's row (key positions or getkeys,
 * entry_key_hash) into keys[0..max): their count, -1 when the command
 * names no keys or concerns the whole keyspace, -2 when it names more
 * than max. */
int cluster_command_keys(const command *cmd, int argc, const cmd_arg *argv, uint64_t *keys,
                         int max);
/* A client id no other connection of any node uses, ever: node id, a
 * per-start nonce and a counter. */
uint64_t cluster_new_client_id(cluster *cl);

/* Loop threads: may a read of these keys (hashes) run locally right now?
 * strong: linearizably (only a serving leader with a valid lease, and no
 * unsynced write on the keys). weak: from committed state (a follower's
 * applied state; a leader's when the keys have no unsynced write).
 * nkeys < 0: a read of the whole keyspace (KEYS, SCAN, DBSIZE). */
int cluster_local_read(cluster *cl, int strong, const uint64_t *keys, int nkeys);
/* The index up to which this node's keyspace holds only committed writes
 * that weak reads may see. */
uint64_t cluster_visible_index(cluster *cl);

void cluster_count_weak_read(cluster *cl);

/* 1 when name is one of a cluster node's own AOF records (PIER.ENTRY,
 * PIER.VOTE, PIER.COMMIT, PIER.TRUNCATE, PIER.WITNESS, PIER.WGC;
 * entry.h): pier-check-aof accepts them next to the command table's
 * names. */
int cluster_is_log_record(const char *name, size_t len);

/* This node's cluster bus port (the ready line); 0 when cl is NULL. */
int cluster_bus_port(const cluster *cl);

/* INFO cluster text (appended to buf); returns bytes written. */
size_t cluster_info(cluster *cl, char *buf, size_t len);

#endif
