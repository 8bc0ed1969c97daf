/*
 * test_frame.c -- the migration peer frames (common/bc_frame.h): round
 * trips, msgpack compatibility both ways with libmsgpack, and hostile
 * input: truncation at every byte, every single-bit flip, wrong types,
 * oversize lengths, bad frame order and END counts; the bytes earlier
 * nodes wrote, both ways; and the CRC-32C, its crc32 instruction path
 * against the portable table path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <msgpack.h>

#include "bc_frame.h"

#define MAXP (1u << 20)

/* A three-item stream: HELLO, 3 x ITEM, END. */
static void
build_stream(bc_frame_buf_t *b)
{
    memset(b, 0, sizeof(*b));
    assert_int_equal(bc_frame_put_hello(b, 17, 123456789012ull, 64), BC_OK);
    assert_int_equal(bc_frame_put_item(b, "k1", 2, "hello", 5, 7, 0, 1), BC_OK);
    assert_int_equal(bc_frame_put_item(b, "key-two", 7, "", 0, 0xffffffffu, 3600, 1ull << 40),
                     BC_OK);
    char big[70000];
    memset(big, 'x', sizeof(big));
    assert_int_equal(bc_frame_put_item(b, "big", 3, big, sizeof(big), 300, 1, 99), BC_OK);
    assert_int_equal(bc_frame_put_end(b, 3, 2 + 5 + 7 + 0 + 3 + sizeof(big)), BC_OK);
}

/* Decodes a whole buffer as a stream; returns the status of the first
 * failure (BC_OK when complete and valid). */
static bc_status_t
decode_all(const char *buf, size_t len, size_t *items, char *err, size_t errlen)
{
    bc_frame_stream_t s;
    memset(&s, 0, sizeof(s));
    size_t pos = 0;
    while (pos < len) {
        bc_frame_t f;
        size_t used;
        bc_status_t st = bc_frame_decode(buf + pos, len - pos, MAXP, &f, &used, err, errlen);
        if (st == BC_EAGAIN) break;
        if (st != BC_OK) return st;
        st = bc_frame_stream_next(&s, &f, err, errlen);
        if (st != BC_OK) return st;
        pos += used;
    }
    if (items != NULL) *items = (size_t)s.items;
    return bc_frame_stream_finish(&s, err, errlen);
}

/* Wraps payload in a valid frame header and expects it refused as
 * malformed, the error naming needle (defined below). */
static void expect_malformed(const void *payload, size_t n, const char *needle);

/* Every replication frame decodes to what was encoded, and a mangled
 * field count or a bad replid is refused with a reason. */
static void
test_replication_frames(void **state)
{
    (void)state;
    bc_frame_buf_t b;
    memset(&b, 0, sizeof(b));
    const char *rid = "0123456789abcdef0123456789abcdef01234567";   /* 40 */
    assert_int_equal(bc_frame_put_rhello(&b, true, rid, 1ull << 35), BC_OK);
    assert_int_equal(bc_frame_put_rhello(&b, false, "short", 7), BC_OK);
    assert_int_equal(bc_frame_put_del(&b, "gone", 4), BC_OK);
    assert_int_equal(bc_frame_put_touch(&b, "t", 1, 3600), BC_OK);
    assert_int_equal(bc_frame_put_flush(&b, 1700000000u, 77), BC_OK);
    assert_int_equal(bc_frame_put_drop(&b, 1023), BC_OK);
    assert_int_equal(bc_frame_put_ping(&b, 99), BC_OK);
    assert_int_equal(bc_frame_put_ack(&b, UINT64_MAX), BC_OK);
    assert_int_equal(bc_frame_put_rhello(&b, true, "0123456789abcdef0123456789abcdef012345678", 0),
                     BC_EINVAL);   /* 41 bytes: refused, buffer unchanged */

    bc_frame_t f;
    size_t used, pos = 0;
    char err[200];
#define NEXT(type_)                                                                          \
    do {                                                                                     \
        assert_int_equal(bc_frame_decode(b.data + pos, b.len - pos, MAXP, &f, &used, err,     \
                                         sizeof(err)), BC_OK);                               \
        assert_int_equal(f.type, type_);                                                     \
        pos += used;                                                                         \
    } while (0)
    NEXT(BC_FRAME_RHELLO);
    assert_true(f.full);
    assert_int_equal(f.nreplid, 40);
    assert_memory_equal(f.replid, rid, 40);
    assert_true(f.offset == 1ull << 35);
    assert_int_equal(f.version, BC_FRAME_VERSION);
    NEXT(BC_FRAME_RHELLO);
    assert_false(f.full);
    assert_int_equal(f.nreplid, 5);
    assert_int_equal(f.offset, 7);
    NEXT(BC_FRAME_DEL);
    assert_int_equal(f.nkey, 4);
    assert_memory_equal(f.key, "gone", 4);
    NEXT(BC_FRAME_TOUCH);
    assert_int_equal(f.ttl, 3600);
    NEXT(BC_FRAME_FLUSH);
    assert_int_equal(f.when, 1700000000u);
    assert_int_equal(f.mark, 77);
    NEXT(BC_FRAME_DROP);
    assert_int_equal(f.bucket, 1023);
    NEXT(BC_FRAME_PING);
    assert_int_equal(f.offset, 99);
    NEXT(BC_FRAME_ACK);
    assert_true(f.offset == UINT64_MAX);
    assert_int_equal(pos, b.len);
#undef NEXT

    /* a DEL with a ttl (3 fields: [11, "k", 5]) is not a DEL */
    expect_malformed("\x93\x0b\xc4\x01k\x05", 6, "DEL frame with 3 fields");
    bc_frame_buf_free(&b);
}

