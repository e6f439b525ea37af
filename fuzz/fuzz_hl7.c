/* Fuzz target: the HL7 v2 codec. Parse, read paths, JSON, encode and parse again (the two
 * encodings must be equal), set values, acknowledge (parsed and raw), split as a batch. */
#include <mira/mira.h>

#include <stdlib.h>
#include <string.h>

static bool each(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    mira_hl7_message *m = mira_hl7_parse(text, len, NULL);
    mira_hl7_free(m);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    mira_hl7_message *m = mira_hl7_parse(text, size, NULL);
    mira_hl7_ack_options o = {.code = m ? "AA" : "AR", .text = "fuzz", .control_id = "F1",
                              .location = "PID^1^3"};
    char *ack = mira_hl7_ack(m, text, size, &o, NULL, NULL);
    mira_free(ack);
    if (m) {
        static const char *const paths[] = {"MSH-1", "MSH-2", "MSH-9.2", "MSH-18", "PID-3(2).4",
                                            "PID-5", "OBX(2)-5", "OBX-5.1.2", "ZZZ-1"};
        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
            mira_free(mira_hl7_get(m, paths[i], NULL));
            mira_free(mira_hl7_get_encoded(m, paths[i], NULL));
            (void)mira_hl7_count(m, paths[i]);
        }
        mira_json_writer *w = mira_json_writer_new(false);
        mira_hl7_to_json(m, w);
        mira_free(mira_json_writer_finish(w, NULL, NULL));
        mira_json_writer_free(w);
        size_t n1, n2;
        char *e1 = mira_hl7_encode(m, &n1, NULL);
        mira_hl7_message *again = e1 ? mira_hl7_parse(e1, n1, NULL) : NULL;
        char *e2 = again ? mira_hl7_encode(again, &n2, NULL) : NULL;
        if (e1 && again && (!e2 || n1 != n2 || memcmp(e1, e2, n1) != 0))
            abort(); /* an encoding must read back as itself */
        if (e1 && !again && mira_hl7_segment_count(m) > 0)
            abort(); /* what mira wrote it must read */
        mira_free(e1);
        mira_free(e2);
        mira_hl7_free(again);
        (void)mira_hl7_set(m, "PID-5.2", "A|B^C~D&E\\F\n", NULL);
        (void)mira_hl7_set(m, "OBX(3)-5", "x", NULL);
        mira_free(mira_hl7_encode(m, NULL, NULL));
        mira_hl7_free(m);
    }
    (void)mira_hl7_batch_split(text, size, each, NULL, NULL, NULL);
    return 0;
}
