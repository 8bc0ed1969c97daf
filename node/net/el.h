/*
 * el.h -- a small epoll event loop, one per thread (Redis "ae" style).
 *
 * WHY NOT LIBEVENT
 *   The node needs exactly four things from a loop: readiness callbacks on
 *   non-blocking sockets, a way for another thread to wake a loop (new
 *   connection handed over, shutdown), a hook that runs once per loop
 *   iteration, and one timeout.  That is ~250 lines over epoll(7).  A
 *   library such as libevent adds a dependency, an extra indirection on
 *   every event (its own event structs, active queues, priorities, the
 *   bufferevent layer we would not use since we do our own buffering and
 *   writev), and a locking model we would have to configure around.  With
 *   our own loop every byte of the hot path is visible: one epoll_wait, then
 *   a direct call into the connection.  The node runs on Linux only, so
 *   portability -- libevent's main gift -- is not needed.
 *
 * HOW
 *   The caller embeds a bc_el_io_t in its own object (a connection) and
 *   registers it; epoll carries the bc_el_io_t pointer, so there is no
 *   fd-indexed table to size or grow.  Level-triggered: a callback that
 *   does not drain a socket is called again on the next iteration, which
 *   keeps fairness between connections simple.
 *
 *   One loop iteration:
 *
 *       before_poll hook --> epoll_wait(timeout) --> io callbacks, in order
 *            ^                                        |   (wakeup callback
 *            '----------------------------------------'    when woken)
 *
 *   An io callback may stop or modify any registration of the same loop,
 *   including one whose event is still pending in the current batch.  The
 *   loop does not free anything; an owner that frees an object embedding a
 *   bc_el_io_t must wait until the current batch is over (before_poll is
 *   the place): the batch may still hold its pointer.
 *
 * THREADS
 *   Everything here must be called from the loop's own thread except
 *   bc_el_wake() and bc_el_stop(), which any thread may call.
 */
#ifndef BC_EL_H
#define BC_EL_H

#include <stdbool.h>
#include <stdint.h>

#include "bc_status.h"

/* Event bits (the epoll values). */
#define BC_EL_READ  0x001u     /* EPOLLIN */
#define BC_EL_WRITE 0x004u     /* EPOLLOUT */
#define BC_EL_ERROR 0x008u     /* EPOLLERR (always reported) */
#define BC_EL_HUP   0x010u     /* EPOLLHUP (always reported) */

typedef struct bc_el bc_el_t;
typedef struct bc_el_io bc_el_io_t;

/* events: the BC_EL_* bits that fired. */
typedef void (*bc_el_io_fn)(bc_el_t *el, bc_el_io_t *io, uint32_t events);
typedef void (*bc_el_fn)(bc_el_t *el, void *arg);

/* A registration; embedded in the caller's object, fields read-only. */
struct bc_el_io {
    int fd;
    uint32_t events;           /* BC_EL_READ | BC_EL_WRITE currently asked for */
    bool active;
    bc_el_io_fn fn;
    void *data;                /* the caller's object */
};

/* Creates a loop.  *out is owned by the caller (bc_el_destroy).
 * Errors: BC_ENOMEM, BC_EIO (epoll_create1/eventfd failed). */
bc_status_t bc_el_create(bc_el_t **out);
/* Closes the epoll and wake descriptors; registrations are not touched
 * (their fds belong to their owners). */
void bc_el_destroy(bc_el_t *el);

/*
 * Registers fd for `events` (may be 0: registered but idle).  io is owned
 * by the caller and must stay valid until bc_el_io_stop().
 * Errors: BC_EIO (epoll_ctl failed, errno logged).
 */
bc_status_t bc_el_io_start(bc_el_t *el, bc_el_io_t *io, int fd, uint32_t events,
                           bc_el_io_fn fn, void *data);
/* Changes the events asked for; no system call when unchanged.
 * Errors: BC_EIO. */
bc_status_t bc_el_io_set(bc_el_t *el, bc_el_io_t *io, uint32_t events);
/* Unregisters (the fd stays open); pending events of the current batch
 * for io are dropped.  Idempotent. */
void bc_el_io_stop(bc_el_t *el, bc_el_io_t *io);

/* Called at the start of every iteration, before epoll_wait. */
void bc_el_set_before_poll(bc_el_t *el, bc_el_fn fn, void *arg);
/* Called in the loop thread after bc_el_wake() (once per iteration however
 * many wakes happened). */
void bc_el_set_wakeup(bc_el_t *el, bc_el_fn fn, void *arg);
/* Runs fn once, in the loop thread, after ms milliseconds; replaces any
 * pending timeout.  fn NULL cancels. */
void bc_el_set_timeout(bc_el_t *el, uint32_t ms, bc_el_fn fn, void *arg);

/* Thread-safe: makes the loop call its wakeup callback soon. */
void bc_el_wake(bc_el_t *el);
/*
 * Thread-safe: true while the loop is blocked in epoll_wait, i.e. between
 * iterations, with no callback running.  Whatever the callbacks did before
 * is visible to a caller that sees true.  And a caller that changed state
 * the callbacks read, then issued atomic_thread_fence(memory_order_seq_cst),
 * then saw true, knows every callback from then on reads the new state:
 * the loop fences the same way when it wakes (Dekker).  How a fence waits
 * for a worker without waking it (server.h, bc_server_passed).
 */
bool bc_el_idle(const bc_el_t *el);
/* Thread-safe: makes bc_el_run() return after the current iteration. */
void bc_el_stop(bc_el_t *el);

/* Runs until bc_el_stop().  Errors: BC_EIO (epoll_wait failed). */
bc_status_t bc_el_run(bc_el_t *el);

#endif
