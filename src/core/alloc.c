#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_after; /* 0 = off */

static int should_fail(void)
{
    long n = atomic_load_explicit(&fail_after, memory_order_relaxed);
    if (n <= 0)
        return 0;
    return atomic_fetch_sub(&fail_after, 1) == 1;
}

void ck_alloc_fail_after(long n) { atomic_store(&fail_after, n); }

void *ck_malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }
void *ck_calloc(size_t m, size_t n) { return should_fail() ? NULL : calloc(m ? m : 1, n ? n : 1); }
void *ck_realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }
void ck_free(void *p) { free(p); }

char *ck_strndup(const char *s, size_t n)
{
    char *d = ck_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

char *ck_strdup(const char *s) { return ck_strndup(s, strlen(s)); }
