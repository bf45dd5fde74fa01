/* The search capability: for each topic with searchable=true, an index of segments fed by
 * the indexer, searchable near-real-time and committed to disk with its checkpoint.
 *
 * Life of a record (docs/SEARCH.md): the indexer's search worker applies it (docfields →
 * the topic's segment builder); at the next refresh the builder becomes an in-memory
 * segment, published in a new snapshot, and the partition's visible offset moves (the
 * record is searchable); at the next flush the in-memory segments are merged into one
 * on-disk segment and COMMIT is rewritten with the checkpoint (the record survives a
 * restart without re-indexing). A merge thread merges on-disk segments of one level.
 *
 * Topic configs: searchable (or searchable.enabled), searchable.refresh.ms (max interval
 * between refreshes, default 1000; under light load refreshes come sooner),
 * searchable.language (Snowball stemmer, default english; "none" = no stemming),
 * searchable.stopwords (English stop words, default true).
 *
 * Threads: the capability ops run on the indexer's search worker; ck_sidx_acquire and the
 * snapshot accessors on any thread. */
#ifndef CK_SEARCH_SINDEX_H
#define CK_SEARCH_SINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/indexer.h"
#include "search/analyze.h"
#include "search/segment.h"

typedef struct ck_sidx ck_sidx_t;

typedef struct ck_sidx_config {
    const char *dir;    /* <data>/search, created if missing */
    int64_t flush_ms;   /* in-memory segments older than this are committed (30000) */
    size_t flush_bytes; /* ... or larger than this in total (64 MiB) */
    int index_threads;  /* threads indexing one topic's records (0: 2 with 2+ CPUs, else 1) */
} ck_sidx_config_t;

int ck_sidx_new(const ck_sidx_config_t *cfg, ck_sidx_t **out);
/* After the indexer stopped. */
void ck_sidx_free(ck_sidx_t *s);

extern const ck_capability_ops_t ck_sidx_ops;

/* ---- any thread ---- */

/* A consistent, immutable view of one index: its segments at one refresh. Holds
 * references; release it. */
typedef struct ck_sidx_snap {
    char *index;         /* topic name */
    ck_segment_t **segs; /* nsegs, oldest first */
    size_t nsegs;
    int32_t npart;
    int64_t *log_start;            /* per partition: docs below are expired (retention) */
    bool all_live;                 /* no doc of the snapshot is below its log start */
    ck_analyzer_config_t analyzer; /* language points into the snapshot */
} ck_sidx_snap_t;

/* The current snapshot of a searchable topic, or NULL (unknown, not searchable, not
 * opened yet). */
ck_sidx_snap_t *ck_sidx_acquire(ck_sidx_t *s, const char *index);
void ck_sidx_release(ck_sidx_snap_t *snap);
/* live() for ck_search_view_t: false for docs below their partition's log start. */
bool ck_sidx_live(void *snap, size_t seg, uint32_t doc);

/* Names of the searchable topics that are open (caller frees each and the array with
 * ck_free). Returns the count, or CK_ENOMEM. */
int ck_sidx_list(ck_sidx_t *s, char ***names);

typedef struct ck_sidx_stats {
    uint64_t docs;       /* live segments' docs (expired ones included until dropped) */
    uint64_t disk_bytes; /* committed segment files */
    uint64_t mem_bytes;  /* in-memory segments */
    uint32_t segments_disk, segments_mem;
    uint64_t merges, flushes, refreshes;
    bool merging; /* a merge is queued or running */
} ck_sidx_stats_t;
bool ck_sidx_stats(ck_sidx_t *s, const char *index, ck_sidx_stats_t *st);

#endif
