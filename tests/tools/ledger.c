/*
 * ledger.c -- bucketcache_ledger: writes through libbucketcache (routed by
 * the c table, as a real application does), records the outcome of every
 * write, and once told to check, reads everything back and counts what the
 * cluster lost.  The fault tests (tests/integration/test_multihost.py) run
 * it while they cut links and kill processes.
 *
 *   bucketcache_ledger --zk HOSTS --cluster NAME [--threads 4] [--keys 64]
 *       [--counters 4] [--rate 200] [--timeout 2000] [--value-size 48]
 *       [--report-ms 500] [--check-timeout 30000] [--details 20] [--journal FILE]
 *
 * Each thread owns its keys, so it knows, for each, the sequence of writes
 * it made and how each ended:
 *
 *   o<t>-<k>  overwrite keys: sets with increasing versions, now and then a
 *             delete;
 *   w<t>-<n>  write-once keys: one set each, never touched again;
 *   c<t>-<k>  counters: set to 0, then incremented by 1.
 *
 * An outcome is ACKNOWLEDGED when the library returned OK (for a delete,
 * also NOT_FOUND: the key is absent either way) and UNKNOWN for every
 * error (a timeout, a lost connection, a refusal: the write may or may not
 * have landed).  A tenth of the operations are reads of the thread's own
 * overwrite keys: a read that returns an older state than the thread's last
 * acknowledged write to that key is STALE.
 *
 * Commands on stdin: "check" (or end of input) stops the writers, makes a
 * fresh client and reads every key back.  A key's state then is
 *   fine   the state its last acknowledged write left, or that of a later
 *          write whose outcome is unknown;
 *   LOST   an older state, or absent: the acknowledged writes after the
 *          state found are counted as lost (a counter read back 37 after
 *          59 acknowledged increments lost 22);
 *   WRONG  a value this ledger never wrote to that key.
 * Keys that cannot be read within --check-timeout are UNREADABLE.  An
 * acknowledged overwrite that was lost and then overwritten again cannot
 * show at the check; the reads while writing (STALE) catch some of those.
 *
 * Output (stdout): a JSON progress line every --report-ms while writing;
 * after the check a block of "ledger:" lines with the figures and the first
 * --details lost or wrong keys (their bucket, the group that acknowledged
 * them and when, in the UTC format of the node logs), then one JSON line
 * with "final":true.  --journal writes one line per operation to FILE:
 * "<UTC time> <key> <set|del|once|incr|get> v<version or result> <ack|unknown|code> <primary>",
 * to follow a lost key through the node logs.
 * Exits 0 when nothing was lost or wrong, 1 otherwise,
 * 2 on bad arguments or no cluster.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bucketcache.h"

#define MAX_GROUPS 64
#define NCODES 17
#define MAX_ADDRS 64

enum { OP_SET = 1, OP_DEL = 2 };
enum { OUT_ACK = 1, OUT_UNKNOWN = 2 };

/* One write to an overwrite key. */
typedef struct op {
    uint64_t ver;          /* the thread's version counter: unique per thread */
    int64_t wall_us;       /* when its outcome was known (UTC) */
    uint16_t group;        /* group the key was routed to then */
    uint8_t addr;          /* and its primary (index in g.addrs) */
    uint8_t kind;          /* OP_SET / OP_DEL */
    uint8_t outcome;       /* OUT_ACK / OUT_UNKNOWN */
} op_t;

typedef struct okey {
    op_t *ops;
    size_t n, cap;
} okey_t;

/* One write-once key. */
typedef struct wkey {
    int64_t wall_us;
    uint16_t group;
    uint8_t addr;
    uint8_t outcome;
} wkey_t;

typedef struct counter {
    bool ready;            /* its initial set was acknowledged */
    bool vanished;         /* an incr found no key after that */
    uint64_t acked_max;    /* highest result an acknowledged incr returned */
    uint64_t acked;        /* acknowledged increments */
    uint64_t unknown_after;/* increments of unknown outcome since acked_max */
    uint64_t unknown_total;
    uint64_t last_result;  /* what the last acknowledged incr returned */
    uint64_t regressions;  /* acknowledged results not above the one before: rollbacks */
    int64_t wall_us;       /* when acked_max was returned */
    uint16_t group;
    uint8_t addr;
} counter_t;

typedef struct thread_state {
    int t;
    uint64_t version;
    okey_t *okeys;
    wkey_t *wkeys;
    size_t nw, wcap;
    counter_t *counters;
    pthread_t th;
} thread_state_t;

