/*
 * bc_wire.c -- see bc_wire.h.
 *
 * Formatters use snprintf: none of these lines is on a hot path (a
 * refusal answers a misrouted request, a handshake opens a connection).
 * Parsers walk the bytes once with wire_take_u64, which reads exactly the
 * decimals a formatter writes (no sign, no leading zero, at most
 * UINT64_MAX), so parse(format(x)) == x and format(parse(s)) == s for
 * every s a parser accepts -- the round trip tests/unit/test_wire.c checks.
 */
#include "bc_wire.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bc_cluster.h"

/* ---- shared pieces ---- */

/*
 * Reads one canonical decimal at *p (before end): "0" or a non-zero digit
 * then digits, at most max.  Advances *p past it.  False (and *p
 * unchanged) when there is none.
 */
static bool
wire_take_u64(const char **p, const char *end, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9') return false;
    if (*s == '0') {
        s++;
    } else {
        while (s < end && *s >= '0' && *s <= '9') {
            uint64_t d = (uint64_t)(*s - '0');
            if (v > (UINT64_MAX - d) / 10) return false;
            v = v * 10 + d;
            s++;
        }
    }
    if (s < end && *s >= '0' && *s <= '9') return false;   /* "01" */
    if (v > max) return false;
    *p = s;
    *out = v;
    return true;
}

/* Consumes exactly one space. */
static bool
wire_take_space(const char **p, const char *end)
{
    if (*p >= end || **p != ' ') return false;
    (*p)++;
    return true;
}

/* The line without its "\r\n", "\n" or "\r" ending. */
static size_t
wire_strip_eol(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n') len--;
    if (len > 0 && line[len - 1] == '\r') len--;
    return len;
}

/* ---- refusals ---- */

