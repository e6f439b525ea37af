/* NIfTI-1/NIfTI-2 reading and writing through Debian's nifti library, LPS <-> RAS geometry. */
#include "mira/image.h"

#include "core/fileio.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <nifti2_io.h>

/*
 * The library reads headers, converts header <-> nifti_image (quaternions included) and reads
 * data with byte swapping. mira writes the bytes itself: nifti_image_write returns nothing, so
 * a full disk would go unnoticed, and the output must appear atomically under its name.
 *
 * Channels: 3-channel u8 images are written as RGB24 (interleaved, what viewers expect); any
 * other multi-channel image as a 5D array (dim[4] = 1, dim[5] = channels, intent VECTOR),
 * which the standard reserves for vector-valued voxels. Reading accepts both, and RGBA32.
 */

/* The library prints diagnostics to stderr unless its debug level is 0. */
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

static void make_quiet(void)
{
    nifti_set_debug_level(0);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ------------------------------------------------------------------ geometry */

/* The RAS affine (4x4) of an image: LPS x and y negated. */
static nifti_dmat44 affine_ras(const mira_image *img)
{
    nifti_dmat44 m;
    memset(&m, 0, sizeof m);
    for (int r = 0; r < 3; r++) {
        double sign = r < 2 ? -1.0 : 1.0;
        for (int a = 0; a < 3; a++)
            m.m[r][a] = sign * img->direction[3 * r + a] * img->spacing[a];
        m.m[r][3] = sign * img->origin[r];
    }
    m.m[3][3] = 1.0;
    return m;
}

/* Geometry of img from a RAS affine; false if a column is zero or not finite (except the
 * slice column of a single-slice image, which takes the normal of the other two). */
static bool set_geometry(mira_image *img, const nifti_dmat44 *m, mira_error **err, const char *path,
                         const char *which)
{
    for (int a = 0; a < 3; a++) {
        double n =
            sqrt(m->m[0][a] * m->m[0][a] + m->m[1][a] * m->m[1][a] + m->m[2][a] * m->m[2][a]);
        if (a == 2 && img->size[2] == 1 && !(n > 0.0) && isfinite(n)) {
            const double *d = img->direction;
            img->direction[2] = d[3] * d[7] - d[6] * d[4];
            img->direction[5] = d[6] * d[1] - d[0] * d[7];
            img->direction[8] = d[0] * d[4] - d[3] * d[1];
            img->spacing[2] = 1.0;
            continue;
        }
        if (!(n > 0.0) || !isfinite(n)) {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad NIfTI geometry",
                           "%s: column %d of the %s matrix is zero or not finite", path, a, which);
            return false;
        }
        img->spacing[a] = n;
        for (int r = 0; r < 3; r++)
            img->direction[3 * r + a] = (r < 2 ? -1.0 : 1.0) * m->m[r][a] / n;
    }
    for (int r = 0; r < 3; r++) {
        img->origin[r] = (r < 2 ? -1.0 : 1.0) * m->m[r][3];
        if (!isfinite(img->origin[r])) {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad NIfTI geometry",
                           "%s: the offset of the %s matrix is not finite", path, which);
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ writing */

static int nifti_datatype(mira_pixel_type t)
{
    switch (t) {
    case MIRA_U8:
        return NIFTI_TYPE_UINT8;
    case MIRA_I8:
        return NIFTI_TYPE_INT8;
    case MIRA_U16:
        return NIFTI_TYPE_UINT16;
    case MIRA_I16:
        return NIFTI_TYPE_INT16;
    case MIRA_U32:
        return NIFTI_TYPE_UINT32;
    case MIRA_I32:
        return NIFTI_TYPE_INT32;
    case MIRA_F32:
        return NIFTI_TYPE_FLOAT32;
    case MIRA_F64:
        return NIFTI_TYPE_FLOAT64;
    }
    return 0;
}

/* Output through plain write(2) or zlib. */
typedef struct sink {
    int fd;
    gzFile gz;
    bool failed;
} sink;

static void sink_write(sink *s, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (!s->failed && n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        if (s->gz) {
            int k = gzwrite(s->gz, b, (unsigned)chunk);
            if (k <= 0) {
                s->failed = true;
                break;
            }
            chunk = (size_t)k;
        } else {
            ssize_t k = write(s->fd, b, chunk);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                s->failed = true;
                break;
            }
            chunk = (size_t)k;
        }
        b += chunk;
        n -= chunk;
    }
}

/* The voxel data in NIfTI order: interleaved as is, or one channel plane after another. */
static void write_data(sink *s, const mira_image *img, bool planes)
{
    size_t bytes = mira_image_bytes(img);
    if (!planes) {
        sink_write(s, img->data, bytes);
        return;
    }
    size_t vs = mira_pixel_type_size(img->type), nv = mira_image_voxels(img);
    size_t ch = (size_t)img->channels, per_chunk = 65536;
    uint8_t *tmp = mira_malloc(per_chunk * vs);
    if (!tmp) {
        s->failed = true;
        return;
    }
    const uint8_t *src = img->data;
    for (size_t c = 0; c < ch && !s->failed; c++) {
        for (size_t v0 = 0; v0 < nv && !s->failed; v0 += per_chunk) {
            size_t n = nv - v0 < per_chunk ? nv - v0 : per_chunk;
            for (size_t v = 0; v < n; v++)
                memcpy(tmp + v * vs, src + ((v0 + v) * ch + c) * vs, vs);
            sink_write(s, tmp, n * vs);
        }
    }
    mira_free(tmp);
}

/* The header bytes (NIfTI-1 348 or NIfTI-2 540) for img. */
static bool make_header(const mira_image *img, bool nifti2, bool *planes, void *hdr,
                        size_t *hdr_len, mira_error **err, const char *path)
{
    bool rgb = img->type == MIRA_U8 && img->channels == 3;
    *planes = img->channels > 1 && !rgb;
    int64_t dims[8] = {
        3, (int64_t)img->size[0], (int64_t)img->size[1], (int64_t)img->size[2], 1, 1, 1, 1};
    if (*planes) {
        dims[0] = 5;
        dims[5] = img->channels;
    }
    int dt = rgb ? NIFTI_TYPE_RGB24 : nifti_datatype(img->type);
    nifti_image *nim = nifti_make_new_nim(dims, dt, 0);
    if (!nim) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "writing %s", path);
        return false;
    }
    nifti_dmat44 a = affine_ras(img);
    nim->sto_xyz = a;
    nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    /* The qform is the rotation part of the affine: exact for an orthonormal direction
     * matrix; for a sheared one the library takes the nearest rotation (polar decomposition). */
    double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(a, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    nim->quatern_b = qb;
    nim->quatern_c = qc;
    nim->quatern_d = qd;
    nim->qoffset_x = qx;
    nim->qoffset_y = qy;
    nim->qoffset_z = qz;
    nim->qfac = qfac;
    nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->dx = nim->pixdim[1] = img->spacing[0];
    nim->dy = nim->pixdim[2] = img->spacing[1];
    nim->dz = nim->pixdim[3] = img->spacing[2];
    nim->qto_xyz = nifti_quatern_to_dmat44(qb, qc, qd, qx, qy, qz, nim->dx, nim->dy, nim->dz, qfac);
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->time_units = NIFTI_UNITS_UNKNOWN;
    nim->scl_slope = 1.0;
    nim->scl_inter = 0.0;
    if (*planes)
        nim->intent_code = NIFTI_INTENT_VECTOR;
    snprintf(nim->descrip, sizeof nim->descrip, "mira %s", mira_version());
    nim->nifti_type = nifti2 ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;
    nim->iname_offset = nifti2 ? 544 : 352;
    int rc;
    if (nifti2) {
        rc = nifti_convert_nim2n2hdr(nim, hdr);
        *hdr_len = sizeof(nifti_2_header);
    } else {
        rc = nifti_convert_nim2n1hdr(nim, hdr);
        *hdr_len = sizeof(nifti_1_header);
    }
    nifti_image_free(nim);
    if (rc != 0) {
        mira_error_set(err, MIRA_ERR_INVALID, "Cannot make a NIfTI header",
                       "%s: the nifti library refused the header", path);
        return false;
    }
    return true;
}

