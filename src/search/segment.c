/* Segment image, version 2. Also in docs/SEARCH_FORMAT.md (keep them equal).
 *
 * One segment = one contiguous byte image. Integers are little-endian; the doc columns
 * and the number arrays are plain arrays a little-endian host reads in place. Every
 * section starts at an offset that is a multiple of 8 from the image start, and the gaps
 * between sections are zero bytes. L = image length, ND = doc count, NF = field count,
 * NP = partition count.
 *
 *   offset  size   field
 *   0       4      magic "CKSG" (0x43 0x4B 0x53 0x47)
 *   4       1      version = 2 (1 lacked the record positions; an index of version 1
 *                  segments is rebuilt)
 *   5       3      reserved = 0
 *   8       8      L, image length in bytes
 *   16      4      ND, doc count
 *   20      4      NF, field count
 *   24      4      NP, partitions with docs in this segment
 *   28      4      CRC-32C over bytes [0, 28), then [32, L)
 *   32      112    section table, 7 entries of (u64 offset, u64 length):
 *                    0 field table      80 * NF bytes
 *                    1 names            each field name followed by a NUL
 *                    2 doc partitions   i32 * ND
 *                    3 doc offsets      i64 * ND
 *                    4 doc timestamps   i64 * ND
 *                    5 partition table  24 * NP bytes
 *                    6 doc record pos   u32 * ND: where the doc's record starts in its
 *                                       batch's records section (ck_record_t.pos), so
 *                                       that _source reads only the record; 0xFFFFFFFF
 *                                       when unknown (compressed batch, REST doc)
 *   144     ...    the sections, then per field its own sections (below), in field order
 *
 * Field table entry (80 bytes), entries sorted by (name in memcmp order, shorter first;
 * then kind), no two equal:
 *   +0   u8  kind (1 TEXT, 2 KEYWORD, 3 NUMBER)
 *   +1   u8  name length (1..255)
 *   +2   u16 reserved = 0
 *   +4   u32 offset of the name in the names section (a NUL follows the name)
 *   +8   u32 doc_count (>= 1: empty fields are not written)
 *   +12  u32 nterms (TEXT/KEYWORD: terms in the dictionary, >= 1; NUMBER: 0)
 *   +16  u64 sum_len (TEXT: tokens; KEYWORD: terms with repeats; NUMBER: values)
 *   +24  u64 offset, +32 u64 length of section A
 *   +40  u64 offset, +48 u64 length of section B
 *   +56  u64 offset, +64 u64 length of section C
 *   +72  u64 reserved = 0
 * TEXT and KEYWORD: A = the term dictionary (termdict.c), B = the postings area, C = the
 * norms (TEXT only: ND bytes, one per doc; KEYWORD: offset and length 0). A term's
 * dictionary value is the offset of its postings list in the postings area; the list's
 * length follows from its own header (32 + 16 * ceil(N / 128) + D + P), so a locator is
 * one number. Lists lie back to back in term order and fill the area exactly; TEXT lists
 * carry positions, KEYWORD lists do not.
 * NUMBER: A = u32 doc ids (sum_len of them), B = f64 values (same count), C = (0, 0); the
 * pairs are sorted by doc, then by value, then by the value's bit pattern (so -0 after
 * +0), never NaN.
 *
 * Partition table entry (24 bytes), sorted by partition, strictly increasing:
 *   +0 i32 partition, +4 u32 docs of that partition, +8 i64 min offset, +16 i64 max offset.
 *
 * Norms: byte b decodes to b for b < 16, else to (16 + (b - 16) % 16) << ((b - 16) / 16):
 * exact below 32, then a 4-bit mantissa (relative error under 1/16), 255 = 507904 (longer
 * fields saturate there). Encoding rounds down, so decode(encode(x)) <= x; a doc without
 * tokens in the field has norm 0.
 *
 * Positions: a TEXT term repeated at one position in a doc is stored at its previous
 * stored position + 1 (the postings codec needs strictly increasing positions); tf and
 * the field length count every token.
 *
 * Scoring bounds in postings: TEXT ck_bm25_bound(tf, decode(norm), sum_len / doc_count),
 * KEYWORD ck_bm25_bound(tf, 1, 1.0).
 *
 * Determinism: the same docs added in the same order give the same bytes, and a merge of
 * segments without dropped docs gives the bytes of one build of all their docs. A field's
 * exact token count per doc is the sum of its terms' tf in that doc, so a merge that drops
 * docs recomputes sum_len and doc_count exactly from the postings and also equals a
 * direct build of the kept docs.
 *
 * Validation (ck_segment_open): length, magic, version, reserved bytes, the CRC, every
 * section in bounds and aligned with its expected length, field order, names NUL-ended,
 * every term dictionary opened (ck_termdict_open checks it fully), term counts, the number
 * of nonzero norms equal to doc_count, number pairs sorted and in range, the partition
 * table equal to the one the doc table gives. With verify, every postings list is checked
 * by ck_postings_verify, with its doc count equal to its df, docs < ND, the positions flag
 * matching the kind, and the lists tiling the postings area. */
#include "search/segment.h"

#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "search/bm25.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "segment images are read in place: little-endian hosts only"
#endif

#define VERSION CK_SEG_VERSION
#define HDR 32
#define NSEC 7
#define SECTAB (NSEC * 16)
#define BODY (HDR + SECTAB) /* 144: first section */
#define FENT 80
#define PENT 24
#define NONE UINT32_MAX
#define MAXT CK_TERMDICT_MAX_TERM

enum { SEC_FIELDS, SEC_NAMES, SEC_DPART, SEC_DOFF, SEC_DTS, SEC_PARTS, SEC_DRPOS };

