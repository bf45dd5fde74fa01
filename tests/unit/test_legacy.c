#include "core/compress.h"
#include "core/crc32c.h"
#include "kafka/legacy.h"
#include "log/batch.h"
#include "test.h"

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320), bit by bit: independent of zlib. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

/* An independent reader of message sets: fills arrays, checks every CRC with the bitwise
 * CRC, returns the count or -1. */
typedef struct pmsg {
    int64_t offset;
    int magic;
    int attributes;
    int64_t timestamp;
    ck_slice_t key, value;
} pmsg_t;

static int parse_set(const uint8_t *p, size_t n, pmsg_t *out, int max)
{
    int count = 0;
    size_t pos = 0;
    while (pos < n) {
        if (n - pos < 12 || count == max)
            return -1;
        const uint8_t *m = p + pos;
        uint32_t size = ck_get_u32(m + 8);
        if (size + 12 > n - pos)
            return -1;
        if (crc32_bitwise(m + 16, size - 4) != ck_get_u32(m + 12))
            return -1;
        pmsg_t *o = &out[count++];
        o->offset = (int64_t)ck_get_u64(m);
        o->magic = m[16];
        o->attributes = m[17];
        size_t q = 18;
        o->timestamp = -1;
        if (o->magic == 1) {
            o->timestamp = (int64_t)ck_get_u64(m + q);
            q += 8;
        }
        int32_t kl = (int32_t)ck_get_u32(m + q);
        q += 4;
        o->key = kl < 0 ? CK_SLICE_NULL : ck_slice(m + q, (size_t)kl);
        q += kl < 0 ? 0 : (size_t)kl;
        int32_t vl = (int32_t)ck_get_u32(m + q);
        q += 4;
        o->value = vl < 0 ? CK_SLICE_NULL : ck_slice(m + q, (size_t)vl);
        q += vl < 0 ? 0 : (size_t)vl;
        if (q != size + 12)
            return -1;
        pos += size + 12;
    }
    return count;
}

CK_TEST(legacy_hand_built_magic1_message)
{
    CHECK_EQ(crc32_bitwise((const uint8_t *)"123456789", 9), 0xCBF43926u);
    /* Kafka protocol guide, message format v1:
     *   Offset MessageSize Crc MagicByte Attributes Timestamp Key Value */
    uint8_t msg[] = {
        0,    0,    0,    0,    0,    0,    0,    7,    /* offset 7 */
        0,    0,    0,    30,                         /* size: 4+1+1+8+4+3+4+5 */
        0,    0,    0,    0,                          /* crc, below */
        1,                                            /* magic */
        0,                                            /* attributes: none, CreateTime */
        0x00, 0x00, 0x01, 0x1F, 0x71, 0xFB, 0x04, 0xCB, /* timestamp 1234567890123 */
        0,    0,    0,    3,    'k',  'e',  'y',      /* key */
        0,    0,    0,    5,    'v',  'a',  'l',  'u',  'e', /* value */
    };
    CHECK_EQ(sizeof(msg), 42);
    CHECK_EQ(ck_get_u64(msg + 18), 1234567890123ull);
    uint32_t crc = crc32_bitwise(msg + 16, sizeof(msg) - 16);
    ck_put_u32(msg + 12, crc);

    ck_wbuf_t w = CK_WBUF_INIT;
    ck_legacy_write_message(&w, 1, 7, 0, 1234567890123, ck_slice_cstr("key"),
                            ck_slice_cstr("value"));
    CHECK_EQ(w.len, sizeof(msg));
    CHECK_MEM(w.data, msg, sizeof(msg));
    CHECK_EQ(ck_legacy_message_size(1, 3, 5), sizeof(msg));
    CHECK_EQ(ck_legacy_detect_magic(msg, sizeof(msg)), 1);

    /* Up to v2: one record, same key/value/timestamp, offset delta 0. */
    ck_wbuf_t v2 = CK_WBUF_INIT;
    CHECK_EQ(ck_legacy_to_v2(msg, sizeof(msg), 555, &v2, 1 << 20), 0);
    ck_batch_info_t info;
    CHECK_EQ(ck_batch_validate(v2.data, v2.len, &info), 0);
    CHECK_EQ(info.record_count, 1);
    CHECK_EQ(info.max_timestamp, 1234567890123);
    CHECK_EQ(info.producer_id, -1);
    CHECK_EQ(info.codec, CK_CODEC_NONE);
    ck_batch_iter_t it;
    ck_record_t rec;
    CHECK_EQ(ck_batch_iter_init(&it, v2.data, v2.len, NULL), 0);
    CHECK_EQ(it.hdr.attributes, 0);
    CHECK_EQ(ck_batch_iter_next(&it, &rec), 1);
    CHECK_EQ(rec.offset, 0);
    CHECK_EQ(rec.timestamp, 1234567890123);
    CHECK(ck_slice_eq_cstr(rec.key, "key"));
    CHECK(ck_slice_eq_cstr(rec.value, "value"));
    CHECK_EQ(rec.header_count, 0);
    CHECK_EQ(ck_batch_iter_next(&it, &rec), 0);

    /* And back down at offset 7: the same bytes. */
    ck_put_u64(v2.data, 7);
    ck_wbuf_t back = CK_WBUF_INIT;
    CHECK_EQ(ck_legacy_from_v2(v2.data, v2.len, 1, &back, 1 << 20), 1);
    CHECK_EQ(back.len, sizeof(msg));
    CHECK_MEM(back.data, msg, sizeof(msg));

    /* The magic 0 form of the same message: no timestamp, 8 bytes shorter. */
    uint8_t m0[34];
    memcpy(m0, msg, 18);
    memcpy(m0 + 18, msg + 26, 16);
    ck_put_u32(m0 + 8, 22);
    m0[16] = 0;
    ck_put_u32(m0 + 12, crc32_bitwise(m0 + 16, sizeof(m0) - 16));
    ck_wbuf_reset(&back);
    CHECK_EQ(ck_legacy_from_v2(v2.data, v2.len, 0, &back, 1 << 20), 1);
    CHECK_EQ(back.len, sizeof(m0));
    CHECK_MEM(back.data, m0, sizeof(m0));
    ck_wbuf_free(&w);
    ck_wbuf_free(&v2);
    ck_wbuf_free(&back);
}

