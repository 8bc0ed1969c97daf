/*
 * test_migrate.c -- a bucket's export and import framing (node/migrate/
 * export.c, import.c), in process.
 *
 * The import side is the real import job (bc__migrate_import_main) on a
 * real cache, pulling from a fake source: a TCP server in this file that
 * answers the export request with bytes the test writes -- split into
 * pieces as small as one byte, cut anywhere, corrupted, oversized, or
 * refused.  The export side is the real export handler on a real admin
 * server (bc_httpd), read by the same import job: the round trip a
 * precopy makes.  The cluster objects are built without ZooKeeper
 * (test_node_fake.h): the source's group (1) owns every bucket, the
 * destination's (2) none, as during a move.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bc_frame.h"
#include "bc_hash.h"
#include "bc_httpd.h"
#include "bc_log.h"
#include "bc_time.h"
#include "engine/cache.h"
#include "migrate/migrate.h"
#include "migrate/migrate_int.h"
#include "test_node_fake.h"

#define NB          16                 /* buckets */
#define BUCKET      5                  /* the bucket that moves */
#define EPOCH       9                  /* the epoch of the move */
#define MAX_ITEM    (64u * 1024u)      /* the destination's -I */

/* ---- the fake source ---- */

/* One answer of the fake source: an HTTP status and a body, of which the
 * first `send` bytes are written `piece` bytes at a time. */
typedef struct answer {
    int status;
    const char *body;
    size_t len;
    size_t send;                       /* bytes of body actually sent (<= len) */
    size_t piece;                      /* write size; 0 = all at once */
    bool content_length;               /* send a Content-Length of len */
    bool hold_open;                    /* after sending, wait for the client to close */
} answer_t;

typedef struct source {
    int lfd;
    char addr[32];
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;                /* guards answers, nanswers, path */
    answer_t answers[4];               /* connection i gets answers[min(i, n - 1)] */
    int nanswers;
    atomic_int requests;               /* since the last source_set */
    atomic_int accepted, served;       /* connections taken, and done with */
    char path[256];                    /* the last request's path */
} source_t;

static void
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void
source_serve(source_t *s, int fd)
{
    char req[2048];
    size_t got = 0;
    while (got < sizeof(req) - 1) {
        ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);
        if (n <= 0) return;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL) break;
    }
    int i = atomic_fetch_add(&s->requests, 1);
    pthread_mutex_lock(&s->mu);
    answer_t copy = s->answers[i < s->nanswers ? i : s->nanswers - 1];
    sscanf(req, "GET %255s", s->path);
    pthread_mutex_unlock(&s->mu);
    const answer_t *a = &copy;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char head[256];
    int hn = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: %s\r\n"
                      "X-Bucketcache-Tap: 77\r\n", a->status,
                      a->status == 200 ? MIG_CONTENT_TYPE : "application/json");
    if (a->content_length) hn += snprintf(head + hn, sizeof(head) - (size_t)hn,
                                          "Content-Length: %zu\r\n", a->len);
    hn += snprintf(head + hn, sizeof(head) - (size_t)hn, "\r\n");
    send_all(fd, head, (size_t)hn);
    size_t piece = a->piece ? a->piece : a->send;
    for (size_t off = 0; off < a->send; off += piece) {
        send_all(fd, a->body + off, a->send - off < piece ? a->send - off : piece);
        if (a->piece != 0) usleep(100);   /* one segment per piece, read apart */
    }
    if (a->hold_open) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c;
        while (poll(&p, 1, 5000) > 0 && recv(fd, &c, 1, 0) > 0) {
        }
    }
}

static void *
source_main(void *arg)
{
    source_t *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        atomic_fetch_add(&s->accepted, 1);
        source_serve(s, fd);
        close(fd);
        atomic_fetch_add(&s->served, 1);
    }
    return NULL;
}

/* Starts a source whose every connection gets `a` (more: source_answer). */
static source_t *
source_start(answer_t a)
{
    source_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    s->answers[0] = a;
    s->nanswers = 1;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t sl = sizeof(sa);
    getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    pthread_create(&s->thread, NULL, source_main, s);
    return s;
}

static void
source_stop(source_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Waits until the source is done with every connection it took, so the
 * test may change or free the bodies it sent (the sockets order nothing
 * for ThreadSanitizer; the counters do). */
static void
source_wait(source_t *s)
{
    for (int i = 0; i < 50000 && atomic_load(&s->served) != atomic_load(&s->accepted); i++) {
        usleep(100);
    }
    assert_int_equal(atomic_load(&s->served), atomic_load(&s->accepted));
}

/* The answers to the next connections: as[0], as[1], ..., the last one
 * repeated. */
static void
source_script(source_t *s, const answer_t *as, int n)
{
    source_wait(s);
    pthread_mutex_lock(&s->mu);
    memcpy(s->answers, as, (size_t)n * sizeof(*as));
    s->nanswers = n;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->requests, 0);
}

/* Every next connection gets a. */
static void
source_set(source_t *s, answer_t a)
{
    source_script(s, &a, 1);
}

/* The path of the last request. */
static void
source_path(source_t *s, char *out, size_t len)
{
    pthread_mutex_lock(&s->mu);
    snprintf(out, len, "%s", s->path);
    pthread_mutex_unlock(&s->mu);
}

static answer_t
stream_answer(const char *body, size_t len)
{
    return (answer_t){.status = 200, .body = body, .len = len, .send = len};
}