static inline void put_le64(uint8_t *p, uint64_t v)
{
    ck_put_le32(p, (uint32_t)v);
    ck_put_le32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)ck_get_le32(p) | (uint64_t)ck_get_le32(p + 4) << 32;
}
static inline size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* memcmp order, shorter first on a tie (the term dictionary's order). */
static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int field_key_cmp(const uint8_t *a, size_t an, int ak, const uint8_t *b, size_t bn, int bk)
{
    int c = bytes_cmp(a, an, b, bn);
    return c ? c : (ak > bk) - (ak < bk);
}

/* Grows an array to hold need elements (doubling). */
static int grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    void **p = pp;
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *q = ck_realloc(*p, nc * elem);
    if (!q)
        return CK_ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

/* ---- norms ---- */

#define NT(b) ((b) < 16u ? (b) : (16u + (((b)-16u) & 15u)) << ((((b)-16u) >> 4) & 15u))
#define NT4(b) NT(b), NT((b) + 1u), NT((b) + 2u), NT((b) + 3u)
#define NT16(b) NT4(b), NT4((b) + 4u), NT4((b) + 8u), NT4((b) + 12u)
#define NT64(b) NT16(b), NT16((b) + 16u), NT16((b) + 32u), NT16((b) + 48u)
static const uint32_t norm_table[256] = {NT64(0u), NT64(64u), NT64(128u), NT64(192u)};

const uint32_t *ck_segment_norm_table(void)
{
    return norm_table;
}

uint8_t ck_segment_norm_encode(uint32_t len)
{
    if (len < 16)
        return (uint8_t)len;
    unsigned e = 31u - (unsigned)__builtin_clz(len) - 4u;
    if (e > 14)
        return 255;
    return (uint8_t)(16u + e * 16u + ((len >> e) - 16u));
}

/* ck_bm25_bound(tf, norm_table[norm], avgdl) for one field, memoized for small tf: finish
 * and merge compute a bound per posting, and the same (tf, norm) pairs repeat. */
#define BCACHE_TF 16
typedef struct bcache {
    double bc_avgdl;
    float bc_v[BCACHE_TF][256]; /* 0 = not computed yet (bounds are > 0) */
} bcache_t;

static void bcache_init(bcache_t *c, double avgdl)
{
    c->bc_avgdl = avgdl;
    memset(c->bc_v, 0, sizeof(c->bc_v));
}

static inline float bcache_bound(bcache_t *c, uint32_t tf, uint8_t norm)
{
    if (tf >= BCACHE_TF)
        return ck_bm25_bound(tf, norm_table[norm], c->bc_avgdl);
    float *v = &c->bc_v[tf][norm];
    if (*v == 0.0f)
        *v = ck_bm25_bound(tf, norm_table[norm], c->bc_avgdl);
    return *v;
}

/* ---- image writer (shared by the builder and the merge, so both give the same bytes) ---- */

typedef struct ofield {
    const uint8_t *of_name;
    uint32_t of_name_len;
    ck_seg_kind_t of_kind;
    uint32_t of_doc_count;
    uint32_t of_nterms;
    uint64_t of_sum_len;
    ck_wbuf_t of_td;    /* TEXT/KEYWORD: term dictionary */
    ck_wbuf_t of_pl;    /* TEXT/KEYWORD: postings area */
    uint8_t *of_norms;  /* TEXT: ndocs bytes (owned) */
    uint32_t *of_ndocs; /* NUMBER (owned) */
    double *of_nvals;
    size_t of_nnum, of_ncap, of_vcap;
} ofield_t;

static void ofield_free(ofield_t *f)
{
    ck_wbuf_free(&f->of_td);
    ck_wbuf_free(&f->of_pl);
    ck_free(f->of_norms);
    ck_free(f->of_ndocs);
    ck_free(f->of_nvals);
}

typedef struct pent {
    int32_t pe_part;
    uint32_t pe_count;
    int64_t pe_min, pe_max;
} pent_t;

/* The partition table of a doc table: sorted, one entry per partition. *out is ck_malloc'ed
 * (NULL when nd == 0). Runs of one partition are the common case, so a per-doc lookup
 * first tries the previous doc's entry, then a binary search in the sorted table. */
static int partition_table(const int32_t *part, const int64_t *off, uint32_t nd, pent_t **out,
                           uint32_t *np)
{
    pent_t *t = NULL;
    size_t cap = 0;
    uint32_t n = 0, last = 0;
    for (uint32_t d = 0; d < nd; d++) {
        int32_t p;
        int64_t o;
        memcpy(&p, part + d, 4);
        memcpy(&o, off + d, 8);
        uint32_t i;
        if (n && t[last].pe_part == p) {
            i = last;
        } else {
            uint32_t lo = 0, hi = n;
            while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (t[mid].pe_part < p)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            i = lo;
            if (i == n || t[i].pe_part != p) {
                if (grow(&t, &cap, (size_t)n + 1, sizeof *t)) {
                    ck_free(t);
                    return CK_ENOMEM;
                }
                memmove(t + i + 1, t + i, (size_t)(n - i) * sizeof *t);
                t[i] = (pent_t){p, 0, o, o};
                n++;
            }
        }
        last = i;
        t[i].pe_count++;
        if (o < t[i].pe_min)
            t[i].pe_min = o;
        if (o > t[i].pe_max)
            t[i].pe_max = o;
    }
    *out = t;
    *np = n;
    return 0;
}

/* Appends one image to out. Fields must be sorted by (name, kind) and non-empty. On error
 * out is left as it was. */
static int image_write(ck_wbuf_t *out, uint32_t nd, const int32_t *part, const int64_t *off,
                       const int64_t *ts, const uint32_t *rpos, const ofield_t *f, uint32_t nf)
{
    pent_t *pt = NULL;
    uint32_t np = 0;
    int rc = partition_table(part, off, nd, &pt, &np);
    if (rc)
        return rc;

    uint64_t sec_off[NSEC], sec_len[NSEC];
    size_t names_len = 0;
    for (uint32_t i = 0; i < nf; i++)
        names_len += f[i].of_name_len + 1u;
    sec_len[SEC_FIELDS] = (uint64_t)FENT * nf;
    sec_len[SEC_NAMES] = names_len;
    sec_len[SEC_DPART] = 4ull * nd;
    sec_len[SEC_DOFF] = 8ull * nd;
    sec_len[SEC_DTS] = 8ull * nd;
    sec_len[SEC_PARTS] = (uint64_t)PENT * np;
    sec_len[SEC_DRPOS] = 4ull * nd;
    size_t pos = BODY;
    for (int s = 0; s < NSEC; s++) {
        sec_off[s] = pos;
        pos += pad8(sec_len[s]);
    }
    /* Per field: offsets and lengths of A, B, C. */
    uint64_t(*fs)[6] = ck_malloc(sizeof *fs * (nf ? nf : 1));
    if (!fs) {
        ck_free(pt);
        return CK_ENOMEM;
    }
    for (uint32_t i = 0; i < nf; i++) {
        uint64_t len[3] = {0, 0, 0};
        if (f[i].of_kind == CK_SEG_NUMBER) {
            len[0] = 4ull * f[i].of_nnum;
            len[1] = 8ull * f[i].of_nnum;
        } else {
            len[0] = f[i].of_td.len;
            len[1] = f[i].of_pl.len;
            if (f[i].of_kind == CK_SEG_TEXT)
                len[2] = nd;
        }
        for (int k = 0; k < 3; k++) {
            fs[i][2 * k] = len[k] ? pos : 0;
            fs[i][2 * k + 1] = len[k];
            pos += pad8(len[k]);
        }
    }
    size_t total = pos;
    uint8_t *p = ck_wbuf_reserve(out, total);
    if (!p) {
        ck_free(fs);
        ck_free(pt);
        return CK_ENOMEM;
    }
    memset(p, 0, total);
    memcpy(p, "CKSG", 4);
    p[4] = VERSION;
    put_le64(p + 8, total);
    ck_put_le32(p + 16, nd);
    ck_put_le32(p + 20, nf);
    ck_put_le32(p + 24, np);
    for (int s = 0; s < NSEC; s++) {
        put_le64(p + HDR + 16 * s, sec_off[s]);
        put_le64(p + HDR + 16 * s + 8, sec_len[s]);
    }
    uint32_t noff = 0;
    for (uint32_t i = 0; i < nf; i++) {
        uint8_t *e = p + sec_off[SEC_FIELDS] + (size_t)FENT * i;
        e[0] = (uint8_t)f[i].of_kind;
        e[1] = (uint8_t)f[i].of_name_len;
        ck_put_le32(e + 4, noff);
        ck_put_le32(e + 8, f[i].of_doc_count);
        ck_put_le32(e + 12, f[i].of_nterms);
        put_le64(e + 16, f[i].of_sum_len);
        for (int k = 0; k < 6; k++)
            put_le64(e + 24 + 8 * k, fs[i][k]);
        memcpy(p + sec_off[SEC_NAMES] + noff, f[i].of_name, f[i].of_name_len);
        noff += f[i].of_name_len + 1u;
        const void *src[3];
        if (f[i].of_kind == CK_SEG_NUMBER) {
            src[0] = f[i].of_ndocs;
            src[1] = f[i].of_nvals;
            src[2] = NULL;
        } else {
            src[0] = f[i].of_td.data;
            src[1] = f[i].of_pl.data;
            src[2] = f[i].of_norms;
        }
        for (int k = 0; k < 3; k++)
            if (fs[i][2 * k + 1])
                memcpy(p + fs[i][2 * k], src[k], fs[i][2 * k + 1]);
    }
    if (nd) {
        memcpy(p + sec_off[SEC_DPART], part, 4ull * nd);
        memcpy(p + sec_off[SEC_DOFF], off, 8ull * nd);
        memcpy(p + sec_off[SEC_DTS], ts, 8ull * nd);
        memcpy(p + sec_off[SEC_DRPOS], rpos, 4ull * nd);
    }
    for (uint32_t i = 0; i < np; i++) {
        uint8_t *e = p + sec_off[SEC_PARTS] + (size_t)PENT * i;
        ck_put_le32(e, (uint32_t)pt[i].pe_part);
        ck_put_le32(e + 4, pt[i].pe_count);
        put_le64(e + 8, (uint64_t)pt[i].pe_min);
        put_le64(e + 16, (uint64_t)pt[i].pe_max);
    }
    ck_put_le32(p + 28, ck_crc32c(ck_crc32c(0, p, 28), p + 32, total - 32));
    out->len += total;
    ck_free(fs);
    ck_free(pt);
    return 0;
}

/* Sorts (doc, value) pairs that are already in doc order by value within each doc. */
static int num_cmp(double a, double b)
{
    if (a < b)
        return -1;
    if (a > b)
        return 1;
    uint64_t x, y;
    memcpy(&x, &a, 8);
    memcpy(&y, &b, 8);
    return (x > y) - (x < y);
}
static int num_qcmp(const void *a, const void *b)
{
    return num_cmp(*(const double *)a, *(const double *)b);
}
static void sort_numbers(const uint32_t *docs, double *vals, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && docs[j] == docs[i])
            j++;
        if (j - i > 16) {
            qsort(vals + i, j - i, sizeof(double), num_qcmp);
        } else {
            for (size_t k = i + 1; k < j; k++) {
                double v = vals[k];
                size_t m = k;
                while (m > i && num_cmp(vals[m - 1], v) > 0) {
                    vals[m] = vals[m - 1];
                    m--;
                }
                vals[m] = v;
            }
        }
        i = j;
    }
}

/* ---- builder ----
 *
 * Terms live in an open-addressing table keyed by (field id, term bytes). A slot is a
 * uint64: the term's 32-bit hash in the high half (compared before the term is touched,
 * and reused on rehash), the term id + 1 in the low half (0 = empty). Term bytes go into
 * one arena. Each term appends its occurrences to a byte stream in a shared pool, made of
 * slices that grow 16, 32, ... 2048 bytes; the last 4 bytes of a full slice hold the pool
 * offset of the next one. Entries are varints: a doc starts with ((doc gap) << 1 | 1)
 * (gap = doc - previous doc of the term - 1, the first doc counting from -1), then each
 * occurrence is (position delta << 1) (TEXT: from the previous stored position in the
 * doc, the first from 0; KEYWORD: always 0). tf is the number of occurrences.
 *
 * Every add first makes sure the pool, the term array, the arena and the table have room
 * for what it may need, so a failure happens before anything changes. */

#define SLICE_LEVELS 8
static const uint32_t slice_size[SLICE_LEVELS] = {16, 32, 64, 128, 256, 512, 1024, 2048};
#define SLICE_MAX 2048

typedef struct bterm {
    uint64_t t_pre; /* first 8 term bytes, zero-padded: most compares stop here */
    uint32_t t_hash;
    uint16_t t_field;
    uint8_t t_len;
    uint8_t t_level; /* size level of the current slice */
    uint32_t t_off;  /* term bytes in the arena */
    uint32_t t_df;
    uint32_t t_last_doc; /* NONE before the first doc */
    uint32_t t_last_pos; /* last stored position in t_last_doc */
    uint32_t t_head;     /* first slice */
    uint32_t t_wr;       /* next byte to write */
    uint32_t t_end;      /* end of the current slice's payload (its link follows) */
} bterm_t;

typedef struct bfield {
    uint8_t f_name[CK_SEG_FIELD_MAX + 1];
    uint32_t f_name_len;
    ck_seg_kind_t f_kind;
    uint32_t f_cur_doc; /* doc of the last add, NONE before */
    uint32_t f_last_pos;
    uint32_t f_doc_count;
    uint64_t f_sum_len;
    uint32_t *f_lens; /* TEXT: (doc, length) pairs, one per doc with tokens */
    size_t f_nlens, f_lcap;
    uint32_t *f_ndocs; /* NUMBER */
    double *f_nvals;
    size_t f_nnum, f_ncap, f_vcap;
} bfield_t;

struct ck_segbuild {
    uint32_t ndocs;
    int32_t *d_part;
    int64_t *d_off, *d_ts;
    uint32_t *d_rpos;
    size_t d_pcap, d_ocap, d_tcap, d_rcap;

    bfield_t *fields;
    uint32_t nfields;
    size_t fcap;
    uint32_t *fslots; /* field hash: field id + 1, 0 = empty */
    uint32_t fmask;
    uint32_t flast;  /* last field used + 1 */
    uint32_t flast2; /* the one used before it + 1 (docs alternate a field and _all) */