static struct {
    const char *zk, *cluster;
    int threads, keys, counters, rate, timeout_ms, value_size, report_ms, check_timeout_ms,
        details;
    bc_client_t *client;
    thread_state_t *ts;
    atomic_int stop;
    /* progress, read by the reporter while the writers run */
    atomic_uint_fast64_t attempts, acked, unknown, reads, stale_reads, wrong_reads;
    atomic_uint_fast64_t codes[NCODES];
    /* per group: the last acknowledgement and the longest time without one */
    _Atomic int64_t last_ack_us[MAX_GROUPS];
    _Atomic int64_t max_gap_us[MAX_GROUPS];
    _Atomic int64_t max_gap_end_wall_us[MAX_GROUPS];
    /* the primaries' addresses seen, interned: index 0 = unknown */
    pthread_mutex_t addrs_mu;
    char addrs[MAX_ADDRS][48];
    int naddrs;
    FILE *journal;
    pthread_mutex_t journal_mu;
} g;

static int64_t
wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* "2026-11-21T23:06:21.123Z", the node logs' format. */
static const char *
fmt_time(int64_t us, char *buf, size_t len)
{
    if (us == 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(us % 1000000 / 1000));
    return buf;
}

static void
count_code(int rc)
{
    int i = -rc;
    if (i <= 0 || i >= NCODES) i = 0;
    atomic_fetch_add(&g.codes[i], 1);
}

/* The group key is routed to now, and (*addr) its primary's address as an
 * index in g.addrs: who most likely answered the call just made. */
static uint16_t
route_of(const char *key, size_t klen, uint8_t *addr)
{
    uint32_t bucket = 0, group = 0;
    char a[48] = "";
    *addr = 0;
    if (bc_client_locate(g.client, key, klen, &bucket, &group, a, sizeof(a)) != BC_CLIENT_OK) return 0;
    pthread_mutex_lock(&g.addrs_mu);
    if (g.naddrs == 0) snprintf(g.addrs[g.naddrs++], sizeof(g.addrs[0]), "?");
    for (int i = 1; i < g.naddrs; i++) {
        if (strcmp(g.addrs[i], a) == 0) {
            *addr = (uint8_t)i;
            break;
        }
    }
    if (*addr == 0 && a[0] && g.naddrs < MAX_ADDRS) {
        snprintf(g.addrs[g.naddrs], sizeof(g.addrs[0]), "%s", a);
        *addr = (uint8_t)g.naddrs++;
    }
    pthread_mutex_unlock(&g.addrs_mu);
    return (uint16_t)(group < MAX_GROUPS ? group : 0);
}

static const char *
addr_name(uint8_t i)
{
    return i > 0 && i < g.naddrs ? g.addrs[i] : "?";
}

static const char *fmt_time(int64_t us, char *buf, size_t len);

/* One line of the journal (when --journal is given). */
static void
journal(int64_t wall, const char *key, const char *what, uint64_t ver, int rc, uint8_t addr)
{
    if (!g.journal) return;
    char tb[40];
    pthread_mutex_lock(&g.journal_mu);
    fprintf(g.journal, "%s %s %s v%" PRIu64 " %s %s\n", fmt_time(wall, tb, sizeof(tb)), key, what,
            ver, rc == BC_CLIENT_OK ? "ack" : rc == 1 ? "unknown" : bc_strerror(rc), addr_name(addr));
    pthread_mutex_unlock(&g.journal_mu);
}

/* An acknowledgement by group at monotonic now_us, wall time wall. */
static void
note_ack(uint16_t group, int64_t now_us, int64_t wall)
{
    int64_t last = atomic_exchange(&g.last_ack_us[group], now_us);
    if (last != 0 && now_us - last > atomic_load(&g.max_gap_us[group])) {
        atomic_store(&g.max_gap_us[group], now_us - last);
        atomic_store(&g.max_gap_end_wall_us[group], wall);
    }
    atomic_fetch_add(&g.acked, 1);
}

/* The value of version ver of key: "<key>|<ver>|" then letters that
 * depend on both, up to value_size bytes. */
static size_t
make_value(char *buf, size_t cap, const char *key, uint64_t ver)
{
    int n = snprintf(buf, cap, "%s|%" PRIu64 "|", key, ver);
    size_t len = (size_t)n;
    uint64_t x = ver * 0x9E3779B97F4A7C15u + (uint64_t)len;
    while (len < (size_t)g.value_size && len + 1 < cap) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[len++] = (char)('a' + x % 26);
    }
    buf[len] = '\0';
    return len;
}

/* The version a value read for key holds; 0 when it is not a value this
 * ledger made for that key (wrong). */
static uint64_t
parse_value(const char *key, const char *v, size_t vlen)
{
    size_t klen = strlen(key);
    if (vlen <= klen + 1 || memcmp(v, key, klen) != 0 || v[klen] != '|') return 0;
    uint64_t ver = 0;
    size_t i = klen + 1;
    for (; i < vlen && v[i] >= '0' && v[i] <= '9'; i++) ver = ver * 10 + (uint64_t)(v[i] - '0');
    if (ver == 0) return 0;
    char want[4200];
    size_t n = make_value(want, sizeof(want), key, ver);
    return n == vlen && memcmp(want, v, n) == 0 ? ver : 0;
}

static void
push_op(okey_t *k, op_t op)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 16;
        k->ops = realloc(k->ops, k->cap * sizeof(op_t));
        if (!k->ops) abort();
    }
    k->ops[k->n++] = op;
}

