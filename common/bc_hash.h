/*
 * bc_hash.h -- the key -> bucket function shared by node, console and client.
 *
 * SPECIFICATION (every implementation, in any language, must match):
 *
 *   h      = MurmurHash3_x86_32(key bytes, length, seed = 0)
 *   bucket = h mod N            (N = the cluster's bucket count, default 1024)
 *
 * MurmurHash3_x86_32 is Austin Appleby's public-domain function, available
 * in every language (Python "mmh3.hash(key, 0, signed=False)", Java Guava
 * "murmur3_32_fixed(0)", Go "github.com/spaolacci/murmur3.Sum32").  Keys are
 * hashed as raw bytes, no normalisation.  Test vectors are in docs/hashing.md
 * and tests/unit/test_hash.c.
 *
 * The same 32-bit value is stored in each item and reused by the node's
 * per-bucket hash tables, so a key is hashed once per request.
 */
#ifndef BC_HASH_H
#define BC_HASH_H

#include <stddef.h>
#include <stdint.h>

#define BC_DEFAULT_NBUCKETS 1024u
#define BC_MAX_NBUCKETS     65536u

uint32_t bc_hash_murmur3_32(const void *key, size_t len, uint32_t seed);

/* The key hash of the specification above (seed 0). */
static inline uint32_t
bc_hash_key(const void *key, size_t len)
{
    return bc_hash_murmur3_32(key, len, 0);
}

static inline uint32_t
bc_hash_bucket(uint32_t hash, uint32_t nbuckets)
{
    return hash % nbuckets;
}

#endif
