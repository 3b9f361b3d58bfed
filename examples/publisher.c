/* publisher - publish messages to a pier stream over the batch port
 * (libpier, client/pier.h).
 *
 *   publisher <host:batch-port> <topic> [count]
 *
 * Publishes `count` messages (10 by default), "message 1", "message 2", ...,
 * to the stream `topic`, then closes the publisher, which waits until the
 * server acknowledged every batch. The password, if the server has one
 * (requirepass), comes from the environment variable PIER_PASSWORD.
 * Exits 0 when every message was acknowledged, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>

#include "pier.h"

static int fail(const char *what, int rc) {
    fprintf(stderr, "publisher: %s: %s: %s\n", what, pier_strerror(rc), pier_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: publisher <host:batch-port> <topic> [count]\n");
        return 2;
    }
    long count = argc == 4 ? strtol(argv[3], NULL, 10) : 10;
    if (count < 1) {
        fprintf(stderr, "publisher: count must be at least 1\n");
        return 2;
    }
    const char *nodes[] = {argv[1]};
    pier_publisher_options o;
    pier_publisher_options_init(&o); /* defaults first, then what differs */
    o.topic = argv[2];
    o.nodes = nodes;
    o.node_count = 1;
    o.password = getenv("PIER_PASSWORD");

    pier_publisher *p;
    int rc = pier_publisher_open(&p, &o);
    if (rc) return fail("open", rc);
    for (long i = 1; i <= count; i++) {
        char msg[64];
        int len = snprintf(msg, sizeof msg, "message %ld", i);
        rc = pier_publish(p, msg, (size_t)len); /* batched: sent when full or after 1 ms */
        if (rc) {
            pier_publisher_close(p);
            return fail("publish", rc);
        }
    }
    rc = pier_publisher_close(p); /* flushes and waits for every ACK */
    if (rc) return fail("close", rc);
    printf("published %ld messages to %s\n", count, argv[2]);
    return 0;
}
