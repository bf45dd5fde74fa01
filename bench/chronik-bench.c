/* chronik-bench: a Kafka load generator on librdkafka, for Chronik or any Kafka broker.
 *
 *   chronik-bench produce --brokers H:P --topic T [--size 256] [--count N | --duration S]
 *                 [--acks 1|all|0] [--linger-ms 5] [--batch-size 1000000]
 *                 [--compression none] [--rate 0] [--partitions 1]
 *   chronik-bench consume --brokers H:P --topic T --count N [--timeout S]
 *
 * produce creates the topic (CreateTopics; an existing topic is fine), then sends
 * records of --size random bytes with no key, as fast as librdkafka accepts them
 * (--rate 0) or paced at --rate msg/s, for --count records or --duration seconds. Timed
 * records (every one when paced, one in 16 at full speed: --latency-every) carry their
 * send time (CLOCK_MONOTONIC, ns) as librdkafka's per-message opaque; the delivery
 * report turns it into a latency sample, so latency = produce() call to
 * delivery report, queueing in the client included. Delivery reports are served by a
 * dedicated thread so that a sleeping (paced) producer does not delay them, then, once
 * that thread has stopped, by the final flush().
 * Throughput is delivered records over first produce() .. last delivery report.
 *
 * consume reads --count records from the beginning of every partition of the topic
 * (assign() with offset BEGINNING under a throwaway group.id that is never used on the
 * wire, as no subscribe or commit happens) and reports msg/s and MB/s over the first
 * record .. the last one.
 *
 * Output: human-readable lines, then exactly one line starting with "RESULT " holding
 * space-separated key=value pairs (run.sh parses it). Exit status 0 on success, 1 on
 * any delivery error, timeout or missing records, 2 on usage errors.
 *
 * Payloads are one shared, never-freed buffer passed without RD_KAFKA_MSG_F_COPY, so the
 * client spends no time copying: the figures measure the broker, not the benchmark.
 * Every loop is bounded by a count or a deadline. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

/* Safety cap for runs bounded only by a count: no run may take longer than this. */
#define BENCH_MAX_RUN_S 600
/* How long flush() may take at the end of a produce run. */
#define BENCH_FLUSH_MS 60000

/* ---- time ---- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time (user + system) this process has used, in seconds: with the elapsed time it
 * tells whether the client, rather than the broker, was the bottleneck. */
static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A clock read costing a fraction of now_ns(), accurate to a few milliseconds: for the
 * end-of-run time, which every delivery report updates. */
static int64_t coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* ---- latency histogram ----
 * Log-linear buckets over microseconds: values below HIST_SUB are exact, above that each
 * power of two is split into HIST_SUB / 2 buckets, so a bucket is at most 1/64 (1.6 %)
 * wide relative to its values. Fixed size (about 30 KiB), no allocation while recording. */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (HIST_SUB + (64 - HIST_SUB_BITS) * (HIST_SUB / 2))

typedef struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n;
    uint64_t max;
    double sum;
} hist_t;

static size_t hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (size_t)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - (HIST_SUB_BITS - 1);
    uint64_t top = v >> shift; /* in [HIST_SUB / 2, HIST_SUB) */
    return HIST_SUB + (size_t)(shift - 1) * (HIST_SUB / 2) + (size_t)(top - HIST_SUB / 2);
}

/* The middle of bucket i. */
static double hist_value(size_t i)
{
    if (i < HIST_SUB)
        return (double)i;
    size_t j = i - HIST_SUB;
    int shift = (int)(j / (HIST_SUB / 2)) + 1;
    uint64_t top = j % (HIST_SUB / 2) + HIST_SUB / 2;
    return (double)(top << shift) + (double)((1ull << shift) - 1) / 2.0;
}

static void hist_add(hist_t *h, uint64_t v)
{
    h->counts[hist_index(v)]++;
    h->n++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
}

