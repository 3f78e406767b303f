"""The in-memory dataset every reader produces: contiguous indices, splits and id maps.

Readers only parse files into raw ``(user, item)`` id pairs per split; ``build_dataset``
does the remapping, de-duplication and dropping of users without training items once, so
every format behaves the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    """Interactions as ``(n, 2)`` int64 arrays of ``(user_index, item_index)`` per split.

    ``user_ids[u]`` / ``item_ids[i]`` give the raw id (as a string) of each index, so
    exported embeddings and pretrained rows can be matched back to the user's own ids.
    ``pretrained`` is ``None`` or an ``(n_items, d)`` float32 array aligned to item index.
    ``item_rows[i]`` is item ``i``'s row in pretrained files when an id map assigns rows (an
    Amazon 2023 ``.data_maps``); ``None`` means the raw item id is the row.
    """

    name: str
    n_users: int
    n_items: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    user_ids: list[str]
    item_ids: list[str]
    pretrained: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    item_rows: np.ndarray | None = None

    def stats(self) -> dict[str, int]:
        return {
            "users": self.n_users,
            "items": self.n_items,
            "train": int(len(self.train)),
            "valid": int(len(self.valid)),
            "test": int(len(self.test)),
        }

    def cold_items(self) -> dict[str, tuple[int, int]]:
        """``{split: (interactions, distinct items)}`` of valid/test items absent from train.

        Such items have no edge in the training graph, so propagation never reaches them:
        only their initial embedding scores them. Splits without any are left out.
        """
        warm = np.zeros(self.n_items, dtype=bool)
        warm[self.train[:, 1]] = True
        cold: dict[str, tuple[int, int]] = {}
        for split in ("valid", "test"):
            items = getattr(self, split)[:, 1]
            items = items[~warm[items]]
            if items.size:
                cold[split] = int(items.size), int(np.unique(items).size)
        return cold


_INT = re.compile(r"-?[0-9]+")


def build_dataset(
    name: str,
    splits: dict[str, tuple[list, list] | tuple[np.ndarray, np.ndarray]],
    carve_valid: bool = False,
) -> Dataset:
    """Remap raw ids of ``{"train": (users, items), "valid": ..., "test": ...}`` to indices.

    Users are those with at least one training item (others are dropped and counted in
    ``notes``); items are every item seen in any split. Raw ids sort numerically when they
    are all integers, otherwise as strings, so a 1-based integer catalogue keeps its order.
    Duplicate pairs within a split are removed. Everything is vectorised (``np.unique``
    with ``return_inverse``) because Gowalla-sized inputs have a million pairs.

    ``carve_valid``: when the valid split is empty, each user's last training interaction
    (the train pairs are given in history order) becomes its valid item, for users with two
    or more distinct training items, so best checkpoints and early stopping need not look at
    test; a note says so.
    """
    names = ("train", "valid", "test")
    unknown = set(splits) - set(names)
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}; expected {names}")
    raw = {s: splits.get(s, ([], [])) for s in names}
    sizes = [len(raw[s][0]) for s in names]
    for s, n in zip(names, sizes):
        if len(raw[s][1]) != n:
            raise ValueError(f"split {s!r} has {n} users but {len(raw[s][1])} items")
    user_ids, user_codes = _encode([raw[s][0] for s in names])
    item_ids, item_codes = _encode([raw[s][1] for s in names])
    notes: list[str] = []
    if carve_valid and sizes[1] == 0 and sizes[0]:
        user_codes, item_codes, sizes = _carve(user_codes, item_codes, sizes, notes)
    bounds = np.cumsum([0, *sizes])
    has_train = np.zeros(len(user_ids), dtype=bool)
    has_train[user_codes[: bounds[1]]] = True
    new_index = np.cumsum(has_train) - 1
    dropped = int(len(user_ids) - has_train.sum())
    if dropped:
        notes.append(f"dropped {dropped} users with no training items")
    n_items = max(len(item_ids), 1)
    out: dict[str, np.ndarray] = {}
    for k, s in enumerate(names):
        users = user_codes[bounds[k] : bounds[k + 1]]
        items = item_codes[bounds[k] : bounds[k + 1]]
        keep = has_train[users]
        keys = np.sort(new_index[users[keep]] * n_items + items[keep])
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if keys.size else keys
        out[s] = np.stack([keys // n_items, keys % n_items], axis=1).astype(np.int64)
    kept_users = [u for u, k in zip(user_ids, has_train.tolist()) if k]
    return Dataset(
        name=name,
        n_users=len(kept_users),
        n_items=len(item_ids),
        train=out["train"],
        valid=out["valid"],
        test=out["test"],
        user_ids=kept_users,
        item_ids=item_ids,
        notes=notes,
    )


def _carve(users: np.ndarray, items: np.ndarray, sizes: list[int],
           notes: list[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Codes of all splits with each eligible user's last training pair moved into valid (empty before).

    Every copy of that pair leaves train, so the held-out item is not also a training edge.
    """
    n_train = sizes[0]
    train_users, train_items = users[:n_train], items[:n_train]
    width = int(items.max(initial=0)) + 1
    keys = train_users * width + train_items
    distinct = np.bincount(np.unique(keys) // width, minlength=int(users.max(initial=0)) + 1)
    seen, last_from_end = np.unique(train_users[::-1], return_index=True)
    last = n_train - 1 - last_from_end
    chosen = last[distinct[seen] >= 2]
    held = np.isin(keys, keys[chosen])
    notes.append(f"no validation split: carved one from train, each user's last training item "
                 f"({len(chosen)} users with 2 or more training items); data.carve_valid = 'off' keeps "
                 "train whole")
    valid_users, valid_items = train_users[chosen], train_items[chosen]
    users = np.concatenate([train_users[~held], valid_users, users[n_train:]])
    items = np.concatenate([train_items[~held], valid_items, items[n_train:]])
    return users, items, [int((~held).sum()), len(chosen), sizes[2]]


def _encode(columns: list) -> tuple[list[str], np.ndarray]:
    """Sorted raw ids as strings and each value's index into them, over all splits at once.

    Integers are factorised as integers: sorting a million numbers is several times faster
    than sorting their strings. Strings that are exactly integers (``str(int(s)) == s``)
    take the same path; other strings sort as strings, then numerically if every distinct
    id is an integer (``"007"`` and ``"7"`` stay distinct ids).
    """
    filled = [a for a in (np.asarray(c) for c in columns) if a.size]
    if not filled:
        return [], np.zeros(0, dtype=np.int64)
    if all(a.dtype.kind in "iu" for a in filled):
        return _encode_integers(np.concatenate(filled).astype(np.int64))
    strings = np.concatenate([a.astype(str) for a in filled])
    integers = _exact_integers(strings)
    if integers is not None:
        return _encode_integers(integers)
    uniq, codes = np.unique(strings, return_inverse=True)
    values = uniq.tolist()
    if all(_INT.fullmatch(v) for v in values):
        order = np.array(sorted(range(len(values)), key=lambda k: int(values[k])), dtype=np.int64)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return [values[k] for k in order.tolist()], rank[codes]
    return values, codes.astype(np.int64)


def _encode_integers(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    uniq, codes = np.unique(values, return_inverse=True)
    return [str(v) for v in uniq.tolist()], codes.astype(np.int64)


def _exact_integers(strings: np.ndarray) -> np.ndarray | None:
    """``strings`` as int64 when each is a canonical non-negative integer, else None.

    Canonical means plain digits without a leading zero, so ``str`` of the int gives back the
    raw id exactly; anything else (``"007"``, ``"-1"``, ``"a1"``) keeps the string path.
    Parsed column by column over the fixed-width characters (Horner's rule), because
    ``astype(np.int64)`` on a million strings costs more than the whole remapping.
    """
    if strings.dtype.kind != "U" or strings.dtype.itemsize == 0:
        return None
    width = strings.dtype.itemsize // 4
    chars = np.ascontiguousarray(strings).view(np.uint32).reshape(len(strings), width)
    used = chars != 0
    if not used[:, 0].all() or (used[:, 1:] > used[:, :-1]).any():
        return None  # an empty id, or a NUL inside one
    longest = int(used.any(axis=0).sum())  # ids fill a prefix of the fixed width
    if longest > 18:
        return None
    value = np.zeros(len(strings), dtype=np.int64)
    for j in range(longest):
        digit = chars[:, j].astype(np.int64) - ord("0")
        if (used[:, j] & ((digit < 0) | (digit > 9))).any():
            return None
        if j == 1 and (used[:, 1] & (value == 0)).any():
            return None  # a leading zero
        value = np.where(used[:, j], value * 10 + digit, value)
    return value
