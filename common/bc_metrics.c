/*
 * bc_metrics.c -- see bc_metrics.h.
 */
#include "bc_metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXTBUF_FIRST 8192u

void
bc_textbuf_printf(bc_textbuf_t *tb, const char *fmt, ...)
{
    if (tb->failed) return;
    for (;;) {
        size_t room = tb->cap - tb->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tb->data != NULL ? tb->data + tb->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            tb->failed = true;
            return;
        }
        if ((size_t)n < room) {
            tb->len += (size_t)n;
            return;
        }
        size_t cap = tb->cap ? tb->cap * 2 : TEXTBUF_FIRST;
        while (cap - tb->len <= (size_t)n) cap *= 2;
        char *p = realloc(tb->data, cap);
        if (p == NULL) {
            tb->failed = true;
            return;
        }
        tb->data = p;
        tb->cap = cap;
    }
}

void
bc_textbuf_free(bc_textbuf_t *tb)
{
    free(tb->data);
    memset(tb, 0, sizeof(*tb));
}

enum MHD_Result
bc_metrics_reply(bc_http_req_t *req, bc_textbuf_t *tb)
{
    if (tb->failed || tb->data == NULL) {
        bc_textbuf_free(tb);
        return bc_http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    char *text = tb->data;
    size_t len = tb->len;
    memset(tb, 0, sizeof(*tb));
    /* The text is handed over, not copied: MHD free()s it when sent. */
    return bc_http_reply_buffer(req, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                text, len, free, text);
}

void
bc_metric(bc_textbuf_t *tb, const char *name, const char *type, const char *help,
          uint64_t value)
{
    bc_textbuf_printf(tb, "# HELP bucketcache_%s %s\n# TYPE bucketcache_%s %s\nbucketcache_%s %"
                      PRIu64 "\n", name, help, name, type, name, value);
}
