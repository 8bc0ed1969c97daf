/*
 * el.c -- the per-thread epoll loop; see el.h for the why and the rules.
 *
 * Cross-thread wakes go through one eventfd per loop.  A flag in front of it
 * (wake_pending) makes a burst of bc_el_wake() calls cost one write(2) and
 * one read(2): only the caller that flips the flag from false to true
 * writes; the loop drains the eventfd, then clears the flag, then runs the
 * wakeup callback, so a wake that races with the callback either sees the
 * flag cleared (and writes again, waking the next iteration) or had its
 * work queued before the callback looks.
 */
#include "net/el.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bc_log.h"
#include "bc_time.h"

#define EL_BATCH 256

struct bc_el {
    int epfd;
    int wakefd;
    bc_el_io_t wake_io;
    atomic_bool stop;
    atomic_bool wake_pending;
    atomic_bool idle;          /* blocked in epoll_wait (bc_el_idle) */

    bc_el_fn before_poll;
    void *before_poll_arg;
    bc_el_fn wakeup;
    void *wakeup_arg;
    bc_el_fn timeout_fn;
    void *timeout_arg;
    uint64_t timeout_at_ms;    /* CLOCK_MONOTONIC milliseconds */

    struct epoll_event batch[EL_BATCH];
};

static void
el_on_wake(bc_el_t *el, bc_el_io_t *io, uint32_t events)
{
    uint64_t count;
    (void)events;

    /* Drain the counter FIRST, then clear the flag: cleared first, a wake
     * landing in between would see the flag clear and write, and this read
     * would eat that write while the waker's flag stays set -- no further
     * wake would ever write again.  EAGAIN is harmless (nothing pending). */
    ssize_t r = read(io->fd, &count, sizeof(count));
    (void)r;
    atomic_store_explicit(&el->wake_pending, false, memory_order_seq_cst);
    if (el->wakeup != NULL && !atomic_load(&el->stop)) el->wakeup(el, el->wakeup_arg);
}

bc_status_t
bc_el_create(bc_el_t **out)
{
    bc_el_t *el = calloc(1, sizeof(*el));
    if (el == NULL) return BC_ENOMEM;
    el->epfd = epoll_create1(EPOLL_CLOEXEC);
    el->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (el->epfd < 0 || el->wakefd < 0) {
        log_error("event loop: cannot create epoll/eventfd: %s", strerror(errno));
        bc_el_destroy(el);
        return BC_EIO;
    }
    atomic_init(&el->stop, false);
    atomic_init(&el->wake_pending, false);
    if (bc_el_io_start(el, &el->wake_io, el->wakefd, BC_EL_READ, el_on_wake, el) != BC_OK) {
        bc_el_destroy(el);
        return BC_EIO;
    }
    *out = el;
    return BC_OK;
}

void
bc_el_destroy(bc_el_t *el)
{
    if (el == NULL) return;
    if (el->epfd >= 0) close(el->epfd);
    if (el->wakefd >= 0) close(el->wakefd);
    free(el);
}

bc_status_t
bc_el_io_start(bc_el_t *el, bc_el_io_t *io, int fd, uint32_t events, bc_el_io_fn fn,
               void *data)
{
    struct epoll_event ev;

    io->fd = fd;
    io->events = events & (BC_EL_READ | BC_EL_WRITE);
    io->fn = fn;
    io->data = data;
    memset(&ev, 0, sizeof(ev));
    ev.events = io->events;
    ev.data.ptr = io;
    if (epoll_ctl(el->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_error("event loop: cannot watch fd %d: %s", fd, strerror(errno));
        io->active = false;
        return BC_EIO;
    }
    io->active = true;
    return BC_OK;
}

bc_status_t
bc_el_io_set(bc_el_t *el, bc_el_io_t *io, uint32_t events)
{
    struct epoll_event ev;

    events &= BC_EL_READ | BC_EL_WRITE;
    if (!io->active) return BC_EIO;
    if (events == io->events) return BC_OK;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = io;
    if (epoll_ctl(el->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0) {
        log_error("event loop: cannot change events of fd %d: %s", io->fd, strerror(errno));
        return BC_EIO;
    }
    io->events = events;
    return BC_OK;
}

void
bc_el_io_stop(bc_el_t *el, bc_el_io_t *io)
{
    if (!io->active) return;
    /* Failure means the fd is already gone from the set: nothing to undo. */
    (void)epoll_ctl(el->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->active = false;
    io->events = 0;
}

void
bc_el_set_before_poll(bc_el_t *el, bc_el_fn fn, void *arg)
{
    el->before_poll = fn;
    el->before_poll_arg = arg;
}

void
bc_el_set_wakeup(bc_el_t *el, bc_el_fn fn, void *arg)
{
    el->wakeup = fn;
    el->wakeup_arg = arg;
}

void
bc_el_set_timeout(bc_el_t *el, uint32_t ms, bc_el_fn fn, void *arg)
{
    el->timeout_fn = fn;
    el->timeout_arg = arg;
    el->timeout_at_ms = fn != NULL ? (uint64_t)bc_time_mono_ms() + ms : 0;
}

static void
el_signal(bc_el_t *el)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the loop will wake anyway. */
    ssize_t w = write(el->wakefd, &one, sizeof(one));
    (void)w;
}

void
bc_el_wake(bc_el_t *el)
{
    if (!atomic_exchange(&el->wake_pending, true)) el_signal(el);
}

bool
bc_el_idle(const bc_el_t *el)
{
    return atomic_load_explicit(&((bc_el_t *)el)->idle, memory_order_acquire);
}

void
bc_el_stop(bc_el_t *el)
{
    atomic_store(&el->stop, true);
    el_signal(el);
}

bc_status_t
bc_el_run(bc_el_t *el)
{
    while (!atomic_load_explicit(&el->stop, memory_order_relaxed)) {
        int timeout = -1, n;

        if (el->before_poll != NULL) el->before_poll(el, el->before_poll_arg);
        if (el->timeout_fn != NULL) {
            uint64_t now = (uint64_t)bc_time_mono_ms();
            timeout = el->timeout_at_ms > now ? (int)(el->timeout_at_ms - now) : 0;
        }
        /* Idle: no callback of this iteration runs any more (release: what
         * they did is visible to whoever sees idle). */
        atomic_store_explicit(&el->idle, true, memory_order_release);
        n = epoll_wait(el->epfd, el->batch, EL_BATCH, timeout);
        /* Busy again; the fence orders this store before every load the
         * callbacks make (the other half is in bc_el_idle's caller). */
        atomic_store_explicit(&el->idle, false, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (n < 0) {
            if (errno == EINTR) continue;
            log_error("event loop: epoll_wait failed: %s", strerror(errno));
            return BC_EIO;
        }
        for (int i = 0; i < n; i++) {
            bc_el_io_t *io = el->batch[i].data.ptr;
            /* Stopped earlier in this batch: the event is stale. */
            if (!io->active) continue;
            io->fn(el, io, el->batch[i].events);
        }
        if (el->timeout_fn != NULL && (uint64_t)bc_time_mono_ms() >= el->timeout_at_ms) {
            bc_el_fn fn = el->timeout_fn;
            el->timeout_fn = NULL;
            fn(el, el->timeout_arg);
        }
    }
    return BC_OK;
}
