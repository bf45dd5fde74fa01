#include "core/alloc.h"
#include "core/clock.h"
#include "core/compress.h"
#include "core/crc32c.h"
#include "log/batch.h"
#include "test.h"

static const int all_codecs[] = {CK_CODEC_NONE, CK_CODEC_GZIP, CK_CODEC_SNAPPY, CK_CODEC_LZ4,
                                 CK_CODEC_ZSTD};
#define NALL 5

/* A record as the tests describe it. */
typedef struct trec {
    int64_t ts;
    const char *key;   /* NULL = null */
    const char *value; /* NULL = null */
    int nh;
    ck_record_header_t h[3];
} trec_t;

static const trec_t sample[] = {
    {1700000000000, "k0", "v0", 0, {{{0}}}},
    {1700000000005, NULL, "value without key", 0, {{{0}}}},
    {1699999999000, "tombstone", NULL, 0, {{{0}}}}, /* earlier than the base: negative delta */
    {1700000000100, NULL, NULL, 0, {{{0}}}},
    {1700000000200, "", "", 2, {{{(const uint8_t *)"h1", 2}, {(const uint8_t *)"x", 1}},
                                {{(const uint8_t *)"h2", 2}, {NULL, -1}}}},
    {1700000000150, "k5", "the last one", 1,
     {{{(const uint8_t *)"", 0}, {(const uint8_t *)"", 0}}}},
};
#define NSAMPLE ((int)(sizeof(sample) / sizeof(sample[0])))

static void add_sample(ck_batch_builder_t *b, const trec_t *r)
{
    CHECK_EQ(ck_batch_builder_add(b, r->ts, ck_slice_cstr(r->key), ck_slice_cstr(r->value), r->h,
                                  (size_t)r->nh),
             0);
}

static void build_sample(ck_wbuf_t *out, int codec)
{
    ck_batch_builder_t b;
    ck_batch_builder_init(&b, out, codec, CK_COMPRESS_LEVEL_DEFAULT);
    ck_batch_builder_set_base_offset(&b, 1000);
    ck_batch_builder_set_producer(&b, 77, 3, 500);
    for (int i = 0; i < NSAMPLE; i++)
        add_sample(&b, &sample[i]);
    CHECK_EQ(ck_batch_builder_count(&b), NSAMPLE);
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
}

static void check_sample_records(const uint8_t *p, size_t n, int64_t base)
{
    ck_wbuf_t scratch = CK_WBUF_INIT;
    ck_batch_iter_t it;
    CHECK_EQ(ck_batch_iter_init(&it, p, n, &scratch), 0);
    ck_record_t rec;
    for (int i = 0; i < NSAMPLE; i++) {
        CHECK_EQ(ck_batch_iter_next(&it, &rec), 1);
        CHECK_EQ(rec.offset, base + i);
        CHECK_EQ(rec.offset_delta, i);
        CHECK_EQ(rec.timestamp, sample[i].ts);
        CHECK(ck_slice_eq(rec.key, ck_slice_cstr(sample[i].key)));
        CHECK(ck_slice_eq(rec.value, ck_slice_cstr(sample[i].value)));
        CHECK_EQ(rec.header_count, sample[i].nh);
        ck_slice_t cur = rec.headers_raw;
        ck_record_header_t h;
        for (int k = 0; k < sample[i].nh; k++) {
            CHECK_EQ(ck_record_header_next(&cur, &h), 1);
            CHECK(ck_slice_eq(h.key, sample[i].h[k].key));
            CHECK(ck_slice_eq(h.value, sample[i].h[k].value));
        }
        CHECK_EQ(ck_record_header_next(&cur, &h), 0);
    }
    CHECK_EQ(ck_batch_iter_next(&it, &rec), 0);
    CHECK_EQ(ck_batch_iter_next(&it, &rec), 0);
    ck_wbuf_free(&scratch);
}

