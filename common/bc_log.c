/*
 * bc_log.c -- see bc_log.h.  Formats into a stack buffer and emits it with
 * one write(2) so concurrent lines stay whole; over-long lines are cut and
 * end in "...".
 */
#include "bc_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int bc__log_level = BC_LOG_INFO;
static const char *log_component = "bucketcache";

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

void
bc_log_set_level(bc_log_level_t level)
{
    bc__log_level = (int)level;
}

int
bc_log_get_level(void)
{
    return bc__log_level;
}

void
bc_log_set_component(const char *component)
{
    log_component = component;
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
bc_log_vwrite(bc_log_level_t level, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t len;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line + len, sizeof(line) - len, ".%03ldZ %-5s [%s] ",
                 ts.tv_nsec / 1000000L,
                 level_names[level > BC_LOG_TRACE ? BC_LOG_TRACE : level],
                 log_component);
    if (n > 0) len += (size_t)n;
    n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof(line) - len - 1) {
        len = sizeof(line) - 5;
        memcpy(line + len, "...", 3);
        len += 3;
    } else {
        len += (size_t)n;
    }
    line[len++] = '\n';
    /* A failed log write has nowhere to be reported; ignore it. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void
bc_log_write(bc_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bc_log_vwrite(level, fmt, ap);
    va_end(ap);
}
