/*
 * test_backlog.c -- the replication backlog's byte ring (node/repl/backlog.h):
 * offsets across the wrap, resuming from any held offset in small pieces,
 * a record larger than the ring, a reset, and the record boundaries a
 * sender cuts at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bc_frame.h"
#include "repl/backlog.h"

/* Stream byte at offset o: a pattern that differs from its neighbours, so
 * a copy from the wrong place shows. */
static char
stream_byte(uint64_t o)
{
    return (char)(o * 31u + (o >> 8) + 7u);
}

static void
append_stream(bc_backlog_t *b, uint64_t from, size_t len)
{
    char *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) p[i] = stream_byte(from + i);
    bc_backlog_append(b, p, len);
    free(p);
}

static void
assert_stream(const char *p, uint64_t from, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != stream_byte(from + i)) {
            fail_msg("byte at offset %llu differs", (unsigned long long)(from + i));
        }
    }
}

static void
test_init(void **state)
{
    (void)state;
    bc_backlog_t b;
    assert_int_equal(bc_backlog_init(&b, 0), BC_EINVAL);
    bc_backlog_free(&b);
    assert_int_equal(bc_backlog_init(&b, 16), BC_OK);
    assert_int_equal(b.start, 0);
    assert_int_equal(b.end, 0);
    assert_true(bc_backlog_holds(&b, 0));
    assert_false(bc_backlog_holds(&b, 1));
    bc_backlog_free(&b);
    bc_backlog_free(&b);   /* twice: a freed backlog is a zeroed one */
}

/* Appends past the capacity drop the oldest bytes; what is held reads back
 * exactly, across the ring's end. */
static void
test_wrap(void **state)
{
    (void)state;
    bc_backlog_t b;
    char out[64];
    assert_int_equal(bc_backlog_init(&b, 64), BC_OK);
    for (int i = 0; i < 5; i++) append_stream(&b, (uint64_t)i * 20, 20);
    assert_int_equal(b.end, 100);
    assert_int_equal(b.start, 36);
    assert_false(bc_backlog_holds(&b, 35));
    assert_true(bc_backlog_holds(&b, 36));
    assert_true(bc_backlog_holds(&b, 100));
    assert_false(bc_backlog_holds(&b, 101));

    /* the whole held range, which wraps at 64 */
    assert_int_equal(bc_backlog_copy(&b, 36, out, sizeof(out)), 64);
    assert_stream(out, 36, 64);
    /* at most max, and never past end */
    assert_int_equal(bc_backlog_copy(&b, 90, out, 5), 5);
    assert_stream(out, 90, 5);
    assert_int_equal(bc_backlog_copy(&b, 90, out, sizeof(out)), 10);
    assert_stream(out, 90, 10);
    assert_int_equal(bc_backlog_copy(&b, 100, out, sizeof(out)), 0);
    bc_backlog_free(&b);
}

/* A reader resuming at every held offset, in pieces of every size, gets
 * the stream from there to the end, byte for byte, while appends of odd
 * sizes wrap the ring many times. */
static void
test_resume_in_pieces(void **state)
{
    (void)state;
    bc_backlog_t b;
    char out[128];
    assert_int_equal(bc_backlog_init(&b, 97), BC_OK);
    uint64_t end = 0;
    for (size_t len = 1; len < 60; len += 7) {
        append_stream(&b, end, len);
        end += len;
        assert_int_equal(b.end, end);
        assert_int_equal(b.start, end > 97 ? end - 97 : 0);
        for (uint64_t pos = b.start; pos <= b.end; pos++) {
            for (size_t piece = 1; piece <= 13; piece += 4) {
                uint64_t at = pos;
                while (at < b.end) {
                    size_t n = bc_backlog_copy(&b, at, out, piece);
                    assert_true(n > 0 && n <= piece);
                    assert_stream(out, at, n);
                    at += n;
                }
                assert_int_equal(at, b.end);
            }
        }
    }
    bc_backlog_free(&b);
}

/* A record as large as the ring or larger: nobody can be sent it from
 * here, so nothing is held any more; appends go on after it. */
