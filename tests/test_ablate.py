"""`lgcn-tui ablate` as a user runs it: one run per mode, a table that is each run's own metrics, resumable."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import spawn
from rich.console import Console

from lgcn_tui import ablation, data
from lgcn_tui.errors import UserError
from lgcn_tui.sinks.jsonl import read_events

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "data.synthetic_users=100", "--set", "data.synthetic_items=80", "--set", "data.synthetic_per_user=10",
        "--set", "optim.batch_size=128", "--set", "eval.sim_pairs=300"]
MODE_KEYS = {"frozen": ("pretrained", "frozen"), "learnable": ("pretrained", "learnable"),
             "residual": ("pretrained", "residual"), "adapter": ("pretrained", "adapter"),
             "random": ("xavier", "learnable")}


# One thread: the runs are tiny, and two threads on a busy shared machine are several times slower.
ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def lgcn(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lgcn_tui", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=ENV, check=False)


def ablate_args(out: Path, epochs: int, *extra: str) -> list[str]:
    return ["ablate", "--preset", "demo", *TINY, "--set", f"run.epochs={epochs}", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("ablation") / "demo"
    done = lgcn(*ablate_args(out, 3))
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done


def expected_row(run: Path) -> dict[str, Any]:
    """The best evaluation of a run, found from its files alone: the first maximum of the best metric."""
    cfg = tomllib.loads((run / "config.toml").read_text())
    split, metric = cfg["eval"]["best_metric"].split("/")
    events = read_events(run / "metrics.jsonl")
    evals = [e for e in events if e["event"] == "eval" and e["model"] == "lightgcn"]
    chosen = max((e for e in evals if e["split"] == split), key=lambda e: e["metrics"][metric])
    first = next(e for e in evals if e["split"] == split and e["metrics"][metric] == chosen["metrics"][metric])
    at = {e["split"]: e["metrics"] for e in evals if e["step"] == first["step"]}
    retention = next(e["retention"] for e in events if e["event"] == "diagnostics" and e["step"] == first["step"])
    return {"epoch": first["epoch"], "valid": at["valid"], "test": at["test"], "retention": retention,
            "seconds": sum(e["seconds"] for e in events if e["event"] == "epoch_end")}


def test_one_run_per_mode_and_the_table_is_each_runs_own_metrics(finished) -> None:
    out, done = finished
    rows = {r["mode"]: r for r in csv.DictReader(io.StringIO((out / "results.csv").read_text()))}
    main_table = next(b for b in (out / "results.md").read_text().split("\n\n") if b.startswith("| mode |"))
    markdown = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
                for line in main_table.splitlines() if line.startswith("| ")}
    assert set(rows) == {*MODE_KEYS, "popularity"}
    for mode, (init, item_mode) in MODE_KEYS.items():
        run = out / mode
        cfg = tomllib.loads((run / "config.toml").read_text())
        assert (cfg["model"]["item_init"], cfg["model"]["item_mode"]) == (init, item_mode)
        assert (run / "checkpoints" / "best.pt").is_file()
        assert [e for e in read_events(run / "metrics.jsonl") if e["event"] == "state"][-1]["state"] == "done"

        want = expected_row(run)
        row = rows[mode]
        assert int(row["best_epoch"]) == want["epoch"]
        if init == "xavier":  # nothing pretrained to retain: no figure, not one against the random start
            assert want["retention"] is None and row["retention"] == ""
        else:
            assert float(row["retention"]) == want["retention"]
        assert float(row["train_seconds"]) == pytest.approx(want["seconds"])
        for split in ("valid", "test"):
            for key in ("recall@10", "recall@20", "ndcg@20", "ndcg@50"):
                assert float(row[f"{split}_{key}"]) == want[split][key], (mode, split, key)
        shown = [f"{want[s][m]:.4f}" for s in ("valid", "test") for m in ("recall@20", "ndcg@20")]
        assert markdown[mode][1:6] == [*shown, str(want["epoch"])]
        console_line = next(line for line in done.stdout.splitlines() if line.startswith(f"│ {mode} "))
        assert [c.strip() for c in console_line.strip("│").split("│")][1:6] == [*shown, str(want["epoch"])]
    popularity = {e["split"]: e["metrics"] for e in read_events(out / "random" / "metrics.jsonl")
                  if e["event"] == "eval" and e["model"] == "popularity"}
    assert float(rows["popularity"]["test_recall@20"]) == popularity["test"]["recall@20"]
    assert "best.pt, by valid/recall@20" in done.stdout
    assert (out / "recall.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def overrides(epochs: int) -> list[str]:
    return [*TINY[1::2], f"run.epochs={epochs}"]


def test_running_the_same_command_again_skips_finished_modes(finished) -> None:
    out, _ = finished
    before = {m: hashlib.sha256((out / m / "metrics.jsonl").read_bytes()).hexdigest() for m in MODE_KEYS}
    printed = io.StringIO()
    code = ablation.run_ablation("demo", overrides(3), list(MODE_KEYS), out, Console(file=printed, width=200))
    assert code == 0, printed.getvalue()
    assert printed.getvalue().count("finished earlier") == len(ablation.MODES)
    assert {m: hashlib.sha256((out / m / "metrics.jsonl").read_bytes()).hexdigest() for m in MODE_KEYS} == before


def test_other_settings_on_the_same_directory_are_refused(finished) -> None:
    out, _ = finished
    console = Console(file=io.StringIO())
    with pytest.raises(UserError, match=r"run\.epochs: 3 -> 4.*--out"):
        ablation.run_ablation("demo", overrides(4), list(MODE_KEYS), out, console)
    with pytest.raises(UserError, match="--modes"):
        ablation.run_ablation("demo", [*overrides(3), "model.item_mode=frozen"], ["random"], out, console)
    with pytest.raises(UserError, match=r"learnable holds one run \(an ablation made with one seed\).*--out"):
        ablation.run_ablation("demo", overrides(3), ["learnable"], out, console, seeds=2)
    with pytest.raises(UserError, match="unknown mode.*bogus.*frozen, learnable, residual, adapter, random"):
        ablation.parse_modes(["frozen,bogus"])


def test_report_is_rebuilt_from_the_directory_and_the_plot_is_optional(finished, monkeypatch) -> None:
    out, _ = finished
    table = (out / "results.csv").read_text()
    for name in ("results.csv", "results.md", "recall.png"):
        (out / name).unlink()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    printed = io.StringIO()
    assert ablation.write_report(out, Console(file=printed, width=200)) == 0
    assert (out / "results.csv").read_text() == table
    assert "pip install 'lgcn-tui[plot]'" in printed.getvalue()
    assert not (out / "recall.png").exists() and "recall.png" not in (out / "results.md").read_text()


def test_ctrl_c_keeps_finished_modes_and_the_same_command_resumes(tmp_path: Path) -> None:
    out = tmp_path / "abl"
    # Small batches: 400 steps a mode, so the learnable run is still training when the signal lands.
    args = ablate_args(out, 8, "--modes", "frozen,learnable", "--set", "optim.batch_size=16")
    proc, lines = spawn(args, cwd=ROOT, env=ENV)
    second = out / "learnable" / "metrics.jsonl"
    try:
        lines.until("training demo-learnable in ", timeout=240)
        proc.send_signal(signal.SIGINT)
        output = lines.rest()
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    assert list((out / "learnable" / "checkpoints").glob("*-stop.pt"))
    frozen = (out / "frozen" / "metrics.jsonl").read_bytes()

    resumed = lgcn(*args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "frozen finished earlier" in resumed.stdout and "resuming demo-learnable" in resumed.stdout
    assert (out / "frozen" / "metrics.jsonl").read_bytes() == frozen
    events = read_events(second)
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps == list(range(8 * events[0]["steps_per_epoch"]))
    assert events[-1]["state"] == "done"
    assert not (out / "residual").exists()


@pytest.mark.parametrize(("extra", "width"), [(["data.synthetic_dim=24"], 24),
                                              (["data.synthetic_dim=24", "data.pca_dim=8"], 8)])
def test_random_items_get_the_width_of_the_text_vectors(tmp_path: Path, extra: list[str], width: int) -> None:
    _, configs = ablation.plan("demo", ["model.dim=64", *extra], ["learnable", "random"], tmp_path / "abl")
    assert configs["random"].model.dim == width
    learnable = data.load(configs["learnable"])
    assert learnable.pretrained is not None and learnable.pretrained.shape[1] == width


def test_every_mode_trains_with_the_objective_chosen_by_set(tmp_path: Path) -> None:
    overrides = ['objective.loss="softmax"', 'objective.terms=["reg", "xsimgcl"]', "objective.cl_noisy_ranking=true"]
    _, configs = ablation.plan("demo", overrides, list(MODE_KEYS), tmp_path / "abl")
    for mode, cfg in configs.items():
        assert (cfg.objective.loss, cfg.objective.terms, cfg.objective.cl_noisy_ranking) == \
            ("softmax", ["reg", "xsimgcl"], True), mode


def test_the_table_is_whole_when_the_output_is_not_a_terminal(finished) -> None:
    out, _ = finished
    printed = io.StringIO()
    piped = Console(file=printed, width=80)  # what rich assumes for a pipe or a file
    assert ablation.write_report(out, piped) == 0
    lines = printed.getvalue().splitlines()
    assert "…" not in printed.getvalue()
    assert any("valid Recall@20" in line and "retention" in line for line in lines)
    assert any(line.startswith("│ popularity ") and "baseline" in line for line in lines)
    assert piped.width == 80


def test_run_out_dir_places_the_ablation_as_train_places_a_run_and_out_wins(finished, tmp_path: Path) -> None:
    where, configs = ablation.plan("demo", [f"run.out_dir={tmp_path / 'mine'}", "run.name=x"], ["frozen"], None)
    assert where == tmp_path / "mine" / "ablate-x" and configs["frozen"].run.out_dir == str(where)

    out, _ = finished
    printed = io.StringIO()
    code = ablation.run_ablation("demo", [*overrides(3), f"run.out_dir={tmp_path / 'other'}"], list(MODE_KEYS), out,
                                 Console(file=printed, width=200))
    assert code == 0 and printed.getvalue().count("finished earlier") == len(ablation.MODES)
    assert f"--out {out} wins over --set run.out_dir" in printed.getvalue()
    assert not (tmp_path / "other").exists()


# ----- several seeds -----------------------------------------------------------------------
def test_seeds_change_initialisation_and_sampling_never_the_data(tmp_path: Path) -> None:
    where, configs = ablation.plan("demo", TINY[1::2], ["learnable", "random"], tmp_path / "abl", seeds=3)

    assert list(configs) == [f"{mode}/seed-{s}" for mode in ("learnable", "random") for s in range(3)]
    assert [configs[f"random/seed-{s}"].run.seed for s in range(3)] == [0, 1, 2]
    assert {cfg.data.seed for cfg in configs.values()} == {0}
    first, last = data.load(configs["learnable/seed-0"]), data.load(configs["learnable/seed-2"])
    for split in ("train", "valid", "test"):
        assert (getattr(first, split) == getattr(last, split)).all(), split
    unpinned = [ablation.plan("demo", [*TINY[1::2], f"run.seed={s}"], ["learnable"], tmp_path / "x")[1]["learnable"]
                for s in (0, 2)]
    assert not np.array_equal(data.load(unpinned[0]).train, data.load(unpinned[1]).train)  # the pin matters
    with pytest.raises(UserError, match="--seeds 0 must be at least 1"):
        ablation.plan("demo", [], ["learnable"], tmp_path / "abl", seeds=0)


def fake_mode(mode: str, values: list[float]) -> ablation.ModeRuns:
    """A mode whose runs' best checkpoints had these test Recall@20 values, one run per seed."""
    runs = [ablation.ModeResult(mode=mode, run=Path(mode), seed=s, best_metric="valid/recall@20", head_share=0.2,
                                state="done", epochs_done=1, epochs=1, train_seconds=1.0, steps_per_epoch=1,
                                evaluations=[ablation.Evaluation(epoch=1, step=1, best=True,
                                                                 metrics={"test": {"recall@20": v}})],
                                popularity={})
            for s, v in enumerate(values)]
    return ablation.ModeRuns(mode, runs)


