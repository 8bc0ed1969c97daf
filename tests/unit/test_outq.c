/*
 * test_outq.c -- the output queue (node/net/outq.c): ranges of text, items
 * and owned buffers sent in order, and holes -- replies that come later --
 * that hold back what follows them until filled.
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
#include "engine/cache.h"
#include "net/outq.h"

static uint32_t
fixed_now(void)
{
    return 1000;
}

static bc_cache_t *
cache_new(void)
{
    bc_cache_t *c = NULL;
    bc_cache_config_t cc = {
        .mem_limit = 8u << 20, .max_item_size = 1u << 20, .nbuckets = 64,
        .nshards = 4, .policy = NULL, .now = fixed_now,
    };
    assert_int_equal(bc_cache_create(&cc, &c), BC_OK);
    return c;
}

/* An item holding value (stored, then looked up: one reference ours). */
static bc_item_t *
item_new(bc_cache_t *cache, const char *key, const char *value)
{
    bc_status_t st;
    size_t n = strlen(value);
    uint32_t h = bc_hash_key(key, strlen(key));
    bc_item_t *it = bc_item_alloc(cache, key, strlen(key), h, 0, 0, (uint32_t)n, &st);
    assert_non_null(it);
    memcpy(bc_item_value(it), value, n);
    assert_int_equal(bc_cache_store(cache, it, BC_STORE_SET, 0, NULL), BC_OK);
    it = bc_cache_get(cache, key, strlen(key), h);
    assert_non_null(it);
    return it;
}

/* Sends everything sendable now, as a socket would, into out (NUL-terminated);
 * returns how many bytes. */
static size_t
drain(bc_outq_t *q, bc_cache_t *cache, char *out, size_t cap)
{
    size_t total = 0;
    for (;;) {
        struct iovec iov[8];
        int n = bc_outq_iov(q, iov, 8);
        if (n == 0) break;
        size_t got = 0;
        for (int i = 0; i < n; i++) {
            assert_true(total + got + iov[i].iov_len < cap);
            memcpy(out + total + got, iov[i].iov_base, iov[i].iov_len);
            got += iov[i].iov_len;
        }
        bc_outq_consume(q, cache, got);
        total += got;
    }
    out[total] = '\0';
    return total;
}

static char *
dup_str(const char *s)
{
    char *p = malloc(strlen(s));
    assert_non_null(p);
    memcpy(p, s, strlen(s));
    return p;
}

static void
test_hole_holds_back_what_follows(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new();
    bc_outq_t q, part;
    bc_outq_hole_t h1, h2;
    char out[4096];

    bc_outq_init(&q);
    assert_true(bc_outq_add(&q, "A\r\n", 3));
    assert_true(bc_outq_hole(&q, &h1));
    assert_true(bc_outq_add(&q, "C\r\n", 3));
    assert_true(bc_outq_hole(&q, &h2));
    assert_true(bc_outq_add(&q, "E\r\n", 3));
    assert_int_equal(bc_outq_holes(&q), 2);
    assert_int_equal(bc_outq_pending(&q), 9);

    assert_int_equal(drain(&q, cache, out, sizeof(out)), 3);
    assert_string_equal(out, "A\r\n");
    assert_false(bc_outq_ready(&q));
    assert_false(bc_outq_empty(&q));

    /* the second hole filled first: still nothing to send */
    bc_outq_init(&part);
    assert_true(bc_outq_add(&part, "D1 ", 3));
    assert_true(bc_outq_add_owned(&part, dup_str("D2\r\n"), 4));
    assert_true(bc_outq_fill(&q, cache, h2, &part));
    assert_int_equal(bc_outq_holes(&q), 1);
    assert_int_equal(drain(&q, cache, out, sizeof(out)), 0);

    /* the first one: everything goes, in request order */
    bc_item_t *it = item_new(cache, "k", "VALUE-FROM-ITEM");
    bc_outq_init(&part);
    assert_true(bc_outq_add(&part, "B ", 2));
    assert_true(bc_outq_add_item(&part, cache, it, bc_item_value(it), 15));
    assert_true(bc_outq_add(&part, "\r\n", 2));
    assert_true(bc_outq_fill(&q, cache, h1, &part));
    assert_true(bc_outq_empty(&part));
    assert_true(bc_outq_ready(&q));
    drain(&q, cache, out, sizeof(out));
    assert_string_equal(out, "B VALUE-FROM-ITEM\r\nC\r\nD1 D2\r\nE\r\n");
    assert_true(bc_outq_empty(&q));
    assert_int_equal(bc_outq_pending(&q), 0);
    bc_outq_free(&q, cache);
    bc_cache_destroy(cache);     /* the item's reference went back: no leak */
}

