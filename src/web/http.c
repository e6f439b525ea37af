/* The HTTP server of mira serve: libmicrohttpd, routing, content negotiation, request logs. */
#include "web/web_int.h"

#include "web/auth.h"

#include "mira/json.h"
#include "net/net.h"
#include "core/fileio.h"

#include <microhttpd.h>
#include <zlib.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/random.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/*
 * libmicrohttpd runs a thread per connection (MHD_USE_THREAD_PER_CONNECTION, with its
 * internal thread accepting): a search waits on the index (SQLite or PostgreSQL), and a thread
 * of its own keeps that wait from stalling the other connections, as an event loop shared by
 * many connections would; the count of connections is bounded (max_connections), as the
 * DIMSE server bounds associations. The listening socket is made by src/net (the same
 * address handling as DIMSE) and handed to libmicrohttpd.
 *
 * Each connection has a conn_state (made when it opens, freed when it closes: never lost,
 * whatever happens to a request) that holds the raw request target of its current request,
 * which libmicrohttpd gives before parsing it (MHD_OPTION_URI_LOG_CALLBACK): the query string
 * is parsed here, not by libmicrohttpd, so that a repeated key or a bad escape is seen, and so
 * that the parser can be fuzzed on its own (fuzz/fuzz_qido.c).
 *
 * A request is routed when its headers have arrived (the first call of on_request). A route
 * that takes a body (STOW-RS) gets a consumer then (mira__http_body, in the conn_state), fed
 * each piece of the body as libmicrohttpd reads it, so no body is ever held whole; other
 * requests' bodies are read and dropped. The reply is made and queued on the last call, once
 * the body has ended, except a refusal that makes reading the body pointless (413 from the
 * Content-Length), queued on the first call: libmicrohttpd then skips the body (a client
 * that sent Expect: 100-continue never sends it) and closes the connection.
 */

struct mira_web_server {
    mira_web_server_options opt;
    char *bind;
    int fd;
    int port;
    struct MHD_Daemon *daemon;
    mira__auth *auth; /* tokens, roles, sign-in, audit (auth.c) */
    char *cert, *key; /* PEM text of the HTTPS certificate and key (libmicrohttpd keeps
                       * pointers to them), or NULL */
    char *cors;       /* the allowed origins, "," separated, or "*"; NULL: no CORS */
    /* researchers' retrievals: the Basic Profile with UIDs retained (so that what QIDO-RS
     * shows them leads to what they retrieve), pseudonyms from the archive's key (deid_key) */
    mira_deid_context *deid;
    mira__md_cache *cache; /* assembled metadata of studies and series (mdcache.c) */
};

typedef struct conn_state {
    char *target; /* the request target as sent (path and query), owned */
    int64_t start_ms;
    bool headers_seen; /* the current request's first call to on_request is done */
    int status;        /* of the reply queued, 0 before */
    size_t bytes;
    uint64_t received; /* bytes of the request body */
    /* the route's consumer of the body (body.ctx NULL: none, the body is dropped) */
    mira__http_body body;
    bool body_done; /* the consumer has decided: the rest of the body is dropped */
    /* a reply decided from the headers, queued once the body has been dropped */
    mira__http_reply decided;
    bool has_decided;
    char method[16];
    char peer[64];
    char origin[256]; /* the current request's Origin when CORS allows it, else "" */
    bool preflight;   /* it is a CORS preflight (OPTIONS with Access-Control-Request-Method) */
    bool gzip;        /* its Accept-Encoding takes gzip */
    bool authorized;    /* the current request passed the access check (auth.c) */
    mira_principal who; /* whose token it carries */
} conn_state;

void mira_web_server_options_init(mira_web_server_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->max_connections = 64;
    opt->max_header_bytes = 32768;
    opt->idle_seconds = 60;
    opt->max_results = 1000;
}

/* ------------------------------------------------------------------ replies */

void mira__http_reply_init(mira__http_reply *r)
{
    memset(r, 0, sizeof *r);
    mira__buf_init(&r->body);
    mira__buf_init(&r->studies);
    mira__buf_init(&r->series);
}

void mira__http_reply_cleanup(mira__http_reply *r)
{
    mira__buf_cleanup(&r->body);
    for (size_t i = 0; i < r->nwarnings; i++)
        mira_free(r->warnings[i]);
    r->nwarnings = 0;
    mira_free(r->authenticate);
    r->authenticate = NULL;
    mira__buf_cleanup(&r->studies);
    mira__buf_cleanup(&r->series);
    if (r->stream && r->stream_free)
        r->stream_free(r->stream_ctx);
    r->stream = NULL;
    r->stream_ctx = NULL;
}

const char *mira__http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "";
    }
}

void mira__http_reply_error(mira__http_reply *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->status = status;
    r->content_type = "application/json";
    r->body.len = 0;
    mira_json_writer *w = mira_json_writer_new(false);
    char *json = NULL;
    size_t len = 0;
    if (w) {
        mira_json_begin_object(w);
        mira_json_key(w, "status");
        mira_json_int(w, status);
        mira_json_key(w, "error");
        mira_json_cstring(w, mira__http_reason(status));
        mira_json_key(w, "message");
        mira_json_cstring(w, msg);
        mira_json_end_object(w);
        json = mira_json_writer_finish(w, &len, NULL);
        mira_json_writer_free(w);
    }
    if (json)
        mira__buf_append(&r->body, json, len);
    mira_free(json);
}

