/* Postings list encoding, version 1. Also in docs/SEARCH_FORMAT.md (keep them equal).
 *
 * One list = one term's postings in one segment. All integers little-endian; "varint" is
 * unsigned LEB128 of at most 5 bytes holding a uint32. N = doc count (>= 1),
 * B = ceil(N / 128) blocks; block b holds docs [128b, min(128b + 128, N)).
 *
 *   offset        size      field
 *   0             4         magic "CKPL" (0x43 0x4B 0x50 0x4C)
 *   4             1         version = 1
 *   5             1         flags: bit 0 = positions present; other bits 0
 *   6             2         reserved = 0
 *   8             4         N, doc count
 *   12            4         D, byte length of the doc/freq stream
 *   16            4         P, byte length of the positions stream (0 without positions)
 *   20            4         max score bound over the list (IEEE-754 float32)
 *   24            4         data CRC-32C over the doc/freq stream then the positions stream
 *   28            4         head CRC-32C over bytes [0, 28) then the skip table
 *   32            16 * B    skip table, one entry per block:
 *                             +0  u32 last doc id of the block
 *                             +4  u32 offset of the block in the doc/freq stream
 *                             +8  u32 offset of the block's positions in the positions stream
 *                             +12 f32 max of the per-doc score bounds in the block
 *   32 + 16B      D         doc/freq stream: the blocks, back to back
 *   32 + 16B + D  P         positions stream
 *
 * The list is exactly 32 + 16B + D + P bytes. A block's length is the next block's offset
 * (or D) minus its own; likewise for positions.
 *
 * Doc ids are coded as gaps minus one: g_i = doc_i - prev - 1, where prev is the previous
 * doc (for the first doc of block b: the last doc of block b-1; for the very first doc:
 * -1, so g_0 = doc_0). Doc ids are at most 2^32 - 2. Freqs are coded as tf - 1.
 *
 * A full block (128 docs) is bit-packed:
 *   u8 bd, u8 bf (bit widths, 0..32), then 128 gaps in bd bits, then 128 (tf - 1) in bf
 *   bits. Each run of 128 values is packed LSB-first into 32-bit little-endian words
 *   (value i occupies bits [i*w, i*w + w) of the run), so a run is 16 * w bytes and the
 *   block is 2 + 16 * (bd + bf) bytes.
 * The last block, when shorter than 128 docs, is varints: per doc, varint(gap) then
 * varint(tf - 1).
 *
 * Positions (when flagged): per doc in doc order, tf varints: the first position, then
 * each following position minus the previous minus one (positions strictly increase).
 * The stream is separate so queries without positions never read it.
 *
 * Validation: ck_postings_open() checks lengths (truncated -> CK_ETRUNC), magic, version,
 * flags, the head CRC and the skip table (last docs strictly increasing with room for the
 * block's docs, offsets increasing and in range, bounds not NaN, header max = max of the
 * block maxima). Each decoded block must have exactly its length and end at the skip
 * table's last doc. The data CRC is checked by ck_postings_verify() only. */
#include "search/postings.h"

#include <math.h>

#include "core/crc32c.h"

#define BLK CK_POSTINGS_BLOCK
#define HDR CK_POSTINGS_HEADER_SIZE
#define SKIP CK_POSTINGS_SKIP_SIZE
#define VERSION 1
#define FLAG_POSITIONS 0x01

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline unsigned bits_for(uint32_t v)
{
    return v ? 32u - (unsigned)__builtin_clz(v) : 0;
}

/* ---- bit packing: runs of 128 values of w bits, LSB-first in LE 32-bit words ---- */

static void pack128(ck_wbuf_t *out, const uint32_t *v, unsigned w)
{
    uint8_t *d = ck_wbuf_reserve(out, 16u * w);
    if (!d)
        return;
    uint64_t acc = 0;
    unsigned have = 0;
    uint8_t *p = d;
    for (int i = 0; i < BLK; i++) {
        acc |= (uint64_t)v[i] << have;
        have += w;
        if (have >= 32) {
            ck_put_le32(p, (uint32_t)acc);
            p += 4;
            acc >>= 32;
            have -= 32;
        }
    }
    out->len += 16u * w;
}

