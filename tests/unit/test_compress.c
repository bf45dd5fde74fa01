#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "core/alloc.h"
#include "core/compress.h"
#include "log/batch.h"
#include "test.h"

static const int codecs[] = {CK_CODEC_GZIP, CK_CODEC_SNAPPY, CK_CODEC_LZ4, CK_CODEC_ZSTD};
#define NCODECS 4

/* Deterministic test data: `text` is compressible (words), `noise` is not. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static uint8_t *make_text(size_t n)
{
    static const char *words[] = {"chronik ", "kafka ", "record ", "batch ", "offset ",
                                  "partition ", "leader ", "epoch ", "{\"id\":", "42, "};
    uint8_t *p = malloc(n ? n : 1);
    size_t i = 0;
    while (i < n) {
        const char *w = words[rng() % 10];
        for (; *w && i < n; w++)
            p[i++] = (uint8_t)*w;
    }
    return p;
}
static uint8_t *make_noise(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng();
    return p;
}

/* Compresses, checks the prefix already in the buffer survives, decompresses with an
 * exact bound and with one byte less. */
static void roundtrip(int codec, int level, const uint8_t *in, size_t n)
{
    ck_wbuf_t c = CK_WBUF_INIT, d = CK_WBUF_INIT;
    ck_wr_bytes(&c, "pfx", 3);
    CHECK_EQ(ck_compress(codec, level, in, n, &c), 0);
    CHECK(c.len > 3);
    CHECK_MEM(c.data, "pfx", 3);
    ck_wr_bytes(&d, "xy", 2);
    CHECK_EQ(ck_decompress(codec, c.data + 3, c.len - 3, &d, n), 0);
    CHECK_EQ(d.len, n + 2);
    CHECK_MEM(d.data, "xy", 2);
    if (n)
        CHECK_MEM(d.data + 2, in, n);
    if (n) {
        size_t before = d.len;
        CHECK_EQ(ck_decompress(codec, c.data + 3, c.len - 3, &d, n - 1), CK_ETOOBIG);
        CHECK_EQ(d.len, before);
        CHECK_EQ(d.err, 0);
    }
    ck_wbuf_free(&c);
    ck_wbuf_free(&d);
}

CK_TEST(compress_roundtrip_every_codec)
{
    static const size_t sizes[] = {0, 1, 5, 100, 4096, 32768, 32769, 65536 + 7, 1 << 20};
    for (int c = 0; c < NCODECS; c++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            uint8_t *t = make_text(sizes[s]), *r = make_noise(sizes[s]);
            roundtrip(codecs[c], CK_COMPRESS_LEVEL_DEFAULT, t, sizes[s]);
            roundtrip(codecs[c], CK_COMPRESS_LEVEL_DEFAULT, r, sizes[s]);
            free(t);
            free(r);
        }
    }
}

CK_TEST(compress_levels)
{
    uint8_t *t = make_text(200000);
    static const int gz[] = {-1, 0, 1, 9, 42};
    static const int l4[] = {-5, 0, 3, 9, 12, 99};
    static const int zs[] = {-7, -1, 0, 1, 19, 100};
    for (size_t i = 0; i < sizeof(gz) / sizeof(gz[0]); i++)
        roundtrip(CK_CODEC_GZIP, gz[i], t, 200000);
    for (size_t i = 0; i < sizeof(l4) / sizeof(l4[0]); i++)
        roundtrip(CK_CODEC_LZ4, l4[i], t, 200000);
    for (size_t i = 0; i < sizeof(zs) / sizeof(zs[0]); i++)
        roundtrip(CK_CODEC_ZSTD, zs[i], t, 200000);
    roundtrip(CK_CODEC_SNAPPY, 7, t, 200000);
    /* Compression actually compresses text. */
    for (int c = 0; c < NCODECS; c++) {
        ck_wbuf_t w = CK_WBUF_INIT;
        CHECK_EQ(ck_compress(codecs[c], CK_COMPRESS_LEVEL_DEFAULT, t, 200000, &w), 0);
        CHECK(w.len < 100000);
        ck_wbuf_free(&w);
    }
    free(t);
}