static void
test_crc32c_known_values(void **state)
{
    (void)state;
    assert_int_equal(bc_frame_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(bc_frame_crc32c(0, "", 0), 0);
    /* chaining equals one pass, at every split and alignment */
    char buf[300];
    for (size_t i = 0; i < sizeof(buf); i++) buf[i] = (char)(i * 31 + 7);
    uint32_t whole = bc_frame_crc32c(0, buf, sizeof(buf));
    for (size_t cut = 0; cut <= sizeof(buf); cut += 13) {
        assert_int_equal(bc_frame_crc32c(bc_frame_crc32c(0, buf, cut), buf + cut,
                                         sizeof(buf) - cut), whole);
    }
    assert_int_equal(bc_frame_crc32c(0, buf + 1, 64),
                     bc_frame_crc32c(bc_frame_crc32c(0, buf + 1, 3), buf + 4, 61));
}

/* The next pseudo-random value of a xorshift64 sequence (in place). */
static uint64_t
xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* CRC-32C one bit at a time, straight from the definition: the reference
 * the two fast paths are held to. */
static uint32_t
crc32c_bitwise(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n-- > 0) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/*
 * The crc32 instruction path (three interleaved chains over 3 x 8192 and
 * 3 x 256 byte blocks, joined with shift tables) against the portable
 * table path and the bitwise definition: every length around the block
 * boundaries, every alignment, nonzero starting CRCs, and split runs
 * whose cuts fall inside and between blocks.  On a CPU without SSE 4.2
 * both calls take the table path and agree trivially.
 */
static void
test_crc32c_hw_matches_soft(void **state)
{
    (void)state;
    enum { MAXLEN = 70000 };
    unsigned char *buf = malloc(MAXLEN + 8);
    assert_non_null(buf);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < MAXLEN + 8; i++) {
        buf[i] = (unsigned char)(xorshift(&x) >> 24);
    }
    assert_int_equal(bc__frame_crc32c_soft(0, "123456789", 9), 0xe3069283u);

    /* 0..1600 (short blocks, words, tails), the edges of 1..3 short
     * blocks and of the long block, and the long path up to 70000 */
    size_t lens[4096];
    size_t nlens = 0;
    for (size_t n = 0; n <= 1600; n++) lens[nlens++] = n;
    const size_t edges[] = {2304, 3 * 8192 - 768, 3 * 8192 - 8, 3 * 8192 - 1, 3 * 8192,
                            3 * 8192 + 1, 3 * 8192 + 7, 3 * 8192 + 8, 3 * 8192 + 767,
                            3 * 8192 + 768, 3 * 8192 + 775, 6 * 8192 - 1, 6 * 8192,
                            6 * 8192 + 768 * 2 + 13, 65536, MAXLEN - 7, MAXLEN};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) lens[nlens++] = edges[i];
    for (int i = 0; i < 200; i++) {
        xorshift(&x);
        lens[nlens++] = 768 + (size_t)(x % (3 * 8192 - 768));   /* short blocks only */
        lens[nlens++] = (size_t)(x >> 32) % (MAXLEN + 1 - 8);
    }
    for (size_t i = 0; i < nlens; i++) {
        for (size_t off = 0; off < 8 && off + lens[i] <= MAXLEN + 8; off++) {
            const unsigned char *p = buf + off;
            uint32_t seed = (uint32_t)(i * 0x9e3779b9u + off);
            uint32_t soft = bc__frame_crc32c_soft(0, p, lens[i]);
            if (bc_frame_crc32c(0, p, lens[i]) != soft ||
                bc_frame_crc32c(seed, p, lens[i]) != bc__frame_crc32c_soft(seed, p, lens[i])) {
                fail_msg("crc32c paths disagree at length %zu, offset %zu", lens[i], off);
            }
        }
    }
    /* both against the definition, on a few lengths of each kind */
    const size_t check[] = {0, 1, 7, 8, 255, 767, 768, 769, 4000, 24575, 24576, 24583, MAXLEN};
    for (size_t i = 0; i < sizeof(check) / sizeof(check[0]); i++) {
        uint32_t want = crc32c_bitwise(0, buf + 3, check[i]);
        assert_int_equal(bc__frame_crc32c_soft(0, buf + 3, check[i]), want);
        assert_int_equal(bc_frame_crc32c(0, buf + 3, check[i]), want);
    }

    /* split runs: one cut anywhere, two cuts across block edges */
    uint32_t whole = bc__frame_crc32c_soft(0, buf + 1, MAXLEN);
    const size_t cuts[] = {1, 7, 8, 255, 256, 767, 768, 769, 1000, 8191, 8192, 24575, 24576,
                           24577, 25343, 25344, 49152, 49153, 60000, MAXLEN - 769, MAXLEN - 1};
    size_t ncuts = sizeof(cuts) / sizeof(cuts[0]);
    for (size_t i = 0; i < ncuts; i++) {
        uint32_t c = bc_frame_crc32c(0, buf + 1, cuts[i]);
        assert_int_equal(bc_frame_crc32c(c, buf + 1 + cuts[i], MAXLEN - cuts[i]), whole);
        for (size_t j = i + 1; j < ncuts; j++) {
            uint32_t c2 = bc_frame_crc32c(c, buf + 1 + cuts[i], cuts[j] - cuts[i]);
            if (bc_frame_crc32c(c2, buf + 1 + cuts[j], MAXLEN - cuts[j]) != whole) {
                fail_msg("split crc32c at %zu and %zu differs", cuts[i], cuts[j]);
            }
        }
    }
    for (size_t cut = 0; cut <= MAXLEN; cut += 997) {
        uint32_t c = bc_frame_crc32c(0, buf + 1, cut);
        assert_int_equal(bc_frame_crc32c(c, buf + 1 + cut, MAXLEN - cut), whole);
    }
    free(buf);
}