/* Inlined per width by the switch below, so the shift and mask are constants. Reads
 * exactly 16 * w bytes. */
static inline __attribute__((always_inline)) void unpack128_w(const uint8_t *in, uint32_t *out,
                                                              const unsigned w)
{
    const uint64_t mask = (1ull << w) - 1;
    uint64_t acc = 0;
    unsigned have = 0;
    for (int i = 0; i < BLK; i++) {
        if (have < w) {
            acc |= (uint64_t)ck_get_le32(in) << have;
            in += 4;
            have += 32;
        }
        out[i] = (uint32_t)(acc & mask);
        acc >>= w;
        have -= w;
    }
}

static void unpack128(const uint8_t *in, uint32_t *out, unsigned w)
{
    switch (w) {
    case 0:
        memset(out, 0, BLK * sizeof *out);
        return;
    case 32:
        for (int i = 0; i < BLK; i++)
            out[i] = ck_get_le32(in + 4 * i);
        return;
#define W(n)                                                                                       \
    case n:                                                                                        \
        unpack128_w(in, out, n);                                                                   \
        return;
        W(1)
        W(2)
        W(3)
        W(4) W(5) W(6) W(7) W(8) W(9) W(10) W(11) W(12) W(13) W(14) W(15) W(16) W(17) W(18) W(19)
            W(20) W(21) W(22) W(23) W(24) W(25) W(26) W(27) W(28) W(29) W(30) W(31)
#undef W
    }
}

/* Varint of at most 5 bytes (32 bits) from [*pp, end). 0, or CK_ECORRUPT (overlong, or
 * running past end: `end` is always inside an already length-checked list). */
static inline int rd_varint(const uint8_t **pp, const uint8_t *end, uint32_t *v)
{
    const uint8_t *p = *pp;
    uint32_t x = 0;
    for (unsigned shift = 0; shift < 35; shift += 7) {
        if (p >= end)
            return CK_ECORRUPT;
        uint8_t b = *p++;
        if (shift == 28 && (b & 0xf0))
            return CK_ECORRUPT;
        x |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *v = x;
            return 0;
        }
    }
    return CK_ECORRUPT;
}

/* ---- writer ---- */

void ck_postings_writer_init(ck_postings_writer_t *w, bool with_positions)
{
    memset(w, 0, sizeof *w);
    w->pw_positions = with_positions;
    w->pw_prev = UINT32_MAX;
    w->pw_skips = CK_WBUF_INIT;
    w->pw_data = CK_WBUF_INIT;
    w->pw_pos = CK_WBUF_INIT;
}

static void writer_reset(ck_postings_writer_t *w)
{
    w->pw_err = 0;
    w->pw_count = 0;
    w->pw_n = 0;
    w->pw_prev = UINT32_MAX;
    w->pw_pos_off = 0;
    ck_wbuf_reset(&w->pw_skips);
    ck_wbuf_reset(&w->pw_data);
    ck_wbuf_reset(&w->pw_pos);
}

void ck_postings_writer_free(ck_postings_writer_t *w)
{
    ck_wbuf_free(&w->pw_skips);
    ck_wbuf_free(&w->pw_data);
    ck_wbuf_free(&w->pw_pos);
    ck_postings_writer_init(w, w->pw_positions);
}

/* Writes the pending block (pw_n docs) and its skip entry. */
static void flush_block(ck_postings_writer_t *w)
{
    uint32_t n = w->pw_n, prev = w->pw_prev;
    ck_wr_le32(&w->pw_skips, w->pw_docs[n - 1]);
    ck_wr_le32(&w->pw_skips, (uint32_t)w->pw_data.len);
    ck_wr_le32(&w->pw_skips, w->pw_pos_off);
    ck_wr_le32(&w->pw_skips, f2u(w->pw_bmax));
    if (n == BLK) {
        uint32_t g[BLK], f[BLK], gor = 0, f_or = 0;
        for (uint32_t i = 0; i < BLK; i++) {
            g[i] = w->pw_docs[i] - prev - 1; /* wraps to doc_0 when prev = UINT32_MAX */
            prev = w->pw_docs[i];
            f[i] = w->pw_freqs[i] - 1;
            gor |= g[i];
            f_or |= f[i];
        }
        unsigned bd = bits_for(gor), bf = bits_for(f_or);
        ck_wr_u8(&w->pw_data, (uint8_t)bd);
        ck_wr_u8(&w->pw_data, (uint8_t)bf);
        pack128(&w->pw_data, g, bd);
        pack128(&w->pw_data, f, bf);
    } else {
        for (uint32_t i = 0; i < n; i++) {
            ck_wr_uvarint(&w->pw_data, w->pw_docs[i] - prev - 1);
            prev = w->pw_docs[i];
            ck_wr_uvarint(&w->pw_data, w->pw_freqs[i] - 1);
        }
    }
    w->pw_prev = w->pw_docs[n - 1];
    w->pw_pos_off = (uint32_t)w->pw_pos.len;
    w->pw_n = 0;
    if (w->pw_skips.err || w->pw_data.err)
        w->pw_err = CK_ENOMEM;
}

