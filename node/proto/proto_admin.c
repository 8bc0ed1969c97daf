/*
 * proto_admin.c -- memcached's administration commands on the data port:
 * version, shutdown, cache_memlimit, slabs, lru, lru_crawler, watch and
 * refresh_certs, answered as memcached 1.6.18 answers them.
 *
 * What the node does not have it answers the way memcached answers with
 * the feature switched off, so tools see a familiar refusal, never an
 * unknown command:
 *   shutdown        "ERROR: shutdown not enabled" unless the node was
 *                   started with -A / --enable-shutdown (as memcached)
 *   watch           "CLIENT_ERROR watch commands not allowed" (memcached -W)
 *   lru_crawler     crawl answers OK (expired items go when they are
 *                   met; there is nothing to crawl for); tocrawl/sleep
 *                   settings are checked and accepted
 *   slabs reassign  "CLIENT_ERROR slab reassignment disabled" (no slabs
 *                   here); slabs automove and lru tune/mode/temp_ttl are
 *                   checked and accepted, with nothing to tune
 *   refresh_certs   "Error TLS not enabled" (memcached built with TLS,
 *                   started without it); with -Z the certificates are
 *                   read again (net/tls.h): "OK", or memcached's error
 *                   text -- sent even under noreply, as memcached does --
 *                   and the certificates in force stay
 * cache_memlimit really changes the cache's memory limit, and "lru_crawler
 * metadump" really lists the items: memcached's line per live item, its
 * slab class and size emulated as "me" does (meta.c).  memcached streams
 * the dump whole from its crawler thread; here it is streamed by the
 * connection's worker, METADUMP_CHUNK_BYTES at a time: the next chunk is
 * queued when the output queue has drained (bc_proto_stream, net/handler.h
 * stream), going on from where the walk stopped (a bucket, its scan
 * cursor), so a dump of any size is complete and a client that reads
 * slowly holds about one chunk.  The connection's later commands wait
 * behind END, as memcached's do.  A cluster node dumps the items it
 * holds, as memcached dumps its own.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "bc_log.h"
#include "bc_mcmeta.h"
#include "engine/cache.h"
#include "proto/proto_int.h"

static bool
tok_eq(const bc_mc_token_t *t, const char *lit)
{
    size_t n = strlen(lit);
    return t->n == n && memcmp(t->p, lit, n) == 0;
}

/* memcached's set_noreply_maybe: the last token split is "noreply". */
static bool
noreply_maybe(const bc_mc_request_t *req)
{
    return req->ntok >= 2 && tok_eq(&req->tok[req->ntok - 2], "noreply");
}

static void
admin_refresh_certs(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    char err[512];
    if (pc->env->tls == NULL) {
        REPLY(pc, "Error TLS not enabled\r\n");
        return;
    }
    if (bc_tls_reload(pc->env->tls, err, sizeof(err)) != BC_OK) {
        log_warn("refresh_certs: %s", err);
        bc__proto_reply_fmt(pc, "%s\r\n", err);
        return;
    }
    log_info("refresh_certs: TLS certificates re-read");
    if (!noreply_maybe(req)) REPLY(pc, "OK\r\n");
}

/* strtol/strtod-style checks for the settings memcached accepts. */
static bool
tok_number(const bc_mc_token_t *t, bool real, double *out)
{
    char buf[64], *end;
    if (t->n == 0 || t->n >= sizeof(buf)) return false;
    memcpy(buf, t->p, t->n);
    buf[t->n] = '\0';
    double v = real ? strtod(buf, &end) : (double)strtoll(buf, &end, 10);
    if (end == buf) return false;
    if (*end != '\0' && *end != ' ' && !(*end >= '\t' && *end <= '\r')) return false;
    *out = v;
    return true;
}

static void
out(bc_proto_conn_t *pc, bool noreply, const char *line)
{
    if (!noreply) bc__proto_reply_line(pc, line);
}

/* memcached's safe_strtoul: strtoul semantics, kept in 32 bits. */
static bool
tok_u32v(const bc_mc_token_t *t, uint32_t *v)
{
    uint64_t x;
    if (!bc_mc_meta_u64(t->p, t->n, &x)) return false;
    *v = (uint32_t)x;
    return true;
}

static void
cmd_memlimit(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    bool noreply = noreply_maybe(req);
    uint32_t mb;
    if (!tok_u32v(&req->tok[1], &mb)) {
        out(pc, noreply, "ERROR");
    } else if (mb < 8) {
        out(pc, noreply, "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m");
    } else if (mb > 1000000000) {
        out(pc, noreply, "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes");
    } else if (bc_cache_set_mem_limit(pc->env->cache, (size_t)mb * 1024 * 1024) != BC_OK) {
        /* memcached's answer to a limit it cannot adjust to (with -L,
         * above the preallocated size); here: above the start -m, which
         * the segment arena was reserved for (engine/cache.h). */
        out(pc, noreply, "MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust");
    } else {
        log_info("cache_memlimit: memory limit set to %u MB", mb);
        out(pc, noreply, "OK");
    }
}