CK_TEST(legacy_detect_magic)
{
    uint8_t b[17] = {0};
    CHECK_EQ(ck_legacy_detect_magic(b, 17), 0);
    b[16] = 1;
    CHECK_EQ(ck_legacy_detect_magic(b, 17), 1);
    b[16] = 2;
    CHECK_EQ(ck_legacy_detect_magic(b, 17), 2);
    b[16] = 3;
    CHECK_EQ(ck_legacy_detect_magic(b, 17), CK_ECORRUPT);
    b[16] = 0xff;
    CHECK_EQ(ck_legacy_detect_magic(b, 17), CK_ECORRUPT);
    CHECK_EQ(ck_legacy_detect_magic(b, 16), CK_ETRUNC);
    CHECK_EQ(ck_legacy_detect_magic(b, 0), CK_ETRUNC);
    /* A real v2 batch. */
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_batch_builder_t bb;
    ck_batch_builder_init(&bb, &w, CK_CODEC_NONE, 0);
    CHECK_EQ(ck_batch_builder_add(&bb, 1, CK_SLICE_NULL, CK_SLICE_NULL, NULL, 0), 0);
    CHECK_EQ(ck_batch_builder_finish(&bb), 0);
    CHECK_EQ(ck_legacy_detect_magic(w.data, w.len), 2);
    ck_wbuf_free(&w);
}

/* ---- round trips ---- */

typedef struct tmsg {
    int64_t ts;
    const char *key;
    const char *value;
} tmsg_t;

static const tmsg_t msgs[] = {
    {1600000000000, "alpha", "first value"},
    {1600000000010, NULL, "no key"},
    {1600000000005, "tomb", NULL},
    {1600000000020, NULL, NULL},
    {1600000000030, "", ""},
    {1600000000040, "omega", "a somewhat longer value to give the compressors something"},
};
#define NMSGS ((int)(sizeof(msgs) / sizeof(msgs[0])))

/* What the Java client's KafkaLZ4BlockOutputStream writes for magic 0: the header
 * checksum computed over the magic number as well. */
static void break_lz4_header_checksum(uint8_t *frame)
{
    size_t hs = 7 + ((frame[4] & 0x08) ? 8 : 0) + ((frame[4] & 0x01) ? 4 : 0);
    frame[hs - 1] = (uint8_t)(ck__xxh32_small(frame, hs - 1) >> 8);
}

/* Appends msgs[from, to) as a message set at offsets base+from.., plain or inside one
 * compressed wrapper the way Kafka clients build it. */