bool mira_nifti_write(const mira_image *img, const char *path, bool nifti2, mira_error **err)
{
    pthread_once(&quiet_once, make_quiet);
    bool gz = ends_with(path, ".nii.gz");
    if (!gz && !ends_with(path, ".nii")) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad NIfTI name",
                       "%s: a NIfTI file name must end in .nii or .nii.gz", path);
        return false;
    }
    if (mira_pixel_type_size(img->type) == 0 || img->channels < 1 || img->channels > 4 ||
        !img->data) {
        mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad image",
                       "%s: image of type %d with %d "
                       "channels cannot be written",
                       path, (int)img->type, img->channels);
        return false;
    }
    for (int a = 0; a < 3; a++) {
        if (img->size[a] == 0 || img->size[a] > (size_t)INT64_MAX / 2) {
            mira_error_set(err, MIRA_ERR_ARGUMENT, "Bad image", "%s: dimension %d is %zu", path, a,
                           img->size[a]);
            return false;
        }
        if (img->size[a] > 32767)
            nifti2 = true;
    }
    union {
        nifti_1_header h1;
        nifti_2_header h2;
    } hdr;
    size_t hdr_len;
    bool planes;
    if (!make_header(img, nifti2, &planes, &hdr, &hdr_len, err, path))
        return false;

    size_t plen = strlen(path);
    char *tmp = mira_malloc(plen + 16);
    if (!tmp) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "writing %s", path);
        return false;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot write", "%s: %s", path, strerror(errno));
        mira_free(tmp);
        return false;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600 */
    sink s = {fd, NULL, false};
    if (gz) {
        int fd2 = dup(fd); /* gzclose closes its descriptor; fd stays open for fsync */
        s.gz = fd2 >= 0 ? gzdopen(fd2, "wb6") : NULL;
        if (!s.gz) {
            if (fd2 >= 0)
                close(fd2);
            s.failed = true;
        }
    }
    static const uint8_t extender[4] = {0, 0, 0, 0}; /* no extensions */
    errno = 0;
    sink_write(&s, &hdr, hdr_len);
    sink_write(&s, extender, sizeof extender);
    write_data(&s, img, planes);
    if (s.gz && gzclose(s.gz) != Z_OK)
        s.failed = true;
    bool ok = !s.failed && fsync(fd) == 0;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot write", "%s: %s", path,
                       saved ? strerror(saved) : "write failed");
        unlink(tmp);
    } else {
        ok = mira__commit_file(tmp, path, err);
    }
    mira_free(tmp);
    return ok;
}

