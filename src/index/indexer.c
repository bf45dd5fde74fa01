/* The indexer (see indexer.h). Loop side: one `ltopic_t` per (capability, topic) with a
 * read cursor per partition. Worker side: a FIFO of jobs per capability.
 *
 * Open handshake: the loop sends OPEN with a generation number and stops feeding; the
 * worker opens the topic, stores the next offsets in `start[]` and publishes the
 * generation in `ready_gen`; the loop then sets its cursors from `start[]`. Jobs are
 * handled in order, so data read before an OPEN is applied before the worker reports. */
#include "index/indexer.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/logging.h"

#define READ_CHUNK ((size_t)1 << 20)
#define QUEUE_LIMIT ((size_t)4 << 20) /* bytes queued per worker: bounds how long a
                                               * new topic waits behind a busy one */
#define IDLE_EVERY_MS 50
#define RETRY_MS 5000

enum { J_OPEN, J_CONFIG, J_DATA, J_DROP, J_CLOSE, J_STOP };

typedef struct cap cap_t;

typedef struct itopic {
    ck_idx_topic_t pub; /* first: ck_idx_topic_t * converts to itopic_t * */
    ck_indexer_t *ix;
    _Atomic int refs;
    _Atomic uint32_t ready_gen; /* generation of the last completed open */
    _Atomic bool failed;        /* open/apply failed: the loop stops feeding until retry */
    int64_t *start;             /* from the last open (worker writes before ready_gen) */
    int64_t *next;              /* worker: next offset to apply per partition */
    int32_t wnpart;             /* worker: partitions of `next` */
} itopic_t;

typedef struct job {
    struct job *next;
    int kind;
    itopic_t *t;
    uint32_t gen;
    int32_t partition;
    int32_t npart;
    ck_kvs_t configs;
    uint8_t *data;
    size_t len;
} job_t;

typedef struct ltopic {
    itopic_t *t;
    uint8_t id[16];
    int32_t npart;
    uint64_t cfg_hash;
    uint32_t gen;      /* generation of the last OPEN sent */
    bool fed;          /* cursors set from the worker's start[] */
    int64_t *cursor;   /* next offset to read per partition */
    int64_t retry_at;  /* after a failure: when to re-open */
} ltopic_t;

struct cap {
    ck_indexer_t *ix;
    const ck_capability_ops_t *ops;
    void *cap;
    pthread_t thr;
    bool started;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    job_t *head, *tail;
    _Atomic size_t queued;
    ltopic_t **lt; /* guarded by ix->mu for readers on other threads */
    int nlt, clt;
    int rr; /* round-robin start for feeding */
};

struct ck_indexer {
    ck_topics_t *topics;
    cap_t **caps;
    int ncaps;
    pthread_mutex_t mu; /* topic lists (for readers), statuses, visibility waits */
    pthread_cond_t vis;
    void (*kick)(void *);
    void *kick_arg;
    bool cancelled; /* under mu */
    ck_wbuf_t rbuf;
};

/* ---------------------------------------------------------------- shared topics */

static void itopic_unref(itopic_t *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    ck_free(t->pub.name);
    ck_free(t->pub.parts);
    ck_kvs_free(&t->pub.configs);
    ck_free(t->start);
    ck_free(t->next);
    ck_free(t);
}

void ck_idx_topic_set_visible(ck_idx_topic_t *pt, int32_t partition, int64_t next_offset)
{
    itopic_t *t = (itopic_t *)pt;
    pthread_mutex_lock(&t->ix->mu);
    if (partition >= 0 && partition < pt->npart && atomic_load(&pt->parts[partition].visible) != next_offset) {
        atomic_store(&pt->parts[partition].visible, next_offset);
        pthread_cond_broadcast(&t->ix->vis);
    }
    pthread_mutex_unlock(&t->ix->mu);
}

int64_t ck_idx_topic_log_start(ck_idx_topic_t *pt, int32_t partition)
{
    itopic_t *t = (itopic_t *)pt;
    int64_t v = 0;
    pthread_mutex_lock(&t->ix->mu);
    if (partition >= 0 && partition < pt->npart)
        v = atomic_load(&pt->parts[partition].log_start);
    pthread_mutex_unlock(&t->ix->mu);
    return v;
}

