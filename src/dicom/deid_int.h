/* Internal: PS3.15 Table E.1-1 as generated into deid_table.c, and its lookup. */
#ifndef MIRA_DICOM_DEID_INT_H
#define MIRA_DICOM_DEID_INT_H

#include "mira/deid.h"

/* The Basic Profile column, combinations included. */
typedef enum mira__deid_basic {
    MIRA__DEID_D = 1,
    MIRA__DEID_Z,
    MIRA__DEID_X,
    MIRA__DEID_K,
    MIRA__DEID_C,
    MIRA__DEID_U,
    MIRA__DEID_ZD,  /* Z/D */
    MIRA__DEID_XZ,  /* X/Z */
    MIRA__DEID_XD,  /* X/D */
    MIRA__DEID_XZD, /* X/Z/D */
    MIRA__DEID_XZU, /* X/Z/U*: a sequence of references, its UIDs replaced */
} mira__deid_basic;

/* The option columns, in the order of mira__deid_entry.opts. */
typedef enum mira__deid_option {
    MIRA__DEID_OPT_SAFE_PRIVATE = 0,
    MIRA__DEID_OPT_UIDS,
    MIRA__DEID_OPT_DEVICE,
    MIRA__DEID_OPT_INSTITUTION,
    MIRA__DEID_OPT_PATIENT,
    MIRA__DEID_OPT_FULL_DATES,
    MIRA__DEID_OPT_MODIFIED_DATES,
    MIRA__DEID_OPT_CLEAN_DESC,
    MIRA__DEID_OPT_CLEAN_STRUCT,
    MIRA__DEID_OPT_CLEAN_GRAPH,
    MIRA__DEID_OPT_COUNT
} mira__deid_option;

typedef struct mira__deid_entry {
    mira_tag tag;
    mira_tag mask; /* bits that must equal tag (0xFFFFFFFF except for repeating groups) */
    uint8_t basic; /* a mira__deid_basic */
    char opts[MIRA__DEID_OPT_COUNT + 1]; /* per option: 'K', 'C', 'X' or '-' */
    bool supplement; /* from scripts/deid_supplement.tsv rather than the extraction */
    const char *name;
} mira__deid_entry;

extern const mira__deid_entry mira__deid_table[];
extern const size_t mira__deid_table_count;
extern const mira__deid_entry mira__deid_repeating[];
extern const size_t mira__deid_repeating_count;
extern const mira__deid_entry mira__deid_private;

/* The row for a tag: exact rows, then the repeating groups, then the private row for odd
 * groups; NULL if the table does not list the attribute. Borrowed, static. */
const mira__deid_entry *mira__deid_find(mira_tag tag);

/* The action the options make of a row: one of D, Z, X, K, C, U (combinations resolved, see
 * docs/internals/deid.md). */
mira__deid_basic mira__deid_resolve(const mira__deid_entry *e, const mira_deid_options *o);

#endif
