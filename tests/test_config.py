"""Presets and overrides: wrong keys and types are refused before any work, naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lgcn_tui import config, presets
from lgcn_tui.errors import UserError


def test_overrides_apply_with_toml_types() -> None:
    cfg = config.resolve({"optim": {"item_lr": 3e-4}}, "p.toml",
                         ["optim.item_lr=1e-4", "model.layers=2", "eval.ks=[5, 10]",
                          "eval.best_metric=valid/ndcg@10", "data.normalize=false"])
    assert cfg.optim.item_lr == 1e-4
    assert cfg.model.layers == 2
    assert cfg.eval.ks == [5, 10]
    assert cfg.eval.best_metric == "valid/ndcg@10"
    assert cfg.data.normalize is False


@pytest.mark.parametrize("override, hint, absent", [
    ("optim.itemlr=1e-4", "--set optim.itemlr=1e-4: unknown config key 'optim.itemlr'; did you mean optim.item_lr?",
     "optim.user_lr"),
    ("optim.layers=2", "did you mean model.layers?", "cl_layer"),  # a key's own name is found in any section
    ("item_lr=1e-4", "did you mean optim.item_lr?", "model."),
    ("model.item_mod=frozen", "did you mean model.item_mode", "model.dim"),
    ("optim.zzz=1", "valid keys: optim.name, optim.user_lr, optim.item_lr", "model."),  # nothing close: the section's
    ("optimiser.lr=1", "there is no section 'optimiser'; did you mean optim?", "optim.name"),
    ("foo.bar=1", "sections: run, data, graph, model, optim", "run.name"),
])
def test_a_mistyped_key_gets_the_closest_keys_not_all_of_them(override: str, hint: str, absent: str) -> None:
    with pytest.raises(UserError) as err:
        config.resolve({}, "p.toml", [override])
    assert hint in str(err.value) and absent not in str(err.value)


def test_unknown_section_in_a_preset_names_the_file() -> None:
    with pytest.raises(UserError, match=r"my\.toml: unknown config key 'optimiser'; there is no section "
                                        r"'optimiser'; did you mean optim\?"):
        config.resolve({"optimiser": {"lr": 1}}, "my.toml", [])


@pytest.mark.parametrize("override, words", [
    ("model.layers=two", "model.layers must be an integer"),
    ("model.layers=2.5", "model.layers must be an integer"),
    ("optim.item_lr=fast", "optim.item_lr must be a number"),
    ("data.normalize=1", "data.normalize must be true or false"),
    ("eval.ks=20", "eval.ks must be a list"),
    ("model.item_mode=semi", "choose one of: frozen, learnable, residual"),
    ("optim.user_lr=0", "optim.user_lr = 0.0 must be > 0"),
    ("run.threads=-1", "run.threads = -1 must be >= 0"),
    ("model.alpha0=1.5", "model.alpha0 = 1.5 is outside the sensible range; use a value in [0, 1]"),
    ("log.wandb=yes", "log.wandb = 'yes' is not valid; choose one of: off, offline, online"),
    ("eval.best_metric=valid/recall@7", "eval.best_metric"),
    ("eval.head_share=1", "eval.head_share = 1.0 must be below 1"),
    ("eval.head_share=0", "eval.head_share = 0.0 must be > 0"),
    ("data.pretrained_rows=padded", "choose one of: auto, id+1, id, id-1"),
    ("data.carve_valid=yes", "choose one of: auto, off"),
    ("data.seed=-2", "data.seed = -2 must be >= -1"),
    ("model.layers", "expected section.key=value"),
])
def test_bad_values_are_refused_with_the_reason(override: str, words: str) -> None:
    with pytest.raises(UserError, match=re.escape(words)):
        config.resolve({}, "p.toml", [override])


def test_every_shipped_preset_resolves_and_has_a_description() -> None:
    found = presets.available()
    assert {"demo", "gowalla-paper", "ml100k", "beauty-frozen", "beauty-finetune", "beauty-residual"} <= set(found)
    for name, path in found.items():
        cfg = config.resolve(config.load_toml(path), str(path), [])
        assert cfg.run.name
        assert len(presets.description(path)) > 20, name


def test_unknown_preset_lists_the_available_ones() -> None:
    with pytest.raises(UserError, match="unknown preset 'nope'; available: .*demo"):
        presets.find("nope")


@pytest.mark.parametrize("name, hint", [
    ("dmeo", "unknown preset 'dmeo'; did you mean demo?"),
    ("gowala-paper", "did you mean gowalla-paper?"),
    ("beauty", "did you mean beauty-finetune or beauty-frozen or beauty-residual?"),  # every one it starts
])
def test_a_mistyped_preset_gets_the_closest_names_not_the_list(name: str, hint: str) -> None:
    with pytest.raises(UserError) as err:
        presets.find(name)
    assert hint in str(err.value) and "ml100k" not in str(err.value)


def test_resolved_config_round_trips_through_toml() -> None:
    cfg = config.resolve({}, "p.toml", ["model.layers=1", "eval.ks=[20]", "eval.best_metric=test/recall@20"])
    again = config.from_dict(config.tomllib.loads(cfg.to_toml()), "again")
    assert again == cfg


def test_unset_environment_variable_in_a_path_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LGCN_NOT_SET", raising=False)
    with pytest.raises(UserError, match=r"\$LGCN_NOT_SET, which is not set"):
        config.expand_path("${LGCN_NOT_SET}/Beauty.sent_emb", "data.pretrained")


@pytest.mark.parametrize("override", ["optim.user_lr=1e4", "optim.item_lr=1e-300"])
def test_learning_rates_no_one_means_are_refused_like_the_control_channel_refuses_them(override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(UserError, match=f"{key} = .* is outside the sensible range; use a value in \\[1e-09, 1\\]"):
        config.resolve({}, "test", [override])


def test_a_resume_may_change_its_rates_and_length_but_not_what_makes_it_another_run() -> None:
    cfg = config.resolve({}, "test", [])
    changed = config.override_on_resume(cfg, ["optim.item_lr=1e-4", "run.epochs=30"])
    assert changed == ["run.epochs: 20 -> 30", "optim.item_lr: 0.0003 -> 0.0001"]
    assert cfg.optim.item_lr == 1e-4 and cfg.run.epochs == 30
    with pytest.raises(UserError, match="--resume cannot change data.path, model.dim"):
        config.override_on_resume(cfg, ["model.dim=8", "data.path=x", "run.epochs=3"])


def test_relative_paths_come_from_the_preset_file_and_from_the_working_directory_for_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    preset = tmp_path / "mine" / "p.toml"
    preset.parent.mkdir()
    preset.write_text('[data]\nformat = "csv"\npath = "data/inter.csv"\npretrained = "$TEXT/items.npy"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = config.from_preset(preset, [])
    assert cfg.data.path == str(tmp_path / "mine" / "data" / "inter.csv")
    assert cfg.data.pretrained == "$TEXT/items.npy"  # expanded when the data is read, not here
    typed = config.from_preset(preset, ["data.path=typed.csv", "data.format=amazon2023", "data.id_map=/abs/m.json"])
    assert typed.data.path == str(elsewhere / "typed.csv") and typed.data.id_map == "/abs/m.json"
