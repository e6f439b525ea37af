#!/usr/bin/env python3
"""The DICOMweb benchmark's client: the same requests to mira and Orthanc, side by side.

usage: web_bench.py read  --corpus JSON --side SPEC --side SPEC --out JSON [options]
       web_bench.py stow  --corpus JSON --side SPEC --list LIST --clients C --out JSONL
       web_bench.py wrk   --corpus JSON --side SPEC --side SPEC --out JSON [options]
       web_bench.py report --read JSON --stow JSONL --wrk JSON

Run by bench/run_web.sh, inside the network namespace where both servers listen on
127.0.0.1 (the only address ever used). SPEC is NAME=BASE[,TOKEN[,PID]]: BASE the server's
DICOMweb root (http://127.0.0.1:PORT/dicomweb for mira, .../dicom-web for Orthanc), TOKEN a
bearer token sent as Authorization (empty for Orthanc, which has authentication off), PID
the server's process, whose CPU time (user + system, every thread) is read from /proc before
and after each measurement.

read: three measurements, each alternating between the sides request by request (or pass by
  pass), on one persistent HTTP/1.1 connection per client (TCP_NODELAY), a request's time
  running from its first byte sent to its body's last byte read:
    metadata  GET studies/S/series/R/metadata of the 1,000-instance series, --meta-n times a
              side (fewer if a side's requests add up to --meta-budget seconds, at least 3);
              the first answer of each side is checked (a JSON array holding every SOP
              Instance UID of the series) and not counted;
    qido      every study search of corpus.json, --qido-n times a side; every answer is
              checked: 200 (or 204 for none) with the number of studies the corpus says;
    wado      every instance of the series retrieved (GET .../instances/I, Accept:
              multipart/related; type="application/dicom"; transfer-syntax=*) by
              --wado-clients threads taking the next instance of the list, --wado-reps
              passes a side after one warm-up pass; every answer is checked (200, one
              application/dicom part starting with a PS3.10 preamble, as large as its file).
stow: one side's STOW-RS of LIST (new, empty receiver): the files read into memory and made into
  multipart/related; type="application/dicom" bodies of --batch instances before the clock;
  --clients threads POST them to BASE/studies, each answer checked (200 and as many
  Referenced SOP Sequence items as parts, no Failed SOP Sequence). Appends one JSON line.
wrk: `wrk -c C -t T -d Ds --timeout 5s --latency` against a QIDO-RS search and the series
  metadata of each side, in turn, with the bearer token as a header; wrk's requests/s,
  latency percentiles, non-2xx answers and socket errors.
report: prints the tables and the goals of issue 6 from the files above.

Every loop is bounded by a count, and every request by --timeout seconds.
"""
import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
TICK = os.sysconf("SC_CLK_TCK")


class Side:
    def __init__(self, spec, timeout):
        name, _, rest = spec.partition("=")
        parts = rest.split(",")
        self.name = name
        self.base = parts[0].rstrip("/")
        self.token = parts[1] if len(parts) > 1 and parts[1] else None
        self.pid = int(parts[2]) if len(parts) > 2 and parts[2] else None
        u = urllib.parse.urlsplit(self.base)
        if u.hostname != "127.0.0.1":
            raise SystemExit(f"web_bench: {self.base}: only 127.0.0.1 is a target")
        self.port = u.port
        self.root = u.path
        self.timeout = timeout

    def headers(self, extra=None):
        h = {"Accept-Encoding": "identity"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(extra or {})
        return h

    def cpu(self):
        """The server's CPU seconds so far (user + system, all threads), or None."""
        if not self.pid:
            return None
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            return None


class Client:
    """One persistent connection; reconnects (once a request) when the server closed it."""

    def __init__(self, side):
        self.side = side
        self.conn = None
        self.reconnects = 0

    def _connect(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", self.side.port,
                                               timeout=self.side.timeout)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, method, path, body=None, headers=None):
        """Returns (status, response headers, body bytes, seconds)."""
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            t0 = time.perf_counter()
            try:
                self.conn.request(method, self.side.root + path, body=body,
                                  headers=self.side.headers(headers))
                r = self.conn.getresponse()
                data = r.read()
                secs = time.perf_counter() - t0
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, r, data, secs
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
                self.reconnects += 1

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def cpu_delta(side, before):
    now = side.cpu()
    return None if now is None or before is None else round(now - before, 3)


