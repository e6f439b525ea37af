/* mira DIMSE: DICOM networking (PS3.7, PS3.8): the SCP of `mira serve` and SCU calls. */
#ifndef MIRA_DIMSE_H
#define MIRA_DIMSE_H

#include "mira/archive.h"
#include "mira/core.h"

#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Services a calling AE title (or a user) may use: bits of the permissions below. */
enum {
    MIRA_DIMSE_PERMIT_ECHO = 1u << 0,     /* Verification */
    MIRA_DIMSE_PERMIT_STORE = 1u << 1,    /* C-STORE to us */
    MIRA_DIMSE_PERMIT_FIND = 1u << 2,     /* Patient / Study Root C-FIND */
    MIRA_DIMSE_PERMIT_MOVE = 1u << 3,     /* C-MOVE */
    MIRA_DIMSE_PERMIT_GET = 1u << 4,      /* C-GET (and the storage contexts it receives on) */
    MIRA_DIMSE_PERMIT_WORKLIST = 1u << 5, /* Modality Worklist C-FIND */
    MIRA_DIMSE_PERMIT_MPPS = 1u << 6,     /* Modality Performed Procedure Step */
    MIRA_DIMSE_PERMIT_COMMIT = 1u << 7,   /* Storage Commitment */
    MIRA_DIMSE_PERMIT_ALL = 0xFFu,
};

/* Who may associate, and what for. */
typedef struct mira_dimse_access_rule {
    const char *calling_ae; /* "*": any calling AE title no other rule names */
    const char *host;       /* NULL or "": from any address; else the peer's numeric address */
    unsigned permissions;   /* MIRA_DIMSE_PERMIT_* */
} mira_dimse_access_rule;

/* A user of user identity negotiation (PS3.7 D.3.3.7). */
typedef struct mira_dimse_user {
    const char *name;
    /* mira_dimse_password_hash's text; NULL: the user name alone (identity type 1) is enough */
    const char *password_hash;
    unsigned permissions; /* within those of the calling AE title (MIRA_DIMSE_PERMIT_ALL: all) */
} mira_dimse_user;

/* The bit of a permission's name ("echo", "store", "find", "move", "get", "worklist", "mpps",
 * "commit", "all"); false if it is none of these. */
MIRA_API bool mira_dimse_permission_parse(const char *name, unsigned *bits);
/* A salted hash of a password for mira_dimse_user.password_hash
 * ("pbkdf2-sha256$ITERATIONS$SALT$HASH", hex). Caller frees with mira_free; NULL on failure. */
MIRA_API char *mira_dimse_password_hash(const char *password, mira_error **err);

/* A peer known by AE title (a C-MOVE destination). */
typedef struct mira_dimse_peer {
    const char *ae_title;
    const char *host;
    int port;
    /* NULL: plain TCP; else the associations mira opens to it (C-MOVE sub-operations,
     * Storage Commitment reports) are made over TLS with these client settings (borrowed) */
    const struct mira_tls_options *tls;
} mira_dimse_peer;

