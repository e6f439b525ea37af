/* mira echo, send, qr: TLS and user identity options, and the report of the peer's answer. */
#include "scu_options.h"

#include <errno.h>
#include <string.h>

static const char *const type_names[] = {"", "username", "password", "kerberos", "saml", "jwt"};

int mira_cli_scu_option(mira_cli_scu *s, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    bool has = *i + 1 < argc;
    if (strcmp(a, "--tls") == 0 || strcmp(a, "--tls-no-verify") == 0) {
        if (!s->use_tls)
            s->tls.verify_peer = true;
        s->use_tls = true;
        s->tls.verify_peer &= a[5] == 0;
        return 1;
    }
    if (strcmp(a, "--request-identity-response") == 0) {
        s->response = true;
        return 1;
    }
    const char **dest = strcmp(a, "--tls-ca") == 0          ? &s->tls.ca_file
                        : strcmp(a, "--tls-cert") == 0      ? &s->tls.cert_file
                        : strcmp(a, "--tls-key") == 0       ? &s->tls.key_file
                        : strcmp(a, "--user") == 0          ? &s->user
                        : strcmp(a, "--password") == 0      ? &s->password
                        : strcmp(a, "--password-file") == 0 ? &s->password_file
                        : strcmp(a, "--identity-file") == 0 ? &s->identity_file
                                                            : NULL;
    if (dest) {
        if (!has || !*argv[*i + 1]) {
            fprintf(stderr, "mira %s: %s needs a value\n", s->sub, a);
            return -1;
        }
        if (strncmp(a, "--tls", 5) == 0) {
            if (!s->use_tls)
                s->tls.verify_peer = true;
            s->use_tls = true;
        }
        *dest = argv[++*i];
        return 1;
    }
    if (strcmp(a, "--identity-type") == 0) {
        for (int t = 1; has && t <= MIRA_DIMSE_IDENTITY_JWT; t++)
            if (strcmp(argv[*i + 1], type_names[t]) == 0) {
                s->type = (mira_dimse_identity_type)t;
                ++*i;
                return 1;
            }
        fprintf(stderr, "mira %s: --identity-type: username, password, kerberos, saml or jwt\n",
                s->sub);
        return -1;
    }
    return 0;
}

/* A whole small file (at most 1 MiB). */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *b = mira_malloc((1u << 20) + 1);
    size_t n = b ? fread(b, 1, 1u << 20, f) : 0;
    bool over = b && n == 1u << 20 && fgetc(f) != EOF;
    fclose(f);
    if (!b || over) {
        mira_free(b);
        errno = over ? EFBIG : ENOMEM;
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

static void on_accepted(void *ctx, const mira_dimse_accepted *a)
{
    const mira_cli_scu *s = ctx;
    if (s->response) {
        if (a->identity_response)
            fprintf(stderr, "mira %s: the peer confirmed the user identity (a %zu-byte server "
                            "response)\n", s->sub, a->identity_response_len);
        else
            fprintf(stderr, "mira %s: the peer sent no user identity response\n", s->sub);
    }
    if (!s->ext_sent)
        return;
    if (a->next == 0)
        fprintf(stderr, "mira %s: the peer answered no extended negotiation (not supported)\n",
                s->sub);
    for (size_t i = 0; i < a->next; i++) {
        const mira_uid_entry *u = mira_uid_find(a->ext[i].sop_class);
        fprintf(stderr, "mira %s: extended negotiation for %s:", s->sub,
                u ? u->name : a->ext[i].sop_class);
        for (size_t k = 0; k < a->ext[i].len && k < 32; k++)
            fprintf(stderr, " %02X", a->ext[i].info[k]);
        fprintf(stderr, "\n");
    }
}

bool mira_cli_scu_finish(mira_cli_scu *s, mira_dimse_scu_options *o)
{
    if (s->use_tls)
        o->tls = &s->tls;
    if (s->password && s->password_file) {
        fprintf(stderr, "mira %s: --password or --password-file, not both\n", s->sub);
        return false;
    }
    if (s->password_file) {
        size_t n = 0;
        uint8_t *b = slurp(s->password_file, &n);
        if (!b) {
            fprintf(stderr, "mira %s: %s: %s\n", s->sub, s->password_file, strerror(errno));
            return false;
        }
        b[strcspn((char *)b, "\r\n")] = 0;
        s->owned_password = (char *)b;
        s->password = s->owned_password;
    }
    if (s->identity_file) {
        if (!(s->owned_identity = slurp(s->identity_file, &s->identity_len))) {
            fprintf(stderr, "mira %s: %s: %s\n", s->sub, s->identity_file, strerror(errno));
            return false;
        }
    }
    mira_dimse_identity_type t = s->type;
    if (t == MIRA_DIMSE_IDENTITY_NONE && (s->user || s->identity_file))
        t = s->password ? MIRA_DIMSE_IDENTITY_PASSWORD : MIRA_DIMSE_IDENTITY_USERNAME;
    bool has_primary = s->user || s->owned_identity;
    if (t != MIRA_DIMSE_IDENTITY_NONE &&
        (!has_primary || (s->user && s->owned_identity) ||
         (t == MIRA_DIMSE_IDENTITY_PASSWORD) != (s->password != NULL))) {
        fprintf(stderr, "mira %s: a user identity needs --user (or --identity-file), and a "
                        "password exactly with --identity-type password\n", s->sub);
        return false;
    }
    if (t == MIRA_DIMSE_IDENTITY_NONE && (s->password || s->response)) {
        fprintf(stderr, "mira %s: --password and --request-identity-response need --user\n",
                s->sub);
        return false;
    }
    o->identity_type = t;
    o->identity = s->owned_identity ? (const void *)s->owned_identity : s->user;
    o->identity_len = s->owned_identity ? s->identity_len : 0;
    o->password = s->password;
    o->identity_response = s->response;
    o->accepted = on_accepted;
    o->accepted_ctx = s;
    return true;
}

void mira_cli_scu_free(mira_cli_scu *s)
{
    mira_free(s->owned_password);
    mira_free(s->owned_identity);
    s->owned_password = NULL;
    s->owned_identity = NULL;
}
