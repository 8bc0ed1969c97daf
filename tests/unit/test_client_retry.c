/*
 * test_client_retry.c -- the client's calls against fake nodes that
 * refuse, drop connections, die, or answer with hostile bytes: refusals
 * lead to a refresh and a retry on the new owner, dropped connections are
 * retried only when that is safe, deadlines hold, owner-less buckets fail
 * fast, and every malformed reply is a clear error -- never a crash and
 * never a value for the wrong key.  Also multi-get ordering and retry.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "bc_hash.h"
#include "bc_mcproto.h"
#include "bc_time.h"
#include "bc_wire.h"
#include "agent.h"
#include "client.h"
#include "client_int.h"
#include "registry.h"
#include "test_client_fake.h"

#define NB 4

/* Everything is owned by group 1 unless a test changes it. */
typedef struct world {
    fake_t *a, *b;
    bc_client_t *c;
    uint32_t owner[NB];
    const char *addr_of_1;          /* group 1's primary */
    const char *addr_of_2;
    atomic_int refreshes;
    bool move_on_refresh;           /* refresh: group 1's primary becomes b */
} world_t;

static void
world_install(world_t *w, uint64_t epoch)
{
    uint32_t gids[2] = {1, 2};
    const char *addrs[2] = {w->addr_of_1, w->addr_of_2};
    assert_int_equal(bc__registry_install(w->c, epoch, w->owner, NULL, 2, gids, addrs), BC_OK);
}

static void
world_refresh(bc_client_t *c, uint64_t min_epoch, void *ctx)
{
    world_t *w = ctx;
    (void)c;
    (void)min_epoch;
    atomic_fetch_add(&w->refreshes, 1);
    if (w->move_on_refresh) {
        w->addr_of_1 = w->b->addr;
        world_install(w, 2);
    }
}

static void
world_init(world_t *w, fake_hook_fn hook_a, void *ctx_a, const bc_client_options_t *opts)
{
    memset(w, 0, sizeof(*w));
    w->a = fake_start(hook_a, ctx_a);
    w->b = fake_start(NULL, NULL);
    for (int i = 0; i < NB; i++) w->owner[i] = 1;
    w->addr_of_1 = w->a->addr;
    w->addr_of_2 = w->b->addr;
    assert_int_equal(bc__client_new_detached(opts, NB, &w->c), BC_OK);
    bc__agent_set_refresh_hook(w->c, world_refresh, w);
    world_install(w, 1);
}

static void
world_free(world_t *w)
{
    bc_client_destroy(w->c);
    fake_stop(w->a);
    fake_stop(w->b);
}

static uint64_t
ms_now(void)
{
    return bc_time_mono_ns() / 1000000ull;
}

/* ---- hooks ---- */

static fake_action_t
hook_moved(fake_t *f, const char *line, const char *data, size_t dlen, char *out, size_t *outlen,
           void *ctx)
{
    (void)f, (void)line, (void)data, (void)dlen, (void)ctx;
    *outlen = (size_t)sprintf(out, "SERVER_ERROR MOVED 0 2 7\r\n");
    return FAKE_REPLY;
}

static void
test_moved_refreshes_and_retries(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, hook_moved, NULL, NULL);
    w.move_on_refresh = true;
    fake_put(w.b, "k", "from-b", 6, 3);
    void *v;
    size_t vlen;
    uint32_t flags;
    assert_int_equal(bc_client_get(w.c, "k", 1, 1000, &v, &vlen, &flags), BC_CLIENT_OK);
    assert_int_equal(vlen, 6);
    assert_memory_equal(v, "from-b", 6);
    assert_int_equal(((char *)v)[6], '\0');
    assert_int_equal(flags, 3);
    bc_client_free(v);
    bc_client_stats_t st;
    bc_client_get_stats(w.c, &st);
    assert_int_equal(st.refusals, 1);
    assert_true(st.retries >= 1);
    assert_true(atomic_load(&w.refreshes) >= 1);
    /* writes follow the refusal too; the refused one landed nowhere */
    w.addr_of_1 = w.a->addr;
    world_install(&w, 3);
    assert_int_equal(bc_client_set(w.c, "k2", 2, "x", 1, 0, 0, 1000), BC_CLIENT_OK);
    assert_true(fake_has(w.b, "k2"));
    assert_false(fake_has(w.a, "k2"));
    world_free(&w);
}

