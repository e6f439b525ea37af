/* Tests of the DIMSE server and SCU through the public API, in one process: echo, rejection,
 * the association limit, stop while an association is open. */
#include "harness.h"

#include "dimse/dimse_int.h"

#include <mira/mira.h>
#include <pthread.h>
#include <unistd.h>

typedef struct logbuf {
    pthread_mutex_t lock;
    char text[65536];
    size_t len;
} logbuf;

static void on_log(void *ctx, mira_log_level level, const char *msg)
{
    logbuf *l = ctx;
    pthread_mutex_lock(&l->lock);
    int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", msg);
    if (n > 0 && l->len + (size_t)n < sizeof l->text)
        l->len += (size_t)n;
    pthread_mutex_unlock(&l->lock);
}

static void *run(void *arg)
{
    mira_dimse_server_run(arg, NULL);
    return NULL;
}

static mira_dimse_server *start(logbuf *l, pthread_t *t, int max_assoc)
{
    mira_dimse_server_options o;
    mira_dimse_server_options_init(&o);
    o.bind = "127.0.0.1";
    o.ae_title = "UNIT";
    o.max_associations = max_assoc;
    o.artim_seconds = 2;
    o.log = on_log;
    o.log_ctx = l;
    mira_error *err = NULL;
    mira_dimse_server *s = mira_dimse_server_new(&o, &err);
    CHECK(s != NULL);
    CHECK(mira_dimse_server_port(s) > 0);
    pthread_create(t, NULL, run, s);
    return s;
}

static void stop(mira_dimse_server *s, pthread_t t)
{
    mira_dimse_server_stop(s);
    pthread_join(t, NULL);
    mira_dimse_server_free(s);
}

TEST(echo_and_rejections)
{
    logbuf l = {PTHREAD_MUTEX_INITIALIZER, "", 0};
    pthread_t t;
    mira_dimse_server *s = start(&l, &t, 4);
    mira_dimse_scu_options o;
    mira_dimse_scu_options_init(&o);
    o.called_ae = "UNIT";
    o.calling_ae = "TESTER";
    o.max_pdu = 4096;
    uint16_t status = 0xFFFF;
    mira_error *err = NULL;
    CHECK(mira_dimse_echo("127.0.0.1", mira_dimse_server_port(s), &o, &status, &err));
    CHECK(err == NULL);
    CHECK_EQ_INT(status, 0);
    o.called_ae = "SOMEONE";
    CHECK(!mira_dimse_echo("127.0.0.1", mira_dimse_server_port(s), &o, &status, &err));
    CHECK(err && mira_error_get_code(err) == MIRA_ERR_CONFLICT);
    CHECK(err && strstr(mira_error_get_message(err), "reason 7") != NULL);
    mira_error_free(err);
    stop(s, t);
    CHECK(strstr(l.text, "calling AE \"TESTER\", called AE \"UNIT\"") != NULL);
    CHECK(strstr(l.text, "released after 1 messages") != NULL);
    CHECK(strstr(l.text, "called AE title not recognized") != NULL);
}

TEST(stop_aborts_open_associations)
{
    logbuf l = {PTHREAD_MUTEX_INITIALIZER, "", 0};
    pthread_t t;
    mira_dimse_server *s = start(&l, &t, 1);
    /* an association that stays open (a requestor that never releases) */
    mira__association as;
    memset(&as, 0, sizeof as);
    as.recv_max = 16384;
    as.artim_ms = as.idle_ms = 5000;
    mira__assoc rq;
    memset(&rq, 0, sizeof rq);
    snprintf(rq.called_ae, sizeof rq.called_ae, "UNIT");
    snprintf(rq.calling_ae, sizeof rq.calling_ae, "HOLDER");
    mira__pctx *c = mira__assoc_add_pctx(&rq, 1, MIRA__VERIFICATION_UID);
    CHECK(c && mira__pctx_add_ts(c, MIRA_TS_IMPLICIT_LE));
    mira_error *err = NULL;
    CHECK(mira__assoc_request(&as, "127.0.0.1", mira_dimse_server_port(s), &rq, 5000, &err));
    CHECK(mira__assoc_context_ts(&as, 1) != NULL);
    /* the limit is 1: a second association is rejected, transient, local limit exceeded */
    mira_dimse_scu_options o;
    mira_dimse_scu_options_init(&o);
    o.called_ae = "UNIT";
    uint16_t status;
    CHECK(!mira_dimse_echo("127.0.0.1", mira_dimse_server_port(s), &o, &status, &err));
    CHECK(err && strstr(mira_error_get_message(err), "result 2, source 3, reason 2") != NULL);
    mira_error_free(err);
    err = NULL;
    /* stopping ends the open association: it reads the server's A-ABORT */
    mira_dimse_server_stop(s);
    CHECK(!mira__assoc_read_pdu(&as, 5000, &err));
    CHECK_EQ_INT(as.end, MIRA__END_PEER_ABORTED);
    mira_error_free(err);
    mira__conn_close(&as.conn);
    mira__assoc_free_buffers(&as);
    mira__assoc_cleanup(&rq);
    pthread_join(t, NULL);
    mira_dimse_server_free(s);
    CHECK(strstr(l.text, "the server is stopping") != NULL);
}