int ck_postings_writer_add(ck_postings_writer_t *w, uint32_t doc, uint32_t tf, const uint32_t *pos,
                           uint32_t npos, float bound)
{
    if (w->pw_err)
        return w->pw_err;
    if (doc > CK_POSTINGS_MAX_DOC || (w->pw_count && doc <= w->pw_last) || tf == 0 || isnan(bound))
        return CK_EINVAL;
    if (w->pw_positions) {
        if (!pos || npos != tf)
            return CK_EINVAL;
        for (uint32_t i = 1; i < npos; i++)
            if (pos[i] <= pos[i - 1])
                return CK_EINVAL;
        ck_wr_uvarint(&w->pw_pos, pos[0]);
        for (uint32_t i = 1; i < npos; i++)
            ck_wr_uvarint(&w->pw_pos, pos[i] - pos[i - 1] - 1);
        if (w->pw_pos.err)
            return w->pw_err = CK_ENOMEM;
    } else if (pos || npos) {
        return CK_EINVAL;
    }
    if (w->pw_n == 0 || bound > w->pw_bmax)
        w->pw_bmax = bound;
    if (w->pw_count == 0 || bound > w->pw_max)
        w->pw_max = bound;
    w->pw_docs[w->pw_n] = doc;
    w->pw_freqs[w->pw_n] = tf;
    w->pw_n++;
    w->pw_count++;
    w->pw_last = doc;
    if (w->pw_n == BLK)
        flush_block(w);
    return w->pw_err;
}

int ck_postings_writer_finish(ck_postings_writer_t *w, ck_wbuf_t *out)
{
    int rc = w->pw_err;
    if (!rc && w->pw_count == 0)
        rc = CK_EINVAL;
    if (!rc && w->pw_n)
        flush_block(w);
    if (!rc)
        rc = w->pw_err;
    if (!rc && (w->pw_data.len > UINT32_MAX || w->pw_pos.len > UINT32_MAX))
        rc = CK_ETOOBIG;
    uint8_t *d = NULL;
    size_t total = HDR + w->pw_skips.len + w->pw_data.len + w->pw_pos.len;
    if (!rc && !(d = ck_wbuf_reserve(out, total)))
        rc = CK_ENOMEM;
    if (rc) {
        writer_reset(w);
        return rc;
    }
    memcpy(d, "CKPL", 4);
    d[4] = VERSION;
    d[5] = w->pw_positions ? FLAG_POSITIONS : 0;
    d[6] = d[7] = 0;
    ck_put_le32(d + 8, w->pw_count);
    ck_put_le32(d + 12, (uint32_t)w->pw_data.len);
    ck_put_le32(d + 16, (uint32_t)w->pw_pos.len);
    ck_put_le32(d + 20, f2u(w->pw_max));
    uint8_t *s = d + HDR;
    if (w->pw_skips.len)
        memcpy(s, w->pw_skips.data, w->pw_skips.len);
    uint8_t *dd = s + w->pw_skips.len;
    if (w->pw_data.len)
        memcpy(dd, w->pw_data.data, w->pw_data.len);
    if (w->pw_pos.len)
        memcpy(dd + w->pw_data.len, w->pw_pos.data, w->pw_pos.len);
    ck_put_le32(d + 24, ck_crc32c(0, dd, w->pw_data.len + w->pw_pos.len));
    ck_put_le32(d + 28, ck_crc32c(ck_crc32c(0, d, 28), s, w->pw_skips.len));
    out->len += total;
    writer_reset(w);
    return 0;
}

