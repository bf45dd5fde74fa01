/* Clocks. Thread-safe. */
#ifndef CK_CORE_CLOCK_H
#define CK_CORE_CLOCK_H

#include <stdint.h>

int64_t ck_wall_ms(void);  /* milliseconds since the Unix epoch (record timestamps) */
int64_t ck_mono_ms(void);  /* monotonic milliseconds (timeouts) */
int64_t ck_mono_ns(void);  /* monotonic nanoseconds (latency measurement) */

#endif
