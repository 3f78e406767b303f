"""Finding presets: TOML files in ``presets/``, each opening with a comment on when to use it."""

from __future__ import annotations

import difflib
from pathlib import Path

from .errors import UserError


def preset_dir() -> Path:
    """Presets ship inside the wheel (``lgcn_tui/presets``) or sit at the root of a source checkout."""
    packaged = Path(__file__).parent / "presets"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "presets"


def available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(preset_dir().glob("*.toml"))}


def description(path: Path) -> str:
    """The preset's opening comment, joined into one line."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    return " ".join(x for x in lines if x).split(". ")[0].rstrip(".")


def find(name_or_path: str) -> Path:
    """A preset by name, or any ``.toml`` path; an unknown name gets the closest names, else the list."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UserError(f"preset file {path} does not exist")
        return path
    found = available()
    if name_or_path not in found:
        # A start of a name ("beauty") means every preset it starts, which difflib's ratio would cut to one.
        close = ([n for n in found if name_or_path and n.startswith(name_or_path)]
                 or difflib.get_close_matches(name_or_path, list(found), n=3))
        hint = f"did you mean {' or '.join(close)}?" if close else f"available: {', '.join(found) or '(none)'}"
        raise UserError(f"unknown preset {name_or_path!r}; {hint} (`lgcn-tui presets` describes each; "
                        f"or pass a path to a .toml file)")
    return found[name_or_path]
