/* Committed offsets over the internal offsets log (format: docs/GROUPS.md).
 *
 * Memory: one open-addressing hash table keyed by (group, topic, partition); each entry
 * owns one allocation holding group, topic and metadata bytes. Replay applies records in
 * log order, so the table always equals "the last record of each key, unless it is a
 * tombstone". */
#include "group/offsets.h"

#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/crc32c.h"
#include "core/logging.h"
#include "log/batch.h"

#define TYPE_OFFSET 1
#define VALUE_VERSION 1
#define REPLAY_CHUNK (4u << 20)

typedef struct slot {
    uint8_t *mem; /* NULL = empty; else [group][topic][metadata] */
    uint32_t hash;
    int16_t glen, tlen;
    int32_t partition;
    bool tomb; /* deleted: keeps probe chains intact until the next resize */
    ck_offset_entry_t e;
} slot_t;

struct ck_offsets {
    ck_partition_t *part;
    slot_t *slots;
    size_t cap, used, live;
    int64_t live_bytes;            /* encoded size of the live records */
    int64_t compact_from, compact_last; /* a rewritten copy waiting to be durable, or -1 */
};

#define RECORD_OVERHEAD 40 /* key/value framing, numbers, record header: an estimate */

static uint32_t key_hash(ck_slice_t g, ck_slice_t t, int32_t p)
{
    uint32_t h = ck_crc32c(0, g.ptr, (size_t)g.len);
    h = ck_crc32c(h ^ 0x9e3779b9u, t.ptr, (size_t)t.len);
    return ck_crc32c(h, &p, sizeof(p));
}

static bool key_eq(const slot_t *s, ck_slice_t g, ck_slice_t t, int32_t p)
{
    return s->partition == p && s->glen == g.len && s->tlen == t.len &&
           memcmp(s->mem, g.ptr, (size_t)g.len) == 0 && memcmp(s->mem + g.len, t.ptr, (size_t)t.len) == 0;
}

static slot_t *find(ck_offsets_t *o, ck_slice_t g, ck_slice_t t, int32_t p, uint32_t h, bool *found)
{
    size_t mask = o->cap - 1, i = h & mask;
    slot_t *first_tomb = NULL;
    for (;;) {
        slot_t *s = &o->slots[i];
        if (!s->mem && !s->tomb) {
            *found = false;
            return first_tomb ? first_tomb : s;
        }
        if (s->tomb) {
            if (!first_tomb)
                first_tomb = s;
        } else if (s->hash == h && key_eq(s, g, t, p)) {
            *found = true;
            return s;
        }
        i = (i + 1) & mask;
    }
}

static int grow(ck_offsets_t *o)
{
    size_t cap = o->cap ? o->cap * 2 : 256;
    slot_t *n = ck_calloc(cap, sizeof(*n));
    if (!n)
        return CK_ENOMEM;
    slot_t *old = o->slots;
    size_t oc = o->cap;
    o->slots = n;
    o->cap = cap;
    o->used = 0;
    for (size_t i = 0; i < oc; i++) {
        if (!old[i].mem)
            continue;
        size_t j = old[i].hash & (cap - 1);
        while (n[j].mem)
            j = (j + 1) & (cap - 1);
        n[j] = old[i];
        o->used++;
    }
    ck_free(old);
    return 0;
}

/* Applies one change in memory. value NULL = tombstone. */
static int apply(ck_offsets_t *o, ck_slice_t g, ck_slice_t t, int32_t p, const ck_offset_entry_t *value)
{
    if ((o->used + 1) * 4 >= o->cap * 3) {
        int rc = grow(o);
        if (rc)
            return rc;
    }
    uint32_t h = key_hash(g, t, p);
    bool found;
    slot_t *s = find(o, g, t, p, h, &found);
    if (!value) {
        if (found) {
            o->live_bytes -= RECORD_OVERHEAD + s->glen + s->tlen + (s->e.metadata.len > 0 ? s->e.metadata.len : 0);
            ck_free(s->mem);
            s->mem = NULL;
            s->tomb = true;
            o->live--;
        }
        return 0;
    }
    size_t ml = value->metadata.len > 0 ? (size_t)value->metadata.len : 0;
    uint8_t *mem = ck_malloc((size_t)g.len + (size_t)t.len + ml + 1);
    if (!mem)
        return CK_ENOMEM;
    memcpy(mem, g.ptr, (size_t)g.len);
    memcpy(mem + g.len, t.ptr, (size_t)t.len);
    if (ml)
        memcpy(mem + g.len + t.len, value->metadata.ptr, ml);
    if (found) {
        o->live_bytes -= RECORD_OVERHEAD + s->glen + s->tlen + (s->e.metadata.len > 0 ? s->e.metadata.len : 0);
        ck_free(s->mem);
    } else {
        if (!s->tomb)
            o->used++;
        o->live++;
    }
    s->mem = mem;
    s->tomb = false;
    s->hash = h;
    s->glen = (int16_t)g.len;
    s->tlen = (int16_t)t.len;
    s->partition = p;
    s->e = *value;
    s->e.metadata = value->metadata.len < 0 ? CK_SLICE_NULL : ck_slice(mem + g.len + t.len, ml);
    o->live_bytes += RECORD_OVERHEAD + g.len + t.len + (int64_t)ml;
    return 0;
}

