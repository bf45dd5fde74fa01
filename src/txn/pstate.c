/* Per-partition idempotent producer state, and its snapshot file.
 *
 * SNAPSHOT FORMAT (also docs/PRODUCER_STATE.md). All integers big-endian, like the log.
 *
 *   <partition folder>/<20-digit next_offset>.snapshot
 *
 *    0  4  magic "CKPS"
 *    4  2  version (1)
 *    6  2  flags (0)
 *    8  8  next_offset: the state covers every batch below it; replay the log from here
 *   16  4  producer count N
 *   20     N producer records, producer ids strictly increasing:
 *            0  8  producer id (>= 0)
 *            8  2  producer epoch
 *           10  1  batch count c, 1..5
 *           11  1  reserved (0)
 *           12     c batches of 32 bytes, oldest first, last offsets strictly increasing
 *                  and below next_offset:
 *                    0  4  first sequence
 *                    4  4  last sequence
 *                    8  8  first offset
 *                   16  8  last offset (>= first offset)
 *                   24  8  timestamp (the batch's maxTimestamp)
 *   end  4  CRC-32C of every byte before it
 *
 * The file must be exactly as long as its content says. Anything else is CK_ECORRUPT,
 * and the reader falls back to an older snapshot or a replay from the log start.
 * Written through a temp file, fdatasync, rename and a folder fsync, so a crash leaves
 * either the old file or the complete new one (plus maybe a stray .tmp).
 *
 * IN MEMORY: an open-addressing hash table (linear probing, load <= 3/4) of slots
 * {producer id, entry pointer}; probing compares ids in the slot array without touching
 * entries. Removal (expiry) uses backward-shift deletion, so there are no tombstones and
 * lookups stay short however many producers come and go. Each entry keeps its batches in
 * a ring of CK_PSTATE_MAX_BATCHES. */
#include "txn/pstate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "log/batch.h"

#define SNAP_MAGIC 0x434b5053u /* "CKPS" */
#define SNAP_VERSION 1
#define SNAP_HEADER 20
#define SNAP_PRODUCER 12
#define SNAP_BATCH 32
/* Bound on what the reader loads: far beyond any real partition (a full snapshot of
 * 10^6 producers is ~170 MB), yet keeps a damaged size field from exhausting memory. */
#define SNAP_MAX_BYTES ((size_t)1 << 30)

typedef struct ck__pentry {
    int16_t epoch;
    uint8_t n;    /* batches remembered, 1..CK_PSTATE_MAX_BATCHES */
    uint8_t head; /* ring index of the oldest */
    ck_pstate_batch_t b[CK_PSTATE_MAX_BATCHES];
} ck__pentry_t;

typedef struct ck__pslot {
    int64_t pid;
    ck__pentry_t *e; /* NULL: empty slot */
} ck__pslot_t;

struct ck_pstate {
    ck__pslot_t *slots;
    size_t cap; /* power of two */
    size_t count;
};

/* Producer ids are handed out consecutively; a mixer spreads them over the table so
 * linear probing does not degrade into long runs. (splitmix64's finalizer.) */
static inline size_t pid_hash(int64_t pid)
{
    uint64_t x = (uint64_t)pid;
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return (size_t)x;
}

static inline const ck_pstate_batch_t *entry_batch(const ck__pentry_t *e, int i)
{
    return &e->b[(e->head + i) % CK_PSTATE_MAX_BATCHES];
}
static inline const ck_pstate_batch_t *entry_newest(const ck__pentry_t *e)
{
    return entry_batch(e, e->n - 1);
}

static ck__pentry_t *find(const ck_pstate_t *s, int64_t pid)
{
    size_t mask = s->cap - 1;
    for (size_t i = pid_hash(pid) & mask;; i = (i + 1) & mask) {
        if (!s->slots[i].e)
            return NULL;
        if (s->slots[i].pid == pid)
            return s->slots[i].e;
    }
}

/* Places an entry known to be absent; the table has a free slot. */
static void place(ck__pslot_t *slots, size_t cap, int64_t pid, ck__pentry_t *e)
{
    size_t mask = cap - 1, i = pid_hash(pid) & mask;
    while (slots[i].e)
        i = (i + 1) & mask;
    slots[i].pid = pid;
    slots[i].e = e;
}

static int grow(ck_pstate_t *s)
{
    size_t cap = s->cap * 2;
    ck__pslot_t *slots = ck_calloc(cap, sizeof(*slots));
    if (!slots)
        return CK_ENOMEM;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].e)
            place(slots, cap, s->slots[i].pid, s->slots[i].e);
    ck_free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

