/* fuzz_resp_chunked.c - differential: the same bytes fed whole and in
 * random-sized chunks must give the same commands, arguments and final
 * state.
 *
 * The chunked feeds imitate src/server/client.c: append a read, call
 * resp_parse until NEED_MORE, then discard the consumed prefix with memmove
 * + resp_parser_shift (sometimes only part of it, sometimes between the
 * commands of one batch; both are allowed by the API). Three cuttings per
 * input: one byte at a time, small random reads (including empty ones) and
 * arbitrary reads; the random choices are seeded from the input so a crash
 * reproduces. Any difference is abort(). The only tolerated difference is
 * documented: a line longer than the limit is served when its terminator
 * is in the same read, so a chunked feed may end in "too big" earlier. */
#include "resp_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_limits limits[2] = {FZ_DEFAULT_LIMITS, fz_small_limits(size)};
    for (int i = 0; i < 2; i++) {
        transcript whole;
        tr_init(&whole);
        feed_whole(data, size, limits[i], &whole);
        for (int chunking = CHUNK_BYTEWISE; chunking <= CHUNK_ANY; chunking++) {
            transcript chunked;
            tr_init(&chunked);
            uint64_t seed = fz_hash(data, size, (uint64_t)(i * 3 + chunking));
            feed_chunked(data, size, limits[i], seed, chunking, chunking != CHUNK_BYTEWISE,
                         &chunked);
            tr_compare(chunking == CHUNK_BYTEWISE ? "whole vs bytewise"
                       : chunking == CHUNK_SMALL  ? "whole vs small chunks"
                                                  : "whole vs random chunks",
                       &whole, &chunked, 1);
            tr_free(&chunked);
        }
        tr_free(&whole);
    }
    return 0;
}
