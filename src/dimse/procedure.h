/* The DIMSE services of the scheduled workflow: Modality Worklist C-FIND (PS3.4 K), MPPS
 * N-CREATE / N-SET (PS3.4 F) and Storage Commitment Push (PS3.4 J). Internal. */
#ifndef MIRA_DIMSE_PROCEDURE_H
#define MIRA_DIMSE_PROCEDURE_H

#include "dimse_int.h"
#include "services.h"

#include "core/buf.h"

#define MIRA__MWL_FIND_UID "1.2.840.10008.5.1.4.31"
#define MIRA__MPPS_UID "1.2.840.10008.3.1.2.3.3"
#define MIRA__COMMITMENT_UID "1.2.840.10008.1.20.1"
#define MIRA__COMMITMENT_INSTANCE "1.2.840.10008.1.20.1.1"

/* True for the SOP classes of this file's services (answered when there is an archive). */
bool mira__is_procedure_sop_class(const char *uid);

/* Modality Worklist C-FIND (the context's SOP class is the MWL model). */
bool mira__serve_worklist_find(mira_dimse_server *s, mira__association *as, uint64_t assoc_id,
                               uint8_t pctx, const mira_dataset *cmd, bool has_data);
/* MPPS N-CREATE and N-SET. */
bool mira__serve_mpps(mira_dimse_server *s, mira__association *as, uint64_t assoc_id,
                      uint8_t pctx, const mira_dataset *cmd, uint16_t field, bool has_data);
/* Storage Commitment N-ACTION, then its N-EVENT-REPORT (sent at once, or, when another
 * report of ours is outstanding on the association, after it). */
bool mira__serve_commitment(mira_dimse_server *s, mira__association *as, uint64_t assoc_id,
                            uint8_t pctx, const mira_dataset *cmd, bool has_data);

/* The retry of Storage Commitment reports not delivered (commitment.c): one thread of the
 * server's, started by mira_dimse_server_run and ended by its stop flag. */
typedef struct mira__report_retry mira__report_retry;
/* Its settings from o (the delays copied); NULL with err on a bad setting or out of memory. */
mira__report_retry *mira__report_retry_new(mira_dimse_server *s,
                                           const mira_dimse_server_options *o, mira_error **err);
bool mira__report_retry_start(mira__report_retry *r, mira_error **err);
/* Wait for the thread to end, once the server's stop flag is set (NULL: a no-op). */
void mira__report_retry_join(mira__report_retry *r);
void mira__report_retry_free(mira__report_retry *r);
/* The server's (NULL without an archive), and the flag mira_dimse_server_stop sets. */
mira__report_retry *mira__server_report_retry(const mira_dimse_server *s);
const atomic_bool *mira__server_stop_flag(const mira_dimse_server *s);

/* ------------------------------------------------------------------ shared (nservice.c) */

/* The options the server runs with (borrowed). */
const mira_dimse_server_options *mira__server_options(const mira_dimse_server *s);

/* Receive the data set after a command (at most max bytes) and read it in the context's
 * syntax. NULL with *ended when the association ended; NULL with why filled when it cannot be
 * read (too long, malformed, a syntax we do not read). */
mira_file *mira__recv_dataset(mira__association *as, uint8_t pctx, size_t max, bool *ended,
                              char *why, size_t n);
/* Encode ds in the context's transfer syntax. */
bool mira__encode_for_context(const mira__association *as, uint8_t pctx, const mira_dataset *ds,
                              mira__buf *b);
/* A response command set to rq: field, status, message ID responded to, the Affected SOP Class
 * (the request's affected or requested one) and Instance (given, or the request's), an Error
 * Comment if comment is not empty, no data set. */
mira_dataset *mira__n_response(const mira_dataset *rq, uint16_t field, uint16_t status,
                               const char *instance, const char *comment);
/* Send a command (and ds encoded in the context's syntax, if not NULL); aborts on failure to
 * build. False when the association ended. */
bool mira__send_with(mira__association *as, uint8_t pctx, mira_dataset *cmd,
                     const mira_dataset *ds);

#endif