void ck_idx_topic_reopen(ck_idx_topic_t *pt)
{
    atomic_store(&((itopic_t *)pt)->failed, true);
}

void ck_idx_topic_set_status(ck_idx_topic_t *pt, const char *fmt, ...)
{
    itopic_t *t = (itopic_t *)pt;
    char buf[sizeof(pt->status)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&t->ix->mu);
    memcpy(pt->status, buf, sizeof(buf));
    pthread_mutex_unlock(&t->ix->mu);
}

/* ---------------------------------------------------------------- worker */

static void job_free(job_t *j)
{
    if (j->t)
        itopic_unref(j->t);
    ck_kvs_free(&j->configs);
    ck_free(j->data);
    ck_free(j);
}

static void push(cap_t *c, job_t *j)
{
    if (j->t)
        atomic_fetch_add(&j->t->refs, 1);
    atomic_fetch_add(&c->queued, j->len);
    pthread_mutex_lock(&c->qmu);
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    pthread_cond_signal(&c->qcv);
    pthread_mutex_unlock(&c->qmu);
}

static int resize_parts(itopic_t *t, int32_t npart)
{
    if (npart <= t->wnpart)
        return 0;
    int64_t *n = ck_realloc(t->next, sizeof(int64_t) * (size_t)npart);
    if (!n)
        return CK_ENOMEM;
    for (int32_t p = t->wnpart; p < npart; p++)
        n[p] = 0;
    t->next = n;
    t->wnpart = npart;
    return 0;
}

static void do_open(cap_t *c, job_t *j)
{
    itopic_t *t = j->t;
    ck_kvs_free(&t->pub.configs);
    t->pub.configs = j->configs;
    j->configs = (ck_kvs_t){0};
    int rc = resize_parts(t, j->npart);
    int64_t *start = rc ? NULL : ck_calloc((size_t)j->npart, sizeof(int64_t));
    if (!rc && !start)
        rc = CK_ENOMEM;
    if (!rc)
        rc = c->ops->open_topic(c->cap, &t->pub, start);
    if (rc) {
        CK_WARN("index", "%s: cannot open topic %s: %s", c->ops->name, t->pub.name, ck_strerror(rc));
        if (!t->pub.status[0])
            ck_idx_topic_set_status(&t->pub, "open failed: %s", ck_strerror(rc));
        ck_free(start);
        atomic_store(&t->failed, true);
        return;
    }
    for (int32_t p = 0; p < j->npart; p++)
        t->next[p] = start[p];
    if (t->pub.status[0])
        ck_idx_topic_set_status(&t->pub, "%s", "");
    ck_free(t->start);
    t->start = start;
    atomic_store(&t->failed, false);
    pthread_mutex_lock(&t->ix->mu);
    atomic_store_explicit(&t->ready_gen, j->gen, memory_order_release);
    pthread_cond_broadcast(&t->ix->vis);
    pthread_mutex_unlock(&t->ix->mu);
}

