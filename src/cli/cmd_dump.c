/* mira dump: DICOM files as a readable element tree, or as JSON for programs. */
#include "cli.h"

#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira dump [options] FILE...\n\n"
            "Print every element of each DICOM file: tag, VR, length, value and keyword.\n\n"
            "options:\n"
            "  --json               machine-readable output (one JSON array of files)\n"
            "  --no-pixels          stop reading before the pixel data\n"
            "  --raw                the files are raw data sets (no preamble, no file meta)\n"
            "  --transfer-syntax UID  transfer syntax of raw data sets (default: guess)\n"
            "  --full               do not shorten long values in the readable output\n"
            "  -h, --help           this help\n\n"
            "exit status: 0 all files read, 1 a file could not be read, 2 wrong usage\n");
}

typedef struct dump_opts {
    bool json;
    bool full;
} dump_opts;

/* ------------------------------------------------------------------ readable output */

static void print_value(FILE *out, const mira_element *e, bool full)
{
    mira_vr vr = mira_element_vr(e);
    size_t max = full ? (size_t)-1 : 64;
    if (mira_element_is_encapsulated(e)) {
        size_t bot;
        mira_element_offset_table(e, &bot);
        fprintf(out, "(encapsulated: %zu fragments, offset table %zu bytes)",
                mira_element_fragment_count(e), bot);
        return;
    }
    if (mira_vr_is_string(vr)) {
        mira_error *err = NULL;
        char *s = mira_element_get_text(e, &err);
        if (!s) {
            fprintf(out, "(undecodable: %s)", mira_error_get_message(err));
            mira_error_free(err);
            return;
        }
        size_t n = strlen(s);
        fputc('[', out);
        for (size_t i = 0; i < n && i < max; i++)
            fputc(s[i] == '\n' || s[i] == '\r' ? ' ' : s[i], out);
        fputs(n > max ? "...]" : "]", out);
        mira_free(s);
        return;
    }
    size_t vm = mira_element_vm(e);
    size_t len;
    const uint8_t *bytes = mira_element_bytes(e, &len);
    switch (vr) {
    case MIRA_VR_US: case MIRA_VR_SS: case MIRA_VR_UL: case MIRA_VR_SL: case MIRA_VR_UV:
    case MIRA_VR_SV: case MIRA_VR_FL: case MIRA_VR_FD: case MIRA_VR_AT: {
        size_t shown = full || vm <= 16 ? vm : 16;
        for (size_t i = 0; i < shown; i++) {
            if (i)
                fputc('\\', out);
            if (vr == MIRA_VR_AT) {
                uint64_t t = 0;
                mira_element_get_uint(e, i, &t, NULL);
                fprintf(out, "(%04X,%04X)", (unsigned)(t >> 16), (unsigned)(t & 0xFFFF));
            } else if (vr == MIRA_VR_FL || vr == MIRA_VR_FD) {
                double d = 0;
                mira_element_get_double(e, i, &d, NULL);
                fprintf(out, "%.*g", vr == MIRA_VR_FL ? 9 : 17, d);
            } else if (vr == MIRA_VR_SS || vr == MIRA_VR_SL || vr == MIRA_VR_SV) {
                int64_t v = 0;
                mira_element_get_int(e, i, &v, NULL);
                fprintf(out, "%lld", (long long)v);
            } else {
                uint64_t v = 0;
                mira_element_get_uint(e, i, &v, NULL);
                fprintf(out, "%llu", (unsigned long long)v);
            }
        }
        if (shown < vm)
            fputs("\\...", out);
        return;
    }
    default: {
        size_t shown = full || len <= 16 ? len : 16;
        for (size_t i = 0; i < shown; i++)
            fprintf(out, "%s%02x", i ? "\\" : "", bytes[i]);
        if (shown < len)
            fputs("\\...", out);
        if (len == 0)
            fputs("(no value)", out);
        return;
    }
    }
}

static void keyword_of(const mira_dataset *ds, const mira_element *e, char *out, size_t cap)
{
    mira_tag t = mira_element_tag(e);
    const mira_dict_entry *d = mira_dict_find(t);
    if (d && d->keyword[0]) {
        snprintf(out, cap, "%s", d->keyword);
        return;
    }
    if (MIRA_TAG_ELEMENT(t) == 0) {
        snprintf(out, cap, "GroupLength");
        return;
    }
    if (MIRA_TAG_IS_PRIVATE(t)) {
        uint16_t el = MIRA_TAG_ELEMENT(t);
        if (el >= 0x10 && el <= 0xFF) {
            snprintf(out, cap, "PrivateCreator");
            return;
        }
        const char *creator = mira_dataset_private_creator(ds, t);
        const mira_dict_entry *pd = creator ? mira_dict_find_private(creator, t) : NULL;
        if (pd && pd->name[0])
            snprintf(out, cap, "[%s] %s", creator, pd->name);
        else
            snprintf(out, cap, "[%s] Unknown", creator ? creator : "no creator");
        return;
    }
    snprintf(out, cap, "Unknown");
}

