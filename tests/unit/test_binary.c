/*
 * test_binary.c -- memcached's binary protocol in the node's executor
 * (node/proto/binary.c), standalone: a real cache and the executor fed
 * the way the data port's server feeds it (bc_proto_process), the output
 * queue read back.  The byte-exact comparison with memcached 1.6.18 is
 * tests/integration/test_binary_protocol.py; here the executor's own
 * mechanics: detection on the first byte, input split anywhere, values
 * read straight into the item, backpressure, bounded memory on hostile
 * headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bc_log.h"
#include "engine/cache.h"
#include "proto/binary.h"
#include "proto/proto_text.h"

static uint32_t
fixed_now(void)
{
    return 1700000000u;
}

typedef struct fixture {
    bc_cache_t *cache;
    bc_thread_stats_t stats;
    bc_proto_env_t env;
    bc_proto_conn_t pc;
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    bc_cache_config_t cc = {
        .mem_limit = 8u << 20,
        .max_item_size = 1u << 20,
        .nbuckets = 64,
        .nshards = 4,
        .now = fixed_now,
    };
    assert_int_equal(bc_cache_create(&cc, &f->cache), BC_OK);
    f->env.cache = f->cache;
    f->env.listen_addr = "127.0.0.1";
    f->env.port = 11211;
    f->env.max_conns = 16;
    f->env.nthreads = 1;
    f->env.started = (time_t)fixed_now();
    atomic_init(&f->env.verbosity, 0);
    bc_proto_conn_init(&f->pc, &f->env, &f->stats, 3);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    bc_proto_conn_release(&f->pc);
    bc_cache_destroy(f->cache);
    free(f);
    return 0;
}

/* A request packet into out; returns its length. */
static size_t
pkt(unsigned char *out, uint8_t op, const void *key, uint16_t nkey, const void *ext, uint8_t next,
    const void *val, uint32_t nval, uint64_t cas, uint32_t opaque)
{
    memset(out, 0, 24);
    out[0] = BC_BIN_REQ_MAGIC;
    out[1] = op;
    bc_binary_put16(out + 2, nkey);
    out[4] = next;
    bc_binary_put32(out + 8, (uint32_t)next + nkey + nval);
    bc_binary_put32(out + 12, opaque);
    bc_binary_put64(out + 16, cas);
    size_t n = 24;
    if (next) memcpy(out + n, ext, next);
    n += next;
    if (nkey) memcpy(out + n, key, nkey);
    n += nkey;
    if (nval) memcpy(out + n, val, nval);
    return n + nval;
}

static size_t
set_pkt(unsigned char *out, uint8_t op, const char *key, const char *val, uint32_t flags,
        uint64_t cas, uint32_t opaque)
{
    unsigned char ext[8];
    bc_binary_put32(ext, flags);
    bc_binary_put32(ext + 4, 0);
    return pkt(out, op, key, (uint16_t)strlen(key), ext, 8, val, (uint32_t)strlen(val), cas,
               opaque);
}

/* Feeds buf in pieces of `step` bytes (presenting unconsumed bytes again,
 * reading data blocks straight into their item as the server does);
 * returns the last status. */
static bc_status_t
feed(fixture_t *f, const unsigned char *buf, size_t len, size_t step)
{
    static char rbuf[1 << 21];
    size_t rlen = 0, pos = 0;
    bc_status_t st = BC_OK;
    while (st == BC_OK && (pos < len || rlen > 0)) {
        char *dst;
        size_t need;
        if (rlen == 0 && bc_proto_direct_dest(&f->pc, &dst, &need) && need > 0) {
            size_t n = need < len - pos ? need : len - pos;
            if (n == 0) break;
            memcpy(dst, buf + pos, n);
            pos += n;
            st = bc_proto_direct_done(&f->pc, n);
            continue;
        }
        size_t n = step < len - pos ? step : len - pos;
        memcpy(rbuf + rlen, buf + pos, n);
        pos += n;
        rlen += n;
        size_t used = 0;
        st = bc_proto_process(&f->pc, rbuf, rlen, SIZE_MAX, &used);
        assert_true(used <= rlen);
        memmove(rbuf, rbuf + used, rlen - used);
        rlen -= used;
        if (n == 0 && used == 0) break;
    }
    return st;
}