static void
test_fill_owned(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new();
    bc_outq_t q;
    bc_outq_hole_t h1, h2, h3;
    char out[256];

    bc_outq_init(&q);
    assert_true(bc_outq_hole(&q, &h1));
    assert_true(bc_outq_add(&q, "b ", 2));
    assert_true(bc_outq_hole(&q, &h2));
    assert_true(bc_outq_hole(&q, &h3));
    assert_true(bc_outq_add(&q, "e", 1));
    assert_true(bc_outq_fill_owned(&q, h2, dup_str("c "), 2));
    assert_true(bc_outq_fill_owned(&q, h3, NULL, 0));
    assert_int_equal(drain(&q, cache, out, sizeof(out)), 0);
    assert_true(bc_outq_fill_owned(&q, h1, dup_str("a "), 2));
    assert_false(bc_outq_fill_owned(&q, h1, dup_str("again"), 5));
    assert_int_equal(bc_outq_holes(&q), 0);
    drain(&q, cache, out, sizeof(out));
    assert_string_equal(out, "a b c e");
    bc_outq_free(&q, cache);
    bc_cache_destroy(cache);
}

static void
test_empty_fill_and_unknown_hole(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new();
    bc_outq_t q, part;
    bc_outq_hole_t h;
    char out[256];

    bc_outq_init(&q);
    assert_true(bc_outq_hole(&q, &h));
    assert_true(bc_outq_add(&q, "after\r\n", 7));
    assert_int_equal(drain(&q, cache, out, sizeof(out)), 0);
    /* a noreply-like answer: nothing; the hole just goes away */
    assert_true(bc_outq_fill(&q, cache, h, NULL));
    drain(&q, cache, out, sizeof(out));
    assert_string_equal(out, "after\r\n");
    /* filling a hole twice, or one never made, is refused; src is emptied */
    bc_outq_init(&part);
    assert_true(bc_outq_add_owned(&part, dup_str("x"), 1));
    assert_false(bc_outq_fill(&q, cache, h, &part));
    assert_true(bc_outq_empty(&part));
    bc_outq_free(&q, cache);
    bc_cache_destroy(cache);
}

/* A queue that never empties (always a hole in it) keeps its scratch
 * space bounded: what was sent is reclaimed. */
static void
test_busy_queue_reclaims_scratch(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new();
    bc_outq_t q;
    bc_outq_hole_t prev, cur;
    char out[8192];
    char line[200];

    memset(line, 'x', sizeof(line) - 2);
    memcpy(line + sizeof(line) - 2, "\r\n", 2);
    bc_outq_init(&q);
    assert_true(bc_outq_hole(&q, &prev));
    for (int round = 0; round < 20000; round++) {
        assert_true(bc_outq_add(&q, line, sizeof(line)));
        assert_true(bc_outq_hole(&q, &cur));
        bc_outq_t part;
        bc_outq_init(&part);
        assert_true(bc_outq_add(&part, "r\r\n", 3));
        assert_true(bc_outq_fill(&q, cache, prev, &part));
        prev = cur;
        size_t n = drain(&q, cache, out, sizeof(out));
        assert_int_equal(n, 3 + sizeof(line));
        assert_false(bc_outq_empty(&q));
    }
    /* 20000 rounds of 203 bytes went through; the scratch buffer stayed small */
    assert_true(q.cap <= 64 * 1024);
    bc_outq_free(&q, cache);
    bc_cache_destroy(cache);
}

