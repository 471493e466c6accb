"""Keep freed host memory in the process for reuse, in the processes that train and evaluate.

PyTorch's CPU tensors come from plain ``malloc``. glibc serves a large request (above its
mmap threshold, 128 KiB at first and raised as blocks are freed, up to 32 MiB) with a
fresh ``mmap`` and returns it to the kernel on ``free``, and it trims the top of the heap
whenever more than 128 KiB lies free there. A training step allocates and frees the same
activations every time, so every step touches new pages: DDRNet-23-slim at 256x256, batch
2, took about 7,500-10,000 minor page faults per step, each a kernel trap that zeroes a
page. ``retain_freed_memory`` serves every request from the heap and never trims it, so
the second step onwards reuses the first step's pages: no faults, and the same peak
resident size (``bench/host_memory.py`` measures both, per architecture). This is what the
PyTorch CPU performance tuning guide gets by preloading jemalloc or tcmalloc
(pytorch.org/tutorials/recipes/recipes/tuning_guide.html, "Switch Memory allocator"),
without a library to install or an ``LD_PRELOAD`` to set.

The price is that the process holds on to its peak host memory until it exits, as
PyTorch's CUDA caching allocator does with GPU memory. That suits the engine's processes:
one per run attempt (``workers.child``), per rank (``engine.distributed``) or per command
(``python -m engine``), never the web server or the worker that supervises them.
``SEGLAB_HOST_MEMORY=system`` leaves glibc's defaults in place (the web and worker start-up
refuse any other value than the two). Elsewhere than glibc (macOS,
musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: mallopt(3) parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: The largest value mallopt takes for M_TRIM_THRESHOLD (an int): in effect, never trim.
NEVER = 2**31 - 1

ENVIRONMENT = "SEGLAB_HOST_MEMORY"
CHOICES = ("retain", "system")


def setting() -> str:
    """``SEGLAB_HOST_MEMORY`` (``retain`` when unset); a ValueError names a malformed one."""
    value = os.environ.get(ENVIRONMENT, "")
    choice = value.strip().lower() or CHOICES[0]
    if choice not in CHOICES:
        raise ValueError(f"{ENVIRONMENT}={value!r}: expected one of {', '.join(CHOICES)}")
    return choice


def retain_freed_memory() -> bool:
    """Serve allocations from the heap and keep what is freed there; True when it took effect."""
    if setting() == "system" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success. M_MMAP_MAX 0 (no mmap at all) rather than a high mmap
    # threshold, which glibc releases before 2.35 cap at 32 MiB: a full-resolution logits
    # tensor is larger than that.
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER))
