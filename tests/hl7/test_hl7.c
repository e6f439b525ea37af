/* Tests of the HL7 v2 codec: paths, escapes (HL7 v2.5 2.7), building, character sets,
 * acknowledgements (2.9.2) and batch files (2.10.3), each against the rule of the standard. */
#include "harness.h"

#include <mira/mira.h>
#include <stdlib.h>

static mira_hl7_message *parse(const char *s)
{
    mira_error *err = NULL;
    mira_hl7_message *m = mira_hl7_parse(s, strlen(s), &err);
    if (!m)
        fprintf(stderr, "parse: %s\n", mira_error_get_message(err));
    mira_error_free(err);
    return m;
}

/* The value at path, in a static buffer ("(error)" if the path is refused). */
static const char *get(const mira_hl7_message *m, const char *path)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    char *v = mira_hl7_get(m, path, NULL);
    snprintf(buf[k], sizeof buf[k], "%s", v ? v : "(error)");
    mira_free(v);
    return buf[k];
}

static const char *encoded(const mira_hl7_message *m, const char *path)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    char *v = mira_hl7_get_encoded(m, path, NULL);
    snprintf(buf[k], sizeof buf[k], "%s", v ? v : "(error)");
    mira_free(v);
    return buf[k];
}

#define ADT                                                                                        \
    "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB|GHH|198808181126|SECURITY|ADT^A01^ADT_A01|"      \
    "MSG00001|P|2.5\r"                                                                             \
    "EVN|A01|200708181123\r"                                                                       \
    "PID|1||PATID1234^5^M11^ADT1^MR^GOOD HEALTH HOSPITAL~123456789^^^USSSA^SS||"                  \
    "EVERYMAN^ADAM^A^III||19610615|M||C|2222 HOME STREET^^GREENSBORO^NC^27401-1020\r"           \
    "NK1|1|JONES^BARBARA^K|SPO^Spouse^HL70063\r"                                                   \
    "PV1|1|I|2000^2012^01||||004777^ATTEND^AARON^A|||SUR\r"                                        \
    "ZPI|custom&sub1&sub2^second\r"

TEST(paths_read_fields_repetitions_components_subcomponents)
{
    mira_hl7_message *m = parse(ADT);
    CHECK(m != NULL);
    CHECK_EQ_INT(mira_hl7_segment_count(m), 6);
    CHECK_EQ_STR(mira_hl7_segment_name(m, 5), "ZPI");
    CHECK_EQ_STR(get(m, "MSH-1"), "|");
    CHECK_EQ_STR(get(m, "MSH-2"), "^~\\&");
    CHECK_EQ_STR(get(m, "MSH-3"), "ADT1");
    CHECK_EQ_STR(get(m, "MSH-9"), "ADT");   /* the first component (HAPI Terser) */
    CHECK_EQ_STR(get(m, "MSH-9.2"), "A01");
    CHECK_EQ_STR(get(m, "MSH-12"), "2.5");
    CHECK_EQ_STR(get(m, "PID-3"), "PATID1234");
    CHECK_EQ_STR(get(m, "PID-3.5"), "MR");
    CHECK_EQ_STR(get(m, "PID-3(2)"), "123456789");
    CHECK_EQ_STR(get(m, "PID-3(2).4"), "USSSA");
    CHECK_EQ_STR(get(m, "PID-5.2"), "ADAM");
    CHECK_EQ_STR(get(m, "PID-11.3"), "GREENSBORO");
    CHECK_EQ_STR(get(m, "ZPI-1.1.2"), "sub1");
    CHECK_EQ_STR(get(m, "ZPI-1.2"), "second");
    CHECK_EQ_STR(get(m, "PID-99"), ""); /* absent: empty */
    CHECK_EQ_STR(get(m, "OBX-5"), "");
    CHECK_EQ_STR(encoded(m, "PID-5"), "EVERYMAN^ADAM^A^III");
    CHECK_EQ_STR(encoded(m, "PID-3"),
                 "PATID1234^5^M11^ADT1^MR^GOOD HEALTH HOSPITAL~123456789^^^USSSA^SS");
    CHECK_EQ_STR(encoded(m, "PID-3(2)"), "123456789^^^USSSA^SS");
    CHECK_EQ_STR(encoded(m, "ZPI-1.1"), "custom&sub1&sub2");
    CHECK_EQ_INT(mira_hl7_count(m, "PID"), 1);
    CHECK_EQ_INT(mira_hl7_count(m, "PID(1)"), 11);
    CHECK_EQ_INT(mira_hl7_count(m, "PID-3"), 2);
    CHECK_EQ_INT(mira_hl7_count(m, "PID-3(2)"), 5);
    CHECK_EQ_INT(mira_hl7_count(m, "ZPI-1.1"), 3);
    CHECK_EQ_INT(mira_hl7_count(m, "OBX"), 0);
    /* bad paths are refused, not read as something else */
    const char *bad[] = {"pid-5", "PID-0", "PID-5.", "PID-5.1.2.3", "PID(0)-1", "PID-", "PI",
                         "PID-5(", "PID 5", "PID-1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mira_error *err = NULL;
        char *v = mira_hl7_get(m, bad[i], &err);
        CHECK(v == NULL && mira_error_get_code(err) == MIRA_ERR_ARGUMENT);
        mira_error_free(err);
    }
    /* the message encodes back to its own bytes */
    size_t n;
    char *back = mira_hl7_encode(m, &n, NULL);
    CHECK_EQ_STR(back, ADT);
    mira_free(back);
    mira_hl7_free(m);
}

