/* Tests of mira_image basics and of the stack geometry (sorting, spacing, tilt, orientation). */
#include "harness.h"

#include "image/series_int.h"

#include <math.h>
#include <mira/mira.h>
#include <stdint.h>

static bool near(double a, double b, double tol)
{
    return fabs(a - b) <= tol;
}

/* ------------------------------------------------------------------ images */

TEST(pixel_types)
{
    static const struct {
        mira_pixel_type t;
        size_t size;
        const char *name;
    } want[] = {{MIRA_U8, 1, "u8"},   {MIRA_I8, 1, "i8"},   {MIRA_U16, 2, "u16"},
                {MIRA_I16, 2, "i16"}, {MIRA_U32, 4, "u32"}, {MIRA_I32, 4, "i32"},
                {MIRA_F32, 4, "f32"}, {MIRA_F64, 8, "f64"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_EQ_INT(mira_pixel_type_size(want[i].t), want[i].size);
        CHECK_EQ_STR(mira_pixel_type_name(want[i].t), want[i].name);
    }
    CHECK_EQ_INT(mira_pixel_type_size((mira_pixel_type)42), 0);
}

TEST(new_is_zeroed_with_identity_geometry)
{
    mira_image *img = mira_image_new(MIRA_I16, 2, 5, 4, 3, NULL);
    CHECK(img != NULL);
    if (!img)
        return;
    CHECK_EQ_INT(mira_image_voxels(img), 60);
    CHECK_EQ_INT(mira_image_bytes(img), 60 * 2 * 2);
    const uint8_t *p = img->data;
    size_t nonzero = 0;
    for (size_t i = 0; i < mira_image_bytes(img); i++)
        nonzero += p[i] != 0;
    CHECK_EQ_INT(nonzero, 0);
    for (int a = 0; a < 3; a++) {
        CHECK(img->spacing[a] == 1.0);
        CHECK(img->origin[a] == 0.0);
        for (int b = 0; b < 3; b++)
            CHECK(img->direction[3 * a + b] == (a == b ? 1.0 : 0.0));
    }
    mira_image_free(img);
    mira_image_free(NULL);
}

TEST(new_refuses_bad_shapes_and_overflow)
{
    mira_error *err = NULL;
    CHECK(mira_image_new(MIRA_U8, 0, 2, 2, 2, &err) == NULL);
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    err = NULL;
    CHECK(mira_image_new(MIRA_U8, 5, 2, 2, 2, &err) == NULL);
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    err = NULL;
    CHECK(mira_image_new(MIRA_U8, 1, 0, 2, 2, &err) == NULL);
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    err = NULL;
    /* 2^22 * 2^22 * 2^21 voxels of 8 bytes: 2^68 bytes */
    CHECK(mira_image_new(MIRA_F64, 1, (size_t)1 << 22, (size_t)1 << 22, (size_t)1 << 21, &err) ==
          NULL);
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_LIMIT);
    mira_error_free(err);
    err = NULL;
    /* the voxel count fits but the bytes with 4 channels of 4 bytes do not */
    CHECK(mira_image_new(MIRA_F32, 4, SIZE_MAX / 8, 1, 1, &err) == NULL);
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_LIMIT);
    mira_error_free(err);
}

TEST(new_reports_out_of_memory)
{
    for (long n = 1; n <= 2; n++) {
        mira_error *err = NULL;
        mira_alloc_fail_after(n);
        mira_image *img = mira_image_new(MIRA_U16, 1, 8, 8, 8, &err);
        mira_alloc_fail_after(0);
        CHECK(img == NULL);
        CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_NOMEM);
        mira_error_free(err);
    }
}

