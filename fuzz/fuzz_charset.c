/* Fuzz target: Specific Character Set decoding (ISO 2022 escapes, multi-byte sets) to UTF-8. */
#include "dicom/charset.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1u << 16))
        return 0;
    /* first byte: how many bytes of charset text follow; second: the VR to decode as */
    size_t cs_len = data[0] % 64;
    static const mira_vr vrs[] = {MIRA_VR_PN, MIRA_VR_LO, MIRA_VR_SH, MIRA_VR_LT,
                                  MIRA_VR_UT, MIRA_VR_ST, MIRA_VR_UC};
    mira_vr vr = vrs[data[1] % (sizeof vrs / sizeof vrs[0])];
    data += 2;
    size -= 2;
    if (cs_len > size)
        cs_len = size;
    char charset[65];
    memcpy(charset, data, cs_len);
    charset[cs_len] = '\0';
    size_t out_len = 0;
    mira_error *err = NULL;
    char *out = mira__charset_decode(charset, vr, data + cs_len, size - cs_len, &out_len, &err);
    if (!out || strlen(out) > out_len)
        __builtin_trap(); /* only allocation can fail, and the length must be right */
    mira_free(out);
    mira_error_free(err);
    (void)mira__charset_is_known(charset);
    return 0;
}
