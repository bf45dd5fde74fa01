/* Byte buffers: a bounds-checked big-endian reader and a growable writer.
 *
 * Reader: every ck_rd_* call checks bounds. On the first failure the reader becomes
 * sticky-failed (r->err set, position frozen) and every later read returns zero values;
 * callers decode a whole structure and test r->err once at the end. Nothing allocates.
 *
 * Writer: appends grow the buffer through ck_realloc. An allocation failure sets w->err
 * (CK_ENOMEM) and turns later appends into no-ops; test w->err once at the end.
 * Thread: none; a buffer belongs to one thread at a time. */
#ifndef CK_CORE_BUF_H
#define CK_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"

/* A (pointer, length) slice. Never owns memory; lifetime is the owner's. len < 0 = null. */
typedef struct ck_slice {
    const uint8_t *ptr;
    int32_t len;
} ck_slice_t;

#define CK_SLICE_NULL ((ck_slice_t){NULL, -1})
static inline ck_slice_t ck_slice(const void *p, size_t n) { return (ck_slice_t){p, (int32_t)n}; }
static inline ck_slice_t ck_slice_cstr(const char *s)
{
    return s ? (ck_slice_t){(const uint8_t *)s, (int32_t)strlen(s)} : CK_SLICE_NULL;
}
static inline bool ck_slice_is_null(ck_slice_t s) { return s.len < 0; }
static inline bool ck_slice_eq(ck_slice_t a, ck_slice_t b)
{
    return a.len == b.len && (a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}
static inline bool ck_slice_eq_cstr(ck_slice_t a, const char *s)
{
    return a.len >= 0 && (size_t)a.len == strlen(s) && memcmp(a.ptr, s, (size_t)a.len) == 0;
}

/* ---- reader ---- */

typedef struct ck_rbuf {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
    int err;            /* 0 or the first CK_E* error (sticky) */
} ck_rbuf_t;

static inline void ck_rbuf_init(ck_rbuf_t *r, const void *p, size_t n)
{
    r->p = p;
    r->end = (const uint8_t *)p + n;
    r->err = 0;
}
static inline size_t ck_rbuf_left(const ck_rbuf_t *r) { return (size_t)(r->end - r->p); }
static inline void ck_rbuf_fail(ck_rbuf_t *r, int err)
{
    if (!r->err)
        r->err = err;
    r->p = r->end;
}
/* Returns a pointer to n bytes and advances, or NULL (and fails the reader). */
static inline const uint8_t *ck_rd_take(ck_rbuf_t *r, size_t n)
{
    if (r->err || ck_rbuf_left(r) < n) {
        ck_rbuf_fail(r, CK_ETRUNC);
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}
static inline uint8_t ck_rd_u8(ck_rbuf_t *r)
{
    const uint8_t *p = ck_rd_take(r, 1);
    return p ? p[0] : 0;
}
static inline uint16_t ck_rd_u16(ck_rbuf_t *r)
{
    const uint8_t *p = ck_rd_take(r, 2);
    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}
static inline uint32_t ck_rd_u32(ck_rbuf_t *r)
{
    const uint8_t *p = ck_rd_take(r, 4);
    return p ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3] : 0;
}
static inline uint64_t ck_rd_u64(ck_rbuf_t *r)
{
    uint64_t hi = ck_rd_u32(r);
    return (hi << 32) | ck_rd_u32(r);
}
static inline int8_t ck_rd_i8(ck_rbuf_t *r) { return (int8_t)ck_rd_u8(r); }
static inline int16_t ck_rd_i16(ck_rbuf_t *r) { return (int16_t)ck_rd_u16(r); }
static inline int32_t ck_rd_i32(ck_rbuf_t *r) { return (int32_t)ck_rd_u32(r); }
static inline int64_t ck_rd_i64(ck_rbuf_t *r) { return (int64_t)ck_rd_u64(r); }
static inline double ck_rd_f64(ck_rbuf_t *r)
{
    uint64_t u = ck_rd_u64(r);
    double d;
    memcpy(&d, &u, 8);
    return d;
}
/* Unsigned LEB128 varint of at most 5 bytes (32 bits) / 10 bytes (64 bits). */
static inline uint64_t ck_rd_uvarint64(ck_rbuf_t *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        const uint8_t *p = ck_rd_take(r, 1);
        if (!p)
            return 0;
        if (shift == 63 && (*p & 0x7e)) break;
        v |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80))
            return v;
    }
    ck_rbuf_fail(r, CK_ECORRUPT);
    return 0;
}
static inline uint32_t ck_rd_uvarint(ck_rbuf_t *r)
{
    uint32_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        const uint8_t *p = ck_rd_take(r, 1);
        if (!p)
            return 0;
        if (shift == 28 && (*p & 0x70)) break;
        v |= (uint32_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80))
            return v;
    }
    ck_rbuf_fail(r, CK_ECORRUPT);
    return 0;
}
/* Zig-zag signed varints (record fields). */
static inline int32_t ck_rd_varint(ck_rbuf_t *r)
{
    uint32_t u = ck_rd_uvarint(r);
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}
static inline int64_t ck_rd_varlong(ck_rbuf_t *r)
{
    uint64_t u = ck_rd_uvarint64(r);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* ---- writer ---- */

typedef struct ck_wbuf {
    uint8_t *data; /* owned; ck_free() or ck_wbuf_free() */
    size_t len;
    size_t cap;
    int err; /* 0 or CK_ENOMEM (sticky) */
} ck_wbuf_t;

#define CK_WBUF_INIT ((ck_wbuf_t){NULL, 0, 0, 0})

/* Ensures room for n more bytes; returns a pointer to them (not yet counted in len) or NULL. */
uint8_t *ck_wbuf_reserve(ck_wbuf_t *w, size_t n);
void ck_wbuf_free(ck_wbuf_t *w);
static inline void ck_wbuf_reset(ck_wbuf_t *w)
{
    w->len = 0;
    w->err = 0;
}
/* Hands the bytes to the caller (who frees with ck_free) and resets the writer. */
uint8_t *ck_wbuf_steal(ck_wbuf_t *w, size_t *len);

static inline void ck_wr_bytes(ck_wbuf_t *w, const void *p, size_t n)
{
    uint8_t *d = ck_wbuf_reserve(w, n);
    if (d) {
        if (n)
            memcpy(d, p, n);
        w->len += n;
    }
}
static inline void ck_wr_u8(ck_wbuf_t *w, uint8_t v) { ck_wr_bytes(w, &v, 1); }
static inline void ck_wr_u16(ck_wbuf_t *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    ck_wr_bytes(w, b, 2);
}
static inline void ck_wr_u32(ck_wbuf_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    ck_wr_bytes(w, b, 4);
}
static inline void ck_wr_u64(ck_wbuf_t *w, uint64_t v)
{
    ck_wr_u32(w, (uint32_t)(v >> 32));
    ck_wr_u32(w, (uint32_t)v);
}
static inline void ck_wr_i8(ck_wbuf_t *w, int8_t v) { ck_wr_u8(w, (uint8_t)v); }
static inline void ck_wr_i16(ck_wbuf_t *w, int16_t v) { ck_wr_u16(w, (uint16_t)v); }
static inline void ck_wr_i32(ck_wbuf_t *w, int32_t v) { ck_wr_u32(w, (uint32_t)v); }
static inline void ck_wr_i64(ck_wbuf_t *w, int64_t v) { ck_wr_u64(w, (uint64_t)v); }
static inline void ck_wr_f64(ck_wbuf_t *w, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    ck_wr_u64(w, u);
}
static inline void ck_wr_uvarint64(ck_wbuf_t *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    ck_wr_bytes(w, b, n);
}
static inline void ck_wr_uvarint(ck_wbuf_t *w, uint32_t v) { ck_wr_uvarint64(w, v); }
static inline void ck_wr_varint(ck_wbuf_t *w, int32_t v)
{
    ck_wr_uvarint(w, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}
static inline void ck_wr_varlong(ck_wbuf_t *w, int64_t v)
{
    ck_wr_uvarint64(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}
static inline size_t ck_uvarint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
static inline size_t ck_varint_size(int64_t v)
{
    return ck_uvarint_size(((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}
/* Big-endian stores into an existing buffer (patching lengths, offsets, CRCs). */
static inline void ck_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void ck_put_u64(uint8_t *p, uint64_t v)
{
    ck_put_u32(p, (uint32_t)(v >> 32));
    ck_put_u32(p + 4, (uint32_t)v);
}
static inline void ck_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline uint32_t ck_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t ck_get_u64(const uint8_t *p)
{
    return ((uint64_t)ck_get_u32(p) << 32) | ck_get_u32(p + 4);
}
static inline uint16_t ck_get_u16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

/* Little-endian 32-bit integers (our own on-disk search formats; Kafka is big-endian). */
/* The value of a hexadecimal digit, or -1. */
static inline int ck_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline uint32_t ck_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void ck_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void ck_wr_le32(ck_wbuf_t *w, uint32_t v)
{
    uint8_t b[4];
    ck_put_le32(b, v);
    ck_wr_bytes(w, b, 4);
}

#endif
