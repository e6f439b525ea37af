/* DICOM upper layer PDUs (PS3.8 section 9): a bounded parser and the builders. Internal. */
#ifndef MIRA_DIMSE_PDU_H
#define MIRA_DIMSE_PDU_H

#include "mira/core.h"

#include "core/buf.h"

/* PDU types (PS3.8 9.3.1). */
enum {
    MIRA__PDU_ASSOCIATE_RQ = 0x01,
    MIRA__PDU_ASSOCIATE_AC = 0x02,
    MIRA__PDU_ASSOCIATE_RJ = 0x03,
    MIRA__PDU_P_DATA = 0x04,
    MIRA__PDU_RELEASE_RQ = 0x05,
    MIRA__PDU_RELEASE_RP = 0x06,
    MIRA__PDU_ABORT = 0x07,
};

/* Every PDU starts with type (1), reserved (1) and a 32-bit big-endian length. */
#define MIRA__PDU_HEADER 6
/* The one application context name (PS3.7 A.2.1). */
#define MIRA__APP_CONTEXT "1.2.840.10008.3.1.1.1"
/* An A-ASSOCIATE-RQ with 128 contexts of long UIDs and a large identity stays far below this. */
#define MIRA__PDU_ASSOC_MAX (1u << 20)

/* Presentation context results in an A-ASSOCIATE-AC (PS3.8 9.3.3.2). */
enum {
    MIRA__PCTX_ACCEPTED = 0,
    MIRA__PCTX_USER_REJECTED = 1,
    MIRA__PCTX_NO_REASON = 2,
    MIRA__PCTX_ABSTRACT_NOT_SUPPORTED = 3,
    MIRA__PCTX_TS_NOT_SUPPORTED = 4,
};

/* An abort's source (PS3.8 9.3.8): the service user or the service provider. */
enum { MIRA__ABORT_USER = 0, MIRA__ABORT_PROVIDER = 2 };
/* Provider abort reasons. */
enum {
    MIRA__ABORT_NOT_SPECIFIED = 0,
    MIRA__ABORT_UNRECOGNIZED_PDU = 1,
    MIRA__ABORT_UNEXPECTED_PDU = 2,
    MIRA__ABORT_UNRECOGNIZED_PARAM = 4,
    MIRA__ABORT_UNEXPECTED_PARAM = 5,
    MIRA__ABORT_INVALID_PARAM = 6,
};

/* A UID as carried in a PDU: at most 64 characters, NUL-terminated here. */
typedef char mira__uid[65];

typedef struct mira__pctx {
    uint8_t id;     /* odd, 1-255 */
    uint8_t result; /* AC only: MIRA__PCTX_* */
    mira__uid abstract_syntax; /* RQ only ("" in an AC) */
    mira__uid *ts;  /* RQ: the proposed transfer syntaxes; AC: the one accepted (may be none
                     * when the context is rejected) */
    size_t nts;
} mira__pctx;

typedef struct mira__role {
    mira__uid sop_class;
    uint8_t scu, scp; /* 0 or 1 */
} mira__role;

typedef struct mira__ext_neg {
    mira__uid sop_class;
    uint8_t *info; /* service-class application information (owned) */
    size_t len;
} mira__ext_neg;

