"""The help screen: every key as currently bound, and what each pane shows."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

PANES = """\
[b]loss[/]      smoothed BPR+reg loss per step (raw loss faint; r hides it)
[b]grad[/]      gradient norm of user and item embeddings before clipping
          (log scale), the red line is optim.clip_norm
[b]lr[/]        rate of each group so far and, dim, the plan ahead; the
          grey line is now; a manual change rescales the plan
[b]eval[/]      recall/ndcg at each K: latest, best so far (best.pt), and
          the popularity baseline; the latest R@20 on head (most
          trained), tail and cold (untrained) items; R@20/N@20 across
          evaluations (N@20 gives way when the pane is short)
[b]embeddings[/] α of the residual item mode, retention of the pretrained
          vectors (mean cosine to start), item–item cosine histogram
[b]log[/]       checkpoints, LR changes, evaluations, commands, warnings"""


CLOSE_HINT = "esc, ? or q closes · ↑↓ PgUp PgDn scroll"


class HelpScreen(ModalScreen[None]):
    """Its border says how to close and scroll it, since at 80×24 its end is below the screen."""

    BINDINGS = [
        Binding("escape", "close", "close", id="help-close"),
        Binding("question_mark", "close", "close", key_display="?", show=False, id="help-close-key"),
        Binding("q", "close", "close", show=False, id="help-close-q"),
    ]

    def __init__(self, keys: list[tuple[str, str]], watching: bool) -> None:
        super().__init__()
        self.keys, self.watching = keys, watching

    def compose(self) -> ComposeResult:
        mode = ("watching a headless run: keys write to its control file; quitting detaches and the run goes on"
                if self.watching else "keys act on the trainer between steps; quitting stops it cleanly")
        keys = Table.grid(padding=(0, 2))
        keys.add_column(justify="right", style="bold", no_wrap=True)
        keys.add_column()
        for key, text in self.keys:
            keys.add_row(key, text)
        body = VerticalScroll(id="help", classes="dialog")
        body.border_title = "help"
        body.border_subtitle = CLOSE_HINT
        with body:
            yield Static(Text.assemble(("Keys", "bold"), f" ({mode})"))
            yield Static(keys)
            yield Static(f"[b]Panes[/]\n\n{PANES}")

    def action_close(self) -> None:
        self.dismiss(None)
