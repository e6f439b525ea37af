/* mira images: allocation, copies, voxel access and the index-to-patient geometry. */
#include "mira/image.h"

#include <string.h>

size_t mira_pixel_type_size(mira_pixel_type t)
{
    switch (t) {
    case MIRA_U8:
    case MIRA_I8:
        return 1;
    case MIRA_U16:
    case MIRA_I16:
        return 2;
    case MIRA_U32:
    case MIRA_I32:
    case MIRA_F32:
        return 4;
    case MIRA_F64:
        return 8;
    }
    return 0;
}

const char *mira_pixel_type_name(mira_pixel_type t)
{
    switch (t) {
    case MIRA_U8:
        return "u8";
    case MIRA_I8:
        return "i8";
    case MIRA_U16:
        return "u16";
    case MIRA_I16:
        return "i16";
    case MIRA_U32:
        return "u32";
    case MIRA_I32:
        return "i32";
    case MIRA_F32:
        return "f32";
    case MIRA_F64:
        return "f64";
    }
    return "?";
}

/* nx * ny * nz * channels * type size, or false if it overflows size_t. */
static bool data_bytes(mira_pixel_type type, int channels, const size_t n[3], size_t *out)
{
    size_t total = mira_pixel_type_size(type) * (size_t)channels;
    for (int a = 0; a < 3; a++) {
        if (n[a] != 0 && total > SIZE_MAX / n[a])
            return false;
        total *= n[a];
    }
    *out = total;
    return true;
}

static void identity_geometry(mira_image *img)
{
    for (int a = 0; a < 3; a++) {
        img->spacing[a] = 1.0;
        img->origin[a] = 0.0;
    }
    memset(img->direction, 0, sizeof img->direction);
    img->direction[0] = img->direction[4] = img->direction[8] = 1.0;
}

mira_image *mira_image_new(mira_pixel_type type, int channels, size_t nx, size_t ny, size_t nz,
                           mira_error **err)
{
    if (mira_pixel_type_size(type) == 0 || channels < 1 || channels > 4 || nx == 0 || ny == 0 ||
        nz == 0) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad image shape",
                       "cannot make a %zux%zux%zu image of type %d with %d channels", nx, ny, nz,
                       (int)type, channels);
        return NULL;
    }
    size_t n[3] = {nx, ny, nz}, bytes;
    /* the data size and voxel count must both fit (callers multiply voxels by channels) */
    if (!data_bytes(type, channels, n, &bytes)) {
        mira_error_set(err, MIRA_ERR_LIMIT, "Image too large",
                       "a %zux%zux%zu image with %d channels of %s overflows the address space", nx,
                       ny, nz, channels, mira_pixel_type_name(type));
        return NULL;
    }
    mira_image *img = mira_calloc(1, sizeof *img);
    void *data = img ? mira_calloc(1, bytes) : NULL;
    if (!data) {
        mira_free(img);
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "allocating a %zu-byte image", bytes);
        return NULL;
    }
    img->type = type;
    img->channels = channels;
    img->size[0] = nx;
    img->size[1] = ny;
    img->size[2] = nz;
    img->data = data;
    identity_geometry(img);
    return img;
}

void mira_image_free(mira_image *img)
{
    if (!img)
        return;
    mira_free(img->data);
    mira_free(img);
}

size_t mira_image_voxels(const mira_image *img)
{
    return img->size[0] * img->size[1] * img->size[2];
}

size_t mira_image_bytes(const mira_image *img)
{
    return mira_image_voxels(img) * (size_t)img->channels * mira_pixel_type_size(img->type);
}

mira_image *mira_image_clone(const mira_image *img, mira_error **err)
{
    mira_image *c =
        mira_image_new(img->type, img->channels, img->size[0], img->size[1], img->size[2], err);
    if (!c)
        return NULL;
    mira_image_copy_geometry(c, img);
    memcpy(c->data, img->data, mira_image_bytes(img));
    return c;
}

double mira_image_get(const mira_image *img, size_t index, int c)
{
    size_t i = index * (size_t)img->channels + (size_t)c;
    const void *p = img->data;
    switch (img->type) {
    case MIRA_U8:
        return ((const uint8_t *)p)[i];
    case MIRA_I8:
        return ((const int8_t *)p)[i];
    case MIRA_U16:
        return ((const uint16_t *)p)[i];
    case MIRA_I16:
        return ((const int16_t *)p)[i];
    case MIRA_U32:
        return ((const uint32_t *)p)[i];
    case MIRA_I32:
        return ((const int32_t *)p)[i];
    case MIRA_F32:
        return ((const float *)p)[i];
    case MIRA_F64:
        return ((const double *)p)[i];
    }
    return 0.0;
}

void mira_image_copy_geometry(mira_image *dst, const mira_image *src)
{
    memcpy(dst->spacing, src->spacing, sizeof dst->spacing);
    memcpy(dst->origin, src->origin, sizeof dst->origin);
    memcpy(dst->direction, src->direction, sizeof dst->direction);
}

void mira_image_index_to_point(const mira_image *img, const double idx[3], double point[3])
{
    for (int r = 0; r < 3; r++) {
        double v = img->origin[r];
        for (int a = 0; a < 3; a++)
            v += img->direction[3 * r + a] * img->spacing[a] * idx[a];
        point[r] = v;
    }
}
