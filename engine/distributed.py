"""One run on several GPUs: processes as torchrun starts them, DistributedDataParallel, rank 0 reports.

``launch`` starts one process per GPU (``torch.multiprocessing`` spawn, with the
``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` that torchrun
sets) and stays in the calling process to serve rank 0's reporter: rank 0's reporter calls
travel to the caller's reporter in order, and ``should_stop`` waits for its answer, so a
database reporter, a progress bar or a test's recorder works unchanged and never leaves
the process that built it. The other ranks report nothing.

Inside a process, ``process_group`` joins the group (NCCL on CUDA, gloo on the CPU) and
the helpers below do the rest; every one of them is a no-op in a one-process run, so the
trainer calls them unconditionally and a single-GPU run is exactly what it was:

* ``data_parallel``: the method's training step under ``DistributedDataParallel``. DDP wraps
  the whole step, not each network, because a step calls its networks several times and
  through ``forward_train``; the gradients of ``optimizer_parameters()`` (one student, CPS's
  two, CCT's auxiliary decoders) are averaged in the backward pass, and the buffers (BN
  statistics, EMA teachers' copies of them) are broadcast from rank 0 before each step.
  Networks the optimiser does not step are left to their method: EMA teachers follow the
  synchronised student identically on every rank, and a network with its own optimiser
  (the adversarial discriminator) averages its gradients with ``average_gradients``.
* ``sharded_training_loader``: rank r's slice of each global batch of ``batch_size x world``,
  drawn by ``engine.sampling`` from (seed, stream, step), so resume is exact per rank.
* ``broadcast_flag`` (rank 0's stop decision), ``all_gather`` (loss means, RNG states).
"""
from __future__ import annotations

import ctypes
import os
import pickle
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.multiprocessing.spawn import ProcessException
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from engine.data.loaders import worker_options
from engine.host_memory import retain_freed_memory
from engine.reporting import EvaluationResult, NullReporter, PredictionSample, Reporter
from engine.sampling import ResumableBatchSampler, SeededItems, SizedDataset

if TYPE_CHECKING:
    from engine.methods.base import Method

#: How long a rank waits in a collective: rank 0 evaluates alone while the others wait.
COLLECTIVE_TIMEOUT = timedelta(hours=1)
#: How often the launching process looks for a rank that died while it waits for a message.
POLL_SECONDS = 0.5
MASTER_ADDR = "127.0.0.1"
PR_SET_PDEATHSIG = 1


# --- launching --------------------------------------------------------------------------

