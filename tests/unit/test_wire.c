/*
 * test_wire.c -- the cluster's words on the data port (common/bc_wire.h):
 * refusals, forwarding failures and the two peer handshakes.  For each:
 * the round trip (format, then parse, gives back every field, at 0 and at
 * the widest values), the bytes exactly as nodes have always sent them
 * (clients and older nodes read them), and hostile input -- malformed,
 * truncated at every byte, oversized, random -- refused or, when a parser
 * accepts it, formatted back to exactly the same bytes.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bc_cluster.h"
#include "bc_mcproto.h"
#include "bc_wire.h"

static uint64_t
xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* The text of a SERVER_ERROR line, as a client gets it (bc_mc_reply_parse). */
static void
server_error_text(const char *line, size_t n, const char **text, size_t *ntext)
{
    bc_mc_reply_t r;
    size_t used;
    assert_int_equal(bc_mc_reply_parse(line, n, &r, &used), BC_OK);
    assert_int_equal(used, n);
    assert_int_equal(r.kind, BC_MC_REPLY_SERVER_ERROR);
    *text = r.text;
    *ntext = r.ntext;
}

/* ---- refusals ---- */

/* The lines as the node's cluster code wrote them before this module existed. */
static int
legacy_refusal(bc_wire_refusal_kind_t kind, uint32_t bucket, uint32_t owner, uint64_t epoch,
               char *buf, size_t len)
{
    unsigned long long e = (unsigned long long)epoch;
    switch (kind) {
    case BC_WIRE_REFUSAL_MOVED:
        return snprintf(buf, len, "SERVER_ERROR MOVED %u %u %llu\r\n", bucket, owner, e);
    case BC_WIRE_REFUSAL_NO_OWNER:
        return snprintf(buf, len, "SERVER_ERROR NO_OWNER %u %llu\r\n", bucket, e);
    case BC_WIRE_REFUSAL_READONLY:
        return snprintf(buf, len, "SERVER_ERROR READONLY %u %llu\r\n", bucket, e);
    case BC_WIRE_REFUSAL_NOT_PRIMARY:
        return snprintf(buf, len, "SERVER_ERROR NOT_PRIMARY %u %u %llu\r\n", bucket, owner, e);
    case BC_WIRE_REFUSAL_NOT_ENOUGH_IN_SYNC:   /* new with min_in_sync: its own spelling */
        return snprintf(buf, len, "SERVER_ERROR NOT_ENOUGH_IN_SYNC %u %u %llu\r\n", bucket, owner,
                        e);
    default:
        return 0;
    }
}

static const bc_wire_refusal_kind_t all_refusals[] = {
    BC_WIRE_REFUSAL_MOVED, BC_WIRE_REFUSAL_NO_OWNER, BC_WIRE_REFUSAL_READONLY,
    BC_WIRE_REFUSAL_NOT_PRIMARY, BC_WIRE_REFUSAL_NOT_ENOUGH_IN_SYNC};
#define NREFUSALS (sizeof(all_refusals) / sizeof(all_refusals[0]))

static bool
has_gid(bc_wire_refusal_kind_t k)
{
    return k == BC_WIRE_REFUSAL_MOVED || k == BC_WIRE_REFUSAL_NOT_PRIMARY ||
           k == BC_WIRE_REFUSAL_NOT_ENOUGH_IN_SYNC;
}

/* format -> bytes as before -> a client's SERVER_ERROR -> parse -> same. */
static void
refusal_round_trip(bc_wire_refusal_kind_t kind, uint32_t bucket, uint32_t gid, uint64_t epoch)
{
    bc_wire_refusal_t in = {kind, bucket, has_gid(kind) ? gid : 0, epoch}, out;
    char line[BC_WIRE_REFUSAL_MAX], want[BC_WIRE_REFUSAL_MAX];
    size_t n = bc_wire_refusal_format(&in, line, sizeof(line));
    assert_true(n > 0 && n < sizeof(line));
    assert_int_equal(strlen(line), n);
    int w = legacy_refusal(kind, bucket, gid, epoch, want, sizeof(want));
    assert_int_equal(n, (size_t)w);
    assert_memory_equal(line, want, n);

    const char *text;
    size_t ntext;
    server_error_text(line, n, &text, &ntext);
    assert_int_equal(bc_wire_refusal_parse(text, ntext, &out), kind);
    assert_int_equal(out.kind, kind);
    assert_int_equal(out.bucket, in.bucket);
    assert_int_equal(out.gid, in.gid);
    assert_true(out.epoch == in.epoch);
}

