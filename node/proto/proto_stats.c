/*
 * proto_stats.c -- the text protocol's "stats" command: "stats" (the
 * general figures), "stats settings", "stats items", "stats slabs",
 * "stats sizes", "stats cachedump", "stats conns", "stats detail" (detail.c),
 * "stats replication" and "stats reset", with memcached's names so
 * existing dashboards and tools work.
 *
 * HOW
 *   The figures come from three places, none of them this layer's own:
 *   the cache (bc_cache_get_stats), the server's summed per-worker
 *   counters (net/stats.h, through the env's server_stats hook; without a
 *   hook, this connection's worker alone), replication (the env's
 *   repl_stats hook writes its "STAT repl_*" lines) and the read-through
 *   origin ("STAT origin_*", origin/origin.h).  "stats reset" goes to the
 *   env's stats_reset hook and to the origin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bc_mcmeta.h"
#include "proto/proto_int.h"

/* Server-wide figures, or this connection's worker alone without a hook. */
static void
stats_collect(bc_proto_conn_t *pc, bc_server_stats_t *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (pc->env->server_stats != NULL) {
        pc->env->server_stats(pc->env->hook_arg, ss);
    } else {
        ss->threads = 1;
        bc_stats_accumulate(&ss->totals, pc->stats);
    }
}

/* The read-through lines (with an origin only). */
static void
stats_origin(bc_proto_conn_t *pc)
{
    char buf[2048];
    if (pc->env->origin == NULL) return;
    size_t n = bc_origin_format_stats(pc->env->origin, buf, sizeof(buf));
    if (n > 0) bc__proto_reply_bytes(pc, buf, n);
}

/* The replication lines (cluster mode only). */
static void
stats_replication(bc_proto_conn_t *pc)
{
    char buf[2048];
    if (pc->env->repl_stats == NULL) return;
    size_t n = pc->env->repl_stats(pc->env->repl_ctx, buf, sizeof(buf));
    if (n > 0) bc__proto_reply_bytes(pc, buf, n);
}

static void
stats_general(bc_proto_conn_t *pc)
{
    bc_proto_env_t *env = pc->env;
    bc_server_stats_t ss;
    bc_cache_stats_t cs;
    struct rusage ru;
    uint32_t now = bc_cache_now(env->cache);

    stats_collect(pc, &ss);
    bc_cache_get_stats(env->cache, &cs);
    getrusage(RUSAGE_SELF, &ru);

    STAT_U64(pc, "pid", (uint64_t)getpid());
    STAT_U64(pc, "uptime", (int64_t)now > (int64_t)env->started ? now - (uint64_t)env->started : 0);
    STAT_U64(pc, "time", now);
    /* "version" is the memcached protocol level (what "version" answers,
     * what dashboards compare); bucketcache's own release is next. */
    STAT_STR(pc, "version", BC_MC_PROTOCOL_VERSION);
    STAT_STR(pc, "bucketcache_version", BC_VERSION);
    STAT_U64(pc, "pointer_size", sizeof(void *) * 8);
    bc__proto_reply_fmt(pc, "STAT rusage_user %ld.%06ld\r\n", (long)ru.ru_utime.tv_sec,
              (long)ru.ru_utime.tv_usec);
    bc__proto_reply_fmt(pc, "STAT rusage_system %ld.%06ld\r\n", (long)ru.ru_stime.tv_sec,
              (long)ru.ru_stime.tv_usec);
    STAT_U64(pc, "max_connections", env->max_conns);
    STAT_U64(pc, "curr_connections", ss.curr_connections);
    STAT_U64(pc, "total_connections", ss.total_connections);
    STAT_U64(pc, "rejected_connections", ss.rejected_connections);
    /* one structure per open connection; memcached also counts its
     * listeners and keeps freed ones */
    STAT_U64(pc, "connection_structures", ss.curr_connections);
#define BC__STATS_LINE(name, metric, labels, desc) STAT_U64(pc, #name, ss.totals.name);
    BC_THREAD_STATS(BC__STATS_LINE)
#undef BC__STATS_LINE
    STAT_U64(pc, "limit_maxbytes", cs.mem_limit);
    /* Past max_connections a connection is accepted and closed at once
     * (rejected_connections), as memcached does with -c; accepts pause only
     * when the process runs out of descriptors. */
    STAT_U64(pc, "accepting_conns", ss.accepting_conns ? 1 : 0);
    STAT_U64(pc, "listen_disabled_num", ss.listen_disabled_num);
    STAT_U64(pc, "time_in_listen_disabled_us", ss.time_in_listen_disabled_us);
    STAT_U64(pc, "threads", ss.threads);
    STAT_U64(pc, "bytes", cs.mem_used);
    STAT_U64(pc, "data_bytes", cs.data_bytes);
    STAT_U64(pc, "curr_items", cs.curr_items);
    STAT_U64(pc, "total_items", cs.total_items);
    STAT_U64(pc, "expired_unfetched", cs.expired_unfetched);
    STAT_U64(pc, "evicted_unfetched", cs.evicted_unfetched);
    STAT_U64(pc, "evictions", cs.evictions);
    STAT_U64(pc, "reclaimed", cs.reclaimed);
    STAT_U64(pc, "expired_active", cs.expired_active);
    STAT_U64(pc, "flushed", cs.flushed);
    STAT_U64(pc, "pinned_bytes", cs.pinned_bytes);
    if (env->tls != NULL) STAT_U64(pc, "time_since_server_cert_refresh", bc_tls_age_s(env->tls));
    stats_replication(pc);
    stats_origin(pc);
    REPLY(pc, "END\r\n");
}

