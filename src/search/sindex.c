/* The search capability (see sindex.h and docs/SEARCH.md).
 *
 * Files, under <dir>/<topic>/:
 *
 *   COMMIT          the commit point, JSON: {"format":1, "topic", "topic_id" (hex),
 *                   "analyzer": {"language","stopwords"}, "next_gen",
 *                   "partitions": [next offset per partition, the checkpoint],
 *                   "segments": [{"gen","level","docs","bytes"}]}
 *                   written to COMMIT.tmp, fsynced, renamed over COMMIT, folder fsynced.
 *   seg_<gen>.cks   one committed segment image (segment.c's format), written to
 *                   seg_<gen>.tmp, fsynced, renamed, before the COMMIT that lists it.
 *
 * Recovery: COMMIT says which segments hold the records below the checkpoint; every other
 * file in the folder is a leftover (a flush or merge that did not commit, or inputs of a
 * committed merge) and is deleted at open. The indexer then feeds from the checkpoint, so
 * records that were only in memory are indexed again, exactly once. A missing or
 * unreadable COMMIT, a listed segment that fails its checksum, another topic id or another
 * analyzer: the folder is wiped and the index rebuilt from the log start.
 *
 * Segments: in memory (mem[], from refreshes; level-merged 4 at a time on the worker) and
 * on disk (disk[], from flushes; level-merged MERGE_FACTOR at a time on the merge thread).
 * A snapshot lists both; readers hold snapshots, snapshots hold segment references, so a
 * segment replaced by a merge stays readable until its last reader lets go.
 *
 * Locks: ck_sidx.mu guards the topic registry; stopic.mu guards a topic's lists, snapshot,
 * checkpoint and log starts, and is held while COMMIT is written (so commits by the worker
 * and by the merge thread are serialised). Never take ck_sidx.mu while holding stopic.mu. */
#include "search/sindex.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/fs.h"
#include "core/logging.h"
#include "index/capreg.h"
#include "search/docfields.h"

#define MEM_MERGE 4               /* in-memory segments of one level merged together ... */
#define MEM_MERGE_MAX (16u << 20) /* ... up to this size (bigger ones wait for the flush) */
#define MERGE_FACTOR 10           /* on-disk segments of one level merged together */
#define LIGHT_REFRESH_MS 50       /* a small builder is refreshed this soon ... */
#define LIGHT_REFRESH_DOCS 20000  /* ... small meaning at most this many docs */
#define MAX_LANES 8               /* indexing threads per capability (worker + helpers) */
#define SPLIT_MIN 256             /* records: a smaller batch is indexed by lane 0 alone */

typedef struct sseg {
    _Atomic int refs;
    ck_segment_t *seg;
    uint8_t *img; /* the image: mmap'ed (gen > 0) or ck_malloc'ed (gen == 0) */
    size_t len;
    uint64_t gen; /* file generation; 0 = in memory */
    int level;
    uint32_t ndocs;
} sseg_t;

typedef struct snap {
    ck_sidx_snap_t pub;
    _Atomic int refs;
    sseg_t **g;
    char lang[32];
} snap_t;

/* An indexing lane: a builder and the field extractor (with its analyzer) that feeds it.
 * A topic has one lane per indexing thread; a big batch is cut into consecutive runs of
 * records, one per lane, indexed at the same time, and a refresh finishes every lane's
 * builder at the same time, so one refresh can add up to one segment per lane. */
typedef struct lane {
    ck_segbuild_t *b;
    ck_docfields_t *df;
} lane_t;

typedef struct stopic {
    ck_capreg_node_t node; /* in ck_sidx.reg; its references count this object's */
    char *name;
    uint8_t id[16];
    char dir[1200];
    ck_idx_topic_t *it; /* worker only */
    int32_t npart;
    int64_t *next;           /* worker: next offset applied, per partition */
    int64_t *refreshed;      /* worker: next offset at the last refresh */
    int64_t *ckpt;           /* mu: checkpoint of the committed segments */
    int64_t *log_start;      /* mu */
    lane_t lanes[MAX_LANES]; /* s->nlanes of them */
    int nlanes;
    char lang[32];
    bool stopwords;
    int64_t refresh_ms;
    int64_t last_refresh, last_flush, last_retention;
    int64_t refresh_cost_ns; /* how long the last refresh took */
    bool broken;             /* a refresh lost builder docs: never commit again until reopened */
    pthread_mutex_t mu;
    sseg_t **disk, **mem;
    size_t ndisk, nmem;
    snap_t *snap;
    uint64_t next_gen;
    bool merging;        /* a merge job is queued or running (mu) */
    size_t mem_inflight; /* mem[0..mem_inflight) are being flushed by the merge thread (mu) */
    int flush_err;       /* the last flush's error, for the status (mu) */
    bool gone;           /* dropped or closed (mu) */
    uint64_t merges, flushes, refreshes;
} stopic_t;

typedef struct mjob {
    stopic_t *t;
    sseg_t **in;
    size_t n;
    int level;
    bool flush;    /* a flush of in-memory segments (else a merge of on-disk ones) */
    int64_t *ckpt; /* flush: the checkpoint the segments cover (npart entries) */
    int32_t npart;
    struct mjob *next;
} mjob_t;

/* One lane's share of a fork-join round (see run_lanes). */
typedef struct ltask {
    struct lpool *pool; /* set once */
    stopic_t *t;
    int lane;
    bool active;
    bool finish; /* finish the builder into w (else index recs[from..to) of batch) */
    const ck_idx_batch_t *batch;
    int from, to;
    int done; /* records indexed */
    ck_wbuf_t w;
    int rc;
} ltask_t;

/* The helper threads of the lanes other than 0 (lane 0 runs on the worker). A round:
 * the worker fills tasks[], bumps gen and wakes them; each helper runs tasks[its lane];
 * the worker runs tasks[0] and waits until pending is back to 0. */
typedef struct lpool {
    int nhelpers;
    pthread_t th[MAX_LANES - 1];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;
    int pending;
    bool stop;
    ltask_t tasks[MAX_LANES];
} lpool_t;

struct ck_sidx {
    ck_sidx_config_t cfg;
    int nlanes;
    lpool_t pool;
    char *dir;
    ck_capreg_t reg; /* the open topics */
    pthread_t merger;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    mjob_t *qhead;
    bool stop;
    bool merger_started;
};

/* ---- segments and snapshots ---- */

static void sseg_unref(sseg_t *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    ck_segment_free(g->seg);
    if (g->gen)
        munmap(g->img, g->len ? g->len : 1);
    else
        ck_free(g->img);
    ck_free(g);
}

static sseg_t *sseg_ref(sseg_t *g)
{
    atomic_fetch_add(&g->refs, 1);
    return g;
}