static void
test_refused_until_deadline(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, hook_moved, NULL, NULL);   /* the table never changes */
    void *v;
    size_t vlen;
    uint64_t t0 = ms_now();
    assert_int_equal(bc_client_get(w.c, "k", 1, 150, &v, &vlen, NULL), BC_CLIENT_ETIMEOUT);
    uint64_t took = ms_now() - t0;
    assert_true(took >= 140 && took < 1000);
    assert_null(v);
    bc_client_stats_t st;
    bc_client_get_stats(w.c, &st);
    assert_true(st.refusals >= 3);   /* backoff: retried, but not a busy loop */
    assert_true(st.refusals < 200);
    assert_int_equal(st.timeouts, 1);
    world_free(&w);
}

/* NOT_ENOUGH_IN_SYNC for the first `left` writes, then the store answers. */
static fake_action_t
hook_not_in_sync(fake_t *f, const char *line, const char *data, size_t dlen, char *out,
                 size_t *outlen, void *ctx)
{
    (void)f, (void)data, (void)dlen;
    atomic_int *left = ctx;
    if (strncmp(line, "set ", 4) == 0 && atomic_fetch_sub(left, 1) > 0) {
        *outlen = (size_t)sprintf(out, "SERVER_ERROR NOT_ENOUGH_IN_SYNC 3 1 7\r\n");
        return FAKE_REPLY;
    }
    return FAKE_DEFAULT;
}

static void
test_not_enough_in_sync_retried_without_refresh(void **state)
{
    (void)state;
    world_t w;
    /* static: the fake's threads may outlive a failed assertion here */
    static atomic_int left;
    atomic_store(&left, 3);
    world_init(&w, hook_not_in_sync, &left, NULL);
    /* the group is short of backups in sync for a moment: retried on the
     * same node, the table is not asked for again */
    assert_int_equal(bc_client_set(w.c, "k", 1, "v", 1, 0, 0, 2000), BC_CLIENT_OK);
    assert_true(fake_has(w.a, "k"));
    bc_client_stats_t st;
    bc_client_get_stats(w.c, &st);
    assert_int_equal(st.refusals, 3);
    assert_int_equal(atomic_load(&w.refreshes), 0);
    /* short until the deadline: the write was not applied, and says why */
    atomic_store(&left, 1000000);
    /* A sent write whose answer comes after the deadline is a timeout,
     * not a refusal: on a loaded machine (a sanitizer) the last attempt
     * before the deadline may be one.  So up to three tries, each either,
     * and at least one ENOTINSYNC. */
    int refused = 0;
    for (int i = 0; i < 3 && refused == 0; i++) {
        uint64_t t0 = ms_now();
        int rc = bc_client_set(w.c, "k2", 2, "v", 1, 0, 0, 600);
        assert_true(rc == BC_CLIENT_ENOTINSYNC || rc == BC_CLIENT_ETIMEOUT);
        assert_true(ms_now() - t0 >= 590);
        refused += rc == BC_CLIENT_ENOTINSYNC;
    }
    assert_int_equal(refused, 1);
    assert_false(fake_has(w.a, "k2"));
    assert_non_null(strstr(bc_strerror(BC_CLIENT_ENOTINSYNC), "in sync"));
    world_free(&w);
}

/* A node that reads requests and never answers; it tells how each of its
 * connections ended: 1 reset (RST), 2 closed (FIN). */
typedef struct mute_node {
    int lfd;
    char addr[32];
    pthread_t thread;
    atomic_int requests;
    atomic_int ended;          /* 0 still open, 1 reset, 2 closed */
} mute_node_t;

static void *
mute_serve(void *arg)
{
    mute_node_t *m = arg;
    int fd = accept(m->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            atomic_fetch_add(&m->requests, 1);
            continue;
        }
        atomic_store(&m->ended, n < 0 && errno == ECONNRESET ? 1 : 2);
        break;
    }
    close(fd);
    return NULL;
}

