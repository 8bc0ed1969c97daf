/*
 * bc_peerauth.c -- see bc_peerauth.h.
 *
 * The transcript of a proof is built in a stack buffer (fields are short:
 * handshake lines, a request target) and MACed with each value of the
 * secret under the read lock; nothing of the key leaves the lock.
 *
 * The nonces of signed HTTP requests are remembered in a fixed array of
 * BC_PEERAUTH_SEEN_MAX entries, each kept until its request could no
 * longer be accepted (its timestamp plus the window).  Exports are a few
 * per second at most, so a linear scan under a mutex is plenty; a nonce
 * is remembered only once its proof checked out, so nobody without the
 * secret can fill the array.
 *
 * LOCKING
 *   lock (rwlock) guards secret: proofs read it, bc_peerauth_reload swaps
 *   it.  seen_mu guards seen[]; it is never held with lock.
 */
#include "bc_peerauth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "bc_secret.h"
#include "bc_wire.h"

#define TRANSCRIPT_TAG "bucketcache-peer-auth-v1"

_Static_assert(BC_PEERAUTH_NONCE_LEN == BC_WIRE_NONCE_LEN, "a nonce is the same on every link");
_Static_assert(BC_PEERAUTH_PROOF_LEN == BC_WIRE_PROOF_LEN, "a proof is the same on every link");
#define TRANSCRIPT_MAX 1024

typedef struct seen_nonce {
    unsigned char nonce[BC_PEERAUTH_NONCE_LEN / 2];
    uint64_t until_ms;             /* 0: a free entry */
} seen_nonce_t;

struct bc_peerauth {
    char *source;
    bool reloadable;
    pthread_rwlock_t lock;
    bc_secret_t secret;
    pthread_mutex_t seen_mu;
    seen_nonce_t seen[BC_PEERAUTH_SEEN_MAX];
};

static const char hexdig[] = "0123456789abcdef";

