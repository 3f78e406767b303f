"""Small modal dialogs: set a learning rate, confirm quitting, pick a run to overlay."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ...errors import UserError
from ...contract.commands import MAX_LR, MIN_LR, check_lr


def parse_lr(text: str) -> float:
    """The typed value as a learning rate, or a ``UserError`` that says what is wrong with it."""
    try:
        value = float(text.strip())
    except ValueError:
        raise UserError(f"{text.strip()!r} is not a number; type a learning rate in [{MIN_LR:g}, {MAX_LR:g}], "
                        "e.g. 1e-3") from None
    check_lr(value)
    return value


class LrDialog(ModalScreen[float | None]):
    """Prefilled with the group's current rate; refuses invalid input with the reason and stays open."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="dialog-cancel")]

    def __init__(self, group: str, current: float) -> None:
        super().__init__()
        self.group, self.current = group, current

    def compose(self) -> ComposeResult:
        with Vertical(id="lr-dialog", classes="dialog"):
            yield Static(f"[b]{self.group} learning rate[/]  (now {self.current:.4g})")
            yield Input(value=f"{self.current:.4g}", id="lr-input", select_on_focus=True)
            yield Static(id="lr-reason", classes="reason")
            yield Static("enter apply · esc cancel", classes="hint")

    @on(Input.Changed, "#lr-input")
    def _changed(self, event: Input.Changed) -> None:
        self.query_one("#lr-reason", Static).update("")

    @on(Input.Submitted, "#lr-input")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            value = parse_lr(event.value)
        except UserError as exc:
            self.query_one("#lr-reason", Static).update(str(exc))
            self.app.bell()
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class QuitDialog(ModalScreen[bool | None]):
    """Answers True (save a checkpoint, then stop), False (stop without saving) or None (keep training)."""

    BINDINGS = [
        Binding("y", "answer(True)", "save and quit", id="quit-save"),
        Binding("n", "answer(False)", "quit without saving", id="quit-nosave"),
        Binding("escape", "answer(None)", "keep training", id="quit-cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog", classes="dialog"):
            yield Static("[b]Quit: save a checkpoint first?[/]")
            yield Static("[b]y[/] save, then stop and quit\n[b]n[/] stop and quit without saving\n"
                         "[b]esc[/] keep training")

    def action_answer(self, save: bool | None) -> None:
        self.dismiss(save)


CLEAR = ""


class RunPicker(ModalScreen[str | None]):
    """Answers a run directory's path, ``CLEAR`` (no overlay) or None (cancelled).

    ``runs``: (path, line to show) for each run the user may pick.
    """

    BINDINGS = [Binding("escape", "cancel", "cancel", id="picker-cancel")]

    def __init__(self, runs: list[tuple[str, str]], clearable: bool) -> None:
        super().__init__()
        self.runs, self.clearable = runs, clearable

    def compose(self) -> ComposeResult:
        options = [Option("no overlay", id="clear")] if self.clearable else []
        options += [Option(line, id=f"run-{i}") for i, (_, line) in enumerate(self.runs)]
        with Vertical(id="run-picker", classes="dialog"):
            yield Static("[b]Overlay another run[/]  its loss and R@20 behind this run's")
            yield OptionList(*options, id="run-options")
            yield Static("enter pick · esc cancel", classes="hint")

    @on(OptionList.OptionSelected, "#run-options")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        chosen = event.option.id or ""
        self.dismiss(CLEAR if chosen == "clear" else self.runs[int(chosen.removeprefix("run-"))][0])

    def action_cancel(self) -> None:
        self.dismiss(None)