TEST(get_reads_every_type)
{
    static const mira_pixel_type types[] = {MIRA_U8,  MIRA_I8,  MIRA_U16, MIRA_I16,
                                            MIRA_U32, MIRA_I32, MIRA_F32, MIRA_F64};
    for (size_t t = 0; t < 8; t++) {
        mira_image *img = mira_image_new(types[t], 2, 3, 1, 1, NULL);
        CHECK(img != NULL);
        if (!img)
            continue;
        /* voxel 2, channel 1 is value index 5 */
        switch (types[t]) {
        case MIRA_U8:
            ((uint8_t *)img->data)[5] = 250;
            break;
        case MIRA_I8:
            ((int8_t *)img->data)[5] = -120;
            break;
        case MIRA_U16:
            ((uint16_t *)img->data)[5] = 65000;
            break;
        case MIRA_I16:
            ((int16_t *)img->data)[5] = -32000;
            break;
        case MIRA_U32:
            ((uint32_t *)img->data)[5] = 4000000000u;
            break;
        case MIRA_I32:
            ((int32_t *)img->data)[5] = -2000000000;
            break;
        case MIRA_F32:
            ((float *)img->data)[5] = 1.5f;
            break;
        case MIRA_F64:
            ((double *)img->data)[5] = -2.25;
            break;
        }
        static const double want[] = {250,          -120,          65000, -32000,
                                      4000000000.0, -2000000000.0, 1.5,   -2.25};
        CHECK(mira_image_get(img, 2, 1) == want[t]);
        CHECK(mira_image_get(img, 2, 0) == 0);
        mira_image_free(img);
    }
}

/* An oblique geometry: rotation of 30 degrees about z, then 20 about x. */
static void oblique(mira_image *img)
{
    double a = 30 * M_PI / 180, b = 20 * M_PI / 180;
    double rz[9] = {cos(a), -sin(a), 0, sin(a), cos(a), 0, 0, 0, 1};
    double rx[9] = {1, 0, 0, 0, cos(b), -sin(b), 0, sin(b), cos(b)};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            double v = 0;
            for (int k = 0; k < 3; k++)
                v += rx[3 * r + k] * rz[3 * k + c];
            img->direction[3 * r + c] = v;
        }
    img->spacing[0] = 0.5;
    img->spacing[1] = 0.7;
    img->spacing[2] = 2.0;
    img->origin[0] = 10;
    img->origin[1] = -20;
    img->origin[2] = 30;
}

TEST(clone_and_geometry)
{
    mira_image *img = mira_image_new(MIRA_F32, 1, 4, 3, 2, NULL);
    CHECK(img != NULL);
    if (!img)
        return;
    oblique(img);
    ((float *)img->data)[7] = 3.5f;
    mira_image *c = mira_image_clone(img, NULL);
    CHECK(c != NULL && c->data != img->data);
    if (c) {
        CHECK(mira_image_get(c, 7, 0) == 3.5);
        CHECK(memcmp(c->direction, img->direction, sizeof c->direction) == 0);
        CHECK(memcmp(c->origin, img->origin, sizeof c->origin) == 0);
        CHECK(memcmp(c->spacing, img->spacing, sizeof c->spacing) == 0);
        ((float *)img->data)[7] = 0;
        CHECK(mira_image_get(c, 7, 0) == 3.5); /* deep */
    }
    /* index (2, 1, 1): origin + 2*0.5*dir0 + 1*0.7*dir1 + 1*2*dir2, with the columns of
     * Rx(20) Rz(30) written out: dir0 = (cos30, cos20 sin30, sin20 sin30),
     * dir1 = (-sin30, cos20 cos30, sin20 cos30), dir2 = (0, -sin20, cos20) */
    double s30 = 0.5, c30 = sqrt(3) / 2, s20 = sin(20 * M_PI / 180), c20 = cos(20 * M_PI / 180);
    double want[3] = {10 + 1.0 * c30 - 0.7 * s30, -20 + 1.0 * c20 * s30 + 0.7 * c20 * c30 - 2 * s20,
                      30 + 1.0 * s20 * s30 + 0.7 * s20 * c30 + 2 * c20};
    double idx[3] = {2, 1, 1}, p[3];
    mira_image_index_to_point(img, idx, p);
    for (int a = 0; a < 3; a++)
        CHECK(near(p[a], want[a], 1e-12));
    mira_image *d = mira_image_new(MIRA_U8, 1, 1, 1, 1, NULL);
    if (d) {
        mira_image_copy_geometry(d, img);
        double q[3];
        mira_image_index_to_point(d, idx, q);
        for (int a = 0; a < 3; a++)
            CHECK(near(q[a], want[a], 1e-12));
    }
    mira_image_free(d);
    mira_image_free(c);
    mira_image_free(img);
}

/* ------------------------------------------------------------------ stack geometry */

#define N 8

static const double AXIAL[6] = {1, 0, 0, 0, 1, 0};

