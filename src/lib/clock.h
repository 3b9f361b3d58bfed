/* clock.h - time sources. Wall-clock milliseconds for expiry (absolute
 * times survive restart), monotonic microseconds for measuring. */
#ifndef PIER_CLOCK_H
#define PIER_CLOCK_H

#include <stdint.h>

int64_t clock_wall_ms(void);   /* CLOCK_REALTIME in ms */
int64_t clock_wall_us(void);   /* CLOCK_REALTIME in us */
int64_t clock_mono_us(void);   /* CLOCK_MONOTONIC in us */
int64_t clock_mono_ms(void);   /* CLOCK_MONOTONIC in ms */

#endif
