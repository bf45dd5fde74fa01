/* Segment files, their sparse indexes, and recovery of a segment's tail.
 *
 * ON-DISK FORMAT (also docs/LOG_FORMAT.md). All integers big-endian.
 *
 *   <dir>/<topic>-<partition>/
 *     00000000000000000000.log        record batches, Kafka v2, exactly as appended (base
 *                                     offsets and leader epoch rewritten at append). The
 *                                     name is the segment's base offset, 20 digits.
 *     00000000000000000000.index      offset index, 8-byte entries:
 *                                       0 int32 relative offset (batch base - segment base)
 *                                       4 int32 byte position of that batch in the .log
 *     00000000000000000000.timeindex  time index, 12-byte entries:
 *                                       0 int64 max timestamp of every batch of the segment
 *                                               up to and including the batch below
 *                                       8 int32 relative offset of that batch
 *     log-start-offset                16 bytes: "CKLS", int64 log start offset,
 *                                     crc32c of the first 12 bytes
 *     recovery-point                  16 bytes: "CKRP", int64 base offset R, crc32c
 *
 * Index entries: walking the batches of a segment, a batch at position pos > 0 gets an
 * offset entry and a time entry when pos - (position of the previous entry, 0 at first)
 * >= index_interval_bytes. Offset entries strictly increase in both fields; time entries
 * have non-decreasing timestamps and strictly increasing offsets. When a segment is sealed
 * (rolled) one more time entry (segment max timestamp, last batch) is added if the
 * segment's max is newer than the last entry. A time entry's timestamp is an upper bound of
 * every batch max timestamp up to its batch; the last one is the segment's max timestamp.
 *
 * WRITE ORDERING (what makes recovery possible):
 *  W1 The owner writes batches to the active .log (one pwrite per append). The flusher
 *     fsyncs: first the partition directory if a segment file was created, then every
 *     rolled segment not yet fsynced, then the active one; only then is durable_end moved
 *     to the end of the appends it saw. So every byte below durable_end is on disk, in a
 *     file whose directory entry is on disk.
 *  W2 Index entries live in memory first; the flusher writes them to the index files only
 *     after the .log bytes of the batch they point at were fsynced. An index entry found on
 *     disk therefore always points into fsynced .log bytes (index files themselves are not
 *     fsynced while a segment is active; a torn index file is caught by validation).
 *  W3 Once a rolled segment's .log is fsynced and its complete index files are written and
 *     fsynced, the flusher stores recovery-point R = base offset of the then active
 *     segment, in place and without fsync: a stale (lower) R only means more checking.
 *     Every segment with base < R is complete and fsynced, and so are its index files.
 *  W4 log-start-offset is written to a temp file, fdatasynced, renamed, and the folder
 *     fsynced, before any segment below the new log start is deleted.
 *
 * RECOVERY at partition open (partition.c drives it, ck__seg_recover does one segment):
 *  1 Temp files and index files without a .log are removed; the .log files are sorted.
 *  2 Segments with base < R are trusted and not read; their indexes load lazily.
 *  3 Every segment with base >= R, and always the last one, is checked:
 *    a the index files are read; each keeps its longest well-formed prefix (whole
 *      entries, monotone, positions inside the .log), so a .log shorter than its index
 *      expects simply loses the entries past its end;
 *    b the scan starts at the offset-index entry at or below the last time entry that is
 *      itself at or below the last offset entry: by W2 everything before it is fsynced,
 *      and that time entry's timestamp covers every batch before it. No usable entry:
 *      start at position 0;
 *    c the batch at the start must check out, else the indexes are dropped (start at 0);
 *    d each batch must have a length >= 61 that fits in the file, magic 2, base offset ==
 *      previous batch's last offset + 1 (the segment's base for the first), and a valid
 *      CRC-32C over bytes 21..end. The first batch that fails ends the segment (if that
 *      is before the batch the time entry of b names, the segment is rescanned from 0);
 *    e the .log is truncated there and fdatasynced; index entries past the start are
 *      rebuilt, the index files rewritten and fdatasynced;
 *    f a checked segment that is not the last must end exactly at the next segment's
 *      base; otherwise every later segment is deleted (newest first) - their bytes were
 *      never acknowledged, since durable_end cannot pass a segment that is not fsynced.
 *  4 log_start = max(log-start-offset, first segment base); segments wholly below it are
 *    deleted; if log_start > log_end the log restarts empty at log_start.
 *  5 durable_end = log_end (everything kept was just fsynced); R = last segment's base.
 * Sealed trusted segments are loaded lazily (first read, time lookup, retention): their
 * index files must be complete and well formed (last offset entry matching its batch,
 * a time entry for a non-empty segment), else they are rebuilt by a scan of the .log and
 * rewritten through a temp file + fdatasync + rename. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/logging.h"
#include "log/batch.h"
#include "log/log_int.h"

ck__log_io_t ck__log_io = {pwrite, fdatasync, fsync};

#define RECOVER_SCAN_BUF (1u << 20)

/* ---- small I/O helpers ---- */