CK_TEST(compress_unsupported_codec)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    CHECK_EQ(ck_compress(CK_CODEC_NONE, 0, (const uint8_t *)"a", 1, &w), CK_EUNSUP);
    CHECK_EQ(ck_compress(7, 0, (const uint8_t *)"a", 1, &w), CK_EUNSUP);
    CHECK_EQ(ck_decompress(CK_CODEC_NONE, (const uint8_t *)"a", 1, &w, 10), CK_EUNSUP);
    CHECK_EQ(ck_decompress(5, (const uint8_t *)"a", 1, &w, 10), CK_EUNSUP);
    CHECK_EQ(w.len, 0);
    ck_wbuf_free(&w);
}

CK_TEST(compress_snappy_raw_and_xerial)
{
    size_t n = 100000;
    uint8_t *t = make_text(n);
    /* Raw snappy, as librdkafka sends it. */
    size_t clen = snappy_max_compressed_length(n);
    char *raw = malloc(clen);
    CHECK_EQ(snappy_compress((const char *)t, n, raw, &clen), SNAPPY_OK);
    ck_wbuf_t d = CK_WBUF_INIT;
    CHECK_EQ(ck_decompress(CK_CODEC_SNAPPY, (const uint8_t *)raw, clen, &d, n), 0);
    CHECK_EQ(d.len, n);
    CHECK_MEM(d.data, t, n);

    /* Our compressor writes xerial: magic, version 1, compatible 1, 32 KiB chunks. */
    ck_wbuf_t c = CK_WBUF_INIT;
    CHECK_EQ(ck_compress(CK_CODEC_SNAPPY, 0, t, n, &c), 0);
    static const uint8_t magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
    CHECK_MEM(c.data, magic, 8);
    CHECK_EQ(ck_get_u32(c.data + 8), 1);
    CHECK_EQ(ck_get_u32(c.data + 12), 1);
    size_t pos = 16, chunks = 0, total = 0;
    while (pos < c.len) {
        uint32_t len = ck_get_u32(c.data + pos);
        size_t ulen;
        CHECK_EQ(snappy_uncompressed_length((const char *)c.data + pos + 4, len, &ulen),
                 SNAPPY_OK);
        CHECK(ulen <= 32768);
        total += ulen;
        pos += 4 + len;
        chunks++;
    }
    CHECK_EQ(pos, c.len);
    CHECK_EQ(total, n);
    CHECK_EQ(chunks, (n + 32767) / 32768);

    /* A hand-framed xerial stream with two chunks of different sizes and an empty one. */
    ck_wbuf_t x = CK_WBUF_INIT;
    ck_wr_bytes(&x, magic, 8);
    ck_wr_u32(&x, 1);
    ck_wr_u32(&x, 1);
    size_t parts[2] = {1000, n - 1000};
    size_t off = 0;
    for (int i = 0; i < 2; i++) {
        size_t cl = snappy_max_compressed_length(parts[i]);
        char *tmp = malloc(cl);
        CHECK_EQ(snappy_compress((const char *)t + off, parts[i], tmp, &cl), SNAPPY_OK);
        ck_wr_u32(&x, (uint32_t)cl);
        ck_wr_bytes(&x, tmp, cl);
        free(tmp);
        off += parts[i];
        if (i == 0)
            ck_wr_u32(&x, 0);
    }
    ck_wbuf_reset(&d);
    CHECK_EQ(ck_decompress(CK_CODEC_SNAPPY, x.data, x.len, &d, n), 0);
    CHECK_EQ(d.len, n);
    CHECK_MEM(d.data, t, n);
    /* Chunk length past the end, negative length, short header. */
    ck_put_u32(x.data + 16, 0x7fffffff);
    CHECK_EQ(ck_decompress(CK_CODEC_SNAPPY, x.data, x.len, &d, n), CK_ECORRUPT);
    ck_put_u32(x.data + 16, 0xffffffff);
    CHECK_EQ(ck_decompress(CK_CODEC_SNAPPY, x.data, x.len, &d, n), CK_ECORRUPT);
    CHECK_EQ(ck_decompress(CK_CODEC_SNAPPY, x.data, 12, &d, n), CK_ECORRUPT);
    /* Header only: an empty stream, as snappy-java writes for no data. */
    ck_wbuf_reset(&d);
    CHECK_EQ(ck_decompress(CK_CODEC_SNAPPY, x.data, 16, &d, n), 0);
    CHECK_EQ(d.len, 0);
    free(raw);
    free(t);
    ck_wbuf_free(&c);
    ck_wbuf_free(&d);
    ck_wbuf_free(&x);
}