/* ---- reader ---- */

static inline const uint8_t *skip_at(const ck_postings_t *c, uint32_t b)
{
    return c->pl_skips + (size_t)b * SKIP;
}
static inline uint32_t skip_last(const ck_postings_t *c, uint32_t b)
{
    return ck_get_le32(skip_at(c, b));
}
static inline uint32_t blk_docs(const ck_postings_t *c, uint32_t b)
{
    return b + 1 < c->pl_nblocks ? BLK : c->pl_count - b * BLK;
}
static inline uint32_t data_end(const ck_postings_t *c, uint32_t b)
{
    return b + 1 < c->pl_nblocks ? ck_get_le32(skip_at(c, b + 1) + 4) : c->pl_data_len;
}
static inline uint32_t pos_end(const ck_postings_t *c, uint32_t b)
{
    return b + 1 < c->pl_nblocks ? ck_get_le32(skip_at(c, b + 1) + 8) : c->pl_pos_len;
}

static void exhaust(ck_postings_t *c)
{
    c->pl_doc = CK_POSTINGS_END;
    c->pl_blk = c->pl_sblk = c->pl_nblocks;
    c->pl_i = c->pl_n = 0;
}
static uint32_t fail(ck_postings_t *c, int err)
{
    if (!c->pl_err)
        c->pl_err = err;
    exhaust(c);
    return CK_POSTINGS_END;
}

/* Decodes block b into pl_docs/pl_freqs and makes its first doc current. 0 or CK_E*
 * (the caller fails the cursor). */
static int decode_block(ck_postings_t *c, uint32_t b)
{
    const uint8_t *s = skip_at(c, b);
    uint32_t off = ck_get_le32(s + 4), end = data_end(c, b), n = blk_docs(c, b);
    const uint8_t *p = c->pl_data + off, *e = c->pl_data + end;
    uint64_t next = b ? (uint64_t)skip_last(c, b - 1) + 1 : 0; /* prev + 1 */
    if (n == BLK) {
        if (e - p < 2)
            return CK_ECORRUPT;
        unsigned bd = p[0], bf = p[1];
        if (bd > 32 || bf > 32 || (size_t)(e - p) != 2 + 16u * (bd + bf))
            return CK_ECORRUPT;
        unpack128(p + 2, c->pl_docs, bd);
        unpack128(p + 2 + 16u * bd, c->pl_freqs, bf);
        for (uint32_t i = 0; i < BLK; i++) {
            next += c->pl_docs[i];
            c->pl_docs[i] = (uint32_t)next;
            next++;
        }
        if (bf == 32)
            for (uint32_t i = 0; i < BLK; i++)
                if (c->pl_freqs[i] == UINT32_MAX)
                    return CK_ECORRUPT;
        for (uint32_t i = 0; i < BLK; i++)
            c->pl_freqs[i]++;
    } else {
        for (uint32_t i = 0; i < n; i++) {
            uint32_t g, f;
            if (rd_varint(&p, e, &g) || rd_varint(&p, e, &f) || f == UINT32_MAX)
                return CK_ECORRUPT;
            next += g;
            c->pl_docs[i] = (uint32_t)next;
            c->pl_freqs[i] = f + 1;
            next++;
        }
        if (p != e)
            return CK_ECORRUPT;
    }
    /* Docs increase by construction; the last must be the skip table's (which also
     * bounds every doc id below 2^32 - 1). */
    if (next - 1 != skip_last(c, b))
        return CK_ECORRUPT;
    c->pl_blk = c->pl_sblk = b;
    c->pl_n = n;
    c->pl_i = 0;
    c->pl_doc = c->pl_docs[0];
    c->pl_pos_i = 0;
    c->pl_pos_p = c->pl_pos ? c->pl_pos + ck_get_le32(s + 8) : NULL;
    return 0;
}