static void build_set(ck_wbuf_t *out, int magic, int codec, int from, int to, int64_t base,
                      int wrapper_attrs)
{
    if (codec == CK_CODEC_NONE) {
        for (int i = from; i < to; i++)
            ck_legacy_write_message(out, magic, base + i, 0, msgs[i].ts,
                                    ck_slice_cstr(msgs[i].key), ck_slice_cstr(msgs[i].value));
        CHECK_EQ(out->err, 0);
        return;
    }
    ck_wbuf_t inner = CK_WBUF_INIT, comp = CK_WBUF_INIT;
    int64_t max_ts = -1;
    for (int i = from; i < to; i++) {
        /* magic 1: relative inner offsets; magic 0: absolute */
        int64_t off = magic == 1 ? i - from : base + i;
        ck_legacy_write_message(&inner, magic, off, 0, msgs[i].ts, ck_slice_cstr(msgs[i].key),
                                ck_slice_cstr(msgs[i].value));
        if (msgs[i].ts > max_ts)
            max_ts = msgs[i].ts;
    }
    CHECK_EQ(ck_compress(codec, CK_COMPRESS_LEVEL_DEFAULT, inner.data, inner.len, &comp), 0);
    if (codec == CK_CODEC_LZ4 && magic == 0)
        break_lz4_header_checksum(comp.data);
    ck_legacy_write_message(out, magic, base + to - 1, (int8_t)(codec | wrapper_attrs), max_ts,
                            CK_SLICE_NULL, ck_slice(comp.data, comp.len));
    CHECK_EQ(out->err, 0);
    ck_wbuf_free(&inner);
    ck_wbuf_free(&comp);
}

static void check_v2(const uint8_t *p, size_t n, int magic, int64_t now_ms, int expect_codec)
{
    ck_batch_info_t info;
    CHECK_EQ(ck_batch_validate(p, n, &info), 0);
    CHECK_EQ(info.batch_count, 1);
    CHECK_EQ(info.record_count, NMSGS);
    CHECK_EQ(info.codec, expect_codec);
    ck_wbuf_t s = CK_WBUF_INIT;
    ck_batch_iter_t it;
    ck_record_t rec;
    CHECK_EQ(ck_batch_iter_init(&it, p, n, &s), 0);
    CHECK_EQ(it.hdr.attributes & CK_ATTR_TIMESTAMP_LOG_APPEND, 0);
    for (int i = 0; i < NMSGS; i++) {
        CHECK_EQ(ck_batch_iter_next(&it, &rec), 1);
        CHECK_EQ(rec.offset_delta, i);
        CHECK_EQ(rec.timestamp, magic == 0 ? now_ms : msgs[i].ts);
        CHECK(ck_slice_eq(rec.key, ck_slice_cstr(msgs[i].key)));
        CHECK(ck_slice_eq(rec.value, ck_slice_cstr(msgs[i].value)));
        CHECK_EQ(rec.header_count, 0);
    }
    CHECK_EQ(ck_batch_iter_next(&it, &rec), 0);
    ck_wbuf_free(&s);
}

static void check_down(const uint8_t *p, size_t n, int magic, int64_t base, int64_t now_ms,
                       int src_magic)
{
    pmsg_t pm[32];
    int cnt = parse_set(p, n, pm, 32);
    CHECK_EQ(cnt, NMSGS);
    for (int i = 0; i < NMSGS; i++) {
        CHECK_EQ(pm[i].offset, base + i);
        CHECK_EQ(pm[i].magic, magic);
        CHECK_EQ(pm[i].attributes, 0);
        if (magic == 1)
            CHECK_EQ(pm[i].timestamp, src_magic == 0 ? now_ms : msgs[i].ts);
        CHECK(ck_slice_eq(pm[i].key, ck_slice_cstr(msgs[i].key)));
        CHECK(ck_slice_eq(pm[i].value, ck_slice_cstr(msgs[i].value)));
    }
}

