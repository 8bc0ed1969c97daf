/*
 * fuzz_frame.c -- libFuzzer target for the migration peer frames
 * (common/bc_frame.c).
 *
 * The first input byte picks how the rest is read:
 *   even: as a raw export stream (headers, CRCs and all), decoded frame by
 *         frame through the stream checker, as the importing node does;
 *   odd:  as payloads only: each chunk (a 1-byte length, then that many
 *         bytes) is wrapped in a valid header with a correct CRC, so the
 *         fuzzer reaches the msgpack reader instead of stopping at the CRC.
 * Invariants: a decoded frame lies inside the input, consumed advances,
 * and a stream is complete only after END.  Sanitizers catch out-of-bounds
 * reads; __builtin_trap() marks a broken invariant.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_frame.h"

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
        if (f.type == BC_FRAME_ITEM) {
            CHECK(f.key >= buf + pos && f.key + f.nkey <= buf + pos + used);
            CHECK(f.value >= buf + pos && f.value + f.nvalue <= buf + pos + used);
        }
        if (bc_frame_stream_next(&s, &f, err, sizeof(err)) != BC_OK) return;
        pos += used;
    }
    bc_status_t st = bc_frame_stream_finish(&s, err, sizeof(err));
    CHECK(st == BC_OK ? s.state == 2 : s.state != 2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        run_stream(in, n);
        return 0;
    }
    /* each chunk costs at least one input byte and adds an 8-byte header */
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
    run_stream(out, olen);
    free(out);
    return 0;
}
