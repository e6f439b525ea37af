#!/usr/bin/env python3
"""Read benchmark, pydicom side: dcmread over a file list, with and without stop_before_pixels.

usage: pydicom_read.py header|full LIST
Prints one line in the format of mira_read and dcmtk_read. The full pass reads the pixel data
bytes (dcmread keeps them as bytes; no decoding to an array, which would need numpy).
"""
import resource
import sys
import time

import pydicom


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("header", "full"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    mode, list_path = sys.argv[1], sys.argv[2]
    header = mode == "header"
    with open(list_path) as f:
        paths = [line.rstrip("\r\n") for line in f if line.strip()]

    checksum = 0
    failures = 0
    t0 = time.perf_counter()
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=header)
        except Exception as e:  # noqa: BLE001 - a benchmark counts failures, it does not stop
            failures += 1
            if failures <= 5:
                print(f"pydicom_read: {path}: {e}", file=sys.stderr)
            continue
        checksum += len(ds)
        if not header:
            checksum += len(ds.PixelData)
    seconds = time.perf_counter() - t0

    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rate = len(paths) / seconds if seconds > 0 else 0.0
    print(f"pydicom {mode} files={len(paths)} seconds={seconds:.6f} files_per_s={rate:.1f} "
          f"peak_rss_kb={rss_kb} checksum={checksum} failures={failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
