/*
 * bc_cluster.c -- see bc_cluster.h.
 */
#include "bc_cluster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "bc_hash.h"
#include "bc_http_client.h"

#define BC_CLUSTER_HASH_NAME "murmur3_32/seed0"

int
bc_cluster_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > BC_CLUSTER_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            return 0;
        }
    }
    return 1;
}

bc_status_t
bc_cluster_path(char *buf, size_t len, const char *cluster, const char *suffix)
{
    if (!bc_cluster_name_valid(cluster)) return BC_EINVAL;
    int n = snprintf(buf, len, BC_CLUSTER_ROOT "/%s%s", cluster, suffix ? suffix : "");
    return (n < 0 || (size_t)n >= len) ? BC_ETOOLARGE : BC_OK;
}

char *
bc_cluster_config_encode(const bc_cluster_config_t *cfg)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "{\"buckets\":%u,\"hash\":\"%s\",\"created_at\":%lld}",
             cfg->nbuckets, cfg->hash, (long long)cfg->created_at);
    return strdup(buf);
}

bc_status_t
bc_cluster_config_decode(const char *json, size_t len, bc_cluster_config_t *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof(*out));
    cJSON *root = len > 4096 ? NULL : cJSON_ParseWithLength(json, len);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "buckets");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "hash");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "created_at");
    const char *bad = NULL;
    if (!cJSON_IsObject(root)) {
        bad = "cluster config: not a JSON object";
    } else if (!cJSON_IsNumber(b) || b->valuedouble != floor(b->valuedouble) ||
               b->valuedouble < 1 || b->valuedouble > BC_MAX_NBUCKETS) {
        bad = "cluster config: field \"buckets\" must be an integer 1..65536";
    } else if (!cJSON_IsString(h) || strcmp(h->valuestring, BC_CLUSTER_HASH_NAME) != 0) {
        bad = "cluster config: field \"hash\" must be \"" BC_CLUSTER_HASH_NAME "\"";
    } else if (c != NULL && !cJSON_IsNumber(c)) {
        bad = "cluster config: field \"created_at\" must be a number";
    }
    if (bad != NULL) {
        if (err != NULL && errlen > 0) snprintf(err, errlen, "%s", bad);
        cJSON_Delete(root);
        return BC_EINVAL;
    }
    out->nbuckets = (uint32_t)b->valuedouble;
    snprintf(out->hash, sizeof(out->hash), "%s", h->valuestring);
    out->created_at = c ? (int64_t)c->valuedouble : 0;
    cJSON_Delete(root);
    return BC_OK;
}

bc_status_t
bc_cluster_create(bc_zk_t *zk, const char *cluster, uint32_t nbuckets)
{
    return bc_cluster_create_acl(zk, cluster, nbuckets, NULL);
}