/* Adds an absent producer with an empty entry (the caller fills it). */
static ck__pentry_t *insert(ck_pstate_t *s, int64_t pid)
{
    if ((s->count + 1) * 4 > s->cap * 3 && grow(s) != 0)
        return NULL;
    ck__pentry_t *e = ck_calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    place(s->slots, s->cap, pid, e);
    s->count++;
    return e;
}

/* Backward-shift deletion of the entry at slot i: later members of the probe run move
 * back into the hole unless that would put them before their home slot. */
static void remove_at(ck_pstate_t *s, size_t i)
{
    size_t mask = s->cap - 1;
    ck_free(s->slots[i].e);
    s->slots[i].e = NULL;
    s->count--;
    for (size_t j = (i + 1) & mask; s->slots[j].e; j = (j + 1) & mask) {
        size_t home = pid_hash(s->slots[j].pid) & mask;
        /* The element at j may fill hole i only if its home is not in (i, j] cyclically. */
        int home_in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (home_in_range)
            continue;
        s->slots[i] = s->slots[j];
        s->slots[j].e = NULL;
        i = j;
    }
}

ck_pstate_t *ck_pstate_new(void)
{
    ck_pstate_t *s = ck_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cap = 16;
    s->slots = ck_calloc(s->cap, sizeof(*s->slots));
    if (!s->slots) {
        ck_free(s);
        return NULL;
    }
    return s;
}

void ck_pstate_free(ck_pstate_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->cap; i++)
        ck_free(s->slots[i].e);
    ck_free(s->slots);
    ck_free(s);
}

size_t ck_pstate_count(const ck_pstate_t *s)
{
    return s->count;
}

int ck_pstate_get(const ck_pstate_t *s, int64_t pid, ck_pstate_producer_t *out)
{
    const ck__pentry_t *e = pid >= 0 ? find(s, pid) : NULL;
    if (!e)
        return CK_ENOENT;
    memset(out, 0, sizeof(*out));
    out->producer_id = pid;
    out->epoch = e->epoch;
    out->count = e->n;
    for (int i = 0; i < e->n; i++)
        out->batches[i] = *entry_batch(e, i);
    return 0;
}

ck_pstate_verdict_t ck_pstate_check(const ck_pstate_t *s, int64_t pid, int16_t epoch,
                                    int32_t first_seq, int32_t last_seq, ck_pstate_dup_t *dup)
{
    if (pid < 0)
        return CK_PSTATE_APPEND;
    const ck__pentry_t *e = find(s, pid);
    if (!e)
        return CK_PSTATE_APPEND;
    if (epoch < e->epoch)
        return CK_PSTATE_STALE_EPOCH;
    if (epoch > e->epoch)
        return first_seq == 0 ? CK_PSTATE_APPEND : CK_PSTATE_OUT_OF_ORDER;
    /* Duplicates before sequence order: a retried batch is never "in sequence". */
    for (int i = 0; i < e->n; i++) {
        const ck_pstate_batch_t *b = entry_batch(e, i);
        if (b->first_seq == first_seq && b->last_seq == last_seq) {
            if (dup) {
                dup->first_offset = b->first_offset;
                dup->last_offset = b->last_offset;
                dup->timestamp = b->timestamp;
            }
            return CK_PSTATE_DUPLICATE;
        }
    }
    int32_t last = entry_newest(e)->last_seq;
    if (first_seq == ck_pstate_seq_add(last, 1))
        return CK_PSTATE_APPEND;
    return CK_PSTATE_OUT_OF_ORDER;
}

int ck_pstate_update(ck_pstate_t *s, int64_t pid, int16_t epoch, int32_t first_seq,
                     int32_t last_seq, int64_t first_offset, int64_t last_offset, int64_t timestamp)
{
    if (pid < 0)
        return 0;
    ck__pentry_t *e = find(s, pid);
    if (!e) {
        e = insert(s, pid);
        if (!e)
            return CK_ENOMEM;
        e->epoch = epoch;
    } else if (last_offset <= entry_newest(e)->last_offset) {
        /* Already applied (a replay overlapping the snapshot). Checked before the epoch
         * so that an old-epoch batch replayed cannot wipe the newer epoch's batches. */
        return 0;
    } else if (epoch != e->epoch) {
        /* Kafka forgets the batches of the old epoch: sequences restart at 0. */
        e->epoch = epoch;
        e->n = 0;
        e->head = 0;
    }
    ck_pstate_batch_t nb = {first_seq, last_seq, first_offset, last_offset, timestamp};
    if (e->n == CK_PSTATE_MAX_BATCHES) {
        e->b[e->head] = nb; /* overwrite the oldest; it becomes the newest */
        e->head = (uint8_t)((e->head + 1) % CK_PSTATE_MAX_BATCHES);
    } else {
        e->b[(e->head + e->n) % CK_PSTATE_MAX_BATCHES] = nb;
        e->n++;
    }
    return 0;
}

