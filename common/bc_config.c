/*
 * bc_config.c -- JSON configuration files and value syntaxes (see
 * bc_config.h).
 *
 * HOW
 *   bc_config_load() stats and reads the file into one buffer no larger than
 *   the cap, then hands it to bc_config_parse(), which calls cJSON with an
 *   explicit length (the file need not end in NUL and may not contain one)
 *   and turns cJSON's error position into "line L, column C".
 *
 *   Getters share one shape:
 *
 *      lookup(path) --absent--> found = false, BC_OK
 *           |
 *        present --wrong type / range--> "FILE: field "PATH": expected X, got Y"
 *           |
 *         valid --> *out, found = true, BC_OK
 *
 *   "got Y" is rendered by bc_config_describe(), which never prints more
 *   than a few dozen bytes and escapes control characters, so a hostile or
 *   binary file cannot make log lines huge or garble a terminal.
 */
#include "bc_config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest part of a string value quoted back in an error message. */
#define DESCRIBE_MAX_CHARS 40

/* Deepest dotted path accepted by lookups ("a.b.c" is 3). */
#define PATH_MAX_SEGMENTS 8
#define PATH_SEGMENT_MAX 128

void
bc_config_errf(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)bc_vfail(err, err_len, BC_EINVAL, fmt, ap);
    va_end(ap);
}

/* ---- rendering values for messages ---- */

/* Appends s[0..n) quoted and escaped to buf, cutting long strings with "...". */
static void
quote_bytes(const char *s, size_t n, char *buf, size_t buf_size)
{
    size_t o = 0;
    size_t shown = n > DESCRIBE_MAX_CHARS ? DESCRIBE_MAX_CHARS : n;

    if (buf_size == 0) return;
#define PUT(c) do { if (o + 1 < buf_size) buf[o++] = (char)(c); } while (0)
    PUT('"');
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            PUT('\\');
            PUT(c);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            for (const char *e = esc; *e; e++) PUT(*e);
        } else {
            PUT(c);
        }
    }
    if (shown < n) {
        PUT('.');
        PUT('.');
        PUT('.');
    }
    PUT('"');
#undef PUT
    buf[o] = '\0';
}

void
bc_config_quote(const char *s, char *buf, size_t buf_size)
{
    if (s == NULL) s = "";
    quote_bytes(s, strlen(s), buf, buf_size);
}

void
bc_config_describe(const cJSON *item, char *buf, size_t buf_size)
{
    if (buf_size == 0) return;
    if (item == NULL) {
        snprintf(buf, buf_size, "nothing");
    } else if (cJSON_IsString(item)) {
        bc_config_quote(item->valuestring, buf, buf_size);
    } else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        if (isfinite(d) && d == floor(d) && fabs(d) < 1e15) {
            snprintf(buf, buf_size, "%" PRId64, (int64_t)d);
        } else {
            snprintf(buf, buf_size, "%g", d);
        }
    } else if (cJSON_IsBool(item)) {
        snprintf(buf, buf_size, "%s", cJSON_IsTrue(item) ? "true" : "false");
    } else if (cJSON_IsNull(item)) {
        snprintf(buf, buf_size, "null");
    } else if (cJSON_IsObject(item)) {
        snprintf(buf, buf_size, "an object");
    } else if (cJSON_IsArray(item)) {
        snprintf(buf, buf_size, "an array");
    } else {
        snprintf(buf, buf_size, "an unsupported value");
    }
}

/* "FILE: field "PATH": expected WHAT, got GOT" */
static bc_status_t
field_error(const bc_config_doc_t *doc, const char *path, const cJSON *item, char *err,
            size_t err_len, const char *expected_fmt, ...)
    __attribute__((format(printf, 6, 7)));

