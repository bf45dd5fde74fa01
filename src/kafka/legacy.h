/* Legacy Kafka message formats (magic 0 and 1 "message sets") and their conversion to and
 * from v2 record batches, the only format Chronik stores.
 *
 * A message set is a sequence of entries (big-endian):
 *   0   int64   offset
 *   8   int32   message_size     (bytes after this field)
 *   12  uint32  crc              (CRC-32 IEEE, zlib's, of bytes 16 .. end)
 *   16  int8    magic            (0 or 1; byte 16 is the magic in v2 batches too)
 *   17  int8    attributes       (bits 0-2 codec; bit 3 LogAppendTime, magic 1 only)
 *   18  int64   timestamp        (magic 1 only)
 *   ..  int32   key length (-1 = null), key bytes
 *   ..  int32   value length (-1 = null), value bytes
 * A compressed entry (codec != 0) is a wrapper whose value is a compressed inner message
 * set of uncompressed messages of the same magic. Its offset is that of the last inner
 * message. Inner offsets are absolute for magic 0 and relative (0, 1, ...) for magic 1.
 * A magic 1 wrapper with LogAppendTime gives its own timestamp to every inner message.
 *
 * Who uses them: Produce v0-v2 and Fetch v0-v3 clients (kafka-python with
 * api_version=(0,10,0), librdkafka with broker.version.fallback < 0.11, old Java clients).
 * Thread: no shared state; any thread. */
#ifndef CK_KAFKA_LEGACY_H
#define CK_KAFKA_LEGACY_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Smallest message_size of a magic 0 / magic 1 message (both key and value null). */
#define CK_LEGACY_MIN_SIZE_V0 14
#define CK_LEGACY_MIN_SIZE_V1 22

/* The magic (0, 1 or 2) of the first entry of a produce payload, from byte 16.
 * Returns it, CK_ETRUNC if n < 17, CK_ECORRUPT for any other magic value. */
int ck_legacy_detect_magic(const uint8_t *p, size_t n);

/* Converts a magic 0/1 message set (as a Produce v0-v2 request carries it) into ONE v2
 * batch appended to `out`: records in order with offset deltas 0, 1, ..., base offset 0,
 * no producer id, no headers, keys and values kept. Timestamps: magic 0 has none, so
 * every record gets now_ms (CreateTime); magic 1 keeps each message's timestamp, and the
 * batch is LogAppendTime if the first message is. Compressed wrappers of every codec are
 * unpacked (lz4 under magic 0 with Kafka's historic header checksum accepted), at most
 * `max_decompressed` bytes in total; the batch is compressed with the codec of the first
 * entry if that was a wrapper, else uncompressed. Every CRC-32 is checked, inner ones
 * included. Returns 0, or
 *   CK_ECORRUPT CRC mismatch, message_size too small, fields overrunning their message,
 *               magic other than 0/1, malformed compressed data
 *   CK_EINVAL   n == 0, nested compression, inner magic differing from the wrapper's, a
 *               wrapper with a null value or no inner messages
 *   CK_ETRUNC   the set ends inside a message
 *   CK_EUNSUP   unknown codec id
 *   CK_ETOOBIG  decompressed data over max_decompressed, or more than INT32_MAX records
 *   CK_ENOMEM
 * On error out is as it was. */
int ck_legacy_to_v2(const uint8_t *p, size_t n, int64_t now_ms, ck_wbuf_t *out,
                    size_t max_decompressed);

/* Down-converts stored v2 batches (any codec; n bytes, a trailing partial batch is
 * ignored) into a magic 0 or 1 message set for Fetch v0-v1 (magic 0) or v2-v3 (magic 1),
 * appended to `out`: one uncompressed message per record with its absolute offset;
 * magic 1 messages carry the record timestamp and the batch's timestamp type; headers
 * are dropped (the old formats have none) and control batches (transaction markers)
 * skipped. Stops before the output would exceed max_bytes, but always emits the first
 * message even if it alone does. Each compressed batch is decompressed into a temporary
 * buffer of at most CK_BATCH_MAX_DECOMPRESSED bytes.
 * Returns the number of messages written (>= 0), or CK_EINVAL (magic not 0/1), a batch
 * error from the iterator (CK_ECORRUPT, CK_EUNSUP, CK_ETOOBIG), CK_ENOMEM; on error out
 * is as it was. */
int ck_legacy_from_v2(const uint8_t *batches, size_t n, int magic, ck_wbuf_t *out,
                      size_t max_bytes);

/* Appends one message (magic 0 or 1; `timestamp` ignored for 0) with its CRC. Used by
 * the conversion and to build test inputs, compressed wrappers included (pass the
 * compressed inner set as value and the codec in attributes). Errors: out->err (sticky). */
void ck_legacy_write_message(ck_wbuf_t *out, int magic, int64_t offset, int8_t attributes,
                             int64_t timestamp, ck_slice_t key, ck_slice_t value);

/* Bytes ck_legacy_write_message appends for these lengths (-1 = null). */
static inline size_t ck_legacy_message_size(int magic, int32_t key_len, int32_t value_len)
{
    return 12 + (size_t)(magic == 0 ? CK_LEGACY_MIN_SIZE_V0 : CK_LEGACY_MIN_SIZE_V1) +
           (size_t)(key_len > 0 ? key_len : 0) + (size_t)(value_len > 0 ? value_len : 0);
}

#endif
