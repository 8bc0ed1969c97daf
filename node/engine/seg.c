/*
 * seg.c -- see seg_int.h: segments in one arena, large items in blocks of
 * their own, the byte budget.
 */
#include "engine/seg_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bc_log.h"
#include "bc_status.h"
#include "engine/mem.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SEG_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define SEG_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SEG_POISON(p, n)   ((void)(p), (void)(n))
#define SEG_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Segments per cache the automatic size aims at (at least): finer
 * eviction and fewer bytes in partly filled segments than with 64 (-m 64
 * holds 2% more 1 KB items with 256 KiB segments than with 1 MiB ones),
 * while a value up to an eighth of a segment still goes inline. */
#define SEGS_TARGET_COUNT   256u
/* An item of an eighth of a segment or more gets a block of its own. */
#define SEGS_LARGE_SHARE    8u
/* Free segments a writer leaves to the evictor (which copies before it
 * frees). */
#define SEGS_RESERVE        1u
/* Free segments kept backed for reuse; more go back to the system.
 * Eviction reuses what it frees at once, so free segments pile up only
 * when items go away by themselves (deletes, expiry, a bucket drop) --
 * memory the process should give back. */
#define SEGS_KEEP_FREE      2u
/* Evicted segments still pinned by readers may hold up to this share of
 * the memory (1/8); past it, eviction passes pinned segments over. */
#define SEGS_DRAIN_SHARE    8u
/* Pinned segments eviction looks past before it gives up on a queue. */
#define SEGS_PINNED_SCAN    64u
#define SEGS_LARGE_CHUNK    4096u
#define SEGS_ARENA_UNITS    0x7fffffffull   /* references below the large bit */

static inline void
segs_charge(bc_segs_t *segs, uint64_t n)
{
    atomic_fetch_add_explicit(segs->mem_used, n, memory_order_relaxed);
}

static inline void
segs_uncharge(bc_segs_t *segs, uint64_t n)
{
    atomic_fetch_sub_explicit(segs->mem_used, n, memory_order_relaxed);
}

/* The budget; bc_seg_set_limit may move it at any time. */
static inline uint64_t
segs_limit(const bc_segs_t *segs)
{
    return __atomic_load_n(&segs->limit, __ATOMIC_RELAXED);
}

void
bc_seg_set_limit(bc_segs_t *segs, uint64_t limit)
{
    __atomic_store_n(&segs->limit, limit, __ATOMIC_RELAXED);
}

