"""The layers the README's Architecture section describes, checked against every import in the package.

A module may import its own layer and the layers listed for it; third-party imports are
checked where a layer promises to stay light (the contract imports no torch and nothing
outside the UI imports Textual). Entry points (cli, headless, ablation, retrieval) may use
every layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lgcn_tui"
FOUNDATION = {"errors", "tail", "config", "presets", "rundir", "__init__"}
ENGINE = {"data", "graph", "model", "objective", "train", "embed"}
ALLOWED: dict[str, set[str]] = {
    "foundation": FOUNDATION,
    "contract": FOUNDATION | {"contract"},
    "engine": FOUNDATION | ENGINE,
    "sinks": FOUNDATION | {"contract", "sinks"},
    "run": FOUNDATION | ENGINE | {"contract", "sinks", "run"},
    "ui": FOUNDATION | ENGINE | {"contract", "sinks", "run", "ui"},
}
LIBRARIES_NOT_ALLOWED = {"contract": {"torch", "textual"}, "run": {"textual"}, "engine": {"textual"},
                         "sinks": {"textual"}, "foundation": {"textual"}}


def layer(top: str) -> str | None:
    if top in FOUNDATION:
        return "foundation"
    if top in ENGINE:
        return "engine"
    return top if top in ALLOWED else None


def imports(path: Path, root: Path) -> list[tuple[str, int, bool]]:
    """``(name, line, internal)`` of each import; an internal name is the package's top-level part."""
    parts = path.relative_to(root).with_suffix("").parts
    tops = {p.name.removesuffix(".py") for p in root.iterdir()}
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(parts[: len(parts) - node.level])
            if node.module or base:
                out.append(((base + (node.module or "").split("."))[0], node.lineno, True))
            else:  # `from . import x`: a module of the package, or a name from its __init__
                out += [(a.name if a.name in tops else "__init__", node.lineno, True) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = node.module.split(".")
            internal = names[0] == root.name
            out.append((names[1] if internal and len(names) > 1 else names[0], node.lineno, internal))
        elif isinstance(node, ast.Import):
            out += [(alias.name.split(".")[0], node.lineno, False) for alias in node.names]
    return out


def violations(root: Path) -> list[str]:
    wrong = []
    for path in sorted(root.rglob("*.py")):
        mine = layer(path.relative_to(root).parts[0].removesuffix(".py"))
        if mine is None:
            continue
        for name, line, internal in imports(path, root):
            if (name not in ALLOWED[mine]) if internal else (name in LIBRARIES_NOT_ALLOWED.get(mine, set())):
                wrong.append(f"{path.relative_to(root)}:{line} ({mine}) imports {name}")
    return wrong


def test_every_module_imports_only_the_layers_it_may() -> None:
    assert violations(PACKAGE) == []


def test_a_sink_that_reaches_into_the_run_or_textual_is_named(tmp_path: Path) -> None:
    root = tmp_path / "lgcn_tui"
    (root / "sinks").mkdir(parents=True)
    (root / "run").mkdir()
    (root / "sinks" / "bad.py").write_text("from ..run.lifecycle import Run\nimport textual\nfrom ..contract import events\n")
    (root / "contract.py").write_text("import torch\n")
    assert violations(root) == ["contract.py:1 (contract) imports torch", "sinks/bad.py:1 (sinks) imports run",
                                "sinks/bad.py:2 (sinks) imports textual"]
