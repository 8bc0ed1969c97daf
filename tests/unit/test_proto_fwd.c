/*
 * test_proto_fwd.c -- the text protocol's forwarded commands
 * (node/proto/proto_fwd.c): how the reply a client sees is assembled from
 * the owners' replies.
 *
 * The node under test is group 1's primary: a real cache, the real
 * executor and forwarder on a real event loop (its own thread, as a
 * worker's), fed as the data port's server feeds it: pipelined input,
 * replies sent up to the first one still to come (a hole in the output
 * queue), the rest once the resume hook says a forwarded reply is in.
 * Groups 2 and 3 are fake memcached servers (test_client_fake.h) that
 * answer the peer handshake, and whose replies a test may replace.  The
 * cluster object is built without ZooKeeper (test_node_fake.h): bucket b
 * belongs to group 1 + b % 3.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bc_hash.h"
#include "bc_log.h"
#include "bc_time.h"
#include "engine/cache.h"
#include "net/el.h"
#include "proto/binary.h"
#include "proto/forward.h"
#include "proto/proto_text.h"
#include "test_client_fake.h"
#include "test_node_fake.h"

#define NB 12                          /* buckets */

/* ---- the owners (groups 2 and 3) ---- */

typedef struct owner {
    fake_t *fake;
    pthread_mutex_t mu;                /* guards everything below */
    char lines[32][256];               /* command lines received, handshake excluded */
    int nlines;
    const char *get_reply;             /* non-NULL: the answer to every get */
    const char *flush_reply;           /* the answer to flush_all (NULL: OK) */
    bool drop_get;                     /* close the connection on a get */
    int get_delay_ms;                  /* answer a get this late */
    int set_refusals;                  /* refuse this many more sets with set_refusal */
    char set_refusal[64];
    int set_delay_ms;                  /* answer a set this late */
    int md_refusals;                   /* refuse this many more "md" with set_refusal */
    int gat_refusals;                  /* refuse this many more gats with set_refusal ... */
    char gat_refuse_key[32];           /* ... those naming this key ("": any) */
} owner_t;

