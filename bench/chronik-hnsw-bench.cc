/* chronik-hnsw-bench: the HNSW adapter (src/vector/hnsw.h) against hnswlib used directly
 * with the same parameters, and both against an exact scan, on generated vectors.
 *
 *   chronik-hnsw-bench [--n N (1000000)] [--dims D (512)] [--queries Q (1000)] [--m 16]
 *                      [--efc 200] [--ef 50,100,200] [--seed S (1)] [--threads T (2)]
 *                      [--metric cosine|dot|euclidean (cosine)] [--spread SD (1.0)]
 *                      [--order ab|ba (ab: the adapter first)] [--interleave]
 *
 * Data: a Gaussian mixture with a low intrinsic dimension, as text embeddings have: 1,000
 * random centres in a latent space of L = min(64, D) dimensions (coordinates N(0, 1)), each
 * point a centre plus N(0, SD^2) per latent coordinate, mapped to D dimensions by one fixed
 * random matrix (entries N(0, 1/L)), plus isotropic noise N(0, 0.05^2) per coordinate, then
 * normalised to length 1. Random numbers: xorshift64* seeded from --seed, Box-Muller. The
 * queries are drawn the same way from another stream (not taken from the data set).
 *
 * In one run: ground truth (top 10 by exact scores, OpenBLAS sgemm on T threads); the
 * exact scan's QPS (one thread, sgemv plus a top-10 pass per query, timed on as many
 * queries as fit in about 10 s); then (a) the adapter: insert rate (T threads calling
 * ck_hnsw_add; the capacity reserved first), then per ef the QPS of one thread and the
 * recall@10; the adapter is freed; then (b) hnswlib's HierarchicalNSW<float> with the same
 * space, M, ef_construction, seed and insertion scheme, the same figures (--order ba: (b)
 * first). Each ef's query pass runs 3 times; the best time counts. Times are taken as wall
 * and as CPU time (the process's for inserts, the thread's for queries); the ratios
 * adapter/hnswlib (1.00 = no overhead) are of CPU time.
 *
 * On a shared machine (or a VM, where time the host takes away still counts as the
 * guest's CPU time) phases run minutes apart see different load, and their ratio can be
 * off by 30%. --interleave builds both graphs at once (both in memory: about twice the
 * vectors' size each) and runs every insert and every query on both sides back to back,
 * in alternating order, each call timed by itself: the load then weighs on both alike and
 * the ratios hold to about 1%. Insert rates there are n / (CPU seconds / T).
 *
 * Prints a Markdown table and one JSON line with every figure. */
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>
#include <hnswlib/hnswlib.h>

extern "C" {
#include "vector/hnsw.h"
#include "vector/vlog.h"
void openblas_set_num_threads(int num_threads);
}

namespace
{

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull)
    {
        if (!s)
            s = 1;
    }
    uint64_t next()
    {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    double unit() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
    /* Two N(0, 1) numbers (Box-Muller). */
    void gauss2(float *a, float *b)
    {
        double u1 = unit(), u2 = unit();
        if (u1 < 1e-300)
            u1 = 1e-300;
        double r = std::sqrt(-2.0 * std::log(u1)), t = 6.283185307179586 * u2;
        *a = (float)(r * std::cos(t));
        *b = (float)(r * std::sin(t));
    }
    void gauss(float *v, size_t n)
    {
        size_t i = 0;
        for (; i + 1 < n; i += 2)
            gauss2(&v[i], &v[i + 1]);
        if (i < n) {
            float spare;
            gauss2(&v[i], &spare);
        }
    }
};

double now()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/* CPU seconds of the process (all threads) or of the calling thread. Other work on the
 * machine stretches wall time much more than CPU time, so the ratios use CPU time. */
double cpu_now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

constexpr size_t NCENTRES = 1000;
constexpr size_t K = 10;