static void
test_timed_out_connection_is_reset(void **state)
{
    (void)state;
    mute_node_t m;
    memset(&m, 0, sizeof(m));
    m.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(m.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(m.lfd, 4), 0);
    assert_int_equal(getsockname(m.lfd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(m.addr, sizeof(m.addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    assert_int_equal(pthread_create(&m.thread, NULL, mute_serve, &m), 0);

    world_t w;
    world_init(&w, NULL, NULL, NULL);
    w.addr_of_1 = m.addr;
    world_install(&w, 2);
    /* The write times out unanswered.  The library gives the connection
     * up with a reset, not a close: a request the kernel still held (a
     * partition) would otherwise be retransmitted and applied later. */
    assert_int_equal(bc_client_set(w.c, "k", 1, "v", 1, 0, 0, 100), BC_CLIENT_ETIMEOUT);
    for (int i = 0; i < 200 && atomic_load(&m.ended) == 0; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&m.requests) >= 1, 1);
    assert_int_equal(atomic_load(&m.ended), 1);
    pthread_join(m.thread, NULL);
    close(m.lfd);
    world_free(&w);
}

typedef struct drop_ctx {
    atomic_int drops_left;
    /* drop only lines starting with this; atomic: the test changes it while
     * the fake's connection threads read it */
    _Atomic(const char *) cmd;
} drop_ctx_t;

static fake_action_t
hook_drop(fake_t *f, const char *line, const char *data, size_t dlen, char *out, size_t *outlen,
          void *ctx)
{
    (void)f, (void)data, (void)dlen, (void)out, (void)outlen;
    drop_ctx_t *d = ctx;
    const char *cmd = atomic_load(&d->cmd);
    if (strncmp(line, cmd, strlen(cmd)) == 0 && atomic_fetch_sub(&d->drops_left, 1) > 0) {
        return FAKE_DROP;
    }
    return FAKE_DEFAULT;
}

static void
test_dropped_connection(void **state)
{
    (void)state;
    world_t w;
    drop_ctx_t d;
    atomic_init(&d.cmd, "get");
    atomic_init(&d.drops_left, 2);
    world_init(&w, hook_drop, &d, NULL);
    fake_put(w.a, "k", "v1", 2, 0);
    void *v;
    size_t vlen;
    /* get is retried on a new connection */
    assert_int_equal(bc_client_get(w.c, "k", 1, 1000, &v, &vlen, NULL), BC_CLIENT_OK);
    assert_memory_equal(v, "v1", 2);
    bc_client_free(v);
    bc_client_stats_t st;
    bc_client_get_stats(w.c, &st);
    assert_true(st.conn_drops >= 2);
    assert_true(st.connects >= 3);

    /* add and incr are not: the outcome is unknown */
    atomic_store(&d.cmd, "add");
    atomic_store(&d.drops_left, 1);
    assert_int_equal(bc_client_add(w.c, "n", 1, "1", 1, 0, 0, 1000), BC_CLIENT_EINDOUBT);
    assert_true(fake_has(w.a, "n") == false);   /* the fake dropped before storing */
    atomic_store(&d.cmd, "incr");
    atomic_store(&d.drops_left, 1);
    fake_put(w.a, "n", "5", 1, 0);
    uint64_t r = 0;
    assert_int_equal(bc_client_incr(w.c, "n", 1, 1, &r, 1000), BC_CLIENT_EINDOUBT);
    assert_int_equal(bc_client_incr(w.c, "n", 1, 2, &r, 1000), BC_CLIENT_OK);
    assert_int_equal(r, 7);

    /* set and delete are retried; a retried delete that finds nothing is OK */
    atomic_store(&d.cmd, "set");
    atomic_store(&d.drops_left, 1);
    assert_int_equal(bc_client_set(w.c, "s", 1, "x", 1, 0, 0, 1000), BC_CLIENT_OK);
    atomic_store(&d.cmd, "delete");
    atomic_store(&d.drops_left, 1);
    assert_int_equal(bc_client_delete(w.c, "s", 1, 1000), BC_CLIENT_OK);
    assert_int_equal(bc_client_delete(w.c, "s", 1, 1000), BC_CLIENT_ENOTFOUND);
    world_free(&w);
}

static void
test_dead_node_and_no_owner(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, NULL, NULL, NULL);
    w.addr_of_1 = "127.0.0.1:1";   /* nothing listens there */
    world_install(&w, 2);
    uint64_t t0 = ms_now();
    assert_int_equal(bc_client_set(w.c, "k", 1, "x", 1, 0, 0, 120), BC_CLIENT_ETIMEOUT);
    uint64_t took = ms_now() - t0;
    assert_true(took >= 110 && took < 1000);
    bc_client_stats_t st;
    bc_client_get_stats(w.c, &st);
    assert_true(st.connect_errors >= 2);
    assert_true(atomic_load(&w.refreshes) >= 1);

    /* owner 0: an immediate, clear error (or a miss, if configured) */
    for (int i = 0; i < NB; i++) w.owner[i] = 0;
    world_install(&w, 3);
    void *v;
    size_t vlen;
    t0 = ms_now();
    assert_int_equal(bc_client_get(w.c, "k", 1, 5000, &v, &vlen, NULL), BC_CLIENT_ENOOWNER);
    assert_int_equal(bc_client_set(w.c, "k", 1, "x", 1, 0, 0, 5000), BC_CLIENT_ENOOWNER);
    assert_true(ms_now() - t0 < 1000);
    world_free(&w);

    bc_client_options_t o;
    bc_client_options_init(&o);
    o.no_owner_is_miss = 1;
    world_init(&w, NULL, NULL, &o);
    for (int i = 0; i < NB; i++) w.owner[i] = 0;
    world_install(&w, 2);
    assert_int_equal(bc_client_get(w.c, "k", 1, 500, &v, &vlen, NULL), BC_CLIENT_ENOTFOUND);
    bc_client_item_t items[2];
    const void *keys[2] = {"a", "b"};
    size_t klens[2] = {1, 1};
    assert_int_equal(bc_client_mget(w.c, 2, keys, klens, 500, items), BC_CLIENT_OK);
    assert_int_equal(items[0].status, BC_CLIENT_ENOTFOUND);
    world_free(&w);
}

static fake_action_t
hook_readonly(fake_t *f, const char *line, const char *data, size_t dlen, char *out,
              size_t *outlen, void *ctx)
{
    (void)f, (void)data, (void)dlen;
    atomic_int *left = ctx;
    if (strncmp(line, "set", 3) == 0 && atomic_fetch_sub(left, 1) > 0) {
        *outlen = (size_t)sprintf(out, "SERVER_ERROR READONLY 1 4\r\n");
        return FAKE_REPLY;
    }
    return FAKE_DEFAULT;
}

static void
test_readonly_then_writable(void **state)
{
    (void)state;
    world_t w;
    atomic_int left;
    atomic_init(&left, 3);
    world_init(&w, hook_readonly, &left, NULL);
    assert_int_equal(bc_client_set(w.c, "k", 1, "x", 1, 0, 0, 2000), BC_CLIENT_OK);
    assert_true(fake_has(w.a, "k"));
    bc_client_stats_t st;
    bc_client_get_stats(w.c, &st);
    assert_int_equal(st.refusals, 3);
    /* a read-only flag in our own table: writes wait, reads go */
    uint8_t ro[NB] = {1, 1, 1, 1};
    uint32_t gids[2] = {1, 2};
    const char *addrs[2] = {w.a->addr, w.b->addr};
    assert_int_equal(bc__registry_install(w.c, 5, w.owner, ro, 2, gids, addrs), BC_OK);
    assert_int_equal(bc_client_set(w.c, "k", 1, "y", 1, 0, 0, 80), BC_CLIENT_ETIMEOUT);
    void *v;
    size_t vlen;
    assert_int_equal(bc_client_get(w.c, "k", 1, 500, &v, &vlen, NULL), BC_CLIENT_OK);
    assert_memory_equal(v, "x", 1);
    bc_client_free(v);
    world_free(&w);
}

/* A node that lost the forwarded command: the next `left` commands named
 * `cmd` get the forwarding error `reply` (the fake stores nothing). */
typedef struct fwd_ctx {
    const char *cmd;
    const char *reply;
    atomic_int left;
} fwd_ctx_t;

static fake_action_t
hook_forward_lost(fake_t *f, const char *line, const char *data, size_t dlen, char *out,
                  size_t *outlen, void *ctx)
{
    (void)f, (void)data, (void)dlen;
    fwd_ctx_t *fc = ctx;
    size_t n = strlen(fc->cmd);
    if (strncmp(line, fc->cmd, n) == 0 && line[n] == ' ' && atomic_fetch_sub(&fc->left, 1) > 0) {
        *outlen = (size_t)sprintf(out, "SERVER_ERROR %s\r\n", fc->reply);
        return FAKE_REPLY;
    }
    return FAKE_DEFAULT;
}

/* The next n commands named cmd get the forwarding error reply. */
static void
lose_next(fwd_ctx_t *fc, const char *cmd, const char *reply, int n)
{
    fc->cmd = cmd;
    fc->reply = reply;
    atomic_store(&fc->left, n);
}

/* Unsent, any command is sent again; in doubt, only idempotent ones are
 * (the others answer BC_CLIENT_EINDOUBT, as after a lost connection). */
static void
test_forwarding_failures(void **state)
{
    (void)state;
    world_t w;
    fwd_ctx_t fc;
    atomic_init(&fc.left, 0);
    lose_next(&fc, "add", bc_wire_fwd_failure_text(BC_WIRE_FWD_UNSENT), 2);
    world_init(&w, hook_forward_lost, &fc, NULL);
    assert_int_equal(bc_client_add(w.c, "a", 1, "1", 1, 0, 0, 2000), BC_CLIENT_OK);
    assert_true(fake_has(w.a, "a"));

    lose_next(&fc, "add", bc_wire_fwd_failure_text(BC_WIRE_FWD_IN_DOUBT), 1);
    assert_int_equal(bc_client_add(w.c, "b", 1, "1", 1, 0, 0, 2000), BC_CLIENT_EINDOUBT);
    assert_false(fake_has(w.a, "b"));
    lose_next(&fc, "incr", bc_wire_fwd_failure_text(BC_WIRE_FWD_TIMEOUT), 1);
    uint64_t r = 0;
    assert_int_equal(bc_client_incr(w.c, "a", 1, 1, &r, 2000), BC_CLIENT_EINDOUBT);

    lose_next(&fc, "set", bc_wire_fwd_failure_text(BC_WIRE_FWD_IN_DOUBT), 2);
    assert_int_equal(bc_client_set(w.c, "s", 1, "x", 1, 0, 0, 2000), BC_CLIENT_OK);
    assert_true(fake_has(w.a, "s"));
    lose_next(&fc, "get", bc_wire_fwd_failure_text(BC_WIRE_FWD_TIMEOUT), 1);
    void *v;
    size_t vlen;
    assert_int_equal(bc_client_get(w.c, "s", 1, 2000, &v, &vlen, NULL), BC_CLIENT_OK);
    assert_memory_equal(v, "x", 1);
    bc_client_free(v);

    /* a multi-get whose forwarded part was lost is sent again */
    lose_next(&fc, "get", bc_wire_fwd_failure_text(BC_WIRE_FWD_IN_DOUBT), 1);
    bc_client_item_t items[2];
    const void *keys[2] = {"s", "a"};
    size_t klens[2] = {1, 1};
    assert_int_equal(bc_client_mget(w.c, 2, keys, klens, 2000, items), BC_CLIENT_OK);
    assert_true(atomic_load(&fc.left) <= 0);            /* the lost part was answered */
    assert_int_equal(items[0].status, BC_CLIENT_OK);
    assert_int_equal(items[1].status, BC_CLIENT_OK);
    bc_client_items_free(items, 2);

    /* any other server error is not retried, nor are the forwarding
     * failures that are the forwarding node's own errors */
    lose_next(&fc, "set", "forward failed: something else", 1);
    assert_int_equal(bc_client_set(w.c, "t", 1, "x", 1, 0, 0, 2000), BC_CLIENT_ESERVER);
    lose_next(&fc, "set", bc_wire_fwd_failure_text(BC_WIRE_FWD_BUSY), 1);
    assert_int_equal(bc_client_set(w.c, "t", 1, "x", 1, 0, 0, 2000), BC_CLIENT_ESERVER);
    world_free(&w);
}

/* Hostile replies: each must give a clear error, never a wrong value. */
static const char *hostile_reply;

static fake_action_t
hook_hostile(fake_t *f, const char *line, const char *data, size_t dlen, char *out,
             size_t *outlen, void *ctx)
{
    (void)f, (void)line, (void)data, (void)dlen, (void)ctx;
    *outlen = strlen(hostile_reply);
    memcpy(out, hostile_reply, *outlen);
    return FAKE_REPLY;
}

static void
test_hostile_replies(void **state)
{
    (void)state;
    static const struct {
        const char *reply;
        int want;
    } cases[] = {
        {"VALUE other 0 1\r\nx\r\nEND\r\n", BC_CLIENT_EPROTO},         /* wrong key */
        {"VALUE k 0 1\r\nx\r\nVALUE k 0 1\r\ny\r\nEND\r\n", BC_CLIENT_EPROTO},
        {"VALUE k 0 3\r\nxyzzy\r\nEND\r\n", BC_CLIENT_EPROTO},         /* bad length */
        {"VALUE k 0 99999999999\r\n", BC_CLIENT_EPROTO},               /* absurd size */
        {"VALUE k 0 2000\r\n", BC_CLIENT_EPROTO},                      /* over max_value_bytes */
        {"VALUE k x 1\r\nx\r\nEND\r\n", BC_CLIENT_EPROTO},
        {"STORED\r\n", BC_CLIENT_EPROTO},
        {"HELLO\r\n", BC_CLIENT_EPROTO},
        {"ERROR\r\n", BC_CLIENT_EPROTO},
        {"CLIENT_ERROR bad command line format\r\n", BC_CLIENT_EPROTO},
        {"SERVER_ERROR out of memory\r\n", BC_CLIENT_ESERVER},
        {"SERVER_ERROR MOVED x y z\r\n", BC_CLIENT_ESERVER},           /* not a refusal */
        {"\r\n", BC_CLIENT_EPROTO},
        {"END\n", BC_CLIENT_EPROTO},
        {"VALUE k 0 1\r\nx\r\nSTORED\r\n", BC_CLIENT_EPROTO},
    };
    bc_client_options_t o;
    bc_client_options_init(&o);
    o.max_value_bytes = 1024;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        world_t w;
        hostile_reply = cases[i].reply;
        world_init(&w, hook_hostile, NULL, &o);
        void *v = (void *)1;
        size_t vlen = 9;
        int rc = bc_client_get(w.c, "k", 1, 300, &v, &vlen, NULL);
        if (rc != cases[i].want) fail_msg("case %zu (%s): got %d", i, cases[i].reply, rc);
        assert_null(v);
        assert_int_equal(vlen, 0);
        /* multi-get: the same replies fail the item, never fill it */
        bc_client_item_t items[1];
        const void *keys[1] = {"k"};
        size_t klens[1] = {1};
        bc_client_mget(w.c, 1, keys, klens, 300, items);
        assert_true(items[0].status != BC_CLIENT_OK);
        assert_null(items[0].value);
        world_free(&w);
    }
    /* storage replies */
    world_t w;
    hostile_reply = "SERVER_ERROR object too large for cache\r\n";
    world_init(&w, hook_hostile, NULL, &o);
    assert_int_equal(bc_client_set(w.c, "k", 1, "x", 1, 0, 0, 300), BC_CLIENT_ETOOLARGE);
    hostile_reply = "DELETED\r\n";
    assert_int_equal(bc_client_set(w.c, "k", 1, "x", 1, 0, 0, 300), BC_CLIENT_EPROTO);
    hostile_reply = "NOT_STORED\r\n";
    assert_int_equal(bc_client_add(w.c, "k", 1, "x", 1, 0, 0, 300), BC_CLIENT_ENOTSTORED);
    hostile_reply = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
    assert_int_equal(bc_client_incr(w.c, "k", 1, 1, NULL, 300), BC_CLIENT_ENONNUMERIC);
    hostile_reply = "18446744073709551616\r\n";
    assert_int_equal(bc_client_incr(w.c, "k", 1, 1, NULL, 300), BC_CLIENT_EPROTO);
    /* values over the client's limit are refused before sending */
    char *big = calloc(1, 2048);
    assert_int_equal(bc_client_set(w.c, "k", 1, big, 2048, 0, 0, 300), BC_CLIENT_ETOOLARGE);
    free(big);
    world_free(&w);
}

static void
test_invalid_arguments(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, NULL, NULL, NULL);
    void *v;
    size_t vlen;
    assert_int_equal(bc_client_get(w.c, "a b", 3, 0, &v, &vlen, NULL), BC_CLIENT_EINVAL);
    assert_int_equal(bc_client_get(w.c, "", 0, 0, &v, &vlen, NULL), BC_CLIENT_EINVAL);
    assert_int_equal(bc_client_get(w.c, "k", 1, 0, NULL, &vlen, NULL), BC_CLIENT_EINVAL);
    assert_int_equal(bc_client_get(NULL, "k", 1, 0, &v, &vlen, NULL), BC_CLIENT_EINVAL);
    assert_int_equal(bc_client_set(w.c, "k", 1, NULL, 3, 0, 0, 0), BC_CLIENT_EINVAL);
    assert_int_equal(bc_client_set(w.c, "k", 1, NULL, 0, 0, 0, 0), BC_CLIENT_OK);
    assert_int_equal(bc_client_delete(w.c, "k\n", 2, 0), BC_CLIENT_EINVAL);
    assert_int_equal(bc_client_touch(NULL, "k", 1, 0, 0), BC_CLIENT_EINVAL);
    assert_int_equal(bc_client_mget(w.c, 2, NULL, NULL, 0, NULL), BC_CLIENT_EINVAL);
    assert_int_equal(bc_client_mget(w.c, 0, NULL, NULL, 0, NULL), BC_CLIENT_OK);
    assert_int_equal(bc_client_create(NULL, NULL), BC_CLIENT_EINVAL);
    bc_client_options_t o;
    bc_client_options_init(&o);
    bc_client_t *c = (bc_client_t *)1;
    assert_int_equal(bc_client_create(&o, &c), BC_CLIENT_EINVAL);
    assert_null(c);
    o.zk_hosts = "127.0.0.1:1";
    o.cluster = "bad/name";
    assert_int_equal(bc_client_create(&o, &c), BC_CLIENT_EINVAL);
    for (int code = 0; code >= -20; code--) assert_non_null(bc_strerror(code));
    assert_string_equal(bc_strerror(12345), "unknown error");
    world_free(&w);
}

