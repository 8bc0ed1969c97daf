/*
 * proto.c -- see proto.h.  Request lines are assembled with memcpy and
 * bc_mc_u64_to_dec rather than snprintf: they are built on every call of
 * the hot path.  The cluster's SERVER_ERROR lines (refusals, forwarding
 * failures) are parsed by common/bc_wire.c; this file only says what a
 * forwarding failure means for a retry.
 */
#include "proto.h"

#include <string.h>

#include "bc_mcproto.h"
#include "bc_wire.h"

bool
bc__proto_key_valid(const void *key, size_t klen)
{
    if (key == NULL || klen == 0 || klen > BC_MC_KEY_MAX_LEN) return false;
    const unsigned char *p = key;
    for (size_t i = 0; i < klen; i++) {
        if (p[i] <= 0x20 || p[i] == 0x7f) return false;
    }
    return true;
}

bc__proto_fwd_failure_t
bc__proto_fwd_failure_parse(const char *text, size_t n)
{
    /* BEHAVIOR: only these three change what a client does; the other
     * forwarding failures (reply too large, bad reply, busy, out of
     * memory) are ordinary server errors to the caller. */
    switch (bc_wire_fwd_failure_parse(text, n)) {
    case BC_WIRE_FWD_UNSENT: return BC__PROTO_FWD_UNSENT;
    case BC_WIRE_FWD_IN_DOUBT:
    case BC_WIRE_FWD_TIMEOUT: return BC__PROTO_FWD_IN_DOUBT;
    default: return BC__PROTO_FWD_NONE;
    }
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
bc__proto_fmt_storage(char *buf, const char *cmd, const void *key, size_t klen, uint32_t flags,
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
bc__proto_fmt_cas(char *buf, const void *key, size_t klen, uint32_t flags, int64_t exptime,
                  size_t vlen, uint64_t cas)
{
    size_t n = bc__proto_fmt_storage(buf, "cas", key, klen, flags, exptime, vlen) - 2; /* no CRLF */
    char *p = buf + n;
    *p++ = ' ';
    p = proto_put_u64(p, cas);
    p = proto_put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

size_t
bc__proto_fmt_key_cmd(char *buf, const char *cmd, const void *key, size_t klen)
{
    char *p = proto_put(buf, cmd, strlen(cmd));
    *p++ = ' ';
    p = proto_put(p, key, klen);
    p = proto_put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

size_t
bc__proto_fmt_touch(char *buf, const void *key, size_t klen, int64_t exptime)
{
    char *p = proto_put(buf, "touch ", 6);
    p = proto_put(p, key, klen);
    *p++ = ' ';
    p = proto_put_i64(p, exptime);
    p = proto_put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

size_t
bc__proto_fmt_arith(char *buf, bool incr, const void *key, size_t klen, uint64_t delta)
{
    char *p = proto_put(buf, incr ? "incr " : "decr ", 5);
    p = proto_put(p, key, klen);
    *p++ = ' ';
    p = proto_put_u64(p, delta);
    p = proto_put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

bc_status_t
bc__proto_reply_need(const char *buf, size_t len, size_t max_value, size_t *need)
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
