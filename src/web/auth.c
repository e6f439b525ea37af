/* Access to the HTTP server: bearer tokens, roles, sign-in, de-identified views, the audit. */
#include "web/auth.h"

#include "core/base64.h"
#include "dicom/deid_int.h"
#include "mira/json.h"
#include "net/net.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/*
 * Every route but GET /health, POST /auth/token, GET /api/openapi.json and the page's files
 * takes `Authorization: Bearer TOKEN` (RFC 6750 2.1). A token is checked by one indexed query on its SHA-256 (mira_token_check);
 * nothing is cached, so a revocation holds from the next request on, on every server sharing
 * the index.
 *
 * Roles by route: /dicomweb GET and HEAD for every role (researchers through the
 * de-identified view: searches only), other methods there (STOW-RS) for admins and clinicians,
 * /audit for admins, /api/ as api.c decides per resource.
 *
 * Sign-in (POST /auth/token) costs an Argon2id verification (64 MiB, ~0.1 s): at most
 * HASHES_AT_ONCE run at once, so that a burst of sign-ins cannot take the server's memory
 * (64 connections would want 4 GiB). Failures are counted per (user, peer address) and per
 * peer address in a fixed table of LIMIT_SLOTS entries (the oldest entry is reused when it is
 * full): past LIMIT_USER failures for a pair, or LIMIT_PEER for an address, within
 * LIMIT_WINDOW_MS, sign-ins from there are answered 429 without a check until the window ends.
 * A success clears the pair's count. The table is bounded, so an attacker who fills it with
 * fresh names only resets the counts of others: the limit is a brake, not a lock-out.
 */

#define HASHES_AT_ONCE 2
#define LIMIT_SLOTS 256
#define LIMIT_WINDOW_MS (15 * 60 * 1000)
#define LIMIT_USER 5
#define LIMIT_PEER 20
#define TOKEN_SECONDS (8 * 3600) /* of a token made by POST /auth/token */
#define AUDIT_DEFAULT_LIMIT 1000
#define AUDIT_MAX_LIMIT 100000

typedef struct limit_slot {
    char key[160]; /* "u USER PEER" or "p PEER"; "" free */
    int fails;
    int64_t since_ms; /* start of the window */
} limit_slot;

struct mira__auth {
    mira_archive *archive;
    mira_log_fn log;
    void *log_ctx;
    pthread_mutex_t lock;
    pthread_cond_t hash_done;
    int hashing;
    limit_slot slots[LIMIT_SLOTS];
};

mira__auth *mira__auth_new(mira_archive *archive, mira_log_fn log, void *log_ctx)
{
    mira__auth *au = mira_calloc(1, sizeof *au);
    if (!au)
        return NULL;
    au->archive = archive;
    au->log = log;
    au->log_ctx = log_ctx;
    pthread_mutex_init(&au->lock, NULL);
    pthread_cond_init(&au->hash_done, NULL);
    return au;
}

void mira__auth_free(mira__auth *au)
{
    if (!au)
        return;
    pthread_mutex_destroy(&au->lock);
    pthread_cond_destroy(&au->hash_done);
    mira_free(au);
}

static void logf_warning(mira__auth *au, const char *what, mira_error *err)
{
    if (au->log) {
        char line[600];
        snprintf(line, sizeof line, "http: %s: %s", what,
                 err ? mira_error_get_message(err) : "failed");
        au->log(au->log_ctx, MIRA_LOG_WARNING, line);
    }
}

/* ------------------------------------------------------------------ paths */

/* The path of a target (up to '?'), and whether it is p exactly. */
static size_t path_len(const char *target)
{
    return strcspn(target, "?");
}

static bool path_is(const char *target, const char *p)
{
    size_t n = strlen(p);
    return path_len(target) == n && memcmp(target, p, n) == 0;
}

/* /api/jobs or /api/jobs/{id}: the job routes, which decide roles themselves (api.c). */
static bool jobs_path(const char *target)
{
    size_t n = path_len(target);
    if (n < 9 || memcmp(target, "/api/jobs", 9) != 0)
        return false;
    if (n == 9)
        return true;
    if (target[9] != '/')
        return false;
    return memchr(target + 10, '/', n - 10) == NULL;
}

/* The path as the audit keeps it: without the query (it may hold names). */
static void path_of(const char *target, char *out, size_t cap)
{
    size_t n = path_len(target);
    snprintf(out, cap, "%.*s", (int)(n < cap - 1 ? n : cap - 1), target);
}

