/* Consumer-group membership (the classic protocol): groups, members, generations and the
 * state machine of docs/GROUPS.md. Pure state, no I/O: the Kafka handlers
 * (src/kafka/h_group.c) call these functions and build replies from the results.
 *
 * Thread: the owner thread (the event loop). Times are monotonic milliseconds. */
#ifndef CK_GROUP_GROUPS_H
#define CK_GROUP_GROUPS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

enum ck_group_state { CK_GS_EMPTY, CK_GS_PREPARING, CK_GS_COMPLETING, CK_GS_STABLE, CK_GS_DEAD };

typedef struct ck_gproto {
    char *name;
    uint8_t *meta;
    int32_t len;
} ck_gproto_t;

typedef struct ck_gmember {
    struct ck_gmember *next;
    char *id;
    char *instance_id; /* NULL unless static */
    char *client_id, *client_host;
    int32_t session_timeout_ms, rebalance_timeout_ms;
    ck_gproto_t *protos;
    int nprotos;
    uint8_t *assignment;
    int32_t alen;
    int64_t deadline;     /* session expiry */
    bool joined;          /* has a JoinGroup waiting in this rebalance */
    bool pending;         /* id issued by MEMBER_ID_REQUIRED, not a member yet */
} ck_gmember_t;

typedef struct ck_group {
    struct ck_group *next;
    char *id;
    int state;
    int32_t generation;
    char *protocol_type;
    char *protocol; /* chosen in the last rebalance */
    char *leader;   /* member id */
    ck_gmember_t *members;
    int64_t rebalance_deadline;
    int64_t initial_until; /* a new group waits this long for more first members */
    int64_t initial_cap;   /* ... but never past this */
} ck_group_t;

/* How long a new group (first rebalance from Empty) waits for more members, extended by
 * each new member up to 10 times (Kafka's group.initial.rebalance.delay.ms is 3000 ms;
 * consumers that start together join one generation instead of one each). */
#define CK_GROUP_INITIAL_DELAY_MS 200

typedef struct ck_groups {
    ck_group_t *list;
    uint64_t next_id;
} ck_groups_t;

const char *ck_group_state_name(int state);

ck_group_t *ck_groups_find(ck_groups_t *gs, ck_slice_t id);
ck_group_t *ck_groups_get(ck_groups_t *gs, ck_slice_t id); /* creates an Empty group; NULL on OOM */
void ck_groups_remove(ck_groups_t *gs, ck_group_t *g);
void ck_groups_free(ck_groups_t *gs);

ck_gmember_t *ck_group_member(ck_group_t *g, ck_slice_t member_id);
ck_gmember_t *ck_group_member_by_instance(ck_group_t *g, ck_slice_t instance_id);
int ck_group_count(const ck_group_t *g); /* members, pending ones excluded */

/* A new member id "<client id>-<unique>" (owned by the caller, ck_free). */
char *ck_groups_new_member_id(ck_groups_t *gs, ck_slice_t client_id);

/* Adds (or updates) member `id` with its protocols; returns it, NULL on OOM. */
ck_gmember_t *ck_group_upsert(ck_group_t *g, const char *id, ck_slice_t instance_id, ck_slice_t client_id,
                              const char *client_host, int32_t session_ms, int32_t rebalance_ms,
                              const ck_gproto_t *protos, int nprotos, int64_t now);
void ck_group_remove_member(ck_group_t *g, ck_gmember_t *m);
/* True if some protocol is supported by every member (and by the given set when not NULL). */
bool ck_group_protocols_compatible(const ck_group_t *g, const ck_gproto_t *protos, int n);

/* Starts (or continues) a rebalance: state Preparing, deadline = now + the largest
 * rebalance timeout of the members. */
void ck_group_prepare(ck_group_t *g, int64_t now);
/* Completes the rebalance if every member joined or the deadline passed (members that
 * did not join are removed then). Returns true if the state changed. */
bool ck_group_try_complete(ck_group_t *g, int64_t now);
/* Stores the leader's assignments and makes the group Stable. */
int ck_group_assign(ck_group_t *g, const char *const *member_ids, const ck_slice_t *assignments, int n);
/* Removes members whose session expired; starts a rebalance if any. Returns true if
 * something changed. */
bool ck_group_expire(ck_group_t *g, int64_t now);
/* Metadata of member m for the chosen protocol (empty slice if none). */
ck_slice_t ck_group_member_meta(const ck_group_t *g, const ck_gmember_t *m);

#endif
