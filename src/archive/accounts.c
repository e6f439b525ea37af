/* Accounts of an archive: users with Argon2id password hashes, bearer tokens, the audit log. */
#include "archive/archive_int.h"
#include "mira/accounts.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/*
 * Passwords: libsodium's crypto_pwhash_str_alg with Argon2id (RFC 9106) at its "interactive"
 * limits (2 passes over 64 MiB): about 0.1 s per hash on one core, the cost an attacker pays
 * for each guess of a stolen index. The string it makes is the PHC format
 * ($argon2id$v=19$m=65536,t=2,p=1$salt$hash) that other Argon2 implementations verify.
 *
 * Tokens: 32 bytes from getrandom, in base64url without padding. Only SHA-256 of the text is
 * stored: a token has 256 bits of entropy, so a fast hash is enough (nobody can guess one from
 * its hash), and the lookup is one indexed equality on the hash.
 */

static const char *const role_names[] = {"admin", "clinician", "researcher"};

const char *mira_role_name(mira_role role)
{
    return (unsigned)role < 3 ? role_names[role] : "";
}

bool mira_role_from_name(const char *name, mira_role *out)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, role_names[i]) == 0) {
            *out = (mira_role)i;
            return true;
        }
    return false;
}

bool mira_user_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@'))
            return false;
    }
    return true;
}

const char *mira_token_status_name(mira_token_status status)
{
    static const char *const names[] = {"valid", "malformed", "unknown", "expired", "revoked"};
    return (unsigned)status < 5 ? names[status] : "";
}

static bool check_name(const char *name, mira_error **err)
{
    if (mira_user_name_valid(name))
        return true;
    mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad user name",
                   "a user name is 1 to 64 ASCII letters, digits and . _ - @");
    return false;
}

static bool check_password(const char *password, mira_error **err)
{
    size_t n = password ? strlen(password) : 0;
    if (n >= MIRA_PASSWORD_MIN && n <= MIRA_PASSWORD_MAX)
        return true;
    mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad password",
                   "a password has %d to %d bytes (this one has %zu)", MIRA_PASSWORD_MIN,
                   MIRA_PASSWORD_MAX, n);
    return false;
}

static bool sodium_ready(mira_error **err)
{
    if (sodium_init() >= 0) /* thread-safe; 1 when done before */
        return true;
    mira_error_set(err, MIRA_ERR_IO, "libsodium failed", "libsodium could not be initialised");
    return false;
}

static bool hash_password(const char *password, char out[crypto_pwhash_STRBYTES],
                          mira_error **err)
{
    if (!sodium_ready(err))
        return false;
    if (crypto_pwhash_str_alg(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        mira_error_set(err, MIRA_ERR_NOMEM, "Password hashing failed",
                       "Argon2id could not get its %u MiB of memory",
                       (unsigned)(crypto_pwhash_MEMLIMIT_INTERACTIVE >> 20));
        return false;
    }
    return true;
}

static void sha256_hex(const char *text, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = 0;
}

static bool not_found(const char *name, mira_error **err)
{
    mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such user", "there is no user '%s'", name);
    return false;
}

/* ------------------------------------------------------------------ users */

bool mira_user_add(mira_archive *a, const char *name, mira_role role, const char *password,
                   mira_error **err)
{
    if (!check_name(name, err) || !check_password(password, err))
        return false;
    if ((unsigned)role > MIRA_ROLE_RESEARCHER) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad role", "role %d is not a role", (int)role);
        return false;
    }
    char hash[crypto_pwhash_STRBYTES];
    if (!hash_password(password, hash, err))
        return false;
    char now[32];
    mira__now(now);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    mira__dbval key = mira__db_text(name);
    int64_t pk = 0;
    bool exists = false;
    bool ok = db->ops->begin_write(db, err) &&
              mira__db_query_int(db, "SELECT pk FROM users WHERE name = ?", &key, 1, &pk, &exists,
                                 err);
    if (ok && exists) {
        mira_error_set(err, MIRA_ERR_CONFLICT, "User exists", "there is a user '%s' already",
                       name);
        ok = false;
    }
    if (ok) {
        mira__dbval p[5] = {mira__db_text(name), mira__db_text(mira_role_name(role)),
                            mira__db_text(hash), mira__db_text(now), mira__db_text(now)};
        ok = db->ops->query(db,
                            "INSERT INTO users (name, role, password_hash, created_at, updated_at)"
                            " VALUES (?, ?, ?, ?, ?)",
                            p, 5, NULL, NULL, NULL, err) &&
             mira__db_commit(db, err);
    }
    if (!ok)
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    sodium_memzero(hash, sizeof hash);
    return ok;
}

