/* REST-created indexes (restidx.h): the files, the in-memory state, search snapshots.
 *
 * FILES
 *
 *   <dir>/                      the set (<data>/rest_indexes)
 *     <name>/meta.json          {"name","uuid","created_ms","mappings","settings"}
 *     <name>/ops.log            the operation log (below)
 *     _tmp.<name>/              an index being created (removed at open)
 *     _drop.<name>.<uuid>/      an index being dropped (removed at open)
 *
 * Index names cannot start with '_', so the two helper prefixes never clash with one.
 * meta.json is written once: create builds the whole folder under _tmp.<name> (meta.json
 * and an ops.log holding only its header, each fsynced), fsyncs it, renames it to <name>
 * and fsyncs <dir>. Drop renames <name> to _drop.<name>.<uuid>, fsyncs <dir>, then
 * removes the tree; a crash in between leaves a folder that the next open removes.
 *
 * OPS.LOG (integers little-endian)
 *
 *   header   8 bytes  "CKRIDX1\n"
 *   record   u32 len            bytes of the payload (25 + idlen + srclen)
 *            u32 crc            CRC-32C of the payload
 *            payload:
 *              u8  op           1 index, 2 delete, 3 seq mark (only advances the seq)
 *              u64 seq          the index's sequence number of the op (_seq_no)
 *              u64 version      the id's version after the op (_version)
 *              u32 idlen, id    the document id (0 bytes for a seq mark)
 *              u32 srclen, src  index: the _source as compact JSON text; else empty
 *
 * Every write appends one record under the index mutex and fdatasyncs it after releasing
 * the mutex, before it returns; concurrent writers share fsyncs (group commit: one
 * fdatasync covers every record written before it started), and reads never wait for an
 * fsync. A write is thus visible to GET/search slightly before it is durable (as in ES),
 * never acknowledged before. A record whose write fails is cut off again with ftruncate;
 * a failed fsync puts the index in a sticky error state (CK_ESTATE) until the set is
 * reopened, since what reached the disk is unknown.
 *
 * Recovery (open): records are replayed in order, last op per id wins; the first record
 * that is short (torn), fails its CRC or does not parse ends the log, and the file is
 * truncated there and fsynced. Seq numbers continue after the largest one seen.
 *
 * Compaction: when the log is over 1 MiB and holds more than twice as many records as
 * live documents, the live documents (in seq order, with their seq and version) and a seq
 * mark of the last seq are written to ops.log.tmp, fsynced, renamed over ops.log, and the
 * folder fsynced. Tombstones are dropped, so a deleted id indexed again later restarts at
 * version 1 (as ES forgets deletes after index.gc_deletes).
 *
 * MEMORY AND SEARCH
 *
 * A document version is a ri_rec_t (id, seq, version, source text). The id table maps an
 * id to its current rec (or a tombstone: a rec without source that carries the version of
 * the delete). Each indexed doc also goes through docfields into the segment builder
 * with offset = seq, partition 0; a live bitmap over seqs says which seqs are current.
 *
 *   write --> log append --> id table, seq table, live bit, builder --> log_sync (fsync)
 *   acquire --> refresh: builder -> segment; merge if > 8 segments;        (refresh_locked)
 *               new snapshot = segments (refcounted) + frozen bitmap copy
 *
 * A snapshot has a generation. A rec that stops being current at generation g (killgen)
 * may still be a hit of snapshots of generation <= g, so it stays in the seq table (for
 * ck_restidx_hit_source) until every live snapshot is newer than g. Snapshots are kept in
 * a list by generation; its head is the oldest. */
#include "search/restidx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/logging.h"
#include "search/docfields.h"
#include "search/restidx_int.h"

#define LOG_MAGIC "CKRIDX1\n"
#define LOG_HDR 8
#define REC_HDR 8
#define REC_FIXED 25
#define REC_MAX (CK_RESTIDX_DOC_MAX + CK_RESTIDX_ID_MAX + REC_FIXED)
#define OP_INDEX 1
#define OP_DELETE 2
#define OP_MARK 3
#define MAX_SEGS 8
#define COMPACT_MIN_BYTES (1u << 20)
#define PART "restidx"

/* ---- types ---- */

typedef struct ri_rec {
    atomic_uint refs;
    uint64_t seq, version;
    uint64_t killgen;         /* generation when it stopped being current */
    uint32_t hash;            /* of the id */
    struct ri_rec *id_next;   /* id table chain */
    struct ri_rec *seq_next;  /* seq table chain */
    struct ri_rec *dead_next; /* FIFO of retired recs, by killgen */
    char *src;                /* NUL-terminated JSON, NULL for a tombstone */
    size_t srclen, idlen;
    char id[]; /* NUL-terminated; src follows */
} ri_rec_t;

typedef struct ri_seg {
    atomic_uint refs;
    ck_segment_t *seg;
    uint8_t *img;
    size_t len;
} ri_seg_t;

typedef struct ri_index ri_index_t;

struct ck_restidx_snap {
    atomic_uint refs;
    ri_index_t *ix;
    uint64_t gen;
    struct ck_restidx_snap *prev, *next; /* the index's snapshot list */
    ri_seg_t **segs;
    ck_segment_t **rsegs;
    size_t nsegs;
    uint64_t *bits; /* frozen live bitmap, nwords words */
    size_t nwords;
};

struct ri_index {
    atomic_uint refs;
    pthread_mutex_t lock; /* everything below that is not immutable */
    /* immutable after load */
    char *name;
    char *dir;
    char uuid[CK_RESTIDX_UUID_LEN + 1];
    int64_t created_ms;
    json_t *mappings;
    ri_field_t *fields; /* sorted by path */
    size_t nfields;
    uint64_t meta_bytes;
    /* state */
    bool dropped;
    atomic_int err; /* sticky: CK_ESTATE after a failed fsync */
    /* Group commit: records are written under lock and made durable after it is
     * released; sync_lock serializes fdatasync and guards fd swaps (lock order: lock,
     * then sync_lock; never lock while holding sync_lock). */
    pthread_mutex_t sync_lock;
    atomic_uint_least64_t written_lsn; /* records written (monotonic, across compactions) */
    uint64_t durable_lsn;              /* records known durable; under sync_lock */
    bool sync_failed;                  /* an fdatasync failed; under sync_lock */
    int fd;                            /* changed under both locks */
    uint64_t log_size, log_records;
    uint64_t next_seq;
    ri_rec_t **idb;
    size_t idcap, idn;
    ri_rec_t **seqb;
    size_t seqcap, seqn;
    ri_rec_t *dead_head, *dead_tail;
    uint64_t live_docs; /* current recs with a source */
    uint64_t seg_docs;  /* docs in segments and in the builder */
    uint64_t *live;     /* bit per seq */
    size_t live_words;
    bool dirty; /* changed since the current snapshot */
    ck_docfields_t *df;
    ck_segbuild_t *sb;
    ri_seg_t **segs;
    size_t nsegs, segcap;
    uint64_t gen;
    ck_restidx_snap_t *cur;
    ck_restidx_snap_t *snap_head, *snap_tail;
};

struct ck_restidx_set {
    pthread_mutex_t lock;
    char *dir;
    ri_index_t **ix; /* sorted by name */
    size_t n, cap;
};

/* ---- small helpers ---- */

static int io_err(int rc, ck_search_error_t *err)
{
    if (rc == CK_ENOMEM)
        ck__restidx_err(err, 500, "out_of_memory_error", "out of memory");
    else
        ck__restidx_err(err, 500, "exception", "I/O error: %s", ck_strerror(rc));
    return rc;
}

static char *path_join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *p = ck_malloc(na + nb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
    return p;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    ck_put_le32(p, (uint32_t)v);
    ck_put_le32(p + 4, (uint32_t)(v >> 32));
}
static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)ck_get_le32(p) | (uint64_t)ck_get_le32(p + 4) << 32;
}