/* ---- a node's side of a move ---- */

typedef struct side {
    bc_cache_t *cache;
    bc_node_cluster_t *cl;
    bc_node_migrate_t *mig;
} side_t;

/* Group gid's node: every bucket group 1's; group 1's node is primary. */
static void
side_init_max(side_t *s, uint32_t gid, size_t max_item)
{
    bc_cache_config_t cc = {.mem_limit = 32u << 20, .max_item_size = max_item, .nbuckets = NB,
                            .nshards = 4};
    assert_int_equal(bc_cache_create(&cc, &s->cache), BC_OK);
    s->cl = fake_cluster_new(gid, NB);
    uint32_t owner[NB];
    for (int b = 0; b < NB; b++) owner[b] = 1;
    fake_cluster_table(s->cl, EPOCH - 1, owner, NULL, 0);
    if (gid == 1) {
        fake_cluster_primary(s->cl);
    }
    bc_node_migrate_config_t mc = {.cache = s->cache, .cluster = s->cl,
                                   .settings.import_timeout_ms = 3000};
    assert_int_equal(bc_node_migrate_create(&mc, &s->mig), BC_OK);
}

static void
side_init(side_t *s, uint32_t gid)
{
    side_init_max(s, gid, MAX_ITEM);
}

static void
side_free(side_t *s)
{
    bc_node_migrate_destroy(s->mig);
    bc_node_cluster_free(s->cl);
    bc_cache_destroy(s->cache);
}

/* Runs one import job to its end on this thread, as jobs.c's thread does
 * (source: the fake one it reads from, or NULL). */
static import_job_t *
import(side_t *dst, source_t *fake, const char *source, uint32_t bucket, bool precopy)
{
    import_job_t *job = calloc(1, sizeof(*job));
    assert_non_null(job);
    job->mig = dst->mig;
    job->state = JOB_RUNNING;
    job->bucket = bucket;
    job->epoch = precopy ? 0 : EPOCH;
    job->from = 1;
    job->precopy = precopy;
    snprintf(job->source, sizeof(job->source), "%s", source);
    atomic_init(&job->cancel, false);
    pthread_mutex_lock(&dst->mig->mu);
    dst->mig->running++;
    pthread_mutex_unlock(&dst->mig->mu);
    import_batch_t *batch = calloc(1, sizeof(*batch));
    assert_non_null(batch);
    batch->n = 1;
    batch->jobs[0] = job;
    bc__migrate_import_main(batch);           /* frees the batch */
    if (fake != NULL) source_wait(fake);
    return job;
}

static uint64_t
bucket_items(bc_cache_t *cache, uint32_t bucket)
{
    bc_bucket_stats_t bs = {0};
    assert_int_equal(bc_cache_bucket_stats(cache, bucket, &bs), BC_OK);
    return bs.items;
}

/* ---- streams ---- */

/* The i-th key (a fixed sequence) whose bucket is `bucket`. */
static void
key_in(uint32_t bucket, int i, char *key, size_t len)
{
    for (int n = 0, found = -1;; n++) {
        snprintf(key, len, "key:%d", n);
        if (bc_hash_bucket(bc_hash_key(key, strlen(key)), NB) == bucket && ++found == i) return;
    }
}

/* Item i's value: vlen bytes of a pattern that differs per item. */
static void
value_of(int i, char *buf, size_t vlen)
{
    for (size_t k = 0; k < vlen; k++) buf[k] = (char)('a' + (i * 7 + (int)k) % 26);
}

typedef struct stream {
    bc_frame_buf_t buf;
    size_t frame_at[64];               /* where frame k starts (0: HELLO) */
    int nframes;
} stream_t;

static void
stream_mark(stream_t *s)
{
    s->frame_at[s->nframes++] = s->buf.len;
}

/* HELLO, n items of bucket (item i: vlen(i) bytes, flags i, cas 1000 + i),
 * END. */
static void
stream_build(stream_t *s, uint32_t bucket, int n, size_t (*vlen)(int))
{
    memset(s, 0, sizeof(*s));
    uint64_t bytes = 0;
    stream_mark(s);
    assert_int_equal(bc_frame_put_hello(&s->buf, bucket, EPOCH, NB), BC_OK);
    for (int i = 0; i < n; i++) {
        char key[32], *value = malloc(vlen(i) + 1);
        key_in(bucket, i, key, sizeof(key));
        value_of(i, value, vlen(i));
        stream_mark(s);
        assert_int_equal(bc_frame_put_item(&s->buf, key, strlen(key), value, vlen(i), (uint32_t)i,
                                           0, 1000 + (uint64_t)i), BC_OK);
        bytes += strlen(key) + vlen(i);
        free(value);
    }
    stream_mark(s);
    assert_int_equal(bc_frame_put_end(&s->buf, (uint64_t)n, bytes), BC_OK);
}

static size_t
small_value(int i)
{
    return 3 + (size_t)i;
}

static size_t
mixed_value(int i)
{
    return i == 5 ? 40000u : (size_t)(i * 37) % 900;   /* one large, some empty */
}

/* Asserts that cache holds items 0..n-1 of bucket as stream_build made
 * them, with the source's CAS. */