void mira__http_reply_warning(mira__http_reply *r, const char *text)
{
    if (r->nwarnings == MIRA__HTTP_MAX_WARNINGS)
        return;
    size_t n = strlen(text) + 32;
    char *w = mira_malloc(n);
    if (!w)
        return;
    snprintf(w, n, "299 mira: \"%s\"", text);
    r->warnings[r->nwarnings++] = w;
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *mira__url_decode(const char *s, size_t len, bool plus_is_space, mira_error **err)
{
    char *out = mira_malloc(len + 1);
    if (!out) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "decoding a URL");
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int a = i + 1 < len ? hex(s[i + 1]) : -1;
            int b = i + 2 < len ? hex(s[i + 2]) : -1;
            int h = a >= 0 && b >= 0 ? a * 16 + b : -1;
            if (h <= 0) {
                mira_error_set(err, MIRA_ERR_INVALID, "Bad URL",
                               h == 0 ? "a NUL byte (%%00) at offset %zu"
                                      : "a '%%' not followed by two hex digits at offset %zu",
                               i);
                mira_free(out);
                return NULL;
            }
            out[o++] = (char)h;
            i += 2;
        } else if (c == '\0') {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad URL", "a NUL byte at offset %zu", i);
            mira_free(out);
            return NULL;
        } else {
            out[o++] = plus_is_space && c == '+' ? ' ' : c;
        }
    }
    out[o] = 0;
    return out;
}

/* ------------------------------------------------------------------ content negotiation */

/* True if the Accept header (NULL: none) admits a DICOM JSON reply; *plain is set when only
 * application/json is admitted (the reply is then labelled so). */