/* Whether the command line names key among its tokens. */
static bool
line_has_token(const char *line, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = strstr(line, key); p != NULL; p = strstr(p + 1, key)) {
        if ((p == line || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return true;
    }
    return false;
}

/* A gat's answer from the fake's store: its keys' VALUE blocks, END. */
static void
owner_gat_reply(fake_t *f, const char *line, char *out, size_t *outlen)
{
    const char *p = strchr(line, ' ');
    p = p != NULL ? strchr(p + 1, ' ') : NULL;              /* past the exptime */
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    while (p != NULL && *p == ' ') {
        p++;
        const char *e = strchr(p, ' ');
        size_t kl = e != NULL ? (size_t)(e - p) : strlen(p);
        fake_item_t *it = fake_find(f, p, kl);
        if (it != NULL) {
            n += (size_t)sprintf(out + n, "VALUE %s %u %zu\r\n", it->key, it->flags, it->vlen);
            memcpy(out + n, it->value, it->vlen);
            n += it->vlen;
            memcpy(out + n, "\r\n", 2);
            n += 2;
        }
        p = e;
    }
    pthread_mutex_unlock(&f->mu);
    memcpy(out + n, "END\r\n", 5);
    *outlen = n + 5;
}

static fake_action_t
owner_hook(fake_t *f, const char *line, const char *data, size_t dlen, char *out, size_t *outlen,
           void *ctx)
{
    (void)data;
    (void)dlen;
    owner_t *o = ctx;
    if (strncmp(line, "bucketcache_peer ", 17) == 0) {
        memcpy(out, "OK\r\n", 4);
        *outlen = 4;
        return FAKE_REPLY;
    }
    pthread_mutex_lock(&o->mu);
    if (o->nlines < 32) snprintf(o->lines[o->nlines++], sizeof(o->lines[0]), "%s", line);
    bool get = strncmp(line, "get ", 4) == 0;
    const char *reply = get ? o->get_reply : NULL;
    if (strncmp(line, "flush_all", 9) == 0) reply = o->flush_reply ? o->flush_reply : "OK\r\n";
    bool drop = get && o->drop_get;
    int delay = get ? o->get_delay_ms : 0;
    char refusal[64];
    /* The meta commands a forwarded binary or meta delete becomes: "md"
     * (HD, nothing when quiet) and the "mn" that ends it. */
    if (strcmp(line, "mn") == 0) reply = "MN\r\n";
    if (strncmp(line, "md ", 3) == 0) {
        reply = strstr(line, " q") != NULL ? "" : "HD\r\n";
        if (o->md_refusals > 0) {
            o->md_refusals--;
            snprintf(refusal, sizeof(refusal), "%s", o->set_refusal);
            reply = refusal;
        }
    }
    bool gat = strncmp(line, "gat ", 4) == 0 || strncmp(line, "gats ", 5) == 0;
    if (gat && o->gat_refusals > 0 &&
        (o->gat_refuse_key[0] == '\0' || line_has_token(line, o->gat_refuse_key))) {
        o->gat_refusals--;
        snprintf(refusal, sizeof(refusal), "%s", o->set_refusal);
        reply = refusal;
        gat = false;
    }
    if (strncmp(line, "set ", 4) == 0) {
        delay = o->set_delay_ms;
        if (o->set_refusals > 0) {
            o->set_refusals--;
            snprintf(refusal, sizeof(refusal), "%s", o->set_refusal);
            reply = refusal;
        }
    }
    pthread_mutex_unlock(&o->mu);
    if (gat) {
        owner_gat_reply(f, line, out, outlen);
        return FAKE_REPLY;
    }
    if (delay > 0) usleep((useconds_t)delay * 1000);
    if (drop) return FAKE_DROP;
    if (reply == NULL) return FAKE_DEFAULT;
    *outlen = strlen(reply);
    memcpy(out, reply, *outlen);
    return FAKE_REPLY;
}

/* How the owner answers a get from now on: `reply` (NULL: from its
 * store), or by closing the connection, after delay_ms. */
static void
owner_set(owner_t *o, const char *reply, bool drop, int delay_ms)
{
    pthread_mutex_lock(&o->mu);
    o->get_reply = reply;
    o->drop_get = drop;
    o->get_delay_ms = delay_ms;
    pthread_mutex_unlock(&o->mu);
}

/* How the owner answers flush_all from now on (NULL: OK). */
static void
owner_set_flush(owner_t *o, const char *reply)
{
    pthread_mutex_lock(&o->mu);
    o->flush_reply = reply;
    pthread_mutex_unlock(&o->mu);
}

/* The i-th command line group gid's owner received. */
static void
assert_owner_line(owner_t *o, int i, const char *want)
{
    pthread_mutex_lock(&o->mu);
    char got[256];
    snprintf(got, sizeof(got), "%s", i < o->nlines ? o->lines[i] : "(none)");
    int n = o->nlines;
    pthread_mutex_unlock(&o->mu);
    if (strcmp(got, want) != 0) fail_msg("owner line %d of %d: \"%s\", wanted \"%s\"", i, n, got, want);
}

static int
owner_lines(owner_t *o)
{
    pthread_mutex_lock(&o->mu);
    int n = o->nlines;
    pthread_mutex_unlock(&o->mu);
    return n;
}

/* ---- the node (group 1) ---- */

typedef struct node {
    bc_cache_t *cache;
    bc_node_cluster_t *cl;
    bc_el_t *el;
    bc_fwd_t *fwd;
    bc_thread_stats_t stats;
    bc_proto_env_t env;
    bc_proto_conn_t pc;
    pthread_t loop;
    owner_t owners[4];                 /* [2] and [3] */

    /* One script at a time, handed to the loop thread under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool start;                        /* a script waits to be run */
    bool busy;                         /* a script is running */
    const char *in;
    size_t inlen, inoff;
    bc_status_t st;
    char out[1 << 16];
    size_t nout;
    bool overflow;                     /* more than out holds */
} node_t;

/* Loop thread: feeds the script to the executor as the server does --
 * what it does not consume is presented again when a forwarded command
 * completes -- and "sends" what is ready; once the script is consumed and
 * every forwarded reply is in, hands the output back. */
static void
node_pump(node_t *n)
{
    size_t used = 1;
    while (n->inoff < n->inlen && !bc_proto_waiting(&n->pc) && n->st == BC_OK && used > 0) {
        used = 0;
        n->st = bc_proto_process(&n->pc, n->in + n->inoff, n->inlen - n->inoff, 1 << 20, &used);
        n->inoff += used;
    }
    while (bc_outq_ready(&n->pc.out)) {
        struct iovec iov[256];
        int cnt = bc_outq_iov(&n->pc.out, iov, 256);
        size_t total = 0;
        for (int i = 0; i < cnt; i++) {
            if (n->nout + iov[i].iov_len <= sizeof(n->out)) {
                memcpy(n->out + n->nout, iov[i].iov_base, iov[i].iov_len);
                n->nout += iov[i].iov_len;
            } else {
                n->overflow = true;         /* expect() fails the test */
            }
            total += iov[i].iov_len;
        }
        if (total == 0) break;
        bc_outq_consume(&n->pc.out, n->cache, total);
    }
    bool consumed = n->st != BC_OK || n->inoff == n->inlen ||
                    (used == 0 && !bc_proto_waiting(&n->pc));
    if (!consumed || n->pc.nfwd > 0 || bc_outq_holes(&n->pc.out) > 0 || n->pc.ro_hold) {
        return;                                                       /* resume */
    }
    pthread_mutex_lock(&n->mu);
    n->busy = false;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

static void
node_resume(void *arg)
{
    node_pump(arg);
}

static void
node_wakeup(bc_el_t *el, void *arg)
{
    (void)el;
    node_t *n = arg;
    pthread_mutex_lock(&n->mu);
    bool go = n->start;
    n->start = false;
    pthread_mutex_unlock(&n->mu);
    if (go) node_pump(n);
}

/* A new table in force (the cluster's hook): the loop looks at once, as
 * net/server.c wakes its workers. */
static void
node_routes_changed(void *arg)
{
    bc_el_wake(((node_t *)arg)->el);
}

static void
node_before_poll(bc_el_t *el, void *arg)
{
    (void)el;
    bc_fwd_before_poll(((node_t *)arg)->fwd);
}

static void *
node_loop(void *arg)
{
    node_t *n = arg;
    bc_el_run(n->el);
    return NULL;
}

/* Key i of group gid's buckets, into key. */
static const char *
key_of(uint32_t gid, int i, char *key, size_t len)
{
    for (int k = 0, found = -1;; k++) {
        snprintf(key, len, "g%u_%d", gid, k);
        uint32_t b = bc_hash_bucket(bc_hash_key(key, strlen(key)), NB);
        if (1 + b % 3 == gid && ++found == i) return key;
    }
}

/* A node whose forwarded replies may be max_reply bytes at most. */
static node_t *
node_start_capped(uint32_t timeout_ms, size_t max_reply)
{
    node_t *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    bc_cache_config_t cc = {.mem_limit = 8u << 20, .nbuckets = NB, .nshards = 4};
    assert_int_equal(bc_cache_create(&cc, &n->cache), BC_OK);
    n->cl = fake_cluster_new(1, NB);
    uint32_t owner[NB];
    for (uint32_t b = 0; b < NB; b++) owner[b] = 1 + b % 3;
    fake_cluster_table(n->cl, 4, owner, NULL, 0);
    fake_cluster_primary(n->cl);
    const char *addrs[3] = {"127.0.0.1:1"};
    const uint32_t gids[3] = {1, 2, 3};
    for (int g = 2; g <= 3; g++) {
        owner_t *o = &n->owners[g];
        pthread_mutex_init(&o->mu, NULL);
        o->fake = fake_start(owner_hook, o);
        addrs[g - 1] = o->fake->addr;
    }
    fake_cluster_primaries(n->cl, gids, addrs, 3);

    n->env.cache = n->cache;
    n->env.cluster = n->cl;
    n->env.forward = true;
    n->env.fwd_cfg = (bc_fwd_config_t){.timeout_ms = timeout_ms, .max_reply = max_reply,
                                       .conns_per_peer = 2, .max_conns = 8, .idle_ms = 60000};
    n->env.max_conn_buffer = 1u << 20;
    atomic_init(&n->env.verbosity, 0);
    assert_int_equal(bc_el_create(&n->el), BC_OK);
    assert_int_equal(bc_fwd_create(&n->env.fwd_cfg, n->el, n->cl, &n->stats, &n->fwd), BC_OK);
    bc_proto_conn_init(&n->pc, &n->env, &n->stats, 1);
    bc_proto_conn_set_forward(&n->pc, n->fwd, node_resume, n);
    pthread_mutex_init(&n->mu, NULL);
    bc_time_cond_init(&n->cv);
    bc_el_set_wakeup(n->el, node_wakeup, n);
    bc_el_set_before_poll(n->el, node_before_poll, n);
    bc_node_cluster_set_on_routes(n->cl, node_routes_changed, n);
    pthread_create(&n->loop, NULL, node_loop, n);
    return n;
}

static node_t *
node_start(uint32_t timeout_ms)
{
    return node_start_capped(timeout_ms, 1u << 20);
}

static void
node_stop(node_t *n)
{
    bc_node_cluster_set_on_routes(n->cl, NULL, NULL);
    bc_el_stop(n->el);
    pthread_join(n->loop, NULL);
    bc_proto_conn_release(&n->pc);
    bc_fwd_destroy(n->fwd);
    bc_el_destroy(n->el);
    for (int g = 2; g <= 3; g++) {
        fake_stop(n->owners[g].fake);
        pthread_mutex_destroy(&n->owners[g].mu);
    }
    bc_node_cluster_free(n->cl);
    bc_cache_destroy(n->cache);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

/* Sends in[0..inlen) as a client would; the answer is in n->out[0..nout). */
static void
run_bytes(node_t *n, const char *in, size_t inlen)
{
    pthread_mutex_lock(&n->mu);
    n->in = in;
    n->inlen = inlen;
    n->inoff = 0;
    n->nout = 0;
    n->overflow = false;
    n->st = BC_OK;
    n->busy = n->start = true;
    pthread_mutex_unlock(&n->mu);
    bc_el_wake(n->el);
    struct timespec until;
    bc_time_deadline(&until, CLOCK_MONOTONIC, 5000);
    pthread_mutex_lock(&n->mu);
    while (n->busy && pthread_cond_timedwait(&n->cv, &n->mu, &until) == 0) {
    }
    bool done = !n->busy;
    pthread_mutex_unlock(&n->mu);
    if (!done) fail_msg("no answer to \"%.*s\" within 5 s", (int)inlen, in);
    assert_int_equal(n->st, BC_OK);
    assert_false(n->overflow);
}

/* Sends `in` as a client would and asserts the node answers exactly `want`. */
static void
expect(node_t *n, const char *in, const char *want)
{
    run_bytes(n, in, strlen(in));
    if (n->nout != strlen(want) || memcmp(n->out, want, n->nout) != 0) {
        fail_msg("sent \"%s\"\ngot    \"%.*s\"\nwanted \"%s\"", in, (int)n->nout, n->out, want);
    }
}

/* ---- tests ---- */

static void
test_fwd_multiget_values_in_the_clients_key_order(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    char a0[32], a1[32], a2[32], b0[32], l0[32], l1[32], line[256], want[512];
    key_of(2, 0, a0, sizeof(a0));
    key_of(2, 1, a1, sizeof(a1));
    key_of(2, 2, a2, sizeof(a2));     /* stored nowhere */
    key_of(3, 0, b0, sizeof(b0));
    key_of(1, 0, l0, sizeof(l0));
    key_of(1, 1, l1, sizeof(l1));
    fake_put(n->owners[2].fake, a0, "A0", 2, 20);
    fake_put(n->owners[2].fake, a1, "A1", 2, 21);
    fake_put(n->owners[3].fake, b0, "B0", 2, 30);
    snprintf(line, sizeof(line), "set %s 10 0 2\r\nL0\r\nset %s 11 0 2\r\nL1\r\n", l0, l1);
    expect(n, line, "STORED\r\nSTORED\r\n");

    /* Keys of groups 3, 1 and 2 mixed: the values come in the client's
     * key order, as memcached answers them (a miss left out), one END. */
    snprintf(line, sizeof(line), "get %s %s %s %s %s %s\r\n", b0, l0, a0, a2, l1, a1);
    snprintf(want, sizeof(want),
             "VALUE %s 30 2\r\nB0\r\nVALUE %s 10 2\r\nL0\r\nVALUE %s 20 2\r\nA0\r\n"
             "VALUE %s 11 2\r\nL1\r\nVALUE %s 21 2\r\nA1\r\n"
             "END\r\n", b0, l0, a0, l1, a1);
    expect(n, line, want);
    /* Each owner was asked once, for its keys only, in the client's order. */
    snprintf(want, sizeof(want), "get %s %s %s", a0, a2, a1);
    assert_owner_line(&n->owners[2], 0, want);
    snprintf(want, sizeof(want), "get %s", b0);
    assert_owner_line(&n->owners[3], 0, want);
    assert_int_equal(atomic_load(&n->stats.forward_requests), 2);

    /* Nothing found anywhere: one END. */
    snprintf(line, sizeof(line), "get %s %s\r\n", a2, key_of(3, 5, want, sizeof(want)));
    expect(n, line, "END\r\n");
    node_stop(n);
}


/* Appends a VALUE block of key (flags 0) with value v to *w. */
static void
want_value(char **w, size_t *n, const char *key, const char *v)
{
    size_t vlen = strlen(v), need = *n + strlen(key) + vlen + 40;
    *w = realloc(*w, need);
    assert_non_null(*w);
    *n += (size_t)sprintf(*w + *n, "VALUE %s 0 %zu\r\n%s\r\n", key, vlen, v);
}

static void
test_fwd_multiget_key_order_with_late_parts_duplicates_and_failures(void **state)
{
    (void)state;
    node_t *n = node_start(300);
    char a0[32], a1[32], a2[32], b0[32], b1[32], b2[32], l0[32], lb[32], l2[32];
    char line[1024], *big = malloc(3001), *lbig = malloc(2001), *want = NULL;
    size_t nw = 0;
    assert_non_null(big);
    assert_non_null(lbig);
    key_of(2, 0, a0, sizeof(a0));
    key_of(2, 1, a1, sizeof(a1));
    key_of(2, 2, a2, sizeof(a2));         /* stored nowhere */
    key_of(3, 0, b0, sizeof(b0));
    key_of(3, 1, b1, sizeof(b1));
    key_of(3, 2, b2, sizeof(b2));         /* stored nowhere */
    key_of(1, 0, l0, sizeof(l0));
    key_of(1, 1, lb, sizeof(lb));
    key_of(1, 2, l2, sizeof(l2));         /* stored nowhere */
    memset(big, 'x', 3000);
    big[3000] = '\0';
    memset(lbig, 'y', 2000);               /* sent from the item, not copied */
    lbig[2000] = '\0';
    fake_put(n->owners[2].fake, a0, "A0", 2, 0);
    fake_put(n->owners[2].fake, a1, big, 3000, 0);
    fake_put(n->owners[3].fake, b0, "B0", 2, 0);
    fake_put(n->owners[3].fake, b1, "B1", 2, 0);
    char *set = malloc(4096);
    assert_non_null(set);
    snprintf(set, 4096, "set %s 0 0 2\r\nL0\r\nset %s 0 0 2000\r\n%s\r\n", l0, lb, lbig);
    expect(n, set, "STORED\r\nSTORED\r\n");
    free(set);

    /* Three owners interleaved, keys asked twice, misses of each; group
     * 3's part, sent first, is answered last. */
    owner_set(&n->owners[3], NULL, false, 100);
    snprintf(line, sizeof(line), "get %s %s %s %s %s %s %s %s %s %s %s %s %s\r\n", b0, l0, a0,
             a2, b1, lb, a0, b0, l2, a1, b2, l0, a1);
    want_value(&want, &nw, b0, "B0");
    want_value(&want, &nw, l0, "L0");
    want_value(&want, &nw, a0, "A0");
    want_value(&want, &nw, b1, "B1");
    want_value(&want, &nw, lb, lbig);
    want_value(&want, &nw, a0, "A0");
    want_value(&want, &nw, b0, "B0");
    want_value(&want, &nw, a1, big);
    want_value(&want, &nw, l0, "L0");
    want_value(&want, &nw, a1, big);
    want = realloc(want, nw + 6);
    memcpy(want + nw, "END\r\n", 6);
    expect(n, line, want);
    /* Each owner asked once, its keys in the client's order, duplicates
     * included. */
    char wline[256];
    snprintf(wline, sizeof(wline), "get %s %s %s %s %s", a0, a2, a0, a1, a1);
    assert_owner_line(&n->owners[2], 0, wline);
    snprintf(wline, sizeof(wline), "get %s %s %s %s", b0, b1, b0, b2);
    assert_owner_line(&n->owners[3], 0, wline);

    /* Pipelined behind another multi-get, each in its place. */
    char two[2048];
    snprintf(two, sizeof(two), "get %s %s %s\r\nget %s %s\r\n", b1, a0, l0, a0, b1);
    expect(n, two,
           (snprintf(line, sizeof(line),
                     "VALUE %s 0 2\r\nB1\r\nVALUE %s 0 2\r\nA0\r\nVALUE %s 0 2\r\nL0\r\nEND\r\n"
                     "VALUE %s 0 2\r\nA0\r\nVALUE %s 0 2\r\nB1\r\nEND\r\n", b1, a0, l0, a0, b1),
            line));

    /* Group 3's part fails (connection lost, no answer in time): its keys
     * are misses, the others keep their order. */
    snprintf(line, sizeof(line), "get %s %s %s %s %s %s %s %s %s %s %s %s %s\r\n", b0, l0, a0,
             a2, b1, lb, a0, b0, l2, a1, b2, l0, a1);
    nw = 0;
    want_value(&want, &nw, l0, "L0");
    want_value(&want, &nw, a0, "A0");
    want_value(&want, &nw, lb, lbig);
    want_value(&want, &nw, a0, "A0");
    want_value(&want, &nw, a1, big);
    want_value(&want, &nw, l0, "L0");
    want_value(&want, &nw, a1, big);
    want = realloc(want, nw + 6);
    memcpy(want + nw, "END\r\n", 6);
    owner_set(&n->owners[3], NULL, true, 0);
    expect(n, line, want);
    owner_set(&n->owners[3], NULL, false, 600);
    expect(n, line, want);
    /* Group 3 unreachable (no primary known): not asked at all. */
    owner_set(&n->owners[3], NULL, false, 0);
    int asked = owner_lines(&n->owners[3]);
    const uint32_t gids[] = {1, 2};
    const char *addrs[] = {"127.0.0.1:1", n->owners[2].fake->addr};
    fake_cluster_primaries(n->cl, gids, addrs, 2);
    expect(n, line, want);
    assert_int_equal(owner_lines(&n->owners[3]), asked);
    free(want);
    free(big);
    free(lbig);
    node_stop(n);
}

static void
test_fwd_multiget_of_many_keys_in_key_order(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    enum { PER = 60 };
    char *line = malloc(16384), *want = NULL, *set = malloc(256), key[32];
    size_t nl = 0, nw = 0;
    assert_non_null(line);
    assert_non_null(set);
    nl = (size_t)sprintf(line, "get");
    /* Keys of the three groups in turn, each asked twice, a miss of
     * each group in between: enough keys for the index to have
     * collisions. */
    for (int i = 0; i < PER; i++) {
        for (uint32_t g = 1; g <= 3; g++) {
            key_of(g, 2 * i, key, sizeof(key));
            if (g == 1) {
                snprintf(set, 256, "set %s 0 0 %zu\r\n%s\r\n", key, strlen(key), key);
                expect(n, set, "STORED\r\n");
            } else {
                fake_put(n->owners[g].fake, key, key, strlen(key), 0);
            }
            nl += (size_t)sprintf(line + nl, " %s %s", key, key);
            want_value(&want, &nw, key, key);
            want_value(&want, &nw, key, key);
            key_of(g, 2 * i + 1, key, sizeof(key));
            nl += (size_t)sprintf(line + nl, " %s", key);
        }
    }
    memcpy(line + nl, "\r\n", 3);
    want = realloc(want, nw + 6);
    memcpy(want + nw, "END\r\n", 6);
    expect(n, line, want);
    free(line);
    free(want);
    free(set);
    node_stop(n);
}

static void
test_fwd_multiget_failed_part_reads_as_misses(void **state)
{
    (void)state;
    node_t *n = node_start(300);
    char a0[32], b0[32], l0[32], line[256], whole[256], without_b0[256];
    key_of(2, 0, a0, sizeof(a0));
    key_of(3, 0, b0, sizeof(b0));
    key_of(1, 0, l0, sizeof(l0));
    fake_put(n->owners[2].fake, a0, "A0", 2, 0);
    fake_put(n->owners[3].fake, b0, "B0", 2, 0);
    snprintf(line, sizeof(line), "set %s 0 0 2\r\nL0\r\n", l0);
    expect(n, line, "STORED\r\n");
    snprintf(line, sizeof(line), "get %s %s %s\r\n", a0, l0, b0);
    snprintf(whole, sizeof(whole), "VALUE %s 0 2\r\nA0\r\nVALUE %s 0 2\r\nL0\r\n"
             "VALUE %s 0 2\r\nB0\r\nEND\r\n", a0, l0, b0);
    snprintf(without_b0, sizeof(without_b0), "VALUE %s 0 2\r\nA0\r\nVALUE %s 0 2\r\nL0\r\n"
             "END\r\n", a0, l0);
    expect(n, line, whole);

    /* Group 3's part fails; the other owner's value and the local one
     * still come, group 3's key reads as a miss -- however it failed: its
     * own refusal (its table is newer), its connection lost, no answer in
     * time, a reply that is no memcached reply. */
    static const struct {
        const char *reply;
        bool drop;
        int delay_ms;
    } failures[] = {
        {"SERVER_ERROR MOVED 7 1 12\r\n", false, 0},
        {NULL, true, 0},
        {NULL, false, 600},
        {"VALUE x\r\n", false, 0},
    };
    uint64_t failed = atomic_load(&n->stats.get_forward_failed);
    for (size_t i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
        owner_set(&n->owners[3], failures[i].reply, failures[i].drop, failures[i].delay_ms);
        expect(n, line, without_b0);
        assert_int_equal(atomic_load(&n->stats.get_forward_failed), failed + i + 1);
    }
    assert_int_equal(atomic_load(&n->stats.forward_errors), 2);      /* closed, bad reply */
    assert_int_equal(atomic_load(&n->stats.forward_timeouts), 1);
    /* The owner says nobody owns the bucket (its group is down): a miss,
     * counted as one. */
    owner_set(&n->owners[3], "SERVER_ERROR NO_OWNER 7 12\r\n", false, 0);
    uint64_t unowned = atomic_load(&n->stats.get_no_owner);
    expect(n, line, without_b0);
    assert_int_equal(atomic_load(&n->stats.get_no_owner), unowned + 1);

    /* And the connection carries on: the next multi-get is whole. */
    owner_set(&n->owners[3], NULL, false, 0);
    expect(n, line, whole);
    node_stop(n);
}

static void
test_fwd_one_key_keeps_its_error_line(void **state)
{
    (void)state;
    node_t *n = node_start(300);
    char b0[32], line[256];
    key_of(3, 0, b0, sizeof(b0));
    fake_put(n->owners[3].fake, b0, "B0", 2, 0);
    snprintf(line, sizeof(line), "get %s\r\n", b0);
    /* Alone, a key's failure is the answer: nothing else to serve. */
    owner_set(&n->owners[3], NULL, true, 0);
    expect(n, line, bc_fwd_error_line(BC_ECLOSED));
    owner_set(&n->owners[3], NULL, false, 600);
    expect(n, line, bc_fwd_error_line(BC_ETIMEOUT));
    owner_set(&n->owners[3], "SERVER_ERROR MOVED 7 1 12\r\n", false, 0);
    expect(n, line, "SERVER_ERROR MOVED 7 1 12\r\n");
    /* ...except "nobody owns it", which is a miss here too. */
    owner_set(&n->owners[3], "SERVER_ERROR NO_OWNER 7 12\r\n", false, 0);
    expect(n, line, "END\r\n");
    /* Other commands relay their failure the same way. */
    owner_set(&n->owners[3], NULL, false, 0);
    snprintf(line, sizeof(line), "delete %s\r\nget %s\r\n", b0, b0);
    expect(n, line, "DELETED\r\nEND\r\n");
    node_stop(n);
}

static void
test_fwd_unreachable_or_unowned_keys_read_as_misses(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    char a0[32], b0[32], line[256], want[256];
    key_of(2, 0, a0, sizeof(a0));
    key_of(3, 0, b0, sizeof(b0));
    fake_put(n->owners[2].fake, a0, "A0", 2, 0);
    fake_put(n->owners[3].fake, b0, "B0", 2, 0);
    /* Group 3 has no known primary any more: its key is not sent anywhere
     * and reads as a miss in a multi-get... */
    const uint32_t gids[] = {1, 2};
    const char *addrs[] = {"127.0.0.1:1", n->owners[2].fake->addr};
    fake_cluster_primaries(n->cl, gids, addrs, 2);
    snprintf(line, sizeof(line), "get %s %s\r\n", a0, b0);
    snprintf(want, sizeof(want), "VALUE %s 0 2\r\nA0\r\nEND\r\n", a0);
    uint64_t failed = atomic_load(&n->stats.get_forward_failed);
    expect(n, line, want);
    assert_int_equal(atomic_load(&n->stats.get_forward_failed), failed + 1);
    assert_int_equal(owner_lines(&n->owners[3]), 0);
    /* ...and alone it is refused with the owner named, for a client that
     * routes by itself to retry there. */
    uint32_t bucket = bc_hash_bucket(bc_hash_key(b0, strlen(b0)), NB);
    snprintf(line, sizeof(line), "get %s\r\n", b0);
    snprintf(want, sizeof(want), "SERVER_ERROR MOVED %u 3 4\r\n", bucket);
    expect(n, line, want);

    /* Group 3 down (the table names no owner): a miss, alone or not. */
    uint32_t owner[NB];
    for (uint32_t b = 0; b < NB; b++) owner[b] = 1 + b % 3 == 3 ? 0 : 1 + b % 3;
    fake_cluster_table(n->cl, 5, owner, NULL, 0);
    expect(n, line, "END\r\n");
    snprintf(line, sizeof(line), "get %s %s\r\n", b0, a0);
    snprintf(want, sizeof(want), "VALUE %s 0 2\r\nA0\r\nEND\r\n", a0);
    expect(n, line, want);
    node_stop(n);
}

static void
test_fwd_flush_all_reaches_every_group(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    char l0[32], line[256];
    key_of(1, 0, l0, sizeof(l0));
    snprintf(line, sizeof(line), "set %s 0 0 1\r\nx\r\nflush_all\r\nget %s\r\n", l0, l0);
    expect(n, line, "STORED\r\nOK\r\nEND\r\n");
    assert_owner_line(&n->owners[2], 0, "flush_all");
    assert_owner_line(&n->owners[3], 0, "flush_all");
    /* Its delay and noreply: the delay travels, noreply does not. */
    expect(n, "flush_all 10 noreply\r\nversion\r\n", "VERSION " BC_MC_PROTOCOL_VERSION "\r\n");
    assert_owner_line(&n->owners[2], 1, "flush_all 10");
    /* A group that fails it: its failure is the answer. */
    owner_set_flush(&n->owners[3], "SERVER_ERROR flush refused\r\n");
    expect(n, "flush_all\r\n", "SERVER_ERROR flush refused\r\n");
    node_stop(n);
}

static void
test_fwd_noreply_is_forwarded_without_it_and_answers_nothing(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    char a0[32], line[256], want[256];
    key_of(2, 0, a0, sizeof(a0));

    /* The owner stores it and answers; the client hears nothing, and its
     * next command (to the same owner) sees the value. */
    snprintf(line, sizeof(line), "set %s 5 0 3 noreply\r\nxyz\r\nget %s\r\n", a0, a0);
    snprintf(want, sizeof(want), "VALUE %s 5 3\r\nxyz\r\nEND\r\n", a0);
    expect(n, line, want);
    snprintf(want, sizeof(want), "set %s 5 0 3", a0);
    assert_owner_line(&n->owners[2], 0, want);
    snprintf(line, sizeof(line), "delete %s noreply\r\nget %s\r\n", a0, a0);
    expect(n, line, "END\r\n");
    snprintf(want, sizeof(want), "delete %s", a0);
    assert_owner_line(&n->owners[2], 2, want);
    /* A failed forward of a noreply command is not answered either. */
    owner_set(&n->owners[2], NULL, true, 0);
    snprintf(line, sizeof(line), "touch %s 10 noreply\r\nversion\r\n", a0);
    expect(n, line, "VERSION " BC_MC_PROTOCOL_VERSION "\r\n");
    node_stop(n);
}

static void
test_fwd_single_key_commands_relay_the_owners_reply(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    char b0[32], line[256];
    key_of(3, 0, b0, sizeof(b0));
    snprintf(line, sizeof(line), "add %s 0 0 1\r\n7\r\nadd %s 0 0 1\r\n8\r\nincr %s 5\r\n"
             "touch %s 100\r\ndelete %s\r\ndelete %s\r\n", b0, b0, b0, b0, b0, b0);
    expect(n, line, "STORED\r\nNOT_STORED\r\n12\r\nTOUCHED\r\nDELETED\r\nNOT_FOUND\r\n");
    node_stop(n);
}

static void
test_fwd_pipelined_commands_keep_their_order(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    char a0[32], l0[32], line[256], want[256];
    key_of(2, 0, a0, sizeof(a0));
    key_of(1, 0, l0, sizeof(l0));
    fake_put(n->owners[2].fake, a0, "remote", 6, 0);
    /* A local command after a forwarded one waits for it: the replies
     * come in the order of the requests, however slow the owner. */
    owner_set(&n->owners[2], NULL, false, 50);
    snprintf(line, sizeof(line), "set %s 0 0 5\r\nlocal\r\nget %s\r\nget %s\r\nget %s %s\r\n",
             l0, a0, l0, l0, a0);
    snprintf(want, sizeof(want), "STORED\r\n"
             "VALUE %s 0 6\r\nremote\r\nEND\r\n"
             "VALUE %s 0 5\r\nlocal\r\nEND\r\n"
             "VALUE %s 0 5\r\nlocal\r\nVALUE %s 0 6\r\nremote\r\nEND\r\n", a0, l0, l0, a0);
    expect(n, line, want);
    node_stop(n);
}

/* ---- writes during a migration pause (proto_text.h) ---- */

/* The owner answers the next `times` sets with `refusal`, each after delay_ms. */
static void
owner_refuse_sets(owner_t *o, int times, const char *refusal, int delay_ms)
{
    pthread_mutex_lock(&o->mu);
    o->set_refusals = times;
    snprintf(o->set_refusal, sizeof(o->set_refusal), "%s", refusal);
    o->set_delay_ms = delay_ms;
    pthread_mutex_unlock(&o->mu);
}

static uint32_t
bucket_of(const char *key)
{
    return bc_hash_bucket(bc_hash_key(key, strlen(key)), NB);
}

/* A table change made by another thread after a delay, as the cluster
 * agent makes it while the loop runs. */
typedef struct later_table {
    node_t *n;
    int delay_ms;
    uint64_t epoch;
    uint32_t owner[NB];
    uint32_t readonly[NB];
    size_t nro;
    pthread_t thread;
} later_table_t;

static void *
later_table_main(void *arg)
{
    later_table_t *t = arg;
    usleep((useconds_t)t->delay_ms * 1000);
    fake_cluster_table(t->n->cl, t->epoch, t->owner, t->readonly, t->nro);
    return NULL;
}

static void
later_table_start(later_table_t *t, node_t *n, int delay_ms, uint64_t epoch)
{
    t->n = n;
    t->delay_ms = delay_ms;
    t->epoch = epoch;
    pthread_create(&t->thread, NULL, later_table_main, t);
}

static void
default_owners(uint32_t *owner)
{
    for (uint32_t b = 0; b < NB; b++) owner[b] = 1 + b % 3;
}

/* Starts t: after delay_ms, the default owners at epoch, with bucket b
 * owned by group instead (b == NB: none). */
static void
later_owners_start(later_table_t *t, node_t *n, int delay_ms, uint64_t epoch, uint32_t b,
                   uint32_t group)
{
    memset(t, 0, sizeof(*t));
    default_owners(t->owner);
    if (b < NB) t->owner[b] = group;
    later_table_start(t, n, delay_ms, epoch);
}

/* Bucket b in its migration pause from now (owner, b read-only, at epoch);
 * t ends it 30 ms later (the default owners at epoch + 1). */
static void
pause_30ms_start(later_table_t *t, node_t *n, const uint32_t *owner, uint32_t b, uint64_t epoch)
{
    uint32_t ro[1] = {b};
    fake_cluster_table(n->cl, epoch, owner, ro, 1);
    later_owners_start(t, n, 30, epoch + 1, NB, 0);
}

static void
test_fwd_write_waits_out_the_owners_pause(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 1000;
    char k[32], line[256], refusal[64];
    key_of(2, 0, k, sizeof(k));
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR READONLY %u 4\r\n", bucket_of(k));

    /* The owner answers READONLY three times, then stores: the client sees
     * STORED, and the reply of the next command after it. */
    owner_refuse_sets(&n->owners[2], 3, refusal, 0);
    char local[32];
    key_of(1, 5, local, sizeof(local));
    snprintf(line, sizeof(line), "set %s 0 0 2\r\nV1\r\nget %s\r\n", k, local);
    expect(n, line, "STORED\r\nEND\r\n");
    assert_int_equal(owner_lines(&n->owners[2]), 4);
    char want[128];
    snprintf(want, sizeof(want), "set %s 0 0 2", k);
    assert_owner_line(&n->owners[2], 3, want);
    assert_int_equal(atomic_load(&n->stats.pause_waits), 1);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 0);

    /* A pause that outlasts the wait: the refusal, after readonly_wait_ms. */
    n->env.readonly_wait_ms = 40;
    owner_refuse_sets(&n->owners[2], 1000, refusal, 0);
    int64_t t0 = bc_time_mono_ms();
    snprintf(line, sizeof(line), "set %s 0 0 2\r\nV2\r\n", k);
    expect(n, line, refusal);
    assert_true(bc_time_mono_ms() - t0 >= 40);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 1);

    /* No wait configured: refused at once, as before. */
    n->env.readonly_wait_ms = 0;
    int before = owner_lines(&n->owners[2]);
    expect(n, line, refusal);
    assert_int_equal(owner_lines(&n->owners[2]), before + 1);
    node_stop(n);
}

static void
test_fwd_write_to_a_bucket_that_moved_here_runs_here(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 1000;
    char k[32], line[256], refusal[64];
    key_of(2, 0, k, sizeof(k));
    uint32_t b = bucket_of(k);

    /* The owner has cut the bucket over to group 1 (this node) and says
     * MOVED; this node's table follows 30 ms later: the write then runs
     * here. */
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR MOVED %u 1 5\r\n", b);
    owner_refuse_sets(&n->owners[2], 1000, refusal, 0);
    later_table_t t;
    later_owners_start(&t, n, 30, 5, b, 1);
    snprintf(line, sizeof(line), "set %s 0 0 2\r\nVV\r\n", k);
    expect(n, line, "STORED\r\n");
    pthread_join(t.thread, NULL);
    char want[128];
    snprintf(line, sizeof(line), "get %s\r\n", k);
    snprintf(want, sizeof(want), "VALUE %s 0 2\r\nVV\r\nEND\r\n", k);
    expect(n, line, want);
    assert_true(owner_lines(&n->owners[2]) >= 1);
    node_stop(n);
}

/* A write waiting out a pause goes on as soon as the table that ends the
 * pause is in force here, not at its next timed try: held on the owner,
 * and sent again through this node to the bucket's new owner. */
static void
test_a_new_table_ends_the_wait_at_once(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 5000;
    n->env.pause_retry_ms = 1000;      /* tries 1, 2 and 4 ms in, then a second apart */
    char k[32], line[256], want[128], refusal[64];
    uint32_t owner[NB];
    default_owners(owner);

    /* Held here: this node's bucket, read-only until the table 30 ms on. */
    key_of(1, 0, k, sizeof(k));
    later_table_t t;
    pause_30ms_start(&t, n, owner, bucket_of(k), 5);
    int64_t t0 = bc_time_mono_ms();
    snprintf(line, sizeof(line), "set %s 0 0 2\r\nH1\r\n", k);
    expect(n, line, "STORED\r\n");
    int64_t took = bc_time_mono_ms() - t0;
    pthread_join(t.thread, NULL);
    if (took < 25 || took >= 500) fail_msg("held write went on after %lld ms", (long long)took);

    /* Forwarded: group 2's owner refuses it READONLY until the table 30 ms
     * on moves the bucket to group 3, which stores it. */
    key_of(2, 0, k, sizeof(k));
    uint32_t b = bucket_of(k);
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR READONLY %u 6\r\n", b);
    owner_refuse_sets(&n->owners[2], 1000, refusal, 0);
    later_owners_start(&t, n, 30, 7, b, 3);
    t0 = bc_time_mono_ms();
    snprintf(line, sizeof(line), "set %s 0 0 2\r\nF1\r\n", k);
    expect(n, line, "STORED\r\n");
    took = bc_time_mono_ms() - t0;
    pthread_join(t.thread, NULL);
    if (took < 25 || took >= 500) fail_msg("forwarded write went on after %lld ms", (long long)took);
    snprintf(want, sizeof(want), "set %s 0 0 2", k);
    assert_owner_line(&n->owners[3], owner_lines(&n->owners[3]) - 1, want);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 0);
    node_stop(n);
}

