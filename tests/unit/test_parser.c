/* test_parser.c - the request parser: multibulk, inline, errors, resumption.
 *
 * Buffers handed to the parser are heap copies of exactly the bytes under
 * test, so AddressSanitizer flags any read past len. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/resp_parse.h"

#define MAX_BULK_512MB (512LL * 1024 * 1024)
#define INLINE_64K ((size_t)64 * 1024)

/* Append the current command as "a|b|c;" to out (args may be binary: bytes
 * are copied as-is). */
static void describe_cmd(const resp_parser *p, const char *buf, char *out,
                         size_t outsize) {
    size_t n = strlen(out);
    for (size_t i = 0; i < p->argc; i++) {
        if (i > 0 && n + 1 < outsize)
            out[n++] = '|';
        for (size_t j = 0; j < p->args[i].len && n + 1 < outsize; j++)
            out[n++] = buf[p->args[i].off + j];
    }
    if (n + 1 < outsize)
        out[n++] = ';';
    out[n] = '\0';
}

/* Parse all of data (given in one piece) into out. Returns the last
 * status (NEED_MORE after the last complete command, or ERROR). */
static resp_status parse_whole(const char *data, size_t len, char *out,
                               size_t outsize, resp_parser *p) {
    char *buf = malloc(len ? len : 1);
    memcpy(buf, data, len);
    out[0] = '\0';
    resp_status st;
    while ((st = resp_parse(p, buf, len)) == RESP_OK)
        describe_cmd(p, buf, out, outsize);
    free(buf);
    return st;
}

/* Convenience: fresh parser with Redis defaults, parse a C string. */
static resp_status parse_str(const char *data, char *out, size_t outsize,
                             resp_parser *p) {
    resp_parser_init(p, MAX_BULK_512MB, INLINE_64K);
    return parse_whole(data, strlen(data), out, outsize, p);
}

/* Feed data one byte at a time. Each call gets a freshly allocated buffer
 * holding only the unconsumed bytes (the consumed prefix is discarded with
 * resp_parser_shift), which checks that all state is offset-based. */
static resp_status parse_bytewise(const char *data, size_t len, char *out,
                                  size_t outsize, resp_parser *p) {
    resp_parser_init(p, MAX_BULK_512MB, INLINE_64K);
    out[0] = '\0';
    char *kept = NULL; /* unconsumed bytes */
    size_t kept_len = 0;
    resp_status st = RESP_NEED_MORE;
    for (size_t i = 0; i < len; i++) {
        char *buf = malloc(kept_len + 1);
        if (kept_len)
            memcpy(buf, kept, kept_len);
        buf[kept_len] = data[i];
        free(kept);
        kept = buf;
        kept_len++;
        while ((st = resp_parse(p, kept, kept_len)) == RESP_OK)
            describe_cmd(p, kept, out, outsize);
        if (st == RESP_ERROR)
            break;
        size_t drop = resp_parser_consumed(p);
        memmove(kept, kept + drop, kept_len - drop);
        kept_len -= drop;
        resp_parser_shift(p, drop);
    }
    free(kept);
    return st;
}

static void test_multibulk_simple(void) {
    resp_parser p;
    char out[256];
    CHECK_EQ_LL(parse_str("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", out,
                          sizeof(out), &p), RESP_NEED_MORE);
    CHECK(strcmp(out, "SET|k|hello;") == 0);
    CHECK_EQ_LL(p.pos, 31);
    CHECK_EQ_LL(p.cmd_start, 31);
    resp_parser_free(&p);

    /* Empty and binary arguments. */
    const char bin[] = "*2\r\n$0\r\n\r\n$3\r\na\0b\r\n";
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    char *buf = malloc(sizeof(bin) - 1);
    memcpy(buf, bin, sizeof(bin) - 1);
    CHECK_EQ_LL(resp_parse(&p, buf, sizeof(bin) - 1), RESP_OK);
    CHECK_EQ_LL(p.argc, 2);
    CHECK_EQ_LL(p.args[0].len, 0);
    CHECK_EQ_LL(p.args[1].len, 3);
    CHECK(memcmp(buf + p.args[1].off, "a\0b", 3) == 0);
    CHECK_EQ_LL(p.pos, sizeof(bin) - 1);
    CHECK_EQ_LL(resp_parser_consumed(&p), sizeof(bin) - 1);
    CHECK_EQ_LL(resp_parse(&p, buf, sizeof(bin) - 1), RESP_NEED_MORE);
    free(buf);
    resp_parser_free(&p);
}