static void
assert_items(bc_cache_t *cache, uint32_t bucket, int n, size_t (*vlen)(int))
{
    for (int i = 0; i < n; i++) {
        char key[32], *want = malloc(vlen(i) + 1);
        key_in(bucket, i, key, sizeof(key));
        value_of(i, want, vlen(i));
        bc_item_t *it = bc_cache_get(cache, key, strlen(key), bc_hash_key(key, strlen(key)));
        if (it == NULL) fail_msg("item %d (%s) is missing", i, key);
        assert_int_equal(bc_item_value_len(it), vlen(i));
        assert_memory_equal(bc_item_value(it), want, vlen(i));
        assert_int_equal(bc_item_flags(it), (uint32_t)i);
        assert_int_equal(bc_item_cas(it), 1000 + (uint64_t)i);
        bc_item_release(cache, it);
        free(want);
    }
    assert_int_equal(bucket_items(cache, bucket), (uint64_t)n);
}

/* ---- tests ---- */

static void
test_import_stores_a_stream_however_it_is_split(void **state)
{
    (void)state;
    side_t dst;
    side_init(&dst, 2);
    /* Small items in pieces down to a byte; a large item (40 KB, more than
     * one read) in larger ones. */
    static const struct {
        size_t (*vlen)(int);
        size_t piece;
    } runs[] = {{small_value, 1}, {small_value, 3}, {small_value, 8}, {small_value, 9},
                {mixed_value, 100}, {mixed_value, 4096}, {mixed_value, 0}};
    source_t *src = source_start(stream_answer("", 0));
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
        stream_t s;
        stream_build(&s, BUCKET, 12, runs[k].vlen);
        answer_t a = stream_answer(s.buf.data, s.buf.len);
        a.piece = runs[k].piece;
        a.content_length = k % 2 == 0;     /* both ways a body can end */
        source_set(src, a);
        bc_cache_bucket_drop(dst.cache, BUCKET);
        import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
        if (job->state != JOB_DONE) fail_msg("pieces of %zu: %s", runs[k].piece, job->error);
        assert_int_equal(job->items, 12);
        assert_false(job->delta);
        assert_items(dst.cache, BUCKET, 12, runs[k].vlen);
        free(job);
        bc_frame_buf_free(&s.buf);
    }
    char want[64], path[256];
    snprintf(want, sizeof(want), "/v1/migrate/export?bucket=%d&epoch=%d", BUCKET, EPOCH);
    source_path(src, path, sizeof(path));
    assert_string_equal(path, want);
    source_stop(src);
    side_free(&dst);
}

static void
test_import_refuses_a_stream_cut_anywhere(void **state)
{
    (void)state;
    side_t dst;
    side_init(&dst, 2);
    stream_t s;
    stream_build(&s, BUCKET, 3, small_value);
    source_t *src = source_start(stream_answer(s.buf.data, s.buf.len));
    for (size_t cut = 0; cut < s.buf.len; cut++) {
        /* Closed after `cut` bytes: without a Content-Length (as a real
         * export streams) only the END frame tells the stream is short;
         * with one, the length does too. */
        answer_t a = stream_answer(s.buf.data, s.buf.len);
        a.send = cut;
        a.content_length = cut % 3 == 0;
        source_set(src, a);
        import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
        if (job->state != JOB_FAILED) fail_msg("cut at %zu of %zu: not refused", cut, s.buf.len);
        assert_non_null(strstr(job->error, "truncated"));
        /* what it stored before the cut is dropped again */
        assert_int_equal(bucket_items(dst.cache, BUCKET), 0);
        free(job);
    }
    /* The whole stream, for contrast. */
    source_set(src, stream_answer(s.buf.data, s.buf.len));
    import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
    assert_int_equal(job->state, JOB_DONE);
    assert_items(dst.cache, BUCKET, 3, small_value);
    free(job);
    source_stop(src);
    bc_frame_buf_free(&s.buf);
    side_free(&dst);
}

static void
test_import_refuses_a_frame_with_a_bad_checksum(void **state)
{
    (void)state;
    side_t dst;
    side_init(&dst, 2);
    stream_t s;
    stream_build(&s, BUCKET, 4, small_value);
    char *bad = malloc(s.buf.len);
    source_t *src = source_start(stream_answer(bad, s.buf.len));
    /* A byte of item 3's payload, of its CRC, of END's payload. */
    const size_t at[] = {s.frame_at[3] + BC_FRAME_HEADER_LEN + 4, s.frame_at[3] + 5,
                         s.frame_at[5] + BC_FRAME_HEADER_LEN + 1};
    for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
        memcpy(bad, s.buf.data, s.buf.len);
        bad[at[k]] ^= 0x20;
        source_set(src, stream_answer(bad, s.buf.len));    /* after the bytes change */
        import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
        assert_int_equal(job->state, JOB_FAILED);
        if (strstr(job->error, "checksum mismatch") == NULL) fail_msg("error: %s", job->error);
        /* items 0 and 1 came before the bad frame: dropped with the job */
        assert_int_equal(bucket_items(dst.cache, BUCKET), 0);
        free(job);
    }
    source_stop(src);
    free(bad);
    bc_frame_buf_free(&s.buf);
    side_free(&dst);
}

