"""QIDO-RS (PS3.18 10.6) and the HTTP server of mira serve: every search resource against an
archive of pydicom's test files, the expected answers computed from the same files with
pydicom (never from mira's output); bad parameters, unknown routes and methods, content
negotiation, SQL metacharacters, paging, keep-alive, and the dicomweb-client package."""
import collections
import fnmatch
import http.client
import json
import socket
import time
import urllib.parse

import pydicom
import pytest

from conftest import BACKENDS, TEST_FILES, new_postgres_database, run_mira
from dimse_peers import MiraServer
from web_accounts import bearer  # every route needs a token: MiraServer(http=True) makes one

NOT_DICOM = {".txt", ".json", ".dump", ".gz", ".py"}


def _text(ds, keyword):
    v = ds.get(keyword)
    return "" if v is None else str(v).strip()


def reference_files():
    """pydicom's test files that make a consistent archive: one file per SOP Instance UID, a
    Patient ID, each patient, study and series with the same attributes in all its files
    (the archive keeps the first one's, so a conflict would make the expected value depend on
    the order of storing), dates of the DICOM form."""
    chosen, patients, studies, series, sops = [], {}, {}, {}, set()
    for p in sorted(TEST_FILES.rglob("*")):
        if not p.is_file() or p.suffix.lower() in NOT_DICOM or p.name == "DICOMDIR":
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            st, se, so = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
        except Exception:
            continue
        if ds.get("SOPClassUID") == "1.2.840.10008.1.3.10" or so in sops:
            continue
        pid = _text(ds, "PatientID")
        date = _text(ds, "StudyDate")
        if not pid or (date and not (len(date) == 8 and date.isdigit())):
            continue
        pat = (_text(ds, "PatientName"), _text(ds, "PatientSex"), _text(ds, "PatientBirthDate"))
        stu = (pid, date, _text(ds, "StudyTime"), _text(ds, "AccessionNumber"),
               _text(ds, "StudyID"), _text(ds, "StudyDescription"),
               _text(ds, "ReferringPhysicianName"))
        ser = (st, _text(ds, "Modality"), _text(ds, "SeriesNumber"),
               _text(ds, "SeriesDescription"))
        if patients.get(pid, pat) != pat or studies.get(st, stu) != stu or \
                series.get(se, ser) != ser:
            continue
        patients[pid], studies[st], series[se] = pat, stu, ser
        sops.add(so)
        chosen.append((p, ds))
    return chosen


class Reference:
    """The expected archive contents, from the files."""

    def __init__(self, chosen):
        self.files = [p for p, _ in chosen]
        self.instances = {ds.SOPInstanceUID: ds for _, ds in chosen}
        self.studies = collections.defaultdict(list)
        self.series = collections.defaultdict(list)
        for ds in self.instances.values():
            self.studies[ds.StudyInstanceUID].append(ds)
            self.series[ds.SeriesInstanceUID].append(ds)

    def study(self, uid):
        return self.studies[uid][0]

    def series_of(self, study_uid):
        return {ds.SeriesInstanceUID for ds in self.studies[study_uid]}


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"qido-{request.param}")
    index = ["--index", new_postgres_database()] if request.param == "postgresql" else []
    ref = Reference(reference_files())
    assert len(ref.instances) >= 60 and len(ref.studies) >= 8
    run_mira("import", "--archive", d / "archive", *index, "--no-progress", *ref.files)
    with MiraServer(d / "archive", archive_args=["--archive", str(d / "archive"), *index],
                    http=True) as srv:
        yield srv, ref


def get(srv, path, params=None, headers=None, method="GET"):
    """(status, headers, parsed JSON or None) of one request on a new connection."""
    url = path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=60)
    try:
        c.request(method, url, headers={**bearer(srv.token), **(headers or {})})
        r = c.getresponse()
        body = r.read()
        data = json.loads(body) if body else None
        return r.status, r, data
    finally:
        c.close()


def search(srv, path, params=None, status=200):
    st, r, data = get(srv, "/dicomweb" + path, params)
    assert st == status, (st, data)
    if st == 204:
        assert data is None
        return []
    assert r.getheader("Content-Type") == "application/dicom+json"
    assert isinstance(data, list)
    return data


def val(obj, tag):
    """The first value of tag in a DICOM JSON object ('' when absent or empty)."""
    a = obj.get(tag)
    if not a or "Value" not in a or not a["Value"]:
        return ""
    v = a["Value"][0]
    return v.get("Alphabetic", "") if isinstance(v, dict) else v


def uids(objs, tag):
    return [val(o, tag) for o in objs]


# ------------------------------------------------------------------ the three levels

