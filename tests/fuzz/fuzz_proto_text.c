/*
 * fuzz_proto_text.c -- libFuzzer target: arbitrary client bytes through the
 * node's command executor (node/proto/proto_text.c) on a real in-process cache.
 *
 * It plays the part of server.c: the input arrives in chunks whose sizes
 * come from the input itself, unconsumed bytes are kept and presented again,
 * long data blocks are "read" straight into the item as server.c does
 * (bc_proto_direct_dest), and the output queue is drained a few bytes at a
 * time under a small output limit so that backpressure paths run.  Every
 * byte the node would send is collected and must parse, unit by unit, as a
 * well-formed memcached reply stream (bc_mc_reply_parse): a reply the
 * client library could not read is a bug even if nothing crashes.
 *
 * The cache is small (1 MiB, 16 KiB items) and recreated per input, with a
 * fixed clock, so runs are deterministic.  The first byte's high bit turns
 * memcached's ASCII authentication on (-Y, proto_auth.c; one user,
 * "fuzz secret"), so the unauthenticated paths and the authenticating
 * "set" are fuzzed too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bc_log.h"
#include "bc_mcproto.h"
#include "engine/cache.h"
#include "proto/proto_text.h"
#include "fuzz_conn.h"
#include "fuzz_target.h"

static void
check_reply_stream(const sink_t *out)
{
    size_t pos = 0;
    /* a stream whose first byte was 0x80 is binary protocol (as memcached's
     * -B auto): its replies are binary (fuzz_binary checks those) */
    if (out->len > 0 && (unsigned char)out->buf[0] == 0x81) return;
    while (pos < out->len) {
        bc_mc_reply_t r;
        /* refresh_certs' error line is memcached's own wording, not a reply
         * a client library reads */
        /* nor is shutdown's "ERROR: shutdown not enabled" (memcached's) */
        /* nor are "lru_crawler metadump"'s LF-ended "key=..." lines and
         * its refusals (memcached's crawler's words) */
        if ((out->len - pos >= 6 && memcmp(out->buf + pos, "Error ", 6) == 0) ||
            (out->len - pos >= 7 && memcmp(out->buf + pos, "ERROR: ", 7) == 0) ||
            (out->len - pos >= 4 && memcmp(out->buf + pos, "key=", 4) == 0) ||
            (out->len - pos >= 9 && memcmp(out->buf + pos, "BADCLASS ", 9) == 0) ||
            (out->len - pos >= 11 && memcmp(out->buf + pos, "NOTSTARTED ", 11) == 0)) {
            const char *nl = memchr(out->buf + pos, '\n', out->len - pos);
            if (nl == NULL) return;
            pos = (size_t)(nl - out->buf) + 1;
            continue;
        }
        /* meta replies (mg ms md ma mn me): a code of two capitals, then
         * flags; VA carries a data block of the size it names */
        size_t left = out->len - pos;
        const char *p = out->buf + pos;
        if (left >= 4 && p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'A' && p[1] <= 'Z' &&
            (p[2] == ' ' || p[2] == '\r') &&
            (memcmp(p, "EN", 2) == 0 || memcmp(p, "HD", 2) == 0 || memcmp(p, "NF", 2) == 0 ||
             memcmp(p, "NS", 2) == 0 || memcmp(p, "EX", 2) == 0 || memcmp(p, "MN", 2) == 0 ||
             memcmp(p, "ME", 2) == 0 || memcmp(p, "VA", 2) == 0)) {
            const char *nl = memchr(p, '\n', left);
            if (nl == NULL) return;
            size_t line = (size_t)(nl - p) + 1;
            if (memcmp(p, "VA", 2) == 0) {
                size_t vlen = (size_t)strtoull(p + 3, NULL, 10);
                if (left < line + vlen + 2) return;
                line += vlen + 2;
            }
            pos += line;
            continue;
        }
        size_t used;
        bc_status_t st = bc_mc_reply_parse(out->buf + pos, out->len - pos, &r, &used);
        CHECK(st != BC_EPROTO);
        if (st == BC_EAGAIN) {
            /* Only a closed connection may leave a reply unfinished. */
            return;
        }
        pos += used;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *rbuf;
    static sink_t out;
    static bc_proto_auth_t *users;
    bc_cache_t *cache = NULL;
    bc_cache_config_t cc = {
        .mem_limit = 1u << 20,
        .max_item_size = 16u * 1024u,
        .nbuckets = 64,
        .nshards = 4,
        .policy = NULL,
        .now = fixed_now,
    };
    bc_thread_stats_t stats;
    bc_proto_env_t env;
    bc_proto_conn_t pc;
    size_t rlen = 0, pos = 0;
    uint32_t seed = 0x9e3779b9u;

    if (rbuf == NULL) {
        bc_log_set_level(BC_LOG_ERROR);
        rbuf = malloc(RBUF_CAP);
        out.buf = malloc(OUT_CAP);
        if (rbuf == NULL || out.buf == NULL) abort();
        char path[] = "/tmp/fuzz-mcauth-XXXXXX", err[256];
        int fd = mkstemp(path);       /* mode 0600, as a -Y file must be */
        if (fd < 0 || write(fd, "fuzz:secret\n", 12) != 12) abort();
        close(fd);
        if (bc_proto_auth_open(path, &users, err, sizeof(err)) != BC_OK) abort();
        unlink(path);
    }
    out.len = 0;
    out.overflow = 0;
    if (bc_cache_create(&cc, &cache) != BC_OK) abort();
    memset(&stats, 0, sizeof(stats));
    memset(&env, 0, sizeof(env));
    env.cache = cache;
    env.listen_addr = "127.0.0.1";
    env.port = 11211;
    env.max_conns = 16;
    env.nthreads = 1;
    env.max_conn_buffer = OUT_LIMIT;
    env.started = (time_t)fixed_now();
    atomic_init(&env.verbosity, 0);
    bc_proto_conn_init(&pc, &env, &stats, 3);

    if (size > 0) {
        if (data[0] & 0x80) env.auth = users;
        seed ^= data[0];
        data++;
        size--;
    }
    bc_status_t st = BC_OK;
    while (st == BC_OK && (pos < size || rlen > 0)) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 97;
        char *dst;
        size_t need;

        if (rlen == 0 && pos < size && bc_proto_direct_dest(&pc, &dst, &need) && need >= 8) {
            size_t n = chunk < need ? chunk : need;
            if (n > size - pos) n = size - pos;
            memcpy(dst, data + pos, n);
            pos += n;
            st = bc_proto_direct_done(&pc, n);
        } else {
            size_t n = chunk;
            if (n > size - pos) n = size - pos;
            if (n > RBUF_CAP - rlen) n = RBUF_CAP - rlen;
            memcpy(rbuf + rlen, data + pos, n);
            pos += n;
            rlen += n;
            size_t used = 0;
            st = bc_proto_process(&pc, rbuf, rlen, OUT_LIMIT, &used);
            CHECK(used <= rlen);
            memmove(rbuf, rbuf + used, rlen - used);
            rlen -= used;
            /* No progress possible: input exhausted or buffer full. */
            if (n == 0 && used == 0 && bc_outq_pending(&pc.out) < OUT_LIMIT) break;
        }
        check_pending(&pc);
        drain(&pc, cache, &out, (seed >> 8) % 3000);
        /* A dump streamed a chunk at a time (server.c asks for the next
         * one once the queue has drained). */
        if (st == BC_OK && bc_proto_streaming(&pc) &&
            bc_outq_pending(&pc.out) < BC_HANDLER_STREAM_LOW_WATER) {
            st = bc_proto_stream(&pc);
        }
    }
    while (st == BC_OK && bc_proto_streaming(&pc)) {
        while (bc_outq_pending(&pc.out) > 0) drain(&pc, cache, &out, 65536);
        st = bc_proto_stream(&pc);
    }
    while (bc_outq_pending(&pc.out) > 0) drain(&pc, cache, &out, 65536);
    if (!out.overflow) check_reply_stream(&out);
    CHECK(atomic_load(&stats.protocol_errors) <= size + 1);

    bc_proto_conn_release(&pc);
    bc_cache_destroy(cache);
    return 0;
}
