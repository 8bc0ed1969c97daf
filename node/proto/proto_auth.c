/*
 * proto_auth.c -- memcached's ASCII authentication (-Y FILE): a connection
 * must authenticate before any command, with a "set" whose data block is
 * "<user> <password>", as memcached 1.6.18 does (proto_text.c,
 * try_read_command_asciiauth); off by default.
 *
 * HOW (checked side by side with memcached 1.6.18:
 * tests/integration/test_memcached_auth.py)
 *
 *   unauthenticated, a line:  fewer than 2 bytes buffered: wait;
 *                             no newline within 2048 bytes: close, silently;
 *     "set <key> <flags> <exptime> <bytes> ..." (five tokens or more,
 *     "set" exactly, <bytes> as strtoul reads it; key, flags and exptime
 *     ignored)                 --> the data block: <bytes> + 2 bytes
 *     anything else            --> "CLIENT_ERROR unauthenticated"
 *   the data block:           not ending in CRLF: "CLIENT_ERROR bad command
 *                             line termination"; fewer than two tokens:
 *                             "CLIENT_ERROR bad authentication token
 *                             format"; "<user> <password>" (further tokens
 *                             ignored) of the file: "STORED", the
 *                             connection is authenticated; otherwise
 *                             "CLIENT_ERROR authentication failure"
 *
 *   noreply is ignored (memcached answers all the same); `stats` counts
 *   auth_cmds and auth_errors, `stats settings` shows auth_enabled_ascii.
 *
 *   Where we differ, on purpose:
 *   - a pipeline sent before authenticating gets a reply for each command;
 *     memcached 1.6.18 overwrites each unauthenticated reply with the next
 *     one and sends only the last;
 *   - a data block is not buffered: its first AUTH_KEEP bytes are kept
 *     (a user and a password are at most 255 bytes together) and the rest
 *     is read and dropped, so a "set x 0 0 4000000000" costs nothing but
 *     the wait; memcached buffers it (and its int arithmetic wraps
 *     past 2^31);
 *   - the file is read by common/bc_secret.h (bc_secret_rules_mcauth):
 *     it must not be readable by other users, may hold comments and blank
 *     lines, and more than 8 entries are refused instead of truncated;
 *     passwords are compared in constant time (bc_secret_match on
 *     "user:password"; a presented user holding ':' never matches, as in
 *     memcached, whose users end at the first ':').
 *
 * BEHAVIOR: another node's handshake (proto_peer.c) is let through before
 * authentication when this node holds the cluster secret: a peer proves
 * that secret instead of a user password, and the requests it forwards come
 * from clients that authenticated on the node forwarding them.  Without a
 * cluster secret a handshake is just another unauthenticated command.
 *
 * THREADS
 *   The user file (bc_proto_auth_t) is shared by every worker, reloaded on
 *   SIGHUP under its rwlock; a connection's state is its worker's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bc_log.h"
#include "bc_secret.h"
#include "proto/proto_int.h"

#define AUTH_LINE_MAX 2048         /* memcached: junk beyond this without a newline */
#define AUTH_KEEP     600          /* payload bytes kept: a user and a password fit */

struct bc_proto_auth {
    char *path;
    pthread_rwlock_t lock;         /* guards users */
    bc_secret_t users;             /* "user:password" values */
};

/* A data block being received (the connection's). */
struct bc_proto_auth_conn {
    uint64_t need;                 /* bytes still expected, CRLF included */
    uint64_t total;                /* the block's length, CRLF included */
    size_t kept;                   /* bytes of buf filled */
    char last[2];                  /* the last two bytes seen */
    char buf[AUTH_KEEP + 1];
};

/* ---- the file ---- */

bc_status_t
bc_proto_auth_open(const char *path, bc_proto_auth_t **out, char *err, size_t errlen)
{
    bc_proto_auth_t *a = calloc(1, sizeof(*a));
    *out = NULL;
    if (a == NULL || (a->path = strdup(path)) == NULL) {
        free(a);
        return BC_ENOMEM;
    }
    bc_status_t st = bc_secret_load(path, &bc_secret_rules_mcauth, &a->users, err, errlen);
    if (st != BC_OK) {
        free(a->path);
        free(a);
        return st;
    }
    pthread_rwlock_init(&a->lock, NULL);
    *out = a;
    return BC_OK;
}

