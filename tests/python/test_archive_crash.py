"""Crash test of the archive (issue 4): `mira import` killed with SIGKILL at random moments.

A corpus of about 1,200 DICOM files is generated once (pydicom, fixed seed): 4 patients, 2
studies each, 3 series each, 50 instances per series, every third one a 256x256 16-bit image
(128 KiB of pixel data) so that writes take time, the others 64x64. A dozen SOP Instance UIDs
have a second version with other content (other pixels, one of them another size), two files
are byte-identical copies of others under another name, and one file is not DICOM at all.

Each iteration starts `mira import --archive A --json --no-progress` on the corpus (shuffled)
with one of three duplicate policies, reads its stdout in a thread and kills it with SIGKILL
after a random delay (a few ms to 400 ms, shrunk to below the length of a complete run once
everything is stored, so nearly every iteration is a kill). Only complete lines printed before
the kill count as acknowledgements. Then, with the killed process gone:

  * `mira check --json` (opening the archive runs recovery first) exits 0 with no problem;
  * tmp/ is empty (recovery removed the dead process's folder), there is no lost+found/;
  * blobs/ holds exactly one file per instance row, and `mira cat --path` names it;
  * every stored instance is byte-identical to one of the corpus files with its SOP Instance
    UID, and to the one the acknowledgements say: what was acknowledged stays acknowledged
    (under `keep` it never changes again; under `overwrite` it may become the other version
    only if that version was in the run);
  * `mira stats` agrees with `mira find --level instance`.

The model of the archive is the verified content of the previous iteration; each run may
change it only as its policy, its inputs and its acknowledgements allow:
  keep          all files; stored content never changes, a new UID gets one of its versions
                (exactly the acknowledged one if a "stored" line was printed);
  overwrite-one one version per UID (mostly the one not stored): after the run the UID holds
                the old content or that version, exactly that version if it was acknowledged;
  overwrite-all both versions in one run (they may meet in one batch, the second replacing a
                blob still in tmp/): the UID holds its old content or one of the versions.
A finished import of everything closes the test. On PostgreSQL the test database's commits are
slowed down on the server (commit_delay, when the server lets us), so that kills often land
while a COMMIT is on its way: the server finishes it after the client died, and recovery must
wait for it before deciding that a blob in the dead process's folder has no row.

A second test crafts what a process killed between COMMIT and the renames leaves behind
(committed blobs in a dead process's tmp folder, plus uncommitted junk) and kills imports again
and again while they recover it. A third one (PostgreSQL) has the server end the import's
connections while it commits, as a server restart would.

The random choices come from MIRA_CRASH_SEED (default fixed); the seed is in every assertion
message. Runs are bounded in number and time; the acceptance rule is at least 50 kills per
backend (MIRA_CRASH_KILLS changes it).
"""
import hashlib
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import threading
import time

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from conftest import mira_bin

SEED = int(os.environ.get("MIRA_CRASH_SEED", "4004"))
MIN_KILLS = int(os.environ.get("MIRA_CRASH_KILLS", "50"))  # 50: the acceptance rule
MAX_ITERATIONS = 120    # bounds on the loop (50 kills take about 50 iterations)
TIME_BUDGET = 300.0     # seconds per backend
MAX_DELAY = 0.400       # seconds before the kill
MIN_DELAY = 0.005

CT = "1.2.840.10008.5.1.4.1.1.2"
ROOT_UID = "1.2.826.0.1.3680043.8.498.4004"
PATIENTS, STUDIES, SERIES, INSTANCES = 4, 2, 3, 50
ALTERNATES = 12
JUNK = "zz-not-dicom.dcm"
# always said: an archive created by an import with --duplicates overwrite keeps that policy in
# its config, so leaving the option out would not mean keep
KEEP = ["--duplicates", "keep"]


# ------------------------------------------------------------------ the corpus

class Entry:
    """One corpus file: its path, SOP Instance UID, hierarchy and content digest."""

    def __init__(self, path, uid, series, study, patient, data):
        self.path = str(path)
        self.uid = uid
        self.series, self.study, self.patient = series, study, patient
        self.sha = hashlib.sha256(data).hexdigest()
        self.size = len(data)


