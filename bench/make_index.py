#!/usr/bin/env python3
"""Fills an empty mira index with a generated archive: patients, studies, series, instances.

usage: make_index.py (--sqlite INDEX.DB | --copy DIR) [--patients P] [--studies S]
                     [--series R] [--instances I] [--seed N] [--truth FILE]

The query benchmark's index (bench/run_query.sh). The tables must be mira's own, made by mira
(the script imports one file into a new archive and deletes it), and empty. Rows are what
src/archive/store.c would write for such instances: every column of the keys it indexes, the
lower-cased _ci copy of person names, the normalised _n copy of times, the counts and sizes of
every level, Modalities and SOP Classes in Study as sorted '\\'-joined lists, the per-value rows
of multi_values (Image Type, Performing Physician's and Operators' Name), the Procedure Code
and Request Attributes items, blob names and checksums in mira's formats.

The archive is made to look like a hospital's: the default 20,000 patients with 50,000
studies, 200,000 series and 1,000,000 instances (each patient, study and series has at least
one child; the rest are dealt out at random, so some patients have many studies and some
series many images). Studies run from 2015 to 2024 and get their primary keys in the order
they arrive, as in a real archive; modalities are mixed as in a general hospital (CR/DX, CT,
MR, US, MG...; some studies also carry an SR or PR series). Names are drawn, with their real
frequencies, from the most common surnames and given names of the 2010 US census and SSA
lists (the surnames listed cover a fifth of the patients, as in the census; the others get
rare names of a long tail made of syllables); one patient in six has a name written in mixed case ("Smith^John"), as some systems
write them. The same seed gives the same rows.

--sqlite writes straight into the SQLite file (in one transaction). --copy writes one
PostgreSQL COPY text file per table into DIR (DIR/<table>.copy, in the order to load them,
listed in DIR/tables.txt), which the script loads with psql's \\copy.

--truth writes the expected number of study-level matches of each query shape of
bench/query_bench.c (same definitions), computed from the generated records, not by SQL:
  <shape> <count>
one a line, plus the rows of each table ("rows <table> <count>").
"""
import argparse
import fnmatch
import hashlib
import os
import random
import sqlite3
import sys

