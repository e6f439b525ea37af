/* The MLLP server of mira serve: HL7 v2 messages received, checked, kept in the archive, then
 * acknowledged in original mode (HL7 v2.5 2.9.2). */
#include "mira/hl7.h"
#include "net/net.h"
#include "net/tls.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ one message */

/* MSH-12 versions this codec reads (2.3 to 2.8 and their point releases). */
static bool version_known(const char *v)
{
    static const char *const known[] = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6",
                                        "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(v, known[i]) == 0)
            return true;
    return false;
}

typedef struct verdict {
    const char *code;  /* AA, AE, AR */
    const char *error_code;
    char location[32];
    char text[512];
} verdict;

static void reject(verdict *v, const char *code, const char *error_code, const char *location,
                   const char *fmt, ...) MIRA_PRINTF(5, 6);
static void reject(verdict *v, const char *code, const char *error_code, const char *location,
                   const char *fmt, ...)
{
    v->code = code;
    v->error_code = error_code;
    snprintf(v->location, sizeof v->location, "%s", location ? location : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->text, sizeof v->text, fmt, ap);
    va_end(ap);
}

static bool empty_at(const mira_hl7_message *m, const char *path)
{
    char *s = mira_hl7_get(m, path, NULL);
    bool e = !s || !*s;
    mira_free(s);
    return e;
}

static bool has_segment(const mira_hl7_message *m, const char *name)
{
    for (size_t i = 0; i < mira_hl7_segment_count(m); i++)
        if (strcmp(mira_hl7_segment_name(m, i), name) == 0)
            return true;
    return false;
}

/* What a message of the types mira acts on must carry (AE, HL7 table 0357 code 100 or 101). */
static void check_content(const mira_hl7_message *m, const char *type, const char *event,
                          verdict *v)
{
    bool adt = strcmp(type, "ADT") == 0, orm = strcmp(type, "ORM") == 0,
         omi = strcmp(type, "OMI") == 0, oru = strcmp(type, "ORU") == 0;
    if (!adt && !orm && !omi && !oru)
        return;
    if (!has_segment(m, "PID")) {
        reject(v, "AE", "100", "PID", "a %s message needs a PID segment", type);
        return;
    }
    if (empty_at(m, "PID-3")) {
        reject(v, "AE", "101", "PID^1^3", "PID-3 (the patient identifier list) is empty");
        return;
    }
    if (adt && strcmp(event, "A40") == 0) {
        if (!has_segment(m, "MRG"))
            reject(v, "AE", "100", "MRG", "an A40 merge needs an MRG segment");
        else if (empty_at(m, "MRG-1"))
            reject(v, "AE", "101", "MRG^1^1", "MRG-1 (the prior patient identifier) is empty");
        return;
    }
    if ((orm || oru) && !has_segment(m, "OBR"))
        reject(v, "AE", "100", "OBR", "an %s message needs an OBR segment", type);
    if ((orm || omi) && !has_segment(m, "ORC"))
        reject(v, "AE", "100", "ORC", "an %s message needs an ORC segment", type);
}

static atomic_uint_fast64_t ack_counter;

