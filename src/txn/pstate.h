/* Per-partition state of idempotent producers (KIP-98): for each producer id, its epoch
 * and the last CK_PSTATE_MAX_BATCHES batches appended (sequence range, offset range,
 * timestamp). The produce path asks ck_pstate_check before appending a batch and calls
 * ck_pstate_update after the append succeeded; a duplicate is acknowledged with the
 * offsets of the original and not written again.
 *
 * The state is derived from the log: after a restart it is the newest valid snapshot
 * (ck_pstate_snapshot_read) plus a replay of the log from the snapshot's offset
 * (ck_pstate_update_from_batches). See docs/PRODUCER_STATE.md.
 *
 * Ownership: a ck_pstate_t is owned by whoever created it (ck_pstate_new or
 * ck_pstate_snapshot_read) and freed with ck_pstate_free.
 * Thread: a ck_pstate_t belongs to the partition's owner thread; no function locks.
 * Only pure functions (ck_pstate_seq_add) may be called from any thread. */
#ifndef CK_TXN_PSTATE_H
#define CK_TXN_PSTATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ck_pstate ck_pstate_t;

/* Batches remembered per producer (Kafka's ProducerStateEntry.NumBatchesToRetain; the
 * Java producer keeps at most 5 requests in flight with idempotence). */
#define CK_PSTATE_MAX_BATCHES 5

/* Kafka's producer.id.expiration.ms default (1 day), to pass to ck_pstate_expire. */
#define CK_PSTATE_DEFAULT_EXPIRATION_MS INT64_C(86400000)

/* Results of ck_pstate_check. */
typedef enum ck_pstate_verdict {
    CK_PSTATE_APPEND = 0,       /* write the batch (then ck_pstate_update) */
    CK_PSTATE_DUPLICATE = 1,    /* already written: acknowledge with dup's offsets */
    CK_PSTATE_OUT_OF_ORDER = 2, /* Kafka OUT_OF_ORDER_SEQUENCE_NUMBER */
    CK_PSTATE_STALE_EPOCH = 3,  /* Kafka INVALID_PRODUCER_EPOCH (produce) */
} ck_pstate_verdict_t;

/* What a duplicate was originally acknowledged with. */
typedef struct ck_pstate_dup {
    int64_t first_offset;
    int64_t last_offset;
    int64_t timestamp;
} ck_pstate_dup_t;

/* One remembered batch. */
typedef struct ck_pstate_batch {
    int32_t first_seq;
    int32_t last_seq;
    int64_t first_offset;
    int64_t last_offset;
    int64_t timestamp;
} ck_pstate_batch_t;

/* A copy of one producer's state (ck_pstate_get). */
typedef struct ck_pstate_producer {
    int64_t producer_id;
    int16_t epoch;
    int count;                                        /* 1 .. CK_PSTATE_MAX_BATCHES */
    ck_pstate_batch_t batches[CK_PSTATE_MAX_BATCHES]; /* oldest first */
} ck_pstate_producer_t;

/* seq + delta with Kafka's wrap-around: after INT32_MAX comes 0. The last sequence of a
 * batch is ck_pstate_seq_add(baseSequence, lastOffsetDelta). A negative delta (an empty
 * batch says -1) returns seq unchanged rather than overflow. */
static inline int32_t ck_pstate_seq_add(int32_t seq, int32_t delta)
{
    if (delta < 0)
        return seq;
    return seq > INT32_MAX - delta ? delta - (INT32_MAX - seq) - 1 : seq + delta;
}

/* An empty state, or NULL when out of memory. */
ck_pstate_t *ck_pstate_new(void);
/* Frees s and everything it holds. NULL is allowed. */
void ck_pstate_free(ck_pstate_t *s);

/* Decides what to do with a batch of producer `pid` (the batch header's producerId,
 * producerEpoch, baseSequence and baseSequence + lastOffsetDelta wrapped, see
 * ck_pstate_seq_add), in Kafka's order:
 *   pid < 0 (not idempotent) or pid unknown (new, or its state expired) -> APPEND, any
 *     sequence: Kafka accepts when no state exists;
 *   epoch < remembered epoch -> STALE_EPOCH;
 *   epoch > remembered epoch (producer bumped it) -> APPEND if first_seq == 0, else
 *     OUT_OF_ORDER;
 *   same epoch, (first_seq, last_seq) equal to one of the remembered batches ->
 *     DUPLICATE with *dup filled (dup may be NULL);
 *   same epoch, first_seq == last remembered last_seq + 1 (wrapping) -> APPEND;
 *   otherwise -> OUT_OF_ORDER (including a retry of a batch older than the last 5).
 * Changes nothing; O(1). */