static void
test_local_write_waits_out_the_pause(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 1000;
    char k[32], line[256], want[128];
    key_of(1, 0, k, sizeof(k));
    uint32_t b = bucket_of(k);
    uint32_t owner[NB], ro[1] = {b};
    default_owners(owner);

    /* This node owns the bucket, read-only (its migration pause); the
     * console calls the move off 30 ms later: the held set is stored, and
     * the command pipelined behind it answered after it. */
    later_table_t t;
    pause_30ms_start(&t, n, owner, b, 5);
    int64_t t0 = bc_time_mono_ms();
    snprintf(line, sizeof(line), "set %s 0 0 2\r\nL1\r\nget %s\r\n", k, k);
    snprintf(want, sizeof(want), "STORED\r\nVALUE %s 0 2\r\nL1\r\nEND\r\n", k);
    expect(n, line, want);
    assert_true(bc_time_mono_ms() - t0 >= 25);
    pthread_join(t.thread, NULL);
    assert_int_equal(atomic_load(&n->stats.pause_waits), 1);

    /* The pause ends with the cutover to group 2: the held write goes to
     * the new owner. */
    fake_cluster_table(n->cl, 7, owner, ro, 1);
    later_table_t t2;
    later_owners_start(&t2, n, 20, 8, b, 2);
    snprintf(line, sizeof(line), "delete %s\r\n", k);
    expect(n, line, "NOT_FOUND\r\n");        /* the fake owner has no such key */
    pthread_join(t2.thread, NULL);
    snprintf(want, sizeof(want), "delete %s", k);
    assert_owner_line(&n->owners[2], owner_lines(&n->owners[2]) - 1, want);

    /* The pause begins while a set's data block is arriving: the set waits
     * with its value, and is stored when the pause ends. */
    owner[b] = 1;
    fake_cluster_table(n->cl, 10, owner, NULL, 0);
    snprintf(line, sizeof(line), "set %s 0 0 2\r\n", k);
    expect(n, line, "");
    later_table_t t3;
    pause_30ms_start(&t3, n, owner, b, 11);
    t0 = bc_time_mono_ms();
    expect(n, "L3\r\n", "STORED\r\n");
    assert_true(bc_time_mono_ms() - t0 >= 25);
    pthread_join(t3.thread, NULL);
    snprintf(line, sizeof(line), "get %s\r\n", k);
    snprintf(want, sizeof(want), "VALUE %s 0 2\r\nL3\r\nEND\r\n", k);
    expect(n, line, want);

    /* A meta set (ms) waits the same way. */
    later_table_t t4;
    pause_30ms_start(&t4, n, owner, b, 12);
    t0 = bc_time_mono_ms();
    snprintf(line, sizeof(line), "ms %s 2\r\nM4\r\n", k);
    expect(n, line, "HD\r\n");
    assert_true(bc_time_mono_ms() - t0 >= 25);
    pthread_join(t4.thread, NULL);
    snprintf(line, sizeof(line), "get %s\r\n", k);
    snprintf(want, sizeof(want), "VALUE %s 0 2\r\nM4\r\nEND\r\n", k);
    expect(n, line, want);

    /* A gat waits the same way (it writes the expiry). */
    later_table_t t5;
    pause_30ms_start(&t5, n, owner, b, 13);
    t0 = bc_time_mono_ms();
    snprintf(line, sizeof(line), "gat 0 %s\r\n", k);
    snprintf(want, sizeof(want), "VALUE %s 0 2\r\nM4\r\nEND\r\n", k);
    expect(n, line, want);
    assert_true(bc_time_mono_ms() - t0 >= 25);
    pthread_join(t5.thread, NULL);

    /* A pause longer than the wait: refused READONLY after it. */
    fake_cluster_table(n->cl, 14, owner, ro, 1);
    n->env.readonly_wait_ms = 30;
    t0 = bc_time_mono_ms();
    snprintf(line, sizeof(line), "set %s 0 0 2\r\nL2\r\n", k);
    snprintf(want, sizeof(want), "SERVER_ERROR READONLY %u 14\r\n", b);
    expect(n, line, want);
    assert_true(bc_time_mono_ms() - t0 >= 30);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 1);
    node_stop(n);
}

