/*
 * test_mcproto.c -- the memcached text protocol parser (common/bc_mcproto.c).
 *
 * The expected replies were taken from memcached 1.6.18 by sending the same
 * lines to it; the cases where bucketcache deliberately differs (32-bit
 * truncation, control characters in keys) are marked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bc_mcproto.h"

static bc_status_t
parse(const char *line, bc_mc_request_t *req)
{
    return bc_mc_request_parse(line, strlen(line), req);
}

/* Asserts that the line fails with the given reply text. */
static void
expect_error(const char *line, const char *error, bool noreply)
{
    bc_mc_request_t req;
    bc_status_t st = parse(line, &req);
    if (st != BC_EPROTO || req.error == NULL || strcmp(req.error, error) != 0 ||
        req.noreply != noreply) {
        fail_msg("line \"%s\": status %d error \"%s\" noreply %d; wanted \"%s\" noreply %d",
                 line, st, req.error ? req.error : "(null)", req.noreply, error, noreply);
    }
    assert_int_equal(req.cmd, BC_MC_CMD_NONE);
    assert_false(req.close);
}

static void
expect_ok(const char *line, bc_mc_request_t *req, bc_mc_cmd_t cmd)
{
    bc_status_t st = parse(line, req);
    if (st != BC_OK)
        fail_msg("line \"%s\": status %d error \"%s\"", line, st, req->error ? req->error : "");
    assert_int_equal(req->cmd, cmd);
}

static void
expect_key(const bc_mc_request_t *req, const char *key)
{
    assert_int_equal(req->nkey, strlen(key));
    assert_memory_equal(req->key, key, req->nkey);
}

static void
test_storage_commands(void **state)
{
    (void)state;
    bc_mc_request_t req;
    static const struct {
        const char *name;
        bc_mc_cmd_t cmd;
    } cmds[] = {
        {"set", BC_MC_CMD_SET},         {"add", BC_MC_CMD_ADD},
        {"replace", BC_MC_CMD_REPLACE}, {"append", BC_MC_CMD_APPEND},
        {"prepend", BC_MC_CMD_PREPEND},
    };
    char line[128];

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        snprintf(line, sizeof(line), "%s foo 4294967295 -30 12\r", cmds[i].name);
        expect_ok(line, &req, cmds[i].cmd);
        expect_key(&req, "foo");
        assert_int_equal(req.flags, 4294967295u);
        assert_int_equal(req.exptime, -30);
        assert_int_equal(req.vlen, 12);
        assert_false(req.noreply);
        snprintf(line, sizeof(line), "%s foo 1 2 3 noreply", cmds[i].name);
        expect_ok(line, &req, cmds[i].cmd);
        assert_true(req.noreply);
    }

    expect_ok("cas k 7 100 5 18446744073709551615", &req, BC_MC_CMD_CAS);
    expect_key(&req, "k");
    assert_true(req.cas == UINT64_MAX);
    assert_int_equal(req.vlen, 5);
    expect_ok("cas k 7 100 5 42 noreply", &req, BC_MC_CMD_CAS);
    assert_true(req.noreply);
    assert_true(req.cas == 42);

    /* Runs of spaces separate words; leading/trailing spaces are ignored. */
    expect_ok("  set   k  0  0  2   ", &req, BC_MC_CMD_SET);
    expect_key(&req, "k");
    assert_int_equal(req.vlen, 2);
    /* Sign and leading blanks as strtoul reads them. */
    expect_ok("set k +5 -0 \t3", &req, BC_MC_CMD_SET);
    assert_int_equal(req.flags, 5);
    assert_int_equal(req.exptime, 0);
    assert_int_equal(req.vlen, 3);
    /* A blank after the digits ends the number. */
    expect_ok("set k 5\tjunk 0 1", &req, BC_MC_CMD_SET);
    assert_int_equal(req.flags, 5);
    /* The largest data length memcached accepts. */
    expect_ok("set k 0 0 2147483645", &req, BC_MC_CMD_SET);
    assert_int_equal(req.vlen, 2147483645u);
    expect_ok("set k 0 0 0", &req, BC_MC_CMD_SET);
    assert_int_equal(req.vlen, 0);
}