def test_verdict_calls_a_gap_real_only_beyond_two_welch_standard_errors() -> None:
    # a: mean 0.31, sd 0.01; b: mean 0.21, sd 0.01 -> gap 0.10, se = sqrt(1e-4/3 + 1e-4/3) = 0.008165
    # c: mean 0.29, sd 0.04 -> gap 0.02, se = sqrt(1e-4/3 + 16e-4/3) = 0.023805
    modes = [fake_mode("b", [0.20, 0.21, 0.22]), fake_mode("a", [0.30, 0.31, 0.32]),
             fake_mode("c", [0.29, 0.33, 0.25])]

    lines = ablation.verdict(modes, 20)

    assert lines[0] == ("verdict, test Recall@20: a leads with 0.3100 ± 0.0100; c -0.0200 (within noise, 2 se "
                        "0.0476); b -0.1000 (real, 2 se 0.0163)")
    assert "Welch" in lines[-1] and "3 seeds" in lines[-1]
    two = ablation.verdict([fake_mode("a", [0.30, 0.32]), fake_mode("b", [0.1, 0.11])], 20)
    assert two == ["verdict: 2 seeds per mode, so the spread over seeds is not estimated and no difference is "
                   "called real; run with --seeds 3 or more"]
    rows = dict((r[0], r) for r in ablation.rows(modes, 20)[1])
    assert rows["c"][1] == "0.2900 ± 0.0400"
    tied = ablation.verdict([fake_mode("a", [0.0] * 3), fake_mode("b", [0.0] * 3)], 20)
    assert tied[0] == "verdict, test Recall@20: every mode has 0.0000 ± 0.0000; no difference"


