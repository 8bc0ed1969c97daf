/*
 * fuzz_auth.c -- libFuzzer target for what access control parses of a
 * request or a credentials file (common/bc_auth.c, common/bc_secret.c):
 * Authorization headers, the browser headers, Host, Content-Type, and
 * secret files.
 *
 * The input is split at the first NUL: before it, header values (split at
 * '\n', each tried as every header); after it, a secret file's bytes,
 * parsed under each kind's rules.  Invariants: a parsed bearer token lies
 * inside its header, is non-empty token68 and is what the check compares
 * (a header that parses with the file's token is accepted, any other
 * refused); a cross-site verdict never accepts an Origin that differs
 * from Host; a parsed secret holds only values within its rules, each
 * matching itself and no other.  Sanitizers catch out-of-bounds reads;
 * __builtin_trap() marks a broken invariant.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bc_auth.h"
#include "bc_secret.h"
#include "fuzz_target.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

#define FUZZ_TOKEN "ZnV6ei10b2tlbi0xMjM0NTY3OA=="

static bc_auth_t *fuzz_auth;

static void
check_header(const char *h, size_t n)
{
    const char *tok;
    size_t tn;
    if (bc_auth_parse_bearer(h, n, &tok, &tn)) {
        CHECK(tok > h && tok + tn <= h + n && tn > 0 && tok[0] != '=');
        /* the check agrees with the parse */
        char *z = strndup(h, n);
        if (z != NULL && strlen(z) == n) {
            bc_auth_result_t r = bc_auth_check(fuzz_auth, z);
            bool same = tn == strlen(FUZZ_TOKEN) && memcmp(tok, FUZZ_TOKEN, tn) == 0;
            CHECK(same ? r == BC_AUTH_OK : r == BC_AUTH_WRONG);
        }
        free(z);
    }
    char *z = strndup(h, n);
    if (z == NULL) return;
    /* as Origin against a fixed Host, and as Host itself */
    const char *verdict = bc_auth_cross_site(NULL, z, "127.0.0.1:11290");
    if (verdict == NULL) {
        const char *p = strstr(z, "://");
        CHECK(p != NULL && strcasecmp(p + 3, "127.0.0.1:11290") == 0);
    }
    (void)bc_auth_cross_site(z, NULL, NULL);
    (void)bc_auth_host_is_loopback(z);
    (void)bc_auth_media_type_in(z, "application/json, application/octet-stream");
    free(z);
}

static void
check_secret(const char *text, size_t n, const bc_secret_rules_t *rules)
{
    bc_secret_t s;
    char err[256];
    if (bc_secret_parse("fuzz", text, n, rules, &s, err, sizeof(err)) != BC_OK) {
        CHECK(s.count == 0);
        return;
    }
    CHECK(s.count >= 1 && s.count <= rules->max_values);
    for (unsigned i = 0; i < s.count; i++) {
        CHECK(s.len[i] >= rules->min_len && s.len[i] <= rules->max_len);
        CHECK(strlen(s.value[i]) == s.len[i]);
        CHECK(bc_secret_match(&s, s.value[i], s.len[i]));
        CHECK(!bc_secret_match(&s, s.value[i], s.len[i] - 1) || s.count > 1);
    }
    bc_secret_clear(&s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_auth == NULL) {
        char err[128];
        if (bc_auth_from_text("fuzz", FUZZ_TOKEN, &fuzz_auth, err, sizeof(err)) != BC_OK) {
            __builtin_trap();
        }
    }
    const char *in = (const char *)data;
    const char *nul = memchr(in, '\0', size);
    size_t hlen = nul != NULL ? (size_t)(nul - in) : size;
    for (size_t pos = 0; pos < hlen;) {
        const char *nl = memchr(in + pos, '\n', hlen - pos);
        size_t n = nl != NULL ? (size_t)(nl - (in + pos)) : hlen - pos;
        check_header(in + pos, n);
        pos += n + 1;
    }
    if (nul != NULL) {
        const char *file = nul + 1;
        size_t flen = size - hlen - 1;
        check_secret(file, flen, &bc_secret_rules_token);
        check_secret(file, flen, &bc_secret_rules_zk);
        check_secret(file, flen, &bc_secret_rules_cluster);
        check_secret(file, flen, &bc_secret_rules_mcauth);
    }
    return 0;
}