static void
test_import_refuses_an_oversized_frame_without_waiting_for_it(void **state)
{
    (void)state;
    side_t dst;
    side_init(&dst, 2);
    stream_t s;
    stream_build(&s, BUCKET, 2, small_value);
    /* After HELLO, a frame header announcing 2 GiB; the source then keeps
     * the connection open: the import must not wait for (or buffer) it. */
    size_t hello = s.frame_at[1];
    char *body = malloc(hello + 12);
    memcpy(body, s.buf.data, hello);
    memcpy(body + hello, "\x7f\xff\xff\xff\0\0\0\0abcd", 12);
    answer_t a = stream_answer(body, hello + 12);
    a.hold_open = true;
    source_t *src = source_start(a);
    int64_t t0 = bc_time_mono_ms();
    import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
    assert_int_equal(job->state, JOB_FAILED);
    assert_non_null(strstr(job->error, "larger than this node's max item size"));
    assert_true(bc_time_mono_ms() - t0 < 2000);
    free(job);
    source_stop(src);
    free(body);
    bc_frame_buf_free(&s.buf);

    /* A frame within the limit whose item is not: refused as too large. */
    stream_t big;
    memset(&big, 0, sizeof(big));
    char key[32], *value = calloc(1, MAX_ITEM + 100);
    key_in(BUCKET, 0, key, sizeof(key));
    assert_int_equal(bc_frame_put_hello(&big.buf, BUCKET, EPOCH, NB), BC_OK);
    assert_int_equal(bc_frame_put_item(&big.buf, key, strlen(key), value, MAX_ITEM + 100, 0, 0, 1),
                     BC_OK);
    src = source_start(stream_answer(big.buf.data, big.buf.len));
    job = import(&dst, src, src->addr, BUCKET, false);
    assert_int_equal(job->state, JOB_FAILED);
    assert_non_null(strstr(job->error, "max item size"));
    assert_int_equal(bucket_items(dst.cache, BUCKET), 0);
    free(job);
    source_stop(src);
    free(value);
    bc_frame_buf_free(&big.buf);
    side_free(&dst);
}

static void
test_import_refuses_a_stream_of_another_bucket(void **state)
{
    (void)state;
    side_t dst;
    side_init(&dst, 2);
    stream_t s;
    source_t *src = source_start(stream_answer("", 0));

    /* HELLO names another bucket, epoch or bucket count. */
    struct {
        uint32_t bucket;
        uint64_t epoch;
        uint32_t nbuckets;
    } hellos[] = {{BUCKET + 1, EPOCH, NB}, {BUCKET, EPOCH + 1, NB}, {BUCKET, EPOCH, NB * 2}};
    for (size_t k = 0; k < sizeof(hellos) / sizeof(hellos[0]); k++) {
        memset(&s, 0, sizeof(s));
        assert_int_equal(bc_frame_put_hello(&s.buf, hellos[k].bucket, hellos[k].epoch,
                                            hellos[k].nbuckets), BC_OK);
        assert_int_equal(bc_frame_put_end(&s.buf, 0, 0), BC_OK);
        source_set(src, stream_answer(s.buf.data, s.buf.len));
        import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
        assert_int_equal(job->state, JOB_FAILED);
        assert_non_null(strstr(job->error, "source sent bucket"));
        free(job);
        bc_frame_buf_free(&s.buf);
    }

    /* An item whose key hashes to another bucket. */
    memset(&s, 0, sizeof(s));
    char key[32];
    key_in(BUCKET + 1, 0, key, sizeof(key));
    assert_int_equal(bc_frame_put_hello(&s.buf, BUCKET, EPOCH, NB), BC_OK);
    assert_int_equal(bc_frame_put_item(&s.buf, key, strlen(key), "v", 1, 0, 0, 1), BC_OK);
    assert_int_equal(bc_frame_put_end(&s.buf, 1, strlen(key) + 1), BC_OK);
    source_set(src, stream_answer(s.buf.data, s.buf.len));
    import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
    assert_int_equal(job->state, JOB_FAILED);
    assert_non_null(strstr(job->error, "belongs to bucket"));
    assert_null(bc_cache_get(dst.cache, key, strlen(key), bc_hash_key(key, strlen(key))));
    free(job);
    bc_frame_buf_free(&s.buf);
    source_stop(src);
    side_free(&dst);
}

static void
test_import_full_copy_replaces_what_the_bucket_held(void **state)
{
    (void)state;
    side_t dst;
    side_init(&dst, 2);
    /* Leftovers of an abandoned attempt: one key the stream also has (with
     * another value), one it does not. */
    char k0[32], stale[32];
    key_in(BUCKET, 0, k0, sizeof(k0));
    key_in(BUCKET, 7, stale, sizeof(stale));
    const char *keys[] = {k0, stale};
    for (int i = 0; i < 2; i++) {
        bc_status_t st;
        uint32_t h = bc_hash_key(keys[i], strlen(keys[i]));
        bc_item_t *it = bc_item_alloc(dst.cache, keys[i], strlen(keys[i]), h, 0, 0, 5, &st);
        assert_non_null(it);
        memcpy(bc_item_value(it), "old\r\n", 5);
        assert_int_equal(bc_cache_store(dst.cache, it, BC_STORE_SET, 0, NULL), BC_OK);
    }
    stream_t s;
    stream_build(&s, BUCKET, 3, small_value);
    source_t *src = source_start(stream_answer(s.buf.data, s.buf.len));
    import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
    assert_int_equal(job->state, JOB_DONE);
    assert_items(dst.cache, BUCKET, 3, small_value);     /* k0 has the stream's value */
    assert_null(bc_cache_get(dst.cache, stale, strlen(stale), bc_hash_key(stale, strlen(stale))));
    free(job);
    source_stop(src);
    bc_frame_buf_free(&s.buf);
    side_free(&dst);
}

