/* A segment's term dictionary: every term of the segment in byte order (memcmp order,
 * shorter first on a tie), each with a uint64 value (the offset of its postings list) and
 * a uint32 doc frequency. Terms are 0..255 arbitrary bytes (NULs allowed).
 *
 * The byte layout is written at the top of termdict.c: front-coded blocks of 64 terms, a
 * sparse index of each block's first term at the end, a header and a CRC-32C.
 *
 * Writer: ck_termdict_writer_init(), ck_termdict_writer_add() once per term in strictly
 * increasing order, ck_termdict_writer_finish() appends the encoded dictionary to a
 * ck_wbuf_t and resets the writer (its buffers are kept), ck_termdict_writer_free().
 *
 * Reader: ck_termdict_open() validates everything (checksum and the whole structure:
 * every block decodes, terms strictly increase, the index matches the blocks), so later
 * lookups and iteration only fail on a bug or on bytes changed after open; they still
 * bounds-check and report CK_ECORRUPT rather than read outside the dictionary. The caller
 * keeps the bytes alive and unchanged while the reader or an iterator uses them (typically
 * an mmap'ed segment). Nothing on the read side allocates; readers and iterators are
 * plain structs for the stack.
 *
 * Thread: none; a writer or iterator belongs to one thread at a time. Any number of
 * threads may use one opened ck_termdict_t concurrently (it is read-only after open). */
#ifndef CK_SEARCH_TERMDICT_H
#define CK_SEARCH_TERMDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define CK_TERMDICT_MAX_TERM 255 /* bytes */
#define CK_TERMDICT_BLOCK 64     /* terms per front-coded block */
#define CK_TERMDICT_HEADER_SIZE 32

/* ---- writer ---- */

typedef struct ck_termdict_writer {
    int tw_err;        /* sticky CK_ENOMEM / CK_ETOOBIG */
    uint32_t tw_count; /* terms added */
    uint32_t tw_last_len;
    uint8_t tw_last[CK_TERMDICT_MAX_TERM]; /* last term added (valid when tw_count > 0) */
    ck_wbuf_t tw_blocks;                   /* front-coded blocks */
    ck_wbuf_t tw_slots;                    /* index slots, 8 bytes per block */
    ck_wbuf_t tw_keys;                     /* index keys: each block's first term */
} ck_termdict_writer_t;

/* Prepares an empty writer. */
void ck_termdict_writer_init(ck_termdict_writer_t *w);

/* Adds one term (len bytes at term, read only during the call; term may be NULL when len
 * is 0). The term must sort strictly after the previous one.
 * Errors: CK_EINVAL (out of order or duplicate; nothing added, the writer stays usable),
 * CK_ETOOBIG (len > CK_TERMDICT_MAX_TERM: nothing added, the writer stays usable; or the
 * dictionary outgrew its 32-bit counts or lengths: sticky), CK_ENOMEM (sticky: the writer
 * refuses work until finish() or free()). */
int ck_termdict_writer_add(ck_termdict_writer_t *w, const void *term, size_t len, uint64_t value,
                           uint32_t df);

/* Appends the encoded dictionary (possibly of zero terms) to out and resets the writer for
 * the next one (also after an error). Errors: the writer's sticky error, CK_ENOMEM (out);
 * on error nothing is appended to out. */
int ck_termdict_writer_finish(ck_termdict_writer_t *w, ck_wbuf_t *out);

/* Frees the writer's buffers; the writer may be init()ed again. */
void ck_termdict_writer_free(ck_termdict_writer_t *w);

/* ---- reader ---- */

typedef struct ck_termdict {
    const uint8_t *td_blocks; /* front-coded blocks */
    const uint8_t *td_slots;  /* index slots */
    const uint8_t *td_keys;   /* index keys */
    uint32_t td_count;        /* terms */
    uint32_t td_nblocks;
    uint32_t td_blocks_len;
    uint32_t td_keys_len;
} ck_termdict_t;

/* Opens the n bytes of one encoded dictionary (exactly its length), validating the
 * checksum and the whole structure. O(n). The bytes must outlive the reader.
 * Errors: CK_ETRUNC (n shorter than the dictionary says), CK_ECORRUPT (bad magic, unknown
 * version, nonzero reserved bytes, checksum mismatch, trailing bytes, a block or index
 * entry that does not decode, terms not strictly increasing, index not matching). */
int ck_termdict_open(const uint8_t *p, size_t n, ck_termdict_t *td);

static inline uint32_t ck_termdict_count(const ck_termdict_t *td)
{
    return td->td_count;
}

/* Finds a term: binary search over the index, then a scan of one block. On 0, *value and
 * *df (either may be NULL) are set. Errors: CK_ENOENT (absent; also for len >
 * CK_TERMDICT_MAX_TERM), CK_ECORRUPT. */
int ck_termdict_lookup(const ck_termdict_t *td, const void *term, size_t len, uint64_t *value,
                       uint32_t *df);

/* An iterator over terms in order, optionally only those starting with a prefix. */
typedef struct ck_termdict_iter {
    const ck_termdict_t *it_td;
    const uint8_t *it_p;   /* next entry in the current block */
    const uint8_t *it_end; /* end of the current block */
    uint32_t it_blk;       /* current block; td_nblocks when exhausted */
    int it_err;            /* 0 or CK_ECORRUPT (sticky) */
    bool it_pending;       /* the current term was found by a seek, next() returns it */
    bool it_done;
    uint32_t it_term_len;
    uint32_t it_prefix_len;
    uint64_t it_value;
    uint32_t it_df;
    uint8_t it_term[CK_TERMDICT_MAX_TERM];
    uint8_t it_prefix[CK_TERMDICT_MAX_TERM];
} ck_termdict_iter_t;

/* Starts an iterator over all terms. */
void ck_termdict_iter_all(const ck_termdict_t *td, ck_termdict_iter_t *it);

/* Starts an iterator over the terms starting with prefix (len bytes, copied; an empty
 * prefix means all terms; a prefix over CK_TERMDICT_MAX_TERM matches nothing). Seeks with
 * the index, so it costs one block scan plus the matches. */
void ck_termdict_iter_prefix(const ck_termdict_t *td, ck_termdict_iter_t *it, const void *prefix,
                             size_t len);

/* Moves to the next term: 1 (term(), value(), df() describe it), 0 (no more terms), or
 * CK_ECORRUPT (sticky). */
int ck_termdict_iter_next(ck_termdict_iter_t *it);

/* The current term's bytes, valid until the next call on the iterator. */
static inline const uint8_t *ck_termdict_iter_term(const ck_termdict_iter_t *it, size_t *len)
{
    *len = it->it_term_len;
    return it->it_term;
}
static inline uint64_t ck_termdict_iter_value(const ck_termdict_iter_t *it)
{
    return it->it_value;
}
static inline uint32_t ck_termdict_iter_df(const ck_termdict_iter_t *it)
{
    return it->it_df;
}

#endif
