"""A seeded synthetic dataset with structure that LightGCN can learn and text vectors can help with.

Items have latent factors with a topic each; users prefer two topics plus a personal
direction; interactions are drawn by a softmax over preference·factors plus a popularity
bias. The "pretrained" item vectors are a noisy random projection of the factors, and for
a share of items (``synthetic_mislabeled``) of another item's factors — text describes
most items well and some misleadingly. So warm-started items start ahead of random ones,
and fine-tuning them on the graph can correct what the text got wrong.
"""

from __future__ import annotations

import numpy as np

from ..config import DataConfig
from .dataset import Dataset, build_dataset


def generate(cfg: DataConfig, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    n_users, n_items, n_factors = cfg.synthetic_users, cfg.synthetic_items, cfg.synthetic_factors
    per_user = min(cfg.synthetic_per_user, n_items - 1)
    topics = rng.integers(0, n_factors, size=n_items)
    factors = 1.5 * rng.standard_normal((n_items, n_factors)) / np.sqrt(n_factors)
    factors[np.arange(n_items), topics] += 1.0
    factors /= np.linalg.norm(factors, axis=1, keepdims=True)
    prefs = np.zeros((n_users, n_factors))
    liked = rng.integers(0, n_factors, size=(n_users, 2))
    np.put_along_axis(prefs, liked, 1.0, axis=1)
    prefs += 0.5 * rng.standard_normal(prefs.shape)
    popularity = 0.5 * rng.standard_normal(n_items)
    logits = 5.0 * prefs @ factors.T + popularity
    gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, size=logits.shape)))
    chosen = np.argpartition(-(logits + gumbel), per_user, axis=1)[:, :per_user]
    rng.permuted(chosen, axis=1, out=chosen)
    bounds = np.cumsum([0.0, *cfg.split_ratios[:2]]) * per_user
    cut_valid, cut_test = int(round(bounds[1])), int(round(bounds[2]))
    users = np.repeat(np.arange(n_users)[:, None], per_user, axis=1)
    parts = {"train": (0, cut_valid), "valid": (cut_valid, cut_test), "test": (cut_test, per_user)}
    splits = {name: (users[:, a:b].ravel(), chosen[:, a:b].ravel()) for name, (a, b) in parts.items()}
    dataset = build_dataset("synthetic", splits)
    described = factors.copy()
    wrong = rng.random(n_items) < cfg.synthetic_mislabeled
    described[wrong] = factors[rng.integers(0, n_items, size=int(wrong.sum()))]
    projection = rng.standard_normal((n_factors, cfg.synthetic_dim)) / np.sqrt(n_factors)
    text = described @ projection
    text += cfg.synthetic_noise * text.std() * rng.standard_normal(text.shape)
    rows = np.array([int(i) for i in dataset.item_ids])
    dataset.pretrained = np.ascontiguousarray(text[rows], dtype=np.float32)
    return dataset
