/* internal.h - libpier's internals shared by the client/ sources and the unit
 * tests. Not installed; the public API is pier.h. */
#ifndef PIER_CLIENT_INTERNAL_H
#define PIER_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/codec.h" /* shared with the server: little-endian integers */
#include "pier.h"

/* ---- errors (error.c) ---- */

/* Record a printf-style detail for pier_last_error() in this thread and
 * return status, so failures read `return pier_fail(PIER_E_IO, "...")`. */
int pier_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear this thread's detail (start of a successful call). */
void pier_clear_error(void);

/* ---- batch protocol framing (frame.c): docs/PROTOCOL.md, version 1 ---- */

#define PB_VERSION 1
#define PB_HEADER_LEN 32
#define PB_HANDSHAKE_FIXED 28
#define PB_MAX_TOPIC 1024
#define PB_MAX_START 64
#define PB_MAX_PAYLOAD (64u << 20) /* server default batch-max-bytes */

enum { PB_ROLE_PUBLISHER = 1, PB_ROLE_SUBSCRIBER = 2 };
enum { PB_BATCH = 1, PB_ACK = 2, PB_ERROR = 3, PB_HELLO_OK = 4 };
/* Frame header flags (byte 7). ACK: DUPLICATE (the batch had been stored
 * before), SINGLE (acknowledges exactly `seq`, not every sequence up to
 * it), UNORDERED (stored but not ordered yet: no IDs, empty payload),
 * SKIPPED (the cluster ordered the publisher's later batches without
 * this one: it is not in the log).
 * HELLO_OK: CLUSTER (the node is in cluster mode: a STRIPED publisher's
 * connections share its client id; `count` is the cluster's size). */
enum {
    PB_FLAG_DUPLICATE = 1,
    PB_FLAG_SINGLE = 2,
    PB_FLAG_UNORDERED = 4,
    PB_FLAG_CLUSTER = 8,
    PB_FLAG_SKIPPED = 16
};
/* Handshake byte 11 (flags). STRIPED: this client id publishes over
 * several connections (a node in cluster mode skips the per-connection
 * sequence-gap check; a single node ignores the flag). */
enum { PB_HS_STRIPED = 1 };

typedef struct pb_header {
    uint8_t type, codec, flags;
    uint64_t seq;
    uint32_t count, raw_len, payload_len, crc;
} pb_header;

typedef struct pb_handshake {
    int role, ack_level, order_level;
    unsigned codecs;
    unsigned replication;  /* byte 10: replication factor asked for (0 = the topic's) */
    unsigned flags;        /* byte 11: PB_HS_STRIPED */
    uint64_t client_id;
    const char *token;  /* may be NULL */
    const char *topic;
    const char *start;  /* may be NULL (publisher) */
} pb_handshake;

/* Encode a handshake into buf (capacity cap). Returns its length, or 0
 * when a field is out of range (pier_last_error says which). */
size_t pb_encode_handshake(const pb_handshake *h, uint8_t *buf, size_t cap);
/* Encode a 32-byte frame header. */
void pb_encode_header(const pb_header *h, uint8_t out[PB_HEADER_LEN]);
/* Decode and check a header received from the server: magic, version,
 * type, lengths against max_payload. PIER_OK or PIER_E_PROTOCOL. */
int pb_decode_header(const uint8_t in[PB_HEADER_LEN], uint32_t max_payload, pb_header *h);
/* Append one publisher message (u32 length + bytes) at dst. Returns the
 * bytes written (4 + len). dst must have room. */
size_t pb_put_message(uint8_t *dst, const void *msg, uint32_t len);
/* Parse a subscriber payload of raw_len bytes holding count entries into
 * msgs (capacity count), each with its nfields counted (fields still
 * NULL); *nfields gets the total. PIER_OK or PIER_E_PROTOCOL (also for a
 * kind-1 entry that is not a RESP array of pairs). msgs point into p. */
int pb_parse_entries(const uint8_t *p, size_t raw_len, uint32_t count, pier_msg *msgs,
                     size_t *nfields);
/* Fill fields (capacity: the total from pb_parse_entries) with the pairs
 * of msgs and point each message's fields into it. */
void pb_attach_fields(pier_msg *msgs, uint32_t count, pier_field *fields);
/* ERROR payload -> "server error <code>: <text>" in pier_last_error();
 * returns the status matching the code (PIER_E_AUTH for 3, else SERVER). */
int pb_error_frame(const uint8_t *payload, size_t len);

/* What HELLO_OK says. */
typedef struct pb_hello_ok {
    uint64_t next_seq;      /* header seq: the next batch sequence to send */
    uint32_t max_payload;   /* payload: the largest batch accepted */
    bool cluster;           /* PB_FLAG_CLUSTER: the node is in cluster mode */
    uint32_t cluster_nodes; /* header count: the cluster's size (0 on a single node) */
} pb_hello_ok;

/* The opening exchange (hello.c): send the handshake on fd and read the
 * server's HELLO_OK into *ok, within the server's own 10 s handshake
 * deadline. ERROR frames become their status (pb_error_frame); an answer
 * that is not a batch frame (a RESP port's error, ...) fails at once with
 * PIER_E_PROTOCOL "<peer> is not a pier batch port (...)". peer
 * ("host:port") is only for messages. */