# ------------------------------------------------------------------ read


def check_metadata(side, status, data, corpus):
    if status != 200:
        raise SystemExit(f"web_bench: {side.name} metadata: status {status}: {data[:200]!r}")
    arr = json.loads(data)
    got = {d.get("00080018", {}).get("Value", [None])[0] for d in arr}
    if len(arr) != len(corpus["sops"]) or got != set(corpus["sops"]):
        raise SystemExit(f"web_bench: {side.name} metadata: {len(arr)} instances, "
                         f"{len(got & set(corpus['sops']))} of the series'")
    return len(arr[0])


def measure_metadata(sides, corpus, args):
    path = f"/studies/{corpus['study']}/series/{corpus['series']}/metadata"
    out = {}
    clients = {s.name: Client(s) for s in sides}
    for s in sides:  # the first answer: checked, not counted
        status, _, data, secs = clients[s.name].request("GET", path,
                                                        headers={"Accept": "application/dicom+json"})
        out[s.name] = {"first_seconds": secs, "bytes": len(data),
                       "attributes_first": check_metadata(s, status, data, corpus), "times": []}
    cpu0 = {s.name: s.cpu() for s in sides}
    spent = {s.name: 0.0 for s in sides}
    for i in range(args.meta_n):
        order = sides if i % 2 == 0 else sides[::-1]
        for s in order:
            o = out[s.name]
            if len(o["times"]) >= 3 and spent[s.name] >= args.meta_budget:
                continue
            status, _, data, secs = clients[s.name].request(
                "GET", path, headers={"Accept": "application/dicom+json"})
            if status != 200 or len(data) != o["bytes"]:
                raise SystemExit(f"web_bench: {s.name} metadata: status {status}, "
                                 f"{len(data)} bytes (first answer: {o['bytes']})")
            o["times"].append(secs)
            spent[s.name] += secs
    for s in sides:
        o = out[s.name]
        o["cpu_seconds"] = cpu_delta(s, cpu0[s.name])
        o["n"] = len(o["times"])
        o["median_ms"] = 1000 * statistics.median(o["times"])
        o["p95_ms"] = 1000 * pct(o["times"], 95)
        o["reconnects"] = clients[s.name].reconnects
        clients[s.name].close()
    return out


def measure_qido(sides, corpus, args):
    out = {s.name: {"times": [], "per_query": {}} for s in sides}
    clients = {s.name: Client(s) for s in sides}
    searches = corpus["searches"]
    cpu0 = {s.name: s.cpu() for s in sides}
    for i in range(args.qido_n):
        order = sides if i % 2 == 0 else sides[::-1]
        for q in searches:
            for s in order:
                status, _, data, secs = clients[s.name].request(
                    "GET", "/studies?" + q["query"], headers={"Accept": "application/dicom+json"})
                found = len(json.loads(data)) if status == 200 and data else 0
                if status not in (200, 204) or found != q["expect"]:
                    raise SystemExit(f"web_bench: {s.name} {q['query']}: status {status}, "
                                     f"{found} studies, {q['expect']} expected")
                out[s.name]["times"].append(secs)
                out[s.name]["per_query"].setdefault(q["label"], []).append(secs)
    for s in sides:
        o = out[s.name]
        o["cpu_seconds"] = cpu_delta(s, cpu0[s.name])
        o["n"] = len(o["times"])
        o["median_ms"] = 1000 * statistics.median(o["times"])
        o["p95_ms"] = 1000 * pct(o["times"], 95)
        o["per_query_median_ms"] = {k: 1000 * statistics.median(v)
                                    for k, v in o["per_query"].items()}
        o["reconnects"] = clients[s.name].reconnects
        del o["per_query"]
        clients[s.name].close()
    return out