static bool accepts_json(const char *accept, bool *plain)
{
    *plain = false;
    if (!accept || !*accept)
        return true;
    bool dicom = false, json = false;
    for (const char *p = accept; *p;) {
        size_t n = strcspn(p, ",");
        char range[128];
        snprintf(range, sizeof range, "%.*s", (int)(n < 127 ? n : 127), p);
        /* the media range, then its parameters: q=0 refuses it */
        char *semi = strchr(range, ';');
        bool refused = false;
        if (semi) {
            *semi = 0;
            for (char *q = semi + 1; q && *q; q = strchr(q, ';') ? strchr(q, ';') + 1 : NULL) {
                while (*q == ' ' || *q == '\t')
                    q++;
                if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
                    double v = strtod(q + 2, NULL);
                    refused = v <= 0;
                }
            }
        }
        char *t = range;
        while (*t == ' ' || *t == '\t')
            t++;
        size_t l = strlen(t);
        while (l && (t[l - 1] == ' ' || t[l - 1] == '\t'))
            t[--l] = 0;
        if (!refused) {
            if (strcasecmp(t, "application/dicom+json") == 0 || strcasecmp(t, "*/*") == 0 ||
                strcasecmp(t, "application/*") == 0)
                dicom = true;
            else if (strcasecmp(t, "application/json") == 0)
                json = true;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    *plain = !dicom && json;
    return dicom || json;
}

/* ------------------------------------------------------------------ routing */

/* ------------------------------------------------------------------ CORS, OPTIONS, gzip */

/* True if origin may read the replies: it is one of the configured origins, or any is. */
static bool cors_allowed(const mira_web_server *s, const char *origin)
{
    if (!s->cors || !origin || !*origin || strlen(origin) >= 256)
        return false;
    if (strcmp(s->cors, "*") == 0)
        return true;
    size_t n = strlen(origin);
    for (const char *p = s->cors; *p;) {
        size_t k = strcspn(p, ",");
        const char *a = p, *b = p + k;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        if ((size_t)(b - a) == n && strncasecmp(a, origin, n) == 0)
            return true;
        p += k;
        if (*p == ',')
            p++;
    }
    return false;
}

/* The methods a path takes (for Allow and CORS preflights). */
static const char *methods_of(const char *target)
{
    size_t n = strcspn(target, "?");
    if (mira__api_route(target))
        return "GET, HEAD, POST, PUT, DELETE";
    if (n == 11 && memcmp(target, "/auth/token", 11) == 0)
        return "POST";
    mira__route rt;
    mira__http_reply r;
    mira__http_reply_init(&r);
    bool found = mira__route_match(target, n, &rt, &r);
    bool store = found && rt.store;
    mira__route_free(&rt);
    mira__http_reply_cleanup(&r);
    return store ? "GET, HEAD, POST" : "GET, HEAD";
}

/* The capabilities of the DICOMweb service (PS3.18 8.9): a WADL description of its resources. */
static const char wadl[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<application xmlns=\"http://wadl.dev.java.net/2009/02\">\n"
    " <resources base=\"/dicomweb\">\n"
    "  <resource path=\"studies\">\n"
    "   <method name=\"GET\" id=\"SearchForStudies\"/>\n"
    "   <method name=\"POST\" id=\"StoreInstances\"/>\n"
    "   <resource path=\"{study}\">\n"
    "    <method name=\"GET\" id=\"RetrieveStudy\"/>\n"
    "    <method name=\"POST\" id=\"StoreStudyInstances\"/>\n"
    "    <resource path=\"metadata\"><method name=\"GET\" id=\"RetrieveStudyMetadata\"/>"
    "</resource>\n"
    "    <resource path=\"rendered\"><method name=\"GET\" id=\"RetrieveRenderedStudy\"/>"
    "</resource>\n"
    "    <resource path=\"thumbnail\"><method name=\"GET\" id=\"RetrieveStudyThumbnail\"/>"
    "</resource>\n"
    "    <resource path=\"series\">\n"
    "     <method name=\"GET\" id=\"SearchForStudySeries\"/>\n"
    "     <resource path=\"{series}\">\n"
    "      <method name=\"GET\" id=\"RetrieveSeries\"/>\n"
    "      <resource path=\"metadata\"><method name=\"GET\" id=\"RetrieveSeriesMetadata\"/>"
    "</resource>\n"
    "      <resource path=\"thumbnail\"><method name=\"GET\" id=\"RetrieveSeriesThumbnail\"/>"
    "</resource>\n"
    "      <resource path=\"instances\">\n"
    "       <method name=\"GET\" id=\"SearchForSeriesInstances\"/>\n"
    "       <resource path=\"{instance}\">\n"
    "        <method name=\"GET\" id=\"RetrieveInstance\"/>\n"
    "        <resource path=\"metadata\"><method name=\"GET\" "
    "id=\"RetrieveInstanceMetadata\"/></resource>\n"
    "        <resource path=\"rendered\"><method name=\"GET\" "
    "id=\"RetrieveRenderedInstance\"/></resource>\n"
    "        <resource path=\"thumbnail\"><method name=\"GET\" "
    "id=\"RetrieveInstanceThumbnail\"/></resource>\n"
    "        <resource path=\"frames/{frames}\">\n"
    "         <method name=\"GET\" id=\"RetrieveFrames\"/>\n"
    "         <resource path=\"rendered\"><method name=\"GET\" "
    "id=\"RetrieveRenderedFrames\"/></resource>\n"
    "         <resource path=\"thumbnail\"><method name=\"GET\" "
    "id=\"RetrieveFramesThumbnail\"/></resource>\n"
    "        </resource>\n"
    "        <resource path=\"bulkdata/{path}\"><method name=\"GET\" "
    "id=\"RetrieveBulkdata\"/></resource>\n"
    "       </resource>\n"
    "      </resource>\n"
    "     </resource>\n"
    "    </resource>\n"
    "    <resource path=\"instances\"><method name=\"GET\" "
    "id=\"SearchForStudyInstances\"/></resource>\n"
    "   </resource>\n"
    "  </resource>\n"
    "  <resource path=\"series\"><method name=\"GET\" id=\"SearchForSeries\"/></resource>\n"
    "  <resource path=\"instances\"><method name=\"GET\" id=\"SearchForInstances\"/>"
    "</resource>\n"
    " </resources>\n"
    "</application>\n";

/* An OPTIONS request (no token needed: nothing it answers is patient data): a CORS preflight
 * (204 with what the path allows), the capabilities of /dicomweb (PS3.18 8.9), or the Allow of
 * any other path. */
static void options_reply(const char *target, bool preflight, mira__http_reply *r)
{
    size_t n = strcspn(target, "?");
    r->allow = methods_of(target);
    if (!preflight && ((n == 9 && memcmp(target, "/dicomweb", 9) == 0) ||
                       (n == 10 && memcmp(target, "/dicomweb/", 10) == 0))) {
        r->status = 200;
        r->content_type = "application/vnd.sun.wadl+xml";
        mira__buf_append(&r->body, wadl, sizeof wadl - 1);
    } else {
        r->status = 204;
    }
}

bool mira__http_gzip(mira__buf *body)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* level 1: JSON shrinks several times even so, at a cost small beside sending it */
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return false;
    uLong cap = deflateBound(&z, (uLong)body->len);
    uint8_t *out = mira_malloc(cap);
    bool ok = out != NULL;
    if (ok) {
        z.next_in = body->data;
        z.avail_in = (uInt)body->len;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        ok = deflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out < body->len;
    }
    deflateEnd(&z);
    if (ok) {
        body->len = 0;
        ok = mira__buf_append(body, out, z.total_out);
    }
    mira_free(out);
    return ok;
}

/* ------------------------------------------------------------------ requests */

/* A search (GET and HEAD), or the 404 or 405 of any request no route took at its headers. */
static void base_url(mira_web_server *s, struct MHD_Connection *c, char *out, size_t n);

/* A search or a retrieval (GET and HEAD), or the 404 or 405 of any request no route took at its
 * headers. */
static void serve(mira_web_server *s, struct MHD_Connection *c, const char *method,
                  const char *target, const mira_principal *who, mira__http_reply *r,
                  const char **allow)
{
    size_t tlen = strlen(target);
    const char *qm = memchr(target, '?', tlen);
    size_t plen = qm ? (size_t)(qm - target) : tlen;
    mira__route rt;
    if (!mira__route_match(target, plen, &rt, r))
        return;
    const char *query = qm ? qm + 1 : "";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        *allow = rt.store ? "GET, HEAD, POST" : "GET, HEAD";
        mira__http_reply_error(r, 405, "%s is not allowed here: %s takes GET%s", method,
                               rt.search ? "a search" : "a retrieval",
                               rt.store ? ", a store POST" : "");
    } else if (rt.wado) {
        if (who->role == MIRA_ROLE_RESEARCHER && !s->deid) {
            mira__http_reply_error(r, 503, "de-identification is not available");
        } else {
            char base[400];
            base_url(s, c, base, sizeof base);
            mira__wado_request q = {
                .kind = rt.kind,
                .level = rt.level,
                .study = rt.study,
                .series = rt.series,
                .sop = rt.sop,
                .frames = rt.frames,
                .bulk = rt.bulk,
                .query = query,
                .accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept"),
                .range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range"),
                .base_url = base,
                .uri = rt.uri,
                .deid = who->role == MIRA_ROLE_RESEARCHER ? s->deid : NULL,
                .cache = s->cache,
            };
            mira__wado_serve(s->opt.archive, &q, r);
        }
    } else {
        bool plain;
        const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
        if (!accepts_json(accept, &plain)) {
            mira__http_reply_error(r, 406, "a search answers application/dicom+json or "
                                           "application/json only");
        } else {
            mira__qido_query q;
            mira_error *err = NULL;
            if (!mira__qido_parse(rt.level, rt.study, rt.series, query, strlen(query), &q, &err)) {
                if (mira_error_get_code(err) == MIRA_ERR_NOMEM)
                    mira__http_reply_error(r, 503, "out of memory");
                else
                    mira__http_reply_error(r, 400, "%s", mira_error_get_message(err));
                mira_error_free(err);
            } else if (who->role == MIRA_ROLE_RESEARCHER &&
                       !mira__auth_deidentify_query(q.identifier, r)) {
                /* a search by an identifying attribute: 403 in r */
            } else {
                char base[400];
                base_url(s, c, base, sizeof base);
                mira__qido_search(s->opt.archive, s->opt.max_results, &q, base, r);
                if (plain && r->content_type &&
                    strcmp(r->content_type, "application/dicom+json") == 0)
                    r->content_type = "application/json";
            }
            mira__qido_query_cleanup(&q);
        }
    }
    mira__route_free(&rt);
}

