"""Readers: real Gowalla and MovieLens files, plus tiny hand-written files with known answers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from lgcn_tui.data.dataset import Dataset, build_dataset
from lgcn_tui.data.readers import read_csv, read_lightgcn, read_recbole
from lgcn_tui.errors import UserError

RATIOS = [0.8, 0.1, 0.1]


def raw_pairs(ds: Dataset, split: str) -> set[tuple[str, str]]:
    """A split's interactions as raw ``(user, item)`` ids, independent of index order."""
    return {(ds.user_ids[u], ds.item_ids[i]) for u, i in getattr(ds, split).tolist()}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- LightGCN text format -------------------------------------------------------------


def test_gowalla_matches_published_counts_and_raw_lines(shared_data) -> None:
    root = shared_data("gowalla")
    ds = read_lightgcn(root)

    expected = {"users": 29858, "items": 40981, "train": 719081, "valid": 91047, "test": 217242}
    assert ds.stats() == expected
    assert ds.name == "gowalla" and ds.notes == []
    # Independent count straight from the text: no pair is lost or invented by de-duplication.
    for split in ("train", "valid", "test"):
        lines = (root / f"{split}.txt").read_text().splitlines()
        assert sum(len(line.split()) - 1 for line in lines) == expected[split]
    # 0-based integer ids sort numerically, so index == raw id on this split.
    assert ds.item_ids == [str(i) for i in range(40981)]
    assert ds.user_ids == [str(u) for u in range(29858)]
    line = (root / "test.txt").read_text().splitlines()[1234].split()
    user = ds.user_ids.index(line[0])
    got = [ds.item_ids[i] for i in ds.test[ds.test[:, 0] == user, 1]]
    assert len(got) == len(line) - 1 and set(got) == set(line[1:])


