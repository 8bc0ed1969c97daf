/*
 * test_hash.c -- the key -> bucket function is a cross-language contract
 * (common/bc_hash.h, docs/hashing.md): these vectors must never change.
 *
 * The vectors were checked against an independent MurmurHash3_x86_32
 * implementation; the seeded ones are the published reference values.
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

typedef struct vector {
    const char *key;
    size_t len;
    uint32_t hash;
    uint32_t bucket1024;
} vector_t;

#define V(s, h, b) {s, sizeof(s) - 1, h, b}

static const vector_t vectors[] = {
    V("", 0x00000000u, 0),
    V("hello", 0x248bfa47u, 583),
    V("foo", 0xf6a5c420u, 32),
    V("The quick brown fox jumps over the lazy dog", 0x2e4ff723u, 803),
    /* every tail length (len % 4 = 1, 2, 3, 0) */
    V("a", 0x3c2569b2u, 434),
    V("ab", 0x9bbfd75fu, 863),
    V("abc", 0xb3dd93fau, 1018),
    V("abcd", 0x43ed676au, 874),
    V("user:1000", 0x396d9e9cu, 668),
    /* bytes >= 0x80 and NUL are hashed as raw unsigned bytes */
    V("\xff\x00\xfe", 0x56c53069u, 105),
    V("caf\xc3\xa9", 0x241c0f08u, 776),
};

static void
test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector_t *v = &vectors[i];
        assert_int_equal(bc_hash_key(v->key, v->len), v->hash);
        assert_int_equal(bc_hash_murmur3_32(v->key, v->len, 0), v->hash);
        assert_int_equal(bc_hash_bucket(bc_hash_key(v->key, v->len), 1024), v->bucket1024);
        assert_int_equal(bc_hash_bucket(v->hash, BC_DEFAULT_NBUCKETS), v->bucket1024);
    }
}

static void
test_seeded_reference_values(void **state)
{
    (void)state;
    /* Published MurmurHash3_x86_32 values: the seed is really mixed in. */
    assert_int_equal(bc_hash_murmur3_32("", 0, 1), 0x514e28b7u);
    assert_int_equal(bc_hash_murmur3_32("", 0, 0xffffffffu), 0x81f16f39u);
    assert_int_equal(bc_hash_murmur3_32("hello", 5, 1), 0xbb4abcadu);
}

static void
test_all_byte_values(void **state)
{
    (void)state;
    unsigned char buf[256];
    for (int i = 0; i < 256; i++) buf[i] = (unsigned char)i;
    assert_int_equal(bc_hash_key(buf, sizeof(buf)), 0xe40a0e56u);
}

static void
test_unaligned_input(void **state)
{
    (void)state;
    /* The same bytes at every alignment hash the same. */
    const char *key = "The quick brown fox jumps over the lazy dog";
    size_t len = strlen(key);
    char *buf = malloc(len + 8);
    assert_non_null(buf);
    for (size_t off = 0; off < 8; off++) {
        memcpy(buf + off, key, len);
        assert_int_equal(bc_hash_key(buf + off, len), 0x2e4ff723u);
    }
    free(buf);
}

static void
test_bucket_is_hash_mod_n(void **state)
{
    (void)state;
    /* Non-powers of two work too: it is a plain modulo, not a mask. */
    assert_int_equal(bc_hash_bucket(0x248bfa47u, 6), 0x248bfa47u % 6);
    assert_int_equal(bc_hash_bucket(0x248bfa47u, 6), 1);
    assert_int_equal(bc_hash_bucket(0x2e4ff723u, 6), 5);
    assert_int_equal(bc_hash_bucket(0x2e4ff723u, 1000), 0x2e4ff723u % 1000);
    assert_int_equal(bc_hash_bucket(0xffffffffu, BC_MAX_NBUCKETS), 65535);
    assert_int_equal(bc_hash_bucket(0xf6a5c420u, 1), 0);
    /* Unsigned: a hash with the top bit set must not go negative. */
    assert_true(0xf6a5c420u > 0x7fffffffu);
    assert_int_equal(bc_hash_bucket(0xf6a5c420u, 1024), 32);
}

static void
test_distribution(void **state)
{
    (void)state;
    /* 102400 sequential keys over 1024 buckets: every bucket is used and
     * none is far from the mean of 100 (a weak hash fails this). */
    enum { N = 1024, KEYS = 102400 };
    static uint32_t counts[N];
    char key[32];
    for (int i = 0; i < KEYS; i++) {
        int n = snprintf(key, sizeof(key), "key:%d", i);
        counts[bc_hash_bucket(bc_hash_key(key, (size_t)n), N)]++;
    }
    for (int b = 0; b < N; b++) {
        assert_in_range(counts[b], 50, 150);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_seeded_reference_values),
        cmocka_unit_test(test_all_byte_values),
        cmocka_unit_test(test_unaligned_input),
        cmocka_unit_test(test_bucket_is_hash_mod_n),
        cmocka_unit_test(test_distribution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
