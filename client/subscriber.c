/* subscriber.c - pier_subscriber: handshake, then one BATCH frame per
 * pier_subscriber_next, verified (crc32c), decompressed and split into
 * entries that point into the subscriber's own buffers. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#if __has_include("lib/crc32c.h")
#include "lib/crc32c.h"
#else
#include "persist/crc.h"
#endif

#include "internal.h"

struct pier_subscriber {
    int fd;
    uint32_t max_payload;
    uint8_t *wire;           /* payload as received */
    size_t wire_cap;
    uint8_t *raw;            /* decompressed payload */
    size_t raw_cap;
    pier_msg *msgs;
    size_t msgs_cap;
    bool dead;               /* a timeout or error left the stream mid-frame */
};

/* Grow *buf to at least n bytes (contents not kept). */
static int reserve(void **buf, size_t *cap, size_t n, size_t elem) {
    if (*cap >= n) return PIER_OK;
    size_t want = n < 4096 ? 4096 : n;
    void *nb = malloc(want * elem);
    if (!nb) return pier_fail(PIER_E_NOMEM, "no memory for %zu bytes", want * elem);
    free(*buf);
    *buf = nb;
    *cap = want;
    return PIER_OK;
}

static int send_handshake(int fd, const char *topic, const char *start, unsigned codecs,
                          const char *password) {
    pb_handshake hs = {.role = PB_ROLE_SUBSCRIBER, .order_level = 1, .codecs = codecs & 3,
                       .token = password, .topic = topic, .start = start};
    size_t cap = PB_HANDSHAKE_FIXED + 0xFFFF + PB_MAX_TOPIC + PB_MAX_START;
    uint8_t *buf = malloc(cap);
    if (!buf) return pier_fail(PIER_E_NOMEM, "no memory for the handshake");
    size_t n = pb_encode_handshake(&hs, buf, cap);
    struct iovec iov = {buf, n};
    int rc = n ? pn_writev_all(fd, &iov, 1) : PIER_E_INVALID;
    free(buf);
    return rc;
}

/* Read one frame header and, for ERROR, its text (as the status). */
static int read_header(pier_subscriber *s, pb_header *h) {
    uint8_t raw[PB_HEADER_LEN];
    int rc = pn_read_full(s->fd, raw, sizeof raw);
    if (!rc) rc = pb_decode_header(raw, s->max_payload, h);
    if (rc || h->type != PB_ERROR) return rc;
    uint8_t text[512];
    size_t keep = h->payload_len < sizeof text ? h->payload_len : sizeof text;
    rc = pn_read_full(s->fd, text, keep);
    return rc ? rc : pb_error_frame(text, keep);
}

static int read_hello(pier_subscriber *s) {
    pb_header h;
    int rc = read_header(s, &h);
    if (rc) return rc;
    if (h.type != PB_HELLO_OK) return pier_fail(PIER_E_PROTOCOL, "expected HELLO_OK");
    uint8_t pl[8];
    if ((rc = pn_read_full(s->fd, pl, sizeof pl))) return rc;
    uint64_t maxp = rd64(pl);
    s->max_payload = maxp > PB_MAX_PAYLOAD || maxp == 0 ? PB_MAX_PAYLOAD : (uint32_t)maxp;
    return PIER_OK;
}

int pier_subscriber_set_timeout(pier_subscriber *s, unsigned timeout_ms) {
    if (!s) return pier_fail(PIER_E_INVALID, "NULL subscriber");
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        return pier_fail(PIER_E_IO, "cannot set the receive timeout");
    return PIER_OK;
}

int pier_subscriber_open(pier_subscriber **out, const char *host, int port, const char *topic,
                         const char *start, unsigned codecs, const char *password) {
    if (!out || !host || !topic) return pier_fail(PIER_E_INVALID, "NULL argument");
    *out = NULL;
    pier_subscriber *s = calloc(1, sizeof *s);
    if (!s) return pier_fail(PIER_E_NOMEM, "no memory for a subscriber");
    s->max_payload = PB_MAX_PAYLOAD;
    s->fd = pn_connect(host, port, 1, 0, 0);
    if (s->fd < 0) {
        free(s);
        return PIER_E_CONNECT;
    }
    int rc = send_handshake(s->fd, topic, start ? start : "$", codecs, password);
    if (!rc) rc = pier_subscriber_set_timeout(s, 10000); /* the handshake's deadline */
    if (!rc) rc = read_hello(s);
    if (!rc) rc = pier_subscriber_set_timeout(s, 0);
    if (rc) {
        pier_subscriber_close(s);
        return rc;
    }
    *out = s;
    pier_clear_error();
    return PIER_OK;
}

/* Read and verify the payload of a BATCH header; leaves the raw entries
 * in *raw. */
static int read_payload(pier_subscriber *s, const pb_header *h, const uint8_t **raw) {
    int rc = reserve((void **)&s->wire, &s->wire_cap, h->payload_len, 1);
    if (!rc) rc = pn_read_full(s->fd, s->wire, h->payload_len);
    if (rc) return rc;
    if (crc32c(0, s->wire, h->payload_len) != h->crc)
        return pier_fail(PIER_E_PROTOCOL, "batch %llu: crc32c mismatch",
                         (unsigned long long)h->seq);
    if (h->codec == 0) {
        *raw = s->wire;
        return PIER_OK;
    }
    if ((rc = reserve((void **)&s->raw, &s->raw_cap, h->raw_len, 1))) return rc;
    rc = pc_decompress((enum pier_codec)h->codec, s->wire, h->payload_len, s->raw, h->raw_len);
    *raw = s->raw;
    return rc;
}

int pier_subscriber_next(pier_subscriber *s, pier_batch *batch) {
    if (!s || !batch) return pier_fail(PIER_E_INVALID, "NULL argument");
    if (s->dead) return pier_fail(PIER_E_IO, "the subscription failed earlier; reopen it");
    pb_header h;
    int rc = read_header(s, &h);
    if (!rc && h.type != PB_BATCH)
        rc = pier_fail(PIER_E_PROTOCOL, "unexpected frame type %u to a subscriber", h.type);
    const uint8_t *raw = NULL;
    if (!rc) rc = read_payload(s, &h, &raw);
    if (!rc) rc = reserve((void **)&s->msgs, &s->msgs_cap, h.count, sizeof *s->msgs);
    if (!rc) rc = pb_parse_entries(raw, h.raw_len, h.count, s->msgs);
    if (rc) {
        s->dead = true;
        return rc;
    }
    *batch = (pier_batch){.seq = h.seq, .count = h.count, .msgs = s->msgs};
    return PIER_OK;
}

void pier_subscriber_close(pier_subscriber *s) {
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    free(s->wire);
    free(s->raw);
    free(s->msgs);
    free(s);
}