int pb_hello(int fd, const pb_handshake *hs, const char *peer, pb_hello_ok *ok);

/* ---- compression (codec.c) ---- */

/* Worst-case compressed size of n bytes under codec (n for NONE). */
size_t pc_bound(enum pier_codec codec, size_t n);
/* Compression state of one connection: the zstd context is reused because
 * creating one costs more than compressing a small batch, and contexts are
 * not thread-safe (the connection's send lock serialises its use). */
typedef struct pc_ctx {
    struct ZSTD_CCtx_s *zstd;  /* created on first zstd use */
} pc_ctx;

void pc_ctx_free(pc_ctx *c);
/* Compress src into dst (capacity cap). Returns the compressed length, or
 * 0 when it failed or did not fit. */
size_t pc_compress(pc_ctx *c, enum pier_codec codec, const void *src, size_t n, void *dst,
                   size_t cap);
/* Decompress exactly raw_len bytes. PIER_OK or PIER_E_CODEC. */
int pc_decompress(enum pier_codec codec, const void *src, size_t n, void *dst, size_t raw_len);

/* Adaptive compression: whether compressing the next batch pays. The
 * EWMAs are per connection (the link's speed is per connection). */
typedef struct pc_adapt {
    double ratio;           /* EWMA of compressed / raw of probed batches */
    double comp_ns_per_b;   /* EWMA of compress ns per raw byte */
    double send_ns_per_b;   /* EWMA of send ns per wire byte */
    bool have_ratio, have_send;
    bool paying;            /* verdict of the last evaluation */
    unsigned skip_left;     /* raw batches left before the next probe */
    unsigned reprobe_every;
} pc_adapt;

#define PC_MAX_RATIO 0.90   /* saving under 10% is never worth a decode on the server */
#define PC_EWMA_ALPHA 0.2

void pc_adapt_init(pc_adapt *a, unsigned reprobe_every);
/* Decide for a batch of raw_len bytes. */
bool pc_should_compress(pc_adapt *a, size_t raw_len, size_t min_bytes);
/* Feed the result of a compression (probe or regular). */
void pc_note_compress(pc_adapt *a, size_t raw_len, size_t out_len, uint64_t ns);
/* Feed the time one send of wire_len bytes took. */
void pc_note_send(pc_adapt *a, size_t wire_len, uint64_t ns);

/* ---- big buffers (hugebuf.c) ---- */

/* mmap n bytes (rounded up to 2 MiB) with MAP_HUGETLB, else plain mmap +
 * MADV_HUGEPAGE; with verbose the fallback logs one line through log
 * (NULL: stderr), once per process. NULL when mmap fails. Free with
 * pier_huge_free. */
void *pier_huge_alloc(size_t n, size_t *mapped, bool verbose, pier_log_fn log, void *ctx);
void pier_huge_free(void *p, size_t mapped);

/* ---- sockets (net.c) ---- */

/* Split "host:port"; host copied into host (cap bytes). */
int pn_split_hostport(const char *s, char *host, size_t cap, int *port);
/* Connect a blocking TCP socket; nodelay, sndbuf, rcvbuf as in the options
 * (0 = leave). Returns the fd or -1 with pier_last_error() set. */
int pn_connect(const char *host, int port, int nodelay, int sndbuf, int rcvbuf);
/* Write every byte of iov (the array is modified). PIER_OK or PIER_E_IO. */
int pn_writev_all(int fd, struct iovec *iov, int iovcnt);
/* Drop the first `sent` bytes of an iovec array after a partial send:
 * *iov and *iovcnt move past whole segments, the first left is trimmed. */
void pn_iov_advance(struct iovec **iov, int *iovcnt, size_t sent);
/* Read exactly n bytes. PIER_OK, PIER_E_IO (EOF/error) or PIER_E_TIMEOUT
 * (SO_RCVTIMEO). */
int pn_read_full(int fd, void *buf, size_t n);
/* Fill buf[*have..n) from a blocking fd, waiting at most until deadline_ns
 * (pn_now_ns() clock; 0 = no deadline). *have counts the bytes read so
 * far, also on failure, so a call after PIER_E_TIMEOUT resumes where this
 * one stopped. PIER_OK, PIER_E_TIMEOUT or PIER_E_IO (EOF/error). */
int pn_read_until(int fd, void *buf, size_t n, size_t *have, uint64_t deadline_ns);
/* Current monotonic time in ns. */
uint64_t pn_now_ns(void);

/* ---- RESP replies (resp.c) ---- */

enum { RR_STATUS, RR_ERROR, RR_INT, RR_BULK, RR_NIL, RR_ARRAY };

typedef struct resp_reply {
    int type;
    long long integer;       /* RR_INT; RR_ARRAY: element count */
    const char *str;         /* RR_STATUS/RR_ERROR/RR_BULK: points into the buffer */
    size_t len;
} resp_reply;

/* Parse one reply at buf[0..n). Returns its length, 0 when incomplete,
 * -1 when malformed. Nested arrays are skipped as a whole. */
long resp_parse_reply(const char *buf, size_t n, resp_reply *r);
/* Encode a command of argc arguments into a malloc'd buffer (*out, *len).
 * PIER_OK or PIER_E_NOMEM. */
int resp_encode_command(int argc, const char *const *argv, const size_t *lens, char **out,
                        size_t *len);

#endif
