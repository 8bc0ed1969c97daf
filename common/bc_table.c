/*
 * bc_table.c -- see bc_table.h.  cJSON does the parsing; every value is then
 * checked for type, integrality and range before anything is kept.
 */
#include "bc_table.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bc_hash.h"

bc_status_t
bc_table_init(bc_table_t *t, char name, uint32_t nbuckets)
{
    memset(t, 0, sizeof(*t));
    if ((name != 'c' && name != 'm' && name != 'd') || nbuckets == 0 ||
        nbuckets > BC_MAX_NBUCKETS) {
        return BC_EINVAL;
    }
    t->name = name;
    t->nbuckets = nbuckets;
    t->owner = calloc(nbuckets, sizeof(*t->owner));
    if (name == 'c') t->readonly = calloc(nbuckets, sizeof(*t->readonly));
    if (t->owner == NULL || (name == 'c' && t->readonly == NULL)) {
        bc_table_free(t);
        return BC_ENOMEM;
    }
    return BC_OK;
}

void
bc_table_free(bc_table_t *t)
{
    free(t->owner);
    free(t->readonly);
    t->owner = NULL;
    t->readonly = NULL;
}

bc_status_t
bc_table_copy(bc_table_t *dst, const bc_table_t *src)
{
    bc_status_t st = bc_table_init(dst, src->name, src->nbuckets);
    if (st != BC_OK) return st;
    dst->epoch = src->epoch;
    memcpy(dst->owner, src->owner, src->nbuckets * sizeof(*dst->owner));
    if (src->readonly != NULL) memcpy(dst->readonly, src->readonly, src->nbuckets);
    return BC_OK;
}

char *
bc_table_encode(const bc_table_t *t)
{
    /* Hand-rolled: a cJSON tree of 65536 numbers costs ~4 MiB for nothing. */
    size_t cap = 96 + (size_t)t->nbuckets * 22;
    char *buf = malloc(cap);
    if (buf == NULL) return NULL;
    size_t len = (size_t)snprintf(buf, cap, "{\"table\":\"%c\",\"epoch\":%llu,\"buckets\":%u,\"owners\":[",
                                  t->name, (unsigned long long)t->epoch, t->nbuckets);
    for (uint32_t b = 0; b < t->nbuckets; b++) {
        len += (size_t)snprintf(buf + len, cap - len, b ? ",%u" : "%u", t->owner[b]);
    }
    len += (size_t)snprintf(buf + len, cap - len, "]");
    if (t->readonly != NULL) {
        len += (size_t)snprintf(buf + len, cap - len, ",\"readonly\":[");
        bool first = true;
        for (uint32_t b = 0; b < t->nbuckets; b++) {
            if (!t->readonly[b]) continue;
            len += (size_t)snprintf(buf + len, cap - len, first ? "%u" : ",%u", b);
            first = false;
        }
        len += (size_t)snprintf(buf + len, cap - len, "]");
    }
    snprintf(buf + len, cap - len, "}");
    return buf;
}

/* A JSON number that is an integer in [lo, hi]. */
static bool
json_int_in(const cJSON *v, double lo, double hi, double *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double x = v->valuedouble;
    if (!isfinite(x) || x != floor(x) || x < lo || x > hi) return false;
    *out = x;
    return true;
}

bc_status_t
bc_table_decode(const char *json, size_t len, char name, uint32_t expect_nbuckets,
                bc_table_t *out, char *err, size_t errlen)
{
    double x;
    bc_status_t st;

    memset(out, 0, sizeof(*out));
    if (len > BC_TABLE_MAX_JSON) {
        return bc_fail(err, errlen, BC_ETOOLARGE, "table %c: %zu bytes exceeds the %u-byte limit",
                          name, len, BC_TABLE_MAX_JSON);
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (root == NULL || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return bc_fail(err, errlen, BC_EINVAL, "table %c: not a JSON object", name);
    }

    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "table");
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(root, "epoch");
    const cJSON *buckets = cJSON_GetObjectItemCaseSensitive(root, "buckets");
    const cJSON *owners = cJSON_GetObjectItemCaseSensitive(root, "owners");
    const cJSON *readonly = cJSON_GetObjectItemCaseSensitive(root, "readonly");

    if (!cJSON_IsString(kind) || strlen(kind->valuestring) != 1 || kind->valuestring[0] != name) {
        st = bc_fail(err, errlen, BC_EINVAL, "table %c: field \"table\" must be \"%c\"", name, name);
        goto fail;
    }
    if (!json_int_in(epoch, 0, 9007199254740991.0, &x)) {
        st = bc_fail(err, errlen, BC_EINVAL, "table %c: field \"epoch\" must be a non-negative integer", name);
        goto fail;
    }
    uint64_t epoch_value = (uint64_t)x;
    if (!json_int_in(buckets, 1, BC_MAX_NBUCKETS, &x)) {
        st = bc_fail(err, errlen, BC_EINVAL, "table %c: field \"buckets\" must be an integer 1..%u",
                        name, BC_MAX_NBUCKETS);
        goto fail;
    }
    uint32_t n = (uint32_t)x;
    if (expect_nbuckets != 0 && n != expect_nbuckets) {
        st = bc_fail(err, errlen, BC_EINVAL, "table %c: field \"buckets\" is %u, the cluster has %u",
                        name, n, expect_nbuckets);
        goto fail;
    }
    if (!cJSON_IsArray(owners) || cJSON_GetArraySize(owners) != (int)n) {
        st = bc_fail(err, errlen, BC_EINVAL, "table %c: field \"owners\" must be an array of %u group ids",
                        name, n);
        goto fail;
    }
    if (name == 'c' ? (readonly != NULL && !cJSON_IsArray(readonly)) : readonly != NULL) {
        st = bc_fail(err, errlen, BC_EINVAL, "table %c: field \"readonly\" %s", name,
                        name == 'c' ? "must be an array of bucket numbers" : "is only allowed in table c");
        goto fail;
    }

    st = bc_table_init(out, name, n);
    if (st != BC_OK) goto fail;
    out->epoch = epoch_value;

    uint32_t b = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, owners) {
        if (!json_int_in(v, 0, BC_TABLE_MAX_GID, &x)) {
            st = bc_fail(err, errlen, BC_EINVAL, "table %c: field \"owners[%u]\" must be a group id 0..%u",
                            name, b, BC_TABLE_MAX_GID);
            goto fail;
        }
        out->owner[b++] = (uint32_t)x;
    }
    if (readonly != NULL) {
        int i = 0;
        cJSON_ArrayForEach(v, readonly) {
            if (!json_int_in(v, 0, n - 1, &x)) {
                st = bc_fail(err, errlen, BC_EINVAL, "table %c: field \"readonly[%d]\" must be a bucket 0..%u",
                                name, i, n - 1);
                goto fail;
            }
            out->readonly[(uint32_t)x] = 1;
            i++;
        }
    }
    cJSON_Delete(root);
    return BC_OK;

fail:
    cJSON_Delete(root);
    bc_table_free(out);
    return st;
}
