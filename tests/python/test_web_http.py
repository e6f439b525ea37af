"""The HTTP layer of mira serve beside its services: HTTPS (libmicrohttpd's GnuTLS, checked by
Python's ssl module against a CA made here), CORS for viewers served from other origins (the
Fetch standard's rules: allowed origins only, preflights answered without a token), OPTIONS
and the WADL capabilities of /dicomweb (PS3.18 8.9), gzip of JSON replies (decompressed by
Python's gzip, equal to the uncompressed reply)."""
import gzip
import http.client
import json
import ssl
import xml.etree.ElementTree as ET

import pytest

from conftest import TEST_FILES, run_mira
from dimse_peers import MiraServer
from test_dimse_tls import make_ca, make_cert
from web_accounts import bearer

FILES = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm"]
ORIGIN = "https://viewer.example.org"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("http")
    run_mira("import", "--archive", d / "archive", "--no-progress",
             *[TEST_FILES / f for f in FILES])
    with MiraServer(d / "archive", "--http-cors", f"{ORIGIN}, http://localhost:3000",
                    http=True) as srv:
        yield srv


def request(srv, method, path, headers=None, token=True):
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=60)
    try:
        h = {**(bearer(srv.token) if token else {}), **(headers or {})}
        c.request(method, path, headers=h)
        r = c.getresponse()
        return r.status, r, r.read()
    finally:
        c.close()


# ------------------------------------------------------------------ CORS

def test_cors_allowed_origins_only(served):
    st, r, body = request(served, "GET", "/dicomweb/studies", {"Origin": ORIGIN})
    assert st == 200
    assert r.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert "Origin" in r.getheader("Vary", "")
    assert "Warning" in r.getheader("Access-Control-Expose-Headers", "")
    st, r, body = request(served, "GET", "/dicomweb/studies", {"Origin": "http://localhost:3000"})
    assert r.getheader("Access-Control-Allow-Origin") == "http://localhost:3000"
    for other in ["https://evil.example", "https://viewer.example.org.evil", "null"]:
        st, r, body = request(served, "GET", "/dicomweb/studies", {"Origin": other})
        assert st == 200 and r.getheader("Access-Control-Allow-Origin") is None, other
    # an error reply carries it too (the page must be able to read why)
    st, r, body = request(served, "GET", "/dicomweb/studies", {"Origin": ORIGIN}, token=False)
    assert st == 401 and r.getheader("Access-Control-Allow-Origin") == ORIGIN


