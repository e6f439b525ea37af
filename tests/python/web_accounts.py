"""Accounts for the tests that talk to mira serve over HTTP: a user and a bearer token made with
`mira user` on the archive the server uses (every HTTP route but /health and /auth/token needs
one)."""
from conftest import run_mira

PASSWORD = "correct horse battery staple"


def make_token(archive_args, name="tester", role="clinician", password=PASSWORD, expires=None):
    """Add user `name` (if missing) with `role` and return a new bearer token for it."""
    # (no archive yet: `mira user add` makes it)
    listed = run_mira("user", "list", *archive_args, check=False).stdout.decode().split()
    if name not in listed:
        run_mira("user", "add", name, "--role", role, *archive_args,
                 input=(password + "\n").encode())
    extra = ["--expires", str(expires)] if expires else []
    return run_mira("user", "token", name, *extra, *archive_args).stdout.decode().strip()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}