    bterm_t *terms;
    uint32_t nterms;
    size_t tcap;
    uint64_t *slots;
    uint32_t smask;
    uint8_t *arena;
    size_t alen, acap;
    uint8_t *pool;
    size_t plen, pcap;

    uint32_t *scratch; /* positions of one doc, at finish */
    size_t scap;
};

static inline uint64_t mix64(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint32_t hash_bytes(uint64_t seed, const uint8_t *s, size_t n)
{
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = mix64(h ^ v, 0xA0761D6478BD642Full);
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        v = (uint64_t)a << 32 | b;
    } else if (n) {
        v = (uint64_t)s[0] << 16 | (uint64_t)s[n >> 1] << 8 | s[n - 1];
    }
    h = mix64(h ^ v, 0xE7037ED1A0B428DBull);
    h = mix64(h, 0x8EBC6AF09C88C6E3ull);
    return (uint32_t)(h ^ (h >> 32));
}

int ck_segbuild_new(ck_segbuild_t **out)
{
    ck_segbuild_t *b = ck_calloc(1, sizeof *b);
    if (!b)
        return CK_ENOMEM;
    *out = b;
    return 0;
}

static void fields_free(ck_segbuild_t *b)
{
    for (uint32_t i = 0; i < b->nfields; i++) {
        ck_free(b->fields[i].f_lens);
        ck_free(b->fields[i].f_ndocs);
        ck_free(b->fields[i].f_nvals);
    }
}

void ck_segbuild_free(ck_segbuild_t *b)
{
    if (!b)
        return;
    fields_free(b);
    ck_free(b->fields);
    ck_free(b->fslots);
    ck_free(b->d_part);
    ck_free(b->d_off);
    ck_free(b->d_ts);
    ck_free(b->d_rpos);
    ck_free(b->terms);
    ck_free(b->slots);
    ck_free(b->arena);
    ck_free(b->pool);
    ck_free(b->scratch);
    ck_free(b);
}

/* Empties the builder, keeping the term table, arena, pool and doc columns. Field
 * buffers are freed (the next segment may have other fields). */
static void builder_reset(ck_segbuild_t *b)
{
    fields_free(b);
    b->nfields = 0;
    b->flast = 0;
    b->flast2 = 0;
    if (b->fslots)
        memset(b->fslots, 0, ((size_t)b->fmask + 1) * sizeof *b->fslots);
    if (b->slots)
        memset(b->slots, 0, ((size_t)b->smask + 1) * sizeof *b->slots);
    b->nterms = 0;
    b->alen = 0;
    b->plen = 0;
    b->ndocs = 0;
}

int ck_segbuild_doc_at(ck_segbuild_t *b, int32_t partition, int64_t offset, int64_t timestamp,
                       uint32_t record_pos)
{
    if (b->ndocs > CK_POSTINGS_MAX_DOC)
        return CK_ETOOBIG;
    size_t n = (size_t)b->ndocs + 1;
    if (grow(&b->d_part, &b->d_pcap, n, 4) || grow(&b->d_off, &b->d_ocap, n, 8) ||
        grow(&b->d_ts, &b->d_tcap, n, 8) || grow(&b->d_rpos, &b->d_rcap, n, 4))
        return CK_ENOMEM;
    b->d_part[b->ndocs] = partition;
    b->d_off[b->ndocs] = offset;
    b->d_ts[b->ndocs] = timestamp;
    b->d_rpos[b->ndocs] = record_pos;
    b->ndocs++;
    return 0;
}

int ck_segbuild_doc(ck_segbuild_t *b, int32_t partition, int64_t offset, int64_t timestamp)
{
    return ck_segbuild_doc_at(b, partition, offset, timestamp, CK_SEG_NO_POS);
}

uint32_t ck_segbuild_ndocs(const ck_segbuild_t *b)
{
    return b->ndocs;
}

size_t ck_segbuild_mem(const ck_segbuild_t *b)
{
    size_t m = sizeof *b + b->d_pcap * 4 + b->d_ocap * 8 + b->d_tcap * 8;
    m += b->fcap * sizeof(bfield_t) + ((size_t)b->fmask + 1) * 4;
    for (uint32_t i = 0; i < b->nfields; i++)
        m += b->fields[i].f_lcap * 8 + b->fields[i].f_ncap * 4 + b->fields[i].f_vcap * 8;
    m += b->tcap * sizeof(bterm_t) + (b->slots ? ((size_t)b->smask + 1) * 8 : 0);
    m += b->acap + b->pcap + b->scap * 4;
    return m;
}

/* The id of field (name, kind), registering it if new; -1 on CK_ENOMEM/CK_ETOOBIG in *rc. */
static inline int field_get(ck_segbuild_t *b, const char *name, size_t len, ck_seg_kind_t kind,
                            int *rc)
{
    if (b->flast) {
        bfield_t *f = &b->fields[b->flast - 1];
        if (f->f_kind == kind && f->f_name_len == len && memcmp(f->f_name, name, len) == 0)
            return (int)b->flast - 1;
    }
    if (b->flast2) {
        bfield_t *f = &b->fields[b->flast2 - 1];
        if (f->f_kind == kind && f->f_name_len == len && memcmp(f->f_name, name, len) == 0) {
            uint32_t x = b->flast;
            b->flast = b->flast2;
            b->flast2 = x;
            return (int)b->flast - 1;
        }
    }
    uint32_t h = hash_bytes((uint64_t)kind, (const uint8_t *)name, len);
    if (b->fslots) {
        for (uint32_t i = h & b->fmask;; i = (i + 1) & b->fmask) {
            uint32_t s = b->fslots[i];
            if (!s)
                break;
            bfield_t *f = &b->fields[s - 1];
            if (f->f_kind == kind && f->f_name_len == len && memcmp(f->f_name, name, len) == 0) {
                b->flast2 = b->flast;
                b->flast = s;
                return (int)s - 1;
            }
        }
    }
    if (b->nfields >= UINT16_MAX) {
        *rc = CK_ETOOBIG;
        return -1;
    }
    if (grow(&b->fields, &b->fcap, (size_t)b->nfields + 1, sizeof(bfield_t))) {
        *rc = CK_ENOMEM;
        return -1;
    }
    if (!b->fslots || (b->nfields + 1) * 2 > b->fmask + 1) {
        uint32_t nsz = b->fslots ? (b->fmask + 1) * 2 : 16;
        uint32_t *ns = ck_calloc(nsz, sizeof *ns);
        if (!ns) {
            *rc = CK_ENOMEM;
            return -1;
        }
        for (uint32_t id = 0; id < b->nfields; id++) {
            bfield_t *f = &b->fields[id];
            uint32_t fh = hash_bytes((uint64_t)f->f_kind, f->f_name, f->f_name_len);
            uint32_t i = fh & (nsz - 1);
            while (ns[i])
                i = (i + 1) & (nsz - 1);
            ns[i] = id + 1;
        }
        ck_free(b->fslots);
        b->fslots = ns;
        b->fmask = nsz - 1;
    }
    uint32_t id = b->nfields++;
    bfield_t *f = &b->fields[id];
    memset(f, 0, sizeof *f);
    memcpy(f->f_name, name, len);
    f->f_name_len = (uint32_t)len;
    f->f_kind = kind;
    f->f_cur_doc = NONE;
    uint32_t i = h & b->fmask;
    while (b->fslots[i])
        i = (i + 1) & b->fmask;
    b->fslots[i] = id + 1;
    b->flast2 = b->flast;
    b->flast = id + 1;
    return (int)id;
}

/* Room for one new term of tlen bytes and one entry (two varints) in any term's stream. */
static int term_reserve(ck_segbuild_t *b, size_t tlen)
{
    if (grow(&b->pool, &b->pcap, b->plen + 2 * SLICE_MAX + slice_size[0], 1) ||
        grow(&b->terms, &b->tcap, (size_t)b->nterms + 1, sizeof(bterm_t)) ||
        grow(&b->arena, &b->acap, b->alen + tlen, 1))
        return CK_ENOMEM;
    if (b->plen + 2 * SLICE_MAX + slice_size[0] > UINT32_MAX || b->alen + tlen > UINT32_MAX ||
        b->nterms >= UINT32_MAX - 1)
        return CK_ETOOBIG;
    if (!b->slots || ((size_t)b->nterms + 1) * 2 > (size_t)b->smask + 1) {
        size_t nsz = b->slots ? ((size_t)b->smask + 1) * 2 : 1024;
        if (nsz > (size_t)1 << 32)
            return CK_ETOOBIG;
        uint64_t *ns = ck_calloc(nsz, sizeof *ns);
        if (!ns)
            return CK_ENOMEM;
        uint32_t m = (uint32_t)(nsz - 1);
        if (b->slots) {
            for (size_t i = 0; i <= b->smask; i++) {
                uint64_t s = b->slots[i];
                if (!s)
                    continue;
                uint32_t j = (uint32_t)(s >> 32) & m;
                while (ns[j])
                    j = (j + 1) & m;
                ns[j] = s;
            }
        }
        ck_free(b->slots);
        b->slots = ns;
        b->smask = m;
    }
    return 0;
}

static inline uint32_t slice_alloc(ck_segbuild_t *b, unsigned level)
{
    uint32_t at = (uint32_t)b->plen;
    b->plen += slice_size[level];
    return at;
}

/* The hash and 8-byte prefix of a term of field fid. */
static inline void term_key(uint32_t fid, const uint8_t *term, size_t tlen, uint32_t *h,
                            uint64_t *pre)
{
    *h = hash_bytes(fid * 0x100000001B3ull + 1, term, tlen);
    uint64_t p = 0;
    if (tlen >= 8)
        memcpy(&p, term, 8);
    else
        for (size_t k = 0; k < tlen; k++)
            p |= (uint64_t)term[k] << (8 * k);
    *pre = p;
}

/* The slot of the term (h, pre, bytes) of field fid: its entry, or the empty slot where it
 * would go. */
