"""The run directory: everything about one run lives in one folder.

    RUN_DIR/
      config.toml      the resolved configuration (every key, after preset and --set)
      run.json         preset name, creation time, package version
      lock             who trains this run now (pid, host, start), while one does
      metrics.jsonl    one event per line (see train/events.py)
      control          commands from other processes, one JSON object per line
      checkpoints/     step-NNNNNNNNN-REASON.pt, best.pt (.dcp folders under dist.strategy = fsdp)
      workers.log      the workers' output while `train --nproc N` shows the dashboard
      export/          user/item embeddings (.npy) and id maps, from `lgcn-tui export`

Anything the dashboard shows can be rebuilt from this folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import __version__
from . import config as cfgmod
from .errors import UserError

# Keys whose default changes what a run does, with the behaviour of runs made before the key
# existed: their config.toml lacks it, and a resume or `eval` must rebuild the same data.
BEFORE = {"data.carve_valid": "off"}


class RunDir:
    """The paths of one run directory, named as in the layout above."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.toml"
        self.info = self.path / "run.json"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoints = self.path / "checkpoints"
        self.best = self.checkpoints / "best.pt"
        self.export = self.path / "export"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def load_config(self) -> cfgmod.Config:
        """The run's config; a key its config.toml predates takes the value the run had then (``BEFORE``)."""
        values = cfgmod.load_toml(self.config)
        for key, then in BEFORE.items():
            section, name = key.split(".")
            if isinstance(values.get(section, {}), dict):
                values.setdefault(section, {}).setdefault(name, then)
        cfg = cfgmod.from_dict(values, str(self.config))
        cfgmod.validate(cfg)
        return cfg



def fresh_path(cfg: cfgmod.Config) -> Path:
    """``out_dir/name-YYYYmmdd-HHMMSS``, suffixed ``-2``, ``-3``… if that exists: a new run's folder."""
    base = Path(cfg.run.out_dir) / f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def create(cfg: cfgmod.Config, preset: str, path: Path | None = None) -> RunDir:
    """A fresh folder ``out_dir/name-YYYYmmdd-HHMMSS`` (suffixed if that exists).

    ``path`` names the folder instead, for callers that need a fixed place (an ablation
    keeps each mode at ``ABLATION_DIR/MODE`` so re-running it finds them); it may already
    exist, and its config.toml and run.json are then rewritten.
    """
    if path is None:
        path = fresh_path(cfg)
    try:
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create run directory {path} (run.out_dir = {cfg.run.out_dir!r}): {exc.strerror}") from exc
    run = RunDir(path)
    run.config.write_text(cfg.to_toml())
    run.info.write_text(json.dumps({"preset": preset, "created": time.time(), "version": __version__}, indent=1))
    return run


def open_run(path: Path) -> RunDir:
    run = RunDir(Path(path))
    if not run.config.is_file():
        raise UserError(f"{path} is not a run directory: {run.config} is missing "
                        "(pass the folder that `lgcn-tui train` printed)")
    return run