ck_pstate_verdict_t ck_pstate_check(const ck_pstate_t *s, int64_t pid, int16_t epoch,
                                    int32_t first_seq, int32_t last_seq, ck_pstate_dup_t *dup);

/* Records a batch appended at [first_offset, last_offset] with `timestamp` (pass the
 * stored batch's maxTimestamp, i.e. the append time for LogAppendTime topics, so a
 * replay of the log rebuilds exactly the same state; expiry measures idleness from it).
 * A new epoch forgets the remembered batches; the oldest of 5 is dropped. A batch whose
 * last_offset is not above the producer's newest one is ignored, so replaying an
 * overlapping stretch of log is harmless. pid < 0: nothing to do.
 * Call only after ck_pstate_check said APPEND and the append succeeded.
 * Returns 0, or CK_ENOMEM (a new producer could not be added; s is unchanged and the
 * producer's next batch is accepted with any sequence, as for an unknown producer). */
int ck_pstate_update(ck_pstate_t *s, int64_t pid, int16_t epoch, int32_t first_seq,
                     int32_t last_seq, int64_t first_offset, int64_t last_offset,
                     int64_t timestamp);

/* Replays stored batches: n bytes of complete v2 batches back to back with their assigned
 * base offsets (what ck_partition_read returns), applying ck_pstate_update for each batch
 * with producerId >= 0 and at least one record. Control batches (transaction markers)
 * carry no sequences and are skipped. CRCs are not checked (stored data was checked on
 * append and at recovery). Returns 0, CK_ETRUNC (the bytes end inside a batch: every
 * whole batch before it was applied, so the caller may read on from there),
 * CK_ECORRUPT (batchLength < 49 or magic not 2; batches before it were applied),
 * CK_ENOMEM. */
int ck_pstate_update_from_batches(ck_pstate_t *s, const uint8_t *batches, size_t n);

/* Drops every producer whose newest batch timestamp is at least max_idle_ms before now_ms
 * (Kafka's rule, producer.id.expiration.ms; CK_PSTATE_DEFAULT_EXPIRATION_MS). Returns the
 * number of producers dropped; max_idle_ms < 0 expires nothing. O(table size); the table
 * does not shrink. */
size_t ck_pstate_expire(ck_pstate_t *s, int64_t now_ms, int64_t max_idle_ms);

/* Number of producers with state. */
size_t ck_pstate_count(const ck_pstate_t *s);
/* Copies producer pid's state into *out. Returns 0 or CK_ENOENT. */
int ck_pstate_get(const ck_pstate_t *s, int64_t pid, ck_pstate_producer_t *out);

/* ---- snapshots (format: top of pstate.c and docs/PRODUCER_STATE.md) ---- */

/* Snapshot file name for a partition folder: "<20-digit next_offset>.snapshot". buf must
 * hold CK_PSTATE_SNAPSHOT_NAME_MAX bytes. */
#define CK_PSTATE_SNAPSHOT_NAME_MAX 32
void ck_pstate_snapshot_name(char *buf, int64_t next_offset);

/* Writes s, valid for the log up to (excluding) next_offset, to `path` atomically: a
 * temp file "<path>.tmp" is written and fdatasynced, renamed over path, and the folder
 * fsynced; on return 0 the snapshot is durable. Producers are written sorted by id, so
 * equal states give identical files. Returns 0, CK_EINVAL (next_offset < 0, path too
 * long), CK_ENOMEM, CK_EIO/CK_ENOSPC (the temp file is removed; an older file at path
 * is untouched, unless only the folder fsync failed). */
int ck_pstate_snapshot_write(const ck_pstate_t *s, const char *path, int64_t next_offset);

/* Reads a snapshot into a new state (*out, the caller's to free) and the offset the log
 * must be replayed from (*next_offset). Returns 0, CK_ENOENT (no file), CK_ECORRUPT (bad
 * magic, version, size, CRC-32C, or content), CK_ENOMEM, CK_EIO. On error *out is NULL. */
int ck_pstate_snapshot_read(const char *path, ck_pstate_t **out, int64_t *next_offset);

/* Internal, shared with pid.c: writes n bytes to path through "<path>.tmp", fdatasync,
 * rename, fsync of the folder. Returns 0 or a CK_E* code (temp file removed). */
int ck__txn_write_durable(const char *path, const uint8_t *data, size_t n);

#endif
