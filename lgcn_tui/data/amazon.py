"""Readers for the Amazon Reviews 2023 benchmark files users already have.

The public benchmark scripts of the Amazon Reviews 2023 release write each domain as
``{Domain}.train.csv``, ``{Domain}.valid.csv`` and ``{Domain}.test.csv`` in these shapes:

- ``user_id,parent_asin,rating,timestamp``: headerless as the scripts write it, with that
  header in the published files (``last_out``, ``timestamp``; ``rating_only`` is the same
  rows in one unsplit ``{Domain}.csv``);
- the same plus ``history``, the user's earlier items separated by spaces (``*_w_his``);
- ``user_id,history,item_id`` with every id replaced by its integer from a ``.data_maps``.

Sequential-recommendation code built on them writes RecBole ``{Domain}.{split}.inter``
files (``user_id:token  item_id_list:token_seq  item_id:token``) with raw ids. The
``.data_maps`` JSON maps raw ids to integers (``item2id``, ``user2id``; ``[PAD]`` is 0 and
items count from 1), and a ``.sent_emb`` made with it has row ``i`` = the item whose
``item2id`` is ``i``. That order (first appearance, or first date, depending on the script)
cannot be recomputed from the splits, so raw ASINs find their rows only through the map.

Each row is one interaction: its split's target item. History items that a user has as a
target in no split are added to train, because the sequential scripts drop each user's
first interaction as a target (its history would be empty) and it survives only in later
histories. History items that are targets elsewhere stay where they are, so a validation
item in a test row's history never leaks into train.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .dataset import Dataset, build_dataset
from .readers import _check_split, _parse_times, _read_text, _split_labels, csv_rows

SPLIT_NAMES = ("train", "valid", "test")
_SPLIT_FILE = re.compile(r"^(?P<domain>.+)\.(?P<split>train|valid|test)\.(?P<kind>csv|inter)$")
_USER = ("user_id", "user")
_ITEM = ("parent_asin", "item_id", "item", "asin")
_HISTORY = ("history", "item_id_list")
_TIME = ("timestamp",)
_HEADERLESS = {4: ("user_id", "parent_asin", "rating", "timestamp"),
               5: ("user_id", "parent_asin", "rating", "timestamp", "history")}
_SHAPES = ("headerless user,item,rating,timestamp[,history] rows as the benchmark scripts write "
           "them, or a header naming user_id and parent_asin (or item_id)")


@dataclass
class IdMap:
    """The integer ids of a ``.data_maps`` JSON, read from its ``item2id`` and ``user2id``.

    Only the raw -> integer dictionaries are trusted; the reverse lookups are derived from
    them, so a file whose ``id2item`` list disagrees cannot mislead the alignment.
    """

    path: Path
    item2id: dict[str, int]
    user2id: dict[str, int]

    def __post_init__(self) -> None:
        self.id2item = {v: k for k, v in self.item2id.items()}
        self.id2user = {v: k for k, v in self.user2id.items()}

    @property
    def n_items(self) -> int:
        """The largest item integer: the row count of an unpadded embedding file."""
        return max(self.item2id.values(), default=0)


@dataclass
class _Rows:
    """One file's interactions as raw strings, with the line each came from."""

    file: Path
    users: list[str]
    items: list[str]
    histories: list[list[str]] | None
    times: list[str] | None
    lines: list[int]
    time_column: str = "timestamp"


