/* Access control of the DIMSE SCP: calling AE titles, addresses, user identities and the
 * services each may use. Internal. */
#ifndef MIRA_DIMSE_ACCESS_H
#define MIRA_DIMSE_ACCESS_H

#include "dimse_int.h"

/* The rules and users of a server's options (copied). */
typedef struct mira__access mira__access;

/* NULL with err unset when the options configure neither rules nor users (everything is
 * allowed); NULL with err set on a bad rule or user (MIRA_ERR_ARGUMENT) or no memory. */
mira__access *mira__access_new(const mira_dimse_server_options *opt, mira_error **err);
void mira__access_free(mira__access *a);

/* The decision on an A-ASSOCIATE-RQ from peer ("ADDRESS:PORT"): true with *permissions (the
 * MIRA_DIMSE_PERMIT_* bits of the association), or false with the A-ASSOCIATE-RJ reason
 * (result 1, source 1: 3 calling AE title not recognized, 1 no reason given for a user
 * identity refused) and why, for the log. a NULL: everything is permitted. */
bool mira__access_associate(const mira__access *a, const char *peer, const mira__assoc *rq,
                            unsigned *permissions, uint8_t *reason, char *why, size_t n);

/* The permission a presentation context of abstract syntax uid needs (0: none we know of, left
 * to the services to refuse). scp_role: the requestor asked for the SCP role of this SOP class
 * (a storage context it receives C-GET results on). */
unsigned mira__access_needed(const char *uid, bool scp_role);

/* The name of one permission bit ("store"), for the log. */
const char *mira__access_name(unsigned bit);

#endif
