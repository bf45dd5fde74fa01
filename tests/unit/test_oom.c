/* Allocation failure at every point of a few paths: each returns an error (or succeeds),
 * never crashes, and leaves nothing behind (the sanitizer build checks leaks). */
#include "core/alloc.h"
#include "core/arena.h"
#include "core/buf.h"
#include "kafka/gen/kafka_msgs.h"
#include "log/batch.h"
#include "test.h"

static void build_produce(ck_wbuf_t *w)
{
    ck_arena_t a = CK_ARENA_INIT;
    ck_kafka_produce_request_t rq;
    ck_kafka_produce_request_init(&rq);
    rq.acks = -1;
    rq.timeout_ms = 1000;
    rq.topic_data.count = 3;
    rq.topic_data.items = ck_arena_calloc(&a, 3 * sizeof(*rq.topic_data.items));
    for (int i = 0; i < 3; i++) {
        __typeof__(rq.topic_data.items[0]) *td = &rq.topic_data.items[i];
        ck_kafka_produce_request_topic_produce_data_init(td);
        td->name = ck_slice_cstr(i == 0 ? "a" : i == 1 ? "b" : "c");
        td->partition_data.count = 4;
        td->partition_data.items = ck_arena_calloc(&a, 4 * sizeof(*td->partition_data.items));
        for (int j = 0; j < 4; j++) {
            td->partition_data.items[j].index = j;
            td->partition_data.items[j].records = ck_slice("0123456789", 10);
        }
    }
    ck_kafka_produce_request_encode(w, 9, &rq);
    CHECK_EQ(w->err, 0);
    ck_arena_free(&a);
}

CK_TEST(oom_decode_every_allocation)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    build_produce(&w);
    int failures = 0, successes = 0;
    for (long k = 1; k < 64; k++) {
        ck_arena_t a = CK_ARENA_INIT;
        ck_rbuf_t r;
        ck_rbuf_init(&r, w.data, w.len);
        ck_kafka_produce_request_t rq;
        ck_kafka_produce_request_init(&rq);
        ck_alloc_fail_after(k);
        int rc = ck_kafka_produce_request_decode(&r, 9, &a, &rq);
        ck_alloc_fail_after(0);
        if (rc == 0) {
            successes++;
            CHECK_EQ(rq.topic_data.count, 3);
            CHECK_EQ(rq.topic_data.items[2].partition_data.items[3].index, 3);
        } else {
            CHECK_EQ(rc, CK_ENOMEM);
            failures++;
        }
        ck_arena_free(&a);
    }
    CHECK(failures >= 1);  /* the first allocation failing must be seen */
    CHECK(successes >= 1); /* and once past every allocation, it works */
    ck_wbuf_free(&w);
}

CK_TEST(oom_writer_is_sticky)
{
    ck_wbuf_t w = CK_WBUF_INIT;
    ck_alloc_fail_after(1);
    ck_wr_u32(&w, 7);
    ck_alloc_fail_after(0);
    CHECK_EQ(w.err, CK_ENOMEM);
    ck_wr_u32(&w, 8); /* no-op after the failure */
    CHECK_EQ(w.len, 0);
    ck_wbuf_free(&w);
}
