/*
 * mem.c -- see mem.h: the node's policy towards glibc's malloc, and
 * touching the cache's memory ahead of use.
 *
 * WHAT MALLOC STILL HOLDS
 *   Items are carved out of the cache's segment arena (engine/seg_int.h), an
 *   mmap of its own that glibc never sees, and memory goes back to the
 *   system a segment at a time (madvise) as the cache's budget dictates.
 *   What malloc holds is small beside it -- bucket slot arrays (a few
 *   bytes per item), the S3-FIFO ghost, connection buffers -- plus large
 *   items (a value of an eighth of a segment or more).  Those are
 *   allocated with their own mmap (M_MMAP_THRESHOLD pinned at 64 KiB;
 *   glibc would otherwise raise it dynamically) and return to the system
 *   the moment they are freed.  So RSS follows the cache's accounting with
 *   no periodic malloc_trim: the heap never holds item memory a shift in
 *   value sizes could strand.
 *
 * PREALLOCATION (-L, cache.prealloc)
 *   BACKGROUND: the first write to a page the process has never touched
 *   traps into the kernel, which finds a free page, zeroes it and maps it.
 *   On the destination of a migration every byte received lands in such
 *   memory: in a profile of a migration into a new node the kernel zeroing
 *   pages (clear_page_erms) was 62% of the import threads' time.  A node
 *   started to take buckets is exactly the node that stores hundreds of
 *   megabytes at once into fresh memory.
 *
 *   BEHAVIOR: with -L the cache touches its segments at start (the budget's
 *   worth: -m less the engine's own tables), as memcached -L preallocates
 *   its slabs, on a thread per core, and keeps them backed while they are
 *   free.  The cost moves to the start (about half a second per GiB and
 *   core, more on a VM whose host backs memory lazily), before the node
 *   registers, so a node takes no bucket until it is ready.  The price:
 *   RSS stays at -m even when the node holds little.
 *
 *   Under AddressSanitizer malloc is the sanitizer's own and mallopt has
 *   no effect; the pages are still touched, which costs only time.
 */
#include "engine/mem.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bc_log.h"
#include "bc_time.h"

#define MEM_MMAP_THRESHOLD    (64 * 1024)           /* larger blocks: own mapping */
#define MEM_TOUCH_PIECE       ((size_t)16 << 20)    /* one thread's share at a time */
#define MEM_TOUCH_THREADS     8                     /* threads touching, at most */

static _Atomic size_t mem_preallocated;

typedef struct mem_touch {
    char *base;
    size_t bytes;
    _Atomic size_t next;           /* offset of the next piece to touch */
} mem_touch_t;

void
bc_node_mem_touch(void *base, size_t bytes)
{
    long pagesize = sysconf(_SC_PAGESIZE);
    size_t step = pagesize > 0 ? (size_t)pagesize : 4096u;
    volatile char *p = base;
    for (size_t i = 0; i < bytes; i += step) p[i] = 0;
}

/* Touches the next untouched piece until none is left (one such loop per
 * core). */
static void *
mem_touch_main(void *arg)
{
    mem_touch_t *t = arg;
    for (size_t off; (off = atomic_fetch_add(&t->next, MEM_TOUCH_PIECE)) < t->bytes;) {
        size_t end = off + MEM_TOUCH_PIECE < t->bytes ? off + MEM_TOUCH_PIECE : t->bytes;
        bc_node_mem_touch((char *)t->base + off, end - off);
    }
    return NULL;
}

void
bc_node_mem_policy(void)
{
    /* Pinning the threshold also stops glibc raising it dynamically. */
    mallopt(M_MMAP_THRESHOLD, MEM_MMAP_THRESHOLD);
}

size_t
bc__mem_prealloc_cap(size_t bytes, uint64_t available)
{
    if (available == 0) return bytes;
    uint64_t cap = available / 10 * 9;
    return (uint64_t)bytes > cap ? (size_t)cap : bytes;
}

/* MemAvailable from /proc/meminfo, in bytes; 0 when it cannot be read. */
static uint64_t
mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL) return 0;
    char line[128];
    unsigned long long kib = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
    }
    fclose(f);
    return (uint64_t)kib * 1024u;
}

size_t
bc_node_mem_prefault(void *base, size_t bytes, int64_t *took_ms)
{
    int64_t t0 = bc_time_mono_ms();
    uint64_t avail = mem_available();
    size_t want = bc__mem_prealloc_cap(bytes, avail);
    if (want < bytes) {
        log_warn("-L: the memory limit is %zu MiB but the system has %llu MiB available: "
                 "preallocating %zu MiB (the node may still be killed for memory when it "
                 "fills)", bytes >> 20, (unsigned long long)(avail >> 20), want >> 20);
    }
    mem_touch_t t = {.base = base, .bytes = want};
    /* The kernel zeroes each new page on the faulting core: a thread per
     * online core (MEM_TOUCH_THREADS at most), all joined before returning. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nthreads = cores > 1 ? (size_t)cores : 1;
    if (nthreads > MEM_TOUCH_THREADS) nthreads = MEM_TOUCH_THREADS;
    pthread_t threads[MEM_TOUCH_THREADS];
    size_t started = 0;
    for (; started + 1 < nthreads; started++) {
        if (pthread_create(&threads[started], NULL, mem_touch_main, &t) != 0) break;
    }
    (void)mem_touch_main(&t);      /* this thread too; a thread not started is no loss */
    for (size_t i = 0; i < started; i++) pthread_join(threads[i], NULL);
    atomic_fetch_add(&mem_preallocated, want);
    if (took_ms != NULL) *took_ms = bc_time_mono_ms() - t0;
    return want;
}

size_t
bc_node_mem_preallocated(void)
{
    return atomic_load(&mem_preallocated);
}
