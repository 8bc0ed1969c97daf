/*
 * test_peerauth.c -- the proofs of the cluster secret (common/bc_peerauth.h):
 * a proof checks out with the same secret and only with it, for the same
 * role and the same fields only; rotation (a second value verifies, the
 * first proves); nonces; the signed HTTP request -- right, wrong, missing,
 * malformed, stale, replayed, a flood -- and the answer's proof; reload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "bc_peerauth.h"
#include "bc_wire.h"

#define SECRET_A "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define SECRET_B "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

static bc_peerauth_t *
open_text(const char *text)
{
    bc_peerauth_t *pa = NULL;
    char err[256];
    assert_int_equal(bc_peerauth_from_text("test", text, &pa, err, sizeof(err)), BC_OK);
    return pa;
}

static const char *const FIELDS[] = {"bucketcache_peer n-7 0123456789abcdef0123456789abcdef",
                                     "n-1", "fedcba9876543210fedcba9876543210"};

static void
test_proof_checks_out_with_the_same_secret_only(void **state)
{
    (void)state;
    bc_peerauth_t *a = open_text(SECRET_A "\n"), *a2 = open_text("# same\n" SECRET_A "\n");
    bc_peerauth_t *b = open_text(SECRET_B "\n");
    char proof[BC_PEERAUTH_PROOF_LEN + 1];
    assert_true(bc_peerauth_prove(a, BC_PEERAUTH_CLIENT, FIELDS, 3, proof));
    assert_int_equal(strlen(proof), BC_PEERAUTH_PROOF_LEN);
    assert_true(bc_wire_hex_valid(proof, strlen(proof), BC_WIRE_PROOF_LEN));
    /* deterministic: the same inputs, the same proof, on another node */
    char again[BC_PEERAUTH_PROOF_LEN + 1];
    assert_true(bc_peerauth_prove(a2, BC_PEERAUTH_CLIENT, FIELDS, 3, again));
    assert_string_equal(proof, again);
    assert_true(bc_peerauth_verify(a2, BC_PEERAUTH_CLIENT, FIELDS, 3, proof, strlen(proof)));
    /* another secret */
    assert_false(bc_peerauth_verify(b, BC_PEERAUTH_CLIENT, FIELDS, 3, proof, strlen(proof)));
    /* another role: a server's proof is not a client's (no reflection) */
    assert_false(bc_peerauth_verify(a, BC_PEERAUTH_SERVER, FIELDS, 3, proof, strlen(proof)));
    /* every field counts */
    for (size_t i = 0; i < 3; i++) {
        const char *f[3] = {FIELDS[0], FIELDS[1], FIELDS[2]};
        char changed[128];
        snprintf(changed, sizeof(changed), "%sx", FIELDS[i]);
        f[i] = changed;
        assert_false(bc_peerauth_verify(a, BC_PEERAUTH_CLIENT, f, 3, proof, strlen(proof)));
    }
    /* fewer fields, joined differently */
    assert_false(bc_peerauth_verify(a, BC_PEERAUTH_CLIENT, FIELDS, 2, proof, strlen(proof)));
    const char *joined[2] = {FIELDS[0], "n-1\nfedcba9876543210fedcba9876543210"};
    assert_false(bc_peerauth_verify(a, BC_PEERAUTH_CLIENT, joined, 2, proof, strlen(proof)));
    /* a proof altered anywhere, or of another length, or upper case */
    for (size_t i = 0; i < BC_PEERAUTH_PROOF_LEN; i++) {
        char bad[BC_PEERAUTH_PROOF_LEN + 1];
        memcpy(bad, proof, sizeof(bad));
        bad[i] = bad[i] == '0' ? '1' : '0';
        assert_false(bc_peerauth_verify(a, BC_PEERAUTH_CLIENT, FIELDS, 3, bad, strlen(bad)));
    }
    assert_false(bc_peerauth_verify(a, BC_PEERAUTH_CLIENT, FIELDS, 3, proof, 63));
    assert_false(bc_peerauth_verify(a, BC_PEERAUTH_CLIENT, FIELDS, 3, NULL, 0));
    char upper[BC_PEERAUTH_PROOF_LEN + 1];
    for (size_t i = 0; i <= BC_PEERAUTH_PROOF_LEN; i++) {
        upper[i] = (char)(proof[i] >= 'a' && proof[i] <= 'f' ? proof[i] - 32 : proof[i]);
    }
    if (strcmp(upper, proof) != 0) {
        assert_false(bc_peerauth_verify(a, BC_PEERAUTH_CLIENT, FIELDS, 3, upper, strlen(upper)));
    }
    /* fields no transcript can hold */
    const char *nl[1] = {"a\nb"};
    assert_false(bc_peerauth_prove(a, BC_PEERAUTH_CLIENT, nl, 1, again));
    assert_string_equal(again, "");
    assert_false(bc_peerauth_prove(a, BC_PEERAUTH_CLIENT, FIELDS, BC_PEERAUTH_MAX_FIELDS + 1,
                                   again));
    bc_peerauth_free(a);
    bc_peerauth_free(a2);
    bc_peerauth_free(b);
}