/* A streamed body, counted for the request's log line as it goes out. */
typedef struct counted {
    ssize_t (*read)(void *ctx, uint64_t pos, char *buf, size_t max);
    void (*free)(void *ctx);
    void *ctx;
    size_t *bytes; /* the connection's count for the current request (cs->bytes) */
} counted;

static ssize_t counted_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    counted *c = cls;
    ssize_t n = c->read(c->ctx, pos, buf, max);
    if (n > 0)
        *c->bytes += (size_t)n;
    return n;
}

static void counted_free(void *cls)
{
    counted *c = cls;
    c->free(c->ctx);
    mira_free(c);
}

/* Queue r on c (allow: the Allow header of a 405, or NULL); its status is kept in cs. */
static enum MHD_Result queue_reply(struct MHD_Connection *c, conn_state *cs,
                                   mira__http_reply *r, const char *allow)
{
    if (r->body.failed) {
        r->body.len = 0;
        r->status = 503;
    }
    struct MHD_Response *resp;
    bool streamed = r->stream != NULL;
    bool json = !streamed && r->content_type &&
                (strncmp(r->content_type, "application/dicom+json", 22) == 0 ||
                 strncmp(r->content_type, "application/json", 16) == 0);
    bool gzipped = json && ((cs && cs->gzip && r->body_gzipped) ||
                            (cs && cs->gzip && !r->body_gzipped && r->body.len > 1024 &&
                             r->body.len < UINT32_MAX && mira__http_gzip(&r->body)));
    if (streamed) { /* the response owns the stream from here, whatever happens */
        counted *k = cs ? mira_malloc(sizeof *k) : NULL;
        if (k) {
            *k = (counted){r->stream, r->stream_free, r->stream_ctx, &cs->bytes};
            cs->bytes = 0;
        }
        uint64_t size = r->stream_size == UINT64_MAX ? MHD_SIZE_UNKNOWN : r->stream_size;
        resp = k ? MHD_create_response_from_callback(size, 256 * 1024, counted_read, k,
                                                     counted_free)
                 : MHD_create_response_from_callback(size, 256 * 1024,
                                                     (MHD_ContentReaderCallback)r->stream,
                                                     r->stream_ctx, r->stream_free);
        if (!resp) {
            if (k)
                counted_free(k);
            else
                r->stream_free(r->stream_ctx);
        }
        r->stream = NULL;
        r->stream_ctx = NULL;
    } else if (r->body.len > 64 * 1024) {
        /* a large body (series metadata: megabytes) is handed over, not copied */
        size_t n = r->body.len;
        char *data = mira__buf_steal(&r->body, NULL);
        resp = data ? MHD_create_response_from_buffer_with_free_callback(n, data, mira_free)
                    : NULL;
        if (!resp)
            mira_free(data);
        r->body.len = n; /* (for the log: the buffer itself is gone) */
    } else {
        resp = MHD_create_response_from_buffer(
            r->body.len, r->body.len ? r->body.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    }
    enum MHD_Result ret = MHD_NO;
    if (resp) {
        if (r->content_type && (r->body.len || streamed))
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
        if (gzipped)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
        if (json) /* compressed for the clients that take it */
            MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
        if (cs && cs->origin[0]) {
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN,
                                    cs->origin);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_EXPOSE_HEADERS,
                                    "Warning, Content-Location, Content-Range, Accept-Ranges, "
                                    "Retry-After, WWW-Authenticate");
            if (cs->preflight) {
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_METHODS,
                                        r->allow ? r->allow : "GET, HEAD");
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_HEADERS,
                                        "Authorization, Accept, Content-Type, Range");
                MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_MAX_AGE, "600");
            }
        }
        if (r->content_range)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, r->content_range);
        if (r->accept_ranges)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        for (size_t i = 0; i < r->nwarnings; i++)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_WARNING, r->warnings[i]);
        if (allow || r->allow)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow ? allow : r->allow);
        if (r->cache_control)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, r->cache_control);
        if (r->etag[0])
            MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
        if (r->authenticate)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->authenticate);
        char retry[24];
        snprintf(retry, sizeof retry, "%d", r->retry_after);
        if (r->retry_after > 0)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
        if (r->no_store)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        ret = MHD_queue_response(c, (unsigned)r->status, resp);
        MHD_destroy_response(resp);
    }
    if (cs) {
        cs->status = r->status;
        if (!streamed) /* (a stream counts its bytes as they go) */
            cs->bytes = r->status == 204 ? 0 : r->body.len;
    }
    return ret;
}

