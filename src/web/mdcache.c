/* The metadata cache: assembled WADO-RS metadata bodies of studies and series, kept while the
 * archive says the entity is unchanged (its version token), in plain and gzip form. */
#include "web/web_int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct entry {
    char *key;
    char token[96];
    char *plain, *gz; /* gz: NULL until a client that takes gzip asks */
    size_t plain_len, gz_len;
    uint64_t used; /* the tick of its last use (least recently used goes first) */
} entry;

struct mira__md_cache {
    pthread_mutex_t mu;
    entry *v;
    size_t n, cap;
    size_t bytes, max_bytes;
    uint64_t tick;
};

mira__md_cache *mira__md_cache_new(size_t max_bytes)
{
    mira__md_cache *c = mira_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    return c;
}

static void entry_free(entry *e)
{
    mira_free(e->key);
    mira_free(e->plain);
    mira_free(e->gz);
}

void mira__md_cache_free(mira__md_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        entry_free(&c->v[i]);
    mira_free(c->v);
    pthread_mutex_destroy(&c->mu);
    mira_free(c);
}

static entry *find(mira__md_cache *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].key, key) == 0)
            return &c->v[i];
    return NULL;
}

static void drop(mira__md_cache *c, entry *e)
{
    c->bytes -= e->plain_len + e->gz_len;
    entry_free(e);
    *e = c->v[--c->n];
}

/* Room for `need` more bytes: the least recently used go. */
static void make_room(mira__md_cache *c, size_t need)
{
    while (c->n && c->bytes + need > c->max_bytes) {
        entry *old = &c->v[0];
        for (size_t i = 1; i < c->n; i++)
            if (c->v[i].used < old->used)
                old = &c->v[i];
        drop(c, old);
    }
}

bool mira__md_cache_get(mira__md_cache *c, const char *key, const char *token, bool gz,
                        mira__buf *out, bool *gzipped)
{
    *gzipped = false;
    if (!c)
        return false;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, key);
    if (!e || strcmp(e->token, token) != 0) {
        if (e)
            drop(c, e); /* the entity changed */
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    e->used = ++c->tick;
    bool ok;
    if (gz && e->gz) {
        ok = mira__buf_append(out, e->gz, e->gz_len);
        *gzipped = ok;
        pthread_mutex_unlock(&c->mu);
        return ok;
    }
    ok = mira__buf_append(out, e->plain, e->plain_len);
    pthread_mutex_unlock(&c->mu);
    if (!ok || !gz)
        return ok;
    /* the gzip form, made once outside the lock (a series' metadata is megabytes) */
    mira__buf z;
    mira__buf_init(&z);
    if (!mira__buf_append(&z, out->data, out->len) || !mira__http_gzip(&z)) {
        mira__buf_cleanup(&z);
        return true; /* the plain form, which the server compresses if it can */
    }
    pthread_mutex_lock(&c->mu);
    e = find(c, key);
    if (e && strcmp(e->token, token) == 0 && !e->gz) {
        make_room(c, z.len);
        e = find(c, key); /* (room may have moved or dropped it) */
        if (e && c->bytes + z.len <= c->max_bytes) {
            e->gz = mira_malloc(z.len);
            if (e->gz) {
                memcpy(e->gz, z.data, z.len);
                e->gz_len = z.len;
                c->bytes += z.len;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    out->len = 0;
    *gzipped = mira__buf_append(out, z.data, z.len);
    mira__buf_cleanup(&z);
    return *gzipped;
}

void mira__md_cache_put(mira__md_cache *c, const char *key, const char *token, const void *body,
                        size_t len)
{
    if (!c || len > c->max_bytes / 2 || strlen(token) >= sizeof ((entry *)0)->token)
        return;
    char *copy = mira_malloc(len ? len : 1);
    char *k = mira_strdup(key);
    if (!copy || !k) {
        mira_free(copy);
        mira_free(k);
        return;
    }
    memcpy(copy, body, len);
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, key);
    if (e)
        drop(c, e);
    make_room(c, len);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        entry *v = mira_realloc(c->v, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&c->mu);
            mira_free(copy);
            mira_free(k);
            return;
        }
        c->v = v;
        c->cap = cap;
    }
    e = &c->v[c->n++];
    memset(e, 0, sizeof *e);
    e->key = k;
    snprintf(e->token, sizeof e->token, "%s", token);
    e->plain = copy;
    e->plain_len = len;
    e->used = ++c->tick;
    c->bytes += len;
    pthread_mutex_unlock(&c->mu);
}