CK_TEST(batch_builder_header_fields)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_wr_bytes(&w, "prefix", 6);
    build_sample(&w, CK_CODEC_NONE);
    const uint8_t *p = w.data + 6;
    size_t n = w.len - 6;
    CHECK_EQ(ck_batch_total_size(p, n), (int64_t)n);
    ck_batch_header_t h;
    ck_batch_header_parse(p, &h);
    CHECK_EQ(h.base_offset, 1000);
    CHECK_EQ(h.magic, 2);
    CHECK_EQ(h.leader_epoch, -1);
    CHECK_EQ(h.attributes, 0);
    CHECK_EQ(h.last_offset_delta, NSAMPLE - 1);
    CHECK_EQ(h.base_timestamp, sample[0].ts);
    CHECK_EQ(h.max_timestamp, 1700000000200);
    CHECK_EQ(h.producer_id, 77);
    CHECK_EQ(h.producer_epoch, 3);
    CHECK_EQ(h.base_sequence, 500);
    CHECK_EQ(h.record_count, NSAMPLE);
    CHECK_EQ(h.crc, ck_crc32c(0, p + 21, n - 21));
    CHECK_EQ(ck_batch_check_crc(p, n), 0);
    /* The first record, byte for byte: length 10, attrs 0, tsDelta 0, offsetDelta 0,
     * key "k0", value "v0", no headers (zig-zag varints). */
    static const uint8_t rec0[] = {20, 0, 0, 0, 4, 'k', '0', 4, 'v', '0', 0};
    CHECK_MEM(p + 61, rec0, sizeof(rec0));
    ck_wbuf_free(&w);
}

CK_TEST(batch_iterate_every_codec)
{
    for (int c = 0; c < NALL; c++) {
        ck_wbuf_t w = CK_WBUF_INIT;
        build_sample(&w, all_codecs[c]);
        ck_batch_header_t h;
        ck_batch_header_parse(w.data, &h);
        CHECK_EQ(h.attributes & CK_ATTR_CODEC_MASK, all_codecs[c]);
        ck_batch_info_t info;
        CHECK_EQ(ck_batch_validate(w.data, w.len, &info), 0);
        CHECK_EQ(info.codec, all_codecs[c]);
        check_sample_records(w.data, w.len, 1000);
        /* Bytes after the batch are ignored by the iterator. */
        ck_wr_bytes(&w, "trailing", 8);
        check_sample_records(w.data, w.len, 1000);
        /* Scratch NULL is fine for uncompressed batches only. */
        ck_batch_iter_t it;
        CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len, NULL),
                 all_codecs[c] == CK_CODEC_NONE ? 0 : CK_EINVAL);
        ck_wbuf_free(&w);
    }
}

/* Each record read on its own from its pos equals the iterator's; pos counts within the
 * (decompressed) records section; short input is CK_ETRUNC, damage CK_ECORRUPT. */
CK_TEST(batch_record_at_pos)
{
    for (int c = 0; c < NALL; c++) {
        ck_wbuf_t w = CK_WBUF_INIT, scratch = CK_WBUF_INIT;
        build_sample(&w, all_codecs[c]);
        ck_batch_iter_t it;
        CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len, &scratch), 0);
        const uint8_t *recs = it.rp;
        size_t rlen = (size_t)(it.rend - it.rp);
        ck_record_t r, one;
        uint32_t last = 0;
        for (int i = 0; i < NSAMPLE; i++) {
            CHECK_EQ(ck_batch_iter_next(&it, &r), 1);
            if (i == 0)
                CHECK_EQ(r.pos, 0);
            else
                CHECK(r.pos > last);
            last = r.pos;
            int64_t size = ck_batch_record_at(w.data, recs + r.pos, rlen - r.pos, &one);
            CHECK(size > 0);
            CHECK_EQ(one.offset, r.offset);
            CHECK_EQ(one.timestamp, r.timestamp);
            CHECK(ck_slice_eq(one.key, r.key));
            CHECK(ck_slice_eq(one.value, r.value));
            CHECK_EQ(one.header_count, r.header_count);
            /* exactly its own bytes suffice; one fewer does not */
            CHECK_EQ(ck_batch_record_at(w.data, recs + r.pos, (size_t)size, &one), size);
            CHECK_EQ(ck_batch_record_at(w.data, recs + r.pos, (size_t)size - 1, &one), CK_ETRUNC);
            if (i + 1 < NSAMPLE) /* the next record starts right after */
                CHECK(r.pos + (uint64_t)size < rlen);
        }
        /* a length prefix that is not one */
        uint8_t bad[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0};
        CHECK_EQ(ck_batch_record_at(w.data, bad, sizeof bad, &one), CK_ECORRUPT);
        uint8_t tiny[2] = {0x02, 0}; /* length 1: shorter than any record body */
        CHECK_EQ(ck_batch_record_at(w.data, tiny, sizeof tiny, &one), CK_ECORRUPT);
        ck_wbuf_free(&scratch);
        ck_wbuf_free(&w);
    }
}

