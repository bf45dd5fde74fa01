/* Consumer-group benchmarks over librdkafka:
 *
 *   chronik-group-bench join   --brokers H:P --topic T --consumers N [--rounds R]
 *       N consumers subscribe to T in a new group; time from the first subscribe until
 *       every partition is assigned to exactly one of them (the group is stable), R rounds.
 *   chronik-group-bench commit --brokers H:P --topic T --count N
 *       one consumer with a manual assignment commits an offset synchronously N times:
 *       commits/s and commit latency percentiles.
 *
 * Prints one "RESULT ..." line per run, like chronik-bench. Loopback only, bounded. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONSUMERS 64

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int assigned_count[MAX_CONSUMERS];

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    int idx = (int)(intptr_t)opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        assigned_count[idx] = parts->cnt;
    } else {
        rd_kafka_assign(rk, NULL);
        assigned_count[idx] = 0;
    }
}

static rd_kafka_t *consumer(const char *brokers, const char *group, int idx)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", brokers, err, sizeof(err));
    rd_kafka_conf_set(c, "group.id", group, err, sizeof(err));
    rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(c, "session.timeout.ms", "10000", err, sizeof(err));
    rd_kafka_conf_set(c, "heartbeat.interval.ms", "200", err, sizeof(err));
    rd_kafka_conf_set_rebalance_cb(c, rebalance_cb);
    rd_kafka_conf_set_opaque(c, (void *)(intptr_t)idx);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "consumer: %s\n", err);
        exit(1);
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static int partitions_of(rd_kafka_t *rk, const char *topic)
{
    const rd_kafka_metadata_t *md;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int n = -1;
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && !md->topics[0].err)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    return n;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, int n, double p)
{
    if (n == 0)
        return 0;
    int i = (int)(p * (n - 1) + 0.5);
    return v[i] / 1000.0;
}

static int bench_join(const char *brokers, const char *topic, int n, int rounds)
{
    int64_t *times = calloc((size_t)rounds, sizeof(int64_t));
    for (int r = 0; r < rounds; r++) {
        char group[128];
        snprintf(group, sizeof(group), "bench-join-%d-%d-%lld", n, r, (long long)now_us());
        rd_kafka_t *cs[MAX_CONSUMERS];
        memset(assigned_count, 0, sizeof(assigned_count));
        for (int i = 0; i < n; i++)
            cs[i] = consumer(brokers, group, i);
        int parts = partitions_of(cs[0], topic);
        if (parts <= 0) {
            fprintf(stderr, "topic %s has no partitions\n", topic);
            return 1;
        }
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
        int64_t t0 = now_us(), done = 0;
        for (int i = 0; i < n; i++)
            rd_kafka_subscribe(cs[i], sub);
        while (!done && now_us() - t0 < 60000000) {
            for (int i = 0; i < n; i++) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(cs[i], 1);
                if (m)
                    rd_kafka_message_destroy(m);
            }
            int total = 0, members = 0;
            for (int i = 0; i < n; i++) {
                total += assigned_count[i];
                members += assigned_count[i] > 0;
            }
            if (total == parts && members == (n < parts ? n : parts))
                done = now_us();
        }
        times[r] = done ? done - t0 : -1;
        rd_kafka_topic_partition_list_destroy(sub);
        for (int i = 0; i < n; i++) {
            rd_kafka_consumer_close(cs[i]);
            rd_kafka_destroy(cs[i]);
        }
        if (!done) {
            printf("RESULT mode=join consumers=%d status=timeout\n", n);
            return 1;
        }
    }
    qsort(times, (size_t)rounds, sizeof(int64_t), cmp64);
    printf("RESULT mode=join consumers=%d rounds=%d p50_ms=%.1f max_ms=%.1f status=ok\n", n, rounds,
           pct(times, rounds, 0.5), times[rounds - 1] / 1000.0);
    free(times);
    return 0;
}

static int bench_commit(const char *brokers, const char *topic, int count)
{
    char group[128];
    snprintf(group, sizeof(group), "bench-commit-%lld", (long long)now_us());
    rd_kafka_t *rk = consumer(brokers, group, 0);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0);
    rd_kafka_assign(rk, l);
    int64_t *lat = calloc((size_t)count, sizeof(int64_t));
    int64_t t0 = now_us();
    int ok = 0;
    for (int i = 0; i < count && now_us() - t0 < 60000000; i++) {
        l->elems[0].offset = i + 1;
        int64_t s = now_us();
        rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
        lat[ok] = now_us() - s;
        if (e) {
            fprintf(stderr, "commit: %s\n", rd_kafka_err2str(e));
            break;
        }
        ok++;
    }
    double secs = (now_us() - t0) / 1e6;
    qsort(lat, (size_t)ok, sizeof(int64_t), cmp64);
    printf("RESULT mode=commit count=%d commits_per_s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f status=%s\n", ok,
           ok / secs, pct(lat, ok, 0.5), pct(lat, ok, 0.99), ok ? lat[ok - 1] / 1000.0 : 0, ok == count ? "ok" : "short");
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(lat);
    return ok == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "", *brokers = "127.0.0.1:9092", *topic = NULL;
    int consumers = 1, rounds = 5, count = 2000;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--brokers")) brokers = argv[i + 1];
        else if (!strcmp(argv[i], "--topic")) topic = argv[i + 1];
        else if (!strcmp(argv[i], "--consumers")) consumers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--count")) count = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!topic || consumers < 1 || consumers > MAX_CONSUMERS || rounds < 1 || count < 1) {
        fprintf(stderr, "usage: chronik-group-bench join|commit --brokers H:P --topic T [--consumers N] [--rounds R] [--count N]\n");
        return 2;
    }
    if (!strcmp(mode, "join"))
        return bench_join(brokers, topic, consumers, rounds);
    if (!strcmp(mode, "commit"))
        return bench_commit(brokers, topic, count);
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