TEST(second_segments_by_occurrence)
{
    mira_hl7_message *m = parse("MSH|^~\\&|A||B||||ORU^R01|1|P|2.5\rOBX|1|TX|||first\r"
                                "NTE|1||note\rOBX|2|TX|||second\rOBX|3|TX|||third\r");
    CHECK_EQ_INT(mira_hl7_count(m, "OBX"), 3);
    CHECK_EQ_STR(get(m, "OBX-5"), "first");
    CHECK_EQ_STR(get(m, "OBX(2)-5"), "second");
    CHECK_EQ_STR(get(m, "OBX(3)-1"), "3");
    CHECK_EQ_STR(get(m, "OBX(4)-5"), "");
    mira_hl7_free(m);
}

TEST(escape_sequences_of_the_standard)
{
    /* HL7 v2.5 2.7: \F\ \S\ \T\ \R\ \E\, \Xhh\, formatting; highlighting and character set
     * switches carry no text */
    mira_hl7_message *m = parse("MSH|^~\\&|A||B||||ORU^R01|1|P|2.5\r"
                                "OBX|1|FT|||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f|x\r"
                                "OBX|2|FT|||line one\\.br\\line two\\.sp2\\end\r"
                                "OBX|3|FT|||\\X414243\\ and \\H\\bold\\N\\ \\.sk3\\x\r"
                                "OBX|4|FT|||tab\\X09\\in \\.in+4\\y \\Cxxyy\\z \\Zlocal\\w\r"
                                "OBX|5|FT|||an escape \\ that never closes\r");
    CHECK_EQ_STR(get(m, "OBX-5"), "a|b^c&d~e\\f");
    CHECK_EQ_STR(get(m, "OBX-6"), "x");
    CHECK_EQ_STR(get(m, "OBX(2)-5"), "line one\nline two\n\nend");
    CHECK_EQ_STR(get(m, "OBX(3)-5"), "ABC and bold    x");
    CHECK_EQ_STR(get(m, "OBX(4)-5"), "tab\tin     y z w");
    CHECK_EQ_STR(get(m, "OBX(5)-5"), "an escape \\ that never closes");
    mira_hl7_free(m);
}