def test_lightgcn_tiny_remaps_dedupes_and_drops_test_only_users(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    write(root / "train.txt", "1 10 20 9\n2 20 30 30\n3\n")
    write(root / "test.txt", "1 30\n2 10\n3 20\n4 40\n")

    ds = read_lightgcn(root)

    assert ds.name == "tiny"
    assert ds.user_ids == ["1", "2"]
    assert ds.item_ids == ["9", "10", "20", "30", "40"]  # numeric, not "10" < "20" < "9"
    duplicate = f"{root / 'train.txt'}: removed 1 duplicate interaction (a user listing the same item more than once)"
    assert ds.notes == [duplicate, "dropped 2 users with no training items"]
    assert ds.train.tolist() == [[0, 0], [0, 1], [0, 2], [1, 2], [1, 3]]
    assert ds.test.tolist() == [[0, 3], [1, 1]]
    assert ds.valid.shape == (0, 2)
    assert ds.train.dtype == np.int64


def test_lightgcn_accepts_crlf_and_extra_whitespace(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "0 1  2\r\n1\t2 \r\n\r\n")
    write(tmp_path / "test.txt", "0 3\r\n1 3")

    ds = read_lightgcn(tmp_path)

    assert raw_pairs(ds, "train") == {("0", "1"), ("0", "2"), ("1", "2")}
    assert raw_pairs(ds, "test") == {("0", "3"), ("1", "3")}


@pytest.mark.parametrize("token", ["x7", "-3", "1.5", "99999999999999999999"])
def test_lightgcn_bad_token_names_file_line_and_token(tmp_path: Path, token: str) -> None:
    write(tmp_path / "train.txt", f"0 1 2\n\n1 2 {token} 4\n")
    write(tmp_path / "test.txt", "0 3\n")

    with pytest.raises(UserError) as err:
        read_lightgcn(tmp_path)

    message = str(err.value)
    assert "train.txt:3" in message
    assert repr(token) in message


def test_lightgcn_missing_files_say_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist.*train.txt and test.txt"):
        read_lightgcn(tmp_path / "nowhere")
    write(tmp_path / "train.txt", "0 1\n")
    with pytest.raises(UserError) as err:
        read_lightgcn(tmp_path)
    assert "missing test.txt" in str(err.value) and str(tmp_path) in str(err.value)


# --- RecBole atomic files -------------------------------------------------------------


def _ml100k_histories(inter: Path) -> dict[str, list[tuple[float, int, str]]]:
    """Each user's ``(timestamp, file position, item)`` read with plain string splitting."""
    histories: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for position, line in enumerate(inter.read_text().splitlines()[1:]):
        user, item, _, stamp = line.split("\t")
        histories[user].append((float(stamp), position, item))
    return histories


def test_ml100k_leave_one_out_holds_out_latest_items(shared_data) -> None:
    root = shared_data("ml-100k")
    ds = read_recbole(root, "loo", RATIOS, seed=0)

    assert ds.name == "ml-100k"
    assert ds.stats() == {"users": 943, "items": 1682, "train": 98114, "valid": 943, "test": 943}
    assert (np.bincount(ds.test[:, 0], minlength=943) == 1).all()
    assert (np.bincount(ds.valid[:, 0], minlength=943) == 1).all()
    histories = _ml100k_histories(root / "ml-100k.inter")
    test = dict(raw_pairs(ds, "test"))
    valid = dict(raw_pairs(ds, "valid"))
    for user, history in histories.items():
        history.sort()  # by timestamp, ties in file order
        assert test[user] == history[-1][2]
        assert valid[user] == history[-2][2]
        stamp = {item: t for t, _, item in history}
        assert stamp[test[user]] == max(t for t, _, _ in history)


def test_ml100k_ratio_split_keeps_time_order_and_proportions(shared_data) -> None:
    root = shared_data("ml-100k")
    ds = read_recbole(root / "ml-100k.inter", "ratio", RATIOS, seed=0)

    assert ds.name == "ml-100k"
    histories = _ml100k_histories(root / "ml-100k.inter")
    split_of = {pair: s for s in ("train", "valid", "test") for pair in raw_pairs(ds, s)}
    for user, history in histories.items():
        history.sort()
        n = len(history)
        labels = [split_of[(user, item)] for _, _, item in history]
        n_train = max(1, int(np.floor(0.8 * n + 0.5 + 1e-9)))
        n_seen = int(np.floor(0.9 * n + 0.5 + 1e-9))
        expected = ["train"] * n_train + ["valid"] * (n_seen - n_train) + ["test"] * (n - n_seen)
        assert labels == expected, user


def test_recbole_missing_column_lists_header(tmp_path: Path) -> None:
    inter = write(tmp_path / "x.inter", "uid:token\titem_id:token\trating:float\n1\t2\t3\n")

    with pytest.raises(UserError) as err:
        read_recbole(inter, "loo", RATIOS, seed=0)

    message = str(err.value)
    assert "user_id" in message and "x.inter:1" in message
    assert "'uid:token', 'item_id:token', 'rating:float'" in message


def test_recbole_malformed_rows_name_the_line(tmp_path: Path) -> None:
    header = "user_id:token\titem_id:token\ttimestamp:float\n"
    short = write(tmp_path / "short" / "a.inter", header + "1\t2\t5\n1\t3\n")
    with pytest.raises(UserError, match=r"a\.inter:3: 2 tab-separated fields, but the header"):
        read_recbole(short.parent, "loo", RATIOS, seed=0)
    stamp = write(tmp_path / "b.inter", header + "1\t2\t5\n1\t3\tsoon\n")
    with pytest.raises(UserError, match=r"b\.inter:3: timestamp:float = 'soon'"):
        read_recbole(stamp, "loo", RATIOS, seed=0)
    empty = write(tmp_path / "c.inter", header + "1\t2\t5\n\t3\t6\n")
    with pytest.raises(UserError, match=r"c\.inter:3: empty 'user_id:token' value"):
        read_recbole(empty, "loo", RATIOS, seed=0)


def test_recbole_directory_needs_exactly_one_inter_file(tmp_path: Path) -> None:
    write(tmp_path / "a.inter", "user_id:token\titem_id:token\n1\t2\n")
    write(tmp_path / "b.inter", "user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(UserError, match="exactly one.*found a.inter, b.inter"):
        read_recbole(tmp_path, "loo", RATIOS, seed=0)
    with pytest.raises(UserError, match="does not exist"):
        read_recbole(tmp_path / "none.inter", "loo", RATIOS, seed=0)


# --- Splits on tiny files -------------------------------------------------------------


def test_ratio_split_with_timestamps(tmp_path: Path) -> None:
    order = [7, 2, 9, 4, 1, 10, 3, 8, 6, 5]  # shuffled in the file; time decides
    rows = [f"a\ti{t}\t{t}" for t in order] + ["b\tj1\t1", "b\tj3\t3", "b\tj2\t2", "c\tk\t1"]
    path = write(tmp_path / "r.inter", "user_id:token\titem_id:token\ttimestamp:float\n"
                 + "\n".join(rows) + "\n")

    ds = read_recbole(path, "ratio", RATIOS, seed=0)

    assert raw_pairs(ds, "train") == (
        {("a", f"i{t}") for t in range(1, 9)} | {("b", "j1"), ("b", "j2"), ("c", "k")}
    )
    assert raw_pairs(ds, "valid") == {("a", "i9"), ("b", "j3")}
    assert raw_pairs(ds, "test") == {("a", "i10")}
    # A tiny train share still leaves every user one (the earliest) training item.
    small = read_recbole(path, "ratio", [0.1, 0.45, 0.45], seed=0)
    assert raw_pairs(small, "train") == {("a", "i1"), ("b", "j1"), ("c", "k")}
    assert small.stats()["valid"] == 6 and small.stats()["test"] == 5


def test_ratio_split_without_timestamps_is_seeded(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", "".join(f"u{u},i{i}\n" for u in range(20) for i in range(10)))

    first = read_csv(path, "ratio", RATIOS, seed=1)
    again = read_csv(path, "ratio", RATIOS, seed=1)
    other = read_csv(path, "ratio", RATIOS, seed=2)

    assert first.stats() == {"users": 20, "items": 10, "train": 160, "valid": 20, "test": 20}
    assert raw_pairs(first, "test") == raw_pairs(again, "test")
    assert raw_pairs(first, "test") != raw_pairs(other, "test")
    # Shuffled, not file order: file order would always hold out i8 / i9.
    assert {i for _, i in raw_pairs(first, "test")} != {"i9"}


def test_loo_split_small_histories(tmp_path: Path) -> None:
    path = write(tmp_path / "s.tsv", "x\tp\ny\tp\ny\tq\nz\tp\nz\tq\nz\tr\n")

    ds = read_csv(path, "loo", RATIOS, seed=0)

    assert raw_pairs(ds, "train") == {("x", "p"), ("y", "p"), ("z", "p")}
    assert raw_pairs(ds, "valid") == {("z", "q")}
    assert raw_pairs(ds, "test") == {("y", "q"), ("z", "r")}


# --- CSV / TSV ------------------------------------------------------------------------


def test_csv_with_header_string_ids_and_quotes(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", (
        "User,Item,Timestamp\n"
        "alice,apple,3\n"
        "bob,banana,1\n"
        "alice,\"cherry, red\",1\n"
        "alice,banana,2\n"
        "\n"
        "bob,apple,2\n"
        "carol,apple,5\n"
    ))

    ds = read_csv(path, "loo", RATIOS, seed=0)

    assert ds.name == "ratings"
    assert ds.user_ids == ["alice", "bob", "carol"]
    assert ds.item_ids == ["apple", "banana", "cherry, red"]
    assert raw_pairs(ds, "train") == {
        ("alice", "cherry, red"), ("bob", "banana"), ("carol", "apple")
    }
    assert raw_pairs(ds, "valid") == {("alice", "banana")}
    assert raw_pairs(ds, "test") == {("alice", "apple"), ("bob", "apple")}


def test_csv_header_detection_and_sniffed_delimiter(tmp_path: Path) -> None:
    # No user/user_id field in the first line: it is data, so "item" and "x" are ids.
    headerless = write(tmp_path / "plain.txt", "item;x\nitem;y\nother;x\n")
    ds = read_csv(headerless, "loo", RATIOS, seed=0)
    assert raw_pairs(ds, "train") == {("item", "x"), ("other", "x")}
    assert raw_pairs(ds, "test") == {("item", "y")}
    # A header naming user_id / item_id in another column order.
    reordered = write(tmp_path / "r.tsv", "ts\titem_id\tUSER_ID\n2\ta\tu\n1\tb\tu\n")
    ds = read_csv(reordered, "loo", RATIOS, seed=0)
    assert raw_pairs(ds, "train") == {("u", "b")} and raw_pairs(ds, "test") == {("u", "a")}


def test_csv_errors_name_file_line_and_columns(tmp_path: Path) -> None:
    missing = write(tmp_path / "m.csv", "user,product\nu,p\n")
    with pytest.raises(UserError) as err:
        read_csv(missing, "loo", RATIOS, seed=0)
    assert "m.csv:1" in str(err.value) and "'user', 'product'" in str(err.value)
    assert "item" in str(err.value)

    empty = write(tmp_path / "e.csv", "user,item\nu,p\n ,q\n")
    with pytest.raises(UserError, match=r"e\.csv:3: empty 'user' value"):
        read_csv(empty, "loo", RATIOS, seed=0)

    short = write(tmp_path / "s.csv", "u,p,1\nu,q\n")
    with pytest.raises(UserError, match=r"s\.csv:2: 2 field\(s\).*expected at least 3"):
        read_csv(short, "loo", RATIOS, seed=0)

    quoted = write(tmp_path / "q.csv", 'u,p\nu,"q\nv,r\n')
    with pytest.raises(UserError, match=r"q\.csv:2: malformed ','-separated row"):
        read_csv(quoted, "loo", RATIOS, seed=0)

    with pytest.raises(UserError, match="does not exist"):
        read_csv(tmp_path / "absent.csv", "loo", RATIOS, seed=0)

    with pytest.raises(UserError, match="data.split = 'random'"):
        read_csv(short, "random", RATIOS, seed=0)


# --- build_dataset ----------------------------------------------------------------------


def test_build_dataset_treats_int_and_string_ids_alike() -> None:
    users = np.array([5, 5, 12, 100, 12])
    items = np.array([3, 3, 20, 3, 7])
    test = (np.array([5, 7]), np.array([99, 3]))

    from_ints = build_dataset("d", {"train": (users, items), "test": test})
    from_strings = build_dataset("d", {
        "train": ([str(u) for u in users], [str(i) for i in items]),
        "test": ([str(u) for u in test[0]], [str(i) for i in test[1]]),
    })

    for ds in (from_ints, from_strings):
        assert ds.user_ids == ["5", "12", "100"]
        assert ds.item_ids == ["3", "7", "20", "99"]
        assert ds.train.tolist() == [[0, 0], [1, 1], [1, 2], [2, 0]]
        assert ds.test.tolist() == [[0, 3]]
        assert ds.notes == ["dropped 1 users with no training items"]


def test_build_dataset_keeps_non_canonical_integer_ids_distinct() -> None:
    ds = build_dataset("d", {"train": (["10", "007", "7", "7"], ["b", "a", "a", "a"])})

    assert ds.user_ids == ["007", "7", "10"]  # numeric order; "007" and "7" are two users
    assert ds.train.tolist() == [[0, 0], [1, 0], [2, 1]]


# --- Faults users hit: empty files, stray fields, BOMs, duplicates, cold items ---------


def load_files(path: Path, *overrides: str) -> Dataset:
    """``data.load`` on a file or directory, the way a run loads it (xavier: no vectors needed)."""
    from lgcn_tui import config, data

    fmt = "lightgcn" if path.is_dir() else "csv"
    cfg = config.resolve({}, "test", [f"data.format={fmt}", f'data.path="{path}"',
                                      "model.item_init=xavier", *overrides])
    return data.load(cfg)


def test_lightgcn_empty_train_file_is_named_as_empty(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "")
    write(tmp_path / "test.txt", "0 1 2\n1 2\n")

    with pytest.raises(UserError) as err:
        load_files(tmp_path)

    message = str(err.value)
    assert f"{tmp_path / 'train.txt'}:" in message and "empty" in message
    assert "test.txt" not in message.split(";")[0]


@pytest.mark.parametrize("content", ["", "\n\n", "0\n1\n"])
def test_lightgcn_test_file_without_interactions_is_named(tmp_path: Path, content: str) -> None:
    write(tmp_path / "train.txt", "0 1 2\n1 2\n")
    write(tmp_path / "test.txt", content)

    with pytest.raises(UserError) as err:
        load_files(tmp_path)

    message = str(err.value)
    assert f"{tmp_path / 'test.txt'}:" in message and "no interactions" in message
    assert "best_metric" not in message


@pytest.mark.parametrize("header", ["user,item", "userId,itemId"])
def test_csv_with_only_a_header_says_so(tmp_path: Path, header: str) -> None:
    path = write(tmp_path / "h.csv", header + "\n\n")

    with pytest.raises(UserError) as err:
        load_files(path)

    message = str(err.value)
    assert f"{path}:" in message and "only a header" in message and "no interactions" in message
    assert "best_metric" not in message


def test_csv_row_with_too_many_fields_names_line_and_counts(tmp_path: Path) -> None:
    with_header = write(tmp_path / "a.csv", "user,item,rating\nu,p,5\nu,q,4\nu,cherry, red,3\n")
    with pytest.raises(UserError, match=r"a\.csv:4: .*has 4 fields, expected 3 \(user, item, rating\)"):
        load_files(with_header)
    # Headerless: line 1 fixes the width; an unquoted delimiter shifts the row.
    headerless = write(tmp_path / "b.tsv", "u\tp\nu\tq\n\nv\tp\tq\n")
    with pytest.raises(UserError, match=r"b\.tsv:4: .*has 3 fields, expected 2 \(user, item\)"):
        load_files(headerless)


def test_lightgcn_utf8_bom_is_stripped_with_a_notice(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_bytes(b"\xef\xbb\xbf7 1 2\n8 2 3\n")
    write(tmp_path / "test.txt", "7 3\n8 1\n")

    ds = load_files(tmp_path, "data.carve_valid=off")

    assert ds.user_ids == ["7", "8"] and ds.item_ids == ["1", "2", "3"]
    assert raw_pairs(ds, "train") == {("7", "1"), ("7", "2"), ("8", "2"), ("8", "3")}
    assert raw_pairs(ds, "test") == {("7", "3"), ("8", "1")}
    bom = [n for n in ds.notes if "BOM" in n]
    assert len(bom) == 1 and str(tmp_path / "train.txt") in bom[0]
    assert not any("test.txt" in n for n in ds.notes)


def test_csv_duplicates_are_removed_before_the_leave_one_out_split(tmp_path: Path) -> None:
    # Each user's last two rows are the same item: split first, dedupe later puts it in both.
    path = write(tmp_path / "d.csv", "user,item\n"
                 "a,x\na,y\na,z\na,z\n"
                 "b,x\nb,y\nb,y\n"
                 "c,x\nc,x\nc,y\nc,w\n")

    ds = load_files(path, "data.split=loo")

    valid, test = raw_pairs(ds, "valid"), raw_pairs(ds, "test")
    assert not valid & test
    assert not raw_pairs(ds, "train") & (valid | test)
    assert raw_pairs(ds, "train") == {("a", "x"), ("b", "x"), ("c", "x")}
    assert valid == {("a", "y"), ("c", "y")}
    assert test == {("a", "z"), ("b", "y"), ("c", "w")}
    dup = [n for n in ds.notes if "duplicate interaction" in n]
    assert len(dup) == 1 and dup[0].startswith(f"{path}: removed 3 duplicate interactions")


def test_lightgcn_duplicates_are_counted_per_file(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "0 1 1 2\n1 2 3\n1 3\n")
    write(tmp_path / "test.txt", "0 3 3\n1 1\n")

    ds = load_files(tmp_path, "data.carve_valid=off")

    assert ds.stats()["train"] == 4 and ds.stats()["test"] == 2
    dup = sorted(n for n in ds.notes if "duplicate interaction" in n)
    assert len(dup) == 2
    assert str(tmp_path / "test.txt") in dup[0] and "1 duplicate" in dup[0]
    assert str(tmp_path / "train.txt") in dup[1] and "2 duplicate" in dup[1]


def test_cold_valid_and_test_items_are_counted_in_a_notice(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "0 1 2\n1 2 3\n2 1\n")
    write(tmp_path / "valid.txt", "0 7\n1 7\n2 3\n")
    write(tmp_path / "test.txt", "0 8\n1 9\n2 8\n0 3\n")

    ds = load_files(tmp_path)

    cold = [n for n in ds.notes if "cold items never seen" in n]
    assert len(cold) == 1
    assert "valid: 2 interactions with 1 item" in cold[0]
    assert "test: 3 interactions with 2 items" in cold[0]
    # Random item vectors (load_files is xavier) say they cannot score them.
    assert sum(n.startswith("cannot score cold items") for n in ds.notes) == 1
    # Folding valid into train warms its items; the test count is unchanged here.
    merged = load_files(tmp_path, "data.valid_into_train=true")
    cold = [n for n in merged.notes if "cold items never seen" in n]
    assert len(cold) == 1 and "valid:" not in cold[0] and "test: 3 interactions with 2 items" in cold[0]
    # Nothing cold, no notice.
    write(tmp_path / "test.txt", "0 3\n")
    write(tmp_path / "valid.txt", "1 1\n")
    assert not any("cold" in n for n in load_files(tmp_path).notes)


# --- a validation split carved from train (data.carve_valid) -------------------------------


def test_without_valid_each_users_last_training_item_becomes_valid(tmp_path: Path) -> None:
    write(tmp_path / "train.txt", "0 5 3 7\n1 2\n2 4 6 4\n")  # user 1 has one item; user 2 repeats item 4 last
    write(tmp_path / "test.txt", "0 1\n1 1\n2 1\n")

    ds = load_files(tmp_path)

    assert raw_pairs(ds, "valid") == {("0", "7"), ("2", "4")}
    assert raw_pairs(ds, "train") == {("0", "5"), ("0", "3"), ("1", "2"), ("2", "6")}
    assert raw_pairs(ds, "test") == {("0", "1"), ("1", "1"), ("2", "1")}
    assert any("carved one from train, each user's last training item (2 users with 2 or more" in n
               for n in ds.notes), ds.notes

    whole = load_files(tmp_path, "data.carve_valid=off")
    assert len(whole.valid) == 0 and len(whole.train) == 6
    merged = load_files(tmp_path, "data.valid_into_train=true", "eval.best_metric=test/recall@20")
    assert len(merged.train) == 6 and not any("carved" in n for n in merged.notes)


def test_carving_follows_timestamps_not_file_order(tmp_path: Path) -> None:
    # A ratio split with no valid share: each user's two earliest items train, the rest test.
    path = write(tmp_path / "inter.csv", "user,item,timestamp\nu,d,40\nu,c,30\nu,b,20\nu,a,10\nv,x,5\nv,y,1\n")

    ds = load_files(path, "data.split=ratio", "data.split_ratios=[0.5, 0.0, 0.5]")

    assert raw_pairs(ds, "train") == {("u", "a"), ("v", "y")}
    assert raw_pairs(ds, "valid") == {("u", "b")}  # u's later training item by time, though first in the file
    assert raw_pairs(ds, "test") == {("u", "c"), ("u", "d"), ("v", "x")}


def test_amazon_beauty_gets_a_valid_split_of_each_users_last_training_item(shared_data) -> None:
    root = shared_data("amazon-beauty")
    last = {}
    for line in (root / "train.txt").read_text().splitlines():
        user, *items = line.split()
        if len(set(items)) >= 2:
            last[user] = items[-1]

    ds = load_files(root)

    assert raw_pairs(ds, "valid") == set(last.items())
    assert not raw_pairs(ds, "valid") & raw_pairs(ds, "train")
    assert len(ds.test) == 22363


def test_best_metric_on_valid_without_valid_names_the_carve_option(tmp_path: Path) -> None:
    from lgcn_tui import config
    from lgcn_tui.run.lifecycle import Run

    write(tmp_path / "data" / "train.txt", "0 5 3 7\n1 2 3\n")
    write(tmp_path / "data" / "test.txt", "0 1\n1 1\n")
    cfg = config.resolve({}, "test", ["data.format=lightgcn", f'data.path="{tmp_path / "data"}"',
                                      "model.item_init=xavier", "data.carve_valid=off", "run.device=cpu",
                                      f'run.out_dir="{tmp_path / "runs"}"'])

    with pytest.raises(UserError, match=r"no valid interactions; set eval.best_metric=test/recall@20 or "
                                        r"data.carve_valid=auto"):
        Run(cfg).complete()
    assert not (tmp_path / "runs").exists()


def test_a_run_made_before_carving_existed_keeps_its_data_when_read_back(tmp_path: Path) -> None:
    from lgcn_tui import config, rundir

    run = rundir.RunDir(tmp_path)
    text = config.resolve({}, "test", []).to_toml()
    run.config.write_text(text)
    assert run.load_config().data.carve_valid == "auto"
    run.config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("carve_valid")))
    assert run.load_config().data.carve_valid == "off"
