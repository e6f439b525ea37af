"""The REST API of mira serve (issue 6): statistics, delete, modify, the de-identified export,
the worklist and users, each checked against the archive by other means than the API itself
(pydicom on the files and on `mira cat`'s copies, QIDO-RS, the `mira` CLI, the blob folder),
with the roles, the audit log and malformed requests (path traversal, SQL metacharacters,
bad UIDs, bad JSON) that must get a 4xx and change nothing."""
import hashlib
import http.client
import io
import json
import os
import shutil
import urllib.parse
import zipfile

import pydicom
import pytest

from conftest import TEST_FILES, run_mira
from dimse_peers import MiraServer
from web_accounts import PASSWORD, bearer, make_token

FILES = ["CT_small.dcm", "MR_small.dcm", "rtdose.dcm", "JPEG2000.dcm"]


class Api:
    def __init__(self, srv, archive):
        self.srv, self.archive = srv, archive
        self.args = ["--archive", str(archive)]
        self.clin = srv.token
        self.admin = make_token(self.args, name="api-admin", role="admin")
        self.res = make_token(self.args, name="api-researcher", role="researcher")

    def call(self, method, path, token=None, body=None, ctype=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.http_port, timeout=60)
        h = dict(headers or {})
        if token:
            h.update(bearer(token))
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
        return st, (json.loads(data) if data else None), h

    def cli(self, *args):
        return run_mira(*args, *self.args).stdout.decode()


def originals():
    return {f: pydicom.dcmread(TEST_FILES / f, stop_before_pixels=True) for f in FILES}


@pytest.fixture
def api(tmp_path):
    archive = tmp_path / "archive"
    run_mira("import", "--archive", archive, "--no-progress", *[TEST_FILES / f for f in FILES])
    with MiraServer(archive, http=True) as srv:
        yield Api(srv, archive)


def blobs(archive):
    """Every blob of the archive and its SHA-256, read from the folder."""
    out = {}
    for root, _, names in os.walk(archive / "blobs"):
        for n in names:
            p = os.path.join(root, n)
            out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def qido_count(api, path):
    st, h, data = api.call("GET", path, api.clin)
    assert st in (200, 204), (st, data)
    return 0 if st == 204 else len(json.loads(data))


def audit_rows(api, path):
    lines = api.cli("audit", "--json").splitlines()
    return [r for r in map(json.loads, lines) if r["path"] == path]


def check_error(st, body, status):
    assert st == status, body
    assert body["status"] == status and body["error"] and body["message"]


# ------------------------------------------------------------------ statistics

def test_stats_counts_what_the_files_hold(api):
    ds = originals()
    st, body, _ = api.json("GET", "/api/stats", api.res)
    assert st == 200
    assert body["instances"] == len(FILES)
    assert body["studies"] == len({d.StudyInstanceUID for d in ds.values()})
    assert body["series"] == len({d.SeriesInstanceUID for d in ds.values()})
    assert body["patients"] == len({d.PatientID for d in ds.values()})
    assert body["bytes"] == sum(os.path.getsize(p) for p in blobs(api.archive))
    assert body["index"] == "sqlite"


def test_methods_not_allowed_say_what_is(api):
    for method, path, allow in [("POST", "/api/stats", "GET, HEAD"),
                                ("GET", "/api/studies/1.2.3", "DELETE"),
                                ("GET", "/api/studies/1.2.3/modify", "POST"),
                                ("PUT", "/api/worklist", "GET, HEAD, POST"),
                                ("DELETE", "/api/users", "GET, HEAD, POST"),
                                ("GET", "/api/users/x/password", "PUT")]:
        st, h, data = api.call(method, path, api.admin)
        assert st == 405, (method, path, data)
        assert h["Allow"] == allow
        check_error(st, json.loads(data), 405)
    st, body, _ = api.json("GET", "/api/nothing", api.admin)
    check_error(st, body, 404)
    st, body, _ = api.json("GET", "/api/stats")  # no token
    check_error(st, body, 401)