static void
test_zookeeper_unreachable(void **state)
{
    (void)state;
    bc_client_options_t o;
    bc_client_options_init(&o);
    o.zk_hosts = "127.0.0.1:1";
    o.cluster = "c";
    o.zk_connect_timeout_ms = 300;
    bc_client_t *c;
    assert_int_equal(bc_client_create(&o, &c), BC_CLIENT_EZK);
    assert_null(c);
}

/* Answers a get line in reverse key order (as a node that forwards part of
 * the line merges the owners' answers); "b" is a miss; value = key. */
static fake_action_t
hook_get_reversed(fake_t *f, const char *line, const char *data, size_t dlen, char *out,
                  size_t *outlen, void *ctx)
{
    (void)f, (void)data, (void)dlen, (void)ctx;
    if (strncmp(line, "get ", 4) != 0) return FAKE_DEFAULT;
    char copy[256], *words[16];
    int n = 0;
    snprintf(copy, sizeof(copy), "%s", line + 4);
    for (char *save = NULL, *w = strtok_r(copy, " \r\n", &save); w != NULL && n < 16;
         w = strtok_r(NULL, " \r\n", &save)) {
        words[n++] = w;
    }
    size_t len = 0;
    for (int i = n - 1; i >= 0; i--) {
        if (strcmp(words[i], "b") == 0) continue;
        len += (size_t)sprintf(out + len, "VALUE %s 0 %zu\r\n%s\r\n", words[i], strlen(words[i]),
                               words[i]);
    }
    len += (size_t)sprintf(out + len, "END\r\n");
    *outlen = len;
    return FAKE_REPLY;
}

