"""benchmarks/time_to_accuracy.py: every epoch's evaluation becomes a row, and curves from separate runs merge."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_accuracy.py"
TINY = ";data.synthetic_users=300;data.synthetic_items=200;data.synthetic_per_user=8;run.epochs=2"


def tta(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_curves_are_written_a_row_per_epoch_and_merge_into_one_table(tmp_path: Path) -> None:
    first = tta("--out", str(tmp_path / "a"), f"bpr=demo{TINY}",
                f'xsimgcl=demo{TINY};objective.terms=["reg","xsimgcl"]')
    assert first.returncode == 0, first.stderr
    second = tta("--out", str(tmp_path / "b"), f'softmax=demo{TINY};objective.loss="softmax"')
    assert second.returncode == 0, second.stderr
    written = rows(tmp_path / "a" / "curves.csv")
    assert [(r["curve"], r["epoch"]) for r in written] == [("bpr", "1"), ("bpr", "2"),
                                                           ("xsimgcl", "1"), ("xsimgcl", "2")]
    assert all(0 < float(r["recall@20"]) <= 1 for r in written)
    assert float(written[0]["seconds"]) <= float(written[1]["seconds"])
    merged = tta("--merge", str(tmp_path / "a" / "curves.csv"), str(tmp_path / "b" / "curves.csv"),
                 "--out", str(tmp_path / "m"))
    assert merged.returncode == 0, merged.stderr
    assert rows(tmp_path / "m" / "curves.csv") == written + rows(tmp_path / "b" / "curves.csv")
    table = (tmp_path / "m" / "table.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == ["| bpr", "| xsimgcl", "| softmax"]
    best = max(written[:2], key=lambda r: float(r["recall@20"]))
    assert f"{float(best['recall@20']):.4f} ({float(best['seconds']):.0f} s / {best['epoch']} ep)" in table[2]


def test_merge_names_a_missing_file_and_refuses_curves_beside_it(tmp_path: Path) -> None:
    missing = tta("--merge", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "never"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and "nope.csv" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert not (tmp_path / "never").exists()  # refused before anything is written
    both = tta("bpr=demo", "--merge", str(tmp_path / "nope.csv"))
    assert both.returncode == 2 and "give no curves to train" in both.stderr
