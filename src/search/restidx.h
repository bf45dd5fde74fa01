/* REST-created indexes: Elasticsearch-style indexes made with PUT /{index}, holding JSON
 * documents under string ids (API.md §2.3), on the same segment engine as topic search.
 *
 * A set is one folder (<data>/rest_indexes) with one subfolder per index. Each index keeps
 * its mapping in meta.json and every write in an append-only, checksummed operation log
 * (ops.log) fsynced before the write returns, so an acknowledged write survives kill -9.
 * Opening the set replays the logs. The format and recovery rules are written at the top
 * of restidx.c and in docs/SEARCH.md ("REST-created indexes").
 *
 * Search: a write goes to the index's segment builder; it becomes searchable at the next
 * refresh, which ck_restidx_acquire() performs when anything changed since the last one
 * (so a search always sees every write acknowledged before it started). A snapshot is
 * immutable: its segments and a frozen copy of the live-doc bitmap, so writes, refreshes
 * and merges that happen while a search runs do not change what it sees.
 *
 * Errors: int returns are 0 or a negative CK_E* code. Functions taking a
 * ck_search_error_t *err (may be NULL) fill it on failure with the HTTP status and ES
 * error type the HTTP layer should answer with.
 *
 * Thread: every function may be called from any thread concurrently. Writes to one index
 * are serialized (one mutex per index, held across the log fsync); the set's registry has
 * its own mutex. */
#ifndef CK_SEARCH_RESTIDX_H
#define CK_SEARCH_RESTIDX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "search/query.h"
#include "search/segment.h"

#define CK_RESTIDX_NAME_MAX 255        /* bytes in an index name (ES limit) */
#define CK_RESTIDX_ID_MAX 512          /* bytes in a document id (ES limit) */
#define CK_RESTIDX_UUID_LEN 22         /* URL-safe base64 of 16 random bytes */
#define CK_RESTIDX_GEN_ID_LEN 20       /* generated ids (POST /{index}/_doc) */
#define CK_RESTIDX_DOC_MAX (64u << 20) /* bytes of one serialized _source */

typedef struct ck_restidx_set ck_restidx_set_t;

/* Opens (creating if missing) the folder dir and loads every index in it: replays each
 * ops.log, truncating a torn or corrupt tail away, and builds the in-memory state and
 * one segment per index. A subfolder that is not a valid index (no or bad meta.json) is
 * skipped with a warning; leftovers of an interrupted create/drop are removed. On 0, *out
 * is owned by the caller (ck_restidx_close()). Errors: CK_EIO (folder not usable or a log
 * not readable/truncatable), CK_ENOMEM, CK_ETOOBIG (path too long). */
int ck_restidx_open(const char *dir, ck_restidx_set_t **out);
/* Closes the set. No call may be running on it; snapshots still held stay valid until
 * released (they keep their index alive). NULL is a no-op. */
void ck_restidx_close(ck_restidx_set_t *set);

/* Checks an index name against ES rules: non-empty, at most 255 bytes, lowercase, none of
 * \ / * ? " < > | space , # : and no NUL, not starting with _ - +, not "." or "..".
 * Returns 0 or CK_EINVAL with err = 400 invalid_index_name_exception. */
int ck_restidx_check_name(const char *name, ck_search_error_t *err);

/* Creates an index. body is the PUT /{index} request body (NULL = no body): keys
 * "mappings" ({"properties": {...}, plus ES root options, accepted and kept}),
 * "settings" (kept, not interpreted) and "aliases" (ignored). Field definitions:
 * {"type": T, ...} with T one of text, match_only_text, keyword, constant_keyword,
 * wildcard, long, integer, short, byte, double, float, half_float, scaled_float,
 * unsigned_long, date, date_nanos, boolean, geo_point, object, nested; "properties" for
 * object fields (dotted paths). The new index is durable on return.
 * Errors: CK_EINVAL (400: invalid_index_name_exception, mapper_parsing_exception "No
 * handler for type [x] declared on field [f]", parse_exception for an unknown body key),
 * CK_EEXIST (400 resource_already_exists_exception "index [x/uuid] already exists"),
 * CK_EIO / CK_ENOSPC (500), CK_ENOMEM (500). */
int ck_restidx_create(ck_restidx_set_t *set, const char *name, const json_t *body,
                      ck_search_error_t *err);
/* Drops an index and its files. Snapshots of it stay valid until released; later writes
 * to the name see no index. Errors: CK_ENOENT, CK_EIO (files left behind; the index is
 * gone from the set anyway). */
int ck_restidx_drop(ck_restidx_set_t *set, const char *name);
bool ck_restidx_exists(ck_restidx_set_t *set, const char *name);

/* The index's "mappings" object as given at create time ({} when none), a new reference
 * owned by the caller; NULL when there is no such index (or on allocation failure). The
 * HTTP layer wraps it as {"<index>":{"mappings":...}}. */