static void
test_import_asks_again_while_the_source_is_not_fenced(void **state)
{
    (void)state;
    side_t dst;
    side_init(&dst, 2);
    stream_t s;
    stream_build(&s, BUCKET, 2, small_value);
    static const char retry[] = "{\"error\":\"not fenced yet\",\"retry\":true,\"epoch\":8}";
    static const char refuse[] = "{\"error\":\"is owned by another group\",\"retry\":false}";
    answer_t busy = {.status = 409, .body = retry, .len = sizeof(retry) - 1,
                     .send = sizeof(retry) - 1, .content_length = true};
    source_t *src = source_start(busy);
    const answer_t script[] = {busy, busy, stream_answer(s.buf.data, s.buf.len)};
    source_script(src, script, 3);
    import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
    if (job->state != JOB_DONE) fail_msg("%s", job->error);
    assert_int_equal(atomic_load(&src->requests), 3);
    assert_items(dst.cache, BUCKET, 2, small_value);
    free(job);

    /* A refusal without "retry" ends the job at once. */
    answer_t no = busy;
    no.body = refuse;
    no.len = no.send = sizeof(refuse) - 1;
    source_set(src, no);
    job = import(&dst, src, src->addr, BUCKET, false);
    assert_int_equal(job->state, JOB_FAILED);
    assert_int_equal(atomic_load(&src->requests), 1);
    assert_non_null(strstr(job->error, "source answered 409: is owned by another group"));
    assert_int_equal(bucket_items(dst.cache, BUCKET), 0);
    free(job);
    source_stop(src);
    bc_frame_buf_free(&s.buf);
    side_free(&dst);
}

static enum MHD_Result
serve_export(void *ctx, bc_http_req_t *req)
{
    return bc_node_migrate_handle_export(ctx, req);
}

static size_t
kilo_value(int i)
{
    return 1000 + (size_t)(i % 50);
}

/* Items of vlen(i) bytes in bucket b, keys key_in(b, 0..n). */
static void
fill_bucket_sized(bc_cache_t *cache, uint32_t b, int n, size_t (*vlen_of)(int))
{
    for (int i = 0; i < n; i++) {
        char key[32];
        key_in(b, i, key, sizeof(key));
        size_t vlen = vlen_of(i);
        char *value = malloc(vlen + 2);
        assert_non_null(value);
        value_of(i, value, vlen);
        memcpy(value + vlen, "\r\n", 2);
        bc_status_t st;
        uint32_t h = bc_hash_key(key, strlen(key));
        bc_item_t *it = bc_item_alloc(cache, key, strlen(key), h, (uint32_t)i, 0,
                                      (uint32_t)vlen + 2, &st);
        assert_non_null(it);
        memcpy(bc_item_value(it), value, vlen + 2);
        assert_int_equal(bc_cache_store_moved(cache, it, BC_STORE_SET, 1000 + (uint64_t)i), BC_OK);
        free(value);
    }
}

/* Items of about 1 KB in bucket b, keys key_in(b, 0..n). */
static void
fill_bucket(bc_cache_t *cache, uint32_t b, int n)
{
    fill_bucket_sized(cache, b, n, kilo_value);
}

/* Serves src's exports on an admin server of its own; its address in addr. */
static bc_httpd_t *
export_server(side_t *src, char *addr, size_t len)
{
    static const bc_http_route_t routes[] = {
        {"/v1/migrate/export", "GET", serve_export},
    };
    bc_httpd_config_t hc = {.name = "admin", .listen_addr = "127.0.0.1", .routes = routes,
                            .nroutes = 1, .ctx = src->mig};
    bc_httpd_t *httpd;
    assert_int_equal(bc_httpd_create(&hc, &httpd), BC_OK);
    assert_int_equal(bc_httpd_start(httpd), BC_OK);
    snprintf(addr, len, "127.0.0.1:%u", (unsigned)bc_httpd_port(httpd));
    return httpd;
}

static void
test_export_streams_a_whole_bucket_to_an_import(void **state)
{
    (void)state;
    side_t src, dst;
    side_init(&src, 1);
    side_init(&dst, 2);
    /* 400 items of about 1 KB in the bucket (more than one step of the
     * walk and one block of the stream), and some in its neighbours. */
    const int n = 400;
    for (uint32_t b = BUCKET - 1; b <= BUCKET + 1; b++) {
        fill_bucket(src.cache, b, b == BUCKET ? n : 20);
    }
    char addr[32];
    bc_httpd_t *httpd = export_server(&src, addr, sizeof(addr));

    /* A precopy: the bucket stays writable; the source arms a tracker. */
    import_job_t *job = import(&dst, NULL, addr, BUCKET, true);
    if (job->state != JOB_DONE) fail_msg("%s", job->error);
    assert_int_equal(job->items, n);
    assert_true(job->tap != 0);
    assert_items(dst.cache, BUCKET, n, kilo_value);
    assert_int_equal(bucket_items(dst.cache, BUCKET - 1), 0);
    assert_int_equal(bucket_items(dst.cache, BUCKET + 1), 0);
    bc_node_migrate_stats_t ms;
    bc_node_migrate_get_stats(src.mig, &ms);
    assert_int_equal(ms.exports, 1);
    assert_int_equal(ms.export_items, n);
    assert_int_equal(ms.taps_active, 1);
    free(job);

    /* A node that is not the bucket's primary refuses to export it. */
    bc__node_cluster_set_role(src.cl, false, NULL);
    job = import(&dst, NULL, addr, BUCKET, true);
    assert_int_equal(job->state, JOB_FAILED);
    assert_non_null(strstr(job->error, "not the primary"));
    free(job);

    bc_httpd_destroy(httpd);
    side_free(&src);
    side_free(&dst);
}