static void
test_refusal_round_trip(void **state)
{
    (void)state;
    for (size_t k = 0; k < NREFUSALS; k++) {
        refusal_round_trip(all_refusals[k], 0, 0, 0);
        refusal_round_trip(all_refusals[k], UINT32_MAX, UINT32_MAX, UINT64_MAX);
        refusal_round_trip(all_refusals[k], 1023, BC_GROUP_MAX_GID, 1);
        refusal_round_trip(all_refusals[k], 10, 9, 100);
    }
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < 4000; i++) {
        uint64_t a = xorshift(&x), b = xorshift(&x);
        /* widths from 1 to 20 digits */
        uint64_t epoch = b >> (a % 64);
        refusal_round_trip(all_refusals[i % NREFUSALS], (uint32_t)(a >> (b % 32)),
                           (uint32_t)(b >> 40), epoch);
    }

    /* exact bytes, spelled out */
    char line[BC_WIRE_REFUSAL_MAX];
    bc_wire_refusal_t r = {BC_WIRE_REFUSAL_MOVED, 12, 3, 45};
    assert_int_equal(bc_wire_refusal_format(&r, line, sizeof(line)), 28);
    assert_string_equal(line, "SERVER_ERROR MOVED 12 3 45\r\n");
    r = (bc_wire_refusal_t){BC_WIRE_REFUSAL_NOT_PRIMARY, UINT32_MAX, UINT32_MAX, UINT64_MAX};
    size_t n = bc_wire_refusal_format(&r, line, sizeof(line));
    assert_string_equal(line,
                        "SERVER_ERROR NOT_PRIMARY 4294967295 4294967295 18446744073709551615\r\n");
    /* the longest line of all, and it fits BC_WIRE_REFUSAL_MAX */
    r.kind = BC_WIRE_REFUSAL_NOT_ENOUGH_IN_SYNC;
    n = bc_wire_refusal_format(&r, line, sizeof(line));
    assert_string_equal(line, "SERVER_ERROR NOT_ENOUGH_IN_SYNC 4294967295 4294967295 "
                              "18446744073709551615\r\n");
    assert_true(n + 1 <= BC_WIRE_REFUSAL_MAX);
    /* the longest line fits with room: exactly n + 1 bytes is enough,
     * n is not */
    assert_int_equal(bc_wire_refusal_format(&r, line, n + 1), n);
    assert_int_equal(bc_wire_refusal_format(&r, line, n), 0);
    assert_string_equal(line, "");
    assert_int_equal(bc_wire_refusal_format(&r, line, 0), 0);
    /* not a refusal */
    r.kind = BC_WIRE_REFUSAL_NONE;
    assert_int_equal(bc_wire_refusal_format(&r, line, sizeof(line)), 0);
    r.kind = (bc_wire_refusal_kind_t)99;
    assert_int_equal(bc_wire_refusal_format(&r, line, sizeof(line)), 0);
    assert_int_equal(bc_wire_refusal_format(NULL, line, sizeof(line)), 0);
}

/* Whatever the parser accepts formats back to exactly the same text:
 * nothing reaches a client's retry loop that a node could not have sent. */
static void
expect_refusal_canonical(const char *text, size_t n)
{
    bc_wire_refusal_t r;
    bc_wire_refusal_kind_t k = bc_wire_refusal_parse(text, n, &r);
    if (k == BC_WIRE_REFUSAL_NONE) {
        assert_int_equal(r.kind, BC_WIRE_REFUSAL_NONE);
        assert_int_equal(r.bucket, 0);
        return;
    }
    char line[BC_WIRE_REFUSAL_MAX];
    size_t m = bc_wire_refusal_format(&r, line, sizeof(line));
    const size_t pre = sizeof("SERVER_ERROR ") - 1;
    if (m != pre + n + 2 || memcmp(line + pre, text, n) != 0) {
        fail_msg("accepted \"%.*s\" but it formats as \"%s\"", (int)n, text, line);
    }
}

static void
test_refusal_rejects(void **state)
{
    (void)state;
    bc_wire_refusal_t r;
    static const char *const bad[] = {
        "", "MOVED", "MOVED ", "MOVED 1 2", "MOVED 1 2 3 4", "MOVED 1 2 3 ", "MOVED  1 2 3",
        " MOVED 1 2 3", "MOVED 1 2 x", "MOVED -1 2 3", "MOVED +1 2 3", "MOVED 1 2 18446744073709551616",
        "MOVED 4294967296 1 1", "MOVED 1 4294967296 1", "moved 1 2 3", "NO_OWNER 1",
        "NO_OWNER 1 2 3", "READONLY a b", "READONLY 1 2 3", "NOT_PRIMARY 1 2",
        "NOT_PRIMARY 1 2 3 4", "object too large for cache", "out of memory storing object",
        "MOVED\t1 2 3", "MOVED 1 2 3\r", "MOVED 1 2 3\r\n", "MOVEDX 1 2 3", "MOVED 01 2 3",
        "MOVED 1 02 3", "MOVED 1 2 03", "MOVED 1 2 00", "NO_OWNER 0x10 1", "MOVED 1 2 3.0",
        "MOVED 1 2 99999999999999999999", "MOVED 1 2 184467440737095516150",
        /* the replication handshake's refusal is not a key refusal */
        "NOT_PRIMARY of that group",
        /* nor are forwarding failures */
        "forward failed: owner unreachable", "forward timeout",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bc_wire_refusal_parse(bad[i], strlen(bad[i]), &r) != BC_WIRE_REFUSAL_NONE) {
            fail_msg("\"%s\" parsed as a refusal", bad[i]);
        }
    }
    assert_int_equal(bc_wire_refusal_parse(NULL, 0, &r), BC_WIRE_REFUSAL_NONE);
    /* the replication handshake's line as a client would see it */
    const char *text;
    size_t ntext;
    server_error_text(BC_WIRE_REPLICATE_NOT_PRIMARY, strlen(BC_WIRE_REPLICATE_NOT_PRIMARY),
                      &text, &ntext);
    assert_int_equal(bc_wire_refusal_parse(text, ntext, &r), BC_WIRE_REFUSAL_NONE);

    /* the length is honoured: no reading past n */
    const char *t = "MOVED 1 2 3 garbage";
    assert_int_equal(bc_wire_refusal_parse(t, strlen("MOVED 1 2 3"), &r), BC_WIRE_REFUSAL_MOVED);
    assert_int_equal(r.epoch, 3);
    char *heap = malloc(11);
    memcpy(heap, "MOVED 1 2 3", 11);               /* not NUL-terminated */
    assert_int_equal(bc_wire_refusal_parse(heap, 11, &r), BC_WIRE_REFUSAL_MOVED);
    free(heap);

    /* oversized: a valid refusal padded, or digits without end */
    char big[4096];
    memset(big, '1', sizeof(big));
    memcpy(big, "MOVED 1 2 ", 10);
    for (size_t n = 10; n <= sizeof(big); n += n < 80 ? 1 : 97) {
        expect_refusal_canonical(big, n);
        if (n > 10 + 20) assert_int_equal(bc_wire_refusal_parse(big, n, &r), BC_WIRE_REFUSAL_NONE);
    }
    memset(big, ' ', sizeof(big));
    memcpy(big, "NO_OWNER 1 2", 12);
    assert_int_equal(bc_wire_refusal_parse(big, sizeof(big), &r), BC_WIRE_REFUSAL_NONE);
}

