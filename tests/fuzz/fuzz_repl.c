/*
 * fuzz_repl.c -- libFuzzer target for what a backup does with its
 * primary's replication stream (node/repl.c, bc__repl_apply_stream): decode
 * each frame, check it, apply it to the cache.
 *
 * The first input byte picks how the rest is read, as in fuzz_frame.c:
 *   even: as a raw stream (headers, CRCs and all);
 *   odd:  as payloads only, each chunk (a 1-byte length, then that many
 *         bytes) wrapped in a valid header with a correct CRC, so the
 *         fuzzer reaches the msgpack reader and the apply checks.
 * One cache lives across inputs (a backup applies stream after stream);
 * invariants: the call returns, and the cache never holds more than its
 * memory limit plus one item.  Sanitizers catch the rest.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_frame.h"
#include "cache.h"
#include "repl.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)
#define FUZZ_MEM (4u << 20)
#define FUZZ_MAX_FRAME (1u << 16)

static bc_cache_t *g_cache;

static void
apply(const char *buf, size_t len)
{
    if (g_cache == NULL) {
        bc_cache_config_t cfg = {.mem_limit = FUZZ_MEM, .max_item_size = 32768, .nbuckets = 64,
                                 .nshards = 4, .policy = "lru", .now = NULL};
        CHECK(bc_cache_create(&cfg, &g_cache) == BC_OK);
    }
    int64_t n = bc__repl_apply_stream(g_cache, buf, len, FUZZ_MAX_FRAME);
    CHECK(n >= -1);
    bc_cache_stats_t cs;
    bc_cache_get_stats(g_cache, &cs);
    CHECK(cs.mem_used <= FUZZ_MEM + 2 * 32768);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        apply(in, n);
        return 0;
    }
    char *out = malloc(n * 9 + 16);
    if (out == NULL) return 0;
    size_t olen = 0, pos = 0;
    while (pos < n) {
        size_t chunk = (unsigned char)in[pos++];
        if (chunk > n - pos) chunk = n - pos;
        uint32_t crc = bc_crc32c(0, in + pos, chunk);
        unsigned char *h = (unsigned char *)out + olen;
        h[0] = 0;
        h[1] = 0;
        h[2] = (unsigned char)(chunk >> 8);
        h[3] = (unsigned char)chunk;
        h[4] = (unsigned char)(crc >> 24);
        h[5] = (unsigned char)(crc >> 16);
        h[6] = (unsigned char)(crc >> 8);
        h[7] = (unsigned char)crc;
        memcpy(out + olen + 8, in + pos, chunk);
        olen += 8 + chunk;
        pos += chunk;
    }
    apply(out, olen);
    free(out);
    return 0;
}
