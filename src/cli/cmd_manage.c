/* mira delete, mira modify, mira merge and mira history: managing what the archive holds. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ delete */

static void delete_usage(FILE *out)
{
    fprintf(out, "usage: mira delete [options] --level L KEY...\n\n"
                 "Delete patients (KEY: Patient ID), studies, series or instances (KEY: their\n"
                 "UID) with everything under them: index rows first, then the blobs. Parents\n"
                 "left empty are deleted too.\n\n"
                 "options:\n" MIRA_ARCHIVE_CLI_HELP
                 "  --level L          patient, study, series or instance (required)\n"
                 "  --json             one JSON object per key\n"
                 "  -h, --help         this help\n\n"
                 "exit status: 0 all deleted, 1 a key not found or the archive failed, 2 wrong "
                 "usage\n");
}

int mira_cli_delete(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    bool json = false, have_level = false;
    mira_level level = MIRA_LEVEL_STUDY;
    const char **keys = calloc((size_t)argc, sizeof *keys);
    size_t nkeys = 0;
    int rc = MIRA_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira delete: %s needs a value\n", argv[i]);
            goto done;
        }
        if (r > 0)
            continue;
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            delete_usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--level") == 0 && i + 1 < argc) {
            if (!mira_level_from_name(argv[++i], &level)) {
                fprintf(stderr, "mira delete: --level is patient, study, series or instance\n");
                goto done;
            }
            have_level = true;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "mira delete: unknown option '%s'\n", a);
            delete_usage(stderr);
            goto done;
        } else {
            keys[nkeys++] = a;
        }
    }
    if (!have_level || !nkeys) {
        fprintf(stderr, "mira delete: give --level and at least one key\n");
        delete_usage(stderr);
        goto done;
    }
    mira_archive *ar = mira_cli_open_archive("delete", &opts, false);
    if (!ar) {
        rc = MIRA_EXIT_INPUT;
        goto done;
    }
    rc = MIRA_EXIT_OK;
    for (size_t k = 0; k < nkeys; k++) {
        mira_delete_result res;
        mira_error *err = NULL;
        if (!mira_archive_delete(ar, level, keys[k], &res, &err)) {
            if (json)
                printf("{\"key\":\"%s\",\"deleted\":false,\"reason\":\"%s\"}\n", keys[k],
                       mira_error_code_name(mira_error_get_code(err)));
            mira_cli_report("delete", err);
            rc = MIRA_EXIT_INPUT;
            continue;
        }
        if (json)
            printf("{\"key\":\"%s\",\"deleted\":true,\"instances\":%llu,\"series\":%llu,"
                   "\"studies\":%llu,\"patients\":%llu,\"bytes\":%llu}\n",
                   keys[k], (unsigned long long)res.instances, (unsigned long long)res.series,
                   (unsigned long long)res.studies, (unsigned long long)res.patients,
                   (unsigned long long)res.bytes);
        else
            printf("%s: %llu instances, %llu series, %llu studies, %llu patients deleted\n",
                   keys[k], (unsigned long long)res.instances, (unsigned long long)res.series,
                   (unsigned long long)res.studies, (unsigned long long)res.patients);
    }
    mira_archive_close(ar);
done:
    free(keys);
    return rc;
}

/* ------------------------------------------------------------------ modify */

static void modify_usage(FILE *out)
{
    fprintf(out,
            "usage: mira modify [options] --level L KEY --set KEY=VALUE... [--remove KEY]...\n\n"
            "Change attributes of every instance of a patient (KEY: Patient ID), study, series\n"
            "or instance (KEY: its UID). The instances are rewritten durably as new versions,\n"
            "the index follows, and each change is recorded (see mira history). UIDs, Patient\n"
            "ID, file meta and pixel data cannot be changed; a patient's attributes are changed\n"
            "on the patient, a study's on the study.\n\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP
            "  --level L          patient, study, series or instance (required)\n"
            "  --set KEY=VALUE    set an attribute (keyword or GGGG,EEEE; empty VALUE empties)\n"
            "  --remove KEY       take an attribute out\n"
            "  --reason TEXT      why (kept in the history)\n"
            "  -h, --help         this help\n\n"
            "exit status: 0 modified, 1 not found or refused, 2 wrong usage\n");
}

