/* Kafka compression codecs over zlib, snappy, liblz4 (frame API) and libzstd.
 *
 * xerial snappy framing (snappy-java's SnappyOutputStream, which the Java client uses):
 *   0   8 bytes  magic 0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00
 *   8   int32    version (1), big-endian
 *   12  int32    minimum compatible version (1)
 *   16  chunks:  int32 compressed length, then one raw snappy block of that length
 * Raw snappy (one block: varint uncompressed length, then elements) is what librdkafka
 * and the Go clients send; the Java broker accepts both, so do we.
 *
 * Output bounding: decoders write straight into the caller's ck_wbuf_t, which grows by
 * doubling as output appears, never beyond max_out + 1 bytes, the extra byte being how an
 * over-limit stream is told apart from one that ends exactly at the limit. Sizes that
 * headers claim serve only as bounded hints: a zstd content size up to HINT_MAX, and a
 * snappy block's length, which cannot honestly exceed ~21x the block (a 3-byte copy
 * element yields at most 64 bytes), so larger claims are refused as corrupt. */
#include "core/compress.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define GROW_MIN (64u << 10)
/* Header-derived size hints are trusted only this far for the first reservation. */
#define HINT_MAX (16u << 20)
#define XERIAL_CHUNK (32u << 10)
#define SNAPPY_MAX_RATIO 32 /* above the format's real limit of 64/3 */

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};

/* ---- bounded output sink ---- */

typedef struct sink {
    ck_wbuf_t *w;    /* w->len stays at its entry value until commit */
    size_t produced; /* bytes written after w->len by this call */
    size_t cap;      /* max_out + 1, saturating: the most the decoder may write */
} sink_t;

static void sink_init(sink_t *s, ck_wbuf_t *w, size_t max_out)
{
    s->w = w;
    s->produced = 0;
    s->cap = max_out == SIZE_MAX ? SIZE_MAX : max_out + 1;
}

/* Returns where the next output byte goes and in *avail how many may be written there
 * (>= 1), growing the buffer by `hint` bytes (or by doubling) when it is full. NULL with
 * *err = CK_ETOOBIG once cap bytes were produced, or CK_ENOMEM. Callers keep hints below
 * HINT_MAX: a header's size claim must not make a tiny payload allocate much. */
static uint8_t *sink_space(sink_t *s, size_t hint, size_t *avail, int *err)
{
    size_t lim = s->cap - s->produced;
    if (lim == 0) {
        *err = CK_ETOOBIG;
        return NULL;
    }
    size_t have = s->w->cap - s->w->len - s->produced;
    if (have == 0) {
        /* Doubling: total copying stays linear in the output size. */
        size_t want = hint ? hint : (s->produced < GROW_MIN ? GROW_MIN : s->produced);
        if (want > lim)
            want = lim;
        if (!ck_wbuf_reserve(s->w, s->produced + want)) {
            *err = CK_ENOMEM;
            return NULL;
        }
        have = s->w->cap - s->w->len - s->produced;
    }
    *avail = have < lim ? have : lim;
    return s->w->data + s->w->len + s->produced;
}

/* Ends a successful decode: CK_ETOOBIG if the stream went past max_out (cap - 1). */
static int sink_commit(sink_t *s)
{
    if (s->cap != SIZE_MAX && s->produced >= s->cap)
        return CK_ETOOBIG;
    s->w->len += s->produced;
    return 0;
}

/* ---- gzip ---- */

static int gzip_decompress(const uint8_t *in, size_t n, sink_t *s)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    /* 16 + MAX_WBITS: gzip wrapper only, as Kafka's GZIPInputStream accepts. */
    int ret = inflateInit2(&zs, 16 + MAX_WBITS);
    if (ret != Z_OK)
        return ret == Z_MEM_ERROR ? CK_ENOMEM : CK_EIO;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    int rc = 0;
    for (;;) {
        size_t avail;
        uint8_t *dst = sink_space(s, 0, &avail, &rc);
        if (!dst)
            break;
        if (avail > UINT32_MAX)
            avail = UINT32_MAX;
        zs.next_out = dst;
        zs.avail_out = (uInt)avail;
        ret = inflate(&zs, Z_NO_FLUSH);
        s->produced += avail - zs.avail_out;
        if (ret == Z_STREAM_END) {
            if (zs.avail_in == 0)
                break;
            /* Another member follows: gzip(1) and GZIPInputStream concatenate them. */
            if (inflateReset(&zs) != Z_OK) {
                rc = CK_EIO;
                break;
            }
            continue;
        }
        if (ret == Z_OK)
            continue;
        if (ret == Z_BUF_ERROR && zs.avail_out == 0)
            continue; /* needs more room, which the next sink_space provides */
        /* Z_BUF_ERROR with room left: the input ended inside a member. */
        rc = ret == Z_MEM_ERROR ? CK_ENOMEM : CK_ECORRUPT;
        break;
    }
    inflateEnd(&zs);
    return rc;
}