/* The peer's address without its port, for the rate limits. */
static void peer_host(const char *peer, char *out, size_t cap)
{
    const char *colon = strrchr(peer, ':');
    size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
    snprintf(out, cap, "%.*s", (int)(n < cap - 1 ? n : cap - 1), peer);
}

/* ------------------------------------------------------------------ replies */

static void set_authenticate(mira__http_reply *r, const char *value)
{
    mira_free(r->authenticate);
    r->authenticate = mira_strdup(value);
}

/* 401 with WWW-Authenticate: Bearer (RFC 6750 3: no error attribute when no token was sent). */
static void unauthorized(mira__http_reply *r, const char *error, const char *description)
{
    char v[256];
    if (error)
        snprintf(v, sizeof v, "Bearer realm=\"mira\", error=\"%s\", error_description=\"%s\"",
                 error, description);
    else
        snprintf(v, sizeof v, "Bearer realm=\"mira\"");
    mira__http_reply_error(r, 401, "%s", description);
    set_authenticate(r, v);
}

static void audit(mira__auth *au, const mira__auth_req *q, const char *event,
                  const char *user, const char *role, int status, const char *detail)
{
    char path[512];
    path_of(q->target, path, sizeof path);
    mira_audit_event e = {NULL, user, role, event, q->method, path, "", "", q->peer, status,
                          detail};
    mira_error *err = NULL;
    if (!mira_audit_append(au->archive, &e, &err))
        logf_warning(au, "the audit log could not be written", err);
    mira_error_free(err);
}

/* ------------------------------------------------------------------ sign-in */

static limit_slot *slot_for(mira__auth *au, const char *key, int64_t now, bool make)
{
    limit_slot *oldest = &au->slots[0];
    for (size_t i = 0; i < LIMIT_SLOTS; i++) {
        limit_slot *s = &au->slots[i];
        if (s->key[0] && now - s->since_ms >= LIMIT_WINDOW_MS)
            s->key[0] = 0; /* its window is over */
        if (s->key[0] && strcmp(s->key, key) == 0)
            return s;
        if (!s->key[0] || (oldest->key[0] && s->since_ms < oldest->since_ms))
            oldest = s;
    }
    if (!make)
        return NULL;
    snprintf(oldest->key, sizeof oldest->key, "%s", key);
    oldest->fails = 0;
    oldest->since_ms = now;
    return oldest;
}

/* Seconds until a blocked user or peer may try again; 0 if it may now. */
static int blocked_for(mira__auth *au, const char *ukey, const char *pkey)
{
    int64_t now = mira__now_ms();
    pthread_mutex_lock(&au->lock);
    int64_t until = 0;
    limit_slot *u = slot_for(au, ukey, now, false);
    if (u && u->fails >= LIMIT_USER)
        until = u->since_ms + LIMIT_WINDOW_MS;
    limit_slot *p = slot_for(au, pkey, now, false);
    if (p && p->fails >= LIMIT_PEER && p->since_ms + LIMIT_WINDOW_MS > until)
        until = p->since_ms + LIMIT_WINDOW_MS;
    pthread_mutex_unlock(&au->lock);
    return until > now ? (int)((until - now + 999) / 1000) : 0;
}

static void count_failure(mira__auth *au, const char *ukey, const char *pkey)
{
    int64_t now = mira__now_ms();
    pthread_mutex_lock(&au->lock);
    slot_for(au, ukey, now, true)->fails++;
    slot_for(au, pkey, now, true)->fails++;
    pthread_mutex_unlock(&au->lock);
}

static void clear_failures(mira__auth *au, const char *ukey)
{
    pthread_mutex_lock(&au->lock);
    limit_slot *u = slot_for(au, ukey, mira__now_ms(), false);
    if (u)
        u->key[0] = 0;
    pthread_mutex_unlock(&au->lock);
}

/* mira_user_verify with at most HASHES_AT_ONCE verifications running. */
static bool verify_gated(mira__auth *au, const char *user, const char *password, bool *ok,
                         mira_role *role, mira_error **err)
{
    pthread_mutex_lock(&au->lock);
    while (au->hashing >= HASHES_AT_ONCE)
        pthread_cond_wait(&au->hash_done, &au->lock);
    au->hashing++;
    pthread_mutex_unlock(&au->lock);
    bool done = mira_user_verify(au->archive, user, password, ok, role, err);
    pthread_mutex_lock(&au->lock);
    au->hashing--;
    pthread_cond_signal(&au->hash_done);
    pthread_mutex_unlock(&au->lock);
    return done;
}

