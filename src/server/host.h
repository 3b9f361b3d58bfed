/* host.h - the services the server offers to commands (cmd_host), and the
 * INFO text builder they use. */
#ifndef PIER_HOST_H
#define PIER_HOST_H

#include <stddef.h>

#include "../cmd/command.h"

struct server;

extern const cmd_host server_host_ops;

/* INFO text for one section name or a group ("", "default", "all",
 * "everything"). Returns malloc'd text (possibly empty), length in *len. */
char *server_info(struct server *srv, const char *section, size_t *len);

#endif