static void
test_storage_errors(void **state)
{
    (void)state;
    char line[400];

    expect_error("set", BC_MC_ERR_UNKNOWN, false);
    expect_error("set a 0 0", BC_MC_ERR_UNKNOWN, false);
    expect_error("set a 0 0 1 2 3", BC_MC_ERR_UNKNOWN, false);
    expect_error("cas a 0 0 1", BC_MC_ERR_UNKNOWN, false);
    expect_error("cas a 0 0 1 1 2 3", BC_MC_ERR_UNKNOWN, false);
    expect_error("set a 0 0 -1", BC_MC_ERR_FORMAT, false);
    expect_error("set a 0 0 2147483646", BC_MC_ERR_FORMAT, false);
    expect_error("set a x 0 1", BC_MC_ERR_FORMAT, false);
    expect_error("set a 0 x 1", BC_MC_ERR_FORMAT, false);
    expect_error("set a 0 0 1x", BC_MC_ERR_FORMAT, false);
    expect_error("set a -1 0 1", BC_MC_ERR_FORMAT, false);
    expect_error("set a 0 99999999999999999999 1", BC_MC_ERR_FORMAT, false);
    expect_error("cas a 0 0 1 abc", BC_MC_ERR_FORMAT, false);
    expect_error("cas a 0 0 1 -1", BC_MC_ERR_FORMAT, false);
    /* Deliberate difference: memcached truncates these to 32 bits. */
    expect_error("set a 4294967296 0 1", BC_MC_ERR_FORMAT, false);
    expect_error("set a 0 0 4294967297", BC_MC_ERR_FORMAT, false);
    /* "noreply" in a number's place: the error is silenced. */
    expect_error("set a 0 0 noreply", BC_MC_ERR_FORMAT, true);
    expect_error("set a 0 0 x noreply", BC_MC_ERR_FORMAT, true);
    /* Keys: 250 bytes is the limit, no control characters (deliberate). */
    memset(line, 0, sizeof(line));
    memcpy(line, "set ", 4);
    memset(line + 4, 'k', 251);
    strcat(line, " 0 0 1");
    expect_error(line, BC_MC_ERR_FORMAT, false);
    memset(line, 0, sizeof(line));
    memcpy(line, "set ", 4);
    memset(line + 4, 'k', 250);
    strcat(line, " 0 0 1");
    bc_mc_request_t req;
    expect_ok(line, &req, BC_MC_CMD_SET);
    assert_int_equal(req.nkey, 250);
    expect_error("set a\tb 0 0 1", BC_MC_ERR_FORMAT, false);
    expect_error("set a\x7f 0 0 1", BC_MC_ERR_FORMAT, false);
    expect_error("set \x01 0 0 1", BC_MC_ERR_FORMAT, false);
    /* A NUL byte inside the key is rejected too (memcached cuts the line). */
    assert_int_equal(bc_mc_request_parse("set a\0b 0 0 1", 13, &req), BC_EPROTO);
    assert_string_equal(req.error, BC_MC_ERR_FORMAT);
    /* Non-ASCII bytes are fine. */
    expect_ok("set cl\xc3\xa9 0 0 1", &req, BC_MC_CMD_SET);
}

