"""The web page of mira serve, in a browser: Debian's Chromium driven by Playwright
(tests/browser/, playwright-core from npm) signs in, searches, opens a CT series, scrolls,
changes the window, measures and takes screenshots. The screenshots are checked here against
the slices' pixels windowed with numpy from pydicom's reading of the files (PS3.3
C.11.2.1.2.1), never against mira's own output; measurements against Pixel Spacing and the
modality values of the same pixels."""
import http.client
import io
import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import ROOT, TEST_FILES, run_mira
from dimse_peers import MiraServer
from web_accounts import PASSWORD

BROWSER_DIR = ROOT / "tests" / "browser"
CHROMIUM = "/usr/bin/chromium"
SLICES = 24

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and (BROWSER_DIR / "node_modules" / "playwright-core").is_dir()),
    reason="needs /usr/bin/chromium (scripts/debian-packages.txt) and tests/browser's "
           "node_modules (scripts/npm.sh)")


def make_ct_series(out_dir, n=SLICES, patient_id="PAGE-1", accession="ACC-PAGE-1"):
    """A CT series of n slices from the real pixels of pydicom's CT_small.dcm: slice k is the
    image shifted down by 3k rows (so slices differ), odd slices store their values 24 higher
    with a Rescale Intercept 24 lower (same Hounsfield units: the page must apply the
    intercept), positions 5 mm apart. Written in shuffled order, Instance Numbers 1..n.
    Returns [(path, dataset)] by Instance Number."""
    src = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    raw = src.pixel_array.astype(np.int32)
    study, series = generate_uid(), generate_uid()
    frame_of_reference = generate_uid()
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for k in range(n):
        ds = src.copy()
        ds.file_meta = src.file_meta.copy()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PatientName = "Pagetest^Carla"
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19700101"
        ds.StudyDate = "20240315"
        ds.AccessionNumber = accession
        ds.StudyDescription = "CT chest page test"
        ds.SeriesDescription = "axial 5 mm"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.FrameOfReferenceUID = frame_of_reference
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        z = -75.7 + 5.0 * k
        ds.ImagePositionPatient = [-158.135803, -179.035797, z]
        ds.SliceLocation = z
        shift = 24 if k % 2 else 0
        px = np.roll(raw, 3 * k, axis=0) + shift
        ds.RescaleIntercept = -1024 - shift
        ds.RescaleSlope = 1
        for kw in ("WindowCenter", "WindowWidth"):
            if kw in ds:
                delattr(ds, kw)
        ds.PixelData = px.astype(np.int16).tobytes()
        made.append(ds)
    order = np.random.default_rng(6).permutation(n)
    paths = {}
    for i in order:
        p = out_dir / f"ct{i:03d}.dcm"
        made[i].save_as(p, write_like_original=False)
        paths[i] = p
    return [(paths[i], made[i]) for i in range(n)]


def hounsfield(ds):
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def window(values, center, width):
    """PS3.3 C.11.2.1.2.1 (the LINEAR VOI function) to 0..255."""
    c, w = center - 0.5, max(width, 1.0)
    y = ((values - c) / (w - 1) + 0.5) * 255
    y = np.where(values <= c - (w - 1) / 2, 0, np.where(values > c + (w - 1) / 2, 255, y))
    return y


