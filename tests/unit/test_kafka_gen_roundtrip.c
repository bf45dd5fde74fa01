/* Table-driven tests of the generated Kafka codec (src/kafka/gen/).
 *
 * Every message description (ck_kafka_msg_descs, emitted by tools/kafka_codegen.py) is
 * walked generically: for every valid version and several value sets (boundary integers,
 * empty / non-empty / null strings, empty / two-element / null arrays, long strings and
 * big arrays for multi-byte varints, non-default tagged fields) an object is filled,
 * encoded, decoded and re-encoded. The tests check that
 *   - re-encoding gives identical bytes and the decoder consumes exactly those bytes;
 *   - decoded fields equal the originals where present, and the defaults where absent;
 *   - an independent, description-driven encoder written here produces the same bytes
 *     as the generated encoder (two implementations of the wire rules agree);
 *   - every strict prefix of an encoding fails to decode, without reading past it
 *     (each prefix is copied into a buffer of exactly that size, for ASan);
 *   - trailing bytes are left unread; random corruption never crashes the decoder. */
#include <float.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "kafka/gen/kafka_msgs.h"
#include "test.h"

enum { V_MIN, V_MAX, V_NULL, V_BIG, V_COUNT };

/* Mirror of the generated array members: struct { int32_t count; T *items; }. */
typedef struct {
    int32_t count;
    void *items;
} arr_t;

static arr_t get_arr(const void *m)
{
    arr_t x;
    memcpy(&x.count, m, sizeof(x.count));
    memcpy(&x.items, (const char *)m + offsetof(arr_t, items), sizeof(x.items));
    return x;
}
static void set_arr(void *m, int32_t n, void *items)
{
    memcpy(m, &n, sizeof(n));
    memcpy((char *)m + offsetof(arr_t, items), &items, sizeof(items));
}
static void *get_ptr(const void *m)
{
    void *p;
    memcpy(&p, m, sizeof(p));
    return p;
}
static void set_ptr(void *m, void *p) { memcpy(m, &p, sizeof(p)); }

static bool present(const ck_kafka_field_desc_t *f, int16_t v)
{
    return v >= f->min_version && v <= f->max_version;
}
static bool nullable(const ck_kafka_field_desc_t *f, int16_t v)
{
    return v >= f->null_min && v <= f->null_max;
}
static bool tagged(const ck_kafka_field_desc_t *f, int16_t v)
{
    return f->tag >= 0 && v >= f->tag_min;
}

static size_t scalar_size(uint8_t type)
{
    switch (type) {
    case CK_KFT_BOOL:
        return sizeof(bool);
    case CK_KFT_INT8:
        return 1;
    case CK_KFT_INT16:
    case CK_KFT_UINT16:
        return 2;
    case CK_KFT_INT32:
    case CK_KFT_UINT32:
        return 4;
    case CK_KFT_INT64:
    case CK_KFT_FLOAT64:
        return 8;
    case CK_KFT_UUID:
        return sizeof(ck_uuid_t);
    default:
        return sizeof(ck_slice_t);
    }
}
static size_t elem_size(const ck_kafka_field_desc_t *f)
{
    return f->type == CK_KFT_STRUCT ? f->sub->size : scalar_size(f->type);
}

/* ---- filling ---- */

static uint8_t blob_bytes[600];

