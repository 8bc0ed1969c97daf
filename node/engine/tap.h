/*
 * tap.h -- change trackers on a source's buckets, for migration precopy
 * (migrate/migrate.h).
 *
 * WHAT IT DOES
 *   A tap remembers WHICH keys of one bucket changed since the moment it
 *   was armed: stored, deleted, touched (every change cache.h reports).
 *   It does not keep values: when the bucket is finally exported read-only,
 *   the export sends each remembered key's current state (its value, or
 *   that it is gone), which is exactly what the destination needs on top
 *   of the snapshot it took when the tap was armed.
 *
 *     precopy (bucket writable)              final copy (bucket read-only)
 *     -------------------------              -----------------------------
 *     bc_tap_start(b) -> id                  bc_tap_changes(b, id) -> keys
 *     snapshot of b (bc_cache_bucket_foreach)   send each key's state now
 *     ... writes go on; the tap records keys
 *
 * WHY KEYS, NOT A LOG
 *   A hot key written ten thousand times during a precopy is one entry,
 *   and the final delta is bounded by the keys that changed, not by the
 *   writes.  Memory is bounded too: a tap whose keys pass max_bytes
 *   overflows (it forgets its keys and stops recording) and the final
 *   copy is then a full one -- slower, never wrong.
 *
 * BEHAVIOR
 *   A bucket keeps up to two taps at once, each with its own keys: while
 *   a move is re-planned, the precopy of the old destination and that of
 *   the new one are both kept up to date (catch-ups) until the console
 *   calls one off.  With one tap per bucket each destination's precopy
 *   ended the other's tracker, and their refreshes took turns.
 *   A tap is valid only while it has seen every change of its bucket since
 *   it was armed.  It stops being usable (bc_tap_changes answers
 *   BC_ENOTFOUND) when:
 *     - its keys pass max_bytes (overflow);
 *     - a flush_all runs (it changes every key at once);
 *     - the bucket is dropped (after a cutover, or a leftover's drop);
 *     - it was not used for idle_ms (a precopy whose final copy never
 *       came; a precopy still streaming counts as use, bc_tap_touch),
 *       or it was the least recently used of its bucket's two taps when
 *       a third was armed, or max_taps taps exist and it is the least
 *       recently used of all;
 *     - the process restarts: ids start from a random base, so an id of
 *       an earlier process is never mistaken for a tap of this one.
 *   Evictions and expiries are not changes (cache.h): the destination
 *   keeps the value the source evicted (the latest one written) and
 *   expires it at the same time (it got the remaining TTL).
 *
 * LOCKING RULE
 *   mu guards every tap.  The cache's tap hook runs with a shard lock held
 *   and then takes mu (shard lock, then mu: never the other way round); no
 *   function here calls into the cache while holding mu except
 *   bc_cache_tap_bucket, which takes no lock.
 */
#ifndef BC_NODE_TAP_H
#define BC_NODE_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"
#include "engine/cache.h"

typedef struct bc_tap_set bc_tap_set_t;

typedef struct bc_tap_config {
    bc_cache_t *cache;             /* borrowed; must outlive the set */
    size_t max_bytes;              /* keys one tap may hold; 0 = 4 MiB */
    uint32_t max_taps;             /* taps at once; 0 = 256 */
    uint32_t idle_ms;              /* an unused tap ends after this; 0 = 120000 */
} bc_tap_config_t;

/*
 * A set of keys (the changes a tap recorded, copied or moved out of it),
 * each once, in the order first recorded.  Owned by whoever filled it
 * (bc_tap_keys_free).
 */
typedef struct bc_tap_keys {
    char *arena;                   /* entries: u8 nkey, key bytes */
    size_t len, cap;
    uint32_t *index;               /* open addressing: arena offset + 1; 0 = empty */
    uint32_t mask;                 /* index slots - 1 (0 with no index) */
    uint32_t count;
} bc_tap_keys_t;

typedef struct bc_tap_stats {
    uint32_t active;               /* taps recording now */
    uint64_t started;
    uint64_t overflowed;           /* ended by max_bytes */
    uint64_t keys;                 /* keys held by the active taps */
    uint64_t taken;                /* key sets moved out by bc_tap_take */
} bc_tap_stats_t;

/* Creates the set and installs it as the cache's tap hook (once per
 * cache).  *out is the caller's
 * (bc_tap_set_destroy).  Errors: BC_EINVAL (no cache), BC_ENOMEM. */
bc_status_t bc_tap_set_create(const bc_tap_config_t *config, bc_tap_set_t **out);
/* Removes the hook and frees every tap.  NULL is accepted. */
void bc_tap_set_destroy(bc_tap_set_t *set);

/*
 * Arms a new tap on bucket (ending the least recently used of its taps
 * when it has two already) and returns its id in *id.  Arm first, then read the bucket: a change made
 * while the bucket is read is then both in the copy and recorded, which
 * the delta's "state now" semantics make harmless.
 * Errors: BC_EINVAL (bucket out of range), BC_ENOMEM.
 */
bc_status_t bc_tap_start(bc_tap_set_t *set, uint32_t bucket, uint64_t *id);

/*
 * Copies the keys tap `id` of bucket recorded into *out (initialised by
 * this call; bc_tap_keys_free it on BC_OK) and counts the tap as used.
 * The tap goes on recording.  Errors: BC_ENOTFOUND (no such tap, or it is
 * no longer valid: why says which, see BEHAVIOR), BC_ENOMEM.
 */
bc_status_t bc_tap_changes(bc_tap_set_t *set, uint32_t bucket, uint64_t id, bc_tap_keys_t *out,
                           char *why, size_t whylen);

/*
 * Like bc_tap_changes, but MOVES the recorded keys into *out and leaves
 * the tap recording into an empty set: the next take (or the final
 * copy's bc_tap_changes) has only the keys changed after this call.  A
 * precopy's catch-ups use it (migrate/catchup.c), so the final copy's
 * delta holds what changed since the last catch-up, not since the
 * precopy.  The caller must deliver every key taken (their state now)
 * or stop relying on the tap: the keys are no longer in it.  Errors as
 * bc_tap_changes.
 */
bc_status_t bc_tap_take(bc_tap_set_t *set, uint32_t bucket, uint64_t id, bc_tap_keys_t *out,
                        char *why, size_t whylen);

/* Ends tap `id` of bucket, if it is still there. */
void bc_tap_stop(bc_tap_set_t *set, uint32_t bucket, uint64_t id);
/* Tap `id` of bucket is in use now (its precopy is still streaming): it
 * does not count as idle until idle_ms after this.  Another id (or none):
 * nothing happens. */
void bc_tap_touch(bc_tap_set_t *set, uint32_t bucket, uint64_t id);

void bc_tap_get_stats(bc_tap_set_t *set, bc_tap_stats_t *out);

/* ---- key sets ---- */

/* Adds key unless present.  Returns BC_OK, BC_ENOMEM, BC_ETOOLARGE (over
 * 4 GiB of keys). */
bc_status_t bc_tap_keys_add(bc_tap_keys_t *keys, const char *key, size_t nkey);
/* Whether key is in the set. */
bool bc_tap_keys_has(const bc_tap_keys_t *keys, const char *key, size_t nkey);
/* Calls fn for every key of the set, in the order they were added. */
void bc_tap_keys_foreach(const bc_tap_keys_t *keys,
                         void (*fn)(const char *key, size_t nkey, void *ctx), void *ctx);
/* Bytes the set holds (keys and index). */
size_t bc_tap_keys_bytes(const bc_tap_keys_t *keys);
void bc_tap_keys_free(bc_tap_keys_t *keys);

#endif
