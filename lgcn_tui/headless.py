"""The headless runner (``--no-ui``): the run trains on a worker thread, signals and the control file stay on the main one.

Signals can only be caught on the main thread, so the run trains beside it. SIGINT,
SIGTERM or SIGHUP (an SSH session that dropped) asks the run to stop after the step in
flight and save a checkpoint; a second one gives up waiting. Commands appended to
``RUN_DIR/control`` by other processes are forwarded to the run's queue.

Under ``torchrun`` every rank runs this; rank 0 alone shows progress, reads the control
file and asks the run to stop on a signal (the stop reaches the other ranks with the
next step's broadcast, as any command does); the other ranks print a line per command
they applied (``sinks.rank``).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import traceback
from types import FrameType

from rich.console import Console
from rich.markup import escape

from .contract import commands as cmd
from .contract.control_file import ControlFileReader
from .run.lifecycle import Run
from .sinks.console import ConsoleSink
from .sinks.rank import RankSink

EXIT_CODES = {"done": 0, "stopped": 0, "interrupted": 130, "error": 1, "diverged": 3}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_headless(run: Run, console: Console) -> int:
    """Set the run up (a config or data error is raised before anything is written), train it to the end."""
    run.setup()
    assert run.run_dir is not None
    where = escape(str(run.run_dir.path))
    leader = run.world.leader
    sink: ConsoleSink | RankSink = ConsoleSink(console) if leader else RankSink(run.world.rank, console)
    run.sinks.append(sink)
    control = ControlFileReader(run.run_dir.path) if leader else None
    if leader:
        # soft_wrap: a command is copied from the terminal, so it is never broken across lines.
        console.print(f"watch or steer it from another shell: lgcn-tui watch {where}  ·  lgcn-tui send {where} "
                      "pause|resume|checkpoint|evaluate|stop", soft_wrap=True, highlight=False)
    if run.world.size > 1:  # after the control file is followed: from now on, commands sent are obeyed
        console.print(f"rank {run.world.rank} of {run.world.size}: pid {os.getpid()} on {socket.gethostname()}",
                      highlight=False)
    outcome: dict[str, str] = {}
    interrupts: list[int] = []

    def work() -> None:
        try:
            outcome["state"] = str(run.train())
        except BaseException:  # noqa: BLE001 - reported to the user below, never swallowed
            outcome["state"] = "error"
            outcome["traceback"] = traceback.format_exc()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        interrupts.append(signum)
        if len(interrupts) == 1:
            name = signal.Signals(signum).name
            again = "press Ctrl-C again" if signum == signal.SIGINT else f"send {name} again"
            sink.print(f"[yellow]{name}: stopping after this step and saving a checkpoint ({again} to quit at once)[/]")
            run.send(cmd.Stop(save=True, source=name))
        else:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    thread = threading.Thread(target=work, name="lgcn-trainer", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.25)
            if control is not None:
                control.forward(run.send, lambda problem: sink.print(f"[yellow]{problem}[/]"))
    except KeyboardInterrupt:
        sink.print("[red]interrupted twice: quitting without waiting for the checkpoint[/]")
        outcome["state"] = "interrupted"
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if not thread.is_alive():
            run.cleanup()
    if "traceback" in outcome:
        console.print(outcome["traceback"], markup=False, highlight=False)
    state = outcome.get("state", "error")
    if state == "stopped" and interrupts:
        state = "interrupted"
    elif state == "stopped" and run.diverged:
        state = "diverged"
    if leader:
        console.print(f"run directory: {where}", soft_wrap=True, highlight=False)
        if state != "done":
            nproc = f" --nproc {run.world.size}" if run.world.size > 1 else ""
            console.print(f"resume with: lgcn-tui train --resume {where}{nproc} --no-ui", soft_wrap=True,
                          highlight=False)
    return EXIT_CODES[state]
