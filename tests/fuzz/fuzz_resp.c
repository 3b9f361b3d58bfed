/* fuzz_resp.c - the request parser fed a whole buffer.
 *
 * The stream is parsed in one exact-size heap buffer (ASan catches any read
 * past it) and the resulting commands and final state are compared with
 * ref_parse, an independent model of Redis 7's request parsing
 * (resp_common.h). Run twice: with the server's default limits and with
 * tiny limits derived from the input, so that the "invalid bulk length" and
 * "too big inline request" paths are reachable with small inputs. */
#include "resp_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_limits limits[2] = {FZ_DEFAULT_LIMITS, fz_small_limits(size)};
    for (int i = 0; i < 2; i++) {
        transcript real, ref;
        tr_init(&real);
        tr_init(&ref);
        feed_whole(data, size, limits[i], &real);
        ref_parse(data, size, limits[i], &ref);
        tr_compare(i == 0 ? "whole vs reference (default limits)"
                          : "whole vs reference (small limits)",
                   &ref, &real, 0);
        tr_free(&real);
        tr_free(&ref);
    }
    return 0;
}