# ------------------------------------------------------------------ delete

def test_delete_a_study_for_admins_only(api):
    d = originals()["CT_small.dcm"]
    path = f"/api/studies/{d.StudyInstanceUID}"
    before = blobs(api.archive)
    sizes = {p: os.path.getsize(p) for p in before}
    for token in (api.clin, api.res):
        st, body, _ = api.json("DELETE", path, token)
        check_error(st, body, 403)
    assert blobs(api.archive) == before
    st, body, _ = api.json("DELETE", path, api.admin)
    assert st == 200, body
    assert body["level"] == "study" and body["key"] == d.StudyInstanceUID
    assert body["deleted"]["instances"] == 1 and body["deleted"]["studies"] == 1
    gone = [p for p in before if p not in blobs(api.archive)]
    assert len(gone) == 1
    assert body["deleted"]["bytes"] == sizes[gone[0]]
    assert len(blobs(api.archive)) == len(before) - 1
    assert qido_count(api, f"/dicomweb/studies?StudyInstanceUID={d.StudyInstanceUID}") == 0
    assert qido_count(api, "/dicomweb/instances") == len(FILES) - 1
    rows = audit_rows(api, path)
    assert [r["status"] for r in rows] == [403, 403, 200]
    assert rows[-1]["studies"] == d.StudyInstanceUID
    assert rows[-1]["series"] == d.SeriesInstanceUID
    st, body, _ = api.json("DELETE", path, api.admin)
    check_error(st, body, 404)


def test_delete_patient_series_and_instance(api):
    ds = originals()
    mr, rt, j2k = ds["MR_small.dcm"], ds["rtdose.dcm"], ds["JPEG2000.dcm"]
    pid = urllib.parse.quote(mr.PatientID, safe="")
    st, body, _ = api.json("DELETE", f"/api/patients/{pid}", api.admin)
    assert st == 200, body
    same = [d for d in ds.values() if d.PatientID == mr.PatientID]
    assert body["deleted"]["instances"] == len(same)
    assert "MR_small" not in api.cli("find", "--level", "PATIENT", "PatientID", "PatientName")
    assert api.cli("find", "--level", "PATIENT", f"PatientID={mr.PatientID}").strip() in (
        "", "PatientID")
    st, body, _ = api.json("DELETE", f"/api/series/{rt.SeriesInstanceUID}", api.admin)
    assert st == 200 and body["deleted"]["series"] == 1, body
    st, body, _ = api.json("DELETE", f"/api/instances/{j2k.SOPInstanceUID}", api.admin)
    assert st == 200 and body["deleted"]["instances"] == 1, body
    run = run_mira("cat", j2k.SOPInstanceUID, "-o", "/dev/null", *api.args, check=False)
    assert run.returncode != 0


# ------------------------------------------------------------------ modify

def cat(api, sop, tmp_path):
    out = tmp_path / f"{sop}.dcm"
    run_mira("cat", sop, "-o", out, *api.args)
    return pydicom.dcmread(out)


def test_modify_a_study_by_keyword_and_tag(api, tmp_path):
    d = originals()["CT_small.dcm"]
    path = f"/api/studies/{d.StudyInstanceUID}/modify"
    st, body, _ = api.json("POST", path, api.res, body={"changes": {"StudyDescription": "x"}})
    check_error(st, body, 403)
    st, body, _ = api.json("POST", path, api.clin, body={
        "changes": {"StudyDescription": "Knee, left", "00200010": "S-42"}, "reason": "test"})
    assert st == 200, body
    assert body == {"level": "study", "key": d.StudyInstanceUID, "instances": 1}
    f = cat(api, d.SOPInstanceUID, tmp_path)
    assert f.StudyDescription == "Knee, left" and f.StudyID == "S-42"
    # a non-ASCII value cannot go into this ISO_IR 100 instance: refused, nothing changed
    before = blobs(api.archive)
    st, body, _ = api.json("POST", path, api.clin,
                           body={"changes": {"StudyDescription": "Größe"}})
    check_error(st, body, 400)
    assert blobs(api.archive) == before
    assert f.PatientName == d.PatientName
    hist = api.cli("history", d.StudyInstanceUID)
    assert "test" in hist
    rows = audit_rows(api, path)
    assert [r["status"] for r in rows] == [403, 200, 400]
    assert rows[1]["studies"] == d.StudyInstanceUID and rows[2]["studies"] == ""


