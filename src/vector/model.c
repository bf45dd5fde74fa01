/* USE-lite forward pass; the model and the API are described in model.h.
 *
 * Loading: model.json's weightsManifest lists the weights in file order (name, shape, dtype);
 * the shards, concatenated in the manifest's order, are read into one buffer and each weight
 * is a slice of it. Every weight this code uses is looked up by its full graph name and its
 * shape and dtype are checked, as are the graph constants it relies on (heads, head widths,
 * the 128-token cut); the scalars the graph multiplies by (attention scales, layer-norm and
 * l2 epsilons) are taken from the file, not written here.
 *
 * Running: the texts of a group are packed one after another, token rows without padding,
 * so every position-wise step (layer norms, the dense layers, the feed-forward) is one
 * matrix product over all tokens of the group; only attention works per text and head. The
 * graph itself pads texts to the longest and masks padded keys with -1e9, which gives them a
 * softmax weight of exactly 0, and pools over each text's own tokens, so packing changes
 * nothing but the order of float additions.
 *
 * Two graph details worth knowing when reading the code: the input is emb + (emb + signal)
 * (the graph adds the scattered embeddings to the embeddings-plus-signal; hence "2 x
 * embedding"), and the residual of layer 0 is h W_d + b_d (h before its layer norm). Layer
 * 0's output projection and that residual dense are one product here: [ctx | h] times
 * [W_o ; W_d] (K = 256 + 256), with the two biases summed. */
#include "vector/model.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h> /* the prototypes and enums only: OpenBLAS is opened at run time */
#include <jansson.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/logging.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the model's weights are little-endian and read as they are"
#endif

/* Tokens run together in one group (each text whole; a text longer than what is left
 * starts the next group). Bigger groups make longer matrix products but more scratch
 * memory (12 KB per token, 18 KB on the AMX path) and, past this, no faster ones. */
#define GROUP_TOKENS 512

#define D_IN 256  /* embedding width, layer 0's input */
#define D 512     /* model width from layer 0's output on */
#define D_FF 1536 /* feed-forward hidden width */
#define N_SIG 128 /* frequencies of the position signal */
/* AMX: the attention projections (q|k|v, output, layer 0's residual dense) take three bf16
 * parts and six products (about float accuracy); the feed-forward, two parts and three
 * products. Layer 0's products are the ones the output is most sensitive to; with three
 * products everywhere the reference error grows from ~2.5e-6 to ~7.5e-6, with four (two
 * parts) on the projections to ~5.5e-6. */
#define PROJ_PARTS 3
#define PROJ_ORDER 2

/* ---- the weights ---- */

enum { DT_F32, DT_I32 };

enum {
    W_EMB,
    W_SIGNAL,
    W_DENSE_W,
    W_DENSE_B,
    W_L0, /* layer 0's block, then layer 1's: the LW_* offsets below */
    W_L1 = W_L0 + 13,
    W_TANH_W = W_L1 + 13,
    W_TANH_B,
    W_LN_EPS,
    W_L2_EPS,
    W_HEADS,
    W_DH0,
    W_DH1,
    W_MAXLEN,
    W_COUNT
};

enum {
    LW_LN1_G,
    LW_LN1_B,
    LW_QKV_W,
    LW_QKV_B,
    LW_OUT_W,
    LW_OUT_B,
    LW_LN2_G,
    LW_LN2_B,
    LW_W1,
    LW_B1,
    LW_W2,
    LW_B2,
    LW_SCALE,
};

typedef struct {
    const char *name;
    int dtype;
    int ndims;
    int dims[4];
} wspec_t;

#define PA "module_apply_default/Encoder_en/KonaTransformer/Encode/"
#define PS PA "TransformerStack/"
#define PM "module/Encoder_en/KonaTransformer/Encode/"
#define TL "/TransformerLayer/"
#define LNS "layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat"
#define LNB "layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat"

