/* Checks shared by the libFuzzer targets: record batches (v2) and legacy message sets
 * (magic 0/1) fed through the validator, the iterator and both converters.
 *
 * Besides "does not crash, leak or read out of bounds" (ASan/UBSan), each check states a
 * property that must hold for every input, and aborts with a message when it does not:
 *   - a buffer ck_batch_validate accepts iterates, per uncompressed batch, to exactly
 *     recordCount records whose headers all decode;
 *   - ck_legacy_to_v2 output passes ck_batch_validate with the same record count, and on
 *     error the output buffer is unchanged;
 *   - uncompressed validated batches down-convert (ck_legacy_from_v2) to a message set
 *     that converts back (ck_legacy_to_v2) to as many records.
 * Random bytes almost never carry a right CRC, which would stop every check at the
 * checksum; so the checks run twice, on the input as is and on a copy whose v2 CRC-32C
 * and legacy CRC-32 fields have been recomputed (fuzz_fix_crcs).
 * Included by one .c file per target; everything is static. */
#ifndef CK_FUZZ_COMMON_H
#define CK_FUZZ_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crc32c.h"
#include "kafka/legacy.h"
#include "log/batch.h"

/* Decompression bound: keeps each input fast and far below -rss_limit_mb. */
#define FUZZ_MAX_DECOMPRESSED ((size_t)4 << 20)
/* At most this many batches / messages are walked per input. */
#define FUZZ_MAX_BATCHES 256
/* A fixed "now" so that runs are reproducible. */
#define FUZZ_NOW_MS INT64_C(1700000000000)

#define FUZZ_CHECK(cond, what)                                                                 \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz property violated: %s (%s:%d)\n", what, __FILE__, __LINE__); \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* Reads every byte of a slice, so that ASan sees a slice pointing outside its buffer. */
static volatile uint8_t fuzz_sink;
static void fuzz_touch(ck_slice_t s)
{
    uint8_t x = 0;
    for (int32_t i = 0; i < s.len; i++)
        x ^= s.ptr[i];
    fuzz_sink ^= x;
}

/* Returns a malloc'ed copy of exactly n bytes (so ASan catches reads past n), never NULL
 * for n > 0 unless out of memory (then aborts: the fuzzer's RSS limit reports it). */
static uint8_t *fuzz_dup(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    FUZZ_CHECK(c != NULL, "malloc");
    if (n)
        memcpy(c, p, n);
    return c;
}

/* Recomputes, in place, the CRC of every well-framed v2 batch or legacy message in
 * p[0..n), walking entries back to back until one does not frame. */
static void fuzz_fix_crcs(uint8_t *p, size_t n)
{
    size_t pos = 0;
    for (int i = 0; i < FUZZ_MAX_BATCHES && n - pos >= 17; i++) {
        uint8_t *b = p + pos;
        uint64_t size = (uint64_t)(uint32_t)ck_get_u32(b + 8);
        if (size > INT32_MAX || size + 12 > n - pos)
            return;
        size_t total = (size_t)size + 12;
        if (b[16] == 2 && total >= CK_BATCH_HEADER_SIZE)
            ck_batch_update_crc(b, total);
        else if (b[16] <= 1 && size >= CK_LEGACY_MIN_SIZE_V0)
            ck_put_u32(b + 12, ck_crc32(0, b + 16, total - 16));
        else
            return;
        pos += total;
    }
}

/* Walks one iterator to its end, touching every field. Returns the number of records,
 * or the iterator's error. */
static int64_t fuzz_iterate(ck_batch_iter_t *it)
{
    ck_record_t rec;
    int64_t count = 0;
    int rc;
    while ((rc = ck_batch_iter_next(it, &rec)) == 1) {
        count++;
        fuzz_touch(rec.key);
        fuzz_touch(rec.value);
        fuzz_touch(rec.headers_raw);
        ck_slice_t cur = rec.headers_raw;
        ck_record_header_t h;
        int hr, nh = 0;
        while ((hr = ck_record_header_next(&cur, &h)) == 1) {
            fuzz_touch(h.key);
            fuzz_touch(h.value);
            nh++;
        }
        FUZZ_CHECK(hr == 0, "headers of a record the iterator returned do not decode");
        FUZZ_CHECK(nh == rec.header_count, "header count differs from the record's");
    }
    return rc < 0 ? rc : count;
}

