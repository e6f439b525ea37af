/* Tests of the statuses the SCP answers, in one process: a server on an archive, and a raw
 * association sending C-STORE-RQs the Storage SCP must refuse or warn about (PS3.4 B.2.3) and
 * C-MOVE / C-GET identifiers the Retrieve SCP must refuse (PS3.4 C.4.2.1.4, C.4.3.1.4). */
#include "harness.h"

#include "core/buf.h"
#include "dicom/dataset_int.h"
#include "dimse/dimse_int.h"

#include <mira/mira.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define SC_STORAGE "1.2.840.10008.5.1.4.1.1.7"
#define CT_STORAGE "1.2.840.10008.5.1.4.1.1.2"
#define STUDY_ROOT_MOVE "1.2.840.10008.5.1.4.1.2.2.2"
#define STUDY_ROOT_GET "1.2.840.10008.5.1.4.1.2.2.3"
#define TAG_MOVE_DESTINATION MIRA_TAG(0x0000, 0x0600)

enum { CTX_SC = 1, CTX_CT = 3, CTX_MOVE = 5, CTX_GET = 7 };

typedef struct fixture {
    char root[64];
    mira_archive *archive;
    mira_dimse_server *server;
    pthread_t thread;
    mira__association as;
    mira__assoc rq;
} fixture;

static void quiet(void *ctx, mira_log_level level, const char *msg)
{
}

static void *run(void *arg)
{
    mira_dimse_server_run(arg, NULL);
    return NULL;
}

static bool setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/mira-test-scp-XXXXXX");
    if (!mkdtemp(f->root))
        return false;
    mira_archive_options ao;
    mira_archive_options_init(&ao);
    ao.dir = f->root;
    ao.create = true;
    mira_error *err = NULL;
    f->archive = mira_archive_open(&ao, &err);
    CHECK(f->archive != NULL);
    mira_error_free(err);
    if (!f->archive)
        return false;
    mira_dimse_server_options o;
    mira_dimse_server_options_init(&o);
    o.bind = "127.0.0.1";
    o.ae_title = "UNIT";
    o.archive = f->archive;
    o.artim_seconds = 5;
    o.log = quiet;
    f->server = mira_dimse_server_new(&o, &err);
    CHECK(f->server != NULL);
    mira_error_free(err);
    if (!f->server)
        return false;
    pthread_create(&f->thread, NULL, run, f->server);
    f->as.recv_max = 65536;
    f->as.artim_ms = f->as.idle_ms = 10000;
    snprintf(f->rq.called_ae, sizeof f->rq.called_ae, "UNIT");
    snprintf(f->rq.calling_ae, sizeof f->rq.calling_ae, "TESTER");
    static const struct {
        uint8_t id;
        const char *sop, *ts;
    } ctx[] = {{CTX_SC, SC_STORAGE, MIRA_TS_EXPLICIT_LE},
               {CTX_CT, CT_STORAGE, MIRA_TS_EXPLICIT_LE},
               {CTX_MOVE, STUDY_ROOT_MOVE, MIRA_TS_IMPLICIT_LE},
               {CTX_GET, STUDY_ROOT_GET, MIRA_TS_IMPLICIT_LE}};
    for (size_t i = 0; i < sizeof ctx / sizeof ctx[0]; i++) {
        mira__pctx *c = mira__assoc_add_pctx(&f->rq, ctx[i].id, ctx[i].sop);
        CHECK(c && mira__pctx_add_ts(c, ctx[i].ts));
    }
    bool ok = mira__assoc_request(&f->as, "127.0.0.1", mira_dimse_server_port(f->server), &f->rq,
                                  10000, &err);
    CHECK(ok);
    mira_error_free(err);
    for (uint8_t id = 1; ok && id <= 7; id += 2)
        CHECK(mira__assoc_context_ts(&f->as, id) != NULL);
    return ok;
}

static void teardown(fixture *f)
{
    if (f->as.conn.fd > 0) {
        mira_error *err = NULL;
        CHECK(mira__assoc_release(&f->as, &err));
        mira_error_free(err);
    }
    mira__assoc_free_buffers(&f->as);
    mira__assoc_cleanup(&f->rq);
    if (f->server) {
        mira_dimse_server_stop(f->server);
        pthread_join(f->thread, NULL);
        mira_dimse_server_free(f->server);
    }
    mira_archive_close(f->archive);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
    CHECK(system(cmd) == 0);
}

