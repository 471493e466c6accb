"""The results record: each page is what its generator writes from its results file, and every
results file is read by a page (issue 21: page and file cannot disagree; no orphan files)."""
import json
import re
from pathlib import Path

from bench.ssl_page import NOTES_MARKER, notes_of, render

ROOT = Path(__file__).resolve().parents[2]
RUN_FIELDS = {"seed", "miou", "seconds", "machine", "curve", "iou"}


def test_the_committed_results_page_is_what_the_sweep_writes_from_its_file():
    page = ROOT / "docs" / "results.md"
    stored = json.loads((ROOT / "bench" / "results" / "ssl.json").read_text())

    expected = render(stored, notes_of(page))

    assert NOTES_MARKER in page.read_text()
    assert page.read_text() == expected, (
        "docs/results.md differs from bench/results/ssl.json: run `PYTHONPATH=. python bench/ssl_sweep.py --page`")


def test_every_reference_run_records_what_the_page_and_a_rerun_need():
    stored = json.loads((ROOT / "bench" / "results" / "ssl.json").read_text())
    runs = [run for by_budget in stored["results"].values() for budget_runs in by_budget.values()
            for run in budget_runs]
    assert len(runs) >= 40 and "supervised" in stored["results"]
    for run in runs:
        assert RUN_FIELDS <= set(run), run
        assert 0 <= run["miou"] <= 1 and run["curve"][-1][0] == stored["settings"]["iters"]


def test_every_results_file_is_read_by_a_page():
    pages = "\n".join(path.read_text() for path in [*(ROOT / "docs").glob("*.md"), ROOT / "README.md"])
    files = [path for path in (ROOT / "bench" / "results").rglob("*.json")]
    assert files
    orphans = [str(path.relative_to(ROOT)) for path in files if str(path.relative_to(ROOT)) not in pages]
    assert not orphans, f"results files no page reads: {orphans}"


def test_docs_speak_of_the_project_not_of_sessions_or_one_machines_folders():
    texts = [*(ROOT / "docs").glob("*.md"), ROOT / "README.md", *(ROOT / "bench").glob("*.py")]
    history = re.compile(r"\bsessions? \d+|(?<![\w.])/(?:tmp|root|home)/", re.IGNORECASE)
    found = [f"{path.relative_to(ROOT)}: {match.group(0)!r}" for path in texts
             for match in history.finditer(path.read_text())]
    assert not found, found