static void
test_retrieval(void **state)
{
    (void)state;
    bc_mc_request_t req;
    const char *cursor, *key;
    size_t nkey;

    expect_ok("get a  bb   ccc \r", &req, BC_MC_CMD_GET);
    assert_int_equal(req.nkeys, 3);
    cursor = req.keys;
    assert_true(bc_mc_next_key(&cursor, req.keys_end, &key, &nkey));
    assert_int_equal(nkey, 1);
    assert_memory_equal(key, "a", 1);
    assert_true(bc_mc_next_key(&cursor, req.keys_end, &key, &nkey));
    assert_int_equal(nkey, 2);
    assert_memory_equal(key, "bb", 2);
    assert_true(bc_mc_next_key(&cursor, req.keys_end, &key, &nkey));
    assert_int_equal(nkey, 3);
    assert_memory_equal(key, "ccc", 3);
    assert_false(bc_mc_next_key(&cursor, req.keys_end, &key, &nkey));

    expect_ok("gets x", &req, BC_MC_CMD_GETS);
    assert_int_equal(req.nkeys, 1);
    /* get does not know noreply: it is a key. */
    expect_ok("get a noreply", &req, BC_MC_CMD_GET);
    assert_int_equal(req.nkeys, 2);
    assert_false(req.noreply);

    expect_ok("gat -1 k", &req, BC_MC_CMD_GAT);
    assert_int_equal(req.exptime, -1);
    assert_int_equal(req.nkeys, 1);
    expect_ok("gats 100 k1 k2", &req, BC_MC_CMD_GATS);
    assert_int_equal(req.exptime, 100);
    assert_int_equal(req.nkeys, 2);
    /* memcached answers "gat 10" with an empty END. */
    expect_ok("gat 10", &req, BC_MC_CMD_GAT);
    assert_int_equal(req.nkeys, 0);

    expect_error("get", BC_MC_ERR_UNKNOWN, false);
    expect_error("get ", BC_MC_ERR_UNKNOWN, false);
    expect_error("gets   \r", BC_MC_ERR_UNKNOWN, false);
    expect_error("gat", BC_MC_ERR_UNKNOWN, false);
    expect_error("gat abc a", BC_MC_ERR_EXPTIME, false);
    expect_error("GET a", BC_MC_ERR_UNKNOWN, false);
    expect_error("Get a", BC_MC_ERR_UNKNOWN, false);
    expect_error("getx a", BC_MC_ERR_UNKNOWN, false);

    /* One bad key anywhere fails the whole command. */
    char line[600];
    strcpy(line, "get a ");
    memset(line + 6, 'k', 251);
    strcpy(line + 257, " b");
    expect_error(line, BC_MC_ERR_FORMAT, false);
    expect_error("get a b\x01 c", BC_MC_ERR_FORMAT, false);

    /* Many keys: no fixed bound on their number. */
    char big[8192];
    size_t n = 0;
    n += (size_t)sprintf(big, "get");
    for (int i = 0; i < 1000; i++) n += (size_t)sprintf(big + n, " k%d", i);
    assert_int_equal(bc_mc_request_parse(big, n, &req), BC_OK);
    assert_int_equal(req.nkeys, 1000);
}

static void
test_delete(void **state)
{
    (void)state;
    bc_mc_request_t req;

    expect_ok("delete k", &req, BC_MC_CMD_DELETE);
    expect_key(&req, "k");
    assert_false(req.noreply);
    expect_ok("delete k 0", &req, BC_MC_CMD_DELETE);
    assert_false(req.noreply);
    expect_ok("delete k noreply", &req, BC_MC_CMD_DELETE);
    assert_true(req.noreply);
    expect_ok("delete k 0 noreply", &req, BC_MC_CMD_DELETE);
    assert_true(req.noreply);
    expect_error("delete", BC_MC_ERR_UNKNOWN, false);
    expect_error("delete a b c d", BC_MC_ERR_UNKNOWN, false);
    expect_error("delete k 1", BC_MC_ERR_DELETE_USAGE, false);
    expect_error("delete k 0 0", BC_MC_ERR_DELETE_USAGE, false);
    expect_error("delete k 1 noreply", BC_MC_ERR_DELETE_USAGE, true);
}

static void
test_arith_touch(void **state)
{
    (void)state;
    bc_mc_request_t req;

    expect_ok("incr k 18446744073709551615", &req, BC_MC_CMD_INCR);
    assert_true(req.delta == UINT64_MAX);
    expect_ok("decr k 5 noreply", &req, BC_MC_CMD_DECR);
    assert_true(req.delta == 5);
    assert_true(req.noreply);
    expect_ok("incr a \t5", &req, BC_MC_CMD_INCR);
    assert_true(req.delta == 5);
    expect_error("incr", BC_MC_ERR_UNKNOWN, false);
    expect_error("incr a", BC_MC_ERR_UNKNOWN, false);
    expect_error("incr a 1 2 3", BC_MC_ERR_UNKNOWN, false);
    expect_error("incr a -1", BC_MC_ERR_DELTA, false);
    expect_error("incr a abc", BC_MC_ERR_DELTA, false);
    expect_error("incr a 5x", BC_MC_ERR_DELTA, false);
    expect_error("incr a 18446744073709551616", BC_MC_ERR_DELTA, false);
    expect_error("decr a noreply", BC_MC_ERR_DELTA, true);

    expect_ok("touch k 10", &req, BC_MC_CMD_TOUCH);
    assert_int_equal(req.exptime, 10);
    expect_ok("touch k -1 noreply", &req, BC_MC_CMD_TOUCH);
    assert_int_equal(req.exptime, -1);
    assert_true(req.noreply);
    expect_error("touch k", BC_MC_ERR_UNKNOWN, false);
    expect_error("touch k 1 2 3", BC_MC_ERR_UNKNOWN, false);
    expect_error("touch k abc", BC_MC_ERR_EXPTIME, false);
}