/* ---- record encoding ---- */

static void wr_str(ck_wbuf_t *w, ck_slice_t s)
{
    ck_wr_i16(w, (int16_t)s.len);
    if (s.len > 0)
        ck_wr_bytes(w, s.ptr, (size_t)s.len);
}

static ck_slice_t rd_str(ck_rbuf_t *r)
{
    int16_t n = ck_rd_i16(r);
    if (n < 0)
        return CK_SLICE_NULL;
    const uint8_t *p = ck_rd_take(r, (size_t)n);
    return p ? ck_slice(p, (size_t)n) : CK_SLICE_NULL;
}

static void encode_key(ck_wbuf_t *w, ck_slice_t g, ck_slice_t t, int32_t p)
{
    ck_wr_i16(w, TYPE_OFFSET);
    wr_str(w, g);
    wr_str(w, t);
    ck_wr_i32(w, p);
}

static void encode_value(ck_wbuf_t *w, const ck_offset_entry_t *e)
{
    ck_wr_i16(w, VALUE_VERSION);
    ck_wr_i64(w, e->offset);
    ck_wr_i32(w, e->leader_epoch);
    wr_str(w, e->metadata);
    ck_wr_i64(w, e->commit_ms);
}

/* Applies one stored record; unknown types and versions are skipped (a newer server
 * may have written them). */
static int apply_record(ck_offsets_t *o, const ck_record_t *rec)
{
    ck_rbuf_t r;
    ck_rbuf_init(&r, rec->key.ptr, rec->key.len > 0 ? (size_t)rec->key.len : 0);
    if (ck_rd_i16(&r) != TYPE_OFFSET)
        return 0;
    ck_slice_t g = rd_str(&r), t = rd_str(&r);
    int32_t p = ck_rd_i32(&r);
    if (r.err || g.len <= 0 || t.len < 0)
        return CK_ECORRUPT;
    if (rec->value.len < 0)
        return apply(o, g, t, p, NULL);
    ck_rbuf_init(&r, rec->value.ptr, (size_t)rec->value.len);
    if (ck_rd_i16(&r) != VALUE_VERSION)
        return 0;
    ck_offset_entry_t e;
    e.offset = ck_rd_i64(&r);
    e.leader_epoch = ck_rd_i32(&r);
    e.metadata = rd_str(&r);
    e.commit_ms = ck_rd_i64(&r);
    if (r.err)
        return CK_ECORRUPT;
    return apply(o, g, t, p, &e);
}

static int replay(ck_offsets_t *o)
{
    ck_wbuf_t buf = CK_WBUF_INIT, scratch = CK_WBUF_INIT;
    int64_t off = ck_partition_log_start(o->part), end = ck_partition_log_end(o->part);
    int rc = 0;
    long records = 0;
    while (off < end && !rc) {
        ck_wbuf_reset(&buf);
        int64_t n = ck_partition_read(o->part, off, end, REPLAY_CHUNK, true, &buf);
        if (n <= 0) {
            rc = n < 0 ? (int)n : CK_ECORRUPT;
            break;
        }
        size_t pos = 0;
        while (pos < (size_t)n && !rc) {
            int64_t sz = ck_batch_total_size(buf.data + pos, (size_t)n - pos);
            if (sz < CK_BATCH_HEADER_SIZE || (size_t)sz > (size_t)n - pos) {
                rc = CK_ECORRUPT;
                break;
            }
            ck_batch_iter_t it;
            rc = ck_batch_iter_init(&it, buf.data + pos, (size_t)sz, &scratch);
            ck_record_t rec;
            int k;
            while (!rc && (k = ck_batch_iter_next(&it, &rec)) > 0) {
                if (rec.offset >= off) /* the first batch may start before off */
                    rc = apply_record(o, &rec);
                records++;
            }
            if (!rc && k < 0)
                rc = k;
            ck_batch_header_t h;
            ck_batch_header_parse(buf.data + pos, &h);
            off = h.base_offset + h.last_offset_delta + 1;
            pos += (size_t)sz;
        }
    }
    ck_wbuf_free(&buf);
    ck_wbuf_free(&scratch);
    if (!rc)
        CK_INFO("group", "offsets log replayed: %ld records, %ld committed offsets", records, o->live);
    return rc;
}