static void test_pipeline(void) {
    resp_parser p;
    char out[256];
    const char *pipe = "*1\r\n$4\r\nPING\r\n"
                       "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
                       "PING\r\n"
                       "*0\r\n"
                       "*-1\r\n"
                       "*-5\r\n"
                       "\r\n"
                       "   \t \r\n"
                       "\n"
                       "ECHO x\n"
                       "*1\r\n$4\r\nQUIT\r\n";
    CHECK_EQ_LL(parse_str(pipe, out, sizeof(out), &p), RESP_NEED_MORE);
    CHECK(strcmp(out, "PING;GET|a;PING;ECHO|x;QUIT;") == 0);
    CHECK_EQ_LL(p.pos, strlen(pipe));
    resp_parser_free(&p);
}

static void test_bytewise_equals_whole(void) {
    const char *inputs[] = {
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n",
        "SET k \"a b\\x41\\n\"\r\nGET 'k'\nPING\r\n",
        "*0\r\n*2\r\n$0\r\n\r\n$10\r\n0123456789\r\n\r\n*1\r\n$1\r\nx\r\n",
        "*1\r\n$4\r\nPINGxx*1\r\n$4\rXPING\r\n", /* trailers unchecked, like Redis */
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        resp_parser a, b;
        char whole[512], bytewise[512];
        resp_parser_init(&a, MAX_BULK_512MB, INLINE_64K);
        resp_status sa = parse_whole(inputs[i], strlen(inputs[i]), whole,
                                     sizeof(whole), &a);
        resp_status sb = parse_bytewise(inputs[i], strlen(inputs[i]), bytewise,
                                        sizeof(bytewise), &b);
        CHECK_EQ_LL(sa, RESP_NEED_MORE);
        CHECK_EQ_LL(sb, RESP_NEED_MORE);
        if (strcmp(whole, bytewise) != 0) {
            fprintf(stderr, "  input %zu: whole '%s' bytewise '%s'\n", i, whole,
                    bytewise);
            CHECK(0);
        }
        CHECK(whole[0] != '\0');
        resp_parser_free(&a);
        resp_parser_free(&b);
    }
}

/* Parse data and expect RESP_ERROR with exactly the given text. */
static int error_is(const char *data, size_t len, const char *want) {
    resp_parser p;
    char out[256];
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    resp_status st = parse_whole(data, len, out, sizeof(out), &p);
    int ok = st == RESP_ERROR && p.error != NULL && strcmp(p.error, want) == 0;
    if (!ok)
        fprintf(stderr, "  status %d error '%s' want '%s'\n", (int)st,
                p.error ? p.error : "(none)", want);
    /* Errors are final: another call reports the same error. */
    char dummy[1] = {'x'};
    if (ok && resp_parse(&p, dummy, 1) != RESP_ERROR)
        ok = 0;
    resp_parser_free(&p);
    return ok;
}
#define ERR_IS(lit, want) error_is(lit, sizeof(lit) - 1, want)

