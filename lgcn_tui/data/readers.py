"""Readers for the interaction formats users bring: LightGCN text, RecBole atomic, CSV/TSV.

Each reader only parses its format into raw ``(user, item)`` ids per split and hands them
to ``build_dataset``, so remapping and cleaning behave the same for every format. Parsing
is done in bulk with numpy because Gowalla has a million interactions; the slow per-line
path runs only after something has gone wrong, to say exactly where.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .dataset import Dataset, build_dataset

SPLITS = ("loo", "ratio")
_SPLIT_NAMES = ("train", "valid", "test")
_USER_NAMES = ("user", "user_id")
_ITEM_NAMES = ("item", "item_id")
_TIME_NAMES = ("timestamp", "time", "ts")
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True
_BOM = b"\xef\xbb\xbf"


def csv_rows(path: Path, reader: Any) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of a ``csv.reader`` over ``path``'s text, each with the line it ends on.

    A malformed row (an unbalanced quote, say) becomes a UserError naming the line it starts
    on: the one after the last complete row.
    """
    done = 0
    try:
        for fields in reader:
            done = reader.line_num
            if any(f.strip() for f in fields):
                yield done, fields
    except csv.Error as exc:
        raise UserError(f"{path}:{done + 1}: malformed {reader.dialect.delimiter!r}-separated row ({exc}); "
                        'check for an unbalanced " quote') from exc


def read_lightgcn(path: Path, carve_valid: bool = False) -> Dataset:
    """A LightGCN-style directory: ``train.txt``, ``test.txt`` and optional ``valid.txt``.

    Each line is ``user item item ...`` with non-negative integer ids; a user with no items
    on a line is allowed (and is dropped if it has no training items at all). ``train.txt``
    and ``test.txt`` must hold interactions; an empty ``valid.txt`` is as good as none. A
    UTF-8 byte-order mark is skipped and duplicate pairs are removed, each with a note.
    ``carve_valid``: without valid interactions, the last item of each user's train line
    (lines list a history in order, as in Amazon Beauty) is held out as valid.
    """
    expected = "train.txt and test.txt (valid.txt optional), one 'user item item ...' line per user"
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise UserError(f"data.path {path} {what}; the lightgcn format needs a directory "
                        f"with {expected}")
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    notes: list[str] = []
    for split in _SPLIT_NAMES:
        file = path / f"{split}.txt"
        if not file.is_file():
            if split == "valid":
                continue
            raise UserError(f"{path}: missing {file.name}; the lightgcn format needs {expected}")
        users, items, empty = _read_adjacency(file, notes)
        if users.size == 0 and split != "valid":
            what = "is empty" if empty else "lists no item after any user id"
            raise UserError(f"{file}: the file {what}, so it holds no interactions; the lightgcn "
                            f"format needs {expected}")
        duplicates = _count_duplicates(users, items)
        if duplicates:
            notes.append(f"{file}: removed {_plural(duplicates, 'duplicate interaction')} "
                         "(a user listing the same item more than once)")
        splits[split] = users, items
    dataset = build_dataset(path.name, splits, carve_valid)
    if len(dataset.test) == 0 and len(dataset.valid) == 0:
        n_users = len(np.unique(splits["test"][0]))
        raise UserError(f"{path / 'test.txt'}: no interactions left to test on: none of its "
                        f"{_plural(n_users, 'user')} has an item in {path / 'train.txt'}; test.txt "
                        "must list users of train.txt (users without training items are dropped)")
    dataset.notes[:0] = notes
    return dataset


def read_recbole(path: Path, split: str, ratios: list[float], seed: int, carve_valid: bool = False) -> Dataset:
    """A RecBole atomic ``.inter`` file (or a directory holding exactly one), tab separated.

    The typed header (``user_id:token item_id:token ...``) says which columns hold the ids;
    ``timestamp`` is optional and, when present, orders each user's interactions.
    """
    _check_split(split, ratios)
    file = _find_inter(path)
    lines = _read_text(file).split("\n")
    if not lines[0].strip():
        raise UserError(f"{file}:1: empty header; expected e.g. "
                        "'user_id:token<TAB>item_id:token<TAB>timestamp:float'")
    header = lines[0].rstrip("\r").split("\t")
    cols = (_column(file, header, ("user_id",)), _column(file, header, ("item_id",)),
            _find(header, ("timestamp",)))
    numbers = [n for n, line in enumerate(lines[1:], start=2) if line.strip()]
    body = [lines[n - 1].rstrip("\r") for n in numbers]
    tabs = np.fromiter((line.count("\t") for line in body), dtype=np.int64, count=len(body))
    wrong = tabs != len(header) - 1
    if wrong.any():
        k = int(np.argmax(wrong))
        raise UserError(f"{file}:{numbers[k]}: {tabs[k] + 1} tab-separated fields, but the header "
                        f"has {len(header)} ({', '.join(header)})")
    table = np.array("\t".join(body).split("\t") if body else [], dtype=str)
    table = table.reshape(len(body), len(header))
    name = path.name if path.is_dir() else file.stem
    return _split_rows(name, file, header, table, numbers, cols, split, ratios, seed, carve_valid)