def test_seeds_run_in_subfolders_and_the_table_is_mean_and_sd_of_their_runs(tmp_path: Path) -> None:
    out = tmp_path / "abl"
    done = lgcn(*ablate_args(out, 2, "--modes", "learnable,random", "--seeds", "2"))
    assert done.returncode == 0, done.stdout + done.stderr

    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert [(r["mode"], r["seed"]) for r in rows] == [("learnable", "0"), ("learnable", "1"), ("random", "0"),
                                                      ("random", "1"), ("popularity", "")]
    for mode in ("learnable", "random"):
        wants = [expected_row(out / mode / f"seed-{s}") for s in range(2)]
        stats = [e["dataset"] for s in range(2) for e in read_events(out / mode / f"seed-{s}" / "metrics.jsonl")
                 if e["event"] == "run_started"]
        assert stats[0] == stats[1]
        test = [w["test"]["recall@20"] for w in wants]
        mean, sd = sum(test) / 2, abs(test[0] - test[1]) / 2 ** 0.5
        line = next(line for line in done.stdout.splitlines() if line.startswith(f"│ {mode} "))
        assert [c.strip() for c in line.strip("│").split("│")][3] == f"{mean:.4f} ± {sd:.4f}"
        assert {"recall@20/head", "recall@20/tail"} <= set(wants[0]["test"])
    assert "by popularity (test split)" in done.stdout
    assert "verdict: 2 seeds per mode, so the spread over seeds is not estimated" in done.stdout

    printed = io.StringIO()
    with pytest.raises(UserError, match=r"holds one run per seed .* repeat that --seeds"):
        ablation.run_ablation("demo", overrides(2), ["learnable"], out, Console(file=printed))
    assert ablation.run_ablation("demo", overrides(2), ["learnable", "random"], out, Console(file=printed),
                                 seeds=2) == 0
    assert printed.getvalue().count("finished earlier") == 4