static int gzip_compress(int level, const uint8_t *in, size_t n, ck_wbuf_t *out)
{
    if (level == CK_COMPRESS_LEVEL_DEFAULT || level < 0)
        level = Z_DEFAULT_COMPRESSION;
    else if (level > 9)
        level = 9;
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    int ret = deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    if (ret != Z_OK)
        return ret == Z_MEM_ERROR ? CK_ENOMEM : CK_EIO;
    /* deflateBound of <= 2 GiB stays below 4 GiB, so one Z_FINISH call does it all. */
    uLong bound = deflateBound(&zs, (uLong)n);
    uint8_t *dst = ck_wbuf_reserve(out, bound);
    int rc = 0;
    if (!dst) {
        rc = CK_ENOMEM;
    } else {
        zs.next_in = (Bytef *)in;
        zs.avail_in = (uInt)n;
        zs.next_out = dst;
        zs.avail_out = (uInt)bound;
        ret = deflate(&zs, Z_FINISH);
        if (ret == Z_STREAM_END)
            out->len += bound - zs.avail_out;
        else
            rc = CK_EIO;
    }
    deflateEnd(&zs);
    return rc;
}

/* ---- snappy ---- */

static int snappy_block(const uint8_t *in, size_t n, sink_t *s)
{
    size_t ulen;
    if (snappy_uncompressed_length((const char *)in, n, &ulen) != SNAPPY_OK ||
        ulen / SNAPPY_MAX_RATIO > n)
        return CK_ECORRUPT;
    /* The block states its size up front, so a bomb is refused before any work. */
    if (ulen >= s->cap - s->produced)
        return s->cap == SIZE_MAX ? CK_ENOMEM : CK_ETOOBIG;
    if (!ck_wbuf_reserve(s->w, s->produced + ulen))
        return CK_ENOMEM;
    size_t got = ulen;
    if (snappy_uncompress((const char *)in, n, (char *)s->w->data + s->w->len + s->produced,
                          &got) != SNAPPY_OK ||
        got != ulen)
        return CK_ECORRUPT;
    s->produced += got;
    return 0;
}

static int snappy_decompress(const uint8_t *in, size_t n, sink_t *s)
{
    size_t m = n < sizeof(xerial_magic) ? n : sizeof(xerial_magic);
    if (m == 0 || memcmp(in, xerial_magic, m) != 0)
        return snappy_block(in, n, s);
    /* A cut xerial header; as raw snappy these few bytes could not be valid anyway. */
    if (n < 16)
        return CK_ECORRUPT;
    size_t pos = 16; /* version and compatible version are not checked, as in Java */
    while (pos < n) {
        if (n - pos < 4)
            return CK_ECORRUPT;
        int32_t clen = (int32_t)ck_get_u32(in + pos);
        pos += 4;
        if (clen < 0 || (size_t)clen > n - pos)
            return CK_ECORRUPT;
        if (clen > 0) {
            int rc = snappy_block(in + pos, (size_t)clen, s);
            if (rc)
                return rc;
        }
        pos += (size_t)clen;
    }
    return 0;
}

static int snappy_compress_xerial(const uint8_t *in, size_t n, ck_wbuf_t *out)
{
    size_t chunks = (n + XERIAL_CHUNK - 1) / XERIAL_CHUNK;
    size_t need = 16 + chunks * (4 + snappy_max_compressed_length(XERIAL_CHUNK));
    uint8_t *dst = ck_wbuf_reserve(out, need);
    if (!dst)
        return CK_ENOMEM;
    memcpy(dst, xerial_magic, 8);
    ck_put_u32(dst + 8, 1);
    ck_put_u32(dst + 12, 1);
    size_t pos = 16;
    for (size_t off = 0; off < n; off += XERIAL_CHUNK) {
        size_t len = n - off < XERIAL_CHUNK ? n - off : XERIAL_CHUNK;
        size_t clen = snappy_max_compressed_length(len);
        if (snappy_compress((const char *)in + off, len, (char *)dst + pos + 4, &clen) !=
            SNAPPY_OK)
            return CK_EIO;
        ck_put_u32(dst + pos, (uint32_t)clen);
        pos += 4 + clen;
    }
    out->len += pos;
    return 0;
}