/* n slices at z = z[k] (any order), orientation iop, shifted in y by shift_y per index. */
static void make_stack(mira__slice_geom *s, size_t n, const double *z, const double iop[6],
                       double shift_y)
{
    static char names[N][8];
    double nrm[3] = {iop[1] * iop[5] - iop[2] * iop[4], iop[2] * iop[3] - iop[0] * iop[5],
                     iop[0] * iop[4] - iop[1] * iop[3]};
    for (size_t k = 0; k < n; k++) {
        for (int a = 0; a < 3; a++)
            s[k].ipp[a] = 5.0 * (a + 1) + z[k] * nrm[a];
        s[k].ipp[1] += shift_y * z[k];
        memcpy(s[k].iop, iop, sizeof s[k].iop);
        snprintf(names[k], sizeof names[k], "s%zu", k);
        s[k].name = names[k];
    }
}

TEST(stack_sorts_along_the_normal)
{
    double z[N] = {7.5, 0, 15, 2.5, 10, 5, 17.5, 12.5};
    mira__slice_geom s[N];
    make_stack(s, N, z, AXIAL, 0);
    size_t order[N];
    mira__stack_geom g;
    mira_series_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK(mira__stack_geometry(s, N, 0.01, 1, order, &g, &rep, NULL));
    static const size_t want[N] = {1, 3, 5, 0, 4, 7, 2, 6};
    for (size_t k = 0; k < N; k++)
        CHECK_EQ_INT(order[k], want[k]);
    CHECK(near(g.spacing_z, 2.5, 1e-12));
    CHECK(near(g.origin[2], 15, 1e-12)); /* slice at z = 0: position (5, 10, 15) */
    CHECK(g.direction[2] == 0 && g.direction[5] == 0 && g.direction[8] == 1);
    CHECK(!rep.tilted && !rep.uneven && !rep.missing_slices && rep.warning_count == 0);
    mira_series_report_cleanup(&rep);
}

TEST(stack_normal_of_a_sagittal_orientation)
{
    /* rows along -y (anterior), columns along -z (feet): normal = r x c = (1, 0, 0) */
    double iop[6] = {0, -1, 0, 0, 0, -1};
    double z[3] = {4, 0, 2};
    mira__slice_geom s[3];
    make_stack(s, 3, z, iop, 0);
    size_t order[3];
    mira__stack_geom g;
    mira_series_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK(mira__stack_geometry(s, 3, 0.01, 1, order, &g, &rep, NULL));
    CHECK_EQ_INT(order[0], 1);
    CHECK_EQ_INT(order[2], 0);
    CHECK(g.direction[2] == 1 && g.direction[5] == 0 && g.direction[8] == 0);
    CHECK(g.direction[3] == -1 && g.direction[7] == -1); /* columns 0 and 1 */
    CHECK(near(g.spacing_z, 2, 1e-12));
    mira_series_report_cleanup(&rep);
}

TEST(stack_flags_uneven_and_missing)
{
    double uneven[N] = {0, 2.5, 5, 7.5, 10.6, 13.1, 15.6, 18.1};
    mira__slice_geom s[N];
    make_stack(s, N, uneven, AXIAL, 0);
    size_t order[N];
    mira__stack_geom g;
    mira_series_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK(mira__stack_geometry(s, N, 0.01, 1, order, &g, &rep, NULL));
    CHECK(rep.uneven && !rep.missing_slices && !rep.tilted);
    CHECK(near(rep.min_spacing, 2.5, 1e-9) && near(rep.max_spacing, 3.1, 1e-9));
    CHECK(near(g.spacing_z, 2.5, 1e-9));
    CHECK_EQ_INT(rep.warning_count, 1);
    mira_series_report_cleanup(&rep);

    double missing[N] = {0, 2.5, 5, 12.5, 15, 17.5, 20, 22.5}; /* two slices absent */
    make_stack(s, N, missing, AXIAL, 0);
    memset(&rep, 0, sizeof rep);
    CHECK(mira__stack_geometry(s, N, 0.01, 1, order, &g, &rep, NULL));
    CHECK(rep.missing_slices && !rep.uneven);
    CHECK(rep.warning_count == 1 && strstr(rep.warnings[0], "about 2 slices absent"));
    mira_series_report_cleanup(&rep);

    /* a tolerance wider than the deviation: even */
    make_stack(s, N, uneven, AXIAL, 0);
    memset(&rep, 0, sizeof rep);
    CHECK(mira__stack_geometry(s, N, 0.7, 1, order, &g, &rep, NULL));
    CHECK(!rep.uneven && rep.warning_count == 0);
    mira_series_report_cleanup(&rep);
}

