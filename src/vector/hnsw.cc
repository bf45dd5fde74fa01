/* HNSW graph of one partition over hnswlib 0.6.2 (header-only C++; Debian libhnswlib-dev).
 *
 * hnswlib builds the graph (addPoint, resizeIndex, markDeletedInternal). The search is our
 * own walk over its public structures, because 0.6.2's searchKnn has no filter: the greedy
 * descent through the upper layers, then a best-first walk of the base layer that follows
 * the links of every node but admits to the results only nodes that pass the filter (id
 * range, not deleted, the caller's predicate), stopping as usual once ef results are held
 * and the closest unexpanded candidate is farther than the worst of them. A small allowed
 * range (fewer than 32 * ef ids) is scanned exactly instead.
 *
 * Labels: hnswlib keys every element by a label and turns an add with a known label into an
 * update. We hand it a fresh number per add (the add's slot: 0, 1, 2, ..., equal to the id
 * unless adds ran concurrently), so every add inserts, and keep the caller's labels in our
 * own array, indexed by id.
 *
 * File format, version 1 (<data>/vector/<topic>/p<N>.hnsw), written by ck_hnsw_save; byte
 * order is the host's (little-endian on every machine we build for; checked at compile
 * time) because hnswlib writes its part that way.
 *
 *   bytes [0, G): hnswlib's own serialisation, byte for byte what saveIndex() writes
 *   (hnswlib's loadIndex reads this part as is, once the bytes after it are cut off):
 *     0   8  offsetLevel0 = 0
 *     8   8  max_elements (capacity at save time; ignored)
 *     16  8  cur_element_count = n
 *     24  8  size_data_per_element S = (4 + 8m) + 4 dims + 8
 *     32  8  label_offset = 4 + 8m + 4 dims
 *     40  8  offsetData = 4 + 8m
 *     48  4  maxlevel (int32; -1 when empty)
 *     52  4  enterpoint_node (uint32; 0xffffffff when empty)
 *     56  8  maxM = m
 *     64  8  maxM0 = 2m
 *     72  8  M = m
 *     80  8  mult (double, 1 / ln m; ignored)
 *     88  8  ef_construction (ignored: the caller's applies)
 *     96     n elements of S bytes, element i = id i:
 *              u16 base-layer link count, u8 flags (bit 0: deleted), u8 0,
 *              2m u32 links, dims f32 (the vector), u64 hnswlib label (the add's slot)
 *            then per element i: u32 L_i = level_i * (4 + 4m) (0 for level 0), and L_i
 *              bytes: per layer 1..level_i a u16 link count, u16 0, m u32 links
 *   bytes [G, G + 8n): the caller's labels, u64 per id
 *   trailer, 48 bytes:
 *     0   4  magic "CKHG"
 *     4   2  version = 1
 *     6   2  metric (1 cosine, 2 dot, 3 euclidean)
 *     8   4  dims
 *     12  4  m
 *     16  8  n
 *     24  8  G
 *     32  8  seed (of the level draws)
 *     40  4  CRC-32C of bytes [0, G + 8n)
 *     44  4  CRC-32C of trailer bytes [0, 44)
 *
 * Load never trusts the file: the trailer's own CRC, then its parameters against the
 * caller's (other dims, metric or m: CK_EEXIST), then the size (file = G + 8n + 48), then
 * hnswlib's header against what this build computes for dims and m, the whole body's CRC,
 * and finally the structure: link counts within m / 2m, every link below n, upper-layer
 * links only to nodes that have that layer, levels at most maxlevel, the entry point on
 * that level, and the hnswlib labels a permutation of 0..n-1 (so later adds cannot hit one).
 * The level generator is then advanced by n draws so that adds after a load draw the levels
 * they would have drawn without the save and load. */
#include "vector/hnsw.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <queue>
#include <random>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__SSE__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

/* hnswlib defines functions (cpuid, xgetbv, AVXCapable, AVX512Capable) and SIMD function
 * pointers at namespace scope in its headers, without inline or static. Renamed here, they
 * stay private to this file, so another C++ file of the same program (the benchmark) may
 * include hnswlib too without duplicate symbols. */
/* hnswlib's SSE code reads one link past the end of a full upper-layer list (a prefetch
 * address, in searchBaseLayer during adds; upstream issues #107 and #578): a few bytes past
 * the allocation, harmless with malloc's slack, but AddressSanitizer stops on it. The
 * sanitizer build therefore uses hnswlib's plain C++ distance code, without that prefetch. */
