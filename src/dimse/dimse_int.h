/* DIMSE internals: associations (PS3.8 state machine), messages over P-DATA, services. */
#ifndef MIRA_DIMSE_INT_H
#define MIRA_DIMSE_INT_H

#include "mira/dimse.h"

#include "dimse/pdu.h"
#include "net/net.h"

/* Command fields (PS3.7 E.1). */
enum {
    MIRA__C_STORE_RQ = 0x0001,
    MIRA__C_STORE_RSP = 0x8001,
    MIRA__C_FIND_RQ = 0x0020,
    MIRA__C_FIND_RSP = 0x8020,
    MIRA__C_ECHO_RQ = 0x0030,
    MIRA__C_ECHO_RSP = 0x8030,
    MIRA__C_CANCEL_RQ = 0x0FFF,
    MIRA__N_EVENT_REPORT_RQ = 0x0100,
    MIRA__N_EVENT_REPORT_RSP = 0x8100,
    MIRA__N_SET_RQ = 0x0120,
    MIRA__N_SET_RSP = 0x8120,
    MIRA__N_ACTION_RQ = 0x0130,
    MIRA__N_ACTION_RSP = 0x8130,
    MIRA__N_CREATE_RQ = 0x0140,
    MIRA__N_CREATE_RSP = 0x8140,
};

#define MIRA__NO_DATA_SET 0x0101
#define MIRA__VERIFICATION_UID "1.2.840.10008.1.1"

/* Command set elements (PS3.7 E.1-1). */
#define MIRA__TAG_GROUP_LENGTH MIRA_TAG(0x0000, 0x0000)
#define MIRA__TAG_AFFECTED_SOP_CLASS MIRA_TAG(0x0000, 0x0002)
#define MIRA__TAG_COMMAND_FIELD MIRA_TAG(0x0000, 0x0100)
#define MIRA__TAG_MESSAGE_ID MIRA_TAG(0x0000, 0x0110)
#define MIRA__TAG_RESPONDED_TO MIRA_TAG(0x0000, 0x0120)
#define MIRA__TAG_PRIORITY MIRA_TAG(0x0000, 0x0700)
#define MIRA__TAG_DATA_SET_TYPE MIRA_TAG(0x0000, 0x0800)
#define MIRA__TAG_STATUS MIRA_TAG(0x0000, 0x0900)
#define MIRA__TAG_ERROR_COMMENT MIRA_TAG(0x0000, 0x0902)
#define MIRA__TAG_AFFECTED_SOP_INSTANCE MIRA_TAG(0x0000, 0x1000)
#define MIRA__TAG_REQUESTED_SOP_CLASS MIRA_TAG(0x0000, 0x0003)
#define MIRA__TAG_MOVE_ORIGINATOR_AE MIRA_TAG(0x0000, 0x1030)
#define MIRA__TAG_MOVE_ORIGINATOR_ID MIRA_TAG(0x0000, 0x1031)
#define MIRA__TAG_ERROR_ID MIRA_TAG(0x0000, 0x0903)
#define MIRA__TAG_REQUESTED_SOP_INSTANCE MIRA_TAG(0x0000, 0x1001)
#define MIRA__TAG_EVENT_TYPE_ID MIRA_TAG(0x0000, 0x1002)
#define MIRA__TAG_ACTION_TYPE_ID MIRA_TAG(0x0000, 0x1008)

/* How an association ended (for the log and the caller). */
typedef enum mira__end {
    MIRA__END_NONE = 0,
    MIRA__END_RELEASED,     /* A-RELEASE completed */
    MIRA__END_PEER_ABORTED, /* the peer sent A-ABORT */
    MIRA__END_ABORTED,      /* we sent A-ABORT (malformed or unexpected PDU, timeout, stop) */
    MIRA__END_CLOSED,       /* the connection dropped without either */
    MIRA__END_REJECTED,     /* A-ASSOCIATE-RJ sent or received */
} mira__end;

/* An established (or being established) association, either side. */
typedef struct mira__association {
    mira__conn conn;
    bool requestor;
    struct mira__tls *tls; /* requestor: connect with TLS (borrowed; NULL: plain TCP) */
    mira__assoc rq, ac; /* the negotiation as sent / received */
    uint32_t send_max;  /* largest P-DATA-TF variable part the peer takes (0: no limit) */
    uint32_t recv_max;  /* ours */
    int artim_ms;       /* wait for an expected association/release PDU */
    int idle_ms;        /* wait for the next message */
    /* the PDU being consumed: its buffer, its PDVs, the next PDV */
    uint8_t *pdu_buf;
    size_t pdu_cap;
    mira__pdu pdu;
    size_t next_pdv;
    size_t pdv_off; /* bytes of the current PDV already handed out */
    mira__end end;
    char end_detail[256];
    uint64_t messages; /* DIMSE requests handled or sent */
    /* SCP: the Storage Commitment reports of this association (commitment.c). The one sent
     * whose N-EVENT-REPORT-RSP has not come yet (its Message ID, and the response's status once
     * it came: a service waiting for messages of its own meanwhile hands that response over
     * with mira__dimse_take_report_rsp), and those waiting to be sent after it. */
    bool report_outstanding, report_answered;
    uint16_t report_id, report_status;
    uint16_t report_ids; /* Message IDs given to our reports so far */
    bool reporting;      /* commitment.c is sending the queue (requests are served meanwhile) */
    struct mira__queued_report *reports;
} mira__association;

/* The accepted transfer syntax of a presentation context, or NULL. */
const char *mira__assoc_context_ts(const mira__association *as, uint8_t pctx_id);
/* The abstract syntax of an accepted presentation context, or NULL. */
const char *mira__assoc_context_sop(const mira__association *as, uint8_t pctx_id);