static void test_errors(void) {
    const char *mb = "ERR Protocol error: invalid multibulk length";
    const char *bl = "ERR Protocol error: invalid bulk length";
    CHECK(ERR_IS("*x\r\n", mb));
    CHECK(ERR_IS("*\r\n", mb));
    CHECK(ERR_IS("*01\r\n", mb));
    CHECK(ERR_IS("*-0\r\n", mb));
    CHECK(ERR_IS("*+1\r\n", mb));
    CHECK(ERR_IS("*1 \r\n", mb));
    CHECK(ERR_IS("*2147483648\r\n", mb));         /* > INT_MAX */
    CHECK(ERR_IS("*99999999999999999999\r\n", mb));
    CHECK(ERR_IS("*1\r\n$x\r\n", bl));
    CHECK(ERR_IS("*1\r\n$\r\n", bl));
    CHECK(ERR_IS("*1\r\n$-1\r\n", bl));
    CHECK(ERR_IS("*1\r\n$-0\r\n", bl));
    CHECK(ERR_IS("*1\r\n$+4\r\n", bl));
    CHECK(ERR_IS("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", bl));
    CHECK(ERR_IS("*1\r\n$99999999999\r\n", bl));    /* > 512 MB */
    CHECK(ERR_IS("*1\r\n$536870913\r\n", bl));      /* 512 MB + 1 */
    CHECK(ERR_IS("*1\r\nfoo\r\n", "ERR Protocol error: expected '$', got 'f'"));
    CHECK(ERR_IS("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
                 "ERR Protocol error: expected '$', got 'f'"));
    CHECK(ERR_IS("*1\r\n\r\n", "ERR Protocol error: expected '$', got '\r'"));
    CHECK(ERR_IS("SET \"\"\"k\"\"\" v\r\n",
                 "ERR Protocol error: unbalanced quotes in request"));
    CHECK(ERR_IS("ECHO \"abc\r\n", "ERR Protocol error: unbalanced quotes in request"));
    CHECK(ERR_IS("ECHO 'abc\n", "ERR Protocol error: unbalanced quotes in request"));
    CHECK(ERR_IS("ECHO \"a\"b\n", "ERR Protocol error: unbalanced quotes in request"));
    CHECK(ERR_IS("ECHO 'a'b\n", "ERR Protocol error: unbalanced quotes in request"));
    CHECK(ERR_IS("ECHO \"a\\\"\n", "ERR Protocol error: unbalanced quotes in request"));
    /* Errors after good commands still deliver the good ones first. */
    resp_parser p;
    char out[128];
    CHECK_EQ_LL(parse_str("PING\r\n*1\r\n$x\r\n", out, sizeof(out), &p), RESP_ERROR);
    CHECK(strcmp(out, "PING;") == 0);
    resp_parser_free(&p);
    /* A 512 MB bulk is accepted at the header (nothing is reserved). */
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    char hdr[] = "*1\r\n$536870912\r\n";
    CHECK_EQ_LL(resp_parse(&p, hdr, strlen(hdr)), RESP_NEED_MORE);
    CHECK_EQ_LL(p.need, 536870912 + 2);
    resp_parser_free(&p);
}

/* A header line of n filler bytes with no CR. */
static void test_too_big_headers(void) {
    size_t n = 70 * 1024;
    char *buf = malloc(n + 4);
    memset(buf, '1', n + 4);
    buf[0] = '*';
    CHECK(error_is(buf, n, "ERR Protocol error: too big mbulk count string"));
    memcpy(buf, "*1\r\n$", 5);
    CHECK(error_is(buf, n, "ERR Protocol error: too big bulk count string"));
    /* Redis's desync regression inputs: "*\0payload..." and "$\0payload...". */
    memset(buf, 'p', n);
    memcpy(buf, "*\0", 2);
    CHECK(error_is(buf, n, "ERR Protocol error: too big mbulk count string"));
    memcpy(buf, "$\0", 2);
    CHECK(error_is(buf, n, "ERR Protocol error: too big inline request"));
    buf[0] = '\0';
    CHECK(error_is(buf, n, "ERR Protocol error: too big inline request"));

    /* Up to 64 KB without CR is still just incomplete. */
    resp_parser p;
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    memset(buf, '1', n);
    buf[0] = '*';
    CHECK_EQ_LL(resp_parse(&p, buf, 64 * 1024), RESP_NEED_MORE);
    CHECK_EQ_LL(resp_parse(&p, buf, 64 * 1024 + 1), RESP_ERROR);
    resp_parser_free(&p);
    /* A CR as the 65537th byte of the line still ends it in time. */
    buf[64 * 1024] = '\r';
    buf[64 * 1024 + 1] = '\n';
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    CHECK_EQ_LL(resp_parse(&p, buf, 64 * 1024 + 2), RESP_ERROR);
    CHECK(strcmp(p.error, "ERR Protocol error: invalid multibulk length") == 0);
    resp_parser_free(&p);
    /* Like Redis, a CR already buffered beyond 64 KB still ends the line. */
    buf[64 * 1024] = '1';
    buf[n - 2] = '\r';
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    CHECK_EQ_LL(resp_parse(&p, buf, n), RESP_ERROR);
    CHECK(strcmp(p.error, "ERR Protocol error: invalid multibulk length") == 0);
    resp_parser_free(&p);
    free(buf);
}

