/* chronik-baseline: what this machine can do without Chronik, measured seconds before
 * each benchmark figure so that figures can be read as ratios on a noisy shared host.
 *
 *   chronik-baseline net  [--seconds S] [--write-size BYTES]
 *       One TCP stream over 127.0.0.1: a writer thread sends --write-size (1 MiB) writes,
 *       a reader thread reads and discards; MB/s = bytes read / time.
 *   chronik-baseline disk --dir DIR [--seconds S] [--write-size BYTES]
 *       Appends --write-size (64 KiB) blocks to a new file in DIR, each followed by
 *       fdatasync() (what a WAL group commit does), for S seconds; reports MB/s and the
 *       p50/p99/max of the fdatasync() calls. The file is removed afterwards.
 *
 * Output: a human line, then one "RESULT baseline=net|disk key=value ..." line.
 * Every loop ends at its deadline (default 2 s); only loopback traffic. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 1000000

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank quantile of n sorted samples. */
static int64_t quantile(const int64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return v[rank > n ? n - 1 : rank - 1];
}

/* ---- net ---- */

typedef struct net_reader {
    int lfd;
    size_t bufsize;
    int64_t bytes;
    int64_t t_end;
} net_reader_t;

static void *net_reader_main(void *arg)
{
    net_reader_t *r = arg;
    int fd = accept(r->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char *buf = malloc(r->bufsize);
    for (ssize_t n; buf && (n = read(fd, buf, r->bufsize)) != 0;) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        r->bytes += n;
    }
    r->t_end = now_ns();
    free(buf);
    close(fd);
    return NULL;
}

static int run_net(double seconds, size_t wsize)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) || listen(lfd, 1)) {
        perror("net: listen");
        return 1;
    }
    net_reader_t r = {.lfd = lfd, .bufsize = wsize};
    pthread_t th;
    if (pthread_create(&th, NULL, net_reader_main, &r)) {
        fprintf(stderr, "net: pthread_create failed\n");
        return 1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        perror("net: connect");
        return 1;
    }
    char *buf = malloc(wsize);
    if (!buf)
        return 1;
    memset(buf, 0x5a, wsize);
    int64_t start = now_ns(), deadline = start + (int64_t)(seconds * 1e9);
    while (now_ns() < deadline) {
        size_t off = 0;
        while (off < wsize) {
            ssize_t n = write(fd, buf + off, wsize - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                perror("net: write");
                return 1;
            }
            off += (size_t)n;
        }
    }
    close(fd);
    pthread_join(th, NULL);
    close(lfd);
    free(buf);
    double el = (double)(r.t_end - start) / 1e9;
    double mbps = el > 0 ? (double)r.bytes / el / 1e6 : 0;
    printf("loopback TCP, one stream, %zu B writes: %.0f MB/s over %.2f s\n", wsize, mbps, el);
    printf("RESULT baseline=net write_size=%zu bytes=%lld elapsed_s=%.3f mb_per_s=%.1f\n", wsize,
           (long long)r.bytes, el, mbps);
    return 0;
}

/* ---- disk ---- */

static int run_disk(const char *dir, double seconds, size_t wsize)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/baseline-fsync-%d.tmp", dir, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror("disk: open");
        return 1;
    }
    char *buf = malloc(wsize);
    int64_t *lat = malloc(MAX_SAMPLES * sizeof(int64_t));
    if (!buf || !lat)
        return 1;
    for (size_t i = 0; i < wsize; i++)
        buf[i] = (char)(i * 131 + 7);
    size_t n = 0;
    int64_t bytes = 0, start = now_ns(), deadline = start + (int64_t)(seconds * 1e9);
    int rc = 0;
    while (now_ns() < deadline && n < MAX_SAMPLES) {
        size_t off = 0;
        while (off < wsize) {
            ssize_t w = write(fd, buf + off, wsize - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                perror("disk: write");
                rc = 1;
                goto out;
            }
            off += (size_t)w;
        }
        int64_t t0 = now_ns();
        if (fdatasync(fd)) {
            perror("disk: fdatasync");
            rc = 1;
            goto out;
        }
        lat[n++] = now_ns() - t0;
        bytes += (int64_t)wsize;
    }
    double el = (double)(now_ns() - start) / 1e9;
    qsort(lat, n, sizeof(int64_t), cmp_i64);
    double mbps = el > 0 ? (double)bytes / el / 1e6 : 0;
    double p50 = (double)quantile(lat, n, 0.5) / 1e6, p99 = (double)quantile(lat, n, 0.99) / 1e6;
    double mx = n ? (double)lat[n - 1] / 1e6 : 0;
    printf("disk: %zu B appends + fdatasync: %.1f MB/s over %.2f s (%zu syncs); fdatasync ms "
           "p50 %.3f p99 %.3f max %.3f\n",
           wsize, mbps, el, n, p50, p99, mx);
    printf("RESULT baseline=disk write_size=%zu syncs=%zu elapsed_s=%.3f mb_per_s=%.1f "
           "fsync_p50_ms=%.3f fsync_p99_ms=%.3f fsync_max_ms=%.3f\n",
           wsize, n, el, mbps, p50, p99, mx);
out:
    close(fd);
    unlink(path);
    free(buf);
    free(lat);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"seconds", required_argument, NULL, 's'},
        {"write-size", required_argument, NULL, 'w'},
        {"dir", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2) {
        fprintf(stderr, "usage: chronik-baseline net|disk [--dir DIR] [--seconds S] "
                        "[--write-size BYTES]\n");
        return 2;
    }
    const char *mode = argv[1], *dir = NULL;
    double seconds = 2;
    size_t wsize = 0;
    optind = 2;
    for (int c; (c = getopt_long(argc, argv, "s:w:d:", longs, NULL)) != -1;) {
        switch (c) {
        case 's': seconds = strtod(optarg, NULL); break;
        case 'w': wsize = strtoull(optarg, NULL, 10); break;
        case 'd': dir = optarg; break;
        default: return 2;
        }
    }
    if (seconds <= 0 || seconds > 60) {
        fprintf(stderr, "--seconds must be in (0, 60]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(mode, "net") == 0)
        return run_net(seconds, wsize ? wsize : 1 << 20);
    if (strcmp(mode, "disk") == 0) {
        if (!dir) {
            fprintf(stderr, "disk: --dir is required\n");
            return 2;
        }
        return run_disk(dir, seconds, wsize ? wsize : 64 << 10);
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
