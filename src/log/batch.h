/* Kafka record batch v2 (magic 2): header layout, validation and record iteration.
 *
 * Batch header (61 bytes, big-endian):
 *   0  int64  baseOffset
 *   8  int32  batchLength        (bytes after this field: total = batchLength + 12)
 *  12  int32  partitionLeaderEpoch
 *  16  int8   magic (2)
 *  17  uint32 crc                (CRC-32C of bytes 21 .. end)
 *  21  int16  attributes         (bits 0-2 codec, 3 timestamp type, 4 transactional,
 *                                 5 control, 6 delete horizon)
 *  23  int32  lastOffsetDelta
 *  27  int64  baseTimestamp
 *  35  int64  maxTimestamp
 *  43  int64  producerId
 *  51  int16  producerEpoch
 *  53  int32  baseSequence
 *  57  int32  recordCount
 *  61  records (possibly compressed)
 *
 * Record: varint length, int8 attributes, varlong timestampDelta, varint offsetDelta,
 * varint keyLength (-1 null), key, varint valueLength (-1 null), value,
 * varint headerCount, headers (varint keyLen, key, varint valueLen (-1 null), value). */
#ifndef CK_LOG_BATCH_H
#define CK_LOG_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/compress.h" /* enum ck_codec */

#define CK_BATCH_HEADER_SIZE 61
#define CK_BATCH_OFF_BASE_OFFSET 0
#define CK_BATCH_OFF_LENGTH 8
#define CK_BATCH_OFF_LEADER_EPOCH 12
#define CK_BATCH_OFF_MAGIC 16
#define CK_BATCH_OFF_CRC 17
#define CK_BATCH_OFF_ATTRIBUTES 21
#define CK_BATCH_OFF_LAST_OFFSET_DELTA 23
#define CK_BATCH_OFF_BASE_TIMESTAMP 27
#define CK_BATCH_OFF_MAX_TIMESTAMP 35
#define CK_BATCH_OFF_PRODUCER_ID 43
#define CK_BATCH_OFF_PRODUCER_EPOCH 51
#define CK_BATCH_OFF_BASE_SEQUENCE 53
#define CK_BATCH_OFF_RECORD_COUNT 57

#define CK_ATTR_CODEC_MASK 0x07
#define CK_ATTR_TIMESTAMP_LOG_APPEND 0x08
#define CK_ATTR_TRANSACTIONAL 0x10
#define CK_ATTR_CONTROL 0x20


typedef struct ck_batch_header {
    int64_t base_offset;
    int32_t batch_length;
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
} ck_batch_header_t;

/* Parses the 61-byte header at p (n >= CK_BATCH_HEADER_SIZE). No validation. */
void ck_batch_header_parse(const uint8_t *p, ck_batch_header_t *h);
/* Total bytes of the batch starting at p (batchLength + 12), or -1 if n < 12. */
int64_t ck_batch_total_size(const uint8_t *p, size_t n);

/* Recomputes and stores the CRC of the batch at p (total size n). */
void ck_batch_update_crc(uint8_t *p, size_t n);

/* Verifies the one batch at p (n >= its total size; bytes past it are ignored): header
 * length and magic 2, then its stored CRC against the CRC-32C of bytes 21 .. end. For
 * recovery and paranoid readers; the records are not looked at. Returns 0, CK_ETRUNC
 * (n shorter than the header or the batch), CK_ECORRUPT (bad length or magic, CRC
 * mismatch). Thread: any. */
int ck_batch_check_crc(const uint8_t *p, size_t n);

/* ---- produce-path validation ---- */

/* What ck_batch_validate learnt about a buffer of batches. */
typedef struct ck_batch_info {
    int32_t batch_count;
    int64_t record_count;      /* sum of every batch's recordCount */
    int64_t max_timestamp;     /* max of the headers' maxTimestamp and, for uncompressed
                                  batches, of every record's timestamp; -1 if none */
    int64_t producer_id;       /* of the first batch (-1: not idempotent) */
    int16_t producer_epoch;    /* of the first batch */
    int32_t base_sequence;     /* of the first batch */
    int32_t last_offset_delta; /* of the first batch (its last sequence = base + this) */
    int codec;                 /* enum ck_codec of the first batch */
    bool has_transactional;    /* some batch has the transactional bit */
    bool has_control;          /* some batch has the control bit */
    size_t max_batch_size;     /* largest single batch, header included (max.message.bytes) */
} ck_batch_info_t;

