/* hello.c - the batch protocol's opening exchange, shared by the publisher
 * and the subscriber: send the handshake, read HELLO_OK or the server's
 * ERROR, and recognise a peer that is not a batch port at all (a RESP
 * port answers a protocol error, other servers something else), so the
 * caller fails at once with a message that says so instead of waiting for
 * a timeout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HELLO_TIMEOUT_NS (10000ull * 1000000ull) /* the server's own handshake deadline */
#define LINE_WAIT_NS (200ull * 1000000ull)       /* for the rest of a non-batch answer */

/* The peer answered got[0..n) (at least its first bytes), which is not a
 * frame header. Reads a little more for a readable message, then fails
 * with PIER_E_PROTOCOL. */
static int not_batch_port(int fd, const char *peer, uint8_t *got, size_t n, size_t cap) {
    bool resp = strchr("+-:$*", got[0]) != NULL;
    if (!memchr(got, '\n', n)) {
        size_t have = n;
        pn_read_until(fd, got, cap, &have, pn_now_ns() + LINE_WAIT_NS); /* EOF/timeout: keep what came */
        n = have;
    }
    char text[128];
    size_t t = 0;
    for (size_t i = 0; i < n && t < sizeof text - 1; i++) {
        uint8_t ch = got[i];
        if (ch == '\r' || ch == '\n') {
            if (resp) break;
            ch = ' ';
        }
        text[t++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '.';
    }
    text[t] = 0;
    return pier_fail(PIER_E_PROTOCOL, "%s is not a pier batch port (it answered %s\"%s\")", peer,
                     resp ? "in RESP: " : "", text);
}

static int send_handshake(int fd, const pb_handshake *hs) {
    size_t cap = PB_HANDSHAKE_FIXED + 0xFFFF + PB_MAX_TOPIC + PB_MAX_START;
    uint8_t *buf = malloc(cap);
    if (!buf) return pier_fail(PIER_E_NOMEM, "no memory for the handshake");
    size_t n = pb_encode_handshake(hs, buf, cap);
    struct iovec iov = {buf, n};
    int rc = n ? pn_writev_all(fd, &iov, 1) : PIER_E_INVALID;
    free(buf);
    return rc;
}

/* The first frame's header into raw (32 bytes of the 256 it holds). */
static int read_first_header(int fd, const char *peer, uint8_t raw[256], uint64_t deadline) {
    size_t have = 0;
    int rc = pn_read_until(fd, raw, 4, &have, deadline);
    if (have && memcmp(raw, "PIRF", have)) return not_batch_port(fd, peer, raw, have, 256);
    if (rc == PIER_E_TIMEOUT)
        return pier_fail(rc, "%s did not answer the handshake within 10 s: is it a pier batch port?",
                         peer);
    if (rc) return pier_fail(rc, "%s closed the connection during the handshake", peer);
    return pn_read_until(fd, raw, PB_HEADER_LEN, &have, deadline);
}

int pb_hello(int fd, const pb_handshake *hs, const char *peer, pb_hello_ok *ok) {
    int rc = send_handshake(fd, hs);
    if (rc) return rc;
    uint64_t deadline = pn_now_ns() + HELLO_TIMEOUT_NS;
    uint8_t raw[256];
    if ((rc = read_first_header(fd, peer, raw, deadline))) return rc;
    pb_header h;
    if ((rc = pb_decode_header(raw, PB_MAX_PAYLOAD, &h))) return rc;
    size_t have = 0;
    if (h.type == PB_ERROR) {
        size_t keep = h.payload_len < sizeof raw ? h.payload_len : sizeof raw;
        rc = pn_read_until(fd, raw, keep, &have, deadline);
        return rc ? rc : pb_error_frame(raw, keep);
    }
    if (h.type != PB_HELLO_OK) return pier_fail(PIER_E_PROTOCOL, "expected HELLO_OK from %s", peer);
    if ((rc = pn_read_until(fd, raw, 8, &have, deadline))) return rc;
    uint64_t maxp = codec_get_le64(raw);
    ok->max_payload = maxp > PB_MAX_PAYLOAD || maxp == 0 ? PB_MAX_PAYLOAD : (uint32_t)maxp;
    ok->next_seq = h.seq;
    ok->cluster = (h.flags & PB_FLAG_CLUSTER) != 0;
    ok->cluster_nodes = ok->cluster ? h.count : 0;
    return PIER_OK;
}