static void
test_overflow(void **state)
{
    (void)state;
    bc_backlog_t b;
    char out[32];
    assert_int_equal(bc_backlog_init(&b, 32), BC_OK);
    append_stream(&b, 0, 10);
    append_stream(&b, 10, 32);
    assert_int_equal(b.end, 42);
    assert_int_equal(b.start, 42);
    assert_false(bc_backlog_holds(&b, 10));
    assert_true(bc_backlog_holds(&b, 42));
    append_stream(&b, 42, 100);
    assert_int_equal(b.start, 142);
    assert_int_equal(b.end, 142);
    /* one byte less than the ring fits */
    append_stream(&b, 142, 31);
    assert_int_equal(b.start, 142);
    assert_int_equal(b.end, 173);
    assert_int_equal(bc_backlog_copy(&b, 142, out, sizeof(out)), 31);
    assert_stream(out, 142, 31);
    bc_backlog_free(&b);
}

/* reset empties the backlog at an offset (a new stream, or offsets that
 * no longer describe the data); the stream continues from there. */
static void
test_reset(void **state)
{
    (void)state;
    bc_backlog_t b;
    char out[16];
    assert_int_equal(bc_backlog_init(&b, 16), BC_OK);
    append_stream(&b, 0, 12);
    bc_backlog_reset(&b, 1003);
    assert_int_equal(b.start, 1003);
    assert_int_equal(b.end, 1003);
    assert_false(bc_backlog_holds(&b, 12));
    append_stream(&b, 1003, 10);
    assert_int_equal(bc_backlog_copy(&b, 1003, out, sizeof(out)), 10);
    assert_stream(out, 1003, 10);
    bc_backlog_free(&b);
}

/* Frames of several sizes (DEL records with keys of 1..40 bytes) appended
 * until the ring has wrapped: from every frame start still held,
 * bc_backlog_boundary cuts only at frame ends, and what it cuts decodes as
 * whole frames -- also when a length header straddles the ring's end. */
static void
test_boundary(void **state)
{
    (void)state;
    bc_backlog_t b;
    bc_frame_buf_t fb = {0};
    enum { NFRAMES = 200 };
    uint64_t starts[NFRAMES + 1];  /* starts[i]: offset of frame i; starts[NFRAMES] = end */
    char key[40], out[512];
    memset(key, 'k', sizeof(key));
    assert_int_equal(bc_backlog_init(&b, 211), BC_OK);
    for (size_t i = 0; i < NFRAMES; i++) {
        fb.len = 0;
        assert_int_equal(bc_frame_put_del(&fb, key, 1 + i * 7 % 40), BC_OK);
        starts[i] = b.end;
        bc_backlog_append(&b, fb.data, fb.len);
    }
    starts[NFRAMES] = b.end;
    assert_true(b.start > 0);
    size_t checked = 0;
    for (size_t i = 0; i < NFRAMES; i++) {
        uint64_t pos = starts[i];
        if (!bc_backlog_holds(&b, pos)) continue;
        for (size_t max = 1; max <= sizeof(out); max += 37) {
            size_t n = bc_backlog_boundary(&b, pos, max);
            assert_true(n <= max);
            /* a frame end, and the largest one that fits */
            size_t j = i;
            while (starts[j] < pos + n) j++;
            assert_int_equal(starts[j], pos + n);
            if (j < NFRAMES) assert_true(starts[j + 1] - pos > max);
            /* what it cuts decodes as whole frames */
            assert_int_equal(bc_backlog_copy(&b, pos, out, n), n);
            size_t off = 0;
            while (off < n) {
                bc_frame_t f;
                size_t used = 0;
                assert_int_equal(bc_frame_decode(out + off, n - off, 1024, &f, &used, NULL, 0),
                                 BC_OK);
                assert_int_equal(f.type, BC_FRAME_DEL);
                off += used;
            }
            assert_int_equal(off, n);
            checked++;
        }
    }
    assert_true(checked > 50);
    /* a first frame larger than max, or nothing after pos: 0 */
    assert_int_equal(bc_backlog_boundary(&b, starts[NFRAMES - 1], 1), 0);
    assert_int_equal(bc_backlog_boundary(&b, b.end, 100), 0);
    bc_frame_buf_free(&fb);
    bc_backlog_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_resume_in_pieces),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_boundary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
