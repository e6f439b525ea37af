/* HL7 v2 messages received over MLLP, kept in the index before their ACK (migration 7). */
#include "archive/archive_int.h"
#include "core/base64.h"
#include "core/buf.h"
#include "mira/hl7.h"

#include <stdio.h>
#include <string.h>

/* A message waiting to be written, on its caller's stack until done. */
typedef struct mira__hl7_wait {
    const mira_hl7_received *m;
    char at[32];
    const char *stored; /* the text column: m->text, or its base64 */
    const char *encoding;
    struct mira__hl7_wait *next;
    bool done, ok; /* (under hl7_lock) */
    int64_t id;
    bool duplicate;
    mira_error *err;
} mira__hl7_wait;

/* UTF-8 (RFC 3629: no overlongs, no surrogates) without NUL. */
static bool text_safe(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2
                                              : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
        if (k == 0 || i + k >= n) /* bytes i+1 .. i+k must be there */
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
        if ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F) ||
            (c == 0xF0 && p[i + 1] < 0x90) || (c == 0xF4 && p[i + 1] > 0x8F))
            return false;
        i += k + 1;
    }
    return true;
}

/* s with each byte that is not part of valid UTF-8 (and each control character but CR, LF
 * and TAB) as '?' (owned; NULL stays NULL): the columns beside the message are text in both
 * backends, and PostgreSQL refuses invalid UTF-8. */
static char *clean(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *out = mira_malloc(n + 1);
    if (!out) {
        *failed = true;
        return NULL;
    }
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        while (k <= 4 && i + k <= n && !text_safe(s + i, k))
            k++;
        if (k <= 4 && i + k <= n) {
            bool ctl = k == 1 && (unsigned char)s[i] < 0x20 && s[i] != '\r' && s[i] != '\n' &&
                       s[i] != '\t';
            if (ctl)
                out[i] = '?';
            else
                memcpy(out + i, s + i, k);
            i += k;
        } else {
            out[i++] = '?';
        }
    }
    out[n] = 0;
    return out;
}

typedef struct upserted {
    int64_t id, duplicates;
    bool found;
} upserted;

static bool take_upsert(void *ctx, const mira__dbval *c, size_t n)
{
    upserted *u = ctx;
    if (n >= 2 && c[0].type == MIRA__DB_INT) {
        u->id = c[0].i;
        u->duplicates = c[1].type == MIRA__DB_INT ? c[1].i : 0;
        u->found = true;
    }
    return false;
}

/* One message in the open transaction, in one statement: a repeat of an accepted one (the
 * partial unique index) only counts on it, which RETURNING tells by its duplicates (a new row
 * has none). */
static bool hl7_insert(mira__db *db, mira__hl7_wait *w, mira_error **err)
{
    const mira_hl7_received *m = w->m;
    mira__dbval p[10] = {mira__db_text(w->at),
                         mira__db_text(m->peer ? m->peer : ""),
                         mira__db_text(m->sender ? m->sender : ""),
                         mira__db_opt(m->control_id),
                         mira__db_opt(m->message_type),
                         mira__db_opt(m->version),
                         mira__db_text(m->ack_code ? m->ack_code : "AR"),
                         mira__db_opt(m->error),
                         mira__db_text(w->encoding),
                         mira__db_text(w->stored)};
    upserted u = {0};
    if (!db->ops->query(db,
                        "INSERT INTO hl7_messages (received_at, peer, sender, control_id,"
                        " message_type, version, ack_code, error, encoding, message)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (sender, control_id) WHERE ack_code = 'AA'"
                        " DO UPDATE SET duplicates = hl7_messages.duplicates + 1"
                        " RETURNING id, duplicates",
                        p, 10, take_upsert, &u, NULL, err))
        return false;
    if (!u.found) {
        mira_error_set(err, MIRA_ERR_IO, NULL, "keeping an HL7 message: no row returned");
        return false;
    }
    w->id = u.id;
    w->duplicate = u.duplicates > 0;
    return true;
}

/* A write transaction for kept messages. In PostgreSQL a plain one: the inserts need no
 * serialising with the archive's other writers (the unique index settles repeats), and taking
 * the archive's writer lock would make each ACK wait for whatever else is being written. */
static bool begin(mira_archive *a, mira__db *db, mira_error **err)
{
    return a->postgres ? db->ops->exec(db, "BEGIN", err) : db->ops->begin_write(db, err);
}

