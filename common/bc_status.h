/*
 * bc_status.h -- the one status type of the whole codebase.
 *
 * Every fallible function in node/, console/, client/ and common/ returns a
 * bc_status_t.  BC_OK is zero; every error is negative, so "if (st < 0)" and
 * "if (st != BC_OK)" both read naturally.  bc_status_str() gives a short,
 * stable, human-readable text (used in logs, CLI output and bc_strerror()).
 *
 * The table is an X-macro so that the enum and the strings cannot drift.
 */
#ifndef BC_STATUS_H
#define BC_STATUS_H

#include <stdarg.h>
#include <stddef.h>

#define BC_STATUS_TABLE(X)                                                   \
    X(BC_OK,          0,   "ok")                                             \
    X(BC_ERR,        -1,   "generic error")                                  \
    X(BC_ENOMEM,     -2,   "out of memory")                                  \
    X(BC_EINVAL,     -3,   "invalid argument")                               \
    X(BC_ENOTFOUND,  -4,   "not found")                                      \
    X(BC_EEXISTS,    -5,   "exists")                                         \
    X(BC_ENOTSTORED, -6,   "not stored")                                     \
    X(BC_ETOOLARGE,  -7,   "object too large")                               \
    X(BC_ENONNUMERIC,-8,   "value is not a number")                          \
    X(BC_EAGAIN,     -9,   "try again")                                      \
    X(BC_EIO,        -10,  "i/o error")                                      \
    X(BC_ETIMEOUT,   -11,  "timed out")                                      \
    X(BC_ECLOSED,    -12,  "connection closed")                              \
    X(BC_EPROTO,     -13,  "protocol error")                                 \
    X(BC_ECONFIG,    -14,  "configuration error")                            \
    X(BC_ENOTOWNER,  -15,  "bucket not owned here")                          \
    X(BC_ENOOWNER,   -16,  "bucket has no owner")                            \
    X(BC_EREADONLY,  -17,  "bucket is read-only")                            \
    X(BC_EZK,        -18,  "zookeeper error")                                \
    X(BC_ESTALE,     -19,  "stale epoch")                                    \
    X(BC_EBUSY,      -20,  "busy")                                           \
    X(BC_EHANDOFF,   -21,  "connection handed off")                         \
    X(BC_EACCES,     -22,  "permission denied")

typedef enum bc_status {
#define BC__STATUS_ENUM(name, value, text) name = value,
    BC_STATUS_TABLE(BC__STATUS_ENUM)
#undef BC__STATUS_ENUM
} bc_status_t;

/* Returns a static string; never NULL (unknown codes give "unknown status"). */
const char *bc_status_str(bc_status_t status);

/*
 * The error idiom of every parser and decoder: writes the formatted reason
 * into err (err may be NULL or errlen 0: nothing is written) and returns
 * st, so a failure is one line: `return bc_fail(err, errlen, BC_EINVAL, ...)`.
 */
bc_status_t bc_fail(char *err, size_t errlen, bc_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bc_status_t bc_vfail(char *err, size_t errlen, bc_status_t st, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
