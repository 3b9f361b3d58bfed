/* kv.c - a blocking RESP client for the few commands the examples need.
 * One request at a time: send, then read until one whole reply parsed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct pier_kv {
    int fd;
    char *buf;          /* received bytes; the current reply starts at 0 */
    size_t len, cap;
    size_t consumed;    /* bytes of the last reply, dropped at the next call */
};

/* Send argv and read one reply into *r (pointing into kv->buf, valid
 * until the next call). -ERR replies become PIER_E_SERVER. */
static int roundtrip(pier_kv *kv, int argc, const char *const *argv, const size_t *lens,
                     resp_reply *r) {
    memmove(kv->buf, kv->buf + kv->consumed, kv->len - kv->consumed);
    kv->len -= kv->consumed;
    kv->consumed = 0;
    char *cmd;
    size_t clen;
    int rc = resp_encode_command(argc, argv, lens, &cmd, &clen);
    if (rc) return rc;
    struct iovec iov = {cmd, clen};
    rc = pn_writev_all(kv->fd, &iov, 1);
    free(cmd);
    if (rc) return rc;
    for (;;) {
        long l = resp_parse_reply(kv->buf, kv->len, r);
        if (l < 0) return pier_fail(PIER_E_PROTOCOL, "malformed RESP reply");
        if (l > 0) {
            kv->consumed = (size_t)l;
            break;
        }
        if (kv->cap - kv->len < 4096) {
            char *nb = realloc(kv->buf, kv->cap * 2);
            if (!nb) return pier_fail(PIER_E_NOMEM, "no memory for a reply");
            kv->buf = nb;
            kv->cap *= 2;
        }
        ssize_t n = read(kv->fd, kv->buf + kv->len, kv->cap - kv->len);
        if (n <= 0) return pier_fail(PIER_E_IO, "connection lost while reading a reply");
        kv->len += (size_t)n;
    }
    if (r->type == RR_ERROR)
        return pier_fail(strncmp(r->str, "WRONGPASS", 9) && strncmp(r->str, "NOAUTH", 6)
                             ? PIER_E_SERVER : PIER_E_AUTH,
                         "%.*s", (int)(r->len > 200 ? 200 : r->len), r->str);
    return PIER_OK;
}

int pier_kv_connect(pier_kv **out, const char *host, int port, const char *password) {
    if (!out || !host) return pier_fail(PIER_E_INVALID, "NULL argument");
    *out = NULL;
    pier_kv *kv = calloc(1, sizeof *kv);
    if (!kv || !(kv->buf = malloc(kv->cap = 16384))) {
        free(kv);
        return pier_fail(PIER_E_NOMEM, "no memory for a connection");
    }
    kv->fd = pn_connect(host, port, 1, 0, 0);
    if (kv->fd < 0) {
        free(kv->buf);
        free(kv);
        return PIER_E_CONNECT;
    }
    if (password) {
        const char *argv[] = {"AUTH", password};
        size_t lens[] = {4, strlen(password)};
        resp_reply r;
        int rc = roundtrip(kv, 2, argv, lens, &r);
        if (rc) {
            pier_kv_close(kv);
            return rc == PIER_E_SERVER ? PIER_E_AUTH : rc;
        }
    }
    *out = kv;
    pier_clear_error();
    return PIER_OK;
}

int pier_kv_get(pier_kv *kv, const char *key, char **value, size_t *len) {
    if (!kv || !key || !value || !len) return pier_fail(PIER_E_INVALID, "NULL argument");
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, strlen(key)};
    resp_reply r;
    int rc = roundtrip(kv, 2, argv, lens, &r);
    if (rc) return rc;
    if (r.type == RR_NIL) return pier_fail(PIER_E_NOT_FOUND, "no key '%.100s'", key);
    if (r.type != RR_BULK) return pier_fail(PIER_E_WRONG_TYPE, "GET did not reply a string");
    char *v = malloc(r.len + 1);
    if (!v) return pier_fail(PIER_E_NOMEM, "no memory for a %zu-byte value", r.len);
    memcpy(v, r.str, r.len);
    v[r.len] = 0;
    *value = v;
    *len = r.len;
    return PIER_OK;
}

int pier_kv_set(pier_kv *kv, const char *key, const void *value, size_t len, long long ttl_ms) {
    if (!kv || !key || (!value && len)) return pier_fail(PIER_E_INVALID, "NULL argument");
    char ttl[24];
    int tl = snprintf(ttl, sizeof ttl, "%lld", ttl_ms);
    const char *argv[] = {"SET", key, value ? value : "", "PX", ttl};
    size_t lens[] = {3, strlen(key), len, 2, (size_t)tl};
    resp_reply r;
    int rc = roundtrip(kv, ttl_ms > 0 ? 5 : 3, argv, lens, &r);
    if (rc) return rc;
    return r.type == RR_STATUS ? PIER_OK : pier_fail(PIER_E_WRONG_TYPE, "SET reply not +OK");
}

/* DEL and INCR: one key, an integer reply. */
static int int_command(pier_kv *kv, const char *name, const char *key, long long *out) {
    if (!kv || !key) return pier_fail(PIER_E_INVALID, "NULL argument");
    const char *argv[] = {name, key};
    size_t lens[] = {strlen(name), strlen(key)};
    resp_reply r;
    int rc = roundtrip(kv, 2, argv, lens, &r);
    if (rc) return rc;
    if (r.type != RR_INT) return pier_fail(PIER_E_WRONG_TYPE, "%s did not reply an integer", name);
    if (out) *out = r.integer;
    return PIER_OK;
}

int pier_kv_del(pier_kv *kv, const char *key, long long *deleted) {
    return int_command(kv, "DEL", key, deleted);
}

int pier_kv_incr(pier_kv *kv, const char *key, long long *result) {
    return int_command(kv, "INCR", key, result);
}

void pier_kv_close(pier_kv *kv) {
    if (!kv) return;
    close(kv->fd);
    free(kv->buf);
    free(kv);
}