def wado_pass(side, corpus, sizes, nclients):
    """One pass over every instance of the series; returns (seconds, bytes, cpu seconds)."""
    sops = corpus["sops"]
    base = f"/studies/{corpus['study']}/series/{corpus['series']}/instances/"
    lock = threading.Lock()
    state = {"next": 0, "bytes": 0, "error": None}

    def worker():
        c = Client(side)
        try:
            while True:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= len(sops) or state["error"]:
                    break
                status, r, data, _ = c.request("GET", base + sops[i],
                                               headers={"Accept": ACCEPT_DICOM})
                ok = (status == 200 and data.find(b"DICM", 0, 4096) >= 128
                      and len(data) >= sizes[i]
                      and "multipart/related" in (r.getheader("Content-Type") or ""))
                with lock:
                    state["bytes"] += len(data)
                    if not ok and not state["error"]:
                        state["error"] = f"instance {i}: status {status}, {len(data)} bytes"
        except Exception as e:  # noqa: BLE001 - reported, and the run fails
            with lock:
                state["error"] = state["error"] or f"{type(e).__name__}: {e}"
        finally:
            c.close()

    cpu0 = side.cpu()
    threads = [threading.Thread(target=worker) for _ in range(nclients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    if state["error"]:
        raise SystemExit(f"web_bench: {side.name} WADO-RS: {state['error']}")
    return secs, state["bytes"], cpu_delta(side, cpu0)


def measure_wado(sides, corpus, args):
    sizes = [os.path.getsize(p) for p in corpus["paths"]]
    out = {s.name: {"runs": [], "cpu": []} for s in sides}
    for s in sides:
        wado_pass(s, corpus, sizes, args.wado_clients)  # warm-up
    for rep in range(args.wado_reps):
        for s in (sides if rep % 2 == 0 else sides[::-1]):
            secs, nbytes, cpu = wado_pass(s, corpus, sizes, args.wado_clients)
            out[s.name]["runs"].append({"seconds": secs, "bytes": nbytes,
                                        "instances_per_s": len(sizes) / secs,
                                        "mib_per_s": nbytes / secs / 2**20})
            out[s.name]["cpu"].append(cpu)
    for s in sides:
        o = out[s.name]
        o["instances_per_s"] = statistics.median(r["instances_per_s"] for r in o["runs"])
        o["mib_per_s"] = statistics.median(r["mib_per_s"] for r in o["runs"])
        cpus = [c for c in o["cpu"] if c is not None]
        o["cpu_ms_per_instance"] = (1000 * sum(cpus) / (len(cpus) * len(sizes))) if cpus else None
    return out


def cmd_read(args):
    corpus = json.load(open(args.corpus))
    with open(args.series_list) as f:
        corpus["paths"] = [line.strip() for line in f if line.strip()]
    sides = [Side(s, args.timeout) for s in args.side]
    c0 = os.times()
    res = {}
    for what, fn in (("metadata", measure_metadata), ("qido", measure_qido),
                     ("wado", measure_wado)):
        t0 = time.perf_counter()
        c = os.times()
        res[what] = fn(sides, corpus, args)
        c1 = os.times()
        res[what]["_client_cpu_seconds"] = round(c1.user + c1.system - c.user - c.system, 3)
        res[what]["_wall_seconds"] = round(time.perf_counter() - t0, 3)
        print(f"web_bench: {what} done in {res[what]['_wall_seconds']:.1f} s", file=sys.stderr)
    c1 = os.times()
    res["client_cpu_seconds"] = round(c1.user + c1.system - c0.user - c0.system, 3)
    res["params"] = {"meta_n": args.meta_n, "meta_budget": args.meta_budget,
                     "qido_n": args.qido_n, "wado_clients": args.wado_clients,
                     "wado_reps": args.wado_reps, "searches": len(corpus["searches"]),
                     "instances": len(corpus["sops"])}
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)


# ------------------------------------------------------------------ stow


def cmd_stow(args):
    (side,) = [Side(s, args.timeout) for s in args.side]
    with open(args.list) as f:
        paths = [line.strip() for line in f if line.strip()]
    bodies = []
    for k in range(0, len(paths), args.batch):
        boundary = f"mira-bench-{k:06d}-5f0c2a"
        chunks = []
        for p in paths[k:k + args.batch]:
            with open(p, "rb") as f:
                data = f.read()
            chunks.append(f"--{boundary}\r\nContent-Type: application/dicom\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
        chunks.append(f"--{boundary}--\r\n".encode())
        bodies.append((boundary, len(paths[k:k + args.batch]), b"".join(chunks)))
    total = sum(len(b[2]) for b in bodies)
    lock = threading.Lock()
    state = {"next": 0, "stored": 0, "error": None}

    def worker():
        c = Client(side)
        try:
            while True:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= len(bodies) or state["error"]:
                    break
                boundary, n, body = bodies[i]
                ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
                status, _, data, _ = c.request("POST", "/studies", body=body, headers={
                    "Content-Type": ctype, "Accept": "application/dicom+json"})
                why = None
                if status != 200:
                    why = f"status {status}: {data[:300]!r}"
                else:
                    resp = json.loads(data)
                    ref = resp.get("00081199", {}).get("Value", [])
                    if len(ref) != n or resp.get("00081198", {}).get("Value"):
                        why = f"{len(ref)} of {n} referenced: {data[:300]!r}"
                with lock:
                    if why:
                        state["error"] = state["error"] or f"batch {i}: {why}"
                    else:
                        state["stored"] += n
        except Exception as e:  # noqa: BLE001 - reported, and the run fails
            with lock:
                state["error"] = state["error"] or f"{type(e).__name__}: {e}"
        finally:
            c.close()

    cpu0 = side.cpu()
    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    line = {"side": side.name, "clients": args.clients, "batch": args.batch,
            "instances": len(paths), "stored": state["stored"], "seconds": secs,
            "instances_per_s": state["stored"] / secs, "mib_per_s": total / secs / 2**20,
            "cpu_seconds": cpu_delta(side, cpu0), "error": state["error"]}
    with open(args.out, "a") as f:
        f.write(json.dumps(line) + "\n")
    print(f"web_bench: stow {side.name} clients={args.clients} stored={state['stored']} "
          f"seconds={secs:.3f} instances_per_s={line['instances_per_s']:.1f}", file=sys.stderr)
    if state["error"]:
        print(f"web_bench: {side.name} STOW-RS: {state['error']}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ wrk

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def parse_wrk(text):
    def num(pattern, cast=float, default=0):
        m = re.search(pattern, text)
        return cast(m.group(1)) if m else default

    r = {"requests_per_s": num(r"Requests/sec:\s+([\d.]+)"),
         "requests": num(r"(\d+) requests in", int),
         "non_2xx": num(r"Non-2xx or 3xx responses:\s+(\d+)", int)}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                  map(int, m.groups()))) if m else {}
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        r[f"p{p}_ms"] = float(m.group(1)) * UNIT[m.group(2)] if m else None
    return r


def settle(sides, limit=90.0):
    """Wait (at most limit seconds) until no server is still busy with what an earlier run left
    (Orthanc keeps working through the requests queued when wrk stopped): each side under 10 %
    of a core over half a second. Returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        before = [s.cpu() for s in sides]
        time.sleep(0.5)
        busy = [s.name for s, b in zip(sides, before)
                if b is not None and (s.cpu() or b) - b > 0.05]
        if not busy:
            break
    return time.perf_counter() - t0


def cmd_wrk(args):
    corpus = json.load(open(args.corpus))
    sides = [Side(s, args.timeout) for s in args.side]
    targets = [("qido " + args.qido, "/studies?" + args.qido),
               ("series metadata",
                f"/studies/{corpus['study']}/series/{corpus['series']}/metadata")]
    out = []
    for label, path in (targets if not args.only_wado else []):
        for s in sides:
            cmd = ["wrk", "-c", str(args.connections), "-t", str(args.threads),
                   "-d", f"{args.duration}s", "--timeout", "5s", "--latency",
                   "-H", "Accept: application/dicom+json"]
            if s.token:
                cmd += ["-H", "Authorization: Bearer " + s.token]
            cmd.append(f"http://127.0.0.1:{s.port}{s.root}{path}")
            waited = settle(sides)
            cpu0 = s.cpu()
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=args.duration + 60)
            r = parse_wrk(p.stdout)
            r.update(side=s.name, target=label, exit=p.returncode, settled_seconds=waited,
                     cpu_seconds=cpu_delta(s, cpu0),
                     command=" ".join(c if not c.startswith("Authorization") else
                                      "Authorization: Bearer TOKEN" for c in cmd))
            r["raw"] = p.stdout + p.stderr
            out.append(r)
            print(f"web_bench: wrk {s.name} {label}: {r['requests_per_s']} req/s, "
                  f"non-2xx {r['non_2xx']}, socket errors {r['socket_errors']}", file=sys.stderr)
            time.sleep(2)  # let the last connections close before the next run
    # WADO-RS retrieval again, driven by wrk (C, an event loop) instead of this Python client,
    # whose threads share one interpreter lock and a core with the servers: each of
    # --wado-connections connections asks for the series' instances in turn (a Lua script)
    paths = os.path.join(os.path.dirname(os.path.abspath(args.out)), "wado.paths")
    script = os.path.join(os.path.dirname(os.path.abspath(args.out)), "wado.lua")
    with open(script, "w") as f:
        f.write('local paths = {}\n'
                'for line in io.lines(os.getenv("WADO_PATHS")) do paths[#paths + 1] = line end\n'
                'local i = 0\n'
                'request = function()\n'
                '  i = i % #paths + 1\n'
                '  return wrk.format("GET", paths[i])\n'
                'end\n')
    for s in (sides if args.only_wado else []):
        with open(paths, "w") as f:
            for sop in corpus["sops"]:
                f.write(f"{s.root}/studies/{corpus['study']}/series/{corpus['series']}/"
                        f"instances/{sop}\n")
        cmd = ["wrk", "-c", str(args.wado_connections), "-t", "1", "-d", f"{args.duration}s",
               "--timeout", "10s", "--latency", "-s", script, "-H", "Accept: " + ACCEPT_DICOM]
        if s.token:
            cmd += ["-H", "Authorization: Bearer " + s.token]
        cmd.append(f"http://127.0.0.1:{s.port}{s.root}/studies")
        settle(sides)
        cpu0 = s.cpu()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60,
                           env={**os.environ, "WADO_PATHS": paths})
        r = parse_wrk(p.stdout)
        m = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", p.stdout)
        r["mib_per_s"] = float(m.group(1)) * {"B": 2**-20, "KB": 2**-10, "MB": 1, "GB": 1024}[
            m.group(2)] if m else None
        r.update(side=s.name, target="wado", kind="wado", exit=p.returncode,
                 connections=args.wado_connections, cpu_seconds=cpu_delta(s, cpu0),
                 command=" ".join(c if not c.startswith("Authorization") else
                                  "Authorization: Bearer TOKEN" for c in cmd))
        r["raw"] = p.stdout + p.stderr
        out.append(r)
        print(f"web_bench: wrk {s.name} WADO-RS instances: {r['requests_per_s']} req/s, "
              f"non-2xx {r['non_2xx']}, socket errors {r['socket_errors']}", file=sys.stderr)
        time.sleep(2)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


# ------------------------------------------------------------------ report


def ratio(a, b):
    return a / b if b else float("nan")


LOG_LINE = re.compile(r"http [^:]+(?::\d+)?: (\w+) (\S+)(?: keys \S+)?(?: \(\d+ bytes received\))? "
                      r"-> (\d+), (\d+) bytes, (\d+) ms")


def mira_log_summary(path, split):
    """mira serve's request log: server-side times of (a)-(c), and what (e) left in it."""
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    read, wrk = lines[:split], lines[split:]
    def times(part):
        ms = {"metadata": [], "qido": [], "instance": []}
        for line in part:
            m = LOG_LINE.search(line)
            if not m:
                continue
            path_, t = m.group(2), int(m.group(5))
            key = ("metadata" if path_.endswith("/metadata") else "instance" if "/instances/" in path_
                   else "qido" if path_.endswith("/studies") else None)
            if key:
                ms[key].append(t)
        return ms

    statuses = {}
    other = {}
    for line in wrk:
        m = LOG_LINE.search(line)
        if m:
            statuses[m.group(3)] = statuses.get(m.group(3), 0) + 1
            continue
        if "no reply" in line:
            key = "no reply: " + line.rsplit("(", 1)[-1].rstrip(")")
        elif " warning" in line or " error" in line:
            key = line.split(" serve ", 1)[-1][:60]
        else:
            continue
        other[key] = other.get(key, 0) + 1
    return times(read), times(wrk), statuses, other


def cmd_report(args):
    rd = json.load(open(args.read))
    stow = [json.loads(line) for line in open(args.stow) if line.strip()]
    wrk = [r for path in args.wrk for r in json.load(open(path))]
    m, o = "mira", "orthanc"
    p = rd["params"]
    goals = []

    md = rd["metadata"]
    print(f"(a) series metadata, {p['instances']} instances (GET .../series/R/metadata; {md[m]['bytes']} "
          f"bytes from mira, {md[o]['bytes']} from Orthanc)")
    print(f"    {'':26} {'median ms':>10} {'p95 ms':>10} {'n':>4} {'first ms':>9} {'server CPU ms/req':>18}")
    for s, label in ((m, "mira"), (o, "Orthanc + DICOMweb")):
        x = md[s]
        cpu = f"{1000 * x['cpu_seconds'] / x['n']:.1f}" if x.get("cpu_seconds") is not None else "-"
        print(f"    {label:26} {x['median_ms']:10.1f} {x['p95_ms']:10.1f} {x['n']:4d} "
              f"{1000 * x['first_seconds']:9.1f} {cpu:>18}")
    print(f"    Orthanc / mira (median): {ratio(md[o]['median_ms'], md[m]['median_ms']):.1f}x")
    goals.append(("series metadata median < 100 ms", f"{md[m]['median_ms']:.1f} ms",
                  md[m]["median_ms"] < 100))
    print()

    q = rd["qido"]
    print(f"(b) QIDO-RS study searches ({p['searches']} searches x {p['qido_n']} a side, "
          "alternating; every answer's count checked)")
    print(f"    {'median ms':34} {'mira':>8} {'Orthanc':>8} {'Orthanc/mira':>13}")
    for label, v in q[m]["per_query_median_ms"].items():
        w = q[o]["per_query_median_ms"][label]
        print(f"    {label:34} {v:8.2f} {w:8.2f} {ratio(w, v):12.1f}x")
    print(f"    {'all searches: median':34} {q[m]['median_ms']:8.2f} {q[o]['median_ms']:8.2f} "
          f"{ratio(q[o]['median_ms'], q[m]['median_ms']):12.1f}x")
    print(f"    {'all searches: p95':34} {q[m]['p95_ms']:8.2f} {q[o]['p95_ms']:8.2f}")
    for s in (m, o):
        if q[s].get("cpu_seconds") is not None:
            print(f"    server CPU ms a search, {s}: {1000 * q[s]['cpu_seconds'] / q[s]['n']:.2f}")
    goals.append(("QIDO-RS median <= 1/2 Orthanc's",
                  f"{q[m]['median_ms']:.2f} vs {q[o]['median_ms']:.2f} ms "
                  f"({ratio(q[o]['median_ms'], q[m]['median_ms']):.1f}x)",
                  q[m]["median_ms"] * 2 <= q[o]["median_ms"]))
    print()

    w = rd["wado"]
    print(f"(c) WADO-RS instance retrieval, the {p['instances']} instances, {p['wado_clients']} clients, "
          f"median of {p['wado_reps']} passes after a warm-up (transfer-syntax=*)")
    print(f"    {'':26} {'instances/s':>12} {'MiB/s':>8} {'server CPU ms/inst':>19}   passes (inst/s)")
    for s, label in ((m, "mira"), (o, "Orthanc + DICOMweb")):
        x = w[s]
        cpu = f"{x['cpu_ms_per_instance']:.2f}" if x.get("cpu_ms_per_instance") else "-"
        runs = " ".join(f"{r['instances_per_s']:.0f}" for r in x["runs"])
        print(f"    {label:26} {x['instances_per_s']:12.1f} {x['mib_per_s']:8.1f} {cpu:>19}   {runs}")
    rw = ratio(w[m]["instances_per_s"], w[o]["instances_per_s"])
    print(f"    mira / Orthanc: {rw:.1f}x  (this Python client)")
    ww = {r["side"]: r for r in wrk if r.get("kind") == "wado"}
    if m in ww and o in ww:
        print(f"    driven by wrk instead ({ww[m]['connections']} connections, each asking for the "
              f"instances in turn, {ww[m]['requests']} and {ww[o]['requests']} requests):")
        for s, label in ((m, "mira"), (o, "Orthanc + DICOMweb")):
            x = ww[s]
            cpu = (f"{1000 * x['cpu_seconds'] / x['requests']:.2f}"
                   if x.get("cpu_seconds") is not None and x["requests"] else "-")
            mib = f"{x['mib_per_s']:.1f}" if x.get("mib_per_s") is not None else "-"
            print(f"    {label:26} {x['requests_per_s']:12.1f} {mib:>8} {cpu:>19}   "
                  f"non-2xx {x['non_2xx']}, socket errors {sum((x['socket_errors'] or {}).values())}")
        rk = ratio(ww[m]["requests_per_s"], ww[o]["requests_per_s"])
        print(f"    mira / Orthanc: {rk:.1f}x  (wrk)")
        ok = all(ww[s]["non_2xx"] == 0 and not sum((ww[s]["socket_errors"] or {}).values())
                 for s in (m, o))
        goals.append(("WADO-RS retrieval >= 2x Orthanc (wrk)", f"{rk:.1f}x", rk >= 2 and ok))
        goals.append(("WADO-RS retrieval (this Python client)", f"{rw:.1f}x", rw >= 2))
    else:
        goals.append(("WADO-RS retrieval >= 2x Orthanc", f"{rw:.1f}x", rw >= 2))
    print()

    print(f"(d) STOW-RS ingest of the {p['instances']}-instance series into new, empty receivers "
          f"({stow[0]['batch'] if stow else '?'} instances a request)")
    print(f"    {'':26} {'clients':>7} {'instances/s':>12} {'MiB/s':>8} {'CPU ms/inst':>12}   runs (inst/s)")
    med = {}
    for s, label in ((m, "mira"), (o, "Orthanc + DICOMweb")):
        for c in sorted({x["clients"] for x in stow}):
            runs = [x for x in stow if x["side"] == s and x["clients"] == c]
            if not runs:
                continue
            bad = [x for x in runs if x["error"] or x["stored"] != x["instances"]]
            v = statistics.median(x["instances_per_s"] for x in runs)
            mb = statistics.median(x["mib_per_s"] for x in runs)
            cpus = [x["cpu_seconds"] / x["instances"] for x in runs if x["cpu_seconds"] is not None]
            cpu = f"{1000 * statistics.median(cpus):.2f}" if cpus else "-"
            med[(s, c)] = v
            flag = f"   ({len(bad)} run(s) failed)" if bad else ""
            print(f"    {label:26} {c:7d} {v:12.1f} {mb:8.1f} {cpu:>12}   "
                  + " ".join(f"{x['instances_per_s']:.0f}" for x in runs) + flag)
    for c in sorted({x["clients"] for x in stow}):
        if (m, c) in med and (o, c) in med:
            r = ratio(med[(m, c)], med[(o, c)])
            print(f"    mira / Orthanc, {c} client(s): {r:.1f}x")
            goals.append((f"STOW-RS >= 2x Orthanc, {c} client(s)", f"{r:.1f}x", r >= 2))
    print()

    print("(e) wrk, 64 connections on loopback, bounded run (wrk's errors: non-2xx answers; "
          "connect, read and write errors; timeouts: answers that came after wrk's --timeout; "
          "requests still unanswered at the end are not counted by wrk)")
    print(f"    {'':40} {'done':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} "
          f"{'c/r/w err':>9} {'timeouts':>8}")
    for r in wrk:
        if r.get("kind") == "wado":
            continue
        se = r["socket_errors"] or {}
        crw = se.get("connect", 0) + se.get("read", 0) + se.get("write", 0)
        to = se.get("timeout", 0)
        label = f"{'mira' if r['side'] == m else 'Orthanc'}, {r['target']}"
        p50 = f"{r['p50_ms']:.1f}" if r["requests"] else "-"
        p99 = f"{r['p99_ms']:.1f}" if r["requests"] else "-"
        print(f"    {label:40} {r['requests']:6d} {r['requests_per_s']:8.1f} {p50:>8} {p99:>8} "
              f"{r['non_2xx']:7d} {crw:9d} {to:8d}")
        if r["side"] == m:
            goals.append((f"64 clients, no errors: {r['target']}",
                          f"{r['non_2xx']} non-2xx, {crw} c/r/w, {to} timeouts of {r['requests']}",
                          r["non_2xx"] == 0 and crw == 0 and to == 0 and r["requests"] > 0
                          and r["exit"] == 0))
    load = [r for r in wrk if r.get("kind") != "wado"]
    print(f"    command: {load[0]['command'] if load else '-'}")
    waits = [r.get("settled_seconds") for r in load if r.get("settled_seconds") is not None]
    if waits:
        print("    before each run, until both servers were idle (under 10 % of a core): "
              + ", ".join(f"{w:.1f} s" for w in waits))
    for r in wrk:
        if r.get("kind") == "wado" and r["side"] == m:
            print(f"    WADO-RS command: {r['command']}")
    print()
    print("goals of issue 6:")
    for name, fig, ok in goals:
        print(f"    {name:44} {fig:46} {'met' if ok else 'NOT met'}")
    print(f"client CPU seconds (this driver, every thread): metadata "
          f"{rd['metadata']['_client_cpu_seconds']}, QIDO-RS {rd['qido']['_client_cpu_seconds']}, "
          f"WADO-RS {rd['wado']['_client_cpu_seconds']} (wall {rd['wado']['_wall_seconds']} s)")
    if args.mira_log:
        ms, ms_wrk, statuses, other = mira_log_summary(args.mira_log, args.log_split)
        print("mira serve's log: its own time a request (whole ms, from the request's headers to "
              "its last byte queued)")
        for phase, d in (("(a)-(c)", ms), ("(e) wrk", ms_wrk)):
            for k, v in d.items():
                if v:
                    print(f"    {phase:8} {k:9} n={len(v):6d} median {statistics.median(v):6.1f} "
                          f"p95 {pct(v, 95):7.1f} p99 {pct(v, 99):7.1f} max {max(v)}")
        print("mira serve's log, (e): statuses " +
              (", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())) or "none") +
              ("; " + "; ".join(f"{k}: {v}" for k, v in sorted(other.items())) if other else
               "; no warnings, errors or requests without a reply"))
    return 0
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("read", "stow", "wrk"):
        s = sub.add_parser(name)
        s.add_argument("--side", action="append", required=True)
        s.add_argument("--corpus", required=True)
        s.add_argument("--out", required=True)
        s.add_argument("--timeout", type=float, default=120.0)
    r = sub.choices["read"]
    r.add_argument("--series-list", required=True)
    r.add_argument("--meta-n", type=int, default=30)
    r.add_argument("--meta-budget", type=float, default=40.0)
    r.add_argument("--qido-n", type=int, default=15)
    r.add_argument("--wado-clients", type=int, default=4)
    r.add_argument("--wado-reps", type=int, default=3)
    s = sub.choices["stow"]
    s.add_argument("--list", required=True)
    s.add_argument("--clients", type=int, default=4)
    s.add_argument("--batch", type=int, default=25)
    w = sub.choices["wrk"]
    w.add_argument("--connections", type=int, default=64)
    w.add_argument("--threads", type=int, default=2)
    w.add_argument("--duration", type=int, default=10)
    w.add_argument("--qido", default="PatientName=S*")
    w.add_argument("--wado-connections", type=int, default=4)
    w.add_argument("--only-wado", action="store_true",
                   help="only the WADO-RS retrievals (run before the 64-connection load, which "
                        "leaves Orthanc busy for a while)")
    rep = sub.add_parser("report")
    rep.add_argument("--read", required=True)
    rep.add_argument("--stow", required=True)
    rep.add_argument("--wrk", required=True, action="append")
    rep.add_argument("--mira-log", help="mira serve's stderr of (a)-(c) and (e)")
    rep.add_argument("--log-split", type=int, default=0, help="its lines before (e)")
    args = ap.parse_args()
    return {"read": cmd_read, "stow": cmd_stow, "wrk": cmd_wrk, "report": cmd_report}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