/* Credentials from HTTP Basic (RFC 7617) or a JSON body {"username", "password"}: owned
 * copies in *user and *password; false if the request has neither (or they are malformed). */
static bool credentials(const mira__auth_req *q, char **user, char **password)
{
    *user = *password = NULL;
    const char *h = q->authorization;
    if (h && strncasecmp(h, "Basic ", 6) == 0) {
        const char *b = h + 6;
        while (*b == ' ')
            b++;
        mira__buf dec;
        mira__buf_init(&dec);
        bool ok = mira__base64_decode(&dec, b, strlen(b)) && !dec.failed &&
                  mira__buf_putc(&dec, 0);
        const char *text = ok ? (const char *)dec.data : NULL;
        const char *colon = text ? strchr(text, ':') : NULL;
        if (colon && strlen(text) == dec.len - 1) { /* no NUL inside */
            *user = mira_strndup(text, (size_t)(colon - text));
            *password = mira_strdup(colon + 1);
        }
        if (dec.data)
            memset(dec.data, 0, dec.len);
        mira__buf_cleanup(&dec);
        return *user && *password;
    }
    if (q->body && q->body_len) {
        mira_json *j = mira_json_parse(q->body, q->body_len, NULL);
        mira_json *u = j ? mira_json_get(j, "username") : NULL;
        mira_json *p = j ? mira_json_get(j, "password") : NULL;
        size_t ul = 0, pl = 0;
        const char *us = u ? mira_json_get_string(u, &ul) : NULL;
        const char *ps = p ? mira_json_get_string(p, &pl) : NULL;
        if (us && ps && strlen(us) == ul && strlen(ps) == pl) {
            *user = mira_strdup(us);
            *password = mira_strdup(ps);
        }
        mira_json_free(j);
        return *user && *password;
    }
    return false;
}

static void free_secret(char *s)
{
    if (s)
        memset(s, 0, strlen(s));
    mira_free(s);
}

/* The challenge of a failed sign-in (RFC 7235 wants one on every 401): Basic for a client that
 * tried Basic or sent nothing, Bearer for one that sent a JSON body (a page's sign-in form),
 * so that a browser does not open its own password dialog over the page. */
static const char *sign_in_challenge(const mira__auth_req *q)
{
    bool json = !q->authorization && q->content_type &&
                strncasecmp(q->content_type, "application/json", 16) == 0;
    return json ? "Bearer realm=\"mira\"" : "Basic realm=\"mira\", charset=\"UTF-8\"";
}

static void sign_in(mira__auth *au, const mira__auth_req *q, mira__http_reply *r)
{
    if (strcmp(q->method, "POST") != 0) {
        mira__http_reply_error(r, 405, "%s is not allowed here: POST credentials to get a token",
                               q->method);
        audit(au, q, "auth.password", "", "", 405, "not a POST");
        return;
    }
    char *user = NULL, *password = NULL;
    if (!credentials(q, &user, &password)) {
        mira__http_reply_error(r, 401, "send a user name and password: HTTP Basic, or a JSON "
                                       "body {\"username\": ..., \"password\": ...}");
        set_authenticate(r, sign_in_challenge(q));
        audit(au, q, "auth.password", "", "", 401, "no credentials");
        free_secret(user);
        free_secret(password);
        return;
    }
    char host[64], ukey[160], pkey[160];
    peer_host(q->peer, host, sizeof host);
    snprintf(ukey, sizeof ukey, "u %.64s %s", user, host);
    snprintf(pkey, sizeof pkey, "p %s", host);
    const char *shown = mira_user_name_valid(user) ? user : "";
    int wait = blocked_for(au, ukey, pkey);
    if (wait > 0) {
        mira__http_reply_error(r, 429, "too many failed sign-ins: try again in %d s", wait);
        r->retry_after = wait;
        audit(au, q, "auth.password", shown, "", 429, "rate limited");
        free_secret(user);
        free_secret(password);
        return;
    }
    bool ok = false;
    mira_role role = MIRA_ROLE_RESEARCHER;
    mira_error *err = NULL;
    if (!verify_gated(au, user, password, &ok, &role, &err)) {
        mira__http_reply_error(r, 503, "the sign-in could not be checked");
        logf_warning(au, "sign-in", err);
        mira_error_free(err);
        audit(au, q, "auth.password", shown, "", 503, "check failed");
        free_secret(user);
        free_secret(password);
        return;
    }
    free_secret(password);
    if (!ok) {
        count_failure(au, ukey, pkey);
        mira__http_reply_error(r, 401, "wrong user name or password");
        set_authenticate(r, sign_in_challenge(q));
        audit(au, q, "auth.password", shown, "", 401, "wrong user name or password");
        free_secret(user);
        return;
    }
    clear_failures(au, ukey);
    char token[MIRA_TOKEN_SIZE];
    int64_t expires = 0;
    if (!mira_token_new(au->archive, user, TOKEN_SECONDS, token, &expires, &err)) {
        mira__http_reply_error(r, 503, "no token could be made");
        logf_warning(au, "sign-in", err);
        mira_error_free(err);
        audit(au, q, "auth.password", user, mira_role_name(role), 503, "no token made");
        free_secret(user);
        return;
    }
    /* RFC 6749 5.1's shape: access_token, token_type, expires_in; and expires_at */
    char at[32];
    time_t t = (time_t)expires;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    mira__buf_printf(&r->body,
                     "{\"access_token\":\"%s\",\"token_type\":\"Bearer\",\"expires_in\":%d,"
                     "\"expires_at\":\"%s\",\"user\":\"%s\",\"role\":\"%s\"}",
                     token, TOKEN_SECONDS, at, user, mira_role_name(role));
    memset(token, 0, sizeof token);
    r->status = 200;
    r->content_type = "application/json";
    r->no_store = true;
    audit(au, q, "auth.password", user, mira_role_name(role), 200, "");
    free_secret(user);
}

