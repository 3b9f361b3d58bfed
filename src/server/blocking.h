/* blocking.h - connections parked by a blocking read (XREAD/XREADGROUP
 * BLOCK) and the writes that wake them. Design: docs/ARCHITECTURE.md,
 * "Blocking reads".
 *
 * A parked connection never holds its loop: its command's argv is copied
 * and the connection simply stops running input. A write (XADD, on any
 * loop) signals the key; every connection parked on it is queued on its
 * own loop's ready list and that loop is woken (ev_wake); the owner loop
 * runs the command again, which replies or parks again. Timeouts run on
 * the owner loop's timer. */
#ifndef PIER_BLOCKING_H
#define PIER_BLOCKING_H

#include <stddef.h>

#include "../cmd/command.h"
#include "server.h"

struct client;

typedef struct blocking blocking;

blocking *blocking_create(void);
void blocking_destroy(blocking *b);

/* cmd_host entry points (arg is the server). */
int blocking_host_park(void *arg, session *s, int nkeys, const cmd_arg *keys, int argc,
                       const cmd_arg *argv, long long timeout_ms);
void blocking_host_signal(void *arg, const char *key, size_t klen);

/* Owner loop, after a wake-up: run again the commands of its connections
 * whose keys were signalled. */
void blocking_on_wake(loop_thread *lt);
/* The connection is closing: forget it (owner thread). */
void blocking_client_gone(struct client *c);
/* Connections parked now (INFO blocked_clients). */
long blocking_parked(const server *srv);

#endif