static void
owner_refuse_mds(owner_t *o, int times, const char *refusal)
{
    pthread_mutex_lock(&o->mu);
    o->md_refusals = times;
    snprintf(o->set_refusal, sizeof(o->set_refusal), "%s", refusal);
    pthread_mutex_unlock(&o->mu);
}

static void
test_fwd_meta_write_waits_out_the_owners_pause(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 1000;
    char k[32], line[256], refusal[64];
    key_of(2, 0, k, sizeof(k));
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR READONLY %u 4\r\n", bucket_of(k));

    /* md through this node: the owner says READONLY three times, then HD;
     * the client sees HD, and the command behind it answered after it. */
    owner_refuse_mds(&n->owners[2], 3, refusal);
    snprintf(line, sizeof(line), "md %s\r\nmn\r\n", k);
    expect(n, line, "HD\r\nMN\r\n");
    assert_int_equal(atomic_load(&n->stats.pause_waits), 1);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 0);

    /* Quiet: nothing for the success, after the wait. */
    owner_refuse_mds(&n->owners[2], 2, refusal);
    snprintf(line, sizeof(line), "md %s q\r\nmn\r\n", k);
    expect(n, line, "MN\r\n");
    assert_int_equal(atomic_load(&n->stats.pause_waits), 2);

    /* A pause that outlasts the wait: the refusal (an error: shown in quiet
     * mode too). */
    n->env.readonly_wait_ms = 40;
    owner_refuse_mds(&n->owners[2], 1000, refusal);
    snprintf(line, sizeof(line), "md %s q\r\n", k);
    expect(n, line, refusal);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 1);
    node_stop(n);
}

