/* Request body → ck_search_req_t (the AST of query_int.h), with ES-style errors.
 *
 * Every JSON value is type-checked before use, recursion is bounded by CK__Q_MAX_DEPTH and
 * list lengths by CK__Q_MAX_CLAUSES, so no body can crash or exhaust the stack. The
 * query_string mini-language is parsed here too, into the same clause nodes. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "search/docfields.h"
#include "search/query_int.h"

#define PE "parsing_exception"
#define XE "x_content_parse_exception"
#define IAE "illegal_argument_exception"

int ck__qerr(ck_search_error_t *err, const char *type, const char *fmt, ...)
{
    if (err) {
        err->status = 400;
        snprintf(err->type, sizeof(err->type), "%s", type);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
        va_end(ap);
    }
    return CK_EINVAL;
}

int ck__qerr_rc(ck_search_error_t *err, int rc)
{
    if (err) {
        err->status = 500;
        snprintf(err->type, sizeof(err->type), "%s",
                 rc == CK_ENOMEM ? "out_of_memory_error" : "search_phase_execution_exception");
        snprintf(err->reason, sizeof(err->reason), "%s", ck_strerror(rc));
    }
    return rc;
}

bool ck_search_glob(const char *pat, const char *s)
{
    const char *star = NULL, *ss = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            ss = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++ss;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return !*pat;
}

bool ck__parse_date_math(const char *s, size_t n, double *ms)
{
    int64_t v;
    if (n >= 3 && memcmp(s, "now", 3) == 0) {
        double t = (double)ck_wall_ms();
        size_t i = 3;
        while (i < n) {
            char op = s[i++];
            if (op != '+' && op != '-' && op != '/')
                return false;
            long num = 1;
            if (op != '/') {
                if (i >= n || !isdigit((unsigned char)s[i]))
                    return false;
                num = 0;
                while (i < n && isdigit((unsigned char)s[i]) && num < 100000000)
                    num = num * 10 + (s[i++] - '0');
            }
            if (i >= n)
                return false;
            double unit;
            switch (s[i++]) {
            case 'y':
                unit = 365.2425 * 86400000.0;
                break;
            case 'M':
                unit = 30.436875 * 86400000.0;
                break;
            case 'w':
                unit = 7 * 86400000.0;
                break;
            case 'd':
                unit = 86400000.0;
                break;
            case 'h':
            case 'H':
                unit = 3600000.0;
                break;
            case 'm':
                unit = 60000.0;
                break;
            case 's':
                unit = 1000.0;
                break;
            default:
                return false;
            }
            if (op == '+')
                t += (double)num * unit;
            else if (op == '-')
                t -= (double)num * unit;
            else if (unit <= 86400000.0)
                t = floor(t / unit) * unit; /* rounding to coarser units is approximate */
        }
        *ms = t;
        return true;
    }
    if (n >= 8 && ck_doc_parse_date(s, n, &v)) {
        *ms = (double)v;
        return true;
    }
    return false;
}

/* ---- freeing ---- */

static void free_node(ck__qnode_t *q)
{
    if (!q)
        return;
    ck_free(q->q_field);
    ck_free(q->q_text);
    for (size_t i = 0; i < q->q_nfields; i++)
        ck_free(q->q_fields[i]);
    ck_free(q->q_fields);
    ck_free(q->q_fboost);
    for (size_t i = 0; i < q->q_nvals; i++)
        ck_free(q->q_vals[i].v_str);
    ck_free(q->q_vals);
    for (int b = 0; b < CK__B_N; b++) {
        for (size_t i = 0; i < q->q_nkids[b]; i++)
            free_node(q->q_kids[b][i]);
        ck_free(q->q_kids[b]);
    }
    ck_free(q);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_free(v[i]);
    ck_free(v);
}

void ck_search_req_free(ck_search_req_t *rq)
{
    if (!rq)
        return;
    free_node(rq->r_query);
    ck_free(rq->r_index);
    for (size_t i = 0; i < rq->r_nsort; i++)
        ck_free(rq->r_sort[i].s_field);
    ck_free(rq->r_sort);
    free_strv(rq->r_src_inc, rq->r_nsrc_inc);
    free_strv(rq->r_src_exc, rq->r_nsrc_exc);
    free_strv(rq->r_hl_fields, rq->r_hl_nfields);
    ck_free(rq->r_hl_pre);
    ck_free(rq->r_hl_post);
    for (size_t i = 0; i < rq->r_nhlq; i++) {
        ck_free(rq->r_hlq[i].h_field);
        ck_free(rq->r_hlq[i].h_text);
    }
    ck_free(rq->r_hlq);
    ck_free(rq);
}

const char *ck_search_req_index(const ck_search_req_t *rq)
{
    return rq ? rq->r_index : NULL;
}
size_t ck_search_req_from(const ck_search_req_t *rq)
{
    return rq->r_from;
}
size_t ck_search_req_size(const ck_search_req_t *rq)
{
    return rq->r_size;
}
bool ck_search_req_has_highlight(const ck_search_req_t *rq)
{
    return rq->r_hl;
}

/* ---- parse context ---- */

typedef struct pctx {
    ck_search_req_t *p_rq;
    ck_search_error_t *p_err;
    int p_depth;
} pctx_t;

static ck__qnode_t *new_node(ck__qkind_t k)
{
    ck__qnode_t *q = ck_calloc(1, sizeof(*q));
    if (q) {
        q->q_kind = k;
        q->q_boost = 1.0;
    }
    return q;
}

static int oom(pctx_t *p)
{
    return ck__qerr_rc(p->p_err, CK_ENOMEM);
}

static int add_kid(pctx_t *p, ck__qnode_t *parent, int occ, ck__qnode_t *kid)
{
    if (parent->q_nkids[occ] >= CK__Q_MAX_CLAUSES) {
        free_node(kid);
        return ck__qerr(p->p_err, PE, "too many clauses in one [bool] (max %d)", CK__Q_MAX_CLAUSES);
    }
    ck__qnode_t **v = ck_realloc(parent->q_kids[occ], (parent->q_nkids[occ] + 1) * sizeof(*v));
    if (!v) {
        free_node(kid);
        return oom(p);
    }
    v[parent->q_nkids[occ]++] = kid;
    parent->q_kids[occ] = v;
    return 0;
}

/* Records what highlighting should look for. Failure to record only loses highlights. */
static void add_hl(pctx_t *p, const char *field, const char *text, size_t len, ck__hkind_t k)
{
    ck_search_req_t *rq = p->p_rq;
    if (!field || !text || rq->r_nhlq >= 4096)
        return;
    ck__hlq_t *v = ck_realloc(rq->r_hlq, (rq->r_nhlq + 1) * sizeof(*v));
    if (!v)
        return;
    rq->r_hlq = v;
    char *f = ck_strdup(field), *t = ck_strndup(text, len);
    if (!f || !t) {
        ck_free(f);
        ck_free(t);
        return;
    }
    v[rq->r_nhlq++] = (ck__hlq_t){f, t, len, k};
}

static bool get_number(const json_t *v, double *out)
{
    if (json_is_integer(v)) {
        *out = (double)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        *out = json_real_value(v);
        return isfinite(*out);
    }
    return false;
}

/* A number, or a string holding one (ES accepts "2.5" for numbers). */
static bool get_number_lenient(const json_t *v, double *out)
{
    if (get_number(v, out))
        return true;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        if (!*s)
            return false;
        double d = strtod(s, &end);
        if (*end || !isfinite(d))
            return false;
        *out = d;
        return true;
    }
    return false;
}

static int get_boost(pctx_t *p, const char *qname, const json_t *v, double *boost)
{
    if (!get_number_lenient(v, boost) || *boost < 0)
        return ck__qerr(p->p_err, PE, "[%s] failed to parse field [boost]: expected a number >= 0",
                        qname);
    return 0;
}

