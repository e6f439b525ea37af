"""MLLP ingest benchmark: ORU^R01 messages into `mira serve --hl7-port` over C connections.

usage: python bench/hl7_bench.py --mira build/mira [--connections 8] [--messages 20000]
                                 [--postgres CONNINFO] [--reps 3] [--out FILE]

Each run starts `mira serve` on a new archive (SQLite index, or with --postgres a new database
made for the run on that PostgreSQL server, dropped after), then C client processes (one connection each, the same client for every run) send
their share of the messages one at a time, as MLLP requires, each waiting for its ACK; the
send-to-ACK time of every message is recorded. Every ACK must be AA for the message sent
(MSA-2), and afterwards `mira hl7 messages` must list exactly the messages sent, or the run
fails. The messages are the 18-line CT report of tests/python/hl7_corpus.py (about 1.9 KB)
with a unique MSH-10 each. Prints, per run, messages/s (all messages over the wall time from
the first send to the last ACK) and the latency distribution (p50, p90, p99, p99.9, max), then
the median run against the goal of issue 7 (2,000 messages/s over 8 connections). Timing
never fails the script; a wrong ACK or a lost message does.
"""
import argparse
import json
import multiprocessing
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))
from hl7_corpus import MESSAGES  # noqa: E402

ORU = MESSAGES["oru_r01_report_v25"]
assert "|ORU-3001|" in ORU
VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def client(args):
    port, k, ids, start_at = args
    msgs = [VT + ORU.replace("|ORU-3001|", f"|{cid}|", 1).encode() + FS + CR for cid in ids]
    sock = socket.create_connection(("127.0.0.1", port), 10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(60)
    while time.time() < start_at:
        time.sleep(0.001)
    lat = []
    bad = []
    for cid, m in zip(ids, msgs):
        t0 = time.perf_counter()
        sock.sendall(m)
        buf = b""
        while not buf.endswith(FS + CR):
            got = sock.recv(4096)
            if not got:
                raise RuntimeError(f"connection {k} closed before the ACK of {cid}")
            buf += got
        lat.append(time.perf_counter() - t0)
        segs = buf[1:-2].split(b"\r")
        msa = next(s for s in segs if s.startswith(b"MSA"))
        f = msa.split(b"|")
        if f[1] != b"AA" or f[2].decode() != cid:
            bad.append((cid, msa.decode(errors="replace")))
    sock.close()
    return lat, bad, time.perf_counter()


def new_database(server, rep):
    import re
    name = f"mira_hl7bench_{os.getpid()}_{rep}"
    subprocess.run(["psql", server, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    f"CREATE DATABASE {name}"], check=True, capture_output=True)
    if "dbname=" in server:
        return name, re.sub(r"dbname=\S+", f"dbname={name}", server)
    return name, server + f" dbname={name}"


def run_once(mira, n, conns, server, workdir, rep):
    adir = pathlib.Path(workdir) / f"archive{rep}"
    dbname, index = new_database(server, rep) if server else (None, "")
    try:
        return run_on(mira, n, conns, index, adir, rep)
    finally:
        if dbname:
            subprocess.run(["psql", server, "-q", "-c", f"DROP DATABASE {dbname}"],
                           capture_output=True)


def run_on(mira, n, conns, index, adir, rep):
    args = [mira, "serve", "--archive", str(adir), "--bind", "127.0.0.1", "--port", "0",
            "--no-http", "--hl7-port", "0", "--quiet"]
    if index:
        args += ["--index", index]
    log = open(str(adir) + ".log", "wb")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    port = None
    for _ in range(4):
        line = proc.stdout.readline()
        if line.startswith(b"hl7 listening"):
            port = int(line.rsplit(b":", 1)[1])
            break
    if port is None:
        proc.kill()
        raise RuntimeError("mira serve did not start its HL7 server")
    ids = [f"B{rep}-{i}" for i in range(n)]
    parts = [(port, k, ids[k::conns], time.time() + 1.0) for k in range(conns)]
    with multiprocessing.Pool(conns) as pool:
        t0 = time.time() + 1.0
        res = pool.map(client, parts)
    t_end = time.time()
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    log.close()
    lat = sorted(x for r in res for x in r[0])
    bad = [b for r in res for b in r[1]]
    if bad:
        raise RuntimeError(f"{len(bad)} messages not answered AA, e.g. {bad[:3]}")
    listed = subprocess.run([mira, "hl7", "messages", "--archive", str(adir), "--json",
                             *(["--index", index] if index else [])],
                            capture_output=True, check=True).stdout.decode().splitlines()
    kept = {json.loads(x)["control_id"] for x in listed}
    if kept != set(ids):
        raise RuntimeError(f"the archive holds {len(kept)} messages of {n} sent")
    wall = t_end - t0
    shutil.rmtree(adir, ignore_errors=True)
    return n / wall, lat


def pct(lat, p):
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mira", default=str(ROOT / "build" / "mira"))
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--postgres", default="")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mira-hl7-bench-")
    lines = []

    def say(s):
        print(s, flush=True)
        lines.append(s)

    backend = "PostgreSQL" if a.postgres else "SQLite"
    say(f"HL7 MLLP ingest: {a.messages} ORU^R01 messages ({len(ORU)} bytes) over "
        f"{a.connections} connections into mira serve ({backend} index), {a.reps} runs")
    say(f"machine: {os.cpu_count()} CPUs, {os.uname().sysname} {os.uname().release}")
    say("run  messages/s   p50 ms   p90 ms   p99 ms  p99.9 ms   max ms")
    rates = []
    try:
        for rep in range(a.reps):
            rate, lat = run_once(a.mira, a.messages, a.connections, a.postgres, work, rep)
            rates.append(rate)
            say(f"{rep + 1:3d}  {rate:10.0f}  {pct(lat, 50):7.2f}  {pct(lat, 90):7.2f}  "
                f"{pct(lat, 99):7.2f}  {pct(lat, 99.9):8.2f}  {lat[-1] * 1000:7.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median(rates)
    say(f"median {med:.0f} messages/s; goal 2000 (issue 7): ratio {med / 2000:.2f} "
        f"({'met' if med >= 2000 else 'missed'})")
    if a.out:
        pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(a.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
