"""The training loop: reporting, checkpoints, cancellation, and the errors a user sees."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from engine.evaluation import Inference, predict_logits
from engine.methods.supervised import Supervised
from engine.reporting import NullReporter
from engine.sampling import ResumableBatchSampler
from engine.trainer import (
    CHECKPOINT_BEST,
    CHECKPOINT_LAST,
    TrainingError,
    build_optimizer,
    poly_lr_lambda,
    train,
)

pytestmark = pytest.mark.usefixtures("single_thread")


class RecordingReporter(NullReporter):
    """Keeps every call; asks to stop once ``stop_after`` losses were logged."""

    def __init__(self, stop_after: int | None = None):
        self.metrics, self.evaluations, self.predictions, self.checkpoints = [], [], [], []
        self.stop_after = stop_after

    def log_metrics(self, step, metrics):
        self.metrics.append((step, metrics))

    def log_evaluation(self, step, result):
        self.evaluations.append((step, result))

    def log_predictions(self, step, samples):
        self.predictions.append((step, samples))

    def log_checkpoint(self, path, step, is_best):
        self.checkpoints.append((path, step, is_best))

    def should_stop(self):
        return self.stop_after is not None and len(self.metrics) >= self.stop_after


def test_run_reports_losses_evaluations_predictions_and_checkpoints(tiny_config, tmp_path):
    reporter = RecordingReporter()

    result = train(tiny_config(iters=4, eval_every=2, log_every=1), reporter, output_dir=tmp_path)

    assert result.steps == 4 and not result.stopped
    assert [step for step, _ in reporter.metrics] == [1, 2, 3, 4]
    assert {"loss", "lr"} <= set(reporter.metrics[0][1])
    assert [step for step, _ in reporter.evaluations] == [2, 4]
    final = reporter.evaluations[-1][1]
    assert final is result.last and 0.0 <= final.miou <= 1.0
    assert final.throughput > 0 and reporter.evaluations[0][1].throughput is None
    assert len(final.confusion_matrix) == len(final.class_names) == 5
    sample = reporter.predictions[-1][1][0]
    assert sample.image.dtype == torch.uint8 and sample.image.shape[0] == 3
    assert sample.prediction.shape == sample.ground_truth.shape == sample.image.shape[1:]
    assert (str(tmp_path / CHECKPOINT_LAST), 4, False) in reporter.checkpoints
    assert any(is_best for _, _, is_best in reporter.checkpoints)
    assert result.best_checkpoint == str(tmp_path / CHECKPOINT_BEST)


def test_checkpoint_holds_everything_needed_to_resume(tiny_config, tmp_path):
    config = tiny_config(iters=2, eval_every=2)

    train(config, output_dir=tmp_path)
    state = torch.load(tmp_path / CHECKPOINT_LAST, weights_only=False)

    assert {"method", "optimizer", "scheduler", "scaler", "rng", "step", "config", "best_evaluation",
            "num_classes", "class_names", "class_colors"} <= set(state)
    assert set(state["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert state["config"] == config.to_flat() and state["step"] == 2
    assert state["scheduler"]["last_epoch"] == 2
    assert any(key.startswith("model.") for key in state["method"])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_fused_optimizer_updates_as_the_per_parameter_loop_does_to_rounding(tiny_config, optimizer, monkeypatch):
    config = tiny_config(optimizer=optimizer, weight_decay=1e-2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    loop_model = copy.deepcopy(model)
    loop = build_optimizer(config, Supervised(lambda: loop_model, num_classes=4, aux_weight=0.4))
    monkeypatch.setattr("engine.trainer.FUSED_OPTIMIZER_DEVICES", ("cuda", "cpu"))  # as on CUDA, which is not here
    fused = build_optimizer(config, Supervised(lambda: model, num_classes=4, aux_weight=0.4))
    torch.manual_seed(0)
    gradients = [[torch.randn_like(p) for p in model.parameters()] for _ in range(3)]

    for optimizer_, network in ((fused, model), (loop, loop_model)):
        for step in gradients:
            for parameter, gradient in zip(network.parameters(), step, strict=True):
                parameter.grad = gradient.clone()
            optimizer_.step()

    assert fused.defaults["fused"] is True
    assert not loop.defaults["fused"] and not loop.defaults["foreach"]  # the CPU keeps the loop's last digits
    for ours, theirs in zip(model.parameters(), loop_model.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_should_stop_ends_the_run_early_with_a_last_checkpoint(tiny_config, tmp_path):
    reporter = RecordingReporter(stop_after=1)

    result = train(tiny_config(iters=50, log_every=1), reporter, output_dir=tmp_path)

    assert result.stopped and result.steps == 1
    assert torch.load(tmp_path / CHECKPOINT_LAST, weights_only=False)["step"] == 1


def test_batch_larger_than_the_labelled_images_names_both_numbers(tiny_config):
    with pytest.raises(TrainingError, match=r"batch_size 8 is larger than the 4 labelled training images"):
        train(tiny_config(batch_size=8))


def test_crop_far_larger_than_the_images_is_refused(tiny_config):
    with pytest.raises(TrainingError, match=r"crop_size 512 .* largest labelled image side \(32 px\).*<= 64"):
        train(tiny_config(crop_size=512))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_requested_without_a_gpu(tiny_config):
    with pytest.raises(TrainingError, match="no CUDA GPU is available"):
        train(tiny_config(device="cuda"))


def test_non_finite_loss_names_the_iteration(tiny_config, monkeypatch):
    def diverging_step(self, labeled, unlabeled, step, total_steps):
        return {"loss": self.model(labeled["image"]).sum() * float("nan")}

    monkeypatch.setattr(Supervised, "training_step", diverging_step)

    with pytest.raises(TrainingError, match="loss became nan at iteration 1;"):
        train(tiny_config())


def test_non_finite_loss_read_at_the_next_log_still_names_the_first_iteration(tiny_config, monkeypatch):
    """The losses are read on the host when the trainer logs (no sync per step, issue 22), and the
    error names the iteration that diverged, not the one that logged."""
    original = Supervised.training_step
    logged: list[int] = []

    def diverging_at_step_2(self, labeled, unlabeled, step, total_steps):
        losses = original(self, labeled, unlabeled, step, total_steps)
        return {"loss": losses["loss"] * float("inf")} if step == 1 else losses

    class Recorder(NullReporter):
        def log_metrics(self, step, metrics):
            logged.append(step)

    monkeypatch.setattr(Supervised, "training_step", diverging_at_step_2)

    with pytest.raises(TrainingError, match="loss became inf at iteration 2;"):
        train(tiny_config(iters=6, log_every=4, eval_every=6), Recorder())
    assert logged == []  # refused before logging a diverged mean


def test_out_of_memory_names_iteration_batch_and_crop(tiny_config, monkeypatch):
    def out_of_memory(self, labeled, unlabeled, step, total_steps):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Supervised, "training_step", out_of_memory)

    with pytest.raises(TrainingError, match=r"CUDA out of memory at iteration 1 \(batch 2, crop 32\)"):
        train(tiny_config())


def test_resuming_a_different_run_is_refused(tiny_config, tmp_path):
    train(tiny_config(iters=1), output_dir=tmp_path)

    with pytest.raises(TrainingError, match=r"different run \(lr: 0.002 -> 0.01\)"):
        train(tiny_config(iters=2, lr=0.01), output_dir=tmp_path)


def test_a_checkpoint_saved_before_strong_blur_resumes_as_the_pixel_blur_it_was_trained_with(tiny_config, tmp_path):
    train(tiny_config(iters=1, strong_blur="pixels"), output_dir=tmp_path)
    state = torch.load(tmp_path / CHECKPOINT_LAST, weights_only=False)
    del state["config"]["strong_blur"]  # as saved before session 5
    torch.save(state, tmp_path / CHECKPOINT_LAST)

    with pytest.raises(TrainingError, match=r"different run \(strong_blur: 'pixels' -> 'crop'\)"):
        train(tiny_config(iters=2), output_dir=tmp_path)
    assert train(tiny_config(iters=2, strong_blur="pixels"), output_dir=tmp_path).steps == 2


def test_poly_schedule_warms_up_linearly_then_decays_to_zero():
    factor = poly_lr_lambda(total_steps=100, warmup=4, power=0.9)

    assert [factor(step) for step in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(50) == pytest.approx(0.5**0.9)
    assert 0 < factor(99) < factor(98) < 0.05


def test_sliding_window_equals_whole_image_for_a_pixelwise_model():
    model = nn.Conv2d(3, 4, 1)
    image = torch.randn(1, 3, 70, 45)

    whole = predict_logits(model, image, Inference("whole"))
    sliding = predict_logits(model, image, Inference("sliding", crop=32))

    assert torch.allclose(whole, sliding, atol=1e-6)


def test_batch_sampler_restarts_mid_stream_and_covers_each_epoch():
    sampler = ResumableBatchSampler(size=10, batch_size=4, seed=3, stream=0)
    stream = iter(sampler)
    batches = [next(stream) for _ in range(5)]

    restarted = iter(ResumableBatchSampler(size=10, batch_size=4, seed=3, stream=0, start_step=3))

    assert [next(restarted) for _ in range(2)] == batches[3:]
    indices = [index for batch in batches for _, index in batch]
    assert sorted(indices[:10]) == list(range(10)) and sorted(indices[10:20]) == list(range(10))
    assert [step for step, _ in batches[2]] == [2] * 4


def test_loss_meter_averages_each_name_over_the_steps_that_had_it():
    import torch

    from engine.trainer import LossMeter

    meter = LossMeter()
    meter.add({"loss": torch.tensor(1.0), "pseudo_label_accuracy": torch.tensor(0.8)})
    meter.add({"loss": torch.tensor(3.0)})  # no trusted pixel with a known label this step
    meter.add({"loss": torch.tensor(2.0), "pseudo_label_accuracy": torch.tensor(float("nan"))})  # nor this one
    assert meter.flush() == {"loss": 2.0, "pseudo_label_accuracy": pytest.approx(0.8)}
    meter.add({"loss": torch.tensor(1.0), "pseudo_label_accuracy": torch.tensor(float("nan"))})
    assert meter.flush() == {"loss": 1.0}  # a value no step had is left out
    assert meter.flush() == {}
