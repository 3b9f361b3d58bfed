/* mem.c - the out-of-memory policy of lib/mem.h: log the failed size,
 * abort. */
#include "lib/mem.h"

#include "lib/log.h"

void mem_oom(size_t size) {
    /* log_fatal formats short lines on the stack: it needs no memory */
    log_fatal("Out of memory allocating %zu bytes", size);
    abort();
}