def test_all_studies_with_their_default_attributes(served):
    srv, ref = served
    got = search(srv, "/studies")
    assert sorted(uids(got, "0020000D")) == sorted(ref.studies)
    for o in got:
        uid = val(o, "0020000D")
        ds, members = ref.study(uid), ref.studies[uid]
        assert val(o, "00100020") == _text(ds, "PatientID")
        assert val(o, "00100010") == _text(ds, "PatientName")
        assert val(o, "00080020") == _text(ds, "StudyDate")
        assert val(o, "00200010") == _text(ds, "StudyID")
        assert val(o, "00201206") == len({m.SeriesInstanceUID for m in members})
        assert val(o, "00201208") == len(members)
        mods = sorted({_text(m, "Modality") for m in members} - {""})
        assert sorted(o.get("00080061", {}).get("Value", [])) == mods
        assert val(o, "00080056") == "ONLINE"
        assert "00081030" not in o  # not a default: only with includefield


def test_series_of_each_study_and_of_all(served):
    srv, ref = served
    everything = search(srv, "/series")
    assert sorted(uids(everything, "0020000E")) == sorted(ref.series)
    for o in everything:
        members = ref.series[val(o, "0020000E")]
        ds = members[0]
        assert val(o, "00080060") == _text(ds, "Modality")
        assert val(o, "00201209") == len(members)
        # all series come with their study's attributes (PS3.18 10.6.3.3.2)
        assert val(o, "0020000D") == ds.StudyInstanceUID
        assert val(o, "00100020") == _text(ds, "PatientID")
        if _text(ds, "SeriesNumber"):
            assert val(o, "00200011") == int(ds.SeriesNumber)
    for study in ref.studies:
        got = search(srv, f"/studies/{study}/series")
        assert sorted(uids(got, "0020000E")) == sorted(ref.series_of(study))
        assert all("00201206" not in o for o in got)  # the study's own attributes: not asked


def test_instances_at_every_resource(served):
    srv, ref = served
    everything = search(srv, "/instances")
    assert sorted(uids(everything, "00080018")) == sorted(ref.instances)
    for o in everything:
        ds = ref.instances[val(o, "00080018")]
        assert val(o, "00080016") == ds.SOPClassUID
        assert val(o, "0020000E") == ds.SeriesInstanceUID
        assert val(o, "0020000D") == ds.StudyInstanceUID
        for tag, kw in (("00280010", "Rows"), ("00280011", "Columns"),
                        ("00200013", "InstanceNumber")):
            if _text(ds, kw):
                assert val(o, tag) == int(ds.get(kw)), (kw, o.get(tag))
    for study, members in ref.studies.items():
        got = search(srv, f"/studies/{study}/instances")
        assert sorted(uids(got, "00080018")) == sorted(m.SOPInstanceUID for m in members)
        assert all("00201208" not in o for o in got)
        for series in ref.series_of(study):
            got = search(srv, f"/studies/{study}/series/{series}/instances")
            assert sorted(uids(got, "00080018")) == \
                sorted(m.SOPInstanceUID for m in ref.series[series])
    # a series UID under another study: nothing
    s1, s2 = sorted(ref.studies)[:2]
    other = sorted(ref.series_of(s2))[0]
    search(srv, f"/studies/{s1}/series/{other}/instances", status=204)


# ------------------------------------------------------------------ matching

def _names(ref):
    return {uid: _text(ref.study(uid), "PatientName") for uid in ref.studies}


@pytest.mark.parametrize("pattern", ["Doe*", "doe^peter", "*^G", "C?tizen*", "*"])
def test_person_name_wildcards_case_insensitive(served, pattern):
    srv, ref = served
    want = sorted(u for u, n in _names(ref).items()
                  if fnmatch.fnmatchcase(n.lower(), pattern.lower()))
    got = search(srv, "/studies", {"PatientName": pattern}, status=200 if want else 204)
    assert sorted(uids(got, "0020000D")) == want


@pytest.mark.parametrize("rng", ["20010101-20031231", "-20011231", "20030101-", "20040826",
                                 "19000101-19000102"])
def test_study_date_ranges(served, rng):
    srv, ref = served
    lo, _, hi = rng.partition("-") if "-" in rng else (rng, "", rng)
    want = sorted(u for u in ref.studies
                  if (d := _text(ref.study(u), "StudyDate"))
                  and (not lo or d >= lo) and (not hi or d <= hi))
    got = search(srv, "/studies", {"StudyDate": rng}, status=200 if want else 204)
    assert sorted(uids(got, "0020000D")) == want
    # the same by tag
    got = search(srv, "/studies", {"00080020": rng}, status=200 if want else 204)
    assert sorted(uids(got, "0020000D")) == want