/* A batch protocol handshake (magic "PIRB" + binary version) on the RESP
 * port is refused at once: it holds no newline to end an inline command. */
static void test_batch_handshake(void) {
    const char *want = "ERR Protocol error: pier batch protocol handshake on the RESP port; "
                       "connect to the batch port (batch-port)";
    CHECK(ERR_IS("PIRB\x01\x00\x01\x01\x01\x00", want));
    /* Also when the magic trickles in one byte at a time. */
    resp_parser p;
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    char hs[] = "PIRB\x01\x00\x02";
    resp_status st = RESP_NEED_MORE;
    for (size_t n = 1; n <= sizeof hs - 1 && st == RESP_NEED_MORE; n++) st = resp_parse(&p, hs, n);
    CHECK_EQ_LL(st, RESP_ERROR);
    resp_parser_free(&p);
    /* A text command that happens to start with PIRB is just unknown. */
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    char text[] = "PIRBX a\r\nPIRB\r\n";
    CHECK_EQ_LL(resp_parse(&p, text, sizeof text - 1), RESP_OK);
    CHECK_EQ_LL(p.argc, 2);
    CHECK_EQ_LL(resp_parse(&p, text, sizeof text - 1), RESP_OK);
    CHECK_EQ_LL(p.argc, 1);
    resp_parser_free(&p);
}

static void test_too_big_inline(void) {
    size_t n = 2 * 1024 * 1024;
    char *buf = malloc(n);
    memset(buf, 'a', n);
    CHECK(error_is(buf, n, "ERR Protocol error: too big inline request"));

    /* The same line arriving in 16 KB reads errors once it passes 64 KB. */
    resp_parser p;
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    resp_status st = RESP_NEED_MORE;
    size_t fed = 0;
    while (st == RESP_NEED_MORE && fed < n) {
        fed += 16 * 1024;
        st = resp_parse(&p, buf, fed);
    }
    CHECK_EQ_LL(st, RESP_ERROR);
    CHECK_EQ_LL(fed, 80 * 1024);
    resp_parser_free(&p);

    /* A line of exactly max_inline bytes (plus "\n") is accepted. */
    memset(buf, 'a', INLINE_64K);
    buf[INLINE_64K] = '\n';
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    CHECK_EQ_LL(resp_parse(&p, buf, INLINE_64K + 1), RESP_OK);
    CHECK_EQ_LL(p.argc, 1);
    CHECK_EQ_LL(p.args[0].len, INLINE_64K);
    resp_parser_free(&p);
    /* One more byte: too big when the bytes trickle in, but accepted when
     * the newline is already buffered, exactly like Redis. */
    buf[INLINE_64K] = 'a';
    buf[INLINE_64K + 1] = '\n';
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    CHECK_EQ_LL(resp_parse(&p, buf, INLINE_64K + 1), RESP_ERROR);
    CHECK(strcmp(p.error, "ERR Protocol error: too big inline request") == 0);
    resp_parser_free(&p);
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    CHECK_EQ_LL(resp_parse(&p, buf, INLINE_64K + 2), RESP_OK);
    CHECK_EQ_LL(p.args[0].len, INLINE_64K + 1);
    resp_parser_free(&p);
    free(buf);
}

/* Parse one inline line and compare its arguments, joined with '|'. */
static int inline_is(const char *line, const char *want) {
    resp_parser p;
    char out[256];
    resp_status st = parse_str(line, out, sizeof(out), &p);
    resp_parser_free(&p);
    if (st != RESP_NEED_MORE || strcmp(out, want) != 0) {
        fprintf(stderr, "  inline '%s': status %d got '%s' want '%s'\n", line,
                (int)st, out, want);
        return 0;
    }
    return 1;
}

