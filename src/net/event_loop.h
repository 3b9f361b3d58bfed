/* event_loop.h - one epoll event loop per thread: fd readiness, timers in a
 * min-heap, a cross-thread wake-up (eventfd) and a before-sleep hook.
 *
 * Ownership (libuv-style): the caller allocates each ev_io and keeps it
 * alive while registered; ev_io_stop before freeing it. A loop is used by
 * one thread only, except ev_wake, which any thread may call. */
#ifndef PIER_EVENT_LOOP_H
#define PIER_EVENT_LOOP_H

#include <stdint.h>

#define EV_READ 1u
#define EV_WRITE 2u

typedef struct ev_loop ev_loop;
typedef struct ev_io ev_io;

/* Called with the events that are ready (EV_READ | EV_WRITE; errors and
 * hang-ups are reported as EV_READ so that the read returns them). */
typedef void ev_io_fn(ev_loop *loop, ev_io *io, uint32_t ready);
/* A timer callback returns the delay in ms until it runs again, or -1 to
 * stop. */
typedef long ev_timer_fn(ev_loop *loop, void *arg);
typedef void ev_hook_fn(ev_loop *loop, void *arg);

struct ev_io {
    int fd;
    uint32_t events;  /* currently registered EV_ mask */
    int registered;
    ev_io_fn *fn;
    void *arg;
};

/* Create a loop. wake_fn runs on the loop thread after another thread
 * called ev_wake (coalesced: many wakes may run it once). */
ev_loop *ev_create(ev_hook_fn *wake_fn, void *wake_arg);
void ev_destroy(ev_loop *loop);

void ev_io_init(ev_io *io, int fd, ev_io_fn *fn, void *arg);
/* Set the watched events (0 = none but stay registered). Returns 0 or -1
 * with errno. */
int ev_io_set(ev_loop *loop, ev_io *io, uint32_t events);
/* The same with EPOLLEXCLUSIVE, for a listener every loop watches (the
 * kernel wakes one of them per connection). */
int ev_io_set_exclusive(ev_loop *loop, ev_io *io, uint32_t events);
void ev_io_stop(ev_loop *loop, ev_io *io);

/* Run fn after delay_ms, then again after whatever it returns. Returns a
 * timer id (> 0) that nothing takes yet: a timer ends only by its callback
 * returning -1 (there is no cancel). */
long long ev_timer_add(ev_loop *loop, long delay_ms, ev_timer_fn *fn, void *arg);

/* Runs before every epoll_wait (flush replies, close clients). */
void ev_set_before_sleep(ev_loop *loop, ev_hook_fn *fn, void *arg);

/* Any thread: make the loop run its wake_fn soon. */
void ev_wake(ev_loop *loop);

/* Run until ev_stop is called on this loop (from its own thread). */
void ev_run(ev_loop *loop);
void ev_stop(ev_loop *loop);

#endif
