/* Fuzz target: pixel data around the codecs (attributes, frames in fragments, offset tables,
 * native layouts, LUTs, palettes, rendering, transcoding) from a whole DICOM file. */
#include <mira/mira.h>

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    mira_error *err = NULL;
    mira_file *f = mira_file_read_memory(data, size, NULL, false, &err);
    mira_error_free(err);
    if (!f)
        return 0;
    err = NULL;
    mira_pixels *px = mira_pixels_open_file(f, &err);
    mira_error_free(err);
    if (px) {
        const mira_pixel_desc *d = mira_pixels_decoded(px);
        size_t fb = mira_pixel_frame_bytes(d);
        /* Bounded work: a few frames of at most 4 MiB each. */
        if (fb <= (4u << 20)) {
            uint8_t *buf = mira_malloc(fb);
            uint32_t frames = d->frames < 4 ? d->frames : 4;
            for (uint32_t i = 0; buf && i < frames; i++) {
                err = NULL;
                mira_pixels_decode_frame(px, i, buf, fb, &err);
                mira_error_free(err);
            }
            mira_free(buf);
            mira_render_options opt;
            mira_render_options_init(&opt);
            for (int w = 0; w < 3; w++) {
                opt.window = w == 0 ? MIRA_WINDOW_AUTO
                                    : (w == 1 ? MIRA_WINDOW_NONE : MIRA_WINDOW_VOI_LUT);
                mira_rendered r;
                err = NULL;
                if (mira_pixels_render(px, &opt, &r, &err)) {
                    uint8_t *png;
                    size_t len;
                    if (r.rows * (size_t)r.columns <= 65536 && mira_png_encode(&r, &png, &len, NULL))
                        mira_free(png);
                    mira_rendered_free(&r);
                }
                mira_error_free(err);
            }
        }
        bool small = fb <= (256u << 10) && d->frames <= 4;
        mira_pixels_free(px);
        if (small) {
            const char *targets[] = {"1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1"};
            for (int t = 0; t < 2; t++) {
                err = NULL;
                if (mira_file_transcode(f, targets[t], 1, &err)) {
                    uint8_t *out;
                    size_t len;
                    mira_error_free(err);
                    err = NULL;
                    if (mira_file_write_memory(f, targets[t], &out, &len, &err))
                        mira_free(out);
                }
                mira_error_free(err);
            }
        }
    }
    mira_file_free(f);
    return 0;
}
