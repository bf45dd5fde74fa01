/* Private layouts of the Kafka front end, shared by the connection code and the handlers. */
#ifndef CK_KAFKA_BROKER_INT_H
#define CK_KAFKA_BROKER_INT_H

#include <pthread.h>

#include "core/arena.h"
#include "core/buf.h"
#include "group/groups.h"
#include "group/offsets.h"
#include "kafka/broker.h"
#include "kafka/gen/kafka_msgs.h"
#include "kafka/kerr.h"

typedef struct ck_kconn ck_kconn_t;
typedef struct ck_kreq ck_kreq_t;

/* What a handler tells the dispatcher. */
enum ck_hres {
    CK_H_DONE = 0,   /* the response body is in req->resp */
    CK_H_DEFER = 1,  /* req->resume will be called on durable/wake events until it is DONE */
    CK_H_NORESP = 2, /* no response at all (Produce with acks=0) */
    CK_H_CLOSE = 3,  /* protocol violation: close the connection */
};

typedef int (*ck_kreq_resume_fn)(ck_broker_t *b, ck_kreq_t *req, bool timed_out);

/* Bytes of the reply that are not in req->resp: they go out right after resp[at]. */
typedef struct ck_kcut {
    size_t at;
    const uint8_t *ptr;
    size_t len;
} ck_kcut_t;

#define CK_LAT_KEYS 70
#define CK_LAT_BUCKETS 14
/* upper bounds in seconds of the latency histogram buckets */
extern const double ck__lat_bounds[CK_LAT_BUCKETS];

struct ck_kreq {
    int64_t start_us;     /* arrival, for the latency histogram */
    ck_kconn_t *conn;     /* NULL once the connection went away (the request is orphaned) */
    ck_kreq_t *next;      /* connection queue, in arrival order */
    int16_t api_key, api_version;
    int32_t correlation_id;
    ck_slice_t client_id;
    uint8_t *frame;       /* owned request bytes (size prefix excluded) */
    size_t frame_len;
    ck_arena_t arena;     /* decoded request and handler scratch */
    ck_wbuf_t resp;       /* [size][response header][body], less the cuts */
    ck_kcut_t *cuts;      /* records sent by reference, in order of `at` */
    int ncuts, cuts_cap;
    size_t cut_bytes;     /* sum of the cuts' lengths */
    ck_wbuf_t data;       /* owns the bytes the cuts point into */
    size_t resp_sent;     /* bytes of the whole reply written so far */
    bool done, noresp;
    /* deferred requests */
    ck_kreq_resume_fn resume;
    void *state;
    int64_t deadline_ms;  /* monotonic; resume(timed_out=true) once passed */
    ck_kreq_t *wait_next, *wait_prev;
    bool waiting;
};

struct ck_kconn {
    ck_broker_t *b;
    ck_watch_t watch;
    ck_kconn_t *next, *prev;
    uint8_t *rbuf;        /* READ_CHUNK bytes: small frames are cut from here */
    size_t rlen;
    uint8_t *big;         /* a frame larger than rbuf, read into directly */
    size_t big_len, big_got;
    ck_kreq_t *q_head, *q_tail;
    int q_len;
    size_t pending_bytes;
    int64_t last_active_ms;
    bool read_paused, closing, peer_closed;
    char peer[64];
};

