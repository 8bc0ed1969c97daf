/*
 * detail.c -- memcached's per-prefix statistics, "stats detail on|off|dump"
 * (memcached 1.6.18 stats_prefix.c), for the text protocol.
 *
 * HOW
 *   A key's prefix is its bytes before the first ':' (memcached's default
 *   delimiter); a key without one is not counted.  Prefixes live in 256
 *   chains chosen by MurmurHash3_x86_32(prefix) % 256 -- memcached's hash
 *   and table size -- each new prefix at the head of its chain, and the
 *   dump walks chains 0..255 from their heads: the lines come in
 *   memcached's order.  A lookup matches as memcached's strncmp does: a
 *   kept prefix whose first `length` bytes are the key's prefix counts
 *   (so "ab" takes the counts of "a" when both share a chain).
 *
 * LOCKING
 *   mu guards the table (memcached takes its global stats lock the same
 *   way); it is taken only while detail is on, or for a dump or a reset.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bc_hash.h"
#include "proto/proto_int.h"

#define DETAIL_CHAINS 256u
#define DETAIL_DELIMITER ':'

typedef struct prefix_stat {
    struct prefix_stat *next;
    uint64_t gets, hits, sets, deletes;
    size_t len;
    char prefix[];                 /* len bytes and a NUL */
} prefix_stat_t;

struct bc_proto_detail {
    pthread_mutex_t mu;
    prefix_stat_t *chains[DETAIL_CHAINS];
    uint32_t count;
};

bc_proto_detail_t *
bc_proto_detail_create(void)
{
    bc_proto_detail_t *d = calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

/* Frees every prefix; d->mu held or d unshared. */
static void
do_detail_clear(bc_proto_detail_t *d)
{
    for (uint32_t i = 0; i < DETAIL_CHAINS; i++) {
        prefix_stat_t *p = d->chains[i];
        while (p != NULL) {
            prefix_stat_t *next = p->next;
            free(p);
            p = next;
        }
        d->chains[i] = NULL;
    }
    d->count = 0;
}

void
bc_proto_detail_destroy(bc_proto_detail_t *d)
{
    if (d == NULL) return;
    do_detail_clear(d);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* The key's prefix entry, made when new; NULL for a key without the
 * delimiter, or when no more prefixes may be kept.  d->mu held. */
static prefix_stat_t *
do_detail_find(bc_proto_detail_t *d, const char *key, size_t nkey)
{
    const char *delim = memchr(key, DETAIL_DELIMITER, nkey);
    if (delim == NULL) return NULL;
    size_t len = (size_t)(delim - key);
    uint32_t chain = bc_hash_murmur3_32(key, len, 0) % DETAIL_CHAINS;
    for (prefix_stat_t *p = d->chains[chain]; p != NULL; p = p->next) {
        if (p->len >= len && memcmp(p->prefix, key, len) == 0) return p;
    }
    if (d->count >= BC_PROTO_DETAIL_MAX_PREFIXES) return NULL;
    prefix_stat_t *p = calloc(1, sizeof(*p) + len + 1);
    if (p == NULL) return NULL;
    memcpy(p->prefix, key, len);
    p->len = len;
    p->next = d->chains[chain];
    d->chains[chain] = p;
    d->count++;
    return p;
}

typedef enum { DETAIL_GET, DETAIL_HIT, DETAIL_SET, DETAIL_DELETE } detail_kind_t;

static void
detail_record(bc_proto_env_t *env, const char *key, size_t nkey, detail_kind_t kind)
{
    bc_proto_detail_t *d = env->detail;
    if (d == NULL || !atomic_load_explicit(&env->detail_on, memory_order_relaxed)) return;
    pthread_mutex_lock(&d->mu);
    prefix_stat_t *p = do_detail_find(d, key, nkey);
    if (p != NULL) {
        switch (kind) {
        case DETAIL_HIT: p->hits++; p->gets++; break;
        case DETAIL_GET: p->gets++; break;
        case DETAIL_SET: p->sets++; break;
        case DETAIL_DELETE: p->deletes++; break;
        }
    }
    pthread_mutex_unlock(&d->mu);
}

void
bc__proto_detail_get(bc_proto_env_t *env, const char *key, size_t nkey, bool hit)
{
    detail_record(env, key, nkey, hit ? DETAIL_HIT : DETAIL_GET);
}

void
bc__proto_detail_set(bc_proto_env_t *env, const char *key, size_t nkey)
{
    detail_record(env, key, nkey, DETAIL_SET);
}

void
bc__proto_detail_delete(bc_proto_env_t *env, const char *key, size_t nkey)
{
    detail_record(env, key, nkey, DETAIL_DELETE);
}

void
bc__proto_detail_dump(bc_proto_conn_t *pc)
{
    bc_proto_detail_t *d = pc->env->detail;
    if (d != NULL) {
        pthread_mutex_lock(&d->mu);
        for (uint32_t i = 0; i < DETAIL_CHAINS && !pc->oom; i++) {
            for (prefix_stat_t *p = d->chains[i]; p != NULL && !pc->oom; p = p->next) {
                /* The prefix may be up to 249 bytes: not through the
                 * 511-byte bc__proto_reply_fmt with a risk of a cut. */
                REPLY(pc, "PREFIX ");
                bc__proto_reply_bytes(pc, p->prefix, p->len);
                bc__proto_reply_fmt(pc, " get %" PRIu64 " hit %" PRIu64 " set %" PRIu64
                                        " del %" PRIu64 "\r\n",
                                    p->gets, p->hits, p->sets, p->deletes);
            }
        }
        pthread_mutex_unlock(&d->mu);
    }
    REPLY(pc, "END\r\n");
}

void
bc__proto_detail_clear(bc_proto_env_t *env)
{
    bc_proto_detail_t *d = env->detail;
    if (d == NULL) return;
    pthread_mutex_lock(&d->mu);
    do_detail_clear(d);
    pthread_mutex_unlock(&d->mu);
}
