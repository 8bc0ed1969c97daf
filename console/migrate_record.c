/*
 * migrate_record.c -- see migrate_record.h: the JSON codec of the two
 * records a migration keeps in ZooKeeper (one bucket's move, and the
 * migrations znode's controls and run summary).
 *
 * Every decoder reads hostile input: the size is bounded (RECORD_JSON_MAX),
 * every field is type- and range-checked, and a malformed record is an
 * error naming the field, never a half-filled struct used as if whole.
 */
#include "migrate_record.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_table.h"

#define RECORD_JSON_MAX (512u * 1024u)

/* ---- small JSON helpers ---- */

/* A malformed record: the reason in err, BC_EINVAL returned. */
#define record_fail(err, errlen, ...) bc_fail((err), (errlen), BC_EINVAL, __VA_ARGS__)

/* The JSON object a record holds (*doc: the caller deletes it).  Errors:
 * BC_ETOOLARGE, BC_EINVAL (not an object; err says so). */
static bc_status_t
record_parse_object(const char *json, size_t len, cJSON **doc, char *err, size_t errlen)
{
    *doc = NULL;
    if (len > RECORD_JSON_MAX) return BC_ETOOLARGE;
    cJSON *d = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(d)) {
        cJSON_Delete(d);
        return record_fail(err, errlen, "not a JSON object");
    }
    *doc = d;
    return BC_OK;
}

/* A non-negative integer field no larger than max; missing is `dflt`. */
static bool
json_uint(const cJSON *obj, const char *name, uint64_t max, uint64_t dflt, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (v == NULL) {
        *out = dflt;
        return true;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max ||
        v->valuedouble != floor(v->valuedouble)) {
        return false;
    }
    *out = (uint64_t)v->valuedouble;
    return true;
}

static bool
json_copy_str(const cJSON *obj, const char *name, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (v == NULL) {
        out[0] = '\0';
        return true;
    }
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) return false;
    snprintf(out, cap, "%s", v->valuestring);
    return true;
}

/* ---- records ---- */

char *
bc_mig_record_encode(const bc_mig_record_t *r)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return NULL;
    cJSON_AddStringToObject(doc, "state", r->state == BC_MIG_COPYING ? "copying" : "pending");
    cJSON_AddNumberToObject(doc, "bucket", r->bucket);
    cJSON_AddNumberToObject(doc, "from", r->from);
    cJSON_AddNumberToObject(doc, "to", r->to);
    cJSON_AddNumberToObject(doc, "epoch", (double)r->epoch);
    cJSON_AddStringToObject(doc, "from_node", r->from_node);
    cJSON_AddStringToObject(doc, "to_node", r->to_node);
    cJSON_AddNumberToObject(doc, "started_ms", (double)r->started_ms);
    cJSON_AddNumberToObject(doc, "attempts", r->attempts);
    cJSON_AddNumberToObject(doc, "retry_at_ms", (double)r->retry_at_ms);
    cJSON_AddStringToObject(doc, "error", r->error);
    if (r->cancelled) cJSON_AddBoolToObject(doc, "cancelled", true);
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return text;
}