static void do_data(cap_t *c, job_t *j, ck_wbuf_t *scratch, ck_record_t **recs, int *crecs)
{
    itopic_t *t = j->t;
    if (atomic_load(&t->failed) || j->partition >= t->wnpart)
        return;
    const uint8_t *p = j->data, *end = j->data + j->len;
    while (p < end) {
        int64_t sz = ck_batch_total_size(p, (size_t)(end - p));
        if (sz <= 0 || sz > end - p)
            break;
        ck_batch_iter_t it;
        int rc = ck_batch_iter_init(&it, p, (size_t)sz, scratch);
        p += sz;
        if (rc) {
            CK_WARN("index", "%s: %s-%d: undecodable batch at %lld skipped: %s", c->ops->name, t->pub.name,
                    j->partition, (long long)it.hdr.base_offset, ck_strerror(rc));
            continue;
        }
        if (it.hdr.base_offset + it.hdr.last_offset_delta < t->next[j->partition])
            continue;
        int n = 0;
        ck_record_t r;
        while ((rc = ck_batch_iter_next(&it, &r)) == 1) {
            if (r.offset < t->next[j->partition])
                continue;
            if (n == *crecs) {
                int nc = *crecs ? *crecs * 2 : 256;
                ck_record_t *nr = ck_realloc(*recs, sizeof(ck_record_t) * (size_t)nc);
                if (!nr) {
                    rc = CK_ENOMEM;
                    break;
                }
                *recs = nr;
                *crecs = nc;
            }
            (*recs)[n++] = r;
        }
        if (rc < 0) {
            CK_WARN("index", "%s: %s-%d: bad records in batch at %lld: %s", c->ops->name, t->pub.name, j->partition,
                    (long long)it.hdr.base_offset, ck_strerror(rc));
        }
        ck_idx_batch_t b = {j->partition, (it.hdr.attributes & 0x08) ? 1 : 0, (it.hdr.attributes & 0x20) != 0, n,
                            *recs, (it.hdr.attributes & CK_ATTR_CODEC_MASK) != 0};
        if (b.control)
            b.n = 0;
        if (b.n > 0) {
            rc = c->ops->apply(c->cap, &t->pub, &b);
            if (rc) {
                CK_WARN("index", "%s: %s-%d: apply failed at offset %lld: %s (retrying in %d s)", c->ops->name,
                        t->pub.name, j->partition, (long long)(*recs)[0].offset, ck_strerror(rc), RETRY_MS / 1000);
                ck_idx_topic_set_status(&t->pub, "indexing stopped at %s-%d offset %lld: %s (retrying)",
                                        t->pub.name, j->partition, (long long)(*recs)[0].offset, ck_strerror(rc));
                atomic_store(&t->failed, true);
                return;
            }
        }
        t->next[j->partition] = it.hdr.base_offset + it.hdr.last_offset_delta + 1;
    }
}

static void *worker_main(void *arg)
{
    cap_t *c = arg;
    ck_wbuf_t scratch = CK_WBUF_INIT;
    ck_record_t *recs = NULL;
    int crecs = 0;
    int64_t last_idle = ck_mono_ms();
    bool stop = false;
    while (!stop) {
        pthread_mutex_lock(&c->qmu);
        if (!c->head) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += IDLE_EVERY_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->qcv, &c->qmu, &ts);
        }
        job_t *j = c->head;
        if (j) {
            c->head = j->next;
            if (!c->head)
                c->tail = NULL;
        }
        bool empty = c->head == NULL;
        pthread_mutex_unlock(&c->qmu);
        bool was_data = j && j->kind == J_DATA;
        if (j) {
            switch (j->kind) {
            case J_OPEN: do_open(c, j); break;
            case J_CONFIG:
                ck_kvs_free(&j->t->pub.configs);
                j->t->pub.configs = j->configs;
                j->configs = (ck_kvs_t){0};
                if (c->ops->config_topic && atomic_load(&j->t->ready_gen))
                    c->ops->config_topic(c->cap, &j->t->pub);
                break;
            case J_DATA: do_data(c, j, &scratch, &recs, &crecs); break;
            case J_DROP: c->ops->drop_topic(c->cap, &j->t->pub); break;
            case J_CLOSE: c->ops->close_topic(c->cap, &j->t->pub); break;
            case J_STOP: stop = true; break;
            }
            size_t before = atomic_fetch_sub(&c->queued, j->len);
            if (j->len && before >= QUEUE_LIMIT / 2 && before - j->len < QUEUE_LIMIT / 2 && c->ix->kick)
                c->ix->kick(c->ix->kick_arg);
            job_free(j);
        }
        int64_t now = ck_mono_ms();
        if (!stop && (empty || now - last_idle >= IDLE_EVERY_MS)) {
            c->ops->idle(c->cap, now);
            last_idle = now;
            if (empty && was_data && c->ix->kick)
                c->ix->kick(c->ix->kick_arg);
        }
    }
    ck_wbuf_free(&scratch);
    ck_free(recs);
    return NULL;
}

