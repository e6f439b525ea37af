/* Tests of NIfTI writing and reading: round trips of every pixel type and bad files. */
#include "harness.h"

#include <dirent.h>
#include <math.h>
#include <mira/mira.h>
#include <nifti/nifti1.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char path[512];
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/mira-test-nifti-XXXXXX");
        if (!mkdtemp(tmpdir))
            abort();
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(p, 1, n, f);
    fclose(f);
}

/* Files in the temporary folder whose name contains s. */
static int count_files(const char *s)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        n += strstr(de->d_name, s) != NULL;
    if (d)
        closedir(d);
    return n;
}

/* Rotation by 25 degrees about (1, 2, 3)/|.|, spacing (0.5, 1.25, 3), origin (-12, 40.5, 7). */
static void oblique(mira_image *img)
{
    double ax[3] = {1, 2, 3}, n = sqrt(14), t = 25 * M_PI / 180, c = cos(t), s = sin(t);
    for (int i = 0; i < 3; i++)
        ax[i] /= n;
    double x = ax[0], y = ax[1], z = ax[2];
    double r[9] = {c + x * x * (1 - c),     x * y * (1 - c) - z * s, x * z * (1 - c) + y * s,
                   y * x * (1 - c) + z * s, c + y * y * (1 - c),     y * z * (1 - c) - x * s,
                   z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)};
    memcpy(img->direction, r, sizeof r);
    img->spacing[0] = 0.5;
    img->spacing[1] = 1.25;
    img->spacing[2] = 3;
    img->origin[0] = -12;
    img->origin[1] = 40.5;
    img->origin[2] = 7;
}

/* Distinct values that use the type's range, extremes included. */
static void fill(mira_image *img)
{
    size_t n = mira_image_voxels(img) * (size_t)img->channels;
    uint8_t *p = img->data;
    for (size_t i = 0; i < n; i++) {
        double v = (double)((i * 2654435761u) % 1000) - 500.0;
        switch (img->type) {
        case MIRA_U8:
            ((uint8_t *)p)[i] = (uint8_t)(i * 7);
            break;
        case MIRA_I8:
            ((int8_t *)p)[i] = (int8_t)(i * 7);
            break;
        case MIRA_U16:
            ((uint16_t *)p)[i] = i == 0 ? 65535 : (uint16_t)(i * 977);
            break;
        case MIRA_I16:
            ((int16_t *)p)[i] = i == 0 ? -32768 : i == 1 ? 32767 : (int16_t)(v * 60);
            break;
        case MIRA_U32:
            ((uint32_t *)p)[i] = i == 0 ? 4294967295u : (uint32_t)(i * 2654435761u);
            break;
        case MIRA_I32:
            ((int32_t *)p)[i] = i == 0 ? INT32_MIN : (int32_t)(v * 4000000);
            break;
        case MIRA_F32:
            ((float *)p)[i] = (float)(v / 7.0);
            break;
        case MIRA_F64:
            ((double *)p)[i] = v / 7.0 + 1e-12;
            break;
        }
    }
}

static void check_same(const mira_image *a, const mira_image *b, double geom_tol)
{
    CHECK_EQ_INT(a->type, b->type);
    CHECK_EQ_INT(a->channels, b->channels);
    for (int k = 0; k < 3; k++) {
        CHECK_EQ_INT(a->size[k], b->size[k]);
        CHECK(fabs(a->spacing[k] - b->spacing[k]) <= geom_tol);
        CHECK(fabs(a->origin[k] - b->origin[k]) <= geom_tol);
    }
    for (int k = 0; k < 9; k++)
        CHECK(fabs(a->direction[k] - b->direction[k]) <= geom_tol);
    if (a->type == b->type && a->channels == b->channels && a->size[0] == b->size[0] &&
        a->size[1] == b->size[1] && a->size[2] == b->size[2])
        CHECK(memcmp(a->data, b->data, mira_image_bytes(a)) == 0);
}

