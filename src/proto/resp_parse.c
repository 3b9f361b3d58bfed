/* resp_parse.c - resumable, zero-copy parser for client requests.
 *
 * Behaviour mirrors Redis 7's processMultibulkBuffer/processInlineBuffer so
 * that clients see the same errors for the same bytes:
 *  - a header line ends at the first '\r'; the byte after it is required but,
 *    like Redis, not checked to be '\n' (and neither is a bulk's trailing
 *    CRLF);
 *  - when more than PROTO_INLINE_MAX_SIZE bytes of a header line are
 *    buffered and none is '\r', the header is "too big"; likewise an inline
 *    line with more than max_inline bytes buffered and no '\n'. As in Redis,
 *    a terminator that is already buffered is accepted even when it lies
 *    beyond the limit, so a slightly longer line that arrives in one read
 *    is served (Redis reads 16 KB at a time, so does pier's client).
 * Unlike Redis the parser is binary safe in headers and inline lines (Redis
 * uses strchr, which stops at a NUL byte).
 *
 * Resumption: p->pos is where scanning continues. Between calls the parser
 * remembers how far it already searched for a line terminator, so bytes are
 * examined once even when they trickle in one at a time:
 *  - inline mode: the line starts at cmd_start, pos is the search point;
 *  - multibulk mode: the header line starts at pos, and while a header is
 *    pending bulk_len holds -1 - (bytes of it already searched);
 *  - inside a bulk payload nothing is scanned at all until every byte of it
 *    (plus CRLF) is buffered. */
#include "proto/resp_parse.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"
#include "lib/util.h"

enum { MODE_IDLE = 0, MODE_MULTIBULK = 1, MODE_INLINE = 2 };

/* Bulk lengths are long long and are used as buffer offsets. */
_Static_assert(sizeof(size_t) >= sizeof(long long),
               "resp_parse assumes a 64-bit size_t");

/* Redis PROTO_INLINE_MAX_SIZE: longest '*' / '$' header line searched. */
#define HEADER_LINE_MAX ((size_t)64 * 1024)
#define DEFAULT_MAX_INLINE ((size_t)64 * 1024)
#define DEFAULT_MAX_BULK (512LL * 1024 * 1024)
/* A "*n" header reserves at most this many argument slots up front; the
 * rest grows as arguments actually arrive, so a lying count costs nothing. */
#define ARGS_RESERVE_MAX 1024
#define ARGS_MIN_CAP 8

static const char ERR_MBULK_LEN[] = "ERR Protocol error: invalid multibulk length";
static const char ERR_BULK_LEN[] = "ERR Protocol error: invalid bulk length";
static const char ERR_UNAUTH_MBULK[] = "ERR Protocol error: unauthenticated multibulk length";
static const char ERR_UNAUTH_BULK[] = "ERR Protocol error: unauthenticated bulk length";
static const char ERR_MBULK_TOO_BIG[] =
    "ERR Protocol error: too big mbulk count string";
static const char ERR_BULK_TOO_BIG[] =
    "ERR Protocol error: too big bulk count string";
static const char ERR_INLINE_TOO_BIG[] =
    "ERR Protocol error: too big inline request";
static const char ERR_QUOTES[] =
    "ERR Protocol error: unbalanced quotes in request";
/* pier's own: a batch client (docs/PROTOCOL.md) at the wrong port. Its
 * handshake holds no newline, so as an inline command it would wait for
 * one until the client gave up. */
static const char ERR_BATCH_HANDSHAKE[] =
    "ERR Protocol error: pier batch protocol handshake on the RESP port; "
    "connect to the batch port (batch-port)";

void resp_parser_init(resp_parser *p, long long max_bulk, size_t max_inline) {
    memset(p, 0, sizeof(*p));
    p->max_bulk = max_bulk > 0 ? max_bulk : DEFAULT_MAX_BULK;
    p->max_multibulk = INT_MAX;
    p->max_inline = max_inline > 0 ? max_inline : DEFAULT_MAX_INLINE;
    p->error = NULL;
    p->mode = MODE_IDLE;
    p->mb_left = 0;
    p->bulk_len = -1;
}

void resp_parser_free(resp_parser *p) {
    free(p->args);
    p->args = NULL;
    p->args_cap = 0;
    p->argc = 0;
}

/* ---- argument vector ---------------------------------------------------- */

/* Ensure room for at least want arguments in total. */
static void args_reserve(resp_parser *p, size_t want) {
    if (want <= p->args_cap)
        return;
    size_t cap = p->args_cap ? p->args_cap : ARGS_MIN_CAP;
    while (cap < want) {
        if (cap > SIZE_MAX / 2 / sizeof(resp_arg))
            abort();
        cap *= 2;
    }
    p->args = xrealloc(p->args, cap * sizeof(resp_arg));
    p->args_cap = cap;
}