int ck_offsets_open(ck_log_t *log, ck_offsets_t **out)
{
    ck_offsets_t *o = ck_calloc(1, sizeof(*o));
    if (!o)
        return CK_ENOMEM;
    ck_log_config_t cfg;
    ck_log_config_default(&cfg);
    cfg.segment_bytes = 64 << 20;
    cfg.retention_ms = -1; /* the log start moves only by compaction (docs/GROUPS.md) */
    o->compact_from = o->compact_last = -1;
    int rc = ck_log_partition_open(log, "__consumer_offsets", 0, &cfg, &o->part);
    if (!rc)
        rc = grow(o);
    if (!rc)
        rc = replay(o);
    if (rc) {
        CK_ERROR("group", "cannot load the offsets log: %s", ck_strerror(rc));
        ck_offsets_close(o);
        return rc;
    }
    *out = o;
    return 0;
}

void ck_offsets_close(ck_offsets_t *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->cap; i++)
        ck_free(o->slots[i].mem);
    ck_free(o->slots);
    ck_free(o);
}

ck_partition_t *ck_offsets_partition(ck_offsets_t *o) { return o->part; }
long ck_offsets_count(const ck_offsets_t *o) { return (long)o->live; }

/* Appends a batch of (key, value) records already encoded in kv (pairs of slices). */
static int append_batch(ck_offsets_t *o, const ck_slice_t *kv, int n, int64_t now_ms, int64_t *last)
{
    ck_wbuf_t out = CK_WBUF_INIT;
    ck_batch_builder_t bb;
    ck_batch_builder_init(&bb, &out, CK_CODEC_NONE, 0);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        rc = ck_batch_builder_add(&bb, now_ms, kv[2 * i], kv[2 * i + 1], NULL, 0);
    if (!rc)
        rc = ck_batch_builder_finish(&bb);
    else
        ck_batch_builder_abort(&bb);
    int64_t base = -1;
    if (!rc)
        rc = ck_partition_append(o->part, out.data, out.len, -1, &base, last);
    ck_wbuf_free(&out);
    return rc;
}

int ck_offsets_commit(ck_offsets_t *o, ck_slice_t group, const ck_offset_commit_t *c, int n,
                      int64_t now_ms, int64_t *last)
{
    if (group.len <= 0 || group.len > 32767 || n <= 0)
        return CK_EINVAL;
    for (int i = 0; i < n; i++)
        if (c[i].topic.len <= 0 || c[i].topic.len > 255)
            return CK_EINVAL;
    ck_wbuf_t enc = CK_WBUF_INIT;
    size_t *cuts = ck_malloc(sizeof(size_t) * (size_t)(2 * n + 1));
    ck_slice_t *kv = ck_malloc(sizeof(ck_slice_t) * (size_t)(2 * n));
    int rc = (!cuts || !kv) ? CK_ENOMEM : 0;
    for (int i = 0; i < n && !rc; i++) {
        ck_offset_entry_t e = {c[i].offset, c[i].leader_epoch, c[i].metadata, now_ms};
        cuts[2 * i] = enc.len;
        encode_key(&enc, group, c[i].topic, c[i].partition);
        cuts[2 * i + 1] = enc.len;
        encode_value(&enc, &e);
    }
    if (!rc && enc.err)
        rc = CK_ENOMEM;
    if (!rc) {
        cuts[2 * n] = enc.len;
        for (int i = 0; i < 2 * n; i++)
            kv[i] = ck_slice(enc.data + cuts[i], cuts[i + 1] - cuts[i]);
        rc = append_batch(o, kv, n, now_ms, last);
    }
    /* only what is in the log is applied, so memory never runs ahead of the log */
    for (int i = 0; i < n && !rc; i++) {
        ck_offset_entry_t e = {c[i].offset, c[i].leader_epoch, c[i].metadata, now_ms};
        rc = apply(o, group, c[i].topic, c[i].partition, &e);
    }
    ck_free(cuts);
    ck_free(kv);
    ck_wbuf_free(&enc);
    return rc;
}

