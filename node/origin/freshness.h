/*
 * freshness.h -- how long an origin's answer may be kept, from its
 * response headers (RFC 9111, as a shared cache reads them).
 *
 * WHAT IT DOES
 *   The response's header lines are fed one by one; the result says
 *   whether the value may be stored and for how many seconds:
 *
 *     Cache-Control: no-store | no-cache | private    not stored (served
 *                                                     to the waiters only)
 *     Cache-Control: s-maxage=N                       N (wins over max-age:
 *                                                     we are a shared cache)
 *     Cache-Control: max-age=N                        N (wins over Expires)
 *     Expires: <HTTP-date>                            Expires - Date (Date
 *                                                     absent: - now)
 *     none of these                                   the configured default
 *
 *   Age is subtracted from the lifetime.  A lifetime <= 0 (max-age=0, an
 *   Expires in the past, an Expires that is not a date -- RFC 9111 5.3:
 *   "already expired") means not stored.  A max-age whose value is not
 *   digits makes the response stale too (RFC 9111 4.2.1: the most
 *   restrictive reading).  A huge max-age is capped, first at max_ttl when
 *   one is configured.  Directive names are case-insensitive, values may be
 *   quoted, several Cache-Control lines add up.
 *
 * THREADS
 *   A bc_origin_fresh_t belongs to one response; functions are pure.
 */
#ifndef BC_ORIGIN_FRESHNESS_H
#define BC_ORIGIN_FRESHNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest lifetime kept: memcached's relative exptime limit is 30
 * days, but we store absolute times; ten years is "forever enough". */
#define BC_ORIGIN_TTL_CAP (10u * 365u * 24u * 3600u)

typedef struct bc_origin_fresh {
    bool no_store;             /* no-store, no-cache, private, or a bad max-age */
    int64_t max_age;           /* -1 = absent */
    int64_t s_maxage;          /* -1 = absent */
    int64_t age;               /* Age header, 0 if absent */
    bool has_expires;
    int64_t expires;           /* unix seconds; -1 = not a date */
    int64_t date;              /* Date header, -1 = absent or not a date */
} bc_origin_fresh_t;

/* Starts (or restarts, for a new response) the reading. */
void bc_origin_fresh_init(bc_origin_fresh_t *f);

/*
 * Reads one header line, "Name: value" with or without its CRLF; lines
 * that are not about freshness are ignored.  line need not be
 * NUL-terminated.
 */
void bc_origin_fresh_header(bc_origin_fresh_t *f, const char *line, size_t len);

/*
 * The verdict at unix time now: false = do not store; true = store for
 * *ttl seconds (0 = no expiry, only when the default is 0 and the response
 * gave no lifetime).  default_ttl applies when the response says nothing;
 * max_ttl (0 = none) caps every lifetime.
 */
bool bc_origin_fresh_ttl(const bc_origin_fresh_t *f, int64_t now, uint32_t default_ttl,
                         uint32_t max_ttl, uint32_t *ttl);

/*
 * An HTTP-date (IMF-fixdate, RFC 850 or asctime form, as RFC 9110 5.6.7
 * requires a recipient to accept) as unix seconds; -1 when it is not one.
 * s[0..len) need not be NUL-terminated.
 */
int64_t bc_freshness_http_date(const char *s, size_t len);

#endif