bc_status_t
bc_mig_record_decode(const char *json, size_t len, uint32_t bucket, bc_mig_record_t *out,
                     char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->version = -1;
    cJSON *doc;
    bc_status_t pst = record_parse_object(json, len, &doc, err, errlen);
    if (pst != BC_OK) return pst;
    bc_status_t st = BC_OK;
    uint64_t v;
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(doc, "state");
    if (!cJSON_IsString(state) ||
        (strcmp(state->valuestring, "copying") != 0 && strcmp(state->valuestring, "pending") != 0)) {
        st = record_fail(err, errlen, "state: expected \"copying\" or \"pending\"");
        goto out;
    }
    out->state = strcmp(state->valuestring, "copying") == 0 ? BC_MIG_COPYING : BC_MIG_PENDING;
    out->bucket = bucket;
    if (!json_uint(doc, "bucket", UINT32_MAX, bucket, &v) || v != bucket) {
        st = record_fail(err, errlen, "bucket: does not match the znode name %u", bucket);
        goto out;
    }
    if (!json_uint(doc, "from", BC_TABLE_MAX_GID, 0, &v) || v == 0) {
        st = record_fail(err, errlen, "from: expected a group id");
        goto out;
    }
    out->from = (uint32_t)v;
    if (!json_uint(doc, "to", BC_TABLE_MAX_GID, 0, &v) || v == 0 || v == out->from) {
        st = record_fail(err, errlen, "to: expected a group id other than from");
        goto out;
    }
    out->to = (uint32_t)v;
    if (!json_uint(doc, "epoch", (uint64_t)1 << 53, 0, &out->epoch) ||
        (out->state == BC_MIG_COPYING && out->epoch == 0)) {
        st = record_fail(err, errlen, "epoch: expected a table epoch");
        goto out;
    }
    if (!json_copy_str(doc, "from_node", out->from_node, sizeof(out->from_node)) ||
        !json_copy_str(doc, "to_node", out->to_node, sizeof(out->to_node))) {
        st = record_fail(err, errlen, "from_node/to_node: expected node names");
        goto out;
    }
    if (!json_uint(doc, "started_ms", (uint64_t)1 << 53, 0, &v)) {
        st = record_fail(err, errlen, "started_ms: expected unix milliseconds");
        goto out;
    }
    out->started_ms = (int64_t)v;
    if (!json_uint(doc, "attempts", UINT32_MAX, 0, &v)) {
        st = record_fail(err, errlen, "attempts: expected a count");
        goto out;
    }
    out->attempts = (uint32_t)v;
    if (!json_uint(doc, "retry_at_ms", (uint64_t)1 << 53, 0, &v)) {
        st = record_fail(err, errlen, "retry_at_ms: expected unix milliseconds");
        goto out;
    }
    out->retry_at_ms = (int64_t)v;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    if (e != NULL && !cJSON_IsString(e)) {
        st = record_fail(err, errlen, "error: expected a string");
        goto out;
    }
    if (e != NULL) snprintf(out->error, sizeof(out->error), "%s", e->valuestring);
    const cJSON *cancelled = cJSON_GetObjectItemCaseSensitive(doc, "cancelled");
    if (cancelled != NULL && !cJSON_IsBool(cancelled)) {
        st = record_fail(err, errlen, "cancelled: expected true or false");
        goto out;
    }
    out->cancelled = cJSON_IsTrue(cancelled);
out:
    cJSON_Delete(doc);
    return st;
}

/* ---- control ---- */

void
bc_mig_control_init(bc_mig_control_t *c)
{
    memset(c, 0, sizeof(*c));
    c->version = -1;
}

void
bc_mig_control_add_done(bc_mig_control_t *c, const bc_mig_done_t *done)
{
    c->moved++;
    c->items += done->items;
    c->bytes += done->bytes;
    c->stalls[c->stall_next] = done->stall_ms;
    c->stall_next = (c->stall_next + 1) % BC_MIG_STALL_SAMPLES;
    if (c->nstalls < BC_MIG_STALL_SAMPLES) c->nstalls++;
    if (c->nrecent == BC_MIG_RECENT) {
        memmove(c->recent, c->recent + 1, (BC_MIG_RECENT - 1) * sizeof(c->recent[0]));
        c->nrecent--;
    }
    c->recent[c->nrecent++] = *done;
}

static int
u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

uint32_t
bc_mig_control_stall_pct(const bc_mig_control_t *c, double p)
{
    if (c->nstalls == 0) return 0;
    uint32_t *v = malloc(c->nstalls * sizeof(*v));
    if (v == NULL) return 0;
    memcpy(v, c->stalls, c->nstalls * sizeof(*v));
    qsort(v, c->nstalls, sizeof(*v), u32_cmp);
    /* nearest rank */
    double rank = ceil(p / 100.0 * c->nstalls);
    size_t i = rank < 1 ? 0 : (size_t)rank - 1;
    if (i >= c->nstalls) i = c->nstalls - 1;
    uint32_t r = v[i];
    free(v);
    return r;
}