/* Values of both sides of the 64 KiB a value goes in parts above. */
static size_t
large_value(int i)
{
    static const size_t sizes[] = {10, 65536, 65537, 200000, 1000000, 300, 131072};
    return sizes[i % 7];
}

#define LARGE_MAX_ITEM  (2u << 20)
#define LARGE_PARTED    4              /* large_value's over 64 KiB */

static void import_batch(side_t *dst, const char *addr, const uint32_t *buckets, uint32_t n,
                         uint64_t epoch, const bool *cancelled, import_job_t **jobs);

/* An export sends a value over 64 KiB in parts (HEAD PART+) to a
 * destination that asks for them, alone and in a batch, and the value
 * arrives intact; one of exactly 64 KiB goes whole; a job called off
 * mid-batch has its parts read and not stored. */
static void
test_export_sends_large_items_in_parts(void **state)
{
    (void)state;
    side_t src, dst;
    side_init_max(&src, 1, LARGE_MAX_ITEM);
    side_init_max(&dst, 2, LARGE_MAX_ITEM);
    const uint32_t buckets[3] = {BUCKET, BUCKET + 1, BUCKET - 1};
    for (int i = 0; i < 3; i++) fill_bucket_sized(src.cache, buckets[i], 7, large_value);
    char addr[32];
    bc_httpd_t *httpd = export_server(&src, addr, sizeof(addr));

    import_job_t *job = import(&dst, NULL, addr, BUCKET, true);
    if (job->state != JOB_DONE) fail_msg("%s", job->error);
    assert_int_equal(job->items, 7);
    assert_items(dst.cache, BUCKET, 7, large_value);
    bc_node_migrate_stats_t ms;
    bc_node_migrate_get_stats(src.mig, &ms);
    assert_int_equal(ms.export_parted, LARGE_PARTED);
    assert_int_equal(ms.export_items, 7);
    bc_node_migrate_get_stats(dst.mig, &ms);
    assert_int_equal(ms.import_parted, LARGE_PARTED);
    free(job);

    /* a batch: the middle job called off */
    bc_cache_bucket_drop(dst.cache, BUCKET);
    import_job_t *jobs[3];
    const bool off[3] = {false, true, false};
    import_batch(&dst, addr, buckets, 3, 0, off, jobs);
    assert_int_equal(jobs[0]->state, JOB_DONE);
    assert_int_equal(jobs[1]->state, JOB_FAILED);
    assert_int_equal(jobs[2]->state, JOB_DONE);
    assert_items(dst.cache, BUCKET, 7, large_value);
    assert_items(dst.cache, BUCKET - 1, 7, large_value);
    assert_int_equal(bucket_items(dst.cache, BUCKET + 1), 0);
    bc_node_migrate_get_stats(src.mig, &ms);
    assert_int_equal(ms.export_parted, 4 * LARGE_PARTED);
    bc_node_migrate_get_stats(dst.mig, &ms);
    assert_int_equal(ms.import_parted, 3 * LARGE_PARTED);
    for (int i = 0; i < 3; i++) free(jobs[i]);
    assert_int_equal(dst.mig->running, 0);

    bc_httpd_destroy(httpd);
    side_free(&src);
    side_free(&dst);
}

/* The import of items in parts from a source's bytes: however the stream
 * is split; cut inside an item's parts, it fails and keeps nothing; a
 * HEAD over the max item size is refused without waiting for its parts. */
static void
test_import_assembles_items_in_parts(void **state)
{
    (void)state;
    side_t dst;
    side_init_max(&dst, 2, LARGE_MAX_ITEM);
    stream_t s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(bc_frame_put_hello(&s.buf, BUCKET, EPOCH, NB), BC_OK);
    uint64_t bytes = 0;
    for (int i = 0; i < 7; i++) {
        char key[32];
        key_in(BUCKET, i, key, sizeof(key));
        size_t vlen = large_value(i);
        char *value = malloc(vlen);
        value_of(i, value, vlen);
        if (vlen > 65536) {
            assert_int_equal(bc_frame_put_head(&s.buf, key, strlen(key), vlen, (uint32_t)i, 0,
                                               1000 + (uint64_t)i, 0), BC_OK);
            for (size_t off = 0; off < vlen; off += 30000) {
                size_t n = vlen - off < 30000 ? vlen - off : 30000;
                assert_int_equal(bc_frame_put_part(&s.buf, value + off, n), BC_OK);
            }
        } else {
            assert_int_equal(bc_frame_put_item(&s.buf, key, strlen(key), value, vlen,
                                               (uint32_t)i, 0, 1000 + (uint64_t)i), BC_OK);
        }
        bytes += strlen(key) + vlen;
        free(value);
    }
    size_t body = s.buf.len;
    assert_int_equal(bc_frame_put_end(&s.buf, 7, bytes), BC_OK);
    source_t *src = source_start(stream_answer(s.buf.data, s.buf.len));
    static const size_t pieces[] = {0, 997, 4096, 70000};   /* 997: cuts inside frame headers */
    for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        answer_t a = stream_answer(s.buf.data, s.buf.len);
        a.piece = pieces[k];
        source_set(src, a);
        bc_cache_bucket_drop(dst.cache, BUCKET);
        import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
        if (job->state != JOB_DONE) fail_msg("pieces of %zu: %s", pieces[k], job->error);
        assert_int_equal(job->items, 7);
        assert_items(dst.cache, BUCKET, 7, large_value);
        free(job);
    }

    /* cut inside the last item's parts (the 131072-byte value) */
    source_set(src, stream_answer(s.buf.data, body - 1000));
    import_job_t *job = import(&dst, src, src->addr, BUCKET, false);
    assert_int_equal(job->state, JOB_FAILED);
    assert_int_equal(bucket_items(dst.cache, BUCKET), 0);
    free(job);

    /* a HEAD larger than this node takes */
    stream_t t;
    memset(&t, 0, sizeof(t));
    assert_int_equal(bc_frame_put_hello(&t.buf, BUCKET, EPOCH, NB), BC_OK);
    char key[32];
    key_in(BUCKET, 0, key, sizeof(key));
    assert_int_equal(bc_frame_put_head(&t.buf, key, strlen(key), 100u << 20, 0, 0, 1, 0), BC_OK);
    source_set(src, stream_answer(t.buf.data, t.buf.len));
    job = import(&dst, src, src->addr, BUCKET, false);
    assert_int_equal(job->state, JOB_FAILED);
    assert_non_null(strstr(job->error, "larger than this node's max item size"));
    free(job);
    bc_frame_buf_free(&t.buf);

    source_stop(src);
    bc_frame_buf_free(&s.buf);
    side_free(&dst);
}

