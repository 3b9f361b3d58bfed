/* event_loop.c - epoll backend, timer heap, eventfd wake-up. */
#include "event_loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../lib/clock.h"
#include "../lib/log.h"
#include "../lib/mem.h"

#define EV_MAX_EVENTS 256

typedef struct ev_timer {
    int64_t when_ms;  /* monotonic */
    long long id;
    ev_timer_fn *fn;
    void *arg;
} ev_timer;

struct ev_loop {
    int epfd;
    int stop;
    ev_io wake_io;
    _Atomic int wake_pending; /* coalesces eventfd writes */
    ev_hook_fn *wake_fn;
    void *wake_arg;
    ev_hook_fn *before_sleep;
    void *before_sleep_arg;
    ev_timer *timers; /* min-heap on when_ms */
    size_t ntimers, cap_timers;
    long long next_timer_id;
};

static void wake_readable(ev_loop *loop, ev_io *io, uint32_t ready) {
    uint64_t v;
    /* Drain, THEN clear the flag. Clearing first lost wakes: a waker
     * setting the flag between the clear and the drain had its eventfd
     * write eaten by the drain, leaving the flag set with nothing to
     * read, so every later ev_wake was skipped (the loop never heard of
     * the shutdown, nor of blocked reads or messages). Now a waker that
     * finds the flag still set is covered by the wake_fn run below: the
     * exchange reads its write of the flag, so its earlier changes are
     * visible to wake_fn; a waker after the exchange writes the eventfd
     * again. */
    while (read(io->fd, &v, sizeof v) > 0) {
    }
    (void)atomic_exchange(&loop->wake_pending, 0);
    if (loop->wake_fn) loop->wake_fn(loop, loop->wake_arg);
}

ev_loop *ev_create(ev_hook_fn *wake_fn, void *wake_arg) {
    ev_loop *loop = xcalloc(1, sizeof *loop);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epfd < 0 || efd < 0) {
        log_warn("event loop: %s", strerror(errno));
        abort();
    }
    loop->wake_fn = wake_fn;
    loop->wake_arg = wake_arg;
    ev_io_init(&loop->wake_io, efd, wake_readable, loop);
    ev_io_set(loop, &loop->wake_io, EV_READ);
    return loop;
}

void ev_destroy(ev_loop *loop) {
    if (!loop) return;
    close(loop->wake_io.fd);
    close(loop->epfd);
    free(loop->timers);
    free(loop);
}

void ev_io_init(ev_io *io, int fd, ev_io_fn *fn, void *arg) {
    io->fd = fd;
    io->events = 0;
    io->registered = 0;
    io->fn = fn;
    io->arg = arg;
}

static int io_update(ev_loop *loop, ev_io *io, uint32_t events, uint32_t extra) {
    if (io->registered && io->events == events) return 0;
    struct epoll_event ee = {0};
    ee.events = extra;
    if (events & EV_READ) ee.events |= EPOLLIN;
    if (events & EV_WRITE) ee.events |= EPOLLOUT;
    ee.data.ptr = io;
    int op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(loop->epfd, op, io->fd, &ee) < 0) return -1;
    io->registered = 1;
    io->events = events;
    return 0;
}

int ev_io_set(ev_loop *loop, ev_io *io, uint32_t events) {
    return io_update(loop, io, events, 0);
}

int ev_io_set_exclusive(ev_loop *loop, ev_io *io, uint32_t events) {
    return io_update(loop, io, events, EPOLLEXCLUSIVE);
}

void ev_io_stop(ev_loop *loop, ev_io *io) {
    if (!io->registered) return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->registered = 0;
    io->events = 0;
}

/* --- timer heap --- */

static void heap_swap(ev_timer *a, ev_timer *b) {
    ev_timer t = *a;
    *a = *b;
    *b = t;
}

static void heap_up(ev_loop *loop, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->timers[parent].when_ms <= loop->timers[i].when_ms) break;
        heap_swap(&loop->timers[parent], &loop->timers[i]);
        i = parent;
    }
}

static void heap_down(ev_loop *loop, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->ntimers && loop->timers[l].when_ms < loop->timers[m].when_ms) m = l;
        if (r < loop->ntimers && loop->timers[r].when_ms < loop->timers[m].when_ms) m = r;
        if (m == i) return;
        heap_swap(&loop->timers[m], &loop->timers[i]);
        i = m;
    }
}

static void heap_push(ev_loop *loop, ev_timer t) {
    if (loop->ntimers == loop->cap_timers) {
        loop->cap_timers = loop->cap_timers ? loop->cap_timers * 2 : 8;
        loop->timers = xrealloc(loop->timers, loop->cap_timers * sizeof(ev_timer));
    }
    loop->timers[loop->ntimers++] = t;
    heap_up(loop, loop->ntimers - 1);
}

long long ev_timer_add(ev_loop *loop, long delay_ms, ev_timer_fn *fn, void *arg) {
    ev_timer t = {clock_mono_ms() + delay_ms, ++loop->next_timer_id, fn, arg};
    heap_push(loop, t);
    return t.id;
}

/* Run due timers; re-arm those that ask for it. */
static void run_timers(ev_loop *loop) {
    int64_t now = clock_mono_ms();
    while (loop->ntimers && loop->timers[0].when_ms <= now && !loop->stop) {
        ev_timer t = loop->timers[0];
        loop->timers[0] = loop->timers[--loop->ntimers];
        heap_down(loop, 0);
        long again = t.fn(loop, t.arg);
        if (again >= 0) {
            t.when_ms = clock_mono_ms() + again;
            heap_push(loop, t);
        }
    }
}

static int next_timeout_ms(ev_loop *loop) {
    if (!loop->ntimers) return -1;
    int64_t d = loop->timers[0].when_ms - clock_mono_ms();
    if (d < 0) return 0;
    return d > 1000 ? 1000 : (int)d;
}

void ev_set_before_sleep(ev_loop *loop, ev_hook_fn *fn, void *arg) {
    loop->before_sleep = fn;
    loop->before_sleep_arg = arg;
}

void ev_wake(ev_loop *loop) {
    if (atomic_exchange(&loop->wake_pending, 1)) return;
    uint64_t one = 1;
    ssize_t n = write(loop->wake_io.fd, &one, sizeof one);
    (void)n; /* EAGAIN means a wake is already pending: fine */
}

void ev_stop(ev_loop *loop) { loop->stop = 1; }

void ev_run(ev_loop *loop) {
    struct epoll_event events[EV_MAX_EVENTS];
    while (!loop->stop) {
        if (loop->before_sleep) loop->before_sleep(loop, loop->before_sleep_arg);
        int n = epoll_wait(loop->epfd, events, EV_MAX_EVENTS, next_timeout_ms(loop));
        if (n < 0 && errno != EINTR) {
            log_warn("epoll_wait: %s", strerror(errno));
            abort();
        }
        for (int i = 0; i < n && !loop->stop; i++) {
            ev_io *io = events[i].data.ptr;
            uint32_t ready = 0;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ready |= EV_READ;
            if (events[i].events & EPOLLOUT) ready |= EV_WRITE;
            ready &= io->events | (events[i].events & (EPOLLERR | EPOLLHUP) ? EV_READ : 0);
            if (ready) io->fn(loop, io, ready);
        }
        run_timers(loop);
    }
}
