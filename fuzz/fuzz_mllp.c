/* Fuzz target: MLLP framing and the server's answer. The stream is fed in pieces whose sizes
 * come from its first byte; every frame is checked (its length within the limit, its total
 * at least its length) and answered as the server does (mira_hl7_receive, no archive), and
 * the answer must read back as an HL7 message with an MSA segment. */
#include <mira/mira.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 61 + 1;
    data++;
    size--;
    mira_mllp_reader *r = mira_mllp_reader_new(2048);
    if (!r)
        return 0;
    for (size_t at = 0; at < size;) {
        size_t piece = size - at < step ? size - at : step;
        mira_mllp_frame f;
        size_t used = mira_mllp_feed(r, data + at, piece, &f, NULL);
        if (used == (size_t)-1 || used > piece)
            abort();
        at += used;
        if (!f.data) {
            if (used != piece)
                abort(); /* without a message, the whole piece is used */
            continue;
        }
        if (f.len > f.total || (f.oversize ? f.total <= 2048 || f.len > 4096 : f.len > 2048))
            abort();
        const char *code = NULL;
        size_t n = 0;
        char *ack = mira_hl7_receive(NULL, f.data, f.len, f.oversize, "fuzz", NULL, NULL, &code,
                                     &n, NULL);
        if (ack) {
            mira_hl7_message *m = mira_hl7_parse(ack, n, NULL);
            char *msa = m ? mira_hl7_get(m, "MSA-1", NULL) : NULL;
            if (!msa || strcmp(msa, code) != 0)
                abort(); /* every answer is an ACK carrying its code */
            mira_free(msa);
            mira_hl7_free(m);
            mira_free(ack);
        }
    }
    mira_mllp_reader_free(r);
    return 0;
}
