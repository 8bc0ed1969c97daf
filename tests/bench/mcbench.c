/*
 * mcbench.c -- a load generator for the memcached text protocol.
 *
 * WHAT IT DOES
 *   Drives get/set traffic at a memcached-protocol server on 127.0.0.1 and
 *   prints throughput, a latency distribution (p50/p90/p99/p99.9/max), the
 *   get hit count and every kind of error it saw.  It is the one load
 *   generator used to compare bucketcache-node with memcached, so both are
 *   measured by the same code in the same way.
 *
 * HOW
 *   T worker threads each own an epoll instance and C/T of the C
 *   connections (closed loop: no request is sent on a connection unless
 *   fewer than `depth` are outstanding on it).  With depth 1 this is the
 *   classic request/response client; with depth > 1 requests are pipelined:
 *   every time replies arrive, the freed slots are refilled and the new
 *   requests go out in one write(2).
 *
 *       worker thread (one per -t)
 *       +--------------------------------------------------------------+
 *       | epoll_wait --> read replies --> parse --> pop request ring --+--> histogram,
 *       |      ^                                                       |    counters
 *       |      +-- write(2) <-- append requests to out buffer <-- fill -+
 *       +--------------------------------------------------------------+
 *
 *   Every request is pushed on a per-connection ring in send order together
 *   with its send timestamp; since the protocol answers in order, each
 *   complete reply pops the ring head, and its latency goes into a
 *   log-linear histogram (HdrHistogram's layout: 32 linear sub-buckets per
 *   power of two, so every recorded value is within ~3% of its bucket).
 *   Per-thread histograms and counters are merged at the end: the measured
 *   path takes no lock and shares no cache line between threads.
 *
 * PHASES
 *   1. connect every connection (blocking connect, then non-blocking I/O);
 *   2. --preload: set every key once (keys split across connections,
 *      pipelined 32 deep), not measured;
 *   3. --warmup SECS: the measured workload, not recorded;
 *   4. the measured run, for --duration seconds or --ops operations in
 *      total.  When it ends no new request is issued and the outstanding
 *      ones are drained (5 s at most; what is left counts as unanswered).
 *
 * REPLY PARSING
 *   The parser is an incremental state machine over the read buffer: a get
 *   must be answered by "END" (miss) or by exactly one
 *   "VALUE <key> <flags> <bytes>" block followed by "END" (hit); a set by
 *   "STORED".  With --multi N a get asks N consecutive keys (key, key+1,
 *   ... modulo --keys) and its VALUE blocks must come in that order, as
 *   memcached answers (a miss left out; the reply is a hit if any block
 *   came).  A VALUE block must name the requested key, carry the value
 *   size this run stores, and the value bytes must be the pattern this run
 *   wrote for that key (cheap: one memcmp).  ERROR / CLIENT_ERROR /
 *   SERVER_ERROR / NOT_STORED lines are counted as server errors and the
 *   stream stays in sync.  Anything else is a protocol error: the
 *   connection is closed (its outstanding requests counted as lost) and
 *   reopened.  A server that closes the connection is counted as a
 *   disconnect and reconnected; one that stops answering for 10 s ends the
 *   run with the outstanding requests counted as unanswered.
 *
 * OUTPUT
 *   Human-readable lines, then one machine-readable line for scripts:
 *     RESULT ops=... secs=... ops_per_sec=... p50_us=... p99_us=... ...
 *
 * It only ever connects to 127.0.0.1.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include "bc_time.h"

#define PRELOAD_DEPTH        32u
#define DRAIN_TIMEOUT_NS     (5ull * 1000000000ull)
#define STALL_TIMEOUT_NS     (10ull * 1000000000ull)
#define MAX_REPLY_VALUE      (1u << 30)   /* larger "VALUE ... <bytes>" is garbage */
#define READ_BUFFER_MIN      (64u * 1024u)
#define KEY_MAX              250u

/* ------------------------------------------------------------------------ */
/* configuration                                                            */

typedef struct bench_config {
    uint16_t port;
    uint32_t threads;
    uint32_t conns;
    uint32_t keys;
    uint32_t value_size;
    double get_ratio;
    uint32_t depth;
    uint32_t multi;           /* keys per get (--multi) */
    double duration;          /* seconds; used when ops < 0 */
    int64_t ops;              /* total measured operations; < 0 = use duration */
    bool preload;
    double warmup;            /* seconds of unrecorded load before measuring */
    const char *key_prefix;
    const char *tls_ca;       /* --tls CAFILE: TLS to a -Z port; NULL: plain */
    uint64_t seed;
    int key_digits;           /* zero-padded width so all keys have one length */
} bench_config_t;

static bench_config_t g_cfg;
/* value pattern: the value of key k is g_pattern[k % 26 .. k % 26 + value_size) */
static char *g_pattern;

/* ------------------------------------------------------------------------ */
/* time and randomness                                                      */

/* xorshift64*: fast, per-thread, good enough to pick keys and operations. */
static uint64_t
rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t
rng_seed(uint64_t seed)
{
    /* splitmix64 finaliser: distinct, non-zero states from small seeds */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z ? z : 1;
}

/* ------------------------------------------------------------------------ */
/* latency histogram                                                        */

/*
 * Log-linear buckets over nanoseconds, HdrHistogram's layout with 64
 * sub-buckets: values below 64 have their own bucket; above, each power of
 * two [2^e, 2^(e+1)) is split into 32 equal sub-buckets.  index(v) =
 * b * 32 + (v >> b) with b = max(0, msb(v) - 5).  Values are clamped to
 * 2^HIST_MAX_MSB ns (~18 minutes).
 */
