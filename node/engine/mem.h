/*
 * mem.h -- how the node's process asks glibc for memory: item memory
 * handed back to the system, and preallocation (-L).
 *
 * Items are plain malloc allocations (cache.c).  This module sets the
 * allocator's policy once, at start, before any thread exists, and says
 * when the periodic trim may run.  See mem.c for the why.
 */
#ifndef BC_NODE_MEM_H
#define BC_NODE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Sets the allocator's policy for the whole process.  Call it once, before
 * any thread is started (threads keep the arena they first used).
 *
 * prealloc == false: values above 64 KiB get their own mapping (they go
 * back to the system when freed) and the periodic trim returns free heap
 * pages (bc_node_mem_trim).
 *
 * prealloc == true (-L): the same, except that every thread allocates from
 * the one main heap, which bc_node_mem_prealloc then grows, and that heap
 * is never trimmed.
 */
void bc_node_mem_policy(bool prealloc);

/*
 * Grows the main heap by `bytes` and touches every page of it now; that
 * memory stays with the process, so storing an item never waits for the
 * kernel to find and zero a fresh page.  Call it from the main thread,
 * after bc_node_mem_policy(true) and before the cache is created.
 *
 * Returns the bytes preallocated: less than asked when malloc refused part
 * of it (logged), 0 without the -L policy.  Writes the time it took to
 * *took_ms when took_ms is not NULL.
 */
size_t bc_node_mem_prealloc(size_t bytes, int64_t *took_ms);

/*
 * Returns free heap pages to the system (malloc_trim) unless the memory
 * was preallocated.  Called by the expiry thread every few seconds.
 */
void bc_node_mem_trim(void);

/* The bytes bc_node_mem_prealloc preallocated (0: none; /stats shows it). */
size_t bc_node_mem_preallocated(void);

/* Internal (tests): how much of `bytes` -L touches when the system can
 * give `available` bytes (MemAvailable; 0: unknown, no cap): at most nine
 * tenths of that, so that a memory limit larger than the machine ends in
 * a warning at start rather than in the kernel's OOM killer. */
size_t bc__mem_prealloc_cap(size_t bytes, uint64_t available);

#endif /* BC_NODE_MEM_H */
