"""The console of a rank other than 0: one line per thing that must happen alike on every rank.

Rank 0 owns the run's log and progress bar; the other ranks print only the commands they
applied, their state changes and their errors, each with the step it happened at and the
rank's number, so the logs of a multi-machine job show that every rank acted at the same step.
"""

from __future__ import annotations

from rich.console import Console

from ..contract import events as ev


class RankSink:
    def __init__(self, rank: int, console: Console | None = None) -> None:
        self.rank, self.console = rank, console or Console()

    def print(self, text: str) -> None:
        self.console.print(f"[dim]rank {self.rank}:[/] {text}", highlight=False)

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StateChanged) and event.state != "evaluating":
            self.print(f"{event.state} at epoch {event.epoch}, step {event.step}")
        elif isinstance(event, ev.LrChanged):
            self.print(f"{event.group} lr set to {event.lr:.3g} at step {event.step}")
        elif isinstance(event, ev.Message) and event.level == "error":
            self.print(f"[bold red]{event.text}[/]")

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