#define SIGNIN_BODY_MAX 8192

typedef struct signin {
    mira__auth *au;
    char *method, *target, *peer, *content_type;
    mira__buf body;
    bool too_big;
} signin;

void *mira__auth_signin_begin(mira__auth *au, const mira__auth_req *q)
{
    signin *si = mira_calloc(1, sizeof *si);
    if (!si)
        return NULL;
    si->au = au;
    mira__buf_init(&si->body);
    si->method = mira_strdup(q->method);
    si->target = mira_strdup(q->target);
    si->peer = mira_strdup(q->peer);
    si->content_type = q->content_type ? mira_strdup(q->content_type) : NULL;
    if (!si->method || !si->target || !si->peer || (q->content_type && !si->content_type)) {
        mira__auth_signin_free(si);
        return NULL;
    }
    return si;
}

bool mira__auth_signin_feed(void *ctx, const uint8_t *p, size_t n)
{
    signin *si = ctx;
    if (si->body.len + n > SIGNIN_BODY_MAX) {
        si->too_big = true;
        return false;
    }
    return mira__buf_append(&si->body, p, n);
}

void mira__auth_signin_finish(void *ctx, mira__http_reply *r)
{
    signin *si = ctx;
    if (si->too_big) {
        mira__http_reply_error(r, 413, "a sign-in body has at most %d bytes", SIGNIN_BODY_MAX);
        return;
    }
    mira__auth_req q = {si->method, si->target, NULL, si->peer,
                        si->body.len ? (const char *)si->body.data : NULL, si->body.len,
                        si->content_type};
    sign_in(si->au, &q, r);
}

void mira__auth_signin_free(void *ctx)
{
    signin *si = ctx;
    if (!si)
        return;
    if (si->body.data)
        memset(si->body.data, 0, si->body.len);
    mira__buf_cleanup(&si->body);
    mira_free(si->method);
    mira_free(si->target);
    mira_free(si->peer);
    mira_free(si->content_type);
    mira_free(si);
}

/* ------------------------------------------------------------------ GET /audit */

typedef struct audit_out {
    mira_json_writer *w;
} audit_out;

static bool write_event(void *ctx, const mira_audit_event *e)
{
    mira_audit_event_json(((audit_out *)ctx)->w, e);
    return true;
}