char *
bc_mig_control_encode(const bc_mig_control_t *c)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc == NULL) return NULL;
    cJSON_AddBoolToObject(doc, "paused", c->paused);
    cJSON *held = cJSON_AddArrayToObject(doc, "held");
    for (uint32_t i = 0; held != NULL && i < c->nheld; i++) {
        cJSON_AddItemToArray(held, cJSON_CreateNumber(c->held[i]));
    }
    cJSON *run = cJSON_AddObjectToObject(doc, "run");
    if (run != NULL) {
        cJSON_AddNumberToObject(run, "started_ms", (double)c->run_started_ms);
        cJSON_AddNumberToObject(run, "finished_ms", (double)c->run_finished_ms);
        cJSON_AddNumberToObject(run, "moved", (double)c->moved);
        cJSON_AddNumberToObject(run, "items", (double)c->items);
        cJSON_AddNumberToObject(run, "bytes", (double)c->bytes);
        cJSON_AddNumberToObject(run, "failures", (double)c->failures);
        cJSON *stalls = cJSON_AddArrayToObject(run, "stall_ms");
        uint32_t first = c->nstalls < BC_MIG_STALL_SAMPLES ? 0 : c->stall_next;
        for (uint32_t i = 0; stalls != NULL && i < c->nstalls; i++) {
            cJSON_AddItemToArray(stalls, cJSON_CreateNumber(c->stalls[(first + i) %
                                                                      BC_MIG_STALL_SAMPLES]));
        }
        bc_mig_control_recent_json(c, run);
    }
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return text;
}

void
bc_mig_control_recent_json(const bc_mig_control_t *c, cJSON *parent)
{
    cJSON *recent = cJSON_AddArrayToObject(parent, "recent");
    for (uint32_t i = 0; recent != NULL && i < c->nrecent; i++) {
        const bc_mig_done_t *d = &c->recent[i];
        cJSON *o = cJSON_CreateObject();
        if (o == NULL) break;
        cJSON_AddNumberToObject(o, "bucket", d->bucket);
        cJSON_AddNumberToObject(o, "from", d->from);
        cJSON_AddNumberToObject(o, "to", d->to);
        cJSON_AddNumberToObject(o, "items", (double)d->items);
        cJSON_AddNumberToObject(o, "bytes", (double)d->bytes);
        cJSON_AddNumberToObject(o, "stall_ms", d->stall_ms);
        cJSON_AddNumberToObject(o, "finished_ms", (double)d->finished_ms);
        cJSON_AddItemToArray(recent, o);
    }
}