static void
test_fwd_meta_write_to_a_bucket_that_moved_here_runs_here(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 1000;
    char k[32], line[256], refusal[64], want[64];
    key_of(2, 0, k, sizeof(k));
    uint32_t b = bucket_of(k);

    /* The owner says MOVED (to group 1, this node); this node's table
     * follows 30 ms later: the md runs here, its reply without the "MN"
     * of the forwarded request. */
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR MOVED %u 1 5\r\n", b);
    owner_refuse_mds(&n->owners[2], 1000, refusal);
    later_table_t t;
    later_owners_start(&t, n, 30, 5, b, 1);
    snprintf(line, sizeof(line), "md %s\r\n", k);
    expect(n, line, "NF\r\n");
    pthread_join(t.thread, NULL);

    /* Here, but in its migration pause for longer than the wait: this
     * node's own refusal, whole (the forwarded request's "MN" is added to
     * it, then dropped as the owner's would be). */
    char k2[32];
    key_of(2, 1, k2, sizeof(k2));
    uint32_t b2 = bucket_of(k2);
    n->env.readonly_wait_ms = 60;
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR MOVED %u 1 7\r\n", b2);
    owner_refuse_mds(&n->owners[2], 1000, refusal);
    later_table_t t2 = {0};
    default_owners(t2.owner);
    t2.owner[b] = 1;
    t2.owner[b2] = 1;
    t2.readonly[0] = b2;
    t2.nro = 1;
    later_table_start(&t2, n, 10, 7);
    snprintf(line, sizeof(line), "md %s q\r\n", k2);
    snprintf(want, sizeof(want), "SERVER_ERROR READONLY %u 7\r\n", b2);
    expect(n, line, want);
    pthread_join(t2.thread, NULL);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 1);
    node_stop(n);
}

