/* Outbound results: an ORU^R01 carrying the analysis results of a study (mira features) for
 * the HL7 systems that keep them (a RIS, an EMR). */
#include "archive/archive_int.h"
#include "mira/hl7.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct study_row {
    bool found;
    char *v[8]; /* accession, date, time, patient id, issuer, name, birth date, sex */
} study_row;

static bool take_study(void *ctx, const mira__dbval *c, size_t n)
{
    study_row *r = ctx;
    r->found = true;
    for (size_t i = 0; i < n && i < 8; i++)
        r->v[i] = mira_strdup(c[i].type == MIRA__DB_TEXT ? c[i].s : "");
    return false;
}

/* A number as HL7's NM (digits, a point, a sign: no exponent). */
static void nm(double v, char out[64])
{
    snprintf(out, 64, "%.15g", v);
    if (!strchr(out, 'e'))
        return;
    snprintf(out, 64, "%.20f", v);
    char *end = out + strlen(out) - 1;
    while (end > out && *end == '0')
        *end-- = 0;
    if (*end == '.')
        *end = 0;
}

char *mira_hl7_results_message(mira_archive *a, const char *study_uid,
                               const mira_feature *results, size_t n, const char *receiver,
                               size_t *len, mira_error **err)
{
    if (!study_uid || !*study_uid || (!results && n)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad results", "a study and its results are needed");
        return NULL;
    }
    mira__db *db = mira__archive_db_acquire(a, err);
    if (!db)
        return NULL;
    study_row s = {0};
    mira__dbval q = mira__db_text(study_uid);
    bool ok = mira__db_query(db,
                             "SELECT s.accession, s.study_date, s.study_time, p.patient_id,"
                             " p.issuer, p.patient_name, p.birth_date, p.sex FROM studies s"
                             " JOIN patients p ON p.pk = s.patient_pk WHERE s.study_uid = ?",
                             &q, 1, take_study, &s, err);
    mira__archive_db_release(a, db);
    if (ok && !s.found) {
        mira_error_set(err, MIRA_ERR_NOT_FOUND, "No such study", "no study %s in the archive",
                       study_uid);
        ok = false;
    }
    mira_hl7_message *m = ok ? mira_hl7_new("2.5", err) : NULL;
    char now[32], ts[16], control[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y%m%d%H%M%S", &tm);
    mira__now(now); /* (microseconds: a control ID of its own) */
    snprintf(control, sizeof control, "MIRA%.14s%.6s-%ld", ts, now + 20, (long)getpid());
    const char *recv = receiver && *receiver ? receiver : "";
    char app[128] = "", fac[128] = "";
    const char *caret = strchr(recv, '^');
    snprintf(app, sizeof app, "%.*s", caret ? (int)(caret - recv) : (int)strlen(recv), recv);
    if (caret)
        snprintf(fac, sizeof fac, "%s", caret + 1);
    /* the patient's name: DICOM PN family^given^middle^prefix^suffix, HL7 XPN
     * family^given^middle^suffix^prefix */
    char pn[5][128] = {{0}};
    const char *p = ok ? s.v[5] : "";
    for (int i = 0; i < 5 && p; i++) {
        const char *hat = strchr(p, '^');
        snprintf(pn[i], sizeof pn[i], "%.*s", hat ? (int)(hat - p) : (int)strlen(p), p);
        p = hat ? hat + 1 : NULL;
    }
    struct {
        const char *path, *value;
    } fields[] = {
        {"MSH-3", "MIRA"},
        {"MSH-5", app},
        {"MSH-6", fac},
        {"MSH-7", ts},
        {"MSH-9.1", "ORU"},
        {"MSH-9.2", "R01"},
        {"MSH-9.3", "ORU_R01"},
        {"MSH-10", control},
        {"MSH-11", "P"},
        {"MSH-18", "UNICODE UTF-8"},
        {"PID-1", "1"},
        {"PID-3.1", ok ? s.v[3] : ""},
        {"PID-3.4", ok ? s.v[4] : ""},
        {"PID-5.1", pn[0]},
        {"PID-5.2", pn[1]},
        {"PID-5.3", pn[2]},
        {"PID-5.4", pn[4]},
        {"PID-5.5", pn[3]},
        {"PID-7", ok ? s.v[6] : ""},
        {"PID-8", ok ? s.v[7] : ""},
        {"OBR-1", "1"},
        {"OBR-3", ok ? s.v[0] : ""},
        {"OBR-4.1", "IBSI"},
        {"OBR-4.2", "Radiomics features"},
        {"OBR-4.3", "L"},
        {"OBR-7", ts},
        {"OBR-18", ok ? s.v[0] : ""},
        {"OBR-25", "F"},
        {"ZDS-1.1", study_uid},
        {"ZDS-1.2", "MIRA"},
        {"ZDS-1.3", "Application"},
        {"ZDS-1.4", "DICOM"},
    };
    for (size_t i = 0; m && ok && i < sizeof fields / sizeof fields[0]; i++)
        if (*fields[i].value || strncmp(fields[i].path, "MSH", 3) != 0)
            ok = !*fields[i].value || mira_hl7_set(m, fields[i].path, fields[i].value, err);
    /* one OBX a result: NM, the IBSI tag its identifier; a value not defined: status X */
    for (size_t i = 0; m && ok && i < n; i++) {
        char path[32], value[64], seq[24];
        bool defined = isfinite(results[i].value);
        if (defined)
            nm(results[i].value, value);
        snprintf(seq, sizeof seq, "%zu", i + 1);
        const struct {
            const char *field, *v;
        } obx[] = {{"1", seq},
                   {"2", "NM"},
                   {"3.1", results[i].tag},
                   {"3.2", results[i].tag},
                   {"3.3", "IBSI"},
                   {"5", defined ? value : ""},
                   {"11", defined ? "F" : "X"}};
        for (size_t k = 0; ok && k < sizeof obx / sizeof obx[0]; k++) {
            snprintf(path, sizeof path, "OBX(%zu)-%s", i + 1, obx[k].field);
            ok = !*obx[k].v || mira_hl7_set(m, path, obx[k].v, err);
        }
    }
    char *out = m && ok ? mira_hl7_encode(m, len, err) : NULL;
    mira_hl7_free(m);
    for (int i = 0; i < 8; i++)
        mira_free(s.v[i]);
    return out;
}
