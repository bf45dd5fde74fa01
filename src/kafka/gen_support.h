/* Primitives shared by the generated Kafka codec (src/kafka/gen/, produced by
 * tools/kafka_codegen.py) and the field-description tables it emits.
 *
 * Wire forms (https://kafka.apache.org/protocol, "Protocol Primitive Types"):
 *   classic STRING       int16 length, -1 = null, then bytes
 *   classic BYTES        int32 length, -1 = null, then bytes (RECORDS travel as BYTES)
 *   classic ARRAY        int32 count, -1 = null, then elements
 *   COMPACT_* (flexible) unsigned varint length+1 / count+1, 0 = null
 *   tagged fields        uvarint count, then per field: uvarint tag, uvarint size, payload
 *
 * Readers: every ck__krd_* helper reports failures through the reader's sticky error
 * (CK_ETRUNC short input, CK_ECORRUPT invalid length or null where not allowed,
 * CK_ENOMEM arena exhausted) and returns a harmless value (empty slice, count 0).
 * Returned slices point into the input buffer: they live as long as that buffer.
 * Writers: helpers append to a ck_wbuf_t; errors stay in w->err (CK_ENOMEM from the
 * buffer, CK_ETOOBIG for a string over 32767 bytes).
 * The ck__k* helpers are internal to the generated code; ck_uuid_t, the description
 * tables and ck_uuid_* are public. Thread: none (pure functions over caller buffers). */
#ifndef CK_KAFKA_GEN_SUPPORT_H
#define CK_KAFKA_GEN_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"

/* A Kafka UUID: 16 bytes in wire order (most significant byte first). */
typedef struct ck_uuid {
    uint8_t b[16];
} ck_uuid_t;

static inline bool ck_uuid_is_zero(const ck_uuid_t *u)
{
    static const uint8_t zero[16];
    return memcmp(u->b, zero, 16) == 0;
}
static inline bool ck_uuid_eq(const ck_uuid_t *a, const ck_uuid_t *b)
{
    return memcmp(a->b, b->b, 16) == 0;
}

/* Longest string Kafka accepts, in either encoding. */
#define CK_KAFKA_STRING_MAX 0x7fff

/* ---- readers (internal to generated code) ---- */

static inline ck_uuid_t ck__krd_uuid(ck_rbuf_t *r)
{
    ck_uuid_t u;
    const uint8_t *p = ck_rd_take(r, 16);
    if (p)
        memcpy(u.b, p, 16);
    else
        memset(u.b, 0, 16);
    return u;
}

/* Reads a length prefix: an int16 (classic string), an int32 (classic bytes/array) or a
 * uvarint holding length+1 (compact). Returns -1 for null, -2 after an error (reader
 * failed) or for any other negative length (reader failed with CK_ECORRUPT). */
static inline int64_t ck__krd_len(ck_rbuf_t *r, bool flex, bool wide)
{
    int64_t n;
    if (flex)
        n = (int64_t)ck_rd_uvarint(r) - 1;
    else if (wide)
        n = ck_rd_i32(r);
    else
        n = ck_rd_i16(r);
    if (r->err)
        return -2;
    if (n < -1) {
        ck_rbuf_fail(r, CK_ECORRUPT);
        return -2;
    }
    return n;
}

static inline ck_slice_t ck__krd_blob(ck_rbuf_t *r, bool flex, bool wide, bool nullable,
                                      int64_t max)
{
    int64_t n = ck__krd_len(r, flex, wide);
    if (n == -1 && nullable)
        return CK_SLICE_NULL;
    if (n < 0 || n > max) {
        ck_rbuf_fail(r, CK_ECORRUPT); /* no-op when the reader already failed */
        return (ck_slice_t){NULL, 0};
    }
    const uint8_t *p = ck_rd_take(r, (size_t)n);
    return p ? (ck_slice_t){p, (int32_t)n} : (ck_slice_t){NULL, 0};
}

/* STRING / COMPACT_STRING (nullable decides whether a null is accepted). */
static inline ck_slice_t ck__krd_string(ck_rbuf_t *r, bool flex, bool nullable)
{
    return ck__krd_blob(r, flex, false, nullable, CK_KAFKA_STRING_MAX);
}
/* BYTES / COMPACT_BYTES, also RECORDS. */
static inline ck_slice_t ck__krd_bytes(ck_rbuf_t *r, bool flex, bool nullable)
{
    return ck__krd_blob(r, flex, true, nullable, INT32_MAX);
}