# The most common US surnames (2010 census) with about their counts per 100,000 people: all
# together about a fifth of the population, as in the census; the other four fifths of the
# patients get a name of the long tail (tail_surname), each of them rare.
SURNAMES = """SMITH 828 JOHNSON 655 WILLIAMS 550 BROWN 487 JONES 483 GARCIA 395 MILLER 394
DAVIS 380 RODRIGUEZ 353 MARTINEZ 344 HERNANDEZ 340 LOPEZ 277 GONZALEZ 274 WILSON 264
ANDERSON 262 THOMAS 252 TAYLOR 251 MOORE 240 JACKSON 236 MARTIN 235 LEE 229 PEREZ 219
THOMPSON 218 WHITE 215 HARRIS 205 SANCHEZ 204 CLARK 188 RAMIREZ 186 LEWIS 178 ROBINSON 177
WALKER 172 YOUNG 166 ALLEN 163 KING 160 WRIGHT 159 SCOTT 153 TORRES 152 NGUYEN 149 HILL 148
FLORES 147 GREEN 146 ADAMS 143 NELSON 141 BAKER 140 HALL 138 RIVERA 135 CAMPBELL 133
MITCHELL 132 CARTER 131 ROBERTS 130 GOMEZ 126 PHILLIPS 124 EVANS 123 TURNER 122 DIAZ 121
PARKER 120 CRUZ 119 EDWARDS 118 COLLINS 117 REYES 116 STEWART 115 MORRIS 114 MORALES 113
MURPHY 112 COOK 111 ROGERS 110 GUTIERREZ 109 ORTIZ 108 MORGAN 107 COOPER 106 PETERSON 105
BAILEY 104 REED 103 KELLY 102 HOWARD 101 RAMOS 100 KIM 99 COX 98 WARD 97 RICHARDSON 96
WATSON 95 BROOKS 94 CHAVEZ 93 WOOD 92 JAMES 91 BENNETT 90 GRAY 89 MENDOZA 88 RUIZ 87
HUGHES 86 PRICE 85 ALVAREZ 84 CASTILLO 83 SANDERS 82 PATEL 81 MYERS 80 LONG 79 ROSS 78
FOSTER 77 JIMENEZ 76 POWELL 75 JENKINS 74 PERRY 73 RUSSELL 72 SULLIVAN 71 BELL 70
COLEMAN 69 BUTLER 68 HENDERSON 67 BARNES 66 GONZALES 65 FISHER 64 VASQUEZ 63 SIMMONS 62
ROMERO 61 JORDAN 60 PATTERSON 59 ALEXANDER 58 HAMILTON 57 GRAHAM 56 REYNOLDS 55 GRIFFIN 54
WALLACE 53 MORENO 52 WEST 51 COLE 50 HAYES 49 BRYANT 48 HERRERA 47 GIBSON 46 ELLIS 45
TRAN 44 MEDINA 43 AGUILAR 42 STEVENS 41 MURRAY 40 FORD 39 CASTRO 38 MARSHALL 37 OWENS 36
HARRISON 35 FERNANDEZ 34 MCDONALD 33 WOODS 32 WASHINGTON 31 KENNEDY 30 WELLS 29 VARGAS 28
HENRY 27 CHEN 26 FREEMAN 25 WEBB 24 TUCKER 23 GUZMAN 22 BURNS 21 CRAWFORD 20 OLSON 19
SIMPSON 18 PORTER 17 HUNTER 16 GORDON 15 MENDEZ 14 SILVA 13 SHAW 12 SNYDER 11 MASON 10
DIXON 10 MUNOZ 10 HUNT 10 HICKS 10 HOLMES 10 PALMER 10 WAGNER 10 BLACK 10 ROBERTSON 10
BOYD 10 ROSE 10 STONE 10 SALAZAR 10 FOX 10 WARREN 10 MILLS 10 MEYER 10 RICE 10 SCHMIDT 10
GARZA 10 DANIELS 10 FERGUSON 10 NICHOLS 10 STEPHENS 10 SOTO 10 WEAVER 10 RYAN 10 GARDNER 10
PAYNE 10 GRANT 10 DUNN 10 KELLEY 10 SPENCER 10 HAWKINS 10 ARNOLD 10 PIERCE 10 VAZQUEZ 10
HANSEN 10 PETERS 10 SANTOS 10 HART 10 BRADLEY 10 KNIGHT 10 ELLIOTT 10 CUNNINGHAM 10
DUNCAN 10 ARMSTRONG 10 HUDSON 10 CARROLL 10 LANE 10 RILEY 10 ANDREWS 10 ALVARADO 10 RAY 10
DELGADO 10 BERRY 10 PERKINS 10 HOFFMAN 10 JOHNSTON 10 MATTHEWS 10 PENA 10 RICHARDS 10
CONTRERAS 10 WILLIS 10 CARPENTER 10 LAWRENCE 10 SANDOVAL 10 SMALLWOOD 4 SMILEY 4 SMITHERS 2"""
GIVEN = """JAMES 331 MARY 262 JOHN 326 PATRICIA 107 ROBERT 314 JENNIFER 103 MICHAEL 297
LINDA 101 WILLIAM 247 ELIZABETH 94 DAVID 237 BARBARA 98 RICHARD 170 SUSAN 79 JOSEPH 163
JESSICA 77 THOMAS 155 SARAH 74 CHARLES 146 KAREN 67 CHRISTOPHER 136 NANCY 64 DANIEL 134
LISA 63 MATTHEW 123 BETTY 61 ANTHONY 107 MARGARET 61 MARK 105 SANDRA 59 DONALD 102 ASHLEY 57
STEVEN 100 KIMBERLY 56 PAUL 93 EMILY 55 ANDREW 93 DONNA 55 JOSHUA 91 MICHELLE 54 KENNETH 87
DOROTHY 54 KEVIN 84 CAROL 53 BRIAN 83 AMANDA 52 GEORGE 81 MELISSA 51 TIMOTHY 74 DEBORAH 50
RONALD 73 STEPHANIE 49 EDWARD 71 REBECCA 48 JASON 70 SHARON 47 JEFFREY 68 LAURA 46 RYAN 66
CYNTHIA 45 JACOB 64 KATHLEEN 44 GARY 62 AMY 43 NICHOLAS 61 ANGELA 42 ERIC 60 SHIRLEY 41
JONATHAN 59 ANNA 40 STEPHEN 58 BRENDA 39 LARRY 57 PAMELA 38 JUSTIN 56 EMMA 37 SCOTT 55
NICOLE 36 BRANDON 54 HELEN 35 BENJAMIN 53 SAMANTHA 34 SAMUEL 52 KATHERINE 33 GREGORY 51
CHRISTINE 32 ALEXANDER 50 DEBRA 31 FRANK 49 RACHEL 30 PATRICK 48 CAROLYN 29 RAYMOND 47
JANET 28 JACK 46 CATHERINE 27 DENNIS 45 MARIA 26 JERRY 44 HEATHER 25 TYLER 43 DIANE 24
AARON 42 RUTH 23 JOSE 41 JULIE 22 ADAM 40 OLIVIA 21 NATHAN 39 JOYCE 20 HENRY 38 VIRGINIA 19
DOUGLAS 37 VICTORIA 18 ZACHARY 36 KELLY 17 PETER 35 LAUREN 16 KYLE 34 CHRISTINA 15"""