def load_id_map(path: Path, key: str = "data.id_map") -> IdMap:
    """Read a ``.data_maps`` JSON; ``key`` names the setting that pointed at it, for errors."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"{key} {path} {what}; expected the {{Domain}}.data_maps JSON (with "
                        "item2id) written by the Amazon Reviews 2023 processing scripts")
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); {key} must be a "
                        ".data_maps JSON with item2id") from exc
    if not isinstance(data, dict) or not isinstance(data.get("item2id"), dict):
        raise UserError(f"{path}: no 'item2id' object; {key} must be a .data_maps JSON whose "
                        "item2id maps each raw item id (ASIN) to its integer")
    item2id = _checked_ids(path, "item2id", data["item2id"])
    users = data.get("user2id")
    user2id = _checked_ids(path, "user2id", users) if isinstance(users, dict) else {}
    return IdMap(path, item2id, user2id)


def read_amazon2023(path: Path, id_map: Path | None, split: str, ratios: list[float], seed: int,
                    carve_valid: bool = False) -> Dataset:
    """An Amazon Reviews 2023 benchmark domain: split files, or one unsplit ``rating_only`` file.

    ``path`` is a directory holding one domain's split files, one of those files, a prefix
    such as ``dir/All_Beauty``, or a single unsplit CSV (then ``split`` and ``ratios`` apply,
    ordered by timestamp). With ``id_map``, ids written as integers are turned back into raw
    ids and every item gets its ``item2id`` row for the pretrained vectors. ``carve_valid``:
    without valid interactions, each user's latest training item is held out as valid (by
    timestamp in an unsplit file; in split files by file order, history-only items first).
    """
    _check_split(split, ratios)
    ids = load_id_map(id_map) if id_map is not None else None
    found, name = _locate(path)
    if isinstance(found, Path):
        rows = _read_file(found, ids)
        _require_rows(rows)
        times = None
        if rows.times is not None:
            times = _parse_times(found, rows.time_column, np.array(rows.times, dtype=str), rows.lines)
        labels = _split_labels(np.array(rows.users, dtype=str), times, split, ratios, seed)
        users, items = np.array(rows.users, dtype=str), np.array(rows.items, dtype=str)
        if times is not None:
            history = np.lexsort((np.arange(len(users)), times))
            users, items, labels = users[history], items[history], labels[history]
        parts = {s: (users[labels == k], items[labels == k]) for k, s in enumerate(SPLIT_NAMES)}
        dataset = build_dataset(name, parts, carve_valid)
    else:
        read = {s: _read_file(f, ids) for s, f in found.items()}
        _require_rows(read["train"])
        parts, added = _with_history(read)
        dataset = build_dataset(name, parts, carve_valid)
        if added:
            dataset.notes.append(f"added {added} history-only interactions to train")
    if ids is not None:
        dataset.item_rows = np.array([ids.item2id[i] for i in dataset.item_ids], dtype=np.int64)
    return dataset


def _require_rows(rows: _Rows) -> None:
    if not rows.users:
        raise UserError(f"{rows.file}: no interactions; expected {_SHAPES}")


def _checked_ids(path: Path, key: str, mapping: dict) -> dict[str, int]:
    """``mapping`` without ``[PAD]``, refusing non-integer or shared values (they would misalign rows)."""
    out: dict[str, int] = {}
    seen: dict[int, str] = {}
    for raw, value in mapping.items():
        if raw == "[PAD]":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UserError(f"{path}: {key}[{raw!r}] = {value!r}; every {key} value must be a "
                            "non-negative integer")
        if value in seen:
            raise UserError(f"{path}: {key} gives {seen[value]!r} and {raw!r} the same id {value}; "
                            "each id must be unique")
        seen[value] = raw
        out[raw] = value
    return out


def _locate(path: Path) -> tuple[dict[str, Path] | Path, str]:
    """The split files ``data.path`` names (train and test required), or one unsplit file."""
    if path.is_dir():
        trains = sorted(p for p in path.iterdir() if _split_of(p) == "train")
        if len(trains) == 1:
            return _siblings(trains[0])
        if not trains:
            raise UserError(f"{path}: no {{Domain}}.train.csv or {{Domain}}.train.inter here; the "
                            "amazon2023 format needs a domain's train/valid/test split files, or "
                            "data.path set to a single unsplit CSV")
        listed = ", ".join(p.name for p in trains)
        raise UserError(f"{path} holds the splits of several domains ({listed}); set data.path to "
                        f"one of them, e.g. {path / _SPLIT_FILE.match(trains[0].name)['domain']}")
    if path.is_file():
        return _siblings(path) if _split_of(path) else (path, path.stem)
    for kind in ("csv", "inter"):
        train = path.parent / f"{path.name}.train.{kind}"
        if train.is_file():
            return _siblings(train)
    raise UserError(f"data.path {path} does not exist; the amazon2023 format needs a directory with "
                    "one domain's {Domain}.train/.valid/.test .csv or .inter files, the prefix "
                    "dir/{Domain}, one of those files, or an unsplit CSV")


def _split_of(path: Path) -> str | None:
    match = _SPLIT_FILE.match(path.name)
    return match["split"] if match and path.is_file() else None


def _siblings(one: Path) -> tuple[dict[str, Path], str]:
    match = _SPLIT_FILE.match(one.name)
    assert match is not None
    domain, kind = match["domain"], match["kind"]
    files = {s: one.with_name(f"{domain}.{s}.{kind}") for s in SPLIT_NAMES}
    for s in ("train", "test"):
        if not files[s].is_file():
            raise UserError(f"{one.parent}: {files[s].name} is missing; the amazon2023 format needs "
                            f"{domain}.train.{kind} and {domain}.test.{kind} ({domain}.valid.{kind} "
                            "optional)")
    return {s: f for s, f in files.items() if f.is_file()}, domain


def _read_file(file: Path, ids: IdMap | None) -> _Rows:
    rows = _read_inter(file) if file.suffix == ".inter" else _read_csv(file)
    if ids is not None:
        _translate_items(rows, ids)
        _translate_users(rows, ids)
    return rows


def _read_csv(file: Path) -> _Rows:
    """A benchmark CSV: header or not, ``history`` optional; only the needed columns are parsed."""
    text = _read_text(file)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: tuple[str, ...] | None = None
    body: list[list[str]] = []
    lines: list[int] = []
    for number, fields in csv_rows(file, reader):
        if header is None:
            names = tuple(f.strip().split(":", 1)[0].lower() for f in fields)
            if any(n in _USER for n in names):
                header = names
                continue
            if len(fields) not in _HEADERLESS:
                raise UserError(f"{file}:{number}: {len(fields)} comma-separated fields; expected {_SHAPES}")
            header = _HEADERLESS[len(fields)]
        body.append(fields)
        lines.append(number)
    return _columns(file, list(header or ()), body, lines, ",")


def _read_inter(file: Path) -> _Rows:
    """A RecBole ``.inter`` split: tab separated under a typed header."""
    lines_text = _read_text(file).split("\n")
    header = lines_text[0].rstrip("\r").split("\t")
    body, lines = [], []
    for number, line in enumerate(lines_text[1:], start=2):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != len(header):
            raise UserError(f"{file}:{number}: {len(fields)} tab-separated fields, but the header has "
                            f"{len(header)} ({', '.join(header)})")
        body.append(fields)
        lines.append(number)
    return _columns(file, header, body, lines, "\t")


def _columns(file: Path, header: list[str], body: list[list[str]], lines: list[int], sep: str) -> _Rows:
    names = [h.strip().split(":", 1)[0].lower() for h in header]
    if not body:
        return _Rows(file, [], [], None, None, [])

    def find(wanted: tuple[str, ...]) -> int | None:
        return next((names.index(w) for w in wanted if w in names), None)

    user, item, history, time = find(_USER), find(_ITEM), find(_HISTORY), find(_TIME)
    if user is None or item is None:
        raise UserError(f"{file}:1: the header ({', '.join(header)}) names no "
                        f"{'user_id' if user is None else 'parent_asin or item_id'} column; "
                        f"expected {_SHAPES}")
    need = max(c for c in (user, item, history, time) if c is not None) + 1
    for fields, number in zip(body, lines):
        if len(fields) < need:
            raise UserError(f"{file}:{number}: {len(fields)} field(s) separated by {sep!r}; expected "
                            f"at least {need} ({', '.join(header[:need])})")
        for col in (user, item):
            if not fields[col].strip():
                raise UserError(f"{file}:{number}: empty {header[col]!r}; every row needs a user id "
                                "and an item id")
    return _Rows(
        file=file,
        users=[f[user].strip() for f in body],
        items=[f[item].strip() for f in body],
        histories=None if history is None else [f[history].split() for f in body],
        times=None if time is None else [f[time].strip() for f in body],
        lines=lines,
        time_column=header[time].strip() if time is not None else "timestamp",
    )


def _translate_items(rows: _Rows, ids: IdMap) -> None:
    """Raw ids stay; integers written through the map become raw ids; anything else is refused.

    The whole file is one or the other, decided by its first item, so a stray integer in a
    raw file is an error rather than silently read as some other item.
    """
    if not rows.items:
        return
    raw = rows.items[0] in ids.item2id

    def convert(value: str) -> str | None:
        if raw:
            return value if value in ids.item2id else None
        return ids.id2item.get(int(value)) if _is_integer(value) else None

    if raw:
        expected = f"a key of its item2id ({len(ids.item2id)} items)"
    else:
        expected = f"a raw item id (ASIN) or an integer of its item2id (1..{ids.n_items})"
    out = []
    for value, number in zip(rows.items, rows.lines):
        new = convert(value)
        if new is None:
            raise UserError(f"{rows.file}:{number}: item {value!r} is not {expected} in {ids.path}; "
                            "data.id_map must be the .data_maps made together with these files")
        out.append(new)
    rows.items = out
    if rows.histories is not None:
        hist = []
        for history, number in zip(rows.histories, rows.lines):
            converted = [convert(v) for v in history]
            if None in converted:
                bad = history[converted.index(None)]
                raise UserError(f"{rows.file}:{number}: history item {bad!r} is not {expected} in "
                                f"{ids.path}; data.id_map must be the .data_maps made together with "
                                "these files")
            hist.append(converted)
        rows.histories = hist


def _translate_users(rows: _Rows, ids: IdMap) -> None:
    """Users written as the map's integers get their raw ids back (exports then name real users).

    Raw user ids need no map, so a file of raw ids, or a map without ``user2id``, is left alone.
    """
    if not ids.user2id or not rows.users or rows.users[0] in ids.user2id:
        return
    out = []
    for value, number in zip(rows.users, rows.lines):
        raw = ids.id2user.get(int(value)) if _is_integer(value) else None
        if raw is None:
            raise UserError(f"{rows.file}:{number}: user {value!r} is neither a raw user id nor an "
                            f"integer of the user2id in {ids.path} (1..{max(ids.id2user)})")
        out.append(raw)
    rows.users = out


def _is_integer(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _with_history(read: dict[str, _Rows]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Each split's targets, plus train pairs for history items that are nobody's target."""
    parts = {s: (np.array(r.users, dtype=str), np.array(r.items, dtype=str)) for s, r in read.items()}
    hist_users = [u for r in read.values() if r.histories for u, h in zip(r.users, r.histories) for _ in h]
    if not hist_users:
        return parts, 0
    hist_items = [i for r in read.values() if r.histories for h in r.histories for i in h]
    targets = np.concatenate([np.char.add(np.char.add(u, "\t"), i) for u, i in parts.values()])
    keys = np.unique(np.char.add(np.char.add(np.array(hist_users, dtype=str), "\t"),
                                 np.array(hist_items, dtype=str)))
    extra = keys[~np.isin(keys, targets)]
    if not extra.size:
        return parts, 0
    pairs = np.char.partition(extra, "\t")
    users, items = parts["train"]
    # History-only items precede every target, so they go first: train stays in history order.
    parts["train"] = (np.concatenate([pairs[:, 0], users]), np.concatenate([pairs[:, 2], items]))
    return parts, int(extra.size)
