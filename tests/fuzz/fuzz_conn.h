/*
 * fuzz_conn.h -- what the protocol fuzz targets (fuzz_proto_text.c,
 * fuzz_binary.c) share when they play the part of server.c for one
 * connection: a fixed clock, the sink the output queue is "written" to,
 * a partial drain as a socket would take it, and the queue's own check.
 */
#ifndef BC_FUZZ_CONN_H
#define BC_FUZZ_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "engine/cache.h"
#include "net/outq.h"
#include "proto/proto_text.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

#define RBUF_CAP   (BC_MC_LINE_HARD_MAX + 4096)
#define OUT_CAP    (1u << 20)
#define OUT_LIMIT  4096u

static inline uint32_t
fixed_now(void)
{
    return 1700000000u;
}

typedef struct sink {
    char *buf;
    size_t len;
    int overflow;
} sink_t;

/* "Writes" up to n bytes of the queue into the sink, as a socket would. */
static inline void
drain(bc_proto_conn_t *pc, bc_cache_t *cache, sink_t *out, size_t n)
{
    struct iovec iov[64];
    size_t total = 0, want = n;
    int cnt = bc_outq_iov(&pc->out, iov, 64);

    for (int i = 0; i < cnt && total < want; i++) {
        size_t take = iov[i].iov_len < want - total ? iov[i].iov_len : want - total;
        if (out->len + take <= OUT_CAP) {
            memcpy(out->buf + out->len, iov[i].iov_base, take);
            out->len += take;
        } else {
            out->overflow = 1;
        }
        total += take;
    }
    CHECK(total <= bc_outq_pending(&pc->out));
    bc_outq_consume(&pc->out, cache, total);
}

/* The queue's iovecs add up to what it says is pending. */
static inline void
check_pending(const bc_proto_conn_t *pc)
{
    struct iovec iov[1024];
    int cnt = bc_outq_iov(&pc->out, iov, 1024);
    size_t sum = 0;
    for (int i = 0; i < cnt; i++) sum += iov[i].iov_len;
    if (cnt < 1024) CHECK(sum == bc_outq_pending(&pc->out));
}

#endif