/* Every prefix of every kind's widest and narrowest line, and every
 * single-byte change of them, is refused or canonical. */
static void
test_refusal_truncated_and_mangled(void **state)
{
    (void)state;
    for (size_t k = 0; k < NREFUSALS; k++) {
        for (int wide = 0; wide < 2; wide++) {
            bc_wire_refusal_t in = {all_refusals[k], wide ? UINT32_MAX : 0,
                                    wide && has_gid(all_refusals[k]) ? UINT32_MAX : 0,
                                    wide ? UINT64_MAX : 0};
            char line[BC_WIRE_REFUSAL_MAX];
            size_t n = bc_wire_refusal_format(&in, line, sizeof(line));
            const char *text = line + 13;
            size_t ntext = n - 15;
            for (size_t cut = 0; cut < ntext; cut++) expect_refusal_canonical(text, cut);
            char copy[BC_WIRE_REFUSAL_MAX];
            for (size_t i = 0; i < ntext; i++) {
                for (int b = 0; b < 256; b += 1) {
                    memcpy(copy, text, ntext);
                    copy[i] = (char)b;
                    expect_refusal_canonical(copy, ntext);
                }
            }
        }
    }
}

static void
test_refusal_random(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ull;
    static const char alphabet[] = "0123456789 MOVEDNO_WRAYPIT\r\n-+x";
    char buf[96];
    for (int round = 0; round < 200000; round++) {
        size_t n = (size_t)(xorshift(&x) % sizeof(buf));
        bool words = round & 1;
        for (size_t i = 0; i < n; i++) {
            uint64_t v = xorshift(&x);
            buf[i] = words ? alphabet[v % (sizeof(alphabet) - 1)] : (char)v;
        }
        if (words && n > 12 && round % 4 == 1) memcpy(buf, "NOT_PRIMARY ", 12);
        expect_refusal_canonical(buf, n);
    }
}

/* ---- forwarding failures ---- */

static void
test_fwd_failures(void **state)
{
    (void)state;
    /* the lines, byte for byte as node/proto/forward.c has always sent them */
    static const struct {
        bc_wire_fwd_failure_t kind;
        const char *line;
    } known[] = {
        {BC_WIRE_FWD_UNSENT, "SERVER_ERROR forward failed: owner unreachable\r\n"},
        {BC_WIRE_FWD_IN_DOUBT,
         "SERVER_ERROR forward in doubt: the owner was lost after the request was sent\r\n"},
        {BC_WIRE_FWD_TIMEOUT, "SERVER_ERROR forward timeout\r\n"},
        {BC_WIRE_FWD_TOO_LARGE, "SERVER_ERROR forward reply too large\r\n"},
        {BC_WIRE_FWD_BAD_REPLY, "SERVER_ERROR forward bad reply from owner\r\n"},
        {BC_WIRE_FWD_BUSY, "SERVER_ERROR forward busy: too many peer connections\r\n"},
        {BC_WIRE_FWD_AUTH, "SERVER_ERROR forward failed: peer authentication failed\r\n"},
        {BC_WIRE_FWD_NOMEM, "SERVER_ERROR out of memory forwarding\r\n"},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        const char *line = bc_wire_fwd_failure_line(known[i].kind);
        assert_non_null(line);
        assert_string_equal(line, known[i].line);
        const char *text;
        size_t ntext;
        server_error_text(line, strlen(line), &text, &ntext);
        assert_int_equal(ntext, strlen(bc_wire_fwd_failure_text(known[i].kind)));
        assert_memory_equal(text, bc_wire_fwd_failure_text(known[i].kind), ntext);
        assert_int_equal(bc_wire_fwd_failure_parse(text, ntext), known[i].kind);
        /* no prefix, no longer text, no other case */
        for (size_t cut = 0; cut < ntext; cut++) {
            assert_int_equal(bc_wire_fwd_failure_parse(text, cut), BC_WIRE_FWD_NONE);
        }
        char longer[128];
        snprintf(longer, sizeof(longer), "%.*s ", (int)ntext, text);
        assert_int_equal(bc_wire_fwd_failure_parse(longer, ntext + 1), BC_WIRE_FWD_NONE);
        longer[0] = (char)(longer[0] - 'a' + 'A');
        assert_int_equal(bc_wire_fwd_failure_parse(longer, ntext), BC_WIRE_FWD_NONE);
        /* and no forwarding failure is a refusal */
        bc_wire_refusal_t r;
        assert_int_equal(bc_wire_refusal_parse(text, ntext, &r), BC_WIRE_REFUSAL_NONE);
    }
    assert_null(bc_wire_fwd_failure_line(BC_WIRE_FWD_NONE));
    assert_null(bc_wire_fwd_failure_text(BC_WIRE_FWD_NONE));
    assert_null(bc_wire_fwd_failure_line((bc_wire_fwd_failure_t)99));
    assert_null(bc_wire_fwd_failure_text((bc_wire_fwd_failure_t)-1));
    assert_int_equal(bc_wire_fwd_failure_parse(NULL, 0), BC_WIRE_FWD_NONE);
    assert_int_equal(bc_wire_fwd_failure_parse("", 0), BC_WIRE_FWD_NONE);
    const char *t = "MOVED 1 2 3";
    assert_int_equal(bc_wire_fwd_failure_parse(t, strlen(t)), BC_WIRE_FWD_NONE);
}

/* ---- bucketcache_peer ---- */