static void
test_mget_values_in_any_order(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, hook_get_reversed, NULL, NULL);
    for (int i = 0; i < NB; i++) w.owner[i] = 1;
    world_install(&w, 2);
    const void *keys[4] = {"a", "b", "c", "a"};
    size_t klens[4] = {1, 1, 1, 1};
    bc_client_item_t items[4];
    assert_int_equal(bc_client_mget(w.c, 4, keys, klens, 1000, items), BC_CLIENT_OK);
    assert_int_equal(items[0].status, BC_CLIENT_OK);
    assert_memory_equal(items[0].value, "a", 1);
    assert_int_equal(items[1].status, BC_CLIENT_ENOTFOUND);
    assert_int_equal(items[2].status, BC_CLIENT_OK);
    assert_memory_equal(items[2].value, "c", 1);
    assert_int_equal(items[3].status, BC_CLIENT_OK);
    bc_client_items_free(items, 4);
    world_free(&w);
}

static void
test_mget_order_and_retry(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, NULL, NULL, NULL);
    /* half the buckets on a, half on b */
    w.owner[0] = w.owner[1] = 1;
    w.owner[2] = w.owner[3] = 2;
    world_install(&w, 2);
    enum { N = 300 };
    char kb[N][16];
    const void *keys[N];
    size_t klens[N];
    for (int i = 0; i < N; i++) {
        klens[i] = (size_t)sprintf(kb[i], "m%d", i % 250);  /* the last 50 repeat */
        keys[i] = kb[i];
        if ((i % 250) % 3 != 0) {
            uint32_t b = bc_hash_bucket(bc_hash_key(kb[i], klens[i]), NB);
            fake_put(w.owner[b] == 1 ? w.a : w.b, kb[i], kb[i], klens[i], (uint32_t)i % 250);
        }
    }
    bc_client_item_t items[N];
    assert_int_equal(bc_client_mget(w.c, N, keys, klens, 1000, items), BC_CLIENT_OK);
    for (int i = 0; i < N; i++) {
        if ((i % 250) % 3 == 0) {
            assert_int_equal(items[i].status, BC_CLIENT_ENOTFOUND);
            assert_null(items[i].value);
        } else {
            assert_int_equal(items[i].status, BC_CLIENT_OK);
            assert_int_equal(items[i].vlen, klens[i]);
            assert_memory_equal(items[i].value, kb[i], klens[i]);
            assert_int_equal(items[i].flags, (uint32_t)i % 250);
        }
    }
    bc_client_items_free(items, N);
    assert_null(items[1].value);
    bc_client_stats_t st;
    bc_client_get_stats(w.c, &st);
    assert_int_equal(st.gets, N);

    /* an invalid key fails alone */
    const void *mixed[3] = {"m1", "bad key", "m2"};
    size_t mlens[3] = {2, 7, 2};
    assert_int_equal(bc_client_mget(w.c, 3, mixed, mlens, 1000, items), BC_CLIENT_EINVAL);
    assert_int_equal(items[0].status, BC_CLIENT_OK);
    assert_int_equal(items[1].status, BC_CLIENT_EINVAL);
    assert_int_equal(items[2].status, BC_CLIENT_OK);
    bc_client_items_free(items, 3);
    world_free(&w);

    /* node a refuses everything; the refresh moves group 1 to b */
    world_init(&w, hook_moved, NULL, NULL);
    w.move_on_refresh = true;
    fake_put(w.b, "x", "1", 1, 0);
    fake_put(w.b, "y", "2", 1, 0);
    const void *k2[3] = {"x", "nope", "y"};
    size_t l2[3] = {1, 4, 1};
    assert_int_equal(bc_client_mget(w.c, 3, k2, l2, 1000, items), BC_CLIENT_OK);
    assert_int_equal(items[0].status, BC_CLIENT_OK);
    assert_int_equal(items[1].status, BC_CLIENT_ENOTFOUND);
    assert_int_equal(items[2].status, BC_CLIENT_OK);
    assert_memory_equal(items[2].value, "2", 2);
    bc_client_items_free(items, 3);
    world_free(&w);

    /* a node that never answers: the keys time out at the deadline */
    world_init(&w, hook_moved, NULL, NULL);
    uint64_t t0 = ms_now();
    assert_int_equal(bc_client_mget(w.c, 3, k2, l2, 100, items), BC_CLIENT_ETIMEOUT);
    assert_true(ms_now() - t0 < 1000);
    for (int i = 0; i < 3; i++) assert_int_equal(items[i].status, BC_CLIENT_ETIMEOUT);
    world_free(&w);
}