/* --set KEY=VALUE (into changes) or --remove KEY (onto remove); false after saying why. */
static bool set_or_remove(bool set, const char *v, mira_dataset *changes, mira_tag *remove,
                          size_t *nremove, const char *cmd)
{
    char name[128];
    const char *eq = strchr(v, '=');
    size_t nl = eq ? (size_t)(eq - v) : strlen(v);
    mira_tag tag;
    mira_vr vr;
    snprintf(name, sizeof name, "%.*s", (int)(nl < 127 ? nl : 127), v);
    if (!mira_cli_lookup_tag(name, &tag, &vr) || (set && !eq) || vr == MIRA_VR_SQ) {
        fprintf(stderr, "mira %s: '%s' is not %s with a known keyword or tag\n", cmd, v,
                set ? "KEY=VALUE" : "KEY");
        return false;
    }
    if (!set) {
        remove[(*nremove)++] = tag;
    } else if (mira_vr_is_string(vr)) {
        mira_dataset_set_string(changes, tag, vr, eq + 1, NULL);
    } else {
        char *end;
        long long x = strtoll(eq + 1, &end, 10);
        uint8_t b[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16), (uint8_t)(x >> 24)};
        size_t sz = mira_vr_value_size(vr);
        if (*end || !sz || sz > 4) {
            fprintf(stderr, "mira %s: %s takes a number\n", cmd, name);
            return false;
        }
        mira_dataset_set_bytes(changes, tag, vr, b, *(eq + 1) ? sz : 0, NULL);
    }
    return true;
}

int mira_cli_modify(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    bool have_level = false;
    mira_level level = MIRA_LEVEL_STUDY;
    const char *key = NULL, *reason = NULL;
    mira_dataset *changes = mira_dataset_new(NULL);
    mira_tag *remove = calloc((size_t)argc, sizeof *remove);
    size_t nremove = 0;
    int rc = MIRA_EXIT_USAGE;
    /* the values given on the command line are UTF-8 */
    mira_dataset_set_string(changes, 0x00080005, MIRA_VR_CS, "ISO_IR 192", NULL);
    for (int i = 1; i < argc; i++) {
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira modify: %s needs a value\n", argv[i]);
            goto done;
        }
        if (r > 0)
            continue;
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            modify_usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        } else if (strcmp(a, "--level") == 0 && i + 1 < argc) {
            if (!mira_level_from_name(argv[++i], &level)) {
                fprintf(stderr, "mira modify: --level is patient, study, series or instance\n");
                goto done;
            }
            have_level = true;
        } else if (strcmp(a, "--reason") == 0 && i + 1 < argc) {
            reason = argv[++i];
        } else if ((strcmp(a, "--set") == 0 || strcmp(a, "--remove") == 0) && i + 1 < argc) {
            if (!set_or_remove(a[2] == 's', argv[++i], changes, remove, &nremove, "modify"))
                goto done;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "mira modify: unknown option '%s'\n", a);
            modify_usage(stderr);
            goto done;
        } else if (!key) {
            key = a;
        } else {
            fprintf(stderr, "mira modify: one KEY at a time\n");
            goto done;
        }
    }
    if (!have_level || !key || (mira_dataset_count(changes) <= 1 && nremove == 0)) {
        fprintf(stderr, "mira modify: give --level, a KEY and at least one --set or --remove\n");
        modify_usage(stderr);
        goto done;
    }
    mira_archive *ar = mira_cli_open_archive("modify", &opts, false);
    if (!ar) {
        rc = MIRA_EXIT_INPUT;
        goto done;
    }
    uint64_t n = 0;
    mira_error *err = NULL;
    if (mira_archive_modify(ar, level, key, changes, remove, nremove, reason, &n, &err)) {
        printf("%s: %llu instances modified\n", key, (unsigned long long)n);
        rc = MIRA_EXIT_OK;
    } else {
        rc = MIRA_EXIT_INPUT; /* before the report, which frees err */
        mira_cli_report("modify", err);
    }
    mira_archive_close(ar);