static bc_status_t
cmd_shutdown(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    if (!pc->env->shutdown_enabled) {
        bc__proto_reply_line(pc, "ERROR: shutdown not enabled");
        return BC_OK;
    }
    if (req->ntok == 2 || (req->ntok == 3 && tok_eq(&req->tok[1], "graceful"))) {
        log_info("shutdown command from connection %d", pc->id);
        /* main() takes SIGINT with sigwait and stops the node cleanly. */
        kill(getpid(), SIGINT);
        return BC_ECLOSED;
    }
    bc__proto_reply_line(pc, "CLIENT_ERROR invalid shutdown mode");
    return BC_OK;
}

static void
cmd_slabs(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    double d;
    if (req->ntok == 5 && tok_eq(&req->tok[1], "reassign")) {
        bc__proto_reply_line(pc, "CLIENT_ERROR slab reassignment disabled");
        return;
    }
    if (req->ntok >= 4 && tok_eq(&req->tok[1], "automove")) {
        bool noreply = noreply_maybe(req);
        uint32_t level;
        if (tok_eq(&req->tok[2], "ratio")) {
            if (req->ntok < 5 || !tok_number(&req->tok[3], true, &d)) {
                out(pc, noreply, "ERROR");
                return;
            }
        } else if (!tok_u32v(&req->tok[2], &level)) {
            out(pc, noreply, "CLIENT_ERROR bad command line format");
            return;
        } else if (level > 2) {
            out(pc, noreply, "ERROR");
            return;
        }
        out(pc, noreply, "OK");
        return;
    }
    bc__proto_reply_line(pc, "ERROR");
}

static void
cmd_lru(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    bool noreply = noreply_maybe(req);
    const bc_mc_token_t *t = req->tok;
    double hot_factor, factor, ttl;
    uint32_t hot, warm;

    if (tok_eq(&t[1], "tune") && req->ntok >= 7) {
        if (!tok_u32v(&t[2], &hot) || !tok_u32v(&t[3], &warm) ||
            !tok_number(&t[4], true, &hot_factor) || !tok_number(&t[5], true, &factor)) {
            out(pc, noreply, "ERROR");
        } else if (hot + warm > 80) {
            out(pc, noreply, "ERROR hot and warm pcts must not exceed 80");
        } else if (factor <= 0 || hot_factor <= 0) {
            out(pc, noreply, "ERROR hot/warm age factors must be greater than 0");
        } else {
            out(pc, noreply, "OK");
        }
    } else if (tok_eq(&t[1], "mode") && req->ntok >= 4) {
        out(pc, noreply, tok_eq(&t[2], "flat") || tok_eq(&t[2], "segmented") ? "OK" : "ERROR");
    } else if (tok_eq(&t[1], "temp_ttl") && req->ntok >= 4) {
        out(pc, noreply, tok_number(&t[2], false, &ttl) ? "OK" : "ERROR");
    } else {
        out(pc, noreply, "ERROR");
    }
}

/* ---- lru_crawler crawl / metadump ---- */

/* memcached's slab class ids: 1 .. MAX_NUMBER_OF_SLAB_CLASSES - 1. */
#define MC_SLAB_CLASSES 64u
/* A dump queues about this much at a time, then waits for the client to
 * read it (bc_proto_stream): a dump of any size costs bounded memory. */
#define METADUMP_CHUNK_BYTES (256u * 1024u)
/* ... in passes of about this much, each one shard lock hold. */
#define METADUMP_PASS_BYTES (16u * 1024u)

typedef enum crawl_target {
    CRAWL_BADCLASS,                /* "BADCLASS invalid class id" */
    CRAWL_NONE,                    /* no class named (","): "NOTSTARTED" */
    CRAWL_CLASSES,                 /* want[] says which */
    CRAWL_HASH,                    /* every item, in hash-table order */
} crawl_target_t;

/*
 * memcached's lru_crawler_crawl argument: "all", "hash", or class ids
 * separated by commas (empty pieces skipped, as strtok does), each
 * safe_strtoul-valid and within 1..63.
 */
