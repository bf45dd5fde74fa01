/* One term's postings list: increasing doc ids, a term frequency per doc, optional
 * positions, and a skip table with per-block score maxima for block-max WAND.
 *
 * The byte layout is written at the top of postings.c and in docs/SEARCH_FORMAT.md.
 *
 * Writer: ck_postings_writer_init(), ck_postings_writer_add() once per doc in increasing
 * doc order, ck_postings_writer_finish() appends the encoded list to a ck_wbuf_t and
 * resets the writer for the next term (its buffers are kept), ck_postings_writer_free().
 *
 * Reader: a cursor over encoded bytes that the caller keeps alive and unchanged for the
 * cursor's lifetime (typically an mmap'ed segment). Nothing allocates. The cursor is a
 * plain struct so it lives on the stack; its fields are private.
 *
 * Errors on the reader: ck_postings_open() validates the header and the skip table
 * (checksum and structure) and decodes the first block. Blocks decoded later are bounds-
 * checked and validated (doc ids increasing and equal to the skip table's last doc, exact
 * byte lengths); a bad block makes the cursor sticky-failed: it reports the end
 * (CK_POSTINGS_END) and ck_postings_err() returns CK_ECORRUPT or CK_ETRUNC. Test it once
 * after a query. Block contents are covered by a checksum too, but only
 * ck_postings_verify() reads it (segment load, merge, repair), so a query does not hash
 * bytes it skips.
 *
 * Thread: none; a writer or cursor belongs to one thread at a time. Many cursors may read
 * the same bytes concurrently. */
#ifndef CK_SEARCH_POSTINGS_H
#define CK_SEARCH_POSTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"

#define CK_POSTINGS_BLOCK 128      /* docs per block */
#define CK_POSTINGS_END UINT32_MAX /* doc() when exhausted; never a valid doc id */
#define CK_POSTINGS_MAX_DOC (UINT32_MAX - 1)
#define CK_POSTINGS_HEADER_SIZE 32
#define CK_POSTINGS_SKIP_SIZE 16

/* ---- writer ---- */

typedef struct ck_postings_writer {
    bool pw_positions; /* lists carry positions */
    int pw_err;        /* sticky CK_ENOMEM */
    uint32_t pw_count; /* docs added to the current list */
    uint32_t pw_last;  /* last doc added (valid when pw_count > 0) */
    uint32_t pw_prev;  /* last doc of the previous block; UINT32_MAX before the first */
    uint32_t pw_n;     /* docs in the pending block */
    float pw_bmax;     /* max bound in the pending block */
    float pw_max;      /* max bound over the list */
    uint32_t pw_docs[CK_POSTINGS_BLOCK];
    uint32_t pw_freqs[CK_POSTINGS_BLOCK];
    uint32_t pw_pos_off; /* positions stream offset of the pending block */
    ck_wbuf_t pw_skips;  /* skip table */
    ck_wbuf_t pw_data;   /* doc/freq blocks */
    ck_wbuf_t pw_pos;    /* positions stream */
} ck_postings_writer_t;

/* Prepares an empty writer; with_positions fixes whether every add() passes positions. */
void ck_postings_writer_init(ck_postings_writer_t *w, bool with_positions);

/* Adds one doc. doc must be greater than the previous doc and at most
 * CK_POSTINGS_MAX_DOC; tf >= 1. With positions: npos == tf and pos strictly increasing
 * (pos is read only during the call); without: pos must be NULL and npos 0.
 * bound is the caller's upper bound of this doc's score contribution (e.g. BM25 with
 * this tf and field length), not NaN; the list keeps the max per block and overall.
 * Errors: CK_EINVAL (contract broken; nothing added), CK_ENOMEM (sticky: the writer then
 * refuses work until finish() or free()). */
int ck_postings_writer_add(ck_postings_writer_t *w, uint32_t doc, uint32_t tf, const uint32_t *pos,
                           uint32_t npos, float bound);

/* Appends the encoded list to out and resets the writer for the next list (also after an
 * error). Errors: CK_EINVAL (no docs added), CK_ENOMEM (writer or out), CK_ETOOBIG
 * (a stream over 4 GiB); on error nothing is appended to out. */
int ck_postings_writer_finish(ck_postings_writer_t *w, ck_wbuf_t *out);

/* Frees the writer's buffers; the writer may be init()ed again. */
void ck_postings_writer_free(ck_postings_writer_t *w);

/* ---- reader ---- */

