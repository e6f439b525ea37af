"""What HL7 messages mean, and the patient record that links them to the images: an order
received over MLLP becomes a worklist entry that DCMTK's findscu finds, a study sent by
storescu with its accession number is linked to it, ORU reports are kept in versions, ADT
updates keep the demographics current, an A40 merge joins two patients' records; `mira patient`
and GET /api/patients/{id} give the record. Expected values are read from the messages sent by
python-hl7 and mapped by the rules of HL7 v2.5 (OBR-18 accession, OBR-25 result status, XPN
to DICOM PN) and IHE Radiology (OBR-24 modality, OBR-27.4 / TQ1-7 scheduled time)."""
import json
import subprocess
import time
import urllib.request

import hl7
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset

from conftest import run_mira
from test_dimse_worklist import findscu
from test_hl7_mllp import Hl7Server, ack_of, frame, read_frame
from web_accounts import bearer, make_token

import socket


def seg(name, fields):
    """A segment with fields at their numbers (1-based; MSH counts MSH-1 as the separator)."""
    if name == "MSH":
        n = max(fields)
        vals = [fields.get(i, "") for i in range(3, n + 1)]
        return "MSH|^~\\&|" + "|".join(vals)
    n = max(fields)
    return name + "|" + "|".join(fields.get(i, "") for i in range(1, n + 1))


def message(type_, control, *segments, version="2.5"):
    msh = seg("MSH", {3: "RIS", 4: "HOSP", 5: "MIRA", 6: "RAD", 7: "20261201120000",
                      9: type_, 10: control, 11: "P", 12: version})
    return "\r".join([msh, *segments]) + "\r"


PID_77 = seg("PID", {1: "1", 3: "MRN-77^^^HOSP^MR~999-88-7777^^^SSA^SS",
                     5: "O'BRIEN^MARY^ELLEN^JR^DR", 7: "19700315", 8: "F",
                     11: "1 MAIN ST^^SPRINGFIELD^IL^62701"})


def send_all(port, *texts):
    acks = []
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        for t in texts:
            sock.sendall(frame(t))
            acks.append(ack_of(read_frame(sock)))
    assert [a[0] for a in acks] == ["AA"] * len(texts), acks
    return acks


