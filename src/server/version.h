/* version.h - pier's own version and the Redis version whose commands and
 * replies it follows (reported in INFO and HELLO for client feature checks). */
#ifndef PIER_VERSION_H
#define PIER_VERSION_H
#define PIER_VERSION "0.1.0"
#define PIER_REDIS_VERSION "7.0.15"
#endif