static void audit_route(mira__auth *au, const mira__auth_req *q, mira__http_reply *r)
{
    if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0) {
        mira__http_reply_error(r, 405, "%s is not allowed here: the audit log is read with GET",
                               q->method);
        return;
    }
    char since[64] = "", user[80] = "";
    bool by_user = false;
    uint64_t limit = AUDIT_DEFAULT_LIMIT;
    const char *qs = strchr(q->target, '?');
    for (const char *p = qs ? qs + 1 : ""; *p;) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t kl = eq ? (size_t)(eq - p) : n;
        char *v = mira__url_decode(eq ? eq + 1 : p + n, eq ? n - kl - 1 : 0, true, NULL);
        if (!v) {
            mira__http_reply_error(r, 400, "a bad percent escape in the query");
            return;
        }
        char *end = NULL;
        if (kl == 5 && memcmp(p, "since", 5) == 0 && strlen(v) < sizeof since) {
            snprintf(since, sizeof since, "%s", v);
        } else if (kl == 4 && memcmp(p, "user", 4) == 0 && strlen(v) < sizeof user) {
            snprintf(user, sizeof user, "%s", v);
            by_user = true;
        } else if (kl == 5 && memcmp(p, "limit", 5) == 0 && *v &&
                   (limit = strtoull(v, &end, 10), !*end) && limit >= 1 &&
                   limit <= AUDIT_MAX_LIMIT) {
        } else {
            mira__http_reply_error(r, 400, "the audit log takes since=ISO-8601, user=NAME and "
                                           "limit=1..%d", AUDIT_MAX_LIMIT);
            mira_free(v);
            return;
        }
        mira_free(v);
        p += n;
        if (*p == '&')
            p++;
    }
    mira_audit_filter f = {since, by_user ? user : NULL, limit};
    audit_out o = {mira_json_writer_new(false)};
    if (!o.w) {
        mira__http_reply_error(r, 503, "out of memory");
        return;
    }
    mira_json_begin_array(o.w);
    mira_error *err = NULL;
    bool ok = mira_audit_read(au->archive, &f, write_event, &o, &err);
    mira_json_end_array(o.w);
    size_t len = 0;
    char *json = mira_json_writer_finish(o.w, &len, NULL);
    mira_json_writer_free(o.w);
    if (!ok || !json) {
        mira__http_reply_error(r, 500, "the audit log could not be read");
        logf_warning(au, "reading the audit log", err);
    } else {
        mira__buf_append(&r->body, json, len);
        r->status = 200;
        r->content_type = "application/json";
    }
    mira_error_free(err);
    mira_free(json);
}

/* ------------------------------------------------------------------ every request */

mira__auth_outcome mira__auth_request(mira__auth *au, const mira__auth_req *q,
                                      mira_principal *who, mira__http_reply *r)
{
    memset(who, 0, sizeof *who);
    if (path_is(q->target, "/health")) {
        if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0) {
            mira__http_reply_error(r, 405, "%s is not allowed here", q->method);
        } else {
            mira__buf_printf(&r->body, "{\"status\":\"ok\",\"version\":\"%s\"}", mira_version());
            r->status = 200;
            r->content_type = "application/json";
        }
        return MIRA__AUTH_ANSWERED;
    }
    if (mira__page_route(q->target)) { /* the web page's files: public, like a sign-in form */
        mira__page_serve(q->method, q->target, r);
        return MIRA__AUTH_ANSWERED;
    }
    if (path_is(q->target, "/api/openapi.json")) { /* the API's description: public */
        mira__api_openapi(q->method, r);
        return MIRA__AUTH_ANSWERED;
    }
    if (path_is(q->target, "/auth/token")) {
        if (strcmp(q->method, "POST") == 0 && !q->authorization)
            return MIRA__AUTH_READ_BODY;
        sign_in(au, q, r);
        return MIRA__AUTH_ANSWERED;
    }
    const char *h = q->authorization;
    if (!h || !*h) {
        unauthorized(r, NULL, "this route needs a token: Authorization: Bearer TOKEN (POST "
                              "/auth/token makes one)");
        audit(au, q, "auth.token", "", "", 401, "no token");
        return MIRA__AUTH_ANSWERED;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        unauthorized(r, "invalid_request", "the Authorization header is not Bearer TOKEN");
        audit(au, q, "auth.token", "", "", 401, "not a bearer token");
        return MIRA__AUTH_ANSWERED;
    }
    const char *t = h + 7;
    while (*t == ' ')
        t++;
    mira_token_status st = MIRA_TOKEN_MALFORMED;
    mira_error *err = NULL;
    if (!mira_token_check(au->archive, t, &st, who, &err)) {
        mira__http_reply_error(r, 503, "the token could not be checked");
        logf_warning(au, "token check", err);
        mira_error_free(err);
        audit(au, q, "auth.token", "", "", 503, "check failed");
        return MIRA__AUTH_ANSWERED;
    }
    if (st != MIRA_TOKEN_VALID) {
        char d[64];
        snprintf(d, sizeof d, "the token is %s", mira_token_status_name(st));
        unauthorized(r, "invalid_token", d);
        audit(au, q, "auth.token", "", "", 401, d);
        return MIRA__AUTH_ANSWERED;
    }
    /* roles by route */
    bool reading = strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0;
    const char *refusal = NULL;
    bool audit_path = path_is(q->target, "/audit");
    if (audit_path && who->role != MIRA_ROLE_ADMIN)
        refusal = "the audit log is for admins";
    else if (!audit_path && !reading && who->role == MIRA_ROLE_RESEARCHER &&
             !jobs_path(q->target)) /* api.c lets them run and cancel export jobs */
        refusal = "researchers may only read (de-identified data)";
    if (refusal) {
        mira__http_reply_error(r, 403, "%s", refusal);
        audit(au, q, "access", who->user, mira_role_name(who->role), 403, refusal);
        return MIRA__AUTH_ANSWERED;
    }
    if (audit_path) {
        audit_route(au, q, r);
        mira__auth_audit(au, q, who, r); /* on failure r becomes a 503 */
        return MIRA__AUTH_ANSWERED;
    }
    return MIRA__AUTH_GO;
}