bool mira_user_set_password(mira_archive *a, const char *name, const char *password,
                            mira_error **err)
{
    if (!check_name(name, err) || !check_password(password, err))
        return false;
    char hash[crypto_pwhash_STRBYTES];
    if (!hash_password(password, hash, err))
        return false;
    char now[32];
    mira__now(now);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    mira__dbval p[3] = {mira__db_text(hash), mira__db_text(now), mira__db_text(name)};
    int64_t changes = 0;
    bool ok = db->ops->begin_write(db, err) &&
              db->ops->query(db, "UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
                             p, 3, NULL, NULL, &changes, err);
    if (ok && changes == 0)
        ok = not_found(name, err);
    /* a new password ends the sessions made with the old one */
    mira__dbval r[2] = {mira__db_text(now), mira__db_text(name)};
    if (ok)
        ok = db->ops->query(db,
                            "UPDATE tokens SET revoked_at = ? WHERE revoked_at IS NULL AND user_pk ="
                            " (SELECT pk FROM users WHERE name = ?)",
                            r, 2, NULL, NULL, NULL, err) &&
             mira__db_commit(db, err);
    if (!ok)
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    sodium_memzero(hash, sizeof hash);
    return ok;
}

bool mira_user_remove(mira_archive *a, const char *name, mira_error **err)
{
    if (!check_name(name, err))
        return false;
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    mira__dbval key = mira__db_text(name);
    int64_t changes = 0;
    bool ok = db->ops->begin_write(db, err) &&
              db->ops->query(db,
                             "DELETE FROM tokens WHERE user_pk IN (SELECT pk FROM users WHERE name"
                             " = ?)",
                             &key, 1, NULL, NULL, NULL, err) &&
              db->ops->query(db, "DELETE FROM users WHERE name = ?", &key, 1, NULL, NULL, &changes,
                             err);
    if (ok && changes == 0)
        ok = not_found(name, err);
    if (ok)
        ok = mira__db_commit(db, err);
    else
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    return ok;
}

typedef struct list_ctx {
    mira_user_fn fn;
    void *ctx;
} list_ctx;

static bool list_row(void *ctx, const mira__dbval *c, size_t n)
{
    list_ctx *l = ctx;
    mira_user_info u = {c[0].s, MIRA_ROLE_RESEARCHER, c[2].s, 0};
    mira_role_from_name(c[1].s, &u.role);
    u.tokens = c[3].type == MIRA__DB_INT ? (uint64_t)c[3].i
               : c[3].type == MIRA__DB_TEXT ? strtoull(c[3].s, NULL, 10)
                                            : 0;
    return l->fn(l->ctx, &u);
}

bool mira_user_list(mira_archive *a, mira_user_fn fn, void *ctx, mira_error **err)
{
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    list_ctx l = {fn, ctx};
    mira__dbval now = mira__db_int((int64_t)time(NULL));
    bool ok = mira__db_query(db,
                             "SELECT u.name, u.role, u.created_at,"
                             " (SELECT count(*) FROM tokens t WHERE t.user_pk = u.pk AND"
                             " t.revoked_at IS NULL AND t.expires_at > ?)"
                             " FROM users u ORDER BY u.name",
                             &now, 1, list_row, &l, err);
    mira__archive_db_release(a, db);
    return ok;
}

typedef struct user_row {
    bool found;
    mira_role role;
    char hash[crypto_pwhash_STRBYTES];
} user_row;

static bool take_user(void *ctx, const mira__dbval *c, size_t n)
{
    user_row *u = ctx;
    if (c[0].type == MIRA__DB_TEXT && strlen(c[0].s) < sizeof u->hash) {
        snprintf(u->hash, sizeof u->hash, "%s", c[0].s);
        u->found = mira_role_from_name(c[1].s, &u->role);
    }
    return false;
}

/* Verified in place of the hash of a user who does not exist, so that an unknown name costs
 * as much time as a wrong password (the limits of crypto_pwhash's interactive level). */
static const char no_user_hash[] =
    "$argon2id$v=19$m=65536,t=2,p=1$MbxoXxgYkdTo22/7oIJM3Q$klL5CK+7ws+//F1S25kOhqV2bGLSkiji1Vi5w2U/UTc";

