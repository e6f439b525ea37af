// Read benchmark, DCMTK side: the same file list loaded with Debian's libdcmtk (dcmdata).
//
// header: DcmFileFormat::loadFileUntilTag(..., DCM_PixelData), DCMTK's stop-before-pixels.
// full:   DcmFileFormat::loadFile + loadAllDataIntoMemory, so that long values (pixel data) are
//         not left on disk to be loaded on access: every byte is copied into memory, as the mira
//         side reads every value byte of its mapped file.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/oflog/oflog.h>

#include <sys/resource.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

// The pixel data is in memory after loadAllDataIntoMemory, which copied every byte from the file:
// that copy is DCMTK's touch of the data, so it is not summed again (which would only slow the
// peer down). The value's first and last bytes go into the checksum to show it is there.
static uint64_t pixel_bytes(DcmDataset *ds)
{
    DcmElement *e = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, e).bad() || !e)
        return 0;
    Uint8 *p = nullptr;
    if (e->getUint8Array(p).bad() || !p)
        return 0;
    Uint32 len = e->getLength();
    return len ? (uint64_t)p[0] + p[len - 1] + len : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "header") != 0 && strcmp(argv[1], "full") != 0)) {
        fprintf(stderr, "usage: dcmtk_read header|full LIST\n"
                        "Loads every file named in LIST (one path a line) with DCMTK.\n");
        return 2;
    }
    bool header = strcmp(argv[1], "header") == 0;
    OFLog::configure(OFLogger::ERROR_LOG_LEVEL);

    std::vector<std::string> paths;
    std::ifstream list(argv[2]);
    if (!list) {
        fprintf(stderr, "dcmtk_read: cannot open %s\n", argv[2]);
        return 1;
    }
    for (std::string line; std::getline(list, line);)
        if (!line.empty())
            paths.push_back(line);

    // The data dictionary loads on first use: load it before the clock starts, as the other
    // sides have their start-up (library load, Python imports) outside the timing too.
    if (!dcmDataDict.isDictionaryLoaded()) {
        fprintf(stderr, "dcmtk_read: no DICOM data dictionary (DCMDICTPATH)\n");
        return 1;
    }

    uint64_t checksum = 0;
    size_t failures = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (const std::string &path : paths) {
        DcmFileFormat ff;
        OFCondition c = header
                            ? ff.loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange,
                                                  DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData)
                            : ff.loadFile(path.c_str());
        if (c.good() && !header)
            c = ff.loadAllDataIntoMemory();
        if (c.bad()) {
            if (failures++ < 5)
                fprintf(stderr, "dcmtk_read: %s: %s\n", path.c_str(), c.text());
            continue;
        }
        DcmDataset *ds = ff.getDataset();
        checksum += ds->card();
        if (!header)
            checksum += pixel_bytes(ds);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("dcmtk %s files=%zu seconds=%.6f files_per_s=%.1f peak_rss_kb=%ld checksum=%" PRIu64
           " failures=%zu\n",
           argv[1], paths.size(), seconds, seconds > 0 ? paths.size() / seconds : 0.0, ru.ru_maxrss,
           checksum, failures);
    return failures ? 1 : 0;
}