static void fill_scalar(uint8_t type, void *p, int variant, bool can_null, uint32_t salt)
{
    switch (type) {
    case CK_KFT_BOOL: {
        bool b = variant != V_MIN;
        memcpy(p, &b, sizeof(b));
        break;
    }
    case CK_KFT_INT8: {
        int8_t x = variant == V_MIN ? INT8_MIN : variant == V_MAX ? INT8_MAX : (int8_t)-1;
        memcpy(p, &x, sizeof(x));
        break;
    }
    case CK_KFT_INT16: {
        int16_t x = variant == V_MIN ? INT16_MIN : variant == V_MAX ? INT16_MAX : 1;
        memcpy(p, &x, sizeof(x));
        break;
    }
    case CK_KFT_UINT16: {
        uint16_t x = variant == V_MIN ? 0 : variant == V_MAX ? UINT16_MAX : 0x1234;
        memcpy(p, &x, sizeof(x));
        break;
    }
    case CK_KFT_INT32: {
        int32_t x = variant == V_MIN ? INT32_MIN : variant == V_MAX ? INT32_MAX : -2;
        memcpy(p, &x, sizeof(x));
        break;
    }
    case CK_KFT_UINT32: {
        uint32_t x = variant == V_MIN ? 0 : variant == V_MAX ? UINT32_MAX : 0x80000001u;
        memcpy(p, &x, sizeof(x));
        break;
    }
    case CK_KFT_INT64: {
        int64_t x = variant == V_MIN ? INT64_MIN : variant == V_MAX ? INT64_MAX : -3;
        memcpy(p, &x, sizeof(x));
        break;
    }
    case CK_KFT_FLOAT64: {
        double x = variant == V_MIN ? -DBL_MAX : variant == V_MAX ? DBL_MAX : 0.1;
        memcpy(p, &x, sizeof(x));
        break;
    }
    case CK_KFT_UUID: {
        ck_uuid_t u;
        for (int i = 0; i < 16; i++)
            u.b[i] = variant == V_MIN ? 0 : (uint8_t)(variant == V_MAX ? 0xffu - (uint32_t)i : (uint32_t)i + salt);
        memcpy(p, &u, sizeof(u));
        break;
    }
    default: { /* string, bytes, records */
        ck_slice_t s;
        if (variant == V_MIN)
            s = ck_slice(blob_bytes, 0);
        else if (variant == V_MAX)
            s = ck_slice(blob_bytes + salt % 7, 11);
        else if (variant == V_NULL)
            s = can_null ? CK_SLICE_NULL : ck_slice(blob_bytes, 1);
        else
            s = ck_slice(blob_bytes + salt % 5, 300); /* 2-byte compact length */
        memcpy(p, &s, sizeof(s));
        break;
    }
    }
}

static void fill_struct(const ck_kafka_struct_desc_t *sd, void *obj, int16_t v, int variant,
                        ck_arena_t *a, int depth);

static int32_t array_len(const ck_kafka_field_desc_t *f, int16_t v, int variant, int depth)
{
    switch (variant) {
    case V_MIN:
        return 0;
    case V_MAX:
        return 2;
    case V_NULL:
        return nullable(f, v) ? -1 : 1;
    default:
        return depth == 0 ? 130 : 1; /* 2-byte compact count at the top */
    }
}

static void fill_field(const ck_kafka_field_desc_t *f, void *obj, int16_t v, int variant,
                       ck_arena_t *a, int depth)
{
    void *m = (char *)obj + f->offset;
    if (f->flags & CK_KFF_ARRAY) {
        int32_t n = array_len(f, v, variant, depth);
        void *items = NULL;
        if (n > 0) {
            items = ck_arena_calloc(a, (size_t)n * elem_size(f));
            CHECK(items);
        }
        for (int32_t i = 0; i < n; i++) {
            char *it = (char *)items + (size_t)i * elem_size(f);
            if (f->type == CK_KFT_STRUCT)
                fill_struct(f->sub, it, v, variant, a, depth + 1);
            else
                fill_scalar(f->type, it, variant, false, (uint32_t)i + 1);
        }
        set_arr(m, n, items);
    } else if (f->flags & CK_KFF_PTR) {
        if (variant == V_NULL && nullable(f, v)) {
            set_ptr(m, NULL);
        } else {
            void *sub = ck_arena_calloc(a, f->sub->size);
            CHECK(sub);
            fill_struct(f->sub, sub, v, variant, a, depth + 1);
            set_ptr(m, sub);
        }
    } else if (f->type == CK_KFT_STRUCT) {
        fill_struct(f->sub, m, v, variant, a, depth + 1);
    } else {
        fill_scalar(f->type, m, variant, nullable(f, v), (uint32_t)depth + f->offset);
    }
}