static bc_status_t
field_error(const bc_config_doc_t *doc, const char *path, const cJSON *item, char *err,
            size_t err_len, const char *expected_fmt, ...)
{
    char expected[256];
    char got[DESCRIBE_MAX_CHARS * 4 + 16];
    va_list ap;

    va_start(ap, expected_fmt);
    vsnprintf(expected, sizeof(expected), expected_fmt, ap);
    va_end(ap);
    bc_config_describe(item, got, sizeof(got));
    bc_config_errf(err, err_len, "%s: field \"%s\": expected %s, got %s", doc->name, path, expected,
                   got);
    return BC_ECONFIG;
}

/* ---- documents ---- */

/* Converts an offset in text to 1-based line and column. */
static void
offset_to_line_col(const char *text, size_t offset, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < offset; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

bc_status_t
bc_config_parse(const char *name, const char *text, size_t len, bc_config_doc_t **out,
                char *err, size_t err_len)
{
    const char *end = NULL;
    bc_config_doc_t *doc;
    cJSON *root;

    *out = NULL;
    if (name == NULL) name = "config";
    if (memchr(text, '\0', len) != NULL) {
        size_t line, col;
        offset_to_line_col(text, (size_t)((const char *)memchr(text, '\0', len) - text),
                           &line, &col);
        bc_config_errf(err, err_len, "%s: not valid JSON: NUL byte at line %zu, column %zu", name,
                       line, col);
        return BC_ECONFIG;
    }
    /* require_null_terminated = false: trailing garbage is checked below so
     * the message can point at it. */
    root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (root == NULL) {
        size_t off = (end != NULL && end >= text && end <= text + len) ? (size_t)(end - text)
                                                                        : len;
        size_t line, col;
        /* cJSON cannot tell "out of memory" from "syntax error"; an
         * allocation failure on a file capped at a megabyte is the
         * unlikely one. */
        offset_to_line_col(text, off, &line, &col);
        bc_config_errf(err, err_len, "%s: not valid JSON: syntax error at line %zu, column %zu",
                       name, line, col);
        return BC_ECONFIG;
    }
    if (end != NULL) {
        size_t off = (size_t)(end - text);
        while (off < len && isspace((unsigned char)text[off])) off++;
        if (off < len) {
            size_t line, col;
            offset_to_line_col(text, off, &line, &col);
            cJSON_Delete(root);
            bc_config_errf(err, err_len,
                           "%s: not valid JSON: unexpected text after the top-level value at "
                           "line %zu, column %zu", name, line, col);
            return BC_ECONFIG;
        }
    }
    if (!cJSON_IsObject(root)) {
        char got[64];
        bc_config_describe(root, got, sizeof(got));
        cJSON_Delete(root);
        bc_config_errf(err, err_len, "%s: expected a JSON object at the top level, got %s", name, got);
        return BC_ECONFIG;
    }
    doc = calloc(1, sizeof(*doc));
    if (doc == NULL || (doc->name = strdup(name)) == NULL) {
        free(doc);
        cJSON_Delete(root);
        bc_config_errf(err, err_len, "%s: out of memory", name);
        return BC_ENOMEM;
    }
    doc->root = root;
    *out = doc;
    return BC_OK;
}

bc_status_t
bc_config_load(const char *path, size_t max_bytes, bc_config_doc_t **out, char *err,
               size_t err_len)
{
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    bc_status_t status;
    int fd;

    *out = NULL;
    if (max_bytes == 0) max_bytes = BC_CONFIG_MAX_FILE_BYTES;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        bc_config_errf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return BC_EIO;
    }
    if (fstat(fd, &st) != 0) {
        bc_config_errf(err, err_len, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return BC_EIO;
    }
    if (S_ISDIR(st.st_mode)) {
        bc_config_errf(err, err_len, "%s: is a directory, expected a JSON file", path);
        close(fd);
        return BC_EIO;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_bytes) {
        bc_config_errf(err, err_len, "%s: file is %" PRIu64 " bytes, the limit is %zu", path,
                       (uint64_t)st.st_size, max_bytes);
        close(fd);
        return BC_ETOOLARGE;
    }
    /* Read up to max_bytes + 1 so that a pipe or a file growing underneath
     * is caught by the same cap as a regular file. */
    text = malloc(max_bytes + 1);
    if (text == NULL) {
        bc_config_errf(err, err_len, "%s: out of memory", path);
        close(fd);
        return BC_ENOMEM;
    }
    for (;;) {
        ssize_t n = read(fd, text + len, max_bytes + 1 - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            bc_config_errf(err, err_len, "%s: cannot read: %s", path, strerror(errno));
            free(text);
            close(fd);
            return BC_EIO;
        }
        if (n == 0) break;
        len += (size_t)n;
        if (len > max_bytes) {
            bc_config_errf(err, err_len, "%s: file is larger than the limit of %zu bytes", path,
                           max_bytes);
            free(text);
            close(fd);
            return BC_ETOOLARGE;
        }
    }
    close(fd);
    status = bc_config_parse(path, text, len, out, err, err_len);
    free(text);
    return status;
}

void
bc_config_free(bc_config_doc_t *doc)
{
    if (doc == NULL) return;
    cJSON_Delete(doc->root);
    free(doc->name);
    free(doc);
}

bc_status_t
bc_config_lookup(const bc_config_doc_t *doc, const char *path, const cJSON **out, char *err,
                 size_t err_len)
{
    const cJSON *node = doc->root;
    const char *p = path;
    char prefix[PATH_SEGMENT_MAX * PATH_MAX_SEGMENTS];
    size_t prefix_len = 0;
    int segments = 0;

    *out = NULL;
    if (path == NULL || *path == '\0') {
        *out = node;
        return BC_OK;
    }
    while (*p != '\0') {
        char segment[PATH_SEGMENT_MAX];
        const char *dot = strchr(p, '.');
        size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);

        if (n == 0 || n >= sizeof(segment) || ++segments > PATH_MAX_SEGMENTS) {
            bc_config_errf(err, err_len, "%s: invalid field path \"%s\"", doc->name, path);
            return BC_EINVAL;
        }
        memcpy(segment, p, n);
        segment[n] = '\0';
        if (!cJSON_IsObject(node)) {
            /* Only reachable for a prefix: the root is always an object. */
            char got[64];
            bc_config_describe(node, got, sizeof(got));
            bc_config_errf(err, err_len, "%s: field \"%.*s\": expected an object, got %s", doc->name,
                           (int)prefix_len, prefix, got);
            return BC_ECONFIG;
        }
        node = cJSON_GetObjectItemCaseSensitive(node, segment);
        if (node == NULL) return BC_OK;
        if (prefix_len + n + 2 < sizeof(prefix)) {
            if (prefix_len > 0) prefix[prefix_len++] = '.';
            memcpy(prefix + prefix_len, segment, n);
            prefix_len += n;
        }
        p += n;
        if (*p == '.') p++;
    }
    *out = node;
    return BC_OK;
}

