/* main.c - pier-bench: the modes and the top-level help (bench.h). */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} modes[] = {
    {"kv", run_kv, "closed-loop SET/GET over RESP against one server (pier or redis)"},
    {"log", run_log, "the batch port through libpier: publish, e2e, latency"},
    {"cluster", run_cluster, "strong and weak ops against a pier cluster (or one node)"},
};
#define NMODES (sizeof modes / sizeof modes[0])

static void usage(FILE *f) {
    fprintf(f, "usage: pier-bench MODE [options]     (pier-bench MODE --help for the options)\n"
               "modes:\n");
    for (size_t i = 0; i < NMODES; i++) fprintf(f, "  %-9s %s\n", modes[i].name, modes[i].what);
    fprintf(f, "Flags mean the same in every mode: -n requests (log: messages), -c clients,\n"
               "-d payload bytes, --threads client threads, --nodes servers, -q quiet;\n"
               "--json, --csv and --interval s (a time series) in every mode. Sizes take\n"
               "the server's units: 1kb = 1024, 1k = 1000, mb, gb.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < NMODES; i++)
        if (!strcmp(argv[1], modes[i].name)) return modes[i].run(argc - 1, argv + 1);
    fprintf(stderr, "pier-bench: unknown mode '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
