/* The web module's internal declarations: HTTP replies, request bodies, QIDO-RS and STOW-RS. */
#ifndef MIRA_WEB_INT_H
#define MIRA_WEB_INT_H

#include "mira/accounts.h"
#include "mira/deid.h"
#include "mira/web.h"

#include "core/buf.h"

#include <sys/types.h>

#define MIRA__HTTP_MAX_WARNINGS 4
/* what the metadata cache of a web server keeps at most */
#define MIRA__MD_CACHE_BYTES ((size_t)256 << 20)

/* A reply being made: status, body, and the headers the services set. */
typedef struct mira__http_reply {
    int status;
    mira__buf body;
    const char *content_type; /* static text */
    char *warnings[MIRA__HTTP_MAX_WARNINGS]; /* Warning header values (owned) */
    size_t nwarnings;
    /* set by the access layer (auth.c) */
    char *authenticate; /* WWW-Authenticate value (owned), or NULL */
    int retry_after;    /* seconds for Retry-After (a 429), 0: none */
    bool no_store;      /* Cache-Control: no-store (a reply holding a token) */
    /* the patient data in the reply, for the audit log: Study and Series Instance UIDs,
     * separated by '\\' (filled by the services) */
    mira__buf studies, series;
    /* A body made while it is sent (a retrieval), instead of body: stream fills buf with up
     * to max bytes at offset pos and returns their count, -1 at the end, -2 on a failure (the
     * connection is then closed: the client sees a reply cut short). stream_free frees ctx,
     * once (by the server after sending, or by _cleanup if the reply is never sent).
     * stream_size: the length when known, UINT64_MAX when not (sent chunked). */
    ssize_t (*stream)(void *ctx, uint64_t pos, char *buf, size_t max);
    void (*stream_free)(void *ctx);
    void *stream_ctx;
    uint64_t stream_size;
    char ctype[192];          /* a content type made for this reply (content_type points here) */
    const char *content_range; /* a 206's Content-Range (points into ctype2), or NULL */
    char ctype2[96];
    bool accept_ranges;        /* Accept-Ranges: bytes */
    const char *allow;         /* a 405's Allow header (static text), or NULL */
    const char *cache_control; /* Cache-Control (static text), or NULL */
    char etag[48];             /* ETag (quoted), or "" */
    bool gzip_ok;              /* (set by the server) the client takes gzip */
    bool body_gzipped;         /* the body is gzip'd already (Content-Encoding: gzip) */
} mira__http_reply;

/* Compress a body with gzip (RFC 1952) in place; false (the body unchanged) on a failure or
 * when it would not be smaller. */
bool mira__http_gzip(mira__buf *body);

/*
 * The metadata cache (mdcache.c): assembled metadata bodies by key, valid while the archive's
 * version token of their entity is the same, each also in gzip form once asked for; the least
 * recently used go past max_bytes. Thread-safe. NULL is a cache that keeps nothing.
 */
typedef struct mira__md_cache mira__md_cache;
mira__md_cache *mira__md_cache_new(size_t max_bytes);
void mira__md_cache_free(mira__md_cache *c);
/* Append the body kept for key, if its token is `token`, to out (gz: in gzip form, made now if
 * need be; *gzipped says which it is). False: none (or another token: dropped). */
bool mira__md_cache_get(mira__md_cache *c, const char *key, const char *token, bool gz,
                        mira__buf *out, bool *gzipped);
/* Keep a copy of body for key with its token (replacing what was kept). */
void mira__md_cache_put(mira__md_cache *c, const char *key, const char *token, const void *body,
                        size_t len);

void mira__http_reply_init(mira__http_reply *r);
void mira__http_reply_cleanup(mira__http_reply *r);
/* An error reply: status and a JSON body {"status", "error", "message"}. */
void mira__http_reply_error(mira__http_reply *r, int status, const char *fmt, ...)
    MIRA_PRINTF(3, 4);
/* Add a Warning header (PS3.18 8.3.4.4 uses "299 mira: \"text\""): text is the quoted part. */
void mira__http_reply_warning(mira__http_reply *r, const char *text);
/* The reason phrase of a status ("Bad Request"). */
const char *mira__http_reason(int status);

/*
 * Percent-decode s[0..len) ('+' becomes a space when plus_is_space, as in a query string):
 * owned text, NULL with MIRA_ERR_INVALID for a bad escape or a NUL byte (or NOMEM).
 */
char *mira__url_decode(const char *s, size_t len, bool plus_is_space, mira_error **err);

/* ------------------------------------------------------------------ QIDO-RS */