#define HIST_SUB_BITS   6
#define HIST_HALF       (1u << (HIST_SUB_BITS - 1))
#define HIST_MAX_MSB    40
#define HIST_BUCKETS    ((HIST_MAX_MSB - HIST_SUB_BITS + 2) * HIST_HALF + HIST_HALF)

typedef struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
} hist_t;

static uint32_t
hist_index(uint64_t v)
{
    if (v >= (1ull << HIST_MAX_MSB))
        v = (1ull << HIST_MAX_MSB) - 1;
    int msb = v ? 63 - __builtin_clzll(v) : 0;
    int b = msb - (HIST_SUB_BITS - 1);
    if (b < 0)
        b = 0;
    return (uint32_t)b * HIST_HALF + (uint32_t)(v >> b);
}

/* A representative value (the middle) of bucket idx. */
static double
hist_value(uint32_t idx)
{
    int b = (int)(idx / HIST_HALF) - 1;
    if (b < 0)
        b = 0;
    uint64_t sub = idx - (uint64_t)b * HIST_HALF;
    uint64_t lo = sub << b;
    return (double)lo + (double)((1ull << b) - 1) / 2.0;
}

static void
hist_record(hist_t *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->total++;
    if (v > h->max)
        h->max = v;
}

static void
hist_merge(hist_t *into, const hist_t *from)
{
    for (uint32_t i = 0; i < HIST_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->total += from->total;
    if (from->max > into->max)
        into->max = from->max;
}

/* Value (ns) at quantile q in [0,1]; 0 when empty. */
static double
hist_quantile(const hist_t *h, double q)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->total);
    if (rank >= h->total)
        rank = h->total - 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) {
            double v = hist_value(i);
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

/* ------------------------------------------------------------------------ */
/* connections and workers                                                  */

typedef enum op_type { OP_GET, OP_SET } op_type_t;

typedef struct request {
    uint64_t sent_ns;
    uint32_t key;
    uint8_t type;             /* op_type_t */
} request_t;

typedef enum parse_state { PS_LINE, PS_VALUE_DATA } parse_state_t;

typedef enum phase { PHASE_PRELOAD, PHASE_WARMUP, PHASE_MEASURE } phase_t;

typedef struct counters {
    uint64_t gets, sets;
    uint64_t hits, misses;
    uint64_t server_errors;   /* ERROR, CLIENT_ERROR, SERVER_ERROR, NOT_STORED */
    uint64_t protocol_errors; /* unparseable replies (connection reopened) */
    uint64_t bad_values;      /* wrong key, size or bytes in a VALUE block */
    uint64_t disconnects;     /* server closed the connection or I/O failed */
    uint64_t lost;            /* outstanding requests on a closed connection */
    uint64_t unanswered;      /* outstanding when the run ended */
} counters_t;

struct worker;

typedef struct conn {
    struct worker *w;
    int fd;                   /* -1 when dead (could not reconnect) */
    SSL *ssl;                 /* --tls: the session on fd; NULL: plain */
    uint32_t id;

    char *in;                 /* read buffer: [in_pos, in_len) unparsed */
    size_t in_pos, in_len, in_cap;
    parse_state_t ps;
    uint64_t value_need;      /* bytes of value + CRLF still expected */
    uint32_t value_len;       /* the current VALUE block's <bytes> */
    bool value_ok;            /* current VALUE block passed the key/size check */
    bool got_value;           /* current get reply had a VALUE block */
    uint32_t nvalues;         /* VALUE blocks of the current get reply so far */
    uint32_t next_idx;        /* --multi: the index in the get of the next key expected */
    uint32_t value_key;       /* the current VALUE block's key */

    char *out;                /* write buffer: [out_sent, out_len) unsent */
    size_t out_sent, out_len, out_cap;
    bool want_out;            /* EPOLLOUT registered */

    request_t *ring;          /* outstanding requests, oldest at ring_head */
    uint32_t ring_cap, ring_head, ring_count;

    uint32_t preload_next, preload_end;
    int64_t quota;            /* measured ops left to issue; < 0 = unlimited */
    uint64_t measured_ops;    /* replies completed in the measured phase */
} conn_t;

typedef struct worker {
    pthread_t tid;
    uint32_t index;
    int epfd;
    conn_t *conns;
    uint32_t nconns;
    uint64_t rng;
    phase_t phase;
    bool stopping;            /* no new requests (deadline reached) */
    counters_t measured;      /* counters of the measured phase */
    counters_t preload;       /* counters of the preload phase */
    counters_t scratch;       /* warm-up counters (discarded) */
    hist_t *hist;
    uint64_t end_ns;
} worker_t;

static pthread_barrier_t g_barrier;
static uint64_t g_start_ns;
static volatile int g_fatal;  /* a worker could not connect at all */

static counters_t *
phase_counters(worker_t *w)
{
    switch (w->phase) {
    case PHASE_PRELOAD: return &w->preload;
    case PHASE_WARMUP:  return &w->scratch;
    default:            return &w->measured;
    }
}

static int
key_format(char *buf, size_t cap, uint32_t key)
{
    return snprintf(buf, cap, "%s%0*" PRIu32, g_cfg.key_prefix, g_cfg.key_digits, key);
}

static SSL_CTX *g_tls;        /* --tls */

/* send(2)/recv(2) over TLS when --tls: errno EAGAIN when OpenSSL waits
 * for the socket (either way: epoll asks for both soon enough). */
static ssize_t
io_send(conn_t *c, const char *buf, size_t len)
{
    if (c->ssl == NULL) return send(c->fd, buf, len, MSG_NOSIGNAL);
    size_t n = 0;
    int r = SSL_write_ex(c->ssl, buf, len, &n);
    if (r == 1) return (ssize_t)n;
    int e = SSL_get_error(c->ssl, r);
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : EPIPE;
    return -1;
}

static ssize_t
io_recv(conn_t *c, char *buf, size_t len)
{
    if (c->ssl == NULL) return recv(c->fd, buf, len, 0);
    size_t n = 0;
    int r = SSL_read_ex(c->ssl, buf, len, &n);
    if (r == 1) return (ssize_t)n;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : ECONNRESET;
    return -1;
}

static void
conn_close_fd(conn_t *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
}

/* Connects (and, with --tls, completes the handshake while the socket
 * still blocks); the fd, or -1. */
static int
conn_open_socket(SSL **ssl)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(g_cfg.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *ssl = NULL;
    if (g_tls != NULL) {
        *ssl = SSL_new(g_tls);
        if (*ssl == NULL || SSL_set_fd(*ssl, fd) != 1 || SSL_connect(*ssl) != 1) {
            SSL_free(*ssl);
            *ssl = NULL;
            close(fd);
            errno = ECONNREFUSED;
            return -1;
        }
    }
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        SSL_free(*ssl);
        *ssl = NULL;
        close(fd);
        return -1;
    }
    return fd;
}

