"""Jobs of mira serve (issue 6, "jobs and their results"): POST /api/jobs queues an export,
send or check job in the archive's index, the serve's workers run it, GET /api/jobs/{id} shows
its state and result, GET /api/jobs/{id}/result downloads an export's ZIP, DELETE cancels.
Each kind is checked against real parts: the ZIP read with pydicom against the imported files,
DCMTK's storescp receiving a send, a blob corrupted on disk found by a check; cancelling a
queued and a running job; kill -9 of serve during a job and the job finished by the next serve;
bad requests, roles, 401 and the audit rows; `mira job`. On both index backends."""
import hashlib
import http.client
import io
import json
import os
import signal
import subprocess
import time
import zipfile

import pydicom
import pytest
from pydicom.uid import generate_uid

from conftest import BACKENDS, TEST_FILES, Archive, new_postgres_database, run_mira
from dimse_peers import MiraServer, Storescp
from web_accounts import bearer, make_token

FILES = ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "JPEG2000.dcm"]
IDENTIFYING = ["PatientName", "PatientID", "PatientBirthDate", "InstitutionName",
               "ReferringPhysicianName", "StudyDate", "AccessionNumber"]


class Jobs:
    def __init__(self, srv, archive, peer):
        self.srv, self.archive, self.peer = srv, archive, peer
        self.args = archive.args
        self.clin = srv.token
        self.admin = make_token(self.args, name="job-admin", role="admin")
        self.res = make_token(self.args, name="job-researcher", role="researcher")

    def call(self, method, path, token=None, body=None, ctype=None):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.http_port, timeout=60)
        h = bearer(token) if token else {}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            ctype = ctype or "application/json"
        if ctype:
            h["Content-Type"] = ctype
        c.request(method, path, body=body, headers=h)
        resp = c.getresponse()
        data = resp.read()
        c.close()
        return resp.status, dict(resp.getheaders()), data

    def json(self, *a, **k):
        st, h, data = self.call(*a, **k)
        return st, (json.loads(data) if data else None)

    def submit(self, body, token=None, status=201):
        st, job = self.json("POST", "/api/jobs", token or self.clin, body=body)
        assert st == status, job
        return job

    def wait(self, job_id, states=("done", "failed", "cancelled"), token=None, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st, job = self.json("GET", f"/api/jobs/{job_id}", token or self.admin)
            assert st == 200, job
            if job["state"] in states:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not {states} after {timeout}s: {job}")

    def cli(self, *args, check=True):
        return run_mira(*args, *self.args, check=check)


def copies(folder, n, source="CT_small.dcm"):
    """n copies of a test file in one new study and series, each its own SOP Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    paths = []
    for i in range(n):
        ds = pydicom.dcmread(TEST_FILES / source)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        p = folder / f"{i:05d}.dcm"
        ds.save_as(p, write_like_original=False)
        paths.append(p)
    return study, series, paths


def start_serve(archive, peer_port, *extra):
    return MiraServer(archive.dir, "--peer", f"STORESCP=127.0.0.1:{peer_port}", *extra,
                      archive_args=archive.args, http=True)


@pytest.fixture(params=BACKENDS)
def jobs(request, tmp_path):
    index = new_postgres_database() if request.param == "postgresql" else None
    archive = Archive(tmp_path / "archive", request.param, index)
    archive.run("import", "--no-progress", *[TEST_FILES / f for f in FILES])
    with Storescp(tmp_path / "received") as peer, start_serve(archive, peer.port) as srv:
        yield Jobs(srv, archive, peer)


def originals():
    return {f: pydicom.dcmread(TEST_FILES / f) for f in FILES}


def cli_list(j, *args):
    return [json.loads(x) for x in j.cli("job", "list", "--json", *args).stdout.splitlines()]


def audit(j, path):
    rows = map(json.loads, j.cli("audit", "--json").stdout.decode().splitlines())
    return [r for r in rows if r["path"] == path]


# ------------------------------------------------------------------ export

def test_export_job_zip_is_deidentified_and_complete(jobs):
    ct = originals()["CT_small.dcm"]
    job = jobs.submit({"kind": "export", "study": ct.StudyInstanceUID}, token=jobs.res)
    assert job["state"] in ("queued", "running", "done") and job["created_by"] == "job-researcher"
    assert job["params"] == {"study": ct.StudyInstanceUID}
    done = jobs.wait(job["id"], token=jobs.res)
    assert done["state"] == "done", done
    assert done["progress"] == {"done": 1, "total": 1}
    assert done["result"]["instances"] == 1
    zpath = jobs.archive.dir / "jobs" / f"{job['id']}.zip"
    assert done["result"]["bytes"] == os.path.getsize(zpath)
    st, h, data = jobs.call("GET", f"/api/jobs/{job['id']}/result", jobs.res)
    assert st == 200 and h["Content-Type"] == "application/zip"
    assert data == zpath.read_bytes()
    z = zipfile.ZipFile(io.BytesIO(data))
    assert z.testzip() is None
    names = z.namelist()
    assert len(names) == 1
    out = pydicom.dcmread(io.BytesIO(z.read(names[0])))
    for kw in IDENTIFYING:
        if kw in ct and ct.data_element(kw).value:
            assert out.get(kw) in (None, "") or str(out.get(kw)) != str(ct.data_element(kw).value), kw
    assert out.PatientIdentityRemoved == "YES"
    assert out.SOPInstanceUID != ct.SOPInstanceUID
    assert out.PixelData == ct.PixelData  # the pixels as they were
    assert (out.Rows, out.Columns) == (ct.Rows, ct.Columns)
    # no temporary file is left in the folder
    assert sorted(os.listdir(jobs.archive.dir / "jobs")) == [f"{job['id']}.zip"]


def test_export_job_with_full_dates_and_retained_uids(jobs):
    ct = originals()["CT_small.dcm"]
    job = jobs.submit({"kind": "export", "study": ct.StudyInstanceUID, "dates": "full",
                       "retain_uids": True})
    assert job["params"] == {"study": ct.StudyInstanceUID, "dates": "full", "retain_uids": True}
    done = jobs.wait(job["id"])
    assert done["state"] == "done", done
    st, _, data = jobs.call("GET", f"/api/jobs/{job['id']}/result", jobs.clin)
    z = zipfile.ZipFile(io.BytesIO(data))
    out = pydicom.dcmread(io.BytesIO(z.read(z.namelist()[0])))
    assert out.SOPInstanceUID == ct.SOPInstanceUID and out.StudyDate == ct.StudyDate
    assert str(out.PatientName) != str(ct.PatientName)


def test_export_job_of_a_patient_and_of_instances(jobs, tmp_path):
    ds = originals()
    pid = ds["MR_small.dcm"].PatientID
    same = [f for f in FILES if ds[f].PatientID == pid]
    job = jobs.wait(jobs.submit({"kind": "export", "patient": pid})["id"])
    assert job["state"] == "done" and job["result"]["instances"] == len(same), job
    sops = [ds["CT_small.dcm"].SOPInstanceUID, ds["rtdose.dcm"].SOPInstanceUID]
    job = jobs.wait(jobs.submit({"kind": "export", "instances": sops})["id"])
    assert job["state"] == "done" and job["result"]["instances"] == 2, job
    st, _, data = jobs.call("GET", f"/api/jobs/{job['id']}/result", jobs.clin)
    z = zipfile.ZipFile(io.BytesIO(data))
    got = [pydicom.dcmread(io.BytesIO(z.read(n))) for n in z.namelist()]
    pixels = sorted(hashlib.sha256(g.PixelData).hexdigest() for g in got)
    want = sorted(hashlib.sha256(ds[f].PixelData).hexdigest() for f in ("CT_small.dcm",
                                                                         "rtdose.dcm"))
    assert pixels == want
    assert not {g.SOPInstanceUID for g in got} & set(sops)


def test_export_of_many_instances_every_one_once(jobs, tmp_path):
    study, series, paths = copies(tmp_path / "many", 60)
    jobs.cli("import", "--no-progress", *paths)
    job = jobs.wait(jobs.submit({"kind": "export", "study": study, "series": series})["id"])
    assert job["state"] == "done" and job["progress"] == {"done": 60, "total": 60}, job
    st, _, data = jobs.call("GET", f"/api/jobs/{job['id']}/result", jobs.clin)
    z = zipfile.ZipFile(io.BytesIO(data))
    got = [pydicom.dcmread(io.BytesIO(z.read(n))) for n in z.namelist()]
    assert len(got) == 60 and len({g.SOPInstanceUID for g in got}) == 60
    assert len({g.StudyInstanceUID for g in got}) == 1  # UIDs remapped consistently
    assert sorted(int(g.InstanceNumber) for g in got) == list(range(1, 61))


# ------------------------------------------------------------------ send

def test_send_job_to_storescp_byte_wise(jobs):
    ds = originals()
    sops = {ds[f].SOPInstanceUID: f for f in FILES}
    job = jobs.submit({"kind": "send", "instances": list(sops), "destination": "STORESCP"})
    job = jobs.wait(job["id"])
    assert job["state"] == "done", job
    r = job["result"]
    assert r["destination"] == "STORESCP" and r["sent"] == 4 and r["failed"] == 0, r
    assert r["failures"] == []
    received = {}
    for n in os.listdir(jobs.peer.out):
        d = pydicom.dcmread(jobs.peer.out / n)
        received[d.SOPInstanceUID] = d
    assert set(received) == set(sops)
    for sop, f in sops.items():
        got, want = received[sop], ds[f]
        assert got.StudyInstanceUID == want.StudyInstanceUID
        assert got.SeriesInstanceUID == want.SeriesInstanceUID
        assert got.PatientName == want.PatientName
        if got.file_meta.TransferSyntaxUID == want.file_meta.TransferSyntaxUID:
            assert got.PixelData == want.PixelData, f
        else:
            assert (got.pixel_array == want.pixel_array).all(), f


def test_send_job_to_a_peer_that_is_not_there_fails(tmp_path):
    from dimse_peers import free_port
    archive = Archive(tmp_path / "archive", "sqlite", None)
    archive.run("import", "--no-progress", TEST_FILES / "CT_small.dcm")
    ct = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    with start_serve(archive, free_port()) as srv:  # nothing listens there
        j = Jobs(srv, archive, None)
        job = j.wait(j.submit({"kind": "send", "study": ct.StudyInstanceUID,
                               "destination": "STORESCP"})["id"])
        assert job["state"] == "failed" and job["error"], job
        st, body = j.json("POST", "/api/jobs", j.clin,
                          body={"kind": "send", "study": ct.StudyInstanceUID,
                                "destination": "NOSUCHPEER"})
        assert st == 400 and "NOSUCHPEER" in body["message"], body


# ------------------------------------------------------------------ check

def test_check_job_finds_a_corrupted_blob(jobs):
    ct = originals()["CT_small.dcm"]
    job = jobs.wait(jobs.submit({"kind": "check"}, token=jobs.admin)["id"])
    assert job["state"] == "done", job
    assert job["result"]["scope"] == "archive"
    assert job["result"]["instances_checked"] == 4 and job["result"]["problems"] == []
    blobs = [os.path.join(r, n) for r, _, ns in os.walk(jobs.archive.dir / "blobs") for n in ns]
    path = next(p for p in blobs
                if pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID == ct.SOPInstanceUID)
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0xFF  # same size, other bytes: only the checksum tells
    open(path, "wb").write(data)
    job = jobs.wait(jobs.submit({"kind": "check", "study": ct.StudyInstanceUID})["id"])
    assert job["state"] == "done", job
    r = job["result"]
    assert r["scope"] == "selection" and r["instances_checked"] == 1 and r["bad_blobs"] == 1, r
    assert r["problems"][0]["problem"] == "bad_blob"
    assert r["problems"][0]["subject"] == ct.SOPInstanceUID
    job = jobs.wait(jobs.submit({"kind": "check"})["id"])
    assert job["result"]["bad_blobs"] == 1 and job["result"]["instances_checked"] == 4
    assert job["progress"] == {"done": 4, "total": 4}


# ------------------------------------------------------------------ cancel, restart

def test_cancel_a_queued_job(tmp_path):
    archive = Archive(tmp_path / "archive", "sqlite", None)
    archive.run("import", "--no-progress", TEST_FILES / "CT_small.dcm")
    ct = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    with Storescp(tmp_path / "rx") as peer, start_serve(archive, peer.port,
                                                        "--job-workers", "0") as srv:
        j = Jobs(srv, archive, peer)
        job = j.submit({"kind": "export", "study": ct.StudyInstanceUID})
        assert job["state"] == "queued"
        other = make_token(archive.args, name="other-clin", role="clinician")
        st, body = j.json("DELETE", f"/api/jobs/{job['id']}", other)  # not theirs
        assert st == 404, body
        st, body = j.json("DELETE", f"/api/jobs/{job['id']}", j.clin)
        assert st == 200 and body["state"] == "cancelled" and body["finished_at"], body
        st, body = j.json("DELETE", f"/api/jobs/{job['id']}", j.clin)
        assert st == 409, body
        st, body = j.json("GET", f"/api/jobs/{job['id']}/result", j.clin)
        assert st == 409, body
        listed = cli_list(j)
        assert [x["state"] for x in listed] == ["cancelled"]
    # a serve with workers never runs it
    with Storescp(tmp_path / "rx2") as peer, start_serve(archive, peer.port) as srv:
        time.sleep(1)
        job2 = Jobs(srv, archive, peer).json("GET", f"/api/jobs/{job['id']}", srv.token)[1]
        assert job2["state"] == "cancelled" and job2["attempts"] == 0


# storescp rests a second after each instance it stores: a send job of 12 instances (batches of
# MIRA_JOB_SEND_BATCH = 8, its progress recorded after each) runs for a dozen seconds
SLOW = ["--sleep-after", "1"]


def slow_send_setup(tmp_path, n, backend="sqlite"):
    index = new_postgres_database() if backend == "postgresql" else None
    archive = Archive(tmp_path / "archive", backend, index)
    study, series, paths = copies(tmp_path / "src", n, "MR_small.dcm")
    archive.run("import", "--no-progress", *paths)
    return archive, study, paths


def test_cancel_a_running_job(tmp_path):
    archive, study, _ = slow_send_setup(tmp_path, 12)
    with Storescp(tmp_path / "rx", extra=SLOW) as peer, \
            start_serve(archive, peer.port) as srv:
        j = Jobs(srv, archive, peer)
        job = j.submit({"kind": "send", "study": study, "destination": "STORESCP"})
        j.wait(job["id"], states=("running",))
        st, body = j.json("DELETE", f"/api/jobs/{job['id']}", j.clin)
        assert st == 202 and body["state"] == "running" and body["cancel_requested"], body
        done = j.wait(job["id"], timeout=60)
        assert done["state"] == "cancelled", done
        assert done["progress"]["done"] < 12
        assert len(os.listdir(peer.out)) < 12


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_during_a_job_and_the_next_serve_finishes_it(tmp_path, backend):
    n = 12
    archive, study, paths = slow_send_setup(tmp_path, n, backend)
    sops = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in paths}
    with Storescp(tmp_path / "rx", extra=SLOW) as peer:
        srv = start_serve(archive, peer.port).__enter__()
        try:
            j = Jobs(srv, archive, peer)
            job = j.submit({"kind": "send", "study": study, "destination": "STORESCP"})
            deadline = time.monotonic() + 60
            while j.json("GET", f"/api/jobs/{job['id']}", j.clin)[1]["progress"]["done"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(10)
        finally:
            srv._err.close()
        listed = json.loads(run_mira("job", "show", str(job["id"]), "--json",
                                     *archive.args).stdout)
        assert listed["state"] == "running"  # as the killed process left it
        with start_serve(archive, peer.port) as srv2:
            j2 = Jobs(srv2, archive, peer)
            done = j2.wait(job["id"], timeout=120)
            assert "queued again" in srv2.log_text()
        assert done["state"] == "done", done
        assert done["attempts"] == 2
        assert done["result"]["sent"] == n and done["result"]["failed"] == 0
        received = [pydicom.dcmread(peer.out / f).SOPInstanceUID for f in os.listdir(peer.out)]
        assert sorted(received) == sorted(sops)  # each once
    all_jobs = [json.loads(x) for x in run_mira("job", "list", "--json", *archive.args).stdout.splitlines()]
    assert len(all_jobs) == 1


def test_sigterm_leaves_a_running_job_queued(tmp_path):
    archive, study, _ = slow_send_setup(tmp_path, 12)
    with Storescp(tmp_path / "rx", extra=SLOW) as peer:
        with start_serve(archive, peer.port) as srv:
            j = Jobs(srv, archive, peer)
            job = j.submit({"kind": "send", "study": study, "destination": "STORESCP"})
            j.wait(job["id"], states=("running",))
        shown = json.loads(run_mira("job", "show", str(job["id"]), "--json",
                                    *archive.args).stdout)
        assert shown["state"] == "queued", shown


# ------------------------------------------------------------------ requests, roles, audit

def test_bad_requests_are_4xx_and_create_nothing(jobs):
    ct = originals()["CT_small.dcm"]
    bad = [
        ({"kind": "export"}, 400),
        ({"kind": "delete", "study": ct.StudyInstanceUID}, 400),
        ({"study": ct.StudyInstanceUID}, 400),
        ({"kind": "export", "study": "1.2.x"}, 400),
        ({"kind": "export", "study": ct.StudyInstanceUID, "extra": 1}, 400),
        ({"kind": "export", "study": ct.StudyInstanceUID, "destination": "STORESCP"}, 400),
        ({"kind": "send", "study": ct.StudyInstanceUID}, 400),
        ({"kind": "send", "study": ct.StudyInstanceUID, "destination": "'; DROP TABLE jobs"}, 400),
        ({"kind": "export", "instances": []}, 400),
        ({"kind": "export", "instances": ["1.2.3", 4]}, 400),
        ({"kind": "export", "instances": "1.2.3"}, 400),
        ({"kind": "export", "patient": "A*"}, 400),
        ({"kind": "export", "patient": ct.PatientID, "study": ct.StudyInstanceUID}, 400),
        ({"kind": "export", "study": ct.StudyInstanceUID, "instances": [ct.SOPInstanceUID]}, 400),
        ({"kind": 3, "study": ct.StudyInstanceUID}, 400),
        ({"kind": "export", "study": ct.StudyInstanceUID, "dates": "sometimes"}, 400),
        ({"kind": "export", "study": ct.StudyInstanceUID, "retain_uids": "yes"}, 400),
        ({"kind": "check", "dates": "full"}, 400),
        ({"kind": "export", "study": "1.2.3.4.5.6.7"}, 404),
        ({"kind": "export", "instances": ["1.2.3.4.5.6.7"]}, 404),
        ({"kind": "export", "study": ct.StudyInstanceUID, "series": "1.2.3.4"}, 404),
    ]
    for body, status in bad:
        st, reply = jobs.json("POST", "/api/jobs", jobs.admin, body=body)
        assert st == status, (body, reply)
        assert reply["status"] == status and reply["message"], reply
    for raw, ctype, status in [(b"{", "application/json", 400), (b"[]", "application/json", 400),
                               (b'{"kind": "export"}', "text/plain", 415)]:
        st, _, data = jobs.call("POST", "/api/jobs", jobs.admin, body=raw, ctype=ctype)
        assert st == status, data
    for method, path, status in [("GET", "/api/jobs/abc", 400), ("GET", "/api/jobs/0", 400),
                                 ("GET", "/api/jobs/99999", 404),
                                 ("GET", "/api/jobs/1/nothing", 404),
                                 ("PUT", "/api/jobs", 405), ("POST", "/api/jobs/1", 405),
                                 ("GET", "/api/jobs?state=bogus", 400),
                                 ("GET", "/api/jobs?limit=0", 400),
                                 ("GET", "/api/jobs?other=1", 400)]:
        st, _, data = jobs.call(method, path, jobs.admin)
        assert st == status, (method, path, data)
    assert cli_list(jobs) == []


def test_roles_401_and_audit(jobs):
    ct = originals()["CT_small.dcm"]
    for kind in ("send", "check"):
        body = {"kind": kind, "study": ct.StudyInstanceUID}
        if kind == "send":
            body["destination"] = "STORESCP"
        st, reply = jobs.json("POST", "/api/jobs", jobs.res, body=body)
        assert st == 403, reply
    st, _, _ = jobs.call("GET", "/api/jobs")
    assert st == 401
    st, _, _ = jobs.call("POST", "/api/jobs", body={"kind": "check"})
    assert st == 401
    mine = jobs.submit({"kind": "export", "study": ct.StudyInstanceUID}, token=jobs.res)
    theirs = jobs.submit({"kind": "check"}, token=jobs.clin)
    jobs.wait(mine["id"])
    jobs.wait(theirs["id"])
    st, listed = jobs.json("GET", "/api/jobs", jobs.res)
    assert [x["id"] for x in listed] == [mine["id"]]
    st, listed = jobs.json("GET", "/api/jobs", jobs.admin)
    assert [x["id"] for x in listed] == [theirs["id"], mine["id"]]
    st, listed = jobs.json("GET", "/api/jobs?state=done&limit=1", jobs.admin)
    assert [x["id"] for x in listed] == [theirs["id"]]
    st, listed = jobs.json("GET", "/api/jobs?limit=1&offset=1", jobs.admin)
    assert [x["id"] for x in listed] == [mine["id"]]
    st, body = jobs.json("GET", f"/api/jobs/{theirs['id']}", jobs.res)
    assert st == 404, body
    st, _, _ = jobs.call("GET", f"/api/jobs/{mine['id']}/result", jobs.clin)
    assert st == 404  # another's
    st, _, _ = jobs.call("GET", f"/api/jobs/{mine['id']}/result", jobs.admin)
    assert st == 200
    st, body = jobs.json("GET", f"/api/jobs/{theirs['id']}/result", jobs.admin)
    assert st == 404, body  # a check has no file
    rows = audit(jobs, "/api/jobs")
    assert [(r["user"], r["method"], r["status"]) for r in rows
            if r["method"] == "POST" and r["status"] != 401] == [
        ("job-researcher", "POST", 403), ("job-researcher", "POST", 403),
        ("job-researcher", "POST", 201), ("tester", "POST", 201)]
    created = [r for r in rows if r["status"] == 201 and r["user"] == "job-researcher"][0]
    assert created["studies"] == ct.StudyInstanceUID
    assert [r["status"] for r in audit(jobs, f"/api/jobs/{mine['id']}/result")] == [404, 200]
    assert any(r["status"] == 401 for r in rows)


# ------------------------------------------------------------------ mira job

def test_mira_job_cli(jobs):
    ct = originals()["CT_small.dcm"]
    job = jobs.wait(jobs.submit({"kind": "export", "study": ct.StudyInstanceUID})["id"])
    out = jobs.cli("job", "list").stdout.decode()
    assert str(job["id"]) in out and "export" in out and "done" in out
    shown = json.loads(jobs.cli("job", "show", str(job["id"]), "--json").stdout)
    assert shown["id"] == job["id"] and shown["state"] == "done"
    assert shown["result"] == job["result"]
    assert "export" in jobs.cli("job", "show", str(job["id"])).stdout.decode()
    r = jobs.cli("job", "cancel", str(job["id"]), check=False)
    assert r.returncode != 0 and b"ended" in r.stderr
    r = jobs.cli("job", "show", "424242", check=False)
    assert r.returncode != 0 and b"no job" in r.stderr
    r = jobs.cli("job", "frob", check=False)
    assert r.returncode == 2
    assert b"usage: mira job" in run_mira("job", "--help").stdout
    queued = jobs.submit({"kind": "check"})
    jobs.wait(queued["id"])
    listed = cli_list(jobs, "--state", "done")
    assert {x["id"] for x in listed} == {job["id"], queued["id"]}