bool mira_user_verify(mira_archive *a, const char *name, const char *password, bool *ok,
                      mira_role *role, mira_error **err)
{
    *ok = false;
    if (!sodium_ready(err))
        return false;
    user_row u;
    memset(&u, 0, sizeof u);
    if (mira_user_name_valid(name)) {
        mira__db *db = mira__archive_db_acquire(a, err);
        if (!db)
            return false;
        mira__dbval key = mira__db_text(name);
        bool q = mira__db_query(db, "SELECT password_hash, role FROM users WHERE name = ?", &key,
                                1, take_user, &u, err);
        mira__archive_db_release(a, db);
        if (!q)
            return false;
    }
    size_t plen = password ? strlen(password) : 0;
    bool right = crypto_pwhash_str_verify(u.found ? u.hash : no_user_hash, password ? password : "",
                                          plen) == 0;
    *ok = u.found && right && plen <= MIRA_PASSWORD_MAX;
    if (*ok && role)
        *role = u.role;
    sodium_memzero(&u, sizeof u);
    return true;
}

/* ------------------------------------------------------------------ tokens */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 32 bytes as 43 base64url characters (no padding). */
static void encode_token(const unsigned char raw[32], char out[MIRA_TOKEN_SIZE])
{
    size_t o = 0;
    for (size_t i = 0; i < 32; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16;
        if (i + 1 < 32)
            v |= (uint32_t)raw[i + 1] << 8;
        if (i + 2 < 32)
            v |= raw[i + 2];
        size_t chars = i + 2 < 32 ? 4 : 3; /* the last group holds 2 bytes: 3 characters */
        for (size_t k = 0; k < chars; k++)
            out[o++] = b64url[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = 0;
}

static bool token_form(const char *t)
{
    if (!t || strlen(t) != MIRA_TOKEN_SIZE - 1)
        return false;
    for (const char *p = t; *p; p++)
        if (!strchr(b64url, *p))
            return false;
    return true;
}

bool mira_token_new(mira_archive *a, const char *user, int64_t seconds,
                    char token[MIRA_TOKEN_SIZE], int64_t *expires_at, mira_error **err)
{
    if (!check_name(user, err))
        return false;
    if (seconds < 1 || seconds > INT64_C(100) * 365 * 86400) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad expiry",
                       "a token lives 1 second to 100 years, not %lld seconds", (long long)seconds);
        return false;
    }
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        mira_error_set(err, MIRA_ERR_IO, "No randomness", "getrandom failed for a token");
        return false;
    }
    char text[MIRA_TOKEN_SIZE], hash[65], now[32];
    encode_token(raw, text);
    sodium_memzero(raw, sizeof raw);
    sha256_hex(text, hash);
    mira__now(now);
    int64_t exp = (int64_t)time(NULL) + seconds;
    mira__dbval p[5] = {mira__db_text(hash), mira__db_text(now), mira__db_int(exp),
                        mira__db_text("api"), mira__db_text(user)};
    int64_t changes = 0;
    const char *sql = "INSERT INTO tokens (user_pk, hash, created_at, expires_at, source)"
                      " SELECT pk, ?, ?, ?, ? FROM users WHERE name = ?";
    if (!mira__archive_write_one(a, sql, p, 5, NULL, NULL, &changes, err))
        return false;
    if (changes == 0)
        return not_found(user, err);
    memcpy(token, text, MIRA_TOKEN_SIZE);
    sodium_memzero(text, sizeof text);
    if (expires_at)
        *expires_at = exp;
    return true;
}

typedef struct token_row {
    bool found, revoked;
    int64_t expires_at;
    char user[65];
    mira_role role;
} token_row;

static int64_t as_int(const mira__dbval *v)
{
    return v->type == MIRA__DB_INT ? v->i : v->type == MIRA__DB_TEXT ? strtoll(v->s, NULL, 10) : 0;
}

static bool take_token(void *ctx, const mira__dbval *c, size_t n)
{
    token_row *t = ctx;
    t->found = c[0].type == MIRA__DB_TEXT && mira_role_from_name(c[1].s, &t->role);
    if (t->found)
        snprintf(t->user, sizeof t->user, "%s", c[0].s);
    t->expires_at = as_int(&c[2]);
    t->revoked = c[3].type != MIRA__DB_NULL;
    return false;
}

