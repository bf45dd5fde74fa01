/* Arena: many small allocations freed together (one request's decoded structures).
 * Allocation failure returns NULL. Memory is 16-byte aligned. Thread: one owner. */
#ifndef CK_CORE_ARENA_H
#define CK_CORE_ARENA_H

#include <stddef.h>

typedef struct ck_arena_chunk ck_arena_chunk_t;
typedef struct ck_arena {
    ck_arena_chunk_t *head;
    size_t used; /* bytes used in head */
    size_t total; /* bytes handed out since the last reset */
} ck_arena_t;

#define CK_ARENA_INIT ((ck_arena_t){NULL, 0, 0})

void *ck_arena_alloc(ck_arena_t *a, size_t n);   /* uninitialised */
void *ck_arena_calloc(ck_arena_t *a, size_t n);  /* zeroed */
void *ck_arena_memdup(ck_arena_t *a, const void *p, size_t n);
/* Frees every chunk but the first, which is kept for reuse. */
void ck_arena_reset(ck_arena_t *a);
void ck_arena_free(ck_arena_t *a);

#endif
