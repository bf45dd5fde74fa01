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

enum ck_codec { CK_CODEC_NONE = 0, CK_CODEC_GZIP = 1, CK_CODEC_SNAPPY = 2, CK_CODEC_LZ4 = 3, CK_CODEC_ZSTD = 4 };

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

/* Finds, inside the one batch at p (total size n, any codec), the first record whose
 * timestamp is >= ts. Returns 0 with *offset (base_offset + offsetDelta) and *found_ts,
 * CK_ENOENT if no record qualifies, or a negative error for a malformed batch.
 * With LogAppendTime batches every record has the batch's max timestamp. */
int ck_batch_find_timestamp(const uint8_t *p, size_t n, int64_t ts, int64_t *offset,
                            int64_t *found_ts);
#endif