#if defined(__SANITIZE_ADDRESS__)
#define NO_MANUAL_VECTORIZATION
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_MANUAL_VECTORIZATION
#endif
#endif
#define hnswlib ck__hnswlib
#define cpuid ck__hnswlib_cpuid
#define xgetbv ck__hnswlib_xgetbv
#define AVXCapable ck__hnswlib_AVXCapable
#define AVX512Capable ck__hnswlib_AVX512Capable
#include <hnswlib/hnswlib.h>
#undef cpuid
#undef xgetbv
#undef AVXCapable
#undef AVX512Capable

extern "C" {
#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "core/fs.h"
#include "vector/vlog.h"
}

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the file format is little-endian");
static_assert(sizeof(size_t) == 8 && sizeof(hnswlib::tableint) == 4, "hnswlib's field sizes");

namespace
{

using Graph = hnswlib::HierarchicalNSW<float>;
using hnswlib::linklistsizeint;
using hnswlib::tableint;

constexpr size_t MIN_CAP = 64;      /* first capacity of a new graph */
constexpr size_t EXACT_FACTOR = 32; /* allowed range < 32 * ef: exact scan */
constexpr int MAX_LEVEL = 255;      /* far above any level hnswlib draws */
constexpr size_t HDR_SIZE = 96;     /* hnswlib's header */
constexpr size_t TRAILER_SIZE = 48;
constexpr size_t IO_BUF = 1u << 20;
const char MAGIC[4] = {'C', 'K', 'H', 'G'};
constexpr uint16_t VERSION = 1;

/* A candidate or a result of a search: distance (lower is closer) and id. */
struct Cand {
    float d;
    uint32_t id;
};
/* Results: a max-heap, the worst (farthest; among equals the larger id) on top. */
inline bool res_less(const Cand &a, const Cand &b)
{
    return a.d < b.d || (a.d == b.d && a.id < b.id);
}
/* Candidates: a min-heap, the closest on top. */
inline bool cand_less(const Cand &a, const Cand &b)
{
    return a.d > b.d;
}

/* The error code of the exception being handled. hnswlib reports failed mallocs as
 * runtime_error("Not enough memory..."); anything else from it is an internal failure. */
int exception_code() noexcept
{
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return CK_ENOMEM;
    } catch (const std::runtime_error &e) {
        return std::strncmp(e.what(), "Not enough memory", 17) == 0 ? CK_ENOMEM : CK_EIO;
    } catch (...) {
        return CK_EIO;
    }
}

bool finite_all(const float *v, uint32_t dims)
{
    for (uint32_t i = 0; i < dims; i++)
        if (!std::isfinite(v[i]))
            return false;
    return true;
}

/* Cosine: v scaled to length 1 into out; a zero vector is copied as is. */
void normalise(const float *v, uint32_t dims, float *out)
{
    double s = 0;
    for (uint32_t i = 0; i < dims; i++)
        s += (double)v[i] * v[i];
    float inv = s > 0 ? (float)(1.0 / std::sqrt(s)) : 1.0f;
    for (uint32_t i = 0; i < dims; i++)
        out[i] = v[i] * inv;
}

inline uint16_t list_count(const linklistsizeint *ll)
{
    uint16_t c;
    std::memcpy(&c, ll, sizeof(c));
    return c;
}

inline void prefetch(const void *p)
{
    __builtin_prefetch(p, 0, 3);
}

} // namespace

struct ck_hnsw {
    uint32_t dims = 0;
    int metric = 0;
    uint32_t m = 0;
    uint64_t seed = 0;
    std::unique_ptr<hnswlib::SpaceInterface<float>> space;
    std::unique_ptr<Graph> g;
    std::vector<uint64_t> labels; /* the caller's, by id; sized to the capacity */
    size_t cap = 0;               /* == g->max_elements_ */
    std::atomic<size_t> slots{0}; /* adds admitted (hnswlib labels handed out) */
    std::shared_mutex grow;       /* adds hold it shared, growing exclusive */
    std::atomic<bool> broken{false};
};