/* Only fields present in v are set; the others keep their defaults (a value the wire
 * cannot carry would not survive the round trip, by design). */
static void fill_struct(const ck_kafka_struct_desc_t *sd, void *obj, int16_t v, int variant,
                        ck_arena_t *a, int depth)
{
    sd->init(obj);
    for (size_t i = 0; i < sd->nfields; i++)
        if (present(&sd->fields[i], v))
            fill_field(&sd->fields[i], obj, v, variant, a, depth);
}

/* ---- comparing ---- */

typedef struct {
    const uint8_t *buf; /* decoded slices must point into [buf, buf+len) */
    size_t len;
    char path[512];
} cmp_ctx_t;

static void cmp_fail(cmp_ctx_t *c, const char *name, const char *why)
{
    CK_FAIL("%s.%s: %s", c->path, name, why);
}

static bool cmp_struct(cmp_ctx_t *c, const ck_kafka_struct_desc_t *sd, const void *a,
                       const void *b, int16_t v, bool all, bool fatal);

static bool cmp_scalar(cmp_ctx_t *c, uint8_t type, const void *a, const void *b, bool check_ptr)
{
    if (type >= CK_KFT_STRING && type <= CK_KFT_RECORDS) {
        ck_slice_t x, y;
        memcpy(&x, a, sizeof(x));
        memcpy(&y, b, sizeof(y));
        if (!ck_slice_eq(x, y))
            return false;
        if (check_ptr && c->buf && y.len > 0 &&
            (y.ptr < c->buf || y.ptr + y.len > c->buf + c->len))
            CK_FAIL("%s: decoded slice does not point into the input", c->path);
        return true;
    }
    return memcmp(a, b, scalar_size(type)) == 0;
}

static bool cmp_field(cmp_ctx_t *c, const ck_kafka_field_desc_t *f, const void *oa,
                      const void *ob, int16_t v, bool all, bool fatal)
{
    const void *a = (const char *)oa + f->offset, *b = (const char *)ob + f->offset;
    size_t plen = strlen(c->path);
    bool ok = true;
    if (f->flags & CK_KFF_ARRAY) {
        arr_t x = get_arr(a), y = get_arr(b);
        if (x.count != y.count) {
            ok = false;
        } else {
            for (int32_t i = 0; ok && i < x.count; i++) {
                const char *ia = (const char *)x.items + (size_t)i * elem_size(f);
                const char *ib = (const char *)y.items + (size_t)i * elem_size(f);
                if (f->type == CK_KFT_STRUCT) {
                    snprintf(c->path + plen, sizeof(c->path) - plen, ".%s[%d]", f->name, i);
                    ok = cmp_struct(c, f->sub, ia, ib, v, all, fatal);
                    c->path[plen] = 0;
                } else {
                    ok = cmp_scalar(c, f->type, ia, ib, !all);
                }
            }
        }
    } else if (f->flags & CK_KFF_PTR) {
        const void *x = get_ptr(a), *y = get_ptr(b);
        if (!x || !y) {
            ok = x == y;
        } else {
            snprintf(c->path + plen, sizeof(c->path) - plen, ".%s", f->name);
            ok = cmp_struct(c, f->sub, x, y, v, all, fatal);
            c->path[plen] = 0;
        }
    } else if (f->type == CK_KFT_STRUCT) {
        snprintf(c->path + plen, sizeof(c->path) - plen, ".%s", f->name);
        ok = cmp_struct(c, f->sub, a, b, v, all, fatal);
        c->path[plen] = 0;
    } else {
        ok = cmp_scalar(c, f->type, a, b, !all);
    }
    if (!ok && fatal)
        cmp_fail(c, f->name, all ? "differs from its default" : "differs after round trip");
    return ok;
}

/* all = false: fields present in v must equal, absent ones must hold their default in b.
 * all = true: every field must be equal (default comparison). */
