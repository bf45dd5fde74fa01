/* Per-partition idempotent producer state owned by the broker: lookup, lazy loading
 * (snapshot + log replay), periodic and shutdown snapshots. See idempotence.h and
 * docs/PRODUCER_STATE.md ("Recovery procedure").
 *
 * The table is open addressing (linear probing, load <= 1/2) of entry pointers, hashed on
 * (topic id, partition). It only grows, except when the snapshot round drops the entries
 * of deleted topics, which rebuilds it. */
#include "kafka/idempotence.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/logging.h"
#include "log/batch.h"
#include "log/topics.h"

#define ISSUED_N 1024 /* direct-mapped memory of InitProducerId's answers */
#define REPLAY_CHUNK ((size_t)1 << 20)
#define SNAP_EXT ".snapshot"

typedef struct issued {
    int64_t pid; /* -1: empty */
    int16_t epoch;
} issued_t;

struct ck__idem {
    ck_broker_t *b;
    ck__idem_part_t **slots;
    size_t cap, n;
    ck_timer_t snap_timer;
    issued_t issued[ISSUED_N];
};

static size_t part_hash(const uint8_t id[16], int32_t partition)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    h = (h ^ (uint32_t)partition) * 1099511628211ull;
    return (size_t)(h ^ (h >> 29));
}

static ck__idem_part_t **find_slot(struct ck__idem *m, const uint8_t id[16], int32_t partition)
{
    size_t i = part_hash(id, partition) & (m->cap - 1);
    while (m->slots[i]) {
        ck__idem_part_t *e = m->slots[i];
        if (e->ip_partition == partition && memcmp(e->ip_topic_id, id, 16) == 0)
            return &m->slots[i];
        i = (i + 1) & (m->cap - 1);
    }
    return &m->slots[i];
}

static int table_grow(struct ck__idem *m, size_t cap)
{
    ck__idem_part_t **old = m->slots;
    size_t ocap = m->cap;
    m->slots = ck_calloc(cap, sizeof(*m->slots));
    if (!m->slots) {
        m->slots = old;
        return CK_ENOMEM;
    }
    m->cap = cap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i])
            *find_slot(m, old[i]->ip_topic_id, old[i]->ip_partition) = old[i];
    ck_free(old);
    return 0;
}

/* ---- snapshot files ---- */

/* "<20 digits>.snapshot" → offset, or -1. */
static int64_t snap_offset_of(const char *name)
{
    if (strlen(name) != 20 + strlen(SNAP_EXT) || strcmp(name + 20, SNAP_EXT) != 0)
        return -1;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x > y ? -1 : x < y;
}

/* The snapshot offsets in dir, newest first (*out the caller's to free). */
static int list_snapshots(const char *dir, int64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : CK_EIO;
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int64_t off = snap_offset_of(de->d_name);
        if (off < 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            int64_t *x = ck_realloc(*out, cap * sizeof(*x));
            if (!x) {
                rc = CK_ENOMEM;
                break;
            }
            *out = x;
        }
        (*out)[(*n)++] = off;
    }
    closedir(d);
    if (rc) {
        ck_free(*out);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1)
        qsort(*out, *n, sizeof(**out), cmp_desc);
    return 0;
}

static void snap_path(char *buf, size_t len, const char *dir, int64_t off)
{
    char name[CK_PSTATE_SNAPSHOT_NAME_MAX];
    ck_pstate_snapshot_name(name, off);
    snprintf(buf, len, "%s/%s", dir, name);
}

/* Recovery step 2: snapshots above the recovered log end describe batches a crash took
 * away, whose offsets new batches will reuse. */
static void drop_future_snapshots(ck_partition_t *p)
{
    int64_t *offs;
    size_t n;
    if (list_snapshots(ck_partition_dir(p), &offs, &n) != 0)
        return;
    int64_t end = ck_partition_log_end(p);
    for (size_t i = 0; i < n && offs[i] > end; i++) {
        char path[4096];
        snap_path(path, sizeof(path), ck_partition_dir(p), offs[i]);
        CK_INFO("kafka", "removing producer-state snapshot %s above the log end %lld", path,
                (long long)end);
        unlink(path);
    }
    ck_free(offs);
}

/* ---- loading ---- */