static void args_push(resp_parser *p, size_t off, size_t len) {
    if (p->argc == p->args_cap)
        args_reserve(p, p->argc + 1);
    p->args[p->argc].off = off;
    p->args[p->argc].len = len;
    p->argc++;
}

/* ---- line scanning ------------------------------------------------------ */

typedef enum { LINE_FOUND, LINE_PARTIAL, LINE_TOO_LONG } line_scan;

/* Search for term in the line starting at start, resuming after the
 * *searched bytes already examined (so each byte is looked at once).
 * LINE_FOUND: *at is its offset. LINE_PARTIAL: *searched updated, more
 * bytes needed. LINE_TOO_LONG: Redis's rule, more than limit bytes are
 * buffered and none of them is the terminator. */
static line_scan scan_line(const char *buf, size_t len, size_t start,
                           size_t *searched, size_t limit, char term,
                           size_t *at) {
    size_t from = start + *searched;
    const char *hit = memchr(buf + from, term, len - from);
    if (hit != NULL) {
        *at = (size_t)(hit - buf);
        return LINE_FOUND;
    }
    *searched = len - start;
    return len - start > limit ? LINE_TOO_LONG : LINE_PARTIAL;
}

/* Header search progress lives in bulk_len while a header is pending. */
static size_t header_searched(const resp_parser *p) {
    return (size_t)(-1 - p->bulk_len);
}

static void set_header_searched(resp_parser *p, size_t n) {
    p->bulk_len = -1 - (long long)n;
}

/* Locate the '*' or '$' header line at p->pos. Returns RESP_OK with *cr at
 * its '\r' (the byte after it is buffered too), RESP_NEED_MORE, or
 * RESP_ERROR with too_big as the error. */
static resp_status find_header(resp_parser *p, const char *buf, size_t len,
                               const char *too_big, size_t *cr) {
    size_t searched = header_searched(p);
    line_scan r = scan_line(buf, len, p->pos, &searched, HEADER_LINE_MAX, '\r', cr);
    if (r == LINE_TOO_LONG) {
        p->error = too_big;
        return RESP_ERROR;
    }
    if (r == LINE_FOUND && *cr + 1 < len)
        return RESP_OK;
    if (r == LINE_FOUND) /* '\r' is the last byte: re-check just it later */
        searched = *cr - p->pos;
    set_header_searched(p, searched);
    return RESP_NEED_MORE;
}

/* ---- multibulk ---------------------------------------------------------- */

/* Fast path for the common header: type byte, 1-18 decimal digits without
 * a leading zero, then "\r" and one more buffered byte. Scans and converts
 * in one pass (no memchr, no separate number parse). Returns 1 with *n and
 * *next (offset after the header) set; 0 means "not the simple case": the
 * general path then decides, with the exact errors and partial handling. */
static int fast_header(const char *buf, size_t len, size_t pos, char type,
                       long long *n, size_t *next) {
    const char *p = buf + pos + 1, *end = buf + len;
    if (pos >= len || buf[pos] != type || p >= end || *p < '1' || *p > '9')
        return 0;
    long long v = 0;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9' && digits < 18; p++, digits++)
        v = v * 10 + (*p - '0'); /* 18 digits cannot overflow */
    if (p + 1 >= end || *p != '\r')
        return 0;
    *n = v;
    *next = (size_t)(p + 2 - buf);
    return 1;
}

/* Parse "*<n>\r\n" at p->pos. Sets mb_left (0 for n <= 0, which Redis
 * treats as an empty command) and reserves argument slots. */
static resp_status read_count_header(resp_parser *p, const char *buf,
                                     size_t len) {
    long long fast;
    size_t next;
    if (p->bulk_len == -1 && !p->unauthenticated &&
        fast_header(buf, len, p->pos, '*', &fast, &next) && fast <= p->max_multibulk) {
        p->pos = next;
        p->mb_left = fast;
        args_reserve(p, fast < ARGS_RESERVE_MAX ? (size_t)fast : ARGS_RESERVE_MAX);
        return RESP_OK;
    }
    size_t cr;
    resp_status st = find_header(p, buf, len, ERR_MBULK_TOO_BIG, &cr);
    if (st != RESP_OK)
        return st;
    long long n;
    if (!util_parse_ll(buf + p->pos + 1, cr - p->pos - 1, &n) ||
        n > p->max_multibulk) {
        p->error = ERR_MBULK_LEN;
        return RESP_ERROR;
    }
    if (p->unauthenticated && n > RESP_UNAUTH_MAX_MULTIBULK) {
        p->error = ERR_UNAUTH_MBULK;
        return RESP_ERROR;
    }
    p->pos = cr + 2;
    p->bulk_len = -1;
    p->mb_left = n > 0 ? n : 0;
    if (n > 0)
        args_reserve(p, n < ARGS_RESERVE_MAX ? (size_t)n : ARGS_RESERVE_MAX);
    return RESP_OK;
}

