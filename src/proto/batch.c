/* batch.c - the batch protocol's wire codec (see batch.h). */
#include "batch.h"

#include <string.h>

#include "../lib/codec.h"
#include "../lib/crc32c.h"

static const unsigned char handshake_magic[4] = {'P', 'I', 'R', 'B'};
static const unsigned char frame_magic[4] = {'P', 'I', 'R', 'F'};

const char *batch_err_text(int code) {
    static const char *const texts[] = {
        "ok",
        "bad magic",
        "unsupported version",
        "authentication failed",
        "malformed frame or handshake",
        "crc32c mismatch",
        "decompression failed or length mismatch",
        "too large",
        "unsupported ack or order level",
        "sequence gap",
        "topic key holds a value that is not a stream",
        "out of memory",
        "internal error",
        "a subscriber sends nothing after its handshake",
        "max number of clients reached",
    };
    if (code < 0 || (size_t)code >= sizeof texts / sizeof texts[0]) return "unknown error";
    return texts[code];
}

/* ---- handshake ---- */

int batch_handshake_decode(const unsigned char *p, batch_handshake *h) {
    memset(h, 0, sizeof *h);
    if (memcmp(p, handshake_magic, 4)) return BATCH_E_MAGIC;
    h->version = codec_get_le16(p + 4);
    if (h->version != BATCH_VERSION) return BATCH_E_VERSION;
    h->role = p[6];
    h->ack_level = p[7];
    h->order_level = p[8];
    h->codecs = p[9];
    h->client_id = codec_get_le64(p + 12);
    h->token_len = codec_get_le16(p + 20);
    h->topic_len = codec_get_le16(p + 22);
    h->start_len = codec_get_le16(p + 24);
    if (h->role != BATCH_ROLE_PUBLISHER && h->role != BATCH_ROLE_SUBSCRIBER)
        return BATCH_E_MALFORMED;
    /* Level 2 (replicated) is refused until cluster mode exists; order
     * levels 1 and 2 coincide on one node. */
    if (h->role == BATCH_ROLE_PUBLISHER && h->ack_level > 1) return BATCH_E_LEVEL;
    if (h->order_level > 2) return BATCH_E_LEVEL;
    if (h->topic_len == 0 || h->topic_len > BATCH_TOPIC_MAX) return BATCH_E_MALFORMED;
    if (h->start_len > BATCH_START_MAX) return BATCH_E_MALFORMED;
    if (h->role == BATCH_ROLE_PUBLISHER && h->start_len != 0) return BATCH_E_MALFORMED;
    return BATCH_OK;
}

size_t batch_handshake_var_len(const batch_handshake *h) {
    return (size_t)h->token_len + h->topic_len + h->start_len;
}

void batch_handshake_encode(const batch_handshake *h, unsigned char out[BATCH_HANDSHAKE_FIXED]) {
    memset(out, 0, BATCH_HANDSHAKE_FIXED);
    memcpy(out, handshake_magic, 4);
    codec_put_le16(out + 4, h->version);
    out[6] = h->role;
    out[7] = h->ack_level;
    out[8] = h->order_level;
    out[9] = h->codecs;
    codec_put_le64(out + 12, h->client_id);
    codec_put_le16(out + 20, h->token_len);
    codec_put_le16(out + 22, h->topic_len);
    codec_put_le16(out + 24, h->start_len);
}

/* ---- frame header ---- */

int batch_header_decode(const unsigned char *p, batch_header *h) {
    memset(h, 0, sizeof *h);
    if (memcmp(p, frame_magic, 4)) return BATCH_E_MAGIC;
    h->version = p[4];
    if (h->version != BATCH_VERSION) return BATCH_E_VERSION;
    h->type = p[5];
    h->codec = p[6];
    h->flags = p[7];
    h->seq = codec_get_le64(p + 8);
    h->count = codec_get_le32(p + 16);
    h->raw_len = codec_get_le32(p + 20);
    h->payload_len = codec_get_le32(p + 24);
    h->crc = codec_get_le32(p + 28);
    if (h->type < BATCH_T_BATCH || h->type > BATCH_T_HELLO_OK) return BATCH_E_MALFORMED;
    if (h->codec > BATCH_CODEC_ZSTD) return BATCH_E_MALFORMED;
    return BATCH_OK;
}