static void
stats_settings(bc_proto_conn_t *pc)
{
    bc_proto_env_t *env = pc->env;
    bc_cache_stats_t cs;

    bc_cache_get_stats(env->cache, &cs);
    STAT_U64(pc, "maxbytes", cs.mem_limit);
    STAT_U64(pc, "maxconns", env->max_conns);
    STAT_U64(pc, "tcpport", env->port);
    STAT_U64(pc, "udpport", 0);
    STAT_STR(pc, "inter", env->listen_addr != NULL ? env->listen_addr : "NULL");
    STAT_U64(pc, "verbosity", (uint64_t)atomic_load(&env->verbosity));
    STAT_STR(pc, "stat_key_prefix", ":");
    STAT_STR(pc, "detail_enabled", atomic_load(&env->detail_on) ? "yes" : "no");
    STAT_STR(pc, "evictions", "on");
    STAT_U64(pc, "num_threads", env->nthreads);
    STAT_STR(pc, "cas_enabled", "yes");
    STAT_U64(pc, "tcp_backlog", (uint64_t)(env->backlog > 0 ? env->backlog : 0));
    STAT_U64(pc, "item_size_max", bc_cache_max_item_size(env->cache));
    STAT_STR(pc, "flush_enabled", "yes");
    STAT_STR(pc, "hash_algorithm", "murmur3");
    STAT_STR(pc, "eviction_policy", bc_cache_policy_name(env->cache));
    STAT_U64(pc, "buckets", bc_cache_nbuckets(env->cache));
    STAT_U64(pc, "max_conn_buffer", env->max_conn_buffer);
    STAT_U64(pc, "idle_timeout", env->idle_timeout);
    STAT_STR(pc, "auth_enabled_ascii", bc_proto_auth_source(env->auth));
    STAT_STR(pc, "ssl_enabled", env->tls != NULL ? "yes" : "no");
    if (env->tls != NULL) {
        const bc_tls_config_t *tc = bc_tls_config(env->tls);
        STAT_STR(pc, "ssl_chain_cert", tc->chain_cert);
        STAT_STR(pc, "ssl_key", tc->key != NULL ? tc->key : "NULL");
        STAT_U64(pc, "ssl_verify_mode", (uint64_t)tc->verify_mode);
        STAT_STR(pc, "ssl_ciphers", tc->ciphers != NULL ? tc->ciphers : "NULL");
        STAT_STR(pc, "ssl_ca_cert", tc->ca_cert != NULL ? tc->ca_cert : "NULL");
        STAT_STR(pc, "ssl_min_version", bc_tls_version_name(tc->min_version));
    }
    REPLY(pc, "END\r\n");
}

/*
 * memcached reports items per slab class.  There are no slab classes here:
 * everything is reported as class 1, and nothing at all when empty, as
 * memcached does for an empty class.
 */
static void
stats_items(bc_proto_conn_t *pc)
{
    bc_server_stats_t ss;
    bc_cache_stats_t cs;

    bc_cache_get_stats(pc->env->cache, &cs);
    if (cs.curr_items > 0) {
        stats_collect(pc, &ss);
        STAT_U64(pc, "items:1:number", cs.curr_items);
        STAT_U64(pc, "items:1:mem_requested", cs.data_bytes);
        STAT_U64(pc, "items:1:evicted", cs.evictions);
        STAT_U64(pc, "items:1:outofmemory", ss.totals.store_no_memory);
        STAT_U64(pc, "items:1:reclaimed", cs.reclaimed);
        STAT_U64(pc, "items:1:expired_unfetched", cs.expired_unfetched);
        STAT_U64(pc, "items:1:evicted_unfetched", cs.evicted_unfetched);
    }
    REPLY(pc, "END\r\n");
}

/* "stats cachedump <class> <limit>" (memcdump): the items memcached would
 * keep in that slab class, at most limit (0 = all) and 2 MB of lines. */