/* The generator's fixed parts: latent centres and the projection. */
struct World {
    size_t dims, latent;
    float spread;               /* sd around a centre, per latent coordinate */
    std::vector<float> centres; /* NCENTRES x latent */
    std::vector<float> proj;    /* dims x latent */
    World(size_t d, float sd, uint64_t seed) : dims(d), latent(std::min<size_t>(64, d)), spread(sd)
    {
        Rng r(seed ^ 0xC0FFEE);
        centres.resize(NCENTRES * latent);
        r.gauss(centres.data(), centres.size());
        proj.resize(dims * latent);
        r.gauss(proj.data(), proj.size());
        float sc = 1.0f / std::sqrt((float)latent);
        for (float &x : proj)
            x *= sc;
    }
    /* n points from stream `stream` into out (n x dims). */
    void draw(uint64_t seed, uint64_t stream, size_t n, float *out) const
    {
        Rng r(seed * 1000003 + stream);
        const size_t B = 4096;
        std::vector<float> y(B * latent), noise(B * dims);
        for (size_t at = 0; at < n; at += B) {
            size_t b = std::min(B, n - at);
            r.gauss(y.data(), b * latent);
            for (size_t i = 0; i < b; i++) {
                const float *c = &centres[(r.next() % NCENTRES) * latent];
                for (size_t j = 0; j < latent; j++)
                    y[i * latent + j] = c[j] + spread * y[i * latent + j];
            }
            float *x = out + at * dims;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)dims, (int)latent,
                        1.0f, y.data(), (int)latent, proj.data(), (int)latent, 0.0f, x, (int)dims);
            r.gauss(noise.data(), b * dims);
            for (size_t i = 0; i < b; i++) {
                double s = 0;
                for (size_t j = 0; j < dims; j++) {
                    float v = x[i * dims + j] + 0.05f * noise[i * dims + j];
                    x[i * dims + j] = v;
                    s += (double)v * v;
                }
                float inv = s > 0 ? (float)(1.0 / std::sqrt(s)) : 1.0f;
                for (size_t j = 0; j < dims; j++)
                    x[i * dims + j] *= inv;
            }
        }
    }
};

/* Top K (best first) kept by insertion: ids and scores. */
struct TopK {
    float s[K];
    uint32_t id[K];
    size_t n = 0;
    void offer(float sc, uint32_t i)
    {
        if (n == K && sc <= s[K - 1])
            return;
        size_t j = n < K ? n++ : K - 1;
        while (j > 0 && s[j - 1] < sc) {
            s[j] = s[j - 1];
            id[j] = id[j - 1];
            j--;
        }
        s[j] = sc;
        id[j] = i;
    }
};

/* Exact scores (higher is better, the ranking of the metric): dot product, or for
 * euclidean 2<x,q> - |x|^2 (|q|^2 is the same for every x). */
void ground_truth(const float *x, size_t n, size_t dims, const float *qs, size_t nq, int metric,
                  const std::vector<float> &norms, std::vector<TopK> &gt)
{
    const size_t B = 8192;
    std::vector<float> s(B * nq);
    gt.assign(nq, TopK());
    for (size_t at = 0; at < n; at += B) {
        size_t b = std::min(B, n - at);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)nq, (int)dims, 1.0f,
                    x + at * dims, (int)dims, qs, (int)dims, 0.0f, s.data(), (int)nq);
        for (size_t i = 0; i < b; i++)
            for (size_t j = 0; j < nq; j++) {
                float v = s[i * nq + j];
                if (metric == CK_VMETRIC_EUCLIDEAN)
                    v = 2 * v - norms[at + i];
                gt[j].offer(v, (uint32_t)(at + i));
            }
    }
}

double recall_of(const TopK &gt, const uint64_t *labels, size_t n)
{
    size_t found = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < gt.n; j++)
            found += labels[i] == gt.id[j];
    return gt.n ? (double)found / (double)gt.n : 1.0;
}

struct EfResult {
    size_t ef;
    double qps, qps_cpu, recall; /* queries per wall second, per CPU second */
};
struct Side {
    double insert_s = 0, insert_cpu_s = 0;
    std::vector<EfResult> ef;
};

