/*
 * hitratio.c -- measures a memcached-protocol server's hit ratio on a
 * Zipf-distributed key stream.
 *
 * WHAT IT DOES
 *   Replays a deterministic stream of key requests (Zipf exponent s over K
 *   keys, fixed seed: every server sees exactly the same stream) as a
 *   look-aside cache client would: get the key; on a miss, set it.  After an
 *   unrecorded warm-up prefix of the stream it counts hits, then prints the
 *   hit ratio and the server's own curr_items / evictions, so that eviction
 *   policies (and memcached) can be compared at equal memory.
 *
 * HOW
 *   Zipf sampling: the cumulative weights sum_{i<=r} 1/i^s are precomputed
 *   once (K doubles) and each draw is a binary search on a uniform number
 *   from a seeded xorshift generator.  Rank r (1 = hottest) is key r-1.
 *
 *   One connection, requests sent in windows of B (default 32) to keep
 *   round trips from dominating the run time:
 *
 *     window of B requests:  get k1 .. get kB  --->  B replies (hit/miss)
 *                            set kx .. (each distinct missed key)  --->  STORED...
 *
 *   BEHAVIOR vs a strictly sequential client (B = 1, exact): a key that
 *   appears twice in one window and missed the first time would have been
 *   set before the second get; the second occurrence is therefore counted
 *   as a hit (a sequential client would have hit), and the key is set once.
 *   The server sees that second get as a miss, so it misses one frequency
 *   update for a cold key.  Measured against memcached -m 64 (56,640 items
 *   of 1000 bytes, 566,400 keys, 0.5M + 1M requests) the hit ratio was
 *   0.7686 with B = 4, 0.7686 with B = 16 and 0.7685 with B = 64: a
 *   difference of 0.0001, negligible next to differences between policies.
 *   Sets of a window happen after its gets, a reordering of at most B
 *   requests.  -b 1 is exact.
 *
 * SCAN-HEAVY MIX
 *   --one-time F makes a fraction F of the requests one-hit wonders: keys
 *   never requested before nor after (numbered from K up), interleaved with
 *   the Zipf core, as a scan or a crawler mixes with real traffic.  They
 *   always miss and are set like any miss, so they compete for memory with
 *   the core; the core hit ratio (over the Zipf requests only) says how
 *   well a policy keeps the core through them.
 *
 * CALIBRATION
 *   --fill sets keys 0..K-1 once, in order, and prints the server's
 *   curr_items: how many items of this size the server holds at its -m.
 *   hitratio.sh uses it on memcached to size the key space to 10x that.
 *
 * BOUNDS (--bound C, no server)
 *   What any cache holding C items could reach on this very stream (same
 *   seed, same one-hit wonders, replayed one request at a time):
 *   - static: the C most popular keys held from the first request, the
 *     best any cache can do on an independent Zipf stream, knowing the
 *     ranks in advance;
 *   - lfu-exact: the best an online cache can hope for on it -- it counts
 *     every request since the stream began, of cached and evicted keys
 *     alike, holds the C keys with the highest counts (the least recently
 *     used among equals goes first), and a missed key replaces the lowest
 *     when its count is at least as high.  A real policy keeps no count
 *     for keys it does not hold (or a lossy sketch of them), so it does
 *     worse; on a stationary Zipf stream, ranking by the counts seen so
 *     far is what there is to learn.
 *   hitratio.sh prints both for the items memcached and the node's default
 *   policy held, so a policy's distance to what is possible is measured in
 *   the same run.
 *
 * It only ever connects to 127.0.0.1.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "bc_time.h"

#define WINDOW_MAX      1024u
#define VALUE_MAX       (1u << 20)
#define KEYS_MAX        50000000u
#define IO_TIMEOUT_SEC  10
#define LINE_MAX_LEN    1024u

typedef struct hr_config {
    uint16_t port;
    uint32_t keys;
    uint32_t value_size;
    double zipf_s;
    uint64_t requests;         /* measured */
    uint64_t warmup;           /* unrecorded prefix */
    uint32_t window;
    uint64_t seed;
    double one_time;           /* fraction of requests that are one-hit wonders */
    bool fill;
    uint32_t bound;            /* --bound C: simulate caches of C items, no server */
    const char *key_prefix;
    int key_digits;
} hr_config_t;

