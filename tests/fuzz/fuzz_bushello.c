/* fuzz_bushello.c - the cluster bus's receive side (src/cluster/busauth.c)
 * driven the way src/cluster/bus.c drives it: split the input into frames
 * for the link's state, check the handshake (HELLO, HELLO+PROOF, PROOF) and
 * then the MAC of every frame. Byte 0 picks the role played: even, the
 * acceptor (the input is what a dialler sends); odd, the dialler (the input
 * is the acceptor's answer). The secret, the membership hash, the ids and
 * the harness's own nonce are fixed, so the seeds (corpus_bushello.py)
 * hold whole valid sessions for the fuzzer to break.
 *
 * Fails on: a read outside the input (ASan: the input is an exact-size
 * copy); a frame whose payload or MAC lies outside it; a frame accepted
 * whose MAC differs from the one the peer's own signing context makes for
 * it (sign and verify disagree); a proof accepted that is not the proof
 * bus_proof computes; a frame accepted before the handshake finished. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/busauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define SECRET "fuzz cluster secret, 32 bytes.."
#define HASH 0x5049455242555331ull
#define DIALLER_ID 1
#define ACCEPTOR_ID 2
#define MAX_PAYLOAD 4096

typedef struct rx {
    bus_rx_state st;
    bus_transcript tr;
    bus_mac mac;      /* verifies the peer's frames */
    bus_mac peer_tx;  /* the peer's signing context: signs them again */
    int frames;
} rx;

static const uint8_t *key(void) { return (const uint8_t *)SECRET; }

/* Both sides' MAC contexts for the peer's direction. */
static void key_frames(rx *r, bus_role peer) {
    FZ_CHECK(bus_mac_init(&r->mac, key(), strlen(SECRET), &r->tr, peer) == 0);
    FZ_CHECK(bus_mac_init(&r->peer_tx, key(), strlen(SECRET), &r->tr, peer) == 0);
    r->st = BUS_RX_FRAMES;
}

/* A proof the code accepted must be the one bus_proof computes. */
static int proof_checked(const rx *r, bus_role who, const uint8_t *proof) {
    if (!bus_proof_ok(key(), strlen(SECRET), &r->tr, who, proof)) return 0;
    uint8_t want[BUS_PROOF_LEN];
    FZ_CHECK(bus_proof(key(), strlen(SECRET), &r->tr, who, want) == 0);
    FZ_CHECK(memcmp(want, proof, BUS_PROOF_LEN) == 0);
    return 1;
}

/* One handshake frame; 0 to go on, -1 when the link would be closed. */
static int handshake(rx *r, const bus_frame *f) {
    bus_hello h;
    switch (r->st) {
    case BUS_RX_HELLO: /* we accept: the dialler's HELLO */
        if (bus_hello_read(f->type, f->payload, f->len, 0, &h) != BUS_HELLO_OK ||
            h.hash != HASH || h.id != DIALLER_ID)
            return -1;
        memcpy(r->tr.dialler_nonce, h.nonce, BUS_NONCE_LEN);
        r->st = BUS_RX_PROOF;
        return 0;
    case BUS_RX_PROOF:
        if (f->type != BUS_HELLO_TYPE || f->len != BUS_PROOF_PAYLOAD ||
            !proof_checked(r, BUS_DIALLER, f->payload))
            return -1;
        key_frames(r, BUS_DIALLER);
        return 0;
    case BUS_RX_HELLO_PROOF: /* we dialled: the acceptor's answer */
        if (bus_hello_read(f->type, f->payload, f->len, 1, &h) != BUS_HELLO_OK ||
            h.hash != HASH || h.id != ACCEPTOR_ID)
            return -1;
        memcpy(r->tr.acceptor_nonce, h.nonce, BUS_NONCE_LEN);
        if (!proof_checked(r, BUS_ACCEPTOR, h.proof)) return -1;
        key_frames(r, BUS_ACCEPTOR);
        return 0;
    default:
        return -1;
    }
}

/* A frame after the handshake: its MAC, checked both ways. */
static int data_frame(rx *r, const uint8_t *start, const bus_frame *f) {
    uint64_t seq = r->mac.seq;
    if (!bus_mac_verify(&r->mac, start, f->whole - BUS_MAC_LEN, f->mac)) {
        FZ_CHECK(r->mac.seq == seq); /* a failure does not advance */
        return -1;
    }
    uint8_t again[BUS_MAC_LEN];
    FZ_CHECK(bus_mac_sign(&r->peer_tx, start, f->whole - BUS_MAC_LEN, again) == 0);
    FZ_CHECK(memcmp(again, f->mac, BUS_MAC_LEN) == 0);
    FZ_CHECK(r->mac.seq == seq + 1 && r->peer_tx.seq == r->mac.seq);
    r->frames++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int dialler = data[0] & 1;
    size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1);
    FZ_CHECK(buf != NULL);
    if (len) memcpy(buf, data + 1, len);
    rx r;
    memset(&r, 0, sizeof r);
    r.tr.hash = HASH;
    r.tr.dialler_id = DIALLER_ID;
    r.tr.acceptor_id = ACCEPTOR_ID;
    /* our own nonce, fixed so that seeds can answer it */
    memset(dialler ? r.tr.dialler_nonce : r.tr.acceptor_nonce, dialler ? 0x22 : 0x11,
           BUS_NONCE_LEN);
    r.st = dialler ? BUS_RX_HELLO_PROOF : BUS_RX_HELLO;
    size_t off = 0;
    for (;;) {
        bus_frame f;
        size_t need = 0;
        bus_rx_state before = r.st;
        int rc = bus_frame_split(r.st, MAX_PAYLOAD, buf + off, len - off, &f, &need);
        if (rc != BUS_SPLIT_FRAME) {
            FZ_CHECK(rc == BUS_SPLIT_BAD || need == 0 || need > len - off);
            break;
        }
        FZ_CHECK(f.whole >= BUS_FRAME_HEADER && f.whole <= len - off);
        FZ_CHECK(f.payload == buf + off + BUS_FRAME_HEADER);
        FZ_CHECK(f.payload + f.len <= buf + off + f.whole);
        if (before == BUS_RX_FRAMES) {
            FZ_CHECK(f.len <= MAX_PAYLOAD && f.mac == f.payload + f.len);
            FZ_CHECK(f.mac + BUS_MAC_LEN == buf + off + f.whole);
            if (data_frame(&r, buf + off, &f) < 0) break;
        } else {
            FZ_CHECK(f.mac == NULL && f.len <= BUS_HANDSHAKE_MAX);
            if (handshake(&r, &f) < 0) break;
        }
        off += f.whole;
    }
    FZ_CHECK(r.frames == 0 || r.st == BUS_RX_FRAMES);
#ifdef FUZZ_REPORT /* seeds check: -DFUZZ_REPORT prints how far each input got */
    fprintf(stderr, "state %d, %d frames, %zu of %zu bytes\n", (int)r.st, r.frames, off, len);
#endif
    bus_mac_free(&r.mac);
    bus_mac_free(&r.peer_tx);
    free(buf);
    return 0;
}
