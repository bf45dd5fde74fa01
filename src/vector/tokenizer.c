/* SentencePiece-unigram tokenizer; the rules are in tokenizer.h.
 *
 * Data structure: a trie of the pieces read backwards (last code point first), its edges in
 * one open-addressing hash table keyed by (node, code point). The Viterbi pass goes by end
 * position, and the runtime it must agree with takes the pieces that end at a position in
 * order of their start, so walking the reversed trie from each end position, back over the
 * text, yields exactly those pieces (in descending start order; they are then taken in
 * reverse). No lattice is stored: per code point the pass keeps one double (best total) and
 * one id (last piece of the best path). The code points that begin some piece, which decide
 * where the one-code-point "unknown" edges are, are a bitmap for the BMP and, beyond it,
 * entries of the same hash table under a pseudo-node. Tokenising a 64-token English text
 * takes about 10 us. */
#include "vector/tokenizer.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <utf8proc.h>

#include "core/alloc.h"
#include "core/err.h"

/* Ids below this are reserved and never matched (the runtime skips them when it builds its
 * trie). */
#define SP_RESERVED 6

#define SP_WS 0x2581 /* "▁" */

/* Pseudo-node under which the first code points of pieces outside the BMP are kept. */
#define SP_FIRST_NODE ((1u << 21) - 2)

/* Longest piece accepted in a vocabulary, in code points (USE-lite's longest has 16). */
#define SP_MAX_PIECE 64

/* Texts of up to this many code points are tokenised with stack scratch only. */
#define SP_STACK_SYMS 512

#define NFKC_OPTS (UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE)

/* A hash slot: (node + 1) << 21 | code point in the low 42 bits, the child node in the high
 * 22; 0: empty. 8 bytes a slot. Nodes are numbered below SP_FIRST_NODE. */
typedef uint64_t sp_edge_t;

#define EDGE_KEY_BITS 42
#define EDGE_KEY_MASK ((1ull << EDGE_KEY_BITS) - 1)

struct ck_sp {
    size_t sp_n;         /* vocabulary entries */
    double *sp_score;    /* per id; null scores are 0 */
    uint16_t *sp_u16len; /* per id: the piece's length in UTF-16 units (read-back step) */
    int32_t *sp_node_id; /* per reversed-trie node: the id of the piece ending there, or -1 */
    size_t sp_nodes;
    sp_edge_t *sp_edges;
    uint64_t sp_mask;              /* hash table slots - 1 */
    unsigned sp_maxlen;            /* longest matchable piece, in code points */
    int sp_ws_safe;                /* no piece has "▁" after its first code point */
    uint8_t sp_first[0x10000 / 8]; /* BMP code points that begin a piece (others: hash) */
};

static inline uint64_t edge_key(uint32_t node, int32_t cp)
{
    return ((uint64_t)node + 1) << 21 | (uint32_t)cp;
}

static inline uint64_t edge_hash(uint64_t key)
{
    return (key * 0x9E3779B97F4A7C15ull) >> 17;
}

static inline int32_t edge_get(const ck_sp_t *sp, uint32_t node, int32_t cp)
{
    uint64_t key = edge_key(node, cp);
    for (uint64_t i = edge_hash(key) & sp->sp_mask;; i = (i + 1) & sp->sp_mask) {
        sp_edge_t e = sp->sp_edges[i];
        if ((e & EDGE_KEY_MASK) == key)
            return (int32_t)(e >> EDGE_KEY_BITS);
        if (e == 0)
            return -1;
    }
}

/* The child of node under cp, created (as node sp_nodes) when absent. The table is sized at
 * load so that it never fills. */
static int32_t edge_add(ck_sp_t *sp, uint32_t node, int32_t cp)
{
    uint64_t key = edge_key(node, cp);
    for (uint64_t i = edge_hash(key) & sp->sp_mask;; i = (i + 1) & sp->sp_mask) {
        sp_edge_t *e = &sp->sp_edges[i];
        if ((*e & EDGE_KEY_MASK) == key)
            return (int32_t)(*e >> EDGE_KEY_BITS);
        if (*e == 0) {
            *e = key | (uint64_t)sp->sp_nodes << EDGE_KEY_BITS;
            sp->sp_node_id[sp->sp_nodes] = -1;
            return (int32_t)sp->sp_nodes++;
        }
    }
}

