/* Private layouts of the storage engine. Only the .c files of src/log (and the log unit tests)
 * include this; everything else goes through log.h. The on-disk format and recovery
 * procedure are described at the top of segment.c and in docs/LOG_FORMAT.md.
 *
 * Threads and locks (see also log.h):
 *  - "owner": the thread that calls ck_log_* / ck_partition_* (the event loop).
 *  - "flusher": the internal group-commit thread (flusher.c).
 *  - log->mu guards the dirty list and the flusher's wake-up flags.
 *  - p->mu guards the fields marked "p->mu" below: what the owner publishes for the
 *    flusher (end of written data, seal queue, new index entries). It is held for short,
 *    allocation-light sections only, never across I/O.
 *  - Fields marked "fl" belong to the flusher (and to the owner only before the partition
 *    is first marked dirty, or after the flusher thread is joined).
 *  - log->mu and p->mu are never held together. */
#ifndef CK_LOG_LOG_INT_H
#define CK_LOG_LOG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "log/log.h"

#define CK__OIDX_ESIZE 8  /* .index entry: int32 relative offset, int32 position */
#define CK__TIDX_ESIZE 12 /* .timeindex entry: int64 timestamp, int32 relative offset */
#define CK__NAME_MAX 48   /* "<20 digits>.timeindex" and the fixed file names fit */

#define CK__LOG_START_FILE "log-start-offset"
#define CK__LOG_START_TMP "log-start-offset.tmp"
#define CK__RECOVERY_POINT_FILE "recovery-point"
#define CK__META_SIZE 16 /* both small files: magic(4) int64 value(8) crc32c(4) */

/* A sparse index (offset or time) of one segment. Entries are kept big-endian exactly as
 * in the file, either on the heap (cap > 0: the active segment, rebuilt ones) or mapped
 * read-only from the file (maplen > 0: sealed segments loaded lazily). */
typedef struct ck__index {
    uint8_t *data;
    size_t n;          /* entries; owner appends under p->mu while the segment is active */
    size_t cap;        /* heap capacity in entries (0 when mapped or empty) */
    size_t maplen;     /* bytes mapped, 0 if not mapped */
    size_t file_n;     /* fl: entries already written to fd */
    int fd;            /* fl: write handle while entries remain to be written, else -1 */
    bool write_failed; /* fl: a write/fsync of the index file failed; stop writing it */
} ck__index_t;

/* One segment: <base>.log plus its two index files. Reference counted because the flusher
 * may still fsync a segment that retention or a drop has just removed from the partition
 * (the owner holds one reference while the segment is in p->segs, the seal queue holds one,
 * the flusher one per segment it works on). */
typedef struct ck__seg {
    atomic_int refs;
    int64_t base;     /* base offset = file name; immutable */
    int fd;           /* .log, O_RDWR; immutable, closed at the last unref */
    int64_t next;     /* owner: offset after the last batch (== next segment's base) */
    int64_t size;     /* owner: bytes of complete batches; grows only while active */
    ck__index_t oidx; /* owner reads; owner appends under p->mu; fl writes the file */
    ck__index_t tidx;
    bool idx_ready;         /* owner: indexes are in memory (heap or mapped) */
    bool idx_lazy;          /* owner: loaded by ck__seg_load_index, never shared with fl */
    int64_t max_ts;         /* owner: largest batch max timestamp (-1 none), valid if idx_ready */
    int64_t last_entry_pos; /* owner, active: position of the last offset-index entry */
    int32_t last_batch_rel; /* owner: relative base offset of the last batch */
    int32_t interval;       /* index interval used while this segment is active */
    int64_t created_ms;     /* owner: wall time of the first write (segment_ms rolls) */
    bool sealed;            /* owner: no longer the active segment */
    struct ck__seg *seal_next; /* p->mu: link in the partition's seal queue */
} ck__seg_t;

/* A remembered read position: the next sequential read starts here without searching. */
typedef struct ck__rpos {
    uint64_t gen; /* p->seg_gen when recorded; 0 = unused */
    int64_t off;  /* offset the next read asks for */
    size_t si;    /* segment index in p->segs */
    int64_t pos;  /* byte position of the batch containing off (or the segment end) */
} ck__rpos_t;

#define CK__RPOS_N 4

/* A read window over a segment file: a buffer holding bytes [off, off + len). */
typedef struct ck__scan {
    int fd;
    int64_t limit; /* bytes past this are never read */
    uint8_t *buf;
    size_t cap, dflt_cap;
    int64_t off;
    size_t len;
} ck__scan_t;

