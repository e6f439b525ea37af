/* Decode benchmark, mira side: every frame of every file of a list, through the public API. */
#include <mira/mira.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

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
            cap = cap ? 2 * cap : 64;
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

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The same checksum on every side, outside the clock: the sum of v + v * v over every decoded
 * sample, v masked to Bits Stored. It does not depend on the order of the samples (planar or
 * interleaved) nor on what a decoder leaves above Bits Stored, so lossless decodings of the
 * same file agree across libraries. */
static uint64_t checksum(const uint8_t *p, size_t len, size_t sample_bytes, unsigned bits_stored)
{
    uint64_t mask = bits_stored >= 32 ? 0xFFFFFFFFu : (1u << bits_stored) - 1, sum = 0;
    if (sample_bytes == 1) {
        for (size_t i = 0; i < len; i++) {
            uint64_t v = p[i] & mask;
            sum += v + v * v;
        }
    } else if (sample_bytes == 2) {
        for (size_t i = 0; i + 1 < len; i += 2) {
            uint64_t v = ((uint64_t)p[i] | (uint64_t)p[i + 1] << 8) & mask;
            sum += v + v * v;
        }
    } else {
        for (size_t i = 0; i + 3 < len; i += 4) {
            uint64_t v = ((uint64_t)p[i] | (uint64_t)p[i + 1] << 8 | (uint64_t)p[i + 2] << 16 |
                          (uint64_t)p[i + 3] << 24) &
                         mask;
            sum += v + v * v;
        }
    }
    return sum;
}

/* One output buffer, grown as needed and reused: the peers decode into reused buffers too
 * (GDCM's GetBuffer into ours), so no side pays for first-touch page faults per file. */
static uint8_t *buffer;
static size_t buffer_len;

static bool reserve(size_t len)
{
    if (len <= buffer_len)
        return true;
    uint8_t *grown = realloc(buffer, len);
    if (!grown)
        return false;
    memset(grown, 0, len); /* fault the pages in once, outside any clock that matters */
    buffer = grown;
    buffer_len = len;
    return true;
}

typedef struct result {
    bool unsupported;
    char note[256];
    size_t frames;
    uint64_t bytes;
    uint64_t checksum;
} result;

/* Decode every frame of an open file into `buffer`. Returns false on failure (reported). */
static bool decode_file(const mira_file *f, const char *path, int threads, result *r,
                        size_t *out_len, size_t *sample_bytes, unsigned *bits_stored)
{
    mira_error *err = NULL;
    mira_pixels *px = mira_pixels_open_file(f, &err);
    if (!px) {
        if (mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED) {
            r->unsupported = true;
            snprintf(r->note, sizeof r->note, "%s", mira_error_get_message(err));
        } else {
            fprintf(stderr, "mira_decode: %s: %s\n", path, mira_error_get_message(err));
        }
        mira_error_free(err);
        return false;
    }
    const mira_pixel_desc *d = mira_pixels_decoded(px);
    size_t len = mira_pixel_frame_bytes(d) * d->frames;
    if (!reserve(len)) {
        fprintf(stderr, "mira_decode: %s: out of memory (%zu bytes)\n", path, len);
        mira_pixels_free(px);
        return false;
    }
    if (!mira_pixels_decode_all(px, buffer, len, threads, &err)) {
        if (mira_error_get_code(err) == MIRA_ERR_UNSUPPORTED) {
            r->unsupported = true;
            snprintf(r->note, sizeof r->note, "%s", mira_error_get_message(err));
        } else {
            fprintf(stderr, "mira_decode: %s: %s\n", path, mira_error_get_message(err));
        }
        mira_error_free(err);
        mira_pixels_free(px);
        return false;
    }
    r->frames += d->frames;
    r->bytes += len;
    *out_len = len;
    *sample_bytes = mira_pixel_sample_bytes(d);
    *bits_stored = d->bits_stored;
    mira_pixels_free(px);
    return true;
}