CK_TEST(compress_gzip_concatenated_members)
{
    ck_wbuf_t c = CK_WBUF_INIT, d = CK_WBUF_INIT;
    CHECK_EQ(ck_compress(CK_CODEC_GZIP, 1, (const uint8_t *)"hello, ", 7, &c), 0);
    CHECK_EQ(ck_compress(CK_CODEC_GZIP, 9, (const uint8_t *)"", 0, &c), 0);
    CHECK_EQ(ck_compress(CK_CODEC_GZIP, 5, (const uint8_t *)"world", 5, &c), 0);
    CHECK_EQ(ck_decompress(CK_CODEC_GZIP, c.data, c.len, &d, 100), 0);
    CHECK_EQ(d.len, 12);
    CHECK_MEM(d.data, "hello, world", 12);
    /* Trailing garbage after a member is not silently dropped. */
    ck_wr_bytes(&c, "junk", 4);
    ck_wbuf_reset(&d);
    CHECK_EQ(ck_decompress(CK_CODEC_GZIP, c.data, c.len, &d, 100), CK_ECORRUPT);
    /* zlib-wrapped (not gzip) data is refused, as Java's GZIPInputStream does. */
    uint8_t zbuf[64];
    uLongf zl = sizeof(zbuf);
    CHECK_EQ(compress(zbuf, &zl, (const Bytef *)"hello", 5), Z_OK);
    CHECK_EQ(ck_decompress(CK_CODEC_GZIP, zbuf, zl, &d, 100), CK_ECORRUPT);
    CHECK_EQ(d.len, 0);
    ck_wbuf_free(&c);
    ck_wbuf_free(&d);
}

CK_TEST(compress_lz4_and_zstd_concatenated_frames)
{
    static const int two[] = {CK_CODEC_LZ4, CK_CODEC_ZSTD};
    for (int i = 0; i < 2; i++) {
        ck_wbuf_t c = CK_WBUF_INIT, d = CK_WBUF_INIT;
        CHECK_EQ(ck_compress(two[i], CK_COMPRESS_LEVEL_DEFAULT, (const uint8_t *)"abc", 3, &c), 0);
        CHECK_EQ(ck_compress(two[i], CK_COMPRESS_LEVEL_DEFAULT, (const uint8_t *)"defg", 4, &c), 0);
        CHECK_EQ(ck_decompress(two[i], c.data, c.len, &d, 7), 0);
        CHECK_EQ(d.len, 7);
        CHECK_MEM(d.data, "abcdefg", 7);
        ck_wbuf_reset(&d);
        CHECK_EQ(ck_decompress(two[i], c.data, c.len, &d, 6), CK_ETOOBIG);
        ck_wbuf_free(&c);
        ck_wbuf_free(&d);
    }
}

