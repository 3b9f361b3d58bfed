/* fuzz_manifest.c - the AOF manifest parser (src/persist/manifest.c).
 *
 * manifest_parse on the raw input, and on the input with a correct
 * "crc <CRC-32C>" line appended (so the file lines are reached instead of
 * stopping at the checksum). Whatever parses must format (manifest_format)
 * and parse back to the same list of files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/crc32c.h"
#include "persist/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static manifest m1, m2; /* large: keep them off the stack */

static void parse_and_roundtrip(const char *text, size_t len) {
    char err[256];
    memset(err, 'x', sizeof(err));
    if (manifest_parse(&m1, text, len, err, sizeof(err)) != 0) {
        FZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        return;
    }
    FZ_CHECK(m1.n >= 0 && m1.n <= MANIFEST_MAX_FILES);
    size_t cap = (size_t)(MANIFEST_MAX_FILES + 2) * (MANIFEST_NAME_MAX + 64);
    char *buf = malloc(cap);
    FZ_CHECK(buf != NULL);
    int n = manifest_format(&m1, buf, cap);
    FZ_CHECK(n > 0);
    char *exact = malloc((size_t)n);
    FZ_CHECK(exact != NULL);
    memcpy(exact, buf, (size_t)n);
    if (manifest_parse(&m2, exact, (size_t)n, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz: formatted manifest does not parse: %s\n%.*s", err, n, exact);
        abort();
    }
    FZ_CHECK(m1.n == m2.n);
    for (int i = 0; i < m1.n; i++) {
        FZ_CHECK(strcmp(m1.files[i].name, m2.files[i].name) == 0);
        FZ_CHECK(m1.files[i].seq == m2.files[i].seq);
        FZ_CHECK(m1.files[i].type == m2.files[i].type);
    }
    free(exact);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *raw = calloc(size ? size : 1, 1);
    FZ_CHECK(raw != NULL);
    if (size)
        memcpy(raw, data, size);
    parse_and_roundtrip(raw, size);
    free(raw);

    char *framed = malloc(size + 16);
    FZ_CHECK(framed != NULL);
    if (size)
        memcpy(framed, data, size);
    int n = snprintf(framed + size, 16, "crc %08x\n", crc32c(0, data, size));
    FZ_CHECK(n == 13);
    parse_and_roundtrip(framed, size + 13);
    free(framed);
    return 0;
}
