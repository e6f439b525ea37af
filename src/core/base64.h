/* Base64 (RFC 4648) encoding and decoding, used by DICOM JSON and the dump output. */
#ifndef MIRA_CORE_BASE64_H
#define MIRA_CORE_BASE64_H

#include "buf.h"

/* Append the base64 text of `len` bytes to b. */
bool mira__base64_encode(mira__buf *b, const uint8_t *in, size_t len);
/* Decode base64 text (whitespace ignored, padding optional); false on an invalid character. */
bool mira__base64_decode(mira__buf *out, const char *in, size_t len);

#endif
