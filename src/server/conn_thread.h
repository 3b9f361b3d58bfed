/* conn_thread.h - the `--io thread` model (see conn_thread.c). */
#ifndef PIER_CONN_THREAD_H
#define PIER_CONN_THREAD_H

#include "server.h"

/* Start the acceptor thread. Returns 0, or -1 after logging why. */
int conn_thread_start(server *srv);
/* With srv->shutting_down set: join the acceptor, end every connection
 * thread and wait for them (at most ~5 s). */
void conn_thread_stop(server *srv);

#endif