char *mira_hl7_receive(mira_archive *a, const char *text, size_t len, bool oversize,
                       const char *peer, const char *app, const char *facility,
                       const char **code, size_t *ack_len, mira_error **err)
{
    verdict v = {.code = "AA"};
    mira_error *perr = NULL;
    mira_hl7_message *m = oversize ? NULL : mira_hl7_parse(text, len, &perr);
    char *sender = NULL, *control = NULL, *type = NULL, *version = NULL;
    if (oversize) {
        reject(&v, "AR", "207", NULL, "the message is longer than this server takes");
    } else if (!m) {
        reject(&v, "AR", "100", NULL, "the message does not parse: %s",
               mira_error_get_message(perr));
    } else {
        char *app3 = mira_hl7_get_encoded(m, "MSH-3", NULL);
        char *fac4 = mira_hl7_get_encoded(m, "MSH-4", NULL);
        size_t n = (app3 ? strlen(app3) : 0) + (fac4 ? strlen(fac4) : 0) + 2;
        sender = mira_malloc(n);
        if (sender)
            snprintf(sender, n, "%s^%s", app3 ? app3 : "", fac4 ? fac4 : "");
        mira_free(app3);
        mira_free(fac4);
        control = mira_hl7_get(m, "MSH-10", NULL);
        type = mira_hl7_get_encoded(m, "MSH-9", NULL);
        version = mira_hl7_get(m, "MSH-12", NULL);
        char *t1 = mira_hl7_get(m, "MSH-9.1", NULL), *t2 = mira_hl7_get(m, "MSH-9.2", NULL);
        if (!control || !*control)
            reject(&v, "AR", "101", "MSH^1^10", "MSH-10 (the message control ID) is empty");
        else if (!t1 || !*t1)
            reject(&v, "AR", "101", "MSH^1^9", "MSH-9 (the message type) is empty");
        else if (!version || !*version)
            reject(&v, "AR", "101", "MSH^1^12", "MSH-12 (the version ID) is empty");
        else if (!version_known(version))
            reject(&v, "AR", "203", "MSH^1^12",
                   "version %.40s is not one this server reads (2.3 to 2.8)", version);
        else
            check_content(m, t1, t2 ? t2 : "", &v);
        mira_free(t1);
        mira_free(t2);
    }
    mira_error_free(perr);

    int64_t id = 0;
    bool duplicate = false;
    if (a) {
        mira_hl7_received r = {.text = text,
                               .len = len,
                               .peer = peer,
                               .sender = sender ? sender : "",
                               .control_id = control,
                               .message_type = type,
                               .version = version,
                               .ack_code = v.code,
                               .error = strcmp(v.code, "AA") == 0 ? NULL : v.text};
        mira_error *serr = NULL;
        if (!mira_archive_hl7_put(a, &r, &id, &duplicate, &serr)) {
            /* not kept: the sender must send it again (AR: not for its content) */
            reject(&v, "AR", "207", NULL, "the message could not be stored: %s",
                   mira_error_get_message(serr));
            mira_error_free(serr);
        } else if (duplicate) {
            snprintf(v.text, sizeof v.text, "a repeat of message %lld, not processed again",
                     (long long)id);
        }
    }
    char cid[48];
    snprintf(cid, sizeof cid, "MIRA%llx.%llx", (unsigned long long)time(NULL),
             (unsigned long long)atomic_fetch_add(&ack_counter, 1));
    mira_hl7_ack_options o = {.code = v.code,
                              .text = v.text[0] ? v.text : NULL,
                              .error_code = v.error_code,
                              .location = v.location[0] ? v.location : NULL,
                              .control_id = cid,
                              .app = app,
                              .facility = facility};
    char *ack = mira_hl7_ack(m, text, len, &o, ack_len, err);
    if (code)
        *code = v.code; /* a string literal */
    mira_hl7_free(m);
    mira_free(sender);
    mira_free(control);
    mira_free(type);
    mira_free(version);
    return ack;
}

/* ------------------------------------------------------------------ the server */

struct mira_hl7_server {
    mira_hl7_server_options o;
    char *bind, *app, *facility;
    int fd, port;
    mira__tls *tls;
    atomic_bool stop;
    pthread_t acceptor;
    bool acceptor_started;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int active;
    uint64_t ids;
    /* the thread that acts on the messages kept (mira_archive_hl7_apply), woken by each */
    pthread_t applier;
    bool applier_started;
    pthread_cond_t work;
    bool pending;
};

static void slog(mira_hl7_server *s, mira_log_level level, const char *fmt, ...)
    MIRA_PRINTF(3, 4);
