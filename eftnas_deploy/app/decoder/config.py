"""Configuration of a decoder-LLM run (`eftnas-deploy decoder`): YAML sections checked like the pipeline's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from eftnas_deploy.app.pipeline.config import (
    _WHAT,
    RUNTIMES,
    NonNegativeInt,
    OneOf,
    PositiveFloat,
    PositiveInt,
    RootConfig,
    UnitFraction,
    _names,
    _section,
    load_config,
)
from eftnas_deploy.search.decoder import COSTS
from eftnas_deploy.search.searcher import ALGORITHMS
from eftnas_deploy.training.sampling import STRATEGIES
from exporters.runtime import CLOCKS

CRITERIA = ("taylor", "magnitude")
WEIGHTS = ("fp32", "int8", "int4")  # the stateful OpenVINO IRs written (nncf.compress_weights for int8/int4)
FFNFraction = Annotated[float, Field(ge=0, le=1)]


@_section
@dataclass(frozen=True)
class DecoderModelConfig:
    """A Llama/Qwen2 causal LM by hub name or directory (`name`), or one built from a config (`from_config`)."""

    name: str | None = None
    from_config: dict | None = None  # e.g. {model_type: llama, num_layers: 4, hidden_size: 128, ...}
    tokenizer: str | None = None  # default: the model's; with from_config, one trained on the training texts
    vocab_size: PositiveInt = 512  # of the tokenizer trained for a from_config model

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if bool(self.name) == bool(self.from_config):
            out.append(("name", "give exactly one of model.name or model.from_config"))
        if self.from_config and self.from_config.get("model_type", "llama") not in _decoder_families():
            out.append(("from_config", f"model_type must be one of {_decoder_families()}"))
        return out


def _decoder_families() -> tuple[str, ...]:
    from eftnas_deploy.core.decoder_family import decoder_family_names

    return tuple(decoder_family_names())


@_section
@dataclass(frozen=True)
class DecoderDataConfig:
    """Text: a local .txt/.jsonl file or a dataset name; `dev` defaults to the last `dev_fraction` of `train`."""

    train: str | None = None
    dev: str | None = None
    text_column: str = "text"
    dataset_config: str | None = None
    block_size: PositiveInt = 128
    max_train_texts: PositiveInt | None = None
    dev_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    max_dev_blocks: PositiveInt = 64

    def problems(self) -> list[tuple[str, str]]:
        out = [] if self.train else [("train", "a text file or dataset name is required")]
        for name in ("train", "dev"):
            value = getattr(self, name)
            if value and Path(value).suffix in (".txt", ".jsonl") and not Path(value).is_file():
                out.append((name, f"{value} does not exist"))
        return out


@_section
@dataclass(frozen=True)
class DecoderImportanceConfig:
    criterion: OneOf[CRITERIA] = "taylor"
    batches: PositiveInt = 8


@_section
@dataclass(frozen=True)
class DecoderSpaceConfig:
    """Per layer: attention with `kv_groups` KV groups (default: all) or dropped, MLP width at each fraction."""

    ffn_fractions: tuple[FFNFraction, ...] = (1.0, 0.75, 0.5, 0.25)
    kv_groups: PositiveInt | None = None
    drop_layers: bool = True

    def problems(self) -> list[tuple[str, str]]:
        return [] if self.ffn_fractions else [("ffn_fractions", "at least one MLP width fraction is required")]


@_section
@dataclass(frozen=True)
class DecoderSupernetConfig:
    steps: PositiveInt = 200
    batch_size: PositiveInt = 8
    lr: PositiveFloat = 3e-4
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.06
    strategy: OneOf[STRATEGIES] = "sandwich"
    save_steps: PositiveInt = 50


@_section
@dataclass(frozen=True)
class DecoderLutConfig:
    """The generation LUT: measured on this CPU (default) or read from `file` (measured on the target)."""

    file: str | None = None
    runtime: OneOf[RUNTIMES] = "openvino"
    threads: PositiveInt = 1
    prompt_len: PositiveInt = 128
    new_tokens: PositiveInt = 64
    grid: PositiveInt = 4
    calibration: NonNegativeInt = 8
    validate: NonNegativeInt = 4  # held-out sub-networks generated end to end against the prediction
    repeats: PositiveInt = 5
    clock: OneOf[CLOCKS] = "wall"

    def problems(self) -> list[tuple[str, str]]:
        if self.file and not Path(self.file).is_file():
            return [("file", f"{self.file} does not exist")]
        return []


@_section
@dataclass(frozen=True)
class DecoderSearchConfig:
    """Perplexity against `objective`; budgets in ms (LUT-predicted) or as a fraction of the full model's."""

    algorithm: OneOf[ALGORITHMS] = "nsga2"
    evals: PositiveInt = 60
    population: PositiveInt = 16
    objective: OneOf[COSTS] = "ms_per_token"
    max_ms_per_token: PositiveFloat | None = None
    max_ttft_ms: PositiveFloat | None = None
    max_fraction: UnitFraction | None = None  # of the full model's predicted `objective`

    def problems(self) -> list[tuple[str, str]]:
        if self.max_fraction is not None and self.budget_of(self.objective) is not None:
            return [("max_fraction", f"give max_fraction or max_{self.objective}, not both")]
        return []

    def budget_of(self, cost: str) -> float | None:
        return self.max_ms_per_token if cost == "ms_per_token" else self.max_ttft_ms


@_section
@dataclass(frozen=True)
class DecoderExportConfig:
    weights: Annotated[tuple[OneOf[WEIGHTS], ...], BeforeValidator(_names)] = ("fp32", "int8")
    check_tokens: PositiveInt = 8  # greedy tokens the exported IR must generate like PyTorch


@dataclass(frozen=True)
class DecoderRunConfig(RootConfig):
    model: DecoderModelConfig = field(default_factory=DecoderModelConfig)
    data: DecoderDataConfig = field(default_factory=DecoderDataConfig)
    importance: DecoderImportanceConfig = field(default_factory=DecoderImportanceConfig)
    space: DecoderSpaceConfig = field(default_factory=DecoderSpaceConfig)
    supernet: DecoderSupernetConfig = field(default_factory=DecoderSupernetConfig)
    lut: DecoderLutConfig = field(default_factory=DecoderLutConfig)
    search: DecoderSearchConfig = field(default_factory=DecoderSearchConfig)
    export: DecoderExportConfig = field(default_factory=DecoderExportConfig)
    seed: Annotated[int, Field(ge=0)] = 0
    out: str = "runs/decoder"

    def problems(self) -> list[tuple[str, str]]:
        return [] if self.out else [("out", "a run directory is required")]


_WHAT[DecoderRunConfig] = "decoder config"


def load_decoder_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> DecoderRunConfig:
    """A decoder config from YAML (or the defaults) with dotted-key overrides on top."""
    return load_config(path, overrides, root=DecoderRunConfig)
