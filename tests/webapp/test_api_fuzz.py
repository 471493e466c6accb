"""Property-based fuzz of the whole API from its own OpenAPI schema (schemathesis).

Runs the schemathesis CLI against the live test server with a user's token: every
operation of the schema gets generated bodies and parameters, valid and not; no response
may be a 5xx and every response must match the schema (status codes and bodies).
"""
import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MAX_EXAMPLES = 5
#: Seconds for the whole run: the suite stays within its budget on two cores.
MAX_SECONDS = 50


def test_no_operation_answers_5xx_or_off_schema(live_server, dataset, team_users, without_worker, tmp_path, client):
    """``without_worker``: runs the fuzzer launches must not train; the database is flushed after the test."""
    from webapp.accounts.models import ApiToken

    _, key = ApiToken.issue(team_users["alice"], "fuzz")
    schema = client.get("/api/schema/?format=json", HTTP_AUTHORIZATION=f"Token {key}")
    assert schema.status_code == 200
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema.json()))
    cli = shutil.which("schemathesis", path=str(ROOT / ".venv" / "bin")) or shutil.which("schemathesis")
    command = [cli or sys.executable, *([] if cli else ["-m", "schemathesis"]), "run", str(path),
               "--url", live_server.url, "-H", f"Authorization: Token {key}",
               "--checks",
               "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
               "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_SECONDS),
               "--phases", "examples,coverage,fuzzing", "--seed", "1",
               "--exclude-path-regex", "^/api/v1/datasets/$", "--exclude-method", "DELETE", "--no-shrink",
               "--request-timeout", "30", "--workers", "2"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
