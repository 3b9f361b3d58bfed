/* busauth.c - the cluster bus's wire codec and authentication (see
 * busauth.h for the protocol). HMAC-SHA256 comes from OpenSSL's libcrypto:
 * one-shot HMAC() for the handshake, and for frames one keyed EVP_MAC
 * context per link direction, re-initialised per frame with its key kept
 * (no key schedule per frame). */
#include "cluster/busauth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <string.h>

#include "lib/codec.h"
#define SHA256_LEN 32
#define TRANSCRIPT_LEN (8 + 1 + 1 + 2 * BUS_NONCE_LEN)

/* Labels keep the four uses of K apart: a proof is never a frame key, and
 * neither role's proof is the other's. */
static const char *const proof_label[2] = {"pier bus v2 dialler proof",
                                           "pier bus v2 acceptor proof"};
static const char *const key_label[2] = {"pier bus v2 frames from the dialler",
                                         "pier bus v2 frames from the acceptor"};

int bus_frame_split(bus_rx_state st, size_t max_payload, const uint8_t *buf, size_t len,
                    bus_frame *f, size_t *need) {
    if (need) *need = 0;
    if (len < 4) return BUS_SPLIT_NEED;
    size_t flen = codec_get_le32(buf);
    if (st != BUS_RX_FRAMES) {
        if (flen < 1 || flen - 1 > BUS_HANDSHAKE_MAX) return BUS_SPLIT_BAD;
    } else if (flen < 1 + BUS_MAC_LEN || flen - 1 - BUS_MAC_LEN > max_payload) {
        return BUS_SPLIT_BAD;
    }
    size_t whole = 4 + flen;
    if (len < whole) {
        if (need) *need = whole;
        return BUS_SPLIT_NEED;
    }
    f->whole = whole;
    f->type = buf[4];
    f->payload = buf + BUS_FRAME_HEADER;
    if (st == BUS_RX_FRAMES) {
        f->len = flen - 1 - BUS_MAC_LEN;
        f->mac = f->payload + f->len;
    } else {
        f->len = flen - 1;
        f->mac = NULL;
    }
    return BUS_SPLIT_FRAME;
}

/* --- hello --- */

void bus_hello_write(uint8_t out[BUS_HELLO_PAYLOAD], int id, uint64_t hash,
                     const uint8_t nonce[BUS_NONCE_LEN]) {
    memcpy(out, BUS_HELLO_MAGIC, 8);
    out[8] = (uint8_t)BUS_HELLO_VERSION;
    out[9] = (uint8_t)(BUS_HELLO_VERSION >> 8);
    out[10] = (uint8_t)id;
    codec_put_le64(out + 11, hash);
    memcpy(out + 19, nonce, BUS_NONCE_LEN);
}

int bus_hello_read(uint8_t type, const uint8_t *p, size_t len, int with_proof, bus_hello *out) {
    memset(out, 0, sizeof *out);
    if (type != BUS_HELLO_TYPE || len < 10 || memcmp(p, BUS_HELLO_MAGIC, 8) != 0)
        return BUS_HELLO_NOT_HELLO;
    out->version = (unsigned)p[8] | (unsigned)p[9] << 8;
    if (out->version != BUS_HELLO_VERSION) return BUS_HELLO_VERSION_;
    if (len != (with_proof ? BUS_HELLO_PROOF_PAYLOAD : BUS_HELLO_PAYLOAD)) return BUS_HELLO_LENGTH;
    out->id = p[10];
    out->hash = codec_get_le64(p + 11);
    memcpy(out->nonce, p + 19, BUS_NONCE_LEN);
    if (with_proof) memcpy(out->proof, p + BUS_HELLO_PAYLOAD, BUS_PROOF_LEN);
    return BUS_HELLO_OK;
}

/* --- proofs --- */