/* ---- lz4 ---- */

#define PRIME32_1 2654435761u
#define PRIME32_2 2246822519u
#define PRIME32_3 3266489917u
#define PRIME32_4 668265263u
#define PRIME32_5 374761393u

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

/* XXH32's short-input path (n < 16 skips the four-lane stripe loop entirely). */
uint32_t ck__xxh32_small(const uint8_t *p, size_t n)
{
    uint32_t h = PRIME32_5 + (uint32_t)n;
    for (; n >= 4; p += 4, n -= 4) {
        uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        h += w * PRIME32_3;
        h = rotl32(h, 17) * PRIME32_4;
    }
    for (; n; p++, n--) {
        h += *p * PRIME32_5;
        h = rotl32(h, 11) * PRIME32_1;
    }
    h ^= h >> 15;
    h *= PRIME32_2;
    h ^= h >> 13;
    h *= PRIME32_3;
    h ^= h >> 16;
    return h;
}

/* Feeds the frame header at `in` to the decoder with its HC byte recomputed correctly, so
 * that whatever checksum the producer wrote is accepted. Returns the header length
 * consumed, 0 if `in` does not start an LZ4 frame (skippable frames are left alone), or
 * CK_ECORRUPT. */
static int lz4_feed_fixed_header(LZ4F_dctx *d, const uint8_t *in, size_t n)
{
    if (n < 4 || ck_get_u32(in) != 0x04224D18u) /* 0x184D2204 little-endian */
        return 0;
    if (n < 7)
        return CK_ECORRUPT;
    uint8_t flg = in[4];
    size_t hs = 7 + ((flg & 0x08) ? 8 : 0) + ((flg & 0x01) ? 4 : 0);
    if (n < hs)
        return CK_ECORRUPT;
    uint8_t hdr[19];
    memcpy(hdr, in, hs);
    /* The checksum covers the descriptor only: FLG through the optional fields. */
    hdr[hs - 1] = (uint8_t)(ck__xxh32_small(hdr + 4, hs - 5) >> 8);
    uint8_t dummy[1];
    size_t dst = 0, src = hs;
    size_t r = LZ4F_decompress(d, dummy, &dst, hdr, &src, NULL);
    if (LZ4F_isError(r) || src != hs || dst != 0)
        return CK_ECORRUPT;
    return (int)hs;
}

static int lz4_decompress(const uint8_t *in, size_t n, unsigned flags, sink_t *s)
{
    if (n == 0)
        return CK_ECORRUPT;
    LZ4F_dctx *d;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
        return CK_ENOMEM;
    size_t pos = 0;
    bool frame_start = true;
    int rc = 0;
    for (;;) {
        if (frame_start) {
            if (pos == n)
                break; /* every frame ended, input used up */
            if (flags & CK_DECOMPRESS_LZ4_IGNORE_HC) {
                int hs = lz4_feed_fixed_header(d, in + pos, n - pos);
                if (hs < 0) {
                    rc = hs;
                    break;
                }
                pos += (size_t)hs;
            }
            frame_start = false;
        }
        size_t avail;
        uint8_t *dst = sink_space(s, 0, &avail, &rc);
        if (!dst)
            break;
        size_t dlen = avail, slen = n - pos;
        size_t r = LZ4F_decompress(d, dst, &dlen, in + pos, &slen, NULL);
        if (LZ4F_isError(r)) {
            rc = CK_ECORRUPT;
            break;
        }
        pos += slen;
        s->produced += dlen;
        if (r == 0) {
            frame_start = true; /* the context is ready for a concatenated frame */
            continue;
        }
        if (pos == n && dlen < avail) {
            rc = CK_ECORRUPT; /* frame unfinished, nothing buffered, no input left */
            break;
        }
    }
    LZ4F_freeDecompressionContext(d);
    return rc;
}

static int lz4_compress(int level, const uint8_t *in, size_t n, ck_wbuf_t *out)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    /* Kafka's Java decoder (KafkaLZ4BlockInputStream) supports only independent blocks and
     * at most 4 MiB; 64 KiB keeps the decoder's buffers small. */
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    if (level == CK_COMPRESS_LEVEL_DEFAULT)
        level = 0;
    else if (level > 12)
        level = 12;
    prefs.compressionLevel = level;
    size_t bound = LZ4F_compressFrameBound(n, &prefs);
    uint8_t *dst = ck_wbuf_reserve(out, bound);
    if (!dst)
        return CK_ENOMEM;
    size_t r = LZ4F_compressFrame(dst, bound, in, n, &prefs);
    if (LZ4F_isError(r))
        return CK_EIO;
    out->len += r;
    return 0;
}

