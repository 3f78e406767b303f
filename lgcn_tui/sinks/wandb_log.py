"""A Weights & Biases run per run directory (``log.wandb = offline | online``; the ``wandb`` extra).

W&B's own background process writes and uploads; this side only hands it one history row
per event (``sinks.scalars``) at the event's step, from the ``OffThread`` worker. It runs
silent and leaves stdout and stderr alone (``console="off"``), since the dashboard draws on
them. ``offline`` writes ``RUN_DIR/wandb/offline-run-*/`` and never opens a connection;
``wandb sync`` uploads those folders later. ``online`` needs an existing login: this never
asks for one on a terminal the dashboard owns.

The W&B run id is kept in ``RUN_DIR/wandb/run_id``, so a resume continues the same W&B run
(offline, in a folder of its own). W&B takes steps in increasing order only: steps a
rollback or an online resume replays keep the values first logged.
"""

from __future__ import annotations

import wandb

from ..config import Config
from ..contract import events as ev
from ..contract.state import RunState
from ..errors import UserError
from ..rundir import RunDir
from .scalars import scalars


def quiet() -> None:
    """Silence W&B for the whole process: warnings come from its global settings, not the run's,
    and one printed over the dashboard garbles it."""
    wandb.setup(wandb.Settings(silent=True))


def require_login(mode: str) -> None:
    """``online`` with no API key (``wandb login``, ``WANDB_API_KEY``) would prompt or fall back to
    offline behind the user's back; refuse before anything starts instead."""
    quiet()
    if mode == "online" and not wandb.login(prompt=False, verify=False):
        raise UserError("log.wandb = 'online' needs a W&B login and none was found; run `wandb login` "
                        "(or set WANDB_API_KEY), or use log.wandb=offline and upload later with `wandb sync`")


def start(cfg: Config, run_dir: RunDir, resumed: bool) -> WandbSink:
    """Start (or, on resume, continue) the W&B run of ``run_dir``."""
    mode = cfg.log.wandb
    require_login(mode)
    folder = run_dir.path / "wandb"
    folder.mkdir(exist_ok=True)
    id_file = folder / "run_id"
    run_id = id_file.read_text().strip() if resumed and id_file.exists() else None
    settings = wandb.Settings(silent=True, console="off", reinit="create_new")
    try:
        run = wandb.init(project=cfg.log.wandb_project, name=run_dir.path.name, id=run_id,
                         resume="allow" if run_id else None, dir=str(run_dir.path), mode=mode,
                         config=cfg.to_dict(), settings=settings)
    except wandb.Error as exc:
        raise UserError(f"log.wandb = {mode!r}: W&B could not start a run ({exc}); check `wandb login` and the "
                        "network, or use log.wandb=offline and upload later with `wandb sync`") from exc
    id_file.write_text(run.id)
    return WandbSink(run)


class WandbSink:
    def __init__(self, run: wandb.Run) -> None:
        self.run = run
        self._state: RunState | None = None

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StateChanged):
            self._state = event.state
        values = scalars(event)
        if values:
            assert isinstance(event, ev.Progress)
            self.run.log(values, step=event.step)

    def flush(self) -> None:
        """Nothing is held here: W&B's own process writes each row as it arrives."""

    def close(self) -> None:
        """Finish the W&B run, marked failed when the training run ended in an error."""
        self.run.finish(exit_code=1 if self._state == RunState.ERROR else 0)