static hr_config_t g_cfg;

/* ------------------------------------------------------------------------ */
/* blocking buffered connection                                             */

typedef struct hr_conn {
    int fd;
    char *rbuf;                /* [rpos, rlen) unread */
    size_t rpos, rlen, rcap;
    char *wbuf;
    size_t wlen, wcap;
} hr_conn_t;

static _Noreturn void
die(const char *fmt, const char *detail)
{
    fprintf(stderr, "hitratio: ");
    fprintf(stderr, fmt, detail);
    fprintf(stderr, "\n");
    exit(1);
}

static void
conn_open(hr_conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(g_cfg.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "hitratio: cannot connect to 127.0.0.1:%u: %s\n", g_cfg.port,
                strerror(errno));
        exit(1);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* a server that stops answering ends the run instead of hanging it */
    struct timeval tv = { .tv_sec = IO_TIMEOUT_SEC, .tv_usec = 0 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c->rcap = 2 * ((size_t)g_cfg.value_size + LINE_MAX_LEN);
    if (c->rcap < 256 * 1024)
        c->rcap = 256 * 1024;
    c->wcap = (size_t)g_cfg.window * ((size_t)g_cfg.value_size + 300) + LINE_MAX_LEN;
    c->rbuf = malloc(c->rcap);
    c->wbuf = malloc(c->wcap);
    if (!c->rbuf || !c->wbuf)
        die("%s", "out of memory");
    c->rpos = c->rlen = c->wlen = 0;
}

static void
conn_close(hr_conn_t *c)
{
    close(c->fd);
    free(c->rbuf);
    free(c->wbuf);
}

static void
conn_flush(hr_conn_t *c)
{
    size_t off = 0;
    while (off < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + off, c->wlen - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("send failed: %s", n < 0 ? strerror(errno) : "closed");
        off += (size_t)n;
    }
    c->wlen = 0;
}

static void
conn_fill(hr_conn_t *c)
{
    if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    if (c->rlen == c->rcap)
        die("%s", "reply line too long");
    for (;;) {
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            die("%s", "server closed the connection");
        die("receive failed (server not answering?): %s", strerror(errno));
    }
}

/* Next reply line without its CRLF, NUL-terminated in place; valid until
 * the next read. */
static char *
conn_readline(hr_conn_t *c, size_t *len_out)
{
    for (;;) {
        char *base = c->rbuf + c->rpos;
        char *nl = memchr(base, '\n', c->rlen - c->rpos);
        if (nl != NULL) {
            size_t len = (size_t)(nl - base);
            if (len == 0 || base[len - 1] != '\r')
                die("%s", "malformed reply line (no CRLF)");
            base[len - 1] = '\0';
            c->rpos += len + 1;
            *len_out = len - 1;
            return base;
        }
        if (c->rlen - c->rpos > LINE_MAX_LEN)
            die("%s", "reply line too long");
        conn_fill(c);
    }
}

/* Consumes n bytes of value plus the CRLF after them (n fits the buffer:
 * the caller checked it is the value size this run stores). */
static void
conn_skip_value(hr_conn_t *c, size_t n)
{
    while (c->rlen - c->rpos < n + 2)
        conn_fill(c);
    if (c->rbuf[c->rpos + n] != '\r' || c->rbuf[c->rpos + n + 1] != '\n')
        die("%s", "value block not followed by CRLF");
    c->rpos += n + 2;
}

static void
conn_append(hr_conn_t *c, const char *data, size_t len)
{
    if (c->wlen + len > c->wcap)
        conn_flush(c);
    if (len > c->wcap)
        die("%s", "request larger than the write buffer");
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
}

/* ------------------------------------------------------------------------ */
/* Zipf stream                                                              */

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

typedef struct zipf {
    double *cdf;               /* cdf[i] = sum_{j<=i} 1/(j+1)^s (unnormalised) */
    uint32_t n;
    uint64_t rng;
} zipf_t;

static void
zipf_init(zipf_t *z, uint32_t n, double s, uint64_t seed)
{
    z->n = n;
    z->cdf = malloc((size_t)n * sizeof(double));
    if (!z->cdf)
        die("%s", "out of memory for the Zipf table");
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        sum += 1.0 / pow((double)i + 1.0, s);
        z->cdf[i] = sum;
    }
    /* splitmix64 of the seed: a non-zero, well-mixed xorshift state */
    uint64_t x = seed + 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    z->rng = x ? x : 1;
}

