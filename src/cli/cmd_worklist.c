/* mira worklist: add, list and delete scheduled procedure steps (the Modality Worklist). */
#include "cli.h"

#include <mira/worklist.h>

#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira worklist add [options] [--json FILE]\n"
            "       mira worklist list [--json] [options]\n"
            "       mira worklist delete ID... [options]\n"
            "Scheduled procedure steps, served by `mira serve` to modalities as the Modality\n"
            "Worklist (C-FIND) and followed by their MPPS.\n\n"
            "add: one entry from options, or entries from a JSON file (\"-\": stdin): a DICOM\n"
            "JSON worklist item (PS3.18 F.2), an array of them, or objects whose keys are the\n"
            "option names below without dashes (\"patient_id\": ...). Prints each entry's id.\n"
            "  --patient-id ID     --patient-name NAME (Family^Given)  --birth-date YYYYMMDD\n"
            "  --sex M|F|O         --accession NUMBER   --study-uid UID (default: a new one)\n"
            "  --procedure TEXT    Requested Procedure Description\n"
            "  --procedure-id ID   Requested Procedure ID (default: the accession number)\n"
            "  --referring NAME    Referring Physician's Name\n"
            "  --modality CS       --station-aet AE     --station-name NAME\n"
            "  --date YYYYMMDD     --time HHMMSS        --physician NAME (Scheduled Performing)\n"
            "  --sps-id ID         (default: the entry's id)   --sps-description TEXT\n"
            "  --location TEXT     --status CS (default SCHEDULED)\n"
            "list: every entry by scheduled date and time, with its status, the study linked to\n"
            "it (same Study Instance UID or accession number) and its MPPS; --json: one JSON\n"
            "object a line, with the whole item as DICOM JSON.\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP);
}

/* The fields of an entry given by name (options or a simple JSON object). */
static const struct field {
    const char *name;
    mira_tag tag;
    mira_vr vr;
    bool in_step; /* inside the Scheduled Procedure Step Sequence item */
} fields[] = {
    {"patient-id", MIRA_TAG(0x0010, 0x0020), MIRA_VR_LO, false},
    {"patient-name", MIRA_TAG(0x0010, 0x0010), MIRA_VR_PN, false},
    {"birth-date", MIRA_TAG(0x0010, 0x0030), MIRA_VR_DA, false},
    {"sex", MIRA_TAG(0x0010, 0x0040), MIRA_VR_CS, false},
    {"accession", MIRA_TAG(0x0008, 0x0050), MIRA_VR_SH, false},
    {"study-uid", MIRA_TAG(0x0020, 0x000D), MIRA_VR_UI, false},
    {"procedure", MIRA_TAG(0x0032, 0x1060), MIRA_VR_LO, false},
    {"procedure-id", MIRA_TAG(0x0040, 0x1001), MIRA_VR_SH, false},
    {"referring", MIRA_TAG(0x0008, 0x0090), MIRA_VR_PN, false},
    {"modality", MIRA_TAG(0x0008, 0x0060), MIRA_VR_CS, true},
    {"station-aet", MIRA_TAG(0x0040, 0x0001), MIRA_VR_AE, true},
    {"station-name", MIRA_TAG(0x0040, 0x0010), MIRA_VR_SH, true},
    {"date", MIRA_TAG(0x0040, 0x0002), MIRA_VR_DA, true},
    {"time", MIRA_TAG(0x0040, 0x0003), MIRA_VR_TM, true},
    {"physician", MIRA_TAG(0x0040, 0x0006), MIRA_VR_PN, true},
    {"sps-id", MIRA_TAG(0x0040, 0x0009), MIRA_VR_SH, true},
    {"sps-description", MIRA_TAG(0x0040, 0x0007), MIRA_VR_LO, true},
    {"location", MIRA_TAG(0x0040, 0x0011), MIRA_VR_SH, true},
    {"status", MIRA_TAG(0x0040, 0x0020), MIRA_VR_CS, true},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static const struct field *field_named(const char *name)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        const char *a = fields[i].name, *b = name;
        for (; *a && *b; a++, b++)
            if (*a != *b && !(*a == '-' && *b == '_'))
                break;
        if (!*a && !*b)
            return &fields[i];
    }
    return NULL;
}

