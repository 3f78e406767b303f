"""The outside loggers a config switches on: ``log.tensorboard`` and ``log.wandb``.

Each needs an extra (``pip install 'lgcn-tui[tensorboard]'``, ``[wandb]``), imported only
when asked for, so a run without them never loads either. ``check_extras`` runs before the
run directory exists: a missing extra or a missing W&B login leaves nothing behind.
"""

from __future__ import annotations

import importlib

from ..config import Config
from ..contract.events import Sink
from ..errors import UserError
from ..rundir import RunDir
from .jsonl import load_events
from .offthread import OffThread


def check_extras(cfg: Config) -> None:
    """Raise a ``UserError`` naming the key and the install command for each logger asked for
    that cannot be loaded here; for ``log.wandb = 'online'``, also when there is no login."""
    if cfg.log.tensorboard:
        _require("torch.utils.tensorboard", "log.tensorboard", "true", "false", "tensorboard")
    if cfg.log.wandb != "off":
        _require("wandb", "log.wandb", repr(cfg.log.wandb), "off", "wandb")
        from . import wandb_log

        wandb_log.require_login(cfg.log.wandb)


def external_sinks(cfg: Config, run_dir: RunDir, resumed: bool) -> list[Sink]:
    """The loggers ``cfg.log`` asks for, writing into ``run_dir``; ``resumed``: the run goes on
    from a checkpoint (its ``metrics.jsonl`` already cut back to it)."""
    check_extras(cfg)
    sinks: list[Sink] = []
    try:
        if cfg.log.tensorboard:
            from .tensorboard_log import TensorBoardSink

            recorded = load_events(run_dir.metrics) if resumed else []
            board = TensorBoardSink(run_dir.path / "tensorboard", cfg, recorded)
            sinks.append(OffThread(board, "log.tensorboard", "false"))
        if cfg.log.wandb != "off":
            from . import wandb_log

            sinks.append(OffThread(wandb_log.start(cfg, run_dir, resumed), "log.wandb", "off"))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _require(module: str, key: str, value: str, off: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"{key} = {value} needs the {extra!r} extra, which cannot be imported here ({exc}); "
                        f"install it with: pip install 'lgcn-tui[{extra}]', or set {key}={off}") from exc