CK_TEST(compress_zstd_streaming_without_content_size)
{
    /* Producers stream-compress: the frame header then carries no content size. */
    size_t n = 300000;
    uint8_t *t = make_text(n);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    size_t bound = ZSTD_compressBound(n);
    uint8_t *z = malloc(bound);
    ZSTD_outBuffer ob = {z, bound, 0};
    ZSTD_inBuffer ib = {t, n, 0};
    CHECK_EQ(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end), 0);
    CHECK_EQ(ZSTD_getFrameContentSize(z, ob.pos), ZSTD_CONTENTSIZE_UNKNOWN);
    ck_wbuf_t d = CK_WBUF_INIT;
    CHECK_EQ(ck_decompress(CK_CODEC_ZSTD, z, ob.pos, &d, n), 0);
    CHECK_EQ(d.len, n);
    CHECK_MEM(d.data, t, n);
    ck_wbuf_reset(&d);
    CHECK_EQ(ck_decompress(CK_CODEC_ZSTD, z, ob.pos, &d, n - 1), CK_ETOOBIG);
    ZSTD_freeCCtx(cc);
    free(z);
    free(t);
    ck_wbuf_free(&d);
}

CK_TEST(compress_bombs_are_bounded)
{
    /* 16 MiB of zeros compresses to a few KiB; a 1 MiB bound must stop it early without
     * buffering the rest. */
    size_t n = 16u << 20, limit = 1u << 20;
    uint8_t *z = calloc(1, n);
    for (int c = 0; c < NCODECS; c++) {
        ck_wbuf_t comp = CK_WBUF_INIT, d = CK_WBUF_INIT;
        CHECK_EQ(ck_compress(codecs[c], CK_COMPRESS_LEVEL_DEFAULT, z, n, &comp), 0);
        CHECK(comp.len < n / 10);
        CHECK_EQ(ck_decompress(codecs[c], comp.data, comp.len, &d, limit), CK_ETOOBIG);
        CHECK_EQ(d.len, 0);
        CHECK(d.cap <= 2 * limit + 2); /* grew to the bound at most, not to 16 MiB */
        ck_wbuf_free(&d);
        CHECK_EQ(ck_decompress(codecs[c], comp.data, comp.len, &d, n), 0);
        CHECK_EQ(d.len, n);
        ck_wbuf_free(&d);
        ck_wbuf_free(&comp);
    }
    free(z);

    /* A zstd frame whose header claims 1 GiB but holds a few bytes: the claim is not
     * allocated up front (frame content size is a hint only). */
    uint8_t small[64];
    size_t zl = ZSTD_compress(small, sizeof(small), "tiny", 4, 1);
    CHECK(!ZSTD_isError(zl));
    ck_wbuf_t d = CK_WBUF_INIT;
    CHECK_EQ(ck_decompress(CK_CODEC_ZSTD, small, zl, &d, (size_t)1 << 30), 0);
    CHECK_EQ(d.len, 4);
    CHECK(d.cap < (1u << 20));
    ck_wbuf_free(&d);

    /* A raw snappy block states its length: over the bound it is refused before any
     * allocation; a length its size could not produce is corrupt. */
    size_t zn = 4u << 20;
    uint8_t *zeros = calloc(1, zn);
    size_t sl = snappy_max_compressed_length(zn);
    char *sz = malloc(sl);
    CHECK_EQ(snappy_compress((const char *)zeros, zn, sz, &sl), SNAPPY_OK);
    CHECK_EQ(ck_decompress(CK_CODEC_SNAPPY, (const uint8_t *)sz, sl, &d, limit), CK_ETOOBIG);
    CHECK_EQ(d.cap, 0);
    CHECK_EQ(ck_decompress(CK_CODEC_SNAPPY, (const uint8_t *)sz, sl, &d, zn), 0);
    CHECK_EQ(d.len, zn);
    ck_wbuf_free(&d);
    uint8_t lie[8] = {0x80, 0x80, 0x80, 0x40, 0x00}; /* varint 2^27 from 5 bytes */
    CHECK_EQ(ck_decompress(CK_CODEC_SNAPPY, lie, 5, &d, (size_t)1 << 30), CK_ECORRUPT);
    CHECK_EQ(d.cap, 0);
    free(sz);
    free(zeros);
}

