/*
 * bc_topk.h -- the heaviest keys of a stream in bounded memory: a
 * space-saving sketch (Metwally, Agrawal, El Abbadi 2005) whose counts
 * decay exponentially, so "heavy" means "heavy lately".
 *
 * WHAT IT DOES
 *   bc_topk_add(key, weight) over a stream of keys; bc_topk_list() the
 *   monitored keys, heaviest first, each with an estimate `count` and the
 *   most it may be over (`error`).  The node feeds it a sample of its
 *   requests (engine/hotkeys.h); the console merges the nodes' lists with
 *   it (weights = the nodes' counts).
 *
 * HOW
 *   At most `capacity` keys are monitored.  A monitored key's count grows
 *   by its weight.  A new key, when all slots are taken, evicts the key
 *   with the smallest count m and starts at m + weight with error m.
 *   Without decay that gives the classic guarantees, with W the total
 *   weight added:
 *     count - error <= true weight <= count   for every monitored key,
 *     every key whose true weight exceeds W / capacity is monitored.
 *   A hash table (linear probing, backward-shift deletion) finds a key; a
 *   binary min-heap on count finds the one to evict: O(log capacity) per
 *   add, no allocation after bc_topk_create.
 *
 *   Decay: with half_life_s > 0 every count, error and the total are
 *   multiplied by 2^(-dt / half_life_s) as time passes (applied at most
 *   once a second by add, always by list).  Scaling everything by one
 *   factor keeps the heap's order and the bounds above, now for the
 *   decayed weights: a key that stops coming fades to nothing and is the
 *   next to go.
 *
 * MEMORY
 *   bc_topk_memory(): capacity * (sizeof entry + 3 index words) plus the
 *   struct; fixed at creation (256 slots: about 70 KiB).
 *
 * THREADS
 *   None: the caller serialises every call (the node holds a mutex).
 */
#ifndef BC_TOPK_H
#define BC_TOPK_H

#include <stddef.h>
#include <stdint.h>

#define BC_TOPK_KEY_MAX     250u     /* memcached's longest key */
#define BC_TOPK_MAX_CAPACITY 65536u

typedef struct bc_topk bc_topk_t;

typedef struct bc_topk_entry {
    char key[BC_TOPK_KEY_MAX];       /* not NUL-terminated: nkey bytes */
    uint8_t nkey;
    uint32_t tag;                    /* caller's tag (the node: the key's bucket) */
    double count;                    /* estimate (decayed), >= the true weight */
    double error;                    /* count - error <= the true weight */
} bc_topk_entry_t;

/*
 * capacity in 1..BC_TOPK_MAX_CAPACITY; half_life_s 0 = no decay.  Returns
 * NULL on a bad argument or out of memory.  Owned by the caller
 * (bc_topk_destroy).
 */
bc_topk_t *bc_topk_create(uint32_t capacity, double half_life_s);
void bc_topk_destroy(bc_topk_t *t);

/*
 * Adds weight (> 0) to key (nkey 1..BC_TOPK_KEY_MAX bytes, copied; longer
 * keys are ignored).  tag is stored with the key (the last one given
 * wins).  now_s is a monotonic clock in seconds (only differences count;
 * it must not go backwards, a smaller value is taken as no time passed).
 */
void bc_topk_add(bc_topk_t *t, const char *key, size_t nkey, uint32_t tag, double weight,
                 double now_s);

/*
 * Copies up to max monitored entries into out, heaviest first, after
 * applying the decay due at now_s.  Returns how many were copied.
 */
size_t bc_topk_list(bc_topk_t *t, double now_s, bc_topk_entry_t *out, size_t max);

/* The total weight added (decayed like the counts). */
double bc_topk_total(const bc_topk_t *t);
/* Keys monitored now (<= capacity). */
uint32_t bc_topk_size(const bc_topk_t *t);
uint32_t bc_topk_capacity(const bc_topk_t *t);
double bc_topk_half_life(const bc_topk_t *t);
/* Bytes the sketch holds, fixed at creation. */
size_t bc_topk_memory(const bc_topk_t *t);

#endif
