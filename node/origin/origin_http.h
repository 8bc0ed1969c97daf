/*
 * origin_http.h -- read-through for the admin port's GET /v1/keys/{key}.
 *
 * WHAT IT DOES
 *   A GET that misses for a key with an origin starts (or joins) the
 *   key's fill and parks the HTTP request (bc_http_park: no thread is
 *   held) in one of a fixed number of wait slots; the fill's completion
 *   wakes the admin server, and the request's next run answers it:
 *
 *     the value                 200, as a cache hit
 *     the origin has no such key 404 {"error": ..., "origin": "not_found"}
 *     timeout                   504 {"error": ..., "origin": "timeout"}
 *     overloaded, breaker open  503 {"error": ..., "origin": "overloaded" | "breaker_open"}
 *     any other failure         502 {"error": ..., "origin": "<kind>", "status": <origin's>}
 *
 *   The slot's id rides in the request's park_state[BC_ORIGIN_HTTP_PARK_SLOT].
 *   A slot whose request never came back (its client went away) is
 *   freed, with the item it held, BC_ORIGIN_HTTP_KEEP_MS after its fill
 *   completed.
 *
 * THREADS
 *   Everything runs on the admin (MHD) thread, the client's thread.
 */
#ifndef BC_ORIGIN_HTTP_H
#define BC_ORIGIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_httpd.h"
#include "origin/origin.h"

/* park_state[] index this module uses (admin.c's writes use 0..2). */
#define BC_ORIGIN_HTTP_PARK_SLOT 3
#define BC_ORIGIN_HTTP_KEEP_MS   10000

typedef struct bc_origin_http bc_origin_http_t;

/*
 * Wait slots for at most nslots parked GETs (the admin port's connection
 * limit is the natural size); completions wake httpd (borrowed, must
 * outlive it).  Errors: BC_ENOMEM.
 */
bc_status_t bc_origin_http_create(bc_origin_t *o, bc_httpd_t *httpd, uint32_t nslots,
                                  bc_origin_http_t **out);
/* Cancels every wait and frees (on the admin thread, or once it is
 * stopped).  NULL is accepted. */
void bc_origin_http_destroy(bc_origin_http_t *oh);

/*
 * The GET of key (hash = bc_hash_key), after its route check.  Returns
 * true when the request is answered or parked: the handler returns
 * *result.  Returns false with *item the value to send as a hit (a
 * reference the caller releases), or NULL for a plain 404.
 */
bool bc_origin_http_get(bc_origin_http_t *oh, bc_http_req_t *req, const char *key, size_t nkey,
                        uint32_t hash, bc_item_t **item, enum MHD_Result *result);

#endif
