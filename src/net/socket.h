/* socket.h - listening, accepting and tuning TCP sockets. */
#ifndef PIER_SOCKET_H
#define PIER_SOCKET_H

#include <stddef.h>

/* Listen on addr:port (IPv4 or IPv6 literal, or "*" for any IPv4).
 * Non-blocking, SO_REUSEADDR, close-on-exec. Returns the fd or -1 with a
 * reason written into err and errno set (EADDRNOTAVAIL: no such local
 * address; EAFNOSUPPORT: no IPv6). */
int sock_listen(const char *addr, int port, int backlog, char *err, size_t errlen);

/* Accept one connection, non-blocking and close-on-exec. Returns the fd,
 * or -1 (errno EAGAIN when there is nothing to accept). */
int sock_accept(int lfd);

/* TCP_NODELAY and (when keepalive_s > 0) SO_KEEPALIVE with that idle time. */
void sock_tune_client(int fd, int keepalive_s);

/* "ip:port" of the peer (local != 0: of our end) into buf. */
void sock_format_addr(int fd, int local, char *buf, size_t buflen);

/* 1 when the peer address is loopback (127.0.0.0/8, ::1) or a Unix socket. */
int sock_peer_is_loopback(int fd);

/* Port a listening socket is bound to (to report when port 0 was asked). */
int sock_local_port(int fd);

#endif
