/* Access control of the DIMSE SCP: who may associate (AE title, address, user) and for what. */
#include "access.h"
#include "services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

typedef struct rule {
    char ae[17];
    char *host; /* NULL: any */
    unsigned permissions;
} rule;

typedef struct user {
    char *name;
    bool has_password;
    unsigned iterations;
    uint8_t salt[32], hash[32];
    size_t salt_len;
    unsigned permissions;
} user;

struct mira__access {
    rule *rules;
    size_t nrules;
    bool has_rules; /* access was configured, even with no rule: then nobody may associate */
    user *users;
    size_t nusers;
    bool require_user;
};

/* ------------------------------------------------------------------ permissions */

static const struct {
    const char *name;
    unsigned bit;
} PERMISSIONS[] = {
    {"echo", MIRA_DIMSE_PERMIT_ECHO},         {"store", MIRA_DIMSE_PERMIT_STORE},
    {"find", MIRA_DIMSE_PERMIT_FIND},         {"move", MIRA_DIMSE_PERMIT_MOVE},
    {"get", MIRA_DIMSE_PERMIT_GET},           {"worklist", MIRA_DIMSE_PERMIT_WORKLIST},
    {"mpps", MIRA_DIMSE_PERMIT_MPPS},         {"commit", MIRA_DIMSE_PERMIT_COMMIT},
    {"all", MIRA_DIMSE_PERMIT_ALL},
};

bool mira_dimse_permission_parse(const char *name, unsigned *bits)
{
    for (size_t i = 0; i < sizeof PERMISSIONS / sizeof *PERMISSIONS; i++)
        if (strcmp(name, PERMISSIONS[i].name) == 0) {
            *bits = PERMISSIONS[i].bit;
            return true;
        }
    return false;
}

const char *mira__access_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof PERMISSIONS / sizeof *PERMISSIONS; i++)
        if (PERMISSIONS[i].bit & bit)
            return PERMISSIONS[i].name;
    return "?";
}

/* The SOP classes of the Query/Retrieve models (PS3.4 C.6) that move or get. */
static const char *const MOVE_UIDS[] = {
    "1.2.840.10008.5.1.4.1.2.1.2", /* Patient Root */
    "1.2.840.10008.5.1.4.1.2.2.2", /* Study Root */
    "1.2.840.10008.5.1.4.1.2.3.2", /* Patient/Study Only (retired) */
    "1.2.840.10008.5.1.4.1.2.4.2", /* Composite Instance Root */
};
static const char *const GET_UIDS[] = {
    "1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3",
    "1.2.840.10008.5.1.4.1.2.3.3", "1.2.840.10008.5.1.4.1.2.4.3",
    "1.2.840.10008.5.1.4.1.2.5.3", /* Composite Instance Retrieve Without Bulk Data */
};

static bool in(const char *uid, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(uid, list[i]) == 0)
            return true;
    return false;
}

unsigned mira__access_needed(const char *uid, bool scp_role)
{
    if (strcmp(uid, MIRA__VERIFICATION_UID) == 0)
        return MIRA_DIMSE_PERMIT_ECHO;
    if (strcmp(uid, "1.2.840.10008.5.1.4.31") == 0)
        return MIRA_DIMSE_PERMIT_WORKLIST;
    if (strcmp(uid, "1.2.840.10008.3.1.2.3.3") == 0)
        return MIRA_DIMSE_PERMIT_MPPS;
    if (strcmp(uid, "1.2.840.10008.1.20.1") == 0)
        return MIRA_DIMSE_PERMIT_COMMIT;
    if (in(uid, MOVE_UIDS, sizeof MOVE_UIDS / sizeof *MOVE_UIDS))
        return MIRA_DIMSE_PERMIT_MOVE;
    if (in(uid, GET_UIDS, sizeof GET_UIDS / sizeof *GET_UIDS))
        return MIRA_DIMSE_PERMIT_GET;
    if (mira__is_find_sop_class(uid))
        return MIRA_DIMSE_PERMIT_FIND;
    if (mira__is_storage_sop_class(uid)) /* with the SCP role, C-GET's results arrive on it */
        return MIRA_DIMSE_PERMIT_STORE | (scp_role ? MIRA_DIMSE_PERMIT_GET : 0);
    return 0; /* a service no permission names: refused whenever access is configured */
}

/* ------------------------------------------------------------------ passwords */

