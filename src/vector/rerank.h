/* A cross-encoder reranker reached over HTTP: POST {endpoint} {"model"?,"query",
 * "documents":[...],"top_n"} -> {"results":[{"index","relevance_score"}]}, the rerank API
 * of Cohere, Jina, vLLM, Infinity and llama.cpp's server; an answer that is a bare array
 * of {"index","score"} (Text Embeddings Inference) is read too. Requests follow the
 * embedding providers' rules (timeout, retries with backoff, ck_embed_post_json). */
#ifndef CK_VECTOR_RERANK_H
#define CK_VECTOR_RERANK_H

#include <stddef.h>
#include <stdint.h>

#include "vector/embed.h"

typedef struct ck_reranker_config {
    const char *endpoint; /* the full URL; NULL or "": no reranker */
    const char *model;    /* sent as "model" when set */
    const char *api_key;  /* sent as "Authorization: Bearer <key>" when set */
    int timeout_ms;       /* per request (30000) */
    int max_retries;      /* 2 */
} ck_reranker_config_t;

/* Scores texts[0..n) (lens bytes each) against query: scores[i] for texts[i], higher is
 * more relevant; a text the answer leaves out gets -INFINITY. Gives up at deadline_ms
 * (ck_mono_ms time; 0: none). Returns 0, CK_EIO (the service failed: err), CK_EINVAL (its
 * answer is malformed: err), CK_ENOMEM. Any thread. */
int ck_rerank(const ck_reranker_config_t *c, const char *query, const char *const *texts,
              const size_t *lens, size_t n, int64_t deadline_ms, double *scores,
              char err[CK_EMBED_ERR]);

#endif
