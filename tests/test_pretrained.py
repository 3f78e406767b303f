"""Pretrained vectors: row conventions, refusals with useful numbers, PCA and normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lgcn_tui.data.pretrained import load_pretrained, prepare_pretrained
from lgcn_tui.data.readers import read_recbole
from lgcn_tui.errors import UserError

DIM = 4


def sent_emb(path: Path, values: list[float], dim: int = DIM) -> Path:
    """A raw float32 file whose row r is filled with ``values[r]``, so alignment is visible."""
    np.repeat(np.asarray(values, dtype="<f4")[:, None], dim, axis=1).tofile(path)
    return path


def test_padding_convention_row_i_is_item_i(tmp_path: Path) -> None:
    path = sent_emb(tmp_path / "pad.sent_emb", [0, 1, 2, 3, 4, 5])  # M = 5, M + 1 rows

    out = load_pretrained(path, DIM, ["3", "1", "5", "2"])

    assert out.shape == (4, DIM) and out.dtype == np.float32 and out.flags.c_contiguous
    assert out.tolist() == [[3.0] * DIM, [1.0] * DIM, [5.0] * DIM, [2.0] * DIM]


def test_unpadded_convention_row_r_is_item_r_plus_1(tmp_path: Path) -> None:
    path = sent_emb(tmp_path / "flat.sent_emb", [1, 2, 3, 4, 5])  # M = 5, M rows

    out = load_pretrained(path, DIM, ["3", "1", "5"])

    assert out[:, 0].tolist() == [3.0, 1.0, 5.0]
    assert (out == out[:, :1]).all()


def test_row_count_fitting_neither_convention_names_both_numbers(tmp_path: Path) -> None:
    path = sent_emb(tmp_path / "odd.sent_emb", list(range(8)))

    with pytest.raises(UserError) as err:
        load_pretrained(path, DIM, ["1", "5"])

    message = str(err.value)
    assert "odd.sent_emb" in message and "8 rows" in message
    assert "expected 6 rows" in message and "or 5 rows" in message
    assert "looks like" not in message  # no common dim fits either


@pytest.mark.parametrize("rows", [6, 5])
def test_wrong_dim_suggests_the_dim_that_fits(tmp_path: Path, rows: int) -> None:
    path = sent_emb(tmp_path / "t5.sent_emb", list(range(rows)), dim=384)

    with pytest.raises(UserError) as err:
        load_pretrained(path, 768, ["1", "2", "5"])

    assert "looks like a 384-dim file; set data.pretrained_dim=384" in str(err.value)
    assert f"{rows * 384 * 4} bytes" in str(err.value)


def test_nan_rows_are_refused_with_item_ids(tmp_path: Path) -> None:
    path = sent_emb(tmp_path / "nan.sent_emb", [np.nan, 1, 2, np.inf, np.nan, 5, 6])

    with pytest.raises(UserError) as err:
        load_pretrained(path, DIM, ["1", "3", "4", "6"])

    message = str(err.value)
    assert "nan.sent_emb" in message and "2 row(s)" in message
    assert "item ids 3, 4" in message
    # The NaN padding row 0 is never used, so it does not matter.
    assert load_pretrained(path, DIM, ["1", "2", "5", "6"])[:, 0].tolist() == [1, 2, 5, 6]


@pytest.mark.parametrize("bad", ["abc", "-2", "1.5"])
def test_item_ids_must_be_non_negative_integers(tmp_path: Path, bad: str) -> None:
    path = sent_emb(tmp_path / "ok.sent_emb", [0, 1, 2, 3])

    with pytest.raises(UserError) as err:
        load_pretrained(path, DIM, ["1", bad, "3"])

    assert repr(bad) in str(err.value) and "non-negative integer item ids" in str(err.value)


# 0-based ids 0..3: the padded file has 5 rows (item i at row i+1), the unpadded one 4 (item i at row i).
@pytest.mark.parametrize(("values", "want", "layout"), [
    ([-1, 0, 10, 20, 30], [20.0, 0.0, 30.0], "row 0 padding, item id i at row i+1"),
    ([0, 10, 20, 30], [20.0, 0.0, 30.0], "item id i at row i"),
])
def test_zero_based_ids_are_placed_by_the_row_count_and_the_note_says_how(tmp_path: Path, values: list[float],
                                                                            want: list[float], layout: str) -> None:
    path = sent_emb(tmp_path / "zero.sent_emb", values)
    notes: list[str] = []

    out = load_pretrained(path, DIM, ["2", "0", "3", "1"], notes=notes)

    assert out[:3, 0].tolist() == want
    assert notes == [f"{path}: {len(values)} rows of {DIM} floats, read as {layout} (told by the row count: "
                     "the data's item ids run 0..3 (0-based))"]


def test_one_based_note_names_the_layout(tmp_path: Path) -> None:
    notes: list[str] = []
    load_pretrained(sent_emb(tmp_path / "flat.sent_emb", [1, 2, 3]), DIM, ["1", "3"], notes=notes)
    assert "read as item id i at row i-1 (told by the row count: the data's item ids run 1..3 (1-based))" in notes[0]


def test_a_file_for_a_larger_catalogue_needs_pretrained_rows(tmp_path: Path) -> None:
    path = sent_emb(tmp_path / "big.sent_emb", [-1, *range(0, 90, 10)])  # ids 0..8 at rows 1..9, data uses 0..3

    with pytest.raises(UserError) as err:
        load_pretrained(path, DIM, ["0", "1", "2", "3"])
    message = str(err.value)
    assert "10 rows" in message and "item ids run 0..3 (0-based)" in message
    assert "expected 5 rows (row 0 padding, item id i at row i+1) or 4 rows (item id i at row i)" in message
    assert "data.pretrained_rows to id+1, id, id-1" in message

    notes: list[str] = []
    out = load_pretrained(path, DIM, ["3", "0"], rows="id+1", notes=notes)
    assert out[:, 0].tolist() == [30.0, 0.0]
    assert "read as row 0 padding, item id i at row i+1 (data.pretrained_rows = 'id+1')" in notes[0]
    assert load_pretrained(path, DIM, ["3", "1"], rows="id-1")[:, 0].tolist() == [10.0, -1.0]
    with pytest.raises(UserError, match=r"data.pretrained_rows = 'id-1' .* puts the data's item ids 0..3 at rows "
                                        r"-1..2, but the file has rows 0..9"):
        load_pretrained(path, DIM, ["0", "3"], rows="id-1")
    with pytest.raises(UserError, match=r"item ids 0..12 at rows 1..13, but the file has rows 0..9"):
        load_pretrained(path, DIM, ["0", "12"], rows="id+1")


def test_pretrained_rows_must_agree_with_a_sidecar(tmp_path: Path) -> None:
    from lgcn_tui.data.sidecar import Sidecar, write_sidecar

    path = sent_emb(tmp_path / "zero.sent_emb", [-1, 0, 10, 20])  # embed's layout of ids 0..2
    write_sidecar(path, Sidecar(model="m", dim=DIM, fields=["title"], item_ids=["0", "1", "2"], normalized=False))

    assert load_pretrained(path, DIM, ["2", "0"])[:, 0].tolist() == [20.0, 0.0]
    assert load_pretrained(path, DIM, ["2", "0"], rows="id+1")[:, 0].tolist() == [20.0, 0.0]
    with pytest.raises(UserError, match=r"data.pretrained_rows = 'id' puts item '2' at row 2, but "
                                        r"zero.sent_emb.json lists it at row 3"):
        load_pretrained(path, DIM, ["2", "0"], rows="id")


def test_data_load_reads_zero_based_lightgcn_ids_and_publishes_the_layout(tmp_path: Path) -> None:
    from lgcn_tui import config, data

    (tmp_path / "train.txt").write_text("0 0 1\n1 2 1\n")
    (tmp_path / "test.txt").write_text("0 2\n1 0\n")
    path = sent_emb(tmp_path / "items.sent_emb", [0, 1, 2, 3])  # item i at row i+1
    cfg = config.resolve({}, "test", ["data.format=lightgcn", f'data.path="{tmp_path}"', f'data.pretrained="{path}"',
                                      f"data.pretrained_dim={DIM}", "data.normalize=false"])

    ds = data.load(cfg)

    assert ds.pretrained is not None and ds.pretrained[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert any(n.startswith(f"{path}: 4 rows") and "row 0 padding, item id i at row i+1" in n for n in ds.notes)


def test_npy_takes_its_own_dim(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npy"
    np.save(path, np.arange(1, 4, dtype=np.float64)[:, None] * np.ones((1, 3)))  # M rows

    out = load_pretrained(path, 768, ["2", "3", "1"])

    assert out.shape == (3, 3) and out.dtype == np.float32
    assert out[:, 0].tolist() == [2.0, 3.0, 1.0]
    np.save(path, np.ones(4))
    with pytest.raises(UserError, match="expected a 2-D numeric"):
        load_pretrained(path, 768, ["1", "2", "3"])


@pytest.mark.parametrize("name", ["gone.sent_emb", "gone.npy"])
def test_missing_file_is_named(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as err:
        load_pretrained(tmp_path / name, DIM, ["1"])
    assert str(tmp_path / name) in str(err.value) and "does not exist" in str(err.value)


def test_aligns_with_real_recbole_item_ids(shared_data, tmp_path: Path) -> None:
    ds = read_recbole(shared_data("ml-100k"), "loo", [0.8, 0.1, 0.1], seed=0)
    path = sent_emb(tmp_path / "ml.sent_emb", list(range(1683)))  # 1,682 items + padding

    out = load_pretrained(path, DIM, ds.item_ids)

    assert out[:, 0].tolist() == [float(i) for i in ds.item_ids]


def test_normalize_gives_unit_rows_and_keeps_zero_rows() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])

    out = prepare_pretrained(x, normalize=True, pca_dim=0)

    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]], atol=1e-7)
    assert np.array_equal(prepare_pretrained(x, normalize=False, pca_dim=0), x.astype(np.float32))


def _low_rank(n: int = 300, d: int = 32, rank: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(d, rank)))
    scores = rng.normal(size=(n, rank)) * np.array([10.0, 5.0, 2.0])
    return scores @ basis.T + 7.0 + rng.normal(scale=0.01, size=(n, d))


def _pairwise(x: np.ndarray) -> np.ndarray:
    diff = x[:, None, :].astype(np.float64) - x[None, :, :]
    return np.sqrt((diff**2).sum(-1))[np.triu_indices(len(x), 1)]


def test_pca_keeps_the_structure_of_low_rank_vectors() -> None:
    x = _low_rank()

    out = prepare_pretrained(x, normalize=False, pca_dim=3)

    assert out.shape == (300, 3) and out.dtype == np.float32
    centred = x - x.mean(axis=0)
    explained = out.astype(np.float64).var(axis=0).sum() / centred.var(axis=0).sum()
    assert explained > 0.999
    assert np.corrcoef(_pairwise(out), _pairwise(x))[0, 1] > 0.9999
    variances = out.var(axis=0)
    assert variances[0] > variances[1] > variances[2]
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-3)
    # Components are nested: asking for two gives the two strongest directions.
    np.testing.assert_allclose(prepare_pretrained(x, False, 2), out[:, :2], atol=1e-3)


def test_pca_runs_before_normalisation_and_is_skipped_when_not_smaller() -> None:
    x = _low_rank()

    out = prepare_pretrained(x, normalize=True, pca_dim=3)

    assert out.shape == (300, 3)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    for pca_dim in (0, 32, 64):
        assert np.array_equal(prepare_pretrained(x, False, pca_dim), x.astype(np.float32))
