/*
 * freshness.c -- Cache-Control, Expires, Date and Age read into a
 * lifetime; see freshness.h for the rules.
 */
#include "origin/freshness.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#define DATE_MAX 64

void
bc_origin_fresh_init(bc_origin_fresh_t *f)
{
    memset(f, 0, sizeof(*f));
    f->max_age = -1;
    f->s_maxage = -1;
    f->expires = -1;
    f->date = -1;
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* s[0..n) trimmed of spaces and tabs at both ends. */
static void
trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && (is_space((*s)[*n - 1]) || (*s)[*n - 1] == '\r' || (*s)[*n - 1] == '\n')) {
        (*n)--;
    }
}

/* Digits only, saturating at BC_ORIGIN_TTL_CAP; -1 for anything else. */
static int64_t
delta_seconds(const char *s, size_t n)
{
    int64_t v = 0;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    if (n == 0) return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (v < (int64_t)BC_ORIGIN_TTL_CAP) v = v * 10 + (s[i] - '0');
    }
    return v > (int64_t)BC_ORIGIN_TTL_CAP ? (int64_t)BC_ORIGIN_TTL_CAP : v;
}

static bool
name_is(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && strncasecmp(s, lit, n) == 0;
}

/* One Cache-Control value: directives separated by commas. */
static void
cache_control(bc_origin_fresh_t *f, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* one directive: up to a comma outside quotes */
        size_t start = i;
        bool quoted = false;
        while (i < n && (quoted || v[i] != ',')) {
            if (v[i] == '"') quoted = !quoted;
            i++;
        }
        const char *d = v + start;
        size_t dn = i - start;
        if (i < n) i++;            /* the comma */
        trim(&d, &dn);
        if (dn == 0) continue;
        const char *eq = memchr(d, '=', dn);
        const char *name = d, *arg = NULL;
        size_t nn = eq != NULL ? (size_t)(eq - d) : dn, an = 0;
        if (eq != NULL) {
            arg = eq + 1;
            an = dn - nn - 1;
            trim(&arg, &an);
        }
        trim(&name, &nn);
        if (name_is(name, nn, "no-store") || name_is(name, nn, "no-cache") ||
            name_is(name, nn, "private")) {
            /* no-cache="field" and private="field" only concern those
             * fields for some caches; we cannot serve a value without
             * them, so we do not keep it at all. */
            f->no_store = true;
        } else if (name_is(name, nn, "max-age") || name_is(name, nn, "s-maxage")) {
            int64_t secs = arg != NULL ? delta_seconds(arg, an) : -1;
            if (secs < 0) {
                f->no_store = true;    /* malformed: stale */
                continue;
            }
            int64_t *slot = name_is(name, nn, "max-age") ? &f->max_age : &f->s_maxage;
            /* Repeated: the most restrictive. */
            if (*slot < 0 || secs < *slot) *slot = secs;
        }
    }
}

void
bc_origin_fresh_header(bc_origin_fresh_t *f, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL) return;
    const char *name = line, *v = colon + 1;
    size_t nn = (size_t)(colon - line), vn = len - nn - 1;
    trim(&name, &nn);
    trim(&v, &vn);
    if (name_is(name, nn, "cache-control")) {
        cache_control(f, v, vn);
    } else if (name_is(name, nn, "expires")) {
        int64_t t = bc_freshness_http_date(v, vn);
        /* Two Expires: the earlier (a non-date counts as the past). */
        if (!f->has_expires || t < f->expires) f->expires = t;
        f->has_expires = true;
    } else if (name_is(name, nn, "date")) {
        f->date = bc_freshness_http_date(v, vn);
    } else if (name_is(name, nn, "age")) {
        int64_t a = delta_seconds(v, vn);
        if (a > f->age) f->age = a;
    }
}

bool
bc_origin_fresh_ttl(const bc_origin_fresh_t *f, int64_t now, uint32_t default_ttl,
                    uint32_t max_ttl, uint32_t *ttl)
{
    int64_t life;
    if (f->no_store) return false;
    if (f->s_maxage >= 0) {
        life = f->s_maxage - f->age;
    } else if (f->max_age >= 0) {
        life = f->max_age - f->age;
    } else if (f->has_expires) {
        if (f->expires < 0) return false;
        life = f->expires - (f->date >= 0 ? f->date : now) - f->age;
    } else {
        life = default_ttl;
        if (life == 0) {
            /* the configured default: no expiry (capped if asked) */
            *ttl = max_ttl;
            return true;
        }
    }
    if (life <= 0) return false;
    if (life > (int64_t)BC_ORIGIN_TTL_CAP) life = BC_ORIGIN_TTL_CAP;
    if (max_ttl != 0 && life > (int64_t)max_ttl) life = max_ttl;
    *ttl = (uint32_t)life;
    return true;
}