static void test_inline_quoting(void) {
    CHECK(inline_is("GET k\n", "GET|k;"));
    CHECK(inline_is("GET k\r\n", "GET|k;"));
    CHECK(inline_is("  GET   k  \r\n", "GET|k;"));
    CHECK(inline_is("\tGET\tk\n", "GET|k;"));
    CHECK(inline_is("SET k \"hello world\"\n", "SET|k|hello world;"));
    CHECK(inline_is("SET k 'hello world'\n", "SET|k|hello world;"));
    CHECK(inline_is("ECHO \"a\\x41b\"\n", "ECHO|aAb;"));
    CHECK(inline_is("ECHO \"\\x4a\\x4B\"\n", "ECHO|JK;"));
    CHECK(inline_is("ECHO \"\\xZZ\"\n", "ECHO|xZZ;"));  /* not hex: plain x */
    CHECK(inline_is("ECHO \"\\x4\"\n", "ECHO|x4;"));
    CHECK(inline_is("ECHO \"a\\qb\"\n", "ECHO|aqb;"));
    CHECK(inline_is("ECHO \"q\\\"q\"\n", "ECHO|q\"q;"));
    CHECK(inline_is("ECHO \"b\\\\s\"\n", "ECHO|b\\s;"));
    CHECK(inline_is("ECHO \"\\n\\r\\t\\b\\a\"\n", "ECHO|\n\r\t\b\a;"));
    CHECK(inline_is("ECHO 'a\\'b'\n", "ECHO|a'b;"));
    CHECK(inline_is("ECHO 'a\\qb'\n", "ECHO|a\\qb;"));
    CHECK(inline_is("ECHO 'a\"b'\n", "ECHO|a\"b;"));
    CHECK(inline_is("ECHO \"a'b\"\n", "ECHO|a'b;"));
    CHECK(inline_is("ECHO \"\" ''\n", "ECHO||;"));
    CHECK(inline_is("ECHO a\"b c\"\n", "ECHO|ab c;"));  /* quote mid-token */
    CHECK(inline_is("ECHO \"x\"\t y\n", "ECHO|x|y;"));
    CHECK(inline_is("ECHO \"x\"\v\n", "ECHO|x;"));      /* \v ends a quote */
    CHECK(inline_is("ECHO a\vb\n", "ECHO|a\vb;"));      /* ...not a token */
    CHECK(inline_is("ECHO \vab\n", "ECHO|ab;"));
    CHECK(inline_is("ECHO a\rb\n", "ECHO|a|b;"));
    CHECK(inline_is("ECHO \"a\rb\"\n", "ECHO|a\rb;"));
    CHECK(inline_is("PING\r\r\n", "PING;"));
    CHECK(inline_is("$3\r\n", "$3;"));                  /* not '*': inline */
    CHECK(inline_is("\r\n\n   \r\nPING\r\n", "PING;"));
}

static void test_inline_unescapes_in_place(void) {
    char line[] = "SET \"k\\x00y\" 'v w'\n";
    resp_parser p;
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    CHECK_EQ_LL(resp_parse(&p, line, sizeof(line) - 1), RESP_OK);
    CHECK_EQ_LL(p.argc, 3);
    CHECK_MEM(line + p.args[0].off, p.args[0].len, "SET");
    CHECK_EQ_LL(p.args[1].len, 3);
    CHECK(memcmp(line + p.args[1].off, "k\0y", 3) == 0);
    CHECK_MEM(line + p.args[2].off, p.args[2].len, "v w");
    CHECK_EQ_LL(p.pos, sizeof(line) - 1);
    resp_parser_free(&p);
}

static void test_need_hint(void) {
    resp_parser p;
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    char buf[] = "*2\r\n$3\r\nGET\r\n$100000\r\nabc";
    size_t len = strlen(buf);
    CHECK_EQ_LL(resp_parse(&p, buf, len), RESP_NEED_MORE);
    CHECK_EQ_LL(p.need, 100000 + 2 - 3);
    CHECK_EQ_LL(p.cmd_start, 0);
    resp_parser_free(&p);

    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    CHECK_EQ_LL(resp_parse(&p, buf, 6), RESP_NEED_MORE);
    CHECK_EQ_LL(p.need, 0);
    resp_parser_free(&p);
}

/* A huge count is accepted without reserving memory for it. */
static void test_huge_count_is_cheap(void) {
    resp_parser p;
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    char buf[] = "*2147483647\r\n$1\r\na\r\n";
    CHECK_EQ_LL(resp_parse(&p, buf, strlen(buf)), RESP_NEED_MORE);
    CHECK(p.args_cap <= 1024);
    CHECK_EQ_LL(p.argc, 1);
    resp_parser_free(&p);

    /* Arguments beyond the initial reservation grow the vector. */
    size_t n = 3000, cap = 8 + n * 8;
    char *big = malloc(cap);
    size_t len = (size_t)snprintf(big, cap, "*%zu\r\n", n);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(big + len, cap - len, "$1\r\n%c\r\n", (char)('a' + i % 26));
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    CHECK_EQ_LL(resp_parse(&p, big, len), RESP_OK);
    CHECK_EQ_LL(p.argc, n);
    CHECK(big[p.args[2999].off] == 'a' + 2999 % 26);
    resp_parser_free(&p);
    free(big);
}