/* Query text from a string, number or boolean (ES accepts all three). */
static int get_text(pctx_t *p, const char *qname, const json_t *v, char **out, size_t *len)
{
    char buf[64];
    const char *s;
    size_t n;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else if (json_is_integer(v)) {
        n = (size_t)snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = buf;
    } else if (json_is_real(v)) {
        n = (size_t)snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        s = buf;
    } else if (json_is_boolean(v)) {
        s = json_is_true(v) ? "true" : "false";
        n = strlen(s);
    } else {
        return ck__qerr(p->p_err, PE, "[%s] unknown token [%s] for the query text", qname,
                        json_is_object(v)  ? "START_OBJECT"
                        : json_is_array(v) ? "START_ARRAY"
                                           : "VALUE_NULL");
    }
    *out = ck_strndup(s, n);
    if (!*out)
        return oom(p);
    *len = n;
    return 0;
}

static int parse_msm(pctx_t *p, const char *qname, const json_t *v, ck__msm_t *m)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < -100000 || i > 100000)
            return ck__qerr(p->p_err, PE, "[%s] minimum_should_match out of range", qname);
        *m = (ck__msm_t){1, (int)i};
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long x = strtol(s, &end, 10);
        if (end != s && x >= -100000 && x <= 100000) {
            if (*end == '%' && end[1] == 0 && x >= -100 && x <= 100) {
                *m = (ck__msm_t){2, (int)x};
                return 0;
            }
            if (*end == 0) {
                *m = (ck__msm_t){1, (int)x};
                return 0;
            }
        }
    }
    return ck__qerr(p->p_err, PE,
                    "[%s] minimum_should_match must be an integer or a percentage like \"75%%\"",
                    qname);
}

/* The single "field": body pair of match / term / prefix / match_phrase / range. */
static int single_field(pctx_t *p, const char *qname, const json_t *obj, const char **field,
                        json_t **val)
{
    if (!json_is_object(obj))
        return ck__qerr(p->p_err, PE, "[%s] query malformed, no start_object after query name",
                        qname);
    const char *k, *found = NULL;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (strcmp(k, "boost") == 0 || strcmp(k, "_name") == 0)
            continue; /* sibling options of some queries; checked by the caller */
        if (found)
            return ck__qerr(p->p_err, PE,
                            "[%s] query doesn't support multiple fields, found [%s] and [%s]",
                            qname, found, k);
        found = k;
        *val = v;
    }
    if (!found)
        return ck__qerr(p->p_err, PE, "[%s] query requires a field name", qname);
    if (strlen(found) > CK_SEG_FIELD_MAX)
        return ck__qerr(p->p_err, PE, "[%s] field name too long", qname);
    *field = found;
    return 0;
}

static int parse_query(pctx_t *p, const json_t *j, ck__qnode_t **out);

static int parse_match(pctx_t *p, const json_t *body, ck__qnode_t **out, bool phrase)
{
    const char *qname = phrase ? "match_phrase" : "match";
    const char *field;
    json_t *v;
    int rc = single_field(p, qname, body, &field, &v);
    if (rc)
        return rc;
    ck__qnode_t *q = new_node(phrase ? CK__Q_PHRASE : CK__Q_MATCH);
    if (!q || !(q->q_field = ck_strdup(field))) {
        free_node(q);
        return oom(p);
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        bool have_query = false;
        json_object_foreach(v, k, x)
        {
            if (strcmp(k, "query") == 0) {
                rc = get_text(p, qname, x, &q->q_text, &q->q_text_len);
                have_query = true;
            } else if (strcmp(k, "boost") == 0) {
                rc = get_boost(p, qname, x, &q->q_boost);
            } else if (!phrase && strcmp(k, "operator") == 0) {
                const char *o = json_string_value(x);
                if (o && strcasecmp(o, "and") == 0)
                    q->q_op_and = true;
                else if (!o || strcasecmp(o, "or") != 0)
                    rc = ck__qerr(p->p_err, PE, "[%s] unknown operator, expected [and] or [or]",
                                  qname);
            } else if (!phrase && strcmp(k, "minimum_should_match") == 0) {
                rc = parse_msm(p, qname, x, &q->q_msm);
            } else if (phrase && strcmp(k, "slop") == 0) {
                double s;
                if (!get_number_lenient(x, &s) || s < 0 || s > 1e6 || s != floor(s))
                    rc = ck__qerr(p->p_err, PE, "[%s] slop must be a non-negative integer", qname);
                else
                    q->q_slop = (uint32_t)s;
            } else if (strcmp(k, "analyzer") == 0 || strcmp(k, "fuzziness") == 0 ||
                       strcmp(k, "zero_terms_query") == 0 || strcmp(k, "_name") == 0 ||
                       strcmp(k, "lenient") == 0 || strcmp(k, "prefix_length") == 0 ||
                       strcmp(k, "max_expansions") == 0 ||
                       strcmp(k, "auto_generate_synonyms_phrase_query") == 0) {
                /* accepted, ignored */
            } else {
                rc = ck__qerr(p->p_err, PE, "[%s] query does not support [%s]", qname, k);
            }
            if (rc)
                break;
        }
        if (!rc && !have_query)
            rc = ck__qerr(p->p_err, PE, "[%s] requires query value", qname);
    } else {
        rc = get_text(p, qname, v, &q->q_text, &q->q_text_len);
    }
    if (rc) {
        free_node(q);
        return rc;
    }
    add_hl(p, q->q_field, q->q_text, q->q_text_len, CK__H_ANALYZED);
    *out = q;
    return 0;
}

static int parse_multi(pctx_t *p, const json_t *body, ck__qnode_t **out)
{
    const char *qname = "multi_match";
    if (!json_is_object(body))
        return ck__qerr(p->p_err, PE, "[%s] query malformed", qname);
    ck__qnode_t *q = new_node(CK__Q_MULTI);
    if (!q)
        return oom(p);
    int rc = 0;
    const char *k;
    json_t *x;
    const json_t *fields = NULL;
    json_object_foreach((json_t *)body, k, x)
    {
        if (strcmp(k, "query") == 0) {
            rc = get_text(p, qname, x, &q->q_text, &q->q_text_len);
        } else if (strcmp(k, "fields") == 0) {
            if (json_is_string(x) || (json_is_array(x) && json_array_size(x) <= 256))
                fields = x;
            else
                rc = ck__qerr(p->p_err, PE, "[%s] [fields] must be a string or an array", qname);
        } else if (strcmp(k, "type") == 0) {
            const char *t = json_string_value(x);
            if (t && strcmp(t, "most_fields") == 0)
                q->q_most_fields = true;
            else if (!t || strcmp(t, "best_fields") != 0)
                rc = ck__qerr(p->p_err, PE, "[%s] query does not support type [%s]", qname,
                              t ? t : "?");
        } else if (strcmp(k, "operator") == 0) {
            const char *o = json_string_value(x);
            if (o && strcasecmp(o, "and") == 0)
                q->q_op_and = true;
            else if (!o || strcasecmp(o, "or") != 0)
                rc = ck__qerr(p->p_err, PE, "[%s] unknown operator, expected [and] or [or]", qname);
        } else if (strcmp(k, "tie_breaker") == 0) {
            if (!get_number_lenient(x, &q->q_tie) || q->q_tie < 0 || q->q_tie > 1)
                rc = ck__qerr(p->p_err, PE, "[%s] tie_breaker must be a number in [0, 1]", qname);
        } else if (strcmp(k, "minimum_should_match") == 0) {
            rc = parse_msm(p, qname, x, &q->q_msm);
        } else if (strcmp(k, "boost") == 0) {
            rc = get_boost(p, qname, x, &q->q_boost);
        } else if (strcmp(k, "analyzer") == 0 || strcmp(k, "_name") == 0 ||
                   strcmp(k, "lenient") == 0 || strcmp(k, "fuzziness") == 0) {
        } else {
            rc = ck__qerr(p->p_err, PE, "[%s] query does not support [%s]", qname, k);
        }
        if (rc)
            break;
    }
    if (!rc && !q->q_text)
        rc = ck__qerr(p->p_err, PE, "[%s] requires query value", qname);
    size_t nf = !fields ? 1 : json_is_string(fields) ? 1 : json_array_size(fields);
    if (!rc && nf == 0)
        rc = ck__qerr(p->p_err, PE, "[%s] [fields] must not be empty", qname);
    if (!rc) {
        q->q_fields = ck_calloc(nf, sizeof(char *));
        q->q_fboost = ck_calloc(nf, sizeof(double));
        if (!q->q_fields || !q->q_fboost)
            rc = oom(p);
    }
    for (size_t i = 0; !rc && i < nf; i++) {
        const json_t *f = !fields                  ? NULL
                          : json_is_string(fields) ? fields
                                                   : json_array_get(fields, i);
        const char *s = f ? json_string_value(f) : "_all";
        if (!s) {
            rc = ck__qerr(p->p_err, PE, "[%s] [fields] entries must be strings", qname);
            break;
        }
        const char *caret = strrchr(s, '^');
        size_t n = caret ? (size_t)(caret - s) : strlen(s);
        double b = 1.0;
        if (caret) {
            char *end;
            b = strtod(caret + 1, &end);
            if (*end || !isfinite(b) || b < 0) {
                rc = ck__qerr(p->p_err, PE, "[%s] bad field boost in [%s]", qname, s);
                break;
            }
        }
        if (n == 0 || n > CK_SEG_FIELD_MAX) {
            rc = ck__qerr(p->p_err, PE, "[%s] bad field name [%s]", qname, s);
            break;
        }
        q->q_fields[i] = ck_strndup(s, n);
        if (!q->q_fields[i]) {
            rc = oom(p);
            break;
        }
        q->q_fboost[i] = b;
        q->q_nfields = i + 1;
        add_hl(p, q->q_fields[i], q->q_text, q->q_text_len, CK__H_ANALYZED);
    }
    if (rc) {
        free_node(q);
        return rc;
    }
    *out = q;
    return 0;
}

