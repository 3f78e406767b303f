"""GPU telemetry on a machine without one: a fake NVML and a fake allocator stand in for the driver."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from lgcn_tui.contract import events as ev
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.run.telemetry import GpuTelemetry
from lgcn_tui.sinks.jsonl import load_events
from lgcn_tui.ui.components.gpu import gpu_text

CUDA = torch.device("cuda:1")


class Clock:
    """Time that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fake_nvml(unsupported: tuple[str, ...] = ()) -> types.ModuleType:
    """``pynvml`` as a driver answers it: handles by index, figures per handle; names in
    ``unsupported`` raise ``NVMLError`` as a MIG slice does for utilisation."""
    nvml = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def read(name, value):
        def call(handle, *args):
            if name in unsupported:
                raise NVMLError("Not Supported")
            assert handle == ("handle", 5)  # CUDA device 1 is NVML's 5 under CUDA_VISIBLE_DEVICES=3,5
            return value
        return call

    nvml.NVMLError = NVMLError
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetHandleByIndex = lambda index: ("handle", index)
    nvml.nvmlDeviceGetUtilizationRates = read("utilization", types.SimpleNamespace(gpu=87, memory=40))
    nvml.nvmlDeviceGetMemoryInfo = read("memory", types.SimpleNamespace(used=31_200_000_000, total=79_600_000_000))
    nvml.nvmlDeviceGetPowerUsage = read("power", 310_400)  # milliwatts
    nvml.nvmlDeviceGetTemperature = read("temperature", 64)
    return nvml


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> Clock:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    return Clock()


def allocator(device: torch.device) -> tuple[int, int]:
    assert device == CUDA
    return 28_100_000_000, 36_000_000_000


def test_a_sample_carries_nvml_and_allocator_figures_at_most_once_a_second(gpu: Clock,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    telemetry = GpuTelemetry(clock=gpu, memory=allocator)
    (sample,) = telemetry.events(CUDA, 2, 150)
    assert isinstance(sample, ev.GpuSample) and (sample.epoch, sample.step) == (2, 150)
    assert (sample.utilization, sample.memory_used, sample.memory_total) == (87.0, 31_200_000_000, 79_600_000_000)
    assert (sample.allocated, sample.peak_allocated) == (28_100_000_000, 36_000_000_000)
    assert sample.power_w == pytest.approx(310.4) and sample.temperature_c == 64.0
    gpu.now += 0.6
    assert telemetry.events(CUDA, 2, 160) == []
    gpu.now += 0.4
    assert [type(e) for e in telemetry.events(CUDA, 2, 170)] == [ev.GpuSample]
    assert ev.event_from_dict(sample.to_dict()) == sample  # as metrics.jsonl reads it back
    assert GpuTelemetry(clock=gpu, memory=allocator).events(torch.device("cpu"), 0, 0) == []


def test_without_the_extra_one_warning_then_the_allocator_alone(gpu: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    telemetry = GpuTelemetry(clock=gpu, memory=allocator)
    warning, sample = telemetry.events(CUDA, 0, 0)
    assert isinstance(warning, ev.Message) and warning.level == "warning"
    assert "\n" not in warning.text and "lgcn-tui[gpu]" in warning.text
    assert sample.allocated == 28_100_000_000 and sample.utilization is None and sample.memory_total is None
    gpu.now += 1
    assert [type(e) for e in telemetry.events(CUDA, 0, 5)] == [ev.GpuSample]  # warned once


def test_a_figure_the_device_does_not_report_is_left_out(gpu: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(unsupported=("utilization", "power")))
    (sample,) = GpuTelemetry(clock=gpu, memory=allocator).events(CUDA, 0, 0)
    assert sample.utilization is None and sample.power_w is None and sample.memory_used == 31_200_000_000
    assert gpu_text(sample, 200).startswith("[#8a8a8a]mem[/] 31.2/79.6 GB")


def test_the_line_drops_figures_from_the_right_but_keeps_the_allocator() -> None:
    sample = ev.GpuSample(epoch=0, step=0, allocated=28_100_000_000, peak_allocated=36_000_000_000, utilization=87,
                          memory_used=31_200_000_000, memory_total=79_600_000_000, power_w=310.4, temperature_c=64)
    plain = "gpu 87% │ mem 31.2/79.6 GB │ alloc 28.1 GB peak 36.0 │ 310 W │ 64 °C"
    assert gpu_text(sample, 78).replace("[#8a8a8a]", "").replace("[/]", "") == plain
    narrow = gpu_text(sample, 40).replace("[#8a8a8a]", "").replace("[/]", "")
    assert narrow == "gpu 87% │ alloc 28.1 GB peak 36.0"
    assert gpu_text(sample, 5).replace("[#8a8a8a]", "").replace("[/]", "") == "alloc 28.1 GB peak 36.0"


def test_a_run_writes_its_samples_to_metrics_jsonl(tiny_config, gpu: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    run = Run(tiny_config("run.epochs=2"), preset="test")
    telemetry = GpuTelemetry(clock=gpu, memory=allocator)
    calls = []

    def on_cuda(device: torch.device, epoch: int, step: int) -> list[ev.Event]:
        calls.append(step)
        gpu.now += 0.25  # four publish points a second
        return telemetry.events(CUDA, epoch, step)

    run.gpu.events = on_cuda  # the CPU run samples as if it trained on CUDA device 1
    assert run.complete() == "done"
    assert run.run_dir is not None
    samples = [e for e in load_events(run.run_dir.metrics) if isinstance(e, ev.GpuSample)]
    assert len(calls) > 8 and [s.step for s in samples] == calls[::4]  # once a second of the clock
    assert samples[-1].utilization == 87.0 and samples[-1].peak_allocated == 36_000_000_000
