/* busauth.h - the cluster bus's wire codec and its authentication: the
 * hello handshake (an HMAC-SHA256 challenge-response over the cluster
 * secret), the frame splitter, and the MAC every later frame carries.
 * Pure functions over bytes (OpenSSL libcrypto for HMAC-SHA256 and the
 * random nonces): bus.c uses them, and so do the unit tests and the fuzz
 * harness (tests/fuzz/fuzz_bushello.c). docs/PROTOCOL.md describes the
 * format.
 *
 * Handshake (all frames of type BUS_HELLO_TYPE, no MAC):
 *   1. dialler -> acceptor  HELLO       magic, version, id, hash, nonce_d
 *   2. acceptor -> dialler  HELLO+PROOF the same with nonce_a, then
 *                                       proof_a = HMAC(K, "acceptor" label | T)
 *   3. dialler -> acceptor  PROOF       proof_d = HMAC(K, "dialler" label | T)
 * where T (the transcript) = membership hash | dialler id | acceptor id |
 * nonce_d | nonce_a. Each side proves it holds K over nonces that include
 * one it chose itself, so neither a recording nor a reflection of the
 * other side's proof is accepted.
 *
 * Frames after the handshake: u32 length (of type + payload + MAC), u8
 * type, payload, MAC = the first 16 bytes of HMAC-SHA256(k_dir, u64 seq |
 * the frame up to the MAC), where k_dir is a per-link, per-direction key
 * derived from K and T, and seq counts that direction's frames from 0. A
 * frame changed, dropped, replayed, reordered or taken from another link
 * fails its MAC. The MAC authenticates; nothing is encrypted. */
#ifndef PIER_CLUSTER_BUSAUTH_H
#define PIER_CLUSTER_BUSAUTH_H

#include <stddef.h>
#include <stdint.h>

#define BUS_HELLO_MAGIC "PIERBUS1"
#define BUS_HELLO_VERSION 2
#define BUS_HELLO_TYPE 0
#define BUS_FRAME_HEADER 5   /* u32 length + u8 type */
#define BUS_NONCE_LEN 32
#define BUS_PROOF_LEN 32
#define BUS_MAC_LEN 16
#define BUS_KEY_MAX 1024     /* longest secret (HMAC hashes keys over 64 bytes) */
/* Payload sizes of the three handshake frames. */
#define BUS_HELLO_PAYLOAD (8 + 2 + 1 + 8 + BUS_NONCE_LEN)         /* 51 */
#define BUS_HELLO_PROOF_PAYLOAD (BUS_HELLO_PAYLOAD + BUS_PROOF_LEN) /* 83 */
#define BUS_PROOF_PAYLOAD BUS_PROOF_LEN                           /* 32 */
#define BUS_HANDSHAKE_MAX BUS_HELLO_PROOF_PAYLOAD
/* The key a cluster without a secret uses (loopback-only clusters, with a
 * warning): public, so it authenticates nothing. */
#define BUS_PUBLIC_KEY "pier cluster bus: no cluster-secret set"

/* What a receiver expects next; the splitter's length rules depend on it. */
typedef enum {
    BUS_RX_HELLO,       /* acceptor: the dialler's HELLO */
    BUS_RX_HELLO_PROOF, /* dialler: the acceptor's HELLO+PROOF */
    BUS_RX_PROOF,       /* acceptor: the dialler's PROOF */
    BUS_RX_FRAMES       /* after the handshake: frames with a MAC */
} bus_rx_state;

/* One frame found at the start of a buffer. payload (and mac) point into
 * that buffer. */
typedef struct bus_frame {
    size_t whole;         /* bytes of the frame on the wire, header included */
    uint8_t type;
    const uint8_t *payload;
    size_t len;           /* payload bytes (MAC excluded) */
    const uint8_t *mac;   /* BUS_RX_FRAMES: the frame's MAC; else NULL */
} bus_frame;

enum { BUS_SPLIT_NEED = 0, BUS_SPLIT_FRAME = 1, BUS_SPLIT_BAD = -1 };