# The long tail of surnames: syllables put together (the same seed, the same names).
TAIL_START = """AB AD AL AM AN AR AS BA BE BI BO BU CA CE CHA CO DA DE DI DO DU EL EN FA FE FI FO
GA GE GI GO GU HA HE HI HO HU IN JA JE JO KA KE KI KO KU LA LE LI LO LU MA ME MI MO MU NA NE NI
NO OL OR PA PE PI PO QUI RA RE RI RO RU SA SE SHI SO SU TA TE TI TO TU VA VE VI VO WA WE WI YA
YO ZA ZE ZO""".split()
TAIL_MID = """- BA DE GA KA LI LO MA NA NO RA RI RO SA TA TI VA ZO BER DEL GAR LAN MAR NER RAN SEN
TER VAN""".split()
TAIL_END = """CH CK DA DO EZ GER KI LA LE LEY LI LL MAN MS NE NI NO NS NZ OV RA RD RE RO RS RT SKI
SS ST TA TH TO TT TZ VA WSKI Y ZA ZI BERG STEIN FIELD WOOD TON SON SEN ELLI INI AKI OVA ENKO ESCU
IAN OGLU""".split()

# (modality, weight, series per study (lo, hi), instances per series weight, bytes per image)
MODALITIES = [
    ("CR", 22, (1, 3), 1, 9_500_000),
    ("DX", 14, (1, 3), 1, 12_000_000),
    ("CT", 18, (2, 8), 9, 530_000),
    ("MR", 14, (3, 9), 6, 330_000),
    ("US", 12, (1, 3), 3, 800_000),
    ("MG", 8, (2, 5), 1, 28_000_000),
    ("NM", 3, (1, 4), 2, 2_100_000),
    ("PT", 3, (2, 4), 6, 140_000),
    ("XA", 3, (1, 6), 3, 5_000_000),
    ("RF", 3, (1, 4), 2, 2_000_000),
]
SOP_CLASS = {"CR": "1.2.840.10008.5.1.4.1.1.1", "DX": "1.2.840.10008.5.1.4.1.1.1.1",
             "CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
             "US": "1.2.840.10008.5.1.4.1.1.6.1", "MG": "1.2.840.10008.5.1.4.1.1.1.2",
             "NM": "1.2.840.10008.5.1.4.1.1.20", "PT": "1.2.840.10008.5.1.4.1.1.128",
             "XA": "1.2.840.10008.5.1.4.1.1.12.1", "RF": "1.2.840.10008.5.1.4.1.1.12.2",
             "SR": "1.2.840.10008.5.1.4.1.1.88.22", "PR": "1.2.840.10008.5.1.4.1.1.11.1"}
BODY = {"CR": "CHEST", "DX": "CHEST", "CT": "ABDOMEN", "MR": "BRAIN", "US": "ABDOMEN",
        "MG": "BREAST", "NM": "WHOLEBODY", "PT": "WHOLEBODY", "XA": "HEART", "RF": "ABDOMEN"}
EXPLICIT_LE = "1.2.840.10008.1.2.1"
UID_ROOT = "1.2.826.0.1.3680043.10.1433"
TAG_IMAGE_TYPE, TAG_PERFORMING, TAG_OPERATORS = 0x00080008, 0x00081050, 0x00081070
PATIENT, STUDY, SERIES, INSTANCE = 0, 1, 2, 3

# The study-level query shapes of bench/query_bench.c: (name, PatientName, names matched
# case-insensitively, StudyDate range, ModalitiesInStudy). Keep both in step.
SHAPES = [
    ("prefix", "SMI*", False, None, None),
    ("infix", "*SON*", False, None, None),
    ("prefix_ci", "smi*", True, None, None),
    ("combined", "SMI*", True, ("20200101", "20221231"), "CT"),
]


