/*
 * origin.c -- the origin's shared state: which template a key uses, the
 * fills in flight (one per key: single-flight), the queue, the negative
 * cache, the circuit breakers, and the clients whose threads wait.  The
 * requests themselves are fetch.c's.  See origin.h for the flow and
 * origin_int.h for the locking rule.
 *
 * HOW A MISS BECOMES ONE REQUEST
 *   bc_origin_fetch, under the lock: a fill for the key already queued or
 *   running?  Join it.  Otherwise a remembered negative answer answers at
 *   once; bounds and the breaker may refuse; else a new fill goes into the
 *   table and the queue and the origin thread is woken.  The fill stays in
 *   the table until bc__origin_fill_finish -- after the value is stored --
 *   so a miss arriving while the answer is being stored joins the fill
 *   instead of starting a second request, and one arriving after finds the
 *   value in the cache.  One that looked the cache up before the store and
 *   takes the lock after the fill left the table would start a second
 *   request: so before starting one, the cache is looked at again under
 *   the lock (BC_EEXISTS).
 *
 * HOW A RESULT REACHES A WAITER
 *   Each waiter belongs to a client (one per thread).  Finishing a fill
 *   moves every waiter, with its own item reference, into its client's
 *   mailbox and signals the client once (an eventfd for a worker loop);
 *   the client's thread then calls the completions
 *   (bc_origin_client_deliver).  A waiter cancelled meanwhile is freed
 *   wherever it is: off the fill's list, out of the mailbox, or -- while
 *   its thread is delivering -- skipped.
 *
 * BEHAVIOR (the circuit breaker, per template)
 *   Closed: requests go out; breaker_failures failures in a row (timeout,
 *   connect, 5xx, 429, reset, malformed answer, TLS) open it.  Open: a
 *   miss that would start a request is answered at once, for
 *   breaker_cooldown_ms.  Then the first such miss becomes the one probe
 *   (half-open) and the others still fail fast; the probe's success closes
 *   the breaker, its failure opens it again.  Misses joining a fill in
 *   flight are never refused.  A 404 or a too-large body is not the
 *   origin failing and counts as a success.
 */
#include "origin/origin_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bc_hash.h"
#include "bc_log.h"
#include "bc_time.h"

static const char *const error_names[] = {
    "ok",
#define BC__ORIGIN_ERR_NAME(id, name, help) name,
    BC_ORIGIN_ERRORS(BC__ORIGIN_ERR_NAME)
#undef BC__ORIGIN_ERR_NAME
};

const char *
bc_origin_error_name(bc_origin_error_t e)
{
    return (unsigned)e < BC_ORIGIN_ERR_COUNT ? error_names[e] : "unknown";
}

static uint32_t
pow2_at_least(uint64_t n)
{
    uint32_t p = 64;
    while (p < n && p < (1u << 30)) p <<= 1;
    return p;
}

/* ------------------------------------------------------------------------ */
/* templates                                                                */
/* ------------------------------------------------------------------------ */

/* The entry whose prefix is the longest one key starts with, else the
 * default; NULL when the key has no origin.  Entries never change after
 * create: no lock. */
static origin_entry_t *
entry_for(const bc_origin_t *o, const char *key, size_t nkey)
{
    origin_entry_t *best = NULL;
    for (uint32_t i = 0; i < o->nentries; i++) {
        origin_entry_t *e = &o->entries[i];
        if (e->nprefix > nkey || memcmp(e->prefix, key, e->nprefix) != 0) continue;
        if (best == NULL || e->nprefix > best->nprefix) best = e;
    }
    return best;
}

bool
bc_origin_has(const bc_origin_t *o, const char *key, size_t nkey)
{
    return o != NULL && entry_for(o, key, nkey) != NULL;
}

/* ------------------------------------------------------------------------ */
/* life                                                                     */
/* ------------------------------------------------------------------------ */