typedef struct mira_dimse_server_options {
    const char *bind;     /* address to listen on; NULL or "": every address */
    int port;             /* 0: a free port (see mira_dimse_server_port) */
    const char *ae_title; /* our AE title (default "MIRA") */
    /* Refuse an A-ASSOCIATE-RQ whose called AE title is not ae_title (default true). */
    bool check_called_ae;
    /* Calling AE titles accepted (NULL: any). */
    const char *const *calling_ae_titles;
    size_t ncalling_ae_titles;
    /* Where C-STORE puts instances (borrowed; NULL: no Storage SCP). */
    mira_archive *archive;
    /* Transfer syntaxes accepted, most preferred first: for each proposed context the first of
     * these that the requestor also proposed is chosen. NULL: every syntax mira knows
     * (uncompressed, deflated, every encapsulated one), chosen in the requestor's order, so
     * that instances arrive as the sender has them. */
    const char *const *transfer_syntaxes;
    size_t ntransfer_syntaxes;
    int max_associations;  /* at once (default 32); more are rejected (transient, local limit) */
    uint32_t max_pdu;      /* the largest P-DATA-TF we take (default 262144) */
    int artim_seconds;     /* for an A-ASSOCIATE-RQ after connecting, or a release (default 30) */
    int idle_seconds;      /* with no message in an association (default 300) */
    mira_log_fn log;
    void *log_ctx;
    /* Access control (NULL: any calling AE title may use any service). A calling AE title no
     * rule names (or named from another address) is rejected (A-ASSOCIATE-RJ, calling AE title
     * not recognized); the presentation contexts of services its rule does not permit are
     * refused (user rejection). Copied by _new. */
    const mira_dimse_access_rule *access;
    size_t naccess;
    /* With users, a user identity sent must be one of them with the right passcode, or the
     * association is rejected; require_user also rejects associations that send none. */
    const mira_dimse_user *users;
    size_t nusers;
    bool require_user;
    /* TLS (include/mira/tls.h; NULL: none): a second listener on tls_port (0: a free one, see
     * mira_dimse_server_tls_port) serves associations over TLS; tls_only: no plain listener
     * (port is ignored). The files are read by _new. */
    const struct mira_tls_options *tls;
    int tls_port;
    bool tls_only;
    /* C-MOVE destinations by AE title (borrowed: must outlive the server; NULL: none, every
     * C-MOVE is answered "move destination unknown"), and where Storage Commitment reports go
     * when the requestor's association cannot take them. */
    const mira_dimse_peer *peers;
    size_t npeers;
    /* A Storage Commitment report not delivered (the requestor's association ended or refused
     * it, and a new association to its peer failed) stays in the archive's index and is tried
     * again on a new association: after each of these delays in seconds in turn, the last one
     * repeating (NULL: 5, 30, 120, 600; each at least 1), until commit_retry_seconds (default
     * 86400) after the request. Copied by _new. */
    const int *commit_retry_delays;
    size_t ncommit_retry_delays;
    int commit_retry_seconds;
} mira_dimse_server_options;


MIRA_API void mira_dimse_server_options_init(mira_dimse_server_options *opt);

typedef struct mira_dimse_server mira_dimse_server;

/* Listen (the socket is bound on return, so the port can be told to peers). The options'
 * strings are copied; the archive is borrowed and must outlive the server. */
MIRA_API mira_dimse_server *mira_dimse_server_new(const mira_dimse_server_options *opt,
                                                  mira_error **err);
/* The port listened on (plain TCP; -1 with tls_only). */
MIRA_API int mira_dimse_server_port(const mira_dimse_server *s);
/* The TLS port listened on (-1 without TLS). */
MIRA_API int mira_dimse_server_tls_port(const mira_dimse_server *s);
/* Serve until mira_dimse_server_stop: a thread per association. Returns when every
 * association has ended. */
MIRA_API bool mira_dimse_server_run(mira_dimse_server *s, mira_error **err);
/* Ask a running server to stop (async-signal-safe: may be called from a signal handler).
 * Associations in progress are aborted within a fraction of a second. */
MIRA_API void mira_dimse_server_stop(mira_dimse_server *s);
/* _free(NULL) is a no-op. Not while mira_dimse_server_run runs. */
MIRA_API void mira_dimse_server_free(mira_dimse_server *s);

/* ------------------------------------------------------------------ SCU */

/* User identity types (PS3.7 D.3.3.7.1). */
typedef enum mira_dimse_identity_type {
    MIRA_DIMSE_IDENTITY_NONE = 0,
    MIRA_DIMSE_IDENTITY_USERNAME = 1,  /* a user name */
    MIRA_DIMSE_IDENTITY_PASSWORD = 2,  /* a user name and a passcode */
    MIRA_DIMSE_IDENTITY_KERBEROS = 3,  /* a Kerberos service ticket */
    MIRA_DIMSE_IDENTITY_SAML = 4,      /* a SAML assertion */
    MIRA_DIMSE_IDENTITY_JWT = 5,       /* a JSON Web Token */
} mira_dimse_identity_type;