/* A term value: string, number or boolean. */
static int parse_val(pctx_t *p, const char *qname, const json_t *v, ck__qval_t *out)
{
    memset(out, 0, sizeof(*out));
    if (json_is_string(v)) {
        out->v_kind = CK__V_STR;
        out->v_len = json_string_length(v);
        out->v_str = ck_strndup(json_string_value(v), out->v_len);
        if (!out->v_str)
            return oom(p);
        double d;
        out->v_is_num = get_number_lenient(v, &out->v_num) ||
                        (ck__parse_date_math(out->v_str, out->v_len, &d) && (out->v_num = d, 1));
        return 0;
    }
    if (get_number(v, &out->v_num)) {
        out->v_kind = CK__V_NUM;
        out->v_is_num = true;
        char buf[64];
        if (json_is_integer(v))
            snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else
            snprintf(buf, sizeof(buf), "%.17g", out->v_num);
        out->v_len = strlen(buf);
        out->v_str = ck_strdup(buf);
        return out->v_str ? 0 : oom(p);
    }
    if (json_is_boolean(v)) {
        out->v_kind = CK__V_BOOL;
        out->v_bool = json_is_true(v);
        out->v_str = ck_strdup(out->v_bool ? "true" : "false");
        out->v_len = strlen(out->v_str ? out->v_str : "");
        return out->v_str ? 0 : oom(p);
    }
    return ck__qerr(p->p_err, PE, "[%s] value must be a string, number or boolean", qname);
}

static int parse_term(pctx_t *p, const json_t *body, ck__qnode_t **out)
{
    const char *field;
    json_t *v;
    int rc = single_field(p, "term", body, &field, &v);
    if (rc)
        return rc;
    ck__qnode_t *q = new_node(CK__Q_TERM);
    if (!q || !(q->q_field = ck_strdup(field)) || !(q->q_vals = ck_calloc(1, sizeof(ck__qval_t)))) {
        free_node(q);
        return oom(p);
    }
    const json_t *val = v;
    if (json_is_object(v)) {
        val = NULL;
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (strcmp(k, "value") == 0)
                val = x;
            else if (strcmp(k, "boost") == 0)
                rc = get_boost(p, "term", x, &q->q_boost);
            else if (strcmp(k, "_name") != 0 && strcmp(k, "case_insensitive") != 0)
                rc = ck__qerr(p->p_err, PE, "[term] query does not support [%s]", k);
            if (rc)
                break;
        }
        if (!rc && !val)
            rc = ck__qerr(p->p_err, PE, "[term] query requires a [value]");
    }
    if (!rc) {
        rc = parse_val(p, "term", val, &q->q_vals[0]);
        if (!rc)
            q->q_nvals = 1;
    }
    if (rc) {
        free_node(q);
        return rc;
    }
    add_hl(p, q->q_field, q->q_vals[0].v_str, q->q_vals[0].v_len, CK__H_EXACT);
    *out = q;
    return 0;
}

static int parse_terms(pctx_t *p, const json_t *body, ck__qnode_t **out)
{
    const char *field;
    json_t *v;
    int rc = single_field(p, "terms", body, &field, &v);
    if (rc)
        return rc;
    if (!json_is_array(v))
        return ck__qerr(p->p_err, PE, "[terms] query does not support [%s] with a non-array value",
                        field);
    size_t n = json_array_size(v);
    if (n > CK__Q_MAX_CLAUSES * 64)
        return ck__qerr(p->p_err, PE, "[terms] too many terms");
    ck__qnode_t *q = new_node(CK__Q_TERMS);
    if (!q || !(q->q_field = ck_strdup(field)) ||
        (n && !(q->q_vals = ck_calloc(n, sizeof(ck__qval_t))))) {
        free_node(q);
        return oom(p);
    }
    json_t *b = json_object_get(body, "boost");
    if (b)
        rc = get_boost(p, "terms", b, &q->q_boost);
    for (size_t i = 0; !rc && i < n; i++) {
        rc = parse_val(p, "terms", json_array_get(v, i), &q->q_vals[i]);
        if (!rc) {
            q->q_nvals = i + 1;
            add_hl(p, q->q_field, q->q_vals[i].v_str, q->q_vals[i].v_len, CK__H_EXACT);
        }
    }
    if (rc) {
        free_node(q);
        return rc;
    }
    *out = q;
    return 0;
}

static int range_bound(pctx_t *p, const char *field, const char *k, const json_t *x, double *d)
{
    if (get_number(x, d))
        return 0;
    if (json_is_string(x)) {
        const char *s = json_string_value(x);
        if (get_number_lenient(x, d) || ck__parse_date_math(s, json_string_length(x), d))
            return 0;
        return ck__qerr(p->p_err, PE,
                        "[range] failed to parse [%s] of field [%s]: [%s] is neither a number "
                        "nor a date",
                        k, field, s);
    }
    return ck__qerr(p->p_err, PE, "[range] [%s] of field [%s] must be a number or a date string", k,
                    field);
}

static int parse_range(pctx_t *p, const json_t *body, ck__qnode_t **out)
{
    const char *field;
    json_t *v;
    int rc = single_field(p, "range", body, &field, &v);
    if (rc)
        return rc;
    if (!json_is_object(v))
        return ck__qerr(p->p_err, PE, "[range] query malformed, no start_object after field [%s]",
                        field);
    ck__qnode_t *q = new_node(CK__Q_RANGE);
    if (!q || !(q->q_field = ck_strdup(field))) {
        free_node(q);
        return oom(p);
    }
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        if (json_is_null(x) && (!strcmp(k, "gt") || !strcmp(k, "gte") || !strcmp(k, "lt") ||
                                !strcmp(k, "lte") || !strcmp(k, "from") || !strcmp(k, "to")))
            continue; /* an open bound */
        if (strcmp(k, "gt") == 0 || strcmp(k, "gte") == 0 || strcmp(k, "from") == 0) {
            rc = range_bound(p, field, k, x, &q->q_lo);
            q->q_has_lo = true;
            q->q_lo_incl = k[1] != 't' || k[2] == 'e';
        } else if (strcmp(k, "lt") == 0 || strcmp(k, "lte") == 0 || strcmp(k, "to") == 0) {
            rc = range_bound(p, field, k, x, &q->q_hi);
            q->q_has_hi = true;
            q->q_hi_incl = k[0] == 't' || k[2] == 'e';
        } else if (strcmp(k, "boost") == 0) {
            rc = get_boost(p, "range", x, &q->q_boost);
        } else if (strcmp(k, "format") == 0 || strcmp(k, "time_zone") == 0 ||
                   strcmp(k, "relation") == 0 || strcmp(k, "_name") == 0 ||
                   strcmp(k, "include_lower") == 0 || strcmp(k, "include_upper") == 0) {
        } else {
            rc = ck__qerr(p->p_err, PE, "[range] query does not support [%s]", k);
        }
        if (rc)
            break;
    }
    if (rc) {
        free_node(q);
        return rc;
    }
    *out = q;
    return 0;
}