static void test_shift(void) {
    resp_parser p;
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    /* A complete PING, then a partial SET. */
    const char *part1 = "*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhe";
    size_t len1 = strlen(part1);
    char *buf = malloc(len1);
    memcpy(buf, part1, len1);
    CHECK_EQ_LL(resp_parse(&p, buf, len1), RESP_OK);
    CHECK_EQ_LL(resp_parse(&p, buf, len1), RESP_NEED_MORE);
    size_t consumed = resp_parser_consumed(&p);
    CHECK_EQ_LL(consumed, 14);
    CHECK_EQ_LL(p.need, 5 + 2 - 2);
    /* Drop the consumed prefix into a new buffer and append the rest. */
    const char *rest = "llo\r\n";
    size_t keep = len1 - consumed, len2 = keep + strlen(rest);
    char *buf2 = malloc(len2);
    memcpy(buf2, buf + consumed, keep);
    memcpy(buf2 + keep, rest, strlen(rest));
    free(buf);
    resp_parser_shift(&p, consumed);
    CHECK_EQ_LL(p.cmd_start, 0);
    CHECK_EQ_LL(resp_parse(&p, buf2, len2), RESP_OK);
    CHECK_EQ_LL(p.argc, 3);
    CHECK_MEM(buf2 + p.args[0].off, p.args[0].len, "SET");
    CHECK_MEM(buf2 + p.args[1].off, p.args[1].len, "k");
    CHECK_MEM(buf2 + p.args[2].off, p.args[2].len, "hello");
    CHECK_EQ_LL(p.pos, len2);
    /* Shifting away a returned command forgets its arguments. */
    resp_parser_shift(&p, resp_parser_consumed(&p));
    CHECK_EQ_LL(p.argc, 0);
    CHECK_EQ_LL(p.pos, 0);
    free(buf2);

    /* Partial inline line: the search position is rebased too. */
    char line[] = "PING\r\nGET key";
    CHECK_EQ_LL(resp_parse(&p, line, strlen(line)), RESP_OK);
    CHECK_EQ_LL(resp_parse(&p, line, strlen(line)), RESP_NEED_MORE);
    CHECK_EQ_LL(p.cmd_start, 6);
    CHECK_EQ_LL(p.pos, strlen(line));
    resp_parser_shift(&p, 6);
    CHECK_EQ_LL(p.cmd_start, 0);
    CHECK_EQ_LL(p.pos, 7);
    char full[] = "GET key\r\n";
    CHECK_EQ_LL(resp_parse(&p, full, strlen(full)), RESP_OK);
    CHECK_EQ_LL(p.argc, 2);
    CHECK_MEM(full + p.args[1].off, p.args[1].len, "key");
    resp_parser_free(&p);
}

/* Resuming inside a large bulk must not rescan its payload: feeding a
 * 1 MB bulk in 1-byte steps stays fast (quadratic would be ~5e11 ops). */
static void test_resume_is_linear(void) {
    size_t n = 1024 * 1024;
    char *buf = malloc(n + 64);
    size_t h = (size_t)snprintf(buf, 64, "*1\r\n$%zu\r\n", n);
    memset(buf + h, 'z', n);
    memcpy(buf + h + n, "\r\n", 2);
    size_t total = h + n + 2;
    resp_parser p;
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    resp_status st = RESP_NEED_MORE;
    size_t i;
    for (i = 1; i <= total && st == RESP_NEED_MORE; i++)
        st = resp_parse(&p, buf, i);
    CHECK_EQ_LL(st, RESP_OK);
    CHECK_EQ_LL(i - 1, total);
    CHECK_EQ_LL(p.args[0].len, n);
    resp_parser_free(&p);

    /* Same for a long inline line (search resumes where it stopped). */
    memset(buf, 'y', 60000);
    buf[60000] = '\n';
    resp_parser_init(&p, MAX_BULK_512MB, INLINE_64K);
    st = RESP_NEED_MORE;
    for (i = 1; i <= 60001 && st == RESP_NEED_MORE; i++)
        st = resp_parse(&p, buf, i);
    CHECK_EQ_LL(st, RESP_OK);
    CHECK_EQ_LL(p.args[0].len, 60000);
    resp_parser_free(&p);
    free(buf);
}

