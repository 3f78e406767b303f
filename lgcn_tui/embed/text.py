"""Item text from the files users have: RecBole ``.item``, CSV/TSV, JSONL, Amazon 2023 metadata.

Each reader returns every item's raw id and the chosen fields, cleaned and joined in the
order given, e.g. ``"OPI Nail Lacquer, Simmer and Shimmer. Beauty, Makeup, Nails"``.
Cleaning turns lists into comma-separated text (RecBole writes Amazon category paths as
``'Beauty', 'Makeup'``; Amazon 2023 metadata has real JSON lists), drops HTML tags and
entities (Amazon descriptions carry ``<br>`` and ``&amp;``) and collapses whitespace,
because markup tokens only dilute what a sentence encoder sees in its 256-token window.
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..data.readers import csv_rows
from ..errors import UserError

ID_NAMES = ("item_id", "parent_asin", "asin", "item", "id")
_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][^<>]*>", re.DOTALL)
_SPACE = re.compile(r"\s+")
_KINDS = {".item": "recbole", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
          ".ndjson": "jsonl"}


class MissingField(UserError):
    """A text field no item of the file has (the message lists the fields it does have)."""


@dataclass
class ItemTexts:
    """The items of one file: ``texts[k]`` ("" when none of the fields had text) is item ``ids[k]``."""

    source: Path
    ids: list[str]
    texts: list[str]
    lines: list[int]
    fields: list[str]


def read_item_texts(path: Path, fields: list[str], id_field: str | None = None) -> ItemTexts:
    """Read ``path`` (kind from its name: ``.item``, ``.csv``, ``.tsv``, ``.jsonl`` / ``.json``,
    each optionally ``.gz``) and join ``fields`` for each item.

    The id column is ``id_field`` or the first of item_id, parent_asin, asin, item, id present.
    A field that no item has is refused with the fields that do exist: a typo would
    otherwise embed every item as a zero row.
    """
    if not fields:
        raise UserError("--fields is empty; name the text fields to embed, e.g. --fields title,categories")
    name = path.name.lower()
    inner = Path(name[:-3]) if name.endswith(".gz") else Path(name)
    kind = _KINDS.get(inner.suffix)
    if kind is None:
        raise UserError(f"{path}: cannot tell the format from the name; expected a RecBole .item, "
                        ".csv, .tsv or .jsonl (Amazon 2023 metadata: meta_Domain.jsonl), optionally .gz")
    text = _read(path, name.endswith(".gz"))
    if kind == "jsonl":
        return _read_jsonl(path, text, fields, id_field)
    return _read_table(path, text, fields, id_field, kind)


def clean_text(value: object) -> str:
    """One field's value as plain text: lists joined by ", ", dicts as "key: value", HTML removed."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(t for t in (clean_text(v) for v in value) if t)
    if isinstance(value, dict):
        parts = ((clean_text(k), clean_text(v)) for k, v in value.items())
        return ", ".join(f"{k}: {v}" if k else v for k, v in parts if v)
    text = _TAG.sub(" ", html.unescape(str(value)))
    return _SPACE.sub(" ", text).strip()


def join_fields(parts: list[str]) -> str:
    """Non-empty parts as sentences: ". " between them unless a part already ends a sentence."""
    out = ""
    for part in (p for p in parts if p):
        out += (part if not out else (" " if out[-1] in ".!?" else ". ") + part)
    return out


def _read(path: Path, gzipped: bool) -> str:
    try:
        data = gzip.decompress(path.read_bytes()) if gzipped else path.read_bytes()
    except FileNotFoundError as exc:
        raise UserError(f"item file {path} does not exist") from exc
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text ({exc.reason}); save the file as UTF-8") from exc