static bool
conn_register(conn_t *c)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    c->want_out = false;
    return epoll_ctl(c->w->epfd, EPOLL_CTL_ADD, c->fd, &ev) == 0;
}

static void
conn_set_want_out(conn_t *c, bool want)
{
    if (c->want_out == want || c->fd < 0)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = c };
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = want;
}

static void
conn_reset_state(conn_t *c)
{
    c->in_pos = c->in_len = 0;
    c->ps = PS_LINE;
    c->got_value = false;
    c->nvalues = c->next_idx = 0;
    c->out_sent = c->out_len = 0;
    c->ring_head = c->ring_count = 0;
}

/* Closes the connection, forgets its state and opens a new one. */
static void
conn_reconnect(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(c->w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        conn_close_fd(c);
    }
    conn_reset_state(c);
    c->fd = conn_open_socket(&c->ssl);
    if (c->fd >= 0 && !conn_register(c)) {
        conn_close_fd(c);
        c->fd = -1;
    }
    if (c->fd < 0)
        fprintf(stderr, "mcbench: connection %u: reconnect failed: %s\n", c->id,
                strerror(errno));
}

/*
 * After a disconnect or protocol error: counts the connection's outstanding
 * requests as lost and reconnects.  A lost preload request is not re-sent:
 * the preload error count says so.
 */
static void
conn_reopen(conn_t *c, bool protocol_error)
{
    counters_t *ct = phase_counters(c->w);
    if (protocol_error)
        ct->protocol_errors++;
    else
        ct->disconnects++;
    ct->lost += c->ring_count;
    conn_reconnect(c);
}

/* Picks the next request to issue; false when this connection is done. */
static bool
conn_next_request(conn_t *c, op_type_t *type, uint32_t *key)
{
    worker_t *w = c->w;
    if (w->phase == PHASE_PRELOAD) {
        if (c->preload_next >= c->preload_end)
            return false;
        *type = OP_SET;
        *key = c->preload_next++;
        return true;
    }
    if (w->stopping)
        return false;
    if (w->phase == PHASE_MEASURE && c->quota >= 0) {
        if (c->quota == 0)
            return false;
        c->quota--;
    }
    uint64_t r = rng_next(&w->rng);
    *key = (uint32_t)(r % g_cfg.keys);
    double u = (double)(rng_next(&w->rng) >> 11) * 0x1.0p-53;
    *type = u < g_cfg.get_ratio ? OP_GET : OP_SET;
    return true;
}

static void
conn_append_request(conn_t *c, op_type_t type, uint32_t key, uint64_t now)
{
    /* room is guaranteed: out_cap covers ring_cap requests of maximum size */
    if (c->out_sent > 0 && c->out_sent == c->out_len)
        c->out_sent = c->out_len = 0;
    char *p = c->out + c->out_len;
    size_t room = c->out_cap - c->out_len;
    int n;
    if (type == OP_GET) {
        n = snprintf(p, room, "get");
        for (uint32_t i = 0; i < g_cfg.multi; i++) {
            n += snprintf(p + n, room - (size_t)n, " %s%0*" PRIu32, g_cfg.key_prefix,
                          g_cfg.key_digits, (uint32_t)(((uint64_t)key + i) % g_cfg.keys));
        }
        n += snprintf(p + n, room - (size_t)n, "\r\n");
    } else {
        n = snprintf(p, room, "set %s%0*" PRIu32 " 0 0 %" PRIu32 "\r\n", g_cfg.key_prefix,
                     g_cfg.key_digits, key, g_cfg.value_size);
        memcpy(p + n, g_pattern + key % 26, g_cfg.value_size);
        n += (int)g_cfg.value_size;
        p[n++] = '\r';
        p[n++] = '\n';
    }
    c->out_len += (size_t)n;
    request_t *rq = &c->ring[(c->ring_head + c->ring_count) % c->ring_cap];
    rq->sent_ns = now;
    rq->key = key;
    rq->type = (uint8_t)type;
    c->ring_count++;
}

/* Writes what is pending; false if the connection had to be reopened. */
static bool
conn_flush(conn_t *c)
{
    while (c->out_sent < c->out_len) {
        ssize_t n = io_send(c, c->out + c->out_sent, c->out_len - c->out_sent);
        if (n > 0) {
            c->out_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_set_want_out(c, true);
            return true;
        }
        conn_reopen(c, false);
        return false;
    }
    c->out_sent = c->out_len = 0;
    conn_set_want_out(c, false);
    return true;
}