@pytest.mark.parametrize("body,status", [
    ({"changes": {"NoSuchKeyword": "x"}}, 400),
    ({"changes": {"PatientName": "X^Y"}}, 400),        # the patient's, not the study's
    ({"changes": {"StudyInstanceUID": "1.2.3"}}, 400),  # the archive refuses UIDs
    ({"changes": {"StudyDate": "yesterday"}}, 400),     # not a DA
    ({"changes": {"StudyDescription": "a", "00081030": "b"}}, 400),  # the same twice
    ({"changes": {"StudyDescription": ["a"]}}, 400),
    ({"changes": {}}, 400),
    ({"changes": {"StudyDescription": "x"}, "extra": 1}, 400),
    ([1, 2], 400),
    ("{\"changes\": ", 400),
])
def test_bad_modifications_change_nothing(api, body, status):
    d = originals()["CT_small.dcm"]
    before = blobs(api.archive)
    ctype = "application/json" if isinstance(body, str) else None
    st, reply, _ = api.json("POST", f"/api/studies/{d.StudyInstanceUID}/modify", api.admin,
                            body=body, ctype=ctype)
    check_error(st, reply, status)
    assert blobs(api.archive) == before


def test_modify_needs_json(api):
    d = originals()["CT_small.dcm"]
    st, body, _ = api.json("POST", f"/api/studies/{d.StudyInstanceUID}/modify", api.admin,
                           body=b'{"changes": {"StudyID": "1"}}', ctype="text/plain")
    check_error(st, body, 415)
    st, body, _ = api.json("POST", "/api/studies/1.2.3/modify", api.admin,
                           body={"changes": {"StudyID": "1"}})
    check_error(st, body, 404)


def test_modify_a_patient(api, tmp_path):
    d = originals()["MR_small.dcm"]
    st, body, _ = api.json("POST", f"/api/patients/{urllib.parse.quote(d.PatientID)}/modify",
                           api.admin, body={"changes": {"PatientName": "Renamed^Patient"}})
    assert st == 200, body
    assert cat(api, d.SOPInstanceUID, tmp_path).PatientName == "Renamed^Patient"


# ------------------------------------------------------------------ export

def test_export_is_de_identified_for_researchers(api):
    d = originals()["CT_small.dcm"]
    path = f"/api/studies/{d.StudyInstanceUID}/export"
    st, h, data = api.call("GET", path, api.res)
    assert st == 200, data[:300]
    assert h["Content-Type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(data))
    names = z.namelist()
    assert len(names) == 1
    e = pydicom.dcmread(io.BytesIO(z.read(names[0])))
    assert e.PatientIdentityRemoved == "YES"
    assert str(e.PatientName) != str(d.PatientName) and e.PatientID != d.PatientID
    assert e.SOPInstanceUID != d.SOPInstanceUID and e.StudyInstanceUID != d.StudyInstanceUID
    assert e.get("InstitutionName", "") != d.InstitutionName  # X/Z/D in PS3.15 E.1-1
    assert e.get("PatientBirthDate", "") == ""
    assert names[0].endswith(e.SOPInstanceUID + ".dcm")
    assert e.file_meta.MediaStorageSOPInstanceUID == e.SOPInstanceUID
    assert e.Rows == d.Rows and e.pixel_array.shape == (d.Rows, d.Columns)
    rows = audit_rows(api, path)
    assert rows[-1]["user"] == "api-researcher" and rows[-1]["studies"] == d.StudyInstanceUID
    # Retain UIDs, full dates
    st, h, data = api.call("GET", path + "?retain_uids=true&dates=full", api.clin)
    e = pydicom.dcmread(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read(
        zipfile.ZipFile(io.BytesIO(data)).namelist()[0])))
    assert e.SOPInstanceUID == d.SOPInstanceUID and e.StudyDate == d.StudyDate
    assert str(e.PatientName) != str(d.PatientName)