/* HMAC-SHA256(key, label | T) into out. 0 or -1. */
static int labelled_hmac(const uint8_t *key, size_t keylen, const char *label,
                         const bus_transcript *t, uint8_t out[SHA256_LEN]) {
    uint8_t msg[64 + TRANSCRIPT_LEN];
    size_t n = strlen(label);
    if (n > 64 || keylen > BUS_KEY_MAX) return -1;
    memcpy(msg, label, n);
    codec_put_le64(msg + n, t->hash);
    msg[n + 8] = (uint8_t)t->dialler_id;
    msg[n + 9] = (uint8_t)t->acceptor_id;
    memcpy(msg + n + 10, t->dialler_nonce, BUS_NONCE_LEN);
    memcpy(msg + n + 10 + BUS_NONCE_LEN, t->acceptor_nonce, BUS_NONCE_LEN);
    unsigned outlen = 0;
    const uint8_t *ok = HMAC(EVP_sha256(), key, (int)keylen, msg, n + TRANSCRIPT_LEN, out, &outlen);
    OPENSSL_cleanse(msg, sizeof msg);
    return ok && outlen == SHA256_LEN ? 0 : -1;
}

int bus_proof(const uint8_t *key, size_t keylen, const bus_transcript *t, bus_role who,
              uint8_t out[BUS_PROOF_LEN]) {
    return labelled_hmac(key, keylen, proof_label[who], t, out);
}

int bus_proof_ok(const uint8_t *key, size_t keylen, const bus_transcript *t, bus_role who,
                 const uint8_t proof[BUS_PROOF_LEN]) {
    uint8_t want[BUS_PROOF_LEN];
    if (bus_proof(key, keylen, t, who, want) < 0) return 0;
    int ok = CRYPTO_memcmp(want, proof, BUS_PROOF_LEN) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

int bus_random(uint8_t *out, size_t n) { return RAND_bytes(out, (int)n) == 1 ? 0 : -1; }

/* --- frame MACs --- */

int bus_mac_init(bus_mac *m, const uint8_t *key, size_t keylen, const bus_transcript *t,
                 bus_role sender) {
    m->ctx = NULL;
    m->seq = 0;
    uint8_t k[SHA256_LEN];
    if (labelled_hmac(key, keylen, key_label[sender], t, k) < 0) return -1;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    int rc = ctx && EVP_MAC_init(ctx, k, sizeof k, params) == 1 ? 0 : -1;
    OPENSSL_cleanse(k, sizeof k);
    if (rc < 0) {
        EVP_MAC_CTX_free(ctx);
        return -1;
    }
    m->ctx = ctx;
    return 0;
}

void bus_mac_free(bus_mac *m) {
    EVP_MAC_CTX_free(m->ctx);
    m->ctx = NULL;
}

/* HMAC(k_dir, seq | frame), truncated. 0 or -1. */
static int frame_mac(bus_mac *m, uint64_t seq, const uint8_t *frame, size_t len,
                     uint8_t out[BUS_MAC_LEN]) {
    if (!m->ctx) return -1;
    uint8_t s[8], full[SHA256_LEN];
    codec_put_le64(s, seq);
    size_t outl = 0;
    /* init with no key: start again with the key already set */
    if (EVP_MAC_init(m->ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(m->ctx, s, sizeof s) != 1 ||
        EVP_MAC_update(m->ctx, frame, len) != 1 ||
        EVP_MAC_final(m->ctx, full, &outl, sizeof full) != 1 || outl != SHA256_LEN)
        return -1;
    memcpy(out, full, BUS_MAC_LEN);
    return 0;
}

int bus_mac_sign(bus_mac *m, const uint8_t *frame, size_t len, uint8_t out[BUS_MAC_LEN]) {
    if (frame_mac(m, m->seq, frame, len, out) < 0) return -1;
    m->seq++;
    return 0;
}

int bus_mac_verify(bus_mac *m, const uint8_t *frame, size_t len, const uint8_t mac[BUS_MAC_LEN]) {
    uint8_t want[BUS_MAC_LEN];
    if (frame_mac(m, m->seq, frame, len, want) < 0) return 0;
    if (CRYPTO_memcmp(want, mac, BUS_MAC_LEN) != 0) return 0;
    m->seq++;
    return 1;
}
