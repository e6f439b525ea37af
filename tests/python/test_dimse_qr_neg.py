"""Query/Retrieve extended negotiation in `mira serve` (PS3.4 C.5, PS3.7 D.3.3.5): the
acceptor's answer bytes; relational queries and relational retrieval (C.4.1.3.2, C.4.2.2.2)
against the hierarchical rules without them (C.4.1.2.1, C.4.2.2.1); combined date-time
matching (C.2.2.2.5.4). The archive holds instances this file makes with pydicom; every
expected answer is computed here from those data sets (filters and datetime arithmetic), on
each index backend."""
import datetime
import json

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import BACKENDS, new_postgres_database, run_mira
from dimse_peers import MiraServer, Storescp, pynetdicom_quiet

PATIENT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
SC = "1.2.840.10008.5.1.4.1.1.7"
SUCCESS, PENDING, MISMATCH = 0x0000, (0xFF00, 0xFF01), 0xA900

PATIENTS = [("P1", "Doe^Jane"), ("P2", "Roe^Richard"), ("P3", "Doe^John")]
# (patient, study date-time): around midnight of 2020-01-01, None for a study without a time
STUDIES = [(0, "20200101", "215959"), (0, "20200101", "220000"), (1, "20200101", "233015.5"),
           (1, "20200102", "0030"), (2, "20200102", "015959"), (2, "20200102", "020030"),
           (0, "20200102", "020100"), (1, "20200102", "120000"), (2, "20200103", "001500"),
           (0, "20191231", "2359"), (1, "20200101", None)]


def parse_dt(date, time):
    """A DA and a TM value as a datetime (None without the time)."""
    if time is None:
        return None
    hms, _, frac = time.partition(".")
    hms = hms.ljust(6, "0")
    return datetime.datetime(int(date[:4]), int(date[4:6]), int(date[6:]), int(hms[:2]),
                             int(hms[2:4]), int(hms[4:6]), int(frac.ljust(6, "0")[:6]))


