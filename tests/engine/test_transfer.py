"""engine.transfer: a checkpoint scored on another dataset folder, refused when the classes differ."""
import json
import shutil

import pytest

from engine.reporting import NullReporter
from engine.trainer import train
from engine.transfer import ClassMismatch, evaluate_transfer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, demo_dataset):
    from engine.config import RunConfig
    from tests.engine.conftest import DEMO_SIZE, TINY_UNET

    config = RunConfig.from_flat({"data": str(demo_dataset), "arch": "unet", "model_options": TINY_UNET,
                                  "labeled": "4", "crop_size": DEMO_SIZE, "batch_size": 2, "iters": 2, "eval_every": 2,
                                  "device": "cpu"})
    out = tmp_path_factory.mktemp("run")
    train(config, NullReporter(), output_dir=out)
    return out / "best.pt"


def test_scores_every_labelled_image_of_the_other_folder_beside_the_runs_own(checkpoint, demo_dataset, tmp_path):
    other = shutil.copytree(demo_dataset, tmp_path / "other")

    transfer = evaluate_transfer(checkpoint, other)

    assert transfer.num_images == len(transfer.result.images) == 12
    assert transfer.step == 2 and transfer.in_domain["step"] == 2
    assert len(transfer.result.iou) == len(transfer.in_domain["iou"]) == 5
    assert transfer.samples and all(s.prediction.shape == s.ground_truth.shape for s in transfer.samples)


def test_a_folder_whose_classes_differ_is_refused_listing_them(checkpoint, demo_dataset, tmp_path):
    other = shutil.copytree(demo_dataset, tmp_path / "other")
    description = json.loads((other / "classes.json").read_text())
    description["classes"][1]["name"] = "coin"
    (other / "classes.json").write_text(json.dumps(description))

    with pytest.raises(ClassMismatch) as refused:
        evaluate_transfer(checkpoint, other)
    assert refused.value.problems == ["class 1 is 'coin' here but 'disc' in the run's dataset"]