int ck_pstate_update_from_batches(ck_pstate_t *s, const uint8_t *batches, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        if (n - pos < CK_BATCH_HEADER_SIZE)
            return CK_ETRUNC;
        const uint8_t *p = batches + pos;
        ck_batch_header_t h;
        ck_batch_header_parse(p, &h);
        /* 49 = header bytes after batchLength: anything shorter is not a batch. */
        if (h.batch_length < CK_BATCH_HEADER_SIZE - 12 || h.magic != 2)
            return CK_ECORRUPT;
        size_t total = (size_t)h.batch_length + 12;
        if (total > n - pos)
            return CK_ETRUNC;
        pos += total;
        if (h.producer_id < 0 || (h.attributes & CK_ATTR_CONTROL) || h.last_offset_delta < 0)
            continue;
        int rc =
            ck_pstate_update(s, h.producer_id, h.producer_epoch, h.base_sequence,
                             ck_pstate_seq_add(h.base_sequence, h.last_offset_delta), h.base_offset,
                             h.base_offset + h.last_offset_delta, h.max_timestamp);
        if (rc)
            return rc;
    }
    return 0;
}

size_t ck_pstate_expire(ck_pstate_t *s, int64_t now_ms, int64_t max_idle_ms)
{
    if (max_idle_ms < 0)
        return 0; /* never expire */
    /* ts <= now - max is Kafka's now - ts >= max without overflow. */
    int64_t cutoff = now_ms < INT64_MIN + max_idle_ms ? INT64_MIN : now_ms - max_idle_ms;
    size_t dropped = 0;
    size_t i = 0;
    while (i < s->cap) {
        ck__pentry_t *e = s->slots[i].e;
        if (e && entry_newest(e)->timestamp <= cutoff) {
            /* The shift may move a later (or wrapped-around, already kept) entry into
             * slot i, so look at i again; nothing unvisited ever moves behind i. */
            remove_at(s, i);
            dropped++;
            continue;
        }
        i++;
    }
    return dropped;
}

/* ---- snapshots ---- */

void ck_pstate_snapshot_name(char *buf, int64_t next_offset)
{
    snprintf(buf, CK_PSTATE_SNAPSHOT_NAME_MAX, "%020lld.snapshot", (long long)next_offset);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return ck_from_errno(errno);
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Opens the folder holding path, for the fsync that makes a rename durable. */
static int open_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (slash == path)
        return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char dir[4096];
    size_t len = (size_t)(slash - path);
    if (len >= sizeof(dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, path, len);
    dir[len] = 0;
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int ck__txn_write_durable(const char *path, const uint8_t *data, size_t n)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return CK_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ck_from_errno(errno);
    int rc = write_all(fd, data, n);
    if (!rc && fdatasync(fd) != 0)
        rc = ck_from_errno(errno);
    close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = ck_from_errno(errno);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    /* Without this the rename itself may be lost in a crash. */
    int dfd = open_parent(path);
    if (dfd < 0)
        return ck_from_errno(errno);
    if (fsync(dfd) != 0)
        rc = ck_from_errno(errno);
    close(dfd);
    return rc;
}

static int cmp_slot(const void *a, const void *b)
{
    int64_t x = ((const ck__pslot_t *)a)->pid, y = ((const ck__pslot_t *)b)->pid;
    return (x > y) - (x < y);
}

int ck_pstate_snapshot_write(const ck_pstate_t *s, const char *path, int64_t next_offset)
{
    if (next_offset < 0 || s->count > UINT32_MAX)
        return CK_EINVAL;
    /* Sorted so that equal states give byte-identical files (and the reader can reject
     * duplicate ids cheaply). */
    ck__pslot_t *v = ck_malloc(s->count * sizeof(*v));
    if (!v)
        return CK_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].e)
            v[k++] = s->slots[i];
    qsort(v, k, sizeof(*v), cmp_slot);

    int rc = 0;
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_wr_u32(&w, SNAP_MAGIC);
    ck_wr_u16(&w, SNAP_VERSION);
    ck_wr_u16(&w, 0);
    ck_wr_i64(&w, next_offset);
    ck_wr_u32(&w, (uint32_t)k);
    for (size_t i = 0; i < k && !rc; i++) {
        const ck__pentry_t *e = v[i].e;
        if (entry_newest(e)->last_offset >= next_offset) {
            rc = CK_EINVAL; /* the state is ahead of the offset it claims to cover */
            break;
        }
        ck_wr_i64(&w, v[i].pid);
        ck_wr_i16(&w, e->epoch);
        ck_wr_u8(&w, e->n);
        ck_wr_u8(&w, 0);
        for (int j = 0; j < e->n; j++) {
            const ck_pstate_batch_t *b = entry_batch(e, j);
            ck_wr_i32(&w, b->first_seq);
            ck_wr_i32(&w, b->last_seq);
            ck_wr_i64(&w, b->first_offset);
            ck_wr_i64(&w, b->last_offset);
            ck_wr_i64(&w, b->timestamp);
        }
    }
    ck_free(v);
    if (!rc && w.err)
        rc = w.err;
    if (!rc) {
        ck_wr_u32(&w, ck_crc32c(0, w.data, w.len));
        rc = w.err ? w.err : ck__txn_write_durable(path, w.data, w.len);
    }
    ck_wbuf_free(&w);
    return rc;
}