/* Index of the last acknowledged op of k, -1 when none. */
static long
last_ack(const okey_t *k)
{
    for (long i = (long)k->n - 1; i >= 0; i--)
        if (k->ops[i].outcome == OUT_ACK) return i;
    return -1;
}

/* ver 0 = absent.  Whether that state is acceptable for k now: the state
 * of its last acknowledged op, or of any op after it (unknown outcome). */
static bool
state_ok(const okey_t *k, uint64_t ver)
{
    long a = last_ack(k);
    if (a < 0 && ver == 0) return true;     /* never acknowledged: absent is fine */
    for (long i = a < 0 ? 0 : a; i < (long)k->n; i++) {
        uint64_t s = k->ops[i].kind == OP_SET ? k->ops[i].ver : 0;
        if (s == ver) return true;
    }
    return false;
}

static bool
ever_set(const okey_t *k, uint64_t ver)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->ops[i].kind == OP_SET && k->ops[i].ver == ver) return true;
    return false;
}

static void
pace(int64_t *next_us)
{
    if (g.rate <= 0) return;
    *next_us += 1000000 / g.rate;
    int64_t now = mono_us();
    if (*next_us > now) usleep((useconds_t)(*next_us - now));
    else if (now - *next_us > 1000000) *next_us = now;   /* do not burst after a stall */
}

static void
do_overwrite(thread_state_t *s, int k)
{
    char key[64], value[4200];
    size_t klen = (size_t)snprintf(key, sizeof(key), "o%d-%d", s->t, k);
    okey_t *ok = &s->okeys[k];
    long a = last_ack(ok);
    bool present = a >= 0 && ok->ops[a].kind == OP_SET && a == (long)ok->n - 1;
    op_t op = {.ver = ++s->version, .kind = OP_SET};
    int rc;
    atomic_fetch_add(&g.attempts, 1);
    if (present && op.ver % 5 == 0) {
        op.kind = OP_DEL;
        rc = bc_client_delete(g.client, key, klen, g.timeout_ms);
        if (rc == BC_CLIENT_ENOTFOUND) {
            /* absent although the last acknowledged write set it: seen lost */
            atomic_fetch_add(&g.stale_reads, 1);
            rc = BC_CLIENT_OK;
        }
    } else {
        size_t vlen = make_value(value, sizeof(value), key, op.ver);
        rc = bc_client_set(g.client, key, klen, value, vlen, 0, 0, g.timeout_ms);
    }
    op.wall_us = wall_us();
    op.group = route_of(key, klen, &op.addr);
    journal(op.wall_us, key, op.kind == OP_SET ? "set" : "del", op.ver, rc, op.addr);
    if (rc == BC_CLIENT_OK) {
        op.outcome = OUT_ACK;
        note_ack(op.group, mono_us(), op.wall_us);
    } else {
        op.outcome = OUT_UNKNOWN;
        count_code(rc);
        atomic_fetch_add(&g.unknown, 1);
    }
    push_op(ok, op);
}

static void
do_read(thread_state_t *s, int k)
{
    char key[64];
    size_t klen = (size_t)snprintf(key, sizeof(key), "o%d-%d", s->t, k);
    okey_t *ok = &s->okeys[k];
    void *v;
    size_t vlen;
    int rc = bc_client_get(g.client, key, klen, g.timeout_ms, &v, &vlen, NULL);
    atomic_fetch_add(&g.reads, 1);
    uint64_t ver;
    if (g.journal) {
        uint8_t addr;
        route_of(key, klen, &addr);
        journal(wall_us(), key, "get", rc == BC_CLIENT_OK ? parse_value(key, v, vlen) : 0, rc, addr);
    }
    if (rc == BC_CLIENT_OK) {
        ver = parse_value(key, v, vlen);
        bc_client_free(v);
        if (ver == 0 || !ever_set(ok, ver)) {
            atomic_fetch_add(&g.wrong_reads, 1);
            return;
        }
    } else if (rc == BC_CLIENT_ENOTFOUND) {
        ver = 0;
    } else {
        count_code(rc);
        return;
    }
    if (!state_ok(ok, ver)) atomic_fetch_add(&g.stale_reads, 1);
}

static void
do_write_once(thread_state_t *s)
{
    char key[64], value[4200];
    if (s->nw == s->wcap) {
        s->wcap = s->wcap ? 2 * s->wcap : 1024;
        s->wkeys = realloc(s->wkeys, s->wcap * sizeof(wkey_t));
        if (!s->wkeys) abort();
    }
    size_t n = s->nw++;
    size_t klen = (size_t)snprintf(key, sizeof(key), "w%d-%zu", s->t, n);
    size_t vlen = make_value(value, sizeof(value), key, 1);
    atomic_fetch_add(&g.attempts, 1);
    int rc = bc_client_set(g.client, key, klen, value, vlen, 0, 0, g.timeout_ms);
    wkey_t *w = &s->wkeys[n];
    w->wall_us = wall_us();
    w->group = route_of(key, klen, &w->addr);
    journal(w->wall_us, key, "once", 1, rc, w->addr);
    if (rc == BC_CLIENT_OK) {
        w->outcome = OUT_ACK;
        note_ack(w->group, mono_us(), w->wall_us);
    } else {
        w->outcome = OUT_UNKNOWN;
        count_code(rc);
        atomic_fetch_add(&g.unknown, 1);
    }
}