/* The whole output queue, consumed, into out (malloc'd); returns its length. */
static size_t
drain(fixture_t *f, unsigned char **out)
{
    size_t total = bc_outq_pending(&f->pc.out), got = 0;
    *out = malloc(total + 1);
    while (bc_outq_pending(&f->pc.out) > 0) {
        struct iovec iov[64];
        int cnt = bc_outq_iov(&f->pc.out, iov, 64);
        size_t chunk = 0;
        for (int i = 0; i < cnt; i++) {
            memcpy(*out + got, iov[i].iov_base, iov[i].iov_len);
            got += iov[i].iov_len;
            chunk += iov[i].iov_len;
        }
        bc_outq_consume(&f->pc.out, f->cache, chunk);
    }
    return got;
}

/* One response at *pos of out: checks it, advances. */
static void
expect(const unsigned char *out, size_t len, size_t *pos, uint8_t op, uint16_t status,
       uint32_t opaque, const char *value)
{
    assert_true(*pos + 24 <= len);
    const unsigned char *p = out + *pos;
    assert_int_equal(p[0], BC_BIN_RES_MAGIC);
    assert_int_equal(p[1], op);
    assert_int_equal(bc_binary_get16(p + 6), status);
    assert_int_equal(bc_binary_get32(p + 12), opaque);
    uint32_t bodylen = bc_binary_get32(p + 8);
    uint32_t skip = p[4] + bc_binary_get16(p + 2);
    assert_true(*pos + 24 + bodylen <= len);
    if (value != NULL) {
        assert_int_equal(bodylen - skip, strlen(value));
        assert_memory_equal(p + 24 + skip, value, strlen(value));
    }
    *pos += 24 + bodylen;
}

static void
test_header_helpers(void **state)
{
    (void)state;
    unsigned char b[24];
    bc_binary_response_header(b, 0x0c, BC_BIN_KEY_ENOENT, 4, 3, 10, 0x11223344u, 42);
    assert_int_equal(b[0], 0x81);
    assert_int_equal(bc_binary_get16(b + 2), 3);
    assert_int_equal(b[4], 4);
    assert_int_equal(bc_binary_get16(b + 6), 1);
    assert_int_equal(bc_binary_get32(b + 8), 10);
    assert_true(bc_binary_get64(b + 16) == 42);
    bc_binary_header_t h;
    b[0] = 0x80;
    bc_binary_header_decode(b, &h);
    assert_int_equal(h.keylen, 3);
    assert_int_equal(h.bodylen, 10);
    bool q;
    assert_int_equal(bc_binary_unquiet(BC_BIN_GATKQ, &q), BC_BIN_GATK);
    assert_true(q);
    assert_int_equal(bc_binary_unquiet(BC_BIN_NOOP, &q), BC_BIN_NOOP);
    assert_false(q);
    assert_string_equal(bc_binary_status_text(BC_BIN_KEY_EEXISTS), "Data exists for key.");
}

/* A text connection stays text; a binary one binary. */
static void
test_detection(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(feed(f, (const unsigned char *)"version\r\n", 9, 100), BC_OK);
    unsigned char *out;
    size_t n = drain(f, &out);
    assert_int_equal(n, 16);
    assert_memory_equal(out, "VERSION 1.6.18\r\n", 16);
    free(out);
    assert_false(f->pc.binary);

    bc_proto_conn_release(&f->pc);
    bc_proto_conn_init(&f->pc, &f->env, &f->stats, 4);
    unsigned char req[64];
    size_t len = pkt(req, BC_BIN_VERSION, NULL, 0, NULL, 0, NULL, 0, 0, 9);
    assert_int_equal(feed(f, req, len, 1), BC_OK);
    n = drain(f, &out);
    size_t pos = 0;
    expect(out, n, &pos, BC_BIN_VERSION, 0, 9, "1.6.18");
    assert_int_equal(pos, n);
    free(out);
    assert_true(f->pc.binary);
}