#define NONCE1 "0123456789abcdef0123456789abcdef"
#define PROOF1 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void
peer_round_trip(const char *name, const char *nonce)
{
    bc_wire_peer_t in, out;
    memset(&in, 0, sizeof(in));
    snprintf(in.name, sizeof(in.name), "%s", name);
    snprintf(in.nonce, sizeof(in.nonce), "%s", nonce);
    char line[BC_WIRE_HANDSHAKE_MAX], want[BC_WIRE_HANDSHAKE_MAX];
    size_t n = bc_wire_peer_format(&in, line, sizeof(line));
    /* without a nonce: as forward.c has always sent it */
    snprintf(want, sizeof(want), "bucketcache_peer %s%s%s\r\n", name, nonce[0] ? " " : "", nonce);
    assert_int_equal(n, strlen(want));
    assert_string_equal(line, want);
    /* with its CRLF, with the CR a node's line reader leaves, without */
    for (size_t strip = 0; strip <= 2; strip++) {
        memset(&out, 0x55, sizeof(out));
        assert_int_equal(bc_wire_peer_parse(line, n - strip, &out), BC_OK);
        assert_string_equal(out.name, name);
        assert_string_equal(out.nonce, nonce);
    }
}

static void
test_peer_round_trip(void **state)
{
    (void)state;
    char longest[BC_WIRE_NAME_MAX + 2];
    memset(longest, '~', BC_WIRE_NAME_MAX);
    longest[BC_WIRE_NAME_MAX] = '\0';
    const char *nonces[] = {"", NONCE1, "ffffffffffffffffffffffffffffffff"};
    for (size_t k = 0; k < 3; k++) {
        peer_round_trip("n-0000000042", nonces[k]);
        peer_round_trip("unregistered", nonces[k]);
        peer_round_trip("x", nonces[k]);
        peer_round_trip("!", nonces[k]);
        peer_round_trip(longest, nonces[k]);
    }

    char line[BC_WIRE_HANDSHAKE_MAX];
    bc_wire_peer_t h = {.name = "n-7"};
    assert_int_equal(bc_wire_peer_format(&h, line, sizeof(line)), 22);
    assert_string_equal(line, "bucketcache_peer n-7\r\n");
    assert_string_equal(BC_WIRE_PEER_OK, "OK\r\n");
    memcpy(h.nonce, NONCE1, sizeof(h.nonce));
    assert_int_equal(bc_wire_peer_format(&h, line, sizeof(line)), 22 + 33);
    assert_string_equal(line, "bucketcache_peer n-7 " NONCE1 "\r\n");
    /* the longest name with a nonce fits a handoff and a read */
    memcpy(h.name, longest, sizeof(h.name));
    assert_true(bc_wire_peer_format(&h, line, sizeof(line)) < BC_WIRE_HANDSHAKE_MAX);
    /* names no peer line can carry */
    longest[BC_WIRE_NAME_MAX] = '~';
    longest[BC_WIRE_NAME_MAX + 1] = '\0';
    const char *bad[] = {"", "a b", "a\tb", "a\r", "\x7f", "caf\xc3\xa9", longest};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&h, 0, sizeof(h));
        snprintf(h.name, sizeof(h.name), "%s", bad[i]);
        if (i == sizeof(bad) / sizeof(bad[0]) - 1) memset(h.name, '~', sizeof(h.name));  /* no NUL */
        assert_int_equal(bc_wire_peer_format(&h, line, sizeof(line)), 0);
        assert_false(bc_wire_name_valid(bad[i], strlen(bad[i])));
    }
    /* nonces no peer line can carry: short, long, upper case, not hex */
    const char *badnonce[] = {"0123", NONCE1 "0", "0123456789ABCDEF0123456789abcdef",
                              "0123456789abcdefg123456789abcdef", "0123456789abcdef 123456789abcde"};
    for (size_t i = 0; i < sizeof(badnonce) / sizeof(badnonce[0]); i++) {
        memset(&h, 0, sizeof(h));
        snprintf(h.name, sizeof(h.name), "n-7");
        snprintf(h.nonce, sizeof(h.nonce), "%s", badnonce[i]);
        if (strlen(badnonce[i]) > BC_WIRE_NONCE_LEN) memset(h.nonce, 'a', sizeof(h.nonce));
        assert_int_equal(bc_wire_peer_format(&h, line, sizeof(line)), 0);
    }
    assert_int_equal(bc_wire_peer_format(NULL, line, sizeof(line)), 0);
    memset(&h, 0, sizeof(h));
    snprintf(h.name, sizeof(h.name), "n-7");
    assert_int_equal(bc_wire_peer_format(&h, line, 22), 0);    /* no room for the NUL */
    assert_string_equal(line, "");
    assert_int_equal(bc_wire_peer_format(&h, line, 23), 22);
}