static inline int starts_piece(const ck_sp_t *sp, int32_t cp)
{
    if (cp < 0x10000)
        return sp->sp_first[cp >> 3] >> (cp & 7) & 1;
    return edge_get(sp, SP_FIRST_NODE, cp) >= 0;
}

/* Decodes piece bytes into code points (cps may be NULL to count). -1: invalid UTF-8. */
static long piece_cps(const char *s, size_t len, int32_t *cps)
{
    long n = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0 || cp < 0)
            return -1;
        if (cps)
            cps[n] = cp;
        n++;
        i += (size_t)k;
    }
    return n;
}

void ck_sp_free(ck_sp_t *sp)
{
    if (!sp)
        return;
    ck_free(sp->sp_score);
    ck_free(sp->sp_u16len);
    ck_free(sp->sp_node_id);
    ck_free(sp->sp_edges);
    ck_free(sp);
}

size_t ck_sp_size(const ck_sp_t *sp)
{
    return sp->sp_n;
}

int ck_sp_load(const char *path, ck_sp_t **out)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? CK_ENOENT : CK_EIO;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return jerr.position > 0 || jerr.line > 0 ? CK_ECORRUPT : CK_EIO;
    int rc = CK_ECORRUPT;
    ck_sp_t *sp = NULL;
    if (!json_is_array(root) || json_array_size(root) <= SP_RESERVED)
        goto done;
    size_t n = json_array_size(root);

    /* First pass: check the entries and count code points, to size the trie. */
    size_t total_cps = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(root, i);
        json_t *p = json_array_get(e, 0), *s = json_array_get(e, 1);
        if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_string(p) ||
            !(json_is_number(s) || json_is_null(s)))
            goto done;
        long k = piece_cps(json_string_value(p), json_string_length(p), NULL);
        if (k < 0)
            goto done;
        total_cps += (size_t)k;
    }

    rc = CK_ENOMEM;
    sp = ck_calloc(1, sizeof(*sp));
    if (!sp)
        goto done;
    sp->sp_n = n;
    /* nodes: the root, at most one per code point, one per first code point */
    size_t max_nodes = total_cps + n + 1, slots = 64;
    if (max_nodes >= SP_FIRST_NODE) {
        rc = CK_ECORRUPT;
        goto done;
    }
    while (slots < 2 * (total_cps + n + 1))
        slots *= 2;
    sp->sp_score = ck_malloc(n * sizeof(double));
    sp->sp_u16len = ck_malloc(n * sizeof(uint16_t));
    sp->sp_node_id = ck_malloc(max_nodes * sizeof(int32_t));
    sp->sp_edges = ck_calloc(slots, sizeof(sp_edge_t));
    if (!sp->sp_score || !sp->sp_u16len || !sp->sp_node_id || !sp->sp_edges)
        goto done;
    sp->sp_mask = slots - 1;
    sp->sp_nodes = 1; /* the root */
    sp->sp_node_id[0] = -1;
    sp->sp_ws_safe = 1;

    int32_t cps[SP_MAX_PIECE];
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(root, i);
        json_t *p = json_array_get(e, 0), *s = json_array_get(e, 1);
        const char *str = json_string_value(p);
        size_t len = json_string_length(p);
        sp->sp_score[i] = json_is_null(s) ? 0.0 : json_number_value(s);
        long k = piece_cps(str, len, NULL);
        if (k > SP_MAX_PIECE) {
            rc = CK_ECORRUPT;
            goto done;
        }
        piece_cps(str, len, cps);
        size_t u16 = 0;
        for (long j = 0; j < k; j++)
            u16 += cps[j] > 0xFFFF ? 2 : 1;
        sp->sp_u16len[i] = (uint16_t)u16;
        /* An empty piece matches nothing (the runtime's trie ignores it too). */
        if (i < SP_RESERVED || k == 0)
            continue;
        /* A piece seen twice: the later id and score win, as in the runtime's trie. */
        int32_t node = 0;
        for (long j = k; j-- > 0;) {
            node = edge_add(sp, (uint32_t)node, cps[j]);
            if (cps[j] == SP_WS && j > 0)
                sp->sp_ws_safe = 0;
        }
        sp->sp_node_id[node] = (int32_t)i;
        if (cps[0] < 0x10000)
            sp->sp_first[cps[0] >> 3] |= (uint8_t)(1u << (cps[0] & 7));
        else
            edge_add(sp, SP_FIRST_NODE, cps[0]);
        if ((unsigned)k > sp->sp_maxlen)
            sp->sp_maxlen = (unsigned)k;
    }
    rc = 0;
