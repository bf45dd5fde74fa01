#include "log/batch.h"

#include "core/crc32c.h"

void ck_batch_header_parse(const uint8_t *p, ck_batch_header_t *h)
{
    h->base_offset = (int64_t)ck_get_u64(p + CK_BATCH_OFF_BASE_OFFSET);
    h->batch_length = (int32_t)ck_get_u32(p + CK_BATCH_OFF_LENGTH);
    h->leader_epoch = (int32_t)ck_get_u32(p + CK_BATCH_OFF_LEADER_EPOCH);
    h->magic = (int8_t)p[CK_BATCH_OFF_MAGIC];
    h->crc = ck_get_u32(p + CK_BATCH_OFF_CRC);
    h->attributes = (int16_t)ck_get_u16(p + CK_BATCH_OFF_ATTRIBUTES);
    h->last_offset_delta = (int32_t)ck_get_u32(p + CK_BATCH_OFF_LAST_OFFSET_DELTA);
    h->base_timestamp = (int64_t)ck_get_u64(p + CK_BATCH_OFF_BASE_TIMESTAMP);
    h->max_timestamp = (int64_t)ck_get_u64(p + CK_BATCH_OFF_MAX_TIMESTAMP);
    h->producer_id = (int64_t)ck_get_u64(p + CK_BATCH_OFF_PRODUCER_ID);
    h->producer_epoch = (int16_t)ck_get_u16(p + CK_BATCH_OFF_PRODUCER_EPOCH);
    h->base_sequence = (int32_t)ck_get_u32(p + CK_BATCH_OFF_BASE_SEQUENCE);
    h->record_count = (int32_t)ck_get_u32(p + CK_BATCH_OFF_RECORD_COUNT);
}

int64_t ck_batch_total_size(const uint8_t *p, size_t n)
{
    if (n < 12)
        return -1;
    return (int64_t)(int32_t)ck_get_u32(p + CK_BATCH_OFF_LENGTH) + 12;
}

void ck_batch_update_crc(uint8_t *p, size_t n)
{
    uint32_t crc = ck_crc32c(0, p + CK_BATCH_OFF_ATTRIBUTES, n - CK_BATCH_OFF_ATTRIBUTES);
    ck_put_u32(p + CK_BATCH_OFF_CRC, crc);
}
