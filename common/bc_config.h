/*
 * bc_config.h -- configuration helpers shared by node, console and client.
 *
 * WHAT IT DOES
 *   Loads a JSON configuration file (with a size cap), reads typed fields out
 *   of it by dotted path ("admin.port"), and parses the value syntaxes every
 *   bucketcache program uses on its command line and in its files: integers
 *   with bounds, sizes with k/m/g suffixes (as memcached's -I), and
 *   host:port pairs.
 *
 * HOW
 *   The file is read whole (refused above max_bytes, so a wrong path such as
 *   a device or a huge log cannot exhaust memory) and parsed with cJSON.  The
 *   root must be an object.  Each getter looks a path up segment by segment;
 *   an absent field is not an error (the getter reports found = false and
 *   leaves the caller's default alone), a present field of the wrong type or
 *   out of range is.  Every error message names the file and the field, and
 *   shows what was found, so that a person can fix the file without reading
 *   the code:
 *
 *     node.json: field "admin.port": expected an integer 0..65535, got "abc"
 *
 *   bc_config_check_fields() rejects fields a program does not know, so a
 *   misspelt field ("admin.prot") is an error instead of a silently ignored
 *   setting.
 *
 * ERRORS
 *   Functions that can fail take (char *err, size_t err_len): on failure a
 *   NUL-terminated, complete sentence is written there (truncated to fit;
 *   err may be NULL when err_len is 0).  BC_ERRBUF_LEN is a good size.
 */
#ifndef BC_CONFIG_H
#define BC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "bc_status.h"

/* Size of an error buffer that holds any message produced here. */
#define BC_ERRBUF_LEN 512

/* Default cap on a configuration file's size. */
#define BC_CONFIG_MAX_FILE_BYTES (1024u * 1024u)

/* Longest host name or address accepted (RFC 1035 names are at most 253). */
#define BC_HOST_MAX 256

typedef struct bc_config_doc {
    char *name;                /* the file name as given, used in messages */
    cJSON *root;               /* always a JSON object */
} bc_config_doc_t;

typedef struct bc_hostport {
    char host[BC_HOST_MAX];    /* without brackets for IPv6 literals */
    uint16_t port;
} bc_hostport_t;

/* Writes a formatted message into err (err_len bytes; nothing when err is
 * NULL or err_len is 0).  The one way every config parser reports. */