def test_preflight_needs_no_token(served):
    st, r, body = request(served, "OPTIONS", "/dicomweb/studies", {
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"}, token=False)
    assert st == 204 and body == b""
    assert r.getheader("Access-Control-Allow-Origin") == ORIGIN
    methods = {m.strip() for m in r.getheader("Access-Control-Allow-Methods").split(",")}
    assert {"GET", "POST"} <= methods
    allowed = {h.strip().lower() for h in r.getheader("Access-Control-Allow-Headers").split(",")}
    assert {"authorization", "content-type"} <= allowed
    # from an origin not allowed: no CORS headers, so the browser refuses
    st, r, body = request(served, "OPTIONS", "/dicomweb/studies", {
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, token=False)
    assert r.getheader("Access-Control-Allow-Origin") is None


def test_no_cors_without_configuration(tmp_path):
    with MiraServer(tmp_path / "a", http=True) as srv:
        st, r, body = request(srv, "GET", "/dicomweb/studies", {"Origin": ORIGIN})
        assert st in (200, 204) and r.getheader("Access-Control-Allow-Origin") is None


# ------------------------------------------------------------------ OPTIONS and capabilities

def test_capabilities_are_wadl(served):
    st, r, body = request(served, "OPTIONS", "/dicomweb", token=False)
    assert st == 200 and r.getheader("Content-Type") == "application/vnd.sun.wadl+xml"
    root = ET.fromstring(body)
    ns = {"w": "http://wadl.dev.java.net/2009/02"}
    ids = {m.get("id") for m in root.iterfind(".//w:method", ns)}
    assert {"SearchForStudies", "RetrieveInstance", "RetrieveSeriesMetadata", "RetrieveFrames",
            "RetrieveRenderedInstance", "StoreInstances", "RetrieveBulkdata"} <= ids
    st, r, body = request(served, "OPTIONS", "/dicomweb/series", token=False)
    assert st == 204 and r.getheader("Allow") == "GET, HEAD"
    st, r, body = request(served, "OPTIONS", "/dicomweb/studies", token=False)
    assert st == 204 and r.getheader("Allow") == "GET, HEAD, POST"


# ------------------------------------------------------------------ gzip

def test_json_is_gzipped_for_clients_that_take_it(served):
    st, r, plain = request(served, "GET", "/dicomweb/instances?includefield=all")
    instances = plain
    assert st == 200 and r.getheader("Content-Encoding") is None
    assert "Accept-Encoding" in r.getheader("Vary", "")
    st, r, packed = request(served, "GET", "/dicomweb/instances?includefield=all",
                            {"Accept-Encoding": "gzip, deflate"})
    assert st == 200 and r.getheader("Content-Encoding") == "gzip"
    assert len(packed) < len(plain) and gzip.decompress(packed) == plain
    # metadata too
    study = json.loads(plain)[0]["0020000D"]["Value"][0]
    st, r, plain = request(served, "GET", f"/dicomweb/studies/{study}/metadata")
    st, r, packed = request(served, "GET", f"/dicomweb/studies/{study}/metadata",
                            {"Accept-Encoding": "gzip"})
    if len(plain) > 1024:
        assert r.getheader("Content-Encoding") == "gzip"
        assert gzip.decompress(packed) == plain
    # refused with q=0; never for images
    st, r, body = request(served, "GET", "/dicomweb/instances?includefield=all",
                          {"Accept-Encoding": "gzip;q=0"})
    assert r.getheader("Content-Encoding") is None and body == instances
    sop = json.loads(instances)[0]
    uids = [sop[t]["Value"][0] for t in ("0020000D", "0020000E", "00080018")]
    st, r, body = request(served, "GET", "/dicomweb/studies/{}/series/{}/instances/{}/rendered"
                          .format(*uids), {"Accept-Encoding": "gzip"})
    assert r.getheader("Content-Encoding") is None


# ------------------------------------------------------------------ HTTPS

def test_https(tmp_path):
    ca = make_ca(tmp_path, "webca")
    cert, key = make_cert(tmp_path, "localhost", ca, "DNS:localhost,IP:127.0.0.1")
    run_mira("import", "--archive", tmp_path / "archive", "--no-progress",
             TEST_FILES / "CT_small.dcm")
    with MiraServer(tmp_path / "archive", "--http-tls", "--tls-cert", cert, "--tls-key", key,
                    "--tls-port", "0", http=True) as srv:
        ctx = ssl.create_default_context(cafile=str(ca[0]))
        c = http.client.HTTPSConnection("127.0.0.1", srv.http_port, context=ctx, timeout=30)
        c.request("GET", "/dicomweb/studies", headers=bearer(srv.token))
        r = c.getresponse()
        data = json.loads(r.read())
        assert r.status == 200 and len(data) == 1
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        c.close()
        # a client that does not trust the certificate's CA refuses it
        with pytest.raises(ssl.SSLError):
            c = http.client.HTTPSConnection("127.0.0.1", srv.http_port, timeout=30,
                                            context=ssl.create_default_context())
            c.request("GET", "/health")
        # plain HTTP on the HTTPS port gets no HTTP answer
        c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=30)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            c.request("GET", "/health")
            r = c.getresponse()
            if r.status:  # GnuTLS may answer with a TLS alert that is no HTTP status line
                raise http.client.HTTPException(f"answered {r.status}")
        c.close()


def test_https_needs_a_certificate(tmp_path):
    proc = run_mira("serve", "--archive", tmp_path / "a", "--http-tls", "--port", "0",
                    check=False)
    assert proc.returncode == 2 and b"--http-tls needs --tls-cert" in proc.stderr
