/* batch.h - the batch protocol's wire codec (docs/PROTOCOL.md, version
 * 1): the handshake, the 32-byte frame header, the fixed payloads (ACK,
 * HELLO_OK, ERROR) and the walk over a publisher payload's messages.
 *
 * Pure functions over byte buffers: no I/O, no allocation, no state. Every
 * integer is little-endian and assembled byte by byte (no unaligned
 * loads). Decoders check every field and limit before the caller reads or
 * allocates anything the header announces, and return a protocol error
 * code (enum batch_err) so the caller can answer with an ERROR frame. */
#ifndef PIER_PROTO_BATCH_H
#define PIER_PROTO_BATCH_H

#include <stddef.h>
#include <stdint.h>

#define BATCH_VERSION 1
#define BATCH_HEADER_LEN 32
#define BATCH_HANDSHAKE_FIXED 28
#define BATCH_TOPIC_MAX 1024
#define BATCH_START_MAX 64
#define BATCH_ACK_PAYLOAD 16
#define BATCH_HELLO_PAYLOAD 8
#define BATCH_ERROR_TEXT_MAX 200 /* what this server sends; receivers take any */
#define BATCH_ERROR_FRAME_MAX (BATCH_HEADER_LEN + 2 + BATCH_ERROR_TEXT_MAX)
#define BATCH_LZ4_MAX_RATIO 255 /* LZ4's own bound on raw/compressed */
/* Subscriber entry: ms, seq, kind, length (then the bytes). */
#define BATCH_SUB_ENTRY_HEAD 21

enum batch_role { BATCH_ROLE_PUBLISHER = 1, BATCH_ROLE_SUBSCRIBER = 2 };
enum batch_type { BATCH_T_BATCH = 1, BATCH_T_ACK = 2, BATCH_T_ERROR = 3, BATCH_T_HELLO_OK = 4 };
enum batch_codec { BATCH_CODEC_RAW = 0, BATCH_CODEC_LZ4 = 1, BATCH_CODEC_ZSTD = 2 };
enum batch_sub_kind { BATCH_KIND_DATA = 0, BATCH_KIND_RESP = 1 };
#define BATCH_FLAG_DUPLICATE 1u
#define BATCH_ACCEPT_LZ4 1u
#define BATCH_ACCEPT_ZSTD 2u

/* ERROR frame codes (the table in PROTOCOL.md). 0 = no error. */
enum batch_err {
    BATCH_OK = 0,
    BATCH_E_MAGIC = 1,
    BATCH_E_VERSION = 2,
    BATCH_E_AUTH = 3,
    BATCH_E_MALFORMED = 4,
    BATCH_E_CRC = 5,
    BATCH_E_DECOMPRESS = 6,
    BATCH_E_TOO_LARGE = 7,
    BATCH_E_LEVEL = 8,
    BATCH_E_GAP = 9,
    BATCH_E_WRONGTYPE = 10,
    BATCH_E_OOM = 11,
    BATCH_E_INTERNAL = 12,
    BATCH_E_SUB_INPUT = 13,  /* a subscriber sent bytes after its handshake */
    BATCH_E_MAXCLIENTS = 14, /* over maxclients: sent instead of HELLO_OK */
};

/* A short English description of a code (never NULL). */
const char *batch_err_text(int code);

/* --- handshake (client -> server) --- */
typedef struct batch_handshake {
    uint16_t version;
    uint8_t role, ack_level, order_level, codecs;
    uint64_t client_id;
    uint16_t token_len, topic_len, start_len;
} batch_handshake;

/* Decode the BATCH_HANDSHAKE_FIXED bytes at p into *h. Returns BATCH_OK or
 * the error to send: magic (1), version (2), role / topic length / start
 * length (4), ack or order level (8). Reserved bytes are ignored. */
int batch_handshake_decode(const unsigned char *p, batch_handshake *h);
/* Bytes that follow the fixed part: token + topic + start. */
size_t batch_handshake_var_len(const batch_handshake *h);
/* Encode the fixed part (clients, tests). */
void batch_handshake_encode(const batch_handshake *h, unsigned char out[BATCH_HANDSHAKE_FIXED]);

/* --- frame header (both directions) --- */
typedef struct batch_header {
    uint8_t version, type, codec, flags;
    uint64_t seq;
    uint32_t count, raw_len, payload_len, crc;
} batch_header;

/* Decode 32 bytes. Checks magic (1), version (2), a known type and codec
 * (4). Limits of a BATCH are batch_header_check_batch's. */
int batch_header_decode(const unsigned char *p, batch_header *h);
/* Encode with magic and version filled in. */
void batch_header_encode(const batch_header *h, unsigned char out[BATCH_HEADER_LEN]);
/* The limits of a publisher BATCH header, before anything is allocated:
 * payload_len and raw_len at most max_bytes (7); count >= 1 and at most
 * raw_len / 4, raw_len == payload_len when raw, raw_len at most 255 x
 * payload_len for LZ4 (4). */
int batch_header_check_batch(const batch_header *h, uint64_t max_bytes);

/* --- fixed frames (server -> client); each returns the bytes written --- */
/* ERROR frame: header + u16 code + text (truncated to
 * BATCH_ERROR_TEXT_MAX). out holds BATCH_ERROR_FRAME_MAX bytes. */
size_t batch_error_frame(unsigned char *out, int code, const char *text);
/* ACK frame for batch seq of count messages whose IDs start at
 * (first_ms, first_seq); duplicate: DUPLICATE flag, empty payload. out
 * holds BATCH_HEADER_LEN + BATCH_ACK_PAYLOAD bytes. */
size_t batch_ack_frame(unsigned char *out, uint64_t seq, uint32_t count, uint64_t first_ms,
                       uint64_t first_seq, int duplicate);
/* HELLO_OK: next sequence to send, max payload bytes accepted. out holds
 * BATCH_HEADER_LEN + BATCH_HELLO_PAYLOAD bytes. */
size_t batch_hello_frame(unsigned char *out, uint64_t next_seq, uint64_t max_bytes);

/* --- publisher payload: count x (u32 length, bytes) --- */
/* 1 when p[0..len) is exactly count messages (no byte short or left
 * over), else 0. */
int batch_payload_valid(const unsigned char *p, size_t len, uint32_t count);
/* The number of messages in p[0..len), or -1 when the bytes are not a
 * whole number of messages (or hold more than UINT32_MAX). */
long long batch_payload_count(const unsigned char *p, size_t len);

#endif
