"""TensorBoard and W&B sinks, checked by reading back what each wrote with its own reader
against ``metrics.jsonl``: TensorBoard's ``EventAccumulator``, and W&B's offline run file
(records in W&B's LevelDB-log framing, each a ``wandb_internal_pb2.Record``)."""

from __future__ import annotations

import json
import math
import struct
import sys
import time
import zlib
from pathlib import Path

import pytest
from conftest import train_to_end

from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import events as ev
from lgcn_tui.errors import UserError
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.sinks.jsonl import load_events
from lgcn_tui.sinks.offthread import OffThread
from lgcn_tui.sinks.scalars import scalars

Series = dict[str, dict[int, float]]
# A config whose steps carry every kind of scalar: two loss terms and a residual alpha.
LOGGED = ['model.item_mode="residual"']


def expected(run_dir: Path) -> Series:
    """``{tag: {step: value}}`` of the run's ``metrics.jsonl``, the record every logger must match."""
    out: Series = {}
    for event in load_events(run_dir / "metrics.jsonl"):
        for tag, value in scalars(event).items():
            out.setdefault(tag, {})[event.step] = math.nan if value is None else value  # type: ignore[attr-defined]
    return out


def assert_same(got: Series, want: Series, rel: float) -> None:
    assert sorted(got) == sorted(want)
    for tag, points in want.items():
        assert sorted(got[tag]) == sorted(points), tag
        for step, value in points.items():
            assert got[tag][step] == pytest.approx(value, rel=rel, abs=1e-12, nan_ok=True), (tag, step)


def tensorboard_series(log_dir: Path) -> Series:
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = accumulator.EventAccumulator(str(log_dir), size_guidance={accumulator.SCALARS: 0})
    acc.Reload()
    series: Series = {}
    for tag in acc.Tags()["scalars"]:
        points = acc.Scalars(tag)
        assert len({p.step for p in points}) == len(points), f"{tag} holds a step twice"
        series[tag] = {p.step: p.value for p in points}
    return series


