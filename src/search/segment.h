/* One immutable segment of a search index, as one contiguous byte image (a file on disk,
 * mmap'ed, or a buffer in memory for a freshly refreshed segment).
 *
 * A segment holds documents numbered 0..ndocs-1 (dense doc ids, in the order they were
 * added). Per doc: the record it came from (partition, offset, timestamp). Per field:
 *
 *  - CK_SEG_TEXT: analyzed terms with frequencies and positions, one postings list per
 *    term, and norms (the field length of each doc, quantized to one byte);
 *  - CK_SEG_KEYWORD: exact terms (a string value unchanged, "true"/"false"), postings
 *    with frequencies but no positions and no norms;
 *  - CK_SEG_NUMBER: doc values, (doc, double) pairs sorted by doc then value; a doc may
 *    have several values (an array) or none.
 *
 * The same field name may exist with several kinds (a date string is TEXT and NUMBER).
 * The byte layout is written at the top of segment.c and in docs/SEARCH_FORMAT.md.
 *
 * Scoring data: postings carry per-doc bounds ck_bm25_bound(tf, dl, avgdl) computed with
 * the decoded (quantized) length dl of ck_segment_len() and the field's average length in
 * this segment (ck_seg_field_t.avgdl); keyword postings use dl = 1, avgdl = 1.
 *
 * Thread: a builder belongs to one thread. An opened segment is read-only: any number of
 * threads may read it concurrently. */
#ifndef CK_SEARCH_SEGMENT_H
#define CK_SEARCH_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "search/postings.h"
#include "search/termdict.h"

typedef enum {
    CK_SEG_TEXT = 1,
    CK_SEG_KEYWORD = 2,
    CK_SEG_NUMBER = 3,
} ck_seg_kind_t;

#define CK_SEG_FIELD_MAX 255 /* bytes in a field name */

/* ---- builder ---- */

typedef struct ck_segbuild ck_segbuild_t;

int ck_segbuild_new(ck_segbuild_t **out);
void ck_segbuild_free(ck_segbuild_t *b);

/* A doc whose record position is unknown. */
#define CK_SEG_NO_POS UINT32_MAX

/* Starts the next doc (ids 0, 1, 2, ... in call order); the previous doc ends here. */
int ck_segbuild_doc(ck_segbuild_t *b, int32_t partition, int64_t offset, int64_t timestamp);
/* The same, with where the doc's record starts in its batch (ck_record_t.pos of an
 * uncompressed batch; CK_SEG_NO_POS if unknown). */
int ck_segbuild_doc_at(ck_segbuild_t *b, int32_t partition, int64_t offset, int64_t timestamp,
                       uint32_t record_pos);

/* Adds one token of a text field to the current doc. Within one doc and field, positions
 * must not decrease (equal positions are allowed: tf counts both; when the same term
 * repeats at one position, the repeat is stored at the term's previous stored position
 * + 1, since postings positions strictly increase; CK_EINVAL if that would pass
 * UINT32_MAX). A failed add changes nothing (CK_ETOOBIG: over 65535 fields or 4 GiB of
 * builder data). The field length (dl)
 * of the doc is the number of tokens added to the field. Errors: CK_EINVAL (no current
 * doc, empty or too long field name, term longer than CK_TERMDICT_MAX_TERM, position
 * going back), CK_ENOMEM. */
int ck_segbuild_text(ck_segbuild_t *b, const char *field, size_t flen, const char *term,
                     size_t tlen, uint32_t pos);
/* Adds one exact term of a keyword field (tf counts repeats within the doc). */
/* The same as n ck_segbuild_text() calls for terms[i][0..lens[i]) at positions pos[i],
 * in order, but faster: the hash-table and term lookups of a few dozen tokens are started
 * together (prefetched) instead of one cache miss after another. On an error, the tokens
 * before the failing one were added. */
int ck_segbuild_text_n(ck_segbuild_t *b, const char *field, size_t flen,
                       const char *const *terms, const uint32_t *lens, const uint32_t *pos,
                       size_t n);
int ck_segbuild_keyword(ck_segbuild_t *b, const char *field, size_t flen, const char *term,
                        size_t tlen);
/* Adds one value of a numeric field (not NaN). */
int ck_segbuild_number(ck_segbuild_t *b, const char *field, size_t flen, double v);

/* Docs added since the last finish, and an estimate of the builder's memory in bytes. */
uint32_t ck_segbuild_ndocs(const ck_segbuild_t *b);
size_t ck_segbuild_mem(const ck_segbuild_t *b);

/* Encodes the docs added since the last finish (possibly none) into one segment image
 * appended to out, and resets the builder (keeping its buffers). On error nothing is
 * appended; the builder is reset anyway. */
int ck_segbuild_finish(ck_segbuild_t *b, ck_wbuf_t *out);

/* ---- reader ---- */

typedef struct ck_segment ck_segment_t;

