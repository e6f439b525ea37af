/* Runs every registered TEST of one test program and prints a summary line. */
#include "harness.h"

#include <stdlib.h>

int mira_test_failures;

static struct {
    const char *name;
    mira_test_fn fn;
} tests[512];
static int ntests;

void mira_test_register(const char *name, mira_test_fn fn)
{
    if (ntests < 512) {
        tests[ntests].name = name;
        tests[ntests].fn = fn;
        ntests++;
    }
}

const char *mira_test_data(const char *rel)
{
    static char path[4096];
    const char *dir = getenv("MIRA_TEST_DATA");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data", rel);
    return path;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < ntests; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        int before = mira_test_failures;
        tests[i].fn();
        if (mira_test_failures == before) {
            passed++;
            printf("ok   %s\n", tests[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", tests[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
