/* The SentencePiece-unigram tokenizer of the built-in embedding model (USE-lite): UTF-8 text
 * in, vocabulary ids out, the same ids as the JavaScript runtime that ships with the model
 * (docs/VECTOR.md, the reference ids in shared/datasets/use-lite-reference).
 *
 * The vocabulary is a JSON array of [piece, score] pairs (vocab.json); a piece's id is its
 * index. A null score counts as 0. Ids 0-5 are reserved (0 is "unknown", 1-5 control and
 * user symbols) and are never matched against the text.
 *
 * Encoding, as that runtime does it:
 *   1. The text is normalised to NFKC (utf8proc; bytes that are not valid UTF-8 become
 *      U+FFFD first), prefixed with U+2581 "▁", and every U+0020 space becomes "▁".
 *   2. A lattice over the code points: an edge for every vocabulary piece found at a
 *      position; a code point that starts no piece at all gets a one-code-point edge of id 0
 *      and score 0.
 *   3. Viterbi: for each end position in order, the edges ending there are taken by start
 *      position, ascending; an edge replaces the current best when its total is >= the
 *      best so far or the best so far is exactly 0 (so among equal totals the shorter last
 *      piece wins, and a total of 0, which only unknowns and null-score pieces give, counts
 *      as "nothing yet"). The runtime counts an unknown code point outside the BMP as two
 *      positions when it looks up the total before the edge (a UTF-16 artefact), and so do
 *      we.
 *   4. The best path is read back from the end (stepping back by each piece's length in
 *      UTF-16 units, as the runtime does); consecutive unknowns merge into one id 0.
 *
 * Only the first `max` ids are kept. A long text is not tokenised whole: when no piece holds
 * "▁" after its first code point (true of USE-lite's vocabulary), every "▁" is a point the
 * best path must pass, so the text is tokenised in growing prefixes that end before a space
 * until a prefix yields `max` ids; the ids are the same as the whole text's. A text with no
 * space in its first CK_SP_SCAN_MAX bytes is cut there (its ids then may differ from the
 * runtime's around the cut, far beyond any useful `max`). */
#ifndef CK_VECTOR_TOKENIZER_H
#define CK_VECTOR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of input looked at, at most, when no space allows an exact cut (see above). */
#define CK_SP_SCAN_MAX (1u << 20)

typedef struct ck_sp ck_sp_t;

/* Loads vocab.json (the path of the file) into a new tokenizer, owned by the caller (free
 * with ck_sp_free). Errors: CK_ENOENT (no such file), CK_EIO, CK_ECORRUPT (not a JSON array
 * of [string, number|null] pairs, a piece that is not valid UTF-8 or longer than 64 code
 * points, or fewer than 7 entries), CK_ENOMEM. An empty piece is kept but never matched. A
 * loaded tokenizer is read-only: any number of threads may call ck_sp_encode on it at
 * once. */
int ck_sp_load(const char *vocab_json_path, ck_sp_t **out);

/* Frees a tokenizer; NULL is a no-op. No call may be running on it. */
void ck_sp_free(ck_sp_t *sp);

/* Number of vocabulary entries (ids are 0 .. size-1). */
size_t ck_sp_size(const ck_sp_t *sp);

/* Tokenises text[0..len) (UTF-8, need not be NUL-terminated or valid; NULL when len is 0)
 * and writes the first min(max, count) ids to ids[], their number to *n. Returns 0 or
 * CK_ENOMEM (scratch memory for a long text; *n is then 0). Any thread; the scratch memory
 * is per call (on the stack for short texts). */
int ck_sp_encode(const ck_sp_t *sp, const char *text, size_t len, int32_t *ids, size_t max,
                 size_t *n);

#endif
