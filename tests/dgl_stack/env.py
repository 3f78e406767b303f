"""The DGL-compatible Python environment the DGL parity tests and benchmark run in.

DGL's last CPU wheels on PyPI (2.1.0) load only with torch 2.0–2.2.1, while this package's
own stack is torch ≥ 2.4, so the DGL checks need a second virtual environment. It is
built once per machine and pin set under ``~/.cache/lgcn-tui/dgl-venv/KEY`` (about 2.5
minutes and 5 GB: PyPI's torch 2.2.1 is the CUDA build with its nvidia-* libraries) and
reused after that; a file lock keeps two test sessions from building it at once.

This package is not installed into it: callers put the repository on ``PYTHONPATH``, so
one cached environment serves every clone. ``$LGCN_DGL_PYTHON`` names another interpreter
with DGL to use instead (e.g. a CUDA box's own stack); nothing is built then.

Run as a script it prints that interpreter's path, building the environment if needed:

    $(python tests/dgl_stack/env.py) benchmarks/bench_dgl.py
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

# What DGL 2.1.0 needs to import: numpy<2 (built against numpy 1), setuptools<70 (it uses
# setuptools.extern), torchdata 0.7.1, pandas, pyyaml and pydantic (graphbolt); tomli-w is ours.
PINS = ("torch==2.2.1", "dgl==2.1.0", "numpy<2", "setuptools<70", "torchdata==0.7.1", "pandas", "pyyaml",
        "pydantic", "tomli-w")
NEEDED_FREE_BYTES = 8 * 2**30
BUILD_TIMEOUT_S = 1200
READY = ".lgcn-tui-ready"


class EnvUnavailable(Exception):
    """The environment could not be built here; the message says why (for a skip reason)."""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lgcn-tui" / "dgl-venv"


def key() -> str:
    """Pins, Python version and platform: a change to any of them builds a fresh environment."""
    text = "\n".join([*PINS, f"{sys.version_info[0]}.{sys.version_info[1]}", sys.platform, platform.machine()])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _last_error(log: str) -> str:
    """pip's own verdict: its last ``ERROR:`` line, else the last line it printed."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["(no output)"])[-1]


def _run(args: list[str], log: Path, timeout: float) -> None:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(args)}\n")
        fh.flush()
        try:
            done = subprocess.run(args, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout,
                                  env={**os.environ, "DGLBACKEND": "pytorch"})
        except subprocess.TimeoutExpired as exc:
            raise EnvUnavailable(f"{' '.join(args[1:4])} ... did not finish in {timeout:.0f} s (log: {log})") from exc
    if done.returncode != 0:
        raise EnvUnavailable(f"{_last_error(log.read_text(encoding='utf-8'))} (log: {log})")


def _build(venv: Path, log: Path) -> None:
    free = shutil.disk_usage(venv.parent).free
    if free < NEEDED_FREE_BYTES:
        raise EnvUnavailable(f"the DGL environment needs about {NEEDED_FREE_BYTES / 2**30:.0f} GiB free in "
                             f"{venv.parent}; found {free / 2**30:.1f} GiB")
    log.write_text("", encoding="utf-8")
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", str(venv)], log, 120)
    python = str(_python(venv))
    _run([python, "-m", "pip", "install", "--no-cache-dir", "--retries", "2", "--timeout", "60", *PINS], log,
         BUILD_TIMEOUT_S)
    _run([python, "-c", "import dgl, dgl.function, torch; print('torch', torch.__version__, 'dgl', dgl.__version__)"],
         log, 300)
    seconds = time.monotonic() - started
    (venv / READY).write_text(f"{' '.join(PINS)}\nbuilt in {seconds:.0f} s\n", encoding="utf-8")


def ensure() -> Path:
    """The interpreter to run DGL code with; builds the cached environment on first use.

    Raises ``EnvUnavailable`` with pip's last error line when it cannot be built (no
    registry, no disk, no wheel for this Python); a failed build is removed, not reused.
    """
    override = os.environ.get("LGCN_DGL_PYTHON")
    if override:
        return Path(override)
    root = cache_dir()
    venv = root / key()
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / f"{key()}.lock", "w")
    except OSError as exc:
        raise EnvUnavailable(f"cannot write to {root}: {exc.strerror}") from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / READY).exists():
            return _python(venv)
        shutil.rmtree(venv, ignore_errors=True)
        try:
            _build(venv, root / f"{key()}.log")
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
    return _python(venv)


if __name__ == "__main__":
    try:
        print(ensure())
    except EnvUnavailable as exc:
        sys.exit(f"cannot build the DGL environment: {exc}")
