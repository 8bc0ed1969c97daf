/*
 * test_origin.c -- the read-through origin's pure parts (node/origin/):
 * the key's percent-encoding and URL templates (url.h), the lifetime read
 * from Cache-Control / Expires / Date / Age (freshness.h), HTTP dates in
 * their three forms, and the "origin" config section and --origin flag.
 * Every key byte 0..255 is checked against the rule, and the encoding is
 * checked to decode back to the key exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bc_config.h"
#include "origin/freshness.h"
#include "origin/origin.h"
#include "origin/url.h"

/* ---- the encoding rule ---- */

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;                     /* lower case is never produced */
}

/* Decodes %XX (upper-case only); -1 on anything malformed. */
static long
decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 >= n) return -1;
        int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
        if (h < 0 || l < 0) return -1;
        out[o++] = (char)(h * 16 + l);
        i += 2;
    }
    return (long)o;
}

static void
test_every_byte(void **state)
{
    (void)state;
    for (int b = 0; b < 256; b++) {
        char key[1] = {(char)b}, out[4];
        bool unreserved = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') ||
                          (b >= '0' && b <= '9') || b == '-' || b == '.' || b == '_' ||
                          b == '~';
        for (int keep = 0; keep < 2; keep++) {
            size_t n = bc_origin_key_encode(key, 1, keep, out);
            if (unreserved || (keep && b == '/')) {
                assert_int_equal(n, 1);
                assert_int_equal((unsigned char)out[0], b);
            } else {
                char want[4];
                snprintf(want, sizeof(want), "%%%02X", b);
                assert_int_equal(n, 3);
                assert_memory_equal(out, want, 3);
            }
        }
    }
}

