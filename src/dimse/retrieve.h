/* The Retrieve SCP (C-MOVE, C-GET on the Patient and Study Root models). Internal. */
#ifndef MIRA_DIMSE_RETRIEVE_H
#define MIRA_DIMSE_RETRIEVE_H

#include "dimse_int.h"

enum {
    MIRA__C_GET_RQ = 0x0010,
    MIRA__C_GET_RSP = 0x8010,
    MIRA__C_MOVE_RQ = 0x0021,
    MIRA__C_MOVE_RSP = 0x8021,
};

/* The Patient Root and Study Root MOVE and GET models. */
bool mira__is_retrieve_sop_class(const char *uid);
/* The SCP role to grant a requestor asking it for uid (C-GET: storage classes only). */
bool mira__retrieve_scp_role(const char *uid, bool requested);

/* Serve a C-MOVE-RQ or C-GET-RQ (field) whose command set is cmd: the identifier selects
 * instances through mira_archive_find; they go to the move destination of opt->peers (a new
 * association) or back over this one (C-GET, on the storage contexts whose SCP role the
 * requestor took), pending responses between sub-operations, C-CANCEL honoured between them.
 * False when the association ended. */
bool mira__serve_retrieve(mira_dimse_server *s, const mira_dimse_server_options *opt,
                          mira_archive *archive, mira__association *as, uint64_t assoc_id,
                          uint8_t pctx, const mira_dataset *cmd, uint16_t field, bool has_data);

#endif