def run_browser(script, base, out_dir, **params):
    """Run tests/browser/<script> with params as JSON; returns what it prints (JSON)."""
    env = {**os.environ, "PLAYWRIGHT_BROWSERS_PATH": "0", "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
    proc = subprocess.run(
        ["node", str(BROWSER_DIR / script), json.dumps({"base": base, "out": str(out_dir),
                                                         "chromium": CHROMIUM, **params})],
        capture_output=True, text=True, timeout=240, env=env, cwd=BROWSER_DIR)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def crop(png, shot):
    """The image's pixels in a canvas screenshot at 1:1 (grey: the red channel)."""
    img = np.asarray(Image.open(png).convert("RGB")).astype(np.int32)
    x, y = int(shot["imageX"]), int(shot["imageY"])
    assert float(shot["scaleX"]) == 1 and float(shot["scaleY"]) == 1, shot
    part = img[y:y + 128, x:x + 128]
    assert part.shape == (128, 128, 3), (part.shape, shot)
    # grey: the same value in every channel
    assert np.array_equal(part[..., 0], part[..., 1]) and np.array_equal(part[..., 0], part[..., 2])
    return part[..., 0]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    series = make_ct_series(d / "ct")
    # another patient's study beside it, which the search must leave out
    run_mira("import", "--archive", d / "archive", "--no-progress", *[p for p, _ in series],
             TEST_FILES / "MR_small.dcm", TEST_FILES / "CT_small.dcm")
    # an order and a final report for the CT study, as HL7 v2 would bring them
    msh = "MSH|^~\\&|RIS|HOSP|MIRA|RAD|20261201120000||{}|{}|P|2.5"
    pid = "PID|1||PAGE-1^^^HOSP^MR||Pagetest^Carla||19700101|F"
    hl7_file = d / "page.hl7"
    hl7_file.write_text("\r".join([
        msh.format("ORM^O01", "PG-1"), pid, "ORC|NW|PLC-PG^RIS|FIL-PG^RIS",
        "OBR|1|PLC-PG^RIS|FIL-PG^RIS|74177^CT ABDOMEN PELVIS^CPT4" + "|" * 14 + "ACC-PAGE-1"
        + "|" * 6 + "CT",
        msh.format("ORU^R01", "PG-2"), pid,
        "OBR|1|PLC-PG^RIS|FIL-PG^RIS|74177^CT ABDOMEN PELVIS^CPT4" + "|" * 14 + "ACC-PAGE-1"
        + "|" * 7 + "F",
        "OBX|1|TX|GDT^Report^L||No acute abdominal findings.||||||F"]) + "\r")
    run_mira("hl7", "import", "--archive", d / "archive", hl7_file)
    # analysis results kept with the CT study (features of the IBSI phantom stand in)
    ibsi = ROOT / "tests" / "data" / "ibsi"
    run_mira("features", "--archive", d / "archive", "--study", series[0][1].StudyInstanceUID,
             "--families", "stat", ibsi / "phantom.nii.gz", ibsi / "mask.nii.gz")
    with MiraServer(d / "archive", http=True) as srv:
        yield srv, series, d


def test_page_files_are_served_without_a_token(served):
    srv, _, _ = served
    want = {"/": ("text/html", (ROOT / "web" / "index.html").read_bytes()),
            "/app/app.js": ("text/javascript", (ROOT / "web" / "app.js").read_bytes()),
            "/app/app.css": ("text/css", (ROOT / "web" / "app.css").read_bytes()),
            "/app/viewer.js": ("text/javascript", (ROOT / "web" / "viewer.js").read_bytes())}
    for path, (media, body) in want.items():
        c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=30)
        c.request("GET", path + "?v=1" if path == "/" else path)
        r = c.getresponse()
        got = r.read()
        assert r.status == 200 and r.getheader("Content-Type").split(";")[0] == media, path
        assert got == body, path  # the files of web/ as built into the binary
        c.close()
    # names the page does not have; outside "/" and "/app/<name>" a token is needed first
    for method, path, status in (("GET", "/app/nothing.js", 404), ("GET", "/app/../index.html", 404),
                                 ("GET", "/app/%2e%2e/index.html", 404), ("POST", "/", 405),
                                 ("HEAD", "/app/app.css", 200), ("GET", "/index.html", 401),
                                 ("GET", "/app/", 401)):
        c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=30)
        c.request(method, path)
        r = c.getresponse()
        r.read()
        assert r.status == status, (method, path, r.status)
        c.close()


