/*
 * url.c -- origin URL templates and the key's percent-encoding; see url.h
 * for the rule.
 */
#include "origin/url.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "bc_config.h"

#define PH_KEY         "{key}"
#define PH_KEY_ESCAPED "{key_escaped}"

/* The first placeholder in s: where, how long, whether '/' is kept. */
static const char *
find_placeholder(const char *s, size_t *len, bool *keep_slash)
{
    const char *a = strstr(s, PH_KEY), *b = strstr(s, PH_KEY_ESCAPED);
    if (a != NULL && (b == NULL || a < b)) {
        *len = sizeof(PH_KEY) - 1;
        *keep_slash = true;
        return a;
    }
    if (b != NULL) {
        *len = sizeof(PH_KEY_ESCAPED) - 1;
        *keep_slash = false;
        return b;
    }
    return NULL;
}

bc_status_t
bc_origin_template_check(const char *tmpl, char *err, size_t err_len)
{
    size_t n = strlen(tmpl), scheme, plen = 0;
    bool keep;

    if (n >= BC_ORIGIN_URL_MAX) {
        bc_config_errf(err, err_len, "origin URL longer than %u bytes", BC_ORIGIN_URL_MAX - 1);
        return BC_EINVAL;
    }
    if (strncasecmp(tmpl, "http://", 7) == 0) {
        scheme = 7;
    } else if (strncasecmp(tmpl, "https://", 8) == 0) {
        scheme = 8;
    } else {
        bc_config_errf(err, err_len, "origin URL must start with http:// or https://");
        return BC_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tmpl[i];
        if (c <= 0x20 || c >= 0x7f || c == '#') {
            bc_config_errf(err, err_len, "origin URL: byte %zu is a space, a control or "
                           "non-ASCII byte, or '#' (percent-encode it)", i);
            return BC_EINVAL;
        }
    }
    const char *host_end = tmpl + scheme + strcspn(tmpl + scheme, "/?");
    if (host_end == tmpl + scheme) {
        bc_config_errf(err, err_len, "origin URL has no host");
        return BC_EINVAL;
    }
    const char *ph = find_placeholder(tmpl, &plen, &keep);
    if (ph == NULL) {
        bc_config_errf(err, err_len, "origin URL has no {key} or {key_escaped} placeholder");
        return BC_EINVAL;
    }
    if (ph < host_end) {
        bc_config_errf(err, err_len, "origin URL: the key placeholder must come after the host");
        return BC_EINVAL;
    }
    size_t again_len;
    bool again_keep;
    if (find_placeholder(ph + plen, &again_len, &again_keep) != NULL) {
        bc_config_errf(err, err_len, "origin URL has more than one key placeholder");
        return BC_EINVAL;
    }
    return BC_OK;
}

static bool
unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

size_t
bc_origin_key_encode(const char *key, size_t nkey, bool keep_slash, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < nkey; i++) {
        unsigned char c = (unsigned char)key[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    return o;
}

size_t
bc_origin_url_build(const char *tmpl, const char *key, size_t nkey, char *out, size_t size)
{
    size_t plen = 0;
    bool keep = true;
    const char *ph = find_placeholder(tmpl, &plen, &keep);
    if (ph == NULL) return 0;
    size_t head = (size_t)(ph - tmpl), tail = strlen(ph + plen), enc = 0;
    for (size_t i = 0; i < nkey; i++) {
        unsigned char c = (unsigned char)key[i];
        enc += unreserved(c) || (keep && c == '/') ? 1 : 3;
    }
    if (head + enc + tail + 1 > size) return 0;
    memcpy(out, tmpl, head);
    size_t n = head + bc_origin_key_encode(key, nkey, keep, out + head);
    memcpy(out + n, ph + plen, tail);
    n += tail;
    out[n] = '\0';
    return n;
}