static void slog(mira_hl7_server *s, mira_log_level level, const char *fmt, ...)
{
    if (!s->o.log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->o.log(s->o.log_ctx, level, msg);
}

void mira_hl7_server_options_init(mira_hl7_server_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_connections = 64;
    o->idle_seconds = 600;
    o->max_message = (size_t)16 << 20;
}

int mira_hl7_server_port(const mira_hl7_server *s)
{
    return s->port;
}

typedef struct conn_job {
    mira_hl7_server *s;
    mira__conn conn;
    uint64_t id;
} conn_job;

/* MSH-10 of a message as received (for the log; "?" when there is none). */
static void control_of(const char *text, size_t len, char *out, size_t n)
{
    snprintf(out, n, "?");
    if (len < 8 || memcmp(text, "MSH", 3) != 0)
        return;
    char fs = text[3];
    size_t field = 1, i = 4;
    while (i < len && text[i] != '\r' && text[i] != '\n' && field < 9) {
        if (text[i] == fs)
            field++;
        i++;
    }
    if (field != 9)
        return;
    size_t j = i;
    while (j < len && text[j] != fs && text[j] != '\r' && text[j] != '\n')
        j++;
    if (j > i)
        snprintf(out, n, "%.*s", (int)(j - i < 64 ? j - i : 64), text + i);
}

static void *connection_thread(void *arg)
{
    conn_job *j = arg;
    mira_hl7_server *s = j->s;
    mira__conn c = j->conn;
    c.stop = &s->stop;
    uint64_t id = j->id;
    mira_free(j);
    mira_error *err = NULL;
    uint64_t messages = 0, rejected = 0;
    const char *end = "closed by the peer";
    char why[300] = "";
    mira_mllp_reader *r = mira_mllp_reader_new(s->o.max_message);
    char *buf = mira_malloc(65536);
    bool ok = r && buf;
    if (!ok)
        end = "out of memory";
    if (ok && s->tls) {
        ok = mira__tls_accept(s->tls, &c, 30000, &err);
        if (ok) {
            char desc[400];
            mira__tls_describe(&c, desc, sizeof desc);
            slog(s, MIRA_LOG_INFO, "hl7 connection %llu from %s: TLS, %s",
                 (unsigned long long)id, c.peer, desc);
        } else {
            snprintf(why, sizeof why, "TLS: %s", mira_error_get_message(err));
            end = why;
        }
    }
    size_t have = 0, at = 0;
    while (ok) {
        if (at == have) {
            at = have = 0;
            size_t got = 0;
            mira__io io = mira__conn_read_some(&c, buf, 65536, &got,
                                               s->o.idle_seconds * 1000, &err);
            if (io == MIRA__IO_CLOSED) {
                if (mira_mllp_in_frame(r))
                    end = "closed by the peer inside a message (not acknowledged)";
                break;
            }
            if (io == MIRA__IO_TIMEOUT) {
                end = "idle for too long";
                break;
            }
            if (io == MIRA__IO_STOPPED) {
                end = "server stopping";
                break;
            }
            if (io != MIRA__IO_OK) {
                snprintf(why, sizeof why, "%s", mira_error_get_message(err));
                end = why;
                break;
            }
            have = got;
        }
        mira_mllp_frame f;
        size_t used = mira_mllp_feed(r, buf + at, have - at, &f, &err);
        if (used == (size_t)-1) {
            end = "out of memory";
            break;
        }
        at += used;
        if (!f.data)
            continue;
        const char *code = "AR";
        size_t alen = 0;
        mira_error *e = NULL;
        char *ack = mira_hl7_receive(s->o.archive, f.data, f.len, f.oversize, c.peer, s->app,
                                     s->facility, &code, &alen, &e);
        messages++;
        if (strcmp(code, "AA") == 0) {
            pthread_mutex_lock(&s->lock);
            s->pending = true;
            pthread_cond_signal(&s->work);
            pthread_mutex_unlock(&s->lock);
        }
        char cid[80];
        control_of(f.data, f.len, cid, sizeof cid);
        if (strcmp(code, "AA") != 0) {
            rejected++;
            slog(s, MIRA_LOG_WARNING, "hl7 connection %llu from %s: message %s (%zu bytes)%s: %s",
                 (unsigned long long)id, c.peer, cid, f.total, f.oversize ? ", over the limit" : "",
                 code);
        }
        if (!ack) {
            snprintf(why, sizeof why, "no acknowledgement made: %s", mira_error_get_message(e));
            mira_error_free(e);
            end = why;
            break;
        }
        size_t flen = 0;
        char *frame = mira_mllp_wrap(ack, alen, &flen, &e);
        mira_free(ack);
        mira__io io = frame ? mira__conn_write(&c, frame, flen, 30000, &e) : MIRA__IO_ERROR;
        mira_free(frame);
        if (io != MIRA__IO_OK) {
            snprintf(why, sizeof why, "sending the ACK of %s: %s", cid,
                     e ? mira_error_get_message(e) : "the peer stopped reading");
            mira_error_free(e);
            end = why;
            break;
        }
    }
    if (mira_mllp_skipped(r))
        slog(s, MIRA_LOG_WARNING, "hl7 connection %llu from %s: %llu bytes outside MLLP frames "
             "skipped", (unsigned long long)id, c.peer,
             (unsigned long long)mira_mllp_skipped(r));
    slog(s, MIRA_LOG_INFO, "hl7 connection %llu from %s ended after %llu messages (%llu "
         "rejected): %s", (unsigned long long)id, c.peer, (unsigned long long)messages,
         (unsigned long long)rejected, end);
    mira_error_free(err);
    mira_mllp_reader_free(r);
    mira_free(buf);
    mira__conn_close(&c);
    pthread_mutex_lock(&s->lock);
    s->active--;
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void *accept_thread(void *arg)
{
    mira_hl7_server *s = arg;
    while (!atomic_load(&s->stop)) {
        mira__conn c;
        mira_error *e = NULL;
        if (!mira__tcp_accept(s->fd, 200, &c, &e)) {
            if (e) {
                slog(s, MIRA_LOG_ERROR, "hl7: %s", mira_error_get_message(e));
                mira_error_free(e);
                usleep(100 * 1000);
            }
            continue;
        }
        pthread_mutex_lock(&s->lock);
        bool over = s->active >= s->o.max_connections;
        uint64_t id = ++s->ids;
        if (!over)
            s->active++;
        pthread_mutex_unlock(&s->lock);
        if (over) {
            slog(s, MIRA_LOG_ERROR, "hl7 connection %llu from %s: closed at once (%d open, "
                 "the most allowed)", (unsigned long long)id, c.peer, s->o.max_connections);
            mira__conn_close(&c);
            continue;
        }
        conn_job *j = mira_malloc(sizeof *j);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 2u << 20);
        bool started = false;
        if (j) {
            j->s = s;
            j->conn = c;
            j->id = id;
            started = pthread_create(&t, &attr, connection_thread, j) == 0;
            if (!started)
                mira_free(j);
        }
        pthread_attr_destroy(&attr);
        if (!started) {
            slog(s, MIRA_LOG_ERROR, "hl7 connection %llu from %s: no thread for it",
                 (unsigned long long)id, c.peer);
            mira__conn_close(&c);
            pthread_mutex_lock(&s->lock);
            s->active--;
            pthread_cond_broadcast(&s->idle);
            pthread_mutex_unlock(&s->lock);
        } else {
            slog(s, MIRA_LOG_INFO, "hl7 connection %llu from %s", (unsigned long long)id,
                 c.peer);
        }
    }
    return NULL;
}

static void *apply_thread(void *arg)
{
    mira_hl7_server *s = arg;
    bool failing = false;
    while (!atomic_load(&s->stop)) {
        size_t done = 0;
        mira_error *e = NULL;
        bool ok = mira_archive_hl7_apply(s->o.archive, 200, &done, &e);
        if (!ok && !failing)
            slog(s, MIRA_LOG_ERROR, "hl7: acting on the messages kept: %s (tried again)",
                 mira_error_get_message(e));
        mira_error_free(e);
        failing = !ok;
        if (ok && done == 200)
            continue; /* more waiting */
        pthread_mutex_lock(&s->lock);
        if (!s->pending && !atomic_load(&s->stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1; /* and look again each second: another server may keep some */
            pthread_cond_timedwait(&s->work, &s->lock, &ts);
        }
        s->pending = false;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? mira_strdup(s) : NULL;
}

mira_hl7_server *mira_hl7_server_new(const mira_hl7_server_options *o, mira_error **err)
{
    if (!o || !o->archive) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, NULL, "the HL7 server needs an archive");
        return NULL;
    }
    mira_hl7_server *s = mira_calloc(1, sizeof *s);
    if (!s) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "the HL7 server");
        return NULL;
    }
    s->o = *o;
    if (s->o.max_connections <= 0)
        s->o.max_connections = 64;
    if (s->o.idle_seconds <= 0)
        s->o.idle_seconds = 600;
    if (!s->o.max_message)
        s->o.max_message = (size_t)16 << 20;
    s->fd = -1;
    s->bind = dup_or_null(o->bind);
    s->app = mira_strdup(o->app && *o->app ? o->app : "MIRA");
    s->facility = dup_or_null(o->facility);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    pthread_cond_init(&s->work, NULL);
    atomic_init(&s->stop, false);
    if (o->tls) {
        mira_tls_options t = {o->tls_cert, o->tls_key, o->tls_ca, o->tls_verify_peer};
        s->tls = mira__tls_new(&t, true, err);
        if (!s->tls)
            goto fail;
    }
    s->fd = mira__tcp_listen(s->bind, o->port, 64, &s->port, err);
    if (s->fd < 0)
        goto fail;
    if (pthread_create(&s->acceptor, NULL, accept_thread, s) != 0) {
        mira_error_set(err, MIRA_ERR_IO, NULL, "no thread for the HL7 server");
        goto fail;
    }
    s->acceptor_started = true;
    if (pthread_create(&s->applier, NULL, apply_thread, s) != 0) {
        mira_error_set(err, MIRA_ERR_IO, NULL, "no thread for the HL7 server");
        goto fail;
    }
    s->applier_started = true;
    slog(s, MIRA_LOG_INFO, "hl7 listening on %s:%d%s", s->bind && *s->bind ? s->bind : "*",
         s->port, s->tls ? " with TLS" : "");
    return s;
fail:
    mira_hl7_server_free(s);
    return NULL;
}

void mira_hl7_server_free(mira_hl7_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, true);
    if (s->acceptor_started)
        pthread_join(s->acceptor, NULL);
    /* connections see the stop flag within a slice of their waits; a message being stored
     * is stored and acknowledged first */
    pthread_mutex_lock(&s->lock);
    while (s->active > 0)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    if (s->applier_started)
        pthread_join(s->applier, NULL);
    if (s->fd >= 0)
        close(s->fd);
    mira__tls_free(s->tls);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    pthread_cond_destroy(&s->work);
    mira_free(s->bind);
    mira_free(s->app);
    mira_free(s->facility);
    mira_free(s);
}
