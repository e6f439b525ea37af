/* mira serve: TLS and access control settings from mira.json and the command line. */
#include "serve_security.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const char *keep(mira_cli_security *sec, const char *s)
{
    char **grown = mira_realloc(sec->strings, (sec->nstrings + 1) * sizeof *grown);
    char *c = grown ? mira_strdup(s) : NULL;
    if (grown)
        sec->strings = grown;
    if (!c)
        return NULL;
    sec->strings[sec->nstrings++] = c;
    return c;
}

/* A list of permission names into bits. */
static bool permissions(const mira_json *v, unsigned *bits, const char *path, const char *what)
{
    *bits = 0;
    if (!v || mira_json_get_type(v) != MIRA_JSON_ARRAY) {
        fprintf(stderr, "mira serve: %s: %s: a list of permissions is expected\n", path, what);
        return false;
    }
    for (size_t i = 0; i < mira_json_count(v); i++) {
        const mira_json *p = mira_json_at(v, i);
        unsigned b;
        if (mira_json_get_type(p) != MIRA_JSON_STRING ||
            !mira_dimse_permission_parse(mira_json_get_string(p, NULL), &b)) {
            fprintf(stderr,
                    "mira serve: %s: %s: permissions are echo, store, find, move, get, "
                    "worklist, mpps, commit or all\n",
                    path, what);
            return false;
        }
        *bits |= b;
    }
    return true;
}

static bool add_rule(mira_cli_security *sec, const char *ae, const char *host, unsigned bits)
{
    mira_dimse_access_rule *g = mira_realloc(sec->rules, (sec->nrules + 1) * sizeof *g);
    if (!g)
        return false;
    sec->rules = g;
    const char *a = keep(sec, ae), *h = host ? keep(sec, host) : NULL;
    if (!a || (host && !h))
        return false;
    g[sec->nrules++] = (mira_dimse_access_rule){a, h, bits};
    return true;
}

/* "accept": {"AE": [perms] | {"permissions": [perms], "hosts": ["addr", ...]}, ...} */
static bool accept_rules(mira_cli_security *sec, const mira_json *acc, const char *path)
{
    if (mira_json_get_type(acc) != MIRA_JSON_OBJECT) {
        fprintf(stderr, "mira serve: %s: dimse.accept is not an object of AE titles\n", path);
        return false;
    }
    sec->has_access = true;
    for (size_t i = 0; i < mira_json_count(acc); i++) {
        const char *ae = mira_json_key_at(acc, i);
        const mira_json *v = mira_json_at(acc, i);
        char what[64];
        snprintf(what, sizeof what, "dimse.accept.%s", ae);
        if (!*ae || strlen(ae) > 16) {
            fprintf(stderr, "mira serve: %s: %s: an AE title has 1 to 16 characters\n", path,
                    what);
            return false;
        }
        unsigned bits;
        const mira_json *hosts = NULL;
        if (mira_json_get_type(v) == MIRA_JSON_OBJECT) {
            if (!permissions(mira_json_get(v, "permissions"), &bits, path, what))
                return false;
            hosts = mira_json_get(v, "hosts");
            if (hosts && mira_json_get_type(hosts) != MIRA_JSON_ARRAY) {
                fprintf(stderr, "mira serve: %s: %s.hosts is not a list of addresses\n", path,
                        what);
                return false;
            }
        } else if (!permissions(v, &bits, path, what)) {
            return false;
        }
        bool ok = true;
        if (!hosts || mira_json_count(hosts) == 0)
            ok = add_rule(sec, ae, NULL, bits);
        for (size_t k = 0; ok && hosts && k < mira_json_count(hosts); k++) {
            const mira_json *h = mira_json_at(hosts, k);
            if (mira_json_get_type(h) != MIRA_JSON_STRING) {
                fprintf(stderr, "mira serve: %s: %s.hosts: addresses are strings\n", path, what);
                return false;
            }
            ok = add_rule(sec, ae, mira_json_get_string(h, NULL), bits);
        }
        if (!ok) {
            fprintf(stderr, "mira serve: out of memory\n");
            return false;
        }
    }
    return true;
}