/* A request's command set. */
static mira_dataset *request(uint16_t field, const char *sop_class, const char *sop_instance,
                             uint16_t id)
{
    mira_dataset *c = mira_dataset_new(NULL);
    mira_dataset_set_string(c, MIRA__TAG_AFFECTED_SOP_CLASS, MIRA_VR_UI, sop_class, NULL);
    mira__cmd_set_u16(c, MIRA__TAG_COMMAND_FIELD, field);
    mira__cmd_set_u16(c, MIRA__TAG_MESSAGE_ID, id);
    mira__cmd_set_u16(c, MIRA__TAG_PRIORITY, 0);
    mira__cmd_set_u16(c, MIRA__TAG_DATA_SET_TYPE, 0x0000);
    if (sop_instance)
        mira_dataset_set_string(c, MIRA__TAG_AFFECTED_SOP_INSTANCE, MIRA_VR_UI, sop_instance,
                                NULL);
    return c;
}

/* Send a request with its data set and return the final response's status (0xFFFF if none). */
static uint16_t exchange(fixture *f, uint8_t pctx, mira_dataset *cmd, const mira_dataset *ds,
                         bool explicit_vr)
{
    mira__buf b;
    mira__buf_init(&b);
    mira_error *err = NULL;
    CHECK(mira__dataset_encode(ds, explicit_vr, false, &b, &err));
    CHECK(mira__dimse_send(&f->as, pctx, cmd, b.data, b.len, &err));
    mira__buf_cleanup(&b);
    mira_dataset_free(cmd);
    uint16_t status = 0xFFFF;
    for (int i = 0; i < 100; i++) {
        uint8_t got_ctx = 0;
        mira_dataset *rsp = NULL;
        if (mira__dimse_recv_command(&f->as, &got_ctx, &rsp, 10000, &err) != MIRA__RECV_COMMAND)
            break;
        CHECK_EQ_INT(got_ctx, pctx);
        uint16_t type = MIRA__NO_DATA_SET;
        mira__cmd_get_u16(rsp, MIRA__TAG_DATA_SET_TYPE, &type);
        if (type != MIRA__NO_DATA_SET)
            CHECK(mira__dimse_recv_data(&f->as, got_ctx, NULL, NULL, &err));
        mira__cmd_get_u16(rsp, MIRA__TAG_STATUS, &status);
        mira_dataset_free(rsp);
        if (status != 0xFF00)
            break;
    }
    mira_error_free(err);
    return status;
}

/* A small Secondary Capture data set. */
static mira_dataset *instance(const char *sop_class, const char *sop_instance)
{
    mira_dataset *ds = mira_dataset_new(NULL);
    mira_dataset_set_string(ds, MIRA_TAG(0x0008, 0x0016), MIRA_VR_UI, sop_class, NULL);
    mira_dataset_set_string(ds, MIRA_TAG(0x0008, 0x0018), MIRA_VR_UI, sop_instance, NULL);
    mira_dataset_set_string(ds, MIRA_TAG(0x0008, 0x0060), MIRA_VR_CS, "OT", NULL);
    mira_dataset_set_string(ds, MIRA_TAG(0x0010, 0x0020), MIRA_VR_LO, "UNIT", NULL);
    mira_dataset_set_string(ds, MIRA_TAG(0x0020, 0x000D), MIRA_VR_UI, "1.2.3.4.1", NULL);
    mira_dataset_set_string(ds, MIRA_TAG(0x0020, 0x000E), MIRA_VR_UI, "1.2.3.4.1.1", NULL);
    return ds;
}