/* ---------------------------------------------------------------- loop side */

int ck_indexer_new(ck_topics_t *topics, ck_indexer_t **out)
{
    ck_indexer_t *ix = ck_calloc(1, sizeof(*ix));
    if (!ix)
        return CK_ENOMEM;
    ix->topics = topics;
    pthread_mutex_init(&ix->mu, NULL);
    pthread_cond_init(&ix->vis, NULL);
    *out = ix;
    return 0;
}

void ck_indexer_set_kick(ck_indexer_t *ix, void (*kick)(void *), void *arg)
{
    ix->kick = kick;
    ix->kick_arg = arg;
}

int ck_indexer_add(ck_indexer_t *ix, const ck_capability_ops_t *ops, void *capd)
{
    cap_t *c = ck_calloc(1, sizeof(*c));
    cap_t **nc = ck_realloc(ix->caps, sizeof(cap_t *) * (size_t)(ix->ncaps + 1));
    if (!c || !nc) {
        ck_free(c);
        if (nc)
            ix->caps = nc;
        return CK_ENOMEM;
    }
    ix->caps = nc;
    c->ix = ix;
    c->ops = ops;
    c->cap = capd;
    pthread_mutex_init(&c->qmu, NULL);
    pthread_cond_init(&c->qcv, NULL);
    if (pthread_create(&c->thr, NULL, worker_main, c) != 0) {
        ck_free(c);
        return CK_ENOMEM;
    }
    c->started = true;
    char tn[16];
    snprintf(tn, sizeof(tn), "ck-%.12s", ops->name);
    pthread_setname_np(c->thr, tn);
    ix->caps[ix->ncaps++] = c;
    return 0;
}

static uint64_t cfg_hash(const ck_kvs_t *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < k->count; i++) {
        for (const char *s = k->items[i].key; *s; s++)
            h = (h ^ (uint8_t)*s) * 1099511628211ULL;
        h = (h ^ '=') * 1099511628211ULL;
        for (const char *s = k->items[i].value; *s; s++)
            h = (h ^ (uint8_t)*s) * 1099511628211ULL;
        h = (h ^ ';') * 1099511628211ULL;
    }
    return h;
}

static job_t *new_job(int kind, itopic_t *t)
{
    job_t *j = ck_calloc(1, sizeof(*j));
    if (j) {
        j->kind = kind;
        j->t = t;
    }
    return j;
}

static ck_idx_part_t *new_parts(int32_t n)
{
    ck_idx_part_t *p = ck_calloc((size_t)n, sizeof(*p));
    return p;
}

static void send_open(cap_t *c, ltopic_t *l, ck_topic_t *tp)
{
    job_t *j = new_job(J_OPEN, l->t);
    if (!j || ck_kvs_copy(&j->configs, &tp->configs)) {
        if (j)
            ck_free(j);
        return;
    }
    j->npart = tp->npart;
    j->gen = ++l->gen;
    l->fed = false;
    push(c, j);
}

static ltopic_t *ltopic_new(cap_t *c, ck_topic_t *tp)
{
    ltopic_t *l = ck_calloc(1, sizeof(*l));
    itopic_t *t = ck_calloc(1, sizeof(*t));
    if (!l || !t)
        goto fail;
    t->ix = c->ix;
    atomic_store(&t->refs, 1);
    t->pub.name = ck_strdup(tp->name);
    t->pub.npart = tp->npart;
    t->pub.parts = new_parts(tp->npart);
    l->cursor = ck_calloc((size_t)tp->npart, sizeof(int64_t));
    if (!t->pub.name || !t->pub.parts || !l->cursor)
        goto fail;
    memcpy(t->pub.id, tp->id, 16);
    memcpy(l->id, tp->id, 16);
    l->t = t;
    l->npart = tp->npart;
    l->cfg_hash = cfg_hash(&tp->configs);
    return l;
fail:
    if (t) {
        ck_free(t->pub.name);
        ck_free(t->pub.parts);
        ck_free(t);
    }
    if (l)
        ck_free(l->cursor);
    ck_free(l);
    return NULL;
}

