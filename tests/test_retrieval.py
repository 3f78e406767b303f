"""Faiss export and recommend: an index measured against exact full ranking, top items for one user."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import faiss  # the `faiss` extra, which the test command installs: missing means failing, not skipping
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lgcn_tui import config, retrieval, rundir
from lgcn_tui.cli import app
from lgcn_tui.data.sidecar import Sidecar, write_sidecar
from lgcn_tui.errors import UserError
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.run.loader import load_model
from lgcn_tui.train.ranking import KnownItems, embedding_ranker, evaluate_split, known_items


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[rundir.RunDir, Run]]:
    """A short run on 1,000 synthetic items, on one thread (tiny work is slower on two busy cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs")
    cfg = config.resolve({}, "test", ["data.synthetic_users=200", "data.synthetic_items=1000",
                                      "data.synthetic_per_user=12", "data.synthetic_dim=16", "optim.batch_size=256",
                                      "optim.user_lr=1e-2", "optim.item_lr=3e-3", "optim.warmup_epochs=1",
                                      "run.epochs=2", "eval.sim_pairs=0", f'run.out_dir="{out}"'])
    trainer = Run(cfg, preset="test")
    trainer.setup()
    assert trainer.train() == "done"
    trainer.cleanup()
    yield trainer.run_dir, trainer
    torch.set_num_threads(threads)


def embeddings(trainer: Run) -> tuple[torch.Tensor, torch.Tensor]:
    return trainer.model.final_embeddings(trainer.adj)


def reference_topk(users_emb: np.ndarray, items_emb: np.ndarray, users: np.ndarray, known: np.ndarray,
                   k: int) -> np.ndarray:
    """Masked top-k the slow obvious way: score everything, blank the known pairs, sort."""
    scores = users_emb[users] @ items_emb.T
    row = {u: r for r, u in enumerate(users.tolist())}
    for u, i in known.tolist():
        if u in row:
            scores[row[u], i] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_flat_index_reproduces_exact_evaluation(trained, tmp_path: Path) -> None:
    _, trainer = trained
    users, items = embeddings(trainer)
    dataset = trainer.dataset
    report = retrieval.export_index(users, items, dataset, "flat", tmp_path, chunk=64)
    evaluated = evaluate_split(users, items, dataset, "test", [20], 1024)
    assert report.exact_recall == pytest.approx(evaluated["recall@20"], abs=1e-12)
    # Equal up to float rounding: faiss and torch may sum in another order, so one near-tie may swap.
    assert report.overlap >= 1 - 1 / (20 * report.users)
    assert report.ann_recall == pytest.approx(report.exact_recall, abs=1 / report.users)
    index = faiss.read_index(report.file)
    assert index.ntotal == dataset.n_items
    saved = json.loads(Path(report.file).with_suffix(".json").read_text())
    assert saved["kind"] == "flat" and saved["exact_recall"] == report.exact_recall


@pytest.mark.parametrize("kind, least", [("hnsw", 0.95), ("ivf", 0.55)])
def test_approximate_indexes_stay_close_to_exact(trained, tmp_path: Path, kind: str, least: float) -> None:
    """HNSW finds nearly all of the exact top 20; IVF probing an eighth of its lists most of them."""
    _, trainer = trained
    users, items = embeddings(trainer)
    report = retrieval.export_index(users, items, trainer.dataset, kind, tmp_path, chunk=64)
    assert report.overlap >= least
    assert report.ann_recall == pytest.approx(report.exact_recall, abs=0.05)


def test_masked_search_and_exact_topk_equal_the_obvious_reference(trained) -> None:
    """k = 5 is below most users' counts of seen items, so masking and the per-count groups matter."""
    _, trainer = trained
    dataset = trainer.dataset
    users_t, items_t = embeddings(trainer)
    users_np, items_np = users_t.numpy(), items_t.numpy()
    users = np.unique(dataset.test[:, 0])
    known = known_items(dataset, "test")
    want = reference_topk(users_np, items_np, users, known, 5)

    def brute(queries: np.ndarray, n: int) -> np.ndarray:
        return np.argsort(-(queries @ items_np.T), axis=1, kind="stable")[:, :n]

    found = retrieval.masked_search(brute, users_np, users, known, dataset.n_items, 5)
    exact = embedding_ranker(users_t, items_t, KnownItems.of(known, dataset.n_users, torch.device("cpu")), chunk=7).topk(
        users, 5)
    for got in (found, exact):
        same = np.sort(got, axis=1) == np.sort(want, axis=1)
        assert same.mean() > 0.999  # a float near-tie at rank 5 may differ between numpy and torch
    known_keys = set((known[:, 0] * dataset.n_items + known[:, 1]).tolist())
    assert not known_keys & set((users[:, None] * dataset.n_items + found).ravel().tolist())


def test_missing_faiss_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(UserError, match=r"pip install 'lgcn-tui\[faiss\]'"):
        retrieval.require_faiss()


def test_export_faiss_from_the_command_line(trained) -> None:
    run, _ = trained
    runner = CliRunner()
    done = runner.invoke(app, ["export", str(run.path), "--faiss", "--index", "flat"])
    assert done.exit_code == 0, done.output
    assert "Recall@20" in done.output and (run.export / "items-flat.faiss").is_file()
    refused = runner.invoke(app, ["export", str(run.path), "--index", "hnsw"])
    assert refused.exit_code == 2 and "add --faiss" in refused.output
    bad = runner.invoke(app, ["export", str(run.path), "--faiss", "--index", "lsh"])
    assert bad.exit_code == 2 and "flat, ivf, hnsw" in bad.output


def test_recommend_prints_top_items_without_training_items_and_with_titles(trained, tmp_path: Path) -> None:
    run, trainer = trained
    dataset = trainer.dataset
    user = 7
    titles = tmp_path / "catalogue.item"
    titles.write_text("item_id:token\tmovie_title:token_seq\n"
                      + "".join(f"{i}\tTitle number {i}\n" for i in dataset.item_ids))
    result = CliRunner().invoke(app, ["recommend", str(run.path), "--user", dataset.user_ids[user], "-k", "5",
                                      "--items", str(titles)])
    assert result.exit_code == 0, result.output
    best = load_model(run.path)  # what recommend ranks by: the best checkpoint, not the final state
    users, items = (t.numpy() for t in best.model.final_embeddings(best.adj))
    want = reference_topk(users, items, np.array([user]), dataset.train, 5)[0]
    lines = [line for line in result.output.splitlines() if line.startswith("│ ")]
    shown = [[c.strip() for c in line.strip("│").split("│")] for line in lines]
    assert [row[1] for row in shown] == [dataset.item_ids[i] for i in want]
    assert [row[3] for row in shown] == [f"Title number {dataset.item_ids[i]}" for i in want]
    assert [float(row[2]) for row in shown] == pytest.approx((items[want] @ users[user]).tolist(), abs=1e-4)


def test_unknown_user_is_refused_with_examples(trained) -> None:
    run, _ = trained
    result = CliRunner().invoke(app, ["recommend", str(run.path), "--user", "no-such-user"])
    assert result.exit_code == 2
    assert "'no-such-user'" in result.output and "e.g. 0, 1, 2" in result.output
    assert "user_ids.json" in result.output


def test_item_files_in_each_accepted_shape(tmp_path: Path) -> None:
    recbole = tmp_path / "ml.item"
    recbole.write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\n1\tToy Story\t1995\n")
    quoted = tmp_path / "items.csv"
    quoted.write_text('item,name\nb7,"Shampoo, 200 ml"\n')
    amazon = tmp_path / "meta.jsonl.gz"
    amazon.write_bytes(gzip.compress(b'{"parent_asin": "B00X", "title": "Lip balm"}\n\n'
                                     b'{"parent_asin": "B00Y", "title": null}\n'))
    assert retrieval.read_titles(recbole) == {"1": "Toy Story"}
    assert retrieval.read_titles(quoted) == {"b7": "Shampoo, 200 ml"}
    assert retrieval.read_titles(amazon) == {"B00X": "Lip balm", "B00Y": ""}
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("sku\tlabel\n1\tx\n")
    with pytest.raises(UserError, match=r"wrong\.tsv:1: no item_id or .* column for the item id; the header has sku, label"):
        retrieval.read_titles(wrong)
    untitled = tmp_path / "untitled.tsv"
    untitled.write_text("item_id\tbrand\n1\tx\n")
    with pytest.raises(UserError, match=r"untitled\.tsv: no title field \(title, movie_title, name\).*header has item_id, brand"):
        retrieval.read_titles(untitled)


def test_the_item_file_beside_the_data_is_found(tmp_path: Path) -> None:
    folder = tmp_path / "beauty"
    folder.mkdir()
    (folder / "Beauty.item").write_text("item_id:token\ttitle:token\n")
    cfg = config.resolve({}, "test", ["data.format=lightgcn", f'data.path="{folder}"'])
    assert retrieval.find_item_file(cfg) == folder / "Beauty.item"
    inter = tmp_path / "ml.inter"
    inter.write_text("")
    (tmp_path / "ml.item").write_text("")
    cfg = config.resolve({}, "test", ["data.format=recbole", f'data.path="{inter}"'])
    assert retrieval.find_item_file(cfg) == tmp_path / "ml.item"
    assert retrieval.find_item_file(config.resolve({}, "test", [])) is None
    vectors = tmp_path / "x.sent_emb"
    write_sidecar(vectors, Sidecar(model="m", dim=4, fields=["title"], item_ids=["1"], normalized=True,
                                   source=str(folder / "Beauty.item")))
    cfg = config.resolve({}, "test", ["data.format=recbole", f'data.path="{inter}"', f'data.pretrained="{vectors}"'])
    assert retrieval.find_item_file(cfg) == folder / "Beauty.item"
