/* The MLLP client of mira hl7 send: one message at a time, each answered before the next. */
#include "mira/hl7.h"
#include "net/net.h"
#include "net/tls.h"

#include <string.h>

struct mira_hl7_client {
    mira__conn conn;
    mira__tls *tls;
    mira_mllp_reader *reader;
    int timeout_ms;
    uint8_t buf[65536];
    size_t have, at;
};

mira_hl7_client *mira_hl7_connect(const mira_hl7_client_options *o, mira_error **err)
{
    if (!o || !o->host || o->port <= 0 || o->port > 65535) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, NULL, "an HL7 peer needs a host and a port");
        return NULL;
    }
    mira_hl7_client *c = mira_calloc(1, sizeof *c);
    if (!c || !(c->reader = mira_mllp_reader_new(0))) {
        mira_free(c);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an HL7 client");
        return NULL;
    }
    c->conn.fd = -1;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    if (o->tls) {
        mira_tls_options t = {o->tls_cert, o->tls_key, o->tls_ca, !o->tls_no_verify};
        c->tls = mira__tls_new(&t, false, err);
        if (!c->tls)
            goto fail;
    }
    if (!mira__tcp_connect(o->host, o->port, c->timeout_ms, &c->conn, err))
        goto fail;
    if (c->tls && !mira__tls_connect(c->tls, &c->conn, o->host, c->timeout_ms, err))
        goto fail;
    return c;
fail:
    mira_hl7_client_close(c);
    return NULL;
}

char *mira_hl7_client_send(mira_hl7_client *c, const char *text, size_t len, size_t *ack_len,
                           mira_error **err)
{
    size_t flen;
    char *frame = mira_mllp_wrap(text, len, &flen, err);
    if (!frame)
        return NULL;
    mira__io io = mira__conn_write(&c->conn, frame, flen, c->timeout_ms, err);
    mira_free(frame);
    if (io != MIRA__IO_OK) {
        if (io != MIRA__IO_ERROR)
            mira_error_set(err, MIRA_ERR_IO, NULL, "sending to %s: %s", c->conn.peer,
                           io == MIRA__IO_CLOSED ? "the peer closed the connection"
                                                 : "the peer does not read");
        return NULL;
    }
    int64_t deadline = mira__now_ms() + c->timeout_ms;
    for (;;) {
        if (c->at == c->have) {
            c->at = c->have = 0;
            int64_t left = deadline - mira__now_ms();
            size_t got = 0;
            io = left > 0 ? mira__conn_read_some(&c->conn, c->buf, sizeof c->buf, &got,
                                                 (int)left, err)
                          : MIRA__IO_TIMEOUT;
            if (io != MIRA__IO_OK) {
                if (io != MIRA__IO_ERROR)
                    mira_error_set(err, MIRA_ERR_IO, NULL, "waiting for the ACK from %s: %s",
                                   c->conn.peer,
                                   io == MIRA__IO_CLOSED ? "the peer closed the connection"
                                                         : "no answer in time");
                return NULL;
            }
            c->have = got;
        }
        mira_mllp_frame f;
        size_t used = mira_mllp_feed(c->reader, c->buf + c->at, c->have - c->at, &f, err);
        if (used == (size_t)-1)
            return NULL;
        c->at += used;
        if (!f.data)
            continue;
        char *ack = mira_malloc(f.len + 1);
        if (!ack) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an ACK of %zu bytes", f.len);
            return NULL;
        }
        memcpy(ack, f.data, f.len);
        ack[f.len] = 0;
        if (ack_len)
            *ack_len = f.len;
        return ack;
    }
}

void mira_hl7_client_close(mira_hl7_client *c)
{
    if (!c)
        return;
    if (c->conn.fd >= 0)
        mira__conn_close(&c->conn);
    mira__tls_free(c->tls);
    mira_mllp_reader_free(c->reader);
    mira_free(c);
}