/* "users": {"name": {"password": "pbkdf2-sha256$...", "permissions": [...]}, ...} */
static bool users(mira_cli_security *sec, const mira_json *us, const char *path)
{
    if (mira_json_get_type(us) != MIRA_JSON_OBJECT) {
        fprintf(stderr, "mira serve: %s: dimse.users is not an object of user names\n", path);
        return false;
    }
    sec->users = mira_calloc(mira_json_count(us) + 1, sizeof *sec->users);
    if (!sec->users)
        return false;
    for (size_t i = 0; i < mira_json_count(us); i++) {
        const mira_json *v = mira_json_at(us, i);
        char what[100];
        snprintf(what, sizeof what, "dimse.users.%s", mira_json_key_at(us, i));
        if (mira_json_get_type(v) != MIRA_JSON_OBJECT) {
            fprintf(stderr, "mira serve: %s: %s is not an object\n", path, what);
            return false;
        }
        mira_dimse_user *u = &sec->users[sec->nusers++];
        u->name = keep(sec, mira_json_key_at(us, i));
        u->permissions = MIRA_DIMSE_PERMIT_ALL;
        const mira_json *pw = mira_json_get(v, "password");
        if (pw && mira_json_get_type(pw) != MIRA_JSON_STRING) {
            fprintf(stderr, "mira serve: %s: %s.password is not a string\n", path, what);
            return false;
        }
        if (pw)
            u->password_hash = keep(sec, mira_json_get_string(pw, NULL));
        const mira_json *p = mira_json_get(v, "permissions");
        if (p) {
            strncat(what, ".permissions", sizeof what - strlen(what) - 1);
            if (!permissions(p, &u->permissions, path, what))
                return false;
        }
        if (!u->name || (pw && !u->password_hash))
            return false;
    }
    return true;
}

static const char *string_of(mira_cli_security *sec, const mira_json *o, const char *key,
                             bool *ok, const char *path)
{
    const mira_json *v = mira_json_get(o, key);
    if (!v)
        return NULL;
    if (mira_json_get_type(v) != MIRA_JSON_STRING) {
        fprintf(stderr, "mira serve: %s: dimse.tls.%s is not a string\n", path, key);
        *ok = false;
        return NULL;
    }
    return keep(sec, mira_json_get_string(v, NULL));
}

bool mira_cli_security_from_config(mira_cli_security *sec, const mira_json *d, const char *path)
{
    bool ok = true;
    const mira_json *t = mira_json_get(d, "tls");
    if (t && mira_json_get_type(t) == MIRA_JSON_OBJECT) {
        sec->tls.cert_file = string_of(sec, t, "cert", &ok, path);
        sec->tls.key_file = string_of(sec, t, "key", &ok, path);
        sec->tls.ca_file = string_of(sec, t, "ca", &ok, path);
        const mira_json *v = mira_json_get(t, "verify_peer");
        sec->tls.verify_peer = v && mira_json_get_type(v) == MIRA_JSON_TRUE;
        v = mira_json_get(t, "only");
        sec->tls_only = v && mira_json_get_type(v) == MIRA_JSON_TRUE;
        v = mira_json_get(t, "port");
        if (v && mira_json_get_type(v) == MIRA_JSON_NUMBER)
            sec->tls_port = (int)mira_json_get_number(v);
    } else if (t) {
        fprintf(stderr, "mira serve: %s: dimse.tls is not an object\n", path);
        ok = false;
    }
    const mira_json *a = mira_json_get(d, "accept");
    if (ok && a)
        ok = accept_rules(sec, a, path);
    const mira_json *u = mira_json_get(d, "users");
    if (ok && u)
        ok = users(sec, u, path);
    const mira_json *r = mira_json_get(d, "require_user");
    sec->require_user = r && mira_json_get_type(r) == MIRA_JSON_TRUE;
    return ok;
}

