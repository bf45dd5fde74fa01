/* The broker's side of idempotent producers (KIP-98): the table of per-partition producer
 * state (src/txn/pstate.h) keyed by (topic id, partition), its lazy loading at first use
 * after a start (newest valid snapshot + replay of the log), its snapshots (every
 * CK__IDEM_SNAPSHOT_MS for partitions that changed, and at clean shutdown), and the
 * epochs InitProducerId handed out. Procedure and formats: docs/PRODUCER_STATE.md.
 *
 * Ownership: the table belongs to the broker (b->idem), created by ck_broker_set_pids and
 * freed by ck__idem_close. Entries of deleted topics are dropped at the next snapshot
 * round (their id is never reused, so a stale entry is never found for a new topic).
 * Thread: loop thread only. Loading and snapshot writes do blocking file I/O. */
#ifndef CK_KAFKA_IDEMPOTENCE_H
#define CK_KAFKA_IDEMPOTENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "kafka/broker_int.h"
#include "txn/pstate.h"

#define CK__IDEM_SNAPSHOT_MS 60000
/* Replay at most this many offsets at load: older producers are then unknown, which
 * accepts their next batch with any sequence (Kafka's rule for unknown producers), so a
 * bound costs only deduplication of retries older than the bound, never availability. */
#define CK__IDEM_REPLAY_MAX_OFFSETS INT64_C(20000000)

/* One partition's producer state. */
typedef struct ck__idem_part {
    uint8_t ip_topic_id[16];
    int32_t ip_partition;
    ck_pstate_t *ip_state;
    bool ip_dirty;          /* changed since the last snapshot */
    int64_t ip_snap_offset; /* newest snapshot this process read or wrote, -1 none */
} ck__idem_part_t;

/* The state of partition `partition` of topic t (which must exist), loaded at first use:
 * snapshot + replay. NULL when idempotence is off (no allocator) or out of memory.
 * The pointer stays valid until the next ck__idem_* call that may drop entries (the
 * snapshot round), i.e. within one handler call. */
ck__idem_part_t *ck__idem_part(ck_broker_t *b, ck_topic_t *t, int32_t partition);

/* KIP-360: the newest epoch known for producer `pid` (handed out by InitProducerId in
 * this process, or in the state of any partition, loading every partition if needed).
 * Returns true and *epoch, or false if the broker knows nothing of pid. */
bool ck__idem_known_epoch(ck_broker_t *b, int64_t pid, int16_t *epoch);
/* Remembers that InitProducerId handed out (pid, epoch). */
void ck__idem_issued(ck_broker_t *b, int64_t pid, int16_t epoch);

#endif