class Corpus:
    def __init__(self, folder):
        self.folder = folder
        self.entries = []       # every DICOM file
        self.by_path = {}
        self.versions = {}      # uid -> {sha: Entry}
        self.junk = None        # the file that is not DICOM

    def add(self, entry):
        self.entries.append(entry)
        self.by_path[entry.path] = entry
        self.versions.setdefault(entry.uid, {}).setdefault(entry.sha, entry)

    def uids(self):
        return sorted(self.versions)

    def all_paths(self):
        return [e.path for e in self.entries] + [self.junk]

    def file_bytes(self, uid, sha):
        return pathlib.Path(self.versions[uid][sha].path).read_bytes()


def make_instance(uid, series, study, patient, number, size, pixels, comment):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = uid
    ds.StudyDate = "20240604"
    ds.StudyTime = "120000"
    ds.Modality = "CT"
    ds.PatientName = f"Crash^Patient{patient[-1]}"
    ds.PatientID = patient
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.StudyID = "1"
    ds.SeriesNumber = int(series.rsplit(".", 1)[1]) + 1
    ds.InstanceNumber = number
    ds.ImageComments = comment
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    return ds


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash-corpus")
    rng = random.Random(SEED)
    c = Corpus(folder)
    specs = []
    for p in range(PATIENTS):
        patient = f"CRASH{p}"
        for s in range(STUDIES):
            study = f"{ROOT_UID}.{p}.{s}"
            for e in range(SERIES):
                series = f"{study}.{e}"
                for i in range(INSTANCES):
                    specs.append((f"{series}.{i}", series, study, patient, i))
    for uid, series, study, patient, i in specs:
        size = 256 if i % 3 == 0 else 64
        pixels = rng.randbytes(size * size * 2)
        ds = make_instance(uid, series, study, patient, i + 1, size, pixels, "version a")
        path = folder / f"{uid}.a.dcm"
        ds.save_as(path, write_like_original=False)
        c.add(Entry(path, uid, series, study, patient, path.read_bytes()))
    # second versions: other pixels (the first of them another size too)
    for k, (uid, series, study, patient, i) in enumerate(rng.sample(specs, ALTERNATES)):
        size = 128 if k == 0 else (256 if i % 3 == 0 else 64)
        pixels = rng.randbytes(size * size * 2)
        ds = make_instance(uid, series, study, patient, i + 1, size, pixels, "version b")
        path = folder / f"{uid}.b.dcm"
        ds.save_as(path, write_like_original=False)
        c.add(Entry(path, uid, series, study, patient, path.read_bytes()))
    # byte-identical copies under other names: always just duplicates
    for e in rng.sample(list(c.entries[:len(specs)]), 2):
        path = folder / f"copy-of-{pathlib.Path(e.path).name}"
        shutil.copyfile(e.path, path)
        c.add(Entry(path, e.uid, e.series, e.study, e.patient, path.read_bytes()))
    junk = folder / JUNK
    junk.write_bytes(rng.randbytes(4000))
    c.junk = str(junk)
    return c


# ------------------------------------------------------------------ running and killing

class Run:
    """A `mira import` started, maybe killed; its complete stdout lines."""

    def __init__(self, archive, paths, extra, delay):
        stderr_path = archive.dir.parent / "import-stderr.txt"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                [mira_bin(), "import", *archive.args, "--json", "--no-progress", *extra, *paths],
                stdout=subprocess.PIPE, stderr=err)
        chunks = []

        def read():
            fd = proc.stdout.fileno()
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)

        reader = threading.Thread(target=read)
        reader.start()
        started = time.monotonic()
        if delay is not None:
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=300)
        self.seconds = time.monotonic() - started
        reader.join(timeout=60)
        proc.stdout.close()
        self.returncode = proc.returncode
        self.killed = proc.returncode == -signal.SIGKILL
        self.stderr = stderr_path.read_text(errors="replace")
        data = b"".join(chunks)
        # a line is an acknowledgement only once its newline is out; a partial last line is not
        self.lines = [json.loads(line) for line in data.split(b"\n")[:-1]]
        self.summary = next((x["summary"] for x in self.lines if "summary" in x), None)
        self.acks = [x for x in self.lines if "status" in x]