bool mira__auth_audit(mira__auth *au, const mira__auth_req *q, const mira_principal *who,
                      mira__http_reply *r)
{
    char path[512];
    path_of(q->target, path, sizeof path);
    /* what was returned: nothing for an error reply */
    bool data = r->status < 300 && !r->studies.failed && !r->series.failed;
    const char *studies = data && r->studies.len ? (const char *)r->studies.data : "";
    const char *series = data && r->series.len ? (const char *)r->series.data : "";
    mira_audit_event e = {NULL,    who->user, mira_role_name(who->role), "access", q->method,
                          path,    studies,   series,                    q->peer,  r->status,
                          r->status >= 400 && r->body.len ? "refused" : ""};
    mira_error *err = NULL;
    if (r->studies.failed || r->series.failed || !mira_audit_append(au->archive, &e, &err)) {
        logf_warning(au, "the audit log could not be written; the reply is withheld", err);
        mira_error_free(err);
        r->body.len = 0;
        r->studies.len = r->series.len = 0;
        mira__http_reply_error(r, 503, "the access could not be recorded");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ the researcher's view */

bool mira__auth_researcher_may_see(mira_tag tag)
{
    if (tag == 0x00080005u) /* Specific Character Set: how to read the rest */
        return true;
    const mira__deid_entry *e = mira__deid_find(tag);
    if (!e)
        return true; /* not in E.1-1: the profile keeps it */
    mira_deid_options o;
    mira_deid_options_init(&o);
    o.retain_uids = true;
    return mira__deid_resolve(e, &o) == MIRA__DEID_K;
}

static const char *keyword_of(mira_tag tag, char buf[16])
{
    const mira_dict_entry *d = mira_dict_find(tag);
    if (d && d->keyword && *d->keyword)
        return d->keyword;
    snprintf(buf, 16, "%08X", (unsigned)tag);
    return buf;
}

/* True if an element, or anything inside its items, holds a value (a matching key). */
static bool has_value(const mira_element *el)
{
    if (mira_element_vr(el) != MIRA_VR_SQ)
        return mira_element_length(el) > 0;
    for (size_t i = 0; i < mira_element_item_count(el); i++) {
        mira_dataset *item = mira_element_item(el, i);
        for (size_t k = 0; k < mira_dataset_count(item); k++)
            if (has_value(mira_dataset_at(item, k)))
                return true;
    }
    return false;
}

static bool deidentify(mira_dataset *ds, mira__http_reply *r)
{
    for (size_t i = mira_dataset_count(ds); i-- > 0;) {
        mira_element *el = mira_dataset_at(ds, i);
        mira_tag tag = mira_element_tag(el);
        if (!mira__auth_researcher_may_see(tag)) {
            if (has_value(el)) {
                char b[16];
                mira__http_reply_error(r, 403, "researchers may not search by %s: it identifies "
                                               "patients (PS3.15 E.1-1)",
                                       keyword_of(tag, b));
                return false;
            }
            mira_dataset_remove(ds, tag);
        } else if (mira_element_vr(el) == MIRA_VR_SQ) {
            for (size_t k = 0; k < mira_element_item_count(el); k++)
                if (!deidentify(mira_element_item(el, k), r))
                    return false;
        }
    }
    return true;
}

bool mira__auth_deidentify_query(mira_dataset *identifier, mira__http_reply *r)
{
    return deidentify(identifier, r);
}
