/* mira HL7 v2: messages of versions 2.3 to 2.8 parsed into segments, fields, repetitions,
 * components and subcomponents, read and written by path, and built back to text. */
#ifndef MIRA_HL7_H
#define MIRA_HL7_H

#include "mira/archive.h"
#include "mira/core.h"
#include "mira/features.h"
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

/* ------------------------------------------------------------------ MLLP framing */

/*
 * The Minimal Lower Layer Protocol (HL7 v2.5 Appendix C, MLLP release 1): a message travels as
 * <VT> (0x0B) message <FS> (0x1C) <CR> (0x0D). The reader does no I/O: give it the bytes as
 * they arrive and it hands back each complete message. Bytes outside a frame are skipped and
 * counted (a sender's stray CR LF between frames is common); a VT inside a frame starts a new
 * one (the bytes before it are skipped, counted); an FS not followed by CR still ends the
 * message (counted as a deviation). A message longer than the reader's limit is not kept: its
 * frame is read to its end, and only its first bytes (up to 4096, enough for the MSH of an
 * answer) are handed back, with oversize set.
 */
typedef struct mira_mllp_reader mira_mllp_reader;

typedef struct mira_mllp_frame {
    const char *data; /* the message (borrowed: valid until the next call), or NULL: none yet */
    size_t len;       /* its length (for an oversize one, of the first bytes kept) */
    size_t total;     /* the message's whole length (== len unless oversize) */
    bool oversize;    /* longer than the reader's limit: only the first bytes are in data */
    bool bad_end;     /* ended by FS without the CR after it */
} mira_mllp_frame;

/* max_message: the longest message kept (0: 16 MiB). */
MIRA_API mira_mllp_reader *mira_mllp_reader_new(size_t max_message);
MIRA_API void mira_mllp_reader_free(mira_mllp_reader *r);
/* Read from p[0..n): returns how many bytes were used, stopping right after the first message
 * completed (then out->data is set); the caller calls again with the rest. NULL with
 * MIRA_ERR_NOMEM only when memory runs out (returns (size_t)-1). */
MIRA_API size_t mira_mllp_feed(mira_mllp_reader *r, const void *p, size_t n,
                               mira_mllp_frame *out, mira_error **err);
/* Bytes skipped outside frames so far; true if a frame has begun and not ended. */
MIRA_API uint64_t mira_mllp_skipped(const mira_mllp_reader *r);
MIRA_API bool mira_mllp_in_frame(const mira_mllp_reader *r);
/* The frame of a message: VT text FS CR (owned; *out_len its length). */
MIRA_API char *mira_mllp_wrap(const char *text, size_t len, size_t *out_len, mira_error **err);

/* ------------------------------------------------------------------ received messages */

/*
 * Every message received over MLLP is kept in the archive's index (table hl7_messages),
 * committed durably before its ACK goes out: accepted ones (MSA-1 AA) to be acted on, and
 * rejected ones (AE, AR: a message that does not parse, lacks MSH-10 or a field its type
 * needs, or is of a version mira does not read) for inspection, with the reason. A message
 * whose sender (MSH-3 and MSH-4 as encoded) and MSH-10 match an accepted one is a duplicate:
 * not kept again, it counts on the first one, whose id it gets, and is acknowledged AA like
 * the first (HL7 v2.5 2.10.1: a receiver acknowledges a repeated message).
 */
typedef struct mira_hl7_received {
    const char *text;         /* the message as received (any bytes) */
    size_t len;
    const char *peer;         /* "ADDRESS:PORT" */
    const char *sender;       /* MSH-3^MSH-4 (may be "") */
    const char *control_id;   /* MSH-10 (NULL or "": none) */
    const char *message_type; /* MSH-9 as encoded, e.g. "ORU^R01^ORU_R01" (may be NULL) */
    const char *version;      /* MSH-12 (may be NULL) */
    const char *ack_code;     /* AA, AE or AR: accepted only with AA */
    const char *error;        /* why, for AE and AR (NULL with AA) */
} mira_hl7_received;

/* Keep m: *id the row's id, *duplicate true when it repeats an accepted one (nothing new is
 * stored; *id is the first one's). Callers that arrive while a batch is committed wait for the
 * next and share its sync. */
MIRA_API bool mira_archive_hl7_put(mira_archive *a, const mira_hl7_received *m, int64_t *id,
                                   bool *duplicate, mira_error **err);

/* A kept message, as listed (borrowed: valid during the callback). */
typedef struct mira_hl7_stored {
    int64_t id;
    const char *received_at; /* UTC ISO 8601 */
    const char *peer, *sender, *control_id, *message_type, *version, *ack_code, *error;
    const char *text; /* the message (decoded again when it was not kept as text) */
    size_t len;
    int64_t duplicates; /* how many times it came again */
    const char *processed_at;  /* when it was acted on (mira_archive_hl7_apply), or NULL */
    const char *process_error; /* why it was not acted on (or only partly), or NULL */
} mira_hl7_stored;

typedef bool (*mira_hl7_stored_fn)(void *ctx, const mira_hl7_stored *m);

typedef struct mira_hl7_list_options {
    const char *ack_code;   /* only these (AA, AE, AR), or NULL: all */
    const char *control_id; /* only this MSH-10, or NULL */
    int64_t after_id;       /* ids above this one (0: from the first) */
    size_t limit;           /* at most this many (0: no limit) */
} mira_hl7_list_options;

/* In id order. */
MIRA_API bool mira_archive_hl7_list(mira_archive *a, const mira_hl7_list_options *o,
                                    mira_hl7_stored_fn fn, void *ctx, mira_error **err);

