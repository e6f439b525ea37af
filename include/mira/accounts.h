/* mira accounts: the users of an archive, their bearer tokens, and the append-only audit log. */
#ifndef MIRA_ACCOUNTS_H
#define MIRA_ACCOUNTS_H

#include "mira/archive.h"
#include "mira/core.h"
#include "mira/json.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Users, tokens and the audit log live in the archive's index (SQLite or PostgreSQL), so that
 * every `mira serve` on one index shares them. Passwords are kept only as Argon2id hashes
 * (libsodium's crypto_pwhash_str: PHC string format, random salt); tokens only as the SHA-256
 * of their text. Nothing here logs or keeps a password or a token in clear.
 */

typedef enum mira_role {
    MIRA_ROLE_ADMIN = 0,      /* everything, including the audit log */
    MIRA_ROLE_CLINICIAN = 1,  /* patient data as stored */
    MIRA_ROLE_RESEARCHER = 2, /* de-identified data only */
} mira_role;

/* "admin", "clinician", "researcher". */
MIRA_API const char *mira_role_name(mira_role role);
/* From its name; false if none. */
MIRA_API bool mira_role_from_name(const char *name, mira_role *out);

/* True if name may name a user: 1 to 64 ASCII letters, digits and . _ - @. */
MIRA_API bool mira_user_name_valid(const char *name);

/* Passwords: 8 to 1024 bytes. */
#define MIRA_PASSWORD_MIN 8
#define MIRA_PASSWORD_MAX 1024

/*
 * Add a user with a password (hashed here with Argon2id; the text is not kept). Fails with
 * MIRA_ERR_ARGUMENT for a bad name or password, MIRA_ERR_CONFLICT if the user exists.
 */
MIRA_API bool mira_user_add(mira_archive *a, const char *name, mira_role role,
                            const char *password, mira_error **err);
/* Change a user's password; every token the user holds is revoked. MIRA_ERR_NOT_FOUND if
 * there is no such user. */
MIRA_API bool mira_user_set_password(mira_archive *a, const char *name, const char *password,
                                     mira_error **err);
/* Remove a user and its tokens (the audit log keeps its name). MIRA_ERR_NOT_FOUND if none. */
MIRA_API bool mira_user_remove(mira_archive *a, const char *name, mira_error **err);

/* A user as listed (all borrowed for the call). */
typedef struct mira_user_info {
    const char *name;
    mira_role role;
    const char *created_at; /* UTC, ISO 8601 */
    uint64_t tokens;        /* tokens neither expired nor revoked */
} mira_user_info;

typedef bool (*mira_user_fn)(void *ctx, const mira_user_info *user);
/* Every user, by name. */
MIRA_API bool mira_user_list(mira_archive *a, mira_user_fn fn, void *ctx, mira_error **err);

/*
 * Check a user's password: *ok tells whether name and password are right (a wrong password
 * and an unknown user take the same time and give the same answer); *role (may be NULL)
 * receives the role when they are. Returns false only when the check could not be made.
 */
MIRA_API bool mira_user_verify(mira_archive *a, const char *name, const char *password, bool *ok,
                               mira_role *role, mira_error **err);

/* ------------------------------------------------------------------ bearer tokens */

/* A token's text: 256 random bits in base64url without padding (43 characters) + NUL. */
#define MIRA_TOKEN_SIZE 44

/*
 * Make a new token for a user, valid for `seconds` (at least 1): its text goes to token (the
 * only copy: the index keeps its SHA-256), its expiry (Unix seconds) to *expires_at (may be
 * NULL). MIRA_ERR_NOT_FOUND if there is no such user.
 */
MIRA_API bool mira_token_new(mira_archive *a, const char *user, int64_t seconds,
                             char token[MIRA_TOKEN_SIZE], int64_t *expires_at, mira_error **err);

typedef enum mira_token_status {
    MIRA_TOKEN_VALID = 0,
    MIRA_TOKEN_MALFORMED = 1, /* not the form of a token */
    MIRA_TOKEN_UNKNOWN = 2,   /* never issued, or its user was removed */
    MIRA_TOKEN_EXPIRED = 3,
    MIRA_TOKEN_REVOKED = 4,
} mira_token_status;

/* "valid", "malformed", "unknown", "expired", "revoked". */
MIRA_API const char *mira_token_status_name(mira_token_status status);

/* Who a valid token speaks for. */
typedef struct mira_principal {
    char user[65];
    mira_role role;
    int64_t expires_at; /* Unix seconds */
} mira_principal;

/*
 * Look a token up (by its SHA-256: one indexed query). *status says what it is; *who (may be
 * NULL) is filled for a valid one. Returns false only when the lookup could not be made.
 */
MIRA_API bool mira_token_check(mira_archive *a, const char *token, mira_token_status *status,
                               mira_principal *who, mira_error **err);
/* Revoke one token (by its text). MIRA_ERR_NOT_FOUND if no such token is valid. */
MIRA_API bool mira_token_revoke(mira_archive *a, const char *token, mira_error **err);
/* Revoke every token of a user; *count (may be NULL) receives how many. MIRA_ERR_NOT_FOUND if
 * there is no such user. */
MIRA_API bool mira_token_revoke_user(mira_archive *a, const char *user, uint64_t *count,
                                     mira_error **err);

/* ------------------------------------------------------------------ the audit log */

/*
 * One event of the audit log: who (the user, "" when unknown), from where (the peer address),
 * what (the event kind, the method and path, the studies and series touched) and the outcome
 * (an HTTP status). The index refuses UPDATE and DELETE on the table (triggers), so rows can
 * only be added. All strings borrowed; NULL is stored as empty.
 */
typedef struct mira_audit_event {
    const char *at;     /* UTC, ISO 8601; filled by the archive (ignored when appending) */
    const char *user;   /* user name, "" when not known */
    const char *role;   /* role name, "" when not known */
    const char *event;  /* "auth.password", "auth.token", "access" */
    const char *method; /* HTTP method */
    const char *path;   /* path of the request (never its query: it may hold names) */
    const char *studies; /* Study Instance UIDs touched, separated by '\\' */
    const char *series;  /* Series Instance UIDs touched, separated by '\\' */
    const char *peer;    /* address:port of the client */
    int status;          /* HTTP status of the answer */
    const char *detail;  /* why a request was refused, or "" */
} mira_audit_event;

/* Append an event (one INSERT, durable when it returns). */
MIRA_API bool mira_audit_append(mira_archive *a, const mira_audit_event *e, mira_error **err);

typedef struct mira_audit_filter {
    const char *since; /* NULL: all; else events at or after this UTC time (ISO 8601 prefix:
                        * "2026-01-31", "2026-01-31T12:00") */
    const char *user;  /* NULL: every user */
    uint64_t limit;    /* 0: no limit; else the latest this many */
} mira_audit_filter;

typedef bool (*mira_audit_fn)(void *ctx, const mira_audit_event *e);
/* The events that pass the filter (NULL: all), oldest first. */
MIRA_API bool mira_audit_read(mira_archive *a, const mira_audit_filter *filter, mira_audit_fn fn,
                              void *ctx, mira_error **err);
/* An event as one JSON object into w: its text fields by name ("at", "user", "role",
 * "event", "method", "path", "studies", "series", "peer", "detail") and "status". */
MIRA_API void mira_audit_event_json(mira_json_writer *w, const mira_audit_event *e);

#ifdef __cplusplus
}
#endif

#endif