static void round_trip(mira_pixel_type t, int channels, const char *name, bool nifti2)
{
    mira_image *img = mira_image_new(t, channels, 7, 5, 3, NULL);
    CHECK(img != NULL);
    if (!img)
        return;
    oblique(img);
    fill(img);
    const char *path = tmp_path(name);
    mira_error *err = NULL;
    CHECK(mira_nifti_write(img, path, nifti2, &err));
    if (err)
        fprintf(stderr, "%s\n", mira_error_get_message(err));
    mira_error_free(err);
    err = NULL;
    mira_image *back = mira_nifti_read(path, &err);
    CHECK(back != NULL);
    if (!back) {
        fprintf(stderr, "%s: %s\n", name, mira_error_get_message(err));
        mira_error_free(err);
        mira_image_free(img);
        return;
    }
    /* NIfTI-1 stores the sform in 32-bit floats */
    check_same(img, back, nifti2 ? 1e-9 : 1e-4);
    mira_image_free(back);
    mira_image_free(img);
}

TEST(round_trip_every_type)
{
    static const mira_pixel_type types[] = {MIRA_U8,  MIRA_I8,  MIRA_U16, MIRA_I16,
                                            MIRA_U32, MIRA_I32, MIRA_F32, MIRA_F64};
    char name[64];
    for (size_t t = 0; t < 8; t++) {
        for (int v = 0; v < 4; v++) {
            bool nifti2 = v & 1, gz = v & 2;
            snprintf(name, sizeof name, "rt_%s_%d.nii%s", mira_pixel_type_name(types[t]),
                     nifti2 ? 2 : 1, gz ? ".gz" : "");
            round_trip(types[t], 1, name, nifti2);
        }
    }
    CHECK_EQ_INT(count_files(".tmp."), 0); /* no temporary file left behind */
}

TEST(round_trip_channels)
{
    round_trip(MIRA_U8, 3, "rgb.nii", false);    /* RGB24 */
    round_trip(MIRA_U8, 3, "rgb2.nii.gz", true); /* RGB24, NIfTI-2 */
    round_trip(MIRA_I16, 2, "vec2.nii", false);  /* 5D vector */
    round_trip(MIRA_F32, 4, "vec4.nii.gz", false);
    round_trip(MIRA_U8, 4, "u8x4.nii", false);
}

/* The NIfTI-1 header of a file, read as raw bytes (nifti1.h's layout, little-endian host). */
static bool read_header(const char *path, nifti_1_header *h)
{
    FILE *f = fopen(path, "rb");
    bool ok = f && fread(h, 1, sizeof *h, f) == sizeof *h;
    if (f)
        fclose(f);
    return ok;
}

/* The qform's rotation from the quaternion, by the formula of nifti1.h's comments. */
static void qform_matrix(const nifti_1_header *h, double m[3][3])
{
    double b = h->quatern_b, c = h->quatern_c, d = h->quatern_d;
    double a = sqrt(fmax(0, 1 - (b * b + c * c + d * d)));
    double r[3][3] = {{a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)},
                      {2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)},
                      {2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b}};
    double qfac = h->pixdim[0] < 0 ? -1 : 1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            m[i][j] = r[i][j] * h->pixdim[j + 1] * (j == 2 ? qfac : 1);
}

