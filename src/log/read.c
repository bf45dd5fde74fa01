/* Reads: fetch by offset, offset for a timestamp, max timestamp. Owner thread.
 *
 * Finding a batch: binary search of the segments by base offset, then the offset index
 * for the closest position at or below, then a forward walk over batch headers (at most
 * one index interval plus one batch). A sequential consumer does not search at all: each
 * read remembers where the next one starts (p->rpos, a few slots for a few consumers). */
#include <inttypes.h>
#include <string.h>

#include "core/logging.h"
#include "log/batch.h"
#include "log/log_int.h"

#define HDR_PREFIX (CK_BATCH_OFF_LAST_OFFSET_DELTA + 4) /* base, length, ..., lastOffsetDelta */

/* Index of the segment holding offset (the last one with base <= offset). */
static size_t seg_find(const ck_partition_t *p, int64_t offset)
{
    size_t lo = 0, hi = p->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->segs[mid]->base <= offset)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Points the partition's read window at segment s. */
static void scan_on(ck_partition_t *p, const ck__seg_t *s)
{
    if (p->scan_gen != p->seg_gen || p->scan_base != s->base || p->scan.fd != s->fd) {
        ck__scan_reset(&p->scan, s->fd, s->size);
        p->scan_gen = p->seg_gen;
        p->scan_base = s->base;
    } else {
        p->scan.limit = s->size; /* the active segment grows; bytes below never change */
    }
}

/* Where to start looking for relative offset rel in s: the offset-index entry at or below
 * it, checked against the batch header it names. A wrong entry (a damaged index file that
 * still looked well formed) costs a rebuild of a lazily loaded index, or else a scan from
 * the segment start; never a wrong answer. */
static int index_start(ck_partition_t *p, ck__seg_t *s, int64_t rel, int64_t *pos)
{
    for (int attempt = 0;; attempt++) {
        int64_t erel;
        int64_t epos = ck__oidx_floor(s, rel, &erel);
        scan_on(p, s);
        if (epos == 0) {
            *pos = 0;
            return 0;
        }
        int err;
        const uint8_t *h = ck__scan_get(&p->scan, epos, 8, &err);
        if (h && (int64_t)ck_get_u64(h) == s->base + erel) {
            *pos = epos;
            return 0;
        }
        if (!h && err && err != CK_ETRUNC)
            return err;
        if (attempt == 0 && s->idx_lazy) {
            int rc = ck__partition_seg_reindex(p, s);
            if (rc)
                return rc;
            continue;
        }
        CK_WARN("log",
                "%s: index entry of segment %020" PRId64 " at %" PRId64
                " does not match the log; scanning from the start",
                p->name, s->base, epos);
        *pos = 0;
        return 0;
    }
}

/* Finds the batch containing offset (log_start <= offset < log_end). *slot gets the
 * remembered position used, or -1. */
static int locate(ck_partition_t *p, int64_t offset, size_t *si_out, int64_t *pos_out, int *slot)
{
    size_t si;
    int64_t pos;
    *slot = -1;
    for (int i = 0; i < CK__RPOS_N; i++) {
        const ck__rpos_t *r = &p->rpos[i];
        if (r->gen == p->seg_gen && r->off == offset && r->si < p->nsegs) {
            si = r->si;
            pos = r->pos;
            *slot = i;
            goto found;
        }
    }
    si = seg_find(p, offset);
    ck__seg_t *s = p->segs[si];
    int rc = ck__partition_seg_index(p, s);
    if (rc)
        return rc;
    rc = index_start(p, s, offset - s->base, &pos);
    if (rc)
        return rc;
    for (;;) {
        int err;
        const uint8_t *h = ck__scan_get(&p->scan, pos, HDR_PREFIX, &err);
        if (!h) {
            CK_ERROR("log", "%s: offset %" PRId64 " not found in segment %020" PRId64 " (%s)",
                     p->name, offset, s->base, err ? ck_strerror(err) : "past the end");
            return err && err != CK_ETRUNC ? err : CK_ECORRUPT;
        }
        int64_t base = (int64_t)ck_get_u64(h);
        int64_t total = (int64_t)(int32_t)ck_get_u32(h + CK_BATCH_OFF_LENGTH) + 12;
        int32_t lod = (int32_t)ck_get_u32(h + CK_BATCH_OFF_LAST_OFFSET_DELTA);
        if (total < CK_BATCH_HEADER_SIZE)
            return CK_ECORRUPT;
        if (base + lod >= offset)
            break;
        pos += total;
    }
found:
    while (pos >= p->segs[si]->size && si + 1 < p->nsegs) {
        si++;
        pos = 0;
    }
    *si_out = si;
    *pos_out = pos;
    return 0;
}

