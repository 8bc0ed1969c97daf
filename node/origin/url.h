/*
 * url.h -- an origin's URL template, and the one rule that turns a cache
 * key into the URL of its resource.
 *
 * WHAT IT DOES
 *   A template is an http:// or https:// URL with exactly one placeholder
 *   after the host, "{key}" or "{key_escaped}":
 *
 *     http://resize:8000/v1/{key}          key "img/cat 1.png"
 *       -> http://resize:8000/v1/img/cat%201.png
 *     http://resize:8000/get?k={key_escaped}
 *       -> http://resize:8000/get?k=img%2Fcat%201.png
 *
 * THE ENCODING RULE (docs/origin.md)
 *   Every key byte is sent as itself when it is an RFC 3986 unreserved
 *   character (A-Z a-z 0-9 - . _ ~), and as %XX (upper-case hex) otherwise:
 *   '?', '&', '=', '#', '%', '+', ':', space, every byte >= 0x80 (UTF-8 or
 *   not) -- so the origin, decoding its path once, gets exactly the key,
 *   and the same key is always the same URL (never normalised into
 *   another resource, never cut at a '?' into a path and a query).
 *
 *   '/' is the one choice: {key} keeps it, {key_escaped} sends %2F.
 *   Keys in the seed's use case are paths of images ("img/png/001"), so
 *   {key} maps them onto the origin's path segments, which is what a
 *   resize service routes on.  A key with empty or dot segments ("a//b",
 *   "a/../b") is still sent byte for byte (libcurl is told not to squash
 *   them), but a web server behind may normalise such paths; templates
 *   whose keys may hold arbitrary slashes use {key_escaped}, the whole key
 *   as one segment.
 *
 * THREADS
 *   Pure functions.
 */
#ifndef BC_ORIGIN_URL_H
#define BC_ORIGIN_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "bc_status.h"
#include "engine/item.h"

/* Longest template, NUL included. */
#define BC_ORIGIN_URL_MAX 1024u
/* Room for any URL a template and a key make, NUL included. */
#define BC_ORIGIN_URL_BUF (BC_ORIGIN_URL_MAX + 3u * BC_KEY_MAX_LEN + 1u)

/*
 * Checks a template: http:// or https:// (either case), a host, exactly
 * one placeholder after the host, no spaces, control or non-ASCII bytes,
 * no '#', shorter than BC_ORIGIN_URL_MAX.  Errors: BC_EINVAL with the
 * reason in err.
 */
bc_status_t bc_origin_template_check(const char *tmpl, char *err, size_t err_len);

/*
 * Percent-encodes key[0..nkey) into out (room for 3 * nkey bytes; no NUL
 * written) by the rule above; '/' is kept when keep_slash.  Returns the
 * encoded length.
 */
size_t bc_origin_key_encode(const char *key, size_t nkey, bool keep_slash, char *out);

/*
 * The URL of key under a checked template, NUL-terminated, into out (size
 * bytes; BC_ORIGIN_URL_BUF is always enough).  Returns its length, or 0
 * when the template has no placeholder or out is too small.
 */
size_t bc_origin_url_build(const char *tmpl, const char *key, size_t nkey, char *out,
                           size_t size);

#endif
