/* Route patterns and matching.
 *
 * A pattern is "/" or a list of segments "/seg/seg...": each one literal text or a whole
 * "{name}". A request path matches a pattern with as many segments when every literal is
 * equal to the decoded path segment and every {param} segment is non-empty. When several
 * patterns match, the one with a literal at the first position where they differ wins:
 * with "/_sql/{what}" and "/{index}/_search", "/_sql/_search" goes to the first. */
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "http/http_int.h"

static const char *const method_names[CK__HTTP_NMETHODS] = {"GET", "HEAD",   "POST",
                                                            "PUT", "DELETE", "PATCH"};

int ck__http_method_index(const char *m)
{
    for (int i = 0; i < CK__HTTP_NMETHODS; i++)
        if (strcmp(m, method_names[i]) == 0)
            return i;
    return -1;
}

const char *ck__http_method_name(int idx)
{
    return idx >= 0 && idx < CK__HTTP_NMETHODS ? method_names[idx] : "OTHER";
}

int ck__http_route_parse(const char *pattern, ck__http_route_t **out)
{
    if (!pattern || pattern[0] != '/')
        return CK_EINVAL;
    ck__http_route_t *rt = ck_calloc(1, sizeof(*rt));
    if (!rt)
        return CK_ENOMEM;
    rt->rt_pattern = ck_strdup(pattern);
    rt->rt_segbuf = ck_strdup(pattern + 1);
    if (!rt->rt_pattern || !rt->rt_segbuf) {
        ck__http_route_free(rt);
        return CK_ENOMEM;
    }
    if (pattern[1] == 0) { /* "/" has no segments */
        *out = rt;
        return 0;
    }
    char *s = rt->rt_segbuf;
    for (;;) {
        char *slash = strchr(s, '/');
        if (slash)
            *slash = 0;
        if (rt->rt_nseg == CK__HTTP_MAX_SEGS)
            goto bad;
        size_t n = strlen(s);
        if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
            if (n == 2 || strcspn(s + 1, "{}") != n - 2)
                goto bad;
            rt->rt_params |= 1u << rt->rt_nseg;
            rt->rt_seg[rt->rt_nseg++] = NULL;
        } else {
            if (strpbrk(s, "{}?#%"))
                goto bad;
            rt->rt_seg[rt->rt_nseg++] = s;
        }
        if (!slash)
            break;
        s = slash + 1;
    }
    *out = rt;
    return 0;
bad:
    ck__http_route_free(rt);
    return CK_EINVAL;
}

void ck__http_route_free(ck__http_route_t *rt)
{
    if (!rt)
        return;
    ck_free(rt->rt_pattern);
    ck_free(rt->rt_segbuf);
    ck_free(rt);
}

bool ck__http_route_same(const ck__http_route_t *a, const ck__http_route_t *b)
{
    if (a->rt_nseg != b->rt_nseg || a->rt_params != b->rt_params)
        return false;
    for (int i = 0; i < a->rt_nseg; i++)
        if (a->rt_seg[i] && strcmp(a->rt_seg[i], b->rt_seg[i]) != 0)
            return false;
    return true;
}

static bool route_matches(const ck__http_route_t *rt, const char *const *seg, int nseg)
{
    if (rt->rt_nseg != nseg)
        return false;
    for (int i = 0; i < nseg; i++) {
        if (rt->rt_seg[i] ? strcmp(rt->rt_seg[i], seg[i]) != 0 : seg[i][0] == 0)
            return false;
    }
    return true;
}

/* True when a beats b: at the lowest position where one has a {param} and the other a
 * literal, a has the literal. */
static bool more_specific(const ck__http_route_t *a, const ck__http_route_t *b)
{
    uint32_t diff = a->rt_params ^ b->rt_params;
    if (!diff)
        return false;
    uint32_t low = diff & (~diff + 1);
    return (a->rt_params & low) == 0;
}

const ck__http_route_t *ck__http_route_match(ck__http_route_t *const *routes, int n,
                                             const char *const *seg, int nseg)
{
    const ck__http_route_t *best = NULL;
    for (int i = 0; i < n; i++) {
        if (!route_matches(routes[i], seg, nseg))
            continue;
        if (!best || more_specific(routes[i], best))
            best = routes[i];
    }
    return best;
}

int ck__http_pct_decode(char *s)
{
    char *w = s;
    for (const char *p = s; *p; p++) {
        int hi, lo;
        if (p[0] == '%' && (hi = ck_hexval(p[1])) >= 0 && (lo = ck_hexval(p[2])) >= 0) {
            int c = hi * 16 + lo;
            if (c == 0)
                return -1;
            *w++ = (char)c;
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = 0;
    return 0;
}