static void dump_text(FILE *out, const mira_dataset *ds, int depth, const dump_opts *o)
{
    for (size_t i = 0; i < mira_dataset_count(ds); i++) {
        const mira_element *e = mira_dataset_at(ds, i);
        mira_tag t = mira_element_tag(e);
        char kw[160];
        keyword_of(ds, e, kw, sizeof kw);
        char len[16];
        if (mira_element_length(e) == MIRA_UNDEFINED_LENGTH)
            snprintf(len, sizeof len, "u/l");
        else
            snprintf(len, sizeof len, "%u", mira_element_length(e));
        fprintf(out, "%*s(%04X,%04X) %s %6s ", depth * 2, "", MIRA_TAG_GROUP(t),
                MIRA_TAG_ELEMENT(t), mira_vr_name(mira_element_vr(e)), len);
        if (mira_element_vr(e) == MIRA_VR_SQ) {
            fprintf(out, "(sequence, %zu items) %s\n", mira_element_item_count(e), kw);
            for (size_t k = 0; k < mira_element_item_count(e); k++) {
                fprintf(out, "%*s  item %zu\n", depth * 2, "", k + 1);
                dump_text(out, mira_element_item(e, k), depth + 2, o);
            }
            continue;
        }
        print_value(out, e, o->full);
        fprintf(out, " %s\n", kw);
    }
}

/* ------------------------------------------------------------------ JSON output */

static void json_bytes(mira_json_writer *w, const uint8_t *p, size_t n)
{
    size_t blen;
    char *b64 = mira_base64_encode(p, n, &blen);
    if (b64)
        mira_json_string(w, b64, blen);
    else
        mira_json_null(w);
    mira_free(b64);
}

static void dump_json(mira_json_writer *w, const mira_dataset *ds)
{
    mira_json_begin_array(w);
    for (size_t i = 0; i < mira_dataset_count(ds); i++) {
        const mira_element *e = mira_dataset_at(ds, i);
        mira_tag t = mira_element_tag(e);
        mira_vr vr = mira_element_vr(e);
        char buf[160];
        mira_json_begin_object(w);
        snprintf(buf, sizeof buf, "%08X", t);
        mira_json_key(w, "tag");
        mira_json_cstring(w, buf);
        mira_json_key(w, "vr");
        mira_json_cstring(w, mira_vr_name(vr));
        mira_json_key(w, "vr_on_disk");
        mira_json_cstring(w, mira_vr_name(mira_element_vr_on_disk(e)));
        mira_json_key(w, "length");
        if (mira_element_length(e) == MIRA_UNDEFINED_LENGTH)
            mira_json_null(w);
        else
            mira_json_uint(w, mira_element_length(e));
        mira_json_key(w, "offset");
        mira_json_uint(w, mira_element_offset(e));
        keyword_of(ds, e, buf, sizeof buf);
        mira_json_key(w, "keyword");
        mira_json_cstring(w, buf);
        if (MIRA_TAG_IS_PRIVATE(t)) {
            const char *creator = mira_dataset_private_creator(ds, t);
            mira_json_key(w, "creator");
            if (creator)
                mira_json_cstring(w, creator);
            else
                mira_json_null(w);
        }
        mira_json_key(w, "vm");
        mira_json_uint(w, mira_element_vm(e));
        if (vr == MIRA_VR_SQ) {
            mira_json_key(w, "items");
            mira_json_begin_array(w);
            for (size_t k = 0; k < mira_element_item_count(e); k++)
                dump_json(w, mira_element_item(e, k));
            mira_json_end_array(w);
        } else if (mira_element_is_encapsulated(e)) {
            size_t n;
            const uint8_t *p = mira_element_offset_table(e, &n);
            mira_json_key(w, "offset_table");
            json_bytes(w, p, n);
            mira_json_key(w, "fragments");
            mira_json_begin_array(w);
            for (size_t k = 0; k < mira_element_fragment_count(e); k++) {
                p = mira_element_fragment(e, k, &n);
                json_bytes(w, p, n);
            }
            mira_json_end_array(w);
        } else if (mira_vr_is_string(vr)) {
            mira_json_key(w, "value");
            mira_json_begin_array(w);
            size_t vm = mira_element_vm(e);
            for (size_t k = 0; k < vm; k++) {
                char *s = mira_element_get_string(e, k, NULL);
                if (s)
                    mira_json_cstring(w, s);
                else
                    mira_json_null(w);
                mira_free(s);
            }
            mira_json_end_array(w);
        } else if (vr == MIRA_VR_US || vr == MIRA_VR_SS || vr == MIRA_VR_UL ||
                   vr == MIRA_VR_SL || vr == MIRA_VR_UV || vr == MIRA_VR_SV ||
                   vr == MIRA_VR_FL || vr == MIRA_VR_FD || vr == MIRA_VR_AT) {
            mira_json_key(w, "value");
            mira_json_begin_array(w);
            size_t vm = mira_element_vm(e);
            for (size_t k = 0; k < vm; k++) {
                if (vr == MIRA_VR_AT) {
                    uint64_t v = 0;
                    mira_element_get_uint(e, k, &v, NULL);
                    snprintf(buf, sizeof buf, "%08X", (unsigned)v);
                    mira_json_cstring(w, buf);
                } else if (vr == MIRA_VR_FL || vr == MIRA_VR_FD) {
                    double d = 0;
                    mira_element_get_double(e, k, &d, NULL);
                    mira_json_double(w, d);
                } else if (vr == MIRA_VR_SS || vr == MIRA_VR_SL || vr == MIRA_VR_SV) {
                    int64_t v = 0;
                    mira_element_get_int(e, k, &v, NULL);
                    mira_json_int(w, v);
                } else {
                    uint64_t v = 0;
                    mira_element_get_uint(e, k, &v, NULL);
                    mira_json_uint(w, v);
                }
            }
            mira_json_end_array(w);
        } else {
            size_t n;
            const uint8_t *p = mira_element_bytes(e, &n);
            mira_json_key(w, "bytes");
            json_bytes(w, p, n);
        }
        mira_json_end_object(w);
    }
    mira_json_end_array(w);
}

