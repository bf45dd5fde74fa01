/* Committed offsets: kept in memory and made durable in the internal offsets log (one
 * partition of the storage engine, topic "__consumer_offsets" partition 0 of the log it is
 * given). Record format and recovery: docs/GROUPS.md.
 *
 * Thread: the owner thread of the log (the event loop). A commit is durable once the
 * partition's durable_end passes the offset ck_offsets_commit() returns; callers wait for
 * that before they acknowledge, exactly like a produce with acks=all. */
#ifndef CK_GROUP_OFFSETS_H
#define CK_GROUP_OFFSETS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "log/log.h"

typedef struct ck_offsets ck_offsets_t;

typedef struct ck_offset_commit {
    ck_slice_t topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch; /* -1 = none */
    ck_slice_t metadata;  /* len -1 = null */
} ck_offset_commit_t;

/* What is stored for one (group, topic, partition). Valid until the next change of the
 * same key. */
typedef struct ck_offset_entry {
    int64_t offset;
    int32_t leader_epoch;
    ck_slice_t metadata;
    int64_t commit_ms;
} ck_offset_entry_t;

/* Opens (creating) the offsets partition in `log` and replays it. Errors from the log. */
int ck_offsets_open(ck_log_t *log, ck_offsets_t **out);
void ck_offsets_close(ck_offsets_t *o);
ck_partition_t *ck_offsets_partition(ck_offsets_t *o);

/* Appends the commits of one group as one batch and applies them in memory. Returns 0
 * and in *last the log offset that must be durable before acknowledging; CK_EINVAL for an
 * empty group name or a topic name over 255 bytes; log errors (CK_ESTATE...) unchanged,
 * in which case nothing changed in memory. */
int ck_offsets_commit(ck_offsets_t *o, ck_slice_t group, const ck_offset_commit_t *c, int n,
                      int64_t now_ms, int64_t *last);
/* Tombstones for one partition, or for every offset of a group (topic.len < 0). Returns
 * 0 (and *last = -1 when there was nothing to delete). */
int ck_offsets_delete(ck_offsets_t *o, ck_slice_t group, ck_slice_t topic, int32_t partition,
                      int64_t now_ms, int64_t *last);

const ck_offset_entry_t *ck_offsets_get(ck_offsets_t *o, ck_slice_t group, ck_slice_t topic,
                                        int32_t partition);
/* Calls fn for every stored offset of group (any order). */
typedef void (*ck_offsets_fn)(void *arg, ck_slice_t topic, int32_t partition, const ck_offset_entry_t *e);
void ck_offsets_foreach(ck_offsets_t *o, ck_slice_t group, ck_offsets_fn fn, void *arg);
bool ck_offsets_group_has(ck_offsets_t *o, ck_slice_t group);
/* Calls fn with the group name of every stored offset (a group may come several times). */
typedef void (*ck_offsets_group_fn)(void *arg, ck_slice_t group);
void ck_offsets_foreach_group(ck_offsets_t *o, ck_offsets_group_fn fn, void *arg);
/* Writes tombstones for the offsets of groups that `active` says have no members and
 * whose last commit is older than retention_ms (offsets.retention.minutes). Returns the
 * number expired (and *last as for ck_offsets_delete), or a log error. */
typedef bool (*ck_offsets_active_fn)(void *arg, ck_slice_t group);
int ck_offsets_expire(ck_offsets_t *o, int64_t now_ms, int64_t retention_ms, ck_offsets_active_fn active,
                      void *arg, int64_t *last);
/* Cleanup of the offsets log (docs/GROUPS.md): when the log holds more than min_bytes
 * and more than `ratio` times the size of the live state, appends the live state again;
 * on a later call, once that copy is durable, moves the log start to it. Call it now and
 * then (the group timer does). Returns 1 when a step was taken, 0 if none was due. */
int ck_offsets_compact_step(ck_offsets_t *o, int64_t min_bytes, int ratio, int64_t now_ms);
/* Number of live (group, topic, partition) keys. */
long ck_offsets_count(const ck_offsets_t *o);

#endif
