/* Term dictionary encoding, version 1.
 *
 * One dictionary = every term of one segment, in strictly increasing byte order (memcmp
 * on the common length, then the shorter first), each with a uint64 value (the offset of
 * its postings list) and a uint32 doc frequency. A term is 0..255 arbitrary bytes.
 * All integers little-endian; "varint" is unsigned LEB128 (at most 10 bytes for a uint64,
 * 5 for a uint32). N = term count, B = ceil(N / 64) blocks; block b holds terms
 * [64b, min(64b + 64, N)).
 *
 *   offset            size     field
 *   0                 4        magic "CKTD" (0x43 0x4B 0x54 0x44)
 *   4                 1        version = 1
 *   5                 1        terms per block = 64
 *   6                 2        reserved = 0
 *   8                 4        N, term count
 *   12                4        B, block count = ceil(N / 64)
 *   16                4        D, byte length of the block area
 *   20                4        K, byte length of the key area
 *   24                4        reserved = 0
 *   28                4        CRC-32C over bytes [0, 28), then over [32, end)
 *   32                D        block area: the blocks, back to back
 *   32 + D            8 * B    index slots, one per block:
 *                                +0 u32 offset of the block in the block area
 *                                +4 u32 offset of the block's first term in the key area
 *   32 + D + 8B       K        key area: per block, u8 length then the block's first term
 *
 * The dictionary is exactly 32 + D + 8B + K bytes. A block ends where the next one starts
 * (the last one at D); key entries are back to back in block order.
 *
 * A block is its terms' entries, back to back (front coding):
 *   u8 shared    length of the prefix shared with the previous term (0 for the block's
 *                first term, so every block decodes on its own)
 *   u8 suffix    length of the rest of the term (shared + suffix <= 255)
 *   suffix bytes
 *   varint       value (uint64)
 *   varint       doc frequency (uint32)
 * The writer stores the longest shared prefix, but readers accept any shared <= that.
 *
 * Lookup: binary search over the key area (via the fixed-size slots) for the last block
 * whose first term is <= the target, then a scan of that one block. The index sits at the
 * end so the writer streams blocks and appends the index once.
 *
 * Validation: ck_termdict_open() checks the lengths (short -> CK_ETRUNC, long ->
 * CK_ECORRUPT), magic, version, block size, reserved bytes, B against N, the CRC, then
 * decodes everything: slot offsets start at 0 and increase, key offsets are back to back
 * and fill K, every block holds exactly its term count and ends exactly at its end, every
 * entry and varint is in bounds, terms strictly increase and each block's first term
 * equals its key. */
#include "search/termdict.h"

#include "core/crc32c.h"

#define BLK CK_TERMDICT_BLOCK
#define HDR CK_TERMDICT_HEADER_SIZE
#define MAXT CK_TERMDICT_MAX_TERM
#define SLOT 8
#define VERSION 1

/* memcmp order, shorter first on a tie. */
static int term_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* ---- writer ---- */

void ck_termdict_writer_init(ck_termdict_writer_t *w)
{
    memset(w, 0, sizeof(*w));
    w->tw_blocks = CK_WBUF_INIT;
    w->tw_slots = CK_WBUF_INIT;
    w->tw_keys = CK_WBUF_INIT;
}