/* Runs add(i) for i in [0, n) on T threads, each taking the next i. Sets the wall and the
 * CPU seconds it took. */
template <typename F> void parallel_insert(size_t n, int threads, F add, Side *side)
{
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    double t0 = now(), c0 = cpu_now(CLOCK_PROCESS_CPUTIME_ID);
    std::vector<std::thread> th;
    for (int t = 0; t < threads; t++)
        th.emplace_back([&] {
            for (size_t i; (i = next.fetch_add(1)) < n;)
                if (!add(i)) {
                    failed = true;
                    return;
                }
        });
    for (auto &t : th)
        t.join();
    if (failed) {
        std::fprintf(stderr, "insert failed\n");
        std::exit(1);
    }
    side->insert_s = now() - t0;
    side->insert_cpu_s = cpu_now(CLOCK_PROCESS_CPUTIME_ID) - c0;
}

/* Times the query pass 3 times (best counts); recall from the first pass. search(q, labels)
 * returns the number of labels it wrote. */
template <typename F>
EfResult run_queries(size_t ef, const float *qs, size_t nq, size_t dims,
                     const std::vector<TopK> &gt, F search)
{
    EfResult r{ef, 0, 0, 0};
    double best = 1e300, best_cpu = 1e300, rsum = 0;
    uint64_t labels[K];
    for (int round = 0; round < 3; round++) {
        double t0 = now(), c0 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
        for (size_t qi = 0; qi < nq; qi++) {
            size_t n = search(qs + qi * dims, labels);
            if (round == 0)
                rsum += recall_of(gt[qi], labels, n);
        }
        best = std::min(best, now() - t0);
        best_cpu = std::min(best_cpu, cpu_now(CLOCK_THREAD_CPUTIME_ID) - c0);
    }
    r.qps = (double)nq / best;
    r.qps_cpu = (double)nq / best_cpu;
    r.recall = rsum / (double)nq;
    return r;
}

std::vector<size_t> parse_list(const char *s)
{
    std::vector<size_t> v;
    while (*s) {
        char *end;
        unsigned long x = std::strtoul(s, &end, 10);
        if (end == s || !x)
            return {};
        v.push_back(x);
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return {};
    }
    return v;
}

void usage(const char *argv0)
{
    std::fprintf(stderr,
                 "usage: %s [--n N] [--dims D] [--queries Q] [--m M] [--efc EFC] [--ef LIST] "
                 "[--seed S] [--threads T] [--metric cosine|dot|euclidean] [--spread SD] "
                 "[--order ab|ba] [--interleave]\n",
                 argv0);
    std::exit(2);
}

} // namespace