static void
test_peer_parse(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        bc_status_t want;
        const char *name, *nonce;
    } cases[] = {
        {"bucketcache_peer n-7", BC_OK, "n-7", ""},
        {"bucketcache_peer n-7\r", BC_OK, "n-7", ""},
        {"bucketcache_peer   n-7   \r", BC_OK, "n-7", ""},     /* spaces around: tolerated */
        {"bucketcache_peer n-7 " NONCE1, BC_OK, "n-7", NONCE1},
        {"bucketcache_peer  n-7  " NONCE1 " \r", BC_OK, "n-7", NONCE1},
        {"bucketcache_peer", BC_EINVAL, NULL, NULL},
        {"bucketcache_peer\r", BC_EINVAL, NULL, NULL},
        {"bucketcache_peer \r", BC_EINVAL, NULL, NULL},
        {"bucketcache_peer a b", BC_EINVAL, NULL, NULL},
        {"bucketcache_peer a " NONCE1 " x", BC_EINVAL, NULL, NULL},
        {"bucketcache_peer a 0123456789ABCDEF0123456789abcdef", BC_EINVAL, NULL, NULL},
        {"bucketcache_peer a " NONCE1 "0", BC_EINVAL, NULL, NULL},
        {"bucketcache_peer a\tb", BC_EINVAL, NULL, NULL},
        {"bucketcache_peer a\r\r", BC_EINVAL, NULL, NULL},
        {"bucketcache_peer \x01", BC_EINVAL, NULL, NULL},
        {"bucketcache_peerx n-7", BC_ENOTFOUND, NULL, NULL},
        {"bucketcache_pee n-7", BC_ENOTFOUND, NULL, NULL},
        {"Bucketcache_peer n-7", BC_ENOTFOUND, NULL, NULL},
        {" bucketcache_peer n-7", BC_ENOTFOUND, NULL, NULL},
        {"get bucketcache_peer", BC_ENOTFOUND, NULL, NULL},
        {"bucketcache_replicate 1 - 0 n", BC_ENOTFOUND, NULL, NULL},
        {"bucketcache_auth " PROOF1, BC_ENOTFOUND, NULL, NULL},
        {"", BC_ENOTFOUND, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bc_wire_peer_t h;
        bc_status_t st = bc_wire_peer_parse(cases[i].line, strlen(cases[i].line), &h);
        if (st != cases[i].want) fail_msg("\"%s\": %d, expected %d", cases[i].line, st, cases[i].want);
        if (st == BC_OK) {
            assert_string_equal(h.name, cases[i].name);
            assert_string_equal(h.nonce, cases[i].nonce);
        }
    }
    bc_wire_peer_t h;
    assert_int_equal(bc_wire_peer_parse(NULL, 0, &h), BC_ENOTFOUND);

    /* a name of 64 bytes, and every prefix of a valid line */
    char line[BC_WIRE_HANDSHAKE_MAX];
    memset(line, 'a', sizeof(line));
    memcpy(line, "bucketcache_peer ", 17);
    assert_int_equal(bc_wire_peer_parse(line, 17 + BC_WIRE_NAME_MAX, &h), BC_OK);
    assert_int_equal(bc_wire_peer_parse(line, 17 + BC_WIRE_NAME_MAX + 1, &h), BC_EINVAL);
    assert_int_equal(bc_wire_peer_parse(line, sizeof(line), &h), BC_EINVAL);
    bc_wire_peer_t w = {.name = "n-0000000042", .nonce = NONCE1};
    size_t full = bc_wire_peer_format(&w, line, sizeof(line));
    for (size_t cut = 0; cut < full; cut++) {
        bc_status_t st = bc_wire_peer_parse(line, cut, &h);
        if (cut < 16) {
            assert_int_equal(st, BC_ENOTFOUND);
        } else if (cut <= 17) {
            assert_int_equal(st, BC_EINVAL);
        } else if (cut <= 30) {                      /* part of the name */
            assert_int_equal(st, BC_OK);
            assert_true(strlen(h.name) >= 1 && strlen(h.name) <= 12 && h.nonce[0] == '\0');
        } else if (cut < 30 + 32) {                  /* part of the nonce */
            assert_int_equal(st, BC_EINVAL);
        } else {                                     /* the nonce, then its CR */
            assert_int_equal(st, BC_OK);
            assert_string_equal(h.nonce, NONCE1);
        }
    }
}

/* ---- the challenge, the proof, the refusals ---- */

static void
test_challenge_round_trip(void **state)
{
    (void)state;
    bc_wire_challenge_t c = {.name = "n-0000000042", .nonce = NONCE1, .proof = PROOF1}, out;
    char line[BC_WIRE_HANDSHAKE_MAX];
    size_t n = bc_wire_challenge_format(&c, line, sizeof(line));
    assert_string_equal(line, "BUCKETCACHE_CHALLENGE n-0000000042 " NONCE1 " " PROOF1 "\r\n");
    assert_int_equal(n, strlen(line));
    for (size_t strip = 0; strip <= 2; strip++) {
        memset(&out, 0, sizeof(out));
        assert_int_equal(bc_wire_challenge_parse(line, n - strip, &out), BC_OK);
        assert_string_equal(out.name, c.name);
        assert_string_equal(out.nonce, c.nonce);
        assert_string_equal(out.proof, c.proof);
    }
    /* the longest fits */
    memset(c.name, 'z', BC_WIRE_NAME_MAX);
    c.name[BC_WIRE_NAME_MAX] = '\0';
    n = bc_wire_challenge_format(&c, line, sizeof(line));
    assert_true(n > 0 && n < BC_WIRE_HANDSHAKE_MAX);
    assert_int_equal(bc_wire_challenge_format(&c, line, n), 0);       /* no room for the NUL */
    assert_int_equal(bc_wire_challenge_format(&c, line, n + 1), n);
    /* every prefix and every byte changed: refused, or fields a challenge has */
    for (size_t cut = 0; cut <= n; cut++) {
        for (size_t i = 0; i < cut; i += 3) {
            char copy[BC_WIRE_HANDSHAKE_MAX];
            memcpy(copy, line, cut);
            copy[i] = (char)(copy[i] ^ 0x20);
            bc_status_t st = bc_wire_challenge_parse(copy, cut, &out);
            assert_true(st == BC_OK || st == BC_EINVAL || st == BC_ENOTFOUND);
            if (st != BC_OK) continue;
            char again[BC_WIRE_HANDSHAKE_MAX];
            assert_true(bc_wire_challenge_format(&out, again, sizeof(again)) > 0);
        }
    }
    /* unfit fields are not formatted */
    bc_wire_challenge_t bad = {.name = "a b", .nonce = NONCE1, .proof = PROOF1};
    assert_int_equal(bc_wire_challenge_format(&bad, line, sizeof(line)), 0);
    bad = (bc_wire_challenge_t){.name = "n", .nonce = "00", .proof = PROOF1};
    assert_int_equal(bc_wire_challenge_format(&bad, line, sizeof(line)), 0);
    bad = (bc_wire_challenge_t){.name = "n", .nonce = NONCE1, .proof = NONCE1};
    assert_int_equal(bc_wire_challenge_format(&bad, line, sizeof(line)), 0);
    assert_int_equal(bc_wire_challenge_format(NULL, line, sizeof(line)), 0);
}