typedef struct ck_postings {
    const uint8_t *pl_skips; /* skip table */
    const uint8_t *pl_data;  /* doc/freq blocks */
    const uint8_t *pl_pos;   /* positions stream (NULL without positions) */
    uint32_t pl_count;       /* docs in the list */
    uint32_t pl_nblocks;
    uint32_t pl_data_len;
    uint32_t pl_pos_len;
    float pl_max;      /* max bound over the list */
    int pl_err;        /* 0 or the first CK_E* error (sticky) */
    uint32_t pl_blk;   /* decoded block; pl_nblocks when exhausted */
    uint32_t pl_sblk;  /* shallow block (>= pl_blk) that block_max() etc. describe */
    uint32_t pl_i;     /* index of the current doc in the block */
    uint32_t pl_n;     /* docs in the decoded block */
    uint32_t pl_doc;   /* current doc or CK_POSTINGS_END */
    uint32_t pl_pos_i; /* lazy positions: pl_pos_p points at doc pl_pos_i's positions */
    const uint8_t *pl_pos_p;
    uint32_t pl_docs[CK_POSTINGS_BLOCK];
    uint32_t pl_freqs[CK_POSTINGS_BLOCK];
} ck_postings_t;

/* Opens a cursor on the n bytes of one encoded list (exactly its length) and moves it to
 * the first doc. The bytes must outlive the cursor. Errors: CK_ETRUNC (n shorter than the
 * list says), CK_ECORRUPT (bad magic, unknown version or flags, checksum mismatch over
 * header and skip table, inconsistent skip table, trailing bytes, a bad first block). */
int ck_postings_open(const uint8_t *p, size_t n, ck_postings_t *c);

/* Checks everything, including the checksum over the blocks and positions, and decodes
 * the whole list. O(size). 0, CK_ETRUNC or CK_ECORRUPT. */
int ck_postings_verify(const uint8_t *p, size_t n);

/* Moves to the next doc and returns it, or CK_POSTINGS_END (exhausted, or failed: see
 * ck_postings_err()). Decodes the next block when the current one is done. */
uint32_t ck_postings_next(ck_postings_t *c);

/* Moves to the first doc >= target and returns it (the current doc if it already is), or
 * CK_POSTINGS_END. Never moves backwards. Uses the skip table: only the block that holds
 * the result is decoded. next() and advance() bring the shallow pointer back to the
 * current doc's block, unless advance() does not move. */
uint32_t ck_postings_advance(ck_postings_t *c, uint32_t target);

/* Moves only the shallow pointer, to the first block, not before the current doc's
 * block, whose last doc is >= target (past the last block if none), without decoding:
 * the block where advance(target) would land. block_max()/block_last_doc() then describe
 * it; the current doc is unchanged. For block-max WAND. */
void ck_postings_shallow_advance(ck_postings_t *c, uint32_t target);

/* Positions of the current doc, decoded lazily into out (cap entries). Returns their
 * number (== freq()), or CK_EINVAL (no current doc or a list without positions),
 * CK_ERANGE (cap < freq(), or freq() > INT32_MAX; nothing decoded), CK_ECORRUPT (also
 * made sticky). */
int ck_postings_positions(ck_postings_t *c, uint32_t *out, uint32_t cap);

static inline uint32_t ck_postings_doc(const ck_postings_t *c)
{
    return c->pl_doc;
}
/* Term frequency of the current doc; 0 when exhausted. */
static inline uint32_t ck_postings_freq(const ck_postings_t *c)
{
    return c->pl_doc == CK_POSTINGS_END ? 0 : c->pl_freqs[c->pl_i];
}
static inline uint32_t ck_postings_doc_count(const ck_postings_t *c)
{
    return c->pl_count;
}
static inline float ck_postings_max_score(const ck_postings_t *c)
{
    return c->pl_max;
}
static inline bool ck_postings_has_positions(const ck_postings_t *c)
{
    return c->pl_pos;
}
static inline int ck_postings_err(const ck_postings_t *c)
{
    return c->pl_err;
}

/* The shallow block: the current doc's block unless shallow_advance() moved it on. */
/* Last doc of the shallow block, or CK_POSTINGS_END past the last block. */
static inline uint32_t ck_postings_block_last_doc(const ck_postings_t *c)
{
    if (c->pl_sblk >= c->pl_nblocks)
        return CK_POSTINGS_END;
    const uint8_t *s = c->pl_skips + (size_t)c->pl_sblk * CK_POSTINGS_SKIP_SIZE;
    return (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24;
}
/* Max score bound of the shallow block, or 0 past the last block. */
static inline float ck_postings_block_max(const ck_postings_t *c)
{
    if (c->pl_sblk >= c->pl_nblocks)
        return 0.0f;
    const uint8_t *s = c->pl_skips + (size_t)c->pl_sblk * CK_POSTINGS_SKIP_SIZE + 12;
    uint32_t u = (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
