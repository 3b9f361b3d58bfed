/* subscriber - print the entries of a pier stream as they arrive, over the
 * batch port (libpier, client/pier.h).
 *
 *   subscriber <host:batch-port> <topic> [count] [start]
 *
 * Prints one line per entry: its ID, then its fields as name=value (a
 * publisher's messages are one field named data; entries added with XADD
 * show all of theirs). Stops after `count` entries (0, the default: never).
 * start is where to begin: "$" (the default) for new entries only, "0" for
 * everything in the stream, or an ID "<ms>-<seq>" for the entries after
 * it. The password, if the server has one, comes from PIER_PASSWORD. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pier.h"

static int fail(const char *what, int rc) {
    fprintf(stderr, "subscriber: %s: %s: %s\n", what, pier_strerror(rc), pier_last_error());
    return 1;
}

static void print_entry(const pier_msg *m) {
    printf("%llu-%llu", (unsigned long long)m->id_ms, (unsigned long long)m->id_seq);
    for (size_t i = 0; i < m->nfields; i++) {
        const pier_field *f = &m->fields[i];
        printf(" %.*s=%.*s", (int)f->name_len, f->name, (int)f->value_len, f->value);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: subscriber <host:batch-port> <topic> [count] [start]\n");
        return 2;
    }
    char host[256];
    const char *colon = strrchr(argv[1], ':');
    if (!colon || colon == argv[1] || (size_t)(colon - argv[1]) >= sizeof host) {
        fprintf(stderr, "subscriber: '%s' is not host:port\n", argv[1]);
        return 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - argv[1]), argv[1]);
    long count = argc >= 4 ? strtol(argv[3], NULL, 10) : 0;
    const char *start = argc == 5 ? argv[4] : "$";

    pier_subscriber *s;
    int rc = pier_subscriber_open(&s, host, atoi(colon + 1), argv[2], start,
                                  1 << PIER_CODEC_LZ4 >> 1 | 1 << PIER_CODEC_ZSTD >> 1,
                                  getenv("PIER_PASSWORD"));
    if (rc) return fail("open", rc);
    /* A timeout does not end the subscription: the loop just waits again
     * (a real program would check here whether it should stop). */
    pier_subscriber_set_timeout(s, 1000);
    long seen = 0;
    while (count == 0 || seen < count) {
        pier_batch b;
        rc = pier_subscriber_next(s, &b);
        if (rc == PIER_E_TIMEOUT) continue;
        if (rc) {
            pier_subscriber_close(s);
            return fail("next", rc);
        }
        for (size_t i = 0; i < b.count && (count == 0 || seen < count); i++, seen++)
            print_entry(&b.msgs[i]);
        fflush(stdout);
    }
    pier_subscriber_close(s);
    return 0;
}