struct ck_partition {
    ck_log_t *log;
    atomic_int refs; /* owner's registration + dirty list + flusher work */
    char *topic;
    int32_t id;
    char *name; /* "<topic>-<partition>": folder name, used in log messages */
    char *path; /* <dir>/<topic>-<partition> */
    int dirfd;  /* the partition folder: openat() base and fsync target */
    int rpfd;   /* recovery-point file, written in place by the flusher */
    ck_log_config_t cfg;

    /* owner */
    ck__seg_t **segs; /* ascending base offsets; the last one is active */
    size_t nsegs, segcap;
    int64_t log_start, log_end, size_bytes;
    uint64_t seg_gen; /* bumped whenever segments are removed (invalidates rpos/scan) */
    ck__rpos_t rpos[CK__RPOS_N];
    unsigned rpos_next;
    ck__scan_t scan; /* header/batch reads for locate, offset_for_time */
    uint64_t scan_gen;
    int64_t scan_base;

    _Atomic int64_t durable_end;
    atomic_int err; /* 0 or the sticky CK_E* code */

    pthread_mutex_t mu;
    /* p->mu */
    bool listed;                        /* on log->dirty (holds a reference) */
    bool dropped;                       /* closed or dropped: the flusher skips it */
    bool dir_dirty;                     /* a segment file was created since the dir fsync */
    ck__seg_t *pub_active;              /* the active segment */
    int64_t pub_end;                    /* log_end as of the last completed append */
    int64_t pub_size;                   /* pub_active's size as of that append */
    ck__seg_t *sealq, *sealq_tail;      /* rolled segments the flusher must still fsync */
    struct ck_partition *dirty_next[2]; /* log->mu: links for the two dirty-list generations */

    /* fl */
    bool fl_broken;         /* an fsync failed: durable_end never moves again */
    bool fl_rp_blocked;     /* a rolled segment's index files are incomplete: R stays */
    int64_t fl_synced_base; /* active segment (by base) and size fsynced last */
    int64_t fl_synced_size;
    ck__seg_t *fl_active; /* work carried from phase 1 to phase 2 of a round */
    ck__seg_t *fl_sealed;
    size_t fl_on, fl_tn; /* active's entry counts at the snapshot */
};

struct ck_log {
    char *dir;
    int dirfd;
    int flush_ms;
    ck_log_durable_cb cb;
    void *cb_arg;

    /* owner */
    ck_partition_t **parts;
    size_t nparts, partcap;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* log->mu */
    bool stop, kick;
    bool idle;         /* the flusher waits for work (mark_dirty signals) */
    int gen;               /* which dirty_next link appends use */
    ck_partition_t *dirty; /* partitions with unsynced bytes (each holds a reference) */

    /* fl */
    uint8_t *fl_buf;
    size_t fl_cap;
};

/* ---- I/O hooks (fault injection in tests) ----
 * Appends to .log files go through io_pwrite, data/index fsyncs through io_fdatasync,
 * directory fsyncs through io_fsync. Tests may swap them (before opening a log, or with
 * care for the flusher thread) to inject failures. */
typedef struct ck__log_io {
    ssize_t (*io_pwrite)(int fd, const void *buf, size_t n, off_t off);
    int (*io_fdatasync)(int fd);
    int (*io_fsync)(int fd);
} ck__log_io_t;
extern ck__log_io_t ck__log_io;

/* ---- helpers shared by the files (segment.c) ---- */

/* CK_ENOSPC for a full disk/quota, CK_EIO for anything else (write/fsync failures). */
int ck__io_code(int e);
/* Writes all n bytes at off, retrying short writes; hooked = through ck__log_io. */
int ck__pwrite_all(int fd, const void *p, size_t n, int64_t off, bool hooked);
/* Reads up to n bytes at off; returns bytes read (short only at end of file) or CK_EIO. */
int64_t ck__pread_all(int fd, void *p, size_t n, int64_t off);
void ck__seg_name(char *buf, int64_t base, const char *ext);

void ck__scan_init(ck__scan_t *sc, size_t cap);
void ck__scan_free(ck__scan_t *sc);
void ck__scan_reset(ck__scan_t *sc, int fd, int64_t limit);
/* Bytes [pos, pos + n) of the file, valid until the next call; NULL at the limit
 * (*err = 0) or on failure (*err < 0). Grows the buffer for a large n; shrinks back to
 * the default size on the next reset. */
const uint8_t *ck__scan_get(ck__scan_t *sc, int64_t pos, size_t n, int *err);

static inline int32_t ck__oidx_rel(const ck__seg_t *s, size_t i)
{
    return (int32_t)ck_get_u32(s->oidx.data + i * CK__OIDX_ESIZE);
}
static inline int64_t ck__oidx_pos(const ck__seg_t *s, size_t i)
{
    return (int32_t)ck_get_u32(s->oidx.data + i * CK__OIDX_ESIZE + 4);
}
int64_t ck__tidx_ts(const ck__seg_t *s, size_t i);
int32_t ck__tidx_rel(const ck__seg_t *s, size_t i);

