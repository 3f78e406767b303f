"""The run configuration: typed sections, loaded from a TOML preset plus ``--set`` overrides.

Every key has a default here, so a preset only states what differs. Unknown keys, values
of the wrong type and choices outside their set are refused before any work starts, with
the key named and the valid alternatives listed.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import tomli_w

from .errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

LR_RANGE = (1e-9, 1.0)


@dataclass(frozen=True)
class Rule:
    """What a key accepts beyond its type, declared beside the key so no list of names can miss it.

    ``resume``: whether ``--resume --set`` may change the key. Only how fast and how long a run
    trains, how it evaluates, checkpoints, guards and logs may; anything else (data, model,
    objective, seed) would make it another run. ``path``: a file the run reads; a relative
    one is made absolute when the config is resolved (see ``anchor``).
    """

    choices: tuple[str, ...] = ()
    above: float | None = None
    at_least: float | None = None
    within: tuple[float, float] | None = None
    resume: bool = False
    path: bool = False

    def check(self, key: str, value: Any) -> None:
        if self.choices and value not in self.choices:
            raise UserError(f"{key} = {value!r} is not valid; choose one of: {', '.join(self.choices)}")
        if self.above is not None and value <= self.above:
            raise UserError(f"{key} = {value!r} must be > {self.above:g}")
        if self.at_least is not None and value < self.at_least:
            raise UserError(f"{key} = {value!r} must be >= {self.at_least:g}")
        if self.within is not None and not self.within[0] <= value <= self.within[1]:
            low, high = self.within
            raise UserError(f"{key} = {value!r} is outside the sensible range; use a value in [{low:g}, {high:g}]")


def setting(default: Any, **rule: Any) -> Any:
    """A config field whose ``Rule`` (choices, bounds, resumable) rides in its metadata."""
    return field(default=default, metadata={"rule": Rule(**rule)})


@dataclass
class RunConfig:
    name: str = "run"
    out_dir: str = "runs"
    seed: int = 0
    device: str = setting("auto", choices=("auto", "cpu", "cuda"))
    epochs: int = setting(20, above=0, resume=True)
    amp: bool = True
    deterministic: bool = setting(False, resume=True)
    threads: int = setting(0, at_least=0, resume=True)
    publish_every: int = setting(0, at_least=0, resume=True)


@dataclass
class DataConfig:
    format: str = setting("synthetic", choices=("synthetic", "lightgcn", "recbole", "csv", "amazon2023"))
    path: str = setting("", path=True)
    split: str = setting("loo", choices=("loo", "ratio"))
    split_ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    valid_into_train: bool = False
    carve_valid: str = setting("auto", choices=("auto", "off"))
    seed: int = setting(-1, at_least=-1)
    pretrained: str = setting("", path=True)
    pretrained_dim: int = setting(768, above=0)
    pretrained_rows: str = setting("auto", choices=("auto", "id+1", "id", "id-1"))
    id_map: str = setting("", path=True)
    normalize: bool = True
    pca_dim: int = setting(0, at_least=0)
    cold_items: float = setting(0.0, within=(0.0, 0.9))
    cold_seed: int = 0
    synthetic_users: int = setting(1500, above=0)
    synthetic_items: int = setting(2000, above=0)
    synthetic_factors: int = setting(16, above=0)
    synthetic_per_user: int = setting(15, above=0)
    synthetic_dim: int = setting(64, above=0)
    synthetic_noise: float = setting(0.5, at_least=0)
    synthetic_mislabeled: float = setting(0.3, at_least=0)


@dataclass
class GraphConfig:
    norm: str = setting("symmetric", choices=("symmetric", "mean"))
    backend: str = setting("torch", choices=("torch", "dgl", "dgl-sequential"))
    reorder: bool = True
    kernel: str = setting("auto", choices=("auto", "bag", "sparse"), resume=True)


@dataclass
class ModelConfig:
    dim: int = setting(64, above=0)
    layers: int = setting(3, at_least=0)
    combine: str = setting("mean", choices=("mean", "hops", "last"))
    item_init: str = setting("pretrained", choices=("pretrained", "xavier"))
    item_mode: str = setting("learnable", choices=("frozen", "learnable", "residual", "adapter"))
    adapter_layers: int = setting(2, at_least=1)
    adapter_hidden: int = setting(256, above=0)
    adapter_residual: bool = False
    user_init: str = setting("xavier", choices=("xavier", "item_mean"))
    alpha0: float = setting(0.8, within=(0.0, 1.0))
    alpha_decay: float = setting(0.02, at_least=0)
    alpha_min: float = setting(0.0, within=(0.0, 1.0))


@dataclass
class OptimConfig:
    name: str = setting("adamw", choices=("adam", "adamw", "adafactor"))
    user_lr: float = setting(1e-3, above=0, within=LR_RANGE, resume=True)
    item_lr: float = setting(3e-4, above=0, within=LR_RANGE, resume=True)
    weight_decay: float = setting(1e-4, at_least=0)
    warmup_epochs: float = setting(5.0, at_least=0)
    min_lr: float = setting(1e-5, at_least=0, resume=True)
    clip_norm: float = setting(5.0, at_least=0, resume=True)
    item_start_epoch: int = setting(0, at_least=0)
    batch_size: int = setting(2048, above=0)
    reg: float = setting(1e-4, at_least=0)


@dataclass
class ObjectiveConfig:
    """``loss``: the ranking loss; ``terms``: auxiliary terms added to it (see ``objective``).

    ``softmax_*`` configure the ``softmax`` ranking loss (``objective.softmax``): negatives
    shared by the batch, temperature, score ``cosine`` or ``dot``. ``cl_*`` configure the
    contrastive terms ``simgcl`` and ``xsimgcl`` (``objective.contrastive``): weight λ, noise
    magnitude ε, temperature τ (XSimGCL's published defaults), and XSimGCL's layer l*;
    ``cl_noisy_ranking``: xsimgcl's noisy propagation is the step's own, so the ranking loss
    sees it too (as published) and the step propagates once.
    """

    loss: str = "bpr"
    terms: list[str] = field(default_factory=lambda: ["reg"])
    softmax_negatives: int = setting(256, above=0)
    softmax_temperature: float = setting(0.1, above=0)
    softmax_score: str = setting("cosine", choices=("cosine", "dot"))
    cl_weight: float = setting(0.2, at_least=0)
    cl_eps: float = setting(0.2, at_least=0)
    cl_temperature: float = setting(0.15, above=0)
    cl_layer: int = 1
    cl_noisy_ranking: bool = False


@dataclass
class EvalConfig:
    every: int = setting(1, above=0, resume=True)
    ks: list[int] = field(default_factory=lambda: [10, 20, 50])
    best_metric: str = "valid/recall@20"
    patience: int = setting(0, at_least=0, resume=True)
    chunk_users: int = setting(1024, above=0, resume=True)
    memory_budget_mb: int = setting(1024, above=0, resume=True)
    head_share: float = setting(0.2, above=0, resume=True)
    sim_pairs: int = setting(20000, at_least=0)
    sim_bins: int = setting(40, above=0)


@dataclass
class DivergenceConfig:
    """What a run does when its loss diverges (see ``run.guard``).

    ``policy``: ``auto`` (pause in the dashboard, stop headless), ``pause``, ``stop``, or
    ``rollback`` (go back to the last good state and halve both learning rates).
    ``spike_factor``: a loss above this multiple of the median of the last ``spike_window``
    losses counts as divergence, like NaN/inf (0 = only NaN/inf). ``keep_every``: steps
    between in-memory copies of the last good state.
    """

    policy: str = setting("auto", choices=("auto", "pause", "stop", "rollback"), resume=True)
    spike_factor: float = setting(10.0, at_least=0, resume=True)
    spike_window: int = setting(50, above=0, resume=True)
    keep_every: int = setting(25, above=0, resume=True)
    max_rollbacks: int = setting(3, at_least=0, resume=True)


@dataclass
class CheckpointConfig:
    keep_last: int = setting(3, above=0, resume=True)
    every_steps: int = setting(0, at_least=0, resume=True)
    every_minutes: float = setting(0.0, at_least=0, resume=True)


@dataclass
class LogConfig:
    """Outside loggers that receive the run's events besides ``metrics.jsonl`` (see ``sinks``).

    ``tensorboard``: event files in ``RUN_DIR/tensorboard``. ``wandb``: ``off``, ``offline``
    (files in ``RUN_DIR/wandb``, no network) or ``online`` (needs ``wandb login``).
    """

    tensorboard: bool = setting(False, resume=True)
    wandb: str = setting("off", choices=("off", "offline", "online"), resume=True)
    wandb_project: str = "lgcn-tui"


@dataclass
class DistConfig:
    """How a run launched by ``torchrun`` (or ``--nproc``) spreads over its processes.

    ``strategy``: ``ddp`` (tables replicated, gradients all-reduced) or ``fsdp`` (tables
    and optimiser state sharded). ``timeout_s``: how long a collective may wait for a rank.
    """

    strategy: str = setting("ddp", choices=("ddp", "fsdp"))
    timeout_s: float = setting(60.0, above=0, resume=True)


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    divergence: DivergenceConfig = field(default_factory=DivergenceConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    dist: DistConfig = field(default_factory=DistConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def _sections() -> dict[str, type]:
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def valid_keys() -> list[str]:
    """Every ``section.key`` a preset or ``--set`` may name."""
    return [f"{s}.{f.name}" for s, cls in _sections().items() for f in dataclasses.fields(cls)]


def _field_type(section: str, key: str) -> Any:
    return get_type_hints(_sections()[section])[key]


def _coerce(key: str, value: Any, typ: Any, where: str) -> Any:
    """Check ``value`` against ``typ``; ints are accepted for floats, nothing else is converted."""
    origin = get_origin(typ)
    if origin is list:
        (inner,) = get_args(typ)
        if not isinstance(value, list):
            raise UserError(f"{where}: {key} must be a list of {inner.__name__}, got {value!r}")
        return [_coerce(key, v, inner, where) for v in value]
    if typ is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: {key} must be a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: {key} must be a string, got {value!r}")
        return value
    raise AssertionError(f"unsupported config type {typ}")


def _unknown_key(key: str, where: str) -> UserError:
    """Name the few keys closest to a mistyped one, not every key: a typo wants its fix, not a list to read.

    Without a close key, the keys of the section named, else the closest sections, else all of them.
    """
    sections = _sections()
    section, _, name = key.partition(".")
    # A bare section name here is a TOML section given a value instead of a table: its keys say what fits.
    close = [] if not name and section in sections else _close_keys(name or section, section)
    if close:
        hint = f"did you mean {' or '.join(close)}?"
    elif section in sections:
        hint = f"valid keys: {', '.join(k for k in valid_keys() if k.startswith(section + '.'))}"
    else:
        near = difflib.get_close_matches(section, list(sections), n=2)
        hint = (f"there is no section {section!r}; did you mean {' or '.join(near)}?" if near
                else f"sections: {', '.join(sections)}")
    return UserError(f"{where}: unknown config key {key!r}; {hint}")


def _close_keys(name: str, section: str) -> list[str]:
    """Keys whose own name is close to ``name`` in any section, so ``optim.layers`` finds ``model.layers``.

    A name that exists is the answer on its own (``run.item_lr``: ``optim.item_lr``, not also
    ``model.item_mode``). Closest first; among keys of the same name, those of ``section`` first.
    """
    keys = valid_keys()
    names = sorted({k.partition(".")[2] for k in keys})
    near = [name] if name in names else difflib.get_close_matches(name, names, n=3)
    ranked = sorted((k for k in keys if k.partition(".")[2] in near),
                    key=lambda k: (near.index(k.partition(".")[2]), not k.startswith(section + ".")))
    return ranked[:3]


def apply(cfg: Config, key: str, value: Any, where: str) -> None:
    """Set ``section.key`` on ``cfg`` after checking the key exists and the value's type."""
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in _sections():
        raise _unknown_key(key, where)
    section, name = parts
    if name not in {f.name for f in dataclasses.fields(_sections()[section])}:
        raise _unknown_key(key, where)
    setattr(getattr(cfg, section), name, _coerce(key, value, _field_type(section, name), where))


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``section.key=value`` where value is TOML (bare words are taken as strings)."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected section.key=value, e.g. optim.item_lr=1e-4")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def load_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from exc