CK_TEST(batch_validate_info)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    build_sample(&w, CK_CODEC_LZ4);
    size_t first = w.len;
    /* A second, transactional, uncompressed batch with a later timestamp. */
    ck_batch_builder_t b;
    ck_batch_builder_init(&b, &w, CK_CODEC_NONE, 0);
    ck_batch_builder_set_flags(&b, CK_ATTR_TRANSACTIONAL);
    ck_batch_builder_set_producer(&b, 88, 1, 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(ck_batch_builder_add(&b, 1800000000000 + i, CK_SLICE_NULL, ck_slice_cstr("v"),
                                      NULL, 0),
                 0);
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
    ck_batch_info_t info;
    CHECK_EQ(ck_batch_validate(w.data, w.len, &info), 0);
    CHECK_EQ(info.batch_count, 2);
    CHECK_EQ(info.record_count, NSAMPLE + 10);
    CHECK_EQ(info.max_timestamp, 1800000000009);
    CHECK_EQ(info.producer_id, 77);
    CHECK_EQ(info.producer_epoch, 3);
    CHECK_EQ(info.base_sequence, 500);
    CHECK_EQ(info.last_offset_delta, NSAMPLE - 1);
    CHECK_EQ(info.codec, CK_CODEC_LZ4);
    CHECK(info.has_transactional);
    CHECK(!info.has_control);
    size_t second = w.len - first;
    CHECK_EQ(info.max_batch_size, first > second ? first : second);
    /* Control batch flag. */
    ck_wbuf_t c = CK_WBUF_INIT;
    ck_batch_builder_init(&b, &c, CK_CODEC_NONE, 0);
    ck_batch_builder_set_flags(&b, CK_ATTR_CONTROL | CK_ATTR_TRANSACTIONAL);
    static const uint8_t commit_key[4] = {0, 0, 0, 1};
    static const uint8_t commit_val[6] = {0, 0, 0, 0, 0, 5};
    CHECK_EQ(ck_batch_builder_add(&b, 5, ck_slice(commit_key, 4), ck_slice(commit_val, 6), NULL, 0),
             0);
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
    CHECK_EQ(ck_batch_validate(c.data, c.len, &info), 0);
    CHECK(info.has_control);
    CHECK(info.has_transactional);
    CHECK_EQ(info.max_timestamp, 5);
    /* An empty batch is well-formed. */
    ck_wbuf_reset(&c);
    ck_batch_builder_init(&b, &c, CK_CODEC_NONE, 0);
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
    CHECK_EQ(c.len, CK_BATCH_HEADER_SIZE);
    CHECK_EQ(ck_batch_validate(c.data, c.len, &info), 0);
    CHECK_EQ(info.record_count, 0);
    CHECK_EQ(info.max_timestamp, -1);
    ck_batch_iter_t it;
    ck_record_t rec;
    CHECK_EQ(ck_batch_iter_init(&it, c.data, c.len, NULL), 0);
    CHECK_EQ(ck_batch_iter_next(&it, &rec), 0);
    ck_wbuf_free(&c);
    ck_wbuf_free(&w);
}

/* Patches a 32-bit field and recomputes the CRC, to test checks behind the CRC. */
static void patch32(uint8_t *p, size_t n, size_t off, uint32_t v)
{
    ck_put_u32(p + off, v);
    ck_batch_update_crc(p, n);
}