TEST(other_delimiters_and_line_ends)
{
    /* any five characters: here field '!', component '@', repetition '#', escape '$',
     * subcomponent '%'; segments ended by LF and CR LF */
    mira_hl7_message *m =
        parse("MSH!@#$%!SND!!RCV!!!!ADT@A08!9!P!2.4\nPID!!!ID1@@@HOSP#ID2!!NAME@GIVEN%SUB$F$x"
              "\r\nZZZ!a|b^c~d&e\\f\n");
    CHECK(m != NULL);
    CHECK_EQ_STR(get(m, "MSH-1"), "!");
    CHECK_EQ_STR(get(m, "MSH-2"), "@#$%");
    CHECK_EQ_STR(get(m, "MSH-9.2"), "A08");
    CHECK_EQ_STR(get(m, "PID-3(2)"), "ID2");
    CHECK_EQ_STR(get(m, "PID-3.4"), "HOSP");
    CHECK_EQ_STR(get(m, "PID-5.2.2"), "SUB!x");
    CHECK_EQ_STR(get(m, "ZZZ-1"), "a|b^c~d&e\\f"); /* the usual delimiters are plain text */
    char *out = mira_hl7_encode(m, NULL, NULL);
    CHECK_EQ_STR(out, "MSH!@#$%!SND!!RCV!!!!ADT@A08!9!P!2.4\rPID!!!ID1@@@HOSP#ID2!!NAME@GIVEN%"
                      "SUB$F$x\rZZZ!a|b^c~d&e\\f\r");
    mira_free(out);
    mira_hl7_free(m);
}

TEST(malformed_messages_are_refused)
{
    const char *bad[] = {"", "PID|1\r", "MSH", "MSH|^~\r", "MSH|^~\\&&|A\r", "MSH|^~^&|A\r",
                         "MSH|^~\\&|A\rpid|1\r", "MSH|^~\\&|A\rPI\r", "MSH|^~\\&|A\rPIDX|1\r",
                         "MSH|^A\\&|x\r", "MSH ^~\\& x\r"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mira_error *err = NULL;
        mira_hl7_message *m = mira_hl7_parse(bad[i], strlen(bad[i]), &err);
        CHECK(m == NULL && mira_error_get_code(err) == MIRA_ERR_INVALID);
        if (m)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        mira_error_free(err);
        mira_hl7_free(m);
    }
}

TEST(building_escapes_what_needs_it)
{
    mira_hl7_message *m = mira_hl7_new("2.5", NULL);
    CHECK(m != NULL);
    CHECK(mira_hl7_set(m, "MSH-3", "MIRA", NULL));
    CHECK(mira_hl7_set(m, "MSH-9.1", "ORU", NULL));
    CHECK(mira_hl7_set(m, "MSH-9.2", "R01", NULL));
    CHECK(mira_hl7_set(m, "PID-3.1", "ID|1", NULL));
    CHECK(mira_hl7_set(m, "PID-3.4", "A^B&C~D\\E", NULL));
    CHECK(mira_hl7_set(m, "PID-5.1", "O'NEIL", NULL));
    CHECK(mira_hl7_set(m, "OBX(2)-5", "line 1\r\nline 2\nbell\a", NULL));
    CHECK(!mira_hl7_set(m, "MSH-2", "x", NULL));
    CHECK(!mira_hl7_set(m, "PID", "x", NULL));
    size_t n;
    char *out = mira_hl7_encode(m, &n, NULL);
    CHECK_EQ_STR(out, "MSH|^~\\&|MIRA||||||ORU^R01|||2.5\r"
                      "PID|||ID\\F\\1^^^A\\S\\B\\T\\C\\R\\D\\E\\E||O'NEIL\r"
                      "OBX\rOBX|||||line 1\\.br\\line 2\\.br\\bell\\X07\\\r");
    /* and reads back as what was set */
    mira_hl7_message *b = mira_hl7_parse(out, n, NULL);
    CHECK_EQ_STR(get(b, "PID-3.1"), "ID|1");
    CHECK_EQ_STR(get(b, "PID-3.4"), "A^B&C~D\\E");
    CHECK_EQ_STR(get(b, "OBX(2)-5"), "line 1\nline 2\nbell\a");
    mira_free(out);
    mira_hl7_free(b);
    mira_hl7_free(m);
}