TEST(storage_statuses)
{
    fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    mira_dataset *ds = instance(SC_STORAGE, "1.2.3.4.1.1.1");
    /* stored */
    CHECK_EQ_INT(exchange(&f, CTX_SC, request(MIRA__C_STORE_RQ, SC_STORAGE, "1.2.3.4.1.1.1", 1),
                          ds, true),
                 0x0000);
    /* the command's SOP class is not the context's: 0x0122 (PS3.7 C) */
    CHECK_EQ_INT(exchange(&f, CTX_SC, request(MIRA__C_STORE_RQ, CT_STORAGE, "1.2.3.4.1.1.2", 3),
                          ds, true),
                 0x0122);
    /* the data set names another instance than the command: stored, warning 0xB007 */
    mira_dataset *other = instance(SC_STORAGE, "1.2.3.4.1.1.3");
    CHECK_EQ_INT(exchange(&f, CTX_SC, request(MIRA__C_STORE_RQ, SC_STORAGE, "1.2.3.4.1.1.4", 5),
                          other, true),
                 0xB007);
    mira_dataset_free(other);
    /* without a Study Instance UID: cannot understand, 0xC000 */
    mira_dataset *nostudy = instance(SC_STORAGE, "1.2.3.4.1.1.5");
    mira_dataset_remove(nostudy, MIRA_TAG(0x0020, 0x000D));
    CHECK_EQ_INT(exchange(&f, CTX_SC, request(MIRA__C_STORE_RQ, SC_STORAGE, "1.2.3.4.1.1.5", 7),
                          nostudy, true),
                 0xC000);
    mira_dataset_free(nostudy);
    mira_dataset_free(ds);
    teardown(&f);
}

static mira_dataset *identifier(const char *level, const char *study)
{
    mira_dataset *q = mira_dataset_new(NULL);
    if (level)
        mira_dataset_set_string(q, MIRA_TAG(0x0008, 0x0052), MIRA_VR_CS, level, NULL);
    if (study)
        mira_dataset_set_string(q, MIRA_TAG(0x0020, 0x000D), MIRA_VR_UI, study, NULL);
    return q;
}

static uint16_t move(fixture *f, const char *dest, mira_dataset *q, uint16_t id)
{
    mira_dataset *c = request(0x0021, STUDY_ROOT_MOVE, NULL, id);
    mira_dataset_set_string(c, TAG_MOVE_DESTINATION, MIRA_VR_AE, dest, NULL);
    uint16_t st = exchange(f, CTX_MOVE, c, q, false);
    mira_dataset_free(q);
    return st;
}

static uint16_t get(fixture *f, mira_dataset *q, uint16_t id)
{
    uint16_t st = exchange(f, CTX_GET, request(0x0010, STUDY_ROOT_GET, NULL, id), q, false);
    mira_dataset_free(q);
    return st;
}

TEST(retrieve_identifier_checks)
{
    fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    /* no Query/Retrieve Level, an unknown one, PATIENT in Study Root, no unique key:
     * 0xA900, identifier does not match SOP class (PS3.4 C.4.2.1.4, C.4.3.1.4) */
    CHECK_EQ_INT(get(&f, identifier(NULL, "1.2.3.4.1"), 1), 0xA900);
    CHECK_EQ_INT(get(&f, identifier("FRAME", "1.2.3.4.1"), 3), 0xA900);
    CHECK_EQ_INT(get(&f, identifier("PATIENT", NULL), 5), 0xA900);
    CHECK_EQ_INT(get(&f, identifier("STUDY", NULL), 7), 0xA900);
    CHECK_EQ_INT(get(&f, identifier("STUDY", ""), 9), 0xA900);
    CHECK_EQ_INT(move(&f, "DEST", identifier("STUDY", NULL), 11), 0xA900);
    /* a destination no peer is configured for: 0xA801 */
    CHECK_EQ_INT(move(&f, "NOWHERE", identifier("STUDY", "1.2.3.4.1"), 13), 0xA801);
    /* a C-MOVE-RQ on the GET model's context: the SOP class is not the context's, 0x0122 */
    mira_dataset *c = request(0x0021, STUDY_ROOT_GET, NULL, 15);
    mira_dataset_set_string(c, TAG_MOVE_DESTINATION, MIRA_VR_AE, "DEST", NULL);
    mira_dataset *q = identifier("STUDY", "1.2.3.4.1");
    CHECK_EQ_INT(exchange(&f, CTX_GET, c, q, false), 0x0122);
    mira_dataset_free(q);
    /* a valid identifier matching nothing: success, no sub-operations */
    CHECK_EQ_INT(get(&f, identifier("STUDY", "9.9.9"), 17), 0x0000);
    teardown(&f);
}