int ck_termdict_writer_add(ck_termdict_writer_t *w, const void *term, size_t len, uint64_t value,
                           uint32_t df)
{
    const uint8_t *t = term;
    if (w->tw_err)
        return w->tw_err;
    if (len > MAXT)
        return CK_ETOOBIG;
    if (len && !t)
        return CK_EINVAL;
    if (w->tw_count && term_cmp(t, len, w->tw_last, w->tw_last_len) <= 0)
        return CK_EINVAL;
    if (w->tw_count == UINT32_MAX)
        return w->tw_err = CK_ETOOBIG;

    size_t shared = 0;
    if (w->tw_count % BLK == 0) {
        /* Sizes were checked after the previous add, so the offsets fit in 32 bits. */
        ck_wr_le32(&w->tw_slots, (uint32_t)w->tw_blocks.len);
        ck_wr_le32(&w->tw_slots, (uint32_t)w->tw_keys.len);
        ck_wr_u8(&w->tw_keys, (uint8_t)len);
        ck_wr_bytes(&w->tw_keys, t, len);
    } else {
        size_t m = len < w->tw_last_len ? len : w->tw_last_len;
        while (shared < m && t[shared] == w->tw_last[shared])
            shared++;
    }
    ck_wr_u8(&w->tw_blocks, (uint8_t)shared);
    ck_wr_u8(&w->tw_blocks, (uint8_t)(len - shared));
    ck_wr_bytes(&w->tw_blocks, t + shared, len - shared);
    ck_wr_uvarint64(&w->tw_blocks, value);
    ck_wr_uvarint64(&w->tw_blocks, df);
    if (w->tw_blocks.err || w->tw_slots.err || w->tw_keys.err)
        return w->tw_err = CK_ENOMEM;
    if (w->tw_blocks.len > UINT32_MAX || w->tw_keys.len > UINT32_MAX)
        return w->tw_err = CK_ETOOBIG;

    if (len)
        memcpy(w->tw_last, t, len);
    w->tw_last_len = (uint32_t)len;
    w->tw_count++;
    return 0;
}

static void writer_reset(ck_termdict_writer_t *w)
{
    ck_wbuf_reset(&w->tw_blocks);
    ck_wbuf_reset(&w->tw_slots);
    ck_wbuf_reset(&w->tw_keys);
    w->tw_count = 0;
    w->tw_last_len = 0;
    w->tw_err = 0;
}

int ck_termdict_writer_finish(ck_termdict_writer_t *w, ck_wbuf_t *out)
{
    int rc = w->tw_err;
    if (!rc) {
        uint32_t nblocks = (uint32_t)(w->tw_slots.len / SLOT);
        size_t body = w->tw_blocks.len + w->tw_slots.len + w->tw_keys.len;
        uint8_t *d = ck_wbuf_reserve(out, HDR + body);
        if (!d) {
            rc = CK_ENOMEM;
        } else {
            memset(d, 0, HDR);
            memcpy(d, "CKTD", 4);
            d[4] = VERSION;
            d[5] = BLK;
            ck_put_le32(d + 8, w->tw_count);
            ck_put_le32(d + 12, nblocks);
            ck_put_le32(d + 16, (uint32_t)w->tw_blocks.len);
            ck_put_le32(d + 20, (uint32_t)w->tw_keys.len);
            uint8_t *q = d + HDR;
            if (w->tw_blocks.len)
                memcpy(q, w->tw_blocks.data, w->tw_blocks.len);
            q += w->tw_blocks.len;
            if (w->tw_slots.len)
                memcpy(q, w->tw_slots.data, w->tw_slots.len);
            q += w->tw_slots.len;
            if (w->tw_keys.len)
                memcpy(q, w->tw_keys.data, w->tw_keys.len);
            uint32_t crc = ck_crc32c(0, d, 28);
            crc = ck_crc32c(crc, d + HDR, body);
            ck_put_le32(d + 28, crc);
            out->len += HDR + body;
        }
    }
    writer_reset(w);
    return rc;
}

void ck_termdict_writer_free(ck_termdict_writer_t *w)
{
    ck_wbuf_free(&w->tw_blocks);
    ck_wbuf_free(&w->tw_slots);
    ck_wbuf_free(&w->tw_keys);
    ck_termdict_writer_init(w);
}

/* ---- reader ---- */

static inline uint32_t block_off(const ck_termdict_t *td, uint32_t b)
{
    return b < td->td_nblocks ? ck_get_le32(td->td_slots + (size_t)b * SLOT) : td->td_blocks_len;
}
/* The block's first term from the key area (validated at open). */
static inline const uint8_t *block_key(const ck_termdict_t *td, uint32_t b, size_t *len)
{
    const uint8_t *k = td->td_keys + ck_get_le32(td->td_slots + (size_t)b * SLOT + 4);
    *len = k[0];
    return k + 1;
}