static void ltopic_free(ltopic_t *l)
{
    itopic_unref(l->t);
    ck_free(l->cursor);
    ck_free(l);
}

/* The partition count grew: the shared parts array is replaced (readers hold ix->mu). */
static int ltopic_resize(ck_indexer_t *ix, ltopic_t *l, int32_t npart)
{
    ck_idx_part_t *np = new_parts(npart);
    int64_t *nc = ck_calloc((size_t)npart, sizeof(int64_t));
    if (!np || !nc) {
        ck_free(np);
        ck_free(nc);
        return CK_ENOMEM;
    }
    pthread_mutex_lock(&ix->mu);
    for (int32_t p = 0; p < l->npart; p++) {
        atomic_store(&np[p].visible, atomic_load(&l->t->pub.parts[p].visible));
        atomic_store(&np[p].hw, atomic_load(&l->t->pub.parts[p].hw));
    }
    /* the worker touches pub.parts only under ix->mu (set_visible, log_start) */
    ck_idx_part_t *old = l->t->pub.parts;
    l->t->pub.parts = np;
    l->t->pub.npart = npart;
    pthread_mutex_unlock(&ix->mu);
    ck_free(old);
    ck_free(l->cursor);
    l->cursor = nc;
    l->npart = npart;
    return 0;
}

static void reconcile(ck_indexer_t *ix, cap_t *c, int64_t now)
{
    int ntop = ck_topics_count(ix->topics);
    /* deleted or disabled topics */
    for (int i = 0; i < c->nlt; i++) {
        ltopic_t *l = c->lt[i];
        ck_topic_t *tp = ck_topics_get(ix->topics, l->t->pub.name, (int)strlen(l->t->pub.name));
        if (tp && !memcmp(tp->id, l->id, 16) && c->ops->enabled(tp))
            continue;
        job_t *j = new_job(J_DROP, l->t);
        if (!j)
            continue;
        push(c, j);
        pthread_mutex_lock(&ix->mu);
        c->lt[i] = c->lt[--c->nlt];
        pthread_mutex_unlock(&ix->mu);
        CK_INFO("index", "%s: topic %s %s", c->ops->name, l->t->pub.name, tp ? "disabled" : "deleted");
        ltopic_free(l);
        i--;
    }
    for (int i = 0; i < ntop; i++) {
        ck_topic_t *tp = ck_topics_at(ix->topics, i);
        if (!c->ops->enabled(tp))
            continue;
        ltopic_t *l = NULL;
        for (int k = 0; k < c->nlt && !l; k++)
            if (!memcmp(c->lt[k]->id, tp->id, 16))
                l = c->lt[k];
        if (!l) {
            if (c->nlt == c->clt) {
                int nc = c->clt ? c->clt * 2 : 8;
                ltopic_t **n = ck_realloc(c->lt, sizeof(*n) * (size_t)nc);
                if (!n)
                    continue;
                pthread_mutex_lock(&ix->mu);
                c->lt = n;
                c->clt = nc;
                pthread_mutex_unlock(&ix->mu);
            }
            l = ltopic_new(c, tp);
            if (!l)
                continue;
            pthread_mutex_lock(&ix->mu);
            c->lt[c->nlt++] = l;
            pthread_mutex_unlock(&ix->mu);
            CK_INFO("index", "%s: indexing topic %s (%d partitions)", c->ops->name, tp->name, tp->npart);
            send_open(c, l, tp);
            continue;
        }
        if (tp->npart > l->npart) {
            /* stop feeding, let the queue drain, then resize and re-open */
            l->fed = false;
            if (atomic_load(&c->queued) == 0 && atomic_load(&l->t->ready_gen) == l->gen) {
                if (ltopic_resize(ix, l, tp->npart) == 0)
                    send_open(c, l, tp);
            }
            continue;
        }
        uint64_t h = cfg_hash(&tp->configs);
        if (h != l->cfg_hash) {
            job_t *j = new_job(J_CONFIG, l->t);
            if (j && ck_kvs_copy(&j->configs, &tp->configs) == 0) {
                l->cfg_hash = h;
                push(c, j);
            } else if (j) {
                ck_free(j);
            }
        }
        if (atomic_load(&l->t->failed) && atomic_load(&l->t->ready_gen) == l->gen) {
            if (!l->retry_at)
                l->retry_at = now + RETRY_MS;
            else if (now >= l->retry_at) {
                l->retry_at = 0;
                send_open(c, l, tp);
            }
        }
    }
}