static int read_file(const char *path, uint8_t **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ck_from_errno(errno);
    struct stat st;
    int rc = 0;
    uint8_t *buf = NULL;
    size_t n = 0;
    if (fstat(fd, &st) != 0)
        rc = ck_from_errno(errno);
    else if (st.st_size < 0 || (uint64_t)st.st_size > SNAP_MAX_BYTES)
        rc = CK_ECORRUPT;
    else if (!(buf = ck_malloc((size_t)st.st_size)))
        rc = CK_ENOMEM;
    while (!rc && n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = ck_from_errno(errno);
        else if (r == 0)
            rc = CK_ECORRUPT; /* shrank under us */
        else
            n += (size_t)r;
    }
    close(fd);
    if (rc) {
        ck_free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* Decodes and checks the content (CRC already verified). */
static int snapshot_decode(const uint8_t *p, size_t len, ck_pstate_t *s, int64_t *next_offset)
{
    ck_rbuf_t r;
    ck_rbuf_init(&r, p, len);
    if (ck_rd_u32(&r) != SNAP_MAGIC || ck_rd_u16(&r) != SNAP_VERSION || ck_rd_u16(&r) != 0)
        return CK_ECORRUPT;
    int64_t next = ck_rd_i64(&r);
    uint32_t count = ck_rd_u32(&r);
    if (r.err || next < 0 || count > ck_rbuf_left(&r) / (SNAP_PRODUCER + SNAP_BATCH))
        return CK_ECORRUPT;
    int64_t prev_pid = -1;
    for (uint32_t i = 0; i < count; i++) {
        int64_t pid = ck_rd_i64(&r);
        int16_t epoch = ck_rd_i16(&r);
        uint8_t n = ck_rd_u8(&r);
        uint8_t reserved = ck_rd_u8(&r);
        if (r.err || pid <= prev_pid || n < 1 || n > CK_PSTATE_MAX_BATCHES || reserved)
            return CK_ECORRUPT;
        prev_pid = pid;
        ck__pentry_t *e = insert(s, pid);
        if (!e)
            return CK_ENOMEM;
        e->epoch = epoch;
        e->n = n;
        int64_t prev_last = INT64_MIN;
        for (int j = 0; j < n; j++) {
            ck_pstate_batch_t *b = &e->b[j];
            b->first_seq = ck_rd_i32(&r);
            b->last_seq = ck_rd_i32(&r);
            b->first_offset = ck_rd_i64(&r);
            b->last_offset = ck_rd_i64(&r);
            b->timestamp = ck_rd_i64(&r);
            if (r.err || b->first_offset < 0 || b->last_offset < b->first_offset ||
                b->last_offset <= prev_last || b->last_offset >= next)
                return CK_ECORRUPT;
            prev_last = b->last_offset;
        }
    }
    if (r.err || ck_rbuf_left(&r) != 0)
        return CK_ECORRUPT;
    *next_offset = next;
    return 0;
}

int ck_pstate_snapshot_read(const char *path, ck_pstate_t **out, int64_t *next_offset)
{
    *out = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc)
        return rc;
    if (len < SNAP_HEADER + 4 || ck_get_u32(data + len - 4) != ck_crc32c(0, data, len - 4)) {
        ck_free(data);
        return CK_ECORRUPT;
    }
    ck_pstate_t *s = ck_pstate_new();
    if (!s)
        rc = CK_ENOMEM;
    else
        rc = snapshot_decode(data, len - 4, s, next_offset);
    ck_free(data);
    if (rc) {
        ck_pstate_free(s);
        return rc;
    }
    *out = s;
    return 0;
}