static bool cmp_struct(cmp_ctx_t *c, const ck_kafka_struct_desc_t *sd, const void *a,
                       const void *b, int16_t v, bool all, bool fatal)
{
    void *dflt = NULL;
    bool ok = true;
    for (size_t i = 0; ok && i < sd->nfields; i++) {
        const ck_kafka_field_desc_t *f = &sd->fields[i];
        if (all || present(f, v)) {
            ok = cmp_field(c, f, a, b, v, all, fatal);
        } else {
            if (!dflt) {
                dflt = malloc(sd->size);
                CHECK(dflt);
                sd->init(dflt);
            }
            ok = cmp_field(c, f, dflt, b, v, true, fatal);
        }
    }
    free(dflt);
    return ok;
}

/* ---- an independent encoder driven by the descriptions ---- */

static void genc_struct(ck_wbuf_t *w, const ck_kafka_struct_desc_t *sd, const void *obj,
                        int16_t v, bool msgflex);

static void genc_len(ck_wbuf_t *w, bool flex, int bytes, int64_t n)
{
    if (flex)
        ck_wr_uvarint(w, (uint32_t)(n + 1));
    else if (bytes == 2)
        ck_wr_i16(w, (int16_t)n);
    else
        ck_wr_i32(w, (int32_t)n);
}

static void genc_scalar(ck_wbuf_t *w, uint8_t type, const void *p, bool flex, bool can_null)
{
    switch (type) {
    case CK_KFT_BOOL:
        ck_wr_u8(w, *(const bool *)p ? 1 : 0);
        return;
    case CK_KFT_INT8:
    case CK_KFT_INT16:
    case CK_KFT_UINT16:
    case CK_KFT_INT32:
    case CK_KFT_UINT32:
    case CK_KFT_INT64:
    case CK_KFT_FLOAT64: {
        /* Big-endian copy of the native value. */
        size_t n = scalar_size(type);
        uint64_t x = 0;
        uint8_t tmp[8];
        if (n == 1)
            x = *(const uint8_t *)p;
        else if (n == 2)
            x = *(const uint16_t *)p;
        else if (n == 4)
            x = *(const uint32_t *)p;
        else
            memcpy(&x, p, 8);
        for (size_t i = 0; i < n; i++)
            tmp[i] = (uint8_t)(x >> (8 * (n - 1 - i)));
        ck_wr_bytes(w, tmp, n);
        return;
    }
    case CK_KFT_UUID:
        ck_wr_bytes(w, p, 16);
        return;
    default: {
        ck_slice_t s;
        memcpy(&s, p, sizeof(s));
        int width = type == CK_KFT_STRING ? 2 : 4;
        if (s.len < 0 && can_null) {
            genc_len(w, flex, width, -1);
            return;
        }
        if (s.len < 0)
            s.len = 0;
        genc_len(w, flex, width, s.len);
        ck_wr_bytes(w, s.ptr, (size_t)s.len);
        return;
    }
    }
}

static void genc_value(ck_wbuf_t *w, const ck_kafka_field_desc_t *f, const void *obj, int16_t v,
                       bool msgflex, bool in_tag)
{
    const void *m = (const char *)obj + f->offset;
    bool flex = v >= f->flex_min;
    if (f->flags & CK_KFF_ARRAY) {
        arr_t x = get_arr(m);
        int32_t n = x.count < 0 && !nullable(f, v) ? 0 : x.count;
        genc_len(w, flex, 4, n);
        for (int32_t i = 0; i < n; i++) {
            const char *it = (const char *)x.items + (size_t)i * elem_size(f);
            if (f->type == CK_KFT_STRUCT)
                genc_struct(w, f->sub, it, v, msgflex);
            else
                genc_scalar(w, f->type, it, flex, false);
        }
    } else if (f->flags & CK_KFF_PTR) {
        const void *p = get_ptr(m);
        if (nullable(f, v)) {
            if (in_tag)
                ck_wr_uvarint(w, p ? 1 : 0);
            else
                ck_wr_i8(w, p ? 1 : -1);
        }
        if (p) {
            genc_struct(w, f->sub, p, v, msgflex);
        } else if (!nullable(f, v)) {
            void *d = malloc(f->sub->size);
            CHECK(d);
            f->sub->init(d);
            genc_struct(w, f->sub, d, v, msgflex);
            free(d);
        }
    } else if (f->type == CK_KFT_STRUCT) {
        genc_struct(w, f->sub, m, v, msgflex);
    } else {
        genc_scalar(w, f->type, m, flex, nullable(f, v));
    }
}