def test_uid_lists_and_repeated_keys(served):
    srv, ref = served
    a, b, c = sorted(ref.studies)[:3]
    for params in ({"StudyInstanceUID": f"{a},{b}"}, {"StudyInstanceUID": f"{a}\\{b}"},
                   [("StudyInstanceUID", a), ("StudyInstanceUID", b)]):
        got = search(srv, "/studies", params)
        assert sorted(uids(got, "0020000D")) == sorted([a, b])
    # keys of several levels at once: CT series of one patient
    pid = _text(ref.study(c), "PatientID")
    want = sorted(u for u, m in ref.series.items()
                  if _text(m[0], "PatientID") == pid and _text(m[0], "Modality") == "CT")
    got = search(srv, "/series", {"PatientID": pid, "Modality": "CT"},
                 status=200 if want else 204)
    assert sorted(uids(got, "0020000E")) == want


def test_includefield(served):
    srv, ref = served
    got = search(srv, "/studies", {"includefield": "StudyDescription,00080062"})
    for o in got:
        ds = ref.study(val(o, "0020000D"))
        assert "00081030" in o and val(o, "00081030") == _text(ds, "StudyDescription")
        classes = {m.SOPClassUID for m in ref.studies[val(o, "0020000D")]}
        assert set(o["00080062"]["Value"]) == classes
    got = search(srv, "/series", {"includefield": "all"})
    assert all("00080070" in o and "00081030" in o for o in got)  # Manufacturer, study's
    # an attribute the index does not hold: left out, and said so
    st, r, data = get(srv, "/dicomweb/studies", {"includefield": "SliceThickness"})
    assert st == 200 and all("00180050" not in o for o in data)
    assert "00180050" in (r.getheader("Warning") or ""), r.getheaders()


def test_fuzzymatching_is_answered_as_unsupported(served):
    srv, ref = served
    st, r, data = get(srv, "/dicomweb/studies", {"fuzzymatching": "true"})
    assert st == 200 and len(data) == len(ref.studies)
    assert r.getheader("Warning", "").startswith("299 ") and "fuzzymatching" in \
        r.getheader("Warning")
    st, r, _ = get(srv, "/dicomweb/studies", {"fuzzymatching": "false"})
    assert st == 200 and r.getheader("Warning") is None


def test_limit_and_offset_page_through_everything_once(served):
    srv, ref = served
    for path, tag, total in (("/studies", "0020000D", len(ref.studies)),
                             ("/instances", "00080018", len(ref.instances))):
        seen, offset = [], 0
        while True:
            st, r, page = get(srv, "/dicomweb" + path, {"limit": 7, "offset": offset})
            if st == 204:
                break
            assert st == 200 and 1 <= len(page) <= 7 and r.getheader("Warning") is None
            seen += uids(page, tag)
            offset += len(page)
        assert len(seen) == total and len(set(seen)) == total


def test_default_limit_cuts_with_a_warning(tmp_path):
    ref = Reference(reference_files())
    run_mira("import", "--archive", tmp_path / "a", "--no-progress", *ref.files[:12])
    with MiraServer(tmp_path / "a", "--http-max-results", "5", http=True) as srv:
        for params in (None, {"limit": 100}):
            st, r, data = get(srv, "/dicomweb/instances", params)
            assert st == 200 and len(data) == 5
            assert "The number of results exceeded the maximum" in r.getheader("Warning", "")
        st, r, data = get(srv, "/dicomweb/instances", {"limit": 5})
        assert st == 200 and len(data) == 5 and r.getheader("Warning") is None
        st, r, data = get(srv, "/dicomweb/instances", {"offset": 10})
        assert st == 200 and len(data) == 2 and r.getheader("Warning") is None