/* Rotation: the new value first on some nodes, both everywhere -- every
 * pair of nodes still checks the other's proofs. */
static void
test_rotation_never_splits_the_cluster(void **state)
{
    (void)state;
    bc_peerauth_t *old = open_text(SECRET_A "\n"), *both_old_first = open_text(SECRET_A "\n" SECRET_B "\n");
    bc_peerauth_t *both_new_first = open_text(SECRET_B "\n" SECRET_A "\n"), *new = open_text(SECRET_B);
    bc_peerauth_t *all[] = {old, both_old_first, both_new_first, new};
    char proof[BC_PEERAUTH_PROOF_LEN + 1];
    /* step 1: old and both_old_first; step 2: both orders; step 3: both_new_first and new */
    bc_peerauth_t *pairs[][2] = {{old, both_old_first}, {both_old_first, both_new_first},
                                 {both_new_first, new}};
    for (size_t i = 0; i < 3; i++) {
        for (int d = 0; d < 2; d++) {
            bc_peerauth_t *p = pairs[i][d], *v = pairs[i][1 - d];
            assert_true(bc_peerauth_prove(p, BC_PEERAUTH_SERVER, FIELDS, 3, proof));
            assert_true(bc_peerauth_verify(v, BC_PEERAUTH_SERVER, FIELDS, 3, proof, 64));
        }
    }
    /* but the old-only and the new-only node do not trust each other */
    assert_true(bc_peerauth_prove(old, BC_PEERAUTH_CLIENT, FIELDS, 3, proof));
    assert_false(bc_peerauth_verify(new, BC_PEERAUTH_CLIENT, FIELDS, 3, proof, 64));
    for (size_t i = 0; i < 4; i++) bc_peerauth_free(all[i]);
}

static void
test_nonces_are_fresh_hex(void **state)
{
    (void)state;
    char seen[64][BC_PEERAUTH_NONCE_LEN + 1];
    for (int i = 0; i < 64; i++) {
        bc_peerauth_nonce(seen[i]);
        assert_int_equal(strlen(seen[i]), BC_PEERAUTH_NONCE_LEN);
        assert_true(bc_peerauth_nonce_valid(seen[i], BC_PEERAUTH_NONCE_LEN));
        assert_true(bc_wire_hex_valid(seen[i], BC_PEERAUTH_NONCE_LEN, BC_WIRE_NONCE_LEN));
        for (int j = 0; j < i; j++) assert_string_not_equal(seen[i], seen[j]);
    }
    assert_false(bc_peerauth_nonce_valid("0123", 4));
    assert_false(bc_peerauth_nonce_valid("0123456789ABCDEF0123456789abcdef", 32));
    assert_false(bc_peerauth_nonce_valid(NULL, 0));
}

/* ---- the signed HTTP request ---- */

#define TARGET "/v1/migrate/export?bucket=3&epoch=7"
#define NOW    1700000000000ull