static void genc_struct(ck_wbuf_t *w, const ck_kafka_struct_desc_t *sd, const void *obj,
                        int16_t v, bool msgflex)
{
    const ck_kafka_field_desc_t *tags[64];
    size_t ntags = 0;
    void *dflt = NULL;
    for (size_t i = 0; i < sd->nfields; i++) {
        const ck_kafka_field_desc_t *f = &sd->fields[i];
        if (!present(f, v))
            continue;
        if (!tagged(f, v)) {
            genc_value(w, f, obj, v, msgflex, false);
            continue;
        }
        if (!dflt) {
            dflt = malloc(sd->size);
            CHECK(dflt);
            sd->init(dflt);
        }
        cmp_ctx_t c = {0};
        if (!cmp_field(&c, f, dflt, obj, v, true, false)) {
            CHECK(ntags < 64);
            tags[ntags++] = f;
        }
    }
    free(dflt);
    if (!msgflex)
        return;
    /* ascending tag order (insertion sort: a handful at most) */
    for (size_t i = 1; i < ntags; i++)
        for (size_t j = i; j > 0 && tags[j]->tag < tags[j - 1]->tag; j--) {
            const ck_kafka_field_desc_t *t = tags[j];
            tags[j] = tags[j - 1];
            tags[j - 1] = t;
        }
    ck_wr_uvarint(w, (uint32_t)ntags);
    for (size_t i = 0; i < ntags; i++) {
        ck_wbuf_t tmp = CK_WBUF_INIT;
        genc_value(&tmp, tags[i], obj, v, msgflex, true);
        CHECK(!tmp.err);
        ck_wr_uvarint(w, (uint32_t)tags[i]->tag);
        ck_wr_uvarint(w, (uint32_t)tmp.len);
        ck_wr_bytes(w, tmp.data, tmp.len);
        ck_wbuf_free(&tmp);
    }
}

/* ---- the tests ---- */

static void init_blob(void)
{
    for (size_t i = 0; i < sizeof(blob_bytes); i++)
        blob_bytes[i] = (uint8_t)(i * 37 + 11);
    blob_bytes[1] = 0;
    blob_bytes[2] = 0xff;
}

