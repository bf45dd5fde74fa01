/* libFuzzer target: arbitrary bytes through the Kafka request decoders.
 *
 * Input: int16 api key, int16 api version (big-endian), then a request as it follows the
 * size prefix on the wire: request header (the version the API/version pair calls for),
 * then the body. A key that names no API, or a version outside the API's range, is first
 * checked to be refused (CK_EUNSUP, nothing read) and then folded into a valid one, so
 * every input reaches a body decoder.
 *
 * Properties checked on top of ASan/UBSan:
 *   - a header or body that decodes re-encodes without error, the encoding decodes again,
 *     consuming every byte, and encodes to the same bytes (encode . decode is stable);
 *   - for Produce, every partition's records, and for every API the raw bytes after the
 *     4-byte prefix, go through the record-batch and legacy checks of fuzz_common.h.
 * Decoded structures live in one arena per input; nothing outlives the call. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "fuzz_common.h"
#include "kafka/gen/kafka_msgs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encodes m (decoded at version v), decodes the encoding into a fresh structure, and
 * checks the second encoding is byte-identical to the first. */
static void roundtrip(const ck_kafka_msg_desc_t *d, int16_t v, const void *m, ck_arena_t *a)
{
    ck_wbuf_t w1 = CK_WBUF_INIT, w2 = CK_WBUF_INIT;
    d->encode(&w1, v, m);
    if (w1.err == CK_ENOMEM) {
        ck_wbuf_free(&w1);
        return;
    }
    FUZZ_CHECK(w1.err == 0, "re-encoding a decoded message fails");
    uint8_t *copy = fuzz_dup(w1.data, w1.len); /* exact size, for ASan */
    void *m2 = ck_arena_calloc(a, d->root->size);
    FUZZ_CHECK(m2 != NULL, "arena");
    ck_rbuf_t r;
    ck_rbuf_init(&r, copy, w1.len);
    int rc = d->decode(&r, v, a, m2);
    if (rc != CK_ENOMEM) {
        if (rc != 0)
            fprintf(stderr, "%s v%d: re-decode failed: %s\n", d->name, v, ck_strerror(rc));
        FUZZ_CHECK(rc == 0, "decoding a re-encoded message fails");
        FUZZ_CHECK(ck_rbuf_left(&r) == 0, "decoding a re-encoded message leaves bytes");
        d->encode(&w2, v, m2);
        FUZZ_CHECK(w2.err == 0 || w2.err == CK_ENOMEM, "second encoding fails");
        if (!w2.err)
            FUZZ_CHECK(w2.len == w1.len && (w1.len == 0 || memcmp(w1.data, w2.data, w1.len) == 0),
                       "encode(decode(encode(m))) differs from encode(m)");
    }
    free(copy);
    ck_wbuf_free(&w1);
    ck_wbuf_free(&w2);
}

static void check_produce_records(const ck_kafka_produce_request_t *req)
{
    for (int32_t t = 0; t < req->topic_data.count; t++) {
        const ck_kafka_produce_request_topic_produce_data_t *td = &req->topic_data.items[t];
        for (int32_t i = 0; i < td->partition_data.count; i++) {
            ck_slice_t recs = td->partition_data.items[i].records;
            if (recs.len > 0)
                fuzz_check_records(recs.ptr, (size_t)recs.len);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int16_t key = (int16_t)ck_get_u16(data);
    int16_t ver = (int16_t)ck_get_u16(data + 2);
    const uint8_t *p = data + 4;
    size_t n = size - 4;
    ck_arena_t arena = CK_ARENA_INIT;
    ck_rbuf_t r;

    if (!ck_kafka_api_find(key))
        key = ck_kafka_apis[(uint16_t)key % ck_kafka_apis_count].key;
    const ck_kafka_api_t *api = ck_kafka_api_find(key);
    const ck_kafka_msg_desc_t *d = ck_kafka_msg_desc_find(key, false);
    FUZZ_CHECK(api && d && !d->response && d->api_key == key, "API table and descriptions");
    void *body = ck_arena_calloc(&arena, d->root->size);
    FUZZ_CHECK(body != NULL, "arena");
    if (ver < api->min_version || ver > api->max_version) {
        ck_rbuf_init(&r, p, n);
        FUZZ_CHECK(d->decode(&r, ver, &arena, body) == CK_EUNSUP && r.p == p,
                   "a version outside the API's range is not refused up front");
        ver = (int16_t)(api->min_version +
                        (uint16_t)ver % (uint16_t)(api->max_version - api->min_version + 1));
    }

    /* Request header. */
    int16_t hv = ck_kafka_request_header_version(key, ver);
    ck_kafka_request_header_t hdr;
    ck_rbuf_init(&r, p, n);
    int hrc = ck_kafka_request_header_decode(&r, hv, &arena, &hdr);
    if (hrc == 0) {
        fuzz_touch(hdr.client_id);
        roundtrip(&ck_kafka_request_header_desc, hv, &hdr, &arena);
    }

    /* Body: after the header when it decoded, else the same bytes from the start. */
    const uint8_t *bp = hrc == 0 ? r.p : p;
    ck_rbuf_init(&r, bp, n - (size_t)(bp - p));
    int rc = d->decode(&r, ver, &arena, body);
    if (rc == 0) {
        roundtrip(d, ver, body, &arena);
        if (key == CK_API_PRODUCE)
            check_produce_records(body);
    }

    /* The same bytes as records, as a fuzzer finds it easier to reach them this way. */
    fuzz_check_records(p, n);
    ck_arena_free(&arena);
    return 0;
}