static void
conn_fill(conn_t *c)
{
    if (c->fd < 0)
        return;
    uint32_t limit = c->w->phase == PHASE_PRELOAD ? c->ring_cap : g_cfg.depth;
    uint64_t now = 0;
    op_type_t type;
    uint32_t key;
    bool added = false;
    while (c->ring_count < limit && conn_next_request(c, &type, &key)) {
        if (!added)
            now = bc_time_mono_ns();
        conn_append_request(c, type, key, now);
        added = true;
    }
    if (added)
        conn_flush(c);
}

/* A reply to the ring head is complete. */
static void
conn_complete(conn_t *c, bool hit, bool error)
{
    worker_t *w = c->w;
    request_t *rq = &c->ring[c->ring_head];
    counters_t *ct = phase_counters(w);
    if (rq->type == OP_GET) {
        ct->gets++;
        if (!error) {
            if (hit)
                ct->hits++;
            else
                ct->misses++;
        }
    } else {
        ct->sets++;
    }
    if (error)
        ct->server_errors++;
    if (w->phase == PHASE_MEASURE) {
        hist_record(w->hist, bc_time_mono_ns() - rq->sent_ns);
        c->measured_ops++;
    }
    c->ring_head = (c->ring_head + 1) % c->ring_cap;
    c->ring_count--;
}

static bool
line_is(const char *line, size_t len, const char *word)
{
    size_t wl = strlen(word);
    return len == wl && memcmp(line, word, wl) == 0;
}

static bool
line_starts(const char *line, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return len >= pl && memcmp(line, prefix, pl) == 0;
}

static bool
line_is_error(const char *line, size_t len)
{
    return line_is(line, len, "ERROR") || line_starts(line, len, "CLIENT_ERROR ") ||
           line_starts(line, len, "SERVER_ERROR ") || line_is(line, len, "NOT_STORED") ||
           line_is(line, len, "EXISTS") || line_is(line, len, "NOT_FOUND");
}

/*
 * Parses "VALUE <key> <flags> <bytes>[ <cas>]" for the request rq.  Returns
 * false on a malformed line (protocol error).  Sets c->value_len and
 * c->value_ok (whether key and size are what was asked for).
 */
static bool
conn_parse_value_line(conn_t *c, const char *line, size_t len, const request_t *rq)
{
    char buf[512];
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, line, len);
    buf[len] = '\0';
    char *save = NULL;
    char *tok = strtok_r(buf, " ", &save);          /* VALUE */
    char *key = strtok_r(NULL, " ", &save);
    char *flags = strtok_r(NULL, " ", &save);
    char *bytes = strtok_r(NULL, " ", &save);
    if (!tok || !key || !flags || !bytes)
        return false;
    char *end;
    errno = 0;
    unsigned long long nb = strtoull(bytes, &end, 10);
    if (*end != '\0' || errno != 0 || nb > MAX_REPLY_VALUE || bytes[0] == '-')
        return false;
    char want[KEY_MAX + 32];
    /* the next key asked that can come: a miss may be left out */
    c->value_ok = false;
    while (c->next_idx < g_cfg.multi && !c->value_ok) {
        c->value_key = (uint32_t)(((uint64_t)rq->key + c->next_idx++) % g_cfg.keys);
        key_format(want, sizeof(want), c->value_key);
        c->value_ok = strcmp(key, want) == 0;
    }
    c->value_len = (uint32_t)nb;
    c->value_ok = c->value_ok && nb == g_cfg.value_size;
    return true;
}

/*
 * Consumes complete replies from the read buffer.  Returns false if the
 * stream was unparseable (the connection has been reopened).
 */
static bool
conn_parse(conn_t *c)
{
    counters_t *ct;
    for (;;) {
        size_t avail = c->in_len - c->in_pos;
        char *base = c->in + c->in_pos;
        if (c->ps == PS_VALUE_DATA) {
            if (!c->value_ok) {
                /* wrong size or key: skip the block as announced, unverified */
                size_t take = avail < c->value_need ? avail : (size_t)c->value_need;
                c->in_pos += take;
                c->value_need -= take;
                if (c->value_need > 0)
                    return true;
                c->ps = PS_LINE;
                continue;
            }
            if (avail < c->value_need)
                return true;
            if (memcmp(base, g_pattern + c->value_key % 26, c->value_len) != 0 ||
                base[c->value_len] != '\r' || base[c->value_len + 1] != '\n') {
                ct = phase_counters(c->w);
                ct->bad_values++;
                if (base[c->value_len] != '\r' || base[c->value_len + 1] != '\n') {
                    conn_reopen(c, true);
                    return false;
                }
            }
            c->in_pos += c->value_need;
            c->ps = PS_LINE;
            continue;
        }
        char *nl = memchr(base, '\n', avail);
        if (nl == NULL) {
            if (avail >= c->in_cap - 1) {    /* a line longer than the buffer */
                conn_reopen(c, true);
                return false;
            }
            return true;
        }
        size_t len = (size_t)(nl - base);
        if (len == 0 || base[len - 1] != '\r' || c->ring_count == 0) {
            conn_reopen(c, true);            /* bare LF, or an unsolicited reply */
            return false;
        }
        len--;                               /* drop the CR */
        const request_t *rq = &c->ring[c->ring_head];
        c->in_pos += (size_t)(nl - base) + 1;
        if (rq->type == OP_GET) {
            if (line_starts(base, len, "VALUE ")) {
                if (c->nvalues >= g_cfg.multi || !conn_parse_value_line(c, base, len, rq)) {
                    conn_reopen(c, true);
                    return false;
                }
                if (!c->value_ok)
                    phase_counters(c->w)->bad_values++;
                c->got_value = true;
                c->nvalues++;
                c->value_need = (uint64_t)c->value_len + 2;
                c->ps = PS_VALUE_DATA;
            } else if (line_is(base, len, "END")) {
                bool hit = c->got_value;
                c->got_value = false;
                c->nvalues = c->next_idx = 0;
                conn_complete(c, hit, false);
            } else if (line_is_error(base, len)) {
                c->got_value = false;
                c->nvalues = c->next_idx = 0;
                conn_complete(c, false, true);
            } else {
                conn_reopen(c, true);
                return false;
            }
        } else {
            if (line_is(base, len, "STORED")) {
                conn_complete(c, false, false);
            } else if (line_is_error(base, len)) {
                conn_complete(c, false, true);
            } else {
                conn_reopen(c, true);
                return false;
            }
        }
    }
}