/* Reads one chunk of partition p at its cursor into a job. Returns true if it queued one. */
static bool feed_one(ck_indexer_t *ix, cap_t *c, ltopic_t *l, ck_topic_t *tp, int32_t p)
{
    ck_partition_t *part = tp->parts[p];
    int64_t hw = ck_partition_durable_end(part);
    if (l->cursor[p] >= hw)
        return false;
    int64_t ls = ck_partition_log_start(part);
    if (l->cursor[p] < ls)
        l->cursor[p] = ls;
    ck_wbuf_reset(&ix->rbuf);
    int64_t n = ck_partition_read(part, l->cursor[p], hw, READ_CHUNK, true, &ix->rbuf);
    if (n <= 0) {
        if (n < 0)
            CK_WARN("index", "%s: cannot read %s-%d at %lld: %s", c->ops->name, tp->name, p, (long long)l->cursor[p],
                    ck_strerror((int)n));
        return false;
    }
    /* the cursor moves past the last batch read */
    const uint8_t *b = ix->rbuf.data, *e = ix->rbuf.data + n;
    int64_t last = -1;
    while (e - b >= CK_BATCH_HEADER_SIZE) {
        ck_batch_header_t h;
        ck_batch_header_parse(b, &h);
        int64_t sz = ck_batch_total_size(b, (size_t)(e - b));
        if (sz <= 0 || sz > e - b)
            break;
        last = h.base_offset + h.last_offset_delta;
        b += sz;
    }
    if (last < l->cursor[p])
        return false;
    job_t *j = new_job(J_DATA, l->t);
    if (!j)
        return false;
    j->partition = p;
    j->data = ck_wbuf_steal(&ix->rbuf, &j->len);
    l->cursor[p] = last + 1;
    push(c, j);
    return true;
}

/* Is the topic ready to be fed (cursors set from the worker's start offsets)? */
static ck_topic_t *feedable(ck_indexer_t *ix, ltopic_t *l)
{
    ck_topic_t *tp = ck_topics_get(ix->topics, l->t->pub.name, (int)strlen(l->t->pub.name));
    if (!tp || tp->npart < l->npart)
        return NULL;
    for (int32_t p = 0; p < l->npart; p++) {
        atomic_store(&l->t->pub.parts[p].hw, ck_partition_durable_end(tp->parts[p]));
        atomic_store(&l->t->pub.parts[p].log_start, ck_partition_log_start(tp->parts[p]));
    }
    if (!l->fed) {
        if (tp->npart != l->npart || atomic_load_explicit(&l->t->ready_gen, memory_order_acquire) != l->gen ||
            atomic_load(&l->t->failed))
            return NULL;
        for (int32_t p = 0; p < l->npart; p++)
            l->cursor[p] = l->t->start[p];
        l->fed = true;
    }
    return atomic_load(&l->t->failed) ? NULL : tp;
}

/* Round-robin over topics and partitions, one chunk each per round, so that a topic
 * written at full speed cannot starve the others of the worker's queue. */
static void feed(ck_indexer_t *ix, cap_t *c)
{
    if (c->nlt == 0)
        return;
    ck_topic_t **tps = ck_calloc((size_t)c->nlt, sizeof(*tps));
    if (!tps)
        return;
    for (int i = 0; i < c->nlt; i++)
        tps[i] = feedable(ix, c->lt[i]);
    bool more = true;
    while (more && atomic_load(&c->queued) < QUEUE_LIMIT) {
        more = false;
        for (int k = 0; k < c->nlt && atomic_load(&c->queued) < QUEUE_LIMIT; k++) {
            int i = (c->rr + k) % c->nlt;
            if (!tps[i])
                continue;
            for (int32_t p = 0; p < c->lt[i]->npart && atomic_load(&c->queued) < QUEUE_LIMIT; p++)
                more |= feed_one(ix, c, c->lt[i], tps[i], p);
        }
    }
    c->rr = (c->rr + 1) % c->nlt;
    ck_free(tps);
}

