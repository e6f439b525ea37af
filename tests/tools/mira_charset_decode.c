/* Test helper: decode one DICOM text value (Specific Character Set, VR, hex bytes) to UTF-8. */
#include "dicom/charset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr,
                "usage: %s CHARSET VR HEX\n"
                "  CHARSET  raw (0008,0005) value, backslashes included (\"\" for the default)\n"
                "  VR       two letters, e.g. PN\n"
                "  HEX      the value's bytes in hexadecimal (may be empty)\n"
                "Writes the value decoded to UTF-8 on stdout, nothing else.\n",
                argv[0]);
        return 2;
    }
    mira_vr vr = mira_vr_from_string(argv[2]);
    const char *hex = argv[3];
    size_t hl = strlen(hex);
    if (hl % 2 != 0) {
        fprintf(stderr, "%s: odd number of hex digits\n", argv[0]);
        return 2;
    }
    unsigned char *bytes = malloc(hl / 2 + 1);
    if (!bytes)
        return 1;
    for (size_t i = 0; i < hl / 2; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            fprintf(stderr, "%s: not a hex digit at offset %zu\n", argv[0], 2 * i);
            free(bytes);
            return 2;
        }
        bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    mira_error *err = NULL;
    size_t out_len = 0;
    char *out = mira__charset_decode(argv[1], vr, bytes, hl / 2, &out_len, &err);
    free(bytes);
    if (!out) {
        fprintf(stderr, "%s: %s\n", argv[0], mira_error_get_message(err));
        mira_error_free(err);
        return 1;
    }
    fwrite(out, 1, out_len, stdout);
    mira_free(out);
    return fflush(stdout) == 0 ? 0 : 1;
}