/* clang-format off */
#define MHA "MultiheadAttention/"
#define CC "/ConcatPartitions/concat"
#define SPLIT MHA "split_heads/split_last_dimension/Reshape/shape/"
#define LAYER_SPECS(base, L, CIN)                                                           \
    [base + LW_LN1_G] = {PA "Layer_" #L TL LNS, DT_F32, 1, {CIN}},                          \
    [base + LW_LN1_B] = {PA "Layer_" #L TL LNB, DT_F32, 1, {CIN}},                          \
    [base + LW_QKV_W] = {PM "Layer_" #L TL MHA "qkv_transform_single/kernel/part_0",        \
                         DT_F32, 4, {1, 1, CIN, 3 * CIN}},                                  \
    [base + LW_QKV_B] = {PA "Layer_" #L TL MHA "qkv_transform_single/bias" CC,              \
                         DT_F32, 1, {3 * CIN}},                                             \
    [base + LW_OUT_W] = {PM "Layer_" #L TL MHA "output_transform_single/kernel/part_0",     \
                         DT_F32, 4, {1, 1, CIN, D}},                                        \
    [base + LW_OUT_B] = {PA "Layer_" #L TL MHA "output_transform_single/bias" CC,           \
                         DT_F32, 1, {D}},                                                   \
    [base + LW_LN2_G] = {PA "Layer_" #L TL "FFN/" LNS, DT_F32, 1, {D}},                     \
    [base + LW_LN2_B] = {PA "Layer_" #L TL "FFN/" LNB, DT_F32, 1, {D}},                     \
    [base + LW_W1] = {PS "Layer_" #L TL "FFN/conv1/Tensordot/Reshape_1", DT_F32, 2, {D, D_FF}}, \
    [base + LW_B1] = {PA "Layer_" #L TL "FFN/conv1/bias" CC, DT_F32, 1, {D_FF}},            \
    [base + LW_W2] = {PS "Layer_" #L TL "FFN/conv2/Tensordot/Reshape_1", DT_F32, 2, {D_FF, D}}, \
    [base + LW_B2] = {PA "Layer_" #L TL "FFN/conv2/bias" CC, DT_F32, 1, {D}},               \
    [base + LW_SCALE] = {PS "Layer_" #L TL MHA "mul/y", DT_F32, 0, {0}}

static const wspec_t wspecs[W_COUNT] = {
    [W_EMB] = {"module/Embeddings_en", DT_F32, 2, {-1, D_IN}},
    [W_SIGNAL] = {PS "Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", DT_F32, 2, {1, N_SIG}},
    [W_DENSE_W] = {PA "Layer_0" TL "dense/kernel" CC, DT_F32, 2, {D_IN, D}},
    [W_DENSE_B] = {PA "Layer_0" TL "dense/bias" CC, DT_F32, 1, {D}},
    LAYER_SPECS(W_L0, 0, 256),
    LAYER_SPECS(W_L1, 1, 512),
    [W_TANH_W] = {"module/Encoder_en/hidden_layers/tanh_layer_0/weights", DT_F32, 2, {D, D}},
    [W_TANH_B] = {"module/Encoder_en/hidden_layers/tanh_layer_0/bias", DT_F32, 1, {D}},
    [W_LN_EPS] = {PS "Layer_1" TL "FFN/layer_prepostprocess/layer_norm/Cast/x", DT_F32, 0, {0}},
    [W_L2_EPS] = {"module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y",
                  DT_F32, 0, {0}},
    [W_HEADS] = {PS "Layer_1" TL SPLIT "2", DT_I32, 0, {0}},
    [W_DH0] = {PS "Layer_0" TL SPLIT "3", DT_I32, 0, {0}},
    [W_DH1] = {PS "Layer_1" TL SPLIT "3", DT_I32, 0, {0}},
    [W_MAXLEN] = {"module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y",
                  DT_I32, 0, {0}},
};
/* clang-format on */

/* The weight of a matrix product: k x n floats, row-major; and, when the AMX path is on, the
 * same split into bf16 pairs and packed for the tile unit (see "AMX" below). */
typedef struct {
    const float *mt_w;
    uint16_t *mt_amx; /* NULL: this product runs on OpenBLAS */
    int mt_k, mt_n;
    int mt_parts; /* AMX: bf16 parts per float (2 or 3) */
    int mt_order; /* AMX: part i of A times part j of B for i + j <= mt_order */
} mat_t;

typedef struct {
    int l_cin;         /* input width: 256 (layer 0) or 512 */
    int l_heads, l_dh; /* heads and their width: l_heads * l_dh == l_cin */
    float l_scale;     /* q multiplier */
    const float *l_ln1_g, *l_ln1_b, *l_qkv_b;
    mat_t l_qkv;          /* l_cin x 3 l_cin: q | k | v */
    mat_t l_out;          /* l_cin x D; layer 0: (256 + 256) x D, [W_o ; W_d] */
    const float *l_out_b; /* layer 0: b_o + b_d */
    const float *l_ln2_g, *l_ln2_b, *l_b1, *l_b2;
    mat_t l_w1, l_w2;
} use_layer_t;

struct ck_use {
    float *um_blob; /* the concatenated shards */
    ck_sp_t *um_sp;
    const float *um_emb;
    size_t um_emb_rows;
    float *um_signal; /* CK_USE_MAX_TOKENS x D_IN: sin | cos of position x frequency */
    float *um_out0;   /* layer 0's [W_o ; W_d], 512 x D */
    float *um_bias0;  /* layer 0's b_o + b_d */
    use_layer_t um_layer[2];
    mat_t um_tanh; /* the pooled vector's dense layer */
    const float *um_tanh_b;
    float um_ln_eps, um_l2_eps;
    int um_amx; /* the matrix products run on AMX tiles */
};

/* ---- AMX: matrix products in bf16 parts ----
 *
 * On CPUs with AMX-BF16 (and a kernel that grants the tile state), the matrix products run
 * on the tile unit instead of OpenBLAS. Each float x is split into bf16 parts: x0 = x
 * rounded to bf16, x1 = (x - x0) rounded, x2 = (x - x0 - x1) rounded (each difference is
 * exact in float); two parts hold x to about 2^-17, three to about 2^-25. A product a.b is
 * the sum of the part products ai.bj with i + j <= order: two parts and order 1 give
 * a0.b0 + a1.b0 + a0.b1 (3 products, error about 2^-16 of each term: a few times float
 * rounding over a dot product of hundreds of terms); three parts and order 2 give 6
 * products, about float accuracy. The tile unit multiplies bf16 pairs exactly and adds in
 * float. Which product gets which: PROJ_PARTS above. The unit test holds this path, like
 * the float one, to 1e-5 of the reference. CHRONIK_EMBED_AMX=0 in the environment turns it
 * off (read at ck_use_load).
 *
 * Weights are split and packed at load, per 32-column panel and 32-row chunk of k, into
 * the layout TDPBF16PS wants for its second operand (pairs of consecutive k side by side
 * in a row): per part two 1 KB tiles, columns 0-15 and 16-31. The activations are split
 * per product into the same parts, per 32 rows and chunk two tiles (rows 0-15, 16-31) per
 * part, rows padded to a multiple of 32 with zeros.
 *
 * The kernel computes a 32 x 32 block of C in four accumulator tiles (tmm0-3) from two A
 * tiles (tmm4-5) and two B tiles (tmm6-7): per chunk of 32 k and two parts, 10 tile loads
 * and 12 tile products. The blocks are walked in passes of AMX_MB row blocks x AMX_NB
 * column panels x AMX_KC chunks, so that a pass's A and B slices and C blocks stay in L2.
 * Tile loads that miss L2 stall the tile unit, so the speed depends on the weights staying
 * in L3: 2x OpenBLAS's float kernels on a quiet Sapphire Rapids core in a product alone,
 * less when the other cores thrash L3. The tile configuration is per thread: each product
 * loads it and releases the tiles at the end. */

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>

#define AMX_ARCH_REQ_XCOMP_PERM 0x1023
#define AMX_XFEATURE_XTILEDATA 18
#define AMX_MB 8  /* row blocks (of 32) per pass */
#define AMX_NB 8  /* column panels (of 32) per pass */
#define AMX_KC 16 /* k chunks (of 32) per pass */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg_t;

/* XCR0 bits: the register state the OS saves, so that a thread may use it. */
#define XCR0_YMM 0x06u /* SSE and AVX */
#define XCR0_ZMM 0xE6u /* and AVX-512's opmask and upper ZMM halves */

/* XCR0's low half, 0 when the OS does not enable XSAVE (then no AVX of any kind). */
static unsigned xcr0(void)
{
    unsigned a, b, c, d, xlo, xhi;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)))
        return 0;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    return xlo;
}

static int amx_state;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_probe(void)
{
    unsigned a, b, c, d;
    if ((xcr0() & XCR0_ZMM) != XCR0_ZMM)
        return;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return;
    /* AMX-TILE, AMX-BF16; AVX-512 F and BW for the splits and the attention */
    if (!(d & (1u << 24)) || !(d & (1u << 22)) || !(b & (1u << 16)) || !(b & (1u << 30)))
        return;
    /* Linux hands out the tile state only on request (it refuses, among other cases, when
     * a thread's sigaltstack is too small for the larger signal frame: then no AMX). */
    if (syscall(SYS_arch_prctl, AMX_ARCH_REQ_XCOMP_PERM, AMX_XFEATURE_XTILEDATA) != 0)
        return;
    amx_state = 1;
}

static int amx_available(void)
{
    const char *env = getenv("CHRONIK_EMBED_AMX");
    if (env && !strcmp(env, "0"))
        return 0;
    pthread_once(&amx_once, amx_probe);
    return amx_state;
}

static inline uint16_t bf16_round(float x) /* to nearest even; x finite */
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float bf16_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* w's floats (k x n, row-major; k and n multiples of 32) split into w->mt_parts bf16 parts
 * and packed as described above, in a new buffer; NULL when out of memory. */
static uint16_t *amx_pack(const mat_t *w)
{
    int k = w->mt_k, n = w->mt_n, parts = w->mt_parts, kcs = k / 32;
    uint16_t *p = ck_malloc((size_t)k * n * parts * sizeof(uint16_t));
    if (!p)
        return NULL;
    for (int nb = 0; nb < n / 32; nb++)
        for (int kc = 0; kc < kcs; kc++) {
            uint16_t *t = p + ((size_t)nb * kcs + kc) * parts * 1024;
            for (int half = 0; half < 2; half++)
                for (int r = 0; r < 16; r++)
                    for (int c = 0; c < 16; c++)
                        for (int j = 0; j < 2; j++) {
                            float x = w->mt_w[(size_t)(kc * 32 + 2 * r + j) * n + nb * 32 +
                                              half * 16 + c];
                            for (int q = 0; q < parts; q++) {
                                uint16_t h = bf16_round(x);
                                t[q * 1024 + half * 512 + r * 32 + 2 * c + j] = h;
                                x -= bf16_float(h); /* exact */
                            }
                        }
        }
    return p;
}

__attribute__((target("avx512f,avx512bw"))) static inline __m512i bf16_round16(__m512i u)
{
    const __m512i rb = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
    return _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(rb, odd)), 16);
}

/* Splits rows x k floats of A (leading dimension lda; k a multiple of 32) into `parts` bf16
 * parts, packed for the kernel: per block of 32 rows and chunk of 32 k, per part, two 1 KB
 * tiles (rows 0-15, rows 16-31) of 16 rows x 64 bytes; blocks in row-block then chunk
 * order; rows past `rows` up to the next multiple of 32 are zero. */
__attribute__((target("avx512f,avx512bw"))) static void
amx_split(const float *A, int lda, int rows, int k, int parts, const float *relu_bias, uint16_t *p)
{
    int kcs = k / 32, rows_pad = (rows + 31) & ~31;
    size_t blk_len = (size_t)parts * 1024;
    for (int r = 0; r < rows_pad; r++) {
        const float *a = A + (size_t)r * lda;
        uint16_t *blk = p + (size_t)(r / 32) * kcs * blk_len + (r % 32 / 16) * 512 + (r % 16) * 32;
        for (int kc = 0; kc < kcs; kc++, blk += blk_len)
            for (int j = 0; j < 32; j += 16) {
                __m512 x = r < rows ? _mm512_loadu_ps(a + kc * 32 + j) : _mm512_setzero_ps();
                if (relu_bias && r < rows)
                    x = _mm512_max_ps(_mm512_add_ps(x, _mm512_loadu_ps(relu_bias + kc * 32 + j)),
                                      _mm512_setzero_ps());
                for (int q = 0; q < parts; q++) {
                    __m512i h = bf16_round16(_mm512_castps_si512(x));
                    _mm256_storeu_si256((__m256i *)(blk + q * 1024 + j), _mm512_cvtepi32_epi16(h));
                    x = _mm512_sub_ps(x, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
                }
            }
    }
}

#define TILE_LOAD(t, p, s)                                                                         \
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(p), "r"((long)(s)) : "memory")
#define TILE_STORE(t, p, s)                                                                        \
    __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(p), "r"((long)(s)) : "memory")
#define TILE_ZERO(t) __asm__ volatile("tilezero %%tmm" #t ::)
#define TILE_DP(c, a, b) __asm__ volatile("tdpbf16ps %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)

/* One 32 x 32 block of C (leading dimension ldc) = (load ? C : 0) + the packed A block
 * times the packed B panel slice, over nch chunks of `parts` parts each: part i of A times
 * part j of B for every i + j <= order (hi.hi, lo.hi, hi.lo for two parts and order 1). */
static void amx_block(const uint16_t *a, const uint16_t *b, int nch, int parts, int order, float *c,
                      int ldc, int load)
{
    long cs = (long)ldc * 4;
    if (load) {
        TILE_LOAD(0, c, cs);
        TILE_LOAD(1, c + 16, cs);
        TILE_LOAD(2, c + 16 * ldc, cs);
        TILE_LOAD(3, c + 16 * ldc + 16, cs);
    } else {
        TILE_ZERO(0);
        TILE_ZERO(1);
        TILE_ZERO(2);
        TILE_ZERO(3);
    }
    size_t step = (size_t)parts * 1024;
    for (int kc = 0; kc < nch; kc++, a += step, b += step)
        for (int j = 0; j < parts; j++) {
            TILE_LOAD(6, b + j * 1024, 64);
            TILE_LOAD(7, b + j * 1024 + 512, 64);
            for (int i = 0; i < parts && i + j <= order; i++) {
                TILE_LOAD(4, a + i * 1024, 64);
                TILE_DP(0, 4, 6);
                TILE_DP(1, 4, 7);
                TILE_LOAD(5, a + i * 1024 + 512, 64);
                TILE_DP(2, 5, 6);
                TILE_DP(3, 5, 7);
            }
        }
    TILE_STORE(0, c, cs);
    TILE_STORE(1, c + 16, cs);
    TILE_STORE(2, c + 16 * ldc, cs);
    TILE_STORE(3, c + 16 * ldc + 16, cs);
}

/* C (rows x w->mt_n, leading dimension ldc) = beta * C + A' (rows x w->mt_k, leading
 * dimension lda) times w, where A' = relu(A + relu_bias) when relu_bias is not NULL, else A;
 * beta is 0 or 1. pa: scratch of round_up(rows, 32) x mt_k x mt_parts bf16. */
static void amx_gemm(const mat_t *w, int rows, const float *A, int lda, const float *relu_bias,
                     float beta, float *C, int ldc, uint16_t *pa)
{
    int kcs = w->mt_k / 32, nbs = w->mt_n / 32, mbs = (rows + 31) / 32, parts = w->mt_parts;
    size_t blk_len = (size_t)parts * 1024;
    amx_split(A, lda, rows, w->mt_k, parts, relu_bias, pa);
    amx_cfg_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.rows[i] = 16;
        cfg.colsb[i] = 64;
    }
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
    float edge[32 * 32];
    memset(edge, 0, sizeof(edge));
    for (int mb0 = 0; mb0 < mbs; mb0 += AMX_MB)
        for (int nb0 = 0; nb0 < nbs; nb0 += AMX_NB)
            for (int kc0 = 0; kc0 < kcs; kc0 += AMX_KC) {
                int nch = kc0 + AMX_KC < kcs ? AMX_KC : kcs - kc0;
                int load = kc0 > 0 || beta != 0;
                int mb1 = mb0 + AMX_MB < mbs ? mb0 + AMX_MB : mbs;
                for (int nb = nb0; nb < nb0 + AMX_NB && nb < nbs; nb++) {
                    const uint16_t *bp = w->mt_amx + ((size_t)nb * kcs + kc0) * blk_len;
                    for (int mb = mb0; mb < mb1; mb++) {
                        const uint16_t *ap = pa + ((size_t)mb * kcs + kc0) * blk_len;
                        int r0 = mb * 32, n = rows - r0 < 32 ? rows - r0 : 32;
                        float *c = C + (size_t)r0 * ldc + nb * 32;
                        if (n == 32) {
                            amx_block(ap, bp, nch, parts, w->mt_order, c, ldc, load);
                            continue;
                        }
                        /* the last, partial block: through a full-size copy */
                        for (int r = 0; load && r < n; r++)
                            memcpy(edge + r * 32, c + (size_t)r * ldc, 32 * sizeof(float));
                        amx_block(ap, bp, nch, parts, w->mt_order, edge, 32, load);
                        for (int r = 0; r < n; r++)
                            memcpy(c + (size_t)r * ldc, edge + r * 32, 32 * sizeof(float));
                    }
                }
            }
    __asm__ volatile("tilerelease" ::);
}

#else /* no AMX off x86-64 */

static int amx_available(void)
{
    return 0;
}

static uint16_t *amx_pack(const mat_t *w)
{
    return NULL;
}

static void amx_gemm(const mat_t *w, int rows, const float *A, int lda, const float *relu_bias,
                     float beta, float *C, int ldc, uint16_t *pa)
{
}

#endif

/* ---- OpenBLAS, opened at run time ----
 *
 * Off the AMX path the matrix products run on OpenBLAS's sgemm. OpenBLAS is opened here with
 * dlopen rather than linked because it picks its kernels in a library constructor, from
 * OPENBLAS_CORETYPE in the environment or else from its own table of CPUs, and Debian's
 * 0.3.21 (built with every x86 kernel set, DYNAMIC_ARCH) does not know CPUs newer than
 * Cooper Lake: it takes them for a Pentium 4 and runs its "Prescott" kernels, ~4x slower.
 * Linked, the constructor would run before main(). Opened by the first ck_use_load that
 * needs it, it reads an environment set here first: unless the user has set
 * OPENBLAS_CORETYPE (which then stands), blas_coretype() names the best kernel set that both
 * 0.3.21 and this CPU have, with the OS saving the registers it needs.
 *
 * The file is the single-threaded build's (CK_OPENBLAS_PATH, found by CMake): the threaded
 * one starts a pool of threads when loaded, and the server runs products on its own threads.
 * If that file is missing, the soname is tried, which is whichever build the system's
 * default is (with a warning). OpenBLAS is opened once per process, also when that failed,
 * and never closed; only the two functions used here are looked up.
 *
 * setenv runs in whichever thread loads that first model, while others may read the
 * environment: the server changes its environment nowhere else, and glibc's first setenv
 * copies the array into a new one and leaves the old in place, so a concurrent getenv reads
 * one or the other. */

#ifndef CK_OPENBLAS_PATH
#define CK_OPENBLAS_PATH BLAS_SONAME
#endif
#define BLAS_SONAME "libopenblas.so.0"

typedef __typeof__(cblas_sgemm) blas_sgemm_fn;
typedef char *blas_corename_fn(void);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static blas_sgemm_fn *blas_sgemm;       /* NULL until OpenBLAS is open */
static blas_corename_fn *blas_corename; /* its kernel set's name */
static char blas_err[512];              /* why it could not be opened */

#if defined(__x86_64__)
/* The kernel set of OpenBLAS 0.3.21 for this CPU: "SkylakeX" with AVX-512 F, CD, BW, DQ and
 * VL, "Haswell" with AVX2 and FMA, each only when the OS saves the registers; else NULL
 * (OpenBLAS's own choice stands). */
static const char *blas_coretype(void)
{
    unsigned a, b, c, d, x = xcr0();
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return NULL;
    int fma = (c >> 12) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return NULL;
    const unsigned avx512 = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);
    if ((b & avx512) == avx512 && (x & XCR0_ZMM) == XCR0_ZMM)
        return "SkylakeX";
    if ((b & (1u << 5)) && fma && (x & XCR0_YMM) == XCR0_YMM)
        return "Haswell";
    return NULL;
}
#else
static const char *blas_coretype(void)
{
    return NULL;
}
#endif

static void blas_open_once(void)
{
    const char *type = blas_coretype();
    if (type)
        setenv("OPENBLAS_CORETYPE", type, 0); /* 0: a value already there stays */
    const char *path = CK_OPENBLAS_PATH;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(blas_err, sizeof(blas_err), "%s", dlerror());
        if (!strcmp(path, BLAS_SONAME))
            return;
        path = BLAS_SONAME;
        if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
            size_t n = strlen(blas_err);
            snprintf(blas_err + n, sizeof(blas_err) - n, "; %s", dlerror());
            return;
        }
        CK_WARN("embed", "%s; using the system's %s, which may be OpenBLAS's threaded build",
                blas_err, path);
    }
    blas_sgemm_fn *sgemm = (blas_sgemm_fn *)dlsym(h, "cblas_sgemm");
    blas_corename_fn *corename = (blas_corename_fn *)dlsym(h, "openblas_get_corename");
    if (!sgemm || !corename) {
        snprintf(blas_err, sizeof(blas_err), "%s has no cblas_sgemm or openblas_get_corename",
                 path);
        dlclose(h);
        return;
    }
    const char *env = getenv("OPENBLAS_CORETYPE");
    if (type && !strcmp(corename(), "Prescott"))
        CK_WARN("embed",
                "OpenBLAS runs its generic Prescott kernels (OPENBLAS_CORETYPE=%s), ~4x slower "
                "than its %s kernels on this CPU",
                env ? env : "", type);
    blas_corename = corename;
    blas_sgemm = sgemm;
}

