/* bus.h - the cluster bus: one TCP connection per pair of nodes carrying
 * binary framed messages; sends are gathered for a short window so many
 * small messages leave in one writev. Used only from the cluster loop
 * thread (not thread-safe).
 *
 * Wire format (busauth.h, docs/PROTOCOL.md): every frame is
 *     u32 length of (type + payload [+ MAC]), u8 type, payload [, MAC]
 * The node with the lower id dials. A link starts with a three-frame
 * handshake (HELLO, HELLO+PROOF, PROOF) in which each side proves it holds
 * the cluster secret over nonces of both sides; a claimed id is trusted,
 * and an older link of that node replaced, only once its proof checked.
 * After the handshake every frame carries a MAC under a per-link,
 * per-direction key and a frame counter; a frame whose MAC fails closes
 * the link. Every frame that passes, whatever its type, is handed to
 * on_recv without its MAC.
 *
 * Callbacks (on_recv, on_link) may call bus_send/bus_sendv/bus_connected
 * but not bus_destroy or bus_before_sleep. A link that fails during a
 * callback is closed, and its on_link(down) reported, once the callback has
 * returned. bus_destroy must not run inside a callback of this bus's own
 * I/O (call it from a loop timer, or when the loop is not running): it
 * frees memory that events of the current epoll batch may still point to. */
#ifndef PIER_CLUSTER_BUS_H
#define PIER_CLUSTER_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "cluster/busauth.h"
#include "net/event_loop.h"

#define BUS_MAX_PEERS 8

typedef struct bus bus;
typedef struct bus_peer_addr { int id; char host[64]; int port; } bus_peer_addr;
/* One whole received message. payload is valid only during the call. The callback may call bus_send. */
typedef void bus_recv_fn(void *arg, int from_id, uint8_t type, const uint8_t *payload, size_t len);
/* A peer's link came up (up=1) or went down (0). */
typedef void bus_link_fn(void *arg, int peer_id, int up);
typedef struct bus_config {
    int self_id;                 /* 1..255 */
    const char *bind_host;       /* e.g. "127.0.0.1" */
    int port;                    /* own bus port to listen on */
    int npeers;
    bus_peer_addr peers[BUS_MAX_PEERS]; /* the other nodes (never self) */
    long gather_us;              /* send-gathering window; 0 = send before the loop sleeps */
    size_t max_frame;            /* largest accepted payload (e.g. 64 MiB) */
    size_t max_outbuf;           /* queued bytes per peer before the link is dropped (e.g. 256 MiB) */
    long idle_timeout_ms;        /* a link that received nothing for this long is closed and redialled (0 = never) */
    uint64_t cluster_hash;       /* hash of the membership; a peer with another hash is refused */
    bus_recv_fn *on_recv;
    bus_link_fn *on_link;
    void *arg;
    /* Added fields (0 picks the default): */
    long handshake_timeout_ms;   /* dial + hello must finish within this (default 1000) */
    /* The cluster secret every node must prove it holds (copied; at most
     * BUS_KEY_MAX bytes). key_len 0: BUS_PUBLIC_KEY, which proves nothing. */
    const uint8_t *key;
    size_t key_len;
} bus_config;

/* Binds the listener now (NULL + err on failure) and starts dialling.
 * Peer host names are resolved here, once (use IP literals to avoid a
 * blocking DNS look-up). The config is copied. */
bus *bus_create(ev_loop *loop, const bus_config *cfg, char *err, size_t errlen);
/* Closes every link without calling on_link, and frees everything. */
void bus_destroy(bus *b);
/* Queue one message (type, payload) for a peer. 0 queued, -1 when the peer is unknown or not connected (dropped: the protocol above retransmits).
 * Also -1 when the payload is larger than max_frame (the link stays up) or
 * when queueing it would pass max_outbuf (the link is dropped). */
int bus_send(bus *b, int peer_id, uint8_t type, const void *payload, size_t len);
int bus_sendv(bus *b, int peer_id, uint8_t type, const struct iovec *iov, int iovcnt); /* payload from pieces */
/* 1 when the peer's link has finished its handshake and is usable. */
int bus_connected(const bus *b, int peer_id);
/* The owner's loop calls this from its before-sleep hook: writes out peers whose gathering window has elapsed (all of them when gather_us is 0) and arms a timer for the rest.
 * It also closes failed links (reporting on_link(down)) and frees them. */
void bus_before_sleep(bus *b);
/* frames_sent counts messages queued, bytes_sent bytes the kernel took,
 * writes the write calls, connects/disconnects links that went up/down. */
typedef struct bus_stats { uint64_t frames_sent, bytes_sent, writes, frames_recv, bytes_recv, connects, disconnects; } bus_stats;
void bus_get_stats(const bus *b, bus_stats *out);

#endif
