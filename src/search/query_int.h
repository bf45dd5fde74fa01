/* Internals of the query layer shared by query_parse.c, query_exec.c and highlight.c: the
 * parsed request (an AST of query clauses with fields still unresolved and text still
 * unanalyzed, because both depend on the view it runs on). Not a public interface. */
#ifndef CK_SEARCH_QUERY_INT_H
#define CK_SEARCH_QUERY_INT_H

#include <stdarg.h>

#include "search/query.h"

#define CK__Q_MAX_DEPTH 48     /* nesting of query clauses (parse-time recursion bound) */
#define CK__Q_MAX_CLAUSES 1024 /* terms / clauses in one bool, terms list, multi_match */

typedef enum {
    CK__Q_ALL,    /* match_all */
    CK__Q_NONE,   /* match_none */
    CK__Q_MATCH,  /* match: field, text, op_and, msm */
    CK__Q_PHRASE, /* match_phrase: field, text, slop */
    CK__Q_MULTI,  /* multi_match: fields/fboost, text, most_fields, tie, op_and, msm */
    CK__Q_BOOL,   /* kids[CK__B_*], msm */
    CK__Q_TERM,   /* field, vals[0] */
    CK__Q_TERMS,  /* field, vals[0..nvals) */
    CK__Q_RANGE,  /* field, lo/hi */
    CK__Q_EXISTS, /* field */
    CK__Q_PREFIX, /* field, text */
    CK__Q_CONST,  /* constant_score: kids[CK__B_FILTER][0] */
} ck__qkind_t;

enum { CK__B_MUST, CK__B_SHOULD, CK__B_MUST_NOT, CK__B_FILTER, CK__B_N };

typedef enum { CK__V_STR, CK__V_NUM, CK__V_BOOL } ck__vkind_t;

typedef struct ck__qval {
    ck__vkind_t v_kind;
    char *v_str; /* CK__V_STR: owned, NUL-terminated; v_len bytes */
    size_t v_len;
    double v_num; /* CK__V_NUM; also CK__V_STR when v_is_num (a numeric or date string) */
    bool v_is_num;
    bool v_bool;
} ck__qval_t;

/* minimum_should_match: none, an absolute count (negative = all but n), or a percentage
 * (negative = all but that share), rounded down as ES does. */
typedef struct ck__msm {
    int m_kind; /* 0 none, 1 count, 2 percent */
    int m_val;
} ck__msm_t;

typedef struct ck__qnode ck__qnode_t;
struct ck__qnode {
    ck__qkind_t q_kind;
    double q_boost; /* 1 unless given */
    char *q_field;  /* owned */
    char *q_text;   /* owned, NUL-terminated; q_text_len bytes */
    size_t q_text_len;
    bool q_op_and;
    ck__msm_t q_msm;
    uint32_t q_slop;
    char **q_fields; /* CK__Q_MULTI */
    double *q_fboost;
    size_t q_nfields;
    bool q_most_fields;
    double q_tie;
    ck__qval_t *q_vals;
    size_t q_nvals;
    double q_lo, q_hi;
    bool q_has_lo, q_has_hi, q_lo_incl, q_hi_incl;
    ck__qnode_t **q_kids[CK__B_N];
    size_t q_nkids[CK__B_N];
};

typedef enum { CK__S_SCORE, CK__S_DOC, CK__S_FIELD } ck__skind_t;

typedef struct ck__sort {
    ck__skind_t s_kind;
    char *s_field; /* CK__S_FIELD */
    bool s_desc;
} ck__sort_t;

/* What highlighting looks for: query text on a field, analyzed, exact or as a prefix. */
typedef enum { CK__H_ANALYZED, CK__H_EXACT, CK__H_PREFIX } ck__hkind_t;
typedef struct ck__hlq {
    char *h_field;
    char *h_text;
    size_t h_len;
    ck__hkind_t h_kind;
} ck__hlq_t;

struct ck_search_req {
    ck__qnode_t *r_query;
    size_t r_from, r_size;
    char *r_index;
    ck__sort_t *r_sort;
    size_t r_nsort;
    bool r_track; /* count total hits */
    uint64_t r_track_limit;
    bool r_has_min_score;
    double r_min_score;
    int r_src_mode; /* 0 whole, 1 none, 2 filtered */
    char **r_src_inc, **r_src_exc;
    size_t r_nsrc_inc, r_nsrc_exc;
    bool r_hl;
    char **r_hl_fields;
    size_t r_hl_nfields;
    char *r_hl_pre, *r_hl_post;
    size_t r_hl_frag_size, r_hl_nfrags;
    ck__hlq_t *r_hlq;
    size_t r_nhlq;
};

/* Fills err (if not NULL) and returns CK_EINVAL; status 400. */
int ck__qerr(ck_search_error_t *err, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fills err for a CK_E* code from the engine (500) and returns rc. */
int ck__qerr_rc(ck_search_error_t *err, int rc);


/* Parses an ES date math string: ISO-8601 date/date-time, or "now" with optional
 * [+-]N<unit> steps (y M w d h H m s) and a trailing "/unit" rounding. */
bool ck__parse_date_math(const char *s, size_t n, double *ms);

#endif