/* Parse "$<len>\r\n" at p->pos into bulk_len. */
static resp_status read_bulk_header(resp_parser *p, const char *buf,
                                    size_t len) {
    long long fast;
    size_t next;
    if (p->bulk_len == -1 && !p->unauthenticated &&
        fast_header(buf, len, p->pos, '$', &fast, &next) && fast <= p->max_bulk) {
        p->pos = next;
        p->bulk_len = fast;
        return RESP_OK;
    }
    size_t cr;
    resp_status st = find_header(p, buf, len, ERR_BULK_TOO_BIG, &cr);
    if (st != RESP_OK)
        return st;
    if (buf[p->pos] != '$') {
        snprintf(p->errbuf, sizeof(p->errbuf),
                 "ERR Protocol error: expected '$', got '%c'", buf[p->pos]);
        p->error = p->errbuf;
        return RESP_ERROR;
    }
    long long n;
    if (!util_parse_ll(buf + p->pos + 1, cr - p->pos - 1, &n) || n < 0 ||
        n > p->max_bulk) {
        p->error = ERR_BULK_LEN;
        return RESP_ERROR;
    }
    if (p->unauthenticated && n > RESP_UNAUTH_MAX_BULK) {
        p->error = ERR_UNAUTH_BULK;
        return RESP_ERROR;
    }
    p->pos = cr + 2;
    p->bulk_len = n;
    return RESP_OK;
}

/* Continue a multibulk command. Returns RESP_OK when it is complete (argc
 * may be 0 for "*0"/"*-1"), else NEED_MORE/ERROR. */
static resp_status parse_multibulk(resp_parser *p, const char *buf,
                                   size_t len) {
    if (p->mb_left < 0) {
        resp_status st = read_count_header(p, buf, len);
        if (st != RESP_OK)
            return st;
    }
    while (p->mb_left > 0) {
        if (p->bulk_len < 0) {
            resp_status st = read_bulk_header(p, buf, len);
            if (st != RESP_OK)
                return st;
        }
        /* Payload plus its two terminator bytes, which Redis skips unchecked. */
        unsigned long long want = (unsigned long long)p->bulk_len + 2;
        unsigned long long avail = len - p->pos;
        if (avail < want) {
            p->need = (size_t)(want - avail);
            return RESP_NEED_MORE;
        }
        args_push(p, p->pos, (size_t)p->bulk_len);
        p->pos += (size_t)want;
        p->bulk_len = -1;
        p->mb_left--;
    }
    return RESP_OK;
}

/* ---- inline ------------------------------------------------------------- */

/* isspace() in the C locale: separates inline arguments. */
static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

/* Ends an unquoted token. Narrower than is_blank, as in sdssplitargs:
 * "a\vb" is one argument although a leading '\v' is skipped. */
static int ends_token(char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

static char unescape_char(char c) {
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return c;
    }
}

/* A closing quote must be followed by a blank or the end of the line. */
static int closing_quote_ok(const char *buf, size_t r, size_t end) {
    return r + 1 >= end || is_blank(buf[r + 1]);
}

/* Read one token starting at buf[*rp] (not blank), unescaping it in place
 * at the same start offset (output never outruns input: every output byte
 * consumes at least one input byte, and quotes produce none).
 * Returns 1 with *out_len set and *rp past the token, 0 on bad quotes. */
static int read_token(char *buf, size_t *rp, size_t end, size_t *out_len) {
    size_t r = *rp, w = *rp, start = *rp;
    enum { PLAIN, DOUBLE_Q, SINGLE_Q } state = PLAIN;
    for (;;) {
        if (state == PLAIN) {
            if (r == end)
                break;
            char c = buf[r++];
            if (ends_token(c))
                break;
            if (c == '"')
                state = DOUBLE_Q;
            else if (c == '\'')
                state = SINGLE_Q;
            else
                buf[w++] = c;
            continue;
        }
        if (r == end)
            return 0; /* unterminated quotes */
        char c = buf[r];
        if (state == DOUBLE_Q && c == '\\' && r + 3 < end && buf[r + 1] == 'x' &&
            is_hex(buf[r + 2]) && is_hex(buf[r + 3])) {
            buf[w++] = (char)(hex_value(buf[r + 2]) * 16 + hex_value(buf[r + 3]));
            r += 4;
        } else if (state == DOUBLE_Q && c == '\\' && r + 1 < end) {
            buf[w++] = unescape_char(buf[r + 1]);
            r += 2;
        } else if (state == SINGLE_Q && c == '\\' && r + 1 < end &&
                   buf[r + 1] == '\'') {
            buf[w++] = '\'';
            r += 2;
        } else if ((state == DOUBLE_Q && c == '"') ||
                   (state == SINGLE_Q && c == '\'')) {
            if (!closing_quote_ok(buf, r, end))
                return 0;
            r++;
            break;
        } else {
            buf[w++] = c;
            r++;
        }
    }
    *rp = r;
    *out_len = w - start;
    return 1;
}

