"""Model families as data: what the toolkit must know about an encoder architecture (torch-free).

A family (one file under `eftnas_deploy/families/`) declares, in the spirit of optimum's NormalizedTextConfig
and peft's target-module tables, where a model keeps its layers, which Linear rows/columns belong to one
attention head or one FFN neuron, what its config calls the geometry fields, which HF classes serve each task,
which inputs it takes, and what ONNX tools call it. Code everywhere else looks these up instead of naming BERT.

HF classes are named as strings and resolved lazily by the torch side, so this module (and every family
file) imports neither torch nor transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eftnas_deploy.core.errors import EftnasError

# Geometry fields (ModelGeometry names) every family maps to its config's own attribute names.
NORMALIZED_FIELDS = (
    "num_layers",
    "num_heads",
    "hidden_size",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "type_vocab_size",
)


@dataclass(frozen=True)
class AttentionLayout:
    """Module paths, inside one encoder layer, of the self-attention block.

    `query`/`key`/`value` rows and `output` columns come in groups of head_dim per head. `block` names the
    layer's children that make up the block (dropped, with its LayerNorm, when a layer keeps 0 heads);
    `skip` says what replaces each of them in a dense model so that the block is the identity
    (see modeling_eftnas.SKIP_MODULES). `size_attrs` are the attributes of the attention module that hold
    its head count (`units`) and width (`width`) and must follow a slice.
    """

    query: str
    key: str
    value: str
    output: str
    layer_norm: str
    attention_dropout: str | None
    output_dropout: str | None
    block: tuple[str, ...]
    skip: tuple[tuple[str, str], ...]
    size_attrs: tuple[tuple[str, str], ...]

    @property
    def rows(self) -> tuple[str, ...]:
        return (self.query, self.key, self.value)

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.output,)


@dataclass(frozen=True)
class FeedForwardLayout:
    """Module paths, inside one encoder layer, of the FFN block: one row of `up` and one column of `down`
    per neuron. `activation` is the activation module (or function attribute); `block`/`skip` as for attention.
    """

    up: str
    activation: str
    down: str
    dropout: str | None
    layer_norm: str
    block: tuple[str, ...]
    skip: tuple[tuple[str, str], ...]
    size_attrs: tuple[tuple[str, str], ...] = ()

    @property
    def rows(self) -> tuple[str, ...]:
        return (self.up,)

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.down,)


@dataclass(frozen=True)
class FamilySpec:
    """Everything architecture-specific about one HF encoder family, as data."""

    model_type: str  # config.model_type
    config_class: str  # transformers class names, resolved lazily
    model_classes: dict[str, str]  # task -> HF class
    dense_classes: dict[str, str]  # task -> class in eftnas_deploy/supernet/modeling_eftnas.py
    layers: str  # path of the layer list inside the base model
    config_fields: dict[str, str | None]  # ModelGeometry field -> config attribute (None: the family has none)
    attention: AttentionLayout
    ffn: FeedForwardLayout
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    position_offset: int = 0  # positions reserved before the first token (RoBERTa: 2)
    onnx_model_type: str = ""  # what optimum calls it (defaults to model_type)
    ort_optimizer_type: str = "bert"  # onnxruntime.transformers.optimizer model_type

    def __post_init__(self) -> None:
        missing = set(NORMALIZED_FIELDS) - set(self.config_fields)
        if missing:
            raise EftnasError(f"family {self.model_type}: config_fields lacks {sorted(missing)}")
        if not self.onnx_model_type:
            object.__setattr__(self, "onnx_model_type", self.model_type)

    def layout(self, dim: str) -> AttentionLayout | FeedForwardLayout:
        """The block layout an elastic dimension cuts ("heads": attention, "ffn": feed-forward)."""
        if dim == "heads":
            return self.attention
        if dim == "ffn":
            return self.ffn
        raise EftnasError(f"dimension: {dim!r} has no block layout in family {self.model_type}")

    def read(self, config: Any, name: str, default: Any = None) -> Any:
        """A normalized geometry field (ModelGeometry name) of a HF config of this family."""
        attr = self.config_fields[name]
        return default if attr is None else getattr(config, attr)

    def config_kwargs(self, **normalized: Any) -> dict[str, Any]:
        """Config constructor kwargs: normalized names (num_layers or num_hidden_layers, ...) become the family's.

        BERT-style names (num_hidden_layers, num_attention_heads) are accepted too, so one tiny-config dict
        builds every family. A field the family lacks (DistilBERT's type_vocab_size) is dropped.
        """
        aliases = {"num_hidden_layers": "num_layers", "num_attention_heads": "num_heads"}
        out: dict[str, Any] = {}
        for key, value in normalized.items():
            name = aliases.get(key, key)
            if name in self.config_fields:
                attr = self.config_fields[name]
                if attr is not None:
                    out[attr] = value
            else:
                out[key] = value
        return out

    def dense_layout(self, head_dim: int) -> dict[str, Any]:
        """The JSON layout a sliced model's config carries (`eftnas_layout`) for modeling_eftnas to shape itself."""
        return {
            "layers": self.layers,
            "heads": _dim_layout(self.attention, head_dim),
            "ffn": _dim_layout(self.ffn, 1),
        }


def _dim_layout(layout: AttentionLayout | FeedForwardLayout, unit: int) -> dict[str, Any]:
    return {
        "unit": unit,
        "rows": list(layout.rows),
        "columns": list(layout.columns),
        "attrs": dict(layout.size_attrs),
        "skip": dict(layout.skip),
    }


_FAMILIES: dict[str, FamilySpec] = {}


def register_family(spec: FamilySpec) -> FamilySpec:
    """Add a family to the registry (family files call this at import)."""
    _FAMILIES[spec.model_type] = spec
    return spec


def family_names() -> tuple[str, ...]:
    """The registered model types."""
    _ensure_loaded()
    return tuple(sorted(_FAMILIES))


def get_family(model_type: str) -> FamilySpec:
    """The family of a model type; EftnasError naming the supported ones otherwise."""
    _ensure_loaded()
    try:
        return _FAMILIES[model_type]
    except KeyError:
        raise EftnasError(
            f"model_type: {model_type!r} is not supported (expected one of {tuple(sorted(_FAMILIES))})"
        ) from None


def _ensure_loaded() -> None:
    # The package root imports eftnas_deploy.families (torch-free data) before any subpackage runs, so the
    # registry is filled whenever core is importable; this check only guards against a partial import.
    if not _FAMILIES:
        raise EftnasError("model families: registry is empty (import eftnas_deploy.families)")