def make_corpus(folder):
    """Patients, studies, two series each, two instances per series; returns the headers."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for si, (pi, date, time) in enumerate(STUDIES):
        study_uid = generate_uid()
        start = parse_dt(date, time)
        for k, modality in enumerate(["CT", "MR"] if si % 2 == 0 else ["MR", "US"]):
            series_uid = generate_uid()
            # a series 40 minutes after the one before it, crossing midnight for some studies
            sdt = start + datetime.timedelta(minutes=40 * k) if start else None
            for n in (1, 2):
                ds = Dataset()
                ds.SOPClassUID = SC
                ds.SOPInstanceUID = generate_uid()
                ds.PatientID, ds.PatientName = PATIENTS[pi]
                ds.StudyInstanceUID = study_uid
                ds.StudyDate = date
                if time is not None:
                    ds.StudyTime = time
                ds.AccessionNumber = f"A{si:03d}"
                ds.SeriesInstanceUID = series_uid
                ds.Modality = modality
                ds.SeriesNumber = k + 1
                if sdt:
                    ds.SeriesDate = sdt.strftime("%Y%m%d")
                    ds.SeriesTime = sdt.strftime("%H%M%S")
                    cdt = sdt + datetime.timedelta(minutes=17 * n)
                    ds.ContentDate = cdt.strftime("%Y%m%d")
                    ds.ContentTime = cdt.strftime("%H%M%S")
                ds.InstanceNumber = n
                ds.ConversionType = "WSD"
                ds.Rows = ds.Columns = 2
                ds.SamplesPerPixel = 1
                ds.PhotometricInterpretation = "MONOCHROME2"
                ds.BitsAllocated = ds.BitsStored = 8
                ds.HighBit = 7
                ds.PixelRepresentation = 0
                ds.PixelData = bytes([si, k, n, 0])
                ds.file_meta = FileMetaDataset()
                ds.file_meta.MediaStorageSOPClassUID = SC
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                p = folder / f"{ds.SOPInstanceUID}.dcm"
                ds.is_little_endian, ds.is_implicit_VR = True, False
                ds.save_as(p, write_like_original=False)
                out.append(pydicom.dcmread(p))
    return out


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("qrneg")
    headers = make_corpus(d / "files")
    args = ["--archive", str(d / "archive")]
    if request.param == "postgresql":
        args += ["--index", new_postgres_database()]
    out = run_mira("import", *args, "--no-progress", "--json", d / "files").stdout.decode()
    assert sum('"status":"stored"' in l for l in out.splitlines()) == len(headers)
    with Storescp(d / "dest", aet="DEST") as scp, \
            MiraServer(d / "archive", "--quiet", "--peer", f"DEST=127.0.0.1:{scp.port}",
                       archive_args=args) as srv:
        yield srv, scp, headers


# ------------------------------------------------------------------ a pynetdicom requestor

def ext(uid, info):
    from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
    item = SOPClassExtendedNegotiation()
    item.sop_class_uid = uid
    item.service_class_application_information = bytes(info)
    return item


def associate(srv, contexts, ext_neg=(), roles=()):
    """An association proposing contexts (SOP class, or (SOP class, transfer syntaxes)) and the
    extended negotiation items; returns it and the acceptor's extended negotiation answers
    ({SOP class: bytes}) as the A-ASSOCIATE-AC carried them."""
    from pynetdicom import AE, build_role, evt
    from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
    pynetdicom_quiet()
    ae = AE(ae_title="QRNEG")
    for c in contexts:
        if isinstance(c, tuple):
            ae.add_requested_context(c[0], c[1])
        else:
            ae.add_requested_context(c)
    answers = {}

    def on_recv(event):
        p = event.primitive
        if type(p).__name__ == "A_ASSOCIATE" and p.result == 0x00:
            for item in p.user_information:
                if isinstance(item, SOPClassExtendedNegotiation):
                    assert str(item.sop_class_uid) not in answers, "answered twice"
                    answers[str(item.sop_class_uid)] = item.service_class_application_information

    assoc = ae.associate("127.0.0.1", srv.port, ae_title="MIRA",
                         ext_neg=[*ext_neg, *[build_role(r, scp_role=True) for r in roles]],
                         evt_handlers=[(evt.EVT_ACSE_RECV, on_recv)])
    assert assoc.is_established
    return assoc, answers


def find(assoc, model, **keys):
    """A C-FIND; returns the final status and the identifiers of the pending responses."""
    q = Dataset()
    for k, v in keys.items():
        setattr(q, k, v)
    found, status = [], None
    for st, ident in assoc.send_c_find(q, model):
        if st.Status in PENDING:
            found.append(ident)
        else:
            status = st.Status
    return status, found


def level_keys(h, level):
    return getattr(h, {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID",
                       "IMAGE": "SOPInstanceUID"}[level])


# ------------------------------------------------------------------ the answer

def test_acceptor_answers_what_it_supports(served):
    srv, _, _ = served
    assoc, answers = associate(
        srv, [STUDY_FIND, PATIENT_FIND, PATIENT_MOVE, STUDY_GET, STUDY_MOVE],
        ext_neg=[ext(STUDY_FIND, [1, 1, 1, 1, 1, 1, 1]),  # longer than the model's 5 fields
                 ext(PATIENT_FIND, [2, 1]),  # 2 is not a request
                 ext(PATIENT_MOVE, [1, 1]),
                 ext(STUDY_GET, [1]),
                 ext(STUDY_MOVE, [0, 1, 1]),
                 ext(PATIENT_GET, [1])])  # no context proposed for it
    assoc.release()
    # relational and combined date-time matching yes; fuzzy names, timezone adjustment,
    # enhanced multi-frame conversion no; never more bytes than proposed
    assert answers == {STUDY_FIND: b"\x01\x01\x00\x00\x00", PATIENT_FIND: b"\x00\x01",
                       PATIENT_MOVE: b"\x01\x00", STUDY_GET: b"\x01", STUDY_MOVE: b"\x00\x00"}


def test_no_answer_for_a_rejected_context(served):
    srv, _, _ = served
    assoc, answers = associate(srv, [("1.2.840.10008.1.1", None),
                                     (STUDY_FIND, ["1.2.3.4.5.6"])],  # no transfer syntax we take
                               ext_neg=[ext(STUDY_FIND, [1, 1])])
    assoc.release()
    assert answers == {}


# ------------------------------------------------------------------ relational queries

def relational_cases(headers):
    """(model, level, keys, the expected unique keys at the level) for queries without the
    unique keys of the levels above."""
    doe = [h for h in headers if str(h.PatientName).startswith("Doe")]
    uids = sorted({h.SeriesInstanceUID for h in headers})[:3]
    return [
        # IMAGE level with patient and series keys, no Study or Series Instance UID
        (STUDY_FIND, "IMAGE", {"PatientName": "Doe*", "Modality": "CT", "SOPInstanceUID": ""},
         {h.SOPInstanceUID for h in doe if h.Modality == "CT"}),
        # SERIES level: a patient and a modality
        (STUDY_FIND, "SERIES", {"PatientID": "P2", "Modality": "MR", "SeriesInstanceUID": ""},
         {h.SeriesInstanceUID for h in headers if h.PatientID == "P2" and h.Modality == "MR"}),
        # Patient Root STUDY level without Patient ID, on a study date range
        (PATIENT_FIND, "STUDY", {"StudyDate": "20200102-20200103", "StudyInstanceUID": ""},
         {h.StudyInstanceUID for h in headers if "20200102" <= h.StudyDate <= "20200103"}),
        # Patient Root IMAGE level: an accession number and an instance number
        (PATIENT_FIND, "IMAGE", {"AccessionNumber": "A004", "InstanceNumber": "2",
                                 "SOPInstanceUID": ""},
         {h.SOPInstanceUID for h in headers if h.AccessionNumber == "A004"
          and h.InstanceNumber == 2}),
        # IMAGE level on a list of series UIDs only
        (STUDY_FIND, "IMAGE", {"SeriesInstanceUID": "\\".join(uids), "SOPInstanceUID": ""},
         {h.SOPInstanceUID for h in headers if h.SeriesInstanceUID in uids}),
    ]


def test_relational_queries(served):
    srv, _, headers = served
    assoc, answers = associate(srv, [STUDY_FIND, PATIENT_FIND],
                               ext_neg=[ext(STUDY_FIND, [1]), ext(PATIENT_FIND, [1])])
    assert answers == {STUDY_FIND: b"\x01", PATIENT_FIND: b"\x01"}
    for model, level, keys, want in relational_cases(headers):
        assert want  # the corpus has matches for every case
        status, found = find(assoc, model, QueryRetrieveLevel=level, **keys)
        assert status == SUCCESS, (level, keys)
        got = [level_keys(r, level) for r in found]
        assert len(got) == len(set(got)) and set(got) == want, (level, keys)
        if level == "IMAGE" and "PatientName" in keys:
            by = {h.SOPInstanceUID: h for h in headers}
            assert all(r.PatientName == by[r.SOPInstanceUID].PatientName and
                       r.Modality == "CT" for r in found)
    assoc.release()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the wild card sent on purpose
def test_without_relational_queries_the_hierarchical_rules_hold(served):
    srv, _, headers = served
    h = headers[5]
    # proposed but declined by the requestor (0), or not proposed at all
    for ext_neg in ([ext(STUDY_FIND, [0, 0]), ext(PATIENT_FIND, [0])], []):
        assoc, answers = associate(srv, [STUDY_FIND, PATIENT_FIND], ext_neg=ext_neg)
        assert all(v[0] == 0 for v in answers.values())
        for model, level, keys, _ in relational_cases(headers):
            status, found = find(assoc, model, QueryRetrieveLevel=level, **keys)
            assert status == MISMATCH and not found, (level, keys)
        # a list or a wild card in a unique key above the level, a matching key above it
        for keys in ({"StudyInstanceUID": f"{h.StudyInstanceUID}\\1.2.3", "SeriesInstanceUID": ""},
                     {"StudyInstanceUID": "1.2.*", "SeriesInstanceUID": ""},
                     {"StudyInstanceUID": h.StudyInstanceUID, "StudyDate": h.StudyDate,
                      "SeriesInstanceUID": ""}):
            status, found = find(assoc, STUDY_FIND, QueryRetrieveLevel="SERIES", **keys)
            assert status == MISMATCH and not found, keys
        status, _ = find(assoc, PATIENT_FIND, QueryRetrieveLevel="SERIES",
                         StudyInstanceUID=h.StudyInstanceUID, SeriesInstanceUID="")
        assert status == MISMATCH  # Patient Root: the Patient ID is needed too
        # hierarchical queries are answered; keys of levels above may be asked for (empty)
        status, found = find(assoc, PATIENT_FIND, QueryRetrieveLevel="IMAGE",
                             PatientID=h.PatientID, StudyInstanceUID=h.StudyInstanceUID,
                             SeriesInstanceUID=h.SeriesInstanceUID, PatientName="",
                             SOPInstanceUID="")
        assert status == SUCCESS
        assert {r.SOPInstanceUID for r in found} == {
            x.SOPInstanceUID for x in headers if x.SeriesInstanceUID == h.SeriesInstanceUID}
        assert {str(r.PatientName) for r in found} == {str(h.PatientName)}
        status, found = find(assoc, STUDY_FIND, QueryRetrieveLevel="SERIES",
                             StudyInstanceUID=h.StudyInstanceUID, Modality="MR",
                             SeriesInstanceUID="")
        assert status == SUCCESS
        assert {r.SeriesInstanceUID for r in found} == {
            x.SeriesInstanceUID for x in headers
            if x.StudyInstanceUID == h.StudyInstanceUID and x.Modality == "MR"}
        assoc.release()


# ------------------------------------------------------------------ combined date-time

def precision(t):
    """How much an upper time bound covers: 02 is up to 02:59:59.999999, 0200 to 02:00:59..."""
    return {2: datetime.timedelta(hours=1), 4: datetime.timedelta(minutes=1),
            6: datetime.timedelta(seconds=1)}[len(t)]


def dt_bounds(date_range, time_range):
    """The combined range as datetimes [lo, hi) (None: open) from the DA and TM ranges."""
    d1, _, d2 = date_range.partition("-")
    t1, _, t2 = time_range.partition("-")
    lo = parse_dt(d1, t1) if d1 else None
    hi = parse_dt(d2, t2) + precision(t2) if d2 else None
    return lo, hi


def combined_match(date, time, date_range, time_range):
    dt = parse_dt(date, time) if date else None
    if dt is None:
        return False  # a date without a time does not match a combined range
    lo, hi = dt_bounds(date_range, time_range)
    return (lo is None or dt >= lo) and (hi is None or dt < hi)


def time_of_day(t):
    return parse_dt("20000101", t) - datetime.datetime(2000, 1, 1)


def separate_match(date, time, date_range, time_range):
    """Without combined matching: the date in its range (or equal to it) and the time of day
    in its range."""
    if not date or time is None:
        return False
    if "-" in date_range:
        d1, _, d2 = date_range.partition("-")
        date_ok = (not d1 or date >= d1) and (not d2 or date <= d2)
    else:
        date_ok = date == date_range
    t1, _, t2 = time_range.partition("-")
    lo = time_of_day(t1) if t1 else datetime.timedelta(0)
    hi = time_of_day(t2) + precision(t2) if t2 else datetime.timedelta(days=1)
    return date_ok and lo <= time_of_day(time) < hi


RANGES = [("20200101-20200102", "2200-0200"),  # across midnight, 4 hours
          ("20200101-20200102", "1000-1800"),  # 32 hours, not 10 to 18 on each day
          ("20191231-20200103", "2300-0100"),  # three midnights
          ("-20200101", "-2300"),              # up to 2020-01-01 23:00:59.999999
          ("20200102-", "0100-"),              # from 2020-01-02 01:00
          ("20200101-20200101", "215959-220000")]


def test_combined_datetime_matching_of_studies(served):
    srv, _, headers = served
    studies = {}
    for h in headers:
        studies[h.StudyInstanceUID] = (h.StudyDate, h.get("StudyTime"))
    assoc, answers = associate(srv, [STUDY_FIND], ext_neg=[ext(STUDY_FIND, [0, 1])])
    plain, _ = associate(srv, [STUDY_FIND])
    assert answers == {STUDY_FIND: b"\x00\x01"}
    differ = 0
    for dr, tr in RANGES:
        want = {u for u, (d, t) in studies.items() if combined_match(d, t, dr, tr)}
        status, found = find(assoc, STUDY_FIND, QueryRetrieveLevel="STUDY", StudyDate=dr,
                             StudyTime=tr, StudyInstanceUID="")
        assert status == SUCCESS and {r.StudyInstanceUID for r in found} == want, (dr, tr)
        # without the negotiation: the date and the time independently
        sep = {u for u, (d, t) in studies.items() if separate_match(d, t, dr, tr)}
        status, found = find(plain, STUDY_FIND, QueryRetrieveLevel="STUDY", StudyDate=dr,
                             StudyTime=tr, StudyInstanceUID="")
        assert status == SUCCESS and {r.StudyInstanceUID for r in found} == sep, (dr, tr)
        differ += want != sep
    assert differ >= 4  # the cases tell the two kinds of matching apart
    # mira find --combined-datetime: the same matching on the command line, and without it
    # each key on its own
    for dr, tr in RANGES:
        for flag, match in ((["--combined-datetime"], combined_match), ([], separate_match)):
            want = {u for u, (d, t) in studies.items() if match(d, t, dr, tr)}
            out = run_mira("find", *srv._archive_args, *flag, f"StudyDate={dr}",
                           f"StudyTime={tr}", "StudyInstanceUID", "--json").stdout
            got = {o["0020000D"]["Value"][0] for o in json.loads(out)}
            assert got == want, (flag, dr, tr)
    # the first range by hand: 22:00 on the 1st to 02:00:59 on the 2nd
    want = {u for u, (d, t) in studies.items()
            if (d, t) in {("20200101", "220000"), ("20200101", "233015.5"), ("20200102", "0030"),
                          ("20200102", "015959"), ("20200102", "020030")}}
    status, found = find(assoc, STUDY_FIND, QueryRetrieveLevel="STUDY",
                         StudyDate="20200101-20200102", StudyTime="2200-0200", StudyInstanceUID="")
    assert {r.StudyInstanceUID for r in found} == want and len(want) == 5
    # ranges of different forms, or a single date: each matches on its own
    for dr, tr in (("20200101-20200102", "2200-"), ("20200101", "0000-2359")):
        want = {u for u, (d, t) in studies.items() if separate_match(d, t, dr, tr)}
        status, found = find(assoc, STUDY_FIND, QueryRetrieveLevel="STUDY", StudyDate=dr,
                             StudyTime=tr, StudyInstanceUID="")
        assert status == SUCCESS and {r.StudyInstanceUID for r in found} == want, (dr, tr)
    assoc.release()
    plain.release()


@pytest.mark.parametrize("level,date,time,unique", [
    ("SERIES", "SeriesDate", "SeriesTime", "SeriesInstanceUID"),
    ("IMAGE", "ContentDate", "ContentTime", "SOPInstanceUID")])
def test_combined_datetime_matching_below_the_study(served, level, date, time, unique):
    srv, _, headers = served
    assoc, answers = associate(srv, [STUDY_FIND], ext_neg=[ext(STUDY_FIND, [1, 1])])
    assert answers == {STUDY_FIND: b"\x01\x01"}
    for dr, tr in RANGES:
        want = {getattr(h, unique) for h in headers
                if combined_match(h.get(date), h.get(time), dr, tr)}
        status, found = find(assoc, STUDY_FIND, QueryRetrieveLevel=level,
                             **{date: dr, time: tr, unique: ""})
        assert status == SUCCESS and {getattr(r, unique) for r in found} == want, (dr, tr)
    assoc.release()


# ------------------------------------------------------------------ relational retrieval

def retrieve_cases(headers):
    """(model, level, keys, the SOP Instance UIDs) with only the retrieve level's unique key."""
    series = sorted({h.SeriesInstanceUID for h in headers})
    images = sorted(h.SOPInstanceUID for h in headers)[3:6]
    study = headers[9].StudyInstanceUID
    return [
        (STUDY_MOVE, STUDY_GET, "SERIES", {"SeriesInstanceUID": series[2]},
         {h.SOPInstanceUID for h in headers if h.SeriesInstanceUID == series[2]}),
        (STUDY_MOVE, STUDY_GET, "SERIES", {"SeriesInstanceUID": "\\".join(series[4:6])},
         {h.SOPInstanceUID for h in headers if h.SeriesInstanceUID in series[4:6]}),
        (PATIENT_MOVE, PATIENT_GET, "IMAGE", {"SOPInstanceUID": "\\".join(images)},
         set(images)),
        (PATIENT_MOVE, PATIENT_GET, "STUDY", {"StudyInstanceUID": study},
         {h.SOPInstanceUID for h in headers if h.StudyInstanceUID == study}),
    ]