bc_status_t
bc_config_check_fields(const bc_config_doc_t *doc, const char *section_path,
                       const char *const *allowed, char *err, size_t err_len)
{
    const cJSON *section;
    const cJSON *member;
    bc_status_t status;
    bool root = section_path == NULL || *section_path == '\0';

    status = bc_config_lookup(doc, section_path, &section, err, err_len);
    if (status != BC_OK || section == NULL) return status;
    if (!cJSON_IsObject(section)) {
        return field_error(doc, section_path, section, err, err_len, "an object");
    }
    cJSON_ArrayForEach(member, section) {
        char name[DESCRIBE_MAX_CHARS * 4 + 16];
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++) {
            if (strcmp(member->string, allowed[i]) == 0) {
                known = true;
                break;
            }
        }
        /* Quoted and escaped: the name comes from the file. */
        bc_config_quote(member->string, name, sizeof(name));
        if (!known) {
            if (root) {
                bc_config_errf(err, err_len, "%s: unknown field %s", doc->name, name);
            } else {
                bc_config_errf(err, err_len, "%s: unknown field %s in \"%s\"", doc->name, name,
                               section_path);
            }
            return BC_ECONFIG;
        }
        /* cJSON keeps duplicate members and lookups return the first one: a
         * second copy would be silently ignored, so refuse it. */
        for (const cJSON *other = member->next; other != NULL; other = other->next) {
            if (strcmp(other->string, member->string) == 0) {
                if (root) {
                    bc_config_errf(err, err_len, "%s: field %s appears more than once", doc->name,
                                   name);
                } else {
                    bc_config_errf(err, err_len, "%s: field %s in \"%s\" appears more than once",
                                   doc->name, name, section_path);
                }
                return BC_ECONFIG;
            }
        }
    }
    return BC_OK;
}