def test_an_empty_archive_answers_no_content(tmp_path):
    with MiraServer(tmp_path / "empty", http=True) as srv:
        for path in ("/studies", "/series", "/instances"):
            st, r, data = get(srv, "/dicomweb" + path)
            assert st == 204 and data is None


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("params,why", [
    ({"NoSuchKeyword": "1"}, "not a search parameter"),
    ({"0010001G": "x"}, "not a search parameter"),
    ({"StudyInstanceUID": "1.02.3"}, "UID"),
    ({"StudyInstanceUID": "1.2.abc"}, "UID"),
    ({"StudyInstanceUID": "1" * 65}, "UID"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "1.5"}, "offset"),
    ({"StudyDate": "2020-01-01"}, "date"),
    ({"StudyDate": "20201301"}, "date"),
    ({"StudyDate": "-"}, "date"),
    ({"StudyTime": "2500"}, "time"),
    ({"StudyTime": "10-11-12"}, "time"),
    ({"fuzzymatching": "maybe"}, "fuzzymatching"),
    ({"includefield": "NotAnAttribute"}, "includefield"),
    ({"Modality": "CT"}, "cannot match"),  # a series key on the study level
    ({"SliceThickness": "1"}, "cannot match"),  # not in the index
    ({"NumberOfStudyRelatedInstances": "x"}, "integer"),
])
def test_bad_parameters_are_400_with_a_reason(served, params, why):
    srv, _ = served
    st, r, data = get(srv, "/dicomweb/studies", params)
    assert st == 400, (st, data)
    assert r.getheader("Content-Type") == "application/json"
    assert data["status"] == 400 and why in data["message"], data


@pytest.mark.parametrize("target", ["/dicomweb/studies?PatientName=%zz",
                                    "/dicomweb/studies?PatientName=a%00b",
                                    "/dicomweb/studies?PatientName=%4",
                                    "/dicomweb/studies/1..2/series",
                                    "/dicomweb/studies/1.2.x/instances",
                                    "/dicomweb/studies/..%2F..%2Fetc/series"])
def test_malformed_urls_are_400(served, target):
    srv, _ = served
    st, _, data = get(srv, target)
    assert st == 400 and data["status"] == 400, (st, data)


def test_routes_methods_and_media_types(served):
    srv, ref = served
    for path in ("/dicomweb", "/dicomweb/patients", "/dicomweb/studies/1.2/nothing",
                 "/dicomweb/studies/", "/dicomweb//studies", "/dicomweb/studies/1.2/series/3"):
        st, r, data = get(srv, path)
        assert st == 404 and data["status"] == 404, (path, st)
    # "/" is the web page (test_web_page.py), not a 404
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=60)
    c.request("GET", "/")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/html"), r.status
    assert b"<html" in r.read()
    c.close()
    for method in ("PUT", "DELETE", "PATCH"):
        st, r, data = get(srv, "/dicomweb/studies", method=method)
        assert st == 405 and "GET" in r.getheader("Allow", ""), (method, st)
    for path in ("/dicomweb/series", "/dicomweb/instances", "/dicomweb/studies/1.2/series"):
        st, r, data = get(srv, path, method="POST")
        assert st == 405 and r.getheader("Allow") == "GET, HEAD", (path, st)
    # POST /dicomweb/studies is a store (STOW-RS, test_web_stow.py): without a body's type 415
    st, r, data = get(srv, "/dicomweb/studies", method="POST")
    assert st == 415 and data["status"] == 415
    for accept in ("application/dicom+xml", "text/html",
                   "application/dicom+json;q=0, application/xml"):
        st, r, data = get(srv, "/dicomweb/studies", headers={"Accept": accept})
        assert st == 406 and data["status"] == 406, accept
    for accept, ctype in (("application/dicom+json", "application/dicom+json"),
                          ("application/json", "application/json"),
                          ("text/html, application/json;q=0.5", "application/json"),
                          ("*/*", "application/dicom+json"),
                          ("application/dicom+json, application/json",
                           "application/dicom+json")):
        st, r, data = get(srv, "/dicomweb/studies", headers={"Accept": accept})
        assert st == 200 and r.getheader("Content-Type") == ctype, (accept, st)
        assert len(data) == len(ref.studies)


SQL = ["'; DROP TABLE studies;--", "%", "_", "'", '"', "\\'", "1' OR '1'='1", "*' OR 1=1 --",
       "%'; DELETE FROM instances; --", "[a-z]*"]


def test_sql_metacharacters_are_harmless(served):
    srv, ref = served
    keys = ["PatientName", "PatientID", "AccessionNumber", "StudyDescription", "StudyID",
            "ReferringPhysicianName"]
    for key in keys:
        for v in SQL:
            st, _, data = get(srv, "/dicomweb/studies", {key: v})
            # literal text (or a DICOM wildcard): nothing in the test set has such values,
            # except '*...' patterns, whose matches are checked against the reference
            assert st in (200, 204), (key, v, st, data)
            if st == 200:
                want = {u for u in ref.studies if fnmatch.fnmatchcase(
                    _text(ref.study(u), key).lower(), v.lower().replace("[", "[[]"))}
                assert set(uids(data, "0020000D")) == want, (key, v)
    for key in ("StudyInstanceUID", "limit", "offset", "includefield", "StudyDate"):
        for v in SQL:
            st, _, data = get(srv, "/dicomweb/studies", {key: v})
            assert st == 400, (key, v, st)
    # nothing changed
    assert sorted(uids(search(srv, "/studies"), "0020000D")) == sorted(ref.studies)
    assert len(search(srv, "/instances")) == len(ref.instances)