CK_TEST(compress_truncated_and_garbage_inputs_fail)
{
    size_t n = 5000;
    uint8_t *t = make_text(n);
    for (int c = 0; c < NCODECS; c++) {
        ck_wbuf_t comp = CK_WBUF_INIT, d = CK_WBUF_INIT;
        CHECK_EQ(ck_compress(codecs[c], CK_COMPRESS_LEVEL_DEFAULT, t, n, &comp), 0);
        for (size_t cut = 0; cut < comp.len; cut++) {
            /* xerial cut right after its 16-byte header is a valid empty stream */
            if (codecs[c] == CK_CODEC_SNAPPY && cut == 16)
                continue;
            ck_wbuf_reset(&d);
            int rc = ck_decompress(codecs[c], comp.data, cut, &d, n);
            if (rc != CK_ECORRUPT)
                CK_FAIL("codec %d cut %zu: rc %d", codecs[c], cut, rc);
            CHECK_EQ(d.len, 0);
        }
        /* Single-byte corruption never crashes; checksummed codecs mostly notice. */
        for (size_t i = 0; i < comp.len; i += 7) {
            comp.data[i] ^= 0x5a;
            ck_wbuf_reset(&d);
            int rc = ck_decompress(codecs[c], comp.data, comp.len, &d, n);
            CHECK(rc == 0 || rc == CK_ECORRUPT || rc == CK_ETOOBIG);
            comp.data[i] ^= 0x5a;
        }
        ck_wbuf_free(&comp);
        ck_wbuf_free(&d);
    }
    /* Pure noise. */
    uint8_t *r = make_noise(4096);
    for (int c = 0; c < NCODECS; c++) {
        ck_wbuf_t d = CK_WBUF_INIT;
        int rc = ck_decompress(codecs[c], r, 4096, &d, 1 << 20);
        CHECK(rc == CK_ECORRUPT || rc == CK_ETOOBIG);
        ck_wbuf_free(&d);
    }
    free(r);
    free(t);
}

CK_TEST(compress_out_of_memory_leaves_buffer_usable)
{
    uint8_t *t = make_text(100000);
    for (int c = 0; c < NCODECS; c++) {
        ck_wbuf_t comp = CK_WBUF_INIT, d = CK_WBUF_INIT;
        CHECK_EQ(ck_compress(codecs[c], CK_COMPRESS_LEVEL_DEFAULT, t, 100000, &comp), 0);
        ck_alloc_fail_after(1);
        CHECK_EQ(ck_decompress(codecs[c], comp.data, comp.len, &d, 100000), CK_ENOMEM);
        CHECK_EQ(d.err, 0);
        CHECK_EQ(d.len, 0);
        ck_alloc_fail_after(1);
        ck_wbuf_t e = CK_WBUF_INIT;
        CHECK_EQ(ck_compress(codecs[c], CK_COMPRESS_LEVEL_DEFAULT, t, 100000, &e), CK_ENOMEM);
        CHECK_EQ(e.err, 0);
        ck_alloc_fail_after(0);
        CHECK_EQ(ck_decompress(codecs[c], comp.data, comp.len, &d, 100000), 0);
        CHECK_MEM(d.data, t, 100000);
        ck_wbuf_free(&comp);
        ck_wbuf_free(&d);
    }
    free(t);
}

/* ---- lz4: Kafka's magic-0 header checksum ---- */

static size_t lz4_header_size(const uint8_t *f)
{
    return 7 + ((f[4] & 0x08) ? 8 : 0) + ((f[4] & 0x01) ? 4 : 0);
}

