"""The per-method step benchmark runs the trainer's real step and prints its table."""
import json

from bench.method_steps import main
from engine.data.builtin import generate


def test_table_and_json_for_two_methods(tmp_path, capsys):
    data = tmp_path / "demo"
    generate("demo", data)
    out = tmp_path / "steps.json"
    assert main(["--methods", "supervised", "fixmatch", "--steps", "1", "--data", str(data), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| supervised |" in table and "| fixmatch |" in table
    rows = json.loads(out.read_text())["rows"]
    assert [row["method"] for row in rows] == ["supervised", "fixmatch"]
    assert all(row["step_ms"] > 0 and row["data_ms"] >= 0 for row in rows)