/* The value at quantile q (0 < q <= 1), in the histogram's unit; 0 when empty. */
static double hist_quantile(const hist_t *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double v = hist_value(i);
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

/* ---- options ---- */

typedef struct opts {
    const char *mode;
    const char *brokers;
    const char *topic;
    size_t size;
    int64_t count;
    double duration_s;
    const char *acks;
    const char *linger_ms;
    const char *batch_size;
    const char *compression;
    double rate;
    int partitions;
    double timeout_s;
    int latency_every; /* time one record in this many (0: 1 when paced, else 16) */
    bool quiet;
    char **extra; /* "key=value" librdkafka properties from -X */
    int nextra;
} opts_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: chronik-bench produce --brokers H:P --topic T [--size BYTES]\n"
            "                     [--count N | --duration S] [--acks 0|1|all] [--linger-ms MS]\n"
            "                     [--batch-size BYTES] [--compression none|gzip|snappy|lz4|zstd]\n"
            "                     [--rate MSG_PER_S (0 = max)] [--partitions N] [-X key=value]\n"
            "                     [--latency-every N (1 when paced, else 16)]\n"
            "       chronik-bench consume --brokers H:P --topic T --count N [--timeout S]\n"
            "                     [-X key=value]\n");
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    static const struct option longs[] = {
        {"brokers", required_argument, NULL, 'b'},   {"topic", required_argument, NULL, 't'},
        {"size", required_argument, NULL, 's'},      {"count", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'},  {"acks", required_argument, NULL, 'a'},
        {"linger-ms", required_argument, NULL, 'l'}, {"batch-size", required_argument, NULL, 'B'},
        {"compression", required_argument, NULL, 'z'}, {"rate", required_argument, NULL, 'r'},
        {"partitions", required_argument, NULL, 'p'}, {"timeout", required_argument, NULL, 'T'},
        {"latency-every", required_argument, NULL, 'L'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (opts_t){.brokers = "127.0.0.1:9092", .size = 256, .acks = "1", .linger_ms = "5",
                  .batch_size = "1000000", .compression = "none", .partitions = 1,
                  .timeout_s = 120};
    if (argc < 2) {
        usage(stderr);
        return -1;
    }
    o->mode = argv[1];
    o->extra = calloc((size_t)argc, sizeof(char *));
    if (!o->extra)
        return -1;
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "b:t:s:n:d:a:l:B:z:r:p:T:L:X:qh", longs, NULL)) != -1) {
        switch (c) {
        case 'b': o->brokers = optarg; break;
        case 't': o->topic = optarg; break;
        case 's': o->size = strtoull(optarg, NULL, 10); break;
        case 'n': o->count = strtoll(optarg, NULL, 10); break;
        case 'd': o->duration_s = strtod(optarg, NULL); break;
        case 'a': o->acks = optarg; break;
        case 'l': o->linger_ms = optarg; break;
        case 'B': o->batch_size = optarg; break;
        case 'z': o->compression = optarg; break;
        case 'r': o->rate = strtod(optarg, NULL); break;
        case 'p': o->partitions = atoi(optarg); break;
        case 'T': o->timeout_s = strtod(optarg, NULL); break;
        case 'L': o->latency_every = atoi(optarg); break;
        case 'X': o->extra[o->nextra++] = optarg; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (!o->topic || o->partitions < 1 || o->rate < 0 || o->count < 0 || o->duration_s < 0 ||
        o->latency_every < 0) {
        usage(stderr);
        return -1;
    }
    if (strcmp(o->mode, "produce") == 0 && o->count == 0 && o->duration_s == 0) {
        fprintf(stderr, "produce: give --count or --duration\n");
        return -1;
    }
    if (strcmp(o->mode, "consume") == 0 && o->count == 0) {
        fprintf(stderr, "consume: give --count\n");
        return -1;
    }
    return 0;
}

/* ---- librdkafka helpers ---- */

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "config %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

static int conf_set_extra(rd_kafka_conf_t *conf, const opts_t *o)
{
    for (int i = 0; i < o->nextra; i++) {
        char kv[512];
        snprintf(kv, sizeof(kv), "%s", o->extra[i]);
        char *eq = strchr(kv, '=');
        if (!eq) {
            fprintf(stderr, "-X %s: expected key=value\n", o->extra[i]);
            return -1;
        }
        *eq = '\0';
        if (conf_set(conf, kv, eq + 1))
            return -1;
    }
    return 0;
}

/* librdkafka logs through this so that its lines are marked and go to stderr. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    fprintf(stderr, "rdkafka %d %s: %s\n", level, fac, buf);
}

/* Creates the topic (an existing one is fine) and waits until metadata shows it with
 * at least one partition. Returns its partition count, or -1. */
static int ensure_topic(rd_kafka_t *rk, const char *topic, int partitions, double timeout_s)
{
    char err[512];
    if (partitions > 0) {
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
        if (!nt) {
            fprintf(stderr, "NewTopic: %s\n", err);
            return -1;
        }
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)(timeout_s * 1000));
        int rc = 0;
        if (!ev) {
            fprintf(stderr, "CreateTopics %s: no answer within %.0f s\n", topic, timeout_s);
            rc = -1;
        } else if (rd_kafka_event_error(ev)) {
            fprintf(stderr, "CreateTopics %s: %s\n", topic, rd_kafka_event_error_string(ev));
            rc = -1;
        } else {
            size_t n = 0;
            const rd_kafka_topic_result_t **tr =
                rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
            rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(tr[0]) : 0;
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                fprintf(stderr, "CreateTopics %s: %s\n", topic, rd_kafka_err2str(e));
                rc = -1;
            }
        }
        if (ev)
            rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_NewTopic_destroy(nt);
        if (rc)
            return -1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int64_t deadline = now_ns() + (int64_t)(timeout_s * 1e9);
    int found = -1;
    while (found < 0 && now_ns() < deadline) {
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && md->topics[0].err == 0 && md->topics[0].partition_cnt > 0)
                found = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        if (found < 0)
            usleep(100 * 1000);
    }
    rd_kafka_topic_destroy(rkt);
    if (found < 0)
        fprintf(stderr, "topic %s: not in metadata after %.0f s\n", topic, timeout_s);
    return found;
}

