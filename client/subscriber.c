/* subscriber.c - pier_subscriber: handshake, then one BATCH frame per
 * pier_subscriber_next, verified (crc32c), decompressed and split into
 * entries (and their field/value pairs) that point into the subscriber's
 * own buffers.
 *
 * The frame being received is state of the subscriber (header bytes, then
 * payload bytes so far), so a timeout in the middle of a frame returns
 * PIER_E_TIMEOUT and the next call goes on reading that same frame. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/crc32c.h"

#include "internal.h"

struct pier_subscriber {
    int fd;
    uint32_t max_payload;
    unsigned timeout_ms;     /* per pier_subscriber_next; 0 = none */
    /* the frame being received */
    uint8_t hdr_raw[PB_HEADER_LEN];
    size_t hdr_have;
    bool in_payload;         /* hdr decoded, payload being read */
    pb_header hdr;
    size_t payload_have;
    /* buffers, reused */
    uint8_t *wire;           /* payload as received */
    size_t wire_cap;
    uint8_t *raw;            /* decompressed payload */
    size_t raw_cap;
    pier_msg *msgs;
    size_t msgs_cap;
    pier_field *fields;
    size_t fields_cap;
    bool dead;               /* an error left the stream unusable */
};

/* Grow *buf to at least n elements of elem bytes (contents not kept). */
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

int pier_subscriber_set_timeout(pier_subscriber *s, unsigned timeout_ms) {
    if (!s) return pier_fail(PIER_E_INVALID, "NULL subscriber");
    s->timeout_ms = timeout_ms;
    return PIER_OK;
}

int pier_subscriber_open(pier_subscriber **out, const char *host, int port, const char *topic,
                         const char *start, unsigned codecs, const char *password) {
    if (!out || !host || !topic) return pier_fail(PIER_E_INVALID, "NULL argument");
    *out = NULL;
    pier_subscriber *s = calloc(1, sizeof *s);
    if (!s) return pier_fail(PIER_E_NOMEM, "no memory for a subscriber");
    s->fd = pn_connect(host, port, 1, 0, 0);
    if (s->fd < 0) {
        free(s);
        return PIER_E_CONNECT;
    }
    pb_handshake hs = {.role = PB_ROLE_SUBSCRIBER, .order_level = 1, .codecs = codecs & 3,
                       .token = password, .topic = topic, .start = start ? start : "$"};
    char peer[300];
    snprintf(peer, sizeof peer, "%.255s:%d", host, port);
    pb_hello_ok ok = {0};
    int rc = pb_hello(s->fd, &hs, peer, &ok);
    s->max_payload = ok.max_payload;
    if (rc) {
        pier_subscriber_close(s);
        return rc;
    }
    *out = s;
    pier_clear_error();
    return PIER_OK;
}

/* Read (the rest of) the next frame header and check it: a BATCH header
 * in s->hdr, its payload buffer reserved. An ERROR frame becomes its
 * status. */
static int read_header(pier_subscriber *s, uint64_t deadline) {
    int rc = pn_read_until(s->fd, s->hdr_raw, PB_HEADER_LEN, &s->hdr_have, deadline);
    if (rc) return rc;
    if ((rc = pb_decode_header(s->hdr_raw, s->max_payload, &s->hdr))) return rc;
    if (s->hdr.type == PB_ERROR) {
        uint8_t text[512];
        size_t keep = s->hdr.payload_len < sizeof text ? s->hdr.payload_len : sizeof text, got = 0;
        if (pn_read_until(s->fd, text, keep, &got, deadline))
            return pier_fail(PIER_E_IO, "the server sent an ERROR frame without its text");
        return pb_error_frame(text, keep);
    }
    if (s->hdr.type != PB_BATCH)
        return pier_fail(PIER_E_PROTOCOL, "unexpected frame type %u to a subscriber", s->hdr.type);
    s->in_payload = true;
    s->payload_have = 0;
    return reserve((void **)&s->wire, &s->wire_cap, s->hdr.payload_len, 1);
}

/* Verify and decompress the received payload; leaves the entries in *raw. */
static int decode_payload(pier_subscriber *s, const uint8_t **raw) {
    const pb_header *h = &s->hdr;
    if (crc32c(0, s->wire, h->payload_len) != h->crc)
        return pier_fail(PIER_E_PROTOCOL, "batch %llu: crc32c mismatch",
                         (unsigned long long)h->seq);
    if (h->codec == 0) {
        *raw = s->wire;
        return PIER_OK;
    }
    int rc = reserve((void **)&s->raw, &s->raw_cap, h->raw_len, 1);
    if (rc) return rc;
    *raw = s->raw;
    return pc_decompress((enum pier_codec)h->codec, s->wire, h->payload_len, s->raw, h->raw_len);
}

/* Split the payload into messages and their fields. */
static int split_entries(pier_subscriber *s, const uint8_t *raw) {
    const pb_header *h = &s->hdr;
    size_t nfields = 0;
    if (h->count > h->raw_len / 21) /* every entry has a 21-byte head */
        return pier_fail(PIER_E_PROTOCOL, "%u entries cannot fit in %u bytes", h->count, h->raw_len);
    int rc = reserve((void **)&s->msgs, &s->msgs_cap, h->count, sizeof *s->msgs);
    if (!rc) rc = pb_parse_entries(raw, h->raw_len, h->count, s->msgs, &nfields);
    if (!rc) rc = reserve((void **)&s->fields, &s->fields_cap, nfields, sizeof *s->fields);
    if (!rc) pb_attach_fields(s->msgs, h->count, s->fields);
    return rc;
}

int pier_subscriber_next(pier_subscriber *s, pier_batch *batch) {
    if (!s || !batch) return pier_fail(PIER_E_INVALID, "NULL argument");
    if (s->dead) return pier_fail(PIER_E_IO, "the subscription failed earlier; reopen it");
    uint64_t deadline = s->timeout_ms ? pn_now_ns() + (uint64_t)s->timeout_ms * 1000000ull : 0;
    int rc = s->in_payload ? PIER_OK : read_header(s, deadline);
    if (!rc) rc = pn_read_until(s->fd, s->wire, s->hdr.payload_len, &s->payload_have, deadline);
    if (rc == PIER_E_TIMEOUT) return rc; /* the partial frame is kept for the next call */
    const uint8_t *raw = NULL;
    s->in_payload = false;
    s->hdr_have = 0;
    if (!rc) rc = decode_payload(s, &raw);
    if (!rc) rc = split_entries(s, raw);
    if (rc) {
        s->dead = true;
        return rc;
    }
    *batch = (pier_batch){.seq = s->hdr.seq, .count = s->hdr.count, .msgs = s->msgs};
    pier_clear_error();
    return PIER_OK;
}

void pier_subscriber_close(pier_subscriber *s) {
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    free(s->wire);
    free(s->raw);
    free(s->msgs);
    free(s->fields);
    free(s);
}
