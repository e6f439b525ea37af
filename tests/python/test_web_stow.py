"""STOW-RS (PS3.18 10.5) in mira serve: pydicom's test files stored with the dicomweb-client
package, with requests (chunked bodies), with curl and with hand-made bodies, then looked for
by QIDO-RS, `mira find` and `mira stats`, and the archived blobs compared byte for byte with
what was sent; corrupt parts failing alone (202), the study of the path, the 400/405/413/415
refusals, the duplicate policy, keep-alive after a store, and the server's anonymous memory
while a 256 MB instance streams through it."""
import copy
import hashlib
import http.client
import io
import json
import os
import pathlib
import subprocess
import time

import pydicom
import pytest
import requests

from conftest import BACKENDS, TEST_FILES, new_postgres_database, run_mira
from dimse_peers import MiraServer
from test_dimse_memory import MIB, Sampler, big_instance
from web_accounts import bearer  # every route needs a token: MiraServer(http=True) makes one

# Part 10 files with a preamble, of different SOP classes and transfer syntaxes, and distinct
# SOP Instance UIDs
FILES = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm", "rtdose.dcm",
         "SC_rgb_rle.dcm", "ExplVR_BigEnd.dcm", "image_dfl.dcm"]
BOUNDARY = "mira-stow-test-boundary"
CT = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def encoded(name):
    """The bytes dicomweb-client sends for a file: pydicom's dcmwrite of the data set read."""
    ds = pydicom.dcmread(TEST_FILES / name)
    b = io.BytesIO()
    pydicom.dcmwrite(b, ds)
    return ds, b.getvalue()


def body(*parts, close=True):
    """A multipart/related body: each part (bytes, or (content type, bytes))."""
    out = b""
    for p in parts:
        ctype, data = p if isinstance(p, tuple) else ("application/dicom", p)
        out += f"--{BOUNDARY}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def blob(archive, sop_uid):
    """The bytes of the archived blob of an instance (blobs/ab/cd/<sha256>-<gen>.dcm)."""
    h = hashlib.sha256(sop_uid.encode()).hexdigest()
    found = list((pathlib.Path(archive) / "blobs" / h[:2] / h[2:4]).glob(h + "-*.dcm"))
    assert len(found) == 1, found
    return found[0].read_bytes()


def seq(resp, tag):
    return (resp.get(tag) or {}).get("Value", [])


def val(obj, tag):
    v = (obj.get(tag) or {}).get("Value") or [""]
    return v[0]


def stats(srv):
    return json.loads(run_mira("stats", *srv.archive_args, "--json").stdout)


def found_by_find(srv, sop):
    out = run_mira("find", *srv.archive_args, "--level", "instance", f"SOPInstanceUID={sop}",
                   "--json").stdout
    return [val(o, "00080018") for o in json.loads(out)]


def post(srv, data, path="/dicomweb/studies", ctype=CT, headers=None):
    h = {"Content-Type": ctype, **bearer(srv.token), **(headers or {})}
    return requests.post(f"http://127.0.0.1:{srv.http_port}{path}", data=data, headers=h,
                         timeout=120)


def serve(tmp, backend, *args):
    index = ["--index", new_postgres_database()] if backend == "postgresql" else []
    archive_args = ["--archive", str(tmp / "archive"), *index]
    srv = MiraServer(tmp / "archive", *args, archive_args=archive_args, http=True)
    srv.archive_args = archive_args
    srv.archive = tmp / "archive"
    return srv


@pytest.fixture(params=BACKENDS)
def server(request, tmp_path):
    with serve(tmp_path, request.param) as srv:
        yield srv
        assert list((tmp_path / "archive" / "spool").iterdir()) == []


def test_dicomweb_client_stores_byte_identical(server):
    """dicomweb-client's store_instances: each instance is then found by QIDO-RS, mira find and
    mira stats, and its blob is the bytes the client sent (the archive stores a PS3.10 file as
    received: no storage transfer syntax is configured)."""
    from dicomweb_client.api import DICOMwebClient
    client = DICOMwebClient(f"http://127.0.0.1:{server.http_port}/dicomweb",
                            headers=bearer(server.token))
    sent = {}
    for name in FILES:
        ds, data = encoded(name)
        sent[ds.SOPInstanceUID] = (ds, data)
    assert len(sent) == len(FILES)
    resp = client.store_instances([ds for ds, _ in sent.values()])
    refs = resp.ReferencedSOPSequence
    assert sorted(r.ReferencedSOPInstanceUID for r in refs) == sorted(sent)
    assert "FailedSOPSequence" not in resp
    for r in refs:
        ds = sent[r.ReferencedSOPInstanceUID][0]
        assert r.ReferencedSOPClassUID == ds.SOPClassUID
        # dicomweb-client sends "Host: 127.0.0.1" without the port (its workaround of a
        # requests issue): the URL is made from the Host the client named
        assert r.RetrieveURL == (f"http://127.0.0.1/dicomweb/studies/"
                                 f"{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/"
                                 f"instances/{ds.SOPInstanceUID}")
    for sop, (ds, data) in sent.items():
        got = client.search_for_instances(search_filters={"SOPInstanceUID": sop})
        assert [val(o, "00080018") for o in got] == [sop]
        assert val(got[0], "0020000D") == ds.StudyInstanceUID
        assert found_by_find(server, sop) == [sop]
        assert blob(server.archive, sop) == data
    st = stats(server)
    assert st["instances"] == len(FILES)
    assert st["studies"] == len({ds.StudyInstanceUID for ds, _ in sent.values()})