done:
    json_decref(root);
    if (rc != 0) {
        ck_sp_free(sp);
        return rc;
    }
    *out = sp;
    return 0;
}

/* ---- encoding ---- */

/* Replaces every byte sequence of text that is not valid UTF-8 with U+FFFD, into a new
 * buffer (*outlen bytes). NULL when out of memory. */
static char *sanitize_utf8(const char *text, size_t len, size_t *outlen)
{
    char *s = ck_malloc(len * 3 + 1);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0 || cp < 0) {
            memcpy(s + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(s + o, text + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        }
    }
    *outlen = o;
    return s;
}

/* Code points of "▁" + NFKC(text) with spaces as "▁", into *cps (the caller's stack buffer
 * of cap entries, or a new heap buffer stored in *heap). Returns their number, or -1 when
 * out of memory. */
static long symbols(const char *text, size_t len, int32_t **cps, size_t cap, int32_t **heap)
{
    size_t i = 0;
    while (i < len && (uint8_t)text[i] < 0x80)
        i++;
    if (i == len) { /* ASCII: NFKC is the identity */
        if (len + 1 > cap) {
            *heap = ck_malloc((len + 1) * sizeof(int32_t));
            if (!*heap)
                return -1;
            *cps = *heap;
        }
        int32_t *c = *cps;
        c[0] = SP_WS;
        for (i = 0; i < len; i++)
            c[i + 1] = text[i] == ' ' ? SP_WS : (int32_t)(uint8_t)text[i];
        return (long)len + 1;
    }
    char *clean = NULL;
    const uint8_t *src = (const uint8_t *)text;
    int32_t *buf = *cps;
    utf8proc_ssize_t r;
    for (;;) {
        r = utf8proc_decompose(src, (utf8proc_ssize_t)len, buf + 1, (utf8proc_ssize_t)(cap - 1),
                               NFKC_OPTS);
        if (r == UTF8PROC_ERROR_INVALIDUTF8 && !clean) {
            clean = sanitize_utf8(text, len, &len);
            if (!clean)
                return -1;
            src = (const uint8_t *)clean;
            continue;
        }
        if (r < 0) { /* cannot happen for valid input; treat as out of memory */
            ck_free(clean);
            return -1;
        }
        if ((size_t)r + 1 <= cap)
            break;
        ck_free(*heap);
        cap = (size_t)r + 1;
        *heap = buf = ck_malloc(cap * sizeof(int32_t));
        if (!buf) {
            ck_free(clean);
            return -1;
        }
        *cps = buf;
    }
    ck_free(clean);
    r = utf8proc_normalize_utf32(buf + 1, r, NFKC_OPTS);
    if (r < 0)
        return -1;
    buf[0] = SP_WS;
    for (utf8proc_ssize_t k = 1; k <= r; k++)
        if (buf[k] == ' ')
            buf[k] = SP_WS;
    return (long)r + 1;
}

/* Tokenises text[0..len) whole; writes the first max ids and returns the number of ids of
 * the whole text, or -1 when out of memory. */