def weighted(text):
    words = text.split()
    return words[0::2], [int(w) for w in words[1::2]]


def deal(rng, parents, children):
    """Children per parent: each parent gets one, the rest go to parents at random with a
    skew (a few parents get many, as real patients and series do)."""
    n = [1] * parents
    weights = [rng.paretovariate(2.0) for _ in range(parents)]
    for i in rng.choices(range(parents), weights=weights, k=children - parents):
        n[i] += 1
    return n


def tail_surname(rng):
    mid = rng.choice(TAIL_MID)
    return rng.choice(TAIL_START) + ("" if mid == "-" else mid) + rng.choice(TAIL_END)


def fold(s):
    return s.lower() if s is not None else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = ap.add_mutually_exclusive_group(required=True)
    out.add_argument("--sqlite")
    out.add_argument("--copy")
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--studies", type=int, default=50_000)
    ap.add_argument("--series", type=int, default=200_000)
    ap.add_argument("--instances", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--truth")
    args = ap.parse_args()
    if not args.patients <= args.studies <= args.series <= args.instances:
        ap.error("need patients <= studies <= series <= instances")
    rng = random.Random(args.seed)
    now = "2025-01-06T08:00:00.000000Z"

    # ---------------------------------------------------------------- the hierarchy
    surnames, sw = weighted(SURNAMES)
    given, gw = weighted(GIVEN)
    common = sum(sw) / 100_000  # the share of the population the listed surnames have
    patients = []
    for p in range(args.patients):
        last = rng.choices(surnames, sw)[0] if rng.random() < common else tail_surname(rng)
        first = rng.choices(given, gw)[0]
        name = f"{last}^{first}" + (f"^{rng.choice('ABCDEFGHJKLMNPRSTW')}" if rng.random() < 0.3 else "")
        if rng.random() < 1 / 6:
            name = "^".join(part.capitalize() for part in name.split("^"))
        age = rng.randint(0, 95)
        patients.append({"id": f"MRN{rng.randint(0, 99_999_999):08d}-{p}", "name": name,
                         "birth": f"{2024 - age}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                         "sex": rng.choice("MF"), "age": age})
    studies_of = deal(rng, args.patients, args.studies)
    mods, mw = [m[0] for m in MODALITIES], [m[1] for m in MODALITIES]
    studies = []
    for p, k in enumerate(studies_of):
        for _ in range(k):
            m = rng.choices(range(len(MODALITIES)), mw)[0]
            studies.append({"patient": p, "mod": m,
                            "date": f"{rng.randint(2015, 2024)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                            "time": f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"
                                    f".{rng.randint(0, 999999):06d}"})
    # primary keys in order of arrival; a patient's row is made by its first study
    studies.sort(key=lambda s: (s["date"], s["time"]))
    patient_pk = {}
    for s in studies:
        patient_pk.setdefault(s["patient"], len(patient_pk) + 1)
    # series: each study at least one, the rest dealt by the modality's series range
    series_of = deal(rng, args.studies, args.series)
    series = []  # (study index, modality name)
    for si, (s, k) in enumerate(zip(studies, series_of)):
        mod = MODALITIES[s["mod"]][0]
        for j in range(k):
            extra = j == k - 1 and k > 1 and rng.random() < 0.15  # a report or presentation state
            series.append((si, (rng.choice(["SR", "PR"]) if extra else mod)))
    # instances: dealt with the modality's weight (CT and MR series are long)
    series_w = [next((m[3] for m in MODALITIES if m[0] == mod), 1) for _, mod in series]
    n_inst = [1] * len(series)
    for i in rng.choices(range(len(series)), weights=series_w, k=args.instances - len(series)):
        n_inst[i] += 1
    size_of = {m[0]: m[4] for m in MODALITIES}
    size_of.update(SR=42_000, PR=18_000)

    # per-level totals
    st_series = [0] * len(studies)
    st_inst = [0] * len(studies)
    st_size = [0] * len(studies)
    st_mods = [set() for _ in studies]
    st_classes = [set() for _ in studies]
    for r, (si, mod) in enumerate(series):
        st_series[si] += 1
        st_inst[si] += n_inst[r]
        st_size[si] += n_inst[r] * size_of[mod]
        st_mods[si].add(mod)
        st_classes[si].add(SOP_CLASS[mod])
    pa = {}
    for si, s in enumerate(studies):
        t = pa.setdefault(s["patient"], [0, 0, 0, 0])
        t[0] += 1
        t[1] += st_series[si]
        t[2] += st_inst[si]
        t[3] += st_size[si]

    # ---------------------------------------------------------------- the rows
    def patient_rows():
        for p, pk in sorted(patient_pk.items(), key=lambda kv: kv[1]):
            q = patients[p]
            t = pa[p]
            yield (pk, q["id"], "", q["name"], fold(q["name"]), q["birth"], q["sex"],
                   t[0], t[1], t[2], t[3], now, now)

    def study_rows():
        for si, s in enumerate(studies):
            q = patients[s["patient"]]
            mod = MODALITIES[s["mod"]][0]
            ref = f"{rng.choices(surnames, sw)[0]}^{rng.choices(given, gw)[0]}^^DR."
            yield (si + 1, patient_pk[s["patient"]], f"{UID_ROOT}.2.{args.seed}.{si + 1}",
                   s["date"], s["time"], s["time"], f"A{args.seed}{si + 1:09d}",
                   str(rng.randint(1, 99999)), f"{mod} {BODY[mod]}", ref, fold(ref),
                   f"{q['age']:03d}Y", f"{rng.uniform(1.5, 1.95):.2f}", str(rng.randint(45, 120)),
                   "\\".join(sorted(st_mods[si])), "\\".join(sorted(st_classes[si])),
                   st_series[si], st_inst[si], st_size[si], now, now)

    def procedure_rows():
        for si, s in enumerate(studies):
            mod = MODALITIES[s["mod"]][0]
            yield (si + 1, 0, str(70000 + s["mod"] * 100 + rng.randint(0, 99)), "CPT4",
                   f"{mod} {BODY[mod].capitalize()}")

    series_number = [0] * len(studies)

    def series_rows():
        for r, (si, mod) in enumerate(series):
            s = studies[si]
            series_number[si] += 1
            perf = f"{rng.choices(surnames, sw)[0]}^{rng.choices(given, gw)[0]}"
            oper = f"TECH^{rng.choice(['RT', 'MRTA', 'RTT', 'SONO'])}{rng.randint(1, 30)}"
            num = 999 if mod in ("SR", "PR") else series_number[si]
            yield (r + 1, si + 1, f"{UID_ROOT}.3.{args.seed}.{r + 1}", s["date"], s["time"],
                   s["time"], mod, "MIRA" if mod in ("SR", "PR") else "ACME MEDICAL",
                   "General Hospital", f"{mod}01", f"{mod} {BODY.get(mod, '')} {num}".strip(),
                   "Radiology", perf, fold(perf), oper, fold(oper), f"Model {mod}",
                   BODY.get(mod), f"{mod} protocol", num, f"{UID_ROOT}.5.{args.seed}.{si + 1}",
                   s["date"], s["time"], s["time"], n_inst[r], n_inst[r] * size_of[mod], now, now)

    def request_rows():
        for r, (si, _) in enumerate(series):
            yield (r + 1, 0, f"A{args.seed}{si + 1:09d}", "Imaging request", f"SPS{si + 1}",
                   f"RP{si + 1}")

    def series_multi_rows():
        # what sync_multi writes for the series' multi-valued person names
        for r, row in enumerate(series_rows_cache):
            yield (SERIES, r + 1, TAG_PERFORMING, row[0], fold(row[0]))
            yield (SERIES, r + 1, TAG_OPERATORS, row[1], fold(row[1]))

    inst_rows_multi = []

    def instance_rows():
        pk = 0
        for r, (si, mod) in enumerate(series):
            s = studies[si]
            image_type = "DERIVED\\SECONDARY" if mod in ("SR", "PR") else "ORIGINAL\\PRIMARY\\AXIAL"
            rows, cols = (None, None) if mod in ("SR", "PR") else (512, 512)
            for n in range(n_inst[r]):
                pk += 1
                sop = f"{UID_ROOT}.4.{args.seed}.{pk}"
                blob = f"{hashlib.sha256(sop.encode()).hexdigest()}-{rng.getrandbits(64):016x}.dcm"
                yield (pk, r + 1, sop, SOP_CLASS[mod], image_type, s["date"], s["time"], s["time"],
                       s["date"], s["time"], s["time"], EXPLICIT_LE, n + 1, None, rows, cols,
                       None if rows is None else 16, blob, size_of[mod],
                       f"{rng.getrandbits(64):016x}", now)

    def instance_multi_rows():
        pk = 0
        for r, (si, mod) in enumerate(series):
            values = ("DERIVED", "SECONDARY") if mod in ("SR", "PR") else ("ORIGINAL", "PRIMARY", "AXIAL")
            for _ in range(n_inst[r]):
                pk += 1
                for v in values:
                    yield (INSTANCE, pk, TAG_IMAGE_TYPE, v, None)

    # series_rows is consumed once for the table; keep the two names for multi_values
    series_rows_cache = []

    def series_rows_keep():
        for row in series_rows():
            series_rows_cache.append((row[12], row[14]))
            yield row

    tables = [
        ("patients", "pk, patient_id, issuer, patient_name, patient_name_ci, birth_date, sex, "
                     "num_studies, num_series, num_instances, size_bytes, created_at, updated_at",
         patient_rows),
        ("studies", "pk, patient_pk, study_uid, study_date, study_time, study_time_n, accession, "
                    "study_id, study_description, referring_physician, referring_physician_ci, "
                    "patient_age, patient_size, patient_weight, modalities, sop_classes, "
                    "num_series, num_instances, size_bytes, created_at, updated_at", study_rows),
        ("study_procedure_codes", "owner_pk, item, code_value, scheme, meaning", procedure_rows),
        ("series", "pk, study_pk, series_uid, series_date, series_time, series_time_n, modality, "
                   "manufacturer, institution_name, station_name, series_description, "
                   "department_name, performing_physician, performing_physician_ci, "
                   "operators_name, operators_name_ci, model_name, body_part, protocol_name, "
                   "series_number, frame_of_reference_uid, pps_start_date, pps_start_time, "
                   "pps_start_time_n, num_instances, size_bytes, created_at, updated_at",
         series_rows_keep),
        ("series_requests", "owner_pk, item, accession, requested_procedure_description, sps_id, "
                            "requested_procedure_id", request_rows),
        ("multi_values", "owner_level, owner_pk, tag, value, value_ci", series_multi_rows),
        ("instances", "pk, series_pk, sop_uid, sop_class_uid, image_type, acquisition_date, "
                      "acquisition_time, acquisition_time_n, content_date, content_time, "
                      "content_time_n, transfer_syntax, instance_number, number_of_frames, rows, "
                      "columns, bits_allocated, blob, size_bytes, checksum, received_at",
         instance_rows),
        ("multi_values", "owner_level, owner_pk, tag, value, value_ci", instance_multi_rows),
    ]
    counts = {}
    if args.sqlite:
        db = sqlite3.connect(args.sqlite, isolation_level=None)
        db.execute("PRAGMA synchronous=OFF")  # loading only; mira sets its own when it opens
        for t in ("patients", "studies", "series", "instances", "multi_values"):
            if db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]:
                sys.exit(f"make_index: {t} is not empty")
        db.execute("BEGIN")
        for table, cols, rows in tables:
            marks = ", ".join("?" * len(cols.split(",")))
            cur = db.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows())
            counts[table] = counts.get(table, 0) + cur.rowcount
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    else:
        os.makedirs(args.copy, exist_ok=True)

        def text(v):
            if v is None:
                return "\\N"
            return str(v).replace("\\", "\\\\")

        order = []
        for i, (table, cols, rows) in enumerate(tables):
            path = os.path.join(args.copy, f"{i}-{table}.copy")
            n = 0
            with open(path, "w", encoding="utf-8") as f:
                for row in rows():
                    f.write("\t".join(text(v) for v in row) + "\n")
                    n += 1
            counts[table] = counts.get(table, 0) + n
            order.append(f"{os.path.basename(path)}\t{table}\t{cols}")
        with open(os.path.join(args.copy, "tables.txt"), "w") as f:
            f.write("\n".join(order) + "\n")

    if args.truth:
        with open(args.truth, "w") as f:
            for name, pn, ci, dates, modality in SHAPES:
                n = 0
                for si, s in enumerate(studies):
                    value = patients[s["patient"]]["name"]
                    if ci:
                        value, pn_ = value.lower(), pn.lower()
                    else:
                        pn_ = pn
                    if not fnmatch.fnmatchcase(value, pn_):
                        continue
                    if dates and not dates[0] <= s["date"] <= dates[1]:
                        continue
                    if modality and modality not in st_mods[si]:
                        continue
                    n += 1
                f.write(f"{name} {n}\n")
            for table, n in counts.items():
                f.write(f"rows {table} {n}\n")
    print("make_index: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