/* Replays [from, log end) of p into s. */
static int replay(ck_partition_t *p, ck_pstate_t *s, int64_t from)
{
    int64_t end = ck_partition_log_end(p);
    ck_wbuf_t buf = CK_WBUF_INIT;
    int rc = 0;
    while (from < end) {
        ck_wbuf_reset(&buf);
        int64_t n = ck_partition_read(p, from, end, REPLAY_CHUNK, true, &buf);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0)
            break;
        rc = ck_pstate_update_from_batches(s, buf.data, (size_t)n);
        if (rc)
            break;
        int64_t next = from;
        for (size_t pos = 0; pos + CK_BATCH_HEADER_SIZE <= (size_t)n;) {
            ck_batch_header_t h;
            ck_batch_header_parse(buf.data + pos, &h);
            next = h.base_offset + h.last_offset_delta + 1;
            pos += (size_t)h.batch_length + 12;
        }
        if (next <= from)
            break; /* cannot happen with whole batches; never loop forever */
        from = next;
    }
    ck_wbuf_free(&buf);
    return rc;
}

static int load(ck_partition_t *p, const char *what, ck__idem_part_t *e)
{
    const char *dir = ck_partition_dir(p);
    int64_t start = ck_partition_log_start(p), end = ck_partition_log_end(p);
    int64_t *offs;
    size_t n;
    int rc = list_snapshots(dir, &offs, &n);
    if (rc == CK_ENOMEM)
        return rc;
    ck_pstate_t *s = NULL;
    int64_t from = start;
    for (size_t i = 0; i < n && !s; i++) {
        char path[4096];
        snap_path(path, sizeof(path), dir, offs[i]);
        if (offs[i] > end) {
            unlink(path);
            continue;
        }
        int64_t next;
        rc = ck_pstate_snapshot_read(path, &s, &next);
        if (rc == 0) {
            e->ip_snap_offset = offs[i];
            if (next > from)
                from = next;
        } else if (rc == CK_ENOMEM) {
            ck_free(offs);
            return rc;
        } else {
            CK_WARN("kafka", "%s: producer-state snapshot %s unusable (%s)%s", what, path,
                    ck_strerror(rc), rc == CK_ECORRUPT ? ", removed" : "");
            if (rc == CK_ECORRUPT)
                unlink(path);
        }
    }
    ck_free(offs);
    if (!s && !(s = ck_pstate_new()))
        return CK_ENOMEM;
    if (end - from > CK__IDEM_REPLAY_MAX_OFFSETS) {
        CK_WARN("kafka", "%s: replaying only the last %lld offsets for producer state", what,
                (long long)CK__IDEM_REPLAY_MAX_OFFSETS);
        from = end - CK__IDEM_REPLAY_MAX_OFFSETS;
    }
    int64_t t0 = ck_mono_ms();
    rc = replay(p, s, from);
    if (rc == CK_ENOMEM) {
        ck_pstate_free(s);
        return rc;
    }
    if (rc)
        CK_WARN("kafka", "%s: producer-state replay stopped early: %s", what, ck_strerror(rc));
    ck_pstate_expire(s, ck_wall_ms(), CK_PSTATE_DEFAULT_EXPIRATION_MS);
    CK_DEBUG("kafka",
             "%s: producer state of %zu producers loaded (replayed %lld offsets in %lld ms)", what,
             ck_pstate_count(s), (long long)(end - from), (long long)(ck_mono_ms() - t0));
    e->ip_state = s;
    return 0;
}

ck__idem_part_t *ck__idem_part(ck_broker_t *b, ck_topic_t *t, int32_t partition)
{
    struct ck__idem *m = b->idem;
    if (!m || partition < 0 || partition >= t->npart)
        return NULL;
    ck__idem_part_t **slot = find_slot(m, t->id, partition);
    if (*slot)
        return *slot;
    if ((m->n + 1) * 2 > m->cap) {
        if (table_grow(m, m->cap * 2))
            return NULL;
        slot = find_slot(m, t->id, partition);
    }
    ck__idem_part_t *e = ck_calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    memcpy(e->ip_topic_id, t->id, 16);
    e->ip_partition = partition;
    e->ip_snap_offset = -1;
    char what[300];
    snprintf(what, sizeof(what), "%s-%d", t->name, (int)partition);
    if (load(t->parts[partition], what, e) != 0) {
        CK_WARN("kafka", "%s: out of memory loading producer state", what);
        ck_free(e);
        return NULL;
    }
    *slot = e;
    m->n++;
    return e;
}

/* ---- snapshots ---- */

/* Writes e's state as of the log end, then removes snapshots older than the previous one
 * (two are kept: the newest may be discarded at the next start if a crash takes the
 * unsynced log tail it covers). */