static void
conn_on_readable(conn_t *c)
{
    for (;;) {
        if (c->in_pos > 0 && c->in_pos == c->in_len) {
            c->in_pos = c->in_len = 0;
        } else if (c->in_pos > 0 && c->in_cap - c->in_len < c->in_cap / 4) {
            memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
            c->in_len -= c->in_pos;
            c->in_pos = 0;
        }
        ssize_t n = io_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            if (!conn_parse(c))
                return;
            if ((size_t)n < c->in_cap / 2 && (c->ssl == NULL || !SSL_has_pending(c->ssl)))
                break;      /* most likely drained; epoll says if not */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_reopen(c, false);   /* EOF or error */
        return;
    }
}

static uint32_t
worker_outstanding(const worker_t *w)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < w->nconns; i++)
        if (w->conns[i].fd >= 0)
            n += w->conns[i].ring_count;
    return n;
}

static bool
worker_has_work(worker_t *w)
{
    if (w->phase == PHASE_PRELOAD) {
        for (uint32_t i = 0; i < w->nconns; i++) {
            const conn_t *c = &w->conns[i];
            if (c->fd >= 0 && (c->ring_count > 0 || c->preload_next < c->preload_end))
                return true;
        }
        return false;
    }
    for (uint32_t i = 0; i < w->nconns; i++) {
        const conn_t *c = &w->conns[i];
        if (c->fd < 0)
            continue;
        if (c->ring_count > 0)
            return true;
        if (!w->stopping && (w->phase != PHASE_MEASURE || c->quota != 0))
            return true;
    }
    return false;
}

/*
 * Runs one phase until every connection is done.  deadline_ns (0 = none)
 * stops issuing new requests; outstanding ones are then drained for at most
 * DRAIN_TIMEOUT_NS.
 */
static void
worker_run_phase(worker_t *w, phase_t phase, uint64_t deadline_ns)
{
    w->phase = phase;
    w->stopping = false;
    for (uint32_t i = 0; i < w->nconns; i++)
        conn_fill(&w->conns[i]);
    uint64_t drain_until = 0;
    uint64_t last_progress = bc_time_mono_ns();
    uint32_t outstanding_before = worker_outstanding(w);
    struct epoll_event events[64];
    while (worker_has_work(w)) {
        int n = epoll_wait(w->epfd, events, 64, 50);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_on_readable(c);
            if (c->fd >= 0 && (events[i].events & EPOLLOUT))
                conn_flush(c);
            conn_fill(c);
        }
        if (n == 0) {
            /* a reconnected connection has nothing in flight to wake it up */
            for (uint32_t i = 0; i < w->nconns; i++)
                if (w->conns[i].ring_count == 0)
                    conn_fill(&w->conns[i]);
        }
        uint64_t now = bc_time_mono_ns();
        uint32_t outstanding = worker_outstanding(w);
        if (n > 0 || outstanding != outstanding_before)
            last_progress = now;
        outstanding_before = outstanding;
        if (deadline_ns && !w->stopping && now >= deadline_ns) {
            w->stopping = true;
            drain_until = now + DRAIN_TIMEOUT_NS;
        }
        if ((drain_until && now >= drain_until) ||
            (outstanding > 0 && now - last_progress >= STALL_TIMEOUT_NS)) {
            if (!drain_until)
                fprintf(stderr, "mcbench: thread %u: no reply for %llu s, giving up\n",
                        w->index, (unsigned long long)(STALL_TIMEOUT_NS / 1000000000ull));
            phase_counters(w)->unanswered += outstanding;
            /* late replies would desynchronise the next phase: start afresh */
            for (uint32_t i = 0; i < w->nconns; i++)
                if (w->conns[i].fd >= 0 && w->conns[i].ring_count > 0)
                    conn_reconnect(&w->conns[i]);
            w->stopping = true;
            break;
        }
    }
}

