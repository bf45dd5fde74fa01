/* Internals shared by restidx.c and restidx_map.c. */
#ifndef CK_SEARCH_RESTIDX_INT_H
#define CK_SEARCH_RESTIDX_INT_H

#include <jansson.h>
#include <stddef.h>

#include "search/docfields.h"
#include "search/query.h"

/* One mapped field: its dotted path and type. */
typedef struct ri_field {
    char *path;
    size_t len;
    ck_map_type_t type;
} ri_field_t;

/* Fills err (may be NULL) with an HTTP status, an ES error type and a reason. */
void ck__restidx_err(ck_search_error_t *err, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Validates mappings (may be NULL) and builds the field table, sorted by path (free with
 * ck__restidx_fields_free). CK_EINVAL with err filled, CK_ENOMEM. */
int ck__restidx_map_build(const json_t *mappings, ri_field_t **out, size_t *nout,
                          ck_search_error_t *err);
void ck__restidx_fields_free(ri_field_t *f, size_t n);
/* The mapped type of path in a sorted field table; CK_MAP_DYNAMIC if not mapped. */
ck_map_type_t ck__restidx_map_find(const ri_field_t *f, size_t n, const char *path, size_t len);

#endif
