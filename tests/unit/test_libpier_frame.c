/* libpier framing (docs/PROTOCOL.md byte for byte), the RESP reply
 * parser, and the status codes and messages. */
#include <stdlib.h>

#include "check.h"
#include "internal.h"

static void test_handshake_layout(void) {
    pb_handshake h = {.role = PB_ROLE_SUBSCRIBER, .ack_level = 0, .order_level = 1,
                      .codecs = 3, .client_id = 0x0102030405060708ull, .token = "pw",
                      .topic = "orders", .start = "0"};
    uint8_t b[128];
    size_t n = pb_encode_handshake(&h, b, sizeof b);
    CHECK_EQ_LL(n, 28 + 2 + 6 + 1);
    CHECK_MEM(b, 4, "PIRB");
    CHECK_EQ_LL(b[4], 1);
    CHECK_EQ_LL(b[5], 0);
    CHECK_EQ_LL(b[6], 2);
    CHECK_EQ_LL(b[8], 1);
    CHECK_EQ_LL(b[9], 3);
    CHECK_EQ_LL(b[12], 8); /* little-endian client id */
    CHECK_EQ_LL(b[19], 1);
    CHECK_EQ_LL(b[20], 2);
    CHECK_EQ_LL(b[22], 6);
    CHECK_EQ_LL(b[24], 1);
    CHECK_MEM(b + 28, 9, "pworders0");
}

static void test_handshake_limits(void) {
    uint8_t b[4096];
    pb_handshake h = {.role = PB_ROLE_PUBLISHER, .topic = ""};
    CHECK_EQ_LL(pb_encode_handshake(&h, b, sizeof b), 0);
    CHECK(strstr(pier_last_error(), "topic") != NULL);
    char big[1100];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = 0;
    h.topic = big;
    CHECK_EQ_LL(pb_encode_handshake(&h, b, sizeof b), 0);
    h.topic = "t";
    h.start = "$";
    CHECK_EQ_LL(pb_encode_handshake(&h, b, sizeof b), 0); /* publishers send no start */
    h.start = NULL;
    CHECK_EQ_LL(pb_encode_handshake(&h, b, 10), 0);        /* buffer too small */
    CHECK_EQ_LL(pb_encode_handshake(&h, b, sizeof b), 29);
}

static void test_header_roundtrip(void) {
    pb_header h = {.type = PB_BATCH, .codec = 1, .flags = 0, .seq = 77, .count = 3,
                   .raw_len = 300, .payload_len = 120, .crc = 0xDEADBEEF};
    uint8_t b[PB_HEADER_LEN];
    pb_encode_header(&h, b);
    CHECK_MEM(b, 4, "PIRF");
    CHECK_EQ_LL(b[4], 1);
    CHECK_EQ_LL(b[5], 1);
    CHECK_EQ_LL(b[6], 1);
    CHECK_EQ_LL(codec_get_le64(b + 8), 77);
    CHECK_EQ_LL(codec_get_le32(b + 16), 3);
    CHECK_EQ_LL(codec_get_le32(b + 20), 300);
    CHECK_EQ_LL(codec_get_le32(b + 24), 120);
    CHECK_EQ_LL(codec_get_le32(b + 28), 0xDEADBEEF);
    pb_header d;
    CHECK_EQ_LL(pb_decode_header(b, PB_MAX_PAYLOAD, &d), PIER_OK);
    CHECK_EQ_LL(d.seq, 77);
    CHECK_EQ_LL(d.crc, 0xDEADBEEF);
}

static int decode_with(pb_header h, uint32_t max, const char *magic, int version) {
    uint8_t b[PB_HEADER_LEN];
    pb_encode_header(&h, b);
    memcpy(b, magic, 4);
    b[4] = (uint8_t)version;
    pb_header d;
    return pb_decode_header(b, max, &d);
}