/* Segments. Owner thread unless noted. */
/* Creates <base>.log (must not exist) and empty index files, opened for the flusher. */
int ck__seg_create(int dirfd, int64_t base, int32_t interval, ck__seg_t **out);
/* Opens an existing <base>.log; indexes are not loaded (see ck__seg_load_index). */
int ck__seg_open(int dirfd, int64_t base, ck__seg_t **out);
void ck__seg_ref(ck__seg_t *s);   /* any thread */
void ck__seg_unref(ck__seg_t *s); /* any thread; the last one closes and frees */
/* Removes the segment's three files (index files first). Errors are logged. */
void ck__seg_unlink(int dirfd, int64_t base);
/* Appends an index entry to the heap index (caller holds p->mu for the active segment). */
int ck__index_push(ck__index_t *ix, size_t esize, const uint8_t *entry);
/* Adds the offset+time entries for a batch at pos if the interval is due (under p->mu). */
void ck__seg_note_batch(ck__seg_t *s, int32_t rel, int64_t pos, int64_t max_ts);
/* On sealing: a final time entry with the segment's max timestamp if it is newer. */
void ck__seg_seal_time(ck__seg_t *s);
/* Position of the last offset-index entry with relative offset <= rel (0 if none);
 * *entry_rel (may be NULL) gets that entry's relative offset (0 if none). */
int64_t ck__oidx_floor(const ck__seg_t *s, int64_t rel, int64_t *entry_rel);
/* Index of the first time entry with timestamp >= ts (s->tidx.n if none). */
size_t ck__tidx_first_ge(const ck__seg_t *s, int64_t ts);
/* Writes the index entries [file_n, upto) to the index file (fl, or open/recovery);
 * `data` holds entry file_n first. */
int ck__index_write(ck__index_t *ix, size_t esize, const uint8_t *data, size_t upto);
/* The same from the index's own array: entries [file_n, n). */
int ck__index_write_own(ck__index_t *ix, size_t esize);
/* Lazily loads (validating, rebuilding from the .log if needed) a sealed segment's indexes
 * and its max timestamp. */
int ck__seg_load_index(int dirfd, ck__seg_t *s, int32_t interval, const char *who);
/* Rebuilds a lazily loaded index (s->idx_lazy) from the .log after a lookup found it
 * wrong. */
int ck__seg_reindex(int dirfd, ck__seg_t *s, int32_t interval, const char *who);
/* Recovery of one segment at open (see segment.c): validates the tail, truncates a torn or
 * corrupt tail, fsyncs, rebuilds and rewrites the index files. Leaves index fds open.
 * *truncated gets the number of bytes cut off. */
int ck__seg_recover(int dirfd, ck__seg_t *s, int32_t interval, const char *who, int64_t *truncated);

/* Small durable files (magic, int64, crc32c). */
int ck__meta_read(int dirfd, const char *name, uint32_t magic, int64_t *value);
/* Writes via temp file + fdatasync + rename + dir fsync. */
int ck__meta_write_durable(int dirfd, const char *name, const char *tmp, uint32_t magic,
                           int64_t value);
/* Writes in place without fsync (the recovery point only needs "never too high"). */
int ck__meta_write_inplace(int fd, uint32_t magic, int64_t value);
#define CK__MAGIC_LOG_START 0x434b4c53u      /* "CKLS" */
#define CK__MAGIC_RECOVERY_POINT 0x434b5250u /* "CKRP" */

/* ---- partition.c ---- */
void ck__partition_ref(ck_partition_t *p);
void ck__partition_unref(ck_partition_t *p);
/* Closes the partition's segments and unregisters nothing; used by drop and log close. */
void ck__partition_close(ck_partition_t *p);
/* Sets the sticky error (first one wins) and logs it. Any thread. */
void ck__partition_fail(ck_partition_t *p, int err, const char *what);
/* Rolls to a new active segment at log_end (owner). */
int ck__partition_roll(ck_partition_t *p, int64_t now_ms);
/* Removes the oldest segment (owner; never the active one). */
void ck__partition_drop_front(ck_partition_t *p);
/* Makes sure the segment's indexes are in memory. */
int ck__partition_seg_index(ck_partition_t *p, ck__seg_t *s);
int ck__partition_seg_reindex(ck_partition_t *p, ck__seg_t *s);

/* ---- flusher.c ---- */
/* Puts p on the dirty list (takes a reference). Owner, with p->listed just set. */
void ck__log_mark_dirty(ck_log_t *log, ck_partition_t *p);

#endif
