/* log.h - leveled logging to stderr. Levels: silent, warning (warnings
 * only), normal, verbose; Redis's names (debug, verbose, notice, warning)
 * are accepted too. A verbose line costs one branch on an already-loaded
 * int when verbose is off, so hot paths may keep them. Fatal errors
 * (log_fatal) are printed at every level, silent included. */
#ifndef PIER_LOG_H
#define PIER_LOG_H

enum log_level { LOG_SILENT = 0, LOG_WARNING = 1, LOG_NORMAL = 2, LOG_VERBOSE = 3 };

/* The current level. Written at start-up and by CONFIG SET loglevel;
 * read with a relaxed load. */
extern int log_current_level;

void log_set_level(int level);

/* The names a level may be given by, Redis's first (debug, verbose,
 * notice, warning), then pier's (normal, silent, and Redis 7.2's
 * nothing): index -> name, NULL past the end. CONFIG GET loglevel shows
 * the name that was set. */
const char *log_level_spelling(int i);
/* Index of s (any case) in that list, or -1. */
int log_find_spelling(const char *s);
/* The level a spelling stands for (debug -> verbose, notice -> normal). */
int log_spelling_level(int i);
/* Parse any of those names. Returns the level or -1. */
int log_parse_level(const char *s);
const char *log_level_name(int level);

/* Where fatal errors also go when the log is not the terminal: the
 * original stderr (kept before a logfile replaced it) or a daemon's pipe
 * to its parent. -1 = only the log. */
void log_set_console_fd(int fd);

/* A fatal error: printed at every level (silent too), to the log and to
 * the console fd. The caller exits. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed unless silent (warnings and errors). */
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