/* ---- typed getters ---- */

/* Shared prologue: lookup, and the absent case. */
static bc_status_t
get_field(const bc_config_doc_t *doc, const char *path, const cJSON **item, bool *found,
          char *err, size_t err_len)
{
    bc_status_t status = bc_config_lookup(doc, path, item, err, err_len);
    if (found != NULL) *found = false;
    return status;
}

bc_status_t
bc_config_get_int(const bc_config_doc_t *doc, const char *path, int64_t min, int64_t max,
                  int64_t *out, bool *found, char *err, size_t err_len)
{
    const cJSON *item;
    bc_status_t status = get_field(doc, path, &item, found, err, err_len);
    double d;

    if (status != BC_OK || item == NULL) return status;
    if (!cJSON_IsNumber(item)) goto bad;
    d = item->valuedouble;
    /* Doubles hold every integer up to 2^53 exactly; bounds beyond that are
     * not meaningful for configuration. */
    if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max) goto bad;
    *out = (int64_t)d;
    if (*out < min || *out > max) goto bad;
    if (found != NULL) *found = true;
    return BC_OK;
bad:
    return field_error(doc, path, item, err, err_len, "an integer %" PRId64 "..%" PRId64, min,
                       max);
}

bc_status_t
bc_config_get_bool(const bc_config_doc_t *doc, const char *path, bool *out, bool *found,
                   char *err, size_t err_len)
{
    const cJSON *item;
    bc_status_t status = get_field(doc, path, &item, found, err, err_len);

    if (status != BC_OK || item == NULL) return status;
    if (!cJSON_IsBool(item)) {
        return field_error(doc, path, item, err, err_len, "true or false");
    }
    *out = cJSON_IsTrue(item);
    if (found != NULL) *found = true;
    return BC_OK;
}

bc_status_t
bc_config_get_string(const bc_config_doc_t *doc, const char *path, char *buf,
                     size_t buf_size, bool allow_empty, bool *found, char *err,
                     size_t err_len)
{
    const cJSON *item;
    bc_status_t status = get_field(doc, path, &item, found, err, err_len);
    size_t n;

    if (status != BC_OK || item == NULL) return status;
    if (!cJSON_IsString(item)) {
        return field_error(doc, path, item, err, err_len, "a string");
    }
    n = strlen(item->valuestring);
    if (n == 0 && !allow_empty) {
        return field_error(doc, path, item, err, err_len, "a non-empty string");
    }
    if (n >= buf_size) {
        return field_error(doc, path, item, err, err_len, "a string of at most %zu bytes",
                           buf_size - 1);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)item->valuestring[i];
        if (c < 0x20 || c == 0x7f) {
            return field_error(doc, path, item, err, err_len,
                               "a string without control characters");
        }
    }
    memcpy(buf, item->valuestring, n + 1);
    if (found != NULL) *found = true;
    return BC_OK;
}

bc_status_t
bc_config_get_enum(const bc_config_doc_t *doc, const char *path, const char *const *choices,
                   int *out_index, bool *found, char *err, size_t err_len)
{
    const cJSON *item;
    bc_status_t status = get_field(doc, path, &item, found, err, err_len);
    char expected[200];
    size_t o = 0;

    if (status != BC_OK || item == NULL) return status;
    if (cJSON_IsString(item)) {
        for (int i = 0; choices[i] != NULL; i++) {
            if (strcmp(item->valuestring, choices[i]) == 0) {
                *out_index = i;
                if (found != NULL) *found = true;
                return BC_OK;
            }
        }
    }
    expected[0] = '\0';
    for (int i = 0; choices[i] != NULL && o < sizeof(expected); i++) {
        int n = snprintf(expected + o, sizeof(expected) - o, "%s\"%s\"",
                         i == 0 ? "" : (choices[i + 1] == NULL ? " or " : ", "), choices[i]);
        if (n < 0) break;
        o += (size_t)n;
    }
    return field_error(doc, path, item, err, err_len, "one of %s", expected);
}