/* ---- zstd ---- */

static int zstd_decompress(const uint8_t *in, size_t n, sink_t *s)
{
    if (n == 0)
        return CK_ECORRUPT;
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return CK_ENOMEM;
    unsigned long long csize = ZSTD_getFrameContentSize(in, n);
    size_t hint = 0;
    if (csize != ZSTD_CONTENTSIZE_UNKNOWN && csize != ZSTD_CONTENTSIZE_ERROR && csize > 0 &&
        csize < HINT_MAX)
        hint = (size_t)csize + 1; /* +1: the end check needs room for one more byte */
    ZSTD_inBuffer ib = {in, n, 0};
    int rc = 0;
    for (;;) {
        size_t avail;
        uint8_t *dst = sink_space(s, hint, &avail, &rc);
        if (!dst)
            break;
        hint = 0;
        ZSTD_outBuffer ob = {dst, avail, 0};
        size_t r = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(r)) {
            rc = ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? CK_ENOMEM : CK_ECORRUPT;
            break;
        }
        s->produced += ob.pos;
        if (ib.pos == ib.size) {
            if (r == 0)
                break; /* last frame ended and flushed */
            if (ob.pos < ob.size) {
                rc = CK_ECORRUPT; /* room left but the frame wants more input */
                break;
            }
        }
        /* r == 0 with input left: a concatenated frame follows; the stream restarts. */
    }
    ZSTD_freeDCtx(d);
    return rc;
}

static int zstd_compress(int level, const uint8_t *in, size_t n, ck_wbuf_t *out)
{
    if (level == CK_COMPRESS_LEVEL_DEFAULT)
        level = ZSTD_CLEVEL_DEFAULT;
    else if (level > ZSTD_maxCLevel())
        level = ZSTD_maxCLevel();
    else if (level < ZSTD_minCLevel())
        level = ZSTD_minCLevel();
    size_t bound = ZSTD_compressBound(n);
    uint8_t *dst = ck_wbuf_reserve(out, bound);
    if (!dst)
        return CK_ENOMEM;
    size_t r = ZSTD_compress(dst, bound, in, n, level);
    if (ZSTD_isError(r))
        return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? CK_ENOMEM : CK_EIO;
    out->len += r;
    return 0;
}

/* ---- entry points ---- */

int ck_decompress_ex(int codec, unsigned flags, const uint8_t *in, size_t n, ck_wbuf_t *out,
                     size_t max_out)
{
    if (out->err)
        return CK_ENOMEM;
    if (n > INT32_MAX)
        return CK_ETOOBIG;
    sink_t s;
    sink_init(&s, out, max_out);
    int rc;
    switch (codec) {
    case CK_CODEC_GZIP: rc = gzip_decompress(in, n, &s); break;
    case CK_CODEC_SNAPPY: rc = snappy_decompress(in, n, &s); break;
    case CK_CODEC_LZ4: rc = lz4_decompress(in, n, flags, &s); break;
    case CK_CODEC_ZSTD: rc = zstd_decompress(in, n, &s); break;
    default: return CK_EUNSUP;
    }
    if (rc == 0)
        rc = sink_commit(&s);
    if (rc == CK_ENOMEM && out->err == CK_ENOMEM)
        out->err = 0; /* the failed call appended nothing; the buffer stays usable */
    return rc;
}

int ck_decompress(int codec, const uint8_t *in, size_t n, ck_wbuf_t *out, size_t max_out)
{
    return ck_decompress_ex(codec, 0, in, n, out, max_out);
}

int ck_compress(int codec, int level, const uint8_t *in, size_t n, ck_wbuf_t *out)
{
    if (out->err)
        return CK_ENOMEM;
    if (n > INT32_MAX)
        return CK_ETOOBIG;
    size_t start = out->len;
    int rc;
    switch (codec) {
    case CK_CODEC_GZIP: rc = gzip_compress(level, in, n, out); break;
    case CK_CODEC_SNAPPY: rc = snappy_compress_xerial(in, n, out); break;
    case CK_CODEC_LZ4: rc = lz4_compress(level, in, n, out); break;
    case CK_CODEC_ZSTD: rc = zstd_compress(level, in, n, out); break;
    default: return CK_EUNSUP;
    }
    if (rc) {
        out->len = start;
        if (rc == CK_ENOMEM)
            out->err = 0;
    }
    return rc;
}