/* A QIDO-RS search, parsed (PS3.18 10.6.1 and 8.3.4). */
typedef struct mira__qido_query {
    mira_level level;
    /* matching keys (with values) and return keys (empty), as mira_archive_find takes them */
    mira_dataset *identifier;
    uint64_t limit; /* 0: none given */
    uint64_t offset;
    bool fuzzy;        /* fuzzymatching=true was asked (not supported: a Warning) */
    bool availability; /* Instance Availability is returned (every instance is ONLINE) */
    mira__buf not_held; /* includefields the index does not hold, "ggggeeee,..." */
} mira__qido_query;

/*
 * Parse a search: level, the UIDs of the path (study NULL for /studies, /series and
 * /instances; series NULL unless /studies/S/series/R/instances) and the query string
 * (query[0..len), without '?', percent-encoded). Fills q (cleaned up with
 * mira__qido_query_cleanup, also after a failure). Fails with MIRA_ERR_ARGUMENT and a message
 * fit for a 400 reply: an unknown attribute, a key the index cannot match on, a malformed UID,
 * date, time or number, a bad limit, offset or fuzzymatching, a bad percent escape.
 */
bool mira__qido_parse(mira_level level, const char *study, const char *series, const char *query,
                      size_t len, mira__qido_query *q, mira_error **err);
void mira__qido_query_cleanup(mira__qido_query *q);

/* Run a parsed search on the archive into r: 200 with application/dicom+json, 204 when nothing
 * matches (PS3.18 8.3.4.4.1), 500 if the archive fails. max_results: as in the options.
 * base_url ("http://host:port/dicomweb", or NULL: none) makes each match's Retrieve URL. */
void mira__qido_search(mira_archive *a, uint64_t max_results, const mira__qido_query *q,
                       const char *base_url, mira__http_reply *r);

/* True if s is a UID (PS3.5 9.1: 1 to 64 characters, digits in dot-separated components,
 * no leading zero in a component of several digits). */
bool mira__uid_valid(const char *s, size_t len);

/* ------------------------------------------------------------------ request bodies */

/* A route that consumes its request body as it arrives: http.c calls feed with each piece
 * libmicrohttpd delivers (in order; false: the rest of the body is dropped, the route has
 * decided), then finish once the body has ended (the reply), then free. */
typedef struct mira__http_body {
    bool (*feed)(void *ctx, const uint8_t *p, size_t n);
    void (*finish)(void *ctx, mira__http_reply *r);
    void (*free)(void *ctx);
    void *ctx;
} mira__http_body;

/* ------------------------------------------------------------------ WADO-RS and WADO-URI */

typedef enum mira__wado_kind {
    MIRA__WADO_INSTANCES = 0, /* the study, series or instance (application/dicom) */
    MIRA__WADO_METADATA,      /* .../metadata */
    MIRA__WADO_FRAMES,        /* .../instances/{I}/frames/{list} */
    MIRA__WADO_RENDERED,      /* .../rendered, .../frames/{list}/rendered */
    MIRA__WADO_THUMBNAIL,     /* .../thumbnail, .../frames/{list}/thumbnail */
    MIRA__WADO_BULKDATA,      /* .../instances/{I}/bulkdata/{path} */
} mira__wado_kind;

/* A retrieval, from the path of a WADO-RS request or the query of a WADO-URI one. */
typedef struct mira__wado_request {
    mira__wado_kind kind;
    mira_level level;                 /* STUDY, SERIES or INSTANCE */
    const char *study, *series, *sop; /* decoded UIDs (series, sop NULL above their level) */
    const char *frames;     /* the frame list as in the path ("1,3"), or NULL */
    const char *bulk;       /* what follows bulkdata/ ("7FE00010", "00081111/0/00081150") */
    const char *query;      /* the query string (without '?'), percent-encoded, or "" */
    const char *accept;     /* the Accept header, or NULL */
    const char *range;      /* the Range header, or NULL */
    const char *base_url;   /* "http://host:port/dicomweb" */
    bool uri;               /* a WADO-URI request: query holds its parameters (PS3.18 9) */
    /* a researcher's: every data set de-identified with this context (PS3.15 Basic Profile,
     * UIDs retained, as QIDO-RS shows them), instances whose pixels may show identifying
     * text (burned-in annotation risk high) withheld; NULL for others */
    mira_deid_context *deid;
    mira__md_cache *cache; /* the server's metadata cache, or NULL */
} mira__wado_request;

/* Answer a retrieval (GET or HEAD) into r: the instances as multipart/related application/dicom
 * (PS3.18 10.4), metadata as DICOM JSON, frames, rendered images, thumbnails, bulk data; 404
 * for what the archive does not hold, 406 for an Accept it cannot answer, 400 for bad
 * parameters. Fills r->studies and r->series for the audit. With a NULL archive the request
 * is only checked: r is an error reply, or has status 0 if nothing was wrong with it. */
void mira__wado_serve(mira_archive *a, const mira__wado_request *q, mira__http_reply *r);

