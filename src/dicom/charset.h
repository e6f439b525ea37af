/* Specific Character Set: DICOM text in any defined character set to UTF-8. */
#ifndef MIRA_DICOM_CHARSET_H
#define MIRA_DICOM_CHARSET_H

#include "mira/dicom.h"

/*
 * Decode `len` bytes of a value of VR `vr` to UTF-8. `charset` is the raw value of
 * (0008,0005) Specific Character Set, backslashes included ("ISO 2022 IR 6\ISO 2022 IR 87"),
 * or "" / NULL for the default repertoire. Handles ISO 2022 code extensions with escape
 * sequences, which reset to the first character set at the delimiters PS3.5 6.1.2.5.3 names
 * (for PN: '^' and '='; for every VR: '\', CR, LF, FF, TAB).
 * Returns a NUL-terminated string owned by the caller (mira_free) and sets *out_len
 * (optional). A defined term mira does not know decodes as ISO_IR 100 (Latin-1), and bytes
 * invalid in their character set become U+FFFD: text is never lost for a bad byte.
 * Fails only on allocation failure.
 */
char *mira__charset_decode(const char *charset, mira_vr vr, const uint8_t *in, size_t len,
                           size_t *out_len, mira_error **err);

/* True if every defined term in `charset` is one mira can decode. */
bool mira__charset_is_known(const char *charset);

#endif
