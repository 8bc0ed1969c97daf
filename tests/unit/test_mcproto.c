/*
 * test_mcproto.c -- the memcached text protocol: the parser
 * (common/bc_mcproto.c) and, in-process on a real cache, the command
 * executor and its output queue (node/proto/proto_text.c, node/net/outq.c).
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
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bc_hash.h"
#include "bc_mcmeta.h"
#include "bc_mcproto.h"
#include "engine/cache.h"
#include "proto/proto_text.h"

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
    /* memcached truncates these to 32 bits, and so do we. */
    {
        bc_mc_request_t t;
        expect_ok("set a 4294967296 0 1", &t, BC_MC_CMD_SET);
        assert_int_equal(t.flags, 0);
        expect_ok("set a 4294967301 4294967297 4294967297", &t, BC_MC_CMD_SET);
        assert_int_equal(t.flags, 5);
        assert_int_equal(t.exptime, 1);
        assert_int_equal(t.vlen, 1);
        expect_ok("set a 0 2147483648 1", &t, BC_MC_CMD_SET);
        assert_true(t.exptime == INT32_MIN);
    }
    /* "noreply" in a number's place: the error is silenced. */
    expect_error("set a 0 0 noreply", BC_MC_ERR_FORMAT, true);
    expect_error("set a 0 0 x noreply", BC_MC_ERR_FORMAT, true);
    /* Keys: 250 bytes is the limit; any byte but a space (memcached). */
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
    expect_ok("set a\tb 0 0 1", &req, BC_MC_CMD_SET);
    assert_int_equal(req.nkey, 3);
    expect_ok("set a\x7f 0 0 1", &req, BC_MC_CMD_SET);
    expect_ok("set \x01 0 0 1", &req, BC_MC_CMD_SET);
    assert_int_equal(req.nkey, 1);
    /* memcached reads the line up to a NUL: "set a" is ERROR. */
    assert_int_equal(bc_mc_request_parse("set a\0b 0 0 1", 13, &req), BC_EPROTO);
    assert_string_equal(req.error, BC_MC_ERR_UNKNOWN);
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
    expect_ok("get a b\x01 c", &req, BC_MC_CMD_GET);
    assert_int_equal(req.nkeys, 3);

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
    expect_ok("mg foo v", &req, BC_MC_CMD_MG);
    assert_int_equal(req.ntok, 4);
    expect_error("mz foo v", BC_MC_ERR_UNKNOWN, false);
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

/* ---- executor (proto_text.c) on a real cache ---- */

static uint32_t
fixed_now(void)
{
    return 1700000000u;
}

typedef struct exec_fixture {
    bc_cache_t *cache;
    bc_thread_stats_t stats;
    bc_proto_env_t env;
    bc_proto_conn_t pc;
    char out[1 << 16];
    size_t nout;
} exec_fixture_t;

static exec_fixture_t *
fixture_new(size_t max_item_size)
{
    exec_fixture_t *f = calloc(1, sizeof(*f));
    bc_cache_config_t cc = {
        .mem_limit = 8u << 20, .max_item_size = max_item_size, .nbuckets = 64,
        .nshards = 4, .policy = NULL, .now = fixed_now,
    };
    assert_non_null(f);
    assert_int_equal(bc_cache_create(&cc, &f->cache), BC_OK);
    f->env.cache = f->cache;
    f->env.max_conn_buffer = 1 << 20;
    atomic_init(&f->env.verbosity, 0);
    bc_proto_conn_init(&f->pc, &f->env, &f->stats, 1);
    return f;
}

static void
fixture_free(exec_fixture_t *f)
{
    bc_proto_conn_release(&f->pc);
    bc_cache_destroy(f->cache);
    free(f);
}

/* Moves up to max queued bytes into f->out, as a socket write would. */
static void
fixture_drain(exec_fixture_t *f, size_t max)
{
    struct iovec iov[64];
    int n = bc_outq_iov(&f->pc.out, iov, 64);
    size_t done = 0;
    for (int i = 0; i < n && done < max; i++) {
        size_t take = iov[i].iov_len < max - done ? iov[i].iov_len : max - done;
        assert_true(f->nout + take <= sizeof(f->out));
        memcpy(f->out + f->nout, iov[i].iov_base, take);
        f->nout += take;
        done += take;
    }
    bc_outq_consume(&f->pc.out, f->cache, done);
}