/* Wraps an image (taking it) into a segment. */
static int sseg_new(uint8_t *img, size_t len, uint64_t gen, int level, sseg_t **out)
{
    sseg_t *g = ck_calloc(1, sizeof(*g));
    if (!g) {
        if (gen)
            munmap(img, len ? len : 1);
        else
            ck_free(img);
        return CK_ENOMEM;
    }
    atomic_init(&g->refs, 1);
    g->img = img;
    g->len = len;
    g->gen = gen;
    g->level = level;
    int rc = ck_segment_open(img, len, false, &g->seg);
    if (rc) {
        sseg_unref(g);
        return rc;
    }
    g->ndocs = ck_segment_ndocs(g->seg);
    *out = g;
    return 0;
}

static void snap_unref(snap_t *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->pub.nsegs; i++)
        sseg_unref(s->g[i]);
    ck_free(s->g);
    ck_free(s->pub.segs);
    ck_free(s->pub.log_start);
    ck_free(s->pub.index);
    ck_free(s);
}

/* A new snapshot of t's lists; caller holds t->mu. On ENOMEM the old one stays. */
static void publish_locked(stopic_t *t)
{
    snap_t *s = ck_calloc(1, sizeof(*s));
    size_t n = t->ndisk + t->nmem;
    if (!s)
        return;
    atomic_init(&s->refs, 1);
    s->g = ck_calloc(n ? n : 1, sizeof(*s->g));
    s->pub.segs = ck_calloc(n ? n : 1, sizeof(*s->pub.segs));
    s->pub.log_start = ck_calloc((size_t)(t->npart ? t->npart : 1), sizeof(int64_t));
    s->pub.index = ck_strdup(t->name);
    if (!s->g || !s->pub.segs || !s->pub.log_start || !s->pub.index) {
        snap_unref(s);
        return;
    }
    for (size_t i = 0; i < t->ndisk; i++)
        s->g[s->pub.nsegs++] = sseg_ref(t->disk[i]);
    for (size_t i = 0; i < t->nmem; i++)
        s->g[s->pub.nsegs++] = sseg_ref(t->mem[i]);
    for (size_t i = 0; i < s->pub.nsegs; i++)
        s->pub.segs[i] = s->g[i]->seg;
    s->pub.npart = t->npart;
    memcpy(s->pub.log_start, t->log_start, sizeof(int64_t) * (size_t)t->npart);
    s->pub.all_live = true;
    for (size_t i = 0; i < s->pub.nsegs && s->pub.all_live; i++)
        for (int32_t p = 0; p < t->npart && s->pub.all_live; p++) {
            int64_t lo, hi;
            if (ck_segment_offsets(s->pub.segs[i], p, &lo, &hi) && lo < t->log_start[p])
                s->pub.all_live = false;
        }
    snprintf(s->lang, sizeof(s->lang), "%s", t->lang);
    s->pub.analyzer.kind = CK_ANALYZER_STANDARD;
    s->pub.analyzer.language = s->lang;
    s->pub.analyzer.stopwords = t->stopwords;
    snap_t *old = t->snap;
    t->snap = s;
    snap_unref(old);
}

static void publish(stopic_t *t)
{
    pthread_mutex_lock(&t->mu);
    publish_locked(t);
    pthread_mutex_unlock(&t->mu);
}

/* ---- files ---- */

static void seg_path(const stopic_t *t, uint64_t gen, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s/seg_%llu.%s", t->dir, (unsigned long long)gen, ext);
}

