/* Helpers shared by the log unit tests (test_log*.c): a small v2 batch writer (kept
 * independent of batch.c's builder on purpose), a model of what was appended, and file
 * utilities for damaging segments. */
#ifndef CK_TEST_LOG_UTIL_H
#define CK_TEST_LOG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "log/log.h"

/* Appends one valid uncompressed v2 batch of nrec records to w: record i has timestamp
 * ts0 + i * dt, no key, a value of vlen bytes derived from seed. Returns its size. */
size_t tl_batch(ck_wbuf_t *w, int nrec, int64_t ts0, int64_t dt, size_t vlen, uint32_t seed);
/* True if the batch at b (total size n) has a valid CRC-32C. */
bool tl_crc_ok(const uint8_t *b, size_t n);

/* Everything appended to one partition, as stored (offsets rewritten). */
typedef struct tl_model {
    ck_wbuf_t bytes;
    int64_t *base, *last;
    size_t *pos;
    size_t n, cap;
} tl_model_t;

void tl_model_add(tl_model_t *m, const uint8_t *b, size_t len);
size_t tl_model_find(const tl_model_t *m, int64_t off); /* batch holding off */
void tl_model_free(tl_model_t *m);
/* Drops the model's batches from index `from` on (after a recovery cut them). */
void tl_model_cut(tl_model_t *m, size_t from);

/* Builds a batch, appends it (checking the result) and records it in the model. */
int64_t tl_append(ck_partition_t *p, tl_model_t *m, int nrec, size_t vlen, int64_t ts0, int64_t dt,
                  int64_t log_append_time);

void tl_cfg(ck_log_config_t *c, int64_t segment_bytes, int32_t interval);
ck_log_t *tl_open(const char *dir, int flush_ms);
ck_partition_t *tl_part(ck_log_t *log, const char *topic, int32_t id, const ck_log_config_t *c);
/* Kicks the flusher until durable_end reaches log_end (fails the test after ~10 s). */
void tl_wait_durable(ck_log_t *log, ck_partition_t *p);
/* Reads [from, upper) in reads of max_bytes, checking every byte against the model and
 * that offsets follow each other. Returns the number of reads. */
int tl_verify(ck_partition_t *p, const tl_model_t *m, int64_t from, int64_t upper,
              size_t max_bytes);
/* Number of durable-callback calls so far (tl_open installs the callback). */
long tl_callbacks(void);

/* "<tmp>/<sub>", "<dir>/<part>/<20-digit base><ext>" */
const char *tl_dir(const char *sub);
const char *tl_seg_path(const char *dir, const char *part, int64_t base, const char *ext);
int64_t tl_file_size(const char *path);
/* Whole-file read/write (write truncates). */
uint8_t *tl_read_file(const char *path, size_t *n);
void tl_write_file(const char *path, const void *data, size_t n);
int tl_count_files(const char *dir, const char *suffix);

#endif
