"""The README's Python client runs, as written, against a live server and a real worker."""
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, zip_folder

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def readme_client() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A Python client", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_the_readme_client_uploads_sweeps_and_prints_the_table(live_server, team_users, demo_folder, celery_worker,
                                                               tmp_path):
    from webapp.accounts.models import ApiToken

    _, key = ApiToken.issue(team_users["alice"], "readme")
    archive = tmp_path / "shapes.zip"
    archive.write_bytes(zip_folder(demo_folder))
    script = tmp_path / "client.py"
    script.write_text(readme_client())
    env = {**os.environ, "SEGLAB_URL": live_server.url, "SEGLAB_TOKEN": key, "SEGLAB_ZIP": str(archive),
           "SEGLAB_TEAM": str(team_users["team"].pk), "ITERS": "6"}

    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split("\t") == ["method", "1/4", "1/2"]
    assert {line.split("\t")[0] for line in lines[1:]} == {"supervised", "fixmatch", "cps"}
    assert all("(n=1)" in line for line in lines[1:])
