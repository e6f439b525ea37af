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