/* A SOP class extended negotiation sub-item (PS3.7 D.3.3.5): the service-class application
 * information for one SOP class (PS3.4 B.3.1 storage, C.5.1.1 query, C.5.2.1 retrieve). */
typedef struct mira_dimse_ext_neg {
    const char *sop_class; /* SCU options: NULL applies it to every SOP class proposed */
    const uint8_t *info;
    size_t len;
} mira_dimse_ext_neg;

/* What the acceptor answered in its A-ASSOCIATE-AC. Every pointer is borrowed for the call. */
typedef struct mira_dimse_accepted {
    const char *implementation_uid;
    const char *implementation_version; /* "" if none */
    bool identity_response;             /* a user identity positive response came */
    const uint8_t *identity_response_data; /* its server response (may be empty) */
    size_t identity_response_len;
    const mira_dimse_ext_neg *ext; /* the acceptor's extended negotiation answers */
    size_t next;
} mira_dimse_accepted;

/* Told of the A-ASSOCIATE-AC of each association an SCU call establishes. */
typedef void (*mira_dimse_accepted_fn)(void *ctx, const mira_dimse_accepted *a);

typedef struct mira_dimse_scu_options {
    const char *calling_ae; /* default "MIRA" */
    const char *called_ae;  /* default "ANY-SCP" */
    int timeout_seconds;    /* for connecting and for each answer (default 30) */
    uint32_t max_pdu;       /* the largest P-DATA-TF we take (default 262144) */
    const struct mira_tls_options *tls; /* NULL: plain TCP (include/mira/tls.h) */
    /* User identity negotiation (PS3.7 D.3.3.7): identity_type NONE sends none. identity is
     * the primary field (a user name, a Kerberos ticket, a SAML assertion, a JWT: at most
     * 65535 bytes; identity_len 0: strlen), password the secondary field (type 2 only).
     * identity_response asks the acceptor for a positive response (see accepted). */
    mira_dimse_identity_type identity_type;
    const void *identity;
    size_t identity_len;
    const char *password;
    bool identity_response;
    /* SOP class extended negotiation sub-items sent with the request (borrowed); those whose
     * SOP class is not proposed are left out. mira_dimse_find/_move/_get add their own from
     * mira_dimse_qr_options. */
    const mira_dimse_ext_neg *ext;
    size_t next;
    mira_dimse_accepted_fn accepted; /* NULL: not told */
    void *accepted_ctx;
} mira_dimse_scu_options;

MIRA_API void mira_dimse_scu_options_init(mira_dimse_scu_options *opt);

/*
 * Verification (C-ECHO): associate with host:port, send one C-ECHO-RQ, release. On success
 * *status holds the response's status (0x0000 is success). Fails with MIRA_ERR_IO (no
 * connection, or it dropped), MIRA_ERR_CONFLICT (association rejected, or Verification not
 * accepted: the message says why), MIRA_ERR_INVALID (the peer sent something malformed).
 */
MIRA_API bool mira_dimse_echo(const char *host, int port, const mira_dimse_scu_options *opt,
                              uint16_t *status, mira_error **err);

/* ------------------------------------------------------------------ Storage SCU */

/* What became of one instance given to mira_dimse_send. Every pointer is borrowed for the
 * call. */
