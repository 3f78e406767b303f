"""Amazon Reviews 2023 benchmark files: every shape reads to the same splits, raw ASINs find their rows.

The fixtures (``tests/fixtures/amazon2023``, described in its README) are invented data in
the shapes the public benchmark scripts write; the expected splits below are written out
by hand from that README's table, not computed by the code under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lgcn_tui import config, data
from lgcn_tui.data.amazon import read_amazon2023
from lgcn_tui.data.dataset import Dataset
from lgcn_tui.data.pretrained import load_pretrained
from lgcn_tui.errors import UserError
from lgcn_tui.run.lifecycle import Run
from lgcn_tui.sinks.jsonl import read_events

FIX = Path(__file__).parent / "fixtures" / "amazon2023"
RATIOS = [0.8, 0.1, 0.1]
U1, U2, U3, U4 = ("AGFAKEUSERONEQQQQQQQQQQQQQQQ", "AHFAKEUSERTWOQQQQQQQQQQQQQQQ",
                  "AEFAKEUSERTHREEQQQQQQQQQQQQQ", "AFFAKEUSERFOURQQQQQQQQQQQQQQ")
I1, I2, I3, I4, I5, I6, I7 = (f"B0FAKE000{k}" for k in range(1, 8))
I8 = "1234567890"
EXPECTED = {
    "train": {(U1, I1), (U1, I2), (U1, I3), (U2, I2), (U2, I6), (U3, I8), (U4, I7)},
    "valid": {(U1, I4), (U2, I3), (U3, I1), (U4, I5)},
    "test": {(U1, I5), (U2, I7), (U3, I6), (U4, I2)},
}
INTER_MAP = FIX / "seq_inter" / "All_Beauty.data_maps"
IDS_MAP = FIX / "seq_ids" / "All_Beauty.data_maps"


def raw_pairs(ds: Dataset, split: str) -> set[tuple[str, str]]:
    return {(ds.user_ids[u], ds.item_ids[i]) for u, i in getattr(ds, split).tolist()}


def item2id(path: Path) -> dict[str, int]:
    return json.loads(path.read_text())["item2id"]


def row_numbered(path: Path, rows: int, dim: int = 4) -> Path:
    """A raw float32 file whose row r is filled with r, so the row an item got is readable."""
    np.repeat(np.arange(rows, dtype="<f4")[:, None], dim, axis=1).tofile(path)
    return path


@pytest.mark.parametrize("path, id_map, history_only", [
    (FIX / "last_out", None, 0),
    (FIX / "last_out" / "All_Beauty.valid.csv", None, 0),
    (FIX / "last_out_w_his" / "All_Beauty", None, 0),
    (FIX / "last_out_w_his", INTER_MAP, 0),
    (FIX / "seq_inter", None, 4),
    (FIX / "seq_inter", INTER_MAP, 4),
    (FIX / "seq_ids", IDS_MAP, 4),
], ids=["headerless", "one-split-file", "prefix+history", "history+map", "inter", "inter+map", "integer-ids+map"])
def test_every_benchmark_shape_reads_to_the_same_raw_splits(path: Path, id_map: Path | None,
                                                            history_only: int) -> None:
    ds = read_amazon2023(path, id_map, "loo", RATIOS, 0)

    assert ds.name == "All_Beauty"
    for split in ("train", "valid", "test"):
        assert raw_pairs(ds, split) == EXPECTED[split], split
    assert ds.stats() == {"users": 4, "items": 8, "train": 7, "valid": 4, "test": 4}
    # The sequential files drop each user's first item as a target; it comes back from the histories.
    assert (f"added {history_only} history-only interactions to train" in ds.notes) == bool(history_only)


def test_unsplit_rating_only_file_is_split_by_timestamp() -> None:
    ds = read_amazon2023(FIX / "rating_only" / "All_Beauty.csv", None, "loo", RATIOS, 0)

    for split in ("train", "valid", "test"):
        assert raw_pairs(ds, split) == EXPECTED[split], split


@pytest.mark.parametrize("root, id_map", [("last_out", INTER_MAP), ("seq_inter", INTER_MAP), ("seq_ids", IDS_MAP)])
def test_raw_asins_get_the_rows_of_the_id_map(tmp_path: Path, root: str, id_map: Path) -> None:
    ds = read_amazon2023(FIX / root, id_map, "loo", RATIOS, 0)
    padded = row_numbered(tmp_path / "padded.sent_emb", 9)
    flat = row_numbered(tmp_path / "flat.sent_emb", 8)

    expected = [item2id(id_map)[item] for item in ds.item_ids]
    assert load_pretrained(padded, 4, ds.item_ids, ds.item_rows)[:, 0].tolist() == expected
    assert load_pretrained(flat, 4, ds.item_ids, ds.item_rows)[:, 0].tolist() == [r - 1 for r in expected]


def test_the_two_maps_really_differ_so_the_alignment_test_can_fail() -> None:
    assert item2id(INTER_MAP) != item2id(IDS_MAP)
    assert set(item2id(INTER_MAP)) == set(item2id(IDS_MAP))


def test_config_trains_from_amazon_files_with_id_map_and_pretrained(tmp_path: Path) -> None:
    emb = row_numbered(tmp_path / "All_Beauty.sent_emb", 9)
    cfg = config.resolve({}, "test", ["data.format=amazon2023", f'data.path="{FIX / "seq_inter"}"',
                                      f'data.id_map="{INTER_MAP}"', f'data.pretrained="{emb}"',
                                      "data.pretrained_dim=4", "data.normalize=false"])

    ds = data.load(cfg)

    assert ds.pretrained is not None
    assert ds.pretrained[:, 0].tolist() == [item2id(INTER_MAP)[i] for i in ds.item_ids]


def test_asins_without_an_id_map_cannot_find_rows(tmp_path: Path) -> None:
    ds = read_amazon2023(FIX / "last_out", None, "loo", RATIOS, 0)

    with pytest.raises(UserError, match="data.id_map"):
        load_pretrained(row_numbered(tmp_path / "x.sent_emb", 9), 4, ds.item_ids, ds.item_rows)


def test_id_map_belongs_only_to_the_amazon_format() -> None:
    with pytest.raises(UserError, match="data.id_map = '[^']*x.data_maps' is only read with data.format = 'amazon2023'"):
        config.resolve({}, "test", ["data.format=csv", "data.path=x.csv", "data.id_map=x.data_maps"])


def copy_split(tmp_path: Path, root: str) -> Path:
    target = tmp_path / root
    shutil.copytree(FIX / root, target)
    return target


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().split("\n")
    lines[number - 1] = text
    path.write_text("\n".join(lines))


def test_item_missing_from_the_id_map_names_file_line_item_and_map(tmp_path: Path) -> None:
    root = copy_split(tmp_path, "last_out")
    replace_line(root / "All_Beauty.test.csv", 2, f"{U2},B0NOTINMAP,4.0,1600259702007")

    with pytest.raises(UserError) as err:
        read_amazon2023(root, INTER_MAP, "loo", RATIOS, 0)

    message = str(err.value)
    assert "All_Beauty.test.csv:2: item 'B0NOTINMAP'" in message and str(INTER_MAP) in message


def test_integer_item_outside_the_id_map_is_refused(tmp_path: Path) -> None:
    root = copy_split(tmp_path, "seq_ids")
    replace_line(root / "All_Beauty.valid.csv", 3, "4,4 99,5")

    with pytest.raises(UserError, match=r"All_Beauty.valid.csv:3: history item '99' is not .*\(1\.\.8\)"):
        read_amazon2023(root, root / "All_Beauty.data_maps", "loo", RATIOS, 0)


@pytest.mark.parametrize("file, line, text, words", [
    ("All_Beauty.train.csv", 2, f"{U1},B0FAKE0002,5.0", "All_Beauty.train.csv:2: 3 field(s) separated by ','"),
    ("All_Beauty.train.csv", 1, f"{U1},B0FAKE0002,5.0", ("All_Beauty.train.csv:1: 3 comma-separated fields; expected "
                                                         "headerless user,item,rating,timestamp[,history]")),
    ("All_Beauty.test.csv", 1, "user_id,product,rating", ("All_Beauty.test.csv:1: the header (user_id, product, "
                                                          "rating) names no parent_asin or item_id column")),
    ("All_Beauty.valid.csv", 3, ",B0FAKE0001,3.0,1500086403001", "All_Beauty.valid.csv:3: empty 'user_id'"),
    ("All_Beauty.valid.csv", 3, f'{U1},"B0FAKE0001,3.0,1500086403001', "All_Beauty.valid.csv:3: malformed ','-separated row"),
])
def test_malformed_rows_name_file_and_line(tmp_path: Path, file: str, line: int, text: str, words: str) -> None:
    root = copy_split(tmp_path, "last_out")
    replace_line(root / file, line, text)

    with pytest.raises(UserError) as err:
        read_amazon2023(root, None, "loo", RATIOS, 0)

    assert words in str(err.value)


def test_missing_test_split_and_mixed_domains_are_explained(tmp_path: Path) -> None:
    root = copy_split(tmp_path, "last_out")
    (root / "All_Beauty.test.csv").unlink()
    with pytest.raises(UserError, match="All_Beauty.test.csv is missing; the amazon2023 format needs"):
        read_amazon2023(root, None, "loo", RATIOS, 0)

    shutil.copy(FIX / "last_out" / "All_Beauty.train.csv", root / "Toys.train.csv")
    with pytest.raises(UserError, match=r"several domains \(All_Beauty.train.csv, Toys.train.csv\)"):
        read_amazon2023(root, None, "loo", RATIOS, 0)


@pytest.mark.parametrize("text, words", [
    ('{"item2id": {"[PAD]": 0, "B0FAKE0001": 1, "B0FAKE0002": 1}}',
     "item2id gives 'B0FAKE0001' and 'B0FAKE0002' the same id 1"),
    ('{"item2id": {"B0FAKE0001": "1"}}', "item2id['B0FAKE0001'] = '1'; every item2id value must be"),
    ('{"user2id": {}}', "no 'item2id' object"),
    ('{"item2id": {\n"B0FAKE0001": 1,\n}', "maps.data_maps:3: not valid JSON"),
])
def test_broken_id_maps_are_refused(tmp_path: Path, text: str, words: str) -> None:
    bad = tmp_path / "maps.data_maps"
    bad.write_text(text)

    with pytest.raises(UserError) as err:
        read_amazon2023(FIX / "last_out", bad, "loo", RATIOS, 0)

    assert words in str(err.value)


def test_a_preset_trains_on_the_sequential_files_end_to_end(tmp_path: Path) -> None:
    emb = np.random.default_rng(0).standard_normal((9, 8)).astype("<f4")
    emb[0] = 0
    emb.tofile(tmp_path / "All_Beauty.sent_emb")
    preset = tmp_path / "amazon-fixture.toml"
    preset.write_text(f"""# Amazon 2023 fixture: the sequential .inter splits with their id map and item vectors.
[run]
name = "amazon-fixture"
epochs = 2
out_dir = "{tmp_path / 'runs'}"
[data]
format = "amazon2023"
path = "{FIX / 'seq_inter'}"
id_map = "{INTER_MAP}"
pretrained = "{tmp_path / 'All_Beauty.sent_emb'}"
pretrained_dim = 8
[optim]
batch_size = 8
[eval]
ks = [5]
best_metric = "valid/recall@5"
sim_pairs = 0
""")
    cfg = config.resolve(config.load_toml(preset), str(preset), [])
    run = Run(cfg, preset="amazon-fixture")
    run.setup()
    assert run.train() == "done"
    run.cleanup()
    evals = [e for e in read_events(run.run_dir.metrics) if e["event"] == "eval" and e["model"] == "lightgcn"]
    assert {e["split"] for e in evals} == {"valid", "test"} and "recall@5" in evals[-1]["metrics"]
