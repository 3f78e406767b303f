"""TensorBoard event files in ``RUN_DIR/tensorboard`` (``log.tensorboard = true``; the ``tensorboard`` extra).

One summary per event holds all its scalars (``sinks.scalars``), built straight from the
protobuf: ``add_scalar`` per tag cost ten times as much. The run's config is written as
text and as hparams when each session starts, so a resume with changed settings shows
them.

Resume and rollback: TensorBoard drops a run's earlier points when it reads a session-start
marker, but by step only, for every tag. A session (and a rollback to a good state) starts
with that marker at its first step, then writes again the evaluation and retention points
at or after that step, which the replayed steps will not produce: an evaluation at the
step a checkpoint was taken precedes the checkpoint. On resume those points come from
``metrics.jsonl``, which the run has cut back to the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event as TbEvent
from tensorboard.compat.proto.event_pb2 import SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from ..config import Config
from ..contract import events as ev
from .scalars import scalars

# How long a point may wait in the writer before `tensorboard --logdir runs` can show it.
FLUSH_SECONDS = 10


class TensorBoardSink:
    """``recorded``: the events a resumed run already logged (its cut-back ``metrics.jsonl``)."""

    def __init__(self, log_dir: Path, cfg: Config, recorded: Iterable[ev.Event] = ()) -> None:
        self.cfg = cfg
        self._writer = SummaryWriter(str(log_dir), flush_secs=FLUSH_SECONDS)
        self._file = self._writer.file_writer
        self._kept: list[tuple[int, float, Summary]] = []
        self._last_step: int | None = None
        for event in recorded:
            values = scalars(event)
            if values and isinstance(event, ev.Progress) and not isinstance(event, ev.StepMetrics):
                self._kept.append((event.step, event.t, _summary(values)))

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._rewind(event.start_step)
            self._write_config(event.start_step)
            return
        values = scalars(event)
        if not values:
            return
        assert isinstance(event, ev.Progress)
        summary = _summary(values)
        if isinstance(event, ev.StepMetrics):
            if self._last_step is not None and event.step <= self._last_step:
                self._rewind(event.step)
            self._last_step = event.step
        else:
            self._kept.append((event.step, event.t, summary))
        self._file.add_summary(summary, event.step, event.t)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def _rewind(self, step: int) -> None:
        """Drop every point at ``step`` or later, then put back the kept evaluation points among them."""
        self._file.add_event(TbEvent(session_log=SessionLog(status=SessionLog.START)), step)
        self._last_step = None
        for at, t, summary in self._kept:
            if at >= step:
                self._file.add_summary(summary, at, t)

    def _write_config(self, step: int) -> None:
        toml = self.cfg.to_toml()
        self._writer.add_text("config", "\n".join("    " + line for line in toml.splitlines()), step)
        for summary in hparams(_flat(self.cfg.to_dict()), {self.cfg.eval.best_metric: 0.0}):
            self._file.add_summary(summary, step)


def _summary(values: dict[str, float]) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"user_lr": 1e-3}}`` → ``{"optim.user_lr": 1e-3}``; lists as text (hparams take scalars only)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out
