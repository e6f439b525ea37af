"""schemathesis (issue 6) against the OpenAPI document mira serve serves: every operation of
/api/ and of DICOMweb, with generated valid and invalid requests (its examples, coverage and
fuzzing phases), on an archive with data and an admin's token. Fails on any 5xx, a status or
media type the document does not give, a body that contradicts its schema, and invalid data
answered 2xx (negative_data_rejection)."""
import json
import os
import pathlib
import subprocess
import sys
import urllib.request

import pytest

from conftest import TEST_FILES, run_mira
from dimse_peers import MiraServer
from web_accounts import make_token

HERE = pathlib.Path(__file__).resolve().parent
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,negative_data_rejection")


def schemathesis_cli():
    """The schemathesis of this interpreter's environment (tests/requirements.txt pins it).
    Missing is a failure, never a skip: CI must run this test."""
    exe = pathlib.Path(sys.executable).parent / "schemathesis"
    if not exe.exists():
        pytest.fail(f"schemathesis is not installed next to {sys.executable} "
                    "(pip install -r tests/requirements.txt)")
    return exe


# In the build/ pass only (slow): under the sanitizer pass, schemathesis itself once failed
# inside CPython ("AST constructor recursion depth mismatch"), a runtime error of the tool, not
# an answer of mira's; what it checks is the HTTP contract, which the sanitizers add nothing to.
@pytest.mark.slow
def test_schemathesis_finds_nothing(tmp_path):
    exe = schemathesis_cli()
    archive = tmp_path / "archive"
    run_mira("import", "--archive", archive, "--no-progress", TEST_FILES / "CT_small.dcm",
             TEST_FILES / "MR_small.dcm", TEST_FILES / "rtdose.dcm")
    with MiraServer(archive, http=True) as srv:
        token = make_token(["--archive", str(archive)], name="schemathesis-admin-7f3",
                           role="admin")
        base = f"http://127.0.0.1:{srv.http_port}"
        with urllib.request.urlopen(base + "/api/openapi.json", timeout=30) as resp:
            assert resp.status == 200
            doc = json.load(resp)
        assert doc["openapi"].startswith("3.0")
        env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks",
                   PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        report = tmp_path / "report"
        proc = subprocess.run(
            [str(exe), "run", base + "/api/openapi.json", "--url", base,
             "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
             "--phases", "examples,coverage,fuzzing", "--max-examples", "40", "--seed", "6",
             # one worker: schemathesis's threads compiling at once trip a CPython 3.11.2 bug
             # ("SystemError: AST constructor recursion depth mismatch", gh-106905)
             "--workers", "1", "--request-timeout", "30", "--no-shrink",
             "--suppress-health-check", "all", "--report", "ndjson", "--report-dir",
             str(report), "--warnings", "off"],
            capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-20000:]
        assert "No issues found" in out or " passed" in out, out[-5000:]
        # the server is still up, and the token was good throughout (nothing revoked it, so
        # the requests were not all answered 401)
        req = urllib.request.Request(base + "/api/stats",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
        assert srv.proc.poll() is None