static void
test_http_request_right_wrong_missing_replayed(void **state)
{
    (void)state;
    bc_peerauth_t *src = open_text(SECRET_A), *dst = open_text(SECRET_A), *other = open_text(SECRET_B);
    char value[BC_PEERAUTH_HTTP_MAX], nonce[BC_PEERAUTH_NONCE_LEN + 1], why[256];
    size_t n = bc_peerauth_http_sign(dst, "GET", TARGET, "n-2", NOW, value, sizeof(value), nonce);
    assert_true(n > 0 && n == strlen(value));
    bc_peerauth_http_claim_t c;
    assert_int_equal(bc_peerauth_http_parse(value, n, &c), BC_OK);
    assert_string_equal(c.name, "n-2");
    assert_true(c.ts_ms == NOW);
    assert_string_equal(c.nonce, nonce);

    /* wrong: another secret, method, target; nothing remembered meanwhile */
    assert_int_equal(bc_peerauth_http_check(other, "GET", TARGET, value, n, NOW, NULL, why,
                                            sizeof(why)), BC_EACCES);
    assert_non_null(strstr(why, "wrong proof"));
    assert_int_equal(bc_peerauth_http_check(src, "POST", TARGET, value, n, NOW, NULL, why,
                                            sizeof(why)), BC_EACCES);
    assert_int_equal(bc_peerauth_http_check(src, "GET", TARGET "0", value, n, NOW, NULL, why,
                                            sizeof(why)), BC_EACCES);
    /* missing, malformed */
    assert_int_equal(bc_peerauth_http_check(src, "GET", TARGET, NULL, 0, NOW, NULL, why,
                                            sizeof(why)), BC_EACCES);
    assert_non_null(strstr(why, "no X-Bucketcache-Peer"));
    assert_int_equal(bc_peerauth_http_check(src, "GET", TARGET, value, n - 1, NOW, NULL, why,
                                            sizeof(why)), BC_EACCES);
    assert_non_null(strstr(why, "malformed"));
    /* stale: outside the window either way */
    assert_int_equal(bc_peerauth_http_check(src, "GET", TARGET, value, n,
                                            NOW + BC_PEERAUTH_HTTP_WINDOW_MS + 1, NULL, why,
                                            sizeof(why)), BC_EACCES);
    assert_non_null(strstr(why, "clock"));
    assert_int_equal(bc_peerauth_http_check(src, "GET", TARGET, value, n,
                                            NOW - BC_PEERAUTH_HTTP_WINDOW_MS - 1, NULL, why,
                                            sizeof(why)), BC_EACCES);
    /* right, once; then replayed */
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_peerauth_http_check(src, "GET", TARGET, value, n, NOW + 1000, &c, why,
                                            sizeof(why)), BC_OK);
    assert_string_equal(c.name, "n-2");
    assert_int_equal(bc_peerauth_http_check(src, "GET", TARGET, value, n, NOW + 2000, NULL, why,
                                            sizeof(why)), BC_EACCES);
    assert_non_null(strstr(why, "replayed"));
    /* and once the window is over, the stale check refuses it still */
    assert_int_equal(bc_peerauth_http_check(src, "GET", TARGET, value, n,
                                            NOW + 2 * BC_PEERAUTH_HTTP_WINDOW_MS, NULL, why,
                                            sizeof(why)), BC_EACCES);

    /* the answer's proof: right for this request only */
    char reply[BC_PEERAUTH_HTTP_MAX];
    size_t rn = bc_peerauth_http_reply(src, "GET", TARGET, nonce, "n-1", reply, sizeof(reply));
    assert_true(rn > 0);
    assert_true(bc_peerauth_http_reply_check(dst, "GET", TARGET, nonce, reply, rn, why,
                                             sizeof(why)));
    char other_nonce[BC_PEERAUTH_NONCE_LEN + 1];
    bc_peerauth_nonce(other_nonce);
    assert_false(bc_peerauth_http_reply_check(dst, "GET", TARGET, other_nonce, reply, rn, why,
                                              sizeof(why)));
    assert_false(bc_peerauth_http_reply_check(dst, "GET", TARGET "&x", nonce, reply, rn, why,
                                              sizeof(why)));
    assert_false(bc_peerauth_http_reply_check(other, "GET", TARGET, nonce, reply, rn, why,
                                              sizeof(why)));
    assert_non_null(strstr(why, "wrong proof from node n-1"));
    assert_false(bc_peerauth_http_reply_check(dst, "GET", TARGET, nonce, NULL, 0, why,
                                              sizeof(why)));
    assert_false(bc_peerauth_http_reply_check(dst, "GET", TARGET, nonce, reply, 3, why,
                                              sizeof(why)));
    /* a request's proof is not an answer's */
    assert_false(bc_peerauth_http_reply_check(dst, "GET", TARGET, nonce, value, n, why,
                                              sizeof(why)));
    bc_peerauth_free(src);
    bc_peerauth_free(dst);
    bc_peerauth_free(other);
}

static void
test_http_parse_is_strict(void **state)
{
    (void)state;
    bc_peerauth_http_claim_t c;
    static const char *const bad[] = {
        "", "n-1", "n-1 1 0123456789abcdef0123456789abcdef",
        "n-1 01 0123456789abcdef0123456789abcdef "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "n-1  1 0123456789abcdef0123456789abcdef "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "n-1 1 0123456789abcdef0123456789abcdef "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff ",
        "n-1 1 0123456789abcdef0123456789abcdef "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff x",
        "n-1 18446744073709551616 0123456789abcdef0123456789abcdef "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "n-1 1 0123456789ABCDEF0123456789abcdef "
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        "n-1 1 0123456789abcdef0123456789abcdef 00",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bc_peerauth_http_parse(bad[i], strlen(bad[i]), &c) == BC_OK) {
            fail_msg("\"%s\" parsed", bad[i]);
        }
    }
    const char *good = "n-1 0 0123456789abcdef0123456789abcdef "
                       "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    assert_int_equal(bc_peerauth_http_parse(good, strlen(good), &c), BC_OK);
    assert_true(c.ts_ms == 0);
    assert_int_equal(bc_peerauth_http_parse(NULL, 0, &c), BC_EINVAL);
}

/* A flood of valid requests fills the nonces of the window: refused as
 * busy, never by forgetting a nonce that could still be replayed. */
