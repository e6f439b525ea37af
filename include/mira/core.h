/* mira core: errors, allocation and small utilities shared by every module. */
#ifndef MIRA_CORE_H
#define MIRA_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MIRA_API __attribute__((visibility("default")))
#define MIRA_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MIRA_API
#define MIRA_PRINTF(f, a)
#endif

/* Error codes. Append only: never renumber, every code keeps its value. */
typedef enum mira_error_code {
    MIRA_OK = 0,
    MIRA_ERR_NOMEM = 1,       /* allocation failed */
    MIRA_ERR_IO = 2,          /* a system call on a file or socket failed */
    MIRA_ERR_INVALID = 3,     /* the input is malformed (file, message, JSON...) */
    MIRA_ERR_UNSUPPORTED = 4, /* well-formed, but a feature mira does not handle */
    MIRA_ERR_NOT_FOUND = 5,   /* a looked-up thing does not exist */
    MIRA_ERR_ARGUMENT = 6,    /* the caller passed a bad argument */
    MIRA_ERR_LIMIT = 7,       /* a size or count limit was exceeded */
    MIRA_ERR_CONFLICT = 8,    /* the thing exists already, or changed under us (a duplicate refused) */
} mira_error_code;

/*
 * An error: a code, a short summary and a message naming the file, offset or
 * field. Every fallible call takes an optional `mira_error **err`; on failure
 * it sets *err (if err is not NULL) and the caller owns it: free it with
 * mira_error_free(). Setting an error on a non-NULL *err is a bug.
 */
typedef struct mira_error mira_error;

MIRA_API mira_error_code mira_error_get_code(const mira_error *err);
MIRA_API const char *mira_error_get_summary(const mira_error *err);
MIRA_API const char *mira_error_get_message(const mira_error *err);
/* _free(NULL) is a no-op; the preallocated out-of-memory error is never freed. */
MIRA_API void mira_error_free(mira_error *err);
/* Set *err (if err is not NULL). The message is formatted like printf. */
MIRA_API void mira_error_set(mira_error **err, mira_error_code code, const char *summary,
                             const char *fmt, ...) MIRA_PRINTF(4, 5);
/* Prepend context ("reading x.dcm: ") to an existing error's message. */
MIRA_API void mira_error_prefix(mira_error **err, const char *fmt, ...) MIRA_PRINTF(2, 3);
MIRA_API const char *mira_error_code_name(mira_error_code code);

/*
 * Allocation. Everything in mira allocates through these, so that tests can
 * make allocation fail and so that large buffers are counted.
 */
MIRA_API void *mira_malloc(size_t size);
MIRA_API void *mira_calloc(size_t n, size_t size);
MIRA_API void *mira_realloc(void *ptr, size_t size);
MIRA_API void mira_free(void *ptr);
MIRA_API char *mira_strdup(const char *s);
MIRA_API char *mira_strndup(const char *s, size_t n);
/* Test hook: the n-th allocation from now (1-based) and every later one fail; 0 disables. */
MIRA_API void mira_alloc_fail_after(long n);

/* Base64 text (RFC 4648, padded) of len bytes; caller frees with mira_free; NULL on OOM. */
MIRA_API char *mira_base64_encode(const void *data, size_t len, size_t *out_len);

/* Log levels of the messages a server reports (DIMSE, HTTP). */
typedef enum mira_log_level {
    MIRA_LOG_INFO = 0,
    MIRA_LOG_WARNING = 1,
    MIRA_LOG_ERROR = 2,
} mira_log_level;

/* Told of each event worth logging (one line, borrowed). Called from the server's threads,
 * several at once: it must be thread-safe. */
typedef void (*mira_log_fn)(void *ctx, mira_log_level level, const char *message);

/* The library's version string, e.g. "0.1.0". */
MIRA_API const char *mira_version(void);

#ifdef __cplusplus
}
#endif
#endif
