"""Which CPU kernels torch runs, so that a CPU benchmark run reproduces on another machine.

A 3000-step run from scratch magnifies last-bit float differences, and those depend on
the kernels ATen and oneDNN pick for the CPU (AVX2 or AVX-512 code): on one AVX-512 machine,
forcing the AVX2 kernels moved supervised seed 1 from 22.1 to 21.5 mIoU and fixmatch seed 1
from 14.3 to 15.3. Pinned to AVX2, which every x86-64 server CPU of the last decade has, the
same run ends on the same last digit on different machines: supervised seed 1 scored
0.21477619099191325 on an AVX-512 EPYC with AVX2 forced and on an AVX2-only EPYC
(bench/results/ssl.json). Not on an Intel Xeon: the same run scored 0.21524235945517053 there,
and 0.21576526048090905 with MKL's reproducible AVX2 mode added (``MKL_CBWR=AVX2``), so the
vendor's libraries still choose other code paths; each run records its ``machine``.
The pinned kernels include PyTorch's own gradient for bilinear upscaling, with which the
stored sweeps ran (``SEGLAB_RESIZE_GRADIENT=pytorch``, ``engine/models/resize.py``: the engine's
default rounds differently).

torch reads both variables once, when it is imported, so they must be set in a process
that has not imported it yet: the sweep sets them in its spawned workers (``pin``), and
every run checks what it got (``check``).
"""
from __future__ import annotations

import os

#: Kernel choice -> the environment that selects it (``native``: whatever torch picks for this CPU).
CPU_KERNELS: dict[str, dict[str, str]] = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "SEGLAB_RESIZE_GRADIENT": "pytorch"},
    "native": {},
}
DEFAULT_KERNELS = "avx2"


def pin(kernels: str) -> None:
    """Select ``kernels`` for this process; it must not have imported torch yet."""
    os.environ.update(CPU_KERNELS[kernels])


def check(kernels: str) -> None:
    """Raise if torch's CPU capability, or the engine's resize gradient, is not the one ``kernels``
    asks for (``native`` accepts any)."""
    import torch

    from engine.models import resize

    pinned = CPU_KERNELS[kernels]
    variables = " ".join(f"{name}={value}" for name, value in pinned.items())
    running = torch.backends.cpu.get_cpu_capability()
    wanted = pinned.get("ATEN_CPU_CAPABILITY")
    if wanted and running.lower() != wanted:
        raise RuntimeError(f"asked for {kernels} CPU kernels but torch runs {running}: set {variables} before "
                           f"torch is imported, or pass --kernels native (results then depend on this CPU)")
    gradient = pinned.get(resize.ENVIRONMENT)
    if gradient and resize.STENCIL_DEVICES != resize.CHOICES[gradient]:
        raise RuntimeError(f"asked for {kernels} CPU kernels but the engine was imported with its own resize "
                           f"gradient: set {variables} before the engine is imported, or pass --kernels native")