static void snapshot(ck_partition_t *p, const char *tname, ck__idem_part_t *e)
{
    const char *dir = ck_partition_dir(p);
    int64_t off = ck_partition_log_end(p);
    char path[4096];
    snap_path(path, sizeof(path), dir, off);
    int rc = ck_pstate_snapshot_write(e->ip_state, path, off);
    if (rc) {
        CK_WARN("kafka", "%s-%d: cannot write producer-state snapshot %s: %s", tname,
                (int)e->ip_partition, path, ck_strerror(rc));
        return;
    }
    int64_t keep = e->ip_snap_offset >= 0 && e->ip_snap_offset < off ? e->ip_snap_offset : off;
    e->ip_snap_offset = off;
    e->ip_dirty = false;
    int64_t *offs;
    size_t n;
    if (list_snapshots(dir, &offs, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (offs[i] < keep) {
            snap_path(path, sizeof(path), dir, offs[i]);
            unlink(path);
        }
    ck_free(offs);
}

/* One round: drops entries of deleted topics, expires idle producers, snapshots what
 * changed. */
static void snapshot_round(struct ck__idem *m)
{
    ck_broker_t *b = m->b;
    int64_t now = ck_wall_ms();
    size_t dropped = 0;
    for (size_t i = 0; i < m->cap; i++) {
        ck__idem_part_t *e = m->slots[i];
        if (!e)
            continue;
        ck_topic_t *t = ck_topics_by_id(b->topics, e->ip_topic_id);
        if (!t || e->ip_partition >= t->npart) {
            ck_pstate_free(e->ip_state);
            ck_free(e);
            m->slots[i] = NULL;
            dropped++;
            continue;
        }
        if (ck_pstate_expire(e->ip_state, now, CK_PSTATE_DEFAULT_EXPIRATION_MS) > 0)
            e->ip_dirty = true;
        if (e->ip_dirty)
            snapshot(t->parts[e->ip_partition], t->name, e);
    }
    if (dropped) {
        m->n -= dropped;
        table_grow(m, m->cap); /* rehash: probing must not cross the holes */
    }
}

static void snap_timer_cb(ck_timer_t *tm)
{
    struct ck__idem *m = tm->data;
    snapshot_round(m);
    ck_timer_start(m->b->loop, tm, ck_mono_ms() + CK__IDEM_SNAPSHOT_MS);
}

int ck_broker_set_pids(ck_broker_t *b, struct ck_pid *pids)
{
    struct ck__idem *m = ck_calloc(1, sizeof(*m));
    if (!m || !(m->slots = ck_calloc(64, sizeof(*m->slots)))) {
        ck_free(m);
        return CK_ENOMEM;
    }
    m->b = b;
    m->cap = 64;
    for (int i = 0; i < ISSUED_N; i++)
        m->issued[i].pid = -1;
    int nt = ck_topics_count(b->topics);
    for (int i = 0; i < nt; i++) {
        ck_topic_t *t = ck_topics_at(b->topics, i);
        for (int32_t p = 0; p < t->npart; p++)
            drop_future_snapshots(t->parts[p]);
    }
    ck_timer_init(&m->snap_timer, snap_timer_cb, m);
    ck_timer_start(b->loop, &m->snap_timer, ck_mono_ms() + CK__IDEM_SNAPSHOT_MS);
    b->pids = pids;
    b->idem = m;
    return 0;
}

void ck__idem_close(ck_broker_t *b)
{
    struct ck__idem *m = b->idem;
    if (!m)
        return;
    ck_timer_stop(b->loop, &m->snap_timer);
    snapshot_round(m);
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i]) {
            ck_pstate_free(m->slots[i]->ip_state);
            ck_free(m->slots[i]);
        }
    ck_free(m->slots);
    ck_free(m);
    b->idem = NULL;
    b->pids = NULL;
}

/* ---- InitProducerId support ---- */

void ck__idem_issued(ck_broker_t *b, int64_t pid, int16_t epoch)
{
    if (!b->idem || pid < 0)
        return;
    issued_t *is = &b->idem->issued[(uint64_t)pid % ISSUED_N];
    is->pid = pid;
    is->epoch = epoch;
}

bool ck__idem_known_epoch(ck_broker_t *b, int64_t pid, int16_t *epoch)
{
    struct ck__idem *m = b->idem;
    if (!m || pid < 0)
        return false;
    bool known = false;
    issued_t *is = &m->issued[(uint64_t)pid % ISSUED_N];
    if (is->pid == pid) {
        known = true;
        *epoch = is->epoch;
    }
    /* Every partition may hold a newer epoch (or, after a restart, the only trace of
     * pid): load them all. Rare (a client re-initialising after an error). */
    int nt = ck_topics_count(b->topics);
    for (int i = 0; i < nt; i++) {
        ck_topic_t *t = ck_topics_at(b->topics, i);
        for (int32_t p = 0; p < t->npart; p++) {
            ck__idem_part_t *e = ck__idem_part(b, t, p);
            ck_pstate_producer_t pr;
            if (e && ck_pstate_get(e->ip_state, pid, &pr) == 0 && (!known || pr.epoch > *epoch)) {
                known = true;
                *epoch = pr.epoch;
            }
        }
    }
    return known;
}
