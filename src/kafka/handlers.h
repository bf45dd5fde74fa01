/* Helpers shared by the API handler files (private to src/kafka). */
#ifndef CK_KAFKA_HANDLERS_H
#define CK_KAFKA_HANDLERS_H

#include <string.h>

#include "core/arena.h"
#include "kafka/broker_int.h"

/* Allocates arr.items for n zeroed elements from the request arena and sets arr.count.
 * Evaluates to 0, or -1 when out of memory. */
#define CK_ARRAY_ALLOC(req, arr, n)                                                        \
    ck__array_alloc(&(req)->arena, (void **)&(arr).items, sizeof(*(arr).items), &(arr).count, (n))

static inline int ck__array_alloc(ck_arena_t *a, void **items, size_t elem, int32_t *count, int32_t n)
{
    *count = n < 0 ? 0 : n;
    *items = ck_arena_calloc(a, elem * (size_t)(n > 0 ? n : 1));
    return *items ? 0 : -1;
}

/* A NUL-terminated copy of a slice in the request arena ("" for null). */
static inline char *ck__cstr(ck_kreq_t *req, ck_slice_t s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *p = ck_arena_alloc(&req->arena, n + 1);
    if (p) {
        if (n)
            memcpy(p, s.ptr, n);
        p[n] = 0;
    }
    return p;
}

static inline ck_slice_t ck__str(const char *s) { return ck_slice_cstr(s); }

/* A copy of a C string as a slice in the request arena (for messages built with snprintf). */
static inline ck_slice_t ck__strdup(ck_kreq_t *req, const char *s)
{
    size_t n = strlen(s);
    char *p = ck_arena_memdup(&req->arena, s, n + 1);
    return p ? (ck_slice_t){(const uint8_t *)p, (int32_t)n} : CK_SLICE_NULL;
}

/* A copy of n bytes in the request arena, as a slice (empty, not null, for n = 0): for
 * reply fields whose source may change before the reply is written. */
static inline ck_slice_t ck__bytesdup(ck_kreq_t *req, const void *p, size_t n)
{
    void *d = ck_arena_memdup(&req->arena, n ? p : "", n);
    return d ? ck_slice(d, n) : CK_SLICE_NULL;
}

static inline int16_t ck__partition_error(const ck_topic_t *t, int32_t p)
{
    return (t && p >= 0 && p < t->npart) ? 0 : KERR_UNKNOWN_TOPIC_OR_PARTITION;
}

#endif