def wandb_records(path: Path):
    """The protobuf records of an offline ``.wandb`` file: a 7-byte header, then 32 KiB blocks of
    chunks (CRC-32 seeded with the chunk type, length, type: full, first, middle or last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768  # the block's zero padding
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        assert crc == zlib.crc32(chunk, zlib.crc32(bytes([kind]))), f"corrupt chunk in {path}"
        pending += chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_runs(run_dir: Path) -> list[tuple[str, dict, Series]]:
    """``(run id, config, history)`` of each offline session, oldest first."""
    out = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        run_id, config, series = "", {}, {}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run_id = record.run.run_id
                config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
            elif kind == "config":
                config.update({item.key: json.loads(item.value_json) for item in record.config.update})
            elif kind == "history":
                # A history key is a path: `nested_key`, or `key` when it has one part.
                row = {item.key or ".".join(item.nested_key): json.loads(item.value_json)
                       for item in record.history.item}
                for tag, value in row.items():
                    if not tag.startswith("_"):
                        series.setdefault(tag, {})[row["_step"]] = value
        out.append((run_id, config, series))
    return out


def merged(sessions: list[Series]) -> Series:
    """A later session's value for a step stands in for an earlier one's, as a resume replays steps."""
    out: Series = {}
    for series in sessions:
        for tag, points in series.items():
            out.setdefault(tag, {}).update(points)
    return out


def test_tensorboard_event_files_hold_every_scalar_of_metrics_jsonl(tiny_config) -> None:
    pytest.importorskip("tensorboard")
    run, state = train_to_end(tiny_config(*LOGGED, "log.tensorboard=true"))
    assert state == "done" and run.run_dir is not None
    want = expected(run.run_dir.path)
    assert {"loss", "loss/bpr", "loss/reg", "grad/user", "grad/item", "lr/user", "lr/item", "alpha",
            "valid/recall@20", "test/ndcg@20", "popularity/valid/recall@20", "retention/mean"} <= set(want)
    assert_same(tensorboard_series(run.run_dir.path / "tensorboard"), want, rel=1e-6)  # float32 on disk

    from tensorboard.backend.event_processing.event_accumulator import (
        TENSORS,
        EventAccumulator,
    )

    acc = EventAccumulator(str(run.run_dir.path / "tensorboard"), size_guidance={TENSORS: 0})
    acc.Reload()
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert 'item_mode = "residual"' in text


def test_wandb_offline_run_file_holds_metrics_jsonl_and_the_config(tiny_config) -> None:
    pytest.importorskip("wandb")
    run, state = train_to_end(tiny_config(*LOGGED, 'log.wandb="offline"', 'log.wandb_project="tests"'))
    assert state == "done" and run.run_dir is not None
    [(run_id, config, series)] = wandb_runs(run.run_dir.path)
    assert (run.run_dir.path / "wandb" / "run_id").read_text() == run_id
    assert config["model"]["item_mode"] == "residual" and config["log"]["wandb"] == "offline"
    assert_same(series, expected(run.run_dir.path), rel=1e-12)


class StopAt:
    """Sends ``Stop(save=False)`` once step ``step`` is published: what a kill leaves behind,
    steps logged after the last checkpoint."""

    def __init__(self, step: int) -> None:
        self.step, self.run = step, None

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepMetrics) and event.step == self.step and self.run is not None:
            self.run.send(cmd.Stop(save=False))

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


def step(at: int, loss: float) -> ev.StepMetrics:
    return ev.StepMetrics(epoch=0, step=at, loss=loss, grad_user=1.0, grad_item=1.0, lr_user=1e-3, lr_item=1e-3,
                          alpha=None, terms={"bpr": loss})


def test_tensorboard_keeps_the_steps_after_a_rollback_and_the_evaluation_before_it(tiny_config, tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from lgcn_tui.sinks.tensorboard_log import TensorBoardSink

    board = TensorBoardSink(tmp_path / "tb", tiny_config())
    evaluation = ev.EvalResult(epoch=1, step=3, split="valid", metrics={"recall@20": 0.25})
    for event in [step(0, 1.0), step(1, 0.9), step(2, 0.8), evaluation, step(3, 0.7), step(4, 50.0),
                  step(3, 0.6), step(4, 0.5)]:  # a spike at 4: back to the good state at 3, with other values
        board.handle(event)
    board.close()
    got = tensorboard_series(tmp_path / "tb")
    assert got["loss"] == pytest.approx({0: 1.0, 1: 0.9, 2: 0.8, 3: 0.6, 4: 0.5})
    assert got["valid/recall@20"] == {3: 0.25}


def test_a_resumed_run_goes_on_in_the_same_logs_without_the_steps_it_replays(tiny_config) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    cfg = tiny_config(*LOGGED, "log.tensorboard=true", 'log.wandb="offline"')
    stopper = StopAt(12)  # mid epoch 2; the last checkpoint is epoch 1's, at step 8
    first = Run(cfg, preset="test", sinks=[stopper])
    stopper.run = first
    first.setup()
    try:
        assert first.train() == "stopped"
    finally:
        first.cleanup()
    assert first.run_dir is not None
    logged = tensorboard_series(first.run_dir.path / "tensorboard")
    assert max(logged["loss"]) >= 12 and 8 in logged["valid/recall@20"]

    # Event files and offline run folders are named by the second they were made in, and read in name order.
    time.sleep(1.05 - time.time() % 1)
    _, state = train_to_end(cfg, resume=first.run_dir.path)
    assert state == "done"
    want = expected(first.run_dir.path)
    assert_same(tensorboard_series(first.run_dir.path / "tensorboard"), want, rel=1e-6)
    sessions = wandb_runs(first.run_dir.path)
    assert len(sessions) == 2 and sessions[0][0] == sessions[1][0], "the resume continues the same W&B run"
    assert_same(merged([series for _, _, series in sessions]), want, rel=1e-12)


@pytest.mark.parametrize(("setting", "module", "extra"), [
    ("log.tensorboard=true", "torch.utils.tensorboard", "tensorboard"),
    ('log.wandb="offline"', "wandb", "wandb"),
])
def test_a_logger_whose_extra_is_missing_is_refused_before_the_run_directory_exists(
        tiny_config, tmp_path, monkeypatch, setting: str, module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import` of it now fails
    with pytest.raises(UserError) as caught:
        Run(tiny_config(setting), preset="test").setup()
    message = str(caught.value)
    assert setting.split("=")[0] in message and f"pip install 'lgcn-tui[{extra}]'" in message
    assert not (tmp_path / "runs").exists()


def test_wandb_online_without_a_login_is_refused_before_the_run_directory_exists(
        tiny_config, tmp_path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / "wandb"))
    with pytest.raises(UserError, match=r"log\.wandb = 'online' needs a W&B login.*wandb login.*log\.wandb=offline"):
        Run(tiny_config('log.wandb="online"'), preset="test").setup()
    assert not (tmp_path / "runs").exists()


def test_retention_is_charted_only_when_items_started_from_pretrained_vectors() -> None:
    without = ev.Diagnostics(epoch=1, step=8, retention=None, retention_p10=None, sim_edges=[], sim_counts=[])
    assert scalars(without) == {}
    assert scalars(ev.Diagnostics(epoch=1, step=8, retention=0.9, retention_p10=0.5, sim_edges=[], sim_counts=[])) \
        == {"retention/mean": 0.9, "retention/p10": 0.5}


class Failing:
    def __init__(self) -> None:
        self.handled, self.closed = 0, False

    def handle(self, event: ev.Event) -> None:
        self.handled += 1
        raise OSError("disk full")

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def test_a_logger_that_fails_is_named_once_at_the_next_flush_then_left_alone() -> None:
    target = Failing()
    sink = OffThread(target, "log.wandb", "off")
    for step in range(3):
        sink.handle(ev.EpochEnd(epoch=0, step=step, mean_loss=1.0, seconds=1.0))
    with pytest.raises(RuntimeError, match=r"logging for log\.wandb failed \(OSError: disk full\); "
                                           r"resume with --set log\.wandb=off"):
        sink.flush()
    sink.handle(ev.EpochEnd(epoch=0, step=3, mean_loss=1.0, seconds=1.0))
    sink.flush()  # raised once: the checkpoint the error path writes goes through
    sink.close()
    assert target.handled == 1 and target.closed
