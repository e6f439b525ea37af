/* mira serve: C-MOVE destinations by AE title, from --peer and the config's dimse.peers. */
#include "serve_peers.h"

#include <stdlib.h>
#include <string.h>

static bool known(const mira_cli_peers *p, const char *ae)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].ae_title, ae) == 0)
            return true;
    return false;
}

static bool add(mira_cli_peers *p, const char *ae, size_t ae_len, const char *host,
                size_t host_len, long port)
{
    if (p->n >= MIRA_CLI_PEERS_MAX || p->nowned + 2 > MIRA_CLI_PEERS_OWNED || ae_len == 0 ||
        ae_len > 16 || host_len == 0 || host_len > 255 || port <= 0 || port > 65535)
        return false;
    char *a = mira_malloc(ae_len + 1), *h = mira_malloc(host_len + 1);
    if (!a || !h) {
        mira_free(a);
        mira_free(h);
        return false;
    }
    memcpy(a, ae, ae_len);
    a[ae_len] = 0;
    memcpy(h, host, host_len);
    h[host_len] = 0;
    p->owned[p->nowned++] = a;
    p->owned[p->nowned++] = h;
    if (known(p, a))
        return true; /* --peer came first and wins */
    p->v[p->n].ae_title = a;
    p->v[p->n].host = h;
    p->v[p->n].port = (int)port;
    p->cli_tls[p->n] = false;
    p->n++;
    return true;
}

static bool own_string(mira_cli_peers *p, mira_json *v, const char **out)
{
    if (!v)
        return true;
    size_t n = 0;
    const char *s = mira_json_get_type(v) == MIRA_JSON_STRING ? mira_json_get_string(v, &n) : NULL;
    char *c = s && n && p->nowned < MIRA_CLI_PEERS_OWNED
                  ? mira_malloc(n + 1)
                  : NULL;
    if (!c)
        return false;
    memcpy(c, s, n);
    c[n] = 0;
    p->owned[p->nowned++] = c;
    *out = c;
    return true;
}

/* A dimse.peers entry's "tls": true, with "ca", "cert", "key", "verify_peer" (default true)
 * beside it. peer NULL: the entry was named by --peer too (which wins); checked only. */
static bool peer_tls(mira_cli_peers *p, mira_json *e, mira_dimse_peer *peer)
{
    mira_json *t = mira_json_get(e, "tls"), *vp = mira_json_get(e, "verify_peer");
    if (!t)
        return true;
    mira_json_type tt = mira_json_get_type(t), vt = vp ? mira_json_get_type(vp) : MIRA_JSON_TRUE;
    if ((tt != MIRA_JSON_TRUE && tt != MIRA_JSON_FALSE) ||
        (vt != MIRA_JSON_TRUE && vt != MIRA_JSON_FALSE))
        return false;
    if (tt == MIRA_JSON_FALSE || !peer)
        return true;
    mira_tls_options *o = &p->tls[peer - p->v];
    memset(o, 0, sizeof *o);
    o->verify_peer = vt == MIRA_JSON_TRUE;
    if (!own_string(p, mira_json_get(e, "ca"), &o->ca_file) ||
        !own_string(p, mira_json_get(e, "cert"), &o->cert_file) ||
        !own_string(p, mira_json_get(e, "key"), &o->key_file))
        return false;
    peer->tls = o;
    return true;
}

int mira_cli_peer_option(int argc, char **argv, int *i, mira_cli_peers *p)
{
    if (strcmp(argv[*i], "--peer") != 0)
        return 0;
    if (*i + 1 >= argc)
        return -1;
    const char *v = argv[++*i];
    const char *eq = strchr(v, '='), *colon = strrchr(v, ':');
    if (!eq || !colon || colon < eq)
        return -1;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    bool tls = strcmp(end, ",tls") == 0;
    if (*end && !tls)
        return -1;
    size_t before = p->n;
    if (!add(p, v, (size_t)(eq - v), eq + 1, (size_t)(colon - eq - 1), port))
        return -1;
    if (p->n > before)
        p->cli_tls[p->n - 1] = tls;
    return 1;
}

bool mira_cli_peers_finish(mira_cli_peers *p, mira_dimse_server_options *o)
{
    const char *path = NULL;
    mira_json *root = mira_cli_load_config(&path);
    mira_json *d = root ? mira_json_get(root, "dimse") : NULL;
    mira_json *peers = d ? mira_json_get(d, "peers") : NULL;
    bool ok = true;
    if (peers && mira_json_get_type(peers) != MIRA_JSON_OBJECT) {
        fprintf(stderr, "mira serve: %s: dimse.peers is not an object\n", path);
        ok = false;
    }
    for (size_t i = 0; ok && peers && i < mira_json_count(peers); i++) {
        const char *ae = mira_json_key_at(peers, i);
        mira_json *e = mira_json_at(peers, i);
        mira_json *h = e ? mira_json_get(e, "host") : NULL;
        mira_json *pt = e ? mira_json_get(e, "port") : NULL;
        size_t hl = 0;
        const char *host = h && mira_json_get_type(h) == MIRA_JSON_STRING
                               ? mira_json_get_string(h, &hl)
                               : NULL;
        size_t before = p->n;
        if (!host || !pt || mira_json_get_type(pt) != MIRA_JSON_NUMBER ||
            !add(p, ae, strlen(ae), host, hl, (long)mira_json_get_number(pt))) {
            fprintf(stderr,
                    "mira serve: %s: dimse.peers.%s needs \"host\" and \"port\" (1-65535)\n",
                    path, ae);
            ok = false;
        } else if (!peer_tls(p, e, p->n > before ? &p->v[p->n - 1] : NULL)) {
            fprintf(stderr,
                    "mira serve: %s: dimse.peers.%s: \"tls\" is true or false; \"ca\", "
                    "\"cert\", \"key\" are file names, \"verify_peer\" true or false\n",
                    path, ae);
            ok = false;
        }
    }
    mira_json_free(root);
    for (size_t i = 0; ok && i < p->n; i++) {
        if (!p->cli_tls[i])
            continue;
        if (!o->tls || !o->tls->ca_file) {
            fprintf(stderr, "mira serve: --peer %s=...,tls needs --tls-cert, --tls-key and "
                            "--tls-ca (its certificate is verified against --tls-ca)\n",
                    p->v[i].ae_title);
            ok = false;
            break;
        }
        p->tls[i] = *o->tls;
        p->tls[i].verify_peer = true;
        p->v[i].tls = &p->tls[i];
    }
    o->peers = p->n ? p->v : NULL;
    o->npeers = p->n;
    return ok;
}

void mira_cli_peers_free(mira_cli_peers *p)
{
    for (size_t i = 0; i < p->nowned; i++)
        mira_free(p->owned[i]);
    p->nowned = 0;
    p->n = 0;
}