/* Feeds data in pieces of `step` bytes (carrying what is not consumed),
 * with the given output limit, draining everything at the end. */
static bc_status_t
fixture_feed(exec_fixture_t *f, const char *data, size_t len, size_t step, size_t out_limit)
{
    char buf[8192];
    size_t have = 0, pos = 0;
    bc_status_t st = BC_OK;

    while (st == BC_OK && (pos < len || have > 0)) {
        size_t n = len - pos < step ? len - pos : step;
        assert_true(have + n <= sizeof(buf));
        memcpy(buf + have, data + pos, n);
        have += n;
        pos += n;
        size_t used = 0;
        st = bc_proto_process(&f->pc, buf, have, out_limit, &used);
        memmove(buf, buf + used, have - used);
        have -= used;
        if (bc_outq_pending(&f->pc.out) >= out_limit) {
            fixture_drain(f, out_limit);
        } else if (n == 0 && used == 0) {
            break;
        }
    }
    fixture_drain(f, SIZE_MAX);
    return st;
}

static const char pipeline[] =
    "set a 5 0 3\r\nabc\r\n"
    "get a nope a\r\n"
    "append a 0 0 2\r\nde\r\n"
    "gets a\r\n"
    "set n 0 0 2\r\n10\r\n"
    "decr n 1\r\nget n\r\nincr n 995\r\n"
    "delete a\r\ndelete a\r\n"
    "bogus\r\n"
    "set b 0 0 1 noreply\r\nx\r\n"
    "touch b 10\r\ngat 0 b\r\n"
    "set c 0 0 2\r\nxyz\r\n"
    "version\r\n";

static const char pipeline_reply[] =
    "STORED\r\n"
    "VALUE a 5 3\r\nabc\r\nVALUE a 5 3\r\nabc\r\nEND\r\n"
    "STORED\r\n"
    "VALUE a 5 5 2\r\nabcde\r\nEND\r\n"
    "STORED\r\n"
    "9\r\nVALUE n 0 2\r\n9 \r\nEND\r\n1004\r\n"
    "DELETED\r\nNOT_FOUND\r\n"
    "ERROR\r\n"
    "TOUCHED\r\nVALUE b 0 1\r\nx\r\nEND\r\n"
    "CLIENT_ERROR bad data chunk\r\nERROR\r\n"
    "VERSION " BC_MC_PROTOCOL_VERSION "\r\n";

static void
test_exec_pipeline_any_split(void **state)
{
    (void)state;
    /* The same replies whatever the read sizes: 1 byte at a time, odd
     * sizes, everything at once. */
    static const size_t steps[] = {1, 2, 3, 7, 13, 64, sizeof(pipeline)};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        exec_fixture_t *f = fixture_new(1 << 20);
        assert_int_equal(fixture_feed(f, pipeline, sizeof(pipeline) - 1, steps[i], 1 << 20),
                         BC_OK);
        if (f->nout != sizeof(pipeline_reply) - 1 ||
            memcmp(f->out, pipeline_reply, f->nout) != 0) {
            fail_msg("step %zu: got \"%.*s\"", steps[i], (int)f->nout, f->out);
        }
        assert_int_equal(atomic_load(&f->stats.cmd_get), 6);
        assert_int_equal(atomic_load(&f->stats.get_hits), 5);
        assert_int_equal(atomic_load(&f->stats.protocol_errors), 3);   /* bogus, bad chunk, lone LF */
        fixture_free(f);
    }
}

static void
test_exec_backpressure(void **state)
{
    (void)state;
    exec_fixture_t *f = fixture_new(1 << 20);
    char stream[4096];
    size_t n = 0, used = 0;

    n += (size_t)sprintf(stream, "set k 0 0 40\r\n%040d\r\n", 7);
    for (int i = 0; i < 100; i++) n += (size_t)sprintf(stream + n, "get k\r\n");
    /* With a 200-byte limit, processing stops early and leaves input. */
    assert_int_equal(bc_proto_process(&f->pc, stream, n, 200, &used), BC_OK);
    assert_true(used < n);
    assert_true(bc_outq_pending(&f->pc.out) >= 200);
    assert_true(bc_outq_pending(&f->pc.out) < 200 + 100);
    /* Nothing more is taken until the output drains. */
    size_t again = 0;
    assert_int_equal(bc_proto_process(&f->pc, stream + used, n - used, 200, &again), BC_OK);
    assert_int_equal(again, 0);
    fixture_drain(f, SIZE_MAX);
    assert_int_equal(fixture_feed(f, stream + used, n - used, 4096, 200), BC_OK);
    /* STORED + 100 replies of "VALUE k 0 40\r\n" + 40 + "\r\nEND\r\n". */
    assert_int_equal(f->nout, 8 + 100 * (14 + 42 + 5));
    fixture_free(f);
}