def blob_files(archive):
    out = []
    for folder, _, files in os.walk(archive.dir / "blobs"):
        out += [os.path.join(folder, f) for f in files]
    return sorted(out)


class Verifier:
    """The model of the archive (uid -> sha of its content) and the checks after each run."""

    def __init__(self, archive, corpus, seed):
        self.archive = archive
        self.corpus = corpus
        self.seed = seed
        self.present = {}   # verified content after the previous run
        self.digests = {}   # blob path -> sha (a blob's name is never reused)
        self.rng = random.Random(seed + 1)

    def where(self, what):
        return f"[seed {self.seed}, {what}]"

    def run(self, *args, check=True):
        return self.archive.run(*args, check=check)

    def allowed(self, run, policy, inputs, what, index_lost=False):
        """uid -> the set of contents (sha, or None for absent) the run may have left.

        index_lost: the run's index connection was cut, so good files may be rejected."""
        submitted = {}
        for e in inputs:
            submitted.setdefault(e.uid, set()).add(e.sha)
        acked = {}
        stored = {}
        for line in run.acks:
            path, status = line["path"], line["status"]
            if status == "rejected":
                assert path == self.corpus.junk or index_lost, \
                    f"{self.where(what)} rejected a good file: {line}"
                continue
            e = self.corpus.by_path.get(path)
            assert e is not None, f"{self.where(what)} an acknowledgement for no input: {line}"
            assert line["sop_instance_uid"] == e.uid, f"{self.where(what)} {line}"
            assert status in ("stored", "duplicate", "replaced"), f"{self.where(what)} {line}"
            if status == "stored":
                assert e.uid not in self.present, \
                    f"{self.where(what)} {e.uid} was stored already, yet reported 'stored'"
                if policy == "keep":
                    assert e.uid not in stored, \
                        f"{self.where(what)} {e.uid} reported 'stored' twice under keep"
                stored[e.uid] = e.sha
            if status == "replaced":
                assert policy != "keep", f"{self.where(what)} 'replaced' under keep: {line}"
            acked.setdefault(e.uid, set()).add(e.sha)
        out = {}
        for uid in self.corpus.versions:
            prev = self.present.get(uid)
            subs = submitted.get(uid, set())
            if policy == "keep":
                if prev is not None:
                    allow = {prev}
                elif uid in stored:
                    allow = {stored[uid]}
                elif uid in acked:
                    allow = set(subs)
                else:
                    allow = subs | {None}
            else:
                # overwrite: an acknowledged version may be replaced again by a version of the
                # run committed later (acknowledged or not); overwrite-one submits only one
                assert policy == "overwrite-all" or len(subs) <= 1
                allow = set(subs) if uid in acked else subs | {prev}
            out[uid] = allow
        return out

    def digest(self, path):
        sha = self.digests.get(path)
        if sha is None:
            sha = hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
            self.digests[path] = sha
        return sha

    def check_clean(self, what, deep=False):
        proc = self.run("check", "--json", *(["--deep"] if deep else []), check=False)
        lines = [json.loads(x) for x in proc.stdout.decode().splitlines() if x.strip()]
        problems = [x for x in lines if "problem" in x]
        assert proc.returncode == 0 and not problems, \
            f"{self.where(what)} mira check found problems (exit {proc.returncode}): " \
            f"{problems[:10]} {proc.stderr.decode(errors='replace')}"
        reports = [x["report"] for x in lines if "report" in x]
        assert len(reports) == 1, f"{self.where(what)} {lines}"
        return reports[0]

    def verify(self, allowed, what):
        """Check the archive after a run against what it may hold; the model becomes it."""
        a = self.archive
        if not (a.dir / "config.json").exists():
            # killed before the archive existed: nothing can have been acknowledged
            assert all(None in s for s in allowed.values()), \
                f"{self.where(what)} acknowledged, but there is no archive"
            return
        report = self.check_clean(what)
        tmp = a.dir / "tmp"
        left = sorted(os.listdir(tmp)) if tmp.exists() else []
        # a process killed while making its folder (.NAME, before its lock file exists) leaves
        # it empty; the folder never holds blobs and goes once it is a minute old
        left = [x for x in left
                if not (x.startswith(".") and set(os.listdir(tmp / x)) <= {"lock"})]
        assert not left, f"{self.where(what)} tmp/ still holds {left}"
        assert not (a.dir / "lost+found").exists(), f"{self.where(what)} lost+found/ exists"

        found = json.loads(self.run("find", "--level", "instance", "--json", "SOPInstanceUID",
                                    "SeriesInstanceUID", "StudyInstanceUID",
                                    "PatientID").stdout)
        uids = [m["00080018"]["Value"][0] for m in found]
        assert len(uids) == len(set(uids)), f"{self.where(what)} an instance found twice"
        assert report["instances"] == len(uids), f"{self.where(what)} {report}"
        unknown = set(uids) - set(self.corpus.versions)
        assert not unknown, f"{self.where(what)} instances not in the corpus: {sorted(unknown)}"
        paths = []
        if uids:
            out = self.run("cat", "--path", *uids).stdout.decode().splitlines()
            paths = [str(pathlib.Path(p)) for p in out]
        assert len(paths) == len(uids), f"{self.where(what)} cat --path gave {len(paths)} paths"
        files = blob_files(a)
        assert sorted(paths) == files, \
            f"{self.where(what)} blobs/ is not one file per instance row: " \
            f"{len(files)} files, {len(paths)} rows; extra {sorted(set(files) - set(paths))[:5]}" \
            f", missing {sorted(set(paths) - set(files))[:5]}"
        assert report["blobs"] == len(files), f"{self.where(what)} {report}"

        now = {}
        for uid, path in zip(uids, paths):
            sha = self.digest(path)
            assert sha in self.corpus.versions[uid], \
                f"{self.where(what)} {uid}: the blob {path} is none of the files with that UID"
            now[uid] = sha
        for uid, allow in allowed.items():
            got = now.get(uid)
            assert got in allow, \
                f"{self.where(what)} {uid}: holds {self.describe(uid, got)}, expected one of " \
                f"{[self.describe(uid, s) for s in allow]}"

        stats = json.loads(self.run("stats", "--json").stdout)
        assert stats["instances"] == len(uids), f"{self.where(what)} {stats}"
        assert stats["series"] == len({m["0020000E"]["Value"][0] for m in found}), \
            f"{self.where(what)} {stats}"
        assert stats["studies"] == len({m["0020000D"]["Value"][0] for m in found}), \
            f"{self.where(what)} {stats}"
        assert stats["patients"] == len({m["00100020"]["Value"][0] for m in found}), \
            f"{self.where(what)} {stats}"
        assert stats["bytes"] == sum(os.path.getsize(p) for p in paths), \
            f"{self.where(what)} {stats}"
        # the bytes through mira cat itself, for one of them
        for uid in self.rng.sample(uids, min(1, len(uids))):
            got = self.run("cat", uid).stdout
            assert got == self.corpus.file_bytes(uid, now[uid]), \
                f"{self.where(what)} mira cat {uid} differs from its blob's file"
        self.present = now

    def describe(self, uid, sha):
        if sha is None:
            return "nothing"
        e = self.corpus.versions[uid].get(sha)
        return pathlib.Path(e.path).name if e else f"unknown content {sha[:12]}"


