/*
 * fuzz_frames.h -- the input convention the frame fuzz targets share
 * (fuzz_frame.c, fuzz_repl.c).  Header-only.
 *
 * The first input byte picks how the rest is read:
 *   even: as a raw byte stream (headers, CRCs and all);
 *   odd:  as payloads only: each chunk (a 1-byte length, then that many
 *         bytes) is wrapped in a valid frame header with a correct CRC, so
 *         the fuzzer reaches the msgpack reader instead of stopping at the
 *         CRC check.
 */
#ifndef FUZZ_FRAMES_H
#define FUZZ_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_frame.h"

/* Calls run(buf, len) with the stream the input describes (see above). */
static inline void
fuzz_frames_run(const uint8_t *data, size_t size, void (*run)(const char *buf, size_t len))
{
    if (size == 0) return;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        run(in, n);
        return;
    }
    /* each chunk costs at least one input byte and adds an 8-byte header */
    char *out = malloc(n * 9 + 16);
    if (out == NULL) return;
    size_t olen = 0, pos = 0;
    while (pos < n) {
        size_t chunk = (unsigned char)in[pos++];
        if (chunk > n - pos) chunk = n - pos;
        uint32_t crc = bc_frame_crc32c(0, in + pos, chunk);
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
    run(out, olen);
    free(out);
}

#endif
