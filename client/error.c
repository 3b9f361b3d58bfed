/* error.c - status names and the per-thread detail of the last failure. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/* Thread-local so that concurrent publishers never read each other's
 * detail; 256 bytes holds a server ERROR text's useful start. */
static _Thread_local char last_error[256];

const char *pier_strerror(int status) {
    switch (status) {
    case PIER_OK: return "ok";
    case PIER_E_INVALID: return "invalid argument";
    case PIER_E_NOMEM: return "out of memory";
    case PIER_E_CONNECT: return "cannot connect";
    case PIER_E_IO: return "connection error";
    case PIER_E_PROTOCOL: return "protocol error";
    case PIER_E_SERVER: return "server error";
    case PIER_E_AUTH: return "authentication failed";
    case PIER_E_NOT_FOUND: return "not found";
    case PIER_E_TOO_LARGE: return "message too large";
    case PIER_E_CODEC: return "compression error";
    case PIER_E_TIMEOUT: return "timed out";
    case PIER_E_CLOSED: return "publisher failed";
    case PIER_E_WRONG_TYPE: return "unexpected reply type";
    default: return "unknown status";
    }
}

const char *pier_last_error(void) { return last_error; }

void pier_clear_error(void) { last_error[0] = 0; }

int pier_fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}