/* The base of Retrieve URLs: the Host the client named, when it is a plain host[:port], else
 * the address listened on. */
static void base_url(mira_web_server *s, struct MHD_Connection *c, char *out, size_t n)
{
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    bool plain = host && *host && strlen(host) < 256;
    for (const char *p = host; plain && *p; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                (*p >= '0' && *p <= '9') || strchr(".-:[]", *p);
    if (plain)
        snprintf(out, n, "http://%s/dicomweb", host);
    else if (strchr(s->bind, ':'))
        snprintf(out, n, "http://[%s]:%d/dicomweb", s->bind, s->port);
    else
        snprintf(out, n, "http://%s:%d/dicomweb", s->bind, s->port);
}

/* The first call of a request (its headers): a POST to a store resource gets the consumer of
 * its body, or a reply decided now. True if a reply was queued at once (*ret its result). */
static bool begin_request(mira_web_server *s, struct MHD_Connection *c, conn_state *cs,
                          const char *method, enum MHD_Result *ret)
{
    if (cs->target && mira__api_route(cs->target)) {
        /* the REST API (api.c): every method, its body (if any) read by the API's consumer */
        mira__api_options ao = {
            .archive = s->opt.archive,
            .method = method,
            .target = cs->target,
            .content_type =
                MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
            .who = &cs->who,
            .peer = cs->peer,
            .log = s->opt.log,
            .log_ctx = s->opt.log_ctx,
            .job_queued = s->opt.job_queued,
            .job_queued_ctx = s->opt.job_queued_ctx,
            .job_destinations = s->opt.job_destinations,
            .njob_destinations = s->opt.njob_destinations,
        };
        mira__http_reply_init(&cs->decided);
        if (mira__api_begin(&ao, &cs->body, &cs->decided)) {
            mira__http_reply_cleanup(&cs->decided);
        } else {
            cs->has_decided = true;
        }
        return false;
    }
    if (strcmp(method, "POST") != 0 || !cs->target)
        return false;
    size_t tlen = strlen(cs->target);
    const char *qm = memchr(cs->target, '?', tlen);
    mira__route rt;
    mira__http_reply r;
    mira__http_reply_init(&r);
    bool store =
        mira__route_match(cs->target, qm ? (size_t)(qm - cs->target) : tlen, &rt, &r) && rt.store;
    mira__http_reply_cleanup(&r);
    if (!store) { /* answered by serve at the end: 404, 405 or the 400 of a bad UID */
        mira__route_free(&rt);
        return false;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    char base[400];
    base_url(s, c, base, sizeof base);
    mira__stow_options o = {
        .archive = s->opt.archive,
        .study = rt.study,
        .content_type =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .content_length = cl ? strtoull(cl, NULL, 10) : UINT64_MAX,
        .max_body = s->opt.max_body_bytes,
        .base_url = base,
        .peer = cs->peer,
        .log = s->opt.log,
        .log_ctx = s->opt.log_ctx,
    };
    mira__http_reply_init(&r);
    bool started = mira__stow_begin(&o, &cs->body, &r);
    mira__route_free(&rt);
    if (started) {
        mira__http_reply_cleanup(&r);
        return false;
    }
    if (r.status == 413) { /* not worth reading: answered now, the connection closed after */
        *ret = queue_reply(c, cs, &r, NULL);
        mira__http_reply_cleanup(&r);
        return true;
    }
    cs->decided = r; /* moved */
    cs->has_decided = true;
    return false;
}

/* What the access layer needs of the current request (borrowed from c and cs). */
static mira__auth_req auth_req(struct MHD_Connection *c, conn_state *cs, const char *method)
{
    mira__auth_req q = {
        method, cs->target,
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        cs->peer, NULL, 0,
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)};
    return q;
}

/* The access check (auth.c) of a request, at its headers. True: route it. False: it is
 * answered (its reply decided, or the reader of a sign-in's body installed). */
static bool authorize(mira_web_server *s, struct MHD_Connection *c, conn_state *cs,
                      const char *method)
{
    cs->authorized = false;
    if (!cs->target)
        return false; /* answered 503 */
    mira__auth_req q = auth_req(c, cs, method);
    mira__http_reply_init(&cs->decided);
    mira__auth_outcome o = mira__auth_request(s->auth, &q, &cs->who, &cs->decided);
    if (o == MIRA__AUTH_GO) {
        mira__http_reply_cleanup(&cs->decided);
        cs->authorized = true;
        return true;
    }
    if (o == MIRA__AUTH_READ_BODY) {
        cs->body.ctx = mira__auth_signin_begin(s->auth, &q);
        cs->body.feed = mira__auth_signin_feed;
        cs->body.finish = mira__auth_signin_finish;
        cs->body.free = mira__auth_signin_free;
        if (cs->body.ctx) {
            mira__http_reply_cleanup(&cs->decided);
            return false;
        }
        mira__http_reply_error(&cs->decided, 503, "out of memory");
    }
    cs->has_decided = true;
    return false;
}

/* What the reply's headers depend on, from the request's: CORS and gzip. */
static void request_headers(mira_web_server *s, struct MHD_Connection *c, conn_state *cs)
{
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN);
    if (cors_allowed(s, origin))
        snprintf(cs->origin, sizeof cs->origin, "%s", origin);
    else
        cs->origin[0] = 0;
    cs->preflight = strcmp(cs->method, "OPTIONS") == 0 &&
                    MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_ACCESS_CONTROL_REQUEST_METHOD);
    const char *ae =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    cs->gzip = false;
    for (const char *p = ae; p && *p;) { /* "gzip" listed, and not with q=0 */
        size_t n = strcspn(p, ",");
        char item[64];
        snprintf(item, sizeof item, "%.*s", (int)(n < 63 ? n : 63), p);
        char *t = item;
        while (*t == ' ')
            t++;
        if (strncasecmp(t, "gzip", 4) == 0 && (t[4] == 0 || t[4] == ';' || t[4] == ' '))
            cs->gzip = !strstr(t, "q=0") || strstr(t, "q=0.");
        p += n;
        if (*p == ',')
            p++;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    mira_web_server *s = cls;
    conn_state *cs = *req_cls;
    (void)url;
    (void)version;
    if (cs && !cs->headers_seen) {
        /* the first call has the headers; replying only on a later one, once any body has
         * been read, lets the connection be kept alive */
        cs->headers_seen = true;
        snprintf(cs->method, sizeof cs->method, "%s", method);
        request_headers(s, c, cs);
        enum MHD_Result ret = MHD_YES;
        if (strcmp(method, "OPTIONS") == 0 && cs->target) {
            mira__http_reply_init(&cs->decided);
            options_reply(cs->target, cs->preflight, &cs->decided);
            cs->has_decided = true;
        } else if (authorize(s, c, cs, method) && begin_request(s, c, cs, method, &ret)) {
            /* refused at its headers and answered already (413): recorded all the same */
            mira__http_reply r;
            mira__http_reply_init(&r);
            r.status = cs->status;
            mira__auth_req q = auth_req(c, cs, method);
            mira__auth_audit(s->auth, &q, &cs->who, &r);
            mira__http_reply_cleanup(&r);
        }
        return ret;
    }
    if (*upload_data_size) { /* a piece of the body: to the route's consumer, or dropped */
        if (cs) {
            cs->received += *upload_data_size;
            if (cs->body.ctx && !cs->body_done &&
                !cs->body.feed(cs->body.ctx, (const uint8_t *)upload_data, *upload_data_size))
                cs->body_done = true;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cs && cs->status)
        return MHD_YES; /* answered already */
    if (cs)
        snprintf(cs->method, sizeof cs->method, "%s", method);
    mira__http_reply r;
    mira__http_reply_init(&r);
    const char *allow = NULL;
    if (!cs || !cs->target) {
        mira__http_reply_error(&r, 503, "out of memory");
    } else if (cs->has_decided) {
        mira__http_reply_cleanup(&r);
        r = cs->decided; /* moved */
        cs->has_decided = false;
    } else if (cs->body.ctx) {
        cs->body.finish(cs->body.ctx, &r);
    } else if (cs->authorized) {
        r.gzip_ok = cs->gzip;
        serve(s, c, method, cs->target, &cs->who, &r, &allow);
    } else {
        mira__http_reply_error(&r, 401, "not authorized");
    }
    if (cs && cs->authorized) { /* what a token holder got: to the audit log (a 503 if not) */
        mira__auth_req q = auth_req(c, cs, method);
        mira__auth_audit(s->auth, &q, &cs->who, &r);
    }
    enum MHD_Result ret = queue_reply(c, cs, &r, allow);
    mira__http_reply_cleanup(&r);
    return ret;
}

/* Free what the connection's last request left (its target, body consumer, decided reply). */
static void request_end(conn_state *cs)
{
    mira_free(cs->target);
    cs->target = NULL;
    if (cs->body.ctx)
        cs->body.free(cs->body.ctx);
    memset(&cs->body, 0, sizeof cs->body);
    cs->body_done = false;
    if (cs->has_decided)
        mira__http_reply_cleanup(&cs->decided);
    cs->has_decided = false;
}

/* The raw request target, before libmicrohttpd parses it: kept in the connection's state. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_state *cs = ci ? ci->socket_context : NULL;
    if (!cs)
        return NULL;
    request_end(cs);
    cs->target = mira_strdup(uri);
    cs->start_ms = mira__now_ms();
    cs->status = 0;
    cs->bytes = 0;
    cs->received = 0;
    cs->headers_seen = false;
    return cs;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode what)
{
    (void)cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_state *cs = mira_calloc(1, sizeof *cs);
        if (cs) {
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            const struct sockaddr *sa = ci ? ci->client_addr : NULL;
            if (sa)
                mira__sockaddr_describe(sa, cs->peer, sizeof cs->peer);
            else
                snprintf(cs->peer, sizeof cs->peer, "?:0");
        }
        /* a larger send buffer than the kernel's default: with many clients taking large
         * replies at once (a series' metadata is megabytes), fewer wake-ups of each
         * connection's thread; the kernel caps it (net.core.wmem_max) */
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (fi) {
            int sz = 4 << 20;
            (void)setsockopt(fi->connect_fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        }
        *socket_context = cs;
    } else {
        conn_state *cs = *socket_context;
        if (cs)
            request_end(cs);
        mira_free(cs);
        *socket_context = NULL;
    }
}

