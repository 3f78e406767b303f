"""What a GPU user watches: utilisation, memory, power and temperature of the run's device.

The run samples them at its publish points, at most once a ``INTERVAL``, and publishes a
``GpuSample``, so the dashboard shows them and ``metrics.jsonl`` keeps them beside the steps.
The allocator's memory in use and its peak come from PyTorch; utilisation, the device's
memory as the driver counts it (other processes and the CUDA context included), power and
temperature from NVML through ``nvidia-ml-py`` (the ``gpu`` extra), imported only on CUDA.
Without it the run says so in one warning and publishes the allocator's figures alone; on
the CPU nothing is sampled.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from ..contract import events as ev

INTERVAL = 1.0
NO_NVML = ("GPU utilisation, device memory, power and temperature need NVML: pip install 'lgcn-tui[gpu]' "
           "(nvidia-ml-py); until then the dashboard shows PyTorch's allocator memory only")


def allocator(device: torch.device) -> tuple[int, int]:
    """Bytes in PyTorch's allocator on ``device``: now, and the most since the process started."""
    return torch.cuda.memory_allocated(device), torch.cuda.max_memory_allocated(device)


def import_nvml() -> ModuleType:
    """``pynvml``, from ``nvidia-ml-py``; ImportError without the extra."""
    import pynvml

    return pynvml


class GpuTelemetry:
    """Samples the run's CUDA device for ``events``; a CPU device gives none.

    ``clock``, ``memory`` and ``nvml`` are the time, allocator and NVML sources, which tests replace.
    """

    def __init__(self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic,
                 memory: Callable[[torch.device], tuple[int, int]] = allocator,
                 nvml: Callable[[], ModuleType] = import_nvml) -> None:
        self.interval, self.clock, self.memory, self.import_nvml = interval, clock, memory, nvml
        self.last: float | None = None
        self.opened = False
        self.nvml: ModuleType | None = None
        self.handle: Any = None

    def events(self, device: torch.device, epoch: int, step: int) -> list[ev.Event]:
        """A ``GpuSample`` when one is due (with a warning, the first time, if NVML is missing)."""
        if device.type != "cuda":
            return []
        now = self.clock()
        if self.last is not None and now - self.last < self.interval:
            return []
        self.last = now
        out: list[ev.Event] = []
        if not self.opened:
            self.opened = True
            note = self._open(device)
            if note:
                out.append(ev.Message(level="warning", text=note))
        allocated, peak = self.memory(device)
        out.append(ev.GpuSample(epoch=epoch, step=step, allocated=allocated, peak_allocated=peak, **self._nvml()))
        return out

    def _open(self, device: torch.device) -> str | None:
        """Load NVML and find the device's handle; why not, as a one-line warning."""
        try:
            nvml = self.import_nvml()
        except ImportError:
            return NO_NVML
        try:
            nvml.nvmlInit()
            self.handle = _handle(nvml, device.index if device.index is not None else torch.cuda.current_device())
        except nvml.NVMLError as exc:
            return f"NVML cannot read this GPU ({exc}); the dashboard shows PyTorch's allocator memory only"
        self.nvml = nvml
        return None

    def _nvml(self) -> dict[str, float | int | None]:
        """NVML's figures; one the device does not report (a MIG slice has no utilisation) is None."""
        nvml, handle = self.nvml, self.handle
        if nvml is None:
            return {}
        reads: dict[str, Callable[[], float | int]] = {
            "utilization": lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            "memory_used": lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).used),
            "memory_total": lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
            "power_w": lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000,
            "temperature_c": lambda: float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
        }
        out: dict[str, float | int | None] = {}
        for name, read in reads.items():
            try:
                out[name] = read()
            except nvml.NVMLError:
                out[name] = None
        return out


def _handle(nvml: ModuleType, index: int) -> Any:
    """NVML's handle of CUDA device ``index``: NVML counts every GPU, CUDA only the visible ones,
    in ``CUDA_VISIBLE_DEVICES`` order (indices or UUIDs)."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if index < len(visible):
        entry = visible[index]
        return nvml.nvmlDeviceGetHandleByIndex(int(entry)) if entry.isdigit() else nvml.nvmlDeviceGetHandleByUUID(entry)
    return nvml.nvmlDeviceGetHandleByIndex(index)