/* ---- HTTP-date ---- */

typedef struct cursor {
    const char *p, *end;
} cursor_t;

static bool
eat(cursor_t *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return false;
    c->p += n;
    return true;
}

/* Exactly n digits. */
static bool
digits(cursor_t *c, int n, int *out)
{
    int v = 0;
    if (c->end - c->p < n) return false;
    for (int i = 0; i < n; i++) {
        if (c->p[i] < '0' || c->p[i] > '9') return false;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    *out = v;
    return true;
}

static int
month(cursor_t *c)
{
    static const char *const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++) {
        if (eat(c, names[i])) return i;
    }
    return -1;
}

static bool
day_name(cursor_t *c, bool long_form)
{
    static const char *const short_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const long_names[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                             "Friday", "Saturday", "Sunday"};
    for (int i = 0; i < 7; i++) {
        if (eat(c, long_form ? long_names[i] : short_names[i])) return true;
    }
    return false;
}

static bool
clock_time(cursor_t *c, struct tm *tm)
{
    return digits(c, 2, &tm->tm_hour) && eat(c, ":") && digits(c, 2, &tm->tm_min) &&
           eat(c, ":") && digits(c, 2, &tm->tm_sec);
}

static int64_t
to_unix(struct tm *tm)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (tm->tm_mday < 1 || tm->tm_mday > mdays[tm->tm_mon] || tm->tm_hour > 23 ||
        tm->tm_min > 59 || tm->tm_sec > 60) {
        return -1;
    }
    time_t t = timegm(tm);
    return t < 0 ? -1 : (int64_t)t;
}

int64_t
bc_freshness_http_date(const char *s, size_t len)
{
    struct tm tm;
    cursor_t c;
    int y;

    while (len > 0 && is_space(*s)) {
        s++;
        len--;
    }
    while (len > 0 && is_space(s[len - 1])) len--;
    if (len == 0 || len > DATE_MAX) return -1;

    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    memset(&tm, 0, sizeof(tm));
    c = (cursor_t){s, s + len};
    if (day_name(&c, false) && eat(&c, ", ") && digits(&c, 2, &tm.tm_mday) && eat(&c, " ") &&
        (tm.tm_mon = month(&c)) >= 0 && eat(&c, " ") && digits(&c, 4, &y) && eat(&c, " ") &&
        clock_time(&c, &tm) && eat(&c, " GMT") && c.p == c.end) {
        tm.tm_year = y - 1900;
        return to_unix(&tm);
    }
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
    memset(&tm, 0, sizeof(tm));
    c = (cursor_t){s, s + len};
    if (day_name(&c, true) && eat(&c, ", ") && digits(&c, 2, &tm.tm_mday) && eat(&c, "-") &&
        (tm.tm_mon = month(&c)) >= 0 && eat(&c, "-") && digits(&c, 2, &y) && eat(&c, " ") &&
        clock_time(&c, &tm) && eat(&c, " GMT") && c.p == c.end) {
        /* RFC 9110 5.6.7: a two-digit year more than 50 years ahead is in
         * the past century; with 70 as the pivot that holds until 2020+50. */
        tm.tm_year = y < 70 ? y + 100 : y;
        return to_unix(&tm);
    }
    /* asctime: Sun Nov  6 08:49:37 1994 */
    memset(&tm, 0, sizeof(tm));
    c = (cursor_t){s, s + len};
    if (day_name(&c, false) && eat(&c, " ") && (tm.tm_mon = month(&c)) >= 0 && eat(&c, " ")) {
        if (eat(&c, " ")) {
            if (!digits(&c, 1, &tm.tm_mday)) return -1;
        } else if (!digits(&c, 2, &tm.tm_mday)) {
            return -1;
        }
        if (eat(&c, " ") && clock_time(&c, &tm) && eat(&c, " ") && digits(&c, 4, &y) &&
            c.p == c.end) {
            tm.tm_year = y - 1900;
            return to_unix(&tm);
        }
    }
    return -1;
}