/* Runs a batch of precopies (epoch 0) or of copies at epoch (buckets[0..n))
 * to its end on this thread, one stream from the source at addr;
 * cancelled[i]: job i is called off before it starts.  The jobs, which the
 * caller frees. */
static void
import_batch(side_t *dst, const char *addr, const uint32_t *buckets, uint32_t n,
             uint64_t epoch, const bool *cancelled, import_job_t **jobs)
{
    import_batch_t *batch = calloc(1, sizeof(*batch));
    assert_non_null(batch);
    for (uint32_t i = 0; i < n; i++) {
        import_job_t *job = calloc(1, sizeof(*job));
        assert_non_null(job);
        job->mig = dst->mig;
        job->state = JOB_RUNNING;
        job->bucket = buckets[i];
        job->from = 1;
        job->epoch = epoch;
        job->precopy = epoch == 0;
        snprintf(job->source, sizeof(job->source), "%s", addr);
        atomic_init(&job->cancel, cancelled != NULL && cancelled[i]);
        batch->jobs[batch->n++] = jobs[i] = job;
    }
    pthread_mutex_lock(&dst->mig->mu);
    dst->mig->running += n;
    pthread_mutex_unlock(&dst->mig->mu);
    bc__migrate_import_main(batch);           /* frees the batch, not the jobs */
}

static void
test_export_streams_a_batch_of_precopies_on_one_connection(void **state)
{
    (void)state;
    side_t src, dst;
    side_init(&src, 1);
    side_init(&dst, 2);
    /* three buckets of different sizes, and one left out */
    const uint32_t buckets[3] = {BUCKET + 1, BUCKET - 1, BUCKET};
    const int sizes[3] = {250, 0, 400};
    for (int i = 0; i < 3; i++) fill_bucket(src.cache, buckets[i], sizes[i]);
    fill_bucket(src.cache, BUCKET + 2, 30);
    char addr[32];
    bc_httpd_t *httpd = export_server(&src, addr, sizeof(addr));

    /* One stream, each section to its job, in the order asked; each job
     * has the tracker the source armed for its bucket. */
    import_job_t *jobs[3];
    import_batch(&dst, addr, buckets, 3, 0, NULL, jobs);
    for (int i = 0; i < 3; i++) {
        if (jobs[i]->state != JOB_DONE) fail_msg("bucket %u: %s", buckets[i], jobs[i]->error);
        assert_int_equal(jobs[i]->items, sizes[i]);
        assert_true(jobs[i]->tap != 0);
        for (int k = 0; k < i; k++) assert_true(jobs[i]->tap != jobs[k]->tap);
        assert_int_equal(bucket_items(dst.cache, buckets[i]), sizes[i]);
    }
    assert_items(dst.cache, BUCKET, 400, kilo_value);
    assert_int_equal(bucket_items(dst.cache, BUCKET + 2), 0);
    assert_int_equal(dst.mig->running, 0);
    bc_node_migrate_stats_t ms;
    bc_node_migrate_get_stats(src.mig, &ms);
    assert_int_equal(ms.exports, 3);
    assert_int_equal(ms.export_items, 650);
    assert_int_equal(ms.taps_active, 3);
    bc_node_migrate_get_stats(dst.mig, &ms);
    assert_int_equal(ms.precopies, 3);
    for (int i = 0; i < 3; i++) free(jobs[i]);

    /* A job called off: its section is read but not stored, the others
     * go on. */
    for (int i = 0; i < 3; i++) bc_cache_bucket_drop(dst.cache, buckets[i]);
    const bool off[3] = {false, false, true};
    const uint32_t two[3] = {BUCKET, BUCKET + 2, BUCKET + 1};
    import_batch(&dst, addr, two, 3, 0, off, jobs);
    assert_int_equal(jobs[0]->state, JOB_DONE);
    assert_int_equal(jobs[1]->state, JOB_DONE);
    assert_int_equal(jobs[1]->items, 30);
    assert_int_equal(jobs[2]->state, JOB_FAILED);
    assert_string_equal(jobs[2]->error, "cancelled");
    assert_int_equal(bucket_items(dst.cache, BUCKET + 1), 0);
    assert_int_equal(bucket_items(dst.cache, BUCKET), 400);
    for (int i = 0; i < 3; i++) free(jobs[i]);

    /* A source that refuses one bucket refuses the batch: every job fails
     * and keeps nothing. */
    for (int i = 0; i < 3; i++) bc_cache_bucket_drop(dst.cache, two[i]);
    bc__node_cluster_set_role(src.cl, false, NULL);
    import_batch(&dst, addr, buckets, 3, 0, NULL, jobs);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(jobs[i]->state, JOB_FAILED);
        assert_non_null(strstr(jobs[i]->error, "not the primary"));
        assert_int_equal(bucket_items(dst.cache, buckets[i]), 0);
        free(jobs[i]);
    }
    assert_int_equal(dst.mig->running, 0);

    bc_httpd_destroy(httpd);
    side_free(&src);
    side_free(&dst);
}

