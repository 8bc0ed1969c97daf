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
 *   lru_crawler     crawl/metadump: "CLIENT_ERROR lru crawler disabled"
 *                   (memcached -o no_lru_crawler); tocrawl/sleep settings
 *                   are checked and accepted
 *   slabs reassign  "CLIENT_ERROR slab reassignment disabled" (no slabs
 *                   here); slabs automove and lru tune/mode/temp_ttl are
 *                   checked and accepted, with nothing to tune
 *   refresh_certs   "Error TLS not enabled" (memcached built with TLS,
 *                   started without it)
 * cache_memlimit really changes the cache's memory limit.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "bc_log.h"
#include "bc_mcmeta.h"
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
    } else {
        bc_cache_set_mem_limit(pc->env->cache, (size_t)mb * 1024 * 1024);
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

static void
cmd_lru_crawler(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    const bc_mc_token_t *t = req->tok;
    uint32_t v;
    if (req->ntok == 4 && (tok_eq(&t[1], "crawl") || tok_eq(&t[1], "metadump"))) {
        bc__proto_reply_line(pc, "CLIENT_ERROR lru crawler disabled");
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
        REPLY(pc, "Error TLS not enabled\r\n");
        break;
    default:
        break;
    }
    return BC_OK;
}