def record(archive, pid, *extra):
    r = run_mira("patient", *archive.args, "--json", pid, *extra, check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def wait_for(archive, pid, cond, timeout=30):
    """The record once cond(record) holds (the server acts on messages after their ACK)."""
    deadline = time.monotonic() + timeout
    rec = None
    while time.monotonic() < deadline:
        rec = record(archive, pid)
        if rec and cond(rec):
            return rec
        time.sleep(0.1)
    raise AssertionError(f"the record of {pid} did not become as expected: {rec}")


def xpn_to_pn(xpn):
    """HL7 XPN (family^given^middle^suffix^prefix) to DICOM PN (family^given^middle^prefix^
    suffix, PS3.5 6.2), trailing empty components dropped."""
    c = (str(xpn).split("^") + [""] * 5)[:5]
    pn = [c[0], c[1], c[2], c[4], c[3]]
    while pn and not pn[-1]:
        pn.pop()
    return "^".join(pn)


def report_text(msg):
    """The OBX values of a text report in order (python-hl7), each repetition a line."""
    m = hl7.parse(msg)
    lines = []
    for obx in m.segments("OBX"):
        for rep in obx(5):
            lines.append(str(rep))
    return "\n".join(lines)


def store_study(tmp_path, port, patient_id, accession, name="OBRIEN^MARY"):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = name
    ds.AccessionNumber = accession
    ds.Modality = "CT"
    ds.StudyDate = "20261210"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.is_little_endian, ds.is_implicit_VR = True, False
    f = tmp_path / f"{accession}.dcm"
    ds.save_as(f, write_like_original=False)
    p = subprocess.run(["storescu", "-aec", "MIRA", "127.0.0.1", str(port), str(f)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return ds.StudyInstanceUID


def test_order_worklist_study_report_linked_in_the_record(tmp_path, archive):
    adt = message("ADT^A04^ADT_A01", "R-1", seg("EVN", {1: "A04"}), PID_77)
    orm = message("ORM^O01", "O-1", PID_77,
                  seg("ORC", {1: "NW", 2: "PLC-77^RIS", 3: "FIL-77^RIS"}),
                  seg("OBR", {1: "1", 2: "PLC-77^RIS", 3: "FIL-77^RIS",
                              4: "71250^CT CHEST WO CONTRAST^CPT4", 18: "ACC-77", 19: "RP-77",
                              24: "CT", 27: "^^^20261210093000"}), version="2.3")
    with Hl7Server(archive, http=True) as s:
        send_all(s.port, adt, orm)
        wait_for(archive, "MRN-77", lambda r: len(r["orders"]) == 1)
        # the modality asks for its worklist (DCMTK findscu)
        got = findscu(s.dicom_port, tmp_path / "wl",
                      {"AccessionNumber": "ACC-77", "PatientID": "", "PatientName": "",
                       "Modality": "", "ScheduledProcedureStepStartDate": "",
                       "ScheduledProcedureStepStartTime": "",
                       "RequestedProcedureDescription": ""})
        assert len(got) == 1
        w, o = got[0], hl7.parse(orm)
        obr = o.segment("OBR")
        assert w.PatientID == str(o.segment("PID")(3)(1)(1))
        assert str(w.PatientName) == xpn_to_pn(o.segment("PID")(5))
        assert w.AccessionNumber == str(obr(18))
        sps = w.ScheduledProcedureStepSequence[0]
        assert sps.Modality == str(obr(24))
        when = str(obr(27)(1)(4))
        assert (sps.ScheduledProcedureStepStartDate,
                sps.ScheduledProcedureStepStartTime) == (when[:8], when[8:])
        assert w.RequestedProcedureDescription == str(obr(4)(1)(2))
        # the images arrive with the accession number
        study = store_study(tmp_path, s.dicom_port, "MRN-77", "ACC-77")
        # reports: preliminary, final, corrected
        reports = []
        for i, (status, lines) in enumerate([
                ("P", ["FINDINGS: 8 mm nodule, right lower lobe.", "IMPRESSION: nodule."]),
                ("F", ["FINDINGS: 8 mm solid nodule, right lower lobe, series 3 image 41.",
                       "IMPRESSION: Fleischner follow-up CT in 6-12 months."]),
                ("C", ["FINDINGS: 8 mm solid nodule, LEFT lower lobe (corrected side).",
                       "IMPRESSION: Fleischner follow-up CT in 6-12 months."])]):
            obx = [seg("OBX", {1: str(k + 1), 2: "TX", 3: "GDT^Report^L", 5: line, 11: status})
                   for k, line in enumerate(lines)]
            reports.append(message("ORU^R01^ORU_R01", f"U-{i}", PID_77,
                                   seg("OBR", {1: "1", 2: "PLC-77", 3: "FIL-77",
                                               4: "71250^CT CHEST WO CONTRAST^CPT4",
                                               7: "20261210101500", 18: "ACC-77", 25: status}),
                                   *obx))
        # demographics change (A08): a new name; the birth date is not sent (kept as it was)
        a08_pid = seg("PID", {1: "1", 3: "MRN-77^^^HOSP^MR~999-88-7777^^^SSA^SS",
                              5: "O'BRIEN-SMITH^MARY^ELLEN", 8: "F"})
        a08 = message("ADT^A08^ADT_A01", "R-2", seg("EVN", {1: "A08"}), a08_pid)
        send_all(s.port, *reports, a08)
        rec = wait_for(archive, "MRN-77",
                       lambda r: len(r["reports"]) == 3 and r["studies"] and
                       r["patient"]["name"] != xpn_to_pn(hl7.parse(adt).segment("PID")(5)))
        # the same through the REST API, with the other identifier
        token = make_token(archive.args)
        req = urllib.request.Request(f"http://127.0.0.1:{s.http_port}/api/patients/999-88-7777",
                                     headers=bearer(token))
        with urllib.request.urlopen(req, timeout=30) as resp:
            via_rest = json.loads(resp.read())
    pat = rec["patient"]
    assert pat["patient_id"] == "MRN-77" and pat["issuer"] == "HOSP"
    assert pat["name"] == xpn_to_pn(hl7.parse(a08).segment("PID")(5))
    assert pat["birth_date"] == str(hl7.parse(adt).segment("PID")(7))  # kept: A08 left it empty
    assert pat["sex"] == "F"
    assert {(i["id"], i["issuer"], i["type"]) for i in rec["identifiers"]} == {
        ("MRN-77", "HOSP", "MR"), ("999-88-7777", "SSA", "SS")}
    assert [s_["study_uid"] for s_ in rec["studies"]] == [study]
    assert rec["studies"][0]["accession"] == "ACC-77"
    assert len(rec["orders"]) == 1
    order = rec["orders"][0]
    assert (order["accession"], order["placer_order"], order["filler_order"]) == (
        "ACC-77", "PLC-77", "FIL-77")
    assert order["linked_study_uid"] == study
    assert [r["version"] for r in rec["reports"]] == [1, 2, 3]
    assert [r["status"] for r in rec["reports"]] == ["P", "F", "C"]
    for r, msg in zip(rec["reports"], reports):
        assert r["text"] == report_text(msg)
        assert r["study_uid"] == study
        assert r["accession"] == "ACC-77"
    assert via_rest == rec
    # the text form names each part
    out = run_mira("patient", *archive.args, "MRN-77").stdout.decode()
    assert "orders: 1" in out and "studies: 1" in out and "reports: 3" in out


def test_order_cancel_removes_the_worklist_entry(tmp_path, archive):
    def order(control, code):
        return message("ORM^O01", f"O-{code}", PID_77,
                       seg("ORC", {1: control, 2: "PLC-9^RIS", 3: "FIL-9^RIS"}),
                       seg("OBR", {1: "1", 2: "PLC-9^RIS", 3: "FIL-9^RIS",
                                   4: "70450^CT HEAD^CPT4", 18: "ACC-9", 24: "CT",
                                   27: "^^^202612111400"}), version="2.3")
    with Hl7Server(archive) as s:
        send_all(s.port, order("NW", 1), order("NW", 2))  # a repeated new order: one entry
        wait_for(archive, "MRN-77", lambda r: len(r["orders"]) == 1)
        assert len(findscu(s.dicom_port, tmp_path / "a", {"AccessionNumber": "ACC-9"})) == 1
        send_all(s.port, order("CA", 3))
        wait_for(archive, "MRN-77", lambda r: len(r["orders"]) == 0)
        assert findscu(s.dicom_port, tmp_path / "b", {"AccessionNumber": "ACC-9"}) == []


def test_omi_order_from_ipc_and_tq1(tmp_path, archive):
    """OMI^O23 (v2.5): the accession, requested procedure ID, study UID, step ID, modality and
    station AE from IPC, the time from TQ1-7."""
    omi = message("OMI^O23^OMI_O23", "OMI-1", PID_77,
                  seg("ORC", {1: "NW", 2: "PLC-5", 3: "FIL-5"}),
                  seg("TQ1", {1: "1", 7: "20261212081500"}),
                  seg("OBR", {1: "1", 2: "PLC-5", 3: "FIL-5", 4: "72148^MR L-SPINE^CPT4"}),
                  seg("IPC", {1: "ACC-5", 2: "RP-5", 3: "1.2.826.0.1.3680043.10.1139.55",
                              4: "SPS-5", 5: "MR", 9: "MR2"}), version="2.5.1")
    with Hl7Server(archive) as s:
        send_all(s.port, omi)
        wait_for(archive, "MRN-77", lambda r: len(r["orders"]) == 1)
        got = findscu(s.dicom_port, tmp_path / "w",
                      {"AccessionNumber": "ACC-5", "StudyInstanceUID": "", "RequestedProcedureID": "",
                       "ScheduledProcedureStepID": "", "Modality": "", "ScheduledStationAETitle": "",
                       "ScheduledProcedureStepStartDate": "", "ScheduledProcedureStepStartTime": ""})
    assert len(got) == 1
    ipc = hl7.parse(omi).segment("IPC")
    w, sps = got[0], got[0].ScheduledProcedureStepSequence[0]
    assert (w.AccessionNumber, w.RequestedProcedureID, w.StudyInstanceUID) == (
        str(ipc(1)), str(ipc(2)), str(ipc(3)))
    assert (sps.ScheduledProcedureStepID, sps.Modality, sps.ScheduledStationAETitle) == (
        str(ipc(4)), str(ipc(5)), str(ipc(9)))
    tq = str(hl7.parse(omi).segment("TQ1")(7))
    assert (sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime) == (
        tq[:8], tq[8:])


def test_merge_joins_the_records(tmp_path, archive):
    def pid(mrn, name):
        return seg("PID", {1: "1", 3: f"{mrn}^^^HOSP^MR", 5: name, 7: "19500101", 8: "M"})
    a = message("ADT^A01^ADT_A01", "M-1", seg("EVN", {1: "A01"}), pid("MRN-1", "ROE^RICHARD"))
    b = message("ADT^A01^ADT_A01", "M-2", seg("EVN", {1: "A01"}), pid("MRN-2", "ROE^RICK"))
    oru = message("ORU^R01", "M-3", pid("MRN-2", "ROE^RICK"),
                  seg("OBR", {1: "1", 3: "F-1", 4: "XR^CHEST XR^L", 18: "ACC-M", 25: "F"}),
                  seg("OBX", {1: "1", 2: "TX", 5: "No acute findings.", 11: "F"}))
    merge = message("ADT^A40^ADT_A39", "M-4", seg("EVN", {1: "A40"}),
                    pid("MRN-1", "ROE^RICHARD"), seg("MRG", {1: "MRN-2^^^HOSP^MR"}))
    with Hl7Server(archive) as s:
        send_all(s.port, a, b, oru)
        wait_for(archive, "MRN-2", lambda r: len(r["reports"]) == 1)
        send_all(s.port, merge)
        rec = wait_for(archive, "MRN-2", lambda r: r["patient"]["patient_id"] == "MRN-1")
    # the prior patient's record is the survivor's, with the prior identifier and its report
    assert rec == record(archive, "MRN-1")
    assert ("MRN-2", "HOSP", "MERGED") in {(i["id"], i["issuer"], i["type"])
                                           for i in rec["identifiers"]}
    assert [r["accession"] for r in rec["reports"]] == ["ACC-M"]
    assert rec["patient"]["name"] == "ROE^RICHARD"


def test_messages_not_acted_on_say_why(archive):
    siu = message("SIU^S12", "S-1", seg("SCH", {1: "1"}))
    a03 = message("ADT^A03", "S-2", seg("EVN", {1: "A03"}), PID_77)
    with Hl7Server(archive) as s:
        send_all(s.port, siu, a03)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = [json.loads(x) for x in run_mira("hl7", "messages", *archive.args, "--json")
                    .stdout.decode().splitlines()]
            if all(r["processed_at"] for r in rows):
                break
            time.sleep(0.1)
    assert all(r["processed_at"] for r in rows)
    assert "not acted on" in rows[0]["process_error"]
    assert "not acted on" in rows[1]["process_error"]
    assert record(archive, "NOBODY") is None
    r = run_mira("patient", *archive.args, "NOBODY", check=False)
    assert r.returncode == 1 and b"NOBODY" in r.stderr


def study_find(port, out_dir, **keys):
    """A study-level C-FIND by DCMTK's findscu; the responses as pydicom data sets."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in out_dir.glob("rsp*.dcm"):
        f.unlink()
    args = ["findscu", "-S", "-aet", "FINDSCU", "-aec", "MIRA", "-X", "-od", str(out_dir),
            "-k", "QueryRetrieveLevel=STUDY"]
    for k, v in keys.items():
        args += ["-k", f"{k}={v}" if v else k]
    p = subprocess.run([*args, "127.0.0.1", str(port)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return [pydicom.dcmread(f) for f in sorted(out_dir.glob("rsp*.dcm"))]


def study_get(port, out_dir, study_uid):
    """The instances of a study, retrieved by DCMTK's getscu, as pydicom data sets."""
    out_dir.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["getscu", "-S", "-aet", "GETSCU", "-aec", "MIRA", "-od", str(out_dir),
                        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}",
                        "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    got = [pydicom.dcmread(f) for f in sorted(out_dir.iterdir())]
    assert got
    return got


def wait_processed(archive, control, timeout=30):
    """The row of a kept message once it was acted on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [json.loads(x) for x in run_mira("hl7", "messages", *archive.args, "--json")
                .stdout.decode().splitlines()]
        row = [r for r in rows if r["control_id"] == control]
        if row and row[0]["processed_at"]:
            return row[0]
        time.sleep(0.1)
    raise AssertionError(f"message {control} was not acted on")


def test_merge_moves_the_images_under_the_survivor(tmp_path, archive):
    def pid(mrn, name):
        return seg("PID", {1: "1", 3: f"{mrn}^^^HOSP^MR", 5: name, 7: "19500101", 8: "M"})
    a = message("ADT^A01^ADT_A01", "G-1", seg("EVN", {1: "A01"}), pid("MRN-1", "ROE^RICHARD"))
    b = message("ADT^A01^ADT_A01", "G-2", seg("EVN", {1: "A01"}), pid("MRN-2", "ROE^RICK"))
    merge = message("ADT^A40^ADT_A39", "G-3", seg("EVN", {1: "A40"}),
                    pid("MRN-1", "ROE^RICHARD^P"), seg("MRG", {1: "MRN-2^^^HOSP^MR"}))
    with Hl7Server(archive) as s:
        send_all(s.port, a, b)
        kept = store_study(tmp_path, s.dicom_port, "MRN-1", "ACC-G1", "ROE^RICHARD")
        moved = store_study(tmp_path, s.dicom_port, "MRN-2", "ACC-G2", "ROE^RICK")
        send_all(s.port, merge)
        row = wait_processed(archive, "G-3")
        assert not row["process_error"], row
        # DCMTK's findscu: both studies under the survivor, none left under the prior ID
        got = study_find(s.dicom_port, tmp_path / "f1", PatientID="MRN-1", StudyInstanceUID="",
                         PatientName="")
        assert sorted(r.StudyInstanceUID for r in got) == sorted([kept, moved])
        want_name = xpn_to_pn(hl7.parse(merge).segment("PID")(5))
        assert {str(r.PatientName) for r in got} == {want_name}
        assert study_find(s.dicom_port, tmp_path / "f2", PatientID="MRN-2",
                          StudyInstanceUID="") == []
        # the files retrieved by getscu say so too
        for uid in (kept, moved):
            for d in study_get(s.dicom_port, tmp_path / f"get-{uid}", uid):
                assert (d.PatientID, str(d.PatientName)) == ("MRN-1", want_name)
    rec = record(archive, "MRN-1")
    assert sorted(st["study_uid"] for st in rec["studies"]) == sorted([kept, moved])
    assert {st["patient_id"] for st in rec["studies"]} == {"MRN-1"}
    hist = [json.loads(x) for x in run_mira("history", *archive.args, "--json", "MRN-2")
            .stdout.decode().splitlines()]
    assert any(h["keyword"] == "PatientID" and h["new"] == "MRN-1" and "A40" in h["reason"]
               for h in hist)


def test_demographics_update_reaches_the_images(tmp_path, archive):
    pid = seg("PID", {1: "1", 3: "MRN-5^^^HOSP^MR", 5: "SMITH^JOHN", 7: "19610203", 8: "M"})
    a01 = message("ADT^A01^ADT_A01", "D-1", seg("EVN", {1: "A01"}), pid)
    pid8 = seg("PID", {1: "1", 3: "MRN-5^^^HOSP^MR", 5: "SMYTHE^JOHN^Q", 7: "19610302",
                       8: "U"})
    a08 = message("ADT^A08^ADT_A01", "D-2", seg("EVN", {1: "A08"}), pid8)
    other = message("ADT^A08^ADT_A01", "D-3", seg("EVN", {1: "A08"}),
                    seg("PID", {1: "1", 3: "MRN-6^^^HOSP^MR", 5: "NOBODY^ELSE"}))
    with Hl7Server(archive) as s:
        send_all(s.port, a01)
        uid = store_study(tmp_path, s.dicom_port, "MRN-5", "ACC-D1", "SMITH^JOHN")
        send_all(s.port, a08, other)
        for c in ("D-2", "D-3"):
            row = wait_processed(archive, c)
            assert not row["process_error"], row
        f = hl7.parse(a08).segment("PID")
        got = study_find(s.dicom_port, tmp_path / "f", StudyInstanceUID=uid, PatientName="",
                         PatientBirthDate="", PatientSex="")
        assert len(got) == 1
        assert str(got[0].PatientName) == xpn_to_pn(f(5))
        assert got[0].PatientBirthDate == str(f(7))
        assert got[0].PatientSex == ""  # HL7 U (unknown) is DICOM's empty value
        for d in study_get(s.dicom_port, tmp_path / "get", uid):
            assert str(d.PatientName) == xpn_to_pn(f(5)) and d.PatientBirthDate == str(f(7))
    hist = [json.loads(x) for x in run_mira("history", *archive.args, "--json", "MRN-5")
            .stdout.decode().splitlines()]
    assert {h["keyword"] for h in hist} == {"PatientName", "PatientBirthDate", "PatientSex"}
    assert all("A08" in h["reason"] for h in hist)