static void remember(ck_partition_t *p, int slot, int64_t off, size_t si, int64_t pos)
{
    if (slot < 0) {
        slot = (int)(p->rpos_next++ % CK__RPOS_N);
    }
    p->rpos[slot] = (ck__rpos_t){.gen = p->seg_gen, .off = off, .si = si, .pos = pos};
}

/* The common start of a read at offset below upper: CK_ERANGE outside the log, 1 if there
 * is nothing below upper (upper clamped to the log end), else 0 with the batch's segment
 * index, position and the read-position cache slot (locate). */
static int read_start(ck_partition_t *p, int64_t offset, int64_t *upper, size_t *si,
                      int64_t *pos, int *slot)
{
    if (offset < p->log_start || offset > p->log_end)
        return CK_ERANGE;
    if (*upper > p->log_end)
        *upper = p->log_end;
    if (offset >= *upper)
        return 1;
    *si = 0;
    *pos = 0;
    *slot = -1;
    return locate(p, offset, si, pos, slot);
}

int64_t ck_partition_read(ck_partition_t *p, int64_t offset, int64_t upper, size_t max_bytes,
                          bool min_one, ck_wbuf_t *out)
{
    size_t si;
    int64_t pos;
    int slot;
    int rc = read_start(p, offset, &upper, &si, &pos, &slot);
    if (rc)
        return rc == 1 ? 0 : rc;
    ck__seg_t *s = p->segs[si];
    int64_t avail = s->size - pos;
    if (avail <= 0)
        return 0;
    size_t want = (uint64_t)avail < max_bytes ? (size_t)avail : max_bytes;
    if (want < CK_BATCH_HEADER_SIZE) /* enough to see the first batch's size */
        want = avail < CK_BATCH_HEADER_SIZE ? (size_t)avail : CK_BATCH_HEADER_SIZE;
    uint8_t *d = ck_wbuf_reserve(out, want);
    if (!d)
        return CK_ENOMEM;
    int64_t r = ck__pread_all(s->fd, d, want, pos);
    if (r != (int64_t)want) {
        CK_ERROR("log", "%s: read of segment %020" PRId64 " at %" PRId64 " failed", p->name,
                 s->base, pos);
        return CK_EIO;
    }
    size_t acc = 0;
    int64_t next_off = offset;
    while (acc + HDR_PREFIX <= want) {
        const uint8_t *b = d + acc;
        int64_t total = (int64_t)(int32_t)ck_get_u32(b + CK_BATCH_OFF_LENGTH) + 12;
        int64_t last =
            (int64_t)ck_get_u64(b) + (int32_t)ck_get_u32(b + CK_BATCH_OFF_LAST_OFFSET_DELTA);
        if (total < CK_BATCH_HEADER_SIZE)
            return CK_ECORRUPT;
        if (last >= upper)
            break;
        if ((uint64_t)total > want - acc) {
            /* does not fit: min_one lets the first batch through whatever its size */
            if (acc == 0 && min_one && total <= avail) {
                d = ck_wbuf_reserve(out, (size_t)total);
                if (!d)
                    return CK_ENOMEM;
                r = ck__pread_all(s->fd, d + want, (size_t)total - want, pos + (int64_t)want);
                if (r != total - (int64_t)want)
                    return CK_EIO;
                acc = (size_t)total;
                next_off = last + 1;
            }
            break;
        }
        if (acc + (uint64_t)total > max_bytes && !(acc == 0 && min_one))
            break;
        acc += (size_t)total;
        next_off = last + 1;
    }
    out->len += acc;
    if (acc)
        remember(p, slot, next_off, si, pos + (int64_t)acc);
    return (int64_t)acc;
}

