/* config.h - server configuration: defaults, command-line flags, a
 * redis.conf-style file of `name value` lines, CONFIG GET/SET.
 *
 * One table of options (config.c) is the single source for flag names,
 * file keys, CONFIG GET/SET names, types, bounds and whether an option can
 * change at run time. Other layers read the struct; only config.c writes
 * it. Options changeable at run time are read by other threads with relaxed
 * atomic loads (CFG_GET). */
#ifndef PIER_CONFIG_H
#define PIER_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum { CFG_IO_LOOP = 0, CFG_IO_THREAD = 1 };

#define CFG_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

typedef struct pier_config {
    /* network */
    char bind[256];                  /* space-separated addresses */
    int port;
    int threads;                     /* loop threads; 0 = number of cores */
    int tcp_backlog;
    _Atomic long long maxclients;
    _Atomic long long timeout;       /* idle seconds, 0 = never */
    int tcp_keepalive;

    /* protocol limits */
    _Atomic long long proto_max_bulk_len;
    _Atomic long long client_query_buffer_limit;
    _Atomic long long output_soft_limit;  /* stop reading a client above this */
    _Atomic long long output_hard_limit;  /* disconnect a client above this */

    /* logging */
    _Atomic int loglevel;
    char logfile[512];               /* "" = stderr */

    /* server */
    char pidfile[512];
    _Atomic int hz;                  /* background tasks per second */
    int databases;                   /* always 1: only db 0 */
    _Atomic int io_model;            /* CFG_IO_LOOP or CFG_IO_THREAD */
    char *config_file;               /* absolute path, or NULL */
} pier_config;

/* Fill cfg with defaults. */
void config_defaults(pier_config *cfg);

/* Parse argv (flags "--name value" and an optional first positional
 * argument naming a config file, as redis-server does). On error prints a
 * message naming the option and returns 2 (the exit code); returns 0 on
 * success, 1 when --help/--version was handled and the caller should exit 0. */
int config_from_args(pier_config *cfg, int argc, char **argv);

/* Parse a config file's text (name value lines, # comments, quoted values).
 * Returns 0 or writes a message into err (file, line, reason) and returns -1. */
int config_load_text(pier_config *cfg, const char *text, size_t len,
                     const char *origin, char *err, size_t errlen);

/* Set one option by name from its string value. runtime != 0 refuses
 * options that cannot change while running. Returns 0, or -1 with err
 * holding the Redis-style reason. */
int config_set(pier_config *cfg, const char *name, const char *value,
               int runtime, char *err, size_t errlen);

/* Format one option's current value; returns bytes written or -1 when the
 * name is unknown. */
int config_get(const pier_config *cfg, const char *name, char *buf, size_t buflen);

/* Iterate option names (CONFIG GET with a pattern). NULL past the end. */
const char *config_name_at(size_t i);

void config_free(pier_config *cfg);

#endif
