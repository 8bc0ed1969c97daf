/*
 * log.h -- what log.c adds to bc_log.h inside the shipped library.
 *
 * DEPENDENCIES
 *   client.c calls it when a client is created; log.c calls nothing else
 *   of the client.  Outside the shipped library (the unit tests' core
 *   library) log.c is not linked and client.c's weak no-op stands in.
 */
#ifndef BC_CLIENT_LOG_H
#define BC_CLIENT_LOG_H

/* Points the ZooKeeper C client's own log at the library's sink, at DEBUG
 * level (once per process; later calls do nothing). */
void bc__log_capture_zk(void);

#endif