bc_status_t
bc_mig_control_decode(const char *json, size_t len, bc_mig_control_t *out, char *err,
                      size_t errlen)
{
    bc_mig_control_init(out);
    if (len == 0) return BC_OK;
    cJSON *doc;
    bc_status_t pst = record_parse_object(json, len, &doc, err, errlen);
    if (pst != BC_OK) return pst;
    bc_status_t st = BC_OK;
    uint64_t v;
    const cJSON *paused = cJSON_GetObjectItemCaseSensitive(doc, "paused");
    if (paused != NULL && !cJSON_IsBool(paused)) {
        st = record_fail(err, errlen, "paused: expected true or false");
        goto out;
    }
    out->paused = cJSON_IsTrue(paused);
    const cJSON *held = cJSON_GetObjectItemCaseSensitive(doc, "held"), *h;
    if (held != NULL && (!cJSON_IsArray(held) || cJSON_GetArraySize(held) > (int)BC_MIG_MAX_HELD)) {
        st = record_fail(err, errlen, "held: expected at most %u group ids", BC_MIG_MAX_HELD);
        goto out;
    }
    cJSON_ArrayForEach(h, held) {
        if (!cJSON_IsNumber(h) || h->valuedouble < 1 || h->valuedouble > BC_TABLE_MAX_GID ||
            h->valuedouble != floor(h->valuedouble)) {
            st = record_fail(err, errlen, "held: expected group ids");
            goto out;
        }
        out->held[out->nheld++] = (uint32_t)h->valuedouble;
    }
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(doc, "run");
    if (run == NULL) goto out;
    if (!cJSON_IsObject(run)) {
        st = record_fail(err, errlen, "run: expected an object");
        goto out;
    }
    if (!json_uint(run, "started_ms", (uint64_t)1 << 53, 0, &v)) goto bad_run;
    out->run_started_ms = (int64_t)v;
    if (!json_uint(run, "finished_ms", (uint64_t)1 << 53, 0, &v)) goto bad_run;
    out->run_finished_ms = (int64_t)v;
    if (!json_uint(run, "moved", (uint64_t)1 << 53, 0, &out->moved) ||
        !json_uint(run, "items", (uint64_t)1 << 53, 0, &out->items) ||
        !json_uint(run, "bytes", (uint64_t)1 << 53, 0, &out->bytes) ||
        !json_uint(run, "failures", (uint64_t)1 << 53, 0, &out->failures)) {
        goto bad_run;
    }
    const cJSON *stalls = cJSON_GetObjectItemCaseSensitive(run, "stall_ms"), *s;
    if (stalls != NULL && !cJSON_IsArray(stalls)) goto bad_run;
    cJSON_ArrayForEach(s, stalls) {
        if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > UINT32_MAX) goto bad_run;
        out->stalls[out->stall_next] = (uint32_t)s->valuedouble;
        out->stall_next = (out->stall_next + 1) % BC_MIG_STALL_SAMPLES;
        if (out->nstalls < BC_MIG_STALL_SAMPLES) out->nstalls++;
    }
    const cJSON *recent = cJSON_GetObjectItemCaseSensitive(run, "recent"), *r;
    if (recent != NULL && !cJSON_IsArray(recent)) goto bad_run;
    cJSON_ArrayForEach(r, recent) {
        bc_mig_done_t d;
        uint64_t b, f, t, it, by, sm, fin;
        if (!cJSON_IsObject(r) || !json_uint(r, "bucket", UINT32_MAX, 0, &b) ||
            !json_uint(r, "from", BC_TABLE_MAX_GID, 0, &f) ||
            !json_uint(r, "to", BC_TABLE_MAX_GID, 0, &t) ||
            !json_uint(r, "items", (uint64_t)1 << 53, 0, &it) ||
            !json_uint(r, "bytes", (uint64_t)1 << 53, 0, &by) ||
            !json_uint(r, "stall_ms", UINT32_MAX, 0, &sm) ||
            !json_uint(r, "finished_ms", (uint64_t)1 << 53, 0, &fin)) {
            goto bad_run;
        }
        d = (bc_mig_done_t){(uint32_t)b, (uint32_t)f, (uint32_t)t, it, by, (uint32_t)sm,
                            (int64_t)fin};
        if (out->nrecent == BC_MIG_RECENT) {
            memmove(out->recent, out->recent + 1, (BC_MIG_RECENT - 1) * sizeof(d));
            out->nrecent--;
        }
        out->recent[out->nrecent++] = d;
    }
    goto out;
bad_run:
    st = record_fail(err, errlen, "run: a field has the wrong type or is out of range");
out:
    cJSON_Delete(doc);
    return st;
}

/* ---- progress ---- */

void
bc_mig_progress_count(const uint32_t *m, const uint32_t *d, uint32_t nbuckets,
                      bc_mig_record_t *const *rec, const bc_mig_control_t *c,
                      bc_mig_progress_t *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t b = 0; b < nbuckets; b++) {
        if (rec != NULL && rec[b] != NULL && rec[b]->state == BC_MIG_COPYING) {
            out->moving++;
        } else if (bc_table_move_planned(m[b], d[b])) {
            out->pending++;
        }
    }
    out->running = c->run_started_ms != 0 && c->run_finished_ms == 0;
    /* BEHAVIOR: a run that ended is history.  Moves planned since (a new
     * group, a rebalance, while paused or not) belong to the next run:
     * "0 of N", not the last run's count beside the new moves. */
    bool new_work = !out->running && out->moving + out->pending > 0;
    out->done = new_work ? 0 : (uint32_t)(c->moved > UINT32_MAX ? UINT32_MAX : c->moved);
    out->total = out->done + out->moving + out->pending;
}