static const struct {
    const char *word;
    size_t len;
    bool has_gid;
} refusal_words[] = {
    [BC_WIRE_REFUSAL_NONE] = {NULL, 0, false},
#define WIRE_REFUSAL_ROW(kind, word, has_gid) \
    [BC_WIRE_REFUSAL_##kind] = {word, sizeof(word) - 1, has_gid},
    BC_WIRE_REFUSAL_TABLE(WIRE_REFUSAL_ROW)
#undef WIRE_REFUSAL_ROW
};

#define REFUSAL_KINDS (sizeof(refusal_words) / sizeof(refusal_words[0]))

/* The longest refusal text: the longest word and three widest numbers. */
#define REFUSAL_TEXT_MAX (sizeof("NOT_ENOUGH_IN_SYNC") - 1 + 3 + 10 + 10 + 20)
_Static_assert(sizeof("SERVER_ERROR ") - 1 + REFUSAL_TEXT_MAX + 3 <= BC_WIRE_REFUSAL_MAX,
               "BC_WIRE_REFUSAL_MAX holds the longest refusal line");

size_t
bc_wire_refusal_format(const bc_wire_refusal_t *r, char *buf, size_t len)
{
    int n = -1;
    if (len > 0) buf[0] = '\0';
    if (r == NULL || r->kind <= BC_WIRE_REFUSAL_NONE || (size_t)r->kind >= REFUSAL_KINDS) return 0;
    const char *word = refusal_words[r->kind].word;
    if (refusal_words[r->kind].has_gid) {
        n = snprintf(buf, len, "SERVER_ERROR %s %" PRIu32 " %" PRIu32 " %" PRIu64 "\r\n", word,
                     r->bucket, r->gid, r->epoch);
    } else {
        n = snprintf(buf, len, "SERVER_ERROR %s %" PRIu32 " %" PRIu64 "\r\n", word, r->bucket,
                     r->epoch);
    }
    if (n < 0 || (size_t)n >= len) {
        if (len > 0) buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

bc_wire_refusal_kind_t
bc_wire_refusal_parse(const char *text, size_t n, bc_wire_refusal_t *out)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL || n > REFUSAL_TEXT_MAX) return BC_WIRE_REFUSAL_NONE;
    const char *end = text + n;
    for (size_t k = BC_WIRE_REFUSAL_NONE + 1; k < REFUSAL_KINDS; k++) {
        size_t wl = refusal_words[k].len;
        if (n <= wl || memcmp(text, refusal_words[k].word, wl) != 0 || text[wl] != ' ') continue;
        const char *p = text + wl + 1;
        uint64_t bucket, gid = 0, epoch;
        if (!wire_take_u64(&p, end, UINT32_MAX, &bucket) || !wire_take_space(&p, end)) break;
        if (refusal_words[k].has_gid &&
            (!wire_take_u64(&p, end, UINT32_MAX, &gid) || !wire_take_space(&p, end))) {
            break;
        }
        if (!wire_take_u64(&p, end, UINT64_MAX, &epoch) || p != end) break;
        out->kind = (bc_wire_refusal_kind_t)k;
        out->bucket = (uint32_t)bucket;
        out->gid = (uint32_t)gid;
        out->epoch = epoch;
        return out->kind;
    }
    return BC_WIRE_REFUSAL_NONE;
}

/* ---- forwarding failures ---- */

static const struct {
    const char *line;
    const char *text;
} fwd_words[] = {
    [BC_WIRE_FWD_NONE] = {NULL, NULL},
#define WIRE_FWD_ROW(kind, text) [BC_WIRE_FWD_##kind] = {"SERVER_ERROR " text "\r\n", text},
    BC_WIRE_FWD_TABLE(WIRE_FWD_ROW)
#undef WIRE_FWD_ROW
};

#define FWD_KINDS (sizeof(fwd_words) / sizeof(fwd_words[0]))

const char *
bc_wire_fwd_failure_line(bc_wire_fwd_failure_t f)
{
    return f > BC_WIRE_FWD_NONE && (size_t)f < FWD_KINDS ? fwd_words[f].line : NULL;
}

const char *
bc_wire_fwd_failure_text(bc_wire_fwd_failure_t f)
{
    return f > BC_WIRE_FWD_NONE && (size_t)f < FWD_KINDS ? fwd_words[f].text : NULL;
}

bc_wire_fwd_failure_t
bc_wire_fwd_failure_parse(const char *text, size_t n)
{
    for (size_t k = BC_WIRE_FWD_NONE + 1; text != NULL && k < FWD_KINDS; k++) {
        if (n == strlen(fwd_words[k].text) && memcmp(text, fwd_words[k].text, n) == 0) {
            return (bc_wire_fwd_failure_t)k;
        }
    }
    return BC_WIRE_FWD_NONE;
}

/* ---- peer handshakes ---- */

bool
bc_wire_name_valid(const char *name, size_t n)
{
    if (name == NULL || n == 0 || n > BC_WIRE_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f) return false;
    }
    return true;
}

size_t
bc_wire_peer_format(const char *name, char *buf, size_t len)
{
    if (len > 0) buf[0] = '\0';
    if (name == NULL || !bc_wire_name_valid(name, strlen(name))) return 0;
    int n = snprintf(buf, len, BC_WIRE_PEER_CMD " %s\r\n", name);
    if (n < 0 || (size_t)n >= len) {
        if (len > 0) buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

bc_status_t
bc_wire_peer_parse(const char *line, size_t len, const char **name, size_t *nname)
{
    const size_t wl = sizeof(BC_WIRE_PEER_CMD) - 1;
    /* The word, then the line's end, a space or a CR: "bucketcache_peerX"
     * is another (unknown) command. */
    if (line == NULL || len < wl || memcmp(line, BC_WIRE_PEER_CMD, wl) != 0 ||
        (len > wl && line[wl] != ' ' && line[wl] != '\r' && line[wl] != '\n')) {
        return BC_ENOTFOUND;
    }
    const char *p = line + wl, *end = line + wire_strip_eol(line, len);
    if (end < p) end = p;
    while (p < end && *p == ' ') p++;
    while (end > p && end[-1] == ' ') end--;
    if (!bc_wire_name_valid(p, (size_t)(end - p))) return BC_EINVAL;
    *name = p;
    *nname = (size_t)(end - p);
    return BC_OK;
}

/* A replication id as a handshake carries it: 1..BC_FRAME_REPLID_MAX
 * printable bytes, "-" excepted (it means "none"). */
static bool
wire_replid_valid(const char *s, size_t n)
{
    if (n == 0 || n > BC_FRAME_REPLID_MAX || (n == 1 && s[0] == '-')) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) return false;
    }
    return true;
}