void ck_indexer_poll(ck_indexer_t *ix)
{
    int64_t now = ck_mono_ms();
    for (int i = 0; i < ix->ncaps; i++) {
        reconcile(ix, ix->caps[i], now);
        feed(ix, ix->caps[i]);
    }
}

void ck_indexer_free(ck_indexer_t *ix)
{
    if (!ix)
        return;
    for (int i = 0; i < ix->ncaps; i++) {
        cap_t *c = ix->caps[i];
        for (int k = 0; k < c->nlt; k++) {
            job_t *j = new_job(J_CLOSE, c->lt[k]->t);
            if (j)
                push(c, j);
        }
        job_t *j = new_job(J_STOP, NULL);
        if (j)
            push(c, j);
        if (c->started)
            pthread_join(c->thr, NULL);
        for (job_t *q = c->head; q;) {
            job_t *nx = q->next;
            job_free(q);
            q = nx;
        }
        for (int k = 0; k < c->nlt; k++)
            ltopic_free(c->lt[k]);
        ck_free(c->lt);
        pthread_mutex_destroy(&c->qmu);
        pthread_cond_destroy(&c->qcv);
        ck_free(c);
    }
    ck_free(ix->caps);
    ck_wbuf_free(&ix->rbuf);
    pthread_mutex_destroy(&ix->mu);
    pthread_cond_destroy(&ix->vis);
    ck_free(ix);
}

/* ---------------------------------------------------------------- readers */

static int64_t part_lag(const ck_idx_part_t *p);

static cap_t *find_cap(ck_indexer_t *ix, const char *name)
{
    for (int i = 0; i < ix->ncaps; i++)
        if (!strcmp(ix->caps[i]->ops->name, name))
            return ix->caps[i];
    return NULL;
}

/* Caller holds ix->mu. */
static ltopic_t *find_lt(cap_t *c, const char *topic)
{
    for (int i = 0; i < c->nlt; i++)
        if (!strcmp(c->lt[i]->t->pub.name, topic))
            return c->lt[i];
    return NULL;
}

bool ck_indexer_status(ck_indexer_t *ix, const char *capname, const char *topic, ck_idx_status_t *st,
                       int64_t *visible, int64_t *hw, int npart_max)
{
    memset(st, 0, sizeof(*st));
    cap_t *c = find_cap(ix, capname);
    if (!c)
        return false;
    pthread_mutex_lock(&ix->mu);
    ltopic_t *l = find_lt(c, topic);
    if (l) {
        itopic_t *t = l->t;
        st->enabled = true;
        st->ready = atomic_load(&t->ready_gen) != 0;
        st->npart = t->pub.npart;
        for (int32_t p = 0; p < t->pub.npart; p++) {
            int64_t v = atomic_load(&t->pub.parts[p].visible), h = atomic_load(&t->pub.parts[p].hw);
            int64_t ls = atomic_load(&t->pub.parts[p].log_start);
            if (v < ls)
                v = ls;
            st->lag += part_lag(&t->pub.parts[p]);
            if (p < npart_max) {
                if (visible)
                    visible[p] = v;
                if (hw)
                    hw[p] = h;
            }
        }
        memcpy(st->status, t->pub.status, sizeof(st->status));
    }
    pthread_mutex_unlock(&ix->mu);
    return l != NULL;
}

/* What a waiter waits for; called with ix->mu held. 1 = done, 0 = not yet, <0 = error. */
typedef int (*wait_pred)(ltopic_t *l, const void *arg);