/* Most elements accepted in an array whose elements can take no bytes at all (a
 * structure with no fields in a non-flexible version): nothing else bounds the count. */
#define CK_KAFKA_EMPTY_ELEMS_MAX 4096

/* An array count: -1 for null (when nullable), else 0..n. A count that the remaining
 * input could not hold at minsz bytes per element fails with CK_ECORRUPT before anything
 * is allocated, so a hostile count costs nothing. */
static inline int32_t ck__krd_count(ck_rbuf_t *r, bool flex, bool nullable, size_t minsz)
{
    int64_t n = ck__krd_len(r, flex, true);
    if (n == -1 && nullable)
        return -1;
    size_t most = minsz ? ck_rbuf_left(r) / minsz : CK_KAFKA_EMPTY_ELEMS_MAX;
    if (n < 0 || (uint64_t)n > most) {
        ck_rbuf_fail(r, CK_ECORRUPT);
        return 0;
    }
    return (int32_t)n;
}

/* Arena space for n elements (n > 0) or NULL with the reader failed (CK_ENOMEM). */
static inline void *ck__krd_alloc(ck_rbuf_t *r, ck_arena_t *a, int32_t n, size_t size)
{
    if (r->err || n <= 0)
        return NULL;
    void *p = (size_t)n <= SIZE_MAX / size ? ck_arena_alloc(a, (size_t)n * size) : NULL;
    if (!p)
        ck_rbuf_fail(r, CK_ENOMEM);
    return p;
}

/* Reads one tagged field's tag and size and points *sub at its payload (consumed from r).
 * After an error *sub is an empty reader, so decoding from it fails harmlessly. */
static inline uint32_t ck__krd_tag(ck_rbuf_t *r, ck_rbuf_t *sub)
{
    uint32_t tag = ck_rd_uvarint(r);
    uint32_t size = ck_rd_uvarint(r);
    const uint8_t *p = ck_rd_take(r, size);
    ck_rbuf_init(sub, p ? p : r->p, p ? size : 0);
    return tag;
}

/* Skips a whole tagged-field section (a structure with no known tags). */
void ck__krd_skip_tags(ck_rbuf_t *r);

/* ---- writers (internal to generated code) ---- */

static inline void ck__kwr_blob(ck_wbuf_t *w, bool flex, bool wide, bool nullable, int64_t max,
                                ck_slice_t s)
{
    if (s.len < 0) {
        if (nullable) {
            if (flex)
                ck_wr_u8(w, 0);
            else if (wide)
                ck_wr_i32(w, -1);
            else
                ck_wr_i16(w, -1);
            return;
        }
        s.len = 0; /* null where the version does not allow it: written as empty */
    }
    if (s.len > max) {
        if (!w->err)
            w->err = CK_ETOOBIG;
        return;
    }
    if (flex)
        ck_wr_uvarint(w, (uint32_t)s.len + 1);
    else if (wide)
        ck_wr_i32(w, s.len);
    else
        ck_wr_i16(w, (int16_t)s.len);
    if (s.len > 0)
        ck_wr_bytes(w, s.ptr, (size_t)s.len);
}
/* Records fields may be written by reference instead of by copy. While a sink is set
 * (per thread), ck__kwr_records writes the length prefix and hands the bytes to the sink,
 * which notes where in the output they belong (a Fetch reply is then written with writev
 * from the reply buffer and the read buffer, without copying the records). */
typedef void (*ck_krecords_sink_fn)(void *arg, ck_wbuf_t *w, ck_slice_t s);
extern __thread ck_krecords_sink_fn ck__records_sink;
extern __thread void *ck__records_sink_arg;