/* ------------------------------------------------------------------ reading */

/* The mira type and channel count of a NIfTI datatype; false if mira has none. */
static bool pixel_type_of(int dt, mira_pixel_type *t, int *channels)
{
    *channels = 1;
    switch (dt) {
    case NIFTI_TYPE_UINT8:
        *t = MIRA_U8;
        return true;
    case NIFTI_TYPE_INT8:
        *t = MIRA_I8;
        return true;
    case NIFTI_TYPE_UINT16:
        *t = MIRA_U16;
        return true;
    case NIFTI_TYPE_INT16:
        *t = MIRA_I16;
        return true;
    case NIFTI_TYPE_UINT32:
        *t = MIRA_U32;
        return true;
    case NIFTI_TYPE_INT32:
        *t = MIRA_I32;
        return true;
    case NIFTI_TYPE_FLOAT32:
        *t = MIRA_F32;
        return true;
    case NIFTI_TYPE_FLOAT64:
        *t = MIRA_F64;
        return true;
    case NIFTI_TYPE_RGB24:
        *t = MIRA_U8;
        *channels = 3;
        return true;
    case NIFTI_TYPE_RGBA32:
        *t = MIRA_U8;
        *channels = 4;
        return true;
    }
    return false;
}

/* Check the header's shape; fills the voxel counts. */
static bool check_shape(const nifti_image *nim, const char *path, size_t n[3], int *planes,
                        mira_error **err)
{
    int64_t dim[8];
    for (int i = 0; i < 8; i++)
        dim[i] = nim->dim[i];
    int nd = (int)dim[0];
    if (nd < 1 || nd > 7) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad NIfTI header", "%s: dim[0] is %d", path, nd);
        return false;
    }
    for (int i = 1; i <= 7; i++) {
        int64_t v = i <= nd ? dim[i] : 1;
        if (v < 1) {
            mira_error_set(err, MIRA_ERR_INVALID, "Bad NIfTI header", "%s: dim[%d] is %lld", path,
                           i, (long long)v);
            return false;
        }
        dim[i] = v;
    }
    if (dim[4] != 1 || dim[6] != 1 || dim[7] != 1 || dim[5] > 4) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported NIfTI shape",
                       "%s: dimensions %lld x %lld x %lld x %lld x %lld x %lld x %lld: mira "
                       "reads 3D images with at most 4 values per voxel (dim[5])",
                       path, (long long)dim[1], (long long)dim[2], (long long)dim[3],
                       (long long)dim[4], (long long)dim[5], (long long)dim[6], (long long)dim[7]);
        return false;
    }
    for (int a = 0; a < 3; a++) {
        if ((uint64_t)dim[a + 1] > SIZE_MAX) {
            mira_error_set(err, MIRA_ERR_LIMIT, "Image too large", "%s: dim[%d] is %lld", path,
                           a + 1, (long long)dim[a + 1]);
            return false;
        }
        n[a] = (size_t)dim[a + 1];
    }
    *planes = (int)dim[5];
    return true;
}

