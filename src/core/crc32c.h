/* CRC-32C (Castagnoli), as Kafka record batches use. Hardware (SSE4.2) when the CPU has
 * it, a slicing-by-8 table otherwise. Thread-safe. */
#ifndef CK_CORE_CRC32C_H
#define CK_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc = 0. ck_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t ck_crc32c(uint32_t crc, const void *data, size_t n);

/* CRC-32 (IEEE, zlib's), for magic 0/1 messages. */
uint32_t ck_crc32(uint32_t crc, const void *data, size_t n);

#endif
