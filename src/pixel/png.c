/* PNG output of rendered frames (libpng). */
#include "core/buf.h"
#include "core/fileio.h"
#include "mira/pixel.h"

#include <png.h>
#include <setjmp.h>
#include <string.h>

typedef struct png_ctx {
    mira__buf out;
    char message[200];
} png_ctx;

static void on_write(png_structp png, png_bytep data, size_t len)
{
    png_ctx *c = png_get_io_ptr(png);
    mira__buf_append(&c->out, data, len);
}

static void on_flush(png_structp png)
{
    (void)png;
}

static void on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->message, sizeof c->message, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

bool mira_png_encode(const mira_rendered *r, uint8_t **out, size_t *out_len, mira_error **err)
{
    if (!r || !r->data || !r->rows || !r->columns || (r->channels != 1 && r->channels != 3)) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad image", "nothing to encode as PNG");
        return false;
    }
    png_ctx c;
    memset(&c, 0, sizeof c);
    mira__buf_init(&c.out);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, NULL);
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "starting a PNG");
        return false;
    }
    /* volatile: read after longjmp */
    png_bytep *volatile rows = mira_malloc(r->rows * sizeof *rows);
    if (!rows || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        mira_free(rows);
        mira__buf_cleanup(&c.out);
        mira_error_set(err, rows ? MIRA_ERR_INVALID : MIRA_ERR_NOMEM, "Cannot encode PNG", "%s",
                       c.message[0] ? c.message : "out of memory");
        return false;
    }
    png_set_write_fn(png, &c, on_write, on_flush);
    /* Fast settings: rendered medical images compress well with the default filter at a low
     * zlib level; the result is written once and read often. */
    png_set_compression_level(png, 3);
    png_set_IHDR(png, info, r->columns, r->rows, 8,
                 r->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (uint32_t y = 0; y < r->rows; y++)
        rows[y] = r->data + (size_t)y * r->columns * (size_t)r->channels;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    mira_free(rows);
    if (c.out.failed) {
        mira__buf_cleanup(&c.out);
        mira_error_set(err, MIRA_ERR_NOMEM, "Out of memory", "encoding a PNG");
        return false;
    }
    *out = (uint8_t *)mira__buf_steal(&c.out, out_len);
    return *out != NULL;
}

bool mira_png_write(const char *path, const mira_rendered *r, mira_error **err)
{
    uint8_t *data;
    size_t len;
    if (!mira_png_encode(r, &data, &len, err))
        return false;
    bool ok = mira__write_file_atomic(path, data, len, err);
    mira_free(data);
    return ok;
}