/* The owner refuses the next `times` gats naming key ("" any) with refusal. */
static void
owner_refuse_gats(owner_t *o, int times, const char *key, const char *refusal)
{
    pthread_mutex_lock(&o->mu);
    o->gat_refusals = times;
    snprintf(o->gat_refuse_key, sizeof(o->gat_refuse_key), "%s", key);
    snprintf(o->set_refusal, sizeof(o->set_refusal), "%s", refusal);
    pthread_mutex_unlock(&o->mu);
}

static void
test_fwd_multikey_gat_waits_out_an_owners_pause(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 1000;
    char a0[32], b0[32], l0[32], line[256], want[512], refusal[64];
    key_of(2, 0, a0, sizeof(a0));
    key_of(3, 0, b0, sizeof(b0));
    key_of(1, 0, l0, sizeof(l0));
    fake_put(n->owners[2].fake, a0, "A0", 2, 20);
    fake_put(n->owners[3].fake, b0, "B0", 2, 30);
    snprintf(line, sizeof(line), "set %s 10 0 2\r\nL0\r\n", l0);
    expect(n, line, "STORED\r\n");
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR READONLY %u 4\r\n", bucket_of(a0));

    /* Group 2's part meets its owner's pause three times, then is
     * answered: every value comes (in the client's key order, one END),
     * and the command behind the gat answers after it. */
    owner_refuse_gats(&n->owners[2], 3, "", refusal);
    snprintf(line, sizeof(line), "gat 100 %s %s %s\r\nget %s\r\n", a0, l0, b0, l0);
    snprintf(want, sizeof(want),
             "VALUE %s 20 2\r\nA0\r\nVALUE %s 10 2\r\nL0\r\nVALUE %s 30 2\r\nB0\r\nEND\r\n"
             "VALUE %s 10 2\r\nL0\r\nEND\r\n", a0, l0, b0, l0);
    expect(n, line, want);
    /* Sent four times, the same keys with the same expiry (applied). */
    assert_int_equal(owner_lines(&n->owners[2]), 4);
    snprintf(want, sizeof(want), "gat 100 %s", a0);
    assert_owner_line(&n->owners[2], 3, want);
    assert_int_equal(owner_lines(&n->owners[3]), 1);
    assert_int_equal(atomic_load(&n->stats.pause_waits), 1);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 0);

    /* gats too, with its cas. */
    owner_refuse_gats(&n->owners[2], 2, "", refusal);
    snprintf(line, sizeof(line), "gats 7 %s %s\r\n", b0, a0);
    snprintf(want, sizeof(want), "VALUE %s 30 2 0\r\nB0\r\nVALUE %s 20 2 0\r\nA0\r\nEND\r\n",
             b0, a0);
    run_bytes(n, line, strlen(line));
    /* (the fake's values have no cas: compare without it) */
    char got[512];
    snprintf(got, sizeof(got), "%.*s", (int)n->nout, n->out);
    snprintf(want, sizeof(want), "VALUE %s 30 2\r\nB0\r\nVALUE %s 20 2\r\nA0\r\nEND\r\n", b0, a0);
    assert_string_equal(got, want);
    snprintf(want, sizeof(want), "gats 7 %s", a0);
    assert_owner_line(&n->owners[2], 6, want);

    /* A pause that outlasts the wait: that part's keys read as misses,
     * after readonly_wait_ms. */
    n->env.readonly_wait_ms = 40;
    owner_refuse_gats(&n->owners[2], 1000, "", refusal);
    uint64_t failed = atomic_load(&n->stats.get_forward_failed);
    int64_t t0 = bc_time_mono_ms();
    snprintf(line, sizeof(line), "gat 100 %s %s %s\r\n", a0, l0, b0);
    snprintf(want, sizeof(want), "VALUE %s 10 2\r\nL0\r\nVALUE %s 30 2\r\nB0\r\nEND\r\n", l0, b0);
    expect(n, line, want);
    assert_true(bc_time_mono_ms() - t0 >= 40);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 1);
    assert_int_equal(atomic_load(&n->stats.get_forward_failed), failed + 1);

    /* A multi-get is a read: never sent again. */
    owner_refuse_gats(&n->owners[2], 0, "", refusal);
    owner_set(&n->owners[2], refusal, false, 0);
    int before = owner_lines(&n->owners[2]);
    snprintf(line, sizeof(line), "get %s %s\r\n", a0, b0);
    snprintf(want, sizeof(want), "VALUE %s 30 2\r\nB0\r\nEND\r\n", b0);
    expect(n, line, want);
    assert_int_equal(owner_lines(&n->owners[2]), before + 1);
    node_stop(n);
}