/* Opens OpenBLAS (above), once per process; any thread. 0, or CK_ENOENT with err[0..errlen)
 * saying why it could not be opened. */
static int blas_open(char *err, size_t errlen)
{
    pthread_once(&blas_once, blas_open_once);
    if (blas_sgemm)
        return 0;
    if (err && errlen)
        snprintf(err, errlen, "cannot open OpenBLAS (%s)", blas_err);
    return CK_ENOENT;
}

/* The AVX-512 attention (AMX path) takes heads of these widths; others run on OpenBLAS. */
static int attention_avx512_fits(const use_layer_t *L)
{
    return L->l_dh == 64 || L->l_dh == 128;
}

/* ---- loading ---- */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

typedef struct {
    const char *me_name; /* in the parsed model.json, alive during loading */
    int me_dtype;
    int me_ndims;
    long long me_dims[8];
    size_t me_off, me_bytes;
} mentry_t;

/* Reads all of path into buf[0..cap); *got is its size (which may exceed cap: then only
 * the first cap bytes are read). */
static int read_shard(const char *path, char *buf, size_t cap, size_t *got)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CK_ENOENT : CK_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return CK_EIO;
    }
    *got = (size_t)st.st_size;
    size_t want = *got < cap ? *got : cap, done = 0;
    while (done < want) {
        ssize_t r = read(fd, buf + done, want - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            return r == 0 ? CK_ETRUNC : CK_EIO;
        }
        done += (size_t)r;
    }
    close(fd);
    return 0;
}