static void
test_misc_commands(void **state)
{
    (void)state;
    bc_mc_request_t req;

    expect_ok("flush_all", &req, BC_MC_CMD_FLUSH_ALL);
    assert_false(req.has_delay);
    expect_ok("flush_all 0", &req, BC_MC_CMD_FLUSH_ALL);
    assert_true(req.has_delay);
    assert_int_equal(req.exptime, 0);
    expect_ok("flush_all -1", &req, BC_MC_CMD_FLUSH_ALL);
    assert_int_equal(req.exptime, -1);
    expect_ok("flush_all noreply", &req, BC_MC_CMD_FLUSH_ALL);
    assert_true(req.noreply);
    assert_false(req.has_delay);
    expect_ok("flush_all 30 noreply", &req, BC_MC_CMD_FLUSH_ALL);
    assert_true(req.noreply);
    assert_true(req.has_delay);
    assert_int_equal(req.exptime, 30);
    expect_ok("flush_all 1 2", &req, BC_MC_CMD_FLUSH_ALL);
    assert_int_equal(req.exptime, 1);
    expect_error("flush_all abc", BC_MC_ERR_EXPTIME, false);
    expect_error("flush_all 1 2 3", BC_MC_ERR_UNKNOWN, false);

    expect_ok("verbosity 1", &req, BC_MC_CMD_VERBOSITY);
    assert_int_equal(req.verbosity, 1);
    expect_ok("verbosity 99 noreply", &req, BC_MC_CMD_VERBOSITY);
    assert_int_equal(req.verbosity, BC_MC_MAX_VERBOSITY);
    assert_true(req.noreply);
    expect_error("verbosity", BC_MC_ERR_UNKNOWN, false);
    expect_error("verbosity abc", BC_MC_ERR_FORMAT, false);
    expect_error("verbosity noreply", BC_MC_ERR_FORMAT, true);
    expect_error("verbosity 1 2 3", BC_MC_ERR_UNKNOWN, false);

    expect_ok("version", &req, BC_MC_CMD_VERSION);
    expect_ok("version extra words", &req, BC_MC_CMD_VERSION);
    expect_ok("quit", &req, BC_MC_CMD_QUIT);
    expect_ok("quit now", &req, BC_MC_CMD_QUIT);
    expect_ok("stats", &req, BC_MC_CMD_STATS);
    assert_null(req.subcmd);
    expect_ok("stats  settings ", &req, BC_MC_CMD_STATS);
    assert_int_equal(req.nsubcmd, 8);
    assert_memory_equal(req.subcmd, "settings", 8);
    expect_ok("stats reset x", &req, BC_MC_CMD_STATS);
    assert_memory_equal(req.subcmd, "reset", 5);
}