namespace
{

bool params_ok(uint32_t dims, int metric, uint32_t m, uint32_t efc)
{
    return dims >= 1 && dims <= CK_HNSW_MAX_DIMS &&
           (metric == CK_VMETRIC_COSINE || metric == CK_VMETRIC_DOT ||
            metric == CK_VMETRIC_EUCLIDEAN) &&
           m >= CK_HNSW_MIN_M && m <= CK_HNSW_MAX_M && efc >= 1;
}

/* Bytes per element on the base layer, as hnswlib lays it out. */
size_t element_size(uint32_t dims, uint32_t m)
{
    return 4 + 8 * (size_t)m + 4 * (size_t)dims + 8;
}

int make(uint32_t dims, int metric, uint32_t m, uint32_t efc, uint64_t seed, size_t cap,
         ck_hnsw_t **out)
{
    try {
        std::unique_ptr<ck_hnsw> h(new ck_hnsw());
        h->dims = dims;
        h->metric = metric;
        h->m = m;
        h->seed = seed;
        if (metric == CK_VMETRIC_EUCLIDEAN)
            h->space.reset(new hnswlib::L2Space(dims));
        else
            h->space.reset(new hnswlib::InnerProductSpace(dims));
        h->g.reset(new Graph(h->space.get(), cap, m, efc, (size_t)seed));
        h->labels.resize(cap);
        h->cap = cap;
        *out = h.release();
        return 0;
    } catch (...) {
        return exception_code();
    }
}

/* Sets the capacity to c (> the current one). Caller holds h->grow exclusively. */
int resize_to(ck_hnsw_t *h, size_t c)
{
    try {
        h->labels.resize(c);
    } catch (...) {
        return CK_ENOMEM; /* nothing changed */
    }
    try {
        h->g->resizeIndex(c);
    } catch (...) {
        h->broken = true; /* resizeIndex may fail half-way */
        return exception_code();
    }
    h->cap = c;
    return 0;
}

/* Grows the capacity to at least need, doubling. Caller holds h->grow exclusively. */
int grow_to(ck_hnsw_t *h, size_t need)
{
    if (need <= h->cap)
        return 0;
    if (need > CK_HNSW_MAX_COUNT)
        return CK_ETOOBIG;
    size_t c = std::max({need, h->cap * 2, MIN_CAP});
    return resize_to(h, std::min(c, (size_t)CK_HNSW_MAX_COUNT));
}

/* Distance from the query to a stored vector, hnswlib's function (lower is closer). The
 * base-layer addresses are cached here: the calls through fn would make the compiler load
 * them from the graph again for every vector. */
struct Dist {
    const char *base; /* the first element's vector */
    size_t stride;    /* bytes per element */
    const float *q;
    hnswlib::DISTFUNC<float> fn;
    void *param;
    const char *vec(uint32_t id) const { return base + (size_t)id * stride; }
    float operator()(uint32_t id) const { return fn(q, vec(id), param); }
};

/* Which ids may enter the results. */
struct Gate {
    const Graph *g;
    uint32_t lo, hi;
    bool deletions;
    bool (*allow)(void *, uint32_t);
    void *ctx;
    bool pass(uint32_t id) const
    {
        if (id < lo || id >= hi)
            return false;
        if (deletions && g->isMarkedDeleted(id))
            return false;
        return !allow || allow(ctx, id);
    }
};

struct Scratch {
    std::vector<Cand> cand, res;
};

/* Returns a visited list to hnswlib's pool, also when an exception leaves the walk. */
struct VisitedGuard {
    hnswlib::VisitedListPool *pool;
    hnswlib::VisitedList *vl;
    ~VisitedGuard() { pool->releaseVisitedList(vl); }
};

/* Greedy descent from the entry point through layers maxlevel..1: the node of layer 1
 * closest to the query, and its distance. */
uint32_t descend(const Graph &g, const Dist &dist, float *dout)
{
    uint32_t cur = g.enterpoint_node_;
    float cd = dist(cur);
    for (int l = g.maxlevel_; l > 0; l--) {
        for (bool moved = true; moved;) {
            moved = false;
            const linklistsizeint *ll = g.get_linklist(cur, l);
            size_t cnt = list_count(ll);
            const uint32_t *nb = (const uint32_t *)(ll + 1);
            for (size_t j = 0; j < cnt; j++) {
                float d = dist(nb[j]);
                if (d < cd) {
                    cd = d;
                    cur = nb[j];
                    moved = true;
                }
            }
        }
    }
    *dout = cd;
    return cur;
}

/* Best-first walk of the base layer from ep: res ends as a max-heap of the (up to) ef
 * closest nodes that pass the gate. Every node reached is expanded whether or not it
 * passes; with Gated false every node passes. */
template <bool Gated>
void walk_base(const Graph &g, const Dist dist, const Gate &gate, uint32_t ep, float ep_d,
               size_t ef, Scratch &s)
{
    const char *const links0 = g.data_level0_memory_ + g.offsetLevel0_;
    VisitedGuard vg{g.visited_list_pool_, g.visited_list_pool_->getFreeVisitedList()};
    hnswlib::vl_type *seen = vg.vl->mass;
    const hnswlib::vl_type tag = vg.vl->curV;
    std::vector<Cand> &cand = s.cand, &res = s.res;
    cand.clear();
    res.clear();
    float bound = std::numeric_limits<float>::infinity(); /* the ef-th result, once held */

    seen[ep] = tag;
    cand.push_back({ep_d, ep});
    if (!Gated || gate.pass(ep)) {
        res.push_back({ep_d, ep});
        if (ef == 1)
            bound = ep_d;
    }
    while (!cand.empty()) {
        const Cand c = cand.front();
        if (c.d > bound)
            break;
        std::pop_heap(cand.begin(), cand.end(), cand_less);
        cand.pop_back();

        const linklistsizeint *ll = (const linklistsizeint *)(links0 + (size_t)c.id * dist.stride);
        const size_t cnt = list_count(ll);
        const uint32_t *nb = (const uint32_t *)(ll + 1);
        if (cnt) {
            prefetch(seen + nb[0]);
            prefetch(dist.vec(nb[0]));
        }
        for (size_t j = 0; j < cnt; j++) {
            const uint32_t id = nb[j];
            if (j + 1 < cnt) {
                prefetch(seen + nb[j + 1]);
                prefetch(dist.vec(nb[j + 1]));
            }
            if (seen[id] == tag)
                continue;
            seen[id] = tag;
            const float d = dist(id);
            if (!(d < bound))
                continue;
            cand.push_back({d, id});
            std::push_heap(cand.begin(), cand.end(), cand_less);
            if (Gated && !gate.pass(id))
                continue;
            res.push_back({d, id});
            std::push_heap(res.begin(), res.end(), res_less);
            if (res.size() > ef) {
                std::pop_heap(res.begin(), res.end(), res_less);
                res.pop_back();
            }
            if (res.size() == ef)
                bound = res.front().d;
        }
    }
}

/* Exact: res ends as a max-heap of the (up to) k closest passing ids of [lo, hi). */
void scan(const Graph &g, const Dist &dist, const Gate &gate, size_t k, Scratch &s)
{
    std::vector<Cand> &res = s.res;
    res.clear();
    for (uint32_t id = gate.lo; id < gate.hi; id++) {
        if (gate.deletions && g.isMarkedDeleted(id))
            continue;
        if (gate.allow && !gate.allow(gate.ctx, id))
            continue;
        const float d = dist(id);
        if (std::isnan(d))
            continue;
        if (res.size() == k) {
            if (!(d < res.front().d)) /* equal: the smaller id, seen first, stays */
                continue;
            std::pop_heap(res.begin(), res.end(), res_less);
            res.pop_back();
        }
        res.push_back({d, id});
        std::push_heap(res.begin(), res.end(), res_less);
    }
}

float score_of(int metric, float d)
{
    if (metric == CK_VMETRIC_EUCLIDEAN)
        return 1.0f / (1.0f + std::sqrt(d > 0 ? d : 0.0f));
    return 1.0f - d; /* hnswlib's inner-product distance is 1 - <q, v> */
}

/* ---- file I/O ---- */

/* Buffered writer that keeps a running CRC-32C of what it writes. */
struct Writer {
    int fd = -1;
    uint8_t *buf = nullptr;
    size_t n = 0;
    uint32_t crc = 0;
    int err = 0;