bc_status_t
bc_origin_create(const bc_origin_config_t *cfg, bc_cache_t *cache, bc_origin_t **out)
{
    char err[BC_ERRBUF_LEN];
    bc_origin_t *o;

    *out = NULL;
    if (cfg == NULL || cache == NULL || !bc_origin_config_enabled(cfg)) return BC_EINVAL;
    if (cfg->max_inflight == 0 || cfg->timeout_ms == 0) return BC_EINVAL;
    if (cfg->url[0] != '\0' && bc_origin_template_check(cfg->url, err, sizeof(err)) != BC_OK) {
        log_error("origin: %s", err);
        return BC_EINVAL;
    }
    for (uint32_t i = 0; i < cfg->nprefixes; i++) {
        if (bc_origin_template_check(cfg->prefixes[i].url, err, sizeof(err)) != BC_OK) {
            log_error("origin for \"%s\": %s", cfg->prefixes[i].prefix, err);
            return BC_EINVAL;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return BC_EIO;
    o = calloc(1, sizeof(*o));
    if (o == NULL) {
        curl_global_cleanup();
        return BC_ENOMEM;
    }
    o->cfg = *cfg;
    o->cache = cache;
    o->max_body = bc_cache_max_item_size(cache);
    pthread_mutex_init(&o->lock, NULL);

    o->nentries = cfg->nprefixes + (cfg->url[0] != '\0' ? 1 : 0);
    o->entries = calloc(o->nentries, sizeof(*o->entries));
    o->table_mask = pow2_at_least(2ull * ((uint64_t)cfg->max_inflight + cfg->max_queue)) - 1;
    o->table = calloc((size_t)o->table_mask + 1, sizeof(*o->table));
    if (cfg->negative_ttl > 0 && cfg->negative_max > 0) {
        o->neg = calloc(cfg->negative_max, sizeof(*o->neg));
        o->neg_mask = pow2_at_least(2ull * cfg->negative_max) - 1;
        o->neg_heads = calloc((size_t)o->neg_mask + 1, sizeof(*o->neg_heads));
    }
    o->pool = calloc(cfg->max_inflight, sizeof(*o->pool));
    o->nbuckets = bc_cache_nbuckets(cache);
    o->per_bucket = calloc(o->nbuckets, sizeof(*o->per_bucket));
    o->multi = curl_multi_init();
    if (o->entries == NULL || o->table == NULL || o->pool == NULL || o->multi == NULL ||
        o->per_bucket == NULL ||
        (cfg->negative_ttl > 0 && cfg->negative_max > 0 && (o->neg == NULL || o->neg_heads == NULL))) {
        bc_status_t st = o->multi == NULL ? BC_EIO : BC_ENOMEM;
        bc_origin_destroy(o);
        return st;
    }
    for (uint32_t i = 0; i < cfg->nprefixes; i++) {
        origin_entry_t *e = &o->entries[i];
        snprintf(e->prefix, sizeof(e->prefix), "%s", cfg->prefixes[i].prefix);
        e->nprefix = strlen(e->prefix);
        snprintf(e->url, sizeof(e->url), "%s", cfg->prefixes[i].url);
    }
    if (cfg->url[0] != '\0') snprintf(o->entries[cfg->nprefixes].url, BC_ORIGIN_URL_MAX, "%s",
                                      cfg->url);
    /* HTTP/1.1 keep-alive, no pipelining: at most max_inflight connections
     * to one host, and as many kept for reuse. */
    curl_multi_setopt(o->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->max_inflight);
    curl_multi_setopt(o->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_inflight);
    curl_multi_setopt(o->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    *out = o;
    return BC_OK;
}

void
bc_origin_set_cluster(bc_origin_t *o, bc_node_cluster_t *cluster)
{
    o->cluster = cluster;
}

bc_status_t
bc_origin_start(bc_origin_t *o)
{
    if (o->started) return BC_OK;
    bc_status_t st = bc__origin_thread_start(o);
    if (st == BC_OK) o->started = true;
    return st;
}

void
bc_origin_stop(bc_origin_t *o)
{
    if (o == NULL) return;
    pthread_mutex_lock(&o->lock);
    o->stopping = true;
    pthread_mutex_unlock(&o->lock);
    if (o->started) {
        curl_multi_wakeup(o->multi);
        bc__origin_thread_join(o);
        o->started = false;
    }
}

void
bc_origin_destroy(bc_origin_t *o)
{
    if (o == NULL) return;
    bc_origin_stop(o);
    if (o->clients != NULL) log_warn("origin: destroyed with clients still registered");
    /* Fills never started (stopped before start): their waiters' clients
     * are gone by now, so they are simply freed. */
    while (o->q_head != NULL) {
        fill_t *f = o->q_head;
        o->q_head = f->qnext;
        while (f->whead != NULL) {
            bc_origin_wait_t *w = f->whead;
            f->whead = w->next;
            free(w);
        }
        bc__origin_fill_free(f);
    }
    bc__origin_pool_free(o);
    if (o->multi != NULL) curl_multi_cleanup(o->multi);
    free(o->pool);
    free(o->per_bucket);
    free(o->neg);
    free(o->neg_heads);
    free(o->table);
    free(o->entries);
    pthread_mutex_destroy(&o->lock);
    free(o);
    curl_global_cleanup();
}

/* ------------------------------------------------------------------------ */
/* the fills table (lock held)                                              */
/* ------------------------------------------------------------------------ */

static fill_t *
do_table_find(bc_origin_t *o, const char *key, size_t nkey, uint32_t hash)
{
    for (fill_t *f = o->table[hash & o->table_mask]; f != NULL; f = f->hnext) {
        if (f->hash == hash && f->nkey == nkey && memcmp(f->key, key, nkey) == 0) return f;
    }
    return NULL;
}

static void
do_table_remove(bc_origin_t *o, fill_t *f)
{
    fill_t **pp = &o->table[f->hash & o->table_mask];
    while (*pp != NULL && *pp != f) pp = &(*pp)->hnext;
    if (*pp == f) *pp = f->hnext;
    o->nfills--;
}

static void
do_waiter_append(fill_t *f, bc_origin_wait_t *w)
{
    w->fill = f;
    w->state = WAIT_PENDING;
    w->next = NULL;
    w->prev = f->wtail;
    if (f->wtail != NULL) f->wtail->next = w;
    else f->whead = w;
    f->wtail = w;
    f->nwaiters++;
}

static void
do_waiter_unlink(fill_t *f, bc_origin_wait_t *w)
{
    if (w->prev != NULL) w->prev->next = w->next;
    else f->whead = w->next;
    if (w->next != NULL) w->next->prev = w->prev;
    else f->wtail = w->prev;
    f->nwaiters--;
}

/* ------------------------------------------------------------------------ */
/* the negative cache (lock held)                                           */
/* ------------------------------------------------------------------------ */

/* Live entry for key, or NULL. */
static neg_entry_t *
do_neg_find(bc_origin_t *o, const char *key, size_t nkey, uint32_t hash, int64_t now)
{
    if (o->neg == NULL) return NULL;
    for (uint32_t i = o->neg_heads[hash & o->neg_mask]; i != 0; i = o->neg[i - 1].next) {
        neg_entry_t *e = &o->neg[i - 1];
        if (e->hash == hash && e->nkey == nkey && memcmp(e->key, key, nkey) == 0) {
            return e->expires_ms > now ? e : NULL;
        }
    }
    return NULL;
}

static void
do_neg_unlink(bc_origin_t *o, uint32_t idx)
{
    neg_entry_t *e = &o->neg[idx];
    uint32_t *pp = &o->neg_heads[e->hash & o->neg_mask];
    while (*pp != 0 && *pp != idx + 1) pp = &o->neg[*pp - 1].next;
    if (*pp == idx + 1) *pp = e->next;
    e->expires_ms = 0;
    o->neg_count--;
}

/* Remembers key as not found until now + negative_ttl.  The slots are
 * reused in turn (FIFO): the oldest remembered key goes first. */
static void
do_neg_insert(bc_origin_t *o, const char *key, size_t nkey, uint32_t hash, int64_t now)
{
    if (o->neg == NULL) return;
    int64_t until = now + (int64_t)o->cfg.negative_ttl * 1000;
    for (uint32_t i = o->neg_heads[hash & o->neg_mask]; i != 0; i = o->neg[i - 1].next) {
        neg_entry_t *e = &o->neg[i - 1];
        if (e->hash == hash && e->nkey == nkey && memcmp(e->key, key, nkey) == 0) {
            e->expires_ms = until;
            return;
        }
    }
    uint32_t idx = o->neg_next;
    o->neg_next = (idx + 1) % o->cfg.negative_max;
    if (o->neg[idx].expires_ms != 0) do_neg_unlink(o, idx);
    neg_entry_t *e = &o->neg[idx];
    e->hash = hash;
    e->nkey = (uint8_t)nkey;
    memcpy(e->key, key, nkey);
    e->expires_ms = until;
    uint32_t *head = &o->neg_heads[hash & o->neg_mask];
    e->next = *head;
    *head = idx + 1;
    o->neg_count++;
}

/* A value was found after all: forget any negative entry. */
static void
do_neg_forget(bc_origin_t *o, const char *key, size_t nkey, uint32_t hash)
{
    if (o->neg == NULL) return;
    for (uint32_t i = o->neg_heads[hash & o->neg_mask]; i != 0; i = o->neg[i - 1].next) {
        neg_entry_t *e = &o->neg[i - 1];
        if (e->hash == hash && e->nkey == nkey && memcmp(e->key, key, nkey) == 0) {
            do_neg_unlink(o, i - 1);
            return;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* breakers (lock held); see BEHAVIOR above                                 */
/* ------------------------------------------------------------------------ */

/* May a new request go to e's origin?  *probe: it is the half-open probe. */
static bool
do_breaker_admit(bc_origin_t *o, origin_entry_t *e, int64_t now, bool *probe)
{
    *probe = false;
    if (o->cfg.breaker_failures == 0) return true;
    switch (e->bstate) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_OPEN:
        if (now < e->open_until_ms) return false;
        e->bstate = BREAKER_HALF_OPEN;
        /* fall through */
    case BREAKER_HALF_OPEN:
        if (e->probing) return false;
        e->probing = true;
        *probe = true;
        return true;
    }
    return true;
}

static void
do_breaker_open(bc_origin_t *o, origin_entry_t *e, int64_t now)
{
    e->bstate = BREAKER_OPEN;
    e->open_until_ms = now + o->cfg.breaker_cooldown_ms;
    e->failures = 0;
    ORIGIN_COUNT(o, breaker_opens);
    log_warn("origin %s: circuit breaker open for %u ms (the origin keeps failing)", e->url,
             o->cfg.breaker_cooldown_ms);
}

static void
do_breaker_report(bc_origin_t *o, origin_entry_t *e, bool probe, bool failure, int64_t now)
{
    if (o->cfg.breaker_failures == 0) return;
    if (probe) e->probing = false;
    if (!failure) {
        if (e->bstate != BREAKER_CLOSED) log_info("origin %s: circuit breaker closed", e->url);
        e->bstate = BREAKER_CLOSED;
        e->failures = 0;
        return;
    }
    if (probe) {
        do_breaker_open(o, e, now);
    } else if (e->bstate == BREAKER_CLOSED && ++e->failures >= o->cfg.breaker_failures) {
        do_breaker_open(o, e, now);
    }
}

/* ------------------------------------------------------------------------ */
/* clients                                                                  */
/* ------------------------------------------------------------------------ */

static void
efd_notify(void *arg)
{
    bc_origin_client_t *c = arg;
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(c->efd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
}

static void
efd_on_io(bc_el_t *el, bc_el_io_t *io, uint32_t events)
{
    bc_origin_client_t *c = io->data;
    uint64_t v;
    (void)el;
    (void)events;
    while (read(c->efd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
    bc_origin_client_deliver(c);
}

static void
client_register(bc_origin_t *o, bc_origin_client_t *c)
{
    pthread_mutex_lock(&o->lock);
    c->next = o->clients;
    if (o->clients != NULL) o->clients->prev = c;
    o->clients = c;
    pthread_mutex_unlock(&o->lock);
}

bc_status_t
bc_origin_client_create(bc_origin_t *o, void (*notify)(void *arg), void *arg,
                        bc_origin_client_t **out)
{
    bc_origin_client_t *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (c == NULL) return BC_ENOMEM;
    c->o = o;
    c->efd = -1;
    c->notify = notify;
    c->notify_arg = arg;
    client_register(o, c);
    *out = c;
    return BC_OK;
}

bc_status_t
bc_origin_client_create_el(bc_origin_t *o, bc_el_t *el, bc_origin_client_t **out)
{
    bc_origin_client_t *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (c == NULL) return BC_ENOMEM;
    c->o = o;
    c->el = el;
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0) {
        log_error("origin: eventfd: %s", strerror(errno));
        free(c);
        return BC_EIO;
    }
    if (bc_el_io_start(el, &c->io, c->efd, BC_EL_READ, efd_on_io, c) != BC_OK) {
        close(c->efd);
        free(c);
        return BC_EIO;
    }
    c->notify = efd_notify;
    c->notify_arg = c;
    client_register(o, c);
    *out = c;
    return BC_OK;
}

void
bc_origin_client_destroy(bc_origin_client_t *c)
{
    if (c == NULL) return;
    bc_origin_t *o = c->o;
    bc_origin_wait_t *posted;

    pthread_mutex_lock(&o->lock);
    if (c->prev != NULL) c->prev->next = c->next;
    else o->clients = c->next;
    if (c->next != NULL) c->next->prev = c->prev;
    /* Waits its thread left behind would complete into freed memory. */
    for (uint32_t b = 0; b <= o->table_mask; b++) {
        for (fill_t *f = o->table[b]; f != NULL; f = f->hnext) {
            bc_origin_wait_t *w = f->whead;
            while (w != NULL) {
                bc_origin_wait_t *next = w->next;
                if (w->client == c) {
                    do_waiter_unlink(f, w);
                    free(w);
                }
                w = next;
            }
        }
    }
    posted = c->mb_head;
    c->mb_head = c->mb_tail = NULL;
    pthread_mutex_unlock(&o->lock);

    while (posted != NULL) {
        bc_origin_wait_t *w = posted;
        posted = w->next;
        bc_item_release(o->cache, w->res.item);
        free(w);
    }
    if (c->efd >= 0) {
        bc_el_io_stop(c->el, &c->io);
        close(c->efd);
    }
    free(c);
}

void
bc_origin_client_deliver(bc_origin_client_t *c)
{
    bc_origin_t *o = c->o;
    bc_origin_wait_t *list;

    pthread_mutex_lock(&o->lock);
    list = c->mb_head;
    c->mb_head = c->mb_tail = NULL;
    c->notified = false;
    for (bc_origin_wait_t *w = list; w != NULL; w = w->next) w->state = WAIT_DELIVERING;
    pthread_mutex_unlock(&o->lock);

    /* A completion may cancel a later waiter of this list (done = NULL)
     * or fetch again (a new waiter, elsewhere): next is read first. */
    while (list != NULL) {
        bc_origin_wait_t *w = list;
        list = w->next;
        if (w->done != NULL) {
            w->done(w->arg, w->tag, &w->res);
        } else {
            bc_item_release(o->cache, w->res.item);
        }
        free(w);
    }
}

/* ------------------------------------------------------------------------ */
/* fetch and cancel                                                         */
/* ------------------------------------------------------------------------ */

bc_status_t
bc_origin_fetch(bc_origin_client_t *c, const char *key, size_t nkey, uint32_t hash,
                bc_origin_done_fn done, void *arg, uint32_t tag, bc_origin_wait_t **out)
{
    bc_origin_t *o = c->o;
    bc_origin_wait_t *w;
    fill_t *f, *nf;
    bool probe = false;

    if (out != NULL) *out = NULL;
    if (nkey == 0 || nkey > BC_KEY_MAX_LEN) return BC_EINVAL;
    origin_entry_t *e = entry_for(o, key, nkey);
    if (e == NULL) return BC_ENOTFOUND;
    /* BEHAVIOR: only the bucket's primary, while it may write it, fills
     * (origin.h); everyone else forwards or misses. */
    if (o->cluster != NULL) {
        uint32_t owner = 0;
        uint64_t epoch = 0;
        uint32_t bucket = bc_hash_bucket(hash, bc_cache_nbuckets(o->cache));
        if (bc_node_cluster_route(o->cluster, bucket, true, &owner, &epoch) != BC_ROUTE_SERVE) {
            return BC_ENOTOWNER;
        }
    }
    ORIGIN_COUNT(o, misses);
    /* Both allocated before the lock (a fill is ~3 KiB); the fill is
     * dropped when the key turns out to have one already. */
    w = calloc(1, sizeof(*w));
    nf = calloc(1, sizeof(*nf));
    if (w == NULL || nf == NULL) {
        free(w);
        free(nf);
        return BC_ENOMEM;
    }
    w->client = c;
    w->done = done;
    w->arg = arg;
    w->tag = tag;

    int64_t now = bc_time_mono_ms();
    pthread_mutex_lock(&o->lock);
    if (o->stopping) {
        pthread_mutex_unlock(&o->lock);
        free(w);
        free(nf);
        return BC_ECLOSED;
    }
    f = do_table_find(o, key, nkey, hash);
    if (f != NULL) {
        if (f->nwaiters >= BC_ORIGIN_MAX_WAITERS) goto overloaded;
        do_waiter_append(f, w);
        pthread_mutex_unlock(&o->lock);
        free(nf);
        ORIGIN_COUNT(o, joined);
        if (out != NULL) *out = w;
        return BC_OK;
    }
    if (do_neg_find(o, key, nkey, hash, now) != NULL) {
        pthread_mutex_unlock(&o->lock);
        free(w);
        free(nf);
        ORIGIN_COUNT(o, negative_hits);
        return BC_ENOTFOUND;
    }
    /* No fill in flight: but one may have finished between the caller's
     * miss and this lock -- its value stored, then its fill removed under
     * this lock.  Looking again here (a shard lock inside ours) closes
     * that window: a second request for the same key would be a second
     * request within one lifetime. */
    bc_item_t *cur = bc_cache_get(o->cache, key, nkey, hash);
    if (cur != NULL) {
        pthread_mutex_unlock(&o->lock);
        bc_item_release(o->cache, cur);
        free(w);
        free(nf);
        return BC_EEXISTS;
    }
    if (o->nfills >= o->cfg.max_inflight + o->cfg.max_queue) goto overloaded;
    if (!do_breaker_admit(o, e, now, &probe)) {
        pthread_mutex_unlock(&o->lock);
        free(w);
        free(nf);
        ORIGIN_COUNT(o, errors[BC_ORIGIN_ERR_BREAKER_OPEN]);
        ORIGIN_BUCKET_COUNT(o, hash, errors);
        return BC_EAGAIN;
    }
    nf->o = o;
    nf->entry = e;
    memcpy(nf->key, key, nkey);
    nf->nkey = (uint8_t)nkey;
    nf->hash = hash;
    nf->state = FILL_QUEUED;
    nf->probe = probe;
    nf->queued_ms = now;
    fill_t **head = &o->table[hash & o->table_mask];
    nf->hnext = *head;
    *head = nf;
    o->nfills++;
    if (o->q_tail != NULL) o->q_tail->qnext = nf;
    else o->q_head = nf;
    o->q_tail = nf;
    o->nqueued++;
    do_waiter_append(nf, w);
    pthread_mutex_unlock(&o->lock);
    curl_multi_wakeup(o->multi);
    if (out != NULL) *out = w;
    return BC_OK;

overloaded:
    pthread_mutex_unlock(&o->lock);
    free(w);
    free(nf);
    ORIGIN_COUNT(o, errors[BC_ORIGIN_ERR_OVERLOADED]);
    ORIGIN_BUCKET_COUNT(o, hash, errors);
    return BC_EBUSY;
}

void
bc_origin_cancel(bc_origin_client_t *c, bc_origin_wait_t *w)
{
    bc_origin_t *o = c->o;
    bc_item_t *item = NULL;
    bool free_it = true;

    if (w == NULL) return;
    pthread_mutex_lock(&o->lock);
    switch (w->state) {
    case WAIT_PENDING:
        /* The fill goes on: its value will be in the cache for the next
         * miss (a forwarding peer that gave up will ask again). */
        do_waiter_unlink(w->fill, w);
        break;
    case WAIT_POSTED:
        if (w->prev != NULL) w->prev->next = w->next;
        else c->mb_head = w->next;
        if (w->next != NULL) w->next->prev = w->prev;
        else c->mb_tail = w->prev;
        item = w->res.item;
        break;
    case WAIT_DELIVERING:
        w->done = NULL;            /* bc_origin_client_deliver frees it */
        free_it = false;
        break;
    }
    pthread_mutex_unlock(&o->lock);
    if (free_it) {
        bc_item_release(o->cache, item);
        free(w);
    }
}

/* ------------------------------------------------------------------------ */
/* finishing a fill                                                         */
/* ------------------------------------------------------------------------ */

void
bc__origin_fill_finish(bc_origin_t *o, fill_t *f, const bc_origin_result_t *res, bool failure)
{
    int64_t now = bc_time_mono_ms();
    uint64_t served = 0;

    pthread_mutex_lock(&o->lock);
    do_table_remove(o, f);
    if (f->state == FILL_RUNNING) o->nrunning--;
    else o->nqueued--;
    if (res->error != BC_ORIGIN_ERR_OVERLOADED && res->error != BC_ORIGIN_ERR_BREAKER_OPEN &&
        res->st != BC_ECLOSED) {
        do_breaker_report(o, f->entry, f->probe, failure, now);
    } else if (f->probe) {
        f->entry->probing = false;     /* never asked: the next miss probes */
    }
    if (res->st == BC_ENOTFOUND && o->cfg.negative_ttl > 0) {
        do_neg_insert(o, f->key, f->nkey, f->hash, now);
    } else if (res->st == BC_OK) {
        do_neg_forget(o, f->key, f->nkey, f->hash);
    }
    if (f->nwaiters == 0) ORIGIN_COUNT(o, abandoned);
    while (f->whead != NULL) {
        bc_origin_wait_t *w = f->whead;
        bc_origin_client_t *c = w->client;
        do_waiter_unlink(f, w);
        w->res = *res;
        if (res->item != NULL) {
            bc_item_retain(res->item);
            served++;
        }
        w->fill = NULL;
        w->state = WAIT_POSTED;
        w->next = NULL;
        w->prev = c->mb_tail;
        if (c->mb_tail != NULL) c->mb_tail->next = w;
        else c->mb_head = w;
        c->mb_tail = w;
        if (!c->notified) {
            c->notified = true;
            c->notify(c->notify_arg);
        }
    }
    pthread_mutex_unlock(&o->lock);
    if (served > 0) atomic_fetch_add_explicit(&o->st.served, served, memory_order_relaxed);
}

void
bc__origin_fill_free(fill_t *f)
{
    if (f == NULL) return;
    free(f->body);
    free(f);
}