/* The voxel data: the header says how many bytes follow; refuse sizes the file cannot hold
 * before allocating (a gzip stream inflates at most about 1032 times). */
static bool check_data_size(const nifti_image *nim, const char *path, size_t bytes,
                            mira_error **err)
{
    struct stat st;
    if (!nim->iname || stat(nim->iname, &st) != 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: image file %s: %s", path,
                       nim->iname ? nim->iname : "(none)", strerror(errno));
        return false;
    }
    uint64_t size = (uint64_t)st.st_size, need = (uint64_t)bytes;
    uint64_t off = nim->iname_offset > 0 ? (uint64_t)nim->iname_offset : 0;
    bool ok;
    if (nifti_is_gzfile(nim->iname))
        ok = need <= (size + 1) * 1032u && off <= (size + 1) * 1032u;
    else
        ok = off <= size && need <= size - off;
    if (!ok) {
        mira_error_set(err, MIRA_ERR_INVALID, "Truncated NIfTI",
                       "%s: the header announces %llu bytes of data at offset %llu, but the "
                       "file holds %llu bytes",
                       path, (unsigned long long)need, (unsigned long long)off,
                       (unsigned long long)size);
        return false;
    }
    return true;
}

/* Planes (channel after channel) to interleaved channels. */
static bool interleave(mira_image *img, int planes, mira_error **err)
{
    size_t vs = mira_pixel_type_size(img->type), nv = mira_image_voxels(img);
    size_t bytes = mira_image_bytes(img), ch = (size_t)planes;
    uint8_t *out = mira_malloc(bytes);
    if (!out) {
        mira_error_set(err, MIRA_ERR_NOMEM, NULL, "reorganising %zu bytes of channels", bytes);
        return false;
    }
    const uint8_t *in = img->data;
    for (size_t c = 0; c < ch; c++)
        for (size_t v = 0; v < nv; v++)
            memcpy(out + (v * ch + c) * vs, in + (c * nv + v) * vs, vs);
    mira_free(img->data);
    img->data = out;
    return true;
}