    void raw(const void *p, size_t len)
    {
        const uint8_t *b = (const uint8_t *)p;
        while (len && !err) {
            ssize_t w = ::write(fd, b, std::min(len, (size_t)1 << 30));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                err = ck_from_errno(errno);
            } else {
                b += w;
                len -= (size_t)w;
            }
        }
    }
    void flush()
    {
        raw(buf, n);
        n = 0;
    }
    /* Appends len bytes; crc says whether they count in the body CRC. */
    void put(const void *p, size_t len, bool in_crc = true)
    {
        if (err)
            return;
        if (in_crc)
            crc = ck_crc32c(crc, p, len);
        if (n + len > IO_BUF) {
            flush();
            if (len >= IO_BUF) {
                raw(p, len);
                return;
            }
        }
        std::memcpy(buf + n, p, len);
        n += len;
    }
    template <typename T> void pod(const T &v) { put(&v, sizeof(v)); }
};

/* Buffered reader over the body [0, G + 8n) of a file, with a running CRC-32C; reading
 * past the body, or a file that ends early, is CK_ECORRUPT. */
struct Reader {
    int fd = -1;
    uint8_t *buf = nullptr;
    size_t pos = 0, len = 0;
    uint64_t left = 0;
    uint32_t crc = 0;

    int fill(uint8_t *dst, size_t want, size_t *got)
    {
        for (;;) {
            ssize_t r = ::read(fd, dst, want);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return ck_from_errno(errno);
            if (r == 0)
                return CK_ECORRUPT; /* shorter than its trailer says */
            *got = (size_t)r;
            return 0;
        }
    }
    int get(void *p, size_t n)
    {
        if (n > left)
            return CK_ECORRUPT;
        left -= n;
        uint8_t *dst = (uint8_t *)p;
        const uint8_t *start = dst;
        size_t want = n;
        while (want) {
            if (pos < len) {
                size_t c = std::min(want, len - pos);
                std::memcpy(dst, buf + pos, c);
                pos += c;
                dst += c;
                want -= c;
            } else if (want >= IO_BUF) {
                size_t got = 0;
                int rc = fill(dst, want, &got);
                if (rc)
                    return rc;
                dst += got;
                want -= got;
            } else {
                size_t got = 0;
                int rc = fill(buf, IO_BUF, &got);
                if (rc)
                    return rc;
                pos = 0;
                len = got;
            }
        }
        crc = ck_crc32c(crc, start, n);
        return 0;
    }
    template <typename T> int pod(T *v) { return get(v, sizeof(*v)); }
};