def choose_inputs(rng, corpus, policy, present):
    """The files of one run for a policy (the junk file is added by the caller)."""
    if policy != "overwrite-one":
        return list(corpus.entries)
    chosen = set()
    for uid, versions in corpus.versions.items():
        shas = sorted(versions)
        others = [s for s in shas if s != present.get(uid)]
        if len(shas) > 1 and others and rng.random() < 0.7:
            # mostly the version that is not stored, so that overwrites happen
            chosen.add((uid, rng.choice(others)))
        else:
            chosen.add((uid, rng.choice(shas)))
    # a version's byte-identical copies go along with it
    return [e for e in corpus.entries if (e.uid, e.sha) in chosen]


POLICIES = (("keep", 0.5), ("overwrite-one", 0.3), ("overwrite-all", 0.2))


def pick_policy(rng):
    x = rng.random()
    for name, p in POLICIES:
        if x < p:
            return name
        x -= p
    return POLICIES[-1][0]


def slow_commits(archive, ms):
    """Make the test database's commits take `ms` longer on the server (commit_delay, which
    needs a superuser and fsync on): a client killed while waiting for its COMMIT leaves the
    server finishing it, and the next process must not recover before it lands. Best effort;
    False if the server refused."""
    sql = ("DO $$BEGIN EXECUTE format('ALTER DATABASE %I SET commit_delay = " + str(ms * 1000) +
           "', current_database()); EXECUTE format('ALTER DATABASE %I SET commit_siblings = 0'"
           ", current_database()); END$$")
    proc = subprocess.run(["psql", archive.index, "-v", "ON_ERROR_STOP=1", "-qc", sql],
                          capture_output=True, timeout=60)
    return proc.returncode == 0