/* v2 batches: validator, iterator, CRC check, timestamp search, down-conversion. */
static void fuzz_check_v2(const uint8_t *p, size_t n)
{
    ck_batch_info_t info;
    int vrc = ck_batch_validate(p, n, &info);
    ck_wbuf_t scratch = CK_WBUF_INIT;
    bool all_plain = true;
    int64_t records = 0;
    size_t pos = 0;
    for (int i = 0; i < FUZZ_MAX_BATCHES && pos < n; i++) {
        const uint8_t *b = p + pos;
        size_t left = n - pos;
        int64_t total = ck_batch_total_size(b, left);
        (void)ck_batch_check_crc(b, left);
        ck_batch_iter_t it;
        int irc = ck_batch_iter_init_max(&it, b, left, &scratch, FUZZ_MAX_DECOMPRESSED);
        bool plain = irc == 0 && (it.hdr.attributes & CK_ATTR_CODEC_MASK) == CK_CODEC_NONE;
        /* Validation checked framing, magic and counts of every batch: only decompression
         * may still fail. Attributes low byte is at offset 22. */
        if (vrc == 0 && (b[CK_BATCH_OFF_ATTRIBUTES + 1] & CK_ATTR_CODEC_MASK) == CK_CODEC_NONE)
            FUZZ_CHECK(irc == 0, "a validated uncompressed batch fails ck_batch_iter_init");
        if (irc == 0) {
            int64_t got = fuzz_iterate(&it);
            if (vrc == 0 && plain)
                FUZZ_CHECK(got == it.hdr.record_count,
                           "a validated uncompressed batch does not iterate to recordCount");
            if (got > 0)
                records += got;
            if (plain) {
                int64_t off, ts;
                (void)ck_batch_find_timestamp(b, left, it.hdr.base_timestamp, &off, &ts);
            }
        }
        all_plain = all_plain && plain;
        if (total < CK_BATCH_HEADER_SIZE || (uint64_t)total > left)
            break;
        pos += (size_t)total;
    }
    ck_wbuf_free(&scratch);
    if (vrc != 0 || !all_plain || pos != n)
        return;
    FUZZ_CHECK(records == info.record_count, "validated record count differs from iteration");
    for (int magic = 0; magic <= 1; magic++) {
        ck_wbuf_t old = CK_WBUF_INIT, back = CK_WBUF_INIT;
        int k = ck_legacy_from_v2(p, n, magic, &old, 1 << 20);
        FUZZ_CHECK(k >= 0 || k == CK_ENOMEM, "down-conversion of a validated batch fails");
        if (k > 0) {
            uint8_t *c = fuzz_dup(old.data, old.len);
            int rc = ck_legacy_to_v2(c, old.len, FUZZ_NOW_MS, &back, FUZZ_MAX_DECOMPRESSED);
            FUZZ_CHECK(rc == 0, "a down-converted message set does not convert back");
            ck_batch_info_t bi;
            FUZZ_CHECK(ck_batch_validate(back.data, back.len, &bi) == 0,
                       "converting back gives an invalid batch");
            FUZZ_CHECK(bi.record_count == k, "round trip through magic 0/1 changes the count");
            free(c);
        }
        ck_wbuf_free(&old);
        ck_wbuf_free(&back);
    }
}

/* Legacy message sets: magic detection and up-conversion. */
static void fuzz_check_legacy(const uint8_t *p, size_t n)
{
    (void)ck_legacy_detect_magic(p, n);
    ck_wbuf_t out = CK_WBUF_INIT;
    int rc = ck_legacy_to_v2(p, n, FUZZ_NOW_MS, &out, FUZZ_MAX_DECOMPRESSED);
    if (rc != 0) {
        FUZZ_CHECK(out.len == 0, "ck_legacy_to_v2 failed but changed its output");
        ck_wbuf_free(&out);
        return;
    }
    uint8_t *c = fuzz_dup(out.data, out.len);
    ck_batch_info_t info;
    FUZZ_CHECK(ck_batch_validate(c, out.len, &info) == 0, "up-converted batch is invalid");
    FUZZ_CHECK(info.batch_count == 1, "up-conversion made more than one batch");
    ck_wbuf_t scratch = CK_WBUF_INIT;
    ck_batch_iter_t it;
    FUZZ_CHECK(ck_batch_iter_init_max(&it, c, out.len, &scratch, 4 * FUZZ_MAX_DECOMPRESSED) == 0,
               "up-converted batch does not open");
    FUZZ_CHECK(fuzz_iterate(&it) == info.record_count, "up-converted batch miscounts records");
    ck_wbuf_free(&scratch);
    free(c);
    ck_wbuf_free(&out);
}

/* Everything record-related on p[0..n), as is and with CRCs fixed. */
static void fuzz_check_records(const uint8_t *p, size_t n)
{
    fuzz_check_v2(p, n);
    fuzz_check_legacy(p, n);
    uint8_t *c = fuzz_dup(p, n);
    fuzz_fix_crcs(c, n);
    if (n == 0 || memcmp(c, p, n) != 0) {
        fuzz_check_v2(c, n);
        fuzz_check_legacy(c, n);
    }
    free(c);
}

#endif