static void
test_roundtrip(void **state)
{
    (void)state;
    bc_frame_buf_t b;
    build_stream(&b);
    bc_frame_t f;
    size_t used, pos = 0;
    char err[256] = "";

    assert_int_equal(bc_frame_decode(b.data, b.len, MAXP, &f, &used, err, sizeof(err)), BC_OK);
    assert_int_equal(f.type, BC_FRAME_HELLO);
    assert_int_equal(f.version, BC_FRAME_VERSION);
    assert_int_equal(f.bucket, 17);
    assert_true(f.epoch == 123456789012ull);
    assert_int_equal(f.nbuckets, 64);
    pos += used;

    assert_int_equal(bc_frame_decode(b.data + pos, b.len - pos, MAXP, &f, &used, err, sizeof(err)),
                     BC_OK);
    assert_int_equal(f.type, BC_FRAME_ITEM);
    assert_int_equal(f.nkey, 2);
    assert_memory_equal(f.key, "k1", 2);
    assert_int_equal(f.nvalue, 5);
    assert_memory_equal(f.value, "hello", 5);
    assert_int_equal(f.flags, 7);
    assert_int_equal(f.ttl, 0);
    assert_true(f.cas == 1);
    /* zero-copy: the key points into the buffer */
    assert_true(f.key > b.data && f.key < b.data + b.len);
    pos += used;

    assert_int_equal(bc_frame_decode(b.data + pos, b.len - pos, MAXP, &f, &used, err, sizeof(err)),
                     BC_OK);
    assert_int_equal(f.nvalue, 0);
    assert_true(f.flags == 0xffffffffu && f.ttl == 3600 && f.cas == (1ull << 40));
    pos += used;

    assert_int_equal(bc_frame_decode(b.data + pos, b.len - pos, MAXP, &f, &used, err, sizeof(err)),
                     BC_OK);
    assert_int_equal(f.nvalue, 70000);
    pos += used;

    assert_int_equal(bc_frame_decode(b.data + pos, b.len - pos, MAXP, &f, &used, err, sizeof(err)),
                     BC_OK);
    assert_int_equal(f.type, BC_FRAME_END);
    assert_true(f.items == 3);
    pos += used;
    assert_int_equal(pos, b.len);

    size_t items = 0;
    assert_int_equal(decode_all(b.data, b.len, &items, err, sizeof(err)), BC_OK);
    assert_int_equal(items, 3);
    bc_frame_buf_free(&b);
}

static void
test_truncated_at_every_byte(void **state)
{
    (void)state;
    bc_frame_buf_t b;
    build_stream(&b);
    char err[256];
    /* Every proper prefix is incomplete, never a valid stream, never a crash. */
    for (size_t cut = 0; cut < b.len; cut++) {
        err[0] = '\0';
        bc_status_t st = decode_all(b.data, cut, NULL, err, sizeof(err));
        assert_int_equal(st, BC_EPROTO);
        assert_non_null(strstr(err, "truncated"));
    }
    /* A single frame cut short asks for more. */
    bc_frame_t f;
    size_t used = 99;
    for (size_t cut = 0; cut < 20; cut++) {
        assert_int_equal(bc_frame_decode(b.data, cut, MAXP, &f, &used, NULL, 0), BC_EAGAIN);
        assert_int_equal(used, 0);
    }
    bc_frame_buf_free(&b);
}

static void
test_every_bit_flip_is_caught(void **state)
{
    (void)state;
    bc_frame_buf_t b;
    memset(&b, 0, sizeof(b));
    assert_int_equal(bc_frame_put_hello(&b, 1, 2, 3), BC_OK);
    assert_int_equal(bc_frame_put_item(&b, "key", 3, "value", 5, 1, 2, 3), BC_OK);
    assert_int_equal(bc_frame_put_end(&b, 1, 8), BC_OK);
    char *copy = malloc(b.len);
    char err[256];
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, b.data, b.len);
            copy[i] ^= (char)(1 << bit);
            bc_status_t st = decode_all(copy, b.len, NULL, err, sizeof(err));
            /* a flipped length may also make the frame look incomplete
             * (truncated) or too large: never valid */
            assert_true(st == BC_EPROTO || st == BC_ETOOLARGE);
        }
    }
    free(copy);
    bc_frame_buf_free(&b);
}

/* Wraps an arbitrary payload in a valid header (correct length and CRC). */
static size_t
wrap(char *out, const void *payload, size_t n)
{
    uint32_t crc = bc_frame_crc32c(0, payload, n);
    out[0] = (char)(n >> 24);
    out[1] = (char)(n >> 16);
    out[2] = (char)(n >> 8);
    out[3] = (char)n;
    out[4] = (char)(crc >> 24);
    out[5] = (char)(crc >> 16);
    out[6] = (char)(crc >> 8);
    out[7] = (char)crc;
    memcpy(out + 8, payload, n);
    return n + 8;
}

