/*
 * client.c -- the client object: options, creation (ZooKeeper, the
 * cluster's config, the first table, the agent), destruction, statistics,
 * locate and error texts.  The routing snapshots are built by the registry
 * (registry.h) from what the agent reads.
 */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "bc_cluster.h"
#include "bc_hash.h"
#include "bc_log.h"
#include "bc_time.h"
#include "client_int.h"
#include "log.h"
#include "proto.h"
#include "registry.h"

#define CLIENT_NEGATIVE_DEFAULT (1024u * 1024u)
#define CLIENT_SKETCH_WIDTH     4096u

void
bc_client_options_init(bc_client_options_t *o)
{
    if (o == NULL) return;
    memset(o, 0, sizeof(*o));
    o->zk_session_timeout_ms = 10000;
    o->zk_connect_timeout_ms = 5000;
    o->timeout_ms = 1000;
    o->max_conns_per_node = 8;
    o->refresh_interval_ms = 5000;
    o->retry_base_ms = 1;
    o->retry_max_ms = 100;
    o->max_value_bytes = 16u * 1024u * 1024u;
    o->negative_cache_bytes = CLIENT_NEGATIVE_DEFAULT;
    o->near_cache_ttl_ms = 1000;
    o->near_cache_min_hits = 4;
}

const char *
bc_strerror(int code)
{
    switch (code) {
    case BC_CLIENT_OK: return "ok";
    case BC_CLIENT_ENOTFOUND: return "not found";
    case BC_CLIENT_ENOTSTORED: return "not stored";
    case BC_CLIENT_EINVAL: return "invalid argument";
    case BC_CLIENT_ENOMEM: return "out of memory";
    case BC_CLIENT_ETIMEOUT: return "timed out";
    case BC_CLIENT_ENOOWNER: return "bucket has no owner (its group is down)";
    case BC_CLIENT_ETOOLARGE: return "value too large";
    case BC_CLIENT_ENONNUMERIC: return "value is not a number";
    case BC_CLIENT_EINDOUBT: return "connection lost; the command may or may not have been applied";
    case BC_CLIENT_ESERVER: return "server error";
    case BC_CLIENT_EPROTO: return "protocol error (malformed reply)";
    case BC_CLIENT_ENOCLUSTER: return "no such cluster";
    case BC_CLIENT_EZK: return "zookeeper unreachable or failing";
    case BC_CLIENT_EBADTABLE: return "malformed cluster data in zookeeper";
    case BC_CLIENT_ELOADER: return "loader failed";
    case BC_CLIENT_EEXISTS: return "the item changed since it was read (cas mismatch)";
    case BC_CLIENT_EACCES: return "zookeeper refused access (credentials missing or wrong)";
    case BC_CLIENT_ENOTINSYNC:
        return "the key's group has too few backups in sync (min_in_sync): write refused";
    default: return "unknown error";
    }
}

/* Maps an internal status to a public BC_CLIENT_* code. */
static int
client_code(bc_status_t st)
{
    switch (st) {
    case BC_OK: return BC_CLIENT_OK;
    case BC_ENOTFOUND: return BC_CLIENT_ENOTFOUND;
    case BC_ENOTSTORED:
    case BC_EEXISTS: return BC_CLIENT_ENOTSTORED;
    case BC_EINVAL: return BC_CLIENT_EINVAL;
    case BC_ENOMEM: return BC_CLIENT_ENOMEM;
    case BC_ETIMEOUT: return BC_CLIENT_ETIMEOUT;
    case BC_ENOOWNER: return BC_CLIENT_ENOOWNER;
    case BC_ETOOLARGE: return BC_CLIENT_ETOOLARGE;
    case BC_ENONNUMERIC: return BC_CLIENT_ENONNUMERIC;
    case BC_EPROTO: return BC_CLIENT_EPROTO;
    case BC_EAGAIN:
    case BC_EZK: return BC_CLIENT_EZK;
    case BC_ECONFIG: return BC_CLIENT_EBADTABLE;
    case BC_EACCES: return BC_CLIENT_EACCES;
    default: return BC_CLIENT_ESERVER;
    }
}

void
bc_client_free(void *value)
{
    free(value);
}

static uint64_t
ms_to_ns(int ms)
{
    return (uint64_t)(ms > 0 ? ms : 0) * 1000000ull;
}

