/* frame.c - byte-exact encoding and decoding of the batch protocol
 * (docs/PROTOCOL.md, version 1). Pure functions: no I/O, no allocation,
 * so the unit tests check them against the document's tables. */
#include <string.h>

#include "internal.h"
#include "proto/batch.h"

size_t pb_encode_handshake(const pb_handshake *h, uint8_t *buf, size_t cap) {
    size_t tlen = h->token ? strlen(h->token) : 0;
    size_t klen = h->topic ? strlen(h->topic) : 0;
    size_t slen = h->start ? strlen(h->start) : 0;
    if (klen < 1 || klen > PB_MAX_TOPIC)
        return (size_t)pier_fail(0, "topic length %zu outside 1..%d", klen, PB_MAX_TOPIC);
    if (tlen > 0xFFFF) return (size_t)pier_fail(0, "password longer than 65535 bytes");
    if (slen > PB_MAX_START) return (size_t)pier_fail(0, "start longer than %d", PB_MAX_START);
    if (h->role == PB_ROLE_PUBLISHER && slen)
        return (size_t)pier_fail(0, "a publisher sends no start");
    if (h->replication > 255 || h->flags > 255)
        return (size_t)pier_fail(0, "replication factor or flags over 255");
    size_t total = PB_HANDSHAKE_FIXED + tlen + klen + slen;
    if (total > cap) return (size_t)pier_fail(0, "handshake buffer too small");
    memset(buf, 0, PB_HANDSHAKE_FIXED);
    memcpy(buf, "PIRB", 4);
    codec_put_le16(buf + 4, PB_VERSION);
    buf[6] = (uint8_t)h->role;
    buf[7] = (uint8_t)h->ack_level;
    buf[8] = (uint8_t)h->order_level;
    buf[9] = (uint8_t)h->codecs;
    buf[10] = (uint8_t)h->replication;
    buf[11] = (uint8_t)h->flags;
    codec_put_le64(buf + 12, h->client_id);
    codec_put_le16(buf + 20, (uint16_t)tlen);
    codec_put_le16(buf + 22, (uint16_t)klen);
    codec_put_le16(buf + 24, (uint16_t)slen);
    uint8_t *p = buf + PB_HANDSHAKE_FIXED;
    if (tlen) memcpy(p, h->token, tlen);
    memcpy(p + tlen, h->topic, klen);
    if (slen) memcpy(p + tlen + klen, h->start, slen);
    return total;
}

/* The 32-byte layout is the server's codec (src/proto/batch.c), so both
 * ends of the protocol are one piece of code. */
void pb_encode_header(const pb_header *h, uint8_t out[PB_HEADER_LEN]) {
    batch_header b = {BATCH_VERSION, h->type,        h->codec,       h->flags, h->seq,
                      h->count,      h->raw_len,     h->payload_len, h->crc};
    batch_header_encode(&b, out);
}

/* The per-type payload rules of the document, checked before reading the
 * payload so a broken peer cannot make us allocate 4 GiB. */
static int check_lengths(const pb_header *h, uint32_t max_payload) {
    if (h->payload_len > max_payload || h->raw_len > max_payload)
        return pier_fail(PIER_E_PROTOCOL, "frame of %u/%u bytes over the %u limit",
                         h->payload_len, h->raw_len, max_payload);
    switch (h->type) {
    case PB_BATCH:
        if (h->codec > 2) return pier_fail(PIER_E_PROTOCOL, "unknown codec %u", h->codec);
        if (h->codec == 0 && h->raw_len != h->payload_len)
            return pier_fail(PIER_E_PROTOCOL, "raw batch with raw_len != payload_len");
        if (h->count > h->raw_len / 4)
            return pier_fail(PIER_E_PROTOCOL, "count %u too large for %u bytes", h->count,
                             h->raw_len);
        return PIER_OK;
    case PB_ACK:
        if (h->payload_len != 16 && h->payload_len != 0)
            return pier_fail(PIER_E_PROTOCOL, "ACK payload of %u bytes", h->payload_len);
        return PIER_OK;
    case PB_HELLO_OK:
        if (h->payload_len != 8)
            return pier_fail(PIER_E_PROTOCOL, "HELLO_OK payload of %u bytes", h->payload_len);
        return PIER_OK;
    case PB_ERROR:
        if (h->payload_len < 2) return pier_fail(PIER_E_PROTOCOL, "ERROR frame without code");
        return PIER_OK;
    default:
        return pier_fail(PIER_E_PROTOCOL, "unknown frame type %u", h->type);
    }
}

