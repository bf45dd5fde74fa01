/* The storage engine: per-partition segmented logs of Kafka v2 record batches, with
 * group commit (one flusher thread fsyncs every dirty partition once per interval) and
 * recovery of torn tails at open.
 *
 * Thread contract:
 *  - ck_log_* and ck_partition_* are called from ONE owner thread (the server's event
 *    loop), except where a function says "any thread".
 *  - The flusher thread is internal: it fsyncs and then calls the durable callback.
 *  - A partition in the sticky error state (failed write/fsync, disk full) refuses
 *    appends with CK_ESTATE until reopened; reads keep working.
 *
 * Offsets: log_start <= durable_end <= log_end. Records below durable_end are fsynced and
 * are the only ones readers see (the high watermark). */
#ifndef CK_LOG_LOG_H
#define CK_LOG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct ck_log ck_log_t;
typedef struct ck_partition ck_partition_t;

typedef struct ck_log_config {
    int64_t segment_bytes;        /* roll before the active segment would exceed this */
    int64_t segment_ms;           /* roll when the active segment's first write is older */
    int64_t retention_ms;         /* -1 = keep forever */
    int64_t retention_bytes;      /* -1 = unlimited */
    int32_t index_interval_bytes; /* bytes between sparse index entries (4096) */
} ck_log_config_t;

/* Kafka's defaults: 1 GiB segments, 7 days, 7 days retention, unlimited bytes, 4 KiB. */
void ck_log_config_default(ck_log_config_t *cfg);

/* Called from the flusher thread after a flush round advanced some durable_end (or put a
 * partition into the error state). Must be thread-safe and quick (e.g. write an eventfd). */
typedef void (*ck_log_durable_cb)(void *arg);

/* Opens the store rooted at `dir` (created if missing) and starts the flusher, which
 * fsyncs every partition with unsynced bytes each `flush_interval_ms` (>= 1). */
int ck_log_open(const char *dir, int flush_interval_ms, ck_log_durable_cb cb, void *cb_arg,
                ck_log_t **out);
/* Stops the flusher after a last fsync of everything, closes every partition. */
void ck_log_close(ck_log_t *log);
/* Asks the flusher to run a round now instead of at the next tick. Any thread. */
void ck_log_flush_now(ck_log_t *log);

/* Opens (creating and recovering as needed) partition `partition` of `topic`, stored in
 * `<dir>/<topic>-<partition>/`. Recovery scans the tail of the last segment(s) and
 * truncates a torn or CRC-invalid tail; the offset and time indexes are rebuilt when they
 * do not match the log. The handle stays valid until ck_log_partition_drop/ck_log_close. */
int ck_log_partition_open(ck_log_t *log, const char *topic, int32_t partition,
                          const ck_log_config_t *cfg, ck_partition_t **out);
/* Closes the partition and deletes its files. */
int ck_log_partition_drop(ck_log_t *log, ck_partition_t *p);
/* Applies new segment/retention settings (they take effect at the next roll / sweep). */
void ck_partition_set_config(ck_partition_t *p, const ck_log_config_t *cfg);

int64_t ck_partition_log_start(const ck_partition_t *p);
int64_t ck_partition_log_end(const ck_partition_t *p);    /* next offset to assign */
int64_t ck_partition_durable_end(const ck_partition_t *p); /* any thread (atomic) */
int ck_partition_error(const ck_partition_t *p);          /* 0 or the sticky CK_E* code */
int64_t ck_partition_size_bytes(const ck_partition_t *p);
/* The partition's folder, "<log dir>/<topic>-<partition>" (NUL-terminated). Valid until
 * ck_log_partition_drop/ck_log_close. For files other parts keep beside the log (producer
 * state snapshots, see docs/PRODUCER_STATE.md); the log ignores names it does not know. */
const char *ck_partition_dir(const ck_partition_t *p);

/* Appends `len` bytes holding one or more complete, already validated v2 record batches
 * (magic 2). Rewrites each batch's base offset (bytes 0-7) in place to consecutive
 * offsets from log_end, and sets partition leader epoch (bytes 12-15) to 0. If
 * log_append_time >= 0 (topic uses LogAppendTime), sets the timestamp-type attribute bit,
 * base timestamp and max timestamp to it and recomputes the CRC. Writes with one write(2);
 * the data becomes durable (and visible to readers) at a later flusher round.
 * Returns 0 and *base_offset, *last_offset; CK_ESTATE if the partition is in its sticky
 * error state; CK_EIO/CK_ENOSPC when this write failed (the partition enters the error
 * state and nothing of this call is visible). */
int ck_partition_append(ck_partition_t *p, uint8_t *batches, size_t len, int64_t log_append_time,
                        int64_t *base_offset, int64_t *last_offset);

/* Copies whole stored batches, starting with the one containing `offset`, into `out`:
 * only batches whose last offset is < `upper` (pass durable_end), at most `max_bytes`
 * bytes, except that the first batch is copied even if larger when `min_one` is true.
 * Returns the number of bytes appended (0 if none), CK_ERANGE if offset < log_start or
 * offset > log_end, CK_EIO on a read error. */
int64_t ck_partition_read(ck_partition_t *p, int64_t offset, int64_t upper, size_t max_bytes,
                          bool min_one, ck_wbuf_t *out);

/* Reads part of the stored batch holding `offset`: its header (CK_BATCH_HEADER_SIZE bytes)
 * followed by up to `len` bytes of its records section from `rpos` on (a record's
 * ck_record_t.pos), appended to `out`, so one record of a big batch costs a few hundred
 * bytes of reading instead of the batch. Only for a durable (last offset < upper),
 * uncompressed batch: else CK_ENOENT, and the caller reads the batch whole. Returns the
 * bytes appended, CK_ERANGE (offset outside the log), CK_ENOENT, CK_ECORRUPT, CK_EIO,
 * CK_ENOMEM; on an error nothing is appended. Loop thread. */
int64_t ck_partition_read_part(ck_partition_t *p, int64_t offset, int64_t upper, uint32_t rpos,
                               size_t len, ck_wbuf_t *out);

/* The first offset whose record timestamp is >= ts (record exact: the batch found by the
 * time index is scanned, decompressing if needed), with that record's timestamp.
 * CK_ENOENT if none. Only durable records are considered. */
int ck_partition_offset_for_time(ck_partition_t *p, int64_t ts, int64_t *offset,
                                 int64_t *found_ts);
/* The offset and timestamp of the record with the largest timestamp (earliest such).
 * CK_ENOENT if the partition is empty. */
int ck_partition_max_timestamp(ck_partition_t *p, int64_t *offset, int64_t *ts);

/* DeleteRecords: moves log_start up to `offset` (<= durable_end; -1 = durable_end),
 * persisted durably before returning, deleting segments wholly below it. */
int ck_partition_delete_records(ck_partition_t *p, int64_t offset);

/* Rolls segments by age and deletes segments by retention time/size for every partition.
 * Called periodically by the owner thread. Returns the number of segments deleted. */
int ck_log_sweep(ck_log_t *log, int64_t now_ms);

#endif
