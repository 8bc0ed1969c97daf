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

bool
bc_wire_hex_valid(const char *s, size_t len, size_t n)
{
    if (s == NULL || len != n) return false;
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    }
    return true;
}

/* A nonce field of a struct: "" or a valid nonce. */
static bool
wire_nonce_field_ok(const char *nonce, size_t cap)
{
    size_t n = strnlen(nonce, cap);
    return n < cap && (n == 0 || bc_wire_hex_valid(nonce, n, BC_WIRE_NONCE_LEN));
}

size_t
bc_wire_peer_format(const bc_wire_peer_t *h, char *buf, size_t len)
{
    if (len > 0) buf[0] = '\0';
    if (h == NULL || !bc_wire_name_valid(h->name, strnlen(h->name, sizeof(h->name))) ||
        !wire_nonce_field_ok(h->nonce, sizeof(h->nonce))) {
        return 0;
    }
    int n = snprintf(buf, len, BC_WIRE_PEER_CMD " %s%s%s\r\n", h->name, h->nonce[0] ? " " : "",
                     h->nonce);
    if (n < 0 || (size_t)n >= len) {
        if (len > 0) buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

/* Splits p[0..end) at runs of spaces into at most max fields; returns how
 * many there are (max + 1 when there are more). */
static size_t
wire_fields(const char *p, const char *end, const char **tok, size_t *len, size_t max)
{
    size_t ntok = 0;
    for (;;) {
        while (p < end && *p == ' ') p++;
        if (p == end) break;
        if (ntok == max) return max + 1;
        tok[ntok] = p;
        while (p < end && *p != ' ') p++;
        len[ntok] = (size_t)(p - tok[ntok]);
        ntok++;
    }
    return ntok;
}

bc_status_t
bc_wire_peer_parse(const char *line, size_t len, bc_wire_peer_t *out)
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
    const char *tok[2];
    size_t tl[2];
    size_t ntok = wire_fields(p, end, tok, tl, 2);
    if (ntok < 1 || ntok > 2 || !bc_wire_name_valid(tok[0], tl[0])) return BC_EINVAL;
    if (ntok == 2 && !bc_wire_hex_valid(tok[1], tl[1], BC_WIRE_NONCE_LEN)) return BC_EINVAL;
    memcpy(out->name, tok[0], tl[0]);
    out->name[tl[0]] = '\0';
    size_t nl = ntok == 2 ? tl[1] : 0;
    if (nl > 0) memcpy(out->nonce, tok[1], nl);
    out->nonce[nl] = '\0';
    return BC_OK;
}

size_t
bc_wire_challenge_format(const bc_wire_challenge_t *c, char *buf, size_t len)
{
    if (len > 0) buf[0] = '\0';
    if (c == NULL || !bc_wire_name_valid(c->name, strnlen(c->name, sizeof(c->name))) ||
        !bc_wire_hex_valid(c->nonce, strnlen(c->nonce, sizeof(c->nonce)), BC_WIRE_NONCE_LEN) ||
        !bc_wire_hex_valid(c->proof, strnlen(c->proof, sizeof(c->proof)), BC_WIRE_PROOF_LEN)) {
        return 0;
    }
    int n = snprintf(buf, len, BC_WIRE_CHALLENGE " %s %s %s\r\n", c->name, c->nonce, c->proof);
    if (n < 0 || (size_t)n >= len) {
        if (len > 0) buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

bc_status_t
bc_wire_challenge_parse(const char *line, size_t len, bc_wire_challenge_t *out)
{
    const size_t wl = sizeof(BC_WIRE_CHALLENGE) - 1;
    if (line == NULL || len < wl || memcmp(line, BC_WIRE_CHALLENGE, wl) != 0 ||
        (len > wl && line[wl] != ' ' && line[wl] != '\r' && line[wl] != '\n')) {
        return BC_ENOTFOUND;
    }
    const char *p = line + wl, *end = line + wire_strip_eol(line, len);
    if (end < p) end = p;
    /* exactly " <name> <nonce> <proof>" */
    const char *tok[3];
    size_t tl[3], ntok = 0;
    while (ntok < 3) {
        if (p >= end || *p != ' ') return BC_EINVAL;
        p++;
        tok[ntok] = p;
        while (p < end && *p != ' ') p++;
        tl[ntok] = (size_t)(p - tok[ntok]);
        ntok++;
    }
    if (p != end || !bc_wire_name_valid(tok[0], tl[0]) ||
        !bc_wire_hex_valid(tok[1], tl[1], BC_WIRE_NONCE_LEN) ||
        !bc_wire_hex_valid(tok[2], tl[2], BC_WIRE_PROOF_LEN)) {
        return BC_EINVAL;
    }
    memcpy(out->name, tok[0], tl[0]);
    out->name[tl[0]] = '\0';
    memcpy(out->nonce, tok[1], tl[1]);
    out->nonce[tl[1]] = '\0';
    memcpy(out->proof, tok[2], tl[2]);
    out->proof[tl[2]] = '\0';
    return BC_OK;
}

size_t
bc_wire_auth_format(const char *proof, char *buf, size_t len)
{
    if (len > 0) buf[0] = '\0';
    if (proof == NULL || !bc_wire_hex_valid(proof, strlen(proof), BC_WIRE_PROOF_LEN)) return 0;
    int n = snprintf(buf, len, BC_WIRE_AUTH_CMD " %s\r\n", proof);
    if (n < 0 || (size_t)n >= len) {
        if (len > 0) buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

bc_status_t
bc_wire_auth_parse(const char *line, size_t len, const char **proof)
{
    const size_t wl = sizeof(BC_WIRE_AUTH_CMD) - 1;
    if (line == NULL || len < wl || memcmp(line, BC_WIRE_AUTH_CMD, wl) != 0 ||
        (len > wl && line[wl] != ' ' && line[wl] != '\r' && line[wl] != '\n')) {
        return BC_ENOTFOUND;
    }
    const char *p = line + wl, *end = line + wire_strip_eol(line, len);
    if (end < p) end = p;
    const char *tok[1];
    size_t tl[1];
    if (wire_fields(p, end, tok, tl, 1) != 1 ||
        !bc_wire_hex_valid(tok[0], tl[0], BC_WIRE_PROOF_LEN)) {
        return BC_EINVAL;
    }
    *proof = tok[0];
    return BC_OK;
}

static const struct {
    const char *line;
    const char *text;
} peer_auth_words[] = {
    [BC_WIRE_PEER_AUTH_NONE] = {NULL, NULL},
#define WIRE_PEER_AUTH_ROW(kind, text) \
    [BC_WIRE_PEER_AUTH_##kind] = {"CLIENT_ERROR " text "\r\n", text},
    BC_WIRE_PEER_AUTH_TABLE(WIRE_PEER_AUTH_ROW)
#undef WIRE_PEER_AUTH_ROW
};

#define PEER_AUTH_KINDS (sizeof(peer_auth_words) / sizeof(peer_auth_words[0]))

const char *
bc_wire_peer_auth_line(bc_wire_peer_auth_failure_t f)
{
    return f > BC_WIRE_PEER_AUTH_NONE && (size_t)f < PEER_AUTH_KINDS ? peer_auth_words[f].line
                                                                      : NULL;
}

bc_wire_peer_auth_failure_t
bc_wire_peer_auth_parse(const char *text, size_t n)
{
    for (size_t k = BC_WIRE_PEER_AUTH_NONE + 1; text != NULL && k < PEER_AUTH_KINDS; k++) {
        if (n == strlen(peer_auth_words[k].text) && memcmp(text, peer_auth_words[k].text, n) == 0) {
            return (bc_wire_peer_auth_failure_t)k;
        }
    }
    return BC_WIRE_PEER_AUTH_NONE;
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
        !bc_wire_name_valid(h->name, strnlen(h->name, sizeof(h->name))) ||
        !wire_nonce_field_ok(h->nonce, sizeof(h->nonce))) {
        return 0;
    }
    int n = snprintf(buf, len, BC_WIRE_REPLICATE_CMD " %" PRIu32 " %s %" PRIu64 " %s%s%s\r\n",
                     h->gid, nrid > 0 ? h->replid : "-", h->offset, h->name,
                     h->nonce[0] ? " " : "", h->nonce);
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
    const char *tok[5];
    size_t len[5];
    if (args == NULL) return BC_EINVAL;
    size_t ntok = wire_fields(args, args + n, tok, len, 5);
    if (ntok != 4 && ntok != 5) return BC_EINVAL;

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
    if (ntok == 5 && !bc_wire_hex_valid(tok[4], len[4], BC_WIRE_NONCE_LEN)) return BC_EINVAL;

    out->gid = (uint32_t)gid;
    out->offset = offset;
    memcpy(out->replid, tok[1], none ? 0 : len[1]);
    out->replid[none ? 0 : len[1]] = '\0';
    memcpy(out->name, tok[3], len[3]);
    out->name[len[3]] = '\0';
    size_t nl = ntok == 5 ? len[4] : 0;
    if (nl > 0) memcpy(out->nonce, tok[4], nl);
    out->nonce[nl] = '\0';
    return BC_OK;
}
