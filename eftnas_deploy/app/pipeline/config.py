"""Pipeline configuration: nested frozen dataclasses loaded from YAML, overridable with dotted `--set` keys.

Validation collects every problem (unknown keys, wrong types, out-of-range values) and raises them
together in one `EftnasError`, each named by its dotted path ("search.evals: must be ≥ 1").
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import family_names
from eftnas_deploy.importance.head_order import HEAD_ORDERS
from eftnas_deploy.search.searcher import ALGORITHMS
from eftnas_deploy.space.kinds import SPACE_KINDS
from eftnas_deploy.training.growth import GROWTH
from eftnas_deploy.training.sampling import DISTILL_SOURCES, STRATEGIES
from exporters.bundle import FORMATS
from exporters.runtime import CLOCKS

# Choices checked by name; the registries (ALGORITHMS, SPACE_KINDS, STRATEGIES, FORMATS) come from their packages.
CRITERIA = ("movement", "taylor", "magnitude")
RUNTIMES = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "f32", "bf16", "f16", "default")
OBJECTIVES = ("latency", "macs", "params")
SELECTIONS = ("most-accurate", "cheapest-within-delta")
FFN_BOUNDS = ("importance", "pca")
ADAPTERS = ("none", "lora")  # supernet.adapters: train every weight (none), or LoRA super-adapters on a frozen base
SPARSITY_METHODS = ("none", "wanda")
LORA_GROUP_NAMES = ("lora_qkv", "lora_up", "lora_down")  # eftnas_deploy.core.dimensions.LORA_DIMENSIONS


@dataclass(frozen=True)
class DataConfig:
    """The task and its local files (none: the hub dataset by name)."""

    task: str = "sst2"
    train_file: str | None = None
    dev_file: str | None = None
    columns: str | None = None  # e.g. "sentence=text,label=target"
    max_train_rows: int | None = None
    max_dev_rows: int | None = None
    max_length: int = 128
    held_out_fraction: float = 0.1
    # Batches of similar length in every training stage: several times faster with dynamic padding on short
    # texts (SST-2), but batches then follow length; off where length goes with the label.
    group_by_length: bool = False

    def problems(self) -> list[tuple[str, str]]:
        from eftnas_deploy.data.tasks import TASKS, get_task

        out = []
        try:
            get_task(self.task)
        except EftnasError:
            out.append(("task", f"{self.task!r} is not one of {sorted(TASKS)}"))
        out += _positive(self, "max_train_rows", "max_dev_rows", "max_length")
        if not 0 < self.held_out_fraction < 1:
            out.append(("held_out_fraction", f"must be in (0, 1), got {self.held_out_fraction}"))
        out += _files_exist(self, "train_file", "dev_file")
        return out


@dataclass(frozen=True)
class ModelConfig:
    """A hub name or directory (`name`), or a geometry to build and train from scratch (`from_config`)."""

    name: str | None = None
    tokenizer: str | None = None
    fine_tuned: bool = False  # `name` is already fine-tuned on the task: skip teacher training
    model_type: str = "bert"
    from_config: dict | None = None  # e.g. {hidden_size: 128, num_hidden_layers: 4, ...}

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if bool(self.name) == bool(self.from_config):
            out.append(("name", "give exactly one of model.name or model.from_config"))
        if self.from_config and not self.tokenizer:
            out.append(("tokenizer", "a model built from a config needs a tokenizer (directory or hub name)"))
        if self.fine_tuned and not self.name:
            out.append(("fine_tuned", "only a pretrained model.name can be already fine-tuned"))
        if self.model_type not in family_names():
            out.append(("model_type", f"{self.model_type!r} is not one of {family_names()}"))
        return out


@dataclass(frozen=True)
class TeacherConfig:
    epochs: float = 3.0
    lr: float = 5e-5
    batch_size: int = 32
    warmup_ratio: float = 0.0

    def problems(self) -> list[tuple[str, str]]:
        return _positive(self, "epochs", "lr", "batch_size")


@dataclass(frozen=True)
class ImportanceConfig:
    # "taylor" ranks units well on pretrained and from-scratch models alike; EFTNAS' own "movement" ranked FFN
    # neurons of a fine-tuned all-MiniLM-L6-v2 close to chance (benchmarks/real_checkpoint.py).
    criterion: str = "taylor"
    steps: int = 200
    lr: float = 5e-5
    batch_size: int = 32

    def problems(self) -> list[tuple[str, str]]:
        return _choice(self, "criterion", CRITERIA) + _positive(self, "steps", "lr", "batch_size")


@dataclass(frozen=True)
class SpaceConfig:
    """Search-space boundaries from importance at MAC targets (fractions of the full model).

    `kind` picks the space generator (see `eftnas_deploy.space.kinds`): "eftnas" (importance thresholds at
    `num_targets` MAC targets) or "medium" (Klein et al.'s free per-layer space, FFN in `ffn_multiple` steps).

    ELM options (ignored by "medium"'s bounds): `ffn_bounds: pca` sets each layer's FFN widths in proportion to
    the principal components the teacher's FFN activations need to explain `pca_variance` of their variance
    (`eftnas_deploy.space.pca`); `head_order: cka | cka+importance` orders heads by CKA diversity before the
    function-preserving reorder (`eftnas_deploy.importance.head_order`). Both read `calibration_batches`
    training batches (of the importance batch size).
    """

    kind: str = "eftnas"
    min_fraction: float = 0.2
    max_fraction: float = 0.9
    num_targets: int = 5
    ffn_multiple: int = 32
    skip_fraction: float = 0.02
    tolerance: float = 0.02
    seq_len: int = 128
    ffn_bounds: str = "importance"
    pca_variance: float = 0.95
    head_order: str = "importance"
    calibration_batches: int = 16

    @property
    def needs_calibration(self) -> bool:
        return self.ffn_bounds != "importance" or self.head_order != "importance"

    def problems(self) -> list[tuple[str, str]]:
        out = _choice(self, "kind", SPACE_KINDS) + _positive(
            self, "num_targets", "ffn_multiple", "tolerance", "seq_len", "calibration_batches"
        )
        out += _choice(self, "ffn_bounds", FFN_BOUNDS) + _choice(self, "head_order", HEAD_ORDERS)
        if not 0 < self.pca_variance <= 1:
            out.append(("pca_variance", f"must be in (0, 1], got {self.pca_variance}"))
        if self.ffn_bounds == "pca" and self.kind != "eftnas":
            out.append(("ffn_bounds", f"pca bounds need kind 'eftnas' (threshold targets), not {self.kind!r}"))
        for name in ("min_fraction", "max_fraction"):
            if not 0 < getattr(self, name) <= 1:
                out.append((name, f"must be in (0, 1], got {getattr(self, name)}"))
        if self.min_fraction > self.max_fraction:
            out.append(("min_fraction", f"{self.min_fraction} is above max_fraction {self.max_fraction}"))
        if not 0 <= self.skip_fraction < 1:
            out.append(("skip_fraction", f"must be in [0, 1), got {self.skip_fraction}"))
        return out


@dataclass(frozen=True)
class LutConfig:
    """A LUT measured on the target device (`file`), or measured here with these settings."""

    file: str | None = None
    allow_approximate: bool = False
    measure: bool = True  # without `file`: measure on this CPU (false: no latency figures at all)
    runtime: str = "onnxruntime"
    precision: str | None = None  # default: fp32 (ORT) / f32 (OpenVINO)
    threads: int = 1
    seq_len: int = 128
    batch: int = 1
    grid: int | None = None
    calibration: int = 4
    warmup: int = 5
    repeats: int = 20
    min_time_s: float = 1.0
    stack: int = 6
    validate_samples: int = 8
    clock: str = "wall"  # or "cpu": process CPU time, 1 thread, on a machine shared with other jobs

    def problems(self) -> list[tuple[str, str]]:
        out = _choice(self, "runtime", RUNTIMES) + _choice(self, "clock", tuple(CLOCKS)) + _files_exist(self, "file")
        if self.precision is not None:
            out += _choice(self, "precision", PRECISIONS)
        out += _positive(self, "threads", "seq_len", "batch", "repeats", "stack", "grid")
        out += _non_negative(self, "calibration", "warmup", "min_time_s", "validate_samples")
        return out


@dataclass(frozen=True)
class SupernetConfig:
    """Weight-sharing training; by default every sub-network distils from the fine-tuned teacher (stage 1)."""

    strategy: str = "full"
    num_random: int = 1
    epochs: float = 2.0
    lr: float = 5e-5
    warmup_ratio: float = 0.06
    batch_size: int = 32
    external_teacher_kd: bool = True
    distill_from: str = "teacher"  # or "largest": in-place distillation from the largest sub-network
    save_steps: int = 50  # checkpoint interval (steps) of teacher and super-network training, for resuming
    # Relational KD (Park et al., 2019) on the [CLS] vector, added with this weight to the logit KD (0: off).
    rkd_weight: float = 0.0
    # Progressive growth (ELM): "pca" widens the FFN blocks in stages, most PCA components first (needs
    # space.ffn_bounds: pca); growth_stages 0: one stage per epoch.
    growth: str = "none"
    growth_stages: int = 0
    # "lora": freeze the base and train elastic-rank LoRA super-adapters (section `lora`, LoNAS / Shears NLS)
    adapters: str = "none"

    def problems(self) -> list[tuple[str, str]]:
        out = _choice(self, "strategy", STRATEGIES) + _choice(self, "distill_from", DISTILL_SOURCES)
        out += _choice(self, "adapters", ADAPTERS)
        out += _choice(self, "growth", GROWTH) + _non_negative(self, "warmup_ratio", "rkd_weight", "growth_stages")
        return out + _positive(self, "num_random", "epochs", "lr", "batch_size", "save_steps")


@dataclass(frozen=True)
class FinetuneConfig:
    """Final fine-tune of the chosen sub-network alone, distilled from the teacher, before export.

    `keep_if_better` keeps the fine-tuned weights only if the held-out score does not drop. It is off by
    default: the search picked the sub-network for its held-out score, so that score is biased upwards
    (winner's curse) and would reject fine-tuning that helps on unseen rows.
    """

    enabled: bool = True
    epochs: float = 1.0
    lr: float = 5e-5
    warmup_ratio: float = 0.06
    batch_size: int = 32
    distill: bool = True
    keep_if_better: bool = False

    def problems(self) -> list[tuple[str, str]]:
        return _non_negative(self, "warmup_ratio") + _positive(self, "epochs", "lr", "batch_size")


@dataclass(frozen=True)
class SearchSettings:
    """Multi-objective search and the hard budget (latency in ms, or a fraction of the full model's)."""

    objective: str = "latency"
    algorithm: str = "nsga2"
    evals: int = 1000
    population: int | None = None
    max_latency_ms: float | None = None
    max_latency_fraction: float | None = None  # 0: the space's smallest sub-network's latency, 1: the full model's
    max_macs: float | None = None  # millions
    max_params: float | None = None  # millions
    selection: str = "most-accurate"
    delta: float = 0.01
    remeasure_top: int = 5

    def problems(self) -> list[tuple[str, str]]:
        out = _choice(self, "objective", OBJECTIVES) + _choice(self, "algorithm", ALGORITHMS)
        out += _choice(self, "selection", SELECTIONS)
        out += _positive(self, "evals", "max_latency_ms", "max_macs", "max_params")
        out += _non_negative(self, "delta", "remeasure_top")
        if self.population is not None and self.population < 2:
            out.append(("population", f"must be ≥ 2, got {self.population}"))
        if self.max_latency_fraction is not None and not 0 < self.max_latency_fraction <= 1:
            out.append(("max_latency_fraction", f"must be in (0, 1], got {self.max_latency_fraction}"))
        if self.max_latency_ms is not None and self.max_latency_fraction is not None:
            out.append(("max_latency_ms", "give max_latency_ms or max_latency_fraction, not both"))
        return out

    @property
    def needs_latency(self) -> bool:
        return self.objective == "latency" or self.max_latency_ms is not None or self.max_latency_fraction is not None


@dataclass(frozen=True)
class ExportConfig:
    formats: tuple[str, ...] = ("pytorch", "onnx", "openvino", "int8")
    calibration_size: int = 300
    eval_size: int | None = None  # rows of the evaluation split for every accuracy figure (None: all)
    pareto_front: bool = False  # also export every Pareto point (pytorch + onnx + openvino)
    benchmark_repeats: int = 50
    benchmark_threads: int | None = None  # default: the LUT's

    def problems(self) -> list[tuple[str, str]]:
        unknown = [f for f in self.formats if f not in FORMATS]
        out = [("formats", f"unknown format(s) {unknown} (expected a subset of {list(FORMATS)})")] if unknown else []
        if not self.formats:
            out.append(("formats", "at least one format is required"))
        return out + _positive(self, "calibration_size", "eval_size", "benchmark_repeats", "benchmark_threads")


@dataclass(frozen=True)
class LoraSettings:
    """Elastic LoRA super-adapters, used with `supernet.adapters: lora`.

    A rank-`max_rank` adapter on each projection group of every layer (`groups`); the search space gets one
    rank dimension per group with `rank_choices` per layer (NLS: e.g. [32, 24, 16]). The scaling is fixed at
    `alpha / max_rank` for every rank (default alpha: 2 * max_rank). `elastic_widths` keeps the importance
    space's head/FFN choices (LoNAS); false searches the ranks at the full widths only (Shears NLS).
    """

    max_rank: int = 32
    rank_choices: tuple[int, ...] | None = None  # default: max_rank, 3/4 and 1/2 of it (NLS' [32, 24, 16])
    alpha: float | None = None
    dropout: float = 0.0
    groups: tuple[str, ...] = LORA_GROUP_NAMES
    elastic_widths: bool = True

    def problems(self) -> list[tuple[str, str]]:
        out = _positive(self, "max_rank", "alpha")
        if self.rank_choices is not None and not self.rank_choices:
            out.append(("rank_choices", "at least one rank is required"))
        bad = [r for r in self.rank_choices or () if not 0 <= r <= max(self.max_rank, 0)]
        if bad and self.max_rank > 0:
            out.append(("rank_choices", f"{bad} outside [0, max_rank {self.max_rank}]"))
        if not 0 <= self.dropout < 1:
            out.append(("dropout", f"must be in [0, 1), got {self.dropout}"))
        unknown = [g for g in self.groups if g not in LORA_GROUP_NAMES]
        if unknown or not self.groups:
            out.append(("groups", f"{unknown or 'none'} given; choose from {list(LORA_GROUP_NAMES)}"))
        return out

    @property
    def ranks(self) -> tuple[int, ...]:
        """The rank choices of every layer and group (largest first)."""
        if self.rank_choices is not None:
            return tuple(sorted(set(self.rank_choices), reverse=True))
        return tuple(sorted({self.max_rank, max(1, 3 * self.max_rank // 4), max(1, self.max_rank // 2)}, reverse=True))


@dataclass(frozen=True)
class SparsitySettings:
    """Prune the fine-tuned teacher before super-adapter training (Shears); needs `supernet.adapters: lora`.

    `target`: a fraction of each weight row in (0, 1) (unstructured), or an "N:M" pattern such as "2:4"
    (quote it in YAML: an unquoted 2:4 is the base-60 integer 124). Wanda scores weights on
    `calibration_batches` training batches of `calibration_batch_size` rows.
    """

    method: str = "none"
    target: float | str = 0.5
    calibration_batches: int = 8
    calibration_batch_size: int = 16

    def problems(self) -> list[tuple[str, str]]:
        out = _choice(self, "method", SPARSITY_METHODS)
        out += _positive(self, "calibration_batches", "calibration_batch_size")
        try:
            pattern = self.pattern
        except ValueError as exc:
            return [*out, ("target", str(exc))]
        if pattern is not None and self.method != "wanda":
            out.append(("target", f"an N:M pattern ({self.target}) needs sparsity.method: wanda"))
        return out

    @property
    def pattern(self) -> tuple[int, int] | None:
        """(N, M) of an "N:M" target, None for a fraction; ValueError naming the problem otherwise."""
        if isinstance(self.target, str):
            parts = self.target.split(":")
            if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
                n, m = (int(p) for p in parts)
                if 0 < n < m:
                    return n, m
            raise ValueError(f"{self.target!r} is not a fraction in (0, 1) or an N:M pattern with 0 < N < M")
        if not 0 < self.target < 1:
            hint = ' (an unquoted N:M is a base-60 integer in YAML: write "2:4")' if self.target >= 60 else ""
            raise ValueError(f"{self.target:g} is not a fraction in (0, 1) or an N:M pattern{hint}")
        return None


@dataclass(frozen=True)
class PipelineConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    importance: ImportanceConfig = field(default_factory=ImportanceConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    lut: LutConfig = field(default_factory=LutConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    search: SearchSettings = field(default_factory=SearchSettings)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    sparsity: SparsitySettings = field(default_factory=SparsitySettings)
    seed: int = 0
    out: str = "runs/pipeline"

    def problems(self) -> list[tuple[str, str]]:
        out = [] if self.out else [("out", "a run directory is required")]
        if self.supernet.growth == "pca" and self.space.ffn_bounds != "pca":
            out.append(("supernet.growth", "'pca' growth needs the PCA components of space.ffn_bounds: pca"))
        if self.search.needs_latency and not (self.lut.file or self.lut.measure):
            out.append(("lut.measure", "a latency objective or budget needs a LUT: set lut.file or lut.measure"))
        if self.sparsity.method in SPARSITY_METHODS[1:] and self.supernet.adapters != "lora":
            out.append(
                ("sparsity.method", f"{self.sparsity.method} needs supernet.adapters: lora (training every weight "
                 "would refill the pruned ones)")
            )  # fmt: skip
        return out

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        """Build and validate; every bad field is reported at once."""
        errors: list[str] = []
        config = _build(cls, data, "", errors)
        if config is not None:
            errors += _problems(config, "")
        if len(errors) == 1:
            raise EftnasError(f"invalid pipeline config: {errors[0]}")
        if errors:
            raise EftnasError("invalid pipeline config:\n  " + "\n  ".join(errors))
        return config

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """A config from a YAML file (or the defaults) with dotted-key overrides applied on top."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config: {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise EftnasError(f"config: {path} is not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise EftnasError(f"config: {path} must hold a mapping of sections")
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return PipelineConfig.from_dict(data)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data["a"]["b"] = value for key "a.b" (creating sections)."""
    *sections, last = key.split(".")
    node = data
    for name in sections:
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            raise EftnasError(f"{key}: {name} is not a section")
    node[last] = value


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """["a.b=3", "c=x"] -> {"a.b": 3, "c": "x"} (values parsed as YAML scalars/lists)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise EftnasError(f"set: {item!r} is not of the form section.key=value")
        key, value = item.split("=", 1)
        if re.fullmatch(r"\s*\d+:\d+\s*", value):  # an N:M pattern, not YAML's base-60 integer
            out[key.strip()] = value.strip()
            continue
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


# -- building and checking -------------------------------------------------------------------------
def _build(cls: type, data: Any, prefix: str, errors: list[str]) -> Any:
    if not isinstance(data, dict):
        errors.append(f"{prefix.rstrip('.') or 'config'}: must be a mapping, got {type(data).__name__}")
        return None
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            errors.append(f"{prefix}{key}: unknown key (expected one of {sorted(names)})")
    values = {}
    for name in names & set(data):
        hint, value, path = hints[name], data[name], f"{prefix}{name}"
        if dataclasses.is_dataclass(hint):
            built = _build(hint, value, path + ".", errors)
            if built is not None:
                values[name] = built
        else:
            ok, coerced = _coerce(hint, value)
            if ok:
                values[name] = coerced
            else:
                errors.append(f"{path}: expected {_type_name(hint)}, got {value!r}")
    try:
        return cls(**values)
    except TypeError as exc:  # pragma: no cover - defensive
        errors.append(f"{prefix or 'config'}: {exc}")
        return None


def _problems(obj: Any, prefix: str) -> list[str]:
    out = [f"{prefix}{name}: {message}" for name, message in obj.problems()]
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += _problems(value, f"{prefix}{f.name}.")
    return out


_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _coerce(hint: Any, value: Any) -> tuple[bool, Any]:
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        for arg in args:
            if arg is not type(None):
                ok, coerced = _coerce(arg, value)
                if ok:
                    return True, coerced
        return False, None
    if origin is tuple and args and args[0] is int:
        items = [value] if isinstance(value, int) else value
        if not isinstance(items, list | tuple) or any(isinstance(v, bool) or not isinstance(v, int) for v in items):
            return False, None
        return True, tuple(items)
    if origin is tuple:
        items = [value] if isinstance(value, str) else value
        if isinstance(value, str) and "," in value:
            items = [v.strip() for v in value.split(",")]
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            return False, None
        return True, tuple(items)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads `3e-4` (no dot) as a string
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if hint is str:
        return isinstance(value, str), value
    if hint is dict:
        return isinstance(value, dict), value
    return False, None


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return "a list of integers" if typing.get_args(hint)[:1] == (int,) else "a list of strings"
    if args:
        return " or ".join(_type_name(a) for a in args) + " (or null)"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}.get(
        hint, str(hint)
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _positive(obj: Any, *names: str) -> list[tuple[str, str]]:
    return [(n, f"must be > 0, got {getattr(obj, n)}") for n in names if (v := getattr(obj, n)) is not None and v <= 0]


def _non_negative(obj: Any, *names: str) -> list[tuple[str, str]]:
    return [(n, f"must be ≥ 0, got {getattr(obj, n)}") for n in names if (v := getattr(obj, n)) is not None and v < 0]


def _choice(obj: Any, name: str, choices: Any) -> list[tuple[str, str]]:
    """`choices`: a tuple of names or a registry (a dict keyed by name)."""
    value = getattr(obj, name)
    return [] if value in choices else [(name, f"{value!r} is not one of {tuple(choices)}")]


def _files_exist(obj: Any, *names: str) -> list[tuple[str, str]]:
    return [(n, f"{v} does not exist") for n in names if (v := getattr(obj, n)) and not Path(v).is_file()]