def identifier(level, keys):
    q = Dataset()
    q.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(q, k, v)
    return q


def test_relational_move(served):
    srv, scp, headers = served
    assoc, answers = associate(srv, [STUDY_MOVE, PATIENT_MOVE],
                               ext_neg=[ext(STUDY_MOVE, [1]), ext(PATIENT_MOVE, [1])])
    plain, _ = associate(srv, [STUDY_MOVE, PATIENT_MOVE])
    assert answers == {STUDY_MOVE: b"\x01", PATIENT_MOVE: b"\x01"}
    for move, _, level, keys, want in retrieve_cases(headers):
        assert want
        for f in scp.out.iterdir():
            f.unlink()
        statuses = [st.Status for st, _ in assoc.send_c_move(identifier(level, keys), "DEST",
                                                              move)]
        assert statuses[-1] == SUCCESS, (level, keys, statuses)
        got = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
               for f in scp.out.iterdir()}
        assert got == want, (level, keys)
        # the hierarchical rules without relational retrieval (STUDY in Study Root has no
        # level above it)
        if level == "STUDY" and move == STUDY_MOVE:
            continue
        statuses = [st.Status for st, _ in plain.send_c_move(identifier(level, keys), "DEST",
                                                              move)]
        assert statuses == [MISMATCH], (level, keys)
    # and with every unique key above the level, they are met
    h = headers[0]
    for f in scp.out.iterdir():
        f.unlink()
    statuses = [st.Status for st, _ in plain.send_c_move(
        identifier("SERIES", {"PatientID": h.PatientID, "StudyInstanceUID": h.StudyInstanceUID,
                              "SeriesInstanceUID": h.SeriesInstanceUID}), "DEST", PATIENT_MOVE)]
    assert statuses[-1] == SUCCESS
    assert {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
            for f in scp.out.iterdir()} == {x.SOPInstanceUID for x in headers
                                            if x.SeriesInstanceUID == h.SeriesInstanceUID}
    assoc.release()
    plain.release()


def test_relational_get(served):
    from pynetdicom import evt
    srv, _, headers = served
    for _, get, level, keys, want in retrieve_cases(headers):
        received = set()

        def on_store(event):
            received.add(str(event.request.AffectedSOPInstanceUID))
            return 0x0000

        assoc, answers = associate(srv, [get, SC], ext_neg=[ext(get, [1])], roles=[SC])
        assert answers == {get: b"\x01"}
        assoc.bind(evt.EVT_C_STORE, on_store)
        statuses = [st.Status for st, _ in assoc.send_c_get(identifier(level, keys), get)]
        assoc.release()
        assert statuses[-1] == SUCCESS and received == want, (level, keys, statuses)
        if level == "STUDY" and get == STUDY_GET:
            continue
        plain, _ = associate(srv, [get, SC], roles=[SC])
        plain.bind(evt.EVT_C_STORE, on_store)
        statuses = [st.Status for st, _ in plain.send_c_get(identifier(level, keys), get)]
        plain.release()
        assert statuses == [MISMATCH], (level, keys)