CK_TEST(legacy_roundtrip_plain_and_compressed)
{
    static const int codecs[] = {CK_CODEC_NONE, CK_CODEC_GZIP, CK_CODEC_SNAPPY, CK_CODEC_LZ4,
                                 CK_CODEC_ZSTD};
    const int64_t now = 1700000000000;
    for (int magic = 0; magic <= 1; magic++) {
        for (int c = 0; c < 5; c++) {
            ck_wbuf_t set = CK_WBUF_INIT, v2 = CK_WBUF_INIT;
            build_set(&set, magic, codecs[c], 0, NMSGS, 0, 0);
            CHECK_EQ(ck_legacy_detect_magic(set.data, set.len), magic);
            ck_wr_bytes(&v2, "pre", 3);
            CHECK_EQ(ck_legacy_to_v2(set.data, set.len, now, &v2, 1 << 20), 0);
            CHECK_MEM(v2.data, "pre", 3);
            check_v2(v2.data + 3, v2.len - 3, magic, now, codecs[c]);
            /* As the log would store it, at base offset 100. */
            ck_put_u64(v2.data + 3, 100);
            for (int to = 0; to <= 1; to++) {
                ck_wbuf_t back = CK_WBUF_INIT;
                CHECK_EQ(ck_legacy_from_v2(v2.data + 3, v2.len - 3, to, &back, 1 << 20), NMSGS);
                check_down(back.data, back.len, to, 100, now, magic);
                /* ...and up again gives the same records. */
                ck_wbuf_t again = CK_WBUF_INIT;
                CHECK_EQ(ck_legacy_to_v2(back.data, back.len, now, &again, 1 << 20), 0);
                if (to == magic)
                    check_v2(again.data, again.len, magic, now, CK_CODEC_NONE);
                ck_wbuf_free(&again);
                ck_wbuf_free(&back);
            }
            ck_wbuf_free(&set);
            ck_wbuf_free(&v2);
        }
    }
}

CK_TEST(legacy_mixed_wrappers_in_one_set)
{
    /* Plain, gzip wrapper, lz4 wrapper, plain: one v2 batch in order. */
    const int64_t now = 42;
    for (int magic = 0; magic <= 1; magic++) {
        ck_wbuf_t set = CK_WBUF_INIT, v2 = CK_WBUF_INIT;
        build_set(&set, magic, CK_CODEC_NONE, 0, 1, 0, 0);
        build_set(&set, magic, CK_CODEC_GZIP, 1, 3, 0, 0);
        build_set(&set, magic, CK_CODEC_LZ4, 3, 5, 0, 0);
        build_set(&set, magic, CK_CODEC_NONE, 5, 6, 0, 0);
        CHECK_EQ(ck_legacy_to_v2(set.data, set.len, now, &v2, 1 << 20), 0);
        check_v2(v2.data, v2.len, magic, now, CK_CODEC_NONE);
        ck_wbuf_free(&set);
        ck_wbuf_free(&v2);
    }
}

CK_TEST(legacy_log_append_time_wrapper)
{
    ck_wbuf_t set = CK_WBUF_INIT, v2 = CK_WBUF_INIT, back = CK_WBUF_INIT;
    build_set(&set, 1, CK_CODEC_SNAPPY, 0, NMSGS, 0, 0x08);
    /* The wrapper's timestamp (max inner) applies to every record. */
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 1, &v2, 1 << 20), 0);
    ck_wbuf_t s = CK_WBUF_INIT;
    ck_batch_iter_t it;
    ck_record_t rec;
    CHECK_EQ(ck_batch_iter_init(&it, v2.data, v2.len, &s), 0);
    CHECK(it.hdr.attributes & CK_ATTR_TIMESTAMP_LOG_APPEND);
    CHECK_EQ(it.hdr.max_timestamp, 1600000000040);
    int n = 0;
    while (ck_batch_iter_next(&it, &rec) == 1) {
        CHECK_EQ(rec.timestamp, 1600000000040);
        n++;
    }
    CHECK_EQ(n, NMSGS);
    /* Down to magic 1: the timestamp type bit comes back on each message. */
    CHECK_EQ(ck_legacy_from_v2(v2.data, v2.len, 1, &back, 1 << 20), NMSGS);
    pmsg_t pm[16];
    CHECK_EQ(parse_set(back.data, back.len, pm, 16), NMSGS);
    for (int i = 0; i < NMSGS; i++) {
        CHECK_EQ(pm[i].attributes, 0x08);
        CHECK_EQ(pm[i].timestamp, 1600000000040);
    }
    /* Magic 0 has no timestamp type. */
    ck_wbuf_reset(&back);
    CHECK_EQ(ck_legacy_from_v2(v2.data, v2.len, 0, &back, 1 << 20), NMSGS);
    CHECK_EQ(parse_set(back.data, back.len, pm, 16), NMSGS);
    CHECK_EQ(pm[0].attributes, 0);
    ck_wbuf_free(&s);
    ck_wbuf_free(&set);
    ck_wbuf_free(&v2);
    ck_wbuf_free(&back);
}