bc_status_t
bc_proto_auth_reload(bc_proto_auth_t *a, char *err, size_t errlen)
{
    bc_secret_t s, old;
    if (a == NULL) return BC_OK;
    bc_status_t st = bc_secret_load(a->path, &bc_secret_rules_mcauth, &s, err, errlen);
    if (st != BC_OK) return st;
    pthread_rwlock_wrlock(&a->lock);
    old = a->users;
    a->users = s;
    pthread_rwlock_unlock(&a->lock);
    bc_secret_clear(&old);
    return BC_OK;
}

void
bc_proto_auth_free(bc_proto_auth_t *a)
{
    if (a == NULL) return;
    bc_secret_clear(&a->users);
    pthread_rwlock_destroy(&a->lock);
    free(a->path);
    free(a);
}

const char *
bc_proto_auth_source(const bc_proto_auth_t *a)
{
    return a != NULL ? a->path : "no";
}

bool
bc_proto_auth_check(bc_proto_auth_t *a, const char *user, size_t ulen, const char *pass,
                    size_t plen)
{
    char cand[2 * AUTH_KEEP + 2];
    if (a == NULL || ulen == 0 || plen == 0 || ulen + plen + 1 >= sizeof(cand) ||
        memchr(user, ':', ulen) != NULL) {
        return false;
    }
    memcpy(cand, user, ulen);
    cand[ulen] = ':';
    memcpy(cand + ulen + 1, pass, plen);
    pthread_rwlock_rdlock(&a->lock);
    bool ok = bc_secret_match(&a->users, cand, ulen + 1 + plen);
    pthread_rwlock_unlock(&a->lock);
    memset(cand, 0, sizeof(cand));
    return ok;
}

/* ---- one connection ---- */

/*
 * memcached's tokenize_command on s[0..n) up to its first NUL: runs of
 * spaces separate tokens.  Fills at most max tokens; returns how many
 * there are (more than max is reported as max + 1).
 */
static size_t
auth_tokens(const char *s, size_t n, const char **tok, size_t *len, size_t max)
{
    const char *nul = memchr(s, '\0', n);
    const char *end = nul != NULL ? nul : s + n, *p = s;
    size_t ntok = 0;
    while (p < end) {
        while (p < end && *p == ' ') p++;
        if (p == end) break;
        const char *t = p;
        while (p < end && *p != ' ') p++;
        if (ntok == max) return max + 1;
        tok[ntok] = t;
        len[ntok] = (size_t)(p - t);
        ntok++;
    }
    return ntok;
}

/* memcached's safe_strtoul on a token: strtoul's syntax (leading
 * whitespace, a sign), a whitespace or the end after the digits, no '-'
 * on a value that only a negative number gives, truncated to 32 bits. */
static bool
auth_strtoul(const char *t, size_t n, uint32_t *out)
{
    char s[64];
    if (n >= sizeof(s)) {
        /* strtoul would overflow anyway (ERANGE), unless it is all zeros
         * and spaces -- too odd to honour */
        return false;
    }
    memcpy(s, t, n);
    s[n] = '\0';
    char *endptr = NULL;
    errno = 0;
    unsigned long l = strtoul(s, &endptr, 10);
    if (errno == ERANGE || endptr == s) return false;
    bool space = *endptr == ' ' || (*endptr >= '\t' && *endptr <= '\r');
    if (!space && *endptr != '\0') return false;
    if ((long)l < 0 && strchr(s, '-') != NULL) return false;
    *out = (uint32_t)l;
    return true;
}