typedef struct mira_dimse_send_report {
    const char *path;
    const char *sop_class_uid;    /* "" if the file could not be read */
    const char *sop_instance_uid; /* "" if the file could not be read */
    const char *transfer_syntax;  /* the syntax it was sent in ("" if it was not sent) */
    bool readable;   /* false: not a DICOM file with a SOP class and instance */
    bool transcoded; /* sent in another syntax than its own (the peer accepted no other) */
    bool responded;  /* a C-STORE-RSP came; status holds its status */
    uint16_t status;
    const char *reason; /* why it failed, or the response's Error Comment ("" if none) */
} mira_dimse_send_report;

/* Told of each instance once its fate is known, in the order they were sent. */
typedef void (*mira_dimse_send_fn)(void *ctx, const mira_dimse_send_report *r);

/* The C-STORE statuses that mean stored (PS3.4 B.2.3): success, or one of the warnings. */
MIRA_API bool mira_dimse_store_status_ok(uint16_t status);

/*
 * Storage SCU (C-STORE): send the DICOM files in paths to host:port. The headers are read
 * first; one association (more when the instances need over 128 presentation contexts)
 * proposes a context per SOP class and transfer syntax with that syntax alone, and one per
 * SOP class with Explicit VR LE and Implicit VR LE; an instance goes in its own syntax where it
 * is accepted,
 * else it is transcoded to an accepted one (decompressed to a native syntax, or encoded in
 * what was accepted when mira can). SOP classes the peer refuses are reported, the rest is
 * sent. fn (may be NULL) is told of every instance. Returns false (MIRA_ERR_IO no connection,
 * MIRA_ERR_CONFLICT rejected, MIRA_ERR_INVALID malformed answer) when no association could be
 * established; instances left when a later association fails are reported as failed and the
 * call returns true.
 */
MIRA_API bool mira_dimse_send(const char *host, int port, const mira_dimse_scu_options *opt,
                              const char *const *paths, size_t npaths, mira_dimse_send_fn fn,
                              void *ctx, mira_error **err);

/* ------------------------------------------------------------------ Query/Retrieve SCU */

/* The information model a query or retrieve is made in. */
typedef enum mira_dimse_qr_root {
    MIRA_DIMSE_QR_PATIENT = 0,  /* Patient Root (PS3.4 C.6.1) */
    MIRA_DIMSE_QR_STUDY = 1,    /* Study Root (C.6.2) */
    MIRA_DIMSE_QR_WORKLIST = 2, /* Modality Worklist (K.6.1; C-FIND only) */
} mira_dimse_qr_root;

typedef struct mira_dimse_qr_options {
    mira_dimse_qr_root root;      /* default MIRA_DIMSE_QR_STUDY */
    uint64_t limit;               /* C-FIND: send C-CANCEL after this many matches (0: none) */
    const char *move_destination; /* C-MOVE: the AE title the peer sends to */
    /* C-GET: the storage SOP classes to take the SCP role for (NULL: the common ones:
     * CT, MR, CR, DX, MG, US, SC, NM, PET, RT, XA, SR, PDF...) */
    const char *const *sop_classes;
    size_t nsop_classes;
    const char *out_dir; /* C-GET: the folder received instances are written to (required) */
    /* Extended negotiation for the model's SOP class (PS3.4 C.5.1.1, C.5.2.1, C.5.3.1):
     * relational queries (C-FIND) or relational retrieval (C-MOVE, C-GET); combined date and
     * time matching, fuzzy semantic matching of person names, timezone query adjustment
     * (C-FIND). Sent only when one is set; the peer's answer goes to the accepted callback. */
    bool relational;
    bool datetime_matching;
    bool fuzzy_matching;
    bool timezone_adjustment;
    /* When *cancel becomes non-zero (a signal handler may set it), a C-CANCEL-RQ is sent
     * (once) and responses are read until the final one (0xFE00 from a peer that honours
     * it). NULL: never. Looked at while waiting, at least every 200 ms. */
    const volatile sig_atomic_t *cancel;
} mira_dimse_qr_options;

MIRA_API void mira_dimse_qr_options_init(mira_dimse_qr_options *opt);