/* Read the next PDU into as->pdu (within timeout_ms). A-ABORT from the peer, a malformed PDU or
 * a timeout end the association (as->end says how; a provider A-ABORT is sent where PS3.8 says
 * so). Returns false when it ended. */
bool mira__assoc_read_pdu(mira__association *as, int timeout_ms, mira_error **err);
/* Send A-ABORT (source, reason), then close. */
void mira__assoc_abort(mira__association *as, uint8_t source, uint8_t reason, const char *why);
/* Send PDU bytes. */
bool mira__assoc_send(mira__association *as, const void *data, size_t len, mira_error **err);
void mira__assoc_free_buffers(mira__association *as);

/* ------------------------------------------------------------------ messages */

/* What mira__dimse_recv_command found. */
typedef enum mira__recv {
    MIRA__RECV_COMMAND = 0, /* *cmd is a command set */
    MIRA__RECV_RELEASED,    /* the peer asked to release; A-RELEASE-RP was sent */
    MIRA__RECV_ENDED,       /* the association ended (as->end) */
} mira__recv;

/* Receive a command set (reassembled from its PDVs, at most 64 KiB) on its context. */
mira__recv mira__dimse_recv_command(mira__association *as, uint8_t *pctx_id, mira_dataset **cmd,
                                    int timeout_ms, mira_error **err);

/* Told of each fragment of a data set as it arrives; return false to stop (then the
 * association is aborted). last is true on the final one. */
typedef bool (*mira__data_fn)(void *ctx, const uint8_t *data, size_t len, bool last);

/* Receive the data set that follows a command, fragment by fragment (fn NULL: drop them). */
bool mira__dimse_recv_data(mira__association *as, uint8_t pctx_id, mira__data_fn fn, void *ctx,
                           mira_error **err);

/* Send a command set (encoded Implicit VR LE, group length computed) and, if data is not NULL,
 * a data set already encoded in the context's transfer syntax, split to the peer's maximum. */
bool mira__dimse_send(mira__association *as, uint8_t pctx_id, const mira_dataset *cmd,
                      const uint8_t *data, size_t len, mira_error **err);
/* The same for data inside a read-only mapping of a file: the pages already sent are given
 * back as it goes (MADV_DONTNEED), so sending a file never needs its size in memory. */
bool mira__dimse_send_mapped(mira__association *as, uint8_t pctx_id, const mira_dataset *cmd,
                             const uint8_t *data, size_t len, mira_error **err);

/* True if something has arrived that is not consumed yet (a PDV left in the current PDU, or
 * bytes on the socket): a C-CANCEL-RQ may be waiting. */
bool mira__assoc_pending(mira__association *as);

/* What mira__dimse_poll_cancel found. */
typedef enum mira__poll {
    MIRA__POLL_NONE = 0,   /* nothing arrived (or a C-CANCEL-RQ for a message that is over) */
    MIRA__POLL_CANCELLED,  /* a C-CANCEL-RQ for message_id */
    MIRA__POLL_ENDED,      /* the association ended, or was aborted here */
} mira__poll;

/* Between the responses of an operation (one outstanding operation was granted): if a command
 * has arrived, it must be a C-CANCEL-RQ (or the response to a report of ours outstanding, see
 * mira__dimse_take_report_rsp, which is taken). A C-CANCEL-RQ for message_id cancels the
 * operation, one for another message is ignored (it is over); any other request aborts the
 * association (what names the operation in progress, for the log). */
mira__poll mira__dimse_poll_cancel(mira__association *as, uint16_t message_id, const char *what);

/* If cmd is the N-EVENT-REPORT-RSP to the report of ours outstanding on as (see
 * report_outstanding), note its status there and return true; its data set, if any, is the
 * caller's to receive. Any number of operations may be in progress when it comes: PS3.7's
 * default window lets each side have one it invoked. */
bool mira__dimse_take_report_rsp(mira__association *as, const mira_dataset *cmd);

/* Command set helpers. */
bool mira__cmd_get_u16(const mira_dataset *cmd, mira_tag tag, uint16_t *out);
/* A string element's value (copied into out, trimmed; "" if absent). */
void mira__cmd_get_str(const mira_dataset *cmd, mira_tag tag, char *out, size_t n);
bool mira__cmd_set_u16(mira_dataset *cmd, mira_tag tag, uint16_t v);

/* ------------------------------------------------------------------ requestor */

/* Open an association to host:port proposing the contexts of rq (its AE titles, contexts and
 * user information; max PDU and implementation fields are filled in). On success as is
 * established (as->ac holds the answer); on rejection MIRA_ERR_CONFLICT naming the reason. */
bool mira__assoc_request(mira__association *as, const char *host, int port, mira__assoc *rq,
                         int timeout_ms, mira_error **err);
/* The SCU side (scu.c): an association set up from mira_dimse_scu_options (timeouts, maximum
 * PDU). tls non-NULL: *tls receives a TLS context made from o->tls (NULL without TLS), which
 * the caller frees with mira__tls_free after closing; tls NULL: none is made. */
bool mira__scu_init(mira__association *as, const mira_dimse_scu_options *o,
                    struct mira__tls **tls, mira_error **err);
/* mira__assoc_request for an SCU call: rq's AE titles from o, its user identity and the
 * extended negotiation items of o and of extra (for the SOP classes rq proposes; extra
 * first), then o->accepted told of the answer. */
bool mira__scu_request(mira__association *as, const char *host, int port, mira__assoc *rq,
                       const mira_dimse_scu_options *o, const mira_dimse_ext_neg *extra,
                       size_t nextra, mira_error **err);

/* Release (A-RELEASE-RQ, wait for RP) and close. */
bool mira__assoc_release(mira__association *as, mira_error **err);

#endif