/* Look at buf[0, len): BUS_SPLIT_FRAME with *f filled when a whole frame
 * is there; BUS_SPLIT_NEED when more bytes are needed (*need, if not
 * NULL, is the size of the whole frame once its header is in, else 0);
 * BUS_SPLIT_BAD when the header is not acceptable in this state (checked
 * on the 4 length bytes, before anything of the frame is buffered):
 * before the handshake ends any length up to BUS_HANDSHAKE_MAX, after it
 * 1 + BUS_MAC_LEN .. max_payload + 1 + BUS_MAC_LEN. */
int bus_frame_split(bus_rx_state st, size_t max_payload, const uint8_t *buf, size_t len,
                    bus_frame *f, size_t *need);

/* --- hello --- */

typedef struct bus_hello {
    unsigned version;
    int id;
    uint64_t hash;
    uint8_t nonce[BUS_NONCE_LEN];
    uint8_t proof[BUS_PROOF_LEN]; /* HELLO+PROOF only */
} bus_hello;

enum {
    BUS_HELLO_OK = 0,
    BUS_HELLO_NOT_HELLO = -1, /* wrong type, too short or bad magic */
    BUS_HELLO_VERSION_ = -2,  /* out->version says which */
    BUS_HELLO_LENGTH = -3,    /* right version, wrong size for this step */
};

/* Write a HELLO payload (BUS_HELLO_PAYLOAD bytes) into out. */
void bus_hello_write(uint8_t out[BUS_HELLO_PAYLOAD], int id, uint64_t hash,
                     const uint8_t nonce[BUS_NONCE_LEN]);
/* Decode a HELLO (with_proof 0) or HELLO+PROOF (1) frame's type and
 * payload. Magic and version are checked before the length, so a peer of
 * another version is told apart from garbage. Returns BUS_HELLO_*. */
int bus_hello_read(uint8_t type, const uint8_t *p, size_t len, int with_proof, bus_hello *out);

/* --- proofs --- */

typedef enum { BUS_DIALLER = 0, BUS_ACCEPTOR = 1 } bus_role;

typedef struct bus_transcript {
    uint64_t hash;
    int dialler_id, acceptor_id;
    uint8_t dialler_nonce[BUS_NONCE_LEN], acceptor_nonce[BUS_NONCE_LEN];
} bus_transcript;

/* who's proof over t under key. 0, or -1 when libcrypto failed. */
int bus_proof(const uint8_t *key, size_t keylen, const bus_transcript *t, bus_role who,
              uint8_t out[BUS_PROOF_LEN]);
/* 1 when proof is who's proof over t under key (constant-time compare). */
int bus_proof_ok(const uint8_t *key, size_t keylen, const bus_transcript *t, bus_role who,
                 const uint8_t proof[BUS_PROOF_LEN]);
/* Fill out with n random bytes (the nonces). 0, or -1. */
int bus_random(uint8_t *out, size_t n);

/* --- frame MACs --- */

/* One direction of one link: its derived key and its frame counter. */
typedef struct bus_mac {
    void *ctx;    /* libcrypto's keyed HMAC context; NULL when unset */
    uint64_t seq; /* the next frame's number */
} bus_mac;

/* Key m for the frames that sender sends on the link of transcript t.
 * 0, or -1 when libcrypto failed (m is left unset). */
int bus_mac_init(bus_mac *m, const uint8_t *key, size_t keylen, const bus_transcript *t,
                 bus_role sender);
void bus_mac_free(bus_mac *m);
/* The MAC of the next frame: frame[0, len) is the frame on the wire up to
 * its MAC (header included; its length field already counts the MAC).
 * Advances the counter. 0, or -1 when libcrypto failed. */
int bus_mac_sign(bus_mac *m, const uint8_t *frame, size_t len, uint8_t out[BUS_MAC_LEN]);
/* 1 when mac is the next frame's MAC (constant-time compare); the
 * counter advances only then. */
int bus_mac_verify(bus_mac *m, const uint8_t *frame, size_t len, const uint8_t mac[BUS_MAC_LEN]);

#endif