/* The variable part of an A-ASSOCIATE-RQ or -AC. Every array is owned. */
typedef struct mira__assoc {
    uint16_t protocol_version; /* bit 0 set: version 1 */
    char called_ae[17], calling_ae[17]; /* trailing spaces removed */
    mira__uid app_context;
    mira__pctx *pctx;
    size_t npctx;
    /* user information (PS3.7 Annex D.3.3) */
    uint32_t max_pdu; /* maximum length of a P-DATA-TF the sender receives; 0: unlimited */
    bool has_max_pdu;
    mira__uid impl_class_uid;
    char impl_version[17];
    bool has_async;
    uint16_t max_ops_invoked, max_ops_performed;
    mira__role *roles;
    size_t nroles;
    mira__ext_neg *ext;
    size_t next;
    /* user identity: RQ (type 1 username, 2 username and passcode, 3 Kerberos, 4 SAML, 5 JWT) */
    bool has_identity;
    uint8_t identity_type;
    bool identity_response_requested;
    uint8_t *identity_primary, *identity_secondary; /* owned, not NUL-terminated */
    size_t identity_primary_len, identity_secondary_len;
    /* user identity: AC */
    bool has_identity_response;
    uint8_t *identity_response;
    size_t identity_response_len;
    /* sub-items of unknown types that were skipped (PS3.7 D.3.3: "shall be ignored") */
    size_t unknown_items;
} mira__assoc;

/* One presentation data value of a P-DATA-TF: borrowed from the PDU's bytes. */
typedef struct mira__pdv {
    uint8_t pctx_id;
    bool command; /* message control header bit 0 */
    bool last;    /* bit 1: the last fragment of the command or data set */
    const uint8_t *data;
    size_t len;
} mira__pdv;

typedef struct mira__pdu {
    uint8_t type;
    mira__assoc assoc; /* ASSOCIATE-RQ, -AC */
    /* ASSOCIATE-RJ: result, source, reason; ABORT: source and reason */
    uint8_t result, source, reason;
    mira__pdv *pdv; /* P-DATA-TF */
    size_t npdv;
} mira__pdu;

/* The 32-bit length of a PDU from its 6-byte header; false if the type byte is unknown. */
bool mira__pdu_header(const uint8_t hdr[MIRA__PDU_HEADER], uint8_t *type, uint32_t *len);

/*
 * Parse one whole PDU (header included: len is 6 + its length field). Every length is
 * checked against what holds it; sub-items of unknown types inside the user information are
 * skipped, other unknown items are errors. On success *out is filled (free its arrays with
 * mira__pdu_cleanup; PDVs point into data, which must outlive them). On failure
 * MIRA_ERR_INVALID (or NOMEM, LIMIT) naming the offset, and *out needs no cleanup.
 */
bool mira__pdu_parse(const uint8_t *data, size_t len, mira__pdu *out, mira_error **err);
void mira__pdu_cleanup(mira__pdu *p);
void mira__assoc_cleanup(mira__assoc *a);

/* Append an A-ASSOCIATE-RQ or -AC (type) built from a. False on bad input or OOM. */
bool mira__pdu_build_assoc(mira__buf *b, uint8_t type, const mira__assoc *a, mira_error **err);
/* A-ASSOCIATE-RJ (result 1 permanent / 2 transient, source 1-3, reason). */
bool mira__pdu_build_reject(mira__buf *b, uint8_t result, uint8_t source, uint8_t reason);
/* A-ABORT (source MIRA__ABORT_USER or _PROVIDER, reason). */
bool mira__pdu_build_abort(mira__buf *b, uint8_t source, uint8_t reason);
/* A-RELEASE-RQ or -RP. */
bool mira__pdu_build_release(mira__buf *b, uint8_t type);
/* A P-DATA-TF with one PDV. */
bool mira__pdu_build_pdata(mira__buf *b, uint8_t pctx_id, bool command, bool last,
                           const void *data, size_t len);

/* Add a proposed/accepted transfer syntax to a context; a role; an extended negotiation. */
bool mira__pctx_add_ts(mira__pctx *c, const char *uid);
mira__pctx *mira__assoc_add_pctx(mira__assoc *a, uint8_t id, const char *abstract_syntax);
bool mira__assoc_add_role(mira__assoc *a, const char *uid, bool scu, bool scp);
bool mira__assoc_add_ext(mira__assoc *a, const char *uid, const void *info, size_t len);

/* Name of a PDU type ("A-ASSOCIATE-RQ"...), "unknown" otherwise. */
const char *mira__pdu_type_name(uint8_t type);

#endif