bc_status_t
bc_cluster_create_acl(bc_zk_t *zk, const char *cluster, uint32_t nbuckets, const bc_zk_acl_t *acl)
{
    static const char *const dirs[] = {"", "/groups", "/tables", "/console", "/console/election",
                                       "/migrations"};
    enum { NDIRS = sizeof(dirs) / sizeof(dirs[0]) };
    char paths[NDIRS + 4][BC_CLUSTER_PATH_MAX];
    char *tables[3] = {NULL, NULL, NULL};
    char *config_json = NULL;
    bc_status_t st;

    if (!bc_cluster_name_valid(cluster) || nbuckets == 0 || nbuckets > BC_MAX_NBUCKETS) {
        return BC_EINVAL;
    }
    st = bc_zk_create_all(zk, BC_CLUSTER_ROOT);
    if (st != BC_OK) return st;

    bc_zk_txn_t *txn = bc_zk_txn_new();
    if (txn == NULL) return BC_ENOMEM;
    for (size_t i = 0; i < NDIRS; i++) {
        bc_cluster_path(paths[i], sizeof(paths[i]), cluster, dirs[i]);
        bc_zk_txn_create_acl(txn, paths[i], NULL, 0, 0, acl);
    }
    bc_cluster_config_t cfg = {.nbuckets = nbuckets, .created_at = (int64_t)time(NULL)};
    snprintf(cfg.hash, sizeof(cfg.hash), "%s", BC_CLUSTER_HASH_NAME);
    config_json = bc_cluster_config_encode(&cfg);
    if (config_json == NULL) {
        st = BC_ENOMEM;
        goto out;
    }
    bc_cluster_path(paths[NDIRS], sizeof(paths[NDIRS]), cluster, "/config");
    bc_zk_txn_create_acl(txn, paths[NDIRS], config_json, strlen(config_json), 0, acl);

    static const char names[3] = {'c', 'm', 'd'};
    for (int i = 0; i < 3; i++) {
        bc_table_t t;
        char suffix[16];
        st = bc_table_init(&t, names[i], nbuckets);
        if (st != BC_OK) goto out;
        tables[i] = bc_table_encode(&t);
        bc_table_free(&t);
        if (tables[i] == NULL) {
            st = BC_ENOMEM;
            goto out;
        }
        snprintf(suffix, sizeof(suffix), "/tables/%c", names[i]);
        bc_cluster_path(paths[NDIRS + 1 + i], sizeof(paths[0]), cluster, suffix);
        bc_zk_txn_create_acl(txn, paths[NDIRS + 1 + i], tables[i], strlen(tables[i]), 0, acl);
    }
    st = bc_zk_txn_commit(zk, txn, NULL);
out:
    bc_zk_txn_free(txn);
    free(config_json);
    for (int i = 0; i < 3; i++) free(tables[i]);
    return st;
}

bc_status_t
bc_cluster_read_config(bc_zk_t *zk, const char *cluster, bc_cluster_config_t *out, char *err,
                       size_t errlen)
{
    char path[BC_CLUSTER_PATH_MAX];
    char *data = NULL;
    size_t len = 0;
    bc_status_t st = bc_cluster_path(path, sizeof(path), cluster, "/config");
    if (st != BC_OK) return st;
    st = bc_zk_get(zk, path, NULL, NULL, &data, &len, NULL);
    if (st == BC_OK) st = bc_cluster_config_decode(data ? data : "", len, out, err, errlen);
    free(data);
    return st;
}

bc_status_t
bc_cluster_read_table(bc_zk_t *zk, const char *cluster, char name, uint32_t nbuckets,
                      bc_table_t *out, int32_t *version, bc_zk_watch_fn watch, void *watch_ctx,
                      char *err, size_t errlen)
{
    char path[BC_CLUSTER_PATH_MAX], suffix[16];
    char *data = NULL;
    size_t len = 0;
    snprintf(suffix, sizeof(suffix), "/tables/%c", name);
    bc_status_t st = bc_cluster_path(path, sizeof(path), cluster, suffix);
    if (st != BC_OK) return st;
    st = bc_zk_get(zk, path, watch, watch_ctx, &data, &len, version);
    if (st == BC_OK) st = bc_table_decode(data ? data : "", len, name, nbuckets, out, err, errlen);
    free(data);
    return st;
}

/* ---- group membership records ---- */

uint32_t
bc_cluster_parse_gid(const char *name)
{
    uint64_t v = 0;
    if (name == NULL || name[0] == '\0' || name[0] == '0' || strlen(name) > 10) return 0;
    for (const char *p = name; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v > BC_GROUP_MAX_GID ? 0 : (uint32_t)v;
}

static char *
cluster_json_print(cJSON *obj)
{
    char *out = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    return out;
}

char *
bc_cluster_node_info_encode(const bc_cluster_node_info_t *info)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cJSON_AddStringToObject(o, "data", info->data_addr);
    cJSON_AddStringToObject(o, "admin", info->admin_addr);
    cJSON_AddNumberToObject(o, "memory", (double)info->memory);
    cJSON_AddNumberToObject(o, "pid", (double)info->pid);
    if (info->incarnation[0] != '\0') cJSON_AddStringToObject(o, "incarnation", info->incarnation);
    return cluster_json_print(o);
}

