"""The trace tool trains the sweep's run and keeps every logged diagnostic, stopping where asked."""
import json

import pytest

from bench.method_trace import main
from engine.data.builtin import generate


def test_trace_logs_coverage_and_stops_early(tmp_path, capsys):
    data = tmp_path / "demo"
    generate("demo", data)
    out = tmp_path / "trace.json"
    assert main(["fixmatch", "--data", str(data), "--iters", "12", "--stop-at", "3", "--every", "2",
                 "--json", str(out), "--kernels", "native"]) == 0
    assert "| step | loss | pseudo_label_coverage |" in capsys.readouterr().out
    trace = json.loads(out.read_text())
    assert [row["step"] for row in trace["metrics"]] == [2, 4]  # stopped at the first log at or past step 3
    assert all(0 <= row["pseudo_label_coverage"] <= 1 for row in trace["metrics"])
    [evaluation] = trace["evaluations"]  # eval_every is a third of --iters
    assert evaluation["step"] == 4 and list(evaluation["iou"])[:2] == ["background", "disc"]
    matrix = evaluation["confusion_matrix"]  # rows: true class, columns: predicted
    assert len(matrix) == len(evaluation["iou"]) and sum(map(sum, matrix)) > 0


def test_trace_refuses_other_kernels_than_the_sweeps(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    data = tmp_path / "demo"
    generate("demo", data)
    with pytest.raises(SystemExit) as refused:  # traced on AVX512 kernels when the sweep's are avx2
        main(["fixmatch", "--data", str(data), "--iters", "4"])
    assert refused.value.code == 2
    assert "ATEN_CPU_CAPABILITY=avx2" in capsys.readouterr().err
    assert main(["fixmatch", "--data", str(data), "--iters", "2", "--kernels", "native"]) == 0