static void test_header_rejects(void) {
    pb_header ok = {.type = PB_BATCH, .count = 1, .raw_len = 8, .payload_len = 8};
    CHECK_EQ_LL(decode_with(ok, 100, "PIRF", 1), PIER_OK);
    CHECK_EQ_LL(decode_with(ok, 100, "PIRX", 1), PIER_E_PROTOCOL);
    CHECK_EQ_LL(decode_with(ok, 100, "PIRF", 2), PIER_E_PROTOCOL);
    CHECK_EQ_LL(decode_with(ok, 4, "PIRF", 1), PIER_E_PROTOCOL); /* over the limit */
    pb_header h = ok;
    h.count = 3; /* more than raw_len / 4 */
    CHECK_EQ_LL(decode_with(h, 100, "PIRF", 1), PIER_E_PROTOCOL);
    h = ok;
    h.raw_len = 9; /* raw codec with raw_len != payload_len */
    CHECK_EQ_LL(decode_with(h, 100, "PIRF", 1), PIER_E_PROTOCOL);
    h = ok;
    h.codec = 3;
    CHECK_EQ_LL(decode_with(h, 100, "PIRF", 1), PIER_E_PROTOCOL);
    h = (pb_header){.type = 9};
    CHECK_EQ_LL(decode_with(h, 100, "PIRF", 1), PIER_E_PROTOCOL);
    h = (pb_header){.type = PB_ACK, .payload_len = 5, .raw_len = 5};
    CHECK_EQ_LL(decode_with(h, 100, "PIRF", 1), PIER_E_PROTOCOL);
    h = (pb_header){.type = PB_HELLO_OK, .payload_len = 8, .raw_len = 8};
    CHECK_EQ_LL(decode_with(h, 100, "PIRF", 1), PIER_OK);
    h = (pb_header){.type = PB_ERROR, .payload_len = 1, .raw_len = 1};
    CHECK_EQ_LL(decode_with(h, 100, "PIRF", 1), PIER_E_PROTOCOL);
}

static size_t put_entry(uint8_t *p, uint64_t ms, uint64_t seq, int kind, const char *s) {
    codec_put_le64(p, ms);
    codec_put_le64(p + 8, seq);
    p[16] = (uint8_t)kind;
    codec_put_le32(p + 17, (uint32_t)strlen(s));
    memcpy(p + 21, s, strlen(s));
    return 21 + strlen(s);
}

static void test_entries(void) {
    uint8_t b[256];
    size_t n = put_entry(b, 5, 0, 0, "hello");
    n += put_entry(b + n, 5, 1, 1, "*4\r\n$1\r\na\r\n$2\r\nbc\r\n$0\r\n\r\n$3\r\nxyz\r\n");
    n += put_entry(b + n, 6, 0, 0, "");
    pier_msg m[3];
    size_t nf = 0;
    CHECK_EQ_LL(pb_parse_entries(b, n, 3, m, &nf), PIER_OK);
    CHECK_EQ_LL(nf, 4); /* 1 + 2 + 1 */
    CHECK_MEM(m[0].data, m[0].len, "hello");
    CHECK_EQ_LL(m[1].kind, PIER_KIND_FIELDS);
    CHECK_EQ_LL(m[1].id_seq, 1);
    CHECK_EQ_LL(m[2].id_ms, 6);
    CHECK_EQ_LL(m[2].len, 0);
    pier_field f[4];
    pb_attach_fields(m, 3, f);
    CHECK(m[0].fields == f && m[0].nfields == 1);
    CHECK_MEM(m[0].fields[0].name, m[0].fields[0].name_len, "data");
    CHECK_MEM(m[0].fields[0].value, m[0].fields[0].value_len, "hello");
    CHECK(m[1].fields == f + 1 && m[1].nfields == 2);
    CHECK_MEM(m[1].fields[0].name, m[1].fields[0].name_len, "a");
    CHECK_MEM(m[1].fields[0].value, m[1].fields[0].value_len, "bc");
    CHECK_MEM(m[1].fields[1].name, m[1].fields[1].name_len, "");
    CHECK_MEM(m[1].fields[1].value, m[1].fields[1].value_len, "xyz");
    CHECK(m[2].fields == f + 3 && m[2].nfields == 1);
    CHECK_EQ_LL(m[2].fields[0].value_len, 0);
    CHECK_EQ_LL(pb_parse_entries(b, n - 1, 3, m, &nf), PIER_E_PROTOCOL); /* truncated */
    CHECK_EQ_LL(pb_parse_entries(b, n, 2, m, &nf), PIER_E_PROTOCOL);     /* trailing bytes */
    CHECK_EQ_LL(pb_parse_entries(b, n, 4, m, &nf), PIER_E_PROTOCOL);     /* count too high */
    b[16] = 7;
    CHECK_EQ_LL(pb_parse_entries(b, n, 3, m, &nf), PIER_E_PROTOCOL);     /* unknown kind */
}