def launch(fn: Callable[..., Any], world_size: int, reporter: Reporter, *args: Any) -> Any:
    """Run ``fn(rank_reporter, *args)`` in ``world_size`` processes; return rank 0's result.

    Rank 0's ``rank_reporter`` forwards to ``reporter`` (served here, in the caller's process),
    the others get a ``NullReporter``. An exception in any rank stops every rank and is
    raised here as it was raised there (a ``TrainingError`` keeps its message and field).
    """
    context = mp.get_context("spawn")
    requests, replies = context.SimpleQueue(), context.SimpleQueue()
    environment = {"MASTER_ADDR": MASTER_ADDR, "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(world_size)}
    # The CPU's threads are shared between the processes, as torchrun's OMP_NUM_THREADS=1 intends.
    threads = max(1, torch.get_num_threads() // world_size)
    processes = mp.start_processes(_run_rank, (fn, args, environment, threads, requests, replies), nprocs=world_size,
                                   join=False, start_method="spawn")
    try:
        result = _serve(reporter, requests, replies, processes)
        while not processes.join():
            pass
    except ProcessException as error:  # a rank died: raise what it raised, if it could say
        sent = _sent_error(requests)
        if sent is None:
            raise RuntimeError(f"a training process of the run failed: {error}") from None
        raise sent from error
    finally:  # after an error here (in the reporter) or in a rank, no rank trains on
        for process in processes.processes:
            if process.is_alive():
                process.terminate()
            process.join()
    return result


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((MASTER_ADDR, 0))
        return probe.getsockname()[1]


def _serve(reporter: Reporter, requests, replies, processes) -> Any:
    """Answer rank 0's reporter calls until it sends its result; raise the first rank's error."""
    while True:
        if requests.empty():
            # join raises if a rank died; once all have ended, what they sent last may still be in the pipe
            if processes.join(timeout=POLL_SECONDS) and requests.empty():
                raise RuntimeError("the training processes ended without a result")
            continue
        kind, payload = pickle.loads(requests.get())
        if kind == "result":
            return payload
        if kind == "error":
            raise _as_raised_here(*payload)
        answer = getattr(reporter, kind)(*payload)
        if kind == "should_stop":
            replies.put(bool(answer))


def _sent_error(requests) -> Exception | None:
    while not requests.empty():
        kind, payload = pickle.loads(requests.get())
        if kind == "error":
            return _as_raised_here(*payload)
    return None


class RankTraceback(Exception):
    """Where a rank raised: the cause of the error re-raised by ``launch`` (as concurrent.futures does)."""

    def __str__(self) -> str:
        return self.args[0]


def _as_raised_here(error: Exception, rank: int, text: str) -> Exception:
    error.__cause__ = RankTraceback(f"in the training process of rank {rank}:\n{text}")
    return error


def _die_with_parent() -> None:
    """SIGKILL when the launching process dies, rather than torch's SIGINT: a rank waiting in a
    collective would only see SIGINT when it returns, and would hold its GPU until the timeout."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        pass


def _run_rank(rank: int, fn, args, environment, threads, requests, replies) -> None:
    _die_with_parent()
    os.environ.update(environment, RANK=str(rank), LOCAL_RANK=str(rank))
    retain_freed_memory()
    torch.set_num_threads(threads)
    reporter = _ReporterProxy(requests, replies) if rank == 0 else NullReporter()
    try:
        result = fn(reporter, *args)
    except Exception as error:
        _send(requests, "error", (_picklable(error), rank, traceback.format_exc()))
        raise
    if rank == 0:
        _send(requests, "result", result)  # a pipe write: in the launcher's pipe when it returns
    _exit_now()


def _exit_now() -> None:
    """End a rank that finished, skipping the interpreter's teardown.

    A spawned process otherwise exits through ``sys.exit``, and the C++ destructors that run
    then can meet a gloo or store thread that is still joinable: ``std::terminate``
    ("terminate called without an active exception", SIGABRT) after a run that succeeded,
    seen about once in ten two-process CPU runs here; cf. pytorch/pytorch#190489 and the
    atexit discussion in pytorch/pytorch#179291. Everything the run wrote is closed by now.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _send(requests, kind: str, payload: Any) -> None:
    # Pickled here, by value: once torch.multiprocessing is imported, a queue would pass tensors
    # through shared memory, which the sender must keep alive until they are read.
    requests.put(pickle.dumps((kind, payload)))


def _picklable(error: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # an exception type that cannot be rebuilt from its arguments
        return RuntimeError(f"{type(error).__name__}: {error}")


class _ReporterProxy:
    """Rank 0's reporter: each call goes, in order, to the reporter of the process that launched the run."""

    def __init__(self, requests, replies):
        self.requests, self.replies = requests, replies

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        _send(self.requests, "log_metrics", (step, metrics))

    def log_evaluation(self, step: int, result: EvaluationResult) -> None:
        _send(self.requests, "log_evaluation", (step, result))

    def log_predictions(self, step: int, samples: list[PredictionSample]) -> None:
        _send(self.requests, "log_predictions", (step, samples))

    def log_checkpoint(self, path: str, step: int, is_best: bool) -> None:
        _send(self.requests, "log_checkpoint", (path, step, is_best))

    def should_stop(self) -> bool:
        _send(self.requests, "should_stop", ())
        return self.replies.get()


# --- inside a process ---------------------------------------------------------------------

@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Join the run's process group from torchrun's variables; on CUDA this rank's GPU is ``cuda:LOCAL_RANK``."""
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        yield
        dist.barrier()  # no rank tears its group down while another still talks to it (rank 0 saving)
    finally:
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """This rank's GPU (``cuda:LOCAL_RANK``) for a CUDA run; the device itself otherwise."""
    if is_distributed() and device.type == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return device


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (one 1-element broadcast), so all ranks stop at the same step."""
    if not is_distributed():
        return flag
    tensor = torch.tensor([float(flag)], device=_collective_device())
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def all_gather(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` in a one-process run."""
    if not is_distributed():
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Average the gradients of networks stepped outside DDP (a discriminator's own optimiser)."""
    if not is_distributed():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


class _TrainingStep(nn.Module):
    """A method's training step as a module's forward, the one call DDP wraps per step."""

    def __init__(self, method: Method):
        super().__init__()
        self.method = method

    def forward(self, labeled: dict, unlabeled: dict | None, step: int, total_steps: int) -> dict[str, torch.Tensor]:
        return self.method.training_step(labeled, unlabeled, step, total_steps)


def data_parallel(method: Method, device: torch.device) -> Callable[..., dict[str, torch.Tensor]]:
    """``method.training_step``, under DistributedDataParallel when the run has several processes.

    DDP averages the gradients of ``optimizer_parameters()`` only: trainable networks the
    trainer's optimiser does not step (a discriminator) are left out of its reduction,
    which would otherwise wait for gradients that the step's loss never produces.
    """
    if not is_distributed():
        return method.training_step
    step = _TrainingStep(method)
    stepped = {id(p) for p in method.optimizer_parameters()}
    ignored = [name for name, p in step.named_parameters() if p.requires_grad and id(p) not in stepped]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(step, ignored)
    return DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None)


class ShardedBatchSampler(Sampler[list[tuple[int, int]]]):
    """Rank r's slice ``[r*B, (r+1)*B)`` of each global batch of ``B x world_size`` keys."""

    def __init__(self, batches: ResumableBatchSampler, rank: int, world_size: int):
        self.batches, self.rank = batches, rank
        self.batch_size = batches.batch_size // world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        first = self.rank * self.batch_size
        for batch in self.batches:
            yield batch[first:first + self.batch_size]


def sharded_training_loader(dataset: SizedDataset, batch_size: int, *, seed: int, stream: int, start_step: int = 0,
                            num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """``engine.data.loaders.training_loader`` for one rank: ``batch_size`` per process, from the
    global batch a one-process run of ``batch_size x world_size`` would draw at the same step."""
    batches = ResumableBatchSampler(len(dataset), batch_size * world_size(), seed, stream, start_step=start_step)
    return DataLoader(
        SeededItems(dataset, seed, stream), batch_sampler=ShardedBatchSampler(batches, rank(), world_size()),
        **worker_options(num_workers), pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed),
    )