/* Apply scl_slope/scl_inter: a new f32 image. */
static mira_image *apply_scaling(mira_image *img, double slope, double inter, mira_error **err)
{
    mira_image *f =
        mira_image_new(MIRA_F32, img->channels, img->size[0], img->size[1], img->size[2], err);
    if (!f)
        return NULL;
    mira_image_copy_geometry(f, img);
    size_t nv = mira_image_voxels(img), ch = (size_t)img->channels;
    float *out = f->data;
    for (size_t v = 0; v < nv; v++)
        for (size_t c = 0; c < ch; c++)
            out[v * ch + c] = (float)(mira_image_get(img, v, (int)c) * slope + inter);
    return f;
}

static uint32_t swap32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0xFF00u) | ((v << 8) & 0xFF0000u) | (v << 24);
}

static uint16_t swap16(uint16_t v)
{
    return (uint16_t)((v >> 8) | (v << 8));
}

static uint64_t swap64(uint64_t v)
{
    return ((uint64_t)swap32((uint32_t)v) << 32) | swap32((uint32_t)(v >> 32));
}

/*
 * The checks the nifti library makes while converting a header, made first: on these errors
 * the library prints to stderr (whatever its debug level), and library code must not print.
 * Reads the first bytes through zlib, which passes uncompressed files through.
 */
static bool precheck_header(const char *path, mira_error **err)
{
    uint8_t b[540];
    gzFile g = gzopen(path, "rb");
    if (!g) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: %s", path, strerror(errno));
        return false;
    }
    int n = gzread(g, b, sizeof b);
    gzclose(g);
    uint32_t size;
    memcpy(&size, b, 4);
    bool v1 = n >= 348 && (size == 348 || swap32(size) == 348);
    bool v2 = n >= 540 && (size == 540 || swap32(size) == 540);
    if (!v1 && !v2) {
        mira_error_set(err, MIRA_ERR_INVALID, "Not NIfTI",
                       "%s: no NIfTI or ANALYZE header (sizeof_hdr is neither 348 nor 540, or "
                       "the file is shorter)",
                       path);
        return false;
    }
    bool swapped = size != (v1 ? 348u : 540u);
    int16_t datatype;
    int64_t dim0, dim1;
    if (v1) {
        uint16_t d0, d1, dt;
        memcpy(&d0, b + 40, 2);
        memcpy(&d1, b + 42, 2);
        memcpy(&dt, b + 70, 2);
        dim0 = (int16_t)(swapped ? swap16(d0) : d0);
        dim1 = (int16_t)(swapped ? swap16(d1) : d1);
        datatype = (int16_t)(swapped ? swap16(dt) : dt);
    } else {
        uint64_t d0, d1;
        uint16_t dt;
        memcpy(&dt, b + 12, 2);
        memcpy(&d0, b + 16, 8);
        memcpy(&d1, b + 24, 8);
        dim0 = (int64_t)(swapped ? swap64(d0) : d0);
        dim1 = (int64_t)(swapped ? swap64(d1) : d1);
        datatype = (int16_t)(swapped ? swap16(dt) : dt);
    }
    mira_pixel_type t;
    int ch;
    if (dim0 < 1 || dim0 > 7 || dim1 < 1) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad NIfTI header",
                       "%s: dim[0] is %lld, dim[1] "
                       "%lld",
                       path, (long long)dim0, (long long)dim1);
        return false;
    }
    if (!pixel_type_of(datatype, &t, &ch)) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported NIfTI datatype",
                       "%s: datatype %d has no mira pixel type", path, datatype);
        return false;
    }
    return true;
}