/* Checks options and fills in defaults for zero fields. */
static bc_status_t
client_check_options(const bc_client_options_t *in, bc_client_options_t *o)
{
    bc_client_options_t d;
    bc_client_options_init(&d);
    *o = *in;
    if (o->zk_session_timeout_ms <= 0) o->zk_session_timeout_ms = d.zk_session_timeout_ms;
    if (o->zk_connect_timeout_ms <= 0) o->zk_connect_timeout_ms = d.zk_connect_timeout_ms;
    if (o->timeout_ms <= 0) o->timeout_ms = d.timeout_ms;
    if (o->max_conns_per_node <= 0) o->max_conns_per_node = d.max_conns_per_node;
    if (o->refresh_interval_ms <= 0) o->refresh_interval_ms = d.refresh_interval_ms;
    if (o->retry_base_ms <= 0) o->retry_base_ms = d.retry_base_ms;
    if (o->retry_max_ms <= 0) o->retry_max_ms = d.retry_max_ms;
    if (o->retry_max_ms < o->retry_base_ms) o->retry_max_ms = o->retry_base_ms;
    if (o->max_value_bytes == 0) o->max_value_bytes = d.max_value_bytes;
    if (o->max_value_bytes > BC_MC_VALUE_MAX_LEN) o->max_value_bytes = BC_MC_VALUE_MAX_LEN;
    if (o->negative_ttl_ms < 0 || o->near_cache_ttl_ms < 0 || o->near_cache_min_hits < 0) {
        return BC_EINVAL;
    }
    if (o->negative_cache_bytes == 0) o->negative_cache_bytes = d.negative_cache_bytes;
    if (o->near_cache_ttl_ms == 0) o->near_cache_ttl_ms = d.near_cache_ttl_ms;
    if (o->near_cache_min_hits == 0) o->near_cache_min_hits = d.near_cache_min_hits;
    if (o->near_cache_min_hits > 255) o->near_cache_min_hits = 255;
    return BC_OK;
}

static void client_free(bc_client_t *c);

/* Allocates a client with everything but ZooKeeper and the agent. */
static bc_status_t
client_alloc(const bc_client_options_t *opts, bc_client_t **out)
{
    *out = NULL;
    bc_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return BC_ENOMEM;
    bc_status_t st = client_check_options(opts, &c->opts);
    if (st != BC_OK) {
        free(c);
        return st;
    }
    pthread_mutex_init(&c->agent_mu, NULL);
    bc_time_cond_init(&c->agent_cv);
    pthread_mutex_init(&c->build_mu, NULL);
    bc__route_init(&c->router);

    c->timeout_ns = ms_to_ns(c->opts.timeout_ms);
    c->retry_base_ns = ms_to_ns(c->opts.retry_base_ms);
    c->retry_max_ns = ms_to_ns(c->opts.retry_max_ms);
    c->near_ttl_ns = ms_to_ns(c->opts.near_cache_ttl_ms);
    c->negative_ttl_ns = ms_to_ns(c->opts.negative_ttl_ms);
    c->zk_hosts = opts->zk_hosts ? strdup(opts->zk_hosts) : NULL;
    c->cluster = opts->cluster ? strdup(opts->cluster) : NULL;
    c->opts.zk_hosts = c->zk_hosts;
    c->opts.cluster = c->cluster;
    c->flight = bc__flight_new();
    bool ok = c->flight != NULL && (opts->zk_hosts == NULL || c->zk_hosts != NULL) &&
              (opts->cluster == NULL || c->cluster != NULL);
    if (ok && c->opts.negative_ttl_ms > 0) {
        c->negative = bc__lru_new(c->opts.negative_cache_bytes);
        ok = c->negative != NULL;
    }
    /* The option strings are not kept (bucketcache.h). */
    c->opts.tls_ca_file = c->opts.tls_cert_file = c->opts.tls_key_file = NULL;
    c->opts.tls_server_name = NULL;
    if (ok && opts->tls) {
        char err[400];
        st = bc__tls_new(opts, &c->tls, err, sizeof(err));
        if (st != BC_OK) {
            log_error("client: TLS: %s", err);
            client_free(c);
            return st;
        }
    }
    if (ok && c->opts.near_cache_bytes > 0) {
        c->near = bc__lru_new(c->opts.near_cache_bytes);
        ok = c->near != NULL && bc__lru_sketch_init(&c->sketch, CLIENT_SKETCH_WIDTH) == BC_OK;
    }
    if (!ok) {
        client_free(c);
        return BC_ENOMEM;
    }
    *out = c;
    return BC_OK;
}