struct ck_broker {
    ck_loop_t *loop;
    ck_log_t *log;
    ck_topics_t *topics;
    ck_offsets_t *offsets; /* NULL: group APIs answer COORDINATOR_NOT_AVAILABLE */
    ck_groups_t groups;    /* consumer-group membership */
    ck_timer_t group_timer; /* session expiries and rebalance deadlines */
    int64_t offsets_expired_at; /* monotonic ms of the last offsets expiry run */
    ck_broker_config_t cfg;
    char *advertised_host;
    char *cluster_id;
    int bound_port;
    ck_watch_t listeners[4];
    int nlisteners;
    ck_kconn_t *conns;
    int nconns;
    ck_kreq_t *waiting; /* deferred requests */
    ck_timer_t wait_timer;
    ck_timer_t idle_timer;
    ck_timer_t sweep_timer;
    bool accepting;
    int inflight;
    ck_wbuf_t scratch; /* fetch read buffer, reused */
    ck_wbuf_t spare;   /* a large reply buffer kept for the next large reply */
    /* incremental fetch sessions (KIP-227) */
    struct ck_fetch_session *sessions;
    int32_t next_session_id;
    /* idempotent producers (idempotence.h): NULL until ck_broker_set_pids */
    struct ck_pid *pids;      /* the caller's producer-id allocator */
    struct ck__idem *idem;    /* per-partition producer state, owned */
    /* counters */
    uint64_t produce_requests, fetch_requests, bytes_in, bytes_out;
    uint64_t produced_bytes, produced_records, fetched_bytes;
    /* request latency (arrival to reply queued) per API key, CK_LAT_BUCKETS + overflow;
     * written on the loop thread, read under lat_mu by other threads */
    pthread_mutex_t lat_mu;
    uint64_t lat_hist[CK_LAT_KEYS][CK_LAT_BUCKETS + 1];
    uint64_t lat_count[CK_LAT_KEYS];
    double lat_sum[CK_LAT_KEYS];
};

/* Marks req complete (response in req->resp) and writes out what is ready. */
void ck__kreq_finish(ck_broker_t *b, ck_kreq_t *req);
/* The whole reply's length: resp plus the records sent by reference. */
static inline size_t ck__kreq_len(const ck_kreq_t *r) { return r->resp.len + r->cut_bytes; }
/* While on, records fields encoded on this thread become cuts of req instead of copies. */
void ck__kreq_records_by_reference(ck_kreq_t *req, bool on);
/* Makes room for n more bytes in req->resp, reusing the broker's spare large buffer. */
void ck__kreq_reserve(ck_broker_t *b, ck_kreq_t *req, size_t n);
/* Parks req until resume() returns CK_H_DONE; deadline_ms < 0 = no timeout. */
void ck__kreq_wait(ck_broker_t *b, ck_kreq_t *req, ck_kreq_resume_fn resume, int64_t deadline_ms);
/* Runs every parked request's resume (after an append or a flush). */
void ck__broker_wake_waiters(ck_broker_t *b);

/* Finds a topic, auto-creating it when allowed (Metadata/Produce). */
ck_topic_t *ck__broker_topic(ck_broker_t *b, ck_slice_t name, bool create, int16_t *err);

/* Handlers: decode req->frame body from r, write the response body into req->resp. */
typedef int (*ck_khandler_fn)(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_api_versions(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_metadata(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_produce(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_fetch(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_list_offsets(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_create_topics(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_delete_topics(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_create_partitions(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_delete_records(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_describe_configs(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_alter_configs(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_incremental_alter_configs(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_describe_cluster(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_find_coordinator(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_offset_commit(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_offset_fetch(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_offset_delete(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_init_producer_id(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
/* Clean shutdown of idempotence: snapshots changed producer state, frees it (idempotence.c). */
void ck__idem_close(ck_broker_t *b);
int ck__h_join_group(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_sync_group(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_heartbeat(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_leave_group(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_describe_groups(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_list_groups(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
int ck__h_delete_groups(ck_broker_t *b, ck_kreq_t *req, ck_rbuf_t *r);
/* Group membership: starts the group timer / frees the groups (h_group.c). */
void ck__groups_start(ck_broker_t *b);
void ck__groups_stop(ck_broker_t *b);
/* For OffsetCommit: 0 if (generation, member) may commit to group, else a Kafka error. */
int16_t ck__group_commit_check(ck_broker_t *b, ck_slice_t group, int32_t generation, ck_slice_t member,
                               ck_slice_t instance);

/* The API keys and version ranges we serve (ApiVersions reply); NULL if not served. */
typedef struct ck_served_api {
    int16_t key, min_version, max_version;
    ck_khandler_fn fn;
} ck_served_api_t;
const ck_served_api_t *ck__served_api(int16_t key);
extern const ck_served_api_t ck__served_apis[];
extern const int ck__served_apis_count;

/* Drops a closed connection's state from incremental fetch sessions etc. */
void ck__fetch_sessions_free(ck_broker_t *b);

#endif