/*
 * Act on the accepted messages not acted on yet, oldest first, at most max (0: 1000); *done
 * how many (may be NULL). ADT A01, A04, A05, A08, A28, A31: the patient of PID-3 (its MR
 * identifier, else the first, with its assigning authority) made or updated (an empty field
 * leaves a value as it was, "" clears it), with every identifier of PID-3; A40 also marks the
 * patient of MRG-1 merged into it. ORM^O01, OMI^O23: by ORC-1, NW, XO and SC make (or remake)
 * the order's worklist entry (source "hl7", keyed by the placer order number), CA, DC, OC and
 * CR remove it. ORU^R01: the report (OBX text in order) kept as the next version for its
 * accession number (OBR-18, else the filler order number), with OBR-25's status. Orders and
 * reports make their patient when it is new. A message that cannot be acted on is marked so
 * (process_error) and not tried again; false only when the index fails.
 */
MIRA_API bool mira_archive_hl7_apply(mira_archive *a, size_t max, size_t *done,
                                     mira_error **err);

/*
 * An ORU^R01 (HL7 v2.5, UTF-8) carrying the analysis results of a study of the archive: PID the
 * study's patient (ID and issuer, name, birth date, sex from the index), OBR the study (its
 * accession number in OBR-3 and OBR-18, "IBSI^Radiomics features^L", final), ZDS-1 its Study
 * Instance UID (IHE), then one OBX per result, in order: NM, the IBSI tag as its identifier in
 * coding system "IBSI", the value (a NaN: no value, status X). receiver: "APP^FACILITY" for
 * MSH-5/MSH-6, or NULL. Owned text, *len its length; MIRA_ERR_NOT_FOUND for an unknown study.
 */
MIRA_API char *mira_hl7_results_message(mira_archive *a, const char *study_uid,
                                        const mira_feature *results, size_t n,
                                        const char *receiver, size_t *len, mira_error **err);

/*
 * The patient record as JSON (owned; *len its length, may be NULL): {"patient": {patient_id,
 * issuer, name, birth_date, sex, address, phone, created_at, updated_at, from_hl7},
 * "identifiers": [{id, issuer, type}] (type MERGED: an identifier merged into this patient),
 * "studies": [...] (the DICOM index), "orders": [...] (worklist entries, with the study each
 * is linked to by Study Instance UID or accession number), "reports": [...] (every version,
 * with the study of its accession number)}. The patient is found by identifier (and issuer,
 * NULL: any), among the identifiers of PID-3 too; a merged patient's record is its
 * survivor's. MIRA_ERR_NOT_FOUND when nothing is known of it.
 */
MIRA_API char *mira_patient_record(mira_archive *a, const char *patient_id, const char *issuer,
                                   size_t *len, mira_error **err);

/* ------------------------------------------------------------------ the MLLP server */

typedef struct mira_hl7_server mira_hl7_server;

typedef struct mira_hl7_server_options {
    mira_archive *archive; /* required */
    const char *bind;      /* NULL or "": every address */
    int port;              /* 0: a free one (mira_hl7_server_port) */
    bool tls;              /* TLS on that port, with the files below */
    const char *tls_cert, *tls_key, *tls_ca;
    bool tls_verify_peer;
    int max_connections;   /* at once (default 64); more are closed at once, logged */
    int idle_seconds;      /* a connection silent this long is closed (default 600) */
    size_t max_message;    /* longest message (default 16 MiB); a longer one gets an AR */
    const char *app, *facility; /* MSH-3 and MSH-4 of the ACKs (default "MIRA", "") */
    mira_log_fn log; /* NULL: none */
    void *log_ctx;
} mira_hl7_server_options;

MIRA_API void mira_hl7_server_options_init(mira_hl7_server_options *o);
/* Listen, and serve on threads of the server's own until mira_hl7_server_free (which stops
 * them, closing the connections between messages, and waits for them). */
MIRA_API mira_hl7_server *mira_hl7_server_new(const mira_hl7_server_options *o,
                                              mira_error **err);
MIRA_API int mira_hl7_server_port(const mira_hl7_server *s);
MIRA_API void mira_hl7_server_free(mira_hl7_server *s);

/*
 * What the server answers to one message it received (used by the server; exposed for the
 * tests and for tools): checks it, keeps it in the archive (a NULL archive: only checks), and
 * returns the ACK's text (owned), *code the MSA-1 it carries.
 */
MIRA_API char *mira_hl7_receive(mira_archive *a, const char *text, size_t len, bool oversize,
                                const char *peer, const char *app, const char *facility,
                                const char **code, size_t *ack_len, mira_error **err);

/* ------------------------------------------------------------------ the MLLP client */

typedef struct mira_hl7_client mira_hl7_client;

typedef struct mira_hl7_client_options {
    const char *host;
    int port;
    int timeout_ms;       /* to connect, and to wait for each ACK (default 30000) */
    bool tls;             /* TLS, with these (the CA: the peer's certificate must chain to it) */
    const char *tls_ca, *tls_cert, *tls_key;
    bool tls_no_verify;   /* accept any certificate (encryption only) */
} mira_hl7_client_options;

MIRA_API mira_hl7_client *mira_hl7_connect(const mira_hl7_client_options *o, mira_error **err);
/* Send one message (framed here) and wait for the peer's answer: the ACK's text (owned, *len
 * its length). MIRA_ERR_IO when the connection fails or the time runs out. */
MIRA_API char *mira_hl7_client_send(mira_hl7_client *c, const char *text, size_t len,
                                    size_t *ack_len, mira_error **err);
MIRA_API void mira_hl7_client_close(mira_hl7_client *c);

#ifdef __cplusplus
}
#endif

#endif
