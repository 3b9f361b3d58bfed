/* floor-server - the cost floor for a RESP server on this machine.
 *
 * One thread, one epoll loop, non-blocking sockets, TCP_NODELAY: it reads
 * whatever arrived, counts the complete RESP commands in it (multibulk
 * framing, no argument copies, no store) and answers each with +OK in one
 * write. Any real server has to do at least this much work per request, so
 * its CPU time per request under a given load is the floor the kernel's
 * socket I/O sets. bench/compare-redis.sh runs it beside redis-server and
 * pier-server.
 *
 *   floor-server PORT
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF 65536

typedef struct conn {
    int fd;
    size_t len;
    char buf[RBUF];
} conn;

/* Length of the complete multibulk command at p, 0 if incomplete, -1 if
 * not RESP. */
static long command_len(const char *p, const char *end) {
    const char *q = p;
    if (q >= end || *q != '*') return -1;
    long n = 0;
    for (q++; q < end && *q != '\r'; q++) n = n * 10 + (*q - '0');
    if (q + 1 >= end) return 0;
    q += 2;
    for (long i = 0; i < n; i++) {
        if (q >= end) return 0;
        if (*q != '$') return -1;
        long len = 0;
        for (q++; q < end && *q != '\r'; q++) len = len * 10 + (*q - '0');
        if (q + 1 >= end) return 0;
        q += 2;
        if (end - q < len + 2) return 0;
        q += len + 2;
    }
    return q - p;
}

static char okbuf[RBUF * 2];

static void on_readable(conn *c) {
    ssize_t r = read(c->fd, c->buf + c->len, RBUF - c->len);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN) return;
        close(c->fd);
        free(c);
        return;
    }
    c->len += (size_t)r;
    size_t off = 0, replies = 0;
    long l;
    while ((l = command_len(c->buf + off, c->buf + c->len)) > 0) {
        off += (size_t)l;
        replies++;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    if (replies) {
        ssize_t w = write(c->fd, okbuf, replies * 5);
        (void)w; /* a benchmark client always reads: a short write is not expected */
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: floor-server PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof okbuf; i += 5) memcpy(okbuf + i, "+OK\r\n", 5);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 511) < 0) {
        perror("floor-server: listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr) {
                on_readable(evs[i].data.ptr);
                continue;
            }
            int fd;
            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                conn *c = calloc(1, sizeof *c);
                if (!c) abort();
                c->fd = fd;
                struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
            }
        }
    }
}