char *
bc_cluster_primary_info_encode(const bc_cluster_primary_info_t *info)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cJSON_AddStringToObject(o, "node", info->node);
    cJSON_AddStringToObject(o, "data", info->data_addr);
    cJSON_AddStringToObject(o, "admin", info->admin_addr);
    cJSON_AddNumberToObject(o, "epoch", (double)info->epoch);
    if (info->incarnation[0] != '\0') cJSON_AddStringToObject(o, "incarnation", info->incarnation);
    return cluster_json_print(o);
}

int
bc_cluster_node_name_valid(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n < 3 || n > 22 || name[0] != 'n' || name[1] != '-') return 0;
    for (size_t i = 2; i < n; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
    }
    return 1;
}

bool
bc_cluster_isr_has(const bc_cluster_isr_t *isr, const char *node)
{
    for (uint32_t i = 0; i < isr->n; i++) {
        if (strcmp(isr->in_sync[i], node) == 0) return true;
    }
    return false;
}

bool
bc_cluster_isr_add(bc_cluster_isr_t *isr, const char *node)
{
    if (isr->n >= BC_CLUSTER_ISR_MAX || strlen(node) >= BC_NODE_NAME_MAX || bc_cluster_isr_has(isr, node)) {
        return false;
    }
    memcpy(isr->in_sync[isr->n++], node, strlen(node) + 1);
    return true;
}

bool
bc_cluster_isr_remove(bc_cluster_isr_t *isr, const char *node)
{
    for (uint32_t i = 0; i < isr->n; i++) {
        if (strcmp(isr->in_sync[i], node) != 0) continue;
        memmove(isr->in_sync[i], isr->in_sync[i + 1], (size_t)(isr->n - i - 1) * BC_NODE_NAME_MAX);
        isr->n--;
        return true;
    }
    return false;
}

bool
bc_cluster_isr_of(const bc_cluster_isr_t *isr, const bc_cluster_primary_info_t *p)
{
    return strcmp(isr->primary, p->node) == 0 && isr->epoch == p->epoch;
}

char *
bc_cluster_isr_encode(const bc_cluster_isr_t *isr)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    cJSON_AddStringToObject(o, "primary", isr->primary);
    cJSON_AddNumberToObject(o, "epoch", (double)isr->epoch);
    cJSON *a = cJSON_AddArrayToObject(o, "in_sync");
    for (uint32_t i = 0; a != NULL && i < isr->n && i < BC_CLUSTER_ISR_MAX; i++) {
        cJSON_AddItemToArray(a, cJSON_CreateString(isr->in_sync[i]));
    }
    cJSON_AddNumberToObject(o, "offset", (double)isr->offset);
    cJSON_AddNumberToObject(o, "at_ms", (double)isr->at_ms);
    return cluster_json_print(o);
}

/* Copies a string field that must be present (or may be empty if allowed). */
static const char *
cluster_take_string(const cJSON *root, const char *field, char *dst, size_t dstlen, int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (v == NULL && !required) {
        dst[0] = '\0';
        return NULL;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= dstlen ||
        (required && v->valuestring[0] == '\0')) {
        return field;
    }
    for (const char *p = v->valuestring; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) return field;
    }
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return NULL;
}

static const char *
cluster_take_u64(const cJSON *root, const char *field, uint64_t *dst, int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
    if (v == NULL && !required) {
        *dst = 0;
        return NULL;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740991.0 ||
        v->valuedouble != floor(v->valuedouble)) {
        return field;
    }
    *dst = (uint64_t)v->valuedouble;
    return NULL;
}

