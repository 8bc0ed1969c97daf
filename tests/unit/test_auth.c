/*
 * test_auth.c -- the parts of access control that need no server:
 * secret files (common/bc_secret.h), the admin token check and the
 * browser checks (common/bc_auth.h), ZooKeeper digest ids (common/bc_zk.h).
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

#include "bc_auth.h"
#include "bc_secret.h"
#include "bc_zk.h"

#define TOKEN_A "Zm9vYmFyLXRva2VuLWFhYWFhYWFh"
#define TOKEN_B "c2Vjb25kLXRva2VuLWJiYmJiYmJi"

/* Writes text to a fresh temporary file with mode; returns its path. */
static char *
temp_file(const char *text, mode_t mode)
{
    char *path = strdup("/tmp/bc-test-auth-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void
drop_file(char *path)
{
    unlink(path);
    free(path);
}

/* ---- secret files ---- */

static void
test_secret_parse_values_comments_crlf(void **state)
{
    (void)state;
    bc_secret_t s;
    char err[256];
    const char *text = "# the admin token\r\n\n   " TOKEN_A "  \r\n\t" TOKEN_B "\n# old\n";
    assert_int_equal(bc_secret_parse("t", text, strlen(text), &bc_secret_rules_token, &s, err,
                                     sizeof(err)), BC_OK);
    assert_int_equal(s.count, 2);
    assert_string_equal(s.value[0], TOKEN_A);   /* the first is the current one */
    assert_string_equal(s.value[1], TOKEN_B);
    assert_true(bc_secret_match(&s, TOKEN_A, strlen(TOKEN_A)));
    assert_true(bc_secret_match(&s, TOKEN_B, strlen(TOKEN_B)));
    assert_false(bc_secret_match(&s, TOKEN_A "x", strlen(TOKEN_A) + 1));
    assert_false(bc_secret_match(&s, TOKEN_A, strlen(TOKEN_A) - 1));
    assert_false(bc_secret_match(&s, "", 0));
    bc_secret_clear(&s);
    assert_int_equal(s.count, 0);
    assert_null(s.value[0]);
}

static void
test_secret_parse_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *fragment;
    } bad[] = {
        {"", "holds no"},
        {"# only a comment\n\n", "holds no"},
        {"short\n", "too short"},
        {"a token with spaces in it\n", "space"},
        {"tokentokentokentoken\x01x\n", "non-printable"},
        {"token\"token\"tokentoken\n", "bearer token cannot"},
        {"==tokentokentokentoken\n", "bearer token cannot"},
        {"t1t1t1t1t1t1t1t1t1\nt2t2t2t2t2t2t2t2\nt3t3t3t3t3t3t3t3\nt4t4t4t4t4t4t4t4\n"
         "t5t5t5t5t5t5t5t5\nt6t6t6t6t6t6t6t6\nt7t7t7t7t7t7t7t7\nt8t8t8t8t8t8t8t8\n"
         "t9t9t9t9t9t9t9t9\n", "more than 8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bc_secret_t s;
        char err[256] = "";
        assert_int_equal(bc_secret_parse("f", bad[i].text, strlen(bad[i].text),
                                         &bc_secret_rules_token, &s, err, sizeof(err)),
                         BC_EINVAL);
        if (strstr(err, bad[i].fragment) == NULL) fail_msg("case %zu: \"%s\"", i, err);
        assert_int_equal(s.count, 0);
        /* the message never quotes the value */
        assert_null(strstr(err, "tokentoken"));
    }
    /* user:password for ZooKeeper */
    bc_secret_t s;
    char err[256];
    assert_int_equal(bc_secret_parse("z", "nocolon", 7, &bc_secret_rules_zk, &s, err, sizeof(err)),
                     BC_EINVAL);
    assert_int_equal(bc_secret_parse("z", ":pw", 3, &bc_secret_rules_zk, &s, err, sizeof(err)),
                     BC_EINVAL);
    assert_int_equal(bc_secret_parse("z", "user:", 5, &bc_secret_rules_zk, &s, err, sizeof(err)),
                     BC_EINVAL);
    assert_int_equal(bc_secret_parse("z", "a:b\nc:d\n", 8, &bc_secret_rules_zk, &s, err,
                                     sizeof(err)), BC_EINVAL);
    assert_int_equal(bc_secret_parse("z", "user:pa:ss\n", 11, &bc_secret_rules_zk, &s, err,
                                     sizeof(err)), BC_OK);
    char user[16];
    bc_secret_user(&s, 0, user, sizeof(user));
    assert_string_equal(user, "user");
    bc_secret_clear(&s);
    /* the cluster secret (peer links) wants 32 characters at least */
    assert_int_equal(bc_secret_parse("c", TOKEN_A, strlen(TOKEN_A), &bc_secret_rules_cluster, &s,
                                     err, sizeof(err)), BC_EINVAL);
}

static void
test_secret_file_permissions(void **state)
{
    (void)state;
    bc_secret_t s;
    char err[512];
    char *ok = temp_file(TOKEN_A "\n", 0600);
    assert_int_equal(bc_secret_load(ok, &bc_secret_rules_token, &s, err, sizeof(err)), BC_OK);
    assert_string_equal(s.value[0], TOKEN_A);
    bc_secret_clear(&s);
    assert_int_equal(chmod(ok, 0640), 0);   /* group-readable (root:bucketcache) is fine */
    assert_int_equal(bc_secret_load(ok, &bc_secret_rules_token, &s, err, sizeof(err)), BC_OK);
    bc_secret_clear(&s);
    assert_int_equal(chmod(ok, 0644), 0);
    assert_int_equal(bc_secret_load(ok, &bc_secret_rules_token, &s, err, sizeof(err)), BC_EINVAL);
    assert_non_null(strstr(err, "other users can read it"));
    assert_non_null(strstr(err, "chmod o-rwx"));
    drop_file(ok);
    assert_int_equal(bc_secret_load("/nonexistent/token", &bc_secret_rules_token, &s, err,
                                    sizeof(err)), BC_EIO);
    assert_int_equal(bc_secret_load("/tmp", &bc_secret_rules_token, &s, err, sizeof(err)),
                     BC_EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
    /* systemd credentials */
    char *cred = temp_file(TOKEN_B "\n", 0400);
    char dir[256], name[128];
    snprintf(dir, sizeof(dir), "%s", cred);
    char *slash = strrchr(dir, '/');
    snprintf(name, sizeof(name), "credential:%s", slash + 1);
    *slash = '\0';
    unsetenv("CREDENTIALS_DIRECTORY");
    assert_int_equal(bc_secret_load(name, &bc_secret_rules_token, &s, err, sizeof(err)),
                     BC_EINVAL);
    assert_non_null(strstr(err, "CREDENTIALS_DIRECTORY"));
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    assert_int_equal(bc_secret_load(name, &bc_secret_rules_token, &s, err, sizeof(err)), BC_OK);
    assert_string_equal(s.value[0], TOKEN_B);
    bc_secret_clear(&s);
    unsetenv("CREDENTIALS_DIRECTORY");
    drop_file(cred);
}

/* ---- the token check ---- */

static void
test_bearer_parse(void **state)
{
    (void)state;
    const char *tok;
    size_t n;
    static const char *const good[] = {"Bearer abc", "bearer abc", "BEARER   abc",
                                       "Bearer abc=", "Bearer abc==  ", "Bearer a-b.c_d~e+f/g\t"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(bc_auth_parse_bearer(good[i], strlen(good[i]), &tok, &n));
        assert_true(n >= 3 && strncmp(tok, "a", 1) == 0);
    }
    assert_true(bc_auth_parse_bearer("Bearer abc==", 12, &tok, &n));
    assert_int_equal(n, 5);
    static const char *const bad[] = {"", "Bearer", "Bearer ", "Bearerabc", "Basic abc",
                                      "Bearer a b", "Bearer =abc", "Bearer ab=c", "Bearer ab\"c",
                                      " Bearer abc", "Bearer\tabc", "Bearer abc\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bc_auth_parse_bearer(bad[i], strlen(bad[i]), &tok, &n)) fail_msg("accepted \"%s\"", bad[i]);
    }
    /* an embedded NUL ends nothing: the length rules */
    assert_false(bc_auth_parse_bearer("Bearer ab\0cd", 12, &tok, &n));
}

static void
test_token_check_and_rotation(void **state)
{
    (void)state;
    bc_auth_t *auth;
    char err[256], cur[300];
    char *path = temp_file("# rotation: the new one first\n" TOKEN_A "\n", 0600);
    assert_int_equal(bc_auth_open(path, &auth, err, sizeof(err)), BC_OK);
    assert_int_equal(bc_auth_check(auth, NULL), BC_AUTH_MISSING);
    assert_int_equal(bc_auth_check(auth, "Basic dXNlcjpwdw=="), BC_AUTH_MALFORMED);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_A), BC_AUTH_OK);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_B), BC_AUTH_WRONG);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_A "A"), BC_AUTH_WRONG);
    assert_true(bc_auth_current(auth, cur, sizeof(cur)));
    assert_string_equal(cur, TOKEN_A);
    assert_false(bc_auth_current(auth, cur, 8));   /* too small: nothing, not a prefix */
    /* overlap: the new token first, the old still accepted */
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n%s\n", TOKEN_B, TOKEN_A);
    fclose(f);
    assert_int_equal(bc_auth_reload(auth, err, sizeof(err)), BC_OK);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_A), BC_AUTH_OK);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_B), BC_AUTH_OK);
    assert_true(bc_auth_current(auth, cur, sizeof(cur)));
    assert_string_equal(cur, TOKEN_B);
    /* the old one removed: a captured copy stops working */
    f = fopen(path, "w");
    fprintf(f, "%s\n", TOKEN_B);
    fclose(f);
    assert_int_equal(bc_auth_reload(auth, err, sizeof(err)), BC_OK);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_A), BC_AUTH_WRONG);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_B), BC_AUTH_OK);
    /* a broken edit keeps the tokens in force */
    f = fopen(path, "w");
    fprintf(f, "oops\n");
    fclose(f);
    assert_int_equal(bc_auth_reload(auth, err, sizeof(err)), BC_EINVAL);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_B), BC_AUTH_OK);
    bc_auth_free(auth);
    drop_file(path);
    /* from the environment */
    assert_int_equal(bc_auth_from_text("$BUCKETCACHE_TOKEN", TOKEN_A, &auth, err, sizeof(err)),
                     BC_OK);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_A), BC_AUTH_OK);
    assert_int_equal(bc_auth_reload(auth, err, sizeof(err)), BC_OK);
    assert_int_equal(bc_auth_check(auth, "Bearer " TOKEN_A), BC_AUTH_OK);
    bc_auth_free(auth);
    assert_int_equal(bc_auth_from_text("$BUCKETCACHE_TOKEN", "short", &auth, err, sizeof(err)),
                     BC_EINVAL);
    assert_null(auth);
}