def from_dict(data: dict[str, Any], where: str, cfg: Config | None = None) -> Config:
    cfg = cfg or Config()
    for section, values in data.items():
        if section not in _sections() or not isinstance(values, dict):
            raise _unknown_key(str(section), where)
        for name, value in values.items():
            apply(cfg, f"{section}.{name}", value, where)
    return cfg


def override_on_resume(cfg: Config, overrides: list[str]) -> list[str]:
    """Apply ``--set`` to a resumed run's config; only keys whose ``Rule`` says ``resume`` may change. Returns ``key: old -> new``."""
    parsed = [(text, *parse_override(text)) for text in overrides]
    resumable = sorted(key for key, rule in rules().items() if rule.resume)
    refused = sorted({key for _, key, _ in parsed if key not in resumable})
    if refused:
        raise UserError(f"--resume cannot change {', '.join(refused)} (it would be another run; start one with "
                        f"--preset); a resume may change: {', '.join(resumable)}")
    before = cfg.to_dict()
    for text, key, value in parsed:
        apply(cfg, key, value, f"--set {text}")
    validate(cfg)
    after = cfg.to_dict()
    return [f"{s}.{k}: {before[s][k]!r} -> {v!r}" for s, values in after.items() for k, v in values.items()
            if before[s][k] != v]


