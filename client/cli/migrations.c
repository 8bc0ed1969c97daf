/*
 * migrations.c -- see migrations.h.
 *
 * HOW
 *   Finds the active console through ZooKeeper (the lowest election znode)
 *   and asks GET /v1/migrations.  --watch asks again every --interval ms
 *   until the run has nothing left to move; on a terminal it redraws one
 *   block with a progress bar, otherwise (or with --json) it prints one
 *   line per refresh so the output can be piped.  A console that changes
 *   while watching (failover) is looked up again.
 */
#include "migrations.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bc_cluster.h"
#include "bc_http_client.h"
#include "bc_zk.h"

#define MIG_BAR_WIDTH 30

static volatile sig_atomic_t mig_interrupted;

static void
mig_on_signal(int sig)
{
    (void)sig;
    mig_interrupted = 1;
}

static void
mig_usage(FILE *out)
{
    fprintf(out, "usage: bucketcache migrations [--watch] [--interval MS] [--json]\n"
                 "       bucketcache migrations pause | resume | cancel\n"
                 "\n"
                 "  (no action)   progress of bucket migration: pending, moving, done, bytes\n"
                 "                moved, rate, time left, read-only stall per bucket\n"
                 "  --watch       refresh until nothing is left to move (live progress bar\n"
                 "                on a terminal, one line per refresh otherwise)\n"
                 "  --interval MS refresh period of --watch (default 1000)\n"
                 "  pause         start no new bucket copy (running ones finish)\n"
                 "  resume        start copying again\n"
                 "  cancel        cancel the rebalance: moves not started yet never happen\n");
}

static double
num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *
str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* "1.2 MiB" */
static void
human_bytes(double b, char *buf, size_t len)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(buf, len, u == 0 ? "%.0f %s" : "%.1f %s", b, unit[u]);
}

static void
human_secs(double s, char *buf, size_t len)
{
    long t = (long)(s + 0.5);
    if (t < 60) snprintf(buf, len, "%ld s", t);
    else if (t < 3600) snprintf(buf, len, "%ld min %02ld s", t / 60, t % 60);
    else snprintf(buf, len, "%.1f h", s / 3600);
}

/* Nothing left to move (and the run, if any, is closed). */
static bool
mig_finished(const cJSON *doc)
{
    return num(doc, "pending") == 0 && num(doc, "moving") == 0;
}

static void
mig_bar(double done, double total, char *buf, size_t len)
{
    int fill = total > 0 ? (int)(MIG_BAR_WIDTH * done / total + 0.5) : MIG_BAR_WIDTH;
    if (fill > MIG_BAR_WIDTH) fill = MIG_BAR_WIDTH;
    size_t o = 0;
    buf[o++] = '[';
    for (int i = 0; i < MIG_BAR_WIDTH && o + 2 < len; i++) buf[o++] = i < fill ? '#' : '-';
    buf[o++] = ']';
    buf[o] = '\0';
}

/* The full, human-readable report. */
static void
mig_print(const cJSON *doc)
{
    double done = num(doc, "done"), moving = num(doc, "moving"), pending = num(doc, "pending");
    /* The console's own total (its one count, console/migrate_record.h);
     * an older console does not send it. */
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(doc, "total");
    double total = cJSON_IsNumber(tv) ? tv->valuedouble : done + moving + pending;
    const cJSON *paused = cJSON_GetObjectItemCaseSensitive(doc, "paused");
    const cJSON *running = cJSON_GetObjectItemCaseSensitive(doc, "running");
    char bar[MIG_BAR_WIDTH + 4], moved[32], rate[32], left[32], eta[32];
    mig_bar(done, total, bar, sizeof(bar));
    human_bytes(num(doc, "bytes_moved"), moved, sizeof(moved));
    human_bytes(num(doc, "rate_bytes_per_s"), rate, sizeof(rate));
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(doc, "bytes_left");
    human_bytes(cJSON_IsNumber(lv) ? lv->valuedouble : num(doc, "bytes_left_estimate"), left,
                sizeof(left));
    const cJSON *eta_v = cJSON_GetObjectItemCaseSensitive(doc, "eta_s");
    if (cJSON_IsNumber(eta_v)) human_secs(eta_v->valuedouble, eta, sizeof(eta));
    else snprintf(eta, sizeof(eta), "-");

    printf("migrations: %s%s (parallel %.0f, console %s)\n",
           cJSON_IsTrue(running) ? "running" : mig_finished(doc) ? "idle" : "waiting",
           cJSON_IsTrue(paused) ? ", PAUSED" : "", num(doc, "parallel"),
           str(doc, "active_console"));
    printf("  %s %3.0f%%  %.0f of %.0f buckets done\n", bar,
           total > 0 ? 100.0 * done / total : 100.0, done, total);
    printf("  moving %.0f, pending %.0f", moving, pending);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "precopy"))) {
        printf(" (%.0f precopied, %.0f precopying)", num(doc, "precopied"),
               num(doc, "precopying"));
    }
    printf(", failed attempts %.0f\n", num(doc, "failed_attempts"));
    printf("  moved %s (%.0f items) in %.1f s, %s/s; about %s left, %s\n", moved,
           num(doc, "items_moved"), num(doc, "elapsed_s"), rate, left, eta);
    const cJSON *stall = cJSON_GetObjectItemCaseSensitive(doc, "stall_ms");
    printf("  read-only stall per bucket: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%.0f buckets)\n",
           num(stall, "p50"), num(stall, "p99"), num(stall, "max"), num(stall, "count"));
    const cJSON *held = cJSON_GetObjectItemCaseSensitive(doc, "held_groups"), *e;
    if (cJSON_GetArraySize(held) > 0) {
        printf("  held back (rebalance cancelled):");
        cJSON_ArrayForEach(e, held) printf(" group %.0f", e->valuedouble);
        printf("\n");
    }
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(doc, "active");
    if (cJSON_GetArraySize(active) > 0) {
        printf("  copying:");
        cJSON_ArrayForEach(e, active) {
            printf(" %.0f (%.0f->%.0f, %.0f ms)", num(e, "bucket"), num(e, "from"), num(e, "to"),
                   num(e, "readonly_ms"));
        }
        printf("\n");
    }
    const cJSON *waiting = cJSON_GetObjectItemCaseSensitive(doc, "waiting");
    cJSON_ArrayForEach(e, waiting) {
        printf("  waiting: bucket %.0f (%.0f->%.0f), retry in %.0f ms after %.0f failed "
               "attempt(s): %s\n", num(e, "bucket"), num(e, "from"), num(e, "to"),
               num(e, "retry_in_ms"), num(e, "attempts"), str(e, "error"));
    }
}