static void
test_move_takes_owned_buffers(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new();
    bc_outq_t a, b;
    char out[256];

    bc_outq_init(&a);
    bc_outq_init(&b);
    assert_true(bc_outq_add(&b, "one ", 4));
    assert_true(bc_outq_add_owned(&b, dup_str("two "), 4));
    assert_true(bc_outq_add_owned(&b, NULL, 0));
    assert_true(bc_outq_add(&b, "three", 5));
    assert_true(bc_outq_move(&a, &b, cache));
    assert_true(bc_outq_empty(&b));
    drain(&a, cache, out, sizeof(out));
    assert_string_equal(out, "one two three");
    /* a partly sent owned buffer can be freed with its queue */
    assert_true(bc_outq_add_owned(&a, dup_str("abcdef"), 6));
    bc_outq_consume(&a, cache, 2);
    bc_outq_free(&a, cache);
    bc_cache_destroy(cache);
}

static void
test_shared_slices_and_moving_a_head(void **state)
{
    (void)state;
    bc_cache_t *cache = cache_new();
    bc_outq_t a, b;
    char out[256];
    struct iovec iov[8];

    bc_outq_init(&a);
    bc_outq_init(&b);
    /* Slices of one buffer in any order; one right after the previous
     * one extends it (one iovec); the buffer lives until the last is
     * sent (ASan tells). */
    bc_outq_shared_t *sh = bc_outq_shared_new(dup_str("AAbbCCdd"));
    assert_non_null(sh);
    assert_true(bc_outq_add_shared(&a, sh, sh->buf + 4, 2));       /* CC */
    assert_true(bc_outq_add(&a, "-", 1));
    assert_true(bc_outq_add_shared(&a, sh, sh->buf, 2));           /* AA */
    assert_true(bc_outq_add_shared(&a, sh, sh->buf + 2, 2));       /* bb: extends */
    assert_true(bc_outq_add_shared(&a, sh, sh->buf, 0));           /* nothing */
    assert_int_equal(bc_outq_iov(&a, iov, 8), 3);
    assert_int_equal(bc_outq_pending(&a), 7);
    bc_outq_shared_put(sh);                                          /* ours */

    /* The head of a queue moves: whole ranges travel, a cut one is
     * copied up to the cut; items keep their reference. */
    bc_item_t *it = item_new(cache, "k", "ITEM");
    assert_true(bc_outq_add(&b, "hdr1 ", 5));
    assert_true(bc_outq_add_item(&b, cache, it, bc_item_value(it), 4));
    assert_true(bc_outq_add(&b, " hdr2 tail", 10));
    assert_true(bc_outq_move_head(&a, &b, 5 + 4 + 6, cache));
    assert_int_equal(bc_outq_pending(&b), 4);
    assert_true(bc_outq_move_head(&a, &b, 100, cache));             /* at most what it has */
    assert_true(bc_outq_empty(&b));
    drain(&a, cache, out, sizeof(out));
    assert_string_equal(out, "CC-AAbbhdr1 ITEM hdr2 tail");

    /* Freed unsent: the last reference frees the buffer. */
    sh = bc_outq_shared_new(dup_str("xyz"));
    assert_true(bc_outq_add_shared(&a, sh, sh->buf + 1, 2));
    assert_true(bc_outq_add_shared(&b, sh, sh->buf, 1));
    bc_outq_shared_put(sh);
    assert_true(bc_outq_move(&a, &b, cache));
    bc_outq_consume(&a, cache, 1);
    bc_outq_free(&a, cache);
    bc_cache_destroy(cache);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hole_holds_back_what_follows),
        cmocka_unit_test(test_fill_owned),
        cmocka_unit_test(test_empty_fill_and_unknown_hole),
        cmocka_unit_test(test_busy_queue_reclaims_scratch),
        cmocka_unit_test(test_move_takes_owned_buffers),
        cmocka_unit_test(test_shared_slices_and_moving_a_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
