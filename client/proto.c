/*
 * proto.c -- see proto.h.  Request lines are assembled with memcpy and
 * bc_mc_u64_to_dec rather than snprintf: they are built on every call of
 * the hot path.  Refusals are parsed strictly (exact words, decimal fields,
 * nothing extra), because a misread refusal would send the retry loop the
 * wrong way; anything else is an ordinary SERVER_ERROR.
 */
#include "proto.h"

#include <string.h>

#include "bc_mcproto.h"

bool
bc__key_valid(const void *key, size_t klen)
{
    if (key == NULL || klen == 0 || klen > BC_MC_KEY_MAX_LEN) return false;
    const unsigned char *p = key;
    for (size_t i = 0; i < klen; i++) {
        if (p[i] <= 0x20 || p[i] == 0x7f) return false;
    }
    return true;
}

/* Reads one decimal field of at most 20 digits; false if not a number. */
static bool
proto_take_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    size_t digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
        s++;
        digits++;
    }
    if (digits == 0) return false;
    if (s < end) {
        if (*s != ' ') return false;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

bc__refusal_kind_t
bc__refusal_parse(const char *text, size_t n, bc__refusal_t *out)
{
    static const struct {
        const char *word;
        size_t len;
        bc__refusal_kind_t kind;
        int fields;
    } kinds[] = {
        {"MOVED ", 6, BC__REFUSAL_MOVED, 3},
        {"NO_OWNER ", 9, BC__REFUSAL_NO_OWNER, 2},
        {"READONLY ", 9, BC__REFUSAL_READONLY, 2},
        {"NOT_PRIMARY ", 12, BC__REFUSAL_NOT_PRIMARY, 3},
    };
    memset(out, 0, sizeof(*out));
    if (text == NULL) return BC__REFUSAL_NONE;
    const char *end = text + n;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (n <= kinds[k].len || memcmp(text, kinds[k].word, kinds[k].len) != 0) continue;
        const char *p = text + kinds[k].len;
        uint64_t f[3];
        for (int i = 0; i < kinds[k].fields; i++) {
            if (p >= end || !proto_take_u64(&p, end, &f[i])) return BC__REFUSAL_NONE;
        }
        if (p != end || end[-1] == ' ') return BC__REFUSAL_NONE;
        if (f[0] > UINT32_MAX) return BC__REFUSAL_NONE;
        out->bucket = (uint32_t)f[0];
        if (kinds[k].fields == 3) {
            if (f[1] > UINT32_MAX) return BC__REFUSAL_NONE;
            out->gid = (uint32_t)f[1];
            out->epoch = f[2];
        } else {
            out->epoch = f[1];
        }
        out->kind = kinds[k].kind;
        return out->kind;
    }
    return BC__REFUSAL_NONE;
}

bc__fwd_failure_t
bc__fwd_failure_parse(const char *text, size_t n)
{
    static const struct {
        const char *text;
        bc__fwd_failure_t kind;
    } known[] = {
        {BC_MC_FWD_UNSENT, BC__FWD_UNSENT},
        {BC_MC_FWD_IN_DOUBT, BC__FWD_IN_DOUBT},
        {BC_MC_FWD_TIMEOUT, BC__FWD_IN_DOUBT},
    };
    for (size_t i = 0; text != NULL && i < sizeof(known) / sizeof(known[0]); i++) {
        size_t len = strlen(known[i].text);
        if (n == len && memcmp(text, known[i].text, len) == 0) return known[i].kind;
    }
    return BC__FWD_NONE;
}

static char *
proto_put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *
proto_put_u64(char *p, uint64_t v)
{
    return p + bc_mc_u64_to_dec(v, p);
}

static char *
proto_put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return proto_put_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return proto_put_u64(p, (uint64_t)v);
}

size_t
bc__fmt_storage(char *buf, const char *cmd, const void *key, size_t klen, uint32_t flags,
                int64_t exptime, size_t vlen)
{
    char *p = proto_put(buf, cmd, strlen(cmd));
    *p++ = ' ';
    p = proto_put(p, key, klen);
    *p++ = ' ';
    p = proto_put_u64(p, flags);
    *p++ = ' ';
    p = proto_put_i64(p, exptime);
    *p++ = ' ';
    p = proto_put_u64(p, vlen);
    p = proto_put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

size_t
bc__fmt_cas(char *buf, const void *key, size_t klen, uint32_t flags, int64_t exptime,
            size_t vlen, uint64_t cas)
{
    size_t n = bc__fmt_storage(buf, "cas", key, klen, flags, exptime, vlen) - 2;  /* no CRLF */
    char *p = buf + n;
    *p++ = ' ';
    p = proto_put_u64(p, cas);
    p = proto_put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

size_t
bc__fmt_key_cmd(char *buf, const char *cmd, const void *key, size_t klen)
{
    char *p = proto_put(buf, cmd, strlen(cmd));
    *p++ = ' ';
    p = proto_put(p, key, klen);
    p = proto_put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

size_t
bc__fmt_touch(char *buf, const void *key, size_t klen, int64_t exptime)
{
    char *p = proto_put(buf, "touch ", 6);
    p = proto_put(p, key, klen);
    *p++ = ' ';
    p = proto_put_i64(p, exptime);
    p = proto_put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

size_t
bc__fmt_arith(char *buf, bool incr, const void *key, size_t klen, uint64_t delta)
{
    char *p = proto_put(buf, incr ? "incr " : "decr ", 5);
    p = proto_put(p, key, klen);
    *p++ = ' ';
    p = proto_put_u64(p, delta);
    p = proto_put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

bc_status_t
bc__reply_need(const char *buf, size_t len, size_t max_value, size_t *need)
{
    *need = 0;
    if (len < 6 || memcmp(buf, "VALUE ", 6) != 0) return BC_OK;
    const char *nl = memchr(buf, '\n', len);
    if (nl == NULL) return BC_OK;
    /* VALUE <key> <flags> <bytes> [<cas>]: the fourth word is the length. */
    const char *p = buf + 6, *end = nl;
    if (end > buf && end[-1] == '\r') end--;
    for (int skip = 0; skip < 2; skip++) {
        while (p < end && *p == ' ') p++;
        while (p < end && *p != ' ') p++;
    }
    while (p < end && *p == ' ') p++;
    uint64_t v = 0;
    size_t digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 19) {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || (p < end && *p != ' ')) return BC_EPROTO;
    if (v > max_value) return BC_ETOOLARGE;
    *need = (size_t)(nl - buf) + 1 + (size_t)v + 2;
    return BC_OK;
}

uint64_t
bc__rand_next(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

uint64_t
bc__backoff_ns(unsigned attempt, uint64_t base_ns, uint64_t cap_ns, uint64_t *rng)
{
    if (attempt == 0) attempt = 1;
    uint64_t d = base_ns;
    for (unsigned i = 1; i < attempt && d < cap_ns; i++) d *= 2;
    if (d > cap_ns) d = cap_ns;
    if (d < 2) return d;
    uint64_t half = d / 2;
    return half + bc__rand_next(rng) % (d - half + 1);
}