def test_import_killed_at_random(archive, corpus):
    if archive.backend == "postgresql":
        slow_commits(archive, 20)
    rng = random.Random(SEED)
    v = Verifier(archive, corpus, SEED)
    kills = completed = iterations = 0
    delay_max = MAX_DELAY
    by_policy = {}
    started = time.monotonic()
    while (kills < MIN_KILLS and iterations < MAX_ITERATIONS
           and time.monotonic() - started < TIME_BUDGET):
        iterations += 1
        policy = pick_policy(rng)
        inputs = choose_inputs(rng, corpus, policy, v.present)
        paths = [e.path for e in inputs] + [corpus.junk]
        rng.shuffle(paths)
        extra = KEEP if policy == "keep" else ["--duplicates", "overwrite"]
        delay = rng.uniform(MIN_DELAY, max(MIN_DELAY, delay_max))
        what = f"{archive.backend} iteration {iterations}, {policy}, kill after " \
               f"{delay * 1000:.0f} ms"
        run = Run(archive, paths, extra, delay)
        if run.killed:
            kills += 1
            by_policy[policy] = by_policy.get(policy, 0) + 1
        else:
            # it finished before the kill: a complete run, and a shorter delay next time
            completed += 1
            assert run.returncode == 1 and run.summary, \
                f"[seed {SEED}, {what}] exit {run.returncode}: {run.stderr}"
            assert run.summary["rejected"] == 1 and run.summary["inputs"] == len(paths), \
                f"[seed {SEED}, {what}] {run.summary}"
            delay_max = max(MIN_DELAY, min(delay_max, 0.8 * run.seconds))
        v.verify(v.allowed(run, policy, inputs, what), what)
    elapsed = time.monotonic() - started
    print(f"\n{archive.backend}: {kills} kills ({by_policy}), {completed} complete runs, "
          f"{iterations} iterations in {elapsed:.1f} s, {len(v.present)} instances, seed {SEED}")
    assert kills >= MIN_KILLS, \
        f"[seed {SEED}] only {kills} kills in {iterations} iterations ({elapsed:.0f} s)"

    # finally one import of everything, to its end
    inputs = list(corpus.entries)
    run = Run(archive, [e.path for e in inputs] + [corpus.junk], KEEP, None)
    what = f"{archive.backend} final import"
    assert run.returncode == 1 and run.summary, f"[seed {SEED}, {what}] {run.stderr}"
    assert run.summary["rejected"] == 1, f"[seed {SEED}, {what}] {run.summary}"
    allowed = v.allowed(run, "keep", inputs, what)
    assert all(None not in s for s in allowed.values()), \
        f"[seed {SEED}, {what}] not every instance was acknowledged"
    v.verify(allowed, what)
    assert sorted(v.present) == corpus.uids()
    report = v.check_clean(what, deep=True)
    assert report["instances"] == len(corpus.uids())


# ------------------------------------------------------------------ killed while recovering

def craft_dead_process(archive, rng, uids, paths, junk_files):
    """What a process killed after COMMIT but before its renames leaves: the committed blobs
    of `uids` still in its tmp folder; plus uncommitted blobs (no row names them) and a file
    whose name is not a blob name. Half the folders have their lock file, half none."""
    tmp = archive.dir / "tmp"
    folder = tmp / f"{rng.randrange(10**6, 10**7)}-{rng.getrandbits(64):016x}"
    folder.mkdir(parents=True)
    if rng.random() < 0.5:
        (folder / "lock").write_bytes(b"")
    for uid in uids:
        src = pathlib.Path(paths[uid])
        os.rename(src, folder / src.name)
    for _ in range(junk_files):
        name = f"{rng.getrandbits(256):064x}-{rng.getrandbits(64):016x}.dcm"
        (folder / name).write_bytes(rng.randbytes(64))
    (folder / "half-written.part").write_bytes(b"x" * 100)
    return folder