static int wait_for(ck_indexer_t *ix, const char *capname, const char *topic, wait_pred pred, const void *arg,
                    int64_t deadline_ms)
{
    cap_t *c = find_cap(ix, capname);
    if (!c)
        return CK_ENOENT;
    int rc = 0;
    pthread_mutex_lock(&ix->mu);
    for (;;) {
        if (ix->cancelled) {
            rc = CK_ECLOSED;
            break;
        }
        ltopic_t *l = find_lt(c, topic);
        int r = l ? pred(l, arg) : CK_ENOENT;
        if (r) {
            rc = r < 0 ? r : 0;
            break;
        }
        int64_t now = ck_mono_ms();
        if (now >= deadline_ms) {
            rc = CK_EAGAIN;
            break;
        }
        /* wake at least every 100 ms: the topic may be deleted meanwhile */
        int64_t wait = deadline_ms - now < 100 ? deadline_ms - now : 100;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += wait * 1000000L;
        while (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ix->vis, &ix->mu, &ts);
    }
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

typedef struct vis_arg {
    int32_t partition;
    int64_t offset;
} vis_arg_t;

static int visible_reached(ltopic_t *l, const void *arg)
{
    const vis_arg_t *v = arg;
    if (v->partition < 0 || v->partition >= l->t->pub.npart)
        return CK_ENOENT;
    return atomic_load(&l->t->pub.parts[v->partition].visible) >= v->offset;
}

int ck_indexer_wait(ck_indexer_t *ix, const char *capname, const char *topic, int32_t partition, int64_t offset,
                    int64_t deadline_ms)
{
    vis_arg_t v = {partition, offset};
    return wait_for(ix, capname, topic, visible_reached, &v, deadline_ms);
}

static int opened(ltopic_t *l, const void *arg)
{
    (void)arg;
    return atomic_load(&l->t->ready_gen) == l->gen || atomic_load(&l->t->failed);
}

int ck_indexer_wait_ready(ck_indexer_t *ix, const char *capname, const char *topic, int64_t deadline_ms)
{
    return wait_for(ix, capname, topic, opened, NULL, deadline_ms);
}

void ck_indexer_cancel_waits(ck_indexer_t *ix)
{
    pthread_mutex_lock(&ix->mu);
    ix->cancelled = true;
    pthread_cond_broadcast(&ix->vis);
    pthread_mutex_unlock(&ix->mu);
}

/* One gauge family: value(t, p) for every capability/topic/partition. Caller holds ix->mu. */
static void gauge(ck_indexer_t *ix, ck_wbuf_t *out, const char *name, const char *help,
                  int64_t (*value)(const ck_idx_part_t *p))
{
    char line[512];
    int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    if (n > 0 && (size_t)n < sizeof(line))
        ck_wr_bytes(out, line, (size_t)n);
    for (int i = 0; i < ix->ncaps; i++) {
        cap_t *c = ix->caps[i];
        for (int k = 0; k < c->nlt; k++) {
            ck_idx_topic_t *t = &c->lt[k]->t->pub;
            for (int32_t p = 0; p < t->npart; p++) {
                n = snprintf(line, sizeof(line), "%s{capability=\"%s\",topic=\"%s\",partition=\"%d\"} %lld\n", name,
                             c->ops->name, t->name, p, (long long)value(&t->parts[p]));
                if (n > 0 && (size_t)n < sizeof(line))
                    ck_wr_bytes(out, line, (size_t)n);
            }
        }
    }
}

static int64_t part_lag(const ck_idx_part_t *p)
{
    int64_t v = atomic_load(&p->visible), h = atomic_load(&p->hw), ls = atomic_load(&p->log_start);
    if (v < ls)
        v = ls;
    return h > v ? h - v : 0;
}

static int64_t part_visible(const ck_idx_part_t *p) { return atomic_load(&p->visible); }

void ck_indexer_metrics(ck_indexer_t *ix, ck_wbuf_t *out)
{
    pthread_mutex_lock(&ix->mu);
    gauge(ix, out, "chronik_indexer_lag_records", "Durable records not yet visible to a capability's queries.",
          part_lag);
    gauge(ix, out, "chronik_indexer_visible_offset", "Next offset visible to a capability's queries.",
          part_visible);
    pthread_mutex_unlock(&ix->mu);
}