CK_TEST(legacy_to_v2_rejects_corruption)
{
    ck_wbuf_t set = CK_WBUF_INIT, v2 = CK_WBUF_INIT;
    build_set(&set, 1, CK_CODEC_NONE, 0, 3, 0, 0);
    size_t first = ck_get_u32(set.data + 8) + 12;
    /* Each byte of the first message after its offset: CRC or size catches it. */
    for (size_t i = 8; i < first; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            set.data[i] ^= (uint8_t)(1u << bit);
            int rc = ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20);
            if (rc != CK_ECORRUPT && rc != CK_ETRUNC)
                CK_FAIL("byte %zu bit %d: rc %d", i, bit, rc);
            CHECK_EQ(v2.len, 0);
            set.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* The offset is not covered and does not matter. */
    set.data[7] ^= 1;
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), 0);
    ck_wbuf_reset(&v2);
    /* Truncation at every position: whole-message prefixes are valid sets. */
    for (size_t cut = 0; cut < set.len; cut++) {
        int rc = ck_legacy_to_v2(set.data, cut, 0, &v2, 1 << 20);
        size_t pos = 0;
        bool boundary = false;
        while (pos < cut)
            pos += ck_get_u32(set.data + pos + 8) + 12;
        boundary = pos == cut;
        if (cut == 0)
            CHECK_EQ(rc, CK_EINVAL);
        else if (boundary)
            CHECK_EQ(rc, 0);
        else if (rc != CK_ETRUNC)
            CK_FAIL("cut %zu: rc %d", cut, rc);
        ck_wbuf_reset(&v2);
    }
    /* Magic 2 inside a legacy set, and a message_size below the minimum. */
    ck_wbuf_reset(&set);
    ck_legacy_write_message(&set, 1, 0, 0, 5, CK_SLICE_NULL, ck_slice_cstr("x"));
    set.data[16] = 2;
    ck_put_u32(set.data + 12, crc32_bitwise(set.data + 16, set.len - 16));
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_ECORRUPT);
    set.data[16] = 1;
    ck_put_u32(set.data + 8, 13);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_ECORRUPT);
    /* Key length running past the message (CRC made to match). */
    ck_wbuf_reset(&set);
    ck_legacy_write_message(&set, 1, 0, 0, 5, ck_slice_cstr("k"), ck_slice_cstr("x"));
    ck_put_u32(set.data + 26, 100);
    ck_put_u32(set.data + 12, crc32_bitwise(set.data + 16, set.len - 16));
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_ECORRUPT);
    ck_put_u32(set.data + 26, 0xfffffffe); /* -2 */
    ck_put_u32(set.data + 12, crc32_bitwise(set.data + 16, set.len - 16));
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_ECORRUPT);
    /* Unknown codec id. */
    ck_wbuf_reset(&set);
    ck_legacy_write_message(&set, 1, 0, 6, 5, CK_SLICE_NULL, ck_slice_cstr("x"));
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_EUNSUP);
    CHECK_EQ(v2.len, 0);
    ck_wbuf_free(&set);
    ck_wbuf_free(&v2);
}

/* Wraps the given inner set bytes in a compressed message. */
static void wrap(ck_wbuf_t *out, int magic, int codec, const uint8_t *inner, size_t n)
{
    ck_wbuf_t comp = CK_WBUF_INIT;
    CHECK_EQ(ck_compress(codec, CK_COMPRESS_LEVEL_DEFAULT, inner, n, &comp), 0);
    ck_legacy_write_message(out, magic, 0, (int8_t)codec, 1, CK_SLICE_NULL,
                            ck_slice(comp.data, comp.len));
    ck_wbuf_free(&comp);
}