mira_image *mira_nifti_read(const char *path, mira_error **err)
{
    pthread_once(&quiet_once, make_quiet);
    struct stat st;
    if (stat(path, &st) != 0) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (!precheck_header(path, err))
        return NULL;
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) {
        mira_error_set(err, MIRA_ERR_INVALID, "Not NIfTI",
                       "%s: not a readable NIfTI-1, NIfTI-2 or ANALYZE header", path);
        return NULL;
    }
    mira_image *img = NULL;
    znzFile fp = NULL;
    mira_pixel_type type;
    int channels, planes;
    size_t n[3];
    if (!pixel_type_of(nim->datatype, &type, &channels)) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported NIfTI datatype",
                       "%s: datatype %d (%s) has no mira pixel type", path, nim->datatype,
                       nifti_datatype_string(nim->datatype));
        goto fail;
    }
    if (!check_shape(nim, path, n, &planes, err))
        goto fail;
    if (planes > 1 && channels > 1) {
        mira_error_set(err, MIRA_ERR_UNSUPPORTED, "Unsupported NIfTI shape",
                       "%s: %d vector components of colour voxels", path, planes);
        goto fail;
    }
    /* the size the header announces, checked against the file before allocating it */
    size_t bytes = (size_t)nim->nbyper;
    bool overflow = nim->nbyper <= 0 || nim->nvox < 0;
    for (int a = 0; a < 3 && !overflow; a++) {
        overflow = bytes > SIZE_MAX / n[a];
        bytes *= n[a];
    }
    overflow = overflow || bytes > SIZE_MAX / (size_t)planes;
    if (!overflow)
        bytes *= (size_t)planes;
    if (overflow || (uint64_t)nim->nvox * (uint64_t)nim->nbyper != (uint64_t)bytes) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad NIfTI header",
                       "%s: %lld voxels of %d bytes disagree with the dimensions", path,
                       (long long)nim->nvox, nim->nbyper);
        goto fail;
    }
    if (!check_data_size(nim, path, bytes, err))
        goto fail;
    img = mira_image_new(type, channels * planes, n[0], n[1], n[2], err);
    if (!img) {
        mira_error_prefix(err, "%s: ", path);
        goto fail;
    }
    if (mira_image_bytes(img) != bytes) {
        mira_error_set(err, MIRA_ERR_INVALID, "Bad NIfTI header",
                       "%s: datatype %d has %d bytes per voxel", path, nim->datatype, nim->nbyper);
        goto fail;
    }
    fp = znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname));
    if (znz_isnull(fp)) {
        mira_error_set(err, MIRA_ERR_IO, "Cannot read", "%s: cannot open %s", path, nim->iname);
        goto fail;
    }
    /* read as it is (nifti_read_buffer would turn NaN and infinite floats into 0), then put
     * in this machine's byte order */
    if (znzseek(fp, (znz_off_t)nim->iname_offset, SEEK_SET) < 0 ||
        znzread(img->data, 1, bytes, fp) != bytes) {
        mira_error_set(err, MIRA_ERR_INVALID, "Truncated NIfTI",
                       "%s: cannot read %zu bytes of data at offset %lld", path, bytes,
                       (long long)nim->iname_offset);
        goto fail;
    }
    znzclose(fp);
    if (nim->swapsize > 1 && nim->byteorder != nifti_short_order())
        nifti_swap_Nbytes((int64_t)(bytes / (size_t)nim->swapsize), nim->swapsize, img->data);
    if (planes > 1 && !interleave(img, planes, err))
        goto fail;
    const char *which = nim->sform_code > 0 ? "sform" : "qform";
    nifti_dmat44 m = nim->sform_code > 0 ? nim->sto_xyz : nim->qto_xyz;
    if (!set_geometry(img, &m, err, path, which))
        goto fail;
    double slope = nim->scl_slope, inter = nim->scl_inter;
    nifti_image_free(nim);
    nim = NULL;
    if (channels == 1 && isfinite(slope) && isfinite(inter) && slope != 0.0 &&
        (slope != 1.0 || inter != 0.0)) {
        mira_image *f = apply_scaling(img, slope, inter, err);
        mira_image_free(img);
        return f;
    }
    return img;

fail:
    if (fp)
        znzclose(fp);
    mira_image_free(img);
    nifti_image_free(nim);
    return NULL;
}
