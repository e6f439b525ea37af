/* Fuzz target: the NIfTI reader (header through the nifti library, sizes, data, geometry). */
#include <mira/mira.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Small inputs only: a gzip stream inflates at most about 1032 times, so the reader's size
 * check bounds what a 64 KiB input can make it allocate (some 66 MB). */
#define MAX_INPUT (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    /* the library picks plain or gzip reading from the name */
    bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_nifti_%ld.nii%s", (long)getpid(), gz ? ".gz" : "");
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    bool ok = fwrite(data, 1, size, f) == size;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(path);
        return 0;
    }
    mira_error *err = NULL;
    mira_image *img = mira_nifti_read(path, &err);
    unlink(path);
    if (!img) {
        /* every failure must explain itself */
        if (!err || !mira_error_get_message(err)[0])
            __builtin_trap();
        mira_error_free(err);
        return 0;
    }
    /* every voxel must be readable, and the geometry usable */
    double sum = 0;
    size_t n = mira_image_voxels(img);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < img->channels; c++)
            sum += mira_image_get(img, i, c);
    double idx[3] = {1, 2, 3}, p[3];
    mira_image_index_to_point(img, idx, p);
    if (img->channels < 1 || img->channels > 4 || mira_image_bytes(img) == 0)
        __builtin_trap();
    volatile double sink = sum + p[0];
    (void)sink;
    mira_image_free(img);
    return 0;
}
