/* floor-uring - the floor server again, on io_uring instead of epoll.
 *
 * Same work as floor-server.c (count complete RESP commands, answer each
 * with +OK, no store), but every socket operation goes through one
 * io_uring: a multishot accept, a multishot receive per connection drawing
 * from a provided buffer ring (no per-read submission), and sends queued as
 * SQEs that are submitted together with the wait for the next completions
 * (io_uring_submit_and_wait): one syscall per loop iteration for all
 * connections, instead of one read and one write per request. It exists to
 * measure whether pier should move its loops to io_uring (docs/BENCHMARKS.md).
 *
 *   floor-uring PORT
 */
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING_ENTRIES 4096
#define BUF_COUNT 4096 /* provided receive buffers (power of two) */
#define BUF_SIZE 4096
#define BGID 1
#define MAX_FD 65536
#define REPLY_MAX (BUF_SIZE * 2)

enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };

typedef struct conn {
    size_t len;            /* partial command carried over */
    char part[BUF_SIZE * 2];
    char out[REPLY_MAX];   /* replies of the send in flight */
    int sending;
} conn;

static struct io_uring ring;
static struct io_uring_buf_ring *bufring;
static char *bufs;
static conn *conns[MAX_FD];
static char okbuf[REPLY_MAX];

static uint64_t tag(int op, int fd) { return ((uint64_t)op << 32) | (uint32_t)fd; }

static struct io_uring_sqe *sqe_get(void) {
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);
    if (!s) {
        io_uring_submit(&ring);
        s = io_uring_get_sqe(&ring);
    }
    return s;
}

static void arm_accept(int lfd) {
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_multishot_accept(s, lfd, NULL, NULL, 0);
    io_uring_sqe_set_data64(s, tag(OP_ACCEPT, lfd));
}

static void arm_recv(int fd) {
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
    io_uring_sqe_set_data64(s, tag(OP_RECV, fd));
}

/* Length of the complete multibulk command at p, 0 if incomplete. */
static long command_len(const char *p, const char *end) {
    const char *q = p;
    if (q >= end || *q != '*') return -1;
    long n = 0;
    for (q++; q < end && *q != '\r'; q++) n = n * 10 + (*q - '0');
    if (q + 1 >= end) return 0;
    q += 2;
    for (long i = 0; i < n; i++) {
        if (q >= end || *q != '$') return q >= end ? 0 : -1;
        long len = 0;
        for (q++; q < end && *q != '\r'; q++) len = len * 10 + (*q - '0');
        if (q + 1 >= end) return 0;
        q += 2;
        if (end - q < len + 2) return 0;
        q += len + 2;
    }
    return q - p;
}

static void on_data(int fd, const char *data, size_t n) {
    conn *c = conns[fd];
    if (c->len + n > sizeof c->part) { /* the floor does not handle big values */
        c->len = 0;
        return;
    }
    memcpy(c->part + c->len, data, n);
    c->len += n;
    size_t off = 0, replies = 0;
    long l;
    while ((l = command_len(c->part + off, c->part + c->len)) > 0) {
        off += (size_t)l;
        replies++;
    }
    memmove(c->part, c->part + off, c->len - off);
    c->len -= off;
    if (!replies) return;
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_send(s, fd, okbuf, replies * 5, 0);
    io_uring_sqe_set_data64(s, tag(OP_SEND, fd));
}

static void recycle(int bid) {
    io_uring_buf_ring_add(bufring, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_COUNT), 0);
    io_uring_buf_ring_advance(bufring, 1);
}

static void on_cqe(struct io_uring_cqe *cqe, int lfd) {
    int op = (int)(cqe->user_data >> 32), fd = (int)(uint32_t)cqe->user_data;
    if (op == OP_ACCEPT) {
        if (cqe->res >= 0 && cqe->res < MAX_FD) {
            int one = 1;
            setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            conns[cqe->res] = calloc(1, sizeof(conn));
            arm_recv(cqe->res);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(lfd);
    } else if (op == OP_RECV) {
        if (cqe->res <= 0) {
            if (cqe->res == -ENOBUFS) {
                arm_recv(fd);
                return;
            }
            close(fd);
            free(conns[fd]);
            conns[fd] = NULL;
            return;
        }
        int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        on_data(fd, bufs + (size_t)bid * BUF_SIZE, (size_t)cqe->res);
        recycle(bid);
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm_recv(fd);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: floor-uring PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i + 5 <= sizeof okbuf; i += 5) memcpy(okbuf + i, "+OK\r\n", 5);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 511) < 0) {
        perror("floor-uring: listen");
        return 1;
    }
    struct io_uring_params p = {0};
    /* DEFER_TASKRUN: completions are processed when we wait, in one batch */
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(RING_ENTRIES, &ring, &p) < 0) {
        fprintf(stderr, "floor-uring: io_uring not available\n");
        return 1;
    }
    if (posix_memalign((void **)&bufring, 4096, BUF_COUNT * sizeof(struct io_uring_buf)) ||
        !(bufs = malloc((size_t)BUF_COUNT * BUF_SIZE)))
        return 1;
    io_uring_buf_ring_init(bufring);
    struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)bufring,
                                   .ring_entries = BUF_COUNT, .bgid = BGID};
    if (io_uring_register_buf_ring(&ring, &reg, 0) < 0) {
        fprintf(stderr, "floor-uring: provided buffer rings not supported\n");
        return 1;
    }
    for (int i = 0; i < BUF_COUNT; i++) recycle(i);
    arm_accept(lfd);
    for (;;) {
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            on_cqe(cqe, lfd);
            n++;
        }
        io_uring_cq_advance(&ring, n);
    }
}