/* The same stream fed whole and a byte at a time answers the same bytes. */
static void
test_split_anywhere(void **state)
{
    fixture_t *f = *state;
    static unsigned char req[1 << 16];
    size_t len = 0;
    len += set_pkt(req + len, BC_BIN_SET, "a", "hello", 7, 0, 1);
    len += set_pkt(req + len, BC_BIN_SETQ, "b", "", 0, 0, 2);
    len += pkt(req + len, BC_BIN_GETK, "a", 1, NULL, 0, NULL, 0, 0, 3);
    len += pkt(req + len, BC_BIN_GETQ, "zz", 2, NULL, 0, NULL, 0, 0, 4);
    len += pkt(req + len, BC_BIN_GET, "b", 1, NULL, 0, NULL, 0, 0, 5);
    len += pkt(req + len, BC_BIN_APPENDQ, "a", 1, NULL, 0, "!", 1, 0, 6);
    unsigned char incr[20];
    bc_binary_put64(incr, 2);
    bc_binary_put64(incr + 8, 40);
    bc_binary_put32(incr + 16, 0);
    len += pkt(req + len, BC_BIN_INCREMENT, "n", 1, incr, 20, NULL, 0, 0, 7);
    len += pkt(req + len, BC_BIN_INCREMENT, "n", 1, incr, 20, NULL, 0, 0, 8);
    bc_binary_put32(incr + 16, 0xffffffffu);
    len += pkt(req + len, BC_BIN_DECREMENT, "m", 1, incr, 20, NULL, 0, 0, 9);
    len += pkt(req + len, BC_BIN_DELETEQ, "zz", 2, NULL, 0, NULL, 0, 0, 10);
    len += pkt(req + len, BC_BIN_NOOP, NULL, 0, NULL, 0, NULL, 0, 0, 11);

    unsigned char *whole, *bytes;
    assert_int_equal(feed(f, req, len, len), BC_OK);
    size_t n1 = drain(f, &whole);
    bc_cache_flush(f->cache, 0);
    bc_proto_conn_release(&f->pc);
    bc_proto_conn_init(&f->pc, &f->env, &f->stats, 4);
    assert_int_equal(feed(f, req, len, 1), BC_OK);
    size_t n2 = drain(f, &bytes);

    size_t pos = 0;
    expect(whole, n1, &pos, BC_BIN_SET, 0, 1, "");
    expect(whole, n1, &pos, BC_BIN_GETK, 0, 3, "hello");
    expect(whole, n1, &pos, BC_BIN_GET, 0, 5, "");
    expect(whole, n1, &pos, BC_BIN_INCREMENT, 0, 7, NULL);      /* created: 40 */
    assert_true(bc_binary_get64(whole + pos - 8) == 40);
    expect(whole, n1, &pos, BC_BIN_INCREMENT, 0, 8, NULL);
    assert_true(bc_binary_get64(whole + pos - 8) == 42);
    expect(whole, n1, &pos, BC_BIN_DECREMENT, BC_BIN_KEY_ENOENT, 9, "Not found");
    expect(whole, n1, &pos, BC_BIN_DELETEQ, BC_BIN_KEY_ENOENT, 10, "Not found");
    expect(whole, n1, &pos, BC_BIN_NOOP, 0, 11, "");
    assert_int_equal(pos, n1);
    /* CAS values differ between the runs (a fresh counter is not reset) */
    assert_int_equal(n1, n2);
    for (size_t p = 0; p < n1; p += 24 + bc_binary_get32(whole + p + 8)) {
        assert_memory_equal(whole + p, bytes + p, 16);
        size_t body = bc_binary_get32(whole + p + 8);
        assert_memory_equal(whole + p + 24, bytes + p + 24, body);
    }
    free(whole);
    free(bytes);
}

/* A value larger than a copy is referenced from its item, whole. */
static void
test_large_value(void **state)
{
    fixture_t *f = *state;
    size_t vlen = 300000;
    unsigned char *req = malloc(vlen + 200);
    char *val = malloc(vlen + 1);
    for (size_t i = 0; i < vlen; i++) val[i] = (char)('a' + i % 26);
    val[vlen] = '\0';
    size_t len = set_pkt(req, BC_BIN_SET, "big", val, 0, 0, 1);
    len += pkt(req + len, BC_BIN_GET, "big", 3, NULL, 0, NULL, 0, 0, 2);
    assert_int_equal(feed(f, req, len, 4096), BC_OK);
    unsigned char *out;
    size_t n = drain(f, &out), pos = 0;
    expect(out, n, &pos, BC_BIN_SET, 0, 1, "");
    expect(out, n, &pos, BC_BIN_GET, 0, 2, val);
    free(out);
    free(req);
    free(val);
}

