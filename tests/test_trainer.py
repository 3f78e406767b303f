"""The run as a user steers it: exact resume, commands, NaN handling, checkpoints on disk."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lgcn_tui import rundir
from lgcn_tui.contract import commands as cmd
from lgcn_tui.contract import events as ev
from lgcn_tui.errors import UserError
from lgcn_tui.run import checkpoints as ckpt
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.sinks.jsonl import read_events


class Recorder:
    """Keeps every event; optionally sends commands when a given step has been published."""

    def __init__(self, run: Run | None = None, at: dict[int, list[cmd.Command]] | None = None) -> None:
        self.events: list[ev.Event] = []
        self.run, self.at = run, at or {}
        self.changed = threading.Condition()

    def handle(self, event: ev.Event) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()
        if isinstance(event, ev.StepMetrics) and self.run is not None:
            for command in self.at.pop(event.step, []):
                self.run.send(command)

    def wait_for(self, seen: Callable[[ev.Event], bool], timeout: float = 30) -> ev.Event:
        """The first event for which ``seen`` holds, waiting for it to be published."""
        with self.changed:
            assert self.changed.wait_for(lambda: any(seen(e) for e in self.events), timeout)
            return next(e for e in self.events if seen(e))

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def of(self, kind: type[ev.Event]) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def start(cfg, at=None, resume_from: Path | None = None, run: rundir.RunDir | None = None):
    recorder = Recorder(at=at)
    trainer = Run(cfg, preset="test", sinks=[recorder], resume=run.path if run else None, checkpoint=resume_from)
    recorder.run = trainer
    trainer.setup()
    assert trainer.run_dir is not None
    return trainer, recorder, trainer.run_dir


def evals(events: list[dict]) -> list[tuple[int, str, dict]]:
    return [(e["epoch"], e["split"], e["metrics"]) for e in events if e["event"] == "eval" and e["model"] == "lightgcn"]


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (this case runs on GPU boxes)")
NOISY = ['objective.terms=["reg", "xsimgcl"]', "objective.cl_noisy_ranking=true"]
ADAPTER = ["model.adapter_residual=true", "model.user_init=item_mean", "data.cold_items=0.2"]


@pytest.mark.parametrize(("mode", "extra"), [
    ("learnable", []),
    ("residual", []),
    ("adapter", ADAPTER),
    pytest.param("learnable", NOISY, id="learnable-xsimgcl-noise"),
    pytest.param("learnable", ["run.device=cuda", "run.deterministic=true", *NOISY], id="cuda", marks=CUDA),
    pytest.param("residual", ["run.device=cuda", "run.deterministic=true", "run.amp=false"], id="cuda-fp32",
                 marks=CUDA),
])
def test_interrupted_and_resumed_run_equals_uninterrupted(tiny_config, mode: str, extra: list[str]) -> None:
    """Bit for bit, the step noise included (its generator's state rides in the checkpoint); on
    CUDA with ``run.deterministic``, whose kernels add up in a fixed order."""
    cfg = tiny_config(f"model.item_mode={mode}", "optim.item_start_epoch=1", "optim.warmup_epochs=1", *extra)
    whole, _, run_a = start(cfg)
    assert whole.train() == "done"
    whole.cleanup()

    steps = whole.steps_per_epoch
    stop_at = steps + steps // 2  # in the middle of the second epoch
    half, _, run_b = start(cfg, at={stop_at: [cmd.SetLr("item", 2e-3), cmd.Stop()]})
    assert half.train() == "stopped"
    half.cleanup()
    latest = ckpt.latest(run_b.checkpoints)
    assert latest is not None and latest.name.endswith("-stop.pt")

    resumed, recorder, _ = start(cfg, resume_from=latest, run=run_b)
    assert resumed.state.step == stop_at + 1 and resumed.state.epoch == 1
    assert resumed.train() == "done"
    resumed.cleanup()

    # The uninterrupted reference must see the same LR change at the same step.
    again, _, run_c = start(cfg, at={stop_at: [cmd.SetLr("item", 2e-3)]})
    again.train()
    again.cleanup()
    expected = read_events(run_c.metrics)
    got = read_events(run_b.metrics)
    assert evals(got) == evals(expected)
    losses = lambda events: [(e["step"], e["loss"], e["lr_item"], e["alpha"]) for e in events if e["event"] == "step"]
    assert losses(got) == losses(expected)
    assert [e["resumed"] for e in got if e["event"] == "run_started"] == [False, True]
    assert evals(read_events(run_a.metrics)) != evals(expected)  # the LR change did matter


def test_pause_holds_the_step_counter_until_resume(tiny_config) -> None:
    trainer, recorder, _ = start(tiny_config(), at={2: [cmd.Pause()]})
    thread = threading.Thread(target=trainer.train)
    thread.start()
    try:
        recorder.wait_for(lambda e: isinstance(e, ev.StateChanged) and e.state == "paused")
        # A paused run still takes commands: the checkpoint it saves shows where it holds.
        trainer.send(cmd.SaveCheckpoint())
        saved = recorder.wait_for(lambda e: isinstance(e, ev.CheckpointSaved) and e.reason == "manual")
        assert saved.step == 3 and len(recorder.of(ev.StepMetrics)) == 3
        trainer.send(cmd.Resume())
        recorder.wait_for(lambda e: isinstance(e, ev.StateChanged) and e.state == "done")
        assert len(recorder.of(ev.StepMetrics)) == trainer.total_steps
    finally:
        trainer.send(cmd.Stop(save=False))
        thread.join()
        trainer.cleanup()


def test_checkpoint_and_set_lr_commands(tiny_config) -> None:
    trainer, recorder, run = start(tiny_config(), at={1: [cmd.SetLr("user", 0.05), cmd.SaveCheckpoint()]})
    trainer.train()
    trainer.cleanup()
    saved = [e for e in recorder.of(ev.CheckpointSaved) if e.reason == "manual"]
    assert len(saved) == 1 and Path(saved[0].path).is_file() and saved[0].step == 2
    step2 = [e for e in recorder.of(ev.StepMetrics) if e.step == 2][0]
    assert step2.lr_user == pytest.approx(0.05)
    changed = recorder.of(ev.LrChanged)
    assert [(c.group, c.lr, c.step) for c in changed] == [("user", 0.05, 2)]
    payload = ckpt.load(Path(saved[0].path))
    assert payload["schedule"]["lr_scale"]["user"] != 1.0


def test_checkpoints_are_pruned_to_the_last_few_plus_best(tiny_config) -> None:
    trainer, _, run = start(tiny_config("run.epochs=5", "checkpoint.keep_last=2"))
    trainer.train()
    trainer.cleanup()
    names = sorted(p.name for p in run.checkpoints.iterdir())
    epoch_files = [n for n in names if n.endswith("-epoch.pt")]
    assert len(epoch_files) == 2 and "best.pt" in names
    assert epoch_files[-1] == f"step-{trainer.total_steps:09d}-epoch.pt"
    assert not [n for n in names if n.startswith(".")]  # no temporary files left behind


def poison_at(trainer: Run, call: int) -> None:
    """Make the model's first user vector NaN during one call of ``_step``, as a blown-up weight would."""
    original, calls = trainer._step, {"n": 0}

    def poisoned(*batch):
        calls["n"] += 1
        if calls["n"] != call:
            return original(*batch)
        with torch.no_grad():
            trainer.model.user[0, 0] = float("nan")
        try:
            return original(*batch)
        finally:
            with torch.no_grad():
                trainer.model.user[0, 0] = 0.0

    trainer._step = poisoned  # type: ignore[method-assign]


def test_nan_under_the_pause_policy_pauses_with_a_checkpoint_of_the_last_good_state(tiny_config) -> None:
    trainer, recorder, run = start(tiny_config("divergence.policy=pause", "divergence.keep_every=2"))
    poison_at(trainer, 4)  # step 3; the last copies were taken before steps 0 and 2
    good = trainer.model.user.detach().clone()
    resume_on_error = Recorder()
    resume_on_error.handle = lambda e: (  # type: ignore[method-assign]
        trainer.send(cmd.Resume()) if isinstance(e, ev.StateChanged) and e.state == "paused" else None)
    trainer.sinks.append(resume_on_error)
    trainer.train()
    trainer.cleanup()
    errors = [m for m in recorder.of(ev.Message) if m.level == "error"]
    assert len(errors) == 1 and "NaN" in errors[0].text and errors[0].checkpoint
    assert "lgcn-tui train --resume" in errors[0].text and "--set optim.item_lr=" in errors[0].text
    states = [s.state for s in recorder.of(ev.StateChanged)]
    assert "paused" in states and states[-1] == "done"
    saved = ckpt.load(Path(errors[0].checkpoint))
    assert torch.isfinite(saved["model"]["user"]).all()
    assert saved["state"]["step"] == 0, "the older of the last two good states, from before the climb"
    assert torch.equal(saved["model"]["user"], good), "the saved state is the one kept before step 0"
    steps = [e.step for e in recorder.of(ev.StepMetrics)]
    assert steps == [0, 1, 2, *range(trainer.total_steps)], "steps 0-2 are trained again from the good state"
    assert not torch.equal(good, trainer.model.user.detach())  # training went on after the resume


def test_headless_default_stops_a_diverged_run_and_names_how_to_resume(tiny_config) -> None:
    trainer, recorder, run = start(tiny_config())
    poison_at(trainer, 3)
    assert trainer.train() == "stopped"
    trainer.cleanup()
    assert trainer.diverged and f"lgcn-tui train --resume {run.path}" in trainer.diverged
    saved = [e for e in recorder.of(ev.CheckpointSaved) if e.reason == "diverged"]
    assert len(saved) == 1 and torch.isfinite(ckpt.load(Path(saved[0].path))["model"]["user"]).all()


class Spiky:
    """The objective, with the loss of one step multiplied: a divergence that is still finite."""

    def __init__(self, objective, at: int, factor: float) -> None:
        self.objective, self.at, self.factor, self.calls = objective, at, factor, 0
        self.batch = objective.batch

    def __call__(self, batch, ctx):
        self.calls += 1
        total, terms = self.objective(batch, ctx)
        if self.calls == self.at:
            total = total * self.factor
        return total, terms


def test_a_loss_spike_rolls_back_and_halves_the_learning_rates(tiny_config) -> None:
    trainer, recorder, _ = start(tiny_config("divergence.policy=rollback", "divergence.keep_every=4",
                                             "divergence.spike_window=10", "run.epochs=4"))
    trainer.objective = Spiky(trainer.objective, at=15, factor=1000.0)
    assert trainer.train() == "done"
    trainer.cleanup()
    warnings = [m.text for m in recorder.of(ev.Message) if m.level == "warning"]
    assert any("the loss spiked to" in w and "at step 14; rolled back to step 8" in w for w in warnings), warnings
    rolled = [e for e in recorder.of(ev.LrChanged) if e.source == "rollback"]
    assert [e.group for e in rolled] == ["user", "item"] and all(e.step == 8 for e in rolled)
    after = [e for e in recorder.of(ev.StepMetrics) if e.step == 20][-1]
    plan = rolled[-1].schedule
    assert after.lr_user == pytest.approx(plan.lr("user", 20)) and plan.lr_scale == {"user": 0.5, "item": 0.5}


def test_stop_request_interrupts_evaluation_without_results(tiny_config) -> None:
    trainer, recorder, _ = start(tiny_config("eval.chunk_users=1"))
    trainer.send(cmd.Stop())
    trainer.evaluate()
    trainer.cleanup()
    assert recorder.of(ev.EvalResult) == []


def test_metrics_file_replays_into_the_same_events(tiny_config) -> None:
    trainer, recorder, run = start(tiny_config("run.epochs=1"))
    trainer.train()
    trainer.cleanup()
    replayed = [ev.event_from_dict(line) for line in read_events(run.metrics)]
    assert [type(e) for e in replayed] == [type(e) for e in recorder.events]
    assert replayed[-1] == recorder.events[-1]


def test_popularity_baseline_is_beaten_on_the_demo_data(tiny_config) -> None:
    trainer, recorder, _ = start(tiny_config("run.epochs=6", "data.synthetic_users=400",
                                                    "data.synthetic_items=300", "optim.user_lr=1e-2",
                                                    "optim.item_lr=3e-3"))
    trainer.train()
    trainer.cleanup()
    results = recorder.of(ev.EvalResult)
    baseline = [r.metrics["recall@20"] for r in results if r.model == "popularity" and r.split == "test"][0]
    final = [r.metrics["recall@20"] for r in results if r.model == "lightgcn" and r.split == "test"][-1]
    assert final > 1.5 * baseline


def test_short_real_run_on_movielens_beats_popularity(tmp_path: Path, shared_data) -> None:
    from lgcn_tui import config

    path = shared_data("ml-100k")
    cfg = config.resolve(config.load_toml(Path("presets/ml100k.toml")), "ml100k.toml",
                         [f'data.path="{path}"', f'run.out_dir="{tmp_path}"', "run.epochs=4", "eval.every=4",
                          "optim.user_lr=5e-3", "optim.item_lr=5e-3", "optim.warmup_epochs=0", "eval.ks=[20]",
                          "eval.sim_pairs=0"])
    trainer, recorder, _ = start(cfg)
    trainer.train()
    trainer.cleanup()
    results = {(r.model, r.split): r.metrics["recall@20"] for r in recorder.of(ev.EvalResult)}
    assert trainer.dataset.stats()["users"] == 943
    for split in ("valid", "test"):
        assert results[("lightgcn", split)] > 1.1 * results[("popularity", split)], results


@pytest.mark.parametrize("overrides", [
    ["optim.name=adam"],
    ["optim.name=adafactor", "optim.user_lr=1e-2", "optim.item_lr=1e-2"],
    ["graph.norm=mean", "model.combine=last"],
    ["model.item_mode=frozen"],
    ["data.pca_dim=8"],
])
def test_training_variants_lower_the_loss(tiny_config, overrides: list[str]) -> None:
    trainer, recorder, _ = start(tiny_config("run.epochs=4", "optim.warmup_epochs=0", *overrides))
    assert trainer.train() == "done"
    trainer.cleanup()
    losses = [e.mean_loss for e in recorder.of(ev.EpochEnd)]
    assert losses[-1] < losses[0]
    if "data.pca_dim=8" in overrides:
        assert trainer.model.dim == 8
    if "model.item_mode=frozen" in overrides:
        assert torch.equal(trainer.model.item_vectors().to(trainer.model.item_start.dtype), trainer.model.item_start)


def test_item_training_waits_for_its_start_epoch(tiny_config) -> None:
    trainer, recorder, _ = start(tiny_config("optim.item_start_epoch=2", "run.epochs=3"))
    start_items = trainer.model.item.detach().clone()
    trainer.train()
    trainer.cleanup()
    steps = recorder.of(ev.StepMetrics)
    early = [s for s in steps if s.epoch < 2]
    assert all(s.lr_item == 0.0 and s.grad_item == 0.0 for s in early)
    assert all(s.lr_item > 0 for s in steps if s.epoch == 2)
    assert not torch.equal(start_items, trainer.model.item.detach())


def test_gradients_are_clipped_to_the_max_norm_before_the_step(tiny_config) -> None:
    trainer, recorder, _ = start(tiny_config("optim.clip_norm=0.001", "run.epochs=1"))
    seen: list[float] = []
    step = trainer.optimizer.step

    def checked_step(*args, **kwargs):
        """The gradients the update used: the fused optimiser scales them in place as it steps."""
        result = step(*args, **kwargs)
        grads = [p.grad for p in (trainer.model.user, trainer.model.item) if p.grad is not None]
        seen.append(float(torch.sqrt(sum(g.pow(2).sum() for g in grads))))
        return result

    trainer.optimizer.step = checked_step  # type: ignore[method-assign]
    trainer.train()
    trainer.cleanup()
    before = [(s.grad_user ** 2 + s.grad_item ** 2) ** 0.5 for s in recorder.of(ev.StepMetrics)]
    assert min(before) > 0.001  # the recorded norms are the unclipped ones
    assert max(seen) == pytest.approx(0.001, rel=1e-3)


def test_recorded_gradient_norms_are_the_float64_norms(tiny_config) -> None:
    trainer, recorder, _ = start(tiny_config("optim.clip_norm=0", "run.epochs=1"))
    seen: list[tuple[float, float]] = []
    step = trainer.optimizer.step

    def checked_step(*args, **kwargs):
        seen.append(tuple(float(p.grad.double().norm()) for p in (trainer.model.user, trainer.model.item)))
        return step(*args, **kwargs)

    trainer.optimizer.step = checked_step  # type: ignore[method-assign]
    trainer.train()
    trainer.cleanup()
    recorded = [(s.grad_user, s.grad_item) for s in recorder.of(ev.StepMetrics)]
    assert len(recorded) == len(seen) > 0
    for mine, exact in zip(recorded, seen):
        assert mine == pytest.approx(exact, rel=1e-5)


def test_run_threads_sets_torch_threads_and_shows_in_the_device_label(tiny_config) -> None:
    before = torch.get_num_threads()
    try:
        wanted = before + 1  # never torch's default, so the test sees the key take effect
        trainer, recorder, _ = start(tiny_config(f"run.threads={wanted}", "run.epochs=1"))
        trainer.train()
        trainer.cleanup()
        assert torch.get_num_threads() == wanted
        assert recorder.of(ev.RunStarted)[0].device == f"cpu ({wanted} threads)"
    finally:
        torch.set_num_threads(before)


def test_run_threads_must_not_be_negative(tiny_config) -> None:
    with pytest.raises(UserError, match="run.threads"):
        tiny_config("run.threads=-1")


def test_a_checkpoint_of_another_format_version_is_refused_naming_both(tiny_config) -> None:
    trainer, _, run = start(tiny_config("run.epochs=1"))
    trainer.train()
    trainer.cleanup()
    path = ckpt.latest(run.checkpoints)
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "version": 1}, path)
    with pytest.raises(UserError) as caught:
        ckpt.load(path)
    assert f"checkpoint {path} has format version 1, this lgcn-tui reads version 2" in str(caught.value)