void bc_config_errf(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- documents ---- */

/*
 * Reads and parses the file at path.  max_bytes = 0 means
 * BC_CONFIG_MAX_FILE_BYTES.  On BC_OK, *out is owned by the caller and freed
 * with bc_config_free().  path is copied.
 * Errors: BC_EIO (cannot open or read; the message has strerror),
 *         BC_ETOOLARGE (file above max_bytes),
 *         BC_ECONFIG (not JSON, with line and column; root not an object),
 *         BC_ENOMEM.
 */
bc_status_t bc_config_load(const char *path, size_t max_bytes, bc_config_doc_t **out,
                           char *err, size_t err_len);

/*
 * As bc_config_load, from memory: text[0..len) need not be NUL-terminated.
 * name is what messages call the document (copied).
 * Errors: BC_ECONFIG, BC_ENOMEM.
 */
bc_status_t bc_config_parse(const char *name, const char *text, size_t len,
                            bc_config_doc_t **out, char *err, size_t err_len);

/* Frees the document and everything it holds.  NULL is accepted. */
void bc_config_free(bc_config_doc_t *doc);

/*
 * Looks up a dotted path ("admin.port"; "" or NULL is the root).  Returns
 * the node (borrowed from doc) or NULL when absent.
 * Errors: BC_ECONFIG when a path prefix exists but is not an object
 *         (field "admin": expected an object); *out is NULL then.
 *         BC_EINVAL for a malformed path (empty segment, more than 8
 *         segments, a segment of 128 bytes or more): a programming error.
 */
bc_status_t bc_config_lookup(const bc_config_doc_t *doc, const char *path, const cJSON **out,
                             char *err, size_t err_len);

/*
 * Fails if the object at section_path (NULL or "" = the root) has a member
 * whose name is not in allowed (a NULL-terminated list).  An absent section
 * is fine.  Errors: BC_ECONFIG (unknown field "admin.prot"; the section is
 * not an object).
 */
bc_status_t bc_config_check_fields(const bc_config_doc_t *doc, const char *section_path,
                                   const char *const *allowed, char *err, size_t err_len);

/* ---- typed getters ----
 *
 * Each returns BC_OK and sets *found = false when the field is absent
 * (*out untouched), BC_OK with *found = true and *out set when it is valid,
 * and BC_ECONFIG with a message naming file and field otherwise.  found may
 * be NULL.  JSON null counts as a value of the wrong type, not as absent.
 */

/* A JSON number with no fractional part, within [min, max]. */
bc_status_t bc_config_get_int(const bc_config_doc_t *doc, const char *path, int64_t min,
                              int64_t max, int64_t *out, bool *found, char *err,
                              size_t err_len);

bc_status_t bc_config_get_bool(const bc_config_doc_t *doc, const char *path, bool *out,
                               bool *found, char *err, size_t err_len);

/*
 * A string of at most buf_size - 1 bytes with no NUL or control characters,
 * copied into buf.  allow_empty = false rejects "".
 */
bc_status_t bc_config_get_string(const bc_config_doc_t *doc, const char *path, char *buf,
                                 size_t buf_size, bool allow_empty, bool *found, char *err,
                                 size_t err_len);

/*
 * A string equal (case-sensitively) to one of choices (NULL-terminated);
 * *out_index receives its index.
 */
bc_status_t bc_config_get_enum(const bc_config_doc_t *doc, const char *path,
                               const char *const *choices, int *out_index, bool *found,
                               char *err, size_t err_len);

/*
 * A size: either a JSON integer (in units of `unit` bytes) or a string
 * accepted by bc_parse_size() with the same unit; the result in bytes must
 * be within [min, max].
 */
bc_status_t bc_config_get_size(const bc_config_doc_t *doc, const char *path, uint64_t unit,
                               uint64_t min, uint64_t max, uint64_t *out, bool *found,
                               char *err, size_t err_len);

/* A string accepted by bc_parse_hostport(default_port). */
bc_status_t bc_config_get_hostport(const bc_config_doc_t *doc, const char *path,
                                   uint16_t default_port, bc_hostport_t *out, bool *found,
                                   char *err, size_t err_len);

/* ---- value syntaxes (command line and files) ---- */

/*
 * Strict decimal integer: optional '-', digits, nothing else (no spaces, no
 * '+', no hex), within [min, max].  Errors: BC_EINVAL (syntax or range).
 */
bc_status_t bc_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* Strict unsigned decimal of exactly len bytes (digits only: no sign, no
 * spaces; s need not be NUL-terminated), at most max.  For HTTP query and
 * header values.  Returns false on syntax, overflow or range. */
bool bc_parse_u64n(const char *s, size_t len, uint64_t max, uint64_t *out);

/*
 * A size: decimal digits followed by an optional suffix k, m or g (either
 * case, optionally followed by 'b' or "ib": "64m", "1MiB", "512KB") meaning
 * 2^10, 2^20, 2^30 bytes.  Without a suffix the number is in units of `unit`
 * bytes (1 for memcached's -I, 1 MiB for -m).  Errors: BC_EINVAL (syntax,
 * zero unit), BC_ETOOLARGE (overflows 64 bits).
 */
bc_status_t bc_parse_size(const char *s, uint64_t unit, uint64_t *out);

/*
 * "host:port", "[ipv6]:port", or -- when default_port is non-zero -- just
 * "host" / "[ipv6]" / a bare IPv6 literal with no port.  The port is 1..65535.
 * Errors: BC_EINVAL (empty host, host too long, bad port, stray brackets).
 */
bc_status_t bc_parse_hostport(const char *s, uint16_t default_port, bc_hostport_t *out);

/*
 * Writes a short, printable rendering of a JSON value for "got ..." in
 * messages: strings quoted with control bytes escaped and cut at ~40 bytes,
 * numbers as numbers, "an object", "an array", "true", "null".
 */
void bc_config_describe(const cJSON *item, char *buf, size_t buf_size);

/* The same for a raw command-line string: quoted, escaped and cut. */
void bc_config_quote(const char *s, char *buf, size_t buf_size);

#endif
