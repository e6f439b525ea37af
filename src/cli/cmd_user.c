/* mira user and mira audit: the archive's accounts, their bearer tokens, and the audit log. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TOKEN_SECONDS 86400

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira user add NAME --role admin|clinician|researcher [options]\n"
            "       mira user passwd NAME [options]\n"
            "       mira user list [--json] [options]\n"
            "       mira user remove NAME [options]\n"
            "       mira user token NAME [--expires SECONDS] [--json] [options]\n"
            "       mira user token --revoke [options]      (the token read from stdin)\n"
            "       mira user token --revoke-all NAME [options]\n"
            "The accounts of the HTTP server of `mira serve`, kept in the archive's index.\n\n"
            "add, passwd: the password is read from the terminal without echo (asked twice), or\n"
            "as one line from stdin when stdin is not a terminal; never from the command line.\n"
            "%d to %d bytes. It is stored only as an Argon2id hash; passwd also revokes every\n"
            "token of the user.\n"
            "token: prints a new bearer token (256 random bits, base64url) for\n"
            "`Authorization: Bearer TOKEN`; it is shown once (the index keeps only its\n"
            "SHA-256). --expires: its life in seconds (default %d). --json: {\"user\", \"token\",\n"
            "\"expires_at\"}. --revoke ends one token, --revoke-all every token of a user.\n"
            "list: name, role, tokens in force, creation time; --json: one object a line.\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP
            "exit status: 0 success, 1 no such user, a user that exists, a bad password or\n"
            "token, or an archive problem, 2 wrong usage\n",
            MIRA_PASSWORD_MIN, MIRA_PASSWORD_MAX, DEFAULT_TOKEN_SECONDS);
}

/* One line from f into buf (without its end of line); false at EOF before any byte or when
 * the line is too long. */
static bool read_line(FILE *f, char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, f))
        return false;
    size_t n = strlen(buf);
    bool ended = n && buf[n - 1] == '\n';
    if (!ended && !feof(f)) { /* too long: drop the rest of it */
        int c;
        while ((c = fgetc(f)) != EOF && c != '\n')
            ;
        memset(buf, 0, cap);
        return false;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    return true;
}

/* A line typed on the terminal without echo. */
static bool ask_hidden(const char *prompt, char *buf, size_t cap)
{
    struct termios old, quiet;
    if (tcgetattr(STDIN_FILENO, &old) != 0)
        return false;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    fprintf(stderr, "%s", prompt);
    fflush(stderr);
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0)
        return false;
    bool ok = read_line(stdin, buf, cap);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    return ok;
}

/* The new password, from the terminal (twice) or stdin; buf holds it. */
static bool read_password(const char *sub, char *buf, size_t cap)
{
    if (isatty(STDIN_FILENO)) {
        char again[MIRA_PASSWORD_MAX + 2];
        bool ok = ask_hidden("password: ", buf, cap) && ask_hidden("again: ", again, sizeof again);
        if (ok && strcmp(buf, again) != 0) {
            fprintf(stderr, "mira user %s: the two passwords differ\n", sub);
            ok = false;
        }
        memset(again, 0, sizeof again);
        return ok;
    }
    if (!read_line(stdin, buf, cap)) {
        fprintf(stderr, "mira user %s: no password on stdin (one line, at most %d bytes)\n", sub,
                MIRA_PASSWORD_MAX);
        return false;
    }
    return true;
}

static int report(const char *sub, mira_error *err)
{
    fprintf(stderr, "mira user %s: %s\n", sub, err ? mira_error_get_message(err) : "failed");
    mira_error_free(err);
    return MIRA_EXIT_INPUT;
}