static void
expect_malformed(const void *payload, size_t n, const char *needle)
{
    char buf[512], err[256] = "";
    bc_frame_t f;
    size_t used;
    size_t len = wrap(buf, payload, n);
    assert_int_equal(bc_frame_decode(buf, len, MAXP, &f, &used, err, sizeof(err)), BC_EPROTO);
    if (needle != NULL && strstr(err, needle) == NULL) fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void
test_malformed_payloads(void **state)
{
    (void)state;
    /* not an array */
    expect_malformed("\x01", 1, "not a msgpack array");
    /* empty array */
    expect_malformed("\x90", 1, "not a msgpack array");
    /* unknown type */
    expect_malformed("\x91\x07", 2, "unknown frame type 7");
    /* ITEM with too few fields */
    expect_malformed("\x93\x01\xc4\x01k\xc4\x01v", 8, "expected 6");
    /* ITEM whose key is an integer */
    expect_malformed("\x96\x01\x05\xc4\x01v\x00\x00\x00", 9, "wrong msgpack type");
    /* ITEM whose flags do not fit 32 bits */
    expect_malformed("\x96\x01\xc4\x01k\xc4\x01v\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00", 19,
                     "out of range");
    /* ITEM with a negative ttl */
    expect_malformed("\x96\x01\xc4\x01k\xc4\x01v\x00\xd0\xff\x00", 12, "out of range");
    /* bin length past the payload */
    expect_malformed("\x96\x01\xc4\x40k\xc4\x01v\x00\x00\x00", 11, "wrong msgpack type");
    /* stray bytes after the fields */
    expect_malformed("\x93\x02\x00\x00\x00", 5, "stray bytes");
    /* HELLO without the magic */
    expect_malformed("\x96\x00\xa5xxxxx\x01\x00\x00\x01", 12, "magic");
    /* zero-length frame */
    char buf[16] = {0};
    bc_frame_t f;
    size_t used;
    assert_int_equal(bc_frame_decode(buf, 8, MAXP, &f, &used, NULL, 0), BC_EPROTO);
}

/* An item in parts: HEAD then PARTs adding up to its size count as one
 * item with its key and value bytes; every proper prefix is incomplete;
 * anything out of order, a part too long, or a part without its head is
 * refused; the encoder refuses a size of 0 and an empty part. */
static void
parts_stream(bc_frame_buf_t *b, size_t first, size_t second, size_t missing, bool end)
{
    static char value[100000];
    memset(value, 'v', sizeof(value));
    memset(b, 0, sizeof(*b));
    assert_int_equal(bc_frame_put_hello(b, 5, 9, 64), BC_OK);
    assert_int_equal(bc_frame_put_item(b, "a", 1, "xyz", 3, 0, 0, 1), BC_OK);
    assert_int_equal(bc_frame_put_head(b, "big", 3, first + second + missing, 42, 60, 7, 0x1), BC_OK);
    assert_int_equal(bc_frame_put_part(b, value, first), BC_OK);
    if (second > 0) assert_int_equal(bc_frame_put_part(b, value, second), BC_OK);
    if (end) assert_int_equal(bc_frame_put_end(b, 2, 1 + 3 + 3 + first + second), BC_OK);
}

static void
test_item_in_parts(void **state)
{
    (void)state;
    bc_frame_buf_t b;
    char err[256];
    size_t items = 0;
    parts_stream(&b, 60000, 40000, 0, true);
    assert_int_equal(decode_all(b.data, b.len, &items, err, sizeof(err)), BC_OK);
    assert_int_equal(items, 2);

    /* the HEAD's fields */
    bc_frame_t f;
    size_t used, pos = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(bc_frame_decode(b.data + pos, b.len - pos, MAXP, &f, &used, NULL, 0),
                         BC_OK);
        pos += used;
    }
    assert_int_equal(bc_frame_decode(b.data + pos, b.len - pos, MAXP, &f, &used, NULL, 0), BC_OK);
    assert_int_equal(f.type, BC_FRAME_HEAD);
    assert_int_equal(f.nkey, 3);
    assert_memory_equal(f.key, "big", 3);
    assert_int_equal(f.size, 100000);
    assert_int_equal(f.flags, 42);
    assert_int_equal(f.ttl, 60);
    assert_int_equal(f.cas, 7);
    assert_int_equal(f.meta, 0x1);
    pos += used;
    assert_int_equal(bc_frame_decode(b.data + pos, b.len - pos, MAXP, &f, &used, NULL, 0), BC_OK);
    assert_int_equal(f.type, BC_FRAME_PART);
    assert_int_equal(f.nvalue, 60000);
    /* a part is read with a buffer far smaller than the item */
    assert_int_equal(bc_frame_decode(b.data + pos, b.len - pos, 65536, &f, &used, NULL, 0), BC_OK);

    /* every proper prefix is incomplete */
    for (size_t cut = 0; cut < b.len; cut += 997) {
        assert_int_not_equal(decode_all(b.data, cut, NULL, err, sizeof(err)), BC_OK);
    }
    bc_frame_buf_free(&b);

    /* END before the parts add up */
    parts_stream(&b, 60000, 0, 40000, false);
    assert_int_equal(bc_frame_put_end(&b, 2, 1 + 3 + 3 + 60000), BC_OK);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    assert_non_null(strstr(err, "more bytes of an item's value were due"));
    bc_frame_buf_free(&b);

    /* the stream ends inside the item */
    parts_stream(&b, 60000, 0, 40000, false);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    assert_non_null(strstr(err, "bytes of an item's value missing"));
    bc_frame_buf_free(&b);

    /* an ITEM between the parts */
    parts_stream(&b, 60000, 0, 40000, false);
    assert_int_equal(bc_frame_put_item(&b, "c", 1, "z", 1, 0, 0, 1), BC_OK);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    bc_frame_buf_free(&b);

    /* a part longer than what is left */
    memset(&b, 0, sizeof(b));
    assert_int_equal(bc_frame_put_hello(&b, 5, 9, 64), BC_OK);
    assert_int_equal(bc_frame_put_head(&b, "big", 3, 10, 0, 0, 1, 0), BC_OK);
    assert_int_equal(bc_frame_put_part(&b, "0123456789A", 11), BC_OK);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    assert_non_null(strstr(err, "were left of the item's value"));
    bc_frame_buf_free(&b);

    /* a part without its head */
    memset(&b, 0, sizeof(b));
    assert_int_equal(bc_frame_put_hello(&b, 5, 9, 64), BC_OK);
    assert_int_equal(bc_frame_put_part(&b, "0123", 4), BC_OK);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    assert_non_null(strstr(err, "without its HEAD"));

    /* the encoder */
    assert_int_equal(bc_frame_put_head(&b, "k", 1, 0, 0, 0, 1, 0), BC_EINVAL);
    assert_int_equal(bc_frame_put_head(&b, "k", 1, 1ull << 32, 0, 0, 1, 0), BC_EINVAL);
    assert_int_equal(bc_frame_put_part(&b, "", 0), BC_EINVAL);
    bc_frame_buf_free(&b);

    /* malformed: an empty part, a HEAD of size 0, a HEAD without meta */
    expect_malformed("\x92\x04\xc4\x00", 4, "wrong msgpack type");
    expect_malformed("\x97\x03\xc4\x01k\x00\x00\x00\x01\x00", 10, "out of range");
    expect_malformed("\x96\x03\xc4\x01k\x05\x00\x00\x01", 9, "expected 7");
}

