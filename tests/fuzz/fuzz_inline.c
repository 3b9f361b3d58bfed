/* fuzz_inline.c - the inline request path (redis-cli quoting) specifically.
 *
 * Every line of the input that would start a multibulk request ('*' at the
 * start of a line) is rewritten to start with '+' instead, so the whole
 * stream goes through parse_inline / split_inline / read_token with its
 * in-place unescaping. The result is compared with the reference
 * sdssplitargs model, and whole against chunked feeds, with default and
 * tiny max_inline limits. */
#include "resp_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *in = fz_xmalloc(size);
    if (size)
        memcpy(in, data, size);
    for (size_t i = 0; i < size; i++)
        if (in[i] == '*' && (i == 0 || in[i - 1] == '\n'))
            in[i] = '+';
    fz_limits limits[2] = {FZ_DEFAULT_LIMITS, fz_small_limits(size)};
    for (int i = 0; i < 2; i++) {
        transcript whole, ref;
        tr_init(&whole);
        tr_init(&ref);
        feed_whole(in, size, limits[i], &whole);
        ref_parse(in, size, limits[i], &ref);
        tr_compare("inline: whole vs reference", &ref, &whole, 0);
        for (int chunking = CHUNK_BYTEWISE; chunking <= CHUNK_SMALL; chunking++) {
            transcript chunked;
            tr_init(&chunked);
            uint64_t seed = fz_hash(in, size, (uint64_t)(i * 2 + chunking));
            feed_chunked(in, size, limits[i], seed, chunking, 1, &chunked);
            tr_compare("inline: whole vs chunked", &whole, &chunked, 1);
            tr_free(&chunked);
        }
        tr_free(&whole);
        tr_free(&ref);
    }
    free(in);
    return 0;
}
