#!/usr/bin/env python3
"""Records the PDUs of one DICOM association between two real peers, one file per PDU.

usage: capture_pdus.py LISTEN_PORT TARGET_PORT OUT_DIR PREFIX
Listens on 127.0.0.1:LISTEN_PORT for one connection, relays it to 127.0.0.1:TARGET_PORT and
writes every PDU each side sent to OUT_DIR/PREFIX-NN-<direction>-<type> (the seeds of
fuzz/corpus/fuzz_pdu were made this way, with DCMTK's echoscu/storescu against storescp).
"""
import pathlib
import socket
import sys
import threading


def split_pdus(data):
    out, i = [], 0
    while i + 6 <= len(data):
        n = int.from_bytes(data[i + 2:i + 6], "big")
        out.append(data[i:i + 6 + n])
        i += 6 + n
    return out


def main():
    lport, tport, out_dir, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", lport))
    srv.listen(1)
    srv.settimeout(30)
    a, _ = srv.accept()
    b = socket.create_connection(("127.0.0.1", tport), timeout=30)
    streams = {"rq": bytearray(), "rp": bytearray()}

    def pump(src, dst, key):
        while True:
            try:
                d = src.recv(65536)
            except OSError:
                d = b""
            if not d:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            streams[key] += d
            dst.sendall(d)

    t1 = threading.Thread(target=pump, args=(a, b, "rq"))
    t2 = threading.Thread(target=pump, args=(b, a, "rp"))
    t1.start()
    t2.start()
    t1.join(60)
    t2.join(60)
    for key, data in streams.items():
        for k, pdu in enumerate(split_pdus(bytes(data))):
            (out / f"{prefix}-{k:02d}-{key}-{pdu[0]:02x}").write_bytes(pdu)


if __name__ == "__main__":
    main()
