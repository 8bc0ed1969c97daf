/*
 * origin_config.c -- the origin's settings: defaults, the --origin flag and
 * the config file's "origin" section (origin.h lists every field):
 *
 *   "origin": {
 *     "url": "http://resize:8000/v1/{key}",          every other key
 *     "origins": {"img/": "http://resize:8000/v1/{key}",
 *                 "doc/": "https://docs.internal/{key_escaped}"},
 *     "connect_timeout_ms": 500, "timeout_ms": 1000,
 *     "max_inflight": 32, "max_queue": 1024,
 *     "default_ttl": 300, "max_ttl": 0,
 *     "negative_ttl": 10, "negative_max": 10000, "negative_statuses": [404, 410],
 *     "flags_header": "X-Bucketcache-Flags",
 *     "breaker_failures": 5, "breaker_cooldown_ms": 5000,
 *     "ca_file": "/etc/ssl/certs/ca-certificates.crt"
 *   }
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "origin/freshness.h"
#include "origin/origin.h"

const char *const bc_origin_config_fields[] = {
    "url", "origins", "connect_timeout_ms", "timeout_ms", "max_inflight", "max_queue",
    "default_ttl", "max_ttl", "negative_ttl", "negative_max", "negative_statuses",
    "flags_header", "breaker_failures", "breaker_cooldown_ms", "ca_file", NULL};

void
bc_origin_config_defaults(bc_origin_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->connect_timeout_ms = 500;
    cfg->timeout_ms = 1000;
    cfg->max_inflight = 32;
    cfg->max_queue = 1024;
    cfg->default_ttl = 300;
    cfg->max_ttl = 0;
    cfg->negative_ttl = 10;
    cfg->negative_max = 10000;
    cfg->nnegative = 2;
    cfg->negative_statuses[0] = 404;
    cfg->negative_statuses[1] = 410;
    cfg->breaker_failures = 5;
    cfg->breaker_cooldown_ms = 5000;
}

bool
bc_origin_config_enabled(const bc_origin_config_t *cfg)
{
    return cfg->url[0] != '\0' || cfg->nprefixes > 0;
}

/* Adds or replaces the template of prefix (NUL-terminated, non-empty). */
static bc_status_t
set_prefix(bc_origin_config_t *cfg, const char *prefix, size_t nprefix, const char *url,
           char *err, size_t err_len)
{
    uint32_t i;
    if (nprefix == 0 || nprefix > BC_KEY_MAX_LEN) {
        bc_config_errf(err, err_len, "origin prefix: expected 1..%u bytes", BC_KEY_MAX_LEN);
        return BC_EINVAL;
    }
    for (size_t k = 0; k < nprefix; k++) {
        unsigned char c = (unsigned char)prefix[k];
        if (c <= 0x20 || c == 0x7f) {
            bc_config_errf(err, err_len, "origin prefix: no spaces or control characters "
                           "(keys cannot hold them)");
            return BC_EINVAL;
        }
    }
    if (bc_origin_template_check(url, err, err_len) != BC_OK) return BC_EINVAL;
    for (i = 0; i < cfg->nprefixes; i++) {
        if (strlen(cfg->prefixes[i].prefix) == nprefix &&
            memcmp(cfg->prefixes[i].prefix, prefix, nprefix) == 0) break;
    }
    if (i == cfg->nprefixes) {
        if (cfg->nprefixes == BC_ORIGIN_MAX_PREFIXES) {
            bc_config_errf(err, err_len, "more than %u origin prefixes", BC_ORIGIN_MAX_PREFIXES);
            return BC_EINVAL;
        }
        cfg->nprefixes++;
    }
    memcpy(cfg->prefixes[i].prefix, prefix, nprefix);
    cfg->prefixes[i].prefix[nprefix] = '\0';
    snprintf(cfg->prefixes[i].url, sizeof(cfg->prefixes[i].url), "%s", url);
    return BC_OK;
}

bc_status_t
bc_origin_config_flag(bc_origin_config_t *cfg, const char *value, char *err, size_t err_len)
{
    if (strncasecmp(value, "http://", 7) == 0 || strncasecmp(value, "https://", 8) == 0) {
        if (bc_origin_template_check(value, err, err_len) != BC_OK) return BC_EINVAL;
        snprintf(cfg->url, sizeof(cfg->url), "%s", value);
        return BC_OK;
    }
    const char *eq = strchr(value, '=');
    if (eq == NULL) {
        bc_config_errf(err, err_len, "expected URL or PREFIX=URL (the URL starting "
                       "with http:// or https://, holding {key})");
        return BC_EINVAL;
    }
    return set_prefix(cfg, value, (size_t)(eq - value), eq + 1, err, err_len);
}

/* An integer field into a uint32_t. */
static bc_status_t
get_u32(const bc_config_doc_t *doc, const char *path, int64_t min, int64_t max, uint32_t *out,
        char *err, size_t err_len)
{
    int64_t v;
    bool found = false;
    bc_status_t st = bc_config_get_int(doc, path, min, max, &v, &found, err, err_len);
    if (st == BC_OK && found) *out = (uint32_t)v;
    return st;
}