CK_TEST(batch_validate_rejects_each_crc_bit_flip)
{
    for (int c = 0; c < NALL; c += 2) { /* none, snappy, zstd */
        ck_wbuf_t w = CK_WBUF_INIT;
        build_sample(&w, all_codecs[c]);
        ck_batch_info_t info;
        CHECK_EQ(ck_batch_validate(w.data, w.len, &info), 0);
        /* Everything from the attributes to the end is covered, and so is the CRC field. */
        for (size_t i = CK_BATCH_OFF_CRC; i < w.len; i++) {
            for (int bit = 0; bit < 8; bit++) {
                w.data[i] ^= (uint8_t)(1u << bit);
                int rc = ck_batch_validate(w.data, w.len, &info);
                if (rc != CK_ECORRUPT)
                    CK_FAIL("codec %d byte %zu bit %d: rc %d", all_codecs[c], i, bit, rc);
                w.data[i] ^= (uint8_t)(1u << bit);
            }
        }
        /* Base offset and leader epoch are not covered: the log rewrites them. */
        w.data[3] ^= 0x10;
        w.data[13] ^= 0x01;
        CHECK_EQ(ck_batch_validate(w.data, w.len, &info), 0);
        ck_wbuf_free(&w);
    }
}

CK_TEST(batch_validate_magic_and_lengths)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    build_sample(&w, CK_CODEC_NONE);
    ck_batch_info_t info;
    uint8_t *p = w.data;
    size_t n = w.len;
    uint32_t blen = ck_get_u32(p + 8);
    p[16] = 1;
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_ECORRUPT);
    p[16] = 0;
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_ECORRUPT);
    p[16] = 3;
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_ECORRUPT);
    p[16] = 0xff;
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_ECORRUPT);
    p[16] = 2;
    CHECK_EQ(ck_batch_validate(p, n, &info), 0);
    static const uint32_t bad_lengths[] = {0, 1, 48, 0xffffffffu, 0x80000000u};
    for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
        ck_put_u32(p + 8, bad_lengths[i]);
        CHECK_EQ(ck_batch_validate(p, n, &info), CK_ECORRUPT);
    }
    ck_put_u32(p + 8, blen + 1);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_ETRUNC);
    ck_put_u32(p + 8, 0x7fffffff);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_ETRUNC);
    /* One byte shorter, CRC matching the shorter batch: the records no longer fit. */
    ck_put_u32(p + 8, blen - 1);
    ck_batch_update_crc(p, n - 1);
    CHECK_EQ(ck_batch_validate(p, n - 1, &info), CK_EINVAL);
    ck_put_u32(p + 8, blen);
    ck_batch_update_crc(p, n);
    CHECK_EQ(ck_batch_validate(p, n, &info), 0);
    CHECK_EQ(ck_batch_validate(p, 0, &info), CK_EINVAL);
    /* Unknown codec ids behind a good CRC. */
    for (int codec = 5; codec < 8; codec++) {
        ck_put_u16(p + 21, (uint16_t)codec);
        ck_batch_update_crc(p, n);
        CHECK_EQ(ck_batch_validate(p, n, &info), CK_EUNSUP);
        ck_batch_iter_t it;
        ck_wbuf_t s = CK_WBUF_INIT;
        CHECK_EQ(ck_batch_iter_init(&it, p, n, &s), CK_EUNSUP);
    }
    ck_wbuf_free(&w);
}

CK_TEST(batch_validate_truncated_at_every_position)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    build_sample(&w, CK_CODEC_NONE);
    size_t first = w.len;
    build_sample(&w, CK_CODEC_GZIP);
    ck_batch_info_t info;
    CHECK_EQ(ck_batch_validate(w.data, w.len, &info), 0);
    CHECK_EQ(info.batch_count, 2);
    for (size_t cut = 1; cut < w.len; cut++) {
        int rc = ck_batch_validate(w.data, cut, &info);
        if (cut == first) {
            CHECK_EQ(rc, 0);
            CHECK_EQ(info.batch_count, 1);
        } else if (rc != CK_ETRUNC) {
            CK_FAIL("cut %zu: rc %d", cut, rc);
        }
    }
    ck_wbuf_free(&w);
}