def read_csv(path: Path, split: str, ratios: list[float], seed: int, carve_valid: bool = False) -> Dataset:
    """A CSV or TSV of ``user,item[,timestamp]`` with raw string ids.

    Delimiter: ``.tsv`` means tab and ``.csv`` comma; any other extension takes whichever of
    tab, comma or semicolon occurs most in the first line. Header: present exactly when a
    field of the first line is ``user`` or ``user_id`` (any case); it then names the columns
    (``item``/``item_id``, optional ``timestamp``/``time``/``ts``). Without a header the
    columns are user, item and (if present) timestamp; further columns are ignored.
    """
    _check_split(split, ratios)
    if not path.is_file():
        what = "does not exist" if not path.exists() else "is not a file"
        raise UserError(f"data.path {path} {what}; the csv format needs a .csv or .tsv file "
                        "of user,item[,timestamp] rows")
    text = _read_text(path)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise UserError(f"{path}: the file is empty; expected user,item[,timestamp] rows")
    delimiter = _delimiter(path, first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    numbers: list[int] = []
    header: list[str] | None = None
    for number, fields in csv_rows(path, reader):
        if header is None and not rows and _is_header(fields):
            header = [f.strip() for f in fields]
            continue
        rows.append(fields)
        numbers.append(number)
    expected = "a header naming user (or user_id) and item (or item_id), then one row per interaction"
    if header is not None and not rows:
        raise UserError(f"{path}: holds only a header ({delimiter.join(header)!r}) and no "
                        "interactions; expected one user-item row per interaction after it")
    if header is None and len(rows) == 1:
        raise UserError(f"{path}: holds only a header ({delimiter.join(rows[0])!r}, line "
                        f"{numbers[0]}) and no interactions, or a single interaction, which leaves "
                        f"nothing to hold out; expected {expected} (a header is recognised by a "
                        "user or user_id column)")
    if header is None:
        timed = bool(rows) and len(rows[0]) >= 3
        names = ["user", "item", "timestamp"] if timed else ["user", "item"]
        cols = (0, 1, 2 if timed else None)
        width = len(rows[0])
        extra = width - len(names)
        layout = ", ".join(names) + (f", {_plural(extra, 'ignored field')}" if extra > 0 else "")
        where = f" like line {numbers[0]}"
    else:
        names = header
        cols = (_column(path, header, _USER_NAMES), _column(path, header, _ITEM_NAMES),
                _find(header, _TIME_NAMES))
        width = len(header)
        layout = ", ".join(header)
        where = " as in the header"
    need = max(c for c in cols if c is not None) + 1
    for fields, number in zip(rows, numbers):
        if len(fields) < need:
            raise UserError(f"{path}:{number}: {len(fields)} field(s) separated by {delimiter!r}; "
                            f"expected at least {need} ({', '.join(names[:need])})")
        if len(fields) > width:
            raise UserError(f"{path}:{number}: the row has {len(fields)} fields, expected {width} "
                            f"({layout}){where}, separated by {delimiter!r}; quote a value that contains "
                            f"{delimiter!r}")
    return _split_rows(path.stem, path, names, rows, numbers, cols, split, ratios, seed, carve_valid)


def _read_adjacency(file: Path, notes: list[str]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Users and items of one ``user item item ...`` file, parsed as a single token array.

    The flag says the file had no tokens at all. A leading UTF-8 byte-order mark (which
    Windows editors write) is skipped, with a note in ``notes``.
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror}") from exc
    if data.startswith(_BOM):
        data = data[len(_BOM):]
        notes.append(f"{file}: skipped the UTF-8 byte-order mark (BOM) at its start")
    tokens = np.array(data.split(), dtype=bytes)
    if tokens.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), True
    buf = np.frombuffer(data, dtype=np.uint8)
    space = _WHITESPACE[buf]
    starts = ~space & np.r_[True, space[:-1]]
    line = np.cumsum(buf == ord("\n"))[starts]
    bad = ~np.char.isdigit(tokens) | (np.char.str_len(tokens) > 18)
    if bad.any():
        k = int(np.argmax(bad))
        token = tokens[k].decode("utf-8", errors="replace")
        raise UserError(f"{file}:{line[k] + 1}: {token!r} is not a valid id; expected 'user item "
                        "item ...' with non-negative integer ids separated by spaces")
    values = tokens.astype(np.int64)
    is_user = np.r_[True, line[1:] != line[:-1]]
    owner = np.maximum.accumulate(np.where(is_user, np.arange(values.size), 0))
    return values[owner[~is_user]], values[~is_user], False