static void
test_exec_direct_read_and_items(void **state)
{
    (void)state;
    exec_fixture_t *f = fixture_new(1 << 20);
    static char value[5000];
    char *dst;
    size_t need, used;

    memset(value, 'v', sizeof(value));
    const char *line = "set big 1 0 5000\r\nvvvvvvvvvv";
    assert_int_equal(bc_proto_process(&f->pc, line, strlen(line), 1 << 20, &used), BC_OK);
    assert_int_equal(used, strlen(line));
    assert_true(bc_proto_direct_dest(&f->pc, &dst, &need));
    assert_int_equal(need, 5000 - 10 + 2);
    memcpy(dst, value, 4990);
    memcpy(dst + 4990, "\r\n", 2);
    assert_int_equal(bc_proto_direct_done(&f->pc, need), BC_OK);
    assert_false(bc_proto_direct_dest(&f->pc, &dst, &need));
    fixture_drain(f, SIZE_MAX);
    assert_int_equal(f->nout, 8);
    assert_memory_equal(f->out, "STORED\r\n", 8);

    /* A large value is sent from the item, which stays referenced until
     * its last byte is consumed. */
    f->nout = 0;
    assert_int_equal(bc_proto_process(&f->pc, "get big\r\n", 9, 1 << 20, &used), BC_OK);
    bc_item_t *it = bc_cache_get(f->cache, "big", 3, bc_hash_murmur3_32("big", 3, 0));
    assert_non_null(it);
    assert_int_equal(bc__cache_item_holders(f->cache, it), 2);   /* the reply + us */
    struct iovec iov[8];
    assert_int_equal(bc_outq_iov(&f->pc.out, iov, 8), 3);
    assert_ptr_equal(iov[1].iov_base, bc_item_value(it));
    assert_int_equal(iov[1].iov_len, 5002);
    fixture_drain(f, 100);                             /* partway into the value */
    assert_int_equal(bc__cache_item_holders(f->cache, it), 2);
    fixture_drain(f, SIZE_MAX);
    assert_int_equal(bc__cache_item_holders(f->cache, it), 1);
    bc_item_release(f->cache, it);
    assert_int_equal(f->nout, 18 + 5002 + 5);
    fixture_free(f);
}

static void
test_exec_too_large_is_swallowed(void **state)
{
    (void)state;
    exec_fixture_t *f = fixture_new(1024);
    char stream[4096];
    size_t n = 0;

    n += (size_t)sprintf(stream, "set k 0 0 1\r\nx\r\nset k 0 0 2000\r\n");
    memset(stream + n, 'z', 2000);
    n += 2000;
    n += (size_t)sprintf(stream + n, "\r\nget k\r\nset k 0 0 2000 noreply\r\n");
    memset(stream + n, 'z', 2000);
    n += 2000;
    n += (size_t)sprintf(stream + n, "\r\nversion\r\n");
    for (size_t step = 1; step <= 4096; step *= 8) {
        f->nout = 0;
        assert_int_equal(fixture_feed(f, stream, n, step, 1 << 20), BC_OK);
        const char *want = "STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n"
                           "VERSION " BC_MC_PROTOCOL_VERSION "\r\n";
        assert_int_equal(f->nout, strlen(want));
        assert_memory_equal(f->out, want, f->nout);
    }
    assert_int_equal(atomic_load(&f->stats.store_too_large), 5 * 2);   /* 5 step sizes */
    fixture_free(f);
}

