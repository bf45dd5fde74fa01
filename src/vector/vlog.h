/* The vector log of one partition: every vector the indexer produced, in offset order, as
 * fixed-size records, so record i (= the HNSW internal id i) sits at a computed position.
 * The format is at the top of vlog.c and in docs/VECTOR.md.
 *
 * One writer; ck_vlog_read may run beside appends (it reads only records below the count
 * it was given). Not thread-safe otherwise. */
#ifndef CK_VECTOR_VLOG_H
#define CK_VECTOR_VLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CK_VMETRIC_COSINE = 1, CK_VMETRIC_DOT = 2, CK_VMETRIC_EUCLIDEAN = 3 };

#define CK_VLOG_HEADER 64
#define CK_VLOG_MODEL_MAX 39
#define CK_VLOG_MAX_DIMS 4096

typedef struct ck_vlog ck_vlog_t;

typedef struct ck_vlog_params {
    uint32_t dims;     /* 1..CK_VLOG_MAX_DIMS */
    int metric;        /* CK_VMETRIC_* */
    const char *model; /* at most CK_VLOG_MODEL_MAX bytes */
} ck_vlog_params_t;

/* Opens (or creates) the file at path with these parameters and keeps its first `records`
 * records (a longer file has an uncommitted tail: it is cut). A missing file is created
 * only when records is 0. Errors: CK_ECORRUPT (bad header or CRC), CK_EEXIST (the header
 * has other parameters), CK_ETRUNC (fewer than `records` records), CK_EINVAL (bad
 * parameters), CK_EIO, CK_ENOMEM. */
int ck_vlog_open(const char *path, const ck_vlog_params_t *p, uint64_t records, ck_vlog_t **out);
void ck_vlog_close(ck_vlog_t *l);

uint64_t ck_vlog_count(const ck_vlog_t *l);
size_t ck_vlog_record_size(uint32_t dims);

/* Appends one record (buffered until ck_vlog_sync). offset must exceed the last one. */
int ck_vlog_append(ck_vlog_t *l, int64_t offset, int64_t ts, const float *v);
/* Writes buffered records and fdatasyncs: every record so far is durable. */
int ck_vlog_sync(ck_vlog_t *l);

/* Reads records [first, first + n) (written ones: below the count at the last sync or
 * append). Any of offsets, ts, vecs (n * dims floats) may be NULL. */
int ck_vlog_read(ck_vlog_t *l, uint64_t first, size_t n, int64_t *offsets, int64_t *ts,
                 float *vecs);

#endif
