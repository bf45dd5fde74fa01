/* One allocator wrapper, so tests can inject allocation failures. All parts allocate
 * through these; they return NULL on failure like malloc and never abort. */
#ifndef CK_CORE_ALLOC_H
#define CK_CORE_ALLOC_H

#include <stddef.h>

void *ck_malloc(size_t n);
void *ck_calloc(size_t nmemb, size_t size);
void *ck_realloc(void *p, size_t n);
void ck_free(void *p);
char *ck_strndup(const char *s, size_t n);
char *ck_strdup(const char *s);

/* Tests only: make the Nth next allocation (1 = the next one) fail; 0 disables. */
void ck_alloc_fail_after(long n);

#endif
