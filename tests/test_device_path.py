"""The step as an accelerator runs it, checked on the CPU: between publish points nothing
makes the host wait for the device.

On CUDA a value read back (``item``, ``tolist``, ``float(t)``) or an op whose output size
depends on the data (``unique``, ``nonzero``, ``bincount``, boolean-mask indexing) stops the
host until every queued kernel has run. A dispatch mode sees every op the step runs, so on
the CPU it can fail on exactly those; the run is switched to the accelerator's way of
reaching the batch's rows (``Adjacency.slice_rows = False``), the path CUDA takes.
"""

from __future__ import annotations

import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import Recording
from lgcn_tui.contract import events as ev
from lgcn_tui.run.lifecycle import Run

aten = torch.ops.aten

WAITS = {
    aten._local_scalar_dense: "reads a value back to the host (item, tolist, float(), int(), bool())",
    aten.nonzero: "has a data-dependent output size",
    aten._unique: "has a data-dependent output size",
    aten._unique2: "has a data-dependent output size",
    aten.unique_dim: "has a data-dependent output size",
    aten.unique_consecutive: "has a data-dependent output size",
    aten.bincount: "has a data-dependent output size",
    aten.masked_select: "has a data-dependent output size",
}


class HostWaits(TorchDispatchMode):
    """Records every op that would make the host wait for the device, with where it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        why = WAITS.get(func.overloadpacket)
        if func.overloadpacket is aten.index and any(
                i is not None and i.dtype == torch.bool for i in args[1]):
            why = "indexes by a boolean mask (data-dependent output size)"
        if func.overloadpacket is aten.repeat_interleave and kwargs.get("output_size") is None:
            why = "repeat_interleave without output_size (data-dependent output size)"
        if why is not None:
            ours = [f for f in traceback.extract_stack() if "lgcn_tui" in f.filename]
            where = f"{ours[-1].filename.split('lgcn_tui')[-1]}:{ours[-1].lineno}" if ours else "?"
            self.found.append(f"{func} {why}, at {where}")
        return func(*args, **kwargs)


OBJECTIVES = {
    "bpr": [],
    "softmax": ['objective.loss="softmax"'],
    "simgcl": ['objective.terms=["reg", "simgcl"]'],
    "xsimgcl-noisy-ranking": ['objective.terms=["reg", "xsimgcl"]', "objective.cl_noisy_ranking=true"],
}


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("item_mode", ["learnable", "residual"])
def test_steps_between_publish_points_never_wait_for_the_device(tiny_config, objective: str,
                                                                item_mode: str) -> None:
    cfg = tiny_config("run.epochs=1", "run.publish_every=1000", "optim.clip_norm=0.01",
                      f"model.item_mode={item_mode}", *OBJECTIVES[objective])
    run = Run(cfg, preset="test")
    run.setup()
    run.adj.slice_rows = False
    mode, step, steps = HostWaits(), run._step, []

    def watched(*args, **kwargs):
        with mode:
            record = step(*args, **kwargs)
        steps.append(record)
        return record

    run._step = watched  # type: ignore[method-assign]
    recording = Recording()
    run.sinks.append(recording)
    assert run.train() == "done"
    run.cleanup()
    seen = recording.of(ev.StepMetrics)
    assert mode.found == [], "\n".join(mode.found)
    assert len(steps) == run.steps_per_epoch > 1
    assert [m.step for m in seen] == list(range(run.steps_per_epoch)), "every step's figures still reach the sinks"
    assert all(m.loss > 0 and m.grad_user > 0 for m in seen)


def test_the_host_path_is_the_one_that_waits(tiny_config) -> None:
    """The check can fail: the CPU's own path (scipy's row slice over the batch's unique rows)
    asks the host for the batch's size, and the mode names the op and the line."""
    run = Run(tiny_config("run.epochs=1"), preset="test")
    run.setup()
    users, pos, neg = run.sampler.epoch(run.generator)
    mode = HostWaits()
    with mode:
        run._step(users[:128], pos[:128], neg[:128])
    run.cleanup()
    assert any("unique" in f and "model/lightgcn.py" in f for f in mode.found), mode.found


def test_kernel_auto_is_measured_logged_and_recorded_for_a_resume(tiny_config) -> None:
    from lgcn_tui import rundir

    run = Run(tiny_config("run.epochs=1"), preset="test")
    assert run.complete() == "done"
    assert run.run_dir is not None
    chosen = rundir.RunDir(run.run_dir.path).load_config().graph.kernel
    assert chosen in ("bag", "sparse") and run.adj.kernel == chosen
    messages = [e["text"] for e in _events(run) if e["event"] == "message"]
    assert any(m.startswith(f"graph.kernel = auto chose {chosen!r} (") and " ms per product at d=" in m
               for m in messages), messages
    assert any("run.amp does nothing on the CPU" in m for m in messages), messages
    resumed = Run(rundir.RunDir(run.run_dir.path).load_config(), preset="test", resume=run.run_dir.path)
    resumed.setup()
    resumed.cleanup()
    assert resumed.adj.kernel == chosen
    assert not any("graph.kernel = auto" in m for m in (*resumed._facts, *resumed._notices))


def _events(run: Run) -> list[dict]:
    from lgcn_tui.sinks.jsonl import read_events

    assert run.run_dir is not None
    return read_events(run.run_dir.metrics)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (this case runs on GPU boxes)")
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_on_cuda_steps_run_under_sync_debug_mode_error(tiny_config, objective: str) -> None:
    """CUDA's own check: any synchronising call inside a step raises."""
    run = Run(tiny_config("run.device=cuda", "run.epochs=1", *OBJECTIVES[objective]), preset="test")
    run.setup()
    try:
        users, pos, neg = (run._on_device(t) for t in run.sampler.epoch(run.generator))
        run._unchecked.append(run._step(users[:128], pos[:128], neg[:128]))  # warm-up: first allocations
        torch.cuda.set_sync_debug_mode("error")
        try:
            for s in range(1, 4):
                run._unchecked.append(run._step(users[s * 128:(s + 1) * 128], pos[s * 128:(s + 1) * 128],
                                                neg[s * 128:(s + 1) * 128]))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    finally:
        run.cleanup()