/* Parses the manifest into entries (file order) and the shard paths. */
static int parse_manifest(json_t *root, const char *mpath, mentry_t **entries, size_t *nent,
                          const char ***paths, size_t *npaths, size_t *total, char *err,
                          size_t errlen)
{
    json_t *man = json_object_get(root, "weightsManifest");
    if (!json_is_array(man) || json_array_size(man) == 0)
        return fail(err, errlen, CK_ECORRUPT, "%s: no weightsManifest array", mpath);
    size_t ne = 0, np = 0;
    for (size_t g = 0; g < json_array_size(man); g++) {
        json_t *grp = json_array_get(man, g);
        json_t *ps = json_object_get(grp, "paths"), *ws = json_object_get(grp, "weights");
        if (!json_is_array(ps) || !json_is_array(ws))
            return fail(err, errlen, CK_ECORRUPT, "%s: manifest group %zu lacks paths or weights",
                        mpath, g);
        ne += json_array_size(ws);
        np += json_array_size(ps);
    }
    *entries = ck_calloc(ne ? ne : 1, sizeof(mentry_t));
    *paths = ck_calloc(np ? np : 1, sizeof(char *));
    if (!*entries || !*paths)
        return fail(err, errlen, CK_ENOMEM, "out of memory reading %s", mpath);
    size_t off = 0;
    ne = np = 0;
    for (size_t g = 0; g < json_array_size(man); g++) {
        json_t *grp = json_array_get(man, g);
        json_t *ps = json_object_get(grp, "paths"), *ws = json_object_get(grp, "weights");
        for (size_t i = 0; i < json_array_size(ps); i++) {
            const char *p = json_string_value(json_array_get(ps, i));
            if (!p || !*p || strchr(p, '/'))
                return fail(err, errlen, CK_ECORRUPT, "%s: bad shard path in group %zu", mpath, g);
            (*paths)[np++] = p;
        }
        for (size_t i = 0; i < json_array_size(ws); i++) {
            json_t *w = json_array_get(ws, i);
            mentry_t *e = &(*entries)[ne];
            e->me_name = json_string_value(json_object_get(w, "name"));
            const char *dt = json_string_value(json_object_get(w, "dtype"));
            json_t *shape = json_object_get(w, "shape");
            if (!e->me_name || !dt || !json_is_array(shape) || json_array_size(shape) > 8)
                return fail(err, errlen, CK_ECORRUPT, "%s: weight %zu of group %zu is malformed",
                            mpath, i, g);
            if (json_object_get(w, "quantization"))
                return fail(err, errlen, CK_ECORRUPT, "%s: weight %s is quantized (unsupported)",
                            mpath, e->me_name);
            if (!strcmp(dt, "float32"))
                e->me_dtype = DT_F32;
            else if (!strcmp(dt, "int32"))
                e->me_dtype = DT_I32;
            else
                return fail(err, errlen, CK_ECORRUPT, "%s: weight %s has dtype %s (unsupported)",
                            mpath, e->me_name, dt);
            size_t count = 1;
            e->me_ndims = (int)json_array_size(shape);
            for (int d = 0; d < e->me_ndims; d++) {
                json_t *v = json_array_get(shape, (size_t)d);
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    json_integer_value(v) > (1 << 30))
                    return fail(err, errlen, CK_ECORRUPT, "%s: weight %s has a bad shape", mpath,
                                e->me_name);
                e->me_dims[d] = json_integer_value(v);
                count *= (size_t)e->me_dims[d];
                if (count > ((size_t)1 << 32))
                    return fail(err, errlen, CK_ECORRUPT, "%s: weight %s is too big", mpath,
                                e->me_name);
            }
            e->me_off = off;
            e->me_bytes = count * 4;
            off += e->me_bytes;
            ne++;
        }
    }
    *nent = ne;
    *npaths = np;
    *total = off;
    return 0;
}