int ck__io_code(int e)
{
    return (e == ENOSPC || e == EDQUOT) ? CK_ENOSPC : CK_EIO;
}

int ck__pwrite_all(int fd, const void *p, size_t n, int64_t off, bool hooked)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w =
            hooked ? ck__log_io.io_pwrite(fd, b, n, (off_t)off) : pwrite(fd, b, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return ck__io_code(errno);
        }
        if (w == 0)
            return CK_EIO;
        b += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int64_t ck__pread_all(int fd, void *p, size_t n, int64_t off)
{
    uint8_t *b = p;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, b + done, n - done, (off_t)(off + (int64_t)done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return CK_EIO;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (int64_t)done;
}

void ck__seg_name(char *buf, int64_t base, const char *ext)
{
    snprintf(buf, CK__NAME_MAX, "%020" PRId64 "%s", base, ext);
}

/* ---- read window ---- */

void ck__scan_init(ck__scan_t *sc, size_t cap)
{
    memset(sc, 0, sizeof(*sc));
    sc->fd = -1;
    sc->dflt_cap = cap;
}

void ck__scan_free(ck__scan_t *sc)
{
    ck_free(sc->buf);
    sc->buf = NULL;
    sc->cap = 0;
    sc->len = 0;
}

void ck__scan_reset(ck__scan_t *sc, int fd, int64_t limit)
{
    sc->fd = fd;
    sc->limit = limit;
    sc->len = 0;
    /* one huge batch must not pin a huge buffer for the partition's lifetime */
    if (sc->cap > sc->dflt_cap)
        ck__scan_free(sc);
}

const uint8_t *ck__scan_get(ck__scan_t *sc, int64_t pos, size_t n, int *err)
{
    *err = 0;
    if (pos < 0 || (int64_t)n > sc->limit - pos)
        return NULL;
    if (sc->len && pos >= sc->off && pos + (int64_t)n <= sc->off + (int64_t)sc->len)
        return sc->buf + (pos - sc->off);
    if (!sc->buf || n > sc->cap) {
        size_t cap = n > sc->dflt_cap ? n : sc->dflt_cap;
        ck_free(sc->buf); /* not realloc: the old window is dropped anyway */
        sc->buf = ck_malloc(cap);
        sc->cap = sc->buf ? cap : 0;
        sc->len = 0;
        if (!sc->buf) {
            *err = CK_ENOMEM;
            return NULL;
        }
    }
    size_t want = sc->cap;
    if ((int64_t)want > sc->limit - pos)
        want = (size_t)(sc->limit - pos);
    int64_t r = ck__pread_all(sc->fd, sc->buf, want, pos);
    if (r < 0) {
        sc->len = 0;
        *err = (int)r;
        return NULL;
    }
    sc->off = pos;
    sc->len = (size_t)r;
    if ((size_t)r < n) {
        *err = CK_ETRUNC; /* the file is shorter than we were told */
        return NULL;
    }
    return sc->buf;
}

/* ---- segments ---- */

static ck__seg_t *seg_alloc(int64_t base)
{
    ck__seg_t *s = ck_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->base = base;
    s->next = base;
    s->fd = -1;
    s->oidx.fd = -1;
    s->tidx.fd = -1;
    s->max_ts = -1;
    s->last_batch_rel = -1;
    return s;
}

static void index_release(ck__index_t *ix)
{
    if (ix->maplen)
        munmap(ix->data, ix->maplen);
    else
        ck_free(ix->data);
    ix->data = NULL;
    ix->n = ix->cap = ix->maplen = ix->file_n = 0;
}

static void index_close(ck__index_t *ix)
{
    if (ix->fd >= 0)
        close(ix->fd);
    ix->fd = -1;
}

static void seg_free(ck__seg_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    index_close(&s->oidx);
    index_close(&s->tidx);
    index_release(&s->oidx);
    index_release(&s->tidx);
    ck_free(s);
}

void ck__seg_ref(ck__seg_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void ck__seg_unref(ck__seg_t *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        seg_free(s);
}

static int open_index_rw(int dirfd, int64_t base, const char *ext, int flags)
{
    char name[CK__NAME_MAX];
    ck__seg_name(name, base, ext);
    return openat(dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC | flags, 0644);
}

int ck__seg_create(int dirfd, int64_t base, int32_t interval, ck__seg_t **out)
{
    ck__seg_t *s = seg_alloc(base);
    if (!s)
        return CK_ENOMEM;
    char name[CK__NAME_MAX];
    ck__seg_name(name, base, ".log");
    s->fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        int rc = errno == EEXIST ? CK_EEXIST : ck__io_code(errno);
        seg_free(s);
        return rc;
    }
    /* stale index files of an earlier segment with this base are overwritten */
    s->oidx.fd = open_index_rw(dirfd, base, ".index", O_TRUNC);
    s->tidx.fd = s->oidx.fd >= 0 ? open_index_rw(dirfd, base, ".timeindex", O_TRUNC) : -1;
    if (s->tidx.fd < 0) {
        int rc = ck__io_code(errno);
        seg_free(s);
        ck__seg_unlink(dirfd, base);
        return rc;
    }
    s->idx_ready = true;
    s->interval = interval > 0 ? interval : 1;
    *out = s;
    return 0;
}

int ck__seg_open(int dirfd, int64_t base, ck__seg_t **out)
{
    ck__seg_t *s = seg_alloc(base);
    if (!s)
        return CK_ENOMEM;
    char name[CK__NAME_MAX];
    ck__seg_name(name, base, ".log");
    s->fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (s->fd < 0 || fstat(s->fd, &st) != 0) {
        int rc = ck_from_errno(errno);
        seg_free(s);
        return rc;
    }
    if (st.st_size > INT32_MAX) {
        /* positions in the index are int32: we never write such a file */
        CK_ERROR("log", "segment %s is %lld bytes, larger than any segment we write", name,
                 (long long)st.st_size);
        seg_free(s);
        return CK_ECORRUPT;
    }
    s->size = st.st_size;
    *out = s;
    return 0;
}

void ck__seg_unlink(int dirfd, int64_t base)
{
    static const char *const exts[] = {".index", ".timeindex", ".log"};
    char name[CK__NAME_MAX];
    for (size_t i = 0; i < 3; i++) {
        ck__seg_name(name, base, exts[i]);
        if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
            CK_WARN("log", "cannot remove %s: %s", name, strerror(errno));
    }
}

/* ---- indexes ---- */

int64_t ck__tidx_ts(const ck__seg_t *s, size_t i)
{
    return (int64_t)ck_get_u64(s->tidx.data + i * CK__TIDX_ESIZE);
}

int32_t ck__tidx_rel(const ck__seg_t *s, size_t i)
{
    return (int32_t)ck_get_u32(s->tidx.data + i * CK__TIDX_ESIZE + 8);
}

int ck__index_push(ck__index_t *ix, size_t esize, const uint8_t *entry)
{
    if (ix->maplen)
        return CK_EINVAL; /* mapped indexes belong to sealed segments */
    if (ix->n == ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 64;
        uint8_t *d = ck_realloc(ix->data, cap * esize);
        if (!d)
            return CK_ENOMEM;
        ix->data = d;
        ix->cap = cap;
    }
    memcpy(ix->data + ix->n * esize, entry, esize);
    ix->n++;
    return 0;
}

void ck__seg_note_batch(ck__seg_t *s, int32_t rel, int64_t pos, int64_t max_ts)
{
    if (max_ts > s->max_ts)
        s->max_ts = max_ts;
    if (pos > 0 && pos - s->last_entry_pos >= s->interval) {
        uint8_t e[CK__OIDX_ESIZE], t[CK__TIDX_ESIZE];
        ck_put_u32(e, (uint32_t)rel);
        ck_put_u32(e + 4, (uint32_t)pos);
        ck_put_u64(t, (uint64_t)s->max_ts);
        ck_put_u32(t + 8, (uint32_t)rel);
        /* A missing entry only makes lookups scan further, but the two indexes must stay
         * in step (recovery starts at an offset entry named by a time entry). */
        if (ck__index_push(&s->oidx, CK__OIDX_ESIZE, e) == 0) {
            if (ck__index_push(&s->tidx, CK__TIDX_ESIZE, t) == 0)
                s->last_entry_pos = pos;
            else
                s->oidx.n--;
        }
    }
    s->last_batch_rel = rel;
}

void ck__seg_seal_time(ck__seg_t *s)
{
    if (s->size == 0 || s->last_batch_rel < 0)
        return;
    size_t n = s->tidx.n;
    if (n > 0 &&
        (s->max_ts <= ck__tidx_ts(s, n - 1) || ck__tidx_rel(s, n - 1) >= s->last_batch_rel))
        return;
    uint8_t t[CK__TIDX_ESIZE];
    ck_put_u64(t, (uint64_t)s->max_ts);
    ck_put_u32(t + 8, (uint32_t)s->last_batch_rel);
    (void)ck__index_push(&s->tidx, CK__TIDX_ESIZE, t); /* rebuilt by a scan if missing */
}

int64_t ck__oidx_floor(const ck__seg_t *s, int64_t rel, int64_t *entry_rel)
{
    size_t lo = 0, hi = s->oidx.n; /* first entry with rel > target */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ck__oidx_rel(s, mid) <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (entry_rel)
        *entry_rel = lo == 0 ? 0 : ck__oidx_rel(s, lo - 1);
    return lo == 0 ? 0 : ck__oidx_pos(s, lo - 1);
}

size_t ck__tidx_first_ge(const ck__seg_t *s, int64_t ts)
{
    size_t lo = 0, hi = s->tidx.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ck__tidx_ts(s, mid) < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ck__index_write(ck__index_t *ix, size_t esize, const uint8_t *data, size_t upto)
{
    if (ix->fd < 0 || ix->write_failed || upto <= ix->file_n)
        return 0;
    int rc = ck__pwrite_all(ix->fd, data, (upto - ix->file_n) * esize,
                            (int64_t)(ix->file_n * esize), false);
    if (rc) {
        ix->write_failed = true;
        return rc;
    }
    ix->file_n = upto;
    return 0;
}

int ck__index_write_own(ck__index_t *ix, size_t esize)
{
    if (ix->n <= ix->file_n)
        return 0;
    return ck__index_write(ix, esize, ix->data + ix->file_n * esize, ix->n);
}

/* Longest well-formed prefix of an offset index for a .log of fsize bytes. */
static size_t oidx_valid_prefix(const ck__seg_t *s, int64_t fsize)
{
    int32_t prev_rel = 0;
    int64_t prev_pos = 0;
    for (size_t i = 0; i < s->oidx.n; i++) {
        int32_t rel = ck__oidx_rel(s, i);
        int64_t pos = ck__oidx_pos(s, i);
        if (rel <= prev_rel || pos <= prev_pos || pos > fsize - CK_BATCH_HEADER_SIZE)
            return i;
        prev_rel = rel;
        prev_pos = pos;
    }
    return s->oidx.n;
}

static size_t tidx_valid_prefix(const ck__seg_t *s)
{
    int64_t prev_ts = INT64_MIN;
    int32_t prev_rel = -1;
    for (size_t i = 0; i < s->tidx.n; i++) {
        int64_t ts = ck__tidx_ts(s, i);
        int32_t rel = ck__tidx_rel(s, i);
        if (rel <= prev_rel || ts < prev_ts)
            return i;
        prev_ts = ts;
        prev_rel = rel;
    }
    return s->tidx.n;
}

/* Scans batches from *pos (expected base offset *expect) to the scanner's limit, adding
 * index entries. Stops at the end or at the first batch failing the checks (*bad = true).
 * With check_crc false only the header fields are checked (trusted, fsynced data).
 * Returns 0 or an I/O / allocation error. */
static int scan_batches(ck__seg_t *s, ck__scan_t *sc, int64_t *pos, int64_t *expect, bool check_crc,
                        bool *bad)
{
    *bad = false;
    for (;;) {
        int err;
        const uint8_t *h = ck__scan_get(sc, *pos, CK_BATCH_HEADER_SIZE, &err);
        if (!h) {
            if (err && err != CK_ETRUNC)
                return err;
            *bad = *pos < sc->limit; /* a few bytes too short for a header: torn */
            return 0;
        }
        int64_t total = (int64_t)(int32_t)ck_get_u32(h + CK_BATCH_OFF_LENGTH) + 12;
        int64_t base = (int64_t)ck_get_u64(h + CK_BATCH_OFF_BASE_OFFSET);
        int32_t lod = (int32_t)ck_get_u32(h + CK_BATCH_OFF_LAST_OFFSET_DELTA);
        int64_t rel = base - s->base;
        if (total < CK_BATCH_HEADER_SIZE || total > sc->limit - *pos ||
            h[CK_BATCH_OFF_MAGIC] != 2 || base != *expect || lod < 0 || rel + lod > INT32_MAX) {
            *bad = true;
            return 0;
        }
        int64_t max_ts = (int64_t)ck_get_u64(h + CK_BATCH_OFF_MAX_TIMESTAMP);
        if (check_crc) {
            const uint8_t *b = ck__scan_get(sc, *pos, (size_t)total, &err);
            if (!b) {
                if (err && err != CK_ETRUNC)
                    return err;
                *bad = true;
                return 0;
            }
            uint32_t crc =
                ck_crc32c(0, b + CK_BATCH_OFF_ATTRIBUTES, (size_t)total - CK_BATCH_OFF_ATTRIBUTES);
            if (crc != ck_get_u32(b + CK_BATCH_OFF_CRC)) {
                *bad = true;
                return 0;
            }
        }
        ck__seg_note_batch(s, (int32_t)rel, *pos, max_ts);
        *expect = base + lod + 1;
        *pos += total;
    }
}

/* Reads a whole index file into the heap index; the file stays open for writing. */
static int index_read_file(int dirfd, int64_t base, const char *ext, size_t esize, ck__index_t *ix)
{
    ix->fd = open_index_rw(dirfd, base, ext, 0);
    struct stat st;
    if (ix->fd < 0 || fstat(ix->fd, &st) != 0)
        return ck__io_code(errno);
    size_t n = (size_t)st.st_size / esize;
    size_t cap = n > 64 ? n : 64;
    ix->data = ck_malloc(cap * esize);
    if (!ix->data)
        return CK_ENOMEM;
    ix->cap = cap;
    int64_t r = ck__pread_all(ix->fd, ix->data, n * esize, 0);
    if (r < 0)
        return (int)r;
    ix->n = (size_t)r / esize;
    ix->file_n = ix->n;
    return 0;
}

/* Truncates an index file to the entries kept, then writes the rest and fdatasyncs.
 * An index is rebuildable and the log does not depend on it, so a failure is logged and
 * the file removed: stale entries must not outlive the bytes they described. */
static void index_rewrite_tail(int dirfd, ck__index_t *ix, size_t esize, size_t kept,
                               const char *who, int64_t base, const char *ext)
{
    int rc = 0;
    if (ftruncate(ix->fd, (off_t)(kept * esize)) != 0)
        rc = ck__io_code(errno);
    ix->file_n = kept;
    if (!rc)
        rc = ck__index_write_own(ix, esize);
    if (!rc && ck__log_io.io_fdatasync(ix->fd) != 0)
        rc = ck__io_code(errno);
    if (rc) {
        char name[CK__NAME_MAX];
        ck__seg_name(name, base, ext);
        ix->write_failed = true;
        index_close(ix);
        unlinkat(dirfd, name, 0);
        CK_WARN("log", "%s: cannot write index %s: %s (rebuilt at next open)", who, name,
                ck_strerror(rc));
    }
}

/* Checks the batch at pos: base offset `expect` and a valid CRC. */
static bool batch_ok_at(ck__scan_t *sc, int64_t pos, int64_t expect)
{
    int err;
    const uint8_t *h = ck__scan_get(sc, pos, CK_BATCH_HEADER_SIZE, &err);
    if (!h || (int64_t)ck_get_u64(h) != expect || h[CK_BATCH_OFF_MAGIC] != 2)
        return false;
    int64_t total = (int64_t)(int32_t)ck_get_u32(h + CK_BATCH_OFF_LENGTH) + 12;
    if (total < CK_BATCH_HEADER_SIZE || total > sc->limit - pos)
        return false;
    const uint8_t *b = ck__scan_get(sc, pos, (size_t)total, &err);
    return b &&
           ck_crc32c(0, b + CK_BATCH_OFF_ATTRIBUTES, (size_t)total - CK_BATCH_OFF_ATTRIBUTES) ==
               ck_get_u32(b + CK_BATCH_OFF_CRC);
}

int ck__seg_recover(int dirfd, ck__seg_t *s, int32_t interval, const char *who, int64_t *truncated)
{
    int64_t fsize = s->size;
    *truncated = 0;
    int rc = index_read_file(dirfd, s->base, ".index", CK__OIDX_ESIZE, &s->oidx);
    if (!rc)
        rc = index_read_file(dirfd, s->base, ".timeindex", CK__TIDX_ESIZE, &s->tidx);
    if (rc)
        return rc;
    s->interval = interval > 0 ? interval : 1;
    s->oidx.n = oidx_valid_prefix(s, fsize);
    s->tidx.n = tidx_valid_prefix(s);

    ck__scan_t sc;
    ck__scan_init(&sc, RECOVER_SCAN_BUF);
    ck__scan_reset(&sc, s->fd, fsize);

    /* Start point (step 3b). The time entry used is the last one at or below the last
     * offset entry (entries past it may describe bytes the .log no longer has); the scan
     * starts at the offset entry at or below that time entry. */
    int64_t start = 0, start_rel = 0, run_max = -1, t_rel = -1;
    size_t keep_o = 0, keep_t = 0;
    if (s->oidx.n > 0) {
        int64_t r_o = ck__oidx_rel(s, s->oidx.n - 1);
        size_t t = s->tidx.n;
        while (t > 0 && ck__tidx_rel(s, t - 1) > r_o)
            t--;
        if (t > 0) {
            t_rel = ck__tidx_rel(s, t - 1);
            run_max = ck__tidx_ts(s, t - 1);
            while (keep_o < s->oidx.n && ck__oidx_rel(s, keep_o) <= t_rel)
                keep_o++;
            if (keep_o > 0) {
                start = ck__oidx_pos(s, keep_o - 1);
                start_rel = ck__oidx_rel(s, keep_o - 1);
            }
        }
    }
    if (start > 0 && !batch_ok_at(&sc, start, s->base + start_rel)) {
        CK_WARN("log", "%s: segment %020" PRId64 ": index does not match the log, rescanning", who,
                s->base);
        start = 0;
    }
    if (start > 0)
        while (keep_t < s->tidx.n && ck__tidx_rel(s, keep_t) <= start_rel)
            keep_t++;

    int64_t pos, expect;
    for (;;) {
        if (start == 0) {
            keep_o = keep_t = 0;
            start_rel = 0;
            run_max = -1;
        }
        s->oidx.n = keep_o;
        s->tidx.n = keep_t;
        s->max_ts = run_max;
        s->last_entry_pos = start;
        s->last_batch_rel = start > 0 ? (int32_t)start_rel : -1;
        pos = start;
        expect = s->base + start_rel;
        bool bad = false;
        rc = scan_batches(s, &sc, &pos, &expect, true, &bad);
        if (rc) {
            ck__scan_free(&sc);
            return rc;
        }
        /* The time entry's timestamp covers batches up to t_rel: trust it only if the
         * scan got past them (always so unless the fsynced part itself was damaged). */
        if (start == 0 || expect - 1 - s->base >= t_rel)
            break;
        CK_WARN("log",
                "%s: segment %020" PRId64 ": damaged before its last index entry, rescanning", who,
                s->base);
        start = 0;
    }
    ck__scan_free(&sc);
    if (pos < fsize) {
        CK_WARN("log",
                "%s: segment %020" PRId64 ": truncating %" PRId64
                " bytes of torn or corrupt tail at position %" PRId64 " (offset %" PRId64 ")",
                who, s->base, fsize - pos, pos, expect);
        if (ftruncate(s->fd, (off_t)pos) != 0) {
            rc = ck__io_code(errno);
            CK_ERROR("log", "%s: cannot truncate segment %020" PRId64 ": %s", who, s->base,
                     strerror(errno));
            return rc;
        }
        *truncated = fsize - pos;
    }
    s->size = pos;
    s->next = expect;
    /* Whatever survived (possibly written but never fsynced before a process crash) is
     * made durable now: it may be acknowledged as soon as the partition is open. */
    if (ck__log_io.io_fdatasync(s->fd) != 0) {
        rc = ck__io_code(errno);
        CK_ERROR("log", "%s: fdatasync of segment %020" PRId64 " failed: %s", who, s->base,
                 strerror(errno));
        return rc;
    }
    index_rewrite_tail(dirfd, &s->oidx, CK__OIDX_ESIZE, keep_o, who, s->base, ".index");
    index_rewrite_tail(dirfd, &s->tidx, CK__TIDX_ESIZE, keep_t, who, s->base, ".timeindex");
    s->idx_ready = true;
    return 0;
}

/* ---- lazy index loading for sealed segments ---- */

static int index_map(int dirfd, int64_t base, const char *ext, size_t esize, ck__index_t *ix)
{
    char name[CK__NAME_MAX];
    ck__seg_name(name, base, ext);
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CK_ENOENT : CK_EIO;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = CK_EIO;
    else if (st.st_size % (off_t)esize != 0)
        rc = CK_ECORRUPT;
    else if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            rc = CK_EIO;
        else {
            ix->data = m;
            ix->maplen = (size_t)st.st_size;
            ix->n = (size_t)st.st_size / esize;
        }
    }
    close(fd);
    return rc;
}

/* Full validation of a sealed segment's indexes (they were fsynced, W3). */
static bool sealed_index_ok(ck__seg_t *s)
{
    int64_t nrel = s->next - s->base;
    if (oidx_valid_prefix(s, s->size) != s->oidx.n || tidx_valid_prefix(s) != s->tidx.n)
        return false;
    if (s->size > 0 && s->tidx.n == 0)
        return false;
    if (s->oidx.n && ck__oidx_rel(s, s->oidx.n - 1) >= nrel)
        return false;
    if (s->tidx.n && ck__tidx_rel(s, s->tidx.n - 1) >= nrel)
        return false;
    if (s->oidx.n) {
        uint8_t h[8];
        size_t i = s->oidx.n - 1;
        if (ck__pread_all(s->fd, h, 8, ck__oidx_pos(s, i)) != 8 ||
            (int64_t)ck_get_u64(h) != s->base + ck__oidx_rel(s, i))
            return false;
    }
    return true;
}

/* Writes a rebuilt index through a temp file, fdatasync and rename. */
static int index_write_file(int dirfd, int64_t base, const char *ext, const ck__index_t *ix,
                            size_t esize)
{
    char name[CK__NAME_MAX], tmp[CK__NAME_MAX + 8];
    ck__seg_name(name, base, ext);
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ck__io_code(errno);
    int rc = ck__pwrite_all(fd, ix->data, ix->n * esize, 0, false);
    if (!rc && ck__log_io.io_fdatasync(fd) != 0)
        rc = ck__io_code(errno);
    close(fd);
    if (!rc && renameat(dirfd, tmp, dirfd, name) != 0)
        rc = ck__io_code(errno);
    if (rc)
        unlinkat(dirfd, tmp, 0);
    return rc;
}

/* Rebuilds both indexes of a sealed segment by a scan of its .log and rewrites the files. */
static int seg_rebuild(int dirfd, ck__seg_t *s, int32_t interval, const char *who)
{
    s->interval = interval > 0 ? interval : 1;
    s->max_ts = -1;
    s->last_entry_pos = 0;
    s->last_batch_rel = -1;
    ck__scan_t sc;
    ck__scan_init(&sc, RECOVER_SCAN_BUF);
    ck__scan_reset(&sc, s->fd, s->size);
    int64_t pos = 0, expect = s->base;
    bool bad = false;
    int rc = scan_batches(s, &sc, &pos, &expect, false, &bad);
    ck__scan_free(&sc);
    if (rc) {
        index_release(&s->oidx);
        index_release(&s->tidx);
        return rc;
    }
    if (bad || pos != s->size || expect != s->next)
        CK_ERROR("log",
                 "%s: sealed segment %020" PRId64 " is damaged at position %" PRId64
                 " (offset %" PRId64 "); records past it are unreadable",
                 who, s->base, pos, expect);
    ck__seg_seal_time(s);
    if ((rc = index_write_file(dirfd, s->base, ".index", &s->oidx, CK__OIDX_ESIZE)) != 0 ||
        (rc = index_write_file(dirfd, s->base, ".timeindex", &s->tidx, CK__TIDX_ESIZE)) != 0)
        CK_WARN("log", "%s: cannot write rebuilt index of segment %020" PRId64 ": %s", who, s->base,
                ck_strerror(rc));
    s->idx_ready = true;
    s->idx_lazy = true;
    return 0;
}

int ck__seg_load_index(int dirfd, ck__seg_t *s, int32_t interval, const char *who)
{
    if (s->idx_ready)
        return 0;
    int ro = index_map(dirfd, s->base, ".index", CK__OIDX_ESIZE, &s->oidx);
    int rt = index_map(dirfd, s->base, ".timeindex", CK__TIDX_ESIZE, &s->tidx);
    if (!ro && !rt && sealed_index_ok(s)) {
        s->max_ts = s->tidx.n ? ck__tidx_ts(s, s->tidx.n - 1) : -1;
        s->last_batch_rel = (int32_t)(s->next - s->base - 1); /* unused once sealed */
        s->idx_ready = true;
        s->idx_lazy = true;
        return 0;
    }
    index_release(&s->oidx);
    index_release(&s->tidx);
    if (ro != CK_ENOENT || rt != CK_ENOENT)
        CK_WARN("log", "%s: segment %020" PRId64 ": index files damaged, rebuilding", who, s->base);
    else
        CK_INFO("log", "%s: segment %020" PRId64 ": index files missing, rebuilding", who, s->base);
    return seg_rebuild(dirfd, s, interval, who);
}

int ck__seg_reindex(int dirfd, ck__seg_t *s, int32_t interval, const char *who)
{
    if (!s->idx_lazy)
        return CK_EINVAL; /* the flusher may be reading it */
    index_release(&s->oidx);
    index_release(&s->tidx);
    s->idx_ready = false;
    CK_WARN("log", "%s: segment %020" PRId64 ": index does not match the log, rebuilding", who,
            s->base);
    return seg_rebuild(dirfd, s, interval, who);
}

/* ---- small durable files ---- */

static void meta_encode(uint8_t b[CK__META_SIZE], uint32_t magic, int64_t v)
{
    ck_put_u32(b, magic);
    ck_put_u64(b + 4, (uint64_t)v);
    ck_put_u32(b + 12, ck_crc32c(0, b, 12));
}

int ck__meta_read(int dirfd, const char *name, uint32_t magic, int64_t *value)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CK_ENOENT : CK_EIO;
    uint8_t b[CK__META_SIZE];
    int64_t r = ck__pread_all(fd, b, sizeof(b), 0);
    close(fd);
    if (r < 0)
        return (int)r;
    if (r != CK__META_SIZE || ck_get_u32(b) != magic || ck_get_u32(b + 12) != ck_crc32c(0, b, 12))
        return CK_ECORRUPT;
    *value = (int64_t)ck_get_u64(b + 4);
    return 0;
}

int ck__meta_write_durable(int dirfd, const char *name, const char *tmp, uint32_t magic,
                           int64_t value)
{
    uint8_t b[CK__META_SIZE];
    meta_encode(b, magic, value);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ck__io_code(errno);
    int rc = ck__pwrite_all(fd, b, sizeof(b), 0, false);
    if (!rc && ck__log_io.io_fdatasync(fd) != 0)
        rc = ck__io_code(errno);
    close(fd);
    if (!rc && renameat(dirfd, tmp, dirfd, name) != 0)
        rc = ck__io_code(errno);
    if (!rc && ck__log_io.io_fsync(dirfd) != 0)
        rc = ck__io_code(errno);
    if (rc)
        unlinkat(dirfd, tmp, 0);
    return rc;
}

int ck__meta_write_inplace(int fd, uint32_t magic, int64_t value)
{
    uint8_t b[CK__META_SIZE];
    meta_encode(b, magic, value);
    return ck__pwrite_all(fd, b, sizeof(b), 0, false);
}
