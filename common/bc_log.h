/*
 * bc_log.h -- leveled, thread-safe logging to stderr.
 *
 * One line per call: "2026-11-21T23:06:21.123Z LEVEL [component] message".
 * The level is process-wide (bc_log_set_level); calls below it cost one
 * integer compare.  Each line is written with a single write(2), so lines
 * from different threads never interleave.
 */
#ifndef BC_LOG_H
#define BC_LOG_H

#include <stdarg.h>

typedef enum bc_log_level {
    BC_LOG_ERROR = 0,
    BC_LOG_WARN  = 1,
    BC_LOG_INFO  = 2,
    BC_LOG_DEBUG = 3,
    BC_LOG_TRACE = 4,
} bc_log_level_t;

extern int bc__log_level;

void bc_log_set_level(bc_log_level_t level);
/* The level in force (-1: nothing is logged). */
int bc_log_get_level(void);
/* Parses "error|warn|info|debug|trace"; returns -1 for anything else. */
int bc_log_level_parse(const char *name);
/* Sets the component tag printed on every line ("node", "console", ...).
 * The string must outlive the process's logging (a literal). */
void bc_log_set_component(const char *component);

void bc_log_write(bc_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void bc_log_vwrite(bc_log_level_t level, const char *fmt, va_list ap);

#define bc_log(level, ...)                                                    \
    do {                                                                     \
        if ((int)(level) <= bc__log_level) bc_log_write((level), __VA_ARGS__); \
    } while (0)

#define log_error(...) bc_log(BC_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  bc_log(BC_LOG_WARN, __VA_ARGS__)
#define log_info(...)  bc_log(BC_LOG_INFO, __VA_ARGS__)
#define log_debug(...) bc_log(BC_LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) bc_log(BC_LOG_TRACE, __VA_ARGS__)

#endif