static void
do_counter(thread_state_t *s, int k)
{
    char key[64];
    size_t klen = (size_t)snprintf(key, sizeof(key), "c%d-%d", s->t, k);
    counter_t *c = &s->counters[k];
    if (c->vanished) return;
    atomic_fetch_add(&g.attempts, 1);
    if (!c->ready) {
        /* before the first increment: set it until that is acknowledged */
        int rc = bc_client_set(g.client, key, klen, "0", 1, 0, 0, g.timeout_ms);
        if (g.journal) {
            uint8_t addr;
            route_of(key, klen, &addr);
            journal(wall_us(), key, "set", 0, rc, addr);
        }
        if (rc == BC_CLIENT_OK) {
            c->ready = true;
            c->wall_us = wall_us();
            c->group = route_of(key, klen, &c->addr);
            note_ack(c->group, mono_us(), c->wall_us);
        } else {
            count_code(rc);
            atomic_fetch_add(&g.unknown, 1);
        }
        return;
    }
    uint64_t result = 0;
    int rc = bc_client_incr(g.client, key, klen, 1, &result, g.timeout_ms);
    if (g.journal) {
        uint8_t addr;
        route_of(key, klen, &addr);
        journal(wall_us(), key, "incr", result, rc, addr);
    }
    if (rc == BC_CLIENT_OK) {
        int64_t now = wall_us();
        uint8_t addr;
        uint16_t group = route_of(key, klen, &addr);
        if (c->acked > 0 && result <= c->last_result) c->regressions++;
        c->last_result = result;
        if (result > c->acked_max || c->acked == 0) {
            c->acked_max = result;
            c->unknown_after = 0;
            c->wall_us = now;
            c->group = group;
            c->addr = addr;
        }
        c->acked++;
        note_ack(group, mono_us(), now);
    } else if (rc == BC_CLIENT_ENOTFOUND) {
        c->vanished = true;            /* acknowledged, then gone: lost (counted at the check) */
        atomic_fetch_add(&g.stale_reads, 1);
    } else {
        c->unknown_after++;
        c->unknown_total++;
        count_code(rc);
        atomic_fetch_add(&g.unknown, 1);
    }
}

static void *
writer(void *arg)
{
    thread_state_t *s = arg;
    uint64_t x = 0x2545F4914F6CDD1Du ^ (uint64_t)(s->t + 1) * 0x9E3779B97F4A7C15u;
    int64_t next = mono_us();
    while (!atomic_load(&g.stop)) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned r = (unsigned)(x % 100);
        if (r < 45) do_overwrite(s, (int)((x >> 33) % (uint64_t)g.keys));
        else if (r < 70) do_write_once(s);
        else if (r < 90 && g.counters > 0) do_counter(s, (int)((x >> 33) % (uint64_t)g.counters));
        else do_read(s, (int)((x >> 33) % (uint64_t)g.keys));
        pace(&next);
    }
    return NULL;
}

static void
print_progress(double t, bool final)
{
    char buf[64];
    printf("{\"t\":%.2f,\"attempts\":%" PRIuFAST64 ",\"acked\":%" PRIuFAST64 ",\"unknown\":%" PRIuFAST64
           ",\"reads\":%" PRIuFAST64 ",\"stale_reads\":%" PRIuFAST64 ",\"wrong_reads\":%" PRIuFAST64
           ",\"errors\":{",
           t, atomic_load(&g.attempts), atomic_load(&g.acked), atomic_load(&g.unknown),
           atomic_load(&g.reads), atomic_load(&g.stale_reads), atomic_load(&g.wrong_reads));
    bool first = true;
    for (int i = 0; i < NCODES; i++) {
        uint64_t n = atomic_load(&g.codes[i]);
        if (n == 0) continue;
        printf("%s\"%s\":%" PRIu64, first ? "" : ",", i ? bc_strerror(-i) : "other", n);
        first = false;
    }
    printf("},\"max_gap_ms\":{");
    first = true;
    for (int i = 1; i < MAX_GROUPS; i++) {
        if (atomic_load(&g.last_ack_us[i]) == 0) continue;
        printf("%s\"%d\":[%" PRId64 ",\"%s\"]", first ? "" : ",", i, atomic_load(&g.max_gap_us[i]) / 1000,
               fmt_time(atomic_load(&g.max_gap_end_wall_us[i]), buf, sizeof(buf)));
        first = false;
    }
    printf("}%s}\n", final ? ",\"writing_done\":true" : "");
    fflush(stdout);
}

