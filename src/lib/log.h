/* log.h - leveled logging to stderr. Levels follow the origin systems'
 * three tiers: silent, normal, verbose. A verbose line costs one branch on
 * an already-loaded int when verbose is off, so hot paths may keep them. */
#ifndef PIER_LOG_H
#define PIER_LOG_H

enum log_level { LOG_SILENT = 0, LOG_NORMAL = 1, LOG_VERBOSE = 2 };

/* The current level. Written at start-up and by CONFIG SET loglevel;
 * read with a relaxed load. */
extern int log_current_level;

void log_set_level(int level);

/* Parse "silent|normal|verbose" (also accepts Redis's "warning"/"notice" as
 * normal and "debug" as verbose). Returns the level or -1. */
int log_parse_level(const char *s);
const char *log_level_name(int level);

/* Always printed unless silent (warnings and errors). */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed at normal and verbose. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed only at verbose. */
#define log_verbose(...)                                                       \
    do {                                                                       \
        if (__builtin_expect(log_current_level >= LOG_VERBOSE, 0))             \
            log_info(__VA_ARGS__);                                             \
    } while (0)

#endif
