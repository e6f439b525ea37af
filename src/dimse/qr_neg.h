/* Query/Retrieve extended negotiation (PS3.4 C.5) and the identifier rules it relaxes. Internal. */
#ifndef MIRA_DIMSE_QR_NEG_H
#define MIRA_DIMSE_QR_NEG_H

#include "dimse_int.h"

/* The fields of the Q/R sub-items (PS3.4 C.5.1.1, C.5.2.1, C.5.3.1), numbered from 1 as the
 * standard does. */
enum {
    MIRA__QR_RELATIONAL = 1, /* relational queries (FIND), relational retrieval (MOVE, GET) */
    MIRA__QR_DATETIME = 2,   /* FIND: combined date-time matching */
};

/* Whether an accepted presentation context of ac carries sop_class (as rq proposed it). */
bool mira__assoc_class_accepted(const mira__assoc *rq, const mira__assoc *ac,
                                const char *sop_class);
/* Whether ac answers an extended negotiation sub-item for sop_class already. */
bool mira__assoc_ext_answered(const mira__assoc *ac, const char *sop_class);

/*
 * Answer the SOP Class Extended Negotiation sub-items (PS3.7 D.3.3.5) that rq proposes for
 * the Patient Root and Study Root FIND, MOVE and GET models, into ac: once per SOP class, only
 * for a class some accepted presentation context of ac carries, never longer than what was
 * proposed. FIND: relational queries and combined date-time matching are 1 where requested;
 * fuzzy semantic matching, timezone adjustment and enhanced multi-frame conversion 0. MOVE,
 * GET: relational retrieval 1 where requested, enhanced multi-frame conversion 0. False on
 * out of memory.
 */
bool mira__qr_ext_negotiate(const mira__assoc *rq, mira__assoc *ac);

/* Whether field (MIRA__QR_*) of the extended negotiation answered for sop_class on this
 * association is 1 (false when nothing was answered). */
bool mira__qr_ext_agreed(const mira__association *as, const char *sop_class, size_t field);

/*
 * The baseline (hierarchical) rules for an identifier at level of the Patient Root model (or
 * of the Study Root one: study_root): a single value (no list, no wild card) in the unique key
 * of each level above (PS3.4 C.4.1.2.1, C.4.2.2.1); for a C-FIND (find), no matching key of a
 * level above but those unique keys (empty keys, which are only returned, are let through).
 * False when they are broken, with the reason in why.
 */
bool mira__qr_hierarchical(const mira_dataset *ident, mira_level level, bool study_root,
                           bool find, char *why, size_t n);

#endif
