/*
 * test_config.c -- common/bc_config (JSON files, typed getters, value
 * syntaxes) and node/config (defaults, flags, --config, validation).
 *
 * Error messages are checked word for word where people read them: they
 * must name the file and the field (or the flag) and show the bad value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bc_config.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "config.h"

/* ---- helpers ---- */

static bc_config_doc_t *
parse_ok(const char *text)
{
    bc_config_doc_t *doc = NULL;
    char err[BC_ERRBUF_LEN] = "";
    bc_status_t st = bc_config_parse("t.json", text, strlen(text), &doc, err, sizeof(err));
    if (st != BC_OK) fail_msg("parse failed: %s", err);
    return doc;
}

/* Writes text to a fresh temporary file; returns its malloc'd path. */
static char *
temp_file(const char *text, size_t len)
{
    /* In the working directory (ctest runs tests in the build tree). */
    char *path = strdup("bc-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static char *
temp_text(const char *text)
{
    return temp_file(text, strlen(text));
}

/* Runs bc_node_config_parse_args on a NULL-terminated list of arguments. */
static bc_status_t
parse_args(bc_node_config_t *cfg, bc_node_config_action_t *action, char *err, size_t err_len,
           ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;

    argv[argc++] = (char *)"bucketcache-node";
    va_start(ap, err_len);
    for (;;) {
        char *a = va_arg(ap, char *);
        if (a == NULL) break;
        assert_true(argc < 63);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    return bc_node_config_parse_args(cfg, argc, argv, action, err, err_len);
}

#define ARGS(...) parse_args(&cfg, &action, err, sizeof(err), __VA_ARGS__, (char *)NULL)

/* ---- value syntaxes ---- */

static void
test_parse_int(void **state)
{
    int64_t v = 0;
    (void)state;
    assert_int_equal(bc_parse_int("0", 0, 10, &v), BC_OK);
    assert_int_equal(v, 0);
    assert_int_equal(bc_parse_int("65535", 0, 65535, &v), BC_OK);
    assert_int_equal(v, 65535);
    assert_int_equal(bc_parse_int("-5", -10, 10, &v), BC_OK);
    assert_int_equal(v, -5);
    assert_int_equal(bc_parse_int("-9223372036854775808", INT64_MIN, 0, &v), BC_OK);
    assert_true(v == INT64_MIN);
    v = 7;
    assert_int_equal(bc_parse_int("65536", 0, 65535, &v), BC_EINVAL);
    assert_int_equal(v, 7);  /* untouched on error */
    assert_int_equal(bc_parse_int("", 0, 10, &v), BC_EINVAL);
    assert_int_equal(bc_parse_int("-", -10, 10, &v), BC_EINVAL);
    assert_int_equal(bc_parse_int("+1", 0, 10, &v), BC_EINVAL);
    assert_int_equal(bc_parse_int(" 1", 0, 10, &v), BC_EINVAL);
    assert_int_equal(bc_parse_int("1 ", 0, 10, &v), BC_EINVAL);
    assert_int_equal(bc_parse_int("0x10", 0, 100, &v), BC_EINVAL);
    assert_int_equal(bc_parse_int("abc", 0, 10, &v), BC_EINVAL);
    assert_int_equal(bc_parse_int("99999999999999999999999", 0, INT64_MAX, &v), BC_EINVAL);
    assert_int_equal(bc_parse_int("9223372036854775808", 0, INT64_MAX, &v), BC_EINVAL);
    assert_int_equal(bc_parse_int(NULL, 0, 10, &v), BC_EINVAL);
}

/* bc_parse_u64n: the whole uint64 range, to the last value, and nothing
 * past it or beside digits. */
static void
test_parse_u64n(void **state)
{
    (void)state;
    uint64_t v = 7;
#define U64N(lit, max, out) bc_parse_u64n((lit), sizeof(lit) - 1, (max), (out))
    assert_true(U64N("0", UINT64_MAX, &v) && v == 0);
    assert_true(U64N("00000000000000000001", UINT64_MAX, &v) && v == 1);
    assert_true(U64N("1844674407370955161", UINT64_MAX, &v) && v == 1844674407370955161ull);
    assert_true(U64N("18446744073709551609", UINT64_MAX, &v) && v == 18446744073709551609ull);
    for (unsigned d = 0; d <= 5; d++) {
        char s[21];
        memcpy(s, "1844674407370955161", 19);
        s[19] = (char)('0' + d);
        s[20] = '\0';
        v = 0;
        assert_true(bc_parse_u64n(s, 20, UINT64_MAX, &v));
        assert_true(v == 18446744073709551610ull + d);
    }
    assert_true(U64N("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
    v = 7;
    assert_false(U64N("18446744073709551616", UINT64_MAX, &v));
    assert_false(U64N("18446744073709551619", UINT64_MAX, &v));
    assert_false(U64N("18446744073709551620", UINT64_MAX, &v));
    assert_false(U64N("99999999999999999999", UINT64_MAX, &v));
    assert_false(U64N("100000000000000000000", UINT64_MAX, &v));
    assert_true(v == 7);                                    /* untouched on failure */
    assert_true(U64N("4294967295", UINT32_MAX, &v) && v == UINT32_MAX);
    assert_false(U64N("4294967296", UINT32_MAX, &v));
    assert_false(U64N("18446744073709551615", UINT64_MAX - 1, &v));
    assert_false(U64N("", UINT64_MAX, &v));
    assert_false(U64N("-1", UINT64_MAX, &v));
    assert_false(U64N("+1", UINT64_MAX, &v));
    assert_false(U64N(" 1", UINT64_MAX, &v));
    assert_false(U64N("1x", UINT64_MAX, &v));
    assert_false(bc_parse_u64n(NULL, 1, UINT64_MAX, &v));
    /* len bytes only: what follows is not read */
    assert_true(bc_parse_u64n("12junk", 2, UINT64_MAX, &v) && v == 12);
#undef U64N
}

static void
test_parse_size(void **state)
{
    uint64_t v = 0;
    (void)state;
    assert_int_equal(bc_parse_size("1024", 1, &v), BC_OK);
    assert_int_equal(v, 1024);
    assert_int_equal(bc_parse_size("1k", 1, &v), BC_OK);
    assert_int_equal(v, 1024);
    assert_int_equal(bc_parse_size("1K", 1, &v), BC_OK);
    assert_int_equal(v, 1024);
    assert_int_equal(bc_parse_size("2m", 1, &v), BC_OK);
    assert_int_equal(v, 2u * 1024 * 1024);
    assert_int_equal(bc_parse_size("3G", 1, &v), BC_OK);
    assert_int_equal(v, 3ull << 30);
    assert_int_equal(bc_parse_size("64MB", 1, &v), BC_OK);
    assert_int_equal(v, 64ull << 20);
    assert_int_equal(bc_parse_size("1MiB", 1, &v), BC_OK);
    assert_int_equal(v, 1ull << 20);
    assert_int_equal(bc_parse_size("512kb", 1, &v), BC_OK);
    assert_int_equal(v, 512ull << 10);
    /* The default unit applies to bare numbers only (-m counts megabytes). */
    assert_int_equal(bc_parse_size("64", 1u << 20, &v), BC_OK);
    assert_int_equal(v, 64ull << 20);
    assert_int_equal(bc_parse_size("512k", 1u << 20, &v), BC_OK);
    assert_int_equal(v, 512ull << 10);

    assert_int_equal(bc_parse_size("", 1, &v), BC_EINVAL);
    assert_int_equal(bc_parse_size("k", 1, &v), BC_EINVAL);
    assert_int_equal(bc_parse_size("1x", 1, &v), BC_EINVAL);
    assert_int_equal(bc_parse_size("1.5m", 1, &v), BC_EINVAL);
    assert_int_equal(bc_parse_size("-1", 1, &v), BC_EINVAL);
    assert_int_equal(bc_parse_size("1mm", 1, &v), BC_EINVAL);
    assert_int_equal(bc_parse_size("1mi", 1, &v), BC_EINVAL);
    assert_int_equal(bc_parse_size(" 1", 1, &v), BC_EINVAL);
    assert_int_equal(bc_parse_size("1", 0, &v), BC_EINVAL);
    assert_int_equal(bc_parse_size("99999999999999999999999", 1, &v), BC_ETOOLARGE);
    assert_int_equal(bc_parse_size("17179869184g", 1, &v), BC_ETOOLARGE);
}

static void
test_parse_hostport(void **state)
{
    bc_hostport_t hp;
    char long_host[300];
    (void)state;

    assert_int_equal(bc_parse_hostport("example.com:2181", 0, &hp), BC_OK);
    assert_string_equal(hp.host, "example.com");
    assert_int_equal(hp.port, 2181);
    assert_int_equal(bc_parse_hostport("127.0.0.1:1", 0, &hp), BC_OK);
    assert_string_equal(hp.host, "127.0.0.1");
    assert_int_equal(hp.port, 1);
    assert_int_equal(bc_parse_hostport("[::1]:11211", 0, &hp), BC_OK);
    assert_string_equal(hp.host, "::1");
    assert_int_equal(hp.port, 11211);
    assert_int_equal(bc_parse_hostport("[fe80::1%eth0]:80", 0, &hp), BC_OK);
    assert_string_equal(hp.host, "fe80::1%eth0");
    /* Default port: a host alone is accepted. */
    assert_int_equal(bc_parse_hostport("zk1", 2181, &hp), BC_OK);
    assert_string_equal(hp.host, "zk1");
    assert_int_equal(hp.port, 2181);
    assert_int_equal(bc_parse_hostport("::1", 2181, &hp), BC_OK);
    assert_string_equal(hp.host, "::1");
    assert_int_equal(hp.port, 2181);
    assert_int_equal(bc_parse_hostport("[::1]", 2181, &hp), BC_OK);
    assert_string_equal(hp.host, "::1");

    assert_int_equal(bc_parse_hostport("zk1", 0, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport("", 2181, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport(":2181", 0, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport("h:0", 0, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport("h:65536", 0, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport("h:abc", 0, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport("h:", 0, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport("[::1", 0, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport("[::1]x", 0, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport("[zz]:1", 0, &hp), BC_EINVAL);
    assert_int_equal(bc_parse_hostport("a b:1", 0, &hp), BC_EINVAL);
    memset(long_host, 'a', sizeof(long_host) - 1);
    long_host[sizeof(long_host) - 1] = '\0';
    assert_int_equal(bc_parse_hostport(long_host, 1, &hp), BC_EINVAL);
}

/* ---- documents ---- */

static void
test_parse_errors(void **state)
{
    bc_config_doc_t *doc = (bc_config_doc_t *)0x1;
    char err[BC_ERRBUF_LEN];
    const char *bad = "{\n  \"a\": 1,\n  \"b\": }\n";
    (void)state;

    assert_int_equal(bc_config_parse("f.json", bad, strlen(bad), &doc, err, sizeof(err)),
                     BC_ECONFIG);
    assert_null(doc);
    assert_string_equal(err, "f.json: not valid JSON: syntax error at line 3, column 8");

    assert_int_equal(bc_config_parse("f.json", "[1,2]", 5, &doc, err, sizeof(err)), BC_ECONFIG);
    assert_string_equal(err, "f.json: expected a JSON object at the top level, got an array");

    assert_int_equal(bc_config_parse("f.json", "{} {}", 5, &doc, err, sizeof(err)), BC_ECONFIG);
    assert_non_null(strstr(err, "unexpected text after the top-level value at line 1, column 4"));

    assert_int_equal(bc_config_parse("f.json", "{\"a\":\0}", 7, &doc, err, sizeof(err)),
                     BC_ECONFIG);
    assert_non_null(strstr(err, "NUL byte"));

    assert_int_equal(bc_config_parse("f.json", "", 0, &doc, err, sizeof(err)), BC_ECONFIG);

    /* Not NUL-terminated: only len bytes are read. */
    assert_int_equal(bc_config_parse("f.json", "{}garbage", 2, &doc, err, sizeof(err)), BC_OK);
    bc_config_free(doc);

    /* Deep nesting is refused, not a stack overflow. */
    {
        size_t depth = 100000;
        char *deep = malloc(depth * 2 + 3);
        deep[0] = '{';
        deep[1] = '"';
        deep[2] = '"';
        size_t n = 3;
        deep[n++] = ':';
        for (size_t i = 0; i < depth - 4; i++) deep[n++] = '[';
        assert_int_equal(bc_config_parse("f.json", deep, n, &doc, err, sizeof(err)), BC_ECONFIG);
        free(deep);
    }
}

static void
test_typed_getters(void **state)
{
    bc_config_doc_t *doc = parse_ok(
        "{\"admin\": {\"port\": \"abc\", \"listen\": \"127.0.0.1\", \"big\": 70000,"
        " \"frac\": 1.5, \"ok\": 8080, \"flag\": true, \"nul\": null},"
        " \"cache\": {\"policy\": \"lfu\", \"bad\": \"mru\", \"size\": \"2m\", \"n\": 4096,"
        "            \"badsize\": \"2q\", \"long\": \"abcdefghijklmnopqrstuvwxyz\","
        "            \"ctl\": \"a\\u0001b\", \"empty\": \"\"},"
        " \"scalar\": 5}");
    char err[BC_ERRBUF_LEN];
    int64_t v = -1;
    bool found = true, b = false;
    char buf[16];
    int idx = -1;
    uint64_t size = 0;
    static const char *const policies[] = {"lru", "lfu", "fifo", NULL};
    (void)state;

    /* The message format people read. */
    assert_int_equal(bc_config_get_int(doc, "admin.port", 0, 65535, &v, &found, err,
                                       sizeof(err)), BC_ECONFIG);
    assert_string_equal(err, "t.json: field \"admin.port\": expected an integer 0..65535, "
                             "got \"abc\"");
    assert_int_equal(bc_config_get_int(doc, "admin.big", 1, 65535, &v, &found, err,
                                       sizeof(err)), BC_ECONFIG);
    assert_string_equal(err, "t.json: field \"admin.big\": expected an integer 1..65535, "
                             "got 70000");
    assert_int_equal(bc_config_get_int(doc, "admin.frac", 0, 10, &v, &found, err, sizeof(err)),
                     BC_ECONFIG);
    assert_non_null(strstr(err, "got 1.5"));
    assert_int_equal(bc_config_get_int(doc, "admin.nul", 0, 10, &v, &found, err, sizeof(err)),
                     BC_ECONFIG);
    assert_non_null(strstr(err, "got null"));
    assert_int_equal(bc_config_get_int(doc, "admin", 0, 10, &v, &found, err, sizeof(err)),
                     BC_ECONFIG);
    assert_non_null(strstr(err, "got an object"));

    assert_int_equal(bc_config_get_int(doc, "admin.ok", 1, 65535, &v, &found, err,
                                       sizeof(err)), BC_OK);
    assert_true(found);
    assert_int_equal(v, 8080);

    /* Absent: not an error, value untouched. */
    v = 42;
    assert_int_equal(bc_config_get_int(doc, "admin.missing", 0, 10, &v, &found, err,
                                       sizeof(err)), BC_OK);
    assert_false(found);
    assert_int_equal(v, 42);
    assert_int_equal(bc_config_get_int(doc, "nosection.x", 0, 10, &v, &found, err,
                                       sizeof(err)), BC_OK);
    assert_false(found);
    /* A prefix that is not an object is an error naming the prefix. */
    assert_int_equal(bc_config_get_int(doc, "scalar.x", 0, 10, &v, &found, err, sizeof(err)),
                     BC_ECONFIG);
    assert_string_equal(err, "t.json: field \"scalar\": expected an object, got 5");

    assert_int_equal(bc_config_get_bool(doc, "admin.flag", &b, &found, err, sizeof(err)), BC_OK);
    assert_true(b);
    assert_int_equal(bc_config_get_bool(doc, "admin.ok", &b, &found, err, sizeof(err)),
                     BC_ECONFIG);
    assert_non_null(strstr(err, "expected true or false, got 8080"));

    assert_int_equal(bc_config_get_string(doc, "admin.listen", buf, sizeof(buf), false, &found,
                                          err, sizeof(err)), BC_OK);
    assert_string_equal(buf, "127.0.0.1");
    assert_int_equal(bc_config_get_string(doc, "cache.long", buf, sizeof(buf), false, &found,
                                          err, sizeof(err)), BC_ECONFIG);
    assert_non_null(strstr(err, "expected a string of at most 15 bytes"));
    assert_int_equal(bc_config_get_string(doc, "cache.ctl", buf, sizeof(buf), false, &found,
                                          err, sizeof(err)), BC_ECONFIG);
    /* The control byte is escaped in the message. */
    assert_non_null(strstr(err, "got \"a\\x01b\""));
    assert_int_equal(bc_config_get_string(doc, "cache.empty", buf, sizeof(buf), false, &found,
                                          err, sizeof(err)), BC_ECONFIG);
    assert_int_equal(bc_config_get_string(doc, "cache.empty", buf, sizeof(buf), true, &found,
                                          err, sizeof(err)), BC_OK);
    assert_string_equal(buf, "");

    assert_int_equal(bc_config_get_enum(doc, "cache.policy", policies, &idx, &found, err,
                                        sizeof(err)), BC_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(bc_config_get_enum(doc, "cache.bad", policies, &idx, &found, err,
                                        sizeof(err)), BC_ECONFIG);
    assert_string_equal(err, "t.json: field \"cache.bad\": expected one of \"lru\", \"lfu\" or "
                             "\"fifo\", got \"mru\"");

    assert_int_equal(bc_config_get_size(doc, "cache.size", 1, 1024, 1ull << 30, &size, &found,
                                        err, sizeof(err)), BC_OK);
    assert_int_equal(size, 2u << 20);
    /* A number is in units of `unit`: 4096 megabytes. */
    assert_int_equal(bc_config_get_size(doc, "cache.n", 1u << 20, 1, 1ull << 40, &size, &found,
                                        err, sizeof(err)), BC_OK);
    assert_int_equal(size, 4096ull << 20);
    assert_int_equal(bc_config_get_size(doc, "cache.badsize", 1, 1024, 1ull << 30, &size,
                                        &found, err, sizeof(err)), BC_ECONFIG);
    assert_non_null(strstr(err, "t.json: field \"cache.badsize\": expected a size between 1k "
                                "and 1g bytes"));
    assert_int_equal(bc_config_get_size(doc, "cache.size", 1, 1024, 1024 * 1024, &size, &found,
                                        err, sizeof(err)), BC_ECONFIG);  /* above max */
    bc_config_free(doc);
}

static void
test_hostport_getter(void **state)
{
    bc_config_doc_t *doc = parse_ok("{\"zk\": \"zk1:2181\", \"bad\": \"zk1:x\"}");
    bc_hostport_t hp;
    char err[BC_ERRBUF_LEN];
    bool found = false;
    (void)state;

    assert_int_equal(bc_config_get_hostport(doc, "zk", 0, &hp, &found, err, sizeof(err)), BC_OK);
    assert_true(found);
    assert_string_equal(hp.host, "zk1");
    assert_int_equal(hp.port, 2181);
    assert_int_equal(bc_config_get_hostport(doc, "bad", 0, &hp, &found, err, sizeof(err)),
                     BC_ECONFIG);
    assert_string_equal(err, "t.json: field \"bad\": expected \"host:port\" (port 1..65535), "
                             "got \"zk1:x\"");
    bc_config_free(doc);
}

static void
test_check_fields(void **state)
{
    static const char *const root[] = {"admin", "port", NULL};
    static const char *const admin[] = {"port", "listen", NULL};
    char err[BC_ERRBUF_LEN];
    bc_config_doc_t *doc;
    (void)state;

    doc = parse_ok("{\"admin\": {\"prot\": 1}, \"port\": 1}");
    assert_int_equal(bc_config_check_fields(doc, NULL, root, err, sizeof(err)), BC_OK);
    assert_int_equal(bc_config_check_fields(doc, "admin", admin, err, sizeof(err)), BC_ECONFIG);
    assert_string_equal(err, "t.json: unknown field \"prot\" in \"admin\"");
    assert_int_equal(bc_config_check_fields(doc, "absent", admin, err, sizeof(err)), BC_OK);
    bc_config_free(doc);

    doc = parse_ok("{\"admin\": {}, \"typo\": 1}");
    assert_int_equal(bc_config_check_fields(doc, NULL, root, err, sizeof(err)), BC_ECONFIG);
    assert_string_equal(err, "t.json: unknown field \"typo\"");
    bc_config_free(doc);

    doc = parse_ok("{\"port\": 1, \"port\": 2}");
    assert_int_equal(bc_config_check_fields(doc, NULL, root, err, sizeof(err)), BC_ECONFIG);
    assert_string_equal(err, "t.json: field \"port\" appears more than once");
    bc_config_free(doc);

    doc = parse_ok("{\"admin\": 3}");
    assert_int_equal(bc_config_check_fields(doc, "admin", admin, err, sizeof(err)), BC_ECONFIG);
    assert_string_equal(err, "t.json: field \"admin\": expected an object, got 3");
    bc_config_free(doc);
}

static void
test_load_file(void **state)
{
    char err[BC_ERRBUF_LEN];
    bc_config_doc_t *doc = NULL;
    char *path;
    char *big;
    (void)state;

    path = temp_text("{\"a\": 1}");
    assert_int_equal(bc_config_load(path, 0, &doc, err, sizeof(err)), BC_OK);
    assert_non_null(doc);
    assert_string_equal(doc->name, path);
    bc_config_free(doc);
    /* Above the cap: refused before parsing. */
    assert_int_equal(bc_config_load(path, 4, &doc, err, sizeof(err)), BC_ETOOLARGE);
    assert_null(doc);
    assert_non_null(strstr(err, "the limit is 4"));
    unlink(path);
    free(path);

    assert_int_equal(bc_config_load("/nonexistent/dir/x.json", 0, &doc, err, sizeof(err)),
                     BC_EIO);
    assert_string_equal(err, "/nonexistent/dir/x.json: cannot open: No such file or directory");
    assert_int_equal(bc_config_load(".", 0, &doc, err, sizeof(err)), BC_EIO);
    assert_non_null(strstr(err, "is a directory"));

    /* 2 MiB of spaces: beyond the default 1 MiB cap. */
    big = malloc(2u << 20);
    memset(big, ' ', 2u << 20);
    big[0] = '{';
    big[(2u << 20) - 1] = '}';
    path = temp_file(big, 2u << 20);
    assert_int_equal(bc_config_load(path, 0, &doc, err, sizeof(err)), BC_ETOOLARGE);
    unlink(path);
    free(path);
    free(big);
}

static void
test_describe_cuts_long_strings(void **state)
{
    char buf[256];
    char s[200];
    (void)state;
    memset(s, 'x', sizeof(s) - 1);
    s[sizeof(s) - 1] = '\0';
    bc_config_quote(s, buf, sizeof(buf));
    assert_true(strlen(buf) < 50);
    assert_non_null(strstr(buf, "...\""));
    bc_config_quote("q\"\\", buf, sizeof(buf));
    assert_string_equal(buf, "\"q\\\"\\\\\"");
    /* Tiny buffers are never overrun. */
    bc_config_quote(s, buf, 4);
    assert_int_equal(strlen(buf), 3);
}

/* ---- node configuration ---- */

static void
test_node_defaults(void **state)
{
    bc_node_config_t cfg;
    bc_node_config_action_t action;
    char err[BC_ERRBUF_LEN];
    (void)state;

    assert_int_equal(parse_args(&cfg, &action, err, sizeof(err), (char *)NULL), BC_OK);
    assert_int_equal(action, BC_NODE_RUN);
    assert_string_equal(cfg.listen_addr, "0.0.0.0");
    assert_int_equal(cfg.port, 11211);
    assert_int_equal(cfg.mem_limit, 64ull << 20);
    assert_int_equal(cfg.max_conns, 1024);
    assert_int_equal(cfg.max_item_size, 1u << 20);
    assert_true(cfg.threads >= 1 && cfg.threads <= 64);
    assert_int_equal(cfg.threads, (uint32_t)(sysconf(_SC_NPROCESSORS_ONLN) > 64
                                                 ? 64 : sysconf(_SC_NPROCESSORS_ONLN)));
    assert_int_equal(cfg.verbosity, 0);
    assert_int_equal(cfg.admin_port, 11280);
    assert_string_equal(cfg.admin_listen, "127.0.0.1");
    assert_string_equal(cfg.eviction, "s3fifo");
    assert_int_equal(cfg.nbuckets, BC_DEFAULT_NBUCKETS);
    assert_int_equal(cfg.log_level, BC_LOG_INFO);
    assert_false(cfg.daemonize);
    assert_string_equal(cfg.pid_file, "");
    assert_int_equal(cfg.migrate.max_imports, 48);
    assert_int_equal(cfg.migrate.import_timeout_ms, 60000);
    assert_int_equal(cfg.migrate.catchup_ms, 50);
}

static void
test_node_memcached_flags(void **state)
{
    bc_node_config_t cfg;
    bc_node_config_action_t action;
    char err[BC_ERRBUF_LEN];
    (void)state;

    assert_int_equal(ARGS("-p", "22122", "-l", "127.0.0.1", "-m", "128", "-t", "3", "-c",
                          "50", "-I", "2m", "-v", "-U", "0", "-b", "77"), BC_OK);
    assert_int_equal(cfg.port, 22122);
    assert_string_equal(cfg.listen_addr, "127.0.0.1");
    assert_int_equal(cfg.mem_limit, 128ull << 20);
    assert_int_equal(cfg.threads, 3);
    assert_int_equal(cfg.max_conns, 50);
    assert_int_equal(cfg.max_item_size, 2u << 20);
    assert_int_equal(cfg.verbosity, 1);
    assert_int_equal(cfg.backlog, 77);

    /* Attached values and clusters, as memcached users write them. */
    assert_int_equal(ARGS("-p11300", "-vv", "-I512k"), BC_OK);
    assert_int_equal(cfg.port, 11300);
    assert_int_equal(cfg.verbosity, 2);
    assert_int_equal(cfg.log_level, BC_LOG_DEBUG);   /* -vv raises the log level */
    assert_int_equal(cfg.max_item_size, 512u << 10);
    assert_int_equal(ARGS("-dvp", "1234"), BC_OK);
    assert_true(cfg.daemonize);
    assert_int_equal(cfg.verbosity, 1);
    assert_int_equal(cfg.port, 1234);

    /* memcached's long names, and ours. */
    assert_int_equal(ARGS("--port=1", "--memory-limit", "2g", "--conn-limit=9",
                          "--max-item-size", "1024"), BC_OK);
    assert_int_equal(cfg.port, 1);
    assert_int_equal(cfg.mem_limit, 2ull << 30);
    assert_int_equal(cfg.max_conns, 9);
    assert_int_equal(cfg.max_item_size, 1024);
    assert_int_equal(ARGS("--memory", "3", "--max-connections", "10"), BC_OK);
    assert_int_equal(cfg.mem_limit, 3ull << 20);
    assert_int_equal(cfg.max_conns, 10);

    /* Tuning flags that make no sense here are accepted and ignored. */
    assert_int_equal(ARGS("-f", "1.25", "-n", "48", "-o", "modern", "-C", "-R", "20"), BC_OK);
    assert_false(cfg.prealloc);
    /* memcached's -L (its slabs preallocated) preallocates here too */
    assert_int_equal(ARGS("-L"), BC_OK);
    assert_true(cfg.prealloc);
    assert_int_equal(ARGS("--enable-largepages"), BC_OK);
    assert_true(cfg.prealloc);
    assert_int_equal(ARGS("--prealloc"), BC_OK);
    assert_true(cfg.prealloc);
    assert_int_equal(ARGS("-u", "nobody", "-P", "/x/pid", "-k", "-r", "-B", "ascii"), BC_OK);
    assert_string_equal(cfg.run_as_user, "nobody");
    assert_string_equal(cfg.pid_file, "/x/pid");
    assert_true(cfg.lock_memory);
    assert_true(cfg.enable_coredumps);
}

static void
test_node_own_flags(void **state)
{
    bc_node_config_t cfg;
    bc_node_config_action_t action;
    char err[BC_ERRBUF_LEN];
    (void)state;

    assert_int_equal(ARGS("--admin-port", "0", "--admin-listen", "::1", "--eviction", "s3fifo",
                          "--buckets", "16", "--log-level", "warn"), BC_OK);
    assert_int_equal(cfg.admin_port, 0);
    assert_string_equal(cfg.admin_listen, "::1");
    assert_string_equal(cfg.eviction, "s3fifo");
    assert_int_equal(cfg.nbuckets, 16);
    assert_int_equal(cfg.log_level, BC_LOG_WARN);
    /* An explicit --log-level wins over -vv. */
    assert_int_equal(ARGS("-vv", "--log-level=error"), BC_OK);
    assert_int_equal(cfg.log_level, BC_LOG_ERROR);
    assert_int_equal(cfg.verbosity, 2);

    assert_int_equal(ARGS("--migrate-max-imports", "4", "--migrate-import-timeout-ms", "5000",
                          "--migrate-catchup-ms=3600000"), BC_OK);
    assert_int_equal(cfg.migrate.max_imports, 4);
    assert_int_equal(cfg.migrate.import_timeout_ms, 5000);
    assert_int_equal(cfg.migrate.catchup_ms, 3600000);
    assert_int_equal(ARGS("--migrate-max-imports", "0"), BC_EINVAL);
    assert_string_equal(err, "--migrate-max-imports: expected an integer 1..1024, got \"0\"");
    assert_int_equal(ARGS("--migrate-catchup-ms", "5"), BC_EINVAL);
    assert_string_equal(err, "--migrate-catchup-ms: expected an integer 10..3600000, got \"5\"");
    assert_int_equal(ARGS("--migrate-import-timeout-ms", "3600001"), BC_EINVAL);

    assert_int_equal(ARGS("--help"), BC_OK);
    assert_int_equal(action, BC_NODE_SHOW_HELP);
    assert_int_equal(ARGS("-p", "1", "-h"), BC_OK);
    assert_int_equal(action, BC_NODE_SHOW_HELP);
    assert_int_equal(ARGS("--version"), BC_OK);
    assert_int_equal(action, BC_NODE_SHOW_VERSION);
    assert_int_equal(ARGS("-V"), BC_OK);
    assert_int_equal(action, BC_NODE_SHOW_VERSION);
    assert_int_equal(ARGS("-p", "1", "--"), BC_OK);
}

static void
test_node_flag_errors(void **state)
{
    bc_node_config_t cfg;
    bc_node_config_action_t action;
    char err[BC_ERRBUF_LEN];
    (void)state;

    assert_int_equal(ARGS("-p", "abc"), BC_EINVAL);
    assert_string_equal(err, "-p: expected an integer 0..65535, got \"abc\"");
    assert_int_equal(ARGS("--port=70000"), BC_EINVAL);
    assert_string_equal(err, "--port: expected an integer 0..65535, got \"70000\"");
    assert_int_equal(ARGS("--bogus"), BC_EINVAL);
    assert_string_equal(err, "unknown option \"--bogus\" (see --help)");
    assert_int_equal(ARGS("-q"), BC_EINVAL);
    assert_string_equal(err, "unknown option -q (see --help)");
    assert_int_equal(ARGS("-p"), BC_EINVAL);
    assert_string_equal(err, "-p needs a value (NUM)");
    assert_int_equal(ARGS("--port"), BC_EINVAL);
    assert_string_equal(err, "--port needs a value (NUM)");
    assert_int_equal(ARGS("--daemon=yes"), BC_EINVAL);
    assert_string_equal(err, "--daemon takes no value");
    assert_int_equal(ARGS("stray"), BC_EINVAL);
    assert_string_equal(err, "unexpected argument \"stray\" (see --help)");
    assert_int_equal(ARGS("--", "stray"), BC_EINVAL);
    assert_int_equal(ARGS("-t", "0"), BC_EINVAL);
    assert_int_equal(ARGS("-t", "257"), BC_EINVAL);
    assert_int_equal(ARGS("-c", "-1"), BC_EINVAL);
    assert_int_equal(ARGS("-m", "0"), BC_EINVAL);
    assert_int_equal(ARGS("-m", "lots"), BC_EINVAL);
    assert_non_null(strstr(err, "-m: expected megabytes"));
    /* memcached's -I bounds: 1k..1024m, and at most half of -m. */
    assert_int_equal(ARGS("-I", "512"), BC_EINVAL);
    assert_string_equal(err, "-I: expected a size from 1k to 1024m, such as 1m or 512k, "
                             "got \"512\"");
    assert_int_equal(ARGS("-I", "2g"), BC_EINVAL);
    assert_int_equal(ARGS("-I", "1m", "-m", "1"), BC_EINVAL);
    assert_non_null(strstr(err, "cannot be more than half of the memory limit"));
    assert_int_equal(ARGS("-I", "1m", "-m", "2"), BC_OK);
    assert_int_equal(ARGS("--eviction", "mru"), BC_EINVAL);
    assert_string_equal(err, "--eviction: expected one of lru, lfu, fifo, s3fifo, got \"mru\"");
    assert_int_equal(ARGS("--buckets", "0"), BC_EINVAL);
    assert_int_equal(ARGS("--buckets", "65537"), BC_EINVAL);
    assert_int_equal(ARGS("--log-level", "loud"), BC_EINVAL);
    assert_int_equal(ARGS("-l", "a,b"), BC_EINVAL);
    assert_non_null(strstr(err, "one address"));
    assert_int_equal(ARGS("-l", ""), BC_EINVAL);
    /* -Z and its memcached options (net/tls.h) */
    assert_int_equal(ARGS("-Z"), BC_EINVAL);
    assert_non_null(strstr(err, "-Z needs a certificate"));
    assert_int_equal(ARGS("-o", "ssl_chain_cert=c.pem"), BC_EINVAL);
    assert_non_null(strstr(err, "go with -Z"));
    assert_int_equal(ARGS("-l", "notls:127.0.0.1:11212"), BC_EINVAL);
    assert_non_null(strstr(err, "go with -Z"));
    assert_int_equal(ARGS("-Z", "-o", "ssl_chain_cert=c.pem,ssl_verify_mode=4"), BC_EINVAL);
    assert_non_null(strstr(err, "0 (none), 1 (request), 2 (require) or 3 (once)"));
    assert_int_equal(ARGS("-Z", "-o", "ssl_chain_cert=c.pem,ssl_min_version=x"), BC_EINVAL);
    assert_int_equal(ARGS("-Z", "-o", "ssl_chain_cert=c.pem,ssl_verify_mode=2"), BC_EINVAL);
    assert_non_null(strstr(err, "ssl_ca_cert"));
    assert_int_equal(ARGS("-Z", "-o", "ssl_chain_cert"), BC_EINVAL);
    assert_int_equal(ARGS("-Z", "-o", "ssl_chain_cert=c.pem", "-l", "notls:127.0.0.1"),
                     BC_EINVAL);
    assert_non_null(strstr(err, "notls:HOST:PORT"));
    assert_int_equal(ARGS("-Z", "-o", "ssl_chain_cert=c.pem", "-l", "notls::1"), BC_EINVAL);
    assert_int_equal(ARGS("-Z", "-o", "ssl_chain_cert=c.pem", "-l",
                          "notls:a:1,notls:b:2,notls:c:3,notls:d:4,notls:e:5"), BC_EINVAL);
    assert_non_null(strstr(err, "at most 4"));
    assert_int_equal(ARGS("-Z", "-o", "ssl_chain_cert=c.pem", "--zk", "127.0.0.1:2181",
                          "--cluster", "x", "--group", "1", "--insecure-no-peer-auth"),
                     BC_EINVAL);
    assert_non_null(strstr(err, "-Z in a cluster"));
    assert_int_equal(ARGS("-p", "5000", "--admin-port", "5000"), BC_EINVAL);
    assert_non_null(strstr(err, "both 5000"));
    /* Features we do not have are refused, not silently dropped. */
    assert_int_equal(ARGS("-S"), BC_EINVAL);
    assert_string_equal(err, "-S: SASL authentication is not supported");
    assert_int_equal(ARGS("-s", "mc.sock"), BC_EINVAL);
    assert_int_equal(ARGS("-B", "binary"), BC_EINVAL);
    assert_int_equal(ARGS("-M"), BC_EINVAL);
    /* A bad flag is reported even next to --help. */
    assert_int_equal(ARGS("--help", "--bogus"), BC_EINVAL);
    /* Hostile bytes are escaped in messages. */
    assert_int_equal(ARGS("-p", "1\x1b[2J"), BC_EINVAL);
    assert_null(strchr(err, '\x1b'));
}

/* memcached's -Z, -o ssl_* and -l notls: as memcached spells them. */
static void
test_node_tls_flags(void **state)
{
    bc_node_config_t cfg;
    bc_node_config_action_t action;
    char err[512];
    (void)state;

    assert_int_equal(ARGS("-l", "10.0.0.1", "-l", "notls:127.0.0.1:11212,notls:[::1]:0", "-Z",
                          "-o", "idle_timeout=5,ssl_chain_cert=/c.pem,ssl_key=/k.pem,"
                          "ssl_ca_cert=/ca.pem,ssl_verify_mode=2,ssl_min_version=3,"
                          "ssl_ciphers=HIGH,ssl_wbuf_size=32"), BC_OK);
    assert_true(cfg.tls);
    assert_string_equal(cfg.listen_addr, "10.0.0.1");
    assert_int_equal(cfg.nplain_listen, 2);
    assert_string_equal(cfg.plain_listen_host[0], "127.0.0.1");
    assert_int_equal(cfg.plain_listen_port[0], 11212);
    assert_string_equal(cfg.plain_listen_host[1], "::1");
    assert_int_equal(cfg.plain_listen_port[1], 0);
    assert_string_equal(cfg.tls_chain_cert, "/c.pem");
    assert_string_equal(cfg.tls_key, "/k.pem");
    assert_string_equal(cfg.tls_ca_cert, "/ca.pem");
    assert_string_equal(cfg.tls_ciphers, "HIGH");
    assert_int_equal(cfg.tls_verify_mode, 2);
    assert_int_equal(cfg.tls_min_version, 3);
    assert_int_equal(cfg.idle_timeout_s, 5);
    /* defaults: TLS 1.2 at least, no client certificates */
    assert_int_equal(ARGS("-Z", "-o", "ssl_chain_cert=/c.pem"), BC_OK);
    assert_int_equal(cfg.tls_min_version, 2);
    assert_int_equal(cfg.tls_verify_mode, 0);
    assert_int_equal(cfg.nplain_listen, 0);
    assert_string_equal(cfg.listen_addr, "0.0.0.0");
    assert_int_equal(parse_args(&cfg, &action, err, sizeof(err), (char *)NULL), BC_OK);
    assert_false(cfg.tls);
}

static void
test_node_config_file(void **state)
{
    bc_node_config_t cfg;
    bc_node_config_action_t action;
    char err[BC_ERRBUF_LEN];
    const char *text =
        "{\n"
        "  \"server\": {\"listen\": \"127.0.0.1\", \"port\": 9999, \"threads\": 2,\n"
        "             \"max_connections\": 100, \"backlog\": 10,\n"
        "             \"max_connection_buffer\": \"1m\", \"verbosity\": 1},\n"
        "  \"cache\": {\"memory_mb\": 32, \"max_item_size\": \"256k\", \"eviction\": \"lfu\",\n"
        "            \"buckets\": 64, \"expiry_interval_ms\": 250, \"expiry_scan_budget\": 5},\n"
        "  \"admin\": {\"listen\": \"0.0.0.0\", \"port\": 9998, \"max_connections\": 8},\n"
        "  \"log\": {\"level\": \"debug\"},\n"
        "  \"migration\": {\"max_imports\": 8, \"import_timeout_ms\": 2000, \"catchup_ms\": 20},\n"
        "  \"pid_file\": \"/run/x.pid\"\n"
        "}\n";
    char *path = temp_text(text);
    (void)state;

    assert_int_equal(ARGS("--config", path), BC_OK);
    assert_string_equal(cfg.config_path, path);
    assert_string_equal(cfg.listen_addr, "127.0.0.1");
    assert_int_equal(cfg.port, 9999);
    assert_int_equal(cfg.threads, 2);
    assert_int_equal(cfg.max_conns, 100);
    assert_int_equal(cfg.backlog, 10);
    assert_int_equal(cfg.max_conn_buffer, 1u << 20);
    assert_int_equal(cfg.verbosity, 1);
    assert_int_equal(cfg.mem_limit, 32ull << 20);
    assert_int_equal(cfg.max_item_size, 256u << 10);
    assert_string_equal(cfg.eviction, "lfu");
    assert_int_equal(cfg.nbuckets, 64);
    assert_int_equal(cfg.expiry_interval_ms, 250);
    assert_int_equal(cfg.expiry_scan_budget, 5);
    assert_string_equal(cfg.admin_listen, "0.0.0.0");
    assert_int_equal(cfg.admin_port, 9998);
    assert_int_equal(cfg.admin_max_conns, 8);
    assert_int_equal(cfg.log_level, BC_LOG_DEBUG);
    assert_string_equal(cfg.pid_file, "/run/x.pid");
    assert_int_equal(cfg.migrate.max_imports, 8);
    assert_int_equal(cfg.migrate.import_timeout_ms, 2000);
    assert_int_equal(cfg.migrate.catchup_ms, 20);

    /* Flags win over the file wherever --config appears. */
    assert_int_equal(ARGS("-p", "1", "--config", path, "-t", "5"), BC_OK);
    assert_int_equal(cfg.port, 1);
    assert_int_equal(cfg.threads, 5);
    assert_int_equal(cfg.nbuckets, 64);
    unlink(path);
    free(path);

    /* server.tls: -Z and its options; plain_listen as -l notls: */
    path = temp_text("{\"server\": {\"tls\": {\"chain_cert\": \"/c.pem\", \"key\": \"/k.pem\",\n"
                     "  \"ca_cert\": \"/ca.pem\", \"verify_mode\": 1, \"min_version\": 3,\n"
                     "  \"plain_listen\": \"127.0.0.1:11212,[::1]:11213\"}}}");
    assert_int_equal(ARGS("--config", path), BC_OK);
    assert_true(cfg.tls);
    assert_string_equal(cfg.tls_chain_cert, "/c.pem");
    assert_string_equal(cfg.tls_key, "/k.pem");
    assert_string_equal(cfg.tls_ca_cert, "/ca.pem");
    assert_int_equal(cfg.tls_verify_mode, 1);
    assert_int_equal(cfg.tls_min_version, 3);
    assert_int_equal(cfg.nplain_listen, 2);
    assert_string_equal(cfg.plain_listen_host[1], "::1");
    assert_int_equal(cfg.plain_listen_port[1], 11213);
    unlink(path);
    free(path);
    path = temp_text("{\"server\": {\"tls\": {\"chain_cert\": \"/c.pem\", \"plain_listen\": \"x\"}}}");
    assert_int_equal(ARGS("--config", path), BC_EINVAL);
    assert_non_null(strstr(err, "server.tls.plain_listen"));
    unlink(path);
    free(path);
    path = temp_text("{\"server\": {\"tls\": {\"chain_cert\": \"/c.pem\", \"verfy\": 1}}}");
    assert_int_equal(ARGS("--config", path), BC_ECONFIG);
    assert_non_null(strstr(err, "unknown field \"verfy\" in \"server.tls\""));
    unlink(path);
    free(path);
}

static void
test_node_config_file_errors(void **state)
{
    bc_node_config_t cfg;
    bc_node_config_action_t action;
    char err[BC_ERRBUF_LEN];
    char expected[BC_ERRBUF_LEN];
    char *path;
    (void)state;

    path = temp_text("{\"admin\": {\"port\": \"abc\"}}");
    assert_int_equal(ARGS("--config", path), BC_ECONFIG);
    snprintf(expected, sizeof(expected),
             "%s: field \"admin.port\": expected an integer 0..65535, got \"abc\"", path);
    assert_string_equal(err, expected);
    unlink(path);
    free(path);

    path = temp_text("{\"cache\": {\"memroy_mb\": 5}}");
    assert_int_equal(ARGS("--config", path), BC_ECONFIG);
    snprintf(expected, sizeof(expected), "%s: unknown field \"memroy_mb\" in \"cache\"", path);
    assert_string_equal(err, expected);
    unlink(path);
    free(path);

    path = temp_text("{\"cache\": {\"prealloc\": \"yes\"}}");
    assert_int_equal(ARGS("--config", path), BC_ECONFIG);
    snprintf(expected, sizeof(expected),
             "%s: field \"cache.prealloc\": expected true or false, got \"yes\"", path);
    assert_string_equal(err, expected);
    unlink(path);
    free(path);
    path = temp_text("{\"cache\": {\"prealloc\": true}}");
    assert_int_equal(ARGS("--config", path), BC_OK);
    assert_true(cfg.prealloc);
    unlink(path);
    free(path);

    path = temp_text("{\"cache\": {\"eviction\": \"random\"}}");
    assert_int_equal(ARGS("--config", path), BC_ECONFIG);
    assert_non_null(strstr(err, "field \"cache.eviction\": expected one of \"lru\", \"lfu\", "
                                "\"fifo\" or \"s3fifo\", got \"random\""));
    unlink(path);
    free(path);

    path = temp_text("{\"migration\": {\"catchup_ms\": 0}}");
    assert_int_equal(ARGS("--config", path), BC_ECONFIG);
    snprintf(expected, sizeof(expected),
             "%s: field \"migration.catchup_ms\": expected an integer 10..3600000, got 0", path);
    assert_string_equal(err, expected);
    unlink(path);
    free(path);
    path = temp_text("{\"migration\": {\"imports\": 2}}");
    assert_int_equal(ARGS("--config", path), BC_ECONFIG);
    assert_non_null(strstr(err, "unknown field \"imports\" in \"migration\""));
    unlink(path);
    free(path);

    path = temp_text("{\"server\": {\"port\": 1,}}");
    assert_int_equal(ARGS("--config", path), BC_ECONFIG);
    assert_non_null(strstr(err, "not valid JSON"));
    unlink(path);
    free(path);

    /* Cross-field validation applies to file values too. */
    path = temp_text("{\"cache\": {\"memory_mb\": 1}}");
    assert_int_equal(ARGS("--config", path), BC_EINVAL);
    assert_non_null(strstr(err, "half of the memory limit"));
    /* ... and a flag can repair it. */
    assert_int_equal(ARGS("--config", path, "-I", "256k"), BC_OK);
    unlink(path);
    free(path);

    assert_int_equal(ARGS("--config", "/nonexistent.json"), BC_EIO);
    assert_string_equal(err, "/nonexistent.json: cannot open: No such file or directory");
    assert_int_equal(ARGS("--config", ""), BC_EINVAL);
}

static void
test_usage_lists_every_flag(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    static const char *const must[] = {
        "-p, --port", "-l, --listen", "-m, --memory", "-t, --threads", "-c, --max-connections",
        "-I, --max-item-size", "-v, --verbose", "--admin-port", "--admin-listen", "--eviction",
        "--buckets", "--log-level", "--config", "-h, --help", "-V, --version", "-d, --daemon",
        "-u, --user", "-P, --pidfile", "also --memory-limit", "also --conn-limit",
        "\"server\"", "\"cache\"", "\"admin\"", "\"migration\"", "--migrate-max-imports",
        "--migrate-import-timeout-ms", "--migrate-catchup-ms", "SIGTERM", NULL,
    };
    (void)state;
    bc_node_config_usage(f, "bucketcache-node");
    fclose(f);
    for (size_t i = 0; must[i] != NULL; i++) {
        if (strstr(text, must[i]) == NULL) fail_msg("--help lacks %s", must[i]);
    }
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_parse_u64n),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_hostport),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_typed_getters),
        cmocka_unit_test(test_hostport_getter),
        cmocka_unit_test(test_check_fields),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_describe_cuts_long_strings),
        cmocka_unit_test(test_node_defaults),
        cmocka_unit_test(test_node_memcached_flags),
        cmocka_unit_test(test_node_own_flags),
        cmocka_unit_test(test_node_flag_errors),
        cmocka_unit_test(test_node_tls_flags),
        cmocka_unit_test(test_node_config_file),
        cmocka_unit_test(test_node_config_file_errors),
        cmocka_unit_test(test_usage_lists_every_flag),
    };
    /* Ignored-flag warnings are expected here; keep the output readable. */
    bc_log_set_level(BC_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
