"""Decoder LLM families as data (torch-free): Llama/Qwen2-style causal LMs with grouped-query attention.

A decoder family is kept in its own registry, beside the encoder `FamilySpec`s of `core.family`: the encoder
pipeline (tasks, ONNX tools, latency LUT) iterates over every encoder family, and a causal LM fits none of it
yet. The elastic units differ too, so they are stated here:

* attention unit = one KV group: one K head and one V head (k_proj/v_proj rows) with the `group_size` query
  heads that read them (q_proj rows, o_proj columns). Groups are removed whole, so the number of query heads
  per KV head (and HF's `num_key_value_groups`) never changes. `SubnetConfig.heads` counts KV groups.
* MLP unit = one neuron of the gated MLP: a row of gate_proj and of up_proj and a column of down_proj.
  `SubnetConfig.ffn` counts neurons.
* 0 in a layer drops the block's residual branch, its pre-norm (RMSNorm) included; both 0 skips the layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eftnas_deploy.core.errors import EftnasError, SubnetConfigError
from eftnas_deploy.core.subnet import SubnetConfig

DECODER_FIELDS = ("num_layers", "num_heads", "num_kv_heads", "hidden_size", "intermediate_size", "vocab_size")


@dataclass(frozen=True)
class GroupedAttentionLayout:
    """Module paths, inside one decoder layer, of the pre-norm grouped-query attention block."""

    module: str = "self_attn"
    query: str = "self_attn.q_proj"
    key: str = "self_attn.k_proj"
    value: str = "self_attn.v_proj"
    output: str = "self_attn.o_proj"
    norm: str = "input_layernorm"


@dataclass(frozen=True)
class GatedMlpLayout:
    """Module paths, inside one decoder layer, of the pre-norm gated MLP block (act(gate) * up -> down)."""

    module: str = "mlp"
    gate: str = "mlp.gate_proj"
    up: str = "mlp.up_proj"
    down: str = "mlp.down_proj"
    norm: str = "post_attention_layernorm"

    @property
    def rows(self) -> tuple[str, ...]:
        return (self.gate, self.up)

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.down,)


@dataclass(frozen=True)
class DecoderFamilySpec:
    """Everything architecture-specific about one HF decoder-only causal-LM family, as data."""

    model_type: str
    config_class: str
    model_class: str  # causal-LM class in transformers
    dense_class: str  # its sliced counterpart in eftnas_deploy/supernet/modeling_eftnas_decoder.py
    config_fields: dict[str, str]
    layers: str = "model.layers"  # path of the layer list inside the causal-LM model
    attention: GroupedAttentionLayout = GroupedAttentionLayout()
    mlp: GatedMlpLayout = GatedMlpLayout()

    def __post_init__(self) -> None:
        missing = set(DECODER_FIELDS) - set(self.config_fields)
        if missing:
            raise EftnasError(f"decoder family {self.model_type}: config_fields lacks {sorted(missing)}")

    def config_kwargs(self, **normalized: Any) -> dict[str, Any]:
        """Config constructor kwargs from normalized names (others pass through)."""
        return {self.config_fields.get(k, k): v for k, v in normalized.items()}


@dataclass(frozen=True)
class DecoderGeometry:
    """The shape of a grouped-query decoder: what a decoder sub-network must fit."""

    model_type: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int

    def __post_init__(self) -> None:
        if self.num_kv_heads <= 0 or self.num_heads % self.num_kv_heads:
            raise EftnasError(f"num_key_value_heads: {self.num_kv_heads} must divide num_heads ({self.num_heads})")

    @property
    def group_size(self) -> int:
        """Query heads per KV group."""
        return self.num_heads // self.num_kv_heads

    @classmethod
    def from_config(cls, config: Any) -> DecoderGeometry:
        """The geometry of a decoder config (the parent's, for a sliced model)."""
        parent = getattr(config, "eftnas_parent", None)
        if parent:
            return cls(**parent)
        spec = get_decoder_family(config.model_type)
        fields = {name: getattr(config, attr) for name, attr in spec.config_fields.items()}
        head_dim = getattr(config, "head_dim", None) or fields["hidden_size"] // fields["num_heads"]
        return cls(model_type=config.model_type, head_dim=int(head_dim), **{k: int(v) for k, v in fields.items()})

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def full_subnet(self) -> SubnetConfig:
        return SubnetConfig(heads=[self.num_kv_heads] * self.num_layers, ffn=[self.intermediate_size] * self.num_layers)

    def validate(self, subnet: SubnetConfig) -> None:
        """Raise SubnetConfigError unless `subnet` (heads = KV groups, ffn = MLP neurons) fits this model."""
        if subnet.num_layers != self.num_layers:
            raise SubnetConfigError(f"subnet: {subnet.num_layers} layers, the model has {self.num_layers}")
        for i, (groups, width) in enumerate(zip(subnet.heads, subnet.ffn)):
            if groups > self.num_kv_heads:
                raise SubnetConfigError(f"layer {i}: {groups} KV groups > {self.num_kv_heads}")
            if width > self.intermediate_size:
                raise SubnetConfigError(f"layer {i}: MLP width {width} > {self.intermediate_size}")


_DECODERS: dict[str, DecoderFamilySpec] = {}


def register_decoder_family(spec: DecoderFamilySpec) -> DecoderFamilySpec:
    _DECODERS[spec.model_type] = spec
    return spec


def decoder_family_names() -> tuple[str, ...]:
    return tuple(sorted(_DECODERS))


def get_decoder_family(model_type: str) -> DecoderFamilySpec:
    try:
        return _DECODERS[model_type]
    except KeyError:
        raise EftnasError(
            f"model_type: {model_type!r} is not a supported decoder (expected one of {decoder_family_names()})"
        ) from None