static void
hex_encode(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[in[i] >> 4];
        out[2 * i + 1] = hexdig[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Lowercase hex of exactly 2*n digits into out[n]; false otherwise. */
static bool
hex_decode(const char *s, size_t len, unsigned char *out, size_t n)
{
    if (len != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

/* ---- the secret ---- */

static bc_status_t
peerauth_new(const char *source, bool reloadable, bc_secret_t *secret, bc_peerauth_t **out)
{
    bc_peerauth_t *pa = calloc(1, sizeof(*pa));
    if (pa == NULL || (pa->source = strdup(source)) == NULL) {
        free(pa);
        bc_secret_clear(secret);
        return BC_ENOMEM;
    }
    pa->reloadable = reloadable;
    pthread_rwlock_init(&pa->lock, NULL);
    pthread_mutex_init(&pa->seen_mu, NULL);
    pa->secret = *secret;
    memset(secret, 0, sizeof(*secret));
    *out = pa;
    return BC_OK;
}

bc_status_t
bc_peerauth_open(const char *path, bc_peerauth_t **out, char *err, size_t errlen)
{
    bc_secret_t s;
    *out = NULL;
    bc_status_t st = bc_secret_load(path, &bc_secret_rules_cluster, &s, err, errlen);
    if (st != BC_OK) return st;
    return peerauth_new(path, true, &s, out);
}

bc_status_t
bc_peerauth_from_text(const char *name, const char *text, bc_peerauth_t **out, char *err,
                      size_t errlen)
{
    bc_secret_t s;
    *out = NULL;
    bc_status_t st = bc_secret_parse(name, text, strlen(text), &bc_secret_rules_cluster, &s,
                                     err, errlen);
    if (st != BC_OK) return st;
    return peerauth_new(name, false, &s, out);
}

bc_status_t
bc_peerauth_reload(bc_peerauth_t *pa, char *err, size_t errlen)
{
    bc_secret_t s, old;
    if (pa == NULL || !pa->reloadable) return BC_OK;
    bc_status_t st = bc_secret_load(pa->source, &bc_secret_rules_cluster, &s, err, errlen);
    if (st != BC_OK) return st;
    pthread_rwlock_wrlock(&pa->lock);
    old = pa->secret;
    pa->secret = s;
    pthread_rwlock_unlock(&pa->lock);
    bc_secret_clear(&old);
    return BC_OK;
}

void
bc_peerauth_free(bc_peerauth_t *pa)
{
    if (pa == NULL) return;
    bc_secret_clear(&pa->secret);
    pthread_rwlock_destroy(&pa->lock);
    pthread_mutex_destroy(&pa->seen_mu);
    free(pa->source);
    free(pa);
}

const char *
bc_peerauth_source(const bc_peerauth_t *pa)
{
    return pa != NULL ? pa->source : "";
}

void
bc_peerauth_nonce(char out[BC_PEERAUTH_NONCE_LEN + 1])
{
    unsigned char raw[BC_PEERAUTH_NONCE_LEN / 2];
    if (RAND_bytes(raw, (int)sizeof(raw)) != 1) {
        /* OpenSSL's generator is seeded from getrandom(); it does not fail
         * on Linux once initialised.  Should it, a nonce nobody can
         * predict cannot be made: abort rather than reuse one. */
        abort();
    }
    hex_encode(raw, sizeof(raw), out);
}

bool
bc_peerauth_nonce_valid(const char *s, size_t n)
{
    unsigned char raw[BC_PEERAUTH_NONCE_LEN / 2];
    return s != NULL && hex_decode(s, n, raw, sizeof(raw));
}

/* ---- proofs ---- */

/* The transcript of role over fields into buf; its length, or 0 when a
 * field is unfit or it does not fit. */
static size_t
transcript_build(bc_peerauth_role_t role, const char *const *fields, size_t n, char *buf,
                 size_t cap)
{
    size_t len = 0;
    if (n > BC_PEERAUTH_MAX_FIELDS) return 0;
    int w = snprintf(buf, cap, "%s\n%s", TRANSCRIPT_TAG,
                     role == BC_PEERAUTH_SERVER ? "server" : "client");
    if (w < 0 || (size_t)w >= cap) return 0;
    len = (size_t)w;
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i] != NULL ? fields[i] : "";
        size_t fl = strlen(f);
        for (size_t k = 0; k < fl; k++) {
            unsigned char c = (unsigned char)f[k];
            if (c < 0x20 || c >= 0x7f) return 0;
        }
        if (len + 1 + fl >= cap) return 0;
        buf[len++] = '\n';
        memcpy(buf + len, f, fl);
        len += fl;
    }
    return len;
}

bool
bc_peerauth_prove(bc_peerauth_t *pa, bc_peerauth_role_t role, const char *const *fields,
                  size_t n, char out[BC_PEERAUTH_PROOF_LEN + 1])
{
    char t[TRANSCRIPT_MAX];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    bool ok = false;

    out[0] = '\0';
    size_t tl = transcript_build(role, fields, n, t, sizeof(t));
    if (pa == NULL || tl == 0) return false;
    pthread_rwlock_rdlock(&pa->lock);
    if (pa->secret.count > 0 &&
        HMAC(EVP_sha256(), pa->secret.value[0], (int)pa->secret.len[0], (unsigned char *)t, tl,
             mac, &maclen) != NULL &&
        maclen * 2 == BC_PEERAUTH_PROOF_LEN) {
        hex_encode(mac, maclen, out);
        ok = true;
    }
    pthread_rwlock_unlock(&pa->lock);
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

bool
bc_peerauth_verify(bc_peerauth_t *pa, bc_peerauth_role_t role, const char *const *fields,
                   size_t n, const char *proof, size_t len)
{
    char t[TRANSCRIPT_MAX];
    unsigned char want[BC_PEERAUTH_PROOF_LEN / 2];
    int matched = 0;

    size_t tl = transcript_build(role, fields, n, t, sizeof(t));
    if (pa == NULL || tl == 0 || proof == NULL || !hex_decode(proof, len, want, sizeof(want))) {
        return false;
    }
    pthread_rwlock_rdlock(&pa->lock);
    /* No early exit: the time says nothing about which value matched. */
    for (unsigned i = 0; i < pa->secret.count; i++) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (HMAC(EVP_sha256(), pa->secret.value[i], (int)pa->secret.len[i],
                 (unsigned char *)t, tl, mac, &maclen) != NULL &&
            maclen == sizeof(want)) {
            matched |= CRYPTO_memcmp(mac, want, sizeof(want)) == 0;
        }
        OPENSSL_cleanse(mac, sizeof(mac));
    }
    pthread_rwlock_unlock(&pa->lock);
    return matched != 0;
}

/* ---- the HTTP side ---- */

/* Reads one canonical decimal (no sign, no leading zero) filling s[0..n). */
static bool
parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bc_status_t
bc_peerauth_http_parse(const char *value, size_t n, bc_peerauth_http_claim_t *out)
{
    const char *tok[4];
    size_t len[4];
    size_t ntok = 0;
    const char *p = value, *end = value + n;
    if (value == NULL) return BC_EINVAL;
    /* exactly four fields, separated by single spaces */
    while (ntok < 4) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        tok[ntok] = p;
        len[ntok] = (size_t)((sp != NULL ? sp : end) - p);
        ntok++;
        if (sp == NULL) break;
        p = sp + 1;
        if (ntok == 4) return BC_EINVAL;       /* a fifth field */
    }
    if (ntok != 4) return BC_EINVAL;
    if (!bc_wire_name_valid(tok[0], len[0]) || len[0] >= sizeof(out->name)) return BC_EINVAL;
    if (!parse_u64(tok[1], len[1], &out->ts_ms)) return BC_EINVAL;
    if (!bc_peerauth_nonce_valid(tok[2], len[2])) return BC_EINVAL;
    unsigned char raw[BC_PEERAUTH_PROOF_LEN / 2];
    if (!hex_decode(tok[3], len[3], raw, sizeof(raw))) return BC_EINVAL;
    memcpy(out->name, tok[0], len[0]);
    out->name[len[0]] = '\0';
    memcpy(out->nonce, tok[2], len[2]);
    out->nonce[len[2]] = '\0';
    memcpy(out->proof, tok[3], len[3]);
    out->proof[len[3]] = '\0';
    return BC_OK;
}

size_t
bc_peerauth_http_sign(bc_peerauth_t *pa, const char *method, const char *target,
                      const char *name, uint64_t now_ms, char *buf, size_t len,
                      char nonce[BC_PEERAUTH_NONCE_LEN + 1])
{
    char ts[24], proof[BC_PEERAUTH_PROOF_LEN + 1];
    if (len > 0) buf[0] = '\0';
    if (name == NULL || !bc_wire_name_valid(name, strlen(name)) || strlen(name) >= 64) return 0;
    bc_peerauth_nonce(nonce);
    snprintf(ts, sizeof(ts), "%llu", (unsigned long long)now_ms);
    const char *fields[] = {"http-request", method, target, name, ts, nonce};
    if (!bc_peerauth_prove(pa, BC_PEERAUTH_CLIENT, fields, 6, proof)) return 0;
    int w = snprintf(buf, len, "%s %s %s %s", name, ts, nonce, proof);
    if (w < 0 || (size_t)w >= len) {
        if (len > 0) buf[0] = '\0';
        return 0;
    }
    return (size_t)w;
}

/* Remembers the nonce of a request accepted now (until its window ends).
 * BC_EACCES when it was seen already, BC_EBUSY when there is no room. */
static bc_status_t
seen_insert(bc_peerauth_t *pa, const char *nonce, uint64_t ts_ms, uint64_t now_ms)
{
    unsigned char raw[BC_PEERAUTH_NONCE_LEN / 2];
    seen_nonce_t *free_slot = NULL;
    bc_status_t st = BC_OK;
    if (!hex_decode(nonce, strlen(nonce), raw, sizeof(raw))) return BC_EACCES;
    pthread_mutex_lock(&pa->seen_mu);
    for (size_t i = 0; i < BC_PEERAUTH_SEEN_MAX; i++) {
        seen_nonce_t *e = &pa->seen[i];
        if (e->until_ms != 0 && e->until_ms < now_ms) e->until_ms = 0;   /* expired */
        if (e->until_ms == 0) {
            if (free_slot == NULL) free_slot = e;
            continue;
        }
        if (memcmp(e->nonce, raw, sizeof(raw)) == 0) {
            st = BC_EACCES;
            break;
        }
    }
    if (st == BC_OK) {
        if (free_slot == NULL) {
            st = BC_EBUSY;
        } else {
            memcpy(free_slot->nonce, raw, sizeof(raw));
            /* Accepted until ts + window: remember it at least that long. */
            free_slot->until_ms = ts_ms + BC_PEERAUTH_HTTP_WINDOW_MS + 1;
        }
    }
    pthread_mutex_unlock(&pa->seen_mu);
    return st;
}

bc_status_t
bc_peerauth_http_check(bc_peerauth_t *pa, const char *method, const char *target,
                       const char *value, size_t n, uint64_t now_ms,
                       bc_peerauth_http_claim_t *claim, char *why, size_t whylen)
{
    bc_peerauth_http_claim_t c;
    if (value == NULL) {
        return bc_fail(why, whylen, BC_EACCES, "no " BC_PEERAUTH_HTTP_HEADER " proof (only a "
                       "node holding the cluster secret may ask this)");
    }
    if (bc_peerauth_http_parse(value, n, &c) != BC_OK) {
        return bc_fail(why, whylen, BC_EACCES, "malformed " BC_PEERAUTH_HTTP_HEADER " header "
                       "(expected <name> <unix-ms> <nonce> <proof>)");
    }
    uint64_t skew = c.ts_ms > now_ms ? c.ts_ms - now_ms : now_ms - c.ts_ms;
    if (skew > BC_PEERAUTH_HTTP_WINDOW_MS) {
        return bc_fail(why, whylen, BC_EACCES, "the request of node %s is %llu ms %s this "
                       "node's clock (more than %u ms: replayed, or the clocks differ)", c.name,
                       (unsigned long long)skew, c.ts_ms > now_ms ? "ahead of" : "behind",
                       BC_PEERAUTH_HTTP_WINDOW_MS);
    }
    char ts[24];
    snprintf(ts, sizeof(ts), "%llu", (unsigned long long)c.ts_ms);
    const char *fields[] = {"http-request", method, target, c.name, ts, c.nonce};
    if (!bc_peerauth_verify(pa, BC_PEERAUTH_CLIENT, fields, 6, c.proof, strlen(c.proof))) {
        return bc_fail(why, whylen, BC_EACCES, "wrong proof from node %s (is the cluster "
                       "secret the same on every node?)", c.name);
    }
    bc_status_t st = seen_insert(pa, c.nonce, c.ts_ms, now_ms);
    if (st == BC_EACCES) {
        return bc_fail(why, whylen, BC_EACCES, "replayed request (node %s's nonce was used "
                       "already)", c.name);
    }
    if (st == BC_EBUSY) {
        return bc_fail(why, whylen, BC_EBUSY, "too many signed requests in the last %u ms",
                       BC_PEERAUTH_HTTP_WINDOW_MS);
    }
    if (claim != NULL) *claim = c;
    return BC_OK;
}

size_t
bc_peerauth_http_reply(bc_peerauth_t *pa, const char *method, const char *target,
                       const char *nonce, const char *server_name, char *buf, size_t len)
{
    char proof[BC_PEERAUTH_PROOF_LEN + 1];
    if (len > 0) buf[0] = '\0';
    if (server_name == NULL || !bc_wire_name_valid(server_name, strlen(server_name))) return 0;
    const char *fields[] = {"http-response", method, target, nonce, server_name};
    if (!bc_peerauth_prove(pa, BC_PEERAUTH_SERVER, fields, 5, proof)) return 0;
    int w = snprintf(buf, len, "%s %s", server_name, proof);
    if (w < 0 || (size_t)w >= len) {
        if (len > 0) buf[0] = '\0';
        return 0;
    }
    return (size_t)w;
}

bool
bc_peerauth_http_reply_check(bc_peerauth_t *pa, const char *method, const char *target,
                             const char *nonce, const char *value, size_t n, char *why,
                             size_t whylen)
{
    char name[BC_WIRE_NAME_MAX + 1];
    if (value == NULL) {
        bc_fail(why, whylen, BC_EACCES, "the answer carries no " BC_PEERAUTH_HTTP_REPLY_HEADER
                " (the source node has no cluster secret?)");
        return false;
    }
    const char *sp = memchr(value, ' ', n);
    size_t nl = sp != NULL ? (size_t)(sp - value) : 0;
    if (sp == NULL || !bc_wire_name_valid(value, nl)) {
        bc_fail(why, whylen, BC_EACCES, "malformed " BC_PEERAUTH_HTTP_REPLY_HEADER);
        return false;
    }
    memcpy(name, value, nl);
    name[nl] = '\0';
    const char *fields[] = {"http-response", method, target, nonce, name};
    if (!bc_peerauth_verify(pa, BC_PEERAUTH_SERVER, fields, 5, sp + 1,
                            n - nl - 1)) {
        bc_fail(why, whylen, BC_EACCES, "wrong proof from node %s (is the cluster secret the "
                "same on every node?)", name);
        return false;
    }
    return true;
}
