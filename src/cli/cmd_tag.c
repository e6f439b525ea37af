/* mira tag: look up tags and keywords in the DICOM dictionary, and UIDs in the UID registry. */
#include "cli.h"

#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mira tag [options] KEYWORD|TAG...\n"
            "       mira tag --uid [options] UID|KEYWORD...\n\n"
            "Look data elements up in the DICOM dictionary by keyword (PatientName), by tag\n"
            "(0010,0010, (0010,0010) or 00100010) or by repeating group (60xx,3000), and print\n"
            "tag, VR, VM, keyword and name. A repeating group answers for each of its tags:\n"
            "(6002,3000) is OverlayData. With --uid, look UIDs (1.2.840.10008.1.2.1) or their\n"
            "keywords (ExplicitVRLittleEndian) up in the UID registry and print UID, name, type\n"
            "and keyword.\n\n"
            "options:\n"
            "  --json           print one JSON array of objects instead of lines\n"
            "  --uid            the arguments are UIDs or UID keywords\n"
            "  --creator NAME   look tags up in the private dictionary of creator NAME first\n"
            "  -h, --help       this help\n\n"
            "exit status: 0 all found, 1 something was not found, 2 wrong usage\n");
}

typedef struct tag_opts {
    mira_json_writer *json; /* with --json: the array of results */
    bool uid;
    const char *creator;
} tag_opts;

/* ------------------------------------------------------------------ output helpers */

static void json_member(mira_json_writer *w, const char *key, const char *value)
{
    mira_json_key(w, key);
    mira_json_cstring(w, value);
}

/* "GGGGEEEE" in upper-case hex, with 'x' for each digit that the mask leaves free (60xx3000). */
static void format_tag(mira_tag tag, mira_tag mask, char out[9])
{
    static const char hex[] = "0123456789ABCDEF";
    for (int i = 0; i < 8; i++) {
        int shift = 28 - 4 * i;
        out[i] = ((mask >> shift) & 0xFu) ? hex[(tag >> shift) & 0xFu] : 'x';
    }
    out[8] = '\0';
}

static void print_entry(FILE *out, tag_opts *o, const mira_dict_entry *e, mira_tag tag,
                        mira_tag mask, const char *creator)
{
    char t[9];
    format_tag(tag, mask, t);
    if (o->json) {
        mira_json_writer *w = o->json;
        mira_json_begin_object(w);
        json_member(w, "tag", t);
        json_member(w, "vr", e->vr);
        json_member(w, "vm", e->vm);
        json_member(w, "keyword", e->keyword);
        json_member(w, "name", e->name);
        mira_json_key(w, "retired");
        mira_json_bool(w, e->retired);
        if (creator)
            json_member(w, "creator", creator);
        mira_json_end_object(w);
        return;
    }
    fprintf(out, "(%.4s,%.4s)  %-2s  %-4s  %s  %s", t, t + 4, e->vr, e->vm,
            e->keyword[0] ? e->keyword : "-", e->name);
    if (creator)
        fprintf(out, "  [%s]", creator);
    fputs(e->retired ? "  retired\n" : "\n", out);
}

static void print_uid(FILE *out, tag_opts *o, const mira_uid_entry *u)
{
    if (o->json) {
        mira_json_writer *w = o->json;
        mira_json_begin_object(w);
        json_member(w, "uid", u->uid);
        json_member(w, "name", u->name);
        json_member(w, "type", u->type);
        json_member(w, "keyword", u->keyword);
        mira_json_key(w, "retired");
        mira_json_bool(w, u->retired);
        mira_json_end_object(w);
        return;
    }
    fprintf(out, "%s  %s  %s  %s%s\n", u->uid, u->name, u->type,
            u->keyword[0] ? u->keyword : "-", u->retired ? "  retired" : "");
}

/* ------------------------------------------------------------------ lookups */

/* A repeating-group pattern as the standard writes it, "60xx,3000", "(60xx,3000)" or "60xx3000":
 * the tag with the 'x' digits zero and the mask of the other digits. False if it is no pattern. */
static bool parse_pattern(const char *arg, mira_tag *tag, mira_tag *mask)
{
    size_t n = strlen(arg);
    if (n == 11 && arg[0] == '(' && arg[10] == ')') {
        arg++;
        n -= 2;
    }
    if (n != 8 && !(n == 9 && arg[4] == ','))
        return false;
    uint32_t t = 0, m = 0;
    bool any_x = false;
    for (size_t i = 0; i < n; i++) {
        char c = arg[i];
        if (i == 4 && n == 9)
            continue; /* the comma */
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else if (c == 'x' || c == 'X')
            d = 16;
        else
            return false;
        any_x = any_x || d == 16;
        t = t << 4 | (d == 16 ? 0 : d);
        m = m << 4 | (d == 16 ? 0 : 0xFu);
    }
    *tag = t;
    *mask = m;
    return any_x;
}

/* The repeating-group entry written exactly as this pattern, or NULL. */
static const mira_dict_entry *find_pattern(mira_tag tag, mira_tag mask)
{
    for (size_t i = 0; i < mira_dict_count(); i++) {
        const mira_dict_entry *e = mira_dict_at(i);
        if (e->tag == tag && e->mask == mask)
            return e;
    }
    return NULL;
}

