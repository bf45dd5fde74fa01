/* The HTTP reranker (rerank.h). */
#include "vector/rerank.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"

/* The answer's list and each entry's score field: Cohere-style or TEI-style. */
static json_t *answer_list(json_t *ans, const char **score_key)
{
    if (json_is_array(ans)) {
        *score_key = "score";
        return ans;
    }
    *score_key = "relevance_score";
    json_t *r = json_object_get(ans, "results");
    if (!json_is_array(r))
        r = json_object_get(ans, "data");
    return json_is_array(r) ? r : NULL;
}

int ck_rerank(const ck_reranker_config_t *c, const char *query, const char *const *texts,
              const size_t *lens, size_t n, int64_t deadline_ms, double *scores,
              char err[CK_EMBED_ERR])
{
    err[0] = 0;
    for (size_t i = 0; i < n; i++)
        scores[i] = -INFINITY;
    if (!n)
        return 0;
    json_t *docs = json_array();
    json_t *body =
        json_pack("{s:s,s:o,s:I}", "query", query, "documents", docs, "top_n", (json_int_t)n);
    if (!body)
        return CK_ENOMEM;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(docs, json_stringn_nocheck(texts[i] ? texts[i] : "", lens[i]));
    if (c->model && *c->model)
        json_object_set_new(body, "model", json_string(c->model));
    char auth[600];
    if (c->api_key && *c->api_key)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->api_key);
    json_t *ans = NULL;
    int rc = ck_embed_post_json(c->endpoint, c->api_key && *c->api_key ? auth : NULL, body,
                                c->timeout_ms > 0 ? c->timeout_ms : 30000,
                                c->max_retries > 0 ? c->max_retries : 2, deadline_ms, &ans, err);
    json_decref(body);
    if (rc)
        return rc;
    const char *key;
    json_t *list = answer_list(ans, &key);
    if (!list) {
        snprintf(err, CK_EMBED_ERR, "%s: the answer has no results list", c->endpoint);
        json_decref(ans);
        return CK_EINVAL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        json_t *ix = json_object_get(e, "index"), *sc = json_object_get(e, key);
        if (!json_is_integer(ix) || json_integer_value(ix) < 0 ||
            (size_t)json_integer_value(ix) >= n || !json_is_number(sc) ||
            !isfinite(json_number_value(sc))) {
            snprintf(err, CK_EMBED_ERR, "%s: result %zu needs an index below %zu and a %s",
                     c->endpoint, i, n, key);
            rc = CK_EINVAL;
            break;
        }
        scores[json_integer_value(ix)] = json_number_value(sc);
    }
    json_decref(ans);
    return rc;
}