static int parse_exists(pctx_t *p, const json_t *body, ck__qnode_t **out)
{
    if (!json_is_object(body))
        return ck__qerr(p->p_err, PE, "[exists] query malformed");
    const char *f = json_string_value(json_object_get(body, "field"));
    if (!f || !*f || strlen(f) > CK_SEG_FIELD_MAX)
        return ck__qerr(p->p_err, PE, "[exists] must be provided with a [field]");
    ck__qnode_t *q = new_node(CK__Q_EXISTS);
    if (!q || !(q->q_field = ck_strdup(f))) {
        free_node(q);
        return oom(p);
    }
    json_t *b = json_object_get(body, "boost");
    int rc = b ? get_boost(p, "exists", b, &q->q_boost) : 0;
    if (rc) {
        free_node(q);
        return rc;
    }
    *out = q;
    return 0;
}

static int parse_prefix(pctx_t *p, const json_t *body, ck__qnode_t **out)
{
    const char *field;
    json_t *v;
    int rc = single_field(p, "prefix", body, &field, &v);
    if (rc)
        return rc;
    ck__qnode_t *q = new_node(CK__Q_PREFIX);
    if (!q || !(q->q_field = ck_strdup(field))) {
        free_node(q);
        return oom(p);
    }
    const json_t *val = v;
    if (json_is_object(v)) {
        val = NULL;
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (strcmp(k, "value") == 0)
                val = x;
            else if (strcmp(k, "boost") == 0)
                rc = get_boost(p, "prefix", x, &q->q_boost);
            else if (strcmp(k, "_name") != 0 && strcmp(k, "rewrite") != 0 &&
                     strcmp(k, "case_insensitive") != 0)
                rc = ck__qerr(p->p_err, PE, "[prefix] query does not support [%s]", k);
            if (rc)
                break;
        }
    }
    if (!rc && !json_is_string(val))
        rc = ck__qerr(p->p_err, PE, "[prefix] query requires a string value");
    if (!rc) {
        q->q_text_len = json_string_length(val);
        q->q_text = ck_strndup(json_string_value(val), q->q_text_len);
        if (!q->q_text)
            rc = oom(p);
    }
    if (rc) {
        free_node(q);
        return rc;
    }
    add_hl(p, q->q_field, q->q_text, q->q_text_len, CK__H_PREFIX);
    *out = q;
    return 0;
}

static int parse_bool(pctx_t *p, const json_t *body, ck__qnode_t **out)
{
    static const char *const occ[CK__B_N] = {"must", "should", "must_not", "filter"};
    if (!json_is_object(body))
        return ck__qerr(p->p_err, PE, "[bool] query malformed, no start_object after query name");
    ck__qnode_t *q = new_node(CK__Q_BOOL);
    if (!q)
        return oom(p);
    int rc = 0;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)body, k, x)
    {
        int o = -1;
        for (int i = 0; i < CK__B_N; i++)
            if (strcmp(k, occ[i]) == 0)
                o = i;
        if (o >= 0) {
            if (json_is_object(x)) {
                ck__qnode_t *kid;
                rc = parse_query(p, x, &kid);
                if (!rc)
                    rc = add_kid(p, q, o, kid);
            } else if (json_is_array(x)) {
                size_t i;
                json_t *e;
                json_array_foreach(x, i, e)
                {
                    ck__qnode_t *kid;
                    rc = parse_query(p, e, &kid);
                    if (!rc)
                        rc = add_kid(p, q, o, kid);
                    if (rc)
                        break;
                }
            } else {
                rc = ck__qerr(p->p_err, PE, "[bool] [%s] must be an object or an array", k);
            }
        } else if (strcmp(k, "minimum_should_match") == 0) {
            rc = parse_msm(p, "bool", x, &q->q_msm);
        } else if (strcmp(k, "boost") == 0) {
            rc = get_boost(p, "bool", x, &q->q_boost);
        } else if (strcmp(k, "_name") == 0 || strcmp(k, "adjust_pure_negative") == 0) {
        } else {
            rc = ck__qerr(p->p_err, PE, "[bool] query does not support [%s]", k);
        }
        if (rc)
            break;
    }
    if (rc) {
        free_node(q);
        return rc;
    }
    *out = q;
    return 0;
}

static int parse_const(pctx_t *p, const json_t *body, ck__qnode_t **out)
{
    if (!json_is_object(body))
        return ck__qerr(p->p_err, PE, "[constant_score] query malformed");
    const json_t *f = json_object_get(body, "filter");
    if (!f)
        return ck__qerr(p->p_err, PE, "[constant_score] requires a 'filter' element");
    ck__qnode_t *q = new_node(CK__Q_CONST), *kid;
    if (!q)
        return oom(p);
    const char *k;
    json_t *x;
    int rc = 0;
    json_object_foreach((json_t *)body, k, x)
    {
        if (strcmp(k, "boost") == 0)
            rc = get_boost(p, "constant_score", x, &q->q_boost);
        else if (strcmp(k, "filter") != 0 && strcmp(k, "_name") != 0)
            rc = ck__qerr(p->p_err, PE, "[constant_score] query does not support [%s]", k);
        if (rc)
            break;
    }
    if (!rc)
        rc = parse_query(p, f, &kid);
    if (!rc)
        rc = add_kid(p, q, CK__B_FILTER, kid);
    if (rc) {
        free_node(q);
        return rc;
    }
    *out = q;
    return 0;
}

static int parse_simple(pctx_t *p, const json_t *body, ck__qkind_t k, const char *qname,
                        ck__qnode_t **out)
{
    if (!json_is_object(body))
        return ck__qerr(p->p_err, PE, "[%s] query malformed, no start_object after query name",
                        qname);
    ck__qnode_t *q = new_node(k);
    if (!q)
        return oom(p);
    const char *key;
    json_t *x;
    int rc = 0;
    json_object_foreach((json_t *)body, key, x)
    {
        if (strcmp(key, "boost") == 0)
            rc = get_boost(p, qname, x, &q->q_boost);
        else if (strcmp(key, "_name") != 0)
            rc = ck__qerr(p->p_err, PE, "[%s] query does not support [%s]", qname, key);
        if (rc)
            break;
    }
    if (rc) {
        free_node(q);
        return rc;
    }
    *out = q;
    return 0;
}

/* ---- query_string ---- */

typedef struct qsp {
    pctx_t *s_p;
    const char *s_s, *s_end;
    const char *s_dfield; /* default field, NULL when s_fields is used */
    char **s_fields;      /* "fields" option */
    double *s_fboost;
    size_t s_nfields;
    bool s_and; /* default_operator AND */
    int s_depth;
} qsp_t;

enum { MOD_NONE, MOD_REQ, MOD_NOT };
enum { CONJ_NONE, CONJ_AND, CONJ_OR };

static void qs_skip_ws(qsp_t *s)
{
    while (s->s_s < s->s_end && isspace((unsigned char)*s->s_s))
        s->s_s++;
}

static bool qs_word_is(qsp_t *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->s_end - s->s_s) < n || memcmp(s->s_s, w, n) != 0)
        return false;
    const char *e = s->s_s + n;
    return e == s->s_end || isspace((unsigned char)*e) || *e == '(' || *e == '"';
}

static bool qs_special(char c)
{
    return isspace((unsigned char)c) || c == '(' || c == ')' || c == '"' || c == ':' || c == '^';
}