def test_export_of_a_series_and_bad_exports(api):
    d = originals()["MR_small.dcm"]
    st, h, data = api.call("GET", f"/api/series/{d.SeriesInstanceUID}/export", api.res)
    assert st == 200
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 1
    for q in ("?dates=sometimes", "?retain_uids=1", "?x=1", "?dates=full&dates=full"):
        st, body, _ = api.json("GET", f"/api/series/{d.SeriesInstanceUID}/export{q}", api.res)
        check_error(st, body, 400)
    st, body, _ = api.json("GET", "/api/series/1.2.3/export", api.res)
    check_error(st, body, 404)
    st, body, _ = api.json("GET", "/api/instances/1.2.3/export", api.res)
    check_error(st, body, 404)


# ------------------------------------------------------------------ worklist

def test_worklist_add_list_delete(api):
    item = {"patient_id": "WL-1", "patient_name": "Müller^Anna", "modality": "MR",
            "date": "20260105", "time": "0930", "accession": "ACC9", "procedure": "Knee"}
    st, body, _ = api.json("POST", "/api/worklist", api.clin, body=item)
    assert st == 201, body
    wid = body["id"]
    listed = [json.loads(x) for x in api.cli("worklist", "list", "--json").splitlines()]
    e = next(x for x in listed if x["id"] == wid)
    assert (e["patient_id"], e["patient_name"], e["modality"], e["date"]) == (
        "WL-1", "Müller^Anna", "MR", "20260105")
    assert e["source"] == "api" and e["status"] == "SCHEDULED"
    st, got, _ = api.json("GET", "/api/worklist", api.admin)
    assert st == 200
    g = next(x for x in got if x["id"] == wid)
    assert g["study_uid"] == e["study_uid"] and g["patient_name"] == "Müller^Anna"
    assert g["item"]["00100020"]["Value"] == ["WL-1"]
    st, body, _ = api.json("GET", "/api/worklist", api.res)
    check_error(st, body, 403)
    st, body, _ = api.json("DELETE", f"/api/worklist/{wid}", api.clin)
    assert st == 200 and body == {"deleted": wid}
    assert not [x for x in api.cli("worklist", "list", "--json").splitlines()
                if json.loads(x)["id"] == wid]
    st, body, _ = api.json("DELETE", f"/api/worklist/{wid}", api.clin)
    check_error(st, body, 404)


@pytest.mark.parametrize("item", [
    {"patient_id": "X", "date": "2026-01-05"}, {"patient_id": "X", "nope": "1"},
    {"modality": "CT"}, {"patient_id": 5}, {"patient_id": "A\\B"}, {"patient_id": "X" * 65},
    {"patient_id": "X", "study_uid": "1.02"}])
def test_bad_worklist_items_are_refused(api, item):
    st, body, _ = api.json("POST", "/api/worklist", api.admin, body=item)
    check_error(st, body, 400)
    assert api.cli("worklist", "list", "--json").strip() == ""


# ------------------------------------------------------------------ users

def sign_in(api, name, password):
    st, body, _ = api.json("POST", "/auth/token",
                           body={"username": name, "password": password})
    return st


