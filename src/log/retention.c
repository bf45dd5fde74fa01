/* Retention (time, size), time-based rolling, and DeleteRecords. Owner thread.
 *
 * Only whole segments are deleted, only from the front, never the active one, and only
 * segments wholly below durable_end (so log_start <= durable_end always holds). Time
 * retention uses the segment's newest batch timestamp (the .log's mtime when no batch has
 * one); size retention follows Kafka: the oldest segment goes while the partition would
 * still hold at least retention_bytes without it. Deleting files needs no fsync: a
 * deletion undone by a crash only brings back records that were past retention anyway,
 * and log_start is then taken from the first segment again. DeleteRecords is different:
 * its log start is a promise to the client, so it is persisted first (W4 in segment.c). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "core/logging.h"
#include "log/log_int.h"

static int64_t seg_newest_ms(ck_partition_t *p, ck__seg_t *s)
{
    if (ck__partition_seg_index(p, s) == 0 && s->max_ts >= 0)
        return s->max_ts;
    struct stat st;
    if (fstat(s->fd, &st) == 0)
        return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    return INT64_MAX; /* unknown: keep it */
}

static int sweep_partition(ck_partition_t *p, int64_t now_ms)
{
    ck__seg_t *a = p->segs[p->nsegs - 1];
    if (!ck_partition_error(p) && a->size > 0 && p->cfg.segment_ms > 0 &&
        now_ms - a->created_ms >= p->cfg.segment_ms)
        (void)ck__partition_roll(p, now_ms); /* a failure is logged and made sticky */

    int deleted = 0;
    int64_t durable = ck_partition_durable_end(p);
    while (p->nsegs > 1 && p->segs[1]->base <= durable) {
        ck__seg_t *s = p->segs[0];
        bool expired =
            p->cfg.retention_ms >= 0 && now_ms - seg_newest_ms(p, s) > p->cfg.retention_ms;
        bool oversize =
            p->cfg.retention_bytes >= 0 && p->size_bytes - s->size >= p->cfg.retention_bytes;
        if (!expired && !oversize)
            break;
        CK_DEBUG("log", "%s: deleting segment %020" PRId64 " (%s)", p->name, s->base,
                 expired ? "retention.ms" : "retention.bytes");
        ck__partition_drop_front(p);
        deleted++;
    }
    if (p->segs[0]->base > p->log_start)
        p->log_start = p->segs[0]->base;
    return deleted;
}

int ck_log_sweep(ck_log_t *log, int64_t now_ms)
{
    int n = 0;
    for (size_t i = 0; i < log->nparts; i++)
        n += sweep_partition(log->parts[i], now_ms);
    return n;
}

int ck_partition_delete_records(ck_partition_t *p, int64_t offset)
{
    int64_t durable = ck_partition_durable_end(p);
    if (offset == -1)
        offset = durable;
    if (offset < 0 || offset > durable)
        return CK_ERANGE;
    if (offset <= p->log_start)
        return 0;
    int rc = ck__meta_write_durable(p->dirfd, CK__LOG_START_FILE, CK__LOG_START_TMP,
                                    CK__MAGIC_LOG_START, offset);
    if (rc) {
        CK_ERROR("log", "%s: cannot persist log start %" PRId64 ": %s", p->name, offset,
                 ck_strerror(rc));
        return rc;
    }
    p->log_start = offset;
    while (p->nsegs > 1 && p->segs[1]->base <= offset)
        ck__partition_drop_front(p);
    return 0;
}