/* A delta export: HELLO with delta = 1 may carry DEL frames (counted as
 * items, their key as bytes); a full export may not; a HELLO's delta
 * field other than 0/1 is refused. */
static void
test_delta_stream(void **state)
{
    (void)state;
    char err[256];
    bc_frame_buf_t b;
    memset(&b, 0, sizeof(b));
    assert_int_equal(bc_frame_put_hello_delta(&b, 7, 42, 1024), BC_OK);
    bc_frame_t f;
    size_t used;
    assert_int_equal(bc_frame_decode(b.data, b.len, MAXP, &f, &used, err, sizeof(err)), BC_OK);
    assert_int_equal(f.type, BC_FRAME_HELLO);
    assert_true(f.delta);
    assert_int_equal(f.bucket, 7);
    assert_int_equal(f.epoch, 42);
    assert_int_equal(f.nbuckets, 1024);
    assert_int_equal(bc_frame_put_item(&b, "k1", 2, "vv", 2, 0, 0, 0), BC_OK);
    assert_int_equal(bc_frame_put_del(&b, "gone", 4), BC_OK);
    assert_int_equal(bc_frame_put_end(&b, 2, 2 + 2 + 4), BC_OK);
    size_t items = 0;
    assert_int_equal(decode_all(b.data, b.len, &items, err, sizeof(err)), BC_OK);
    assert_int_equal(items, 2);
    bc_frame_buf_free(&b);

    /* the plain HELLO is a full export: no delta, and DEL is refused */
    assert_int_equal(bc_frame_put_hello(&b, 7, 42, 1024), BC_OK);
    assert_int_equal(bc_frame_decode(b.data, b.len, MAXP, &f, &used, err, sizeof(err)), BC_OK);
    assert_false(f.delta);
    assert_int_equal(bc_frame_put_del(&b, "gone", 4), BC_OK);
    assert_int_equal(bc_frame_put_end(&b, 1, 4), BC_OK);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    assert_non_null(strstr(err, "full export"));
    bc_frame_buf_free(&b);

    /* delta = 2 is out of range */
    const char hello_d2[] = "\x97\x00\xa5" "bcmig" "\x01\x01\x01\x04\x02";
    expect_malformed(hello_d2, sizeof(hello_d2) - 1, "out of range");
}

static void
test_oversize_length_refused_before_reading(void **state)
{
    (void)state;

/* A header claiming 4 GiB: refused at once, not waited for. */
    char hdr[8] = {(char)0xff, (char)0xff, (char)0xff, (char)0xff, 0, 0, 0, 0};
    bc_frame_t f;
    size_t used;
    char err[256] = "";
    assert_int_equal(bc_frame_decode(hdr, 8, MAXP, &f, &used, err, sizeof(err)), BC_ETOOLARGE);
    assert_non_null(strstr(err, "over the limit"));
}

static void
test_stream_order_and_counts(void **state)
{
    (void)state;
    char err[256];
    bc_frame_buf_t b;

    /* ITEM before HELLO */
    memset(&b, 0, sizeof(b));
    bc_frame_put_item(&b, "k", 1, "v", 1, 0, 0, 0);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    assert_non_null(strstr(err, "HELLO"));
    bc_frame_buf_free(&b);

    /* END counts that do not match */
    bc_frame_put_hello(&b, 1, 1, 4);
    bc_frame_put_item(&b, "k", 1, "v", 1, 0, 0, 0);
    bc_frame_put_end(&b, 2, 2);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    assert_non_null(strstr(err, "END says"));
    bc_frame_buf_free(&b);

    /* a frame after END */
    bc_frame_put_hello(&b, 1, 1, 4);
    bc_frame_put_end(&b, 0, 0);
    bc_frame_put_item(&b, "k", 1, "v", 1, 0, 0, 0);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    assert_non_null(strstr(err, "after END"));
    bc_frame_buf_free(&b);

    /* a second HELLO */
    bc_frame_put_hello(&b, 1, 1, 4);
    bc_frame_put_hello(&b, 1, 1, 4);
    assert_int_equal(decode_all(b.data, b.len, NULL, err, sizeof(err)), BC_EPROTO);
    bc_frame_buf_free(&b);

    /* an unknown version */
    char payload[32];
    size_t n = 0;
    const char hello_v9[] = "\x96\x00\xa5" "bcmig" "\x09\x01\x01\x04";
    memcpy(payload, hello_v9, sizeof(hello_v9) - 1);
    n = sizeof(hello_v9) - 1;
    char framed[64];
    size_t flen = wrap(framed, payload, n);
    assert_int_equal(decode_all(framed, flen, NULL, err, sizeof(err)), BC_EPROTO);
    assert_non_null(strstr(err, "version 9"));

    /* an empty bucket is a valid stream */
    bc_frame_put_hello(&b, 3, 9, 4);
    bc_frame_put_end(&b, 0, 0);
    size_t items = 5;
    assert_int_equal(decode_all(b.data, b.len, &items, err, sizeof(err)), BC_OK);
    assert_int_equal(items, 0);
    bc_frame_buf_free(&b);
}