static void
test_exec_close_conditions(void **state)
{
    (void)state;
    exec_fixture_t *f = fixture_new(1 << 20);
    char line[3000];
    size_t used;

    /* quit: replies before it are kept, nothing after it is read. */
    const char *q = "version\r\nquit\r\nversion\r\n";
    assert_int_equal(bc_proto_process(&f->pc, q, strlen(q), 1 << 20, &used), BC_ECLOSED);
    assert_int_equal(used, 15);
    fixture_drain(f, SIZE_MAX);
    assert_int_equal(f->nout, 8 + strlen(BC_MC_PROTOCOL_VERSION) + 2);
    /* A stray HTTP request. */
    q = "GET / HTTP/1.0\r\n";
    assert_int_equal(bc_proto_process(&f->pc, q, strlen(q), 1 << 20, &used), BC_ECLOSED);
    /* 2049 bytes without a newline: fine for a multi-get, not otherwise. */
    memset(line, 'x', sizeof(line));
    assert_int_equal(bc_proto_process(&f->pc, line, 2048, 1 << 20, &used), BC_OK);
    assert_int_equal(used, 0);
    assert_int_equal(bc_proto_process(&f->pc, line, 2049, 1 << 20, &used), BC_ECLOSED);
    memcpy(line, "get ", 4);
    assert_int_equal(bc_proto_process(&f->pc, line, sizeof(line), 1 << 20, &used), BC_OK);
    assert_int_equal(used, 0);
    fixture_free(f);
}

/*
 * "lru_crawler metadump" larger than a chunk (proto_admin.c): streamed,
 * a chunk per bc_proto_stream once the queue is drained, never more than
 * about a chunk queued; every item once, then END, then the commands
 * pipelined behind it; a connection released mid-dump frees it.
 */
#define DUMP_ITEMS 3000u

/* Drains the queue, counting each dumped key (by its number) and each
 * END line; tail keeps the line in progress.  Returns how many bytes. */
static size_t
dump_drain(exec_fixture_t *f, uint32_t *seen, char *tail, size_t *ntail, uint32_t *ends)
{
    struct iovec iov[64];
    size_t total = 0;
    for (;;) {
        int n = bc_outq_iov(&f->pc.out, iov, 64);
        if (n == 0) break;
        size_t done = 0;
        for (int i = 0; i < n; i++) {
            const char *p = iov[i].iov_base;
            for (size_t k = 0; k < iov[i].iov_len; k++) {
                /* a line: "key=k<150 digits> exp=...\n" */
                if (*ntail == 4096) *ntail = 0;
                tail[(*ntail)++] = p[k];
                if (p[k] == '\n' && *ntail > 160 && memcmp(tail, "key=k", 5) == 0) {
                    uint32_t num = (uint32_t)strtoul(tail + 5 + 140, NULL, 10);
                    assert_true(num < DUMP_ITEMS);
                    seen[num]++;
                    *ntail = 0;
                } else if (p[k] == '\n') {
                    if (*ntail == 5 && memcmp(tail, "END\r\n", 5) == 0) (*ends)++;
                    *ntail = 0;
                }
            }
            done += iov[i].iov_len;
        }
        bc_outq_consume(&f->pc.out, f->cache, done);
        total += done;
    }
    return total;
}

