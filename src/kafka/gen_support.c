/* Out-of-line helpers of the generated Kafka codec; see gen_support.h. */
#include "kafka/gen_support.h"

void ck__krd_skip_tags(ck_rbuf_t *r)
{
    uint32_t n = ck_rd_uvarint(r);
    for (uint32_t i = 0; i < n && !r->err; i++) {
        ck_rd_uvarint(r); /* tag */
        ck_rd_take(r, ck_rd_uvarint(r));
    }
}

void ck__kwr_tag_end(ck_wbuf_t *w, size_t start)
{
    if (w->err)
        return;
    size_t n = w->len - start;
    size_t k = ck_uvarint_size(n);
    if (!ck_wbuf_reserve(w, k))
        return;
    /* Shift the payload right and put its size in front of it. */
    memmove(w->data + start + k, w->data + start, n);
    uint64_t v = n;
    uint8_t *p = w->data + start;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p = (uint8_t)v;
    w->len += k;
}

__thread ck_krecords_sink_fn ck__records_sink;
__thread void *ck__records_sink_arg;