static inline void ck__kwr_records(ck_wbuf_t *w, bool flex, bool nullable, ck_slice_t s)
{
    if (!ck__records_sink || s.len <= 0) {
        ck__kwr_blob(w, flex, true, nullable, INT32_MAX, s);
        return;
    }
    if (flex)
        ck_wr_uvarint(w, (uint32_t)s.len + 1);
    else
        ck_wr_i32(w, s.len);
    ck__records_sink(ck__records_sink_arg, w, s);
}
static inline void ck__kwr_string(ck_wbuf_t *w, bool flex, bool nullable, ck_slice_t s)
{
    ck__kwr_blob(w, flex, false, nullable, CK_KAFKA_STRING_MAX, s);
}
static inline void ck__kwr_bytes(ck_wbuf_t *w, bool flex, bool nullable, ck_slice_t s)
{
    ck__kwr_blob(w, flex, true, nullable, INT32_MAX, s);
}
/* Array count; a negative count is null if allowed, else written as empty. */
static inline void ck__kwr_count(ck_wbuf_t *w, bool flex, bool nullable, int32_t n)
{
    if (n < 0 && !nullable)
        n = 0;
    if (flex)
        ck_wr_uvarint(w, (uint32_t)(n + 1));
    else
        ck_wr_i32(w, n);
}
static inline void ck__kwr_uuid(ck_wbuf_t *w, ck_uuid_t u) { ck_wr_bytes(w, u.b, 16); }

/* A tagged field's payload is preceded by its size, which is only known once written:
 * ck__kwr_tag_begin() marks the start, ck__kwr_tag_end() inserts the uvarint size there. */
static inline size_t ck__kwr_tag_begin(ck_wbuf_t *w) { return w->len; }
void ck__kwr_tag_end(ck_wbuf_t *w, size_t start);

/* ---- field descriptions (public) ----
 * Every generated structure has a table describing its members, so generic code (tests,
 * debug printers) can walk any message without knowing its type. */

enum ck_kafka_ftype {
    CK_KFT_BOOL,
    CK_KFT_INT8,
    CK_KFT_INT16,
    CK_KFT_UINT16,
    CK_KFT_INT32,
    CK_KFT_UINT32,
    CK_KFT_INT64,
    CK_KFT_FLOAT64,
    CK_KFT_UUID,
    CK_KFT_STRING,  /* ck_slice_t */
    CK_KFT_BYTES,   /* ck_slice_t */
    CK_KFT_RECORDS, /* ck_slice_t */
    CK_KFT_STRUCT,  /* embedded structure, or a pointer when CK_KFF_PTR */
};

enum {
    CK_KFF_ARRAY = 1, /* member is struct { int32_t count; T *items; } */
    CK_KFF_PTR = 2,   /* nullable structure: member is T *, NULL = null */
};

/* The "no upper bound" / "never" version. */
#define CK_KAFKA_VMAX 32767

typedef struct ck_kafka_struct_desc ck_kafka_struct_desc_t;

typedef struct ck_kafka_field_desc {
    const char *name;                  /* spec name, e.g. "ThrottleTimeMs" */
    const ck_kafka_struct_desc_t *sub; /* CK_KFT_STRUCT: the structure, else NULL */
    uint32_t offset;                   /* offsetof() the member */
    uint8_t type;                      /* enum ck_kafka_ftype; element type for arrays */
    uint8_t flags;                     /* CK_KFF_* */
    int16_t min_version, max_version;  /* present in these versions */
    int16_t null_min, null_max;        /* nullable in these; null_min > null_max: never */
    int16_t flex_min;                  /* compact encoding from this version (VMAX: never) */
    int16_t tag_min;                   /* tagged from this version (VMAX: never) */
    int32_t tag;                       /* tag number, -1 when never tagged */
} ck_kafka_field_desc_t;

struct ck_kafka_struct_desc {
    const char *name;  /* spec name of the structure */
    size_t size;       /* sizeof the C structure */
    void (*init)(void *m);
    size_t nfields;
    const ck_kafka_field_desc_t *fields;
};

typedef struct ck_kafka_msg_desc {
    const char *name;        /* "ProduceRequest", "RequestHeader", ... */
    int16_t api_key;         /* -1 for the headers */
    bool response;           /* a response (or the response header) */
    int16_t min_version, max_version;
    int16_t first_flexible;  /* CK_KAFKA_VMAX when none */
    const ck_kafka_struct_desc_t *root;
    int (*decode)(ck_rbuf_t *r, int16_t version, ck_arena_t *a, void *out);
    void (*encode)(ck_wbuf_t *w, int16_t version, const void *in);
} ck_kafka_msg_desc_t;

#endif
