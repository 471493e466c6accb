"""``python -m engine``: train, eval, predict end to end, the catalogue, datasets, and clean errors."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import cli
from engine.models import MODELS

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = ["--arch", "unet", "--model-option", "base_width=4", "--model-option", "depth=2", "--labeled", "4",
        "--crop-size", "32", "--batch-size", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained_run(demo_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["train", "--data", str(demo_dataset), *TINY, "--iters", "2", "--out", str(out)]) == 0
    return out


def test_train_writes_checkpoints_and_prints_the_scores(trained_run, demo_dataset, tmp_path, capsys):
    out = tmp_path / "again"

    status = cli.main(["train", "--data", str(demo_dataset), *TINY, "--iters", "1", "--out", str(out)])

    printed = capsys.readouterr().out
    assert status == 0
    assert (out / "last.pt").exists() and (out / "best.pt").exists()
    assert "mIoU" in printed and "disc" in printed and "images/s" in printed
    assert (trained_run / "best.pt").exists()


def test_config_file_is_overridden_by_flags(demo_dataset, tmp_path):
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({"data": str(demo_dataset), "iters": 99, "model_options": {"depth": 2}}))
    args = cli.build_parser().parse_args(["train", "--config", str(config_file), "--iters", "3",
                                          "--model-option", "base_width=4"])

    config = cli.build_config(args)

    assert config.schedule.iters == 3
    assert config.model.options["depth"] == 2 and config.model.options["base_width"] == 4


def test_eval_prints_the_per_class_table(trained_run, demo_dataset, capsys):
    status = cli.main(["eval", "--checkpoint", str(trained_run / "best.pt"), "--data", str(demo_dataset),
                       "--device", "cpu"])

    printed = capsys.readouterr().out
    assert status == 0
    for name in ("background", "disc", "box", "triangle", "ring", "mIoU", "pixel accuracy"):
        assert name in printed


def test_eval_on_a_dataset_with_other_classes_names_each_difference(trained_run, demo_dataset, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(demo_dataset, other)
    described = json.loads((other / "classes.json").read_text())
    described["classes"][2]["name"] = "crate"
    (other / "classes.json").write_text(json.dumps(described))

    status = cli.main(["eval", "--checkpoint", str(trained_run / "best.pt"), "--data", str(other), "--device", "cpu"])

    assert status != 0
    assert "class 2 is 'crate' here but 'box' in the run's dataset" in capsys.readouterr().err


def test_eval_json_on_every_masked_image(trained_run, capsys):
    status = cli.main(["eval", "--checkpoint", str(trained_run / "last.pt"), "--split", "all", "--json"])

    result = json.loads(capsys.readouterr().out)
    assert status == 0 and len(result["iou"]) == 5 and 0 <= result["miou"] <= 1


def test_predict_writes_index_masks_and_overlays(trained_run, demo_dataset, tmp_path):
    out = tmp_path / "predictions"

    status = cli.main(["predict", "--checkpoint", str(trained_run / "best.pt"), "--images",
                       str(demo_dataset / "images"), "--out", str(out), "--eval-mode", "sliding", "--eval-crop", "16"])

    assert status == 0
    stems = sorted(path.stem for path in (demo_dataset / "images").iterdir())
    assert sorted(path.stem for path in (out / "masks").iterdir()) == stems
    with Image.open(out / "masks" / f"{stems[0]}.png") as mask:
        assert mask.mode == "P" and mask.size == (32, 32) and np.array(mask).max() < 5
    with Image.open(out / "overlays" / f"{stems[0]}.png") as overlay:
        assert overlay.mode == "RGB" and overlay.size == (32, 32)


def test_list_prints_every_architecture_and_method(capsys):
    assert cli.main(["list"]) == 0

    printed = capsys.readouterr().out
    for name in MODELS.names():
        assert name in printed
    assert "supervised" in printed and "demo" in printed


def test_dataset_writes_a_builtin_dataset(tmp_path, capsys):
    status = cli.main(["dataset", "demo", str(tmp_path / "demo"), "--option", "num_images=3",
                       "--option", "num_unlabeled=0", "--option", "size=16"])

    assert status == 0
    assert len(list((tmp_path / "demo" / "masks").iterdir())) == 3


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "x", "--arch", "unett"], "arch: Unknown architecture `unett`; choose one of:"),
    (["train", "--data", "x", "--model-option", "depth"], "--model-option expects NAME=VALUE, got 'depth'"),
    (["train", "--data", "x", "--iters", "0", "--lr", "fast"], "iters: must be at least 1"),
    (["dataset", "nope", "out"], "Unknown built-in dataset `nope`; choose one of: demo"),
])
def test_user_errors_exit_2_with_a_message_and_no_traceback(argv, message, capsys):
    status = cli.main(argv)

    error = capsys.readouterr().err
    assert status == 2
    assert message in error and "Traceback" not in error


def test_batch_too_big_is_a_clean_error(demo_dataset, tmp_path, capsys):
    status = cli.main(["train", "--data", str(demo_dataset), *TINY, "--batch-size", "9", "--out", str(tmp_path)])

    assert status == 2
    assert "batch_size 9 is larger than the 4 labelled training images" in capsys.readouterr().err


def test_python_m_engine_runs_the_cli(tmp_path):
    completed = subprocess.run([sys.executable, "-m", "engine", "train", "--data", str(tmp_path / "missing"),
                                "--device", "cuda:x"], capture_output=True, text=True, timeout=120,
                               cwd=Path(__file__).resolve().parents[2])

    assert completed.returncode == 2
    assert "device: expected auto, cpu, cuda or cuda:N" in completed.stderr
    assert "Traceback" not in completed.stderr