int mira_cli_dump(int argc, char **argv)
{
    dump_opts o = {0};
    mira_read_options ro;
    mira_read_options_init(&ro);
    int nfiles = 0;
    char **files = argv + 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--no-pixels") == 0) {
            ro.stop_before_pixels = true;
        } else if (strcmp(a, "--full") == 0) {
            o.full = true;
        } else if (strcmp(a, "--raw") == 0) {
            ro.raw = true;
        } else if (strcmp(a, "--transfer-syntax") == 0 && i + 1 < argc) {
            ro.transfer_syntax = argv[++i];
        } else if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                files[nfiles++] = argv[i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mira dump: unknown option '%s'\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (nfiles == 0) {
        fprintf(stderr, "mira dump: no file given\n");
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    int rc = MIRA_EXIT_OK;
    mira_json_writer *w = o.json ? mira_json_writer_new(false) : NULL;
    if (w)
        mira_json_begin_array(w);
    for (int i = 0; i < nfiles; i++) {
        mira_error *err = NULL;
        mira_file *f = mira_file_read(files[i], &ro, &err);
        if (!f) {
            mira_cli_report("dump", err);
            rc = MIRA_EXIT_INPUT;
            continue;
        }
        for (size_t k = 0; k < mira_file_warning_count(f); k++)
            fprintf(stderr, "mira dump: %s: warning: %s\n", files[i], mira_file_warning(f, k));
        const char *ts = mira_file_transfer_syntax(f);
        const mira_uid_entry *u = mira_uid_find(ts);
        if (w) {
            mira_json_begin_object(w);
            mira_json_key(w, "file");
            mira_json_cstring(w, files[i]);
            mira_json_key(w, "transfer_syntax");
            mira_json_cstring(w, ts);
            mira_json_key(w, "preamble");
            mira_json_bool(w, mira_file_has_preamble(f));
            mira_json_key(w, "warnings");
            mira_json_begin_array(w);
            for (size_t k = 0; k < mira_file_warning_count(f); k++)
                mira_json_cstring(w, mira_file_warning(f, k));
            mira_json_end_array(w);
            mira_json_key(w, "meta");
            dump_json(w, mira_file_meta(f));
            mira_json_key(w, "dataset");
            dump_json(w, mira_file_dataset(f));
            mira_json_end_object(w);
        } else {
            printf("# %s\n# transfer syntax: %s (%s)\n", files[i], ts, u ? u->name : "unknown");
            if (mira_dataset_count(mira_file_meta(f))) {
                printf("# file meta information\n");
                dump_text(stdout, mira_file_meta(f), 0, &o);
                printf("# data set\n");
            }
            dump_text(stdout, mira_file_dataset(f), 0, &o);
        }
        mira_file_free(f);
    }
    if (w) {
        mira_json_end_array(w);
        mira_error *err = NULL;
        size_t len;
        char *doc = mira_json_writer_finish(w, &len, &err);
        mira_json_writer_free(w);
        if (!doc) {
            mira_cli_report("dump", err);
            return MIRA_EXIT_INPUT;
        }
        fwrite(doc, 1, len, stdout);
        fputc('\n', stdout);
        mira_free(doc);
    }
    return rc;
}