/* Structure checks on header and skip table; fills c without decoding. */
static int open_struct(const uint8_t *p, size_t n, ck_postings_t *c)
{
    memset(c, 0, offsetof(ck_postings_t, pl_docs));
    if (n < HDR)
        return CK_ETRUNC;
    if (memcmp(p, "CKPL", 4) != 0 || p[4] != VERSION || (p[5] & ~FLAG_POSITIONS) || p[6] || p[7])
        return CK_ECORRUPT;
    uint32_t count = ck_get_le32(p + 8), dlen = ck_get_le32(p + 12), plen = ck_get_le32(p + 16);
    bool has_pos = p[5] & FLAG_POSITIONS;
    uint32_t nb = (uint32_t)(((uint64_t)count + BLK - 1) / BLK);
    uint64_t total = (uint64_t)HDR + (uint64_t)nb * SKIP + dlen + plen;
    if (n < total)
        return CK_ETRUNC;
    if (n > total)
        return CK_ECORRUPT;
    const uint8_t *s = p + HDR;
    if (ck_crc32c(ck_crc32c(0, p, 28), s, (size_t)nb * SKIP) != ck_get_le32(p + 28))
        return CK_ECORRUPT;
    if (count == 0 || (!has_pos && plen))
        return CK_ECORRUPT;
    c->pl_skips = s;
    c->pl_data = s + (size_t)nb * SKIP;
    c->pl_pos = has_pos ? c->pl_data + dlen : NULL;
    c->pl_count = count;
    c->pl_nblocks = nb;
    c->pl_data_len = dlen;
    c->pl_pos_len = plen;
    c->pl_max = u2f(ck_get_le32(p + 20));

    uint64_t prev = (uint64_t)-1; /* last doc of the previous block, as prev + 1 == 0 */
    uint32_t poff = 0;
    float mx = 0;
    for (uint32_t b = 0; b < nb; b++, s += SKIP) {
        uint32_t last = ck_get_le32(s), off = ck_get_le32(s + 4), po = ck_get_le32(s + 8);
        float bm = u2f(ck_get_le32(s + 12));
        /* room for this block's docs: last >= prev + n, and last <= 2^32 - 2 */
        if (last > CK_POSTINGS_MAX_DOC || (uint64_t)last < prev + blk_docs(c, b))
            return CK_ECORRUPT;
        if (off >= data_end(c, b) || (b == 0 && off != 0))
            return CK_ECORRUPT;
        if (po < poff || po > plen || (b == 0 && po != 0))
            return CK_ECORRUPT;
        if (isnan(bm))
            return CK_ECORRUPT;
        if (b == 0 || bm > mx)
            mx = bm;
        prev = last;
        poff = po;
    }
    if (f2u(mx) != f2u(c->pl_max))
        return CK_ECORRUPT;
    return 0;
}

int ck_postings_open(const uint8_t *p, size_t n, ck_postings_t *c)
{
    int rc = open_struct(p, n, c);
    if (!rc)
        rc = decode_block(c, 0);
    if (rc) {
        c->pl_nblocks = 0; /* nothing to read: block accessors report the end */
        fail(c, rc);
    }
    return rc;
}

int ck_postings_verify(const uint8_t *p, size_t n)
{
    ck_postings_t c;
    int rc = open_struct(p, n, &c);
    if (rc)
        return rc;
    if (ck_crc32c(0, c.pl_data, (size_t)c.pl_data_len + c.pl_pos_len) != ck_get_le32(p + 24))
        return CK_ECORRUPT;
    for (uint32_t b = 0; b < c.pl_nblocks; b++) {
        if ((rc = decode_block(&c, b)))
            return rc;
        if (!c.pl_pos)
            continue;
        const uint8_t *q = c.pl_pos_p, *e = c.pl_pos + pos_end(&c, b);
        for (uint32_t i = 0; i < c.pl_n; i++) {
            uint64_t pos = 0;
            for (uint32_t k = 0; k < c.pl_freqs[i]; k++) {
                uint32_t v;
                if (rd_varint(&q, e, &v))
                    return CK_ECORRUPT;
                pos = k ? pos + v + 1 : v;
                if (pos > UINT32_MAX)
                    return CK_ECORRUPT;
            }
        }
        if (q != e)
            return CK_ECORRUPT;
    }
    return 0;
}