def test_good_and_corrupt_parts_202(server):
    """A truncated part, a part that is no DICOM at all and one without the preamble fail
    alone, with Failure Reason 0xC000; the good ones (before and after them) are stored."""
    ds1, good1 = encoded("CT_small.dcm")
    ds2, good2 = encoded("MR_small.dcm")
    _, other = encoded("rtplan.dcm")
    truncated = other[: len(other) // 2]
    no_preamble = other[128:]
    pydicoms_truncated = (TEST_FILES / "MR_truncated.dcm").read_bytes()
    r = post(server, body(good1, truncated, b"garbage " * 40, no_preamble, pydicoms_truncated,
                          good2))
    assert r.status_code == 202, r.text
    assert r.headers["Content-Type"] == "application/dicom+json"
    resp = r.json()
    assert sorted(val(i, "00081155") for i in seq(resp, "00081199")) == \
        sorted([ds1.SOPInstanceUID, ds2.SOPInstanceUID])
    failed = seq(resp, "00081198")
    assert [val(i, "00081197") for i in failed] == [0xC000] * 4
    assert stats(server)["instances"] == 2
    assert blob(server.archive, ds1.SOPInstanceUID) == good1
    assert blob(server.archive, ds2.SOPInstanceUID) == good2


def test_many_parts_answered_in_their_order(server):
    """Parts are stored several at once: the response still names each part's outcome in the
    order of the parts, the same instance twice in one body is stored once, and every stored
    blob is what was sent."""
    src = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    study = src.StudyInstanceUID
    parts, want = [], []  # want: ("ok", sop) or ("failed", sop or "", reason)
    for i in range(48):
        ds = copy.deepcopy(src)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.InstanceNumber = i + 1
        if i % 7 == 3:  # of another study than the path's: 0xA900, with its SOP Instance UID
            ds.StudyInstanceUID = pydicom.uid.generate_uid()
        b = io.BytesIO()
        pydicom.dcmwrite(b, ds)
        data = b.getvalue()
        if i % 11 == 5:
            parts.append(b"no DICOM here " * 20)
            want.append(("failed", "", 0xC000))
        parts.append(data)
        want.append(("failed", ds.SOPInstanceUID, 0xA900) if i % 7 == 3
                    else ("ok", ds.SOPInstanceUID, data))
    parts.append(parts[0])  # the first instance again, at the end
    want.append(want[0])
    r = post(server, body(*parts), path=f"/dicomweb/studies/{study}")
    assert r.status_code == 202, r.text
    resp = r.json()
    stored = [val(i, "00081155") for i in seq(resp, "00081199")]
    failed = [(val(i, "00081155"), val(i, "00081197")) for i in seq(resp, "00081198")]
    assert stored == [w[1] for w in want if w[0] == "ok"]
    assert failed == [(w[1], w[2]) for w in want if w[0] == "failed"]
    ok = {w[1]: w[2] for w in want if w[0] == "ok"}
    assert stats(server)["instances"] == len(ok)
    for sop, data in ok.items():
        assert blob(server.archive, sop) == data


def test_all_failed_409_and_other_part_types(server):
    r = post(server, body(b"\0" * 200, ("application/dicom+json", b"[{}]"), ("text/plain", b"x")))
    assert r.status_code == 409, r.text
    failed = seq(r.json(), "00081198")
    assert [val(i, "00081197") for i in failed] == [0xC000] * 3
    assert "00081199" not in r.json()
    assert stats(server)["instances"] == 0


def test_study_of_the_path(server):
    """POST /studies/{study}: an instance of another study fails with 0xA900 (A9xx, PS3.18
    Table I.2-2), naming its SOP Class and Instance; those of the study are stored."""
    ds1, good1 = encoded("CT_small.dcm")
    ds2, good2 = encoded("MR_small.dcm")
    assert ds1.StudyInstanceUID != ds2.StudyInstanceUID
    study = ds1.StudyInstanceUID
    r = post(server, body(good1, good2), path=f"/dicomweb/studies/{study}")
    assert r.status_code == 202, r.text
    resp = r.json()
    assert val(resp, "00081190").endswith(f"/dicomweb/studies/{study}")
    assert [val(i, "00081155") for i in seq(resp, "00081199")] == [ds1.SOPInstanceUID]
    failed = seq(resp, "00081198")
    assert [(val(i, "00081150"), val(i, "00081155"), val(i, "00081197")) for i in failed] == \
        [(ds2.SOPClassUID, ds2.SOPInstanceUID, 0xA900)]
    assert found_by_find(server, ds2.SOPInstanceUID) == []
    r = post(server, body(good2), path="/dicomweb/studies/1.2.3")
    assert r.status_code == 409
    assert found_by_find(server, ds2.SOPInstanceUID) == []
    # the study's resource also retrieves it (WADO-RS), and takes no other method
    r = requests.get(f"http://127.0.0.1:{server.http_port}/dicomweb/studies/{study}",
                     headers=bearer(server.token))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("multipart/related")
    r = requests.put(f"http://127.0.0.1:{server.http_port}/dicomweb/studies/{study}", data=b"x",
                     headers=bearer(server.token))
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, POST"
    r = requests.put(f"http://127.0.0.1:{server.http_port}/dicomweb/studies", data=b"x",
                     headers=bearer(server.token))
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, POST"
    r = post(server, body(good2), path="/dicomweb/studies/1.02.3")
    assert r.status_code == 400


def test_malformed_and_wrong_media_type(server):
    _, good = encoded("CT_small.dcm")
    cases = [
        (415, "application/dicom", body(good)),
        (415, f"multipart/related; boundary={BOUNDARY}", body(good)),
        (415, f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}', body(good)),
        (415, f'multipart/mixed; type="application/dicom"; boundary={BOUNDARY}', body(good)),
        (400, 'multipart/related; type="application/dicom"', body(good)),
        (400, 'multipart/related; type="application/dicom"; boundary=' + "b" * 71, body(good)),
        (400, CT, body(good, close=False)[:-100]),  # truncated in its only part
        (400, CT, b"no delimiter at all"),
        (400, CT, f"--{BOUNDARY}--\r\n".encode()),  # no part
    ]
    for status, ctype, data in cases:
        r = post(server, data, ctype=ctype)
        assert r.status_code == status, (ctype, data[:60], r.status_code, r.text)
        assert r.json()["status"] == status
    r = requests.post(f"http://127.0.0.1:{server.http_port}/dicomweb/studies", data=body(good),
                      headers=bearer(server.token))
    assert r.status_code == 415  # no Content-Type (requests sends none for bytes)
    assert stats(server)["instances"] == 0


def test_truncated_after_a_stored_part(server):
    """A body cut off in its second part: 400, the first part stays stored and is named."""
    ds, good = encoded("CT_small.dcm")
    _, other = encoded("MR_small.dcm")
    r = post(server, body(good, other, close=False)[:-500])
    assert r.status_code == 400, r.text
    resp = r.json()
    assert [val(i, "00081155") for i in seq(resp, "00081199")] == [ds.SOPInstanceUID]
    assert [val(i, "00081197") for i in seq(resp, "00081198")] == [0xC000]
    assert found_by_find(server, ds.SOPInstanceUID) == [ds.SOPInstanceUID]


def test_chunked_body_and_keep_alive(server):
    """A body sent with Transfer-Encoding: chunked in small pieces (requests with a
    generator), then a search on the same connection."""
    ds, good = encoded("JPEG2000.dcm")
    data = body(good)

    def pieces():
        for i in range(0, len(data), 777):
            yield data[i:i + 777]
    s = requests.Session()
    r = s.post(f"http://127.0.0.1:{server.http_port}/dicomweb/studies", data=pieces(),
               headers={"Content-Type": CT, **bearer(server.token)}, timeout=60)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 200, r.text
    ref = seq(r.json(), "00081199")[0]
    assert val(ref, "00081190") == (f"http://127.0.0.1:{server.http_port}/dicomweb/studies/"
                                    f"{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/"
                                    f"instances/{ds.SOPInstanceUID}")
    assert val(r.json(), "00081190") == \
        f"http://127.0.0.1:{server.http_port}/dicomweb/studies/{ds.StudyInstanceUID}"
    assert blob(server.archive, ds.SOPInstanceUID) == good
    c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    c.request("POST", "/dicomweb/studies", body=body(encoded("CT_small.dcm")[1]),
              headers={"Content-Type": CT, **bearer(server.token)})
    r1 = c.getresponse()
    r1.read()
    assert r1.status == 200
    c.request("GET", "/dicomweb/instances", headers=bearer(server.token))
    r2 = c.getresponse()
    assert r2.status == 200
    assert len(json.loads(r2.read())) == 2
    c.close()


def test_curl_body(server, tmp_path):
    """A body made by hand and sent with curl --data-binary, as the brief of PS3.18 shows."""
    ds, good = encoded("rtdose.dcm")
    f = tmp_path / "body.bin"
    f.write_bytes(body(good, good))
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--data-binary",
                          f"@{f}", "-H", f"Content-Type: {CT}",
                          "-H", f"Authorization: Bearer {server.token}",
                          f"http://127.0.0.1:{server.http_port}/dicomweb/studies"],
                         capture_output=True, timeout=60, check=True).stdout.decode()
    text, code = out.rsplit("\n", 1)
    # the second copy is a duplicate kept under the default policy: both referenced
    assert code == "200", text
    assert [val(i, "00081155") for i in seq(json.loads(text), "00081199")] == \
        [ds.SOPInstanceUID] * 2
    assert stats(server)["instances"] == 1
    assert blob(server.archive, ds.SOPInstanceUID) == good