TEST(character_sets_of_msh18)
{
    /* ISO 8859-1 bytes (0xFC ü, 0xC5 Å) decode to UTF-8; UTF-8 stays; undeclared UTF-8 is
     * taken as UTF-8, undeclared bytes that are not UTF-8 as ISO 8859-1 */
    mira_hl7_message *m = parse("MSH|^~\\&|A||B||||ADT^A08|1|P|2.5||||||8859/1\r"
                                "PID|||1||M\xFCller^\xC5sa\r");
    CHECK_EQ_STR(mira_hl7_charset(m), "ISO_IR 100");
    CHECK_EQ_STR(get(m, "PID-5"), "M\xC3\xBCller");
    CHECK_EQ_STR(get(m, "PID-5.2"), "\xC3\x85sa");
    /* writing into it encodes in ISO 8859-1 */
    CHECK(mira_hl7_set(m, "PID-5.3", "J\xC3\xA9r\xC3\xB4me", NULL));
    CHECK_EQ_STR(encoded(m, "PID-5.3"), "J\xE9r\xF4me");
    CHECK(!mira_hl7_set(m, "PID-5.4", "\xE6\x97\xA5", NULL)); /* 日: not in Latin-1 */
    mira_hl7_free(m);
    m = parse("MSH|^~\\&|A||B||||ADT^A08|1|P|2.8||||||UNICODE UTF-8\rPID|||1||\xE5\xB1\xB1\xE7"
              "\x94\xB0^\xE5\xA4\xAA\xE9\x83\x8E\r");
    CHECK_EQ_STR(mira_hl7_charset(m), "ISO_IR 192");
    CHECK_EQ_STR(get(m, "PID-5"), "\xE5\xB1\xB1\xE7\x94\xB0");
    mira_hl7_free(m);
    m = parse("MSH|^~\\&|A||B||||ADT^A08|1|P|2.5\rPID|||1||M\xC3\xBCller~M\xFCller\r");
    CHECK_EQ_STR(get(m, "PID-5"), "M\xC3\xBCller");
    CHECK_EQ_STR(get(m, "PID-5(2)"), "M\xC3\xBCller");
    mira_hl7_free(m);
    m = parse("MSH|^~\\&|A||B||||ADT^A08|1|P|2.5||||||ISO IR87\rPID|||1||\x1B$B;3ED\x1B(B\r");
    CHECK_EQ_STR(get(m, "PID-5"), "\xE5\xB1\xB1\xE7\x94\xB0"); /* 山田 in ISO 2022 JIS */
    mira_hl7_free(m);
}

TEST(acknowledgements_original_mode)
{
    mira_hl7_message *m = parse(ADT);
    mira_hl7_ack_options o = {.code = "AE",
                              .text = "PID-3 has no MR | number",
                              .error_code = "101",
                              .location = "PID^1^3",
                              .control_id = "ACK1"};
    size_t n;
    char *ack = mira_hl7_ack(m, NULL, 0, &o, &n, NULL);
    mira_hl7_message *a = ack ? mira_hl7_parse(ack, n, NULL) : NULL;
    CHECK(a != NULL);
    CHECK_EQ_STR(get(a, "MSH-3"), "MIRA");
    CHECK_EQ_STR(get(a, "MSH-5"), "ADT1");                 /* the sender of the original */
    CHECK_EQ_STR(get(a, "MSH-6"), "GOOD HEALTH HOSPITAL"); /* and its facility */
    CHECK_EQ_STR(encoded(a, "MSH-9"), "ACK^A01^ACK");
    CHECK_EQ_STR(get(a, "MSH-10"), "ACK1");
    CHECK_EQ_STR(get(a, "MSH-11"), "P");
    CHECK_EQ_STR(get(a, "MSH-12"), "2.5");
    CHECK_EQ_STR(get(a, "MSA-1"), "AE");
    CHECK_EQ_STR(get(a, "MSA-2"), "MSG00001");
    CHECK_EQ_STR(get(a, "MSA-3"), "PID-3 has no MR | number");
    CHECK_EQ_STR(encoded(a, "ERR-2"), "PID^1^3");
    CHECK_EQ_STR(encoded(a, "ERR-3"), "101^Required field missing^HL70357");
    CHECK_EQ_STR(get(a, "ERR-4"), "E");
    CHECK_EQ_STR(get(a, "ERR-8"), "PID-3 has no MR | number");
    mira_free(ack);
    mira_hl7_free(a);
    /* AA: no ERR */
    o = (mira_hl7_ack_options){.code = "AA", .control_id = "ACK2"};
    ack = mira_hl7_ack(m, NULL, 0, &o, &n, NULL);
    a = mira_hl7_parse(ack, n, NULL);
    CHECK_EQ_INT(mira_hl7_count(a, "ERR"), 0);
    CHECK_EQ_STR(get(a, "MSA-1"), "AA");
    mira_free(ack);
    mira_hl7_free(a);
    mira_hl7_free(m);
    /* a message that did not parse: what its MSH had, read raw; v2.3: ERR-1 */
    const char raw[] = "MSH|^~\\&|LAB|H1|X|Y|||ORU^R01|C77|P|2.3\rOBX|1\rbad one\r";
    o = (mira_hl7_ack_options){.code = "AR", .text = "no", .error_code = "100",
                               .control_id = "ACK3"};
    ack = mira_hl7_ack(NULL, raw, sizeof raw - 1, &o, &n, NULL);
    a = mira_hl7_parse(ack, n, NULL);
    CHECK_EQ_STR(get(a, "MSH-5"), "LAB");
    CHECK_EQ_STR(get(a, "MSH-9.2"), "R01");
    CHECK_EQ_STR(get(a, "MSA-2"), "C77");
    CHECK_EQ_STR(get(a, "MSH-12"), "2.3");
    CHECK_EQ_STR(encoded(a, "ERR-1"), "^^^100&Segment sequence error&HL70357");
    mira_free(ack);
    mira_hl7_free(a);
}