class Runs:
    """Pickled into a file, this would call ``print`` on load: a checkpoint must never run code."""

    def __reduce__(self):
        return (print, ("code ran while loading a checkpoint",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "step-000000001-epoch.pt"
    torch.save({"version": 2, "model": Runs()}, path)
    with pytest.raises(UserError, match=f"checkpoint {path} cannot be read"):
        ckpt.load(path)
    assert "code ran" not in capsys.readouterr().out


def steps_until_stop(recorder: Recorder) -> tuple[int, int]:
    stopped = [e for e in recorder.of(ev.StateChanged) if e.state == "stopped"]
    return len(recorder.of(ev.StepMetrics)), stopped[0].step


def test_commands_are_taken_at_publish_points_every_n_steps(tiny_config, monkeypatch) -> None:
    from lgcn_tui.run import lifecycle

    monkeypatch.setattr(lifecycle, "COMMAND_INTERVAL", 1e9)  # only the step count decides here
    trainer, recorder, _ = start(tiny_config("run.publish_every=4"), at={1: [cmd.Stop(save=False)]})
    assert trainer.train() == "stopped"
    trainer.cleanup()
    # Steps 0-3 leave together at the publish point after step 3, where the stop sent on seeing step 1 is taken.
    assert steps_until_stop(recorder) == (4, 4)


def test_commands_are_taken_at_least_once_a_second_whatever_the_step_count(tiny_config, monkeypatch) -> None:
    from lgcn_tui.run import lifecycle

    monkeypatch.setattr(lifecycle, "COMMAND_INTERVAL", 0.0)  # a second has always passed
    trainer, recorder, _ = start(tiny_config("run.publish_every=1000"), at={1: [cmd.Stop(save=False)]})
    assert trainer.train() == "stopped"
    trainer.cleanup()
    assert steps_until_stop(recorder) == (2, 2)


def test_interval_checkpoints_are_written_by_step_and_pruned_with_the_epoch_ones(tiny_config) -> None:
    trainer, recorder, run = start(tiny_config("checkpoint.every_steps=2", "checkpoint.keep_last=3"))
    trainer.train()
    trainer.cleanup()
    spe = trainer.steps_per_epoch
    written = [(e.reason, e.step) for e in recorder.of(ev.CheckpointSaved) if e.reason in ("interval", "epoch")]
    want = sorted([("interval", s) for s in range(2, trainer.total_steps, 2) if s % spe]
                  + [("epoch", s) for s in range(spe, trainer.total_steps + 1, spe)], key=lambda x: x[1])
    assert written == want
    kept = [(reason, step) for step, reason, _ in ckpt.listed(run.checkpoints)]
    assert kept == [(reason, step) for reason, step in want[-3:]]


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before_and_says_so(tiny_config) -> None:
    trainer, _, run = start(tiny_config("run.epochs=2"))
    trainer.train()
    trainer.cleanup()
    (_, _, older), (_, _, newest) = ckpt.listed(run.checkpoints)[-2:]
    newest.write_bytes(newest.read_bytes()[:1000])  # a kill during a copy, a full disk
    resumed, recorder, _ = start(tiny_config("run.epochs=2"), run=run)
    assert resumed.state.step == trainer.steps_per_epoch
    resumed.train()
    resumed.cleanup()
    notes = [m.text for m in recorder.of(ev.Message) if m.level == "warning"]
    assert any(f"checkpoint {newest} cannot be read" in n and f"resuming from {older.name}" in n for n in notes)


def test_no_checkpoint_that_loads_is_an_error_naming_each(tiny_config) -> None:
    trainer, _, run = start(tiny_config("run.epochs=1", "eval.every=5"))
    trainer.train()
    trainer.cleanup()
    for _, _, path in ckpt.listed(run.checkpoints):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError) as caught:
        start(tiny_config("run.epochs=1"), run=run)
    assert f"{run.checkpoints} holds no checkpoint to resume from" in str(caught.value)
    assert "cannot be read" in str(caught.value)


def test_a_full_disk_is_named_and_leaves_no_partial_file(tiny_config, monkeypatch) -> None:
    import errno
    import os

    trainer, _, run = start(tiny_config("run.epochs=1"))

    def full_disk(payload, path) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(UserError) as caught:
        trainer.save_checkpoint("manual")
    trainer.cleanup()
    message = str(caught.value)
    assert f"no space left on {run.checkpoints}" in message and "need about" in message and "MB free" in message
    assert list(run.checkpoints.iterdir()) == []


def test_a_run_resumed_mid_epoch_can_still_go_back_to_a_good_state(tiny_config) -> None:
    cfg = tiny_config("divergence.keep_every=1000")
    half, _, run = start(cfg, at={4: [cmd.Stop()]})
    assert half.train() == "stopped"
    half.cleanup()
    resumed, recorder, _ = start(cfg, run=run)
    assert resumed.state.step_in_epoch == 5
    poison_at(resumed, 2)
    assert resumed.train() == "stopped"
    resumed.cleanup()
    saved = [e for e in recorder.of(ev.CheckpointSaved) if e.reason == "diverged"]
    assert [e.step for e in saved] == [5], "the state the resume started from"


def test_interval_checkpoints_by_time_inside_an_epoch(tiny_config) -> None:
    trainer, recorder, _ = start(tiny_config("checkpoint.every_minutes=1e-9", "run.epochs=1"))
    trainer.train()
    trainer.cleanup()
    steps = [e.step for e in recorder.of(ev.CheckpointSaved) if e.reason == "interval"]
    assert steps == list(range(1, trainer.steps_per_epoch)), "every step but the epoch's last, which has its own"


def test_the_guard_copies_the_state_and_reuses_the_copy_that_drops_out(tiny_config) -> None:
    """Kept states are copies (training on leaves them as they were) and a third keep writes
    into the buffers of the first, which drops out: host memory is taken twice, not each time."""
    trainer, _, _ = start(tiny_config("run.epochs=1"))
    model, guard = trainer.model, trainer.guard
    keep = lambda step: guard.keep(step, step + 1, model, trainer.optimizer, trainer.schedule)  # noqa: E731
    keep(0)
    first = guard.kept[0].model["user"]
    with torch.no_grad():
        model.user.add_(1.0)
    keep(1)
    assert torch.equal(guard.kept[0].model["user"] + 1.0, model.user.detach())
    with torch.no_grad():
        model.user.add_(1.0)
    keep(2)
    trainer.cleanup()
    assert [g.step for g in guard.kept] == [1, 2]
    assert guard.kept[1].model["user"].data_ptr() == first.data_ptr()
    assert torch.equal(guard.kept[1].model["user"], model.user.detach())
    assert torch.equal(guard.last_good().model["user"] + 1.0, model.user.detach())
