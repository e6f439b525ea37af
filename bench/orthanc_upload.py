#!/usr/bin/env python3
"""Uploads files to Orthanc's REST API (POST /instances) from several clients; prints instances/s.

usage: orthanc_upload.py --port PORT [--clients C] [--timeout S] LIST

The ingest benchmark's REST side (bench/run_ingest.sh). Standard library only: each client is a
thread with one persistent HTTP/1.1 connection to 127.0.0.1 (TCP_NODELAY, as Orthanc's own
server sets it), taking the next path of LIST, reading the file and posting it as
application/dicom. An upload counts as done when Orthanc answers 200 with Status "Success"
(Orthanc has then stored the file and committed its index rows). The clock runs from the first
request to the last answer; reading a file is inside it, as it is for mira. Every answer is
bounded by --timeout; a failed upload is counted, not retried. Prints one line:
  orthanc-rest files=N failed=F seconds=S instances_per_s=R
and exits 1 if any upload failed.
"""
import argparse
import http.client
import json
import socket
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("list")
    args = ap.parse_args()
    with open(args.list) as f:
        paths = [line.strip() for line in f if line.strip()]

    lock = threading.Lock()
    state = {"next": 0, "failed": 0, "first_error": None}

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= len(paths):
                break
            ok, why = False, ""
            try:
                with open(paths[i], "rb") as f:
                    body = f.read()
                conn.request("POST", "/instances", body=body,
                             headers={"Content-Type": "application/dicom"})
                r = conn.getresponse()
                answer = r.read()
                status = json.loads(answer).get("Status") if r.status == 200 else None
                ok = status == "Success"
                why = f"HTTP {r.status}, Status {status}"
            except (OSError, http.client.HTTPException, ValueError) as e:
                why = str(e)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
            if not ok:
                with lock:
                    state["failed"] += 1
                    state["first_error"] = state["first_error"] or f"{paths[i]}: {why}"
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(max(1, args.clients))]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    n = len(paths)
    print(f"orthanc-rest files={n} failed={state['failed']} seconds={seconds:.6f} "
          f"instances_per_s={(n - state['failed']) / seconds:.1f}")
    if state["first_error"]:
        print(f"orthanc_upload: {state['failed']} failed; first: {state['first_error']}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
