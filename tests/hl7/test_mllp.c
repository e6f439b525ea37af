/* Tests of MLLP framing (HL7 v2.5 Appendix C: <VT> message <FS><CR>), of the checks behind
 * the server's ACK codes (HL7 v2.5 2.9.2, table 0357), and of the kept messages (duplicates by
 * sender and MSH-10, any bytes kept). */
#include "harness.h"

#include <mira/mira.h>
#include <ftw.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* Feed s in pieces of `step` bytes; collect the messages (joined by '|' into out). */
static size_t feed_all(mira_mllp_reader *r, const char *s, size_t n, size_t step, char *out,
                       size_t cap, size_t *oversize)
{
    size_t count = 0, o = 0;
    out[0] = 0;
    for (size_t at = 0; at < n;) {
        size_t piece = n - at < step ? n - at : step, done = 0;
        while (done < piece) {
            mira_mllp_frame f;
            size_t used = mira_mllp_feed(r, s + at + done, piece - done, &f, NULL);
            if (used == (size_t)-1)
                return (size_t)-1;
            done += used;
            if (f.data) {
                count++;
                if (f.oversize && oversize)
                    (*oversize)++;
                o += (size_t)snprintf(out + o, cap - o, "%s[%.*s]", o ? "|" : "", (int)f.len,
                                      f.data);
            }
            if (used == 0 && !f.data)
                break;
        }
        at += piece;
    }
    return count;
}

TEST(mllp_frames_in_any_pieces)
{
    static const char s[] = "\x0bMSH|A\rPID|1\r\x1c\r\x0bMSH|B\r\x1c\r\x0bMSH|C\x1c\r";
    for (size_t step = 1; step <= sizeof s; step++) {
        mira_mllp_reader *r = mira_mllp_reader_new(0);
        char out[256];
        size_t n = feed_all(r, s, sizeof s - 1, step, out, sizeof out, NULL);
        CHECK_EQ_INT(n, 3);
        CHECK_EQ_STR(out, "[MSH|A\rPID|1\r]|[MSH|B\r]|[MSH|C]");
        CHECK_EQ_INT(mira_mllp_skipped(r), 0);
        CHECK(!mira_mllp_in_frame(r));
        mira_mllp_reader_free(r);
    }
}

TEST(mllp_bytes_outside_frames_are_skipped_and_counted)
{
    /* CR LF after a frame (a common sender habit), text before the first VT */
    static const char s[] = "hello\x0bMSH|A\x1c\r\r\n\x0bMSH|B\x1c\r";
    mira_mllp_reader *r = mira_mllp_reader_new(0);
    char out[256];
    CHECK_EQ_INT(feed_all(r, s, sizeof s - 1, 3, out, sizeof out, NULL), 2);
    CHECK_EQ_STR(out, "[MSH|A]|[MSH|B]");
    CHECK_EQ_INT(mira_mllp_skipped(r), 7); /* "hello" and CR LF */
    mira_mllp_reader_free(r);
}

TEST(mllp_a_vt_inside_a_frame_starts_a_new_one)
{
    static const char s[] = "\x0bMSH|cut off\x0bMSH|whole\x1c\r";
    mira_mllp_reader *r = mira_mllp_reader_new(0);
    char out[256];
    CHECK_EQ_INT(feed_all(r, s, sizeof s - 1, 64, out, sizeof out, NULL), 1);
    CHECK_EQ_STR(out, "[MSH|whole]");
    CHECK_EQ_INT(mira_mllp_skipped(r), 12); /* the first VT and its 11 bytes */
    mira_mllp_reader_free(r);
}

TEST(mllp_fs_without_cr_still_ends_the_message)
{
    static const char s[] = "\x0bMSH|A\x1c\x0bMSH|B\x1c\r";
    mira_mllp_reader *r = mira_mllp_reader_new(0);
    mira_mllp_frame f;
    size_t used = mira_mllp_feed(r, s, sizeof s - 1, &f, NULL);
    CHECK(f.data != NULL);
    CHECK(f.bad_end);
    CHECK_EQ_INT(f.len, 5);
    size_t next = mira_mllp_feed(r, s + used, sizeof s - 1 - used, &f, NULL);
    CHECK(f.data != NULL && !f.bad_end);
    CHECK_EQ_INT(f.len, 5);
    CHECK_EQ_INT(used + next, sizeof s - 1);
    mira_mllp_reader_free(r);
}

