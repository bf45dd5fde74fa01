#include "core/buf.h"

#include "core/alloc.h"

uint8_t *ck_wbuf_reserve(ck_wbuf_t *w, size_t n)
{
    if (w->err)
        return NULL;
    if (w->cap - w->len < n || !w->data) { /* never hand out NULL + 0 */
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n) {
            if (cap > SIZE_MAX / 2) {
                w->err = CK_ENOMEM;
                return NULL;
            }
            cap *= 2;
        }
        uint8_t *d = ck_realloc(w->data, cap);
        if (!d) {
            w->err = CK_ENOMEM;
            return NULL;
        }
        w->data = d;
        w->cap = cap;
    }
    return w->data + w->len;
}

void ck_wbuf_free(ck_wbuf_t *w)
{
    ck_free(w->data);
    *w = CK_WBUF_INIT;
}

uint8_t *ck_wbuf_steal(ck_wbuf_t *w, size_t *len)
{
    uint8_t *d = w->data;
    if (len)
        *len = w->len;
    *w = CK_WBUF_INIT;
    return d;
}
