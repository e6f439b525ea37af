"""Accounts and access (issue 6): `mira user` and `mira audit`, what the index keeps (Argon2id
hashes verified by an independent implementation, argon2-cffi; tokens only as SHA-256; no
password anywhere), the audit table refusing UPDATE and DELETE in the database itself, on both
index backends."""
import hashlib
import json
import sqlite3
import subprocess

import pytest

from conftest import POSTGRES, TEST_FILES, run_mira

PASSWORD = "correct horse battery staple"


def add_user(archive, name, role, password=PASSWORD, check=True):
    return archive.run("user", "add", name, "--role", role, check=check,
                       input=(password + "\n").encode())


def token_of(archive, name, *args):
    p = archive.run("user", "token", name, "--json", *args)
    return json.loads(p.stdout)


def index_rows(archive, sql):
    """Rows of a query on the archive's index, read without mira (sqlite3 or psql)."""
    if archive.backend == "sqlite":
        con = sqlite3.connect(archive.dir / "index.db")
        try:
            return [tuple(r) for r in con.execute(sql)]
        finally:
            con.close()
    out = subprocess.run(["psql", archive.index, "-At", "-F", "\t", "-c", sql], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return [tuple(line.split("\t")) for line in out.splitlines() if line]


def index_dump(archive):
    """Every byte of the index, to look for secrets in it."""
    if archive.backend == "sqlite":
        con = sqlite3.connect(archive.dir / "index.db")
        try:
            return "\n".join(con.iterdump())
        finally:
            con.close()
    return subprocess.run(["pg_dump", archive.index], check=True, capture_output=True,
                          text=True, timeout=120).stdout


@pytest.fixture
def accounts(archive):
    archive.run("import", "--no-progress", TEST_FILES / "CT_small.dcm")
    return archive


# ------------------------------------------------------------------ mira user

def test_users_are_added_listed_and_removed(accounts):
    a = accounts
    assert add_user(a, "alice", "admin").returncode == 0
    add_user(a, "bob", "clinician")
    add_user(a, "rita", "researcher")
    listed = [json.loads(line) for line in a.run("user", "list", "--json").stdout.splitlines()]
    assert [(u["name"], u["role"], u["tokens"]) for u in listed] == \
        [("alice", "admin", 0), ("bob", "clinician", 0), ("rita", "researcher", 0)]
    assert "bob" in a.run("user", "list").stdout.decode()
    # a second alice, a bad role, a bad name, a short password
    p = add_user(a, "alice", "admin", check=False)
    assert p.returncode == 1 and b"already" in p.stderr
    assert a.run("user", "add", "carol", "--role", "boss", check=False,
                 input=b"long enough password\n").returncode == 2
    assert a.run("user", "add", "bad name", "--role", "admin", check=False,
                 input=b"long enough password\n").returncode == 1
    p = a.run("user", "add", "carol", "--role", "admin", check=False, input=b"short\n")
    assert p.returncode == 1 and b"8 to 1024 bytes" in p.stderr
    assert a.run("user", "add", "carol", "--role", "admin", check=False, input=b"").returncode == 1
    # no password on the command line: a stray argument is wrong usage
    assert a.run("user", "add", "carol", "--role", "admin", "pw123456789", check=False,
                 input=b"x" * 20 + b"\n").returncode == 2
    assert a.run("user", "remove", "bob").returncode == 0
    p = a.run("user", "remove", "bob", check=False)
    assert p.returncode == 1 and b"no user 'bob'" in p.stderr
    assert [u.split()[0] for u in a.run("user", "list").stdout.decode().splitlines()] == \
        ["alice", "rita"]
    for sub in ("add", "passwd", "list", "remove", "token"):
        p = run_mira("user", sub, "--help")
        assert p.returncode == 0 and b"usage: mira user" in p.stdout
    assert run_mira("audit", "--help").stdout.startswith(b"usage: mira audit")
    assert run_mira("user", check=False).returncode == 2
    assert run_mira("user", "frobnicate", "x", check=False).returncode == 2


def test_password_hashes_are_argon2id_and_verify_elsewhere(accounts):
    """The stored hash is a PHC Argon2id string that argon2-cffi (libargon2, not libsodium)
    verifies against the password; nothing in the index holds the password itself."""
    from argon2 import PasswordHasher
    from argon2.exceptions import VerifyMismatchError
    a = accounts
    add_user(a, "alice", "admin")
    (stored,), = index_rows(a, "SELECT password_hash FROM users WHERE name = 'alice'")
    assert stored.startswith("$argon2id$v=19$m=65536,t=2,p=1$"), stored
    ph = PasswordHasher()
    assert ph.verify(stored, PASSWORD)
    with pytest.raises(VerifyMismatchError):
        ph.verify(stored, PASSWORD + "x")
    # passwd changes the hash (a new salt too) and revokes the user's tokens
    tok = token_of(a, "alice")["token"]
    a.run("user", "passwd", "alice", input=b"another password 2\n")
    (stored2,), = index_rows(a, "SELECT password_hash FROM users WHERE name = 'alice'")
    assert stored2 != stored and ph.verify(stored2, "another password 2")
    (revoked,), = index_rows(a, "SELECT count(*) FROM tokens WHERE revoked_at IS NOT NULL")
    assert int(revoked) == 1
    dump = index_dump(a)
    assert PASSWORD not in dump and "another password 2" not in dump
    assert tok not in dump and hashlib.sha256(tok.encode()).hexdigest() in dump


def test_tokens_are_random_stored_hashed_and_revocable(accounts):
    a = accounts
    add_user(a, "alice", "admin")
    t1, t2 = token_of(a, "alice"), token_of(a, "alice", "--expires", "120")
    for t in (t1, t2):
        assert len(t["token"]) == 43 and set(t["token"]) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert t1["token"] != t2["token"] and t2["expires_in"] == 120
    plain = a.run("user", "token", "alice").stdout.decode().strip()
    assert len(plain) == 43
    hashes = {h for h, in index_rows(a, "SELECT hash FROM tokens")}
    assert hashes == {hashlib.sha256(t.encode()).hexdigest()
                      for t in (t1["token"], t2["token"], plain)}
    assert [json.loads(x)["tokens"] for x in a.run("user", "list", "--json").stdout.splitlines()] \
        == [3]
    assert a.run("user", "token", "--revoke", input=(plain + "\n").encode()).returncode == 0
    p = a.run("user", "token", "--revoke", check=False, input=(plain + "\n").encode())
    assert p.returncode == 1 and b"revoked already" in p.stderr
    assert b"revoked 2 tokens" in a.run("user", "token", "--revoke-all", "alice").stdout
    assert a.run("user", "token", "nobody", check=False).returncode == 1
    assert a.run("user", "token", "alice", "--expires", "0", check=False).returncode == 2


# ------------------------------------------------------------------ the audit table

def test_the_audit_table_refuses_update_and_delete(accounts):
    a = accounts
    a.run("user", "add", "alice", "--role", "admin", input=(PASSWORD + "\n").encode())
    row = ("INSERT INTO audit (at, user_name, role, event, method, path, studies, series, peer,"
           " status, detail) VALUES ('2026-01-01T00:00:00Z', 'x', 'admin', 'access', 'GET',"
           " '/dicomweb/studies', '', '', '127.0.0.1:1', 200, '')")
    if a.backend == "sqlite":
        con = sqlite3.connect(a.dir / "index.db")
        con.execute(row)
        con.commit()
        for sql in ("UPDATE audit SET status = 500", "DELETE FROM audit",
                    "UPDATE audit SET user_name = 'someone else' WHERE pk = 1"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                con.execute(sql)
            con.rollback()
        con.close()
    else:
        subprocess.run(["psql", a.index, "-v", "ON_ERROR_STOP=1", "-q", "-c", row], check=True,
                       capture_output=True, timeout=60)
        for sql in ("UPDATE audit SET status = 500", "DELETE FROM audit", "TRUNCATE audit"):
            p = subprocess.run(["psql", a.index, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                               capture_output=True, text=True, timeout=60)
            assert p.returncode != 0 and "append-only" in p.stderr, (sql, p.stderr)
    events = [json.loads(x) for x in a.run("audit", "--json").stdout.splitlines()]
    assert [(e["user"], e["status"]) for e in events] == [("x", 200)]
    assert a.run("audit", "--user", "nobody").stdout == b""
    assert a.run("audit", "--since", "2027-01-01").stdout == b""
    assert len(a.run("audit", "--since", "2025-12-31", "--limit", "1").stdout.splitlines()) == 1
    assert a.run("audit", "--limit", "0", check=False).returncode == 2


# ------------------------------------------------------------------ over HTTP

import base64  # noqa: E402
import http.client  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

import pydicom  # noqa: E402
import pydicom.uid  # noqa: E402

from conftest import ROOT  # noqa: E402
from dimse_peers import MiraServer  # noqa: E402
from web_accounts import bearer  # noqa: E402

SEARCHES = ["/dicomweb/studies", "/dicomweb/series", "/dicomweb/instances"]

# What the brief and PS3.15 E.1-1 name first; the whole list comes from the table below.
NAMED = {"00100010": "PatientName", "00100020": "PatientID", "00100030": "PatientBirthDate",
         "00101000": "OtherPatientIDs", "00080050": "AccessionNumber",
         "00080080": "InstitutionName", "00080090": "ReferringPhysicianName"}


def identifying_tags():
    """The attributes of PS3.15 Table E.1-1 (as checked in: src/dicom/deid_table.c, made from
    the standard by scripts/gen_deid.py) that the Basic Profile with the Retain UIDs option
    does not keep: every one that is not K, either by the profile or by Retain UIDs."""
    text = (ROOT / "src" / "dicom" / "deid_table.c").read_text()
    out = set()
    for tag, basic, opts in re.findall(
            r'\{0x([0-9A-F]{8})u, 0xFFFFFFFFu, MIRA__DEID_(\w+), "([-KCX]{10})"', text):
        keep = opts[1] == "K" or (opts[1] == "-" and basic == "K")
        if not keep:
            out.add(tag)
    assert set(NAMED) <= out
    return out


def request(srv, method, path, params=None, headers=None, body=None):
    url = path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=60)
    try:
        c.request(method, url, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, r, json.loads(data) if data else None
    finally:
        c.close()


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def identified_file(folder):
    """CT_small with every attribute of NAMED (and more) set, new UIDs."""
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Secret^Person", "ID-4711", "19500101"
    ds.OtherPatientIDs = "OTHER-1"
    ds.AccessionNumber, ds.InstitutionName = "ACC-99", "General Hospital"
    ds.ReferringPhysicianName, ds.StudyID, ds.PatientSex = "Doctor^Who", "S-1", "F"
    ds.StudyDescription, ds.SeriesDescription = "Chest of Secret", "Lungs"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = pydicom.uid.generate_uid(), \
        pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    path = folder / "identified.dcm"
    ds.save_as(path)
    return ds, path


@pytest.fixture
def served(archive, tmp_path):
    ds, path = identified_file(tmp_path)
    archive.run("import", "--no-progress", path)
    for name, role in (("alice", "admin"), ("carl", "clinician"), ("rita", "researcher")):
        add_user(archive, name, role)
    with MiraServer(archive.dir, archive_args=archive.args, http=True) as srv:
        srv.archive, srv.ds = archive, ds
        srv.tokens = {n: token_of(archive, n)["token"] for n in ("alice", "carl", "rita")}
        yield srv


def audit_events(archive, *args):
    return [json.loads(x) for x in archive.run("audit", "--json", *args).stdout.splitlines()]


def test_every_route_refuses_requests_without_a_valid_token(served):
    srv, a = served, served.archive
    expired = token_of(a, "carl", "--expires", "1")["token"]
    revoked = token_of(a, "carl")["token"]
    a.run("user", "token", "--revoke", input=(revoked + "\n").encode())
    time.sleep(2.1)
    st = srv.ds.StudyInstanceUID
    routes = [("GET", p) for p in SEARCHES] + [
        ("GET", f"/dicomweb/studies/{st}/series"), ("GET", f"/dicomweb/studies/{st}/instances"),
        ("GET", f"/dicomweb/studies/{st}/series/{srv.ds.SeriesInstanceUID}/instances"),
        ("HEAD", "/dicomweb/studies"), ("POST", "/dicomweb/studies"), ("GET", "/audit"),
        ("GET", "/nothing/here"), ("DELETE", "/dicomweb/studies")]
    cases = {
        "none": ({}, None),
        "not bearer": ({"Authorization": "Token abc"}, "invalid_request"),
        "malformed": (bearer("not-a-token"), "invalid_token"),
        "unknown": (bearer("A" * 43), "invalid_token"),
        "expired": (bearer(expired), "invalid_token"),
        "revoked": (bearer(revoked), "invalid_token"),
    }
    for method, path in routes:
        for case, (headers, error) in cases.items():
            status, r, data = request(srv, method, path, headers=headers)
            assert status == 401, (method, path, case, status)
            auth = r.getheader("WWW-Authenticate", "")
            assert auth.startswith("Bearer realm=\"mira\""), (case, auth)
            if error:
                assert f'error="{error}"' in auth, (case, auth)
            else:
                assert "error=" not in auth
            if method != "HEAD":
                assert data["status"] == 401 and data["error"] == "Unauthorized", data
    reasons = [e["detail"] for e in audit_events(a) if e["status"] == 401]
    assert reasons.count("the token is expired") == len(routes)
    assert reasons.count("the token is revoked") == len(routes)
    assert reasons.count("the token is unknown") == len(routes)
    assert reasons.count("no token") == len(routes)
    # and a valid token works, on every search route, for every role
    for name in ("alice", "carl", "rita"):
        for method, path in routes[:6]:
            status, r, data = request(srv, method, path, headers=bearer(srv.tokens[name]))
            assert status == 200 and len(data) == 1, (name, path, status, data)
    # a removed user's tokens stop at once
    a.run("user", "remove", "carl")
    status, r, _ = request(srv, "GET", "/dicomweb/studies", headers=bearer(srv.tokens["carl"]))
    assert status == 401 and 'error="invalid_token"' in r.getheader("WWW-Authenticate")


def test_concurrent_requests_each_leave_one_audit_row(served):
    """Requests at once share the audit log's writes (mira writes waiting events together): each
    one still gets exactly its own row, with its user, peer and status, before its answer."""
    import threading
    srv, a = served, served.archive
    names = ("alice", "carl", "rita")
    threads_n, each = 24, 6
    failures, sent = [], {}  # sent: the client's "127.0.0.1:port" -> user
    lock = threading.Lock()

    def client(t):
        name = names[t % 3]
        c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=60)
        try:
            c.connect()  # one kept-alive connection a thread: its port tells its rows
            peer = "127.0.0.1:%d" % c.sock.getsockname()[1]
            with lock:
                sent[peer] = name
            for i in range(each):
                c.request("GET", "/dicomweb/studies", headers=bearer(srv.tokens[name]))
                r = c.getresponse()
                data = json.loads(r.read())
                if r.status != 200 or len(data) != 1:
                    with lock:
                        failures.append((peer, r.status, data))
                rows = [e for e in audit_events(a, "--user", name) if e["peer"] == peer]
                if len(rows) != i + 1:  # the row is there when the answer is
                    with lock:
                        failures.append((peer, i, "rows", len(rows)))
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures[:5]
    assert len(sent) == threads_n
    rows = [e for e in audit_events(a) if e["peer"] in sent]
    assert sorted(e["peer"] for e in rows) == sorted(list(sent) * each)
    for e in rows:
        assert e["user"] == sent[e["peer"]] and e["status"] == 200 and e["method"] == "GET" \
            and e["path"] == "/dicomweb/studies" and e["event"] == "access", e


def test_health_needs_no_token(served):
    status, r, data = request(served, "GET", "/health")
    assert status == 200 and data["status"] == "ok" and data["version"]


def test_sign_in_with_basic_and_json(served):
    srv, a = served, served.archive
    status, r, data = request(srv, "POST", "/auth/token", headers=basic("carl", PASSWORD))
    assert status == 200, data
    assert data["token_type"] == "Bearer" and data["expires_in"] > 0 and data["role"] == \
        "clinician" and r.getheader("Cache-Control") == "no-store"
    status, _, found = request(srv, "GET", "/dicomweb/studies", headers=bearer(data["access_token"]))
    assert status == 200 and len(found) == 1
    body = json.dumps({"username": "rita", "password": PASSWORD})
    status, r, data = request(srv, "POST", "/auth/token", body=body,
                              headers={"Content-Type": "application/json"})
    assert status == 200 and data["role"] == "researcher", data
    # wrong passwords, unknown users, nothing at all, GET
    for headers, body in ((basic("carl", PASSWORD + "!"), None), (basic("nobody", PASSWORD), None),
                          ({"Content-Type": "application/json"},
                           json.dumps({"username": "rita", "password": "wrong password"})),
                          ({}, None), ({"Content-Type": "application/json"}, "{not json")):
        status, r, data = request(srv, "POST", "/auth/token", headers=headers, body=body)
        assert status == 401 and data["status"] == 401, (headers, body, status)
        # Basic for Basic (or nothing), Bearer for a JSON body: no browser password dialog
        want = "Bearer realm=" if body else "Basic realm=\"mira\""
        assert r.getheader("WWW-Authenticate", "").startswith(want), (headers, body)
        assert "access_token" not in data
    status, _, _ = request(srv, "GET", "/auth/token", headers=basic("carl", PASSWORD))
    assert status == 405
    events = [e for e in audit_events(a) if e["event"] == "auth.password"]
    assert [(e["user"], e["status"]) for e in events] == [
        ("carl", 200), ("rita", 200), ("carl", 401), ("nobody", 401), ("rita", 401), ("", 401),
        ("", 401), ("", 405)]
    assert all(e["path"] == "/auth/token" and e["peer"].startswith("127.0.0.1:") for e in events)


def test_failed_sign_ins_are_rate_limited(served):
    srv = served
    for _ in range(5):
        status, _, _ = request(srv, "POST", "/auth/token", headers=basic("alice", "wrong guess"))
        assert status == 401
    # the sixth, even with the right password, waits
    status, r, data = request(srv, "POST", "/auth/token", headers=basic("alice", PASSWORD))
    assert status == 429 and int(r.getheader("Retry-After")) > 0, (status, data)
    # other users from the same peer are not locked out by alice's failures
    status, _, _ = request(srv, "POST", "/auth/token", headers=basic("carl", PASSWORD))
    assert status == 200
    assert [e["status"] for e in audit_events(srv.archive, "--user", "alice")][-1] == 429


def test_researchers_see_only_de_identified_data(served):
    srv = served
    identifying = identifying_tags()
    st, se = srv.ds.StudyInstanceUID, srv.ds.SeriesInstanceUID
    paths = SEARCHES + [f"/dicomweb/studies/{st}/series", f"/dicomweb/studies/{st}/instances",
                        f"/dicomweb/studies/{st}/series/{se}/instances"]
    seen_by_clinician = set()
    for path in paths:
        _, _, full = request(srv, "GET", path, {"includefield": "all"},
                             headers=bearer(srv.tokens["carl"]))
        seen_by_clinician |= set(full[0])
        status, _, data = request(srv, "GET", path, {"includefield": "all"},
                                  headers=bearer(srv.tokens["rita"]))
        assert status == 200 and len(data) == 1, (path, status, data)
        leaked = set(data[0]) & identifying
        assert not leaked, (path, leaked)
        assert "Secret" not in json.dumps(data) and "ID-4711" not in json.dumps(data)
        # what a researcher keeps: the UIDs to navigate by, the modality
        assert "0020000D" in data[0]
    # the data did hold them: the clinician got every named attribute
    assert set(NAMED) <= seen_by_clinician, set(NAMED) - seen_by_clinician
    # asking for one by includefield drops it; searching by one is refused
    _, _, data = request(srv, "GET", "/dicomweb/studies", {"includefield": "PatientName"},
                         headers=bearer(srv.tokens["rita"]))
    assert "00100010" not in data[0]
    for key, value in (("PatientName", "Secret*"), ("PatientID", "ID-4711"),
                       ("00100030", "19500101"), ("AccessionNumber", "ACC-99"),
                       ("ReferringPhysicianName", "*"), ("PatientName", '""')):
        status, _, data = request(srv, "GET", "/dicomweb/studies", {key: value},
                                  headers=bearer(srv.tokens["rita"]))
        assert status == 403 and "researchers may not search by" in data["message"], \
            (key, status, data)
    status, _, data = request(srv, "GET", "/dicomweb/studies", {"StudyInstanceUID": st},
                              headers=bearer(srv.tokens["rita"]))
    assert status == 200 and len(data) == 1
    # a clinician searches by name as before
    status, _, data = request(srv, "GET", "/dicomweb/studies", {"PatientName": "Secret*"},
                              headers=bearer(srv.tokens["carl"]))
    assert status == 200 and data[0]["00100010"]["Value"][0]["Alphabetic"] == "Secret^Person"
    # a researcher may not store (STOW-RS): 403
    status, _, data = request(srv, "POST", "/dicomweb/studies", body=b"x",
                              headers={**bearer(srv.tokens["rita"]),
                                       "Content-Type": "application/dicom"})
    assert status == 403, (status, data)


def test_each_access_is_in_the_audit_log(served):
    srv, a = served, served.archive
    st = srv.ds.StudyInstanceUID
    request(srv, "GET", "/dicomweb/studies", headers=bearer(srv.tokens["carl"]))
    request(srv, "GET", f"/dicomweb/studies/{st}/series", {"PatientName": "x*"},
            headers=bearer(srv.tokens["alice"]))
    request(srv, "GET", "/dicomweb/studies", {"PatientName": "Secret*"},
            headers=bearer(srv.tokens["rita"]))
    request(srv, "GET", "/dicomweb/studies", {"limit": "bad"}, headers=bearer(srv.tokens["carl"]))
    request(srv, "GET", "/dicomweb/series", headers=bearer("B" * 43))
    status, _, _ = request(srv, "GET", "/audit", headers=bearer(srv.tokens["carl"]))
    assert status == 403
    events = [e for e in audit_events(a) if e["event"] != "auth.password"]
    got = [(e["user"], e["role"], e["method"], e["path"], e["status"]) for e in events]
    assert got == [
        ("carl", "clinician", "GET", "/dicomweb/studies", 200),
        ("alice", "admin", "GET", f"/dicomweb/studies/{st}/series", 204),
        ("rita", "researcher", "GET", "/dicomweb/studies", 403),
        ("carl", "clinician", "GET", "/dicomweb/studies", 400),
        ("", "", "GET", "/dicomweb/series", 401),
        ("carl", "clinician", "GET", "/audit", 403),
    ], got
    assert events[0]["studies"] == st and events[0]["event"] == "access"
    assert events[1]["studies"] == "" and events[3]["studies"] == ""
    assert all(e["peer"].startswith("127.0.0.1:") for e in events)
    # the query (which may hold names) is never kept
    assert "Secret" not in json.dumps(events)
    # admins read the same log over HTTP; --user and --since filter it
    status, _, log = request(srv, "GET", "/audit", {"user": "carl"},
                             headers=bearer(srv.tokens["alice"]))
    assert status == 200 and [e["path"] for e in log] == \
        ["/dicomweb/studies", "/dicomweb/studies", "/audit"]
    assert [e["user"] for e in audit_events(a, "--user", "rita")] == ["rita"]
    assert audit_events(a, "--since", "2999-01-01") == []
    # reading the audit log over HTTP is itself recorded
    assert audit_events(a)[-1]["path"] == "/audit" and audit_events(a)[-1]["user"] == "alice"


def test_passwords_and_tokens_never_reach_the_logs(served):
    srv, a = served, served.archive
    request(srv, "POST", "/auth/token", headers=basic("carl", PASSWORD))
    request(srv, "POST", "/auth/token", headers=basic("carl", "a wrong password"))
    request(srv, "POST", "/auth/token", body=json.dumps({"username": "rita",
                                                         "password": PASSWORD}))
    request(srv, "GET", "/dicomweb/studies", headers=bearer(srv.tokens["carl"]))
    log = srv.stop()
    assert "http 127.0.0.1:" in log and "/auth/token" in log
    for secret in (PASSWORD, "a wrong password", srv.tokens["carl"],
                   base64.b64encode(f"carl:{PASSWORD}".encode()).decode()):
        assert secret not in log
        assert secret not in index_dump(a)
        assert secret not in a.run("audit", "--json").stdout.decode()


def test_stores_are_audited_and_refused_to_researchers(tmp_path):
    """STOW-RS (POST /dicomweb/studies) by a clinician is recorded with its status, also when
    it is refused from its headers (413 by Content-Length); a researcher's is 403."""
    from conftest import Archive
    a = Archive(tmp_path / "archive", "sqlite", None)
    add_user(a, "carl", "clinician")
    add_user(a, "rita", "researcher")
    data = (TEST_FILES / "CT_small.dcm").read_bytes()
    boundary = "mira-test-boundary"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data +
            f"\r\n--{boundary}--\r\n".encode())
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    with MiraServer(a.dir, "--http-max-body", len(body) + 10, archive_args=a.args,
                    http=True) as srv:
        carl, rita = token_of(a, "carl")["token"], token_of(a, "rita")["token"]
        status, _, _ = request(srv, "POST", "/dicomweb/studies", body=body,
                               headers={**bearer(carl), "Content-Type": ctype})
        assert status == 200
        status, _, _ = request(srv, "POST", "/dicomweb/studies", body=body + b"\0" * 100,
                               headers={**bearer(carl), "Content-Type": ctype})
        assert status == 413
        status, _, _ = request(srv, "POST", "/dicomweb/studies", body=body,
                               headers={**bearer(rita), "Content-Type": ctype})
        assert status == 403
    events = [(e["user"], e["method"], e["path"], e["status"])
              for e in audit_events(a) if e["event"] == "access"]
    assert events == [("carl", "POST", "/dicomweb/studies", 200),
                      ("carl", "POST", "/dicomweb/studies", 413),
                      ("rita", "POST", "/dicomweb/studies", 403)], events
