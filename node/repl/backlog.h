/*
 * backlog.h -- the replication backlog: the newest bytes of a stream of
 * records, by stream offset, so a backup that reconnects can resume from
 * the offset it had instead of taking a snapshot (repl/repl.h).
 *
 * WHAT IT DOES
 *   A byte ring of capacity cap holding the stream's offsets [start, end):
 *   end is the stream's offset (every byte ever appended), start the
 *   oldest still held.  Appending past the capacity drops the oldest
 *   bytes (start moves up); a record larger than the whole ring empties
 *   it (start = end: nobody can be sent it from here).  A reader copies
 *   from any offset it holds, in pieces, and may cut a piece at a record
 *   boundary by walking the records' length headers (common/bc_frame.h).
 *
 *         offset:  start                         end
 *                    v                             v
 *   ring:  [ ...newer | oldest ......... newest... ]   (wraps at cap)
 *
 * THREADS
 *   None of its own: not thread-safe.  Replication calls it with its mu
 *   held (repl/repl_int.h), readers included.
 */
#ifndef BC_BACKLOG_H
#define BC_BACKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

typedef struct bc_backlog {
    char *ring;                    /* cap bytes, owned */
    size_t cap;
    uint64_t start;                /* oldest offset held */
    uint64_t end;                  /* the stream's offset: one past the newest byte */
} bc_backlog_t;

/* An empty backlog of cap bytes at offset 0.  Errors: BC_EINVAL (cap 0),
 * BC_ENOMEM.  Free it with bc_backlog_free. */
bc_status_t bc_backlog_init(bc_backlog_t *b, size_t cap);
/* Frees the ring; b may be initialised again.  Accepts a zeroed b. */
void bc_backlog_free(bc_backlog_t *b);

/* Empties the backlog at `offset`: start = end = offset.  Used when the
 * stream restarts there, or to make every held offset unusable (no backup
 * can resume below it). */
void bc_backlog_reset(bc_backlog_t *b, uint64_t offset);

/* Appends data[0..len) at end (a whole record or more): see WHAT IT DOES
 * for what is dropped. */
void bc_backlog_append(bc_backlog_t *b, const char *data, size_t len);

/* True when a reader at offset pos can go on from here: start <= pos <= end. */
static inline bool
bc_backlog_holds(const bc_backlog_t *b, uint64_t pos)
{
    return pos >= b->start && pos <= b->end;
}

/* Copies up to max bytes from offset pos (bc_backlog_holds(b, pos)) into
 * dst; returns how many (end - pos at most). */
size_t bc_backlog_copy(const bc_backlog_t *b, uint64_t pos, char *dst, size_t max);

/* The largest n <= max such that pos + n is a record boundary, pos being
 * one (and held), walking the records' length headers; 0 when the first
 * record is larger than max. */
size_t bc_backlog_boundary(const bc_backlog_t *b, uint64_t pos, size_t max);

#endif