CK_TEST(legacy_to_v2_rejects_bad_wrappers)
{
    ck_wbuf_t inner = CK_WBUF_INIT, set = CK_WBUF_INIT, v2 = CK_WBUF_INIT;
    /* Inner CRC mismatch under a valid outer CRC. */
    ck_legacy_write_message(&inner, 1, 0, 0, 1, ck_slice_cstr("k"), ck_slice_cstr("v"));
    inner.data[inner.len - 1] ^= 1;
    wrap(&set, 1, CK_CODEC_GZIP, inner.data, inner.len);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_ECORRUPT);
    /* Nested compression. */
    ck_wbuf_reset(&inner);
    ck_wbuf_reset(&set);
    ck_legacy_write_message(&inner, 1, 0, CK_CODEC_GZIP, 1, CK_SLICE_NULL, ck_slice_cstr("zz"));
    wrap(&set, 1, CK_CODEC_SNAPPY, inner.data, inner.len);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_EINVAL);
    /* Inner magic differing from the wrapper's. */
    ck_wbuf_reset(&inner);
    ck_wbuf_reset(&set);
    ck_legacy_write_message(&inner, 0, 0, 0, 1, CK_SLICE_NULL, ck_slice_cstr("v"));
    wrap(&set, 1, CK_CODEC_LZ4, inner.data, inner.len);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_EINVAL);
    /* Empty inner set, null wrapper value. */
    ck_wbuf_reset(&set);
    wrap(&set, 1, CK_CODEC_GZIP, (const uint8_t *)"", 0);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_EINVAL);
    ck_wbuf_reset(&set);
    ck_legacy_write_message(&set, 1, 0, CK_CODEC_GZIP, 1, CK_SLICE_NULL, CK_SLICE_NULL);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_EINVAL);
    /* Partial inner message. */
    ck_wbuf_reset(&inner);
    ck_wbuf_reset(&set);
    ck_legacy_write_message(&inner, 1, 0, 0, 1, ck_slice_cstr("k"), ck_slice_cstr("v"));
    wrap(&set, 1, CK_CODEC_ZSTD, inner.data, inner.len - 1);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_ECORRUPT);
    /* Garbage instead of compressed data. */
    ck_wbuf_reset(&set);
    ck_legacy_write_message(&set, 1, 0, CK_CODEC_LZ4, 1, CK_SLICE_NULL, ck_slice_cstr("nope"));
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_ECORRUPT);
    /* A bomb: 8 MiB of zeros in one inner value, 1 MiB allowed. */
    ck_wbuf_reset(&inner);
    ck_wbuf_reset(&set);
    uint8_t *zeros = calloc(1, 8u << 20);
    ck_legacy_write_message(&inner, 1, 0, 0, 1, CK_SLICE_NULL, ck_slice(zeros, 8u << 20));
    wrap(&set, 1, CK_CODEC_GZIP, inner.data, inner.len);
    CHECK(set.len < 100000);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_ETOOBIG);
    /* The bound is over the whole set: two wrappers of 600 KiB each exceed 1 MiB. */
    ck_wbuf_reset(&inner);
    ck_wbuf_reset(&set);
    ck_legacy_write_message(&inner, 1, 0, 0, 1, CK_SLICE_NULL, ck_slice(zeros, 600u << 10));
    wrap(&set, 1, CK_CODEC_GZIP, inner.data, inner.len);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), 0);
    ck_wbuf_reset(&v2);
    wrap(&set, 1, CK_CODEC_GZIP, inner.data, inner.len);
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 0, &v2, 1 << 20), CK_ETOOBIG);
    CHECK_EQ(v2.len, 0);
    free(zeros);
    ck_wbuf_free(&inner);
    ck_wbuf_free(&set);
    ck_wbuf_free(&v2);
}

CK_TEST(legacy_magic0_lz4_header_checksum)
{
    /* Magic 0 lz4 from old Java clients carries the "broken" checksum: accepted. Magic 1
     * was fixed in 0.10, so the same bytes under magic 1 are refused. */
    ck_wbuf_t set = CK_WBUF_INIT, v2 = CK_WBUF_INIT;
    build_set(&set, 0, CK_CODEC_LZ4, 0, NMSGS, 0, 0); /* build_set breaks the HC */
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 9, &v2, 1 << 20), 0);
    check_v2(v2.data, v2.len, 0, 9, CK_CODEC_LZ4);
    ck_wbuf_t inner = CK_WBUF_INIT, comp = CK_WBUF_INIT;
    ck_legacy_write_message(&inner, 1, 0, 0, 1, CK_SLICE_NULL, ck_slice_cstr("v"));
    CHECK_EQ(ck_compress(CK_CODEC_LZ4, 0, inner.data, inner.len, &comp), 0);
    break_lz4_header_checksum(comp.data);
    ck_wbuf_reset(&set);
    ck_wbuf_reset(&v2);
    ck_legacy_write_message(&set, 1, 0, CK_CODEC_LZ4, 1, CK_SLICE_NULL,
                            ck_slice(comp.data, comp.len));
    CHECK_EQ(ck_legacy_to_v2(set.data, set.len, 9, &v2, 1 << 20), CK_ECORRUPT);
    ck_wbuf_free(&inner);
    ck_wbuf_free(&comp);
    ck_wbuf_free(&set);
    ck_wbuf_free(&v2);
}