CK_TEST(compress_xxh32_matches_lz4_header_checksums)
{
    CHECK_EQ(ck__xxh32_small((const uint8_t *)"", 0), 0x02CC5D05u);
    /* liblz4 computes the HC itself: our XXH32 must agree for each descriptor shape. */
    for (int variant = 0; variant < 8; variant++) {
        LZ4F_preferences_t prefs;
        memset(&prefs, 0, sizeof(prefs));
        prefs.frameInfo.blockSizeID = (LZ4F_blockSizeID_t)(LZ4F_max64KB + (variant & 3));
        prefs.frameInfo.blockMode = (variant & 4) ? LZ4F_blockLinked : LZ4F_blockIndependent;
        prefs.frameInfo.contentChecksumFlag = (variant & 1) ? LZ4F_contentChecksumEnabled : 0;
        prefs.frameInfo.blockChecksumFlag = (variant & 2) ? LZ4F_blockChecksumEnabled : 0;
        prefs.frameInfo.contentSize = (variant & 1) ? 12345 + (unsigned)variant : 0;
        uint8_t *src = make_text(prefs.frameInfo.contentSize ? prefs.frameInfo.contentSize : 999);
        size_t sn = prefs.frameInfo.contentSize ? prefs.frameInfo.contentSize : 999;
        size_t bound = LZ4F_compressFrameBound(sn, &prefs);
        uint8_t *f = malloc(bound);
        size_t fl = LZ4F_compressFrame(f, bound, src, sn, &prefs);
        CHECK(!LZ4F_isError(fl));
        size_t hs = lz4_header_size(f);
        CHECK_EQ((uint8_t)(ck__xxh32_small(f + 4, hs - 5) >> 8), f[hs - 1]);
        ck_wbuf_t d = CK_WBUF_INIT;
        CHECK_EQ(ck_decompress(CK_CODEC_LZ4, f, fl, &d, sn), 0);
        CHECK_EQ(d.len, sn);
        CHECK_MEM(d.data, src, sn);
        ck_wbuf_free(&d);
        free(f);
        free(src);
    }
}

CK_TEST(compress_lz4_kafka_broken_header_checksum)
{
    size_t n = 70000;
    uint8_t *t = make_text(n);
    ck_wbuf_t c = CK_WBUF_INIT, d = CK_WBUF_INIT;
    CHECK_EQ(ck_compress(CK_CODEC_LZ4, 0, t, n, &c), 0);
    size_t hs = lz4_header_size(c.data);
    uint8_t good = c.data[hs - 1];
    /* What KafkaLZ4BlockOutputStream writes for magic 0: the hash over magic number too. */
    uint8_t broken = (uint8_t)(ck__xxh32_small(c.data, hs - 1) >> 8);
    CHECK(broken != good);
    c.data[hs - 1] = broken;
    CHECK_EQ(ck_decompress(CK_CODEC_LZ4, c.data, c.len, &d, n), CK_ECORRUPT);
    CHECK_EQ(ck_decompress_ex(CK_CODEC_LZ4, CK_DECOMPRESS_LZ4_IGNORE_HC, c.data, c.len, &d, n),
             0);
    CHECK_EQ(d.len, n);
    CHECK_MEM(d.data, t, n);
    /* The flag also accepts a correct checksum, and concatenated frames each fixed up. */
    c.data[hs - 1] = good;
    size_t first = c.len;
    CHECK_EQ(ck_compress(CK_CODEC_LZ4, 0, t, 10, &c), 0);
    c.data[first + hs - 1] ^= 0xff;
    ck_wbuf_reset(&d);
    CHECK_EQ(ck_decompress_ex(CK_CODEC_LZ4, CK_DECOMPRESS_LZ4_IGNORE_HC, c.data, c.len, &d,
                              n + 10),
             0);
    CHECK_EQ(d.len, n + 10);
    CHECK_MEM(d.data + n, t, 10);
    /* Other damage to the descriptor is still caught (reserved bits). */
    c.data[4] |= 0x02;
    ck_wbuf_reset(&d);
    CHECK_EQ(ck_decompress_ex(CK_CODEC_LZ4, CK_DECOMPRESS_LZ4_IGNORE_HC, c.data, c.len, &d,
                              n + 10),
             CK_ECORRUPT);
    /* Truncated header with the flag. */
    CHECK_EQ(ck_decompress_ex(CK_CODEC_LZ4, CK_DECOMPRESS_LZ4_IGNORE_HC, c.data, 5, &d, n),
             CK_ECORRUPT);
    ck_wbuf_free(&c);
    ck_wbuf_free(&d);
    free(t);
}