/* ---- the browser checks ---- */

static void
test_cross_site(void **state)
{
    (void)state;
    const char *host = "127.0.0.1:11290";
    /* not a browser: no opinion */
    assert_null(bc_auth_cross_site(NULL, NULL, host));
    /* same origin */
    assert_null(bc_auth_cross_site("same-origin", "http://127.0.0.1:11290", host));
    assert_null(bc_auth_cross_site(NULL, "http://127.0.0.1:11290", host));
    assert_null(bc_auth_cross_site(NULL, "HTTP://LOCALHOST:8080", "localhost:8080"));
    assert_null(bc_auth_cross_site("none", NULL, host));
    /* refused */
    assert_non_null(bc_auth_cross_site("cross-site", NULL, host));
    assert_non_null(bc_auth_cross_site("same-site", NULL, host));
    assert_non_null(bc_auth_cross_site("weird", NULL, host));
    assert_non_null(bc_auth_cross_site(NULL, "http://evil.example", host));
    assert_non_null(bc_auth_cross_site(NULL, "http://127.0.0.1:11291", host));
    assert_non_null(bc_auth_cross_site(NULL, "http://127.0.0.1:11290.evil.example", host));
    assert_non_null(bc_auth_cross_site(NULL, "null", host));
    assert_non_null(bc_auth_cross_site(NULL, "http://127.0.0.1:11290/path", host));
    assert_non_null(bc_auth_cross_site(NULL, "127.0.0.1:11290", host));
    assert_non_null(bc_auth_cross_site(NULL, "http://127.0.0.1:11290", NULL));
    /* both given: both must agree */
    assert_non_null(bc_auth_cross_site("same-origin", "http://evil.example", host));
    assert_non_null(bc_auth_cross_site("cross-site", "http://127.0.0.1:11290", host));
}

