/*
 * mem.h -- how the node's process asks for memory: glibc's malloc policy
 * for what is not in the cache's arena, and touching memory ahead of use
 * (-L).
 *
 * Items live in the cache's segment arena (engine/seg_int.h), a mapping of its
 * own; only large items' blocks, the bucket tables and the rest of the
 * process use malloc.  See mem.c for the why.
 */
#ifndef BC_NODE_MEM_H
#define BC_NODE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Sets the allocator's policy for the whole process: blocks above 64 KiB
 * (large items' values) get a mapping of their own, which goes back to the
 * system when freed.  Call it once, before any thread is started.
 */
void bc_node_mem_policy(void);

/*
 * Writes one byte per page of [base, base + bytes) -- at most nine tenths
 * of the memory the system has available -- on a thread per core, so that
 * the kernel backs it now rather than at first use.  Returns the bytes
 * touched; writes the time it took to *took_ms (NULL allowed).  The total
 * is what bc_node_mem_preallocated reports.
 */
size_t bc_node_mem_prefault(void *base, size_t bytes, int64_t *took_ms);

/* Writes one byte per page of [base, base + bytes) on the calling thread:
 * the kernel backs those pages now (zeroed) rather than at first use. */
void bc_node_mem_touch(void *base, size_t bytes);

/* The bytes bc_node_mem_prefault touched (0: none; /stats shows it). */
size_t bc_node_mem_preallocated(void);

/* Internal (tests): how much of `bytes` -L touches when the system can
 * give `available` bytes (MemAvailable; 0: unknown, no cap): at most nine
 * tenths of that, so that a memory limit larger than the machine ends in
 * a warning at start rather than in the kernel's OOM killer. */
size_t bc__mem_prealloc_cap(size_t bytes, uint64_t available);

#endif /* BC_NODE_MEM_H */
