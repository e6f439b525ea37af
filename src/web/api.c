/* The REST API of mira serve (JSON, under /api/): what DICOMweb does not cover. */
#include "web/web_int.h"

#include "mira/json.h"

#include <stdio.h>
#include <string.h>

/*
 * Every request under /api/ comes here after the access check (a valid token), with a consumer
 * of its body (at most API_MAX_BODY bytes: the API takes small JSON documents, never images),
 * whose finish routes it and makes the reply. Routes decide what each role may do.
 */

#define API_MAX_BODY (1024 * 1024)

typedef struct api_req {
    mira__api_options o; /* strings owned (copied) */
    mira_principal who;
    mira__buf body;
    bool too_large;
} api_req;

bool mira__api_route(const char *target)
{
    size_t n = strcspn(target, "?");
    return n >= 5 && memcmp(target, "/api/", 5) == 0;
}

static bool path_is(const api_req *q, const char *p)
{
    size_t n = strcspn(q->o.target, "?");
    return strlen(p) == n && memcmp(q->o.target, p, n) == 0;
}

/* GET /api/stats: counts and bytes of the archive. */
static void get_stats(api_req *q, mira__http_reply *r)
{
    mira_archive_stats st;
    mira_error *err = NULL;
    if (!mira_archive_get_stats(q->o.archive, &st, &err)) {
        mira__http_reply_error(r, 500, "the archive could not be counted: %s",
                               mira_error_get_message(err));
        mira_error_free(err);
        return;
    }
    mira__buf_printf(&r->body,
                     "{\"patients\":%llu,\"studies\":%llu,\"series\":%llu,\"instances\":%llu,"
                     "\"bytes\":%llu,\"index\":\"%s\"}",
                     (unsigned long long)st.patients, (unsigned long long)st.studies,
                     (unsigned long long)st.series, (unsigned long long)st.instances,
                     (unsigned long long)st.bytes, mira_archive_index_kind(q->o.archive));
    r->status = 200;
    r->content_type = "application/json";
}

static bool api_feed(void *ctx, const uint8_t *p, size_t n)
{
    api_req *q = ctx;
    if (q->body.len + n > API_MAX_BODY) {
        q->too_large = true;
        return false;
    }
    return mira__buf_append(&q->body, p, n);
}

static void api_finish(void *ctx, mira__http_reply *r)
{
    api_req *q = ctx;
    bool reading = strcmp(q->o.method, "GET") == 0 || strcmp(q->o.method, "HEAD") == 0;
    if (q->too_large) {
        mira__http_reply_error(r, 413, "the API takes bodies of at most %d bytes", API_MAX_BODY);
    } else if (q->body.failed) {
        mira__http_reply_error(r, 503, "out of memory");
    } else if (path_is(q, "/api/stats")) {
        if (!reading) {
            mira__http_reply_error(r, 405, "%s is not allowed here: the statistics take GET",
                                   q->o.method);
            r->allow = "GET, HEAD";
        } else
            get_stats(q, r);
    } else {
        mira__http_reply_error(r, 404, "no such API resource");
    }
}

static void api_free(void *ctx)
{
    api_req *q = ctx;
    if (!q)
        return;
    mira_free((char *)q->o.method);
    mira_free((char *)q->o.target);
    mira_free((char *)q->o.content_type);
    mira_free((char *)q->o.peer);
    mira__buf_cleanup(&q->body);
    mira_free(q);
}

bool mira__api_begin(const mira__api_options *o, mira__http_body *body, mira__http_reply *r)
{
    api_req *q = mira_calloc(1, sizeof *q);
    if (!q) {
        mira__http_reply_error(r, 503, "out of memory");
        return false;
    }
    q->o = *o;
    q->o.method = mira_strdup(o->method);
    q->o.target = mira_strdup(o->target);
    q->o.content_type = o->content_type ? mira_strdup(o->content_type) : NULL;
    q->o.peer = mira_strdup(o->peer ? o->peer : "");
    q->who = *o->who;
    q->o.who = &q->who;
    mira__buf_init(&q->body);
    if (!q->o.method || !q->o.target || !q->o.peer || (o->content_type && !q->o.content_type)) {
        api_free(q);
        mira__http_reply_error(r, 503, "out of memory");
        return false;
    }
    body->ctx = q;
    body->feed = api_feed;
    body->finish = api_finish;
    body->free = api_free;
    return true;
}

void mira__api_openapi(const char *method, mira__http_reply *r)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        mira__http_reply_error(r, 405, "%s is not allowed here: the description takes GET",
                               method);
        r->allow = "GET, HEAD";
        return;
    }
    mira__http_reply_error(r, 404, "the OpenAPI document is not part of this build yet");
}
