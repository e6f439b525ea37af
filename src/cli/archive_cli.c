/* What the archive commands share: finding and opening the archive, a progress bar. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * The archive folder: --archive DIR, else $MIRA_ARCHIVE, else "archive" in the config file
 * ($MIRA_CONFIG, else ./mira.json when it exists), else ./var.
 */
static char config_archive[4096];

mira_json *mira_cli_load_config(const char **path_out)
{
    const char *path = getenv("MIRA_CONFIG");
    if (!path || !*path)
        path = "mira.json";
    if (path_out)
        *path_out = path;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return mira_json_parse(buf, n, NULL);
}

static const char *from_config(void)
{
    mira_json *root = mira_cli_load_config(NULL);
    const char *out = NULL;
    mira_json *v = root ? mira_json_get(root, "archive") : NULL;
    if (v && mira_json_get_type(v) == MIRA_JSON_STRING) {
        snprintf(config_archive, sizeof config_archive, "%s", mira_json_get_string(v, NULL));
        out = config_archive;
    }
    mira_json_free(root);
    return out;
}

const char *mira_cli_archive_dir(const char *flag)
{
    if (flag && *flag)
        return flag;
    const char *env = getenv("MIRA_ARCHIVE");
    if (env && *env)
        return env;
    const char *cfg = from_config();
    return cfg && *cfg ? cfg : "var";
}

mira_archive *mira_cli_open_archive(const char *sub, const mira_archive_cli *opts, bool create)
{
    mira_archive_options o;
    mira_archive_options_init(&o);
    o.dir = mira_cli_archive_dir(opts ? opts->dir : NULL);
    o.index = opts ? opts->index : NULL;
    o.duplicates = opts ? opts->duplicates : -1;
    o.storage_ts = opts ? opts->storage_ts : NULL;
    o.create = create;
    mira_error *err = NULL;
    mira_archive *a = mira_archive_open(&o, &err);
    if (!a)
        mira_cli_report(sub, err);
    return a;
}

int mira_cli_archive_option(int argc, char **argv, int *i, mira_archive_cli *opts)
{
    const char *a = argv[*i];
    if (strcmp(a, "--archive") == 0 || strcmp(a, "--index") == 0 ||
        strcmp(a, "--duplicates") == 0) {
        if (*i + 1 >= argc)
            return -1;
        const char *v = argv[++*i];
        if (a[2] == 'a') {
            opts->dir = v;
        } else if (a[2] == 'i') {
            opts->index = v;
        } else {
            static const char *const names[] = {"keep", "overwrite", "reject"};
            opts->duplicates = -2;
            for (int k = 0; k < 3; k++)
                if (strcmp(v, names[k]) == 0)
                    opts->duplicates = k;
            if (opts->duplicates == -2)
                return -1;
        }
        return 1;
    }
    if (strcmp(a, "--storage-ts") == 0) {
        if (*i + 1 >= argc)
            return -1;
        const char *v = mira_cli_ts_by_name(argv[++*i]);
        if (*v && !mira_pixels_can_encode(v))
            return -1;
        opts->storage_ts = v;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ query keys */

bool mira_cli_lookup_tag(const char *name, mira_tag *tag, mira_vr *vr)
{
    if (mira_tag_parse(name, tag)) {
        *vr = mira_dict_vr(*tag);
        return true;
    }
    const mira_dict_entry *e = mira_dict_find_keyword(name);
    if (!e)
        return false;
    *tag = e->tag;
    *vr = mira_dict_entry_vr(e);
    return true;
}

bool mira_cli_add_key(mira_dataset *ident, const char *arg)
{
    char name[256];
    const char *eq = strchr(arg, '=');
    size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
    if (nl == 0 || nl >= sizeof name)
        return false;
    memcpy(name, arg, nl);
    name[nl] = 0;
    const char *value = eq ? eq + 1 : "";
    char *dot = strchr(name, '.');
    mira_tag tag, itag;
    mira_vr vr, ivr;
    if (dot) {
        *dot = 0;
        if (!mira_cli_lookup_tag(name, &tag, &vr) || vr != MIRA_VR_SQ ||
            !mira_cli_lookup_tag(dot + 1, &itag, &ivr))
            return false;
        mira_element *seq = mira_dataset_get(ident, tag);
        if (!seq && !(seq = mira_dataset_set_sequence(ident, tag, NULL)))
            return false;
        mira_dataset *item = mira_element_item_count(seq) ? mira_element_item(seq, 0)
                                                          : mira_element_add_item(seq, NULL);
        return item && mira_dataset_set_string(item, itag, ivr, value, NULL);
    }
    if (!mira_cli_lookup_tag(name, &tag, &vr))
        return false;
    if (!*value && mira_dataset_get(ident, tag))
        return true; /* KEY after KEY=VALUE: it is returned anyway */
    if (vr == MIRA_VR_SQ) {
        return mira_dataset_get(ident, tag) || mira_dataset_set_sequence(ident, tag, NULL);
    }
    if (!mira_vr_is_string(vr)) {
        if (*value) /* US keys (Rows...) match as numbers: hand them over as IS */
            vr = MIRA_VR_IS;
        else
            return mira_dataset_set_bytes(ident, tag, vr, NULL, 0, NULL) != NULL;
    }
    return mira_dataset_set_string(ident, tag, vr, value, NULL) != NULL;
}

/* ------------------------------------------------------------------ progress */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void mira_cli_progress_init(mira_cli_progress *p, const char *what, uint64_t total, bool enabled)
{
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total;
    p->enabled = enabled && isatty(STDERR_FILENO);
    p->start = now_s();
}

void mira_cli_progress_update(mira_cli_progress *p, uint64_t done)
{
    if (!p->enabled)
        return;
    double t = now_s();
    if (done < p->total && t - p->last < 0.1)
        return;
    p->last = t;
    double el = t - p->start, rate = el > 0 ? (double)done / el : 0;
    int width = 30, fill = p->total ? (int)((double)width * (double)done / (double)p->total) : 0;
    char bar[64];
    for (int k = 0; k < width; k++)
        bar[k] = k < fill ? '#' : '-';
    bar[width] = 0;
    double left = rate > 0 && p->total > done ? (double)(p->total - done) / rate : 0;
    fprintf(stderr, "\r%s [%s] %llu/%llu %.0f/s, %d:%02d left ", p->what, bar,
            (unsigned long long)done, (unsigned long long)p->total, rate, (int)left / 60,
            (int)left % 60);
    if (done >= p->total)
        fputc('\n', stderr);
    fflush(stderr);
}

void mira_cli_progress_done(mira_cli_progress *p)
{
    if (p->enabled && p->last > 0 && p->total == 0)
        fputc('\n', stderr);
}

double mira_cli_progress_seconds(const mira_cli_progress *p)
{
    return now_s() - p->start;
}