static void
client_free(bc_client_t *c)
{
    bc__route_destroy(&c->router);
    bc__registry_free(c);
    bc__tls_free(c->tls);           /* after the nodes that borrow it */
    bc__flight_free(c->flight);
    bc__lru_free(c->negative);
    bc__lru_free(c->near);
    bc__lru_sketch_free(&c->sketch);
    pthread_mutex_destroy(&c->agent_mu);
    pthread_cond_destroy(&c->agent_cv);
    pthread_mutex_destroy(&c->build_mu);
    free(c->zk_hosts);
    free(c->cluster);
    free(c);
}

bc_status_t
bc__client_new_detached(const bc_client_options_t *opts, uint32_t nbuckets, bc_client_t **out)
{
    bc_client_options_t d;
    if (opts == NULL) {
        bc_client_options_init(&d);
        opts = &d;
    }
    if (out == NULL || nbuckets == 0 || nbuckets > BC_MAX_NBUCKETS) return BC_EINVAL;
    bc_status_t st = client_alloc(opts, out);
    if (st == BC_OK) (*out)->nbuckets = nbuckets;
    return st;
}

/* The shipped library's log.c routes the ZooKeeper client's own log lines
 * into the library's sink; elsewhere (unit tests) they stay on stderr. */
__attribute__((weak)) void
bc__log_capture_zk(void)
{
}

int
bc_client_create(const bc_client_options_t *opts, bc_client_t **out)
{
    if (out != NULL) *out = NULL;
    if (opts == NULL || out == NULL || opts->zk_hosts == NULL || opts->zk_hosts[0] == '\0' ||
        opts->cluster == NULL || !bc_cluster_name_valid(opts->cluster)) {
        return BC_CLIENT_EINVAL;
    }
    bc_client_t *c;
    bc_status_t st = client_alloc(opts, &c);
    if (st != BC_OK) return client_code(st);

    int code = BC_CLIENT_OK;
    char err[256] = "";
    /* ZooKeeper credentials (docs/security.md): read now, kept by bc_zk
     * only; the option pointers are not kept. */
    bc_zk_auth_t za;
    bool have_auth = opts->zk_auth_file != NULL || opts->zk_auth != NULL;
    c->opts.zk_auth_file = c->opts.zk_auth = NULL;
    if (opts->zk_auth_file != NULL && opts->zk_auth != NULL) {
        log_error("client: give zk_auth_file or zk_auth, not both");
        client_free(c);
        return BC_CLIENT_EINVAL;
    }
    if (have_auth) {
        st = opts->zk_auth_file != NULL ? bc_zk_auth_load(opts->zk_auth_file, &za, err, sizeof(err))
                                        : bc_zk_auth_parse("zk_auth", opts->zk_auth, &za, err,
                                                           sizeof(err));
        if (st != BC_OK) {
            log_error("client: ZooKeeper credentials: %s", err);
            client_free(c);
            return BC_CLIENT_EINVAL;
        }
    }
    bc__log_capture_zk();
    st = bc_zk_open_auth(c->zk_hosts, c->opts.zk_session_timeout_ms, c->opts.zk_connect_timeout_ms,
                         bc__agent_session, c, have_auth ? &za : NULL,
                         have_auth ? "check the zk_auth_file / zk_auth option (docs/security.md)"
                                   : "the cluster is secured with ZooKeeper ACLs: give its "
                                     "credentials in the zk_auth_file option (docs/security.md)",
                         &c->zk);
    if (have_auth) bc_zk_auth_clear(&za);
    if (st != BC_OK) {
        log_error("client: cannot connect to ZooKeeper at %s: %s", c->zk_hosts, bc_status_str(st));
        code = st == BC_ENOMEM ? BC_CLIENT_ENOMEM
             : st == BC_EINVAL ? BC_CLIENT_EINVAL : BC_CLIENT_EZK;
        goto fail;
    }
    bc_cluster_config_t cfg;
    st = bc_cluster_read_config(c->zk, c->cluster, &cfg, err, sizeof(err));
    if (st == BC_OK && strcmp(cfg.hash, "murmur3_32/seed0") != 0) {
        snprintf(err, sizeof(err), "unsupported key hash \"%s\"", cfg.hash);
        st = BC_EINVAL;
    }
    if (st != BC_OK) {
        code = st == BC_ENOTFOUND ? BC_CLIENT_ENOCLUSTER
             : st == BC_EACCES ? BC_CLIENT_EACCES
             : (st == BC_EINVAL || st == BC_ETOOLARGE) ? BC_CLIENT_EBADTABLE : BC_CLIENT_EZK;
        log_error("client: cannot read cluster \"%s\": %s%s%s", c->cluster, bc_status_str(st),
                  err[0] ? ": " : "", err);
        goto fail;
    }
    c->nbuckets = cfg.nbuckets;
    st = bc__agent_load(c, true, err, sizeof(err));
    if (st != BC_OK) {
        code = st == BC_ENOTFOUND ? BC_CLIENT_ENOCLUSTER
             : st == BC_EACCES ? BC_CLIENT_EACCES
             : (st == BC_EINVAL || st == BC_ETOOLARGE) ? BC_CLIENT_EBADTABLE
             : st == BC_ENOMEM ? BC_CLIENT_ENOMEM : BC_CLIENT_EZK;
        log_error("client: cannot read the routing table of \"%s\": %s%s%s", c->cluster,
                  bc_status_str(st), err[0] ? ": " : "", err);
        goto fail;
    }
    st = bc__agent_start(c);
    if (st != BC_OK) {
        code = BC_CLIENT_ENOMEM;
        goto fail;
    }
    log_debug("client: connected to cluster \"%s\" (%u buckets)", c->cluster, c->nbuckets);
    *out = c;
    return BC_CLIENT_OK;

fail:
    if (c->zk != NULL) bc_zk_close(c->zk);
    c->zk = NULL;
    client_free(c);
    return code;
}