TEST(mllp_an_oversize_message_keeps_its_beginning_and_the_stream_goes_on)
{
    size_t big = 100000;
    char *s = malloc(big + 64);
    size_t n = 0;
    s[n++] = 0x0b;
    memcpy(s + n, "MSH|^~\\&|BIG", 12);
    n += 12;
    memset(s + n, 'x', big);
    n += big;
    s[n++] = 0x1c;
    s[n++] = 0x0d;
    memcpy(s + n, "\x0bMSH|small\x1c\r", 13);
    n += 13;
    mira_mllp_reader *r = mira_mllp_reader_new(50000);
    size_t at = 0, got = 0, over = 0;
    while (at < n) {
        mira_mllp_frame f;
        size_t used = mira_mllp_feed(r, s + at, n - at < 7000 ? n - at : 7000, &f, NULL);
        at += used;
        if (f.data) {
            got++;
            if (got == 1) {
                CHECK(f.oversize);
                CHECK_EQ_INT(f.total, big + 12);
                CHECK_EQ_INT(f.len, 4096);
                CHECK(memcmp(f.data, "MSH|^~\\&|BIG", 12) == 0);
                over++;
            } else {
                CHECK(!f.oversize);
                CHECK_EQ_INT(f.len, 9);
            }
        }
    }
    CHECK_EQ_INT(got, 2);
    CHECK_EQ_INT(over, 1);
    mira_mllp_reader_free(r);
    free(s);
}

TEST(mllp_wrap_is_vt_text_fs_cr)
{
    size_t n;
    char *f = mira_mllp_wrap("MSH|x", 5, &n, NULL);
    CHECK_EQ_INT(n, 8);
    CHECK(memcmp(f, "\x0bMSH|x\x1c\r", 8) == 0);
    mira_free(f);
}

/* ------------------------------------------------------------------ what is answered */

/* The MSA-1 and ERR-3 of the server's answer to text (no archive: only the checks). */
static void answer(const char *text, char code[8], char err3[16], char loc[32])
{
    const char *c = NULL;
    size_t n = 0;
    char *ack = mira_hl7_receive(NULL, text, strlen(text), false, "test", NULL, NULL, &c, &n,
                                 NULL);
    code[0] = err3[0] = loc[0] = 0;
    if (!ack)
        return;
    mira_hl7_message *a = mira_hl7_parse(ack, n, NULL);
    char *v = a ? mira_hl7_get(a, "MSA-1", NULL) : NULL;
    snprintf(code, 8, "%s", v ? v : "");
    mira_free(v);
    v = a ? mira_hl7_get(a, "ERR-3", NULL) : NULL;
    snprintf(err3, 16, "%s", v ? v : "");
    mira_free(v);
    v = a ? mira_hl7_get_encoded(a, "ERR-2", NULL) : NULL;
    snprintf(loc, 32, "%s", v ? v : "");
    mira_free(v);
    CHECK(strcmp(c, code) == 0);
    mira_hl7_free(a);
    mira_free(ack);
}

#define MSH(type, id, ver) "MSH|^~\\&|RIS|HOSP|MIRA|HOSP|20260101120000||" type "|" id "|P|" ver "\r"

TEST(receive_codes_follow_the_standard)
{
    char code[8], e[16], loc[32];
    answer(MSH("ORU^R01", "1", "2.5") "PID|1||123^^^H^MR\rOBR|1||ACC\rOBX|1|TX|||text\r",
           code, e, loc);
    CHECK_EQ_STR(code, "AA");
    CHECK_EQ_STR(e, "");
    /* not HL7 at all: reject, segment sequence error */
    answer("hello there\r", code, e, loc);
    CHECK_EQ_STR(code, "AR");
    CHECK_EQ_STR(e, "100");
    /* no control ID: reject, required field missing at MSH-10 */
    answer(MSH("ADT^A01", "", "2.5") "PID|1||123\r", code, e, loc);
    CHECK_EQ_STR(code, "AR");
    CHECK_EQ_STR(e, "101");
    CHECK_EQ_STR(loc, "MSH^1^10");
    /* a version that is not 2.3 to 2.8: unsupported version ID */
    answer(MSH("ADT^A01", "2", "2.1") "PID|1||123\r", code, e, loc);
    CHECK_EQ_STR(code, "AR");
    CHECK_EQ_STR(e, "203");
    /* content: no patient ID in an ADT: application error, required field missing */
    answer(MSH("ADT^A04", "3", "2.5") "PID|1||\r", code, e, loc);
    CHECK_EQ_STR(code, "AE");
    CHECK_EQ_STR(e, "101");
    CHECK_EQ_STR(loc, "PID^1^3");
    /* a merge without MRG */
    answer(MSH("ADT^A40", "4", "2.5") "PID|1||123\r", code, e, loc);
    CHECK_EQ_STR(code, "AE");
    CHECK_EQ_STR(e, "100");
    /* an order without ORC */
    answer(MSH("ORM^O01", "5", "2.3") "PID|1||123\rOBR|1\r", code, e, loc);
    CHECK_EQ_STR(code, "AE");
    /* a type mira does not act on is still accepted (kept) */
    answer(MSH("SIU^S12", "6", "2.5") "SCH|1\r", code, e, loc);
    CHECK_EQ_STR(code, "AA");
    /* an oversize message */
    const char *c = NULL;
    char *ack = mira_hl7_receive(NULL, "MSH|^~\\&|A", 10, true, "t", NULL, NULL, &c, NULL, NULL);
    CHECK(ack != NULL);
    CHECK_EQ_STR(c, "AR");
    mira_free(ack);
}

/* ------------------------------------------------------------------ kept messages */

