"""What a run costs while it trains, sampled by its worker off the training loop.

Every ``SEGLAB_SYSTEM_METRICS_SECONDS`` (10) the supervisor records the training process's CPU and memory
(psutil, its data-loader workers included), the GPU's utilisation and memory where one
is visible (NVML through ``nvidia-ml-py``; the worker never touches CUDA itself) and the
images per second the run trains at, as metric points named ``system/...`` at the run's
current step, which the experiment page plots beside the losses.
"""
from __future__ import annotations

import os

import psutil


def _gpu_handle():
    """NVML's handle of the first GPU this worker may use, or None (no GPU, no driver)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
        if visible.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(visible))
        return pynvml.nvmlDeviceGetHandleByUUID(visible)
    except Exception:  # pynvml raises its own NVMLError kinds, or ImportError without the library
        return None


class SystemSampler:
    def __init__(self, pid: int, images_per_step: int):
        self.process = psutil.Process(pid)
        self.known: dict[int, psutil.Process] = {}
        self.images_per_step = images_per_step
        self.gpu = _gpu_handle()
        self._cpu_percent()  # psutil's first reading is a baseline

    def _processes(self) -> list[psutil.Process]:
        """The process and its children, the same objects from one sample to the next (psutil
        measures CPU time between two calls on one object)."""
        try:
            current = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return []
        self.known = {p.pid: self.known.get(p.pid, p) for p in current}
        return list(self.known.values())

    def _cpu_percent(self) -> float:
        total = 0.0
        for process in self._processes():
            try:
                total += process.cpu_percent(None)
            except psutil.Error:
                pass
        return total

    def sample(self, steps_per_second: float | None) -> dict[str, float]:
        values = {"system/cpu_percent": self._cpu_percent()}
        rss = 0
        for process in self._processes():
            try:
                rss += process.memory_info().rss
            except psutil.Error:
                pass
        values["system/ram_mb"] = rss / 2**20
        if steps_per_second:
            values["system/images_per_second"] = steps_per_second * self.images_per_step
        if self.gpu is not None:
            try:
                import pynvml

                values["system/gpu_utilization"] = float(pynvml.nvmlDeviceGetUtilizationRates(self.gpu).gpu)
                values["system/gpu_memory_mb"] = pynvml.nvmlDeviceGetMemoryInfo(self.gpu).used / 2**20
            except Exception:
                pass
        return values