TEST(stack_detects_tilt)
{
    double z[N] = {0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5};
    mira__slice_geom s[N];
    make_stack(s, N, z, AXIAL, 0.2); /* 0.5 mm sideways per 2.5 mm step */
    size_t order[N];
    mira__stack_geom g;
    mira_series_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK(mira__stack_geometry(s, N, 0.01, 1, order, &g, &rep, NULL));
    CHECK(rep.tilted);
    CHECK(near(rep.tilt_degrees, atan(0.2) * 180 / M_PI, 1e-9));
    CHECK(near(g.spacing_z, 2.5, 1e-12)); /* along the normal */
    CHECK(g.direction[8] == 1);           /* the normal, not the step */
    CHECK(!rep.uneven && !rep.missing_slices);
    mira_series_report_cleanup(&rep);
}

TEST(stack_refuses_mixed_orientation_and_one_position)
{
    double z[N] = {0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5};
    mira__slice_geom s[N];
    make_stack(s, N, z, AXIAL, 0);
    s[5].iop[4] = 0;
    s[5].iop[5] = -1;
    size_t order[N];
    mira__stack_geom g;
    mira_series_report rep;
    memset(&rep, 0, sizeof rep);
    mira_error *err = NULL;
    CHECK(!mira__stack_geometry(s, N, 0.01, 1, order, &g, &rep, &err));
    CHECK(rep.mixed_orientation);
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_UNSUPPORTED);
    CHECK(strstr(mira_error_get_message(err), "s0") && strstr(mira_error_get_message(err), "s5"));
    mira_error_free(err);
    mira_series_report_cleanup(&rep);

    double dup[4] = {0, 2.5, 2.5, 5};
    make_stack(s, 4, dup, AXIAL, 0);
    memset(&rep, 0, sizeof rep);
    err = NULL;
    CHECK(!mira__stack_geometry(s, 4, 0.01, 1, order, &g, &rep, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_UNSUPPORTED);
    CHECK(strstr(mira_error_get_message(err), "same position") != NULL);
    mira_error_free(err);
    mira_series_report_cleanup(&rep);

    /* a degenerate orientation */
    double bad[6] = {1, 0, 0, 1, 0, 0};
    make_stack(s, 2, z, AXIAL, 0);
    memcpy(s[0].iop, bad, sizeof bad);
    memcpy(s[1].iop, bad, sizeof bad);
    memset(&rep, 0, sizeof rep);
    err = NULL;
    CHECK(!mira__stack_geometry(s, 2, 0.01, 1, order, &g, &rep, &err));
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_INVALID);
    mira_error_free(err);
    mira_series_report_cleanup(&rep);
}

TEST(stack_of_one_slice)
{
    double z[1] = {0};
    mira__slice_geom s[1];
    make_stack(s, 1, z, AXIAL, 0);
    size_t order[1];
    mira__stack_geom g;
    mira_series_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK(mira__stack_geometry(s, 1, 0.01, 3.5, order, &g, &rep, NULL));
    CHECK(g.spacing_z == 3.5 && order[0] == 0 && rep.warning_count == 0);
    mira_series_report_cleanup(&rep);
}

TEST(series_load_errors)
{
    mira_error *err = NULL;
    CHECK(mira_series_load(NULL, 0, NULL, NULL, &err) == NULL);
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_ARGUMENT);
    mira_error_free(err);
    err = NULL;
    const char *paths[1] = {"/nonexistent/mira/slice.dcm"};
    mira_series_report rep;
    CHECK(mira_series_load(paths, 1, NULL, &rep, &err) == NULL);
    CHECK(err != NULL && strstr(mira_error_get_message(err), "slice.dcm") != NULL);
    mira_error_free(err);
    mira_series_report_cleanup(&rep);
    err = NULL;
    CHECK(mira_series_load_dir("/nonexistent/mira", NULL, NULL, NULL, &err) == NULL);
    CHECK_EQ_INT(mira_error_get_code(err), MIRA_ERR_IO);
    mira_error_free(err);
}
