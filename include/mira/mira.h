/* mira: the umbrella header of the public API. */
#ifndef MIRA_H
#define MIRA_H

#include "mira/core.h"
#include "mira/json.h"
#include "mira/dicom.h"
#include "mira/pixel.h"
#include "mira/image.h"
#include "mira/features.h"
#include "mira/archive.h"
#include "mira/accounts.h"
#include "mira/jobs.h"
#include "mira/worklist.h"
#include "mira/deid.h"
#include "mira/tls.h"
#include "mira/dimse.h"
#include "mira/web.h"
#include "mira/hl7.h"

#endif