static void
test_unknown_and_http(void **state)
{
    (void)state;
    bc_mc_request_t req;

    expect_error("", BC_MC_ERR_UNKNOWN, false);
    expect_error("\r", BC_MC_ERR_UNKNOWN, false);
    expect_error("   ", BC_MC_ERR_UNKNOWN, false);
    expect_error("a", BC_MC_ERR_UNKNOWN, false);
    expect_error("foo bar", BC_MC_ERR_UNKNOWN, false);
    expect_error("SET a 0 0 1", BC_MC_ERR_UNKNOWN, false);
    expect_error("mg foo v", BC_MC_ERR_UNKNOWN, false);
    expect_error("\x00\x01\x02garbage\xff", BC_MC_ERR_UNKNOWN, false);
    /* Unknown command with an HTTP version as last word: close. */
    assert_int_equal(parse("GET / HTTP/1.1\r", &req), BC_EPROTO);
    assert_true(req.close);
    assert_null(req.error);
    assert_int_equal(parse("xy HTTP/ ", &req), BC_EPROTO);
    assert_true(req.close);
    /* ... but not when the first letter is one of memcached's commands. */
    expect_error("gxx HTTP/1.1", BC_MC_ERR_UNKNOWN, false);
    expect_ok("stats HTTP/1.1", &req, BC_MC_CMD_STATS);   /* unknown subcommand: ERROR later */
    expect_ok("get HTTP/1.1", &req, BC_MC_CMD_GET);
    expect_ok("version HTTP/1.1", &req, BC_MC_CMD_VERSION);

    assert_string_equal(bc_mc_cmd_name(BC_MC_CMD_FLUSH_ALL), "flush_all");
    assert_string_equal(bc_mc_cmd_name(BC_MC_CMD_NONE), "");
}

static void
test_long_line_rule(void **state)
{
    (void)state;
    char buf[200];

    assert_true(bc_mc_line_may_be_long("get a b c", 9));
    assert_true(bc_mc_line_may_be_long("gets a", 6));
    assert_true(bc_mc_line_may_be_long("   get a", 8));
    assert_false(bc_mc_line_may_be_long("gat 1 a", 7));
    assert_false(bc_mc_line_may_be_long("set a", 5));
    assert_false(bc_mc_line_may_be_long("getx", 4));
    assert_false(bc_mc_line_may_be_long("get", 3));
    memset(buf, ' ', sizeof(buf));
    memcpy(buf + 101, "get a", 5);
    assert_false(bc_mc_line_may_be_long(buf, 106));
    memset(buf, ' ', sizeof(buf));
    memcpy(buf + 100, "get a", 5);
    assert_true(bc_mc_line_may_be_long(buf, 105));
}

static void
test_u64_to_dec(void **state)
{
    (void)state;
    char buf[24];
    size_t n;

    n = bc_mc_u64_to_dec(0, buf);
    assert_int_equal(n, 1);
    assert_memory_equal(buf, "0", 1);
    n = bc_mc_u64_to_dec(UINT64_MAX, buf);
    assert_int_equal(n, 20);
    assert_memory_equal(buf, "18446744073709551615", 20);
    n = bc_mc_u64_to_dec(1000, buf);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "1000", 4);
}

