/* listener.c - what an accept loop does when accept() fails, for every
 * listening port (RESP on the loops or the --io thread acceptor, the batch
 * port).
 *
 * Out of descriptors (EMFILE, ENFILE) a level-triggered listener stays
 * readable: retried at once, accept fails again, forever, at full CPU and
 * with a log line each time, while the clients in the backlog wait with
 * no answer. Instead:
 *   1. the reserve descriptor trick (libuv's): the server holds one spare
 *      descriptor; it is closed, each pending connection is accepted,
 *      answered with the port's refusal (RESP: Redis's max-clients error)
 *      and closed, and the spare is reopened. No client is left hanging.
 *   2. the listener is not watched for SERVER_ACCEPT_PAUSE_MS (a loop
 *      timer re-arms it; the --io thread acceptor waits), so a connection
 *      storm costs at most a few wake-ups a second.
 *   3. the error is logged at most once a second, with a count of the
 *      lines not printed.
 * The spare is shared by every thread that accepts, and every accept takes
 * spare_lock (server_accept: one uncontended mutex beside a system call),
 * so no accept of another loop can take the slot the spare leaves before
 * the trick's accept does. Another module opening a file at that moment
 * still can: the spare is then missing until a descriptor is free again,
 * and the next accept takes it back first. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../net/socket.h"
#include "server.h"

#define SHED_MAX 4096 /* connections refused per failure, a bound on the work */

void server_spare_init(server *srv) {
    pthread_mutex_init(&srv->spare_lock, NULL);
    srv->spare_fd = sock_spare_open();
    atomic_store(&srv->spare_missing, srv->spare_fd < 0);
}

int server_accept(server *srv, int lfd) {
    pthread_mutex_lock(&srv->spare_lock);
    if (srv->spare_fd < 0) {
        srv->spare_fd = sock_spare_open();
        atomic_store(&srv->spare_missing, srv->spare_fd < 0);
    }
    int fd = sock_accept(lfd);
    int err = errno;
    pthread_mutex_unlock(&srv->spare_lock);
    errno = err;
    return fd;
}

void server_spare_free(server *srv) {
    if (srv->spare_fd >= 0) close(srv->spare_fd);
    srv->spare_fd = -1;
    pthread_mutex_destroy(&srv->spare_lock);
}

/* Refuse every connection pending on lfd through the spare descriptor.
 * Returns how many were refused. */
static unsigned shed_pending(server *srv, int lfd, const void *reject, size_t reject_len) {
    unsigned shed = 0;
    pthread_mutex_lock(&srv->spare_lock);
    while (shed < SHED_MAX && sock_accept_shed(lfd, &srv->spare_fd, reject, reject_len) == 1)
        shed++;
    atomic_store(&srv->spare_missing, srv->spare_fd < 0);
    pthread_mutex_unlock(&srv->spare_lock);
    return shed;
}

int server_accept_failed(server *srv, int lfd, const char *port_name, const void *reject,
                         size_t reject_len, unsigned *shed) {
    static log_ratelimit transient_rl = LOG_RATELIMIT_SYSCALL;
    static log_ratelimit pause_rl = LOG_RATELIMIT_SYSCALL;
    int err = errno;
    *shed = 0;
    if (err == EAGAIN || err == EWOULDBLOCK) return ACCEPT_DRAINED;
    if (sock_accept_error_is_transient(err)) {
        log_verbose_ratelimited(&transient_rl, "%s accept: %s", port_name, strerror(err));
        return ACCEPT_NEXT;
    }
    const char *spare = "";
    if (err == EMFILE || err == ENFILE) {
        *shed = shed_pending(srv, lfd, reject, reject_len);
        if (atomic_load(&srv->spare_missing)) spare = " (no reserve descriptor: the others wait)";
    }
    log_warn_ratelimited(&pause_rl, "%s accept: %s; refused %u pending connection(s)%s, not "
                         "accepting for %d ms", port_name, strerror(err), *shed, spare,
                         SERVER_ACCEPT_PAUSE_MS);
    return ACCEPT_PAUSE;
}

/* --- a loop's paused listeners --- */

static long resume_listeners(ev_loop *loop, void *arg) {
    loop_thread *lt = arg;
    for (int i = 0; i < lt->npaused; i++)
        if (!lt->stopping) ev_io_set_exclusive(loop, lt->paused[i], EV_READ);
    lt->npaused = 0;
    return -1;
}

void server_pause_listener(loop_thread *lt, ev_io *io) {
    /* A listener is paused once (then unregistered): the slots suffice. */
    if (!io->registered || lt->npaused == SERVER_MAX_PAUSED) return;
    ev_io_stop(lt->loop, io);
    lt->paused[lt->npaused++] = io;
    if (lt->npaused == 1) ev_timer_add(lt->loop, SERVER_ACCEPT_PAUSE_MS, resume_listeners, lt);
}