TEST(header_fields)
{
    mira_image *img = mira_image_new(MIRA_I16, 1, 4, 3, 2, NULL);
    mira_image *rgb = mira_image_new(MIRA_U8, 3, 4, 3, 2, NULL);
    mira_image *vec = mira_image_new(MIRA_F32, 2, 4, 3, 2, NULL);
    CHECK(img && rgb && vec);
    if (!img || !rgb || !vec)
        return;
    oblique(img);
    CHECK(mira_nifti_write(img, tmp_path("hdr.nii"), false, NULL));
    CHECK(mira_nifti_write(rgb, tmp_path("hdr_rgb.nii"), false, NULL));
    CHECK(mira_nifti_write(vec, tmp_path("hdr_vec.nii"), false, NULL));
    nifti_1_header h;
    CHECK(read_header(tmp_path("hdr.nii"), &h));
    CHECK_EQ_INT(h.sizeof_hdr, 348);
    CHECK(memcmp(h.magic, "n+1", 4) == 0);
    CHECK(h.vox_offset == 352);
    CHECK_EQ_INT(h.datatype, NIFTI_TYPE_INT16);
    CHECK_EQ_INT(h.bitpix, 16);
    CHECK_EQ_INT(h.sform_code, NIFTI_XFORM_SCANNER_ANAT);
    CHECK_EQ_INT(h.qform_code, NIFTI_XFORM_SCANNER_ANAT);
    CHECK_EQ_INT(XYZT_TO_SPACE(h.xyzt_units), NIFTI_UNITS_MM);
    CHECK_EQ_INT(h.dim[0], 3);
    CHECK_EQ_INT(h.dim[1], 4);
    CHECK_EQ_INT(h.dim[2], 3);
    CHECK_EQ_INT(h.dim[3], 2);
    /* RAS = diag(-1, -1, 1) * LPS: column a of the matrix is +-spacing[a] * dir(a) */
    const float *srow[3] = {h.srow_x, h.srow_y, h.srow_z};
    double q[3][3];
    qform_matrix(&h, q);
    double qoff[3] = {h.qoffset_x, h.qoffset_y, h.qoffset_z};
    for (int r = 0; r < 3; r++) {
        double sign = r < 2 ? -1 : 1;
        for (int a = 0; a < 3; a++) {
            double want = sign * img->direction[3 * r + a] * img->spacing[a];
            CHECK(fabs(srow[r][a] - want) < 1e-5);
            CHECK(fabs(q[r][a] - want) < 1e-5);
        }
        CHECK(fabs(srow[r][3] - sign * img->origin[r]) < 1e-5);
        CHECK(fabs(qoff[r] - sign * img->origin[r]) < 1e-5);
    }
    CHECK(read_header(tmp_path("hdr_rgb.nii"), &h));
    CHECK(h.datatype == NIFTI_TYPE_RGB24 && h.bitpix == 24 && h.dim[0] == 3);
    CHECK(read_header(tmp_path("hdr_vec.nii"), &h));
    CHECK(h.datatype == NIFTI_TYPE_FLOAT32 && h.dim[0] == 5 && h.dim[4] == 1 && h.dim[5] == 2 &&
          h.intent_code == NIFTI_INTENT_VECTOR);
    /* the second channel is the second plane: voxel 0 of channel 1 at 352 + 24 * 4 */
    ((float *)vec->data)[1] = 42.5f;
    CHECK(mira_nifti_write(vec, tmp_path("hdr_vec.nii"), false, NULL));
    FILE *f = fopen(tmp_path("hdr_vec.nii"), "rb");
    float v = 0;
    CHECK(f && fseek(f, 352 + 24 * 4, SEEK_SET) == 0 && fread(&v, 4, 1, f) == 1 && v == 42.5f);
    if (f)
        fclose(f);
    mira_image_free(img);
    mira_image_free(rgb);
    mira_image_free(vec);
}

/* A valid NIfTI-1 header for a 4x4x4 int16 image (built from the specification). */
static nifti_1_header good_header(void)
{
    nifti_1_header h;
    memset(&h, 0, sizeof h);
    h.sizeof_hdr = 348;
    h.dim[0] = 3;
    for (int i = 1; i < 8; i++)
        h.dim[i] = i <= 3 ? 4 : 1;
    h.datatype = NIFTI_TYPE_INT16;
    h.bitpix = 16;
    for (int i = 0; i < 8; i++)
        h.pixdim[i] = 1;
    h.vox_offset = 352;
    h.xyzt_units = NIFTI_UNITS_MM;
    memcpy(h.magic, "n+1", 4);
    return h;
}

static void write_header_file(const char *name, const nifti_1_header *h, size_t data_bytes)
{
    size_t n = 352 + data_bytes;
    uint8_t *buf = calloc(1, n);
    if (!buf)
        abort();
    memcpy(buf, h, sizeof *h);
    for (size_t i = 352; i < n; i++)
        buf[i] = (uint8_t)i;
    write_bytes(tmp_path(name), buf, n);
    free(buf);
}