/* The next key: 0 is the most popular. */
static uint32_t
zipf_next(zipf_t *z)
{
    double u = (double)(rng_next(&z->rng) >> 11) * 0x1.0p-53 * z->cdf[z->n - 1];
    uint32_t lo = 0, hi = z->n - 1;
    while (lo < hi) {          /* first i with cdf[i] > u */
        uint32_t mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ------------------------------------------------------------------------ */
/* protocol                                                                 */

static int
key_format(char *buf, size_t cap, uint32_t key)
{
    return snprintf(buf, cap, "%s%0*" PRIu32, g_cfg.key_prefix, g_cfg.key_digits, key);
}

static void
request_get(hr_conn_t *c, uint32_t key)
{
    char line[300];
    int n = snprintf(line, sizeof(line), "get ");
    n += key_format(line + n, sizeof(line) - (size_t)n, key);
    line[n++] = '\r';
    line[n++] = '\n';
    conn_append(c, line, (size_t)n);
}

static void
request_set(hr_conn_t *c, uint32_t key, const char *value)
{
    char line[300];
    int n = snprintf(line, sizeof(line), "set ");
    n += key_format(line + n, sizeof(line) - (size_t)n, key);
    n += snprintf(line + n, sizeof(line) - (size_t)n, " 0 0 %" PRIu32 "\r\n", g_cfg.value_size);
    conn_append(c, line, (size_t)n);
    conn_append(c, value, g_cfg.value_size);
    conn_append(c, "\r\n", 2);
}

/*
 * Reads one get reply for key.  Returns true on a hit.  A value of the
 * wrong size or under another key is a hard error: it would mean the
 * stream is out of sync.
 */
static bool
reply_get(hr_conn_t *c, uint32_t key, uint64_t *errors)
{
    size_t len;
    char *line = conn_readline(c, &len);
    if (strcmp(line, "END") == 0)
        return false;
    if (strncmp(line, "VALUE ", 6) != 0) {
        if (strncmp(line, "SERVER_ERROR", 12) == 0 || strncmp(line, "CLIENT_ERROR", 12) == 0 ||
            strcmp(line, "ERROR") == 0) {
            (*errors)++;
            return false;
        }
        die("unexpected reply to get: '%s'", line);
    }
    char want[300];
    key_format(want, sizeof(want), key);
    char rkey[300];
    unsigned flags;
    unsigned long long bytes;
    if (len >= sizeof(rkey) ||
        sscanf(line, "VALUE %299s %u %llu", rkey, &flags, &bytes) != 3)
        die("malformed VALUE line: '%s'", line);
    if (strcmp(rkey, want) != 0)
        die("VALUE for another key: '%s'", line);
    if (bytes != g_cfg.value_size)
        die("VALUE of a size this run never stored: '%s'", line);
    conn_skip_value(c, (size_t)bytes);
    line = conn_readline(c, &len);
    if (strcmp(line, "END") != 0)
        die("expected END after VALUE, got '%s'", line);
    return true;
}

/* Reads one set reply; returns false on an error reply (counted). */
static bool
reply_set(hr_conn_t *c)
{
    size_t len;
    char *line = conn_readline(c, &len);
    if (strcmp(line, "STORED") == 0)
        return true;
    if (strncmp(line, "SERVER_ERROR", 12) == 0 || strncmp(line, "CLIENT_ERROR", 12) == 0 ||
        strcmp(line, "ERROR") == 0 || strcmp(line, "NOT_STORED") == 0)
        return false;
    die("unexpected reply to set: '%s'", line);
}

/* Reads "stats" and returns the value of one STAT (0 if absent). */
static uint64_t
server_stat(hr_conn_t *c, const char *name, uint64_t *second, const char *name2)
{
    conn_append(c, "stats\r\n", 7);
    conn_flush(c);
    uint64_t value = 0;
    size_t nl = strlen(name), nl2 = name2 ? strlen(name2) : 0;
    for (;;) {
        size_t len;
        char *line = conn_readline(c, &len);
        if (strcmp(line, "END") == 0)
            break;
        if (strncmp(line, "STAT ", 5) != 0)
            die("unexpected reply to stats: '%s'", line);
        const char *p = line + 5;
        if (strncmp(p, name, nl) == 0 && p[nl] == ' ')
            value = strtoull(p + nl + 1, NULL, 10);
        if (name2 && second && strncmp(p, name2, nl2) == 0 && p[nl2] == ' ')
            *second = strtoull(p + nl2 + 1, NULL, 10);
    }
    return value;
}

/* ------------------------------------------------------------------------ */

static void
usage(FILE *f)
{
    fprintf(f,
"usage: hitratio -p PORT [options]  |  hitratio --bound C [options]\n"
"Hit ratio of a memcached-protocol server (127.0.0.1) on a Zipf key stream:\n"
"get each key, set it on a miss.\n"
"  -p, --port PORT        server port (required)\n"
"  -k, --keys N           key space (default 500000)\n"
"  -v, --value-size N     value bytes (default 1000)\n"
"  -z, --zipf S           Zipf exponent (default 0.99)\n"
"  -n, --requests N       measured requests (default 2000000)\n"
"  -W, --warmup N         unrecorded requests first (default 1000000)\n"
"  -b, --window N         requests per round trip, 1 = exact (default 32)\n"
"  -s, --seed N           stream seed (default 42)\n"
"  -P, --key-prefix STR   key prefix (default \"hr:\")\n"
"  -o, --one-time F       a fraction F of requests are keys seen once (default 0)\n"
"      --fill             calibrate: set keys 0..N-1 once, report curr_items\n"
"      --bound C          no server: the static and exact-LFU bounds at C items\n"
"  -h, --help\n"
"Last output line: \"RESULT key=value ...\".\n");
}

static uint64_t
parse_u64_or_die(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] == '-' || s[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        fprintf(stderr, "hitratio: bad value for %s: '%s'\n", opt, s);
        usage(stderr);
        exit(2);
    }
    return v;
}

static void
parse_args(int argc, char **argv)
{
    enum { OPT_FILL = 1000, OPT_BOUND };
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"keys", required_argument, NULL, 'k'},
        {"value-size", required_argument, NULL, 'v'},
        {"zipf", required_argument, NULL, 'z'},
        {"requests", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'W'},
        {"window", required_argument, NULL, 'b'},
        {"seed", required_argument, NULL, 's'},
        {"key-prefix", required_argument, NULL, 'P'},
        {"one-time", required_argument, NULL, 'o'},
        {"fill", no_argument, NULL, OPT_FILL},
        {"bound", required_argument, NULL, OPT_BOUND},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    g_cfg = (hr_config_t){
        .keys = 500000, .value_size = 1000, .zipf_s = 0.99, .requests = 2000000,
        .warmup = 1000000, .window = 32, .seed = 42, .key_prefix = "hr:",
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "p:k:v:z:n:W:b:s:P:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p': g_cfg.port = (uint16_t)parse_u64_or_die("--port", optarg, 1, 65535); break;
        case 'k': g_cfg.keys = (uint32_t)parse_u64_or_die("--keys", optarg, 1, KEYS_MAX); break;
        case 'v':
            g_cfg.value_size = (uint32_t)parse_u64_or_die("--value-size", optarg, 1, VALUE_MAX);
            break;
        case 'z': {
            char *end;
            g_cfg.zipf_s = strtod(optarg, &end);
            if (*end != '\0' || !(g_cfg.zipf_s >= 0 && g_cfg.zipf_s <= 10)) {
                fprintf(stderr, "hitratio: bad value for --zipf: '%s'\n", optarg);
                exit(2);
            }
            break;
        }
        case 'n': g_cfg.requests = parse_u64_or_die("--requests", optarg, 1, UINT64_MAX / 2); break;
        case 'W': g_cfg.warmup = parse_u64_or_die("--warmup", optarg, 0, UINT64_MAX / 2); break;
        case 'b': g_cfg.window = (uint32_t)parse_u64_or_die("--window", optarg, 1, WINDOW_MAX); break;
        case 's': g_cfg.seed = parse_u64_or_die("--seed", optarg, 0, UINT64_MAX); break;
        case 'P': g_cfg.key_prefix = optarg; break;
        case 'o': {
            char *end;
            g_cfg.one_time = strtod(optarg, &end);
            if (*end != '\0' || !(g_cfg.one_time >= 0 && g_cfg.one_time < 1)) {
                fprintf(stderr, "hitratio: bad value for --one-time: '%s'\n", optarg);
                exit(2);
            }
            break;
        }
        case OPT_FILL: g_cfg.fill = true; break;
        case OPT_BOUND:
            g_cfg.bound = (uint32_t)parse_u64_or_die("--bound", optarg, 1, KEYS_MAX);
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || (g_cfg.port == 0) == (g_cfg.bound == 0)) {
        usage(stderr);
        exit(2);
    }
    for (const char *p = g_cfg.key_prefix; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            die("%s", "--key-prefix must not contain spaces or control characters");
    g_cfg.key_digits = 1;
    for (uint32_t k = g_cfg.keys - 1; k >= 10; k /= 10)
        g_cfg.key_digits++;
    if (strlen(g_cfg.key_prefix) + (size_t)g_cfg.key_digits > 250)
        die("%s", "keys would be longer than 250 bytes");
}

static int
run_fill(hr_conn_t *c, const char *value)
{
    double t0 = bc_time_mono_s();
    uint64_t errors = 0;
    for (uint32_t base = 0; base < g_cfg.keys; base += g_cfg.window) {
        uint32_t end = base + g_cfg.window < g_cfg.keys ? base + g_cfg.window : g_cfg.keys;
        for (uint32_t k = base; k < end; k++)
            request_set(c, k, value);
        conn_flush(c);
        for (uint32_t k = base; k < end; k++)
            if (!reply_set(c))
                errors++;
    }
    uint64_t evictions = 0;
    uint64_t items = server_stat(c, "curr_items", &evictions, "evictions");
    printf("fill: %" PRIu32 " sets of %" PRIu32 "-byte values in %.2f s, %" PRIu64
           " errors; server holds %" PRIu64 " items (%" PRIu64 " evictions)\n",
           g_cfg.keys, g_cfg.value_size, bc_time_mono_s() - t0, errors, items, evictions);
    printf("RESULT capacity=%" PRIu64 " evictions=%" PRIu64 " set_errors=%" PRIu64 "\n", items,
           evictions, errors);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* bounds (see BOUNDS above)                                                */

/* The exact-count LFU's cache: a binary min-heap of the held keys ordered
 * by (count, last request), so the root is the one to replace. */
typedef struct lfu_exact {
    uint32_t *count;           /* per key: requests seen so far */
    uint64_t *last;            /* per key: index of its last request */
    uint32_t *pos;             /* per key: its heap slot, UINT32_MAX if not held */
    uint32_t *heap;
    uint32_t size, cap;
} lfu_exact_t;

static bool
lfu_less(const lfu_exact_t *l, uint32_t a, uint32_t b)
{
    return l->count[a] != l->count[b] ? l->count[a] < l->count[b] : l->last[a] < l->last[b];
}

static void
lfu_swap(lfu_exact_t *l, uint32_t i, uint32_t j)
{
    uint32_t t = l->heap[i];
    l->heap[i] = l->heap[j];
    l->heap[j] = t;
    l->pos[l->heap[i]] = i;
    l->pos[l->heap[j]] = j;
}

static void
lfu_sift_down(lfu_exact_t *l, uint32_t i)
{
    for (;;) {
        uint32_t least = i, a = 2 * i + 1, b = 2 * i + 2;
        if (a < l->size && lfu_less(l, l->heap[a], l->heap[least]))
            least = a;
        if (b < l->size && lfu_less(l, l->heap[b], l->heap[least]))
            least = b;
        if (least == i)
            return;
        lfu_swap(l, i, least);
        i = least;
    }
}

static void
lfu_sift_up(lfu_exact_t *l, uint32_t i)
{
    while (i > 0 && lfu_less(l, l->heap[i], l->heap[(i - 1) / 2])) {
        lfu_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

/* One request for key k at index r; returns whether k was held. */
static bool
lfu_request(lfu_exact_t *l, uint32_t k, uint64_t r)
{
    bool held = l->pos[k] != UINT32_MAX;
    l->count[k]++;
    l->last[k] = r;
    if (held) {
        lfu_sift_down(l, l->pos[k]);       /* its key only grew */
    } else if (l->size < l->cap) {
        l->heap[l->size] = k;
        l->pos[k] = l->size++;
        lfu_sift_up(l, l->pos[k]);
    } else if (!lfu_less(l, k, l->heap[0])) {
        l->pos[l->heap[0]] = UINT32_MAX;
        l->heap[0] = k;
        l->pos[k] = 0;
        lfu_sift_down(l, 0);
    }
    return held;
}

static int
run_bound(void)
{
    zipf_t z;
    zipf_init(&z, g_cfg.keys, g_cfg.zipf_s, g_cfg.seed);
    uint64_t mix_rng = g_cfg.seed * 0x9E3779B97F4A7C15ull + 1;
    uint64_t one_time_limit = (uint64_t)(g_cfg.one_time * 0x1.0p53);
    uint64_t total = g_cfg.warmup + g_cfg.requests;
    /* one-hit wonders are numbered from keys up, at most one per request */
    uint64_t ids = (uint64_t)g_cfg.keys + (one_time_limit > 0 ? total : 0);
    if (ids >= UINT32_MAX)
        die("%s", "--bound: too many keys and requests");
    lfu_exact_t l = {
        .count = calloc(ids, sizeof(uint32_t)), .last = calloc(ids, sizeof(uint64_t)),
        .pos = malloc(ids * sizeof(uint32_t)), .heap = malloc((size_t)g_cfg.bound * sizeof(uint32_t)),
        .cap = g_cfg.bound,
    };
    if (!l.count || !l.last || !l.pos || !l.heap)
        die("%s", "out of memory for the bound");
    memset(l.pos, 0xff, ids * sizeof(uint32_t));
    uint32_t next_once = g_cfg.keys;
    uint64_t gets = 0, core_gets = 0, static_hits = 0, lfu_hits = 0, lfu_core_hits = 0;
    for (uint64_t r = 0; r < total; r++) {
        bool once = one_time_limit > 0 && (rng_next(&mix_rng) >> 11) < one_time_limit &&
                    next_once < UINT32_MAX;
        uint32_t k = once ? next_once++ : zipf_next(&z);
        bool lfu_hit = lfu_request(&l, k, r);
        if (r < g_cfg.warmup)
            continue;
        gets++;
        lfu_hits += lfu_hit;
        if (k < g_cfg.keys) {
            core_gets++;
            lfu_core_hits += lfu_hit;
            static_hits += k < g_cfg.bound;    /* key k is rank k + 1 */
        }
    }
    printf("RESULT capacity=%" PRIu32 " static_hit_ratio=%.4f static_core_hit_ratio=%.4f"
           " lfu_exact_hit_ratio=%.4f lfu_exact_core_hit_ratio=%.4f\n",
           g_cfg.bound, (double)static_hits / (double)gets,
           core_gets ? (double)static_hits / (double)core_gets : 0,
           (double)lfu_hits / (double)gets,
           core_gets ? (double)lfu_core_hits / (double)core_gets : 0);
    free(l.count);
    free(l.last);
    free(l.pos);
    free(l.heap);
    free(z.cdf);
    return 0;
}

int
main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (g_cfg.bound)
        return run_bound();
    char *value = malloc(g_cfg.value_size);
    if (!value)
        die("%s", "out of memory");
    for (uint32_t i = 0; i < g_cfg.value_size; i++)
        value[i] = (char)('a' + i % 26);

    hr_conn_t conn;
    conn_open(&conn);
    if (g_cfg.fill) {
        int rc = run_fill(&conn, value);
        conn_close(&conn);
        free(value);
        return rc;
    }

    zipf_t z;
    zipf_init(&z, g_cfg.keys, g_cfg.zipf_s, g_cfg.seed);
    printf("hitratio: 127.0.0.1:%u keys=%" PRIu32 " value=%" PRIu32 " zipf=%.2f window=%" PRIu32
           " warmup=%" PRIu64 " requests=%" PRIu64 " seed=%" PRIu64 " one_time=%.2f\n",
           g_cfg.port, g_cfg.keys, g_cfg.value_size, g_cfg.zipf_s, g_cfg.window, g_cfg.warmup,
           g_cfg.requests, g_cfg.seed, g_cfg.one_time);
    /* one-time keys: their own seeded decision stream, numbered from keys */
    uint64_t mix_rng = g_cfg.seed * 0x9E3779B97F4A7C15ull + 1;
    uint64_t one_time_limit = (uint64_t)(g_cfg.one_time * 0x1.0p53);
    uint32_t next_once = g_cfg.keys;
    uint64_t core_gets = 0, core_hits = 0;
    fflush(stdout);

    uint32_t keys[WINDOW_MAX];
    bool hit[WINDOW_MAX], stored[WINDOW_MAX];
    uint64_t total = g_cfg.warmup + g_cfg.requests;
    uint64_t hits = 0, gets = 0, sets = 0, set_errors = 0, get_errors = 0;
    double t0 = bc_time_mono_s();
    for (uint64_t done = 0; done < total;) {
        uint32_t n = total - done < g_cfg.window ? (uint32_t)(total - done) : g_cfg.window;
        for (uint32_t i = 0; i < n; i++) {
            bool once = one_time_limit > 0 && (rng_next(&mix_rng) >> 11) < one_time_limit &&
                        next_once < UINT32_MAX;
            keys[i] = once ? next_once++ : zipf_next(&z);
            request_get(&conn, keys[i]);
        }
        conn_flush(&conn);
        for (uint32_t i = 0; i < n; i++)
            hit[i] = reply_get(&conn, keys[i], &get_errors);
        /* repeats within the window: see BEHAVIOR above */
        uint32_t nsets = 0;
        for (uint32_t i = 0; i < n; i++) {
            bool repeat = false;
            for (uint32_t j = 0; j < i; j++) {
                if (keys[j] == keys[i]) {
                    repeat = true;
                    break;
                }
            }
            stored[i] = false;
            if (repeat) {
                hit[i] = true;
            } else if (!hit[i]) {
                request_set(&conn, keys[i], value);
                stored[i] = true;
                nsets++;
            }
        }
        conn_flush(&conn);
        for (uint32_t i = 0; i < nsets; i++)
            if (!reply_set(&conn))
                set_errors++;
        for (uint32_t i = 0; i < n; i++, done++) {
            if (done < g_cfg.warmup)
                continue;
            gets++;
            hits += hit[i];
            sets += stored[i];
            if (keys[i] < g_cfg.keys) {
                core_gets++;
                core_hits += hit[i];
            }
        }
    }
    double secs = bc_time_mono_s() - t0;
    uint64_t evictions = 0;
    uint64_t items = server_stat(&conn, "curr_items", &evictions, "evictions");
    double ratio = gets ? (double)hits / (double)gets : 0;
    printf("hits: %" PRIu64 " of %" PRIu64 " gets = %.2f%% (sets %" PRIu64 ", set errors %" PRIu64
           ", get errors %" PRIu64 ") in %.1f s\n",
           hits, gets, 100.0 * ratio, sets, set_errors, get_errors, secs);
    printf("server: curr_items=%" PRIu64 " evictions=%" PRIu64 "\n", items, evictions);
    double core_ratio = core_gets ? (double)core_hits / (double)core_gets : 0;
    if (g_cfg.one_time > 0) {
        printf("core (Zipf keys only): %" PRIu64 " hits of %" PRIu64 " = %.2f%%\n", core_hits,
               core_gets, 100.0 * core_ratio);
    }
    printf("RESULT hit_ratio=%.4f hits=%" PRIu64 " gets=%" PRIu64 " sets=%" PRIu64
           " set_errors=%" PRIu64 " get_errors=%" PRIu64 " curr_items=%" PRIu64
           " evictions=%" PRIu64 " secs=%.1f core_hit_ratio=%.4f\n",
           ratio, hits, gets, sets, set_errors, get_errors, items, evictions, secs, core_ratio);
    conn_close(&conn);
    free(z.cdf);
    free(value);
    return 0;
}