/* A worklist item from values by field (NULL: not given). */
static mira_dataset *item_from_values(const char *const *values)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    if (!ds)
        return NULL;
    bool ok = true, utf8 = false;
    for (size_t i = 0; i < NFIELDS; i++)
        for (const char *p = values[i]; p && *p; p++)
            utf8 |= (*p & 0x80) != 0;
    if (utf8)
        ok = mira_dataset_set_string(ds, MIRA_TAG(0x0008, 0x0005), MIRA_VR_CS, "ISO_IR 192",
                                     NULL) != NULL;
    mira_element *seq = ok ? mira_dataset_set_sequence(ds, MIRA_TAG(0x0040, 0x0100), NULL) : NULL;
    mira_dataset *sps = seq ? mira_element_add_item(seq, NULL) : NULL;
    ok = sps != NULL;
    for (size_t i = 0; ok && i < NFIELDS; i++) {
        const char *v = values[i];
        if (!v && strcmp(fields[i].name, "procedure-id") == 0)
            v = values[4]; /* the accession number */
        if (v)
            ok = mira_dataset_set_string(fields[i].in_step ? sps : ds, fields[i].tag, fields[i].vr,
                                         v, NULL) != NULL;
    }
    if (!ok) {
        mira_dataset_free(ds);
        return NULL;
    }
    return ds;
}

static bool add_one(mira_archive *a, const mira_dataset *item)
{
    mira_error *err = NULL;
    int64_t id = 0;
    if (!mira_worklist_add(a, item, NULL, &id, &err)) {
        mira_cli_report("worklist", err);
        return false;
    }
    printf("%lld\n", (long long)id);
    return true;
}

/* A JSON object of field names. */
static bool add_json_value(mira_archive *a, const mira_json *v, const char *path)
{
    if (mira_json_get_type(v) != MIRA_JSON_OBJECT) {
        fprintf(stderr, "mira worklist: %s: an entry is a JSON object\n", path);
        return false;
    }
    mira_dataset *item = NULL;
    {
        const char *values[NFIELDS] = {0};
        for (size_t i = 0; i < mira_json_count(v); i++) {
            const struct field *f = field_named(mira_json_key_at(v, i));
            const mira_json *x = mira_json_at(v, i);
            if (!f || mira_json_get_type(x) != MIRA_JSON_STRING) {
                fprintf(stderr, "mira worklist: %s: \"%s\" is not a field of an entry (or its "
                                "value is not a string)\n",
                        path, mira_json_key_at(v, i));
                return false;
            }
            values[f - fields] = mira_json_get_string(x, NULL);
        }
        item = item_from_values(values);
    }
    if (!item) {
        fprintf(stderr, "mira worklist: %s: cannot make a worklist item\n", path);
        return false;
    }
    bool ok = add_one(a, item);
    mira_dataset_free(item);
    return ok;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = mira_malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        char *b = mira_realloc(buf, cap * 2 + 1);
        if (!b) {
            mira_free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    if (f != stdin)
        fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = n;
    }
    return buf;
}