def resolve(base: dict[str, Any], where: str, overrides: list[str], relative_to: Path | None = None) -> Config:
    """Defaults, then the preset's values, then each ``--set``; then validate the whole.

    Relative file paths in ``base`` are taken from ``relative_to`` (the preset's folder), those
    given with ``--set`` from the working directory; see ``anchor``.
    """
    cfg = from_dict(base, where)
    if relative_to is not None:
        anchor(cfg, relative_to)
    for text in overrides:
        key, value = parse_override(text)
        apply(cfg, key, value, f"--set {text}")
        anchor(cfg, Path.cwd(), only=key)
    validate(cfg)
    return cfg


def from_preset(path: Path, overrides: list[str]) -> Config:
    """A preset file plus ``--set`` overrides, its relative data paths taken from the file's folder."""
    return resolve(load_toml(path), str(path), overrides, relative_to=path.resolve().parent)


def anchor(cfg: Config, folder: Path, only: str | None = None) -> None:
    """Make the relative paths of ``path`` keys absolute from ``folder``, so a preset works from
    any working directory and the run's config.toml names the very files it read (a resume from
    elsewhere finds them). ``$VAR`` and ``~`` paths are left for ``expand_path`` at load time."""
    for key, rule in rules().items():
        if not rule.path or only not in (None, key):
            continue
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value and not value.startswith(("$", "~")) and not Path(value).is_absolute():
            setattr(getattr(cfg, section), name, str((folder / value).resolve()))


