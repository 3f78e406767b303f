"""Datasets: readers for each format, the synthetic generator, pretrained item vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config, expand_path
from ..errors import UserError
from .amazon import read_amazon2023
from .cold import hold_out_items
from .dataset import Dataset
from .pretrained import load_pretrained, prepare_pretrained
from .readers import read_csv, read_lightgcn, read_recbole
from .synthetic import generate


def load(cfg: Config) -> Dataset:
    """The dataset a config names, with pretrained vectors aligned to item index when asked for."""
    data = cfg.data
    seed = data_seed(cfg)
    # Carved valid items would go straight back into train: nothing to carve then.
    carve = data.carve_valid == "auto" and not data.valid_into_train
    layout: list[str] = []
    if data.format == "synthetic":
        dataset = generate(data, seed)
    else:
        path = Path(expand_path(data.path, "data.path"))
        if data.format == "lightgcn":
            dataset = read_lightgcn(path, carve)
        elif data.format == "recbole":
            dataset = read_recbole(path, data.split, data.split_ratios, seed, carve)
        elif data.format == "amazon2023":
            id_map = Path(expand_path(data.id_map, "data.id_map")) if data.id_map else None
            dataset = read_amazon2023(path, id_map, data.split, data.split_ratios, seed, carve)
        else:
            dataset = read_csv(path, data.split, data.split_ratios, seed, carve)
        if data.pretrained:
            source = Path(expand_path(data.pretrained, "data.pretrained"))
            dataset.pretrained = load_pretrained(source, data.pretrained_dim, dataset.item_ids, dataset.item_rows,
                                                 data.pretrained_rows, layout)
    if data.valid_into_train and len(dataset.valid):
        dataset.train = np.unique(np.concatenate([dataset.train, dataset.valid]), axis=0)
        dataset.valid = dataset.valid[:0]
    if data.cold_items:
        dataset.notes.append(hold_out_items(dataset, data.cold_items, data.cold_seed))
    elif data.format != "synthetic":
        note = _cold_note(dataset, data.path)
        if note:
            dataset.notes.append(note)
    if cfg.model.item_init == "xavier" and dataset.cold_items():
        dataset.notes.append("cannot score cold items: with model.item_init = 'xavier' an item without training "
                             "interactions has neither edges nor text, only a random vector, so cold-item metrics "
                             "are not reported; start items from text (model.item_init = 'pretrained') to score them")
    if cfg.model.item_init == "pretrained":
        if dataset.pretrained is None:
            raise UserError("model.item_init = 'pretrained' but no pretrained vectors were given; "
                            "set data.pretrained=PATH (.sent_emb or .npy) or model.item_init=xavier")
        dataset.pretrained = prepare_pretrained(dataset.pretrained, data.normalize, data.pca_dim)
        dataset.notes += layout
    else:
        dataset.pretrained = None
    return dataset


def data_seed(cfg: Config) -> int:
    """The seed of the data itself (synthetic generation, a shuffled ratio split): ``data.seed``, or
    ``run.seed`` when that is -1, so seeds that vary only training keep the data fixed."""
    return cfg.run.seed if cfg.data.seed < 0 else cfg.data.seed


def _cold_note(dataset: Dataset, path: str) -> str | None:
    """One line counting valid/test interactions whose item never occurs in train, or None."""
    cold = dataset.cold_items()
    if not cold:
        return None
    counts = "; ".join(f"{split}: {n} interaction{'s' if n != 1 else ''} with {k} item{'s' if k != 1 else ''}"
                       for split, (n, k) in cold.items())
    return (f"{path}: cold items never seen in train ({counts}); they have no edges in the graph, "
            "so only their initial embeddings score them")