typedef struct {
    int roundtrips, versions, prefixes, corruptions;
} stats_t;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void roundtrip_one(const ck_kafka_msg_desc_t *md, int16_t v, int variant, stats_t *st,
                          bool prefixes, bool corrupt)
{
    ck_arena_t a = CK_ARENA_INIT;
    const ck_kafka_struct_desc_t *sd = md->root;
    void *obj = ck_arena_calloc(&a, sd->size);
    CHECK(obj);
    fill_struct(sd, obj, v, variant, &a, 0);

    ck_wbuf_t w1 = CK_WBUF_INIT, w2 = CK_WBUF_INIT, wg = CK_WBUF_INIT;
    md->encode(&w1, v, obj);
    if (w1.err)
        CK_FAIL("%s v%d variant %d: encode error %d", md->name, v, variant, w1.err);

    /* the generic encoder agrees byte for byte */
    genc_struct(&wg, sd, obj, v, v >= md->first_flexible);
    CHECK(!wg.err);
    if (wg.len != w1.len || (w1.len && memcmp(wg.data, w1.data, w1.len) != 0))
        CK_FAIL("%s v%d variant %d: generated encoder (%zu bytes) and description-driven "
                "encoder (%zu bytes) differ",
                md->name, v, variant, w1.len, wg.len);

    /* decode from an exact-size copy */
    size_t n = w1.len;
    uint8_t *buf = malloc(n ? n : 1);
    CHECK(buf);
    if (n)
        memcpy(buf, w1.data, n);
    ck_rbuf_t r;
    ck_rbuf_init(&r, buf, n);
    void *dec = ck_arena_calloc(&a, sd->size);
    CHECK(dec);
    int rc = md->decode(&r, v, &a, dec);
    if (rc != 0)
        CK_FAIL("%s v%d variant %d: decode failed: %d", md->name, v, variant, rc);
    CHECK_EQ(ck_rbuf_left(&r), 0);

    cmp_ctx_t c = {.buf = buf, .len = n};
    snprintf(c.path, sizeof(c.path), "%s v%d variant %d", md->name, v, variant);
    cmp_struct(&c, sd, obj, dec, v, false, true);

    md->encode(&w2, v, dec);
    CHECK(!w2.err);
    if (w2.len != n || (n && memcmp(w2.data, w1.data, n) != 0))
        CK_FAIL("%s v%d variant %d: re-encoding differs", md->name, v, variant);
    st->roundtrips++;

    /* trailing bytes are left for the caller */
    {
        uint8_t *big = malloc(n + 3);
        CHECK(big);
        memcpy(big, buf, n);
        memset(big + n, 0x5a, 3);
        ck_rbuf_init(&r, big, n + 3);
        CHECK_EQ(md->decode(&r, v, &a, dec), 0);
        CHECK_EQ(ck_rbuf_left(&r), 3);
        free(big);
    }

    /* every strict prefix fails (sampled for the big variant) */
    if (prefixes) {
        size_t step = n > 2000 ? n / 97 + 1 : 1;
        for (size_t k = 0; k < n; k += step) {
            uint8_t *p = malloc(k ? k : 1);
            CHECK(p);
            memcpy(p, buf, k);
            ck_rbuf_init(&r, p, k);
            ck_arena_t pa = CK_ARENA_INIT;
            void *out = ck_arena_calloc(&pa, sd->size);
            CHECK(out);
            rc = md->decode(&r, v, &pa, out);
            if (rc == 0)
                CK_FAIL("%s v%d variant %d: %zu-byte prefix of %zu decoded", md->name, v, variant,
                        k, n);
            CHECK(rc == CK_ETRUNC || rc == CK_ECORRUPT);
            ck_arena_free(&pa);
            free(p);
            st->prefixes++;
        }
    }

    /* random corruption: any result, but no crash and no out-of-bounds read */
    if (corrupt && n > 0) {
        for (int iter = 0; iter < 40; iter++) {
            uint8_t *p = malloc(n);
            CHECK(p);
            memcpy(p, buf, n);
            int flips = 1 + (int)(rnd() % 4);
            for (int i = 0; i < flips; i++)
                p[rnd() % n] = (uint8_t)rnd();
            size_t len = rnd() % 4 == 0 ? rnd() % n : n;
            ck_rbuf_init(&r, p, len);
            ck_arena_t pa = CK_ARENA_INIT;
            void *out = ck_arena_calloc(&pa, sd->size);
            CHECK(out);
            if (md->decode(&r, v, &pa, out) == 0) {
                ck_wbuf_t w3 = CK_WBUF_INIT;
                md->encode(&w3, v, out);
                ck_wbuf_free(&w3);
            }
            CHECK(pa.total < (size_t)64 << 20);
            ck_arena_free(&pa);
            free(p);
            st->corruptions++;
        }
    }

    free(buf);
    ck_wbuf_free(&w1);
    ck_wbuf_free(&w2);
    ck_wbuf_free(&wg);
    ck_arena_free(&a);
}