def test_duplicates_rejected(tmp_path):
    """Under --duplicates reject another version of an instance held fails (0x0111, PS3.7's
    Duplicate SOP Instance); the same bytes again are no conflict."""
    ds, good = encoded("CT_small.dcm")
    ds.PatientName = "Other^Version"
    b = io.BytesIO()
    pydicom.dcmwrite(b, ds)
    with serve(tmp_path, "sqlite", "--duplicates", "reject") as srv:
        assert post(srv, body(good)).status_code == 200
        assert post(srv, body(good)).status_code == 200
        r = post(srv, body(b.getvalue()))
        assert r.status_code == 409
        failed = seq(r.json(), "00081198")
        assert [(val(i, "00081155"), val(i, "00081197")) for i in failed] == \
            [(ds.SOPInstanceUID, 0x0111)]
        assert blob(srv.archive, ds.SOPInstanceUID) == good


def test_body_limit_413(tmp_path):
    """--http-max-body: a Content-Length over it is refused before the body is read (curl
    waits for 100-continue and sends nothing); a chunked body over it gets 413 once it passes
    the limit, the rest read and dropped."""
    _, small = encoded("JPEG2000.dcm")
    _, big = encoded("CT_small.dcm")
    limit = len(body(small)) + 100
    assert len(body(big, big)) > limit
    with serve(tmp_path, "sqlite", "--http-max-body", limit) as srv:
        url = f"http://127.0.0.1:{srv.http_port}/dicomweb/studies"
        assert post(srv, body(small)).status_code == 200
        f = tmp_path / "big.bin"
        f.write_bytes(body(big, big) + b"\0" * (2 * MIB))
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "--data-binary", f"@{f}", "-H", f"Content-Type: {CT}",
                              "-H", f"Authorization: Bearer {srv.token}", url],
                             capture_output=True, timeout=60, check=True).stdout.decode()
        assert out == "413"
        data = body(big, big)
        r = requests.post(url, data=(data[i:i + 4096] for i in range(0, len(data), 4096)),
                          headers={"Content-Type": CT, **bearer(srv.token)}, timeout=60)
        assert r.status_code == 413, r.text
        assert stats(srv)["instances"] == 1
        log = srv.stop()
        assert "413" in log


