/*
 * migration_loopback.c -- bench_migration_loopback: the raw TCP bandwidth
 * of this machine's loopback, the yardstick the migration rate is compared
 * with (tests/bench/migration.py runs it in the same run).
 *
 *   bench_migration_loopback [--mb N] [--chunk BYTES] [--fault-mb M]
 *
 * One thread writes N MiB (default 2048) in CHUNK-byte writes (default
 * 256 KiB) through a connected 127.0.0.1 TCP socket, another reads and
 * discards them; the figure is bytes over the receiver's wall time.  This
 * is the best any copy over loopback can do: a migration also encodes,
 * checksums, decodes and stores every item, and shares the cores with the
 * nodes' other work.
 *
 * Then the second yardstick: how fast this machine hands a process memory
 * it has not used before.  M MiB (default 512) are mapped and one byte per
 * page written, so each page faults in (the kernel zeroes it; in a
 * virtual machine the host may have to back it first).  A destination
 * stores every byte it receives in such memory, so this bounds a
 * migration onto a fresh node whatever the network does.
 *
 * Prints one line:
 *   RESULT loopback_mb_per_s=... bytes=... secs=... fresh_memory_mb_per_s=...
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "bc_time.h"

typedef struct sender {
    int fd;
    size_t total;
    size_t chunk;
} sender_t;

static void *
send_main(void *arg)
{
    sender_t *s = arg;
    char *buf = malloc(s->chunk);
    if (buf == NULL) return NULL;
    memset(buf, 'x', s->chunk);
    size_t left = s->total;
    while (left > 0) {
        size_t n = left < s->chunk ? left : s->chunk;
        ssize_t w = write(s->fd, buf, n);
        if (w <= 0) break;
        left -= (size_t)w;
    }
    shutdown(s->fd, SHUT_WR);
    free(buf);
    return NULL;
}

/* MiB/s at which `mb` MiB of never-touched anonymous memory fault in. */
static double
fresh_memory_rate(size_t mb)
{
    size_t len = mb * 1024 * 1024;
    long page = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || page <= 0) return 0;
    double t0 = bc_time_mono_s();
    for (size_t off = 0; off < len; off += (size_t)page) p[off] = 1;
    double secs = bc_time_mono_s() - t0;
    munmap(p, len);
    return secs > 0 ? mb / secs : 0;
}

int
main(int argc, char **argv)
{
    size_t mb = 2048, chunk = 256 * 1024, fault_mb = 512;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) {
            mb = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) {
            chunk = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--fault-mb") == 0 && i + 1 < argc) {
            fault_mb = strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--mb N] [--chunk BYTES] [--fault-mb M]\n", argv[0]);
            return 2;
        }
    }
    if (mb == 0 || chunk == 0 || fault_mb == 0) return 2;

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
        perror("listen");
        return 1;
    }
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        return 1;
    }
    int afd = accept(lfd, NULL, NULL);
    if (afd < 0) {
        perror("accept");
        return 1;
    }
    sender_t s = {cfd, mb * 1024 * 1024, chunk};
    pthread_t t;
    char *buf = malloc(chunk);
    double t0 = bc_time_mono_s();
    pthread_create(&t, NULL, send_main, &s);
    size_t got = 0;
    for (;;) {
        ssize_t n = read(afd, buf, chunk);
        if (n <= 0) break;
        got += (size_t)n;
    }
    double secs = bc_time_mono_s() - t0;
    pthread_join(t, NULL);
    printf("RESULT loopback_mb_per_s=%.1f bytes=%zu secs=%.3f fresh_memory_mb_per_s=%.1f\n",
           got / secs / 1048576.0, got, secs, fresh_memory_rate(fault_mb));
    free(buf);
    close(afd);
    close(cfd);
    close(lfd);
    return got == s.total ? 0 : 1;
}