int main(int argc, char **argv)
{
    int threads = 1;
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--threads") == 0) {
        threads = atoi(argv[a + 1]);
        a += 2;
    }
    if (argc - a != 2 || (strcmp(argv[a], "file") != 0 && strcmp(argv[a], "decode") != 0) ||
        threads < 0) {
        fprintf(stderr,
                "usage: mira_decode [--threads N] file|decode LIST\n"
                "Decodes every frame of every file named in LIST (one path a line) with\n"
                "mira_pixels_decode_all and N threads (default 1; 0: one per core).\n"
                "file: the clock covers reading each file and decoding it; decode: every file\n"
                "is read (and its pages made resident) first, the clock covers decoding only.\n"
                "Prints one line: transfer syntax, files, frames, MB decoded (10^6 bytes),\n"
                "seconds, MB/s, CPU seconds, checksum; mb_per_s=- if mira has no decoder.\n");
        return 2;
    }
    bool whole_file = strcmp(argv[a], "file") == 0;
    size_t n = 0;
    char **paths = read_list(argv[a + 1], &n);
    if (!paths) {
        fprintf(stderr, "mira_decode: %s: %s\n", argv[a + 1], strerror(errno));
        return 1;
    }

    mira_file **files = calloc(n ? n : 1, sizeof *files);
    if (!files)
        return 3;
    char ts[72] = "?";
    size_t failures = 0;
    result r = {0};
    /* Outside the clock: the transfer syntax (first file) and, for decode, every file read. */
    for (size_t i = 0; i < n; i++) {
        if (whole_file && i > 0)
            break;
        mira_error *err = NULL;
        files[i] = mira_file_read(paths[i], NULL, &err);
        if (!files[i]) {
            fprintf(stderr, "mira_decode: %s: %s\n", paths[i], mira_error_get_message(err));
            mira_error_free(err);
            return 1;
        }
        if (i == 0)
            snprintf(ts, sizeof ts, "%s", mira_file_transfer_syntax(files[0]));
        /* The output buffer sized (and its pages faulted in) for the first file, as for the
         * others in decode mode: a set of one multi-frame file would otherwise time the
         * first touch of 50 MB of output, not the decoding. */
        mira_pixels *px = i == 0 || !whole_file ? mira_pixels_open_file(files[i], NULL) : NULL;
        if (px) {
            const mira_pixel_desc *d = mira_pixels_decoded(px);
            if (!reserve(mira_pixel_frame_bytes(d) * d->frames))
                return 3;
            mira_pixels_free(px);
        }
        if (!whole_file) {
            /* Make the mapped pixel data resident, as the peers' reads copy it into memory. */
            mira_element *pd = mira_dataset_get(mira_file_dataset(files[i]), 0x7FE00010u);
            size_t len = 0, frags = pd ? mira_element_fragment_count(pd) : 0;
            volatile uint8_t sink = 0;
            const uint8_t *p = pd ? mira_element_bytes(pd, &len) : NULL;
            for (size_t off = 0; p && off < len; off += 4096)
                sink += p[off];
            for (size_t k = 0; k < frags; k++) {
                p = mira_element_fragment(pd, k, &len);
                for (size_t off = 0; p && off < len; off += 4096)
                    sink += p[off];
            }
            (void)sink;
        }
    }
    if (whole_file && files[0]) {
        mira_file_free(files[0]);
        files[0] = NULL;
    }

    double seconds = 0, cpu = 0;
    for (size_t i = 0; i < n && !r.unsupported; i++) {
        size_t len = 0, sb = 1;
        unsigned bits = 8;
        double t0 = now(), c0 = cpu_now();
        mira_file *f = files[i];
        if (whole_file) {
            mira_error *err = NULL;
            f = mira_file_read(paths[i], NULL, &err);
            if (!f) {
                fprintf(stderr, "mira_decode: %s: %s\n", paths[i], mira_error_get_message(err));
                mira_error_free(err);
                failures++;
                continue;
            }
        }
        bool ok = decode_file(f, paths[i], threads, &r, &len, &sb, &bits);
        if (whole_file)
            mira_file_free(f);
        seconds += now() - t0;
        cpu += cpu_now() - c0;
        if (ok)
            r.checksum += checksum(buffer, len, sb, bits);
        else if (!r.unsupported)
            failures++;
    }
    for (size_t i = 0; i < n; i++)
        mira_file_free(files[i]);
    free(files);

    double mb = (double)r.bytes / 1e6;
    if (r.unsupported) {
        /* The note is one line with no '"' of its own: the script quotes it. */
        for (char *c = r.note; *c; c++)
            if (*c == '"' || *c == '\n')
                *c = '\'';
        printf("mira ts=%s mode=%s threads=%d files=%zu mb=- seconds=- mb_per_s=- "
               "note=\"%s\"\n",
               ts, argv[a], threads, n, r.note);
    } else {
        printf("mira ts=%s mode=%s threads=%d files=%zu frames=%zu mb=%.3f seconds=%.6f "
               "mb_per_s=%.1f cpu_s=%.6f checksum=%" PRIu64 " failures=%zu\n",
               ts, argv[a], threads, n, r.frames, mb, seconds, seconds > 0 ? mb / seconds : 0.0,
               cpu, r.checksum, failures);
    }
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(buffer);
    return failures ? 1 : 0;
}