/* Our payloads are standard msgpack: libmsgpack reads them. */
static void
test_libmsgpack_reads_our_frames(void **state)
{
    (void)state;
    bc_frame_buf_t b;
    memset(&b, 0, sizeof(b));
    assert_int_equal(bc_frame_put_item(&b, "key", 3, "value", 5, 70000, 5, 1ull << 33), BC_OK);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, b.data + 8, b.len - 8, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, b.len - 8);
    msgpack_object o = u.data;
    assert_int_equal(o.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(o.via.array.size, 6);
    assert_int_equal(o.via.array.ptr[0].via.u64, BC_FRAME_ITEM);
    assert_int_equal(o.via.array.ptr[1].type, MSGPACK_OBJECT_BIN);
    assert_memory_equal(o.via.array.ptr[1].via.bin.ptr, "key", 3);
    assert_memory_equal(o.via.array.ptr[2].via.bin.ptr, "value", 5);
    assert_int_equal(o.via.array.ptr[3].via.u64, 70000);
    assert_int_equal(o.via.array.ptr[4].via.u64, 5);
    assert_true(o.via.array.ptr[5].via.u64 == (1ull << 33));
    msgpack_unpacked_destroy(&u);
    bc_frame_buf_free(&b);
}

/* libmsgpack's frames (str keys, signed ints, wide widths) decode here. */
static void
test_we_read_libmsgpack_frames(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_int64(&pk, 1);
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "skey", 4);
    msgpack_pack_bin(&pk, 3);
    msgpack_pack_bin_body(&pk, "v\0v", 3);
    msgpack_pack_uint64(&pk, 42);
    msgpack_pack_int32(&pk, 60);
    msgpack_pack_uint64(&pk, 7);
    char framed[256];
    size_t n = wrap(framed, sb.data, sb.size);
    bc_frame_t f;
    size_t used;
    char err[256] = "";
    assert_int_equal(bc_frame_decode(framed, n, MAXP, &f, &used, err, sizeof(err)), BC_OK);
    assert_int_equal(used, n);
    assert_int_equal(f.type, BC_FRAME_ITEM);
    assert_int_equal(f.nkey, 4);
    assert_memory_equal(f.key, "skey", 4);
    assert_int_equal(f.nvalue, 3);
    assert_memory_equal(f.value, "v\0v", 3);
    assert_int_equal(f.flags, 42);
    assert_int_equal(f.ttl, 60);
    msgpack_sbuffer_destroy(&sb);
}

/* The ITEM meta field: absent when 0 (the six-field frame earlier nodes
 * read, byte for byte), a trailing uint otherwise; a reader keeps bits it
 * does not know; a wrong type, an over-wide value or an eighth field is
 * refused. */
static void
test_item_meta_field(void **state)
{
    (void)state;
    bc_frame_buf_t a, b;
    bc_frame_t f;
    size_t used;
    char err[256] = "";
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));

    assert_int_equal(bc_frame_put_item(&a, "k1", 2, "hello", 5, 7, 0, 1), BC_OK);
    assert_int_equal(bc_frame_put_item_meta(&b, "k1", 2, "hello", 5, 7, 0, 1, 0), BC_OK);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(bc_frame_decode(a.data, a.len, MAXP, &f, &used, err, sizeof(err)), BC_OK);
    assert_int_equal(f.meta, 0);

    b.len = 0;
    uint32_t bits = BC_FRAME_ITEM_STALE | BC_FRAME_ITEM_KEY_BINARY;
    assert_int_equal(bc_frame_put_item_meta(&b, "k1", 2, "hello", 5, 7, 0, 1, bits), BC_OK);
    static const char payload[] = "\x97\x01\xc4\x02k1\xc4\x05hello\x07\x00\x01\x05";
    char want[64];
    size_t n = wrap(want, payload, sizeof(payload) - 1);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, want, n);
    assert_int_equal(bc_frame_decode(b.data, b.len, MAXP, &f, &used, err, sizeof(err)), BC_OK);
    assert_true(f.type == BC_FRAME_ITEM && f.nkey == 2 && f.nvalue == 5 && f.flags == 7 &&
                f.ttl == 0 && f.cas == 1 && f.meta == bits);

    /* every bit, and one no node knows yet (kept for the caller to ignore) */
    b.len = 0;
    assert_int_equal(bc_frame_put_item_meta(&b, "k", 1, "", 0, 0, 60, 9,
                                            BC_FRAME_ITEM_STALE | BC_FRAME_ITEM_WON |
                                            BC_FRAME_ITEM_KEY_BINARY | 0x80u), BC_OK);
    assert_int_equal(bc_frame_decode(b.data, b.len, MAXP, &f, &used, err, sizeof(err)), BC_OK);
    assert_int_equal(f.meta, 0x87u);

    /* libmsgpack reads the seven-field frame */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, b.data + 8, b.len - 8, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(u.data.via.array.size, 7);
    assert_int_equal(u.data.via.array.ptr[6].via.u64, 0x87u);
    msgpack_unpacked_destroy(&u);

    /* a str meta, a meta over 32 bits, eight fields */
    expect_malformed("\x97\x01\xc4\x01k\xc4\x01v\x00\x00\x00\xa1x", 13, "wrong msgpack type");
    expect_malformed("\x97\x01\xc4\x01k\xc4\x01v\x00\x00\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00",
                     21, "out of range");
    expect_malformed("\x98\x01\xc4\x01k\xc4\x01v\x00\x00\x00\x01\x01", 13, "expected 6 or 7");
    bc_frame_buf_free(&a);
    bc_frame_buf_free(&b);
}