CK_TEST(batch_validate_record_rules)
{
    ck_batch_info_t info;
    ck_wbuf_t w = CK_WBUF_INIT;
    build_sample(&w, CK_CODEC_NONE);
    uint8_t *p = w.data;
    size_t n = w.len;
    /* lastOffsetDelta must be recordCount - 1. */
    patch32(p, n, CK_BATCH_OFF_LAST_OFFSET_DELTA, NSAMPLE);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_EINVAL);
    patch32(p, n, CK_BATCH_OFF_LAST_OFFSET_DELTA, NSAMPLE - 2);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_EINVAL);
    patch32(p, n, CK_BATCH_OFF_LAST_OFFSET_DELTA, NSAMPLE - 1);
    CHECK_EQ(ck_batch_validate(p, n, &info), 0);
    /* recordCount negative, or not matching the records (both ways). */
    patch32(p, n, CK_BATCH_OFF_RECORD_COUNT, 0xffffffffu);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_EINVAL);
    patch32(p, n, CK_BATCH_OFF_RECORD_COUNT, NSAMPLE + 1);
    patch32(p, n, CK_BATCH_OFF_LAST_OFFSET_DELTA, NSAMPLE);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_EINVAL);
    patch32(p, n, CK_BATCH_OFF_RECORD_COUNT, NSAMPLE - 1);
    patch32(p, n, CK_BATCH_OFF_LAST_OFFSET_DELTA, NSAMPLE - 2);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_EINVAL);
    patch32(p, n, CK_BATCH_OFF_RECORD_COUNT, 0x7fffffff);
    patch32(p, n, CK_BATCH_OFF_LAST_OFFSET_DELTA, 0x7ffffffe);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_EINVAL);
    patch32(p, n, CK_BATCH_OFF_RECORD_COUNT, NSAMPLE);
    patch32(p, n, CK_BATCH_OFF_LAST_OFFSET_DELTA, NSAMPLE - 1);
    CHECK_EQ(ck_batch_validate(p, n, &info), 0);
    /* A record's key length overrunning its record (first record: key length at 61+4). */
    p[61 + 4] = 40; /* zig-zag 20 */
    ck_batch_update_crc(p, n);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_EINVAL);
    p[61 + 4] = 5; /* zig-zag -3: negative, not -1 */
    ck_batch_update_crc(p, n);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_EINVAL);
    p[61 + 4] = 4;
    /* Record length too small to hold the fields. */
    p[61] = 8;
    ck_batch_update_crc(p, n);
    CHECK_EQ(ck_batch_validate(p, n, &info), CK_EINVAL);
    p[61] = 20;
    ck_batch_update_crc(p, n);
    CHECK_EQ(ck_batch_validate(p, n, &info), 0);
    ck_wbuf_free(&w);

    /* Offset deltas must be 0..count-1 even when lastOffsetDelta agrees with the count. */
    ck_batch_builder_t b;
    ck_batch_builder_init(&b, &w, CK_CODEC_NONE, 0);
    CHECK_EQ(ck_batch_builder_add_delta(&b, 0, 1, CK_SLICE_NULL, ck_slice_cstr("a"), NULL, 0), 0);
    CHECK_EQ(ck_batch_builder_add_delta(&b, 2, 1, CK_SLICE_NULL, ck_slice_cstr("b"), NULL, 0), 0);
    CHECK_EQ(ck_batch_builder_add_delta(&b, 2, 1, CK_SLICE_NULL, ck_slice_cstr("c"), NULL, 0),
             CK_EINVAL); /* deltas must grow */
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
    CHECK_EQ(ck_batch_validate(w.data, w.len, &info), CK_EINVAL); /* lastOffsetDelta 2, count 2 */
    patch32(w.data, w.len, CK_BATCH_OFF_LAST_OFFSET_DELTA, 1);
    CHECK_EQ(ck_batch_validate(w.data, w.len, &info), CK_EINVAL); /* second delta is 2 */
    ck_wbuf_free(&w);

    /* A compressed batch must carry a payload. */
    ck_batch_builder_init(&b, &w, CK_CODEC_NONE, 0);
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
    ck_put_u16(w.data + CK_BATCH_OFF_ATTRIBUTES, CK_CODEC_ZSTD);
    ck_batch_update_crc(w.data, w.len);
    CHECK_EQ(ck_batch_validate(w.data, w.len, &info), CK_EINVAL);
    ck_wbuf_free(&w);
}

