/* The indexer: tails the log of every topic that has a capability enabled (columnar SQL,
 * search, vector) and hands its records to that capability, in the background.
 *
 * Two sides:
 *  - the loop side (the server's event loop thread, which owns the log and the topics):
 *    ck_indexer_poll() notices topics whose capability was enabled, disabled, resized,
 *    reconfigured or deleted, and reads durable batches (below the high watermark) from
 *    each partition at the capability's cursor into jobs;
 *  - one worker thread per capability, which decodes the batches (every codec) and calls
 *    the capability's ops with the records. The produce path does nothing for indexing.
 *
 * Checkpoints: a capability reports, when it opens a topic, the next offset it needs per
 * partition (its checkpoint, stored atomically with its own data). The indexer feeds from
 * there; records below it are skipped, so a replay after a crash never applies a record
 * twice. A cursor below the log start (retention, DeleteRecords) jumps to the log start.
 *
 * Visibility: a capability publishes, per partition, the next offset whose effects are
 * visible to queries (ck_idx_topic_set_visible). Lag = high watermark - visible. Readers
 * on any thread can wait for visibility (read-your-writes) with ck_indexer_wait(). */
#ifndef CK_INDEX_INDEXER_H
#define CK_INDEX_INDEXER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "log/batch.h"
#include "log/topics.h"

typedef struct ck_indexer ck_indexer_t;

/* A topic as a capability's worker sees it: a snapshot taken on the loop thread. */
typedef struct ck_idx_part {
    _Atomic int64_t visible;   /* next offset visible to queries (capability sets) */
    _Atomic int64_t hw;        /* the partition's high watermark (loop sets) */
    _Atomic int64_t log_start; /* the partition's log start (loop sets) */
} ck_idx_part_t;

typedef struct ck_idx_topic {
    char *name;
    uint8_t id[16];
    int32_t npart;        /* changes (grows) under the indexer's lock, before an open job */
    ck_idx_part_t *parts; /* npart entries; the worker reaches them only through the
                           * functions below */
    ck_kvs_t configs;     /* effective explicit configs at the last open/config job */
    void *priv;           /* the capability's per-topic state (worker thread only) */
    char status[160];     /* "" or the last error, for /topics (guarded by the indexer) */
} ck_idx_topic_t;

/* The records of one batch, decoded. */
typedef struct ck_idx_batch {
    int32_t partition;
    int8_t ts_type; /* 0 CreateTime, 1 LogAppendTime */
    bool control;   /* control batch (transaction markers): no user records */
    int n;
    const ck_record_t *recs; /* valid during the call */
    bool compressed;         /* the records' pos are in the decompressed records */
} ck_idx_batch_t;

/* A capability. Every op runs on the capability's worker thread, except `enabled`, which
 * runs on the loop thread and must only read the topic. Errors returned by open/apply are
 * logged and stored as the topic's status; apply errors stop feeding that topic until the
 * next open (the checkpoint stays, nothing is skipped). */
typedef struct ck_capability_ops {
    const char *name; /* "columnar" */
    bool (*enabled)(const ck_topic_t *t);
    /* Opens (or re-opens after a partition count change) the capability's data for t and
     * fills next[0..npart) with the next offset needed per partition (0 = from the log
     * start). The topic's data folder belongs to the capability; data of a topic with
     * another id is stale and must be discarded. */
    int (*open_topic)(void *cap, ck_idx_topic_t *t, int64_t *next);
    /* New configs (t->configs already replaced). */
    int (*config_topic)(void *cap, ck_idx_topic_t *t);
    int (*apply)(void *cap, ck_idx_topic_t *t, const ck_idx_batch_t *b);
    /* Called when the job queue is empty, and at least every 50 ms while busy: make
     * applied records visible, flush, roll (publish visibility with set_visible). */
    void (*idle)(void *cap, int64_t now_ms);
    /* The topic was deleted or the capability disabled: drop its data and t->priv. */
    void (*drop_topic)(void *cap, ck_idx_topic_t *t);
    /* Server shutdown: release t->priv, keep the data. */
    void (*close_topic)(void *cap, ck_idx_topic_t *t);
} ck_capability_ops_t;

/* Publishes visibility; wakes ck_indexer_wait() callers. Worker thread. */
void ck_idx_topic_set_visible(ck_idx_topic_t *t, int32_t partition, int64_t next_offset);
/* The partition's log start as last seen by the loop (retention moves it). Any thread. */
int64_t ck_idx_topic_log_start(ck_idx_topic_t *t, int32_t partition);
/* Asks for the topic to be opened again (worker thread): feeding stops, and within a few
 * seconds open_topic runs again and feeding resumes from the offsets it reports — how a
 * capability rewinds (re-indexes records it has already seen). */
void ck_idx_topic_reopen(ck_idx_topic_t *t);
/* Stores an error message shown in the topic's status ("" clears). Worker thread. */
void ck_idx_topic_set_status(ck_idx_topic_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Creates the indexer over `topics` (loop thread). */
int ck_indexer_new(ck_topics_t *topics, ck_indexer_t **out);
/* Adds a capability with its own worker thread; call before the first poll. */
int ck_indexer_add(ck_indexer_t *ix, const ck_capability_ops_t *ops, void *cap);
/* Loop thread: reconcile topics and feed the workers. Cheap when there is nothing to do.
 * Call it after durable progress and on a timer (~20 ms). */
void ck_indexer_poll(ck_indexer_t *ix);
/* Set by the server: called from a worker thread when it wants the loop to poll soon
 * (its queue drained). Must be thread-safe (e.g. an eventfd). */
void ck_indexer_set_kick(ck_indexer_t *ix, void (*kick)(void *), void *arg);
/* Stops the workers (close_topic on each topic) and frees everything. Loop thread. */
void ck_indexer_free(ck_indexer_t *ix);

/* ---- any thread ---- */

typedef struct ck_idx_status {
    bool enabled;   /* the capability is on for the topic */
    bool ready;     /* opened by the worker */
    int32_t npart;
    int64_t lag;    /* sum over partitions of hw - visible */
    char status[160];
} ck_idx_status_t;
/* Capability `cap` ("columnar") of topic `topic`. Returns false if the capability is
 * unknown or not enabled on that topic. parts (optional, npart_max entries) receives
 * each partition's visible offset and hw. */
bool ck_indexer_status(ck_indexer_t *ix, const char *cap, const char *topic, ck_idx_status_t *st,
                       int64_t *visible, int64_t *hw, int npart_max);
/* Waits until partition's visible offset >= offset or deadline (monotonic ms). Returns 0,
 * CK_EAGAIN (deadline passed), CK_ECLOSED (shutting down), or CK_ENOENT (capability not enabled on the topic / no such partition). */
int ck_indexer_wait(ck_indexer_t *ix, const char *cap, const char *topic, int32_t partition,
                    int64_t offset, int64_t deadline_ms);
/* Waits until the capability has opened the topic (its tables exist) or failed to, or
 * the deadline. Returns 0, CK_EAGAIN, CK_ENOENT (not enabled), CK_ECLOSED. */
int ck_indexer_wait_ready(ck_indexer_t *ix, const char *cap, const char *topic, int64_t deadline_ms);
/* Shutdown: ck_indexer_wait callers return CK_ECLOSED now and from now on. */
void ck_indexer_cancel_waits(ck_indexer_t *ix);
/* Prometheus lines for every capability/topic/partition: chronik_indexer_lag_records,
 * chronik_indexer_visible_offset. */
struct ck_wbuf;
void ck_indexer_metrics(ck_indexer_t *ix, struct ck_wbuf *out);

#endif