int pb_decode_header(const uint8_t in[PB_HEADER_LEN], uint32_t max_payload, pb_header *h) {
    batch_header b;
    switch (batch_header_decode(in, &b)) {
    case BATCH_E_MAGIC:
        return pier_fail(PIER_E_PROTOCOL, "bad frame magic");
    case BATCH_E_VERSION:
        return pier_fail(PIER_E_PROTOCOL, "unsupported frame version %u", in[4]);
    case BATCH_OK:
        break;
    default:
        return pier_fail(PIER_E_PROTOCOL, "unknown frame type %u or codec %u", in[5], in[6]);
    }
    *h = (pb_header){b.type, b.codec, b.flags, b.seq, b.count, b.raw_len, b.payload_len, b.crc};
    return check_lengths(h, max_payload);
}

size_t pb_put_message(uint8_t *dst, const void *msg, uint32_t len) {
    codec_put_le32(dst, len);
    if (len) memcpy(dst + 4, msg, len);
    return 4 + (size_t)len;
}

/* Strict "<prefix><decimal>\r\n" at p[*off..n) (at most 10 digits, no
 * leading zero): the number into *v, *off past the line. */
static bool resp_header(const uint8_t *p, size_t n, size_t *off, char prefix, uint64_t *v) {
    size_t i = *off, digits = 0;
    uint64_t x = 0;
    if (i >= n || p[i] != (uint8_t)prefix) return false;
    for (i++; i < n && p[i] >= '0' && p[i] <= '9' && digits < 10; i++, digits++)
        x = x * 10 + (uint64_t)(p[i] - '0');
    if (!digits || n - i < 2 || p[i] != '\r' || p[i + 1] != '\n') return false;
    if (digits > 1 && p[*off + 1] == '0') return false; /* canonical only, as the server writes */
    *off = i + 2;
    *v = x;
    return true;
}

/* Walk a kind-1 entry, a RESP array of an even number of bulk strings
 * spanning exactly p[0..n). With out, fill its pairs. Returns the number
 * of pairs, -1 when the bytes are not such an array. */
static long resp_fields(const uint8_t *p, size_t n, pier_field *out) {
    size_t off = 0;
    uint64_t count;
    if (!resp_header(p, n, &off, '*', &count) || count % 2 || count > n) return -1;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t len;
        if (!resp_header(p, n, &off, '$', &len) || n - off < len + 2 || p[off + len] != '\r' ||
            p[off + len + 1] != '\n')
            return -1;
        if (out && i % 2 == 0) {
            out[i / 2].name = (const char *)p + off;
            out[i / 2].name_len = len;
        } else if (out) {
            out[i / 2].value = (const char *)p + off;
            out[i / 2].value_len = len;
        }
        off += len + 2;
    }
    return off == n ? (long)(count / 2) : -1;
}

/* Entry layout: u64 ms, u64 seq, u8 kind, u32 len, bytes (21-byte head). */
int pb_parse_entries(const uint8_t *p, size_t raw_len, uint32_t count, pier_msg *msgs,
                     size_t *nfields) {
    size_t off = 0;
    *nfields = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (raw_len - off < 21)
            return pier_fail(PIER_E_PROTOCOL, "entry %u truncated", i);
        const uint8_t *e = p + off;
        uint32_t len = codec_get_le32(e + 17);
        if (e[16] > 1) return pier_fail(PIER_E_PROTOCOL, "entry kind %u", e[16]);
        if (raw_len - off - 21 < len)
            return pier_fail(PIER_E_PROTOCOL, "entry %u longer than the batch", i);
        long pairs = e[16] == PIER_KIND_FIELDS ? resp_fields(e + 21, len, NULL) : 1;
        if (pairs < 0)
            return pier_fail(PIER_E_PROTOCOL, "entry %u: fields are not a RESP array of pairs", i);
        msgs[i] = (pier_msg){codec_get_le64(e), codec_get_le64(e + 8), e[16],
                             (const char *)e + 21, len, NULL, (size_t)pairs};
        *nfields += (size_t)pairs;
        off += 21 + (size_t)len;
    }
    if (off != raw_len)
        return pier_fail(PIER_E_PROTOCOL, "%zu trailing bytes after %u entries", raw_len - off,
                         count);
    return PIER_OK;
}

void pb_attach_fields(pier_msg *msgs, uint32_t count, pier_field *fields) {
    for (uint32_t i = 0; i < count; i++) {
        pier_msg *m = &msgs[i];
        m->fields = fields;
        if (m->kind == PIER_KIND_FIELDS)
            resp_fields((const uint8_t *)m->data, m->len, fields); /* checked by the parse */
        else
            fields[0] = (pier_field){"data", 4, m->data, m->len};
        fields += m->nfields;
    }
}

int pb_error_frame(const uint8_t *payload, size_t len) {
    unsigned code = codec_get_le16(payload);
    int text_len = len - 2 > 200 ? 200 : (int)(len - 2);
    int status = code == 3 ? PIER_E_AUTH : PIER_E_SERVER;
    return pier_fail(status, "server error %u: %.*s", code, text_len,
                     (const char *)payload + 2);
}