static long encode_all(const ck_sp_t *sp, const char *text, size_t len, int32_t *ids, size_t max)
{
    int32_t stack_cps[SP_STACK_SYMS];
    double stack_best[SP_STACK_SYMS + 1];
    int32_t stack_words[SP_STACK_SYMS + 1];
    int32_t *cps = stack_cps, *heap_cps = NULL;
    void *heap = NULL;
    long n = symbols(text, len, &cps, SP_STACK_SYMS, &heap_cps);
    if (n < 0) {
        ck_free(heap_cps);
        return -1;
    }
    double *best = stack_best;
    int32_t *words = stack_words;
    if ((size_t)n + 1 > SP_STACK_SYMS + 1) {
        heap = ck_malloc(((size_t)n + 1) * (sizeof(double) + sizeof(int32_t)));
        if (!heap) {
            ck_free(heap_cps);
            return -1;
        }
        best = heap;
        words = (int32_t *)(best + n + 1);
    }

    /* Viterbi over end positions (see tokenizer.h for the tie and zero rules). */
    best[0] = 0;
    words[0] = -1;
    for (long e = 1; e <= n; e++) {
        long cs[SP_MAX_PIECE];
        int32_t cid[SP_MAX_PIECE];
        int nc = 0;
        int32_t node = 0;
        long lo = e - (long)sp->sp_maxlen;
        for (long s = e - 1; s >= 0 && s >= lo; s--) {
            node = edge_get(sp, (uint32_t)node, cps[s]);
            if (node < 0)
                break;
            int32_t id = sp->sp_node_id[node];
            if (id >= 0) {
                cs[nc] = s;
                cid[nc++] = id;
            }
        }
        double b = 0;
        int32_t w = -1;
        while (nc-- > 0) { /* starts ascending */
            double sc = sp->sp_score[cid[nc]] + best[cs[nc]];
            if (b == 0 || sc >= b) {
                b = sc;
                w = cid[nc];
            }
        }
        int32_t last = cps[e - 1];
        if (!starts_piece(sp, last)) {
            /* The unknown edge starts last; the runtime looks up the total before it
             * counting UTF-16 units. Position 0 is always "▁", so e - 2 >= 0 here. */
            long from = e - (last > 0xFFFF ? 2 : 1);
            double sc = best[from < 0 ? 0 : from];
            if (b == 0 || sc >= b) {
                b = sc;
                w = 0;
            }
        }
        best[e] = b;
        words[e] = w;
    }

    /* Read the path back from the end into cps (no longer needed), merging unknowns. */
    long m = 0;
    int prev_unk = 0;
    for (long it = n; it > 0;) {
        int32_t w = words[it];
        if (w < 0) /* unreachable position: a vocabulary without single-code-point pieces */
            w = 0;
        if (!(prev_unk && w == 0))
            cps[m++] = w;
        prev_unk = w == 0;
        long step = sp->sp_u16len[w];
        it -= step > 0 ? step : 1;
    }
    for (long i = 0; i < m && (size_t)i < max; i++)
        ids[i] = cps[m - 1 - i];
    ck_free(heap);
    ck_free(heap_cps);
    return m;
}

int ck_sp_encode(const ck_sp_t *sp, const char *text, size_t len, int32_t *ids, size_t max,
                 size_t *n)
{
    *n = 0;
    if (max == 0)
        return 0;
    /* Growing prefixes that end before a space (exact: see tokenizer.h); about 4 bytes a
     * token is typical, so the first one usually suffices. */
    size_t lim = max > (CK_SP_SCAN_MAX / 8) ? CK_SP_SCAN_MAX : max * 8 + 256;
    size_t prev = 0;
    for (;;) {
        size_t cut = len;
        int last = 1;
        const char *at = NULL;
        if (len > lim && sp->sp_ws_safe)
            at = memchr(text + lim, ' ', len - lim);
        if (at && (size_t)(at - text) <= CK_SP_SCAN_MAX) {
            cut = (size_t)(at - text);
            last = 0;
        } else if (len > CK_SP_SCAN_MAX) {
            /* The last space before the bound, if it is past the previous prefix; else
             * no exact cut is left: stop at a code point boundary. */
            at = NULL;
            for (size_t k = CK_SP_SCAN_MAX + 1; sp->sp_ws_safe && k-- > prev + 1;)
                if (text[k] == ' ') {
                    at = text + k;
                    break;
                }
            if (at) {
                cut = (size_t)(at - text);
                last = 0;
            } else {
                cut = CK_SP_SCAN_MAX;
                while (cut > 0 && ((uint8_t)text[cut] & 0xC0) == 0x80)
                    cut--;
            }
        }
        long total = encode_all(sp, text, cut, ids, max);
        if (total < 0)
            return CK_ENOMEM;
        if (last || (size_t)total >= max) {
            *n = (size_t)total < max ? (size_t)total : max;
            return 0;
        }
        prev = cut;
        lim = cut * 2;
    }
}