typedef struct cachedump {
    bc_proto_conn_t *pc;
    uint32_t cls, limit, shown;
    size_t bytes;
} cachedump_t;

static bool
cachedump_item(const bc_item_t *it, void *arg)
{
    cachedump_t *d = arg;
    if (d->limit != 0 && d->shown >= d->limit) return false;
    if (it->iflags & BC_ITEM_KEY_BINARY) return true;      /* as memcached */
    if (bc__proto_mc_slab_class(bc__proto_mc_item_size(it)) != d->cls) return true;
    char line[BC_MC_KEY_MAX_LEN + 64];
    size_t nkey = strnlen(bc_item_key(it), bc_item_nkey(it));
    int n = snprintf(line, sizeof(line), "ITEM %.*s [%u b; %llu s]\r\n", (int)nkey,
                     bc_item_key(it), bc_item_value_len(it), (unsigned long long)it->exptime);
    if (n <= 0 || d->bytes + (size_t)n + 6 > 2u * 1024 * 1024) return false;
    bc__proto_reply_bytes(d->pc, line, (size_t)n);
    d->bytes += (size_t)n;
    d->shown++;
    return true;
}

static void
stats_cachedump(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    uint64_t id, limit;
    if (req->ntok < 5) {
        REPLY(pc, "CLIENT_ERROR bad command line\r\n");
        return;
    }
    if (!bc_mc_meta_u64(req->tok[2].p, req->tok[2].n, &id) ||
        !bc_mc_meta_u64(req->tok[3].p, req->tok[3].n, &limit)) {
        REPLY(pc, "CLIENT_ERROR bad command line format\r\n");
        return;
    }
    if ((uint32_t)id >= 64) {
        REPLY(pc, "CLIENT_ERROR Illegal slab id\r\n");
        return;
    }
    cachedump_t d = {.pc = pc, .cls = (uint32_t)id, .limit = (uint32_t)limit};
    uint32_t nb = bc_cache_nbuckets(pc->env->cache);
    for (uint32_t b = 0; b < nb && (d.limit == 0 || d.shown < d.limit); b++) {
        (void)bc_cache_bucket_foreach(pc->env->cache, b, cachedump_item, &d);
    }
    REPLY(pc, "END\r\n");
}

/*
 * "stats sizes": memcached's histogram of the items stored since "stats
 * sizes_enable", by the size memcached would give each (its header, key
 * and value: bc__proto_mc_item_size), rounded up to 32 bytes; one "STAT
 * <size> <count>" per size held, in size order.  memcached counts as
 * items are linked and unlinked; here the items are walked when asked
 * (the node keeps no count on its store path), which memcached's own
 * documentation calls a development command for the same reason: it
 * visits every item.  "Stored since" is a CAS value at least the one
 * after the last store when counting began, as memcached decides it.
 */
typedef struct sizes_walk {
    uint64_t cas_min;
    uint32_t *count;           /* [size / 32], grown to the largest seen */
    size_t n;
    size_t max;                /* memcached's item_size_max / 32 + 1 */
    bool oom;
} sizes_walk_t;

static bool
sizes_item(const bc_item_t *it, void *arg)
{
    sizes_walk_t *w = arg;
    if (bc_item_cas(it) < w->cas_min) return true;
    uint64_t ntotal = bc__proto_mc_item_size(it);
    uint64_t i = (ntotal + 31) / 32;
    if (i >= w->max) return true;            /* as memcached: past its last bucket */
    if (i >= w->n) {
        size_t n = w->n ? w->n : 64;
        while (n <= i) n *= 2;
        if (n > w->max) n = w->max;
        uint32_t *grown = realloc(w->count, n * sizeof(*grown));
        if (grown == NULL) {
            w->oom = true;
            return false;
        }
        memset(grown + w->n, 0, (n - w->n) * sizeof(*grown));
        w->count = grown;
        w->n = n;
    }
    w->count[i]++;
    return true;
}

static void
stats_sizes(bc_proto_conn_t *pc)
{
    uint64_t cas_min = atomic_load(&pc->env->sizes_cas_min);
    if (cas_min == 0) {
        REPLY(pc, "STAT sizes_status disabled\r\nEND\r\n");
        return;
    }
    sizes_walk_t w = {.cas_min = cas_min,
                      .max = bc_cache_max_item_size(pc->env->cache) / 32 + 1};
    uint32_t nb = bc_cache_nbuckets(pc->env->cache);
    for (uint32_t b = 0; b < nb && !w.oom; b++) {
        (void)bc_cache_bucket_foreach(pc->env->cache, b, sizes_item, &w);
    }
    if (w.oom) {
        free(w.count);
        REPLY(pc, "SERVER_ERROR out of memory writing stats\r\n");
        return;
    }
    for (size_t i = 0; i < w.n; i++) {
        if (w.count[i] != 0) {
            bc__proto_reply_fmt(pc, "STAT %zu %" PRIu32 "\r\n", i * 32, w.count[i]);
        }
    }
    free(w.count);
    REPLY(pc, "END\r\n");
}