/* Formats a byte count compactly for messages: 1048576 -> "1m". */
static void
format_size(uint64_t bytes, char *buf, size_t buf_size)
{
    if (bytes != 0 && bytes % (1024u * 1024u * 1024u) == 0) {
        snprintf(buf, buf_size, "%" PRIu64 "g", bytes >> 30);
    } else if (bytes != 0 && bytes % (1024u * 1024u) == 0) {
        snprintf(buf, buf_size, "%" PRIu64 "m", bytes >> 20);
    } else if (bytes != 0 && bytes % 1024u == 0) {
        snprintf(buf, buf_size, "%" PRIu64 "k", bytes >> 10);
    } else {
        snprintf(buf, buf_size, "%" PRIu64, bytes);
    }
}

bc_status_t
bc_config_get_size(const bc_config_doc_t *doc, const char *path, uint64_t unit, uint64_t min,
                   uint64_t max, uint64_t *out, bool *found, char *err, size_t err_len)
{
    const cJSON *item;
    bc_status_t status = get_field(doc, path, &item, found, err, err_len);
    uint64_t bytes = 0;
    char lo[32], hi[32];

    if (status != BC_OK || item == NULL) return status;
    if (unit == 0) unit = 1;
    if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        if (!isfinite(d) || d != floor(d) || d < 0 || d > 9007199254740992.0) goto bad;
        if ((uint64_t)d > UINT64_MAX / unit) goto bad;
        bytes = (uint64_t)d * unit;
    } else if (cJSON_IsString(item)) {
        if (bc_parse_size(item->valuestring, unit, &bytes) != BC_OK) goto bad;
    } else {
        goto bad;
    }
    if (bytes < min || bytes > max) goto bad;
    *out = bytes;
    if (found != NULL) *found = true;
    return BC_OK;
bad:
    format_size(min, lo, sizeof(lo));
    format_size(max, hi, sizeof(hi));
    return field_error(doc, path, item, err, err_len,
                       "a size between %s and %s bytes (a number%s, or a string such as "
                       "\"512k\", \"64m\", \"1g\")", lo, hi,
                       unit == 1 ? " of bytes" : (unit == 1024u * 1024u ? " of megabytes" : ""));
}

bc_status_t
bc_config_get_hostport(const bc_config_doc_t *doc, const char *path, uint16_t default_port,
                       bc_hostport_t *out, bool *found, char *err, size_t err_len)
{
    const cJSON *item;
    bc_status_t status = get_field(doc, path, &item, found, err, err_len);

    if (status != BC_OK || item == NULL) return status;
    if (!cJSON_IsString(item) || bc_parse_hostport(item->valuestring, default_port, out) != BC_OK) {
        return field_error(doc, path, item, err, err_len, "%s",
                           default_port != 0 ? "\"host\" or \"host:port\" (port 1..65535)"
                                             : "\"host:port\" (port 1..65535)");
    }
    if (found != NULL) *found = true;
    return BC_OK;
}

/* ---- value syntaxes ---- */

bc_status_t
bc_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    bool negative = false;
    uint64_t magnitude = 0;
    const char *p = s;

    if (s == NULL) return BC_EINVAL;
    if (*p == '-') {
        negative = true;
        p++;
    }
    if (*p == '\0') return BC_EINVAL;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') return BC_EINVAL;
        if (magnitude > (UINT64_MAX - 9) / 10) return BC_EINVAL;
        magnitude = magnitude * 10 + (uint64_t)(*p - '0');
    }
    if (negative) {
        if (magnitude > (uint64_t)INT64_MAX + 1) return BC_EINVAL;
        int64_t v = magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)magnitude;
        if (v < min || v > max) return BC_EINVAL;
        *out = v;
    } else {
        if (magnitude > (uint64_t)INT64_MAX) return BC_EINVAL;
        if ((int64_t)magnitude < min || (int64_t)magnitude > max) return BC_EINVAL;
        *out = (int64_t)magnitude;
    }
    return BC_OK;
}