/* Decodes one entry at *pp (before end) over the previous term in term[0, *term_len). */
static int decode_entry(const uint8_t **pp, const uint8_t *end, uint8_t *term, uint32_t *term_len,
                        uint64_t *value, uint32_t *df)
{
    const uint8_t *p = *pp;
    if (end - p < 2)
        return CK_ECORRUPT;
    uint32_t shared = p[0], sfx = p[1];
    p += 2;
    if (shared > *term_len || shared + sfx > MAXT || (size_t)(end - p) < sfx)
        return CK_ECORRUPT;
    if (sfx)
        memcpy(term + shared, p, sfx);
    p += sfx;
    *term_len = shared + sfx;
    ck_rbuf_t r;
    ck_rbuf_init(&r, p, (size_t)(end - p));
    *value = ck_rd_uvarint64(&r);
    *df = ck_rd_uvarint(&r);
    if (r.err)
        return CK_ECORRUPT;
    *pp = r.p;
    return 0;
}

static int validate(const ck_termdict_t *td)
{
    uint8_t term[MAXT], prev[MAXT];
    uint32_t term_len = 0, prev_len = 0;
    uint32_t koff = 0;
    for (uint32_t b = 0; b < td->td_nblocks; b++) {
        uint32_t start = block_off(td, b), end = block_off(td, b + 1);
        if ((b == 0 && start != 0) || end <= start || end > td->td_blocks_len)
            return CK_ECORRUPT;
        if (ck_get_le32(td->td_slots + (size_t)b * SLOT + 4) != koff || koff >= td->td_keys_len)
            return CK_ECORRUPT;
        uint32_t klen = td->td_keys[koff];
        if (td->td_keys_len - koff - 1 < klen)
            return CK_ECORRUPT;
        const uint8_t *key = td->td_keys + koff + 1;
        koff += 1 + klen;

        uint32_t n = b + 1 < td->td_nblocks ? BLK : td->td_count - b * BLK;
        const uint8_t *p = td->td_blocks + start, *pend = td->td_blocks + end;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t value;
            uint32_t df;
            if (i == 0) {
                if (p < pend && p[0] != 0)
                    return CK_ECORRUPT; /* a block's first term shares nothing */
                term_len = 0;
            }
            if (decode_entry(&p, pend, term, &term_len, &value, &df))
                return CK_ECORRUPT;
            if (i == 0 && term_cmp(term, term_len, key, klen) != 0)
                return CK_ECORRUPT;
            if ((b || i) && term_cmp(term, term_len, prev, prev_len) <= 0)
                return CK_ECORRUPT;
            if (term_len)
                memcpy(prev, term, term_len);
            prev_len = term_len;
        }
        if (p != pend)
            return CK_ECORRUPT;
    }
    return koff == td->td_keys_len ? 0 : CK_ECORRUPT;
}

int ck_termdict_open(const uint8_t *p, size_t n, ck_termdict_t *td)
{
    memset(td, 0, sizeof(*td));
    if (n < HDR)
        return CK_ETRUNC;
    if (memcmp(p, "CKTD", 4) != 0 || p[4] != VERSION || p[5] != BLK || p[6] || p[7] ||
        ck_get_le32(p + 24))
        return CK_ECORRUPT;
    uint32_t count = ck_get_le32(p + 8), nblocks = ck_get_le32(p + 12);
    uint32_t dlen = ck_get_le32(p + 16), klen = ck_get_le32(p + 20);
    if (nblocks != (uint32_t)(((uint64_t)count + BLK - 1) / BLK))
        return CK_ECORRUPT;
    uint64_t total = (uint64_t)HDR + dlen + (uint64_t)nblocks * SLOT + klen;
    if (n < total)
        return CK_ETRUNC;
    if (n > total)
        return CK_ECORRUPT;
    uint32_t crc = ck_crc32c(0, p, 28);
    crc = ck_crc32c(crc, p + HDR, n - HDR);
    if (crc != ck_get_le32(p + 28))
        return CK_ECORRUPT;

    ck_termdict_t t = {
        .td_blocks = p + HDR,
        .td_slots = p + HDR + dlen,
        .td_keys = p + HDR + dlen + (size_t)nblocks * SLOT,
        .td_count = count,
        .td_nblocks = nblocks,
        .td_blocks_len = dlen,
        .td_keys_len = klen,
    };
    if (nblocks == 0 && (dlen || klen))
        return CK_ECORRUPT;
    int rc = validate(&t);
    if (rc)
        return rc;
    *td = t;
    return 0;
}