bool
bc_seg_try_charge(bc_segs_t *segs, uint64_t n)
{
    uint64_t cur = atomic_load_explicit(segs->mem_used, memory_order_relaxed);
    while (cur + n <= segs_limit(segs)) {
        if (atomic_compare_exchange_weak_explicit(segs->mem_used, &cur, cur + n,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

static uint32_t
segs_log2(uint64_t v)
{
    uint32_t s = 0;
    while (((uint64_t)1 << (s + 1)) <= v) s++;
    return s;
}

int
bc_seg_init(bc_segs_t *segs, uint64_t limit, uint32_t seg_size, unsigned nqueues,
             _Atomic uint64_t *mem_used)
{
    memset(segs, 0, sizeof(*segs));
    if (nqueues == 0 || nqueues > BC_EVICT_MAX_QUEUES || limit == 0) return BC_EINVAL;
    if (seg_size == 0) {
        uint64_t want = limit / SEGS_TARGET_COUNT;
        seg_size = BC_SEG_MIN_SIZE;
        while (seg_size < BC_SEG_MAX_SIZE && (uint64_t)seg_size * 2 <= want) seg_size *= 2;
    }
    if (seg_size < BC_SEG_MIN_SIZE || seg_size > BC_SEG_MAX_SIZE ||
        (seg_size & (seg_size - 1)) != 0) {
        return BC_EINVAL;
    }
    segs->seg_size = seg_size;
    segs->seg_shift = segs_log2(seg_size);
    uint64_t nseg = (limit + seg_size - 1) / seg_size;
    if (nseg > UINT32_MAX || nseg * seg_size > (uint64_t)SIZE_MAX / 2) return BC_EINVAL;
    segs->nseg = (uint32_t)nseg;
    segs->arena_bytes = (size_t)segs->nseg * seg_size;
    segs->ref_shift = 3;
    while ((segs->arena_bytes >> segs->ref_shift) >= SEGS_ARENA_UNITS) segs->ref_shift++;
    segs->large_min = seg_size / SEGS_LARGE_SHARE;
    segs->keep_free = SEGS_KEEP_FREE;
    segs->nqueues = nqueues;
    segs->mem_used = mem_used;
    segs->limit = limit;

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&segs->lock, &attr);
    pthread_mutexattr_destroy(&attr);

    void *arena = mmap(NULL, segs->arena_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena == MAP_FAILED) {
        log_error("cache: cannot reserve %zu bytes of address space: %s", segs->arena_bytes,
                  strerror(errno));
        pthread_mutex_destroy(&segs->lock);
        return BC_ENOMEM;
    }
    segs->arena = arena;
    SEG_POISON(segs->arena, segs->arena_bytes);
    segs->segs = aligned_alloc(64, (size_t)segs->nseg * sizeof(*segs->segs));
    if (segs->segs != NULL) memset(segs->segs, 0, (size_t)segs->nseg * sizeof(*segs->segs));
    uint64_t max_large = limit / segs->large_min + 2;
    segs->large_dir_len = (uint32_t)((max_large + SEGS_LARGE_CHUNK - 1) / SEGS_LARGE_CHUNK);
    segs->large_dir = calloc(segs->large_dir_len, sizeof(*segs->large_dir));
    if (segs->segs == NULL || segs->large_dir == NULL) {
        bc_seg_fini(segs);
        return BC_ENOMEM;
    }
    segs_charge(segs, bc__evict_mem_charge(segs->segs) + bc__evict_mem_charge(segs->large_dir));
    /* unbacked list in address order: the arena fills from its start */
    for (uint32_t i = segs->nseg; i-- > 0;) {
        bc_seg_t *s = &segs->segs[i];
        s->id = i;
        s->base = segs->arena + ((size_t)i << segs->seg_shift);
        s->state = BC_SEG_UNBACKED;
        s->next = segs->unbacked;
        segs->unbacked = s;
    }
    segs->nunbacked = segs->nseg;
    return BC_OK;
}

static void segs_large_free(bc_segs_t *segs, bc_seg_t *seg);

void
bc_seg_fini(bc_segs_t *segs)
{
    for (unsigned q = 0; q < segs->nqueues; q++) {
        for (bc_seg_t *s = segs->queues[q].head, *next; s != NULL; s = next) {
            next = s->next;
            if (s->large) segs_large_free(segs, s);
        }
    }
    for (bc_seg_t *s = segs->draining, *next; s != NULL; s = next) {
        next = s->next;
        if (s->large) segs_large_free(segs, s);
    }
    if (segs->large_dir != NULL) {
        for (uint32_t i = 0; i < segs->large_dir_len; i++) free(segs->large_dir[i]);
        free(segs->large_dir);
    }
    free(segs->segs);
    if (segs->arena != NULL) {
        SEG_UNPOISON(segs->arena, segs->arena_bytes);
        munmap(segs->arena, segs->arena_bytes);
    }
    if (segs->arena != NULL || segs->segs != NULL) pthread_mutex_destroy(&segs->lock);
    memset(segs, 0, sizeof(*segs));
}

/* ---- queues ---- */

static void
segs_queue_push_head(bc_segs_t *segs, bc_seg_t *s, unsigned q)
{
    bc_seg_queue_t *qu = &segs->queues[q];
    s->queue = (uint8_t)q;
    s->prev = NULL;
    s->next = qu->head;
    if (qu->head != NULL) qu->head->prev = s;
    qu->head = s;
    if (qu->tail == NULL) qu->tail = s;
    qu->bytes += s->charge;
}

static void
segs_queue_remove(bc_segs_t *segs, bc_seg_t *s)
{
    bc_seg_queue_t *qu = &segs->queues[s->queue];
    if (s->prev != NULL) s->prev->next = s->next;
    else qu->head = s->next;
    if (s->next != NULL) s->next->prev = s->prev;
    else qu->tail = s->prev;
    s->next = s->prev = NULL;
    if (qu->open == s) qu->open = NULL;
    qu->bytes -= s->charge;
}

/* ---- arena segments ---- */

/* Gives a FREE segment's pages back; it becomes UNBACKED. */
static void
segs_release(bc_segs_t *segs, bc_seg_t *s)
{
    SEG_UNPOISON(s->base, segs->seg_size);
    (void)madvise(s->base, segs->seg_size, MADV_DONTNEED);
    SEG_POISON(s->base, segs->seg_size);
    segs_uncharge(segs, s->charge);
    s->charge = 0;
    s->state = BC_SEG_UNBACKED;
    s->next = segs->unbacked;
    segs->unbacked = s;
    segs->nunbacked++;
    segs->released_segs++;
}

bool
do_segs_release_one(bc_segs_t *segs)
{
    bc_seg_t *s = segs->free;
    if (s == NULL) return false;
    segs->free = s->next;
    segs->nfree--;
    segs_release(segs, s);
    return true;
}

/* A segment whose memory may be reused now. */
static void
segs_put_free(bc_segs_t *segs, bc_seg_t *s)
{
    if (s->large) {
        segs_large_free(segs, s);
        return;
    }
    s->used = 0;
    atomic_store_explicit(&s->pins, 0, memory_order_relaxed);
    atomic_store_explicit(&s->live, 0, memory_order_relaxed);
    SEG_POISON(s->base, segs->seg_size);
    s->state = BC_SEG_FREE;
    /* beyond the few kept, or while over budget (a segment borrowed by
     * eviction, freed by its last reader): back to the system */
    if ((segs->nfree >= segs->keep_free && !segs->prealloc) ||
        atomic_load_explicit(segs->mem_used, memory_order_relaxed) > segs_limit(segs)) {
        segs_release(segs, s);
        return;
    }
    s->next = segs->free;
    segs->free = s;
    segs->nfree++;
}

/* Whole segments the budget could still back. */
static uint64_t
segs_room(const bc_segs_t *segs)
{
    uint64_t used = atomic_load_explicit(segs->mem_used, memory_order_relaxed);
    uint64_t limit = segs_limit(segs);
    return used < limit ? (limit - used) / segs->seg_size : 0;
}

/* Segments that could be opened now: free ones plus what the budget
 * could back. */
static uint64_t
segs_available(const bc_segs_t *segs)
{
    uint64_t room = segs_room(segs);
    if (room > segs->nunbacked) room = segs->nunbacked;
    return segs->nfree + room;
}

/* A segment to open: a free one, else a newly backed one -- but a writer
 * leaves the last one (SEGS_RESERVE) to eviction, which must copy the
 * items it keeps before it frees anything.  When the index or the policy
 * has taken that last one's budget meanwhile, eviction borrows a segment
 * past the limit: it frees at least as much as it copies, and the cache
 * gives the difference back when the eviction ends (cache.c).  NULL when
 * none. */
static bc_seg_t *
segs_take(bc_segs_t *segs, bool for_evictor)
{
    bool borrow = false;
    if (segs_available(segs) <= (for_evictor ? 0u : SEGS_RESERVE)) {
        if (!for_evictor || segs->unbacked == NULL) return NULL;
        borrow = true;
    }
    bc_seg_t *s = NULL;
    if (segs->free != NULL) {
        s = segs->free;
        segs->free = s->next;
        segs->nfree--;
    } else if (segs->unbacked != NULL &&
               (borrow || bc_seg_try_charge(segs, segs->seg_size))) {
        s = segs->unbacked;
        segs->unbacked = s->next;
        segs->nunbacked--;
        s->charge = segs->seg_size;
        if (borrow) segs_charge(segs, segs->seg_size);
    }
    if (s == NULL) return NULL;
    SEG_UNPOISON(s->base, segs->seg_size);
    s->used = 0;
    s->nrec = 0;
    s->next = s->prev = NULL;
    atomic_store_explicit(&s->pins, 0, memory_order_relaxed);
    atomic_store_explicit(&s->live, 0, memory_order_relaxed);
    return s;
}

char *
do_segs_append(bc_segs_t *segs, unsigned q, uint32_t size, bool for_evictor, bc_seg_t **seg)
{
    bc_seg_queue_t *qu = &segs->queues[q];
    bc_seg_t *s = qu->open;
    if (size > segs->seg_size) return NULL;
    if (s == NULL || segs->seg_size - s->used < size) {
        bc_seg_t *n = segs_take(segs, for_evictor);
        if (n == NULL) return NULL;
        if (s != NULL) {
            s->state = BC_SEG_QUEUED;
            qu->open = NULL;
            do_segs_reap(segs, s);   /* everything in it may be gone already */
        }
        n->state = BC_SEG_OPEN;
        segs_queue_push_head(segs, n, q);
        qu->open = n;
        s = n;
    }
    char *p = s->base + s->used;
    SEG_UNPOISON(p, size);   /* (room given back by do_segs_unappend is poisoned) */
    s->used += size;
    s->nrec++;
    bc_seg_pin(s);
    *seg = s;
    return p;
}

size_t
bc_seg_prealloc(bc_segs_t *segs, int64_t *took_ms)
{
    pthread_mutex_lock(&segs->lock);
    segs->prealloc = true;
    uint32_t n = 0;
    bc_seg_t *first = NULL;
    /* take the unbacked segments the budget allows, in address order */
    while (segs->unbacked != NULL && bc_seg_try_charge(segs, segs->seg_size)) {
        bc_seg_t *s = segs->unbacked;
        segs->unbacked = s->next;
        segs->nunbacked--;
        s->charge = segs->seg_size;
        if (first == NULL || s < first) first = s;
        n++;
        s->state = BC_SEG_FREE;
        s->next = segs->free;
        segs->free = s;
        segs->nfree++;
    }
    pthread_mutex_unlock(&segs->lock);
    /* the taken segments are the lowest-addressed unbacked ones: one range
     * when nothing was backed before, which is when -L runs */
    size_t bytes = (size_t)n * segs->seg_size;
    if (first != NULL) {
        SEG_UNPOISON(first->base, bytes);
        bytes = bc_node_mem_prefault(first->base, bytes, took_ms);
        SEG_POISON(first->base, (size_t)n * segs->seg_size);
    } else if (took_ms != NULL) {
        *took_ms = 0;
    }
    return bytes;
}

size_t
bc_seg_prefault_one(bc_segs_t *segs, uint64_t ahead)
{
    pthread_mutex_lock(&segs->lock);
    /* Only the budget's room beyond SEGS_RESERVE + 1 segments: what else
     * is charged (large items, the index, the policy) finds room without
     * a free segment given back first, and the segment off every list
     * while its pages fault in never leaves a writer short of the
     * evictor's reserve. */
    if ((uint64_t)segs->nfree * segs->seg_size >= ahead || segs->unbacked == NULL ||
        segs_room(segs) <= SEGS_RESERVE + 1u || !bc_seg_try_charge(segs, segs->seg_size)) {
        pthread_mutex_unlock(&segs->lock);
        return 0;
    }
    bc_seg_t *s = segs->unbacked;
    segs->unbacked = s->next;
    segs->nunbacked--;
    s->charge = segs->seg_size;
    s->next = NULL;
    pthread_mutex_unlock(&segs->lock);

    /* A write per page faults it in (zeroed by the kernel), as the first
     * store into it would have on the thread receiving the data. */
    SEG_UNPOISON(s->base, segs->seg_size);
    bc_node_mem_touch(s->base, segs->seg_size);
    SEG_POISON(s->base, segs->seg_size);

    pthread_mutex_lock(&segs->lock);
    s->state = BC_SEG_FREE;
    s->next = segs->free;
    segs->free = s;
    segs->nfree++;
    segs->prefaulted_segs++;
    pthread_mutex_unlock(&segs->lock);
    return segs->seg_size;
}

/* ---- large items ---- */

uint64_t
bc_seg_large_estimate(uint32_t size)
{
    /* glibc: the request plus an 8-byte header, in 16-byte multiples; a
     * mapped chunk rounds to pages */
    uint64_t n = sizeof(bc_seg_large_t) + (uint64_t)size + sizeof(size_t);
    return (n + 15u) & ~(uint64_t)15u;
}

bc_seg_t *
bc_seg_large_new(bc_segs_t *segs, uint32_t size)
{
    bc_seg_large_t *b = malloc(sizeof(bc_seg_large_t) + size);
    if (b == NULL) return NULL;
    bc_seg_t *s = &b->seg;
    memset(s, 0, sizeof(*s));
    s->large = true;
    s->base = b->item;
    s->used = size;
    s->charge = bc__evict_mem_charge(b);
    s->state = BC_SEG_OPEN;
    atomic_init(&s->pins, 1u | BC_SEG_PIN_FREEABLE);
    atomic_init(&s->live, 0);

    pthread_mutex_lock(&segs->lock);
    uint32_t n;
    if (segs->large_free != 0) {
        n = segs->large_free - 1;
        segs->large_free = (uint32_t)(segs->large_dir[n / SEGS_LARGE_CHUNK]
                                                     [n % SEGS_LARGE_CHUNK] >> 1);
    } else if (segs->large_next < segs->large_dir_len * SEGS_LARGE_CHUNK) {
        n = segs->large_next;
        uintptr_t **chunk = &segs->large_dir[n / SEGS_LARGE_CHUNK];
        if (*chunk == NULL) {
            *chunk = calloc(SEGS_LARGE_CHUNK, sizeof(**chunk));
            if (*chunk == NULL) {
                pthread_mutex_unlock(&segs->lock);
                free(b);
                return NULL;
            }
            segs_charge(segs, bc__evict_mem_charge(*chunk));
        }
        segs->large_next++;
    } else {
        pthread_mutex_unlock(&segs->lock);
        free(b);
        return NULL;
    }
    segs->large_dir[n / SEGS_LARGE_CHUNK][n % SEGS_LARGE_CHUNK] = (uintptr_t)s;
    s->id = n;
    pthread_mutex_unlock(&segs->lock);
    return s;
}

void
do_segs_large_link(bc_segs_t *segs, bc_seg_t *seg, unsigned q)
{
    atomic_fetch_and_explicit(&seg->pins, ~BC_SEG_PIN_FREEABLE, memory_order_relaxed);
    seg->state = BC_SEG_QUEUED;
    segs_queue_push_head(segs, seg, q);
}

/* Frees a large block (lock held). */
static void
segs_large_free(bc_segs_t *segs, bc_seg_t *s)
{
    uint32_t n = s->id;
    segs->large_dir[n / SEGS_LARGE_CHUNK][n % SEGS_LARGE_CHUNK] =
        ((uintptr_t)segs->large_free << 1) | 1u;
    segs->large_free = n + 1;
    segs_uncharge(segs, s->charge);
    free((char *)s - offsetof(bc_seg_large_t, seg));
}

/* ---- pins, reaping ---- */

static void
segs_drain_remove(bc_segs_t *segs, bc_seg_t *seg)
{
    for (bc_seg_t **pp = &segs->draining; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == seg) {
            *pp = seg->next;
            segs->draining_bytes -= seg->charge;
            return;
        }
    }
}

void
bc_seg_unpin(bc_segs_t *segs, bc_seg_t *seg)
{
    uint32_t old = atomic_fetch_sub_explicit(&seg->pins, 1, memory_order_acq_rel);
    if ((old & BC_SEG_PIN_COUNT) != 1 || !(old & BC_SEG_PIN_FREEABLE)) return;
    /* the last pin of a segment nobody else can reach any more */
    pthread_mutex_lock(&segs->lock);
    if (seg->state == BC_SEG_DRAINING) segs_drain_remove(segs, seg);
    segs_put_free(segs, seg);
    pthread_mutex_unlock(&segs->lock);
}

/* A segment out of every queue whose items are all gone: free now, or
 * when its last pin goes. */
static void
segs_finish(bc_segs_t *segs, bc_seg_t *seg)
{
    uint32_t old = atomic_fetch_or_explicit(&seg->pins, BC_SEG_PIN_FREEABLE,
                                            memory_order_acq_rel);
    if ((old & BC_SEG_PIN_COUNT) == 0) {
        segs_put_free(segs, seg);
        return;
    }
    seg->state = BC_SEG_DRAINING;
    seg->next = segs->draining;
    segs->draining = seg;
    segs->draining_bytes += seg->charge;
}

void
do_segs_reap(bc_segs_t *segs, bc_seg_t *seg)
{
    /* (an OPEN large item is its writer's, in no queue yet) */
    if (seg->state != BC_SEG_QUEUED && (seg->state != BC_SEG_OPEN || seg->large)) return;
    /* Only from exactly no live item: a link racing with this sees the
     * mark and goes elsewhere, one before it keeps the segment. */
    uint32_t expect = 0;
    if (!atomic_compare_exchange_strong_explicit(&seg->live, &expect, BC_SEG_LIVE_RETIRED,
                                                 memory_order_acq_rel, memory_order_relaxed)) {
        return;
    }
    segs_queue_remove(segs, seg);
    segs_finish(segs, seg);
}

void
do_segs_unappend(bc_segs_t *segs, bc_seg_t *seg, const char *p, uint32_t size)
{
    if (seg->state != BC_SEG_OPEN || seg->base + seg->used != p + size) return;
    seg->used -= size;
    seg->nrec--;
    SEG_POISON(seg->base + seg->used, size);
    if (seg->used == 0) do_segs_reap(segs, seg);
}

/* ---- eviction ---- */

void
do_segs_queues(const bc_segs_t *segs, bc_evict_queues_t *q)
{
    memset(q, 0, sizeof(*q));
    for (unsigned i = 0; i < segs->nqueues; i++) {
        q->bytes[i] = segs->queues[i].bytes;
        q->evictable[i] = segs->queues[i].tail != NULL;
    }
}

bc_seg_t *
do_segs_take_tail(bc_segs_t *segs, unsigned q)
{
    /* BEHAVIOR: a pinned segment is evicted like any other -- its memory
     * waits for the readers -- but only while such waiting segments hold
     * less than 1/SEGS_DRAIN_SHARE of the memory.  Past that, pinned
     * segments are passed over (their items stay, as the old engine kept
     * a victim a reader held) and the next one is taken: readers that
     * hold on (a client that does not read its replies) cannot make a
     * segment's worth of dead memory out of each value they hold. */
    uint64_t cap = segs_limit(segs) / SEGS_DRAIN_SHARE;
    if (cap < 2ull * segs->seg_size) cap = 2ull * segs->seg_size;
    bc_seg_t *s = segs->queues[q].tail;
    for (uint32_t i = 0; s != NULL; i++, s = s->prev) {
        if (i == SEGS_PINNED_SCAN) return NULL;
        bool pinned = (atomic_load_explicit(&s->pins, memory_order_acquire) &
                       BC_SEG_PIN_COUNT) != 0;
        if (!pinned || segs->draining_bytes + s->charge <= cap) break;
        segs->passed_pinned++;
    }
    if (s == NULL) return NULL;
    segs_queue_remove(segs, s);
    s->state = BC_SEG_EVICTING;
    atomic_fetch_or_explicit(&s->live, BC_SEG_LIVE_RETIRED, memory_order_acq_rel);
    segs->evicted_segs++;
    return s;
}

bc_seg_t *
do_segs_take_sparse(bc_segs_t *segs, uint32_t scan)
{
    if (segs_available(segs) < 2) return NULL;
    if (scan > segs->nseg) scan = segs->nseg;
    for (uint32_t i = 0; i < scan; i++) {
        bc_seg_t *s = &segs->segs[segs->compact_cursor];
        segs->compact_cursor = (segs->compact_cursor + 1) % segs->nseg;
        if (s->state != BC_SEG_QUEUED || s->nrec == 0) continue;
        uint32_t live = atomic_load_explicit(&s->live, memory_order_relaxed) & BC_SEG_LIVE_COUNT;
        if ((uint64_t)live * 4 >= (uint64_t)s->nrec * 3) continue;
        segs_queue_remove(segs, s);
        s->state = BC_SEG_EVICTING;
        atomic_fetch_or_explicit(&s->live, BC_SEG_LIVE_RETIRED, memory_order_acq_rel);
        return s;
    }
    return NULL;
}

void
do_segs_requeue(bc_segs_t *segs, bc_seg_t *seg, unsigned q)
{
    atomic_fetch_and_explicit(&seg->live, ~BC_SEG_LIVE_RETIRED, memory_order_relaxed);
    seg->state = BC_SEG_QUEUED;
    segs_queue_push_head(segs, seg, q);
    segs->evicted_segs--;
}

void
do_segs_evicted(bc_segs_t *segs, bc_seg_t *seg)
{
    segs_finish(segs, seg);
}
