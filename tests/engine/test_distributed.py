"""One run in two processes on the CPU (gloo), as it would run on two GPUs (NCCL)."""
from __future__ import annotations

import pytest
import torch

from engine import distributed, trainer
from engine.config import ConfigError, RunConfig
from engine.reporting import NullReporter
from engine.sampling import ResumableBatchSampler
from engine.trainer import CHECKPOINT_BEST, CHECKPOINT_LAST, TrainingError, train

pytestmark = pytest.mark.usefixtures("single_thread")

GPUS = 2
#: Methods that own more than one network or optimiser, with the baseline.
METHODS = ["supervised", "mean_teacher", "cps", "adversarial", "unimatch"]


class RecordingReporter(NullReporter):
    """Keeps every call (in the test's process: rank 0's calls come here); stops after ``stop_after`` logged steps."""

    def __init__(self, stop_after: int | None = None):
        self.metrics, self.evaluations, self.checkpoints = [], [], []
        self.stop_after = stop_after

    def log_metrics(self, step, metrics):
        self.metrics.append((step, metrics))

    def log_evaluation(self, step, result):
        self.evaluations.append(step)

    def log_checkpoint(self, path, step, is_best):
        self.checkpoints.append((path, step, is_best))

    def should_stop(self):
        return self.stop_after is not None and len(self.metrics) >= self.stop_after


def train_keeping_weights(reporter, config, output_dir, weights_dir):
    """One process of the run (``engine.distributed.launch``) that also saves its final parameters."""
    loop = trainer._loop

    def loop_then_save(run, reporter):
        stopped = loop(run, reporter)
        parameters = {name: p.detach().clone() for name, p in run.method.named_parameters()}
        torch.save(parameters, weights_dir / f"rank{distributed.rank()}.pt")
        return stopped

    trainer._loop = loop_then_save
    return trainer._train_process(reporter, config, output_dir, True)


def curve_names(reporter: RecordingReporter) -> set[str]:
    return {name for _, metrics in reporter.metrics for name in metrics}


def checkpoint_weights(output_dir) -> dict[str, torch.Tensor]:
    return torch.load(output_dir / CHECKPOINT_LAST, weights_only=False)["method"]


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_train_in_step_and_only_rank_0_reports_and_checkpoints(tiny_config, tmp_path, method):
    config = tiny_config(method=method, labeled="6", gpus=GPUS)
    reporter, out, weights = RecordingReporter(), tmp_path / "run", tmp_path / "weights"
    weights.mkdir()

    result = distributed.launch(train_keeping_weights, GPUS, reporter, config, out, weights)

    assert result.steps == 4 and not result.stopped and 0 <= result.last.miou <= 1
    assert [step for step, _ in reporter.metrics] == [1, 2, 3, 4]
    assert reporter.evaluations == [2, 4]
    last_saves = [step for path, step, is_best in reporter.checkpoints if not is_best]
    assert last_saves == [2, 4] and all(path.startswith(str(out)) for path, _, _ in reporter.checkpoints)
    assert sorted(p.name for p in out.iterdir()) == sorted([CHECKPOINT_LAST, CHECKPOINT_BEST])
    one_process = RecordingReporter()  # the same global batches, in one process
    single = RunConfig.from_flat({**config.to_flat(), "gpus": 1, "batch_size": GPUS * config.schedule.batch_size})
    train(single, one_process, output_dir=tmp_path / "one")
    assert curve_names(reporter) == curve_names(one_process)
    rank0, rank1 = torch.load(weights / "rank0.pt"), torch.load(weights / "rank1.pt")
    saved = checkpoint_weights(out)
    for name in rank0:  # students, teachers, a second student, a discriminator: equal on every rank
        assert torch.equal(rank0[name], rank1[name]), name
        assert torch.equal(rank0[name], saved[name]), name


def test_a_stopped_two_process_run_resumes_exactly(tiny_config, tmp_path):
    # CPS: two students, and random CutMix boxes drawn from each rank's own RNG, restored per rank.
    config = tiny_config(method="cps", labeled="6", iters=4, eval_every=3, deterministic=True, gpus=GPUS)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"

    uninterrupted = train(config, output_dir=straight)
    first_half = train(config, RecordingReporter(stop_after=2), output_dir=interrupted)
    second_half = train(config, RecordingReporter(), output_dir=interrupted)

    assert first_half.stopped and first_half.steps == 2
    assert second_half.steps == uninterrupted.steps == 4
    expected, resumed = checkpoint_weights(straight), checkpoint_weights(interrupted)
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name


def test_a_two_process_checkpoint_resumes_in_one_process(tiny_config, tmp_path):
    train(tiny_config(iters=2, gpus=GPUS), output_dir=tmp_path)
    state = torch.load(tmp_path / CHECKPOINT_LAST, weights_only=False)
    assert not any(name.startswith("module.") for name in state["method"])  # unwrapped: today's format

    reporter = RecordingReporter()
    longer = train(tiny_config(iters=4, gpus=1), reporter, output_dir=tmp_path)

    assert longer.steps == 4 and [step for step, _ in reporter.metrics] == [3, 4]


def test_an_error_in_a_process_is_raised_as_itself(tiny_config, tmp_path):
    with pytest.raises(TrainingError, match=r"batch_size 3 x gpus 2 is larger than the 4 labelled") as error:
        train(tiny_config(batch_size=3, gpus=GPUS), output_dir=tmp_path)
    assert error.value.field == "batch_size"


def test_each_rank_takes_its_slice_of_the_global_batch():
    batches = ResumableBatchSampler(10, 2 * 3, seed=0, stream=0, start_step=5)
    slices = [next(iter(distributed.ShardedBatchSampler(batches, rank, 2))) for rank in range(2)]

    assert slices[0] + slices[1] == batches.batch(5) and len(slices[0]) == 3


def test_gpus_is_validated_with_the_device(demo_dataset):
    with pytest.raises(ConfigError) as error:
        RunConfig.from_flat({"data": str(demo_dataset), "gpus": 9})
    assert "gpus" in error.value.errors
    with pytest.raises(ConfigError) as error:
        RunConfig.from_flat({"data": str(demo_dataset), "gpus": 2, "device": "cuda:1"})
    assert "use cuda or auto" in error.value.errors["device"]
    assert RunConfig.from_flat({"data": str(demo_dataset)}).device.gpus == 1
