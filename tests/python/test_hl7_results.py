"""Outbound results (issue 7): `mira hl7 results` makes an ORU^R01 of a study's analysis
results (`mira features --json`), `mira hl7 send` delivers it over MLLP to python-hl7's MLLP
server, and python-hl7 reads it back: the patient and study of the archive (as pydicom wrote
them), one OBX per result with its IBSI tag and value. mira's own HL7 listener takes it as the
study's report."""
import json
import pathlib

import hl7
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset

from conftest import run_mira
from test_hl7_mllp import Hl7Server, PeerServer
from test_hl7_record import wait_for

IBSI = pathlib.Path(__file__).resolve().parent.parent / "data" / "ibsi"


def study_file(path):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.PatientID, ds.IssuerOfPatientID = "MRN-9", "HOSP"
    ds.PatientName = "DOE^JANE^Q^DR"  # family^given^middle^prefix
    ds.PatientBirthDate, ds.PatientSex = "19800101", "F"
    ds.AccessionNumber, ds.Modality = "ACC-9", "CT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, write_like_original=False)
    return ds


def test_results_of_a_study_as_oru_to_python_hl7(tmp_path, archive):
    ds = study_file(tmp_path / "s.dcm")
    archive.run("import", "--no-progress", tmp_path / "s.dcm")
    results = json.loads(run_mira("features", "--json", "--families", "stat,ivh",
                                  IBSI / "phantom.nii.gz", IBSI / "mask.nii.gz").stdout)
    results["x_not_defined"] = None
    (tmp_path / "r.json").write_text(json.dumps(results))
    oru = run_mira("hl7", "results", *archive.args, "--study", ds.StudyInstanceUID, "--to", "RIS^HOSP",
                      tmp_path / "r.json").stdout
    with PeerServer() as peer:
        sent = run_mira("hl7", "send", f"127.0.0.1:{peer.port}", "-", "--json", input=oru)
        assert json.loads(sent.stdout)["ack_code"] == "AA"
    assert len(peer.got) == 1
    m = hl7.parse(peer.got[0])
    msh, pid, obr = m.segment("MSH"), m.segment("PID"), m.segment("OBR")
    assert str(msh(9)) == "ORU^R01^ORU_R01" and str(msh(12)) == "2.5"
    assert (str(msh(5)), str(msh(6))) == ("RIS", "HOSP")
    assert (str(pid(3)(1)(1)), str(pid(3)(1)(4))) == (ds.PatientID, ds.IssuerOfPatientID)
    # DICOM PN family^given^middle^prefix^suffix is HL7 XPN family^given^middle^suffix^prefix
    pn = str(ds.PatientName).split("^") + [""] * 5
    xpn = [str(pid(5)(1)(k)) for k in range(1, 6)]
    assert xpn == [pn[0], pn[1], pn[2], pn[4], pn[3]]
    assert (str(pid(7)), str(pid(8))) == (ds.PatientBirthDate, ds.PatientSex)
    assert str(obr(18)) == ds.AccessionNumber and str(obr(25)) == "F"
    assert str(m.segment("ZDS")(1)(1)(1)) == ds.StudyInstanceUID
    obx = list(m.segments("OBX"))
    assert [str(o(3)(1)(1)) for o in obx] == list(results)
    for o, (tag, value) in zip(obx, results.items()):
        assert str(o(2)) == "NM" and str(o(3)(1)(3)) == "IBSI"
        if value is None:
            assert str(o(5)) == "" and str(o(11)) == "X"
        else:
            assert float(str(o(5))) == value or abs(float(str(o(5))) - value) <= 1e-13 * abs(value)
            assert str(o(11)) == "F"
    # mira's own listener takes it as the study's report, linked by its accession number
    with Hl7Server(archive) as s:
        run_mira("hl7", "send", f"127.0.0.1:{s.port}", "-", input=oru)
        rec = wait_for(archive, ds.PatientID, lambda r: len(r["reports"]) == 1)
    assert rec["reports"][0]["study_uid"] == ds.StudyInstanceUID
    assert "stat_mean" in rec["reports"][0]["text"]


def test_results_refusals(tmp_path, archive):
    ds = study_file(tmp_path / "s.dcm")
    archive.run("import", "--no-progress", tmp_path / "s.dcm")
    (tmp_path / "r.json").write_text('{"stat_mean": 1.5}')
    (tmp_path / "bad.json").write_text('{"stat_mean": "high"}')
    (tmp_path / "list.json").write_text('[1, 2]')
    p = run_mira("hl7", "results", *archive.args, "--study", "1.2.3.4", tmp_path / "r.json", check=False)
    assert p.returncode == 1 and b"no study 1.2.3.4" in p.stderr
    for name in ("bad.json", "list.json"):
        p = run_mira("hl7", "results", *archive.args, "--study", ds.StudyInstanceUID, tmp_path / name,
                        check=False)
        assert p.returncode == 1 and p.stdout == b"", name
    assert run_mira("hl7", "results", *archive.args, tmp_path / "r.json", check=False).returncode == 2


def test_results_kept_with_the_study_in_the_record_and_sent_from_there(tmp_path, archive):
    ds = study_file(tmp_path / "s.dcm")
    archive.run("import", "--no-progress", tmp_path / "s.dcm")
    args = ["--families", "stat,ngt", IBSI / "phantom.nii.gz", IBSI / "mask.nii.gz"]
    want = json.loads(run_mira("features", "--json", *args).stdout)
    kept = json.loads(run_mira("features", "--json", "--study", ds.StudyInstanceUID,
                               *archive.args, *args).stdout)
    assert kept == want
    # the patient record has them, numbers as numbers, in order
    rec = json.loads(run_mira("patient", *archive.args, "--json", ds.PatientID).stdout)
    got = [(r["study_uid"], r["method"], r["tag"], r["value"]) for r in rec["results"]]
    assert got == [(ds.StudyInstanceUID, "ibsi", k, v) for k, v in want.items()]
    # computed again: replaced, not added
    run_mira("features", "--study", ds.StudyInstanceUID, *archive.args, "--families", "stat",
             IBSI / "phantom.nii.gz", IBSI / "mask.nii.gz")
    rec = json.loads(run_mira("patient", *archive.args, "--json", ds.PatientID).stdout)
    assert [r["tag"] for r in rec["results"]] == [k for k in want if k.startswith("stat_")]
    # sent from what is kept
    m = hl7.parse(run_mira("hl7", "results", *archive.args, "--study",
                           ds.StudyInstanceUID).stdout.decode())
    assert [str(o(3)(1)(1)) for o in m.segments("OBX")] == [k for k in want
                                                            if k.startswith("stat_")]
    # the study deleted: its results go with it
    archive.run("delete", "--level", "study", ds.StudyInstanceUID)
    archive.run("import", "--no-progress", tmp_path / "s.dcm")
    rec = json.loads(run_mira("patient", *archive.args, "--json", ds.PatientID).stdout)
    assert rec["results"] == []
    p = run_mira("hl7", "results", *archive.args, "--study", ds.StudyInstanceUID, check=False)
    assert p.returncode == 1 and b"no results" in p.stderr
    # an unknown study is refused, nothing kept
    p = run_mira("features", "--study", "1.2.3.4", *archive.args, *args, check=False)
    assert p.returncode == 1 and b"no study 1.2.3.4" in p.stderr
