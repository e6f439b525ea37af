/* Fuzz target: the DICOM reader (Part 10 and raw data sets), value decoding and writing back. */
#include <mira/mira.h>

#include <string.h>

static void touch(const mira_dataset *ds)
{
    for (size_t i = 0; i < mira_dataset_count(ds); i++) {
        const mira_element *e = mira_dataset_at(ds, i);
        mira_vr vr = mira_element_vr(e);
        size_t vm = mira_element_vm(e);
        if (mira_vr_is_string(vr)) {
            mira_free(mira_element_get_text(e, NULL));
            for (size_t k = 0; k < vm && k < 4; k++) {
                mira_error *err = NULL;
                mira_free(mira_element_get_string(e, k, &err));
                mira_error_free(err);
                double d;
                err = NULL;
                if (vr == MIRA_VR_DS || vr == MIRA_VR_IS)
                    mira_element_get_double(e, k, &d, &err);
                mira_error_free(err);
            }
        } else if (vr != MIRA_VR_SQ && !mira_element_is_encapsulated(e)) {
            for (size_t k = 0; k < vm && k < 4; k++) {
                double d;
                mira_error *err = NULL;
                mira_element_get_double(e, k, &d, &err);
                mira_error_free(err);
            }
        }
        for (size_t k = 0; k < mira_element_item_count(e); k++)
            touch(mira_element_item(e, k));
        size_t n;
        for (size_t k = 0; k < mira_element_fragment_count(e); k++)
            mira_element_fragment(e, k, &n);
        mira_dataset_private_creator(ds, mira_element_tag(e));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    for (int raw = 0; raw < 2; raw++) {
        mira_read_options opt;
        mira_read_options_init(&opt);
        opt.raw = raw;
        mira_error *err = NULL;
        mira_file *f = mira_file_read_memory(data, size, &opt, false, &err);
        if (!f) {
            /* every failure must explain itself */
            if (!err || !mira_error_get_message(err)[0])
                __builtin_trap();
            mira_error_free(err);
            continue;
        }
        touch(mira_file_meta(f));
        touch(mira_file_dataset(f));
        mira_free(mira_dataset_to_json(mira_file_dataset(f), NULL, NULL));
        uint8_t *out;
        size_t out_len;
        if (mira_file_write_memory(f, MIRA_TS_EXPLICIT_LE, &out, &out_len, &err)) {
            /* what mira writes, mira reads */
            mira_file *g = mira_file_read_memory(out, out_len, NULL, false, NULL);
            if (!g)
                __builtin_trap();
            mira_file_free(g);
            mira_free(out);
        }
        mira_error_free(err);
        mira_file_free(f);
    }
    return 0;
}