static inline uint32_t term_find(const ck_segbuild_t *b, uint32_t fid, const uint8_t *term,
                                 size_t tlen, uint32_t h, uint64_t pre)
{
    uint32_t i = h & b->smask;
    for (;;) {
        uint64_t s = b->slots[i];
        if (!s)
            return i;
        if ((uint32_t)(s >> 32) == h) {
            const bterm_t *t = &b->terms[(uint32_t)s - 1];
            if (t->t_pre == pre && t->t_field == fid && t->t_len == tlen &&
                (tlen <= 8 || memcmp(b->arena + t->t_off + 8, term + 8, tlen - 8) == 0))
                return i;
        }
        i = (i + 1) & b->smask;
    }
}

static inline bterm_t *term_get(ck_segbuild_t *b, uint32_t fid, const uint8_t *term, size_t tlen,
                                uint32_t h, uint64_t pre)
{
    uint32_t i = term_find(b, fid, term, tlen, h, pre);
    if (b->slots[i])
        return &b->terms[(uint32_t)b->slots[i] - 1];
    uint32_t id = b->nterms++;
    b->slots[i] = (uint64_t)h << 32 | (id + 1);
    bterm_t *t = &b->terms[id];
    t->t_pre = pre;
    t->t_hash = h;
    t->t_field = (uint16_t)fid;
    t->t_len = (uint8_t)tlen;
    t->t_level = 0;
    t->t_off = (uint32_t)b->alen;
    if (tlen)
        memcpy(b->arena + b->alen, term, tlen);
    b->alen += tlen;
    t->t_df = 0;
    t->t_last_doc = NONE;
    t->t_last_pos = 0;
    t->t_head = t->t_wr = slice_alloc(b, 0);
    t->t_end = t->t_head + slice_size[0] - 4;
    return t;
}

static inline void slab_byte(ck_segbuild_t *b, bterm_t *t, uint8_t v)
{
    if (t->t_wr == t->t_end) {
        if (t->t_level + 1 < SLICE_LEVELS)
            t->t_level++;
        uint32_t at = slice_alloc(b, t->t_level);
        ck_put_le32(b->pool + t->t_end, at);
        t->t_wr = at;
        t->t_end = at + slice_size[t->t_level] - 4;
    }
    b->pool[t->t_wr++] = v;
}