/* One line, for pipes. */
static void
mig_print_line(const cJSON *doc)
{
    char moved[32], rate[32], eta[32] = "-";
    human_bytes(num(doc, "bytes_moved"), moved, sizeof(moved));
    human_bytes(num(doc, "rate_bytes_per_s"), rate, sizeof(rate));
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "eta_s");
    if (cJSON_IsNumber(e)) human_secs(e->valuedouble, eta, sizeof(eta));
    printf("done %.0f moving %.0f pending %.0f failed %.0f moved %s rate %s/s eta %s%s\n",
           num(doc, "done"), num(doc, "moving"), num(doc, "pending"), num(doc, "failed_attempts"),
           moved, rate, eta,
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "paused")) ? " PAUSED" : "");
    fflush(stdout);
}

int
bc_cli_migrations(const bc_cli_t *cli, int argc, char **argv)
{
    int json = cli->json;
    bool watch = false;
    long interval = 1000;
    const char *action = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--watch") == 0 || strcmp(argv[i], "-w") == 0) {
            watch = true;
        } else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
            char *end;
            interval = strtol(argv[++i], &end, 10);
            if (*end != '\0' || interval < 50 || interval > 3600000) {
                fprintf(stderr, "bucketcache: --interval must be 50..3600000 ms\n");
                return BC_CLI_EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            mig_usage(stdout);
            return BC_CLI_EXIT_OK;
        } else if (action == NULL && (strcmp(argv[i], "pause") == 0 ||
                                      strcmp(argv[i], "resume") == 0 ||
                                      strcmp(argv[i], "cancel") == 0)) {
            action = argv[i];
        } else {
            fprintf(stderr, "bucketcache: migrations: unknown argument \"%s\"\n", argv[i]);
            mig_usage(stderr);
            return BC_CLI_EXIT_USAGE;
        }
    }
    if (action != NULL && watch) {
        fprintf(stderr, "bucketcache: migrations: --watch is for progress, not with %s\n", action);
        return BC_CLI_EXIT_USAGE;
    }
    char addr[BC_ADDR_MAX];
    int rc = bc_cli_console_addr(cli, addr, sizeof(addr));
    if (rc != BC_CLI_EXIT_OK) return rc;
    cJSON *doc = NULL;

    if (action != NULL) {
        const char *path = strcmp(action, "pause") == 0    ? "/v1/migrations/pause"
                         : strcmp(action, "resume") == 0   ? "/v1/migrations/resume"
                                                           : "/v1/rebalance/cancel";
        rc = bc_cli_console_request(addr, "POST", path, &doc, false);
        if (rc != BC_CLI_EXIT_OK) return rc;
        if (json) bc_cli_print_json(doc);
        else printf("%s: %s\n", action, str(doc, "summary")[0] ? str(doc, "summary") : "done");
        cJSON_Delete(doc);
        return BC_CLI_EXIT_OK;
    }

    bool tty = isatty(STDOUT_FILENO) && !json;
    if (watch) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = mig_on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    int failures = 0;
    for (;;) {
        rc = bc_cli_console_request(addr, "GET", "/v1/migrations", &doc, watch);
        if (rc == BC_CLI_EXIT_UNAVAILABLE && watch && !mig_interrupted && failures++ < 30) {
            /* the console may have failed over: find the new one */
            struct timespec ts = {0, 300 * 1000 * 1000};
            nanosleep(&ts, NULL);
            (void)bc_cli_console_addr(cli, addr, sizeof(addr));
            continue;
        }
        if (rc != BC_CLI_EXIT_OK) return rc;
        failures = 0;
        bool finished = mig_finished(doc);
        if (json) {
            bc_cli_print_json(doc);
            fflush(stdout);                   /* a line per poll, as it comes */
        } else if (!watch || tty) {
            if (watch) printf("\033[H\033[J");   /* redraw in place */
            mig_print(doc);
            fflush(stdout);
        } else {
            mig_print_line(doc);
        }
        cJSON_Delete(doc);
        doc = NULL;
        if (!watch || finished || mig_interrupted) break;
        struct timespec ts = {interval / 1000, (interval % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (mig_interrupted) break;
    }
    return BC_CLI_EXIT_OK;
}
