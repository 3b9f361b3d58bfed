/* net.c - blocking socket helpers shared by the KV client, the publisher
 * and the subscriber. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

uint64_t pn_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int pn_split_hostport(const char *s, char *host, size_t cap, int *port) {
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s || (size_t)(colon - s) >= cap)
        return pier_fail(PIER_E_INVALID, "node '%s' is not host:port", s ? s : "(null)");
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (*end || v < 1 || v > 65535)
        return pier_fail(PIER_E_INVALID, "node '%s' has a bad port", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    *port = (int)v;
    return PIER_OK;
}

static void tune(int fd, int nodelay, int sndbuf, int rcvbuf) {
    int one = 1;
    if (nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (sndbuf > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}

int pn_connect(const char *host, int port, int nodelay, int sndbuf, int rcvbuf) {
    if (!host || port < 1 || port > 65535) {
        pier_fail(PIER_E_INVALID, "bad host or port");
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    char pstr[16];
    snprintf(pstr, sizeof pstr, "%d", port);
    int rc = getaddrinfo(host, pstr, &hints, &res);
    if (rc != 0) {
        pier_fail(PIER_E_CONNECT, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        tune(fd, nodelay, sndbuf, rcvbuf); /* buffer sizes must precede connect */
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) pier_fail(PIER_E_CONNECT, "cannot connect to %s:%d: %s", host, port, strerror(err));
    return fd;
}

int pn_writev_all(int fd, struct iovec *iov, int iovcnt) {
    while (iovcnt > 0) {
        /* sendmsg for MSG_NOSIGNAL: a peer that closed must give EPIPE,
         * not a SIGPIPE that kills the application. */
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return pier_fail(PIER_E_IO, "write failed: %s", strerror(errno));
        }
        pn_iov_advance(&iov, &iovcnt, (size_t)w);
    }
    return PIER_OK;
}

void pn_iov_advance(struct iovec **iov, int *iovcnt, size_t sent) {
    while (*iovcnt > 0 && sent >= (*iov)->iov_len) {
        sent -= (*iov)->iov_len;
        (*iov)++;
        (*iovcnt)--;
    }
    if (*iovcnt > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + sent;
        (*iov)->iov_len -= sent;
    }
}

int pn_read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r == 0) return pier_fail(PIER_E_IO, "connection closed by the server");
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return pier_fail(PIER_E_TIMEOUT, "no data within the receive timeout");
            return pier_fail(PIER_E_IO, "read failed: %s", strerror(errno));
        }
        got += (size_t)r;
    }
    return PIER_OK;
}

/* Wait until fd is readable or the deadline passes. PIER_OK or
 * PIER_E_TIMEOUT; deadline_ns 0 waits forever (no poll at all). */
static int wait_readable(int fd, uint64_t deadline_ns) {
    if (!deadline_ns) return PIER_OK;
    for (;;) {
        uint64_t now = pn_now_ns();
        if (now >= deadline_ns) return pier_fail(PIER_E_TIMEOUT, "no data within the timeout");
        uint64_t left_ms = (deadline_ns - now + 999999) / 1000000;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, left_ms > 60000 ? 60000 : (int)left_ms);
        if (r > 0) return PIER_OK;
        if (r < 0 && errno != EINTR) return pier_fail(PIER_E_IO, "poll failed: %s", strerror(errno));
    }
}

int pn_read_until(int fd, void *buf, size_t n, size_t *have, uint64_t deadline_ns) {
    while (*have < n) {
        int rc = wait_readable(fd, deadline_ns);
        if (rc) return rc;
        ssize_t r = read(fd, (char *)buf + *have, n - *have);
        if (r == 0) return pier_fail(PIER_E_IO, "connection closed by the server");
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return pier_fail(PIER_E_IO, "read failed: %s", strerror(errno));
        }
        *have += (size_t)r;
    }
    return PIER_OK;
}
