"""Pipeline configuration: nested frozen dataclasses loaded from YAML, overridable with dotted `--set` keys.

pydantic validates types, unknown keys and ranges (declared on each field's type below); each section's
`problems()` adds its choices and cross-field constraints. Every problem is raised at once in one
`EftnasError`, each named by its dotted path ("search.evals: Input should be greater than 0, got 0").
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError

from eftnas_deploy.core.errors import EftnasError
from eftnas_deploy.core.family import family_names
from eftnas_deploy.importance.head_order import HEAD_ORDERS
from eftnas_deploy.search.proxies import SEARCH_METRICS
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
# Named methods (`run --method`): the keys each one sets, beneath whatever a config file, flag or --set gives.
# SQFT (quantization-aware merge) is not a pipeline method yet: see eftnas_deploy.lora.sqft.
METHODS: dict[str, dict[str, Any]] = {
    "eftnas": {"supernet.adapters": "none", "sparsity.method": "none"},
    "lonas": {"supernet.adapters": "lora", "lora.elastic_widths": True, "sparsity.method": "none"},
    "nls": {"supernet.adapters": "lora", "lora.elastic_widths": False, "sparsity.method": "none"},
    "shears": {
        "supernet.adapters": "lora",
        "lora.elastic_widths": False,
        "sparsity.method": "wanda",
        "sparsity.target": 0.5,
    },
}
SPARSITY_METHODS = ("none", "wanda")
SAMPLINGS = ("space", "budget")  # supernet.sampling
FINETUNE_TEACHERS = ("best", "teacher", "supernet")  # finetune.teacher
LORA_GROUP_NAMES = ("lora_qkv", "lora_up", "lora_down")  # eftnas_deploy.core.dimensions.LORA_DIMENSIONS


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, int) and not isinstance(value, bool) else value


def _names(value: Any) -> Any:
    return [v.strip() for v in value.split(",")] if isinstance(value, str) else value


# Field types: pydantic checks them (integers strictly: YAML's true/false or "3" are not integers).
Int = Annotated[int, Strict()]
PositiveInt = Annotated[int, Strict(), Field(gt=0)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]  # lax: YAML 1.1 reads `3e-4` (no dot) as a string
NonNegativeFloat = Annotated[float, Field(ge=0)]
UnitFraction = Annotated[float, Field(gt=0, le=1)]
IntList = Annotated[tuple[Int, ...], BeforeValidator(_one_or_many)]  # a list, or one integer
NameList = Annotated[tuple[str, ...], BeforeValidator(_names)]  # a list, or "a,b"


class OneOf:
    """`OneOf[CHOICES]`: a name from a tuple or a registry (a dict keyed by name, read when validating)."""

    def __class_getitem__(cls, choices: Any) -> Any:
        def check(value: str) -> str:
            if value not in choices:
                raise ValueError(f"{value!r} is not one of {tuple(choices)}")
            return value

        return Annotated[str, AfterValidator(check)]


def _section(cls: type) -> type:
    """A config section: pydantic validates it on load, and unknown keys are errors."""
    cls.__pydantic_config__ = ConfigDict(extra="forbid")
    return cls


@_section
@dataclass(frozen=True)
class DataConfig:
    """The task and its local files (none: the hub dataset by name)."""

    task: str = "sst2"
    train_file: str | None = None
    dev_file: str | None = None
    columns: str | None = None  # e.g. "sentence=text,label=target"
    max_train_rows: PositiveInt | None = None
    max_dev_rows: PositiveInt | None = None
    max_length: PositiveInt = 128
    held_out_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
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
        out += _files_exist(self, "train_file", "dev_file")
        return out


@_section
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


@_section
@dataclass(frozen=True)
class TeacherConfig:
    epochs: PositiveFloat = 3.0
    lr: PositiveFloat = 5e-5
    batch_size: PositiveInt = 32
    warmup_ratio: float = 0.0


@_section
@dataclass(frozen=True)
class ImportanceConfig:
    # "taylor" ranks units well on pretrained and from-scratch models alike; EFTNAS' own "movement" ranked FFN
    # neurons of a fine-tuned all-MiniLM-L6-v2 close to chance (benchmarks/real_checkpoint.py).
    criterion: OneOf[CRITERIA] = "taylor"
    steps: PositiveInt = 200
    lr: PositiveFloat = 5e-5
    batch_size: PositiveInt = 32


@_section
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

    kind: OneOf[SPACE_KINDS] = "eftnas"
    min_fraction: UnitFraction = 0.2
    max_fraction: UnitFraction = 0.9
    num_targets: PositiveInt = 5
    ffn_multiple: PositiveInt = 32
    skip_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.02
    tolerance: PositiveFloat = 0.02
    seq_len: PositiveInt = 128
    ffn_bounds: OneOf[FFN_BOUNDS] = "importance"
    pca_variance: UnitFraction = 0.95
    head_order: OneOf[HEAD_ORDERS] = "importance"
    calibration_batches: PositiveInt = 16

    @property
    def needs_calibration(self) -> bool:
        return self.ffn_bounds != "importance" or self.head_order != "importance"

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.ffn_bounds == "pca" and self.kind != "eftnas":
            out.append(("ffn_bounds", f"pca bounds need kind 'eftnas' (threshold targets), not {self.kind!r}"))
        if self.min_fraction > self.max_fraction:
            out.append(("min_fraction", f"{self.min_fraction} is above max_fraction {self.max_fraction}"))
        return out


@_section
@dataclass(frozen=True)
class LutConfig:
    """A LUT measured on the target device (`file`), or measured here with these settings."""

    file: str | None = None
    allow_approximate: bool = False
    measure: bool = True  # without `file`: measure on this CPU (false: no latency figures at all)
    runtime: OneOf[RUNTIMES] = "onnxruntime"
    precision: OneOf[PRECISIONS] | None = None  # default: fp32 (ORT) / f32 (OpenVINO)
    threads: PositiveInt = 1
    seq_len: PositiveInt = 128
    batch: PositiveInt = 1
    grid: PositiveInt | None = None
    calibration: NonNegativeInt = 12  # end-to-end sub-networks the overhead is fitted on (8+: with a square term)
    warmup: NonNegativeInt = 5
    repeats: PositiveInt = 20
    min_time_s: NonNegativeFloat = 1.0
    stack: PositiveInt = 6
    validate_samples: NonNegativeInt = 8
    clock: OneOf[CLOCKS] = "wall"  # or "cpu": process CPU time, 1 thread, on a machine shared with other jobs

    def problems(self) -> list[tuple[str, str]]:
        return _files_exist(self, "file")


@_section
@dataclass(frozen=True)
class SupernetConfig:
    """Weight-sharing training; by default every sub-network distils from the fine-tuned teacher (stage 1)."""

    strategy: OneOf[STRATEGIES] = "full"
    num_random: PositiveInt = 1
    epochs: PositiveFloat = 2.0
    lr: PositiveFloat = 5e-5
    warmup_ratio: NonNegativeFloat = 0.06
    batch_size: PositiveInt = 32
    external_teacher_kd: bool = True
    distill_from: OneOf[DISTILL_SOURCES] = "teacher"  # or "largest": in-place distillation from the largest sub-network
    save_steps: PositiveInt = 50  # checkpoint interval (steps) of teacher and super-network training, for resuming
    # Relational KD (Park et al., 2019) on the [CLS] vector, added with this weight to the logit KD (0: off).
    rkd_weight: NonNegativeFloat = 0.0
    # Layer-wise KD (TinyBERT, CoFi): MSE to the teacher's hidden states after every layer, with this weight (0: off).
    hidden_kd_weight: NonNegativeFloat = 0.0
    # Progressive growth (ELM): "pca" widens the FFN blocks in stages, most PCA components first (needs
    # space.ffn_bounds: pca); growth_stages 0: one stage per epoch.
    growth: OneOf[GROWTH] = "none"
    growth_stages: NonNegativeInt = 0
    # "budget": the sandwich's upper end and the random sub-networks are shrunk to fit the search's budget
    # (search.max_*), so training goes to sub-networks the search can pick; "space": the whole space.
    sampling: OneOf[SAMPLINGS] = "space"
    # "lora": freeze the base and train elastic-rank LoRA super-adapters (section `lora`, LoNAS / Shears NLS)
    adapters: OneOf[ADAPTERS] = "none"


@_section
@dataclass(frozen=True)
class FinetuneConfig:
    """Final fine-tune of the chosen sub-network alone, distilled from the teacher, before export.

    `keep_if_better` keeps the fine-tuned weights only if the held-out score does not drop. It is off by
    default: the search picked the sub-network for its held-out score, so that score is biased upwards
    (winner's curse) and would reject fine-tuning that helps on unseen rows.
    """

    enabled: bool = True
    epochs: PositiveFloat = 1.0
    lr: PositiveFloat = 5e-5
    warmup_ratio: NonNegativeFloat = 0.06
    batch_size: PositiveInt = 32
    distill: bool = True
    # whom it distils from: "teacher" (stage 1), "supernet" (the super-network's largest sub-network after stage
    # 5), or "best": the one of the two that scores higher on the held-out rows
    teacher: OneOf[FINETUNE_TEACHERS] = "best"
    hidden_kd_weight: NonNegativeFloat = 0.0  # layer-wise KD, as in section `supernet`
    keep_if_better: bool = False


@_section
@dataclass(frozen=True)
class SearchSettings:
    """Multi-objective search and the hard budget (latency in ms, or a fraction of the full model's)."""

    objective: OneOf[OBJECTIVES] = "latency"
    algorithm: OneOf[ALGORITHMS] = "nsga2"
    evals: PositiveInt = 1000
    population: Annotated[int, Strict(), Field(ge=2)] | None = None
    max_latency_ms: PositiveFloat | None = None
    # 0: the latency of the space's smallest sub-network, 1: the full model's
    max_latency_fraction: UnitFraction | None = None
    max_macs: PositiveFloat | None = None  # millions
    max_params: PositiveFloat | None = None  # millions
    # the front's accuracy axis on the held-out rows: the task score, or agreement with the largest sub-network
    metric: OneOf[SEARCH_METRICS] = "distillation"
    selection: OneOf[SELECTIONS] = "most-accurate"
    delta: NonNegativeFloat = 0.01
    remeasure_top: NonNegativeInt = 5

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.max_latency_ms is not None and self.max_latency_fraction is not None:
            out.append(("max_latency_ms", "give max_latency_ms or max_latency_fraction, not both"))
        return out

    @property
    def needs_latency(self) -> bool:
        return self.objective == "latency" or self.max_latency_ms is not None or self.max_latency_fraction is not None


@_section
@dataclass(frozen=True)
class ExportConfig:
    formats: NameList = ("pytorch", "onnx", "openvino", "int8")
    calibration_size: PositiveInt = 300
    eval_size: PositiveInt | None = None  # rows of the evaluation split for every accuracy figure (None: all)
    pareto_front: bool = False  # also export every Pareto point (pytorch + onnx + openvino)
    benchmark_repeats: PositiveInt = 50
    benchmark_threads: PositiveInt | None = None  # default: the LUT's

    def problems(self) -> list[tuple[str, str]]:
        unknown = [f for f in self.formats if f not in FORMATS]
        out = [("formats", f"unknown format(s) {unknown} (expected a subset of {list(FORMATS)})")] if unknown else []
        if not self.formats:
            out.append(("formats", "at least one format is required"))
        return out


@_section
@dataclass(frozen=True)
class LoraSettings:
    """Elastic LoRA super-adapters, used with `supernet.adapters: lora`.

    A rank-`max_rank` adapter on each projection group of every layer (`groups`); the search space gets one
    rank dimension per group with `rank_choices` per layer (NLS: e.g. [32, 24, 16]). The scaling is fixed at
    `alpha / max_rank` for every rank (default alpha: 2 * max_rank). `elastic_widths` keeps the importance
    space's head/FFN choices (LoNAS); false searches the ranks at the full widths only (Shears NLS).
    """

    max_rank: PositiveInt = 32
    rank_choices: IntList | None = None  # default: max_rank, 3/4 and 1/2 of it (NLS' [32, 24, 16])
    alpha: PositiveFloat | None = None
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    groups: NameList = LORA_GROUP_NAMES
    elastic_widths: bool = True

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.rank_choices is not None and not self.rank_choices:
            out.append(("rank_choices", "at least one rank is required"))
        bad = [r for r in self.rank_choices or () if not 0 <= r <= max(self.max_rank, 0)]
        if bad and self.max_rank > 0:
            out.append(("rank_choices", f"{bad} outside [0, max_rank {self.max_rank}]"))
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


@_section
@dataclass(frozen=True)
class SparsitySettings:
    """Prune the fine-tuned teacher before super-adapter training (Shears); needs `supernet.adapters: lora`.

    `target`: a fraction of each weight row in (0, 1) (unstructured), or an "N:M" pattern such as "2:4"
    (quote it in YAML: an unquoted 2:4 is the base-60 integer 124). Wanda scores weights on
    `calibration_batches` training batches of `calibration_batch_size` rows.
    """

    method: OneOf[SPARSITY_METHODS] = "none"
    target: Annotated[float | str, Field(union_mode="left_to_right")] = 0.5
    calibration_batches: PositiveInt = 8
    calibration_batch_size: PositiveInt = 16

    def problems(self) -> list[tuple[str, str]]:
        out = []
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


@_section
class RootConfig:
    """A whole config of sections: validated from a dict (every problem at once), saved as YAML."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Build and validate; every bad field is reported at once."""
        return validate_config(cls, data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


@dataclass(frozen=True)
class PipelineConfig(RootConfig):
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
    seed: Int = 0
    out: str = "runs/pipeline"

    def problems(self) -> list[tuple[str, str]]:
        out = [] if self.out else [("out", "a run directory is required")]
        search = self.search
        if self.supernet.sampling == "budget" and not (
            search.max_latency_ms or search.max_latency_fraction is not None or search.max_macs or search.max_params
        ):
            out.append(("supernet.sampling", "'budget' needs a search budget (search.max_latency_ms, ...)"))
        if self.supernet.sampling == "budget" and self.supernet.adapters == "lora":
            out.append(("supernet.sampling", "'budget' is not wired for supernet.adapters: lora yet"))
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


_WHAT = {PipelineConfig: "pipeline config"}  # how errors name a root config


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, root: type | None = None
) -> Any:
    """A config (`root`, default PipelineConfig) from a YAML file or the defaults, dotted-key overrides on top."""
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
    return validate_config(root or PipelineConfig, data)


def method_overrides(method: str, given: dict[str, Any], file_data: dict[str, Any]) -> dict[str, Any]:
    """`method`'s keys that neither the command line (`given`, dotted) nor the config file (`file_data`) set."""
    if method not in METHODS:
        raise EftnasError(f"method: {method!r} is not one of {tuple(METHODS)}")

    def in_file(key: str) -> bool:
        node: Any = file_data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    return {k: v for k, v in METHODS[method].items() if k not in given and not in_file(k)}


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
def _problems(obj: Any, prefix: str) -> list[str]:
    own = obj.problems() if hasattr(obj, "problems") else []
    out = [f"{prefix}{name}: {message}" for name, message in own]
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += _problems(value, f"{prefix}{f.name}.")
    return out


def check_section(cls: type, values: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
    """One section from `values`: (the section or None, its problems as (dotted field, message) pairs)."""
    try:
        section = TypeAdapter(cls).validate_python(values)
    except ValidationError as exc:
        errors = [_field_problem(e, cls) for e in exc.errors()]
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        others = {k: v for k, v in values.items() if k not in bad} if isinstance(values, dict) else None
        if others is None or bad - set(values):  # the rest cannot be checked on its own
            return None, errors
        _, rest = check_section(cls, others)  # the other fields' own problems, reported at the same time
        return None, errors + [(field, message) for field, message in rest if field.split(".")[0] not in bad]
    return section, list(section.problems()) if hasattr(section, "problems") else []


def validate_config(root: type, data: dict[str, Any]) -> Any:
    """`root` (a dataclass of sections) built from `data`; every problem raised at once in one EftnasError."""
    try:
        config = TypeAdapter(root).validate_python(data)
        errors = _problems(config, "")
    except ValidationError as exc:
        config, errors = None, _all_problems(data, exc, root)
    if len(errors) == 1:
        raise EftnasError(f"invalid {_WHAT.get(root, 'config')}: {errors[0]}")
    if errors:
        raise EftnasError(f"invalid {_WHAT.get(root, 'config')}:\n  " + "\n  ".join(errors))
    return config


def _all_problems(data: dict[str, Any], exc: ValidationError, root: type) -> list[str]:
    """Every problem of an invalid config: its own fields', then each section's (checked on its own, so one
    bad field does not hide the others)."""
    sections = {n: h for n, h in typing.get_type_hints(root).items() if dataclasses.is_dataclass(h)}
    out = [
        "{}: {}".format(*_field_problem(e, root))
        for e in exc.errors()
        if len(e["loc"]) < 2 or e["loc"][0] not in sections
    ]
    for name, cls in sections.items():
        if isinstance(data.get(name, {}), dict):
            out += [f"{name}.{field}: {message}" for field, message in check_section(cls, data.get(name, {}))[1]]
    return out


def _field_problem(error: Any, root: type) -> tuple[str, str]:
    """One pydantic error as (dotted path, message); an unknown key's lists the section's known keys."""
    loc = [str(part) for part in error["loc"]]
    path = ".".join(loc) or "config"
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        section: Any = root
        for name in loc[:-1]:
            section = typing.get_type_hints(section).get(name, section)
        known = sorted(f.name for f in dataclasses.fields(section)) if dataclasses.is_dataclass(section) else []
        return path, f"unknown key (expected one of {known})"
    if error["type"] == "dataclass_type":
        return path, f"must be a mapping, got {type(error['input']).__name__}"
    if error["type"] == "value_error":  # a choice or check of ours: its message names the value
        return path, str(error["ctx"]["error"])
    template = _MESSAGES.get(error["type"])
    ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in error.get("ctx", {}).items()}
    return path, f"{template.format(**ctx) if template else error['msg']}, got {error['input']!r}"


# pydantic error types in the project's words (any other keeps pydantic's message).
_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be ≥ {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be ≤ {le}",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_type": "expected true/false",
    "bool_parsing": "expected true/false",
    "string_type": "expected a string",
    "tuple_type": "expected a list",
    "dict_type": "expected a mapping",
}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _files_exist(obj: Any, *names: str) -> list[tuple[str, str]]:
    return [(n, f"{v} does not exist") for n in names if (v := getattr(obj, n)) and not Path(v).is_file()]