static void
test_encode_examples(void **state)
{
    (void)state;
    struct {
        const char *key;
        const char *path;          /* {key} */
        const char *escaped;       /* {key_escaped} */
    } cases[] = {
        {"img/cat.png", "img/cat.png", "img%2Fcat.png"},
        {"a b", "a%20b", "a%20b"},
        {"a?b=c&d=e", "a%3Fb%3Dc%26d%3De", "a%3Fb%3Dc%26d%3De"},
        {"100%", "100%25", "100%25"},
        {"%41", "%2541", "%2541"},
        {"a+b#c:d", "a%2Bb%23c%3Ad", "a%2Bb%23c%3Ad"},
        {"~_.-", "~_.-", "~_.-"},
        {"\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9", "%C3%A9t%C3%A9"},
        {"\xff\x00", "%FF%00", "%FF%00"},
        {"a//b/../c", "a//b/../c", "a%2F%2Fb%2F..%2Fc"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[64];
        size_t nkey = strlen(cases[i].key) + (i == 8 ? 1 : 0);   /* "\xff\x00": NUL included */
        size_t n = bc_origin_key_encode(cases[i].key, nkey, true, out);
        assert_int_equal(n, strlen(cases[i].path));
        assert_memory_equal(out, cases[i].path, n);
        n = bc_origin_key_encode(cases[i].key, nkey, false, out);
        assert_int_equal(n, strlen(cases[i].escaped));
        assert_memory_equal(out, cases[i].escaped, n);
    }
}

/* Random keys of every length: encoded, the URL decodes back exactly. */
static void
test_round_trip_random(void **state)
{
    uint64_t x = 88172645463325252ull;
    (void)state;
    for (int round = 0; round < 20000; round++) {
        char key[BC_KEY_MAX_LEN], url[BC_ORIGIN_URL_BUF], back[BC_ORIGIN_URL_BUF];
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t nkey = 1 + x % BC_KEY_MAX_LEN;
        for (size_t i = 0; i < nkey; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            key[i] = (char)(x & 0xff);
        }
        bool escaped = round & 1;
        const char *tmpl = escaped ? "http://h:1/v1/{key_escaped}?x=1" : "http://h:1/v1/{key}?x=1";
        size_t n = bc_origin_url_build(tmpl, key, nkey, url, sizeof(url));
        assert_true(n > 0);
        assert_int_equal(strlen(url), n);
        assert_memory_equal(url, "http://h:1/v1/", 14);
        assert_string_equal(url + n - 4, "?x=1");
        /* only unreserved, '/', '%' (and the template's own) in the part */
        for (size_t i = 14; i < n - 4; i++) {
            char c = url[i];
            assert_true((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || strchr("-._~%", c) != NULL ||
                        (!escaped && c == '/'));
        }
        long m = decode(url + 14, n - 18, back);
        assert_int_equal(m, (long)nkey);
        assert_memory_equal(back, key, nkey);
    }
}

static void
test_url_build_limits(void **state)
{
    char url[BC_ORIGIN_URL_BUF], key[BC_KEY_MAX_LEN];
    (void)state;
    memset(key, 0xff, sizeof(key));
    /* the worst key fits the documented buffer */
    char tmpl[BC_ORIGIN_URL_MAX];
    memset(tmpl, 'a', sizeof(tmpl));
    memcpy(tmpl, "http://h/", 9);
    memcpy(tmpl + BC_ORIGIN_URL_MAX - 6, "{key}", 6);
    assert_int_equal(bc_origin_template_check(tmpl, NULL, 0), BC_OK);
    size_t n = bc_origin_url_build(tmpl, key, sizeof(key), url, sizeof(url));
    assert_int_equal(n, BC_ORIGIN_URL_MAX - 6 + 3 * BC_KEY_MAX_LEN);
    /* too small a buffer: refused, never cut */
    assert_int_equal(bc_origin_url_build("http://h/{key}", "abc", 3, url, 10), 0);
    assert_int_equal(bc_origin_url_build("http://h/{key}", "abc", 3, url, 12), 0);
    assert_int_equal(bc_origin_url_build("http://h/{key}", "abc", 3, url, 13), 12);
    assert_int_equal(bc_origin_url_build("http://h/{key}", "a c", 3, url, 14), 0);
    assert_int_equal(bc_origin_url_build("http://h/{key}", "a c", 3, url, 15), 14);
    assert_string_equal(url, "http://h/a%20c");
    assert_int_equal(bc_origin_url_build("http://h/nothing", "abc", 3, url, sizeof(url)), 0);
}

static void
test_template_check(void **state)
{
    char err[BC_ERRBUF_LEN];
    (void)state;
    const char *good[] = {"http://resize:8000/v1/{key}", "HTTPS://h/{key_escaped}",
                          "http://h/get?k={key}&x=1", "http://[::1]:80/{key}",
                          "http://h:8000/{key}.png"};
    const char *bad[] = {"ftp://h/{key}", "http:///{key}", "http://h/x", "http://{key}/x",
                         "http://h:{key}/x", "http://h/{key}/{key}", "http://h/{key}{key_escaped}",
                         "http://h/a b/{key}", "http://h/#{key}", "http://h/\xc3\xa9/{key}",
                         "http://h/\t{key}", "", "h/{key}"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(bc_origin_template_check(good[i], err, sizeof(err)), BC_OK);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(bc_origin_template_check(bad[i], err, sizeof(err)), BC_EINVAL);
        assert_true(strlen(err) > 10);
    }
    char longer[BC_ORIGIN_URL_MAX + 10];
    memset(longer, 'a', sizeof(longer));
    memcpy(longer, "http://h/{key}", 14);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_equal(bc_origin_template_check(longer, err, sizeof(err)), BC_EINVAL);
}

/* ---- freshness ---- */

#define NOW 1700000000

static bool
verdict(const char *const *lines, uint32_t default_ttl, uint32_t max_ttl, uint32_t *ttl)
{
    bc_origin_fresh_t f;
    bc_origin_fresh_init(&f);
    for (size_t i = 0; lines[i] != NULL; i++) bc_origin_fresh_header(&f, lines[i], strlen(lines[i]));
    return bc_origin_fresh_ttl(&f, NOW, default_ttl, max_ttl, ttl);
}

#define STORES(ttl_want, dflt, max, ...)                                             \
    do {                                                                              \
        const char *const l_[] = {__VA_ARGS__, NULL};                                 \
        uint32_t t_ = 12345;                                                          \
        assert_true(verdict(l_, (dflt), (max), &t_));                                 \
        assert_int_equal(t_, (ttl_want));                                             \
    } while (0)
#define NO_STORE(dflt, max, ...)                                                     \
    do {                                                                              \
        const char *const l_[] = {__VA_ARGS__, NULL};                                 \
        uint32_t t_ = 0;                                                              \
        assert_false(verdict(l_, (dflt), (max), &t_));                                \
    } while (0)

static void
test_cache_control(void **state)
{
    (void)state;
    STORES(300, 300, 0, "Content-Type: image/png");           /* the default */
    STORES(0, 0, 0, "Content-Type: image/png");               /* default 0: no expiry */
    STORES(60, 0, 60, "Content-Type: image/png");             /* ... unless capped */
    STORES(60, 300, 0, "Cache-Control: max-age=60");
    STORES(60, 300, 0, "cache-control:   public,  MAX-AGE=60 ,must-revalidate\r\n");
    STORES(60, 300, 0, "Cache-Control: max-age=\"60\"");
    STORES(30, 300, 0, "Cache-Control: max-age=60, s-maxage=30");  /* shared cache */
    STORES(90, 300, 0, "Cache-Control: s-maxage=90", "Cache-Control: max-age=10");
    STORES(50, 300, 0, "Cache-Control: max-age=60", "Age: 10");
    STORES(10, 300, 0, "Cache-Control: max-age=60", "Cache-Control: max-age=10");
    STORES(20, 300, 20, "Cache-Control: max-age=60");       /* max_ttl caps */
    STORES(BC_ORIGIN_TTL_CAP, 300, 0, "Cache-Control: max-age=99999999999999999999999");
    STORES(60, 300, 0, "Cache-Control: max-age=60, foo=\"a,b\", bar");
    NO_STORE(300, 0, "Cache-Control: no-store");
    NO_STORE(300, 0, "Cache-Control: max-age=60, No-Cache");
    NO_STORE(300, 0, "Cache-Control: private");
    NO_STORE(300, 0, "Cache-Control: private=\"Set-Cookie\", max-age=60");
    NO_STORE(300, 0, "Cache-Control: max-age=0");
    NO_STORE(300, 0, "Cache-Control: max-age=10", "Age: 10");
    NO_STORE(300, 0, "Cache-Control: max-age=abc");
    NO_STORE(300, 0, "Cache-Control: max-age=-5");
    NO_STORE(300, 0, "Cache-Control: max-age=");
    NO_STORE(300, 0, "Cache-Control: max-age");
}

static void
test_expires(void **state)
{
    (void)state;
    /* NOW = Tue, 14 Nov 2023 22:13:20 GMT */
    STORES(100, 300, 0, "Expires: Tue, 14 Nov 2023 22:15:00 GMT");
    STORES(100, 300, 0, "Date: Tue, 14 Nov 2023 22:00:00 GMT",      /* origin's clock */
           "Expires: Tue, 14 Nov 2023 22:01:40 GMT");
    STORES(60, 300, 0, "Expires: Tue, 14 Nov 2023 22:15:00 GMT", "Cache-Control: max-age=60");
    STORES(90, 300, 0, "Expires: Tue, 14 Nov 2023 22:15:00 GMT", "Age: 10");
    NO_STORE(300, 0, "Expires: Tue, 14 Nov 2023 22:00:00 GMT");
    NO_STORE(300, 0, "Expires: 0");                                  /* "already expired" */
    NO_STORE(300, 0, "Expires: -1");
    NO_STORE(300, 0, "Expires: Tue, 14 Nov 2023 22:15:00 GMT", "Expires: nonsense");
    STORES(100, 300, 0, "Expires: Tuesday, 14-Nov-23 22:15:00 GMT");
    STORES(100, 300, 0, "Expires: Tue Nov 14 22:15:00 2023");
}

static void
test_http_dates(void **state)
{
    (void)state;
    const char *same[] = {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                          "Sun Nov  6 08:49:37 1994", "  Sun, 06 Nov 1994 08:49:37 GMT  "};
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_int_equal(bc_freshness_http_date(same[i], strlen(same[i])), 784111777);
    }
    assert_int_equal(bc_freshness_http_date("Thu, 01 Jan 1970 00:00:00 GMT", 29), 0);
    assert_int_equal(bc_freshness_http_date("Fri, 31 Dec 2049 23:59:59 GMT", 29), 2524607999);
    assert_int_equal(bc_freshness_http_date("Wednesday, 01-Jan-69 00:00:00 GMT", 33), 3124224000);
    const char *bad[] = {"", "0", "-1", "Sun, 6 Nov 1994 08:49:37 GMT",
                         "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
                         "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:49:37 GMT",
                         "Sun, 06 Nov 1994 08:60:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMTX",
                         "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994",
                         "Sun, 06 Nov 1994 08:49 GMT", "Sun, 31 Feb 1994 08:49:37 GMT x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bc_freshness_http_date(bad[i], strlen(bad[i])), -1);
    }
    /* not NUL-terminated: only len bytes are read */
    assert_int_equal(bc_freshness_http_date("Sun, 06 Nov 1994 08:49:37 GMTxxxx", 29), 784111777);
}

/* Hostile header lines never crash or read out of bounds. */
static void
test_fresh_garbage(void **state)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    (void)state;
    for (int round = 0; round < 20000; round++) {
        char line[96];
        bc_origin_fresh_t f;
        uint32_t ttl;
        static const char *const heads[] = {"Cache-Control:", "Expires:", "Date:", "Age:", ""};
        size_t h = strlen(heads[round % 5]);
        memcpy(line, heads[round % 5], h);
        size_t n = h + (size_t)(x % (sizeof(line) - h));
        for (size_t i = h; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line[i] = "0123456789=,\" -maxgeGMTSunNov:\t"[x % 31];
        }
        char *copy = malloc(n ? n : 1);    /* exact size: ASan sees any overread */
        memcpy(copy, line, n);
        bc_origin_fresh_init(&f);
        bc_origin_fresh_header(&f, copy, n);
        (void)bc_origin_fresh_ttl(&f, NOW, 300, 0, &ttl);
        (void)bc_freshness_http_date(copy, n);
        free(copy);
    }
}