def test_users_add_change_remove(api):
    st, body, _ = api.json("POST", "/api/users", api.clin,
                           body={"name": "eve", "role": "admin", "password": PASSWORD})
    check_error(st, body, 403)
    st, body, _ = api.json("POST", "/api/users", api.admin,
                           body={"name": "carol", "role": "researcher", "password": PASSWORD})
    assert st == 201 and body == {"name": "carol", "role": "researcher"}
    assert any(line.split()[:2] == ["carol", "researcher"]
               for line in api.cli("user", "list").splitlines())
    assert sign_in(api, "carol", PASSWORD) == 200
    st, body, _ = api.json("POST", "/api/users", api.admin,
                           body={"name": "carol", "role": "admin", "password": PASSWORD})
    check_error(st, body, 409)
    st, listed, _ = api.json("GET", "/api/users", api.admin)
    assert {u["name"]: u["role"] for u in listed}["carol"] == "researcher"
    st, body, _ = api.json("PUT", "/api/users/carol/password", api.admin,
                           body={"password": "another good password"})
    assert st == 200, body
    assert sign_in(api, "carol", PASSWORD) == 401
    assert sign_in(api, "carol", "another good password") == 200
    st, body, _ = api.json("DELETE", "/api/users/api-admin", api.admin)
    check_error(st, body, 409)  # not oneself
    st, body, _ = api.json("DELETE", "/api/users/carol", api.admin)
    assert st == 200 and body == {"deleted": "carol"}
    assert "carol" not in api.cli("user", "list").split()
    st, body, _ = api.json("DELETE", "/api/users/carol", api.admin)
    check_error(st, body, 404)


@pytest.mark.parametrize("body", [
    {"name": "bad name", "role": "admin", "password": PASSWORD},
    {"name": "x", "role": "superuser", "password": PASSWORD},
    {"name": "x", "role": "admin", "password": "short"},
    {"name": "x", "role": "admin", "password": "ééé"},  # 6 bytes, 3 characters
    {"name": "x", "role": "admin"}, {"name": "x", "role": "admin", "password": PASSWORD, "a": 1}])
def test_bad_users_are_refused(api, body):
    st, reply, _ = api.json("POST", "/api/users", api.admin, body=body)
    check_error(st, reply, 400)
    assert "x" not in api.cli("user", "list").split()


# ------------------------------------------------------------------ malformed requests

NASTY = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "1' OR '1'='1", "1; DROP TABLE instances",
         "%00", "1.2.3\\4.5", "*", "'\"--", "%2e%2e"]


def test_malformed_requests_get_4xx_and_change_nothing(api):
    ds = originals()
    before = blobs(api.archive)
    stats = api.json("GET", "/api/stats", api.admin)[1]
    users = api.cli("user", "list")
    study = ds["CT_small.dcm"].StudyInstanceUID
    for nasty in NASTY:
        enc = nasty if "%" in nasty else urllib.parse.quote(nasty, safe="")
        requests = [("DELETE", f"/api/{lvl}/{enc}") for lvl in
                    ("patients", "studies", "series", "instances")]
        requests += [("POST", f"/api/{lvl}/{enc}/modify") for lvl in
                     ("patients", "studies", "series", "instances")]
        requests += [("GET", f"/api/{lvl}/{enc}/export") for lvl in ("studies", "series")]
        requests += [("DELETE", f"/api/worklist/{enc}"), ("DELETE", f"/api/users/{enc}"),
                     ("PUT", f"/api/users/{enc}/password")]
        q = urllib.parse.quote(nasty, safe="%")
        requests += [("GET", f"/api/stats?{q}={q}"), ("GET", f"/api/worklist?id={q}"),
                     ("GET", f"/api/users?name={q}"),
                     ("GET", f"/api/studies/{study}/export?dates={q}"),
                     ("GET", f"/api/studies/{study}/export?retain_uids={q}"),
                     ("GET", f"/api/studies/{study}/export?{q}=1")]
        for method, path in requests:
            body = {"changes": {"StudyDescription": nasty}, "password": PASSWORD} \
                if method != "GET" and method != "DELETE" else None
            if method == "PUT":
                body = {"password": PASSWORD}
            st, h, data = api.call(method, path, api.admin, body=body)
            assert 400 <= st < 500, (method, path, st, data)
            reply = json.loads(data)
            assert reply["status"] == st
    assert blobs(api.archive) == before
    assert api.json("GET", "/api/stats", api.admin)[1] == stats
    assert api.cli("user", "list") == users
    assert qido_count(api, "/dicomweb/instances") == len(FILES)