/* A batch in one transaction; if that fails, each in its own, so that one fails alone. (The
 * messages are acted on afterwards, by mira_archive_hl7_apply on a thread of the server's:
 * doing it here, in the transaction that keeps them, made every ACK wait for it and halved
 * the messages kept per second.) */
static void hl7_write(mira_archive *a, mira__hl7_wait *batch)
{
    mira_error *err = NULL;
    mira__db *db = mira__archive_db_acquire(a, &err);
    bool together = false;
    if (db) {
        together = begin(a, db, NULL);
        for (mira__hl7_wait *w = batch; together && w; w = w->next)
            together = hl7_insert(db, w, NULL);
        if (together)
            together = mira__db_commit(db, NULL);
        else
            mira__db_rollback(db);
    }
    for (mira__hl7_wait *w = batch; w; w = w->next) {
        if (together) {
            w->ok = true;
        } else if (db) {
            w->ok = begin(a, db, &w->err) && hl7_insert(db, w, &w->err) &&
                    mira__db_commit(db, &w->err);
            if (!w->ok)
                mira__db_rollback(db);
        } else if (err) {
            mira_error_set(&w->err, mira_error_get_code(err), NULL, "%s",
                           mira_error_get_message(err));
        }
    }
    mira_error_free(err);
    if (db)
        mira__archive_db_release(a, db);
}

static bool hl7_put(mira_archive *a, const mira_hl7_received *m, int64_t *id, bool *duplicate,
                    mira_error **err);

bool mira_archive_hl7_put(mira_archive *a, const mira_hl7_received *m, int64_t *id,
                          bool *duplicate, mira_error **err)
{
    if (!a || !m || (!m->text && m->len)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, NULL, "mira_archive_hl7_put: no message");
        return false;
    }
    /* the columns beside the message, as valid UTF-8 */
    bool failed = false;
    char *c_peer = clean(m->peer, &failed), *c_sender = clean(m->sender, &failed),
         *c_control = clean(m->control_id, &failed), *c_type = clean(m->message_type, &failed),
         *c_version = clean(m->version, &failed), *c_error = clean(m->error, &failed);
    mira_hl7_received mc = *m;
    mc.peer = c_peer;
    mc.sender = c_sender;
    mc.control_id = c_control;
    mc.message_type = c_type;
    mc.version = c_version;
    mc.error = c_error;
    bool ok = !failed && hl7_put(a, &mc, id, duplicate, err);
    if (failed)
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an HL7 message of %zu bytes", m->len);
    mira_free(c_peer);
    mira_free(c_sender);
    mira_free(c_control);
    mira_free(c_type);
    mira_free(c_version);
    mira_free(c_error);
    return ok;
}

static bool hl7_put(mira_archive *a, const mira_hl7_received *m, int64_t *id, bool *duplicate,
                    mira_error **err)
{
    mira__hl7_wait w = {.m = m};
    mira__now(w.at);
    char *b64 = NULL;
    if (text_safe(m->text ? m->text : "", m->len)) {
        char *copy = mira_malloc(m->len + 1); /* NUL-terminated for the query */
        if (!copy) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an HL7 message of %zu bytes", m->len);
            return false;
        }
        if (m->len)
            memcpy(copy, m->text, m->len);
        copy[m->len] = 0;
        b64 = copy;
        w.encoding = "text";
    } else {
        mira__buf b;
        mira__buf_init(&b);
        mira__base64_encode(&b, (const uint8_t *)m->text, m->len);
        b64 = mira__buf_steal(&b, NULL);
        if (!b64) {
            mira_error_set(err, MIRA_ERR_NOMEM, NULL, "an HL7 message of %zu bytes", m->len);
            return false;
        }
        w.encoding = "base64";
    }
    w.stored = b64;
    pthread_mutex_lock(&a->hl7_lock);
    if (a->hl7_tail)
        a->hl7_tail->next = &w;
    else
        a->hl7_head = &w;
    a->hl7_tail = &w;
    while (!w.done) {
        if (a->hl7_writing) {
            pthread_cond_wait(&a->hl7_cond, &a->hl7_lock);
            continue;
        }
        mira__hl7_wait *batch = a->hl7_head;
        a->hl7_head = a->hl7_tail = NULL;
        a->hl7_writing = true;
        pthread_mutex_unlock(&a->hl7_lock);
        hl7_write(a, batch);
        pthread_mutex_lock(&a->hl7_lock);
        for (mira__hl7_wait *x = batch, *next; x; x = next) {
            next = x->next; /* (x may be gone once done is seen by its owner) */
            x->done = true;
        }
        a->hl7_writing = false;
        pthread_cond_broadcast(&a->hl7_cond);
    }
    pthread_mutex_unlock(&a->hl7_lock);
    mira_free(b64);
    if (!w.ok) {
        if (err && w.err)
            *err = w.err;
        else
            mira_error_free(w.err);
        if (err && !*err)
            mira_error_set(err, MIRA_ERR_IO, NULL, "keeping an HL7 message");
        return false;
    }
    if (id)
        *id = w.id;
    if (duplicate)
        *duplicate = w.duplicate;
    return true;
}