#define PBKDF2_ITERATIONS 100000u
#define PBKDF2_MAX_ITERATIONS 10000000u

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static bool unhex(const char *s, size_t len, uint8_t *out, size_t cap, size_t *n)
{
    if (len % 2 || len / 2 > cap || len == 0)
        return false;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        char two[3] = {s[2 * i], s[2 * i + 1], 0};
        if (sscanf(two, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", two[0]) ||
            !strchr("0123456789abcdefABCDEF", two[1]))
            return false;
        out[i] = (uint8_t)v;
    }
    *n = len / 2;
    return true;
}

static bool derive(const void *pw, size_t len, const uint8_t *salt, size_t salt_len,
                   unsigned iterations, uint8_t out[32])
{
    return PKCS5_PBKDF2_HMAC(pw, (int)len, salt, (int)salt_len, (int)iterations, EVP_sha256(),
                             32, out) == 1;
}

char *mira_dimse_password_hash(const char *password, mira_error **err)
{
    uint8_t salt[16], hash[32];
    if (RAND_bytes(salt, sizeof salt) != 1 ||
        !derive(password, strlen(password), salt, sizeof salt, PBKDF2_ITERATIONS, hash)) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot hash", "OpenSSL could not derive a key");
        return NULL;
    }
    char *out = mira_malloc(200);
    if (!out) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "a password hash");
        return NULL;
    }
    char hs[33], hh[65];
    hex(salt, sizeof salt, hs);
    hex(hash, sizeof hash, hh);
    snprintf(out, 200, "pbkdf2-sha256$%u$%s$%s", PBKDF2_ITERATIONS, hs, hh);
    return out;
}

/* "pbkdf2-sha256$N$SALT$HASH" into u. */
static bool parse_hash(const char *s, user *u)
{
    static const char prefix[] = "pbkdf2-sha256$";
    if (strncmp(s, prefix, sizeof prefix - 1) != 0)
        return false;
    s += sizeof prefix - 1;
    char *end;
    unsigned long n = strtoul(s, &end, 10);
    if (end == s || *end != '$' || n == 0 || n > PBKDF2_MAX_ITERATIONS)
        return false;
    u->iterations = (unsigned)n;
    const char *salt = end + 1, *dollar = strchr(salt, '$');
    size_t hn = 0;
    return dollar && unhex(salt, (size_t)(dollar - salt), u->salt, sizeof u->salt, &u->salt_len) &&
           unhex(dollar + 1, strlen(dollar + 1), u->hash, sizeof u->hash, &hn) && hn == 32;
}

static bool password_ok(const user *u, const uint8_t *pw, size_t len)
{
    uint8_t got[32];
    return derive(pw, len, u->salt, u->salt_len, u->iterations, got) &&
           CRYPTO_memcmp(got, u->hash, 32) == 0;
}

/* ------------------------------------------------------------------ the configuration */

void mira__access_free(mira__access *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nrules; i++)
        mira_free(a->rules[i].host);
    for (size_t i = 0; i < a->nusers; i++) {
        mira_free(a->users[i].name);
        OPENSSL_cleanse(&a->users[i], sizeof a->users[i]);
    }
    mira_free(a->rules);
    mira_free(a->users);
    mira_free(a);
}

mira__access *mira__access_new(const mira_dimse_server_options *opt, mira_error **err)
{
    if (!opt->access && !opt->users && !opt->require_user)
        return NULL;
    if (opt->require_user && !opt->nusers) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad access control",
                       "a user identity is required but no user is configured");
        return NULL;
    }
    mira__access *a = mira_calloc(1, sizeof *a);
    if (!a || (opt->naccess && !(a->rules = mira_calloc(opt->naccess, sizeof *a->rules))) ||
        (opt->nusers && !(a->users = mira_calloc(opt->nusers, sizeof *a->users)))) {
        mira__access_free(a);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the access rules");
        return NULL;
    }
    a->require_user = opt->require_user;
    a->has_rules = opt->access != NULL;
    for (size_t i = 0; i < opt->naccess; i++) {
        const mira_dimse_access_rule *r = &opt->access[i];
        if (!r->calling_ae || !*r->calling_ae || strlen(r->calling_ae) > 16) {
            mira__access_free(a);
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad access control",
                           "access rule %zu: the calling AE title must have 1 to 16 characters",
                           i + 1);
            return NULL;
        }
        rule *d = &a->rules[a->nrules++];
        snprintf(d->ae, sizeof d->ae, "%s", r->calling_ae);
        d->permissions = r->permissions;
        if (r->host && *r->host && !(d->host = mira_strdup(r->host))) {
            mira__access_free(a);
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the access rules");
            return NULL;
        }
    }
    for (size_t i = 0; i < opt->nusers; i++) {
        const mira_dimse_user *u = &opt->users[i];
        user *d = &a->users[a->nusers++];
        d->permissions = u->permissions;
        d->name = u->name && *u->name ? mira_strdup(u->name) : NULL;
        if (!d->name) {
            mira__access_free(a);
            mira_error_set(err, u->name && *u->name ? MIRA_ERR_NOMEM : MIRA_ERR_ARGUMENT,
                           "Bad access control", "user %zu has no name", i + 1);
            return NULL;
        }
        d->has_password = u->password_hash != NULL;
        if (d->has_password && !parse_hash(u->password_hash, d)) {
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad access control",
                           "user \"%s\": the password is not a \"pbkdf2-sha256$N$SALT$HASH\" "
                           "hash (mira serve --hash-password makes one)",
                           d->name);
            mira__access_free(a);
            return NULL;
        }
    }
    return a;
}