/* ---- produce ---- */

typedef struct prod_state {
    hist_t lat_us;          /* written by the poller thread only */
    atomic_llong delivered; /* successful delivery reports */
    atomic_llong failed;    /* failed delivery reports */
    atomic_llong last_dr_ns;
    atomic_int first_err;
    atomic_bool stop_poller;
} prod_state_t;

/* Delivery report, on the poller thread. The opaque is the produce() time. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    prod_state_t *st = opaque;
    if (m->err) {
        atomic_fetch_add(&st->failed, 1);
        int zero = 0;
        atomic_compare_exchange_strong(&st->first_err, &zero, (int)m->err);
        return;
    }
    int64_t sent = (int64_t)(intptr_t)m->_private;
    if (sent) {
        int64_t t = now_ns();
        hist_add(&st->lat_us, (uint64_t)(t - sent > 0 ? (t - sent) / 1000 : 0));
    }
    atomic_fetch_add(&st->delivered, 1);
    atomic_store(&st->last_dr_ns, coarse_ns());
}

typedef struct poller_arg {
    rd_kafka_t *rk;
    prod_state_t *st;
} poller_arg_t;

static void *poller_main(void *arg)
{
    poller_arg_t *pa = arg;
    while (!atomic_load(&pa->st->stop_poller))
        rd_kafka_poll(pa->rk, 50);
    return NULL;
}

static int run_produce(const opts_t *o)
{
    static prod_state_t st; /* the histogram is large: keep it off the stack */
    char err[512], num[32];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int bad = conf_set(conf, "bootstrap.servers", o->brokers) ||
              conf_set(conf, "acks", o->acks) || conf_set(conf, "linger.ms", o->linger_ms) ||
              conf_set(conf, "batch.size", o->batch_size) ||
              conf_set(conf, "compression.type", o->compression) ||
              conf_set(conf, "enable.idempotence", "false") ||
              conf_set(conf, "queue.buffering.max.messages", "200000") ||
              conf_set(conf, "queue.buffering.max.kbytes", "262144") ||
              conf_set(conf, "message.timeout.ms", "60000");
    snprintf(num, sizeof(num), "%zu", o->size + 4096 > 1000000 ? o->size + 4096 : 1000000);
    bad = bad || conf_set(conf, "message.max.bytes", num) || conf_set_extra(conf, o);
    if (bad) {
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "producer: %s\n", err);
        return 2;
    }
    int nparts = ensure_topic(rk, o->topic, o->partitions, o->timeout_s);
    if (nparts < 0) {
        rd_kafka_destroy(rk);
        return 1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    uint8_t *payload = malloc(o->size ? o->size : 1);
    if (!payload) {
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return 1;
    }
    /* Pseudo-random bytes: incompressible enough that compression is not flattered. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < o->size; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        payload[i] = (uint8_t)x;
    }

    poller_arg_t pa = {rk, &st};
    pthread_t poller;
    if (pthread_create(&poller, NULL, poller_main, &pa) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }

    double dur = o->duration_s > 0 ? o->duration_s : BENCH_MAX_RUN_S;
    double cpu0 = cpu_seconds();
    int64_t start = now_ns();
    int64_t end_by = start + (int64_t)(dur * 1e9);
    int64_t gap_ns = o->rate > 0 ? (int64_t)(1e9 / o->rate) : 0;
    /* At full speed the clock reads are a noticeable part of the client's CPU, which is
     * what limits small-record runs on few cores: time a sample of the records. */
    int64_t every = o->latency_every ? o->latency_every : gap_ns ? 1 : 16;
    int64_t produced = 0, queue_full = 0;
    int produce_err = 0;
    for (;;) {
        if (o->count && produced >= o->count)
            break;
        bool timed = produced % every == 0;
        int64_t t = 0;
        if (gap_ns || timed || produced % 64 == 0) {
            t = now_ns();
            if (t >= end_by)
                break;
        }
        if (gap_ns) {
            int64_t due = start + produced * gap_ns;
            if (t < due) {
                sleep_until_ns(due < end_by ? due : end_by);
                continue;
            }
        }
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, payload, o->size, NULL, 0,
                             timed ? (void *)(intptr_t)t : NULL) == 0) {
            produced++;
            continue;
        }
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
            produce_err = 1;
            break;
        }
        queue_full++;
        usleep(200); /* the poller drains delivery reports meanwhile */
    }
    int64_t produce_end = now_ns();
    /* flush() serves delivery reports itself: stop the poller first so that the
     * histogram keeps a single writer. */
    atomic_store(&st.stop_poller, true);
    pthread_join(poller, NULL);
    rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, BENCH_FLUSH_MS);
    rd_kafka_poll(rk, 0);

    double cpu = cpu_seconds() - cpu0;
    int64_t delivered = atomic_load(&st.delivered);
    int64_t failed = atomic_load(&st.failed);
    int64_t last = atomic_load(&st.last_dr_ns);
    double elapsed = (double)((last > start ? last : produce_end) - start) / 1e9;
    double mps = elapsed > 0 ? (double)delivered / elapsed : 0;
    double mbps = mps * (double)o->size / 1e6;
    double q[5] = {0.5, 0.9, 0.99, 0.999, 1.0};
    double ms[5];
    for (int i = 0; i < 5; i++)
        ms[i] = (i == 4 ? (double)st.lat_us.max : hist_quantile(&st.lat_us, q[i])) / 1000.0;
    double avg_ms = st.lat_us.n ? st.lat_us.sum / (double)st.lat_us.n / 1000.0 : 0;
    const char *status = "ok";
    if (produce_err || failed || ferr || delivered != produced)
        status = "error";
    if (!o->quiet) {
        printf("produce %s: %" PRId64 " records of %zu B, acks=%s linger.ms=%s batch.size=%s "
               "compression=%s partitions=%d rate=%.0f\n",
               o->topic, produced, o->size, o->acks, o->linger_ms, o->batch_size,
               o->compression, nparts, o->rate);
        printf("  delivered %" PRId64 ", failed %" PRId64 " (%s), in %.2f s: %.0f msg/s, "
               "%.1f MB/s\n",
               delivered, failed,
               failed ? rd_kafka_err2str((rd_kafka_resp_err_t)atomic_load(&st.first_err))
                      : "-",
               elapsed, mps, mbps);
        printf("  client CPU %.2f s (%.0f%% of one core)\n", cpu,
               elapsed > 0 ? 100 * cpu / elapsed : 0);
        printf("  latency ms (%" PRIu64 " timed records): avg %.3f p50 %.3f p90 %.3f p99 %.3f "
               "p99.9 %.3f max %.3f\n",
               st.lat_us.n, avg_ms, ms[0], ms[1], ms[2], ms[3], ms[4]);
    }
    printf("RESULT mode=produce topic=%s size=%zu acks=%s linger_ms=%s batch_size=%s "
           "compression=%s partitions=%d target_rate=%.0f produced=%" PRId64
           " delivered=%" PRId64 " failed=%" PRId64 " queue_full=%" PRId64
           " elapsed_s=%.3f msgs_per_s=%.0f mb_per_s=%.2f avg_ms=%.3f p50_ms=%.3f "
           "p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f timed=%" PRIu64
           " client_cpu_s=%.2f status=%s\n",
           o->topic, o->size, o->acks, o->linger_ms, o->batch_size, o->compression, nparts,
           o->rate, produced, delivered, failed, queue_full, elapsed, mps, mbps, avg_ms, ms[0],
           ms[1], ms[2], ms[3], ms[4], st.lat_us.n, cpu, status);
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(payload);
    return strcmp(status, "ok") == 0 ? 0 : 1;
}