/* Validates a produce request's records: n bytes holding one or more complete v2 batches
 * back to back, and fills *info (whose content is unspecified on error). Per batch it
 * checks: batchLength >= 49 and within n, magic 2, CRC-32C, codec id known, recordCount
 * >= 0, lastOffsetDelta == recordCount - 1 unless the batch is empty; for uncompressed
 * batches that exactly recordCount records parse (lengths inside their record, counts
 * non-negative, offsetDelta == index) and fill the payload; for compressed ones only that
 * the payload is non-empty: decompressing is left to readers, since the produce path
 * does only what durability needs.
 * Returns 0, or
 *   CK_EINVAL   n == 0, or a CRC-valid batch breaks a record rule (Kafka INVALID_RECORD)
 *   CK_ECORRUPT bad batchLength, magic not 2, CRC mismatch (CORRUPT_MESSAGE); magic 0/1
 *               input must go through ck_legacy_detect_magic and ck_legacy_to_v2 first
 *   CK_EUNSUP   codec id 5-7 (UNSUPPORTED_COMPRESSION_TYPE)
 *   CK_ETRUNC   the buffer ends inside a batch
 * Allocates nothing; cost is one CRC pass plus a walk of uncompressed records.
 * Thread: any. */
int ck_batch_validate(const uint8_t *p, size_t n, ck_batch_info_t *info);

/* ---- record iteration ---- */

/* One record header. Slices point into the batch or the iterator's scratch buffer. */
typedef struct ck_record_header {
    ck_slice_t key;   /* never null (Kafka requires a key) */
    ck_slice_t value; /* len -1 = null */
} ck_record_header_t;

/* One record as the iterator returns it. Slices stay valid while the batch bytes and the
 * scratch buffer given to ck_batch_iter_init are neither changed nor freed. */
typedef struct ck_record {
    int64_t offset;         /* absolute: base_offset + offset_delta */
    int64_t timestamp;      /* absolute; the batch's maxTimestamp under LogAppendTime */
    int32_t offset_delta;
    int8_t attributes;      /* record attributes (unused by Kafka so far) */
    ck_slice_t key;         /* len -1 = null */
    ck_slice_t value;       /* len -1 = null */
    int32_t header_count;
    ck_slice_t headers_raw; /* the encoded headers, for ck_record_header_next */
    uint32_t pos;           /* where the record starts in the batch's records (after the
                             * header; of the decompressed records if compressed) */
} ck_record_t;

/* Decodes the next header from *cursor (start with a copy of rec.headers_raw) and
 * advances it. Returns 1 with *h, 0 when the cursor is empty, CK_ECORRUPT if malformed
 * (cannot happen for headers_raw the iterator returned: it checked them). */
int ck_record_header_next(ck_slice_t *cursor, ck_record_header_t *h);

/* Iterator over the records of one v2 batch; lives on the caller's stack. */
typedef struct ck_batch_iter {
    ck_batch_header_t hdr; /* the batch header, parsed */
    const uint8_t *rbase;  /* the first record */
    const uint8_t *rp;     /* next record */
    const uint8_t *rend;   /* end of the (decompressed) records */
    int32_t left;          /* records still to return */
    int err;               /* sticky error */
} ck_batch_iter_t;

/* Default bound on a batch's decompressed size for the iterator (bomb protection). */
#define CK_BATCH_MAX_DECOMPRESSED ((size_t)64 << 20)

/* Starts iterating the batch at `batch` (n >= its total size; bytes past it are ignored).
 * A compressed batch is decompressed, at most CK_BATCH_MAX_DECOMPRESSED bytes, into
 * `scratch`, which is reset first and may be reused across batches to avoid allocating;
 * scratch may be NULL for uncompressed batches. The CRC is not checked (stored batches
 * were checked on append; see ck_batch_check_crc). Returns 0, CK_ETRUNC (n shorter than
 * the header or the batch), CK_ECORRUPT (bad length, magic not 2, negative count, bad
 * compressed data), CK_EUNSUP (unknown codec), CK_ETOOBIG, CK_ENOMEM, CK_EINVAL
 * (compressed and scratch NULL). Thread: one iterator per thread. */
int ck_batch_iter_init(ck_batch_iter_t *it, const uint8_t *batch, size_t n, ck_wbuf_t *scratch);
/* ck_batch_iter_init with an explicit decompressed-size bound. */
int ck_batch_iter_init_max(ck_batch_iter_t *it, const uint8_t *batch, size_t n,
                           ck_wbuf_t *scratch, size_t max_decompressed);

/* Returns 1 and the next record in *rec, 0 after the last one, or CK_ECORRUPT (sticky) if
 * a record is malformed or the records do not number recordCount exactly. Offsets need
 * not be consecutive (compacted batches have gaps). */
int ck_batch_iter_next(ck_batch_iter_t *it, ck_record_t *rec);

/* One record read on its own: `hdr` is the batch's header (CK_BATCH_HEADER_SIZE bytes,
 * e.g. of an uncompressed batch whose records were not all read) and rec[0..n) starts at
 * the record. Returns the record's size in bytes (length prefix included) and fills *out
 * as ck_batch_iter_next would (absolute offset and timestamp, pos unset) when n holds the
 * whole record; CK_ETRUNC when n is too short (if n >= 5, the size is still known: call
 * again with more bytes); CK_ECORRUPT. */