/* A DICOM JSON array or object, or simple objects. */
static bool add_from_file(mira_archive *a, const char *path)
{
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text) {
        fprintf(stderr, "mira worklist: cannot read %s\n", path);
        return false;
    }
    mira_error *err = NULL;
    mira_json *root = mira_json_parse(text, len, &err);
    if (!root) {
        fprintf(stderr, "mira worklist: %s: %s\n", path, mira_error_get_message(err));
        mira_error_free(err);
        mira_free(text);
        return false;
    }
    bool ok = true;
    bool array = mira_json_get_type(root) == MIRA_JSON_ARRAY;
    size_t n = array ? mira_json_count(root) : 1;
    for (size_t i = 0; ok && i < n; i++) {
        const mira_json *v = array ? mira_json_at(root, i) : root;
        bool dicom = mira_json_get_type(v) == MIRA_JSON_OBJECT && mira_json_count(v) > 0;
        for (size_t k = 0; dicom && k < mira_json_count(v); k++) {
            const char *key = mira_json_key_at(v, k);
            dicom = strlen(key) == 8 && strspn(key, "0123456789abcdefABCDEF") == 8;
        }
        if (!dicom) {
            ok = add_json_value(a, v, path);
            continue;
        }
        /* DICOM JSON: the reader takes one object, so each one of an array is cut out of the
         * text (the parsed tree cannot be written back as it was) */
        mira_dataset *item = NULL;
        if (!array) {
            item = mira_dataset_from_json(text, len, &err);
        } else {
            const char *p = text;
            size_t depth = 0, idx = 0;
            const char *start = NULL;
            bool in_str = false;
            for (; *p; p++) {
                if (in_str) {
                    if (*p == '\\' && p[1])
                        p++;
                    else if (*p == '"')
                        in_str = false;
                    continue;
                }
                if (*p == '"') {
                    in_str = true;
                } else if (*p == '{') {
                    if (depth == 1 && idx == i)
                        start = p;
                    depth++;
                } else if (*p == '[') {
                    depth++;
                } else if (*p == '}' || *p == ']') {
                    depth--;
                    if (depth == 1 && *p == '}') {
                        if (start) {
                            item = mira_dataset_from_json(start, (size_t)(p + 1 - start), &err);
                            break;
                        }
                        idx++;
                    }
                }
            }
        }
        if (!item) {
            fprintf(stderr, "mira worklist: %s: entry %zu: %s\n", path, i + 1,
                    err ? mira_error_get_message(err) : "not found");
            mira_error_free(err);
            err = NULL;
            ok = false;
            break;
        }
        ok = add_one(a, item);
        mira_dataset_free(item);
    }
    mira_json_free(root);
    mira_free(text);
    return ok;
}

typedef struct list_out {
    bool json;
    uint64_t n;
} list_out;

static void kv(mira_json_writer *w, const char *k, const char *v)
{
    mira_json_key(w, k);
    mira_json_cstring(w, v);
}

static bool print_entry(void *ctx, const mira_worklist_entry *e)
{
    list_out *o = ctx;
    o->n++;
    if (!o->json) {
        printf("%-6lld %-8s %s %-6s %-4s %-16s %-16s %-24s %s%s%s\n", (long long)e->id,
               e->start_date, *e->start_time ? e->start_time : "-", e->status,
               *e->modality ? e->modality : "-", *e->station_aet ? e->station_aet : "-",
               *e->accession ? e->accession : "-", e->patient_name,
               *e->procedure_description ? e->procedure_description : "",
               *e->linked_study_uid ? "  study " : "", e->linked_study_uid);
        return true;
    }
    mira_json_writer *w = mira_json_writer_new(false);
    if (!w)
        return false;
    mira_json_begin_object(w);
    mira_json_key(w, "id");
    mira_json_int(w, e->id);
    kv(w, "accession", e->accession);
    kv(w, "requested_procedure_id", e->requested_procedure_id);
    kv(w, "sps_id", e->sps_id);
    kv(w, "patient_id", e->patient_id);
    kv(w, "patient_name", e->patient_name);
    kv(w, "modality", e->modality);
    kv(w, "station_aet", e->station_aet);
    kv(w, "date", e->start_date);
    kv(w, "time", e->start_time);
    kv(w, "physician", e->performing_physician);
    kv(w, "procedure", e->procedure_description);
    kv(w, "study_uid", e->study_uid);
    kv(w, "status", e->status);
    kv(w, "source", e->source);
    kv(w, "linked_study_uid", e->linked_study_uid);
    kv(w, "mpps_uid", e->mpps_uid);
    mira_json_options jo;
    memset(&jo, 0, sizeof jo);
    char *item = mira_dataset_to_json(e->item, &jo, NULL);
    mira_json_key(w, "item");
    if (item)
        mira_json_raw(w, item, strlen(item));
    else
        mira_json_null(w);
    mira_free(item);
    mira_json_end_object(w);
    size_t len = 0;
    char *s = mira_json_writer_finish(w, &len, NULL);
    mira_json_writer_free(w);
    bool ok = s != NULL;
    if (ok)
        printf("%s\n", s);
    mira_free(s);
    return ok;
}

