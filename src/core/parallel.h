/* A parallel for-loop over a fixed number of threads (frames, slices, blocks). */
#ifndef MIRA_CORE_PARALLEL_H
#define MIRA_CORE_PARALLEL_H

#include "mira/core.h"

/* Number of online cores (at least 1). */
int mira__cpu_count(void);

/*
 * Run fn(ctx, i) for i in [0, n) on up to `threads` threads (0: one per core; never more
 * than n). Items are handed out one at a time, so uneven items balance. fn returns false
 * to stop the loop early (items not yet started are skipped); the call returns false if any
 * fn did. With one thread (or n == 1) everything runs on the caller's thread.
 */
bool mira__parallel_for(size_t n, int threads, bool (*fn)(void *ctx, size_t i), void *ctx);

#endif
