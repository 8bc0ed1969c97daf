/*
 * bc_mcmeta.c -- meta protocol flags and base64; see bc_mcmeta.h.
 *
 * Ported from memcached 1.6.18 (proto_text.c _meta_flag_preparse, util.c
 * safe_strto*, base64.c) so that every reply text and every corner case
 * stays the same: including which errors have a text of their own.
 */
#include "bc_mcmeta.h"

#include <string.h>

static bool
is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * strtoull/strtoll magnitude of [s, s+n): white space, sign, digits, then
 * the end or white space.  false: no digit, overflow, trailing garbage.
 */
static bool
magnitude(const char *s, size_t n, bool *neg, uint64_t *out)
{
    size_t i = 0, digits = 0;
    uint64_t v = 0;

    while (i < n && is_space((unsigned char)s[i])) i++;
    *neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        *neg = s[i] == '-';
        i++;
    }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    if (digits == 0 || (i < n && !is_space((unsigned char)s[i]))) return false;
    *out = v;
    return true;
}

/* safe_strtoull: a negative result is refused unless it reads >= 0. */
bool
bc_mc_meta_u64(const char *s, size_t n, uint64_t *out)
{
    bool neg;
    uint64_t v;
    if (!magnitude(s, n, &neg, &v)) return false;
    if (neg) {
        v = (uint64_t)0 - v;
        if ((int64_t)v < 0) return false;
    }
    *out = v;
    return true;
}

/* safe_strtol: 64-bit strtol kept in an int32_t. */
bool
bc_mc_meta_i32(const char *s, size_t n, int64_t *out)
{
    bool neg;
    uint64_t v;
    if (!magnitude(s, n, &neg, &v)) return false;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return false;
    uint64_t r = neg ? (uint64_t)0 - v : v;
    *out = (int32_t)(uint32_t)r;
    return true;
}

bool
bc_mc_meta_parse(const bc_mc_request_t *req, uint32_t start, bc_mc_meta_t *of, char *keybuf,
                 const char **err)
{
    uint8_t seen[127] = {0};
    bool has_error = false;

    of->key = req->tok[1].p;
    of->nkey = req->tok[1].n;
    for (uint32_t i = start; i < BC_MC_MAX_TOKENS && req->tok[i].n != 0; i++) {
        const bc_mc_token_t *t = &req->tok[i];
        uint8_t o = (uint8_t)t->p[0];
        const char *arg = t->p + 1;
        size_t narg = t->n - 1;

        if (o >= 127 || seen[o] != 0) {
            *err = "CLIENT_ERROR duplicate flag";
            return false;
        }
        seen[o] = 1;
        switch (o) {
        case 'b': {
            size_t n = bc_mc_meta_base64_decode(req->tok[1].p, req->tok[1].n, keybuf,
                                           BC_MC_KEY_MAX_LEN);
            if (n == 0) {
                *err = "CLIENT_ERROR error decoding key";
                has_error = true;
            }
            of->key = keybuf;
            of->nkey = (uint32_t)n;
            of->key_binary = true;
            break;
        }
        case 'N':
            of->locked = true;
            of->vivify = true;
            if (!bc_mc_meta_i32(arg, narg, &of->autoviv_exptime)) {
                *err = "CLIENT_ERROR bad token in command line format";
                has_error = true;
            }
            break;
        case 'T':
            of->locked = true;
            if (!bc_mc_meta_i32(arg, narg, &of->exptime)) {
                *err = "CLIENT_ERROR bad token in command line format";
                has_error = true;
            } else {
                of->new_ttl = true;
            }
            break;
        case 'R':
            of->locked = true;
            if (!bc_mc_meta_i32(arg, narg, &of->recache_time)) {
                *err = "CLIENT_ERROR bad token in command line format";
                has_error = true;
            }
            break;
        case 'l':
            of->la = true;
            of->locked = true;
            break;
        case 'O':
        case 'P':
        case 'L':
        case 'k':
        case 's':
        case 't':
        case 'c':
        case 'f':
            break;
        case 'v':
            of->value = true;
            break;
        case 'h':
            of->locked = true;
            break;
        case 'u':
            of->no_update = true;
            break;
        case 'q':
            of->no_reply = true;
            break;
        case 'F': {
            uint64_t v;
            if (!bc_mc_meta_u64(arg, narg, &v)) {
                has_error = true;          /* memcached: the caller's text */
            } else {
                of->client_flags = (uint32_t)v;
            }
            break;
        }
        case 'C':
            if (!bc_mc_meta_u64(arg, narg, &of->req_cas_id)) {
                *err = "CLIENT_ERROR bad token in command line format";
                has_error = true;
            } else {
                of->has_cas = true;
            }
            break;
        case 'M':
            if (t->n != 2) {
                *err = "CLIENT_ERROR incorrect length for M token";
                has_error = true;
            } else {
                of->mode = t->p[1];
            }
            break;
        case 'J':
            if (!bc_mc_meta_u64(arg, narg, &of->initial)) {
                *err = "CLIENT_ERROR invalid numeric initial value";
                has_error = true;
            }
            break;
        case 'D':
            if (!bc_mc_meta_u64(arg, narg, &of->delta)) {
                *err = "CLIENT_ERROR invalid numeric delta value";
                has_error = true;
            }
            break;
        case 'I':
            of->set_stale = true;
            break;
        default:
            *err = "CLIENT_ERROR invalid flag";
            return false;
        }
    }
    return !has_error;
}