/* URL-safe base64 (no padding) of n random bytes into out (4n/3 rounded up chars + NUL). */
static void random_b64(char *out, size_t nbytes)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t b[32];
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(b + got, nbytes - got, 0);
        if (r <= 0) { /* fall back to a weaker source rather than fail a write */
            uint64_t x = (uint64_t)ck_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)out;
            for (; got < nbytes; got++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                b[got] = (uint8_t)x;
            }
            break;
        }
        got += (size_t)r;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < nbytes; i++) {
        acc = acc << 8 | b[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = al[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = al[(acc << (6 - bits)) & 63];
    out[o] = 0;
}

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = pwrite(fd, b, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return ck_from_errno(errno);
        }
        b += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* ---- records ---- */

static ri_rec_t *rec_new(const char *id, size_t idlen, const char *src, size_t srclen)
{
    ri_rec_t *r = ck_malloc(sizeof(*r) + idlen + 1 + (src ? srclen + 1 : 0));
    if (!r)
        return NULL;
    memset(r, 0, sizeof(*r));
    atomic_init(&r->refs, 1);
    memcpy(r->id, id, idlen);
    r->id[idlen] = 0;
    r->idlen = idlen;
    if (src) {
        r->src = r->id + idlen + 1;
        memcpy(r->src, src, srclen);
        r->src[srclen] = 0;
        r->srclen = srclen;
    }
    return r;
}

static void rec_unref(ri_rec_t *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        ck_free(r);
}

static uint32_t hash_id(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static size_t hash_seq(uint64_t seq, size_t cap)
{
    return (size_t)((seq * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

/* Tables: chained, power-of-two sizes, doubled when full. A failed grow keeps the old
 * table (longer chains, still correct). */
static void id_grow(ri_index_t *ix)
{
    size_t ncap = ix->idcap ? ix->idcap * 2 : 64;
    ri_rec_t **nb = ck_calloc(ncap, sizeof(*nb));
    if (!nb)
        return;
    for (size_t i = 0; i < ix->idcap; i++) {
        for (ri_rec_t *r = ix->idb[i], *next; r; r = next) {
            next = r->id_next;
            r->id_next = nb[r->hash & (ncap - 1)];
            nb[r->hash & (ncap - 1)] = r;
        }
    }
    ck_free(ix->idb);
    ix->idb = nb;
    ix->idcap = ncap;
}

static ri_rec_t *id_find(ri_index_t *ix, const char *id, size_t n)
{
    if (!ix->idcap)
        return NULL;
    uint32_t h = hash_id(id, n);
    for (ri_rec_t *r = ix->idb[h & (ix->idcap - 1)]; r; r = r->id_next)
        if (r->hash == h && r->idlen == n && memcmp(r->id, id, n) == 0)
            return r;
    return NULL;
}

static int id_insert(ri_index_t *ix, ri_rec_t *r)
{
    if (ix->idn >= ix->idcap)
        id_grow(ix);
    if (!ix->idcap)
        return CK_ENOMEM;
    r->hash = hash_id(r->id, r->idlen);
    ri_rec_t **b = &ix->idb[r->hash & (ix->idcap - 1)];
    r->id_next = *b;
    *b = r;
    ix->idn++;
    return 0;
}

static void id_remove(ri_index_t *ix, ri_rec_t *r)
{
    if (!ix->idcap)
        return;
    for (ri_rec_t **p = &ix->idb[r->hash & (ix->idcap - 1)]; *p; p = &(*p)->id_next) {
        if (*p == r) {
            *p = r->id_next;
            ix->idn--;
            return;
        }
    }
}

static void seq_grow(ri_index_t *ix)
{
    size_t ncap = ix->seqcap ? ix->seqcap * 2 : 64;
    ri_rec_t **nb = ck_calloc(ncap, sizeof(*nb));
    if (!nb)
        return;
    for (size_t i = 0; i < ix->seqcap; i++) {
        for (ri_rec_t *r = ix->seqb[i], *next; r; r = next) {
            next = r->seq_next;
            size_t h = hash_seq(r->seq, ncap);
            r->seq_next = nb[h];
            nb[h] = r;
        }
    }
    ck_free(ix->seqb);
    ix->seqb = nb;
    ix->seqcap = ncap;
}

static ri_rec_t *seq_find(ri_index_t *ix, uint64_t seq)
{
    if (!ix->seqcap)
        return NULL;
    for (ri_rec_t *r = ix->seqb[hash_seq(seq, ix->seqcap)]; r; r = r->seq_next)
        if (r->seq == seq)
            return r;
    return NULL;
}

static int seq_insert(ri_index_t *ix, ri_rec_t *r)
{
    if (ix->seqn >= ix->seqcap)
        seq_grow(ix);
    if (!ix->seqcap)
        return CK_ENOMEM;
    ri_rec_t **b = &ix->seqb[hash_seq(r->seq, ix->seqcap)];
    r->seq_next = *b;
    *b = r;
    ix->seqn++;
    return 0;
}

static void seq_remove(ri_index_t *ix, ri_rec_t *r)
{
    if (!ix->seqcap)
        return;
    for (ri_rec_t **p = &ix->seqb[hash_seq(r->seq, ix->seqcap)]; *p; p = &(*p)->seq_next) {
        if (*p == r) {
            *p = r->seq_next;
            ix->seqn--;
            return;
        }
    }
}

/* ---- live bitmap ---- */

static int live_set(ri_index_t *ix, uint64_t seq, bool on)
{
    size_t w = (size_t)(seq / 64);
    if (w >= ix->live_words) {
        if (!on)
            return 0;
        size_t nw = ix->live_words ? ix->live_words * 2 : 16;
        while (nw <= w)
            nw *= 2;
        uint64_t *nb = ck_realloc(ix->live, nw * sizeof(uint64_t));
        if (!nb)
            return CK_ENOMEM;
        memset(nb + ix->live_words, 0, (nw - ix->live_words) * sizeof(uint64_t));
        ix->live = nb;
        ix->live_words = nw;
    }
    if (on)
        ix->live[w] |= 1ull << (seq % 64);
    else
        ix->live[w] &= ~(1ull << (seq % 64));
    return 0;
}

static bool bits_test(const uint64_t *bits, size_t nwords, uint64_t seq)
{
    size_t w = (size_t)(seq / 64);
    return w < nwords && (bits[w] >> (seq % 64) & 1);
}

/* ---- segments ---- */

static void seg_unref(ri_seg_t *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        ck_segment_free(s->seg);
        ck_free(s->img);
        ck_free(s);
    }
}

/* Opens the image in w (taking its bytes) as a refcounted segment. */
static int seg_from_wbuf(ck_wbuf_t *w, ri_seg_t **out)
{
    ri_seg_t *s = ck_calloc(1, sizeof(*s));
    if (!s)
        return CK_ENOMEM;
    s->img = ck_wbuf_steal(w, &s->len);
    int rc = ck_segment_open(s->img, s->len, false, &s->seg);
    if (rc) {
        ck_free(s->img);
        ck_free(s);
        return rc;
    }
    atomic_init(&s->refs, 1);
    *out = s;
    return 0;
}

static ck_map_type_t map_lookup(void *ctx, const char *path, size_t len)
{
    const ri_index_t *ix = ctx;
    return ck__restidx_map_find(ix->fields, ix->nfields, path, len);
}

/* ---- snapshots ---- */

/* Frees recs retired before every live snapshot. ix locked. */
static void purge_dead(ri_index_t *ix)
{
    while (ix->dead_head && (!ix->snap_head || ix->dead_head->killgen < ix->snap_head->gen)) {
        ri_rec_t *r = ix->dead_head;
        ix->dead_head = r->dead_next;
        if (!ix->dead_head)
            ix->dead_tail = NULL;
        seq_remove(ix, r);
        rec_unref(r);
    }
}

static void ix_unref(ri_index_t *ix);

/* Drops a snapshot reference. With locked, the caller holds ix->lock (and a reference to
 * ix, so it cannot be freed here). */
static void snap_unref(ck_restidx_snap_t *s, bool locked)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    ri_index_t *ix = s->ix;
    if (!locked)
        pthread_mutex_lock(&ix->lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        ix->snap_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        ix->snap_tail = s->prev;
    purge_dead(ix);
    if (!locked)
        pthread_mutex_unlock(&ix->lock);
    for (size_t i = 0; i < s->nsegs; i++)
        seg_unref(s->segs[i]);
    ck_free(s->segs);
    ck_free(s->rsegs);
    ck_free(s->bits);
    ck_free(s);
    ix_unref(ix);
}

/* Makes a new current snapshot from the index's segments and bitmap. ix locked. */
static int snap_publish(ri_index_t *ix)
{
    ck_restidx_snap_t *s = ck_calloc(1, sizeof(*s));
    if (!s)
        return CK_ENOMEM;
    s->segs = ck_malloc((ix->nsegs + 1) * sizeof(*s->segs));
    s->rsegs = ck_malloc((ix->nsegs + 1) * sizeof(*s->rsegs));
    s->bits = ck_malloc((ix->live_words + 1) * sizeof(uint64_t));
    if (!s->segs || !s->rsegs || !s->bits) {
        ck_free(s->segs);
        ck_free(s->rsegs);
        ck_free(s->bits);
        ck_free(s);
        return CK_ENOMEM;
    }
    if (ix->live_words)
        memcpy(s->bits, ix->live, ix->live_words * sizeof(uint64_t));
    s->nwords = ix->live_words;
    for (size_t i = 0; i < ix->nsegs; i++) {
        atomic_fetch_add(&ix->segs[i]->refs, 1);
        s->segs[i] = ix->segs[i];
        s->rsegs[i] = ix->segs[i]->seg;
    }
    s->nsegs = ix->nsegs;
    atomic_init(&s->refs, 1); /* the index's reference (ix->cur) */
    atomic_fetch_add(&ix->refs, 1);
    s->ix = ix;
    s->gen = ++ix->gen;
    s->prev = ix->snap_tail;
    if (ix->snap_tail)
        ix->snap_tail->next = s;
    else
        ix->snap_head = s;
    ix->snap_tail = s;
    ck_restidx_snap_t *old = ix->cur;
    ix->cur = s;
    ix->dirty = false;
    snap_unref(old, true);
    return 0;
}

/* ---- refresh and merge ---- */

typedef struct keep_ctx {
    const ri_index_t *ix;
    ck_segment_t *const *in; /* the merge inputs */
} keep_ctx_t;

static bool keep_live(void *ctx, size_t seg, uint32_t doc)
{
    const keep_ctx_t *k = ctx;
    int32_t p;
    int64_t off, ts;
    ck_segment_doc(k->in[seg], doc, &p, &off, &ts);
    return off >= 0 && bits_test(k->ix->live, k->ix->live_words, (uint64_t)off);
}

/* Merges ix->segs[first..nsegs) into one segment (dropping dead docs). ix locked. */
static int merge_tail(ri_index_t *ix, size_t first)
{
    size_t k = ix->nsegs - first;
    ck_segment_t **in = ck_malloc(k * sizeof(*in));
    if (!in)
        return CK_ENOMEM;
    uint64_t before = 0;
    for (size_t i = 0; i < k; i++) {
        in[i] = ix->segs[first + i]->seg;
        before += ck_segment_ndocs(in[i]);
    }
    keep_ctx_t kc = {ix, in};
    ck_wbuf_t w = CK_WBUF_INIT;
    int rc = ck_segment_merge(in, k, keep_live, &kc, &w);
    ck_free(in);
    ri_seg_t *ns = NULL;
    if (!rc)
        rc = seg_from_wbuf(&w, &ns);
    ck_wbuf_free(&w);
    if (rc)
        return rc;
    for (size_t i = first; i < ix->nsegs; i++)
        seg_unref(ix->segs[i]);
    ix->nsegs = first;
    uint32_t after = ck_segment_ndocs(ns->seg);
    if (after)
        ix->segs[ix->nsegs++] = ns;
    else
        seg_unref(ns);
    ix->seg_docs -= before - after;
    return 0;
}

/* Turns the builder's docs into a segment, merges when segments pile up, publishes a new
 * snapshot. ix locked. */
static int refresh_locked(ri_index_t *ix)
{
    int rc = 0;
    if (ck_segbuild_ndocs(ix->sb) > 0) {
        if (ix->nsegs == ix->segcap) {
            size_t nc = ix->segcap ? ix->segcap * 2 : 16;
            ri_seg_t **ns = ck_realloc(ix->segs, nc * sizeof(*ns));
            if (!ns)
                return CK_ENOMEM;
            ix->segs = ns;
            ix->segcap = nc;
        }
        uint32_t nd = ck_segbuild_ndocs(ix->sb);
        ck_wbuf_t w = CK_WBUF_INIT;
        rc = ck_segbuild_finish(ix->sb, &w);
        ri_seg_t *s = NULL;
        if (!rc)
            rc = seg_from_wbuf(&w, &s);
        ck_wbuf_free(&w);
        if (rc) {
            /* the builder was reset: those docs are lost to search until a reopen */
            CK_ERROR(PART, "index [%s]: refresh failed (%s); %u docs not searchable until restart",
                     ix->name, ck_strerror(rc), nd);
            ix->seg_docs -= nd;
            return rc;
        }
        ix->segs[ix->nsegs++] = s;
    }
    if (ix->nsegs > MAX_SEGS ||
        (ix->nsegs > 1 && ix->seg_docs > 1000 && ix->seg_docs - ix->live_docs > ix->live_docs)) {
        /* Keep sizes roughly geometric: merge the newest segments, extending to older ones
         * while they are not much larger than what is merged; merge everything when most
         * held docs are dead. */
        size_t first = ix->nsegs - 2;
        uint64_t sum =
            ck_segment_ndocs(ix->segs[first]->seg) + ck_segment_ndocs(ix->segs[first + 1]->seg);
        if (ix->seg_docs - ix->live_docs > ix->live_docs) {
            first = 0;
        } else {
            while (first > 0 && ck_segment_ndocs(ix->segs[first - 1]->seg) <= 2 * sum) {
                first--;
                sum += ck_segment_ndocs(ix->segs[first]->seg);
            }
        }
        int mrc = merge_tail(ix, first);
        if (mrc)
            CK_WARN(PART, "index [%s]: merge failed: %s", ix->name, ck_strerror(mrc));
    }
    return snap_publish(ix);
}

/* ---- the log ---- */

static void rec_encode(uint8_t *p, int op, uint64_t seq, uint64_t version, const char *id,
                       size_t idlen, const char *src, size_t srclen)
{
    uint32_t plen = (uint32_t)(REC_FIXED + idlen + srclen);
    uint8_t *q = p + REC_HDR;
    q[0] = (uint8_t)op;
    put_le64(q + 1, seq);
    put_le64(q + 9, version);
    ck_put_le32(q + 17, (uint32_t)idlen);
    if (idlen)
        memcpy(q + 21, id, idlen);
    ck_put_le32(q + 21 + idlen, (uint32_t)srclen);
    if (srclen)
        memcpy(q + 25 + idlen, src, srclen);
    ck_put_le32(p, plen);
    ck_put_le32(p + 4, ck_crc32c(0, q, plen));
}

/* Appends one record (not yet durable: see log_sync) and returns its lsn. ix locked. */
static int log_append(ri_index_t *ix, int op, uint64_t seq, uint64_t version, const char *id,
                      size_t idlen, const char *src, size_t srclen, uint64_t *lsn)
{
    size_t n = REC_HDR + REC_FIXED + idlen + srclen;
    uint8_t *buf = ck_malloc(n);
    if (!buf)
        return CK_ENOMEM;
    rec_encode(buf, op, seq, version, id, idlen, src, srclen);
    int rc = write_all(ix->fd, buf, n, ix->log_size);
    ck_free(buf);
    if (rc) {
        /* cut the partial record off so the next append starts clean */
        if (ftruncate(ix->fd, (off_t)ix->log_size) < 0) {
            CK_ERROR(PART, "index [%s]: ops.log write failed and could not be cut back", ix->name);
            atomic_store(&ix->err, CK_ESTATE);
        }
        return rc;
    }
    ix->log_size += n;
    ix->log_records++;
    *lsn = atomic_fetch_add(&ix->written_lsn, 1) + 1;
    return 0;
}

/* Makes every record up to lsn durable: one fdatasync covers all records written before
 * it started (writers waiting meanwhile find their record already durable). Called
 * without ix->lock. A failed fsync makes the index refuse writes (CK_ESTATE). */
static int log_sync(ri_index_t *ix, uint64_t lsn)
{
    int rc = 0;
    pthread_mutex_lock(&ix->sync_lock);
    if (ix->durable_lsn < lsn) {
        uint64_t target = atomic_load(&ix->written_lsn);
        if (ix->sync_failed) {
            rc = CK_ESTATE; /* a later fsync cannot vouch for pages the failed one lost */
        } else if (fdatasync(ix->fd) < 0) {
            CK_ERROR(PART, "index [%s]: ops.log fsync failed (%s); writes refused until restart",
                     ix->name, strerror(errno));
            rc = ck_from_errno(errno);
            ix->sync_failed = true;
            atomic_store(&ix->err, CK_ESTATE);
        } else {
            ix->durable_lsn = target;
        }
    }
    pthread_mutex_unlock(&ix->sync_lock);
    return rc;
}

/* Replaces the log's fd (compaction, close): the records written so far are durable
 * through the caller (a synced new file) or through the fsync here. ix locked. */
static void log_swap_fd(ri_index_t *ix, int fd, bool sync_old)
{
    pthread_mutex_lock(&ix->sync_lock);
    if (ix->fd >= 0) {
        if (sync_old && ix->durable_lsn < atomic_load(&ix->written_lsn) && fdatasync(ix->fd) < 0)
            CK_ERROR(PART, "index [%s]: ops.log fsync at close failed: %s", ix->name,
                     strerror(errno));
        close(ix->fd);
    }
    ix->fd = fd;
    ix->durable_lsn = atomic_load(&ix->written_lsn);
    pthread_mutex_unlock(&ix->sync_lock);
}

static int live_qcmp(const void *x, const void *y)
{
    const ri_rec_t *a = *(ri_rec_t *const *)x, *b = *(ri_rec_t *const *)y;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* The current recs with a source, sorted by seq (caller frees the array). ix locked. */
static int collect_live(ri_index_t *ix, ri_rec_t ***out, size_t *n)
{
    ri_rec_t **v = ck_malloc((ix->live_docs + 1) * sizeof(*v));
    if (!v)
        return CK_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < ix->idcap; i++)
        for (ri_rec_t *r = ix->idb[i]; r; r = r->id_next)
            if (r->src)
                v[k++] = r;
    qsort(v, k, sizeof(*v), live_qcmp);
    *out = v;
    *n = k;
    return 0;
}

/* Rewrites ops.log with only the live docs. ix locked. */
static int log_compact(ri_index_t *ix)
{
    ri_rec_t **v;
    size_t n;
    int rc = collect_live(ix, &v, &n);
    if (rc)
        return rc;
    char *tmp = path_join(ix->dir, "ops.log.tmp");
    char *dst = path_join(ix->dir, "ops.log");
    ck_wbuf_t w = CK_WBUF_INIT;
    int fd = -1;
    if (!tmp || !dst) {
        rc = CK_ENOMEM;
        goto out;
    }
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = ck_from_errno(errno);
        goto out;
    }
    uint64_t off = 0;
    rc = write_all(fd, LOG_MAGIC, LOG_HDR, 0);
    off = LOG_HDR;
    uint64_t recs = 0;
    for (size_t i = 0; i <= n && !rc; i++) {
        ri_rec_t *r = i < n ? v[i] : NULL;
        if (!r && ix->next_seq == 0)
            break;
        size_t len = REC_HDR + REC_FIXED + (r ? r->idlen + r->srclen : 0);
        w.len = 0;
        uint8_t *p = ck_wbuf_reserve(&w, len);
        if (!p) {
            rc = CK_ENOMEM;
            break;
        }
        if (r)
            rec_encode(p, OP_INDEX, r->seq, r->version, r->id, r->idlen, r->src, r->srclen);
        else
            rec_encode(p, OP_MARK, ix->next_seq - 1, 0, NULL, 0, NULL, 0);
        rc = write_all(fd, p, len, off);
        off += len;
        recs++;
    }
    if (!rc && fsync(fd) < 0)
        rc = ck_from_errno(errno);
    if (!rc && rename(tmp, dst) < 0)
        rc = ck_from_errno(errno);
    if (rc) {
        close(fd);
        fd = -1;
        unlink(tmp);
        goto out;
    }
    /* the new file is in place: switch to it whatever the folder fsync says */
    log_swap_fd(ix, fd, false);
    fd = -1;
    ix->log_size = off;
    ix->log_records = recs;
    if (ck_fsync_path(ix->dir, true))
        CK_WARN(PART, "index [%s]: fsync of the folder after compaction failed", ix->name);
    /* tombstones are gone from the log: forget them here too */
    for (size_t i = 0; i < ix->idcap; i++) {
        for (ri_rec_t **p = &ix->idb[i]; *p;) {
            ri_rec_t *r = *p;
            if (!r->src) {
                *p = r->id_next;
                ix->idn--;
                rec_unref(r);
            } else {
                p = &r->id_next;
            }
        }
    }
out:
    if (fd >= 0)
        close(fd);
    ck_wbuf_free(&w);
    ck_free(tmp);
    ck_free(dst);
    ck_free(v);
    return rc;
}

static void maybe_compact(ri_index_t *ix)
{
    if (ix->log_size <= COMPACT_MIN_BYTES || ix->log_records <= 2 * ix->live_docs + 1)
        return;
    int rc = log_compact(ix);
    if (rc)
        CK_WARN(PART, "index [%s]: ops.log compaction failed: %s", ix->name, ck_strerror(rc));
}

/* ---- applying ops in memory ---- */

/* Retires the id's current rec (old may be NULL). ix locked. */
static void retire(ri_index_t *ix, ri_rec_t *old)
{
    if (!old)
        return;
    id_remove(ix, old);
    if (!old->src) {
        rec_unref(old);
        return;
    }
    live_set(ix, old->seq, false);
    ix->live_docs--;
    old->killgen = ix->gen;
    old->dead_next = NULL;
    if (ix->dead_tail)
        ix->dead_tail->dead_next = old;
    else
        ix->dead_head = old;
    ix->dead_tail = old;
    purge_dead(ix);
}

/* Makes r (with a source) current and feeds it to the builder. ix locked. */
static int make_current(ri_index_t *ix, ri_rec_t *r)
{
    int rc = id_insert(ix, r);
    if (rc) {
        rec_unref(r);
        return rc;
    }
    rc = seq_insert(ix, r);
    if (!rc)
        rc = live_set(ix, r->seq, true);
    if (rc)
        return rc;
    ix->live_docs++;
    ix->seg_docs++;
    ix->dirty = true;
    return ck_docfields_add(ix->df, ix->sb, 0, (int64_t)r->seq, ck_wall_ms(), CK_SLICE_NULL,
                            ck_slice(r->src, r->srclen));
}

/* ---- index objects ---- */

static void ix_free(ri_index_t *ix)
{
    for (size_t i = 0; i < ix->idcap; i++)
        for (ri_rec_t *r = ix->idb[i], *next; r; r = next) {
            next = r->id_next;
            rec_unref(r);
        }
    for (ri_rec_t *r = ix->dead_head, *next; r; r = next) {
        next = r->dead_next;
        rec_unref(r);
    }
    ck_free(ix->idb);
    ck_free(ix->seqb);
    ck_free(ix->live);
    for (size_t i = 0; i < ix->nsegs; i++)
        seg_unref(ix->segs[i]);
    ck_free(ix->segs);
    ck_segbuild_free(ix->sb);
    ck_docfields_free(ix->df);
    if (ix->fd >= 0)
        close(ix->fd);
    pthread_mutex_destroy(&ix->sync_lock);
    ck__restidx_fields_free(ix->fields, ix->nfields);
    json_decref(ix->mappings);
    pthread_mutex_destroy(&ix->lock);
    ck_free(ix->name);
    ck_free(ix->dir);
    ck_free(ix);
}

static void ix_unref(ri_index_t *ix)
{
    if (ix && atomic_fetch_sub(&ix->refs, 1) == 1)
        ix_free(ix);
}

/* Drops the index's current snapshot (the cycle ix -> cur -> ix) so the index can be freed
 * once other holders let go. */
static void ix_retire(ri_index_t *ix)
{
    pthread_mutex_lock(&ix->lock);
    ix->dropped = true;
    ck_restidx_snap_t *cur = ix->cur;
    ix->cur = NULL;
    snap_unref(cur, true);
    log_swap_fd(ix, -1, true);
    pthread_mutex_unlock(&ix->lock);
    ix_unref(ix);
}

static const ck_analyzer_config_t DEFAULT_ANALYZER = {CK_ANALYZER_STANDARD, "english", 1};

/* A new, empty index object for the folder dir with metadata meta (validated). */
static int ix_new(const char *name, const char *dir, const json_t *meta, ri_index_t **out,
                  ck_search_error_t *err)
{
    ri_index_t *ix = ck_calloc(1, sizeof(*ix));
    if (!ix)
        return CK_ENOMEM;
    atomic_init(&ix->refs, 1);
    pthread_mutex_init(&ix->lock, NULL);
    pthread_mutex_init(&ix->sync_lock, NULL);
    atomic_init(&ix->err, 0);
    atomic_init(&ix->written_lsn, 0);
    ix->fd = -1;
    ix->name = ck_strdup(name);
    ix->dir = ck_strdup(dir);
    const char *uuid = json_string_value(json_object_get(meta, "uuid"));
    snprintf(ix->uuid, sizeof(ix->uuid), "%s", uuid ? uuid : "");
    ix->created_ms = json_integer_value(json_object_get(meta, "created_ms"));
    json_t *m = json_object_get(meta, "mappings");
    ix->mappings = m ? json_deep_copy(m) : json_object();
    int rc = (!ix->name || !ix->dir || !ix->mappings) ? CK_ENOMEM : 0;
    if (!rc)
        rc = ck__restidx_map_build(m, &ix->fields, &ix->nfields, err);
    if (!rc)
        rc = ck_docfields_new(&DEFAULT_ANALYZER, &ix->df);
    if (!rc)
        rc = ck_segbuild_new(&ix->sb);
    if (rc) {
        ix_free(ix);
        return rc;
    }
    ck_docfields_set_mapping(ix->df, ix->nfields ? map_lookup : NULL, ix);
    *out = ix;
    return 0;
}

/* Replays ops.log into ix (fresh, not shared yet) and publishes the first snapshot. */
static int ix_load_log(ri_index_t *ix)
{
    char *path = path_join(ix->dir, "ops.log");
    if (!path)
        return CK_ENOMEM;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ck_free(path);
    if (fd < 0)
        return ck_from_errno(errno);
    ix->fd = fd;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ck_from_errno(errno);
    size_t size = (size_t)st.st_size;
    uint8_t *buf = ck_malloc(size + 1);
    if (!buf)
        return CK_ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            ck_free(buf);
            return CK_EIO;
        }
        got += (size_t)r;
    }
    int rc = 0;
    if (size < LOG_HDR || memcmp(buf, LOG_MAGIC, LOG_HDR) != 0) {
        if (memcmp(buf, LOG_MAGIC, size < LOG_HDR ? size : LOG_HDR) != 0) {
            CK_ERROR(PART, "index [%s]: ops.log has a bad header", ix->name);
            ck_free(buf);
            return CK_ECORRUPT;
        }
        /* torn while being created: start it again */
        rc = write_all(fd, LOG_MAGIC, LOG_HDR, 0);
        if (!rc && fsync(fd) < 0)
            rc = ck_from_errno(errno);
        ck_free(buf);
        ix->log_size = LOG_HDR;
        return rc ? rc : snap_publish(ix);
    }
    size_t pos = LOG_HDR;
    uint64_t nrec = 0;
    const char *why = NULL;
    while (pos < size) {
        if (size - pos < REC_HDR) {
            why = "torn record header";
            break;
        }
        uint32_t len = ck_get_le32(buf + pos), crc = ck_get_le32(buf + pos + 4);
        if (len < REC_FIXED || len > REC_MAX) {
            why = "bad record length";
            break;
        }
        if (size - pos - REC_HDR < len) {
            why = "torn record";
            break;
        }
        const uint8_t *q = buf + pos + REC_HDR;
        if (ck_crc32c(0, q, len) != crc) {
            why = "checksum mismatch";
            break;
        }
        int op = q[0];
        uint64_t seq = get_le64(q + 1), version = get_le64(q + 9);
        uint32_t idlen = ck_get_le32(q + 17);
        if (idlen > len - REC_FIXED || ck_get_le32(q + 21 + idlen) != len - REC_FIXED - idlen ||
            (op != OP_INDEX && op != OP_DELETE && op != OP_MARK) || (op != OP_MARK && !idlen) ||
            idlen > CK_RESTIDX_ID_MAX) {
            why = "malformed record";
            break;
        }
        const char *id = (const char *)q + 21;
        const char *src = (const char *)q + 25 + idlen;
        size_t srclen = len - REC_FIXED - idlen;
        if (op != OP_MARK) {
            ri_rec_t *r = rec_new(id, idlen, op == OP_INDEX ? src : NULL, srclen);
            if (!r) {
                rc = CK_ENOMEM;
                break;
            }
            r->seq = seq;
            r->version = version;
            ri_rec_t *old = id_find(ix, id, idlen);
            if (old) {
                id_remove(ix, old);
                rec_unref(old);
            }
            if (id_insert(ix, r)) {
                rec_unref(r);
                rc = CK_ENOMEM;
                break;
            }
        }
        if (seq + 1 > ix->next_seq)
            ix->next_seq = seq + 1;
        nrec++;
        pos += REC_HDR + len;
    }
    ck_free(buf);
    if (rc)
        return rc;
    if (why) {
        CK_WARN(PART, "index [%s]: ops.log %s at byte %zu; dropping the %zu bytes after it",
                ix->name, why, pos, size - pos);
        if (ftruncate(fd, (off_t)pos) < 0 || fsync(fd) < 0)
            return ck_from_errno(errno);
    }
    ix->log_size = pos;
    ix->log_records = nrec;
    /* index the live docs in seq order (as they were written) */
    ri_rec_t **v = ck_malloc((ix->idn + 1) * sizeof(*v));
    if (!v)
        return CK_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < ix->idcap; i++)
        for (ri_rec_t *r = ix->idb[i]; r; r = r->id_next)
            if (r->src)
                v[k++] = r;
    qsort(v, k, sizeof(*v), live_qcmp);
    for (size_t i = 0; i < k && !rc; i++) {
        rc = seq_insert(ix, v[i]);
        if (!rc)
            rc = live_set(ix, v[i]->seq, true);
        if (!rc)
            rc = ck_docfields_add(ix->df, ix->sb, 0, (int64_t)v[i]->seq, ck_wall_ms(),
                                  CK_SLICE_NULL, ck_slice(v[i]->src, v[i]->srclen));
        ix->live_docs++;
        ix->seg_docs++;
    }
    ck_free(v);
    if (!rc)
        rc = refresh_locked(ix);
    return rc;
}

/* Loads the index in folder dir/<name>. */
static int ix_load(const char *setdir, const char *name, ri_index_t **out)
{
    char *dir = path_join(setdir, name);
    char *mp = dir ? path_join(dir, "meta.json") : NULL;
    if (!mp) {
        ck_free(dir);
        return CK_ENOMEM;
    }
    json_error_t jerr;
    json_t *meta = json_load_file(mp, 0, &jerr);
    struct stat st;
    uint64_t meta_bytes = stat(mp, &st) == 0 ? (uint64_t)st.st_size : 0;
    ck_free(mp);
    int rc;
    ri_index_t *ix = NULL;
    const char *mname = json_string_value(json_object_get(meta, "name"));
    if (!json_is_object(meta) || !mname || strcmp(mname, name) != 0) {
        CK_WARN(PART, "skipping folder [%s]: no valid meta.json (%s)", name,
                meta ? "name mismatch" : jerr.text);
        rc = CK_ECORRUPT;
    } else {
        ck_search_error_t e;
        rc = ix_new(name, dir, meta, &ix, &e);
        if (rc == CK_EINVAL)
            CK_WARN(PART, "skipping index [%s]: bad mapping: %s", name, e.reason);
    }
    json_decref(meta);
    ck_free(dir);
    if (rc)
        return rc;
    ix->meta_bytes = meta_bytes;
    rc = ix_load_log(ix);
    if (rc) {
        CK_ERROR(PART, "index [%s]: cannot load ops.log: %s", name, ck_strerror(rc));
        ix_retire(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

/* ---- the set ---- */

/* Position of name in the sorted registry (found or where it goes). set locked. */
static size_t set_pos(ck_restidx_set_t *set, const char *name, bool *found)
{
    size_t lo = 0, hi = set->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(set->ix[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static int set_insert(ck_restidx_set_t *set, ri_index_t *ix)
{
    bool found;
    size_t at = set_pos(set, ix->name, &found);
    if (found)
        return CK_EEXIST;
    if (set->n == set->cap) {
        size_t nc = set->cap ? set->cap * 2 : 8;
        ri_index_t **n = ck_realloc(set->ix, nc * sizeof(*n));
        if (!n)
            return CK_ENOMEM;
        set->ix = n;
        set->cap = nc;
    }
    memmove(set->ix + at + 1, set->ix + at, (set->n - at) * sizeof(*set->ix));
    set->ix[at] = ix;
    set->n++;
    return 0;
}

/* A new reference to the named index, or NULL. */
static ri_index_t *set_get(ck_restidx_set_t *set, const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&set->lock);
    bool found;
    size_t at = set_pos(set, name, &found);
    ri_index_t *ix = found ? set->ix[at] : NULL;
    if (ix)
        atomic_fetch_add(&ix->refs, 1);
    pthread_mutex_unlock(&set->lock);
    return ix;
}

int ck_restidx_open(const char *dir, ck_restidx_set_t **out)
{
    int rc = ck_mkdirs(dir);
    if (rc)
        return rc;
    DIR *d = opendir(dir);
    if (!d)
        return ck_from_errno(errno);
    ck_restidx_set_t *set = ck_calloc(1, sizeof(*set));
    if (!set || !(set->dir = ck_strdup(dir))) {
        ck_free(set);
        closedir(d);
        return CK_ENOMEM;
    }
    pthread_mutex_init(&set->lock, NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (e->d_name[0] == '_') {
            /* an interrupted create or drop */
            char *p = path_join(dir, e->d_name);
            if (p && ck_rmtree(p))
                CK_WARN(PART, "cannot remove leftover [%s]", p);
            ck_free(p);
            continue;
        }
        if (ck_restidx_check_name(e->d_name, NULL))
            continue;
        ri_index_t *ix;
        int lrc = ix_load(dir, e->d_name, &ix);
        if (lrc == CK_ENOMEM || lrc == CK_EIO) {
            rc = lrc;
            break;
        }
        if (lrc)
            continue;
        if ((rc = set_insert(set, ix)) != 0) {
            ix_retire(ix);
            break;
        }
        CK_INFO(PART, "index [%s] loaded: %llu docs", ix->name, (unsigned long long)ix->live_docs);
    }
    closedir(d);
    if (rc) {
        ck_restidx_close(set);
        return rc;
    }
    *out = set;
    return 0;
}

void ck_restidx_close(ck_restidx_set_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        ix_retire(set->ix[i]);
    ck_free(set->ix);
    pthread_mutex_destroy(&set->lock);
    ck_free(set->dir);
    ck_free(set);
}

bool ck_restidx_exists(ck_restidx_set_t *set, const char *name)
{
    ri_index_t *ix = set_get(set, name);
    ix_unref(ix);
    return ix != NULL;
}

int ck_restidx_create(ck_restidx_set_t *set, const char *name, const json_t *body,
                      ck_search_error_t *err)
{
    int rc = ck_restidx_check_name(name, err);
    if (rc)
        return rc;
    if (body && !json_is_object(body)) {
        ck__restidx_err(err, 400, "parse_exception", "request body is required to be an object");
        return CK_EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        if (strcmp(key, "mappings") && strcmp(key, "settings") && strcmp(key, "aliases")) {
            ck__restidx_err(err, 400, "parse_exception", "unknown key [%s] for create index", key);
            return CK_EINVAL;
        }
    }
    const json_t *mappings = json_object_get(body, "mappings");
    ri_field_t *f;
    size_t nf;
    rc = ck__restidx_map_build(mappings, &f, &nf, err);
    if (rc)
        return rc;
    ck__restidx_fields_free(f, nf);

    char uuid[CK_RESTIDX_UUID_LEN + 2];
    random_b64(uuid, 16);
    json_t *meta = json_pack("{s:s,s:s,s:I}", "name", name, "uuid", uuid, "created_ms",
                             (json_int_t)ck_wall_ms());
    if (!meta)
        return io_err(CK_ENOMEM, err);
    json_object_set_new(meta, "mappings", mappings ? json_deep_copy(mappings) : json_object());
    const json_t *settings = json_object_get(body, "settings");
    if (settings)
        json_object_set_new(meta, "settings", json_deep_copy(settings));
    char *text = json_dumps(meta, JSON_INDENT(2));

    char tmpname[CK_RESTIDX_NAME_MAX + 8];
    snprintf(tmpname, sizeof(tmpname), "_tmp.%s", name);
    char *tmp = path_join(set->dir, tmpname);
    char *dst = path_join(set->dir, name);
    char *mp = tmp ? path_join(tmp, "meta.json") : NULL;
    char *lp = tmp ? path_join(tmp, "ops.log") : NULL;
    ri_index_t *ix = NULL;
    pthread_mutex_lock(&set->lock);
    bool found;
    size_t at = set_pos(set, name, &found);
    if (found) {
        ck__restidx_err(err, 400, "resource_already_exists_exception",
                        "index [%s/%s] already exists", name, set->ix[at]->uuid);
        rc = CK_EEXIST;
        goto out;
    }
    if (!text || !tmp || !dst || !mp || !lp) {
        rc = io_err(CK_ENOMEM, err);
        goto out;
    }
    ck_rmtree(tmp);
    if (mkdir(tmp, 0755) < 0) {
        rc = io_err(ck_from_errno(errno), err);
        goto out;
    }
    rc = ck_write_file_sync(mp, text, strlen(text));
    if (!rc)
        rc = ck_write_file_sync(lp, LOG_MAGIC, LOG_HDR);
    if (!rc)
        rc = ck_fsync_path(tmp, true);
    if (!rc) {
        ck_rmtree(dst); /* a stray folder the registry does not know (failed load) */
        if (rename(tmp, dst) < 0)
            rc = ck_from_errno(errno);
    }
    if (!rc)
        rc = ck_fsync_path(set->dir, true);
    if (rc) {
        ck_rmtree(tmp);
        io_err(rc, err);
        goto out;
    }
    rc = ix_new(name, dst, meta, &ix, err);
    if (!rc) {
        ix->meta_bytes = strlen(text);
        rc = ix_load_log(ix);
        if (!rc)
            rc = set_insert(set, ix);
        if (rc) {
            ix_retire(ix);
            ck_rmtree(dst);
        }
    }
    if (rc)
        io_err(rc, err);
out:
    pthread_mutex_unlock(&set->lock);
    json_decref(meta);
    free(text);
    ck_free(tmp);
    ck_free(dst);
    ck_free(mp);
    ck_free(lp);
    return rc;
}

int ck_restidx_drop(ck_restidx_set_t *set, const char *name)
{
    pthread_mutex_lock(&set->lock);
    bool found;
    size_t at = name ? set_pos(set, name, &found) : 0;
    if (!name || !found) {
        pthread_mutex_unlock(&set->lock);
        return CK_ENOENT;
    }
    ri_index_t *ix = set->ix[at];
    memmove(set->ix + at, set->ix + at + 1, (set->n - at - 1) * sizeof(*set->ix));
    set->n--;
    char trash[CK_RESTIDX_NAME_MAX + CK_RESTIDX_UUID_LEN + 16];
    snprintf(trash, sizeof(trash), "_drop.%s.%s", name, ix->uuid);
    char *tp = path_join(set->dir, trash);
    int rc = 0;
    if (!tp || rename(ix->dir, tp) < 0) {
        /* remove it in place, still under the registry lock so a new index of the same
         * name cannot be created meanwhile */
        rc = ck_rmtree(ix->dir);
        ck_free(tp);
        tp = NULL;
    } else {
        ck_fsync_path(set->dir, true);
    }
    pthread_mutex_unlock(&set->lock);
    ix_retire(ix);
    if (tp) {
        rc = ck_rmtree(tp);
        ck_free(tp);
    }
    return rc;
}

json_t *ck_restidx_mapping(ck_restidx_set_t *set, const char *name)
{
    ri_index_t *ix = set_get(set, name);
    if (!ix)
        return NULL;
    json_t *m = json_deep_copy(ix->mappings);
    ix_unref(ix);
    return m;
}

const char *ck_restidx_result_name(ck_restidx_result_t r)
{
    switch (r) {
    case CK_RESTIDX_CREATED:
        return "created";
    case CK_RESTIDX_UPDATED:
        return "updated";
    case CK_RESTIDX_DELETED:
        return "deleted";
    case CK_RESTIDX_NOT_FOUND:
        return "not_found";
    }
    return "unknown";
}

/* Finds the index for a write (creating it with auto_create); on error err is filled. */
static int write_target(ck_restidx_set_t *set, const char *name, bool auto_create, ri_index_t **out,
                        ck_search_error_t *err)
{
    ri_index_t *ix = set_get(set, name);
    if (!ix && auto_create) {
        int rc = ck_restidx_create(set, name, NULL, err);
        if (rc && rc != CK_EEXIST)
            return rc;
        ix = set_get(set, name);
    }
    if (!ix) {
        ck__restidx_err(err, 404, "index_not_found_exception", "no such index [%s]",
                        name ? name : "");
        return CK_ENOENT;
    }
    *out = ix;
    return 0;
}

/* Takes ix->lock for a write; fails (unlocked) when the index is gone or broken. */
static int write_lock(ri_index_t *ix, ck_search_error_t *err)
{
    pthread_mutex_lock(&ix->lock);
    if (ix->dropped) {
        pthread_mutex_unlock(&ix->lock);
        ck__restidx_err(err, 404, "index_not_found_exception", "no such index [%s]", ix->name);
        return CK_ENOENT;
    }
    int sticky = atomic_load(&ix->err);
    if (sticky) {
        pthread_mutex_unlock(&ix->lock);
        ck__restidx_err(err, 500, "exception", "index [%s] refuses writes after an I/O error",
                        ix->name);
        return sticky;
    }
    return 0;
}

static int check_id(const char *id, size_t n, ck_search_error_t *err)
{
    if (n == 0) {
        ck__restidx_err(err, 400, "illegal_argument_exception",
                        "if _id is specified it must not be empty");
        return CK_EINVAL;
    }
    if (n > CK_RESTIDX_ID_MAX) {
        ck__restidx_err(err, 400, "illegal_argument_exception",
                        "id [%.64s...] is too long, must be no longer than 512 bytes but was: %zu",
                        id, n);
        return CK_EINVAL;
    }
    return 0;
}

int ck_restidx_index(ck_restidx_set_t *set, const char *name, const char *id, const json_t *doc,
                     bool auto_create, ck_restidx_write_t *res, ck_search_error_t *err)
{
    char gen[CK_RESTIDX_GEN_ID_LEN + 2];
    if (!id) {
        random_b64(gen, 15);
        id = gen;
    }
    size_t idlen = strlen(id);
    int rc = check_id(id, idlen, err);
    if (rc)
        return rc;
    if (!json_is_object(doc)) {
        ck__restidx_err(err, 400, "mapper_parsing_exception",
                        "failed to parse, document is not a JSON object");
        return CK_EINVAL;
    }
    char *src = json_dumps(doc, JSON_COMPACT);
    if (!src)
        return io_err(CK_ENOMEM, err);
    size_t srclen = strlen(src);
    ri_rec_t *r = NULL;
    ri_index_t *ix = NULL;
    if (srclen > CK_RESTIDX_DOC_MAX) {
        ck__restidx_err(err, 413, "illegal_argument_exception",
                        "document of %zu bytes is too large", srclen);
        rc = CK_ETOOBIG;
        goto out;
    }
    r = rec_new(id, idlen, src, srclen);
    if (!r) {
        rc = io_err(CK_ENOMEM, err);
        goto out;
    }
    if ((rc = write_target(set, name, auto_create, &ix, err)) != 0)
        goto out;
    if ((rc = write_lock(ix, err)) != 0)
        goto out;
    ri_rec_t *old = id_find(ix, id, idlen);
    r->seq = ix->next_seq;
    r->version = old ? old->version + 1 : 1;
    uint64_t lsn = 0;
    rc = log_append(ix, OP_INDEX, r->seq, r->version, id, idlen, src, srclen, &lsn);
    if (rc) {
        pthread_mutex_unlock(&ix->lock);
        io_err(rc, err);
        goto out;
    }
    ix->next_seq++;
    res->result = old && old->src ? CK_RESTIDX_UPDATED : CK_RESTIDX_CREATED;
    res->version = r->version;
    res->seq_no = r->seq;
    memcpy(res->id, id, idlen + 1);
    retire(ix, old);
    rc = make_current(ix, r);
    r = NULL;
    if (rc) {
        /* durable, but the in-memory state is incomplete: stop taking writes; a reopen
         * replays the log */
        CK_ERROR(PART, "index [%s]: applying a write failed: %s", ix->name, ck_strerror(rc));
        atomic_store(&ix->err, CK_ESTATE);
    }
    maybe_compact(ix);
    pthread_mutex_unlock(&ix->lock);
    if ((rc = log_sync(ix, lsn)) != 0)
        io_err(rc, err);
out:
    rec_unref(r);
    ix_unref(ix);
    free(src);
    return rc;
}

int ck_restidx_delete(ck_restidx_set_t *set, const char *name, const char *id,
                      ck_restidx_write_t *res, ck_search_error_t *err)
{
    size_t idlen = id ? strlen(id) : 0;
    int rc = check_id(id, idlen, err);
    if (rc)
        return rc;
    ri_index_t *ix = NULL;
    ri_rec_t *tomb = rec_new(id, idlen, NULL, 0);
    if (!tomb)
        return io_err(CK_ENOMEM, err);
    if ((rc = write_target(set, name, false, &ix, err)) != 0)
        goto out;
    if ((rc = write_lock(ix, err)) != 0)
        goto out;
    ri_rec_t *old = id_find(ix, id, idlen);
    memcpy(res->id, id, idlen + 1);
    if (!old || !old->src) {
        res->result = CK_RESTIDX_NOT_FOUND;
        res->version = (old ? old->version : 0) + 1;
        res->seq_no = ix->next_seq ? ix->next_seq - 1 : 0;
        pthread_mutex_unlock(&ix->lock);
        goto out;
    }
    tomb->seq = ix->next_seq;
    tomb->version = old->version + 1;
    uint64_t lsn = 0;
    rc = log_append(ix, OP_DELETE, tomb->seq, tomb->version, id, idlen, NULL, 0, &lsn);
    if (rc) {
        pthread_mutex_unlock(&ix->lock);
        io_err(rc, err);
        goto out;
    }
    ix->next_seq++;
    res->result = CK_RESTIDX_DELETED;
    res->version = tomb->version;
    res->seq_no = tomb->seq;
    retire(ix, old);
    ix->dirty = true;
    if (id_insert(ix, tomb) == 0)
        tomb = NULL; /* else the version of the delete is forgotten: harmless */
    maybe_compact(ix);
    pthread_mutex_unlock(&ix->lock);
    if ((rc = log_sync(ix, lsn)) != 0)
        io_err(rc, err);
out:
    rec_unref(tomb);
    ix_unref(ix);
    return rc;
}

static json_t *parse_src(const ri_rec_t *r)
{
    return json_loadb(r->src, r->srclen, 0, NULL);
}

int ck_restidx_get(ck_restidx_set_t *set, const char *name, const char *id, json_t **source,
                   uint64_t *version, uint64_t *seq)
{
    *source = NULL;
    if (version)
        *version = 0;
    if (seq)
        *seq = 0;
    ri_index_t *ix = set_get(set, name);
    if (!ix)
        return CK_ENOENT;
    pthread_mutex_lock(&ix->lock);
    if (ix->dropped) {
        pthread_mutex_unlock(&ix->lock);
        ix_unref(ix);
        return CK_ENOENT;
    }
    ri_rec_t *r = id ? id_find(ix, id, strlen(id)) : NULL;
    if (r && r->src)
        atomic_fetch_add(&r->refs, 1);
    else
        r = NULL;
    pthread_mutex_unlock(&ix->lock);
    ix_unref(ix);
    if (!r)
        return 0;
    int rc = 0;
    *source = parse_src(r);
    if (!*source)
        rc = CK_ENOMEM;
    else {
        if (version)
            *version = r->version;
        if (seq)
            *seq = r->seq;
    }
    rec_unref(r);
    return rc;
}

int ck_restidx_list(ck_restidx_set_t *set, ck_restidx_info_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&set->lock);
    size_t k = set->n;
    ri_index_t **v = ck_malloc((k + 1) * sizeof(*v));
    if (!v) {
        pthread_mutex_unlock(&set->lock);
        return CK_ENOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        v[i] = set->ix[i];
        atomic_fetch_add(&v[i]->refs, 1);
    }
    pthread_mutex_unlock(&set->lock);
    ck_restidx_info_t *info = k ? ck_calloc(k, sizeof(*info)) : NULL;
    for (size_t i = 0; i < k; i++) {
        ri_index_t *ix = v[i];
        if (info) {
            ck_restidx_info_t *o = &info[i];
            snprintf(o->name, sizeof(o->name), "%s", ix->name);
            memcpy(o->uuid, ix->uuid, sizeof(o->uuid));
            o->created_ms = ix->created_ms;
            pthread_mutex_lock(&ix->lock);
            o->docs_count = ix->live_docs;
            o->docs_deleted = ix->seg_docs > ix->live_docs ? ix->seg_docs - ix->live_docs : 0;
            o->store_bytes = ix->log_size + ix->meta_bytes;
            pthread_mutex_unlock(&ix->lock);
        }
        ix_unref(ix);
    }
    ck_free(v);
    if (k && !info)
        return CK_ENOMEM;
    *out = info;
    *n = k;
    return 0;
}

/* ---- search ---- */

ck_restidx_snap_t *ck_restidx_acquire(ck_restidx_set_t *set, const char *name)
{
    ri_index_t *ix = set_get(set, name);
    if (!ix)
        return NULL;
    pthread_mutex_lock(&ix->lock);
    ck_restidx_snap_t *s = NULL;
    if (!ix->dropped) {
        if (ix->dirty || !ix->cur) {
            int rc = refresh_locked(ix);
            if (rc)
                CK_WARN(PART, "index [%s]: refresh failed: %s", ix->name, ck_strerror(rc));
        }
        s = ix->cur;
        if (s)
            atomic_fetch_add(&s->refs, 1);
    }
    pthread_mutex_unlock(&ix->lock);
    ix_unref(ix);
    return s;
}

void ck_restidx_release(ck_restidx_snap_t *snap)
{
    snap_unref(snap, false);
}

bool ck_restidx_live(void *ctx, size_t seg, uint32_t doc)
{
    const ck_restidx_snap_t *s = ctx;
    if (seg >= s->nsegs || doc >= ck_segment_ndocs(s->rsegs[seg]))
        return false;
    int32_t p;
    int64_t off, ts;
    ck_segment_doc(s->rsegs[seg], doc, &p, &off, &ts);
    return off >= 0 && bits_test(s->bits, s->nwords, (uint64_t)off);
}

void ck_restidx_view(ck_restidx_snap_t *snap, ck_search_view_t *out)
{
    memset(out, 0, sizeof(*out));
    out->index = snap->ix->name;
    out->segs = snap->rsegs;
    out->nsegs = snap->nsegs;
    out->analyzer = DEFAULT_ANALYZER;
    out->live = ck_restidx_live;
    out->live_ctx = snap;
}

json_t *ck_restidx_hit_source(ck_restidx_snap_t *snap, size_t seg, uint32_t doc, char *id_out,
                              size_t id_cap)
{
    if (!ck_restidx_live(snap, seg, doc))
        return NULL;
    int32_t p;
    int64_t off, ts;
    ck_segment_doc(snap->rsegs[seg], doc, &p, &off, &ts);
    ri_index_t *ix = snap->ix;
    pthread_mutex_lock(&ix->lock);
    ri_rec_t *r = seq_find(ix, (uint64_t)off);
    if (r)
        atomic_fetch_add(&r->refs, 1);
    pthread_mutex_unlock(&ix->lock);
    if (!r)
        return NULL;
    if (id_out && id_cap)
        snprintf(id_out, id_cap, "%s", r->id);
    json_t *src = parse_src(r);
    rec_unref(r);
    return src;
}