/* Random garbage never crashes the decoder and is never a valid stream. */
static void
test_random_garbage(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ull;
    char buf[2048], err[256];
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(x % sizeof(buf));
        for (size_t i = 0; i < len; i++) {
            buf[i] = (char)xorshift(&x);
        }
        /* Small lengths so frames can be complete. */
        if (len >= 4) buf[0] = buf[1] = 0;
        assert_int_not_equal(decode_all(buf, len, NULL, err, sizeof(err)), BC_OK);
    }
}

/*
 * The bytes nodes have always written, captured from the codec as it was
 * before msgpack-c was weighed against it (tests/bench/frame_codec.c).
 * During a rolling upgrade old and new nodes replicate and migrate to each
 * other: each frame here must decode to its fields, and the same fields
 * must encode to exactly these bytes.
 */
#define GOLDEN(lit) lit, sizeof(lit) - 1

/* Decodes want (n bytes) as one whole frame into *f, and checks that b
 * holds exactly those bytes; empties b. */
static void
expect_golden(bc_frame_buf_t *b, const char *want, size_t n, bc_frame_t *f)
{
    char err[256] = "";
    size_t used = 0;
    assert_int_equal(bc_frame_decode(want, n, MAXP, f, &used, err, sizeof(err)), BC_OK);
    assert_int_equal(used, n);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
    b->len = 0;
}