static bc_status_t
cluster_decode_fail(cJSON *root, const char *what, const char *field, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        if (field) snprintf(err, errlen, "%s: field \"%s\" is missing or invalid", what, field);
        else snprintf(err, errlen, "%s: not a JSON object", what);
    }
    cJSON_Delete(root);
    return BC_EINVAL;
}

bc_status_t
bc_cluster_node_info_decode(const char *json, size_t len, bc_cluster_node_info_t *out, char *err,
                            size_t errlen)
{
    char name[BC_NODE_NAME_MAX];
    memcpy(name, out->name, sizeof(name));
    memset(out, 0, sizeof(*out));
    memcpy(out->name, name, sizeof(name));
    if (len > 16384) return BC_ETOOLARGE;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) return cluster_decode_fail(root, "node record", NULL, err, errlen);
    uint64_t pid = 0;
    const char *bad = cluster_take_string(root, "data", out->data_addr, sizeof(out->data_addr), 1);
    if (!bad) bad = cluster_take_string(root, "admin", out->admin_addr, sizeof(out->admin_addr), 0);
    if (!bad) bad = cluster_take_u64(root, "memory", &out->memory, 1);
    /* "offset" (optional) was written, always 0, by earlier nodes; the
     * console asks a node's live offset over HTTP when it needs it */
    if (!bad) bad = cluster_take_u64(root, "offset", &out->offset, 0);
    if (!bad) bad = cluster_take_u64(root, "pid", &pid, 0);
    if (!bad) {
        bad = cluster_take_string(root, "incarnation", out->incarnation,
                                  sizeof(out->incarnation), 0);
    }
    if (bad) return cluster_decode_fail(root, "node record", bad, err, errlen);
    out->pid = (int64_t)pid;
    cJSON_Delete(root);
    return BC_OK;
}

bc_status_t
bc_cluster_primary_info_decode(const char *json, size_t len, bc_cluster_primary_info_t *out,
                               char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len > 16384) return BC_ETOOLARGE;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) return cluster_decode_fail(root, "primary record", NULL, err, errlen);
    const char *bad = cluster_take_string(root, "node", out->node, sizeof(out->node), 1);
    if (!bad) bad = cluster_take_string(root, "data", out->data_addr, sizeof(out->data_addr), 1);
    if (!bad) bad = cluster_take_string(root, "admin", out->admin_addr, sizeof(out->admin_addr), 0);
    if (!bad) bad = cluster_take_u64(root, "epoch", &out->epoch, 1);
    if (!bad) {
        bad = cluster_take_string(root, "incarnation", out->incarnation,
                                  sizeof(out->incarnation), 0);
    }
    if (bad) return cluster_decode_fail(root, "primary record", bad, err, errlen);
    cJSON_Delete(root);
    return BC_OK;
}

bc_status_t
bc_cluster_isr_decode(const char *json, size_t len, bc_cluster_isr_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len > 16384) return BC_ETOOLARGE;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) return cluster_decode_fail(root, "in-sync record", NULL, err, errlen);
    uint64_t at = 0;
    const char *bad = cluster_take_string(root, "primary", out->primary, sizeof(out->primary), 1);
    if (!bad && !bc_cluster_node_name_valid(out->primary)) bad = "primary";
    if (!bad) bad = cluster_take_u64(root, "epoch", &out->epoch, 1);
    if (!bad) bad = cluster_take_u64(root, "offset", &out->offset, 0);
    if (!bad) bad = cluster_take_u64(root, "at_ms", &at, 0);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "in_sync");
    if (!bad && (!cJSON_IsArray(a) || cJSON_GetArraySize(a) > BC_CLUSTER_ISR_MAX)) bad = "in_sync";
    const cJSON *v;
    const cJSON *members = bad == NULL ? a : NULL;
    cJSON_ArrayForEach(v, members) {
        if (!cJSON_IsString(v) || !bc_cluster_node_name_valid(v->valuestring) ||
            strcmp(v->valuestring, out->primary) == 0 || !bc_cluster_isr_add(out, v->valuestring)) {
            bad = "in_sync";
            break;
        }
    }
    if (bad) {
        memset(out, 0, sizeof(*out));
        return cluster_decode_fail(root, "in-sync record", bad, err, errlen);
    }
    out->at_ms = (int64_t)at;
    cJSON_Delete(root);
    return BC_OK;
}