typedef struct list_ctx {
    mira_hl7_stored_fn fn;
    void *ctx;
    bool stopped;
    mira_error *err;
} list_ctx;

static const char *col(const mira__dbval *c)
{
    return c->type == MIRA__DB_TEXT ? c->s : NULL;
}

static bool list_row(void *ctx, const mira__dbval *c, size_t n)
{
    list_ctx *l = ctx;
    if (n < 14)
        return false;
    mira_hl7_stored m = {.id = c[0].i,
                         .received_at = col(&c[1]),
                         .peer = col(&c[2]),
                         .sender = col(&c[3]),
                         .control_id = col(&c[4]),
                         .message_type = col(&c[5]),
                         .version = col(&c[6]),
                         .ack_code = col(&c[7]),
                         .error = col(&c[8]),
                         .duplicates = c[11].type == MIRA__DB_INT ? c[11].i : 0,
                         .processed_at = col(&c[12]),
                         .process_error = col(&c[13])};
    const char *enc = col(&c[9]), *text = col(&c[10]);
    mira__buf b;
    mira__buf_init(&b);
    if (enc && strcmp(enc, "base64") == 0) {
        if (!mira__base64_decode(&b, text ? text : "", text ? strlen(text) : 0) || b.failed) {
            mira_error_set(&l->err, MIRA_ERR_INVALID, NULL,
                           "HL7 message %lld: its stored base64 text does not decode",
                           (long long)m.id);
            mira__buf_cleanup(&b);
            l->stopped = true;
            return false;
        }
        mira__buf_putc(&b, 0);
        m.text = (const char *)b.data;
        m.len = b.len ? b.len - 1 : 0;
    } else {
        m.text = text ? text : "";
        m.len = strlen(m.text);
    }
    bool go = l->fn(l->ctx, &m);
    mira__buf_cleanup(&b);
    if (!go)
        l->stopped = true;
    return go;
}

bool mira_archive_hl7_list(mira_archive *a, const mira_hl7_list_options *o,
                           mira_hl7_stored_fn fn, void *ctx, mira_error **err)
{
    mira_hl7_list_options none = {0};
    if (!o)
        o = &none;
    char sql[512];
    mira__dbval p[4];
    size_t np = 0;
    int at = snprintf(sql, sizeof sql,
                      "SELECT id, received_at, peer, sender, control_id, message_type, version,"
                      " ack_code, error, encoding, message, duplicates, processed_at, process_error"
                      " FROM hl7_messages WHERE id > ?");
    p[np++] = mira__db_int(o->after_id);
    if (o->ack_code) {
        at += snprintf(sql + at, sizeof sql - (size_t)at, " AND ack_code = ?");
        p[np++] = mira__db_text(o->ack_code);
    }
    if (o->control_id) {
        at += snprintf(sql + at, sizeof sql - (size_t)at, " AND control_id = ?");
        p[np++] = mira__db_text(o->control_id);
    }
    at += snprintf(sql + at, sizeof sql - (size_t)at, " ORDER BY id");
    if (o->limit) {
        snprintf(sql + at, sizeof sql - (size_t)at, " LIMIT ?");
        p[np++] = mira__db_int((int64_t)o->limit);
    }
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return false;
    list_ctx l = {fn, ctx, false, NULL};
    bool ok = db->ops->query(db, sql, p, np, list_row, &l, NULL, err);
    mira__archive_db_release(a, db);
    if (ok && l.err) {
        if (err)
            *err = l.err;
        else
            mira_error_free(l.err);
        return false;
    }
    mira_error_free(l.err);
    return ok;
}