static void *
stdin_reader(void *arg)
{
    (void)arg;
    char line[256];
    while (fgets(line, sizeof(line), stdin)) {
        if (strncmp(line, "check", 5) == 0) break;
    }
    atomic_store(&g.stop, 1);
    return NULL;
}

/* ---- the check ---- */

typedef struct figures {
    uint64_t acked, unknown;
    uint64_t acked_sets, acked_deletes, acked_once, acked_incrs;
    uint64_t lost, lost_sets, lost_deletes, lost_once, lost_incrs;
    uint64_t lost_keys, wrong, unreadable, keys;
    uint64_t lost_by_group[MAX_GROUPS];
    uint64_t lost_bytes;   /* about what the lost writes took in the replication stream */
    int64_t lost_first_us, lost_last_us;
    int details;
} figures_t;

/* The size of a stream record (common/bc_frame.h: a frame header, then
 * the key, value and a few small fields), near enough to compare a loss
 * with the async lag bound. */
#define RECORD_OVERHEAD 24

static void
note_lost(figures_t *f, uint64_t n, uint16_t group, int64_t when, uint64_t record_bytes)
{
    f->lost += n;
    f->lost_bytes += n * record_bytes;
    f->lost_by_group[group < MAX_GROUPS ? group : 0] += n;
    if (f->lost_first_us == 0 || when < f->lost_first_us) f->lost_first_us = when;
    if (when > f->lost_last_us) f->lost_last_us = when;
}