static void
test_fwd_multikey_gat_follows_a_bucket_that_moved(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 1000;
    char a0[32], a1[32], a3[32], line[256], want[512], refusal[64];
    key_of(2, 0, a0, sizeof(a0));
    for (int i = 1;; i++) {
        key_of(2, i, a1, sizeof(a1));
        if (bucket_of(a1) != bucket_of(a0)) break;
    }
    for (int i = 1;; i++) {                /* another key of a0's bucket */
        key_of(2, i, a3, sizeof(a3));
        if (bucket_of(a3) == bucket_of(a0)) break;
    }
    uint32_t b = bucket_of(a0);
    uint32_t owner[NB];

    /* a0 has a value here (its bucket was this group's a moment ago), a1
     * on group 2. */
    default_owners(owner);
    owner[b] = 1;
    fake_cluster_table(n->cl, 5, owner, NULL, 0);
    snprintf(line, sizeof(line), "set %s 1 0 2\r\nH0\r\nset %s 3 0 2\r\nH3\r\n", a0, a3);
    expect(n, line, "STORED\r\nSTORED\r\n");
    default_owners(owner);
    fake_cluster_table(n->cl, 6, owner, NULL, 0);
    fake_put(n->owners[2].fake, a1, "A1", 2, 21);

    /* Group 2 has cut a0's bucket over to group 1 (MOVED); this node's
     * table follows 30 ms later.  The part is split again: a0 runs here,
     * a1 goes back to group 2 alone (asked after a0 and a3, which go
     * together); the values in the client's key order all the same. */
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR MOVED %u 1 7\r\n", b);
    owner_refuse_gats(&n->owners[2], 1000, a0, refusal);
    later_table_t t;
    later_owners_start(&t, n, 30, 7, b, 1);
    snprintf(line, sizeof(line), "gat 100 %s %s %s\r\nmn\r\n", a0, a1, a3);
    snprintf(want, sizeof(want),
             "VALUE %s 1 2\r\nH0\r\nVALUE %s 21 2\r\nA1\r\nVALUE %s 3 2\r\nH3\r\nEND\r\n"
             "MN\r\n", a0, a1, a3);
    expect(n, line, want);
    pthread_join(t.thread, NULL);
    int last = owner_lines(&n->owners[2]) - 1;
    snprintf(want, sizeof(want), "gat 100 %s", a1);
    assert_owner_line(&n->owners[2], last, want);
    /* Its expiry was set here: 100 s from now. */
    snprintf(line, sizeof(line), "mg %s t\r\n", a0);
    run_bytes(n, line, strlen(line));
    assert_true(n->nout > 5 && memcmp(n->out, "HD t", 4) == 0);
    int ttl = atoi(n->out + 4);
    assert_true(ttl > 90 && ttl <= 100);
    node_stop(n);
}

static void
test_fwd_multikey_gat_gathers_no_more_than_one_reply(void **state)
{
    (void)state;
    node_t *n = node_start_capped(2000, 4096);
    n->env.readonly_wait_ms = 1000;
    char a0[32], a1[32], line[256], want[4096], refusal[64];
    key_of(2, 0, a0, sizeof(a0));
    for (int i = 1;; i++) {
        key_of(2, i, a1, sizeof(a1));
        if (bucket_of(a1) != bucket_of(a0)) break;
    }
    uint32_t b = bucket_of(a0);
    static char v0[3000], v1[3000];
    memset(v0, 'x', sizeof(v0));
    memset(v1, 'y', sizeof(v1));
    fake_put(n->owners[3].fake, a0, v0, sizeof(v0), 0);
    fake_put(n->owners[2].fake, a1, v1, sizeof(v1), 0);

    /* Group 2 says a0's bucket moved to group 3; the table follows.  The
     * part is asked again in two requests, each reply under max_reply (4
     * KiB) but not the two together: a0's value comes, a1 reads as a miss
     * rather than the part holding twice what one reply may. */
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR MOVED %u 3 7\r\n", b);
    owner_refuse_gats(&n->owners[2], 1000, a0, refusal);
    later_table_t t;
    later_owners_start(&t, n, 30, 7, b, 3);
    uint64_t misses = atomic_load(&n->stats.get_forward_failed);
    snprintf(line, sizeof(line), "gat 100 %s %s\r\n", a0, a1);
    int w = snprintf(want, sizeof(want), "VALUE %s 0 3000\r\n", a0);
    memcpy(want + w, v0, sizeof(v0));
    snprintf(want + w + sizeof(v0), sizeof(want) - w - sizeof(v0), "\r\nEND\r\n");
    expect(n, line, want);
    pthread_join(t.thread, NULL);
    assert_int_equal(atomic_load(&n->stats.get_forward_failed), misses + 1);
    node_stop(n);
}

/* A binary request packet into out; returns its length. */
static size_t
bin_packet(char *out, uint8_t opcode, const char *key, const void *ext, uint8_t extlen,
           const char *val, size_t vlen, uint32_t opaque)
{
    size_t nkey = key != NULL ? strlen(key) : 0;
    unsigned char *b = (unsigned char *)out;
    memset(b, 0, BC_BIN_HEADER_LEN);
    b[0] = BC_BIN_REQ_MAGIC;
    b[1] = opcode;
    bc_binary_put16(b + 2, (uint16_t)nkey);
    b[4] = extlen;
    bc_binary_put32(b + 8, (uint32_t)(extlen + nkey + vlen));
    memcpy(b + 12, &opaque, 4);
    size_t off = BC_BIN_HEADER_LEN;
    if (extlen > 0) memcpy(out + off, ext, extlen);
    off += extlen;
    if (nkey > 0) memcpy(out + off, key, nkey);
    off += nkey;
    if (vlen > 0) memcpy(out + off, val, vlen);
    return off + vlen;
}

/* A set (or setq) of key to val, flags 0, no expiry. */
static size_t
bin_set(char *out, uint8_t opcode, const char *key, const char *val, uint32_t opaque)
{
    unsigned char ext[8] = {0};
    return bin_packet(out, opcode, key, ext, 8, val, strlen(val), opaque);
}

/* Asserts the i-th response of n's answer: its opcode, status and body
 * (NULL: not checked); returns the offset after it. */