/* Kind-1 entries must be exactly a RESP array of field/value pairs. */
static void test_entry_fields_rejects(void) {
    static const char *const bad[] = {
        "*1\r\n$1\r\na\r\n",                     /* odd count */
        "*2\r\n$1\r\na\r\n",                     /* a bulk missing */
        "*2\r\n$1\r\na\r\n$5\r\nb\r\n",          /* bulk longer than the entry */
        "*2\r\n$1\r\na\r\n$1\r\nbXX",            /* no CRLF after a bulk */
        "*2\r\n$1\r\na\r\n$1\r\nb\r\nextra",     /* bytes after the array */
        "*2\r\n:1\r\n:2\r\n",                     /* not bulks */
        "*x\r\n", "*\r\n", "$1\r\na\r\n", "",
        "*2\r\n$99999999999\r\na\r\n$1\r\nb\r\n", /* 11 digits */
        "*2\r\n$-1\r\n$1\r\nb\r\n",              /* null bulk */
        "*2\r\n$01\r\na\r\n$1\r\nb\r\n",          /* leading zero */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t b[128];
        size_t n = put_entry(b, 1, 1, 1, bad[i]), nf;
        pier_msg m[1];
        if (pb_parse_entries(b, n, 1, m, &nf) != PIER_E_PROTOCOL)
            fprintf(stderr, "  accepted bad entry %zu\n", i);
        CHECK_EQ_LL(pb_parse_entries(b, n, 1, m, &nf), PIER_E_PROTOCOL);
    }
}

static void test_put_message(void) {
    uint8_t b[16];
    CHECK_EQ_LL(pb_put_message(b, "abc", 3), 7);
    CHECK_EQ_LL(codec_get_le32(b), 3);
    CHECK_MEM(b + 4, 3, "abc");
    CHECK_EQ_LL(pb_put_message(b, NULL, 0), 4);
}

static void test_error_frame(void) {
    uint8_t p[] = {3, 0, 'b', 'a', 'd', ' ', 'p', 'w'};
    CHECK_EQ_LL(pb_error_frame(p, sizeof p), PIER_E_AUTH);
    CHECK(strcmp(pier_last_error(), "server error 3: bad pw") == 0);
    p[0] = 9;
    CHECK_EQ_LL(pb_error_frame(p, sizeof p), PIER_E_SERVER);
    CHECK(strstr(pier_last_error(), "error 9") != NULL);
}

static void test_status_names(void) {
    for (int s = PIER_OK; s <= PIER_E_WRONG_TYPE; s++) {
        CHECK(pier_strerror(s) != NULL);
        CHECK(strcmp(pier_strerror(s), "unknown status") != 0);
    }
    CHECK(strcmp(pier_strerror(999), "unknown status") == 0);
    CHECK_EQ_LL(pier_fail(PIER_E_IO, "x%d", 1), PIER_E_IO);
    CHECK(strcmp(pier_last_error(), "x1") == 0);
    pier_clear_error();
    CHECK(strcmp(pier_last_error(), "") == 0);
}