/* The data block is in: the verdict. */
static void
auth_finish(bc_proto_conn_t *pc)
{
    bc_proto_auth_conn_t *ac = pc->auth;
    pc->auth = NULL;
    if (ac->total < 2 || ac->last[0] != '\r' || ac->last[1] != '\n') {
        REPLY(pc, "CLIENT_ERROR bad command line termination\r\n");
        free(ac);
        return;
    }
    /* The payload without its CRLF; only what was kept of it. */
    uint64_t plen = ac->total - 2;
    size_t have = plen < ac->kept ? (size_t)plen : ac->kept;
    const char *tok[2];
    size_t len[2];
    size_t ntok = auth_tokens(ac->buf, have, tok, len, 2);
    if (ntok < 2) {
        REPLY(pc, "CLIENT_ERROR bad authentication token format\r\n");
        free(ac);
        return;
    }
    /* A password cut off by the part not kept cannot be one of the file. */
    bool cut = plen > have && tok[1] + len[1] == ac->buf + have;
    bc_stats_incr(pc->stats, auth_cmds);
    if (!cut && bc_proto_auth_check(pc->env->auth, tok[0], len[0], tok[1], len[1])) {
        pc->authenticated = true;
        REPLY(pc, "STORED\r\n");
        log_debug("connection %d: authenticated as %.*s", pc->id, (int)len[0], tok[0]);
    } else {
        bc_stats_incr(pc->stats, auth_errors);
        REPLY(pc, "CLIENT_ERROR authentication failure\r\n");
        log_debug("connection %d: authentication failure", pc->id);
    }
    memset(ac, 0, sizeof(*ac));
    free(ac);
}

/* One command line of an unauthenticated connection (without its "\n"). */
static bc_status_t
auth_line(bc_proto_conn_t *pc, const char *line, size_t n)
{
    /* Another node: it proves the cluster secret instead (BEHAVIOR). */
    if (pc->env->peer_auth != NULL &&
        (pc->hs != NULL || bc__proto_peer_line_is_handshake(line, n))) {
        bc_status_t st = BC_OK;
        if (bc__proto_peer_line(pc, line, n, &st)) return st;
    }
    const char *tok[5];
    size_t len[5];
    uint32_t size;
    size_t ntok = auth_tokens(line, n, tok, len, 5);
    if (ntok < 5 || len[0] != 3 || memcmp(tok[0], "set", 3) != 0 ||
        !auth_strtoul(tok[4], len[4], &size)) {
        REPLY(pc, "CLIENT_ERROR unauthenticated\r\n");
        return BC_OK;
    }
    pc->auth = calloc(1, sizeof(*pc->auth));
    if (pc->auth == NULL) {
        pc->oom = true;
        return BC_OK;
    }
    pc->auth->total = pc->auth->need = (uint64_t)size + 2;
    return BC_OK;
}

size_t
bc__proto_auth_process(bc_proto_conn_t *pc, const char *buf, size_t len, bc_status_t *st)
{
    size_t pos = 0;
    *st = BC_OK;
    while (pos < len && !pc->authenticated && !pc->oom && *st == BC_OK) {
        bc_proto_auth_conn_t *ac = pc->auth;
        if (ac != NULL) {
            size_t n = len - pos < ac->need ? len - pos : (size_t)ac->need;
            if (ac->kept < AUTH_KEEP) {
                size_t k = n < AUTH_KEEP - ac->kept ? n : AUTH_KEEP - ac->kept;
                memcpy(ac->buf + ac->kept, buf + pos, k);
                ac->kept += k;
            }
            if (n >= 2) {
                ac->last[0] = buf[pos + n - 2];
                ac->last[1] = buf[pos + n - 1];
            } else if (n == 1) {
                ac->last[0] = ac->last[1];
                ac->last[1] = buf[pos];
            }
            pos += n;
            ac->need -= n;
            if (ac->need == 0) auth_finish(pc);
            continue;
        }
        size_t avail = len - pos;
        if (avail < 2) break;              /* memcached: no command is this short */
        if (pc->out.pending >= pc->out_limit) break;   /* backpressure, as for commands */
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', avail);
        if (nl == NULL) {
            if (avail > AUTH_LINE_MAX) {
                log_debug("connection %d: %zu bytes without a newline before authenticating, "
                          "closing", pc->id, avail);
                *st = BC_ECLOSED;
            }
            break;
        }
        pos += (size_t)(nl - line) + 1;
        *st = auth_line(pc, line, (size_t)(nl - line));
    }
    return pos;
}

void
bc__proto_auth_release(bc_proto_conn_t *pc)
{
    free(pc->auth);
    pc->auth = NULL;
}