/* Split buf[start, end) into arguments (sdssplitargs rules). Returns 1, or
 * 0 with p->error set on unbalanced quotes. */
static int split_inline(resp_parser *p, char *buf, size_t start, size_t end) {
    size_t r = start;
    for (;;) {
        while (r < end && is_blank(buf[r]))
            r++;
        if (r == end)
            return 1;
        size_t tok = r, tok_len;
        if (!read_token(buf, &r, end, &tok_len)) {
            p->error = ERR_QUOTES;
            return 0;
        }
        args_push(p, tok, tok_len);
    }
}

/* Continue an inline command: the line starts at cmd_start, the search for
 * '\n' resumes at pos. Returns RESP_OK when the line is complete (argc may
 * be 0 for a blank line), else NEED_MORE/ERROR. */
static resp_status parse_inline(resp_parser *p, char *buf, size_t len) {
    size_t searched = p->pos - p->cmd_start, nl;
    /* The batch handshake: magic "PIRB", then its binary version field. */
    if (searched < 5 && len - p->cmd_start >= 5 && !memcmp(buf + p->cmd_start, "PIRB", 4) &&
        (unsigned char)buf[p->cmd_start + 4] < 0x20 && buf[p->cmd_start + 4] != '\r' &&
        buf[p->cmd_start + 4] != '\n') {
        p->error = ERR_BATCH_HANDSHAKE;
        return RESP_ERROR;
    }
    line_scan r = scan_line(buf, len, p->cmd_start, &searched, p->max_inline,
                            '\n', &nl);
    if (r == LINE_TOO_LONG) {
        p->error = ERR_INLINE_TOO_BIG;
        return RESP_ERROR;
    }
    if (r == LINE_PARTIAL) {
        p->pos = p->cmd_start + searched;
        return RESP_NEED_MORE;
    }
    size_t end = nl;
    if (end > p->cmd_start && buf[end - 1] == '\r')
        end--;
    if (!split_inline(p, buf, p->cmd_start, end))
        return RESP_ERROR;
    p->pos = nl + 1;
    return RESP_OK;
}

/* ---- driver ------------------------------------------------------------- */

/* Start a new command at p->pos: the first byte picks the request type. */
static void begin_command(resp_parser *p, const char *buf) {
    p->cmd_start = p->pos;
    p->argc = 0;
    if (buf[p->pos] == '*') {
        p->mode = MODE_MULTIBULK;
        p->mb_left = -1; /* count header not read yet */
        p->bulk_len = -1;
    } else {
        p->mode = MODE_INLINE;
    }
}

resp_status resp_parse(resp_parser *p, char *buf, size_t len) {
    p->need = 0;
    if (p->error != NULL)
        return RESP_ERROR; /* errors are final for the connection */
    for (;;) {
        if (p->mode == MODE_IDLE) {
            p->cmd_start = p->pos;
            p->argc = 0;
            if (p->pos >= len)
                return RESP_NEED_MORE;
            begin_command(p, buf);
        }
        resp_status st = p->mode == MODE_MULTIBULK ? parse_multibulk(p, buf, len)
                                                   : parse_inline(p, buf, len);
        if (st != RESP_OK)
            return st;
        p->mode = MODE_IDLE;
        p->cmd_start = p->pos;
        if (p->argc > 0)
            return RESP_OK;
        /* Empty command ("*0", "*-1", blank line): skip to the next one. */
    }
}

void resp_parser_shift(resp_parser *p, size_t n) {
    p->pos -= n;
    p->cmd_start -= n;
    /* Arguments of a partial command lie at or after cmd_start >= n. Those
     * of an already returned command may have been discarded: then that
     * command is gone, so forget it rather than keep dangling offsets. */
    for (size_t i = 0; i < p->argc; i++) {
        if (p->args[i].off < n) {
            p->argc = 0;
            return;
        }
        p->args[i].off -= n;
    }
}