/* ---- iteration ---- */

static void iter_load_block(ck_termdict_iter_t *it, uint32_t b)
{
    const ck_termdict_t *td = it->it_td;
    it->it_blk = b;
    it->it_p = td->td_blocks + block_off(td, b);
    it->it_end = td->td_blocks + block_off(td, b + 1);
    it->it_term_len = 0;
}

static void iter_init(const ck_termdict_t *td, ck_termdict_iter_t *it)
{
    memset(it, 0, sizeof(*it));
    it->it_td = td;
    if (td->td_nblocks)
        iter_load_block(it, 0);
    else
        it->it_done = true;
}

/* Decodes the next entry: 1, 0 at the end, or CK_ECORRUPT (sticky). */
static int iter_step(ck_termdict_iter_t *it)
{
    if (it->it_err)
        return it->it_err;
    if (it->it_done)
        return 0;
    while (it->it_p >= it->it_end) {
        if (it->it_blk + 1 >= it->it_td->td_nblocks) {
            it->it_done = true;
            return 0;
        }
        iter_load_block(it, it->it_blk + 1);
    }
    if (decode_entry(&it->it_p, it->it_end, it->it_term, &it->it_term_len, &it->it_value,
                     &it->it_df))
        return it->it_err = CK_ECORRUPT;
    return 1;
}

/* Positions the iterator on the first term >= key, to be returned by the next next(). */
static void iter_seek(ck_termdict_iter_t *it, const uint8_t *key, size_t klen)
{
    const ck_termdict_t *td = it->it_td;
    if (!td->td_nblocks)
        return;
    /* Last block whose first term is <= key; block 0 when key sorts before everything. */
    uint32_t lo = 0, hi = td->td_nblocks; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        size_t mlen;
        const uint8_t *m = block_key(td, mid, &mlen);
        if (term_cmp(m, mlen, key, klen) <= 0)
            lo = mid;
        else
            hi = mid;
    }
    iter_load_block(it, lo);
    for (;;) {
        int r = iter_step(it);
        if (r <= 0)
            return;
        if (term_cmp(it->it_term, it->it_term_len, key, klen) >= 0) {
            it->it_pending = true;
            return;
        }
    }
}

void ck_termdict_iter_all(const ck_termdict_t *td, ck_termdict_iter_t *it)
{
    iter_init(td, it);
}

void ck_termdict_iter_prefix(const ck_termdict_t *td, ck_termdict_iter_t *it, const void *prefix,
                             size_t len)
{
    iter_init(td, it);
    if (len > MAXT) {
        it->it_done = true;
        return;
    }
    if (len)
        memcpy(it->it_prefix, prefix, len);
    it->it_prefix_len = (uint32_t)len;
    iter_seek(it, it->it_prefix, len);
}

int ck_termdict_iter_next(ck_termdict_iter_t *it)
{
    int r;
    if (it->it_pending) {
        it->it_pending = false;
        r = 1;
    } else {
        r = iter_step(it);
    }
    if (r == 1 && it->it_prefix_len &&
        (it->it_term_len < it->it_prefix_len ||
         memcmp(it->it_term, it->it_prefix, it->it_prefix_len) != 0)) {
        it->it_done = true; /* terms are sorted: no later term has the prefix either */
        return 0;
    }
    return r;
}

int ck_termdict_lookup(const ck_termdict_t *td, const void *term, size_t len, uint64_t *value,
                       uint32_t *df)
{
    if (len > MAXT)
        return CK_ENOENT;
    ck_termdict_iter_t it;
    iter_init(td, &it);
    iter_seek(&it, term, len);
    if (it.it_err)
        return it.it_err;
    if (!it.it_pending || term_cmp(it.it_term, it.it_term_len, term, len) != 0)
        return CK_ENOENT;
    if (value)
        *value = it.it_value;
    if (df)
        *df = it.it_df;
    return 0;
}
