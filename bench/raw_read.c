/* Read benchmark, the ceiling: each file read whole and its bytes summed, nothing parsed. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The same byte sum as mira_read's: every byte read once, eight at a time. */
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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "full") != 0) {
        fprintf(stderr,
                "usage: raw_read full LIST\n"
                "Reads every file named in LIST whole and sums its bytes, parsing nothing:\n"
                "what moving the bytes alone costs, the ceiling of any full read.\n");
        return 2;
    }
    FILE *list = fopen(argv[2], "r");
    if (!list) {
        fprintf(stderr, "raw_read: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    char **paths = NULL;
    size_t n = 0, cap = 0;
    char line[4096];
    while (fgets(line, sizeof line, list)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            paths = realloc(paths, cap * sizeof *paths);
            if (!paths)
                return 3;
        }
        if (!(paths[n++] = strdup(line)))
            return 3;
    }
    fclose(list);

    size_t buf_cap = 1 << 20;
    uint8_t *buf = malloc(buf_cap);
    uint64_t checksum = 0;
    size_t failures = 0;
    double t0 = now();
    for (size_t i = 0; i < n && buf; i++) {
        int fd = open(paths[i], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            failures++;
            if (fd >= 0)
                close(fd);
            continue;
        }
        if ((size_t)st.st_size > buf_cap) {
            free(buf);
            buf_cap = (size_t)st.st_size;
            if (!(buf = malloc(buf_cap)))
                break;
        }
        size_t got = 0;
        ssize_t r;
        while (got < (size_t)st.st_size && (r = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
            got += (size_t)r;
        close(fd);
        checksum += sum_bytes(buf, got);
    }
    double seconds = now() - t0;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("raw full files=%zu seconds=%.6f files_per_s=%.1f peak_rss_kb=%ld checksum=%" PRIu64
           " failures=%zu\n",
           n, seconds, seconds > 0 ? (double)n / seconds : 0.0, ru.ru_maxrss, checksum, failures);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(buf);
    return failures || !buf ? 1 : 0;
}