/* Told of each C-FIND match (the identifier of a pending response, borrowed for the call);
 * return false to cancel the query (C-CANCEL-RQ). */
typedef bool (*mira_dimse_match_fn)(void *ctx, const mira_dataset *match);

/* A C-MOVE or C-GET response. Every pointer is borrowed for the call. */
typedef struct mira_dimse_retrieve_status {
    uint16_t status; /* 0xFF00 pending; the final one otherwise */
    bool final;
    /* Number of Remaining / Completed / Failed / Warning Sub-operations; -1 when absent */
    int remaining, completed, failed, warning;
    const char *error_comment; /* "" if none */
    const char *failed_uids;   /* final: the Failed SOP Instance UID List, '\'-separated ("") */
} mira_dimse_retrieve_status;

/* Told of each C-MOVE / C-GET response, pending ones and the final one. */
typedef void (*mira_dimse_retrieve_fn)(void *ctx, const mira_dimse_retrieve_status *st);

/* C-GET: told of each instance received, written as a Part 10 file (its data set as received,
 * a file meta group for the context's transfer syntax) at path, named SOPInstanceUID.dcm in
 * out_dir. The callback may move or remove the file. Returns the C-STORE status to answer
 * (0x0000 kept; e.g. 0xA700 when it could not be kept). NULL: every instance is kept. */
typedef uint16_t (*mira_dimse_received_fn)(void *ctx, const char *path, const char *sop_class_uid,
                                           const char *sop_instance_uid,
                                           const char *transfer_syntax);

/*
 * Query (C-FIND, PS3.4 C.4.1 / K.4.1): associate with host:port proposing the model of q->root,
 * send identifier (borrowed; encoded in the accepted syntax) and hand each match to fn (may be
 * NULL). After q->limit matches, or when fn returns false, a C-CANCEL-RQ is sent and later
 * matches are dropped. *status receives the final status (0x0000 success, 0xFE00 cancelled,
 * else a failure). Fails with MIRA_ERR_IO (no connection, or it dropped), MIRA_ERR_CONFLICT
 * (rejected, or the model not accepted), MIRA_ERR_INVALID (a malformed answer).
 */
MIRA_API bool mira_dimse_find(const char *host, int port, const mira_dimse_scu_options *opt,
                              const mira_dimse_qr_options *q, const mira_dataset *identifier,
                              mira_dimse_match_fn fn, void *ctx, uint16_t *status,
                              mira_error **err);

/*
 * Retrieve (C-MOVE, C.4.2): ask host:port to send what identifier selects to
 * q->move_destination. fn (may be NULL) is told of every response; *status receives the final
 * one's. Errors as for mira_dimse_find.
 */
MIRA_API bool mira_dimse_move(const char *host, int port, const mira_dimse_scu_options *opt,
                              const mira_dimse_qr_options *q, const mira_dataset *identifier,
                              mira_dimse_retrieve_fn fn, void *ctx, uint16_t *status,
                              mira_error **err);

/*
 * Retrieve (C-GET, C.4.3): the instances identifier selects come back over the association as
 * C-STORE sub-operations on storage contexts proposed with the SCP role (role selection, PS3.7
 * D.3.3.4): per SOP class one context proposing Explicit and Implicit VR LE, and one per
 * deflated or compressed syntax (one for all of them when that would pass 128 contexts), so an
 * instance may arrive as the peer holds it. Each is
 * written into q->out_dir and given to received; fn is told of every C-GET response. Errors
 * as for mira_dimse_find.
 */
MIRA_API bool mira_dimse_get(const char *host, int port, const mira_dimse_scu_options *opt,
                             const mira_dimse_qr_options *q, const mira_dataset *identifier,
                             mira_dimse_retrieve_fn fn, mira_dimse_received_fn received,
                             void *ctx, uint16_t *status, mira_error **err);

#ifdef __cplusplus
}
#endif
#endif