CK_TEST(batch_iterator_errors_and_gaps)
{
    ck_wbuf_t w = CK_WBUF_INIT, s = CK_WBUF_INIT;
    ck_batch_iter_t it;
    ck_record_t rec;
    /* A compacted-looking batch: deltas 0, 3, 7 with lastOffsetDelta 7. */
    for (int c = 0; c < NALL; c++) {
        ck_wbuf_reset(&w);
        ck_batch_builder_t b;
        ck_batch_builder_init(&b, &w, all_codecs[c], CK_COMPRESS_LEVEL_DEFAULT);
        ck_batch_builder_set_base_offset(&b, 50);
        static const int deltas[] = {0, 3, 7};
        for (int i = 0; i < 3; i++)
            CHECK_EQ(ck_batch_builder_add_delta(&b, deltas[i], 100 + i, ck_slice_cstr("k"),
                                                CK_SLICE_NULL, NULL, 0),
                     0);
        CHECK_EQ(ck_batch_builder_finish(&b), 0);
        ck_batch_header_t h;
        ck_batch_header_parse(w.data, &h);
        CHECK_EQ(h.last_offset_delta, 7);
        CHECK_EQ(h.record_count, 3);
        CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len, &s), 0);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(ck_batch_iter_next(&it, &rec), 1);
            CHECK_EQ(rec.offset, 50 + deltas[i]);
            CHECK_EQ(rec.timestamp, 100 + i);
            CHECK(ck_slice_is_null(rec.value));
        }
        CHECK_EQ(ck_batch_iter_next(&it, &rec), 0);
    }
    /* recordCount larger / smaller than the records present: sticky CK_ECORRUPT. */
    ck_wbuf_reset(&w);
    build_sample(&w, CK_CODEC_NONE);
    ck_put_u32(w.data + CK_BATCH_OFF_RECORD_COUNT, NSAMPLE + 1);
    CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len, &s), 0);
    int rc, got = 0;
    while ((rc = ck_batch_iter_next(&it, &rec)) == 1)
        got++;
    CHECK_EQ(got, NSAMPLE);
    CHECK_EQ(rc, CK_ECORRUPT);
    CHECK_EQ(ck_batch_iter_next(&it, &rec), CK_ECORRUPT);
    ck_put_u32(w.data + CK_BATCH_OFF_RECORD_COUNT, NSAMPLE - 1);
    CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len, &s), 0);
    got = 0;
    while ((rc = ck_batch_iter_next(&it, &rec)) == 1)
        got++;
    CHECK_EQ(got, NSAMPLE - 1);
    CHECK_EQ(rc, CK_ECORRUPT);
    ck_put_u32(w.data + CK_BATCH_OFF_RECORD_COUNT, 0xffffffffu);
    CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len, &s), CK_ECORRUPT);
    /* Header problems. */
    CHECK_EQ(ck_batch_iter_init(&it, w.data, 60, &s), CK_ETRUNC);
    CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len - 1, &s), CK_ETRUNC);
    w.data[16] = 1;
    CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len, &s), CK_ECORRUPT);
    /* A compressed batch with garbage for a payload, and a decompression bound. */
    ck_wbuf_reset(&w);
    build_sample(&w, CK_CODEC_GZIP);
    CHECK_EQ(ck_batch_iter_init_max(&it, w.data, w.len, &s, 10), CK_ETOOBIG);
    w.data[w.len - 3] ^= 0xff;
    CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len, &s), CK_ECORRUPT);
    ck_wbuf_free(&w);
    ck_wbuf_free(&s);
}