static void *
worker_main(void *arg)
{
    worker_t *w = arg;
    for (uint32_t i = 0; i < w->nconns && !g_fatal; i++) {
        conn_t *c = &w->conns[i];
        c->fd = conn_open_socket(&c->ssl);
        if (c->fd < 0 || !conn_register(c)) {
            if (!g_fatal)
                fprintf(stderr, "mcbench: cannot connect to 127.0.0.1:%u: %s\n", g_cfg.port,
                        strerror(errno));
            g_fatal = 1;
            if (c->fd >= 0)
                conn_close_fd(c);
            c->fd = -1;
        }
    }
    pthread_barrier_wait(&g_barrier);
    if (g_fatal)
        return NULL;
    if (g_cfg.preload)
        worker_run_phase(w, PHASE_PRELOAD, 0);
    pthread_barrier_wait(&g_barrier);
    if (g_cfg.warmup > 0)
        worker_run_phase(w, PHASE_WARMUP, bc_time_mono_ns() + (uint64_t)(g_cfg.warmup * 1e9));
    pthread_barrier_wait(&g_barrier);   /* main thread sets g_start_ns here */
    pthread_barrier_wait(&g_barrier);
    uint64_t deadline = g_cfg.ops < 0 ? g_start_ns + (uint64_t)(g_cfg.duration * 1e9) : 0;
    worker_run_phase(w, PHASE_MEASURE, deadline);
    w->end_ns = bc_time_mono_ns();
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* command line and report                                                  */

static void
usage(FILE *f)
{
    fprintf(f,
"usage: mcbench -p PORT [options]\n"
"Memcached text-protocol load generator (connects to 127.0.0.1 only).\n"
"  -p, --port PORT          server port (required)\n"
"  -t, --threads N          client threads (default 2)\n"
"  -c, --conns N            connections in total (default 50)\n"
"  -k, --keys N             key space size (default 100000)\n"
"  -v, --value-size N       value bytes (default 100)\n"
"  -r, --get-ratio F        fraction of gets, the rest are sets (default 0.9)\n"
"  -d, --depth N            requests in flight per connection (default 1)\n"
"  -m, --multi N            keys per get, consecutive (default 1); their values\n"
"                           must come in the order asked\n"
"  -D, --duration SECS      measured run length (default 10)\n"
"  -n, --ops N              measured operations in total (instead of -D)\n"
"  -w, --preload            set every key once before measuring\n"
"  -W, --warmup SECS        unrecorded load before measuring (default 0)\n"
"  -P, --key-prefix STR     key prefix (default \"key:\")\n"
"  -s, --seed N             random seed (default 1)\n"
"  -T, --tls CAFILE         speak TLS (a -Z port), trusting CAFILE's certificates\n"
"  -h, --help\n"
"Keys are PREFIX followed by a zero-padded number below --keys; set values\n"
"are a per-key pattern that gets verify.  The last output line is\n"
"\"RESULT key=value ...\" for scripts.\n");
}

static bool
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] == '-' || s[0] == '\0')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool
parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !(v >= min && v <= max))
        return false;
    *out = v;
    return true;
}

static void
die_usage(const char *opt, const char *val)
{
    fprintf(stderr, "mcbench: bad value for %s: '%s'\n", opt, val);
    usage(stderr);
    exit(2);
}

