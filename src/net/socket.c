/* socket.c - TCP socket helpers. */
#include "socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fill_sockaddr(const char *addr, int port, struct sockaddr_storage *ss,
                         socklen_t *len) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (strcmp(addr, "*") == 0 || strcmp(addr, "0.0.0.0") == 0) {
        in4->sin_family = AF_INET;
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4;
        return 0;
    }
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4;
        return 0;
    }
    const char *a6 = addr[0] == '-' ? addr + 1 : addr; /* redis "-::*" form */
    if (strcmp(a6, "::*") == 0) a6 = "::";
    if (inet_pton(AF_INET6, a6, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return 0;
    }
    return -1;
}

int sock_listen(const char *addr, int port, int backlog, char *err, size_t errlen) {
    struct sockaddr_storage ss;
    socklen_t sl;
    if (fill_sockaddr(addr, port, &ss, &sl) < 0) {
        snprintf(err, errlen, "invalid bind address '%s'", addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, backlog) < 0) {
        int saved = errno; /* the caller tells EADDRNOTAVAIL from the rest */
        snprintf(err, errlen, "could not listen on %s:%d: %s", addr, port, strerror(saved));
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int sock_accept(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0 || errno != EINTR) return fd;
    }
}

int sock_spare_open(void) { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

int sock_accept_shed(int lfd, int *spare, const void *msg, size_t len) {
    if (*spare < 0 && (*spare = sock_spare_open()) < 0) return -1;
    close(*spare);
    int fd = sock_accept(lfd);
    int err = errno;
    if (fd >= 0) {
        if (msg) {
            ssize_t w = write(fd, msg, len);
            (void)w;
        }
        close(fd);
    }
    *spare = sock_spare_open();
    if (fd >= 0) return 1;
    errno = err;
    return err == EAGAIN || err == EWOULDBLOCK ? 0 : -1;
}

int sock_accept_error_is_transient(int err) {
    /* accept(2): "Linux accept() passes already-pending network errors on
     * the new socket as an error code from accept()" - retry. */
    switch (err) {
    case ECONNABORTED: case EPROTO: case EPERM: case ENETDOWN: case ENOPROTOOPT:
    case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
    case ETIMEDOUT: case EINTR:
        return 1;
    default:
        return 0;
    }
}

void sock_tune_client(int fd, int keepalive_s) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (keepalive_s > 0) {
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &keepalive_s, sizeof keepalive_s);
        int intvl = keepalive_s / 3 > 0 ? keepalive_s / 3 : 1;
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    }
}

void sock_format_addr(int fd, int local, char *buf, size_t buflen) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int rc = local ? getsockname(fd, (struct sockaddr *)&ss, &sl)
                   : getpeername(fd, (struct sockaddr *)&ss, &sl);
    if (rc < 0) {
        snprintf(buf, buflen, "?:0");
        return;
    }
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
    }
    snprintf(buf, buflen, "%s:%d", ip, port);
}

int sock_peer_is_loopback(int fd) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) return 0;
    if (ss.ss_family == AF_UNIX) return 1;
    if (ss.ss_family == AF_INET) {
        uint32_t a = ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr);
        return (a >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
        if (IN6_IS_ADDR_V4MAPPED(a)) return a->s6_addr[12] == 127;
    }
    return 0;
}

int sock_local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}
