/*
 * migrate.c -- see migrate.h: the migration set a reconcile round works
 * on, read from ZooKeeper (the records' JSON is migrate_record.c's), and
 * the retry backoff.
 */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bc_cluster.h"
#include "bc_log.h"

#define MIG_BACKOFF_BASE_MS   500
#define MIG_BACKOFF_MAX_MS    30000

/* ---- the set ---- */

bc_status_t
bc_mig_set_init(bc_mig_set_t *s, uint32_t nbuckets)
{
    memset(s, 0, sizeof(*s));
    s->nbuckets = nbuckets;
    bc_mig_control_init(&s->control);
    s->rec = calloc(nbuckets ? nbuckets : 1, sizeof(*s->rec));
    return s->rec != NULL ? BC_OK : BC_ENOMEM;
}

void
bc_mig_set_free(bc_mig_set_t *s)
{
    if (s->rec != NULL) {
        for (uint32_t b = 0; b < s->nbuckets; b++) free(s->rec[b]);
        free(s->rec);
    }
    memset(s, 0, sizeof(*s));
}

bc_status_t
bc_mig_set_put(bc_mig_set_t *s, const bc_mig_record_t *r)
{
    if (r->bucket >= s->nbuckets) return BC_EINVAL;
    if (s->rec[r->bucket] == NULL) {
        s->rec[r->bucket] = malloc(sizeof(*r));
        if (s->rec[r->bucket] == NULL) return BC_ENOMEM;
        s->count++;
    }
    *s->rec[r->bucket] = *r;
    return BC_OK;
}

bc_status_t
bc_mig_load(bc_zk_t *zk, const char *cluster, uint32_t nbuckets, bc_mig_set_t *out, char *err,
            size_t errlen)
{
    char dir[BC_CLUSTER_PATH_MAX], derr[256];
    bc_status_t st = bc_mig_set_init(out, nbuckets);
    if (st != BC_OK) return st;
    bc_cluster_path(dir, sizeof(dir), cluster, "/migrations");
    char *data = NULL;
    size_t len = 0;
    int32_t version = -1;
    st = bc_zk_get(zk, dir, NULL, NULL, &data, &len, &version);
    if (st == BC_ENOTFOUND) return BC_OK;  /* created on the first write */
    if (st != BC_OK) {
        snprintf(err, errlen, "cannot read %s", dir);
        bc_mig_set_free(out);
        return st;
    }
    if (bc_mig_control_decode(data ? data : "", len, &out->control, derr, sizeof(derr)) != BC_OK) {
        log_warn("console: migrations record malformed (%s); using the defaults", derr);
        bc_mig_control_init(&out->control);
    }
    out->control.version = version;
    free(data);

    bc_zk_strings_t names;
    st = bc_zk_children(zk, dir, NULL, NULL, &names);
    if (st != BC_OK) {
        snprintf(err, errlen, "cannot list %s", dir);
        bc_mig_set_free(out);
        return st;
    }
    for (int i = 0; i < names.count && st == BC_OK; i++) {
        char *end;
        unsigned long b = strtoul(names.names[i], &end, 10);
        if (*end != '\0' || end == names.names[i] || b >= nbuckets) {
            log_warn("console: ignoring znode migrations/%s: not a bucket", names.names[i]);
            continue;
        }
        char path[BC_CLUSTER_PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/%s", dir, names.names[i]);
        bc_status_t gst = bc_zk_get(zk, path, NULL, NULL, &data, &len, &version);
        if (gst == BC_ENOTFOUND) continue;
        if (gst != BC_OK) {
            st = gst;
            snprintf(err, errlen, "cannot read %s", path);
            break;
        }
        bc_mig_record_t r;
        if (bc_mig_record_decode(data ? data : "", len, (uint32_t)b, &r, derr, sizeof(derr)) ==
            BC_OK) {
            r.version = version;
            st = bc_mig_set_put(out, &r);
        } else {
            /* Still counted, so the console can delete it. */
            log_warn("console: ignoring malformed migration record of bucket %lu: %s", b, derr);
            memset(&r, 0, sizeof(r));
            r.bucket = (uint32_t)b;
            r.state = BC_MIG_PENDING;
            r.version = version;
            st = bc_mig_set_put(out, &r);
        }
        free(data);
        data = NULL;
    }
    bc_zk_strings_free(&names);
    if (st != BC_OK) bc_mig_set_free(out);
    return st;
}

int64_t
bc_mig_backoff_ms(uint32_t attempts)
{
    int64_t d = MIG_BACKOFF_BASE_MS;
    for (uint32_t i = 1; i < attempts && d < MIG_BACKOFF_MAX_MS; i++) d *= 2;
    return d > MIG_BACKOFF_MAX_MS ? MIG_BACKOFF_MAX_MS : d;
}

/* ---- backing off per destination ---- */

const bc_mig_dest_backoff_t *
bc_mig_dest_find(const bc_mig_dest_backoff_t *v, size_t n, uint32_t gid)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i].gid == gid) return &v[i];
    }
    return NULL;
}

bool
bc_mig_dest_backing_off(const bc_mig_dest_backoff_t *v, size_t n, uint32_t gid, const char *node,
                        int64_t now_ms)
{
    const bc_mig_dest_backoff_t *e = bc_mig_dest_find(v, n, gid);
    return e != NULL && strcmp(e->node, node) == 0 && now_ms < e->retry_at_ms;
}

bool
bc_mig_dest_note(bc_mig_dest_backoffs_t *d, uint32_t gid, const char *node, bool ok,
                 const char *error, int64_t now_ms)
{
    bc_mig_dest_backoff_t *e = (bc_mig_dest_backoff_t *)bc_mig_dest_find(d->v, d->n, gid);
    if (ok) {
        if (e != NULL && strcmp(e->node, node) == 0) *e = d->v[--d->n];
        return false;
    }
    if (e == NULL) {
        if (d->n == d->cap) {
            size_t cap = d->cap ? d->cap * 2 : 8;
            bc_mig_dest_backoff_t *grown = realloc(d->v, cap * sizeof(*grown));
            if (grown == NULL) return false;
            d->v = grown;
            d->cap = cap;
        }
        e = &d->v[d->n++];
        memset(e, 0, sizeof(*e));
        e->gid = gid;
    }
    if (strcmp(e->node, node) != 0) {
        /* another primary since: its own count */
        snprintf(e->node, sizeof(e->node), "%s", node);
        e->failures = 0;
        e->retry_at_ms = 0;
    }
    /* Failures of copies that were started before the backoff began (they
     * were in flight) do not lengthen it: only one that ran after it. */
    if (e->failures > 0 && now_ms < e->retry_at_ms) return false;
    e->failures++;
    int64_t delay = BC_MIG_DEST_BACKOFF_BASE_MS;
    for (uint32_t i = 1; i < e->failures && delay < BC_MIG_DEST_BACKOFF_MAX_MS; i++) delay *= 2;
    if (delay > BC_MIG_DEST_BACKOFF_MAX_MS) delay = BC_MIG_DEST_BACKOFF_MAX_MS;
    e->retry_at_ms = now_ms + delay;
    snprintf(e->error, sizeof(e->error), "%s", error ? error : "");
    return true;
}

void
bc_mig_dest_backoffs_free(bc_mig_dest_backoffs_t *d)
{
    free(d->v);
    memset(d, 0, sizeof(*d));
}
