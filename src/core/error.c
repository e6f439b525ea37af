/* Error values: code, summary and a message naming where things went wrong. */
#include "mira/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mira_error {
    mira_error_code code;
    bool is_static;
    char summary[64];
    char message[512];
};

/* Preallocated so that reporting out-of-memory never allocates. */
static struct mira_error oom_error = {MIRA_ERR_NOMEM, true, "Out of memory", "Out of memory"};

mira_error_code mira_error_get_code(const mira_error *err)
{
    return err ? err->code : MIRA_OK;
}

const char *mira_error_get_summary(const mira_error *err)
{
    return err ? err->summary : "";
}

const char *mira_error_get_message(const mira_error *err)
{
    return err ? err->message : "";
}

void mira_error_free(mira_error *err)
{
    if (err && !err->is_static)
        free(err);
}

void mira_error_set(mira_error **err, mira_error_code code, const char *summary, const char *fmt,
                    ...)
{
    if (!err)
        return;
    if (*err) {
        /* Setting twice is a bug; keep the first (original) cause. */
        return;
    }
    if (code == MIRA_ERR_NOMEM) {
        *err = &oom_error;
        return;
    }
    /* Errors are allocated with plain malloc so the failure hook cannot recurse. */
    struct mira_error *e = calloc(1, sizeof *e);
    if (!e) {
        *err = &oom_error;
        return;
    }
    e->code = code;
    snprintf(e->summary, sizeof e->summary, "%s", summary ? summary : mira_error_code_name(code));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    *err = e;
}

void mira_error_prefix(mira_error **err, const char *fmt, ...)
{
    if (!err || !*err || (*err)->is_static)
        return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char tmp[sizeof prefix + sizeof(*err)->message];
    size_t pl = strlen(prefix), ml = strlen((*err)->message);
    memcpy(tmp, prefix, pl);
    memcpy(tmp + pl, (*err)->message, ml + 1);
    size_t cap = sizeof(*err)->message - 1;
    size_t n = pl + ml < cap ? pl + ml : cap;
    memcpy((*err)->message, tmp, n);
    (*err)->message[n] = '\0';
}

const char *mira_error_code_name(mira_error_code code)
{
    switch (code) {
    case MIRA_OK: return "OK";
    case MIRA_ERR_NOMEM: return "Out of memory";
    case MIRA_ERR_IO: return "I/O error";
    case MIRA_ERR_INVALID: return "Invalid input";
    case MIRA_ERR_UNSUPPORTED: return "Unsupported";
    case MIRA_ERR_NOT_FOUND: return "Not found";
    case MIRA_ERR_ARGUMENT: return "Invalid argument";
    case MIRA_ERR_LIMIT: return "Limit exceeded";
    case MIRA_ERR_CONFLICT: return "Conflict";
    }
    return "Unknown error";
}