/* One argument; false (after a message on stderr) if it names nothing known. */
static bool look_up_tag(FILE *out, tag_opts *o, const char *arg)
{
    const mira_dict_entry *e = mira_dict_find_keyword(arg);
    mira_tag tag, mask;
    if (!e && parse_pattern(arg, &tag, &mask)) {
        e = find_pattern(tag, mask);
        if (!e) {
            fprintf(stderr, "mira tag: '%s' is not a repeating group of the dictionary\n", arg);
            return false;
        }
    }
    if (e) {
        print_entry(out, o, e, e->tag, e->mask, NULL);
        return true;
    }
    if (!mira_tag_parse(arg, &tag)) {
        fprintf(stderr, "mira tag: '%s' is neither a tag nor a keyword of the dictionary\n", arg);
        return false;
    }
    if (o->creator) {
        /* The creator's own entries first, in any group: some vendors' entries sit in even
         * groups such as (60xx,xx10), which pydicom's private dictionary holds too. */
        e = mira_dict_find_private(o->creator, tag);
        if (e) {
            print_entry(out, o, e, tag, 0xFFFFFFFFu, o->creator);
            return true;
        }
    }
    e = mira_dict_find(tag);
    if (!e) {
        if (o->creator)
            fprintf(stderr, "mira tag: (%04X,%04X) is neither in the dictionary nor in the "
                    "private dictionary of '%s'\n", MIRA_TAG_GROUP(tag), MIRA_TAG_ELEMENT(tag),
                    o->creator);
        else
            fprintf(stderr, "mira tag: (%04X,%04X) is not in the dictionary%s\n",
                    MIRA_TAG_GROUP(tag), MIRA_TAG_ELEMENT(tag),
                    MIRA_TAG_IS_PRIVATE(tag) ? " (a private tag: try --creator NAME)" : "");
        return false;
    }
    print_entry(out, o, e, tag, 0xFFFFFFFFu, NULL);
    return true;
}

static bool look_up_uid(FILE *out, tag_opts *o, const char *arg)
{
    const mira_uid_entry *u = mira_uid_find(arg);
    for (size_t i = 0; !u && arg[0] && i < mira_uid_count(); i++)
        if (strcmp(mira_uid_at(i)->keyword, arg) == 0)
            u = mira_uid_at(i);
    if (!u) {
        fprintf(stderr, "mira tag: '%s' is not in the UID registry\n", arg);
        return false;
    }
    print_uid(out, o, u);
    return true;
}

/* ------------------------------------------------------------------ entry point */

int mira_cli_tag(int argc, char **argv)
{
    tag_opts o = {0};
    bool json = false;
    int nargs = 0;
    bool options_done = false;
    /* Options may come anywhere before "--"; this pass reads them and counts the operands. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            nargs++;
        } else if (strcmp(a, "--") == 0) {
            options_done = true;
        } else if (mira_cli_is_help(a)) {
            usage(stdout);
            return MIRA_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--uid") == 0) {
            o.uid = true;
        } else if (strcmp(a, "--creator") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "mira tag: --creator needs a creator name\n");
                return MIRA_EXIT_USAGE;
            }
            o.creator = argv[++i];
        } else if (strncmp(a, "--creator=", 10) == 0) {
            o.creator = a + 10;
        } else {
            fprintf(stderr, "mira tag: unknown option '%s'\n\n", a);
            usage(stderr);
            return MIRA_EXIT_USAGE;
        }
    }
    if (nargs == 0) {
        fprintf(stderr, "mira tag: nothing to look up\n\n");
        usage(stderr);
        return MIRA_EXIT_USAGE;
    }

    if (json) {
        o.json = mira_json_writer_new(false);
        if (!o.json) {
            fprintf(stderr, "mira tag: out of memory\n");
            return MIRA_EXIT_INPUT;
        }
        mira_json_begin_array(o.json);
    }
    /* This pass looks the operands up, skipping the options as the first pass read them. */
    bool all_found = true;
    options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && a[0] == '-' && a[1] != '\0') {
            if (strcmp(a, "--") == 0)
                options_done = true;
            else if (strcmp(a, "--creator") == 0)
                i++; /* its value */
            continue;
        }
        bool found = o.uid ? look_up_uid(stdout, &o, a) : look_up_tag(stdout, &o, a);
        all_found = all_found && found;
    }
    if (o.json) {
        mira_json_end_array(o.json);
        mira_error *err = NULL;
        size_t len;
        char *doc = mira_json_writer_finish(o.json, &len, &err);
        mira_json_writer_free(o.json);
        if (!doc) {
            mira_cli_report("tag", err);
            return MIRA_EXIT_INPUT;
        }
        fwrite(doc, 1, len, stdout);
        fputc('\n', stdout);
        mira_free(doc);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mira tag: cannot write the output\n");
        return MIRA_EXIT_INPUT;
    }
    return all_found ? MIRA_EXIT_OK : MIRA_EXIT_INPUT;
}
