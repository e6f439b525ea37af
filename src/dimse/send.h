/* Sending instances with C-STORE (PS3.4 B, PS3.7 9.1.1): what mira send, C-MOVE and C-GET
 * share. Internal. */
#ifndef MIRA_DIMSE_SEND_H
#define MIRA_DIMSE_SEND_H

#include "dimse_int.h"

/* An instance to send: its file and what its header says. */
typedef struct mira__send_item {
    char *path;           /* owned */
    mira__uid sop_class;  /* "" when the file could not be read */
    mira__uid sop_instance;
    mira__uid ts;         /* the syntax its data set is in */
    bool clean;           /* read without warnings: its bytes can be sent as they are */
    char error[200];      /* why it cannot be sent ("" if it can) */
} mira__send_item;

/* Read a file's header into it (path copied). False (it->error set, the item still usable for
 * reporting) if it is not a DICOM file with a SOP class and instance; false with
 * MIRA_ERR_NOMEM only when err says so. */
bool mira__send_item_init(mira__send_item *it, const char *path);
void mira__send_item_cleanup(mira__send_item *it);

/* Propose presentation contexts in rq for the items of idx (indexes into items, n of them): one
 * per distinct SOP class and transfer syntax proposing that syntax alone, and one per SOP
 * class proposing Explicit VR LE and Implicit VR LE (at most 128 contexts). *nproposed
 * receives how many of idx (the first ones, after they are reordered) are covered; the rest
 * need another association. */
bool mira__send_propose(mira__assoc *rq, const mira__send_item *items, size_t *idx, size_t n,
                        size_t *nproposed);

/* The accepted presentation context to send an item on: one whose syntax is the item's own,
 * else one for its SOP class in a syntax mira can produce (native, or an encoding mira has).
 * scp_role: only contexts on which the association granted us the SCU role of storage as an
 * acceptor (C-GET: the requestor is the SCP). 0 if none. */
uint8_t mira__send_context(const mira__association *as, const mira__send_item *it,
                           bool scp_role);

/* Told of a command that arrives on the association while waiting for a C-STORE-RSP (on
 * C-GET, a C-CANCEL-RQ); false ends the wait (the association is aborted). */
typedef bool (*mira__send_other_fn)(void *ctx, uint8_t pctx, const mira_dataset *cmd);

typedef struct mira__send_outcome {
    bool responded;      /* a C-STORE-RSP came (status holds its status) */
    uint16_t status;
    bool transcoded;
    mira__uid sent_ts;   /* the syntax it went in ("" if not sent) */
    char reason[200];    /* the response's Error Comment, or why it was not sent */
} mira__send_outcome;

/*
 * Send one instance on context pctx (C-STORE-RQ with message_id; move_ae non-NULL adds the
 * Move Originator AE title and message ID) and wait for its response. Returns false when the
 * association ended (out->reason says why); true otherwise, out->responded telling whether a
 * response came (it did not when the instance could not be read or transcoded).
 */
bool mira__send_store(mira__association *as, uint8_t pctx, const mira__send_item *it,
                      uint16_t message_id, const char *move_ae, uint16_t move_id,
                      mira__send_other_fn other, void *other_ctx, mira__send_outcome *out);

/* A C-STORE status that means success or warning (PS3.4 B.2.3: 0x0000, 0xB000, 0xB006,
 * 0xB007, and 0x0001 for a warning some peers send). */
bool mira__store_status_ok(uint16_t status);
bool mira__store_status_warning(uint16_t status);

#endif
