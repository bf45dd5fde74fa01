/* The /_search query layer: an Elasticsearch-style request body (API.md §5, plus more of
 * the DSL than upstream) parsed once, then executed over one or more indexes, each a set of
 * segments (search/segment.h); then per-hit rendering helpers (_source filtering,
 * highlighting) for the HTTP layer.
 *
 * Request body fields: query (absent = match_all), from (0), size (10, 0 allowed;
 * from + size <= CK_SEARCH_MAX_WINDOW), sort, _source, highlight, track_total_hits
 * (true | false | N; default 10000), min_score, index (returned by ck_search_req_index()),
 * timeout/aggs/aggregations/explain/version/track_scores (accepted, ignored). Other
 * top-level keys are rejected (400 parsing_exception "Unknown key for a ... in [k].").
 *
 * Query clauses: match, match_phrase, multi_match (best_fields, most_fields), bool (must,
 * should, must_not, filter, minimum_should_match, boost), term, terms, range, exists,
 * prefix, match_all, match_none, query_string, constant_score. How each resolves fields,
 * scores and which index fields it reads is written at the top of query_exec.c.
 *
 * Scoring is BM25 (k1 1.2, b 0.75) with statistics global to one view (all its segments):
 * idf from the field's doc count and the term's doc frequency summed over segments, avgdl
 * from the summed field lengths. Results are ordered by the sort (default: score desc),
 * ties by score desc, then (view, seg, doc) asc.
 *
 * Errors (the int returns): 0, CK_EINVAL with *err filled (status 400 and an ES type:
 * parsing_exception, x_content_parse_exception, illegal_argument_exception), CK_ENOMEM
 * (status 500), CK_ECORRUPT/CK_ETRUNC from a segment (status 500, type
 * "search_phase_execution_exception"). err may be NULL.
 *
 * Thread: a parsed request is read-only after ck_search_parse(): several threads may
 * execute and render it at once. Each call allocates its own scratch (analyzers). */
#ifndef CK_SEARCH_QUERY_H
#define CK_SEARCH_QUERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "search/analyze.h"
#include "search/segment.h"

#define CK_SEARCH_MAX_WINDOW 10000     /* from + size, as ES's index.max_result_window */
#define CK_SEARCH_DEFAULT_TRACK 10000u /* track_total_hits default */

typedef struct ck_search_error {
    int status;       /* HTTP status: 400 bad request, 500 internal */
    char type[64];    /* ES error type, e.g. "parsing_exception" */
    char reason[512]; /* human readable, ES-like wording */
} ck_search_error_t;

/* One index (a topic, or a REST-created index) as a set of segments to search. The
 * segments must stay open during ck_search_execute() and ck_search_highlight(). */
typedef struct ck_search_view {
    const char *index;         /* name, for the caller's _index; not used here */
    ck_segment_t *const *segs; /* in index order (older first) */
    size_t nsegs;
    ck_analyzer_config_t analyzer; /* analyzer of the TEXT fields (query text uses it) */
    /* Called for candidate docs in increasing doc order per segment; false = the doc is
     * deleted or expired: never a hit, never counted. NULL = all docs live. */
    bool (*live)(void *ctx, size_t seg, uint32_t doc);
    void *live_ctx;
} ck_search_view_t;

typedef struct ck_search_req ck_search_req_t; /* parsed request (opaque) */

/* Parses a request body (NULL = {} = match_all, size 10). On 0, *out is a new request
 * owned by the caller (ck_search_req_free()); it keeps no reference to body. Errors:
 * CK_EINVAL (*err filled with status 400), CK_ENOMEM. Never crashes on any JSON. */
int ck_search_parse(const json_t *body, ck_search_req_t **out, ck_search_error_t *err);
void ck_search_req_free(ck_search_req_t *rq);

/* The body's "index" string, or NULL; valid as long as the request. */
const char *ck_search_req_index(const ck_search_req_t *rq);
/* The request's from and size. */
size_t ck_search_req_from(const ck_search_req_t *rq);
size_t ck_search_req_size(const ck_search_req_t *rq);
/* True when the request asked for highlighting. */
bool ck_search_req_has_highlight(const ck_search_req_t *rq);

typedef struct ck_search_hit {
    uint32_t view, seg, doc; /* indexes into the views array, its segs, the segment's docs */
    double score;            /* BM25 (or constant) score; computed also when sorting */
    json_t *sort;            /* the sort values (array) when the request has a sort, else
                                NULL; owned by the result */
} ck_search_hit_t;

typedef struct ck_search_result {
    bool has_total;            /* false with track_total_hits:false (ES omits hits.total) */
    uint64_t total;            /* matching live docs, capped at the tracking limit */
    bool total_is_lower_bound; /* more matched than the limit: relation "gte" */
    double max_score;          /* best score of all matches (when has_max_score) */
    bool has_max_score;        /* false when sorted by something other than _score first,
                                  or nothing matched: max_score null */
    ck_search_hit_t *hits;     /* the [from, from + size) slice of the ordered matches */
    size_t nhits;
} ck_search_result_t;

/* Runs rq over views[0..nviews) (each view searched with its own analyzer and statistics).
 * On 0, *res holds the hits (free with ck_search_result_free()); on error *res is empty.
 * Errors: see the top; a query that cannot apply to a field (e.g. a range with a non-date
 * string bound on a numeric field) is 400. */
int ck_search_execute(const ck_search_req_t *rq, const ck_search_view_t *views, size_t nviews,
                      ck_search_result_t *res, ck_search_error_t *err);
void ck_search_result_free(ck_search_result_t *res);

/* Applies the request's _source option to a hit's document: returns a new reference to
 * what to render as "_source" (source itself, or a filtered copy), or NULL when _source
 * is false (omit it; also NULL on allocation failure). Filters: "_source": false, "path",
 * ["paths"], {"includes": [...], "excludes": [...]}; paths are dotted and may hold '*'
 * wildcards; a matching object path includes or excludes its whole subtree. source is
 * borrowed (not stolen). */
json_t *ck_search_source_filter(const ck_search_req_t *rq, json_t *source);

/* Highlights a hit's document for the request's highlight.fields (names may hold '*'):
 * returns a new {field: [fragments]} object, or NULL when nothing is highlighted (or no
 * highlight was asked, or on allocation failure). A fragment is a piece of a string value
 * of the field (about fragment_size bytes, cut at word boundaries; the whole value when
 * number_of_fragments is 0) with every word that matches a query term on that field (or on
 * _all) wrapped in pre_tags[0] / post_tags[0] (default <em>, </em>); at most
 * number_of_fragments fragments per field, in document order. Text is analyzed with the
 * view's analyzer. source is borrowed. */
json_t *ck_search_highlight(const ck_search_req_t *rq, const ck_search_view_t *view,
                            const json_t *source);

/* True if pat (with '*' wildcards, each any run of bytes) matches the whole of s. Used
 * for index and field name patterns. */
bool ck_search_glob(const char *pat, const char *s);

#endif