/* ------------------------------------------------------------------ decisions */

/* The address of "ADDRESS:PORT" (IPv6 addresses have colons of their own). */
static void address_of(const char *peer, char *out, size_t n)
{
    snprintf(out, n, "%s", peer);
    char *colon = strrchr(out, ':');
    if (colon)
        *colon = 0;
}

/* The rules named ae that apply from addr: their permissions or'ed; *named tells whether any
 * rule has that title at all. */
static bool match(const mira__access *a, const char *ae, const char *addr, bool *named,
                  unsigned *permissions)
{
    bool any = false;
    *named = false;
    for (size_t i = 0; i < a->nrules; i++) {
        const rule *r = &a->rules[i];
        if (strcmp(r->ae, ae) != 0)
            continue;
        *named = true;
        if (!r->host || strcmp(r->host, addr) == 0) {
            *permissions |= r->permissions;
            any = true;
        }
    }
    return any;
}

bool mira__access_associate(const mira__access *a, const char *peer, const mira__assoc *rq,
                            unsigned *permissions, uint8_t *reason, char *why, size_t n)
{
    *permissions = MIRA_DIMSE_PERMIT_ALL;
    if (!a)
        return true;
    char addr[64];
    address_of(peer, addr, sizeof addr);
    *reason = 3; /* calling AE title not recognized */
    if (a->has_rules) {
        bool named = false, star = false;
        unsigned p = 0;
        /* a title named by a rule is judged by its rules only, never by "*" */
        bool ok = match(a, rq->calling_ae, addr, &named, &p);
        if (!named)
            ok = match(a, "*", addr, &star, &p);
        if (!ok) {
            if (named)
                snprintf(why, n, "calling AE title \"%s\" is not accepted from %s",
                         rq->calling_ae, addr);
            else
                snprintf(why, n, "calling AE title \"%s\" is not accepted%s%s", rq->calling_ae,
                         star ? " from " : "", star ? addr : "");
            return false;
        }
        *permissions = p;
    }
    if (!a->nusers)
        return true;
    *reason = 1; /* no reason given: PS3.7 D.3.3.7 leaves the refusal of an identity to it */
    if (!rq->has_identity) {
        if (a->require_user) {
            snprintf(why, n, "no user identity, and one is required");
            return false;
        }
        return true;
    }
    if (rq->identity_type != 1 && rq->identity_type != 2) {
        snprintf(why, n, "user identity type %u (only user names and passcodes are known)",
                 rq->identity_type);
        return false;
    }
    const user *u = NULL;
    for (size_t i = 0; i < a->nusers && !u; i++)
        if (strlen(a->users[i].name) == rq->identity_primary_len &&
            memcmp(a->users[i].name, rq->identity_primary, rq->identity_primary_len) == 0)
            u = &a->users[i];
    int shown = rq->identity_primary_len < 64 ? (int)rq->identity_primary_len : 64;
    if (!u) {
        snprintf(why, n, "unknown user \"%.*s\"", shown, (const char *)rq->identity_primary);
        return false;
    }
    if (u->has_password &&
        (rq->identity_type != 2 ||
         !password_ok(u, rq->identity_secondary, rq->identity_secondary_len))) {
        snprintf(why, n, "user \"%s\": %s", u->name,
                 rq->identity_type != 2 ? "no passcode" : "wrong passcode");
        return false;
    }
    *permissions &= u->permissions;
    return true;
}