/* Reads a bare word (backslash escapes kept literal) into a new string. */
static char *qs_word(qsp_t *s, size_t *len, bool *had_star)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    *had_star = false;
    while (s->s_s < s->s_end && !qs_special(*s->s_s)) {
        char c = *s->s_s++;
        if (c == '\\' && s->s_s < s->s_end)
            c = *s->s_s++;
        else if (c == '*' && (s->s_s == s->s_end || qs_special(*s->s_s)))
            *had_star = true;
        if (!*had_star)
            ck_wr_bytes(&w, &c, 1);
    }
    ck_wr_bytes(&w, "", 1);
    if (w.err) {
        ck_wbuf_free(&w);
        return NULL;
    }
    size_t n;
    char *r = (char *)ck_wbuf_steal(&w, &n);
    *len = n - 1;
    return r;
}

/* A leaf on one field or on the default field(s). */
static int qs_leaf(qsp_t *s, const char *field, char *text, size_t len, bool phrase, bool prefix,
                   ck__qnode_t **out)
{
    pctx_t *p = s->s_p;
    ck__qnode_t *q;
    if (field && strcmp(field, "_exists_") == 0) {
        q = new_node(CK__Q_EXISTS);
        if (!q) {
            ck_free(text);
            return oom(p);
        }
        q->q_field = text;
        *out = q;
        return 0;
    }
    if (!field && !s->s_dfield) {
        /* several default fields: a multi_match (best_fields) of the leaf */
        if (phrase || prefix) {
            q = new_node(CK__Q_BOOL);
            if (!q) {
                ck_free(text);
                return oom(p);
            }
            int rc = 0;
            for (size_t i = 0; !rc && i < s->s_nfields; i++) {
                char *t = ck_strndup(text, len);
                ck__qnode_t *kid;
                if (!t)
                    rc = oom(p);
                else
                    rc = qs_leaf(s, s->s_fields[i], t, len, phrase, prefix, &kid);
                if (!rc) {
                    kid->q_boost *= s->s_fboost[i];
                    rc = add_kid(p, q, CK__B_SHOULD, kid);
                }
            }
            ck_free(text);
            if (rc) {
                free_node(q);
                return rc;
            }
            *out = q;
            return 0;
        }
        q = new_node(CK__Q_MULTI);
        if (!q || !(q->q_fields = ck_calloc(s->s_nfields, sizeof(char *))) ||
            !(q->q_fboost = ck_calloc(s->s_nfields, sizeof(double)))) {
            free_node(q);
            ck_free(text);
            return oom(p);
        }
        q->q_text = text;
        q->q_text_len = len;
        q->q_op_and = s->s_and;
        for (size_t i = 0; i < s->s_nfields; i++) {
            q->q_fields[i] = ck_strdup(s->s_fields[i]);
            if (!q->q_fields[i]) {
                free_node(q);
                return oom(p);
            }
            q->q_fboost[i] = s->s_fboost[i];
            q->q_nfields = i + 1;
            add_hl(p, q->q_fields[i], text, len, CK__H_ANALYZED);
        }
        *out = q;
        return 0;
    }
    const char *f = field ? field : s->s_dfield;
    q = new_node(prefix ? CK__Q_PREFIX : phrase ? CK__Q_PHRASE : CK__Q_MATCH);
    if (!q || !(q->q_field = ck_strdup(f))) {
        free_node(q);
        ck_free(text);
        return oom(p);
    }
    if (prefix) /* query_string lowercases prefix terms for analyzed fields */
        for (size_t i = 0; i < len; i++)
            text[i] = (char)tolower((unsigned char)text[i]);
    q->q_text = text;
    q->q_text_len = len;
    q->q_op_and = s->s_and;
    add_hl(p, f, text, len, prefix ? CK__H_PREFIX : CK__H_ANALYZED);
    *out = q;
    return 0;
}

static int qs_expr(qsp_t *s, const char *field, ck__qnode_t **out, bool inner);

/* One clause: (group), "phrase", word, field:..., with optional ^boost. */
static int qs_clause(qsp_t *s, const char *field, ck__qnode_t **out)
{
    pctx_t *p = s->s_p;
    int rc;
    qs_skip_ws(s);
    if (s->s_s >= s->s_end)
        return ck__qerr(p->p_err, PE, "[query_string] Failed to parse query: unexpected end");
    ck__qnode_t *q = NULL;
    char c = *s->s_s;
    if (c == '(') {
        s->s_s++;
        if (++s->s_depth > CK__Q_MAX_DEPTH)
            return ck__qerr(p->p_err, PE, "[query_string] too deeply nested");
        rc = qs_expr(s, field, &q, true);
        s->s_depth--;
        if (rc)
            return rc;
        qs_skip_ws(s);
        if (s->s_s >= s->s_end || *s->s_s != ')') {
            free_node(q);
            return ck__qerr(p->p_err, PE, "[query_string] Failed to parse query: missing ')'");
        }
        s->s_s++;
    } else if (c == '"') {
        const char *b = ++s->s_s;
        while (s->s_s < s->s_end && *s->s_s != '"')
            s->s_s += (*s->s_s == '\\' && s->s_s + 1 < s->s_end) ? 2 : 1;
        if (s->s_s >= s->s_end)
            return ck__qerr(p->p_err, PE,
                            "[query_string] Failed to parse query: unterminated phrase");
        char *t = ck_strndup(b, (size_t)(s->s_s - b));
        s->s_s++;
        if (!t)
            return oom(p);
        rc = qs_leaf(s, field, t, strlen(t), true, false, &q);
        if (rc)
            return rc;
        if (s->s_s < s->s_end && *s->s_s == '~') { /* "a b"~2: slop */
            s->s_s++;
            uint32_t sl = 0;
            while (s->s_s < s->s_end && isdigit((unsigned char)*s->s_s) && sl < 100000)
                sl = sl * 10 + (uint32_t)(*s->s_s++ - '0');
            if (q->q_kind == CK__Q_PHRASE)
                q->q_slop = sl;
        }
    } else if (c == ')' || c == ':' || c == '^') {
        return ck__qerr(p->p_err, PE, "[query_string] Failed to parse query: unexpected '%c'", c);
    } else {
        size_t n;
        bool star;
        char *w = qs_word(s, &n, &star);
        if (!w)
            return oom(p);
        if (s->s_s < s->s_end && *s->s_s == ':' && !field && !star) {
            s->s_s++;
            if (n == 0 || n > CK_SEG_FIELD_MAX) {
                ck_free(w);
                return ck__qerr(p->p_err, PE, "[query_string] bad field name");
            }
            qs_skip_ws(s);
            rc = qs_clause(s, w, out);
            ck_free(w);
            return rc;
        }
        if (n == 0 && !star) {
            ck_free(w);
            return ck__qerr(p->p_err, PE,
                            "[query_string] Failed to parse query: unexpected character");
        }
        if (star && n == 0) {
            ck_free(w);
            q = field && strcmp(field, "_exists_") != 0 ? new_node(CK__Q_EXISTS)
                                                        : new_node(CK__Q_ALL);
            if (!q || (q->q_kind == CK__Q_EXISTS && !(q->q_field = ck_strdup(field)))) {
                free_node(q);
                return oom(p);
            }
        } else {
            rc = qs_leaf(s, field, w, n, false, star, &q);
            if (rc)
                return rc;
        }
    }
    if (s->s_s < s->s_end && *s->s_s == '^') {
        s->s_s++;
        char *end;
        double b = strtod(s->s_s, &end);
        if (end == s->s_s || end > s->s_end || !isfinite(b) || b < 0) {
            free_node(q);
            return ck__qerr(p->p_err, PE, "[query_string] bad boost");
        }
        s->s_s = end;
        q->q_boost *= b;
    }
    *out = q;
    return 0;
}

/* A sequence of clauses joined by AND/OR/implicit operator with +/-/NOT modifiers, as the
 * classic Lucene query parser combines them: AND makes both neighbours required, OR under
 * a default AND makes the previous one optional, NOT/- prohibits, + requires. */
