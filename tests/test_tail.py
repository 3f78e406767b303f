"""Following a file another process appends to: whole lines only, and a fresh start when it is rewritten."""

from __future__ import annotations

from pathlib import Path

from lgcn_tui.tail import LineTail


def test_a_half_written_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"one\ntw")
    tail = LineTail(path)
    assert tail.read() == ([b"one"], False)
    assert tail.read() == ([], False)
    with open(path, "ab") as fh:
        fh.write(b"o\nthree\n")
    assert tail.read() == ([b"two", b"three"], False)


def test_from_end_skips_what_was_there_and_creates_a_missing_file(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_bytes(b"stale\n")
    tail = LineTail(old, from_end=True)
    with open(old, "ab") as fh:
        fh.write(b"fresh\n")
    assert tail.read() == ([b"fresh"], False)
    missing = tmp_path / "missing"
    assert LineTail(missing, from_end=True).read() == ([], False) and missing.is_file()


def test_a_file_cut_back_or_rewritten_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"a\nb\nc\n")
    tail = LineTail(path)
    assert tail.read() == ([b"a", b"b", b"c"], False)
    path.write_bytes(b"a\n")  # cut back, as a resume does
    assert tail.read() == ([b"a"], True)
    path.write_bytes(b"x\ny\nz\n")  # rewritten past the old offset: the bytes before it changed
    assert tail.read() == ([b"x", b"y", b"z"], True)


def test_a_missing_file_reads_as_nothing(tmp_path: Path) -> None:
    assert LineTail(tmp_path / "nope").read() == ([], False)


def test_a_line_longer_than_the_limit_is_skipped_and_reading_resumes_after_it(tmp_path: Path) -> None:
    path = tmp_path / "log"
    long = b"x" * (12 << 20)
    path.write_bytes(b"before\n" + long + b"\nafter\n")
    tail = LineTail(path)
    assert tail.read() == ([b"before"], False)
    assert tail.read() == ([b"after"], False) and tail.oversized == [len(long) + 1]
    with open(path, "ab") as fh:
        fh.write(b"more\n")
    assert tail.read() == ([b"more"], False) and tail.oversized == []