typedef struct ck_seg_field {
    const char *name; /* NUL-terminated, inside the reader */
    size_t name_len;
    ck_seg_kind_t kind;
    uint32_t doc_count; /* docs with at least one token / term / value */
    uint64_t sum_len;   /* TEXT: total tokens; KEYWORD: total terms; NUMBER: values */
    double avgdl;       /* TEXT: sum_len / doc_count (0 if no docs); else 1 */
    uint32_t nterms;    /* TEXT/KEYWORD: distinct terms; NUMBER: 0 */
} ck_seg_field_t;

/* Opens an image of n bytes (exactly one segment), which must stay alive and unchanged
 * while the segment is open. Validates the header, the section table, the checksum of the
 * whole image, every term dictionary and the doc table; with verify, also every postings
 * list (ck_postings_verify). Errors: CK_ETRUNC, CK_ECORRUPT, CK_ENOMEM. */
int ck_segment_open(const uint8_t *p, size_t n, bool verify, ck_segment_t **out);
void ck_segment_free(ck_segment_t *s);

uint32_t ck_segment_ndocs(const ck_segment_t *s);
/* The record of doc (doc < ndocs). */
void ck_segment_doc(const ck_segment_t *s, uint32_t doc, int32_t *partition, int64_t *offset,
                    int64_t *timestamp);
/* The format version an image says it has (the current one is CK_SEG_VERSION), or -1
 * if it does not start like a segment image. Does not validate anything else. */
#define CK_SEG_VERSION 2
int ck_segment_image_version(const uint8_t *img, size_t len);

/* The doc's record position in its batch, CK_SEG_NO_POS if unknown. */
uint32_t ck_segment_doc_record_pos(const ck_segment_t *s, uint32_t doc);
/* Smallest and largest offset of a partition's docs in this segment; false if none. */
bool ck_segment_offsets(const ck_segment_t *s, int32_t partition, int64_t *min, int64_t *max);

/* Fields, sorted by (name, kind); 0 <= i < nfields. */
uint32_t ck_segment_nfields(const ck_segment_t *s);
const ck_seg_field_t *ck_segment_field(const ck_segment_t *s, uint32_t i);
/* The field index of (name, kind), or -1. */
int ck_segment_find_field(const ck_segment_t *s, const char *name, size_t len, ck_seg_kind_t kind);

/* TEXT/KEYWORD: the field's term dictionary (values are postings locators for
 * ck_segment_postings_at). */
const ck_termdict_t *ck_segment_terms(const ck_segment_t *s, uint32_t field);
/* Opens a cursor on the postings of term in field: 0 (with *df if df != NULL),
 * CK_ENOENT (no such term or not a TEXT/KEYWORD field), CK_ECORRUPT/CK_ETRUNC. */
int ck_segment_postings(const ck_segment_t *s, uint32_t field, const void *term, size_t len,
                        ck_postings_t *cur, uint32_t *df);
/* Same from a term dictionary value (e.g. while iterating a prefix). Without verify at
 * open, a list's docs are not checked against ndocs: a caller indexing per-doc arrays
 * with them trusts the image's CRC. */
int ck_segment_postings_at(const ck_segment_t *s, uint32_t field, uint64_t value,
                           ck_postings_t *cur);

/* TEXT: the doc's field length as scoring uses it (the decoded quantized norm; 0 if the
 * doc has no token in the field). KEYWORD: 1. */
uint32_t ck_segment_len(const ck_segment_t *s, uint32_t field, uint32_t doc);
/* TEXT: the raw norm bytes (ndocs of them) and the 256-entry decode table. */
const uint8_t *ck_segment_norms(const ck_segment_t *s, uint32_t field);
const uint32_t *ck_segment_norm_table(void);
/* Quantizes a field length to a norm byte (monotone; exact up to 24, ~1/16 relative
 * error above); ck_segment_norm_table()[ck_segment_norm_encode(x)] <= x. */
uint8_t ck_segment_norm_encode(uint32_t len);

/* NUMBER: the (doc, value) pairs, sorted by doc then value (then -0 after +0); returns
 * their count. The arrays point into the image (8-byte aligned when the image is; images
 * are little-endian and read in place). */
size_t ck_segment_numbers(const ck_segment_t *s, uint32_t field, const uint32_t **docs,
                          const double **vals);

/* Bytes of the image. */
size_t ck_segment_size(const ck_segment_t *s);

/* ---- merge ---- */

/* Writes one segment holding the docs of segs[0..n) in order (segment 0's docs first,
 * each segment's in its own order), without those for which keep(ctx, i, doc) returns
 * false (keep may be NULL: keep all). Norms, postings (bounds recomputed with the merged
 * averages), positions and numbers carry over. Appends the image to out; on error
 * nothing is appended. */
int ck_segment_merge(ck_segment_t *const *segs, size_t n,
                     bool (*keep)(void *ctx, size_t seg, uint32_t doc), void *ctx, ck_wbuf_t *out);

#endif