/* One log line per request: method, path, the names (never the values: they may be patient
 * names) of the query's parameters, status, bytes, time. */
static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    mira_web_server *s = cls;
    conn_state *cs = *req_cls;
    (void)c;
    if (!cs)
        return;
    if (!s->opt.log || !cs->target) {
        request_end(cs);
        return;
    }
    char line[1024];
    size_t tlen = strlen(cs->target);
    const char *qm = memchr(cs->target, '?', tlen);
    size_t plen = qm ? (size_t)(qm - cs->target) : tlen;
    char keys[256] = "";
    if (qm) {
        size_t k = 0;
        for (const char *p = qm + 1; *p && k + 2 < sizeof keys;) {
            size_t n = strcspn(p, "=&");
            if (n && k)
                keys[k++] = ',';
            for (size_t i = 0; i < n && k + 2 < sizeof keys; i++)
                keys[k++] = p[i];
            p += n;
            p += strcspn(p, "&");
            if (*p == '&')
                p++;
        }
        keys[k] = 0;
    }
    int64_t ms = mira__now_ms() - cs->start_ms;
    char got[48] = "";
    if (cs->received)
        snprintf(got, sizeof got, " (%llu bytes received)", (unsigned long long)cs->received);
    if (cs->status)
        snprintf(line, sizeof line, "http %s: %s %.*s%s%s%s -> %d, %zu bytes, %lld ms", cs->peer,
                 cs->method, (int)(plen < 300 ? plen : 300), cs->target, *keys ? " keys " : "",
                 keys, got, cs->status, cs->bytes, (long long)ms);
    else
        snprintf(line, sizeof line, "http %s: %s %.*s: no reply (%s)", cs->peer, cs->method,
                 (int)(plen < 300 ? plen : 300), cs->target,
                 toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timed out"
                 : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "server stopping"
                                                                  : "connection closed");
    s->opt.log(s->opt.log_ctx, cs->status >= 500 ? MIRA_LOG_WARNING : MIRA_LOG_INFO, line);
    request_end(cs); /* the next request on the connection sets its own */
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    mira_web_server *s = cls;
    if (!s->opt.log)
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    char line[600];
    snprintf(line, sizeof line, "http: %s", msg);
    s->opt.log(s->opt.log_ctx, MIRA_LOG_WARNING, line);
}