def test_large_body_bounded_memory(tmp_path):
    """A 256 MB instance and a small one in one chunked body: the server's RssAnon stays far
    below the body (parts over 8 MiB go to a spool file, the archive stores from a mapping of
    it), and the blob is the instance's bytes."""
    big = tmp_path / "big.dcm"
    sop, _ = big_instance(big, frames=256)
    size = big.stat().st_size
    ds, small = encoded("CT_small.dcm")
    with serve(tmp_path, "sqlite") as srv:
        def gen():
            yield f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            with open(big, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk
            yield f"\r\n--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            yield small
            yield f"\r\n--{BOUNDARY}--\r\n".encode()
        t = time.monotonic()
        with Sampler(srv.proc.pid) as s:
            r = requests.post(f"http://127.0.0.1:{srv.http_port}/dicomweb/studies", data=gen(),
                              headers={"Content-Type": CT, **bearer(srv.token)},
                              timeout=300)
        print(f"{size / MIB:.0f} MiB stored in {time.monotonic() - t:.1f} s, "
              f"peak RssAnon {s.peak_anon / MIB:.1f} MiB, VmHWM {s.hwm / MIB:.1f} MiB")
        assert r.status_code == 200, r.text
        assert sorted(val(i, "00081155") for i in seq(r.json(), "00081199")) == \
            sorted([sop, ds.SOPInstanceUID])
        assert s.peak_anon < 64 * MIB, s.peak_anon
        h = hashlib.sha256(big.read_bytes()).hexdigest()
        assert hashlib.sha256(blob(srv.archive, sop)).hexdigest() == h
        assert list((tmp_path / "archive" / "spool").iterdir()) == []
