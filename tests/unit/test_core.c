#include "core/arena.h"
#include "core/buf.h"
#include "core/crc32c.h"
#include "core/logging.h"
#include "test.h"

CK_TEST(core_crc32c_known_values)
{
    CHECK_EQ(ck_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ(ck_crc32c(0, "", 0), 0);
    /* incremental == one shot, across alignments */
    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    uint32_t whole = ck_crc32c(0, buf, sizeof(buf));
    for (size_t cut = 0; cut < 20; cut++)
        CHECK_EQ(ck_crc32c(ck_crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut), whole);
    CHECK_EQ(ck_crc32(0, "123456789", 9), 0xCBF43926u);
}

CK_TEST(core_varint_roundtrip_and_bounds)
{
    static const int64_t vals[] = {0, 1, -1, 63, -64, 64, -65, 127, 128, 300, -300,
                                   INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
    ck_wbuf_t w = CK_WBUF_INIT;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        ck_wr_varlong(&w, vals[i]);
        if (vals[i] >= INT32_MIN && vals[i] <= INT32_MAX)
            ck_wr_varint(&w, (int32_t)vals[i]);
    }
    CHECK_EQ(w.err, 0);
    ck_rbuf_t r;
    ck_rbuf_init(&r, w.data, w.len);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        CHECK_EQ(ck_rd_varlong(&r), vals[i]);
        if (vals[i] >= INT32_MIN && vals[i] <= INT32_MAX)
            CHECK_EQ(ck_rd_varint(&r), vals[i]);
    }
    CHECK_EQ(r.err, 0);
    CHECK_EQ(ck_rbuf_left(&r), 0);
    /* known encodings */
    ck_wbuf_reset(&w);
    ck_wr_varint(&w, -1);
    ck_wr_uvarint(&w, 300);
    CHECK_EQ(w.len, 3);
    CHECK_EQ(w.data[0], 0x01);
    CHECK_EQ(w.data[1], 0xAC);
    CHECK_EQ(w.data[2], 0x02);
    CHECK_EQ(ck_varint_size(-1), 1);
    CHECK_EQ(ck_uvarint_size(300), 2);
    /* an over-long 32-bit varint fails instead of wrapping */
    static const uint8_t bad[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    ck_rbuf_init(&r, bad, sizeof(bad));
    (void)ck_rd_uvarint(&r);
    CHECK(r.err != 0);
    /* truncated varint */
    static const uint8_t trunc[] = {0x80, 0x80};
    ck_rbuf_init(&r, trunc, sizeof(trunc));
    (void)ck_rd_varlong(&r);
    CHECK_EQ(r.err, CK_ETRUNC);
    ck_wbuf_free(&w);
}

CK_TEST(core_reader_sticky_error)
{
    static const uint8_t b[] = {0, 0, 0, 7, 1};
    ck_rbuf_t r;
    ck_rbuf_init(&r, b, sizeof(b));
    CHECK_EQ(ck_rd_i32(&r), 7);
    CHECK_EQ(ck_rd_i32(&r), 0); /* only one byte left */
    CHECK_EQ(r.err, CK_ETRUNC);
    CHECK_EQ(ck_rd_u8(&r), 0); /* sticky: even the byte that was there */
}

CK_TEST(core_arena)
{
    ck_arena_t a = CK_ARENA_INIT;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1000; i++) {
            uint8_t *p = ck_arena_alloc(&a, (size_t)(i % 97) + 1);
            CHECK(p);
            CHECK_EQ((uintptr_t)p & 15, 0);
            memset(p, 0xab, (size_t)(i % 97) + 1);
        }
        void *big = ck_arena_calloc(&a, 100000);
        CHECK(big);
        ck_arena_reset(&a);
    }
    ck_arena_free(&a);
}

CK_TEST(core_log_level_parse)
{
    CHECK_EQ(ck_log_parse_level("debug"), CK_LOG_DEBUG);
    CHECK_EQ(ck_log_parse_level("WARN"), CK_LOG_WARN);
    CHECK_EQ(ck_log_parse_level("chronik=trace,info"), CK_LOG_INFO);
    CHECK_EQ(ck_log_parse_level("loud"), -1);
}