bc_status_t
bc_cluster_repl_status_decode(const char *json, size_t len, bc_cluster_repl_status_t *out,
                              char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->lag_ms = -1;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        return cluster_decode_fail(root, "replication state", NULL, err, errlen);
    }
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(root, "role");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(root, "mode");
    const char *bad = NULL;
    if (!cJSON_IsString(role)) bad = "role";
    else if (!cJSON_IsString(mode) || bc_repl_mode_parse(mode->valuestring, &out->mode) != BC_OK) {
        bad = "mode";
    }
    if (!bad) bad = cluster_take_u64(root, "offset", &out->offset, 1);
    if (!bad) bad = cluster_take_u64(root, "lag_bytes", &out->lag_bytes, 0);
    if (bad) return cluster_decode_fail(root, "replication state", bad, err, errlen);
    out->primary = strcmp(role->valuestring, "primary") == 0;
    out->synced = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "synced"));
    out->writable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "writable"));
    out->link_up = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "link_up"));
    out->backups = (uint32_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "backups"));
    const cJSON *lag = cJSON_GetObjectItemCaseSensitive(root, "lag_ms");
    if (cJSON_IsNumber(lag) && lag->valuedouble >= 0 && lag->valuedouble < 9.2e18) {
        out->lag_ms = (int64_t)lag->valuedouble;
    }
    cJSON_Delete(root);
    return BC_OK;
}

/* The outcome st of a GET /v1/repl and its response (freed here). */
static bc_status_t
repl_status_from(bc_status_t st, bc_http_response_t *resp, bc_cluster_repl_status_t *out)
{
    if (st != BC_OK) return st;
    st = resp->status == 200
             ? bc_cluster_repl_status_decode(resp->body, resp->body_len, out, NULL, 0)
             : BC_EPROTO;
    bc_http_response_free(resp);
    return st;
}

bc_status_t
bc_cluster_repl_status_fetch(const char *admin_addr, int timeout_ms, bc_cluster_repl_status_t *out)
{
    bc_http_response_t resp;
    return repl_status_from(
        bc_http_request(admin_addr, "GET", "/v1/repl", NULL, 0, timeout_ms, &resp), &resp, out);
}

bc_status_t
bc_cluster_repl_status_fetch_tls(const bc_http_tls_t *tls, const char *admin_addr,
                                 int timeout_ms, bc_cluster_repl_status_t *out)
{
    bc_http_response_t resp;
    return repl_status_from(bc_http_request_tls(tls, admin_addr, "GET", "/v1/repl", NULL, 0,
                                                timeout_ms, &resp),
                            &resp, out);
}

void
bc_cluster_group_config_init(bc_cluster_group_config_t *cfg)
{
    cfg->replication = -1;
    cfg->sync_timeout_ms = -1;
    cfg->max_lag_mb = -1;
    cfg->min_in_sync = -1;
}

uint32_t
bc_cluster_group_min_in_sync(int64_t setting, bc_repl_mode_t mode)
{
    if (setting >= 0) return setting > BC_CLUSTER_ISR_MAX ? BC_CLUSTER_ISR_MAX : (uint32_t)setting;
    return mode == BC_REPL_SYNC ? 1 : 0;
}

char *
bc_cluster_group_config_encode(const bc_cluster_group_config_t *cfg)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) return NULL;
    if (cfg->replication >= 0) {
        cJSON_AddStringToObject(o, "replication",
                                bc_repl_mode_name((bc_repl_mode_t)cfg->replication));
    }
    if (cfg->sync_timeout_ms >= 0) {
        cJSON_AddNumberToObject(o, "sync_timeout_ms", (double)cfg->sync_timeout_ms);
    }
    if (cfg->max_lag_mb >= 0) cJSON_AddNumberToObject(o, "max_lag_mb", (double)cfg->max_lag_mb);
    if (cfg->min_in_sync >= 0) {
        cJSON_AddNumberToObject(o, "min_in_sync", (double)cfg->min_in_sync);
    }
    return cluster_json_print(o);
}