void put16(uint8_t *p, uint16_t v)
{
    std::memcpy(p, &v, 2);
}
void put32(uint8_t *p, uint32_t v)
{
    std::memcpy(p, &v, 4);
}
void put64(uint8_t *p, uint64_t v)
{
    std::memcpy(p, &v, 8);
}
uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}

/* Writes everything but the fsync into w: hnswlib's part, the labels, the trailer. */
void write_graph(const ck_hnsw_t *h, Writer &w)
{
    const Graph &g = *h->g;
    const size_t n = g.cur_element_count;
    w.pod(g.offsetLevel0_);
    w.pod(g.max_elements_);
    w.pod(g.cur_element_count);
    w.pod(g.size_data_per_element_);
    w.pod(g.label_offset_);
    w.pod(g.offsetData_);
    w.pod(g.maxlevel_);
    w.pod(g.enterpoint_node_);
    w.pod(g.maxM_);
    w.pod(g.maxM0_);
    w.pod(g.M_);
    w.pod(g.mult_);
    w.pod(g.ef_construction_);
    w.put(g.data_level0_memory_, n * g.size_data_per_element_);
    uint64_t gbytes = HDR_SIZE + n * g.size_data_per_element_;
    for (size_t i = 0; i < n; i++) {
        uint32_t l = g.element_levels_[i] > 0
                         ? (uint32_t)(g.size_links_per_element_ * (size_t)g.element_levels_[i])
                         : 0;
        w.pod(l);
        if (l)
            w.put(g.linkLists_[i], l);
        gbytes += 4 + (uint64_t)l;
    }
    w.put(h->labels.data(), n * sizeof(uint64_t));

    uint8_t t[TRAILER_SIZE] = {0};
    std::memcpy(t, MAGIC, 4);
    put16(t + 4, VERSION);
    put16(t + 6, (uint16_t)h->metric);
    put32(t + 8, h->dims);
    put32(t + 12, h->m);
    put64(t + 16, n);
    put64(t + 24, gbytes);
    put64(t + 32, h->seed);
    put32(t + 40, w.crc);
    put32(t + 44, ck_crc32c(0, t, 44));
    w.put(t, sizeof(t), false);
    w.flush();
}

/* The folder of path ("." when it has none) into dir. */
int dir_of(const char *path, char *dir, size_t cap)
{
    const char *slash = std::strrchr(path, '/');
    if (!slash) {
        std::snprintf(dir, cap, ".");
        return 0;
    }
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    if (len >= cap)
        return CK_ETOOBIG;
    std::memcpy(dir, path, len);
    dir[len] = 0;
    return 0;
}

