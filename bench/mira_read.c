/* Read benchmark, mira side: every file of a list read through the public API, header or full. */
#include <mira/mira.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Add up a value's bytes eight at a time: every byte is read, at memory speed, so the cost of
 * touching the data does not drown the cost of reading the file. Same code on every side. */
static uint64_t sum_bytes(const uint8_t *p, size_t len)
{
    uint64_t sum = 0, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        sum += w;
    }
    for (; i < len; i++)
        sum += p[i];
    return sum;
}

/* Sum every value byte of a data set, items and fragments included, so that a lazy reader
 * pays for each byte it claims to have read: the pages of a mapped file are touched here. */
static uint64_t touch(const mira_dataset *ds)
{
    uint64_t sum = 0;
    size_t count = mira_dataset_count(ds);
    for (size_t i = 0; i < count; i++) {
        const mira_element *e = mira_dataset_at(ds, i);
        size_t len = 0;
        const uint8_t *p = mira_element_bytes(e, &len);
        if (p)
            sum += sum_bytes(p, len);
        size_t items = mira_element_item_count(e);
        for (size_t k = 0; k < items; k++)
            sum += touch(mira_element_item(e, k));
        size_t frags = mira_element_fragment_count(e);
        for (size_t k = 0; k < frags; k++) {
            p = mira_element_fragment(e, k, &len);
            if (p)
                sum += sum_bytes(p, len);
        }
        sum += mira_element_tag(e);
    }
    return sum;
}

/* Make every page of every value resident in the process by reading one byte per 4 KiB: the
 * state a copying reader reaches after its copy, without the copy (mira maps the file). */
static uint64_t touch_pages(const mira_dataset *ds)
{
    uint64_t sum = 0;
    size_t count = mira_dataset_count(ds);
    for (size_t i = 0; i < count; i++) {
        const mira_element *e = mira_dataset_at(ds, i);
        size_t len = 0;
        const uint8_t *p = mira_element_bytes(e, &len);
        for (size_t off = 0; p && off < len; off += 4096)
            sum += p[off];
        if (p && len)
            sum += p[len - 1];
        size_t items = mira_element_item_count(e);
        for (size_t k = 0; k < items; k++)
            sum += touch_pages(mira_element_item(e, k));
        size_t frags = mira_element_fragment_count(e);
        for (size_t k = 0; k < frags; k++) {
            p = mira_element_fragment(e, k, &len);
            for (size_t off = 0; p && off < len; off += 4096)
                sum += p[off];
        }
        sum += mira_element_tag(e);
    }
    return sum;
}

/* The lines of a file, each a path; NULL on failure (errno set). */
static char **read_list(const char *path, size_t *n_out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char **paths = NULL;
    size_t n = 0, cap = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **grown = realloc(paths, cap * sizeof *paths);
            if (!grown)
                exit(3);
            paths = grown;
        }
        paths[n] = strdup(line);
        if (!paths[n])
            exit(3);
        n++;
    }
    fclose(f);
    *n_out = n;
    return paths;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "header") != 0 && strcmp(argv[1], "full") != 0 &&
                      strcmp(argv[1], "mapped") != 0)) {
        fprintf(stderr,
                "usage: mira_read header|full|mapped LIST\n"
                "Reads every file named in LIST (one path a line): header stops before the\n"
                "pixel data, full reads everything; each value byte is touched. mapped reads\n"
                "everything and makes every page of every value resident (one byte a page).\n"
                "Prints one line: files, seconds, files/s, peak RSS, checksum.\n");
        return 2;
    }
    bool header = strcmp(argv[1], "header") == 0;
    bool mapped = strcmp(argv[1], "mapped") == 0;
    size_t n = 0;
    char **paths = read_list(argv[2], &n);
    if (!paths) {
        fprintf(stderr, "mira_read: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }

    mira_read_options opt;
    mira_read_options_init(&opt);
    opt.stop_before_pixels = header;

    uint64_t checksum = 0;
    size_t failures = 0;
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        mira_error *err = NULL;
        mira_file *f = mira_file_read(paths[i], &opt, &err);
        if (!f) {
            if (failures++ < 5)
                fprintf(stderr, "mira_read: %s: %s\n", paths[i],
                        err ? mira_error_get_message(err) : "failed");
            mira_error_free(err);
            continue;
        }
        if (mapped) {
            checksum += touch_pages(mira_file_meta(f));
            checksum += touch_pages(mira_file_dataset(f));
        } else {
            checksum += touch(mira_file_meta(f));
            checksum += touch(mira_file_dataset(f));
        }
        mira_file_free(f);
    }
    double seconds = now() - t0;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("mira %s files=%zu seconds=%.6f files_per_s=%.1f peak_rss_kb=%ld checksum=%" PRIu64
           " failures=%zu\n",
           argv[1], n, seconds, seconds > 0 ? (double)n / seconds : 0.0, ru.ru_maxrss, checksum,
           failures);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    return failures ? 1 : 0;
}