done:
    mira_dataset_free(changes);
    free(remove);
    return rc;
}

/* ------------------------------------------------------------------ merge */

static void merge_usage(FILE *out)
{
    fprintf(out,
            "usage: mira merge [options] PATIENT_ID --into PATIENT_ID [--set KEY=VALUE]...\n\n"
            "Merge a patient into another: every instance of the first is rewritten with the\n"
            "survivor's Patient ID and Issuer of Patient ID (and the attributes given with\n"
            "--set), its studies move under the survivor, and the change is recorded (see\n"
            "mira history PATIENT_ID). When the survivor is not in the archive the patient is\n"
            "renamed. Running a merge that was cut short again finishes it.\n\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP
            "  --issuer I         the issuer of the patient merged (default: any)\n"
            "  --into ID          the surviving patient's ID (required)\n"
            "  --into-issuer I    the surviving patient's issuer (default: none)\n"
            "  --set KEY=VALUE    a patient attribute of the survivor (PatientName, ...)\n"
            "  --reason TEXT      why (kept in the history)\n"
            "  --json             the result as a JSON object\n"
            "  -h, --help         this help\n\n"
            "exit status: 0 merged, 1 not found or refused, 2 wrong usage\n");
}

int mira_cli_merge(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    const char *key = NULL, *issuer = NULL, *into = NULL, *into_issuer = NULL, *reason = NULL;
    bool json = false;
    mira_dataset *changes = mira_dataset_new(NULL);
    int rc = MIRA_EXIT_USAGE;
    mira_dataset_set_string(changes, 0x00080005, MIRA_VR_CS, "ISO_IR 192", NULL);
    for (int i = 1; i < argc; i++) {
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira merge: %s needs a value\n", argv[i]);
            goto done;
        }
        if (r > 0)
            continue;
        const char *a = argv[i];
        if (mira_cli_is_help(a)) {
            merge_usage(stdout);
            rc = MIRA_EXIT_OK;
            goto done;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--issuer") == 0 && i + 1 < argc) {
            issuer = argv[++i];
        } else if (strcmp(a, "--into") == 0 && i + 1 < argc) {
            into = argv[++i];
        } else if (strcmp(a, "--into-issuer") == 0 && i + 1 < argc) {
            into_issuer = argv[++i];
        } else if (strcmp(a, "--reason") == 0 && i + 1 < argc) {
            reason = argv[++i];
        } else if (strcmp(a, "--set") == 0 && i + 1 < argc) {
            if (!set_or_remove(true, argv[++i], changes, NULL, NULL, "merge"))
                goto done;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "mira merge: unknown option '%s'\n", a);
            merge_usage(stderr);
            goto done;
        } else if (!key) {
            key = a;
        } else {
            fprintf(stderr, "mira merge: one PATIENT_ID at a time\n");
            goto done;
        }
    }
    if (!key || !into || !*into) {
        fprintf(stderr, "mira merge: give a PATIENT_ID and --into PATIENT_ID\n");
        merge_usage(stderr);
        goto done;
    }
    mira_dataset_set_string(changes, 0x00100020, MIRA_VR_LO, into, NULL);
    if (into_issuer && *into_issuer)
        mira_dataset_set_string(changes, 0x00100021, MIRA_VR_LO, into_issuer, NULL);
    mira_archive *ar = mira_cli_open_archive("merge", &opts, false);
    if (!ar) {
        rc = MIRA_EXIT_INPUT;
        goto done;
    }
    uint64_t n = 0;
    mira_error *err = NULL;
    if (mira_archive_merge_patient(ar, key, issuer, changes, reason, &n, &err)) {
        if (json) {
            mira_json_writer *w = mira_json_writer_new(false);
            mira_json_begin_object(w);
            mira_json_key(w, "patient_id");
            mira_json_cstring(w, key);
            mira_json_key(w, "into");
            mira_json_cstring(w, into);
            mira_json_key(w, "into_issuer");
            mira_json_cstring(w, into_issuer ? into_issuer : "");
            mira_json_key(w, "instances");
            mira_json_int(w, (int64_t)n);
            mira_json_end_object(w);
            mira_cli_print_json(w);
        } else {
            printf("%s: merged into %s, %llu instances rewritten\n", key, into,
                   (unsigned long long)n);
        }
        rc = MIRA_EXIT_OK;
    } else {
        rc = MIRA_EXIT_INPUT;
        mira_cli_report("merge", err);
    }
    mira_archive_close(ar);