/* ------------------------------------------------------------------ the server */

/* The key of the hashes of researchers' de-identified views (pseudonyms, date shifts):
 * ARCHIVE/deid.key, 32 random bytes made on first use (mode 0600, written and synced before it
 * is linked into place, so it appears whole or not at all, and a server starting at the same
 * time takes the same one). Kept with the archive, a patient keeps one pseudonym across
 * restarts of the server, and a researcher can follow a patient from study to study. */
static bool deid_key(const char *dir, uint8_t key[32], mira_error **err)
{
    char path[4096], tmp[4160];
    snprintf(path, sizeof path, "%s/deid.key", dir);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, key, 32);
            uint8_t more;
            bool extra = n == 32 && read(fd, &more, 1) != 0;
            close(fd);
            if (n == 32 && !extra)
                return true;
            mira_error_set(err, MIRA_ERR_INVALID, "Bad key file",
                           "%s is not 32 bytes: restore it from a backup (a new key would give "
                           "every patient new pseudonyms) or remove it to make a new one",
                           path);
            return false;
        }
        if (errno != ENOENT)
            break;
        uint8_t fresh[32];
        if (getrandom(fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh)
            break;
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            break;
        bool ok = mira__write_all(fd, fresh, sizeof fresh) && fsync(fd) == 0;
        close(fd);
        ok = ok && (link(tmp, path) == 0 || errno == EEXIST); /* (EEXIST: another made it) */
        int saved = errno;
        unlink(tmp);
        errno = saved;
        if (!ok)
            break;
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    mira_error_set(err, MIRA_ERR_IO, "Cannot make the key", "%s: %s", path, strerror(errno));
    return false;
}