static void test_limits_configurable(void) {
    resp_parser p;
    resp_parser_init(&p, 10, 16);
    char ok[] = "*1\r\n$10\r\n0123456789\r\n";
    CHECK_EQ_LL(resp_parse(&p, ok, strlen(ok)), RESP_OK);
    resp_parser_free(&p);
    resp_parser_init(&p, 10, 16);
    char bad[] = "*1\r\n$11\r\n";
    CHECK_EQ_LL(resp_parse(&p, bad, strlen(bad)), RESP_ERROR);
    CHECK(strcmp(p.error, "ERR Protocol error: invalid bulk length") == 0);
    resp_parser_free(&p);
    resp_parser_init(&p, 10, 16);
    p.max_multibulk = 2;
    char many[] = "*3\r\n";
    CHECK_EQ_LL(resp_parse(&p, many, strlen(many)), RESP_ERROR);
    CHECK(strcmp(p.error, "ERR Protocol error: invalid multibulk length") == 0);
    resp_parser_free(&p);
    resp_parser_init(&p, 10, 16);
    char longline[] = "0123456789abcdefg"; /* 17 bytes, no newline */
    CHECK_EQ_LL(resp_parse(&p, longline, 16), RESP_NEED_MORE);
    CHECK_EQ_LL(resp_parse(&p, longline, 17), RESP_ERROR);
    resp_parser_free(&p);
}

/* Random inputs in random chunkings must give the same outcome as the whole
 * buffer at once (and never trip the sanitizers). */
static void test_random_chunking(void) {
    static const char *pieces[] = {
        "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", "PING\r\n", "ECHO \"a b\"\n",
        "*0\r\n", "*1\r\n$0\r\n\r\n", "  \n", "SET 'x' y\r\n",
        "*3\r\n$1\r\na\r\n$2\r\nbc\r\n$3\r\ndef\r\n",
    };
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        char data[2048];
        size_t len = 0;
        for (int k = 0; k < 12; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *piece = pieces[(seed >> 16) % 8];
            memcpy(data + len, piece, strlen(piece));
            len += strlen(piece);
        }
        resp_parser whole, chunked;
        char out_whole[4096], out_chunked[4096];
        resp_parser_init(&whole, MAX_BULK_512MB, INLINE_64K);
        resp_status sw = parse_whole(data, len, out_whole, sizeof(out_whole), &whole);
        /* Chunked: grow the visible length by random steps. */
        resp_parser_init(&chunked, MAX_BULK_512MB, INLINE_64K);
        char *buf = malloc(len);
        memcpy(buf, data, len);
        out_chunked[0] = '\0';
        resp_status sc = RESP_NEED_MORE;
        size_t visible = 0;
        while (visible < len) {
            seed = seed * 1103515245u + 12345u;
            visible += 1 + (seed >> 16) % 7;
            if (visible > len)
                visible = len;
            while ((sc = resp_parse(&chunked, buf, visible)) == RESP_OK)
                describe_cmd(&chunked, buf, out_chunked, sizeof(out_chunked));
        }
        CHECK_EQ_LL(sw, sc);
        CHECK(strcmp(out_whole, out_chunked) == 0);
        free(buf);
        resp_parser_free(&whole);
        resp_parser_free(&chunked);
    }
}

int main(void) {
    RUN(test_multibulk_simple);
    RUN(test_pipeline);
    RUN(test_bytewise_equals_whole);
    RUN(test_errors);
    RUN(test_too_big_headers);
    RUN(test_too_big_inline);
    RUN(test_inline_quoting);
    RUN(test_inline_unescapes_in_place);
    RUN(test_need_hint);
    RUN(test_huge_count_is_cheap);
    RUN(test_shift);
    RUN(test_resume_is_linear);
    RUN(test_limits_configurable);
    RUN(test_random_chunking);
    RUN(test_batch_handshake);
    return check_summary("parser");
}