/* Builds v2 batches: records "r<offset>" with 100-byte values. */
static void add_batch(ck_wbuf_t *w, int64_t base, int n, int codec, int16_t flags)
{
    ck_batch_builder_t b;
    ck_batch_builder_init(&b, w, codec, CK_COMPRESS_LEVEL_DEFAULT);
    ck_batch_builder_set_base_offset(&b, base);
    ck_batch_builder_set_flags(&b, flags);
    uint8_t val[100];
    memset(val, 'v', sizeof(val));
    ck_record_header_t h = {ck_slice_cstr("hk"), ck_slice_cstr("hv")};
    for (int i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "r%" PRId64, base + i);
        CHECK_EQ(ck_batch_builder_add(&b, 1000 + base + i, ck_slice_cstr(key),
                                      ck_slice(val, sizeof(val)), &h, 1),
                 0);
    }
    CHECK_EQ(ck_batch_builder_finish(&b), 0);
}

CK_TEST(legacy_from_v2_limits_control_and_codecs)
{
    static const int codecs[] = {CK_CODEC_NONE, CK_CODEC_GZIP, CK_CODEC_SNAPPY, CK_CODEC_LZ4,
                                 CK_CODEC_ZSTD};
    ck_wbuf_t w = CK_WBUF_INIT, out = CK_WBUF_INIT;
    /* offsets 10-14 (gzip), 15 control marker, 16-20 (zstd), 21-23 (none) */
    add_batch(&w, 10, 5, CK_CODEC_GZIP, 0);
    add_batch(&w, 15, 1, CK_CODEC_NONE, CK_ATTR_CONTROL | CK_ATTR_TRANSACTIONAL);
    add_batch(&w, 16, 5, CK_CODEC_ZSTD, CK_ATTR_TRANSACTIONAL);
    add_batch(&w, 21, 3, CK_CODEC_NONE, 0);
    pmsg_t pm[32];
    CHECK_EQ(ck_legacy_from_v2(w.data, w.len, 1, &out, 1 << 20), 13);
    CHECK_EQ(parse_set(out.data, out.len, pm, 32), 13);
    for (int i = 0; i < 13; i++) {
        int64_t off = i < 5 ? 10 + i : 11 + i; /* 15 is skipped */
        char key[32];
        snprintf(key, sizeof(key), "r%" PRId64, off);
        CHECK_EQ(pm[i].offset, off);
        CHECK_EQ(pm[i].timestamp, 1000 + off);
        CHECK(ck_slice_eq_cstr(pm[i].key, key));
        CHECK_EQ(pm[i].value.len, 100);
    }
    /* max_bytes: each message is 12 + 22 + 3 + 100 = 137 bytes under magic 1. */
    size_t one = ck_legacy_message_size(1, 3, 100);
    CHECK_EQ(one, 137);
    static const struct {
        size_t max;
        int want;
    } lim[] = {{0, 1}, {1, 1}, {137, 1}, {273, 1}, {274, 2}, {3 * 137 + 136, 3}, {5 * 137, 5},
               {6 * 137, 6}};
    for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++) {
        ck_wbuf_reset(&out);
        CHECK_EQ(ck_legacy_from_v2(w.data, w.len, 1, &out, lim[i].max), lim[i].want);
        CHECK_EQ(out.len, (size_t)lim[i].want * one);
    }
    /* Magic 0: 8 bytes less per message. */
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_legacy_from_v2(w.data, w.len, 0, &out, 1 << 20), 13);
    CHECK_EQ(out.len, 13 * (one - 8));
    /* A partial trailing batch is ignored; an empty input gives nothing. */
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_legacy_from_v2(w.data, w.len - 10, 1, &out, 1 << 20), 10);
    ck_wbuf_reset(&out);
    CHECK_EQ(ck_legacy_from_v2(w.data, 0, 1, &out, 1 << 20), 0);
    CHECK_EQ(out.len, 0);
    /* Bad magic argument; a corrupt batch fails the call and leaves out unchanged. */
    CHECK_EQ(ck_legacy_from_v2(w.data, w.len, 2, &out, 1 << 20), CK_EINVAL);
    ck_wr_bytes(&out, "keep", 4);
    /* The last header value's length varint of the last (uncompressed) batch. */
    uint8_t saved = w.data[w.len - 3];
    CHECK_EQ(saved, 4);
    w.data[w.len - 3] = 0xff;
    int rc = ck_legacy_from_v2(w.data, w.len, 1, &out, 1 << 20);
    CHECK_EQ(rc, CK_ECORRUPT);
    CHECK_EQ(out.len, 4);
    w.data[w.len - 3] = saved;
    /* Every codec down-converts. */
    for (int c = 0; c < 5; c++) {
        ck_wbuf_t one_batch = CK_WBUF_INIT;
        add_batch(&one_batch, 0, 7, codecs[c], 0);
        ck_wbuf_reset(&out);
        CHECK_EQ(ck_legacy_from_v2(one_batch.data, one_batch.len, 0, &out, 1 << 20), 7);
        CHECK_EQ(parse_set(out.data, out.len, pm, 32), 7);
        CHECK_EQ(pm[6].offset, 6);
        CHECK(ck_slice_eq_cstr(pm[6].key, "r6"));
        ck_wbuf_free(&one_batch);
    }
    ck_wbuf_free(&w);
    ck_wbuf_free(&out);
}

