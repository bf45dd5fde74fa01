/* From a record to a search document: which fields a record's key and value give, and
 * their tokens, fed into a segment builder.
 *
 * The value, when it is one JSON object (or array of objects), is walked; for each leaf at
 * the dotted path P of its keys (array elements stay at their array's path):
 *   - a string: TEXT field P (the analyzer's tokens, positions continuing across the
 *     values of P in one doc with a gap of CK_DOC_POSITION_GAP), KEYWORD field
 *     "P.keyword" with the string unchanged when it is at most CK_DOC_KEYWORD_MAX bytes,
 *     and, when it reads as an ISO-8601 date or date-time, NUMBER field P (epoch ms, UTC
 *     unless the string has an offset);
 *   - a number: NUMBER P;
 *   - true/false: KEYWORD P ("true"/"false");
 *   - null, {} and []: nothing.
 * There is no "_all" field in the index: the query layer expands `_all` into every TEXT
 * field (but `_key`). A value that is not a JSON object (plain text, a JSON scalar,
 * invalid JSON) is TEXT "_value" plus
 * KEYWORD "_value.keyword" (if short enough). A non-null key is TEXT "_key" and KEYWORD
 * "_key.keyword". The record's partition, offset and timestamp go to the doc table.
 *
 * With a mapping (REST-created indexes), a field mapped as keyword is KEYWORD P (the whole
 * string, no TEXT, no ".keyword"), long/integer/float/double/date as NUMBER P, text as
 * TEXT P only (no ".keyword").
 *
 * Thread: a ck_docfields_t belongs to one thread (it owns an analyzer and scratch). */
#ifndef CK_SEARCH_DOCFIELDS_H
#define CK_SEARCH_DOCFIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "search/analyze.h"
#include "search/segment.h"

#define CK_DOC_POSITION_GAP 100
#define CK_DOC_KEYWORD_MAX 128 /* longer strings get no ".keyword" term */
#define CK_DOC_MAX_DEPTH 64    /* deeper JSON is indexed down to this depth */

typedef struct ck_docfields ck_docfields_t;

/* Mapped type of a field for REST-created indexes. */
typedef enum {
    CK_MAP_DYNAMIC = 0, /* not mapped: the rules above */
    CK_MAP_TEXT,
    CK_MAP_KEYWORD,
    CK_MAP_NUMBER, /* long, integer, short, byte, float, double, date */
    CK_MAP_BOOLEAN,
} ck_map_type_t;

/* Looks up a path's mapped type; NULL callback = no mapping. */
typedef ck_map_type_t (*ck_map_fn)(void *ctx, const char *path, size_t len);

/* Creates the extractor with the analyzer for text fields. CK_EINVAL for a bad analyzer
 * config (unknown stemmer language), CK_ENOMEM. */
int ck_docfields_new(const ck_analyzer_config_t *cfg, ck_docfields_t **out);
void ck_docfields_free(ck_docfields_t *d);
/* Sets the mapping used by the next calls (NULL = dynamic). */
void ck_docfields_set_mapping(ck_docfields_t *d, ck_map_fn fn, void *ctx);

/* Adds one doc to b (ck_segbuild_doc, then its fields). key/value: len -1 = null.
 * Errors from the builder (CK_ENOMEM); malformed values are indexed as text, never an
 * error. */
int ck_docfields_add(ck_docfields_t *d, ck_segbuild_t *b, int32_t partition, int64_t offset,
                     int64_t timestamp, ck_slice_t key, ck_slice_t value);
/* The same, with the record's position in its batch (ck_segbuild_doc_at). */
int ck_docfields_add_at(ck_docfields_t *d, ck_segbuild_t *b, int32_t partition, int64_t offset,
                        int64_t timestamp, uint32_t record_pos, ck_slice_t key, ck_slice_t value);

/* Parses an ISO-8601 date ("2024-05-01"), date-time ("2024-05-01T10:00:00",
 * "...:00.123Z", "...+02:00", space instead of 'T') into epoch milliseconds. Returns false
 * if s[0..n) is not one. */
bool ck_doc_parse_date(const char *s, size_t n, int64_t *ms);

#endif