/* ---- base64 ---- */

static const char b64_table[65] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static unsigned char
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return (unsigned char)(c - 'A');
    if (c >= 'a' && c <= 'z') return (unsigned char)(c - 'a' + 26);
    if (c >= '0' && c <= '9') return (unsigned char)(c - '0' + 52);
    if (c == '+') return 62;
    if (c == '/') return 63;
    if (c == '=') return 0;
    return 0x80;
}

size_t
bc_mc_meta_base64_decode(const char *src, size_t len, char *out, size_t out_len)
{
    const unsigned char *in = (const unsigned char *)src;
    unsigned char block[4];
    size_t count = 0, pos = 0;
    int pad = 0;

    for (size_t i = 0; i < len; i++) {
        if (b64_value(in[i]) != 0x80) count++;
    }
    if (count == 0 || count % 4 != 0) return 0;
    if (count / 4 * 3 > out_len || out == NULL) return 0;

    count = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char v = b64_value(in[i]);
        if (v == 0x80) continue;
        if (in[i] == '=') pad++;
        block[count++] = v;
        if (count == 4) {
            out[pos++] = (char)((block[0] << 2) | (block[1] >> 4));
            out[pos++] = (char)((block[1] << 4) | (block[2] >> 2));
            out[pos++] = (char)((block[2] << 6) | block[3]);
            count = 0;
            if (pad) {
                if (pad == 1) {
                    pos--;
                } else if (pad == 2) {
                    pos -= 2;
                } else {
                    return 0;                 /* invalid padding */
                }
                break;
            }
        }
    }
    return pos;
}

size_t
bc_mc_meta_base64_encode(const char *src, size_t len, char *out, size_t out_len)
{
    const unsigned char *in = (const unsigned char *)src, *end = in + len;
    size_t olen = len * 4 / 3 + 4, pos = 0;

    olen += olen / 72;
    olen++;
    if (olen < len || olen > out_len || out == NULL) return 0;
    while (end - in >= 3) {
        out[pos++] = b64_table[in[0] >> 2];
        out[pos++] = b64_table[((in[0] & 0x03) << 4) | (in[1] >> 4)];
        out[pos++] = b64_table[((in[1] & 0x0f) << 2) | (in[2] >> 6)];
        out[pos++] = b64_table[in[2] & 0x3f];
        in += 3;
    }
    if (end - in) {
        out[pos++] = b64_table[in[0] >> 2];
        if (end - in == 1) {
            out[pos++] = b64_table[(in[0] & 0x03) << 4];
            out[pos++] = '=';
        } else {
            out[pos++] = b64_table[((in[0] & 0x03) << 4) | (in[1] >> 4)];
            out[pos++] = b64_table[(in[1] & 0x0f) << 2];
        }
        out[pos++] = '=';
    }
    return pos;
}

/* ---- reply side ---- */

#define META_REPLY_LINE_MAX 4096u

bc_status_t
bc_mc_meta_reply_unit(const char *buf, size_t len, size_t *consumed, bool *is_mn)
{
    size_t window = len < META_REPLY_LINE_MAX ? len : META_REPLY_LINE_MAX;
    const char *nl = memchr(buf, '\n', window);
    if (nl == NULL) return len >= META_REPLY_LINE_MAX ? BC_EPROTO : BC_EAGAIN;
    size_t linelen = (size_t)(nl - buf) + 1;
    if (nl == buf || nl[-1] != '\r') return BC_EPROTO;
    size_t n = linelen - 2;
    *is_mn = n == 2 && memcmp(buf, "MN", 2) == 0;
    if (n >= 4 && memcmp(buf, "VA ", 3) == 0) {
        uint64_t vlen = 0;
        size_t i = 3, digits = 0;
        for (; i < n && buf[i] >= '0' && buf[i] <= '9' && digits < 11; i++, digits++) {
            vlen = vlen * 10 + (uint64_t)(buf[i] - '0');
        }
        if (digits == 0 || (i < n && buf[i] != ' ') || vlen > BC_MC_VALUE_MAX_LEN)
            return BC_EPROTO;
        /* BEHAVIOR: the line may hold a raw binary key with a CRLF in it
         * (memcached 1.6.18 prints the key of an item an "ma ... b N"
         * created without base64): the VA line ends at the first CRLF after
         * which the value and its CRLF fit. */
        for (;;) {
            if (len - linelen < vlen + 2) return BC_EAGAIN;
            if (buf[linelen + vlen] == '\r' && buf[linelen + vlen + 1] == '\n') break;
            nl = linelen < window ? memchr(buf + linelen, '\n', window - linelen) : NULL;
            if (nl == NULL) return len >= META_REPLY_LINE_MAX ? BC_EPROTO : BC_EAGAIN;
            linelen = (size_t)(nl - buf) + 1;
            if (nl[-1] != '\r') continue;
        }
        *consumed = linelen + (size_t)vlen + 2;
        return BC_OK;
    }
    *consumed = linelen;
    return BC_OK;
}