static void shape_str(char *buf, size_t len, const long long *dims, int n)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", dims[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* Finds every weight of wspecs among the entries and checks dtype and shape. */
static int bind_weights(const ck_use_t *m, const mentry_t *ents, size_t nent, const char *mpath,
                        const void *w[W_COUNT], size_t *emb_rows, char *err, size_t errlen)
{
    for (int k = 0; k < W_COUNT; k++) {
        const wspec_t *s = &wspecs[k];
        const mentry_t *e = NULL;
        for (size_t i = 0; i < nent && !e; i++)
            if (!strcmp(ents[i].me_name, s->name))
                e = &ents[i];
        if (!e)
            return fail(err, errlen, CK_ECORRUPT, "%s: weight %s is missing", mpath, s->name);
        int ok = e->me_dtype == s->dtype && e->me_ndims == s->ndims;
        for (int d = 0; ok && d < s->ndims; d++)
            ok = s->dims[d] < 0 ? e->me_dims[d] > 0 : e->me_dims[d] == s->dims[d];
        if (!ok) {
            char have[96], want[96];
            long long wd[4];
            for (int d = 0; d < s->ndims; d++)
                wd[d] = s->dims[d];
            shape_str(have, sizeof(have), e->me_dims, e->me_ndims);
            shape_str(want, sizeof(want), wd, s->ndims);
            return fail(err, errlen, CK_ECORRUPT, "%s: weight %s is %s %s, expected %s %s", mpath,
                        s->name, e->me_dtype == DT_F32 ? "float32" : "int32", have,
                        s->dtype == DT_F32 ? "float32" : "int32", want);
        }
        w[k] = (const char *)m->um_blob + e->me_off;
        if (k == W_EMB)
            *emb_rows = (size_t)e->me_dims[0];
    }
    return 0;
}

void ck_use_free(ck_use_t *m)
{
    if (!m)
        return;
    ck_sp_free(m->um_sp);
    ck_free(m->um_blob);
    ck_free(m->um_signal);
    ck_free(m->um_out0);
    ck_free(m->um_bias0);
    for (int l = 0; l < 2; l++) {
        ck_free(m->um_layer[l].l_qkv.mt_amx);
        ck_free(m->um_layer[l].l_out.mt_amx);
        ck_free(m->um_layer[l].l_w1.mt_amx);
        ck_free(m->um_layer[l].l_w2.mt_amx);
    }
    ck_free(m->um_tanh.mt_amx);
    ck_free(m);
}

const ck_sp_t *ck_use_tokenizer(const ck_use_t *m)
{
    return m->um_sp;
}

const char *ck_use_backend(const ck_use_t *m, char *buf, size_t len)
{
    if (m->um_amx)
        snprintf(buf, len, "amx-bf16 (3 products for the feed-forward, 6 for the projections)");
    else
        snprintf(buf, len, "openblas %s", blas_corename ? blas_corename() : "(not open)");
    return buf;
}

static int load(const char *dir, ck_use_t *m, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/model.json", dir) >= (int)sizeof(path))
        return fail(err, errlen, CK_ETOOBIG, "model folder path too long");
    struct stat st;
    if (stat(path, &st) != 0)
        return fail(err, errlen, errno == ENOENT ? CK_ENOENT : CK_EIO,
                    "%s: %s (the embedding model is fetched by scripts/setup.sh)", path,
                    strerror(errno));
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return fail(err, errlen, CK_ECORRUPT, "%s: line %d: %s", path, jerr.line, jerr.text);

    mentry_t *ents = NULL;
    const char **paths = NULL;
    size_t nent = 0, npaths = 0, total = 0;
    int rc = parse_manifest(root, path, &ents, &nent, &paths, &npaths, &total, err, errlen);
    if (rc)
        goto out;

    /* The shards, in order, into one buffer. */
    m->um_blob = ck_malloc(total);
    if (!m->um_blob) {
        rc = fail(err, errlen, CK_ENOMEM, "out of memory for %zu bytes of weights", total);
        goto out;
    }
    size_t have = 0;
    for (size_t i = 0; i < npaths; i++) {
        char sp[4096];
        if (snprintf(sp, sizeof(sp), "%s/%s", dir, paths[i]) >= (int)sizeof(sp)) {
            rc = fail(err, errlen, CK_ETOOBIG, "model folder path too long");
            goto out;
        }
        size_t got = 0;
        rc = read_shard(sp, (char *)m->um_blob + have, total - have, &got);
        if (rc) {
            rc = fail(err, errlen, rc, "%s: %s%s", sp,
                      rc == CK_ENOENT   ? "missing"
                      : rc == CK_ETRUNC ? "shrank while read"
                                        : strerror(errno),
                      rc == CK_ENOENT ? " (the embedding model is fetched by scripts/setup.sh)"
                                      : "");
            goto out;
        }
        if (got > total - have) {
            rc = fail(err, errlen, CK_ECORRUPT,
                      "%s: the shards hold more than the %zu bytes the manifest describes", sp,
                      total);
            goto out;
        }
        have += got;
    }
    if (have < total) {
        rc = fail(err, errlen, CK_ETRUNC,
                  "%s: the shards hold %zu bytes, the manifest needs %zu (a shard is truncated; "
                  "scripts/setup.sh fetches the model again)",
                  dir, have, total);
        goto out;
    }

    const void *w[W_COUNT];
    rc = bind_weights(m, ents, nent, path, w, &m->um_emb_rows, err, errlen);
    if (rc)
        goto out;
    int32_t heads = *(const int32_t *)w[W_HEADS], dh0 = *(const int32_t *)w[W_DH0],
            dh1 = *(const int32_t *)w[W_DH1], maxlen = *(const int32_t *)w[W_MAXLEN];
    if (heads <= 0 || heads * dh0 != D_IN || heads * dh1 != D || maxlen != CK_USE_MAX_TOKENS) {
        rc = fail(err, errlen, CK_ECORRUPT,
                  "%s: unexpected graph constants (heads %d, head widths %d and %d, max length "
                  "%d)",
                  path, heads, dh0, dh1, maxlen);
        goto out;
    }
    m->um_emb = w[W_EMB];
    m->um_tanh = (mat_t){w[W_TANH_W], NULL, D, D, PROJ_PARTS, PROJ_ORDER};
    m->um_tanh_b = w[W_TANH_B];
    m->um_ln_eps = *(const float *)w[W_LN_EPS];
    m->um_l2_eps = *(const float *)w[W_L2_EPS];
    for (int l = 0; l < 2; l++) {
        use_layer_t *L = &m->um_layer[l];
        const void *const *lw = &w[l ? W_L1 : W_L0];
        L->l_cin = l ? D : D_IN;
        L->l_heads = heads;
        L->l_dh = l ? dh1 : dh0;
        L->l_scale = *(const float *)lw[LW_SCALE];
        L->l_ln1_g = lw[LW_LN1_G];
        L->l_ln1_b = lw[LW_LN1_B];
        L->l_qkv = (mat_t){lw[LW_QKV_W], NULL, L->l_cin, 3 * L->l_cin, PROJ_PARTS, PROJ_ORDER};
        L->l_qkv_b = lw[LW_QKV_B];
        L->l_out = (mat_t){lw[LW_OUT_W], NULL, L->l_cin, D, PROJ_PARTS, PROJ_ORDER};
        L->l_out_b = lw[LW_OUT_B];
        L->l_ln2_g = lw[LW_LN2_G];
        L->l_ln2_b = lw[LW_LN2_B];
        L->l_w1 = (mat_t){lw[LW_W1], NULL, D, D_FF, 2, 1};
        L->l_b1 = lw[LW_B1];
        L->l_w2 = (mat_t){lw[LW_W2], NULL, D_FF, D, 2, 1};
        L->l_b2 = lw[LW_B2];
    }

    /* Derived tables: the position signal, layer 0's joined output projection. */
    m->um_signal = ck_malloc(CK_USE_MAX_TOKENS * D_IN * sizeof(float));
    m->um_out0 = ck_malloc(2 * D_IN * D * sizeof(float));
    m->um_bias0 = ck_malloc(D * sizeof(float));
    if (!m->um_signal || !m->um_out0 || !m->um_bias0) {
        rc = fail(err, errlen, CK_ENOMEM, "out of memory for the model's tables");
        goto out;
    }
    const float *freq = w[W_SIGNAL];
    for (int t = 0; t < CK_USE_MAX_TOKENS; t++)
        for (int k = 0; k < N_SIG; k++) {
            float x = (float)t * freq[k]; /* the graph multiplies in float */
            m->um_signal[t * D_IN + k] = (float)sin((double)x);
            m->um_signal[t * D_IN + N_SIG + k] = (float)cos((double)x);
        }
    memcpy(m->um_out0, m->um_layer[0].l_out.mt_w, (size_t)D_IN * D * sizeof(float));
    memcpy(m->um_out0 + D_IN * D, w[W_DENSE_W], (size_t)D_IN * D * sizeof(float));
    const float *bd = w[W_DENSE_B];
    for (int j = 0; j < D; j++)
        m->um_bias0[j] = m->um_layer[0].l_out_b[j] + bd[j];
    m->um_layer[0].l_out = (mat_t){m->um_out0, NULL, 2 * D_IN, D, PROJ_PARTS, PROJ_ORDER};
    m->um_layer[0].l_out_b = m->um_bias0;

    /* The AMX path: every matrix product's weight split and packed. */
    m->um_amx = amx_available();
    mat_t *mats[] = {&m->um_layer[0].l_qkv, &m->um_layer[0].l_out, &m->um_layer[0].l_w1,
                     &m->um_layer[0].l_w2,  &m->um_layer[1].l_qkv, &m->um_layer[1].l_out,
                     &m->um_layer[1].l_w1,  &m->um_layer[1].l_w2,  &m->um_tanh};
    for (size_t k = 0; m->um_amx && k < sizeof(mats) / sizeof(mats[0]); k++)
        if (!(mats[k]->mt_amx = amx_pack(mats[k]))) {
            rc = fail(err, errlen, CK_ENOMEM, "out of memory for the model's tables");
            goto out;
        }

    /* OpenBLAS: every product off the AMX path; on it, only attention with heads of a width
     * its AVX-512 code does not take (none in this model, but the widths come from the file). */
    if (!m->um_amx || !attention_avx512_fits(&m->um_layer[0]) ||
        !attention_avx512_fits(&m->um_layer[1])) {
        rc = blas_open(err, errlen);
        if (rc)
            goto out;
    }

    /* The vocabulary. */
    snprintf(path, sizeof(path), "%s/vocab.json", dir);
    rc = ck_sp_load(path, &m->um_sp);
    if (rc) {
        rc = fail(err, errlen, rc, "%s: %s", path,
                  rc == CK_ENOENT ? "missing (the embedding model is fetched by scripts/setup.sh)"
                  : rc == CK_ECORRUPT ? "not a vocabulary of [piece, score] pairs"
                                      : ck_strerror(rc));
        goto out;
    }
    if (ck_sp_size(m->um_sp) > m->um_emb_rows) {
        rc = fail(err, errlen, CK_ECORRUPT, "%s: %zu pieces but only %zu embeddings", path,
                  ck_sp_size(m->um_sp), m->um_emb_rows);
        goto out;
    }
    rc = 0;
out:
    ck_free(ents);
    ck_free(paths);
    json_decref(root);
    return rc;
}