static fake_action_t
hook_slow(fake_t *f, const char *line, const char *data, size_t dlen, char *out, size_t *outlen,
          void *ctx)
{
    (void)f, (void)line, (void)data, (void)dlen, (void)out, (void)outlen, (void)ctx;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    return FAKE_DEFAULT;
}

static void *
pool_worker(void *arg)
{
    bc_client_t *c = arg;
    for (int i = 0; i < 30; i++) {
        if (bc_client_set(c, "p", 1, "1", 1, 0, 0, 5000) != BC_CLIENT_OK) return (void *)1;
    }
    return NULL;
}

static void
test_pool_bound(void **state)
{
    (void)state;
    bc_client_options_t o;
    bc_client_options_init(&o);
    o.max_conns_per_node = 2;
    world_t w;
    world_init(&w, hook_slow, NULL, &o);
    enum { T = 8 };
    pthread_t th[T];
    for (int i = 0; i < T; i++) pthread_create(&th[i], NULL, pool_worker, w.c);
    for (int i = 0; i < T; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    /* 240 calls from 8 threads over at most 2 connections */
    assert_int_equal(atomic_load(&w.a->connections), 2);
    assert_int_equal(atomic_load(&w.a->requests), T * 30);
    world_free(&w);
}

typedef struct mget_arg {
    bc_client_t *c;
    int failures;
} mget_arg_t;

static void *
mget_worker(void *argp)
{
    mget_arg_t *a = argp;
    const void *keys[4] = {"m0", "m1", "m2", "m3"};
    size_t klens[4] = {2, 2, 2, 2};
    for (int i = 0; i < 200; i++) {
        bc_client_item_t items[4];
        if (bc_client_mget(a->c, 4, keys, klens, 2000, items) != BC_CLIENT_OK) a->failures++;
        bc_client_items_free(items, 4);
    }
    return NULL;
}

static void
test_mget_threads_one_conn_per_node(void **state)
{
    (void)state;
    /* Several multi-gets over two nodes whose pools hold one connection
     * each: none may wait for a node while holding the other's. */
    bc_client_options_t o;
    bc_client_options_init(&o);
    o.max_conns_per_node = 1;
    world_t w;
    world_init(&w, hook_slow, NULL, &o);
    w.owner[0] = w.owner[1] = 1;
    w.owner[2] = w.owner[3] = 2;
    world_install(&w, 2);
    enum { T = 4 };
    pthread_t th[T];
    mget_arg_t args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (mget_arg_t){.c = w.c};
        pthread_create(&th[i], NULL, mget_worker, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    assert_true(atomic_load(&w.a->connections) <= 1 + (int)atomic_load(&w.c->io.conn_drops));
    world_free(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moved_refreshes_and_retries),
        cmocka_unit_test(test_refused_until_deadline),
        cmocka_unit_test(test_not_enough_in_sync_retried_without_refresh),
        cmocka_unit_test(test_timed_out_connection_is_reset),
        cmocka_unit_test(test_dropped_connection),
        cmocka_unit_test(test_dead_node_and_no_owner),
        cmocka_unit_test(test_readonly_then_writable),
        cmocka_unit_test(test_forwarding_failures),
        cmocka_unit_test(test_hostile_replies),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_zookeeper_unreachable),
        cmocka_unit_test(test_mget_order_and_retry),
        cmocka_unit_test(test_mget_values_in_any_order),
        cmocka_unit_test(test_pool_bound),
        cmocka_unit_test(test_mget_threads_one_conn_per_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