static void
test_challenge_parse(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        bc_status_t want;
    } cases[] = {
        {"BUCKETCACHE_CHALLENGE n " NONCE1 " " PROOF1, BC_OK},
        {"BUCKETCACHE_CHALLENGE n " NONCE1 " " PROOF1 "\r\n", BC_OK},
        {"BUCKETCACHE_CHALLENGE  n " NONCE1 " " PROOF1, BC_EINVAL},      /* strict spacing */
        {"BUCKETCACHE_CHALLENGE n " NONCE1 " " PROOF1 " ", BC_EINVAL},
        {"BUCKETCACHE_CHALLENGE n " NONCE1 " " PROOF1 " x", BC_EINVAL},
        {"BUCKETCACHE_CHALLENGE n " NONCE1, BC_EINVAL},
        {"BUCKETCACHE_CHALLENGE n " PROOF1 " " NONCE1, BC_EINVAL},
        {"BUCKETCACHE_CHALLENGE", BC_EINVAL},
        {"BUCKETCACHE_CHALLENGEX n", BC_ENOTFOUND},
        {"bucketcache_challenge n " NONCE1 " " PROOF1, BC_ENOTFOUND},
        {"OK", BC_ENOTFOUND},
        {"CLIENT_ERROR peer authentication failed", BC_ENOTFOUND},
        {"", BC_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bc_wire_challenge_t c;
        bc_status_t st = bc_wire_challenge_parse(cases[i].line, strlen(cases[i].line), &c);
        if (st != cases[i].want) fail_msg("\"%s\": %d, expected %d", cases[i].line, st, cases[i].want);
    }
    bc_wire_challenge_t c;
    assert_int_equal(bc_wire_challenge_parse(NULL, 0, &c), BC_ENOTFOUND);
}