static size_t
assert_bin_reply(node_t *n, size_t off, uint8_t opcode, uint16_t status, const char *body)
{
    if (off + BC_BIN_HEADER_LEN > n->nout) fail_msg("no response at %zu of %zu", off, n->nout);
    const unsigned char *p = (const unsigned char *)n->out + off;
    assert_int_equal(p[0], BC_BIN_RES_MAGIC);
    assert_int_equal(p[1], opcode);
    assert_int_equal(bc_binary_get16(p + 6), status);
    uint32_t bodylen = bc_binary_get32(p + 8);
    assert_true(off + BC_BIN_HEADER_LEN + bodylen <= n->nout);
    if (body != NULL) {
        uint32_t skip = p[4] + bc_binary_get16(p + 2);
        assert_int_equal(bodylen - skip, strlen(body));
        assert_memory_equal(p + BC_BIN_HEADER_LEN + skip, body, strlen(body));
    }
    return off + BC_BIN_HEADER_LEN + bodylen;
}

static void
test_fwd_binary_write_waits_out_the_owners_pause(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 1000;
    char k[32], in[256], refusal[64];
    key_of(2, 0, k, sizeof(k));
    snprintf(refusal, sizeof(refusal), "SERVER_ERROR READONLY %u 4\r\n", bucket_of(k));

    /* A binary delete goes to the owner as "md": READONLY three times,
     * then done; the client sees success, then the noop behind it. */
    owner_refuse_mds(&n->owners[2], 3, refusal);
    size_t m = bin_packet(in, BC_BIN_DELETE, k, NULL, 0, NULL, 0, 7);
    m += bin_packet(in + m, BC_BIN_NOOP, NULL, NULL, 0, NULL, 0, 8);
    run_bytes(n, in, m);
    size_t off = assert_bin_reply(n, 0, BC_BIN_DELETE, BC_BIN_OK, NULL);
    off = assert_bin_reply(n, off, BC_BIN_NOOP, BC_BIN_OK, NULL);
    assert_int_equal(off, n->nout);
    assert_int_equal(atomic_load(&n->stats.pause_waits), 1);

    /* deleteq: nothing for the success, after the wait; the noop after it. */
    owner_refuse_mds(&n->owners[2], 2, refusal);
    m = bin_packet(in, BC_BIN_DELETEQ, k, NULL, 0, NULL, 0, 9);
    m += bin_packet(in + m, BC_BIN_NOOP, NULL, NULL, 0, NULL, 0, 10);
    run_bytes(n, in, m);
    off = assert_bin_reply(n, 0, BC_BIN_NOOP, BC_BIN_OK, NULL);
    assert_int_equal(off, n->nout);
    assert_int_equal(atomic_load(&n->stats.pause_waits), 2);

    /* Past the wait: the refusal, as before (NOT_MY_VBUCKET). */
    n->env.readonly_wait_ms = 40;
    owner_refuse_mds(&n->owners[2], 1000, refusal);
    m = bin_packet(in, BC_BIN_DELETEQ, k, NULL, 0, NULL, 0, 11);
    run_bytes(n, in, m);
    char body[64];
    snprintf(body, sizeof(body), "READONLY %u 4", bucket_of(k));
    assert_bin_reply(n, 0, BC_BIN_DELETEQ, BC_BIN_NOT_MY_VBUCKET, body);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 1);
    node_stop(n);
}

static void
test_local_binary_write_waits_out_the_pause(void **state)
{
    (void)state;
    node_t *n = node_start(2000);
    n->env.readonly_wait_ms = 1000;
    char k[32], in[512];
    key_of(1, 0, k, sizeof(k));
    uint32_t b = bucket_of(k);
    uint32_t owner[NB], ro[1] = {b};
    default_owners(owner);

    /* This node owns the bucket, read-only; the move is called off 30 ms
     * later: the held set is stored, the get behind it sees its value. */
    later_table_t t;
    pause_30ms_start(&t, n, owner, b, 5);
    int64_t t0 = bc_time_mono_ms();
    size_t m = bin_set(in, BC_BIN_SET, k, "B1", 1);
    m += bin_packet(in + m, BC_BIN_GET, k, NULL, 0, NULL, 0, 2);
    run_bytes(n, in, m);
    size_t off = assert_bin_reply(n, 0, BC_BIN_SET, BC_BIN_OK, NULL);
    off = assert_bin_reply(n, off, BC_BIN_GET, BC_BIN_OK, "B1");
    assert_int_equal(off, n->nout);
    assert_true(bc_time_mono_ms() - t0 >= 25);
    pthread_join(t.thread, NULL);
    assert_int_equal(atomic_load(&n->stats.pause_waits), 1);

    /* setq, then noop: the noop alone, after the wait. */
    later_table_t t2;
    pause_30ms_start(&t2, n, owner, b, 7);
    m = bin_set(in, BC_BIN_SETQ, k, "B2", 3);
    m += bin_packet(in + m, BC_BIN_NOOP, NULL, NULL, 0, NULL, 0, 4);
    m += bin_packet(in + m, BC_BIN_GET, k, NULL, 0, NULL, 0, 5);
    run_bytes(n, in, m);
    off = assert_bin_reply(n, 0, BC_BIN_NOOP, BC_BIN_OK, NULL);
    off = assert_bin_reply(n, off, BC_BIN_GET, BC_BIN_OK, "B2");
    assert_int_equal(off, n->nout);
    pthread_join(t2.thread, NULL);

    /* The pause begins while the value is arriving: the set waits with it. */
    m = bin_set(in, BC_BIN_SET, k, "B3", 6);
    run_bytes(n, in, m - 1);
    assert_int_equal(n->nout, 0);
    later_table_t t3;
    pause_30ms_start(&t3, n, owner, b, 9);
    t0 = bc_time_mono_ms();
    run_bytes(n, in + m - 1, 1);
    assert_bin_reply(n, 0, BC_BIN_SET, BC_BIN_OK, NULL);
    assert_true(bc_time_mono_ms() - t0 >= 25);
    pthread_join(t3.thread, NULL);
    m = bin_packet(in, BC_BIN_GET, k, NULL, 0, NULL, 0, 7);
    run_bytes(n, in, m);
    assert_bin_reply(n, 0, BC_BIN_GET, BC_BIN_OK, "B3");

    /* incr and touch wait too; past the wait, the refusal. */
    fake_cluster_table(n->cl, 11, owner, ro, 1);
    n->env.readonly_wait_ms = 30;
    unsigned char ext[20] = {0};
    bc_binary_put64(ext, 1);
    t0 = bc_time_mono_ms();
    m = bin_packet(in, BC_BIN_INCREMENT, k, ext, 20, NULL, 0, 8);
    run_bytes(n, in, m);
    char body[64];
    snprintf(body, sizeof(body), "READONLY %u 11", b);
    assert_bin_reply(n, 0, BC_BIN_INCREMENT, BC_BIN_NOT_MY_VBUCKET, body);
    assert_true(bc_time_mono_ms() - t0 >= 30);
    assert_int_equal(atomic_load(&n->stats.pause_timeouts), 1);
    node_stop(n);
}

int
main(void)
{
    bc_log_set_level(BC_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fwd_multiget_values_in_the_clients_key_order),
        cmocka_unit_test(test_fwd_multiget_key_order_with_late_parts_duplicates_and_failures),
        cmocka_unit_test(test_fwd_multiget_of_many_keys_in_key_order),
        cmocka_unit_test(test_fwd_multiget_failed_part_reads_as_misses),
        cmocka_unit_test(test_fwd_one_key_keeps_its_error_line),
        cmocka_unit_test(test_fwd_unreachable_or_unowned_keys_read_as_misses),
        cmocka_unit_test(test_fwd_flush_all_reaches_every_group),
        cmocka_unit_test(test_fwd_noreply_is_forwarded_without_it_and_answers_nothing),
        cmocka_unit_test(test_fwd_single_key_commands_relay_the_owners_reply),
        cmocka_unit_test(test_fwd_pipelined_commands_keep_their_order),
        cmocka_unit_test(test_fwd_write_waits_out_the_owners_pause),
        cmocka_unit_test(test_fwd_write_to_a_bucket_that_moved_here_runs_here),
        cmocka_unit_test(test_local_write_waits_out_the_pause),
        cmocka_unit_test(test_a_new_table_ends_the_wait_at_once),
        cmocka_unit_test(test_fwd_meta_write_waits_out_the_owners_pause),
        cmocka_unit_test(test_fwd_meta_write_to_a_bucket_that_moved_here_runs_here),
        cmocka_unit_test(test_fwd_binary_write_waits_out_the_owners_pause),
        cmocka_unit_test(test_local_binary_write_waits_out_the_pause),
        cmocka_unit_test(test_fwd_multikey_gat_waits_out_an_owners_pause),
        cmocka_unit_test(test_fwd_multikey_gat_follows_a_bucket_that_moved),
        cmocka_unit_test(test_fwd_multikey_gat_gathers_no_more_than_one_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