bc_status_t
bc_parse_size(const char *s, uint64_t unit, uint64_t *out)
{
    uint64_t n = 0;
    uint64_t multiplier = unit;
    const char *p = s;

    if (s == NULL || unit == 0) return BC_EINVAL;
    if (*p < '0' || *p > '9') return BC_EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT64_MAX - 9) / 10) return BC_ETOOLARGE;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (*p != '\0') {
        switch (*p) {
        case 'k': case 'K': multiplier = 1ull << 10; break;
        case 'm': case 'M': multiplier = 1ull << 20; break;
        case 'g': case 'G': multiplier = 1ull << 30; break;
        default: return BC_EINVAL;
        }
        p++;
        /* Accept the common spellings "64MB", "64MiB", "64mb". */
        if (*p == 'i' || *p == 'I') {
            p++;
            if (*p != 'b' && *p != 'B') return BC_EINVAL;
        }
        if (*p == 'b' || *p == 'B') p++;
        if (*p != '\0') return BC_EINVAL;
    }
    if (n != 0 && n > UINT64_MAX / multiplier) return BC_ETOOLARGE;
    *out = n * multiplier;
    return BC_OK;
}

/* True for a host that has no blanks, control characters or brackets. */
static bool
host_chars_ok(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= 0x20 || c == 0x7f || c == '[' || c == ']' || c == '/') return false;
    }
    return true;
}

static bool
parse_port(const char *s, uint16_t *port)
{
    int64_t v;
    if (bc_parse_int(s, 1, 65535, &v) != BC_OK) return false;
    *port = (uint16_t)v;
    return true;
}

bc_status_t
bc_parse_hostport(const char *s, uint16_t default_port, bc_hostport_t *out)
{
    const char *host;
    size_t host_len;
    const char *port_str = NULL;
    uint16_t port = default_port;

    if (s == NULL || *s == '\0') return BC_EINVAL;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) return BC_EINVAL;
        host = s + 1;
        host_len = (size_t)(close - host);
        if (close[1] == ':') {
            port_str = close + 2;
        } else if (close[1] != '\0') {
            return BC_EINVAL;
        }
        /* An IPv6 literal is hex digits, colons and dots (v4-mapped),
         * optionally followed by "%zone". */
        for (size_t i = 0; i < host_len; i++) {
            unsigned char c = (unsigned char)host[i];
            if (c == '%') {
                if (i == 0 || !host_chars_ok(host + i + 1, host_len - i - 1)) return BC_EINVAL;
                break;
            }
            if (!isxdigit(c) && c != ':' && c != '.') return BC_EINVAL;
        }
    } else {
        const char *colon = strchr(s, ':');
        host = s;
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            /* Two or more colons: a bare IPv6 literal, which cannot carry a
             * port (use brackets for that). */
            host_len = strlen(s);
        } else if (colon != NULL) {
            host_len = (size_t)(colon - s);
            port_str = colon + 1;
        } else {
            host_len = strlen(s);
        }
    }
    if (host_len == 0 || host_len >= sizeof(out->host)) return BC_EINVAL;
    if (*s != '[' && !host_chars_ok(host, host_len)) return BC_EINVAL;
    if (port_str != NULL) {
        if (!parse_port(port_str, &port)) return BC_EINVAL;
    } else if (default_port == 0) {
        return BC_EINVAL;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = port;
    return BC_OK;
}

bool
bc_parse_u64n(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || len == 0 || len > 20) return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        /* v * 10 + d <= UINT64_MAX, up to 18446744073709551615 itself */
        if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10)) return false;
        v = v * 10 + d;
    }
    if (v > max) return false;
    *out = v;
    return true;
}