/* ---- consume ---- */

static int run_consume(const opts_t *o)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* group.id is required by librdkafka's assign(); nothing group-related goes on the wire
     * without subscribe() or commits. */
    int bad = conf_set(conf, "bootstrap.servers", o->brokers) ||
              conf_set(conf, "group.id", "chronik-bench-unused") ||
              conf_set(conf, "enable.auto.commit", "false") ||
              conf_set(conf, "enable.auto.offset.store", "false") ||
              conf_set(conf, "enable.partition.eof", "false") ||
              conf_set(conf, "auto.offset.reset", "earliest") ||
              conf_set(conf, "fetch.max.bytes", "52428800") ||
              conf_set(conf, "max.partition.fetch.bytes", "8388608") ||
              conf_set(conf, "receive.message.max.bytes", "104857600") ||
              conf_set(conf, "queued.max.messages.kbytes", "262144") ||
              conf_set_extra(conf, o);
    if (bad) {
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "consumer: %s\n", err);
        return 2;
    }
    int nparts = ensure_topic(rk, o->topic, 0, o->timeout_s);
    if (nparts < 0) {
        rd_kafka_destroy(rk);
        return 1;
    }
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(nparts);
    for (int i = 0; i < nparts; i++)
        rd_kafka_topic_partition_list_add(tpl, o->topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    double cpu0 = cpu_seconds();
    int64_t t_assign = now_ns();
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, tpl);
    rd_kafka_topic_partition_list_destroy(tpl);
    if (e) {
        fprintf(stderr, "assign: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return 1;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    enum { BATCH = 8192 };
    rd_kafka_message_t **msgs = calloc(BATCH, sizeof(*msgs));
    int64_t got = 0, bytes = 0, first = 0, last = 0, errors = 0;
    int64_t deadline = t_assign + (int64_t)(o->timeout_s * 1e9);
    while (msgs && got < o->count && now_ns() < deadline) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 200, msgs, BATCH);
        if (n < 0) {
            fprintf(stderr, "consume: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }
        int64_t t = now_ns();
        for (ssize_t i = 0; i < n; i++) {
            if (msgs[i]->err) {
                if (errors++ < 5)
                    fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(msgs[i]));
            } else {
                if (!first)
                    first = t;
                got++;
                bytes += (int64_t)msgs[i]->len;
            }
            rd_kafka_message_destroy(msgs[i]);
        }
        if (n > 0)
            last = t;
    }
    free(msgs);
    double cpu = cpu_seconds() - cpu0;
    double elapsed = first && last > first ? (double)(last - first) / 1e9 : 0;
    double since_assign = last ? (double)(last - t_assign) / 1e9 : 0;
    double mps = elapsed > 0 ? (double)got / elapsed : 0;
    double mbps = elapsed > 0 ? (double)bytes / elapsed / 1e6 : 0;
    const char *status = got >= o->count && !errors ? "ok" : "error";
    if (!o->quiet) {
        printf("consume %s: %" PRId64 "/%" PRId64 " records, %" PRId64 " value bytes, "
               "%d partitions\n",
               o->topic, got, o->count, bytes, nparts);
        printf("  %.2f s from first to last record (%.2f s from assign): %.0f msg/s, "
               "%.1f MB/s\n",
               elapsed, since_assign, mps, mbps);
        printf("  client CPU %.2f s (%.0f%% of one core)\n", cpu,
               since_assign > 0 ? 100 * cpu / since_assign : 0);
    }
    printf("RESULT mode=consume topic=%s partitions=%d count=%" PRId64 " consumed=%" PRId64
           " bytes=%" PRId64 " errors=%" PRId64 " elapsed_s=%.3f since_assign_s=%.3f "
           "msgs_per_s=%.0f mb_per_s=%.2f client_cpu_s=%.2f status=%s\n",
           o->topic, nparts, o->count, got, bytes, errors, elapsed, since_assign, mps, mbps, cpu,
           status);
    fflush(stdout);
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return strcmp(status, "ok") == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    opts_t o;
    signal(SIGPIPE, SIG_IGN);
    if (parse_opts(argc, argv, &o))
        return 2;
    int rc;
    if (strcmp(o.mode, "produce") == 0)
        rc = run_produce(&o);
    else if (strcmp(o.mode, "consume") == 0)
        rc = run_consume(&o);
    else {
        usage(stderr);
        rc = 2;
    }
    free(o.extra);
    return rc;
}