int ck_use_load(const char *dir, ck_use_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if (!dir) {
        dir = getenv(CK_USE_ENV_DIR);
        if (!dir || !*dir)
            dir = CK_MODEL_DIR_DEFAULT;
    }
    ck_use_t *m = ck_calloc(1, sizeof(*m));
    if (!m)
        return fail(err, errlen, CK_ENOMEM, "out of memory");
    int rc = load(dir, m, err, errlen);
    if (rc) {
        ck_use_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- running ---- */

static inline void gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc)
{
    blas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C,
               ldc);
}

/* y[r] = LN(x[r]) for rows of width c: (x - mean) / sqrt(var + eps) * g + b, in the graph's
 * order of operations; the sums in double. */
static void layer_norm_scalar(const float *x, int ldx, float *y, int ldy, int rows, int c,
                              const float *g, const float *b, float eps)
{
    for (int r = 0; r < rows; r++, x += ldx, y += ldy) {
        double s = 0;
        for (int j = 0; j < c; j++)
            s += x[j];
        float mean = (float)(s / c);
        double v = 0;
        for (int j = 0; j < c; j++) {
            float d = x[j] - mean;
            v += (double)(d * d);
        }
        float rs = 1.0f / sqrtf((float)(v / c) + eps);
        for (int j = 0; j < c; j++)
            y[j] = g[j] * rs * (x[j] - mean) + b[j];
    }
}

#if defined(__x86_64__)
/* The same with AVX-512 (c a multiple of 16), the sums in 16 float lanes. */
__attribute__((target("avx512f"))) static void layer_norm_avx512(const float *x, int ldx, float *y,
                                                                 int ldy, int rows, int c,
                                                                 const float *g, const float *b,
                                                                 float eps)
{
    for (int r = 0; r < rows; r++, x += ldx, y += ldy) {
        __m512 s = _mm512_setzero_ps();
        for (int j = 0; j < c; j += 16)
            s = _mm512_add_ps(s, _mm512_loadu_ps(x + j));
        __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(s) / (float)c);
        __m512 v = _mm512_setzero_ps();
        for (int j = 0; j < c; j += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + j), mean);
            v = _mm512_fmadd_ps(d, d, v);
        }
        __m512 rs = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(v) / (float)c + eps));
        for (int j = 0; j < c; j += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + j), mean);
            __m512 gr = _mm512_mul_ps(_mm512_loadu_ps(g + j), rs);
            _mm512_storeu_ps(y + j, _mm512_fmadd_ps(gr, d, _mm512_loadu_ps(b + j)));
        }
    }
}
#endif

/* y[r] = LN(x[r]) for rows of width c (the AVX-512 version where the AMX path runs). */
static void layer_norm(const ck_use_t *m, const float *x, int ldx, float *y, int ldy, int rows,
                       int c, const float *g, const float *b)
{
#if defined(__x86_64__)
    if (m->um_amx && c % 16 == 0) {
        layer_norm_avx512(x, ldx, y, ldy, rows, c, g, b, m->um_ln_eps);
        return;
    }
#endif
    layer_norm_scalar(x, ldx, y, ldy, rows, c, g, b, m->um_ln_eps);
}

static void add_bias(float *x, int ld, int rows, int c, const float *b)
{
    for (int r = 0; r < rows; r++, x += ld)
        for (int j = 0; j < c; j++)
            x[j] += b[j];
}

static void add_bias_relu(float *x, int ld, int rows, int c, const float *b)
{
    for (int r = 0; r < rows; r++, x += ld)
        for (int j = 0; j < c; j++) {
            float v = x[j] + b[j];
            x[j] = v > 0 ? v : 0;
        }
}