uint32_t ck_postings_next(ck_postings_t *c)
{
    if (c->pl_doc == CK_POSTINGS_END)
        return CK_POSTINGS_END;
    c->pl_sblk = c->pl_blk;
    if (++c->pl_i < c->pl_n)
        return c->pl_doc = c->pl_docs[c->pl_i];
    if (c->pl_blk + 1 >= c->pl_nblocks) {
        exhaust(c);
        return CK_POSTINGS_END;
    }
    int rc = decode_block(c, c->pl_blk + 1);
    return rc ? fail(c, rc) : c->pl_doc;
}

/* First block b >= lo whose last doc is >= target, or pl_nblocks. Gallops, then bisects:
 * cheap for near targets, logarithmic for far ones. */
static uint32_t find_block(const ck_postings_t *c, uint32_t lo, uint32_t target)
{
    uint64_t nb = c->pl_nblocks, l = lo, hi = lo, step = 1;
    while (hi < nb && skip_last(c, (uint32_t)hi) < target) {
        l = hi + 1;
        hi = l + step;
        step <<= 1;
    }
    if (hi > nb)
        hi = nb;
    /* blocks before l end below target; hi == nb or ends at or after it */
    while (l < hi) {
        uint64_t mid = l + (hi - l) / 2;
        if (skip_last(c, (uint32_t)mid) < target)
            l = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)l;
}

uint32_t ck_postings_advance(ck_postings_t *c, uint32_t target)
{
    if (c->pl_doc >= target) /* also CK_POSTINGS_END */
        return c->pl_doc;
    c->pl_sblk = c->pl_blk;
    uint32_t i = c->pl_i;
    if (skip_last(c, c->pl_blk) < target) {
        uint32_t b = find_block(c, c->pl_blk + 1, target);
        if (b >= c->pl_nblocks) {
            exhaust(c);
            return CK_POSTINGS_END;
        }
        int rc = decode_block(c, b);
        if (rc)
            return fail(c, rc);
        i = 0;
    }
    /* the block's last doc is >= target, so this stops inside the block */
    while (c->pl_docs[i] < target)
        i++;
    c->pl_i = i;
    return c->pl_doc = c->pl_docs[i];
}

void ck_postings_shallow_advance(ck_postings_t *c, uint32_t target)
{
    uint32_t lo = c->pl_blk;
    if (lo >= c->pl_nblocks)
        return;
    /* resume from an earlier shallow move when it did not overshoot this target */
    if (c->pl_sblk > lo && skip_last(c, c->pl_sblk - 1) < target)
        lo = c->pl_sblk;
    c->pl_sblk = find_block(c, lo, target);
}

int ck_postings_positions(ck_postings_t *c, uint32_t *out, uint32_t cap)
{
    if (c->pl_doc == CK_POSTINGS_END || !c->pl_pos)
        return CK_EINVAL;
    uint32_t i = c->pl_i, tf = c->pl_freqs[i];
    if (cap < tf || tf > INT32_MAX)
        return CK_ERANGE;
    const uint8_t *e = c->pl_pos + pos_end(c, c->pl_blk);
    if (c->pl_pos_i > i) {
        c->pl_pos_i = 0;
        c->pl_pos_p = c->pl_pos + ck_get_le32(skip_at(c, c->pl_blk) + 8);
    }
    const uint8_t *q = c->pl_pos_p;
    /* skip the positions of the docs in between: every varint ends in a byte < 0x80 */
    for (; c->pl_pos_i < i; c->pl_pos_i++) {
        for (uint32_t k = c->pl_freqs[c->pl_pos_i]; k; k--) {
            do {
                if (q >= e) {
                    fail(c, CK_ECORRUPT);
                    return CK_ECORRUPT;
                }
            } while (*q++ & 0x80);
        }
    }
    uint64_t pos = 0;
    for (uint32_t k = 0; k < tf; k++) {
        uint32_t v;
        if (rd_varint(&q, e, &v))
            goto bad;
        pos = k ? pos + v + 1 : v;
        if (pos > UINT32_MAX)
            goto bad;
        out[k] = (uint32_t)pos;
    }
    c->pl_pos_i = i + 1;
    c->pl_pos_p = q;
    return (int)tf;
bad:
    fail(c, CK_ECORRUPT);
    return CK_ECORRUPT;
}
