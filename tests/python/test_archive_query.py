"""mira find (C-FIND matching of the archive index) against a reference matcher written from PS3.4.

The reference matcher below is written from PS3.4 C.2.2.2 (Attribute Matching), not from
src/archive/find.c, and reads the attribute values with pydicom from the very files that were
imported, not from mira's output:

  - Universal Matching (C.2.2.2.3): a key without a value, or "*", matches everything;
  - Single Value Matching (C.2.2.2.1): equality, case-sensitive except for person names;
  - List of UID Matching (C.2.2.2.2): a UID key "a\\b\\c" matches any of them;
  - Wild Card Matching (C.2.2.2.4): in AE CS LO LT PN SH ST UC UR UT keys, "*" matches any
    run of characters (including none) and "?" exactly one character (not one byte); in
    other VRs (DS, AS, UI...) they are plain characters; characters that are special to SQL
    (% _ [) are just characters;
  - Range Matching (C.2.2.2.5): "d1-d2", "-d2", "d1-" on dates and times, bounds included;
  - Sequence Matching (C.2.2.2.6): every item key with a value matches in one same item; a
    sequence key with no item keys with values matches everything; the matching items are
    returned, with only the item keys asked for (all of them for an empty item);
  - Empty Value Matching (C.2.2.2.7): a key of two QUOTATION MARKs matches an attribute that
    is absent or zero length;
  - Multiple Value Matching (C.2.2.2.8) is only defined with Extended Negotiation; without it
    mira's documented choice is followed: "CT\\MR" in a non-UID key is an OR of its values.

Where the standard leaves it to the SCP, the choices documented in find.c are followed:
person names are case-insensitive by default (ASCII letters folded, nothing else; the whole
name with its '=' groups is one string) and exact with --exact-names; a multi-valued
attribute matches when any one of its values does; Modalities in Study matches when any
series of the study has a matching Modality; a time with fewer components is a span: as a
range bound "10" is 10:00:00.000000 from below and 10:59:59.999999 from above (likewise a
fraction is padded with 0s or 9s), a stored time is its first instant, and a single time
value (no "-") matches the same instant; leading and trailing spaces are not significant;
the legacy forms YYYY.MM.DD and HH:MM:SS are read as dates and times; IS and US keys match as
integers; a date range never matches a value that is not a date. Keys of the levels above the
query level match and are returned there too.

The entity model is the store's documented one (store.c): instances are imported in a known
order (`mira import --threads 1` with the files listed explicitly: the generated corpus in
file name order, then Debian's pydicom test files in sorted path order); an instance whose
SOP Instance UID was stored already is a duplicate and changes nothing; the first instance of
a series, study or patient (Patient ID + Issuer; without a Patient ID, the ID-less patient of
the same name, birth date and sex, and with neither an ID nor a name a patient of its own)
creates it with its attributes, later ones fill only attributes still empty (a sequence's items count as one
attribute); an instance whose series (or study) exists joins it there, whatever study (or
patient) it names, and fills in that patient only if it names it. A file of the pydicom set
that the store cannot parse (pydicom reads truncated files leniently) is left out; every
generated file must be stored exactly as the model says.

Result order (limit/offset): patients by Patient ID (empty ones last), studies by Study Date
then Study Time, series by Series Number, instances by Instance Number; missing values last,
ties in insertion order (the order the entities were created in).

The corpus is generated at test time with pydicom from a fixed seed: patients whose names
differ only in case, have '^' components or are not ASCII (ISO_IR 192), dates spread over
years, times with and without fractions and with fewer components, accession numbers with
% _ [ in them, CT/MR/PT/SR series, multi-valued Other Patient IDs and Image Type, empty and
missing attributes, attributes filled by later instances, Procedure Code Sequence items (study)
and Request Attributes Sequence items (series). The archive is built once per backend for the
module (SQLite, and PostgreSQL when MIRA_TEST_POSTGRES is set).
"""
import collections
import json
import random
import re

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from conftest import (BACKENDS, Archive, dicom_test_files, new_postgres_database, run_mira)

ROOT_UID = "1.2.826.0.1.3680043.8.498.4242"
SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "SR": "1.2.840.10008.5.1.4.1.1.88.11",
}
LEVELS = ["PATIENT", "STUDY", "SERIES", "IMAGE"]
PATIENT, STUDY, SERIES, IMAGE = range(4)
DROP = object()  # an instance override: the attribute is not written at all

# ------------------------------------------------------------------ the information model