int mira_cli_worklist(int argc, char **argv)
{
    if (argc < 2 || mira_cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MIRA_EXIT_USAGE : MIRA_EXIT_OK;
    }
    /* the verb, wherever it is among the options (archive options may come first) */
    int vi = 0;
    for (int i = 1; i < argc && !vi; i++)
        if (strcmp(argv[i], "add") == 0 || strcmp(argv[i], "list") == 0 ||
            strcmp(argv[i], "delete") == 0)
            vi = i;
    if (!vi) {
        fprintf(stderr, "mira worklist: add, list or delete?\n");
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }
    const char *verb = argv[vi];
    mira_archive_cli ao = {NULL, NULL, -1, NULL};
    const char *values[NFIELDS] = {0};
    const char *json_file = NULL;
    bool json_out = false, any = false;
    int64_t ids[256];
    size_t nids = 0;
    for (int i = 1; i < argc; i++) {
        if (i == vi)
            continue;
        const char *a = argv[i];
        int r = mira_cli_archive_option(argc, argv, &i, &ao);
        if (r < 0) {
            fprintf(stderr, "mira worklist: bad value for %s\n", a);
            return MIRA_EXIT_USAGE;
        }
        if (r > 0)
            continue;
        if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        }
        if (strcmp(a, "--json") == 0 && strcmp(verb, "list") == 0) {
            json_out = true;
            continue;
        }
        if (strcmp(a, "--json") == 0 && strcmp(verb, "add") == 0 && i + 1 < argc) {
            json_file = argv[++i];
            continue;
        }
        const struct field *f = strncmp(a, "--", 2) == 0 ? field_named(a + 2) : NULL;
        if (f && strcmp(verb, "add") == 0 && i + 1 < argc) {
            values[f - fields] = argv[++i];
            any = true;
            continue;
        }
        char *end;
        long long id = strtoll(a, &end, 10);
        if (strcmp(verb, "delete") == 0 && *a && !*end && id > 0 && nids < 256) {
            ids[nids++] = id;
            continue;
        }
        fprintf(stderr, "mira worklist %s: unknown option or missing value: %s\n", verb, a);
        return MIRA_EXIT_USAGE;
    }
    if (strcmp(verb, "add") == 0 && !any && !json_file) {
        fprintf(stderr, "mira worklist add: give the entry's options or --json FILE\n");
        return MIRA_EXIT_USAGE;
    }
    if (strcmp(verb, "delete") == 0 && !nids) {
        fprintf(stderr, "mira worklist delete: which entries (their ids)?\n");
        return MIRA_EXIT_USAGE;
    }
    mira_archive *a = mira_cli_open_archive("worklist", &ao, strcmp(verb, "add") == 0);
    if (!a)
        return MIRA_EXIT_INPUT;
    bool ok = true;
    mira_error *err = NULL;
    if (strcmp(verb, "add") == 0) {
        if (any) {
            mira_dataset *item = item_from_values(values);
            ok = item && add_one(a, item);
            mira_dataset_free(item);
        }
        if (ok && json_file)
            ok = add_from_file(a, json_file);
    } else if (strcmp(verb, "list") == 0) {
        list_out o = {json_out, 0};
        ok = mira_worklist_list(a, print_entry, &o, &err);
        if (!ok)
            mira_cli_report("worklist", err);
    } else {
        for (size_t i = 0; i < nids; i++)
            if (!mira_worklist_delete(a, ids[i], &err)) {
                mira_cli_report("worklist", err);
                err = NULL;
                ok = false;
            }
    }
    mira_archive_close(a);
    return ok ? MIRA_EXIT_OK : MIRA_EXIT_INPUT;
}
