/*
 * backlog.c -- the replication backlog's byte ring (backlog.h).  Offsets
 * only grow; a byte at offset o lives at ring[o % cap].
 */
#include "repl/backlog.h"

#include <stdlib.h>
#include <string.h>

#include "bc_frame.h"

bc_status_t
bc_backlog_init(bc_backlog_t *b, size_t cap)
{
    memset(b, 0, sizeof(*b));
    if (cap == 0) return BC_EINVAL;
    b->ring = malloc(cap);
    if (b->ring == NULL) return BC_ENOMEM;
    b->cap = cap;
    return BC_OK;
}

void
bc_backlog_free(bc_backlog_t *b)
{
    free(b->ring);
    memset(b, 0, sizeof(*b));
}

void
bc_backlog_reset(bc_backlog_t *b, uint64_t offset)
{
    b->start = b->end = offset;
}

void
bc_backlog_append(bc_backlog_t *b, const char *data, size_t len)
{
    if (len >= b->cap) {
        /* Larger than the whole ring: nobody can be sent it from here. */
        b->end += len;
        b->start = b->end;
        return;
    }
    size_t at = (size_t)(b->end % b->cap);
    size_t first = len < b->cap - at ? len : b->cap - at;
    memcpy(b->ring + at, data, first);
    if (len > first) memcpy(b->ring, data + first, len - first);
    b->end += len;
    if (b->end - b->start > b->cap) b->start = b->end - b->cap;
}

size_t
bc_backlog_copy(const bc_backlog_t *b, uint64_t pos, char *dst, size_t max)
{
    uint64_t avail = b->end - pos;
    size_t n = avail < max ? (size_t)avail : max;
    size_t at = (size_t)(pos % b->cap);
    size_t first = n < b->cap - at ? n : b->cap - at;
    memcpy(dst, b->ring + at, first);
    if (n > first) memcpy(dst + first, b->ring, n - first);
    return n;
}

size_t
bc_backlog_boundary(const bc_backlog_t *b, uint64_t pos, size_t max)
{
    size_t n = 0;
    while (pos + n < b->end) {
        unsigned char h[4];
        for (int i = 0; i < 4; i++) h[i] = (unsigned char)b->ring[(pos + n + (uint64_t)i) % b->cap];
        size_t flen = BC_FRAME_HEADER_LEN +
                      ((size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3]);
        if (n + flen > max) break;
        n += flen;
    }
    return n;
}