/* Checks every link of a loaded graph and the hnswlib labels (see the top). */
int check_structure(const Graph &g, size_t n)
{
    if (n == 0)
        return g.maxlevel_ == -1 && g.enterpoint_node_ == (tableint)-1 ? 0 : CK_ECORRUPT;
    if (g.maxlevel_ < 0 || g.maxlevel_ > MAX_LEVEL || g.enterpoint_node_ >= n ||
        g.element_levels_[g.enterpoint_node_] != g.maxlevel_)
        return CK_ECORRUPT;
    std::vector<uint8_t> seen_label(n, 0);
    for (size_t i = 0; i < n; i++) {
        const linklistsizeint *ll = g.get_linklist0((tableint)i);
        size_t cnt = list_count(ll);
        if (cnt > g.maxM0_)
            return CK_ECORRUPT;
        const uint32_t *nb = (const uint32_t *)(ll + 1);
        for (size_t j = 0; j < cnt; j++)
            if (nb[j] >= n)
                return CK_ECORRUPT;
        for (int l = 1; l <= g.element_levels_[i]; l++) {
            ll = g.get_linklist((tableint)i, l);
            cnt = list_count(ll);
            if (cnt > g.maxM_)
                return CK_ECORRUPT;
            nb = (const uint32_t *)(ll + 1);
            for (size_t j = 0; j < cnt; j++)
                if (nb[j] >= n || g.element_levels_[nb[j]] < l)
                    return CK_ECORRUPT;
        }
        hnswlib::labeltype lab = g.getExternalLabel((tableint)i);
        if (lab >= n || seen_label[lab])
            return CK_ECORRUPT;
        seen_label[lab] = 1;
    }
    return 0;
}

/* Reads the body of an opened file into a new graph (see the top for the checks). */
int read_graph(int fd, uint64_t fsize, uint32_t dims, int metric, uint32_t m, uint32_t efc,
               ck_hnsw_t **out)
{
    uint8_t t[TRAILER_SIZE];
    if (fsize < HDR_SIZE + TRAILER_SIZE)
        return CK_ECORRUPT;
    ssize_t r;
    do
        r = ::pread(fd, t, sizeof(t), (off_t)(fsize - TRAILER_SIZE));
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return ck_from_errno(errno);
    if ((size_t)r != sizeof(t) || std::memcmp(t, MAGIC, 4) != 0 || get16(t + 4) != VERSION ||
        get32(t + 44) != ck_crc32c(0, t, 44))
        return CK_ECORRUPT;
    if (get16(t + 6) != metric || get32(t + 8) != dims || get32(t + 12) != m)
        return CK_EEXIST;
    const uint64_t n = get64(t + 16), gbytes = get64(t + 24), seed = get64(t + 32);
    const size_t esize = element_size(dims, m);
    if (n > CK_HNSW_MAX_COUNT || gbytes < HDR_SIZE || gbytes > fsize ||
        fsize - gbytes != 8 * n + TRAILER_SIZE || (gbytes - HDR_SIZE) / esize < n)
        return CK_ECORRUPT;

    ck_hnsw_t *h = nullptr;
    int rc = make(dims, metric, m, efc, seed, std::max((size_t)n, MIN_CAP), &h);
    if (rc)
        return rc;
    std::unique_ptr<ck_hnsw> owner(h);
    Graph &g = *h->g;
    Reader rd;
    rd.fd = fd;
    rd.left = gbytes + 8 * n;
    rd.buf = (uint8_t *)ck_malloc(IO_BUF);
    if (!rd.buf)
        return CK_ENOMEM;
    struct FreeBuf {
        uint8_t *p;
        ~FreeBuf() { ck_free(p); }
    } fb{rd.buf};

    uint8_t hdr[HDR_SIZE];
    if ((rc = rd.get(hdr, sizeof(hdr))))
        return rc;
    int32_t maxlevel;
    std::memcpy(&maxlevel, hdr + 48, 4);
    if (get64(hdr) != 0 || get64(hdr + 16) != n || get64(hdr + 24) != g.size_data_per_element_ ||
        g.size_data_per_element_ != esize || get64(hdr + 32) != g.label_offset_ ||
        get64(hdr + 40) != g.offsetData_ || get64(hdr + 56) != g.maxM_ ||
        get64(hdr + 64) != g.maxM0_ || get64(hdr + 72) != g.M_ || maxlevel < -1 ||
        maxlevel > MAX_LEVEL)
        return CK_ECORRUPT;

    if ((rc = rd.get(g.data_level0_memory_, n * esize)))
        return rc;
    /* From here the destructor frees linkLists_[i] of every i < n whose level is above 0:
     * levels stay 0 (as the constructor left them) until a list is in place. */
    g.cur_element_count = n;
    for (size_t i = 0; i < n; i++) {
        g.linkLists_[i] = nullptr;
        uint32_t l;
        if ((rc = rd.pod(&l)))
            return rc;
        if (!l)
            continue;
        if (l % g.size_links_per_element_ || l / g.size_links_per_element_ > (size_t)maxlevel ||
            l > rd.left)
            return CK_ECORRUPT;
        /* hnswlib frees these with free(); 4 bytes spare for its read past the end (above) */
        char *p = (char *)std::malloc(l + sizeof(tableint));
        if (!p)
            return CK_ENOMEM;
        g.linkLists_[i] = p;
        g.element_levels_[i] = (int)(l / g.size_links_per_element_);
        if ((rc = rd.get(p, l)))
            return rc;
    }
    if (rd.left != 8 * n)
        return CK_ECORRUPT;
    if ((rc = rd.get(h->labels.data(), 8 * n)))
        return rc;
    if (rd.crc != get32(t + 40))
        return CK_ECORRUPT;

    g.maxlevel_ = maxlevel;
    std::memcpy(&g.enterpoint_node_, hdr + 52, 4);
    if ((rc = check_structure(g, n)))
        return rc;
    try {
        g.label_lookup_.reserve(n);
        for (size_t i = 0; i < n; i++)
            g.label_lookup_[g.getExternalLabel((tableint)i)] = (tableint)i;
    } catch (...) {
        return exception_code();
    }
    for (size_t i = 0; i < n; i++) {
        if (g.isMarkedDeleted((tableint)i))
            g.num_deleted_++;
        (void)g.getRandomLevel(g.mult_);
    }
    h->slots = n;
    *out = owner.release();
    return 0;
}

} // namespace