static void
test_http_flood_is_refused_not_forgotten(void **state)
{
    (void)state;
    bc_peerauth_t *pa = open_text(SECRET_A);
    char value[BC_PEERAUTH_HTTP_MAX], nonce[BC_PEERAUTH_NONCE_LEN + 1], first[BC_PEERAUTH_HTTP_MAX];
    size_t fn = 0;
    for (int i = 0; i < BC_PEERAUTH_SEEN_MAX; i++) {
        size_t n = bc_peerauth_http_sign(pa, "GET", TARGET, "n-2", NOW, value, sizeof(value),
                                         nonce);
        if (i == 0) {
            memcpy(first, value, n + 1);
            fn = n;
        }
        assert_int_equal(bc_peerauth_http_check(pa, "GET", TARGET, value, n, NOW, NULL, NULL, 0),
                         BC_OK);
    }
    size_t n = bc_peerauth_http_sign(pa, "GET", TARGET, "n-2", NOW, value, sizeof(value), nonce);
    char why[256];
    assert_int_equal(bc_peerauth_http_check(pa, "GET", TARGET, value, n, NOW, NULL, why,
                                            sizeof(why)), BC_EBUSY);
    assert_int_equal(bc_peerauth_http_check(pa, "GET", TARGET, first, fn, NOW, NULL, why,
                                            sizeof(why)), BC_EACCES);
    /* once the window has passed, room again */
    uint64_t later = NOW + BC_PEERAUTH_HTTP_WINDOW_MS + 2;
    n = bc_peerauth_http_sign(pa, "GET", TARGET, "n-2", later, value, sizeof(value), nonce);
    assert_int_equal(bc_peerauth_http_check(pa, "GET", TARGET, value, n, later, NULL, why,
                                            sizeof(why)), BC_OK);
    bc_peerauth_free(pa);
}

/* ---- files ---- */

static void
test_file_load_and_reload(void **state)
{
    (void)state;
    char path[] = "/tmp/test_peerauth_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, SECRET_A "\n", sizeof(SECRET_A)), (ssize_t)sizeof(SECRET_A));
    close(fd);
    chmod(path, 0600);
    bc_peerauth_t *pa = NULL, *b = open_text(SECRET_B);
    char err[256], proof[BC_PEERAUTH_PROOF_LEN + 1];
    assert_int_equal(bc_peerauth_open(path, &pa, err, sizeof(err)), BC_OK);
    assert_string_equal(bc_peerauth_source(pa), path);
    assert_true(bc_peerauth_prove(b, BC_PEERAUTH_CLIENT, FIELDS, 3, proof));
    assert_false(bc_peerauth_verify(pa, BC_PEERAUTH_CLIENT, FIELDS, 3, proof, 64));
    /* the new secret after a reload */
    FILE *f = fopen(path, "w");
    fputs(SECRET_B "\n", f);
    fclose(f);
    assert_int_equal(bc_peerauth_reload(pa, err, sizeof(err)), BC_OK);
    assert_true(bc_peerauth_verify(pa, BC_PEERAUTH_CLIENT, FIELDS, 3, proof, 64));
    /* a broken edit keeps the secret in force */
    f = fopen(path, "w");
    fputs("too short\n", f);
    fclose(f);
    assert_int_equal(bc_peerauth_reload(pa, err, sizeof(err)), BC_EINVAL);
    assert_true(bc_peerauth_verify(pa, BC_PEERAUTH_CLIENT, FIELDS, 3, proof, 64));
    /* a file others may read is refused */
    chmod(path, 0644);
    f = fopen(path, "w");
    fputs(SECRET_A "\n", f);
    fclose(f);
    bc_peerauth_t *pa2 = NULL;
    assert_int_equal(bc_peerauth_open(path, &pa2, err, sizeof(err)), BC_EINVAL);
    assert_null(pa2);
    assert_non_null(strstr(err, "other users"));
    assert_int_equal(bc_peerauth_open("/nonexistent/secret", &pa2, err, sizeof(err)), BC_EIO);
    /* too short for a cluster secret */
    assert_int_equal(bc_peerauth_from_text("t", "short\n", &pa2, err, sizeof(err)), BC_EINVAL);
    unlink(path);
    bc_peerauth_free(pa);
    bc_peerauth_free(b);
    bc_peerauth_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proof_checks_out_with_the_same_secret_only),
        cmocka_unit_test(test_rotation_never_splits_the_cluster),
        cmocka_unit_test(test_nonces_are_fresh_hex),
        cmocka_unit_test(test_http_request_right_wrong_missing_replayed),
        cmocka_unit_test(test_http_parse_is_strict),
        cmocka_unit_test(test_http_flood_is_refused_not_forgotten),
        cmocka_unit_test(test_file_load_and_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
