/* Mappings and names of REST-created indexes (see restidx.h): the mapping of PUT /{index}
 * validated into a sorted field table that docfields consults, and Elasticsearch's index
 * name rules. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "search/restidx.h"
#include "search/restidx_int.h"

void ck__restidx_err(ck_search_error_t *err, int status, const char *type, const char *fmt, ...)
{
    if (!err)
        return;
    err->status = status;
    snprintf(err->type, sizeof(err->type), "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
    va_end(ap);
}

/* ---- mapping ---- */

typedef struct mapb {
    ri_field_t *f;
    size_t n, cap;
} mapb_t;

static int mapb_add(mapb_t *mb, const char *path, size_t len, ck_map_type_t t)
{
    if (len == 0 || len > CK_SEG_FIELD_MAX)
        return 0; /* docfields never emits such paths */
    if (mb->n == mb->cap) {
        size_t nc = mb->cap ? mb->cap * 2 : 8;
        ri_field_t *nf = ck_realloc(mb->f, nc * sizeof(*nf));
        if (!nf)
            return CK_ENOMEM;
        mb->f = nf;
        mb->cap = nc;
    }
    char *p = ck_strndup(path, len);
    if (!p)
        return CK_ENOMEM;
    mb->f[mb->n++] = (ri_field_t){p, len, t};
    return 0;
}

void ck__restidx_fields_free(ri_field_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_free(f[i].path);
    ck_free(f);
}

static int field_cmp(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}
static int field_qcmp(const void *x, const void *y)
{
    const ri_field_t *a = x, *b = y;
    return field_cmp(a->path, a->len, b->path, b->len);
}

static bool type_in(const char *t, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(t, *list))
            return true;
    return false;
}

static const char *const T_TEXT[] = {"text", "match_only_text", NULL};
static const char *const T_KEYWORD[] = {"keyword", "constant_keyword", "wildcard", NULL};
static const char *const T_NUMBER[] = {"long",          "integer", "short",      "byte",
                                       "double",        "float",   "half_float", "scaled_float",
                                       "unsigned_long", "date",    "date_nanos", NULL};
static const char *const T_OTHER[] = {"boolean", "geo_point", "object", "nested", NULL};
static const char *const ANALYZERS[] = {"standard", "english", "simple",  "whitespace",
                                        "stop",     "default", "keyword", NULL};

static bool type_known(const char *t)
{
    return type_in(t, T_TEXT) || type_in(t, T_KEYWORD) || type_in(t, T_NUMBER) ||
           type_in(t, T_OTHER);
}

static int map_props(mapb_t *mb, const json_t *props, const char *prefix, int depth,
                     ck_search_error_t *err);

/* One field definition at path. */
static int map_field(mapb_t *mb, const char *path, const char *leaf, const json_t *def, int depth,
                     ck_search_error_t *err)
{
    if (!json_is_object(def)) {
        ck__restidx_err(err, 400, "mapper_parsing_exception",
                        "Expected map for property [type] on field [%s]", leaf);
        return CK_EINVAL;
    }
    const json_t *type = json_object_get(def, "type");
    const json_t *props = json_object_get(def, "properties");
    if (props && !json_is_object(props)) {
        ck__restidx_err(err, 400, "mapper_parsing_exception",
                        "Expected map for property [properties] on field [%s]", leaf);
        return CK_EINVAL;
    }
    if (!type) {
        if (props)
            return map_props(mb, props, path, depth + 1, err);
        ck__restidx_err(err, 400, "mapper_parsing_exception", "No type specified for field [%s]",
                        leaf);
        return CK_EINVAL;
    }
    const char *t = json_string_value(type);
    if (!t || !type_known(t)) {
        char *dump = t ? NULL : json_dumps(type, JSON_COMPACT | JSON_ENCODE_ANY);
        ck__restidx_err(err, 400, "mapper_parsing_exception",
                        "No handler for type [%s] declared on field [%s]",
                        t      ? t
                        : dump ? dump
                               : "?",
                        leaf);
        free(dump);
        return CK_EINVAL;
    }
    if (!strcmp(t, "object") || !strcmp(t, "nested"))
        return props ? map_props(mb, props, path, depth + 1, err) : 0;
    /* multi-fields: validate their types; a text field with a keyword sub-field named
     * "keyword" is exactly what docfields' dynamic rules produce (TEXT P, KEYWORD
     * P.keyword), so it is left dynamic */
    bool kw_sub = false;
    const json_t *subs = json_object_get(def, "fields");
    if (subs) {
        if (!json_is_object(subs)) {
            ck__restidx_err(err, 400, "mapper_parsing_exception",
                            "Expected map for property [fields] on field [%s]", leaf);
            return CK_EINVAL;
        }
        const char *sk;
        json_t *sd;
        json_object_foreach((json_t *)subs, sk, sd)
        {
            const char *st = json_string_value(json_object_get(sd, "type"));
            if (!json_is_object(sd) || !st || !type_known(st)) {
                ck__restidx_err(err, 400, "mapper_parsing_exception",
                                "No handler for type [%s] declared on field [%s]", st ? st : "null",
                                sk);
                return CK_EINVAL;
            }
            if (!strcmp(sk, "keyword") && type_in(st, T_KEYWORD))
                kw_sub = true;
        }
    }
    size_t plen = strlen(path);
    if (type_in(t, T_TEXT)) {
        const json_t *an = json_object_get(def, "analyzer");
        if (an) {
            const char *a = json_string_value(an);
            if (!a || !type_in(a, ANALYZERS)) {
                ck__restidx_err(err, 400, "mapper_parsing_exception",
                                "analyzer [%s] has not been configured in mappings",
                                a ? a : "null");
                return CK_EINVAL;
            }
            if (!strcmp(a, "keyword"))
                return mapb_add(mb, path, plen, CK_MAP_KEYWORD);
        }
        return kw_sub ? 0 : mapb_add(mb, path, plen, CK_MAP_TEXT);
    }
    if (type_in(t, T_KEYWORD))
        return mapb_add(mb, path, plen, CK_MAP_KEYWORD);
    if (type_in(t, T_NUMBER))
        return mapb_add(mb, path, plen, CK_MAP_NUMBER);
    if (!strcmp(t, "boolean"))
        return mapb_add(mb, path, plen, CK_MAP_BOOLEAN);
    /* geo_point: stored; "lat,lon" strings become one exact term, {lat, lon} objects
     * numbers of P.lat / P.lon (dynamic); no geo queries yet */
    return mapb_add(mb, path, plen, CK_MAP_KEYWORD);
}