/* ---- configuration ---- */

static bc_status_t
apply(bc_origin_config_t *cfg, const char *json, char *err, size_t err_len)
{
    bc_config_doc_t *doc;
    bc_status_t st = bc_config_parse("node.json", json, strlen(json), &doc, err, err_len);
    if (st != BC_OK) return st;
    st = bc_origin_config_apply_doc(cfg, doc, err, err_len);
    bc_config_free(doc);
    return st;
}

static void
test_config(void **state)
{
    bc_origin_config_t cfg;
    char err[BC_ERRBUF_LEN];
    (void)state;

    bc_origin_config_defaults(&cfg);
    assert_false(bc_origin_config_enabled(&cfg));
    assert_int_equal(apply(&cfg, "{}", err, sizeof(err)), BC_OK);
    assert_false(bc_origin_config_enabled(&cfg));
    assert_int_equal(apply(&cfg, "{\"origin\": {\"url\": \"http://r:8000/v1/{key}\", "
                                 "\"origins\": {\"img/\": \"http://i/{key}\", \"doc/\": "
                                 "\"https://d/{key_escaped}\"}, \"timeout_ms\": 250, "
                                 "\"negative_statuses\": [404, 403], \"flags_header\": \"X-F\", "
                                 "\"breaker_failures\": 0, \"default_ttl\": 0}}",
                           err, sizeof(err)), BC_OK);
    assert_true(bc_origin_config_enabled(&cfg));
    assert_string_equal(cfg.url, "http://r:8000/v1/{key}");
    assert_int_equal(cfg.nprefixes, 2);
    assert_string_equal(cfg.prefixes[0].prefix, "img/");
    assert_string_equal(cfg.prefixes[1].url, "https://d/{key_escaped}");
    assert_int_equal(cfg.timeout_ms, 250);
    assert_int_equal(cfg.connect_timeout_ms, 500);            /* untouched default */
    assert_int_equal(cfg.nnegative, 2);
    assert_int_equal(cfg.negative_statuses[1], 403);
    assert_string_equal(cfg.flags_header, "X-F");
    assert_int_equal(cfg.breaker_failures, 0);
    assert_int_equal(cfg.default_ttl, 0);

    const char *bad[] = {
        "{\"origin\": {\"urll\": \"x\"}}",
        "{\"origin\": {\"url\": \"ftp://x/{key}\"}}",
        "{\"origin\": {\"url\": 5}}",
        "{\"origin\": {\"origins\": [\"http://x/{key}\"]}}",
        "{\"origin\": {\"origins\": {\"img/\": 5}}}",
        "{\"origin\": {\"origins\": {\"\": \"http://x/{key}\"}}}",
        "{\"origin\": {\"origins\": {\"a b\": \"http://x/{key}\"}}}",
        "{\"origin\": {\"origins\": {\"img/\": \"http://x/nokey\"}}}",
        "{\"origin\": {\"timeout_ms\": 0}}",
        "{\"origin\": {\"max_inflight\": 0}}",
        "{\"origin\": {\"negative_statuses\": [500]}}",
        "{\"origin\": {\"negative_statuses\": 404}}",
        "{\"origin\": {\"negative_statuses\": [404,404,404,404,404,404,404,404,404]}}",
        "{\"origin\": {\"flags_header\": \"X-F: 1\"}}",
        "{\"origin\": 5}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bc_origin_config_t c;
        bc_origin_config_defaults(&c);
        err[0] = '\0';
        assert_int_equal(apply(&c, bad[i], err, sizeof(err)), BC_ECONFIG);
        assert_non_null(strstr(err, "node.json"));
    }
}

