/* Embedding providers: text in, float vectors out.
 *
 *  - local: the built-in USE-lite encoder (src/vector/model.h), 512 dims, in process;
 *  - openai: POST {endpoint}/v1/embeddings {"model","input":[...],"dimensions"?} with
 *    "Authorization: Bearer <key>" — OpenAI and every server that copies its API (Ollama,
 *    vLLM, TEI, llama.cpp server);
 *  - external: POST {endpoint} {"texts":[...],"model"?} -> {"embeddings":[[...],...]}.
 *
 * HTTP providers retry connection failures, timeouts, 429 and 5xx with exponential backoff
 * (100 ms doubling, at most 5 s apart) up to max_retries times; other answers fail at once.
 * An embedder may be used from several threads at once. */
#ifndef CK_VECTOR_EMBED_H
#define CK_VECTOR_EMBED_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CK_EMBED_LOCAL = 1, CK_EMBED_OPENAI, CK_EMBED_EXTERNAL } ck_embed_kind_t;

typedef struct ck_embed_config {
    ck_embed_kind_t kind;
    const char *model;    /* openai/external: sent as "model" (NULL: not sent to external;
                           * openai needs one) */
    uint32_t dims;        /* 0: whatever the provider returns (fixed by the first answer) */
    const char *endpoint; /* openai: base URL (default https://api.openai.com); external:
                           * the full URL (required) */
    const char *api_key;  /* openai: NULL or "" sends no Authorization header */
    int timeout_ms;       /* per request (default 30000) */
    int max_retries;      /* default 3 */
    const char *model_dir; /* local: the model's folder (NULL: the build's default) */
} ck_embed_config_t;

typedef struct ck_embedder ck_embedder_t;

#define CK_EMBED_ERR 256

/* Checks the config (and loads the local model, shared by every local embedder). */
int ck_embedder_new(const ck_embed_config_t *cfg, ck_embedder_t **out, char err[CK_EMBED_ERR]);
void ck_embedder_free(ck_embedder_t *e);

/* Dimensions of the vectors: known up front for local and for a configured dims, else 0
 * until the first successful call. */
uint32_t ck_embedder_dims(const ck_embedder_t *e);
const char *ck_embedder_model(const ck_embedder_t *e);
ck_embed_kind_t ck_embedder_kind(const ck_embedder_t *e);

/* Embeds n texts into out (n * dims floats; out must hold n * CK_EMBED_MAX_DIMS when
 * dims is not known yet). Returns 0, or CK_EIO (provider failure after retries: err says
 * what), CK_EINVAL (the provider's answer is malformed or of the wrong dimension),
 * CK_ENOMEM. */
#define CK_EMBED_MAX_DIMS 4096
int ck_embedder_embed(ck_embedder_t *e, const char *const *texts, const size_t *lens, size_t n,
                      float *out, char err[CK_EMBED_ERR]);
/* The same, given up by deadline_ms (ck_mono_ms time; 0: none): an HTTP provider's request
 * is cut short and not retried past it (CK_EIO). The local model is not interrupted. */
int ck_embedder_embed_by(ck_embedder_t *e, const char *const *texts, const size_t *lens, size_t n,
                         float *out, int64_t deadline_ms, char err[CK_EMBED_ERR]);

/* POSTs a JSON body to url (auth: a whole "Authorization: ..." header line, or NULL) with
 * the rules of the HTTP providers above (timeout per request, retries with backoff, none
 * past deadline_ms, 0: none); *answer gets the 2xx answer's JSON. Returns 0, CK_EIO (the
 * request failed: err), CK_EINVAL (the answer is not JSON), CK_ENOMEM. Any thread. */
int ck_embed_post_json(const char *url, const char *auth, const json_t *body, int timeout_ms,
                       int max_retries, int64_t deadline_ms, json_t **answer,
                       char err[CK_EMBED_ERR]);

/* Parses "local" / "openai" / "external" (case-insensitive); 0 if unknown. */
ck_embed_kind_t ck_embed_kind_parse(const char *s);
const char *ck_embed_kind_name(ck_embed_kind_t k);

#endif