static crawl_target_t
crawl_parse(const bc_mc_token_t *t, bool want[MC_SLAB_CLASSES])
{
    memset(want, 0, MC_SLAB_CLASSES * sizeof(bool));
    if (tok_eq(t, "hash")) return CRAWL_HASH;
    if (tok_eq(t, "all")) {
        for (uint32_t i = 1; i < MC_SLAB_CLASSES; i++) want[i] = true;
        return CRAWL_CLASSES;
    }
    const char *p = t->p, *end = t->p + t->n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        if (stop > p) {
            bc_mc_token_t piece = {.p = p, .n = (uint32_t)(stop - p)};
            uint32_t id;
            if (!tok_u32v(&piece, &id) || id < 1 || id >= MC_SLAB_CLASSES) return CRAWL_BADCLASS;
            want[id] = true;
        }
        p = stop + 1;
    }
    for (uint32_t i = 1; i < MC_SLAB_CLASSES; i++) {
        if (want[i]) return CRAWL_CLASSES;
    }
    return CRAWL_NONE;
}

/*
 * A dump in progress on its connection (pc->dump): what it lists and where
 * its walk goes on.  The walk is bc_cache_bucket_scan's cursor within one
 * bucket, the buckets in turn; nothing here points into the cache, so
 * items stored, moved or removed between two chunks cannot hurt it (they
 * may or may not be listed, as under memcached's concurrent crawler).
 */
struct bc_proto_dump {
    bool want[MC_SLAB_CLASSES];
    bool all;                      /* "hash": every class */
    uint32_t now;                  /* the cache clock at the start of the dump */
    uint32_t bucket;               /* the bucket being walked */
    uint32_t cursor;               /* where its walk goes on (0: from its start) */
};

/* One scan call's work (metadump_item's argument). */
typedef struct metadump_pass {
    const bc_proto_dump_t *d;
    bc_outq_t *out;
    size_t bytes;                  /* queued by this pass */
    bool oom;
} metadump_pass_t;

/* "key=" + a 250-byte key URL-encoded + the numbers. */
#define METADUMP_LINE_MAX (3u * BC_KEY_MAX_LEN + 160u)

/* memcached's uriencode: all but [A-Za-z0-9._~-] as %XX. */
static size_t
uri_encode(const char *src, size_t n, char *dst)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            dst[d++] = (char)c;
        } else {
            dst[d++] = '%';
            dst[d++] = hex[c >> 4];
            dst[d++] = hex[c & 15];
        }
    }
    return d;
}

/* One item (shard lock held; the walk's item function).  Every item of
 * the chain in progress is listed (bc_cache_bucket_scan finishes it
 * whatever this returns); false once the pass has queued its share. */
static bool
metadump_item(const bc_item_t *it, void *arg)
{
    metadump_pass_t *ps = arg;
    const bc_proto_dump_t *d = ps->d;
    if (ps->oom) return false;
    uint64_t ntotal = bc__proto_mc_item_size(it);
    uint32_t cls = bc__proto_mc_slab_class(ntotal);
    if (!d->all && (cls >= MC_SLAB_CLASSES || !d->want[cls])) return true;

    bc_item_meta_t m;
    bc_cache_item_meta(it, d->now, &m);
    char *p = bc_outq_reserve(ps->out, METADUMP_LINE_MAX);
    if (p == NULL) {
        ps->oom = true;
        return false;
    }
    memcpy(p, "key=", 4);
    size_t n = 4 + uri_encode(bc_item_key(it), bc_item_nkey(it), p + 4);
    int k = snprintf(p + n, METADUMP_LINE_MAX - n,
                     " exp=%lld la=%llu cas=%llu fetch=%s cls=%u size=%llu\n",
                     m.exptime == 0 ? -1LL : (long long)m.exptime, (unsigned long long)m.atime,
                     (unsigned long long)it->cas, m.fetched ? "yes" : "no", cls,
                     (unsigned long long)ntotal);
    if (k <= 0 || (size_t)k >= METADUMP_LINE_MAX - n) return true;   /* cannot happen */
    n += (size_t)k;
    if (!bc_outq_commit(ps->out, n)) {
        ps->oom = true;
        return false;
    }
    ps->bytes += n;
    return ps->bytes < METADUMP_PASS_BYTES;
}

/* proto_int.h */
bc_status_t
bc__proto_dump_more(bc_proto_conn_t *pc)
{
    bc_proto_dump_t *d = pc->dump;
    if (d == NULL) return BC_OK;
    bc_cache_t *cache = pc->env->cache;
    uint32_t nb = bc_cache_nbuckets(cache);
    size_t queued = 0;
    /* A pass at a time (one shard lock hold each, a few KiB of lines), so
     * writers of the shard never wait long behind a dump. */
    while (d->bucket < nb && queued < METADUMP_CHUNK_BYTES) {
        metadump_pass_t ps = {.d = d, .out = &pc->out};
        if (bc_cache_bucket_scan(cache, d->bucket, &d->cursor, metadump_item, &ps) != BC_OK) {
            d->cursor = 0;              /* cannot happen: nb is the cache's */
        }
        if (ps.oom) {
            pc->oom = true;
            return BC_ENOMEM;
        }
        queued += ps.bytes;
        if (d->cursor == 0) d->bucket++;
    }
    if (d->bucket < nb) return BC_OK;   /* more when the output drains */
    bc__proto_dump_release(pc);
    REPLY(pc, "END\r\n");
    return pc->oom ? BC_ENOMEM : BC_OK;
}

