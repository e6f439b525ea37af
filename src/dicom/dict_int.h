/* The generated dictionary tables (scripts/gen_dict.py) that dict.c searches. Internal. */
#ifndef MIRA_DICOM_DICT_INT_H
#define MIRA_DICOM_DICT_INT_H

#include "mira/dicom.h"

/* dict_table.c: the standard dictionary. The first mira__dict_exact_count entries are exact
 * tags sorted by tag; the mira__dict_repeating_count after them are repeating-group entries
 * (50xx, 60xx, (0020,31xx)...) sorted by tag, which a tag matches if (tag ^ e.tag) & e.mask
 * is zero. */
extern const mira_dict_entry mira__dict_entries[];
extern const size_t mira__dict_exact_count;
extern const size_t mira__dict_repeating_count;
/* Indices into mira__dict_entries of every entry with a keyword, sorted by keyword (strcmp). */
extern const uint16_t mira__dict_keyword_index[];
extern const size_t mira__dict_keyword_count;

/* uid_table.c: the UID registry sorted by UID (strcmp). */
extern const mira_uid_entry mira__uid_entries[];
extern const size_t mira__uid_count;

/* private_table.c: creators sorted (strcmp); creator i owns mira__private_entries
 * [mira__private_creator_start[i], mira__private_creator_start[i + 1]), sorted by tag. The 'xx'
 * digits of a pattern such as (0029,xx10) are zero in the tag and in the mask. */
extern const char *const mira__private_creators[];
extern const uint32_t mira__private_creator_start[];
extern const size_t mira__private_creator_count;
extern const mira_dict_entry mira__private_entries[];

#endif