int64_t ck_partition_read_part(ck_partition_t *p, int64_t offset, int64_t upper, uint32_t rpos,
                               size_t len, ck_wbuf_t *out)
{
    size_t si;
    int64_t pos;
    int slot;
    int rc = read_start(p, offset, &upper, &si, &pos, &slot);
    if (rc)
        return rc == 1 ? CK_ENOENT : rc;
    ck__seg_t *s = p->segs[si];
    if (s->size - pos < CK_BATCH_HEADER_SIZE)
        return CK_ENOENT;
    size_t at = out->len;
    uint8_t *d = ck_wbuf_reserve(out, CK_BATCH_HEADER_SIZE);
    if (!d)
        return CK_ENOMEM;
    if (ck__pread_all(s->fd, d, CK_BATCH_HEADER_SIZE, pos) != CK_BATCH_HEADER_SIZE)
        return CK_EIO;
    int64_t total = (int64_t)(int32_t)ck_get_u32(d + CK_BATCH_OFF_LENGTH) + 12;
    int64_t base = (int64_t)ck_get_u64(d);
    int64_t last = base + (int32_t)ck_get_u32(d + CK_BATCH_OFF_LAST_OFFSET_DELTA);
    int16_t attrs = (int16_t)ck_get_u16(d + CK_BATCH_OFF_ATTRIBUTES);
    if (total < CK_BATCH_HEADER_SIZE || total > s->size - pos)
        return CK_ECORRUPT;
    /* not durable yet, not this offset's batch, or compressed: the caller reads it whole */
    if (last >= upper || offset < base || offset > last || (attrs & CK_ATTR_CODEC_MASK) ||
        rpos >= total - CK_BATCH_HEADER_SIZE)
        return CK_ENOENT;
    size_t want = (size_t)(total - CK_BATCH_HEADER_SIZE - rpos);
    if (want > len)
        want = len;
    out->len = at + CK_BATCH_HEADER_SIZE;
    d = ck_wbuf_reserve(out, want);
    if (!d)
        return CK_ENOMEM;
    if (ck__pread_all(s->fd, d, want, pos + CK_BATCH_HEADER_SIZE + rpos) != (int64_t)want)
        return CK_EIO;
    out->len += want;
    return (int64_t)(CK_BATCH_HEADER_SIZE + want);
}

/* Searches segment s for the first record with timestamp >= ts among batches with base
 * below limit. CK_ENOENT if none (then *past_limit tells whether the limit was reached). */
static int time_in_seg(ck_partition_t *p, ck__seg_t *s, int64_t ts, int64_t limit, int64_t *offset,
                       int64_t *found_ts, bool *past_limit)
{
    /* Batches up to the last time entry below ts all have timestamps < ts. */
    size_t j = ck__tidx_first_ge(s, ts);
    int64_t pos = 0;
    if (j > 0) {
        int rc = index_start(p, s, ck__tidx_rel(s, j - 1), &pos);
        if (rc)
            return rc;
    }
    scan_on(p, s);
    while (pos < s->size) {
        int err;
        const uint8_t *h = ck__scan_get(&p->scan, pos, CK_BATCH_HEADER_SIZE, &err);
        if (!h)
            return err && err != CK_ETRUNC ? err : CK_ECORRUPT;
        int64_t base = (int64_t)ck_get_u64(h);
        int64_t total = (int64_t)(int32_t)ck_get_u32(h + CK_BATCH_OFF_LENGTH) + 12;
        int64_t last = base + (int32_t)ck_get_u32(h + CK_BATCH_OFF_LAST_OFFSET_DELTA);
        int64_t bmax = (int64_t)ck_get_u64(h + CK_BATCH_OFF_MAX_TIMESTAMP);
        if (total < CK_BATCH_HEADER_SIZE)
            return CK_ECORRUPT;
        if (base >= limit) {
            *past_limit = true;
            return CK_ENOENT;
        }
        if (last >= p->log_start && bmax >= ts) {
            const uint8_t *b = ck__scan_get(&p->scan, pos, (size_t)total, &err);
            if (!b)
                return err && err != CK_ETRUNC ? err : CK_ECORRUPT;
            int64_t o, t;
            int rc = ck_batch_find_timestamp(b, (size_t)total, ts, &o, &t);
            if (rc == 0) {
                /* a batch straddling log_start: records below it are gone */
                *offset = o < p->log_start ? p->log_start : o;
                *found_ts = t;
                return 0;
            }
            if (rc != CK_ENOENT) {
                CK_WARN("log", "%s: batch at offset %" PRId64 " unreadable: %s", p->name, base,
                        ck_strerror(rc));
                return rc;
            }
        }
        pos += total;
    }
    return CK_ENOENT;
}