static void
test_reply_parse(void **state)
{
    (void)state;
    bc_mc_reply_t r;
    size_t used;
    const char *stream = "VALUE k 5 3 77\r\nabc\r\nVALUE k2 0 0\r\n\r\nEND\r\n";
    size_t len = strlen(stream);

    assert_int_equal(bc_mc_reply_parse(stream, len, &r, &used), BC_OK);
    assert_int_equal(r.kind, BC_MC_REPLY_VALUE);
    assert_int_equal(r.nkey, 1);
    assert_int_equal(r.flags, 5);
    assert_int_equal(r.vlen, 3);
    assert_memory_equal(r.value, "abc", 3);
    assert_true(r.has_cas);
    assert_true(r.cas == 77);
    assert_int_equal(used, 21);
    stream += used;
    len -= used;
    assert_int_equal(bc_mc_reply_parse(stream, len, &r, &used), BC_OK);
    assert_int_equal(r.kind, BC_MC_REPLY_VALUE);
    assert_false(r.has_cas);
    assert_int_equal(r.vlen, 0);
    stream += used;
    len -= used;
    assert_int_equal(bc_mc_reply_parse(stream, len, &r, &used), BC_OK);
    assert_int_equal(r.kind, BC_MC_REPLY_END);
    assert_int_equal(used, len);

    /* Incomplete: the line, then the data block. */
    assert_int_equal(bc_mc_reply_parse("VALUE k 0 3\r", 12, &r, &used), BC_EAGAIN);
    assert_int_equal(bc_mc_reply_parse("VALUE k 0 3\r\nab", 15, &r, &used), BC_EAGAIN);
    assert_int_equal(bc_mc_reply_parse("VALUE k 0 3\r\nabc\r", 17, &r, &used), BC_EAGAIN);
    /* Malformed. */
    assert_int_equal(bc_mc_reply_parse("VALUE k 0 3\r\nabcd\r\n", 19, &r, &used), BC_EPROTO);
    assert_int_equal(bc_mc_reply_parse("VALUE k x 3\r\nabc\r\n", 18, &r, &used), BC_EPROTO);
    assert_int_equal(bc_mc_reply_parse("VALUE k 0\r\n", 11, &r, &used), BC_EPROTO);
    assert_int_equal(bc_mc_reply_parse("STORED\n", 7, &r, &used), BC_EPROTO);
    assert_int_equal(bc_mc_reply_parse("BOGUS\r\n", 7, &r, &used), BC_EPROTO);

    static const struct {
        const char *line;
        bc_mc_reply_kind_t kind;
        const char *text;
    } lines[] = {
        {"STORED\r\n", BC_MC_REPLY_STORED, ""},
        {"NOT_STORED\r\n", BC_MC_REPLY_NOT_STORED, ""},
        {"EXISTS\r\n", BC_MC_REPLY_EXISTS, ""},
        {"NOT_FOUND\r\n", BC_MC_REPLY_NOT_FOUND, ""},
        {"DELETED\r\n", BC_MC_REPLY_DELETED, ""},
        {"TOUCHED\r\n", BC_MC_REPLY_TOUCHED, ""},
        {"OK\r\n", BC_MC_REPLY_OK, ""},
        {"RESET\r\n", BC_MC_REPLY_RESET, ""},
        {"ERROR\r\n", BC_MC_REPLY_ERROR, ""},
        {"ERROR Too many open connections\r\n", BC_MC_REPLY_ERROR, "Too many open connections"},
        {"CLIENT_ERROR bad data chunk\r\n", BC_MC_REPLY_CLIENT_ERROR, "bad data chunk"},
        {"SERVER_ERROR out of memory\r\n", BC_MC_REPLY_SERVER_ERROR, "out of memory"},
        {"VERSION 1.6.18\r\n", BC_MC_REPLY_VERSION, "1.6.18"},
        {"STAT curr_items 12\r\n", BC_MC_REPLY_STAT, "curr_items"},
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        assert_int_equal(bc_mc_reply_parse(lines[i].line, strlen(lines[i].line), &r, &used),
                         BC_OK);
        assert_int_equal(r.kind, lines[i].kind);
        assert_int_equal(used, strlen(lines[i].line));
        assert_int_equal(r.ntext, strlen(lines[i].text));
        assert_memory_equal(r.text, lines[i].text, r.ntext);
    }
    assert_int_equal(bc_mc_reply_parse("STAT curr_items 12\r\n", 20, &r, &used), BC_OK);
    assert_int_equal(r.nstat_value, 2);
    assert_memory_equal(r.stat_value, "12", 2);

    assert_int_equal(bc_mc_reply_parse("18446744073709551615\r\n", 22, &r, &used), BC_OK);
    assert_int_equal(r.kind, BC_MC_REPLY_NUMBER);
    assert_true(r.number == UINT64_MAX);
    assert_int_equal(bc_mc_reply_parse("18446744073709551616\r\n", 22, &r, &used), BC_EPROTO);

    /* A reply line without CRLF within 4 KiB is not memcached. */
    char junk[5000];
    memset(junk, 'x', sizeof(junk));
    assert_int_equal(bc_mc_reply_parse(junk, sizeof(junk), &r, &used), BC_EPROTO);
    assert_int_equal(bc_mc_reply_parse(junk, 100, &r, &used), BC_EAGAIN);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storage_commands),
        cmocka_unit_test(test_storage_errors),
        cmocka_unit_test(test_retrieval),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_arith_touch),
        cmocka_unit_test(test_misc_commands),
        cmocka_unit_test(test_unknown_and_http),
        cmocka_unit_test(test_long_line_rule),
        cmocka_unit_test(test_u64_to_dec),
        cmocka_unit_test(test_reply_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