bool mira_token_check(mira_archive *a, const char *token, mira_token_status *status,
                      mira_principal *who, mira_error **err)
{
    *status = MIRA_TOKEN_MALFORMED;
    if (!token_form(token))
        return true;
    char hash[65];
    sha256_hex(token, hash);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    token_row t;
    memset(&t, 0, sizeof t);
    mira__dbval key = mira__db_text(hash);
    bool ok = mira__db_query(db,
                             "SELECT u.name, u.role, t.expires_at, t.revoked_at FROM tokens t"
                             " JOIN users u ON u.pk = t.user_pk WHERE t.hash = ?",
                             &key, 1, take_token, &t, err);
    mira__archive_db_release(a, db);
    if (!ok)
        return false;
    if (!t.found)
        *status = MIRA_TOKEN_UNKNOWN;
    else if (t.revoked)
        *status = MIRA_TOKEN_REVOKED;
    else if (t.expires_at <= (int64_t)time(NULL))
        *status = MIRA_TOKEN_EXPIRED;
    else
        *status = MIRA_TOKEN_VALID;
    if (*status == MIRA_TOKEN_VALID && who) {
        memset(who, 0, sizeof *who);
        snprintf(who->user, sizeof who->user, "%s", t.user);
        who->role = t.role;
        who->expires_at = t.expires_at;
    }
    return true;
}

bool mira_token_revoke(mira_archive *a, const char *token, mira_error **err)
{
    char hash[65], now[32];
    if (!token_form(token)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad token",
                       "a token is 43 base64url characters");
        return false;
    }
    sha256_hex(token, hash);
    mira__now(now);
    mira__dbval p[2] = {mira__db_text(now), mira__db_text(hash)};
    int64_t changes = 0;
    const char *sql = "UPDATE tokens SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL";
    if (!mira__archive_write_one(a, sql, p, 2, NULL, NULL, &changes, err))
        return false;
    if (changes == 0) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such token",
                       "no token with this text is held (unknown, or revoked already)");
        return false;
    }
    return true;
}

bool mira_token_revoke_user(mira_archive *a, const char *user, uint64_t *count, mira_error **err)
{
    if (!check_name(user, err))
        return false;
    char now[32];
    mira__now(now);
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    mira__dbval key = mira__db_text(user);
    int64_t pk = 0, changes = 0;
    bool exists = false;
    bool ok = db->ops->begin_write(db, err) &&
              mira__db_query_int(db, "SELECT pk FROM users WHERE name = ?", &key, 1, &pk, &exists,
                                 err);
    if (ok && !exists)
        ok = not_found(user, err);
    mira__dbval p[2] = {mira__db_text(now), mira__db_int(pk)};
    if (ok)
        ok = db->ops->query(db, "UPDATE tokens SET revoked_at = ? WHERE user_pk = ? AND"
                                " revoked_at IS NULL",
                            p, 2, NULL, NULL, &changes, err) &&
             mira__db_commit(db, err);
    if (!ok)
        mira__db_rollback(db);
    mira__archive_db_release(a, db);
    if (ok && count)
        *count = (uint64_t)changes;
    return ok;
}

/* ------------------------------------------------------------------ the audit log */

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* An event waiting to be written, on its caller's stack until done. */
typedef struct mira__audit_wait {
    const mira_audit_event *e;
    char at[32];
    struct mira__audit_wait *next;
    bool done, ok; /* (under audit_lock) */
    mira_error *err;
} mira__audit_wait;