bc_status_t
bc_origin_config_apply_doc(bc_origin_config_t *cfg, const bc_config_doc_t *doc, char *err,
                           size_t err_len)
{
    const cJSON *node = NULL;
    bc_status_t st;
    char url[BC_ORIGIN_URL_MAX];
    bool found = false;

#define CHECK(expr) do { st = (expr); if (st != BC_OK) return st; } while (0)
    CHECK(bc_config_check_fields(doc, "origin", bc_origin_config_fields, err, err_len));
    CHECK(bc_config_get_string(doc, "origin.url", url, sizeof(url), true, &found, err, err_len));
    if (found) {
        if (url[0] != '\0' && bc_origin_template_check(url, err, err_len) != BC_OK) {
            char why[BC_ERRBUF_LEN];
            snprintf(why, sizeof(why), "%s", err);
            bc_config_errf(err, err_len, "%s: field \"origin.url\": %s", doc->name, why);
            return BC_ECONFIG;
        }
        memcpy(cfg->url, url, strlen(url) + 1);    /* checked: shorter than url[] */
    }
    CHECK(bc_config_lookup(doc, "origin.origins", &node, err, err_len));
    if (node != NULL) {
        if (!cJSON_IsObject(node)) {
            bc_config_errf(err, err_len, "%s: field \"origin.origins\": expected an object of "
                           "\"prefix\": \"URL\"", doc->name);
            return BC_ECONFIG;
        }
        for (const cJSON *m = node->child; m != NULL; m = m->next) {
            char why[BC_ERRBUF_LEN];
            if (!cJSON_IsString(m) || m->valuestring == NULL) {
                bc_config_errf(err, err_len, "%s: field \"origin.origins\": the value of "
                               "\"%.64s\" must be a URL string", doc->name, m->string);
                return BC_ECONFIG;
            }
            if (set_prefix(cfg, m->string, strlen(m->string), m->valuestring, why,
                           sizeof(why)) != BC_OK) {
                bc_config_errf(err, err_len, "%s: field \"origin.origins\", \"%.64s\": %s",
                               doc->name, m->string, why);
                return BC_ECONFIG;
            }
        }
    }
    CHECK(get_u32(doc, "origin.connect_timeout_ms", 1, 600000, &cfg->connect_timeout_ms, err,
                  err_len));
    CHECK(get_u32(doc, "origin.timeout_ms", 1, 600000, &cfg->timeout_ms, err, err_len));
    CHECK(get_u32(doc, "origin.max_inflight", 1, 4096, &cfg->max_inflight, err, err_len));
    CHECK(get_u32(doc, "origin.max_queue", 0, 1000000, &cfg->max_queue, err, err_len));
    CHECK(get_u32(doc, "origin.default_ttl", 0, BC_ORIGIN_TTL_CAP, &cfg->default_ttl, err,
                  err_len));
    CHECK(get_u32(doc, "origin.max_ttl", 0, BC_ORIGIN_TTL_CAP, &cfg->max_ttl, err, err_len));
    CHECK(get_u32(doc, "origin.negative_ttl", 0, 86400, &cfg->negative_ttl, err, err_len));
    CHECK(get_u32(doc, "origin.negative_max", 1, 10000000, &cfg->negative_max, err, err_len));
    CHECK(bc_config_lookup(doc, "origin.negative_statuses", &node, err, err_len));
    if (node != NULL) {
        uint32_t n = 0;
        if (!cJSON_IsArray(node) || cJSON_GetArraySize(node) > (int)BC_ORIGIN_MAX_NEGATIVE) {
            bc_config_errf(err, err_len, "%s: field \"origin.negative_statuses\": expected an "
                           "array of at most %u HTTP statuses", doc->name,
                           BC_ORIGIN_MAX_NEGATIVE);
            return BC_ECONFIG;
        }
        for (const cJSON *m = node->child; m != NULL; m = m->next) {
            double d = cJSON_IsNumber(m) ? m->valuedouble : 0;
            if (d < 400 || d > 499 || d != (double)(int)d) {
                bc_config_errf(err, err_len, "%s: field \"origin.negative_statuses\": expected "
                               "4xx statuses (5xx are failures, never cached)", doc->name);
                return BC_ECONFIG;
            }
            cfg->negative_statuses[n++] = (uint16_t)d;
        }
        cfg->nnegative = n;
    }
    CHECK(bc_config_get_string(doc, "origin.flags_header", cfg->flags_header,
                               sizeof(cfg->flags_header), true, NULL, err, err_len));
    for (const char *p = cfg->flags_header; *p != '\0'; p++) {
        if (*p == ':' || *p == ' ') {
            bc_config_errf(err, err_len, "%s: field \"origin.flags_header\": a header name "
                           "(no ':' or spaces)", doc->name);
            return BC_ECONFIG;
        }
    }
    CHECK(get_u32(doc, "origin.breaker_failures", 0, 1000000, &cfg->breaker_failures, err,
                  err_len));
    CHECK(get_u32(doc, "origin.breaker_cooldown_ms", 1, 3600000, &cfg->breaker_cooldown_ms, err,
                  err_len));
    CHECK(bc_config_get_string(doc, "origin.ca_file", cfg->ca_file, sizeof(cfg->ca_file), true,
                               NULL, err, err_len));
#undef CHECK
    return BC_OK;
}