/* Parse one media range of an Accept header: what it names and its parameters. */
typedef struct mira__media_range {
    char type[96];            /* "multipart/related", "image/jpeg"... (lower case, as sent) */
    char inner[96];           /* the type="..." parameter (multipart), or "" */
    char transfer_syntax[72]; /* the transfer-syntax parameter, or "" */
    double q;                 /* quality, 1 when absent */
} mira__media_range;

/* The media ranges of an Accept header (NULL or "": one range admitting anything), best first
 * (a stable sort by q, q=0 ones left out); at most max. Returns how many. */
size_t mira__accept_parse(const char *accept, mira__media_range *out, size_t max);

/* ------------------------------------------------------------------ routing */

/* The resource a request's path names. */
typedef struct mira__route {
    mira_level level;
    char *study, *series, *sop; /* decoded UIDs of the path (owned), or NULL */
    bool store;  /* POST stores here (STOW-RS) */
    bool search; /* GET searches here (QIDO-RS) */
    bool wado;   /* GET retrieves here (WADO-RS, or WADO-URI when uri) */
    bool uri;
    mira__wado_kind kind;
    char *frames; /* the frame list of .../frames/{list} (owned), or NULL */
    char *bulk;   /* the path after .../bulkdata/ (owned), or NULL */
} mira__route;

/* Match the path of a request target (path[0..len), up to '?'): false with a 404 in r unless it
 * is a QIDO-RS, WADO-RS, STOW-RS or WADO-URI resource, a 400 for a UID of the path that is
 * none. rt is cleaned up with mira__route_free (also after a failure). */
bool mira__route_match(const char *path, size_t len, mira__route *rt, mira__http_reply *r);
void mira__route_free(mira__route *rt);

/* ------------------------------------------------------------------ the REST API */

/* True if the path of target (up to '?') is the REST API's: under "/api/". */
bool mira__api_route(const char *target);

typedef struct mira__api_options {
    mira_archive *archive;      /* borrowed */
    const char *method;         /* "GET", "POST", ... */
    const char *target;         /* path and query as sent */
    const char *content_type;   /* of the body, or NULL */
    const mira_principal *who;  /* the token's holder (its role decides what is allowed) */
    const char *peer;           /* for the log */
    mira_log_fn log;
    void *log_ctx;
    void (*job_queued)(void *ctx); /* the server's options' (borrowed, not copied) */
    void *job_queued_ctx;
    const char *const *job_destinations;
    size_t njob_destinations;
} mira__api_options;

/* Start an API request (after the access check): true with *body set to the consumer of its
 * body (fed each piece; its finish makes the reply, also for a request without a body); false
 * with the reply in r when it is decided from the headers (404, 405, 415, 503). The strings
 * of o are copied. api.c. */
bool mira__api_begin(const mira__api_options *o, mira__http_body *body, mira__http_reply *r);

/* GET /api/openapi.json: the OpenAPI document of the API and the DICOMweb services (public:
 * it holds no patient data). */
void mira__api_openapi(const char *method, mira__http_reply *r);

/* ------------------------------------------------------------------ the web page */

/* True if the path of target (up to '?') is one of the web page's: "/" or under "/app/".
 * These are served to anyone (they hold no patient data: the page asks for a token and sends
 * it with every request of its own), by mira__page_serve (page.c). */
bool mira__page_route(const char *target);
/* Answer a request for the page's files: GET and HEAD (405 otherwise), 404 for a file the page
 * does not have. Paths are looked up in a table built into the binary, never on disk. */
void mira__page_serve(const char *method, const char *target, mira__http_reply *r);

/* ------------------------------------------------------------------ STOW-RS */

typedef struct mira__stow_options {
    mira_archive *archive;    /* borrowed */
    const char *study;        /* the Study Instance UID of the path, or NULL */
    const char *content_type; /* the request's, or NULL */
    uint64_t content_length;  /* UINT64_MAX: not given (chunked) */
    uint64_t max_body;        /* 0: no limit */
    const char *base_url;     /* "http://host:port/dicomweb", for Retrieve URLs */
    const char *peer;         /* for the log */
    mira_log_fn log;
    void *log_ctx;
} mira__stow_options;

/*
 * Start a store (PS3.18 10.5): true with *body set to a consumer of the body whose finish
 * makes the Store Instances Response (200, 202, 409, or 400/413 for a malformed or too large
 * body); false with the reply in r when the request is refused from its headers: 415 for a
 * Content-Type other than multipart/related; type="application/dicom", 400 for a missing or
 * invalid boundary, 413 for a Content-Length over max_body, 503 without memory or spool.
 * The strings of o are copied.
 */
bool mira__stow_begin(const mira__stow_options *o, mira__http_body *body, mira__http_reply *r);

#endif
