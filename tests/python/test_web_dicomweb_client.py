"""The npm package dicomweb-client (the DICOMweb client OHIF uses) against mira serve: its
searches and stores through tests/js/dicomweb.mjs (one client call per run of node), each result
compared with what pydicom reads from the files the archive was given (never with mira's own
output)."""
import json
import pathlib
import subprocess

import pydicom
import pytest

from conftest import BACKENDS, ROOT, TEST_FILES, new_postgres_database, run_mira
from dimse_peers import MiraServer

JS = ROOT / "tests" / "js"
SCRIPT = JS / "dicomweb.mjs"

# pydicom's test files of the archive the searches and retrieves run against: one file per SOP
# Instance UID, of many transfer syntaxes (explicit, implicit and big endian, deflated, RLE,
# JPEG 2000, JPEG), single and multi-frame, grey and colour, 1 to 32 bits, and without pixels
# (RT plan, SR, waveform).
FILES = ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "ExplVR_BigEnd.dcm",
         "image_dfl.dcm", "rtdose.dcm", "rtplan.dcm", "SC_rgb_rle_2frame.dcm",
         "SC_rgb_small_odd.dcm", "SC_rgb_jpeg_dcmtk.dcm", "waveform_ecg.dcm", "test-SR.dcm",
         "GDCMJ2K_TextGBR.dcm", "693_J2KI.dcm", "liver_1frame.dcm"]

# What the store test sends (none of them in FILES: it runs against an empty archive anyway)
STORED = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "SC_rgb_rle.dcm", "ExplVR_BigEnd.dcm",
          "JPEG2000.dcm", "image_dfl.dcm"]


# ------------------------------------------------------------------ running the client