static int map_props(mapb_t *mb, const json_t *props, const char *prefix, int depth,
                     ck_search_error_t *err)
{
    if (depth > 20) {
        ck__restidx_err(err, 400, "mapper_parsing_exception", "mapping nested too deeply");
        return CK_EINVAL;
    }
    const char *key;
    json_t *def;
    json_object_foreach((json_t *)props, key, def)
    {
        if (!*key) {
            ck__restidx_err(err, 400, "mapper_parsing_exception",
                            "field name cannot be an empty string");
            return CK_EINVAL;
        }
        size_t np = prefix ? strlen(prefix) : 0, nk = strlen(key);
        char *path = ck_malloc(np + nk + 2);
        if (!path)
            return CK_ENOMEM;
        if (prefix) {
            memcpy(path, prefix, np);
            path[np++] = '.';
        }
        memcpy(path + np, key, nk + 1);
        int rc = map_field(mb, path, key, def, depth, err);
        ck_free(path);
        if (rc) {
            if (rc == CK_ENOMEM)
                ck__restidx_err(err, 500, "out_of_memory_error", "out of memory");
            return rc;
        }
    }
    return 0;
}

static const char *const ROOT_KEYS[] = {"properties",
                                        "dynamic",
                                        "_source",
                                        "date_detection",
                                        "numeric_detection",
                                        "dynamic_templates",
                                        "dynamic_date_formats",
                                        "_meta",
                                        "_routing",
                                        "runtime",
                                        "enabled",
                                        "_field_names",
                                        NULL};

/* Validates mappings (may be NULL) and builds the sorted field table. */
int ck__restidx_map_build(const json_t *mappings, ri_field_t **out, size_t *nout,
                          ck_search_error_t *err)
{
    *out = NULL;
    *nout = 0;
    if (!mappings)
        return 0;
    if (!json_is_object(mappings)) {
        ck__restidx_err(err, 400, "mapper_parsing_exception",
                        "Failed to parse mapping: mappings must be an object");
        return CK_EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)mappings, key, v)
    {
        if (!type_in(key, ROOT_KEYS)) {
            char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            ck__restidx_err(err, 400, "mapper_parsing_exception",
                            "Root mapping definition has unsupported parameters:  [%s : %s]", key,
                            dump ? dump : "?");
            free(dump);
            return CK_EINVAL;
        }
    }
    const json_t *props = json_object_get(mappings, "properties");
    if (!props)
        return 0;
    if (!json_is_object(props)) {
        ck__restidx_err(err, 400, "mapper_parsing_exception",
                        "Expected map for property [properties] on the root mapping");
        return CK_EINVAL;
    }
    mapb_t mb = {0};
    int rc = map_props(&mb, props, NULL, 0, err);
    if (rc) {
        ck__restidx_fields_free(mb.f, mb.n);
        return rc;
    }
    if (mb.n)
        qsort(mb.f, mb.n, sizeof(*mb.f), field_qcmp);
    *out = mb.f;
    *nout = mb.n;
    return 0;
}

ck_map_type_t ck__restidx_map_find(const ri_field_t *f, size_t n, const char *path, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = field_cmp(f[mid].path, f[mid].len, path, len);
        if (c == 0)
            return f[mid].type;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return CK_MAP_DYNAMIC;
}

/* ---- names ---- */

int ck_restidx_check_name(const char *name, ck_search_error_t *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0) {
        ck__restidx_err(err, 400, "invalid_index_name_exception",
                        "Invalid index name [], must not be empty");
        return CK_EINVAL;
    }
    if (n > CK_RESTIDX_NAME_MAX) {
        ck__restidx_err(err, 400, "invalid_index_name_exception",
                        "Invalid index name [%.200s...], index name is too long, (%zu > %d)", name,
                        n, CK_RESTIDX_NAME_MAX);
        return CK_EINVAL;
    }
    if (!strcmp(name, ".") || !strcmp(name, "..")) {
        ck__restidx_err(err, 400, "invalid_index_name_exception",
                        "Invalid index name [%s], must not be '.' or '..'", name);
        return CK_EINVAL;
    }
    if (name[0] == '_' || name[0] == '-' || name[0] == '+') {
        ck__restidx_err(err, 400, "invalid_index_name_exception",
                        "Invalid index name [%s], must not start with '_', '-', or '+'", name);
        return CK_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (strchr("\\/*?\"<>| ,#:", name[i]) || (unsigned char)name[i] < 0x20) {
            ck__restidx_err(err, 400, "invalid_index_name_exception",
                            "Invalid index name [%s], must not contain the following characters "
                            "[ , \", *, \\, <, |, ,, >, /, ?, #, :]",
                            name);
            return CK_EINVAL;
        }
        if (name[i] >= 'A' && name[i] <= 'Z') {
            ck__restidx_err(err, 400, "invalid_index_name_exception",
                            "Invalid index name [%s], must be lowercase", name);
            return CK_EINVAL;
        }
    }
    return 0;
}
