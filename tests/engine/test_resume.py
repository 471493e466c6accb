"""Exact resume: N steps, stop, resume, N more == 2N steps straight (CPU, deterministic mode)."""
from __future__ import annotations

import pytest
import torch

from engine.methods.base import supervised_loss
from engine.methods.supervised import Supervised
from engine.reporting import NullReporter
from engine.trainer import CHECKPOINT_LAST, train

pytestmark = pytest.mark.usefixtures("single_thread")

STEPS = 3


class StopAfter(NullReporter):
    """Asks to stop once ``steps`` losses were logged (log_every=1): the worker's cancel flag."""

    def __init__(self, steps: int):
        self.steps, self.logged = steps, 0

    def log_metrics(self, step, metrics):
        self.logged = step

    def should_stop(self):
        return self.logged >= self.steps


def weights(output_dir) -> dict[str, torch.Tensor]:
    return torch.load(output_dir / CHECKPOINT_LAST, weights_only=False)["method"]


def noisy_training_step(self, labeled, unlabeled, step, total_steps):
    """Draws from the training process's torch RNG, as dropout, drop-path and mixing methods do."""
    image = labeled["image"] + 0.1 * torch.randn_like(labeled["image"])
    return {"loss": supervised_loss(self.model.forward_train(image), labeled["mask"])}


@pytest.mark.parametrize("num_workers, step_uses_rng", [(0, False), (1, False), (0, True)])
def test_stopped_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
        tiny_config, tmp_path, monkeypatch, num_workers, step_uses_rng):
    if step_uses_rng:
        monkeypatch.setattr(Supervised, "training_step", noisy_training_step)
    # eval_every falls inside the first half, so evaluation and checkpointing happen between the halves too.
    config = tiny_config(iters=2 * STEPS, eval_every=2, log_every=1, deterministic=True, num_workers=num_workers,
                         optimizer="sgd", warmup_iters=2, grad_clip=1.0)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"

    uninterrupted = train(config, output_dir=straight)
    first_half = train(config, StopAfter(STEPS), output_dir=interrupted)
    second_half = train(config, output_dir=interrupted)

    assert first_half.stopped and first_half.steps == STEPS
    assert second_half.steps == uninterrupted.steps == 2 * STEPS
    expected, resumed = weights(straight), weights(interrupted)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    assert second_half.last.confusion_matrix == uninterrupted.last.confusion_matrix


def test_resuming_a_finished_run_trains_no_further(tiny_config, tmp_path):
    config = tiny_config(iters=2)
    train(config, output_dir=tmp_path)
    before = weights(tmp_path)

    again = train(config, output_dir=tmp_path)

    assert again.steps == 2 and not again.stopped and again.last is not None
    assert all(torch.equal(before[name], tensor) for name, tensor in weights(tmp_path).items())


def test_a_longer_schedule_continues_from_the_last_checkpoint(tiny_config, tmp_path):
    train(tiny_config(iters=2), output_dir=tmp_path)

    longer = train(tiny_config(iters=4), output_dir=tmp_path)

    assert longer.steps == 4
    assert torch.load(tmp_path / CHECKPOINT_LAST, weights_only=False)["scheduler"]["last_epoch"] == 4
