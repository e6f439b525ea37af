/* Access to the HTTP server: bearer tokens, roles, sign-in, de-identified views, the audit. */
#ifndef MIRA_WEB_AUTH_H
#define MIRA_WEB_AUTH_H

#include "mira/accounts.h"
#include "web/web_int.h"

/* A server's access state (sign-in rate limits, the bound on password hashes at once). */
typedef struct mira__auth mira__auth;

/* archive and log are borrowed (log may be NULL). NULL without memory. */
mira__auth *mira__auth_new(mira_archive *archive, mira_log_fn log, void *log_ctx);
/* _free(NULL) is a no-op. */
void mira__auth_free(mira__auth *au);

/* What the access layer needs of a request (all borrowed). */
typedef struct mira__auth_request {
    const char *method;
    const char *target;        /* path and query as sent */
    const char *authorization; /* the Authorization header, or NULL */
    const char *peer;          /* "address:port" */
    const char *body;          /* a small request body (sign-in JSON), or NULL */
    size_t body_len;
    const char *content_type; /* of the body, or NULL */
} mira__auth_req;

typedef enum mira__auth_outcome {
    MIRA__AUTH_GO = 0,        /* a valid token of a role the route admits: route it */
    MIRA__AUTH_ANSWERED = 1,  /* the reply is made: send it, nothing else */
    MIRA__AUTH_READ_BODY = 2, /* a sign-in with its credentials in the body: read it with the
                               * mira__auth_signin_* consumer, whose finish makes the reply */
} mira__auth_outcome;

/*
 * Decide a request from its headers, before it is routed. GO: *who says whose token it is;
 * route it, then call mira__auth_audit. ANSWERED: r holds the whole answer:
 *  - GET /health (no token needed): 200 with the version;
 *  - POST /auth/token (no token needed): a new token for HTTP Basic credentials, 401 for wrong
 *    ones, 429 once a user or a peer has failed too often (bounded table; see auth.c);
 *  - GET /audit (admins): the audit log as JSON;
 *  - 401 with WWW-Authenticate: Bearer (RFC 6750) for a missing, malformed, unknown, expired or
 *    revoked token; 403 for a role the route refuses.
 * READ_BODY: POST /auth/token without an Authorization header (a JSON body).
 * Every answer given here except /health is written to the audit log.
 */
mira__auth_outcome mira__auth_request(mira__auth *au, const mira__auth_req *q,
                                      mira_principal *who, mira__http_reply *r);

/* The reader of a sign-in's body ({"username": ..., "password": ...}, at most 8 KiB): _begin
 * copies what it needs of q (NULL without memory); _feed takes each piece (false once it is too
 * large); _finish answers as mira__auth_request does for Basic credentials; _free wipes it. */
void *mira__auth_signin_begin(mira__auth *au, const mira__auth_req *q);
bool mira__auth_signin_feed(void *ctx, const uint8_t *p, size_t n);
void mira__auth_signin_finish(void *ctx, mira__http_reply *r);
void mira__auth_signin_free(void *ctx);

/*
 * Write a routed request's access to the audit log: who, method, path, the studies and series
 * of r, the peer, r's status. False if it could not be written: r is then replaced by a 503
 * (no patient data leaves without its record).
 */
bool mira__auth_audit(mira__auth *au, const mira__auth_req *q, const mira_principal *who,
                      mira__http_reply *r);

/*
 * A researcher's view of a search identifier: the attributes PS3.15 Table E.1-1 does not let
 * the Basic Profile with the Retain UIDs option keep are taken out of the return keys; a
 * matching key (a value given, in the query or inside a sequence item) on one of them is
 * refused: false, with a 403 in r naming it.
 */
bool mira__auth_deidentify_query(mira_dataset *identifier, mira__http_reply *r);

/* True if a researcher may receive tag (PS3.15 E.1-1 with Retain UIDs keeps it). */
bool mira__auth_researcher_may_see(mira_tag tag);

#endif