void batch_header_encode(const batch_header *h, unsigned char out[BATCH_HEADER_LEN]) {
    memcpy(out, frame_magic, 4);
    out[4] = BATCH_VERSION;
    out[5] = h->type;
    out[6] = h->codec;
    out[7] = h->flags;
    codec_put_le64(out + 8, h->seq);
    codec_put_le32(out + 16, h->count);
    codec_put_le32(out + 20, h->raw_len);
    codec_put_le32(out + 24, h->payload_len);
    codec_put_le32(out + 28, h->crc);
}

int batch_header_check_batch(const batch_header *h, uint64_t max_bytes) {
    if (h->type != BATCH_T_BATCH) return BATCH_E_MALFORMED;
    if (h->payload_len > max_bytes || h->raw_len > max_bytes) return BATCH_E_TOO_LARGE;
    /* Every message takes at least its 4-byte length: bounds the count
     * (and any per-message allocation) by the bytes that really come. */
    if (h->count == 0 || h->count > h->raw_len / 4) return BATCH_E_MALFORMED;
    if (h->codec == BATCH_CODEC_RAW && h->raw_len != h->payload_len) return BATCH_E_MALFORMED;
    if (h->codec == BATCH_CODEC_LZ4 &&
        (uint64_t)h->raw_len > (uint64_t)BATCH_LZ4_MAX_RATIO * h->payload_len)
        return BATCH_E_MALFORMED;
    return BATCH_OK;
}

/* ---- fixed frames ---- */

static size_t frame_with_payload(unsigned char *out, batch_header *h, size_t payload_len) {
    h->raw_len = h->payload_len = (uint32_t)payload_len;
    h->crc = crc32c(0, out + BATCH_HEADER_LEN, payload_len);
    batch_header_encode(h, out);
    return BATCH_HEADER_LEN + payload_len;
}

size_t batch_error_frame(unsigned char *out, int code, const char *text) {
    size_t n = text ? strlen(text) : 0;
    if (n > BATCH_ERROR_TEXT_MAX) n = BATCH_ERROR_TEXT_MAX;
    codec_put_le16(out + BATCH_HEADER_LEN, (uint16_t)code);
    if (n) memcpy(out + BATCH_HEADER_LEN + 2, text, n);
    batch_header h = {.type = BATCH_T_ERROR};
    return frame_with_payload(out, &h, 2 + n);
}

size_t batch_ack_frame(unsigned char *out, uint64_t seq, uint32_t count, uint64_t first_ms,
                       uint64_t first_seq, int duplicate) {
    batch_header h = {.type = BATCH_T_ACK, .seq = seq, .count = count};
    if (duplicate) {
        h.flags = BATCH_FLAG_DUPLICATE;
        return frame_with_payload(out, &h, 0);
    }
    codec_put_le64(out + BATCH_HEADER_LEN, first_ms);
    codec_put_le64(out + BATCH_HEADER_LEN + 8, first_seq);
    return frame_with_payload(out, &h, BATCH_ACK_PAYLOAD);
}

size_t batch_hello_frame(unsigned char *out, uint64_t next_seq, uint64_t max_bytes) {
    batch_header h = {.type = BATCH_T_HELLO_OK, .seq = next_seq};
    codec_put_le64(out + BATCH_HEADER_LEN, max_bytes);
    return frame_with_payload(out, &h, BATCH_HELLO_PAYLOAD);
}

/* ---- publisher payload ---- */

int batch_payload_valid(const unsigned char *p, size_t len, uint32_t count) {
    size_t pos = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (len - pos < 4) return 0;
        uint32_t n = codec_get_le32(p + pos);
        pos += 4;
        if (n > len - pos) return 0;
        pos += n;
    }
    return pos == len;
}

long long batch_payload_count(const unsigned char *p, size_t len) {
    size_t pos = 0;
    long long count = 0;
    while (pos < len) {
        if (len - pos < 4 || count == UINT32_MAX) return -1;
        uint32_t n = codec_get_le32(p + pos);
        pos += 4;
        if (n > len - pos) return -1;
        pos += n;
        count++;
    }
    return count;
}