static void test_hostport(void) {
    char host[64];
    int port = 0;
    CHECK_EQ_LL(pn_split_hostport("127.0.0.1:8379", host, sizeof host, &port), PIER_OK);
    CHECK(strcmp(host, "127.0.0.1") == 0);
    CHECK_EQ_LL(port, 8379);
    CHECK_EQ_LL(pn_split_hostport("::1:80", host, sizeof host, &port), PIER_OK);
    CHECK(strcmp(host, "::1") == 0);
    CHECK_EQ_LL(pn_split_hostport("nohost", host, sizeof host, &port), PIER_E_INVALID);
    CHECK_EQ_LL(pn_split_hostport("h:0", host, sizeof host, &port), PIER_E_INVALID);
    CHECK_EQ_LL(pn_split_hostport("h:99999", host, sizeof host, &port), PIER_E_INVALID);
    CHECK_EQ_LL(pn_split_hostport(":1", host, sizeof host, &port), PIER_E_INVALID);
    CHECK_EQ_LL(pn_split_hostport(NULL, host, sizeof host, &port), PIER_E_INVALID);
}

static long parse(const char *s, resp_reply *r) { return resp_parse_reply(s, strlen(s), r); }

static void test_resp_parser(void) {
    resp_reply r;
    CHECK_EQ_LL(parse("+OK\r\n", &r), 5);
    CHECK_EQ_LL(r.type, RR_STATUS);
    CHECK_MEM(r.str, r.len, "OK");
    CHECK_EQ_LL(parse("-ERR no\r\n", &r), 9);
    CHECK_EQ_LL(r.type, RR_ERROR);
    CHECK_EQ_LL(parse(":-42\r\n", &r), 6);
    CHECK_EQ_LL(r.integer, -42);
    CHECK_EQ_LL(parse("$3\r\nabc\r\n", &r), 9);
    CHECK_MEM(r.str, r.len, "abc");
    CHECK_EQ_LL(parse("$-1\r\n", &r), 5);
    CHECK_EQ_LL(r.type, RR_NIL);
    CHECK_EQ_LL(parse("_\r\n", &r), 3);
    CHECK_EQ_LL(parse("*2\r\n$1\r\na\r\n:1\r\n", &r), 15);
    CHECK_EQ_LL(r.type, RR_ARRAY);
    CHECK_EQ_LL(r.integer, 2);
    /* incomplete */
    CHECK_EQ_LL(parse("$3\r\nab", &r), 0);
    CHECK_EQ_LL(parse("+OK", &r), 0);
    CHECK_EQ_LL(parse("*2\r\n$1\r\na\r\n", &r), 0);
    CHECK_EQ_LL(parse("", &r), 0);
    /* malformed */
    CHECK_EQ_LL(parse("?x\r\n", &r), -1);
    CHECK_EQ_LL(parse(":12a\r\n", &r), -1);
    CHECK_EQ_LL(parse("$3\r\nabcd\r\n", &r), -1);
    CHECK_EQ_LL(parse(":99999999999999999999999\r\n", &r), -1); /* would overflow */
    char deep[200] = "";
    for (int i = 0; i < 40; i++) strcat(deep, "*1\r\n");
    strcat(deep, ":1\r\n");
    CHECK_EQ_LL(parse(deep, &r), -1); /* nesting bound */
}

static void test_resp_encode(void) {
    const char *argv[] = {"SET", "k", "v v"};
    size_t lens[] = {3, 1, 3};
    char *out;
    size_t n;
    CHECK_EQ_LL(resp_encode_command(3, argv, lens, &out, &n), PIER_OK);
    CHECK_MEM(out, n, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv v\r\n");
    free(out);
}

int main(void) {
    RUN(test_handshake_layout);
    RUN(test_handshake_limits);
    RUN(test_header_roundtrip);
    RUN(test_header_rejects);
    RUN(test_entries);
    RUN(test_entry_fields_rejects);
    RUN(test_put_message);
    RUN(test_error_frame);
    RUN(test_status_names);
    RUN(test_hostport);
    RUN(test_resp_parser);
    RUN(test_resp_encode);
    return check_summary("libpier_frame");
}