static void
test_exec_metadump_streams(void **state)
{
    (void)state;
    exec_fixture_t *f = fixture_new(1 << 20);
    static char cmd[256];
    size_t used;
    for (uint32_t i = 0; i < DUMP_ITEMS; i++) {
        int n = snprintf(cmd, sizeof(cmd), "set k%0150u 0 0 1 noreply\r\nx\r\n", i);
        assert_int_equal(bc_proto_process(&f->pc, cmd, (size_t)n, 1 << 20, &used), BC_OK);
        assert_int_equal(used, (size_t)n);
    }
    assert_int_equal(bc_outq_pending(&f->pc.out), 0);

    const char *q = "lru_crawler metadump all\r\nmn\r\n";
    assert_int_equal(bc_proto_process(&f->pc, q, strlen(q), 1 << 20, &used), BC_OK);
    assert_int_equal(used, strlen("lru_crawler metadump all\r\n"));
    /* ~210-byte lines, ~630 KB in all: the first chunk only, and the mn
     * waits behind the dump. */
    assert_true(bc_proto_streaming(&f->pc) && bc_proto_waiting(&f->pc));
    size_t first = bc_outq_pending(&f->pc.out);
    assert_true(first >= 256 * 1024 && first < 256 * 1024 + 32 * 1024);
    assert_int_equal(bc_proto_process(&f->pc, "mn\r\n", 4, 1 << 20, &used), BC_OK);
    assert_int_equal(used, 0);

    static uint32_t seen[DUMP_ITEMS];
    static char tail[4096];
    size_t ntail = 0, total = 0;
    uint32_t chunks = 1, ends = 0;
    memset(seen, 0, sizeof(seen));
    total += dump_drain(f, seen, tail, &ntail, &ends);
    while (bc_proto_streaming(&f->pc)) {
        assert_int_equal(bc_proto_stream(&f->pc), BC_OK);
        assert_true(bc_outq_pending(&f->pc.out) < 256 * 1024 + 32 * 1024);
        total += dump_drain(f, seen, tail, &ntail, &ends);
        assert_true(++chunks < 10);
    }
    assert_true(chunks >= 3);
    assert_true(total > 500 * 1024);
    assert_true(ends == 1 && ntail == 0);          /* END, last */
    for (uint32_t i = 0; i < DUMP_ITEMS; i++) assert_int_equal(seen[i], 1);
    assert_false(bc_proto_waiting(&f->pc));
    assert_int_equal(bc_proto_stream(&f->pc), BC_OK);      /* nothing to stream: nothing */
    assert_int_equal(bc_outq_pending(&f->pc.out), 0);
    assert_int_equal(bc_proto_process(&f->pc, "mn\r\n", 4, 1 << 20, &used), BC_OK);
    assert_int_equal(used, 4);
    fixture_drain(f, SIZE_MAX);
    assert_true(f->nout == 4 && memcmp(f->out, "MN\r\n", 4) == 0);

    /* A connection going away mid-dump (ASan: nothing leaks). */
    q = "lru_crawler metadump hash\r\n";
    assert_int_equal(bc_proto_process(&f->pc, q, strlen(q), 1 << 20, &used), BC_OK);
    assert_true(bc_proto_streaming(&f->pc));
    fixture_free(f);
}

/* One meta reply unit at a time, as the forwarder reads an owner's reply
 * up to the MN of its "mn": lines, VA with its block, incomplete input,
 * and a VA line holding a raw binary key with a CRLF in it. */
static void
test_meta_reply_unit(void **state)
{
    (void)state;
    size_t used = 0;
    bool mn = true;
#define UNIT(lit) bc_mc_meta_reply_unit((lit), sizeof(lit) - 1, &used, &mn)
    assert_int_equal(UNIT("HD\r\nMN\r\n"), BC_OK);
    assert_true(used == 4 && !mn);
    assert_int_equal(UNIT("MN\r\n"), BC_OK);
    assert_true(used == 4 && mn);
    assert_int_equal(UNIT("VA 5 f0\r\nMN\r\nx\r\nMN\r\n"), BC_OK);   /* the value "MN\r\nx" */
    assert_true(used == 16 && !mn);
    assert_int_equal(UNIT("VA 2 kab\r\nxy\r\n"), BC_OK);
    assert_int_equal(used, 14);
    assert_int_equal(UNIT("VA 2 kab\r\nxy"), BC_EAGAIN);
    assert_int_equal(UNIT("VA 2 ka"), BC_EAGAIN);
    /* memcached prints such a key raw: the line ends at the second CRLF */
    assert_int_equal(UNIT("VA 1 kc:\0" "b\r\n\r\n1\r\nMN\r\n"), BC_OK);
    assert_int_equal(used, 17);
    assert_int_equal(UNIT("VA 1 kc:\0" "b\r\n\r\n1"), BC_EAGAIN);
    /* no CRLF where a value could end: protocol error once 4 KiB came */
    static char junk[5000];
    memcpy(junk, "VA 1 k", 6);
    memset(junk + 6, 'x', sizeof(junk) - 6);
    junk[10] = '\r';
    junk[11] = '\n';
    assert_int_equal(bc_mc_meta_reply_unit(junk, sizeof(junk), &used, &mn), BC_EPROTO);
    assert_int_equal(UNIT("VA x\r\n"), BC_EPROTO);
    assert_int_equal(UNIT("HD\n"), BC_EPROTO);
#undef UNIT
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
        cmocka_unit_test(test_meta_reply_unit),
        cmocka_unit_test(test_exec_pipeline_any_split),
        cmocka_unit_test(test_exec_backpressure),
        cmocka_unit_test(test_exec_direct_read_and_items),
        cmocka_unit_test(test_exec_too_large_is_swallowed),
        cmocka_unit_test(test_exec_close_conditions),
        cmocka_unit_test(test_exec_metadump_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