static void
test_host_is_loopback(void **state)
{
    (void)state;
    static const char *const yes[] = {"127.0.0.1", "127.0.0.1:11290", "127.1.2.3:80",
                                      "localhost", "LOCALHOST:9", "localhost.:9", "a.localhost",
                                      "[::1]", "[::1]:11290"};
    static const char *const no[] = {"", "evil.example", "evil.example:11290", "10.0.0.5",
                                      "128.0.0.1", "localhost.evil.example", "[::2]:1", "::1",
                                      "[::1", "[::1]x", "127.0.0.1.evil.example"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!bc_auth_host_is_loopback(yes[i])) fail_msg("refused \"%s\"", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (bc_auth_host_is_loopback(no[i])) fail_msg("accepted \"%s\"", no[i]);
    }
    assert_true(bc_auth_host_is_loopback(NULL));   /* HTTP/1.0: no Host */
}

static void
test_media_type(void **state)
{
    (void)state;
    const char *json = "application/json";
    assert_true(bc_auth_media_type_in("application/json", json));
    assert_true(bc_auth_media_type_in("Application/JSON; charset=utf-8", json));
    assert_true(bc_auth_media_type_in(" application/json ;x=y", json));
    assert_false(bc_auth_media_type_in("text/plain", json));
    assert_false(bc_auth_media_type_in("application/x-www-form-urlencoded", json));
    assert_false(bc_auth_media_type_in("multipart/form-data; boundary=x", json));
    assert_false(bc_auth_media_type_in("application/jsonp", json));
    assert_false(bc_auth_media_type_in("", json));
    assert_false(bc_auth_media_type_in(NULL, json));
    const char *both = "application/octet-stream, application/json";
    assert_true(bc_auth_media_type_in("application/octet-stream", both));
    assert_true(bc_auth_media_type_in("application/json", both));
    assert_false(bc_auth_media_type_in("application/octet", both));
}

