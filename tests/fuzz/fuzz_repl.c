/*
 * fuzz_repl.c -- libFuzzer target for what a backup does with its
 * primary's replication stream (node/repl/backup.c, bc__repl_apply_stream): decode
 * each frame, check it, apply it to the cache.
 *
 * Inputs are read as fuzz_frames.h describes (raw, or payloads wrapped in
 * valid headers so the fuzzer reaches the msgpack reader and the checks).
 * One cache lives across inputs (a backup applies stream after stream);
 * invariants: the call returns, and the cache never holds more than its
 * memory limit plus one item.  Sanitizers catch the rest.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_frame.h"
#include "fuzz_frames.h"
#include "engine/cache.h"
#include "repl/repl.h"
#include "fuzz_target.h"

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
    fuzz_frames_run(data, size, apply);
    return 0;
}