/* Hostile headers: memory bounded, errors as memcached, closes. */
static void
test_malformed(void **state)
{
    fixture_t *f = *state;
    unsigned char req[64];
    unsigned char *out;
    size_t n, pos;

    /* a key over 250 bytes: refused from the header, before its bytes */
    size_t len = pkt(req, BC_BIN_GET, NULL, 0, NULL, 0, NULL, 0, 0, 1);
    bc_binary_put16(req + 2, 60000);
    bc_binary_put32(req + 8, 60000);
    assert_int_equal(feed(f, req, len, len), BC_ECLOSED);
    n = drain(f, &out);
    pos = 0;
    expect(out, n, &pos, BC_BIN_GET, BC_BIN_EINVAL, 1, "Invalid arguments");
    free(out);

    /* keylen over bodylen: unknown command, close */
    bc_proto_conn_release(&f->pc);
    bc_proto_conn_init(&f->pc, &f->env, &f->stats, 4);
    bc_binary_put16(req + 2, 10);
    bc_binary_put32(req + 8, 5);
    assert_int_equal(feed(f, req, len, len), BC_ECLOSED);
    n = drain(f, &out);
    pos = 0;
    expect(out, n, &pos, BC_BIN_GET, BC_BIN_UNKNOWN_COMMAND, 1, "Unknown command");
    free(out);

    /* a set whose value is 4 GB: E2BIG, then the value is swallowed */
    bc_proto_conn_release(&f->pc);
    bc_proto_conn_init(&f->pc, &f->env, &f->stats, 5);
    len = set_pkt(req, BC_BIN_SET, "k", "", 0, 0, 2);
    bc_binary_put32(req + 8, 0xfffffff0u);
    assert_int_equal(feed(f, req, len, len), BC_OK);
    n = drain(f, &out);
    pos = 0;
    expect(out, n, &pos, BC_BIN_SET, BC_BIN_E2BIG, 2, "Too large.");
    free(out);
    assert_int_equal(f->pc.state, BC_PROTO_SWALLOW);
    assert_true(f->pc.swallow == 0xfffffff0u - 9);

    /* a bad magic: closed, nothing answered */
    bc_proto_conn_release(&f->pc);
    bc_proto_conn_init(&f->pc, &f->env, &f->stats, 6);
    len = pkt(req, BC_BIN_NOOP, NULL, 0, NULL, 0, NULL, 0, 0, 3);
    req[len] = 0x81;
    memset(req + len + 1, 0, 23);
    assert_int_equal(feed(f, req, len + 24, len + 24), BC_ECLOSED);
    n = drain(f, &out);
    pos = 0;
    expect(out, n, &pos, BC_BIN_NOOP, 0, 3, "");
    assert_int_equal(pos, n);
    free(out);

    /* an unknown opcode swallows bodylen more bytes */
    bc_proto_conn_release(&f->pc);
    bc_proto_conn_init(&f->pc, &f->env, &f->stats, 7);
    len = pkt(req, 0x50, "k", 1, NULL, 0, "ab", 2, 0, 4);
    assert_int_equal(feed(f, req, len, len), BC_OK);
    assert_int_equal(f->pc.state, BC_PROTO_SWALLOW);
    assert_true(f->pc.swallow == 1);             /* 3 - "ab" */
    n = drain(f, &out);
    pos = 0;
    expect(out, n, &pos, 0x50, BC_BIN_UNKNOWN_COMMAND, 4, "Unknown command");
    free(out);
}

/* Backpressure: over out_limit, packets wait. */
static void
test_backpressure(void **state)
{
    fixture_t *f = *state;
    static unsigned char req[25 * 200 + 64];
    size_t len = set_pkt(req, BC_BIN_SETQ, "k", "0123456789", 0, 0, 1);
    size_t first = len;
    for (int i = 0; i < 200; i++) len += pkt(req + len, BC_BIN_GET, "k", 1, NULL, 0, NULL, 0, 0, 2);
    size_t used = 0;
    assert_int_equal(bc_proto_process(&f->pc, (const char *)req, len, 256, &used), BC_OK);
    assert_true(used > first && used < len);
    assert_true(bc_outq_pending(&f->pc.out) < 256 + 64);
}

int
main(void)
{
    bc_log_set_level(BC_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_helpers),
        cmocka_unit_test_setup_teardown(test_detection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_anywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
