/* mira DIMSE: DICOM networking (PS3.7, PS3.8): the SCP of `mira serve` and SCU calls. */
#ifndef MIRA_DIMSE_H
#define MIRA_DIMSE_H

#include "mira/archive.h"
#include "mira/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Log levels of the messages a server reports. */
typedef enum mira_log_level {
    MIRA_LOG_INFO = 0,
    MIRA_LOG_WARNING = 1,
    MIRA_LOG_ERROR = 2,
} mira_log_level;

/* Told of each event worth logging (one line, borrowed). Called from the server's threads,
 * several at once: it must be thread-safe. */
typedef void (*mira_log_fn)(void *ctx, mira_log_level level, const char *message);

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
} mira_dimse_server_options;

MIRA_API void mira_dimse_server_options_init(mira_dimse_server_options *opt);

typedef struct mira_dimse_server mira_dimse_server;

/* Listen (the socket is bound on return, so the port can be told to peers). The options'
 * strings are copied; the archive is borrowed and must outlive the server. */
MIRA_API mira_dimse_server *mira_dimse_server_new(const mira_dimse_server_options *opt,
                                                  mira_error **err);
/* The port listened on. */
MIRA_API int mira_dimse_server_port(const mira_dimse_server *s);
/* Serve until mira_dimse_server_stop: a thread per association. Returns when every
 * association has ended. */
MIRA_API bool mira_dimse_server_run(mira_dimse_server *s, mira_error **err);
/* Ask a running server to stop (async-signal-safe: may be called from a signal handler).
 * Associations in progress are aborted within a fraction of a second. */
MIRA_API void mira_dimse_server_stop(mira_dimse_server *s);
/* _free(NULL) is a no-op. Not while mira_dimse_server_run runs. */
MIRA_API void mira_dimse_server_free(mira_dimse_server *s);

/* ------------------------------------------------------------------ SCU */

typedef struct mira_dimse_scu_options {
    const char *calling_ae; /* default "MIRA" */
    const char *called_ae;  /* default "ANY-SCP" */
    int timeout_seconds;    /* for connecting and for each answer (default 30) */
    uint32_t max_pdu;       /* the largest P-DATA-TF we take (default 262144) */
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

#ifdef __cplusplus
}
#endif
#endif
