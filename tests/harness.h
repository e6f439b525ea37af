/* A tiny unit-test harness: TEST(name) functions, CHECK macros, one process per test file. */
#ifndef MIRA_TEST_HARNESS_H
#define MIRA_TEST_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef void (*mira_test_fn)(void);
void mira_test_register(const char *name, mira_test_fn fn);
extern int mira_test_failures;

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        mira_test_register(#name, test_##name);                                                    \
    }                                                                                              \
    static void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            mira_test_failures++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, \
                    va_, vb_);                                                                     \
            mira_test_failures++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                               \
            mira_test_failures++;                                                                  \
        }                                                                                          \
    } while (0)

/* Path of a file under tests/data (MIRA_TEST_DATA); static buffer. */
const char *mira_test_data(const char *rel);

#endif
