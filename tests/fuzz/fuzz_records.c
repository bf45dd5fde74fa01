/* libFuzzer target: arbitrary bytes as the records of a Produce partition, i.e. v2 record
 * batches or a magic 0/1 message set, through ck_batch_validate, the batch iterator,
 * ck_legacy_to_v2 and ck_legacy_from_v2 (see fuzz_common.h for the properties). Its
 * corpus holds record payloads only, so mutations stay inside the record formats. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_records(data, size);
    return 0;
}