typedef struct del_ctx {
    ck_slice_t group;
    ck_wbuf_t keys;
    size_t *cuts;
    int n, cap;
    bool oom;
} del_ctx_t;

static void collect(void *arg, ck_slice_t topic, int32_t partition, const ck_offset_entry_t *e)
{
    del_ctx_t *d = arg;
    if (d->n + 2 > d->cap) {
        int cap = d->cap ? d->cap * 2 : 32;
        size_t *nc = ck_realloc(d->cuts, sizeof(size_t) * (size_t)cap);
        if (!nc) {
            d->oom = true;
            return;
        }
        d->cuts = nc;
        d->cap = cap;
    }
    d->cuts[d->n++] = d->keys.len;
    encode_key(&d->keys, d->group, topic, partition);
}

int ck_offsets_delete(ck_offsets_t *o, ck_slice_t group, ck_slice_t topic, int32_t partition,
                      int64_t now_ms, int64_t *last)
{
    *last = -1;
    del_ctx_t d = {group, CK_WBUF_INIT, NULL, 0, 0, false};
    if (topic.len >= 0) {
        if (ck_offsets_get(o, group, topic, partition))
            collect(&d, topic, partition, NULL);
    } else {
        ck_offsets_foreach(o, group, collect, &d);
    }
    int rc = d.oom || d.keys.err ? CK_ENOMEM : 0;
    if (!rc && d.n > 0) {
        ck_slice_t *kv = ck_malloc(sizeof(ck_slice_t) * (size_t)(2 * d.n));
        if (!kv)
            rc = CK_ENOMEM;
        for (int i = 0; !rc && i < d.n; i++) {
            size_t end = i + 1 < d.n ? d.cuts[i + 1] : d.keys.len;
            kv[2 * i] = ck_slice(d.keys.data + d.cuts[i], end - d.cuts[i]);
            kv[2 * i + 1] = CK_SLICE_NULL;
        }
        if (!rc)
            rc = append_batch(o, kv, d.n, now_ms, last);
        for (int i = 0; !rc && i < d.n; i++) {
            ck_rbuf_t r;
            ck_rbuf_init(&r, kv[2 * i].ptr, (size_t)kv[2 * i].len);
            ck_rd_i16(&r);
            ck_slice_t g = rd_str(&r), t = rd_str(&r);
            int32_t p = ck_rd_i32(&r);
            rc = apply(o, g, t, p, NULL);
        }
        ck_free(kv);
    }
    ck_free(d.cuts);
    ck_wbuf_free(&d.keys);
    return rc;
}

const ck_offset_entry_t *ck_offsets_get(ck_offsets_t *o, ck_slice_t group, ck_slice_t topic,
                                        int32_t partition)
{
    if (group.len <= 0 || topic.len < 0)
        return NULL;
    bool found;
    slot_t *s = find(o, group, topic, partition, key_hash(group, topic, partition), &found);
    return found ? &s->e : NULL;
}

void ck_offsets_foreach(ck_offsets_t *o, ck_slice_t group, ck_offsets_fn fn, void *arg)
{
    for (size_t i = 0; i < o->cap; i++) {
        slot_t *s = &o->slots[i];
        if (!s->mem || s->glen != group.len || memcmp(s->mem, group.ptr, (size_t)group.len) != 0)
            continue;
        fn(arg, ck_slice(s->mem + s->glen, (size_t)s->tlen), s->partition, &s->e);
    }
}

bool ck_offsets_group_has(ck_offsets_t *o, ck_slice_t group)
{
    for (size_t i = 0; i < o->cap; i++) {
        slot_t *s = &o->slots[i];
        if (s->mem && s->glen == group.len && memcmp(s->mem, group.ptr, (size_t)group.len) == 0)
            return true;
    }
    return false;
}

void ck_offsets_foreach_group(ck_offsets_t *o, ck_offsets_group_fn fn, void *arg)
{
    for (size_t i = 0; i < o->cap; i++)
        if (o->slots[i].mem)
            fn(arg, ck_slice(o->slots[i].mem, (size_t)o->slots[i].glen));
}