static void
test_auth_line(void **state)
{
    (void)state;
    char line[BC_WIRE_HANDSHAKE_MAX];
    size_t n = bc_wire_auth_format(PROOF1, line, sizeof(line));
    assert_string_equal(line, "bucketcache_auth " PROOF1 "\r\n");
    assert_int_equal(n, 17 + 64 + 2);
    const char *proof = NULL;
    for (size_t strip = 0; strip <= 2; strip++) {
        assert_int_equal(bc_wire_auth_parse(line, n - strip, &proof), BC_OK);
        assert_memory_equal(proof, PROOF1, BC_WIRE_PROOF_LEN);
        assert_true(proof == line + 17);
    }
    assert_int_equal(bc_wire_auth_format(NONCE1, line, sizeof(line)), 0);
    assert_int_equal(bc_wire_auth_format(NULL, line, sizeof(line)), 0);
    assert_int_equal(bc_wire_auth_format(PROOF1, line, n), 0);
    static const struct {
        const char *line;
        bc_status_t want;
    } cases[] = {
        {"bucketcache_auth   " PROOF1 "  ", BC_OK},
        {"bucketcache_auth", BC_EINVAL},
        {"bucketcache_auth " NONCE1, BC_EINVAL},
        {"bucketcache_auth " PROOF1 " x", BC_EINVAL},
        {"bucketcache_auth " PROOF1 "0", BC_EINVAL},
        {"bucketcache_authx " PROOF1, BC_ENOTFOUND},
        {"set bucketcache_auth 0 0 1", BC_ENOTFOUND},
        {"", BC_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bc_status_t st = bc_wire_auth_parse(cases[i].line, strlen(cases[i].line), &proof);
        if (st != cases[i].want) fail_msg("\"%s\": %d, expected %d", cases[i].line, st, cases[i].want);
    }
    assert_int_equal(bc_wire_auth_parse(NULL, 0, &proof), BC_ENOTFOUND);
}

static void
test_peer_auth_refusals(void **state)
{
    (void)state;
    int kinds = 0;
    for (int k = BC_WIRE_PEER_AUTH_NONE + 1; bc_wire_peer_auth_line((bc_wire_peer_auth_failure_t)k);
         k++) {
        const char *line = bc_wire_peer_auth_line((bc_wire_peer_auth_failure_t)k);
        size_t n = strlen(line);
        kinds++;
        /* a CLIENT_ERROR line a memcached client reads as an error */
        bc_mc_reply_t r;
        size_t used;
        assert_int_equal(bc_mc_reply_parse(line, n, &r, &used), BC_OK);
        assert_int_equal(used, n);
        assert_int_equal(r.kind, BC_MC_REPLY_CLIENT_ERROR);
        assert_int_equal(bc_wire_peer_auth_parse(r.text, r.ntext), k);
        /* no prefix, no longer text */
        assert_int_equal(bc_wire_peer_auth_parse(r.text, r.ntext - 1), BC_WIRE_PEER_AUTH_NONE);
        assert_int_equal(bc_wire_fwd_failure_parse(r.text, r.ntext), BC_WIRE_FWD_NONE);
    }
    assert_int_equal(kinds, 5);
    assert_string_equal(bc_wire_peer_auth_line(BC_WIRE_PEER_AUTH_FAILED),
                        "CLIENT_ERROR peer authentication failed: wrong proof (is the cluster "
                        "secret the same on every node?)\r\n");
    assert_null(bc_wire_peer_auth_line(BC_WIRE_PEER_AUTH_NONE));
    assert_null(bc_wire_peer_auth_line((bc_wire_peer_auth_failure_t)99));
    assert_int_equal(bc_wire_peer_auth_parse(NULL, 0), BC_WIRE_PEER_AUTH_NONE);
    assert_int_equal(bc_wire_peer_auth_parse("unauthenticated", 15), BC_WIRE_PEER_AUTH_NONE);
}

/* ---- bucketcache_replicate ---- */

static void
replicate_round_trip_nonce(uint32_t gid, const char *replid, uint64_t offset, const char *name,
                           const char *nonce)
{
    bc_wire_replicate_t in, out;
    memset(&in, 0, sizeof(in));
    in.gid = gid;
    in.offset = offset;
    snprintf(in.replid, sizeof(in.replid), "%s", replid);
    snprintf(in.name, sizeof(in.name), "%s", name);
    snprintf(in.nonce, sizeof(in.nonce), "%s", nonce);
    char line[BC_WIRE_HANDSHAKE_MAX], want[BC_WIRE_HANDSHAKE_MAX];
    size_t n = bc_wire_replicate_format(&in, line, sizeof(line));
    /* as the node's replication code sent it (and a nonce after) */
    snprintf(want, sizeof(want), "bucketcache_replicate %u %s %" PRIu64 " %s%s%s\r\n", gid,
             replid[0] ? replid : "-", offset, name, nonce[0] ? " " : "", nonce);
    assert_int_equal(n, strlen(want));
    assert_string_equal(line, want);

    const char *args;
    size_t nargs;
    /* a node's line reader hands over the line without its \n */
    assert_int_equal(bc_wire_replicate_match(line, n - 1, &args, &nargs), BC_OK);
    assert_true(n < BC_WIRE_HANDSHAKE_MAX);            /* fits a node's handoff */
    assert_int_equal(args[nargs], '\r');
    memset(&out, 0x55, sizeof(out));
    assert_int_equal(bc_wire_replicate_parse(args, nargs, &out), BC_OK);
    assert_int_equal(out.gid, gid);
    assert_true(out.offset == offset);
    assert_string_equal(out.replid, replid);
    assert_string_equal(out.name, name);
    assert_string_equal(out.nonce, nonce);
    /* the whole line, CRLF included, matches too */
    assert_int_equal(bc_wire_replicate_match(line, n, &args, &nargs), BC_OK);
    assert_int_equal(bc_wire_replicate_parse(args, nargs, &out), BC_OK);
}

static void
replicate_round_trip(uint32_t gid, const char *replid, uint64_t offset, const char *name)
{
    replicate_round_trip_nonce(gid, replid, offset, name, "");
    replicate_round_trip_nonce(gid, replid, offset, name, NONCE1);
}

static void
test_replicate_round_trip(void **state)
{
    (void)state;
    char rid[BC_FRAME_REPLID_MAX + 1], name[BC_WIRE_NAME_MAX + 1];
    memset(rid, 'f', BC_FRAME_REPLID_MAX);
    rid[BC_FRAME_REPLID_MAX] = '\0';
    memset(name, 'z', BC_WIRE_NAME_MAX);
    name[BC_WIRE_NAME_MAX] = '\0';
    replicate_round_trip(1, "", 0, "node");
    replicate_round_trip(BC_GROUP_MAX_GID, rid, UINT64_MAX, name);
    replicate_round_trip(17, "0123456789abcdef0123456789abcdef01234567", 123456789, "n-2");
    replicate_round_trip(2, "x", 1, "b");

    char line[BC_WIRE_HANDSHAKE_MAX];
    bc_wire_replicate_t h = {.gid = 3, .offset = 0, .replid = "", .name = "node"};
    assert_int_equal(bc_wire_replicate_format(&h, line, sizeof(line)), 34);
    assert_string_equal(line, "bucketcache_replicate 3 - 0 node\r\n");
    assert_int_equal(bc_wire_replicate_format(&h, line, 34), 0);   /* no room for the NUL */
    assert_string_equal(line, "");

    /* what no handshake can carry */
    bc_wire_replicate_t bad[] = {
        {.gid = 0, .replid = "", .name = "n"},
        {.gid = BC_GROUP_MAX_GID + 1u, .replid = "", .name = "n"},
        {.gid = 1, .replid = "-", .name = "n"},
        {.gid = 1, .replid = "a b", .name = "n"},
        {.gid = 1, .replid = "a\x7f", .name = "n"},
        {.gid = 1, .replid = "", .name = ""},
        {.gid = 1, .replid = "", .name = "a b"},
        {.gid = 1, .replid = "", .name = "n", .nonce = "abc"},
        {.gid = 1, .replid = "", .name = "n", .nonce = "0123456789ABCDEF0123456789abcdef"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bc_wire_replicate_format(&bad[i], line, sizeof(line)), 0);
    }
    memset(h.replid, 'a', sizeof(h.replid));                   /* 41 bytes, no NUL */
    assert_int_equal(bc_wire_replicate_format(&h, line, sizeof(line)), 0);
    memset(h.replid, 0, sizeof(h.replid));
    memset(h.name, 'a', sizeof(h.name));                       /* 65 bytes, no NUL */
    assert_int_equal(bc_wire_replicate_format(&h, line, sizeof(line)), 0);
}

static void
test_replicate_match(void **state)
{
    (void)state;
    const char *args;
    size_t n;
    static const char *const other[] = {
        "bucketcache_replicate", "bucketcache_replicate\r", "bucketcache_replicate ",
        "bucketcache_replicatex 1 - 0 n", "bucketcache_peer n", " bucketcache_replicate 1 - 0 n",
        "get bucketcache_replicate", "",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        assert_int_equal(bc_wire_replicate_match(other[i], strlen(other[i]), &args, &n),
                         BC_ENOTFOUND);
    }
    assert_int_equal(bc_wire_replicate_match(NULL, 0, &args, &n), BC_ENOTFOUND);
    /* the word and a space: a handshake, perhaps malformed (the primary
     * answers that) */
    const char *t = "bucketcache_replicate \r";
    assert_int_equal(bc_wire_replicate_match(t, strlen(t), &args, &n), BC_OK);
    assert_int_equal(n, 0);
    t = "bucketcache_replicate garbage";
    assert_int_equal(bc_wire_replicate_match(t, strlen(t), &args, &n), BC_OK);
    assert_int_equal(n, 7);
    bc_wire_replicate_t h;
    assert_int_equal(bc_wire_replicate_parse(args, n, &h), BC_EINVAL);
}

static void
test_replicate_parse(void **state)
{
    (void)state;
    bc_wire_replicate_t h;
    /* runs of spaces separate fields, as nodes have always accepted */
    const char *t = "  7   abc  42  n-1  ";
    assert_int_equal(bc_wire_replicate_parse(t, strlen(t), &h), BC_OK);
    assert_int_equal(h.gid, 7);
    assert_string_equal(h.replid, "abc");
    assert_int_equal(h.offset, 42);
    assert_string_equal(h.name, "n-1");

    char rid41[64], name65[96];
    snprintf(rid41, sizeof(rid41), "1 %041d 0 n", 0);
    snprintf(name65, sizeof(name65), "1 - 0 %065d", 0);
    const char *bad[] = {
        "", " ", "1 - 0", "1 - 0 n extra", "0 - 0 n", "2147483648 - 0 n", "-1 - 0 n",
        "+1 - 0 n", "01 - 0 n", "1 - 00 n", "1 - 18446744073709551616 n", "1 - 1x n",
        "1x - 0 n", "1 - -1 n", "1\t- 0 n", "1 - 0 a\tb", "1 - 0 caf\xc3\xa9", "1 a\x01 0 n",
        "1 - 0 n\r", rid41, name65, "1 - 0 n 0123", "1 - 0 n " NONCE1 " x",
        "1 - 0 n " NONCE1 "0", "1 - 0 n 0123456789ABCDEF0123456789abcdef",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bc_wire_replicate_parse(bad[i], strlen(bad[i]), &h) != BC_EINVAL) {
            fail_msg("\"%s\" parsed as a handshake", bad[i]);
        }
    }
    assert_int_equal(bc_wire_replicate_parse(NULL, 0, &h), BC_EINVAL);
    /* the length is honoured */
    t = "1 - 0 n extra";
    assert_int_equal(bc_wire_replicate_parse(t, 7, &h), BC_OK);
    assert_string_equal(h.name, "n");

    /* every prefix of the widest line, every byte changed: refused or a
     * handshake whose fields a handshake can carry */
    char rid[BC_FRAME_REPLID_MAX + 1], name[BC_WIRE_NAME_MAX + 1], line[BC_WIRE_HANDSHAKE_MAX];
    memset(rid, 'e', BC_FRAME_REPLID_MAX);
    rid[BC_FRAME_REPLID_MAX] = '\0';
    memset(name, 'q', BC_WIRE_NAME_MAX);
    name[BC_WIRE_NAME_MAX] = '\0';
    bc_wire_replicate_t w = {.gid = BC_GROUP_MAX_GID, .offset = UINT64_MAX, .nonce = NONCE1};
    memcpy(w.replid, rid, sizeof(rid));
    memcpy(w.name, name, sizeof(name));
    size_t n = bc_wire_replicate_format(&w, line, sizeof(line));
    const char *args = line + sizeof(BC_WIRE_REPLICATE_CMD);
    size_t nargs = n - sizeof(BC_WIRE_REPLICATE_CMD) - 2;
    char copy[BC_WIRE_HANDSHAKE_MAX], again[BC_WIRE_HANDSHAKE_MAX];
    for (size_t cut = 0; cut <= nargs; cut++) {
        for (size_t i = 0; i < cut; i++) {
            for (int b = 0; b < 256; b += (i % 7 == 0) ? 1 : 37) {
                memcpy(copy, args, cut);
                copy[i] = (char)b;
                if (bc_wire_replicate_parse(copy, cut, &h) != BC_OK) continue;
                assert_true(h.gid >= 1 && h.gid <= BC_GROUP_MAX_GID);
                assert_true(bc_wire_name_valid(h.name, strlen(h.name)));
                assert_true(strlen(h.replid) <= BC_FRAME_REPLID_MAX);
                assert_true(bc_wire_replicate_format(&h, again, sizeof(again)) > 0);
            }
        }
    }
}