/* A file mira did not write: scaling and a qform-only geometry. */
TEST(reads_scaling_and_qform)
{
    nifti_1_header h = good_header();
    h.dim[1] = 3;
    h.dim[2] = 2;
    h.dim[3] = 2;
    h.scl_slope = 0.5f;
    h.scl_inter = -3;
    /* qform only: a 90-degree rotation about z (b = 0, c = 0, d = sin 45) */
    h.qform_code = NIFTI_XFORM_SCANNER_ANAT;
    h.quatern_d = (float)sqrt(0.5);
    h.qoffset_x = 10;
    h.qoffset_y = 20;
    h.qoffset_z = 30;
    h.pixdim[1] = 2;
    h.pixdim[2] = 3;
    h.pixdim[3] = 4;
    uint8_t buf[352 + 24];
    memset(buf, 0, sizeof buf);
    memcpy(buf, &h, sizeof h);
    for (int i = 0; i < 12; i++) {
        int16_t v = (int16_t)(i * 10 - 50);
        memcpy(buf + 352 + 2 * i, &v, 2);
    }
    write_bytes(tmp_path("ext.nii"), buf, sizeof buf);
    mira_error *err = NULL;
    mira_image *img = mira_nifti_read(tmp_path("ext.nii"), &err);
    CHECK(img != NULL);
    if (!img) {
        fprintf(stderr, "%s\n", mira_error_get_message(err));
        mira_error_free(err);
        return;
    }
    CHECK_EQ_INT(img->type, MIRA_F32);
    for (int i = 0; i < 12; i++)
        CHECK(mira_image_get(img, (size_t)i, 0) == (i * 10 - 50) * 0.5 - 3);
    /* RAS: x = -3 j + 10, y = 2 i + 20, z = 4 k + 30; LPS negates x and y */
    CHECK(fabs(img->spacing[0] - 2) < 1e-6 && fabs(img->spacing[1] - 3) < 1e-6 &&
          fabs(img->spacing[2] - 4) < 1e-6);
    CHECK(fabs(img->direction[0]) < 1e-6 && fabs(img->direction[3] + 1) < 1e-6);
    CHECK(fabs(img->direction[1] - 1) < 1e-6 && fabs(img->direction[4]) < 1e-6);
    CHECK(fabs(img->direction[8] - 1) < 1e-6);
    CHECK(fabs(img->origin[0] + 10) < 1e-6 && fabs(img->origin[1] + 20) < 1e-6 &&
          fabs(img->origin[2] - 30) < 1e-6);
    mira_image_free(img);
}

static void expect_read_error(const char *path, mira_error_code code)
{
    mira_error *err = NULL;
    mira_image *img = mira_nifti_read(path, &err);
    CHECK(img == NULL);
    if (mira_error_get_code(err) != code)
        fprintf(stderr, "%s: got %s: %s\n", path, mira_error_code_name(mira_error_get_code(err)),
                mira_error_get_message(err));
    CHECK_EQ_INT(mira_error_get_code(err), code);
    CHECK(err && mira_error_get_message(err)[0]);
    mira_error_free(err);
    mira_image_free(img);
}

/* A single-slice image whose sform has no slice column: the normal of the other two. */
TEST(single_slice_without_slice_column)
{
    nifti_1_header h = good_header();
    h.dim[3] = 1;
    h.sform_code = NIFTI_XFORM_SCANNER_ANAT;
    float sx[4] = {-2, 0, 0, 5}, sy[4] = {0, -3, 0, 6}, sz[4] = {0, 0, 0, 7};
    memcpy(h.srow_x, sx, sizeof sx);
    memcpy(h.srow_y, sy, sizeof sy);
    memcpy(h.srow_z, sz, sizeof sz);
    write_header_file("flat2d.nii", &h, 32);
    mira_error *err = NULL;
    mira_image *img = mira_nifti_read(tmp_path("flat2d.nii"), &err);
    CHECK(img != NULL);
    if (!img) {
        fprintf(stderr, "%s\n", mira_error_get_message(err));
        mira_error_free(err);
        return;
    }
    /* LPS columns (1, 0, 0) and (0, 1, 0): normal (0, 0, 1) */
    CHECK(img->direction[0] == 1 && img->direction[4] == 1 && img->direction[8] == 1);
    CHECK(img->spacing[0] == 2 && img->spacing[1] == 3 && img->spacing[2] == 1);
    CHECK(img->origin[0] == -5 && img->origin[1] == -6 && img->origin[2] == 7);
    mira_image_free(img);
}

