/* mira's implementation class UID and version name, written in every file meta group. */
#ifndef MIRA_DICOM_IMPL_H
#define MIRA_DICOM_IMPL_H

/* a UUID-derived 2.25 root (PS3.5 B.2) */
#define MIRA_IMPLEMENTATION_UID "2.25.126519959502276465172202146593746542661"
#define MIRA_IMPLEMENTATION_NAME "MIRA_010"

#endif