int64_t ck_batch_record_at(const uint8_t *hdr, const uint8_t *rec, size_t n, ck_record_t *out);

/* ---- building ---- */

/* Builds one v2 batch at the end of a ck_wbuf_t: init, set_*, add records, finish (or
 * abort). Records go straight into `out` when uncompressed, else into an internal buffer
 * that finish compresses, so nothing else may append to `out` in between. An allocation
 * failure is sticky (finish then fails and discards); an invalid record (CK_EINVAL,
 * CK_ETOOBIG) is refused alone. Fields are private; after finish the batch occupies
 * out->data[start .. out->len). Thread: one owner. */
typedef struct ck_batch_builder {
    ck_wbuf_t *out;
    size_t start;     /* where the batch begins in out */
    ck_wbuf_t raw;    /* uncompressed records when codec != NONE */
    int codec;
    int level;
    int16_t flags;    /* CK_ATTR_TIMESTAMP_LOG_APPEND | CK_ATTR_TRANSACTIONAL | CK_ATTR_CONTROL */
    int64_t base_offset;
    int32_t leader_epoch;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int32_t count;
    int32_t last_delta;
    int err;
    int out_err;      /* out->err at init, restored when the batch is discarded */
} ck_batch_builder_t;

/* Starts a batch appended to `out` with codec (enum ck_codec) and compression `level`
 * (CK_COMPRESS_LEVEL_DEFAULT, see core/compress.h). Defaults: base offset 0, leader
 * epoch -1, producer id -1, epoch -1, sequence -1, no flags. An unknown codec makes
 * finish return CK_EUNSUP. */
void ck_batch_builder_init(ck_batch_builder_t *b, ck_wbuf_t *out, int codec, int level);
void ck_batch_builder_set_base_offset(ck_batch_builder_t *b, int64_t base_offset);
void ck_batch_builder_set_producer(ck_batch_builder_t *b, int64_t producer_id, int16_t epoch,
                                   int32_t base_sequence);
/* Attribute bits beyond the codec: CK_ATTR_TIMESTAMP_LOG_APPEND, _TRANSACTIONAL, _CONTROL. */
void ck_batch_builder_set_flags(ck_batch_builder_t *b, int16_t flags);

/* Adds a record with the next offset delta (previous + 1, 0 for the first). The first
 * record's timestamp becomes the base timestamp. key/value: len -1 = null; headers: n
 * entries whose keys must not be null. The bytes are copied. Returns 0, CK_EINVAL (null
 * header key, too many records), CK_ETOOBIG (record over 2 GiB), CK_ENOMEM (sticky). */
int ck_batch_builder_add(ck_batch_builder_t *b, int64_t timestamp, ck_slice_t key,
                         ck_slice_t value, const ck_record_header_t *headers, size_t n);
/* Same with an explicit offset delta, which must exceed the previous one (CK_EINVAL).
 * Gaps make a batch like compaction leaves, which validation (a produce-path check)
 * rejects but the iterator accepts. */
int ck_batch_builder_add_delta(ck_batch_builder_t *b, int32_t offset_delta, int64_t timestamp,
                               ck_slice_t key, ck_slice_t value, const ck_record_header_t *headers,
                               size_t n);
/* Number of records added so far, and their uncompressed encoded size. */
static inline int32_t ck_batch_builder_count(const ck_batch_builder_t *b) { return b->count; }
size_t ck_batch_builder_bytes(const ck_batch_builder_t *b);

/* Compresses if needed, writes the header (lastOffsetDelta = last delta, or -1 for an
 * empty batch; timestamps -1 when empty) and the CRC. Returns 0 with the batch at
 * out->data + b->start; or the sticky error / CK_EUNSUP / CK_ETOOBIG / CK_ENOMEM, in
 * which case out->len and out->err are back as they were at init. Either way the
 * builder's memory is released. */
int ck_batch_builder_finish(ck_batch_builder_t *b);
/* Discards the batch (out->len and out->err back as at init) and releases the builder's
 * memory. */
void ck_batch_builder_abort(ck_batch_builder_t *b);

/* Finds, inside the one batch at p (total size n, any codec), the first record whose
 * timestamp is >= ts. Returns 0 with *offset (base_offset + offsetDelta) and *found_ts,
 * CK_ENOENT if no record qualifies, or a negative error for a malformed batch.
 * With LogAppendTime batches every record has the batch's max timestamp. */
int ck_batch_find_timestamp(const uint8_t *p, size_t n, int64_t ts, int64_t *offset,
                            int64_t *found_ts);
#endif