/* A small text file (a PEM certificate or key), whole, NUL-terminated; NULL with an error. */
static char *read_text(const char *path, mira_error **err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: %s", path, strerror(errno));
        return NULL;
    }
    mira__buf b;
    mira__buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (1u << 20))
        mira__buf_append(&b, chunk, n);
    bool bad = ferror(f) || b.len >= (1u << 20);
    fclose(f);
    mira__buf_append(&b, "", 1);
    if (bad || b.failed) {
        mira__buf_cleanup(&b);
        mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: %s", path,
                       bad ? "unreadable or over 1 MiB" : "out of memory");
        return NULL;
    }
    return mira__buf_steal(&b, NULL);
}

mira_web_server *mira_web_server_new(const mira_web_server_options *opt, mira_error **err)
{
    if (!opt || !opt->archive || opt->port < 0 || opt->port > 65535 ||
        opt->max_connections < 1 || opt->max_header_bytes < 4096 || opt->idle_seconds < 1) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad HTTP server options",
                       "an archive, a port 0 to 65535, at least one connection, 4096 bytes "
                       "of headers and a second of idle time are needed");
        return NULL;
    }
    mira_web_server *s = mira_calloc(1, sizeof *s);
    if (!s) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HTTP server");
        return NULL;
    }
    s->opt = *opt;
    s->fd = -1;
    s->bind = mira_strdup(opt->bind && *opt->bind ? opt->bind : "127.0.0.1");
    if (!s->bind) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HTTP server");
        mira_free(s);
        return NULL;
    }
    s->opt.bind = s->bind;
    s->opt.tls_cert = s->opt.tls_key = NULL; /* read below, not kept as paths */
    if (opt->cors_origins && *opt->cors_origins) {
        s->cors = mira_strdup(opt->cors_origins);
        if (!s->cors) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HTTP server");
            mira_web_server_free(s);
            return NULL;
        }
    }
    s->opt.cors_origins = s->cors;
    if ((opt->tls_cert != NULL) != (opt->tls_key != NULL)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad HTTP server options",
                       "HTTPS needs a certificate and its key");
        mira_web_server_free(s);
        return NULL;
    }
    if (opt->tls_cert && (!(s->cert = read_text(opt->tls_cert, err)) ||
                          !(s->key = read_text(opt->tls_key, err)))) {
        mira_error_prefix(err, "HTTPS: ");
        mira_web_server_free(s);
        return NULL;
    }
    mira_deid_options dopt;
    mira_deid_options_init(&dopt);
    dopt.retain_uids = true;
    uint8_t key[32];
    if (!deid_key(mira_archive_dir(opt->archive), key, err)) {
        mira_error_prefix(err, "the researchers' de-identification: ");
        mira_web_server_free(s);
        return NULL;
    }
    dopt.secret = key;
    dopt.secret_len = sizeof key;
    s->deid = mira_deid_context_new(&dopt, NULL);
    explicit_bzero(key, sizeof key);
    s->auth = mira__auth_new(opt->archive, opt->log, opt->log_ctx);
    s->cache = mira__md_cache_new(MIRA__MD_CACHE_BYTES);
    if (!s->auth || !s->cache) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "HTTP server");
        mira_web_server_free(s);
        return NULL;
    }
    s->fd = mira__tcp_listen(s->bind, opt->port, 128, &s->port, err);
    if (s->fd < 0) {
        mira_error_prefix(err, "HTTP: ");
        mira_web_server_free(s);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    /* HTTPS by libmicrohttpd's GnuTLS, from the PEM text (kept until the server is freed) */
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->key},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert},
        {MHD_OPTION_END, 0, NULL},
    };
    if (s->cert)
        flags |= MHD_USE_TLS;
    else
        tls[0].option = MHD_OPTION_END;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)opt->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)opt->max_header_bytes, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)opt->idle_seconds, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!s->daemon) {
        mira_error_set(err, MIRA_ERR_IO, "HTTP server failed",
                       "libmicrohttpd could not start on %s:%d", s->bind, s->port);
        mira_web_server_free(s);
        return NULL;
    }
    return s;
}

int mira_web_server_port(const mira_web_server *s)
{
    return s ? s->port : -1;
}

void mira_web_server_free(mira_web_server *s)
{
    if (!s)
        return;
    if (s->daemon) {
        /* stop accepting first, so that no connection arrives while the others close */
        MHD_socket fd = MHD_quiesce_daemon(s->daemon);
        s->fd = fd != MHD_INVALID_SOCKET ? fd : -1; /* else libmicrohttpd closes it */
        MHD_stop_daemon(s->daemon);
    }
    if (s->fd >= 0)
        close(s->fd);
    mira__auth_free(s->auth);
    mira__md_cache_free(s->cache);
    mira_deid_context_free(s->deid);
    mira_free(s->bind);
    mira_free(s->cors);
    if (s->key)
        explicit_bzero(s->key, strlen(s->key)); /* the private key's text */
    mira_free(s->key);
    mira_free(s->cert);
    mira_free(s);
}