static int qs_expr(qsp_t *s, const char *field, ck__qnode_t **out, bool inner)
{
    pctx_t *p = s->s_p;
    ck__qnode_t *b = new_node(CK__Q_BOOL);
    if (!b)
        return oom(p);
    /* occurrence of each clause so far, parallel to a flat list */
    ck__qnode_t **cl = NULL;
    int *occ = NULL;
    size_t n = 0;
    int rc = 0;
    int conj = CONJ_NONE;
    for (;;) {
        qs_skip_ws(s);
        if (s->s_s >= s->s_end || (inner && *s->s_s == ')'))
            break;
        if (qs_word_is(s, "AND") || (s->s_end - s->s_s >= 2 && memcmp(s->s_s, "&&", 2) == 0)) {
            s->s_s += *s->s_s == 'A' ? 3 : 2;
            conj = CONJ_AND;
            continue;
        }
        if (qs_word_is(s, "OR") || (s->s_end - s->s_s >= 2 && memcmp(s->s_s, "||", 2) == 0)) {
            s->s_s += 2;
            conj = CONJ_OR;
            continue;
        }
        int mod = MOD_NONE;
        if (qs_word_is(s, "NOT")) {
            s->s_s += 3;
            mod = MOD_NOT;
        } else if (*s->s_s == '-' || *s->s_s == '!') {
            s->s_s++;
            mod = MOD_NOT;
        } else if (*s->s_s == '+') {
            s->s_s++;
            mod = MOD_REQ;
        }
        ck__qnode_t *c;
        rc = qs_clause(s, field, &c);
        if (rc)
            break;
        if (n >= CK__Q_MAX_CLAUSES) {
            free_node(c);
            rc = ck__qerr(p->p_err, PE, "[query_string] too many clauses");
            break;
        }
        ck__qnode_t **ncl = ck_realloc(cl, (n + 1) * sizeof(*ncl));
        if (ncl)
            cl = ncl;
        int *nocc = ncl ? ck_realloc(occ, (n + 1) * sizeof(*nocc)) : NULL;
        if (!nocc) {
            free_node(c);
            rc = oom(p);
            break;
        }
        occ = nocc;
        /* the previous clause, by the conjunction in front of this one */
        if (n > 0 && occ[n - 1] != CK__B_MUST_NOT) {
            if (conj == CONJ_AND)
                occ[n - 1] = CK__B_MUST;
            else if (conj == CONJ_OR && s->s_and)
                occ[n - 1] = CK__B_SHOULD;
        }
        int o;
        if (mod == MOD_NOT)
            o = CK__B_MUST_NOT;
        else if (mod == MOD_REQ || conj == CONJ_AND)
            o = CK__B_MUST;
        else if (s->s_and && conj != CONJ_OR)
            o = CK__B_MUST;
        else
            o = CK__B_SHOULD;
        cl[n] = c;
        occ[n++] = o;
        conj = CONJ_NONE;
    }
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = add_kid(p, b, occ[i], cl[i]);
        else
            free_node(cl[i]);
    }
    ck_free(cl);
    ck_free(occ);
    if (!rc && n == 0 && !inner)
        rc = ck__qerr(p->p_err, PE, "[query_string] Failed to parse query: empty query");
    if (!rc && b->q_nkids[CK__B_MUST_NOT] && !b->q_nkids[CK__B_MUST] && !b->q_nkids[CK__B_SHOULD]) {
        /* a purely negative query matches everything else */
        ck__qnode_t *all = new_node(CK__Q_ALL);
        rc = all ? add_kid(p, b, CK__B_MUST, all) : oom(p);
    }
    if (rc) {
        free_node(b);
        return rc;
    }
    /* unwrap a single optional or required clause */
    if (n == 1 && b->q_nkids[CK__B_MUST_NOT] == 0) {
        int o = b->q_nkids[CK__B_MUST] ? CK__B_MUST : CK__B_SHOULD;
        *out = b->q_kids[o][0];
        b->q_nkids[o] = 0;
        free_node(b);
        return 0;
    }
    *out = b;
    return 0;
}

static int parse_qstring(pctx_t *p, const json_t *body, ck__qnode_t **out)
{
    const char *qname = "query_string";
    if (!json_is_object(body))
        return ck__qerr(p->p_err, PE, "[%s] query malformed", qname);
    qsp_t s = {.s_p = p, .s_dfield = "_all"};
    const char *text = NULL;
    size_t tlen = 0;
    double boost = 1.0;
    const json_t *fields = NULL;
    const char *k;
    json_t *x;
    int rc = 0;
    json_object_foreach((json_t *)body, k, x)
    {
        if (strcmp(k, "query") == 0) {
            text = json_string_value(x);
            tlen = json_string_length(x);
            if (!text)
                rc = ck__qerr(p->p_err, PE, "[%s] [query] must be a string", qname);
        } else if (strcmp(k, "default_field") == 0) {
            s.s_dfield = json_string_value(x);
            if (!s.s_dfield || !*s.s_dfield || strlen(s.s_dfield) > CK_SEG_FIELD_MAX)
                rc = ck__qerr(p->p_err, PE, "[%s] [default_field] must be a field name", qname);
            else if (strcmp(s.s_dfield, "*") == 0)
                s.s_dfield = "_all";
        } else if (strcmp(k, "fields") == 0) {
            if (!json_is_array(x) || json_array_size(x) == 0 || json_array_size(x) > 256)
                rc = ck__qerr(p->p_err, PE, "[%s] [fields] must be a non-empty array", qname);
            else
                fields = x;
        } else if (strcmp(k, "default_operator") == 0) {
            const char *o = json_string_value(x);
            if (o && strcasecmp(o, "and") == 0)
                s.s_and = true;
            else if (!o || strcasecmp(o, "or") != 0)
                rc = ck__qerr(p->p_err, PE, "[%s] default_operator must be [AND] or [OR]", qname);
        } else if (strcmp(k, "boost") == 0) {
            rc = get_boost(p, qname, x, &boost);
        } else if (strcmp(k, "analyzer") == 0 || strcmp(k, "_name") == 0 ||
                   strcmp(k, "lenient") == 0 || strcmp(k, "analyze_wildcard") == 0 ||
                   strcmp(k, "allow_leading_wildcard") == 0) {
        } else {
            rc = ck__qerr(p->p_err, PE, "[%s] query does not support [%s]", qname, k);
        }
        if (rc)
            return rc;
    }
    if (!text)
        return ck__qerr(p->p_err, PE, "[%s] must be provided with a [query]", qname);
    if (fields) {
        size_t n = json_array_size(fields);
        s.s_fields = ck_calloc(n, sizeof(char *));
        s.s_fboost = ck_calloc(n, sizeof(double));
        if (!s.s_fields || !s.s_fboost)
            rc = oom(p);
        for (size_t i = 0; !rc && i < n; i++) {
            const char *f = json_string_value(json_array_get(fields, i));
            if (!f) {
                rc = ck__qerr(p->p_err, PE, "[%s] [fields] entries must be strings", qname);
                break;
            }
            const char *caret = strrchr(f, '^');
            size_t fl = caret ? (size_t)(caret - f) : strlen(f);
            s.s_fboost[i] = caret ? strtod(caret + 1, NULL) : 1.0;
            if (!isfinite(s.s_fboost[i]) || s.s_fboost[i] < 0)
                s.s_fboost[i] = 1.0;
            if (fl == 0 || fl > CK_SEG_FIELD_MAX) {
                rc = ck__qerr(p->p_err, PE, "[%s] bad field name [%s]", qname, f);
                break;
            }
            s.s_fields[i] = ck_strndup(f, fl);
            if (!s.s_fields[i])
                rc = oom(p);
            else
                s.s_nfields = i + 1;
        }
        s.s_dfield = NULL;
    }
    if (!rc) {
        s.s_s = text;
        s.s_end = text + tlen;
        rc = qs_expr(&s, NULL, out, false);
        if (!rc)
            (*out)->q_boost *= boost;
    }
    free_strv(s.s_fields, s.s_nfields);
    ck_free(s.s_fboost);
    return rc;
}

/* ---- dispatch ---- */