TEST(bad_files)
{
    expect_read_error(tmp_path("does-not-exist.nii"), MIRA_ERR_IO);
    write_bytes(tmp_path("garbage.nii"), "this is not a NIfTI header at all", 33);
    expect_read_error(tmp_path("garbage.nii"), MIRA_ERR_INVALID);
    uint8_t zeros[400] = {0};
    write_bytes(tmp_path("zeros.nii"), zeros, sizeof zeros);
    expect_read_error(tmp_path("zeros.nii"), MIRA_ERR_INVALID);

    nifti_1_header h = good_header();
    write_header_file("good.nii", &h, 128);
    mira_image *img = mira_nifti_read(tmp_path("good.nii"), NULL);
    CHECK(img != NULL && img->type == MIRA_I16 && img->size[2] == 4);
    mira_image_free(img);

    write_header_file("short.nii", &h, 100); /* 128 bytes announced */
    expect_read_error(tmp_path("short.nii"), MIRA_ERR_INVALID);

    nifti_1_header huge = h;
    huge.dim[1] = huge.dim[2] = huge.dim[3] = 32767; /* 70 GB announced in a 480-byte file */
    write_header_file("huge.nii", &huge, 128);
    expect_read_error(tmp_path("huge.nii"), MIRA_ERR_INVALID);

    nifti_1_header cplx = h;
    cplx.datatype = NIFTI_TYPE_COMPLEX64;
    cplx.bitpix = 64;
    write_header_file("complex.nii", &cplx, 512);
    expect_read_error(tmp_path("complex.nii"), MIRA_ERR_UNSUPPORTED);

    nifti_1_header four = h;
    four.dim[0] = 4;
    four.dim[4] = 2;
    write_header_file("4d.nii", &four, 256);
    expect_read_error(tmp_path("4d.nii"), MIRA_ERR_UNSUPPORTED);

    nifti_1_header flat = h;
    flat.sform_code = NIFTI_XFORM_SCANNER_ANAT;
    memset(flat.srow_x, 0, sizeof flat.srow_x); /* column 0 of the sform is zero */
    memset(flat.srow_y, 0, sizeof flat.srow_y);
    memset(flat.srow_z, 0, sizeof flat.srow_z);
    write_header_file("flat.nii", &flat, 128);
    expect_read_error(tmp_path("flat.nii"), MIRA_ERR_INVALID);
}

TEST(write_errors)
{
    mira_image *img = mira_image_new(MIRA_U8, 1, 2, 2, 2, NULL);
    CHECK(img != NULL);
    if (!img)
        return;
    mira_error *err = NULL;
    CHECK(!mira_nifti_write(img, tmp_path("wrong.img"), false, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    err = NULL;
    CHECK(!mira_nifti_write(img, "/nonexistent-mira-dir/x.nii", false, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_IO);
    mira_error_free(err);
    /* a write that fails leaves the old file alone */
    write_bytes(tmp_path("keep.nii"), "old", 3);
    img->channels = 9; /* not writable */
    err = NULL;
    CHECK(!mira_nifti_write(img, tmp_path("keep.nii"), false, &err));
    mira_error_free(err);
    FILE *f = fopen(tmp_path("keep.nii"), "rb");
    char buf[8] = {0};
    CHECK(f && fread(buf, 1, sizeof buf, f) == 3 && memcmp(buf, "old", 3) == 0);
    if (f)
        fclose(f);
    img->channels = 1;
    mira_image_free(img);
}

/* Runs last (tests run in file order): remove the temporary folder. */
TEST(zz_cleanup)
{
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    char path[600];
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}