def files_under(folders):
    return sum(len(os.listdir(f)) for f in folders if f.exists())


def test_kill_during_recovery(archive, corpus):
    rng = random.Random(SEED + 7)
    v = Verifier(archive, corpus, SEED + 7)
    base = [e for e in corpus.entries if e.path.endswith(".a.dcm")]
    run = Run(archive, [e.path for e in base], KEEP, None)
    assert run.returncode == 0, f"[seed {SEED}] {run.stderr}"
    v.verify(v.allowed(run, "keep", base, "first import"), "first import")
    expected = dict(v.present)
    uids = sorted(expected)
    kills = mid_recovery = 0
    started = time.monotonic()
    for rnd in range(3):
        paths = dict(zip(uids, archive.run("cat", "--path", *uids).stdout.decode().split()))
        moved = rng.sample(uids, len(uids) // 2)
        folders = [craft_dead_process(archive, rng, moved[:len(moved) // 2], paths, 1500),
                   craft_dead_process(archive, rng, moved[len(moved) // 2:], paths, 1500)]
        before = files_under(folders)
        # kill the next processes while they recover, a little later each time, until the
        # crafted folders are gone; each restart carries on where the last one stopped
        delay = 0.001
        for _ in range(60):
            if not any(f.exists() for f in folders) or time.monotonic() - started > 120:
                break
            run = Run(archive, [base[0].path], KEEP, delay)
            kills += run.killed
            after = files_under(folders)
            assert after <= before, f"[seed {SEED}] files appeared in the dead folders"
            if run.killed and 0 < after < before:
                mid_recovery += 1
            before = after
            delay += rng.uniform(0.002, 0.012)
        what = f"{archive.backend} recovery round {rnd + 1}"
        # check finishes whatever recovery is left; then everything is where it was
        v.verify({uid: {sha} for uid, sha in expected.items()}, what)
        for f in folders:
            assert not f.exists(), f"[seed {SEED}, {what}] {f} left behind"
    print(f"\n{archive.backend}: {kills} kills, {mid_recovery} of them part way through a "
          f"recovery, seed {SEED}")
    v.check_clean("after the recovery rounds", deep=True)


# ------------------------------------------------------------------ the index connection lost

def test_index_connection_lost_during_commit(archive, corpus):
    """PostgreSQL's side of a crash: the server ends the import's connections (as a server
    restart would) while they wait for their COMMITs. A COMMIT whose answer never came may
    have committed: its blobs must stay for recovery, whatever the import was told."""
    if archive.backend != "postgresql":
        pytest.skip("a PostgreSQL server's connection")
    slow = slow_commits(archive, 30)
    rng = random.Random(SEED + 11)
    v = Verifier(archive, corpus, SEED + 11)
    terminate = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                 " WHERE datname = current_database() AND pid <> pg_backend_pid()")
    cut = 0
    started = time.monotonic()
    for i in range(6):
        if time.monotonic() - started > 60:
            break
        inputs = list(corpus.entries)
        paths = [e.path for e in inputs]
        rng.shuffle(paths)
        delay = rng.uniform(0.02, 0.5)
        what = f"connection cut after {delay * 1000:.0f} ms, round {i + 1}"
        timer = threading.Timer(delay, lambda: subprocess.run(
            ["psql", archive.index, "-Atqc", terminate], capture_output=True, timeout=60))
        timer.start()
        run = Run(archive, paths, KEEP, None)
        timer.join()
        assert run.returncode in (0, 1), f"[seed {SEED}, {what}] {run.stderr}"
        cut += any(x["status"] == "rejected" for x in run.acks)
        v.verify(v.allowed(run, "keep", inputs, what, index_lost=True), what)
    print(f"\npostgresql: {cut} imports lost their index connection part way "
          f"(commit_delay {'on' if slow else 'refused'}), seed {SEED}")
    v.check_clean("after the cut connections", deep=True)