static void softmax_rows(float *s, int rows, int c)
{
    for (int r = 0; r < rows; r++, s += c) {
        float mx = s[0];
        for (int j = 1; j < c; j++)
            mx = s[j] > mx ? s[j] : mx;
        float sum = 0;
        for (int j = 0; j < c; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < c; j++)
            s[j] *= inv;
    }
}

/* Per-call scratch for a group of up to cap tokens. */
typedef struct {
    size_t cap;
    float *cat;    /* cap x 512: [ctx | h] for layer 0, ctx for layer 1 */
    float *ln;     /* cap x 512: layer-norm outputs; the pooled means at the end */
    float *big;    /* cap x 1536: q|k|v, then the feed-forward hidden layer */
    float *y;      /* cap x 512: the residual stream */
    float *scores; /* 128 x 128, and 128 x 128 for a transposed head of K */
    uint16_t *abf; /* AMX path: the split activations, (cap + 31) x 1536 x 2 */
} scratch_t;

static void scratch_free(scratch_t *s)
{
    ck_free(s->cat);
    s->cat = NULL;
    s->cap = 0;
}

static int scratch_reserve(scratch_t *s, size_t tokens, int amx)
{
    if (tokens <= s->cap)
        return 0;
    scratch_free(s);
    size_t floats = tokens * ((size_t)D + D + D_FF + D) + 2 * CK_USE_MAX_TOKENS * CK_USE_MAX_TOKENS;
    size_t halves = amx ? 2 * (tokens + 31) * D_FF : 0;
    float *p = ck_malloc(floats * sizeof(float) + halves * sizeof(uint16_t));
    if (!p)
        return CK_ENOMEM;
    s->cat = p;
    s->ln = s->cat + tokens * D;
    s->big = s->ln + tokens * D;
    s->y = s->big + tokens * D_FF;
    s->scores = s->y + tokens * D;
    s->abf = amx ? (uint16_t *)(p + floats) : NULL;
    s->cap = tokens;
    return 0;
}

/* C (rows x w->mt_n, leading dimension ldc) = beta * C + A (rows x w->mt_k, leading
 * dimension lda) times w; beta 0 or 1. With relu_bias, A is first replaced by
 * relu(A + relu_bias) (in place on the float path, on the fly on the AMX path). */
static void mm(const ck_use_t *m, scratch_t *s, const mat_t *w, int rows, float *A, int lda,
               const float *relu_bias, float beta, float *C, int ldc)
{
    if (w->mt_amx) {
        amx_gemm(w, rows, A, lda, relu_bias, beta, C, ldc, s->abf);
        return;
    }
    if (relu_bias)
        add_bias_relu(A, lda, rows, w->mt_k, relu_bias);
    gemm(rows, w->mt_n, w->mt_k, A, lda, w->mt_w, w->mt_n, beta, C, ldc);
}

/* Self-attention of one layer over every text of the group: qkv (rows of 3 * cin) to ctx
 * (rows of ldc). */
static void attention_blas(const use_layer_t *L, const float *qkv, const int *off, const int *len,
                           int ntexts, float *ctx, int ldc, float *scores)
{
    int cin = L->l_cin, ld = 3 * cin, dh = L->l_dh;
    for (int i = 0; i < ntexts; i++) {
        int T = len[i];
        if (T == 0)
            continue;
        const float *q = qkv + (size_t)off[i] * ld;
        float *c = ctx + (size_t)off[i] * ldc;
        for (int h = 0; h < L->l_heads; h++) {
            const float *qh = q + h * dh, *kh = q + cin + h * dh, *vh = q + 2 * cin + h * dh;
            blas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, dh, L->l_scale, qh, ld, kh,
                       ld, 0.0f, scores, T);
            softmax_rows(scores, T, T);
            gemm(T, dh, T, scores, T, vh, ld, 0.0f, c + h * dh, ldc);
        }
    }
}

#if defined(__x86_64__)
/* e^x for x <= 0, to about 1 ulp: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so
 * that r is exact), e^r by its degree-7 Taylor-like polynomial (Cephes's expf
 * coefficients), times 2^n; below -87 the result is 0. */
__attribute__((target("avx512f"))) static inline __m512 exp512(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-87.0f);
    __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_ps(x, lo);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, n));
}

/* One query of one head with AVX-512: scores against the T keys (K^T in kt, rows of TV * 16
 * floats), softmax (lanes past T masked out), then the weighted sum of the T value rows (DV
 * vectors wide) into ct. TV and DV are constants where it is inlined, so the accumulators
 * stay in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
attend_one(const float *qt, const float *kt, const float *vh, int ld, int T, int dh, const int TV,
           const int DV, __mmask16 tail, float scale, float *st, float *ct)
{
    __m512 acc[8], o[8];
#pragma GCC unroll 8
    for (int v = 0; v < TV; v++)
        acc[v] = _mm512_setzero_ps();
    for (int d = 0; d < dh; d++) {
        __m512 qd = _mm512_set1_ps(qt[d]);
        const float *kd = kt + d * TV * 16;
#pragma GCC unroll 8
        for (int v = 0; v < TV; v++)
            acc[v] = _mm512_fmadd_ps(qd, _mm512_loadu_ps(kd + v * 16), acc[v]);
    }
    __m512 sc = _mm512_set1_ps(scale), mx = _mm512_set1_ps(-INFINITY);
#pragma GCC unroll 8
    for (int v = 0; v < TV; v++) {
        acc[v] = _mm512_mul_ps(acc[v], sc);
        mx = _mm512_mask_max_ps(mx, v == TV - 1 ? tail : 0xFFFF, mx, acc[v]);
    }
    __m512 mxv = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), sum = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int v = 0; v < TV; v++) {
        acc[v] =
            _mm512_maskz_mov_ps(v == TV - 1 ? tail : 0xFFFF, exp512(_mm512_sub_ps(acc[v], mxv)));
        sum = _mm512_add_ps(sum, acc[v]);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
#pragma GCC unroll 8
    for (int v = 0; v < TV; v++)
        _mm512_storeu_ps(st + v * 16, _mm512_mul_ps(acc[v], inv));
#pragma GCC unroll 8
    for (int v = 0; v < DV; v++)
        o[v] = _mm512_setzero_ps();
    for (int j = 0; j < T; j++) {
        __m512 p = _mm512_set1_ps(st[j]);
        const float *vj = vh + (size_t)j * ld;
#pragma GCC unroll 8
        for (int v = 0; v < DV; v++)
            o[v] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + v * 16), o[v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < DV; v++)
        _mm512_storeu_ps(ct + v * 16, o[v]);
}

#define ATTEND_TV(TV)                                                                              \
    case TV:                                                                                       \
        if (dh == 64)                                                                              \
            attend_one(qt, kt, vh, ld, T, dh, TV, 4, tail, L->l_scale, st, ct);                    \
        else                                                                                       \
            attend_one(qt, kt, vh, ld, T, dh, TV, 8, tail, L->l_scale, st, ct);                    \
        break

/* Self-attention with AVX-512 (the AMX path has it): per head, K is transposed so that a
 * query's scores are a sum of rows of K^T (16 keys a vector), and its context a sum of rows
 * of V (16 features a vector). Head widths 64 or 128. */