/* The replication handshake's refusals, byte for byte as before. */
static void
test_replicate_refusals(void **state)
{
    (void)state;
    assert_string_equal(BC_WIRE_REPLICATE_BAD_LINE,
                        "CLIENT_ERROR bad replicate line: expected <gid> <replid|-> <offset> "
                        "<name>\r\n");
    assert_string_equal(BC_WIRE_REPLICATE_NOT_PRIMARY, "SERVER_ERROR NOT_PRIMARY of that group\r\n");
    assert_string_equal(BC_WIRE_REPLICATE_TOO_MANY, "SERVER_ERROR too many backups\r\n");
    const char *lines[] = {BC_WIRE_REPLICATE_BAD_LINE, BC_WIRE_REPLICATE_NOT_PRIMARY,
                           BC_WIRE_REPLICATE_TOO_MANY};
    for (size_t i = 0; i < 3; i++) {
        bc_mc_reply_t r;
        size_t used;
        assert_int_equal(bc_mc_reply_parse(lines[i], strlen(lines[i]), &r, &used), BC_OK);
        assert_int_equal(used, strlen(lines[i]));
        bc_wire_refusal_t ref;
        assert_int_equal(bc_wire_refusal_parse(r.text, r.ntext, &ref), BC_WIRE_REFUSAL_NONE);
        assert_int_equal(bc_wire_fwd_failure_parse(r.text, r.ntext), BC_WIRE_FWD_NONE);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusal_round_trip),
        cmocka_unit_test(test_refusal_rejects),
        cmocka_unit_test(test_refusal_truncated_and_mangled),
        cmocka_unit_test(test_refusal_random),
        cmocka_unit_test(test_fwd_failures),
        cmocka_unit_test(test_peer_round_trip),
        cmocka_unit_test(test_peer_parse),
        cmocka_unit_test(test_challenge_round_trip),
        cmocka_unit_test(test_challenge_parse),
        cmocka_unit_test(test_auth_line),
        cmocka_unit_test(test_peer_auth_refusals),
        cmocka_unit_test(test_replicate_round_trip),
        cmocka_unit_test(test_replicate_match),
        cmocka_unit_test(test_replicate_parse),
        cmocka_unit_test(test_replicate_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
