/* Compression codecs of Kafka record batches and legacy message sets: gzip, snappy, lz4,
 * zstd, by the codec ids of enum ck_codec below (the Kafka attribute values: 0 none, 1 gzip, 2 snappy,
 * 3 lz4, 4 zstd). The wire formats are those Kafka clients produce:
 *   gzip    RFC 1952 members (decompression accepts several concatenated members)
 *   snappy  xerial framing (as the Java client writes) or a raw snappy block (as
 *           librdkafka and some others write); compression writes xerial
 *   lz4     LZ4 frame format (one or more frames)
 *   zstd    zstd frames, decoded by streaming (producers omit the content size)
 *
 * Every function appends to `out` (never resets it). On failure out->len and out->err
 * are as they were at entry, so a failed call leaves no partial output behind; a call on
 * a buffer whose err is already set returns CK_ENOMEM.
 * Thread: none of these keep state between calls; any thread, concurrently. */
#ifndef CK_CORE_COMPRESS_H
#define CK_CORE_COMPRESS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Kafka compression codec ids (record batch attribute bits 0-2). */
enum ck_codec { CK_CODEC_NONE = 0, CK_CODEC_GZIP = 1, CK_CODEC_SNAPPY = 2, CK_CODEC_LZ4 = 3, CK_CODEC_ZSTD = 4 };

/* Pass as `level` to get the codec's default (gzip 6, lz4 fast mode, zstd 3). Not -1:
 * negative zstd levels are real (fast) levels. */
#define CK_COMPRESS_LEVEL_DEFAULT INT_MIN

/* ck_decompress_ex flags. */
enum {
    /* Ignore the LZ4 frame header checksum. Kafka's Java client before 0.10 computed it
     * over the magic number too (KAFKA-3160) and still does for magic 0 messages, so
     * magic 0 payloads carry a "wrong" checksum that the reference decoder rejects. */
    CK_DECOMPRESS_LZ4_IGNORE_HC = 1 << 0,
};

/* Decompresses the n bytes at `in` (one complete payload of `codec`) and appends the
 * result to `out`, appending at most `max_out` bytes: a payload that would expand beyond
 * that is rejected as a decompression bomb, having buffered at most max_out + 1 bytes
 * (the output buffer grows as output appears; size claims in headers are not trusted).
 * Returns 0, or
 *   CK_ETOOBIG  the output would exceed max_out (or n > INT32_MAX)
 *   CK_ECORRUPT malformed or truncated input, trailing garbage, checksum mismatch
 *   CK_EUNSUP   codec is not one of gzip/snappy/lz4/zstd (NONE included: nothing to do)
 *   CK_ENOMEM   allocation failed */
int ck_decompress(int codec, const uint8_t *in, size_t n, ck_wbuf_t *out, size_t max_out);

/* ck_decompress with CK_DECOMPRESS_* flags; flags that do not concern `codec` are ignored. */
int ck_decompress_ex(int codec, unsigned flags, const uint8_t *in, size_t n, ck_wbuf_t *out,
                     size_t max_out);

/* Compresses the n bytes at `in` (n may be 0) as one payload of `codec` and appends it to
 * `out`. `level` is codec-specific (gzip 1-9 and -1 = default, lz4 <= 0 fast (negative =
 * accelerated), 3-12 HC, zstd negative fast levels and 1-22, 0 = default; out-of-range
 * values are clamped; ignored for snappy) or CK_COMPRESS_LEVEL_DEFAULT.
 * The lz4 frames use independent 64 KiB blocks without content size, which every Kafka
 * client version decodes; snappy is written as xerial chunks of 32 KiB like Java.
 * Returns 0, CK_EUNSUP (unknown codec or NONE), CK_ETOOBIG (n > INT32_MAX: no Kafka
 * payload is that large), CK_ENOMEM, or CK_EIO if the library fails unexpectedly. */
int ck_compress(int codec, int level, const uint8_t *in, size_t n, ck_wbuf_t *out);

/* Internal, exposed for tests: XXH32 (seed 0) of at most 15 bytes, enough for an LZ4
 * frame descriptor. */
uint32_t ck__xxh32_small(const uint8_t *p, size_t n);

#endif