bool mira_cli_security_load(mira_cli_security *sec)
{
    const char *path = NULL;
    mira_json *root = mira_cli_load_config(&path);
    const mira_json *d = root ? mira_json_get(root, "dimse") : NULL;
    bool ok = !d || mira_json_get_type(d) != MIRA_JSON_OBJECT ||
              mira_cli_security_from_config(sec, d, path);
    mira_json_free(root);
    return ok;
}

int mira_cli_security_option(int argc, char **argv, int *i, mira_cli_security *sec)
{
    const char *a = argv[*i];
    if (strcmp(a, "--tls-verify-peer") == 0) {
        sec->tls.verify_peer = true;
        return 1;
    }
    if (strcmp(a, "--tls-only") == 0) {
        sec->tls_only = true;
        return 1;
    }
    const char **dest = strcmp(a, "--tls-cert") == 0  ? &sec->tls.cert_file
                        : strcmp(a, "--tls-key") == 0 ? &sec->tls.key_file
                        : strcmp(a, "--tls-ca") == 0  ? &sec->tls.ca_file
                                                      : NULL;
    if (!dest && strcmp(a, "--tls-port") != 0)
        return 0;
    if (*i + 1 >= argc)
        return -1;
    const char *v = argv[++*i];
    if (dest) {
        *dest = v;
        return 1;
    }
    char *end;
    long p = strtol(v, &end, 10);
    if (!*v || *end || p < 0 || p > 65535)
        return -1;
    sec->tls_port = (int)p;
    return 1;
}

bool mira_cli_security_apply(mira_cli_security *sec, mira_dimse_server_options *o)
{
    bool tls = sec->tls.cert_file || sec->tls.key_file;
    if (tls && (!sec->tls.cert_file || !sec->tls.key_file)) {
        fprintf(stderr, "mira serve: TLS needs both --tls-cert and --tls-key\n");
        return false;
    }
    if (!tls && (sec->tls_only || sec->tls.verify_peer || sec->tls.ca_file)) {
        fprintf(stderr, "mira serve: TLS options without --tls-cert and --tls-key\n");
        return false;
    }
    if (sec->tls.verify_peer && !sec->tls.ca_file) {
        fprintf(stderr, "mira serve: --tls-verify-peer needs --tls-ca\n");
        return false;
    }
    if (tls) {
        o->tls = &sec->tls;
        o->tls_port = sec->tls_port >= 0 ? sec->tls_port : 2762;
        o->tls_only = sec->tls_only;
    }
    if (sec->has_access) {
        /* an empty "accept" still configures access: nobody may associate */
        static const mira_dimse_access_rule none[1];
        o->access = sec->rules ? sec->rules : none;
        o->naccess = sec->nrules;
    }
    if (sec->users) {
        o->users = sec->users;
        o->nusers = sec->nusers;
    }
    o->require_user = sec->require_user;
    return true;
}

void mira_cli_security_free(mira_cli_security *sec)
{
    for (size_t i = 0; i < sec->nstrings; i++)
        mira_free(sec->strings[i]);
    mira_free(sec->strings);
    mira_free(sec->rules);
    mira_free(sec->users);
    memset(sec, 0, sizeof *sec);
}

int mira_cli_hash_password(void)
{
    char pw[1024];
    struct termios saved, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        fprintf(stderr, "password: ");
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    bool got = fgets(pw, sizeof pw, stdin) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        fprintf(stderr, "\n");
    }
    pw[strcspn(pw, "\r\n")] = 0;
    if (!got || !*pw) {
        fprintf(stderr, "mira serve: --hash-password: no password on stdin\n");
        return MIRA_EXIT_USAGE;
    }
    mira_error *err = NULL;
    char *h = mira_dimse_password_hash(pw, &err);
    memset(pw, 0, sizeof pw);
    if (!h) {
        mira_cli_report("serve", err);
        return MIRA_EXIT_INPUT;
    }
    printf("%s\n", h);
    mira_free(h);
    return MIRA_EXIT_OK;
}