json_t *ck_restidx_mapping(ck_restidx_set_t *set, const char *name);

typedef enum {
    CK_RESTIDX_CREATED = 1,
    CK_RESTIDX_UPDATED,
    CK_RESTIDX_DELETED,
    CK_RESTIDX_NOT_FOUND,
} ck_restidx_result_t;

/* "created", "updated", "deleted", "not_found". */
const char *ck_restidx_result_name(ck_restidx_result_t r);

typedef struct ck_restidx_write {
    ck_restidx_result_t result;
    uint64_t version;               /* the id's version after the write (1 for the first) */
    uint64_t seq_no;                /* the index's sequence number of the write */
    char id[CK_RESTIDX_ID_MAX + 1]; /* the document id (the generated one for id NULL) */
} ck_restidx_write_t;

/* Indexes doc (a JSON object, borrowed) under id, replacing the previous version; id NULL
 * generates a random 20-char URL-safe id (POST /{index}/_doc). With auto_create a missing
 * index is created with dynamic mapping (ES's default). Durable (log fsynced) on 0.
 * Errors: CK_ENOENT (404 index_not_found_exception "no such index [x]"), CK_EINVAL (400:
 * mapper_parsing_exception for a non-object doc, illegal_argument_exception for an empty
 * or too long id, invalid_index_name_exception when auto-creating), CK_ETOOBIG (413
 * document larger than CK_RESTIDX_DOC_MAX), CK_EIO/CK_ENOSPC/CK_ESTATE (500; after a
 * failed fsync the index refuses writes until the set is reopened), CK_ENOMEM. */
int ck_restidx_index(ck_restidx_set_t *set, const char *name, const char *id, const json_t *doc,
                     bool auto_create, ck_restidx_write_t *res, ck_search_error_t *err);

/* Reads a document. Returns CK_ENOENT when there is no such index; otherwise 0 with
 * *source = a new object owned by the caller and *version, *seq set when the doc exists,
 * or *source = NULL (and *version = *seq = 0) when it does not. version/seq may be NULL.
 * CK_ENOMEM. */
int ck_restidx_get(ck_restidx_set_t *set, const char *name, const char *id, json_t **source,
                   uint64_t *version, uint64_t *seq);

/* Deletes a document. res->result is DELETED (durable on return) or NOT_FOUND (nothing
 * written; HTTP 404 with the same body shape). Errors: as ck_restidx_index (no
 * auto-create). */
int ck_restidx_delete(ck_restidx_set_t *set, const char *name, const char *id,
                      ck_restidx_write_t *res, ck_search_error_t *err);

typedef struct ck_restidx_info {
    char name[CK_RESTIDX_NAME_MAX + 1];
    char uuid[CK_RESTIDX_UUID_LEN + 1];
    uint64_t docs_count;   /* live documents */
    uint64_t docs_deleted; /* replaced or deleted docs still held in segments */
    uint64_t store_bytes;  /* bytes on disk (ops.log + meta.json) */
    int64_t created_ms;
} ck_restidx_info_t;

/* Every index, sorted by name: *out is an array of *n entries owned by the caller
 * (ck_free; NULL when *n is 0). Errors: CK_ENOMEM. */
int ck_restidx_list(ck_restidx_set_t *set, ck_restidx_info_t **out, size_t *n);

/* ---- search ---- */

typedef struct ck_restidx_snap ck_restidx_snap_t;

/* Refreshes the index if anything changed since its last refresh (and merges segments
 * when more than 8 pile up), then returns a new reference to its current snapshot, or
 * NULL (no such index, or CK_ENOMEM while refreshing). The snapshot is immutable and
 * stays valid (also across a drop of the index) until ck_restidx_release(). */
ck_restidx_snap_t *ck_restidx_acquire(ck_restidx_set_t *set, const char *name);
void ck_restidx_release(ck_restidx_snap_t *snap);

/* Fills a view of the snapshot for ck_search_execute(): index name, segments, analyzer
 * (standard, english stemmer, stop words: the topics' default) and live()/live_ctx. All
 * pointers stay valid while the snapshot is held. */
void ck_restidx_view(ck_restidx_snap_t *snap, ck_search_view_t *out);

/* The live() of the view: false for docs replaced or deleted before the snapshot. */
bool ck_restidx_live(void *snap, size_t seg, uint32_t doc);

/* The _source of a hit (a new object owned by the caller) and its _id, copied to
 * id_out (NUL-terminated, truncated to id_cap - 1 bytes; id_out may be NULL). The
 * document is the version the snapshot saw, even if it was replaced since. NULL when
 * (seg, doc) is not a live doc of the snapshot, or on allocation failure. */
json_t *ck_restidx_hit_source(ck_restidx_snap_t *snap, size_t seg, uint32_t doc, char *id_out,
                              size_t id_cap);

#endif
