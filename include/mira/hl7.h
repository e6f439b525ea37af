/* mira HL7 v2: messages of versions 2.3 to 2.8 parsed into segments, fields, repetitions,
 * components and subcomponents, read and written by path, and built back to text. */
#ifndef MIRA_HL7_H
#define MIRA_HL7_H

#include "mira/core.h"
#include "mira/json.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A message is a list of segments (MSH first); a segment is its name and its fields; a field
 * a list of repetitions; a repetition a list of components; a component a list of
 * subcomponents, each a text. The delimiters are the message's own (MSH-1, MSH-2: any five
 * characters, not only |^~\&); a value's text is kept escaped as received and unescaped on
 * reading (\F\ \S\ \T\ \R\ \E\, \Xhh..\, \.br\ and the other formatting escapes of
 * HL7 v2.5 2.7), then decoded from the character set of MSH-18 to UTF-8.
 *
 * Paths (HAPI's Terser syntax, 1-based): "PID-5" (field 5 of the first PID), "PID-5.1"
 * (component 1), "PID-5.1.2" (subcomponent 2), "PID-3(2).1" (repetition 2 of field 3),
 * "OBX(2)-5" (the second OBX segment). Read at a level above a subcomponent, a path gives the
 * first one below it (HAPI's Terser does the same): "PID-5" of "DOE^JOHN" is "DOE". MSH-1 is
 * the field separator and MSH-2 the encoding characters, as the standard counts them.
 */
typedef struct mira_hl7_message mira_hl7_message;

/* Parse one message. Segments end with CR (HL7 v2.5 2.5.3); LF and CR LF are taken too, as
 * senders commonly use them. Fails (MIRA_ERR_INVALID, naming the segment and byte offset)
 * without MSH at the start, with bad encoding characters, or with a segment name that is not
 * three upper-case letters or digits. Z-segments are kept like the others. */
MIRA_API mira_hl7_message *mira_hl7_parse(const char *text, size_t len, mira_error **err);

/* A new message with the standard delimiters "|^~\&", MSH-12 version (e.g. "2.5"). */
MIRA_API mira_hl7_message *mira_hl7_new(const char *version, mira_error **err);
MIRA_API void mira_hl7_free(mira_hl7_message *m);

MIRA_API size_t mira_hl7_segment_count(const mira_hl7_message *m);
/* Name of segment i (0-based), or NULL past the end. Borrowed. */
MIRA_API const char *mira_hl7_segment_name(const mira_hl7_message *m, size_t i);

/* The value at path: unescaped, in UTF-8, NUL-terminated (owned: mira_free). "" when the
 * message has nothing there (HL7: an absent value); NULL with MIRA_ERR_ARGUMENT for a path
 * that is not one. */
MIRA_API char *mira_hl7_get(const mira_hl7_message *m, const char *path, mira_error **err);
/* The element at path as it is encoded in the message, delimiters and escapes included
 * ("DOE^JOHN" for PID-5; "" when absent). Owned. */
MIRA_API char *mira_hl7_get_encoded(const mira_hl7_message *m, const char *path,
                                    mira_error **err);
/* How many there are one level below path: "OBX" the OBX segments, "PID-3" the repetitions of
 * field 3 of the first PID, "PID-3(2)" the components of its second repetition, "PID-5.1" the
 * subcomponents of component 1, "PID" the fields of PID (the highest field number). */
MIRA_API size_t mira_hl7_count(const mira_hl7_message *m, const char *path);

/* Set the value at path (UTF-8; escaped as needed, and encoded in the character set of
 * MSH-18 when it is not UTF-8), making the segment (appended), field, repetition, component
 * and subcomponent if they are not there. "OBX(3)-5" with two OBX makes the third. MSH-1 and
 * MSH-2 cannot be set. */
MIRA_API bool mira_hl7_set(mira_hl7_message *m, const char *path, const char *value,
                           mira_error **err);
/* Append a segment named name (3 characters) with no fields. */
MIRA_API bool mira_hl7_add_segment(mira_hl7_message *m, const char *name, mira_error **err);

/* The message as text, segments ended by CR (owned; *len without the NUL). */
MIRA_API char *mira_hl7_encode(const mira_hl7_message *m, size_t *len, mira_error **err);

/* The whole structure as JSON: {"segments": [[name, field 1, ...], ...]} where each field is
 * an array of repetitions, each an array of components, each an array of subcomponent
 * strings (unescaped, UTF-8); MSH-1 and MSH-2 are strings. */
MIRA_API void mira_hl7_to_json(const mira_hl7_message *m, mira_json_writer *w);

/* The character set MSH-18 names, as a DICOM defined term mira can decode ("" for ASCII, the
 * default), or NULL if it is one mira does not know (text is then read as ISO 8859-1). */
MIRA_API const char *mira_hl7_charset(const mira_hl7_message *m);

/*
 * An acknowledgement of m in original mode (HL7 v2.5 2.9.2): MSH with sender and receiver
 * swapped, MSH-9 ACK^<trigger>^ACK, a new MSH-10 control_id, the same MSH-11 and MSH-12;
 * MSA-1 code ("AA", "AE" or "AR"), MSA-2 m's MSH-10, MSA-3 text; and for AE/AR an ERR
 * segment: ERR-2 location (e.g. "PID^1^3", may be NULL), ERR-3 the HL7 error code (table
 * 0357: "100" segment sequence, "101" required field missing, "102" data type, "103" table
 * value not found, "200" unsupported message type, "201" unsupported event, "203"
 * unsupported version, "206" application record locked, "207" application internal error),
 * ERR-4 severity E, ERR-8 the text. m may be NULL (a message that did not parse): the ACK then
 * has what could be read of the original's MSH in raw (may be NULL).
 */
typedef struct mira_hl7_ack_options {
    const char *code;       /* AA, AE, AR */
    const char *text;       /* MSA-3 and ERR-8, or NULL */
    const char *error_code; /* ERR-3 (table 0357), or NULL for 207 when code is not AA */
    const char *location;   /* ERR-2, or NULL */
    const char *control_id; /* MSH-10 of the ACK */
    const char *app;        /* MSH-3 of the ACK (the receiving application), or NULL: "MIRA" */
    const char *facility;   /* MSH-4, or NULL */
} mira_hl7_ack_options;

MIRA_API char *mira_hl7_ack(const mira_hl7_message *m, const char *raw, size_t raw_len,
                            const mira_hl7_ack_options *o, size_t *len, mira_error **err);

/*
 * A batch file (HL7 v2.5 2.10.3: [FHS [BHS] {MSH...} [BTS] [FTS]]): calls fn for each
 * message's text (without its header and trailer segments), in order; fn returns false to
 * stop. A text without FHS or BHS is one message, or several MSH-started ones. Returns the
 * number of messages (and checks BTS-1 / FTS-1 counts when present, failing on a mismatch).
 */
typedef bool (*mira_hl7_message_fn)(void *ctx, const char *text, size_t len);
MIRA_API bool mira_hl7_batch_split(const char *text, size_t len, mira_hl7_message_fn fn,
                                   void *ctx, size_t *count, mira_error **err);

#ifdef __cplusplus
}
#endif

#endif
