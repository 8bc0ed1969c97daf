/*
 * fuzz_frame.c -- libFuzzer target for the migration peer frames
 * (common/bc_frame.c).
 *
 * Inputs are read as fuzz_frames.h describes (a raw export stream, or
 * payloads wrapped in valid headers); the stream is decoded frame by frame
 * through the stream checker, as the importing node does.
 * Invariants: a decoded frame lies inside the input, consumed advances,
 * and a stream is complete only after END.  Sanitizers catch out-of-bounds
 * reads; __builtin_trap() marks a broken invariant.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_frame.h"
#include "fuzz_frames.h"
#include "fuzz_target.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static void
run_stream(const char *buf, size_t len)
{
    bc_frame_stream_t s;
    memset(&s, 0, sizeof(s));
    size_t pos = 0;
    char err[256];
    while (pos < len) {
        bc_frame_t f;
        size_t used = 0;
        bc_status_t st = bc_frame_decode(buf + pos, len - pos, 1u << 20, &f, &used, err, sizeof(err));
        if (st == BC_EAGAIN) {
            CHECK(used == 0);
            break;
        }
        if (st != BC_OK) {
            CHECK(st == BC_EPROTO || st == BC_ETOOLARGE);
            CHECK(err[0] != '\0');
            return;
        }
        CHECK(used >= BC_FRAME_HEADER_LEN + 1 && used <= len - pos);
        if (f.type == BC_FRAME_ITEM || f.type == BC_FRAME_HEAD) {
            CHECK(f.key >= buf + pos && f.key + f.nkey <= buf + pos + used);
        }
        if (f.type == BC_FRAME_ITEM || f.type == BC_FRAME_PART) {
            CHECK(f.value >= buf + pos && f.value + f.nvalue <= buf + pos + used);
        }
        if (f.type == BC_FRAME_HEAD) CHECK(f.size >= 1 && f.size <= UINT32_MAX);
        if (f.type == BC_FRAME_PART) CHECK(f.nvalue >= 1);
        if (bc_frame_stream_next(&s, &f, err, sizeof(err)) != BC_OK) return;
        pos += used;
    }
    bc_status_t st = bc_frame_stream_finish(&s, err, sizeof(err));
    CHECK(st == BC_OK ? s.state == 2 : s.state != 2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_frames_run(data, size, run_stream);
    return 0;
}