# keyword -> (level, kind). The levels are the Patient/Study Root models' (PS3.4 C.6.1.1,
# C.6.2.1); the kinds say how a key matches (the VR decides wild cards, see WILDCARD_VRS).
KEYS = {
    "PatientName": (PATIENT, "pn"), "PatientID": (PATIENT, "text"),
    "IssuerOfPatientID": (PATIENT, "text"), "PatientBirthDate": (PATIENT, "date"),
    "PatientBirthTime": (PATIENT, "time"), "PatientSex": (PATIENT, "text"),
    "OtherPatientIDs": (PATIENT, "text"), "OtherPatientNames": (PATIENT, "pn"),
    "NumberOfPatientRelatedStudies": (PATIENT, "count"),
    "NumberOfPatientRelatedInstances": (PATIENT, "count"),
    "StudyDate": (STUDY, "date"), "StudyTime": (STUDY, "time"),
    "AccessionNumber": (STUDY, "text"), "ModalitiesInStudy": (STUDY, "modalities"),
    "SOPClassesInStudy": (STUDY, "sopclasses"),
    "ReferringPhysicianName": (STUDY, "pn"), "StudyDescription": (STUDY, "text"),
    "ProcedureCodeSequence": (STUDY, "seq"), "StudyInstanceUID": (STUDY, "uid"),
    "StudyID": (STUDY, "text"), "PatientAge": (STUDY, "text"), "PatientSize": (STUDY, "text"),
    "NumberOfStudyRelatedSeries": (STUDY, "count"),
    "NumberOfStudyRelatedInstances": (STUDY, "count"),
    "SeriesDate": (SERIES, "date"), "SeriesTime": (SERIES, "time"), "Modality": (SERIES, "text"),
    "SeriesDescription": (SERIES, "text"), "BodyPartExamined": (SERIES, "text"),
    "PerformingPhysicianName": (SERIES, "pn"), "SeriesInstanceUID": (SERIES, "uid"),
    "SeriesNumber": (SERIES, "int"), "RequestAttributesSequence": (SERIES, "seq"),
    "NumberOfSeriesRelatedInstances": (SERIES, "count"),
    "ImageType": (IMAGE, "text"), "SOPClassUID": (IMAGE, "uid"),
    "SOPInstanceUID": (IMAGE, "uid"), "ContentDate": (IMAGE, "date"),
    "ContentTime": (IMAGE, "time"), "AcquisitionTime": (IMAGE, "time"),
    "InstanceNumber": (IMAGE, "int"), "NumberOfFrames": (IMAGE, "int"), "Rows": (IMAGE, "int"),
}
# The item keys the archive keeps per sequence (the codes of Procedure Code Sequence, the
# request of Request Attributes Sequence).
ITEM_KEYS = {
    "ProcedureCodeSequence": ["CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion",
                              "CodeMeaning"],
    "RequestAttributesSequence": ["AccessionNumber", "RequestedProcedureDescription",
                                  "ScheduledProcedureStepDescription",
                                  "ScheduledProcedureStepID", "RequestedProcedureID"],
}
WILDCARD_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}  # C.2.2.2.4
UNIQUE = ["PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]


def kind_of(keyword):
    """How a key matches; the item keys of the indexed sequences are all text (SH, LO)."""
    return KEYS[keyword][1] if keyword in KEYS else "text"


def vr_of(keyword):
    return pydicom.datadict.dictionary_VR(pydicom.datadict.tag_for_keyword(keyword))


# ------------------------------------------------------------------ the generated corpus


def uid(kind, n):
    return f"{ROOT_UID}.{kind}.{n}"


def code_items(codes):
    out = []
    for value, scheme, meaning in codes:
        it = Dataset()
        it.CodeValue = value
        it.CodingSchemeDesignator = scheme
        it.CodeMeaning = meaning
        out.append(it)
    return Sequence(out)


def request_items(requests):
    out = []
    for acc, rpid, spsid, desc in requests:
        it = Dataset()
        if acc is not None:
            it.AccessionNumber = acc
        it.RequestedProcedureID = rpid
        it.ScheduledProcedureStepID = spsid
        it.RequestedProcedureDescription = desc
        out.append(it)
    return Sequence(out)


def corpus_spec():
    """Patients -> studies -> series -> instances, as nested dicts of attributes."""
    rng = random.Random(20240404)
    P = []

    def patient(pid, name, **kw):
        p = {"PatientID": pid, "PatientName": name, **kw, "studies": []}
        P.append(p)
        return p

    def study(p, date, time, acc, desc, **kw):
        s = {"StudyDate": date, "StudyTime": time, "AccessionNumber": acc,
             "StudyDescription": desc, **kw, "series": []}
        p["studies"].append(s)
        return s

    def series(s, modality, number, n, **kw):
        se = {"Modality": modality, "SeriesNumber": number, **kw, "instances": []}
        s["series"].append(se)
        for i in range(n):
            se["instances"].append({"InstanceNumber": i + 1})
        return se

    p1 = patient("QX01", "Doe^John", PatientBirthDate="19700101", PatientBirthTime="0830",
                 PatientSex="M", OtherPatientIDs=["A1", "B2"], OtherPatientNames="Doe^J")
    s = study(p1, "20200115", "10", "ACC001", "CT Head", ReferringPhysicianName="Smith^Dr",
              StudyID="S1", PatientAge="050Y",
              ProcedureCodeSequence=[("P1", "LOCAL", "CT head"), ("P2", "LOCAL", "CT neck")])
    se = series(s, "CT", 1, 2, SeriesDescription="Axial 5mm", BodyPartExamined="HEAD",
                SeriesDate="20200115", SeriesTime="101500",
                PerformingPhysicianName=["Who^Dr", "what^dr"],
                RequestAttributesSequence=[("ACC001", "RP1", "SPS1", "CT head w/o"),
                                           ("ACC001B", "RP2", "SPS2", "CT neck")])
    se["instances"][0].update(ImageType=["ORIGINAL", "PRIMARY", "AXIAL"], Rows=512,
                              ContentTime="101501.25", AcquisitionTime="1015")
    se["instances"][1].update(ImageType=["DERIVED", "SECONDARY", "AXIAL"], Rows=512,
                              ContentTime="101502")
    se = series(s, "CT", 2, 1, SeriesDescription="Coronal", BodyPartExamined="HEAD")
    se["instances"][0].update(ImageType=["DERIVED", "SECONDARY", "REFORMATTED"], Rows=256)
    se = series(s, "SR", None, 1, SeriesDescription="Report")
    se["instances"][0].update(InstanceNumber=None, ContentDate="20200116")
    s = study(p1, "20200115", "1030", "acc001", "ct head", ReferringPhysicianName="smith^dr",
              StudyID="S2", ProcedureCodeSequence=[])
    series(s, "MR", 1, 3, SeriesDescription="T1 sag", BodyPartExamined="head",
           RequestAttributesSequence=[(None, "RP9", "SPS9", "MR brain")])

    p2 = patient("QX02", "doe^jane", PatientBirthDate="19851231", PatientSex="F",
                 OtherPatientIDs="A1")
    s = study(p2, "20191231", "103015.5", "ACC%01", "MR Knee", ReferringPhysicianName="Jones",
              ProcedureCodeSequence=[("P%1", "LOCAL", "MR_knee"), ("X_2", "99X", "[left]")])
    se = series(s, "MR", 3, 2, SeriesDescription="PD fat_sat", BodyPartExamined="KNEE",
                SeriesTime="103016")
    se["instances"][1].update(InstanceNumber=None)
    series(s, "PT", 1, 1, SeriesDescription="Whole%body")
    s = study(p2, "20210301", "103015", "ACC_02", "PET Whole body",
              ProcedureCodeSequence=[("P3", "DCM", "PET_CT")])
    series(s, "PT", 1, 2, SeriesDescription="AC", SeriesDate="20210301",
           RequestAttributesSequence=[("ACC_02", "RP_3", "SPS%3", "PET [FDG]")])
    series(s, "CT", 2, 1, SeriesDescription="CT for AC")

    p3 = patient("QX03", "DOE^JOHN^^Dr.", PatientBirthDate="19700101", PatientSex="M")
    s = study(p3, "19980704", "235959.999999", "ACC[03]", "CT chest",
              ReferringPhysicianName="Smith^Dr")
    series(s, "CT", 5, 2, SeriesDescription="Lung [HR]")

    p4 = patient("qx04", "Müller^Jürgen", PatientSex="", OtherPatientNames="Mueller^Juergen",
                 SpecificCharacterSet="ISO_IR 192")
    s = study(p4, "20240229", "000000", "", "Knie MRT", ReferringPhysicianName="Ärztin^Ödön")
    series(s, "MR", 1, 1, SeriesDescription="T2 ¼ Größe")
    series(s, "SR", 2, 1)

    p5 = patient("QX%5_[a]", "100%^Real_Name[1]", PatientBirthDate="20000229",
                 PatientBirthTime="235959.999999", PatientSex="O")
    s = study(p5, "20150601", DROP, DROP, "Special_%[x]",
              ProcedureCodeSequence=[("", "LOCAL", "Special_%[x]")])
    series(s, "CT", 1, 1, SeriesDescription="100%")

    p6 = patient("QX06", "", PatientBirthDate="19991231", OtherPatientIDs=["C_3", "D%4"])
    s = study(p6, DROP, "0800", "ACC006", "No date")
    series(s, "CT", 1, 1)

    p7 = patient("QX07", "Smith^Anne^Marie", PatientSex="F", PatientBirthDate="19600606",
                 OtherPatientIDs=["Z9", "Y8"])
    s = study(p7, "20220810", "1200", "ACC009", "Filled later", StudyID="S9",
              ProcedureCodeSequence=[("F1", "LOCAL", "Filled code")])
    se = series(s, "CT", 1, 3, SeriesDescription="Late desc", PerformingPhysicianName="Late^Doc",
                RequestAttributesSequence=[("ACC009", "RP7", "SPS7", "Filled request")])
    # the first instance lacks what the later ones have: the study, series and patient take
    # the first non-empty value (sequence items as a whole); a later different value changes
    # nothing
    se["instances"][0]["over"] = {"AccessionNumber": DROP, "PatientBirthDate": "",
                                  "SeriesDescription": DROP, "StudyID": "",
                                  "OtherPatientIDs": DROP, "PerformingPhysicianName": "",
                                  "ProcedureCodeSequence": DROP,
                                  "RequestAttributesSequence": []}
    se["instances"][2]["over"] = {"AccessionNumber": "ACC999", "SeriesDescription": "Other",
                                  "PatientBirthDate": "19000101",
                                  "OtherPatientIDs": ["X0"], "PerformingPhysicianName": "No^One",
                                  "ProcedureCodeSequence": [("F2", "LOCAL", "Later code")],
                                  "RequestAttributesSequence": [(None, "RP8", "SPS8", "Later")]}
    # an instance naming another patient joins QX07's study but fills nothing in for QX07
    se = series(s, "MR", 2, 1)
    se["instances"][0]["over"] = {"PatientID": "QX08", "PatientBirthTime": "0101"}

    for issuer, name in (("HOSP_A", "Twin^One"), ("HOSP_B", "Twin^Two")):
        p = patient("QX09", name, IssuerOfPatientID=issuer, PatientBirthDate="20100505")
        s = study(p, "20101010", "1010", f"ACC-{issuer}", "Twin")
        series(s, "MR", 1, 1)

    # a bulk of random patients: dates over 1998-2024, times of every precision
    first = ["Anna", "anna", "Bob", "BOB", "Chen", "Dana", "Eve", "Finn"]
    last = ["Lee", "lee", "Park", "Garcia", "Nguyen", "OConnor", "Ito"]
    times = ["07", "0745", "074512", "074512.1", "074512.123456", "1200", "235959", "13"]
    for k in range(10, 22):
        p = patient(f"QR{k:02d}", f"{rng.choice(last)}^{rng.choice(first)}",
                    PatientBirthDate=f"{rng.randint(1930, 2015)}{rng.randint(1, 12):02d}"
                                     f"{rng.randint(1, 28):02d}",
                    PatientSex=rng.choice(["M", "F", "O", ""]))
        for _ in range(rng.randint(1, 2)):
            s = study(p, f"{rng.randint(1998, 2024)}{rng.randint(1, 12):02d}"
                         f"{rng.randint(1, 28):02d}",
                      rng.choice(times + [DROP]), f"R{rng.randint(100, 999)}",
                      rng.choice(["CT abdomen", "MR spine", "PET", "Report"]))
            for n in range(rng.randint(1, 2)):
                mod = rng.choice(["CT", "MR", "PT", "SR"])
                se = series(s, mod, rng.choice([n + 1, n + 1, None]), rng.randint(1, 3),
                            SeriesTime=rng.choice(times))
                for inst in se["instances"]:
                    inst["ContentTime"] = rng.choice(times)
                    if rng.random() < 0.3:
                        inst["InstanceNumber"] = None
    return P


PATIENT_ATTRS = ["PatientID", "PatientName", "IssuerOfPatientID", "PatientBirthDate",
                 "PatientBirthTime", "PatientSex", "OtherPatientIDs", "OtherPatientNames"]
STUDY_ATTRS = ["StudyDate", "StudyTime", "AccessionNumber", "StudyDescription",
               "ReferringPhysicianName", "StudyID", "PatientAge", "ProcedureCodeSequence"]
SERIES_ATTRS = ["Modality", "SeriesNumber", "SeriesDescription", "BodyPartExamined",
                "SeriesDate", "SeriesTime", "PerformingPhysicianName",
                "RequestAttributesSequence"]


def write_corpus(folder):
    """Write the corpus; returns the files in import order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    counters = {"study": 0, "series": 0, "inst": 0}
    for p in corpus_spec():
        for s in p["studies"]:
            counters["study"] += 1
            study_uid = uid(1, counters["study"])
            for se in s["series"]:
                counters["series"] += 1
                series_uid = uid(2, counters["series"])
                for inst in se["instances"]:
                    counters["inst"] += 1
                    n = counters["inst"]
                    attrs = {}
                    for src, names in ((p, PATIENT_ATTRS), (s, STUDY_ATTRS),
                                       (se, SERIES_ATTRS)):
                        for kw in names:
                            if kw in src:
                                attrs[kw] = src[kw]
                    for kw, v in inst.items():
                        if kw != "over":
                            attrs[kw] = v
                    attrs.update(inst.get("over", {}))
                    ds = Dataset()
                    ds.file_meta = FileMetaDataset()
                    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                    ds.file_meta.MediaStorageSOPClassUID = SOP_CLASS[se["Modality"]]
                    ds.file_meta.MediaStorageSOPInstanceUID = uid(3, n)
                    ds.SpecificCharacterSet = p.get("SpecificCharacterSet", "ISO_IR 100")
                    ds.SOPClassUID = SOP_CLASS[se["Modality"]]
                    ds.SOPInstanceUID = uid(3, n)
                    ds.StudyInstanceUID = study_uid
                    ds.SeriesInstanceUID = series_uid
                    for kw, v in attrs.items():
                        if v is DROP:
                            continue
                        if v is None:
                            v = ""
                        if kw == "ProcedureCodeSequence":
                            v = code_items(v)
                        elif kw == "RequestAttributesSequence":
                            v = request_items(v)
                        setattr(ds, kw, v)
                    path = folder / f"{n:04d}.dcm"
                    ds.is_little_endian, ds.is_implicit_VR = True, False
                    ds.save_as(path, write_like_original=False)
                    paths.append(path)
    # a duplicate of the first instance with other content (kept out: the first one stays),
    # and an instance whose series exists but that names another study (it joins the series)
    ds = pydicom.dcmread(paths[0])
    ds.StudyDescription = "DUPLICATE"
    ds.PatientName = "Dup^Licate"
    path = folder / f"{len(paths) + 1:04d}.dcm"
    ds.save_as(path, write_like_original=False)
    paths.append(path)
    ds = pydicom.dcmread(paths[1])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(3, 9999)
    ds.StudyInstanceUID = uid(1, 9999)
    ds.PatientID = "QX99"
    ds.InstanceNumber = 7
    path = folder / f"{len(paths) + 1:04d}.dcm"
    ds.save_as(path, write_like_original=False)
    paths.append(path)
    return paths


# ------------------------------------------------------------------ the reference model


def _strip(v):
    return v.strip(" ")


def element_values(ds, keyword):
    """An element's values as stripped strings (none when absent or empty)."""
    elem = ds.data_element(keyword) if keyword in ds else None
    if elem is None or elem.VR == "SQ":
        return []
    v = elem.value
    if v is None or v == "" or v == b"":
        return []
    items = list(v) if isinstance(v, (list, tuple, pydicom.multival.MultiValue)) else [v]
    out = []
    for x in items:
        if isinstance(x, (pydicom.valuerep.IS, pydicom.valuerep.DSfloat,
                          pydicom.valuerep.DSdecimal)) and getattr(x, "original_string", None):
            s = x.original_string
        else:
            s = str(x)
        s = _strip(s)
        if s:
            out.append(s)
    return out


def norm_date(s):
    """YYYYMMDD from a DA value (or its legacy YYYY.MM.DD form), None if it is not a date."""
    d = s.replace(".", "").replace(" ", "")
    return d if re.fullmatch(r"\d{8}", d) else None


def time_span(s):
    """(first, last) instants of a TM value as 'HHMMSS.FFFFFF', None if it is not a time.

    A TM value with fewer components (HH, HHMM) or a shorter fraction covers every instant it
    does not exclude (PS3.5 6.2: trailing components are null, the value is less precise)."""
    t = s.replace(":", "").replace(" ", "")
    m = re.fullmatch(r"(\d{2}|\d{4}|\d{6})(?:\.(\d{1,}))?", t)
    if not m or (m.group(2) is not None and len(m.group(1)) != 6):
        return None
    hms, frac = m.group(1), (m.group(2) or "")[:6]
    lo = hms + "000000"[len(hms):] + "." + frac.ljust(6, "0")
    hi = hms + "235959"[len(hms):] + "." + frac.ljust(6, "9")
    return lo, hi


def parse_int(s):
    return int(s) if re.fullmatch(r"[+-]?\d+", s) else None


def fold(s):
    """ASCII case folding (the archive's documented case-insensitivity for names)."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def wildcard_regex(pattern):
    out = []
    for c in pattern:
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
    return re.compile("".join(out), re.DOTALL)


class Entity:
    def __init__(self, level, order, parent):
        self.level = level
        self.order = order  # creation order at its level (the insertion order)
        self.parent = parent
        self.children = []
        self.attrs = {}  # keyword -> list of values (filled in import order)
        self.items = {}  # sequence keyword -> list of {item keyword: [values]}
        self.uid = None
        self.identity = None  # a patient's (Patient ID, Issuer)

    def up(self, level):
        e = self
        while e.level > level:
            e = e.parent
        return e

    def descendants(self, level):
        out = [self]
        while out and out[0].level < level:
            out = [c for e in out for c in e.children]
        return out

    def fill(self, ds, keywords, sequences=()):
        for kw in keywords:
            if not self.attrs.get(kw):
                self.attrs[kw] = element_values(ds, kw)
        for seq in sequences:
            if not self.items.get(seq):  # items as a whole, like an attribute
                self.items[seq] = [
                    {k: element_values(item, k) for k in ITEM_KEYS[seq]}
                    for item in (ds.data_element(seq).value if seq in ds else [])
                ]


LEVEL_KEYS = {lv: [k for k, (l, kind) in KEYS.items() if l == lv and kind not in
                   ("count", "modalities", "sopclasses", "seq")] for lv in range(4)}


def valid_uid(s):
    return bool(s) and len(s) <= 64 and re.fullmatch(r"[0-9.]+", s) is not None


class Model:
    """The archive as the reference sees it: entities built from the files in import order."""

    def __init__(self):
        self.levels = [[] for _ in range(4)]
        self.by_uid = [{} for _ in range(4)]
        self.patients = {}  # (id, issuer) -> entity
        self.statuses = []  # what the store should say of each input

    def _new(self, level, parent):
        e = Entity(level, len(self.levels[level]), parent)
        self.levels[level].append(e)
        if parent:
            parent.children.append(e)
        return e

    def add(self, path, unreadable_for_mira=False):
        """One input, in import order. unreadable_for_mira: the store could not parse it (a
        truncated or malformed file of the pydicom set that pydicom reads leniently)."""
        if unreadable_for_mira:
            self.statuses.append("rejected")
            return
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            sop, cls, study_uid, series_uid = [
                (element_values(ds, k) or [""])[0].rstrip("\0")
                for k in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID",
                          "SeriesInstanceUID")]
        except Exception:  # not DICOM for pydicom: left out of the comparison
            self.statuses.append("unreadable")
            return
        if not cls or not (valid_uid(sop) and valid_uid(study_uid) and valid_uid(series_uid)):
            self.statuses.append("rejected")
            return
        if sop in self.by_uid[IMAGE]:
            self.statuses.append("duplicate")
            return
        self.statuses.append("stored")
        series = self.by_uid[SERIES].get(series_uid)
        study = series.parent if series else self.by_uid[STUDY].get(study_uid)
        patient = study.parent if study else None
        pid = tuple((element_values(ds, k) or [""])[0] for k in
                    ("PatientID", "IssuerOfPatientID"))
        if patient is None:
            key = pid
            if not pid[0]:  # no Patient ID: by name, birth date and sex; by nothing if no name
                who = tuple((element_values(ds, k) or [""])[0] for k in
                            ("PatientName", "PatientBirthDate", "PatientSex"))
                key = pid + who if who[0] else None
            patient = self.patients.get(key) if key else None
            if patient is None:
                patient = self._new(PATIENT, None)
                if key:
                    self.patients[key] = patient
                patient.identity = pid
                patient.attrs["PatientID"] = [pid[0]] if pid[0] else []
                patient.attrs["IssuerOfPatientID"] = [pid[1]] if pid[1] else []
        if study is None:
            study = self._new(STUDY, patient)
            study.uid = study_uid
            self.by_uid[STUDY][study_uid] = study
        if series is None:
            series = self._new(SERIES, study)
            series.uid = series_uid
            self.by_uid[SERIES][series_uid] = series
        inst = self._new(IMAGE, series)
        inst.uid = sop
        self.by_uid[IMAGE][sop] = inst
        if pid == patient.identity:  # an instance naming another patient leaves this one alone
            patient.fill(ds, LEVEL_KEYS[PATIENT])
        study.fill(ds, LEVEL_KEYS[STUDY], ["ProcedureCodeSequence"])
        series.fill(ds, LEVEL_KEYS[SERIES], ["RequestAttributesSequence"])
        inst.fill(ds, LEVEL_KEYS[IMAGE])

    # -------------------------------------------------------------- values

    def values(self, e, keyword):
        """The values of keyword for entity e (an attribute of e's level or one above)."""
        level, kind = KEYS[keyword]
        owner = e.up(level)
        if kind == "modalities":
            return sorted({m for s in owner.children for m in s.attrs.get("Modality", [])[:1]},
                          key=lambda x: x.encode())
        if kind == "sopclasses":
            return sorted({c for i in owner.descendants(IMAGE)
                           for c in i.attrs.get("SOPClassUID", [])}, key=lambda x: x.encode())
        if kind == "count":
            what = {"NumberOfPatientRelatedStudies": STUDY,
                    "NumberOfPatientRelatedInstances": IMAGE,
                    "NumberOfStudyRelatedSeries": SERIES,
                    "NumberOfStudyRelatedInstances": IMAGE,
                    "NumberOfSeriesRelatedInstances": IMAGE}[keyword]
            return [str(len(owner.descendants(what)))]
        if kind == "uid":
            return [owner.uid] if keyword == UNIQUE[level] else owner.attrs.get(keyword, [])
        return owner.attrs.get(keyword, [])

    def identity(self, e):
        return e.identity if e.level == PATIENT else e.uid

    def text(self, e, keyword):
        """A returned value as text: the values joined with '\\' ('' when none)."""
        vals = self.values(e, keyword)
        kind = KEYS[keyword][1]
        if kind == "int":
            n = parse_int("\\".join(vals)) if vals else None
            return "" if n is None else str(n)
        if kind == "date":
            return "\\".join(norm_date(v) or v for v in vals)
        return "\\".join(vals)

    # -------------------------------------------------------------- matching

    def match_value(self, keyword, key, value, ci):
        """One value of the entity's attribute against one value of the key (not a list)."""
        vr = vr_of(keyword)
        kind = kind_of(keyword)
        if kind == "date":
            d = norm_date(value)
            if d is None:
                return False
            if "-" in key:
                a, b = key.split("-", 1)
                lo = norm_date(a) if a.strip() else ""
                hi = norm_date(b) if b.strip() else ""
                if lo is None or hi is None or (not lo and not hi):
                    return False
                return (not lo or d >= lo) and (not hi or d <= hi)
            k = norm_date(key)
            return k is not None and d == k
        if kind == "time":
            span = time_span(value)
            if span is None:
                return False
            t = span[0]
            if "-" in key:
                a, b = key.split("-", 1)
                lo = time_span(a) if a.strip() else ("", "")
                hi = time_span(b) if b.strip() else ("", "")
                if lo is None or hi is None or (not lo[0] and not hi[1]):
                    return False
                return (not lo[0] or t >= lo[0]) and (not hi[1] or t <= hi[1])
            k = time_span(key)
            return k is not None and t == k[0]
        if kind == "int":
            a, b = parse_int(value), parse_int(key)
            return a is not None and b is not None and a == b
        if vr == "PN" and ci:
            value, key = fold(value), fold(key)
        if vr in WILDCARD_VRS and ("*" in key or "?" in key):
            return wildcard_regex(key).fullmatch(value) is not None
        return value == key

    def match_key(self, keyword, key, values, ci):
        """Values of one attribute against one key (the C.2.2.2 matching types)."""
        key = _strip(key)
        if key in ("", "*"):  # universal
            return True
        if key == '""':  # empty value matching
            return not values
        alternatives = [_strip(k) for k in key.split("\\")]
        if kind_of(keyword) == "uid":  # list of UID
            return any(v in alternatives for v in values)
        return any(self.match_value(keyword, k, v, ci) for k in alternatives for v in values)

    def match_items(self, seq, item_keys, items, ci):
        conds = [(k, v) for k, v in item_keys if _strip(v) not in ("", "*")]
        if not conds:
            return True, items
        hits = [it for it in items
                if all(self.match_key(k, v, it.get(k, []), ci) for k, v in conds)]
        return bool(hits), hits

    def find(self, level, query, ci=True, limit=None, offset=0):
        out = []
        for e in self.levels[level]:
            ok = True
            for q in query:
                if len(q) == 3:  # SEQ.KEY=VALUE items
                    continue
                kw, val = q
                kind = KEYS[kw][1]
                if kind == "count":
                    continue
                if kind in ("modalities", "sopclasses"):
                    # a series (an instance) of the study has a matching Modality (SOP Class)
                    k = _strip(val)
                    study = e.up(STUDY)
                    if k in ("", "*"):
                        continue
                    if k == '""':
                        ok = not self.values(e, kw)
                    elif kind == "modalities":
                        ok = any(self.match_key("Modality", k, s.attrs.get("Modality", []), ci)
                                 for s in study.children)
                    else:
                        ok = any(self.match_key("SOPClassUID", k, i.attrs.get("SOPClassUID", []),
                                                ci) for i in study.descendants(IMAGE))
                elif kind == "seq":
                    pass
                else:
                    ok = self.match_key(kw, val, self.values(e, kw), ci)
                if not ok:
                    break
            if ok:
                for seq, item_keys in seq_queries(query).items():
                    owner = e.up(KEYS[seq][0])
                    ok, _ = self.match_items(seq, item_keys, owner.items.get(seq, []), ci)
                    if not ok:
                        break
            if ok:
                out.append(e)
        out.sort(key=lambda e: self.order_key(e))
        out = out[offset:]
        return out if limit is None else out[:limit]

    def order_key(self, e):
        if e.level == PATIENT:
            pid = self.text(e, "PatientID")
            return (pid == "", pid.encode(), e.order)
        if e.level == STUDY:
            d = self.text(e, "StudyDate")
            span = time_span("\\".join(self.values(e, "StudyTime")))
            t = span[0] if span else None
            return (d == "", d.encode(), t is None, t or "", e.order)
        kw = "SeriesNumber" if e.level == SERIES else "InstanceNumber"
        n = self.text(e, kw)
        return (n == "", int(n) if n else 0, e.order)


def parse_query(args):
    """KEY=VALUE / KEY / SEQ.KEY=VALUE arguments as the reference reads them."""
    out = []
    for a in args:
        name, _, value = a.partition("=")
        if "." in name:
            seq, item = name.split(".", 1)
            out.append((seq, item, value))
        else:
            out.append((name, value))
    return out


def seq_queries(query):
    seqs = {}
    for q in query:
        if len(q) == 3:
            seqs.setdefault(q[0], []).append((q[1], q[2]))
        elif KEYS.get(q[0], (0, ""))[1] == "seq":
            seqs.setdefault(q[0], [])
    return seqs


# ------------------------------------------------------------------ mira's side


def tag_hex(keyword):
    return f"{pydicom.datadict.tag_for_keyword(keyword):08X}"


def json_text(obj, keyword):
    """A returned attribute as text (values joined with '\\'); None when absent."""
    e = obj.get(tag_hex(keyword))
    if e is None:
        return None
    out = []
    for v in e.get("Value", []):
        if isinstance(v, dict):
            groups = [v.get("Alphabetic", ""), v.get("Ideographic", ""), v.get("Phonetic", "")]
            while groups and not groups[-1]:
                groups.pop()
            out.append("=".join(groups))
        else:  # leading and trailing spaces of each value are not significant
            out.append(_strip(str(v)))
    return "\\".join(out)


def mira_find(arc, level, args, exact=False, limit=None, offset=None):
    cmd = ["--level", LEVELS[level].lower(), "--json"]
    if exact:
        cmd.append("--exact-names")
    if limit is not None:
        cmd += ["--limit", str(limit)]
    if offset is not None:
        cmd += ["--offset", str(offset)]
    cmd += list(args) + UNIQUE[:level + 1] + (["IssuerOfPatientID"] if level == PATIENT else [])
    proc = arc.run("find", *cmd)
    return json.loads(proc.stdout.decode())


def mira_identity(obj, level):
    if level == PATIENT:
        return (json_text(obj, "PatientID") or "", json_text(obj, "IssuerOfPatientID") or "")
    return json_text(obj, UNIQUE[level])


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The files to import, in order: the generated corpus, then pydicom's test set."""
    folder = tmp_path_factory.mktemp("query_corpus")
    generated = write_corpus(folder / "gen")
    others = [p for p in dicom_test_files()
              if p.name.upper() != "DICOMDIR" and p.suffix.lower() != ".zip"]
    return generated, others


@pytest.fixture(scope="module", params=BACKENDS)
def query_archive(request, corpus, tmp_path_factory):
    """One archive per backend for the module, with the corpus imported in order, and the
    reference model built from the same files."""
    generated, others = corpus
    files = generated + others
    index = new_postgres_database() if request.param == "postgresql" else None
    arc = Archive(tmp_path_factory.mktemp(f"query_{request.param}") / "archive",
                  request.param, index)
    proc = arc.run("import", "--threads", "1", "--json", "--no-progress", *files, check=False)
    statuses = {}
    for line in proc.stdout.decode().splitlines():
        o = json.loads(line)
        if "path" in o:
            statuses[o["path"]] = o["status"]
    model = Model()
    for i, path in enumerate(files):
        got = statuses.get(str(path))
        # what the store can parse is the reader's business: a file of the pydicom set that
        # it refuses is left out (pydicom reads truncated and malformed files leniently)
        model.add(path, unreadable_for_mira=i >= len(generated) and got == "rejected")
        want = model.statuses[-1]
        if want != "unreadable":
            assert got == want, f"{path}: stored as {got}, the reference expects {want}"
    return arc, model


# ------------------------------------------------------------------ the cases

# (id, level, keys, options). Options: exact (--exact-names), limit, offset, check (return
# keys whose values are compared with the reference's), order (compare the order too).
CASES = [
    # --- universal
    ("pat-universal-empty", PATIENT, ["PatientName"], {"check": ["PatientName"]}),
    ("pat-universal-star", PATIENT, ["PatientName=*"], {}),
    ("study-universal-all", STUDY, ["StudyDate", "AccessionNumber", "ModalitiesInStudy"],
     {"check": ["StudyDate", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"]}),
    ("image-universal-star-uid", IMAGE, ["SOPInstanceUID=*"], {}),
    # --- single value
    ("pat-id-exact", PATIENT, ["PatientID=QX01"], {"check": ["PatientName", "OtherPatientIDs",
                                                             "PatientBirthTime"]}),
    ("pat-id-case-sensitive", PATIENT, ["PatientID=qx01"], {}),
    ("pat-id-lower", PATIENT, ["PatientID=qx04"], {"check": ["PatientName", "PatientSex"]}),
    ("pat-id-special-chars", PATIENT, ["PatientID=QX%5_[a]"], {"check": ["PatientName"]}),
    ("pat-id-spaces-insignificant", PATIENT, ["PatientID=  QX02  "], {}),
    ("pat-name-ci", PATIENT, ["PatientName=doe^john"], {"check": ["PatientName"]}),
    ("pat-name-ci-upper", PATIENT, ["PatientName=DOE^JANE"], {}),
    ("pat-name-exact", PATIENT, ["PatientName=Doe^John"], {"exact": True}),
    ("pat-name-exact-miss", PATIENT, ["PatientName=doe^john"], {"exact": True}),
    ("pat-name-utf8-ci", PATIENT, ["PatientName=müller^jürgen"], {"check": ["PatientName"]}),
    ("pat-name-utf8-no-fold", PATIENT, ["PatientName=MÜLLER^JÜRGEN"], {}),
    ("pat-name-components", PATIENT, ["PatientName=doe^john^^dr."], {}),
    ("pat-sex-cs", PATIENT, ["PatientSex=F"], {}),
    ("pat-birthdate", PATIENT, ["PatientBirthDate=19700101"], {}),
    ("study-accession-case", STUDY, ["AccessionNumber=ACC001"], {"check": ["AccessionNumber"]}),
    ("study-accession-percent-literal", STUDY, ["AccessionNumber=ACC%01"], {}),
    ("study-accession-underscore-literal", STUDY, ["AccessionNumber=ACC_02"], {}),
    ("study-accession-bracket-literal", STUDY, ["AccessionNumber=ACC[03]"], {}),
    ("study-accession-filled-later", STUDY, ["AccessionNumber=ACC009"],
     {"check": ["AccessionNumber", "StudyID", "NumberOfStudyRelatedInstances"]}),
    ("study-accession-later-value-ignored", STUDY, ["AccessionNumber=ACC999"], {}),
    ("study-referring-ci", STUDY, ["ReferringPhysicianName=SMITH^DR"], {}),
    ("study-referring-exact", STUDY, ["ReferringPhysicianName=Smith^Dr"], {"exact": True}),
    ("study-description-case", STUDY, ["StudyDescription=ct head"], {}),
    ("study-patientage-ds-as-no-wildcard", STUDY, ["PatientAge=05*"], {}),
    ("series-modality", SERIES, ["Modality=PT"], {"check": ["SeriesDescription"]}),
    ("series-number", SERIES, ["SeriesNumber=2"], {"check": ["SeriesNumber", "Modality"]}),
    ("series-number-not-int", SERIES, ["SeriesNumber=2*"], {}),
    ("series-description-filled-later", SERIES, ["SeriesDescription=Late desc"],
     {"check": ["NumberOfSeriesRelatedInstances"]}),
    ("series-bodypart-case", SERIES, ["BodyPartExamined=HEAD"], {}),
    ("image-number", IMAGE, ["InstanceNumber=2"], {}),
    ("image-rows-us", IMAGE, ["Rows=512"], {"check": ["Rows"]}),
    # --- wild cards
    ("pat-name-star-end", PATIENT, ["PatientName=doe*"], {"check": ["PatientName"]}),
    ("pat-name-star-start", PATIENT, ["PatientName=*john"], {}),
    ("pat-name-star-middle", PATIENT, ["PatientName=d*n"], {}),
    ("pat-name-star-middle-exact", PATIENT, ["PatientName=D*n"], {"exact": True}),
    ("pat-name-question", PATIENT, ["PatientName=doe^j?n?"], {}),
    ("pat-name-question-start", PATIENT, ["PatientName=?oe^*"], {}),
    ("pat-name-question-utf8", PATIENT, ["PatientName=M?ller^J?rgen"], {}),
    ("pat-name-star-both", PATIENT, ["PatientName=*^*na*"], {}),
    ("pat-name-wild-spaces", PATIENT, ["PatientName=  doe* "], {}),
    ("pat-name-percent-is-literal", PATIENT, ["PatientName=100%*"], {}),
    ("pat-name-percent-not-wild", PATIENT, ["PatientName=%"], {}),
    ("pat-name-underscore-not-wild", PATIENT, ["PatientName=*_Name*"], {}),
    ("pat-name-bracket-not-class", PATIENT, ["PatientName=*[1]"], {}),
    ("pat-id-star-case", PATIENT, ["PatientID=qx*"], {}),
    ("pat-id-percent-in-pattern", PATIENT, ["PatientID=QX%*"], {}),
    ("pat-id-underscore-pattern", PATIENT, ["PatientID=QX%5?[a]"], {}),
    ("study-accession-star", STUDY, ["AccessionNumber=ACC*"], {}),
    ("study-accession-question", STUDY, ["AccessionNumber=ACC?0?"], {}),
    ("study-accession-bracket-wild", STUDY, ["AccessionNumber=ACC[*"], {}),
    ("study-description-star-case", STUDY, ["StudyDescription=*head"], {}),
    ("series-description-wild-pct", SERIES, ["SeriesDescription=*%*"], {}),
    ("series-description-utf8", SERIES, ["SeriesDescription=T2 ? Gr??e"], {}),
    ("series-modality-wild", SERIES, ["Modality=?R"], {}),
    # --- list of UID
    ("study-uid-list", STUDY, [f"StudyInstanceUID={uid(1, 1)}\\{uid(1, 3)}\\1.2.3.4"], {}),
    ("series-uid-single", SERIES, [f"SeriesInstanceUID={uid(2, 2)}"], {}),
    ("study-uid-no-wildcard", STUDY, [f"StudyInstanceUID={ROOT_UID}.1.*"], {}),
    ("image-uid-list", IMAGE, [f"SOPInstanceUID={uid(3, 1)}\\{uid(3, 5)}\\{uid(3, 9999)}"], {}),
    ("image-sopclass-list", IMAGE,
     [f"SOPClassUID={SOP_CLASS['PT']}\\{SOP_CLASS['SR']}"], {"check": ["SOPClassUID"]}),
    ("series-of-study-uid", SERIES, [f"StudyInstanceUID={uid(1, 1)}"], {}),
    # --- date ranges
    ("study-date-closed", STUDY, ["StudyDate=20191231-20200115"], {}),
    ("study-date-open-start", STUDY, ["StudyDate=-20000101"], {}),
    ("study-date-open-end", STUDY, ["StudyDate=20210301-"], {}),
    ("study-date-single", STUDY, ["StudyDate=20200115"], {}),
    ("study-date-legacy-values", STUDY, ["StudyDate=19970101-19971231"], {}),
    ("study-date-bad-range", STUDY, ["StudyDate=-"], {}),
    ("study-date-reversed", STUDY, ["StudyDate=20201231-20200101"], {}),
    ("study-date-not-a-date", STUDY, ["StudyDate=2020*"], {}),
    ("pat-birthdate-range", PATIENT, ["PatientBirthDate=19600101-19851231"], {}),
    ("series-date-range", SERIES, ["SeriesDate=20200101-20211231"], {}),
    ("image-contentdate", IMAGE, ["ContentDate=20200116"], {}),
    # --- time ranges
    ("study-time-hours", STUDY, ["StudyTime=10-10"], {"check": ["StudyTime"]}),
    ("study-time-minutes", STUDY, ["StudyTime=1000-1030"], {}),
    ("study-time-fraction-bounds", STUDY, ["StudyTime=103015.4-103015.6"], {}),
    ("study-time-open-start", STUDY, ["StudyTime=-0800"], {}),
    ("study-time-open-end", STUDY, ["StudyTime=2359-"], {}),
    ("study-time-across-midnight", STUDY, ["StudyTime=2300-0100"], {}),
    ("study-time-single", STUDY, ["StudyTime=1030"], {}),
    ("study-time-single-fraction", STUDY, ["StudyTime=103015.5"], {}),
    ("study-time-legacy-colons", STUDY, ["StudyTime=14:00-14:10"], {}),
    ("pat-birthtime-range", PATIENT, ["PatientBirthTime=0800-0900"], {}),
    ("series-time-range", SERIES, ["SeriesTime=0745-074512"], {}),
    ("image-contenttime-fraction", IMAGE, ["ContentTime=074512.1-074512.2"], {}),
    ("image-acquisitiontime-short", IMAGE, ["AcquisitionTime=101500-101500"], {}),
    ("study-date-and-time", STUDY, ["StudyDate=20200115", "StudyTime=1000-1015"], {}),
    # --- empty value matching
    ("study-accession-empty", STUDY, ['AccessionNumber=""'], {}),
    ("study-date-empty", STUDY, ['StudyDate=""'], {}),
    ("study-time-empty", STUDY, ['StudyTime=""'], {}),
    ("pat-name-empty", PATIENT, ['PatientName=""'], {}),
    ("pat-id-empty", PATIENT, ['PatientID=""'], {}),
    ("pat-issuer-empty", PATIENT, ['IssuerOfPatientID=""', "PatientID=QX0*"], {}),
    ("pat-sex-empty", PATIENT, ['PatientSex=""'], {}),
    ("pat-otherids-empty", PATIENT, ['OtherPatientIDs=""'], {}),
    ("series-number-empty", SERIES, ['SeriesNumber=""'], {}),
    ("image-number-empty", IMAGE, ['InstanceNumber=""'], {}),
    ("study-code-value-empty", STUDY, ['ProcedureCodeSequence.CodeValue=""'],
     {"check": ["ProcedureCodeSequence"]}),
    # --- sequence matching
    ("study-code-value", STUDY, ["ProcedureCodeSequence.CodeValue=P2"],
     {"check": ["ProcedureCodeSequence"]}),
    ("study-code-two-keys-same-item", STUDY,
     ["ProcedureCodeSequence.CodeValue=P1", "ProcedureCodeSequence.CodeMeaning=CT head"],
     {"check": ["ProcedureCodeSequence"]}),
    ("study-code-two-keys-other-items", STUDY,
     ["ProcedureCodeSequence.CodeValue=P1", "ProcedureCodeSequence.CodeMeaning=CT neck"], {}),
    ("study-code-wild", STUDY, ["ProcedureCodeSequence.CodeMeaning=*_*"],
     {"check": ["ProcedureCodeSequence"]}),
    ("study-code-percent-literal", STUDY, ["ProcedureCodeSequence.CodeValue=P%1"], {}),
    ("study-code-bracket", STUDY, ["ProcedureCodeSequence.CodeMeaning=[left]"], {}),
    ("study-code-return-one-key", STUDY, ["ProcedureCodeSequence.CodingSchemeDesignator=LOCAL",
                                          "ProcedureCodeSequence.CodeValue"],
     {"check": ["ProcedureCodeSequence"]}),
    ("study-seq-empty-universal", STUDY, ["ProcedureCodeSequence"],
     {"check": ["ProcedureCodeSequence"]}),
    ("study-seq-item-universal", STUDY, ["ProcedureCodeSequence.CodeValue=*"], {}),
    ("series-request-accession", SERIES, ["RequestAttributesSequence.AccessionNumber=ACC001*"],
     {"check": ["RequestAttributesSequence"]}),
    ("series-request-id-underscore", SERIES,
     ["RequestAttributesSequence.RequestedProcedureID=RP_3"], {}),
    ("series-request-list", SERIES,
     ["RequestAttributesSequence.ScheduledProcedureStepID=SPS2\\SPS9"],
     {"check": ["RequestAttributesSequence"]}),
    ("series-request-empty-accession", SERIES, ['RequestAttributesSequence.AccessionNumber=""'],
     {}),
    ("image-request-upper-level", IMAGE, ["RequestAttributesSequence.RequestedProcedureID=RP1"],
     {}),
    # --- multiple values in a key (OR, no extended negotiation) and multi-valued attributes
    ("series-modality-list", SERIES, ["Modality=CT\\MR"], {}),
    ("study-modalities-in-study", STUDY, ["ModalitiesInStudy=PT"],
     {"check": ["ModalitiesInStudy"]}),
    ("study-modalities-list", STUDY, ["ModalitiesInStudy=CT\\SR"],
     {"check": ["ModalitiesInStudy"]}),
    ("study-modalities-wild", STUDY, ["ModalitiesInStudy=S*"], {}),
    ("series-modalities-in-study", SERIES, ["ModalitiesInStudy=PT"], {}),
    ("study-sopclasses-in-study", STUDY, [f"SOPClassesInStudy={SOP_CLASS['SR']}"],
     {"check": ["SOPClassesInStudy"]}),
    ("study-sopclasses-list", STUDY,
     [f"SOPClassesInStudy={SOP_CLASS['PT']}\\{SOP_CLASS['MR']}", "PatientID=QX*"], {}),
    ("study-accession-list", STUDY, ["AccessionNumber=ACC001\\acc001\\ACC[03]"], {}),
    ("pat-name-list", PATIENT, ["PatientName=doe^jane\\twin*"], {}),
    ("study-date-list", STUDY, ["StudyDate=20200115\\-19990101"], {}),
    ("pat-otherids-any-value", PATIENT, ["OtherPatientIDs=B2"], {"check": ["OtherPatientIDs"]}),
    ("pat-otherids-shared", PATIENT, ["OtherPatientIDs=A1"], {}),
    ("pat-otherids-wild", PATIENT, ["OtherPatientIDs=?_3"], {}),
    ("pat-othernames-ci", PATIENT, ["OtherPatientNames=MUELLER*"], {}),
    ("image-imagetype-value", IMAGE, ["ImageType=AXIAL"], {"check": ["ImageType"]}),
    ("image-imagetype-list", IMAGE, ["ImageType=REFORMATTED\\PRIMARY"], {}),
    ("image-imagetype-wild", IMAGE, ["ImageType=*ARY"], {}),
    ("series-performing-multi-ci", SERIES, ["PerformingPhysicianName=WHAT^DR"], {}),
    ("series-performing-multi-exact", SERIES, ["PerformingPhysicianName=WHAT^DR"],
     {"exact": True}),
    # --- combinations (AND) and keys of the upper levels
    ("study-and", STUDY, ["PatientName=doe*", "StudyDate=20200101-", "AccessionNumber=ACC*"],
     {}),
    ("study-and-none", STUDY, ["PatientID=QX02", "ModalitiesInStudy=SR"], {}),
    ("series-upper-keys", SERIES, ["PatientName=doe^jane", "StudyDate=-20200101",
                                   "Modality=MR"], {"check": ["PatientName", "StudyDate"]}),
    ("image-upper-keys", IMAGE, ["PatientID=QX01", "Modality=CT", "ImageType=DERIVED"],
     {"check": ["PatientID", "SeriesNumber", "AccessionNumber"]}),
    ("image-joined-series-other-study", IMAGE, [f"StudyInstanceUID={uid(1, 9999)}"], {}),
    ("image-joined-series", IMAGE, [f"SeriesInstanceUID={uid(2, 1)}"],
     {"check": ["PatientID", "StudyDescription"]}),
    ("pat-issuer", PATIENT, ["PatientID=QX09", "IssuerOfPatientID=HOSP_B"],
     {"check": ["PatientName"]}),
    ("pat-filled-birthdate", PATIENT, ["PatientBirthDate=19600606"], {}),
    ("pat-filled-not-by-other-patient", PATIENT, ["PatientBirthTime=0101"], {}),
    ("pat-filled-otherids", PATIENT, ["OtherPatientIDs=Y8"], {"check": ["OtherPatientIDs"]}),
    ("pat-filled-otherids-later-ignored", PATIENT, ["OtherPatientIDs=X0"], {}),
    ("series-filled-performing", SERIES, ["PerformingPhysicianName=late^doc"],
     {"check": ["PerformingPhysicianName"]}),
    ("study-filled-code", STUDY, ["ProcedureCodeSequence.CodeValue=F*"],
     {"check": ["ProcedureCodeSequence"]}),
    ("series-filled-request", SERIES, ["RequestAttributesSequence.RequestedProcedureID=RP?"],
     {"check": ["RequestAttributesSequence"]}),
    ("pat-counts", PATIENT, ["PatientID=QX*"],
     {"check": ["NumberOfPatientRelatedStudies", "NumberOfPatientRelatedInstances"]}),
    # --- limit and offset (the order is compared)
    ("pat-limit", PATIENT, ["PatientName"], {"limit": 7, "order": True}),
    ("pat-offset", PATIENT, ["PatientName"], {"limit": 6, "offset": 20, "order": True}),
    ("pat-order-all", PATIENT, ["PatientName"], {"order": True}),
    ("study-order-all", STUDY, ["StudyDate", "StudyTime"], {"order": True}),
    ("study-limit-offset", STUDY, ["StudyDate=20000101-"], {"limit": 5, "offset": 3,
                                                         "order": True}),
    ("series-order", SERIES, [f"StudyInstanceUID={uid(1, 1)}\\{uid(1, 3)}"], {"order": True}),
    ("series-offset-past-end", SERIES, ["Modality=PT"], {"offset": 1000, "order": True}),
    ("image-order", IMAGE, ["PatientID=QX0*"], {"order": True, "limit": 12, "offset": 2}),
    # --- return-only keys, with values compared
    ("study-return-keys", STUDY, ["PatientID=QX02", "StudyTime", "ReferringPhysicianName",
                                  "StudyDescription", "PatientBirthDate"],
     {"check": ["StudyTime", "ReferringPhysicianName", "StudyDescription", "PatientBirthDate",
                "NumberOfStudyRelatedSeries"]}),
    ("series-return-keys", SERIES, ["Modality=CT", "PatientID=QX*", "SeriesDescription",
                                    "BodyPartExamined", "SeriesTime"],
     {"check": ["SeriesDescription", "BodyPartExamined", "SeriesTime", "SeriesNumber"]}),
    ("image-return-keys", IMAGE, ["PatientID=QX01", "ContentTime", "AcquisitionTime", "Rows"],
     {"check": ["ContentTime", "AcquisitionTime", "Rows", "InstanceNumber"]}),
]


def returned_keys(case_keys, check):
    """The return keys a case adds for the values it compares (if not asked already)."""
    asked = {k.partition("=")[0].split(".")[0] for k in case_keys}
    return [k for k in check if k not in asked]


def ref_items(model, e, seq, item_keys, ci):
    owner = e.up(KEYS[seq][0])
    _, items = model.match_items(seq, item_keys, owner.items.get(seq, []), ci)
    wanted = [k for k, _ in item_keys] or ITEM_KEYS[seq]
    return [{k: "\\".join(it.get(k, [])) for k in ITEM_KEYS[seq] if k in wanted}
            for it in items]


def json_items(obj, seq):
    e = obj.get(tag_hex(seq)) or {}
    out = []
    for item in e.get("Value", []):
        d = {}
        for k in ITEM_KEYS[seq]:
            t = json_text(item, k)
            if t is not None:
                d[k] = t
        out.append(d)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_find_matches_reference(query_archive, case):
    arc, model = query_archive
    name, level, keys, opt = case
    check = opt.get("check", [])
    args = list(keys) + returned_keys(keys, check)
    ci = not opt.get("exact", False)
    got = mira_find(arc, level, args, exact=not ci, limit=opt.get("limit"),
                    offset=opt.get("offset"))
    query = parse_query(keys)
    want = model.find(level, query, ci=ci, limit=opt.get("limit"),
                      offset=opt.get("offset") or 0)
    got_ids = [mira_identity(o, level) for o in got]
    want_ids = [model.identity(e) for e in want]
    assert sorted(got_ids, key=str) == sorted(want_ids, key=str), (
        f"{name}: mira only {sorted(set(got_ids) - set(want_ids), key=str)}, "
        f"reference only {sorted(set(want_ids) - set(got_ids), key=str)}")
    if opt.get("order"):
        assert got_ids == want_ids
    # patients without a Patient ID share an identity: their values are compared as a multiset
    shared = {i for i, n in collections.Counter(want_ids).items() if n > 1}
    by_id = {model.identity(e): e for e in want if model.identity(e) not in shared}
    if shared:
        plain = [kw for kw in check if KEYS[kw][1] != "seq"]
        assert sorted(tuple(json_text(o, kw) or "" for kw in plain) for o in got
                      if mira_identity(o, level) in shared) == \
            sorted(tuple(model.text(e, kw) for kw in plain) for e in want
                   if model.identity(e) in shared), name
    seqs = seq_queries(query)
    for o in got:
        if mira_identity(o, level) in shared:
            continue
        e = by_id[mira_identity(o, level)]
        for kw in check:
            if KEYS[kw][1] == "seq":
                assert json_items(o, kw) == ref_items(model, e, kw, seqs.get(kw, []), ci), kw
            else:
                assert (json_text(o, kw) or "") == model.text(e, kw), (kw, model.identity(e))


def test_case_table_covers_every_matching_type():
    """The table has >= 60 cases and each matching type at each level it applies to."""
    assert len(CASES) >= 60
    kinds = {}
    for name, level, keys, opt in CASES:
        for k in keys:
            key, has, value = k.partition("=")
            v = value.strip()
            kw = key.split(".")[-1] if "." in key else key
            if not has or v in ("", "*"):
                t = "universal"
            elif "." in key:
                t = "sequence"
            elif v == '""':
                t = "empty"
            elif KEYS[kw][1] == "uid":
                t = "uid-list" if "\\" in v else "single"
            elif "\\" in v:
                t = "multiple"
            elif KEYS[kw][1] in ("date", "time") and "-" in v:
                t = "range"
            elif "*" in v or "?" in v:
                t = "wildcard"
            else:
                t = "single"
            kinds.setdefault(t, set()).add(level)
        if "limit" in opt or "offset" in opt:
            kinds.setdefault("limit/offset", set()).add(level)
    for t in ("universal", "single", "wildcard", "range", "empty", "multiple", "limit/offset"):
        assert kinds.get(t) == {PATIENT, STUDY, SERIES, IMAGE}, t
    assert kinds["uid-list"] == {STUDY, SERIES, IMAGE}  # patients have no UID
    assert kinds["sequence"] == {STUDY, SERIES, IMAGE}  # the indexed sequences


# ------------------------------------------------------------------ errors


def test_unknown_keyword_is_usage_error(archive):
    archive.run("import", "--no-progress", dicom_test_files()[0], check=False)
    proc = archive.run("find", "NoSuchKeyword=1", check=False)
    assert proc.returncode == 2
    assert b"NoSuchKeyword" in proc.stderr
    proc = archive.run("find", "PatientName.CodeValue=1", check=False)
    assert proc.returncode == 2  # not a sequence
    proc = archive.run("find", "--level", "galaxy", "PatientName", check=False)
    assert proc.returncode == 2


def test_missing_archive_fails(archive):
    proc = archive.run("find", "PatientName", check=False)  # the folder was never created
    assert proc.returncode == 1
    assert proc.stderr
    assert not archive.dir.exists()
    proc = run_mira("find", "--archive", archive.dir / "nowhere" / "deeper", "PatientID",
                    check=False)
    assert proc.returncode == 1