CK_TEST(batch_iterator_fuzz_no_crash)
{
    /* Random damage behind a recomputed CRC: iteration must fail cleanly, never overrun
     * (ASan watches). */
    ck_wbuf_t w = CK_WBUF_INIT, s = CK_WBUF_INIT;
    build_sample(&w, CK_CODEC_NONE);
    uint8_t *copy = malloc(w.len);
    uint64_t x = 12345;
    for (int round = 0; round < 20000; round++) {
        memcpy(copy, w.data, w.len);
        for (int k = 0; k < 3; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = CK_BATCH_HEADER_SIZE + (size_t)(x >> 33) % (w.len - CK_BATCH_HEADER_SIZE);
            copy[pos] = (uint8_t)(x >> 20);
        }
        ck_batch_update_crc(copy, w.len);
        ck_batch_info_t info;
        int vrc = ck_batch_validate(copy, w.len, &info);
        CHECK(vrc == 0 || vrc == CK_EINVAL);
        ck_batch_iter_t it;
        ck_record_t rec;
        CHECK_EQ(ck_batch_iter_init(&it, copy, w.len, &s), 0);
        int rc;
        while ((rc = ck_batch_iter_next(&it, &rec)) == 1) {
            ck_slice_t cur = rec.headers_raw;
            ck_record_header_t h;
            while (ck_record_header_next(&cur, &h) == 1) {
            }
        }
        CHECK(rc == 0 || rc == CK_ECORRUPT);
        if (vrc == 0)
            CHECK_EQ(rc, 0); /* what validation accepts, the iterator reads */
    }
    free(copy);
    ck_wbuf_free(&w);
    ck_wbuf_free(&s);
}

CK_TEST(batch_log_append_time)
{
    for (int c = 0; c < NALL; c++) {
        ck_wbuf_t w = CK_WBUF_INIT;
        ck_batch_builder_t b;
        ck_batch_builder_init(&b, &w, all_codecs[c], CK_COMPRESS_LEVEL_DEFAULT);
        ck_batch_builder_set_flags(&b, CK_ATTR_TIMESTAMP_LOG_APPEND | CK_CODEC_GZIP);
        for (int i = 0; i < 5; i++)
            CHECK_EQ(
                ck_batch_builder_add(&b, 10 + i, CK_SLICE_NULL, ck_slice_cstr("v"), NULL, 0), 0);
        CHECK_EQ(ck_batch_builder_finish(&b), 0);
        ck_batch_header_t h;
        ck_batch_header_parse(w.data, &h);
        /* set_flags must not change the codec */
        CHECK_EQ(h.attributes, CK_ATTR_TIMESTAMP_LOG_APPEND | all_codecs[c]);
        /* The log stamps the append time into maxTimestamp. */
        ck_put_u64(w.data + CK_BATCH_OFF_MAX_TIMESTAMP, 999);
        ck_batch_update_crc(w.data, w.len);
        ck_batch_info_t info;
        CHECK_EQ(ck_batch_validate(w.data, w.len, &info), 0);
        CHECK_EQ(info.max_timestamp, 999);
        ck_wbuf_t s = CK_WBUF_INIT;
        ck_batch_iter_t it;
        ck_record_t rec;
        CHECK_EQ(ck_batch_iter_init(&it, w.data, w.len, &s), 0);
        while (ck_batch_iter_next(&it, &rec) == 1)
            CHECK_EQ(rec.timestamp, 999);
        int64_t off, ts;
        CHECK_EQ(ck_batch_find_timestamp(w.data, w.len, 999, &off, &ts), 0);
        CHECK_EQ(off, 0);
        CHECK_EQ(ts, 999);
        CHECK_EQ(ck_batch_find_timestamp(w.data, w.len, 1000, &off, &ts), CK_ENOENT);
        ck_wbuf_free(&s);
        ck_wbuf_free(&w);
    }
}

CK_TEST(batch_find_timestamp_every_codec)
{
    for (int c = 0; c < NALL; c++) {
        ck_wbuf_t w = CK_WBUF_INIT;
        build_sample(&w, all_codecs[c]);
        /* sample timestamps by offset: ...000, ...005, 1699999999000, ...100, ...200, ...150 */
        static const struct {
            int64_t ts, off, found;
        } q[] = {
            {0, 1000, 1700000000000},
            {1699999999000, 1000, 1700000000000},
            {1700000000000, 1000, 1700000000000},
            {1700000000001, 1001, 1700000000005},
            {1700000000006, 1003, 1700000000100},
            {1700000000101, 1004, 1700000000200},
            {1700000000200, 1004, 1700000000200},
        };
        for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
            int64_t off = -1, ts = -1;
            CHECK_EQ(ck_batch_find_timestamp(w.data, w.len, q[i].ts, &off, &ts), 0);
            CHECK_EQ(off, q[i].off);
            CHECK_EQ(ts, q[i].found);
        }
        int64_t off, ts;
        CHECK_EQ(ck_batch_find_timestamp(w.data, w.len, 1700000000201, &off, &ts), CK_ENOENT);
        CHECK_EQ(ck_batch_find_timestamp(w.data, 30, 0, &off, &ts), CK_ETRUNC);
        ck_wbuf_free(&w);
    }
}