int ck_partition_offset_for_time(ck_partition_t *p, int64_t ts, int64_t *offset, int64_t *found_ts)
{
    int64_t limit = ck_partition_durable_end(p);
    if (limit <= p->log_start)
        return CK_ENOENT;
    for (size_t si = seg_find(p, p->log_start); si < p->nsegs; si++) {
        ck__seg_t *s = p->segs[si];
        if (s->base >= limit)
            break;
        int rc = ck__partition_seg_index(p, s);
        if (rc)
            return rc;
        if (s->size == 0 || s->max_ts < ts)
            continue;
        bool past = false;
        rc = time_in_seg(p, s, ts, limit, offset, found_ts, &past);
        if (rc != CK_ENOENT || past)
            return rc;
    }
    return CK_ENOENT;
}

/* Largest batch max timestamp among the batches of s with base < limit. */
static int seg_max_below(ck_partition_t *p, ck__seg_t *s, int64_t limit, int64_t *m)
{
    if (s->next <= limit) {
        *m = s->max_ts;
        return 0;
    }
    /* Only the segment holding durable_end gets here: start at its last time entry below
     * the limit (whose timestamp covers every batch before it), walk the rest. */
    size_t k = s->tidx.n;
    while (k > 0 && s->base + ck__tidx_rel(s, k - 1) >= limit)
        k--;
    int64_t mx = -1, pos = 0;
    if (k > 0) {
        mx = ck__tidx_ts(s, k - 1);
        int rc = index_start(p, s, ck__tidx_rel(s, k - 1), &pos);
        if (rc)
            return rc;
    }
    scan_on(p, s);
    while (pos < s->size) {
        int err;
        const uint8_t *h = ck__scan_get(&p->scan, pos, CK_BATCH_HEADER_SIZE, &err);
        if (!h)
            return err && err != CK_ETRUNC ? err : CK_ECORRUPT;
        if ((int64_t)ck_get_u64(h) >= limit)
            break;
        int64_t bmax = (int64_t)ck_get_u64(h + CK_BATCH_OFF_MAX_TIMESTAMP);
        if (bmax > mx)
            mx = bmax;
        int64_t total = (int64_t)(int32_t)ck_get_u32(h + CK_BATCH_OFF_LENGTH) + 12;
        if (total < CK_BATCH_HEADER_SIZE)
            return CK_ECORRUPT;
        pos += total;
    }
    *m = mx;
    return 0;
}

int ck_partition_max_timestamp(ck_partition_t *p, int64_t *offset, int64_t *ts)
{
    int64_t limit = ck_partition_durable_end(p);
    if (limit <= p->log_start)
        return CK_ENOENT;
    bool have = false;
    int64_t best = -1;
    for (size_t si = seg_find(p, p->log_start); si < p->nsegs; si++) {
        ck__seg_t *s = p->segs[si];
        if (s->base >= limit)
            break;
        if (s->size == 0)
            continue;
        int rc = ck__partition_seg_index(p, s);
        int64_t m = -1;
        if (!rc)
            rc = seg_max_below(p, s, limit, &m);
        if (rc)
            return rc;
        if (!have || m > best) {
            best = m;
            have = true;
        }
    }
    if (!have)
        return CK_ENOENT;
    /* the earliest record carrying the maximum is the first one at or above it */
    return ck_partition_offset_for_time(p, best, offset, ts);
}