static int parse_query(pctx_t *p, const json_t *j, ck__qnode_t **out)
{
    if (!json_is_object(j))
        return ck__qerr(p->p_err, PE, "query malformed, must start with start_object");
    if (json_object_size(j) != 1)
        return ck__qerr(p->p_err, PE,
                        json_object_size(j) == 0
                            ? "query malformed, empty clause found"
                            : "[%s] malformed query, expected [END_OBJECT] but found [FIELD_NAME]",
                        json_object_iter_key(json_object_iter((json_t *)j)));
    if (p->p_depth >= CK__Q_MAX_DEPTH)
        return ck__qerr(p->p_err, PE, "query too deeply nested (max %d)", CK__Q_MAX_DEPTH);
    const char *name = json_object_iter_key(json_object_iter((json_t *)j));
    const json_t *body = json_object_iter_value(json_object_iter((json_t *)j));
    int rc;
    p->p_depth++;
    if (strcmp(name, "match") == 0)
        rc = parse_match(p, body, out, false);
    else if (strcmp(name, "match_phrase") == 0)
        rc = parse_match(p, body, out, true);
    else if (strcmp(name, "multi_match") == 0)
        rc = parse_multi(p, body, out);
    else if (strcmp(name, "bool") == 0)
        rc = parse_bool(p, body, out);
    else if (strcmp(name, "term") == 0)
        rc = parse_term(p, body, out);
    else if (strcmp(name, "terms") == 0)
        rc = parse_terms(p, body, out);
    else if (strcmp(name, "range") == 0)
        rc = parse_range(p, body, out);
    else if (strcmp(name, "exists") == 0)
        rc = parse_exists(p, body, out);
    else if (strcmp(name, "prefix") == 0)
        rc = parse_prefix(p, body, out);
    else if (strcmp(name, "match_all") == 0)
        rc = parse_simple(p, body, CK__Q_ALL, name, out);
    else if (strcmp(name, "match_none") == 0)
        rc = parse_simple(p, body, CK__Q_NONE, name, out);
    else if (strcmp(name, "query_string") == 0)
        rc = parse_qstring(p, body, out);
    else if (strcmp(name, "constant_score") == 0)
        rc = parse_const(p, body, out);
    else
        rc = ck__qerr(p->p_err, PE, "unknown query [%s]", name);
    p->p_depth--;
    return rc;
}

/* ---- request ---- */

static int get_size(pctx_t *p, const char *name, const json_t *v, size_t *out)
{
    double d;
    if (!get_number_lenient(v, &d) || d != floor(d))
        return ck__qerr(p->p_err, XE, "[search] failed to parse field [%s]: expected an integer",
                        name);
    if (d < 0)
        return ck__qerr(p->p_err, IAE, "[%s] parameter cannot be negative, found [%.0f]", name, d);
    *out = d > 1e9 ? (size_t)1e9 : (size_t)d;
    return 0;
}

static int str_list(pctx_t *p, const char *what, const json_t *v, char ***out, size_t *n)
{
    size_t cnt = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : (size_t)-1;
    if (cnt == (size_t)-1 || cnt > CK__Q_MAX_CLAUSES)
        return ck__qerr(p->p_err, XE, "[%s] must be a string or an array of strings", what);
    char **a = cnt ? ck_calloc(cnt, sizeof(char *)) : NULL;
    if (cnt && !a)
        return oom(p);
    *out = a;
    for (size_t i = 0; i < cnt; i++) {
        const char *s = json_string_value(json_is_string(v) ? v : json_array_get(v, i));
        if (!s)
            return ck__qerr(p->p_err, XE, "[%s] must be a string or an array of strings", what);
        a[i] = ck_strdup(s);
        if (!a[i])
            return oom(p);
        *n = i + 1;
    }
    return 0;
}

static int parse_source(pctx_t *p, const json_t *v)
{
    ck_search_req_t *rq = p->p_rq;
    if (json_is_boolean(v)) {
        rq->r_src_mode = json_is_true(v) ? 0 : 1;
        return 0;
    }
    rq->r_src_mode = 2;
    if (json_is_string(v) || json_is_array(v))
        return str_list(p, "_source", v, &rq->r_src_inc, &rq->r_nsrc_inc);
    if (!json_is_object(v))
        return ck__qerr(p->p_err, XE,
                        "[_source] must be a boolean, a string, an array or an "
                        "object");
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        int rc;
        if (strcmp(k, "includes") == 0 || strcmp(k, "include") == 0)
            rc = rq->r_src_inc
                     ? 0
                     : str_list(p, "_source.includes", x, &rq->r_src_inc, &rq->r_nsrc_inc);
        else if (strcmp(k, "excludes") == 0 || strcmp(k, "exclude") == 0)
            rc = rq->r_src_exc
                     ? 0
                     : str_list(p, "_source.excludes", x, &rq->r_src_exc, &rq->r_nsrc_exc);
        else
            rc = ck__qerr(p->p_err, PE, "Unknown key for a START_ARRAY in [%s].", k);
        if (rc)
            return rc;
    }
    return 0;
}

static int add_sort(pctx_t *p, const char *field, bool desc, bool has_order)
{
    ck_search_req_t *rq = p->p_rq;
    if (rq->r_nsort >= 16)
        return ck__qerr(p->p_err, PE, "[sort] too many sort keys");
    ck__sort_t *v = ck_realloc(rq->r_sort, (rq->r_nsort + 1) * sizeof(*v));
    if (!v)
        return oom(p);
    rq->r_sort = v;
    ck__sort_t *s = &v[rq->r_nsort];
    memset(s, 0, sizeof(*s));
    if (strcmp(field, "_score") == 0) {
        s->s_kind = CK__S_SCORE;
        s->s_desc = has_order ? desc : true;
    } else if (strcmp(field, "_doc") == 0) {
        s->s_kind = CK__S_DOC;
        s->s_desc = desc;
    } else {
        if (!*field || strlen(field) > CK_SEG_FIELD_MAX)
            return ck__qerr(p->p_err, PE, "[sort] bad field name");
        s->s_kind = CK__S_FIELD;
        s->s_desc = desc;
        s->s_field = ck_strdup(field);
        if (!s->s_field)
            return oom(p);
    }
    rq->r_nsort++;
    return 0;
}

static int parse_order(pctx_t *p, const json_t *v, bool *desc)
{
    const char *o = json_string_value(v);
    if (o && strcasecmp(o, "desc") == 0)
        *desc = true;
    else if (o && strcasecmp(o, "asc") == 0)
        *desc = false;
    else
        return ck__qerr(p->p_err, IAE, "[sort] order must be [asc] or [desc]");
    return 0;
}

static int parse_sort_one(pctx_t *p, const json_t *v)
{
    if (json_is_string(v))
        return add_sort(p, json_string_value(v), false, false);
    if (!json_is_object(v) || json_object_size(v) != 1)
        return ck__qerr(p->p_err, PE, "[sort] malformed: expected a field name or {field: order}");
    const char *f = json_object_iter_key(json_object_iter((json_t *)v));
    const json_t *o = json_object_iter_value(json_object_iter((json_t *)v));
    bool desc = false;
    int rc;
    if (json_is_string(o)) {
        rc = parse_order(p, o, &desc);
    } else if (json_is_object(o)) {
        rc = 0;
        const char *k;
        json_t *x;
        bool has = false;
        json_object_foreach((json_t *)o, k, x)
        {
            if (strcmp(k, "order") == 0) {
                rc = parse_order(p, x, &desc);
                has = true;
            } else if (strcmp(k, "missing") != 0 && strcmp(k, "unmapped_type") != 0 &&
                       strcmp(k, "mode") != 0 && strcmp(k, "format") != 0) {
                rc = ck__qerr(p->p_err, PE, "[sort] option [%s] not supported", k);
            }
            if (rc)
                return rc;
        }
        if (!has)
            return add_sort(p, f, false, false);
    } else {
        rc = ck__qerr(p->p_err, PE, "[sort] malformed order for [%s]", f);
    }
    return rc ? rc : add_sort(p, f, desc, true);
}