/* A batch of copies keeps each bucket that came whole when the stream
 * breaks later; a source that does not know batches is remembered. */
static void
test_import_batch_of_copies_keeps_what_came_whole(void **state)
{
    (void)state;
    side_t dst;
    side_init(&dst, 2);
    stream_t s1, s2;
    stream_build(&s1, BUCKET, 2, small_value);
    stream_build(&s2, BUCKET + 1, 3, small_value);
    char body[4096];
    assert_true(s1.buf.len + s2.buf.len < sizeof(body));
    memcpy(body, s1.buf.data, s1.buf.len);
    memcpy(body + s1.buf.len, s2.buf.data, s2.buf.len);
    const uint32_t buckets[2] = {BUCKET, BUCKET + 1};
    import_job_t *jobs[2];

    /* both whole: both done, one stream */
    source_t *src = source_start(stream_answer(body, s1.buf.len + s2.buf.len));
    import_batch(&dst, src->addr, buckets, 2, EPOCH, NULL, jobs);
    for (int i = 0; i < 2; i++) {
        if (jobs[i]->state != JOB_DONE) fail_msg("job %d: %s", i, jobs[i]->error);
        free(jobs[i]);
    }
    assert_int_equal(atomic_load(&src->requests), 1);
    char want[64];
    snprintf(want, sizeof(want), "buckets=%u,%u&epoch=%u", BUCKET, BUCKET + 1, (unsigned)EPOCH);
    assert_non_null(strstr(src->path, want));
    assert_int_equal(bucket_items(dst.cache, BUCKET + 1), 3);
    bc_cache_bucket_drop(dst.cache, BUCKET);
    bc_cache_bucket_drop(dst.cache, BUCKET + 1);

    /* the second section cut short: the first is kept, the second fails
     * and keeps nothing */
    source_set(src, stream_answer(body, s1.buf.len + s2.buf.len - 4));
    import_batch(&dst, src->addr, buckets, 2, EPOCH, NULL, jobs);
    if (jobs[0]->state != JOB_DONE) fail_msg("%s", jobs[0]->error);
    assert_int_equal(jobs[0]->items, 2);
    assert_int_equal(jobs[1]->state, JOB_FAILED);
    assert_items(dst.cache, BUCKET, 2, small_value);
    assert_int_equal(bucket_items(dst.cache, BUCKET + 1), 0);
    assert_int_equal(dst.mig->running, 0);
    free(jobs[0]);
    free(jobs[1]);

    /* an older source refuses buckets=: the batch fails saying so, and the
     * source is remembered to be asked a bucket at a time */
    static const char old[] = "{\"error\":\"unknown query parameter \\\"buckets\\\"\"}";
    answer_t no = {.status = 400, .body = old, .len = sizeof(old) - 1, .send = sizeof(old) - 1,
                   .content_length = true};
    source_set(src, no);
    import_batch(&dst, src->addr, buckets, 2, EPOCH, NULL, jobs);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobs[i]->state, JOB_FAILED);
        assert_non_null(strstr(jobs[i]->error, "older source"));
        free(jobs[i]);
    }
    pthread_mutex_lock(&dst.mig->mu);
    assert_string_equal(dst.mig->unbatched[0], src->addr);
    pthread_mutex_unlock(&dst.mig->mu);
    source_stop(src);
    bc_frame_buf_free(&s1.buf);
    bc_frame_buf_free(&s2.buf);
    side_free(&dst);
}

int
main(void)
{
    bc_log_set_level(BC_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_stores_a_stream_however_it_is_split),
        cmocka_unit_test(test_import_refuses_a_stream_cut_anywhere),
        cmocka_unit_test(test_import_refuses_a_frame_with_a_bad_checksum),
        cmocka_unit_test(test_import_refuses_an_oversized_frame_without_waiting_for_it),
        cmocka_unit_test(test_import_refuses_a_stream_of_another_bucket),
        cmocka_unit_test(test_import_full_copy_replaces_what_the_bucket_held),
        cmocka_unit_test(test_import_asks_again_while_the_source_is_not_fenced),
        cmocka_unit_test(test_export_streams_a_whole_bucket_to_an_import),
        cmocka_unit_test(test_export_streams_a_batch_of_precopies_on_one_connection),
        cmocka_unit_test(test_export_sends_large_items_in_parts),
        cmocka_unit_test(test_import_assembles_items_in_parts),
        cmocka_unit_test(test_import_batch_of_copies_keeps_what_came_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