def _count_duplicates(users: np.ndarray, items: np.ndarray) -> int:
    """How many ``(user, item)`` pairs repeat an earlier one."""
    if users.size < 2:
        return 0
    order = np.lexsort((items, users))
    u, i = users[order], items[order]
    return int(((u[1:] == u[:-1]) & (i[1:] == i[:-1])).sum())


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _find_inter(path: Path) -> Path:
    """The ``.inter`` file itself, or the only one inside a directory."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise UserError(f"data.path {path} does not exist; the recbole format needs a .inter "
                        "file or a directory containing exactly one")
    found = sorted(path.glob("*.inter"))
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise UserError(f"{path}: the recbole format needs exactly one *.inter file in the "
                        f"directory, found {listed}; point data.path at the file itself")
    return found[0]


def _read_text(file: Path) -> str:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = f"{file}:{line}: not UTF-8 text ({exc.reason}); save the file as UTF-8"
        raise UserError(message) from exc


def _find(header: list[str], wanted: tuple[str, ...]) -> int | None:
    """Index of the first header field named one of ``wanted``, ignoring case and ``:type``."""
    names = [h.split(":", 1)[0].strip().lower() for h in header]
    return next((names.index(w) for w in wanted if w in names), None)


def _column(file: Path, header: list[str], wanted: tuple[str, ...]) -> int:
    col = _find(header, wanted)
    if col is None:
        raise UserError(f"{file}:1: no {' or '.join(wanted)} column; the header has columns "
                        f"{', '.join(repr(h) for h in header)}")
    return col


def _delimiter(path: Path, first: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "\t"
    if suffix == ".csv":
        return ","
    counts = {d: first.count(d) for d in ("\t", ",", ";")}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] == 0:
        raise UserError(f"{path}:1: no tab, comma or semicolon in the first line; expected "
                        "user,item[,timestamp] rows (a .csv or .tsv name fixes the delimiter)")
    return best


def _is_header(fields: list[str]) -> bool:
    return any(f.strip().split(":", 1)[0].lower() in _USER_NAMES for f in fields)


def _check_split(split: str, ratios: list[float]) -> None:
    if split not in SPLITS:
        raise UserError(f"data.split = {split!r} is not valid; choose one of: {', '.join(SPLITS)}")
    if split == "ratio" and (len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1) > 1e-6):
        raise UserError(f"data.split_ratios = {ratios!r} must be three non-negative numbers "
                        "(train, valid, test) summing to 1")


def _split_rows(
    name: str,
    file: Path,
    header: list[str],
    rows: list[list[str]] | np.ndarray,
    numbers: list[int],
    cols: tuple[int, int, int | None],
    split: str,
    ratios: list[float],
    seed: int,
    carve_valid: bool = False,
) -> Dataset:
    """Check the id and time columns of parsed rows, then split each user's history.

    Duplicate ``(user, item)`` rows are removed before the split, keeping each pair's first
    in history order, so one item never lands in two splits of a user; a note counts them.
    The splits go to ``build_dataset`` in history order (by timestamp when there is one), so
    ``carve_valid`` holds out the latest training item when a split leaves valid empty.
    """
    if len(rows) == 0:
        raise UserError(f"{file}: holds only a header and no interactions; expected one row per "
                        "user-item interaction after it")
    user_col, item_col, time_col = cols
    users = _field(rows, user_col)
    items = _field(rows, item_col)
    for values, col in ((users, user_col), (items, item_col)):
        empty = np.char.str_len(values) == 0
        if empty.any():
            number = numbers[int(np.argmax(empty))]
            raise UserError(f"{file}:{number}: empty {header[col]!r} value; every row needs a "
                            "user id and an item id")
    times = None
    if time_col is not None:
        times = _parse_times(file, header[time_col], _field(rows, time_col), numbers)
    keep = _first_of_each_pair(users, items, times)
    notes: list[str] = []
    if len(keep) < len(users):
        first = "earliest by timestamp" if times is not None else "first in the file"
        notes.append(f"{file}: removed {_plural(len(users) - len(keep), 'duplicate interaction')} "
                     f"(a user-item pair on several rows) before the split, keeping each pair's {first}")
        users, items = users[keep], items[keep]
        times = times[keep] if times is not None else None
    labels = _split_labels(users, times, split, ratios, seed)
    if not (labels > 0).any():
        n_users = len(np.unique(users))
        need = ("a user needs 2 or more interactions to have a test item" if split == "loo" else
                f"data.split_ratios = {ratios!r} holds out nothing from these histories")
        raise UserError(f"{file}: data.split = {split!r} leaves no interaction for valid or test: "
                        f"{_plural(len(users), 'interaction')} from {_plural(n_users, 'user')}, and "
                        f"{need}")
    history = np.lexsort((np.arange(len(users)), times)) if times is not None else np.arange(len(users))
    users, items, labels = users[history], items[history], labels[history]
    parts = {s: (users[labels == k], items[labels == k]) for k, s in enumerate(_SPLIT_NAMES)}
    dataset = build_dataset(name, parts, carve_valid)
    dataset.notes[:0] = notes
    return dataset


def _first_of_each_pair(users: np.ndarray, items: np.ndarray, times: np.ndarray | None) -> np.ndarray:
    """Row indices, in file order, of each distinct ``(user, item)``'s first occurrence.

    First means earliest by timestamp, ties and missing timestamps in file order: the
    order ``_split_labels`` sorts a history in.
    """
    n = len(users)
    position = np.arange(n)
    _, user_codes = np.unique(users, return_inverse=True)
    _, item_codes = np.unique(items, return_inverse=True)
    order = np.lexsort((position, times)) if times is not None else position
    key = user_codes.astype(np.int64)[order] * (int(item_codes.max(initial=0)) + 1) + item_codes[order]
    _, first = np.unique(key, return_index=True)
    return np.sort(order[first])


def _field(rows: list[list[str]] | np.ndarray, col: int) -> np.ndarray:
    """One stripped column, from a rectangular table or from ragged csv rows."""
    if isinstance(rows, np.ndarray):
        return np.char.strip(rows[:, col])
    return np.array([r[col].strip() for r in rows], dtype=str)


def _parse_times(file: Path, column: str, values: np.ndarray, numbers: list[int]) -> np.ndarray:
    """Timestamps as float64; the per-value retry only runs to locate a bad one."""
    try:
        times = np.array(values, dtype=np.float64)
        bad = ~np.isfinite(times)
    except ValueError:
        times = np.zeros(0)
        bad = np.array([not _finite(v) for v in values.tolist()])
    if bad.any():
        k = int(np.argmax(bad))
        value = str(values[k])
        raise UserError(f"{file}:{numbers[k]}: {column} = {value!r} is not a finite number; "
                        "timestamps must be numeric (e.g. Unix seconds)")
    return times


def _finite(value: str) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except ValueError:
        return False


def _split_labels(
    users: np.ndarray, times: np.ndarray | None, split: str, ratios: list[float], seed: int
) -> np.ndarray:
    """Label each interaction 0 (train), 1 (valid) or 2 (test) within its user's history.

    History order is by timestamp, ties and missing timestamps kept in file order, except
    that ``ratio`` without timestamps shuffles each user with ``seed`` (file order would be
    an arbitrary bias). ``loo`` holds out the last item for test and the one before for
    valid (2 items: train + test; 1 item: train). ``ratio`` rounds the cumulative fractions
    half up, but every user keeps at least one training item so nobody is dropped.
    """
    n = len(users)
    _, user_codes = np.unique(users, return_inverse=True)
    position = np.arange(n)
    if times is not None:
        order = np.lexsort((position, times, user_codes))
    elif split == "ratio":
        order = np.lexsort((np.random.default_rng(seed).random(n), user_codes))
    else:
        order = np.lexsort((position, user_codes))
    sorted_users = user_codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, n])
    size = np.repeat(sizes, sizes)
    rank = position - np.repeat(starts, sizes)
    if split == "loo":
        from_end = size - 1 - rank
        test = (from_end == 0) & (size >= 2)
        valid = (from_end == 1) & (size >= 3)
        label = np.where(test, 2, np.where(valid, 1, 0))
    else:
        n_train = np.maximum(1, _round_half_up(ratios[0] * size))
        n_seen = np.maximum(n_train, _round_half_up((ratios[0] + ratios[1]) * size))
        label = np.where(rank < n_train, 0, np.where(rank < n_seen, 1, 2))
    labels = np.empty(n, dtype=np.int64)
    labels[order] = label
    return labels


def _round_half_up(x: np.ndarray) -> np.ndarray:
    """Half-up rounding; the epsilon keeps 0.1 * 5 (= 0.49999...) from rounding down."""
    return np.floor(x + 0.5 + 1e-9).astype(np.int64)