void
bc_client_destroy(bc_client_t *c)
{
    if (c == NULL) return;
    bc__agent_stop(c);
    if (c->zk != NULL) bc_zk_close(c->zk);
    c->zk = NULL;
    client_free(c);
}

/* ---- introspection ---- */

int
bc_client_get_stats(bc_client_t *c, bc_client_stats_t *out)
{
    if (c == NULL || out == NULL) return BC_CLIENT_EINVAL;
    memset(out, 0, sizeof(*out));
#define BC__COUNTER_COPY(name) \
    out->name = atomic_load_explicit(&c->counters.name, memory_order_relaxed);
    BC__COUNTERS(BC__COUNTER_COPY)
#undef BC__COUNTER_COPY
    out->connects = atomic_load_explicit(&c->io.connects, memory_order_relaxed);
    out->connect_errors = atomic_load_explicit(&c->io.connect_errors, memory_order_relaxed);
    out->conn_drops = atomic_load_explicit(&c->io.conn_drops, memory_order_relaxed);
    if (c->near != NULL) {
        size_t bytes, items;
        bc__lru_usage(c->near, &bytes, &items);
        out->near_bytes = bytes;
        out->near_items = items;
    }
    bc__route_snapshot_t *s = bc__route_acquire(&c->router);
    if (s != NULL) out->table_epoch = s->epoch;
    bc__route_release(s);
    out->nbuckets = c->nbuckets;
    out->zk_connected = c->zk != NULL && bc_zk_connected(c->zk) ? 1 : 0;
    return BC_CLIENT_OK;
}

int
bc_client_locate(bc_client_t *c, const void *key, size_t klen, uint32_t *bucket, uint32_t *group,
                 char *addr, size_t addrlen)
{
    if (addr != NULL && addrlen > 0) addr[0] = '\0';
    if (c == NULL || !bc__proto_key_valid(key, klen)) return BC_CLIENT_EINVAL;
    bc__route_snapshot_t *s = bc__route_acquire(&c->router);
    if (s == NULL) return BC_CLIENT_EINVAL;
    uint32_t b = bc_hash_bucket(bc_hash_key(key, klen), s->nbuckets);
    if (bucket != NULL) *bucket = b;
    if (group != NULL) *group = s->owner[b];
    if (addr != NULL && addrlen > 0 && s->node[b] != NULL) {
        snprintf(addr, addrlen, "%s", s->node[b]->addr);
    }
    bc__route_release(s);
    return BC_CLIENT_OK;
}