bc_status_t
bc_cluster_group_config_decode(const char *json, size_t len, bc_cluster_group_config_t *out,
                               char *err, size_t errlen)
{
    bc_cluster_group_config_init(out);
    if (len == 0) return BC_OK;
    if (len > 16384) return BC_ETOOLARGE;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) return cluster_decode_fail(root, "group config", NULL, err, errlen);
    const cJSON *f;
    cJSON_ArrayForEach(f, root) {
        const char *bad = NULL;
        uint64_t v;
        bc_repl_mode_t mode;
        if (strcmp(f->string, "replication") == 0) {
            if (cJSON_IsString(f) && bc_repl_mode_parse(f->valuestring, &mode) == BC_OK) {
                out->replication = (int)mode;
            } else {
                bad = "replication";
            }
        } else if (strcmp(f->string, "sync_timeout_ms") == 0) {
            bad = cluster_take_u64(root, "sync_timeout_ms", &v, 1);
            if (bad == NULL &&
                (v < BC_REPL_SYNC_TIMEOUT_MIN_MS || v > BC_REPL_SYNC_TIMEOUT_MAX_MS)) {
                bad = "sync_timeout_ms";
            }
            if (bad == NULL) out->sync_timeout_ms = (int64_t)v;
        } else if (strcmp(f->string, "max_lag_mb") == 0) {
            bad = cluster_take_u64(root, "max_lag_mb", &v, 1);
            if (bad == NULL && v > BC_REPL_MAX_LAG_MAX_MB) bad = "max_lag_mb";
            if (bad == NULL) out->max_lag_mb = (int64_t)v;
        } else if (strcmp(f->string, "min_in_sync") == 0) {
            bad = cluster_take_u64(root, "min_in_sync", &v, 1);
            if (bad == NULL && v > BC_CLUSTER_ISR_MAX) bad = "min_in_sync";
            if (bad == NULL) out->min_in_sync = (int64_t)v;
        } else {
            bad = f->string;
        }
        if (bad != NULL) return cluster_decode_fail(root, "group config", bad, err, errlen);
    }
    cJSON_Delete(root);
    return BC_OK;
}

bc_status_t
bc_cluster_active_console(bc_zk_t *zk, const char *cluster, char *buf, size_t len)
{
    char dir[BC_CLUSTER_PATH_MAX];
    if (len > 0) buf[0] = '\0';
    bc_status_t st = bc_cluster_path(dir, sizeof(dir), cluster, "/console/election");
    if (st != BC_OK) return st;
    bc_zk_strings_t names;
    st = bc_zk_children(zk, dir, NULL, NULL, &names);
    if (st != BC_OK) return st;
    if (names.count == 0) {
        bc_zk_strings_free(&names);
        return BC_ENOTFOUND;
    }
    char path[BC_CLUSTER_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%.60s", dir, names.names[0]);
    bc_zk_strings_free(&names);
    char *data = NULL;
    size_t dlen = 0;
    st = bc_zk_get(zk, path, NULL, NULL, &data, &dlen, NULL);
    if (st == BC_OK) {
        cJSON *root = data ? cJSON_ParseWithLength(data, dlen) : NULL;
        const cJSON *admin = cJSON_GetObjectItemCaseSensitive(root, "admin");
        if (cJSON_IsString(admin) && strlen(admin->valuestring) < len) {
            memcpy(buf, admin->valuestring, strlen(admin->valuestring) + 1);
        } else {
            st = BC_EINVAL;
        }
        cJSON_Delete(root);
    }
    free(data);
    return st;
}