/* proto_int.h */
void
bc__proto_dump_release(bc_proto_conn_t *pc)
{
    free(pc->dump);
    pc->dump = NULL;
}

/*
 * "lru_crawler metadump": the first chunk now; the rest a chunk at a time
 * as the client reads (bc_proto_stream), the connection's later commands
 * waiting behind END (bc_proto_waiting).
 */
static void
cmd_metadump(bc_proto_conn_t *pc, const bc_mc_token_t *arg)
{
    bool want[MC_SLAB_CLASSES];
    crawl_target_t target = crawl_parse(arg, want);
    if (target == CRAWL_BADCLASS || target == CRAWL_NONE) {
        bc__proto_reply_line(pc, target == CRAWL_NONE ? "NOTSTARTED no items to crawl"
                                                      : "BADCLASS invalid class id");
        return;
    }
    if (pc->dump != NULL) return;       /* cannot happen: input waits behind a dump */
    bc_proto_dump_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        pc->oom = true;
        return;
    }
    memcpy(d->want, want, sizeof(d->want));
    d->all = target == CRAWL_HASH;
    d->now = bc_cache_now(pc->env->cache);
    pc->dump = d;
    (void)bc__proto_dump_more(pc);
}

static void
cmd_lru_crawler(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    const bc_mc_token_t *t = req->tok;
    bool want[MC_SLAB_CLASSES];
    uint32_t v;
    if (req->ntok == 4 && tok_eq(&t[1], "crawl")) {
        switch (crawl_parse(&t[2], want)) {
        case CRAWL_BADCLASS: bc__proto_reply_line(pc, "BADCLASS invalid class id"); break;
        case CRAWL_HASH: bc__proto_reply_line(pc, "ERROR an unknown error happened"); break;
        case CRAWL_NONE: bc__proto_reply_line(pc, "NOTSTARTED no items to crawl"); break;
        default: bc__proto_reply_line(pc, "OK"); break;
        }
    } else if (req->ntok == 4 && tok_eq(&t[1], "metadump")) {
        cmd_metadump(pc, &t[2]);
    } else if (req->ntok == 4 && tok_eq(&t[1], "tocrawl")) {
        bc__proto_reply_line(pc, tok_u32v(&t[2], &v) ? "OK" : "CLIENT_ERROR bad command line format");
    } else if (req->ntok == 4 && tok_eq(&t[1], "sleep")) {
        if (!tok_u32v(&t[2], &v)) {
            bc__proto_reply_line(pc, "CLIENT_ERROR bad command line format");
        } else if (v > 1000000) {
            bc__proto_reply_line(pc, "CLIENT_ERROR sleep must be one second or less");
        } else {
            bc__proto_reply_line(pc, "OK");
        }
    } else if (req->ntok == 3 && tok_eq(&t[1], "enable")) {
        bc__proto_reply_line(pc, "ERROR failed to start lru crawler thread");
    } else if (req->ntok == 3 && tok_eq(&t[1], "disable")) {
        bc__proto_reply_line(pc, "OK");
    } else {
        bc__proto_reply_line(pc, "ERROR");
    }
}

bc_status_t
bc__proto_admin(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    switch (req->cmd) {
    case BC_MC_CMD_VERSION:
        REPLY(pc, "VERSION " BC_MC_PROTOCOL_VERSION "\r\n");
        break;
    case BC_MC_CMD_SHUTDOWN:
        return cmd_shutdown(pc, req);
    case BC_MC_CMD_CACHE_MEMLIMIT:
        cmd_memlimit(pc, req);
        break;
    case BC_MC_CMD_SLABS:
        cmd_slabs(pc, req);
        break;
    case BC_MC_CMD_LRU:
        cmd_lru(pc, req);
        break;
    case BC_MC_CMD_LRU_CRAWLER:
        cmd_lru_crawler(pc, req);
        break;
    case BC_MC_CMD_WATCH:
        out(pc, noreply_maybe(req), "CLIENT_ERROR watch commands not allowed");
        break;
    case BC_MC_CMD_REFRESH_CERTS:
        admin_refresh_certs(pc, req);
        break;
    default:
        break;
    }
    return BC_OK;
}