def test_sign_in_search_view_scroll_window_measure(served, tmp_path):
    srv, series, _ = served
    out = tmp_path / "shots"
    out.mkdir()
    res = run_browser("viewer.mjs", f"http://127.0.0.1:{srv.http_port}", out,
                      username="tester", password=PASSWORD, wrong_password=PASSWORD + "x",
                      patient="pagetest", accession="ACC-PAGE-1", scroll=3,
                      roi=[20, 30, 60, 50], line=[10, 100, 110, 100])
    # a wrong password is refused on the page, the right one lets in
    assert res["wrong_password_error"], res
    # the search: only the CT study of this patient
    assert len(res["rows"]) == 1 and "PAGE-1" in res["rows"][0] and "ACC-PAGE-1" in res["rows"][0], res
    assert res["rows_unfiltered"] >= 3  # every study before the search
    # the patient page from the list: the patient's one study
    ds0 = series[0][1]
    assert res["patient"]["title"] == "Pagetest, Carla" and "PAGE-1" in res["patient"]["facts"] \
        and "1970-01-01" in res["patient"]["facts"], res["patient"]
    assert len(res["patient"]["studies"]) == 1 and ds0.AccessionNumber in res["patient"]["studies"][0]
    # its order and report, from the HL7 messages (GET /api/patients/PAGE-1)
    assert "CT ABDOMEN PELVIS" in res["patient"]["orders"] and "ACC-PAGE-1" in res["patient"]["orders"], \
        res["patient"]
    assert "version 1" in res["patient"]["reports"] and "final" in res["patient"]["reports"], res["patient"]
    # the study's analysis results, each value as the record gives it
    feats = json.loads(run_mira("features", "--json", "--families", "stat",
                                ROOT / "tests" / "data" / "ibsi" / "phantom.nii.gz",
                                ROOT / "tests" / "data" / "ibsi" / "mask.nii.gz").stdout)
    shown = res["patient"]["results"]
    assert "ACC-PAGE-1" in shown or ds0.StudyInstanceUID in shown, shown
    for tag, value in feats.items():
        assert f"{tag}\t{repr(value) if value != int(value) else int(value)}" in shown, (tag, shown)
    # no script error on the way (the one console error: the wrong password's 401)
    assert not [c for c in res["console"] if c.startswith("pageerror")], res["console"]
    assert len(res["console"]) <= 1, res["console"]
    by_sop = {ds.SOPInstanceUID: (i, ds) for i, (_, ds) in enumerate(series)}
    shots = res["shots"]
    # the viewer opens in the middle of the series, sorted by Instance Number
    first = shots["opened"]
    assert int(first["slices"]) == SLICES
    assert by_sop[first["sop"]][0] == SLICES // 2 == int(first["slice"])
    # scrolling 3 wheel notches moves 3 slices, one key press one more
    assert by_sop[shots["scrolled"]["sop"]][0] == SLICES // 2 + 3
    assert by_sop[shots["key"]["sop"]][0] == SLICES // 2 + 4
    # the presets and the drag change the window
    assert (float(shots["lung"]["center"]), float(shots["lung"]["width"])) == (-600, 1500)
    assert (float(shots["abdomen"]["center"]), float(shots["abdomen"]["width"])) == (60, 400)
    dragged = shots["dragged"]
    assert (float(dragged["center"]), float(dragged["width"])) != (60, 400)
    assert float(dragged["width"]) > 400 and float(dragged["center"]) > 60  # right and down
    # every screenshot holds the slice it names, windowed as it says (±1 for rounding)
    means = {}
    for name, shot in shots.items():
        _, ds = by_sop[shot["sop"]]
        got = crop(out / f"{name}.png", shot)
        want = window(hounsfield(ds), float(shot["center"]), float(shot["width"]))
        diff = np.abs(got - np.rint(want))
        assert diff.max() <= 1, (name, diff.max(), np.argwhere(diff > 1)[:5])
        means[name] = got.mean()
    # and the pixels do change with the slice and with the window
    assert abs(means["opened"] - means["scrolled"]) > 1
    assert abs(means["scrolled"] - means["lung"]) > 5
    assert abs(means["lung"] - means["abdomen"]) > 5
    assert abs(means["abdomen"] - means["dragged"]) > 1
    # measurements on the slice shown last, in mm by Pixel Spacing, means in HU
    _, ds = by_sop[shots["key"]["sop"]]
    rs, cs = map(float, ds.PixelSpacing)
    x0, y0, x1, y1 = res["roi"]
    hu = hounsfield(ds)
    m = {x["type"]: x for x in res["measurements"]}
    lx0, ly0, lx1, ly1 = res["line"]
    assert m["distance"]["distance"] == pytest.approx(np.hypot((lx1 - lx0) * cs, (ly1 - ly0) * rs), abs=1e-6)
    assert m["rect"]["area"] == pytest.approx((x1 - x0) * (y1 - y0) * rs * cs, rel=1e-9)
    assert m["rect"]["count"] == (x1 - x0) * (y1 - y0)
    assert m["rect"]["mean"] == pytest.approx(hu[y0:y1, x0:x1].mean(), abs=1e-6)
    yy, xx = np.mgrid[0:128, 0:128] + 0.5
    rx, ry, ex, ey = (x1 - x0) / 2, (y1 - y0) / 2, (x0 + x1) / 2, (y0 + y1) / 2
    inside = ((xx - ex) / rx) ** 2 + ((yy - ey) / ry) ** 2 <= 1
    assert m["ellipse"]["count"] == inside.sum()
    assert m["ellipse"]["mean"] == pytest.approx(hu[inside].mean(), abs=1e-6)
    assert m["ellipse"]["area"] == pytest.approx(np.pi * rx * ry * rs * cs, rel=1e-9)
    # the 2x2 layout: four viewports
    assert res["viewports_2x2"] == 4


def test_a_study_of_1000_slices_stays_responsive(tmp_path):
    """A 1,000-slice CT: the viewer opens it, jumps to the last slice and back 100 slices by
    keys without blocking the page (no task of the page over 250 ms: Chromium's long tasks),
    and shows the right slice at the end, windowed as it says."""
    series = make_ct_series(tmp_path / "ct", n=1000, patient_id="PAGE-2", accession="ACC-PAGE-2")
    run_mira("import", "--archive", tmp_path / "archive", "--no-progress", tmp_path / "ct")
    out = tmp_path / "shots"
    out.mkdir()
    with MiraServer(tmp_path / "archive", http=True) as srv:
        res = run_browser("large.mjs", f"http://127.0.0.1:{srv.http_port}", out,
                          username="tester", password=PASSWORD,
                          study=series[0][1].StudyInstanceUID, back=100)
    print(json.dumps({k: v for k, v in res.items() if k.endswith("_ms")}))
    assert int(res["opened"]["slices"]) == 1000
    assert res["open_ms"] < 15000, res
    assert res["end_ms"] < 5000, res
    assert res["back_ms"] < 10000, res
    assert res["longest_task_ms"] < 250, res  # while scrolling
    assert res["longest_open_task_ms"] < 1000, res  # opening: 1,000 instances' metadata
    by_sop = {ds.SOPInstanceUID: (i, ds) for i, (_, ds) in enumerate(series)}
    i, ds = by_sop[res["final"]["sop"]]
    assert i == 999 - 100 == int(res["final"]["slice"])
    got = crop(out / "final.png", res["final"])
    want = window(hounsfield(ds), float(res["final"]["center"]), float(res["final"]["width"]))
    assert np.abs(got - np.rint(want)).max() <= 1