def test_huge_headers_are_refused_and_the_server_goes_on(served):
    srv, ref = served
    with socket.create_connection(("127.0.0.1", srv.http_port), 30) as s:
        s.sendall(b"GET /dicomweb/studies HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 +
                  b"\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 4"), head[:100]
    assert len(search(srv, "/studies")) == len(ref.studies)


def test_keep_alive_serves_several_requests_on_one_connection(served):
    srv, ref = served
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=60)
    c.connect()
    port = c.sock.getsockname()[1]
    try:
        for path in ("/dicomweb/studies", "/dicomweb/series?limit=2", "/dicomweb/nothing",
                     "/dicomweb/studies?limit=bad", "/dicomweb/instances?limit=1"):
            sock = c.sock
            c.request("GET", path, headers=bearer(srv.token))
            r = c.getresponse()
            r.read()
            assert r.status in (200, 400, 404)
            assert c.sock is sock and not r.will_close, path
    finally:
        c.close()
    # each request logged with its method, path, status, and from that one client port (the
    # last line is written once the reply has gone: wait for it)
    for _ in range(100):
        log = srv.log_text()
        if log.count(f"http 127.0.0.1:{port}: GET ") == 5:
            break
        time.sleep(0.05)
    assert log.count(f"http 127.0.0.1:{port}: GET ") == 5, log[-3000:]
    assert f"127.0.0.1:{port}: GET /dicomweb/studies keys limit -> 400" in log


def test_logs_never_hold_query_values(served):
    srv, _ = served
    get(srv, "/dicomweb/studies", {"PatientName": "Secret^Name"})
    # the request's line is written once its answer has gone: wait for it (bounded)
    deadline = time.monotonic() + 10
    while "keys PatientName -> 204" not in srv.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "keys PatientName -> 204" in srv.log_text()
    assert "Secret" not in srv.log_text()


# ------------------------------------------------------------------ dicomweb-client

def test_dicomweb_client_searches(served):
    from dicomweb_client.api import DICOMwebClient
    srv, ref = served
    client = DICOMwebClient(f"http://127.0.0.1:{srv.http_port}/dicomweb",
                            headers=bearer(srv.token))
    studies = client.search_for_studies()
    assert sorted(uids(studies, "0020000D")) == sorted(ref.studies)
    paged = client.search_for_studies(limit=3, get_remaining=True)
    assert sorted(uids(paged, "0020000D")) == sorted(ref.studies)
    names = _names(ref)
    want = sorted(u for u, n in names.items() if n.lower().startswith("doe"))
    got = client.search_for_studies(search_filters={"PatientName": "Doe*"})
    assert sorted(uids(got, "0020000D")) == want
    for study in list(ref.studies)[:4]:
        series = client.search_for_series(study_instance_uid=study)
        assert sorted(uids(series, "0020000E")) == sorted(ref.series_of(study))
        for s in ref.series_of(study):
            inst = client.search_for_instances(study_instance_uid=study, series_instance_uid=s,
                                               fields=["Rows"])
            assert sorted(uids(inst, "00080018")) == \
                sorted(m.SOPInstanceUID for m in ref.series[s])
    every = client.search_for_instances(get_remaining=True)
    assert sorted(uids(every, "00080018")) == sorted(ref.instances)
    assert client.search_for_studies(search_filters={"PatientID": "no such patient"}) == []


def test_non_ascii_names_match_as_utf8(tmp_path):
    """Query values are UTF-8: a name with accents matches (exactly, and by wildcard)."""
    import pydicom.uid
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jörg"
    ds.PatientID = "UTF8"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = pydicom.uid.generate_uid(), \
        pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(tmp_path / "utf8.dcm")
    run_mira("import", "--archive", tmp_path / "a", "--no-progress", tmp_path / "utf8.dcm")
    with MiraServer(tmp_path / "a", http=True) as srv:
        for pattern in ("Müller^Jörg", "müller*", "*Jörg"):
            got = search(srv, "/studies", {"PatientName": pattern})
            assert uids(got, "0020000D") == [ds.StudyInstanceUID], pattern
            assert val(got[0], "00100010") == "Müller^Jörg"
        search(srv, "/studies", {"PatientName": "Muller*"}, status=204)
        st, _, data = get(srv, "/dicomweb/studies", {"PatientName": "\\".join(["x"] * 101)})
        assert st == 400 and "more than 100 values" in data["message"], data