typedef struct collected {
    char text[8][256];
    size_t n;
} collected;

static bool collect(void *ctx, const char *text, size_t len)
{
    collected *c = ctx;
    if (c->n < 8)
        snprintf(c->text[c->n++], sizeof c->text[0], "%.*s", (int)len, text);
    return true;
}

TEST(batch_files)
{
    const char *file = "FHS|^~\\&|SND\rBHS|^~\\&|SND\r"
                       "MSH|^~\\&|A||B||||ADT^A01|1|P|2.5\rPID|||1\r"
                       "MSH|^~\\&|A||B||||ADT^A01|2|P|2.5\rPID|||2\r"
                       "BTS|2\rBHS|^~\\&|SND\rMSH|^~\\&|A||B||||ADT^A01|3|P|2.5\rBTS|1\rFTS|2\r";
    collected c = {0};
    size_t count = 0;
    CHECK(mira_hl7_batch_split(file, strlen(file), collect, &c, &count, NULL));
    CHECK_EQ_INT(count, 3);
    CHECK_EQ_STR(c.text[0], "MSH|^~\\&|A||B||||ADT^A01|1|P|2.5\rPID|||1\r");
    CHECK_EQ_STR(c.text[2], "MSH|^~\\&|A||B||||ADT^A01|3|P|2.5\r");
    /* a trailer that counts wrong */
    const char *wrong = "BHS|^~\\&\rMSH|^~\\&|A||B||||ADT^A01|1|P|2.5\rBTS|5\r";
    mira_error *err = NULL;
    c.n = 0;
    CHECK(!mira_hl7_batch_split(wrong, strlen(wrong), collect, &c, &count, &err));
    CHECK(err && strstr(mira_error_get_message(err), "BTS-1 says 5"));
    mira_error_free(err);
    /* segments before any MSH */
    err = NULL;
    CHECK(!mira_hl7_batch_split("PID|1\r", 6, collect, &c, &count, &err));
    mira_error_free(err);
    /* several messages without a header, LF-separated */
    const char *plain = "MSH|^~\\&|A|||||ADT^A01|1|P|2.5\nPID|||1\n\nMSH|^~\\&|A|||||ADT^A01|2|P|2.5\n";
    c.n = 0;
    CHECK(mira_hl7_batch_split(plain, strlen(plain), collect, &c, &count, NULL));
    CHECK_EQ_INT(count, 2);
    CHECK_EQ_STR(c.text[1], "MSH|^~\\&|A|||||ADT^A01|2|P|2.5\r");
}
