"""The JSON sidecar next to a ``.sent_emb``: which encoder made it and which item each row is.

A raw ``.sent_emb`` has no header, so a file made for another item order or by another
encoder loads without complaint and only shows up, if ever, as worse metrics. ``lgcn-tui
embed`` therefore writes ``X.sent_emb.json`` beside ``X.sent_emb``, and the trainer's
loader checks it when it is there: the width against ``data.pretrained_dim`` and the item
of every row it uses against the dataset's own item ids. Files without a sidecar load as
before, by the row conventions alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

FORMAT = "lgcn-tui sent_emb sidecar 1"
_INTEGER_ID = np.vectorize(lambda v: v.isascii() and v.isdigit() and int(v) >= 1, otypes=[bool])


@dataclass
class Sidecar:
    """What the rows of an embedding file hold.

    ``item_ids[r - 1]`` is the item of row ``r`` when ``padding`` is true (row 0 is a zero
    row), else of row ``r - 1``. ``zero_rows`` lists the items whose row is zero because
    they had no text, so a user can tell a missing description from a bug.
    """

    model: str
    dim: int
    fields: list[str]
    item_ids: list[str]
    normalized: bool
    padding: bool = True
    source: str = ""
    id_map: str = ""
    zero_rows: list[str] = field(default_factory=list)
    format: str = FORMAT

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def rows(self) -> int:
        return self.n_items + int(self.padding)


def sidecar_path(path: Path) -> Path:
    """``X.sent_emb`` -> ``X.sent_emb.json`` (the suffix is added, not replaced, so it is unambiguous)."""
    return path.with_name(path.name + ".json")


def write_sidecar(path: Path, card: Sidecar) -> Path:
    """Write the sidecar of the embedding file ``path`` atomically; return the sidecar's path."""
    target = sidecar_path(path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(asdict(card), indent=1) + "\n", encoding="utf-8")
    os.replace(partial, target)
    return target


def read_sidecar(path: Path) -> Sidecar | None:
    """The sidecar of the embedding file ``path``, or None when it has none."""
    target = sidecar_path(path)
    if not target.is_file():
        return None
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{target}: not a readable JSON sidecar ({exc}); regenerate it with "
                        f"`lgcn-tui embed` or delete it to load {path.name} without checks") from exc
    if not isinstance(data, dict):
        raise UserError(f"{target}: expected a JSON object with model, dim and item_ids; regenerate "
                        "it with `lgcn-tui embed`")
    known = {"model", "dim", "fields", "item_ids", "normalized", "padding", "source", "id_map",
             "zero_rows", "format"}
    missing = sorted({"model", "dim", "item_ids"} - set(data))
    if missing:
        raise UserError(f"{target}: missing key(s) {', '.join(missing)}; a sidecar written by "
                        "`lgcn-tui embed` has model, dim and item_ids")
    if not isinstance(data["dim"], int) or data["dim"] <= 0 or not isinstance(data["item_ids"], list):
        raise UserError(f"{target}: 'dim' must be a positive integer and 'item_ids' a list of ids "
                        f"(got dim = {data['dim']!r})")
    values = {k: v for k, v in data.items() if k in known}
    values.setdefault("fields", [])
    values.setdefault("normalized", False)
    values["item_ids"] = [str(v) for v in values["item_ids"]]
    return Sidecar(**values)


def sidecar_rows(
    path: Path, card: Sidecar, dim: int | None, item_ids: list[str], rows: np.ndarray | None, via: str
) -> np.ndarray:
    """Row ids (1-based, ``item_ids[r - 1]`` layout) of the dataset's items, checked against ``card``.

    ``rows`` are the rows an id map assigns (None: the raw ids are the rows when they are
    integers, else the sidecar's own order places them). ``via`` says how the rows were
    found, for the error. ``dim`` is None for ``.npy`` files, which carry their width.
    """
    target = sidecar_path(path)
    if dim is not None and card.dim != dim:
        raise UserError(f"{target} says the vectors of {path.name} are {card.dim}-d ({card.model}), "
                        f"but data.pretrained_dim = {dim}; set data.pretrained_dim={card.dim}")
    ids = np.asarray(item_ids, dtype=str)
    if rows is not None:
        found = np.asarray(rows, dtype=np.int64)
    elif ids.size == 0 or _INTEGER_ID(ids).all():
        found = ids.astype(np.int64) if ids.size else np.zeros(0, dtype=np.int64)
    else:
        order = {v: r for r, v in enumerate(card.item_ids, start=1)}
        found = np.array([order.get(v, 0) for v in item_ids], dtype=np.int64)
        absent = np.flatnonzero(found == 0)
        if absent.size:
            shown = ", ".join(repr(item_ids[k]) for k in absent[:5].tolist())
            raise UserError(f"{target} lists no row for {absent.size} of the dataset's {len(item_ids)} "
                            f"items (e.g. {shown}); embed an item file that covers the dataset, or set "
                            "data.id_map to the id map the embeddings were made with")
        via = f"by the item order in {target.name}"
    beyond = (found < 1) | (found > card.n_items)
    if beyond.any():
        k = int(np.argmax(beyond))
        raise UserError(f"the dataset's item {item_ids[k]!r} maps to row {found[k]} ({via}), but "
                        f"{target} describes rows for {card.n_items} items (1..{card.n_items}); the "
                        "embeddings were made from a different or smaller item file")
    listed = np.asarray(card.item_ids, dtype=str)[found - 1] if found.size else ids
    wrong = np.flatnonzero(listed != ids)
    if wrong.size:
        k = int(wrong[0])
        raise UserError(f"{target} says row {found[k]} of {path.name} is item {str(listed[k])!r}, but the "
                        f"dataset's item {item_ids[k]!r} maps to row {found[k]} ({via}); {wrong.size} "
                        f"of {len(item_ids)} items disagree. The vectors follow another item order: "
                        "re-run `lgcn-tui embed` with the dataset's id map (--id-map), or set "
                        "data.id_map to the map they were made with")
    return found