static void
detail(figures_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
detail(figures_t *f, const char *fmt, ...)
{
    if (f->details-- <= 0) return;
    va_list ap;
    va_start(ap, fmt);
    printf("ledger:   ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* A key to read back, and where its answer goes. */
typedef struct probe {
    char key[64];
    int status;            /* 1 = answered */
    bool found;
    char *value;
    size_t vlen;
} probe_t;

/* Reads every probe, retrying errors until the deadline. */
static void
read_all(bc_client_t *c, probe_t *p, size_t n, int64_t deadline_us)
{
    enum { BATCH = 64 };
    for (;;) {
        size_t left = 0;
        for (size_t i = 0; i < n; i += BATCH) {
            const void *keys[BATCH];
            size_t klens[BATCH], idx[BATCH], m = 0;
            for (size_t j = i; j < n && j < i + BATCH; j++) {
                if (p[j].status) continue;
                idx[m] = j;
                keys[m] = p[j].key;
                klens[m++] = strlen(p[j].key);
            }
            if (m == 0) continue;
            bc_client_item_t items[BATCH];
            bc_client_mget(c, m, keys, klens, g.timeout_ms, items);
            for (size_t j = 0; j < m; j++) {
                probe_t *q = &p[idx[j]];
                if (items[j].status == BC_CLIENT_OK) {
                    q->status = 1;
                    q->found = true;
                    q->vlen = items[j].vlen;
                    q->value = malloc(q->vlen + 1);
                    if (!q->value) abort();
                    memcpy(q->value, items[j].value, q->vlen + 1);
                } else if (items[j].status == BC_CLIENT_ENOTFOUND) {
                    q->status = 1;
                } else {
                    left++;
                }
            }
            bc_client_items_free(items, m);
        }
        if (left == 0 || mono_us() > deadline_us) return;
        usleep(200000);
    }
}

static int
check(void)
{
    bc_client_options_t opts;
    bc_client_options_init(&opts);
    opts.zk_hosts = g.zk;
    opts.cluster = g.cluster;
    opts.timeout_ms = g.timeout_ms;
    bc_client_t *c = NULL;
    int64_t deadline = mono_us() + (int64_t)g.check_timeout_ms * 1000;
    int rc;
    while ((rc = bc_client_create(&opts, &c)) != BC_CLIENT_OK) {
        if (mono_us() > deadline) {
            fprintf(stderr, "ledger: no client for the check: %s\n", bc_strerror(rc));
            return 2;
        }
        sleep(1);
    }
    figures_t f = {.details = g.details};
    char tb[2][64];

    /* every key of every thread, in one array */
    size_t n = 0;
    for (int t = 0; t < g.threads; t++) n += (size_t)g.keys + (size_t)g.counters + g.ts[t].nw;
    probe_t *p = calloc(n ? n : 1, sizeof(*p));
    if (!p) abort();
    size_t i = 0;
    for (int t = 0; t < g.threads; t++) {
        for (int k = 0; k < g.keys; k++) snprintf(p[i++].key, 64, "o%d-%d", t, k);
        for (int k = 0; k < g.counters; k++) snprintf(p[i++].key, 64, "c%d-%d", t, k);
        for (size_t k = 0; k < g.ts[t].nw; k++) snprintf(p[i++].key, 64, "w%d-%zu", t, k);
    }
    read_all(c, p, n, deadline);
    f.keys = n;

    printf("ledger: ---- lost or wrong keys (first %d) ----\n", g.details);
    i = 0;
    for (int t = 0; t < g.threads; t++) {
        thread_state_t *s = &g.ts[t];
        for (int k = 0; k < g.keys; k++) {
            probe_t *q = &p[i++];
            okey_t *ok = &s->okeys[k];
            for (size_t j = 0; j < ok->n; j++) {
                if (ok->ops[j].outcome == OUT_ACK) {
                    f.acked++;
                    if (ok->ops[j].kind == OP_SET) f.acked_sets++;
                    else f.acked_deletes++;
                } else {
                    f.unknown++;
                }
            }
            if (!q->status) {
                f.unreadable++;
                continue;
            }
            uint64_t ver = q->found ? parse_value(q->key, q->value, q->vlen) : 0;
            if (q->found && (ver == 0 || !ever_set(ok, ver))) {
                f.wrong++;
                detail(&f, "WRONG %s: %.60s", q->key, q->value);
                continue;
            }
            if (state_ok(ok, ver)) continue;
            /* lost: the acknowledged ops after the latest one explaining
             * the state found */
            long a = last_ack(ok), from = -1;
            for (long j = a; j >= 0; j--) {
                uint64_t st = ok->ops[j].kind == OP_SET ? ok->ops[j].ver : 0;
                if (st == ver) {
                    from = j;
                    break;
                }
            }
            uint64_t nlost = 0;
            for (long j = from + 1; j <= a; j++) {
                if (ok->ops[j].outcome != OUT_ACK) continue;
                nlost++;
                if (ok->ops[j].kind == OP_SET) f.lost_sets++;
                else f.lost_deletes++;
                note_lost(&f, 1, ok->ops[j].group, ok->ops[j].wall_us,
                          strlen(q->key) + RECORD_OVERHEAD +
                          (ok->ops[j].kind == OP_SET ? (uint64_t)g.value_size : 0));
            }
            f.lost_keys++;
            op_t *last = &ok->ops[a];
            char found[256];
            if (ver == 0) snprintf(found, sizeof(found), "nothing");
            else if (from >= 0) snprintf(found, sizeof(found), "v%" PRIu64 " (%s at %s via %s)", ver,
                                         ok->ops[from].outcome == OUT_ACK ? "acknowledged" : "outcome unknown",
                                         fmt_time(ok->ops[from].wall_us, tb[1], sizeof(tb[1])),
                                         addr_name(ok->ops[from].addr));
            else snprintf(found, sizeof(found), "v%" PRIu64, ver);
            detail(&f, "LOST %s (group %u): last acknowledged %s v%" PRIu64 " at %s via %s, "
                   "%" PRIu64 " acknowledged write(s) undone; found %s",
                   q->key, last->group, last->kind == OP_SET ? "set" : "delete", last->ver,
                   fmt_time(last->wall_us, tb[0], sizeof(tb[0])), addr_name(last->addr), nlost,
                   found);
        }
        for (int k = 0; k < g.counters; k++) {
            probe_t *q = &p[i++];
            counter_t *cn = &s->counters[k];
            if (cn->ready) f.acked += 1 + cn->acked, f.acked_sets++, f.acked_incrs += cn->acked;
            f.unknown += cn->unknown_total;
            if (!cn->ready) continue;
            if (!q->status) {
                f.unreadable++;
                continue;
            }
            uint64_t v = 0;
            bool numeric = q->found && q->vlen > 0 && q->vlen < 21;
            for (size_t j = 0; numeric && j < q->vlen; j++) {
                if (q->value[j] < '0' || q->value[j] > '9') numeric = false;
                else v = v * 10 + (uint64_t)(q->value[j] - '0');
            }
            if (q->found && !numeric) {
                f.wrong++;
                detail(&f, "WRONG %s: %.60s", q->key, q->value);
                continue;
            }
            if (q->found && v > cn->acked_max + cn->unknown_after) {
                f.wrong++;
                detail(&f, "WRONG %s: %" PRIu64 ", above the %" PRIu64 " acknowledged + %" PRIu64
                       " unknown increments", q->key, v, cn->acked_max, cn->unknown_after);
                continue;
            }
            if (q->found && v >= cn->acked_max) continue;
            uint64_t nlost = q->found ? cn->acked_max - v : cn->acked_max + 1;
            f.lost_incrs += q->found ? nlost : cn->acked_max;
            if (!q->found) f.lost_sets++;
            f.lost_keys++;
            note_lost(&f, nlost, cn->group, cn->wall_us, strlen(q->key) + RECORD_OVERHEAD + 20);
            detail(&f, "LOST %s (group %u): read back %s%" PRIu64 " after acknowledged increments up "
                   "to %" PRIu64 " (at %s via %s)", q->key, cn->group,
                   q->found ? "" : "nothing, not even ", q->found ? v : 0, cn->acked_max,
                   fmt_time(cn->wall_us, tb[0], sizeof(tb[0])), addr_name(cn->addr));
        }
        for (size_t k = 0; k < s->nw; k++) {
            probe_t *q = &p[i++];
            wkey_t *w = &s->wkeys[k];
            if (w->outcome == OUT_ACK) f.acked++, f.acked_once++;
            else f.unknown++;
            if (!q->status) {
                f.unreadable++;
                continue;
            }
            if (q->found && parse_value(q->key, q->value, q->vlen) != 1) {
                f.wrong++;
                detail(&f, "WRONG %s: %.60s", q->key, q->value);
                continue;
            }
            if (!q->found && w->outcome == OUT_ACK) {
                f.lost_once++;
                f.lost_keys++;
                note_lost(&f, 1, w->group, w->wall_us,
                          strlen(q->key) + RECORD_OVERHEAD + (uint64_t)g.value_size);
                detail(&f, "LOST %s (group %u): acknowledged at %s via %s, read back nothing",
                       q->key, w->group, fmt_time(w->wall_us, tb[0], sizeof(tb[0])),
                       addr_name(w->addr));
            }
        }
    }
    uint64_t regressions = 0, vanished = 0;
    for (int t = 0; t < g.threads; t++) {
        for (int k = 0; k < g.counters; k++) {
            regressions += g.ts[t].counters[k].regressions;
            vanished += g.ts[t].counters[k].vanished;
        }
    }
    if (f.details < 0) printf("ledger:   ... and %d more\n", -f.details);

    printf("ledger: ---- figures ----\n");
    printf("ledger: acknowledged writes  %" PRIu64 " (sets %" PRIu64 ", write-once %" PRIu64
           ", deletes %" PRIu64 ", increments %" PRIu64 ")\n",
           f.acked, f.acked_sets, f.acked_once, f.acked_deletes, f.acked_incrs);
    printf("ledger: unknown outcome      %" PRIu64 "\n", f.unknown);
    printf("ledger: LOST acknowledged    %" PRIu64 " in %" PRIu64 " keys (sets %" PRIu64
           ", write-once %" PRIu64 ", deletes undone %" PRIu64 ", increments %" PRIu64 ")\n",
           f.lost, f.lost_keys, f.lost_sets, f.lost_once, f.lost_deletes, f.lost_incrs);
    if (f.lost) {
        printf("ledger:   about %" PRIu64 " bytes of replication stream, acknowledged between %s and %s; by group:",
               f.lost_bytes,
               fmt_time(f.lost_first_us, tb[0], sizeof(tb[0])), fmt_time(f.lost_last_us, tb[1], sizeof(tb[1])));
        for (int gi = 0; gi < MAX_GROUPS; gi++)
            if (f.lost_by_group[gi]) printf(" %d:%" PRIu64, gi, f.lost_by_group[gi]);
        printf("\n");
    }
    printf("ledger: WRONG (never written) %" PRIu64 " at the check, %" PRIuFAST64 " in reads while writing\n",
           f.wrong, atomic_load(&g.wrong_reads));
    printf("ledger: stale reads          %" PRIuFAST64 " of %" PRIuFAST64
           " reads while writing (counter regressions %" PRIu64 ", counters vanished %" PRIu64 ")\n",
           atomic_load(&g.stale_reads), atomic_load(&g.reads), regressions, vanished);
    printf("ledger: unreadable at check  %" PRIu64 " of %" PRIu64 " keys\n", f.unreadable, f.keys);
    printf("ledger: longest write gap    ");
    for (int gi = 1; gi < MAX_GROUPS; gi++) {
        if (atomic_load(&g.last_ack_us[gi]) == 0) continue;
        printf(" group %d: %" PRId64 " ms", gi, atomic_load(&g.max_gap_us[gi]) / 1000);
    }
    printf("\n");
    printf("{\"final\":true,\"acked\":%" PRIu64 ",\"unknown\":%" PRIu64 ",\"lost\":%" PRIu64
           ",\"lost_keys\":%" PRIu64 ",\"lost_sets\":%" PRIu64 ",\"lost_once\":%" PRIu64
           ",\"lost_deletes\":%" PRIu64 ",\"lost_incrs\":%" PRIu64 ",\"lost_bytes\":%" PRIu64
           ",\"wrong\":%" PRIu64
           ",\"wrong_reads\":%" PRIuFAST64 ",\"stale_reads\":%" PRIuFAST64 ",\"reads\":%" PRIuFAST64
           ",\"regressions\":%" PRIu64 ",\"unreadable\":%" PRIu64 ",\"keys\":%" PRIu64 ",\"max_gap_ms\":{",
           f.acked, f.unknown, f.lost, f.lost_keys, f.lost_sets, f.lost_once, f.lost_deletes, f.lost_incrs,
           f.lost_bytes, f.wrong, atomic_load(&g.wrong_reads), atomic_load(&g.stale_reads), atomic_load(&g.reads),
           regressions, f.unreadable, f.keys);
    bool first = true;
    for (int gi = 1; gi < MAX_GROUPS; gi++) {
        if (atomic_load(&g.last_ack_us[gi]) == 0) continue;
        printf("%s\"%d\":%" PRId64, first ? "" : ",", gi, atomic_load(&g.max_gap_us[gi]) / 1000);
        first = false;
    }
    printf("},\"lost_by_group\":{");
    first = true;
    for (int gi = 0; gi < MAX_GROUPS; gi++) {
        if (!f.lost_by_group[gi]) continue;
        printf("%s\"%d\":%" PRIu64, first ? "" : ",", gi, f.lost_by_group[gi]);
        first = false;
    }
    printf("}}\n");
    fflush(stdout);
    for (size_t j = 0; j < n; j++) free(p[j].value);
    free(p);
    bc_client_destroy(c);
    return f.lost == 0 && f.wrong == 0 && atomic_load(&g.wrong_reads) == 0 ? 0 : 1;
}

static int
arg_int(const char *name, const char *v, int lo, int hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "ledger: %s: expected %d..%d, got \"%s\"\n", name, lo, hi, v);
        exit(2);
    }
    return (int)x;
}

int
main(int argc, char **argv)
{
    g.threads = 4;
    g.keys = 64;
    g.counters = 4;
    g.rate = 200;
    g.timeout_ms = 2000;
    g.value_size = 48;
    g.report_ms = 500;
    g.check_timeout_ms = 30000;
    g.details = 20;
    pthread_mutex_init(&g.addrs_mu, NULL);
    pthread_mutex_init(&g.journal_mu, NULL);
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "ledger: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--zk") == 0) g.zk = v;
        else if (strcmp(a, "--cluster") == 0) g.cluster = v;
        else if (strcmp(a, "--threads") == 0) g.threads = arg_int(a, v, 1, 64);
        else if (strcmp(a, "--keys") == 0) g.keys = arg_int(a, v, 1, 100000);
        else if (strcmp(a, "--counters") == 0) g.counters = arg_int(a, v, 0, 1000);
        else if (strcmp(a, "--rate") == 0) g.rate = arg_int(a, v, 0, 1000000);
        else if (strcmp(a, "--timeout") == 0) g.timeout_ms = arg_int(a, v, 10, 600000);
        else if (strcmp(a, "--value-size") == 0) g.value_size = arg_int(a, v, 0, 4000);
        else if (strcmp(a, "--report-ms") == 0) g.report_ms = arg_int(a, v, 10, 600000);
        else if (strcmp(a, "--check-timeout") == 0) g.check_timeout_ms = arg_int(a, v, 0, 3600000);
        else if (strcmp(a, "--details") == 0) g.details = arg_int(a, v, 0, 100000);
        else if (strcmp(a, "--journal") == 0) {
            if (!(g.journal = fopen(v, "w"))) {
                fprintf(stderr, "ledger: --journal %s: %s\n", v, strerror(errno));
                return 2;
            }
        }
        else {
            fprintf(stderr, "ledger: unknown option %s (see the top of tests/tools/ledger.c)\n", a);
            return 2;
        }
    }
    if (!g.zk || !g.cluster) {
        fprintf(stderr, "ledger: --zk and --cluster are required\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    bc_client_set_log(NULL, NULL, BC_CLIENT_LOG_WARN);
    bc_client_options_t opts;
    bc_client_options_init(&opts);
    opts.zk_hosts = g.zk;
    opts.cluster = g.cluster;
    opts.timeout_ms = g.timeout_ms;
    int rc = bc_client_create(&opts, &g.client);
    if (rc != BC_CLIENT_OK) {
        fprintf(stderr, "ledger: cannot create the client: %s\n", bc_strerror(rc));
        return 2;
    }
    g.ts = calloc((size_t)g.threads, sizeof(*g.ts));
    if (!g.ts) abort();
    for (int t = 0; t < g.threads; t++) {
        g.ts[t].t = t;
        g.ts[t].okeys = calloc((size_t)g.keys, sizeof(okey_t));
        g.ts[t].counters = calloc((size_t)g.counters + 1, sizeof(counter_t));
        if (!g.ts[t].okeys || !g.ts[t].counters) abort();
        pthread_create(&g.ts[t].th, NULL, writer, &g.ts[t]);
    }
    pthread_t in;
    pthread_create(&in, NULL, stdin_reader, NULL);
    pthread_detach(in);
    int64_t start = mono_us(), next = start + (int64_t)g.report_ms * 1000;
    while (!atomic_load(&g.stop)) {
        usleep(10000);
        if (mono_us() >= next) {
            print_progress((double)(mono_us() - start) / 1e6, false);
            next += (int64_t)g.report_ms * 1000;
        }
    }
    for (int t = 0; t < g.threads; t++) pthread_join(g.ts[t].th, NULL);
    print_progress((double)(mono_us() - start) / 1e6, true);
    bc_client_destroy(g.client);
    g.client = NULL;
    rc = check();
    for (int t = 0; t < g.threads; t++) {
        for (int k = 0; k < g.keys; k++) free(g.ts[t].okeys[k].ops);
        free(g.ts[t].okeys);
        free(g.ts[t].wkeys);
        free(g.ts[t].counters);
    }
    free(g.ts);
    if (g.journal) fclose(g.journal);
    return rc;
}
