/* resp_parse.h - resumable parser for client requests: RESP multibulk
 * ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and inline commands ("GET k\n") with
 * redis-cli's quoting rules.
 *
 * Zero-copy: arguments are returned as (offset, length) pairs into the
 * caller's buffer, so the caller may realloc or memmove the buffer between
 * calls (see resp_parser_shift). Inline commands that contain quotes are
 * unescaped in place (the unescaped form is never longer than the source),
 * which is why the buffer is not const.
 *
 * The parser keeps its position between calls, so a request that arrives in
 * many reads is scanned once, not re-parsed from the start each time (a
 * 512 MB bulk arriving in 16 KB reads stays linear).
 *
 * Limits are checked on the header, before any memory is reserved for the
 * payload: a "*2000000000" or "$99999999999" is rejected at once. */
#ifndef PIER_RESP_PARSE_H
#define PIER_RESP_PARSE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RESP_OK = 0,        /* one complete command parsed: see argc/args */
    RESP_NEED_MORE = 1, /* incomplete: read more bytes, call again */
    RESP_ERROR = 2      /* protocol error: p->error holds the reply text */
} resp_status;

#define RESP_UNAUTH_MAX_MULTIBULK 10
#define RESP_UNAUTH_MAX_BULK 16384

typedef struct resp_arg {
    size_t off; /* offset of the first byte in the buffer */
    size_t len;
} resp_arg;

typedef struct resp_parser {
    /* limits (set by resp_parser_init, may be changed between commands) */
    long long max_bulk;     /* proto-max-bulk-len: largest $ length */
    long long max_multibulk;/* largest * count (Redis and the default here: INT_MAX) */
    size_t max_inline;      /* longest inline line (Redis: 64 KB) */
    /* Set by the connection while a password is required and not yet
     * given: then at most RESP_UNAUTH_MAX_MULTIBULK arguments and
     * RESP_UNAUTH_MAX_BULK bytes per argument (Redis's limits), so an
     * unauthenticated peer cannot make the server reserve memory. */
    int unauthenticated;

    /* result of the last RESP_OK */
    size_t argc;
    resp_arg *args; /* owned by the parser, grown on demand */
    size_t args_cap;

    /* RESP_ERROR: the full error line without "-" and CRLF, e.g.
     * "ERR Protocol error: invalid bulk length". Static storage or the
     * parser's own errbuf. */
    const char *error;
    char errbuf[128];

    /* RESP_NEED_MORE: at least this many more bytes (beyond the len passed)
     * are needed before the next call can make progress; 0 if unknown. A
     * connection uses it to grow its buffer for a large bulk in one step. */
    size_t need;

    /* resumable state (private) */
    size_t pos;          /* where parsing resumes, offset into the buffer */
    size_t cmd_start;    /* offset where the current command began */
    int mode;            /* 0 = between commands, 1 = multibulk, 2 = inline */
    long long mb_left;   /* multibulk: arguments still to read */
    long long bulk_len;  /* multibulk: length of the bulk being read, -1 = header next */
} resp_parser;

void resp_parser_init(resp_parser *p, long long max_bulk, size_t max_inline);
void resp_parser_free(resp_parser *p);

/* Parse from buf[p->pos] up to buf[len). On RESP_OK, argc/args describe one
 * command and p->pos is just past it (the next command starts there); the
 * caller executes it and calls again for the next one. A line with no
 * arguments (empty inline line, "*0\r\n", "*-1\r\n") is skipped, not
 * returned. On RESP_NEED_MORE the caller must keep buf[cmd_start..len) and
 * call again with more bytes appended. RESP_ERROR is final for the
 * connection: reply p->error and close. */
resp_status resp_parse(resp_parser *p, char *buf, size_t len);

/* Offset where the unparsed/incomplete data begins: bytes before it are
 * consumed and may be discarded by the caller. */
static inline size_t resp_parser_consumed(const resp_parser *p) { return p->cmd_start; }

/* The caller discarded the first n bytes of its buffer (n <= consumed):
 * rebase every stored offset. */
void resp_parser_shift(resp_parser *p, size_t n);

#endif
