/*
 * fuzz_origin.c -- libFuzzer target for what the read-through origin
 * reads from outside (node/origin/): an origin's header lines (freshness:
 * Cache-Control, Expires, Date, Age, HTTP dates) and a key turned into a
 * URL.
 *
 * The input is split at '\n' into lines.  Every line is fed as a header
 * line to one bc_origin_fresh_t and as a date to bc_freshness_http_date; the
 * verdict must be a lifetime within the caps.  Every line of at most 250
 * bytes is also a key: its URL under both placeholders must hold only
 * unreserved characters, '%' (and '/' for {key}) where the key was, and
 * decode back to the key exactly.  Sanitizers catch out-of-bounds reads
 * (each line is copied to a buffer of its exact size); __builtin_trap()
 * marks a broken invariant.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "origin/freshness.h"
#include "origin/url.h"
#include "fuzz_target.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void
check_key(const char *key, size_t nkey)
{
    static const char *const tmpls[] = {"http://h:1/p/{key}?q", "https://h/{key_escaped}?q"};
    char url[BC_ORIGIN_URL_BUF], back[BC_KEY_MAX_LEN];
    for (int t = 0; t < 2; t++) {
        size_t n = bc_origin_url_build(tmpls[t], key, nkey, url, sizeof(url));
        size_t head = strlen(t == 0 ? "http://h:1/p/" : "https://h/");
        CHECK(n >= head + 2 && url[n] == '\0' && memcmp(url + n - 2, "?q", 2) == 0);
        size_t o = 0;
        for (size_t i = head; i < n - 2; i++) {
            char c = url[i];
            if (c == '%') {
                CHECK(i + 2 < n - 2 + 1);
                int h = hexval(url[i + 1]), l = hexval(url[i + 2]);
                CHECK(h >= 0 && l >= 0);
                CHECK(o < nkey);
                back[o++] = (char)(h * 16 + l);
                i += 2;
                continue;
            }
            CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || c == '~' || (t == 0 && c == '/'));
            CHECK(o < nkey);
            back[o++] = c;
        }
        CHECK(o == nkey && memcmp(back, key, nkey) == 0);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bc_origin_fresh_t f;
    const char *p = (const char *)data, *end = p + size;

    bc_origin_fresh_init(&f);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = malloc(n ? n : 1);
        if (line == NULL) return 0;
        memcpy(line, p, n);
        bc_origin_fresh_header(&f, line, n);
        int64_t t = bc_freshness_http_date(line, n);
        CHECK(t >= -1);
        if (n >= 1 && n <= BC_KEY_MAX_LEN) check_key(line, n);
        free(line);
        p += n + (nl != NULL ? 1 : 0);
    }
    for (int i = 0; i < 3; i++) {
        static const uint32_t defaults[] = {0, 300, 7};
        uint32_t ttl = 0xdeadbeef;
        if (bc_origin_fresh_ttl(&f, 1700000000, defaults[i], i == 2 ? 60 : 0, &ttl)) {
            CHECK(ttl <= BC_ORIGIN_TTL_CAP);
            if (i == 2) CHECK(ttl <= 60);
        }
    }
    return 0;
}
