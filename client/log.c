/*
 * log.c -- logging inside the shipped library.
 *
 * The common code the library links (bc_zk, bc_cluster, ...) and the
 * client itself log through bc_log.h.  In the bucketcache processes that
 * API writes lines to stderr (common/bc_log.c); inside libbucketcache this
 * file implements the same API instead, so that every message goes to the
 * application's callback (bc_client_set_log) or, by default, to stderr at
 * WARN and above.  The library is linked so that these definitions are
 * the only ones it contains, and all of them are local to it: a program
 * that has its own bc_log_* functions is not affected.
 *
 * The ZooKeeper C client writes its own log lines to stderr (a setting of
 * the whole process).  bc__log_capture_zk(), called when the first client
 * is created, points that stream at a stdio cookie that forwards each line
 * into the same sink at DEBUG level: the library reports what matters
 * about ZooKeeper itself ("ZooKeeper unavailable; routing by the last
 * table"), and an application is not flooded with connection-refused lines
 * while ZooKeeper is away.
 *
 * LOCKING
 *   The sink (fn, ctx) is read and written under log_mu; the level is an
 *   atomic int read by the bc_log() macro without a lock.  The ZooKeeper
 *   stream is a FILE, locked by stdio.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <zookeeper/zookeeper.h>

#include "bc_log.h"
#include "bucketcache.h"
#include "log.h"

int bc__log_level = BC_LOG_WARN;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;   /* guards log_fn, log_ctx */
static bc_client_log_fn log_fn;
static void *log_ctx;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

void
bc_client_set_log(bc_client_log_fn fn, void *ctx, int max_level)
{
    if (max_level < BC_CLIENT_LOG_ERROR) max_level = BC_CLIENT_LOG_ERROR;
    if (max_level > BC_LOG_TRACE) max_level = BC_LOG_TRACE;
    pthread_mutex_lock(&log_mu);
    log_fn = fn;
    log_ctx = ctx;
    pthread_mutex_unlock(&log_mu);
    __atomic_store_n(&bc__log_level, max_level, __ATOMIC_RELAXED);
}

void
bc_log_set_level(bc_log_level_t level)
{
    __atomic_store_n(&bc__log_level, (int)level, __ATOMIC_RELAXED);
}

int
bc_log_get_level(void)
{
    return __atomic_load_n(&bc__log_level, __ATOMIC_RELAXED);
}

int
bc_log_level_parse(const char *name)
{
    static const char *const lower[] = {"error", "warn", "info", "debug", "trace"};
    for (int i = 0; i < 5; i++) {
        if (strcasecmp(name, lower[i]) == 0) return i;
    }
    return -1;
}

void
bc_log_set_component(const char *component)
{
    (void)component;  /* the library always says "bucketcache" */
}

void
bc_log_vwrite(bc_log_level_t level, const char *fmt, va_list ap)
{
    char msg[1024];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof(msg)) memcpy(msg + sizeof(msg) - 4, "...", 4);
    if ((int)level > __atomic_load_n(&bc__log_level, __ATOMIC_RELAXED)) return;

    pthread_mutex_lock(&log_mu);
    bc_client_log_fn fn = log_fn;
    void *ctx = log_ctx;
    pthread_mutex_unlock(&log_mu);
    if (fn != NULL) {
        fn(ctx, level > BC_LOG_DEBUG ? BC_CLIENT_LOG_DEBUG : (int)level, msg);
        return;
    }
    char line[1100];
    int len = snprintf(line, sizeof(line), "bucketcache: %s: %s\n",
                       level_names[level > BC_LOG_TRACE ? BC_LOG_TRACE : level], msg);
    if (len > 0) {
        size_t out = (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1;
        ssize_t w = write(STDERR_FILENO, line, out);
        (void)w;
    }
}

void
bc_log_write(bc_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bc_log_vwrite(level, fmt, ap);
    va_end(ap);
}

/* The ZooKeeper log stream's write function: one call per line (the stream
 * is line-buffered). */
static ssize_t
log_zk_write(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    size_t n = size;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    if (n > 0) bc_log(BC_LOG_DEBUG, "zookeeper client: %.*s", (int)(n > 900 ? 900 : n), buf);
    return (ssize_t)size;
}

static void
log_zk_capture_once(void)
{
    cookie_io_functions_t io = {.read = NULL, .write = log_zk_write, .seek = NULL, .close = NULL};
    FILE *f = fopencookie(NULL, "w", io);
    if (f == NULL) return;
    setvbuf(f, NULL, _IOLBF, 0);
    zoo_set_log_stream(f);
}

void
bc__log_capture_zk(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, log_zk_capture_once);
}
