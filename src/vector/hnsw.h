/* An HNSW graph of one topic partition: a C adapter over hnswlib (header-only C++), with
 * a search of our own that applies id-range and predicate filters inside the graph walk.
 *
 * Ids: the vectors get internal ids 0, 1, 2, ... in the order they are added (the vector
 * log's record numbers, docs/VECTOR.md). Each carries a 64-bit label of the caller's (the
 * record's offset, say), stored and returned as is; labels need not be unique.
 *
 * Scores are "higher is better" in every metric: cosine similarity, dot product, or
 * 1 / (1 + L2 distance). Under cosine, vectors and queries are normalised to length 1
 * first (a zero vector is kept as is and scores 0 against everything).
 *
 * Threads: the handle holds no lock of its own for readers. The caller keeps a rwlock per
 * graph: ck_hnsw_search, ck_hnsw_get, ck_hnsw_count and ck_hnsw_save (it only reads) under
 * the read lock, any number at once; ck_hnsw_add, ck_hnsw_reserve and ck_hnsw_mark_deleted
 * under the write lock. Exception: several ck_hnsw_add (and ck_hnsw_reserve) calls may run at once
 * on different threads while nothing else runs (a bulk build); ids then follow the order
 * in which the adds got in, not the order of the calls.
 *
 * Errors: 0 or a negative CK_E* code (core/err.h). A failure in the middle of an add
 * (memory) leaves hnswlib's structures half-updated: the handle then refuses all work
 * with CK_ESTATE and must be freed (and rebuilt from the vector log). No C++ exception
 * crosses this interface. The file format is described at the top of hnsw.cc. */
#ifndef CK_VECTOR_HNSW_H
#define CK_VECTOR_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ck_hnsw ck_hnsw_t;

/* Limits of the parameters (CK_EINVAL outside them). */
#define CK_HNSW_MAX_DIMS 4096
#define CK_HNSW_MIN_M 2
#define CK_HNSW_MAX_M 1024
#define CK_HNSW_MAX_COUNT 0x7fffffffu /* ids fit hnswlib's int-sized visited lists */

/* Which ids a search may return: id_lo <= id < id_hi, not deleted, and allow(ctx, id)
 * true when allow is set. allow runs on the searching thread, only for ids inside the
 * range, and at most once per id per search; it must not call back into this graph.
 * Nodes that fail the filter are still walked through (their links are followed). */
typedef struct ck_hnsw_filter {
    uint32_t id_lo, id_hi;
    bool (*allow)(void *ctx, uint32_t id);
    void *ctx;
} ck_hnsw_filter_t;

#define CK_HNSW_FILTER_ALL ((ck_hnsw_filter_t){0, UINT32_MAX, NULL, NULL})

typedef struct ck_hnsw_hit {
    uint32_t id;
    uint64_t label;
    float score; /* higher is better */
} ck_hnsw_hit_t;

/* An empty graph. dims 1..CK_HNSW_MAX_DIMS (fixed for the graph's life); metric one of
 * CK_VMETRIC_COSINE, _DOT, _EUCLIDEAN (vector/vlog.h); m CK_HNSW_MIN_M..CK_HNSW_MAX_M
 * (links per node and layer; 2m on the base layer); ef_construction >= 1 (hnswlib raises
 * it to m); seed drives the level draws, so sequential adds of the same vectors build the
 * same graph. Errors: CK_EINVAL, CK_ENOMEM. */
int ck_hnsw_new(uint32_t dims, int metric, uint32_t m, uint32_t ef_construction, uint64_t seed,
                ck_hnsw_t **out);
/* Frees the graph; NULL is fine. */
void ck_hnsw_free(ck_hnsw_t *h);

/* Makes room for at least n vectors in all (the graph also grows by itself, doubling;
 * this saves the copies when the final size is known). Errors: CK_ETOOBIG (over
 * CK_HNSW_MAX_COUNT), CK_ENOMEM (when hnswlib's resize failed half-way the handle is then
 * in CK_ESTATE), CK_ESTATE. */
int ck_hnsw_reserve(ck_hnsw_t *h, uint64_t n);

/* Adds a vector of dims floats (copied; cosine stores it normalised) with a label; its id
 * (the previous count) goes to *id_out when id_out is set. Errors: CK_EINVAL (NULL, or a
 * NaN or infinite component), CK_ETOOBIG (CK_HNSW_MAX_COUNT reached), CK_ENOMEM and
 * CK_ESTATE (see above). */
int ck_hnsw_add(ck_hnsw_t *h, const float *v, uint64_t label, uint32_t *id_out);

/* Marks id deleted: searches walk through it but never return it (the graph keeps it;
 * there is no undo). Returns 0 when id was live, CK_EEXIST when it was deleted already,
 * CK_ERANGE for an id >= the count, CK_ESTATE. */
int ck_hnsw_mark_deleted(ck_hnsw_t *h, uint32_t id);

/* Vectors added so far, deleted ones included (ids are 0..count-1). */
uint64_t ck_hnsw_count(const ck_hnsw_t *h);
uint32_t ck_hnsw_dims(const ck_hnsw_t *h);

/* Copies vector id (as stored: normalised under cosine) into v (dims floats). Deleted ids
 * still have their vector. Errors: CK_ERANGE, CK_EINVAL, CK_ESTATE. */
int ck_hnsw_get(const ck_hnsw_t *h, uint32_t id, float *v);

/* The best min(k, allowed vectors) hits for query q (dims floats), best first, into out
 * (room for k), their number into *n. ef (raised to k) is the size of the result list the
 * walk keeps: larger is slower and more exact. f NULL allows every live id. When the
 * allowed id range holds fewer than 32 * ef ids the search is an exact scan of it instead
 * of a graph walk. A very selective predicate over a large range makes the walk visit much
 * of the graph (it stops only once ef allowed ids are found), which is correct but slow:
 * narrow the range instead where possible. Errors: CK_EINVAL (NULL, or a non-finite
 * query), CK_ENOMEM, CK_ESTATE. */
int ck_hnsw_search(const ck_hnsw_t *h, const float *q, size_t k, size_t ef,
                   const ck_hnsw_filter_t *f, ck_hnsw_hit_t *out, size_t *n);

/* Writes the graph to path: into path + ".tmp", fsynced, renamed over path, then the
 * folder fsynced. On error path is unchanged and the temporary file removed. Errors:
 * CK_EIO, CK_ENOSPC (and other CK_E* from errno), CK_ENOMEM, CK_ETOOBIG (path too long),
 * CK_ESTATE. */
int ck_hnsw_save(const ck_hnsw_t *h, const char *path);

/* Reads a graph that ck_hnsw_save wrote, checking all of it first (checksum, sizes,
 * every link) so a damaged file is an error, never a crash. dims, metric and m must match
 * the file; ef_construction applies to later adds. Errors: CK_ENOENT (no file),
 * CK_ECORRUPT (truncated, damaged or not ours), CK_EEXIST (written with other dims,
 * metric or m), CK_EINVAL (bad parameters), CK_EIO, CK_ENOMEM. */
int ck_hnsw_load(const char *path, uint32_t dims, int metric, uint32_t m, uint32_t ef_construction,
                 ck_hnsw_t **out);

/* Tests only: writes the graph with hnswlib's own saveIndex (no trailer, no fsync), so a
 * test can check that ck_hnsw_save's bytes before the trailer are hnswlib's format. */
int ck__hnsw_save_native(const ck_hnsw_t *h, const char *path);

#ifdef __cplusplus
}
#endif

#endif