extern "C" {

int ck_hnsw_new(uint32_t dims, int metric, uint32_t m, uint32_t ef_construction, uint64_t seed,
                ck_hnsw_t **out)
{
    if (!out)
        return CK_EINVAL;
    *out = nullptr;
    if (!params_ok(dims, metric, m, ef_construction))
        return CK_EINVAL;
    return make(dims, metric, m, ef_construction, seed, MIN_CAP, out);
}

void ck_hnsw_free(ck_hnsw_t *h)
{
    delete h;
}

int ck_hnsw_reserve(ck_hnsw_t *h, uint64_t n)
{
    if (!h)
        return CK_EINVAL;
    if (h->broken)
        return CK_ESTATE;
    if (n > CK_HNSW_MAX_COUNT)
        return CK_ETOOBIG;
    try {
        std::unique_lock<std::shared_mutex> lk(h->grow);
        return n <= h->cap ? 0 : resize_to(h, (size_t)n);
    } catch (...) {
        return exception_code();
    }
}

int ck_hnsw_add(ck_hnsw_t *h, const float *v, uint64_t label, uint32_t *id_out)
{
    if (!h || !v)
        return CK_EINVAL;
    if (h->broken)
        return CK_ESTATE;
    if (!finite_all(v, h->dims))
        return CK_EINVAL;
    alignas(64) float unit[CK_HNSW_MAX_DIMS];
    const float *src = v;
    if (h->metric == CK_VMETRIC_COSINE) {
        normalise(v, h->dims, unit);
        src = unit;
    }
    for (;;) {
        size_t slot;
        try {
            std::shared_lock<std::shared_mutex> lk(h->grow);
            slot = h->slots.fetch_add(1);
            if (slot < h->cap) {
                tableint id;
                try {
                    id = h->g->addPoint(src, (hnswlib::labeltype)slot, -1);
                } catch (...) {
                    h->broken = true; /* the element count already moved */
                    return exception_code();
                }
                h->labels[id] = label;
                if (id_out)
                    *id_out = id;
                return 0;
            }
            h->slots.fetch_sub(1);
        } catch (...) {
            return exception_code();
        }
        if (slot >= CK_HNSW_MAX_COUNT)
            return CK_ETOOBIG;
        try {
            std::unique_lock<std::shared_mutex> lk(h->grow);
            int rc = grow_to(h, h->slots.load() + 1);
            if (rc)
                return rc;
        } catch (...) {
            return exception_code();
        }
    }
}

int ck_hnsw_mark_deleted(ck_hnsw_t *h, uint32_t id)
{
    if (!h)
        return CK_EINVAL;
    if (h->broken)
        return CK_ESTATE;
    if (id >= h->g->cur_element_count)
        return CK_ERANGE;
    if (h->g->isMarkedDeleted(id))
        return CK_EEXIST;
    try {
        h->g->markDeletedInternal(id);
    } catch (...) {
        return exception_code();
    }
    return 0;
}

uint64_t ck_hnsw_count(const ck_hnsw_t *h)
{
    return h ? h->g->cur_element_count : 0;
}

uint32_t ck_hnsw_dims(const ck_hnsw_t *h)
{
    return h ? h->dims : 0;
}

int ck_hnsw_get(const ck_hnsw_t *h, uint32_t id, float *v)
{
    if (!h || !v)
        return CK_EINVAL;
    if (h->broken)
        return CK_ESTATE;
    if (id >= h->g->cur_element_count)
        return CK_ERANGE;
    std::memcpy(v, h->g->getDataByInternalId(id), sizeof(float) * h->dims);
    return 0;
}

int ck_hnsw_search(const ck_hnsw_t *h, const float *q, size_t k, size_t ef,
                   const ck_hnsw_filter_t *f, ck_hnsw_hit_t *out, size_t *n)
{
    if (n)
        *n = 0;
    if (!h || !q || !n || (k && !out))
        return CK_EINVAL;
    if (h->broken)
        return CK_ESTATE;
    if (!finite_all(q, h->dims))
        return CK_EINVAL;
    const Graph &g = *h->g;
    const size_t count = g.cur_element_count;
    Gate gate{&g, 0, (uint32_t)count, g.num_deleted_ > 0, nullptr, nullptr};
    if (f) {
        gate.lo = f->id_lo;
        gate.hi = std::min(f->id_hi, (uint32_t)count);
        gate.allow = f->allow;
        gate.ctx = f->ctx;
    }
    if (!k || gate.lo >= gate.hi)
        return 0;
    ef = std::max(ef, k);

    alignas(64) float unit[CK_HNSW_MAX_DIMS];
    if (h->metric == CK_VMETRIC_COSINE) {
        normalise(q, h->dims, unit);
        q = unit;
    }
    const Dist dist{g.data_level0_memory_ + g.offsetData_, g.size_data_per_element_, q,
                    g.fstdistfunc_, g.dist_func_param_};
    try {
        static thread_local Scratch s;
        const size_t range = gate.hi - gate.lo;
        if (ef > SIZE_MAX / EXACT_FACTOR || range < EXACT_FACTOR * ef) {
            scan(g, dist, gate, k, s);
        } else {
            float ep_d;
            uint32_t ep = descend(g, dist, &ep_d);
            if (gate.lo == 0 && gate.hi == count && !gate.deletions && !gate.allow)
                walk_base<false>(g, dist, gate, ep, ep_d, ef, s);
            else
                walk_base<true>(g, dist, gate, ep, ep_d, ef, s);
        }
        std::vector<Cand> &res = s.res;
        std::sort(res.begin(), res.end(), res_less);
        size_t got = std::min(k, res.size());
        for (size_t i = 0; i < got; i++)
            out[i] = {res[i].id, h->labels[res[i].id], score_of(h->metric, res[i].d)};
        *n = got;
        return 0;
    } catch (...) {
        return exception_code();
    }
}

int ck_hnsw_save(const ck_hnsw_t *h, const char *path)
{
    if (!h || !path)
        return CK_EINVAL;
    if (h->broken)
        return CK_ESTATE;
    char tmp[4096], dir[4096];
    if ((size_t)std::snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return CK_ETOOBIG;
    int rc = dir_of(path, dir, sizeof(dir));
    if (rc)
        return rc;
    Writer w;
    w.buf = (uint8_t *)ck_malloc(IO_BUF);
    if (!w.buf)
        return CK_ENOMEM;
    w.fd = ::open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        rc = ck_from_errno(errno);
        ck_free(w.buf);
        return rc;
    }
    write_graph(h, w);
    rc = w.err;
    if (!rc && ::fsync(w.fd) != 0)
        rc = ck_from_errno(errno);
    if (::close(w.fd) != 0 && !rc)
        rc = ck_from_errno(errno);
    ck_free(w.buf);
    if (!rc && ::rename(tmp, path) != 0)
        rc = ck_from_errno(errno);
    if (rc) {
        ::unlink(tmp);
        return rc;
    }
    return ck_fsync_path(dir, true);
}

int ck_hnsw_load(const char *path, uint32_t dims, int metric, uint32_t m, uint32_t ef_construction,
                 ck_hnsw_t **out)
{
    if (!out)
        return CK_EINVAL;
    *out = nullptr;
    if (!path || !params_ok(dims, metric, m, ef_construction))
        return CK_EINVAL;
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ck_from_errno(errno);
    struct stat st;
    int rc = ::fstat(fd, &st) != 0 ? ck_from_errno(errno) : 0;
    try {
        if (!rc)
            rc = read_graph(fd, (uint64_t)st.st_size, dims, metric, m, ef_construction, out);
    } catch (...) {
        rc = exception_code();
    }
    ::close(fd);
    return rc;
}

int ck__hnsw_save_native(const ck_hnsw_t *h, const char *path)
{
    if (!h || !path)
        return CK_EINVAL;
    try {
        h->g->saveIndex(path);
        return 0;
    } catch (...) {
        return exception_code();
    }
}

} // extern "C"
