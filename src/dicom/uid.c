/* New UIDs: 2.25 followed by a random 128-bit number in decimal (PS3.5 B.2, ISO/IEC 9834-8). */
#include "mira/dicom.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void mira_uid_generate(char out[65])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        /* no entropy source: time, process and a counter still make it unique here */
        static unsigned long counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long c = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
        uint64_t a = (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40),
                 b = (uint64_t)ts.tv_nsec ^ c << 32;
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 8);
    }
    /* a version 4 (random) UUID: set the version and variant bits */
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
    unsigned __int128 v = 0;
    for (int i = 0; i < 16; i++)
        v = v << 8 | r[i];
    char digits[40];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    memcpy(out, "2.25.", 5);
    for (int i = 0; i < n; i++)
        out[5 + i] = digits[n - 1 - i];
    out[5 + n] = 0;
}
