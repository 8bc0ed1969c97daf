/*
 * bc_time.h -- the few clock helpers every process needs, in one place:
 * millisecond clocks, a sleep that survives signals, and absolute deadlines
 * for pthread_cond_timedwait / timed waits.
 */
#ifndef BC_TIME_H
#define BC_TIME_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds of `clock` (the three below name the ones we use). */
static inline int64_t
bc_time_clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds of CLOCK_MONOTONIC: for durations and timeouts. */
static inline int64_t
bc_time_mono_ms(void)
{
    return bc_time_clock_ms(CLOCK_MONOTONIC);
}

/* CLOCK_MONOTONIC_COARSE in ms: the last timer tick (a few ms behind, at
 * most), several times cheaper -- for checks on the request path whose
 * margins are far wider than a tick. */
static inline int64_t
bc_time_mono_coarse_ms(void)
{
    return bc_time_clock_ms(CLOCK_MONOTONIC_COARSE);
}

/* Microseconds and nanoseconds of CLOCK_MONOTONIC, and seconds as a double
 * (for rates in benchmarks). */
static inline int64_t
bc_time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline uint64_t
bc_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline double
bc_time_mono_s(void)
{
    return (double)bc_time_mono_ns() / 1e9;
}

/* Milliseconds since the epoch: for timestamps others read. */
static inline int64_t
bc_time_real_ms(void)
{
    return bc_time_clock_ms(CLOCK_REALTIME);
}

/* Sleeps ms milliseconds, resuming after signals. */
static inline void
bc_time_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* *ts = now on `clock` + ms: an absolute deadline (pthread_cond_timedwait
 * measures CLOCK_REALTIME unless the condvar was set to another clock). */
static inline void
bc_time_deadline(struct timespec *ts, clockid_t clock, int64_t ms)
{
    clock_gettime(clock, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Initialises cv so that its timed waits measure CLOCK_MONOTONIC (pair
 * with bc_time_deadline(ts, CLOCK_MONOTONIC, ms)): a wall-clock step
 * cannot stretch or cut a wait.  Returns what pthread_cond_init returns. */
static inline int
bc_time_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

#endif