static void
parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},
        {"conns", required_argument, NULL, 'c'},
        {"keys", required_argument, NULL, 'k'},
        {"value-size", required_argument, NULL, 'v'},
        {"get-ratio", required_argument, NULL, 'r'},
        {"depth", required_argument, NULL, 'd'},
        {"multi", required_argument, NULL, 'm'},
        {"duration", required_argument, NULL, 'D'},
        {"ops", required_argument, NULL, 'n'},
        {"preload", no_argument, NULL, 'w'},
        {"warmup", required_argument, NULL, 'W'},
        {"key-prefix", required_argument, NULL, 'P'},
        {"seed", required_argument, NULL, 's'},
        {"tls", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    g_cfg = (bench_config_t){
        .threads = 2, .conns = 50, .keys = 100000, .value_size = 100, .get_ratio = 0.9, .multi = 1,
        .depth = 1, .duration = 10, .ops = -1, .key_prefix = "key:", .seed = 1,
    };
    int opt;
    uint64_t u;
    while ((opt = getopt_long(argc, argv, "p:t:c:k:v:r:d:m:D:n:wW:P:s:T:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p': if (!parse_u64(optarg, 1, 65535, &u)) die_usage("--port", optarg);
                  g_cfg.port = (uint16_t)u; break;
        case 't': if (!parse_u64(optarg, 1, 256, &u)) die_usage("--threads", optarg);
                  g_cfg.threads = (uint32_t)u; break;
        case 'c': if (!parse_u64(optarg, 1, 10000, &u)) die_usage("--conns", optarg);
                  g_cfg.conns = (uint32_t)u; break;
        case 'k': if (!parse_u64(optarg, 1, 1000000000, &u)) die_usage("--keys", optarg);
                  g_cfg.keys = (uint32_t)u; break;
        case 'v': if (!parse_u64(optarg, 0, 64u << 20, &u)) die_usage("--value-size", optarg);
                  g_cfg.value_size = (uint32_t)u; break;
        case 'r': if (!parse_double(optarg, 0, 1, &g_cfg.get_ratio))
                      die_usage("--get-ratio", optarg);
                  break;
        case 'd': if (!parse_u64(optarg, 1, 4096, &u)) die_usage("--depth", optarg);
                  g_cfg.depth = (uint32_t)u; break;
        case 'm': if (!parse_u64(optarg, 1, 100, &u)) die_usage("--multi", optarg);
                  g_cfg.multi = (uint32_t)u; break;
        case 'D': if (!parse_double(optarg, 0.001, 86400, &g_cfg.duration))
                      die_usage("--duration", optarg);
                  break;
        case 'n': if (!parse_u64(optarg, 0, INT64_MAX, &u)) die_usage("--ops", optarg);
                  g_cfg.ops = (int64_t)u; break;
        case 'w': g_cfg.preload = true; break;
        case 'W': if (!parse_double(optarg, 0, 86400, &g_cfg.warmup))
                      die_usage("--warmup", optarg);
                  break;
        case 'P': g_cfg.key_prefix = optarg; break;
        case 'T': g_cfg.tls_ca = optarg; break;
        case 's': if (!parse_u64(optarg, 0, UINT64_MAX, &g_cfg.seed)) die_usage("--seed", optarg);
                  break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc) {
        fprintf(stderr, "mcbench: unexpected argument '%s'\n", argv[optind]);
        exit(2);
    }
    if (g_cfg.port == 0) {
        fprintf(stderr, "mcbench: --port is required\n");
        usage(stderr);
        exit(2);
    }
    if (g_cfg.tls_ca != NULL) {
        g_tls = SSL_CTX_new(TLS_client_method());
        if (g_tls == NULL || SSL_CTX_load_verify_locations(g_tls, g_cfg.tls_ca, NULL) != 1) {
            fprintf(stderr, "mcbench: --tls %s: cannot load the CA file\n", g_cfg.tls_ca);
            exit(2);
        }
        SSL_CTX_set_verify(g_tls, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_mode(g_tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    g_cfg.key_digits = 1;
    for (uint32_t k = g_cfg.keys - 1; k >= 10; k /= 10)
        g_cfg.key_digits++;
    for (const char *p = g_cfg.key_prefix; *p; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            fprintf(stderr, "mcbench: --key-prefix must not contain spaces or control characters\n");
            exit(2);
        }
    }
    if (strlen(g_cfg.key_prefix) + (size_t)g_cfg.key_digits > KEY_MAX) {
        fprintf(stderr, "mcbench: keys would be longer than %u bytes\n", KEY_MAX);
        exit(2);
    }
    if (g_cfg.threads > g_cfg.conns)
        g_cfg.threads = g_cfg.conns;
}

static int
u64_compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void
counters_add(counters_t *a, const counters_t *b)
{
    a->gets += b->gets;
    a->sets += b->sets;
    a->hits += b->hits;
    a->misses += b->misses;
    a->server_errors += b->server_errors;
    a->protocol_errors += b->protocol_errors;
    a->bad_values += b->bad_values;
    a->disconnects += b->disconnects;
    a->lost += b->lost;
    a->unanswered += b->unanswered;
}

static uint64_t
counters_errors(const counters_t *c)
{
    return c->server_errors + c->protocol_errors + c->bad_values + c->disconnects +
           c->lost + c->unanswered;
}

static void
counters_print_errors(const char *what, const counters_t *c)
{
    printf("%s errors: %" PRIu64 " (server %" PRIu64 ", protocol %" PRIu64
           ", bad values %" PRIu64 ", disconnects %" PRIu64 ", lost %" PRIu64
           ", unanswered %" PRIu64 ")\n",
           what, counters_errors(c), c->server_errors, c->protocol_errors, c->bad_values,
           c->disconnects, c->lost, c->unanswered);
}

int
main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    /* the pattern: 26 letters repeated, long enough for any key's offset */
    g_pattern = malloc((size_t)g_cfg.value_size + 26);
    if (g_pattern == NULL) {
        fprintf(stderr, "mcbench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)g_cfg.value_size + 26; i++)
        g_pattern[i] = (char)('a' + i % 26);

    worker_t *workers = calloc(g_cfg.threads, sizeof(*workers));
    conn_t *conns = calloc(g_cfg.conns, sizeof(*conns));
    if (!workers || !conns) {
        fprintf(stderr, "mcbench: out of memory\n");
        return 1;
    }
    uint32_t ring_cap = g_cfg.depth > PRELOAD_DEPTH ? g_cfg.depth : PRELOAD_DEPTH;
    size_t req_max = (size_t)g_cfg.value_size + (size_t)g_cfg.multi * (KEY_MAX + 1) + 64;
    size_t in_cap = 2 * ((size_t)g_cfg.value_size + KEY_MAX + 64);
    if (in_cap < READ_BUFFER_MIN)
        in_cap = READ_BUFFER_MIN;

    /* connection i belongs to worker i % T; workers own contiguous slices */
    uint32_t next = 0;
    for (uint32_t t = 0; t < g_cfg.threads; t++) {
        worker_t *w = &workers[t];
        w->index = t;
        w->nconns = g_cfg.conns / g_cfg.threads + (t < g_cfg.conns % g_cfg.threads);
        w->conns = &conns[next];
        next += w->nconns;
        w->rng = rng_seed(g_cfg.seed * 1000003u + t);
        w->hist = calloc(1, sizeof(hist_t));
        w->epfd = epoll_create1(0);
        if (!w->hist || w->epfd < 0) {
            fprintf(stderr, "mcbench: cannot set up thread %u: %s\n", t, strerror(errno));
            return 1;
        }
    }
    for (uint32_t i = 0; i < g_cfg.conns; i++) {
        conn_t *c = &conns[i];
        c->id = i;
        c->fd = -1;
        c->in_cap = in_cap;
        c->in = malloc(in_cap);
        c->out_cap = ring_cap * req_max;
        c->out = malloc(c->out_cap);
        c->ring_cap = ring_cap;
        c->ring = calloc(ring_cap, sizeof(request_t));
        if (!c->in || !c->out || !c->ring) {
            fprintf(stderr, "mcbench: out of memory\n");
            return 1;
        }
        /* preload: key range split evenly over connections */
        c->preload_next = (uint32_t)((uint64_t)g_cfg.keys * i / g_cfg.conns);
        c->preload_end = (uint32_t)((uint64_t)g_cfg.keys * (i + 1) / g_cfg.conns);
        c->quota = g_cfg.ops < 0 ? -1
                                 : (int64_t)((uint64_t)g_cfg.ops / g_cfg.conns +
                                             ((uint64_t)i < (uint64_t)g_cfg.ops % g_cfg.conns));
    }
    for (uint32_t t = 0; t < g_cfg.threads; t++)
        for (uint32_t i = 0; i < workers[t].nconns; i++)
            workers[t].conns[i].w = &workers[t];

    printf("mcbench: 127.0.0.1:%u threads=%u conns=%u keys=%u value=%u get_ratio=%.2f "
           "depth=%u multi=%u ",
           g_cfg.port, g_cfg.threads, g_cfg.conns, g_cfg.keys, g_cfg.value_size,
           g_cfg.get_ratio, g_cfg.depth, g_cfg.multi);
    if (g_cfg.ops >= 0)
        printf("ops=%" PRId64 "\n", g_cfg.ops);
    else
        printf("duration=%.1fs\n", g_cfg.duration);
    fflush(stdout);

    pthread_barrier_init(&g_barrier, NULL, g_cfg.threads + 1);
    for (uint32_t t = 0; t < g_cfg.threads; t++) {
        if (pthread_create(&workers[t].tid, NULL, worker_main, &workers[t]) != 0) {
            fprintf(stderr, "mcbench: cannot start threads\n");
            return 1;
        }
    }
    pthread_barrier_wait(&g_barrier);          /* connected */
    if (g_fatal) {
        for (uint32_t t = 0; t < g_cfg.threads; t++)
            pthread_join(workers[t].tid, NULL);
        return 1;
    }
    uint64_t preload_start = bc_time_mono_ns();
    pthread_barrier_wait(&g_barrier);          /* preloaded */
    if (g_cfg.preload) {
        counters_t pc = {0};
        for (uint32_t t = 0; t < g_cfg.threads; t++)
            counters_add(&pc, &workers[t].preload);
        printf("preload: %" PRIu64 " sets in %.2f s\n", pc.sets,
               (double)(bc_time_mono_ns() - preload_start) / 1e9);
        counters_print_errors("preload", &pc);
        fflush(stdout);
    }
    pthread_barrier_wait(&g_barrier);          /* warmed up */
    g_start_ns = bc_time_mono_ns();
    pthread_barrier_wait(&g_barrier);          /* measuring */

    uint64_t end_ns = g_start_ns;
    counters_t total = {0};
    hist_t *hist = calloc(1, sizeof(hist_t));
    if (!hist) {
        fprintf(stderr, "mcbench: out of memory\n");
        return 1;
    }
    for (uint32_t t = 0; t < g_cfg.threads; t++) {
        pthread_join(workers[t].tid, NULL);
        if (workers[t].end_ns > end_ns)
            end_ns = workers[t].end_ns;
        counters_add(&total, &workers[t].measured);
        hist_merge(hist, workers[t].hist);
    }
    double secs = (double)(end_ns - g_start_ns) / 1e9;
    uint64_t ops = hist->total;
    double ops_per_sec = secs > 0 ? (double)ops / secs : 0;
    double p50 = hist_quantile(hist, 0.50) / 1e3, p90 = hist_quantile(hist, 0.90) / 1e3;
    double p99 = hist_quantile(hist, 0.99) / 1e3, p999 = hist_quantile(hist, 0.999) / 1e3;
    double maxus = (double)hist->max / 1e3;
    uint64_t answered_gets = total.hits + total.misses;

    printf("ops: %" PRIu64 " in %.2f s = %.0f ops/s (gets %" PRIu64 ", sets %" PRIu64 ")\n",
           ops, secs, ops_per_sec, total.gets, total.sets);
    printf("hits: %" PRIu64 " (%.2f%% of answered gets), misses: %" PRIu64 "\n", total.hits,
           answered_gets ? 100.0 * (double)total.hits / (double)answered_gets : 0.0,
           total.misses);
    counters_print_errors("run", &total);
    printf("latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", p50, p90, p99,
           p999, maxus);
    /*
     * Fairness: a server that serves some connections far more often than
     * others shows a low p50 with a high p99; the spread of completed
     * operations per connection says so directly.
     */
    uint64_t *per_conn = malloc((size_t)g_cfg.conns * sizeof(uint64_t));
    if (per_conn != NULL) {
        for (uint32_t i = 0; i < g_cfg.conns; i++)
            per_conn[i] = conns[i].measured_ops;
        qsort(per_conn, g_cfg.conns, sizeof(uint64_t), u64_compare);
        printf("ops per connection: min %" PRIu64 "  median %" PRIu64 "  max %" PRIu64 "\n",
               per_conn[0], per_conn[g_cfg.conns / 2], per_conn[g_cfg.conns - 1]);
        free(per_conn);
    }
    printf("RESULT ops=%" PRIu64 " secs=%.3f ops_per_sec=%.0f p50_us=%.1f p90_us=%.1f "
           "p99_us=%.1f p999_us=%.1f max_us=%.1f gets=%" PRIu64 " sets=%" PRIu64
           " hits=%" PRIu64 " misses=%" PRIu64 " errors=%" PRIu64 "\n",
           ops, secs, ops_per_sec, p50, p90, p99, p999, maxus, total.gets, total.sets,
           total.hits, total.misses, counters_errors(&total));

    for (uint32_t t = 0; t < g_cfg.threads; t++) {
        close(workers[t].epfd);
        free(workers[t].hist);
    }
    for (uint32_t i = 0; i < g_cfg.conns; i++) {
        if (conns[i].fd >= 0)
            conn_close_fd(&conns[i]);
        free(conns[i].in);
        free(conns[i].out);
        free(conns[i].ring);
    }
    free(conns);
    free(workers);
    free(hist);
    free(g_pattern);
    pthread_barrier_destroy(&g_barrier);
    return 0;
}
