/* resp.c - the small RESP2/RESP3 reply parser and command encoder of the
 * KV client. Replies are parsed in place: strings point into the buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Parse a decimal line at p (up to the CRLF at crlf). -1 when malformed. */
static int parse_ll(const char *p, const char *crlf, long long *out) {
    int neg = p < crlf && *p == '-';
    const char *q = p + neg;
    if (q == crlf || crlf - q > 18) return -1; /* 18 digits cannot overflow */
    long long v = 0;
    for (; q < crlf; q++) {
        if (*q < '0' || *q > '9') return -1;
        v = v * 10 + (*q - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

static long parse_at(const char *buf, size_t n, resp_reply *r, int depth);

static long parse_aggregate(const char *buf, size_t n, size_t head, long long count,
                            int depth) {
    size_t off = head;
    for (long long i = 0; i < count; i++) {
        resp_reply sub;
        long l = parse_at(buf + off, n - off, &sub, depth + 1);
        if (l <= 0) return l;
        off += (size_t)l;
    }
    return (long)off;
}

static long parse_at(const char *buf, size_t n, resp_reply *r, int depth) {
    if (depth > 32) return -1; /* bound the recursion against hostile nesting */
    if (n < 1) return 0;
    const char *crlf = memchr(buf, '\r', n);
    if (!crlf || (size_t)(crlf - buf) + 2 > n) return 0;
    if (crlf[1] != '\n') return -1;
    size_t head = (size_t)(crlf - buf) + 2;
    *r = (resp_reply){.str = buf + 1, .len = (size_t)(crlf - buf - 1)};
    long long v = 0;
    switch (buf[0]) {
    case '+': r->type = RR_STATUS; return (long)head;
    case '-': r->type = RR_ERROR; return (long)head;
    case '_': r->type = RR_NIL; return (long)head;
    case ':':
        r->type = RR_INT;
        return parse_ll(buf + 1, crlf, &r->integer) < 0 ? -1 : (long)head;
    case '$':
        if (parse_ll(buf + 1, crlf, &v) < 0) return -1;
        if (v < 0) { r->type = RR_NIL; return (long)head; }
        if (n - head < (size_t)v + 2) return 0;
        if (buf[head + (size_t)v] != '\r' || buf[head + (size_t)v + 1] != '\n') return -1;
        *r = (resp_reply){.type = RR_BULK, .str = buf + head, .len = (size_t)v};
        return (long)(head + (size_t)v + 2);
    case '*': case '%': case '~':
        if (parse_ll(buf + 1, crlf, &v) < 0) return -1;
        if (v < 0) { r->type = RR_NIL; return (long)head; }
        r->type = RR_ARRAY;
        r->integer = v;
        return parse_aggregate(buf, n, head, buf[0] == '%' ? 2 * v : v, depth);
    default:
        return -1;
    }
}

long resp_parse_reply(const char *buf, size_t n, resp_reply *r) { return parse_at(buf, n, r, 0); }

int resp_encode_command(int argc, const char *const *argv, const size_t *lens, char **out,
                        size_t *len) {
    size_t cap = 16;
    for (int i = 0; i < argc; i++) cap += lens[i] + 32;
    char *b = malloc(cap);
    if (!b) return pier_fail(PIER_E_NOMEM, "no memory for a %zu-byte command", cap);
    size_t o = (size_t)snprintf(b, cap, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        o += (size_t)snprintf(b + o, cap - o, "$%zu\r\n", lens[i]);
        memcpy(b + o, argv[i], lens[i]);
        o += lens[i];
        b[o++] = '\r';
        b[o++] = '\n';
    }
    *out = b;
    *len = o;
    return PIER_OK;
}
