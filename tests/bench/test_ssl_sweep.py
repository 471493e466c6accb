"""The sweep's bookkeeping: finished runs are skipped, the table keeps hand-written findings."""
import argparse
import json
import threading
import time

import pytest
import torch

import bench.ssl_sweep as sweep
import engine.data.builtin
from bench.ssl_sweep import (
    NOTES_MARKER,
    is_done,
    load_results,
    main,
    markdown_table,
    parse_method,
    record_run,
    save_json,
    write_table,
)
from engine.data.builtin.demo import generate_demo
from tests.engine.conftest import TINY_UNET

SETTINGS = {"data": "fs", "arch": "unet", "arch_options": {}, "iters": 10, "min_scale": 0.5, "max_scale": 2.0}


def test_finished_runs_are_skipped_and_other_settings_refused(tmp_path):
    path = tmp_path / "ssl.json"
    stored = load_results(path, SETTINGS)
    stored["results"] = {"unimatch": {"16": [{"seed": 0, "miou": 0.25, "seconds": 1.0}]}}
    save_json(path, stored)
    again = load_results(path, SETTINGS)
    assert is_done(again, "unimatch", "16", 0) and not is_done(again, "unimatch", "16", 1)
    with pytest.raises(SystemExit, match="other settings"):
        load_results(path, {**SETTINGS, "iters": 20})


def test_table_has_mean_and_spread_and_keeps_findings(tmp_path):
    stored = {"settings": SETTINGS,
              "results": {"supervised": {"16": [{"seed": 0, "miou": 0.2}, {"seed": 1, "miou": 0.3}]}}}
    table = markdown_table(stored, "python bench/ssl_sweep.py")
    assert "| supervised | 25.0 +- 7.1 (2) |" in table
    path = tmp_path / "results.md"
    path.write_text("old table\n" + NOTES_MARKER + "\n## Findings\nwhy\n")
    write_table(path, table)
    text = path.read_text()
    assert text.startswith("# Semi-supervised results") and "old table" not in text
    assert text.endswith(NOTES_MARKER + "\n## Findings\nwhy\n")


def test_method_specs_carry_options():
    assert parse_method("unimatch") == ("unimatch", {})
    assert parse_method("unimatch:threshold_mode=distribution,feature_dropout=0.3") == (
        "unimatch", {"threshold_mode": "distribution", "feature_dropout": "0.3"})
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_method("unimatch:distribution")


def test_bad_method_option_is_refused_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--methods", "unimatch:threshold_mode=median", "--results", str(tmp_path / "r.json"),
              "--data", str(tmp_path)])
    assert "threshold_mode" in capsys.readouterr().err and not (tmp_path / "r.json").exists()


def test_per_class_table_averages_each_class_over_seeds():
    runs = [{"seed": 0, "miou": 0.2, "iou": {"background": 0.8, "tops": 0.1}},
            {"seed": 1, "miou": 0.3, "iou": {"background": 0.9, "tops": None}}]
    table = markdown_table({"settings": SETTINGS, "results": {"unimatch": {"16": runs}}}, "cmd")
    assert "| method | labels | background | tops |" in table
    assert "| unimatch | 16 | 85.0 | 10.0 |" in table


def test_a_single_seed_shows_no_spread():
    stored = {"settings": SETTINGS, "results": {"cutmix": {"16": [{"seed": 0, "miou": 0.234}]}}}
    assert "| cutmix | 23.4 (1) |" in markdown_table(stored, "cmd")


def test_two_sweeps_sharing_a_results_file_keep_each_others_runs(tmp_path):
    path = tmp_path / "ssl.json"
    first = load_results(path, SETTINGS)  # both sweeps read the file before either finished a run
    second = load_results(path, SETTINGS)
    assert first == second
    record_run(path, SETTINGS, "sweep A", {"method": "supervised", "budget": "16", "seed": 0, "miou": 0.2})
    record_run(path, SETTINGS, "sweep B", {"method": "unimatch", "budget": "16", "seed": 0, "miou": 0.3})
    stored = load_results(path, SETTINGS)
    assert is_done(stored, "supervised", "16", 0) and is_done(stored, "unimatch", "16", 0)
    assert stored["commands"] == ["sweep A", "sweep B"]


def test_merge_adds_another_sweeps_runs_and_commands(tmp_path):
    main_file, other = tmp_path / "ssl.json", tmp_path / "other.json"
    record_run(main_file, SETTINGS, "sweep A", {"method": "supervised", "budget": "16", "seed": 0, "miou": 0.2})
    record_run(other, SETTINGS, "sweep B", {"method": "cutmix", "budget": "1/16", "seed": 0, "miou": 0.4})
    table = tmp_path / "results.md"
    assert main(["--merge", str(other), "--results", str(main_file), "--table", str(table)]) == 0
    stored = load_results(main_file, SETTINGS)
    assert is_done(stored, "supervised", "16", 0) and is_done(stored, "cutmix", "1/16", 0)
    assert stored["commands"] == ["sweep A", "sweep B"] and "| cutmix | - | 40.0 (1) |" in table.read_text()
    longer = tmp_path / "longer.json"
    save_json(longer, {"settings": {**SETTINGS, "iters": 99}, "results": {"x": {"16": [{"seed": 0, "miou": 0.1}]}}})
    with pytest.raises(SystemExit, match="other settings"):
        main(["--merge", str(longer), "--results", str(main_file), "--table", str(table)])
    assert not is_done(load_results(main_file, SETTINGS), "x", "16", 0)