static char root[64];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_root(void)
{
    nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static mira_archive *open_archive(void)
{
    snprintf(root, sizeof root, "/tmp/mira-test-mllp-XXXXXX");
    if (!mkdtemp(root))
        abort();
    atexit(remove_root);
    mira_archive_options o;
    mira_archive_options_init(&o);
    o.dir = root;
    o.create = true;
    mira_error *err = NULL;
    mira_archive *a = mira_archive_open(&o, &err);
    if (!a)
        fprintf(stderr, "open: %s\n", mira_error_get_message(err));
    mira_error_free(err);
    return a;
}

typedef struct seen {
    int n;
    int64_t dups[8];
    char codes[8][4];
    size_t lens[8];
    char text[8][64];
} seen;

static bool collect(void *ctx, const mira_hl7_stored *m)
{
    seen *s = ctx;
    if (s->n < 8) {
        s->dups[s->n] = m->duplicates;
        snprintf(s->codes[s->n], 4, "%s", m->ack_code);
        s->lens[s->n] = m->len;
        memcpy(s->text[s->n], m->text, m->len < 63 ? m->len : 63);
    }
    s->n++;
    return true;
}

typedef struct writer {
    mira_archive *a;
    int k;
    bool ok;
} writer;

static void *put_many(void *arg)
{
    writer *w = arg;
    w->ok = true;
    for (int i = 0; i < 50; i++) {
        char text[128], id[32];
        snprintf(id, sizeof id, "T%d-%d", w->k, i);
        snprintf(text, sizeof text, MSH("ORU^R01", "%s", "2.5"), id);
        mira_hl7_received m = {.text = text, .len = strlen(text), .peer = "t", .sender = "S^F",
                               .control_id = id, .ack_code = "AA"};
        bool dup = true;
        int64_t got = 0;
        w->ok &= mira_archive_hl7_put(w->a, &m, &got, &dup, NULL) && !dup && got > 0;
    }
    return NULL;
}

TEST(kept_messages_duplicates_any_bytes_and_many_writers)
{
    mira_archive *a = open_archive();
    CHECK(a != NULL);
    if (!a)
        return;
    const char text[] = "MSH|^~\\&|RIS|H|MIRA|H|2026||ADT^A08|X1|P|2.5\rPID|1||9\r";
    mira_hl7_received m = {.text = text, .len = sizeof text - 1, .peer = "p", .sender = "RIS^H",
                           .control_id = "X1", .message_type = "ADT^A08", .version = "2.5",
                           .ack_code = "AA"};
    int64_t id1 = 0, id2 = 0, id3 = 0, id4 = 0;
    bool dup = true;
    CHECK(mira_archive_hl7_put(a, &m, &id1, &dup, NULL));
    CHECK(!dup);
    CHECK(mira_archive_hl7_put(a, &m, &id2, &dup, NULL));
    CHECK(dup);
    CHECK_EQ_INT(id2, id1);
    /* the same control ID from another sender is another message */
    m.sender = "LAB^H";
    CHECK(mira_archive_hl7_put(a, &m, &id3, &dup, NULL));
    CHECK(!dup && id3 != id1);
    /* a rejected one is kept as often as it comes, with bytes that are not UTF-8 */
    const char raw[] = "MSH|\xff\x00\xe9|x";
    mira_hl7_received bad = {.text = raw, .len = sizeof raw - 1, .peer = "p", .sender = "",
                             .ack_code = "AR", .error = "does not parse"};
    CHECK(mira_archive_hl7_put(a, &bad, &id4, &dup, NULL));
    CHECK(!dup);
    CHECK(mira_archive_hl7_put(a, &bad, &id4, &dup, NULL));
    CHECK(!dup);
    seen s = {0};
    CHECK(mira_archive_hl7_list(a, NULL, collect, &s, NULL));
    CHECK_EQ_INT(s.n, 4);
    CHECK_EQ_INT(s.dups[0], 1);
    CHECK_EQ_STR(s.codes[3], "AR");
    CHECK_EQ_INT(s.lens[3], sizeof raw - 1);
    CHECK(memcmp(s.text[3], raw, sizeof raw - 1) == 0); /* the very bytes */
    mira_hl7_list_options only = {.ack_code = "AR"};
    seen r = {0};
    CHECK(mira_archive_hl7_list(a, &only, collect, &r, NULL));
    CHECK_EQ_INT(r.n, 2);
    /* many threads at once: each message kept once, none lost */
    writer w[6];
    pthread_t t[6];
    for (int k = 0; k < 6; k++) {
        w[k] = (writer){a, k, false};
        pthread_create(&t[k], NULL, put_many, &w[k]);
    }
    for (int k = 0; k < 6; k++) {
        pthread_join(t[k], NULL);
        CHECK(w[k].ok);
    }
    seen all = {0};
    CHECK(mira_archive_hl7_list(a, NULL, collect, &all, NULL));
    CHECK_EQ_INT(all.n, 4 + 6 * 50);
    mira_archive_close(a);
}