/* ---- ZooKeeper digest identities ---- */

static void
test_zk_digest_id(void **state)
{
    (void)state;
    bc_zk_auth_t a;
    char err[256], id[128], user[32];
    assert_int_equal(bc_zk_auth_parse("t", "writer:s3cret-pw\n", &a, err, sizeof(err)), BC_OK);
    /* what org.apache.zookeeper.server.auth.DigestAuthenticationProvider prints */
    assert_int_equal(bc_zk_digest_id(&a, id, sizeof(id)), BC_OK);
    assert_string_equal(id, "writer:tAi/vL+1UaZ1KeOgI9mpccRIxkA=");
    bc_zk_auth_user(&a, user, sizeof(user));
    assert_string_equal(user, "writer");
    assert_int_equal(bc_zk_digest_id(&a, id, 10), BC_ETOOLARGE);
    bc_zk_auth_clear(&a);
    assert_int_equal(bc_zk_auth_parse("t", "no-colon", &a, err, sizeof(err)), BC_EINVAL);
    bc_zk_acl_t *acl;
    assert_int_equal(bc_zk_auth_parse("t", "writer:s3cret-pw", &a, err, sizeof(err)), BC_OK);
    const bc_zk_auth_t *who[5] = {&a, &a, &a, &a, &a};
    assert_int_equal(bc_zk_acl_build(who, 1, NULL, 0, &acl), BC_OK);
    bc_zk_acl_free(acl);
    assert_int_equal(bc_zk_acl_build(who, 2, who, 2, &acl), BC_OK);
    bc_zk_acl_free(acl);
    assert_int_equal(bc_zk_acl_build(who, 0, who, 1, &acl), BC_EINVAL);
    assert_int_equal(bc_zk_acl_build(who, 3, who, 2, &acl), BC_EINVAL);
    assert_null(acl);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_parse_values_comments_crlf),
        cmocka_unit_test(test_secret_parse_refusals),
        cmocka_unit_test(test_secret_file_permissions),
        cmocka_unit_test(test_bearer_parse),
        cmocka_unit_test(test_token_check_and_rotation),
        cmocka_unit_test(test_cross_site),
        cmocka_unit_test(test_host_is_loopback),
        cmocka_unit_test(test_media_type),
        cmocka_unit_test(test_zk_digest_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