def client(srv, operation, args=None, out=None, ok=True):
    """One dicomweb-client call by tests/js/dicomweb.mjs: the JSON object it printed."""
    assert (JS / "node_modules" / "dicomweb-client").is_dir(), \
        "tests/js/node_modules is missing: scripts/npm.sh installs it (npm ci)"
    url = f"http://127.0.0.1:{srv.http_port}/dicomweb"
    proc = subprocess.run(["node", str(SCRIPT), url, srv.token, operation,
                           json.dumps(args or {}), str(out or "")],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip(), f"dicomweb.mjs {operation}: {proc.returncode} {proc.stderr}"
    res = json.loads(proc.stdout)
    if ok:
        assert proc.returncode == 0 and "error" not in res, \
            f"dicomweb-client {operation}({args}) failed: {res} {proc.stderr[-2000:]}"
    return res


def parts(res):
    """The bytes of each part of a binary answer, with the client's view of its headers."""
    assert "parts" in res, res
    return [(pathlib.Path(p["file"]).read_bytes(), p) for p in res["parts"]]


def val(obj, tag):
    """The first value of tag in a DICOM JSON object ('' when absent or empty)."""
    a = obj.get(tag)
    if not a or "Value" not in a or not a["Value"]:
        return ""
    v = a["Value"][0]
    return v.get("Alphabetic", "") if isinstance(v, dict) else v


def text(ds, keyword):
    v = ds.get(keyword)
    return "" if v is None else str(v).strip()


# ------------------------------------------------------------------ the reference

class Reference:
    """The archive's expected contents: each file read by pydicom, by SOP Instance UID."""

    def __init__(self, names):
        self.path, self.ds = {}, {}
        self.studies, self.series = {}, {}
        for name in names:
            p = TEST_FILES / name
            ds = pydicom.dcmread(p)
            uid = ds.SOPInstanceUID
            assert uid not in self.ds, f"{name}: a second file of SOP Instance {uid}"
            self.path[uid], self.ds[uid] = p, ds
            self.studies.setdefault(ds.StudyInstanceUID, []).append(ds)
            self.series.setdefault(ds.SeriesInstanceUID, []).append(ds)
        # the archive keeps a study's and a series' attributes from its first instance: the
        # expected values are only well defined when all instances agree
        for members in self.studies.values():
            keys = {tuple(text(m, k) for k in STUDY_KEYS) for m in members}
            assert len(keys) == 1, f"the files of study {members[0].StudyInstanceUID} differ"
        for members in self.series.values():
            keys = {tuple(text(m, k) for k in SERIES_KEYS) for m in members}
            assert len(keys) == 1, f"the files of series {members[0].SeriesInstanceUID} differ"

    def series_of(self, study):
        return {m.SeriesInstanceUID for m in self.studies[study]}


STUDY_KEYS = ["PatientID", "PatientName", "StudyDate", "StudyTime", "StudyID",
              "AccessionNumber"]
SERIES_KEYS = ["Modality", "SeriesNumber", "StudyInstanceUID"]


def dicom_date(s):
    return len(s) == 8 and s.isdigit()


def serve(tmp, backend, names=()):
    """mira serve with HTTP on an archive of the named test files, on one backend."""
    index = ["--index", new_postgres_database()] if backend == "postgresql" else []
    archive_args = ["--archive", str(tmp / "archive"), *index]
    if names:
        run_mira("import", *archive_args, "--no-progress", *[TEST_FILES / n for n in names])
    srv = MiraServer(tmp / "archive", archive_args=archive_args, http=True)
    srv.archive_args = archive_args
    return srv


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(f"dicomweb-client-{request.param}")
    ref = Reference(FILES)
    with serve(d, request.param, FILES) as srv:
        yield srv, ref


# ------------------------------------------------------------------ QIDO-RS

def test_search_for_studies(served):
    srv, ref = served
    got = client(srv, "searchForStudies")["json"]
    assert sorted(val(o, "0020000D") for o in got) == sorted(ref.studies)
    for o in got:
        members = ref.studies[val(o, "0020000D")]
        ds = members[0]
        assert val(o, "00100020") == text(ds, "PatientID")
        if text(ds, "PatientID"):
            # (the archive makes one patient of all files without a Patient ID, named as the
            # first of them: test_studies_without_patient_id)
            assert val(o, "00100010") == text(ds, "PatientName")
        if dicom_date(text(ds, "StudyDate")):
            assert val(o, "00080020") == text(ds, "StudyDate")
        assert val(o, "00200010") == text(ds, "StudyID")
        assert val(o, "00080050") == text(ds, "AccessionNumber")
        assert val(o, "00201206") == len({m.SeriesInstanceUID for m in members})
        assert val(o, "00201208") == len(members)
        modalities = sorted({text(m, "Modality") for m in members} - {""})
        assert sorted(o.get("00080061", {}).get("Value", [])) == modalities


def test_search_for_studies_with_parameters(served):
    srv, ref = served
    # by a key, by a wildcard, with includefield, paged, and none found
    ds = ref.ds[pydicom.dcmread(TEST_FILES / "rtdose.dcm").SOPInstanceUID]
    got = client(srv, "searchForStudies",
                 {"queryParams": {"PatientID": ds.PatientID, "includefield": "StudyDescription"}}
                 )["json"]
    assert [val(o, "0020000D") for o in got] == [ds.StudyInstanceUID]
    assert val(got[0], "00081030") == text(ds, "StudyDescription")
    want = sorted(u for u, m in ref.studies.items()
                  if text(m[0], "PatientName").lower().startswith("compressedsamples"))
    assert len(want) >= 3
    got = client(srv, "searchForStudies",
                 {"queryParams": {"PatientName": "CompressedSamples*"}})["json"]
    assert sorted(val(o, "0020000D") for o in got) == want
    pages = []
    for offset in range(0, len(ref.studies) + 2, 2):
        page = client(srv, "searchForStudies",
                      {"queryParams": {"limit": 2, "offset": offset}})["json"]
        assert len(page) <= 2
        pages += [val(o, "0020000D") for o in page]
    assert sorted(pages) == sorted(ref.studies)
    assert client(srv, "searchForStudies",
                  {"queryParams": {"PatientID": "no such patient"}})["json"] == []


def test_search_for_series(served):
    srv, ref = served
    for study in ref.studies:
        got = client(srv, "searchForSeries", {"studyInstanceUID": study})["json"]
        assert sorted(val(o, "0020000E") for o in got) == sorted(ref.series_of(study))
        for o in got:
            members = ref.series[val(o, "0020000E")]
            assert val(o, "00080060") == text(members[0], "Modality")
            number = text(members[0], "SeriesNumber")
            assert val(o, "00200011") == (int(number) if number else "")
            assert val(o, "00201209") == len(members)
    got = client(srv, "searchForSeries", {"queryParams": {"Modality": "RTDOSE"}})["json"]
    assert sorted(val(o, "0020000E") for o in got) == \
        sorted(u for u, m in ref.series.items() if text(m[0], "Modality") == "RTDOSE")


def test_search_for_instances(served):
    srv, ref = served
    fields = "Rows,Columns,NumberOfFrames"
    for series, members in ref.series.items():
        study = members[0].StudyInstanceUID
        got = client(srv, "searchForInstances",
                     {"studyInstanceUID": study, "seriesInstanceUID": series,
                      "queryParams": {"includefield": fields}})["json"]
        assert sorted(val(o, "00080018") for o in got) == \
            sorted(m.SOPInstanceUID for m in members)
        for o in got:
            ds = ref.ds[val(o, "00080018")]
            assert val(o, "00080016") == ds.SOPClassUID
            number = text(ds, "InstanceNumber")
            assert val(o, "00200013") == (int(number) if number else "")
            assert val(o, "00280010") == ds.get("Rows", "")
            assert val(o, "00280011") == ds.get("Columns", "")
            frames = text(ds, "NumberOfFrames")
            assert val(o, "00280008") == (int(frames) if frames else "")
    got = client(srv, "searchForInstances")["json"]
    assert sorted(val(o, "00080018") for o in got) == sorted(ref.ds)
    for study, members in ref.studies.items():
        got = client(srv, "searchForInstances", {"studyInstanceUID": study})["json"]
        assert sorted(val(o, "00080018") for o in got) == \
            sorted(m.SOPInstanceUID for m in members)


# ------------------------------------------------------------------ STOW-RS

@pytest.fixture(params=BACKENDS)
def empty(request, tmp_path):
    with serve(tmp_path, request.param) as srv:
        yield srv


def test_store_instances_then_found(empty):
    """storeInstances sends the files' bytes; each is then found by QIDO-RS with its study and
    series, and the archive holds the bytes sent."""
    srv = empty
    sent = {}
    for name in STORED:
        ds = pydicom.dcmread(TEST_FILES / name, stop_before_pixels=True)
        sent[ds.SOPInstanceUID] = (ds, TEST_FILES / name)
    assert len(sent) == len(STORED)
    res = client(srv, "storeInstances", {"files": [str(TEST_FILES / n) for n in STORED]})
    resp = json.loads(res["text"])
    refs = resp["00081199"]["Value"]
    assert sorted(val(r, "00081155") for r in refs) == sorted(sent)
    for r in refs:
        assert val(r, "00081150") == sent[val(r, "00081155")][0].SOPClassUID
    assert "00081198" not in resp
    for sop, (ds, path) in sent.items():
        got = client(srv, "searchForInstances",
                     {"queryParams": {"SOPInstanceUID": sop}})["json"]
        assert [val(o, "00080018") for o in got] == [sop]
        assert val(got[0], "0020000D") == ds.StudyInstanceUID
        assert val(got[0], "0020000E") == ds.SeriesInstanceUID
        blob = run_mira("cat", *srv.archive_args, "--path", sop).stdout.decode().strip()
        assert pathlib.Path(blob).read_bytes() == path.read_bytes()
    got = client(srv, "searchForStudies")["json"]
    assert sorted(val(o, "0020000D") for o in got) == \
        sorted({ds.StudyInstanceUID for ds, _ in sent.values()})


def test_store_into_a_study(empty):
    """storeInstances with studyInstanceUID: POST /studies/{study}; an instance of another
    study is refused (Failed SOP Sequence) and not found, the study's one is."""
    srv = empty
    ct = pydicom.dcmread(TEST_FILES / "CT_small.dcm", stop_before_pixels=True)
    mr = pydicom.dcmread(TEST_FILES / "MR_small.dcm", stop_before_pixels=True)
    res = client(srv, "storeInstances",
                 {"studyInstanceUID": ct.StudyInstanceUID,
                  "files": [str(TEST_FILES / "CT_small.dcm"), str(TEST_FILES / "MR_small.dcm")]})
    resp = json.loads(res["text"])  # (202: the client resolves with the body all the same)
    assert [val(r, "00081155") for r in resp["00081199"]["Value"]] == [ct.SOPInstanceUID]
    assert [val(r, "00081155") for r in resp["00081198"]["Value"]] == [mr.SOPInstanceUID]
    got = client(srv, "searchForInstances")["json"]
    assert [val(o, "00080018") for o in got] == [ct.SOPInstanceUID]
