// Decode benchmark, GDCM side: every frame of every file of a list decoded with Debian's libgdcm.
//
// file:   the clock covers gdcm::ImageReader::Read (the whole file parsed into memory) and
//         gdcm::Image::GetBuffer (every frame decoded into one reused buffer).
// decode: every file is read first; the clock covers GetBuffer only.
// GDCM decodes one frame after the other in the calling thread; its JPEG 2000 codec (GDCM
// 3.0.21's gdcmJPEG2000Codec.cxx) gives OpenJPEG 4 threads inside each frame.
#include <gdcmAttribute.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmTrace.h>

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

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "file") != 0 && strcmp(argv[1], "decode") != 0)) {
        fprintf(stderr, "usage: gdcm_decode file|decode LIST\n"
                        "Decodes every frame of every file named in LIST (one path a line) with\n"
                        "GDCM (ImageReader + Image::GetBuffer); see bench/mira_decode.c.\n");
        return 2;
    }
    bool whole_file = strcmp(argv[1], "file") == 0;
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetDebug(false);

    std::vector<std::string> paths;
    std::ifstream list(argv[2]);
    if (!list) {
        fprintf(stderr, "gdcm_decode: cannot open %s\n", argv[2]);
        return 1;
    }
    for (std::string line; std::getline(list, line);)
        if (!line.empty())
            paths.push_back(line);

    // Outside the clock: the transfer syntax (from the first file) and, for decode, every file.
    std::vector<std::unique_ptr<gdcm::ImageReader>> readers(paths.size());
    std::vector<char> buffer;
    std::string ts = "?";
    for (size_t i = 0; i < paths.size(); i++) {
        if (whole_file && i > 0)
            break;
        readers[i].reset(new gdcm::ImageReader);
        readers[i]->SetFileName(paths[i].c_str());
        if (!readers[i]->Read()) {
            fprintf(stderr, "gdcm_decode: %s: cannot read\n", paths[i].c_str());
            return 1;
        }
        if (i == 0) {
            ts = readers[0]->GetImage().GetTransferSyntax().GetString();
            // The output buffer sized (and zeroed, its pages faulted in) for the first file,
            // outside the clock, as mira_decode does.
            buffer.resize(readers[0]->GetImage().GetBufferLength());
            while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' '))
                ts.pop_back();
        }
    }
    if (whole_file && !readers.empty())
        readers[0].reset();

    uint64_t bytes = 0, sum = 0;
    size_t frames = 0, failures = 0;
    double seconds = 0, cpu = 0;
    for (size_t i = 0; i < paths.size(); i++) {
        auto t0 = std::chrono::steady_clock::now();
        double c0 = cpu_now();
        std::unique_ptr<gdcm::ImageReader> own;
        gdcm::ImageReader *r = readers[i].get();
        if (whole_file) {
            own.reset(new gdcm::ImageReader);
            own->SetFileName(paths[i].c_str());
            if (!own->Read()) {
                if (failures++ < 5)
                    fprintf(stderr, "gdcm_decode: %s: cannot read\n", paths[i].c_str());
                continue;
            }
            r = own.get();
        }
        const gdcm::Image &img = r->GetImage();
        size_t len = img.GetBufferLength();
        if (buffer.size() < len)
            buffer.resize(len);
        bool ok = img.GetBuffer(buffer.data());
        unsigned nframes = img.GetNumberOfDimensions() > 2 ? img.GetDimension(2) : 1;
        const gdcm::PixelFormat &pf = img.GetPixelFormat();
        size_t sample_bytes = pf.GetBitsAllocated() <= 8 ? 1 : pf.GetBitsAllocated() / 8;
        // Bits Stored as the data set says: GDCM's pixel format takes the codestream's
        // precision (16 for signed data gdcmconv wrote as JPEG 2000), the other sides the
        // attribute's, and the checksum masks with it.
        gdcm::Attribute<0x0028, 0x0101> bs;
        bs.SetFromDataSet(r->GetFile().GetDataSet());
        unsigned bits_stored = bs.GetValue() ? bs.GetValue() : pf.GetBitsStored();
        own.reset();
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        cpu += cpu_now() - c0;
        if (!ok) {
            if (failures++ < 5)
                fprintf(stderr, "gdcm_decode: %s: cannot decode\n", paths[i].c_str());
            continue;
        }
        bytes += len;
        frames += nframes;
        sum += checksum(reinterpret_cast<const uint8_t *>(buffer.data()), len, sample_bytes,
                        bits_stored);
    }
    double mb = (double)bytes / 1e6;
    printf("gdcm ts=%s mode=%s threads=1 files=%zu frames=%zu mb=%.3f seconds=%.6f "
           "mb_per_s=%.1f cpu_s=%.6f checksum=%" PRIu64 " failures=%zu\n",
           ts.c_str(), argv[1], paths.size(), frames, mb, seconds, seconds > 0 ? mb / seconds : 0.0,
           cpu, sum, failures);
    return failures ? 1 : 0;
}