static bool audit_insert(mira__db *db, const mira__audit_wait *w, mira_error **err)
{
    const mira_audit_event *e = w->e;
    mira__dbval p[11] = {mira__db_text(w->at),       mira__db_text(nz(e->user)),
                         mira__db_text(nz(e->role)), mira__db_text(nz(e->event)),
                         mira__db_text(nz(e->method)), mira__db_text(nz(e->path)),
                         mira__db_text(nz(e->studies)), mira__db_text(nz(e->series)),
                         mira__db_text(nz(e->peer)), mira__db_int(e->status),
                         mira__db_text(nz(e->detail))};
    return db->ops->query(db,
                          "INSERT INTO audit (at, user_name, role, event, method, path, studies,"
                          " series, peer, status, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          p, 11, NULL, NULL, NULL, err);
}

/* Write a batch: one transaction for all; if that fails, each on its own, so that one bad
 * event fails alone. Sets each one's ok and err (not done: the caller does, under the lock). */
static void audit_write(mira_archive *a, mira__audit_wait *batch)
{
    mira_error *err = NULL;
    mira__db *db = mira__archive_db_acquire(a, &err);
    bool together = false;
    if (db && batch->next) {
        together = db->ops->begin_write(db, NULL);
        for (mira__audit_wait *w = batch; together && w; w = w->next)
            together = audit_insert(db, w, NULL);
        if (together)
            together = mira__db_commit(db, NULL);
        else
            mira__db_rollback(db);
    }
    for (mira__audit_wait *w = batch; w; w = w->next) {
        if (together)
            w->ok = true;
        else if (db) /* autocommit: one statement needs no transaction of its own */
            w->ok = audit_insert(db, w, &w->err);
        else if (err)
            mira_error_set(&w->err, mira_error_get_code(err), NULL, "%s",
                           mira_error_get_message(err));
    }
    mira_error_free(err);
    if (db)
        mira__archive_db_release(a, db);
}

/* Durable when it returns true, like every other write of the index; callers that arrive
 * while a batch is being written wait for the next one and share its sync (a request of the
 * HTTP server waits for its event before its answer goes out). */
bool mira_audit_append(mira_archive *a, const mira_audit_event *e, mira_error **err)
{
    mira__audit_wait w = {.e = e};
    mira__now(w.at);
    pthread_mutex_lock(&a->audit_lock);
    if (a->audit_tail)
        a->audit_tail->next = &w;
    else
        a->audit_head = &w;
    a->audit_tail = &w;
    while (!w.done) {
        if (a->audit_writing) {
            pthread_cond_wait(&a->audit_cond, &a->audit_lock);
            continue;
        }
        mira__audit_wait *batch = a->audit_head;
        a->audit_head = a->audit_tail = NULL;
        a->audit_writing = true;
        pthread_mutex_unlock(&a->audit_lock);
        audit_write(a, batch);
        pthread_mutex_lock(&a->audit_lock);
        for (mira__audit_wait *x = batch, *next; x; x = next) {
            next = x->next; /* (x may be gone once done is seen by its owner) */
            x->done = true;
        }
        a->audit_writing = false;
        pthread_cond_broadcast(&a->audit_cond);
    }
    pthread_mutex_unlock(&a->audit_lock);
    if (!w.ok) {
        if (err && w.err)
            *err = w.err;
        else
            mira_error_free(w.err);
        if (err && !*err)
            mira_error_set(err, MIRA_ERR_IO, NULL, "writing the audit log");
    }
    return w.ok;
}

typedef struct audit_ctx {
    mira_audit_fn fn;
    void *ctx;
} audit_ctx;

static bool audit_row(void *ctx, const mira__dbval *c, size_t n)
{
    audit_ctx *x = ctx;
    mira_audit_event e = {nz(c[0].s), nz(c[1].s), nz(c[2].s), nz(c[3].s), nz(c[4].s),
                          nz(c[5].s), nz(c[6].s), nz(c[7].s), nz(c[8].s), (int)as_int(&c[9]),
                          nz(c[10].s)};
    return x->fn(x->ctx, &e);
}

bool mira_audit_read(mira_archive *a, const mira_audit_filter *filter, mira_audit_fn fn,
                     void *ctx, mira_error **err)
{
    /* "SELECT ... WHERE" [since] [user] then the order: the latest `limit` rows, oldest first */
    char where[128] = "";
    mira__dbval p[3];
    size_t np = 0;
    if (filter && filter->since && *filter->since) {
        strcat(where, " AND at >= ?");
        p[np++] = mira__db_text(filter->since);
    }
    if (filter && filter->user) {
        strcat(where, " AND user_name = ?");
        p[np++] = mira__db_text(filter->user);
    }
    bool limited = filter && filter->limit;
    if (limited)
        p[np++] = mira__db_int((int64_t)(filter->limit > INT64_MAX ? INT64_MAX : filter->limit));
    char sql[768];
    snprintf(sql, sizeof sql,
             "%sSELECT at, user_name, role, event, method, path, studies, series, peer, status,"
             " detail, pk FROM audit WHERE 1 = 1%s%s",
             limited ? "SELECT * FROM (" : "", where,
             limited ? " ORDER BY pk DESC LIMIT ?) AS latest ORDER BY pk" : " ORDER BY pk");
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    audit_ctx x = {fn, ctx};
    bool ok = mira__db_query(db, sql, p, np, audit_row, &x, err);
    mira__archive_db_release(a, db);
    return ok;
}

void mira_audit_event_json(mira_json_writer *w, const mira_audit_event *e)
{
    const char *keys[] = {"at", "user", "role", "event", "method", "path", "studies",
                          "series", "peer", "detail"};
    const char *vals[] = {e->at, e->user, e->role, e->event, e->method, e->path, e->studies,
                          e->series, e->peer, e->detail};
    mira_json_begin_object(w);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        mira_json_key(w, keys[i]);
        mira_json_cstring(w, vals[i]);
    }
    mira_json_key(w, "status");
    mira_json_int(w, e->status);
    mira_json_end_object(w);
}