int main(int argc, char **argv)
{
    size_t n = 1000000, dims = 512, nq = 1000, m = 16, efc = 200;
    uint64_t seed = 1;
    int threads = 2, metric = CK_VMETRIC_COSINE;
    double spread = 1.0;
    bool hnswlib_first = false, interleave = false;
    std::vector<size_t> efs = {50, 100, 200};
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--interleave") {
            interleave = true;
            continue;
        }
        if (i + 1 >= argc)
            usage(argv[0]);
        const char *v = argv[++i];
        if (a == "--n")
            n = std::strtoull(v, nullptr, 10);
        else if (a == "--dims")
            dims = std::strtoull(v, nullptr, 10);
        else if (a == "--queries")
            nq = std::strtoull(v, nullptr, 10);
        else if (a == "--m")
            m = std::strtoull(v, nullptr, 10);
        else if (a == "--efc")
            efc = std::strtoull(v, nullptr, 10);
        else if (a == "--ef")
            efs = parse_list(v);
        else if (a == "--seed")
            seed = std::strtoull(v, nullptr, 10);
        else if (a == "--order")
            hnswlib_first = !std::strcmp(v, "ba");
        else if (a == "--spread")
            spread = std::strtod(v, nullptr);
        else if (a == "--threads")
            threads = std::atoi(v);
        else if (a == "--metric")
            metric = !std::strcmp(v, "cosine")      ? CK_VMETRIC_COSINE
                     : !std::strcmp(v, "dot")       ? CK_VMETRIC_DOT
                     : !std::strcmp(v, "euclidean") ? CK_VMETRIC_EUCLIDEAN
                                                    : 0;
        else
            usage(argv[0]);
    }
    if (!n || n > CK_HNSW_MAX_COUNT || !dims || dims > CK_HNSW_MAX_DIMS || !nq || m < 2 ||
        m > CK_HNSW_MAX_M || !efc || efs.empty() || threads < 1 || !metric || !(spread >= 0))
        usage(argv[0]);
    const char *mname = metric == CK_VMETRIC_COSINE ? "cosine"
                        : metric == CK_VMETRIC_DOT  ? "dot"
                                                    : "euclidean";

    std::printf("# chronik-hnsw-bench: n %zu, dims %zu, queries %zu, M %zu, efc %zu, seed %llu, "
                "threads %d, metric %s\n",
                n, dims, nq, m, efc, (unsigned long long)seed, threads, mname);
    std::printf("# data: Gaussian mixture, %zu centres N(0, I) in a %zu-d latent space, sd %.2f "
                "around each, random linear map to %zu-d, + N(0, 0.05^2) noise, normalised; "
                "xorshift64* + Box-Muller from seed %llu; queries from another stream\n",
                NCENTRES, std::min<size_t>(64, dims), spread, dims, (unsigned long long)seed);
    std::fflush(stdout);

    openblas_set_num_threads(threads);
    double t0 = now();
    World w(dims, (float)spread, seed);
    std::vector<float> x(n * dims), qs(nq * dims);
    w.draw(seed, 1, n, x.data());
    w.draw(seed, 2, nq, qs.data());
    std::vector<float> norms(n, 1.0f);
    if (metric == CK_VMETRIC_EUCLIDEAN)
        for (size_t i = 0; i < n; i++)
            norms[i] = cblas_sdot((int)dims, &x[i * dims], 1, &x[i * dims], 1);
    std::printf("# generated in %.1f s\n", now() - t0);
    t0 = now();
    std::vector<TopK> gt;
    ground_truth(x.data(), n, dims, qs.data(), nq, metric, norms, gt);
    std::printf("# ground truth (sgemm, %d threads) in %.1f s\n", threads, now() - t0);
    std::fflush(stdout);

    /* (c) exact scan, one thread. */
    openblas_set_num_threads(1);
    std::vector<float> sc(n);
    size_t exact_q = 0;
    double exact_t = 0, exact_r = 0;
    t0 = now();
    while (exact_q < nq && (exact_q < 3 || now() - t0 < 10.0)) {
        const float *q = &qs[exact_q * dims];
        double s0 = now();
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)dims, 1.0f, x.data(), (int)dims, q, 1,
                    0.0f, sc.data(), 1);
        TopK top;
        for (size_t i = 0; i < n; i++)
            top.offer(metric == CK_VMETRIC_EUCLIDEAN ? 2 * sc[i] - norms[i] : sc[i], (uint32_t)i);
        exact_t += now() - s0;
        uint64_t labels[K];
        for (size_t i = 0; i < top.n; i++)
            labels[i] = top.id[i];
        exact_r += recall_of(gt[exact_q], labels, top.n);
        exact_q++;
    }
    double exact_qps = (double)exact_q / exact_t;
    std::printf("# exact scan: %.2f QPS over %zu queries (recall %.4f)\n", exact_qps, exact_q,
                exact_r / (double)exact_q);
    std::fflush(stdout);

    /* (a) the adapter. */
    Side a;
    auto run_adapter = [&] {
        ck_hnsw_t *h = nullptr;
        if (ck_hnsw_new((uint32_t)dims, metric, (uint32_t)m, (uint32_t)efc, seed, &h) ||
            ck_hnsw_reserve(h, n)) {
            std::fprintf(stderr, "ck_hnsw_new failed\n");
            std::exit(1);
        }
        parallel_insert(
            n, threads, [&](size_t i) { return ck_hnsw_add(h, &x[i * dims], i, nullptr) == 0; },
            &a);
        std::printf("# adapter: %zu inserted in %.1f s (%.0f/s), %.1f CPU s\n", n, a.insert_s,
                    (double)n / a.insert_s, a.insert_cpu_s);
        std::fflush(stdout);
        for (size_t ef : efs) {
            a.ef.push_back(
                run_queries(ef, qs.data(), nq, dims, gt, [&](const float *q, uint64_t *l) {
                    ck_hnsw_hit_t hits[K];
                    size_t got = 0;
                    if (ck_hnsw_search(h, q, K, ef, nullptr, hits, &got)) {
                        std::fprintf(stderr, "search failed\n");
                        std::exit(1);
                    }
                    for (size_t i = 0; i < got; i++)
                        l[i] = hits[i].label;
                    return got;
                }));
            std::printf("# adapter ef %zu: %.0f QPS (%.0f per CPU s), recall@10 %.4f\n", ef,
                        a.ef.back().qps, a.ef.back().qps_cpu, a.ef.back().recall);
            std::fflush(stdout);
        }
        ck_hnsw_free(h);
    };

    /* (b) hnswlib directly. */
    Side b;
    auto run_hnswlib = [&] {
        std::unique_ptr<hnswlib::SpaceInterface<float>> space;
        if (metric == CK_VMETRIC_EUCLIDEAN)
            space.reset(new hnswlib::L2Space(dims));
        else
            space.reset(new hnswlib::InnerProductSpace(dims));
        auto *g = new hnswlib::HierarchicalNSW<float>(space.get(), n, m, efc, seed);
        parallel_insert(
            n, threads,
            [&](size_t i) {
                g->addPoint(&x[i * dims], i);
                return true;
            },
            &b);
        std::printf("# hnswlib: %zu inserted in %.1f s (%.0f/s), %.1f CPU s\n", n, b.insert_s,
                    (double)n / b.insert_s, b.insert_cpu_s);
        std::fflush(stdout);
        for (size_t ef : efs) {
            g->setEf(ef);
            b.ef.push_back(
                run_queries(ef, qs.data(), nq, dims, gt, [&](const float *q, uint64_t *l) {
                    auto pq = g->searchKnn(q, K);
                    size_t got = pq.size();
                    for (size_t i = got; i > 0; i--) {
                        l[i - 1] = pq.top().second;
                        pq.pop();
                    }
                    return got;
                }));
            std::printf("# hnswlib ef %zu: %.0f QPS (%.0f per CPU s), recall@10 %.4f\n", ef,
                        b.ef.back().qps, b.ef.back().qps_cpu, b.ef.back().recall);
            std::fflush(stdout);
        }
        delete g;
    };
    /* --interleave: both graphs at once; every insert and every query runs on both, in
     * alternating order, each call timed by itself (thread CPU time; wall for queries), so
     * other work on the machine weighs on both sides alike. */
    auto run_interleaved = [&] {
        ck_hnsw_t *h = nullptr;
        if (ck_hnsw_new((uint32_t)dims, metric, (uint32_t)m, (uint32_t)efc, seed, &h) ||
            ck_hnsw_reserve(h, n)) {
            std::fprintf(stderr, "ck_hnsw_new failed\n");
            std::exit(1);
        }
        std::unique_ptr<hnswlib::SpaceInterface<float>> space;
        if (metric == CK_VMETRIC_EUCLIDEAN)
            space.reset(new hnswlib::L2Space(dims));
        else
            space.reset(new hnswlib::InnerProductSpace(dims));
        auto *g = new hnswlib::HierarchicalNSW<float>(space.get(), n, m, efc, seed);
        std::atomic<size_t> next{0};
        std::mutex mu;
        double t0 = now();
        std::vector<std::thread> th;
        for (int t = 0; t < threads; t++)
            th.emplace_back([&] {
                double sa = 0, sb = 0;
                for (size_t i; (i = next.fetch_add(1)) < n;) {
                    for (int r = 0; r < 2; r++) {
                        bool do_a = (r == 0) == ((i & 1) == 0);
                        double c0 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
                        if (do_a) {
                            if (ck_hnsw_add(h, &x[i * dims], i, nullptr)) {
                                std::fprintf(stderr, "insert failed\n");
                                std::exit(1);
                            }
                        } else {
                            g->addPoint(&x[i * dims], i);
                        }
                        (do_a ? sa : sb) += cpu_now(CLOCK_THREAD_CPUTIME_ID) - c0;
                    }
                }
                std::lock_guard<std::mutex> lk(mu);
                a.insert_cpu_s += sa;
                b.insert_cpu_s += sb;
            });
        for (auto &t : th)
            t.join();
        /* Wall time is shared: each side's is estimated as its CPU time over the threads. */
        a.insert_s = a.insert_cpu_s / threads;
        b.insert_s = b.insert_cpu_s / threads;
        std::printf("# interleaved build of both: %.1f s; CPU s adapter %.1f, hnswlib %.1f\n",
                    now() - t0, a.insert_cpu_s, b.insert_cpu_s);
        std::fflush(stdout);
        for (size_t ef : efs) {
            g->setEf(ef);
            double best[2][2] = {{1e300, 1e300}, {1e300, 1e300}}, rsum[2] = {0, 0};
            for (int round = 0; round < 3; round++) {
                double sum[2][2] = {{0, 0}, {0, 0}}; /* [side][wall, cpu] */
                for (size_t qi = 0; qi < nq; qi++) {
                    const float *q = &qs[qi * dims];
                    for (int r = 0; r < 2; r++) {
                        int side = (r == 0) == ((qi & 1) == 0) ? 0 : 1;
                        uint64_t l[K];
                        size_t got = 0;
                        double w0 = now(), c0 = cpu_now(CLOCK_THREAD_CPUTIME_ID);
                        if (side == 0) {
                            ck_hnsw_hit_t hits[K];
                            if (ck_hnsw_search(h, q, K, ef, nullptr, hits, &got)) {
                                std::fprintf(stderr, "search failed\n");
                                std::exit(1);
                            }
                            for (size_t i = 0; i < got; i++)
                                l[i] = hits[i].label;
                        } else {
                            auto pq = g->searchKnn(q, K);
                            got = pq.size();
                            for (size_t i = got; i > 0; i--) {
                                l[i - 1] = pq.top().second;
                                pq.pop();
                            }
                        }
                        sum[side][1] += cpu_now(CLOCK_THREAD_CPUTIME_ID) - c0;
                        sum[side][0] += now() - w0;
                        if (round == 0)
                            rsum[side] += recall_of(gt[qi], l, got);
                    }
                }
                for (int sd = 0; sd < 2; sd++)
                    for (int c = 0; c < 2; c++)
                        best[sd][c] = std::min(best[sd][c], sum[sd][c]);
            }
            a.ef.push_back({ef, nq / best[0][0], nq / best[0][1], rsum[0] / nq});
            b.ef.push_back({ef, nq / best[1][0], nq / best[1][1], rsum[1] / nq});
            std::printf("# ef %zu: adapter %.0f QPS (%.0f per CPU s) recall %.4f; hnswlib %.0f "
                        "QPS (%.0f per CPU s) recall %.4f\n",
                        ef, a.ef.back().qps, a.ef.back().qps_cpu, a.ef.back().recall,
                        b.ef.back().qps, b.ef.back().qps_cpu, b.ef.back().recall);
            std::fflush(stdout);
        }
        delete g;
        ck_hnsw_free(h);
    };

    if (interleave) {
        run_interleaved();
    } else if (hnswlib_first) {
        run_hnswlib();
        run_adapter();
    } else {
        run_adapter();
        run_hnswlib();
    }

    /* Report. Ratios are adapter / hnswlib time (1.00: no overhead), from CPU time. */
    double ins_ratio = a.insert_cpu_s / b.insert_cpu_s, ins_ratio_wall = a.insert_s / b.insert_s;
    std::printf("\n| system | ef | insert vectors/s | QPS (1 thread) | QPS per CPU s | recall@10 | "
                "CPU time vs hnswlib |\n|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < efs.size(); i++) {
        std::printf("| adapter | %zu | %.0f | %.0f | %.0f | %.4f | %.3f |\n", efs[i],
                    (double)n / a.insert_s, a.ef[i].qps, a.ef[i].qps_cpu, a.ef[i].recall,
                    b.ef[i].qps_cpu / a.ef[i].qps_cpu);
        std::printf("| hnswlib | %zu | %.0f | %.0f | %.0f | %.4f | 1 |\n", efs[i],
                    (double)n / b.insert_s, b.ef[i].qps, b.ef[i].qps_cpu, b.ef[i].recall);
    }
    std::printf("| exact scan | - | - | %.2f | - | %.4f | - |\n", exact_qps,
                exact_r / (double)exact_q);
    std::printf("\ninsert CPU time adapter/hnswlib: %.3f (wall %.3f, %d threads%s)\n\n", ins_ratio,
                ins_ratio_wall, threads,
                interleave ? "; interleaved: insert vectors/s = n / (CPU s / threads)" : "");

    std::printf("{\"bench\":\"hnsw\",\"n\":%zu,\"dims\":%zu,\"queries\":%zu,\"m\":%zu,\"efc\":%zu,"
                "\"seed\":%llu,\"threads\":%d,\"metric\":\"%s\",\"k\":%zu,\"mode\":\"%s\","
                "\"data\":\"gaussian mixture, %zu centres, %zu-d latent, sd %.2f, normalised\",",
                n, dims, nq, m, efc, (unsigned long long)seed, threads, mname, K,
                interleave      ? "interleaved"
                : hnswlib_first ? "hnswlib first"
                                : "adapter first",
                NCENTRES, std::min<size_t>(64, dims), spread);
    const Side *sides[2] = {&a, &b};
    const char *names[2] = {"adapter", "hnswlib"};
    for (int s = 0; s < 2; s++) {
        std::printf("\"%s\":{\"insert_s\":%.3f,\"insert_cpu_s\":%.3f,\"insert_per_s\":%.1f,"
                    "\"search\":[",
                    names[s], sides[s]->insert_s, sides[s]->insert_cpu_s,
                    (double)n / sides[s]->insert_s);
        for (size_t i = 0; i < efs.size(); i++)
            std::printf("%s{\"ef\":%zu,\"qps\":%.1f,\"qps_cpu\":%.1f,\"recall\":%.4f}",
                        i ? "," : "", sides[s]->ef[i].ef, sides[s]->ef[i].qps,
                        sides[s]->ef[i].qps_cpu, sides[s]->ef[i].recall);
        std::printf("]},");
    }
    std::printf("\"exact\":{\"qps\":%.3f,\"queries_timed\":%zu,\"recall\":%.4f},", exact_qps,
                exact_q, exact_r / (double)exact_q);
    std::printf("\"ratio_adapter_hnswlib\":{\"insert_cpu\":%.4f,\"insert_wall\":%.4f,"
                "\"search\":[",
                ins_ratio, ins_ratio_wall);
    for (size_t i = 0; i < efs.size(); i++)
        std::printf("%s{\"ef\":%zu,\"cpu\":%.4f,\"wall\":%.4f}", i ? "," : "", efs[i],
                    b.ef[i].qps_cpu / a.ef[i].qps_cpu, b.ef[i].qps / a.ef[i].qps);
    std::printf("]}}\n");
    return 0;
}