def _read_table(path: Path, text: str, fields: list[str], id_field: str | None, kind: str) -> ItemTexts:
    """A headed table: RecBole ``.item`` and ``.tsv`` are tab separated and unquoted, ``.csv`` quoted."""
    tab = kind != "csv"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if tab else ",",
                        quoting=csv.QUOTE_NONE if tab else csv.QUOTE_MINIMAL, strict=not tab)
    header: list[str] | None = None
    ids: list[str] = []
    texts: list[str] = []
    lines: list[int] = []
    for number, row in csv_rows(path, reader):
        if header is None:
            header = [h.strip() for h in row]
            names = [h.split(":", 1)[0].lower() for h in header]
            id_col = _pick_id(path, names, header, id_field)
            cols = [_pick_field(path, names, header, f) for f in fields]
            listy = [header[c].endswith(":token_seq") or names[c] in ("categories", "category")
                     for c in cols]
            continue
        if len(row) != len(header):
            raise UserError(f"{path}:{number}: {len(row)} fields, but the header has {len(header)} "
                            f"({', '.join(header)})")
        ids.append(_item_id(path, number, row[id_col], header[id_col]))
        texts.append(join_fields([_table_value(row[c], seq) for c, seq in zip(cols, listy)]))
        lines.append(number)
    if header is None:
        raise UserError(f"{path}: the file is empty; expected a header naming item_id and the text fields")
    return _checked(ItemTexts(path, ids, texts, lines, fields))


def _read_jsonl(path: Path, text: str, fields: list[str], id_field: str | None) -> ItemTexts:
    """One JSON object per line, e.g. Amazon 2023 ``meta_*.jsonl`` (``parent_asin``, ``title``,
    ``features``, ``categories``, ``description``, ``details``, ...)."""
    ids: list[str] = []
    texts: list[str] = []
    lines: list[int] = []
    key: str | None = None
    seen: set[str] = set()
    first: dict = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg}); expected one JSON object "
                            "per line") from exc
        if not isinstance(record, dict):
            raise UserError(f"{path}:{number}: a JSON {type(record).__name__}, expected an object "
                            "with an item id and text fields")
        if key is None:
            first = record
            names = list(record)
            key = id_field or next((n for n in ID_NAMES if n in record), None)
            if key is None or key not in record:
                raise UserError(f"{path}:{number}: no {id_field or ' / '.join(ID_NAMES)} key for the "
                                f"item id; keys here: {', '.join(names)} (choose one with --id-field)")
        if key not in record:
            raise UserError(f"{path}:{number}: no {key!r} key; every line needs the item id")
        ids.append(_item_id(path, number, record[key], key))
        seen.update(f for f in fields if f in record)
        texts.append(join_fields([clean_text(record.get(f)) for f in fields]))
        lines.append(number)
    missing = [f for f in fields if f not in seen]
    if missing:
        raise MissingField(f"{path}: no item has the field(s) {', '.join(missing)}; fields of the first "
                        f"item: {', '.join(first) or 'none (the file is empty)'}")
    return _checked(ItemTexts(path, ids, texts, lines, fields))


def _pick_id(path: Path, names: list[str], header: list[str], id_field: str | None) -> int:
    wanted = (id_field.lower(),) if id_field else ID_NAMES
    col = next((names.index(w) for w in wanted if w in names), None)
    if col is None:
        raise UserError(f"{path}:1: no {' or '.join(wanted)} column for the item id; the header has "
                        f"{', '.join(header)} (choose one with --id-field)")
    return col


def _pick_field(path: Path, names: list[str], header: list[str], field: str) -> int:
    if field.lower() not in names:
        raise MissingField(f"{path}:1: no {field!r} column; the header has {', '.join(header)} "
                        "(--fields takes these names, without the :type)")
    return names.index(field.lower())


def _item_id(path: Path, line: int, value: object, key: str) -> str:
    text = str(value).strip() if value is not None else ""
    if not text:
        raise UserError(f"{path}:{line}: empty {key!r}; every item needs an id")
    return text


def _table_value(value: str, listy: bool) -> str:
    """A table cell; a list column written as Python literals (``'Beauty', 'Makeup'``) is unpacked."""
    value = value.strip()
    if listy and value[:1] in ("'", '"'):
        try:
            parsed = ast.literal_eval(f"[{value}]")
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
            return clean_text(parsed)
    return clean_text(value)


def _checked(items: ItemTexts) -> ItemTexts:
    """Refuse duplicate ids: two texts for one row would make the row depend on file order."""
    first: dict[str, int] = {}
    for item, line in zip(items.ids, items.lines):
        if item in first:
            raise UserError(f"{items.source}:{line}: item id {item!r} again (first on line "
                            f"{first[item]}); each item needs exactly one line")
        first[item] = line
    return items