static int parse_highlight(pctx_t *p, const json_t *v)
{
    ck_search_req_t *rq = p->p_rq;
    if (!json_is_object(v))
        return ck__qerr(p->p_err, PE, "[highlight] must be an object");
    rq->r_hl = true;
    rq->r_hl_frag_size = 150;
    rq->r_hl_nfrags = 3;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        int rc = 0;
        if (strcmp(k, "fields") == 0) {
            if (json_is_object(x)) {
                size_t n = json_object_size(x), i = 0;
                if (n > CK__Q_MAX_CLAUSES)
                    return ck__qerr(p->p_err, PE, "[highlight] too many fields");
                rq->r_hl_fields = n ? ck_calloc(n, sizeof(char *)) : NULL;
                if (n && !rq->r_hl_fields)
                    return oom(p);
                const char *f;
                json_t *fo;
                json_object_foreach(x, f, fo)
                {
                    if (!(rq->r_hl_fields[i] = ck_strdup(f)))
                        return oom(p);
                    rq->r_hl_nfields = ++i;
                }
            } else if (json_is_array(x)) {
                size_t n = json_array_size(x);
                if (n > CK__Q_MAX_CLAUSES)
                    return ck__qerr(p->p_err, PE, "[highlight] too many fields");
                rq->r_hl_fields = n ? ck_calloc(n, sizeof(char *)) : NULL;
                if (n && !rq->r_hl_fields)
                    return oom(p);
                for (size_t i = 0; i < n; i++) {
                    const json_t *e = json_array_get(x, i);
                    const char *f = json_is_object(e) && json_object_size(e) == 1
                                        ? json_object_iter_key(json_object_iter((json_t *)e))
                                        : json_string_value(e);
                    if (!f)
                        return ck__qerr(p->p_err, PE, "[highlight] malformed [fields]");
                    if (!(rq->r_hl_fields[i] = ck_strdup(f)))
                        return oom(p);
                    rq->r_hl_nfields = i + 1;
                }
            } else {
                rc = ck__qerr(p->p_err, PE, "[highlight] [fields] must be an object");
            }
        } else if (strcmp(k, "pre_tags") == 0 || strcmp(k, "post_tags") == 0) {
            const json_t *t = json_is_array(x) ? json_array_get(x, 0) : x;
            const char *s = json_string_value(t);
            if (!s)
                return ck__qerr(p->p_err, PE, "[highlight] [%s] must be an array of strings", k);
            char **dst = k[1] == 'r' ? &rq->r_hl_pre : &rq->r_hl_post;
            ck_free(*dst);
            if (!(*dst = ck_strdup(s)))
                return oom(p);
        } else if (strcmp(k, "fragment_size") == 0) {
            rc = get_size(p, "highlight.fragment_size", x, &rq->r_hl_frag_size);
        } else if (strcmp(k, "number_of_fragments") == 0) {
            rc = get_size(p, "highlight.number_of_fragments", x, &rq->r_hl_nfrags);
        } else if (strcmp(k, "type") == 0 || strcmp(k, "order") == 0 ||
                   strcmp(k, "require_field_match") == 0 || strcmp(k, "encoder") == 0 ||
                   strcmp(k, "no_match_size") == 0 || strcmp(k, "boundary_scanner") == 0) {
        } else {
            rc = ck__qerr(p->p_err, PE, "[highlight] unknown field [%s]", k);
        }
        if (rc)
            return rc;
    }
    if (rq->r_hl_frag_size < 18)
        rq->r_hl_frag_size = 18;
    if (rq->r_hl_nfrags > 100)
        rq->r_hl_nfrags = 100;
    if ((!rq->r_hl_pre && !(rq->r_hl_pre = ck_strdup("<em>"))) ||
        (!rq->r_hl_post && !(rq->r_hl_post = ck_strdup("</em>"))))
        return oom(p);
    return 0;
}

static int parse_body(pctx_t *p, const json_t *body)
{
    ck_search_req_t *rq = p->p_rq;
    if (!body || json_is_null(body))
        return 0;
    if (!json_is_object(body))
        return ck__qerr(p->p_err, PE, "request body must be a JSON object");
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)body, k, x)
    {
        int rc = 0;
        if (strcmp(k, "query") == 0) {
            rc = parse_query(p, x, &rq->r_query);
        } else if (strcmp(k, "from") == 0) {
            rc = get_size(p, "from", x, &rq->r_from);
        } else if (strcmp(k, "size") == 0) {
            rc = get_size(p, "size", x, &rq->r_size);
        } else if (strcmp(k, "index") == 0) {
            if (!json_is_string(x))
                rc = ck__qerr(p->p_err, XE,
                              "[search] failed to parse field [index]: expected "
                              "a string");
            else if (!(rq->r_index = ck_strdup(json_string_value(x))))
                rc = oom(p);
        } else if (strcmp(k, "sort") == 0) {
            if (json_is_array(x)) {
                size_t i;
                json_t *e;
                json_array_foreach(x, i, e)
                {
                    if ((rc = parse_sort_one(p, e)))
                        break;
                }
            } else {
                rc = parse_sort_one(p, x);
            }
        } else if (strcmp(k, "_source") == 0) {
            rc = parse_source(p, x);
        } else if (strcmp(k, "highlight") == 0) {
            rc = parse_highlight(p, x);
        } else if (strcmp(k, "track_total_hits") == 0) {
            if (json_is_boolean(x)) {
                rq->r_track = json_is_true(x);
                rq->r_track_limit = UINT64_MAX;
            } else if (json_is_integer(x) && json_integer_value(x) >= 0) {
                rq->r_track = true;
                rq->r_track_limit = (uint64_t)json_integer_value(x);
            } else {
                rc = ck__qerr(p->p_err, IAE,
                              "[track_total_hits] must be a boolean or a non-negative integer");
            }
        } else if (strcmp(k, "min_score") == 0) {
            if (!get_number(x, &rq->r_min_score))
                rc = ck__qerr(p->p_err, XE, "[search] failed to parse field [min_score]");
            rq->r_has_min_score = true;
        } else if (strcmp(k, "timeout") == 0 || strcmp(k, "aggs") == 0 ||
                   strcmp(k, "aggregations") == 0 || strcmp(k, "explain") == 0 ||
                   strcmp(k, "version") == 0 || strcmp(k, "track_scores") == 0 ||
                   strcmp(k, "seq_no_primary_term") == 0 || strcmp(k, "stored_fields") == 0 ||
                   strcmp(k, "terminate_after") == 0 || strcmp(k, "search_after") == 0 ||
                   strcmp(k, "docvalue_fields") == 0) {
            /* accepted, ignored here */
        } else {
            rc = ck__qerr(p->p_err, PE, "Unknown key for a %s in [%s].",
                          json_is_object(x)  ? "START_OBJECT"
                          : json_is_array(x) ? "START_ARRAY"
                                             : "VALUE",
                          k);
        }
        if (rc)
            return rc;
    }
    if (rq->r_from + rq->r_size > CK_SEARCH_MAX_WINDOW)
        return ck__qerr(p->p_err, IAE,
                        "Result window is too large, from + size must be less than or equal "
                        "to: [%d] but was [%zu].",
                        CK_SEARCH_MAX_WINDOW, rq->r_from + rq->r_size);
    return 0;
}

int ck_search_parse(const json_t *body, ck_search_req_t **out, ck_search_error_t *err)
{
    *out = NULL;
    ck_search_req_t *rq = ck_calloc(1, sizeof(*rq));
    if (!rq)
        return ck__qerr_rc(err, CK_ENOMEM);
    rq->r_size = 10;
    rq->r_track = true;
    rq->r_track_limit = CK_SEARCH_DEFAULT_TRACK;
    pctx_t p = {rq, err, 0};
    int rc = parse_body(&p, body);
    if (!rc && !rq->r_query && !(rq->r_query = new_node(CK__Q_ALL)))
        rc = ck__qerr_rc(err, CK_ENOMEM);
    if (rc) {
        ck_search_req_free(rq);
        return rc;
    }
    *out = rq;
    return 0;
}