def test_a_sweep_trains_records_its_device_and_machine_and_refuses_to_mix_devices(tmp_path):
    data = generate_demo(tmp_path / "demo", num_images=14, num_unlabeled=4, size=32, seed=0)
    results = tmp_path / "r.json"
    common = ["--data", str(data), "--results", str(results), "--table", str(tmp_path / "t.md"), "--iters", "2",
              "--budgets", "8", "--seeds", "0", "--methods", "supervised", "--arch-options", json.dumps(TINY_UNET)]

    assert main(common + ["--device", "cpu", "--workers", "1"]) == 0

    stored = json.loads(results.read_text())
    assert stored["settings"]["device"] == "cpu" and is_done(stored, "supervised", "8", 0)
    assert stored["settings"]["strong_blur"] == "crop"
    run = stored["results"]["supervised"]["8"][0]
    assert f"torch {torch.__version__}" in run["machine"]
    # The spawned worker ran the pinned AVX2 kernels, whatever this CPU's own are.
    assert stored["settings"]["cpu_kernels"] == "avx2" and "(AVX2)" in run["machine"]
    assert "2 iterations on cpu (avx2 kernels)" in (tmp_path / "t.md").read_text()
    with pytest.raises(SystemExit, match="cpu_kernels 'avx2' there, None here"):
        main(common + ["--kernels", "native"])
    with pytest.raises(SystemExit, match="other settings"):
        main(common + ["--device", "cuda"])


def test_a_sweep_on_native_kernels_records_them_as_the_files_before_session_8(tmp_path):
    data = generate_demo(tmp_path / "demo", num_images=14, num_unlabeled=4, size=32, seed=0)
    results = tmp_path / "r.json"
    assert main(["--data", str(data), "--results", str(results), "--table", str(tmp_path / "t.md"), "--iters", "2",
                 "--budgets", "8", "--seeds", "0", "--methods", "supervised", "--arch-options", json.dumps(TINY_UNET),
                 "--kernels", "native"]) == 0
    stored = json.loads(results.read_text())
    assert "cpu_kernels" not in stored["settings"]
    assert torch.backends.cpu.get_cpu_capability() in stored["results"]["supervised"]["8"][0]["machine"]


def test_a_run_another_sweep_finished_after_planning_is_skipped(tmp_path, monkeypatch, capsys):
    data = generate_demo(tmp_path / "demo", num_images=14, num_unlabeled=4, size=32, seed=0)
    results = tmp_path / "r.json"
    really_finished = sweep.finished_elsewhere

    def another_sweep_records_seed_1(path, settings, method, budget, seed):
        if seed == 1:  # another sweep on the same file finishes this run while seed 0 trains
            record_run(path, settings, "sweep B", {"method": method, "budget": budget, "seed": 1, "miou": 0.123})
        return really_finished(path, settings, method, budget, seed)

    monkeypatch.setattr(sweep, "finished_elsewhere", another_sweep_records_seed_1)
    assert main(["--data", str(data), "--results", str(results), "--table", str(tmp_path / "t.md"), "--iters", "2",
                 "--budgets", "8", "--seeds", "0", "1", "--methods", "supervised",
                 "--arch-options", json.dumps(TINY_UNET)]) == 0

    assert "supervised labels 8 seed 1: already in r.json, skipped" in capsys.readouterr().err
    runs = json.loads(results.read_text())["results"]["supervised"]["8"]
    assert [(run["seed"], run["miou"] == 0.123) for run in runs] == [(0, False), (1, True)]


def test_per_seed_table_lists_each_seed_of_methods_with_several():
    stored = {"settings": SETTINGS, "results": {
        "unimatch": {"16": [{"seed": 0, "miou": 0.137}, {"seed": 2, "miou": 0.340}]},
        "cps": {"16": [{"seed": 0, "miou": 0.131}]}}}

    table = markdown_table(stored, "cmd")

    assert "| unimatch | 16 | 13.7 | 34.0 |" in table
    assert "| cps | 16 |" not in table  # one seed: the main table already shows it


def test_two_sweeps_started_at_once_generate_the_builtin_dataset_once(tmp_path, monkeypatch):
    """Session 9: two sweeps started together on a fresh machine both generated it, and one crashed."""
    calls = []

    def slow_generate(name, out):
        calls.append(name)
        time.sleep(0.3)  # the other sweep looks while this one is still writing
        out.mkdir()

    monkeypatch.setattr(sweep, "DATA_DIR", tmp_path)
    monkeypatch.setattr(engine.data.builtin, "generate", slow_generate)
    args = argparse.Namespace(data=None, builtin="fashion-scenes")
    found = []
    threads = [threading.Thread(target=lambda: found.append(sweep.resolve_data(args))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["fashion-scenes"] and found == [tmp_path / "fashion-scenes"] * 2