static void
test_flag(void **state)
{
    bc_origin_config_t cfg;
    char err[BC_ERRBUF_LEN];
    (void)state;
    bc_origin_config_defaults(&cfg);
    assert_int_equal(bc_origin_config_flag(&cfg, "http://a/{key}", err, sizeof(err)), BC_OK);
    assert_int_equal(bc_origin_config_flag(&cfg, "img/=http://b/{key}", err, sizeof(err)), BC_OK);
    assert_int_equal(bc_origin_config_flag(&cfg, "img/=http://c/{key}", err, sizeof(err)), BC_OK);
    /* the prefix ends at the first '=' (a prefix holding '=' needs the file) */
    assert_int_equal(bc_origin_config_flag(&cfg, "a=b/=http://d/{key}", err, sizeof(err)),
                     BC_EINVAL);
    assert_string_equal(cfg.url, "http://a/{key}");
    assert_int_equal(cfg.nprefixes, 1);                        /* img/ replaced */
    assert_string_equal(cfg.prefixes[0].prefix, "img/");
    assert_string_equal(cfg.prefixes[0].url, "http://c/{key}");
    assert_int_equal(bc_origin_config_flag(&cfg, "nope", err, sizeof(err)), BC_EINVAL);
    assert_int_equal(bc_origin_config_flag(&cfg, "=http://x/{key}", err, sizeof(err)), BC_EINVAL);
    assert_int_equal(bc_origin_config_flag(&cfg, "p=x/{key}", err, sizeof(err)), BC_EINVAL);
    for (unsigned i = cfg.nprefixes; i < BC_ORIGIN_MAX_PREFIXES; i++) {
        char v[64];
        snprintf(v, sizeof(v), "p%u=http://x/{key}", i);
        assert_int_equal(bc_origin_config_flag(&cfg, v, err, sizeof(err)), BC_OK);
    }
    assert_int_equal(bc_origin_config_flag(&cfg, "one-too-many=http://x/{key}", err, sizeof(err)),
                     BC_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_encode_examples),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_url_build_limits),
        cmocka_unit_test(test_template_check),
        cmocka_unit_test(test_cache_control),
        cmocka_unit_test(test_expires),
        cmocka_unit_test(test_http_dates),
        cmocka_unit_test(test_fresh_garbage),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