size_t
bc_wire_replicate_format(const bc_wire_replicate_t *h, char *buf, size_t len)
{
    if (len > 0) buf[0] = '\0';
    size_t nrid = strnlen(h->replid, sizeof(h->replid));
    if (h->gid == 0 || h->gid > BC_GROUP_MAX_GID || nrid == sizeof(h->replid) ||
        (nrid > 0 && !wire_replid_valid(h->replid, nrid)) ||
        !bc_wire_name_valid(h->name, strnlen(h->name, sizeof(h->name)))) {
        return 0;
    }
    int n = snprintf(buf, len, BC_WIRE_REPLICATE_CMD " %" PRIu32 " %s %" PRIu64 " %s\r\n", h->gid,
                     nrid > 0 ? h->replid : "-", h->offset, h->name);
    if (n < 0 || (size_t)n >= len) {
        if (len > 0) buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

bc_status_t
bc_wire_replicate_match(const char *line, size_t len, const char **args, size_t *nargs)
{
    const size_t wl = sizeof(BC_WIRE_REPLICATE_CMD) - 1;
    if (line == NULL || len <= wl + 1 || memcmp(line, BC_WIRE_REPLICATE_CMD " ", wl + 1) != 0) {
        return BC_ENOTFOUND;
    }
    size_t end = wire_strip_eol(line, len);
    *args = line + wl + 1;
    *nargs = end > wl + 1 ? end - (wl + 1) : 0;
    return BC_OK;
}

bc_status_t
bc_wire_replicate_parse(const char *args, size_t n, bc_wire_replicate_t *out)
{
    const char *tok[4];
    size_t len[4];
    int ntok = 0;
    const char *p = args, *end = args + n;
    if (args == NULL) return BC_EINVAL;
    for (;;) {
        while (p < end && *p == ' ') p++;
        if (p == end) break;
        if (ntok == 4) return BC_EINVAL;
        tok[ntok] = p;
        while (p < end && *p != ' ') p++;
        len[ntok] = (size_t)(p - tok[ntok]);
        ntok++;
    }
    if (ntok != 4) return BC_EINVAL;

    uint64_t gid, offset;
    const char *q = tok[0];
    if (!wire_take_u64(&q, tok[0] + len[0], BC_GROUP_MAX_GID, &gid) || q != tok[0] + len[0] ||
        gid == 0) {
        return BC_EINVAL;
    }
    q = tok[2];
    if (!wire_take_u64(&q, tok[2] + len[2], UINT64_MAX, &offset) || q != tok[2] + len[2]) {
        return BC_EINVAL;
    }
    bool none = len[1] == 1 && tok[1][0] == '-';
    if (!none && !wire_replid_valid(tok[1], len[1])) return BC_EINVAL;
    if (!bc_wire_name_valid(tok[3], len[3])) return BC_EINVAL;

    out->gid = (uint32_t)gid;
    out->offset = offset;
    memcpy(out->replid, tok[1], none ? 0 : len[1]);
    out->replid[none ? 0 : len[1]] = '\0';
    memcpy(out->name, tok[3], len[3]);
    out->name[len[3]] = '\0';
    return BC_OK;
}
