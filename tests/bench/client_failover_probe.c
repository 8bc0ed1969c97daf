/*
 * client_failover_probe.c -- writes through libbucketcache in a loop and says, with
 * wall-clock times, when writes stop and start succeeding.  failover.py
 * kills a group's primary under it and reads these lines.
 *
 *   bench_client_failover_probe --zk HOSTS --cluster NAME
 *       [--timeout-ms 200] [--keys 1000] [--value-size 64] [--interval-us 1000]
 *       [--report-ms 1000] [--duration SECS]
 *
 * One thread, one bc_client_t, closed loop: set key "fo:<seq % keys>" to a
 * value that starts with its sequence number, each call with a deadline of
 * --timeout-ms (within it the library retries: refreshes its table, backs
 * off), then sleeps --interval-us.  Lines on stdout, flushed at once, every
 * time in CLOCK_REALTIME milliseconds (comparable with other processes'
 * clocks on the same machine):
 *
 *   READY ms=T                               the client is created, writing starts
 *   FAIL ms=T start_ms=S seq=N rc=RC err=TEXT last_ok_ms=L ok=K
 *                                            the first failed write after a
 *                                            success (S: when that call began)
 *   RECOVER ms=T start_ms=S seq=N failed=F last_ok_ms=L primary=ADDR
 *                                            the first successful write after
 *                                            failures (T: when it returned;
 *                                            ADDR: where the key routes now)
 *   CHECK ms=T checked=K intact=I lost=L stale=S errors=E gone_min_seq=A gone_max_seq=B
 *                                            after each RECOVER: every key whose
 *                                            last write was acknowledged is read
 *                                            back; lost = gone, stale = an older
 *                                            value than the acknowledged one;
 *                                            A..B: the sequence numbers of those
 *                                            writes (-1: none)
 *   COUNT ms=T ok=K fail=F                   every --report-ms
 *   DONE ms=T ok=K fail=F table_updates=U refreshes=R retries=Y
 *                                            at the end (SIGTERM/SIGINT or
 *                                            --duration)
 *
 * It links the shared libbucketcache like any application (only bc_client_*
 * and bc_strerror are exported).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../client/include/bucketcache.h"
#include "../../common/bc_time.h"

static volatile sig_atomic_t g_stop;

static void
on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void
die(const char *what, const char *detail)
{
    fprintf(stderr, "client_failover_probe: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static long
arg_long(const char *name, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) die("bad value for", name);
    return x;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_client_failover_probe --zk HOSTS --cluster NAME\n"
            "       [--timeout-ms 200] [--keys 1000] [--value-size 64] [--interval-us 1000]\n"
            "       [--report-ms 1000] [--duration SECS (0 = until SIGTERM)]\n");
    exit(2);
}

/* The sequence number a value starts with, or -1. */
static int64_t
value_seq(const char *v, size_t n)
{
    int64_t s = 0;
    size_t i = 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++) s = s * 10 + (v[i] - '0');
    return i == 0 ? -1 : s;
}

