/*
 * fuzz_binary.c -- libFuzzer target: arbitrary client bytes through the
 * node's binary-protocol executor (node/proto/binary.c) on a real
 * in-process cache, the connection made binary by a first byte of 0x80
 * (the executor's -B auto detection): the input's own, or one put in
 * front of it.
 *
 * It plays the part of server.c as fuzz_proto_text.c does: the input
 * arrives in chunks whose sizes come from the input itself, unconsumed
 * bytes are presented again, long values are "read" straight into the
 * item (bc_proto_direct_dest), and the output queue is drained a few
 * bytes at a time under a small output limit.  Every byte the node would
 * send must parse as a stream of well-formed binary responses (magic
 * 0x81, extras + key within the body length): a reply a client could not
 * read is a bug even if nothing crashes.
 *
 * The cache is small (1 MiB, 16 KiB items) and recreated per input, with a
 * fixed clock, so runs are deterministic.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bc_log.h"
#include "bc_mcproto.h"
#include "proto/binary.h"
#include "engine/cache.h"
#include "proto/proto_text.h"
#include "fuzz_conn.h"
#include "fuzz_target.h"

static void
check_reply_stream(const sink_t *out)
{
    size_t pos = 0;
    while (pos + BC_BIN_HEADER_LEN <= out->len) {
        const unsigned char *p = (const unsigned char *)out->buf + pos;
        CHECK(p[0] == BC_BIN_RES_MAGIC);
        uint16_t keylen = bc_binary_get16(p + 2);
        uint32_t bodylen = bc_binary_get32(p + 8);
        CHECK((uint32_t)keylen + p[4] <= bodylen);
        CHECK(p[5] == 0);
        if (pos + BC_BIN_HEADER_LEN + bodylen > out->len) return;   /* closed midway */
        pos += BC_BIN_HEADER_LEN + bodylen;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *rbuf;
    static sink_t out;
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
        seed ^= data[0];
        data++;
        size--;
    }
    /* The binary magic first, so that the connection speaks binary: the
     * input's own when it starts with it, else one put in front. */
    if (size == 0 || data[0] != BC_BIN_REQ_MAGIC) {
        rbuf[0] = (char)BC_BIN_REQ_MAGIC;
        rlen = 1;
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
    }
    while (bc_outq_pending(&pc.out) > 0) drain(&pc, cache, &out, 65536);
    if (!out.overflow) check_reply_stream(&out);
    CHECK(atomic_load(&stats.protocol_errors) <= size + 1);

    bc_proto_conn_release(&pc);
    bc_cache_destroy(cache);
    return 0;
}
