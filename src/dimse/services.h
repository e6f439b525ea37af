/* The DIMSE services of the SCP: Verification and Storage. Internal. */
#ifndef MIRA_DIMSE_SERVICES_H
#define MIRA_DIMSE_SERVICES_H

#include "dimse_int.h"

#include <stdatomic.h>

/* What the Storage SCP shares between its associations. */
typedef struct mira__store_ctx {
    mira_archive *archive; /* borrowed */
    char *spool;           /* ARCHIVE/spool: instances being received */
    atomic_uint_fast64_t seq;
} mira__store_ctx;

bool mira__store_init(mira__store_ctx *st, mira_archive *a, mira_error **err);
void mira__store_cleanup(mira__store_ctx *st);

/* True for the SOP classes of the Storage Service Class in the UID registry. */
bool mira__is_storage_sop_class(const char *uid);

/* Each handles one request whose command set is cmd; false when the association ended. */
bool mira__serve_echo(mira_dimse_server *s, mira__association *as, uint8_t pctx,
                      const mira_dataset *cmd, bool has_data);
bool mira__serve_store(mira_dimse_server *s, mira__store_ctx *st, mira__association *as,
                       uint64_t assoc_id, uint8_t pctx, const mira_dataset *cmd, bool has_data);
/* The Query/Retrieve Information Models mira answers C-FIND on (Patient Root, Study Root). */
bool mira__is_find_sop_class(const char *uid);
bool mira__serve_find(mira_dimse_server *s, mira__store_ctx *st, mira__association *as,
                      uint64_t assoc_id, uint8_t pctx, const mira_dataset *cmd, bool has_data);
bool mira__serve_unsupported(mira_dimse_server *s, mira__association *as, uint8_t pctx,
                             const mira_dataset *cmd, uint16_t field, bool has_data);

/* Serve one request that arrived on as (its command set cmd, on context pctx; its data set,
 * if any, not received yet): the dispatch of the server's loop, also used by a service that
 * waits for a response of its own meanwhile (commitment.c). A response that is not awaited
 * aborts the association. False when the association ended. */
bool mira__serve_request(mira_dimse_server *s, mira__association *as, uint64_t assoc_id,
                         uint8_t pctx, const mira_dataset *cmd);

/* Our AE title (borrowed). */
const char *mira__server_ae_title(const mira_dimse_server *s);

void mira__log(mira_dimse_server *s, mira_log_level level, const char *fmt, ...)
    MIRA_PRINTF(3, 4);

#endif