int ck_offsets_expire(ck_offsets_t *o, int64_t now_ms, int64_t retention_ms, ck_offsets_active_fn active,
                      void *arg, int64_t *last)
{
    *last = -1;
    /* collect first: deleting changes the table we walk */
    ck_wbuf_t keys = CK_WBUF_INIT;
    int n = 0;
    for (size_t i = 0; i < o->cap; i++) {
        slot_t *sl = &o->slots[i];
        if (!sl->mem || now_ms - sl->e.commit_ms < retention_ms)
            continue;
        ck_slice_t g = ck_slice(sl->mem, (size_t)sl->glen);
        if (active && active(arg, g))
            continue;
        encode_key(&keys, g, ck_slice(sl->mem + sl->glen, (size_t)sl->tlen), sl->partition);
        n++;
    }
    int rc = keys.err ? CK_ENOMEM : 0;
    ck_rbuf_t r;
    ck_rbuf_init(&r, keys.data, keys.len);
    int done = 0;
    while (!rc && done < n) {
        ck_rd_i16(&r);
        ck_slice_t g = rd_str(&r), t = rd_str(&r);
        int32_t p = ck_rd_i32(&r);
        int64_t l = -1;
        rc = ck_offsets_delete(o, g, t, p, now_ms, &l);
        if (l > *last)
            *last = l;
        done++;
    }
    ck_wbuf_free(&keys);
    if (!rc && n)
        CK_INFO("group", "expired %d committed offsets older than %lld ms", n, (long long)retention_ms);
    return rc ? rc : n;
}

#define COMPACT_BATCH 1000

int ck_offsets_compact_step(ck_offsets_t *o, int64_t min_bytes, int ratio, int64_t now_ms)
{
    if (o->compact_from >= 0) {
        /* phase 2: the copy is durable, so everything before it can go */
        if (ck_partition_durable_end(o->part) <= o->compact_last)
            return 0;
        int rc = ck_partition_delete_records(o->part, o->compact_from);
        CK_INFO("group", "offsets log cleaned: start moved to %lld (%s)", (long long)o->compact_from,
                rc ? ck_strerror(rc) : "ok");
        o->compact_from = o->compact_last = -1;
        return rc ? rc : 1;
    }
    int64_t size = ck_partition_size_bytes(o->part);
    if (size < min_bytes || size < (int64_t)ratio * (o->live_bytes > 0 ? o->live_bytes : 1))
        return 0;
    /* phase 1: append the live state again, in batches */
    ck_wbuf_t enc = CK_WBUF_INIT;
    ck_slice_t *kv = ck_malloc(sizeof(ck_slice_t) * 2 * COMPACT_BATCH);
    size_t *cuts = ck_malloc(sizeof(size_t) * (2 * COMPACT_BATCH + 1));
    int rc = kv && cuts ? 0 : CK_ENOMEM;
    int64_t first = ck_partition_log_end(o->part), last = -1;
    size_t i = 0;
    while (!rc && i < o->cap) {
        int n = 0;
        ck_wbuf_reset(&enc);
        for (; i < o->cap && n < COMPACT_BATCH; i++) {
            slot_t *sl = &o->slots[i];
            if (!sl->mem)
                continue;
            cuts[2 * n] = enc.len;
            encode_key(&enc, ck_slice(sl->mem, (size_t)sl->glen), ck_slice(sl->mem + sl->glen, (size_t)sl->tlen), sl->partition);
            cuts[2 * n + 1] = enc.len;
            encode_value(&enc, &sl->e);
            n++;
        }
        if (!n)
            break;
        if (enc.err) {
            rc = CK_ENOMEM;
            break;
        }
        cuts[2 * n] = enc.len;
        for (int k = 0; k < 2 * n; k++)
            kv[k] = ck_slice(enc.data + cuts[k], cuts[k + 1] - cuts[k]);
        rc = append_batch(o, kv, n, now_ms, &last);
    }
    ck_free(kv);
    ck_free(cuts);
    ck_wbuf_free(&enc);
    if (rc)
        return rc;
    o->compact_from = first;
    o->compact_last = last >= first ? last : first - 1;
    CK_INFO("group", "offsets log holds %lld bytes for %ld live offsets: copied them from offset %lld",
            (long long)size, (long)o->live, (long long)first);
    return 1;
}