static bool print_user(void *ctx, const mira_user_info *u)
{
    bool json = *(bool *)ctx;
    if (json) {
        mira_json_writer *w = mira_json_writer_new(false);
        if (!w)
            return false;
        mira_json_begin_object(w);
        mira_json_key(w, "name");
        mira_json_cstring(w, u->name);
        mira_json_key(w, "role");
        mira_json_cstring(w, mira_role_name(u->role));
        mira_json_key(w, "tokens");
        mira_json_uint(w, u->tokens);
        mira_json_key(w, "created_at");
        mira_json_cstring(w, u->created_at);
        mira_json_end_object(w);
        char *text = mira_json_writer_finish(w, NULL, NULL);
        mira_json_writer_free(w);
        if (!text)
            return false;
        printf("%s\n", text);
        mira_free(text);
    } else {
        printf("%-24s %-10s %4llu tokens  created %s\n", u->name, mira_role_name(u->role),
               (unsigned long long)u->tokens, u->created_at);
    }
    return true;
}

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int mira_cli_user(int argc, char **argv)
{
    if (argc < 2 || mira_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MIRA_EXIT_USAGE : MIRA_EXIT_OK;
    }
    const char *sub = NULL; /* the first word that is no option, wherever it is */
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    const char *name = NULL, *role_name = NULL, *revoke_all = NULL;
    bool json = false, revoke = false;
    long long expires = DEFAULT_TOKEN_SECONDS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int took = mira_cli_archive_option(argc, argv, &i, &ao);
        if (took < 0) {
            fprintf(stderr, "mira user: %s needs a value\n", a);
            return MIRA_EXIT_USAGE;
        }
        if (took)
            continue;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--revoke") == 0) {
            revoke = true;
        } else if (strcmp(a, "--role") == 0 && i + 1 < argc) {
            role_name = argv[++i];
        } else if (strcmp(a, "--revoke-all") == 0 && i + 1 < argc) {
            revoke_all = argv[++i];
        } else if (strcmp(a, "--expires") == 0 && i + 1 < argc) {
            char *end = NULL;
            errno = 0;
            expires = strtoll(argv[++i], &end, 10);
            if (errno || !*argv[i] || *end || expires < 1) {
                fprintf(stderr, "mira user: --expires takes a positive number of seconds\n");
                return MIRA_EXIT_USAGE;
            }
        } else if (a[0] != '-' && !sub) {
            sub = a;
        } else if (a[0] != '-' && !name) {
            name = a;
        } else {
            fprintf(stderr, "mira user: unexpected argument '%s'\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        }
    }
    if (!sub) {
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    bool is_add = strcmp(sub, "add") == 0, is_passwd = strcmp(sub, "passwd") == 0,
         is_list = strcmp(sub, "list") == 0, is_remove = strcmp(sub, "remove") == 0,
         is_token = strcmp(sub, "token") == 0;
    mira_role role = MIRA_ROLE_RESEARCHER;
    if (!is_add && !is_passwd && !is_list && !is_remove && !is_token) {
        fprintf(stderr, "mira user: '%s' is not add, passwd, list, remove or token\n", sub);
        return MIRA_EXIT_USAGE;
    }
    if ((is_add || is_passwd || is_remove || (is_token && !revoke && !revoke_all)) && !name) {
        fprintf(stderr, "mira user %s: a user NAME is needed\n", sub);
        return MIRA_EXIT_USAGE;
    }
    if (is_add && (!role_name || !mira_role_from_name(role_name, &role))) {
        fprintf(stderr, "mira user add: --role admin, clinician or researcher is needed\n");
        return MIRA_EXIT_USAGE;
    }
    if ((is_list && name) || (revoke && (name || revoke_all)) || (!is_add && role_name) ||
        (!is_token && (revoke || revoke_all))) {
        fprintf(stderr, "mira user %s: unexpected arguments\n", sub);
        return MIRA_EXIT_USAGE;
    }
    if (name && !mira_user_name_valid(name)) {
        fprintf(stderr, "mira user %s: '%s' is not a user name (1 to 64 ASCII letters, digits "
                        "and . _ - @)\n",
                sub, name);
        return MIRA_EXIT_INPUT;
    }
    char password[MIRA_PASSWORD_MAX + 2];
    memset(password, 0, sizeof password);
    if ((is_add || is_passwd) && !read_password(sub, password, sizeof password))
        return MIRA_EXIT_INPUT;
    char token[MIRA_PASSWORD_MAX + 2] = "";
    if (revoke && !read_line(stdin, token, sizeof token)) {
        fprintf(stderr, "mira user token: --revoke reads the token from stdin (one line)\n");
        return MIRA_EXIT_INPUT;
    }
    mira_archive *a = mira_cli_open_archive("user", &ao, is_add);
    if (!a) {
        memset(password, 0, sizeof password);
        return MIRA_EXIT_INPUT;
    }
    mira_error *err = NULL;
    int rc = MIRA_EXIT_OK;
    if (is_add) {
        if (mira_user_add(a, name, role, password, &err))
            printf("added user %s (%s)\n", name, mira_role_name(role));
        else
            rc = report(sub, err);
    } else if (is_passwd) {
        if (mira_user_set_password(a, name, password, &err))
            printf("changed the password of %s (its tokens are revoked)\n", name);
        else
            rc = report(sub, err);
    } else if (is_remove) {
        if (mira_user_remove(a, name, &err))
            printf("removed user %s\n", name);
        else
            rc = report(sub, err);
    } else if (is_list) {
        if (!mira_user_list(a, print_user, &json, &err))
            rc = report(sub, err);
    } else if (revoke) {
        if (mira_token_revoke(a, token, &err))
            printf("revoked the token\n");
        else
            rc = report(sub, err);
    } else if (revoke_all) {
        uint64_t n = 0;
        if (mira_token_revoke_user(a, revoke_all, &n, &err))
            printf("revoked %llu tokens of %s\n", (unsigned long long)n, revoke_all);
        else
            rc = report(sub, err);
    } else {
        char t[MIRA_TOKEN_SIZE];
        int64_t exp = 0;
        if (mira_token_new(a, name, (int64_t)expires, t, &exp, &err)) {
            char at[32];
            iso_time(exp, at);
            if (json)
                printf("{\"user\":\"%s\",\"token\":\"%s\",\"expires_at\":\"%s\",\"expires_in\":%lld}\n",
                       name, t, at, expires);
            else
                printf("%s\n", t);
            memset(t, 0, sizeof t);
        } else {
            rc = report(sub, err);
        }
    }
    memset(password, 0, sizeof password);
    memset(token, 0, sizeof token);
    mira_archive_close(a);
    return rc;
}

/* ------------------------------------------------------------------ mira audit */

static void audit_usage(FILE *out)
{
    fprintf(out,
            "usage: mira audit [--since TIME] [--user NAME] [--limit N] [--json] [options]\n"
            "The audit log of the archive, oldest first: every sign-in, every refused request\n"
            "and every request of the HTTP server that returned (or was refused) patient data:\n"
            "when (UTC), who, role, event, method, path, status, peer, the studies touched.\n"
            "The index keeps it append-only (it refuses UPDATE and DELETE).\n"
            "  --since TIME   events at or after TIME (UTC, ISO 8601: 2026-01-31 or\n"
            "                 2026-01-31T12:00)\n"
            "  --user NAME    that user's events\n"
            "  --limit N      the latest N events\n"
            "  --json         one JSON object a line\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP
            "exit status: 0 success, 1 an archive problem, 2 wrong usage\n");
}

static bool print_event(void *ctx, const mira_audit_event *e)
{
    bool json = *(bool *)ctx;
    if (!json) {
        printf("%s %s %s %s %s %s -> %d from %s%s%s%s%s\n", e->at, *e->user ? e->user : "-",
               *e->role ? e->role : "-", e->event, e->method, e->path, e->status, e->peer,
               *e->studies ? " studies " : "", e->studies, *e->detail ? ": " : "", e->detail);
        return true;
    }
    mira_json_writer *w = mira_json_writer_new(false);
    if (!w)
        return false;
    mira_audit_event_json(w, e);
    char *text = mira_json_writer_finish(w, NULL, NULL);
    mira_json_writer_free(w);
    if (!text)
        return false;
    printf("%s\n", text);
    mira_free(text);
    return true;
}

int mira_cli_audit(int argc, char **argv)
{
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    mira_audit_filter f = {NULL, NULL, 0};
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int took = mira_cli_archive_option(argc, argv, &i, &ao);
        if (took < 0) {
            fprintf(stderr, "mira audit: %s needs a value\n", a);
            return MIRA_EXIT_USAGE;
        }
        if (took)
            continue;
        if (mira_cli_is_help(a)) {
            audit_usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--since") == 0 && i + 1 < argc) {
            f.since = argv[++i];
        } else if (strcmp(a, "--user") == 0 && i + 1 < argc) {
            f.user = argv[++i];
        } else if (strcmp(a, "--limit") == 0 && i + 1 < argc) {
            char *end = NULL;
            long long n = strtoll(argv[++i], &end, 10);
            if (!*argv[i] || *end || n < 1) {
                fprintf(stderr, "mira audit: --limit takes a positive number\n");
                return MIRA_EXIT_USAGE;
            }
            f.limit = (uint64_t)n;
        } else {
            fprintf(stderr, "mira audit: unexpected argument '%s'\n", a);
            audit_usage(stderr);
            return MIRA_EXIT_USAGE;
        }
    }
    mira_archive *a = mira_cli_open_archive("audit", &ao, false);
    if (!a)
        return MIRA_EXIT_INPUT;
    mira_error *err = NULL;
    int rc = MIRA_EXIT_OK;
    if (!mira_audit_read(a, &f, print_event, &json, &err)) {
        mira_cli_report("audit", err);
        rc = MIRA_EXIT_INPUT;
    }
    mira_archive_close(a);
    return rc;
}
