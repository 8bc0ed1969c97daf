/*
 * flight.c -- see flight.h.
 */
#include "flight.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bc_time.h"

#define FLIGHT_SHARDS 16u

typedef struct flight_call {
    struct flight_call *next;
    uint32_t hash;
    size_t klen;
    char *key;
    int refs;                 /* the leader + waiters */
    bool done;
    bc__flight_result_t result;
    pthread_cond_t cv;
} flight_call_t;

typedef struct flight_shard {
    pthread_mutex_t mu;       /* guards calls and the calls' shared fields */
    flight_call_t *calls;
} flight_shard_t;

struct bc__flight {
    flight_shard_t shards[FLIGHT_SHARDS];
};

bc__flight_t *
bc__flight_new(void)
{
    bc__flight_t *f = calloc(1, sizeof(*f));
    if (f == NULL) return NULL;
    for (unsigned i = 0; i < FLIGHT_SHARDS; i++) pthread_mutex_init(&f->shards[i].mu, NULL);
    return f;
}

void
bc__flight_free(bc__flight_t *f)
{
    if (f == NULL) return;
    for (unsigned i = 0; i < FLIGHT_SHARDS; i++) pthread_mutex_destroy(&f->shards[i].mu);
    free(f);
}

static void
call_free(flight_call_t *c)
{
    pthread_cond_destroy(&c->cv);
    free(c->result.value);
    free(c->key);
    free(c);
}

/* Copies the shared result for one caller; false on out of memory. */
static bool
result_copy(const bc__flight_result_t *src, bc__flight_result_t *dst)
{
    *dst = *src;
    dst->value = NULL;
    if (src->value == NULL) return true;
    dst->value = malloc(src->vlen + 1);
    if (dst->value == NULL) return false;
    memcpy(dst->value, src->value, src->vlen);
    ((char *)dst->value)[src->vlen] = '\0';
    return true;
}

int
bc__flight_do(bc__flight_t *f, uint32_t hash, const void *key, size_t klen, uint64_t deadline_ns,
              bc__flight_fn fn, void *arg, int timeout_status, int nomem_status,
              bc__flight_result_t *out, bool *shared)
{
    flight_shard_t *sh = &f->shards[(hash ^ (hash >> 16)) % FLIGHT_SHARDS];
    memset(out, 0, sizeof(*out));
    if (shared != NULL) *shared = false;

    pthread_mutex_lock(&sh->mu);
    flight_call_t *c;
    for (c = sh->calls; c != NULL; c = c->next) {
        if (c->hash == hash && c->klen == klen && memcmp(c->key, key, klen) == 0) break;
    }
    if (c != NULL) {
        /* Someone is at it: wait for their result or our deadline. */
        c->refs++;
        struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000ull),
                              .tv_nsec = (long)(deadline_ns % 1000000000ull)};
        while (!c->done) {
            if (pthread_cond_timedwait(&c->cv, &sh->mu, &ts) != 0 && !c->done) break;
        }
        if (c->done) {
            if (!result_copy(&c->result, out)) out->status = nomem_status;
            if (shared != NULL) *shared = true;
        } else {
            out->status = timeout_status;
        }
        bool last = --c->refs == 0;
        pthread_mutex_unlock(&sh->mu);
        if (last) call_free(c);
        return out->status;
    }

    c = calloc(1, sizeof(*c));
    char *kcopy = malloc(klen ? klen : 1);
    if (c == NULL || kcopy == NULL) {
        pthread_mutex_unlock(&sh->mu);
        free(c);
        free(kcopy);
        out->status = nomem_status;
        return out->status;
    }
    memcpy(kcopy, key, klen);
    c->key = kcopy;
    c->klen = klen;
    c->hash = hash;
    c->refs = 1;
    bc_time_cond_init(&c->cv);
    c->next = sh->calls;
    sh->calls = c;
    pthread_mutex_unlock(&sh->mu);

    bc__flight_result_t res;
    memset(&res, 0, sizeof(res));
    fn(arg, &res);

    pthread_mutex_lock(&sh->mu);
    for (flight_call_t **pp = &sh->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    c->result = res;
    c->done = true;
    pthread_cond_broadcast(&c->cv);
    bool last = --c->refs == 0;
    if (last) {
        /* Nobody else will read it: hand the value over without a copy. */
        *out = c->result;
        c->result.value = NULL;
    } else if (!result_copy(&c->result, out)) {
        out->status = nomem_status;
    }
    pthread_mutex_unlock(&sh->mu);
    if (last) call_free(c);
    return out->status;
}

size_t
bc__flight_active(bc__flight_t *f)
{
    size_t n = 0;
    for (unsigned i = 0; i < FLIGHT_SHARDS; i++) {
        pthread_mutex_lock(&f->shards[i].mu);
        for (flight_call_t *c = f->shards[i].calls; c != NULL; c = c->next) n++;
        pthread_mutex_unlock(&f->shards[i].mu);
    }
    return n;
}

size_t
bc__flight_callers(bc__flight_t *f)
{
    size_t n = 0;
    for (unsigned i = 0; i < FLIGHT_SHARDS; i++) {
        pthread_mutex_lock(&f->shards[i].mu);
        for (flight_call_t *c = f->shards[i].calls; c != NULL; c = c->next) n += (size_t)c->refs;
        pthread_mutex_unlock(&f->shards[i].mu);
    }
    return n;
}
