"""The headless runner (``--no-ui``): trainer on a worker thread, signals and control file on the main one.

Signals can only be caught on the main thread, so the trainer runs beside it. SIGINT or
SIGTERM asks the trainer to stop after the step in flight and save a checkpoint; a second
SIGINT gives up waiting. Commands appended to ``RUN_DIR/control`` by other processes are
forwarded to the trainer's queue.
"""

from __future__ import annotations

import queue
import signal
import threading
import traceback
from pathlib import Path
from types import FrameType

from rich.console import Console

from .config import Config
from .data.dataset import Dataset
from .rundir import RunDir
from .sinks.console import ConsoleSink
from .sinks.jsonl import JsonlSink
from .train import commands as cmd
from .train.trainer import Trainer

EXIT_CODES = {"done": 0, "stopped": 0, "interrupted": 130, "error": 1}


def run_headless(cfg: Config, run: RunDir, dataset: Dataset, preset: str, resume_from: Path | None,
                 console: Console) -> int:
    commands: queue.Queue[cmd.Command] = queue.Queue()
    jsonl = JsonlSink(run.metrics)
    sink = ConsoleSink(console)
    trainer = Trainer(cfg, run, dataset, [jsonl, sink], commands, preset, resume_from)
    control = cmd.ControlFileReader(run.path)
    outcome: dict[str, str] = {}
    interrupts: list[int] = []

    def work() -> None:
        try:
            outcome["state"] = trainer.run_safely()
        except BaseException:  # noqa: BLE001 - reported to the user below, never swallowed
            outcome["state"] = "error"
            outcome["traceback"] = traceback.format_exc()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        interrupts.append(signum)
        if len(interrupts) == 1:
            sink.print(f"[yellow]{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
                       "(press Ctrl-C again to quit at once)[/]")
            commands.put(cmd.stop(save=True))
        else:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=work, name="lgcn-trainer", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.25)
            for item in control.poll():
                if isinstance(item, str):
                    sink.print(f"[yellow]{item}[/]")
                else:
                    commands.put(item)
    except KeyboardInterrupt:
        sink.print("[red]interrupted twice: quitting without waiting for the checkpoint[/]")
        outcome["state"] = "interrupted"
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sink.close()
        jsonl.close()
    if "traceback" in outcome:
        console.print(outcome["traceback"], markup=False, highlight=False)
    state = outcome.get("state", "error")
    if state == "stopped" and interrupts:
        state = "interrupted"
    console.print(f"run directory: {run.path}")
    return EXIT_CODES[state]