CK_TEST(batch_builder_errors)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_wr_bytes(&w, "keep", 4);
    ck_batch_builder_t b;
    /* Unknown codec: finish fails and leaves the buffer as it was. */
    ck_batch_builder_init(&b, &w, 6, 0);
    CHECK(ck_batch_builder_add(&b, 1, CK_SLICE_NULL, CK_SLICE_NULL, NULL, 0) != 0);
    CHECK_EQ(ck_batch_builder_finish(&b), CK_EUNSUP);
    CHECK_EQ(w.len, 4);
    /* Null header key. */
    ck_batch_builder_init(&b, &w, CK_CODEC_NONE, 0);
    ck_record_header_t bad = {CK_SLICE_NULL, CK_SLICE_NULL};
    CHECK_EQ(ck_batch_builder_add(&b, 1, CK_SLICE_NULL, CK_SLICE_NULL, &bad, 1), CK_EINVAL);
    ck_batch_builder_abort(&b);
    CHECK_EQ(w.len, 4);
    /* Allocation failure is sticky and discards the batch. */
    for (int c = 0; c < NALL; c++) {
        ck_batch_builder_init(&b, &w, all_codecs[c], 0);
        static uint8_t big[100000];
        ck_alloc_fail_after(1);
        CHECK_EQ(ck_batch_builder_add(&b, 1, CK_SLICE_NULL, ck_slice(big, sizeof(big)), NULL, 0),
                 CK_ENOMEM);
        ck_alloc_fail_after(0);
        CHECK_EQ(ck_batch_builder_add(&b, 1, CK_SLICE_NULL, CK_SLICE_NULL, NULL, 0), CK_ENOMEM);
        CHECK_EQ(ck_batch_builder_finish(&b), CK_ENOMEM);
        CHECK_EQ(w.len, 4);
        CHECK_EQ(w.err, 0);
    }
    CHECK_MEM(w.data, "keep", 4);
    ck_wbuf_free(&w);
}

/* A 1 MiB buffer of batches of 1 KiB records, as the produce path sees it. */
static void build_mib(ck_wbuf_t *w, int records_per_batch)
{
    static uint8_t val[1024 - 40];
    for (size_t i = 0; i < sizeof(val); i++)
        val[i] = (uint8_t)(i * 31);
    char key[32];
    int r = 0;
    while (w->len < (1u << 20)) {
        ck_batch_builder_t b;
        ck_batch_builder_init(&b, w, CK_CODEC_NONE, 0);
        for (int i = 0; i < records_per_batch; i++, r++) {
            snprintf(key, sizeof(key), "key-%08d", r);
            ck_record_header_t h = {ck_slice_cstr("trace"), ck_slice_cstr("abcdef0123")};
            CHECK_EQ(ck_batch_builder_add(&b, 1700000000000 + r, ck_slice_cstr(key),
                                          ck_slice(val, sizeof(val)), &h, 1),
                     0);
        }
        CHECK_EQ(ck_batch_builder_finish(&b), 0);
    }
}

CK_TEST(batch_validate_throughput)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    build_mib(&w, 16);
    ck_batch_info_t info;
    CHECK_EQ(ck_batch_validate(w.data, w.len, &info), 0);
    int iters = 50;
    int64_t t0 = ck_mono_ns();
    for (int i = 0; i < iters; i++)
        CHECK_EQ(ck_batch_validate(w.data, w.len, &info), 0);
    int64_t dt = ck_mono_ns() - t0;
    fprintf(stderr, "  validate: %zu bytes, %d batches, %" PRId64 " records: %.0f MB/s\n",
            w.len, info.batch_count, info.record_count,
            (double)w.len * iters / ((double)dt / 1e9) / 1e6);
    ck_wbuf_free(&w);
}