__attribute__((target("avx512f"))) static void attention_avx512(const use_layer_t *L,
                                                                const float *qkv, const int *off,
                                                                const int *len, int ntexts,
                                                                float *ctx, int ldc, float *scores)
{
    int cin = L->l_cin, ld = 3 * cin, dh = L->l_dh;
    float *kt = scores + CK_USE_MAX_TOKENS * CK_USE_MAX_TOKENS; /* dh x (tv * 16) */
    for (int i = 0; i < ntexts; i++) {
        int T = len[i], tv = (T + 15) / 16;
        if (T == 0)
            continue;
        const float *q = qkv + (size_t)off[i] * ld;
        float *c = ctx + (size_t)off[i] * ldc;
        __mmask16 tail = (__mmask16)((1u << (T - (tv - 1) * 16)) - 1);
        for (int h = 0; h < L->l_heads; h++) {
            const float *qh = q + h * dh, *kh = q + cin + h * dh, *vh = q + 2 * cin + h * dh;
            for (int t = 0; t < T; t++)
                for (int d = 0; d < dh; d++)
                    kt[d * tv * 16 + t] = kh[(size_t)t * ld + d];
            for (int d = 0; d < dh; d++) /* keys past T: zero, their scores are not used */
                memset(kt + d * tv * 16 + T, 0, (size_t)(tv * 16 - T) * sizeof(float));
            for (int t = 0; t < T; t++) {
                const float *qt = qh + (size_t)t * ld;
                float *st = scores + t * tv * 16, *ct = c + (size_t)t * ldc + h * dh;
                switch (tv) {
                    ATTEND_TV(1);
                    ATTEND_TV(2);
                    ATTEND_TV(3);
                    ATTEND_TV(4);
                    ATTEND_TV(5);
                    ATTEND_TV(6);
                    ATTEND_TV(7);
                    ATTEND_TV(8);
                }
            }
        }
    }
}
#endif

static void attention(const ck_use_t *m, const use_layer_t *L, const float *qkv, const int *off,
                      const int *len, int ntexts, float *ctx, int ldc, float *scores)
{
#if defined(__x86_64__)
    if (m->um_amx && attention_avx512_fits(L)) {
        attention_avx512(L, qkv, off, len, ntexts, ctx, ldc, scores);
        return;
    }
#endif
    attention_blas(L, qkv, off, len, ntexts, ctx, ldc, scores);
}

/* The feed-forward block on the residual stream y (rows x 512), in place. */
static void ffn(const ck_use_t *m, const use_layer_t *L, scratch_t *s, int rows)
{
    layer_norm(m, s->y, D, s->ln, D, rows, D, L->l_ln2_g, L->l_ln2_b);
    mm(m, s, &L->l_w1, rows, s->ln, D, NULL, 0.0f, s->big, D_FF);
    mm(m, s, &L->l_w2, rows, s->big, D_FF, L->l_b1, 1.0f, s->y, D);
    add_bias(s->y, D, rows, D, L->l_b2);
}

/* Runs a group: ntexts texts, text i's ids at ids[off[i] .. off[i] + len[i]), rows tokens
 * in all; writes ntexts vectors to out. */
static void run_group(const ck_use_t *m, scratch_t *s, const int32_t *ids, const int *off,
                      const int *len, int ntexts, int rows, float *out)
{
    const use_layer_t *L0 = &m->um_layer[0], *L1 = &m->um_layer[1];

    /* h = emb + (emb + signal), into the right half of cat. */
    for (int i = 0; i < ntexts; i++)
        for (int t = 0; t < len[i]; t++) {
            const float *e = m->um_emb + (size_t)ids[off[i] + t] * D_IN;
            const float *p = m->um_signal + (size_t)t * D_IN;
            float *h = s->cat + (size_t)(off[i] + t) * D + D_IN;
            for (int j = 0; j < D_IN; j++)
                h[j] = e[j] + (e[j] + p[j]);
        }

    /* Layer 0. */
    layer_norm(m, s->cat + D_IN, D, s->ln, D_IN, rows, D_IN, L0->l_ln1_g, L0->l_ln1_b);
    mm(m, s, &L0->l_qkv, rows, s->ln, D_IN, NULL, 0.0f, s->big, 3 * D_IN);
    add_bias(s->big, 3 * D_IN, rows, 3 * D_IN, L0->l_qkv_b);
    attention(m, L0, s->big, off, len, ntexts, s->cat, D, s->scores);
    mm(m, s, &L0->l_out, rows, s->cat, D, NULL, 0.0f, s->y, D);
    add_bias(s->y, D, rows, D, L0->l_out_b);
    ffn(m, L0, s, rows);

    /* Layer 1. */
    layer_norm(m, s->y, D, s->ln, D, rows, D, L1->l_ln1_g, L1->l_ln1_b);
    mm(m, s, &L1->l_qkv, rows, s->ln, D, NULL, 0.0f, s->big, 3 * D);
    add_bias(s->big, 3 * D, rows, 3 * D, L1->l_qkv_b);
    attention(m, L1, s->big, off, len, ntexts, s->cat, D, s->scores);
    mm(m, s, &L1->l_out, rows, s->cat, D, NULL, 1.0f, s->y, D);
    add_bias(s->y, D, rows, D, L1->l_out_b);
    ffn(m, L1, s, rows);

    /* Mean over each text's tokens, then tanh(m W_t + b_t), then length 1. */
    for (int i = 0; i < ntexts; i++) {
        float *p = s->ln + (size_t)i * D;
        memset(p, 0, D * sizeof(float));
        for (int t = 0; t < len[i]; t++) {
            const float *z = s->y + (size_t)(off[i] + t) * D;
            for (int j = 0; j < D; j++)
                p[j] += z[j];
        }
        float cnt = (float)(len[i] > 0 ? len[i] : 1); /* the graph's max(count, 1) */
        for (int j = 0; j < D; j++)
            p[j] /= cnt;
    }
    mm(m, s, &m->um_tanh, ntexts, s->ln, D, NULL, 0.0f, out, D);
    for (int i = 0; i < ntexts; i++) {
        float *o = out + (size_t)i * D;
        double ss = 0;
        for (int j = 0; j < D; j++) {
            o[j] = tanhf(o[j] + m->um_tanh_b[j]);
            ss += (double)o[j] * o[j];
        }
        float sum = (float)ss;
        float inv = 1.0f / sqrtf(sum > m->um_l2_eps ? sum : m->um_l2_eps);
        for (int j = 0; j < D; j++)
            o[j] *= inv;
    }
}

int ck_use_embed(const ck_use_t *m, const char *const *texts, const size_t *lens, size_t n,
                 float *out)
{
    if (n == 0)
        return 0;
    if (!m || !texts || !out)
        return CK_EINVAL;
    /* A group: its ids, and per text the offset and count of its tokens. */
    enum { MAX_TEXTS = GROUP_TOKENS };
    int32_t *ids = ck_malloc((GROUP_TOKENS + CK_USE_MAX_TOKENS) * sizeof(int32_t) +
                             2 * MAX_TEXTS * sizeof(int));
    if (!ids)
        return CK_ENOMEM;
    int *off = (int *)(ids + GROUP_TOKENS + CK_USE_MAX_TOKENS), *len = off + MAX_TEXTS;
    scratch_t s = {0};
    int rc = 0;
    for (size_t i = 0; i < n;) {
        size_t first = i;
        int rows = 0, g = 0;
        while (i < n && g < MAX_TEXTS) {
            const char *t = texts[i] ? texts[i] : "";
            size_t tl = !texts[i] ? 0 : lens ? lens[i] : strlen(t), k = 0;
            rc = ck_sp_encode(m->um_sp, t, tl, ids + rows, CK_USE_MAX_TOKENS, &k);
            if (rc)
                goto done;
            if (g > 0 && rows + (int)k > GROUP_TOKENS)
                break; /* starts the next group (tokenised again there) */
            off[g] = rows;
            len[g] = (int)k;
            rows += (int)k;
            g++;
            i++;
        }
        rc = scratch_reserve(&s, (size_t)rows, m->um_amx);
        if (rc)
            goto done;
        run_group(m, &s, ids, off, len, g, rows, out + first * D);
    }
done:
    scratch_free(&s);
    ck_free(ids);
    return rc;
}