CK_TEST(kafka_gen_roundtrip_all_messages)
{
    init_blob();
    stats_t st = {0};
    CHECK_EQ(ck_kafka_msg_descs_count, 2 + 2 * ck_kafka_apis_count);
    for (size_t i = 0; i < ck_kafka_msg_descs_count; i++) {
        const ck_kafka_msg_desc_t *md = ck_kafka_msg_descs[i];
        for (int16_t v = md->min_version; v <= md->max_version; v++) {
            for (int variant = 0; variant < V_COUNT; variant++)
                roundtrip_one(md, v, variant, &st, variant != V_BIG, false);
            st.versions++;
        }
    }
    printf("  %zu messages, %d message versions, %d round trips, %d truncated prefixes\n",
           ck_kafka_msg_descs_count, st.versions, st.roundtrips, st.prefixes);
    fflush(stdout);
}

CK_TEST(kafka_gen_roundtrip_big_prefixes)
{
    init_blob();
    stats_t st = {0};
    for (size_t i = 0; i < ck_kafka_msg_descs_count; i++) {
        const ck_kafka_msg_desc_t *md = ck_kafka_msg_descs[i];
        roundtrip_one(md, md->max_version, V_BIG, &st, true, false);
    }
    CHECK(st.prefixes > 0);
}

CK_TEST(kafka_gen_random_corruption)
{
    init_blob();
    stats_t st = {0};
    for (size_t i = 0; i < ck_kafka_msg_descs_count; i++) {
        const ck_kafka_msg_desc_t *md = ck_kafka_msg_descs[i];
        for (int16_t v = md->min_version; v <= md->max_version; v++)
            roundtrip_one(md, v, V_MAX, &st, false, true);
    }
    printf("  %d corrupted decodes\n", st.corruptions);
    fflush(stdout);
}

/* Every message's init gives what a decoder gives for an absent field: decode the
 * minimal v-min encoding of a default object and compare all fields. */
CK_TEST(kafka_gen_init_matches_decode_defaults)
{
    for (size_t i = 0; i < ck_kafka_msg_descs_count; i++) {
        const ck_kafka_msg_desc_t *md = ck_kafka_msg_descs[i];
        const ck_kafka_struct_desc_t *sd = md->root;
        for (int16_t v = md->min_version; v <= md->max_version; v++) {
            ck_arena_t a = CK_ARENA_INIT;
            void *obj = ck_arena_calloc(&a, sd->size), *dec = ck_arena_calloc(&a, sd->size);
            CHECK(obj && dec);
            sd->init(obj);
            ck_wbuf_t w = CK_WBUF_INIT;
            md->encode(&w, v, obj);
            CHECK(!w.err);
            ck_rbuf_t r;
            static const uint8_t none[1];
            ck_rbuf_init(&r, w.len ? w.data : none, w.len); /* an empty body has no buffer */
            CHECK_EQ(md->decode(&r, v, &a, dec), 0);
            cmp_ctx_t c = {0};
            snprintf(c.path, sizeof(c.path), "%s v%d default", md->name, v);
            cmp_struct(&c, sd, obj, dec, v, true, true);
            ck_wbuf_free(&w);
            ck_arena_free(&a);
        }
    }
}

CK_TEST(kafka_gen_version_outside_range)
{
    for (size_t i = 0; i < ck_kafka_msg_descs_count; i++) {
        const ck_kafka_msg_desc_t *md = ck_kafka_msg_descs[i];
        ck_arena_t a = CK_ARENA_INIT;
        void *obj = ck_arena_calloc(&a, md->root->size);
        CHECK(obj);
        md->root->init(obj);
        uint8_t zeros[64] = {0};
        ck_rbuf_t r;
        ck_rbuf_init(&r, zeros, sizeof(zeros));
        CHECK_EQ(md->decode(&r, (int16_t)(md->max_version + 1), &a, obj), CK_EUNSUP);
        CHECK_EQ(md->decode(&r, -1, &a, obj), CK_EUNSUP);
        CHECK_EQ(ck_rbuf_left(&r), sizeof(zeros));
        ck_wbuf_t w = CK_WBUF_INIT;
        md->encode(&w, (int16_t)(md->max_version + 1), obj);
        CHECK_EQ(w.err, CK_EUNSUP);
        CHECK_EQ(w.len, 0);
        ck_wbuf_free(&w);
        ck_arena_free(&a);
    }
}
