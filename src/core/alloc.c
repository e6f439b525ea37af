/* Allocation wrappers: one place to count memory and to inject failures in tests. */
#include "mira/core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown; /* 0: never fail */

void mira_alloc_fail_after(long n)
{
    atomic_store(&fail_countdown, n);
}

static bool should_fail(void)
{
    long v = atomic_load(&fail_countdown);
    if (v == 0)
        return false;
    if (v == 1)
        return true; /* stays at 1: every later allocation fails too */
    atomic_fetch_sub(&fail_countdown, 1);
    return false;
}

void *mira_malloc(size_t size)
{
    if (should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *mira_calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *mira_realloc(void *ptr, size_t size)
{
    if (should_fail())
        return NULL;
    return realloc(ptr, size ? size : 1);
}

void mira_free(void *ptr)
{
    free(ptr);
}

char *mira_strndup(const char *s, size_t n)
{
    char *d = mira_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *mira_strdup(const char *s)
{
    return mira_strndup(s, strlen(s));
}

const char *mira_version(void)
{
    return MIRA_VERSION_STRING;
}