_ENV = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand_path(value: str, key: str) -> str:
    """Expand ``$VAR``/``${VAR}`` and ``~``; an unset variable is an error naming key and variable."""

    def sub(m: re.Match[str]) -> str:
        var = m.group(1) or m.group(2)
        if var not in os.environ:
            raise UserError(f"{key} = {value!r} uses ${var}, which is not set; "
                            f"export {var}=/path or pass --set {key}=/path")
        return os.environ[var]

    return os.path.expanduser(_ENV.sub(sub, value))


def rules() -> dict[str, Rule]:
    """Each ``section.key`` that declares a ``Rule``."""
    return {f"{s}.{f.name}": f.metadata["rule"] for s, cls in _sections().items()
            for f in dataclasses.fields(cls) if "rule" in f.metadata}


def validate(cfg: Config) -> None:
    flat = {f"{s}.{k}": v for s, sec in cfg.to_dict().items() for k, v in sec.items()}
    for key, rule in rules().items():
        rule.check(key, flat[key])
    if not cfg.eval.ks or any(k <= 0 for k in cfg.eval.ks):
        raise UserError(f"eval.ks = {cfg.eval.ks!r} must be a non-empty list of positive integers")
    split, _, metric = cfg.eval.best_metric.partition("/")
    names = {f"{m}@{k}" for m in ("recall", "ndcg") for k in cfg.eval.ks}
    if split not in ("valid", "test") or metric not in names:
        raise UserError(f"eval.best_metric = {cfg.eval.best_metric!r} is not valid; use SPLIT/METRIC "
                        f"with SPLIT valid or test and METRIC one of {', '.join(sorted(names))}")
    if cfg.eval.head_share >= 1:
        raise UserError(f"eval.head_share = {cfg.eval.head_share!r} must be below 1 (the share of the trained items "
                        "counted as head; the rest is tail), e.g. 0.2")
    if len(cfg.data.split_ratios) != 3 or abs(sum(cfg.data.split_ratios) - 1) > 1e-6:
        raise UserError(f"data.split_ratios = {cfg.data.split_ratios!r} must be three numbers "
                        "(train, valid, test) summing to 1")
    if cfg.model.combine == "hops" and cfg.model.layers < 1:
        raise UserError("model.combine = 'hops' averages layers 1..K and needs model.layers >= 1; "
                        "with model.layers = 0 use 'mean'")
    if cfg.model.item_init == "xavier" and cfg.model.item_mode != "learnable":
        raise UserError(f"model.item_mode = {cfg.model.item_mode!r} needs pretrained item vectors; "
                        "with model.item_init = 'xavier' only 'learnable' makes sense")
    if cfg.model.item_init == "xavier" and cfg.model.user_init == "item_mean":
        raise UserError("model.user_init = 'item_mean' starts each user at the mean of their training items' "
                        "text-derived vectors, but model.item_init = 'xavier' gives items no text; "
                        "use model.user_init = 'xavier' or model.item_init = 'pretrained'")
    if cfg.objective.cl_noisy_ranking and "xsimgcl" not in cfg.objective.terms:
        raise UserError(f"objective.cl_noisy_ranking = true shares xsimgcl's noisy propagation with the ranking "
                        f"loss, but objective.terms = {cfg.objective.terms!r} has no 'xsimgcl'; add it or drop the key")
    if "xsimgcl" in cfg.objective.terms and not 1 <= cfg.objective.cl_layer <= cfg.model.layers:
        raise UserError(f"objective.cl_layer = {cfg.objective.cl_layer!r} must lie in [1, model.layers] = "
                        f"[1, {cfg.model.layers}]: it is the layer xsimgcl contrasts with the final one")
    if cfg.data.format != "synthetic" and not cfg.data.path:
        raise UserError(f"data.format = {cfg.data.format!r} needs data.path (a file or directory)")
    if cfg.data.id_map and cfg.data.format != "amazon2023":
        raise UserError(f"data.id_map = {cfg.data.id_map!r} is only read with data.format = 'amazon2023' "
                        f"(this config has {cfg.data.format!r}); remove it or change the format")
