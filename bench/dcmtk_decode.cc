// Decode benchmark, DCMTK side: every frame of every file of a list decoded with Debian's libdcmtk.
//
// file:   the clock covers DcmFileFormat::loadFile, DcmDataset::chooseRepresentation(
//         EXS_LittleEndianExplicit) (every frame decoded by the registered codec) and getting
//         the decoded Pixel Data's bytes.
// decode: every file is loaded (loadAllDataIntoMemory) first; the clock covers
//         chooseRepresentation and getting the bytes only.
// Decoders: DJDecoderRegistration (JPEG, DCMTK's IJG 6b copies for 8/12/16 bits),
// DJLSDecoderRegistration (JPEG-LS, DCMTK's CharLS copy), DcmRLEDecoderRegistration. DCMTK
// has no JPEG 2000 decoder: those syntaxes print mb_per_s=-.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <sys/resource.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

static double cpu_now()
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

// The checksum every side computes, outside the clock (see bench/mira_decode.c).
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

// Transfer syntaxes DCMTK 3.6.7 has no decoder for.
static bool no_decoder(E_TransferSyntax xfer)
{
    std::string uid = DcmXfer(xfer).getXferID();
    return uid.rfind("1.2.840.10008.1.2.4.9", 0) == 0 || // JPEG 2000 (.90-.93)
           uid.rfind("1.2.840.10008.1.2.4.20", 0) == 0;  // HTJ2K (.201-.203)
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "file") != 0 && strcmp(argv[1], "decode") != 0)) {
        fprintf(stderr, "usage: dcmtk_decode file|decode LIST\n"
                        "Decodes every frame of every file named in LIST (one path a line) with\n"
                        "DCMTK (chooseRepresentation); see bench/mira_decode.c.\n");
        return 2;
    }
    bool whole_file = strcmp(argv[1], "file") == 0;
    OFLog::configure(OFLogger::ERROR_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();

    std::vector<std::string> paths;
    std::ifstream list(argv[2]);
    if (!list) {
        fprintf(stderr, "dcmtk_decode: cannot open %s\n", argv[2]);
        return 1;
    }
    for (std::string line; std::getline(list, line);)
        if (!line.empty())
            paths.push_back(line);
    if (!dcmDataDict.isDictionaryLoaded()) {
        fprintf(stderr, "dcmtk_decode: no DICOM data dictionary (DCMDICTPATH)\n");
        return 1;
    }

    // Outside the clock: the transfer syntax (from the first file) and, for decode, every file.
    std::vector<std::unique_ptr<DcmFileFormat>> files(paths.size());
    std::string ts = "?";
    bool unsupported = false;
    for (size_t i = 0; i < paths.size(); i++) {
        if (whole_file && i > 0)
            break;
        files[i].reset(new DcmFileFormat);
        OFCondition c = files[i]->loadFile(paths[i].c_str());
        if (c.good() && !whole_file)
            c = files[i]->loadAllDataIntoMemory();
        if (c.bad()) {
            fprintf(stderr, "dcmtk_decode: %s: %s\n", paths[i].c_str(), c.text());
            return 1;
        }
        if (i == 0) {
            E_TransferSyntax xfer = files[0]->getDataset()->getOriginalXfer();
            ts = DcmXfer(xfer).getXferID();
            unsupported = no_decoder(xfer);
        }
    }
    if (whole_file && !files.empty())
        files[0].reset();
    if (unsupported) {
        printf("dcmtk ts=%s mode=%s threads=1 files=%zu mb=- seconds=- mb_per_s=- "
               "note=\"DCMTK has no decoder for this transfer syntax\"\n",
               ts.c_str(), argv[1], paths.size());
        return 0;
    }

    uint64_t bytes = 0, sum = 0;
    size_t frames = 0, failures = 0;
    double seconds = 0, cpu = 0;
    for (size_t i = 0; i < paths.size(); i++) {
        auto t0 = std::chrono::steady_clock::now();
        double c0 = cpu_now();
        std::unique_ptr<DcmFileFormat> own;
        DcmFileFormat *ff = files[i].get();
        if (whole_file) {
            own.reset(new DcmFileFormat);
            OFCondition c = own->loadFile(paths[i].c_str());
            if (c.bad()) {
                if (failures++ < 5)
                    fprintf(stderr, "dcmtk_decode: %s: %s\n", paths[i].c_str(), c.text());
                continue;
            }
            ff = own.get();
        }
        DcmDataset *ds = ff->getDataset();
        OFCondition c = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
        DcmElement *e = nullptr;
        Uint8 *p = nullptr;
        if (c.good())
            c = ds->findAndGetElement(DCM_PixelData, e);
        if (c.good())
            c = e->getUint8Array(p);
        Uint32 len = c.good() && p ? e->getLength() : 0;
        double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        double cpu_elapsed = cpu_now() - c0;
        if (c.bad() || !p) {
            if (failures++ < 5)
                fprintf(stderr, "dcmtk_decode: %s: %s\n", paths[i].c_str(),
                        c.bad() ? c.text() : "no pixel data");
            continue;
        }
        Uint16 bits_allocated = 0, bits_stored = 0;
        Sint32 nframes = 1;
        ds->findAndGetUint16(DCM_BitsAllocated, bits_allocated);
        ds->findAndGetUint16(DCM_BitsStored, bits_stored);
        if (ds->findAndGetSint32(DCM_NumberOfFrames, nframes).bad() || nframes < 1)
            nframes = 1;
        sum += checksum(p, len, bits_allocated <= 8 ? 1 : bits_allocated / 8, bits_stored);
        // The data set is freed inside the clock, as on the other sides.
        auto t1 = std::chrono::steady_clock::now();
        double c1 = cpu_now();
        own.reset();
        elapsed += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        cpu_elapsed += cpu_now() - c1;
        seconds += elapsed;
        cpu += cpu_elapsed;
        bytes += len;
        frames += (size_t)nframes;
    }
    double mb = (double)bytes / 1e6;
    printf("dcmtk ts=%s mode=%s threads=1 files=%zu frames=%zu mb=%.3f seconds=%.6f "
           "mb_per_s=%.1f cpu_s=%.6f checksum=%" PRIu64 " failures=%zu\n",
           ts.c_str(), argv[1], paths.size(), frames, mb, seconds, seconds > 0 ? mb / seconds : 0.0,
           cpu, sum, failures);
    return failures ? 1 : 0;
}