/* Maps a committed segment file. */
static int map_file(const char *path, uint8_t **img, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CK_ENOENT : ck_from_errno(errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = ck_from_errno(errno);
        close(fd);
        return rc;
    }
    size_t n = (size_t)st.st_size;
    void *p = mmap(NULL, n ? n : 1, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return CK_EIO;
    *img = p;
    *len = n;
    return 0;
}

/* Writes image (taking it) as segment gen and maps it back. */
static int persist_segment(stopic_t *t, uint8_t *img, size_t len, uint64_t gen, int level,
                           sseg_t **out)
{
    char tmp[1300], fin[1300];
    seg_path(t, gen, "tmp", tmp, sizeof(tmp));
    seg_path(t, gen, "cks", fin, sizeof(fin));
    int rc = ck_replace_file(tmp, fin, NULL, img, len);
    ck_free(img);
    if (rc)
        return rc;
    uint8_t *m;
    size_t n;
    rc = map_file(fin, &m, &n);
    if (!rc)
        rc = sseg_new(m, n, gen, level, out);
    if (rc)
        unlink(fin);
    return rc;
}

static void hex_id(const uint8_t id[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* Writes COMMIT for t's on-disk segments and checkpoint; caller holds t->mu. */
static int commit_locked(stopic_t *t)
{
    char hex[33];
    hex_id(t->id, hex);
    json_t *m = json_object();
    json_object_set_new(m, "format", json_integer(1));
    json_object_set_new(m, "topic", json_string(t->name));
    json_object_set_new(m, "topic_id", json_string(hex));
    json_object_set_new(m, "analyzer",
                        json_pack("{s:s,s:b}", "language", t->lang, "stopwords", t->stopwords));
    json_object_set_new(m, "next_gen", json_integer((json_int_t)t->next_gen));
    json_t *parts = json_array();
    for (int32_t p = 0; p < t->npart; p++)
        json_array_append_new(parts, json_integer(t->ckpt[p]));
    json_object_set_new(m, "partitions", parts);
    json_t *segs = json_array();
    for (size_t i = 0; i < t->ndisk; i++)
        json_array_append_new(
            segs, json_pack("{s:I,s:i,s:I,s:I}", "gen", (json_int_t)t->disk[i]->gen, "level",
                            t->disk[i]->level, "docs", (json_int_t)t->disk[i]->ndocs, "bytes",
                            (json_int_t)t->disk[i]->len));
    json_object_set_new(m, "segments", segs);
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (!text)
        return CK_ENOMEM;
    char tmp[1300], fin[1300];
    snprintf(tmp, sizeof(tmp), "%s/COMMIT.tmp", t->dir);
    snprintf(fin, sizeof(fin), "%s/COMMIT", t->dir);
    int rc = ck_replace_file(tmp, fin, t->dir, text, strlen(text));
    free(text);
    return rc;
}

static bool listed_gen(const stopic_t *t, uint64_t gen)
{
    for (size_t i = 0; i < t->ndisk; i++)
        if (t->disk[i]->gen == gen)
            return true;
    return false;
}

/* Deletes every file of the folder that COMMIT does not list. */
static void remove_orphans(stopic_t *t)
{
    DIR *d = opendir(t->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "COMMIT"))
            continue;
        unsigned long long gen;
        char ext[8];
        if (sscanf(e->d_name, "seg_%llu.%7s", &gen, ext) == 2 && !strcmp(ext, "cks") &&
            listed_gen(t, gen))
            continue;
        char p[1600];
        snprintf(p, sizeof(p), "%s/%s", t->dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static int parse_hex_id(const char *s, uint8_t id[16])
{
    if (!s || strlen(s) != 32)
        return CK_ECORRUPT;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return CK_ECORRUPT;
        id[i] = (uint8_t)v;
    }
    return 0;
}

static int list_push(sseg_t ***arr, size_t *n, sseg_t *g)
{
    sseg_t **na = ck_realloc(*arr, sizeof(*na) * (*n + 1));
    if (!na)
        return CK_ENOMEM;
    na[(*n)++] = g;
    *arr = na;
    return 0;
}

/* Loads COMMIT and its segments. CK_ENOENT: nothing usable (start from scratch). */
static int load_commit(stopic_t *t)
{
    char path[1300];
    snprintf(path, sizeof(path), "%s/COMMIT", t->dir);
    json_error_t je;
    json_t *m = json_load_file(path, 0, &je);
    if (!m)
        return CK_ENOENT;
    int rc = 0;
    uint8_t id[16];
    json_t *an = json_object_get(m, "analyzer");
    const char *lang = json_string_value(json_object_get(an, "language"));
    json_t *sw = json_object_get(an, "stopwords");
    json_t *parts = json_object_get(m, "partitions");
    json_t *segs = json_object_get(m, "segments");
    if (json_integer_value(json_object_get(m, "format")) != 1 ||
        parse_hex_id(json_string_value(json_object_get(m, "topic_id")), id) ||
        memcmp(id, t->id, 16) || !json_is_array(parts) || !json_is_array(segs) || !lang ||
        !json_is_boolean(sw)) {
        CK_INFO("search", "%s: index belongs to another topic or is unreadable: rebuilding",
                t->name);
        rc = CK_ENOENT;
        goto out;
    }
    if (strcmp(lang, t->lang) || json_is_true(sw) != t->stopwords) {
        CK_INFO("search", "%s: analyzer changed (%s/%d -> %s/%d): rebuilding the index", t->name,
                lang, json_is_true(sw), t->lang, t->stopwords);
        rc = CK_ENOENT;
        goto out;
    }
    t->next_gen = (uint64_t)json_integer_value(json_object_get(m, "next_gen"));
    size_t np = json_array_size(parts);
    for (size_t p = 0; p < np && p < (size_t)t->npart; p++)
        t->ckpt[p] = json_integer_value(json_array_get(parts, p));
    for (size_t i = 0; i < json_array_size(segs) && !rc; i++) {
        json_t *e = json_array_get(segs, i);
        uint64_t gen = (uint64_t)json_integer_value(json_object_get(e, "gen"));
        int level = (int)json_integer_value(json_object_get(e, "level"));
        char fin[1300];
        seg_path(t, gen, "cks", fin, sizeof(fin));
        uint8_t *img = NULL;
        size_t len = 0;
        sseg_t *g = NULL;
        rc = map_file(fin, &img, &len);
        int version = rc ? -1 : ck_segment_image_version(img, len);
        if (!rc)
            rc = sseg_new(img, len, gen, level, &g); /* on failure, img is unmapped */
        if (!rc && (rc = list_push(&t->disk, &t->ndisk, g)))
            sseg_unref(g);
        if (rc && version >= 0 && version != CK_SEG_VERSION)
            CK_INFO("search",
                    "%s: segment %s has format version %d, this server writes %d: "
                    "rebuilding the index from the log",
                    t->name, fin, version, CK_SEG_VERSION);
        else if (rc)
            CK_WARN("search", "%s: segment %s unusable (%s): rebuilding the index", t->name, fin,
                    ck_strerror(rc));
        if (gen >= t->next_gen)
            t->next_gen = gen + 1;
    }
    if (rc) {
        for (size_t i = 0; i < t->ndisk; i++)
            sseg_unref(t->disk[i]);
        t->ndisk = 0;
        memset(t->ckpt, 0, sizeof(int64_t) * (size_t)t->npart);
        rc = CK_ENOENT;
    }
out:
    json_decref(m);
    return rc;
}

/* ---- topics ---- */

static void topic_unref(stopic_t *t)
{
    if (!t || !ck_capreg_unref(&t->node))
        return;
    for (size_t i = 0; i < t->ndisk; i++)
        sseg_unref(t->disk[i]);
    for (size_t i = 0; i < t->nmem; i++)
        sseg_unref(t->mem[i]);
    ck_free(t->disk);
    ck_free(t->mem);
    snap_unref(t->snap);
    for (int i = 0; i < t->nlanes; i++) {
        ck_segbuild_free(t->lanes[i].b);
        ck_docfields_free(t->lanes[i].df);
    }
    ck_free(t->next);
    ck_free(t->refreshed);
    ck_free(t->ckpt);
    ck_free(t->log_start);
    ck_free(t->name);
    pthread_mutex_destroy(&t->mu);
    ck_free(t);
}

static void read_options(stopic_t *t, const ck_kvs_t *cfg)
{
    const char *v = ck_kvs_get(cfg, "searchable.refresh.ms");
    t->refresh_ms = v ? strtoll(v, NULL, 10) : 1000;
    if (t->refresh_ms < 0)
        t->refresh_ms = 1000;
    v = ck_kvs_get(cfg, "searchable.language");
    snprintf(t->lang, sizeof(t->lang), "%s", v && *v ? v : "english");
    v = ck_kvs_get(cfg, "searchable.stopwords");
    t->stopwords = !v || !strcasecmp(v, "true");
}

static int grow_parts(stopic_t *t, int32_t npart)
{
    int64_t **arrs[] = {&t->next, &t->refreshed, &t->ckpt, &t->log_start};
    for (size_t i = 0; i < sizeof(arrs) / sizeof(arrs[0]); i++) {
        int64_t *n = ck_realloc(*arrs[i], sizeof(int64_t) * (size_t)npart);
        if (!n)
            return CK_ENOMEM;
        for (int32_t p = t->npart; p < npart; p++)
            n[p] = 0;
        *arrs[i] = n;
    }
    t->npart = npart;
    return 0;
}

static stopic_t *topic_of(ck_capreg_node_t *n)
{
    return (stopic_t *)((char *)n - offsetof(stopic_t, node));
}

static int op_open(void *cap, ck_idx_topic_t *it, int64_t *next)
{
    ck_sidx_t *s = cap;
    stopic_t *t = it->priv;
    if (t) {
        if (it->npart > t->npart) {
            pthread_mutex_lock(&t->mu);
            int rc = grow_parts(t, it->npart);
            if (!rc)
                publish_locked(t);
            pthread_mutex_unlock(&t->mu);
            if (rc)
                return rc;
        }
        for (int32_t p = 0; p < t->npart; p++)
            next[p] = t->next[p];
        return 0;
    }
    t = ck_calloc(1, sizeof(*t));
    if (!t)
        return CK_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    t->name = ck_strdup(it->name);
    ck_capreg_node_init(&t->node, t->name);
    memcpy(t->id, it->id, 16);
    snprintf(t->dir, sizeof(t->dir), "%s/%s", s->dir, it->name);
    read_options(t, &it->configs);
    int rc = t->name ? grow_parts(t, it->npart) : CK_ENOMEM;
    ck_analyzer_config_t ac = {CK_ANALYZER_STANDARD, t->lang, t->stopwords};
    for (int i = 0; !rc && i < s->nlanes; i++) {
        rc = ck_docfields_new(&ac, &t->lanes[i].df);
        if (rc == CK_EINVAL)
            ck_idx_topic_set_status(it, "searchable.language=%s is not a known stemmer language",
                                    t->lang);
        if (!rc)
            rc = ck_segbuild_new(&t->lanes[i].b);
        if (!rc)
            t->nlanes = i + 1;
    }
    if (!rc && load_commit(t) == CK_ENOENT) {
        ck_rmtree(t->dir);
        t->next_gen = 1;
    }
    if (!rc)
        rc = ck_mkdirs(t->dir);
    if (rc) {
        topic_unref(t);
        return rc;
    }
    if (t->next_gen == 0)
        t->next_gen = 1;
    remove_orphans(t);
    for (int32_t p = 0; p < t->npart; p++) {
        t->next[p] = t->refreshed[p] = t->ckpt[p];
        t->log_start[p] = ck_idx_topic_log_start(it, p);
        next[p] = t->ckpt[p];
        ck_idx_topic_set_visible(it, p, t->ckpt[p]);
    }
    t->it = it;
    t->last_refresh = t->last_flush = ck_mono_ms();
    publish(t);
    it->priv = t;
    ck_capreg_add(&s->reg, &t->node);
    uint64_t docs = 0;
    for (size_t i = 0; i < t->ndisk; i++)
        docs += t->disk[i]->ndocs;
    CK_INFO("search", "%s: search index open (%zu segments, %llu docs, analyzer %s%s)", t->name,
            t->ndisk, (unsigned long long)docs, t->lang, t->stopwords ? " with stop words" : "");
    return 0;
}

static int op_config(void *cap, ck_idx_topic_t *it)
{
    (void)cap;
    stopic_t *t = it->priv;
    if (!t)
        return 0;
    char lang[32];
    bool sw = t->stopwords;
    snprintf(lang, sizeof(lang), "%s", t->lang);
    read_options(t, &it->configs);
    if (strcmp(lang, t->lang) || sw != t->stopwords) {
        /* the segments were analyzed the old way: keep it until a restart rebuilds */
        ck_idx_topic_set_status(
            it, "analyzer change (searchable.language/stopwords) applies after a restart, "
                "which rebuilds the index");
        snprintf(t->lang, sizeof(t->lang), "%s", lang);
        t->stopwords = sw;
    }
    return 0;
}

/* Indexes the records of task->batch from task->from to task->to into its lane. */
static void lane_apply(ltask_t *k)
{
    lane_t *l = &k->t->lanes[k->lane];
    const ck_idx_batch_t *b = k->batch;
    for (int i = k->from; i < k->to; i++) {
        const ck_record_t *r = &b->recs[i];
        k->rc = ck_docfields_add_at(l->df, l->b, b->partition, r->offset, r->timestamp,
                                    b->compressed ? CK_SEG_NO_POS : r->pos, r->key, r->value);
        if (k->rc)
            return;
        k->done++;
    }
}

static void lane_run(ltask_t *k)
{
    if (!k->active)
        return;
    if (k->finish)
        k->rc = ck_segbuild_finish(k->t->lanes[k->lane].b, &k->w);
    else
        lane_apply(k);
}

static void *helper_main(void *arg)
{
    ltask_t *k = arg;
    lpool_t *p = k->pool;
    char name[16];
    snprintf(name, sizeof(name), "ck-search-%d", k->lane);
    pthread_setname_np(pthread_self(), name);
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        lane_run(k);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Runs pool->tasks[0..n): the helpers' in parallel with lane 0's on this thread. */
static void run_lanes(lpool_t *p, int n)
{
    if (n > 1) {
        pthread_mutex_lock(&p->mu);
        p->pending = p->nhelpers;
        p->gen++;
        pthread_cond_broadcast(&p->go);
        pthread_mutex_unlock(&p->mu);
    }
    lane_run(&p->tasks[0]);
    if (n > 1) {
        pthread_mutex_lock(&p->mu);
        while (p->pending)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

static void task_reset(lpool_t *p, stopic_t *t)
{
    for (int i = 0; i < MAX_LANES; i++) {
        ltask_t *k = &p->tasks[i];
        k->t = t;
        k->lane = i;
        k->active = k->finish = false;
        k->batch = NULL;
        k->from = k->to = k->done = 0;
        k->rc = 0;
    }
}

static int op_apply(void *cap, ck_idx_topic_t *it, const ck_idx_batch_t *b)
{
    ck_sidx_t *s = cap;
    stopic_t *t = it->priv;
    if (!t || b->partition >= t->npart)
        return CK_EINVAL;
    int64_t *next = &t->next[b->partition];
    int from = 0;
    while (from < b->n && b->recs[from].offset < *next)
        from++; /* applied before a restart: the offsets in a batch ascend */
    int n = b->n - from;
    if (n == 0)
        return 0;
    lpool_t *p = &s->pool;
    task_reset(p, t);
    int lanes = n >= SPLIT_MIN ? t->nlanes : 1;
    for (int i = 0; i < lanes; i++) {
        ltask_t *k = &p->tasks[i];
        k->active = true;
        k->batch = b;
        k->from = from + (int)((int64_t)n * i / lanes);
        k->to = from + (int)((int64_t)n * (i + 1) / lanes);
    }
    run_lanes(p, lanes);
    /* The records are applied up to the first one a lane failed on, if every lane before
     * it finished its run (else later lanes hold records beyond a gap). */
    int upto = from, rc = 0;
    for (int i = 0; i < lanes && !rc; i++) {
        upto = p->tasks[i].from + p->tasks[i].done;
        rc = p->tasks[i].rc;
    }
    if (upto > from)
        *next = b->recs[upto - 1].offset + 1;
    if (rc) {
        /* a lane may hold a part of the failed doc, later lanes docs past it: this index
         * must not be committed; the restart re-indexes from the checkpoint */
        t->broken = true;
        ck_idx_topic_set_status(it, "indexing failed: %s; re-indexing after a restart",
                                ck_strerror(rc));
    }
    return rc;
}

/* Merges segments in[0..n) (keeping all docs) into a new in-memory image. */
static int merge_images(sseg_t **in, size_t n, bool (*keep)(void *, size_t, uint32_t), void *ctx,
                        uint8_t **img, size_t *len)
{
    ck_segment_t *segs[64] = {0};
    ck_segment_t **sp = n <= 64 ? segs : ck_malloc(sizeof(*sp) * n);
    if (!sp)
        return CK_ENOMEM;
    for (size_t i = 0; i < n; i++)
        sp[i] = in[i]->seg;
    ck_wbuf_t w = CK_WBUF_INIT;
    int rc = ck_segment_merge(sp, n, keep, ctx, &w);
    if (sp != segs)
        ck_free(sp);
    if (rc) {
        ck_wbuf_free(&w);
        return rc;
    }
    *img = ck_wbuf_steal(&w, len);
    return *img || !*len ? 0 : CK_ENOMEM;
}

/* Level-merges the trailing in-memory segments (worker; small, so done inline). */
static void merge_mem(stopic_t *t)
{
    for (;;) {
        /* the newest MEM_MERGE segments, if of one level and not being flushed */
        sseg_t *in[MEM_MERGE];
        pthread_mutex_lock(&t->mu);
        size_t n = t->nmem;
        bool ok = n >= MEM_MERGE && n - MEM_MERGE >= t->mem_inflight;
        int level = ok ? t->mem[n - MEM_MERGE]->level : 0;
        size_t bytes = 0;
        for (size_t i = 0; ok && i < MEM_MERGE; i++) {
            in[i] = t->mem[n - MEM_MERGE + i];
            ok = in[i]->level == level;
            bytes += in[i]->len;
        }
        ok = ok && bytes <= MEM_MERGE_MAX;
        for (size_t i = 0; ok && i < MEM_MERGE; i++)
            sseg_ref(in[i]);
        pthread_mutex_unlock(&t->mu);
        if (!ok)
            return;
        uint8_t *img;
        size_t len;
        sseg_t *g = NULL;
        int rc = merge_images(in, MEM_MERGE, NULL, NULL, &img, &len);
        if (!rc)
            rc = sseg_new(img, len, 0, level + 1, &g);
        pthread_mutex_lock(&t->mu);
        /* the flush may have taken older ones off the front meanwhile; these are the tail */
        n = t->nmem;
        bool same = !rc && n >= MEM_MERGE;
        for (size_t i = 0; same && i < MEM_MERGE; i++)
            same = t->mem[n - MEM_MERGE + i] == in[i];
        if (same) {
            for (size_t i = 0; i < MEM_MERGE; i++)
                sseg_unref(t->mem[n - MEM_MERGE + i]);
            t->mem[n - MEM_MERGE] = g;
            t->nmem = n - MEM_MERGE + 1;
            g = NULL;
        }
        pthread_mutex_unlock(&t->mu);
        for (size_t i = 0; i < MEM_MERGE; i++)
            sseg_unref(in[i]);
        sseg_unref(g);
        if (!same)
            return;
    }
}

static uint32_t pending_docs(const stopic_t *t)
{
    uint32_t n = 0;
    for (int i = 0; i < t->nlanes; i++)
        n += ck_segbuild_ndocs(t->lanes[i].b);
    return n;
}

/* Finishes every lane's builder (at the same time) into in-memory segments and makes
 * them and the applied offsets visible. */
static void refresh(ck_sidx_t *s, stopic_t *t, int64_t now)
{
    t->last_refresh = now;
    if (pending_docs(t) > 0) {
        lpool_t *p = &s->pool;
        task_reset(p, t);
        int lanes = 0;
        for (int i = 0; i < t->nlanes; i++) {
            p->tasks[i].w = (ck_wbuf_t)CK_WBUF_INIT;
            p->tasks[i].finish = true;
            p->tasks[i].active = ck_segbuild_ndocs(t->lanes[i].b) > 0;
            if (p->tasks[i].active)
                lanes = i + 1;
        }
        int64_t t0 = ck_mono_ns();
        run_lanes(p, lanes);
        t->refresh_cost_ns = ck_mono_ns() - t0;
        int err = 0;
        for (int i = 0; i < lanes; i++) {
            ltask_t *k = &p->tasks[i];
            if (!k->active)
                continue;
            int rc = k->rc;
            size_t len = 0;
            uint8_t *img = rc ? NULL : ck_wbuf_steal(&k->w, &len);
            sseg_t *g = NULL;
            if (!rc && !img)
                rc = CK_ENOMEM;
            if (!rc)
                rc = sseg_new(img, len, 0, 0, &g);
            if (!rc) {
                pthread_mutex_lock(&t->mu);
                rc = list_push(&t->mem, &t->nmem, g);
                pthread_mutex_unlock(&t->mu);
                if (rc)
                    sseg_unref(g);
            }
            ck_wbuf_free(&k->w);
            if (rc && !err)
                err = rc;
        }
        if (err) {
            /* a builder was reset: these records must be indexed again */
            t->broken = true;
            ck_idx_topic_set_status(t->it, "refresh failed: %s; re-indexing after a restart",
                                    ck_strerror(err));
            CK_WARN("search", "%s: refresh failed: %s", t->name, ck_strerror(err));
            return;
        }
        merge_mem(t);
        t->refreshes++;
    }
    publish(t);
    for (int32_t p = 0; p < t->npart; p++) {
        if (t->refreshed[p] != t->next[p]) {
            t->refreshed[p] = t->next[p];
            ck_idx_topic_set_visible(t->it, p, t->next[p]);
        }
    }
}

static void queue_merge(ck_sidx_t *s, stopic_t *t);
static void mq_push(ck_sidx_t *s, mjob_t *j);

/* Commits the in-memory segments as one on-disk segment: the worker hands them (with the
 * checkpoint they cover) to the merge thread, which merges, writes and commits them while
 * the worker keeps indexing and refreshing into newer in-memory segments. */
static void flush(ck_sidx_t *s, stopic_t *t, int64_t now)
{
    t->last_flush = now;
    if (t->broken)
        return;
    bool moved = false;
    pthread_mutex_lock(&t->mu);
    bool busy = t->mem_inflight > 0;
    for (int32_t p = 0; p < t->npart; p++)
        moved |= t->ckpt[p] != t->refreshed[p];
    size_t nmem = t->nmem;
    pthread_mutex_unlock(&t->mu);
    if (busy || (!nmem && !moved))
        return;
    mjob_t *j = ck_calloc(1, sizeof(*j));
    if (j) {
        j->in = ck_calloc(t->nmem ? t->nmem : 1, sizeof(*j->in));
        j->ckpt = ck_malloc(sizeof(int64_t) * (size_t)(t->npart ? t->npart : 1));
    }
    if (!j || !j->in || !j->ckpt) {
        if (j) {
            ck_free(j->in);
            ck_free(j->ckpt);
        }
        ck_free(j);
        return;
    }
    j->flush = true;
    j->npart = t->npart;
    memcpy(j->ckpt, t->refreshed, sizeof(int64_t) * (size_t)t->npart);
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nmem; i++)
        j->in[j->n++] = sseg_ref(t->mem[i]);
    t->mem_inflight = t->nmem ? t->nmem : 1; /* 1 also blocks a second checkpoint-only job */
    ck_capreg_ref(&t->node);
    j->t = t;
    pthread_mutex_unlock(&t->mu);
    mq_push(s, j);
}

/* Merge thread: the flush job's work. */
static void run_flush(mjob_t *j)
{
    stopic_t *t = j->t;
    sseg_t *g = NULL;
    int rc = 0;
    uint64_t docs = 0;
    for (size_t i = 0; i < j->n; i++)
        docs += j->in[i]->ndocs;
    if (docs) {
        uint8_t *img = NULL;
        size_t len = 0;
        if (j->n == 1) {
            img = ck_malloc(j->in[0]->len);
            len = j->in[0]->len;
            if (img)
                memcpy(img, j->in[0]->img, len);
            else
                rc = CK_ENOMEM;
        } else {
            rc = merge_images(j->in, j->n, NULL, NULL, &img, &len);
        }
        if (!rc) {
            pthread_mutex_lock(&t->mu);
            uint64_t gen = t->next_gen++;
            bool gone = t->gone; /* dropped: its folder may belong to a new topic now */
            pthread_mutex_unlock(&t->mu);
            if (gone) {
                ck_free(img);
                rc = CK_ECLOSED;
            } else {
                rc = persist_segment(t, img, len, gen, 0, &g);
            }
        }
    }
    pthread_mutex_lock(&t->mu);
    /* the job's segments are still the oldest in-memory ones (nothing else removes them) */
    for (size_t i = 0; !rc && i < j->n; i++)
        if (i >= t->nmem || t->mem[i] != j->in[i])
            rc = CK_ESTATE;
    if (!rc && t->gone)
        rc = CK_ECLOSED;
    if (!rc && g)
        rc = list_push(&t->disk, &t->ndisk, g);
    if (!rc) {
        int64_t *old = ck_malloc(sizeof(int64_t) * (size_t)(t->npart ? t->npart : 1));
        if (old)
            memcpy(old, t->ckpt, sizeof(int64_t) * (size_t)t->npart);
        for (int32_t p = 0; p < t->npart && p < j->npart; p++)
            t->ckpt[p] = j->ckpt[p];
        rc = old ? commit_locked(t) : CK_ENOMEM;
        if (rc) {
            if (old)
                memcpy(t->ckpt, old, sizeof(int64_t) * (size_t)t->npart);
            if (g)
                t->ndisk--;
        }
        ck_free(old);
    }
    if (!rc) {
        for (size_t i = 0; i < j->n; i++)
            sseg_unref(t->mem[i]);
        memmove(t->mem, t->mem + j->n, sizeof(*t->mem) * (t->nmem - j->n));
        t->nmem -= j->n;
        t->flushes++;
        publish_locked(t);
    } else if (rc != CK_ECLOSED) {
        t->flush_err = rc;
    }
    t->mem_inflight = 0;
    pthread_mutex_unlock(&t->mu);
    if (rc && g) {
        char fin[1300];
        seg_path(t, g->gen, "cks", fin, sizeof(fin));
        unlink(fin);
        sseg_unref(g);
    }
    if (rc && rc != CK_ECLOSED)
        CK_WARN("search", "%s: flush failed: %s (retrying)", t->name, ck_strerror(rc));
}

/* Drops whole segments every doc of which is below its partition's log start. */
static bool expired(const stopic_t *t, const sseg_t *g)
{
    if (!g->ndocs)
        return true;
    for (int32_t p = 0; p < t->npart; p++) {
        int64_t lo, hi;
        if (ck_segment_offsets(g->seg, p, &lo, &hi) && hi >= t->log_start[p])
            return false;
    }
    return true;
}

static void retention(stopic_t *t)
{
    bool changed = false, disk_changed = false;
    pthread_mutex_lock(&t->mu);
    for (int32_t p = 0; p < t->npart; p++) {
        int64_t ls = ck_idx_topic_log_start(t->it, p);
        if (ls != t->log_start[p]) {
            t->log_start[p] = ls;
            changed = true;
        }
    }
    if (changed) {
        sseg_t *gone[64];
        size_t ngone = 0;
        for (size_t i = 0; i < t->ndisk;) {
            if (ngone < 64 && expired(t, t->disk[i])) {
                gone[ngone++] = t->disk[i];
                memmove(t->disk + i, t->disk + i + 1, sizeof(*t->disk) * (t->ndisk - i - 1));
                t->ndisk--;
                disk_changed = true;
            } else {
                i++;
            }
        }
        for (size_t i = t->mem_inflight; i < t->nmem;) {
            if (expired(t, t->mem[i])) {
                sseg_unref(t->mem[i]);
                memmove(t->mem + i, t->mem + i + 1, sizeof(*t->mem) * (t->nmem - i - 1));
                t->nmem--;
            } else {
                i++;
            }
        }
        if (disk_changed && commit_locked(t)) {
            /* keep them listed: COMMIT still names them */
            for (size_t i = 0; i < ngone; i++)
                t->disk[t->ndisk++] = gone[i];
            ngone = 0;
        }
        publish_locked(t);
        pthread_mutex_unlock(&t->mu);
        for (size_t i = 0; i < ngone; i++) {
            char fin[1300];
            seg_path(t, gone[i]->gen, "cks", fin, sizeof(fin));
            unlink(fin);
            CK_INFO("search", "%s: segment %llu expired (retention)", t->name,
                    (unsigned long long)gone[i]->gen);
            sseg_unref(gone[i]);
        }
        return;
    }
    pthread_mutex_unlock(&t->mu);
}

static size_t mem_bytes(stopic_t *t)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = t->mem_inflight; i < t->nmem; i++)
        n += t->mem[i]->len;
    int err = t->flush_err;
    t->flush_err = 0;
    pthread_mutex_unlock(&t->mu);
    if (err)
        ck_idx_topic_set_status(t->it, "cannot commit the search index: %s (retrying)",
                                ck_strerror(err));
    return n;
}

static void op_idle(void *cap, int64_t now)
{
    ck_sidx_t *s = cap;
    /* the worker changes the list: it may walk it without the lock */
    for (ck_capreg_node_t *n = s->reg.head; n; n = n->next) {
        stopic_t *t = topic_of(n);
        if (!t->it)
            continue;
        uint32_t ndocs = pending_docs(t);
        bool pending = ndocs > 0;
        bool moved = false;
        for (int32_t p = 0; p < t->npart && !moved; p++)
            moved = t->refreshed[p] != t->next[p];
        int64_t since = now - t->last_refresh;
        /* A refresh costs about the builder's size: small ones go out within 50 ms, big
         * ones (a flood) at least every refresh_ms. */
        bool small = ndocs <= LIGHT_REFRESH_DOCS;
        /* and refreshes take at most ~10% of the worker's time */
        int64_t light = t->refresh_cost_ns / 100000;
        if (light < LIGHT_REFRESH_MS)
            light = LIGHT_REFRESH_MS;
        if ((pending || moved) &&
            (since >= t->refresh_ms || t->refresh_ms == 0 || (small && since >= light))) {
            refresh(s, t, now);
        }
        if (now - t->last_flush >= s->cfg.flush_ms || mem_bytes(t) >= s->cfg.flush_bytes)
            flush(s, t, now);
        if (now - t->last_retention >= 1000) {
            t->last_retention = now;
            retention(t);
        }
        pthread_mutex_lock(&t->mu);
        bool want = !t->merging;
        pthread_mutex_unlock(&t->mu);
        if (want)
            queue_merge(s, t);
    }
}

/* ---- the merge thread ---- */

/* Picks MERGE_FACTOR on-disk segments of one level (the lowest such level). */
static void queue_merge(ck_sidx_t *s, stopic_t *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->merging || t->gone || t->ndisk < MERGE_FACTOR) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    int best = -1;
    for (size_t i = 0; i < t->ndisk; i++) {
        int lv = t->disk[i]->level, n = 0;
        for (size_t j = 0; j < t->ndisk; j++)
            n += t->disk[j]->level == lv;
        if (n >= MERGE_FACTOR && (best < 0 || lv < best))
            best = lv;
    }
    mjob_t *j = best < 0 ? NULL : ck_calloc(1, sizeof(*j));
    if (j)
        j->in = ck_calloc(MERGE_FACTOR, sizeof(*j->in));
    if (!j || !j->in) {
        if (j)
            ck_free(j);
        pthread_mutex_unlock(&t->mu);
        return;
    }
    for (size_t i = 0; i < t->ndisk && j->n < MERGE_FACTOR; i++)
        if (t->disk[i]->level == best)
            j->in[j->n++] = sseg_ref(t->disk[i]);
    j->level = best;
    j->t = t;
    ck_capreg_ref(&t->node);
    t->merging = true;
    pthread_mutex_unlock(&t->mu);
    mq_push(s, j);
}

static void mq_push(ck_sidx_t *s, mjob_t *j)
{
    pthread_mutex_lock(&s->qmu);
    mjob_t **pp = &s->qhead;
    while (*pp)
        pp = &(*pp)->next;
    *pp = j;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
}

typedef struct keep_ctx {
    sseg_t **in;
    const int64_t *log_start;
    int32_t npart;
} keep_ctx_t;

static bool keep_live(void *ctx, size_t seg, uint32_t doc)
{
    keep_ctx_t *k = ctx;
    int32_t p;
    int64_t off, ts;
    ck_segment_doc(k->in[seg]->seg, doc, &p, &off, &ts);
    return p < 0 || p >= k->npart || off >= k->log_start[p];
}

static void run_merge(mjob_t *j)
{
    stopic_t *t = j->t;
    pthread_mutex_lock(&t->mu);
    int32_t npart = t->npart;
    int64_t *ls = ck_malloc(sizeof(int64_t) * (size_t)(npart ? npart : 1));
    if (ls)
        memcpy(ls, t->log_start, sizeof(int64_t) * (size_t)npart);
    uint64_t gen = t->next_gen++;
    bool gone = t->gone;
    pthread_mutex_unlock(&t->mu);
    int rc = ls ? 0 : CK_ENOMEM;
    sseg_t *g = NULL;
    if (!rc && !gone) {
        keep_ctx_t k = {j->in, ls, npart};
        uint8_t *img;
        size_t len;
        rc = merge_images(j->in, j->n, keep_live, &k, &img, &len);
        if (!rc)
            rc = persist_segment(t, img, len, gen, j->level + 1, &g);
    }
    ck_free(ls);
    pthread_mutex_lock(&t->mu);
    /* the inputs may have expired meanwhile; then this merge is stale */
    size_t found = 0;
    for (size_t i = 0; i < j->n; i++)
        found += listed_gen(t, j->in[i]->gen);
    bool ok = !rc && g && !t->gone && found == j->n;
    if (ok) {
        sseg_t **keep = ck_calloc(t->ndisk + 1, sizeof(*keep));
        size_t nk = 0;
        if (!keep) {
            ok = false;
        } else {
            bool placed = false;
            for (size_t i = 0; i < t->ndisk; i++) {
                bool input = false;
                for (size_t k = 0; k < j->n; k++)
                    input |= t->disk[i] == j->in[k];
                if (!input)
                    keep[nk++] = t->disk[i];
                else if (!placed) {
                    keep[nk++] = g;
                    placed = true;
                }
            }
            sseg_t **old = t->disk;
            size_t nold = t->ndisk;
            t->disk = keep;
            t->ndisk = nk;
            if (commit_locked(t)) {
                t->disk = old;
                t->ndisk = nold;
                ck_free(keep);
                ok = false;
            } else {
                ck_free(old);
                publish_locked(t);
                t->merges++;
            }
        }
    }
    t->merging = false;
    pthread_mutex_unlock(&t->mu);
    char fin[1300];
    if (ok) {
        for (size_t i = 0; i < j->n; i++) {
            seg_path(t, j->in[i]->gen, "cks", fin, sizeof(fin));
            unlink(fin);
            sseg_unref(j->in[i]); /* the list's reference */
        }
    } else if (g) {
        seg_path(t, g->gen, "cks", fin, sizeof(fin));
        unlink(fin);
        sseg_unref(g);
        if (rc)
            CK_WARN("search", "%s: merge failed: %s", t->name, ck_strerror(rc));
    }
}

static void *merger_main(void *arg)
{
    ck_sidx_t *s = arg;
    pthread_mutex_lock(&s->qmu);
    for (;;) {
        while (!s->qhead && !s->stop)
            pthread_cond_wait(&s->qcv, &s->qmu);
        mjob_t *j = s->qhead;
        if (!j)
            break; /* stopping and drained */
        s->qhead = j->next;
        pthread_mutex_unlock(&s->qmu);
        if (!s->stop) {
            if (j->flush)
                run_flush(j);
            else
                run_merge(j);
        } else {
            pthread_mutex_lock(&j->t->mu);
            if (j->flush)
                j->t->mem_inflight = 0;
            else
                j->t->merging = false;
            pthread_mutex_unlock(&j->t->mu);
        }
        for (size_t i = 0; i < j->n; i++)
            sseg_unref(j->in[i]);
        ck_free(j->in);
        ck_free(j->ckpt);
        topic_unref(j->t);
        ck_free(j);
        pthread_mutex_lock(&s->qmu);
    }
    pthread_mutex_unlock(&s->qmu);
    return NULL;
}

/* ---- drop / close ---- */

static void unlink_open(ck_sidx_t *s, stopic_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->gone = true;
    pthread_mutex_unlock(&t->mu);
    if (ck_capreg_remove(&s->reg, &t->node))
        topic_unref(t);
}

static void op_drop(void *cap, ck_idx_topic_t *it)
{
    ck_sidx_t *s = cap;
    stopic_t *t = it->priv;
    if (!t)
        return;
    unlink_open(s, t);
    ck_rmtree(t->dir);
    CK_INFO("search", "%s: search index removed", t->name);
    t->it = NULL;
    it->priv = NULL;
    topic_unref(t);
}

static void op_close(void *cap, ck_idx_topic_t *it)
{
    ck_sidx_t *s = cap;
    stopic_t *t = it->priv;
    if (!t)
        return;
    unlink_open(s, t);
    t->it = NULL;
    it->priv = NULL;
    topic_unref(t);
}

static bool op_enabled(const ck_topic_t *tp)
{
    const char *v = ck_topic_config(tp, "searchable", NULL);
    if (!v)
        v = ck_topic_config(tp, "searchable.enabled", NULL);
    return v && !strcasecmp(v, "true");
}

const ck_capability_ops_t ck_sidx_ops = {
    .name = "searchable",
    .enabled = op_enabled,
    .open_topic = op_open,
    .config_topic = op_config,
    .apply = op_apply,
    .idle = op_idle,
    .drop_topic = op_drop,
    .close_topic = op_close,
};

/* ---- readers ---- */

ck_sidx_snap_t *ck_sidx_acquire(ck_sidx_t *s, const char *index)
{
    snap_t *sn = NULL;
    ck_capreg_node_t *n = ck_capreg_get(&s->reg, index);
    if (!n)
        return NULL;
    stopic_t *t = topic_of(n);
    pthread_mutex_lock(&t->mu);
    sn = t->snap;
    if (sn)
        atomic_fetch_add(&sn->refs, 1);
    pthread_mutex_unlock(&t->mu);
    topic_unref(t);
    return sn ? &sn->pub : NULL;
}

void ck_sidx_release(ck_sidx_snap_t *snap)
{
    if (snap)
        snap_unref((snap_t *)((char *)snap - offsetof(snap_t, pub)));
}

bool ck_sidx_live(void *ctx, size_t seg, uint32_t doc)
{
    const ck_sidx_snap_t *sn = ctx;
    int32_t p;
    int64_t off, ts;
    ck_segment_doc(sn->segs[seg], doc, &p, &off, &ts);
    return p < 0 || p >= sn->npart || off >= sn->log_start[p];
}

int ck_sidx_list(ck_sidx_t *s, char ***names)
{
    return ck_capreg_names(&s->reg, names);
}

bool ck_sidx_stats(ck_sidx_t *s, const char *index, ck_sidx_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    ck_capreg_node_t *n = ck_capreg_get(&s->reg, index);
    if (!n)
        return false;
    stopic_t *t = topic_of(n);
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->ndisk; i++) {
        st->docs += t->disk[i]->ndocs;
        st->disk_bytes += t->disk[i]->len;
    }
    for (size_t i = 0; i < t->nmem; i++) {
        st->docs += t->mem[i]->ndocs;
        st->mem_bytes += t->mem[i]->len;
    }
    st->segments_disk = (uint32_t)t->ndisk;
    st->segments_mem = (uint32_t)t->nmem;
    st->merges = t->merges;
    st->merging = t->merging;
    st->flushes = t->flushes;
    st->refreshes = t->refreshes;
    pthread_mutex_unlock(&t->mu);
    topic_unref(t);
    return true;
}

/* ---- lifecycle ---- */

int ck_sidx_new(const ck_sidx_config_t *cfg, ck_sidx_t **out)
{
    ck_sidx_t *s = ck_calloc(1, sizeof(*s));
    if (!s)
        return CK_ENOMEM;
    s->cfg = *cfg;
    if (s->cfg.flush_ms <= 0)
        s->cfg.flush_ms = 30000;
    if (!s->cfg.flush_bytes)
        s->cfg.flush_bytes = 64u << 20;
    s->nlanes = cfg->index_threads;
    if (s->nlanes <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        s->nlanes = cpus >= 2 ? 2 : 1;
    }
    if (s->nlanes > MAX_LANES)
        s->nlanes = MAX_LANES;
    s->dir = ck_strdup(cfg->dir);
    ck_capreg_init(&s->reg);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    lpool_t *p = &s->pool;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < MAX_LANES; i++) {
        p->tasks[i].pool = p;
        p->tasks[i].lane = i;
    }
    int rc = s->dir ? ck_mkdirs(s->dir) : CK_ENOMEM;
    if (!rc && pthread_create(&s->merger, NULL, merger_main, s) != 0)
        rc = CK_ENOMEM;
    if (!rc)
        s->merger_started = true;
    for (int i = 1; !rc && i < s->nlanes; i++) {
        if (pthread_create(&p->th[i - 1], NULL, helper_main, &p->tasks[i]) != 0)
            rc = CK_ENOMEM;
        else
            p->nhelpers = i;
    }
    if (rc) {
        ck_sidx_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void ck_sidx_free(ck_sidx_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->qmu);
    s->stop = true;
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    if (s->merger_started)
        pthread_join(s->merger, NULL);
    lpool_t *p = &s->pool;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nhelpers; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    for (ck_capreg_node_t *n; (n = ck_capreg_pop(&s->reg));)
        topic_unref(topic_of(n));
    ck_capreg_destroy(&s->reg);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcv);
    ck_free(s->dir);
    ck_free(s);
}
