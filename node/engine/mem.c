/*
 * mem.c -- see mem.h: the node's policy towards glibc's malloc.
 *
 * MEMORY RETURNED TO THE SYSTEM (the default)
 *   Items are plain malloc allocations.  glibc keeps freed heap memory for
 *   reuse, so when the mix of value sizes shifts (many small items evicted
 *   to make room for large ones) the process could hold free-but-unusable
 *   heap pages and its RSS grow well past -m.  Two measures keep RSS close
 *   to the accounted memory: values above 64 KiB are allocated with their
 *   own mmap (M_MMAP_THRESHOLD pinned; glibc would otherwise raise it
 *   dynamically) and go back to the system the moment they are freed, and
 *   the expiry thread calls bc_node_mem_trim every few seconds so free
 *   pages inside the heap are released too.  A bucket that migrates away
 *   thus shows as a smaller RSS within seconds.
 *
 * PREALLOCATION (-L, cache.prealloc)
 *   BACKGROUND: the first write to a page the process has never touched
 *   traps into the kernel, which finds a free page, zeroes it and maps it.
 *   On the destination of a migration every byte received lands in such
 *   memory: in a profile of a migration into a new node the kernel zeroing
 *   pages (clear_page_erms) was 62% of the import threads' time, and each
 *   thread's own arena grows its heap with one mprotect(2) per growth,
 *   which takes the process's mmap lock for writing and stalls the other
 *   threads' page faults.  A node started to take buckets is exactly the
 *   node that stores hundreds of megabytes at once into fresh memory.
 *
 *   BEHAVIOR: with -L the node touches its whole memory limit at start, as
 *   memcached -L preallocates its slabs and a JVM with AlwaysPreTouch its
 *   heap, and keeps it:
 *
 *     mallopt(M_ARENA_MAX, 1)         every thread allocates from the main
 *                                     heap -- the one that is preallocated
 *     mallopt(M_TRIM_THRESHOLD, -1)   free() never gives the top back
 *     grow the heap by -m in 16 MiB pieces (malloc with the mmap threshold
 *     raised for the moment), write one byte per page (a thread per core), free them in reverse
 *     order so they merge into one free top chunk; restore the threshold
 *     bc_node_mem_trim does nothing
 *
 *   Items are then carved out of pages that are already there.  The cost
 *   moves to the start (about half a second per GiB and core, more on a VM whose
 *   host backs memory lazily), before the node registers, so a node takes
 *   no bucket until it is ready.  The price: RSS stays at -m or above even
 *   when the node holds little (a bucket that migrates away leaves its
 *   memory for reuse, not to the system), and one arena means the worker
 *   threads share one allocator lock (glibc's per-thread caches still serve
 *   most small allocations without it).  Values above 64 KiB keep their own
 *   mappings either way.
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

#define MEM_MMAP_THRESHOLD    (64 * 1024)           /* larger values: own mapping */
#define MEM_PREALLOC_PIECE    ((size_t)16 << 20)    /* heap growth per malloc at -L */
#define MEM_PIECE_THRESHOLD   (32 << 20)            /* mmap threshold while growing */
#define MEM_TOUCH_THREADS     8                     /* threads touching the pieces, at most */

static _Atomic size_t mem_preallocated;

typedef struct mem_touch {
    char **pieces;
    size_t n;
    size_t step;                   /* the page size */
    _Atomic size_t next;           /* the next piece to touch */
} mem_touch_t;

/* Writes one byte per page of pieces, taking the next untouched piece
 * until none is left (one such loop per core). */
static void *
mem_touch_main(void *arg)
{
    mem_touch_t *t = arg;
    for (size_t i; (i = atomic_fetch_add(&t->next, 1)) < t->n;) {
        volatile char *p = t->pieces[i];
        for (size_t off = 0; off < MEM_PREALLOC_PIECE; off += t->step) p[off] = 0;
    }
    return NULL;
}

/* Grows the main heap by about `bytes`, touches it, gives it back as the
 * free top chunk.  Returns the bytes touched.  The kernel zeroes each new
 * page on the faulting core, so the pieces are touched by one thread per
 * online core (MEM_TOUCH_THREADS at most), all joined before returning:
 * a large -L then starts in a fraction of the time. */
static size_t
mem_prealloc(size_t bytes)
{
    size_t n = (bytes + MEM_PREALLOC_PIECE - 1) / MEM_PREALLOC_PIECE;
    char **pieces = calloc(n, sizeof(*pieces));
    if (pieces == NULL) return 0;
    long pagesize = sysconf(_SC_PAGESIZE);
    size_t got = 0;

    mallopt(M_MMAP_THRESHOLD, MEM_PIECE_THRESHOLD);
    for (; got < n; got++) {
        pieces[got] = malloc(MEM_PREALLOC_PIECE);
        if (pieces[got] == NULL) break;
    }
    mem_touch_t t = {.pieces = pieces, .n = got,
                     .step = pagesize > 0 ? (size_t)pagesize : 4096u};
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

    /* newest first: each piece then borders the top chunk and merges into it */
    for (size_t i = got; i-- > 0;) free(pieces[i]);
    free(pieces);
    mallopt(M_MMAP_THRESHOLD, MEM_MMAP_THRESHOLD);
    if (got < n) {
        log_warn("-L: preallocated only %zu of %zu MiB (malloc refused the rest)",
                 got * (MEM_PREALLOC_PIECE >> 20), n * (MEM_PREALLOC_PIECE >> 20));
    }
    return got * MEM_PREALLOC_PIECE;
}

static bool mem_prealloc_policy;

void
bc_node_mem_policy(bool prealloc)
{
    /* Pinning the threshold also stops glibc raising it dynamically. */
    mallopt(M_MMAP_THRESHOLD, MEM_MMAP_THRESHOLD);
    if (prealloc) {
        mallopt(M_ARENA_MAX, 1);
        /* mallopt takes an int that glibc keeps as a size_t: -1 is "never".
         * INT_MAX would still trim a top above 2 GiB, that is, undo a
         * preallocation of more than that at its first free. */
        mallopt(M_TRIM_THRESHOLD, -1);
    }
    mem_prealloc_policy = prealloc;
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
bc_node_mem_prealloc(size_t bytes, int64_t *took_ms)
{
    int64_t t0 = bc_time_mono_ms();
    size_t done = 0;
    if (mem_prealloc_policy && bytes > 0) {
        uint64_t avail = mem_available();
        size_t want = bc__mem_prealloc_cap(bytes, avail);
        if (want < bytes) {
            log_warn("-L: the memory limit is %zu MiB but the system has %llu MiB available: "
                     "preallocating %zu MiB (the node may still be killed for memory when it "
                     "fills)", bytes >> 20, (unsigned long long)(avail >> 20), want >> 20);
        }
        done = mem_prealloc(want);
    }
    atomic_store(&mem_preallocated, done);
    if (took_ms != NULL) *took_ms = bc_time_mono_ms() - t0;
    return done;
}

void
bc_node_mem_trim(void)
{
    if (atomic_load_explicit(&mem_preallocated, memory_order_relaxed) == 0) malloc_trim(0);
}

size_t
bc_node_mem_preallocated(void)
{
    return atomic_load(&mem_preallocated);
}