/* "stats conns": memcached's process_stats_conns, one block per socket by
 * fd; this connection is the one parsing a command, as in memcached. */
static void
stats_conns(bc_proto_conn_t *pc)
{
    bc_conn_info_t *v = NULL;
    size_t n = pc->env->conns != NULL ? pc->env->conns(pc->env->hook_arg, &v) : 0;
    for (size_t i = 0; i < n && !pc->oom; i++) {
        const bc_conn_info_t *c = &v[i];
        bc__proto_reply_fmt(pc, "STAT %d:addr %s\r\n", c->fd, c->addr);
        if (!c->listening) bc__proto_reply_fmt(pc, "STAT %d:listen_addr %s\r\n", c->fd,
                                               c->listen_addr);
        bc__proto_reply_fmt(pc, "STAT %d:state %s\r\n", c->fd,
                            c->fd == pc->id ? "conn_parse_cmd" : c->state);
        bc__proto_reply_fmt(pc, "STAT %d:secs_since_last_cmd %" PRIu32 "\r\n", c->fd, c->secs);
    }
    free(v);
    REPLY(pc, "END\r\n");
}

void
bc__proto_stats(bc_proto_conn_t *pc, const bc_mc_request_t *req)
{
    const char *sub = req->subcmd;
    uint32_t n = req->nsubcmd;

#define SUB_IS(lit) (n == sizeof(lit) - 1 && memcmp(sub, lit, n) == 0)
    if (sub == NULL) {
        stats_general(pc);
    } else if (SUB_IS("settings")) {
        stats_settings(pc);
    } else if (SUB_IS("items")) {
        stats_items(pc);
    } else if (SUB_IS("slabs")) {
        /* No slab classes: items are packed into segments at their own
         * size (engine/README.md). */
        bc_cache_stats_t cs;
        bc_cache_get_stats(pc->env->cache, &cs);
        STAT_U64(pc, "active_slabs", 0);
        STAT_U64(pc, "total_malloced", cs.mem_used);
        REPLY(pc, "END\r\n");
    } else if (SUB_IS("replication") && pc->env->repl_stats != NULL) {
        stats_replication(pc);
        REPLY(pc, "END\r\n");
    } else if (SUB_IS("origin") && pc->env->origin != NULL) {
        stats_origin(pc);
        REPLY(pc, "END\r\n");
    } else if (SUB_IS("sizes")) {
        stats_sizes(pc);
    } else if (SUB_IS("sizes_enable")) {
        /* memcached 1.6.18 ends these two answers without END */
        uint64_t none = 0;
        (void)atomic_compare_exchange_strong(&pc->env->sizes_cas_min, &none,
                                             bc_cache_cas_last(pc->env->cache) + 1);
        REPLY(pc, "STAT sizes_status enabled\r\n");
    } else if (SUB_IS("sizes_disable")) {
        atomic_store(&pc->env->sizes_cas_min, 0);
        REPLY(pc, "STAT sizes_status disabled\r\n");
    } else if (SUB_IS("cachedump")) {
        stats_cachedump(pc, req);
    } else if (SUB_IS("detail")) {
        /* memcached's process_stats_detail: on, off, dump, else usage. */
        const bc_mc_token_t *t = req->ntok >= 4 ? &req->tok[2] : NULL;
        if (t != NULL && t->n == 2 && memcmp(t->p, "on", 2) == 0) {
            atomic_store(&pc->env->detail_on, true);
            REPLY(pc, "OK\r\n");
        } else if (t != NULL && t->n == 3 && memcmp(t->p, "off", 3) == 0) {
            atomic_store(&pc->env->detail_on, false);
            REPLY(pc, "OK\r\n");
        } else if (t != NULL && t->n == 4 && memcmp(t->p, "dump", 4) == 0) {
            bc__proto_detail_dump(pc);
        } else {
            REPLY(pc, "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
        }
    } else if (SUB_IS("conns")) {
        stats_conns(pc);
    } else if (SUB_IS("reset")) {
        if (pc->env->stats_reset != NULL) pc->env->stats_reset(pc->env->hook_arg);
        if (pc->env->origin != NULL) bc_origin_reset_stats(pc->env->origin);
        bc__proto_detail_clear(pc->env);
        REPLY(pc, "RESET\r\n");
    } else {
        bc_stats_incr(pc->stats, protocol_errors);
        REPLY(pc, "ERROR\r\n");
    }
#undef SUB_IS
}