done:
    mira_dataset_free(changes);
    return rc;
}

/* ------------------------------------------------------------------ history */

static void history_usage(FILE *out)
{
    fprintf(out,
            "usage: mira history [options] [KEY]\n\n"
            "List the modifications made with mira modify (of KEY, or all), oldest first.\n\n"
            "options:\n" MIRA_ARCHIVE_CLI_HELP "  --json             one JSON object per change\n"
            "  -h, --help         this help\n\n"
            "exit status: 0 listed, 1 the archive failed, 2 wrong usage\n");
}

static bool print_change(void *ctx, const char *at, mira_level level, const char *entity,
                         mira_tag tag, const char *old_value, const char *new_value,
                         const char *reason, uint64_t instances)
{
    bool json = *(bool *)ctx;
    const mira_dict_entry *de = mira_dict_find(tag);
    const char *kw = de && de->keyword[0] ? de->keyword : "";
    if (json) {
        mira_json_writer *w = mira_json_writer_new(false);
        mira_json_begin_object(w);
        mira_json_key(w, "at");
        mira_json_cstring(w, at);
        mira_json_key(w, "level");
        mira_json_cstring(w, mira_level_name(level));
        mira_json_key(w, "entity");
        mira_json_cstring(w, entity);
        char t[16];
        snprintf(t, sizeof t, "%08X", (unsigned)tag);
        mira_json_key(w, "tag");
        mira_json_cstring(w, t);
        mira_json_key(w, "keyword");
        mira_json_cstring(w, kw);
        mira_json_key(w, "old");
        mira_json_cstring(w, old_value);
        mira_json_key(w, "new");
        mira_json_cstring(w, new_value);
        mira_json_key(w, "reason");
        mira_json_cstring(w, reason);
        mira_json_key(w, "instances");
        mira_json_uint(w, instances);
        mira_json_end_object(w);
        size_t len;
        char *text = mira_json_writer_finish(w, &len, NULL);
        mira_json_writer_free(w);
        if (text)
            printf("%s\n", text);
        mira_free(text);
    } else {
        printf("%s %s %s (%04X,%04X) %s: \"%s\" -> \"%s\" (%llu instances)%s%s\n", at,
               mira_level_name(level), entity, tag >> 16, tag & 0xFFFF, kw, old_value, new_value,
               (unsigned long long)instances, *reason ? ": " : "", reason);
    }
    return true;
}

int mira_cli_history(int argc, char **argv)
{
    mira_archive_cli opts = {NULL, NULL, -1, NULL};
    bool json = false;
    const char *key = NULL;
    for (int i = 1; i < argc; i++) {
        int r = mira_cli_archive_option(argc, argv, &i, &opts);
        if (r < 0) {
            fprintf(stderr, "mira history: %s needs a value\n", argv[i]);
            return MIRA_EXIT_USAGE;
        }
        if (r > 0)
            continue;
        if (mira_cli_is_help(argv[i])) {
            history_usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "mira history: unknown option '%s'\n", argv[i]);
            return MIRA_EXIT_USAGE;
        } else {
            key = argv[i];
        }
    }
    mira_archive *ar = mira_cli_open_archive("history", &opts, false);
    if (!ar)
        return MIRA_EXIT_INPUT;
    mira_error *err = NULL;
    bool ok = mira_archive_history(ar, key, print_change, &json, &err);
    mira_archive_close(ar);
    if (!ok) {
        mira_cli_report("history", err);
        return MIRA_EXIT_INPUT;
    }
    return MIRA_EXIT_OK;
}