int
main(int argc, char **argv)
{
    const char *zk = NULL, *cluster = NULL;
    long timeout_ms = 200, keys = 1000, vsize = 64, interval_us = 1000, report_ms = 1000;
    long duration = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (strcmp(a, "--zk") == 0) zk = v;
        else if (strcmp(a, "--cluster") == 0) cluster = v;
        else if (strcmp(a, "--timeout-ms") == 0) timeout_ms = arg_long(a, v, 1, 60000);
        else if (strcmp(a, "--keys") == 0) keys = arg_long(a, v, 1, 1000000);
        else if (strcmp(a, "--value-size") == 0) vsize = arg_long(a, v, 24, 1 << 20);
        else if (strcmp(a, "--interval-us") == 0) interval_us = arg_long(a, v, 0, 10000000);
        else if (strcmp(a, "--report-ms") == 0) report_ms = arg_long(a, v, 10, 3600000);
        else if (strcmp(a, "--duration") == 0) duration = arg_long(a, v, 0, 86400);
        else usage();
    }
    if (zk == NULL || cluster == NULL) usage();

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    bc_client_options_t o;
    bc_client_options_init(&o);
    o.zk_hosts = zk;
    o.cluster = cluster;
    o.timeout_ms = (int)timeout_ms;
    bc_client_t *c = NULL;
    int rc = bc_client_create(&o, &c);
    if (rc != BC_CLIENT_OK) die("bc_client_create", bc_strerror(rc));

    /* acked[k]: the sequence number last acknowledged for key k (-1: none,
     * or the last write to it failed: its outcome is unknown). */
    int64_t *acked = malloc(sizeof(int64_t) * (size_t)keys);
    char *val = malloc((size_t)vsize);
    if (acked == NULL || val == NULL) die("out of memory", NULL);
    for (long k = 0; k < keys; k++) acked[k] = -1;
    memset(val, 'x', (size_t)vsize);

    printf("READY ms=%lld\n", (long long)bc_time_real_ms());
    fflush(stdout);
    int64_t t_end = duration > 0 ? bc_time_mono_ms() + duration * 1000 : INT64_MAX;
    int64_t next_report = bc_time_mono_ms() + report_ms;
    uint64_t ok = 0, fail = 0, failed_run = 0;
    int64_t last_ok_ms = 0;
    int failing = 0;
    struct timespec pause = {.tv_sec = interval_us / 1000000, .tv_nsec = (interval_us % 1000000) * 1000};
    for (int64_t seq = 0; !g_stop && bc_time_mono_ms() < t_end; seq++) {
        char key[32];
        long k = (long)(seq % keys);
        int klen = snprintf(key, sizeof(key), "fo:%ld", k);
        int n = snprintf(val, (size_t)vsize, "%lld ", (long long)seq);
        val[n] = 'x';                       /* keep the padding, drop snprintf's NUL */
        int64_t start = bc_time_real_ms();
        rc = bc_client_set(c, key, (size_t)klen, val, (size_t)vsize, 0, 0, (int)timeout_ms);
        int64_t end = bc_time_real_ms();
        if (rc == BC_CLIENT_OK) {
            ok++;
            acked[k] = seq;
            if (failing) {
                char addr[128] = "";
                bc_client_locate(c, key, (size_t)klen, NULL, NULL, addr, sizeof(addr));
                printf("RECOVER ms=%lld start_ms=%lld seq=%lld failed=%llu last_ok_ms=%lld "
                       "primary=%s\n", (long long)end, (long long)start, (long long)seq,
                       (unsigned long long)failed_run, (long long)last_ok_ms,
                       addr[0] ? addr : "?");
                fflush(stdout);
                /* read back every key whose last write was acknowledged */
                uint64_t checked = 0, intact = 0, lost = 0, stale = 0, errs = 0;
                int64_t gone_min = -1, gone_max = -1;   /* seqs of the lost/stale writes */
                for (long j = 0; j < keys; j++) {
                    if (acked[j] < 0) continue;
                    char kj[32];
                    int kl = snprintf(kj, sizeof(kj), "fo:%ld", j);
                    void *v = NULL;
                    size_t vl = 0;
                    int r = bc_client_get(c, kj, (size_t)kl, 1000, &v, &vl, NULL);
                    checked++;
                    int gone = 0;
                    if (r == BC_CLIENT_ENOTFOUND) {
                        lost++;
                        gone = 1;
                    } else if (r != BC_CLIENT_OK) {
                        errs++;
                    } else if (value_seq(v, vl) < acked[j]) {
                        stale++;
                        gone = 1;
                    } else {
                        intact++;
                    }
                    if (gone && (gone_min < 0 || acked[j] < gone_min)) gone_min = acked[j];
                    if (gone && acked[j] > gone_max) gone_max = acked[j];
                    bc_client_free(v);
                }
                printf("CHECK ms=%lld checked=%llu intact=%llu lost=%llu stale=%llu errors=%llu "
                       "gone_min_seq=%lld gone_max_seq=%lld\n", (long long)bc_time_real_ms(),
                       (unsigned long long)checked, (unsigned long long)intact,
                       (unsigned long long)lost, (unsigned long long)stale,
                       (unsigned long long)errs, (long long)gone_min, (long long)gone_max);
                fflush(stdout);
                failing = 0;
            }
            last_ok_ms = end;
        } else {
            fail++;
            acked[k] = -1;
            if (!failing) {
                printf("FAIL ms=%lld start_ms=%lld seq=%lld rc=%d err=\"%s\" last_ok_ms=%lld "
                       "ok=%llu\n", (long long)end, (long long)start, (long long)seq, rc,
                       bc_strerror(rc), (long long)last_ok_ms, (unsigned long long)ok);
                fflush(stdout);
                failing = 1;
                failed_run = 0;
            }
            failed_run++;
        }
        if (bc_time_mono_ms() >= next_report) {
            printf("COUNT ms=%lld ok=%llu fail=%llu\n", (long long)bc_time_real_ms(),
                   (unsigned long long)ok, (unsigned long long)fail);
            fflush(stdout);
            next_report += report_ms;
        }
        if (interval_us > 0) nanosleep(&pause, NULL);
    }
    bc_client_stats_t st;
    memset(&st, 0, sizeof(st));
    bc_client_get_stats(c, &st);
    printf("DONE ms=%lld ok=%llu fail=%llu table_updates=%llu refreshes=%llu retries=%llu\n",
           (long long)bc_time_real_ms(), (unsigned long long)ok, (unsigned long long)fail,
           (unsigned long long)st.table_updates, (unsigned long long)st.refreshes,
           (unsigned long long)st.retries);
    fflush(stdout);
    bc_client_destroy(c);
    free(acked);
    free(val);
    return 0;
}
