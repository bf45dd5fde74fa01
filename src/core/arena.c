#include "core/arena.h"

#include <stdint.h>
#include <string.h>

#include "core/alloc.h"

struct ck_arena_chunk {
    ck_arena_chunk_t *next;
    size_t size;
    _Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK 16384

void *ck_arena_alloc(ck_arena_t *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (!a->head || a->head->size - a->used < n) {
        size_t sz = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        if (sz > SIZE_MAX - sizeof(ck_arena_chunk_t))
            return NULL;
        ck_arena_chunk_t *c = ck_malloc(sizeof(*c) + sz);
        if (!c)
            return NULL;
        c->size = sz;
        if (a->head && n > ARENA_CHUNK) {
            /* A big block goes behind the head, so the head's free space stays usable. */
            c->next = a->head->next;
            a->head->next = c;
            a->total += n;
            return c->data;
        }
        c->next = a->head;
        a->head = c;
        a->used = 0;
    }
    void *p = a->head->data + a->used;
    a->used += n;
    a->total += n;
    return p;
}

void *ck_arena_calloc(ck_arena_t *a, size_t n)
{
    void *p = ck_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *ck_arena_memdup(ck_arena_t *a, const void *src, size_t n)
{
    void *p = ck_arena_alloc(a, n);
    if (p && n)
        memcpy(p, src, n);
    return p;
}

void ck_arena_reset(ck_arena_t *a)
{
    ck_arena_chunk_t *c = a->head;
    if (!c)
        return;
    /* keep the last (oldest) standard chunk */
    ck_arena_chunk_t *keep = NULL;
    while (c) {
        ck_arena_chunk_t *n = c->next;
        if (!keep && c->size == ARENA_CHUNK && !n)
            keep = c;
        else if (!(c->size == ARENA_CHUNK && !n))
            ck_free(c);
        else
            keep = c;
        c = n;
    }
    a->head = keep;
    if (keep)
        keep->next = NULL;
    a->used = 0;
    a->total = 0;
}

void ck_arena_free(ck_arena_t *a)
{
    ck_arena_chunk_t *c = a->head;
    while (c) {
        ck_arena_chunk_t *n = c->next;
        ck_free(c);
        c = n;
    }
    *a = CK_ARENA_INIT;
}