static void
test_bytes_of_earlier_nodes(void **state)
{
    (void)state;
    bc_frame_buf_t b;
    bc_frame_t f;
    memset(&b, 0, sizeof(b));

    assert_int_equal(bc_frame_put_hello(&b, 17, 123456789012ull, 1024), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x16\xe2\xe6\x9f\x10\x96\x00\xa5\x62\x63\x6d\x69\x67"
                             "\x01\x11\xcf\x00\x00\x00\x1c\xbe\x99\x1a\x14\xcd\x04\x00"), &f);
    assert_true(f.type == BC_FRAME_HELLO && f.version == 1 && f.bucket == 17 &&
                f.epoch == 123456789012ull && f.nbuckets == 1024 && !f.delta);

    assert_int_equal(bc_frame_put_hello_delta(&b, 7, 42, 64), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x0d\xd1\x1c\x0a\x30\x97\x00\xa5\x62\x63\x6d\x69\x67"
                             "\x01\x07\x2a\x40\x01"), &f);
    assert_true(f.type == BC_FRAME_HELLO && f.bucket == 7 && f.epoch == 42 && f.nbuckets == 64 &&
                f.delta);

    assert_int_equal(bc_frame_put_item(&b, "k1", 2, "hello", 5, 7, 0, 1), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x10\x68\x64\x60\xae\x96\x01\xc4\x02\x6b\x31\xc4\x05"
                             "\x68\x65\x6c\x6c\x6f\x07\x00\x01"), &f);
    assert_true(f.type == BC_FRAME_ITEM && f.nkey == 2 && f.nvalue == 5 && f.flags == 7 &&
                f.ttl == 0 && f.cas == 1);
    assert_memory_equal(f.value, "hello", 5);

    assert_int_equal(bc_frame_put_item(&b, "key-two", 7, "", 0, 0xffffffffu, 3600, 1ull << 40),
                     BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x1e\x6d\x10\xc6\x91\x96\x01\xc4\x07\x6b\x65\x79\x2d"
                             "\x74\x77\x6f\xc4\x00\xce\xff\xff\xff\xff\xcd\x0e\x10\xcf\x00\x00"
                             "\x01\x00\x00\x00\x00\x00"), &f);
    assert_true(f.nkey == 7 && f.nvalue == 0 && f.flags == 0xffffffffu && f.ttl == 3600 &&
                f.cas == 1ull << 40);

    /* bin 16 and bin 32 values, uint 16/32/64 fields: the value bytes are
     * a pattern, the bytes around them spelled out */
    static char v[70000], want[70100];
    for (size_t i = 0; i < 300; i++) v[i] = (char)('a' + i % 26);
    static const char head300[] = "\x00\x00\x01\x45\x99\x3f\xea\x94\x96\x01\xc4\x01\x62\xc5\x01\x2c";
    static const char tail300[] = "\xcd\x01\x2c\xce\x00\x01\x11\x70\xcf\xff\xff\xff\xff\xff\xff\xff"
                                  "\xff";
    memcpy(want, head300, sizeof(head300) - 1);
    memcpy(want + sizeof(head300) - 1, v, 300);
    memcpy(want + sizeof(head300) - 1 + 300, tail300, sizeof(tail300) - 1);
    assert_int_equal(bc_frame_put_item(&b, "b", 1, v, 300, 300, 70000, UINT64_MAX), BC_OK);
    expect_golden(&b, want, sizeof(head300) - 1 + 300 + sizeof(tail300) - 1, &f);
    assert_true(f.nvalue == 300 && f.flags == 300 && f.ttl == 70000 && f.cas == UINT64_MAX);

    for (size_t i = 0; i < sizeof(v); i++) v[i] = (char)(i * 7 + 3);
    static const char head_big[] = "\x00\x01\x11\x7f\xf4\xde\x3a\xe2\x96\x01\xc4\x03\x62\x69\x67\xc6"
                                   "\x00\x01\x11\x70";
    memcpy(want, head_big, sizeof(head_big) - 1);
    memcpy(want + sizeof(head_big) - 1, v, sizeof(v));
    memcpy(want + sizeof(head_big) - 1 + sizeof(v), "\x00\x00\x00", 3);
    assert_int_equal(bc_frame_put_item(&b, "big", 3, v, sizeof(v), 0, 0, 0), BC_OK);
    expect_golden(&b, want, sizeof(head_big) - 1 + sizeof(v) + 3, &f);
    assert_true(f.nvalue == sizeof(v) && f.flags == 0 && f.ttl == 0 && f.cas == 0);

    assert_int_equal(bc_frame_put_end(&b, 3, 1ull << 33), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x0c\xa3\x17\x6d\x58\x93\x02\x03\xcf\x00\x00\x00\x02"
                             "\x00\x00\x00\x00"), &f);
    assert_true(f.type == BC_FRAME_END && f.items == 3 && f.bytes == 1ull << 33);

    assert_int_equal(bc_frame_put_rhello(&b, true, "0123456789abcdef0123456789abcdef01234567",
                                         1ull << 35), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x3e\x08\x68\x49\xd5\x96\x0a\xa6\x62\x63\x72\x65\x70"
                             "\x6c\x01\x01\xd9\x28\x30\x31\x32\x33\x34\x35\x36\x37\x38\x39\x61"
                             "\x62\x63\x64\x65\x66\x30\x31\x32\x33\x34\x35\x36\x37\x38\x39\x61"
                             "\x62\x63\x64\x65\x66\x30\x31\x32\x33\x34\x35\x36\x37\xcf\x00\x00"
                             "\x00\x08\x00\x00\x00\x00"), &f);
    assert_true(f.type == BC_FRAME_RHELLO && f.full && f.nreplid == 40 && f.offset == 1ull << 35);

    assert_int_equal(bc_frame_put_rhello(&b, false, "short", 7), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x12\x15\x2a\x94\x92\x96\x0a\xa6\x62\x63\x72\x65\x70"
                             "\x6c\x01\x00\xa5\x73\x68\x6f\x72\x74\x07"), &f);
    assert_true(f.type == BC_FRAME_RHELLO && !f.full && f.nreplid == 5 && f.offset == 7);

    assert_int_equal(bc_frame_put_del(&b, "gone", 4), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x08\x37\xc0\xd8\xd0\x92\x0b\xc4\x04\x67\x6f\x6e\x65"),
                  &f);
    assert_true(f.type == BC_FRAME_DEL && f.nkey == 4);

    assert_int_equal(bc_frame_put_touch(&b, "t", 1, 3600), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x08\xd1\xf2\x47\x2b\x93\x0c\xc4\x01\x74\xcd\x0e\x10"),
                  &f);
    assert_true(f.type == BC_FRAME_TOUCH && f.nkey == 1 && f.ttl == 3600);

    assert_int_equal(bc_frame_put_flush(&b, 1700000000u, 77), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x08\x2d\x5d\x06\xfc\x93\x0d\xce\x65\x53\xf1\x00\x4d"),
                  &f);
    assert_true(f.type == BC_FRAME_FLUSH && f.when == 1700000000u && f.mark == 77);

    assert_int_equal(bc_frame_put_drop(&b, 1023), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x05\x30\xc7\x68\x85\x92\x0e\xcd\x03\xff"), &f);
    assert_true(f.type == BC_FRAME_DROP && f.bucket == 1023);

    assert_int_equal(bc_frame_put_ping(&b, 99), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x03\x41\x61\x91\xd5\x92\x0f\x63"), &f);
    assert_true(f.type == BC_FRAME_PING && f.offset == 99);

    assert_int_equal(bc_frame_put_ack(&b, UINT64_MAX), BC_OK);
    expect_golden(&b, GOLDEN("\x00\x00\x00\x0b\x7a\x50\xbb\xf2\x92\x10\xcf\xff\xff\xff\xff\xff"
                             "\xff\xff\xff"), &f);
    assert_true(f.type == BC_FRAME_ACK && f.offset == UINT64_MAX);
    bc_frame_buf_free(&b);
}
#undef GOLDEN

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_values),
        cmocka_unit_test(test_crc32c_hw_matches_soft),
        cmocka_unit_test(test_replication_frames),
        cmocka_unit_test(test_delta_stream),
        cmocka_unit_test(test_item_in_parts),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_truncated_at_every_byte),
        cmocka_unit_test(test_every_bit_flip_is_caught),
        cmocka_unit_test(test_malformed_payloads),
        cmocka_unit_test(test_oversize_length_refused_before_reading),
        cmocka_unit_test(test_stream_order_and_counts),
        cmocka_unit_test(test_libmsgpack_reads_our_frames),
        cmocka_unit_test(test_we_read_libmsgpack_frames),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_bytes_of_earlier_nodes),
        cmocka_unit_test(test_item_meta_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