static inline void slab_varint(ck_segbuild_t *b, bterm_t *t, uint64_t v)
{
    if (t->t_end - t->t_wr >= 10) {
        uint8_t *p = b->pool + t->t_wr;
        uint8_t *p0 = p;
        while (v >= 0x80) {
            *p++ = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        *p++ = (uint8_t)v;
        t->t_wr += (uint32_t)(p - p0);
        return;
    }
    while (v >= 0x80) {
        slab_byte(b, t, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    slab_byte(b, t, (uint8_t)v);
}

/* One occurrence of (field fid, term) in the current doc. */
/* Adds an occurrence of a term (already checked, hashed) of field fid to the current doc. */
static int add_occ_at(ck_segbuild_t *b, int fid, ck_seg_kind_t kind, const char *term,
                      size_t tlen, uint32_t pos, uint32_t h, uint64_t pre)
{
    uint32_t doc = b->ndocs - 1;
    int rc;
    bfield_t *f = &b->fields[fid];
    bool newdoc = f->f_cur_doc != doc;
    if (kind == CK_SEG_TEXT) {
        if (!newdoc && pos < f->f_last_pos)
            return CK_EINVAL;
        if (newdoc && grow(&f->f_lens, &f->f_lcap, 2 * (f->f_nlens + 1), 4))
            return CK_ENOMEM;
    }
    if ((rc = term_reserve(b, tlen)))
        return rc;
    bterm_t *t = term_get(b, (uint32_t)fid, (const uint8_t *)term, tlen, h, pre);
    if (t->t_last_doc == doc) {
        uint32_t stored = pos;
        if (kind == CK_SEG_TEXT) {
            /* The postings codec wants strictly increasing positions: a repeat of the
             * same term at one position moves to the next free one. */
            if (pos <= t->t_last_pos) {
                if (t->t_last_pos == UINT32_MAX)
                    return CK_EINVAL;
                stored = t->t_last_pos + 1;
            }
            slab_varint(b, t, (uint64_t)(stored - t->t_last_pos) << 1);
        } else {
            slab_varint(b, t, 0);
        }
        t->t_last_pos = stored;
    } else {
        slab_varint(b, t, (uint64_t)(doc - t->t_last_doc - 1) << 1 | 1);
        slab_varint(b, t, kind == CK_SEG_TEXT ? (uint64_t)pos << 1 : 0);
        t->t_last_doc = doc;
        t->t_last_pos = pos;
        t->t_df++;
    }
    if (newdoc) {
        f->f_cur_doc = doc;
        f->f_doc_count++;
        if (kind == CK_SEG_TEXT) {
            f->f_lens[2 * f->f_nlens] = doc;
            f->f_lens[2 * f->f_nlens + 1] = 0;
            f->f_nlens++;
        }
    }
    if (kind == CK_SEG_TEXT) {
        f->f_lens[2 * f->f_nlens - 1]++;
        f->f_last_pos = pos;
    }
    f->f_sum_len++;
    return 0;
}

static int add_occ(ck_segbuild_t *b, const char *field, size_t flen, ck_seg_kind_t kind,
                   const char *term, size_t tlen, uint32_t pos)
{
    if (!b->ndocs || !flen || flen > CK_SEG_FIELD_MAX || tlen > MAXT || (tlen && !term))
        return CK_EINVAL;
    int rc = 0;
    int fid = field_get(b, field, flen, kind, &rc);
    if (fid < 0)
        return rc;
    uint32_t h;
    uint64_t pre;
    term_key((uint32_t)fid, (const uint8_t *)term, tlen, &h, &pre);
    return add_occ_at(b, fid, kind, term, tlen, pos, h, pre);
}

int ck_segbuild_text(ck_segbuild_t *b, const char *field, size_t flen, const char *term,
                     size_t tlen, uint32_t pos)
{
    return add_occ(b, field, flen, CK_SEG_TEXT, term, tlen, pos);
}

/* Tokens per round of ck_segbuild_text_n: enough misses in flight, few enough to stay in
 * L1 until the round uses them. */
#define TEXT_BATCH 32

int ck_segbuild_text_n(ck_segbuild_t *b, const char *field, size_t flen,
                       const char *const *terms, const uint32_t *lens, const uint32_t *pos,
                       size_t n)
{
    if (!n)
        return 0;
    if (!b->ndocs || !flen || flen > CK_SEG_FIELD_MAX)
        return CK_EINVAL;
    int rc = 0;
    int fid = field_get(b, field, flen, CK_SEG_TEXT, &rc);
    if (fid < 0)
        return rc;
    uint32_t hs[TEXT_BATCH];
    uint64_t pres[TEXT_BATCH];
    const bterm_t *found[TEXT_BATCH];
    for (size_t at = 0; at < n; at += TEXT_BATCH) {
        size_t m = n - at < TEXT_BATCH ? n - at : TEXT_BATCH;
        const char *const *tm = terms + at;
        const uint32_t *ln = lens + at;
        bool bad = false;
        for (size_t i = 0; i < m; i++) {
            if (ln[i] > MAXT || (ln[i] && !tm[i])) {
                m = i; /* add the ones before it */
                bad = true;
                break;
            }
            term_key((uint32_t)fid, (const uint8_t *)tm[i], ln[i], &hs[i], &pres[i]);
            if (b->slots)
                __builtin_prefetch(&b->slots[hs[i] & b->smask]);
        }
        /* the slots are (mostly) in cache: fetch the term of the first slot with the same
         * hash (a hint: which term it is is checked when it is added) ... */
        for (size_t i = 0; i < m; i++) {
            found[i] = NULL;
            if (!b->slots)
                continue;
            uint32_t k = hs[i] & b->smask;
            uint64_t sl;
            while ((sl = b->slots[k]) && (uint32_t)(sl >> 32) != hs[i])
                k = (k + 1) & b->smask;
            if (sl) {
                found[i] = &b->terms[(uint32_t)sl - 1];
                __builtin_prefetch(found[i]);
            }
        }
        /* ... and the place their postings continue */
        for (size_t i = 0; i < m; i++)
            if (found[i])
                __builtin_prefetch(b->pool + found[i]->t_wr, 1);
        for (size_t i = 0; i < m; i++)
            if ((rc = add_occ_at(b, fid, CK_SEG_TEXT, tm[i], ln[i], pos[at + i], hs[i], pres[i])))
                return rc;
        if (bad)
            return CK_EINVAL;
    }
    return 0;
}

int ck_segbuild_keyword(ck_segbuild_t *b, const char *field, size_t flen, const char *term,
                        size_t tlen)
{
    return add_occ(b, field, flen, CK_SEG_KEYWORD, term, tlen, 0);
}

int ck_segbuild_number(ck_segbuild_t *b, const char *field, size_t flen, double v)
{
    if (!b->ndocs || !flen || flen > CK_SEG_FIELD_MAX || isnan(v))
        return CK_EINVAL;
    uint32_t doc = b->ndocs - 1;
    int rc = 0;
    int fid = field_get(b, field, flen, CK_SEG_NUMBER, &rc);
    if (fid < 0)
        return rc;
    bfield_t *f = &b->fields[fid];
    if (grow(&f->f_ndocs, &f->f_ncap, f->f_nnum + 1, 4) ||
        grow(&f->f_nvals, &f->f_vcap, f->f_nnum + 1, 8))
        return CK_ENOMEM;
    f->f_ndocs[f->f_nnum] = doc;
    f->f_nvals[f->f_nnum] = v;
    f->f_nnum++;
    if (f->f_cur_doc != doc) {
        f->f_cur_doc = doc;
        f->f_doc_count++;
    }
    f->f_sum_len++;
    return 0;
}

/* Reads a term's stream back (builder data: no checks needed beyond the end). */
typedef struct slab_rd {
    const uint8_t *sr_pool;
    uint32_t sr_pos, sr_end, sr_fin;
    unsigned sr_level;
} slab_rd_t;

static inline uint64_t slab_rd_varint(slab_rd_t *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (r->sr_pos == r->sr_end) {
            r->sr_pos = ck_get_le32(r->sr_pool + r->sr_end);
            if (r->sr_level + 1 < SLICE_LEVELS)
                r->sr_level++;
            r->sr_end = r->sr_pos + slice_size[r->sr_level] - 4;
        }
        uint8_t c = r->sr_pool[r->sr_pos++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
}

typedef struct sterm {
    uint64_t st_key; /* the first 8 bytes, big-endian, zero-padded: orders most pairs */
    const uint8_t *st_p;
    uint32_t st_len;
    uint32_t st_id;
} sterm_t;

static inline uint64_t sort_key(const uint8_t *p, size_t n)
{
    uint64_t k = 0;
    for (size_t i = 0; i < 8; i++)
        k = k << 8 | (i < n ? p[i] : 0);
    return k;
}

static inline bool sterm_less(const sterm_t *x, const sterm_t *y)
{
    if (x->st_key != y->st_key)
        return x->st_key < y->st_key;
    /* equal prefixes: "ab" < "ab\0" needs the lengths, longer ones the rest */
    return bytes_cmp(x->st_p, x->st_len, y->st_p, y->st_len) < 0;
}

static inline void sterm_swap(sterm_t *a, sterm_t *b)
{
    sterm_t t = *a;
    *a = *b;
    *b = t;
}

/* Sorts a[0..n) by bytes: quicksort (median of three, recursing into the smaller side)
 * with the comparison inline, insertion sort for short runs; the terms are distinct. */
static void sterm_sort(sterm_t *a, size_t n)
{
    while (n > 16) {
        size_t mid = n / 2;
        if (sterm_less(&a[mid], &a[0]))
            sterm_swap(&a[mid], &a[0]);
        if (sterm_less(&a[n - 1], &a[0]))
            sterm_swap(&a[n - 1], &a[0]);
        if (sterm_less(&a[n - 1], &a[mid]))
            sterm_swap(&a[n - 1], &a[mid]);
        sterm_t pivot = a[mid];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (sterm_less(&a[i], &pivot))
                i++;
            while (sterm_less(&pivot, &a[j]))
                j--;
            if (i >= j)
                break;
            sterm_swap(&a[i], &a[j]);
            i++;
            j--;
        }
        /* a[0..j] <= pivot <= a[j+1..n) */
        size_t left = j + 1;
        if (left < n - left) {
            sterm_sort(a, left);
            a += left;
            n -= left;
        } else {
            sterm_sort(a + left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        sterm_t x = a[i];
        size_t j = i;
        for (; j > 0 && sterm_less(&x, &a[j - 1]); j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

typedef struct ford {
    const bfield_t *fo_f;
    uint32_t fo_id;
} ford_t;

static int ford_cmp(const void *a, const void *b)
{
    const bfield_t *x = ((const ford_t *)a)->fo_f, *y = ((const ford_t *)b)->fo_f;
    return field_key_cmp(x->f_name, x->f_name_len, (int)x->f_kind, y->f_name, y->f_name_len,
                         (int)y->f_kind);
}

/* Encodes one term's stream as a postings list appended to of->of_pl. */
static int encode_term(ck_segbuild_t *b, const bterm_t *t, ck_postings_writer_t *w, bool text,
                       const uint8_t *norms, bcache_t *bc, ck_wbuf_t *pl)
{
    slab_rd_t r = {b->pool, t->t_head, t->t_head + slice_size[0] - 4, t->t_wr, 0};
    uint32_t doc = NONE, tf = 0, pos = 0;
    int rc;
    for (;;) {
        bool end = r.sr_pos == r.sr_fin;
        uint64_t v = end ? 1 : slab_rd_varint(&r);
        if (v & 1) {
            if (doc != NONE) {
                float bound = text ? bcache_bound(bc, tf, norms[doc]) : ck_bm25_bound(tf, 1, 1.0);
                rc = ck_postings_writer_add(w, doc, tf, text ? b->scratch : NULL, text ? tf : 0,
                                            bound);
                if (rc)
                    return rc;
            }
            if (end)
                break;
            doc = doc + 1 + (uint32_t)(v >> 1);
            tf = 0;
            pos = 0;
        } else {
            if (text) {
                if (tf >= b->scap && grow(&b->scratch, &b->scap, (size_t)tf + 1, 4))
                    return CK_ENOMEM;
                pos += (uint32_t)(v >> 1);
                b->scratch[tf] = pos;
            }
            tf++;
        }
    }
    return ck_postings_writer_finish(w, pl);
}

int ck_segbuild_finish(ck_segbuild_t *b, ck_wbuf_t *out)
{
    int rc = 0;
    uint32_t nf = b->nfields, nd = b->ndocs;
    ofield_t *of = ck_calloc(nf ? nf : 1, sizeof *of);
    ford_t *order = ck_malloc(sizeof *order * (nf ? nf : 1));
    uint32_t *start = ck_calloc((size_t)nf + 1, sizeof *start);
    sterm_t *st = ck_malloc(sizeof *st * (b->nterms ? b->nterms : 1));
    bcache_t *bc = ck_malloc(sizeof *bc);
    ck_postings_writer_t pw_text, pw_kw;
    ck_termdict_writer_t tw;
    ck_postings_writer_init(&pw_text, true);
    ck_postings_writer_init(&pw_kw, false);
    ck_termdict_writer_init(&tw);
    size_t out_len = out->len;
    int out_err = out->err;
    if (!of || !order || !start || !st || !bc) {
        rc = CK_ENOMEM;
        goto done;
    }
    /* Terms bucketed by field (counting sort), then each bucket sorted by bytes. */
    for (uint32_t i = 0; i < b->nterms; i++)
        start[b->terms[i].t_field + 1]++;
    for (uint32_t i = 0; i < nf; i++)
        start[i + 1] += start[i];
    for (uint32_t i = 0; i < b->nterms; i++) {
        const bterm_t *t = &b->terms[i];
        uint32_t at = start[t->t_field]++;
        st[at] =
            (sterm_t){sort_key(b->arena + t->t_off, t->t_len), b->arena + t->t_off, t->t_len, i};
    }
    for (uint32_t i = nf; i > 0; i--)
        start[i] = start[i - 1];
    start[0] = 0;

    for (uint32_t i = 0; i < nf; i++)
        order[i] = (ford_t){&b->fields[i], i};
    qsort(order, nf, sizeof *order, ford_cmp);

    uint32_t nout = 0;
    for (uint32_t k = 0; k < nf; k++) {
        const bfield_t *f = order[k].fo_f;
        uint32_t fid = order[k].fo_id;
        if (!f->f_doc_count)
            continue; /* registered by an add that then failed */
        ofield_t *o = &of[nout++];
        o->of_name = f->f_name;
        o->of_name_len = f->f_name_len;
        o->of_kind = f->f_kind;
        o->of_doc_count = f->f_doc_count;
        o->of_sum_len = f->f_sum_len;
        if (f->f_kind == CK_SEG_NUMBER) {
            o->of_ndocs = ck_malloc(f->f_nnum * 4);
            o->of_nvals = ck_malloc(f->f_nnum * 8);
            if (!o->of_ndocs || !o->of_nvals) {
                rc = CK_ENOMEM;
                goto done;
            }
            memcpy(o->of_ndocs, f->f_ndocs, f->f_nnum * 4);
            memcpy(o->of_nvals, f->f_nvals, f->f_nnum * 8);
            o->of_nnum = f->f_nnum;
            sort_numbers(o->of_ndocs, o->of_nvals, o->of_nnum);
            continue;
        }
        bool text = f->f_kind == CK_SEG_TEXT;
        double avgdl = 1.0;
        if (text) {
            o->of_norms = ck_calloc(nd ? nd : 1, 1);
            if (!o->of_norms) {
                rc = CK_ENOMEM;
                goto done;
            }
            for (size_t i = 0; i < f->f_nlens; i++)
                o->of_norms[f->f_lens[2 * i]] = ck_segment_norm_encode(f->f_lens[2 * i + 1]);
            avgdl = (double)f->f_sum_len / f->f_doc_count;
            bcache_init(bc, avgdl);
        }
        sterm_t *fs = st + start[fid];
        uint32_t n = start[fid + 1] - start[fid];
        sterm_sort(fs, n);
        for (uint32_t i = 0; i < n; i++) {
            /* the terms and their streams are read in byte order, all over memory: fetch
             * them ahead (the term 16 ahead, the stream of the one 8 ahead) */
            if (i + 16 < n)
                __builtin_prefetch(&b->terms[fs[i + 16].st_id]);
            if (i + 8 < n)
                __builtin_prefetch(b->pool + b->terms[fs[i + 8].st_id].t_head);
            const bterm_t *t = &b->terms[fs[i].st_id];
            uint64_t at = o->of_pl.len;
            rc = encode_term(b, t, text ? &pw_text : &pw_kw, text, o->of_norms, bc, &o->of_pl);
            if (!rc)
                rc = ck_termdict_writer_add(&tw, fs[i].st_p, fs[i].st_len, at, t->t_df);
            if (rc)
                goto done;
        }
        o->of_nterms = n;
        if ((rc = ck_termdict_writer_finish(&tw, &o->of_td)))
            goto done;
        if (o->of_pl.err || o->of_td.err) {
            rc = CK_ENOMEM;
            goto done;
        }
    }
    rc = image_write(out, nd, b->d_part, b->d_off, b->d_ts, b->d_rpos, of, nout);
done:
    if (rc) {
        out->len = out_len;
        out->err = out_err;
    }
    for (uint32_t i = 0; of && i < nf; i++)
        ofield_free(&of[i]);
    ck_free(of);
    ck_free(order);
    ck_free(start);
    ck_free(st);
    ck_free(bc);
    ck_postings_writer_free(&pw_text);
    ck_postings_writer_free(&pw_kw);
    ck_termdict_writer_free(&tw);
    builder_reset(b);
    return rc;
}

/* ---- reader ---- */

typedef struct rfield {
    ck_termdict_t rf_td;
    const uint8_t *rf_pl;
    uint64_t rf_pl_len;
    const uint8_t *rf_norms;
    const uint32_t *rf_ndocs;
    const double *rf_nvals;
    size_t rf_nnum;
} rfield_t;

struct ck_segment {
    const uint8_t *s_p;
    size_t s_n;
    uint32_t s_ndocs, s_nfields, s_nparts;
    const uint8_t *s_dpart, *s_doff, *s_dts, *s_parts, *s_drpos;
    ck_seg_field_t *s_fields;
    rfield_t *s_rf;
};

static bool sec_ok(uint64_t off, uint64_t len, size_t n)
{
    return off % 8 == 0 && off >= BODY && off <= n && len <= n - off;
}

/* Bytes of the postings list at value in the field's area, via its header. */
static int list_at(const ck_segment_t *s, uint32_t field, uint64_t value, const uint8_t **p,
                   size_t *len)
{
    const rfield_t *rf = &s->s_rf[field];
    if (value >= rf->rf_pl_len || rf->rf_pl_len - value < CK_POSTINGS_HEADER_SIZE)
        return CK_ECORRUPT;
    const uint8_t *h = rf->rf_pl + value;
    uint64_t cnt = ck_get_le32(h + 8);
    uint64_t nb = (cnt + CK_POSTINGS_BLOCK - 1) / CK_POSTINGS_BLOCK;
    uint64_t total = CK_POSTINGS_HEADER_SIZE + nb * CK_POSTINGS_SKIP_SIZE + ck_get_le32(h + 12) +
                     ck_get_le32(h + 16);
    if (total > rf->rf_pl_len - value)
        return CK_ECORRUPT;
    bool want_pos = s->s_fields[field].kind == CK_SEG_TEXT;
    if (((h[5] & 1) != 0) != want_pos)
        return CK_ECORRUPT;
    *p = h;
    *len = (size_t)total;
    return 0;
}

/* Full check of a field's postings (verify): every list valid, df right, docs in range,
 * lists back to back in term order filling the area. */
static int verify_postings(const ck_segment_t *s, uint32_t field)
{
    ck_termdict_iter_t it;
    ck_termdict_iter_all(&s->s_rf[field].rf_td, &it);
    uint64_t expect = 0;
    int r;
    while ((r = ck_termdict_iter_next(&it)) == 1) {
        uint64_t v = ck_termdict_iter_value(&it);
        if (v != expect)
            return CK_ECORRUPT;
        const uint8_t *p;
        size_t len;
        int rc = list_at(s, field, v, &p, &len);
        if (!rc)
            rc = ck_postings_verify(p, len);
        if (rc)
            return rc;
        ck_postings_t c;
        if ((rc = ck_postings_open(p, len, &c)))
            return rc;
        if (c.pl_nblocks == 0 || ck_postings_doc_count(&c) != ck_termdict_iter_df(&it))
            return CK_ECORRUPT;
        /* The last block's last doc is the largest doc id of the list. */
        const uint8_t *last =
            p + CK_POSTINGS_HEADER_SIZE + (size_t)(c.pl_nblocks - 1) * CK_POSTINGS_SKIP_SIZE;
        if (ck_get_le32(last) >= s->s_ndocs)
            return CK_ECORRUPT;
        expect = v + len;
    }
    if (r < 0)
        return r;
    return expect == s->s_rf[field].rf_pl_len ? 0 : CK_ECORRUPT;
}

static int open_fields(ck_segment_t *s, const uint64_t *so, const uint64_t *sl, bool verify)
{
    const uint8_t *p = s->s_p;
    size_t n = s->s_n;
    const uint8_t *names = p + so[SEC_NAMES];
    uint64_t names_len = sl[SEC_NAMES];
    for (uint32_t i = 0; i < s->s_nfields; i++) {
        const uint8_t *e = p + so[SEC_FIELDS] + (size_t)FENT * i;
        ck_seg_field_t *f = &s->s_fields[i];
        rfield_t *rf = &s->s_rf[i];
        uint8_t kind = e[0];
        uint32_t nlen = e[1], noff = ck_get_le32(e + 4);
        if (kind < CK_SEG_TEXT || kind > CK_SEG_NUMBER || nlen == 0 || e[2] || e[3] ||
            get_le64(e + 72))
            return CK_ECORRUPT;
        if ((uint64_t)noff + nlen >= names_len || names[noff + nlen] != 0)
            return CK_ECORRUPT;
        f->name = (const char *)names + noff;
        f->name_len = nlen;
        f->kind = (ck_seg_kind_t)kind;
        f->doc_count = ck_get_le32(e + 8);
        f->nterms = ck_get_le32(e + 12);
        f->sum_len = get_le64(e + 16);
        if (i > 0) {
            const ck_seg_field_t *g = &s->s_fields[i - 1];
            if (field_key_cmp((const uint8_t *)g->name, g->name_len, g->kind,
                              (const uint8_t *)f->name, f->name_len, f->kind) >= 0)
                return CK_ECORRUPT;
        }
        if (f->doc_count == 0 || f->doc_count > s->s_ndocs || f->sum_len < f->doc_count)
            return CK_ECORRUPT;
        uint64_t off[3], len[3];
        for (int k = 0; k < 3; k++) {
            off[k] = get_le64(e + 24 + 16 * k);
            len[k] = get_le64(e + 32 + 16 * k);
            if (len[k] ? !sec_ok(off[k], len[k], n) : off[k] != 0)
                return CK_ECORRUPT;
        }
        if (kind == CK_SEG_NUMBER) {
            if (f->nterms || len[2] || f->sum_len > SIZE_MAX / 8 || len[0] != 4 * f->sum_len ||
                len[1] != 8 * f->sum_len)
                return CK_ECORRUPT;
            rf->rf_ndocs = (const uint32_t *)(p + off[0]);
            rf->rf_nvals = (const double *)(p + off[1]);
            rf->rf_nnum = (size_t)f->sum_len;
            uint32_t docs = 0, prev = 0;
            double pv = 0;
            for (size_t j = 0; j < rf->rf_nnum; j++) {
                uint32_t d;
                double v;
                memcpy(&d, p + off[0] + 4 * j, 4);
                memcpy(&v, p + off[1] + 8 * j, 8);
                if (d >= s->s_ndocs || isnan(v))
                    return CK_ECORRUPT;
                if (j && (d < prev || (d == prev && num_cmp(pv, v) > 0)))
                    return CK_ECORRUPT;
                if (!j || d != prev)
                    docs++;
                prev = d;
                pv = v;
            }
            if (docs != f->doc_count)
                return CK_ECORRUPT;
            f->avgdl = 1.0;
            continue;
        }
        bool text = kind == CK_SEG_TEXT;
        if (len[0] == 0 || len[1] == 0 || len[2] != (text ? s->s_ndocs : 0))
            return CK_ECORRUPT;
        int rc = ck_termdict_open(p + off[0], (size_t)len[0], &rf->rf_td);
        if (rc)
            return rc == CK_ETRUNC ? CK_ECORRUPT : rc;
        if (ck_termdict_count(&rf->rf_td) != f->nterms || f->nterms == 0)
            return CK_ECORRUPT;
        rf->rf_pl = p + off[1];
        rf->rf_pl_len = len[1];
        if (text) {
            rf->rf_norms = p + off[2];
            uint32_t nz = 0;
            for (uint32_t d = 0; d < s->s_ndocs; d++)
                nz += rf->rf_norms[d] != 0;
            if (nz != f->doc_count)
                return CK_ECORRUPT;
            f->avgdl = (double)f->sum_len / f->doc_count;
        } else {
            f->avgdl = 1.0;
        }
        if (verify && (rc = verify_postings(s, i)))
            return rc;
    }
    return 0;
}

static int check_parts(const ck_segment_t *s)
{
    pent_t *pt = NULL;
    uint32_t np = 0;
    int rc = partition_table((const int32_t *)s->s_dpart, (const int64_t *)s->s_doff, s->s_ndocs,
                             &pt, &np);
    if (rc)
        return rc;
    rc = np == s->s_nparts ? 0 : CK_ECORRUPT;
    for (uint32_t i = 0; !rc && i < np; i++) {
        const uint8_t *e = s->s_parts + (size_t)PENT * i;
        if ((int32_t)ck_get_le32(e) != pt[i].pe_part || ck_get_le32(e + 4) != pt[i].pe_count ||
            (int64_t)get_le64(e + 8) != pt[i].pe_min || (int64_t)get_le64(e + 16) != pt[i].pe_max)
            rc = CK_ECORRUPT;
    }
    ck_free(pt);
    return rc;
}

int ck_segment_open(const uint8_t *p, size_t n, bool verify, ck_segment_t **out)
{
    if (n < BODY)
        return CK_ETRUNC;
    if (memcmp(p, "CKSG", 4) != 0 || p[4] != VERSION || p[5] || p[6] || p[7])
        return CK_ECORRUPT;
    uint64_t total = get_le64(p + 8);
    if (total > n)
        return CK_ETRUNC;
    if (total < n || total % 8)
        return CK_ECORRUPT;
    if (ck_crc32c(ck_crc32c(0, p, 28), p + 32, n - 32) != ck_get_le32(p + 28))
        return CK_ECORRUPT;
    uint32_t nd = ck_get_le32(p + 16), nf = ck_get_le32(p + 20), np = ck_get_le32(p + 24);
    uint64_t so[NSEC], sl[NSEC];
    for (int k = 0; k < NSEC; k++) {
        so[k] = get_le64(p + HDR + 16 * k);
        sl[k] = get_le64(p + HDR + 16 * k + 8);
        if (!sec_ok(so[k], sl[k], n))
            return CK_ECORRUPT;
    }
    if (sl[SEC_FIELDS] != (uint64_t)FENT * nf || sl[SEC_DPART] != 4ull * nd ||
        sl[SEC_DOFF] != 8ull * nd || sl[SEC_DTS] != 8ull * nd ||
        sl[SEC_PARTS] != (uint64_t)PENT * np || sl[SEC_DRPOS] != 4ull * nd || nd == UINT32_MAX)
        return CK_ECORRUPT;
    ck_segment_t *s = ck_calloc(1, sizeof *s);
    if (!s)
        return CK_ENOMEM;
    s->s_p = p;
    s->s_n = n;
    s->s_ndocs = nd;
    s->s_nfields = nf;
    s->s_nparts = np;
    s->s_dpart = p + so[SEC_DPART];
    s->s_doff = p + so[SEC_DOFF];
    s->s_dts = p + so[SEC_DTS];
    s->s_parts = p + so[SEC_PARTS];
    s->s_drpos = p + so[SEC_DRPOS];
    s->s_fields = ck_calloc(nf ? nf : 1, sizeof *s->s_fields);
    s->s_rf = ck_calloc(nf ? nf : 1, sizeof *s->s_rf);
    int rc = (!s->s_fields || !s->s_rf) ? CK_ENOMEM : 0;
    if (!rc)
        rc = open_fields(s, so, sl, verify);
    if (!rc)
        rc = check_parts(s);
    if (rc) {
        ck_segment_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void ck_segment_free(ck_segment_t *s)
{
    if (!s)
        return;
    ck_free(s->s_fields);
    ck_free(s->s_rf);
    ck_free(s);
}

uint32_t ck_segment_ndocs(const ck_segment_t *s)
{
    return s->s_ndocs;
}

void ck_segment_doc(const ck_segment_t *s, uint32_t doc, int32_t *partition, int64_t *offset,
                    int64_t *timestamp)
{
    if (partition)
        memcpy(partition, s->s_dpart + 4 * (size_t)doc, 4);
    if (offset)
        memcpy(offset, s->s_doff + 8 * (size_t)doc, 8);
    if (timestamp)
        memcpy(timestamp, s->s_dts + 8 * (size_t)doc, 8);
}

int ck_segment_image_version(const uint8_t *img, size_t len)
{
    if (len < 8 || memcmp(img, "CKSG", 4) != 0)
        return -1;
    return img[4];
}

uint32_t ck_segment_doc_record_pos(const ck_segment_t *s, uint32_t doc)
{
    uint32_t v;
    memcpy(&v, s->s_drpos + 4 * (size_t)doc, 4);
    return v;
}

bool ck_segment_offsets(const ck_segment_t *s, int32_t partition, int64_t *min, int64_t *max)
{
    uint32_t lo = 0, hi = s->s_nparts;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const uint8_t *e = s->s_parts + (size_t)PENT * mid;
        int32_t pm = (int32_t)ck_get_le32(e);
        if (pm == partition) {
            if (min)
                *min = (int64_t)get_le64(e + 8);
            if (max)
                *max = (int64_t)get_le64(e + 16);
            return true;
        }
        if (pm < partition)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

uint32_t ck_segment_nfields(const ck_segment_t *s)
{
    return s->s_nfields;
}

const ck_seg_field_t *ck_segment_field(const ck_segment_t *s, uint32_t i)
{
    return &s->s_fields[i];
}

int ck_segment_find_field(const ck_segment_t *s, const char *name, size_t len, ck_seg_kind_t kind)
{
    uint32_t lo = 0, hi = s->s_nfields;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const ck_seg_field_t *f = &s->s_fields[mid];
        int c = field_key_cmp((const uint8_t *)f->name, f->name_len, f->kind, (const uint8_t *)name,
                              len, kind);
        if (c == 0)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

const ck_termdict_t *ck_segment_terms(const ck_segment_t *s, uint32_t field)
{
    if (field >= s->s_nfields || s->s_fields[field].kind == CK_SEG_NUMBER)
        return NULL;
    return &s->s_rf[field].rf_td;
}

int ck_segment_postings_at(const ck_segment_t *s, uint32_t field, uint64_t value,
                           ck_postings_t *cur)
{
    if (field >= s->s_nfields || s->s_fields[field].kind == CK_SEG_NUMBER)
        return CK_ENOENT;
    const uint8_t *p;
    size_t len;
    int rc = list_at(s, field, value, &p, &len);
    return rc ? rc : ck_postings_open(p, len, cur);
}

int ck_segment_postings(const ck_segment_t *s, uint32_t field, const void *term, size_t len,
                        ck_postings_t *cur, uint32_t *df)
{
    if (field >= s->s_nfields || s->s_fields[field].kind == CK_SEG_NUMBER)
        return CK_ENOENT;
    uint64_t v;
    uint32_t d;
    int rc = ck_termdict_lookup(&s->s_rf[field].rf_td, term, len, &v, &d);
    if (rc)
        return rc;
    if ((rc = ck_segment_postings_at(s, field, v, cur)))
        return rc;
    if (df)
        *df = d;
    return 0;
}

uint32_t ck_segment_len(const ck_segment_t *s, uint32_t field, uint32_t doc)
{
    if (s->s_fields[field].kind != CK_SEG_TEXT)
        return 1;
    return norm_table[s->s_rf[field].rf_norms[doc]];
}

const uint8_t *ck_segment_norms(const ck_segment_t *s, uint32_t field)
{
    return s->s_rf[field].rf_norms;
}

size_t ck_segment_numbers(const ck_segment_t *s, uint32_t field, const uint32_t **docs,
                          const double **vals)
{
    const rfield_t *rf = &s->s_rf[field];
    if (docs)
        *docs = rf->rf_ndocs;
    if (vals)
        *vals = rf->rf_nvals;
    return rf->rf_nnum;
}

size_t ck_segment_size(const ck_segment_t *s)
{
    return s->s_n;
}

/* ---- merge ---- */

typedef struct mref {
    const ck_seg_field_t *mr_f;
    uint32_t mr_seg;
    uint32_t mr_idx;
} mref_t;

static int mref_cmp(const void *a, const void *b)
{
    const mref_t *x = a, *y = b;
    int c = field_key_cmp((const uint8_t *)x->mr_f->name, x->mr_f->name_len, x->mr_f->kind,
                          (const uint8_t *)y->mr_f->name, y->mr_f->name_len, y->mr_f->kind);
    if (c)
        return c;
    return (x->mr_seg > y->mr_seg) - (x->mr_seg < y->mr_seg);
}

typedef struct mctx {
    ck_segment_t *const *m_segs;
    uint32_t **m_map; /* per segment: new doc id or NONE */
    bool *m_dropped;  /* per segment: some doc dropped */
    uint32_t m_nd;
    uint32_t *m_pos;
    size_t m_pcap;
    ck_postings_writer_t m_pw_text, m_pw_kw;
    ck_termdict_writer_t m_tw;
} mctx_t;

/* doc_count and sum_len of one input field over its kept docs. */
static int field_stats(mctx_t *m, const mref_t *r, uint32_t *dc, uint64_t *sum)
{
    const ck_segment_t *s = m->m_segs[r->mr_seg];
    if (!m->m_dropped[r->mr_seg]) {
        *dc += r->mr_f->doc_count;
        *sum += r->mr_f->sum_len;
        return 0;
    }
    /* A doc's field length is the sum of its terms' tf there. */
    uint64_t *len = ck_calloc(s->s_ndocs ? s->s_ndocs : 1, sizeof *len);
    if (!len)
        return CK_ENOMEM;
    ck_termdict_iter_t it;
    ck_termdict_iter_all(&s->s_rf[r->mr_idx].rf_td, &it);
    int rc;
    while ((rc = ck_termdict_iter_next(&it)) == 1) {
        ck_postings_t c;
        if ((rc = ck_segment_postings_at(s, r->mr_idx, ck_termdict_iter_value(&it), &c)))
            break;
        for (uint32_t d = ck_postings_doc(&c); d != CK_POSTINGS_END; d = ck_postings_next(&c)) {
            if (d >= s->s_ndocs) {
                c.pl_err = CK_ECORRUPT;
                break;
            }
            len[d] += ck_postings_freq(&c);
        }
        if ((rc = ck_postings_err(&c)))
            break;
    }
    if (!rc)
        for (uint32_t d = 0; d < s->s_ndocs; d++)
            if (len[d] && m->m_map[r->mr_seg][d] != NONE) {
                (*dc)++;
                *sum += len[d];
            }
    ck_free(len);
    return rc < 0 ? rc : 0;
}

static int merge_terms(mctx_t *m, const mref_t *g, uint32_t k, ofield_t *o, double avgdl)
{
    bool text = o->of_kind == CK_SEG_TEXT;
    ck_postings_writer_t *w = text ? &m->m_pw_text : &m->m_pw_kw;
    ck_termdict_iter_t *it = ck_malloc(sizeof *it * k);
    bool *live = ck_malloc(k);
    bcache_t *bc = text ? ck_malloc(sizeof *bc) : NULL;
    int rc = 0;
    if (bc)
        bcache_init(bc, avgdl);
    if (!it || !live || (text && !bc)) {
        rc = CK_ENOMEM;
        goto out;
    }
    for (uint32_t j = 0; j < k; j++) {
        ck_termdict_iter_all(&m->m_segs[g[j].mr_seg]->s_rf[g[j].mr_idx].rf_td, &it[j]);
        int r = ck_termdict_iter_next(&it[j]);
        if (r < 0) {
            rc = r;
            goto out;
        }
        live[j] = r == 1;
    }
    for (;;) {
        const uint8_t *mt = NULL;
        size_t ml = 0;
        for (uint32_t j = 0; j < k; j++) {
            if (!live[j])
                continue;
            size_t l;
            const uint8_t *t = ck_termdict_iter_term(&it[j], &l);
            if (!mt || bytes_cmp(t, l, mt, ml) < 0) {
                mt = t;
                ml = l;
            }
        }
        if (!mt)
            break;
        uint8_t term[MAXT];
        memcpy(term, mt, ml);
        for (uint32_t j = 0; j < k; j++) {
            if (!live[j])
                continue;
            size_t l;
            const uint8_t *t = ck_termdict_iter_term(&it[j], &l);
            if (bytes_cmp(t, l, term, ml) != 0)
                continue;
            const ck_segment_t *s = m->m_segs[g[j].mr_seg];
            const uint32_t *map = m->m_map[g[j].mr_seg];
            ck_postings_t c;
            if ((rc = ck_segment_postings_at(s, g[j].mr_idx, ck_termdict_iter_value(&it[j]), &c)))
                goto out;
            for (uint32_t d = ck_postings_doc(&c); d != CK_POSTINGS_END; d = ck_postings_next(&c)) {
                if (d >= s->s_ndocs) {
                    rc = CK_ECORRUPT;
                    goto out;
                }
                uint32_t nd = map[d];
                if (nd == NONE)
                    continue;
                uint32_t tf = ck_postings_freq(&c);
                float bound;
                if (text) {
                    if (grow(&m->m_pos, &m->m_pcap, tf, 4)) {
                        rc = CK_ENOMEM;
                        goto out;
                    }
                    int np = ck_postings_positions(&c, m->m_pos, tf);
                    if (np < 0) {
                        rc = np;
                        goto out;
                    }
                    bound = bcache_bound(bc, tf, o->of_norms[nd]);
                } else {
                    bound = ck_bm25_bound(tf, 1, 1.0);
                }
                if ((rc = ck_postings_writer_add(w, nd, tf, text ? m->m_pos : NULL, text ? tf : 0,
                                                 bound)))
                    goto out;
            }
            if ((rc = ck_postings_err(&c)))
                goto out;
            int r = ck_termdict_iter_next(&it[j]);
            if (r < 0) {
                rc = r;
                goto out;
            }
            live[j] = r == 1;
        }
        uint32_t df = w->pw_count;
        if (df == 0)
            continue; /* every doc of the term dropped */
        uint64_t at = o->of_pl.len;
        if ((rc = ck_postings_writer_finish(w, &o->of_pl)) ||
            (rc = ck_termdict_writer_add(&m->m_tw, term, ml, at, df)))
            goto out;
        o->of_nterms++;
    }
    rc = ck_termdict_writer_finish(&m->m_tw, &o->of_td);
    if (!rc && (o->of_pl.err || o->of_td.err))
        rc = CK_ENOMEM;
out:
    if (rc) {
        /* Leave the shared writers clean for nothing else: the merge is failing anyway. */
        ck_wbuf_t junk = CK_WBUF_INIT;
        if (w->pw_count)
            ck_postings_writer_finish(w, &junk);
        ck_termdict_writer_finish(&m->m_tw, &junk);
        ck_wbuf_free(&junk);
    }
    ck_free(it);
    ck_free(live);
    ck_free(bc);
    return rc;
}

/* Builds the merged field of the group g[0..k) (same name and kind, increasing segment). */
static int merge_field(mctx_t *m, const mref_t *g, uint32_t k, ofield_t *o)
{
    o->of_name = (const uint8_t *)g[0].mr_f->name;
    o->of_name_len = (uint32_t)g[0].mr_f->name_len;
    o->of_kind = g[0].mr_f->kind;
    if (o->of_kind == CK_SEG_NUMBER) {
        for (uint32_t j = 0; j < k; j++) {
            const ck_segment_t *s = m->m_segs[g[j].mr_seg];
            const rfield_t *rf = &s->s_rf[g[j].mr_idx];
            const uint32_t *map = m->m_map[g[j].mr_seg];
            uint32_t prev = NONE;
            for (size_t i = 0; i < rf->rf_nnum; i++) {
                uint32_t d;
                double v;
                memcpy(&d, (const uint8_t *)rf->rf_ndocs + 4 * i, 4);
                memcpy(&v, (const uint8_t *)rf->rf_nvals + 8 * i, 8);
                if (map[d] == NONE)
                    continue;
                if (grow(&o->of_ndocs, &o->of_ncap, o->of_nnum + 1, 4) ||
                    grow(&o->of_nvals, &o->of_vcap, o->of_nnum + 1, 8))
                    return CK_ENOMEM;
                o->of_ndocs[o->of_nnum] = map[d];
                o->of_nvals[o->of_nnum] = v;
                o->of_nnum++;
                if (map[d] != prev)
                    o->of_doc_count++;
                prev = map[d];
            }
        }
        o->of_sum_len = o->of_nnum;
        return 0;
    }
    int rc;
    for (uint32_t j = 0; j < k; j++)
        if ((rc = field_stats(m, &g[j], &o->of_doc_count, &o->of_sum_len)))
            return rc;
    if (!o->of_doc_count)
        return 0;
    double avgdl = 1.0;
    if (o->of_kind == CK_SEG_TEXT) {
        o->of_norms = ck_calloc(m->m_nd ? m->m_nd : 1, 1);
        if (!o->of_norms)
            return CK_ENOMEM;
        for (uint32_t j = 0; j < k; j++) {
            const ck_segment_t *s = m->m_segs[g[j].mr_seg];
            const uint8_t *nr = s->s_rf[g[j].mr_idx].rf_norms;
            const uint32_t *map = m->m_map[g[j].mr_seg];
            for (uint32_t d = 0; d < s->s_ndocs; d++)
                if (map[d] != NONE)
                    o->of_norms[map[d]] = nr[d];
        }
        avgdl = (double)o->of_sum_len / o->of_doc_count;
    }
    return merge_terms(m, g, k, o, avgdl);
}

int ck_segment_merge(ck_segment_t *const *segs, size_t n,
                     bool (*keep)(void *ctx, size_t seg, uint32_t doc), void *ctx, ck_wbuf_t *out)
{
    mctx_t m;
    memset(&m, 0, sizeof m);
    m.m_segs = segs;
    ck_postings_writer_init(&m.m_pw_text, true);
    ck_postings_writer_init(&m.m_pw_kw, false);
    ck_termdict_writer_init(&m.m_tw);
    size_t out_len = out->len;
    int out_err = out->err;
    int32_t *part = NULL;
    int64_t *off = NULL, *ts = NULL;
    uint32_t *rpos = NULL;
    mref_t *refs = NULL;
    ofield_t *of = NULL;
    size_t nrefs = 0, nof = 0;
    int rc = 0;

    m.m_map = ck_calloc(n ? n : 1, sizeof *m.m_map);
    m.m_dropped = ck_calloc(n ? n : 1, sizeof *m.m_dropped);
    if (!m.m_map || !m.m_dropped) {
        rc = CK_ENOMEM;
        goto done;
    }
    uint64_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t sn = segs[i]->s_ndocs;
        if (!(m.m_map[i] = ck_malloc(sizeof(uint32_t) * (sn ? sn : 1)))) {
            rc = CK_ENOMEM;
            goto done;
        }
        for (uint32_t d = 0; d < sn; d++) {
            if (keep && !keep(ctx, i, d)) {
                m.m_map[i][d] = NONE;
                m.m_dropped[i] = true;
            } else {
                if (nd > CK_POSTINGS_MAX_DOC) {
                    rc = CK_ETOOBIG;
                    goto done;
                }
                m.m_map[i][d] = (uint32_t)nd++;
            }
        }
        nrefs += segs[i]->s_nfields;
    }
    m.m_nd = (uint32_t)nd;
    part = ck_malloc(4 * (nd ? nd : 1));
    off = ck_malloc(8 * (nd ? nd : 1));
    ts = ck_malloc(8 * (nd ? nd : 1));
    rpos = ck_malloc(4 * (nd ? nd : 1));
    refs = ck_malloc(sizeof *refs * (nrefs ? nrefs : 1));
    of = ck_calloc(nrefs ? nrefs : 1, sizeof *of);
    if (!part || !off || !ts || !rpos || !refs || !of) {
        rc = CK_ENOMEM;
        goto done;
    }
    size_t r = 0;
    for (size_t i = 0; i < n; i++) {
        const ck_segment_t *s = segs[i];
        for (uint32_t d = 0; d < s->s_ndocs; d++) {
            uint32_t x = m.m_map[i][d];
            if (x != NONE) {
                ck_segment_doc(s, d, &part[x], &off[x], &ts[x]);
                rpos[x] = ck_segment_doc_record_pos(s, d);
            }
        }
        for (uint32_t f = 0; f < s->s_nfields; f++)
            refs[r++] = (mref_t){&s->s_fields[f], (uint32_t)i, f};
    }
    qsort(refs, nrefs, sizeof *refs, mref_cmp);
    for (size_t i = 0; i < nrefs;) {
        size_t j = i + 1;
        while (j < nrefs &&
               field_key_cmp((const uint8_t *)refs[i].mr_f->name, refs[i].mr_f->name_len,
                             refs[i].mr_f->kind, (const uint8_t *)refs[j].mr_f->name,
                             refs[j].mr_f->name_len, refs[j].mr_f->kind) == 0)
            j++;
        ofield_t *o = &of[nof];
        if ((rc = merge_field(&m, refs + i, (uint32_t)(j - i), o)))
            goto done;
        if (o->of_doc_count)
            nof++;
        else
            ofield_free(o), memset(o, 0, sizeof *o);
        i = j;
    }
    rc = image_write(out, m.m_nd, part, off, ts, rpos, of, (uint32_t)nof);
done:
    if (rc) {
        out->len = out_len;
        out->err = out_err;
    }
    for (size_t i = 0; of && i < nrefs; i++)
        ofield_free(&of[i]);
    for (size_t i = 0; m.m_map && i < n; i++)
        ck_free(m.m_map[i]);
    ck_free(m.m_map);
    ck_free(m.m_dropped);
    ck_free(m.m_pos);
    ck_free(part);
    ck_free(off);
    ck_free(ts);
    ck_free(rpos);
    ck_free(refs);
    ck_free(of);
    ck_postings_writer_free(&m.m_pw_text);
    ck_postings_writer_free(&m.m_pw_kw);
    ck_termdict_writer_free(&m.m_tw);
    return rc;
}