CK_TEST(legacy_fuzz_no_crash)
{
    /* Random damage with the outer CRCs made to match again: conversion either succeeds
     * or fails with a clean error, never overruns (ASan watches). Then the same for
     * down-conversion of damaged v2 batches. */
    static const int codecs[] = {CK_CODEC_NONE, CK_CODEC_GZIP, CK_CODEC_SNAPPY, CK_CODEC_LZ4};
    uint64_t x = 99;
    for (int c = 0; c < 4; c++) {
        for (int magic = 0; magic <= 1; magic++) {
            ck_wbuf_t set = CK_WBUF_INIT, v2 = CK_WBUF_INIT;
            build_set(&set, magic, codecs[c], 0, NMSGS, 0, 0);
            build_set(&set, magic, CK_CODEC_NONE, 0, 2, 10, 0);
            uint8_t *copy = malloc(set.len);
            for (int round = 0; round < 3000; round++) {
                memcpy(copy, set.data, set.len);
                for (int k = 0; k < 2; k++) {
                    x = x * 6364136223846793005ull + 1442695040888963407ull;
                    copy[16 + (x >> 33) % (set.len - 16)] = (uint8_t)(x >> 13);
                }
                for (size_t pos = 0; pos + 12 <= set.len;) {
                    uint32_t size = ck_get_u32(copy + pos + 8);
                    if (size < 4 || size > set.len - pos - 12)
                        break;
                    ck_put_u32(copy + pos + 12, crc32_bitwise(copy + pos + 16, size - 4));
                    pos += size + 12;
                }
                ck_wbuf_reset(&v2);
                int rc = ck_legacy_to_v2(copy, set.len, 1, &v2, 1 << 20);
                CHECK(rc == 0 || rc == CK_ECORRUPT || rc == CK_EINVAL || rc == CK_ETRUNC ||
                      rc == CK_EUNSUP || rc == CK_ETOOBIG);
                if (rc == 0) {
                    ck_batch_info_t info;
                    CHECK_EQ(ck_batch_validate(v2.data, v2.len, &info), 0);
                } else {
                    CHECK_EQ(v2.len, 0);
                }
            }
            free(copy);
            ck_wbuf_free(&set);
            ck_wbuf_free(&v2);
        }
    }
    ck_wbuf_t w = CK_WBUF_INIT, out = CK_WBUF_INIT;
    add_batch(&w, 0, 4, CK_CODEC_NONE, 0);
    add_batch(&w, 4, 4, CK_CODEC_SNAPPY, 0);
    uint8_t *copy = malloc(w.len);
    for (int round = 0; round < 5000; round++) {
        memcpy(copy, w.data, w.len);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        copy[(x >> 33) % w.len] = (uint8_t)(x >> 13);
        ck_wbuf_reset(&out);
        int rc = ck_legacy_from_v2(copy, w.len, (int)(round & 1), &out, 1 << 20);
        CHECK(rc >= 0 || rc == CK_ECORRUPT || rc == CK_EUNSUP || rc == CK_ETOOBIG);
        if (rc < 0)
            CHECK_EQ(out.len, 0);
    }
    free(copy);
    ck_wbuf_free(&w);
    ck_wbuf_free(&out);
}
